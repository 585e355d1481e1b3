//! The kernel fast path: established flows forwarded by rvs's XDP program from a flow
//! table that this module fills from the core's offload events (`rvs_core::offload`), and
//! whose per-flow counters it reports back to the core once a second.
//!
//! One flow table per served interface (the program is attached to each): a flow is
//! installed on the interface its packets arrive on. Per flow the table holds the rewrite,
//! the egress interface, both Ethernet addresses and a counter slot; the counters live in
//! a memory-mapped array, so reading them costs no system call.

use std::collections::HashMap;
use std::net::IpAddr;

use rvs_core::{Balancer, ConnId, OffloadDir, OffloadEvent, OffloadFlow, OffloadRewrite};
use rvs_io::xdp::{FlowEntry, FlowKey, FlowRewrite, XdpMode, XdpProgram};

/// Fast-path bookkeeping counters (see the metrics).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FpCounters {
    /// Flows installed in a kernel flow table.
    pub(crate) installs: u64,
    /// Flows taken out.
    pub(crate) removes: u64,
    /// Offers declined because the next hop's MAC address was not known yet (offered again
    /// with the flow's next packet).
    pub(crate) no_neighbour: u64,
    /// Offers declined because the interface's flow table was full (the flow stays in
    /// user space).
    pub(crate) full: u64,
    /// Flow-table updates the kernel refused.
    pub(crate) errors: u64,
    /// Offers declined because the program on the ingress interface runs in native mode
    /// and the egress interface cannot take frames redirected from native XDP (it has no
    /// native XDP itself, e.g. a bridge): the flow stays in user space.
    pub(crate) unsupported_egress: u64,
    /// Offers declined because the program runs at the TC hook, which cannot put an outer
    /// header of the other family on a packet (IPv6 in IPv4, IPv4 in IPv6).
    pub(crate) unsupported_tunnel: u64,
    /// Flows in the tables now.
    pub(crate) flows: u64,
    /// Installed flows whose next hop moved (new MAC address or egress interface) and were
    /// updated in place.
    pub(crate) rerouted: u64,
    /// Installed flows taken back because their next hop became unknown or unreachable
    /// (user space forwards them again, and offers them again once it resolves).
    pub(crate) unrouted: u64,
    /// Packets the kernel fast path forwarded (from the programs' counters).
    pub(crate) kernel_forwarded: u64,
    /// Packets of offloaded flows handed to user space (SYN/FIN/RST, TTL, too big).
    pub(crate) kernel_passed: u64,
}

struct Installed {
    port: usize,
    key: FlowKey,
    counter: u32,
    packets: u64,
    bytes: u64,
    /// Where it goes: re-checked against the routes and neighbours now and then.
    next_hop: IpAddr,
    entry: FlowEntry,
}

/// What became of an installed flow's next hop.
pub(crate) enum NextHop {
    /// Known: interface and addresses.
    To(Egress),
    /// The neighbour's address is not known right now (being resolved).
    Pending,
    /// No route, or one through an interface rvsd does not serve.
    Unreachable,
}

/// Where an offered flow goes out.
pub(crate) struct Egress {
    pub(crate) ifindex: u32,
    /// The egress interface runs rvs's program in native mode (its driver takes frames
    /// redirected by native XDP).
    pub(crate) native: bool,
    pub(crate) src_mac: rvs_io::MacAddr,
    pub(crate) dst_mac: rvs_io::MacAddr,
}

/// The module's state; the programs themselves belong to the data plane's ports.
pub(crate) struct FastPath {
    flows: HashMap<(ConnId, OffloadDir), Installed>,
    /// Owner of each installed key, per port (a key can outlive its connection's entry
    /// when a new connection reuses the tuple).
    owners: HashMap<(usize, FlowKey), (ConnId, OffloadDir)>,
    /// Free counter slots per port.
    free: Vec<Vec<u32>>,
    events: Vec<OffloadEvent>,
    pub(crate) counters: FpCounters,
}

impl FastPath {
    /// `slots[i]`: the flow capacity of port `i`'s program (0 = no fast path there).
    pub(crate) fn new(slots: &[u32]) -> Self {
        Self {
            flows: HashMap::new(),
            owners: HashMap::new(),
            free: slots.iter().map(|&n| (0..n).rev().collect()).collect(),
            events: Vec::new(),
            counters: FpCounters::default(),
        }
    }

    /// Take the core's pending offload events; true when there are any for [`Self::apply`]
    /// (checked first so that the common case, none, costs nothing more).
    pub(crate) fn take_events(&mut self, lb: &mut Balancer) -> bool {
        lb.take_offload_events(&mut self.events);
        !self.events.is_empty()
    }

    /// Carry out the events taken by [`Self::take_events`]. `ingress`: the port whose
    /// frames were just processed (installs go there); `egress` resolves a next hop to an
    /// interface and MAC addresses, or None when not known yet.
    pub(crate) fn apply(
        &mut self,
        lb: &mut Balancer,
        now: rvs_core::time::Instant,
        ingress: Option<usize>,
        progs: &mut [Option<&mut XdpProgram>],
        mut egress: impl FnMut(IpAddr) -> Option<Egress>,
    ) {
        let events = std::mem::take(&mut self.events);
        for ev in &events {
            match *ev {
                OffloadEvent::Install(f) => {
                    let Some(port) = ingress else { continue };
                    let Some(Some(prog)) = progs.get_mut(port) else {
                        // no fast path on this interface: the flow stays in user space
                        continue;
                    };
                    self.install(lb, port, prog, &f, &mut egress);
                }
                OffloadEvent::Remove { conn, dir } => self.remove(lb, now, progs, conn, dir),
            }
        }
        self.events = events;
        self.events.clear();
        self.counters.flows = self.flows.len() as u64;
    }

    fn install(
        &mut self,
        lb: &mut Balancer,
        port: usize,
        prog: &mut XdpProgram,
        f: &OffloadFlow,
        egress: &mut impl FnMut(IpAddr) -> Option<Egress>,
    ) {
        let Some(out) = egress(f.next_hop) else {
            self.counters.no_neighbour += 1;
            lb.offload_rejected(f.conn, f.dir);
            return;
        };
        // Native XDP can redirect only to drivers that take XDP frames; generic XDP
        // transmits through the stack's queueing layer and reaches any device.
        if prog.mode() == XdpMode::Native && !out.native {
            self.counters.unsupported_egress += 1;
            return;
        }
        if prog.mode() == XdpMode::Tc
            && let OffloadRewrite::Ipip { dst, .. } = f.rewrite
            && dst.is_ipv4() != f.flow.src.is_ipv4()
        {
            self.counters.unsupported_tunnel += 1;
            return;
        }
        let key = FlowKey {
            src: f.flow.src,
            dst: f.flow.dst,
            proto: f.flow.proto,
            sport: f.flow.sport,
            dport: f.flow.dport,
        };
        // a stale owner of the same tuple (an ended connection whose Remove is still to
        // come, or the same connection re-offered) gives its slot up first
        if let Some((c, d)) = self.owners.get(&(port, key)).copied() {
            self.forget(c, d);
        }
        let Some(counter) = self.free.get_mut(port).and_then(Vec::pop) else {
            self.counters.full += 1;
            return;
        };
        let rewrite = match f.rewrite {
            OffloadRewrite::Route => FlowRewrite::Route,
            OffloadRewrite::Dnat { addr, port } => FlowRewrite::Dnat { addr, port },
            OffloadRewrite::Snat { addr, port } => FlowRewrite::Snat { addr, port },
            OffloadRewrite::Ipip { src, dst, copy_df } => FlowRewrite::Ipip { src, dst, copy_df },
        };
        let entry = FlowEntry {
            rewrite,
            ifindex: out.ifindex,
            src_mac: out.src_mac,
            dst_mac: out.dst_mac,
            max_len: f.max_len,
            counter,
        };
        prog.flow_counter_reset(counter);
        match prog.flow_insert(&key, &entry) {
            Ok(()) => {
                self.counters.installs += 1;
                self.owners.insert((port, key), (f.conn, f.dir));
                self.flows.insert(
                    (f.conn, f.dir),
                    Installed {
                        port,
                        key,
                        counter,
                        packets: 0,
                        bytes: 0,
                        next_hop: f.next_hop,
                        entry,
                    },
                );
            }
            Err(e) => {
                self.free[port].push(counter);
                if e.kind() == std::io::ErrorKind::OutOfMemory {
                    self.counters.full += 1;
                } else {
                    self.counters.errors += 1;
                    tracing::debug!(error = %e, "fast path: flow not installed");
                }
            }
        }
    }

    fn remove(
        &mut self,
        lb: &mut Balancer,
        now: rvs_core::time::Instant,
        progs: &mut [Option<&mut XdpProgram>],
        conn: ConnId,
        dir: OffloadDir,
    ) {
        let Some(inst) = self.flows.get(&(conn, dir)) else {
            return;
        };
        let port = inst.port;
        let key = inst.key;
        // what it forwarded since the last report still counts
        if let Some(Some(prog)) = progs.get_mut(port) {
            let (p, b) = prog.flow_counter(inst.counter);
            if p > inst.packets {
                lb.offload_seen(
                    now,
                    conn,
                    dir,
                    p - inst.packets,
                    b.saturating_sub(inst.bytes),
                );
            }
            if self.owners.get(&(port, key)) == Some(&(conn, dir))
                && let Err(e) = prog.flow_remove(&key)
            {
                self.counters.errors += 1;
                tracing::debug!(error = %e, "fast path: flow not removed");
            }
        }
        self.forget(conn, dir);
    }

    /// Drop the bookkeeping of a flow (its key is deleted or about to be overwritten).
    fn forget(&mut self, conn: ConnId, dir: OffloadDir) {
        if let Some(inst) = self.flows.remove(&(conn, dir)) {
            if self.owners.get(&(inst.port, inst.key)) == Some(&(conn, dir)) {
                self.owners.remove(&(inst.port, inst.key));
            }
            if let Some(f) = self.free.get_mut(inst.port) {
                f.push(inst.counter);
            }
            self.counters.removes += 1;
        }
    }

    /// Follow next-hop changes: a real server or client whose MAC address changed (an
    /// address moved to another machine, ARP/ND updated), or a route that now leaves by
    /// another interface. Entries whose next hop changed are rewritten in place; entries
    /// whose next hop is unknown or no longer served are taken out and handed back to the
    /// core, which forwards their packets (resolving the neighbour) and offers them again.
    pub(crate) fn revalidate(
        &mut self,
        lb: &mut Balancer,
        now: rvs_core::time::Instant,
        progs: &mut [Option<&mut XdpProgram>],
        mut egress: impl FnMut(IpAddr) -> NextHop,
    ) {
        let mut lost = Vec::new();
        for (&(conn, dir), inst) in &mut self.flows {
            let Some(Some(prog)) = progs.get_mut(inst.port) else {
                continue;
            };
            let out = match egress(inst.next_hop) {
                // not known this moment (cache refresh, resolution under way): keep it
                NextHop::Pending => continue,
                NextHop::Unreachable => {
                    lost.push((conn, dir));
                    continue;
                }
                NextHop::To(out) if prog.mode() == XdpMode::Native && !out.native => {
                    lost.push((conn, dir));
                    continue;
                }
                NextHop::To(out) => out,
            };
            let e = &inst.entry;
            if out.ifindex == e.ifindex && out.dst_mac == e.dst_mac && out.src_mac == e.src_mac {
                continue;
            }
            let mut entry = *e;
            entry.ifindex = out.ifindex;
            entry.dst_mac = out.dst_mac;
            entry.src_mac = out.src_mac;
            match prog.flow_insert(&inst.key, &entry) {
                Ok(()) => {
                    inst.entry = entry;
                    self.counters.rerouted += 1;
                }
                Err(_) => lost.push((conn, dir)),
            }
        }
        for (conn, dir) in lost {
            self.counters.unrouted += 1;
            self.remove(lb, now, progs, conn, dir);
            lb.offload_rejected(conn, dir);
        }
        self.counters.flows = self.flows.len() as u64;
    }

    /// Report what every installed flow forwarded since the last report to the core (which
    /// re-arms the connections' timers), and refresh the kernel-side counters.
    pub(crate) fn harvest(
        &mut self,
        lb: &mut Balancer,
        now: rvs_core::time::Instant,
        progs: &mut [Option<&mut XdpProgram>],
    ) {
        let mut gone = Vec::new();
        // one pass over each table, then plain reads of the counter array
        for prog in progs.iter().flatten() {
            prog.flow_counters_fold();
        }
        for (&(conn, dir), inst) in &mut self.flows {
            let Some(Some(prog)) = progs.get(inst.port) else {
                continue;
            };
            let (p, b) = prog.flow_counter_folded(inst.counter);
            if p == inst.packets {
                continue;
            }
            let (dp, db) = (p.wrapping_sub(inst.packets), b.wrapping_sub(inst.bytes));
            inst.packets = p;
            inst.bytes = b;
            if !lb.offload_seen(now, conn, dir, dp, db) {
                gone.push((conn, dir));
            }
        }
        for (conn, dir) in gone {
            // the connection ended without its Remove reaching us: take the flow out
            self.remove(lb, now, progs, conn, dir);
        }
        let (mut fwd, mut passed) = (0, 0);
        for prog in progs.iter().flatten() {
            if let Ok(c) = prog.counters() {
                fwd += c.fast_forwarded;
                passed += c.fast_passed_tcp_flags + c.fast_passed_ttl + c.fast_passed_too_big;
            }
        }
        self.counters.kernel_forwarded = fwd;
        self.counters.kernel_passed = passed;
        self.counters.flows = self.flows.len() as u64;
    }
}
