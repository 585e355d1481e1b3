//! SCTP common header (RFC 9260 section 3.1) and the CRC32c checksum (appendix A).

use core::fmt;

use crate::field::{be16, be32, set_be16, set_be32};
use crate::{Error, Result};

const SRC_PORT: usize = 0;
const DST_PORT: usize = 2;
const VERIFICATION_TAG: usize = 4;
const CHECKSUM: usize = 8;
const CHUNK_TYPE: usize = 12;
const CHUNK_FLAGS: usize = 13;
const CHUNK_LEN: usize = 14;

/// Length of the SCTP common header.
pub const HEADER_LEN: usize = 12;
/// Length of a chunk header (type, flags, length).
pub const CHUNK_HEADER_LEN: usize = 4;

/// SCTP chunk types (RFC 9260 section 3.2) the load balancer cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChunkType {
    /// Payload data, 0.
    Data,
    /// Initiation, 1.
    Init,
    /// Initiation acknowledgement, 2.
    InitAck,
    /// Selective acknowledgement, 3.
    Sack,
    /// Heartbeat request, 4.
    Heartbeat,
    /// Heartbeat acknowledgement, 5.
    HeartbeatAck,
    /// Abort, 6.
    Abort,
    /// Shutdown, 7.
    Shutdown,
    /// Shutdown acknowledgement, 8.
    ShutdownAck,
    /// Operation error, 9.
    Error,
    /// State cookie, 10.
    CookieEcho,
    /// Cookie acknowledgement, 11.
    CookieAck,
    /// Shutdown complete, 14.
    ShutdownComplete,
    /// Any other chunk type.
    Unknown(u8),
}

impl From<u8> for ChunkType {
    fn from(v: u8) -> Self {
        match v {
            0 => Self::Data,
            1 => Self::Init,
            2 => Self::InitAck,
            3 => Self::Sack,
            4 => Self::Heartbeat,
            5 => Self::HeartbeatAck,
            6 => Self::Abort,
            7 => Self::Shutdown,
            8 => Self::ShutdownAck,
            9 => Self::Error,
            10 => Self::CookieEcho,
            11 => Self::CookieAck,
            14 => Self::ShutdownComplete,
            other => Self::Unknown(other),
        }
    }
}

impl From<ChunkType> for u8 {
    fn from(v: ChunkType) -> Self {
        match v {
            ChunkType::Data => 0,
            ChunkType::Init => 1,
            ChunkType::InitAck => 2,
            ChunkType::Sack => 3,
            ChunkType::Heartbeat => 4,
            ChunkType::HeartbeatAck => 5,
            ChunkType::Abort => 6,
            ChunkType::Shutdown => 7,
            ChunkType::ShutdownAck => 8,
            ChunkType::Error => 9,
            ChunkType::CookieEcho => 10,
            ChunkType::CookieAck => 11,
            ChunkType::ShutdownComplete => 14,
            ChunkType::Unknown(other) => other,
        }
    }
}

/// CRC32c (Castagnoli, reflected polynomial `0x82F63B78`), slicing-by-8 tables built at
/// compile time.
pub mod crc32c {
    const POLY: u32 = 0x82f6_3b78;

    const fn make_tables() -> [[u32; 256]; 8] {
        let mut t = [[0u32; 256]; 8];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
                k += 1;
            }
            t[0][i] = c;
            i += 1;
        }
        let mut i = 0;
        while i < 256 {
            let mut s = 1;
            while s < 8 {
                let prev = t[s - 1][i];
                t[s][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
                s += 1;
            }
            i += 1;
        }
        t
    }

    static TABLES: [[u32; 256]; 8] = make_tables();

    /// Continues a CRC32c computation: `state` is the running register (start with
    /// `0xFFFF_FFFF`), the result must be complemented at the end.
    pub fn update(mut state: u32, bytes: &[u8]) -> u32 {
        let t = &TABLES;
        let (chunks, rest) = bytes.as_chunks::<8>();
        for c in chunks {
            let lo = u32::from_le_bytes([c[0], c[1], c[2], c[3]]) ^ state;
            state = t[7][(lo & 0xff) as usize]
                ^ t[6][((lo >> 8) & 0xff) as usize]
                ^ t[5][((lo >> 16) & 0xff) as usize]
                ^ t[4][(lo >> 24) as usize]
                ^ t[3][usize::from(c[4])]
                ^ t[2][usize::from(c[5])]
                ^ t[1][usize::from(c[6])]
                ^ t[0][usize::from(c[7])];
        }
        for &b in rest {
            state = (state >> 8) ^ t[0][usize::from((state as u8) ^ b)];
        }
        state
    }

    /// The CRC32c of `bytes` (e.g. `0xE306_9283` for `b"123456789"`).
    pub fn checksum(bytes: &[u8]) -> u32 {
        !update(0xffff_ffff, bytes)
    }
}

/// A read/write view of an SCTP packet: the common header and the first chunk header.
///
/// After [`new_checked`](Self::new_checked) succeeds (at least 16 bytes: the common
/// header and one chunk header, since every SCTP packet carries a chunk) no accessor
/// panics. The buffer must hold exactly the SCTP packet: the CRC covers all of it.
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

    /// Checks that the common header and one chunk header are present.
    ///
    /// # Errors
    /// [`Error::Truncated`] when shorter than 16 bytes.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN + CHUNK_HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
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

    /// Verification tag.
    pub fn verification_tag(&self) -> u32 {
        be32(self.buffer.as_ref(), VERIFICATION_TAG)
    }

    /// Checksum field, as the CRC32c value it holds. SCTP stores the CRC in the byte
    /// order of its reflected computation, i.e. little-endian (as Linux does).
    pub fn checksum(&self) -> u32 {
        let d = self.buffer.as_ref();
        u32::from_le_bytes([
            d[CHECKSUM],
            d[CHECKSUM + 1],
            d[CHECKSUM + 2],
            d[CHECKSUM + 3],
        ])
    }

    /// Type of the first chunk.
    pub fn first_chunk_type(&self) -> ChunkType {
        ChunkType::from(self.buffer.as_ref()[CHUNK_TYPE])
    }

    /// Flags of the first chunk.
    pub fn first_chunk_flags(&self) -> u8 {
        self.buffer.as_ref()[CHUNK_FLAGS]
    }

    /// Length field of the first chunk.
    pub fn first_chunk_len(&self) -> u16 {
        be16(self.buffer.as_ref(), CHUNK_LEN)
    }

    /// Chunks, `12..`.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// CRC32c over the packet with the checksum field taken as zero.
    pub fn compute_checksum(&self) -> u32 {
        let d = self.buffer.as_ref();
        let mut s = crc32c::update(0xffff_ffff, &d[..CHECKSUM]);
        s = crc32c::update(s, &[0; 4]);
        s = crc32c::update(s, &d[HEADER_LEN..]);
        !s
    }

    /// Whether the checksum field matches [`compute_checksum`](Self::compute_checksum).
    pub fn verify_checksum(&self) -> bool {
        self.compute_checksum() == self.checksum()
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

    /// Sets the verification tag.
    pub fn set_verification_tag(&mut self, v: u32) {
        set_be32(self.buffer.as_mut(), VERIFICATION_TAG, v);
    }

    /// Stores a CRC32c value in the checksum field (little-endian, see
    /// [`checksum`](Self::checksum)).
    pub fn set_checksum(&mut self, v: u32) {
        self.buffer.as_mut()[CHECKSUM..CHECKSUM + 4].copy_from_slice(&v.to_le_bytes());
    }

    /// Computes and stores the CRC32c.
    pub fn fill_checksum(&mut self) {
        let c = self.compute_checksum();
        self.set_checksum(c);
    }

    /// Mutable chunks, `12..`.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

impl<T: AsRef<[u8]>> fmt::Display for Packet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.check_len().is_err() {
            return f.write_str("SCTP (truncated)");
        }
        write!(
            f,
            "SCTP src={} dst={} vtag={:#010x} chunk={:?}",
            self.src_port(),
            self.dst_port(),
            self.verification_tag(),
            self.first_chunk_type()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SCTP INIT 5000 -> 3868, verification tag 0, initiate tag 0x4a3b2c1d; CRC32c
    /// 0xb7233365 stored little-endian.
    static INIT: [u8; 32] = [
        0x13, 0x88, 0x0f, 0x1c, 0x00, 0x00, 0x00, 0x00, 0x65, 0x33, 0x23, 0xb7, 0x01, 0x00, 0x00,
        0x14, 0x4a, 0x3b, 0x2c, 0x1d, 0x00, 0x01, 0xa0, 0x00, 0x00, 0x0a, 0x08, 0x00, 0x7e, 0x5d,
        0x4c, 0x3b,
    ];

    #[test]
    fn crc32c_vectors() {
        // Check value from the CRC catalogue and RFC 3720 appendix B.4.
        assert_eq!(crc32c::checksum(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c::checksum(&[0; 32]), 0x8a91_36aa);
        assert_eq!(crc32c::checksum(&[0xff; 32]), 0x62a8_ab43);
        let inc: [u8; 32] = core::array::from_fn(|i| i as u8);
        assert_eq!(crc32c::checksum(&inc), 0x46dd_794e);
        let dec: [u8; 32] = core::array::from_fn(|i| 31 - i as u8);
        assert_eq!(crc32c::checksum(&dec), 0x113f_db5c);
        assert_eq!(crc32c::checksum(&[]), 0);
    }

    #[test]
    fn crc32c_split_updates() {
        let data: [u8; 77] = core::array::from_fn(|i| (i * 7 + 3) as u8);
        let whole = crc32c::checksum(&data);
        for cut in 0..data.len() {
            let s = crc32c::update(0xffff_ffff, &data[..cut]);
            assert_eq!(!crc32c::update(s, &data[cut..]), whole, "cut {cut}");
        }
    }

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&INIT[..]).unwrap();
        assert_eq!(p.src_port(), 5000);
        assert_eq!(p.dst_port(), 3868);
        assert_eq!(p.verification_tag(), 0);
        assert_eq!(p.checksum(), 0xb723_3365);
        assert_eq!(p.first_chunk_type(), ChunkType::Init);
        assert_eq!(p.first_chunk_flags(), 0);
        assert_eq!(p.first_chunk_len(), 20);
        assert_eq!(p.payload(), &INIT[12..]);
        assert!(p.verify_checksum());
    }

    #[test]
    fn construct_and_fill() {
        let mut buf = INIT;
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_checksum(0);
        p.set_src_port(1);
        p.set_dst_port(2);
        p.set_verification_tag(3);
        assert!(!p.verify_checksum());
        p.set_src_port(5000);
        p.set_dst_port(3868);
        p.set_verification_tag(0);
        p.fill_checksum();
        assert_eq!(buf, INIT);
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.payload_mut()[0] = 6;
        assert_eq!(p.first_chunk_type(), ChunkType::Abort);
        assert!(!p.verify_checksum());
    }

    #[test]
    fn check_len() {
        assert_eq!(
            Packet::new_checked(&INIT[..15]).unwrap_err(),
            Error::Truncated
        );
        assert!(Packet::new_checked(&INIT[..16]).is_ok());
    }

    #[test]
    fn chunk_types_round_trip() {
        for v in 0..=255u8 {
            assert_eq!(u8::from(ChunkType::from(v)), v);
        }
    }

    #[test]
    fn display() {
        use std::string::ToString;
        let p = Packet::new_unchecked(&INIT[..]);
        assert_eq!(
            p.to_string(),
            "SCTP src=5000 dst=3868 vtag=0x00000000 chunk=Init"
        );
        assert_eq!(
            Packet::new_unchecked(&INIT[..3]).to_string(),
            "SCTP (truncated)"
        );
    }
}
