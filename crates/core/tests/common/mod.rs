//! Shared helpers for the core's integration tests.
#![allow(dead_code, unreachable_pub)]

use rvs_core::time::Instant;
use rvs_core::{
    Action, Balancer, Config, DestConfig, ForwardMethod, FrameBuf, Persistence, Protocol, RxMeta,
    ServiceConfig, ServiceKey,
};
use rvs_sched::{SchedFlags, SchedKind};
use rvs_testkit::{PacketSpec, Summary, check_frame, with_room};

pub const HEADROOM: usize = 128;

pub fn config() -> Config {
    Config {
        tunnel_src_v4: Some("198.18.2.1".parse().unwrap()),
        tunnel_src_v6: Some("2001:db8:2::1".parse().unwrap()),
        ..Config::default()
    }
}

pub fn tcp_key(addr: &str, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: addr.parse().unwrap(),
        port,
    }
}

pub fn udp_key(addr: &str, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        proto: Protocol::Udp,
        addr: addr.parse().unwrap(),
        port,
    }
}

pub fn svc(key: ServiceKey, sched: SchedKind) -> ServiceConfig {
    ServiceConfig {
        key,
        scheduler: sched,
        sched_flags: SchedFlags::NONE,
        persistence: None,
        one_packet: false,
    }
}

pub fn persistent(key: ServiceKey, sched: SchedKind, secs: u32, v4_mask: u32) -> ServiceConfig {
    ServiceConfig {
        persistence: Some(Persistence {
            timeout_secs: secs,
            v4_mask,
            v6_prefix: 128,
        }),
        ..svc(key, sched)
    }
}

pub fn dest(addr: &str, port: u16, method: ForwardMethod, weight: i32) -> DestConfig {
    let mut d = DestConfig::new(addr.parse().unwrap(), port);
    d.method = method;
    d.weight = weight;
    d
}

/// Run one frame through the balancer; returns the action and the output frame (if any).
pub fn run(lb: &mut Balancer, now: Instant, frame: &[u8]) -> (Action, Option<Vec<u8>>) {
    run_meta(lb, now, RxMeta::default(), frame)
}

pub fn run_meta(
    lb: &mut Balancer,
    now: Instant,
    meta: RxMeta,
    frame: &[u8],
) -> (Action, Option<Vec<u8>>) {
    let mut buf = with_room(frame, HEADROOM, 64);
    let mut f = FrameBuf {
        buf: &mut buf,
        offset: HEADROOM,
        len: frame.len(),
    };
    let a = lb.process(now, meta, &mut f);
    let out = match a {
        Action::Forward(e) | Action::Reply(e) => Some(buf[e.offset..e.offset + e.len].to_vec()),
        _ => None,
    };
    (a, out)
}

/// Forward a packet and return the checked summary of what came out.
pub fn fwd(lb: &mut Balancer, now: Instant, spec: &PacketSpec) -> (Action, Summary, Vec<u8>) {
    let (a, out) = run(lb, now, &spec.build());
    let out = out.unwrap_or_else(|| panic!("expected a frame out, got {a:?}"));
    let s = check_frame(&out).unwrap_or_else(|e| panic!("output frame invalid: {e}"));
    (a, s, out)
}

pub fn next_hop(a: &Action) -> std::net::IpAddr {
    match a {
        Action::Forward(e) | Action::Reply(e) => e.next_hop,
        other => panic!("no egress in {other:?}"),
    }
}
