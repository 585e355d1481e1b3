//! Byte-exact listing formats. The `golden/*.txt` files are the examples of spec
//! sections 3.1-3.7, copied verbatim (trailing spaces included).
//!
//! The addresses here are the spec's own (10.0.0.0/8, 192.168.5.0/24): they are listing text fed
//! to the formatters, never sent anywhere. Keeping them keeps the golden files identical to
//! the spec and keeps the sorting-quirk cases (10.x sorts after 200.x) meaningful.

use core::net::IpAddr;

use rvs_api::{
    ConnEntry, DaemonConfig, DestConfig, DestEntry, Family, ForwardMethod, Info, Protocol, Rates,
    ServiceConfig, ServiceEntry, ServiceKey, Stats, SyncState, Timeouts, TunnelCsum, TunnelType,
    svc_flags,
};
use rvsadm::cli::ListOpts;
use rvsadm::format::{
    format_conns, format_daemons, format_list, format_one_service, format_save, format_services,
    format_timeouts, largenum,
};
use rvsadm::names::Names;

use crate::names;

fn golden(name: &str) -> String {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn svc(proto: Protocol, addr: &str, port: u16, sched: &str) -> ServiceConfig {
    let mut c = ServiceConfig::new(ServiceKey::Addr {
        proto,
        addr: ip(addr),
        port,
    });
    c.scheduler = sched.to_owned();
    c
}

fn dest(
    addr: &str,
    port: u16,
    method: ForwardMethod,
    weight: i32,
    active: u32,
    inactive: u32,
) -> DestEntry {
    let mut config = DestConfig::new(ip(addr), port);
    config.method = method;
    config.weight = weight;
    DestEntry {
        config,
        active,
        inactive,
        persist: 0,
        stats: Stats::default(),
        rates: Rates::default(),
    }
}

fn entry(config: ServiceConfig, mut dests: Vec<DestEntry>) -> ServiceEntry {
    // Kernel order is newest first: reverse the "added in this order" list.
    dests.reverse();
    ServiceEntry {
        config,
        stats: Stats::default(),
        rates: Rates::default(),
        dests,
    }
}

/// The table of the spec 3.1 / 3.7 examples, in a scrambled kernel order.
fn example_table() -> Vec<ServiceEntry> {
    use ForwardMethod::{Masq, Route, Tunnel};
    let mut https = svc(Protocol::Tcp, "10.0.0.1", 443, "wlc");
    https.flags = svc_flags::PERSISTENT;
    https.timeout_secs = 360;
    https.netmask = 0xffff_ff00;
    let mut dns = svc(Protocol::Udp, "10.0.0.1", 53, "sh");
    dns.flags = svc_flags::SH_FALLBACK | svc_flags::SH_PORT;
    let mut fwm = ServiceConfig::new(ServiceKey::Fwmark {
        af: Family::V4,
        mark: 1,
    });
    fwm.scheduler = "rr".into();
    vec![
        entry(fwm, vec![dest("10.0.4.1", 0, Masq, 1, 0, 0)]),
        entry(
            svc(Protocol::Tcp, "2001:db8::80", 80, "rr"),
            vec![dest("2001:db8::a0a0", 80, Masq, 1, 0, 0)],
        ),
        entry(dns, vec![dest("10.0.2.5", 53, Tunnel, 1, 0, 9)]),
        entry(
            https,
            vec![
                dest("10.0.1.11", 443, Route, 0, 1, 2),
                dest("10.0.1.10", 443, Route, 1, 4, 0),
            ],
        ),
        entry(
            svc(Protocol::Tcp, "10.0.0.1", 80, "rr"),
            vec![
                dest("10.0.0.3", 8080, Masq, 2, 25, 7),
                dest("10.0.0.2", 80, Masq, 1, 12, 3),
            ],
        ),
    ]
}

fn numeric() -> ListOpts {
    ListOpts {
        numeric: true,
        ..ListOpts::default()
    }
}

#[test]
fn list_numeric_3_1() {
    let out = format_list(
        &example_table(),
        &Info::default(),
        &numeric(),
        &Names::empty(),
    );
    assert_eq!(out, golden("list_n.txt"));
}

#[test]
fn save_3_7() {
    // The spec's -S example leaves out the IPv6 service of the 3.1 example.
    let mut t = example_table();
    t.retain(|s| s.config.key.family() == Family::V4);
    let out = format_save(&t, true, &Names::empty());
    assert_eq!(out, golden("save.txt"));
}

fn stats_table() -> Vec<ServiceEntry> {
    let mut e = entry(
        svc(Protocol::Tcp, "10.0.0.1", 80, "rr"),
        vec![dest("10.0.0.2", 80, ForwardMethod::Masq, 1, 0, 0)],
    );
    e.stats = Stats {
        conns: 360,
        inpkts: 10200,
        outpkts: 9300,
        inbytes: 630_000,
        outbytes: 11_700_000,
    };
    e.rates = Rates {
        cps: 3,
        inpps: 85,
        outpps: 80,
        inbps: 5200,
        outbps: 98000,
    };
    e.dests[0].stats = Stats {
        conns: 120,
        inpkts: 3400,
        outpkts: 3100,
        inbytes: 210_000,
        outbytes: 3_900_000,
    };
    e.dests[0].rates = Rates {
        cps: 1,
        inpps: 28,
        outpps: 26,
        inbps: 1730,
        outbps: 32600,
    };
    vec![e]
}

#[test]
fn stats_3_2() {
    let opts = ListOpts {
        stats: true,
        ..numeric()
    };
    let out = format_list(&stats_table(), &Info::default(), &opts, &Names::empty());
    assert_eq!(out, golden("stats.txt"));
    // --stats wins over --rate.
    let both = ListOpts { rate: true, ..opts };
    assert_eq!(
        format_list(&stats_table(), &Info::default(), &both, &Names::empty()),
        golden("stats.txt")
    );
}

#[test]
fn rate_3_2() {
    let opts = ListOpts {
        rate: true,
        ..numeric()
    };
    let out = format_services(&stats_table(), &opts, &Names::empty());
    assert_eq!(out, golden("rate.txt"));
}

#[test]
fn thresholds_3_3() {
    let mut t = entry(
        svc(Protocol::Tcp, "10.0.0.1", 80, "rr"),
        vec![dest("10.0.0.2", 80, ForwardMethod::Masq, 1, 12, 3)],
    );
    t.dests[0].config.u_threshold = 100;
    t.dests[0].config.l_threshold = 50;
    let opts = ListOpts {
        thresholds: true,
        ..numeric()
    };
    assert_eq!(
        format_services(&[t], &opts, &Names::empty()),
        golden("thresholds.txt")
    );
}

#[test]
fn persistent_conn_and_tun_info_3_3() {
    let mut e = entry(
        svc(Protocol::Tcp, "10.0.0.1", 80, "rr"),
        vec![
            dest("10.0.0.2", 80, ForwardMethod::Masq, 3, 12, 3),
            dest("10.0.0.3", 80, ForwardMethod::Tunnel, 1, 0, 0),
            dest("10.0.0.4", 80, ForwardMethod::Tunnel, 1, 0, 0),
            dest("10.0.0.5", 80, ForwardMethod::Tunnel, 1, 0, 0),
        ],
    );
    // Newest first: [5, 4, 3, 2].
    e.dests[3].persist = 7;
    e.dests[1].config.tun_type = TunnelType::Gue;
    e.dests[1].config.tun_port = 6080;
    e.dests[1].config.tun_flags = TunnelCsum::RemCsum;
    e.dests[0].config.tun_type = TunnelType::Gre;
    e.dests[0].config.tun_flags = TunnelCsum::Csum;
    let pc = ListOpts {
        persistent_conn: true,
        ..numeric()
    };
    assert_eq!(
        format_services(core::slice::from_ref(&e), &pc, &Names::empty()),
        concat!(
            "Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn \n",
            "  -> RemoteAddress:Port\n",
            "TCP  10.0.0.1:80 rr\n",
            "  -> 10.0.0.2:80                  3         7           12         3         \n",
            "  -> 10.0.0.3:80                  1         0           0          0         \n",
            "  -> 10.0.0.4:80                  1         0           0          0         \n",
            "  -> 10.0.0.5:80                  1         0           0          0         \n",
        )
    );
    let ti = ListOpts {
        tun_info: true,
        ..numeric()
    };
    assert_eq!(
        format_services(&[e], &ti, &Names::empty()),
        concat!(
            "Prot LocalAddress:Port Scheduler Flags\n",
            "  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n",
            "TCP  10.0.0.1:80 rr\n",
            "  -> 10.0.0.2:80                  Masq    n/a           3      12         3         \n",
            "  -> 10.0.0.3:80                  Tunnel  ipip          1      0          0         \n",
            "  -> 10.0.0.4:80                  Tunnel  gue:6080:r+c  1      0          0         \n",
            "  -> 10.0.0.5:80                  Tunnel  gre:+c        1      0          0         \n",
        )
    );
}

#[test]
fn conns_3_4() {
    let c = |proto: u16, exp: u64, state: &str, cl: (&str, u16), v: (&str, u16), d: (&str, u16)| {
        ConnEntry {
            protocol: proto,
            caddr: ip(cl.0),
            cport: cl.1,
            vaddr: ip(v.0),
            vport: v.1,
            daddr: ip(d.0),
            dport: d.1,
            state: state.into(),
            expires_secs: exp,
            pe_name: None,
            pe_data: None,
            fast_path: false,
        }
    };
    let conns = vec![
        c(
            6,
            897,
            "ESTABLISHED",
            ("192.168.5.7", 51234),
            ("10.0.0.1", 80),
            ("10.0.0.2", 80),
        ),
        c(
            6,
            58,
            "SYN_RECV",
            ("192.168.5.8", 40022),
            ("10.0.0.1", 80),
            ("10.0.0.3", 8080),
        ),
        c(
            6,
            105,
            "FIN_WAIT",
            ("192.168.5.9", 33000),
            ("10.0.0.1", 443),
            ("10.0.1.10", 443),
        ),
        c(
            6,
            359,
            "ASSURED",
            ("192.168.5.0", 0),
            ("10.0.0.1", 443),
            ("10.0.1.10", 443),
        ),
        c(
            17,
            299,
            "UDP",
            ("192.168.5.7", 53001),
            ("10.0.0.1", 53),
            ("10.0.2.5", 53),
        ),
        c(
            0,
            359,
            "ASSURED",
            ("192.168.5.7", 0),
            ("0.0.0.1", 0),
            ("10.0.4.1", 0),
        ),
    ];
    assert_eq!(
        format_conns(&conns, &numeric(), &Names::empty()),
        golden("conns.txt")
    );

    // --persistent-conn: PE columns only on rows that carry PE data.
    let mut sip = c(
        17,
        3600,
        "UDP",
        ("192.168.5.7", 5060),
        ("10.0.0.1", 5060),
        ("10.0.2.5", 5060),
    );
    sip.pe_name = Some("sip".into());
    sip.pe_data = Some("a84b4c76e66710".into());
    let opts = ListOpts {
        persistent_conn: true,
        ..numeric()
    };
    assert_eq!(
        format_conns(&[sip, conns[0].clone()], &opts, &Names::empty()),
        concat!(
            "IPVS connection entries\n",
            "pro expire state       source             virtual            destination        pe name          pe_data\n",
            "UDP 60:00  UDP         192.168.5.7:5060   10.0.0.1:5060      10.0.2.5:5060    sip                a84b4c76e66710\n",
            "TCP 14:57  ESTABLISHED 192.168.5.7:51234  10.0.0.1:80        10.0.0.2:80\n",
        )
    );
}

#[test]
fn conns_names_and_ipv6() {
    let conn = ConnEntry {
        protocol: 6,
        caddr: ip("2001:db8::99"),
        cport: 40000,
        vaddr: ip("2001:db8::80"),
        vport: 80,
        daddr: ip("10.0.0.2"),
        dport: 80,
        state: "ESTABLISHED".into(),
        expires_secs: 6000,
        pe_name: None,
        pe_data: None,
        fast_path: false,
    };
    assert_eq!(
        format_conns(core::slice::from_ref(&conn), &ListOpts::default(), &names()),
        concat!(
            "IPVS connection entries\n",
            "pro expire state       source             virtual            destination\n",
            "TCP 100:00 ESTABLISHED [2001:db8::99]:40000 [v6lb.example.com]:http rs1.example.com:http\n",
        )
    );
}

#[test]
fn timeouts_and_daemons_3_5() {
    assert_eq!(
        format_timeouts(&Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300
        }),
        "Timeout (tcp tcpfin udp): 900 120 300\n"
    );
    let master = DaemonConfig {
        state: SyncState::Master,
        mcast_ifn: "eth0".into(),
        syncid: 0,
        sync_maxlen: Some(1472),
        mcast_group: Some(ip("224.0.0.81")),
        mcast_port: Some(8848),
        mcast_ttl: Some(1),
    };
    let backup = DaemonConfig {
        state: SyncState::Backup,
        mcast_ifn: "eth1".into(),
        syncid: 5,
        sync_maxlen: None,
        mcast_group: None,
        mcast_port: None,
        mcast_ttl: None,
    };
    assert_eq!(
        format_daemons(&[backup, master]),
        concat!(
            "master sync daemon (mcast=eth0, syncid=0, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n",
            "backup sync daemon (mcast=eth1, syncid=5)\n",
        )
    );
    assert_eq!(format_daemons(&[]), "");
}

#[test]
fn number_abbreviation() {
    let f = |n: u64, exact: bool| {
        let mut s = String::new();
        largenum(&mut s, n, exact);
        s
    };
    assert_eq!(f(0, false), "        0");
    assert_eq!(f(99_999_999, false), " 99999999");
    assert_eq!(f(100_000_000, false), "  100000K");
    assert_eq!(f(999_999_999, false), "  999999K");
    assert_eq!(f(1_000_000_000, false), "    1000M");
    assert_eq!(f(99_999_999_999, false), "   99999M");
    assert_eq!(f(100_000_000_000, false), "     100G");
    assert_eq!(f(99_999_999_999_999, false), "   99999G");
    assert_eq!(f(100_000_000_000_000, false), "     100T");
    assert_eq!(f(u64::MAX, false), "18446744T");
    assert_eq!(f(12, true), "       12");
    assert_eq!(f(12_345_678, true), " 12345678");
    assert_eq!(f(123_456_789, true), " 123456789");
    assert_eq!(f(u64::MAX, true), " 18446744073709551615");
}

#[test]
fn truncation_33_28() {
    let n = Names::from_strs(
        "10.0.0.1 a-very-long-host-name-for-the-virtual-service.example.com\n10.0.0.2 a-very-long-real-server-name.example.com\n2001:db8::1 a-very-long-ipv6-host-name.example.com\n",
        "",
    );
    let t = vec![
        entry(
            svc(Protocol::Tcp, "10.0.0.1", 80, "rr"),
            vec![dest("10.0.0.2", 80, ForwardMethod::Masq, 1, 0, 0)],
        ),
        entry(
            svc(Protocol::Tcp, "2001:db8::1", 80, "rr"),
            vec![dest("2001:db8::1", 80, ForwardMethod::Masq, 1, 0, 0)],
        ),
    ];
    let out = format_services(&t, &ListOpts::default(), &n);
    assert_eq!(
        out,
        concat!(
            "Prot LocalAddress:Port Scheduler Flags\n",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
            "TCP  a-very-long-host-name-for-th rr\n",
            "  -> a-very-long-real-server-name Masq    1      0          0         \n",
            "TCP  [a-very-long-ipv6-host-name.example.com]:80 rr\n",
            "  -> [a-very-long-ipv6-host-name.example.com]:80 Masq    1      0          0         \n",
        )
    );
    // -S does not truncate to 33/28, but names are cut at 59 bytes.
    let save = format_save(&t, false, &n);
    assert_eq!(
        save,
        concat!(
            "-A -t a-very-long-host-name-for-the-virtual-service.example.com:8 -s rr\n",
            "-a -t a-very-long-host-name-for-the-virtual-service.example.com:8 -r a-very-long-real-server-name.example.com:80 -m -w 1\n",
            "-A -t [a-very-long-ipv6-host-name.example.com]:80 -s rr\n",
            "-a -t [a-very-long-ipv6-host-name.example.com]:80 -r [a-very-long-ipv6-host-name.example.com]:80 -m -w 1\n",
        )
    );
}

#[test]
fn sorting_quirk_and_nosort() {
    let t = vec![
        entry(svc(Protocol::Tcp, "10.0.0.1", 80, "rr"), vec![]),
        entry(
            svc(Protocol::Tcp, "200.0.0.1", 80, "rr"),
            vec![
                dest("10.0.0.9", 80, ForwardMethod::Masq, 1, 0, 0),
                dest("200.0.0.9", 80, ForwardMethod::Masq, 1, 0, 0),
                dest("10.0.0.9", 79, ForwardMethod::Masq, 1, 0, 0),
            ],
        ),
    ];
    let out = format_services(&t, &numeric(), &Names::empty());
    let lines: Vec<&str> = out.lines().skip(2).collect();
    // 10.x - 200.x wraps to a positive int: 10.x sorts after 200.x.
    assert_eq!(
        lines,
        [
            "TCP  200.0.0.1:80 rr",
            "  -> 200.0.0.9:80                 Masq    1      0          0         ",
            "  -> 10.0.0.9:79                  Masq    1      0          0         ",
            "  -> 10.0.0.9:80                  Masq    1      0          0         ",
            "TCP  10.0.0.1:80 rr",
        ]
    );
    let nosort = ListOpts {
        nosort: true,
        ..numeric()
    };
    let out = format_services(&t, &nosort, &Names::empty());
    let lines: Vec<&str> = out.lines().skip(2).collect();
    assert_eq!(
        lines,
        [
            "TCP  10.0.0.1:80 rr",
            "TCP  200.0.0.1:80 rr",
            "  -> 10.0.0.9:79                  Masq    1      0          0         ",
            "  -> 200.0.0.9:80                 Masq    1      0          0         ",
            "  -> 10.0.0.9:80                  Masq    1      0          0         ",
        ]
    );
    // With a non-transitive comparator the result is glibc merge sort's:
    // 10 < 100 < 200 < 10, sorted from [10, 200, 100].
    let t3 = vec![
        entry(svc(Protocol::Tcp, "10.0.0.1", 80, "rr"), vec![]),
        entry(svc(Protocol::Tcp, "200.0.0.1", 80, "rr"), vec![]),
        entry(svc(Protocol::Tcp, "100.0.0.1", 80, "rr"), vec![]),
    ];
    let out = format_services(&t3, &numeric(), &Names::empty());
    assert_eq!(
        out.lines().skip(2).collect::<Vec<_>>(),
        [
            "TCP  10.0.0.1:80 rr",
            "TCP  100.0.0.1:80 rr",
            "TCP  200.0.0.1:80 rr"
        ]
    );
}

#[test]
fn names_in_listing() {
    let t = vec![entry(
        svc(Protocol::Tcp, "10.0.0.1", 80, "rr"),
        vec![
            dest("10.0.0.2", 80, ForwardMethod::Masq, 1, 0, 0),
            dest("10.0.0.7", 8080, ForwardMethod::Masq, 1, 0, 0),
        ],
    )];
    let out = format_list(&t, &Info::default(), &ListOpts::default(), &names());
    assert_eq!(
        out,
        concat!(
            "IP Virtual Server version 1.2.1 (size=4096)\n",
            "Prot LocalAddress:Port Scheduler Flags\n",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
            "TCP  lb.example.com:http rr\n",
            "  -> rs1.example.com:http         Masq    1      0          0         \n",
            "  -> 10.0.0.7:8080                Masq    1      0          0         \n",
        )
    );
    assert_eq!(
        format_save(&t, false, &names()),
        concat!(
            "-A -t lb.example.com:http -s rr\n",
            "-a -t lb.example.com:http -r rs1.example.com:http -m -w 1\n",
            "-a -t lb.example.com:http -r 10.0.0.7:8080 -m -w 1\n",
        )
    );
}

#[test]
fn service_line_variants() {
    let mut a = svc(Protocol::Udp, "10.0.0.1", 53, "rr");
    a.flags = svc_flags::PERSISTENT | svc_flags::ONEPACKET | svc_flags::SCHED2;
    a.timeout_secs = 60;
    a.pe = Some("sip".into());
    let mut b = svc(Protocol::Sctp, "2001:db8::1", 0, "mh");
    b.flags = svc_flags::PERSISTENT | svc_flags::MH_FALLBACK | svc_flags::MH_PORT;
    b.timeout_secs = 100;
    b.netmask = 64;
    let mut c = ServiceConfig::new(ServiceKey::Fwmark {
        af: Family::V6,
        mark: 3,
    });
    c.scheduler = "wlc".into();
    c.flags = svc_flags::ONEPACKET;
    let mut d = svc(Protocol::Tcp, "10.0.0.2", 0, "wrr");
    d.pe = Some("sip".into()); // not shown in listings unless persistent
    d.flags = svc_flags::SCHED1 | svc_flags::SCHED3;
    let t = vec![
        entry(a, vec![]),
        entry(b, vec![]),
        entry(c, vec![]),
        entry(d, vec![]),
    ];
    let out = format_services(&t, &numeric(), &Names::empty());
    assert_eq!(
        out.lines().skip(2).collect::<Vec<_>>(),
        [
            "TCP  10.0.0.2:0 wrr (flag-1,flag-3)",
            "UDP  10.0.0.1:53 rr (flag-2) persistent 60 pe sip ops",
            "SCTP [2001:db8::1]:0 mh (mh-fallback,mh-port) persistent 100 mask 64",
            "FWM  3 IPv6 wlc ops",
        ]
    );
    assert_eq!(
        format_save(&t, true, &Names::empty()),
        concat!(
            "-A -t 10.0.0.2:0 -s wrr --pe sip -b flag-1,flag-3\n",
            "-A -u 10.0.0.1:53 -s rr -p 60 --pe sip -o -b flag-2\n",
            "-A --sctp-service [2001:db8::1]:0 -s mh -p 100 -M 64 -b mh-fallback,mh-port\n",
            "-A -f 3 -6 -s wlc -o\n",
        )
    );
}

#[test]
fn save_tunnels_and_local() {
    let mut e = entry(
        svc(Protocol::Tcp, "10.0.0.1", 80, "rr"),
        vec![
            dest("10.0.0.2", 80, ForwardMethod::Tunnel, 1, 0, 0),
            dest("10.0.0.3", 80, ForwardMethod::Tunnel, 2, 0, 0),
            dest("10.0.0.4", 80, ForwardMethod::Tunnel, 3, 0, 0),
            dest("10.0.0.5", 80, ForwardMethod::Local, 4, 0, 0),
            dest("2001:db8::5", 80, ForwardMethod::Tunnel, 5, 0, 0),
        ],
    );
    e.dests[0].config.tun_type = TunnelType::Gue;
    e.dests[0].config.tun_port = 5555;
    e.dests[0].config.tun_flags = TunnelCsum::Csum;
    e.dests[2].config.tun_type = TunnelType::Gue;
    e.dests[2].config.tun_port = 6080;
    e.dests[3].config.tun_type = TunnelType::Gre;
    e.dests[3].config.tun_flags = TunnelCsum::Csum;
    e.dests[4].config.u_threshold = 10; // thresholds are not saved
    assert_eq!(
        format_save(&[e], true, &Names::empty()),
        concat!(
            "-A -t 10.0.0.1:80 -s rr\n",
            "-a -t 10.0.0.1:80 -r 10.0.0.2:80 -i -w 1 --tun-type ipip\n",
            "-a -t 10.0.0.1:80 -r 10.0.0.3:80 -i -w 2 --tun-type gre --tun-csum\n",
            "-a -t 10.0.0.1:80 -r 10.0.0.4:80 -i -w 3 --tun-type gue --tun-port 6080 --tun-nocsum\n",
            "-a -t 10.0.0.1:80 -r 10.0.0.5:80 -g -w 4\n",
            "-a -t 10.0.0.1:80 -r [2001:db8::5]:80 -i -w 5 --tun-type gue --tun-port 5555 --tun-csum\n",
        )
    );
}

#[test]
fn one_service_has_no_version_header() {
    let t = example_table();
    let out = format_one_service(&t[4], &numeric(), &Names::empty());
    assert_eq!(
        out,
        concat!(
            "Prot LocalAddress:Port Scheduler Flags\n",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
            "TCP  10.0.0.1:80 rr\n",
            "  -> 10.0.0.2:80                  Masq    1      12         3         \n",
            "  -> 10.0.0.3:8080                Masq    2      25         7         \n",
        )
    );
}
