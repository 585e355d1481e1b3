//! Flow offload: established flows forwarded outside the core (an XDP program in the
//! kernel, Katran's model), while the core keeps scheduling, state and accounting.
//!
//! With [`Balancer::set_offload`](crate::Balancer::set_offload) on, the core tells its caller, through
//! [`Balancer::take_offload_events`](crate::Balancer::take_offload_events), which flows may be forwarded without it and how:
//!
//! * [`OffloadEvent::Install`] after it forwarded a packet of a connection that is
//!   *established* (TCP in ESTABLISHED, any UDP connection): the packet's own tuple to match,
//!   the rewrite it applied ([`OffloadRewrite`]), the next hop and the largest IP packet the
//!   rewrite may take without a fragmentation-needed answer. NAT connections get one flow
//!   per direction (client → VIP, and the real server's replies).
//! * [`OffloadEvent::Remove`] as soon as that stops being true: a TCP segment moved the
//!   state out of ESTABLISHED, the entry expired or was released, or a control change
//!   (destination edited or deleted, service deleted, MTU or tunnel source changed) may
//!   change how its packets are handled.
//!
//! What is never offloaded (and so is always decided here): TCP segments with SYN, FIN or
//! RST (the offloaded path must hand them back: they drive the state machine), packets with
//! TTL 1, packets larger than [`OffloadFlow::max_len`], fragments, SCTP, one-packet
//! scheduling, firewall-mark services, GUE and GRE tunnels, VLAN-tagged frames.
//!
//! The caller reports what the offloaded path forwarded with [`Balancer::offload_seen`](crate::Balancer::offload_seen)
//! (packets and bytes since the last report, typically once a second): the core adds them
//! to the destination, service and global counters and re-arms the connection's timer as
//! the packets would have. An offloaded connection whose deadline passes gets
//! [`OFFLOAD_GRACE`] more before it expires, so a report that is up to one interval late
//! can still keep it alive.

use core::net::IpAddr;

use crate::conn::Slot;
use crate::time::Duration;

/// How long an offloaded connection whose timer ran out waits for a late
/// [`Balancer::offload_seen`](crate::Balancer::offload_seen) before it expires. Report at
/// least twice as often.
pub const OFFLOAD_GRACE: Duration = Duration::from_secs(2);

/// A connection entry, as named in offload events (stable while the entry lives; a reused
/// slot gets a new identity).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId(pub(crate) Slot);

/// Which packets of a connection a flow matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OffloadDir {
    /// Client → virtual service.
    In,
    /// Real server → client (NAT replies).
    Out,
}

/// The tuple of the packets a flow matches, as they arrive at the director.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowMatch {
    /// IP protocol (6 TCP, 17 UDP).
    pub proto: u8,
    /// Source address.
    pub src: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination address.
    pub dst: IpAddr,
    /// Destination port.
    pub dport: u16,
}

/// What the core does to a matching packet, besides decrementing TTL / hop limit (IPv4
/// header checksum fixed incrementally), cutting Ethernet padding and setting the Ethernet
/// addresses toward the next hop (the caller's part).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffloadRewrite {
    /// Direct routing: nothing else.
    Route,
    /// NAT toward the real server: destination address and port become these (IPv4 header
    /// and TCP/UDP checksums updated incrementally, UDP's zero rules kept).
    Dnat {
        /// Real server address.
        addr: IpAddr,
        /// Real server port.
        port: u16,
    },
    /// NAT reply: source address and port become the virtual service's.
    Snat {
        /// Virtual address.
        addr: IpAddr,
        /// Virtual port.
        port: u16,
    },
    /// IP-in-IP: an outer IPv4 or IPv6 header from `src` to `dst` (spec 6.4).
    Ipip {
        /// Outer source (the director's tunnel address).
        src: IpAddr,
        /// Outer destination (the real server).
        dst: IpAddr,
        /// IPv4 outer header: copy the inner packet's DF bit (`pmtu_disc`).
        copy_df: bool,
    },
}

/// A flow the caller may forward without the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffloadFlow {
    /// The connection.
    pub conn: ConnId,
    /// Which direction.
    pub dir: OffloadDir,
    /// Packets to match.
    pub flow: FlowMatch,
    /// What to do to them.
    pub rewrite: OffloadRewrite,
    /// Where to send them (resolve to an interface and MAC address).
    pub next_hop: IpAddr,
    /// Largest IP packet (bytes, before encapsulation) to forward; larger ones go to the
    /// core, which answers with fragmentation-needed / packet-too-big.
    pub max_len: u16,
}

/// See the [module documentation](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffloadEvent {
    /// Start forwarding this flow.
    Install(OffloadFlow),
    /// Stop forwarding the connection's flow in this direction; its packets go to the core
    /// again.
    Remove {
        /// The connection.
        conn: ConnId,
        /// Which direction.
        dir: OffloadDir,
    },
}
