//! ICMPv6 (RFC 4443) and the neighbour discovery messages the data plane needs
//! (RFC 4861 sections 4.3, 4.4 and 4.6.1).

use core::fmt;
use core::net::{IpAddr, Ipv6Addr};

use crate::checksum;
use crate::ethernet::EthernetAddress;
use crate::field::{be16, be32, ipv6, set_be16, set_be32};
use crate::ip::IpProtocol;
use crate::ipv6::{self as ipv6_mod, Packet as Ipv6Packet, Repr as Ipv6Repr};
use crate::{Error, Result};

const TYPE: usize = 0;
const CODE: usize = 1;
const CHECKSUM: usize = 2;
const REST: usize = 4;
const ND_TARGET: usize = 8;
const ND_OPTIONS: usize = 24;

/// Length of the ICMPv6 header (type, code, checksum and the 4-byte rest of header).
pub const HEADER_LEN: usize = 8;
/// Length of a neighbour solicitation/advertisement without options.
pub const ND_LEN: usize = 24;
/// Length of a source/target link-layer address option for Ethernet.
pub const LLADDR_OPT_LEN: usize = 8;
/// Most bytes of an offending packet quoted in an error, so that the error packet fits
/// in the IPv6 minimum MTU (RFC 4443 section 2.4 (c)).
pub const MAX_QUOTE_LEN: usize = ipv6_mod::MIN_MTU - ipv6_mod::HEADER_LEN - HEADER_LEN;

/// Hop limit that neighbour discovery messages must carry (RFC 4861 section 7.1).
pub const ND_HOP_LIMIT: u8 = 255;

/// ICMPv6 message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Message {
    /// Destination unreachable, 1.
    DstUnreachable,
    /// Packet too big, 2.
    PktTooBig,
    /// Time exceeded, 3.
    TimeExceeded,
    /// Parameter problem, 4.
    ParamProblem,
    /// Echo request, 128.
    EchoRequest,
    /// Echo reply, 129.
    EchoReply,
    /// Router solicitation, 133.
    RouterSolicit,
    /// Router advertisement, 134.
    RouterAdvert,
    /// Neighbour solicitation, 135.
    NeighborSolicit,
    /// Neighbour advertisement, 136.
    NeighborAdvert,
    /// Redirect, 137.
    Redirect,
    /// Any other type.
    Unknown(u8),
}

impl Message {
    /// Whether this is an error message (type below 128).
    pub fn is_error(&self) -> bool {
        u8::from(*self) < 128
    }
}

impl From<u8> for Message {
    fn from(v: u8) -> Self {
        match v {
            1 => Self::DstUnreachable,
            2 => Self::PktTooBig,
            3 => Self::TimeExceeded,
            4 => Self::ParamProblem,
            128 => Self::EchoRequest,
            129 => Self::EchoReply,
            133 => Self::RouterSolicit,
            134 => Self::RouterAdvert,
            135 => Self::NeighborSolicit,
            136 => Self::NeighborAdvert,
            137 => Self::Redirect,
            other => Self::Unknown(other),
        }
    }
}

impl From<Message> for u8 {
    fn from(v: Message) -> Self {
        match v {
            Message::DstUnreachable => 1,
            Message::PktTooBig => 2,
            Message::TimeExceeded => 3,
            Message::ParamProblem => 4,
            Message::EchoRequest => 128,
            Message::EchoReply => 129,
            Message::RouterSolicit => 133,
            Message::RouterAdvert => 134,
            Message::NeighborSolicit => 135,
            Message::NeighborAdvert => 136,
            Message::Redirect => 137,
            Message::Unknown(other) => other,
        }
    }
}

/// Codes of destination-unreachable messages (type 1).
pub mod dst_unreachable {
    /// No route to destination.
    pub const NO_ROUTE: u8 = 0;
    /// Communication administratively prohibited.
    pub const ADMIN_PROHIBITED: u8 = 1;
    /// Address unreachable.
    pub const ADDR_UNREACHABLE: u8 = 3;
    /// Port unreachable.
    pub const PORT_UNREACHABLE: u8 = 4;
}

/// Codes of time-exceeded messages (type 3).
pub mod time_exceeded {
    /// Hop limit exceeded in transit.
    pub const HOP_LIMIT_EXCEEDED: u8 = 0;
    /// Fragment reassembly time exceeded.
    pub const FRAG_REASSEMBLY: u8 = 1;
}

/// Neighbour discovery option types used here.
pub mod nd_option {
    /// Source link-layer address.
    pub const SOURCE_LLADDR: u8 = 1;
    /// Target link-layer address.
    pub const TARGET_LLADDR: u8 = 2;
}

/// Neighbour advertisement flag bits (first byte of the rest of header).
pub mod na_flags {
    /// Router flag.
    pub const ROUTER: u8 = 0x80;
    /// Solicited flag.
    pub const SOLICITED: u8 = 0x40;
    /// Override flag.
    pub const OVERRIDE: u8 = 0x20;
}

/// A read/write view of an ICMPv6 message.
///
/// The buffer must hold exactly the message (the upper-layer payload of the IPv6 packet):
/// the checksum covers all of it. After [`new_checked`](Self::new_checked) succeeds (8
/// bytes or more) no accessor panics; the neighbour-discovery accessors return `None` or
/// an error when the message is too short for them.
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

    /// Code.
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[CODE]
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), CHECKSUM)
    }

    /// Echo identifier (meaningful for echo request/reply).
    pub fn echo_ident(&self) -> u16 {
        be16(self.buffer.as_ref(), REST)
    }

    /// Echo sequence number (meaningful for echo request/reply).
    pub fn echo_seq_no(&self) -> u16 {
        be16(self.buffer.as_ref(), REST + 2)
    }

    /// MTU of a packet-too-big message (type 2), else `None`.
    pub fn mtu(&self) -> Option<u32> {
        (self.msg_type() == Message::PktTooBig).then(|| be32(self.buffer.as_ref(), REST))
    }

    /// Pointer of a parameter-problem message (the 32-bit rest of header).
    pub fn pointer(&self) -> u32 {
        be32(self.buffer.as_ref(), REST)
    }

    /// Neighbour advertisement flags byte (see [`na_flags`]).
    pub fn na_flags(&self) -> u8 {
        self.buffer.as_ref()[REST]
    }

    /// Target address of a neighbour solicitation or advertisement (bytes 8..24), `None`
    /// for other types or when the message is too short.
    pub fn target_addr(&self) -> Option<Ipv6Addr> {
        let d = self.buffer.as_ref();
        (matches!(
            self.msg_type(),
            Message::NeighborSolicit | Message::NeighborAdvert
        ) && d.len() >= ND_LEN)
            .then(|| ipv6(d, ND_TARGET))
    }

    /// Everything after the 8-byte header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// The quoted packet of an error message (type < 128), else `None`.
    pub fn quoted(&self) -> Option<&[u8]> {
        self.msg_type().is_error().then(|| self.payload())
    }

    /// Whether the checksum is correct for the given IPv6 pseudo-header addresses.
    pub fn verify_checksum(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        compute(self.buffer.as_ref(), src, dst) == Some(0xffff)
    }
}

fn compute(d: &[u8], src: &Ipv6Addr, dst: &Ipv6Addr) -> Option<u16> {
    let len = u32::try_from(d.len()).ok()?;
    Some(checksum::combine(&[
        checksum::pseudo_header_v6(src, dst, IpProtocol::Icmpv6.into(), len),
        checksum::data(d),
    ]))
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
        set_be16(self.buffer.as_mut(), REST, v);
    }

    /// Sets the echo sequence number.
    pub fn set_echo_seq_no(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), REST + 2, v);
    }

    /// Sets the 32-bit rest of header (MTU, pointer, or zero).
    pub fn set_rest_of_header(&mut self, v: u32) {
        set_be32(self.buffer.as_mut(), REST, v);
    }

    /// Mutable payload.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }

    /// Computes and stores the checksum over the pseudo header and the whole buffer.
    pub fn fill_checksum(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        self.set_checksum(0);
        if let Some(sum) = compute(self.buffer.as_ref(), src, dst) {
            self.set_checksum(!sum);
        }
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// Finds the Ethernet link-layer address option of type `wanted` in neighbour-discovery
/// options.
///
/// # Errors
/// [`Error::Malformed`] for an option of length 0 (RFC 4861 section 4.6: the message must
/// be discarded) and [`Error::Truncated`] for an option running past the end.
fn find_lladdr(mut opts: &[u8], wanted: u8) -> Result<Option<EthernetAddress>> {
    let mut found = None;
    while !opts.is_empty() {
        let (Some(&kind), Some(&units)) = (opts.first(), opts.get(1)) else {
            return Err(Error::Truncated);
        };
        let len = usize::from(units) * 8;
        if len == 0 {
            return Err(Error::Malformed);
        }
        let Some(opt) = opts.get(..len) else {
            return Err(Error::Truncated);
        };
        if kind == wanted && found.is_none() {
            // Other link layers have other lengths; for Ethernet the address follows
            // type and length.
            found = Some(EthernetAddress::from_bytes(&opt[2..])?);
        }
        opts = &opts[len..];
    }
    Ok(found)
}

/// A high-level representation of an ICMPv6 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr<'a> {
    /// Destination unreachable (type 1).
    DstUnreachable {
        /// Code, see [`dst_unreachable`].
        code: u8,
        /// Quoted offending packet.
        quoted: &'a [u8],
    },
    /// Packet too big (type 2).
    PktTooBig {
        /// MTU of the next hop.
        mtu: u32,
        /// Quoted offending packet.
        quoted: &'a [u8],
    },
    /// Time exceeded (type 3).
    TimeExceeded {
        /// Code, see [`time_exceeded`].
        code: u8,
        /// Quoted offending packet.
        quoted: &'a [u8],
    },
    /// Parameter problem (type 4).
    ParamProblem {
        /// Code.
        code: u8,
        /// Offset of the problem in the quoted packet.
        pointer: u32,
        /// Quoted offending packet.
        quoted: &'a [u8],
    },
    /// Echo request (type 128).
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Data.
        data: &'a [u8],
    },
    /// Echo reply (type 129).
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Data.
        data: &'a [u8],
    },
    /// Neighbour solicitation (type 135).
    NeighborSolicit {
        /// Address being resolved.
        target_addr: Ipv6Addr,
        /// Source link-layer address option (absent in duplicate address detection).
        source_lladdr: Option<EthernetAddress>,
    },
    /// Neighbour advertisement (type 136).
    NeighborAdvert {
        /// Flags, see [`na_flags`].
        flags: u8,
        /// Address being advertised.
        target_addr: Ipv6Addr,
        /// Target link-layer address option.
        target_lladdr: Option<EthernetAddress>,
    },
}

impl<'a> Repr<'a> {
    /// Port unreachable about `original`, quoting [`quote_of`]`(original)`.
    pub fn port_unreachable(original: &'a [u8]) -> Self {
        Self::DstUnreachable {
            code: dst_unreachable::PORT_UNREACHABLE,
            quoted: quote_of(original),
        }
    }

    /// Packet too big with `mtu` about `original`.
    pub fn packet_too_big(original: &'a [u8], mtu: u32) -> Self {
        Self::PktTooBig {
            mtu,
            quoted: quote_of(original),
        }
    }

    /// Hop limit exceeded in transit about `original`.
    pub fn time_exceeded(original: &'a [u8]) -> Self {
        Self::TimeExceeded {
            code: time_exceeded::HOP_LIMIT_EXCEEDED,
            quoted: quote_of(original),
        }
    }

    /// Parses a message and verifies its checksum against the pseudo-header addresses.
    ///
    /// Neighbour discovery messages are validated as RFC 4861 sections 7.1.1 / 7.1.2 ask
    /// of the message itself (code 0, length, options, target not multicast); the caller
    /// must still check that the IPv6 hop limit is [`ND_HOP_LIMIT`].
    ///
    /// # Errors
    /// [`Error::Truncated`], [`Error::Malformed`], [`Error::BadChecksum`], and
    /// [`Error::Unsupported`] for message types not represented here.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Packet<&'a T>,
        src: &Ipv6Addr,
        dst: &Ipv6Addr,
    ) -> Result<Self> {
        packet.check_len()?;
        if !packet.verify_checksum(src, dst) {
            return Err(Error::BadChecksum);
        }
        let d: &'a [u8] = packet.buffer.as_ref();
        let payload = &d[HEADER_LEN..];
        let nd = || -> Result<(Ipv6Addr, &'a [u8])> {
            if packet.code() != 0 {
                return Err(Error::Malformed);
            }
            if d.len() < ND_LEN {
                return Err(Error::Truncated);
            }
            let target = ipv6(d, ND_TARGET);
            if target.is_multicast() {
                return Err(Error::Malformed);
            }
            Ok((target, &d[ND_OPTIONS..]))
        };
        Ok(match packet.msg_type() {
            Message::DstUnreachable => Self::DstUnreachable {
                code: packet.code(),
                quoted: payload,
            },
            Message::PktTooBig => Self::PktTooBig {
                mtu: packet.pointer(),
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
            Message::NeighborSolicit => {
                let (target_addr, opts) = nd()?;
                let source_lladdr = find_lladdr(opts, nd_option::SOURCE_LLADDR)?;
                // RFC 4861 section 7.1.1: no source link-layer option from ::.
                if src.is_unspecified() && source_lladdr.is_some() {
                    return Err(Error::Malformed);
                }
                Self::NeighborSolicit {
                    target_addr,
                    source_lladdr,
                }
            }
            Message::NeighborAdvert => {
                let (target_addr, opts) = nd()?;
                let flags = packet.na_flags() & 0xe0;
                // RFC 4861 section 7.1.2: solicited flag is zero for multicast
                // destinations.
                if dst.is_multicast() && flags & na_flags::SOLICITED != 0 {
                    return Err(Error::Malformed);
                }
                Self::NeighborAdvert {
                    flags,
                    target_addr,
                    target_lladdr: find_lladdr(opts, nd_option::TARGET_LLADDR)?,
                }
            }
            _ => return Err(Error::Unsupported),
        })
    }

    /// Length of the message.
    pub const fn buffer_len(&self) -> usize {
        match self {
            Self::DstUnreachable { quoted, .. }
            | Self::PktTooBig { quoted, .. }
            | Self::TimeExceeded { quoted, .. }
            | Self::ParamProblem { quoted, .. } => HEADER_LEN + quoted.len(),
            Self::EchoRequest { data, .. } | Self::EchoReply { data, .. } => {
                HEADER_LEN + data.len()
            }
            Self::NeighborSolicit {
                source_lladdr: ll, ..
            }
            | Self::NeighborAdvert {
                target_lladdr: ll, ..
            } => ND_LEN + if ll.is_some() { LLADDR_OPT_LEN } else { 0 },
        }
    }

    /// Writes the message with its checksum into the first
    /// [`buffer_len`](Self::buffer_len) bytes of `packet`; the checksum covers exactly
    /// those bytes and anything after them is left untouched.
    ///
    /// # Errors
    /// [`Error::Truncated`] when the buffer is shorter than `buffer_len()`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
        src: &Ipv6Addr,
        dst: &Ipv6Addr,
    ) -> Result<()> {
        let Some(message) = packet.buffer.as_mut().get_mut(..self.buffer_len()) else {
            return Err(Error::Truncated);
        };
        let packet = &mut Packet::new_unchecked(message);
        let echo = |ident: u16, seq: u16| (u32::from(ident) << 16) | u32::from(seq);
        match *self {
            Self::DstUnreachable { code, quoted } => {
                emit_simple(packet, Message::DstUnreachable, code, 0, quoted);
            }
            Self::PktTooBig { mtu, quoted } => {
                emit_simple(packet, Message::PktTooBig, 0, mtu, quoted);
            }
            Self::TimeExceeded { code, quoted } => {
                emit_simple(packet, Message::TimeExceeded, code, 0, quoted);
            }
            Self::ParamProblem {
                code,
                pointer,
                quoted,
            } => emit_simple(packet, Message::ParamProblem, code, pointer, quoted),
            Self::EchoRequest {
                ident,
                seq_no,
                data,
            } => emit_simple(packet, Message::EchoRequest, 0, echo(ident, seq_no), data),
            Self::EchoReply {
                ident,
                seq_no,
                data,
            } => emit_simple(packet, Message::EchoReply, 0, echo(ident, seq_no), data),
            Self::NeighborSolicit {
                target_addr,
                source_lladdr,
            } => emit_nd(
                packet,
                Message::NeighborSolicit,
                0,
                target_addr,
                source_lladdr.map(|a| (nd_option::SOURCE_LLADDR, a)),
            ),
            Self::NeighborAdvert {
                flags,
                target_addr,
                target_lladdr,
            } => emit_nd(
                packet,
                Message::NeighborAdvert,
                flags & 0xe0,
                target_addr,
                target_lladdr.map(|a| (nd_option::TARGET_LLADDR, a)),
            ),
        }
        packet.fill_checksum(src, dst);
        Ok(())
    }

    /// Writes a complete IPv6 packet (40-byte header with `hop_limit`, then this message)
    /// into the start of `buf` and returns its length. Neighbour discovery messages must
    /// use [`ND_HOP_LIMIT`].
    ///
    /// # Errors
    /// [`Error::Truncated`] when `buf` is shorter than `40 + buffer_len()`;
    /// [`Error::Malformed`] when the message exceeds 65535 bytes.
    pub fn emit_ipv6(
        &self,
        buf: &mut [u8],
        src: Ipv6Addr,
        dst: Ipv6Addr,
        hop_limit: u8,
    ) -> Result<usize> {
        let ip = Ipv6Repr::new(src, dst, IpProtocol::Icmpv6, self.buffer_len(), hop_limit);
        let total = ip.buffer_len();
        let Some(out) = buf.get_mut(..total) else {
            return Err(Error::Truncated);
        };
        ip.emit(&mut Ipv6Packet::new_unchecked(&mut *out))?;
        self.emit(
            &mut Packet::new_unchecked(&mut out[ipv6_mod::HEADER_LEN..]),
            &src,
            &dst,
        )?;
        Ok(total)
    }
}

fn emit_simple<T: AsRef<[u8]> + AsMut<[u8]>>(
    packet: &mut Packet<T>,
    msg: Message,
    code: u8,
    rest: u32,
    body: &[u8],
) {
    packet.set_msg_type(msg);
    packet.set_code(code);
    packet.set_rest_of_header(rest);
    packet.payload_mut().copy_from_slice(body);
}

fn emit_nd<T: AsRef<[u8]> + AsMut<[u8]>>(
    packet: &mut Packet<T>,
    msg: Message,
    flags: u8,
    target: Ipv6Addr,
    opt: Option<(u8, EthernetAddress)>,
) {
    packet.set_msg_type(msg);
    packet.set_code(0);
    packet.set_rest_of_header(u32::from(flags) << 24);
    let d = packet.buffer.as_mut();
    d[ND_TARGET..ND_OPTIONS].copy_from_slice(&target.octets());
    if let Some((kind, addr)) = opt {
        d[ND_OPTIONS] = kind;
        d[ND_OPTIONS + 1] = 1;
        d[ND_OPTIONS + 2..ND_OPTIONS + LLADDR_OPT_LEN].copy_from_slice(&addr.0);
    }
}

/// How much of `original` (an IPv6 packet, possibly followed by link padding) an error
/// about it quotes: the packet up to `40 + payload_len`, capped at [`MAX_QUOTE_LEN`] so
/// that the error fits in 1280 bytes (RFC 4443 section 2.4 (c)).
pub fn quote_of(original: &[u8]) -> &[u8] {
    let len = match Ipv6Packet::new_checked(original) {
        Ok(p) => p.packet().len(),
        Err(_) => original.len(),
    };
    &original[..len.min(MAX_QUOTE_LEN).min(original.len())]
}

/// Whether RFC 4443 section 2.4 (e) allows sending an ICMPv6 error about `original`, an
/// IPv6 packet: not about an ICMPv6 error or a redirect, and not from an unspecified or
/// multicast source; a multicast destination only for packet-too-big
/// (`is_packet_too_big`) and parameter-problem code 2, which the caller handles.
pub fn may_send_error_about(original: &[u8], is_packet_too_big: bool) -> bool {
    let Ok(p) = Ipv6Packet::new_checked(original) else {
        return false;
    };
    let src = p.src_addr();
    if src.is_unspecified() || src.is_multicast() {
        return false;
    }
    if p.dst_addr().is_multicast() && !is_packet_too_big {
        return false;
    }
    match ipv6_mod::ipv6_upper_layer(original) {
        Ok(info) if info.protocol == IpProtocol::Icmpv6 => {
            if info.fragment.is_some_and(|f| f.offset != 0) {
                return true;
            }
            match original.get(info.l4_offset) {
                Some(&t) => {
                    let m = Message::from(t);
                    !m.is_error() && m != Message::Redirect
                }
                None => false,
            }
        }
        Ok(_) => true,
        // Unparseable extension headers: an error (parameter problem) is still allowed.
        Err(_) => true,
    }
}

/// Convenience: the checksum-verifying parse for an ICMPv6 message inside an IPv6 packet
/// given as `IpAddr`s. Returns `Unsupported` for IPv4 addresses.
///
/// # Errors
/// Those of [`Repr::parse`], and [`Error::Unsupported`] when either address is IPv4.
pub fn parse_with_ip<'a>(message: &'a [u8], src: &IpAddr, dst: &IpAddr) -> Result<Repr<'a>> {
    match (src, dst) {
        (IpAddr::V6(s), IpAddr::V6(d)) => Repr::parse(&Packet::new_checked(message)?, s, d),
        _ => Err(Error::Unsupported),
    }
}

impl fmt::Display for Repr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DstUnreachable { code, .. } => {
                write!(f, "ICMPv6 destination unreachable code={code}")
            }
            Self::PktTooBig { mtu, .. } => write!(f, "ICMPv6 packet too big mtu={mtu}"),
            Self::TimeExceeded { code, .. } => write!(f, "ICMPv6 time exceeded code={code}"),
            Self::ParamProblem { code, pointer, .. } => {
                write!(f, "ICMPv6 parameter problem code={code} pointer={pointer}")
            }
            Self::EchoRequest { ident, seq_no, .. } => {
                write!(f, "ICMPv6 echo request id={ident} seq={seq_no}")
            }
            Self::EchoReply { ident, seq_no, .. } => {
                write!(f, "ICMPv6 echo reply id={ident} seq={seq_no}")
            }
            Self::NeighborSolicit { target_addr, .. } => {
                write!(f, "ICMPv6 neighbor solicitation target={target_addr}")
            }
            Self::NeighborAdvert { target_addr, .. } => {
                write!(f, "ICMPv6 neighbor advertisement target={target_addr}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IPv6 (hop limit 255) + ICMPv6 neighbour solicitation from fe80::5054:ff:fe12:3456
    /// to ff02::1:ff00:10 for 2001:db8::10, source link-layer address 52:54:00:12:34:56;
    /// ICMPv6 checksum 0x42cc.
    static NEIGHBOR_SOLICIT: [u8; 72] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x50, 0x54, 0x00, 0xff, 0xfe, 0x12, 0x34, 0x56, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xff, 0x00, 0x00, 0x10, 0x87, 0x00, 0x42, 0xcc, 0x00,
        0x00, 0x00, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x10, 0x01, 0x01, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56,
    ];

    /// ICMPv6 neighbour advertisement 2001:db8::10 -> fe80::5054:ff:fe12:3456
    /// (solicited, override) for 2001:db8::10, target link-layer address
    /// 00:1b:21:3a:4f:10; checksum 0xc76e.
    static NEIGHBOR_ADVERT: [u8; 32] = [
        0x88, 0x00, 0xc7, 0x6e, 0x60, 0x00, 0x00, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x02, 0x01, 0x00, 0x1b, 0x21, 0x3a,
        0x4f, 0x10,
    ];

    const CLIENT_MAC: EthernetAddress = EthernetAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
    const OUR_MAC: EthernetAddress = EthernetAddress([0x00, 0x1b, 0x21, 0x3a, 0x4f, 0x10]);

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn parse_neighbor_solicit() {
        let ip = Ipv6Packet::new_checked(&NEIGHBOR_SOLICIT[..]).unwrap();
        assert_eq!(ip.hop_limit(), ND_HOP_LIMIT);
        let info = ipv6_mod::ipv6_upper_layer(&NEIGHBOR_SOLICIT).unwrap();
        assert_eq!(info.protocol, IpProtocol::Icmpv6);
        let p = Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(p.msg_type(), Message::NeighborSolicit);
        assert_eq!(p.checksum(), 0x42cc);
        assert!(p.verify_checksum(&ip.src_addr(), &ip.dst_addr()));
        assert_eq!(p.target_addr(), Some(a("2001:db8::10")));
        assert_eq!(p.quoted(), None);
        let repr = Repr::parse(&p, &ip.src_addr(), &ip.dst_addr()).unwrap();
        assert_eq!(
            repr,
            Repr::NeighborSolicit {
                target_addr: a("2001:db8::10"),
                source_lladdr: Some(CLIENT_MAC),
            }
        );
        // Emitting the whole packet reproduces it byte for byte.
        let mut buf = [0u8; 72];
        let n = repr
            .emit_ipv6(&mut buf, ip.src_addr(), ip.dst_addr(), ND_HOP_LIMIT)
            .unwrap();
        assert_eq!(n, 72);
        assert_eq!(buf, NEIGHBOR_SOLICIT);
        assert_eq!(
            EthernetAddress::from_ipv6_multicast(&ip.dst_addr()),
            EthernetAddress([0x33, 0x33, 0xff, 0x00, 0x00, 0x10])
        );
    }

    #[test]
    fn answer_with_neighbor_advert() {
        let src = a("2001:db8::10");
        let dst = a("fe80::5054:ff:fe12:3456");
        let repr = Repr::NeighborAdvert {
            flags: na_flags::SOLICITED | na_flags::OVERRIDE,
            target_addr: src,
            target_lladdr: Some(OUR_MAC),
        };
        assert_eq!(repr.buffer_len(), 32);
        let mut buf = [0u8; 32];
        repr.emit(&mut Packet::new_unchecked(&mut buf[..]), &src, &dst)
            .unwrap();
        assert_eq!(buf, NEIGHBOR_ADVERT);
        let p = Packet::new_checked(&NEIGHBOR_ADVERT[..]).unwrap();
        assert_eq!(p.na_flags(), 0x60);
        assert_eq!(Repr::parse(&p, &src, &dst), Ok(repr));
        // Solicited flag to a multicast destination is invalid.
        let all_nodes = a("ff02::1");
        let mut buf = [0u8; 32];
        repr.emit(&mut Packet::new_unchecked(&mut buf[..]), &src, &all_nodes)
            .unwrap();
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&buf[..]), &src, &all_nodes),
            Err(Error::Malformed)
        );
    }

    #[test]
    fn nd_validation() {
        let src = a("fe80::5054:ff:fe12:3456");
        let dst = a("ff02::1:ff00:10");
        let mut msg = [0u8; 32];
        msg.copy_from_slice(&NEIGHBOR_SOLICIT[40..]);
        let reparse = |msg: &mut [u8; 32], s: &Ipv6Addr| {
            let mut p = Packet::new_unchecked(&mut msg[..]);
            p.fill_checksum(s, &dst);
            Repr::parse(&Packet::new_unchecked(&msg[..]), s, &dst).map(|_| ())
        };
        // Zero-length option.
        let mut m = msg;
        m[25] = 0;
        assert_eq!(reparse(&mut m, &src), Err(Error::Malformed));
        // Option running past the end.
        let mut m = msg;
        m[25] = 2;
        assert_eq!(reparse(&mut m, &src), Err(Error::Truncated));
        // Multicast target.
        let mut m = msg;
        m[8] = 0xff;
        assert_eq!(reparse(&mut m, &src), Err(Error::Malformed));
        // Non-zero code.
        let mut m = msg;
        m[1] = 1;
        assert_eq!(reparse(&mut m, &src), Err(Error::Malformed));
        // Source link-layer option from the unspecified address (DAD).
        let mut m = msg;
        assert_eq!(
            reparse(&mut m, &Ipv6Addr::UNSPECIFIED),
            Err(Error::Malformed)
        );
        // DAD probe without the option is fine.
        let mut short = [0u8; 24];
        short.copy_from_slice(&msg[..24]);
        let mut p = Packet::new_unchecked(&mut short[..]);
        p.fill_checksum(&Ipv6Addr::UNSPECIFIED, &dst);
        assert_eq!(
            Repr::parse(
                &Packet::new_unchecked(&short[..]),
                &Ipv6Addr::UNSPECIFIED,
                &dst
            ),
            Ok(Repr::NeighborSolicit {
                target_addr: a("2001:db8::10"),
                source_lladdr: None
            })
        );
        // Too short for a target address.
        let mut p = Packet::new_unchecked(&mut short[..20]);
        p.fill_checksum(&src, &dst);
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&short[..20]), &src, &dst),
            Err(Error::Truncated)
        );
        assert_eq!(Packet::new_unchecked(&short[..20]).target_addr(), None);
        // Bad checksum.
        let mut m = msg;
        m[3] ^= 1;
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&m[..]), &src, &dst),
            Err(Error::BadChecksum)
        );
    }

    #[test]
    fn unknown_options_are_skipped() {
        let src = a("fe80::1");
        let dst = a("fe80::2");
        let mut m = [0u8; 48];
        m[0] = 135;
        m[8..24].copy_from_slice(&a("fe80::2").octets());
        // Nonce option (type 14, 8 bytes), then source link-layer address.
        m[24] = 14;
        m[25] = 1;
        m[32] = 1;
        m[33] = 1;
        m[34..40].copy_from_slice(&CLIENT_MAC.0);
        // A 8-byte option of unknown type 200.
        m[40] = 200;
        m[41] = 1;
        Packet::new_unchecked(&mut m[..]).fill_checksum(&src, &dst);
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&m[..]), &src, &dst),
            Ok(Repr::NeighborSolicit {
                target_addr: dst,
                source_lladdr: Some(CLIENT_MAC)
            })
        );
    }

    /// A 1500-byte IPv6 TCP packet that does not fit a 1400-byte tunnel MTU.
    fn big_packet() -> [u8; 1500] {
        let mut big = [0u8; 1500];
        let repr = Ipv6Repr::new(
            a("2001:db8::c"),
            a("2001:db8::80"),
            IpProtocol::Tcp,
            1460,
            64,
        );
        repr.emit(&mut Ipv6Packet::new_unchecked(&mut big[..]))
            .unwrap();
        for (i, b) in big[40..].iter_mut().enumerate() {
            *b = i as u8;
        }
        big
    }

    #[test]
    fn packet_too_big() {
        let big = big_packet();
        let repr = Repr::packet_too_big(&big, 1400);
        assert_eq!(repr.buffer_len(), 8 + MAX_QUOTE_LEN);
        let mut out = [0u8; 1500];
        let us = a("2001:db8::1");
        let n = repr.emit_ipv6(&mut out, us, a("2001:db8::c"), 64).unwrap();
        assert_eq!(n, ipv6_mod::MIN_MTU);
        let ip = Ipv6Packet::new_checked(&out[..n]).unwrap();
        let p = Packet::new_checked(ip.payload()).unwrap();
        assert!(p.verify_checksum(&ip.src_addr(), &ip.dst_addr()));
        assert_eq!(p.msg_type(), Message::PktTooBig);
        assert_eq!(p.mtu(), Some(1400));
        assert_eq!(p.quoted(), Some(&big[..MAX_QUOTE_LEN]));
        assert_eq!(Repr::parse(&p, &ip.src_addr(), &ip.dst_addr()), Ok(repr));
        assert_eq!(
            repr.emit_ipv6(&mut out[..1279], us, us, 64),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn errors_round_trip() {
        let big = big_packet();
        let small = &big[..60];
        let s = a("2001:db8::1");
        let d = a("2001:db8::2");
        for repr in [
            Repr::port_unreachable(small),
            Repr::time_exceeded(small),
            Repr::ParamProblem {
                code: 0,
                pointer: 6,
                quoted: small,
            },
            Repr::EchoRequest {
                ident: 7,
                seq_no: 9,
                data: b"ping",
            },
            Repr::EchoReply {
                ident: 7,
                seq_no: 9,
                data: b"ping",
            },
        ] {
            let mut buf = [0u8; 128];
            let len = repr.buffer_len();
            repr.emit(&mut Packet::new_unchecked(&mut buf[..len]), &s, &d)
                .unwrap();
            let p = Packet::new_checked(&buf[..len]).unwrap();
            assert!(p.verify_checksum(&s, &d));
            assert_eq!(Repr::parse(&p, &s, &d), Ok(repr));
            assert_eq!(p.mtu(), None);
            assert_eq!(
                repr.emit(&mut Packet::new_unchecked(&mut buf[..len - 1]), &s, &d),
                Err(Error::Truncated)
            );
        }
        let mut buf = [0u8; 12];
        let repr = Repr::EchoRequest {
            ident: 0x0102,
            seq_no: 0x0304,
            data: b"abcd",
        };
        repr.emit(&mut Packet::new_unchecked(&mut buf[..]), &s, &d)
            .unwrap();
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!((p.echo_ident(), p.echo_seq_no()), (0x0102, 0x0304));
    }

    #[test]
    fn unsupported_types() {
        let s = a("fe80::1");
        let d = a("ff02::2");
        let mut rs = [133u8, 0, 0, 0, 0, 0, 0, 0];
        Packet::new_unchecked(&mut rs[..]).fill_checksum(&s, &d);
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&rs[..]), &s, &d),
            Err(Error::Unsupported)
        );
        assert_eq!(
            parse_with_ip(&rs, &IpAddr::V6(s), &IpAddr::V6(d)),
            Err(Error::Unsupported)
        );
        assert_eq!(
            parse_with_ip(
                &rs,
                &IpAddr::V4(core::net::Ipv4Addr::LOCALHOST),
                &IpAddr::V6(d)
            ),
            Err(Error::Unsupported)
        );
        assert_eq!(Packet::new_checked(&rs[..7]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn error_policy() {
        let big = big_packet();
        assert!(may_send_error_about(&big, false));
        // About an ICMPv6 error: never.
        let s = a("2001:db8::1");
        let d = a("2001:db8::2");
        let mut err = [0u8; 200];
        let n = Repr::time_exceeded(&big[..100])
            .emit_ipv6(&mut err, s, d, 64)
            .unwrap();
        assert!(!may_send_error_about(&err[..n], false));
        // About an echo request: yes.
        let n = Repr::EchoRequest {
            ident: 1,
            seq_no: 1,
            data: &[],
        }
        .emit_ipv6(&mut err, s, d, 64)
        .unwrap();
        assert!(may_send_error_about(&err[..n], false));
        // Multicast destination: only packet too big.
        let mut m = big;
        m[24] = 0xff;
        assert!(!may_send_error_about(&m, false));
        assert!(may_send_error_about(&m, true));
        // Unspecified source: never.
        let mut m = big;
        m[8..24].fill(0);
        assert!(!may_send_error_about(&m, true));
        assert!(!may_send_error_about(&big[..30], true));
    }

    #[test]
    fn message_round_trip() {
        for v in 0..=255u8 {
            let m = Message::from(v);
            assert_eq!(u8::from(m), v);
            assert_eq!(m.is_error(), v < 128);
        }
    }
}
