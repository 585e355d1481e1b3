//! Configuration: the ecosystem.md 1.7 example, errors, includes, notices, diff.

use std::path::{Path, PathBuf};

use rvs_api::{DestConfig, ForwardMethod, Protocol, Request, ServiceConfig, ServiceKey, svc_flags};
use rvs_health::config::{
    CheckKind, DnsType, ErrorKind, GroupMember, Model, NoticeKind, diff, diff_api, to_api,
};

use super::TempDir;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn parse(text: &str) -> Model {
    Model::parse_str("t.conf", text)
        .expect("configuration parses")
        .0
}

fn err(text: &str) -> String {
    Model::parse_str("t.conf", text)
        .map(|_| ())
        .expect_err("configuration is refused")
        .to_string()
}

fn tcp(addr: &str, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: addr.parse().expect("addr"),
        port,
    }
}

fn udp(addr: &str, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        proto: Protocol::Udp,
        addr: addr.parse().expect("addr"),
        port,
    }
}

fn svc(key: ServiceKey, sched: &str, flags: u32) -> ServiceConfig {
    let mut s = ServiceConfig::new(key);
    s.scheduler = sched.to_owned();
    s.flags = flags;
    s
}

fn dest(addr: &str, port: u16, method: ForwardMethod, weight: i32) -> DestConfig {
    let mut d = DestConfig::new(addr.parse().expect("addr"), port);
    d.method = method;
    d.weight = weight;
    d
}

fn adds(s: ServiceConfig, dests: Vec<DestConfig>) -> Vec<Request> {
    let key = s.key;
    let mut v = vec![Request::AddService(s)];
    v.extend(
        dests
            .into_iter()
            .map(|dest| Request::AddDest { service: key, dest }),
    );
    v
}

#[test]
fn example_configuration_maps_to_api_requests() {
    let (model, notices) = Model::load(data("keepalived.conf")).expect("the 1.7 example loads");
    use ForwardMethod::{Masq as Nat, Route as Dr};
    let mut http = svc(tcp("198.18.0.10", 80), "wlc", svc_flags::PERSISTENT);
    http.timeout_secs = 300;
    http.netmask = 0xFFFF_FF00;
    let mut expected = Vec::new();
    expected.extend(adds(
        svc(tcp("198.18.0.10", 443), "mh", svc_flags::MH_PORT),
        vec![
            dest("198.19.0.11", 443, Dr, 100),
            dest("198.19.0.12", 443, Dr, 100),
            dest("198.19.0.13", 443, Dr, 50),
        ],
    ));
    expected.extend(adds(
        http,
        vec![
            dest("198.19.0.11", 80, Dr, 100),
            dest("198.19.0.12", 80, Dr, 100),
        ],
    ));
    expected.extend(adds(
        svc(tcp("2001:db8:10::10", 443), "mh", 0),
        vec![
            dest("2001:db8:20::11", 443, Dr, 1),
            dest("2001:db8:20::12", 443, Dr, 1),
        ],
    ));
    expected.extend(adds(
        svc(udp("198.18.0.53", 53), "rr", svc_flags::ONEPACKET),
        vec![
            dest("198.19.0.21", 53, Nat, 1),
            dest("198.19.0.22", 53, Nat, 1),
        ],
    ));
    expected.extend(adds(
        svc(tcp("198.18.0.53", 53), "rr", 0),
        vec![
            dest("198.19.0.21", 53, Nat, 1),
            dest("198.19.0.22", 53, Nat, 1),
        ],
    ));
    expected.extend(adds(
        svc(udp("198.18.0.53", 123), "sh", svc_flags::SH_PORT),
        vec![dest("198.19.0.21", 123, Nat, 1)],
    ));
    expected.extend(adds(
        svc(tcp("198.18.0.10", 25), "lc", 0),
        vec![
            dest("198.19.0.31", 25, Nat, 1),
            dest("198.19.0.32", 25, Nat, 1),
        ],
    ));
    expected.extend(adds(
        svc(tcp("198.18.0.10", 5432), "wrr", 0),
        vec![
            dest("198.19.0.41", 5432, Nat, 10),
            dest("198.19.0.42", 5432, Nat, 10),
        ],
    ));
    let got = diff(&Model::default(), &model);
    assert_eq!(got.len(), expected.len(), "{got:#?}");
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "request {i}");
    }
    for r in &got {
        r.validate()
            .expect("every request passes rvs-api validation");
    }

    // Globals.
    let g = &model.globals;
    assert_eq!(
        g.start_requests(),
        [
            Request::Flush,
            Request::SetTimeouts(rvs_api::Timeouts {
                tcp: 900,
                tcp_fin: 120,
                udp: 300
            })
        ]
    );
    let t = g.lvs_timeouts.expect("lvs_timeouts");
    assert_eq!((t.tcp, t.tcp_fin, t.udp), (900, 120, 300));
    assert!(g.lvs_flush && g.enable_script_security);
    let sync = g.lvs_sync_daemon.as_ref().expect("lvs_sync_daemon parsed");
    assert_eq!(
        (sync.interface.as_str(), sync.instance.as_deref(), sync.id),
        ("eth1", Some("VI_EXT"), Some(51))
    );

    // Service-level settings that are not api fields.
    let vs443 = &model.virtual_servers[0];
    assert_eq!((vs443.quorum, vs443.hysteresis), (150, 50));
    assert!(vs443.omega);
    let sorry = vs443.sorry_server.as_ref().expect("sorry server");
    assert_eq!(
        (sorry.addr, sorry.port),
        ("198.19.0.250".parse().expect("addr"), Some(443))
    );
    assert!(vs443.real_servers.iter().all(|r| r.inhibit_on_failure));
    let rs = &vs443.real_servers[0];
    let c = &rs.checks[0];
    assert_eq!(c.kind.name(), "SSL_GET");
    assert!(c.alpha, "alpha inherited from the virtual server");
    assert!(!c.enabled, "SSL_GET is disabled without TLS");
    assert_eq!(c.timing.delay_loop.as_secs(), 5);
    assert_eq!(c.timing.connect_timeout.as_secs(), 3);
    assert_eq!(c.timing.retry, 2);
    let CheckKind::Http(h) = &c.kind else {
        panic!("http")
    };
    assert_eq!(h.virtualhost.as_deref(), Some("www.example.com"));
    assert_eq!(h.urls[0].status, vec![(200, 200)]);

    let vs80 = &model.virtual_servers[1];
    let CheckKind::Http(h) = &vs80.real_servers[0].checks[0].kind else {
        panic!("http")
    };
    assert_eq!(h.urls[0].status, vec![(200, 299)]);
    assert_eq!(
        rvs_health::probe::md5::hex(&h.urls[0].digest.expect("digest")),
        "9b3a0c85a887a256d6939da88aabd8cd"
    );
    let tcp_check = &vs80.real_servers[1].checks[0];
    assert_eq!(tcp_check.conn.connect_port, Some(80));
    assert_eq!(tcp_check.timing.delay_before_retry.as_secs(), 2);

    let dns = &model.virtual_servers[3].real_servers[0].checks[0];
    let CheckKind::Dns(d) = &dns.kind else {
        panic!("dns")
    };
    assert_eq!((d.qtype, d.name.as_str()), (DnsType::A, "www.example.com."));
    assert_eq!(dns.timing.retry, 2);
    let dns2 = &model.virtual_servers[3].real_servers[1].checks[0];
    assert_eq!(dns2.timing.retry, 3, "DNS default retry");
    assert_eq!(dns2.timing.delay_before_retry, dns2.timing.delay_loop);

    let ntp = &model.virtual_servers[5].real_servers[0];
    let CheckKind::Udp(u) = &ntp.checks[0].kind else {
        panic!("udp")
    };
    assert_eq!(
        u.payload.len(),
        47,
        "the example's payload is 94 hex digits"
    );
    assert_eq!(u.payload[0], 0x1b);
    assert!(u.require_reply.is_some());
    assert_eq!((u.min_reply_length, u.max_reply_length), (48, 1024));
    assert_eq!(ntp.checks[1].kind, CheckKind::Ping);

    let pg = &model.virtual_servers[7].real_servers[0].checks[0];
    let CheckKind::Misc(m) = &pg.kind else {
        panic!("misc")
    };
    assert_eq!(
        m.argv,
        ["/usr/local/lib/keepalived/check_pg_primary", "198.19.0.41"]
    );
    assert!(m.dynamic);
    assert_eq!(m.timeout.as_secs(), 5);
    assert_eq!(m.user.as_deref(), Some("nobody"), "script_user applies");
    assert_eq!(pg.timing.retry, 0, "MISC default retry");

    // Every VRRP section is reported with its line, and nothing else is silent.
    let vrrp: Vec<(u32, &str)> = notices
        .iter()
        .filter(|n| matches!(&n.kind, NoticeKind::NotHandled(m) if m.starts_with("VRRP section")))
        .map(|n| (n.pos.line, n.keyword.as_str()))
        .collect();
    assert_eq!(
        vrrp,
        [
            (21, "vrrp_script"),
            (29, "vrrp_sync_group"),
            (36, "vrrp_instance"),
            (59, "vrrp_instance")
        ]
    );
    let text: Vec<String> = notices.iter().map(ToString::to_string).collect();
    let file = data("keepalived.conf");
    let f = file.display();
    for want in [
        format!("{f}:5: router_id: ignored: global_defs keyword without effect in rvs"),
        format!("{f}:15: track_file: not handled: section outside the LVS side: skipped"),
        format!("{f}:128: FILE_CHECK: checker disabled: FILE_CHECK is not implemented in rvs"),
        format!("{f}:262: SMTP_CHECK: checker disabled: SMTP_CHECK is not implemented in rvs"),
        format!(
            "{f}:152: regex: ignored: body regex matching is not implemented; only status and digest are checked"
        ),
    ] {
        assert!(text.contains(&want), "missing notice {want:?} in {text:#?}");
    }
}

#[test]
fn errors_name_file_line_and_keyword() {
    let cases: &[(&str, &str)] = &[
        (
            "virtual_server 198.18.0.1 80 {\n  lb_algo foo\n}\n",
            "t.conf:2: lb_algo: invalid value 'foo': expected one of rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh twos",
        ),
        (
            "virtual_server 198.18.0.1 80 {\n  real_server 198.19.0.1 80 {\n    weight -1\n  }\n}\n",
            "t.conf:3: weight: invalid value '-1': expected a weight (0..=2147483647)",
        ),
        (
            "virtual_server 198.18.0.1 80 {\n  real_server 198.19.0.1 80 {\n    wieght 3\n  }\n}\n",
            "t.conf:3: wieght: unknown keyword in real_server",
        ),
        (
            "virtual_server 198.18.0.1 80 {\n  lb_algo rr\n",
            "t.conf:1: virtual_server: block is not closed (missing '}')",
        ),
        (
            "virtual_server 198.18.0.1 80 {\n}\n}\n",
            "t.conf:3: }: '}' without a matching '{'",
        ),
        (
            "virtual_server 198.18.0.1 80 {\n  lb_algo rr\n  sh-port\n}\n",
            "t.conf:3: sh-port: flag for the sh scheduler, but lb_algo is rr",
        ),
        (
            "virtual_server 198.18.0.1 80 {\n  lb_kind DR\n  real_server 198.19.0.1 8080 {\n  }\n}\n",
            "t.conf:3: real_server: TCP 198.18.0.1:80: destination port must equal the service port for direct routing and tunneling",
        ),
        (
            "virtual_server 198.18.0.1 {\n}\n",
            "t.conf:1: virtual_server: TCP 198.18.0.1:0: zero port specified for non-persistent service",
        ),
        (
            "virtual_server 198.18.0.1 80 {\n  quorum_up \"/bin/true\n}\n",
            "t.conf:2: quorum_up: unterminated quoted string",
        ),
        (
            "virtual_server 198.18.0.1 80 {\n}\n\nvirtual_server 198.18.0.1 80 {\n}\n",
            "t.conf:4: virtual_server: service TCP 198.18.0.1:80 already declared at t.conf:1",
        ),
        (
            "virtual_server 198.18.0.1 80 {\n  real_server 198.19.0.1 80 {\n    uthreshold 10\n    lthreshold 20\n  }\n}\n",
            "t.conf:4: lthreshold: lthreshold 20 is above uthreshold 10",
        ),
        (
            "virtual_server group NOPE {\n}\n",
            "t.conf:1: virtual_server: no virtual_server_group named NOPE",
        ),
        (
            "virtual_server 198.18.0.1 80 {\n  real_server 198.19.0.1 80 {\n    HTTP_GET {\n      connect_timeout 3\n    }\n  }\n}\n",
            "t.conf:3: HTTP_GET: needs at least one url { path ... } block",
        ),
        (
            "virtual_server 198.18.0.1 80 {\n  real_server 198.19.0.1 80 {\n    HTTP_GET {\n      url {\n        path /\n        status_code 700\n      }\n    }\n  }\n}\n",
            "t.conf:6: status_code: invalid value '700': expected a status code (100..=599)",
        ),
        (
            "virtual_server 198.18.0.1 80 {\n  real_server 198.19.0.1 80 {\n    HTTP_GET {\n      url {\n        path /\n        digest 9b3a\n      }\n    }\n  }\n}\n",
            "t.conf:6: digest: invalid value '9b3a': expected 32 hex digits",
        ),
        (
            "virtual_server 198.18.0.1 80 {\n  lb_kind DR csum\n}\n",
            "t.conf:2: lb_kind: unexpected argument 'csum'",
        ),
        (
            "virtual_server 198.18.0.1 80 {\n  lb_kind TUN type gue\n}\n",
            "t.conf:2: lb_kind: missing argument: expected port N after type gue",
        ),
        (
            "global_defs {\n  @lb1 router_id lb1\n}\n",
            "t.conf:2: @lb1: not supported: conditional configuration lines (@name)",
        ),
        (
            "vrrp_instnace VI_1 {\n}\n",
            "t.conf:1: vrrp_instnace: unknown keyword in the top level",
        ),
        (
            "virtual_server 198.18.0.1 80 {\n  delay_loop 0\n}\n",
            "t.conf:2: delay_loop: invalid value '0': expected a positive number of seconds (at most 2678400, up to 6 decimals)",
        ),
        (
            "virtual_server 2001:db8::1 80 {\n  persistence_timeout 60\n  persistence_granularity 255.255.255.0\n}\n",
            "t.conf:1: virtual_server: TCP [2001:db8::1]:80: persistence_granularity of an IPv6 service must be a prefix length",
        ),
        (
            "virtual_server 198.18.0.1 80 {\n  real_server 2001:db8::5 80 {\n  }\n}\n",
            "t.conf:2: real_server: TCP 198.18.0.1:80: different address family is allowed only for tunneling servers",
        ),
        (
            "virtual_server fwmark 7 {\n  real_server 198.19.0.1 {\n    TCP_CHECK {\n    }\n  }\n}\n",
            "t.conf:3: TCP_CHECK: no port to probe: the real server has none, set connect_port",
        ),
        (
            "virtual_server 198.18.0.1 80 {\n  real_server 198.19.0.1 80 {\n    MISC_CHECK {\n      misc_path /bin/true\n      connect_port 80\n    }\n  }\n}\n",
            "t.conf:5: connect_port: unknown keyword in MISC_CHECK",
        ),
        (
            "virtual_server_group G {\n  198.18.0.0/8 80\n}\n",
            "t.conf:2: 198.18.0.0/8: group has more than 4096 members",
        ),
        (
            "virtual_server 198.18.0.1 80 {\n  { lb_algo rr }\n}\n",
            "t.conf:2: {: '{' without a keyword before it",
        ),
        (
            "virtual_server 198.18.0.1 80 {\n  real_server 198.19.0.1 80 {\n  }\n  real_server 198.19.0.1 80 {\n  }\n}\n",
            "t.conf:4: real_server: real server already declared at t.conf:2",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(&err(text), want, "for:\n{text}");
    }
}

#[test]
fn deep_nesting_and_bad_bytes_are_errors() {
    let deep = "a {\n".repeat(40);
    assert_eq!(err(&deep), "t.conf:17: a: blocks nested deeper than 16");
    let dir = TempDir::new("bytes");
    let p = dir.path().join("bad.conf");
    std::fs::write(&p, b"global_defs {\n  router_id \xff\n}\n").expect("write");
    let e = Model::load(&p).expect_err("non-UTF-8 refused");
    assert_eq!(
        e.to_string(),
        format!("{}:2: router_id: line is not valid UTF-8", p.display())
    );
    let e = Model::load(dir.path().join("missing.conf")).expect_err("missing file");
    assert!(matches!(e.kind, ErrorKind::Io { .. }));
    assert!(e.pos.is_none());
}

#[test]
fn syntax_variants_keepalived_accepts() {
    let m = parse(
        "# comment\n! other comment\nvirtual_server 198.18.0.1 80\n{\n  lb_algo rr ! trailing\n  \
         real_server 198.19.0.1 80 { weight 4 }\n  real_server 198.19.0.2 80 {\n    HTTP_GET { url { path /x\n      status_code 200 301-302 } }\n  }\n}\n",
    );
    let vs = &m.virtual_servers[0];
    assert_eq!(vs.scheduler, "rr");
    assert_eq!(vs.real_servers[0].weight, 4);
    let CheckKind::Http(h) = &vs.real_servers[1].checks[0].kind else {
        panic!("http")
    };
    assert_eq!(h.urls[0].path, "/x");
    assert_eq!(h.urls[0].status, vec![(200, 200), (301, 302)]);
}

#[test]
fn groups_tunnels_and_persistence() {
    let m = parse(
        "virtual_server_group WEB {\n  198.18.0.1-3 80\n  2001:db8::a-b 80\n  fwmark 9 inet6\n}\n\
         virtual_server group WEB {\n  lb_algo wlc\n  lb_kind TUN type gue port 6080 csum\n  persistence_timeout\n  persistence_granularity 24\n  \
         real_server 198.19.0.9 80 {\n  }\n}\n",
    );
    let g = &m.groups["WEB"];
    assert_eq!(g.members.len(), 6);
    assert_eq!(
        g.members[5],
        GroupMember::Fwmark {
            mark: 9,
            family: Some(rvs_api::Family::V6)
        }
    );
    let api = to_api(&m);
    assert_eq!(api.len(), 6);
    assert_eq!(api[0].0.key, tcp("198.18.0.1", 80));
    assert_eq!(api[2].0.key, tcp("198.18.0.3", 80));
    assert_eq!(
        api[0].0.timeout_secs, 360,
        "persistence_timeout alone is 360 s"
    );
    assert_eq!(api[0].0.netmask, 0xFFFF_FF00);
    assert_eq!(api[3].0.netmask, 24, "IPv6 granularity is a prefix length");
    let d = &api[3].1[0];
    assert_eq!(d.method, ForwardMethod::Tunnel);
    assert_eq!(
        (d.tun_type, d.tun_port, d.tun_flags),
        (rvs_api::TunnelType::Gue, 6080, rvs_api::TunnelCsum::Csum)
    );
    assert_eq!(
        api[5].0.key,
        ServiceKey::Fwmark {
            af: rvs_api::Family::V6,
            mark: 9
        }
    );
    assert_eq!(api[5].1[0].port, 80, "the real server's own port");
}

#[test]
fn includes_are_relative_sorted_and_bounded() {
    let dir = TempDir::new("include");
    let d = dir.path();
    std::fs::create_dir_all(d.join("conf.d")).expect("mkdir");
    std::fs::write(
        d.join("main.conf"),
        "global_defs {\n  lvs_flush\n}\ninclude conf.d/*.conf\ninclude conf.d/none-*.conf\n",
    )
    .expect("write");
    std::fs::write(
        d.join("conf.d/20-b.conf"),
        "virtual_server 198.18.0.2 80 {\n}\n",
    )
    .expect("write");
    std::fs::write(
        d.join("conf.d/10-a.conf"),
        "virtual_server 198.18.0.1 80 {\n}\n",
    )
    .expect("write");
    std::fs::write(d.join("conf.d/skip.txt"), "garbage {\n").expect("write");
    let (m, notices) = Model::load(d.join("main.conf")).expect("loads");
    let keys: Vec<_> = to_api(&m).into_iter().map(|e| e.0.key).collect();
    assert_eq!(keys, [tcp("198.18.0.1", 80), tcp("198.18.0.2", 80)]);
    assert!(m.globals.lvs_flush);
    assert_eq!(notices.len(), 1);
    assert_eq!(
        notices[0].to_string(),
        format!(
            "{}:5: include: ignored: pattern conf.d/none-*.conf matched no file",
            d.join("main.conf").display()
        )
    );

    // An error inside an included file names that file.
    std::fs::write(
        d.join("conf.d/30-c.conf"),
        "\nvirtual_server 198.18.0.3 80 {\n  lb_algo nope\n}\n",
    )
    .expect("write");
    let e = Model::load(d.join("main.conf")).expect_err("bad include");
    assert_eq!(
        e.to_string(),
        format!(
            "{}:3: lb_algo: invalid value 'nope': expected one of rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh twos",
            d.join("conf.d/./30-c.conf").display()
        )
        .replace("/./", "/")
    );

    // A missing literal include is an error at the include line.
    std::fs::write(d.join("missing.conf"), "\ninclude nothere.conf\n").expect("write");
    let e = Model::load(d.join("missing.conf")).expect_err("missing include");
    assert!(
        e.to_string().starts_with(&format!(
            "{}:2: include: cannot read {}",
            d.join("missing.conf").display(),
            d.join("nothere.conf").display()
        )),
        "{e}"
    );

    // Cycles and depth.
    std::fs::write(d.join("self.conf"), "include self.conf\n").expect("write");
    let e = Model::load(d.join("self.conf")).expect_err("cycle");
    assert_eq!(
        e.to_string(),
        format!(
            "{}:1: include: {} includes itself",
            d.join("self.conf").display(),
            d.join("self.conf").display()
        )
    );
    for i in 0..12 {
        std::fs::write(
            d.join(format!("chain{i}.conf")),
            format!("include chain{}.conf\n", i + 1),
        )
        .expect("write");
    }
    std::fs::write(d.join("chain12.conf"), "").expect("write");
    let e = Model::load(d.join("chain0.conf")).expect_err("too deep");
    assert_eq!(
        e.to_string(),
        format!(
            "{}:1: include: includes nested deeper than 8",
            d.join("chain8.conf").display()
        )
    );
}

#[test]
fn notices_for_ignored_keywords_and_disabled_checkers() {
    let (_, notices) = Model::parse_str(
        "t.conf",
        "static_ipaddress {\n  198.18.0.1/32 dev eth0\n}\nvirtual_server 198.18.0.1 80 {\n  ha_suspend\n  hashed\n  \
         real_server 198.19.0.1 80 {\n    SSL_GET {\n      url {\n        path /\n      }\n    }\n    TCP_CHECK {\n      bindto 198.19.0.100\n    }\n  }\n}\n",
    )
    .expect("parses");
    let text: Vec<String> = notices.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        [
            "t.conf:1: static_ipaddress: not handled: VRRP section: rvs does not run VRRP",
            "t.conf:5: ha_suspend: ignored: virtual_server keyword without effect in rvs",
            "t.conf:6: hashed: ignored: kernel-internal flag; not settable",
            "t.conf:8: SSL_GET: checker disabled: SSL_GET needs a TLS stack, which this build of rvs does not have",
            "t.conf:13: TCP_CHECK: ignored: bindto/bind_port on TCP probes: std sockets cannot bind before connecting; the routed source is used",
        ]
    );
}

const BASE: &str = "virtual_server 198.18.0.1 80 {\n  lb_algo rr\n  real_server 198.19.0.1 80 {\n    weight 1\n  }\n  real_server 198.19.0.2 80 {\n    weight 2\n  }\n}\n\
                    virtual_server 198.18.0.2 80 {\n  real_server 198.19.0.3 80 {\n  }\n}\n";

#[test]
fn diff_touches_only_what_changed() {
    let old = parse(BASE);
    assert!(
        diff(&old, &old).is_empty(),
        "identical configurations change nothing"
    );

    // Weight change, one removal, one addition, scheduler change on the other service.
    let new = parse(
        "virtual_server 198.18.0.1 80 {\n  lb_algo rr\n  real_server 198.19.0.1 80 {\n    weight 5\n  }\n  real_server 198.19.0.4 80 {\n  }\n}\n\
         virtual_server 198.18.0.2 80 {\n  lb_algo wrr\n  real_server 198.19.0.3 80 {\n  }\n}\n",
    );
    let k1 = tcp("198.18.0.1", 80);
    let k2 = tcp("198.18.0.2", 80);
    assert_eq!(
        diff(&old, &new),
        [
            Request::DelDest {
                service: k1,
                addr: "198.19.0.2".parse().expect("addr"),
                port: 80
            },
            Request::EditDest {
                service: k1,
                dest: dest("198.19.0.1", 80, ForwardMethod::Masq, 5)
            },
            Request::AddDest {
                service: k1,
                dest: dest("198.19.0.4", 80, ForwardMethod::Masq, 1)
            },
            Request::EditService(svc(k2, "wrr", 0)),
        ]
    );

    // Removing a service deletes it (its destinations go with it); adding one adds all.
    let only_second =
        parse("virtual_server 198.18.0.2 80 {\n  real_server 198.19.0.3 80 {\n  }\n}\n");
    assert_eq!(diff(&old, &only_second), [Request::DelService(k1)]);
    let back = diff(&only_second, &old);
    assert_eq!(back[0], Request::AddService(svc(k1, "rr", 0)));
    assert_eq!(back.len(), 3);

    // diff_api works on any two views, e.g. a live table restricted to declared keys.
    let live = to_api(&old);
    assert!(diff_api(&live, &to_api(&old)).is_empty());
}

mod props {
    use proptest::prelude::*;
    use rvs_health::config::Model;

    const TOKENS: &[&str] = &[
        "{",
        "}",
        "\n",
        " ",
        "\"",
        "#",
        "!",
        "virtual_server",
        "real_server",
        "virtual_server_group",
        "global_defs",
        "vrrp_instance",
        "TCP_CHECK",
        "HTTP_GET",
        "MISC_CHECK",
        "UDP_CHECK",
        "DNS_CHECK",
        "url",
        "path",
        "status_code",
        "digest",
        "weight",
        "lb_algo",
        "lb_kind",
        "sh-port",
        "mh-port",
        "ops",
        "persistence_timeout",
        "persistence_granularity",
        "quorum",
        "hysteresis",
        "sorry_server",
        "alpha",
        "inhibit_on_failure",
        "fwmark",
        "group",
        "protocol",
        "UDP",
        "TUN",
        "type",
        "gue",
        "port",
        "DR",
        "NAT",
        "mh",
        "sh",
        "rr",
        "198.18.0.1",
        "198.19.0.2",
        "2001:db8::1",
        "198.18.0.1-5",
        "198.18.0.0/28",
        "80",
        "0",
        "65536",
        "-1",
        "3.5",
        "200-299",
        "lvs_timeouts",
        "tcp",
        "misc_path",
        "misc_dynamic",
        "payload",
        "require_reply",
        "0aXX",
        "lthreshold",
        "uthreshold",
        "@x",
        "$X=",
        "~SEQ",
    ];

    fn cases() -> u32 {
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases()))]

        #[test]
        fn token_soup_never_panics(toks in proptest::collection::vec(proptest::sample::select(TOKENS), 0..200)) {
            let text = toks.join(" ").replace(" \n ", "\n");
            let _ = Model::parse_str("p.conf", &text);
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
            if !text.contains("include") {
                let _ = Model::parse_str("p.conf", &text);
            }
        }

        #[test]
        fn accepted_configs_map_to_valid_requests(toks in proptest::collection::vec(proptest::sample::select(TOKENS), 0..120)) {
            let text = toks.join(" ").replace(" \n ", "\n");
            if let Ok((m, _)) = Model::parse_str("p.conf", &text) {
                for r in rvs_health::diff(&Model::default(), &m) {
                    prop_assert!(r.validate().is_ok(), "{r:?}");
                }
            }
        }
    }
}
