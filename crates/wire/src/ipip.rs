//! IP-in-IP encapsulation headers for the tunnel forwarding method: IPv4 outer header
//! (RFC 2003), IPv6 outer header (RFC 2473), and ECN handling (RFC 6040).

use core::net::{Ipv4Addr, Ipv6Addr};

use crate::ip::IpProtocol;
use crate::ipv4::{self, Packet as Ipv4Packet, Repr as Ipv4Repr};
use crate::ipv6::{self, Packet as Ipv6Packet, Repr as Ipv6Repr};
use crate::{Error, Result};

/// ECN codepoint "not ECN-capable transport".
pub const ECN_NOT_ECT: u8 = 0b00;
/// ECN codepoint ECT(1).
pub const ECN_ECT1: u8 = 0b01;
/// ECN codepoint ECT(0).
pub const ECN_ECT0: u8 = 0b10;
/// ECN codepoint "congestion experienced".
pub const ECN_CE: u8 = 0b11;

/// The outer TOS / traffic class for an inner TOS / traffic class, following the normal
/// mode of RFC 6040 section 4.1: DSCP and ECN are copied, except that CE becomes ECT(0)
/// (so that a congestion mark is not duplicated when the outer header is marked again).
///
/// ```
/// assert_eq!(rvs_wire::outer_tos_from_inner(0xbb), 0xba); // EF + CE -> EF + ECT(0)
/// assert_eq!(rvs_wire::outer_tos_from_inner(0xb9), 0xb9); // ECT(1) is copied
/// ```
pub const fn outer_tos_from_inner(tos: u8) -> u8 {
    if tos & 0x03 == ECN_CE {
        (tos & !0x03) | ECN_ECT0
    } else {
        tos
    }
}

/// The inner ECN codepoint after decapsulation (RFC 6040 section 4.2, figure 4), or
/// `None` when the packet must be dropped (outer CE on a not-ECT inner packet).
pub const fn decap_ecn(outer: u8, inner: u8) -> Option<u8> {
    let outer = outer & 0x03;
    let inner = inner & 0x03;
    match (inner, outer) {
        (ECN_NOT_ECT, ECN_CE) => None,
        (ECN_NOT_ECT, _) => Some(ECN_NOT_ECT),
        (_, ECN_CE) => Some(ECN_CE),
        (ECN_ECT0, ECN_ECT1) => Some(ECN_ECT1),
        (i, _) => Some(i),
    }
}

/// Writes a 20-byte IPv4 outer header (with checksum) into the start of `buf` for an inner
/// packet of `inner_len` bytes that follows it.
///
/// `inner_proto` is normally [`IpProtocol::IpIp`] or [`IpProtocol::Ipv6`]; other values
/// (e.g. [`IpProtocol::Udp`] for GUE, [`IpProtocol::Gre`]) are written as given. `tos` is
/// written as is: pass it through [`outer_tos_from_inner`].
///
/// # Errors
/// [`Error::Truncated`] when `buf` is shorter than 20 bytes; [`Error::Malformed`] when
/// `20 + inner_len` exceeds 65535.
#[expect(
    clippy::too_many_arguments,
    reason = "mirrors the header fields one to one"
)]
pub fn emit_ipip_v4_outer(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    inner_proto: IpProtocol,
    ttl: u8,
    tos: u8,
    df: bool,
    ident: u16,
    inner_len: usize,
) -> Result<()> {
    let Some(hdr) = buf.get_mut(..ipv4::HEADER_LEN) else {
        return Err(Error::Truncated);
    };
    let repr = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: inner_proto,
        payload_len: inner_len,
        hop_limit: ttl,
        dscp_ecn: tos,
        ident,
        dont_frag: df,
    };
    repr.emit(&mut Ipv4Packet::new_unchecked(hdr))
}

/// Writes a 40-byte IPv6 outer header (flow label 0) into the start of `buf` for an
/// inner packet of `inner_len` bytes that follows it.
///
/// # Errors
/// [`Error::Truncated`] when `buf` is shorter than 40 bytes; [`Error::Malformed`] when
/// `inner_len` exceeds 65535.
pub fn emit_ipip_v6_outer(
    buf: &mut [u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    next_header: IpProtocol,
    hop_limit: u8,
    traffic_class: u8,
    inner_len: usize,
) -> Result<()> {
    let Some(hdr) = buf.get_mut(..ipv6::HEADER_LEN) else {
        return Err(Error::Truncated);
    };
    let repr = Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header,
        payload_len: inner_len,
        hop_limit,
        traffic_class,
        flow_label: 0,
    };
    repr.emit(&mut Ipv6Packet::new_unchecked(hdr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecn_encapsulation() {
        assert_eq!(outer_tos_from_inner(0x00), 0x00);
        assert_eq!(outer_tos_from_inner(0x01), 0x01);
        assert_eq!(outer_tos_from_inner(0x02), 0x02);
        assert_eq!(outer_tos_from_inner(0x03), 0x02);
        assert_eq!(outer_tos_from_inner(0xbb), 0xba);
        assert_eq!(outer_tos_from_inner(0xb8), 0xb8);
    }

    #[test]
    fn ecn_decapsulation_table() {
        // RFC 6040 figure 4, rows = inner, columns = outer (Not-ECT, ECT(0), ECT(1), CE).
        let table = [
            [Some(0), Some(0), Some(0), None],
            [Some(2), Some(2), Some(1), Some(3)],
            [Some(1), Some(1), Some(1), Some(3)],
            [Some(3), Some(3), Some(3), Some(3)],
        ];
        let order = [ECN_NOT_ECT, ECN_ECT0, ECN_ECT1, ECN_CE];
        for (i, row) in table.iter().enumerate() {
            for (o, want) in row.iter().enumerate() {
                assert_eq!(decap_ecn(order[o], order[i]), *want, "inner {i} outer {o}");
            }
        }
    }

    #[test]
    fn v4_outer() {
        let mut buf = [0u8; 80];
        emit_ipip_v4_outer(
            &mut buf,
            Ipv4Addr::new(172, 16, 0, 1),
            Ipv4Addr::new(172, 16, 0, 2),
            IpProtocol::IpIp,
            63,
            outer_tos_from_inner(0x03),
            true,
            0xbeef,
            60,
        )
        .unwrap();
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 80);
        assert_eq!(p.next_header(), IpProtocol::IpIp);
        assert_eq!(p.hop_limit(), 63);
        assert_eq!(p.dscp_ecn(), 0x02);
        assert!(p.dont_frag() && !p.is_fragment());
        assert_eq!(p.ident(), 0xbeef);
        assert_eq!(p.src_addr(), Ipv4Addr::new(172, 16, 0, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(172, 16, 0, 2));
        assert!(p.verify_checksum());
        assert_eq!(
            &buf[..12],
            &[
                0x45, 0x02, 0x00, 0x50, 0xbe, 0xef, 0x40, 0x00, 0x3f, 0x04, 0x24, 0x95
            ]
        );
    }

    #[test]
    fn v4_outer_errors() {
        let a = Ipv4Addr::LOCALHOST;
        let mut buf = [0u8; 20];
        assert_eq!(
            emit_ipip_v4_outer(&mut buf[..19], a, a, IpProtocol::IpIp, 1, 0, false, 0, 0),
            Err(Error::Truncated)
        );
        assert_eq!(
            emit_ipip_v4_outer(&mut buf, a, a, IpProtocol::IpIp, 1, 0, false, 0, 65_516),
            Err(Error::Malformed)
        );
        assert_eq!(
            emit_ipip_v4_outer(&mut buf, a, a, IpProtocol::Ipv6, 1, 0, false, 0, 65_515),
            Ok(())
        );
    }

    #[test]
    fn v6_outer() {
        let s: Ipv6Addr = "2001:db8::d1".parse().unwrap();
        let d: Ipv6Addr = "2001:db8::5".parse().unwrap();
        let mut buf = [0u8; 100];
        emit_ipip_v6_outer(&mut buf, s, d, IpProtocol::IpIp, 63, 0xb8, 60).unwrap();
        let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.payload_len(), 60);
        assert_eq!(p.next_header(), IpProtocol::IpIp);
        assert_eq!(p.hop_limit(), 63);
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.flow_label(), 0);
        assert_eq!((p.src_addr(), p.dst_addr()), (s, d));
        assert_eq!(&buf[..8], &[0x6b, 0x80, 0x00, 0x00, 0x00, 0x3c, 0x04, 0x3f]);
        assert_eq!(
            emit_ipip_v6_outer(&mut buf[..39], s, d, IpProtocol::Ipv6, 1, 0, 0),
            Err(Error::Truncated)
        );
        assert_eq!(
            emit_ipip_v6_outer(&mut buf, s, d, IpProtocol::Ipv6, 1, 0, 65_536),
            Err(Error::Malformed)
        );
    }
}
