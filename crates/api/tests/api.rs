//! rvs-api: codec round trips, validation, framing, hostile input, client/server.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::io::Cursor;
use std::os::unix::net::UnixStream;

use proptest::prelude::*;
use rvs_api::{
    ApiError, Client, ConnEntry, DaemonConfig, DestConfig, DestEntry, ErrorCode, Family,
    ForwardMethod, FrameError, Info, MAX_BATCH_LEN, MAX_FRAME_LEN, Operation, Protocol, Rates,
    Request, Response, ServiceConfig, ServiceEntry, ServiceKey, SocketSpec, Stats, SyncState,
    Timeouts, TunnelCsum, TunnelType, decode_request, decode_response, encode_request,
    encode_response, read_frame, serve_connection, svc_flags, write_frame,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn tcp80() -> ServiceKey {
    ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: ip("198.18.0.1"),
        port: 80,
    }
}

fn code(r: &Request) -> Option<ErrorCode> {
    r.validate().err().map(|e| e.code)
}

// ---------------------------------------------------------------- strategies

fn unicast_v4() -> impl Strategy<Value = IpAddr> {
    (1u8..=223, any::<u8>(), any::<u8>(), 1u8..=254)
        .prop_map(|(a, b, c, d)| IpAddr::V4(Ipv4Addr::new(a, b, c, d)))
}

fn unicast_v6() -> impl Strategy<Value = IpAddr> {
    (0x2000u16..0x3fff, any::<[u16; 7]>())
        .prop_map(|(h, r)| IpAddr::V6(Ipv6Addr::new(h, r[0], r[1], r[2], r[3], r[4], r[5], r[6])))
}

fn addr_of(af: Family) -> BoxedStrategy<IpAddr> {
    match af {
        Family::V4 => unicast_v4().boxed(),
        Family::V6 => unicast_v6().boxed(),
    }
}

fn key() -> impl Strategy<Value = ServiceKey> {
    prop_oneof![
        (
            prop_oneof![
                Just(Protocol::Tcp),
                Just(Protocol::Udp),
                Just(Protocol::Sctp)
            ],
            prop_oneof![unicast_v4(), unicast_v6()],
            any::<u16>()
        )
            .prop_map(|(proto, addr, port)| ServiceKey::Addr { proto, addr, port }),
        (
            prop_oneof![Just(Family::V4), Just(Family::V6)],
            1u32..=u32::MAX
        )
            .prop_map(|(af, mark)| ServiceKey::Fwmark { af, mark }),
    ]
}

fn service() -> impl Strategy<Value = ServiceConfig> {
    (
        key(),
        prop::sample::select(vec!["rr", "wlc", "sh", "mh", "twos", "abcdefghijklmno"]),
        any::<bool>(),
        any::<bool>(),
        0u32..8,
        1u32..=2_678_400,
        0u32..=32,
        1u32..=128,
        prop::option::of(Just("sip")),
    )
        .prop_map(
            |(key, sched, persistent, ops, sched_bits, timeout, v4len, v6len, pe)| {
                let mut c = ServiceConfig::new(key);
                c.scheduler = sched.to_owned();
                let persistent = persistent || key.port() == 0 && key.fwmark() == 0;
                if persistent {
                    c.flags |= svc_flags::PERSISTENT;
                    c.timeout_secs = timeout;
                }
                if ops {
                    c.flags |= svc_flags::ONEPACKET;
                }
                c.flags |= sched_bits << 3;
                c.netmask = match key.family() {
                    Family::V4 => u32::MAX.checked_shl(32 - v4len).unwrap_or(0),
                    Family::V6 => v6len,
                };
                c.pe = pe.map(str::to_owned);
                c
            },
        )
}

fn dest_for(k: ServiceKey) -> impl Strategy<Value = DestConfig> {
    let fam = k.family();
    (
        prop_oneof![
            Just(ForwardMethod::Masq),
            Just(ForwardMethod::Local),
            Just(ForwardMethod::Tunnel),
            Just(ForwardMethod::Route)
        ],
        any::<bool>(),
        any::<u16>(),
        0i32..=i32::MAX,
        0u32..=i32::MAX.unsigned_abs(),
        0u32..=i32::MAX.unsigned_abs(),
        0u8..3,
        1u16..=u16::MAX,
        0u8..3,
    )
        .prop_flat_map(
            move |(method, other_af, port, weight, u, l, tt, tport, tf)| {
                let af = if method == ForwardMethod::Tunnel && other_af {
                    match fam {
                        Family::V4 => Family::V6,
                        Family::V6 => Family::V4,
                    }
                } else {
                    fam
                };
                addr_of(af).prop_map(move |addr| {
                    let mut d = DestConfig::new(addr, port);
                    d.method = method;
                    d.weight = weight;
                    d.u_threshold = u;
                    d.l_threshold = l;
                    if let ServiceKey::Addr { port: sp, .. } = k
                        && matches!(method, ForwardMethod::Route | ForwardMethod::Tunnel)
                    {
                        d.port = sp;
                    }
                    if method == ForwardMethod::Tunnel {
                        match tt {
                            0 => {}
                            1 => {
                                d.tun_type = TunnelType::Gue;
                                d.tun_port = tport;
                                d.tun_flags =
                                    [TunnelCsum::NoCsum, TunnelCsum::Csum, TunnelCsum::RemCsum]
                                        [usize::from(tf)];
                            }
                            _ => {
                                d.tun_type = TunnelType::Gre;
                                d.tun_flags =
                                    [TunnelCsum::NoCsum, TunnelCsum::Csum][usize::from(tf % 2)];
                            }
                        }
                    }
                    d
                })
            },
        )
}

fn daemon() -> impl Strategy<Value = DaemonConfig> {
    (
        any::<bool>(),
        "[a-z][a-z0-9.]{0,14}",
        0u32..=255,
        prop::option::of(1u16..=65507),
        prop::option::of(prop_oneof![
            (224u8..=239, any::<u8>(), any::<u8>(), any::<u8>())
                .prop_map(|(a, b, c, d)| IpAddr::V4(Ipv4Addr::new(a, b, c, d))),
            any::<u16>().prop_map(|x| IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, x))),
        ]),
        prop::option::of(1u16..=u16::MAX),
        prop::option::of(1u8..=u8::MAX),
    )
        .prop_map(
            |(master, ifn, syncid, maxlen, group, port, ttl)| DaemonConfig {
                state: if master {
                    SyncState::Master
                } else {
                    SyncState::Backup
                },
                mcast_ifn: ifn,
                syncid,
                sync_maxlen: maxlen,
                mcast_group: group,
                mcast_port: port,
                mcast_ttl: ttl,
            },
        )
}

fn simple_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        service().prop_map(Request::AddService),
        service().prop_map(Request::EditService),
        key().prop_map(Request::DelService),
        Just(Request::Flush),
        key().prop_flat_map(
            |k| dest_for(k).prop_map(move |dest| Request::AddDest { service: k, dest })
        ),
        key().prop_flat_map(
            |k| dest_for(k).prop_map(move |dest| Request::EditDest { service: k, dest })
        ),
        (key(), prop_oneof![unicast_v4(), unicast_v6()], any::<u16>()).prop_map(
            |(service, addr, port)| Request::DelDest {
                service,
                addr,
                port
            }
        ),
        (0u32..=2_678_400, 0u32..=2_678_400, 0u32..=2_678_400)
            .prop_map(|(tcp, tcp_fin, udp)| Request::SetTimeouts(Timeouts { tcp, tcp_fin, udp })),
        daemon().prop_map(Request::StartDaemon),
        prop_oneof![Just(SyncState::Master), Just(SyncState::Backup)].prop_map(Request::StopDaemon),
        prop::option::of(key()).prop_map(Request::Zero),
        Just(Request::GetInfo),
        Just(Request::GetServices),
        key().prop_map(Request::GetService),
        Just(Request::GetTimeouts),
        Just(Request::GetDaemons),
        Just(Request::GetConns),
    ]
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        4 => simple_request(),
        1 => prop::collection::vec(simple_request(), 0..6).prop_map(Request::Batch),
    ]
}

fn stats() -> impl Strategy<Value = Stats> {
    any::<[u64; 5]>().prop_map(|v| Stats {
        conns: v[0],
        inpkts: v[1],
        outpkts: v[2],
        inbytes: v[3],
        outbytes: v[4],
    })
}

fn rates() -> impl Strategy<Value = Rates> {
    any::<[u64; 5]>().prop_map(|v| Rates {
        cps: v[0],
        inpps: v[1],
        outpps: v[2],
        inbps: v[3],
        outbps: v[4],
    })
}

fn service_entry() -> impl Strategy<Value = ServiceEntry> {
    service().prop_flat_map(|config| {
        let k = config.key;
        (
            Just(config),
            stats(),
            rates(),
            prop::collection::vec(
                (dest_for(k), any::<[u32; 3]>(), stats(), rates()).prop_map(
                    |(config, c, stats, rates)| DestEntry {
                        config,
                        active: c[0],
                        inactive: c[1],
                        persist: c[2],
                        stats,
                        rates,
                    },
                ),
                0..4,
            ),
        )
            .prop_map(|(config, stats, rates, dests)| ServiceEntry {
                config,
                stats,
                rates,
                dests,
            })
    })
}

fn response() -> impl Strategy<Value = Response> {
    let simple = prop_oneof![
        Just(Response::Ok),
        (any::<u8>(), ".{0,20}").prop_map(|(c, m)| {
            let codes = [
                ErrorCode::Exists,
                ErrorCode::NotFound,
                ErrorCode::SchedNotFound,
                ErrorCode::NoService,
                ErrorCode::Perm,
                ErrorCode::Inval,
                ErrorCode::Range,
                ErrorCode::BadRequest,
            ];
            Response::error(codes[usize::from(c) % codes.len()], m)
        }),
        (any::<u32>(), any::<u32>()).prop_map(|(version, conn_tab_size)| Response::Info(Info {
            version,
            conn_tab_size
        })),
        prop::collection::vec(service_entry(), 0..3).prop_map(Response::Services),
        service_entry().prop_map(Response::Service),
        any::<[u32; 3]>().prop_map(|t| Response::Timeouts(Timeouts {
            tcp: t[0],
            tcp_fin: t[1],
            udp: t[2]
        })),
        prop::collection::vec(daemon(), 0..2).prop_map(Response::Daemons),
        prop::collection::vec(
            (
                prop::sample::select(vec![0u16, 6, 17, 132]),
                unicast_v4(),
                any::<u16>(),
                unicast_v6(),
                any::<u64>(),
                prop::option::of("[a-z]{1,5}"),
            )
                .prop_map(|(protocol, a, port, b, exp, pe)| ConnEntry {
                    protocol,
                    caddr: a,
                    cport: port,
                    vaddr: b,
                    vport: port,
                    daddr: a,
                    dport: 1,
                    state: "ESTABLISHED".into(),
                    expires_secs: exp,
                    fast_path: exp % 2 == 0,
                    pe_name: pe.clone(),
                    pe_data: pe,
                }),
            0..3
        )
        .prop_map(Response::Conns),
    ];
    prop_oneof![
        4 => simple.clone(),
        1 => prop::collection::vec(simple, 0..4).prop_map(Response::Batch),
    ]
}

proptest! {
    #[test]
    fn valid_requests_round_trip(req in request()) {
        prop_assert_eq!(req.validate(), Ok(()));
        prop_assert_eq!(decode_request(&encode_request(&req)), Ok(req));
    }

    #[test]
    fn responses_round_trip(resp in response()) {
        prop_assert_eq!(decode_response(&encode_response(&resp)), Ok(resp));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_request(&bytes);
        let _ = decode_response(&bytes);
        let _ = read_frame(&mut Cursor::new(&bytes), 1024);
    }

    #[test]
    fn mutated_frames_never_panic(req in request(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut body = encode_request(&req);
        for (i, b) in flips {
            let at = i.index(body.len());
            body[at] = b;
        }
        if let Ok(r) = decode_request(&body) {
            // Whatever decodes has been validated.
            prop_assert_eq!(r.validate(), Ok(()));
        }
    }

    #[test]
    fn arbitrary_json_text_never_panics(s in "\\{\"version\":1,\"request\":\\{\"op\":\"(add_service|add_dest|batch|zero|start_daemon)\",\"args\":[\\[\\]\\{\\}\":,0-9a-z_ .-]{0,80}\\}\\}") {
        let _ = decode_request(s.as_bytes());
    }
}

// ---------------------------------------------------------------- codec

#[test]
fn wire_shape_is_documented_form() {
    let body = encode_request(&Request::Zero(None));
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        r#"{"version":1,"request":{"op":"zero","args":null}}"#
    );
    let body = encode_request(&Request::Flush);
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        r#"{"version":1,"request":{"op":"flush"}}"#
    );
    let body = encode_request(&Request::DelService(tcp80()));
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        r#"{"version":1,"request":{"op":"del_service","args":{"kind":"addr","proto":"tcp","addr":"198.18.0.1","port":80}}}"#
    );
    assert_eq!(
        std::str::from_utf8(&encode_response(&Response::Ok)).unwrap(),
        r#"{"version":1,"response":{"kind":"ok"}}"#
    );
}

#[test]
fn version_and_shape_errors() {
    let e = decode_request(br#"{"version":2,"request":{"op":"flush"}}"#).unwrap_err();
    assert_eq!(e.code, ErrorCode::UnsupportedVersion);
    // A future version with an unknown body still gets a version error.
    let e = decode_request(br#"{"version":9,"whatever":[1,2,3]}"#).unwrap_err();
    assert_eq!(e.code, ErrorCode::UnsupportedVersion);
    for bad in [
        &br#""#[..],
        br#"null"#,
        br#"{"request":{"op":"flush"}}"#,
        br#"{"version":1}"#,
        br#"{"version":1,"request":{"op":"flush"},"extra":1}"#,
        br#"{"version":1,"request":{"op":"nope"}}"#,
        br#"{"version":1,"request":{"op":"del_service","args":{"kind":"addr","proto":"tcp","addr":"198.18.0.1","port":70000}}}"#,
        br#"{"version":1,"request":{"op":"del_service","args":{"kind":"addr","proto":"tcp","addr":"198.18.0.1","port":80,"x":1}}}"#,
        br#"{"version":-1,"request":{"op":"flush"}}"#,
        b"\xff\xfe",
    ] {
        let e = decode_request(bad).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest, "{}", String::from_utf8_lossy(bad));
    }
    // Deep nesting is refused by the parser's depth limit, not by a stack overflow.
    let mut deep = String::from(r#"{"version":1,"request":"#);
    for _ in 0..100_000 {
        deep.push_str(r#"{"op":"batch","args":["#);
    }
    assert_eq!(
        decode_request(deep.as_bytes()).unwrap_err().code,
        ErrorCode::BadRequest
    );
}

// ---------------------------------------------------------------- validation

#[test]
fn invalid_fields_are_rejected() {
    let svc = ServiceConfig::new(tcp80());
    let with = |f: &dyn Fn(&mut ServiceConfig)| {
        let mut s = svc.clone();
        f(&mut s);
        Request::AddService(s)
    };
    assert_eq!(code(&with(&|_| {})), None);
    assert_eq!(
        code(&with(&|s| s.scheduler = String::new())),
        Some(ErrorCode::SchedNotFound)
    );
    assert_eq!(
        code(&with(&|s| s.scheduler = "a".repeat(16))),
        Some(ErrorCode::SchedNotFound)
    );
    assert_eq!(
        code(&with(&|s| s.scheduler = "r r".into())),
        Some(ErrorCode::SchedNotFound)
    );
    assert_eq!(
        code(&with(&|s| s.scheduler = "rr\0".into())),
        Some(ErrorCode::SchedNotFound)
    );
    assert_eq!(
        code(&with(&|s| s.scheduler = "rré".into())),
        Some(ErrorCode::SchedNotFound)
    );
    assert_eq!(
        code(&with(&|s| s.pe = Some(String::new()))),
        Some(ErrorCode::SchedNotFound)
    );
    assert_eq!(
        code(&with(&|s| s.pe = Some("s\0p".into()))),
        Some(ErrorCode::SchedNotFound)
    );
    assert_eq!(
        code(&with(&|s| s.flags = svc_flags::HASHED)),
        Some(ErrorCode::Inval)
    );
    assert_eq!(code(&with(&|s| s.flags = 0x40)), Some(ErrorCode::Inval));
    let persistent = |t: u32| {
        with(&|s| {
            s.flags = svc_flags::PERSISTENT;
            s.timeout_secs = t;
        })
    };
    assert_eq!(code(&persistent(0)), Some(ErrorCode::Inval));
    assert_eq!(code(&persistent(1)), None);
    assert_eq!(code(&persistent(2_678_400)), None);
    assert_eq!(code(&persistent(2_678_401)), Some(ErrorCode::Inval));
    assert_eq!(
        code(&with(&|s| s.timeout_secs = 2_678_401)),
        Some(ErrorCode::Inval)
    );
    let mask = |m: u32| {
        with(&|s| {
            s.flags = svc_flags::PERSISTENT;
            s.timeout_secs = 60;
            s.netmask = m;
        })
    };
    assert_eq!(code(&mask(0xffff_ff00)), None);
    assert_eq!(code(&mask(0)), None);
    assert_eq!(code(&mask(0xff00_ff00)), Some(ErrorCode::Inval));
    assert_eq!(code(&mask(0x0000_00ff)), Some(ErrorCode::Inval));
    // Not persistent: the mask is ignored, as the kernel does.
    assert_eq!(code(&with(&|s| s.netmask = 0xff00_ff00)), None);
    let v6 = |len: u32| {
        let mut s = ServiceConfig::new(ServiceKey::Fwmark {
            af: Family::V6,
            mark: 1,
        });
        s.netmask = len;
        Request::AddService(s)
    };
    assert_eq!(code(&v6(128)), None);
    assert_eq!(code(&v6(1)), None);
    assert_eq!(code(&v6(0)), Some(ErrorCode::Inval));
    assert_eq!(code(&v6(129)), Some(ErrorCode::Inval));
    // Port 0 needs persistence.
    let mut zero = ServiceConfig::new(ServiceKey::Addr {
        proto: Protocol::Udp,
        addr: ip("198.18.0.1"),
        port: 0,
    });
    assert_eq!(
        code(&Request::AddService(zero.clone())),
        Some(ErrorCode::Inval)
    );
    zero.flags = svc_flags::PERSISTENT;
    zero.timeout_secs = 360;
    assert_eq!(code(&Request::EditService(zero)), None);
    // fwmark 0.
    let fw0 = ServiceKey::Fwmark {
        af: Family::V4,
        mark: 0,
    };
    for r in [
        Request::DelService(fw0),
        Request::GetService(fw0),
        Request::Zero(Some(fw0)),
        Request::AddService(ServiceConfig::new(fw0)),
        Request::DelDest {
            service: fw0,
            addr: ip("198.18.0.2"),
            port: 0,
        },
    ] {
        assert_eq!(code(&r), Some(ErrorCode::Inval), "{r:?}");
    }
}

#[test]
fn invalid_dests_are_rejected() {
    let add = |f: &dyn Fn(&mut DestConfig)| {
        let mut d = DestConfig::new(ip("198.18.0.2"), 80);
        f(&mut d);
        Request::AddDest {
            service: tcp80(),
            dest: d,
        }
    };
    assert_eq!(code(&add(&|_| {})), None);
    assert_eq!(code(&add(&|d| d.weight = -1)), Some(ErrorCode::Range));
    assert_eq!(code(&add(&|d| d.weight = i32::MAX)), None);
    assert_eq!(
        code(&add(&|d| d.u_threshold = 1 << 31)),
        Some(ErrorCode::Range)
    );
    assert_eq!(
        code(&add(&|d| d.l_threshold = u32::MAX)),
        Some(ErrorCode::Range)
    );
    // l > u is the daemon's check (kernel ERANGE), not validation's.
    assert_eq!(code(&add(&|d| d.l_threshold = 5)), None);
    for a in ["0.0.0.0", "224.0.0.1", "255.255.255.255", "::", "ff02::1"] {
        assert_eq!(
            code(&add(&|d| d.addr = ip(a))),
            Some(ErrorCode::Inval),
            "{a}"
        );
    }
    // Family mismatch only with tunnelling.
    assert_eq!(
        code(&add(&|d| d.addr = ip("2001:db8::2"))),
        Some(ErrorCode::Inval)
    );
    assert_eq!(
        code(&add(&|d| {
            d.addr = ip("2001:db8::2");
            d.method = ForwardMethod::Tunnel;
        })),
        None
    );
    // DR/TUN use the service port.
    assert_eq!(code(&add(&|d| d.port = 8080)), Some(ErrorCode::Inval));
    assert_eq!(
        code(&add(&|d| {
            d.port = 8080;
            d.method = ForwardMethod::Masq;
        })),
        None
    );
    // Tunnel combinations.
    let tun = |tt: TunnelType, port: u16, csum: TunnelCsum| {
        add(&|d| {
            d.method = ForwardMethod::Tunnel;
            d.tun_type = tt;
            d.tun_port = port;
            d.tun_flags = csum;
        })
    };
    assert_eq!(code(&tun(TunnelType::Ipip, 0, TunnelCsum::NoCsum)), None);
    assert_eq!(
        code(&tun(TunnelType::Ipip, 1, TunnelCsum::NoCsum)),
        Some(ErrorCode::Inval)
    );
    assert_eq!(
        code(&tun(TunnelType::Ipip, 0, TunnelCsum::Csum)),
        Some(ErrorCode::Inval)
    );
    assert_eq!(
        code(&tun(TunnelType::Gue, 0, TunnelCsum::NoCsum)),
        Some(ErrorCode::Inval)
    );
    assert_eq!(code(&tun(TunnelType::Gue, 6080, TunnelCsum::RemCsum)), None);
    assert_eq!(code(&tun(TunnelType::Gre, 0, TunnelCsum::Csum)), None);
    assert_eq!(
        code(&tun(TunnelType::Gre, 1, TunnelCsum::Csum)),
        Some(ErrorCode::Inval)
    );
    assert_eq!(
        code(&tun(TunnelType::Gre, 0, TunnelCsum::RemCsum)),
        Some(ErrorCode::Inval)
    );
    // Tunnel options without tunnelling.
    assert_eq!(
        code(&add(&|d| d.tun_type = TunnelType::Gre)),
        Some(ErrorCode::Inval)
    );
    assert_eq!(code(&add(&|d| d.tun_port = 1)), Some(ErrorCode::Inval));
    assert_eq!(
        code(&add(&|d| d.tun_flags = TunnelCsum::Csum)),
        Some(ErrorCode::Inval)
    );
}

#[test]
fn invalid_timeouts_and_daemons_are_rejected() {
    let t = |tcp, tcp_fin, udp| Request::SetTimeouts(Timeouts { tcp, tcp_fin, udp });
    assert_eq!(code(&t(0, 0, 0)), None);
    assert_eq!(code(&t(2_678_400, 1, 1)), None);
    assert_eq!(code(&t(2_678_401, 1, 1)), Some(ErrorCode::Inval));
    assert_eq!(code(&t(1, 2_678_401, 1)), Some(ErrorCode::Inval));
    assert_eq!(code(&t(1, 1, u32::MAX)), Some(ErrorCode::Inval));
    let base = DaemonConfig {
        state: SyncState::Master,
        mcast_ifn: "eth0".into(),
        syncid: 0,
        sync_maxlen: None,
        mcast_group: None,
        mcast_port: None,
        mcast_ttl: None,
    };
    let d = |f: &dyn Fn(&mut DaemonConfig)| {
        let mut x = base.clone();
        f(&mut x);
        Request::StartDaemon(x)
    };
    assert_eq!(code(&d(&|_| {})), None);
    assert_eq!(
        code(&d(&|x| x.mcast_ifn = String::new())),
        Some(ErrorCode::Inval)
    );
    assert_eq!(
        code(&d(&|x| x.mcast_ifn = "a".repeat(16))),
        Some(ErrorCode::Inval)
    );
    assert_eq!(code(&d(&|x| x.mcast_ifn = "a".repeat(15))), None);
    assert_eq!(
        code(&d(&|x| x.mcast_ifn = "et\0h".into())),
        Some(ErrorCode::Inval)
    );
    assert_eq!(code(&d(&|x| x.syncid = 255)), None);
    assert_eq!(code(&d(&|x| x.syncid = 256)), Some(ErrorCode::Inval));
    assert_eq!(
        code(&d(&|x| x.sync_maxlen = Some(0))),
        Some(ErrorCode::Inval)
    );
    assert_eq!(code(&d(&|x| x.sync_maxlen = Some(65507))), None);
    assert_eq!(
        code(&d(&|x| x.sync_maxlen = Some(65508))),
        Some(ErrorCode::Inval)
    );
    assert_eq!(
        code(&d(&|x| x.mcast_group = Some(ip("198.18.0.1")))),
        Some(ErrorCode::Inval)
    );
    assert_eq!(code(&d(&|x| x.mcast_group = Some(ip("ff02::1")))), None);
    assert_eq!(
        code(&d(&|x| x.mcast_port = Some(0))),
        Some(ErrorCode::Inval)
    );
    assert_eq!(code(&d(&|x| x.mcast_ttl = Some(0))), Some(ErrorCode::Inval));
}

#[test]
fn batches() {
    assert_eq!(code(&Request::Batch(vec![])), None);
    assert_eq!(
        code(&Request::Batch(vec![
            Request::Flush,
            Request::Batch(vec![])
        ])),
        Some(ErrorCode::Inval)
    );
    let big = Request::Batch(vec![Request::Flush; MAX_BATCH_LEN + 1]);
    assert_eq!(code(&big), Some(ErrorCode::TooLarge));
    assert_eq!(
        code(&Request::Batch(vec![Request::Flush; MAX_BATCH_LEN])),
        None
    );
    let e = Request::Batch(vec![
        Request::Flush,
        Request::SetTimeouts(Timeouts {
            tcp: u32::MAX,
            tcp_fin: 0,
            udp: 0,
        }),
    ])
    .validate()
    .unwrap_err();
    assert!(e.message.starts_with("batch[1]: "), "{}", e.message);
    // A batch with one bad member is refused whole by decode_request.
    let body = encode_request(&Request::Batch(vec![
        Request::Flush,
        Request::DelService(ServiceKey::Fwmark {
            af: Family::V4,
            mark: 0,
        }),
    ]));
    assert_eq!(decode_request(&body).unwrap_err().code, ErrorCode::Inval);
}

// ---------------------------------------------------------------- messages

#[test]
fn ipvsadm_messages_per_operation() {
    use ErrorCode as E;
    use Operation as O;
    let m = |c: E, o: O| c.ipvsadm_message(o).unwrap();
    assert_eq!(m(E::Exists, O::AddService), "Service already exists");
    assert_eq!(
        m(E::SchedNotFound, O::AddService),
        "Scheduler or persistence engine not found"
    );
    assert_eq!(
        m(E::SchedNotFound, O::EditService),
        "Scheduler or persistence engine not found"
    );
    assert_eq!(m(E::NoService, O::EditService), "No such service");
    assert_eq!(m(E::NoService, O::DelService), "No such service");
    assert_eq!(m(E::NoService, O::Zero), "No such service");
    assert_eq!(m(E::NoService, O::GetService), "No such service");
    assert_eq!(m(E::NoService, O::AddDest), "Service not defined");
    assert_eq!(m(E::NoService, O::EditDest), "Service not defined");
    assert_eq!(m(E::NoService, O::DelDest), "Service not defined");
    assert_eq!(m(E::Exists, O::AddDest), "Destination already exists");
    assert_eq!(m(E::NotFound, O::EditDest), "No such destination");
    assert_eq!(m(E::NotFound, O::DelDest), "No such destination");
    assert_eq!(m(E::Exists, O::StartDaemon), "Daemon has already run");
    assert_eq!(m(E::NoService, O::StopDaemon), "No daemon is running");
    assert_eq!(m(E::Perm, O::Flush), "Permission denied (you must be root)");
    assert_eq!(
        m(E::Inval, O::AddDest),
        "Invalid operation.  Possibly wrong module version, address not unicast, ..."
    );
    assert_eq!(m(E::NoMem, O::AddService), "Memory allocation problem");
    assert_eq!(m(E::NoProtoOpt, O::Flush), "Protocol not available");
    assert_eq!(
        m(E::NotSupported, O::Flush),
        "Operation not supported with IPv6"
    );
    assert_eq!(
        m(E::AfNotSupported, O::AddDest),
        "Operation not supported with specified address family"
    );
    assert_eq!(m(E::MsgSize, O::Flush), "Module is wrong version");
    assert_eq!(m(E::Range, O::AddDest), "Numerical result out of range");
    // Outside the table: strerror.
    assert_eq!(m(E::Exists, O::EditService), "File exists");
    assert_eq!(m(E::NoService, O::Flush), "No such process");
    assert_eq!(m(E::NotFound, O::AddDest), "No such file or directory");
    assert_eq!(m(E::NoDevice, O::StartDaemon), "No such device");
    // Protocol-level codes print their detail.
    assert_eq!(E::BadRequest.ipvsadm_message(O::Flush), None);
    assert_eq!(
        ApiError::new(E::TooLarge, "too big").ipvsadm_message(O::Batch),
        "too big"
    );
}

// ---------------------------------------------------------------- framing

#[test]
fn frames() {
    let mut buf = Vec::new();
    write_frame(&mut buf, b"hello").unwrap();
    write_frame(&mut buf, b"").unwrap();
    assert_eq!(&buf[..4], &[0, 0, 0, 5]);
    let mut r = Cursor::new(buf);
    assert_eq!(read_frame(&mut r, 16).unwrap().unwrap(), b"hello");
    assert_eq!(read_frame(&mut r, 16).unwrap().unwrap(), b"");
    assert!(read_frame(&mut r, 16).unwrap().is_none());

    let mut r = Cursor::new(vec![0, 0]);
    assert!(matches!(read_frame(&mut r, 16), Err(FrameError::Truncated)));
    let mut r = Cursor::new(vec![0, 0, 0, 9, 1, 2]);
    assert!(matches!(read_frame(&mut r, 16), Err(FrameError::Truncated)));
    let mut r = Cursor::new(vec![0xff, 0xff, 0xff, 0xff]);
    assert!(matches!(
        read_frame(&mut r, MAX_FRAME_LEN),
        Err(FrameError::TooLarge {
            len: 0xffff_ffff,
            ..
        })
    ));
    let huge = vec![0u8; MAX_FRAME_LEN + 1];
    assert!(matches!(
        write_frame(&mut Vec::new(), &huge),
        Err(FrameError::TooLarge { .. })
    ));
}

#[test]
fn client_and_server_over_a_socketpair() {
    let (a, mut b) = UnixStream::pair().unwrap();
    let server = std::thread::spawn(move || {
        serve_connection(&mut b, |req| match req {
            Request::GetInfo => Response::Info(Info::default()),
            Request::Batch(v) => Response::Batch(v.iter().map(|_| Response::Ok).collect()),
            Request::AddService(_) => Response::error(ErrorCode::Exists, "exists"),
            _ => Response::Ok,
        })
    });
    let mut c = Client::from_stream(a);
    assert_eq!(
        c.call(&Request::GetInfo).unwrap(),
        Response::Info(Info::default())
    );
    assert_eq!(
        c.call(&Request::AddService(ServiceConfig::new(tcp80())))
            .unwrap(),
        Response::error(ErrorCode::Exists, "exists")
    );
    assert_eq!(
        c.call(&Request::Batch(vec![Request::Flush, Request::Flush]))
            .unwrap(),
        Response::Batch(vec![Response::Ok, Response::Ok])
    );
    // Invalid requests are answered by the framework, never reach the handler.
    let bad = Request::DelService(ServiceKey::Fwmark {
        af: Family::V4,
        mark: 0,
    });
    match c.call(&bad).unwrap() {
        Response::Error(e) => assert_eq!(e.code, ErrorCode::Inval),
        other => panic!("{other:?}"),
    }
    drop(c);
    server.join().unwrap().unwrap();
}

#[test]
fn server_survives_garbage_and_refuses_oversized_frames() {
    let (mut a, mut b) = UnixStream::pair().unwrap();
    let server = std::thread::spawn(move || serve_connection(&mut b, |_| Response::Ok));
    write_frame(&mut a, b"not json").unwrap();
    let resp = decode_response(&read_frame(&mut a, MAX_FRAME_LEN).unwrap().unwrap()).unwrap();
    assert!(matches!(
        resp,
        Response::Error(ApiError {
            code: ErrorCode::BadRequest,
            ..
        })
    ));
    use std::io::Write as _;
    a.write_all(&u32::MAX.to_be_bytes()).unwrap();
    let resp = decode_response(&read_frame(&mut a, MAX_FRAME_LEN).unwrap().unwrap()).unwrap();
    assert!(matches!(
        resp,
        Response::Error(ApiError {
            code: ErrorCode::TooLarge,
            ..
        })
    ));
    assert!(matches!(
        server.join().unwrap(),
        Err(FrameError::TooLarge { .. })
    ));
}

// ---------------------------------------------------------------- addressing

#[test]
fn socket_specs() {
    use std::os::linux::net::SocketAddrExt;
    assert_eq!(
        SocketSpec::parse("@rvsd"),
        SocketSpec::Abstract("rvsd".into())
    );
    assert_eq!(
        SocketSpec::parse("/run/rvsd.sock"),
        SocketSpec::Path("/run/rvsd.sock".into())
    );
    assert_eq!(SocketSpec::parse("@x").to_string(), "@x");
    assert_eq!(SocketSpec::parse("/tmp/s").to_string(), "/tmp/s");
    assert!(SocketSpec::Path("/".repeat(200).into()).to_addr().is_err());
    let a = SocketSpec::Abstract("rvsd".into()).to_addr().unwrap();
    assert_eq!(a.as_abstract_name(), Some(&b"rvsd"[..]));
    // A client names the socket it could not reach.
    let spec = SocketSpec::Abstract(format!("rvs-test-missing-{}", std::process::id()));
    let err = Client::connect(&spec).unwrap_err();
    assert!(
        err.to_string().contains("no socket @rvs-test-missing-"),
        "{err}"
    );
}

#[test]
fn defaults() {
    let k = ServiceKey::Fwmark {
        af: Family::V6,
        mark: 3,
    };
    let s = ServiceConfig::new(k);
    assert_eq!((s.scheduler.as_str(), s.netmask, s.flags), ("wlc", 128, 0));
    let d = DestConfig::new(ip("198.18.0.2"), 80);
    assert_eq!((d.method, d.weight), (ForwardMethod::Route, 1));
    assert_eq!(Info::default().version_triple(), (1, 2, 1));
    assert_eq!(Protocol::from_number(132), Some(Protocol::Sctp));
    assert_eq!(Protocol::from_number(1), None);
    assert!(Request::Batch(vec![Request::GetInfo]).operation() == Operation::Batch);
    assert!(!Request::Batch(vec![Request::GetInfo]).is_mutation());
    assert!(Request::Batch(vec![Request::Flush]).is_mutation());
}
