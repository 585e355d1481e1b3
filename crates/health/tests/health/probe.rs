//! Probes against servers on 127.0.0.1 started by each test; every verdict
//! within its time bound.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use rvs_health::config::{DnsType, HttpVersion, ReplyPattern, UdpCheck, Url};
use rvs_health::probe::{Outcome, ProbeError, ProbeKind, ProbeSpec, md5, run};

use super::TempDir;

/// Slack on top of a probe's timeout for thread scheduling on a busy machine.
const SLACK: Duration = Duration::from_millis(700);

/// Accept one connection (waiting at most 10 s) and hand it to `handler`.
fn serve_once(handler: impl FnOnce(TcpStream) + Send + 'static) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = l.local_addr().expect("local addr");
    l.set_nonblocking(true).expect("nonblocking");
    thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            match l.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false).expect("blocking");
                    s.set_write_timeout(Some(Duration::from_secs(5)))
                        .expect("timeout");
                    s.set_read_timeout(Some(Duration::from_secs(5)))
                        .expect("timeout");
                    handler(s);
                    return;
                }
                Err(_) => thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    addr
}

/// Read the request head (bounded) and return it.
fn read_request(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut b = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16384 {
        match s.read(&mut b) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&b[..n]),
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

fn respond(resp: Vec<u8>) -> SocketAddr {
    serve_once(move |mut s| {
        read_request(&mut s);
        let _ = s.write_all(&resp);
    })
}

fn url(path: &str, status: &[(u16, u16)], digest: Option<&[u8]>) -> Url {
    Url {
        path: path.to_owned(),
        status: status.to_vec(),
        digest: digest.map(md5::digest),
        virtualhost: None,
    }
}

fn http(dst: SocketAddr, urls: Vec<Url>, timeout: Duration) -> (Outcome, Duration) {
    let spec = ProbeSpec {
        kind: ProbeKind::Http {
            dst,
            tls: false,
            host: "www.example.com".to_owned(),
            urls,
            version: HttpVersion::Http10,
        },
        timeout,
    };
    let t = Instant::now();
    let o = run(&spec);
    (o, t.elapsed())
}

fn ok_200(body: &[u8]) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    r.extend_from_slice(body);
    r
}

fn refused_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
    // dropped: nothing listens there any more
}

#[test]
fn tcp_connect_and_refused() {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let spec = ProbeSpec {
        kind: ProbeKind::Tcp {
            dst: l.local_addr().expect("addr"),
        },
        timeout: Duration::from_secs(1),
    };
    assert!(matches!(run(&spec), Outcome::Pass));
    let spec = ProbeSpec {
        kind: ProbeKind::Tcp {
            dst: refused_port(),
        },
        timeout: Duration::from_secs(1),
    };
    let t = Instant::now();
    assert!(matches!(
        run(&spec),
        Outcome::Fail(ProbeError::Connect { .. })
    ));
    assert!(t.elapsed() < SLACK);
}

#[test]
fn http_healthy_with_digest_and_request_shape() {
    let (tx, rx) = std::sync::mpsc::channel();
    let addr = serve_once(move |mut s| {
        let req = read_request(&mut s);
        let _ = tx.send(req);
        let _ = s.write_all(&ok_200(b"hello"));
    });
    let (o, took) = http(
        addr,
        vec![url("/healthz", &[(200, 299)], Some(b"hello"))],
        Duration::from_secs(2),
    );
    assert!(matches!(o, Outcome::Pass), "{o:?}");
    assert!(took < Duration::from_secs(2));
    let req = rx
        .recv_timeout(Duration::from_secs(2))
        .expect("request seen");
    assert!(req.starts_with("GET /healthz HTTP/1.0\r\n"), "{req}");
    assert!(req.contains("\r\nHost: www.example.com\r\n"), "{req}");
    assert!(req.contains("\r\nConnection: close\r\n"), "{req}");

    // Close-delimited body (no Content-Length).
    let addr = respond(b"HTTP/1.0 200 OK\r\nServer: t\r\n\r\nbody until close".to_vec());
    let (o, _) = http(
        addr,
        vec![url("/", &[(200, 200)], Some(b"body until close"))],
        Duration::from_secs(2),
    );
    assert!(matches!(o, Outcome::Pass), "{o:?}");
}

#[test]
fn http_wrong_status_and_ranges() {
    let addr = respond(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n".to_vec());
    let (o, _) = http(
        addr,
        vec![url("/", &[(200, 299)], None)],
        Duration::from_secs(2),
    );
    assert!(matches!(o, Outcome::Fail(ProbeError::Status(503))), "{o:?}");
    let addr = respond(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n".to_vec());
    let (o, _) = http(
        addr,
        vec![url("/", &[(200, 200), (500, 599)], None)],
        Duration::from_secs(2),
    );
    assert!(matches!(o, Outcome::Pass), "{o:?}");
}

#[test]
fn http_wrong_digest() {
    let addr = respond(ok_200(b"changed"));
    let (o, _) = http(
        addr,
        vec![url("/", &[(200, 299)], Some(b"original"))],
        Duration::from_secs(2),
    );
    match o {
        Outcome::Fail(ProbeError::Digest { expected, got }) => {
            assert_eq!(expected, md5::hex(&md5::digest(b"original")));
            assert_eq!(got, md5::hex(&md5::digest(b"changed")));
        }
        other => panic!("expected a digest failure, got {other:?}"),
    }
}

#[test]
fn http_malformed_status_lines() {
    for line in [
        &b"HTTP/1.1 20 OK\r\n\r\n"[..],
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"ICY 200 OK\r\n\r\n",
        b"HTTP/1.1 200OK\r\n\r\n",
        b"\r\n\r\n",
        b"",
    ] {
        let addr = respond(line.to_vec());
        let (o, took) = http(
            addr,
            vec![url("/", &[(200, 299)], None)],
            Duration::from_secs(2),
        );
        assert!(
            matches!(o, Outcome::Fail(ProbeError::BadStatusLine)),
            "{:?}: {o:?}",
            String::from_utf8_lossy(line)
        );
        assert!(took < SLACK, "refused at once");
    }
}

#[test]
fn http_endless_headers_are_cut() {
    let addr = serve_once(|mut s| {
        read_request(&mut s);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\n");
        let line = format!("X-Filler: {}\r\n", "a".repeat(100));
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end && s.write_all(line.as_bytes()).is_ok() {}
    });
    let (o, took) = http(
        addr,
        vec![url("/", &[(200, 299)], None)],
        Duration::from_secs(3),
    );
    assert!(matches!(o, Outcome::Fail(ProbeError::BadHeaders)), "{o:?}");
    assert!(
        took < Duration::from_secs(1),
        "cut at the size bound, not the timeout: {took:?}"
    );
}

#[test]
fn http_slow_drip_cannot_extend_the_deadline() {
    let addr = serve_once(|mut s| {
        read_request(&mut s);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\n");
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end && s.write_all(b"X").is_ok() {
            thread::sleep(Duration::from_millis(50));
        }
    });
    let timeout = Duration::from_millis(800);
    let (o, took) = http(addr, vec![url("/", &[(200, 299)], None)], timeout);
    assert!(matches!(o, Outcome::Fail(ProbeError::Timeout(_))), "{o:?}");
    assert!(
        took >= timeout - Duration::from_millis(50) && took < timeout + SLACK,
        "{took:?}"
    );

    // The same with a dripping body while a digest is wanted.
    let addr = serve_once(|mut s| {
        read_request(&mut s);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end && s.write_all(b"x").is_ok() {
            thread::sleep(Duration::from_millis(50));
        }
    });
    let (o, took) = http(addr, vec![url("/", &[(200, 299)], Some(b"x"))], timeout);
    assert!(matches!(o, Outcome::Fail(ProbeError::Timeout(_))), "{o:?}");
    assert!(took < timeout + SLACK, "{took:?}");
}

#[test]
fn http_huge_body_is_refused() {
    let addr = respond(b"HTTP/1.1 200 OK\r\nContent-Length: 2097152\r\n\r\n".to_vec());
    let (o, _) = http(
        addr,
        vec![url("/", &[(200, 299)], Some(b"x"))],
        Duration::from_secs(2),
    );
    assert!(
        matches!(o, Outcome::Fail(ProbeError::BodyTooLarge(_))),
        "{o:?}"
    );

    let addr = serve_once(|mut s| {
        read_request(&mut s);
        let _ = s.write_all(b"HTTP/1.0 200 OK\r\n\r\n");
        let chunk = vec![b'z'; 64 * 1024];
        for _ in 0..64 {
            if s.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let (o, took) = http(
        addr,
        vec![url("/", &[(200, 299)], Some(b"x"))],
        Duration::from_secs(3),
    );
    assert!(
        matches!(o, Outcome::Fail(ProbeError::BodyTooLarge(_))),
        "{o:?}"
    );
    assert!(took < Duration::from_secs(3));
}

#[test]
fn http_connection_refused() {
    let (o, took) = http(
        refused_port(),
        vec![url("/", &[(200, 299)], None)],
        Duration::from_secs(2),
    );
    assert!(
        matches!(o, Outcome::Fail(ProbeError::Connect { .. })),
        "{o:?}"
    );
    assert!(took < SLACK);
}

#[test]
fn http_every_url_must_pass() {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    thread::spawn(move || {
        for body in [&b"one"[..], b"two"] {
            l.set_nonblocking(false).expect("blocking");
            if let Ok((mut s, _)) = l.accept() {
                s.set_read_timeout(Some(Duration::from_secs(5)))
                    .expect("timeout");
                read_request(&mut s);
                let _ = s.write_all(&ok_200(body));
            }
        }
    });
    let (o, _) = http(
        addr,
        vec![
            url("/a", &[(200, 200)], Some(b"one")),
            url("/b", &[(200, 200)], Some(b"not two")),
        ],
        Duration::from_secs(2),
    );
    assert!(
        matches!(o, Outcome::Fail(ProbeError::Digest { .. })),
        "{o:?}"
    );
}

fn udp_spec(dst: SocketAddr, require: Option<ReplyPattern>, timeout: Duration) -> ProbeSpec {
    ProbeSpec {
        kind: ProbeKind::Udp {
            dst,
            bind: None,
            check: UdpCheck {
                payload: vec![0x1b, 0, 0, 0],
                require_reply: require,
                min_reply_length: 2,
                max_reply_length: 64,
            },
        },
        timeout,
    }
}

/// A UDP server answering `reply(request)` to up to `n` datagrams, for at most 5 s.
fn udp_server(n: usize, reply: impl Fn(&[u8]) -> Option<Vec<u8>> + Send + 'static) -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = s.local_addr().expect("addr");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    thread::spawn(move || {
        let mut buf = [0u8; 2048];
        for _ in 0..n {
            let Ok((len, from)) = s.recv_from(&mut buf) else {
                return;
            };
            if let Some(r) = reply(&buf[..len]) {
                let _ = s.send_to(&r, from);
            }
        }
    });
    addr
}

fn pattern(hex: &str) -> ReplyPattern {
    let bytes = hex
        .as_bytes()
        .chunks(2)
        .map(|p| {
            let nib = |c: u8| match c {
                b'X' => (0, 0),
                c => ((c as char).to_digit(16).expect("hex") as u8, 0xf),
            };
            let (h, hm) = nib(p[0]);
            let (l, lm) = nib(p[1]);
            ((h << 4) | l, (hm << 4) | lm)
        })
        .collect();
    ReplyPattern { bytes }
}

#[test]
fn udp_reply_rules() {
    let echo = |req: &[u8]| {
        let mut r = req.to_vec();
        r[0] = 0x1c;
        Some(r)
    };
    let t = Duration::from_secs(1);
    let addr = udp_server(1, echo);
    assert!(matches!(
        run(&udp_spec(addr, Some(pattern("1cXX")), t)),
        Outcome::Pass
    ));
    let addr = udp_server(1, echo);
    assert!(matches!(
        run(&udp_spec(addr, Some(pattern("1dXX")), t)),
        Outcome::Fail(ProbeError::BadReply(_))
    ));
    let addr = udp_server(1, |_| Some(vec![0x1c]));
    assert!(
        matches!(
            run(&udp_spec(addr, Some(pattern("")), t)),
            Outcome::Fail(ProbeError::BadReply(_))
        ),
        "shorter than min_reply_length"
    );
    // Silence: a failure only when a reply is required.
    let silent = Duration::from_millis(300);
    let addr = udp_server(1, |_| None);
    let start = Instant::now();
    assert!(matches!(run(&udp_spec(addr, None, silent)), Outcome::Pass));
    assert!(start.elapsed() < silent + SLACK);
    let addr = udp_server(1, |_| None);
    assert!(matches!(
        run(&udp_spec(addr, Some(pattern("")), silent)),
        Outcome::Fail(ProbeError::NoReply)
    ));
    // ICMP port unreachable (nothing bound): a failure either way.
    let closed = {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
        s.local_addr().expect("addr")
    };
    let start = Instant::now();
    assert!(matches!(
        run(&udp_spec(closed, None, t)),
        Outcome::Fail(ProbeError::Connect { .. })
    ));
    assert!(start.elapsed() < SLACK);
}

fn dns_spec(dst: SocketAddr) -> ProbeSpec {
    ProbeSpec {
        kind: ProbeKind::Dns {
            dst,
            bind: None,
            qtype: DnsType::A,
            name: "www.example.com.".to_owned(),
        },
        timeout: Duration::from_millis(600),
    }
}

#[test]
fn dns_reply_with_same_id_passes() {
    let addr = udp_server(1, |q| {
        let mut r = q.to_vec();
        r[2] |= 0x80;
        Some(r)
    });
    let o = run(&dns_spec(addr));
    assert!(matches!(o, Outcome::Pass), "{o:?}");
    // Wrong id: ignored, then no reply before the deadline.
    let addr = udp_server(1, |q| {
        let mut r = q.to_vec();
        r[2] |= 0x80;
        r[0] ^= 0xff;
        Some(r)
    });
    let start = Instant::now();
    let o = run(&dns_spec(addr));
    assert!(matches!(o, Outcome::Fail(ProbeError::NoReply)), "{o:?}");
    assert!(start.elapsed() < Duration::from_millis(600) + SLACK);
    // The query itself echoed (QR clear) is not an answer either.
    let addr = udp_server(1, |q| Some(q.to_vec()));
    assert!(matches!(run(&dns_spec(addr)), Outcome::Fail(_)));
}

fn misc(argv: &[&str], dynamic: bool, security: bool, timeout: Duration) -> (Outcome, Duration) {
    let spec = ProbeSpec {
        kind: ProbeKind::Misc {
            argv: argv.iter().map(|s| (*s).to_owned()).collect(),
            user: None,
            dynamic,
            script_security: security,
        },
        timeout,
    };
    let t = Instant::now();
    let o = run(&spec);
    (o, t.elapsed())
}

#[test]
fn misc_exit_codes_timeout_and_security() {
    let t = Duration::from_secs(5);
    assert!(matches!(
        misc(&["/bin/sh", "-c", "exit 0"], false, false, t).0,
        Outcome::Pass
    ));
    assert!(matches!(
        misc(&["/bin/sh", "-c", "exit 1"], true, false, t).0,
        Outcome::Fail(ProbeError::Exit(1))
    ));
    assert!(matches!(
        misc(&["/bin/sh", "-c", "exit 12"], true, false, t).0,
        Outcome::Weight(10)
    ));
    assert!(matches!(
        misc(&["/bin/sh", "-c", "exit 12"], false, false, t).0,
        Outcome::Fail(ProbeError::Exit(12))
    ));
    let short = Duration::from_millis(300);
    let (o, took) = misc(&["/bin/sh", "-c", "exec sleep 10"], false, false, short);
    assert!(matches!(o, Outcome::Fail(ProbeError::Timeout(_))), "{o:?}");
    assert!(took < short + SLACK, "killed at the deadline: {took:?}");
    assert!(matches!(
        misc(&["/nonexistent/check"], false, false, t).0,
        Outcome::Fail(ProbeError::Spawn { .. })
    ));
    // Script security: a program writable by others is refused before it runs.
    let dir = TempDir::new("misc");
    let p = dir.path().join("check.sh");
    std::fs::write(&p, "#!/bin/sh\nexit 0\n").expect("write");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let ps = p.to_str().expect("utf-8 path");
    assert!(matches!(
        misc(&[ps], false, true, t).0,
        Outcome::Fail(ProbeError::Refused(_))
    ));
    // An unknown user is refused.
    let spec = ProbeSpec {
        kind: ProbeKind::Misc {
            argv: vec!["/bin/true".to_owned()],
            user: Some("no-such-user-rvs".to_owned()),
            dynamic: false,
            script_security: false,
        },
        timeout: t,
    };
    assert!(matches!(run(&spec), Outcome::Fail(ProbeError::Refused(_))));
}

#[test]
fn ping_and_ssl_are_not_implemented_here() {
    let spec = ProbeSpec {
        kind: ProbeKind::Ping {
            dst: "127.0.0.1".parse().expect("addr"),
        },
        timeout: Duration::from_secs(1),
    };
    assert!(matches!(
        run(&spec),
        Outcome::Fail(ProbeError::NotImplemented(_))
    ));
}

#[test]
fn notify_scripts_run_without_a_shell() {
    let s = rvs_health::config::Script {
        command: "/bin/sh -c true".to_owned(),
        user: None,
    };
    assert!(matches!(
        rvs_health::probe::run_script(&s, false, Duration::from_secs(5)),
        Outcome::Pass
    ));
    let s = rvs_health::config::Script {
        command: "/bin/logger-that-does-not-exist up".to_owned(),
        user: None,
    };
    assert!(matches!(
        rvs_health::probe::run_script(&s, false, Duration::from_secs(5)),
        Outcome::Fail(ProbeError::Spawn { .. })
    ));
}

/// A TLS server on loopback with a fresh self-signed certificate (rcgen), answering one
/// request with `resp`; returns its address and the SNI it saw.
fn tls_respond(resp: Vec<u8>) -> (SocketAddr, std::sync::mpsc::Receiver<Option<String>>) {
    use std::sync::Arc;
    let cert =
        rcgen::generate_simple_self_signed(vec!["rs.example.com".to_owned()]).expect("certificate");
    let der = rustls::pki_types::CertificateDer::from(cert.cert.der().to_vec());
    let key =
        rustls::pki_types::PrivateKeyDer::try_from(cert.key_pair.serialize_der()).expect("key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![der], key)
        .expect("server config");
    let cfg = Arc::new(cfg);
    let (tx, rx) = std::sync::mpsc::channel();
    let addr = serve_once(move |s| {
        let conn = rustls::ServerConnection::new(cfg).expect("server connection");
        let mut tls = rustls::StreamOwned::new(conn, s);
        let mut buf = Vec::new();
        let mut b = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16384 {
            match tls.read(&mut b) {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&b[..n]),
            }
        }
        let _ = tx.send(tls.conn.server_name().map(str::to_owned));
        let _ = tls.write_all(&resp);
        tls.conn.send_close_notify();
        let _ = tls.flush();
    });
    (addr, rx)
}

#[test]
fn ssl_get_checks_status_and_digest_over_tls() {
    for (resp, want_pass) in [
        (ok_200(b"hello over tls"), true),
        (
            b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n".to_vec(),
            false,
        ),
    ] {
        let (dst, sni) = tls_respond(resp);
        let spec = ProbeSpec {
            kind: ProbeKind::Http {
                dst,
                tls: true,
                host: "rs.example.com".to_owned(),
                urls: vec![url("/", &[(200, 299)], Some(b"hello over tls"))],
                version: HttpVersion::Http10,
            },
            timeout: Duration::from_secs(3),
        };
        let t = Instant::now();
        let o = run(&spec);
        assert!(t.elapsed() < Duration::from_secs(3) + SLACK);
        assert_eq!(o.passed(), want_pass, "{o:?}");
        assert_eq!(
            sni.recv_timeout(Duration::from_secs(3))
                .expect("server saw the handshake"),
            Some("rs.example.com".to_owned()),
            "SNI carries the virtual host"
        );
    }
    // a plain-text server does not pass SSL_GET
    let dst = respond(ok_200(b"x"));
    let spec = ProbeSpec {
        kind: ProbeKind::Http {
            dst,
            tls: true,
            host: "rs.example.com".to_owned(),
            urls: vec![url("/", &[(200, 299)], None)],
            version: HttpVersion::Http10,
        },
        timeout: Duration::from_secs(2),
    };
    assert!(!run(&spec).passed());
}
