//! Packet-core benchmarks: established-flow forwarding with a large table, and new
//! connections per second for several schedulers.
//!
//! Run: `cargo bench -p rvs-core --bench core`. Set `RVS_BENCH_CONNS` to change the number
//! of live connections (default 1,000,000).

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rvs_core::time::Instant;
use rvs_core::{
    Action, Balancer, Config, DestConfig, ForwardMethod, FrameBuf, Protocol, RxMeta, ServiceConfig,
    ServiceKey,
};
use rvs_sched::{SchedFlags, SchedKind};
use rvs_testkit::{PacketSpec, flags};

const HEADROOM: usize = 128;
const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);

fn conns() -> usize {
    std::env::var("RVS_BENCH_CONNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

fn key() -> ServiceKey {
    ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: VIP.into(),
        port: 80,
    }
}

fn balancer(method: ForwardMethod, sched: SchedKind, ndests: u32, capacity: usize) -> Balancer {
    let cfg = Config {
        capacity,
        tunnel_src_v4: Some(Ipv4Addr::new(198, 18, 2, 1)),
        ..Config::default()
    };
    let mut lb = Balancer::new(cfg, Instant::ZERO);
    lb.reserve_connections(capacity);
    lb.add_service(
        ServiceConfig {
            key: key(),
            scheduler: sched,
            sched_flags: SchedFlags::NONE,
            persistence: None,
            one_packet: false,
        },
        Instant::ZERO,
    )
    .unwrap();
    for i in 0..ndests {
        let a = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 19, 0, 0)) + i + 2);
        let mut d = DestConfig::new(a.into(), 80);
        d.method = method;
        lb.add_dest(&key(), d).unwrap();
    }
    lb
}

fn client(i: usize) -> (String, u16) {
    let host = u32::from(Ipv4Addr::new(198, 18, 128, 0)) + (i / 50_000) as u32;
    (Ipv4Addr::from(host).to_string(), 1024 + (i % 50_000) as u16)
}

/// 64-byte frames: Ethernet 14 + IPv4 20 + TCP 20 + 10 bytes payload.
fn frame(i: usize, f: u8) -> Vec<u8> {
    let (h, p) = client(i);
    PacketSpec::tcp(&h, p, "198.18.0.100", 80, f)
        .payload(&[0u8; 10])
        .build()
}

fn fill(lb: &mut Balancer, n: usize) {
    let mut buf = vec![0u8; 256];
    for i in 0..n {
        let f = frame(i, flags::SYN);
        buf[HEADROOM..HEADROOM + f.len()].copy_from_slice(&f);
        let mut fb = FrameBuf {
            buf: &mut buf,
            offset: HEADROOM,
            len: f.len(),
        };
        let a = lb.process(Instant::from_secs(1), RxMeta::default(), &mut fb);
        assert!(matches!(a, Action::Forward(_)), "{a:?}");
    }
}

fn established(c: &mut Criterion) {
    let n = conns();
    let mut g = c.benchmark_group("established");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    for method in [
        ForwardMethod::DirectRoute,
        ForwardMethod::Masq,
        ForwardMethod::Tunnel,
    ] {
        let mut lb = balancer(method, SchedKind::Rr, 10, n + 1024);
        fill(&mut lb, n);
        // a working set of flows spread over the whole table
        let ws: usize = std::env::var("RVS_BENCH_FLOWS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(4096);
        let sample: Vec<Vec<u8>> = (0..4096)
            .map(|k| frame(((k % ws) * 7919) % n, flags::ACK))
            .collect();
        let mut buf = vec![0u8; 256];
        let mut k = 0usize;
        g.bench_function(format!("{method:?}/{n}conns"), |b| {
            b.iter(|| {
                let f = &sample[k & 4095];
                k = k.wrapping_add(1);
                buf[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
                let mut fb = FrameBuf {
                    buf: &mut buf,
                    offset: HEADROOM,
                    len: f.len(),
                };
                black_box(lb.process(Instant::from_secs(2), RxMeta::default(), &mut fb))
            })
        });
        eprintln!(
            "{method:?}: {} entries, connection table ~{} MiB ({} B/entry)",
            lb.connection_count().0,
            lb.connection_table_bytes() >> 20,
            lb.connection_table_bytes() / lb.connection_count().0.max(1)
        );
    }
    g.finish();
}

fn new_connections(c: &mut Criterion) {
    let mut g = c.benchmark_group("new_connection");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    let frames: Vec<Vec<u8>> = (0..65_536).map(|i| frame(i, flags::SYN)).collect();
    for sched in [SchedKind::Rr, SchedKind::Wlc, SchedKind::Mh] {
        let mut lb = balancer(ForwardMethod::DirectRoute, sched, 100, 1 << 17);
        let mut buf = vec![0u8; 256];
        let mut k = 0usize;
        let mut t = 10u64;
        g.bench_function(format!("{sched}/100dests"), |b| {
            b.iter(|| {
                // every 65536 SYNs, move the clock past the SYN_RECV timeout so the table
                // empties and each SYN really creates a connection
                if k & 0xffff == 0 {
                    t += 120;
                    lb.handle_timeout(Instant::from_secs(t));
                }
                let f = &frames[k & 0xffff];
                k = k.wrapping_add(1);
                buf[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
                let mut fb = FrameBuf {
                    buf: &mut buf,
                    offset: HEADROOM,
                    len: f.len(),
                };
                black_box(lb.process(Instant::from_secs(t), RxMeta::default(), &mut fb))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, established, new_connections);
criterion_main!(benches);
