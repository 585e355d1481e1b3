//! The checker state machine, as pure logic: no sockets, no clock, no threads.
//!
//! [`Monitor`] follows keepalived's `check_*.c` / `ipwrapper.c` semantics:
//!
//! * **schedule**: each checker first runs after a random delay in `0..=warmup`
//!   (seeded RNG, reproducible), then every `delay_loop`; after a failure that
//!   `retry` still tolerates, after `delay_before_retry` (both measured from the
//!   moment the previous result arrived, so a slow probe never overlaps the next). A probe not answered by
//!   `connect_timeout` + [`PROBE_GRACE`] counts as failed;
//! * **checker state**: an up checker goes down after `retry + 1` consecutive
//!   failures; a down checker comes up on its first success. `alpha` starts it down;
//! * **real server**: up only when all its enabled checkers are up (no checker:
//!   always up). Down: removed from the service, or set to weight 0 with
//!   `inhibit_on_failure`; up again: added back or its weight restored;
//! * **misc_dynamic**: exit 0 passes with the weight unchanged, 1 fails, 2..=255
//!   passes and sets the weight to `code - 2` (keepalived `check_misc.c`);
//! * **quorum**: the sum of live weights must reach `quorum + hysteresis` to come
//!   up and falls below `quorum - hysteresis` (or to 0) to go down; with a sorry
//!   server, losing quorum pulls every real server (weight 0 if inhibited) and adds
//!   the sorry server, regaining it does the reverse;
//! * **reload** ([`Monitor::reload`]): checkers whose definition is unchanged keep
//!   their state (a failed real server is not re-added before its checker passes);
//!   new ones start per `alpha`; only differences are applied, optionally draining
//!   removed destinations (weight 0, then deletion after the drain period).
//!
//! Inputs are `handle_*` calls with the current time; outputs are drained with
//! `poll_*`: [`Monitor::poll_probe`] (probes to run now), [`Monitor::poll_action`]
//! (changes to apply), [`Monitor::poll_timeout`] (when to call
//! [`Monitor::handle_timeout`] next). Call `handle_timeout` whenever
//! `poll_timeout` has passed, then drain both queues.

use core::net::{IpAddr, SocketAddr};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use rvs_api::{DestConfig, Request, ServiceConfig, ServiceKey};

use crate::config::{self, CheckKind, Model, Notice, NoticeKind, Script, Timing, VsAddr};
use crate::probe::{Outcome, ProbeKind, ProbeSpec, Prober};
use crate::time::{Instant, Rng};

/// Extra time after a probe's timeout before the state machine gives up on it.
pub const PROBE_GRACE: Duration = Duration::from_secs(1);

type Entry = (ServiceConfig, Vec<DestConfig>);

/// What the state machine checks: services, real servers and checkers with
/// everything resolved to api types and probe specs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Targets {
    /// One per `virtual_server` block.
    pub services: Vec<ServiceTarget>,
}

/// Identity of a virtual server across reloads: its header and protocol.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServiceId {
    /// The header.
    pub addr: VsAddr,
    /// `protocol`.
    pub protocol: rvs_api::Protocol,
}

/// One virtual server (several api services for a group).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceTarget {
    /// Identity across reloads.
    pub id: ServiceId,
    /// Api settings, one per key.
    pub configs: Vec<ServiceConfig>,
    /// `quorum`.
    pub quorum: u32,
    /// `hysteresis`.
    pub hysteresis: u32,
    /// `quorum_up` script.
    pub quorum_up: Option<Script>,
    /// `quorum_down` script.
    pub quorum_down: Option<Script>,
    /// `omega`.
    pub omega: bool,
    /// Sorry server: its destination per key (weight 1) and `sorry_server_inhibit`.
    pub sorry: Option<(Vec<DestConfig>, bool)>,
    /// Real servers.
    pub reals: Vec<RealTarget>,
}

/// One real server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealTarget {
    /// Address.
    pub addr: IpAddr,
    /// Port as configured (`None` = the service's).
    pub port: Option<u16>,
    /// Destination per key, at the configured weight.
    pub dests: Vec<DestConfig>,
    /// Configured weight.
    pub weight: i32,
    /// `inhibit_on_failure`.
    pub inhibit: bool,
    /// `notify_up`.
    pub notify_up: Option<Script>,
    /// `notify_down`.
    pub notify_down: Option<Script>,
    /// Enabled checkers.
    pub checks: Vec<CheckTarget>,
}

/// One checker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckTarget {
    /// The probe to run.
    pub spec: ProbeSpec,
    /// Schedule.
    pub timing: Timing,
    /// Starts failed.
    pub alpha: bool,
    /// Exit codes set the weight (`misc_dynamic`).
    pub dynamic: bool,
}

impl Targets {
    /// Resolve a model: probe destinations, Host headers, per-key destinations.
    ///
    /// Disabled checkers (see [`config::Check::enabled`]) are left out (the
    /// load already reported them); so are those `prober` does not support, each
    /// reported in the returned notices. A real server left without checkers is
    /// always up, as in keepalived.
    pub fn from_model(model: &Model, prober: &dyn Prober) -> (Self, Vec<Notice>) {
        let mut notices = Vec::new();
        let sec = model.globals.enable_script_security;
        let mut services = Vec::new();
        for vs in &model.virtual_servers {
            let keys = config::api::keys(vs, &model.groups);
            let configs: Vec<ServiceConfig> = keys
                .iter()
                .filter_map(|k| config::api::service_config(vs, *k).ok())
                .collect();
            if configs.is_empty() || configs.len() != keys.len() {
                continue;
            }
            let vs_port = match vs.addr {
                VsAddr::Addr { port, .. } => Some(port),
                _ => None,
            };
            let sorry = vs.sorry_server.as_ref().map(|s| {
                let dests = keys
                    .iter()
                    .filter_map(|k| config::api::sorry_config(s, k, 1).ok())
                    .collect();
                (dests, s.inhibit)
            });
            let mut reals = Vec::new();
            for rs in &vs.real_servers {
                let dests: Vec<DestConfig> = keys
                    .iter()
                    .filter_map(|k| config::api::dest_config(rs, k, rs.weight).ok())
                    .collect();
                if dests.len() != keys.len() {
                    continue;
                }
                let checks = rs
                    .checks
                    .iter()
                    .filter(|c| c.enabled)
                    .filter_map(|c| {
                        let host = c.conn.connect_ip.unwrap_or(rs.addr);
                        let port = c.conn.connect_port.or(rs.port).or(vs_port).unwrap_or(0);
                        let dst = SocketAddr::new(host, port);
                        let bind = c
                            .conn
                            .bindto
                            .map(|a| SocketAddr::new(a, c.conn.bind_port.unwrap_or(0)));
                        let mut timeout = c.timing.connect_timeout;
                        let mut dynamic = false;
                        let kind = match &c.kind {
                            CheckKind::Tcp => ProbeKind::Tcp { dst },
                            CheckKind::Http(h) => ProbeKind::Http {
                                dst,
                                tls: h.tls,
                                host: h.virtualhost.clone().unwrap_or_else(|| match host {
                                    IpAddr::V4(a) => a.to_string(),
                                    IpAddr::V6(a) => format!("[{a}]"),
                                }),
                                urls: h.urls.clone(),
                                version: h.protocol,
                            },
                            CheckKind::Udp(u) => ProbeKind::Udp {
                                dst,
                                bind,
                                check: u.clone(),
                            },
                            CheckKind::Dns(d) => ProbeKind::Dns {
                                dst,
                                bind,
                                qtype: d.qtype,
                                name: d.name.clone(),
                            },
                            CheckKind::Misc(m) => {
                                timeout = m.timeout;
                                dynamic = m.dynamic;
                                ProbeKind::Misc {
                                    argv: m.argv.clone(),
                                    user: m.user.clone(),
                                    dynamic: m.dynamic,
                                    script_security: sec,
                                }
                            }
                            CheckKind::Ping => ProbeKind::Ping { dst: host },
                            CheckKind::Unsupported(n) => ProbeKind::Unsupported { name: n.clone() },
                        };
                        if !prober.supports(&kind) {
                            notices.push(Notice {
                                pos: c.pos.clone(),
                                keyword: c.kind.name().to_owned(),
                                kind: NoticeKind::CheckerDisabled(format!(
                                    "{} probes are not implemented by this prober; the real \
                                     server's state follows its other checkers",
                                    kind.name()
                                )),
                            });
                            return None;
                        }
                        Some(CheckTarget {
                            spec: ProbeSpec { kind, timeout },
                            timing: c.timing,
                            alpha: c.alpha,
                            dynamic,
                        })
                    })
                    .collect();
                reals.push(RealTarget {
                    addr: rs.addr,
                    port: rs.port,
                    dests,
                    weight: rs.weight,
                    inhibit: rs.inhibit_on_failure,
                    notify_up: rs.notify_up.clone(),
                    notify_down: rs.notify_down.clone(),
                    checks,
                });
            }
            services.push(ServiceTarget {
                id: ServiceId {
                    addr: vs.addr.clone(),
                    protocol: vs.protocol,
                },
                configs,
                quorum: vs.quorum,
                hysteresis: vs.hysteresis,
                quorum_up: vs.quorum_up.clone(),
                quorum_down: vs.quorum_down.clone(),
                omega: vs.omega,
                sorry,
                reals,
            });
        }
        (Self { services }, notices)
    }
}

/// Opaque checker handle, unique for the life of a [`Monitor`] (never reused,
/// so a result arriving after a reload removed its checker is recognised).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CheckId(u64);

/// A probe the caller must run now and report with [`Monitor::handle_result`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeRequest {
    /// The checker.
    pub id: CheckId,
    /// Sequence number to echo back (stale answers are ignored).
    pub seq: u64,
    /// What to run.
    pub spec: ProbeSpec,
}

/// What a transition or reload asks of the balancer (and of the operator's scripts).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Add a service.
    AddService(ServiceConfig),
    /// Change a service's settings.
    EditService(ServiceConfig),
    /// Delete a service.
    DelService(ServiceKey),
    /// Add a real server (start, recovery, reload).
    AddDest {
        /// Service.
        service: ServiceKey,
        /// Destination.
        dest: DestConfig,
    },
    /// Change a real server's weight or settings (inhibit, dynamic weight, reload).
    SetWeight {
        /// Service.
        service: ServiceKey,
        /// New settings.
        dest: DestConfig,
    },
    /// Remove a real server.
    RemoveDest {
        /// Service.
        service: ServiceKey,
        /// Address.
        addr: IpAddr,
        /// Port.
        port: u16,
    },
    /// Quorum lost: the sorry server takes over (`AddDest`, or `EditDest` when
    /// `sorry_server_inhibit` kept it listed at weight 0).
    ActivateSorry {
        /// Service.
        service: ServiceKey,
        /// The sorry server at weight 1.
        dest: DestConfig,
        /// Whether it is already listed (edit instead of add).
        edit: bool,
    },
    /// Quorum regained: the sorry server leaves (deleted, or weight 0 with `sorry_server_inhibit`).
    DeactivateSorry {
        /// Service.
        service: ServiceKey,
        /// The sorry server at its new weight (0).
        dest: DestConfig,
        /// Delete (true) or set weight 0 (false).
        remove: bool,
    },
    /// A state change to report and, when a script is configured, to run it
    /// (e.g. with [`crate::probe::run_script`]); the monitor never runs scripts itself.
    Notify(Notify),
}

impl Action {
    /// The rvs-api request that carries this action out (`None` for [`Action::Notify`]).
    pub fn request(&self) -> Option<Request> {
        Some(match self {
            Self::AddService(s) => Request::AddService(s.clone()),
            Self::EditService(s) => Request::EditService(s.clone()),
            Self::DelService(k) => Request::DelService(*k),
            Self::AddDest { service, dest }
            | Self::ActivateSorry {
                service,
                dest,
                edit: false,
            } => Request::AddDest {
                service: *service,
                dest: dest.clone(),
            },
            Self::SetWeight { service, dest }
            | Self::ActivateSorry {
                service,
                dest,
                edit: true,
            }
            | Self::DeactivateSorry {
                service,
                dest,
                remove: false,
            } => Request::EditDest {
                service: *service,
                dest: dest.clone(),
            },
            Self::RemoveDest {
                service,
                addr,
                port,
            } => Request::DelDest {
                service: *service,
                addr: *addr,
                port: *port,
            },
            Self::DeactivateSorry {
                service,
                dest,
                remove: true,
            } => Request::DelDest {
                service: *service,
                addr: dest.addr,
                port: dest.port,
            },
            Self::Notify(_) => return None,
        })
    }
}

/// A reported state change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notify {
    /// What happened.
    pub event: Event,
    /// The service (first key of a group).
    pub service: ServiceKey,
    /// The real server, for real-server events.
    pub real: Option<(IpAddr, u16)>,
    /// The script configured for this event (`notify_up`, `quorum_down`, ...).
    pub script: Option<Script>,
}

/// Kinds of [`Notify`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// A real server came up.
    RealUp,
    /// A real server went down.
    RealDown,
    /// The service reached quorum.
    QuorumUp,
    /// The service lost quorum.
    QuorumDown,
}

/// State of one real server, for status and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealStatus {
    /// Service (first key).
    pub service: ServiceKey,
    /// Address.
    pub addr: IpAddr,
    /// Port under the first key.
    pub port: u16,
    /// All checkers up.
    pub up: bool,
    /// Weight in force when up (dynamic or configured).
    pub weight: i32,
    /// Per checker: kind and whether it is up.
    pub checks: Vec<(String, bool)>,
}

#[derive(Clone, Debug)]
struct CheckState {
    vs: usize,
    rs: usize,
    target: CheckTarget,
    up: bool,
    retry_it: u32,
    due: Instant,
    in_flight: Option<(u64, Instant)>,
}

#[derive(Clone, Debug)]
struct RealState {
    target: RealTarget,
    up: bool,
    dyn_weight: Option<i32>,
    checks: Vec<CheckId>,
}

impl RealState {
    fn weight(&self) -> i32 {
        self.dyn_weight.unwrap_or(self.target.weight)
    }
}

#[derive(Clone, Debug)]
struct ServiceState {
    target: ServiceTarget,
    quorum_up: bool,
    reals: Vec<RealState>,
}

/// Options of a [`Monitor`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MonitorOptions {
    /// Seed of the warmup RNG.
    pub seed: u64,
    /// On reload, drain removed destinations for this long (weight 0) before deleting them.
    pub drain: Option<Duration>,
}

#[derive(Clone, Debug)]
struct Drain {
    due: Instant,
    service: ServiceConfig,
    /// `None`: the whole service drains; else one destination of a live service.
    dest: Option<DestConfig>,
}

/// The health state machine (see the module docs).
#[derive(Debug)]
pub struct Monitor {
    services: Vec<ServiceState>,
    checks: BTreeMap<CheckId, CheckState>,
    next_id: u64,
    next_seq: u64,
    rng: Rng,
    opts: MonitorOptions,
    drains: Vec<Drain>,
    probes: VecDeque<ProbeRequest>,
    actions: VecDeque<Action>,
}

impl Monitor {
    /// Start checking `targets` at `now`. The first actions add every service
    /// with the real servers that start up (all but those with an `alpha`
    /// checker), and the sorry server where quorum is not met.
    pub fn new(targets: Targets, now: Instant, opts: MonitorOptions) -> Self {
        let mut m = Self {
            services: Vec::new(),
            checks: BTreeMap::new(),
            next_id: 0,
            next_seq: 0,
            rng: Rng::new(opts.seed),
            opts,
            drains: Vec::new(),
            probes: VecDeque::new(),
            actions: VecDeque::new(),
        };
        m.install(targets, now, &HashMap::new(), &HashMap::new());
        let after = m.view();
        m.push_diff(&[], &after);
        m
    }

    /// Build service states, carrying checker state from `old` (keyed by
    /// service id, real server and checker definition).
    fn install(
        &mut self,
        targets: Targets,
        now: Instant,
        old: &HashMap<OldKey, CarriedCheck>,
        quorum: &HashMap<ServiceId, bool>,
    ) {
        self.services.clear();
        self.checks.clear();
        for (vi, st) in targets.services.into_iter().enumerate() {
            let mut reals = Vec::new();
            for (ri, rt) in st.reals.iter().enumerate() {
                let mut ids = Vec::new();
                let mut dyn_weight = None;
                for (ci, ct) in rt.checks.iter().enumerate() {
                    let key = OldKey {
                        service: st.id.clone(),
                        addr: rt.addr,
                        port: rt.port,
                        index: ci,
                    };
                    let state = match old.get(&key) {
                        Some(c) if c.state.target == *ct => {
                            if ct.dynamic && c.configured_weight == rt.weight {
                                dyn_weight = c.dyn_weight;
                            }
                            let mut s = c.state.clone();
                            s.vs = vi;
                            s.rs = ri;
                            (c.id, s)
                        }
                        _ => {
                            let id = CheckId(self.next_id);
                            self.next_id += 1;
                            let warm = self.rng.duration_upto(ct.timing.warmup);
                            (
                                id,
                                CheckState {
                                    vs: vi,
                                    rs: ri,
                                    target: ct.clone(),
                                    up: !ct.alpha,
                                    retry_it: 0,
                                    due: now + warm,
                                    in_flight: None,
                                },
                            )
                        }
                    };
                    ids.push(state.0);
                    self.checks.insert(state.0, state.1);
                }
                let up = ids
                    .iter()
                    .all(|id| self.checks.get(id).is_some_and(|c| c.up));
                reals.push(RealState {
                    target: rt.clone(),
                    up,
                    dyn_weight,
                    checks: ids,
                });
            }
            let quorum_up = quorum.get(&st.id).copied().unwrap_or(true);
            self.services.push(ServiceState {
                target: st,
                quorum_up,
                reals,
            });
        }
        for vi in 0..self.services.len() {
            self.update_quorum(vi);
        }
    }

    /// The services as they should be in the balancer now (health applied,
    /// draining leftovers not included).
    pub fn applied(&self) -> Vec<(ServiceConfig, Vec<DestConfig>)> {
        (0..self.services.len())
            .flat_map(|vi| self.service_view(vi))
            .collect()
    }

    /// [`Monitor::applied`] plus what is still draining (at weight 0).
    fn view(&self) -> Vec<Entry> {
        let mut v = self.applied();
        self.overlay(&mut v, true);
        v
    }

    /// Add draining leftovers to `v`: destinations of live services, and with
    /// `whole` also services that drain as a whole.
    fn overlay(&self, v: &mut Vec<Entry>, whole: bool) {
        if whole {
            for d in self.drains.iter().filter(|d| d.dest.is_none()) {
                if !v.iter().any(|e| e.0.key == d.service.key) {
                    v.push((d.service.clone(), Vec::new()));
                }
            }
        }
        for d in &self.drains {
            if let Some(dest) = &d.dest
                && let Some(e) = v.iter_mut().find(|e| e.0.key == d.service.key)
                && !e
                    .1
                    .iter()
                    .any(|x| x.addr == dest.addr && x.port == dest.port)
            {
                e.1.push(dest.clone());
            }
        }
    }

    /// Service `vi` as listed in the balancer: health applied plus its draining leftovers.
    fn listed(&self, vi: usize) -> Vec<Entry> {
        let mut v = self.service_view(vi);
        self.overlay(&mut v, false);
        v
    }

    /// Stop draining what is wanted again (it is then edited in place, not re-added).
    fn cancel_drains(&mut self) {
        if self.drains.is_empty() {
            return;
        }
        let applied = self.applied();
        self.drains.retain(
            |d| match applied.iter().find(|e| e.0.key == d.service.key) {
                None => true,
                Some(e) => d.dest.as_ref().is_some_and(|dest| {
                    !e.1.iter()
                        .any(|x| x.addr == dest.addr && x.port == dest.port)
                }),
            },
        );
    }

    fn service_view(&self, vi: usize) -> Vec<Entry> {
        let s = &self.services[vi];
        let in_sorry = s.target.sorry.is_some() && !s.quorum_up;
        s.target
            .configs
            .iter()
            .enumerate()
            .map(|(ki, cfg)| {
                let mut dests = Vec::new();
                for r in &s.reals {
                    let Some(d) = r.target.dests.get(ki) else {
                        continue;
                    };
                    if r.up && !in_sorry {
                        dests.push(DestConfig {
                            weight: r.weight(),
                            ..d.clone()
                        });
                    } else if r.target.inhibit {
                        dests.push(DestConfig {
                            weight: 0,
                            ..d.clone()
                        });
                    }
                }
                if let Some((sorry, inhibit)) = &s.target.sorry
                    && let Some(d) = sorry.get(ki)
                {
                    if in_sorry {
                        dests.push(d.clone());
                    } else if *inhibit {
                        dests.push(DestConfig {
                            weight: 0,
                            ..d.clone()
                        });
                    }
                }
                (cfg.clone(), dests)
            })
            .collect()
    }

    /// Queue the actions turning `before` into `after`, labelled.
    fn push_diff(&mut self, before: &[Entry], after: &[Entry]) {
        let sorry_of = |key: &ServiceKey, addr: IpAddr, port: u16| -> bool {
            self.services.iter().any(|s| {
                s.target.configs.iter().enumerate().any(|(ki, c)| {
                    c.key == *key
                        && s.target.sorry.as_ref().is_some_and(|(ds, _)| {
                            ds.get(ki).is_some_and(|d| d.addr == addr && d.port == port)
                        })
                })
            })
        };
        let mut out = Vec::new();
        for r in config::diff_api(before, after) {
            out.push(match r {
                Request::AddService(s) => Action::AddService(s),
                Request::EditService(s) => Action::EditService(s),
                Request::DelService(k) => Action::DelService(k),
                Request::AddDest { service, dest } => {
                    if dest.weight > 0 && sorry_of(&service, dest.addr, dest.port) {
                        Action::ActivateSorry {
                            service,
                            dest,
                            edit: false,
                        }
                    } else {
                        Action::AddDest { service, dest }
                    }
                }
                Request::EditDest { service, dest } => {
                    if sorry_of(&service, dest.addr, dest.port) {
                        if dest.weight == 0 {
                            Action::DeactivateSorry {
                                service,
                                dest,
                                remove: false,
                            }
                        } else {
                            Action::ActivateSorry {
                                service,
                                dest,
                                edit: true,
                            }
                        }
                    } else {
                        Action::SetWeight { service, dest }
                    }
                }
                Request::DelDest {
                    service,
                    addr,
                    port,
                } => {
                    let was = before
                        .iter()
                        .find(|e| e.0.key == service)
                        .and_then(|e| e.1.iter().find(|d| d.addr == addr && d.port == port));
                    match was {
                        Some(d) if d.weight > 0 && sorry_of(&service, addr, port) => {
                            Action::DeactivateSorry {
                                service,
                                dest: DestConfig {
                                    weight: 0,
                                    ..d.clone()
                                },
                                remove: true,
                            }
                        }
                        _ => Action::RemoveDest {
                            service,
                            addr,
                            port,
                        },
                    }
                }
                _ => continue,
            });
        }
        self.actions.extend(out);
    }

    fn first_key(&self, vi: usize) -> ServiceKey {
        self.services[vi].target.configs[0].key
    }

    /// Recompute quorum of service `vi`, queueing notifications.
    fn update_quorum(&mut self, vi: usize) {
        let s = &self.services[vi];
        let sum: i64 = s
            .reals
            .iter()
            .filter(|r| r.up)
            .map(|r| i64::from(r.weight()))
            .sum();
        let q = i64::from(s.target.quorum);
        let h = i64::from(s.target.hysteresis);
        let (event, script) = if !s.quorum_up && sum >= q + h {
            (Event::QuorumUp, s.target.quorum_up.clone())
        } else if s.quorum_up && (sum == 0 || sum < q - h) {
            (Event::QuorumDown, s.target.quorum_down.clone())
        } else {
            return;
        };
        self.services[vi].quorum_up = event == Event::QuorumUp;
        let service = self.first_key(vi);
        self.actions.push_back(Action::Notify(Notify {
            event,
            service,
            real: None,
            script,
        }));
    }

    /// Apply a change to service `vi` through `f`, queueing the resulting actions.
    fn change(&mut self, vi: usize, f: impl FnOnce(&mut ServiceState) -> Vec<Notify>) {
        let before = self.listed(vi);
        let notes = f(&mut self.services[vi]);
        self.actions.extend(notes.into_iter().map(Action::Notify));
        self.update_quorum(vi);
        self.cancel_drains();
        let after = self.listed(vi);
        self.push_diff(&before, &after);
    }

    /// Run due checkers and expire probes overdue by more than [`PROBE_GRACE`].
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut overdue = Vec::new();
        for (id, c) in &mut self.checks {
            match c.in_flight {
                Some((seq, deadline)) => {
                    if now >= deadline + PROBE_GRACE {
                        overdue.push((*id, seq));
                    }
                }
                None => {
                    if now >= c.due {
                        let seq = self.next_seq;
                        self.next_seq += 1;
                        c.in_flight = Some((seq, now + c.target.spec.timeout));
                        self.probes.push_back(ProbeRequest {
                            id: *id,
                            seq,
                            spec: c.target.spec.clone(),
                        });
                    }
                }
            }
        }
        for (id, seq) in overdue {
            let timeout = self
                .checks
                .get(&id)
                .map_or(Duration::ZERO, |c| c.target.spec.timeout);
            self.handle_result(
                now,
                id,
                seq,
                &Outcome::Fail(crate::probe::ProbeError::Timeout(timeout)),
            );
        }
        let expired: Vec<usize> = (0..self.drains.len())
            .filter(|&i| now >= self.drains[i].due)
            .collect();
        if !expired.is_empty() {
            let before = self.view();
            for i in expired.into_iter().rev() {
                self.drains.remove(i);
            }
            let after = self.view();
            self.push_diff(&before, &after);
        }
    }

    /// Record the outcome of probe `seq` of checker `id` (stale or unknown ones are ignored).
    pub fn handle_result(&mut self, now: Instant, id: CheckId, seq: u64, outcome: &Outcome) {
        let Some(c) = self.checks.get_mut(&id) else {
            return;
        };
        if c.in_flight.map(|f| f.0) != Some(seq) {
            return;
        }
        c.in_flight = None;
        let was_up = c.up;
        let mut weight = None;
        match outcome {
            Outcome::Pass | Outcome::Weight(_) => {
                c.retry_it = 0;
                c.up = true;
                if let Outcome::Weight(w) = outcome
                    && c.target.dynamic
                {
                    weight = Some(*w);
                }
            }
            Outcome::Fail(_) => {
                if c.up {
                    if c.retry_it < c.target.timing.retry {
                        c.retry_it += 1;
                    } else {
                        c.retry_it = 0;
                        c.up = false;
                    }
                }
            }
        }
        c.due = now
            + if c.retry_it > 0 {
                c.target.timing.delay_before_retry
            } else {
                c.target.timing.delay_loop
            };
        let (vi, ri, now_up) = (c.vs, c.rs, c.up);
        if was_up == now_up && weight.is_none() {
            return;
        }
        let service = self.first_key(vi);
        let checks = &self.checks;
        let real_up = self.services[vi].reals[ri]
            .checks
            .iter()
            .all(|id| checks.get(id).is_some_and(|c| c.up));
        self.change(vi, |s| {
            let r = &mut s.reals[ri];
            if let Some(w) = weight {
                r.dyn_weight = Some(w);
            }
            let mut notes = Vec::new();
            if r.up != real_up {
                r.up = real_up;
                let port = r.target.dests.first().map_or(0, |d| d.port);
                notes.push(Notify {
                    event: if real_up {
                        Event::RealUp
                    } else {
                        Event::RealDown
                    },
                    service,
                    real: Some((r.target.addr, port)),
                    script: if real_up {
                        r.target.notify_up.clone()
                    } else {
                        r.target.notify_down.clone()
                    },
                });
            }
            notes
        });
    }

    /// Replace the targets (configuration reload). Unchanged checkers keep their
    /// state, and only differences are applied; see the module docs.
    pub fn reload(&mut self, targets: Targets, now: Instant) {
        let before = self.view();
        let mut carried = HashMap::new();
        for s in &self.services {
            for r in &s.reals {
                for (ci, id) in r.checks.iter().enumerate() {
                    if let Some(c) = self.checks.get(id) {
                        carried.insert(
                            OldKey {
                                service: s.target.id.clone(),
                                addr: r.target.addr,
                                port: r.target.port,
                                index: ci,
                            },
                            CarriedCheck {
                                id: *id,
                                state: c.clone(),
                                dyn_weight: r.dyn_weight,
                                configured_weight: r.target.weight,
                            },
                        );
                    }
                }
            }
        }
        let quorum: HashMap<ServiceId, bool> = self
            .services
            .iter()
            .map(|s| (s.target.id.clone(), s.quorum_up))
            .collect();
        self.install(targets, now, &carried, &quorum);
        let desired = self.applied();
        if let Some(period) = self.opts.drain {
            let desired_keys: HashMap<ServiceKey, &Entry> =
                desired.iter().map(|e| (e.0.key, e)).collect();
            self.cancel_drains();
            for (svc, dests) in &before {
                match desired_keys.get(&svc.key) {
                    None => {
                        if !self
                            .drains
                            .iter()
                            .any(|d| d.dest.is_none() && d.service.key == svc.key)
                        {
                            self.drains.push(Drain {
                                due: now + period,
                                service: svc.clone(),
                                dest: None,
                            });
                        }
                        for d in dests {
                            if !self.drains.iter().any(|x| {
                                x.service.key == svc.key
                                    && x.dest
                                        .as_ref()
                                        .is_some_and(|y| y.addr == d.addr && y.port == d.port)
                            }) {
                                self.drains.push(Drain {
                                    due: now + period,
                                    service: svc.clone(),
                                    dest: Some(DestConfig {
                                        weight: 0,
                                        ..d.clone()
                                    }),
                                });
                            }
                        }
                    }
                    Some(e) => {
                        for d in dests {
                            let kept = e.1.iter().any(|x| x.addr == d.addr && x.port == d.port);
                            let draining = self.drains.iter().any(|x| {
                                x.service.key == svc.key
                                    && x.dest
                                        .as_ref()
                                        .is_some_and(|y| y.addr == d.addr && y.port == d.port)
                            });
                            if !kept && !draining {
                                self.drains.push(Drain {
                                    due: now + period,
                                    service: svc.clone(),
                                    dest: Some(DestConfig {
                                        weight: 0,
                                        ..d.clone()
                                    }),
                                });
                            }
                        }
                    }
                }
            }
        }
        let after = self.view();
        self.push_diff(&before, &after);
    }

    /// Actions for a clean stop: every service deleted, and with `omega` the
    /// `quorum_down` / `notify_down` notifications. Checking stops.
    pub fn shutdown(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        for s in &self.services {
            let first = s.target.configs[0].key;
            if s.target.omega {
                for r in s.reals.iter().filter(|r| r.up) {
                    out.push(Action::Notify(Notify {
                        event: Event::RealDown,
                        service: first,
                        real: Some((r.target.addr, r.target.dests.first().map_or(0, |d| d.port))),
                        script: r.target.notify_down.clone(),
                    }));
                }
                if s.quorum_up {
                    out.push(Action::Notify(Notify {
                        event: Event::QuorumDown,
                        service: first,
                        real: None,
                        script: s.target.quorum_down.clone(),
                    }));
                }
            }
        }
        for (svc, _) in self.view() {
            out.push(Action::DelService(svc.key));
        }
        self.services.clear();
        self.checks.clear();
        self.drains.clear();
        self.probes.clear();
        out
    }

    /// Next probe to run now, if any.
    pub fn poll_probe(&mut self) -> Option<ProbeRequest> {
        self.probes.pop_front()
    }

    /// Next action to apply, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Monitor::handle_timeout`] must run next (`None`: nothing scheduled).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let checks = self.checks.values().map(|c| match c.in_flight {
            Some((_, deadline)) => deadline + PROBE_GRACE,
            None => c.due,
        });
        checks.chain(self.drains.iter().map(|d| d.due)).min()
    }

    /// State of every real server.
    pub fn status(&self) -> Vec<RealStatus> {
        let mut out = Vec::new();
        for s in &self.services {
            let service = s.target.configs[0].key;
            for r in &s.reals {
                out.push(RealStatus {
                    service,
                    addr: r.target.addr,
                    port: r.target.dests.first().map_or(0, |d| d.port),
                    up: r.up,
                    weight: r.weight(),
                    checks: r
                        .checks
                        .iter()
                        .filter_map(|id| self.checks.get(id))
                        .map(|c| (c.target.spec.kind.name().to_owned(), c.up))
                        .collect(),
                });
            }
        }
        out
    }

    /// Whether each service (first key) has quorum.
    pub fn quorum(&self) -> Vec<(ServiceKey, bool)> {
        self.services
            .iter()
            .map(|s| (s.target.configs[0].key, s.quorum_up))
            .collect()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct OldKey {
    service: ServiceId,
    addr: IpAddr,
    port: Option<u16>,
    index: usize,
}

#[derive(Clone, Debug)]
struct CarriedCheck {
    id: CheckId,
    state: CheckState,
    dyn_weight: Option<i32>,
    configured_weight: i32,
}
