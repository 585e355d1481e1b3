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

    /// Writes the message with its checksum into `packet`, whose buffer must be exactly
    /// [`buffer_len`](Self::buffer_len) bytes (the checksum covers the whole buffer).
    ///
    /// # Errors
    /// [`Error::Truncated`] when the buffer length differs from `buffer_len()`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        if packet.buffer.as_ref().len() != self.buffer_len() {
            return Err(Error::Truncated);
        }
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
