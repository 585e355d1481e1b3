//! The threaded runner against a TCP listener on 127.0.0.1 (configuration
//! addresses from the test ranges; probes redirected with connect_ip).

use std::net::TcpListener;
use std::time::{Duration, Instant};

use rvs_api::Request;
use rvs_health::check::Action;
use rvs_health::config::{Model, NoticeKind};
use rvs_health::probe::StdProber;
use rvs_health::{Checker, CheckerOptions};

fn conf(port: u16, weight: u32) -> String {
    format!(
        "virtual_server 198.18.0.1 80 {{\n  real_server 198.19.0.1 80 {{\n    weight {weight}\n    TCP_CHECK {{\n      \
         connect_ip 127.0.0.1\n      connect_port {port}\n      connect_timeout 1\n      warmup 0\n      delay_loop 0.1\n      retry 0\n    }}\n  }}\n}}\n"
    )
}

/// Wait (at most `limit`) for an action whose request satisfies `want`.
fn wait_for(c: &Checker, limit: Duration, want: impl Fn(&Request) -> bool) -> Request {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if let Some(a) = c.recv_timeout(Duration::from_millis(50))
            && let Some(r) = a.request()
            && want(&r)
        {
            return r;
        }
    }
    panic!("no matching action within {limit:?}");
}

#[test]
fn runner_follows_a_server_going_down_and_up() {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = l.local_addr().expect("addr").port();
    let (model, _) = Model::parse_str("r.conf", &conf(port, 2)).expect("parses");
    let opts = CheckerOptions {
        seed: 7,
        ..CheckerOptions::default()
    };
    let (checker, notices) = Checker::from_model(&model, opts);
    assert!(notices.is_empty());
    wait_for(&checker, Duration::from_secs(2), |r| {
        matches!(r, Request::AddService(_))
    });
    wait_for(
        &checker,
        Duration::from_secs(2),
        |r| matches!(r, Request::AddDest { dest, .. } if dest.weight == 2),
    );

    // Let a few checks pass, then stop listening: refused connects take it out.
    std::thread::sleep(Duration::from_millis(300));
    let st = checker.status();
    assert!(st[0].up, "{st:?}");
    drop(l);
    wait_for(&checker, Duration::from_secs(3), |r| {
        matches!(r, Request::DelDest { .. })
    });
    assert!(!checker.status()[0].up);

    // Listening again brings it back.
    let _l = TcpListener::bind(("127.0.0.1", port)).expect("rebind the same port");
    wait_for(&checker, Duration::from_secs(3), |r| {
        matches!(r, Request::AddDest { .. })
    });

    // Reload with another weight: only an edit.
    let (model, _) = Model::parse_str("r.conf", &conf(port, 5)).expect("parses");
    assert!(checker.reload_model(&model, &StdProber).is_empty());
    let r = wait_for(&checker, Duration::from_secs(2), |r| {
        matches!(r, Request::EditDest { .. })
    });
    assert!(matches!(r, Request::EditDest { dest, .. } if dest.weight == 5));

    let last = checker.stop();
    let reqs: Vec<Request> = last.iter().filter_map(Action::request).collect();
    assert!(
        matches!(reqs.as_slice(), [Request::DelService(_)]),
        "{reqs:?}"
    );
}

#[test]
fn unsupported_probes_are_reported_and_disabled() {
    let (model, notices) = Model::parse_str(
        "p.conf",
        "virtual_server 198.18.0.1 80 {\n  real_server 198.19.0.1 80 {\n    PING_CHECK {\n    }\n  }\n}\n",
    )
    .expect("parses");
    assert!(notices.is_empty());
    let (checker, notices) = Checker::from_model(&model, CheckerOptions::default());
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].pos.line, 3);
    assert!(
        matches!(&notices[0].kind, NoticeKind::CheckerDisabled(m) if m.starts_with("ping probes are not implemented"))
    );
    // With no checker left, the real server is simply up.
    wait_for(&checker, Duration::from_secs(2), |r| {
        matches!(r, Request::AddDest { .. })
    });
    drop(checker);
}
