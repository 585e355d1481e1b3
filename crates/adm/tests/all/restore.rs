//! `-R` semantics, batching, and the whole-program paths (connect failure, -h).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use rvs_api::{ClientError, Request, Response};
use rvsadm::names::Names;
use rvsadm::run::{Backend, main_with};

use crate::{Fake, Shared, new_fake, run_with, words};

const TRY: &str = "Try `ipvsadm -h' or 'ipvsadm --help' for more information.\n";

#[test]
fn restore_applies_lines_and_drops_ipvsadm_tokens() {
    let fake = new_fake();
    let input = "ipvsadm -A -t 198.18.0.1:80 -s rr\n\n   \n-a -t 198.18.0.1:80 -r 198.18.0.2:80 -m\nipvsadm\t-a -t 198.18.0.1:80 -r 198.18.0.3:80 -m -w 2\r\n-A -u 198.18.0.1:53";
    let (c, out, err) = run_with(&fake, &["-R"], input);
    assert_eq!((c, out.as_str(), err.as_str()), (0, "", ""));
    let f = fake.borrow();
    assert_eq!(f.services.len(), 2);
    assert_eq!(f.services[0].dests.len(), 2);
    // Everything went in one batch (plus GetInfo at start-up).
    assert_eq!(f.calls, 2);
}

#[test]
fn comment_line_aborts_with_help_hint() {
    let fake = new_fake();
    let input = "-A -t 198.18.0.1:80\n# a comment\n-A -t 198.18.0.2:80\n";
    let (c, _, err) = run_with(&fake, &["-R"], input);
    assert_eq!((c, err.as_str()), (255, TRY));
    let f = fake.borrow();
    assert_eq!(f.services.len(), 1, "lines before the comment stay applied");
}

#[test]
fn validation_error_stops_restore() {
    let fake = new_fake();
    let input = "-A -t 198.18.0.1:80\n-A -t 198.18.0.1:80\n-A -t 198.18.0.2\n-A -t 198.18.0.3:80\n";
    let (c, _, err) = run_with(&fake, &["-R"], input);
    assert_eq!(
        (c, err.as_str()),
        (
            2,
            "Service already exists\nZero port specified for non-persistent service\n"
        )
    );
    assert_eq!(fake.borrow().services.len(), 1);
}

#[test]
fn server_errors_continue_and_last_line_decides() {
    let fake = new_fake();
    let input =
        "-A -t 198.18.0.1:80\n-A -t 198.18.0.1:80\n-E -t 198.18.0.9:80\n-A -t 198.18.0.2:80\n";
    let (c, _, err) = run_with(&fake, &["-R"], input);
    assert_eq!(
        (c, err.as_str()),
        (0, "Service already exists\nNo such service\n")
    );
    assert_eq!(fake.borrow().services.len(), 2);

    let fake = new_fake();
    let input = "-A -t 198.18.0.1:80\n-a -t 198.18.0.1:80 -r 198.18.0.2\n-d -t 198.18.0.1:80 -r 198.18.0.9\n";
    let (c, _, err) = run_with(&fake, &["-R"], input);
    assert_eq!((c, err.as_str()), (255, "No such destination\n"));
}

#[test]
fn popt_error_line_continues() {
    let fake = new_fake();
    let input = "-A -t\n-A -t 198.18.0.1:80\n";
    let (c, _, err) = run_with(&fake, &["-R"], input);
    assert_eq!((c, err.as_str()), (0, "-t: missing argument\n"));
    assert_eq!(fake.borrow().services.len(), 1);
    let (c, _, _) = run_with(&new_fake(), &["-R"], "-A -t 198.18.0.1:80\n-A -t\n");
    assert_eq!(c, 255);
}

#[test]
fn nested_restore_is_refused() {
    let fake = new_fake();
    let (c, _, err) = run_with(&fake, &["-R"], "-A -t 198.18.0.1:80\n-R\n-C\n");
    assert_eq!((c, err.as_str()), (255, TRY));
    assert_eq!(fake.borrow().services.len(), 1);
}

#[test]
fn listing_inside_restore_sees_earlier_lines() {
    let fake = new_fake();
    let input = "-A -t 198.18.0.1:80 -s rr\n-L -n\n-S -n\n-A -t 198.18.0.2:80\n";
    let (c, out, err) = run_with(&fake, &["-R"], input);
    assert_eq!((c, err.as_str()), (0, ""));
    assert_eq!(
        out,
        concat!(
            "IP Virtual Server version 1.2.1 (size=4096)\n",
            "Prot LocalAddress:Port Scheduler Flags\n",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
            "TCP  198.18.0.1:80 rr\n",
            "-A -t 198.18.0.1:80 -s rr\n",
        )
    );
    // A failing listing ends the restore with status 1.
    let (c, _, err) = run_with(
        &new_fake(),
        &["-R"],
        "-L -t 198.18.0.1:80\n-A -t 198.18.0.1:80\n",
    );
    assert_eq!((c, err.as_str()), (1, "No such service\n"));
}

#[test]
fn invalid_operation_is_reported_per_line_not_per_batch() {
    // A multicast real server is refused (EINVAL) without sinking its batch.
    let fake = new_fake();
    let input = "-A -t 198.18.0.1:80\n-a -t 198.18.0.1:80 -r 224.0.0.1\n-a -t 198.18.0.1:80 -r 198.18.0.2\n";
    let (c, _, err) = run_with(&fake, &["-R"], input);
    assert_eq!(
        (c, err.as_str()),
        (
            0,
            "Invalid operation.  Possibly wrong module version, address not unicast, ...\n"
        )
    );
    assert_eq!(fake.borrow().services[0].dests.len(), 1);
}

#[test]
fn save_then_restore_round_trip() {
    let fake = new_fake();
    let setup = concat!(
        "-A -t 198.18.0.1:80 -s rr\n",
        "-a -t 198.18.0.1:80 -r 198.18.0.2:80 -m -w 1\n",
        "-a -t 198.18.0.1:80 -r 198.18.0.3:8080 -m -w 2\n",
        "-A -t 198.18.0.1:443 -s wlc -p 360 -M 255.255.255.0\n",
        "-a -t 198.18.0.1:443 -r 198.18.1.10:443 -g -w 1\n",
        "-A -u 198.18.0.1:53 -s sh -b sh-fallback,sh-port\n",
        "-a -u 198.18.0.1:53 -r 198.18.2.5:53 -i -w 1 --tun-type gue --tun-port 6080 --tun-remcsum\n",
        "-A -f 1 -6 -s rr\n",
        "-a -f 1 -6 -r [2001:db8::1]:0 -m -w 1\n",
    );
    assert_eq!(run_with(&fake, &["-R"], setup).0, 0);
    let (_, saved, _) = run_with(&fake, &words("-S -n"), "");
    let copy = new_fake();
    assert_eq!(
        run_with(&copy, &["-R"], &saved),
        (0, String::new(), String::new())
    );
    let (_, saved2, _) = run_with(&copy, &words("-S -n"), "");
    assert_eq!(saved, saved2);
    assert_eq!(saved.lines().count(), 9);
}

#[test]
fn large_restore_is_batched() {
    // 10,000 services x 10 destinations = 110,000 operations.
    let mut input = String::with_capacity(6_000_000);
    for s in 0..10_000u32 {
        let vip = format!("10.{}.{}.1", s / 256, s % 256);
        input.push_str(&format!("-A -t {vip}:80 -s rr\n"));
        for d in 0..10 {
            input.push_str(&format!(
                "-a -t {vip}:80 -r 172.16.{}.{}:80 -m -w 1\n",
                s % 250,
                d + 1
            ));
        }
    }
    let mut fake = Fake::new();
    fake.codec = std::env::var_os("RVS_TEST_CODEC").is_some();
    let fake = Rc::new(RefCell::new(fake));
    let start = Instant::now();
    let (c, _, err) = run_with(&fake, &["-R"], &input);
    let elapsed = start.elapsed();
    assert_eq!((c, err.as_str()), (0, ""));
    let f = fake.borrow();
    assert_eq!(f.ops, 110_001);
    assert!(
        f.calls <= 2 + 110_000 / rvsadm::run::RESTORE_BATCH,
        "{} round trips",
        f.calls
    );
    eprintln!(
        "restore of 110000 operations: {elapsed:?} ({} round trips)",
        f.calls
    );
}

struct Unreachable;

impl Backend for Unreachable {
    fn call(&mut self, _req: &Request) -> Result<Response, ClientError> {
        unreachable!()
    }
}

fn run_unreachable(args: &[&str]) -> (i32, String, String) {
    let argv: Vec<String> = std::iter::once("ipvsadm")
        .chain(args.iter().copied())
        .map(String::from)
        .collect();
    let mut connect = || -> Result<Box<dyn Backend>, ClientError> {
        let _ = Unreachable;
        Err(ClientError::Connect {
            socket: "@rvsd".into(),
            source: std::io::Error::from_raw_os_error(111),
        })
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = main_with(
        &argv,
        &mut connect,
        &mut &b""[..],
        false,
        &mut out,
        &mut err,
        &Names::empty(),
    );
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[test]
fn daemon_unreachable() {
    let expect = "Can't initialize ipvs: rvsd is not running (no socket @rvsd): Connection refused\nAre you sure that IP Virtual Server is built in the kernel or as module?\n";
    for args in [
        &[][..],
        &["-L", "-n"],
        &["-n", "-L"],
        &["-A", "-t", "198.18.0.1"],
    ] {
        let (c, out, err) = run_unreachable(args);
        assert_eq!((c, out.as_str(), err.as_str()), (2, "", expect), "{args:?}");
    }
    // -h and -v need no daemon.
    let (c, out, _) = run_unreachable(&["-h"]);
    assert_eq!(c, 0);
    assert!(out.starts_with("ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\nUsage:\n  ipvsadm -A|E virtual-service"));
    assert!(out.contains(
        "  --sched-flags  -b flags             scheduler flags (comma-separated)\nDaemon Options:\n"
    ));
    assert!(out.contains("--json"));
    assert_eq!(
        run_unreachable(&["-v"]),
        (
            0,
            "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n".into(),
            String::new()
        )
    );
}

#[test]
fn bare_invocation_lists_with_names() {
    let fake = new_fake();
    assert_eq!(
        run_with(&fake, &words("-A -t 198.18.0.1:80 -s rr"), "").0,
        0
    );
    let (c, out, _) = run_with(&fake, &[], "");
    assert_eq!(c, 0);
    assert!(out.ends_with("TCP  lb.example.com:http rr\n"), "{out}");
}

#[test]
fn misc_commands() {
    let fake = new_fake();
    for cmd in [
        "-A -t 198.18.0.1:80",
        "--set 100 0 200",
        "--start-daemon master",
        "--start-daemon backup --mcast-interface eth1 --syncid 3",
        "-Z",
        "-Z -t 198.18.0.1:80",
    ] {
        assert_eq!(
            run_with(&fake, &words(cmd), ""),
            (0, String::new(), String::new()),
            "{cmd}"
        );
    }
    assert_eq!(
        run_with(&fake, &words("-L --timeout"), "").1,
        "Timeout (tcp tcpfin udp): 100 120 200\n"
    );
    assert_eq!(
        run_with(&fake, &words("-L --daemon"), "").1,
        "master sync daemon (mcast=eth0, syncid=0)\nbackup sync daemon (mcast=eth1, syncid=3)\n"
    );
    assert_eq!(
        run_with(&fake, &words("--start-daemon master"), "").2,
        "Daemon has already run\n"
    );
    assert_eq!(
        run_with(&fake, &words("-Z -t 198.18.0.2:80"), ""),
        (255, String::new(), "No such service\n".into())
    );
    assert_eq!(run_with(&fake, &words("--stop-daemon master"), "").0, 0);
    assert_eq!(run_with(&fake, &words("-D -t 198.18.0.1:80"), "").0, 0);
    assert_eq!(
        run_with(&fake, &words("-D -t 198.18.0.1:80"), "").2,
        "No such service\n"
    );
    assert_eq!(run_with(&fake, &words("-C"), "").0, 0);
    let (c, out, _) = run_with(&fake, &words("-L -c -n"), "");
    assert_eq!(
        (c, out.as_str()),
        (
            0,
            "IPVS connection entries\npro expire state       source             virtual            destination\n"
        )
    );
}

#[test]
fn shared_backend_is_usable() {
    let fake = new_fake();
    let mut s = Shared(Rc::clone(&fake));
    assert_eq!(s.call(&Request::Flush).unwrap(), Response::Ok);
}
