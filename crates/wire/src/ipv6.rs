//! IPv6 packets (RFC 8200) and extension-header walking.

use core::fmt;
use core::net::Ipv6Addr;

use crate::field::{be16, be32, ipv6, set_be16, set_be32};
use crate::ip::IpProtocol;
use crate::{Error, Result};

const VER_TC_FLOW: usize = 0;
const LENGTH: usize = 4;
const NXT_HDR: usize = 6;
const HOP_LIMIT: usize = 7;
const SRC_ADDR: usize = 8;
const DST_ADDR: usize = 24;

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;

/// Minimum link MTU of IPv6 (RFC 8200 section 5).
pub const MIN_MTU: usize = 1280;

/// Most extension headers [`ipv6_upper_layer`] walks before giving up.
pub const MAX_EXT_HEADERS: usize = 8;

/// A read/write view of an IPv6 packet.
///
/// After [`new_checked`](Self::new_checked) succeeds no accessor panics: the version is 6
/// and `40 + payload_len <= buffer length`. Bytes past the payload (Ethernet padding) are
/// ignored by [`payload`](Self::payload). Jumbograms (RFC 2675, `payload_len` 0 with a
/// jumbo option) are not supported: such a packet has an empty payload here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without any check.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer and validates it with [`check_len`](Self::check_len).
    ///
    /// # Errors
    /// See [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Validates version and lengths so that no accessor can panic.
    ///
    /// # Errors
    /// * [`Error::Truncated`]: shorter than 40 bytes or than `40 + payload_len`;
    /// * [`Error::BadVersion`]: the version is not 6.
    pub fn check_len(&self) -> Result<()> {
        let d = self.buffer.as_ref();
        if d.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 6 {
            return Err(Error::BadVersion);
        }
        if d.len() < HEADER_LEN + usize::from(self.payload_len()) {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The fixed header length, 40.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Version field (6 for a valid packet).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[VER_TC_FLOW] >> 4
    }

    /// Traffic class (DSCP and ECN).
    pub fn traffic_class(&self) -> u8 {
        ((be16(self.buffer.as_ref(), VER_TC_FLOW) >> 4) & 0xff) as u8
    }

    /// Flow label (20 bits).
    pub fn flow_label(&self) -> u32 {
        be32(self.buffer.as_ref(), VER_TC_FLOW) & 0x000f_ffff
    }

    /// Payload length (everything after the fixed header, extension headers included).
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), LENGTH)
    }

    /// Type of the header following the fixed header.
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[NXT_HDR])
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[HOP_LIMIT]
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        ipv6(self.buffer.as_ref(), SRC_ADDR)
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        ipv6(self.buffer.as_ref(), DST_ADDR)
    }

    /// The payload, `40..40 + payload_len` (extension headers included).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }

    /// The packet itself, `0..40 + payload_len` (trailing padding excluded).
    pub fn packet(&self) -> &[u8] {
        &self.buffer.as_ref()[..HEADER_LEN + usize::from(self.payload_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the version field.
    pub fn set_version(&mut self, v: u8) {
        let d = self.buffer.as_mut();
        d[0] = (d[0] & 0x0f) | (v << 4);
    }

    /// Sets the traffic class.
    pub fn set_traffic_class(&mut self, v: u8) {
        let d = self.buffer.as_mut();
        let w = (be16(d, 0) & 0xf00f) | (u16::from(v) << 4);
        set_be16(d, 0, w);
    }

    /// Sets the flow label (low 20 bits of `v`).
    pub fn set_flow_label(&mut self, v: u32) {
        let d = self.buffer.as_mut();
        let w = (be32(d, 0) & 0xfff0_0000) | (v & 0x000f_ffff);
        set_be32(d, 0, w);
    }

    /// Sets the payload length.
    pub fn set_payload_len(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), LENGTH, v);
    }

    /// Sets the next header.
    pub fn set_next_header(&mut self, v: IpProtocol) {
        self.buffer.as_mut()[NXT_HDR] = v.into();
    }

    /// Sets the hop limit.
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[HOP_LIMIT] = v;
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[SRC_ADDR..SRC_ADDR + 16].copy_from_slice(&a.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[DST_ADDR..DST_ADDR + 16].copy_from_slice(&a.octets());
    }

    /// Mutable payload, `40..40 + payload_len`.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// A high-level representation of the fixed IPv6 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// Type of the first header after the fixed header.
    pub next_header: IpProtocol,
    /// Payload length (extension headers included).
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
}

impl Repr {
    /// A representation with traffic class 0 and flow label 0.
    pub const fn new(
        src_addr: Ipv6Addr,
        dst_addr: Ipv6Addr,
        next_header: IpProtocol,
        payload_len: usize,
        hop_limit: u8,
    ) -> Self {
        Self {
            src_addr,
            dst_addr,
            next_header,
            payload_len,
            hop_limit,
            traffic_class: 0,
            flow_label: 0,
        }
    }

    /// Parses the fixed header of a packet.
    ///
    /// # Errors
    /// Those of [`Packet::check_len`].
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Self> {
        packet.check_len()?;
        Ok(Self {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.payload_len()),
            hop_limit: packet.hop_limit(),
            traffic_class: packet.traffic_class(),
            flow_label: packet.flow_label(),
        })
    }

    /// Length of the fixed header, 40.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Length of header and payload.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the fixed header into the first 40 bytes of `packet`.
    ///
    /// # Errors
    /// * [`Error::Truncated`] when the buffer is shorter than 40 bytes;
    /// * [`Error::Malformed`] when `payload_len` exceeds 65535 or the flow label 20 bits.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        if packet.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let len = u16::try_from(self.payload_len).map_err(|_| Error::Malformed)?;
        if self.flow_label > 0x000f_ffff {
            return Err(Error::Malformed);
        }
        set_be32(
            packet.buffer.as_mut(),
            0,
            (6 << 28) | (u32::from(self.traffic_class) << 20) | self.flow_label,
        );
        packet.set_payload_len(len);
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        Ok(())
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "IPv6 src={} dst={} nxt_hdr={} len={} hop_limit={}",
            self.src_addr, self.dst_addr, self.next_header, self.payload_len, self.hop_limit
        )
    }
}

/// Fragment header fields found by [`ipv6_upper_layer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6FragInfo {
    /// Fragment offset **in bytes** (the 13-bit field × 8).
    pub offset: u16,
    /// The M (more fragments) flag.
    pub more: bool,
    /// Identification.
    pub ident: u32,
}

/// Result of [`ipv6_upper_layer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6L4Info {
    /// Upper-layer protocol (the first header that is not an extension header walked here).
    pub protocol: IpProtocol,
    /// Offset of the upper-layer header from the start of the IPv6 header.
    pub l4_offset: usize,
    /// The fragment header, when there is one. When `offset != 0` the bytes at
    /// `l4_offset` are the middle of the upper-layer data, not its header.
    pub fragment: Option<Ipv6FragInfo>,
}

/// Walks the extension headers of the IPv6 packet `packet` (starting with its fixed
/// header) and locates the upper-layer header.
///
/// Hop-by-hop (0), routing (43), fragment (44), destination options (60) and AH (51)
/// headers are skipped, at most [`MAX_EXT_HEADERS`] of them. The walk stops at the first
/// other next-header value (including ESP and "no next header") and at a fragment with a
/// non-zero offset, whose following headers are in the first fragment. The returned offset
/// can equal the end of the payload (e.g. "no next header").
///
/// # Errors
/// * those of [`Packet::new_checked`];
/// * [`Error::Truncated`] when an extension header runs past `40 + payload_len`;
/// * [`Error::Malformed`] when a hop-by-hop header is not the first one (RFC 8200 section
///   4.1) or there are two fragment headers;
/// * [`Error::Unsupported`] when more than [`MAX_EXT_HEADERS`] extension headers are
///   present.
pub fn ipv6_upper_layer(packet: &[u8]) -> Result<Ipv6L4Info> {
    let p = Packet::new_checked(packet)?;
    let end = HEADER_LEN + usize::from(p.payload_len());
    let d = &packet[..end];
    let mut next = p.next_header();
    let mut offset = HEADER_LEN;
    let mut fragment = None;
    let mut walked = 0;
    loop {
        let current = next;
        let len = match current {
            IpProtocol::HopByHop | IpProtocol::Ipv6Route | IpProtocol::Ipv6Opts => {
                if current == IpProtocol::HopByHop && walked != 0 {
                    return Err(Error::Malformed);
                }
                match d.get(offset + 1) {
                    Some(&l) => (usize::from(l) + 1) * 8,
                    None => return Err(Error::Truncated),
                }
            }
            // RFC 4302 section 2.2: AH length is in 4-octet units, minus 2.
            IpProtocol::Ah => match d.get(offset + 1) {
                Some(&l) => (usize::from(l) + 2) * 4,
                None => return Err(Error::Truncated),
            },
            IpProtocol::Ipv6Frag => 8,
            _ => break,
        };
        if walked == MAX_EXT_HEADERS {
            return Err(Error::Unsupported);
        }
        let Some(hdr) = d.get(offset..offset + len) else {
            return Err(Error::Truncated);
        };
        next = IpProtocol::from(hdr[0]);
        offset += len;
        walked += 1;
        if current == IpProtocol::Ipv6Frag {
            if fragment.is_some() {
                return Err(Error::Malformed);
            }
            let off_m = be16(hdr, 2);
            let info = Ipv6FragInfo {
                offset: off_m & 0xfff8,
                more: off_m & 0x0001 != 0,
                ident: be32(hdr, 4),
            };
            fragment = Some(info);
            if info.offset != 0 {
                break;
            }
        }
    }
    Ok(Ipv6L4Info {
        protocol: next,
        l4_offset: offset,
        fragment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum;
    use crate::udp::Packet as UdpPacket;

    /// IPv6 2001:db8::1 -> 2001:db8:1::53 (traffic class 0x28, flow label 0x12345):
    /// hop-by-hop (router alert, PadN), first fragment (M=1, ident 0xdeadbeef), then the
    /// first 32 bytes of a 48-byte UDP datagram 40000 -> 53.
    static IPV6_HBH_FRAG: [u8; 88] = [
        0x62, 0x81, 0x23, 0x45, 0x00, 0x30, 0x00, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x53, 0x2c, 0x00, 0x05, 0x02, 0x00,
        0x00, 0x01, 0x00, 0x11, 0x00, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef, 0x9c, 0x40, 0x00, 0x35,
        0x00, 0x30, 0xc6, 0x30, 0x72, 0x76, 0x73, 0x2d, 0x66, 0x72, 0x61, 0x67, 0x00, 0x01, 0x02,
        0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
    ];

    /// Second fragment of the same datagram (offset 32, M=0), without hop-by-hop.
    static IPV6_FRAG2: [u8; 64] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x18, 0x2c, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x53, 0x11, 0x00, 0x00, 0x20, 0xde,
        0xad, 0xbe, 0xef, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f,
        0x70, 0x71, 0x72, 0x73,
    ];

    fn src() -> Ipv6Addr {
        "2001:db8::1".parse().unwrap()
    }

    fn dst() -> Ipv6Addr {
        "2001:db8:1::53".parse().unwrap()
    }

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&IPV6_HBH_FRAG[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0x28);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 48);
        assert_eq!(p.next_header(), IpProtocol::HopByHop);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), src());
        assert_eq!(p.dst_addr(), dst());
        assert_eq!(p.payload(), &IPV6_HBH_FRAG[40..]);
        assert_eq!(p.header_len(), 40);
    }

    #[test]
    fn walk_hop_by_hop_and_fragment() {
        let info = ipv6_upper_layer(&IPV6_HBH_FRAG).unwrap();
        assert_eq!(
            info,
            Ipv6L4Info {
                protocol: IpProtocol::Udp,
                l4_offset: 56,
                fragment: Some(Ipv6FragInfo {
                    offset: 0,
                    more: true,
                    ident: 0xdead_beef
                }),
            }
        );
        // The first fragment holds the UDP header but not the whole datagram.
        let udp = &IPV6_HBH_FRAG[info.l4_offset..];
        assert_eq!(UdpPacket::new_checked(udp).unwrap_err(), Error::Truncated);
        let u = UdpPacket::new_unchecked(udp);
        assert_eq!((u.src_port(), u.dst_port()), (40000, 53));
    }

    #[test]
    fn reassembled_udp_checksum() {
        // Reassemble by hand and check the UDP checksum over the full datagram.
        let mut datagram = [0u8; 48];
        datagram[..32].copy_from_slice(&IPV6_HBH_FRAG[56..]);
        datagram[32..].copy_from_slice(&IPV6_FRAG2[48..]);
        let u = UdpPacket::new_checked(&datagram[..]).unwrap();
        assert!(u.verify_checksum(&src().into(), &dst().into()));
    }

    #[test]
    fn walk_non_first_fragment() {
        let info = ipv6_upper_layer(&IPV6_FRAG2).unwrap();
        assert_eq!(info.protocol, IpProtocol::Udp);
        assert_eq!(info.l4_offset, 48);
        assert_eq!(
            info.fragment,
            Some(Ipv6FragInfo {
                offset: 32,
                more: false,
                ident: 0xdead_beef
            })
        );
    }

    fn with_headers(next: u8, exts: &[u8]) -> [u8; 128] {
        let mut buf = [0u8; 128];
        buf[0] = 0x60;
        buf[4..6].copy_from_slice(&88u16.to_be_bytes());
        buf[6] = next;
        buf[7] = 1;
        buf[40..40 + exts.len()].copy_from_slice(exts);
        buf
    }

    #[test]
    fn walk_routing_destopts_ah() {
        // routing (len 0: 8 bytes) -> dest opts (len 1: 16 bytes) -> AH (len 4: 24 bytes)
        // -> TCP.
        let mut exts = [0u8; 48];
        exts[0] = 60;
        exts[8] = 51;
        exts[9] = 1;
        exts[24] = 6;
        exts[25] = 4;
        let buf = with_headers(43, &exts);
        let info = ipv6_upper_layer(&buf).unwrap();
        assert_eq!(info.protocol, IpProtocol::Tcp);
        assert_eq!(info.l4_offset, 40 + 48);
        assert_eq!(info.fragment, None);
    }

    #[test]
    fn walk_stops_at_esp_and_no_next() {
        let buf = with_headers(50, &[]);
        assert_eq!(ipv6_upper_layer(&buf).unwrap().protocol, IpProtocol::Esp);
        let buf = with_headers(60, &[59, 0]);
        let info = ipv6_upper_layer(&buf).unwrap();
        assert_eq!(info.protocol, IpProtocol::Ipv6NoNxt);
        assert_eq!(info.l4_offset, 48);
    }

    #[test]
    fn walk_errors() {
        // Hop-by-hop after another extension header.
        let buf = with_headers(60, &[0, 0, 0, 0, 0, 0, 0, 0, 6, 0]);
        assert_eq!(ipv6_upper_layer(&buf), Err(Error::Malformed));
        // Two fragment headers.
        let buf = with_headers(44, &[44, 0, 0, 0, 0, 0, 0, 1, 6, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(ipv6_upper_layer(&buf), Err(Error::Malformed));
        // A header longer than the payload.
        let buf = with_headers(60, &[6, 20]);
        assert_eq!(ipv6_upper_layer(&buf), Err(Error::Truncated));
        // Too many headers: nine destination-options headers.
        let mut exts = [0u8; 88];
        for i in 0..11 {
            exts[i * 8] = 60;
        }
        let buf = with_headers(60, &exts);
        assert_eq!(ipv6_upper_layer(&buf), Err(Error::Unsupported));
        // Length byte of an extension header missing.
        let mut short = with_headers(60, &[]);
        short[4..6].copy_from_slice(&1u16.to_be_bytes());
        assert_eq!(ipv6_upper_layer(&short[..41]), Err(Error::Truncated));
        // Not IPv6 at all.
        assert_eq!(ipv6_upper_layer(&[0x45; 40]), Err(Error::BadVersion));
        assert_eq!(ipv6_upper_layer(&[0x60; 39]), Err(Error::Truncated));
    }

    #[test]
    fn check_len_errors() {
        assert_eq!(
            Packet::new_checked(&IPV6_HBH_FRAG[..39]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Packet::new_checked(&IPV6_HBH_FRAG[..87]).unwrap_err(),
            Error::Truncated
        );
        let mut b = IPV6_HBH_FRAG;
        b[0] = 0x42;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::BadVersion);
    }

    #[test]
    fn parse_emit() {
        let p = Packet::new_checked(&IPV6_HBH_FRAG[..]).unwrap();
        let repr = Repr::parse(&p).unwrap();
        assert_eq!(
            repr,
            Repr {
                src_addr: src(),
                dst_addr: dst(),
                next_header: IpProtocol::HopByHop,
                payload_len: 48,
                hop_limit: 64,
                traffic_class: 0x28,
                flow_label: 0x12345,
            }
        );
        let mut buf = [0u8; 40];
        repr.emit(&mut Packet::new_unchecked(&mut buf[..])).unwrap();
        assert_eq!(buf[..], IPV6_HBH_FRAG[..40]);
        assert_eq!(repr.buffer_len(), 88);
        let mut bad = repr;
        bad.flow_label = 0x10_0000;
        assert_eq!(
            bad.emit(&mut Packet::new_unchecked(&mut buf[..])),
            Err(Error::Malformed)
        );
        bad = repr;
        bad.payload_len = 65_536;
        assert_eq!(
            bad.emit(&mut Packet::new_unchecked(&mut buf[..])),
            Err(Error::Malformed)
        );
        assert_eq!(
            repr.emit(&mut Packet::new_unchecked(&mut buf[..39])),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn construct() {
        let mut buf = [0u8; 64];
        buf[..40].fill(0xff);
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_version(6);
        p.set_traffic_class(0);
        p.set_flow_label(0);
        p.set_payload_len(24);
        p.set_next_header(IpProtocol::Ipv6Frag);
        p.set_hop_limit(64);
        p.set_src_addr(src());
        p.set_dst_addr(dst());
        p.payload_mut().copy_from_slice(&IPV6_FRAG2[40..]);
        assert_eq!(buf, IPV6_FRAG2);
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_traffic_class(0xab);
        p.set_flow_label(0xfffff);
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xab);
        assert_eq!(p.flow_label(), 0xfffff);
        assert_eq!(checksum::data(&[]), 0);
    }
}
