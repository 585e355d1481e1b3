//! The balancer: per-packet processing and control operations on the live tables.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rvs_sched::{DestState, Flow, SchedKind};

use crate::addr::{Addr16, from16, mask, to16, v4to16};
use crate::conn::{
    AF_DEST_V6, AF_V6, Conn, ConnTable, F_ASSURED, F_DEAD, F_FWMARK, F_INACTIVE, F_NOOUTPUT, F_OFF,
    F_OFF_GRACE, F_OFF_IN, F_OFF_OUT, F_ONE_PACKET, F_OUT_HASHED, F_TEMPLATE, InKey, NONE, OutKey,
    Slot,
};
use crate::hash::FastMap;
use crate::offload::{
    ConnId, FlowMatch, OFFLOAD_GRACE, OffloadDir, OffloadEvent, OffloadFlow, OffloadRewrite,
};
use crate::packet::{ParseOutcome, Parsed, parse_into};
use crate::proto::{
    Direction, SctpState, TcpState, Timeouts, sctp_chunk, sctp_transition, tcp_transition,
};
use crate::service::{
    ControlError, DestConfig, ForwardMethod, ServiceConfig, ServiceKey, Services, overload_on_bind,
    overload_on_unbind,
};
use crate::stats::{Estimator, Stats};
use crate::time::{Duration, Instant};

/// Tunables of the core. Every field has the IPVS default unless noted.
#[derive(Clone, Debug)]
pub struct Config {
    /// Maximum tracked entries (connections + templates). Default 1,048,576.
    pub capacity: usize,
    /// Seed of the connection-table hash (take it from the OS RNG). Default fixed.
    pub hash_seed: u64,
    /// `size=` shown by listings: `2^conn_tab_bits` (IPVS default 12 → 4096).
    pub conn_tab_bits: u8,
    /// Link MTU toward real servers, bytes (default 1500).
    pub mtu: u16,
    /// `expire_nodest_conn` (default off).
    pub expire_nodest_conn: bool,
    /// `expire_quiescent_template` (default off).
    pub expire_quiescent_template: bool,
    /// `conn_reuse_mode` (default 1).
    pub conn_reuse_mode: u8,
    /// `sloppy_tcp`: any non-RST segment may create a connection (default off).
    pub sloppy_tcp: bool,
    /// `sloppy_sctp`: any chunk may create an association (default off).
    pub sloppy_sctp: bool,
    /// `secure_tcp` state tables (default off).
    pub secure_tcp: bool,
    /// `pmtu_disc` (default on): copy DF into tunnel headers, send frag-needed.
    pub pmtu_disc: bool,
    /// `nat_icmp_send`: answer stray NAT real-server packets with port unreachable.
    pub nat_icmp_send: bool,
    /// Source address of IPv4 tunnel headers (the director's address toward the RS).
    pub tunnel_src_v4: Option<Ipv4Addr>,
    /// Source address of IPv6 tunnel headers.
    pub tunnel_src_v6: Option<Ipv6Addr>,
    /// Flow offload ([`crate::offload`]): offer a connection's flows only once it has
    /// received this many packets from its client (default 1: as soon as it qualifies).
    /// Higher values keep short connections, which would gain little, out of the outside
    /// table.
    pub offload_after: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            capacity: 1 << 20,
            hash_seed: 0x243F_6A88_85A3_08D3,
            conn_tab_bits: 12,
            mtu: 1500,
            expire_nodest_conn: false,
            expire_quiescent_template: false,
            conn_reuse_mode: 1,
            sloppy_tcp: false,
            sloppy_sctp: false,
            secure_tcp: false,
            pmtu_disc: true,
            nat_icmp_send: false,
            tunnel_src_v4: None,
            tunnel_src_v6: None,
            offload_after: 1,
        }
    }
}

/// Why a packet was dropped. Indexes [`Counters::drops`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum DropReason {
    /// Truncated or inconsistent headers.
    Malformed = 0,
    /// Bad IPv4 header checksum.
    BadChecksum,
    /// A fragment addressed to a virtual service (rvs does not reassemble).
    Fragment,
    /// A packet for a service that can neither use nor create a connection (TCP non-SYN).
    NoConnection,
    /// The scheduler found no destination (an ICMP unreachable was sent when possible).
    NoDestination,
    /// The connection's destination was deleted (`expire_nodest_conn=0`).
    DestUnavailable,
    /// The connection table is full and nothing could be evicted.
    TableFull,
    /// TTL or hop limit exhausted.
    TtlExceeded,
    /// Too big for the path and DF set (frag-needed sent) or not fragmentable.
    TooBig,
    /// Not enough headroom in the buffer to add a tunnel header.
    NoHeadroom,
    /// Tunnel source address not configured.
    NoTunnelSource,
    /// A feature not supported on this path (e.g. NAT of a protocol without checksum support).
    Unsupported,
    /// ICMP error that matched nothing or could not be rewritten.
    IcmpUnmatched,
}

impl DropReason {
    /// Number of reasons.
    pub const COUNT: usize = 13;
    /// All reasons, in index order.
    pub const ALL: [Self; Self::COUNT] = [
        Self::Malformed,
        Self::BadChecksum,
        Self::Fragment,
        Self::NoConnection,
        Self::NoDestination,
        Self::DestUnavailable,
        Self::TableFull,
        Self::TtlExceeded,
        Self::TooBig,
        Self::NoHeadroom,
        Self::NoTunnelSource,
        Self::Unsupported,
        Self::IcmpUnmatched,
    ];

    /// Stable snake_case name (metrics label).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::BadChecksum => "bad_checksum",
            Self::Fragment => "fragment",
            Self::NoConnection => "no_connection",
            Self::NoDestination => "no_destination",
            Self::DestUnavailable => "dest_unavailable",
            Self::TableFull => "table_full",
            Self::TtlExceeded => "ttl_exceeded",
            Self::TooBig => "too_big",
            Self::NoHeadroom => "no_headroom",
            Self::NoTunnelSource => "no_tunnel_source",
            Self::Unsupported => "unsupported",
            Self::IcmpUnmatched => "icmp_unmatched",
        }
    }
}

/// Data-path counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Drops by [`DropReason`] index.
    pub drops: [u64; DropReason::COUNT],
    /// Frames forwarded toward a real server or a client.
    pub forwarded: u64,
    /// Frames handed to the host stack.
    pub passed: u64,
    /// ICMP errors generated.
    pub icmp_sent: u64,
    /// Connections (not templates) created.
    pub conns_created: u64,
    /// Entries expired by their timer.
    pub conns_expired: u64,
    /// Half-open entries evicted to admit new ones.
    pub conns_evicted: u64,
}

/// A frame inside a caller-owned buffer, with headroom before `offset` for encapsulation.
#[derive(Debug)]
pub struct FrameBuf<'a> {
    /// The whole buffer.
    pub buf: &'a mut [u8],
    /// Start of the Ethernet header.
    pub offset: usize,
    /// Frame length.
    pub len: usize,
}

/// Per-frame metadata from the I/O layer.
#[derive(Clone, Copy, Debug, Default)]
pub struct RxMeta {
    /// Netfilter mark, when the I/O path can see one (0 = none).
    pub fwmark: u32,
    /// The I/O path cannot see netfilter marks (a packet socket before netfilter) while
    /// firewall-mark services exist: frames of their connections are then left to the host
    /// ([`Action::Pass`]), which marks them and hands them back with the mark.
    pub marks_unknown: bool,
}

/// Where to send a rewritten frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Egress {
    /// IP address of the next hop to resolve (the real server for DR/TUN/NAT, the client
    /// for NAT replies and generated ICMP).
    pub next_hop: IpAddr,
    /// Start of the frame in the buffer (moves back when a tunnel header is added).
    pub offset: usize,
    /// Frame length.
    pub len: usize,
}

/// What to do with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Not ours: hand it to the host stack unchanged.
    Pass,
    /// Drop it (counted).
    Drop(DropReason),
    /// Send the rewritten frame. Ethernet addresses are the caller's to fill.
    Forward(Egress),
    /// The frame was replaced by an ICMP error for its sender; send that instead.
    Reply(Egress),
}

/// See the crate documentation.
pub struct Balancer {
    pub(crate) cfg: Config,
    pub(crate) services: Services,
    pub(crate) conns: ConnTable,
    pub(crate) timeouts: Timeouts,
    pub(crate) counters: Counters,
    pub(crate) total: Stats,
    pub(crate) total_est: Estimator,
    /// VIPs of address services (and how many services use each) for fragment and ICMP checks.
    pub(crate) vips: FastMap<(bool, Addr16), u32>,
    pub(crate) ip_ident: u16,
    /// Reusable buffer for generated ICMP messages.
    pub(crate) scratch: Vec<u8>,
    /// ICMP errors generated in the current second (rate limit).
    pub(crate) icmp_budget: (u64, u32),
    /// Time of the packet being processed.
    pub(crate) last_now: Instant,
    next_est: Instant,
    next_sched_gc: Instant,
    expired_buf: Vec<u32>,
    /// Reused buffer of (deadline, template, slot) for [`Balancer::handle_timeout`].
    expired_order: Vec<(u64, bool, u32)>,
    /// Reused per-group state of [`Balancer::process_batch`].
    batch_scratch: Vec<Prepared>,
    /// Flow offload on ([`Balancer::set_offload`]).
    offload: bool,
    /// Offload events not yet taken by the caller.
    offload_events: Vec<OffloadEvent>,
    /// Entries with a flow offloaded.
    offloaded: usize,
}

const TEMPLATE_REARM: Duration = Duration::from_secs(60);
const INITIAL_TIMEOUT: Duration = Duration::from_secs(3);

impl Balancer {
    /// A balancer with no services.
    pub fn new(cfg: Config, now: Instant) -> Self {
        let conns = ConnTable::new(cfg.capacity, cfg.hash_seed, now);
        let mut services = Services::default();
        services.sched_seed = cfg.hash_seed;
        Self {
            cfg,
            services,
            conns,
            timeouts: Timeouts::default(),
            counters: Counters::default(),
            total: Stats::default(),
            total_est: Estimator::new(now),
            vips: FastMap::default(),
            ip_ident: 1,
            scratch: Vec::with_capacity(1600),
            icmp_budget: (0, 0),
            last_now: now,
            next_est: now + Duration::from_millis(crate::stats::ESTIMATOR_PERIOD_MS),
            next_sched_gc: now + Duration::from_secs(60),
            expired_buf: Vec::new(),
            expired_order: Vec::new(),
            batch_scratch: Vec::with_capacity(BATCH),
            offload: false,
            offload_events: Vec::new(),
            offloaded: 0,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Change the sysctl-like tunables (capacity and hash seed are fixed at creation).
    pub fn set_config(&mut self, mut cfg: Config) {
        cfg.capacity = self.cfg.capacity;
        cfg.hash_seed = self.cfg.hash_seed;
        let old = &self.cfg;
        if old.mtu != cfg.mtu
            || old.pmtu_disc != cfg.pmtu_disc
            || old.tunnel_src_v4 != cfg.tunnel_src_v4
            || old.tunnel_src_v6 != cfg.tunnel_src_v6
        {
            self.unoffload_where(|_| true);
        }
        self.cfg = cfg;
    }

    /// Pre-size the connection indexes for `n` entries.
    pub fn reserve_connections(&mut self, n: usize) {
        self.conns.reserve(n);
    }

    /// Data-path counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Global traffic counters (`/proc/net/ip_vs_stats`).
    pub fn total_stats(&self) -> (Stats, crate::stats::Rates) {
        (self.total, self.total_est.rates())
    }

    /// Live entries (connections and templates) and the capacity.
    pub fn connection_count(&self) -> (usize, usize) {
        (self.conns.len(), self.conns.capacity())
    }

    /// Approximate heap bytes of the connection table.
    pub fn connection_table_bytes(&self) -> usize {
        self.conns.heap_bytes()
    }

    // ------------------------------------------------------------------ control

    fn vip_ref(&mut self, key: &ServiceKey, add: bool) {
        if let ServiceKey::Addr { addr, .. } = key {
            let k = (addr.is_ipv6(), to16(addr));
            if add {
                *self.vips.entry(k).or_insert(0) += 1;
            } else if let Some(n) = self.vips.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    self.vips.remove(&k);
                }
            }
        }
    }

    /// `-A`: add a virtual service.
    pub fn add_service(&mut self, cfg: ServiceConfig, now: Instant) -> Result<(), ControlError> {
        let key = cfg.key;
        self.services.add_service(cfg, now)?;
        self.vip_ref(&key, true);
        Ok(())
    }

    /// `-E`: replace a service's scheduler, flags and persistence (destinations and
    /// connections stay).
    pub fn edit_service(&mut self, cfg: ServiceConfig) -> Result<(), ControlError> {
        self.services.edit_service(cfg).map(|_| ())
    }

    /// `-D`: delete a service; its destinations are unlinked (connections to them follow
    /// `expire_nodest_conn`).
    pub fn del_service(&mut self, key: &ServiceKey, now: Instant) -> Result<(), ControlError> {
        let ids = self.services.del_service(key, now)?;
        self.vip_ref(key, false);
        self.unoffload_where(|c| ids.contains(&c.dest));
        if self.cfg.expire_nodest_conn {
            self.sweep_dests(&ids);
        }
        Ok(())
    }

    /// `-C`: delete every service.
    pub fn flush(&mut self, now: Instant) {
        let keys: Vec<ServiceKey> = self
            .services
            .service_ids()
            .map(|id| self.services.svc(id).cfg.key)
            .collect();
        for k in keys {
            let _ = self.del_service(&k, now);
        }
    }

    /// `-a`: add a destination.
    pub fn add_dest(&mut self, key: &ServiceKey, cfg: DestConfig) -> Result<(), ControlError> {
        self.services.add_dest(key, cfg).map(|_| ())
    }

    /// `-e`: replace a destination's settings (weight 0 quiesces).
    pub fn edit_dest(&mut self, key: &ServiceKey, cfg: DestConfig) -> Result<(), ControlError> {
        let (id, forwarding) = self.services.edit_dest(key, cfg)?;
        if forwarding {
            self.unoffload_where(|c| c.dest == id);
        }
        Ok(())
    }

    /// `-d`: delete a destination.
    pub fn del_dest(
        &mut self,
        key: &ServiceKey,
        addr: &IpAddr,
        port: u16,
        now: Instant,
    ) -> Result<(), ControlError> {
        let id = self.services.del_dest(key, addr, port, now)?;
        self.unoffload_where(|c| c.dest == id);
        if self.cfg.expire_nodest_conn {
            self.sweep_dests(&[id]);
        }
        Ok(())
    }

    /// Expire at once every entry bound to the given (unlinked) destinations (kernel ≥ 5.9
    /// behaviour with `expire_nodest_conn=1`).
    fn sweep_dests(&mut self, ids: &[u32]) {
        let victims: Vec<u32> = self
            .conns
            .iter()
            .filter(|(_, c)| ids.contains(&c.dest))
            .map(|(i, _)| i)
            .collect();
        // controlled connections first, then templates (which no longer control anything)
        for &i in &victims {
            if self.conns.resolve(self.conns.slot_of(i)).is_some()
                && !self.conns.get(i).is_template()
            {
                self.release(i);
            }
        }
        for &i in &victims {
            if self.conns.get(i).is_live() && self.conns.get(i).is_template() {
                self.release(i);
            }
        }
    }

    /// `--set tcp tcpfin udp` (seconds, 0 keeps).
    pub fn set_timeouts(&mut self, tcp: u32, tcp_fin: u32, udp: u32) {
        self.timeouts.set(tcp, tcp_fin, udp);
    }

    /// `(tcp, tcpfin, udp)` timeouts in seconds.
    pub fn timeouts(&self) -> (u32, u32, u32) {
        self.timeouts.get()
    }

    /// `-Z`: zero counters and rates of one service (with its destinations), or of
    /// everything including the global totals.
    pub fn zero(&mut self, key: Option<&ServiceKey>) -> Result<(), ControlError> {
        let ids: Vec<u32> = match key {
            Some(k) => vec![self.services.find(k).ok_or(ControlError::NoSuchService)?],
            None => {
                self.total = Stats::default();
                self.total_est.zero(&self.total);
                self.services.service_ids().collect()
            }
        };
        for sid in ids {
            let svc = self.services.svc_mut(sid);
            svc.stats = Stats::default();
            svc.est.zero(&svc.stats);
            let dids: Vec<u32> = svc.dests.iter().map(|d| d.id.0).collect();
            for d in dids {
                let r = self.services.dest_mut(d);
                r.stats = Stats::default();
                r.est.zero(&r.stats);
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------------ timers

    /// When [`Balancer::handle_timeout`] must next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.next_est.min(self.next_sched_gc);
        if let Some(c) = self.conns.next_deadline() {
            t = t.min(c);
        }
        Some(t)
    }

    /// Expire connections, fold rate estimators, run scheduler housekeeping.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut expired = core::mem::take(&mut self.expired_buf);
        expired.clear();
        self.conns.collect_expired(now, &mut expired);
        // Process in deadline order so a template re-armed while it still controlled
        // connections sees them end at their own deadlines, as the kernel's timers would.
        // One sort of what expired, plus a heap for templates re-armed into this same call
        // (rare: the clock jumped past their new deadline too); taking the smaller head of
        // the two each time gives the order a single heap of everything would (the keys are
        // distinct), at a fraction of the cost of heap pops over the whole set.
        let mut order = core::mem::take(&mut self.expired_order);
        order.clear();
        order.extend(expired.iter().map(|&i| {
            let c = self.conns.get(i);
            (c.expires_ms, c.is_template(), i)
        }));
        order.sort_unstable();
        let mut rearmed = std::collections::BinaryHeap::new();
        let mut sorted = order.iter().copied().peekable();
        loop {
            let next = match (sorted.peek(), rearmed.peek()) {
                (Some(a), Some(core::cmp::Reverse(b))) if b < a => rearmed.pop().map(|r| r.0),
                (Some(_), _) => sorted.next(),
                (None, _) => rearmed.pop().map(|r| r.0),
            };
            let Some((at, _, idx)) = next else { break };
            let c = self.conns.get(idx);
            if !c.is_live() || c.expires_ms != at {
                continue;
            }
            if c.is_template() && c.n_controlled() > 0 {
                let next = at + TEMPLATE_REARM.millis();
                if next <= now.millis() {
                    self.conns.get_mut(idx).expires_ms = next;
                    rearmed.push(core::cmp::Reverse((next, true, idx)));
                } else {
                    self.conns.set_expires(idx, next);
                }
                continue;
            }
            if c.flags & F_OFF != 0 && c.flags & F_OFF_GRACE == 0 {
                // offloaded: its packets may not have been reported yet
                self.conns.get_mut(idx).flags |= F_OFF_GRACE;
                let next = at + OFFLOAD_GRACE.millis();
                if next <= now.millis() {
                    self.conns.get_mut(idx).expires_ms = next;
                    rearmed.push(core::cmp::Reverse((next, false, idx)));
                } else {
                    self.conns.set_expires(idx, next);
                }
                continue;
            }
            self.counters.conns_expired += 1;
            self.release(idx);
        }
        self.expired_order = order;
        self.expired_buf = expired;
        if now >= self.next_est {
            self.run_estimators(now);
            self.next_est = now + Duration::from_millis(crate::stats::ESTIMATOR_PERIOD_MS);
        }
        if now >= self.next_sched_gc {
            let ids: Vec<u32> = self.services.service_ids().collect();
            for sid in ids {
                let svc = self.services.svc_mut(sid);
                if matches!(svc.cfg.scheduler, SchedKind::Lblc | SchedKind::Lblcr) {
                    svc.sched.handle_timeout(&svc.dests, now.millis());
                }
            }
            self.next_sched_gc = now + Duration::from_secs(60);
        }
    }

    fn run_estimators(&mut self, now: Instant) {
        self.total_est.tick(&self.total, now);
        let ids: Vec<u32> = self.services.service_ids().collect();
        for sid in ids {
            let svc = self.services.svc_mut(sid);
            svc.est.tick(&svc.stats, now);
            let dids: Vec<u32> = svc.dests.iter().map(|d| d.id.0).collect();
            for d in dids {
                let r = self.services.dest_mut(d);
                r.est.tick(&r.stats, now);
            }
        }
    }

    /// Timer expiry of one entry: templates still controlling connections re-arm for 60 s.
    fn expire(&mut self, idx: u32, now: Instant) {
        let c = self.conns.get(idx);
        if c.is_template() && c.n_controlled() > 0 {
            let exp = (now + TEMPLATE_REARM).millis();
            self.conns.set_expires(idx, exp);
            return;
        }
        self.counters.conns_expired += 1;
        self.release(idx);
    }

    /// Unlink an entry and release what it holds (destination counters, controller).
    pub(crate) fn release(&mut self, idx: u32) {
        self.unoffload(idx);
        let c = self.conns.remove(idx);
        self.unbind_dest(&c);
        if let Some(t) = c.controller_slot().and_then(|s| self.conns.resolve(s)) {
            self.conns.get_mut(t).count_controlled(false);
        }
    }

    fn unbind_dest(&mut self, c: &Conn) {
        if c.dest == NONE {
            return;
        }
        let (u, l) = {
            let d = self.services.dest(c.dest);
            (d.cfg.u_threshold, d.cfg.l_threshold)
        };
        if c.is_template() {
            let d = self.services.dest_mut(c.dest);
            d.persist = d.persist.saturating_sub(1);
        } else {
            let st = self.services.dest_state_mut(c.dest);
            if c.flags & F_INACTIVE != 0 {
                st.inactive = st.inactive.saturating_sub(1);
            } else {
                st.active = st.active.saturating_sub(1);
            }
            overload_on_unbind(st, u, l);
        }
        self.services.put_dest(c.dest);
    }

    fn bind_dest(&mut self, dest: u32, template: bool) {
        let u = self.services.dest(dest).cfg.u_threshold;
        if template {
            self.services.dest_mut(dest).persist += 1;
        } else {
            let st = self.services.dest_state_mut(dest);
            st.inactive += 1;
            overload_on_bind(st, u);
        }
        self.services.dest_mut(dest).refcnt += 1;
    }

    // ------------------------------------------------------------------ data path

    /// Process one received frame. See [`Action`].
    ///
    /// Same decisions and output bytes as one-frame [`Balancer::process_batch`] calls;
    /// prefer the batch form on a busy data path.
    pub fn process(&mut self, now: Instant, meta: RxMeta, f: &mut FrameBuf<'_>) -> Action {
        let mut prep = Prepared::EMPTY;
        prepare(f, &mut prep);
        self.hash_prepared(&mut prep);
        self.finish(now, meta, f, &prep)
    }

    /// Process received frames in order: `actions[i]` is what [`Balancer::process`] would
    /// have returned for `frames[i]` after the frames before it, and the frames are rewritten
    /// identically. `metas[i]` goes with `frames[i]`; frames beyond `metas` get
    /// [`RxMeta::default()`] (pass an empty slice when the I/O path has no metadata).
    ///
    /// Returns how many frames were processed: `min(frames.len(), actions.len())`.
    ///
    /// Internally the frames go through in groups of [`BATCH`]: every frame of a group is
    /// parsed and its connection-table hashes computed first, then the hash buckets and the
    /// entries the lookups will read are loaded for the whole group, and only then are the
    /// frames processed one by one. The loads of a group are independent, so their cache
    /// and TLB misses overlap instead of being paid one after another; with a table far
    /// larger than the caches this is most of the cost of forwarding a packet.
    pub fn process_batch(
        &mut self,
        now: Instant,
        metas: &[RxMeta],
        frames: &mut [FrameBuf<'_>],
        actions: &mut [Action],
    ) -> usize {
        let n = frames.len().min(actions.len());
        let mut preps = core::mem::take(&mut self.batch_scratch);
        preps.resize(BATCH, Prepared::EMPTY);
        for (g, (frames, actions)) in frames[..n]
            .chunks_mut(BATCH)
            .zip(actions[..n].chunks_mut(BATCH))
            .enumerate()
        {
            let preps = &mut preps[..frames.len()];
            touch_frames(frames);
            for (f, prep) in frames.iter().zip(preps.iter_mut()) {
                prepare(f, prep);
            }
            self.touch_tables(preps);
            for (i, ((f, a), prep)) in frames.iter_mut().zip(actions).zip(&*preps).enumerate() {
                let meta = metas.get(g * BATCH + i).copied().unwrap_or_default();
                *a = self.finish(now, meta, f, prep);
            }
        }
        self.batch_scratch = preps;
        n
    }

    /// The inbound-key hash of a prepared frame, when the frame will be looked up.
    ///
    /// A separate step from parsing: read right after the parser stored them, the key's
    /// small fields would be loaded in wider words than they were stored in, which the CPU
    /// cannot forward from its store buffer (a stall per packet). The batch path hashes a
    /// frame only after the whole group was parsed.
    #[inline(always)]
    fn hash_prepared(&self, prep: &mut Prepared) {
        if prep.verdict.is_none() && looked_up(&prep.parsed) {
            prep.h_in = Some(self.conns.hash_in(&in_key(&prep.parsed)));
        }
    }

    /// Hash a group of prepared frames and load what their lookups will read: the inbound
    /// buckets, then the entries those buckets point at, and for frames whose inbound
    /// bucket holds no candidate (replies from NAT real servers, new flows) the outbound
    /// bucket and entry when NAT entries exist. Only a hint: nothing is decided here, the
    /// lookups run again in order (a frame may create the entry a later frame finds).
    fn touch_tables(&self, preps: &mut [Prepared]) {
        // Each pass issues independent reads, so the misses of the whole group are in
        // flight together instead of one after another.
        let mut acc = 0u32;
        for prep in preps.iter_mut() {
            self.hash_prepared(prep);
            if let Some(h) = prep.h_in {
                acc ^= self.conns.touch_in(h);
            }
        }
        // Candidates first, in a pass of their own: the entry reads that follow are then a
        // tight loop, so more of them fit in the CPU's window at once.
        let nat = self.conns.has_outbound();
        for prep in preps.iter_mut() {
            let Some(h) = prep.h_in else {
                continue;
            };
            prep.cand_in = self.conns.candidate_in(h);
            if prep.cand_in.is_none() && nat {
                let h = self.conns.hash_out(&out_key(&prep.parsed));
                prep.h_out = Some(h);
                acc ^= self.conns.touch_out(h);
            }
        }
        for prep in preps.iter() {
            if let Some(idx) = prep.cand_in {
                acc ^= self.conns.touch_entry(idx);
            }
        }
        if nat {
            for prep in preps.iter() {
                if let Some(idx) = prep.h_out.and_then(|h| self.conns.candidate_out(h)) {
                    acc ^= self.conns.touch_entry(idx);
                }
            }
        }
        core::hint::black_box(acc);
    }

    /// Second stage: decide, rewrite and count.
    #[inline]
    fn finish(
        &mut self,
        now: Instant,
        meta: RxMeta,
        f: &mut FrameBuf<'_>,
        prep: &Prepared,
    ) -> Action {
        self.last_now = now;
        let action = self.process_prepared(now, meta, f, prep);
        match action {
            Action::Pass => self.counters.passed += 1,
            Action::Drop(r) => self.counters.drops[r as usize] += 1,
            Action::Forward(_) => self.counters.forwarded += 1,
            Action::Reply(_) => self.counters.icmp_sent += 1,
        }
        action
    }

    #[inline]
    fn process_prepared(
        &mut self,
        now: Instant,
        meta: RxMeta,
        f: &mut FrameBuf<'_>,
        prep: &Prepared,
    ) -> Action {
        if let Some(a) = prep.verdict {
            return a;
        }
        let p = &prep.parsed;
        if !self.services.ever_added {
            return Action::Pass;
        }
        match p.proto {
            6 | 17 | 132 => {}
            1 if !p.v6 => return self.handle_icmp(now, p, f),
            58 if p.v6 => return self.handle_icmp(now, p, f),
            _ => return Action::Pass,
        }
        if p.fragment || !p.has_l4 {
            if self.vips.contains_key(&(p.v6, p.dst)) {
                return Action::Drop(if p.fragment {
                    DropReason::Fragment
                } else {
                    DropReason::Malformed
                });
            }
            return Action::Pass;
        }
        let key = in_key(p);
        // The batch path already found the likely entry; an inbound key has at most one
        // live entry, so a candidate that matches is the lookup's answer.
        let hit = match prep
            .cand_in
            .filter(|&i| self.conns.is_live_match_in(i, &key))
        {
            Some(i) => {
                debug_assert_eq!(Some(i), self.conns.lookup_in(&key));
                Some(i)
            }
            None => {
                let h_in = prep.h_in.unwrap_or_else(|| self.conns.hash_in(&key));
                self.conns.lookup_in_hashed(&key, h_in)
            }
        };
        if let Some(idx) = hit {
            if meta.marks_unknown && self.conns.get(idx).flags & F_FWMARK != 0 {
                return Action::Pass;
            }
            match self.check_in_conn(now, idx, p) {
                InCheck::Use => return self.forward_in(now, idx, p, f),
                InCheck::Drop(r) => return Action::Drop(r),
                InCheck::Reschedule => {}
            }
        }
        if let Some(sid) = self.lookup_service(meta.fwmark, p) {
            return self.new_connection(now, sid, p, f);
        }
        let okey = out_key(p);
        let h_out = prep.h_out.unwrap_or_else(|| self.conns.hash_out(&okey));
        if let Some(idx) = self.conns.lookup_out_hashed(&okey, h_out) {
            if self.conns.get(idx).expires_ms <= now.millis() {
                self.expire(idx, now);
                return Action::Pass;
            }
            return self.forward_out(now, idx, p, f);
        }
        Action::Pass
    }

    /// Service for a packet: fwmark first, then exact address:port, then port 0.
    fn lookup_service(&self, mark: u32, p: &Parsed) -> Option<u32> {
        if mark != 0
            && let Some(&s) = self.services.by_mark.get(&(p.v6, mark))
        {
            return Some(s);
        }
        let by = &self.services.by_addr;
        by.get(&(p.v6, p.proto, p.dst, p.dport))
            .or_else(|| by.get(&(p.v6, p.proto, p.dst, 0)))
            .copied()
    }

    fn opens_connection(&self, p: &Parsed) -> bool {
        match p.proto {
            6 => {
                let syn = p.tcp_flags & 0x02 != 0;
                let rst = p.tcp_flags & 0x04 != 0;
                !rst && (syn || self.cfg.sloppy_tcp)
            }
            132 => p.sctp_chunk == sctp_chunk::INIT || self.cfg.sloppy_sctp,
            _ => true,
        }
    }

    /// Apply the expiry, reuse (5.9) and destination-availability (5.8) rules to an
    /// existing entry hit by an inbound packet.
    fn check_in_conn(&mut self, now: Instant, idx: u32, p: &Parsed) -> InCheck {
        let c = self.conns.get(idx);
        if c.expires_ms <= now.millis() {
            self.expire(idx, now);
            return InCheck::Reschedule;
        }
        let is_new = match p.proto {
            6 => p.tcp_flags & 0x02 != 0,
            132 => p.sctp_chunk == sctp_chunk::INIT,
            _ => false,
        };
        let dest_state = self.services.dest_state(c.dest);
        let available = dest_state.available;
        if self.cfg.conn_reuse_mode != 0 && is_new && available {
            let quiesced = self.cfg.expire_nodest_conn && dest_state.weight == 0;
            let expected = c.controller == NONE
                && match p.proto {
                    6 => {
                        let s = TcpState::from_index(c.state);
                        matches!(s, TcpState::TimeWait | TcpState::Close)
                            || (self.cfg.conn_reuse_mode & 2 != 0
                                && s == TcpState::FinWait
                                && c.flags & F_NOOUTPUT != 0)
                    }
                    132 => SctpState::from_index(c.state) == SctpState::Closed,
                    _ => false,
                };
            if (quiesced || expected) && c.n_controlled() == 0 {
                self.release(idx);
                return InCheck::Reschedule;
            }
        }
        if !available {
            if self.cfg.expire_nodest_conn {
                self.release(idx);
                return InCheck::Reschedule;
            }
            return InCheck::Drop(DropReason::DestUnavailable);
        }
        InCheck::Use
    }

    fn flow_of(p: &Parsed) -> Flow {
        Flow {
            proto: p.proto,
            src: from16(&p.src, p.v6),
            sport: p.sport,
            dst: from16(&p.dst, p.v6),
            dport: p.dport,
        }
    }

    fn pick(&mut self, sid: u32, p: &Parsed, now: Instant) -> Option<u32> {
        let flow = Self::flow_of(p);
        let svc = self.services.svc_mut(sid);
        let i = svc.sched.schedule(&svc.dests, &flow, now.millis())?;
        let d: &DestState = svc.dests.get(i)?;
        (d.weight > 0 && d.available).then_some(d.id.0)
    }

    fn new_connection(
        &mut self,
        now: Instant,
        sid: u32,
        p: &Parsed,
        f: &mut FrameBuf<'_>,
    ) -> Action {
        if !self.opens_connection(p) {
            return Action::Drop(DropReason::NoConnection);
        }
        let svc = self.services.svc(sid);
        let svc_port = match svc.cfg.key {
            ServiceKey::Addr { port, .. } => port,
            ServiceKey::Fwmark { .. } => 0,
        };
        let persistent = svc.cfg.persistence.is_some();
        let one_packet = svc.cfg.one_packet;
        if !persistent && svc_port == 0 && matches!(svc.cfg.key, ServiceKey::Addr { .. }) {
            // "port zero only supported in persistent services"
            return Action::Drop(DropReason::NoConnection);
        }
        let (dest, template) = if persistent {
            match self.persist_pick(now, sid, p, svc_port) {
                Ok(x) => x,
                Err(Action::Drop(DropReason::NoDestination)) => return self.no_destination(p, f),
                Err(a) => return a,
            }
        } else {
            match self.pick(sid, p, now) {
                Some(d) => (d, None),
                None => return self.no_destination(p, f),
            }
        };
        let d = self.services.dest(dest);
        let method = d.cfg.method;
        let dport = if d.cfg.port != 0 && (!persistent || p.dport == svc_port) {
            d.cfg.port
        } else {
            p.dport
        };
        let daddr = d.addr16;
        let dest_v6 = d.cfg.addr.is_ipv6();
        let mut flags = F_INACTIVE | F_NOOUTPUT;
        if matches!(self.services.svc(sid).cfg.key, ServiceKey::Fwmark { .. }) {
            flags |= F_FWMARK;
        }
        if method == ForwardMethod::Masq {
            flags |= F_OUT_HASHED;
        }
        if one_packet {
            flags |= F_ONE_PACKET;
            flags &= !F_OUT_HASHED;
        }
        if !one_packet {
            match self.conns.make_room() {
                Ok(None) => {}
                Ok(Some(victim)) => {
                    self.counters.conns_evicted += 1;
                    self.release(victim);
                }
                Err(_) => return Action::Drop(DropReason::TableFull),
            }
        }
        let (controller, controller_gen) = match template {
            Some(s) => (s.idx, s.generation),
            None => (NONE, 0),
        };
        let c = Conn {
            caddr: p.src,
            vaddr: p.dst,
            daddr,
            cport: p.sport,
            vport: p.dport,
            dport,
            proto: p.proto,
            af: (u8::from(p.v6) * AF_V6) | (u8::from(dest_v6) * AF_DEST_V6),
            state: 0,
            method: method as u8,
            flags,
            dest,
            controller,
            link: controller_gen,
            in_pkts: 0,
            expires_ms: (now + INITIAL_TIMEOUT).millis(),
            wheel_sec: u64::MAX,
            generation: 0,
        };
        self.bind_dest(dest, false);
        if let Some(t) = template {
            self.conns.get_mut(t.idx).count_controlled(true);
        }
        // connection statistics (templates are not counted)
        self.total.conns += 1;
        self.services.dest_mut(dest).stats.conns += 1;
        self.services.svc_mut(sid).stats.conns += 1;
        self.counters.conns_created += 1;
        if one_packet {
            // scheduled, forwarded and forgotten (spec 5.10)
            let action = self.forward_transient(now, c, p, f);
            return action;
        }
        let idx = self.conns.insert(c);
        self.forward_in(now, idx, p, f)
    }

    /// Forward a one-packet-scheduling datagram without keeping an entry.
    fn forward_transient(
        &mut self,
        now: Instant,
        c: Conn,
        p: &Parsed,
        f: &mut FrameBuf<'_>,
    ) -> Action {
        let idx = self.conns.insert(c);
        let a = self.forward_in(now, idx, p, f);
        if self.conns.get(idx).is_live() {
            self.release(idx);
        }
        a
    }

    /// Persistence (5.7): find or create the template, returning the destination and the
    /// template slot.
    fn persist_pick(
        &mut self,
        now: Instant,
        sid: u32,
        p: &Parsed,
        svc_port: u16,
    ) -> Result<(u32, Option<Slot>), Action> {
        let svc = self.services.svc(sid);
        let pers = svc.cfg.persistence.unwrap_or_default();
        let masked = mask(&p.src, p.v6, pers.v4_mask, pers.v6_prefix);
        let (proto, vaddr, vport) = match svc.cfg.key {
            ServiceKey::Fwmark { mark, .. } => (0u8, v4to16(mark.to_be_bytes()), 0u16),
            ServiceKey::Addr { .. } => {
                let vport = if p.dport == svc_port { svc_port } else { 0 };
                (p.proto, p.dst, vport)
            }
        };
        let tkey = InKey {
            af: u8::from(p.v6),
            proto,
            caddr: masked,
            cport: 0,
            vaddr,
            vport,
            template: true,
        };
        let timeout = Duration::from_secs(u64::from(pers.timeout_secs));
        if let Some(t) = self.conns.lookup_in(&tkey) {
            let tc = self.conns.get(t);
            let expired = tc.expires_ms <= now.millis() && tc.n_controlled() == 0;
            let st = self.services.dest_state(tc.dest);
            let valid =
                !expired && st.available && !(self.cfg.expire_quiescent_template && st.weight == 0);
            if valid {
                let dest = tc.dest;
                self.conns.set_expires(t, (now + timeout).millis());
                return Ok((dest, Some(self.conns.slot_of(t))));
            }
            if expired {
                self.release(t);
            } else {
                // neutralise: never matches again, expires on its own
                let old = InKey::of(self.conns.get(t));
                let tcm = self.conns.get_mut(t);
                tcm.flags |= F_DEAD;
                tcm.vport = 0xffff;
                tcm.dport = 0xffff;
                self.conns.rehash_in(t, &old);
            }
        }
        let Some(dest) = self.pick(sid, p, now) else {
            return Err(Action::Drop(DropReason::NoDestination));
        };
        match self.conns.make_room() {
            Ok(None) => {}
            Ok(Some(victim)) => {
                self.counters.conns_evicted += 1;
                self.release(victim);
            }
            Err(_) => return Err(Action::Drop(DropReason::TableFull)),
        }
        let d = self.services.dest(dest);
        let dport = if vport == 0 { 0 } else { d.cfg.port };
        let t = Conn {
            caddr: masked,
            vaddr,
            daddr: d.addr16,
            cport: 0,
            vport,
            dport,
            proto,
            af: (u8::from(p.v6) * AF_V6) | (u8::from(d.cfg.addr.is_ipv6()) * AF_DEST_V6),
            method: d.cfg.method as u8,
            flags: F_TEMPLATE,
            dest,
            controller: NONE,
            expires_ms: (now + timeout).millis(),
            wheel_sec: u64::MAX,
            ..Conn::default()
        };
        self.bind_dest(dest, true);
        let idx = self.conns.insert(t);
        Ok((dest, Some(self.conns.slot_of(idx))))
    }

    /// No destination (5.11): ICMP port unreachable to the client, then drop.
    fn no_destination(&mut self, p: &Parsed, f: &mut FrameBuf<'_>) -> Action {
        match crate::icmp::unreachable(self, p, f) {
            Some(e) => Action::Reply(e),
            None => Action::Drop(DropReason::NoDestination),
        }
    }

    /// Count one packet of `ip_len` bytes for a destination, its service and the totals
    /// (spec 3.8: relayed ICMP errors count too).
    fn account(&mut self, dest: u32, ip_len: usize, outbound: bool) {
        self.account_n(dest, 1, ip_len as u64, outbound);
    }

    /// Count `packets` packets of `bytes` IP bytes in all for a destination, its service
    /// and the totals.
    fn account_n(&mut self, dest: u32, packets: u64, bytes: u64, outbound: bool) {
        let bump = |st: &mut Stats| {
            if outbound {
                st.outpkts += packets;
                st.outbytes += bytes;
            } else {
                st.inpkts += packets;
                st.inbytes += bytes;
            }
        };
        bump(&mut self.total);
        let Some(d) = self
            .services
            .dests
            .get_mut(dest as usize)
            .and_then(Option::as_mut)
        else {
            return;
        };
        bump(&mut d.stats);
        if d.svc_alive {
            let sid = d.svc as usize;
            if let Some(Some(s)) = self.services.svcs.get_mut(sid) {
                bump(&mut s.stats);
            }
        }
    }

    /// Account an inbound packet, advance the state machine and transmit it.
    fn forward_in(&mut self, now: Instant, idx: u32, p: &Parsed, f: &mut FrameBuf<'_>) -> Action {
        self.account(self.conns.get(idx).dest, p.ip_len, false);
        self.advance_state(now, idx, p, false);
        let c = self.conns.get_mut(idx);
        c.in_pkts = c.in_pkts.wrapping_add(1);
        let a = crate::xmit::transmit_in(self, idx, p, f);
        if self.offload && matches!(a, Action::Forward(_)) {
            self.offer_offload(idx, OffloadDir::In, p);
        }
        a
    }

    /// NAT reply from a real server: account, advance state, SNAT and send to the client.
    fn forward_out(&mut self, now: Instant, idx: u32, p: &Parsed, f: &mut FrameBuf<'_>) -> Action {
        self.account(self.conns.get(idx).dest, p.ip_len, true);
        self.advance_state(now, idx, p, true);
        let a = crate::xmit::transmit_out(self, idx, p, f);
        if self.offload && matches!(a, Action::Forward(_)) {
            self.offer_offload(idx, OffloadDir::Out, p);
        }
        a
    }

    /// Protocol state transition and timer re-arm (5.3, 5.4, 5.6).
    fn advance_state(&mut self, now: Instant, idx: u32, p: &Parsed, output: bool) {
        let secure = self.cfg.secure_tcp;
        let c = self.conns.get_mut(idx);
        if output && c.flags & F_NOOUTPUT != 0 {
            c.flags &= !F_NOOUTPUT;
        }
        let (old_active, new_active, half_open, established, timeout) = match c.proto {
            6 => {
                let cur = TcpState::from_index(c.state);
                let dir = if output {
                    Direction::Output
                } else if c.flags & F_NOOUTPUT != 0 {
                    Direction::InputOnly
                } else {
                    Direction::Input
                };
                let new = tcp_transition(cur, dir, p.tcp_flags, secure);
                c.state = new as u8;
                (
                    c.flags & F_INACTIVE == 0,
                    new.is_active(),
                    new.is_half_open() && new != cur,
                    new == TcpState::Established,
                    self.timeouts.tcp_state(new),
                )
            }
            132 => {
                let cur = SctpState::from_index(c.state);
                let new = sctp_transition(cur, !output, p.sctp_chunk);
                c.state = new as u8;
                (
                    c.flags & F_INACTIVE == 0,
                    new.is_active(),
                    new.is_half_open() && new != cur,
                    new == SctpState::Established,
                    new.default_timeout(),
                )
            }
            _ => (false, false, false, output, self.timeouts.udp),
        };
        let controller = c.controller_slot();
        let dest = c.dest;
        if old_active != new_active {
            let c = self.conns.get_mut(idx);
            if new_active {
                c.flags &= !F_INACTIVE;
            } else {
                c.flags |= F_INACTIVE;
            }
            let st = self.services.dest_state_mut(dest);
            if new_active {
                st.inactive = st.inactive.saturating_sub(1);
                st.active += 1;
            } else {
                st.active = st.active.saturating_sub(1);
                st.inactive += 1;
            }
        }
        if half_open {
            self.conns.note_half_open(idx);
        }
        if self.offloaded != 0 && self.conns.get(idx).flags & F_OFF != 0 && !self.offload_state(idx)
        {
            self.unoffload(idx);
        }
        if established && let Some(t) = controller.and_then(|s| self.conns.resolve(s)) {
            self.conns.get_mut(t).flags |= F_ASSURED;
        }
        self.conns.set_expires(idx, (now + timeout).millis());
    }

    // ------------------------------------------------------------------ offload

    /// Turn flow offload on or off (off by default). See [`crate::offload`]. Turning it off
    /// queues a [`OffloadEvent::Remove`] for every offloaded flow.
    pub fn set_offload(&mut self, on: bool) {
        if !on {
            self.unoffload_where(|_| true);
        }
        self.offload = on;
    }

    /// Move the pending offload events to the end of `out`.
    pub fn take_offload_events(&mut self, out: &mut Vec<OffloadEvent>) {
        out.append(&mut self.offload_events);
    }

    /// Connections with a flow offloaded.
    pub fn offloaded(&self) -> usize {
        self.offloaded
    }

    /// The caller could not install an [`OffloadEvent::Install`] (next hop not resolved
    /// yet, table full): the core offers the flow again on its next packet.
    pub fn offload_rejected(&mut self, conn: ConnId, dir: OffloadDir) {
        let Some(idx) = self.conns.resolve(conn.0) else {
            return;
        };
        let c = self.conns.get_mut(idx);
        let had = c.flags & F_OFF != 0;
        c.flags &= !dir_flag(dir);
        if had && c.flags & F_OFF == 0 {
            c.flags &= !F_OFF_GRACE;
            self.offloaded -= 1;
        }
    }

    /// The offloaded path forwarded `packets` packets of `bytes` IP bytes of this flow since
    /// the last report: count them and, while the flow is still offloaded, re-arm the
    /// connection's timer as those packets would have (its state is unchanged: only
    /// packets that do not change it are offloaded). False when the connection no longer
    /// exists (the counts are then lost with it).
    pub fn offload_seen(
        &mut self,
        now: Instant,
        conn: ConnId,
        dir: OffloadDir,
        packets: u64,
        bytes: u64,
    ) -> bool {
        let Some(idx) = self.conns.resolve(conn.0) else {
            return false;
        };
        if packets == 0 {
            return true;
        }
        let out = dir == OffloadDir::Out;
        let dest = self.conns.get(idx).dest;
        self.account_n(dest, packets, bytes, out);
        let c = self.conns.get_mut(idx);
        if !out {
            c.in_pkts = c.in_pkts.wrapping_add(packets as u32);
        }
        if c.flags & dir_flag(dir) != 0 {
            c.flags &= !F_OFF_GRACE;
            let timeout = match c.proto {
                6 => self.timeouts.tcp_state(TcpState::from_index(c.state)),
                _ => self.timeouts.udp,
            };
            self.conns.set_expires(idx, (now + timeout).millis());
        }
        true
    }

    /// Whether the entry's protocol state may be offloaded.
    fn offload_state(&self, idx: u32) -> bool {
        let c = self.conns.get(idx);
        match c.proto {
            17 => true,
            6 => TcpState::from_index(c.state) == TcpState::Established,
            _ => false,
        }
    }

    /// After forwarding a packet of entry `idx`: offer its flow when it qualifies.
    fn offer_offload(&mut self, idx: u32, dir: OffloadDir, p: &Parsed) {
        let c = self.conns.get(idx);
        if c.flags & dir_flag(dir) != 0
            || c.flags & (F_FWMARK | F_ONE_PACKET | F_TEMPLATE) != 0
            || p.l3 != 14
            || c.in_pkts < self.cfg.offload_after
            || !self.offload_state(idx)
        {
            return;
        }
        let v6 = c.is_v6();
        let dest_v6 = c.dest_v6();
        let caddr = from16(&c.caddr, v6);
        let vaddr = from16(&c.vaddr, v6);
        let daddr = from16(&c.daddr, dest_v6);
        let mtu = self.cfg.mtu;
        let (flow, rewrite, next_hop, max_len) = match (dir, ForwardMethod::from_u8(c.method)) {
            (OffloadDir::In, m) => {
                let flow = FlowMatch {
                    proto: c.proto,
                    src: caddr,
                    sport: c.cport,
                    dst: vaddr,
                    dport: c.vport,
                };
                let (rewrite, max_len) = match m {
                    ForwardMethod::DirectRoute => (OffloadRewrite::Route, mtu),
                    ForwardMethod::Masq => (
                        OffloadRewrite::Dnat {
                            addr: daddr,
                            port: c.dport,
                        },
                        mtu,
                    ),
                    ForwardMethod::Tunnel => {
                        if self.services.dest(c.dest).cfg.tunnel != crate::TunnelType::Ipip {
                            return;
                        }
                        let src = if dest_v6 {
                            self.cfg.tunnel_src_v6.map(IpAddr::V6)
                        } else {
                            self.cfg.tunnel_src_v4.map(IpAddr::V4)
                        };
                        let Some(src) = src else { return };
                        let overhead = if dest_v6 { 40 } else { 20 };
                        (
                            OffloadRewrite::Ipip {
                                src,
                                dst: daddr,
                                copy_df: self.cfg.pmtu_disc,
                            },
                            mtu.saturating_sub(overhead),
                        )
                    }
                    ForwardMethod::Local => return,
                };
                (flow, rewrite, daddr, max_len)
            }
            (OffloadDir::Out, ForwardMethod::Masq) => (
                FlowMatch {
                    proto: c.proto,
                    src: daddr,
                    sport: c.dport,
                    dst: caddr,
                    dport: c.cport,
                },
                OffloadRewrite::Snat {
                    addr: vaddr,
                    port: c.vport,
                },
                caddr,
                u16::MAX,
            ),
            (OffloadDir::Out, _) => return,
        };
        let conn = ConnId(self.conns.slot_of(idx));
        let c = self.conns.get_mut(idx);
        if c.flags & F_OFF == 0 {
            self.offloaded += 1;
        }
        c.flags |= dir_flag(dir);
        self.offload_events.push(OffloadEvent::Install(OffloadFlow {
            conn,
            dir,
            flow,
            rewrite,
            next_hop,
            max_len,
        }));
    }

    /// Take back every offloaded flow of entry `idx`.
    fn unoffload(&mut self, idx: u32) {
        let flags = self.conns.get(idx).flags;
        if flags & F_OFF == 0 {
            return;
        }
        let conn = ConnId(self.conns.slot_of(idx));
        for dir in [OffloadDir::In, OffloadDir::Out] {
            if flags & dir_flag(dir) != 0 {
                self.offload_events.push(OffloadEvent::Remove { conn, dir });
            }
        }
        self.conns.get_mut(idx).flags &= !(F_OFF | F_OFF_GRACE);
        self.offloaded -= 1;
    }

    /// Take back the offloaded flows of every entry that `pred` selects.
    fn unoffload_where(&mut self, pred: impl Fn(&Conn) -> bool) {
        if self.offloaded == 0 {
            return;
        }
        let victims: Vec<u32> = self
            .conns
            .iter()
            .filter(|(_, c)| c.flags & F_OFF != 0 && pred(c))
            .map(|(i, _)| i)
            .collect();
        for i in victims {
            self.unoffload(i);
        }
    }

    /// Next IP identification for generated headers.
    pub(crate) fn next_ident(&mut self) -> u16 {
        self.ip_ident = self.ip_ident.wrapping_add(1);
        self.ip_ident
    }

    pub(crate) fn handle_icmp(&mut self, now: Instant, p: &Parsed, f: &mut FrameBuf<'_>) -> Action {
        crate::icmp::handle(self, now, p, f)
    }

    /// Account and forward an ICMP error that belongs to an inbound connection.
    pub(crate) fn icmp_in_hit(&mut self, now: Instant, idx: u32, ip_len: usize) -> bool {
        let c = self.conns.get(idx);
        if c.expires_ms <= now.millis() {
            self.expire(idx, now);
            return false;
        }
        if !self.services.dest_state(c.dest).available {
            return false;
        }
        self.account(c.dest, ip_len, false);
        true
    }

    /// Account an ICMP error from a NAT real server about a connection.
    pub(crate) fn icmp_out_hit(&mut self, now: Instant, idx: u32, ip_len: usize) -> bool {
        if self.conns.get(idx).expires_ms <= now.millis() {
            self.expire(idx, now);
            return false;
        }
        self.account(self.conns.get(idx).dest, ip_len, true);
        true
    }

    pub(crate) fn lookup_in_conn(&self, key: &InKey) -> Option<u32> {
        self.conns.lookup_in(key)
    }

    pub(crate) fn lookup_out_conn(&self, key: &OutKey) -> Option<u32> {
        self.conns.lookup_out(key)
    }

    pub(crate) fn is_vip(&self, v6: bool, a: &Addr16) -> bool {
        self.vips.contains_key(&(v6, *a))
    }
}

/// The entry flag of an offloaded direction.
const fn dir_flag(dir: OffloadDir) -> u16 {
    match dir {
        OffloadDir::In => F_OFF_IN,
        OffloadDir::Out => F_OFF_OUT,
    }
}

enum InCheck {
    Use,
    Reschedule,
    Drop(DropReason),
}

/// Frames per group in [`Balancer::process_batch`]: enough independent loads in flight to
/// cover memory latency, few enough that a group's buckets and entries stay in L1.
pub const BATCH: usize = 32;

/// A frame after the first, table-independent stage of processing.
#[derive(Clone, Copy, Debug)]
struct Prepared {
    /// The verdict when parsing already decided (not IP, malformed, bad checksum).
    verdict: Option<Action>,
    /// Parsed headers (meaningless when `verdict` is set).
    parsed: Parsed,
    /// Seeded hash of the inbound key, when the frame will be looked up.
    h_in: Option<u64>,
    /// Seeded hash of the outbound key, when computed ahead (batch path with NAT entries).
    h_out: Option<u64>,
    /// The likely inbound entry, read ahead by the batch path (validated before use).
    cand_in: Option<u32>,
}

impl Prepared {
    const EMPTY: Self = Self {
        verdict: None,
        parsed: Parsed::EMPTY,
        h_in: None,
        h_out: None,
        cand_in: None,
    };
}

/// Whether a parsed frame reaches the connection lookup (TCP, UDP or SCTP with its ports).
#[inline(always)]
fn looked_up(p: &Parsed) -> bool {
    matches!(p.proto, 6 | 17 | 132) && !p.fragment && p.has_l4
}

/// The inbound (client → VIP) key of a packet.
#[inline(always)]
fn in_key(p: &Parsed) -> InKey {
    InKey {
        af: u8::from(p.v6),
        proto: p.proto,
        caddr: p.src,
        cport: p.sport,
        vaddr: p.dst,
        vport: p.dport,
        template: false,
    }
}

/// The outbound (real server → client) key of a packet.
#[inline(always)]
fn out_key(p: &Parsed) -> OutKey {
    OutKey {
        af: u8::from(p.v6),
        proto: p.proto,
        caddr: p.dst,
        cport: p.dport,
        daddr: p.src,
        dport: p.sport,
    }
}

/// First stage, a pure function of the frame: bounds and parse. Overwrites all of `prep`.
#[inline]
fn prepare(f: &FrameBuf<'_>, prep: &mut Prepared) {
    prep.verdict = None;
    prep.h_in = None;
    prep.h_out = None;
    prep.cand_in = None;
    let Some(end) = f.offset.checked_add(f.len).filter(|&e| e <= f.buf.len()) else {
        prep.verdict = Some(Action::Drop(DropReason::Malformed));
        return;
    };
    if let Err(e) = parse_into(&f.buf[f.offset..end], &mut prep.parsed) {
        prep.verdict = Some(match e {
            ParseOutcome::NotIp => Action::Pass,
            ParseOutcome::Malformed => Action::Drop(DropReason::Malformed),
            ParseOutcome::BadChecksum => Action::Drop(DropReason::BadChecksum),
        });
    }
}

/// Read the first header line of every frame of a group so that their misses overlap
/// (frames written by a NIC are often not in the cache yet).
fn touch_frames(frames: &[FrameBuf<'_>]) {
    let mut acc = 0u8;
    for f in frames {
        if let Some(&b) = f.buf.get(f.offset + 14) {
            acc ^= b;
        }
    }
    core::hint::black_box(acc);
}
