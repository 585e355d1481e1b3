//! Items shared by IPv4 and IPv6: the protocol / next-header number.

use core::fmt;

/// An IP protocol number (IPv4 `protocol`, IPv6 `next header`), from the IANA registry.
///
/// Conversions from and to `u8` are lossless: unlisted numbers are kept in
/// [`IpProtocol::Unknown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IpProtocol {
    /// IPv6 hop-by-hop options, 0.
    HopByHop,
    /// ICMP, 1.
    Icmp,
    /// IGMP, 2.
    Igmp,
    /// IPv4 encapsulation (IP-in-IP, RFC 2003), 4.
    IpIp,
    /// TCP, 6.
    Tcp,
    /// UDP, 17.
    Udp,
    /// IPv6 encapsulation, 41.
    Ipv6,
    /// IPv6 routing header, 43.
    Ipv6Route,
    /// IPv6 fragment header, 44.
    Ipv6Frag,
    /// GRE, 47.
    Gre,
    /// IPsec encapsulating security payload, 50.
    Esp,
    /// IPsec authentication header, 51.
    Ah,
    /// ICMPv6, 58.
    Icmpv6,
    /// IPv6 "no next header", 59.
    Ipv6NoNxt,
    /// IPv6 destination options, 60.
    Ipv6Opts,
    /// SCTP, 132.
    Sctp,
    /// Any other protocol number.
    Unknown(u8),
}

impl From<u8> for IpProtocol {
    fn from(v: u8) -> Self {
        match v {
            0 => Self::HopByHop,
            1 => Self::Icmp,
            2 => Self::Igmp,
            4 => Self::IpIp,
            6 => Self::Tcp,
            17 => Self::Udp,
            41 => Self::Ipv6,
            43 => Self::Ipv6Route,
            44 => Self::Ipv6Frag,
            47 => Self::Gre,
            50 => Self::Esp,
            51 => Self::Ah,
            58 => Self::Icmpv6,
            59 => Self::Ipv6NoNxt,
            60 => Self::Ipv6Opts,
            132 => Self::Sctp,
            other => Self::Unknown(other),
        }
    }
}

impl From<IpProtocol> for u8 {
    fn from(v: IpProtocol) -> Self {
        match v {
            IpProtocol::HopByHop => 0,
            IpProtocol::Icmp => 1,
            IpProtocol::Igmp => 2,
            IpProtocol::IpIp => 4,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::Ipv6 => 41,
            IpProtocol::Ipv6Route => 43,
            IpProtocol::Ipv6Frag => 44,
            IpProtocol::Gre => 47,
            IpProtocol::Esp => 50,
            IpProtocol::Ah => 51,
            IpProtocol::Icmpv6 => 58,
            IpProtocol::Ipv6NoNxt => 59,
            IpProtocol::Ipv6Opts => 60,
            IpProtocol::Sctp => 132,
            IpProtocol::Unknown(other) => other,
        }
    }
}

impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::HopByHop => "Hop-by-Hop",
            Self::Icmp => "ICMP",
            Self::Igmp => "IGMP",
            Self::IpIp => "IPIP",
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
            Self::Ipv6 => "IPv6",
            Self::Ipv6Route => "IPv6-Route",
            Self::Ipv6Frag => "IPv6-Frag",
            Self::Gre => "GRE",
            Self::Esp => "ESP",
            Self::Ah => "AH",
            Self::Icmpv6 => "ICMPv6",
            Self::Ipv6NoNxt => "IPv6-NoNxt",
            Self::Ipv6Opts => "IPv6-Opts",
            Self::Sctp => "SCTP",
            Self::Unknown(v) => return write!(f, "proto {v}"),
        };
        f.write_str(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_all_numbers() {
        for v in 0..=255u8 {
            assert_eq!(u8::from(IpProtocol::from(v)), v);
        }
        assert_eq!(IpProtocol::from(6), IpProtocol::Tcp);
        assert_eq!(IpProtocol::from(200), IpProtocol::Unknown(200));
    }
}
