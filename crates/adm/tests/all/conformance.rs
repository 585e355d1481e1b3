//! Spec 2.11 conformance table, in order, on one table (fresh at the start),
//! plus the behaviours verified against the real ipvsadm (spec section 0).

use rvs_api::{ForwardMethod, ServiceKey};

use crate::{new_fake, run, run_with, words};

const TRY: &str = "Try `ipvsadm -h' or 'ipvsadm --help' for more information.\n";

#[test]
fn conformance_table_2_11() {
    let fake = new_fake();
    let cases: &[(&str, &str, i32)] = &[
        ("-A -t 198.18.0.1:80 -s rr", "", 0),
        ("-A -t 198.18.0.1:80 -s rr", "Service already exists\n", 255),
        (
            "-A -t 198.18.0.1 -s rr",
            "Zero port specified for non-persistent service\n",
            2,
        ),
        (
            "-A -t 198.18.0.5:80 -s foo",
            "Scheduler or persistence engine not found\n",
            255,
        ),
        (
            "-A -t 198.18.0.6:80 -b sh-port",
            "incompatible scheduler flag `sh-port'\n",
            2,
        ),
        ("-E -t 198.18.0.9:80", "No such service\n", 255),
        (
            "-a -t 198.18.0.2:80 -r 198.18.0.3",
            "Service not defined\n",
            255,
        ),
        ("-a -t 198.18.0.1:80 -r 198.18.0.3", "", 0),
        (
            "-a -t 198.18.0.1:80 -r 198.18.0.3",
            "Destination already exists\n",
            255,
        ),
        (
            "-a -t 198.18.0.1:80 -r 198.18.0.4 -w -1",
            "illegal weight specified\n",
            2,
        ),
        (
            "-a -t 198.18.0.1:80 -r 198.18.0.4 -y 5",
            "Numerical result out of range\n",
            255,
        ),
        (
            "-a -t 198.18.0.1:80 -r 198.18.0.4 -m --tun-port 1",
            "Tunnel options conflict with forward method\n",
            2,
        ),
        (
            "-a -t 198.18.0.1:80 -r 198.18.0.4 -i --tun-type gue",
            "You need to supply the 'tun-port' option for the 'gue' tunnel type\n",
            2,
        ),
        (
            "-d -t 198.18.0.1:80 -r 198.18.0.9",
            "No such destination\n",
            255,
        ),
        (
            "-a -t 198.18.0.1:80 -r 198.18.0.4 -s rr",
            "Illegal 'scheduler' option with the 'add-server' command\n",
            2,
        ),
        (
            "-L -c --stats",
            "options conflicts in the list command\n",
            2,
        ),
        (
            "-L -c -t 198.18.0.1:80",
            "The option 'service-address' conflicts with the 'connection' option in the 'list' command\n",
            2,
        ),
        ("-L -t 198.18.0.9:80", "No such service\n", 1),
        ("--stop-daemon master", "No daemon is running\n", 255),
        ("-n -L", TRY, 255),
    ];
    for (cmd, stderr, code) in cases {
        let (c, _out, err) = run_with(&fake, &words(cmd), "");
        assert_eq!((c, err.as_str()), (*code, *stderr), "ipvsadm {cmd}");
    }
    // The successful -a created a DR destination with the service port and weight 1.
    let f = fake.borrow();
    let svc = &f.services[0];
    assert_eq!(svc.dests.len(), 1);
    let d = &svc.dests[0].config;
    assert_eq!(d.method, ForwardMethod::Route);
    assert_eq!((d.port, d.weight), (80, 1));
}

#[test]
fn weight_range_is_int_max() {
    let fake = new_fake();
    assert_eq!(run_with(&fake, &words("-A -t 198.18.0.1:80"), "").0, 0);
    let (c, _, e) = run_with(
        &fake,
        &words("-a -t 198.18.0.1:80 -r 198.18.0.2 -w 70000"),
        "",
    );
    assert_eq!((c, e.as_str()), (0, ""));
    let (c, e) = {
        let r = run_with(
            &fake,
            &words("-a -t 198.18.0.1:80 -r 198.18.0.3 -w 2147483648"),
            "",
        );
        (r.0, r.2)
    };
    assert_eq!((c, e.as_str()), (2, "illegal weight specified\n"));
    let (c, _, e) = run_with(
        &fake,
        &words("-a -t 198.18.0.1:80 -r 198.18.0.3 -w abc"),
        "",
    );
    assert_eq!((c, e.as_str()), (2, "illegal weight specified\n"));
    let (_, out, _) = run_with(&fake, &words("-L -n"), "");
    assert!(out.contains("Route   70000  0"), "{out}");
}

#[test]
fn second_command_is_invalid_option() {
    assert_eq!(
        run(&words("-L -Z")),
        (2, String::new(), "invalid option `-Z'\n".into())
    );
    assert_eq!(
        run(&words("-LZ")),
        (2, String::new(), "invalid option `-LZ'\n".into())
    );
    assert_eq!(
        run(&words("-L --start-daemon master")),
        (2, String::new(), "invalid option `master'\n".into())
    );
}

#[test]
fn repeated_option() {
    assert_eq!(
        run(&words("-A -t 198.18.0.1:80 -s rr -s wlc")).2,
        "multiple 'scheduler' options specified\n"
    );
    assert_eq!(
        run(&words("-A -t 198.18.0.1:80 -f 1")).2,
        "multiple 'service-address' options specified\n"
    );
    assert_eq!(
        run(&words("-a -t 198.18.0.1:80 -r 198.18.0.2 -g -m")).2,
        "multiple 'forwarding-method' options specified\n"
    );
}

#[test]
fn ipv6_before_fwmark() {
    assert_eq!(
        run(&words("-A -6 -f 1")),
        (2, String::new(), "-6 used before -f\n\n".into())
    );
    assert_eq!(
        run(&words("-A -t 198.18.0.1:80 -6")),
        (2, String::new(), "-6 used before -f\n\n".into())
    );
    let fake = new_fake();
    assert_eq!(run_with(&fake, &words("-A -f 1 -6"), "").0, 0);
    let f = fake.borrow();
    assert_eq!(
        f.services[0].config.key,
        ServiceKey::Fwmark {
            af: rvs_api::Family::V6,
            mark: 1
        }
    );
    assert_eq!(f.services[0].config.netmask, 128);
}

#[test]
fn fwmark_max_is_listed_signed_and_not_restorable() {
    let fake = new_fake();
    assert_eq!(run_with(&fake, &words("-A -f 4294967295 -s rr"), "").0, 0);
    assert_eq!(
        run_with(&fake, &words("-A -t 198.18.0.1:80 -s rr"), "").0,
        0
    );
    assert_eq!(run_with(&fake, &words("-A -f 5 -s rr"), "").0, 0);
    let (c, out, _) = run_with(&fake, &words("-L -n"), "");
    assert_eq!(c, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[3], "FWM  -1 rr");
    assert_eq!(lines[4], "TCP  198.18.0.1:80 rr");
    assert_eq!(lines[5], "FWM  5 rr");
    let (_, save, _) = run_with(&fake, &words("-S -n"), "");
    assert_eq!(
        save,
        "-A -f -1 -s rr\n-A -t 198.18.0.1:80 -s rr\n-A -f 5 -s rr\n"
    );
    let (c, _, e) = run_with(&new_fake(), &["-R"], &save);
    assert_eq!(
        (c, e.as_str()),
        (2, "invalid fwmark value `-1' specified\n")
    );
    assert_eq!(
        run(&words("-A -f 0")).2,
        "invalid fwmark value `0' specified\n"
    );
    assert_eq!(
        run(&words("-A -f 4294967296")).2,
        "invalid fwmark value `4294967296' specified\n"
    );
}

#[test]
fn netmask_without_persistence_is_accepted() {
    let fake = new_fake();
    assert_eq!(
        run_with(&fake, &words("-A -t 198.18.0.1:80 -M 255.255.255.0"), ""),
        (0, String::new(), String::new())
    );
    // Not persistent: the mask is not shown.
    let (_, out, _) = run_with(&fake, &words("-L -n"), "");
    assert!(out.contains("TCP  198.18.0.1:80 wlc\n"), "{out}");
}

#[test]
fn persistent_default_is_360() {
    let fake = new_fake();
    assert_eq!(run_with(&fake, &words("-A -t 198.18.0.1:0 -p"), "").0, 0);
    let (_, out, _) = run_with(&fake, &words("-L -n"), "");
    assert!(
        out.contains("TCP  198.18.0.1:0 wlc persistent 360\n"),
        "{out}"
    );
}
