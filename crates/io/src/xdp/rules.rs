//! What the steering program sends to user space: [`SteerRule`]s, their encoding as keys
//! of the program's `rvs_rules` hash map, and the program's per-reason counters.
//!
//! Pure data, no I/O: the layout here must match `struct rvs_key` and `enum stat` in
//! `bpf/steer.c` byte for byte (the unit tests pin it).

use std::collections::HashSet;
use std::net::IpAddr;

pub use crate::nft::Proto;
use crate::nft::VipPort;

/// Traffic the steering program hands to the AF_XDP socket instead of the kernel.
///
/// A virtual service matches on the destination ([`SteerRule::vip`]); a real server
/// answering through NAT matches on the source ([`SteerRule::real`]). Port 0 matches
/// every port of the protocol (IPVS port-zero services, or every reply of a real server).
/// The family is the address's; an IPv4-mapped IPv6 address is taken as the IPv4 address.
///
/// IP fragments carry no ports after the first one, so a rule also steers every fragment
/// of its protocol to (or from) its address, whatever the port; the core reassembles or
/// drops them.
///
/// The same shape as [`VipPort`] (the nftables drop list of the AF_PACKET path), and
/// convertible from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SteerRule {
    /// Protocol.
    pub proto: Proto,
    /// Destination address (source address with `source`).
    pub addr: IpAddr,
    /// Destination port (source port with `source`); 0 for every port.
    pub port: u16,
    /// Match the source address and port instead of the destination.
    pub source: bool,
}

impl SteerRule {
    /// Traffic to a virtual service: destination `addr:port` (`port` 0 = every port).
    pub const fn vip(proto: Proto, addr: IpAddr, port: u16) -> Self {
        Self {
            proto,
            addr,
            port,
            source: false,
        }
    }

    /// Replies of a NAT real server: source `addr:port` (`port` 0 = every port).
    pub const fn real(proto: Proto, addr: IpAddr, port: u16) -> Self {
        Self {
            proto,
            addr,
            port,
            source: true,
        }
    }
}

impl From<VipPort> for SteerRule {
    fn from(v: VipPort) -> Self {
        Self {
            proto: v.proto,
            addr: v.vip,
            port: v.port,
            source: v.source,
        }
    }
}

impl From<&VipPort> for SteerRule {
    fn from(v: &VipPort) -> Self {
        Self::from(*v)
    }
}

/// IP protocol number of `p`.
pub(crate) const fn proto_number(p: Proto) -> u8 {
    match p {
        Proto::Tcp => 6,
        Proto::Udp => 17,
        Proto::Sctp => 132,
    }
}

/// `enum kind` of `steer.c`.
mod kind {
    pub(super) const DST: u8 = 0;
    pub(super) const SRC: u8 = 1;
    pub(super) const DST_FRAG: u8 = 2;
    pub(super) const SRC_FRAG: u8 = 3;
}

/// A key of the `rvs_rules` map: `struct rvs_key` of `steer.c` (24 bytes, no padding;
/// byte arrays only, so the Rust layout has no padding or alignment of its own either).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct SteerKey {
    family: u8,
    proto: u8,
    kind: u8,
    pad0: u8,
    /// Network byte order.
    port: [u8; 2],
    pad1: [u8; 2],
    /// IPv4 in the first four bytes, the rest zero.
    addr: [u8; 16],
}

// SAFETY: `SteerKey` is `repr(C)`, made only of `u8`s and `u8` arrays (no padding, no
// invalid bit patterns), `Copy` and `'static`: any 24 bytes are a valid value.
unsafe impl aya::Pod for SteerKey {}

impl SteerKey {
    fn new(kind: u8, proto: u8, addr: IpAddr, port: u16) -> Self {
        let (family, bytes) = match addr.to_canonical() {
            IpAddr::V4(a) => {
                let mut b = [0u8; 16];
                b[..4].copy_from_slice(&a.octets());
                (4, b)
            }
            IpAddr::V6(a) => (6, a.octets()),
        };
        Self {
            family,
            proto,
            kind,
            pad0: 0,
            port: port.to_be_bytes(),
            pad1: [0; 2],
            addr: bytes,
        }
    }

    /// The key exactly as the map stores it.
    #[cfg(test)]
    pub(crate) fn to_bytes(self) -> [u8; 24] {
        let mut b = [0u8; 24];
        b[0] = self.family;
        b[1] = self.proto;
        b[2] = self.kind;
        b[3] = self.pad0;
        b[4..6].copy_from_slice(&self.port);
        b[6..8].copy_from_slice(&self.pad1);
        b[8..].copy_from_slice(&self.addr);
        b
    }
}

/// The map keys of `rule`: the rule itself, and the fragment key of its address.
pub(crate) fn keys_of(rule: &SteerRule) -> [SteerKey; 2] {
    let p = proto_number(rule.proto);
    let (exact, frag) = if rule.source {
        (kind::SRC, kind::SRC_FRAG)
    } else {
        (kind::DST, kind::DST_FRAG)
    };
    [
        SteerKey::new(exact, p, rule.addr, rule.port),
        SteerKey::new(frag, p, rule.addr, 0),
    ]
}

/// Every map key of `rules`, without duplicates.
pub(crate) fn key_set(rules: &[SteerRule]) -> HashSet<SteerKey> {
    rules.iter().flat_map(keys_of).collect()
}

/// What changes to turn the map's `installed` keys into `wanted`: keys to add (or
/// overwrite) and stale keys to delete. Adding first then deleting keeps every rule that is
/// in both sets matching throughout the update.
pub(crate) fn diff(
    installed: &HashSet<SteerKey>,
    wanted: &HashSet<SteerKey>,
) -> (Vec<SteerKey>, Vec<SteerKey>) {
    let add = wanted.difference(installed).copied().collect();
    let del = installed.difference(wanted).copied().collect();
    (add, del)
}

/// Indices of the program's `rvs_stats` per-CPU array (`enum stat` of `steer.c`).
pub(crate) mod stat {
    pub(crate) const STEER_DST: u32 = 0;
    pub(crate) const STEER_SRC: u32 = 1;
    pub(crate) const STEER_FRAG: u32 = 2;
    pub(crate) const PASS_NOMATCH: u32 = 3;
    pub(crate) const PASS_NOT_IP: u32 = 4;
    pub(crate) const PASS_ND: u32 = 5;
    pub(crate) const PASS_MALFORMED: u32 = 6;
    pub(crate) const PASS_NO_SOCKET: u32 = 7;
    pub(crate) const FAST_FORWARD: u32 = 8;
    pub(crate) const FAST_PASS_FLAGS: u32 = 9;
    pub(crate) const FAST_PASS_TTL: u32 = 10;
    pub(crate) const FAST_PASS_BIG: u32 = 11;
    pub(crate) const FAST_DROP: u32 = 12;
    pub(crate) const COUNT: u32 = 13;
}

/// The program's verdicts by reason, summed over CPUs, since it was loaded.
///
/// The `fast_*` counters are the in-kernel fast path's (a flow entry matched). A frame the
/// fast path hands on (`fast_passed_*`) is then steered as any other frame and counted a
/// second time under its steering reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SteerCounters {
    /// Redirected to the socket: the destination matched a virtual-service rule.
    pub steered_vip: u64,
    /// Redirected: the source matched a real-server rule (NAT replies).
    pub steered_real: u64,
    /// Redirected: an IP fragment to or from a rule's address.
    pub steered_fragment: u64,
    /// Passed to the kernel: IPv4/IPv6 that no rule matched.
    pub passed_no_match: u64,
    /// Passed: not IPv4 or IPv6 (ARP, LLDP, ...).
    pub passed_not_ip: u64,
    /// Passed: ICMPv6 router or neighbour discovery, always left to the kernel.
    pub passed_nd: u64,
    /// Passed: truncated headers, or more VLAN tags or IPv6 extension headers than the
    /// program walks (2 and 6).
    pub passed_malformed: u64,
    /// Passed: a rule matched but no AF_XDP socket was bound to the receive queue.
    pub passed_no_socket: u64,
    /// Fast path: rewritten and sent by the kernel (`XDP_TX` or `XDP_REDIRECT`).
    pub fast_forwarded: u64,
    /// Fast path: handed to user space because of TCP SYN, FIN or RST.
    pub fast_passed_tcp_flags: u64,
    /// Fast path: handed to user space because the TTL / hop limit was 1 or less.
    pub fast_passed_ttl: u64,
    /// Fast path: handed to user space because the IP length exceeded the entry's
    /// `max_len`.
    pub fast_passed_too_big: u64,
    /// Fast path: dropped (`XDP_DROP`) because `bpf_xdp_adjust_tail`/`_head` failed (no
    /// headroom for the tunnel header).
    pub fast_dropped: u64,
}

impl SteerCounters {
    /// Build from the per-index sums of the `rvs_stats` array.
    pub(crate) fn from_sums(s: &[u64; stat::COUNT as usize]) -> Self {
        Self {
            steered_vip: s[stat::STEER_DST as usize],
            steered_real: s[stat::STEER_SRC as usize],
            steered_fragment: s[stat::STEER_FRAG as usize],
            passed_no_match: s[stat::PASS_NOMATCH as usize],
            passed_not_ip: s[stat::PASS_NOT_IP as usize],
            passed_nd: s[stat::PASS_ND as usize],
            passed_malformed: s[stat::PASS_MALFORMED as usize],
            passed_no_socket: s[stat::PASS_NO_SOCKET as usize],
            fast_forwarded: s[stat::FAST_FORWARD as usize],
            fast_passed_tcp_flags: s[stat::FAST_PASS_FLAGS as usize],
            fast_passed_ttl: s[stat::FAST_PASS_TTL as usize],
            fast_passed_too_big: s[stat::FAST_PASS_BIG as usize],
            fast_dropped: s[stat::FAST_DROP as usize],
        }
    }

    /// Frames redirected to the socket, all reasons.
    pub fn steered(&self) -> u64 {
        self.steered_vip + self.steered_real + self.steered_fragment
    }

    /// Frames passed to the kernel, all reasons.
    pub fn passed(&self) -> u64 {
        self.passed_no_match
            + self.passed_not_ip
            + self.passed_nd
            + self.passed_malformed
            + self.passed_no_socket
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// `198.18.0.10` UDP 9000 as a virtual service, as the map stores it.
    const VIP4_UDP_9000: [u8; 24] = [
        4, 17, 0, 0, 0x23, 0x28, 0, 0, 198, 18, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    /// Its fragment key: same address and protocol, port 0.
    const VIP4_UDP_FRAG: [u8; 24] = [
        4, 17, 2, 0, 0, 0, 0, 0, 198, 18, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    /// `2001:db8::20` TCP source port 80 as a real server.
    const REAL6_TCP_80: [u8; 24] = [
        6, 6, 1, 0, 0, 80, 0, 0, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20,
    ];

    #[test]
    fn key_layout_matches_the_program() {
        assert_eq!(size_of::<SteerKey>(), 24);
        assert_eq!(align_of::<SteerKey>(), 1);
        let r = SteerRule::vip(Proto::Udp, Ipv4Addr::new(198, 18, 0, 10).into(), 9000);
        let [exact, frag] = keys_of(&r);
        assert_eq!(exact.to_bytes(), VIP4_UDP_9000);
        assert_eq!(frag.to_bytes(), VIP4_UDP_FRAG);
        let r = SteerRule::real(Proto::Tcp, "2001:db8::20".parse().expect("v6"), 80);
        let [exact, frag] = keys_of(&r);
        assert_eq!(exact.to_bytes(), REAL6_TCP_80);
        let mut want = REAL6_TCP_80;
        want[2] = 3;
        want[4..6].copy_from_slice(&[0, 0]);
        assert_eq!(frag.to_bytes(), want);
    }

    #[test]
    fn sctp_and_port_zero() {
        let r = SteerRule::vip(Proto::Sctp, Ipv4Addr::new(198, 18, 1, 1).into(), 0);
        let [exact, frag] = keys_of(&r);
        let b = exact.to_bytes();
        assert_eq!((b[0], b[1], b[2], b[4], b[5]), (4, 132, 0, 0, 0));
        assert_eq!(frag.to_bytes()[2], 2);
    }

    #[test]
    fn mapped_v6_is_v4() {
        let mapped = IpAddr::V6(Ipv4Addr::new(198, 18, 0, 10).to_ipv6_mapped());
        let a = keys_of(&SteerRule::vip(Proto::Udp, mapped, 9000));
        assert_eq!(a[0].to_bytes(), VIP4_UDP_9000);
    }

    #[test]
    fn from_vip_port() {
        let v = VipPort {
            proto: Proto::Tcp,
            vip: Ipv6Addr::LOCALHOST.into(),
            port: 443,
            source: true,
            except_daddr: None,
        };
        assert_eq!(
            SteerRule::from(&v),
            SteerRule::real(Proto::Tcp, Ipv6Addr::LOCALHOST.into(), 443)
        );
    }

    #[test]
    fn diff_adds_new_and_deletes_stale() {
        let a = SteerRule::vip(Proto::Udp, Ipv4Addr::new(198, 18, 0, 10).into(), 9000);
        let b = SteerRule::vip(Proto::Udp, Ipv4Addr::new(198, 18, 0, 10).into(), 9001);
        let c = SteerRule::vip(Proto::Tcp, Ipv4Addr::new(198, 18, 0, 11).into(), 80);
        let installed = key_set(&[a, b]);
        // a and b share their fragment key.
        assert_eq!(installed.len(), 3);
        let wanted = key_set(&[b, c]);
        let (add, del) = diff(&installed, &wanted);
        let add: HashSet<_> = add.into_iter().collect();
        let del: HashSet<_> = del.into_iter().collect();
        assert_eq!(add, HashSet::from(keys_of(&c)));
        // a's exact key goes; the shared fragment key stays for b.
        assert_eq!(del, HashSet::from([keys_of(&a)[0]]));
        let (add, del) = diff(&wanted, &wanted);
        assert!(add.is_empty() && del.is_empty());
    }

    #[test]
    fn counters_sum() {
        let mut s = [0u64; stat::COUNT as usize];
        for (i, v) in s.iter_mut().enumerate() {
            *v = 1 << i;
        }
        let c = SteerCounters::from_sums(&s);
        assert_eq!(c.steered(), 0b111);
        assert_eq!(c.passed(), 0b1111_1000);
        assert_eq!(c.passed_no_socket, 1 << 7);
        assert_eq!(c.fast_forwarded, 1 << 8);
        assert_eq!(c.fast_passed_tcp_flags, 1 << 9);
        assert_eq!(c.fast_passed_ttl, 1 << 10);
        assert_eq!(c.fast_passed_too_big, 1 << 11);
        assert_eq!(c.fast_dropped, 1 << 12);
    }
}
