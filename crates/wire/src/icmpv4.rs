//! ICMP for IPv4 (RFC 792, RFC 1191 for "fragmentation needed", RFC 1812 section 4.3
//! for the size of error messages).

use core::fmt;
use core::net::Ipv4Addr;

use crate::checksum;
use crate::field::{be16, set_be16};
use crate::ip::IpProtocol;
use crate::ipv4::{self, Packet as Ipv4Packet, Repr as Ipv4Repr};
use crate::{Error, Result};

const TYPE: usize = 0;
const CODE: usize = 1;
const CHECKSUM: usize = 2;
const ECHO_IDENT: usize = 4;
const ECHO_SEQNO: usize = 6;
const POINTER: usize = 4;
const NEXT_HOP_MTU: usize = 6;

/// Length of the ICMP header (type, code, checksum and the 4-byte rest of header).
pub const HEADER_LEN: usize = 8;

/// Largest IPv4 packet carrying an ICMP error (RFC 1812 section 4.3.2.3).
pub const MAX_ERROR_PACKET_LEN: usize = 576;

/// Most bytes of the offending packet quoted in an error, so that the whole error fits in
/// [`MAX_ERROR_PACKET_LEN`] with a 20-byte IPv4 header.
pub const MAX_QUOTE_LEN: usize = MAX_ERROR_PACKET_LEN - ipv4::HEADER_LEN - HEADER_LEN;

/// ICMPv4 message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Message {
    /// Echo reply, 0.
    EchoReply,
    /// Destination unreachable, 3.
    DstUnreachable,
    /// Source quench (deprecated), 4.
    SourceQuench,
    /// Redirect, 5.
    Redirect,
    /// Echo request, 8.
    EchoRequest,
    /// Time exceeded, 11.
    TimeExceeded,
    /// Parameter problem, 12.
    ParamProblem,
    /// Any other type.
    Unknown(u8),
}

impl Message {
    /// Whether messages of this type are errors that quote an offending packet.
    pub const fn is_error(&self) -> bool {
        matches!(
            self,
            Self::DstUnreachable
                | Self::SourceQuench
                | Self::Redirect
                | Self::TimeExceeded
                | Self::ParamProblem
        )
    }
}

impl From<u8> for Message {
    fn from(v: u8) -> Self {
        match v {
            0 => Self::EchoReply,
            3 => Self::DstUnreachable,
            4 => Self::SourceQuench,
            5 => Self::Redirect,
            8 => Self::EchoRequest,
            11 => Self::TimeExceeded,
            12 => Self::ParamProblem,
            other => Self::Unknown(other),
        }
    }
}

impl From<Message> for u8 {
    fn from(v: Message) -> Self {
        match v {
            Message::EchoReply => 0,
            Message::DstUnreachable => 3,
            Message::SourceQuench => 4,
            Message::Redirect => 5,
            Message::EchoRequest => 8,
            Message::TimeExceeded => 11,
            Message::ParamProblem => 12,
            Message::Unknown(other) => other,
        }
    }
}

/// Codes of destination-unreachable messages (type 3).
pub mod dst_unreachable {
    /// Network unreachable.
    pub const NET_UNREACHABLE: u8 = 0;
    /// Host unreachable.
    pub const HOST_UNREACHABLE: u8 = 1;
    /// Protocol unreachable.
    pub const PROTO_UNREACHABLE: u8 = 2;
    /// Port unreachable.
    pub const PORT_UNREACHABLE: u8 = 3;
    /// Fragmentation needed and DF set (RFC 1191: carries the next-hop MTU).
    pub const FRAG_NEEDED: u8 = 4;
    /// Communication administratively prohibited (RFC 1812).
    pub const ADMIN_PROHIBITED: u8 = 13;
}

/// Codes of time-exceeded messages (type 11).
pub mod time_exceeded {
    /// TTL exceeded in transit.
    pub const TTL_EXPIRED: u8 = 0;
    /// Fragment reassembly time exceeded.
    pub const FRAG_EXPIRED: u8 = 1;
}

/// A read/write view of an ICMPv4 message.
///
/// The buffer must hold exactly the message (the IPv4 payload): the checksum covers all
/// of it. After [`new_checked`](Self::new_checked) succeeds (8 bytes or more) no accessor
/// panics.
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

    /// Checks that the 8-byte header is present.
    ///
    /// # Errors
    /// [`Error::Truncated`] when shorter than 8 bytes.
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

    /// Message type.
    pub fn msg_type(&self) -> Message {
        Message::from(self.buffer.as_ref()[TYPE])
    }

    /// Message code.
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[CODE]
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), CHECKSUM)
    }

    /// Echo identifier (meaningful for echo request/reply).
    pub fn echo_ident(&self) -> u16 {
        be16(self.buffer.as_ref(), ECHO_IDENT)
    }

    /// Echo sequence number (meaningful for echo request/reply).
    pub fn echo_seq_no(&self) -> u16 {
        be16(self.buffer.as_ref(), ECHO_SEQNO)
    }

    /// Next-hop MTU of a "fragmentation needed" message (type 3 code 4, RFC 1191);
    /// `None` for other messages. May be 0 when sent by an RFC 792-only router.
    pub fn next_hop_mtu(&self) -> Option<u16> {
        (self.msg_type() == Message::DstUnreachable && self.code() == dst_unreachable::FRAG_NEEDED)
            .then(|| be16(self.buffer.as_ref(), NEXT_HOP_MTU))
    }

    /// Pointer of a parameter-problem message (the first byte of the rest of header).
    pub fn pointer(&self) -> u8 {
        self.buffer.as_ref()[POINTER]
    }

    /// The 4-byte "rest of header" (bytes 4..8).
    pub fn rest_of_header(&self) -> [u8; 4] {
        crate::field::array(self.buffer.as_ref(), 4)
    }

    /// Everything after the 8-byte header (echo data, or the quoted packet).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// The quoted (offending) packet of an error message (types 3, 4, 5, 11, 12), or
    /// `None` for other types. The bytes are whatever the sender quoted: parse them with
    /// [`quoted_ipv4`] rather than `Ipv4Packet::new_checked`, since the quote is usually
    /// shorter than the quoted packet's total length.
    pub fn quoted(&self) -> Option<&[u8]> {
        self.msg_type().is_error().then(|| self.payload())
    }

    /// Whether the checksum (over the whole buffer) is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.buffer.as_ref()) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the message type.
    pub fn set_msg_type(&mut self, v: Message) {
        self.buffer.as_mut()[TYPE] = v.into();
    }

    /// Sets the code.
    pub fn set_code(&mut self, v: u8) {
        self.buffer.as_mut()[CODE] = v;
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), CHECKSUM, v);
    }

    /// Sets the echo identifier.
    pub fn set_echo_ident(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), ECHO_IDENT, v);
    }

    /// Sets the echo sequence number.
    pub fn set_echo_seq_no(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), ECHO_SEQNO, v);
    }

    /// Sets the next-hop MTU field (bytes 6..8); bytes 4..6 are not touched.
    pub fn set_next_hop_mtu(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), NEXT_HOP_MTU, v);
    }

    /// Sets the 4-byte rest of header.
    pub fn set_rest_of_header(&mut self, v: [u8; 4]) {
        self.buffer.as_mut()[4..8].copy_from_slice(&v);
    }

    /// Mutable payload.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }

    /// Computes and stores the checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = !checksum::data(self.buffer.as_ref());
        self.set_checksum(c);
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The IPv4 header of a quoted packet inside an ICMP error, with its first bytes of
/// payload (normally the transport ports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotedIpv4<'a> {
    /// Source address of the offending packet.
    pub src_addr: Ipv4Addr,
    /// Destination address of the offending packet.
    pub dst_addr: Ipv4Addr,
    /// Its protocol.
    pub protocol: IpProtocol,
    /// Its header length (offset of `l4` within the quote).
    pub header_len: usize,
    /// Whether it was a non-first fragment (then `l4` is not a transport header).
    pub non_first_fragment: bool,
    /// The quoted transport bytes (at least 8 when the sender followed RFC 792; may be
    /// fewer, so check before reading ports).
    pub l4: &'a [u8],
}

/// Parses the packet quoted in an ICMPv4 error: an IPv4 header, possibly followed by
/// fewer payload bytes than its `total_len` announces.
///
/// # Errors
/// * [`Error::Truncated`] when the quote is shorter than the quoted header;
/// * [`Error::BadVersion`] when it is not IPv4; [`Error::Malformed`] for IHL < 5.
pub fn quoted_ipv4(quote: &[u8]) -> Result<QuotedIpv4<'_>> {
    if quote.len() < ipv4::HEADER_LEN {
        return Err(Error::Truncated);
    }
    let p = Ipv4Packet::new_unchecked(quote);
    if p.version() != 4 {
        return Err(Error::BadVersion);
    }
    let hl = usize::from(p.header_len());
    if hl < ipv4::HEADER_LEN {
        return Err(Error::Malformed);
    }
    let Some(rest) = quote.get(hl..) else {
        return Err(Error::Truncated);
    };
    // Never look past what the quoted header announces either.
    let announced = usize::from(p.total_len()).saturating_sub(hl);
    let l4 = &rest[..rest.len().min(announced)];
    Ok(QuotedIpv4 {
        src_addr: p.src_addr(),
        dst_addr: p.dst_addr(),
        protocol: p.next_header(),
        header_len: hl,
        non_first_fragment: p.frag_offset() != 0,
        l4,
    })
}

/// How much of `original` (an IPv4 packet, possibly followed by link padding) an error
/// about it quotes: the whole packet up to its `total_len`, capped at
/// [`MAX_QUOTE_LEN`] (RFC 1812 section 4.3.2.3; this is always more than the header plus
/// 8 bytes that RFC 792 requires).
pub fn quote_of(original: &[u8]) -> &[u8] {
    let len = match Ipv4Packet::new_checked(original) {
        Ok(p) => usize::from(p.total_len()),
        Err(_) => original.len(),
    };
    &original[..len.min(MAX_QUOTE_LEN).min(original.len())]
}

/// Whether RFC 1122 section 3.2.2 (and RFC 1812 section 4.3.2.7) allows sending an ICMP
/// error about `original`, an IPv4 packet: not about an ICMP error, a non-first fragment,
/// or a packet with a broadcast, multicast, unspecified, or loopback source, or a
/// broadcast or multicast destination. Subnet broadcasts are not known here: the caller
/// checks those.
pub fn may_send_error_about(original: &[u8]) -> bool {
    let Ok(p) = Ipv4Packet::new_checked(original) else {
        return false;
    };
    let src = p.src_addr();
    let dst = p.dst_addr();
    if src.is_broadcast()
        || src.is_multicast()
        || src.is_unspecified()
        || src.is_loopback()
        || dst.is_broadcast()
        || dst.is_multicast()
        || p.frag_offset() != 0
    {
        return false;
    }
    if p.next_header() == IpProtocol::Icmp {
        // An error about an error is forbidden; an error about a query is allowed.
        return match p.payload().first() {
            Some(&t) => !Message::from(t).is_error(),
            None => false,
        };
    }
    true
}

/// A high-level representation of an ICMPv4 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr<'a> {
    /// Echo request.
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Data.
        data: &'a [u8],
    },
    /// Echo reply.
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Data.
        data: &'a [u8],
    },
    /// Destination unreachable (type 3).
    DstUnreachable {
        /// Code, see [`dst_unreachable`].
        code: u8,
        /// Next-hop MTU for code 4 (written to bytes 6..8), otherwise 0.
        next_hop_mtu: u16,
        /// Quoted offending packet.
        quoted: &'a [u8],
    },
    /// Time exceeded (type 11).
    TimeExceeded {
        /// Code, see [`time_exceeded`].
        code: u8,
        /// Quoted offending packet.
        quoted: &'a [u8],
    },
    /// Parameter problem (type 12).
    ParamProblem {
        /// Code.
        code: u8,
        /// Offset of the problem in the quoted packet.
        pointer: u8,
        /// Quoted offending packet.
        quoted: &'a [u8],
    },
}

impl<'a> Repr<'a> {
    /// Port unreachable about `original`, quoting [`quote_of`]`(original)`.
    pub fn port_unreachable(original: &'a [u8]) -> Self {
        Self::DstUnreachable {
            code: dst_unreachable::PORT_UNREACHABLE,
            next_hop_mtu: 0,
            quoted: quote_of(original),
        }
    }

    /// Fragmentation needed with next-hop `mtu` (RFC 1191) about `original`.
    pub fn frag_needed(original: &'a [u8], mtu: u16) -> Self {
        Self::DstUnreachable {
            code: dst_unreachable::FRAG_NEEDED,
            next_hop_mtu: mtu,
            quoted: quote_of(original),
        }
    }

    /// TTL exceeded in transit about `original`.
    pub fn time_exceeded(original: &'a [u8]) -> Self {
        Self::TimeExceeded {
            code: time_exceeded::TTL_EXPIRED,
            quoted: quote_of(original),
        }
    }

    /// Parses a message and verifies its checksum.
    ///
    /// # Errors
    /// [`Error::Truncated`], [`Error::BadChecksum`], and [`Error::Unsupported`] for
    /// message types not represented here.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Self> {
        packet.check_len()?;
        if !packet.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        let d: &'a [u8] = packet.buffer.as_ref();
        let payload = &d[HEADER_LEN..];
        Ok(match packet.msg_type() {
            Message::EchoRequest => Self::EchoRequest {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data: payload,
            },
            Message::EchoReply => Self::EchoReply {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data: payload,
            },
            Message::DstUnreachable => Self::DstUnreachable {
                code: packet.code(),
                next_hop_mtu: packet.next_hop_mtu().unwrap_or(0),
                quoted: payload,
            },
            Message::TimeExceeded => Self::TimeExceeded {
                code: packet.code(),
                quoted: payload,
            },
            Message::ParamProblem => Self::ParamProblem {
                code: packet.code(),
                pointer: packet.pointer(),
                quoted: payload,
            },
            _ => return Err(Error::Unsupported),
        })
    }

    /// Length of the message (8-byte header plus data or quote).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match self {
                Self::EchoRequest { data, .. } | Self::EchoReply { data, .. } => data.len(),
                Self::DstUnreachable { quoted, .. }
                | Self::TimeExceeded { quoted, .. }
                | Self::ParamProblem { quoted, .. } => quoted.len(),
            }
    }

    /// Writes the message with its checksum into the first
    /// [`buffer_len`](Self::buffer_len) bytes of `packet`; the checksum covers exactly
    /// those bytes and anything after them is left untouched.
    ///
    /// # Errors
    /// [`Error::Truncated`] when the buffer is shorter than `buffer_len()`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        let Some(message) = packet.buffer.as_mut().get_mut(..self.buffer_len()) else {
            return Err(Error::Truncated);
        };
        let mut packet = Packet::new_unchecked(message);
        let (msg, code, rest, body): (Message, u8, [u8; 4], &[u8]) = match *self {
            Self::EchoRequest {
                ident,
                seq_no,
                data,
            } => (Message::EchoRequest, 0, echo_rest(ident, seq_no), data),
            Self::EchoReply {
                ident,
                seq_no,
                data,
            } => (Message::EchoReply, 0, echo_rest(ident, seq_no), data),
            Self::DstUnreachable {
                code,
                next_hop_mtu,
                quoted,
            } => {
                let m = next_hop_mtu.to_be_bytes();
                (Message::DstUnreachable, code, [0, 0, m[0], m[1]], quoted)
            }
            Self::TimeExceeded { code, quoted } => (Message::TimeExceeded, code, [0; 4], quoted),
            Self::ParamProblem {
                code,
                pointer,
                quoted,
            } => (Message::ParamProblem, code, [pointer, 0, 0, 0], quoted),
        };
        packet.set_msg_type(msg);
        packet.set_code(code);
        packet.set_rest_of_header(rest);
        packet.payload_mut().copy_from_slice(body);
        packet.fill_checksum();
        Ok(())
    }

    /// Writes a complete IPv4 packet (20-byte header with TTL `hop_limit`, then this
    /// message) into the start of `buf` and returns its length.
    ///
    /// # Errors
    /// [`Error::Truncated`] when `buf` is shorter than `20 + buffer_len()`;
    /// [`Error::Malformed`] when the packet would exceed 65535 bytes.
    pub fn emit_ipv4(
        &self,
        buf: &mut [u8],
        src: Ipv4Addr,
        dst: Ipv4Addr,
        hop_limit: u8,
    ) -> Result<usize> {
        let ip = Ipv4Repr::new(src, dst, IpProtocol::Icmp, self.buffer_len(), hop_limit);
        let total = ip.buffer_len();
        let Some(out) = buf.get_mut(..total) else {
            return Err(Error::Truncated);
        };
        let mut p = Ipv4Packet::new_unchecked(&mut *out);
        ip.emit(&mut p)?;
        self.emit(&mut Packet::new_unchecked(&mut out[ipv4::HEADER_LEN..]))?;
        Ok(total)
    }
}

fn echo_rest(ident: u16, seq_no: u16) -> [u8; 4] {
    let i = ident.to_be_bytes();
    let s = seq_no.to_be_bytes();
    [i[0], i[1], s[0], s[1]]
}

impl fmt::Display for Repr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EchoRequest { ident, seq_no, .. } => {
                write!(f, "ICMPv4 echo request id={ident} seq={seq_no}")
            }
            Self::EchoReply { ident, seq_no, .. } => {
                write!(f, "ICMPv4 echo reply id={ident} seq={seq_no}")
            }
            Self::DstUnreachable {
                code, next_hop_mtu, ..
            } => write!(
                f,
                "ICMPv4 destination unreachable code={code} mtu={next_hop_mtu}"
            ),
            Self::TimeExceeded { code, .. } => write!(f, "ICMPv4 time exceeded code={code}"),
            Self::ParamProblem { code, pointer, .. } => {
                write!(f, "ICMPv4 parameter problem code={code} pointer={pointer}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::udp::Packet as UdpPacket;

    /// IPv4 + UDP DNS query 10.0.0.2:53124 -> 8.8.8.8:53 for "example.com" A.
    static DNS_QUERY: [u8; 57] = [
        0x45, 0x00, 0x00, 0x39, 0x4d, 0x2e, 0x00, 0x00, 0x40, 0x11, 0x13, 0x75, 0x0a, 0x00, 0x00,
        0x02, 0x08, 0x08, 0x08, 0x08, 0xcf, 0x84, 0x00, 0x35, 0x00, 0x25, 0x2c, 0x40, 0x1a, 0x2b,
        0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x65, 0x78, 0x61, 0x6d,
        0x70, 0x6c, 0x65, 0x03, 0x63, 0x6f, 0x6d, 0x00, 0x00, 0x01, 0x00, 0x01,
    ];

    /// IPv4 (TOS 0xc0, TTL 57) + ICMP port unreachable 8.8.8.8 -> 10.0.0.2 quoting the
    /// IPv4 header and first 8 bytes of `DNS_QUERY`; ICMP checksum 0x00de.
    static PORT_UNREACH: [u8; 56] = [
        0x45, 0xc0, 0x00, 0x38, 0x00, 0x00, 0x00, 0x00, 0x39, 0x01, 0x66, 0xf4, 0x08, 0x08, 0x08,
        0x08, 0x0a, 0x00, 0x00, 0x02, 0x03, 0x03, 0x00, 0xde, 0x00, 0x00, 0x00, 0x00, 0x45, 0x00,
        0x00, 0x39, 0x4d, 0x2e, 0x00, 0x00, 0x40, 0x11, 0x13, 0x75, 0x0a, 0x00, 0x00, 0x02, 0x08,
        0x08, 0x08, 0x08, 0xcf, 0x84, 0x00, 0x35, 0x00, 0x25, 0x2c, 0x40,
    ];

    /// ICMP echo request id 0x1234 seq 1 with the 32-byte Windows ping payload.
    static ECHO_REQUEST: [u8; 40] = [
        0x08, 0x00, 0x3b, 0x27, 0x12, 0x34, 0x00, 0x01, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67,
        0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72, 0x73, 0x74, 0x75, 0x76,
        0x77, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
    ];

    #[test]
    fn deconstruct_port_unreachable() {
        let ip = Ipv4Packet::new_checked(&PORT_UNREACH[..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.next_header(), IpProtocol::Icmp);
        let p = Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(p.msg_type(), Message::DstUnreachable);
        assert_eq!(p.code(), dst_unreachable::PORT_UNREACHABLE);
        assert_eq!(p.checksum(), 0x00de);
        assert!(p.verify_checksum());
        assert_eq!(p.next_hop_mtu(), None);
        let quoted = p.quoted().unwrap();
        assert_eq!(quoted, &DNS_QUERY[..28]);
        let q = quoted_ipv4(quoted).unwrap();
        assert_eq!(q.src_addr, Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(q.dst_addr, Ipv4Addr::new(8, 8, 8, 8));
        assert_eq!(q.protocol, IpProtocol::Udp);
        assert_eq!(q.header_len, 20);
        assert!(!q.non_first_fragment);
        let udp = UdpPacket::new_unchecked(q.l4);
        assert_eq!((udp.src_port(), udp.dst_port()), (53124, 53));
        // The quote is shorter than the quoted total_len: a checked IPv4 view refuses it.
        assert_eq!(
            Ipv4Packet::new_checked(quoted).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn parse_emit_port_unreachable() {
        let p = Packet::new_checked(&PORT_UNREACH[20..]).unwrap();
        let repr = Repr::parse(&p).unwrap();
        assert_eq!(
            repr,
            Repr::DstUnreachable {
                code: 3,
                next_hop_mtu: 0,
                quoted: &DNS_QUERY[..28]
            }
        );
        let mut buf = [0u8; 36];
        repr.emit(&mut Packet::new_unchecked(&mut buf[..])).unwrap();
        assert_eq!(buf[..], PORT_UNREACH[20..]);
        // Whole IP packet: our header uses TOS 0 and the given TTL.
        let mut pkt = [0u8; 100];
        let n = repr
            .emit_ipv4(
                &mut pkt,
                Ipv4Addr::new(8, 8, 8, 8),
                Ipv4Addr::new(10, 0, 0, 2),
                57,
            )
            .unwrap();
        assert_eq!(n, 56);
        let ip = Ipv4Packet::new_checked(&pkt[..n]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.payload(), &PORT_UNREACH[20..]);
        assert_eq!(
            repr.emit_ipv4(&mut pkt[..55], Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, 1),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn port_unreachable_quotes_whole_small_packet() {
        let mut padded = [0u8; 64];
        padded[..57].copy_from_slice(&DNS_QUERY);
        let repr = Repr::port_unreachable(&padded);
        let Repr::DstUnreachable { quoted, code, .. } = repr else {
            panic!("expected destination unreachable");
        };
        assert_eq!(code, 3);
        assert_eq!(quoted, &DNS_QUERY[..]);
        assert_eq!(repr.buffer_len(), 8 + 57);
    }

    #[test]
    fn frag_needed_round_trip() {
        let mut big = [0u8; 1500];
        big[..20].copy_from_slice(&DNS_QUERY[..20]);
        let mut ip = Ipv4Packet::new_unchecked(&mut big[..]);
        ip.set_total_len(1500);
        ip.set_dont_frag(true);
        ip.fill_checksum();
        let repr = Repr::frag_needed(&big, 1480);
        assert_eq!(repr.buffer_len(), 8 + MAX_QUOTE_LEN);
        let mut out = [0u8; 600];
        let n = repr
            .emit_ipv4(
                &mut out,
                Ipv4Addr::new(10, 0, 0, 1),
                Ipv4Addr::new(10, 0, 0, 2),
                64,
            )
            .unwrap();
        assert_eq!(n, MAX_ERROR_PACKET_LEN);
        let ip = Ipv4Packet::new_checked(&out[..n]).unwrap();
        let p = Packet::new_checked(ip.payload()).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.msg_type(), Message::DstUnreachable);
        assert_eq!(p.code(), dst_unreachable::FRAG_NEEDED);
        assert_eq!(p.next_hop_mtu(), Some(1480));
        assert_eq!(Repr::parse(&p), Ok(repr));
    }

    #[test]
    fn time_exceeded_round_trip() {
        let repr = Repr::time_exceeded(&DNS_QUERY);
        let mut buf = [0u8; 65];
        repr.emit(&mut Packet::new_unchecked(&mut buf[..])).unwrap();
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.msg_type(), Message::TimeExceeded);
        assert_eq!(p.code(), time_exceeded::TTL_EXPIRED);
        assert_eq!(p.quoted(), Some(&DNS_QUERY[..]));
        assert_eq!(Repr::parse(&p), Ok(repr));
        assert_eq!(
            repr.emit(&mut Packet::new_unchecked(&mut buf[..64])),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn echo_request_and_reply() {
        let p = Packet::new_checked(&ECHO_REQUEST[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.echo_ident(), 0x1234);
        assert_eq!(p.echo_seq_no(), 1);
        assert_eq!(p.quoted(), None);
        let Repr::EchoRequest {
            ident,
            seq_no,
            data,
        } = Repr::parse(&p).unwrap()
        else {
            panic!("expected echo request");
        };
        let reply = Repr::EchoReply {
            ident,
            seq_no,
            data,
        };
        let mut buf = [0u8; 40];
        reply
            .emit(&mut Packet::new_unchecked(&mut buf[..]))
            .unwrap();
        // Only the type and the checksum change: 0x3b27 + 0x0800 = 0x4327.
        assert_eq!(&buf[..4], &[0x00, 0x00, 0x43, 0x27]);
        assert_eq!(buf[4..], ECHO_REQUEST[4..]);
        let request = Repr::EchoRequest {
            ident,
            seq_no,
            data,
        };
        request
            .emit(&mut Packet::new_unchecked(&mut buf[..]))
            .unwrap();
        assert_eq!(buf, ECHO_REQUEST);
    }

    #[test]
    fn param_problem_and_unsupported() {
        let repr = Repr::ParamProblem {
            code: 0,
            pointer: 9,
            quoted: &DNS_QUERY[..28],
        };
        let mut buf = [0u8; 36];
        repr.emit(&mut Packet::new_unchecked(&mut buf[..])).unwrap();
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.pointer(), 9);
        assert_eq!(p.rest_of_header(), [9, 0, 0, 0]);
        assert_eq!(Repr::parse(&p), Ok(repr));
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_msg_type(Message::Unknown(13));
        p.fill_checksum();
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&buf[..])),
            Err(Error::Unsupported)
        );
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_msg_type(Message::Redirect);
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&buf[..])),
            Err(Error::BadChecksum)
        );
        assert_eq!(
            Packet::new_checked(&buf[..7]).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn quoted_errors() {
        assert_eq!(quoted_ipv4(&DNS_QUERY[..19]).unwrap_err(), Error::Truncated);
        let mut q = [0u8; 28];
        q.copy_from_slice(&DNS_QUERY[..28]);
        q[0] = 0x65;
        assert_eq!(quoted_ipv4(&q).unwrap_err(), Error::BadVersion);
        q[0] = 0x44;
        assert_eq!(quoted_ipv4(&q).unwrap_err(), Error::Malformed);
        q[0] = 0x48; // 32-byte header, only 28 quoted
        assert_eq!(quoted_ipv4(&q).unwrap_err(), Error::Truncated);
        q[0] = 0x45;
        q[2..4].copy_from_slice(&24u16.to_be_bytes());
        assert_eq!(quoted_ipv4(&q).unwrap().l4.len(), 4);
        q[6] = 0x00;
        q[7] = 0x10;
        assert!(quoted_ipv4(&q).unwrap().non_first_fragment);
    }

    #[test]
    fn error_policy() {
        assert!(may_send_error_about(&DNS_QUERY));
        assert!(!may_send_error_about(&PORT_UNREACH));
        let mut echo = [0u8; 60];
        echo[..20].copy_from_slice(&PORT_UNREACH[..20]);
        echo[20..].copy_from_slice(&ECHO_REQUEST);
        let mut ip = Ipv4Packet::new_unchecked(&mut echo[..]);
        ip.set_total_len(60);
        ip.fill_checksum();
        assert!(may_send_error_about(&echo));
        let mut b = DNS_QUERY;
        b[12..16].copy_from_slice(&[255, 255, 255, 255]);
        assert!(!may_send_error_about(&b));
        let mut b = DNS_QUERY;
        b[16..20].copy_from_slice(&[224, 0, 0, 251]);
        assert!(!may_send_error_about(&b));
        let mut b = DNS_QUERY;
        b[12..16].copy_from_slice(&[127, 0, 0, 1]);
        assert!(!may_send_error_about(&b));
        let mut b = DNS_QUERY;
        b[7] = 1; // fragment offset 8
        assert!(!may_send_error_about(&b));
        assert!(!may_send_error_about(&DNS_QUERY[..30]));
    }

    #[test]
    fn message_round_trip() {
        for v in 0..=255u8 {
            assert_eq!(u8::from(Message::from(v)), v);
        }
    }
}
