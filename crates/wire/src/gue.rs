//! Generic UDP Encapsulation, variant 0 (draft-ietf-intarea-gue section 3.1).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |0x0|C|   Hlen  |  Proto/ctype  |             Flags             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                  Extensions fields (optional)                 |
//! ```
//!
//! The outer UDP header is written with [`UdpRepr`](crate::UdpRepr); its checksum may be
//! left zero over IPv4.

use crate::field::{be16, set_be16};
use crate::ip::IpProtocol;
use crate::{Error, Result};

/// Length of the base GUE header.
pub const HEADER_LEN: usize = 4;

/// A read/write view of a GUE variant 0 header.
///
/// After [`new_checked`](Self::new_checked) succeeds (version 0, `4 + hlen × 4` bytes
/// present) no accessor panics.
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

    /// Validates version and length.
    ///
    /// # Errors
    /// * [`Error::Truncated`]: shorter than 4 bytes or than `header_len()`;
    /// * [`Error::BadVersion`]: the 2-bit version is not 0 (variant 1, direct IP
    ///   encapsulation, has no GUE header to view).
    pub fn check_len(&self) -> Result<()> {
        let d = self.buffer.as_ref();
        if d.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 0 {
            return Err(Error::BadVersion);
        }
        if d.len() < self.header_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Variant / version, 2 bits.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 6
    }

    /// Control bit: the payload is a control message, not an IP packet.
    pub fn control(&self) -> bool {
        self.buffer.as_ref()[0] & 0x20 != 0
    }

    /// Length of the extension fields in 32-bit words.
    pub fn hlen(&self) -> u8 {
        self.buffer.as_ref()[0] & 0x1f
    }

    /// Full header length in bytes, `4 + hlen × 4`.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + usize::from(self.hlen()) * 4
    }

    /// IP protocol of the payload (data message) or control type (control message).
    pub fn proto_ctype(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    /// Flags.
    pub fn flags(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }

    /// Extension fields, `4..header_len`.
    pub fn extensions(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// Payload, `header_len..`.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets version (2 bits), control bit and hlen (5 bits).
    pub fn set_first_byte(&mut self, version: u8, control: bool, hlen: u8) {
        self.buffer.as_mut()[0] = ((version & 0x3) << 6) | (u8::from(control) << 5) | (hlen & 0x1f);
    }

    /// Sets the 2-bit version.
    pub fn set_version(&mut self, v: u8) {
        let d = self.buffer.as_mut();
        d[0] = (d[0] & 0x3f) | ((v & 0x3) << 6);
    }

    /// Sets or clears the control bit.
    pub fn set_control(&mut self, v: bool) {
        let d = self.buffer.as_mut();
        d[0] = (d[0] & !0x20) | (u8::from(v) << 5);
    }

    /// Sets the extension length in 32-bit words (5 bits).
    pub fn set_hlen(&mut self, v: u8) {
        let d = self.buffer.as_mut();
        d[0] = (d[0] & 0xe0) | (v & 0x1f);
    }

    /// Sets the protocol / control type.
    pub fn set_proto_ctype(&mut self, v: u8) {
        self.buffer.as_mut()[1] = v;
    }

    /// Sets the flags.
    pub fn set_flags(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), 2, v);
    }

    /// Mutable payload.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[hl..]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// Writes the 4-byte GUE header of a data message without extensions (version 0, C 0,
/// hlen 0, flags 0) carrying `inner_proto` ([`IpProtocol::IpIp`] or
/// [`IpProtocol::Ipv6`]) into the start of `buf`.
///
/// # Errors
/// [`Error::Truncated`] when `buf` is shorter than 4 bytes.
pub fn emit_gue_header(buf: &mut [u8], inner_proto: IpProtocol) -> Result<()> {
    let Some(hdr) = buf.get_mut(..HEADER_LEN) else {
        return Err(Error::Truncated);
    };
    hdr.copy_from_slice(&[0, inner_proto.into(), 0, 0]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emit_and_view() {
        let mut buf = [0xffu8; 8];
        emit_gue_header(&mut buf, IpProtocol::IpIp).unwrap();
        assert_eq!(&buf[..4], &[0x00, 0x04, 0x00, 0x00]);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.version(), 0);
        assert!(!p.control());
        assert_eq!(p.hlen(), 0);
        assert_eq!(p.header_len(), 4);
        assert_eq!(p.proto_ctype(), 4);
        assert_eq!(p.flags(), 0);
        assert!(p.extensions().is_empty());
        assert_eq!(p.payload(), &[0xff; 4]);
        assert_eq!(
            emit_gue_header(&mut buf[..3], IpProtocol::Ipv6),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn with_extensions() {
        // Version 0, C=0, hlen 2 (remote checksum offload style private data), IPv6.
        let buf = [0x02, 41, 0x80, 0x00, 1, 2, 3, 4, 5, 6, 7, 8, 0x60];
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.hlen(), 2);
        assert_eq!(p.header_len(), 12);
        assert_eq!(p.flags(), 0x8000);
        assert_eq!(p.extensions(), &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(p.payload(), &[0x60]);
        assert_eq!(
            Packet::new_checked(&buf[..11]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Packet::new_checked(&buf[..3]).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn control_and_version() {
        let mut buf = [0u8; 4];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_first_byte(0, true, 0);
        p.set_proto_ctype(7);
        p.set_flags(0x1234);
        assert!(p.control());
        assert_eq!(buf, [0x20, 7, 0x12, 0x34]);
        // Variant 1 (direct IPv4: first nibble 4 -> version bits 01).
        assert_eq!(
            Packet::new_checked(&[0x45, 0, 0, 0][..]).unwrap_err(),
            Error::BadVersion
        );
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_first_byte(1, false, 0);
        assert_eq!(p.version(), 1);
        p.set_first_byte(0, false, 0);
        assert!(p.payload_mut().is_empty());
        p.set_version(2);
        p.set_control(true);
        p.set_hlen(31);
        assert_eq!((p.version(), p.control(), p.hlen()), (2, true, 31));
        p.set_version(0);
        p.set_control(false);
        p.set_hlen(0);
        assert_eq!(buf[0], 0);
    }
}
