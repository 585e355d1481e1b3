//! Micro-benchmarks for rvs-wire: header parsing, full and incremental checksums, and a
//! NAT rewrite done incrementally versus by recomputation.
//!
//! Run with `cargo bench -p rvs-wire`; on a shared machine treat the numbers as rough.

use core::hint::black_box;
use core::net::{IpAddr, Ipv4Addr};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rvs_wire::{
    EtherType, EthernetAddress, EthernetRepr, IpProtocol, Ipv4Packet, Ipv4Repr, TcpPacket, TcpRepr,
    checksum, parse_l2, tcp_flags,
};

const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 80);
const RIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);

/// An Ethernet + IPv4 + TCP frame of `len` bytes (at least 54).
fn frame(len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    let eth = EthernetRepr {
        src_addr: EthernetAddress([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
        dst_addr: EthernetAddress([0, 0x1b, 0x21, 0x3a, 0x4f, 0x10]),
        ethertype: EtherType::Ipv4,
    };
    let l3 = eth.emit_tagged(&mut buf, None).expect("room for ethernet");
    let payload: Vec<u8> = (0..len - l3 - 40).map(|i| i as u8).collect();
    let tcp = TcpRepr {
        src_port: 50594,
        dst_port: 80,
        seq_number: 1,
        ack_number: 1,
        flags: tcp_flags::ACK | tcp_flags::PSH,
        window: 502,
        urgent: 0,
        options: &[],
        payload: &payload,
    };
    let mut ip = Ipv4Repr::new(CLIENT, VIP, IpProtocol::Tcp, tcp.buffer_len(), 64);
    ip.dont_frag = true;
    ip.emit(&mut Ipv4Packet::new_unchecked(&mut buf[l3..]))
        .expect("room for ipv4");
    tcp.emit(
        &mut TcpPacket::new_unchecked(&mut buf[l3 + 20..]),
        &IpAddr::V4(CLIENT),
        &IpAddr::V4(VIP),
    )
    .expect("room for tcp");
    buf
}

/// What the data plane reads from every packet: the 5-tuple and the TCP flags.
fn parse(frame: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr, u16, u16, u8)> {
    let l2 = parse_l2(frame).ok()?;
    if l2.ethertype != EtherType::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(frame.get(l2.l3_offset..)?).ok()?;
    if ip.next_header() != IpProtocol::Tcp || ip.is_fragment() {
        return None;
    }
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    Some((
        ip.src_addr(),
        ip.dst_addr(),
        tcp.src_port(),
        tcp.dst_port(),
        tcp.flags(),
    ))
}

fn bench_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(1));
    let f = frame(74);
    g.bench_function("eth_ipv4_tcp", |b| b.iter(|| parse(black_box(&f))));
    g.bench_function("eth_ipv4_tcp_verify_ip_checksum", |b| {
        b.iter(|| {
            let f = black_box(&f);
            let ip = Ipv4Packet::new_checked(&f[14..]).expect("valid");
            (parse(f), ip.verify_checksum())
        })
    });
    g.finish();
}

fn bench_checksum(c: &mut Criterion) {
    let mut g = c.benchmark_group("checksum_full");
    for len in [64usize, 512, 1500] {
        let data: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_with_input(BenchmarkId::from_parameter(len), &data, |b, d| {
            b.iter(|| checksum::data(black_box(d)))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("checksum_incremental");
    g.throughput(Throughput::Elements(1));
    g.bench_function("update16", |b| {
        b.iter(|| checksum::update16(black_box(0x1c46), black_box(80), black_box(8080)))
    });
    g.bench_function("update32", |b| {
        b.iter(|| {
            checksum::update32(
                black_box(0x1c46),
                black_box(u32::from(VIP)),
                black_box(u32::from(RIP)),
            )
        })
    });
    g.bench_function("update_bytes_v4", |b| {
        let (o, n) = (VIP.octets(), RIP.octets());
        b.iter(|| checksum::update_bytes(black_box(0x1c46), black_box(&o), black_box(&n)))
    });
    g.bench_function("update_bytes_v6", |b| {
        let o = [0x20u8, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80];
        let n = [0x20u8, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x05];
        b.iter(|| checksum::update_bytes(black_box(0x1c46), black_box(&o), black_box(&n)))
    });
    g.finish();
}

/// NAT VIP:80 -> RIP:8080 on a 1500-byte frame, both ways of fixing the checksums.
fn bench_nat(c: &mut Criterion) {
    let mut g = c.benchmark_group("nat_rewrite_1500");
    g.throughput(Throughput::Elements(1));
    let original = frame(1500);
    g.bench_function("incremental", |b| {
        let mut f = original.clone();
        b.iter(|| {
            let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
            let old = ip.dst_addr();
            let new = if old == VIP { RIP } else { VIP };
            let (oport, nport) = if old == VIP { (80, 8080) } else { (8080, 80) };
            let hc = checksum::update32(ip.checksum(), old.into(), new.into());
            ip.set_dst_addr(new);
            ip.set_checksum(hc);
            let mut tcp = TcpPacket::new_unchecked(ip.payload_mut());
            let mut c = checksum::update32(tcp.checksum(), old.into(), new.into());
            c = checksum::update16(c, oport, nport);
            tcp.set_dst_port(nport);
            tcp.set_checksum(c);
            black_box(&f);
        })
    });
    g.bench_function("recompute", |b| {
        let mut f = original.clone();
        b.iter(|| {
            let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
            let old = ip.dst_addr();
            let new = if old == VIP { RIP } else { VIP };
            let nport = if old == VIP { 8080 } else { 80 };
            ip.set_dst_addr(new);
            ip.fill_checksum();
            let src = IpAddr::V4(ip.src_addr());
            let mut tcp = TcpPacket::new_unchecked(ip.payload_mut());
            tcp.set_dst_port(nport);
            tcp.fill_checksum(&src, &IpAddr::V4(new));
            black_box(&f);
        })
    });
    g.finish();
}

fn bench_emit(c: &mut Criterion) {
    let mut g = c.benchmark_group("emit");
    g.throughput(Throughput::Elements(1));
    g.bench_function("eth_ipv4_tcp_syn", |b| {
        let mut buf = [0u8; 54];
        b.iter(|| {
            let eth = EthernetRepr {
                src_addr: EthernetAddress([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
                dst_addr: EthernetAddress([0, 0x1b, 0x21, 0x3a, 0x4f, 0x10]),
                ethertype: EtherType::Ipv4,
            };
            let tcp = TcpRepr {
                src_port: black_box(50594),
                dst_port: 80,
                seq_number: 1,
                ack_number: 0,
                flags: tcp_flags::SYN,
                window: 64240,
                urgent: 0,
                options: &[],
                payload: &[],
            };
            let ip = Ipv4Repr::new(CLIENT, VIP, IpProtocol::Tcp, tcp.buffer_len(), 64);
            let l3 = eth.emit_tagged(&mut buf, None).expect("room");
            ip.emit(&mut Ipv4Packet::new_unchecked(&mut buf[l3..]))
                .expect("room");
            tcp.emit(
                &mut TcpPacket::new_unchecked(&mut buf[l3 + 20..]),
                &IpAddr::V4(CLIENT),
                &IpAddr::V4(VIP),
            )
            .expect("room");
            black_box(&buf);
        })
    });
    g.finish();
}

criterion_group!(benches, bench_parse, bench_checksum, bench_nat, bench_emit);
criterion_main!(benches);
