//! UDP datagrams (RFC 768; IPv6 rules from RFC 8200 section 8.1).

use core::fmt;
use core::net::IpAddr;

use crate::checksum;
use crate::field::{be16, set_be16};
use crate::ip::IpProtocol;
use crate::{Error, Result};

const SRC_PORT: usize = 0;
const DST_PORT: usize = 2;
const LENGTH: usize = 4;
const CHECKSUM: usize = 6;

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;

/// A read/write view of a UDP datagram.
///
/// After [`new_checked`](Self::new_checked) succeeds no accessor panics
/// (`8 <= len <= buffer length`); bytes past `len` are ignored.
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

    /// Validates lengths so that no accessor can panic.
    ///
    /// # Errors
    /// * [`Error::Truncated`]: shorter than 8 bytes or than the length field;
    /// * [`Error::Malformed`]: length field below 8 (this includes the IPv6 jumbogram
    ///   length 0, which is not supported).
    pub fn check_len(&self) -> Result<()> {
        let blen = self.buffer.as_ref().len();
        if blen < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let len = usize::from(self.len());
        if len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if blen < len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), SRC_PORT)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), DST_PORT)
    }

    /// Length field (header and payload).
    #[expect(
        clippy::len_without_is_empty,
        reason = "`len` is the RFC 768 field name"
    )]
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), LENGTH)
    }

    /// Checksum field (`0` over IPv4 means "not computed").
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), CHECKSUM)
    }

    /// Payload, `8..len`.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }

    fn compute(&self, src: &IpAddr, dst: &IpAddr) -> u16 {
        let len = self.len();
        checksum::combine(&[
            checksum::pseudo_header(src, dst, IpProtocol::Udp.into(), u32::from(len)),
            checksum::data(&self.buffer.as_ref()[..usize::from(len)]),
        ])
    }

    /// Whether the checksum is correct for the given pseudo-header addresses.
    ///
    /// A zero field is accepted over IPv4 (checksum not computed) and rejected over IPv6,
    /// where the checksum is mandatory.
    pub fn verify_checksum(&self, src: &IpAddr, dst: &IpAddr) -> bool {
        if self.checksum() == 0 {
            return src.is_ipv4() && dst.is_ipv4();
        }
        self.compute(src, dst) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port.
    pub fn set_src_port(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), SRC_PORT, v);
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), DST_PORT, v);
    }

    /// Sets the length field.
    pub fn set_len(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), LENGTH, v);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), CHECKSUM, v);
    }

    /// Mutable payload, `8..len`.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..len]
    }

    /// Computes and stores the checksum over the pseudo header and `len` bytes; a computed
    /// `0` is stored as `0xFFFF`.
    pub fn fill_checksum(&mut self, src: &IpAddr, dst: &IpAddr) {
        self.set_checksum(0);
        let c = !self.compute(src, dst);
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// A high-level representation of a UDP header. The payload is handled separately, so
/// that an outer header (GUE, VXLAN...) can be written around a payload already in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

impl Repr {
    /// Parses a datagram and verifies its checksum (see [`Packet::verify_checksum`]).
    ///
    /// # Errors
    /// Those of [`Packet::check_len`] and [`Error::BadChecksum`].
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>, src: &IpAddr, dst: &IpAddr) -> Result<Self> {
        packet.check_len()?;
        if !packet.verify_checksum(src, dst) {
            return Err(Error::BadChecksum);
        }
        Ok(Self {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
        })
    }

    /// Header length, 8.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header plus `payload_len`.
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        HEADER_LEN + payload_len
    }

    /// Writes ports and length and a **zero** checksum, leaving the payload alone. Write
    /// the payload afterwards and call [`Packet::fill_checksum`], or keep the zero
    /// checksum (allowed over IPv4 only, as for GUE without `--tun-csum`).
    ///
    /// # Errors
    /// * [`Error::Malformed`]: `8 + payload_len` exceeds 65535;
    /// * [`Error::Truncated`]: the buffer is shorter than `8 + payload_len`.
    pub fn emit_header<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
        payload_len: usize,
    ) -> Result<()> {
        let len = u16::try_from(self.buffer_len(payload_len)).map_err(|_| Error::Malformed)?;
        if packet.buffer.as_ref().len() < usize::from(len) {
            return Err(Error::Truncated);
        }
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len(len);
        packet.set_checksum(0);
        Ok(())
    }

    /// Writes header, `payload` and checksum.
    ///
    /// # Errors
    /// Those of [`emit_header`](Self::emit_header).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
        src: &IpAddr,
        dst: &IpAddr,
        payload: &[u8],
    ) -> Result<()> {
        self.emit_header(packet, payload.len())?;
        packet.payload_mut().copy_from_slice(payload);
        packet.fill_checksum(src, dst);
        Ok(())
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UDP src={} dst={}", self.src_port, self.dst_port)
    }
}

#[cfg(test)]
mod tests {
    use core::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    /// IPv4 + UDP DNS query 10.0.0.2:53124 -> 8.8.8.8:53 for "example.com" A; UDP
    /// checksum 0x2c40.
    static DNS_QUERY: [u8; 57] = [
        0x45, 0x00, 0x00, 0x39, 0x4d, 0x2e, 0x00, 0x00, 0x40, 0x11, 0x13, 0x75, 0x0a, 0x00, 0x00,
        0x02, 0x08, 0x08, 0x08, 0x08, 0xcf, 0x84, 0x00, 0x35, 0x00, 0x25, 0x2c, 0x40, 0x1a, 0x2b,
        0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x65, 0x78, 0x61, 0x6d,
        0x70, 0x6c, 0x65, 0x03, 0x63, 0x6f, 0x6d, 0x00, 0x00, 0x01, 0x00, 0x01,
    ];

    fn addrs() -> (IpAddr, IpAddr) {
        (
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8)),
        )
    }

    #[test]
    fn deconstruct() {
        let (s, d) = addrs();
        let p = Packet::new_checked(&DNS_QUERY[20..]).unwrap();
        assert_eq!(p.src_port(), 53124);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.len(), 37);
        assert_eq!(p.checksum(), 0x2c40);
        assert_eq!(p.payload(), &DNS_QUERY[28..]);
        assert!(p.verify_checksum(&s, &d));
        assert!(!p.verify_checksum(&s, &IpAddr::V4(Ipv4Addr::new(8, 8, 4, 4))));
    }

    #[test]
    fn parse_emit() {
        let (s, d) = addrs();
        let p = Packet::new_checked(&DNS_QUERY[20..]).unwrap();
        let repr = Repr::parse(&p, &s, &d).unwrap();
        assert_eq!(
            repr,
            Repr {
                src_port: 53124,
                dst_port: 53
            }
        );
        let mut buf = [0u8; 37];
        repr.emit(
            &mut Packet::new_unchecked(&mut buf[..]),
            &s,
            &d,
            &DNS_QUERY[28..],
        )
        .unwrap();
        assert_eq!(buf[..], DNS_QUERY[20..]);
        assert_eq!(repr.buffer_len(29), 37);
        assert_eq!(repr.header_len(), 8);
    }

    #[test]
    fn padding_ignored() {
        let (s, d) = addrs();
        let mut buf = [0u8; 45];
        buf[..37].copy_from_slice(&DNS_QUERY[20..]);
        buf[37..].fill(0xee);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.payload().len(), 29);
        assert!(p.verify_checksum(&s, &d));
    }

    #[test]
    fn zero_checksum_rules() {
        let (s, d) = addrs();
        let mut buf = [0u8; 37];
        buf.copy_from_slice(&DNS_QUERY[20..]);
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_checksum(0);
        assert!(p.verify_checksum(&s, &d));
        let s6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert!(!p.verify_checksum(&s6, &s6));
        assert_eq!(Repr::parse(&p, &s6, &s6), Err(Error::BadChecksum));
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // Choose the last payload word so that the full sum is 0xffff, i.e. the computed
        // checksum is 0.
        let (s, d) = addrs();
        let mut buf = [0u8; 12];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_src_port(1);
        p.set_dst_port(2);
        p.set_len(12);
        p.set_checksum(0);
        let partial = checksum::combine(&[
            checksum::pseudo_header(&s, &d, 17, 12),
            checksum::data(p.as_ref()),
        ]);
        let fix = !partial; // adding this word brings the sum to 0xffff
        p.payload_mut()[..2].copy_from_slice(&fix.to_be_bytes());
        p.fill_checksum(&s, &d);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum(&s, &d));
    }

    #[test]
    fn check_len_errors() {
        assert_eq!(
            Packet::new_checked(&DNS_QUERY[20..27]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Packet::new_checked(&DNS_QUERY[20..56]).unwrap_err(),
            Error::Truncated
        );
        let mut buf = [0u8; 8];
        buf[5] = 7;
        assert_eq!(Packet::new_checked(&buf[..]).unwrap_err(), Error::Malformed);
        buf[5] = 0;
        assert_eq!(Packet::new_checked(&buf[..]).unwrap_err(), Error::Malformed);
    }

    #[test]
    fn emit_header_only() {
        let repr = Repr {
            src_port: 4242,
            dst_port: 6080,
        };
        let mut buf = [0xffu8; 20];
        repr.emit_header(&mut Packet::new_unchecked(&mut buf[..]), 12)
            .unwrap();
        assert_eq!(&buf[..8], &[0x10, 0x92, 0x17, 0xc0, 0x00, 0x14, 0x00, 0x00]);
        assert_eq!(
            repr.emit_header(&mut Packet::new_unchecked(&mut buf[..]), 13),
            Err(Error::Truncated)
        );
        assert_eq!(
            repr.emit_header(&mut Packet::new_unchecked(&mut buf[..]), 65_528),
            Err(Error::Malformed)
        );
    }
}
