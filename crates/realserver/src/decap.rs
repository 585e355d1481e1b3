//! What the userspace decapsulator accepts: pure functions over the received bytes.
//!
//! A tunnel packet is taken apart in two steps. First the outer layer: the outer IPv4
//! header a raw IPv4 socket returns ([`outer_ipv4`]), or the GUE header at the start of a
//! UDP payload ([`gue`]); an IPv6 raw socket already returns the inner packet. Then the
//! inner packet is checked ([`check_inner`]) before it is written to the TUN device:
//!
//! - its IP version is the one the outer protocol announced (4 carries IPv4, 41 IPv6:
//!   RFC 2003, RFC 2473; GUE's proto field the same way);
//! - its header and length fields fit the bytes received (a longer buffer is cut to the
//!   packet's own length);
//! - an IPv4 header checksum verifies;
//! - its destination is one of the configured VIPs, and its source is not a VIP, nor
//!   unspecified, loopback, multicast or broadcast.
//!
//! Anything else is a [`DropReason`], counted in [`Counters`]: no allocation, no panic,
//! whatever the bytes (every slice is taken through `get` or after `new_checked`).
//!
//! ECN (RFC 6040 section 4.2): when the outer header is known (IP-in-IP over IPv4), a
//! congestion mark on it is copied into the inner header, and a marked outer header over
//! a not-ECN-capable inner packet is dropped ([`apply_outer_ecn`]).

use std::fmt;
use std::net::IpAddr;
use std::ops::Range;

use rvs_wire::{Error as WireError, GuePacket, Ipv4Packet, Ipv6Packet};

/// IP protocol number of IPv4-in-IP (RFC 2003).
pub(crate) const PROTO_IPIP: u8 = 4;
/// IP protocol number of IPv6-in-IP (RFC 2473, RFC 4213).
pub(crate) const PROTO_IPV6: u8 = 41;
/// Largest inner packet accepted: the IPv4 and IPv6 (non-jumbo) length fields stop there.
pub(crate) const MAX_INNER: usize = 65535 + 40;

/// The inner packet's IP version, as announced by the outer layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InnerFamily {
    /// IPv4 (protocol 4).
    V4,
    /// IPv6 (protocol 41).
    V6,
}

impl InnerFamily {
    /// The family an outer protocol number announces.
    pub(crate) fn from_proto(proto: u8) -> Option<Self> {
        match proto {
            PROTO_IPIP => Some(Self::V4),
            PROTO_IPV6 => Some(Self::V6),
            _ => None,
        }
    }
}

/// Why a received tunnel packet was not delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DropReason {
    /// The outer IPv4 header is truncated or malformed, or carries another protocol.
    OuterMalformed,
    /// The inner packet is shorter than its IP header or than its own length field.
    Truncated,
    /// The inner header holds impossible values (IHL < 5, total length below the header,
    /// an IPv6 payload length of 0 with bytes after the header: jumbograms are refused).
    Malformed,
    /// The inner IP version is not the one the outer protocol announced.
    WrongVersion,
    /// The inner IPv4 header checksum does not verify.
    BadChecksum,
    /// The inner destination is not one of the configured VIPs.
    NotVip,
    /// The inner source is unspecified, loopback, multicast, broadcast or a VIP.
    BadSource,
    /// Larger than any IP packet can be (or than the receive buffer).
    TooBig,
    /// The GUE header is shorter than 4 bytes or has an unknown version (2 or 3).
    GueMalformed,
    /// A GUE control message, GUE options (hlen > 0) or a GUE payload that is not IP.
    GueUnsupported,
    /// RFC 6040: congestion experienced on the outer header of a not-ECT inner packet.
    EcnDrop,
    /// Writing to the TUN device failed.
    TunWrite,
}

impl DropReason {
    /// Every reason, in counter order.
    pub(crate) const ALL: [Self; 12] = [
        Self::OuterMalformed,
        Self::Truncated,
        Self::Malformed,
        Self::WrongVersion,
        Self::BadChecksum,
        Self::NotVip,
        Self::BadSource,
        Self::TooBig,
        Self::GueMalformed,
        Self::GueUnsupported,
        Self::EcnDrop,
        Self::TunWrite,
    ];

    /// Index into the counter array.
    pub(crate) const fn index(self) -> usize {
        self as usize
    }

    /// Name as printed with the counters.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::OuterMalformed => "outer-malformed",
            Self::Truncated => "truncated",
            Self::Malformed => "malformed",
            Self::WrongVersion => "wrong-version",
            Self::BadChecksum => "bad-checksum",
            Self::NotVip => "not-vip",
            Self::BadSource => "bad-source",
            Self::TooBig => "too-big",
            Self::GueMalformed => "gue-malformed",
            Self::GueUnsupported => "gue-unsupported",
            Self::EcnDrop => "ecn-drop",
            Self::TunWrite => "tun-write",
        }
    }
}

/// Which receiver a packet came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// IP-in-IP with an outer IPv4 header.
    IpipOuterV4,
    /// IP-in-IP with an outer IPv6 header.
    IpipOuterV6,
    /// GUE (UDP).
    Gue,
}

/// Packet counters of the decapsulator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    /// Delivered to the TUN device, by receiver.
    pub(crate) ipip4: u64,
    /// See `ipip4`.
    pub(crate) ipip6: u64,
    /// See `ipip4`.
    pub(crate) gue: u64,
    /// Dropped, indexed by [`DropReason::index`].
    pub(crate) drops: [u64; DropReason::ALL.len()],
    /// Packets the kernel routed out of the TUN device (read and discarded: nothing should
    /// be routed there but the kernel's own IPv6 housekeeping).
    pub(crate) tun_out: u64,
}

impl Counters {
    /// Count one delivered packet.
    pub(crate) fn delivered(&mut self, from: Source) {
        match from {
            Source::IpipOuterV4 => self.ipip4 += 1,
            Source::IpipOuterV6 => self.ipip6 += 1,
            Source::Gue => self.gue += 1,
        }
    }

    /// Count one dropped packet.
    pub(crate) fn drop(&mut self, why: DropReason) {
        self.drops[why.index()] += 1;
    }

    /// All delivered packets.
    pub(crate) fn decapsulated(&self) -> u64 {
        self.ipip4 + self.ipip6 + self.gue
    }

    /// All dropped packets.
    pub(crate) fn dropped(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Drops for one reason.
    pub(crate) fn drops_for(&self, why: DropReason) -> u64 {
        self.drops[why.index()]
    }
}

/// One line of `name=value` pairs: totals, per receiver, per drop reason, TUN output.
impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "decapsulated={} ipip4={} ipip6={} gue={} dropped={}",
            self.decapsulated(),
            self.ipip4,
            self.ipip6,
            self.gue,
            self.dropped()
        )?;
        for r in DropReason::ALL {
            write!(f, " {}={}", r.name(), self.drops_for(r))?;
        }
        write!(f, " tun-out={}", self.tun_out)
    }
}

/// The outer IPv4 header of a packet from a raw IPv4 socket: returns the outer TOS, the
/// protocol and where the payload (the inner packet) lies in `buf`.
pub(crate) fn outer_ipv4(buf: &[u8]) -> Result<(u8, u8, Range<usize>), DropReason> {
    let p = Ipv4Packet::new_checked(buf).map_err(|_| DropReason::OuterMalformed)?;
    let proto = u8::from(p.next_header());
    if InnerFamily::from_proto(proto).is_none() {
        return Err(DropReason::OuterMalformed);
    }
    // new_checked verified header_len <= total_len <= buf.len().
    Ok((
        p.tos(),
        proto,
        usize::from(p.header_len())..usize::from(p.total_len()),
    ))
}

/// Take the GUE header off a UDP payload (draft-ietf-intarea-gue): returns the inner
/// family and the offset of the inner packet.
///
/// - Variant 0 (version bits `00`) with `C = 0`, `hlen = 0` and proto 4 or 41: the inner
///   packet follows the 4-byte header. This is what IPVS sends (`--tun-type gue`) without
///   `--tun-remcsum`.
/// - Variant 1 (version bits `01`): direct IP encapsulation, no GUE header; the first
///   nibble is the IP version (4 or 6).
///
/// Control messages, options (`hlen > 0`, e.g. remote checksum offload, whose inner
/// checksum would still need completing) and other payload protocols are
/// [`DropReason::GueUnsupported`].
pub(crate) fn gue(payload: &[u8]) -> Result<(InnerFamily, usize), DropReason> {
    let first = *payload.first().ok_or(DropReason::GueMalformed)?;
    match first >> 6 {
        0 => {}
        1 => {
            return match first >> 4 {
                4 => Ok((InnerFamily::V4, 0)),
                6 => Ok((InnerFamily::V6, 0)),
                _ => Err(DropReason::GueUnsupported),
            };
        }
        _ => return Err(DropReason::GueMalformed),
    }
    let g = GuePacket::new_checked(payload).map_err(|_| DropReason::GueMalformed)?;
    if g.control() || g.hlen() != 0 {
        return Err(DropReason::GueUnsupported);
    }
    let fam = InnerFamily::from_proto(g.proto_ctype()).ok_or(DropReason::GueUnsupported)?;
    Ok((fam, g.header_len()))
}

fn bad_source(src: IpAddr, vips: &[IpAddr]) -> bool {
    let special = match src {
        IpAddr::V4(a) => {
            a.is_unspecified() || a.is_loopback() || a.is_multicast() || a.is_broadcast()
        }
        IpAddr::V6(a) => a.is_unspecified() || a.is_loopback() || a.is_multicast(),
    };
    special || vips.contains(&src)
}

/// Check an inner packet announced as `family` against the VIPs. Returns the packet's own
/// length (at most `pkt.len()`): bytes after it are not part of the packet and are not
/// delivered.
pub(crate) fn check_inner(
    pkt: &[u8],
    family: InnerFamily,
    vips: &[IpAddr],
) -> Result<usize, DropReason> {
    if pkt.len() > MAX_INNER {
        return Err(DropReason::TooBig);
    }
    let version = pkt.first().ok_or(DropReason::Truncated)? >> 4;
    let (src, dst, len) = match (family, version) {
        (InnerFamily::V4, 4) => {
            let p = Ipv4Packet::new_checked(pkt).map_err(wire_reason)?;
            if !p.verify_checksum() {
                return Err(DropReason::BadChecksum);
            }
            (
                IpAddr::V4(p.src_addr()),
                IpAddr::V4(p.dst_addr()),
                usize::from(p.total_len()),
            )
        }
        (InnerFamily::V6, 6) => {
            let p = Ipv6Packet::new_checked(pkt).map_err(wire_reason)?;
            let len = p.header_len() + usize::from(p.payload_len());
            if p.payload_len() == 0 && pkt.len() > p.header_len() {
                return Err(DropReason::Malformed);
            }
            (IpAddr::V6(p.src_addr()), IpAddr::V6(p.dst_addr()), len)
        }
        _ => return Err(DropReason::WrongVersion),
    };
    if !vips.contains(&dst) {
        return Err(DropReason::NotVip);
    }
    if bad_source(src, vips) {
        return Err(DropReason::BadSource);
    }
    Ok(len)
}

fn wire_reason(e: WireError) -> DropReason {
    match e {
        WireError::Truncated => DropReason::Truncated,
        WireError::BadVersion => DropReason::WrongVersion,
        WireError::BadChecksum => DropReason::BadChecksum,
        _ => DropReason::Malformed,
    }
}

/// RFC 6040 decapsulation of the ECN field, for an inner packet already accepted by
/// [`check_inner`]: copy a congestion mark of the outer header (`outer_tos`) into the
/// inner one (refreshing the IPv4 checksum), or drop a marked packet whose inner header
/// says it is not ECN-capable.
pub(crate) fn apply_outer_ecn(pkt: &mut [u8], outer_tos: u8) -> Result<(), DropReason> {
    match pkt.first().map(|b| b >> 4) {
        Some(4) => {
            let mut p = Ipv4Packet::new_checked(pkt).map_err(wire_reason)?;
            let inner = p.ecn();
            let ecn = rvs_wire::decap_ecn(outer_tos, inner).ok_or(DropReason::EcnDrop)?;
            if ecn != inner {
                p.set_ecn(ecn);
                p.fill_checksum();
            }
            Ok(())
        }
        Some(6) => {
            let mut p = Ipv6Packet::new_checked(pkt).map_err(wire_reason)?;
            let tc = p.traffic_class();
            let ecn = rvs_wire::decap_ecn(outer_tos, tc).ok_or(DropReason::EcnDrop)?;
            if ecn != tc & 0x03 {
                p.set_traffic_class((tc & !0x03) | ecn);
            }
            Ok(())
        }
        _ => Err(DropReason::WrongVersion),
    }
}

/// Finish a TCP or UDP checksum that a sender on this host left to transmit offload.
///
/// A sender whose packets never cross a NIC (a client in another network namespace, over
/// veth) leaves its transport checksum to be filled in by hardware: the field holds only
/// the pseudo-header sum, and the kernel marks the buffer "checksum partial" so that its
/// own receivers do not check. Tunnelled through a director, the inner packet reaches this
/// decapsulator with that field unfinished, and the TUN device hands it to the stack as
/// an ordinary, unverified packet, which the stack would drop. So: when the checksum does
/// not verify *and* the field is exactly the pseudo-header sum, fill it in. A packet
/// damaged on the way fails verification and does not match (but for 1 in 65,536 damaged
/// ones); it is left as it is, for the stack to drop. Returns whether it filled one in.
/// Fragments, IPv6 extension headers and UDP without a checksum are left alone.
pub(crate) fn finish_offloaded_checksum(pkt: &mut [u8]) -> bool {
    use rvs_wire::checksum::{combine, data, pseudo_header};
    let Some(&v) = pkt.first() else {
        return false;
    };
    let (src, dst, proto, l3) = match v >> 4 {
        4 => {
            let Ok(p) = Ipv4Packet::new_checked(&pkt[..]) else {
                return false;
            };
            if p.more_frags() || p.frag_offset() != 0 {
                return false;
            }
            (
                IpAddr::V4(p.src_addr()),
                IpAddr::V4(p.dst_addr()),
                u8::from(p.next_header()),
                usize::from(p.header_len()),
            )
        }
        6 => {
            let Ok(p) = Ipv6Packet::new_checked(&pkt[..]) else {
                return false;
            };
            (
                IpAddr::V6(p.src_addr()),
                IpAddr::V6(p.dst_addr()),
                u8::from(p.next_header()),
                40,
            )
        }
        _ => return false,
    };
    let (at, min) = match proto {
        6 => (16, 20),
        17 => (6, 8),
        _ => return false,
    };
    let Some(l4) = pkt.get_mut(l3..) else {
        return false;
    };
    if l4.len() < min || l4.len() > usize::from(u16::MAX) {
        return false;
    }
    let field = u16::from_be_bytes([l4[at], l4[at + 1]]);
    if proto == 17 && field == 0 && src.is_ipv4() {
        return false; // no checksum
    }
    let pseudo = pseudo_header(&src, &dst, proto, l4.len() as u32);
    // the unfinished field: the pseudo-header sum (either zero of one's complement); only
    // then is the payload summed, to see whether it verifies anyway
    let unfinished = field == pseudo || (field == 0 && pseudo == 0xffff);
    if !unfinished || combine(&[pseudo, data(l4)]) == 0xffff {
        return false;
    }
    l4[at..at + 2].fill(0);
    let mut c = !combine(&[pseudo, data(l4)]);
    if proto == 17 && c == 0 {
        c = 0xffff;
    }
    l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    true
}

#[cfg(test)]
mod offload_tests {
    use super::finish_offloaded_checksum;
    use rvs_testkit::PacketSpec;

    /// An inner packet as a local sender with transmit offload leaves it: the transport
    /// checksum field holds the pseudo-header sum only.
    fn unfinished(spec: &PacketSpec) -> (Vec<u8>, Vec<u8>) {
        let frame = spec.build();
        let good = frame[14..].to_vec();
        let mut pkt = good.clone();
        let v6 = pkt[0] >> 4 == 6;
        let l3 = if v6 {
            40
        } else {
            usize::from(pkt[0] & 0x0f) * 4
        };
        let proto = if v6 { pkt[6] } else { pkt[9] };
        let at = l3 + if proto == 6 { 16 } else { 6 };
        let (s, d) = if v6 {
            (
                std::net::IpAddr::from(<[u8; 16]>::try_from(&pkt[8..24]).unwrap()),
                std::net::IpAddr::from(<[u8; 16]>::try_from(&pkt[24..40]).unwrap()),
            )
        } else {
            (
                std::net::IpAddr::from(<[u8; 4]>::try_from(&pkt[12..16]).unwrap()),
                std::net::IpAddr::from(<[u8; 4]>::try_from(&pkt[16..20]).unwrap()),
            )
        };
        let ph = rvs_wire::checksum::pseudo_header(&s, &d, proto, (pkt.len() - l3) as u32);
        pkt[at..at + 2].copy_from_slice(&ph.to_be_bytes());
        (good, pkt)
    }

    #[test]
    fn fills_in_what_transmit_offload_left_and_nothing_else() {
        use rvs_testkit::L4;
        let specs = [
            PacketSpec::tcp("198.18.0.2", 40000, "198.18.0.100", 80, 0x18).payload(b"hello"),
            PacketSpec::udp("198.18.0.2", 40000, "198.18.0.100", 53).payload(b"abc"),
            PacketSpec::tcp("2001:db8::2", 40000, "2001:db8::100", 80, 0x10).payload(b"x"),
            PacketSpec::udp("2001:db8::2", 40000, "2001:db8::100", 53),
        ];
        for spec in &specs {
            let (good, mut pkt) = unfinished(spec);
            if pkt != good {
                assert!(finish_offloaded_checksum(&mut pkt), "{spec:?}");
                assert_eq!(pkt, good, "{spec:?}");
            }
            // a finished packet is left alone
            let mut same = good.clone();
            assert!(!finish_offloaded_checksum(&mut same));
            assert_eq!(same, good);
            // a damaged one too: the checksum fails, but the field is not the pseudo sum
            let mut bad = good.clone();
            let last = bad.len() - 1;
            bad[last] ^= 0x10;
            if bad.len() > 48 || matches!(spec.l4, L4::Tcp { .. }) {
                let before = bad.clone();
                assert!(!finish_offloaded_checksum(&mut bad), "{spec:?}");
                assert_eq!(bad, before);
            }
        }
        // garbage of any length does not panic
        for n in 0..64 {
            let mut junk = vec![0x45u8; n];
            let _ = finish_offloaded_checksum(&mut junk);
            let mut junk6 = vec![0x60u8; n];
            let _ = finish_offloaded_checksum(&mut junk6);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_testkit::PacketSpec;
    use rvs_wire::IpProtocol;

    const VIP4: &str = "198.18.0.100";
    const VIP6: &str = "2001:db8::100";

    fn vips() -> Vec<IpAddr> {
        vec![VIP4.parse().expect("ip"), VIP6.parse().expect("ip")]
    }

    /// An IP packet (no Ethernet header) of the testkit builder.
    fn ip(spec: &PacketSpec) -> Vec<u8> {
        spec.build()[14..].to_vec()
    }

    fn udp4(src: &str, dst: &str) -> Vec<u8> {
        ip(&PacketSpec::udp(src, 40000, dst, 9000).payload(&[0xab; 32]))
    }

    fn udp6(src: &str, dst: &str) -> Vec<u8> {
        ip(&PacketSpec::udp(src, 40000, dst, 9000).payload(&[0xcd; 32]))
    }

    #[test]
    fn accepts_inner_packets_to_a_vip() {
        let p = udp4("198.18.1.1", VIP4);
        assert_eq!(check_inner(&p, InnerFamily::V4, &vips()), Ok(p.len()));
        let p = udp6("2001:db8:1::1", VIP6);
        assert_eq!(check_inner(&p, InnerFamily::V6, &vips()), Ok(p.len()));
    }

    #[test]
    fn trailing_bytes_are_cut_off() {
        let mut p = udp4("198.18.1.1", VIP4);
        let len = p.len();
        p.extend_from_slice(&[0; 6]);
        assert_eq!(check_inner(&p, InnerFamily::V4, &vips()), Ok(len));
    }

    #[test]
    fn drop_reasons() {
        let v = vips();
        let good4 = udp4("198.18.1.1", VIP4);
        let good6 = udp6("2001:db8:1::1", VIP6);
        let cases: Vec<(&str, Vec<u8>, InnerFamily, DropReason)> = vec![
            ("empty", vec![], InnerFamily::V4, DropReason::Truncated),
            (
                "short v4",
                good4[..19].to_vec(),
                InnerFamily::V4,
                DropReason::Truncated,
            ),
            (
                "v4 cut",
                good4[..good4.len() - 1].to_vec(),
                InnerFamily::V4,
                DropReason::Truncated,
            ),
            (
                "short v6",
                good6[..39].to_vec(),
                InnerFamily::V6,
                DropReason::Truncated,
            ),
            (
                "v6 cut",
                good6[..good6.len() - 1].to_vec(),
                InnerFamily::V6,
                DropReason::Truncated,
            ),
            (
                "v6 in proto 4",
                good6.clone(),
                InnerFamily::V4,
                DropReason::WrongVersion,
            ),
            (
                "v4 in proto 41",
                good4.clone(),
                InnerFamily::V6,
                DropReason::WrongVersion,
            ),
            (
                "version 5",
                {
                    let mut p = good4.clone();
                    p[0] = 0x55;
                    p
                },
                InnerFamily::V4,
                DropReason::WrongVersion,
            ),
            (
                "ihl 4",
                {
                    let mut p = good4.clone();
                    p[0] = 0x44;
                    p
                },
                InnerFamily::V4,
                DropReason::Malformed,
            ),
            (
                "total < ihl",
                {
                    let mut p = good4.clone();
                    p[2] = 0;
                    p[3] = 10;
                    p
                },
                InnerFamily::V4,
                DropReason::Malformed,
            ),
            (
                "bad checksum",
                {
                    let mut p = good4.clone();
                    p[10] ^= 0xff;
                    p
                },
                InnerFamily::V4,
                DropReason::BadChecksum,
            ),
            (
                "jumbo",
                {
                    let mut p = good6.clone();
                    p[4] = 0;
                    p[5] = 0;
                    p
                },
                InnerFamily::V6,
                DropReason::Malformed,
            ),
            (
                "not a vip",
                udp4("198.18.1.1", "198.18.0.101"),
                InnerFamily::V4,
                DropReason::NotVip,
            ),
            (
                "not a vip v6",
                udp6("2001:db8:1::1", "2001:db8::101"),
                InnerFamily::V6,
                DropReason::NotVip,
            ),
            (
                "loopback source",
                udp4("127.0.0.1", VIP4),
                InnerFamily::V4,
                DropReason::BadSource,
            ),
            (
                "broadcast source",
                udp4("255.255.255.255", VIP4),
                InnerFamily::V4,
                DropReason::BadSource,
            ),
            (
                "vip source",
                udp4(VIP4, VIP4),
                InnerFamily::V4,
                DropReason::BadSource,
            ),
            (
                "multicast source v6",
                udp6("ff02::1", VIP6),
                InnerFamily::V6,
                DropReason::BadSource,
            ),
            (
                "huge",
                vec![0x45; MAX_INNER + 1],
                InnerFamily::V4,
                DropReason::TooBig,
            ),
        ];
        for (what, p, fam, want) in cases {
            assert_eq!(check_inner(&p, fam, &v), Err(want), "{what}");
        }
    }

    #[test]
    fn no_panic_on_any_prefix_or_byte_flip() {
        let v = vips();
        for good in [udp4("198.18.1.1", VIP4), udp6("2001:db8:1::1", VIP6)] {
            for fam in [InnerFamily::V4, InnerFamily::V6] {
                for n in 0..=good.len() {
                    let _ = check_inner(&good[..n], fam, &v);
                    let _ = gue(&good[..n]);
                    let _ = outer_ipv4(&good[..n]);
                }
                for i in 0..good.len() {
                    for b in [0u8, 0xff, 0x0f, 0xf0] {
                        let mut p = good.clone();
                        p[i] = b;
                        let _ = check_inner(&p, fam, &v);
                        let _ = apply_outer_ecn(&mut p, 0x03);
                        let _ = outer_ipv4(&p);
                        let _ = gue(&p);
                    }
                }
            }
        }
    }

    #[test]
    fn gue_headers() {
        let inner = udp4("198.18.1.1", VIP4);
        let with = |h: [u8; 4]| {
            let mut b = h.to_vec();
            b.extend_from_slice(&inner);
            b
        };
        assert_eq!(gue(&with([0, 4, 0, 0])), Ok((InnerFamily::V4, 4)));
        assert_eq!(gue(&with([0, 41, 0, 0])), Ok((InnerFamily::V6, 4)));
        // flags are ignored
        assert_eq!(gue(&with([0, 4, 0x80, 0])), Ok((InnerFamily::V4, 4)));
        // variant 1: the IP header directly
        assert_eq!(gue(&inner), Ok((InnerFamily::V4, 0)));
        assert_eq!(gue(&udp6("2001:db8:1::1", VIP6)), Ok((InnerFamily::V6, 0)));
        assert_eq!(gue(&[]), Err(DropReason::GueMalformed));
        assert_eq!(gue(&[0, 4, 0]), Err(DropReason::GueMalformed));
        assert_eq!(gue(&with([0x80, 4, 0, 0])), Err(DropReason::GueMalformed));
        assert_eq!(gue(&with([0xc0, 4, 0, 0])), Err(DropReason::GueMalformed));
        // control message, options, other protocols
        assert_eq!(gue(&with([0x20, 4, 0, 0])), Err(DropReason::GueUnsupported));
        assert_eq!(gue(&with([0x02, 4, 0, 0])), Err(DropReason::GueUnsupported));
        assert_eq!(gue(&with([0, 17, 0, 0])), Err(DropReason::GueUnsupported));
        assert_eq!(gue(&[0x50, 0, 0, 0]), Err(DropReason::GueUnsupported));
        // hlen 1 with too few bytes is malformed before it is unsupported
        assert_eq!(gue(&[0x01, 4, 0, 0]), Err(DropReason::GueMalformed));
    }

    #[test]
    fn outer_ipv4_header() {
        let inner = udp4("198.18.1.1", VIP4);
        let mut outer = vec![0u8; 20 + inner.len()];
        rvs_wire::emit_ipip_v4_outer(
            &mut outer,
            "198.18.1.1".parse().expect("ip"),
            "198.18.1.2".parse().expect("ip"),
            IpProtocol::IpIp,
            64,
            0x02,
            false,
            1,
            inner.len(),
        )
        .expect("emit");
        outer[20..].copy_from_slice(&inner);
        let (tos, proto, range) = outer_ipv4(&outer).expect("valid");
        assert_eq!((tos, proto, &outer[range]), (0x02, PROTO_IPIP, &inner[..]));
        let mut udp = outer.clone();
        udp[9] = 17;
        assert_eq!(outer_ipv4(&udp), Err(DropReason::OuterMalformed));
        assert_eq!(outer_ipv4(&outer[..19]), Err(DropReason::OuterMalformed));
    }

    #[test]
    fn ecn_follows_rfc_6040() {
        let v = vips();
        // ECT(0) inner, CE outer: the mark is copied and the checksum stays valid.
        let mut p = ip(&{
            let mut s = PacketSpec::udp("198.18.1.1", 40000, VIP4, 9000).payload(&[1; 8]);
            s.tos = 0x02;
            s
        });
        apply_outer_ecn(&mut p, 0x03).expect("ect inner");
        assert_eq!(p[1] & 0x03, 0x03);
        assert_eq!(check_inner(&p, InnerFamily::V4, &v), Ok(p.len()));
        // not-ECT inner, CE outer: dropped.
        let mut p = udp4("198.18.1.1", VIP4);
        assert_eq!(apply_outer_ecn(&mut p, 0x03), Err(DropReason::EcnDrop));
        // not-ECT outer: unchanged.
        let before = p.clone();
        apply_outer_ecn(&mut p, 0x00).expect("no mark");
        assert_eq!(p, before);
        // IPv6 inner.
        let mut p = ip(&{
            let mut s = PacketSpec::udp("2001:db8:1::1", 40000, VIP6, 9000).payload(&[1; 8]);
            s.tos = 0x01;
            s
        });
        apply_outer_ecn(&mut p, 0x03).expect("ect(1) inner");
        assert_eq!(
            Ipv6Packet::new_checked(&p[..]).expect("v6").traffic_class() & 3,
            3
        );
    }

    #[test]
    fn counters_print_every_reason() {
        let mut c = Counters::default();
        c.delivered(Source::Gue);
        c.delivered(Source::IpipOuterV4);
        c.drop(DropReason::NotVip);
        c.drop(DropReason::NotVip);
        let s = c.to_string();
        assert!(
            s.starts_with("decapsulated=2 ipip4=1 ipip6=0 gue=1 dropped=2 "),
            "{s}"
        );
        assert!(s.contains(" not-vip=2 "), "{s}");
        for r in DropReason::ALL {
            assert!(s.contains(&format!(" {}=", r.name())), "{s}");
            assert_eq!(DropReason::ALL[r.index()], r);
        }
    }
}
