//! Frames the kernel hands over with the transport checksum still to be computed
//! (`TP_STATUS_CSUMNOTREADY`: sent by a local stack with checksum offload, as on veth).
//! The core rewrites checksums incrementally, so it needs a complete one to start from.

use rvs_wire::{EtherType, IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket, parse_l2};

/// Fill in the TCP or UDP checksum of an Ethernet frame. Returns false when the frame is
/// not TCP/UDP over IPv4/IPv6 or is malformed (the core will then count it).
pub(crate) fn complete_l4_checksum(frame: &mut [u8]) -> bool {
    let Ok(l2) = parse_l2(frame) else {
        return false;
    };
    let l3 = l2.l3_offset;
    let (src, dst, proto, l4, end) = match l2.ethertype {
        EtherType::Ipv4 => {
            let Ok(p) = Ipv4Packet::new_checked(&frame[l3..]) else {
                return false;
            };
            if p.more_frags() || p.frag_offset() != 0 {
                return false;
            }
            (
                IpAddr::V4(p.src_addr()),
                IpAddr::V4(p.dst_addr()),
                p.next_header(),
                l3 + usize::from(p.header_len()),
                l3 + usize::from(p.total_len()),
            )
        }
        EtherType::Ipv6 => {
            let Ok(p) = Ipv6Packet::new_checked(&frame[l3..]) else {
                return false;
            };
            let Ok(info) = rvs_wire::ipv6_upper_layer(&frame[l3..]) else {
                return false;
            };
            if info.fragment.is_some() {
                return false;
            }
            (
                IpAddr::V6(p.src_addr()),
                IpAddr::V6(p.dst_addr()),
                info.protocol,
                l3 + info.l4_offset,
                l3 + 40 + usize::from(p.payload_len()),
            )
        }
        _ => return false,
    };
    let Some(seg) = frame.get_mut(l4..end) else {
        return false;
    };
    match proto {
        IpProtocol::Tcp => match TcpPacket::new_checked(seg) {
            Ok(mut t) => {
                t.fill_checksum(&src, &dst);
                true
            }
            Err(_) => false,
        },
        IpProtocol::Udp => match UdpPacket::new_checked(seg) {
            Ok(mut u) => {
                u.fill_checksum(&src, &dst);
                true
            }
            Err(_) => false,
        },
        _ => false,
    }
}

use std::net::IpAddr;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_a_partial_tcp_checksum() {
        // a valid SYN built independently, then its checksum replaced by a partial value
        let good = rvs_testkit::PacketSpec::tcp("198.18.0.1", 1000, "198.18.0.2", 80, 0x02).build();
        let mut f = good.clone();
        f[14 + 20 + 16] = 0x12;
        f[14 + 20 + 17] = 0x34;
        assert!(complete_l4_checksum(&mut f));
        assert_eq!(f, good);
        let mut arp = vec![0u8; 42];
        arp[12] = 0x08;
        arp[13] = 0x06;
        assert!(!complete_l4_checksum(&mut arp));
    }

    #[test]
    fn fills_a_partial_udp_v6_checksum() {
        let good = rvs_testkit::PacketSpec::udp("2001:db8::1", 53, "2001:db8::2", 5353)
            .payload(b"abc")
            .build();
        let mut f = good.clone();
        f[14 + 40 + 6] = 0;
        f[14 + 40 + 7] = 0;
        assert!(complete_l4_checksum(&mut f));
        assert_eq!(f, good);
    }
}
