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
