//! IPv4 packets (RFC 791).

use core::fmt;
use core::net::Ipv4Addr;

use crate::checksum;
use crate::field::{be16, ipv4, set_be16};
use crate::ip::IpProtocol;
use crate::{Error, Result};

const VER_IHL: usize = 0;
const DSCP_ECN: usize = 1;
const LENGTH: usize = 2;
const IDENT: usize = 4;
const FLG_OFF: usize = 6;
const TTL: usize = 8;
const PROTOCOL: usize = 9;
const CHECKSUM: usize = 10;
const SRC_ADDR: usize = 12;
const DST_ADDR: usize = 16;

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = 20;
/// Largest IPv4 header (IHL 15).
pub const MAX_HEADER_LEN: usize = 60;

/// A read/write view of an IPv4 packet.
///
/// After [`new_checked`](Self::new_checked) succeeds no accessor panics: the version is 4,
/// `20 <= header_len <= total_len <= buffer length`. Bytes past `total_len` (Ethernet
/// padding) are ignored by [`payload`](Self::payload). On a view made with
/// [`new_unchecked`](Self::new_unchecked) accessors panic when the buffer is too short for
/// the field they read.
///
/// Setters do not maintain the header checksum; call
/// [`fill_checksum`](Self::fill_checksum) (or update it with [`checksum::update16`]) last.
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
    /// * [`Error::Truncated`]: the buffer is shorter than 20 bytes, than `header_len`, or
    ///   than `total_len`;
    /// * [`Error::BadVersion`]: the version is not 4;
    /// * [`Error::Malformed`]: IHL < 5 or `total_len < header_len`.
    pub fn check_len(&self) -> Result<()> {
        let d = self.buffer.as_ref();
        if d.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 {
            return Err(Error::BadVersion);
        }
        let header_len = usize::from(self.header_len());
        if header_len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if d.len() < header_len {
            return Err(Error::Truncated);
        }
        let total_len = usize::from(self.total_len());
        if total_len < header_len {
            return Err(Error::Malformed);
        }
        if d.len() < total_len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version field (4 for a valid packet).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[VER_IHL] >> 4
    }

    /// Header length in bytes (IHL × 4), 20..=60.
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[VER_IHL] & 0x0f) * 4
    }

    /// The whole second byte (the former TOS field): DSCP and ECN.
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[DSCP_ECN]
    }

    /// Alias of [`dscp_ecn`](Self::dscp_ecn).
    pub fn tos(&self) -> u8 {
        self.dscp_ecn()
    }

    /// Differentiated services code point (6 bits).
    pub fn dscp(&self) -> u8 {
        self.dscp_ecn() >> 2
    }

    /// Explicit congestion notification (2 bits, RFC 3168).
    pub fn ecn(&self) -> u8 {
        self.dscp_ecn() & 0x03
    }

    /// Total length (header and payload) in bytes.
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), LENGTH)
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), IDENT)
    }

    /// The don't-fragment flag.
    pub fn dont_frag(&self) -> bool {
        be16(self.buffer.as_ref(), FLG_OFF) & 0x4000 != 0
    }

    /// The more-fragments flag.
    pub fn more_frags(&self) -> bool {
        be16(self.buffer.as_ref(), FLG_OFF) & 0x2000 != 0
    }

    /// Fragment offset **in bytes** (the 13-bit field × 8).
    pub fn frag_offset(&self) -> u16 {
        (be16(self.buffer.as_ref(), FLG_OFF) & 0x1fff) << 3
    }

    /// Whether this packet is a fragment (MF set or a non-zero offset).
    pub fn is_fragment(&self) -> bool {
        be16(self.buffer.as_ref(), FLG_OFF) & 0x3fff != 0
    }

    /// Time to live.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[TTL]
    }

    /// Alias of [`hop_limit`](Self::hop_limit).
    pub fn ttl(&self) -> u8 {
        self.hop_limit()
    }

    /// Protocol of the payload.
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[PROTOCOL])
    }

    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), CHECKSUM)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        ipv4(self.buffer.as_ref(), SRC_ADDR)
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        ipv4(self.buffer.as_ref(), DST_ADDR)
    }

    /// Options bytes (between the fixed header and `header_len`), possibly empty.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.header_len())]
    }

    /// The header bytes (`0..header_len`).
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..usize::from(self.header_len())]
    }

    /// Whether the header checksum is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.header()) == 0xffff
    }

    /// The payload, `header_len..total_len` (trailing padding excluded).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[usize::from(self.header_len())..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the version field.
    pub fn set_version(&mut self, version: u8) {
        let d = self.buffer.as_mut();
        d[VER_IHL] = (d[VER_IHL] & 0x0f) | (version << 4);
    }

    /// Sets the header length in bytes; it is stored as `len / 4` (low 4 bits).
    pub fn set_header_len(&mut self, len: u8) {
        let d = self.buffer.as_mut();
        d[VER_IHL] = (d[VER_IHL] & 0xf0) | ((len / 4) & 0x0f);
    }

    /// Sets the DSCP/ECN byte.
    pub fn set_dscp_ecn(&mut self, v: u8) {
        self.buffer.as_mut()[DSCP_ECN] = v;
    }

    /// Alias of [`set_dscp_ecn`](Self::set_dscp_ecn).
    pub fn set_tos(&mut self, v: u8) {
        self.set_dscp_ecn(v);
    }

    /// Sets the DSCP (low 6 bits of `v`), keeping ECN.
    pub fn set_dscp(&mut self, v: u8) {
        let d = self.buffer.as_mut();
        d[DSCP_ECN] = (d[DSCP_ECN] & 0x03) | (v << 2);
    }

    /// Sets the ECN codepoint (low 2 bits of `v`), keeping DSCP.
    pub fn set_ecn(&mut self, v: u8) {
        let d = self.buffer.as_mut();
        d[DSCP_ECN] = (d[DSCP_ECN] & 0xfc) | (v & 0x03);
    }

    /// Sets the total length.
    pub fn set_total_len(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), LENGTH, v);
    }

    /// Sets the identification.
    pub fn set_ident(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), IDENT, v);
    }

    /// Clears the flags and the fragment offset.
    pub fn clear_flags(&mut self) {
        set_be16(self.buffer.as_mut(), FLG_OFF, 0);
    }

    fn update_flg_off(&mut self, f: impl FnOnce(u16) -> u16) {
        let v = be16(self.buffer.as_ref(), FLG_OFF);
        set_be16(self.buffer.as_mut(), FLG_OFF, f(v));
    }

    /// Sets or clears the don't-fragment flag.
    pub fn set_dont_frag(&mut self, v: bool) {
        self.update_flg_off(|x| if v { x | 0x4000 } else { x & !0x4000 });
    }

    /// Sets or clears the more-fragments flag.
    pub fn set_more_frags(&mut self, v: bool) {
        self.update_flg_off(|x| if v { x | 0x2000 } else { x & !0x2000 });
    }

    /// Sets the fragment offset, given **in bytes** (rounded down to a multiple of 8).
    pub fn set_frag_offset(&mut self, bytes: u16) {
        self.update_flg_off(|x| (x & 0xe000) | (bytes >> 3));
    }

    /// Sets the time to live.
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[TTL] = v;
    }

    /// Sets the protocol.
    pub fn set_next_header(&mut self, v: IpProtocol) {
        self.buffer.as_mut()[PROTOCOL] = v.into();
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), CHECKSUM, v);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[SRC_ADDR..SRC_ADDR + 4].copy_from_slice(&a.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[DST_ADDR..DST_ADDR + 4].copy_from_slice(&a.octets());
    }

    /// Computes and stores the header checksum (over `header_len` bytes).
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::data(self.header());
        self.set_checksum(!sum);
    }

    /// Decrements the TTL by one and updates the checksum incrementally (RFC 1624).
    ///
    /// Returns the new TTL; a TTL already at 0 is left unchanged and 0 is returned.
    pub fn decrement_ttl(&mut self) -> u8 {
        let ttl = self.hop_limit();
        if ttl == 0 {
            return 0;
        }
        let old = be16(self.buffer.as_ref(), TTL);
        self.set_hop_limit(ttl - 1);
        let new = be16(self.buffer.as_ref(), TTL);
        let c = checksum::update16(self.checksum(), old, new);
        self.set_checksum(c);
        ttl - 1
    }

    /// Mutable options bytes.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = usize::from(self.header_len());
        &mut self.buffer.as_mut()[HEADER_LEN..hl]
    }

    /// Mutable payload, `header_len..total_len`.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = usize::from(self.header_len());
        let tl = usize::from(self.total_len());
        &mut self.buffer.as_mut()[hl..tl]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// A high-level representation of an IPv4 header.
///
/// Options and fragmentation are not represented: [`parse`](Self::parse) skips options
/// and rejects fragments, and [`emit`](Self::emit) writes a 20-byte header with MF and the
/// fragment offset cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Protocol of the payload.
    pub next_header: IpProtocol,
    /// Payload length in bytes (`total_len - header_len`).
    pub payload_len: usize,
    /// Time to live.
    pub hop_limit: u8,
    /// DSCP and ECN byte.
    pub dscp_ecn: u8,
    /// Identification.
    pub ident: u16,
    /// Don't-fragment flag.
    pub dont_frag: bool,
}

impl Repr {
    /// A representation with TOS 0, identification 0 and DF clear.
    pub const fn new(
        src_addr: Ipv4Addr,
        dst_addr: Ipv4Addr,
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
            dscp_ecn: 0,
            ident: 0,
            dont_frag: false,
        }
    }

    /// Parses and validates a packet, including its header checksum.
    ///
    /// # Errors
    /// Those of [`Packet::check_len`], [`Error::BadChecksum`], and [`Error::Unsupported`]
    /// for fragments.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Self> {
        packet.check_len()?;
        if !packet.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        if packet.is_fragment() {
            return Err(Error::Unsupported);
        }
        Ok(Self {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.total_len()) - usize::from(packet.header_len()),
            hop_limit: packet.hop_limit(),
            dscp_ecn: packet.dscp_ecn(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
        })
    }

    /// Length of the emitted header, 20.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Length of header and payload.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the header (with checksum) into the first 20 bytes of `packet`; the payload
    /// is left alone.
    ///
    /// # Errors
    /// * [`Error::Truncated`] when the buffer is shorter than 20 bytes;
    /// * [`Error::Malformed`] when `20 + payload_len` exceeds 65535.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        if packet.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let total = u16::try_from(self.buffer_len()).map_err(|_| Error::Malformed)?;
        packet.buffer.as_mut()[VER_IHL] = 0x45;
        packet.set_dscp_ecn(self.dscp_ecn);
        packet.set_total_len(total);
        packet.set_ident(self.ident);
        packet.clear_flags();
        packet.set_dont_frag(self.dont_frag);
        packet.set_hop_limit(self.hop_limit);
        packet.set_next_header(self.next_header);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.fill_checksum();
        Ok(())
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "IPv4 src={} dst={} proto={} len={} ttl={}",
            self.src_addr, self.dst_addr, self.next_header, self.payload_len, self.hop_limit
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IPv4 header of a TCP SYN from 192.168.1.10 to 93.184.216.34 (60 bytes total,
    /// ident 0x1c46, DF, TTL 64, checksum 0x26e9), followed by the 40-byte TCP header.
    static SYN_IP_HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x3c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, 0xc0, 0xa8, 0x01,
        0x0a, 0x5d, 0xb8, 0xd8, 0x22,
    ];

    fn syn_header() -> [u8; 20] {
        let mut h = SYN_IP_HEADER;
        let c = !checksum::data(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h
    }

    // A header with a 4-byte option (NOP NOP NOP EOL), 2 bytes payload, 2 bytes padding.
    static WITH_OPTIONS: [u8; 30] = [
        0x46, 0x10, 0x00, 0x1a, 0x12, 0x34, 0x20, 0x03, 0x05, 0x11, 0x00, 0x00, 0x0a, 0x00, 0x00,
        0x01, 0x0a, 0x00, 0x00, 0x02, 0x01, 0x01, 0x01, 0x00, 0xab, 0xcd, 0x00, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn known_checksum() {
        // By hand: the words add up to 0x2d914, folded 0xd916, complemented 0x26e9.
        let h = syn_header();
        assert_eq!(u16::from_be_bytes([h[10], h[11]]), 0x26e9);
        let p = Packet::new_unchecked(&h[..]);
        assert!(p.verify_checksum());
    }

    #[test]
    fn deconstruct() {
        let h = syn_header();
        let mut buf = [0u8; 60];
        buf[..20].copy_from_slice(&h);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.dscp_ecn(), 0);
        assert_eq!(p.total_len(), 60);
        assert_eq!(p.ident(), 0x1c46);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(!p.is_fragment());
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.next_header(), IpProtocol::Tcp);
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 168, 1, 10));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(93, 184, 216, 34));
        assert!(p.options().is_empty());
        assert_eq!(p.payload().len(), 40);
        assert!(p.verify_checksum());
    }

    #[test]
    fn options_fragment_and_padding() {
        let mut buf = WITH_OPTIONS;
        let mut p = Packet::new_checked(&mut buf[..]).unwrap();
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload(), &[0xab, 0xcd]);
        assert_eq!(p.dscp(), 4);
        assert_eq!(p.ecn(), 0);
        assert!(p.more_frags());
        assert_eq!(p.frag_offset(), 24);
        assert!(p.is_fragment());
        let p = Packet::new_unchecked(&buf[..]);
        assert_eq!(Repr::parse(&p), Err(Error::Unsupported));
    }

    #[test]
    fn check_len_errors() {
        let h = syn_header();
        let mut buf = [0u8; 60];
        buf[..20].copy_from_slice(&h);
        assert_eq!(
            Packet::new_checked(&buf[..19]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Packet::new_checked(&buf[..59]).unwrap_err(),
            Error::Truncated
        );
        let mut b = buf;
        b[0] = 0x65;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::BadVersion);
        b[0] = 0x44;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Malformed);
        b[0] = 0x4f;
        assert_eq!(Packet::new_checked(&b[..40]).unwrap_err(), Error::Truncated);
        b[0] = 0x45;
        b[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Malformed);
        b[0] = 0x4f;
        b[2..4].copy_from_slice(&59u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Malformed);
    }

    #[test]
    fn parse_emit() {
        let h = syn_header();
        let mut buf = [0u8; 60];
        buf[..20].copy_from_slice(&h);
        let repr = Repr::parse(&Packet::new_checked(&buf[..]).unwrap()).unwrap();
        assert_eq!(
            repr,
            Repr {
                src_addr: Ipv4Addr::new(192, 168, 1, 10),
                dst_addr: Ipv4Addr::new(93, 184, 216, 34),
                next_header: IpProtocol::Tcp,
                payload_len: 40,
                hop_limit: 64,
                dscp_ecn: 0,
                ident: 0x1c46,
                dont_frag: true,
            }
        );
        let mut out = [0xffu8; 60];
        repr.emit(&mut Packet::new_unchecked(&mut out[..])).unwrap();
        assert_eq!(out[..20], h);
        assert_eq!(repr.buffer_len(), 60);
    }

    #[test]
    fn bad_checksum() {
        let mut buf = [0u8; 60];
        buf[..20].copy_from_slice(&syn_header());
        buf[11] ^= 1;
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert!(!p.verify_checksum());
        assert_eq!(Repr::parse(&p), Err(Error::BadChecksum));
    }

    #[test]
    fn emit_errors() {
        let repr = Repr::new(
            Ipv4Addr::LOCALHOST,
            Ipv4Addr::LOCALHOST,
            IpProtocol::Udp,
            65_516,
            1,
        );
        let mut buf = [0u8; 20];
        assert_eq!(
            repr.emit(&mut Packet::new_unchecked(&mut buf[..])),
            Err(Error::Malformed)
        );
        assert_eq!(
            repr.emit(&mut Packet::new_unchecked(&mut buf[..19])),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn construct_and_ttl() {
        let mut buf = [0u8; 24];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_version(4);
        p.set_header_len(20);
        p.set_tos(0xb8);
        p.set_ecn(3);
        p.set_total_len(24);
        p.set_ident(7);
        p.set_more_frags(true);
        p.set_frag_offset(1480);
        p.set_dont_frag(true);
        p.set_dont_frag(false);
        p.set_hop_limit(2);
        p.set_next_header(IpProtocol::Icmp);
        p.set_src_addr(Ipv4Addr::new(1, 2, 3, 4));
        p.set_dst_addr(Ipv4Addr::new(5, 6, 7, 8));
        p.payload_mut().copy_from_slice(&[1, 2, 3, 4]);
        p.fill_checksum();
        assert_eq!(p.dscp(), 0x2e);
        assert_eq!(p.ecn(), 3);
        assert_eq!(p.frag_offset(), 1480);
        assert!(p.more_frags() && !p.dont_frag());
        assert_eq!(p.decrement_ttl(), 1);
        assert!(p.verify_checksum());
        assert_eq!(p.decrement_ttl(), 0);
        assert!(p.verify_checksum());
        assert_eq!(p.decrement_ttl(), 0);
        assert!(Packet::new_checked(&buf[..]).is_ok());
        assert_eq!(&buf[..4], &[0x45, 0xbb, 0x00, 0x18]);
    }
}
