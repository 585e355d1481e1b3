//! Packet-core benchmarks: established-flow forwarding with a large table, and new
//! connections per second for several schedulers, each one frame at a time
//! ([`Balancer::process`]) and in batches of [`BATCH`] frames ([`Balancer::process_batch`]).
//!
//! Run: `cargo bench -p rvs-core --bench core`. Knobs:
//!
//! * `RVS_BENCH_CONNS`: live connections in the established benches (default 1,000,000).
//! * `RVS_BENCH_FLOWS`: flows of the `ws` working set, spread over the whole table
//!   (default 4096). The `random` benches instead pick every packet's flow uniformly among
//!   all live connections, so nearly every lookup misses the caches and the TLB.
//! * `RVS_BENCH_METHODS`: forwarding methods of the established benches, comma-separated
//!   among `dr`, `nat`, `tun` (default all three; filling a table takes seconds).
//!
//! Every iteration copies the frames into receive buffers first, as a NIC would have
//! written them; batch benches report throughput per frame.

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rvs_core::time::Instant;
use rvs_core::{
    Action, BATCH, Balancer, Config, DestConfig, ForwardMethod, FrameBuf, Protocol, RxMeta,
    ServiceConfig, ServiceKey,
};
use rvs_sched::{SchedFlags, SchedKind};
use rvs_testkit::{PacketSpec, flags};

const HEADROOM: usize = 128;
/// Receive buffer size: headroom, a 64-byte frame and tailroom.
const SLOT: usize = 256;
const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
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
    .expect("service added");
    for i in 0..ndests {
        let a = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 19, 0, 0)) + i + 2);
        let mut d = DestConfig::new(a.into(), 80);
        d.method = method;
        lb.add_dest(&key(), d).expect("destination added");
    }
    lb
}

/// Client address and port of flow `i`.
fn client(i: usize) -> (Ipv4Addr, u16) {
    let host = u32::from(Ipv4Addr::new(198, 18, 128, 0)) + (i / 50_000) as u32;
    (Ipv4Addr::from(host), 1024 + (i % 50_000) as u16)
}

/// 64-byte frames: Ethernet 14 + IPv4 20 + TCP 20 + 10 bytes payload.
fn frame(i: usize, f: u8) -> Vec<u8> {
    let (h, p) = client(i);
    PacketSpec::tcp(&h.to_string(), p, "198.18.0.100", 80, f)
        .payload(&[0u8; 10])
        .build()
}

/// RFC 1624 incremental update of a checksum for one 16-bit word changing from `old` to
/// `new`: `HC' = ~(~HC + ~m + m')`.
fn csum_update(hc: u16, old: u16, new: u16) -> u16 {
    let mut s = u32::from(!hc) + u32::from(!old) + u32::from(new);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    !(s as u16)
}

/// Turn a copy of the flow-0 ACK template into flow `i`'s ACK: new source address and
/// port, both checksums updated incrementally (cheap enough not to blur the timed loop).
fn patch(dst: &mut [u8], template: &[u8], i: usize) {
    let (h, p) = client(i);
    dst.copy_from_slice(template);
    let rd = |b: &[u8], at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
    let o = h.octets();
    let (a0, a1) = (
        u16::from_be_bytes([o[0], o[1]]),
        u16::from_be_bytes([o[2], o[3]]),
    );
    let (t0, t1, tp) = (rd(template, 26), rd(template, 28), rd(template, 34));
    let ip = csum_update(csum_update(rd(template, 24), t0, a0), t1, a1);
    let tcp = csum_update(
        csum_update(csum_update(rd(template, 50), t0, a0), t1, a1),
        tp,
        p,
    );
    dst[26..30].copy_from_slice(&o);
    dst[34..36].copy_from_slice(&p.to_be_bytes());
    dst[24..26].copy_from_slice(&ip.to_be_bytes());
    dst[50..52].copy_from_slice(&tcp.to_be_bytes());
}

fn fill(lb: &mut Balancer, n: usize) {
    let mut buf = vec![0u8; SLOT];
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

/// Receive buffers for one batch.
struct Rx {
    bufs: Vec<u8>,
    lens: [usize; BATCH],
    actions: [Action; BATCH],
}

impl Rx {
    fn new() -> Self {
        Self {
            bufs: vec![0u8; SLOT * BATCH],
            lens: [0; BATCH],
            actions: [Action::Pass; BATCH],
        }
    }

    /// The frame slot `j` (to write a frame into, then set its length).
    fn slot(&mut self, j: usize, len: usize) -> &mut [u8] {
        self.lens[j] = len;
        &mut self.bufs[j * SLOT + HEADROOM..j * SLOT + HEADROOM + len]
    }

    /// Process the whole batch.
    fn run(&mut self, lb: &mut Balancer, now: Instant) {
        let mut chunks = self.bufs.chunks_mut(SLOT);
        let lens = self.lens;
        let mut frames: [FrameBuf<'_>; BATCH] = std::array::from_fn(|j| FrameBuf {
            buf: chunks.next().expect("one buffer per frame"),
            offset: HEADROOM,
            len: lens[j],
        });
        lb.process_batch(now, &[], &mut frames, &mut self.actions);
        black_box(&self.actions);
    }
}

fn established(c: &mut Criterion) {
    let n = env("RVS_BENCH_CONNS", 1_000_000);
    let ws = env("RVS_BENCH_FLOWS", 4096);
    let mut g = c.benchmark_group("established");
    g.sample_size(20);
    let now = Instant::from_secs(2);
    // a working set of flows spread over the whole table
    let sample: Vec<Vec<u8>> = (0..4096)
        .map(|k| frame(((k % ws) * 7919) % n, flags::ACK))
        .collect();
    // every flow once, in random order (xorshift-driven Fisher-Yates)
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for i in (1..order.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    let template = frame(0, flags::ACK);
    let flen = template.len();
    for i in [1, 49_999, 50_000, n - 1] {
        let mut f = vec![0u8; flen];
        patch(&mut f, &template, i);
        assert_eq!(f, frame(i, flags::ACK), "patched frame {i}");
    }
    let chosen = std::env::var("RVS_BENCH_METHODS").unwrap_or_else(|_| "dr,nat,tun".into());
    for (name, method) in [
        ("dr", ForwardMethod::DirectRoute),
        ("nat", ForwardMethod::Masq),
        ("tun", ForwardMethod::Tunnel),
    ] {
        if !chosen.split(',').any(|c| c.trim() == name) {
            continue;
        }
        let mut lb = balancer(method, SchedKind::Rr, 10, n + 1024);
        fill(&mut lb, n);
        let name = format!("{method:?}/{n}conns");

        g.throughput(Throughput::Elements(1));
        let mut buf = vec![0u8; SLOT];
        let mut k = 0usize;
        g.bench_function(format!("{name}/ws{ws}"), |b| {
            b.iter(|| {
                let f = &sample[k & 4095];
                k = k.wrapping_add(1);
                buf[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
                let mut fb = FrameBuf {
                    buf: &mut buf,
                    offset: HEADROOM,
                    len: f.len(),
                };
                black_box(lb.process(now, RxMeta::default(), &mut fb))
            })
        });

        g.throughput(Throughput::Elements(BATCH as u64));
        let mut rx = Rx::new();
        let mut k = 0usize;
        g.bench_function(format!("{name}/ws{ws}/batch"), |b| {
            b.iter(|| {
                for j in 0..BATCH {
                    let f = &sample[k & 4095];
                    k = k.wrapping_add(1);
                    rx.slot(j, f.len()).copy_from_slice(f);
                }
                rx.run(&mut lb, now);
            })
        });

        g.throughput(Throughput::Elements(1));
        let mut k = 0usize;
        g.bench_function(format!("{name}/random"), |b| {
            b.iter(|| {
                let i = order[k] as usize;
                k = if k + 1 == n { 0 } else { k + 1 };
                patch(&mut buf[HEADROOM..HEADROOM + flen], &template, i);
                let mut fb = FrameBuf {
                    buf: &mut buf,
                    offset: HEADROOM,
                    len: flen,
                };
                black_box(lb.process(now, RxMeta::default(), &mut fb))
            })
        });

        g.throughput(Throughput::Elements(BATCH as u64));
        let mut k = 0usize;
        g.bench_function(format!("{name}/random/batch"), |b| {
            b.iter(|| {
                for j in 0..BATCH {
                    let i = order[k] as usize;
                    k = if k + 1 == n { 0 } else { k + 1 };
                    patch(rx.slot(j, flen), &template, i);
                }
                rx.run(&mut lb, now);
            })
        });

        let drops = lb.counters().drops;
        assert!(
            drops.iter().all(|&d| d == 0),
            "no packet dropped: {drops:?}"
        );
        eprintln!(
            "{method:?}: {} entries, connection table {} bytes ({:.1} B/entry)",
            lb.connection_count().0,
            lb.connection_table_bytes(),
            lb.connection_table_bytes() as f64 / lb.connection_count().0.max(1) as f64
        );
    }
    g.finish();
}

fn new_connections(c: &mut Criterion) {
    let mut g = c.benchmark_group("new_connection");
    g.sample_size(20);
    let frames: Vec<Vec<u8>> = (0..65_536).map(|i| frame(i, flags::SYN)).collect();
    for sched in [SchedKind::Rr, SchedKind::Wlc, SchedKind::Mh] {
        let mut lb = balancer(ForwardMethod::DirectRoute, sched, 100, 1 << 17);
        let mut buf = vec![0u8; SLOT];
        let mut k = 0usize;
        let mut t = 10u64;
        g.throughput(Throughput::Elements(1));
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
        let mut rx = Rx::new();
        // a multiple of BATCH, so the table empties exactly every 65536 SYNs
        k = 0;
        g.throughput(Throughput::Elements(BATCH as u64));
        g.bench_function(format!("{sched}/100dests/batch"), |b| {
            b.iter(|| {
                if k & 0xffff == 0 {
                    t += 120;
                    lb.handle_timeout(Instant::from_secs(t));
                }
                for j in 0..BATCH {
                    let f = &frames[k & 0xffff];
                    k = k.wrapping_add(1);
                    rx.slot(j, f.len()).copy_from_slice(f);
                }
                rx.run(&mut lb, Instant::from_secs(t));
            })
        });
        let drops = lb.counters().drops;
        assert!(drops.iter().all(|&d| d == 0), "no SYN dropped: {drops:?}");
    }
    g.finish();
}

criterion_group!(benches, established, new_connections);
criterion_main!(benches);
