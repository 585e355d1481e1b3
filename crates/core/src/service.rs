//! Virtual services, their destinations (real servers) and the control operations on them.
//!
//! Destinations live in an arena (`DestRecord`) so connections can keep referring to them
//! after they leave their service's list: as in IPVS, a deleted destination goes to the
//! "trash" while connections still use it, and re-adding it there revives its counters.
//! Each service keeps the scheduler's view (`DestState`) of its list, newest first.

use core::net::IpAddr;

use rvs_sched::{DestChange, DestId, DestState, SchedFlags, SchedKind, Scheduler};

use crate::addr::{Addr16, to16};
use crate::hash::FastMap;
use crate::stats::{Estimator, Stats};
use crate::time::Instant;

/// Layer-4 protocol of a virtual service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// SCTP (132).
    Sctp,
}

impl Protocol {
    /// IP protocol number.
    pub const fn number(self) -> u8 {
        match self {
            Self::Tcp => 6,
            Self::Udp => 17,
            Self::Sctp => 132,
        }
    }

    /// From an IP protocol number.
    pub const fn from_number(n: u8) -> Option<Self> {
        match n {
            6 => Some(Self::Tcp),
            17 => Some(Self::Udp),
            132 => Some(Self::Sctp),
            _ => None,
        }
    }
}

/// How a virtual service is identified.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServiceKey {
    /// `-t/-u/--sctp-service addr:port`.
    Addr {
        /// Protocol.
        proto: Protocol,
        /// VIP.
        addr: IpAddr,
        /// Port; 0 only for persistent services (all ports).
        port: u16,
    },
    /// `-f mark` (with `-6` for IPv6).
    Fwmark {
        /// IPv6 family.
        v6: bool,
        /// Firewall mark, non-zero.
        mark: u32,
    },
}

impl ServiceKey {
    /// Whether the service is IPv6.
    pub fn is_v6(&self) -> bool {
        match self {
            Self::Addr { addr, .. } => addr.is_ipv6(),
            Self::Fwmark { v6, .. } => *v6,
        }
    }
}

/// Persistence settings (`-p`, `-M`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Persistence {
    /// Template timeout in seconds (1..=2678400; ipvsadm's default 360).
    pub timeout_secs: u32,
    /// IPv4 granularity mask (host order, e.g. 0xffffff00), used for IPv4 services.
    pub v4_mask: u32,
    /// IPv6 granularity prefix length 1..=128, used for IPv6 services.
    pub v6_prefix: u8,
}

impl Default for Persistence {
    fn default() -> Self {
        Self {
            timeout_secs: 360,
            v4_mask: u32::MAX,
            v6_prefix: 128,
        }
    }
}

/// A virtual service's settings (what `-A`/`-E` carry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceConfig {
    /// Identity.
    pub key: ServiceKey,
    /// Scheduler.
    pub scheduler: SchedKind,
    /// Scheduler flags (SCHED1..3 bits).
    pub sched_flags: SchedFlags,
    /// Persistence, if any.
    pub persistence: Option<Persistence>,
    /// One-packet scheduling (`-o`, UDP and fwmark only).
    pub one_packet: bool,
}

/// Forwarding method of a destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ForwardMethod {
    /// NAT (`-m`).
    Masq = 0,
    /// The destination is the director itself.
    Local = 1,
    /// IP-in-IP / GUE / GRE (`-i`).
    Tunnel = 2,
    /// Direct routing (`-g`, the default).
    DirectRoute = 3,
}

impl ForwardMethod {
    pub(crate) const fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Masq,
            1 => Self::Local,
            2 => Self::Tunnel,
            _ => Self::DirectRoute,
        }
    }
}

/// Tunnel encapsulation for [`ForwardMethod::Tunnel`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum TunnelType {
    /// IP-in-IP (RFC 2003 / RFC 2473), the default.
    #[default]
    Ipip,
    /// Generic UDP Encapsulation to the given UDP port.
    Gue {
        /// Destination UDP port, non-zero.
        port: u16,
    },
    /// GRE (not forwarded by rvs; accepted for configuration parity and refused at use).
    Gre,
}

/// Tunnel checksum option.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum TunnelCsum {
    /// No outer checksum (default).
    #[default]
    NoCsum,
    /// Outer UDP/GRE checksum.
    Csum,
    /// Remote checksum offload (GUE only).
    RemCsum,
}

/// A destination's settings (what `-a`/`-e` carry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestConfig {
    /// Real server address (may differ in family from the service only for tunnels).
    pub addr: IpAddr,
    /// Real server port (0 = the packet's destination port).
    pub port: u16,
    /// Forwarding method.
    pub method: ForwardMethod,
    /// Weight 0..=i32::MAX; 0 quiesces.
    pub weight: i32,
    /// Upper connection threshold, 0 = none.
    pub u_threshold: u32,
    /// Lower connection threshold, 0 = none.
    pub l_threshold: u32,
    /// Tunnel type.
    pub tunnel: TunnelType,
    /// Tunnel checksum option.
    pub tun_csum: TunnelCsum,
}

impl DestConfig {
    /// ipvsadm's defaults for `-a -r addr:port`: DR, weight 1, no thresholds, ipip.
    pub fn new(addr: IpAddr, port: u16) -> Self {
        Self {
            addr,
            port,
            method: ForwardMethod::DirectRoute,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            tunnel: TunnelType::Ipip,
            tun_csum: TunnelCsum::NoCsum,
        }
    }
}

/// Errors of control operations, one per errno IPVS returns (spec 2.8).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// EEXIST on add service.
    #[error("service already exists")]
    ServiceExists,
    /// ESRCH: the service does not exist.
    #[error("no such service")]
    NoSuchService,
    /// EEXIST on add destination.
    #[error("destination already exists")]
    DestExists,
    /// ENOENT on edit/delete destination.
    #[error("no such destination")]
    NoSuchDest,
    /// ENOENT: unknown scheduler or persistence engine.
    #[error("scheduler or persistence engine not found")]
    SchedulerNotFound,
    /// ERANGE: a value out of range (negative weight, l_threshold > u_threshold).
    #[error("value out of range: {0}")]
    OutOfRange(&'static str),
    /// EINVAL: invalid combination.
    #[error("invalid operation: {0}")]
    Invalid(&'static str),
}

pub(crate) struct DestRecord {
    pub(crate) svc: u32,
    pub(crate) svc_alive: bool,
    /// Position in the service list, or None when in the trash.
    pub(crate) pos: Option<usize>,
    pub(crate) cfg: DestConfig,
    pub(crate) addr16: Addr16,
    /// Authoritative scheduler view while in the trash; mirror of the list entry otherwise.
    pub(crate) state: DestState,
    pub(crate) persist: u32,
    /// The upper threshold in force before the last add/edit (for OVERLOAD clearing).
    pub(crate) state_u_threshold: u32,
    /// Connections and templates referring to this record.
    pub(crate) refcnt: u32,
    pub(crate) stats: Stats,
    pub(crate) est: Estimator,
    pub(crate) trashed_at: Option<Instant>,
}

pub(crate) struct Service {
    pub(crate) cfg: ServiceConfig,
    pub(crate) sched: Scheduler,
    /// Scheduler view, newest first. `DestState::id` is the arena id.
    pub(crate) dests: Vec<DestState>,
    pub(crate) stats: Stats,
    pub(crate) est: Estimator,
    /// Order of creation, for `--nosort` listings.
    pub(crate) serial: u64,
}

/// Lookup key for address services: (af v6, proto, vaddr, vport).
pub(crate) type AddrKey = (bool, u8, Addr16, u16);

/// The service table and the destination arena.
#[derive(Default)]
pub(crate) struct Services {
    pub(crate) svcs: Vec<Option<Service>>,
    free_svcs: Vec<u32>,
    pub(crate) by_addr: FastMap<AddrKey, u32>,
    pub(crate) by_mark: FastMap<(bool, u32), u32>,
    pub(crate) dests: Vec<Option<DestRecord>>,
    free_dests: Vec<u32>,
    /// Trashed destinations still bound to a live service, by (service, address, port).
    trash: FastMap<(u32, Addr16, u16), u32>,
    /// Any service was ever added (IPVS ignores traffic before that).
    pub(crate) ever_added: bool,
    serial: u64,
    pub(crate) sched_seed: u64,
}

fn validate_service(cfg: &ServiceConfig) -> Result<(), ControlError> {
    if let ServiceKey::Fwmark { mark: 0, .. } = cfg.key {
        return Err(ControlError::Invalid("fwmark 0"));
    }
    if let Some(p) = cfg.persistence {
        if p.timeout_secs == 0 || p.timeout_secs > 2_678_400 {
            return Err(ControlError::Invalid("persistence timeout out of range"));
        }
        if cfg.key.is_v6() && !(1..=128).contains(&p.v6_prefix) {
            return Err(ControlError::Invalid("IPv6 prefix out of range"));
        }
        if !cfg.key.is_v6() && p.v4_mask.leading_ones() + p.v4_mask.trailing_zeros() != 32 {
            return Err(ControlError::Invalid("non-contiguous netmask"));
        }
    }
    if let ServiceKey::Addr { addr, .. } = cfg.key
        && (addr.is_unspecified() || addr.is_multicast())
    {
        return Err(ControlError::Invalid("virtual address not unicast"));
    }
    Ok(())
}

fn validate_dest(svc: &ServiceConfig, d: &DestConfig) -> Result<(), ControlError> {
    if d.weight < 0 {
        return Err(ControlError::OutOfRange("weight"));
    }
    if d.l_threshold > d.u_threshold {
        return Err(ControlError::OutOfRange("l_threshold above u_threshold"));
    }
    if d.addr.is_ipv6() != svc.key.is_v6() && d.method != ForwardMethod::Tunnel {
        return Err(ControlError::Invalid("address family differs"));
    }
    if d.addr.is_unspecified() || d.addr.is_multicast() {
        return Err(ControlError::Invalid("real server address not unicast"));
    }
    if let IpAddr::V4(a) = d.addr
        && a.is_broadcast()
    {
        return Err(ControlError::Invalid("real server address not unicast"));
    }
    if let TunnelType::Gue { port: 0 } = d.tunnel {
        return Err(ControlError::Invalid("GUE needs a port"));
    }
    Ok(())
}

impl Services {
    pub(crate) fn addr_key(key: &ServiceKey) -> Option<AddrKey> {
        match key {
            ServiceKey::Addr { proto, addr, port } => {
                Some((addr.is_ipv6(), proto.number(), to16(addr), *port))
            }
            ServiceKey::Fwmark { .. } => None,
        }
    }

    pub(crate) fn find(&self, key: &ServiceKey) -> Option<u32> {
        match key {
            ServiceKey::Addr { .. } => {
                Self::addr_key(key).and_then(|k| self.by_addr.get(&k).copied())
            }
            ServiceKey::Fwmark { v6, mark } => self.by_mark.get(&(*v6, *mark)).copied(),
        }
    }

    pub(crate) fn svc(&self, id: u32) -> &Service {
        self.svcs[id as usize].as_ref().expect("live service id")
    }

    pub(crate) fn svc_mut(&mut self, id: u32) -> &mut Service {
        self.svcs[id as usize].as_mut().expect("live service id")
    }

    pub(crate) fn dest(&self, id: u32) -> &DestRecord {
        self.dests[id as usize].as_ref().expect("live dest id")
    }

    pub(crate) fn dest_mut(&mut self, id: u32) -> &mut DestRecord {
        self.dests[id as usize].as_mut().expect("live dest id")
    }

    /// Scheduler-visible state of a destination (list entry or trash copy).
    pub(crate) fn dest_state(&self, id: u32) -> &DestState {
        let d = self.dest(id);
        match (d.pos, d.svc_alive) {
            (Some(p), true) => &self.svc(d.svc).dests[p],
            _ => &d.state,
        }
    }

    pub(crate) fn dest_state_mut(&mut self, id: u32) -> &mut DestState {
        let (svc, pos, alive) = {
            let d = self.dest(id);
            (d.svc, d.pos, d.svc_alive)
        };
        match (pos, alive) {
            (Some(p), true) => {
                &mut self.svcs[svc as usize]
                    .as_mut()
                    .expect("live service id")
                    .dests[p]
            }
            _ => &mut self.dest_mut(id).state,
        }
    }

    pub(crate) fn add_service(
        &mut self,
        cfg: ServiceConfig,
        now: Instant,
    ) -> Result<u32, ControlError> {
        validate_service(&cfg)?;
        if self.find(&cfg.key).is_some() {
            return Err(ControlError::ServiceExists);
        }
        self.serial += 1;
        self.sched_seed = self.sched_seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let svc = Service {
            sched: Scheduler::new(cfg.scheduler, cfg.sched_flags, self.sched_seed),
            cfg,
            dests: Vec::new(),
            stats: Stats::default(),
            est: Estimator::new(now),
            serial: self.serial,
        };
        let id = match self.free_svcs.pop() {
            Some(i) => {
                self.svcs[i as usize] = Some(svc);
                i
            }
            None => {
                self.svcs.push(Some(svc));
                (self.svcs.len() - 1) as u32
            }
        };
        let key = self.svc(id).cfg.key;
        match key {
            ServiceKey::Addr { .. } => {
                if let Some(k) = Self::addr_key(&key) {
                    self.by_addr.insert(k, id);
                }
            }
            ServiceKey::Fwmark { v6, mark } => {
                self.by_mark.insert((v6, mark), id);
            }
        }
        self.ever_added = true;
        Ok(id)
    }

    /// `-E`: replace scheduler, flags, persistence. Keeps destinations and connections.
    pub(crate) fn edit_service(&mut self, cfg: ServiceConfig) -> Result<u32, ControlError> {
        validate_service(&cfg)?;
        let id = self.find(&cfg.key).ok_or(ControlError::NoSuchService)?;
        let svc = self.svc_mut(id);
        if svc.cfg.scheduler != cfg.scheduler || svc.cfg.sched_flags != cfg.sched_flags {
            if cfg.scheduler == SchedKind::Mh
                && svc.dests.len() > rvs_sched::MH_DEFAULT_TABLE_SIZE as usize
            {
                return Err(ControlError::Invalid("too many destinations for mh"));
            }
            let seed = svc.serial.wrapping_mul(0x2545_F491_4F6C_DD1D);
            svc.sched = Scheduler::new(cfg.scheduler, cfg.sched_flags, seed);
            svc.sched.init(&svc.dests);
        }
        svc.cfg = cfg;
        Ok(id)
    }

    /// `-D`: unlink the service; its destinations go to the trash. Returns the dest ids.
    pub(crate) fn del_service(
        &mut self,
        key: &ServiceKey,
        now: Instant,
    ) -> Result<Vec<u32>, ControlError> {
        let id = self.find(key).ok_or(ControlError::NoSuchService)?;
        match key {
            ServiceKey::Addr { .. } => {
                if let Some(k) = Self::addr_key(key) {
                    self.by_addr.remove(&k);
                }
            }
            ServiceKey::Fwmark { v6, mark } => {
                self.by_mark.remove(&(*v6, *mark));
            }
        }
        let svc = self.svcs[id as usize].take().expect("found service");
        self.free_svcs.push(id);
        let trashed: Vec<u32> = self
            .trash
            .iter()
            .filter(|(k, _)| k.0 == id)
            .map(|(_, &v)| v)
            .collect();
        self.trash.retain(|k, _| k.0 != id);
        for rid in trashed {
            self.dest_mut(rid).svc_alive = false;
        }
        let mut ids = Vec::with_capacity(svc.dests.len());
        for st in svc.dests {
            let rid = st.id.0;
            let d = self.dest_mut(rid);
            d.state = st;
            d.state.available = false;
            d.pos = None;
            d.svc_alive = false;
            d.trashed_at = Some(now);
            ids.push(rid);
        }
        self.collect_trash_ids(&ids);
        Ok(ids)
    }

    pub(crate) fn service_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.svcs
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_some())
            .map(|(i, _)| i as u32)
    }

    fn find_dest_in(&self, svc: u32, addr: &IpAddr, port: u16) -> Option<usize> {
        let s = self.svc(svc);
        s.dests
            .iter()
            .position(|d| d.addr == *addr && d.port == port)
    }

    fn find_trashed(&self, svc: u32, addr: &IpAddr, port: u16) -> Option<u32> {
        self.trash.get(&(svc, to16(addr), port)).copied()
    }

    /// Effective destination port: DR/TUN on an address service use the service port.
    fn effective_port(svc: &ServiceConfig, d: &DestConfig) -> u16 {
        match (svc.key, d.method) {
            (ServiceKey::Addr { port, .. }, ForwardMethod::DirectRoute | ForwardMethod::Tunnel) => {
                port
            }
            _ => d.port,
        }
    }

    pub(crate) fn add_dest(
        &mut self,
        key: &ServiceKey,
        mut cfg: DestConfig,
    ) -> Result<u32, ControlError> {
        let sid = self.find(key).ok_or(ControlError::NoSuchService)?;
        validate_dest(&self.svc(sid).cfg, &cfg)?;
        cfg.port = Self::effective_port(&self.svc(sid).cfg, &cfg);
        if self.find_dest_in(sid, &cfg.addr, cfg.port).is_some() {
            return Err(ControlError::DestExists);
        }
        let svc = self.svc(sid);
        if svc.cfg.scheduler == SchedKind::Mh
            && svc.dests.len() >= rvs_sched::MH_DEFAULT_TABLE_SIZE as usize
        {
            return Err(ControlError::Invalid("too many destinations for mh"));
        }
        let rid = if let Some(rid) = self.find_trashed(sid, &cfg.addr, cfg.port) {
            // Revive from the trash with its counters (spec 5.8).
            self.trash.remove(&(sid, to16(&cfg.addr), cfg.port));
            let d = self.dest_mut(rid);
            d.trashed_at = None;
            d.cfg = cfg;
            rid
        } else {
            let addr16 = to16(&cfg.addr);
            let rec = DestRecord {
                svc: sid,
                svc_alive: true,
                pos: None,
                state: DestState {
                    id: DestId(0),
                    addr: cfg.addr,
                    port: cfg.port,
                    weight: 0,
                    last_weight: 0,
                    active: 0,
                    inactive: 0,
                    available: true,
                    overloaded: false,
                },
                addr16,
                cfg,
                persist: 0,
                state_u_threshold: 0,
                refcnt: 0,
                stats: Stats::default(),
                est: Estimator::new(Instant::ZERO),
                trashed_at: None,
            };
            match self.free_dests.pop() {
                Some(i) => {
                    self.dests[i as usize] = Some(rec);
                    i
                }
                None => {
                    self.dests.push(Some(rec));
                    (self.dests.len() - 1) as u32
                }
            }
        };
        let d = self.dest_mut(rid);
        let old_u = d.state_u_threshold;
        d.state_u_threshold = d.cfg.u_threshold;
        let mut st = d.state.clone();
        st.id = DestId(rid);
        st.addr = d.cfg.addr;
        st.port = d.cfg.port;
        st.weight = d.cfg.weight;
        if d.cfg.weight > 0 {
            st.last_weight = d.cfg.weight;
        }
        st.available = true;
        apply_threshold_edit(&mut st, old_u, d.cfg.u_threshold);
        // newest first
        let svc = self.svc_mut(sid);
        svc.dests.insert(0, st);
        let ids: Vec<u32> = svc.dests.iter().map(|d| d.id.0).collect();
        for (i, id) in ids.into_iter().enumerate() {
            if let Some(Some(r)) = self.dests.get_mut(id as usize) {
                r.pos = Some(i);
            }
        }
        let svc = self.svc_mut(sid);
        svc.sched.update(&svc.dests, DestChange::Added { index: 0 });
        Ok(rid)
    }

    pub(crate) fn edit_dest(
        &mut self,
        key: &ServiceKey,
        mut cfg: DestConfig,
    ) -> Result<(u32, bool), ControlError> {
        let sid = self.find(key).ok_or(ControlError::NoSuchService)?;
        validate_dest(&self.svc(sid).cfg, &cfg)?;
        cfg.port = Self::effective_port(&self.svc(sid).cfg, &cfg);
        let pos = self
            .find_dest_in(sid, &cfg.addr, cfg.port)
            .ok_or(ControlError::NoSuchDest)?;
        let rid = self.svc(sid).dests[pos].id.0;
        let svc = self.svc_mut(sid);
        let st = &mut svc.dests[pos];
        st.weight = cfg.weight;
        if cfg.weight > 0 {
            st.last_weight = cfg.weight;
        }
        let old_u = self.dests[rid as usize]
            .as_ref()
            .map_or(0, |d| d.cfg.u_threshold);
        let svc = self.svc_mut(sid);
        let st = &mut svc.dests[pos];
        apply_threshold_edit(st, old_u, cfg.u_threshold);
        svc.sched
            .update(&svc.dests, DestChange::Edited { index: pos });
        let d = self.dest_mut(rid);
        d.state_u_threshold = cfg.u_threshold;
        // what changes how existing connections are forwarded (weights and thresholds do not)
        let forwarding = d.cfg.method != cfg.method
            || d.cfg.tunnel != cfg.tunnel
            || d.cfg.tun_csum != cfg.tun_csum;
        d.cfg = cfg;
        Ok((rid, forwarding))
    }

    /// `-d`: move to the trash (connections keep the record alive).
    pub(crate) fn del_dest(
        &mut self,
        key: &ServiceKey,
        addr: &IpAddr,
        port: u16,
        now: Instant,
    ) -> Result<u32, ControlError> {
        let sid = self.find(key).ok_or(ControlError::NoSuchService)?;
        let pos = self
            .find_dest_in(sid, addr, port)
            .ok_or(ControlError::NoSuchDest)?;
        let svc = self.svc_mut(sid);
        let st = svc.dests.remove(pos);
        let rid = st.id.0;
        svc.sched.update(
            &svc.dests,
            DestChange::Removed {
                index: pos,
                id: st.id,
            },
        );
        let ids: Vec<u32> = svc.dests.iter().map(|d| d.id.0).collect();
        for (i, id) in ids.into_iter().enumerate() {
            self.dest_mut(id).pos = Some(i);
        }
        let d = self.dest_mut(rid);
        d.state = st;
        d.state.available = false;
        d.pos = None;
        d.trashed_at = Some(now);
        let tkey = (sid, d.addr16, d.cfg.port);
        self.trash.insert(tkey, rid);
        self.collect_trash_ids(&[rid]);
        Ok(rid)
    }

    /// Free trashed records nothing refers to any more.
    pub(crate) fn collect_trash_ids(&mut self, ids: &[u32]) {
        for &id in ids {
            let free =
                matches!(&self.dests[id as usize], Some(d) if d.pos.is_none() && d.refcnt == 0);
            if free {
                if let Some(d) = &self.dests[id as usize] {
                    let k = (d.svc, d.addr16, d.cfg.port);
                    if d.svc_alive && self.trash.get(&k) == Some(&id) {
                        self.trash.remove(&k);
                    }
                }
                self.dests[id as usize] = None;
                self.free_dests.push(id);
            }
        }
    }

    /// Release one reference; frees a trashed record at zero.
    pub(crate) fn put_dest(&mut self, id: u32) {
        let d = self.dest_mut(id);
        d.refcnt = d.refcnt.saturating_sub(1);
        if d.refcnt == 0 && d.pos.is_none() {
            self.collect_trash_ids(&[id]);
        }
    }
}

/// Editing thresholds: a zero or raised upper threshold clears OVERLOAD at once (spec 4.0).
fn apply_threshold_edit(st: &mut DestState, old_u: u32, new_u: u32) {
    if new_u == 0 || new_u > old_u {
        st.overloaded = false;
    }
}

/// OVERLOAD after binding a connection (spec 4.0).
pub(crate) fn overload_on_bind(st: &mut DestState, u: u32) {
    if u != 0 && st.active.saturating_add(st.inactive) >= u {
        st.overloaded = true;
    }
}

/// OVERLOAD after unbinding a connection, with hysteresis (spec 4.0).
pub(crate) fn overload_on_unbind(st: &mut DestState, u: u32, l: u32) {
    let total = u64::from(st.active) + u64::from(st.inactive);
    if l != 0 {
        if total < u64::from(l) {
            st.overloaded = false;
        }
    } else if u != 0 {
        if total * 4 < u64::from(u) * 3 {
            st.overloaded = false;
        }
    } else {
        st.overloaded = false;
    }
}
