//! Scheduler benches: one pick with 10/100/1000 destinations for rr, wlc, mh and sh,
//! and the Maglev table build time.
//!
//! Wall-clock figures from a shared two-core machine are indicative only.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rvs_sched::{DestId, DestState, Flow, SchedFlags, SchedKind, Scheduler};

const SIZES: [usize; 3] = [10, 100, 1000];

/// `n` dests with weights 1..=5 and uneven connection counts.
fn dests(n: usize) -> Vec<DestState> {
    (0..n)
        .map(|i| {
            let i32_i = i as i32;
            DestState {
                id: DestId(i as u32),
                addr: IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + i as u32)),
                port: 80,
                weight: 1 + i32_i % 5,
                last_weight: 1 + i32_i % 5,
                active: (i as u32 * 7919) % 101,
                inactive: (i as u32 * 104_729) % 997,
                available: true,
                overloaded: false,
            }
        })
        .collect()
}

/// 1024 distinct client flows.
fn flows() -> Vec<Flow> {
    (0..1024u32)
        .map(|i| Flow {
            proto: 6,
            src: IpAddr::V4(Ipv4Addr::from(
                0xC0A8_0000u32.wrapping_add(i.wrapping_mul(2_654_435_761)),
            )),
            sport: 1024 + (i % 60000) as u16,
            dst: IpAddr::V4(Ipv4Addr::new(10, 255, 0, 1)),
            dport: 80,
        })
        .collect()
}

fn pick(c: &mut Criterion) {
    let fl = flows();
    for (kind, flags) in [
        (SchedKind::Rr, SchedFlags::NONE),
        (SchedKind::Wlc, SchedFlags::NONE),
        (SchedKind::Mh, SchedFlags::PORT),
        (SchedKind::Sh, SchedFlags::PORT),
    ] {
        let mut group = c.benchmark_group(format!("pick/{kind}"));
        group.throughput(Throughput::Elements(1));
        for n in SIZES {
            let ds = dests(n);
            let mut s = Scheduler::new(kind, flags, 1);
            s.init(&ds);
            let mut k = 0usize;
            group.bench_with_input(BenchmarkId::from_parameter(n), &ds, |b, ds| {
                b.iter(|| {
                    k = (k + 1) & 1023;
                    black_box(s.schedule(black_box(ds), &fl[k], 0))
                })
            });
        }
        group.finish();
    }
}

fn mh_build(c: &mut Criterion) {
    let mut group = c.benchmark_group("mh_build");
    for n in SIZES {
        let ds = dests(n);
        let mut s = Scheduler::new(SchedKind::Mh, SchedFlags::NONE, 0);
        group.bench_with_input(BenchmarkId::from_parameter(n), &ds, |b, ds| {
            b.iter(|| s.init(black_box(ds)))
        });
    }
    group.finish();
}

criterion_group!(benches, pick, mh_build);
criterion_main!(benches);
