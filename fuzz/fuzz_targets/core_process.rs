//! The whole data path: arbitrary frames (and a clock and fwmark from the input) through a
//! balancer with NAT, DR and TUN services over IPv4 and IPv6, flow offload on (the offered
//! flows are accepted or rejected and their traffic reported back, as rvsd does). No panic,
//! a forwarded frame always lies inside the buffer, and the offload events stay consistent
//! (no flow installed twice or removed without being installed).
#![no_main]

use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;
use rvs_core::time::Instant;
use rvs_core::*;
use rvs_sched::{SchedFlags, SchedKind};

fn balancer() -> Balancer {
    let cfg = Config {
        capacity: 4096,
        tunnel_src_v4: Some([198, 18, 2, 1].into()),
        tunnel_src_v6: Some("2001:db8:2::1".parse().unwrap()),
        ..Config::default()
    };
    let mut lb = Balancer::new(cfg, Instant::ZERO);
    lb.set_offload(true);
    let services = [
        ("198.18.0.100", Protocol::Tcp, 80, ForwardMethod::Masq, "198.19.0.2", SchedKind::Rr, None),
        ("198.18.0.100", Protocol::Udp, 53, ForwardMethod::DirectRoute, "198.19.0.3", SchedKind::Sh, None),
        ("198.18.0.100", Protocol::Tcp, 0, ForwardMethod::Tunnel, "198.19.0.4", SchedKind::Wlc, Some(60)),
        ("2001:db8::100", Protocol::Tcp, 80, ForwardMethod::Masq, "2001:db8:9::2", SchedKind::Mh, None),
        ("2001:db8::100", Protocol::Udp, 53, ForwardMethod::Tunnel, "198.19.0.5", SchedKind::Rr, None),
        ("198.18.0.100", Protocol::Sctp, 9, ForwardMethod::Masq, "198.19.0.6", SchedKind::Lc, None),
    ];
    for (vip, proto, port, method, rs, sched, pers) in services {
        let key = ServiceKey::Addr { proto, addr: vip.parse().unwrap(), port };
        lb.add_service(
            ServiceConfig {
                key,
                scheduler: sched,
                sched_flags: SchedFlags::NONE,
                persistence: pers.map(|t| Persistence { timeout_secs: t, ..Persistence::default() }),
                one_packet: false,
            },
            Instant::ZERO,
        )
        .unwrap();
        let mut d = DestConfig::new(rs.parse().unwrap(), 8080);
        d.method = method;
        lb.add_dest(&key, d).unwrap();
    }
    lb
}

type Installed = std::collections::HashSet<(ConnId, OffloadDir)>;

static LB: Mutex<Option<(Balancer, u64, Installed)>> = Mutex::new(None);

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let mut guard = LB.lock().unwrap();
    let (lb, now, installed) = guard.get_or_insert_with(|| (balancer(), 0, Installed::new()));
    *now += u64::from(data[0]) * 50;
    let meta = RxMeta {
        fwmark: u32::from(data[1] & 3),
        marks_unknown: data[1] & 4 != 0,
    };
    let frame = &data[2..];
    let mut buf = vec![0u8; 128 + frame.len() + 64];
    buf[128..128 + frame.len()].copy_from_slice(frame);
    let mut f = FrameBuf { buf: &mut buf, offset: 128, len: frame.len() };
    let t = Instant::from_millis(*now);
    match lb.process(t, meta, &mut f) {
        Action::Forward(e) | Action::Reply(e) => assert!(e.offset + e.len <= 128 + frame.len() + 64),
        _ => {}
    }
    let mut events = Vec::new();
    lb.take_offload_events(&mut events);
    for (i, e) in events.into_iter().enumerate() {
        match e {
            OffloadEvent::Install(f) => {
                assert!(installed.insert((f.conn, f.dir)), "installed twice");
                // reject some (as rvsd does while a next hop is unresolved)
                if data[1] & 8 != 0 && i % 2 == 0 {
                    installed.remove(&(f.conn, f.dir));
                    lb.offload_rejected(f.conn, f.dir);
                }
            }
            OffloadEvent::Remove { conn, dir } => {
                assert!(installed.remove(&(conn, dir)), "removed but not installed");
            }
        }
    }
    // traffic of the offloaded flows, reported back
    if data[1] & 16 != 0 {
        for &(c, d) in installed.iter() {
            lb.offload_seen(t, c, d, u64::from(data[0]), u64::from(data[0]) * 60);
        }
    }
    lb.handle_timeout(t);
    if lb.connection_count().0 > 3000 {
        lb.flush(t);
    }
    let mut events = Vec::new();
    lb.take_offload_events(&mut events);
    for e in events {
        if let OffloadEvent::Remove { conn, dir } = e {
            assert!(installed.remove(&(conn, dir)), "removed but not installed");
        } else {
            panic!("install outside packet processing");
        }
    }
});
