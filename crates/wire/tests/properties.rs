//! Property tests for rvs-wire: emit-then-parse round trips, panic freedom on arbitrary
//! bytes, and RFC 1624 incremental checksum updates against full recomputation.
//!
//! Case counts follow proptest's default (256), overridable with `PROPTEST_CASES`.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use rvs_wire::{
    ArpPacket, ArpRepr, EthernetFrame, EthernetRepr, GuePacket, Icmpv4Packet, Icmpv4Repr,
    Icmpv6Packet, Icmpv6Repr, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, SctpPacket,
    TcpPacket, TcpRepr, UdpPacket, UdpRepr, checksum, icmpv4, icmpv6, ipv6_upper_layer, parse_l2,
    quoted_ipv4,
};

// ---------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------

fn ipv4_addr() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from)
}

fn ipv6_addr() -> impl Strategy<Value = Ipv6Addr> {
    any::<u128>().prop_map(Ipv6Addr::from)
}

/// A source/destination pair of one family.
fn addr_pair() -> impl Strategy<Value = (IpAddr, IpAddr)> {
    prop_oneof![
        (ipv4_addr(), ipv4_addr()).prop_map(|(s, d)| (IpAddr::V4(s), IpAddr::V4(d))),
        (ipv6_addr(), ipv6_addr()).prop_map(|(s, d)| (IpAddr::V6(s), IpAddr::V6(d))),
    ]
}

fn ipv4_repr() -> impl Strategy<Value = Ipv4Repr> {
    (
        ipv4_addr(),
        ipv4_addr(),
        any::<u8>(),
        0usize..2048,
        any::<u8>(),
        any::<u8>(),
        any::<u16>(),
        any::<bool>(),
    )
        .prop_map(
            |(src_addr, dst_addr, proto, payload_len, hop_limit, dscp_ecn, ident, dont_frag)| {
                Ipv4Repr {
                    src_addr,
                    dst_addr,
                    next_header: IpProtocol::from(proto),
                    payload_len,
                    hop_limit,
                    dscp_ecn,
                    ident,
                    dont_frag,
                }
            },
        )
}

fn ipv6_repr() -> impl Strategy<Value = Ipv6Repr> {
    (
        ipv6_addr(),
        ipv6_addr(),
        any::<u8>(),
        0usize..2048,
        any::<u8>(),
        any::<u8>(),
        0u32..(1 << 20),
    )
        .prop_map(
            |(src_addr, dst_addr, nh, payload_len, hop_limit, traffic_class, flow_label)| {
                Ipv6Repr {
                    src_addr,
                    dst_addr,
                    next_header: IpProtocol::from(nh),
                    payload_len,
                    hop_limit,
                    traffic_class,
                    flow_label,
                }
            },
        )
}

/// TCP header fields: ports, seq, ack, flags, window, urgent.
type TcpFields = (u16, u16, u32, u32, u8, u16, u16);

fn tcp_fields() -> impl Strategy<Value = TcpFields> {
    (
        any::<u16>(),
        any::<u16>(),
        any::<u32>(),
        any::<u32>(),
        any::<u8>(),
        any::<u16>(),
        any::<u16>(),
    )
}

/// TCP options: whole 32-bit words, at most 40 bytes.
fn tcp_options() -> impl Strategy<Value = Vec<u8>> {
    (0usize..=10).prop_flat_map(|words| proptest::collection::vec(any::<u8>(), words * 4))
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..300)
}

/// Arbitrary bytes, half of them nudged towards something parsable: a plausible first
/// byte and length fields matching the buffer, so that the checks further in are reached.
fn fuzz_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..160),
        (
            proptest::collection::vec(any::<u8>(), 0..160),
            prop_oneof![Just(0x45u8), Just(0x46), Just(0x4f), Just(0x60), Just(0x00)],
            any::<bool>(),
        )
            .prop_map(|(mut v, first, fix_len)| {
                if let Some(b) = v.first_mut() {
                    *b = first;
                }
                if fix_len && v.len() >= 8 {
                    let len = v.len();
                    if first == 0x60 {
                        let pl = u16::try_from(len.saturating_sub(40)).unwrap_or(0);
                        v[4..6].copy_from_slice(&pl.to_be_bytes());
                    } else {
                        let l = u16::try_from(len).unwrap_or(0);
                        v[2..4].copy_from_slice(&l.to_be_bytes());
                        // Also a valid UDP length at offset 4 for the UDP view.
                        v[4..6].copy_from_slice(&l.to_be_bytes());
                    }
                }
                v
            }),
    ]
}

// ---------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------

proptest! {
    #[test]
    fn ipv4_repr_round_trip(repr in ipv4_repr()) {
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..])).expect("emit");
        let packet = Ipv4Packet::new_checked(&buf[..]).expect("checked");
        prop_assert!(packet.verify_checksum());
        prop_assert_eq!(Ipv4Repr::parse(&packet), Ok(repr));
    }

    #[test]
    fn ipv6_repr_round_trip(repr in ipv6_repr()) {
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Ipv6Packet::new_unchecked(&mut buf[..])).expect("emit");
        let packet = Ipv6Packet::new_checked(&buf[..]).expect("checked");
        prop_assert_eq!(Ipv6Repr::parse(&packet), Ok(repr));
    }

    #[test]
    fn tcp_repr_round_trip(
        f in tcp_fields(),
        options in tcp_options(),
        payload in payload(),
        (src, dst) in addr_pair(),
    ) {
        let repr = TcpRepr {
            src_port: f.0,
            dst_port: f.1,
            seq_number: f.2,
            ack_number: f.3,
            flags: f.4,
            window: f.5,
            urgent: f.6,
            options: &options,
            payload: &payload,
        };
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), &src, &dst).expect("emit");
        let packet = TcpPacket::new_checked(&buf[..]).expect("checked");
        prop_assert!(packet.verify_checksum(&src, &dst));
        prop_assert_eq!(TcpRepr::parse(&packet, &src, &dst), Ok(repr));
    }

    #[test]
    fn udp_repr_round_trip(
        src_port in any::<u16>(),
        dst_port in any::<u16>(),
        payload in payload(),
        (src, dst) in addr_pair(),
    ) {
        let repr = UdpRepr { src_port, dst_port };
        let mut buf = vec![0u8; repr.buffer_len(payload.len())];
        repr.emit(&mut UdpPacket::new_unchecked(&mut buf[..]), &src, &dst, &payload)
            .expect("emit");
        let packet = UdpPacket::new_checked(&buf[..]).expect("checked");
        prop_assert_ne!(packet.checksum(), 0);
        prop_assert_eq!(UdpRepr::parse(&packet, &src, &dst), Ok(repr));
        prop_assert_eq!(packet.payload(), &payload[..]);
    }

    #[test]
    fn checksum_matches_reference(bytes in proptest::collection::vec(any::<u8>(), 0..600),
                                  cut in any::<prop::sample::Index>()) {
        let mut sum: u32 = 0;
        for pair in bytes.chunks(2) {
            sum += (u32::from(pair[0]) << 8) | pair.get(1).map_or(0, |b| u32::from(*b));
            sum = (sum & 0xffff) + (sum >> 16);
        }
        prop_assert_eq!(checksum::data(&bytes), sum as u16);
        // Splitting at an even offset and combining gives the same sum.
        let at = cut.index(bytes.len() + 1) & !1;
        prop_assert_eq!(
            checksum::combine(&[checksum::data(&bytes[..at]), checksum::data(&bytes[at..])]),
            sum as u16
        );
    }
}

// ---------------------------------------------------------------------------------------
// Panic freedom
// ---------------------------------------------------------------------------------------

/// Calls every getter of every view that accepts `bytes`, and every parser.
fn exercise(bytes: &[u8]) {
    let v4 = (
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
    );
    let v6a = Ipv6Addr::LOCALHOST;
    let v6 = (IpAddr::V6(v6a), IpAddr::V6(v6a));

    let _ = parse_l2(bytes);
    if let Ok(f) = EthernetFrame::new_checked(bytes) {
        let _ = (f.dst_addr(), f.src_addr(), f.ethertype(), f.payload().len());
        let _ = EthernetRepr::parse(&f);
    }
    if let Ok(p) = ArpPacket::new_checked(bytes) {
        let _ = (
            p.hardware_type(),
            p.protocol_type(),
            p.hardware_len(),
            p.protocol_len(),
        );
        let _ = (
            p.operation(),
            p.source_hardware_addr(),
            p.source_protocol_addr(),
        );
        let _ = (p.target_hardware_addr(), p.target_protocol_addr());
        let _ = ArpRepr::parse(&p);
    }
    if let Ok(p) = Ipv4Packet::new_checked(bytes) {
        let _ = (p.version(), p.header_len(), p.dscp_ecn(), p.dscp(), p.ecn());
        let _ = (
            p.total_len(),
            p.ident(),
            p.dont_frag(),
            p.more_frags(),
            p.frag_offset(),
        );
        let _ = (
            p.is_fragment(),
            p.hop_limit(),
            p.next_header(),
            p.checksum(),
        );
        let _ = (
            p.src_addr(),
            p.dst_addr(),
            p.options().len(),
            p.payload().len(),
        );
        let _ = (p.verify_checksum(), Ipv4Repr::parse(&p));
        let mut copy = bytes.to_vec();
        let mut m = Ipv4Packet::new_unchecked(&mut copy[..]);
        let _ = m.decrement_ttl();
        m.fill_checksum();
        let _ = (m.payload_mut().len(), m.options_mut().len());
    }
    let _ = icmpv4::quote_of(bytes);
    let _ = icmpv4::may_send_error_about(bytes);
    let _ = quoted_ipv4(bytes);
    if let Ok(p) = Ipv6Packet::new_checked(bytes) {
        let _ = (
            p.version(),
            p.traffic_class(),
            p.flow_label(),
            p.payload_len(),
        );
        let _ = (p.next_header(), p.hop_limit(), p.src_addr(), p.dst_addr());
        let _ = (p.payload().len(), p.packet().len(), Ipv6Repr::parse(&p));
    }
    let _ = ipv6_upper_layer(bytes);
    let _ = icmpv6::quote_of(bytes);
    let _ = icmpv6::may_send_error_about(bytes, false);
    let _ = icmpv6::may_send_error_about(bytes, true);
    if let Ok(p) = TcpPacket::new_checked(bytes) {
        let _ = (p.src_port(), p.dst_port(), p.seq_number(), p.ack_number());
        let _ = (
            p.header_len(),
            p.flags(),
            p.fin(),
            p.syn(),
            p.rst(),
            p.psh(),
        );
        let _ = (p.ack(), p.urg(), p.ece(), p.cwr(), p.window(), p.checksum());
        let _ = (p.urgent(), p.options().len(), p.payload().len());
        let _ = (
            p.verify_checksum(&v4.0, &v4.1),
            p.verify_checksum(&v6.0, &v4.1),
        );
        let _ = TcpRepr::parse(&p, &v6.0, &v6.1);
    }
    if let Ok(p) = UdpPacket::new_checked(bytes) {
        let _ = (
            p.src_port(),
            p.dst_port(),
            p.len(),
            p.checksum(),
            p.payload().len(),
        );
        let _ = (
            p.verify_checksum(&v4.0, &v4.1),
            p.verify_checksum(&v6.0, &v6.1),
        );
        let _ = UdpRepr::parse(&p, &v4.0, &v4.1);
    }
    if let Ok(p) = SctpPacket::new_checked(bytes) {
        let _ = (
            p.src_port(),
            p.dst_port(),
            p.verification_tag(),
            p.checksum(),
        );
        let _ = (
            p.first_chunk_type(),
            p.first_chunk_flags(),
            p.first_chunk_len(),
        );
        let _ = (p.payload().len(), p.verify_checksum());
        let _ = std::format!("{p}");
    }
    if let Ok(p) = Icmpv4Packet::new_checked(bytes) {
        let _ = (
            p.msg_type(),
            p.code(),
            p.checksum(),
            p.echo_ident(),
            p.echo_seq_no(),
        );
        let _ = (
            p.next_hop_mtu(),
            p.pointer(),
            p.rest_of_header(),
            p.payload().len(),
        );
        let _ = (p.quoted().map(quoted_ipv4), p.verify_checksum());
        let _ = Icmpv4Repr::parse(&p);
    }
    if let Ok(p) = Icmpv6Packet::new_checked(bytes) {
        let _ = (
            p.msg_type(),
            p.code(),
            p.checksum(),
            p.echo_ident(),
            p.echo_seq_no(),
        );
        let _ = (
            p.mtu(),
            p.pointer(),
            p.na_flags(),
            p.target_addr(),
            p.payload().len(),
        );
        let _ = (p.quoted(), p.verify_checksum(&v6a, &v6a));
        let _ = Icmpv6Repr::parse(&p, &v6a, &v6a);
        let _ = icmpv6::parse_with_ip(bytes, &v6.0, &v6.1);
    }
    if let Ok(p) = GuePacket::new_checked(bytes) {
        let _ = (
            p.version(),
            p.control(),
            p.hlen(),
            p.header_len(),
            p.proto_ctype(),
        );
        let _ = (p.flags(), p.extensions().len(), p.payload().len());
    }
}

/// ICMP parsers are only reached with a correct checksum: fix it up so the
/// type-specific code runs too.
fn exercise_icmp_with_valid_checksum(bytes: &[u8]) {
    let v6a = Ipv6Addr::LOCALHOST;
    let mut b = bytes.to_vec();
    if let Ok(mut p) = Icmpv4Packet::new_checked(&mut b[..]) {
        p.fill_checksum();
        let p = Icmpv4Packet::new_checked(&b[..]).expect("length unchanged");
        let _ = Icmpv4Repr::parse(&p);
    }
    let mut b = bytes.to_vec();
    if let Ok(mut p) = Icmpv6Packet::new_checked(&mut b[..]) {
        p.fill_checksum(&v6a, &v6a);
        let p = Icmpv6Packet::new_checked(&b[..]).expect("length unchanged");
        let _ = Icmpv6Repr::parse(&p, &v6a, &v6a);
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in fuzz_bytes()) {
        exercise(&bytes);
        exercise_icmp_with_valid_checksum(&bytes);
        // Also at every suffix, as a parser would see an inner header.
        for start in [1usize, 14, 20, 40] {
            if let Some(rest) = bytes.get(start..) {
                exercise(rest);
            }
        }
    }

    #[test]
    fn icmp_nd_types_never_panic(
        msg_type in prop_oneof![Just(135u8), Just(136), Just(1), Just(2), Just(3), Just(4),
                                Just(128), Just(129), Just(0), Just(8), Just(11), Just(12)],
        rest in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        let mut bytes = vec![msg_type, 0, 0, 0];
        bytes.extend_from_slice(&rest);
        exercise(&bytes);
        exercise_icmp_with_valid_checksum(&bytes);
    }
}

// ---------------------------------------------------------------------------------------
// Incremental checksum updates (NAT rewrites)
// ---------------------------------------------------------------------------------------

/// Which L4 protocol a NAT test packet carries.
#[derive(Debug, Clone, Copy)]
enum L4 {
    Tcp,
    Udp,
    /// UDP over IPv4 sent without checksum (field 0).
    UdpNoChecksum,
}

fn l4() -> impl Strategy<Value = L4> {
    prop_oneof![Just(L4::Tcp), Just(L4::Udp), Just(L4::UdpNoChecksum)]
}

/// Builds IP + L4 into a fresh buffer. Returns the buffer and the L4 offset.
fn build(
    kind: L4,
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    body: &[u8],
) -> (Vec<u8>, usize) {
    let l4_len = match kind {
        L4::Tcp => 20 + body.len(),
        L4::Udp | L4::UdpNoChecksum => 8 + body.len(),
    };
    let proto = match kind {
        L4::Tcp => IpProtocol::Tcp,
        _ => IpProtocol::Udp,
    };
    let (mut buf, off) = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let ip = Ipv4Repr::new(s, d, proto, l4_len, 64);
            let mut buf = vec![0u8; ip.buffer_len()];
            ip.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]))
                .expect("ipv4");
            (buf, 20)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let ip = Ipv6Repr::new(s, d, proto, l4_len, 64);
            let mut buf = vec![0u8; ip.buffer_len()];
            ip.emit(&mut Ipv6Packet::new_unchecked(&mut buf[..]))
                .expect("ipv6");
            (buf, 40)
        }
        _ => unreachable!("strategy yields one family"),
    };
    match kind {
        L4::Tcp => {
            let repr = TcpRepr {
                src_port: sport,
                dst_port: dport,
                seq_number: 1,
                ack_number: 2,
                flags: rvs_wire::tcp_flags::ACK,
                window: 512,
                urgent: 0,
                options: &[],
                payload: body,
            };
            repr.emit(&mut TcpPacket::new_unchecked(&mut buf[off..]), &src, &dst)
                .expect("tcp");
        }
        L4::Udp | L4::UdpNoChecksum => {
            let repr = UdpRepr {
                src_port: sport,
                dst_port: dport,
            };
            let mut p = UdpPacket::new_unchecked(&mut buf[off..]);
            repr.emit(&mut p, &src, &dst, body).expect("udp");
            if matches!(kind, L4::UdpNoChecksum) {
                p.set_checksum(0);
            }
        }
    }
    (buf, off)
}

fn l4_checksum(kind: L4, seg: &[u8]) -> u16 {
    match kind {
        L4::Tcp => TcpPacket::new_unchecked(seg).checksum(),
        _ => UdpPacket::new_unchecked(seg).checksum(),
    }
}

fn ip_octets(a: &IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// Rewrites addresses and ports in place like IPVS NAT does, updating every checksum
/// incrementally. `use_u32` selects `update32` instead of `update_bytes` for IPv4.
fn nat_rewrite(
    buf: &mut [u8],
    off: usize,
    kind: L4,
    old: (IpAddr, IpAddr, u16, u16),
    new: (IpAddr, IpAddr, u16, u16),
    use_u32: bool,
) {
    let is_udp = !matches!(kind, L4::Tcp);
    let upd16 = |c: u16, o: u16, n: u16| {
        if is_udp {
            checksum::update16_udp(c, o, n)
        } else {
            checksum::update16(c, o, n)
        }
    };
    let upd_bytes = |c: u16, o: &[u8], n: &[u8]| {
        if is_udp {
            checksum::update_bytes_udp(c, o, n)
        } else {
            checksum::update_bytes(c, o, n)
        }
    };
    let upd32 = |c: u16, o: u32, n: u32| {
        if is_udp {
            checksum::update32_udp(c, o, n)
        } else {
            checksum::update32(c, o, n)
        }
    };

    let mut c = l4_checksum(kind, &buf[off..]);
    for (o, n) in [(old.0, new.0), (old.1, new.1)] {
        c = match (o, n, use_u32) {
            (IpAddr::V4(o), IpAddr::V4(n), true) => upd32(c, o.into(), n.into()),
            _ => upd_bytes(c, &ip_octets(&o), &ip_octets(&n)),
        };
    }
    c = upd16(c, old.2, new.2);
    c = upd16(c, old.3, new.3);

    match (new.0, new.1) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut ip = Ipv4Packet::new_unchecked(&mut buf[..]);
            let mut hc = ip.checksum();
            for (o, n) in [(old.0, s), (old.1, d)] {
                let IpAddr::V4(o) = o else { unreachable!() };
                hc = if use_u32 {
                    checksum::update32(hc, o.into(), n.into())
                } else {
                    checksum::update_bytes(hc, &o.octets(), &n.octets())
                };
            }
            ip.set_src_addr(s);
            ip.set_dst_addr(d);
            ip.set_checksum(hc);
            let _ = ip.decrement_ttl();
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut ip = Ipv6Packet::new_unchecked(&mut buf[..]);
            ip.set_src_addr(s);
            ip.set_dst_addr(d);
        }
        _ => unreachable!(),
    }
    match kind {
        L4::Tcp => {
            let mut p = TcpPacket::new_unchecked(&mut buf[off..]);
            p.set_src_port(new.2);
            p.set_dst_port(new.3);
            p.set_checksum(c);
        }
        _ => {
            let mut p = UdpPacket::new_unchecked(&mut buf[off..]);
            p.set_src_port(new.2);
            p.set_dst_port(new.3);
            p.set_checksum(c);
        }
    }
}

/// One NAT test case: protocol, old and new address pairs, old and new ports
/// (`[old src, old dst, new src, new dst]`), payload, and whether to use `update32`.
type NatCase = (
    L4,
    (IpAddr, IpAddr),
    (IpAddr, IpAddr),
    [u16; 4],
    Vec<u8>,
    bool,
);

fn nat_case() -> impl Strategy<Value = NatCase> {
    prop_oneof![
        (ipv4_addr(), ipv4_addr(), ipv4_addr(), ipv4_addr()).prop_map(|(a, b, c, d)| (
            (IpAddr::V4(a), IpAddr::V4(b)),
            (IpAddr::V4(c), IpAddr::V4(d))
        )),
        (ipv6_addr(), ipv6_addr(), ipv6_addr(), ipv6_addr()).prop_map(|(a, b, c, d)| (
            (IpAddr::V6(a), IpAddr::V6(b)),
            (IpAddr::V6(c), IpAddr::V6(d))
        )),
    ]
    .prop_flat_map(|(old, new)| {
        (
            l4(),
            Just(old),
            Just(new),
            any::<[u16; 4]>(),
            payload(),
            any::<bool>(),
        )
    })
    .prop_filter(
        "UDP without checksum exists over IPv4 only",
        |(k, old, ..)| !matches!(k, L4::UdpNoChecksum) || old.0.is_ipv4(),
    )
}

proptest! {
    #[test]
    fn incremental_update_equals_recompute(
        (kind, (os, od), (ns, nd), ports, body, use_u32) in nat_case(),
    ) {
        let (mut buf, off) = build(kind, os, od, ports[0], ports[1], &body);
        nat_rewrite(&mut buf, off, kind, (os, od, ports[0], ports[1]),
                    (ns, nd, ports[2], ports[3]), use_u32);
        let (expected, _) = build(kind, ns, nd, ports[2], ports[3], &body);

        // The L4 checksum field is bit-identical to a full recomputation.
        prop_assert_eq!(l4_checksum(kind, &buf[off..]), l4_checksum(kind, &expected[off..]));
        match kind {
            L4::Tcp => prop_assert!(TcpPacket::new_checked(&buf[off..]).expect("tcp")
                .verify_checksum(&ns, &nd)),
            L4::Udp => {
                prop_assert_ne!(l4_checksum(kind, &buf[off..]), 0);
                prop_assert!(UdpPacket::new_checked(&buf[off..]).expect("udp")
                    .verify_checksum(&ns, &nd));
            }
            L4::UdpNoChecksum => prop_assert_eq!(l4_checksum(kind, &buf[off..]), 0),
        }
        if ns.is_ipv4() {
            let ip = Ipv4Packet::new_checked(&buf[..]).expect("ipv4");
            prop_assert!(ip.verify_checksum());
            // The header checksum (after address rewrite and TTL decrement) equals a
            // full recomputation too.
            let mut full = buf.clone();
            let mut p = Ipv4Packet::new_unchecked(&mut full[..]);
            p.fill_checksum();
            prop_assert_eq!(ip.checksum(), p.checksum());
        } else {
            prop_assert_eq!(&buf[..], &expected[..]);
        }
    }

    #[test]
    fn update16_equals_recompute_on_any_word(
        mut bytes in proptest::collection::vec(any::<u8>(), 2..200),
        at in any::<prop::sample::Index>(),
        new in any::<u16>(),
    ) {
        let field = checksum::finish(checksum::data(&bytes));
        let i = at.index(bytes.len() / 2) * 2;
        let old = u16::from_be_bytes([bytes[i], bytes[i + 1]]);
        bytes[i..i + 2].copy_from_slice(&new.to_be_bytes());
        let updated = checksum::update16(field, old, new);
        let full = checksum::finish(checksum::data(&bytes));
        // Identical except when all bytes are zero: then the full sum is 0 (field 0xFFFF)
        // and the incremental one can only reach the other zero, 0xFFFF (field 0).
        if bytes.iter().any(|&b| b != 0) {
            prop_assert_eq!(updated, full);
        }
    }
}
