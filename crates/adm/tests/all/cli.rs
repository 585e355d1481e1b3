//! Parser tests: popt behaviour, address syntax, defaults, legality matrix.

use core::net::IpAddr;

use rvs_api::{
    DaemonConfig, DestConfig, Family, ForwardMethod, Protocol, ServiceConfig, ServiceKey,
    SyncState, Timeouts, TunnelCsum, TunnelType, svc_flags,
};
use rvsadm::cli::{CliError, Command, ListOpts, ListWhat, parse_with};

use crate::names;

fn p(cmdline: &str) -> Result<Command, CliError> {
    let mut argv = vec!["ipvsadm".to_owned()];
    argv.extend(cmdline.split_whitespace().map(str::to_owned));
    parse_with(&argv, &names(), false)
}

fn pv(args: &[&str]) -> Result<Command, CliError> {
    let mut argv = vec!["/usr/sbin/ipvsadm".to_owned()];
    argv.extend(args.iter().map(|s| (*s).to_owned()));
    parse_with(&argv, &names(), false)
}

fn err(cmdline: &str) -> (String, i32) {
    match p(cmdline) {
        Err(e) => (e.message, e.exit_code),
        Ok(c) => panic!("{cmdline}: expected an error, got {c:?}"),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn tcp(a: &str, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: ip(a),
        port,
    }
}

#[test]
fn bundled_short_options() {
    let Ok(Command::List(ListWhat::All, o)) = p("-Ln") else {
        panic!()
    };
    assert!(o.numeric);
    let Ok(Command::AddService(c)) = p("-At 198.18.0.1:80") else {
        panic!()
    };
    assert_eq!(c.key, tcp("198.18.0.1", 80));
    let Ok(Command::AddService(c)) = p("-At198.18.0.1:81 -srr") else {
        panic!()
    };
    assert_eq!((c.key, c.scheduler.as_str()), (tcp("198.18.0.1", 81), "rr"));
    let Ok(Command::AddService(c)) = p("-A -t=198.18.0.1:82") else {
        panic!()
    };
    assert_eq!(c.key, tcp("198.18.0.1", 82));
    let Ok(Command::List(ListWhat::Conns, o)) = p("-lcn") else {
        panic!()
    };
    assert!(o.numeric);
}

#[test]
fn long_options() {
    let Ok(Command::AddService(c)) =
        p("--add-service --tcp-service 198.18.0.1:80 --scheduler=rr --persistent=100")
    else {
        panic!()
    };
    assert_eq!(c.scheduler, "rr");
    assert_eq!((c.flags, c.timeout_secs), (svc_flags::PERSISTENT, 100));
    let Ok(Command::List(ListWhat::All, o)) = p("--list --numeric --stats --exact --nosort --sort")
    else {
        panic!()
    };
    assert!(o.numeric && o.stats && o.exact && o.nosort);
    // No abbreviations.
    assert_eq!(err("-L --num"), ("--num: unknown option".into(), 255));
}

#[test]
fn optional_persistent_value() {
    let c = |s: &str| match p(s) {
        Ok(Command::AddService(c)) => (c.flags & svc_flags::PERSISTENT != 0, c.timeout_secs),
        other => panic!("{s}: {other:?}"),
    };
    assert_eq!(c("-A -t 198.18.0.1:80 -p"), (true, 360));
    assert_eq!(c("-A -t 198.18.0.1:80 -p -s rr"), (true, 360));
    assert_eq!(c("-A -t 198.18.0.1:80 -p 100"), (true, 100));
    assert_eq!(c("-A -t 198.18.0.1:80 -p100"), (true, 100));
    assert_eq!(c("-A -p 2678400 -t 198.18.0.1:80"), (true, 2_678_400));
    assert_eq!(
        err("-A -t 198.18.0.1:80 -p 0"),
        ("invalid timeout value `0' specified".into(), 2)
    );
    assert_eq!(
        err("-A -t 198.18.0.1:80 -p 2678401"),
        ("invalid timeout value `2678401' specified".into(), 2)
    );
    // A word not starting with '-' is taken as the value.
    assert_eq!(
        err("-A -p foo -t 198.18.0.1:80"),
        ("invalid timeout value `foo' specified".into(), 2)
    );
}

#[test]
fn set_timeouts() {
    assert_eq!(
        p("--set 10 20 30"),
        Ok(Command::SetTimeouts(Timeouts {
            tcp: 10,
            tcp_fin: 20,
            udp: 30
        }))
    );
    assert_eq!(
        err("--set 10 20"),
        ("--set option requires 3 timeout values".into(), 2)
    );
    assert_eq!(
        err("--set 10 20 30 40"),
        ("unexpected argument 40".into(), 2)
    );
    assert_eq!(
        err("--set 10 x 30"),
        ("invalid timeout value `x' specified".into(), 2)
    );
    assert_eq!(
        err("--set 10 20 2678401"),
        ("invalid timeout value `2678401' specified".into(), 2)
    );
    assert_eq!(
        err("--set 1 2 3 -n"),
        ("Illegal 'numeric' option with the 'set' command".into(), 2)
    );
}

#[test]
fn stray_arguments() {
    assert_eq!(err("-L foo"), ("unexpected argument foo".into(), 2));
    assert_eq!(err("-C -- -n"), ("unexpected argument -n".into(), 2));
}

#[test]
fn popt_errors() {
    assert_eq!(err("-A -t"), ("-t: missing argument".into(), 255));
    assert_eq!(err("-L --bogus"), ("--bogus: unknown option".into(), 255));
    assert_eq!(err("-Lq"), ("-Lq: unknown option".into(), 255));
    assert_eq!(
        err("-L --numeric=1"),
        ("--numeric=1: option does not take an argument".into(), 255)
    );
    // Errors at the first option give the help hint.
    let hint = "Try `ipvsadm -h' or 'ipvsadm --help' for more information.";
    assert_eq!(err("--bogus -L"), (hint.into(), 255));
    assert_eq!(err("foo"), (hint.into(), 255));
    assert_eq!(err("-t 198.18.0.1:80 -A"), (hint.into(), 255));
    assert!(!p("-A -t").unwrap_err().fatal);
    assert!(p("-n -L").unwrap_err().fatal);
}

#[test]
fn program_name_is_basename() {
    let e = pv(&["-n"]).unwrap_err();
    assert_eq!(
        e.message,
        "Try `ipvsadm -h' or 'ipvsadm --help' for more information."
    );
}

#[test]
fn help_and_version() {
    assert_eq!(p("-h"), Ok(Command::Help));
    assert_eq!(p("--help -L"), Ok(Command::Help));
    assert_eq!(p("-v"), Ok(Command::Version));
    assert_eq!(p("--version"), Ok(Command::Version));
    assert_eq!(err("-L -h"), ("invalid option `-h'".into(), 2));
}

#[test]
fn address_syntax() {
    let key = |s: &str| match p(&format!("-D {s}")) {
        Ok(Command::DelService(k)) => k,
        other => panic!("{s}: {other:?}"),
    };
    assert_eq!(key("-t 198.18.0.1:80"), tcp("198.18.0.1", 80));
    assert_eq!(key("-t 198.18.1:80"), tcp("198.18.0.1", 80));
    assert_eq!(key("-t [2001:db8::1]:443"), tcp("2001:db8::1", 443));
    assert_eq!(key("-t 2001:db8::1"), tcp("2001:db8::1", 0));
    assert_eq!(key("-t lb:http"), tcp("198.18.0.1", 80));
    assert_eq!(key("-t lb.example.com:www"), tcp("198.18.0.1", 80));
    assert_eq!(key("-t localhost:https"), tcp("127.0.0.1", 443));
    assert_eq!(
        key("-u 198.18.0.1:domain"),
        ServiceKey::Addr {
            proto: Protocol::Udp,
            addr: ip("198.18.0.1"),
            port: 53
        }
    );
    assert_eq!(
        key("--sctp-service 198.18.0.1:5060"),
        ServiceKey::Addr {
            proto: Protocol::Sctp,
            addr: ip("198.18.0.1"),
            port: 5060
        }
    );
    assert_eq!(
        key("-f 7"),
        ServiceKey::Fwmark {
            af: Family::V4,
            mark: 7
        }
    );
    // A port after a bracketed IPv4 address is ignored, as in ipvsadm.
    assert_eq!(key("-t [198.18.0.1]:80"), tcp("198.18.0.1", 0));
    let bad = (
        "illegal virtual server address[:port] specified".to_owned(),
        2,
    );
    for s in [
        "-t 80",
        "-t [2001:db8::1]",
        "-t [2001:db8::1]80",
        "-t nosuchhost:80",
        "-t 198.18.0.1:65536",
        "-t 198.18.0.1:nosuchservice",
        "-u 198.18.0.1:https",
        "-t 198.18.0.1:",
        "-t ''",
    ] {
        assert_eq!(err(&format!("-D {s}")), bad, "{s}");
    }
    assert_eq!(
        err("-a -t 198.18.0.1:80 -r 1234"),
        ("illegal real server address[:port] specified".into(), 2)
    );
}

#[test]
fn service_defaults_and_full_replacement() {
    let Ok(Command::EditService(c)) = p("-E -t 198.18.0.1:80") else {
        panic!()
    };
    assert_eq!(c, ServiceConfig::new(tcp("198.18.0.1", 80)));
    assert_eq!(c.scheduler, "wlc");
    assert_eq!(c.netmask, u32::MAX);
    let Ok(Command::AddService(c)) =
        p("-A -t [2001:db8::1]:80 -p 60 -M 64 --pe sip -s sh -b sh-port,sh-fallback")
    else {
        panic!()
    };
    assert_eq!(c.netmask, 64);
    assert_eq!(c.pe.as_deref(), Some("sip"));
    assert_eq!(
        c.flags,
        svc_flags::PERSISTENT | svc_flags::SH_PORT | svc_flags::SH_FALLBACK
    );
    let Ok(Command::AddService(c)) = p("-A -t 198.18.0.1:80 -p -M 255.255.0.0") else {
        panic!()
    };
    assert_eq!(c.netmask, 0xffff_0000);
    // Scheduler names are truncated to 15 characters.
    let Ok(Command::AddService(c)) = p("-A -t 198.18.0.1:80 -s abcdefghijklmnopqrstuvwxyz") else {
        panic!()
    };
    assert_eq!(c.scheduler, "abcdefghijklmno");
    let Ok(Command::AddService(c)) = p("-A -u 198.18.0.1:53 -o -b flag-1,flag-3") else {
        panic!()
    };
    assert_eq!(
        c.flags,
        svc_flags::ONEPACKET | svc_flags::SCHED1 | svc_flags::SCHED3
    );
    // -b is applied after every option, so the scheduler may follow it.
    assert!(p("-A -t 198.18.0.1:80 -b mh-port -s mh").is_ok());
}

#[test]
fn service_errors() {
    assert_eq!(
        err("-A -t 198.18.0.1:80 -o"),
        (
            "One-Packet Scheduling is only for UDP virtual services".into(),
            2
        )
    );
    assert!(p("-A -f 1 -o").is_ok());
    assert_eq!(
        err("-A -t 198.18.0.1:80 -b foo"),
        ("invalid scheduler flag `foo'".into(), 2)
    );
    assert_eq!(
        err("-A -t 198.18.0.1:80 -s sh -b mh-port"),
        ("incompatible scheduler flag `mh-port'".into(), 2)
    );
    assert_eq!(
        err("-A -t 198.18.0.1:80 -M 1.2.3.4.5"),
        ("illegal virtual server persistent mask specified".into(), 2)
    );
    assert_eq!(
        err("-A -t [::1]:80 -M 129"),
        ("illegal ipv6 netmask specified".into(), 2)
    );
    assert_eq!(
        err("-A -t [::1]:80 -M 255.255.255.0"),
        ("illegal ipv6 netmask specified".into(), 2)
    );
    assert_eq!(
        err("-A -s rr"),
        (
            "You need to supply the 'service-address' option for the 'add-service' command".into(),
            2
        )
    );
    assert_eq!(
        err("-A -t 198.18.0.1:80 -n"),
        (
            "Illegal 'numeric' option with the 'add-service' command".into(),
            2
        )
    );
}

#[test]
fn real_server_port_rules() {
    let dest = |s: &str| match p(s) {
        Ok(Command::AddDest(_, d) | Command::EditDest(_, d)) => d,
        other => panic!("{s}: {other:?}"),
    };
    // No port: the service port is copied.
    assert_eq!(dest("-a -t 198.18.0.1:80 -r 198.18.0.2 -m").port, 80);
    // -r before -t: nothing to copy yet.
    assert_eq!(dest("-a -r 198.18.0.2 -m -t 198.18.0.1:80").port, 0);
    // NAT keeps the given port.
    assert_eq!(dest("-a -t 198.18.0.1:80 -r 198.18.0.2:8080 -m").port, 8080);
    // DR and TUN force the service port.
    assert_eq!(dest("-a -t 198.18.0.1:80 -r 198.18.0.2:8080").port, 80);
    assert_eq!(dest("-e -t 198.18.0.1:80 -r 198.18.0.2:8080 -i").port, 80);
    // ...but not for fwmark services.
    assert_eq!(dest("-a -f 1 -r 198.18.0.2:8080 -g").port, 8080);
    // Full replacement defaults for -e.
    assert_eq!(
        dest("-e -t 198.18.0.1:80 -r 198.18.0.2"),
        DestConfig::new(ip("198.18.0.2"), 80)
    );
    // Delete keeps the given port whatever the method.
    assert_eq!(
        p("-d -t 198.18.0.1:80 -r 198.18.0.2:8080"),
        Ok(Command::DelDest(
            tcp("198.18.0.1", 80),
            ip("198.18.0.2"),
            8080
        ))
    );
    // Service names for the real server port use the service protocol.
    assert_eq!(dest("-a -t 198.18.0.1:80 -r rs1:https -m").port, 443);
}

#[test]
fn dest_options() {
    let Ok(Command::AddDest(_, d)) = p(
        "-a -t 198.18.0.1:80 -r 198.18.0.2 -i --tun-type gue --tun-port 6080 --tun-remcsum -w 5 -x 100 -y 50",
    ) else {
        panic!()
    };
    assert_eq!(d.method, ForwardMethod::Tunnel);
    assert_eq!(
        (d.tun_type, d.tun_port, d.tun_flags),
        (TunnelType::Gue, 6080, TunnelCsum::RemCsum)
    );
    assert_eq!((d.weight, d.u_threshold, d.l_threshold), (5, 100, 50));
    let Ok(Command::AddDest(_, d)) =
        p("-a -t 198.18.0.1:80 -r 198.18.0.2 -i --tun-type gre --tun-csum")
    else {
        panic!()
    };
    assert_eq!(
        (d.tun_type, d.tun_flags),
        (TunnelType::Gre, TunnelCsum::Csum)
    );
    // Mixed families only when tunnelling.
    assert!(p("-a -t 198.18.0.1:80 -r [2001:db8::2]:80 -i").is_ok());
    assert_eq!(
        err("-a -t 198.18.0.1:80 -r [2001:db8::2]:80 -m"),
        (
            "Different address family is allowed only for tunneling servers".into(),
            2
        )
    );
    assert_eq!(
        err("-a -t 198.18.0.1:80 -r 198.18.0.2 -i --tun-type gre --tun-remcsum"),
        (
            "Illegal 'tun-remcsum' option with the 'gre' tunnel type".into(),
            2
        )
    );
    assert_eq!(
        err(
            "-a -t 198.18.0.1:80 -r 198.18.0.2 -i --tun-type gue --tun-port 1 --tun-csum --tun-nocsum"
        ),
        (
            "The option 'tun-csum' conflicts with the 'tun-nocsum' option in the 'gue' tunnel type"
                .into(),
            2
        )
    );
    assert_eq!(
        err("-a -t 198.18.0.1:80 -r 198.18.0.2 -i --tun-port 1"),
        (
            "Illegal 'tun-port' option with the 'ipip' tunnel type".into(),
            2
        )
    );
    assert_eq!(
        err("-a -t 198.18.0.1:80 -r 198.18.0.2 -i --tun-type vxlan"),
        ("illegal tunnel type specified".into(), 2)
    );
    assert_eq!(
        err("-a -t 198.18.0.1:80 -r 198.18.0.2 -i --tun-type gue --tun-port 0"),
        ("illegal tunnel port specified".into(), 2)
    );
    assert_eq!(
        err("-a -t 198.18.0.1:80 -r 198.18.0.2 -x -1"),
        ("illegal u_threshold specified".into(), 2)
    );
    assert_eq!(
        err("-a -t 198.18.0.1:80 -r 198.18.0.2 -y 2147483648"),
        ("illegal l_threshold specified".into(), 2)
    );
    assert_eq!(
        err("-a -t 198.18.0.1:80 -s rr"),
        (
            "Illegal 'scheduler' option with the 'add-server' command".into(),
            2
        )
    );
    assert_eq!(
        err("-a -t 198.18.0.1:80"),
        (
            "You need to supply the 'real-server' option for the 'add-server' command".into(),
            2
        )
    );
}

#[test]
fn daemon_options() {
    assert_eq!(
        p("--start-daemon master"),
        Ok(Command::StartDaemon(DaemonConfig {
            state: SyncState::Master,
            mcast_ifn: "eth0".into(),
            syncid: 0,
            sync_maxlen: None,
            mcast_group: None,
            mcast_port: None,
            mcast_ttl: None,
        }))
    );
    assert_eq!(
        p(
            "--start-daemon=backup --mcast-interface veth0 --syncid 7 --sync-maxlen 1400 --mcast-group 239.1.2.3 --mcast-port 9000 --mcast-ttl 2"
        ),
        Ok(Command::StartDaemon(DaemonConfig {
            state: SyncState::Backup,
            mcast_ifn: "veth0".into(),
            syncid: 7,
            sync_maxlen: Some(1400),
            mcast_group: Some(ip("239.1.2.3")),
            mcast_port: Some(9000),
            mcast_ttl: Some(2),
        }))
    );
    let Ok(Command::StartDaemon(d)) = p("--start-daemon master --mcast-group ff02::1") else {
        panic!()
    };
    assert_eq!(d.mcast_group, Some(ip("ff02::1")));
    for (args, msg) in [
        (
            "--start-daemon primary",
            "illegal start-daemon parameter specified",
        ),
        ("--stop-daemon primary", "illegal start_daemon specified"),
        (
            "--start-daemon master --syncid 256",
            "illegal syncid specified",
        ),
        (
            "--start-daemon master --sync-maxlen 65508",
            "illegal sync-maxlen specified",
        ),
        (
            "--start-daemon master --sync-maxlen 0",
            "illegal sync-maxlen specified",
        ),
        (
            "--start-daemon master --mcast-port 0",
            "illegal mcast-port specified",
        ),
        (
            "--start-daemon master --mcast-ttl 256",
            "illegal mcast-ttl specified",
        ),
        (
            "--start-daemon master --mcast-group 198.18.0.1",
            "invalid IPv4 mcast-group `198.18.0.1'",
        ),
        (
            "--start-daemon master --mcast-group 2001:db8::1",
            "invalid IPv6 mcast-group `2001:db8::1'",
        ),
        (
            "--stop-daemon master --mcast-ttl 1",
            "Illegal 'mcast-ttl' option with the 'stop-daemon' command",
        ),
    ] {
        assert_eq!(err(args), (msg.to_owned(), 2), "{args}");
    }
    assert_eq!(
        p("--stop-daemon backup --syncid 3"),
        Ok(Command::StopDaemon(SyncState::Backup))
    );
    // Interface names are cut to 15 bytes like ipvsadm's strncpy.
    let Ok(Command::StartDaemon(d)) =
        p("--start-daemon master --mcast-interface abcdefghijklmnopq")
    else {
        panic!()
    };
    assert_eq!(d.mcast_ifn, "abcdefghijklmno");
}

#[test]
fn list_variants() {
    let o = ListOpts::default();
    assert_eq!(
        p("-L -t 198.18.0.1:80"),
        Ok(Command::List(ListWhat::Service(tcp("198.18.0.1", 80)), o))
    );
    assert_eq!(p("-L --timeout"), Ok(Command::List(ListWhat::Timeouts, o)));
    assert_eq!(p("-L --daemon"), Ok(Command::List(ListWhat::Daemons, o)));
    assert_eq!(p("-L --stats --rate").map(|_| ()), Ok(()));
    for bad in [
        "-L -c --rate",
        "-L --timeout --thresholds",
        "-L --daemon --persistent-conn",
        "-L --timeout --persistent-conn",
    ] {
        assert_eq!(
            err(bad),
            ("options conflicts in the list command".into(), 2),
            "{bad}"
        );
    }
    assert!(p("-L -c --persistent-conn").is_ok());
    assert_eq!(
        err("-L --timeout --daemon"),
        (
            "The option 'daemon' conflicts with the 'timeout' option in the 'list' command".into(),
            2
        )
    );
    assert_eq!(p("-S -n"), Ok(Command::Save { numeric: true }));
    assert_eq!(p("-Z"), Ok(Command::Zero(None)));
    assert_eq!(
        p("-Z -t 198.18.0.1:80"),
        Ok(Command::Zero(Some(tcp("198.18.0.1", 80))))
    );
    assert_eq!(p("-C"), Ok(Command::Flush));
    assert_eq!(p("-R"), Ok(Command::Restore));
    let Ok(Command::List(_, o)) = p("-L --json") else {
        panic!()
    };
    assert!(o.json);
    assert_eq!(
        err("-S --json"),
        ("Illegal 'json' option with the 'save' command".into(), 2)
    );
}

/// Spec 2.4 written out independently: for every command, the options it allows.
#[test]
fn legality_matrix() {
    // (command words, command name, extra args making it otherwise valid)
    let commands: &[(&str, &str, &str)] = &[
        ("-A", "add-service", "-t 198.18.0.1:80"),
        ("-E", "edit-service", "-t 198.18.0.1:80"),
        ("-D", "delete-service", "-t 198.18.0.1:80"),
        ("-C", "flush", ""),
        ("-L", "list", ""),
        ("-a", "add-server", "-t 198.18.0.1:80 -r 198.18.0.2"),
        ("-d", "delete-server", "-t 198.18.0.1:80 -r 198.18.0.2"),
        ("-e", "edit-server", "-t 198.18.0.1:80 -r 198.18.0.2"),
        ("--set", "set", "1 2 3"),
        ("--start-daemon master", "start-daemon", ""),
        ("--stop-daemon master", "stop-daemon", ""),
        ("-R", "restore", ""),
        ("-S", "save", ""),
        ("-Z", "zero", ""),
    ];
    // (option text, option name)
    let options: &[(&str, &str)] = &[
        ("-n", "numeric"),
        ("-s rr", "scheduler"),
        ("-p 10", "persistent"),
        ("-M 255.255.255.0", "netmask"),
        ("-m", "forwarding-method"),
        ("-w 2", "weight"),
        ("-x 10", "u-threshold"),
        ("-y 0", "l-threshold"),
        ("--mcast-interface eth1", "mcast-interface"),
        ("--stats", "stats"),
        ("--rate", "rate"),
        ("--thresholds", "thresholds"),
        ("--persistent-conn", "persistent-conn"),
        ("--nosort", "nosort"),
        ("--syncid 1", "syncid"),
        ("--exact", "exact"),
        ("--pe sip", "pe"),
        ("-b flag-1", "sched-flags"),
        ("--mcast-group 224.0.0.82", "mcast-group"),
        ("--mcast-port 1000", "mcast-port"),
        ("--mcast-ttl 3", "mcast-ttl"),
        ("--sync-maxlen 1000", "sync-maxlen"),
        ("--tun-info", "tun-info"),
        ("--json", "json"),
    ];
    let allowed: &[(&str, &[&str])] = &[
        (
            "add-service",
            &["scheduler", "persistent", "netmask", "pe", "sched-flags"],
        ),
        (
            "edit-service",
            &["scheduler", "persistent", "netmask", "pe", "sched-flags"],
        ),
        ("delete-service", &[]),
        ("flush", &[]),
        (
            "list",
            &[
                "numeric",
                "stats",
                "rate",
                "thresholds",
                "persistent-conn",
                "nosort",
                "exact",
                "tun-info",
                "syncid",
                "json",
            ],
        ),
        (
            "add-server",
            &["forwarding-method", "weight", "u-threshold", "l-threshold"],
        ),
        ("delete-server", &[]),
        (
            "edit-server",
            &["forwarding-method", "weight", "u-threshold", "l-threshold"],
        ),
        ("set", &[]),
        (
            "start-daemon",
            &[
                "mcast-interface",
                "syncid",
                "mcast-group",
                "mcast-port",
                "mcast-ttl",
                "sync-maxlen",
            ],
        ),
        ("stop-daemon", &["syncid"]),
        ("restore", &[]),
        ("save", &["numeric"]),
        ("zero", &[]),
    ];
    for (cmd, cname, extra) in commands {
        let ok: &[&str] = allowed.iter().find(|(n, _)| n == cname).unwrap().1;
        for (opt, oname) in options {
            let line = format!("{cmd} {extra} {opt}");
            let res = p(&line);
            let illegal = format!("Illegal '{oname}' option with the '{cname}' command");
            if ok.contains(oname) {
                if let Err(e) = &res {
                    assert_ne!(e.message, illegal, "{line}");
                }
            } else {
                assert_eq!(
                    res.map(|_| ()).map_err(|e| e.message),
                    Err(illegal),
                    "{line}"
                );
            }
        }
    }
}
