//! Next-hop resolution for the daemon: which interface and next hop serve a destination
//! ([`route_get`]), and which MAC address the next hop has ([`NeighCache`]).
//!
//! Both ask the kernel over rtnetlink (`NETLINK_ROUTE`): `RTM_GETROUTE` for a route lookup,
//! exactly what `ip route get X` prints, and an `RTM_GETNEIGH` dump for the neighbour table
//! (IPv4 ARP and IPv6 ND alike). Nothing shells out to `ip`. `/proc/net/arp` has a parser
//! too ([`parse_proc_net_arp`]) for tools and diagnostics; it lacks IPv6 and the entries'
//! NUD state, so the cache does not use it.
//!
//! Resolution of a missing entry is left to the kernel: [`probe`] sends an rtnetlink
//! `RTM_NEWNEIGH` with `NTF_USE`, which makes the kernel treat the entry as used and send an
//! ARP request or neighbour solicitation (and, for a stale entry, a unicast probe that
//! confirms it). If the kernel refuses that, it falls back to an empty UDP datagram to
//! port 9 (discard) of the address from a socket bound to the interface, which makes the
//! kernel resolve it to send the datagram. The answer lands in the kernel's table, where
//! the next [`NeighCache::resolve`] finds it.
//!
//! Why not parse ARP replies on the packet socket: the kernel answers and learns from them
//! anyway, and one source of truth (the kernel table, also visible with `ip neigh`) keeps
//! the daemon and the operator in agreement.
//!
//! Everything acts in the calling thread's network namespace.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::MacAddr;
use crate::netlink::{
    NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE, Netlink, attrs, push_attr, rd_u16, rd_u32,
};
use crate::{invalid, os_err, syscall};

const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const RTM_NEWNEIGH: u16 = 28;
const RTM_GETNEIGH: u16 = 30;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PREFSRC: u16 = 7;
const RTA_TABLE: u16 = 15;
const RTA_VIA: u16 = 18;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
const NTF_USE: u8 = 0x01;

/// Neighbour Unreachability Detection states (`NUD_*`), a bit set as the kernel reports.
pub mod nud {
    /// Resolution in progress.
    pub const INCOMPLETE: u16 = 0x01;
    /// Confirmed recently.
    pub const REACHABLE: u16 = 0x02;
    /// Usable, not confirmed recently.
    pub const STALE: u16 = 0x04;
    /// Waiting before probing a stale entry.
    pub const DELAY: u16 = 0x08;
    /// Being probed.
    pub const PROBE: u16 = 0x10;
    /// Resolution failed.
    pub const FAILED: u16 = 0x20;
    /// No resolution needed (point-to-point, loopback).
    pub const NOARP: u16 = 0x40;
    /// Static entry.
    pub const PERMANENT: u16 = 0x80;
    /// States whose link-layer address can be used.
    pub const USABLE: u16 = REACHABLE | STALE | DELAY | PROBE | NOARP | PERMANENT;
}

/// One entry of the kernel's neighbour table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighEntry {
    /// Interface the neighbour is on.
    pub ifindex: u32,
    /// Its IP address.
    pub ip: IpAddr,
    /// Its link-layer address, when known and Ethernet-sized.
    pub mac: Option<MacAddr>,
    /// NUD state bits ([`nud`]).
    pub state: u16,
}

impl NeighEntry {
    /// Whether `mac` may be used to send to this neighbour.
    pub fn usable(&self) -> bool {
        self.mac.is_some() && self.state & nud::USABLE != 0
    }
}

/// Address family selector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    fn af(self) -> u8 {
        match self {
            Self::V4 => libc::AF_INET as u8,
            Self::V6 => libc::AF_INET6 as u8,
        }
    }

    /// The family of an address.
    pub fn of(ip: IpAddr) -> Self {
        if ip.is_ipv4() { Self::V4 } else { Self::V6 }
    }
}

fn ip_from(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(b).ok()?))),
        16 => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(b).ok()?))),
        _ => None,
    }
}

fn ip_bytes(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// `struct ndmsg` (12 bytes).
fn ndmsg(family: u8, ifindex: u32, state: u16, flags: u8) -> Vec<u8> {
    let mut b = vec![family, 0, 0, 0];
    b.extend_from_slice(&ifindex.to_ne_bytes());
    b.extend_from_slice(&state.to_ne_bytes());
    b.push(flags);
    b.push(0);
    b
}

/// Parse one `RTM_NEWNEIGH` message (its payload after the netlink header).
fn parse_neigh(p: &[u8]) -> Option<NeighEntry> {
    let ifindex = rd_u32(p, 4)?;
    let state = rd_u16(p, 8)?;
    let mut ip = None;
    let mut mac = None;
    for (ty, v) in attrs(p.get(12..)?) {
        match ty {
            NDA_DST => ip = ip_from(v),
            NDA_LLADDR => mac = MacAddr::from_slice(v),
            _ => {}
        }
    }
    Some(NeighEntry {
        ifindex,
        ip: ip?,
        mac,
        state,
    })
}

/// Dump the kernel's neighbour table, of one family or both.
///
/// # Errors
///
/// When the rtnetlink request fails.
pub fn neigh_dump(family: Option<Family>) -> io::Result<Vec<NeighEntry>> {
    neigh_dump_with(&mut Netlink::open()?, family)
}

fn neigh_dump_with(nl: &mut Netlink, family: Option<Family>) -> io::Result<Vec<NeighEntry>> {
    let af = family.map_or(libc::AF_UNSPEC as u8, Family::af);
    let mut out = Vec::new();
    nl.request(
        RTM_GETNEIGH,
        NLM_F_DUMP,
        &ndmsg(af, 0, 0, 0),
        "RTM_GETNEIGH",
        |ty, p| {
            if ty == RTM_NEWNEIGH
                && let Some(e) = parse_neigh(p)
            {
                out.push(e);
            }
        },
    )?;
    Ok(out)
}

/// Ask the kernel to resolve `ip` on interface `ifindex` (see the module docs). Returns at
/// once; the answer, if any, appears in the neighbour table.
///
/// # Errors
///
/// When neither the `NTF_USE` request nor the UDP fallback could be sent.
pub fn probe(ifindex: u32, ip: IpAddr) -> io::Result<()> {
    probe_with(&mut Netlink::open()?, ifindex, ip)
}

fn probe_with(nl: &mut Netlink, ifindex: u32, ip: IpAddr) -> io::Result<()> {
    ntf_use(nl, ifindex, ip).or_else(|_| udp_probe(ifindex, ip))
}

/// `RTM_NEWNEIGH` with `NTF_USE`: create the entry if needed and resolve it as if the
/// kernel itself had a packet for it.
fn ntf_use(nl: &mut Netlink, ifindex: u32, ip: IpAddr) -> io::Result<()> {
    let mut body = ndmsg(Family::of(ip).af(), ifindex, 0, NTF_USE);
    push_attr(&mut body, NDA_DST, &ip_bytes(&ip));
    nl.request(
        RTM_NEWNEIGH,
        NLM_F_CREATE | NLM_F_REPLACE,
        &body,
        "RTM_NEWNEIGH(NTF_USE)",
        |_, _| {},
    )
}

/// Send an empty UDP datagram to port 9 of `ip` out of `ifindex`.
fn udp_probe(ifindex: u32, ip: IpAddr) -> io::Result<()> {
    let (sock, dst) = match ip {
        IpAddr::V4(a) => (
            UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)),
            SocketAddr::from((a, 9)),
        ),
        IpAddr::V6(a) => {
            let scope = if a.is_unicast_link_local() {
                ifindex
            } else {
                0
            };
            (
                UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0)),
                SocketAddr::V6(SocketAddrV6::new(a, 9, 0, scope)),
            )
        }
    };
    let sock = sock.map_err(|e| os_err("bind(udp probe)", ip, e))?;
    let idx = libc::c_int::try_from(ifindex).map_err(|_| invalid("ifindex out of range"))?;
    // SAFETY: `idx` is a valid c_int and the length is its size; the fd is owned by `sock`.
    syscall(unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTOIFINDEX,
            (&raw const idx).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map_err(|e| os_err("setsockopt(SO_BINDTOIFINDEX)", ifindex, e))?;
    sock.set_nonblocking(true)
        .map_err(|e| os_err("fcntl(O_NONBLOCK)", ip, e))?;
    match sock.send_to(&[], dst) {
        // A full queue of unresolved packets still means resolution is under way.
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(os_err("sendto(udp probe)", dst, e)),
    }
}

/// Route type (`RTN_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouteKind {
    /// A gateway or direct route.
    Unicast,
    /// An address of this host.
    Local,
    /// A broadcast address.
    Broadcast,
    /// Multicast.
    Multicast,
    /// Silently dropped.
    Blackhole,
    /// Unreachable (ICMP unreachable).
    Unreachable,
    /// Administratively prohibited.
    Prohibit,
    /// Any other type, by number.
    Other(u8),
}

impl RouteKind {
    fn from_rtn(t: u8) -> Self {
        match t {
            1 => Self::Unicast,
            2 => Self::Local,
            3 => Self::Broadcast,
            5 => Self::Multicast,
            6 => Self::Blackhole,
            7 => Self::Unreachable,
            8 => Self::Prohibit,
            o => Self::Other(o),
        }
    }
}

/// The kernel's answer to "how do I reach X", as `ip route get X` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// Route type.
    pub kind: RouteKind,
    /// Egress interface.
    pub ifindex: u32,
    /// Gateway, when the destination is not on a directly connected network. May be of
    /// the other family (an IPv4 route via an IPv6 next hop, `RTA_VIA`).
    pub gateway: Option<IpAddr>,
    /// Preferred source address for traffic to the destination.
    pub prefsrc: Option<IpAddr>,
    /// Routing table the route came from.
    pub table: u32,
}

impl Route {
    /// The address whose MAC to use: the gateway, or `dst` itself when it is on-link.
    pub fn next_hop(&self, dst: IpAddr) -> IpAddr {
        self.gateway.unwrap_or(dst)
    }
}

fn parse_route(p: &[u8]) -> Option<Route> {
    let table8 = *p.get(4)?;
    let kind = RouteKind::from_rtn(*p.get(7)?);
    let mut r = Route {
        kind,
        ifindex: 0,
        gateway: None,
        prefsrc: None,
        table: u32::from(table8),
    };
    for (ty, v) in attrs(p.get(12..)?) {
        match ty {
            RTA_OIF => r.ifindex = rd_u32(v, 0)?,
            RTA_GATEWAY => r.gateway = ip_from(v),
            RTA_PREFSRC => r.prefsrc = ip_from(v),
            RTA_TABLE => r.table = rd_u32(v, 0)?,
            // struct rtvia: family (u16) then the address.
            RTA_VIA => r.gateway = v.get(2..).and_then(ip_from),
            _ => {}
        }
    }
    Some(r)
}

/// Look up the route the kernel would use for `dst` (`RTM_GETROUTE`).
///
/// # Errors
///
/// The kernel's error for an unroutable destination (`ENETUNREACH`, `EHOSTUNREACH`,
/// `EACCES` for prohibit, `EINVAL` for blackhole) with `RTM_GETROUTE` named, or a failed
/// netlink exchange.
pub fn route_get(dst: IpAddr) -> io::Result<Route> {
    let mut nl = Netlink::open()?;
    route_get_with(&mut nl, dst)
}

fn route_get_with(nl: &mut Netlink, dst: IpAddr) -> io::Result<Route> {
    let fam = Family::of(dst);
    let prefix = if fam == Family::V4 { 32 } else { 128 };
    let mut body = vec![fam.af(), prefix, 0, 0, 0, 0, 0, 0];
    body.extend_from_slice(&0u32.to_ne_bytes());
    push_attr(&mut body, RTA_DST, &ip_bytes(&dst));
    let mut route = None;
    nl.request(RTM_GETROUTE, 0, &body, "RTM_GETROUTE", |ty, p| {
        if ty == RTM_NEWROUTE && route.is_none() {
            route = parse_route(p);
        }
    })?;
    route.ok_or_else(|| {
        os_err(
            "RTM_GETROUTE",
            dst,
            io::Error::new(
                io::ErrorKind::InvalidData,
                "no route in the kernel's answer",
            ),
        )
    })
}

/// One line of `/proc/net/arp`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArpEntry {
    /// The neighbour's address.
    pub ip: Ipv4Addr,
    /// ARP hardware type (1 = Ethernet).
    pub hw_type: u16,
    /// `ATF_*` flags: 0x2 complete, 0x4 permanent.
    pub flags: u32,
    /// Hardware address (all zero while incomplete).
    pub mac: MacAddr,
    /// Interface name.
    pub device: String,
}

impl ArpEntry {
    /// Whether the entry holds a resolved address (`ATF_COM`).
    pub fn complete(&self) -> bool {
        self.flags & 0x2 != 0
    }
}

/// Parse the text of `/proc/net/arp`. Lines that do not parse are skipped.
pub fn parse_proc_net_arp(text: &str) -> Vec<ArpEntry> {
    fn hex(s: &str) -> Option<u32> {
        u32::from_str_radix(s.strip_prefix("0x").unwrap_or(s), 16).ok()
    }
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let ip = f.next()?.parse().ok()?;
            let hw_type = u16::try_from(hex(f.next()?)?).ok()?;
            let flags = hex(f.next()?)?;
            let mac = f.next()?.parse().ok()?;
            let _mask = f.next()?;
            let device = f.next()?.to_owned();
            Some(ArpEntry {
                ip,
                hw_type,
                flags,
                mac,
                device,
            })
        })
        .collect()
}

/// Read the calling thread's namespace's ARP table (`/proc/thread-self/net/arp`).
///
/// # Errors
///
/// When the file cannot be read.
pub fn proc_net_arp() -> io::Result<Vec<ArpEntry>> {
    let path = "/proc/thread-self/net/arp";
    let text = std::fs::read_to_string(path).map_err(|e| os_err("read", path, e))?;
    Ok(parse_proc_net_arp(&text))
}

/// Knobs of a [`NeighCache`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighConfig {
    /// How long a resolved address is used before the kernel table is read again
    /// (default 15 s, about half the kernel's `base_reachable_time`).
    pub ttl: Duration,
    /// Least time between two kernel table dumps, however many misses (default 50 ms).
    pub min_refresh: Duration,
    /// Least time between two resolution requests for one neighbour (default 1 s).
    pub probe_interval: Duration,
    /// Most entries kept; when full, expired ones are dropped first, then all (default
    /// 65536).
    pub capacity: usize,
}

impl Default for NeighConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(15),
            min_refresh: Duration::from_millis(50),
            probe_interval: Duration::from_secs(1),
            capacity: 1 << 16,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Cached {
    mac: MacAddr,
    expires: Instant,
}

/// A cache of next-hop MAC addresses in front of the kernel's neighbour table.
///
/// The data path calls [`NeighCache::get`] (no syscall); on a miss, the control side (or the
/// data path, at a bounded cost) calls [`NeighCache::resolve`], which reads the kernel's
/// table at most once per `min_refresh` and asks the kernel to resolve a missing neighbour
/// at most once per `probe_interval`. A frame whose next hop is pending is the caller's to
/// queue or drop. Time is passed in, never read, except by [`NeighCache::resolve_wait`].
#[derive(Debug)]
pub struct NeighCache {
    cfg: NeighConfig,
    entries: HashMap<(u32, IpAddr), Cached>,
    probed: HashMap<(u32, IpAddr), Instant>,
    last_dump: Option<Instant>,
    nl: Option<Netlink>,
}

impl Default for NeighCache {
    fn default() -> Self {
        Self::new(NeighConfig::default())
    }
}

impl NeighCache {
    /// An empty cache. The netlink socket is opened on first use, in the namespace of the
    /// thread using it; keep the cache on that namespace's threads.
    pub fn new(cfg: NeighConfig) -> Self {
        Self {
            cfg,
            entries: HashMap::new(),
            probed: HashMap::new(),
            last_dump: None,
            nl: None,
        }
    }

    fn nl(&mut self) -> io::Result<&mut Netlink> {
        match &mut self.nl {
            Some(nl) => Ok(nl),
            slot @ None => Ok(slot.insert(Netlink::open()?)),
        }
    }

    /// The cached, unexpired MAC of `ip` on `ifindex`. No syscall.
    pub fn get(&self, now: Instant, ifindex: u32, ip: IpAddr) -> Option<MacAddr> {
        self.entries
            .get(&(ifindex, ip))
            .filter(|c| c.expires > now)
            .map(|c| c.mac)
    }

    /// Number of cached entries (expired ones included until the next refresh).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Record an address learned elsewhere (static configuration) for `ttl`.
    pub fn insert(&mut self, now: Instant, ifindex: u32, ip: IpAddr, mac: MacAddr) {
        self.make_room(now);
        self.entries.insert(
            (ifindex, ip),
            Cached {
                mac,
                expires: now + self.cfg.ttl,
            },
        );
    }

    /// Forget a neighbour (after the daemon saw it fail).
    pub fn forget(&mut self, ifindex: u32, ip: IpAddr) {
        self.entries.remove(&(ifindex, ip));
        self.probed.remove(&(ifindex, ip));
    }

    fn make_room(&mut self, now: Instant) {
        if self.entries.len() >= self.cfg.capacity {
            self.entries.retain(|_, c| c.expires > now);
        }
        if self.entries.len() >= self.cfg.capacity {
            self.entries.clear();
        }
        if self.probed.len() >= self.cfg.capacity {
            let pi = self.cfg.probe_interval;
            self.probed
                .retain(|_, t| now.saturating_duration_since(*t) < pi);
            if self.probed.len() >= self.cfg.capacity {
                self.probed.clear();
            }
        }
    }

    /// Reload every usable entry of the kernel's table (both families). Stale kernel entries
    /// are loaded too but asked to be re-confirmed, because the daemon's own traffic never
    /// confirms them.
    ///
    /// # Errors
    ///
    /// When the dump fails; the cache is left as it was.
    pub fn refresh(&mut self, now: Instant) -> io::Result<()> {
        let dump = neigh_dump_with(self.nl()?, None)?;
        self.last_dump = Some(now);
        self.entries.retain(|_, c| c.expires > now);
        for e in dump {
            let Some(mac) = e.mac.filter(|_| e.usable()) else {
                self.entries.remove(&(e.ifindex, e.ip));
                continue;
            };
            self.make_room(now);
            self.entries.insert(
                (e.ifindex, e.ip),
                Cached {
                    mac,
                    expires: now + self.cfg.ttl,
                },
            );
        }
        Ok(())
    }

    /// The MAC of `ip` on `ifindex`: from the cache, else from the kernel's table (read at
    /// most once per `min_refresh`), else `Ok(None)` after asking the kernel to resolve it
    /// (at most once per `probe_interval`); call again later.
    ///
    /// # Errors
    ///
    /// When the kernel table cannot be read or the resolution request cannot be sent.
    pub fn resolve(
        &mut self,
        now: Instant,
        ifindex: u32,
        ip: IpAddr,
    ) -> io::Result<Option<MacAddr>> {
        if let Some(mac) = self.get(now, ifindex, ip) {
            return Ok(Some(mac));
        }
        let due = self
            .last_dump
            .is_none_or(|t| now.saturating_duration_since(t) >= self.cfg.min_refresh);
        if due {
            self.refresh(now)?;
            if let Some(mac) = self.get(now, ifindex, ip) {
                return Ok(Some(mac));
            }
        }
        let key = (ifindex, ip);
        let probe_due = self
            .probed
            .get(&key)
            .is_none_or(|&t| now.saturating_duration_since(t) >= self.cfg.probe_interval);
        if probe_due {
            self.make_room(now);
            self.probed.insert(key, now);
            probe_with(self.nl()?, ifindex, ip)?;
        }
        Ok(None)
    }

    /// [`NeighCache::resolve`] in a loop until an answer or `timeout` (polling every 10 ms):
    /// for start-up and tests, not for the data path.
    ///
    /// # Errors
    ///
    /// As [`NeighCache::resolve`].
    pub fn resolve_wait(
        &mut self,
        ifindex: u32,
        ip: IpAddr,
        timeout: Duration,
    ) -> io::Result<Option<MacAddr>> {
        let start = Instant::now();
        loop {
            let now = Instant::now();
            if let Some(mac) = self.resolve(now, ifindex, ip)? {
                return Ok(Some(mac));
            }
            if now.saturating_duration_since(start) >= timeout {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The two probe methods, separately, for the namespace tests.
    pub(crate) fn probe_ntf_use(ifindex: u32, ip: IpAddr) -> io::Result<()> {
        ntf_use(&mut Netlink::open()?, ifindex, ip)
    }

    pub(crate) fn probe_udp(ifindex: u32, ip: IpAddr) -> io::Result<()> {
        udp_probe(ifindex, ip)
    }

    const PROC_NET_ARP: &str = "\
IP address       HW type     Flags       HW address            Mask     Device
198.18.0.2       0x1         0x2         02:00:5e:00:00:02     *        veth-a
198.18.0.9       0x1         0x0         00:00:00:00:00:00     *        veth-a
198.19.1.1       0x1         0x6         0a:0b:0c:0d:0e:0f     *        eth1
garbage line
198.18.0.300     0x1         0x2         02:00:5e:00:00:02     *        veth-a
";

    #[test]
    fn parses_proc_net_arp() {
        let e = parse_proc_net_arp(PROC_NET_ARP);
        assert_eq!(e.len(), 3);
        assert_eq!(
            e[0],
            ArpEntry {
                ip: Ipv4Addr::new(198, 18, 0, 2),
                hw_type: 1,
                flags: 2,
                mac: MacAddr([2, 0, 0x5e, 0, 0, 2]),
                device: "veth-a".into(),
            }
        );
        assert!(e[0].complete());
        assert!(!e[1].complete(), "incomplete entry");
        assert!(e[2].complete());
        assert_eq!(e[2].flags & 0x4, 0x4, "permanent");
        assert_eq!(e[2].device, "eth1");
        assert!(parse_proc_net_arp("").is_empty());
    }

    #[test]
    fn parses_neigh_message() {
        let mut p = ndmsg(libc::AF_INET as u8, 5, nud::STALE, 0);
        push_attr(&mut p, NDA_DST, &[198, 18, 0, 2]);
        push_attr(&mut p, NDA_LLADDR, &[2, 0, 0x5e, 0, 0, 2]);
        let e = parse_neigh(&p).expect("parses");
        assert_eq!(e.ifindex, 5);
        assert_eq!(e.ip, IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)));
        assert_eq!(e.mac, Some(MacAddr([2, 0, 0x5e, 0, 0, 2])));
        assert!(e.usable());
        // Incomplete: no address.
        let mut p = ndmsg(libc::AF_INET6 as u8, 5, nud::INCOMPLETE, 0);
        push_attr(
            &mut p,
            NDA_DST,
            &"2001:db8::2".parse::<Ipv6Addr>().expect("ip").octets(),
        );
        let e = parse_neigh(&p).expect("parses");
        assert!(!e.usable());
        // Truncated messages do not parse and do not panic.
        for n in 0..p.len() {
            let _ = parse_neigh(&p[..n]);
        }
    }

    #[test]
    fn parses_route_message() {
        let mut p = vec![libc::AF_INET as u8, 32, 0, 0, 254, 0, 0, 1];
        p.extend_from_slice(&0u32.to_ne_bytes());
        push_attr(&mut p, RTA_TABLE, &254u32.to_ne_bytes());
        push_attr(&mut p, RTA_DST, &[198, 19, 5, 7]);
        push_attr(&mut p, RTA_OIF, &3u32.to_ne_bytes());
        push_attr(&mut p, RTA_GATEWAY, &[198, 18, 0, 2]);
        push_attr(&mut p, RTA_PREFSRC, &[198, 18, 0, 1]);
        let r = parse_route(&p).expect("parses");
        assert_eq!(r.kind, RouteKind::Unicast);
        assert_eq!(r.ifindex, 3);
        assert_eq!(r.table, 254);
        let dst = IpAddr::V4(Ipv4Addr::new(198, 19, 5, 7));
        assert_eq!(r.next_hop(dst), IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)));
        assert_eq!(r.prefsrc, Some(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1))));
        for n in 0..p.len() {
            let _ = parse_route(&p[..n]);
        }
    }

    #[test]
    fn cache_get_respects_expiry() {
        let mut c = NeighCache::new(NeighConfig {
            ttl: Duration::from_secs(1),
            capacity: 2,
            ..NeighConfig::default()
        });
        let t0 = Instant::now();
        let ip = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));
        let mac = MacAddr([2, 0, 0, 0, 0, 2]);
        c.insert(t0, 3, ip, mac);
        assert_eq!(c.get(t0, 3, ip), Some(mac));
        assert_eq!(c.get(t0, 4, ip), None, "other interface");
        assert_eq!(c.get(t0 + Duration::from_secs(2), 3, ip), None, "expired");
        // Capacity is bounded.
        for i in 0..10u8 {
            c.insert(t0, 3, IpAddr::V4(Ipv4Addr::new(198, 18, 1, i)), mac);
        }
        assert!(c.len() <= 2);
        c.forget(3, IpAddr::V4(Ipv4Addr::new(198, 18, 1, 9)));
        assert_eq!(c.get(t0, 3, IpAddr::V4(Ipv4Addr::new(198, 18, 1, 9))), None);
    }
}
