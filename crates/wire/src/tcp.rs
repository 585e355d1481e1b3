//! TCP segments (RFC 9293).

use core::fmt;
use core::net::IpAddr;

use crate::checksum;
use crate::field::{be16, be32, set_be16, set_be32};
use crate::ip::IpProtocol;
use crate::{Error, Result};

const SRC_PORT: usize = 0;
const DST_PORT: usize = 2;
const SEQ_NUM: usize = 4;
const ACK_NUM: usize = 8;
const DATA_OFF: usize = 12;
const FLAGS: usize = 13;
const WIN_SIZE: usize = 14;
const CHECKSUM: usize = 16;
const URGENT: usize = 18;

/// Length of a TCP header without options.
pub const HEADER_LEN: usize = 20;
/// Largest TCP header (data offset 15).
pub const MAX_HEADER_LEN: usize = 60;

/// TCP flag bits as found in [`Packet::flags`].
pub mod flags {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronise sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push function.
    pub const PSH: u8 = 0x08;
    /// Acknowledgment field is significant.
    pub const ACK: u8 = 0x10;
    /// Urgent pointer field is significant.
    pub const URG: u8 = 0x20;
    /// ECN-Echo (RFC 3168).
    pub const ECE: u8 = 0x40;
    /// Congestion window reduced (RFC 3168).
    pub const CWR: u8 = 0x80;
}

/// A read/write view of a TCP segment.
///
/// The buffer must hold exactly the segment (typically the IP payload): its length is the
/// one covered by the checksum. After [`new_checked`](Self::new_checked) succeeds no
/// accessor panics (`20 <= header_len <= buffer length`).
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
    /// * [`Error::Truncated`]: shorter than 20 bytes or than the data offset;
    /// * [`Error::Malformed`]: data offset below 5.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = usize::from(self.header_len());
        if hl < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if len < hl {
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

    /// Sequence number.
    pub fn seq_number(&self) -> u32 {
        be32(self.buffer.as_ref(), SEQ_NUM)
    }

    /// Acknowledgment number.
    pub fn ack_number(&self) -> u32 {
        be32(self.buffer.as_ref(), ACK_NUM)
    }

    /// Header length in bytes (data offset × 4).
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[DATA_OFF] >> 4) * 4
    }

    /// The eight flag bits (CWR ECE URG ACK PSH RST SYN FIN); see [`flags`].
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[FLAGS]
    }

    /// FIN flag.
    pub fn fin(&self) -> bool {
        self.flags() & flags::FIN != 0
    }

    /// SYN flag.
    pub fn syn(&self) -> bool {
        self.flags() & flags::SYN != 0
    }

    /// RST flag.
    pub fn rst(&self) -> bool {
        self.flags() & flags::RST != 0
    }

    /// PSH flag.
    pub fn psh(&self) -> bool {
        self.flags() & flags::PSH != 0
    }

    /// ACK flag.
    pub fn ack(&self) -> bool {
        self.flags() & flags::ACK != 0
    }

    /// URG flag.
    pub fn urg(&self) -> bool {
        self.flags() & flags::URG != 0
    }

    /// ECE flag.
    pub fn ece(&self) -> bool {
        self.flags() & flags::ECE != 0
    }

    /// CWR flag.
    pub fn cwr(&self) -> bool {
        self.flags() & flags::CWR != 0
    }

    /// Window size.
    pub fn window(&self) -> u16 {
        be16(self.buffer.as_ref(), WIN_SIZE)
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), CHECKSUM)
    }

    /// Urgent pointer.
    pub fn urgent(&self) -> u16 {
        be16(self.buffer.as_ref(), URGENT)
    }

    /// Options bytes, `20..header_len`.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.header_len())]
    }

    /// Payload, `header_len..`.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[usize::from(self.header_len())..]
    }

    /// Length of the whole segment (header and payload), which the pseudo header covers.
    pub fn segment_len(&self) -> usize {
        self.buffer.as_ref().len()
    }

    /// Whether the checksum is correct for the given pseudo-header addresses.
    pub fn verify_checksum(&self, src: &IpAddr, dst: &IpAddr) -> bool {
        let d = self.buffer.as_ref();
        let Ok(len) = u32::try_from(d.len()) else {
            return false;
        };
        checksum::combine(&[
            checksum::pseudo_header(src, dst, IpProtocol::Tcp.into(), len),
            checksum::data(d),
        ]) == 0xffff
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

    /// Sets the sequence number.
    pub fn set_seq_number(&mut self, v: u32) {
        set_be32(self.buffer.as_mut(), SEQ_NUM, v);
    }

    /// Sets the acknowledgment number.
    pub fn set_ack_number(&mut self, v: u32) {
        set_be32(self.buffer.as_mut(), ACK_NUM, v);
    }

    /// Sets the header length in bytes (stored as `len / 4` in the high nibble); the
    /// reserved bits and the NS bit are cleared.
    pub fn set_header_len(&mut self, len: u8) {
        self.buffer.as_mut()[DATA_OFF] = ((len / 4) & 0x0f) << 4;
    }

    /// Sets all eight flag bits.
    pub fn set_flags(&mut self, v: u8) {
        self.buffer.as_mut()[FLAGS] = v;
    }

    fn set_flag(&mut self, bit: u8, v: bool) {
        let f = self.flags();
        self.set_flags(if v { f | bit } else { f & !bit });
    }

    /// Sets or clears FIN.
    pub fn set_fin(&mut self, v: bool) {
        self.set_flag(flags::FIN, v);
    }

    /// Sets or clears SYN.
    pub fn set_syn(&mut self, v: bool) {
        self.set_flag(flags::SYN, v);
    }

    /// Sets or clears RST.
    pub fn set_rst(&mut self, v: bool) {
        self.set_flag(flags::RST, v);
    }

    /// Sets or clears PSH.
    pub fn set_psh(&mut self, v: bool) {
        self.set_flag(flags::PSH, v);
    }

    /// Sets or clears ACK.
    pub fn set_ack(&mut self, v: bool) {
        self.set_flag(flags::ACK, v);
    }

    /// Sets or clears URG.
    pub fn set_urg(&mut self, v: bool) {
        self.set_flag(flags::URG, v);
    }

    /// Sets or clears ECE.
    pub fn set_ece(&mut self, v: bool) {
        self.set_flag(flags::ECE, v);
    }

    /// Sets or clears CWR.
    pub fn set_cwr(&mut self, v: bool) {
        self.set_flag(flags::CWR, v);
    }

    /// Sets the window size.
    pub fn set_window(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), WIN_SIZE, v);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), CHECKSUM, v);
    }

    /// Sets the urgent pointer.
    pub fn set_urgent(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), URGENT, v);
    }

    /// Mutable options bytes.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = usize::from(self.header_len());
        &mut self.buffer.as_mut()[HEADER_LEN..hl]
    }

    /// Mutable payload.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = usize::from(self.header_len());
        &mut self.buffer.as_mut()[hl..]
    }

    /// Computes and stores the checksum over the pseudo header and the whole buffer.
    ///
    /// A segment longer than `u32::MAX` bytes cannot exist; its checksum is left zero.
    pub fn fill_checksum(&mut self, src: &IpAddr, dst: &IpAddr) {
        self.set_checksum(0);
        let d = self.buffer.as_ref();
        let Ok(len) = u32::try_from(d.len()) else {
            return;
        };
        let sum = checksum::combine(&[
            checksum::pseudo_header(src, dst, IpProtocol::Tcp.into(), len),
            checksum::data(d),
        ]);
        self.set_checksum(!sum);
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// A high-level representation of a TCP segment, borrowing options and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq_number: u32,
    /// Acknowledgment number.
    pub ack_number: u32,
    /// Flag bits; see [`flags`].
    pub flags: u8,
    /// Window size.
    pub window: u16,
    /// Urgent pointer.
    pub urgent: u16,
    /// Raw options, a multiple of 4 bytes and at most 40 bytes to be emitted.
    pub options: &'a [u8],
    /// Payload.
    pub payload: &'a [u8],
}

impl<'a> Repr<'a> {
    /// Parses a segment and verifies its checksum against the pseudo-header addresses.
    ///
    /// # Errors
    /// Those of [`Packet::check_len`] and [`Error::BadChecksum`].
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Packet<&'a T>,
        src: &IpAddr,
        dst: &IpAddr,
    ) -> Result<Self> {
        packet.check_len()?;
        if !packet.verify_checksum(src, dst) {
            return Err(Error::BadChecksum);
        }
        let d: &'a [u8] = packet.buffer.as_ref();
        let hl = usize::from(packet.header_len());
        Ok(Self {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq_number: packet.seq_number(),
            ack_number: packet.ack_number(),
            flags: packet.flags(),
            window: packet.window(),
            urgent: packet.urgent(),
            options: &d[HEADER_LEN..hl],
            payload: &d[hl..],
        })
    }

    /// Header length (20 + options).
    pub const fn header_len(&self) -> usize {
        HEADER_LEN + self.options.len()
    }

    /// Length of header and payload.
    pub const fn buffer_len(&self) -> usize {
        self.header_len() + self.payload.len()
    }

    /// Writes the segment (header, options, payload and checksum) into the first
    /// [`buffer_len`](Self::buffer_len) bytes of `packet`; the checksum covers exactly
    /// those bytes and anything after them is left untouched.
    ///
    /// # Errors
    /// * [`Error::Malformed`]: options not a multiple of 4 or longer than 40 bytes;
    /// * [`Error::Truncated`]: the buffer is shorter than `buffer_len()`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
        src: &IpAddr,
        dst: &IpAddr,
    ) -> Result<()> {
        if !self.options.len().is_multiple_of(4) || self.options.len() > MAX_HEADER_LEN - HEADER_LEN
        {
            return Err(Error::Malformed);
        }
        let Some(segment) = packet.buffer.as_mut().get_mut(..self.buffer_len()) else {
            return Err(Error::Truncated);
        };
        let mut packet = Packet::new_unchecked(segment);
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_seq_number(self.seq_number);
        packet.set_ack_number(self.ack_number);
        // Fits: header_len() <= 60.
        packet.set_header_len(self.header_len() as u8);
        packet.set_flags(self.flags);
        packet.set_window(self.window);
        packet.set_urgent(self.urgent);
        packet.options_mut().copy_from_slice(self.options);
        packet.payload_mut().copy_from_slice(self.payload);
        packet.fill_checksum(src, dst);
        Ok(())
    }
}

impl fmt::Display for Repr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TCP src={} dst={}", self.src_port, self.dst_port)?;
        for (bit, name) in [
            (flags::SYN, " syn"),
            (flags::ACK, " ack"),
            (flags::FIN, " fin"),
            (flags::RST, " rst"),
            (flags::PSH, " psh"),
            (flags::URG, " urg"),
            (flags::ECE, " ece"),
            (flags::CWR, " cwr"),
        ] {
            if self.flags & bit != 0 {
                f.write_str(name)?;
            }
        }
        write!(
            f,
            " seq={} ack={} win={} len={}",
            self.seq_number,
            self.ack_number,
            self.window,
            self.payload.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use core::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    /// Ethernet + IPv4 + TCP SYN 192.168.1.10:50594 -> 93.184.216.34:80 (MSS 1460,
    /// SACK-permitted, timestamps, NOP, window scale 7). TCP checksum 0x4e97.
    static SYN_FRAME: [u8; 74] = [
        0x00, 0x1b, 0x21, 0x3a, 0x4f, 0x10, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x00, 0x45,
        0x00, 0x00, 0x3c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x06, 0x26, 0xe9, 0xc0, 0xa8, 0x01, 0x0a,
        0x5d, 0xb8, 0xd8, 0x22, 0xc5, 0xa2, 0x00, 0x50, 0x6a, 0x0f, 0x8c, 0x21, 0x00, 0x00, 0x00,
        0x00, 0xa0, 0x02, 0xfa, 0xf0, 0x4e, 0x97, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02,
        0x08, 0x0a, 0x00, 0x9c, 0x4a, 0x2b, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
    ];

    static SYN_OPTIONS: [u8; 20] = [
        0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x00, 0x9c, 0x4a, 0x2b, 0x00, 0x00, 0x00,
        0x00, 0x01, 0x03, 0x03, 0x07,
    ];

    /// TCP SYN-ACK 443 -> 51000 inside IPv6 2001:db8::80 -> 2001:db8::c (checksum 0x70c3).
    static TCP6_SYNACK: [u8; 20] = [
        0x01, 0xbb, 0xc7, 0x38, 0x01, 0x02, 0x03, 0x04, 0x0a, 0x0b, 0x0c, 0x0d, 0x50, 0x12, 0xff,
        0xff, 0x70, 0xc3, 0x00, 0x00,
    ];

    fn v4() -> (IpAddr, IpAddr) {
        (
            IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10)),
            IpAddr::V4(Ipv4Addr::new(93, 184, 216, 34)),
        )
    }

    fn v6() -> (IpAddr, IpAddr) {
        (
            IpAddr::V6("2001:db8::80".parse::<Ipv6Addr>().unwrap()),
            IpAddr::V6("2001:db8::c".parse::<Ipv6Addr>().unwrap()),
        )
    }

    fn syn_repr() -> Repr<'static> {
        Repr {
            src_port: 50594,
            dst_port: 80,
            seq_number: 0x6a0f_8c21,
            ack_number: 0,
            flags: flags::SYN,
            window: 64240,
            urgent: 0,
            options: &SYN_OPTIONS,
            payload: &[],
        }
    }

    #[test]
    fn deconstruct_syn() {
        let (s, d) = v4();
        let p = Packet::new_checked(&SYN_FRAME[34..]).unwrap();
        assert_eq!(p.src_port(), 50594);
        assert_eq!(p.dst_port(), 80);
        assert_eq!(p.seq_number(), 0x6a0f_8c21);
        assert_eq!(p.ack_number(), 0);
        assert_eq!(p.header_len(), 40);
        assert_eq!(p.flags(), flags::SYN);
        assert!(p.syn() && !p.ack() && !p.fin() && !p.rst() && !p.psh());
        assert!(!p.urg() && !p.ece() && !p.cwr());
        assert_eq!(p.window(), 64240);
        assert_eq!(p.checksum(), 0x4e97);
        assert_eq!(p.urgent(), 0);
        assert_eq!(p.options(), &SYN_OPTIONS);
        assert!(p.payload().is_empty());
        assert_eq!(p.segment_len(), 40);
        assert!(p.verify_checksum(&s, &d));
        assert!(!p.verify_checksum(&d, &IpAddr::V4(Ipv4Addr::new(93, 184, 216, 35))));
    }

    #[test]
    fn parse_emit_syn() {
        let (s, d) = v4();
        let p = Packet::new_checked(&SYN_FRAME[34..]).unwrap();
        let repr = Repr::parse(&p, &s, &d).unwrap();
        assert_eq!(repr, syn_repr());
        assert_eq!(repr.buffer_len(), 40);
        let mut buf = [0u8; 40];
        repr.emit(&mut Packet::new_unchecked(&mut buf[..]), &s, &d)
            .unwrap();
        assert_eq!(buf[..], SYN_FRAME[34..]);
    }

    #[test]
    fn construct_synack_v6() {
        let (s, d) = v6();
        let mut buf = [0xa5u8; 20];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_src_port(443);
        p.set_dst_port(51000);
        p.set_seq_number(0x0102_0304);
        p.set_ack_number(0x0a0b_0c0d);
        p.set_header_len(20);
        p.set_flags(0);
        p.set_syn(true);
        p.set_ack(true);
        p.set_fin(true);
        p.set_fin(false);
        p.set_window(0xffff);
        p.set_urgent(0);
        p.fill_checksum(&s, &d);
        assert_eq!(buf, TCP6_SYNACK);
        let p = Packet::new_checked(&TCP6_SYNACK[..]).unwrap();
        assert!(p.verify_checksum(&s, &d));
        // Swapping the addresses keeps the sum (it is commutative); changing one does not.
        assert!(p.verify_checksum(&d, &s));
        assert!(!p.verify_checksum(&s, &IpAddr::V6(Ipv6Addr::LOCALHOST)));
    }

    #[test]
    fn flag_setters() {
        let mut buf = [0u8; 20];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_rst(true);
        p.set_psh(true);
        p.set_urg(true);
        p.set_ece(true);
        p.set_cwr(true);
        assert_eq!(
            p.flags(),
            flags::RST | flags::PSH | flags::URG | flags::ECE | flags::CWR
        );
        p.set_rst(false);
        assert!(!p.rst() && p.psh() && p.urg() && p.ece() && p.cwr());
    }

    #[test]
    fn bad_checksum_and_lengths() {
        let (s, d) = v4();
        let mut seg = [0u8; 40];
        seg.copy_from_slice(&SYN_FRAME[34..]);
        seg[39] ^= 0x01;
        let p = Packet::new_checked(&seg[..]).unwrap();
        assert_eq!(Repr::parse(&p, &s, &d), Err(Error::BadChecksum));
        assert_eq!(
            Packet::new_checked(&seg[..19]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Packet::new_checked(&seg[..39]).unwrap_err(),
            Error::Truncated
        );
        seg[12] = 0x40;
        assert_eq!(Packet::new_checked(&seg[..]).unwrap_err(), Error::Malformed);
    }

    #[test]
    fn emit_errors() {
        let (s, d) = v4();
        let mut repr = syn_repr();
        let mut buf = [0xeeu8; 41];
        assert_eq!(
            repr.emit(&mut Packet::new_unchecked(&mut buf[..39]), &s, &d),
            Err(Error::Truncated)
        );
        // A longer buffer: the segment goes in front, the rest is untouched.
        repr.emit(&mut Packet::new_unchecked(&mut buf[..]), &s, &d)
            .unwrap();
        assert_eq!(buf[..40], SYN_FRAME[34..]);
        assert_eq!(buf[40], 0xee);
        repr.options = &SYN_OPTIONS[..3];
        assert_eq!(
            repr.emit(&mut Packet::new_unchecked(&mut buf[..]), &s, &d),
            Err(Error::Malformed)
        );
        let long = [1u8; 44];
        repr.options = &long;
        assert_eq!(
            repr.emit(&mut Packet::new_unchecked(&mut buf[..]), &s, &d),
            Err(Error::Malformed)
        );
    }

    #[test]
    fn display() {
        use std::string::ToString;
        assert_eq!(
            syn_repr().to_string(),
            "TCP src=50594 dst=80 syn seq=1779403809 ack=0 win=64240 len=0"
        );
    }
}
