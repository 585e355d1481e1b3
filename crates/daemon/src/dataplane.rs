//! The data plane: packet sockets on the served interfaces, the core in between, next hops
//! from the kernel's routes and neighbours, and nftables rules that keep the host stack
//! away from virtual-service traffic.
//!
//! One run-to-completion loop (the engine thread) receives a batch from every ready
//! socket, hands each frame to the core, fills in the Ethernet addresses of what the core
//! forwards, and sends the batch out of the egress interfaces. Control requests are applied
//! between batches, so the core needs no lock.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use anyhow::Context;
use rvs_core::{Action, BATCH, Balancer, FrameBuf, RxMeta, ServiceKey};
use rvs_io::MacAddr;
use rvs_io::neigh::{NeighCache, Route, RouteKind, route_get};
use rvs_io::nfqueue::{FwmarkQueue, NfQueue, QueuedPacket, Verdict};
use rvs_io::nft::{DropHook, IngressDrop, Proto, VipPort};
use rvs_io::packet::{PacketOpts, PacketSocket, RxInfo, copy_with_headroom};
use rvs_io::xdp::{SteerRule, XdpMode, XdpOpts, XdpProgram, XdpSocket};

use crate::fastpath::{FastPath, FpCounters, NextHop};

/// Which packet I/O to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Backend {
    /// AF_XDP where the driver does zero-copy, AF_PACKET otherwise (on veth and other
    /// copy-mode drivers AF_PACKET was measured faster).
    Auto,
    /// AF_PACKET: TPACKET_V3 ring, works everywhere.
    AfPacket,
    /// AF_XDP: an XDP program steers virtual-service traffic to userspace.
    AfXdp,
}

/// `--xdp-mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum XdpModeArg {
    /// Native where the driver supports it, generic otherwise.
    Auto,
    /// In the driver only.
    Native,
    /// Generic (socket-buffer) mode only.
    Generic,
}

/// `--fastpath-hook`: where the kernel fast path runs with the AF_PACKET backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum FastHook {
    /// XDP (the TC hook measured slower under load in the bench lab; see docs/bench).
    Auto,
    /// The XDP program (mode from `--xdp-mode`).
    Xdp,
    /// The TC ingress hook (tcx, Linux 6.6 or later), on socket buffers.
    Tc,
}

impl From<XdpModeArg> for XdpMode {
    fn from(m: XdpModeArg) -> Self {
        match m {
            XdpModeArg::Auto => Self::Auto,
            XdpModeArg::Native => Self::Native,
            XdpModeArg::Generic => Self::Generic,
        }
    }
}

/// One served interface's socket, of either backend. With AF_PACKET, the XDP program of
/// the kernel fast path is attached on its own (it then steers nothing: frames it does not
/// forward pass to the kernel, where the packet socket sees them).
///
/// With the fast path at the TC hook, a packet port has two sockets, bound to IPv4 and to
/// IPv6: the kernel serves those after TC, so the frames the TC program forwards never
/// reach rvsd (a socket bound to every protocol would get a copy of each, before TC).
/// Otherwise it has one, bound to every protocol.
enum Port {
    Packet(Vec<PacketSocket>, Option<Box<XdpProgram>>),
    Xdp(Box<XdpSocket>),
}

/// EtherTypes (`ETH_P_ALL`: every frame).
const ETH_P_ALL: u16 = 0x0003;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
/// How long the kernel may hold a partly filled AF_PACKET block before rvsd sees its frames
/// (the kernel's smallest, 1 ms). With established flows in the kernel fast path, what
/// reaches rvsd is handshakes, FINs and first packets, too few to fill a block: each of them
/// waits for this timer, and a new NAT connection passes rvsd about four times, so it
/// bounds the connection rate of a few dozen concurrent clients (2 ms measured 6,500-8,000
/// NAT connections/s at 8-25% of the core).
const SLOW_PATH_BLOCK_TIMEOUT_MS: u32 = 1;

impl Port {
    /// `fast_flows`: flow-table size of the kernel fast path, 0 for none. `tc`: the fast
    /// path of a packet port at the TC hook (falling back to XDP in `mode`).
    fn open(
        name: &str,
        backend: Backend,
        fast_flows: u32,
        mode: XdpMode,
        tc: bool,
    ) -> anyhow::Result<Self> {
        match backend {
            Backend::AfPacket => {
                let tc = tc && fast_flows > 0;
                let protocols: &[u16] = if tc {
                    &[ETH_P_IP, ETH_P_IPV6]
                } else {
                    &[ETH_P_ALL]
                };
                let mut socks = Vec::new();
                for &protocol in protocols {
                    let opts = PacketOpts {
                        protocol,
                        block_timeout_ms: SLOW_PATH_BLOCK_TIMEOUT_MS,
                        ..PacketOpts::default()
                    };
                    socks.push(
                        PacketSocket::open(name, &opts)
                            .with_context(|| format!("opening a packet socket on {name}"))?,
                    );
                }
                let attach = |mode: XdpMode| XdpProgram::attach(name, mode, 1, fast_flows);
                let prog = if fast_flows == 0 {
                    None
                } else {
                    let attached = if tc {
                        attach(XdpMode::Tc).or_else(|e| {
                            tracing::warn!(interface = name, error = %e, "no TC fast path; trying XDP");
                            attach(mode)
                        })
                    } else {
                        attach(mode)
                    };
                    match attached {
                        Ok(p) => Some(Box::new(p)),
                        Err(e) => {
                            tracing::warn!(interface = name, error = %e, "no kernel fast path on this interface");
                            None
                        }
                    }
                };
                Ok(Self::Packet(socks, prog))
            }
            Backend::AfXdp => Ok(Self::Xdp(Box::new(
                XdpSocket::open(
                    name,
                    &XdpOpts {
                        max_flows: fast_flows.max(1),
                        mode,
                        ..XdpOpts::default()
                    },
                )
                .with_context(|| format!("opening an AF_XDP socket on {name}"))?,
            ))),
            Backend::Auto => {
                let zc = XdpOpts {
                    bind: rvs_io::xdp::BindMode::ZeroCopy,
                    max_flows: fast_flows.max(1),
                    mode,
                    ..XdpOpts::default()
                };
                match XdpSocket::open(name, &zc) {
                    Ok(x) => Ok(Self::Xdp(Box::new(x))),
                    Err(e) => {
                        tracing::debug!(interface = name, error = %e, "no AF_XDP zero-copy; using AF_PACKET");
                        Self::open(name, Backend::AfPacket, fast_flows, mode, tc)
                    }
                }
            }
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Packet(..) => "af_packet",
            Self::Xdp(_) => "af_xdp",
        }
    }

    fn ifindex(&self) -> u32 {
        match self {
            Self::Packet(s, _) => s.first().map_or(0, PacketSocket::ifindex),
            Self::Xdp(s) => s.ifindex(),
        }
    }

    /// The descriptors to poll, one per receiving socket.
    fn raw_fds(&self) -> Vec<std::os::fd::RawFd> {
        match self {
            Self::Packet(s, _) => s.iter().map(AsRawFd::as_raw_fd).collect(),
            Self::Xdp(s) => vec![s.as_raw_fd()],
        }
    }

    /// Whether the port's packet sockets are bound to IPv4 and IPv6 only.
    fn per_protocol(&self) -> bool {
        matches!(self, Self::Packet(s, _) if s.len() > 1)
    }

    /// Receive from the port's socket number `sub` (see [`Port::raw_fds`]).
    fn recv_batch(&mut self, sub: usize, f: impl FnMut(&[u8], RxInfo)) -> std::io::Result<usize> {
        match self {
            Self::Packet(s, _) => match s.get_mut(sub) {
                Some(s) => s.recv_batch(Duration::ZERO, f),
                None => Ok(0),
            },
            Self::Xdp(s) => s.recv_batch(Duration::ZERO, f),
        }
    }

    fn send_batch(&mut self, frames: &[&[u8]]) -> std::io::Result<usize> {
        match self {
            Self::Packet(s, _) => match s.first_mut() {
                Some(s) => s.send_batch(frames),
                None => Ok(0),
            },
            Self::Xdp(s) => s.send_batch(frames),
        }
    }

    fn set_rules(&mut self, rules: &[VipPort]) -> std::io::Result<()> {
        match self {
            Self::Packet(..) => Ok(()),
            Self::Xdp(s) => {
                let r: Vec<SteerRule> = rules.iter().map(|&v| SteerRule::from(v)).collect();
                s.set_rules(&r)
            }
        }
    }

    /// The XDP program with the fast path's flow table, if this port has one.
    fn program(&mut self) -> Option<&mut XdpProgram> {
        match self {
            Self::Packet(_, p) => p.as_deref_mut(),
            Self::Xdp(s) => Some(s.program()),
        }
    }
}

/// Bytes after a frame the core may need for an ICMP error (IPv6 minimum-MTU quote).
const TAILROOM: usize = 1300;
/// How long a route lookup is reused.
const ROUTE_TTL: Duration = Duration::from_secs(5);
/// Frames kept while their next hop is being resolved (as the kernel's `unres_qlen`).
const PENDING_MAX: usize = 256;
/// How long a frame may wait for its next hop.
const PENDING_TTL: Duration = Duration::from_secs(3);
/// `PACKET_OTHERHOST`: a frame for another station seen in promiscuous mode.
const PACKET_OTHERHOST: u8 = 3;
/// Every how many counter harvests (seconds) the installed flows' next hops are checked.
const REVALIDATE_EVERY: u32 = 5;
/// Attempts to send the rest of a batch after the kernel stopped taking frames.
const TX_RETRIES: u32 = 8;
/// NFQUEUE number for firewall-mark services.
const FWMARK_QUEUE: u16 = 4242;

/// Data-plane outcomes the core does not count (everything about delivery).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct DpCounters {
    pub(crate) rx: u64,
    pub(crate) tx: u64,
    pub(crate) truncated: u64,
    pub(crate) no_route: u64,
    pub(crate) not_served: u64,
    pub(crate) no_neighbour: u64,
    pub(crate) pending_expired: u64,
    pub(crate) tx_errors: u64,
    /// Loop time spent in rounds that received frames (the core's load).
    pub(crate) busy_ns: u64,
    /// Loop time spent in rounds that received nothing (spinning or waiting).
    pub(crate) idle_ns: u64,
    /// The kernel fast path (all zero when off).
    pub(crate) fast: FpCounters,
    /// Whether the kernel fast path is on.
    pub(crate) fast_on: bool,
}

struct IfMeta {
    name: String,
    ifindex: u32,
    mac: MacAddr,
    /// rvs's XDP program runs on it in native mode.
    xdp_native: bool,
}

struct OutFrame {
    iface: usize,
    bytes: Vec<u8>,
}

struct Pending {
    since: Instant,
    iface: usize,
    next_hop: IpAddr,
    bytes: Vec<u8>,
}

#[derive(Clone, Copy)]
struct Hop {
    iface: usize,
    ifindex: u32,
    next_hop: IpAddr,
}

pub(crate) struct DataPlane {
    socks: Vec<Port>,
    /// Every receiving socket: its descriptor, its port and its number there (see
    /// [`Port::raw_fds`]); fixed once the ports are open.
    rx: Vec<(std::os::fd::RawFd, usize, usize)>,
    meta: Vec<IfMeta>,
    neigh: NeighCache,
    routes: HashMap<IpAddr, (Instant, Option<Hop>)>,
    pending: VecDeque<Pending>,
    out: Vec<OutFrame>,
    spare: Vec<Vec<u8>>,
    rxbuf: Vec<u8>,
    nft: Option<IngressDrop>,
    pub(crate) counters: DpCounters,
    /// Explicit tunnel sources (`--tunnel-src`); otherwise taken from the routes.
    fixed_tunnel_src: (bool, bool),
    /// Smallest MTU of the served interfaces: the core's path MTU toward real servers.
    mtu: u16,
    /// Firewall-mark services: packets marked by the administrator's netfilter rules come
    /// back to rvsd through NFQUEUE with their mark (packet sockets see frames before
    /// netfilter, so they cannot see marks).
    fwmark_rules: Option<FwmarkQueue>,
    nfq: Option<NfQueue>,
    pub(crate) queued: u64,
    /// The kernel fast path, when at least one port has its program.
    fast: Option<FastPath>,
    /// Calls of [`DataPlane::harvest`].
    harvests: u32,
}

impl DataPlane {
    /// Open a packet socket on every interface.
    /// `fast_flows`: flow-table size per interface of the kernel fast path (0: off).
    pub(crate) fn open(
        names: &[String],
        backend: Backend,
        fixed_tunnel_src: (bool, bool),
        fast_flows: u32,
        xdp_mode: XdpMode,
        hook: FastHook,
    ) -> anyhow::Result<Self> {
        if let Some(why) = rvs_io::nft::nft_unavailable() {
            anyhow::bail!(
                "{why}: rvsd needs nftables to keep the host stack away from virtual-service \
                 traffic (apt-get install nftables)"
            );
        }
        let mut socks = Vec::new();
        let mut meta = Vec::new();
        let mut mtu = u32::MAX;
        for n in names {
            mtu = mtu.min(rvs_io::packet::mtu_of(n).with_context(|| format!("MTU of {n}"))?);
            let mut sock = Port::open(n, backend, fast_flows, xdp_mode, hook == FastHook::Tc)?;
            let hook = sock.program().map(|p| p.mode().to_string());
            tracing::info!(
                interface = %n,
                backend = sock.name(),
                kernel_fast_path = hook.as_deref().unwrap_or("off"),
                "serving"
            );
            let mac = rvs_io::packet::mac_of(n).with_context(|| format!("MAC address of {n}"))?;
            let xdp_native = sock.program().is_some_and(|p| p.mode() == XdpMode::Native);
            meta.push(IfMeta {
                name: n.clone(),
                ifindex: sock.ifindex(),
                mac,
                xdp_native,
            });
            socks.push(sock);
        }
        let slots: Vec<u32> = if fast_flows == 0 {
            Vec::new()
        } else {
            socks
                .iter_mut()
                .map(|s| s.program().map_or(0, |p| p.max_flows()))
                .collect()
        };
        let fast = slots.iter().any(|&n| n > 0).then(|| FastPath::new(&slots));
        Ok(Self {
            fast,
            harvests: 0,
            mtu: u16::try_from(mtu).unwrap_or(u16::MAX),
            rx: socks
                .iter()
                .enumerate()
                .flat_map(|(i, p)| {
                    p.raw_fds()
                        .into_iter()
                        .enumerate()
                        .map(move |(j, fd)| (fd, i, j))
                })
                .collect(),
            socks,
            meta,
            neigh: NeighCache::default(),
            routes: HashMap::new(),
            pending: VecDeque::new(),
            out: Vec::new(),
            spare: Vec::new(),
            rxbuf: Vec::with_capacity(4096),
            nft: None,
            counters: DpCounters::default(),
            fixed_tunnel_src,
            fwmark_rules: None,
            nfq: None,
            queued: 0,
        })
    }

    /// Bring the host-side state in line with the service table: nftables drops for every
    /// VIP:port and NAT real server, tunnel source addresses, neighbour warm-up.
    pub(crate) fn sync(&mut self, lb: &mut Balancer) -> anyhow::Result<()> {
        let mut rules = Vec::new();
        let mut cfg = lb.config().clone();
        cfg.mtu = self.mtu;
        let now = Instant::now();
        let mut marks = Vec::new();
        for s in lb.services() {
            let protos: &[Proto] = match s.config.key {
                ServiceKey::Addr { proto, addr, port } => {
                    rules.push(VipPort::new(nft_proto(proto), addr, port));
                    match proto {
                        rvs_core::Protocol::Tcp => &[Proto::Tcp],
                        rvs_core::Protocol::Udp => &[Proto::Udp],
                        rvs_core::Protocol::Sctp => &[Proto::Sctp],
                    }
                }
                ServiceKey::Fwmark { mark, .. } => {
                    marks.push(mark);
                    &[Proto::Tcp, Proto::Udp, Proto::Sctp]
                }
            };
            for d in &s.dests {
                if d.config.method == rvs_core::ForwardMethod::Masq {
                    // the real server's answers to the director itself (health checks)
                    // must still reach the host
                    let local = self.routes_src(d.config.addr);
                    for p in protos {
                        rules.push(
                            VipPort::real_server(*p, d.config.addr, d.config.port).except(local),
                        );
                    }
                }
            }
            for d in &s.dests {
                let Some(hop) = self.hop(d.config.addr, now) else {
                    continue;
                };
                if d.config.method == rvs_core::ForwardMethod::Tunnel {
                    let src = self.routes_src(d.config.addr);
                    match src {
                        Some(IpAddr::V4(a)) if !self.fixed_tunnel_src.0 => {
                            cfg.tunnel_src_v4.get_or_insert(a);
                        }
                        Some(IpAddr::V6(a)) if !self.fixed_tunnel_src.1 => {
                            cfg.tunnel_src_v6.get_or_insert(a);
                        }
                        _ => {}
                    }
                }
                // ask the kernel to resolve the next hop now rather than on the first packet
                let _ = self.neigh.resolve(now, hop.ifindex, hop.next_hop);
            }
        }
        lb.set_config(cfg);
        lb.set_offload(self.fast.is_some());
        self.counters.fast_on = self.fast.is_some();
        let names: Vec<&str> = self.meta.iter().map(|m| m.name.as_str()).collect();
        match &mut self.nft {
            Some(t) => t.update(&names, &rules),
            None => {
                // packet sockets bound to IPv4/IPv6 are served after netdev ingress
                let hook = if self.socks.iter().any(Port::per_protocol) {
                    DropHook::Ip
                } else {
                    DropHook::Ingress
                };
                IngressDrop::apply_at("rvsd", &names, &rules, hook)
            }
            .map(|t| {
                self.nft = Some(t);
            }),
        }
        .context("installing the nftables ingress rules")?;
        for p in &mut self.socks {
            p.set_rules(&rules)
                .context("installing the AF_XDP steering rules")?;
        }
        self.sync_fwmarks(&marks)
    }

    fn sync_fwmarks(&mut self, marks: &[u32]) -> anyhow::Result<()> {
        if marks.is_empty() {
            if let Some(t) = self.fwmark_rules.take() {
                t.remove()
                    .context("removing the firewall-mark queue rules")?;
            }
            self.nfq = None;
            return Ok(());
        }
        if self.nfq.is_none() {
            self.nfq = Some(
                NfQueue::open(FWMARK_QUEUE, 65_535)
                    .context("opening the NFQUEUE for firewall-mark services")?,
            );
        }
        match &mut self.fwmark_rules {
            Some(t) => t.update(marks),
            None => FwmarkQueue::apply("rvsd_fwmark", FWMARK_QUEUE, marks).map(|t| {
                self.fwmark_rules = Some(t);
            }),
        }
        .context("installing the firewall-mark queue rules")
    }

    fn routes_src(&self, dst: IpAddr) -> Option<IpAddr> {
        route_get(dst).ok().and_then(|r| r.prefsrc)
    }

    /// Egress interface and next hop for `dst` (cached for a few seconds).
    fn hop(&mut self, dst: IpAddr, now: Instant) -> Option<Hop> {
        hop_in(&mut self.routes, &self.meta, dst, now)
    }

    /// Hand the core's offload events to the fast path. `ingress`: the port whose frames
    /// were just processed.
    fn apply_offload(
        &mut self,
        lb: &mut Balancer,
        now_core: rvs_core::time::Instant,
        ingress: Option<usize>,
        now: Instant,
    ) {
        let Some(fast) = &mut self.fast else {
            return;
        };
        if !fast.take_events(lb) {
            return;
        }
        let mut progs: Vec<Option<&mut XdpProgram>> =
            self.socks.iter_mut().map(Port::program).collect();
        let (routes, meta, neigh) = (&mut self.routes, &self.meta, &mut self.neigh);
        fast.apply(lb, now_core, ingress, &mut progs, |dst| {
            fast_egress(routes, meta, neigh, dst, now)
        });
        self.counters.fast = fast.counters;
    }

    /// Report the fast path's per-flow counters to the core (once a second); every
    /// `REVALIDATE_EVERY` calls, also check the installed flows' next hops.
    pub(crate) fn harvest(&mut self, lb: &mut Balancer, now_core: rvs_core::time::Instant) {
        let now = Instant::now();
        self.apply_offload(lb, now_core, None, now);
        let Some(fast) = &mut self.fast else {
            return;
        };
        let mut progs: Vec<Option<&mut XdpProgram>> =
            self.socks.iter_mut().map(Port::program).collect();
        fast.harvest(lb, now_core, &mut progs);
        self.harvests = self.harvests.wrapping_add(1);
        if self.harvests.is_multiple_of(REVALIDATE_EVERY) {
            let (routes, meta, neigh) = (&mut self.routes, &self.meta, &mut self.neigh);
            fast.revalidate(lb, now_core, &mut progs, |dst| {
                let Some(hop) = hop_in(routes, meta, dst, now) else {
                    return NextHop::Unreachable;
                };
                let mac = match neigh.get(now, hop.ifindex, hop.next_hop) {
                    Some(m) => Some(m),
                    None => neigh.resolve(now, hop.ifindex, hop.next_hop).ok().flatten(),
                };
                match mac {
                    Some(dst_mac) => NextHop::To(crate::fastpath::Egress {
                        ifindex: hop.ifindex,
                        native: meta[hop.iface].xdp_native,
                        src_mac: meta[hop.iface].mac,
                        dst_mac,
                    }),
                    None => NextHop::Pending,
                }
            });
        }
        self.counters.fast = fast.counters;
    }

    fn take_buf(&mut self) -> Vec<u8> {
        self.spare.pop().unwrap_or_default()
    }

    /// Wait up to `timeout` for frames, process everything received, send the results.
    /// Returns the number of frames received.
    pub(crate) fn poll(
        &mut self,
        lb: &mut Balancer,
        now_core: rvs_core::time::Instant,
        timeout: Duration,
    ) -> std::io::Result<usize> {
        let mut fds: Vec<_> = self.rx.iter().map(|&(fd, _, _)| fd).collect();
        let queue_at = fds.len();
        if let Some(q) = &self.nfq {
            fds.push(q.as_raw_fd());
        }
        let ready = rvs_io::poll::wait_readable(&fds, timeout)?;
        let now = Instant::now();
        // removals queued by control changes and timers since the last round
        self.apply_offload(lb, now_core, None, now);
        let mut received = 0;
        let marks_unknown = self.nfq.is_some();
        for (k, r) in ready.into_iter().enumerate() {
            if !r {
                continue;
            }
            if k == queue_at {
                received += self.poll_queue(lb, now_core, now)?;
                continue;
            }
            let Some(&(_, i, sub)) = self.rx.get(k) else {
                continue;
            };
            // frames copied into buffers with headroom, ready for the core
            let mut batch: Vec<(Vec<u8>, usize, usize)> = Vec::new();
            let mut spare = std::mem::take(&mut self.spare);
            let counters = &mut self.counters;
            let n = self.socks[i].recv_batch(sub, |frame, info| {
                counters.rx += 1;
                if (info.wire_len as usize) > frame.len() {
                    // larger than the ring slot: GRO/GSO super-frames (turn GRO off)
                    counters.truncated += 1;
                    return;
                }
                if info.pkt_type == PACKET_OTHERHOST {
                    return;
                }
                let mut b = spare.pop().unwrap_or_default();
                let (off, len) = copy_with_headroom(frame, &mut b, TAILROOM);
                if info.csum_not_ready {
                    crate::csum::complete_l4_checksum(&mut b[off..off + len]);
                }
                batch.push((b, off, len));
            })?;
            self.spare = spare;
            received += n;
            let meta = RxMeta {
                marks_unknown,
                ..RxMeta::default()
            };
            let metas = [meta; BATCH];
            let mut actions = [Action::Pass; BATCH];
            for chunk in batch.chunks_mut(BATCH) {
                let k = chunk.len();
                {
                    let mut fbs: Vec<FrameBuf<'_>> = chunk
                        .iter_mut()
                        .map(|(b, off, len)| FrameBuf {
                            buf: b.as_mut_slice(),
                            offset: *off,
                            len: *len,
                        })
                        .collect();
                    lb.process_batch(now_core, &metas[..k], &mut fbs, &mut actions[..k]);
                }
                for ((b, _, _), a) in chunk.iter().zip(&actions[..k]) {
                    self.act(now, i, *a, b);
                }
                self.apply_offload(lb, now_core, Some(i), now);
            }
            for (b, _, _) in batch {
                self.spare.push(b);
            }
        }
        self.retry_pending(now);
        self.flush();
        Ok(received)
    }

    /// Packets of firewall-mark services, with their mark, from NFQUEUE. The verdict tells
    /// the kernel whether rvsd took the packet (drop the kernel's copy) or not (accept).
    fn poll_queue(
        &mut self,
        lb: &mut Balancer,
        now_core: rvs_core::time::Instant,
        now: Instant,
    ) -> std::io::Result<usize> {
        let Some(mut q) = self.nfq.take() else {
            return Ok(0);
        };
        let r = q.recv_batch(Duration::ZERO, |pkt| {
            self.handle_queued(lb, now_core, now, &pkt)
        });
        self.nfq = Some(q);
        r
    }

    fn handle_queued(
        &mut self,
        lb: &mut Balancer,
        now_core: rvs_core::time::Instant,
        now: Instant,
        pkt: &QueuedPacket<'_>,
    ) -> Verdict {
        self.queued += 1;
        if pkt.truncated() || pkt.payload.is_empty() {
            return Verdict::Accept;
        }
        // a synthetic Ethernet header in front of the IP packet; the MACs are set on output
        let ethertype: u16 = if pkt.payload[0] >> 4 == 6 {
            0x86DD
        } else {
            0x0800
        };
        let mut rx = std::mem::take(&mut self.rxbuf);
        rx.clear();
        rx.resize(rvs_io::packet::HEADROOM, 0);
        rx.extend_from_slice(&[0u8; 12]);
        rx.extend_from_slice(&ethertype.to_be_bytes());
        rx.extend_from_slice(pkt.payload);
        let len = rx.len() - rvs_io::packet::HEADROOM;
        rx.resize(rx.len() + TAILROOM, 0);
        let mut fb = FrameBuf {
            buf: &mut rx,
            offset: rvs_io::packet::HEADROOM,
            len,
        };
        let meta = RxMeta {
            fwmark: pkt.mark,
            marks_unknown: false,
        };
        let verdict = match lb.process(now_core, meta, &mut fb) {
            Action::Forward(e) | Action::Reply(e) => {
                if let Some(hop) = self.hop(e.next_hop, now) {
                    let mut b = self.take_buf();
                    b.clear();
                    b.extend_from_slice(&rx[e.offset..e.offset + e.len]);
                    self.emit(now, hop, b);
                } else {
                    self.counters.no_route += 1;
                }
                Verdict::Drop
            }
            Action::Pass => Verdict::Accept,
            Action::Drop(_) => Verdict::Drop,
        };
        self.rxbuf = rx;
        verdict
    }

    /// Carry out the core's decision about one frame held in `buf`.
    fn act(&mut self, now: Instant, ingress: usize, action: Action, buf: &[u8]) {
        match action {
            Action::Forward(e) => match self.hop(e.next_hop, now) {
                Some(hop) => {
                    let mut b = self.take_buf();
                    b.clear();
                    b.extend_from_slice(&buf[e.offset..e.offset + e.len]);
                    self.emit(now, hop, b);
                }
                None => {
                    if route_get(e.next_hop).is_ok() {
                        self.counters.not_served += 1;
                    } else {
                        self.counters.no_route += 1;
                    }
                }
            },
            Action::Reply(e) => {
                // back out of the interface it came in on; the core swapped the MACs
                let mut b = self.take_buf();
                b.clear();
                b.extend_from_slice(&buf[e.offset..e.offset + e.len]);
                if b.len() >= 12 {
                    b[6..12].copy_from_slice(&self.meta[ingress].mac.0);
                }
                self.out.push(OutFrame {
                    iface: ingress,
                    bytes: b,
                });
            }
            Action::Pass | Action::Drop(_) => {}
        }
    }

    /// Address the frame to the next hop's MAC, or park it until that is known.
    fn emit(&mut self, now: Instant, hop: Hop, mut bytes: Vec<u8>) {
        match self.neigh.get(now, hop.ifindex, hop.next_hop) {
            Some(mac) => {
                if bytes.len() >= 12 {
                    bytes[..6].copy_from_slice(&mac.0);
                    bytes[6..12].copy_from_slice(&self.meta[hop.iface].mac.0);
                }
                self.out.push(OutFrame {
                    iface: hop.iface,
                    bytes,
                });
            }
            None => {
                let _ = self.neigh.resolve(now, hop.ifindex, hop.next_hop);
                if let Some(mac) = self.neigh.get(now, hop.ifindex, hop.next_hop) {
                    let _ = mac;
                    return self.emit(now, hop, bytes);
                }
                if self.pending.len() >= PENDING_MAX {
                    self.pending.pop_front();
                    self.counters.no_neighbour += 1;
                }
                self.pending.push_back(Pending {
                    since: now,
                    iface: hop.iface,
                    next_hop: hop.next_hop,
                    bytes,
                });
            }
        }
    }

    fn retry_pending(&mut self, now: Instant) {
        let n = self.pending.len();
        for _ in 0..n {
            let Some(p) = self.pending.pop_front() else {
                break;
            };
            let ifindex = self.meta[p.iface].ifindex;
            let mac = match self.neigh.get(now, ifindex, p.next_hop) {
                Some(m) => Some(m),
                None => self.neigh.resolve(now, ifindex, p.next_hop).ok().flatten(),
            };
            match mac {
                Some(_) => self.emit(
                    now,
                    Hop {
                        iface: p.iface,
                        ifindex,
                        next_hop: p.next_hop,
                    },
                    p.bytes,
                ),
                None if now.saturating_duration_since(p.since) > PENDING_TTL => {
                    self.counters.pending_expired += 1;
                    self.spare.push(p.bytes);
                }
                None => self.pending.push_back(p),
            }
        }
    }

    /// The backend of the first interface (they are all the same unless `auto` chose per
    /// interface).
    pub(crate) fn backend_name(&self) -> &'static str {
        self.socks.first().map_or("none", Port::name)
    }

    /// Whether frames wait for a neighbour (the loop then polls with a short timeout).
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    fn flush(&mut self) {
        if self.out.is_empty() {
            return;
        }
        let out = std::mem::take(&mut self.out);
        for (i, sock) in self.socks.iter_mut().enumerate() {
            let batch: Vec<&[u8]> = out
                .iter()
                .filter(|o| o.iface == i)
                .map(|o| o.bytes.as_slice())
                .collect();
            if batch.is_empty() {
                continue;
            }
            // A send stops at the first frame the kernel refuses: a full device queue
            // (ENOBUFS, transient) or a frame it cannot take. Retry from there; a frame
            // that fails twice in a row is counted as an error and skipped. Bounded.
            let mut pos = 0;
            let mut stalls = 0;
            let mut failed_at = usize::MAX;
            while pos < batch.len() && stalls < TX_RETRIES {
                match sock.send_batch(&batch[pos..]) {
                    Ok(n) if n > 0 => {
                        self.counters.tx += n as u64;
                        pos += n;
                    }
                    Ok(_) | Err(_) => {
                        stalls += 1;
                        if failed_at == pos {
                            self.counters.tx_errors += 1;
                            pos += 1;
                        } else {
                            failed_at = pos;
                            std::hint::spin_loop();
                        }
                    }
                }
            }
            if pos < batch.len() {
                self.counters.tx_errors += (batch.len() - pos) as u64;
                tracing::debug!(lost = batch.len() - pos, "send failed");
            }
        }
        for o in out {
            self.spare.push(o.bytes);
        }
        if self.spare.len() > 4096 {
            self.spare.truncate(4096);
        }
    }
}

/// Where the fast path sends packets for next hop `dst`: interface and both MAC addresses,
/// or None while the neighbour is unknown (its resolution is started).
fn fast_egress(
    routes: &mut HashMap<IpAddr, (Instant, Option<Hop>)>,
    meta: &[IfMeta],
    neigh: &mut NeighCache,
    dst: IpAddr,
    now: Instant,
) -> Option<crate::fastpath::Egress> {
    let hop = hop_in(routes, meta, dst, now)?;
    let Some(mac) = neigh.get(now, hop.ifindex, hop.next_hop) else {
        let _ = neigh.resolve(now, hop.ifindex, hop.next_hop);
        return None;
    };
    Some(crate::fastpath::Egress {
        ifindex: hop.ifindex,
        native: meta[hop.iface].xdp_native,
        src_mac: meta[hop.iface].mac,
        dst_mac: mac,
    })
}

/// Egress interface and next hop for `dst` through the route cache.
fn hop_in(
    routes: &mut HashMap<IpAddr, (Instant, Option<Hop>)>,
    meta: &[IfMeta],
    dst: IpAddr,
    now: Instant,
) -> Option<Hop> {
    if let Some((at, h)) = routes.get(&dst)
        && now.saturating_duration_since(*at) < ROUTE_TTL
    {
        return *h;
    }
    let h = match route_get(dst) {
        Ok(r) => hop_of(meta, &r, dst),
        Err(_) => None,
    };
    if routes.len() > 65_536 {
        routes.clear();
    }
    routes.insert(dst, (now, h));
    h
}

fn hop_of(meta: &[IfMeta], r: &Route, dst: IpAddr) -> Option<Hop> {
    if r.kind != RouteKind::Unicast {
        return None;
    }
    let iface = meta.iter().position(|m| m.ifindex == r.ifindex)?;
    Some(Hop {
        iface,
        ifindex: r.ifindex,
        next_hop: r.next_hop(dst),
    })
}

fn nft_proto(p: rvs_core::Protocol) -> Proto {
    match p {
        rvs_core::Protocol::Tcp => Proto::Tcp,
        rvs_core::Protocol::Udp => Proto::Udp,
        rvs_core::Protocol::Sctp => Proto::Sctp,
    }
}
