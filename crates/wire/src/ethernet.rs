//! Ethernet II frames (IEEE 802.3) and 802.1Q / 802.1ad VLAN tags.

use core::fmt;

use crate::field::{be16, set_be16};
use crate::{Error, Result};

/// A 48-bit Ethernet (MAC) address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    /// The broadcast address `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: Self = Self([0xff; 6]);

    /// Reads an address from the first six bytes of `bytes`.
    ///
    /// # Errors
    /// [`Error::Truncated`] when `bytes` is shorter than six bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        match bytes.first_chunk::<6>() {
            Some(a) => Ok(Self(*a)),
            None => Err(Error::Truncated),
        }
    }

    /// The six octets.
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    /// Whether this is the broadcast address.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Whether the group bit (least significant bit of the first octet) is set; this
    /// includes the broadcast address.
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Whether this is an individual (non-group) address.
    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }

    /// Whether the locally administered bit is set.
    pub const fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }

    /// The Ethernet multicast address an IPv6 multicast address maps to (RFC 2464
    /// section 7): `33:33` followed by the low 32 bits of the address.
    pub const fn from_ipv6_multicast(addr: &core::net::Ipv6Addr) -> Self {
        let o = addr.octets();
        Self([0x33, 0x33, o[12], o[13], o[14], o[15]])
    }
}

impl fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// The EtherType field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EtherType {
    /// IPv4, `0x0800`.
    Ipv4,
    /// ARP, `0x0806`.
    Arp,
    /// IPv6, `0x86DD`.
    Ipv6,
    /// IEEE 802.1Q customer VLAN tag, `0x8100`.
    Vlan,
    /// IEEE 802.1ad service VLAN tag (Q-in-Q), `0x88A8`.
    QinQ,
    /// Any other value (also 802.3 length fields below `0x0600`).
    Unknown(u16),
}

impl From<u16> for EtherType {
    fn from(v: u16) -> Self {
        match v {
            0x0800 => Self::Ipv4,
            0x0806 => Self::Arp,
            0x86dd => Self::Ipv6,
            0x8100 => Self::Vlan,
            0x88a8 => Self::QinQ,
            other => Self::Unknown(other),
        }
    }
}

impl From<EtherType> for u16 {
    fn from(v: EtherType) -> Self {
        match v {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Ipv6 => 0x86dd,
            EtherType::Vlan => 0x8100,
            EtherType::QinQ => 0x88a8,
            EtherType::Unknown(other) => other,
        }
    }
}

impl fmt::Display for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ipv4 => f.write_str("IPv4"),
            Self::Arp => f.write_str("ARP"),
            Self::Ipv6 => f.write_str("IPv6"),
            Self::Vlan => f.write_str("802.1Q"),
            Self::QinQ => f.write_str("802.1ad"),
            Self::Unknown(v) => write!(f, "0x{v:04x}"),
        }
    }
}

const DST: usize = 0;
const SRC: usize = 6;
const ETHERTYPE: usize = 12;
/// Length of an untagged Ethernet II header.
pub const HEADER_LEN: usize = 14;
/// Length of one 802.1Q / 802.1ad tag (TPID + TCI).
pub const VLAN_TAG_LEN: usize = 4;

/// A read/write view of an Ethernet II frame.
///
/// Accessors panic if the buffer is shorter than [`HEADER_LEN`]; that can only happen on a
/// view made by [`new_unchecked`](Self::new_unchecked), never after
/// [`new_checked`](Self::new_checked) succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer and checks that it holds a full header.
    ///
    /// # Errors
    /// [`Error::Truncated`] when the buffer is shorter than 14 bytes.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    /// Checks that the buffer holds a full header.
    ///
    /// # Errors
    /// [`Error::Truncated`] when the buffer is shorter than 14 bytes.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The header length, always 14 (a VLAN tag is part of the payload here; see
    /// [`parse_l2`]).
    pub const fn header_len() -> usize {
        HEADER_LEN
    }

    /// Destination address.
    pub fn dst_addr(&self) -> EthernetAddress {
        EthernetAddress(crate::field::array(self.buffer.as_ref(), DST))
    }

    /// Source address.
    pub fn src_addr(&self) -> EthernetAddress {
        EthernetAddress(crate::field::array(self.buffer.as_ref(), SRC))
    }

    /// EtherType (or TPID when the frame is tagged).
    pub fn ethertype(&self) -> EtherType {
        EtherType::from(be16(self.buffer.as_ref(), ETHERTYPE))
    }

    /// Everything after the 14-byte header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[DST..DST + 6].copy_from_slice(&addr.0);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[SRC..SRC + 6].copy_from_slice(&addr.0);
    }

    /// Sets the EtherType.
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        set_be16(self.buffer.as_mut(), ETHERTYPE, ethertype.into());
    }

    /// Everything after the 14-byte header, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Frame<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// An 802.1Q tag control information (TCI) value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VlanTag {
    /// Priority code point, 3 bits.
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN identifier, 12 bits.
    pub vid: u16,
}

impl VlanTag {
    /// Decodes a 16-bit TCI.
    pub const fn from_tci(tci: u16) -> Self {
        Self {
            pcp: (tci >> 13) as u8,
            dei: tci & 0x1000 != 0,
            vid: tci & 0x0fff,
        }
    }

    /// Encodes the TCI; out-of-range `pcp`/`vid` bits are masked off.
    pub const fn tci(&self) -> u16 {
        ((self.pcp as u16 & 0x7) << 13) | ((self.dei as u16) << 12) | (self.vid & 0x0fff)
    }
}

/// A high-level representation of an Ethernet II header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src_addr: EthernetAddress,
    /// Destination address.
    pub dst_addr: EthernetAddress,
    /// EtherType of the payload.
    pub ethertype: EtherType,
}

impl Repr {
    /// Parses the untagged header of `frame`.
    pub fn parse<T: AsRef<[u8]>>(frame: &Frame<T>) -> Result<Self> {
        frame.check_len()?;
        Ok(Self {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            ethertype: frame.ethertype(),
        })
    }

    /// Length of the untagged header, 14.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the untagged header into `frame`.
    ///
    /// # Errors
    /// [`Error::Truncated`] when the frame buffer is shorter than 14 bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut Frame<T>) -> Result<()> {
        frame.check_len()?;
        frame.set_src_addr(self.src_addr);
        frame.set_dst_addr(self.dst_addr);
        frame.set_ethertype(self.ethertype);
        Ok(())
    }

    /// Writes the header into `buf`, with an 802.1Q tag (TPID `0x8100`) between the
    /// source address and `self.ethertype` when `vlan` is `Some`.
    ///
    /// Returns the header length (14 or 18), which is where the L3 packet starts.
    ///
    /// # Errors
    /// [`Error::Truncated`] when `buf` is shorter than that length.
    pub fn emit_tagged(&self, buf: &mut [u8], vlan: Option<VlanTag>) -> Result<usize> {
        let len = HEADER_LEN + if vlan.is_some() { VLAN_TAG_LEN } else { 0 };
        if buf.len() < len {
            return Err(Error::Truncated);
        }
        buf[DST..DST + 6].copy_from_slice(&self.dst_addr.0);
        buf[SRC..SRC + 6].copy_from_slice(&self.src_addr.0);
        match vlan {
            Some(tag) => {
                set_be16(buf, 12, EtherType::Vlan.into());
                set_be16(buf, 14, tag.tci());
                set_be16(buf, 16, self.ethertype.into());
            }
            None => set_be16(buf, 12, self.ethertype.into()),
        }
        Ok(len)
    }
}

/// Layer-2 summary of a frame, as returned by [`parse_l2`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct L2Info {
    /// EtherType of the L3 payload, after any VLAN tags.
    pub ethertype: EtherType,
    /// Offset of the L3 header from the start of the frame (14, 18 or 22).
    pub l3_offset: usize,
    /// VLAN identifier (12 bits) of the first (outermost) tag, if the frame is tagged.
    /// For a Q-in-Q frame the inner tag's TCI is the big-endian `u16` at `frame[18..20]`.
    pub vlan: Option<u16>,
}

/// Parses the Ethernet header of `frame`, skipping up to two 802.1Q (`0x8100`) or
/// 802.1ad (`0x88A8`) tags.
///
/// # Errors
/// * [`Error::Truncated`] when the frame ends inside the header or a tag;
/// * [`Error::Unsupported`] when a third tag follows two tags.
pub fn parse_l2(frame: &[u8]) -> Result<L2Info> {
    if frame.len() < HEADER_LEN {
        return Err(Error::Truncated);
    }
    let mut ethertype = EtherType::from(be16(frame, ETHERTYPE));
    let mut offset = HEADER_LEN;
    let mut vlan = None;
    let mut tags = 0;
    while matches!(ethertype, EtherType::Vlan | EtherType::QinQ) {
        if tags == 2 {
            return Err(Error::Unsupported);
        }
        if frame.len() < offset + VLAN_TAG_LEN {
            return Err(Error::Truncated);
        }
        if vlan.is_none() {
            vlan = Some(be16(frame, offset) & 0x0fff);
        }
        ethertype = EtherType::from(be16(frame, offset + 2));
        offset += VLAN_TAG_LEN;
        tags += 1;
    }
    Ok(L2Info {
        ethertype,
        l3_offset: offset,
        vlan,
    })
}

#[cfg(test)]
mod tests {
    use std::string::ToString;

    use super::*;

    // dst 01:02:03:04:05:06, src 11:12:13:14:15:16, IPv4, payload aa bb cc dd.
    static FRAME: [u8; 18] = [
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x08, 0x00, 0xaa,
        0xbb, 0xcc, 0xdd,
    ];

    // Q-in-Q: S-tag VID 100 (pcp 3), C-tag VID 200, then IPv6.
    static QINQ: [u8; 23] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x88, 0xa8, 0x60,
        0x64, 0x81, 0x00, 0x00, 0xc8, 0x86, 0xdd, 0x60,
    ];

    #[test]
    fn deconstruct() {
        let f = Frame::new_checked(&FRAME[..]).unwrap();
        assert_eq!(f.dst_addr(), EthernetAddress([1, 2, 3, 4, 5, 6]));
        assert_eq!(
            f.src_addr(),
            EthernetAddress([0x11, 0x12, 0x13, 0x14, 0x15, 0x16])
        );
        assert_eq!(f.ethertype(), EtherType::Ipv4);
        assert_eq!(f.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
    }

    #[test]
    fn construct() {
        let mut buf = [0u8; 18];
        let mut f = Frame::new_unchecked(&mut buf[..]);
        f.set_dst_addr(EthernetAddress([1, 2, 3, 4, 5, 6]));
        f.set_src_addr(EthernetAddress([0x11, 0x12, 0x13, 0x14, 0x15, 0x16]));
        f.set_ethertype(EtherType::Ipv4);
        f.payload_mut().copy_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(buf, FRAME);
    }

    #[test]
    fn parse_emit() {
        let f = Frame::new_checked(&FRAME[..]).unwrap();
        let repr = Repr::parse(&f).unwrap();
        let mut buf = FRAME;
        buf[..14].fill(0);
        repr.emit(&mut Frame::new_unchecked(&mut buf[..])).unwrap();
        assert_eq!(buf, FRAME);
        assert_eq!(
            repr.emit(&mut Frame::new_unchecked(&mut buf[..13])),
            Err(Error::Truncated)
        );
        assert_eq!(repr.buffer_len(), 14);
    }

    #[test]
    fn truncated() {
        assert_eq!(
            Frame::new_checked(&FRAME[..13]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(parse_l2(&FRAME[..13]).unwrap_err(), Error::Truncated);
        assert_eq!(parse_l2(&QINQ[..17]).unwrap_err(), Error::Truncated);
        assert_eq!(parse_l2(&QINQ[..21]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn l2_untagged_and_tagged() {
        let info = parse_l2(&FRAME).unwrap();
        assert_eq!(
            info,
            L2Info {
                ethertype: EtherType::Ipv4,
                l3_offset: 14,
                vlan: None
            }
        );
        let info = parse_l2(&QINQ).unwrap();
        assert_eq!(
            info,
            L2Info {
                ethertype: EtherType::Ipv6,
                l3_offset: 22,
                vlan: Some(100)
            }
        );
        assert_eq!(VlanTag::from_tci(be16(&QINQ, 14)).pcp, 3);
        assert_eq!(be16(&QINQ, 18), 200);
    }

    #[test]
    fn three_tags_unsupported() {
        let mut buf = [0u8; 30];
        buf[12..14].copy_from_slice(&[0x81, 0x00]);
        buf[16..18].copy_from_slice(&[0x81, 0x00]);
        buf[20..22].copy_from_slice(&[0x81, 0x00]);
        assert_eq!(parse_l2(&buf).unwrap_err(), Error::Unsupported);
    }

    #[test]
    fn emit_vlan_tag() {
        let repr = Repr {
            src_addr: EthernetAddress([0x11, 0x12, 0x13, 0x14, 0x15, 0x16]),
            dst_addr: EthernetAddress([1, 2, 3, 4, 5, 6]),
            ethertype: EtherType::Ipv4,
        };
        let mut buf = [0u8; 18];
        let tag = VlanTag {
            pcp: 5,
            dei: true,
            vid: 42,
        };
        assert_eq!(repr.emit_tagged(&mut buf, Some(tag)), Ok(18));
        assert_eq!(&buf[12..18], &[0x81, 0x00, 0xb0, 0x2a, 0x08, 0x00]);
        let info = parse_l2(&buf).unwrap();
        assert_eq!(info.vlan, Some(42));
        assert_eq!(info.l3_offset, 18);
        assert_eq!(info.ethertype, EtherType::Ipv4);
        assert_eq!(VlanTag::from_tci(tag.tci()), tag);
        assert_eq!(
            repr.emit_tagged(&mut buf[..17], Some(tag)),
            Err(Error::Truncated)
        );
        assert_eq!(repr.emit_tagged(&mut buf[..14], None), Ok(14));
    }

    #[test]
    fn addresses() {
        assert!(EthernetAddress::BROADCAST.is_broadcast());
        assert!(EthernetAddress::BROADCAST.is_multicast());
        assert!(!EthernetAddress::BROADCAST.is_unicast());
        let a = EthernetAddress([0x02, 0, 0x5e, 0x10, 0, 0xff]);
        assert!(a.is_unicast() && a.is_local() && !a.is_broadcast());
        assert_eq!(a.to_string(), "02:00:5e:10:00:ff");
        assert_eq!(
            EthernetAddress::from_bytes(&[1, 2, 3]),
            Err(Error::Truncated)
        );
        let m = EthernetAddress::from_ipv6_multicast(&"ff02::1:ff00:1234".parse().unwrap());
        assert_eq!(m, EthernetAddress([0x33, 0x33, 0xff, 0x00, 0x12, 0x34]));
    }

    #[test]
    fn ethertype_round_trip() {
        for v in [0x0800u16, 0x0806, 0x86dd, 0x8100, 0x88a8, 0x1234, 0x0040] {
            assert_eq!(u16::from(EtherType::from(v)), v);
        }
    }
}
