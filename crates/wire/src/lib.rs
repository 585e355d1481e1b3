//! Zero-copy packet views and header representations for rvs, the userspace IPVS.
//!
//! # What this crate does
//!
//! * **Views** (`*Packet<T>`, `EthernetFrame<T>`): typed accessors over a borrowed or
//!   owned byte buffer (`T: AsRef<[u8]>`, plus `AsMut<[u8]>` for setters), for
//!   Ethernet/802.1Q, ARP, IPv4, IPv6, TCP, UDP, SCTP, ICMPv4, ICMPv6 and GUE. Getters
//!   are named after the RFC fields, setters are `set_*`.
//! * **Representations** (`*Repr`): plain values parsed from a view (`parse`) and
//!   written back into a buffer (`emit`), with `buffer_len` telling the caller how much
//!   room to provide.
//! * **Checksums** ([`checksum`]): RFC 1071 sums, pseudo headers, and RFC 1624
//!   incremental updates for NAT rewrites (with the UDP zero rules), plus CRC32c for SCTP
//!   ([`sctp::crc32c`]).
//! * **Encapsulation helpers** for the tunnel method: IP-in-IP outer headers
//!   ([`emit_ipip_v4_outer`], [`emit_ipip_v6_outer`]), RFC 6040 ECN mapping, GUE.
//! * **ICMP error construction**: destination unreachable, fragmentation needed /
//!   packet too big and time exceeded, quoting the offending packet per RFC 1812 and
//!   RFC 4443; IPv6 neighbour solicitation/advertisement parse and emit.
//!
//! # What it refuses to do
//!
//! No I/O, no clock, no allocation, no `unsafe`, no dependencies. It does not reassemble
//! fragments, follow IPv4 options, parse TCP options, or interpret SCTP beyond the common
//! header and the first chunk's type. Policy (what to drop, when to send an ICMP error)
//! belongs to `rvs-core`; this crate only reports what the bytes say.
//!
//! # Panic freedom
//!
//! Untrusted bytes go through `new_checked` (or a free function such as [`parse_l2`] or
//! [`ipv6_upper_layer`]). Once `new_checked` has succeeded, **no getter panics**, whatever
//! the bytes: every length field has been checked against the buffer. `new_unchecked`
//! skips the checks; it is meant for emitting into a buffer the caller sized with
//! `buffer_len`, and its accessors panic when the buffer is too short. Setters write what
//! they are given: after changing a length field (`set_total_len`, `set_header_len`,
//! `set_payload_len`, `set_len`) call `check_len` again before relying on the guarantee.
//! Emitters return [`Result`] and check the buffer size themselves.
//!
//! # Layout
//!
//! One module per protocol, each with a module-local `Packet` and `Repr`; the crate root
//! re-exports them with a protocol prefix (`Ipv4Packet`, `TcpRepr`...).
//!
//! # Example: emit then parse
//!
//! ```
//! use core::net::{IpAddr, Ipv4Addr};
//! use rvs_wire::{IpProtocol, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr};
//!
//! let src = Ipv4Addr::new(192, 0, 2, 1);
//! let dst = Ipv4Addr::new(198, 51, 100, 7);
//! let payload = b"hello";
//! let udp = UdpRepr { src_port: 40000, dst_port: 53 };
//! let ip = Ipv4Repr::new(src, dst, IpProtocol::Udp, udp.buffer_len(payload.len()), 64);
//!
//! let mut buf = [0u8; 64];
//! let len = ip.buffer_len();
//! let mut packet = Ipv4Packet::new_unchecked(&mut buf[..len]);
//! ip.emit(&mut packet).expect("buffer sized with buffer_len");
//! udp.emit(
//!     &mut UdpPacket::new_unchecked(packet.payload_mut()),
//!     &IpAddr::V4(src),
//!     &IpAddr::V4(dst),
//!     payload,
//! )
//! .expect("buffer sized with buffer_len");
//!
//! // Parsing untrusted bytes: new_checked, then Repr::parse (which verifies checksums).
//! let packet = Ipv4Packet::new_checked(&buf[..len]).expect("valid IPv4");
//! assert_eq!(Ipv4Repr::parse(&packet), Ok(ip));
//! let datagram = UdpPacket::new_checked(packet.payload()).expect("valid UDP");
//! assert_eq!(UdpRepr::parse(&datagram, &IpAddr::V4(src), &IpAddr::V4(dst)), Ok(udp));
//! assert_eq!(datagram.payload(), payload);
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

use core::fmt;

pub mod arp;
pub mod checksum;
pub mod ethernet;
mod field;
pub mod gue;
pub mod icmpv4;
pub mod icmpv6;
pub mod ip;
pub mod ipip;
pub mod ipv4;
pub mod ipv6;
pub mod sctp;
pub mod tcp;
pub mod udp;

pub use arp::{Operation as ArpOperation, Packet as ArpPacket, Repr as ArpRepr};
pub use ethernet::{
    EtherType, EthernetAddress, Frame as EthernetFrame, L2Info, Repr as EthernetRepr, VlanTag,
    parse_l2,
};
pub use gue::{Packet as GuePacket, emit_gue_header};
pub use icmpv4::{
    Message as Icmpv4Message, Packet as Icmpv4Packet, QuotedIpv4, Repr as Icmpv4Repr, quoted_ipv4,
};
pub use icmpv6::{Message as Icmpv6Message, Packet as Icmpv6Packet, Repr as Icmpv6Repr};
pub use ip::IpProtocol;
pub use ipip::{decap_ecn, emit_ipip_v4_outer, emit_ipip_v6_outer, outer_tos_from_inner};
pub use ipv4::{Packet as Ipv4Packet, Repr as Ipv4Repr};
pub use ipv6::{
    Ipv6FragInfo, Ipv6L4Info, Packet as Ipv6Packet, Repr as Ipv6Repr, ipv6_upper_layer,
};
pub use sctp::{ChunkType as SctpChunkType, Packet as SctpPacket};
pub use tcp::{Packet as TcpPacket, Repr as TcpRepr, flags as tcp_flags};
pub use udp::{Packet as UdpPacket, Repr as UdpRepr};

/// Why a buffer could not be parsed or emitted.
///
/// The variants are few and stable so that drops can be counted by cause;
/// [`Error::index`] maps them to `0..Error::COUNT` for a counter array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer ends before a header or a length field says it should.
    Truncated,
    /// A field holds an impossible value (a header length below the minimum, a length
    /// smaller than the header, a zero-length option...).
    Malformed,
    /// The IP (or GUE) version field is not the one expected.
    BadVersion,
    /// A checksum did not verify.
    BadChecksum,
    /// Valid but not handled here (a fragment where a whole packet is needed, too many
    /// extension headers or VLAN tags, a non-Ethernet ARP...).
    Unsupported,
}

impl Error {
    /// Number of variants.
    pub const COUNT: usize = 5;

    /// A dense index in `0..Self::COUNT`, for per-cause counters.
    pub const fn index(self) -> usize {
        match self {
            Self::Truncated => 0,
            Self::Malformed => 1,
            Self::BadVersion => 2,
            Self::BadChecksum => 3,
            Self::Unsupported => 4,
        }
    }

    /// A short static description.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Truncated => "truncated packet",
            Self::Malformed => "malformed packet",
            Self::BadVersion => "bad version",
            Self::BadChecksum => "bad checksum",
            Self::Unsupported => "unsupported packet",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::error::Error for Error {}

/// The result type of this crate.
pub type Result<T> = core::result::Result<T, Error>;
