//! Read-only views of the tables for listings (`ipvsadm -L`, `-L -c`, JSON, metrics).

use core::net::IpAddr;

use crate::addr::from16;
use crate::balancer::Balancer;
use crate::conn::{F_ASSURED, F_TEMPLATE};
use crate::proto::{SctpState, TcpState};
use crate::service::{DestConfig, ServiceConfig};
use crate::stats::{Rates, Stats};
use crate::time::Instant;

/// A destination as listings show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestInfo {
    /// Settings.
    pub config: DestConfig,
    /// ActiveConn.
    pub active: u32,
    /// InActConn.
    pub inactive: u32,
    /// PersistConn.
    pub persist: u32,
    /// Whether the destination is marked overloaded by its thresholds.
    pub overloaded: bool,
    /// Counters.
    pub stats: Stats,
    /// Rates.
    pub rates: Rates,
}

/// A service as listings show it, destinations newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceInfo {
    /// Settings.
    pub config: ServiceConfig,
    /// Counters.
    pub stats: Stats,
    /// Rates.
    pub rates: Rates,
    /// Destinations in list order (newest first).
    pub dests: Vec<DestInfo>,
}

/// A connection or template as `ipvsadm -L -c` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    /// IP protocol, 0 for fwmark-service templates (shown as `IP`).
    pub protocol: u8,
    /// Client address (masked for templates).
    pub caddr: IpAddr,
    /// Client port (0 for templates).
    pub cport: u16,
    /// Virtual address (fwmark as an IPv4 address for fwmark templates).
    pub vaddr: IpAddr,
    /// Virtual port.
    pub vport: u16,
    /// Destination address.
    pub daddr: IpAddr,
    /// Destination port.
    pub dport: u16,
    /// State name (`ESTABLISHED`, `UDP`, `NONE`, `ASSURED`, ...).
    pub state: &'static str,
    /// Remaining seconds before expiry.
    pub expires_secs: u64,
    /// Whether this is a persistence template.
    pub template: bool,
    /// Packets seen from the client.
    pub in_pkts: u32,
    /// A flow of it is offloaded ([`crate::offload`]): the kernel fast path forwards its
    /// established packets, its counters and timer follow once a second.
    pub offloaded: bool,
}

impl Balancer {
    /// Every service in creation order, with its destinations newest first.
    pub fn services(&self) -> Vec<ServiceInfo> {
        let mut ids: Vec<u32> = self.services.service_ids().collect();
        ids.sort_by_key(|&i| self.services.svc(i).serial);
        ids.into_iter().map(|i| self.service_info(i)).collect()
    }

    /// One service.
    pub fn service(&self, key: &crate::ServiceKey) -> Option<ServiceInfo> {
        self.services.find(key).map(|i| self.service_info(i))
    }

    fn service_info(&self, sid: u32) -> ServiceInfo {
        let svc = self.services.svc(sid);
        ServiceInfo {
            config: svc.cfg.clone(),
            stats: svc.stats,
            rates: svc.est.rates(),
            dests: svc
                .dests
                .iter()
                .map(|st| {
                    let d = self.services.dest(st.id.0);
                    DestInfo {
                        config: d.cfg.clone(),
                        active: st.active,
                        inactive: st.inactive,
                        persist: d.persist,
                        overloaded: st.overloaded,
                        stats: d.stats,
                        rates: d.est.rates(),
                    }
                })
                .collect(),
        }
    }

    /// Every tracked entry with its remaining time at `now`.
    pub fn connections(&self, now: Instant) -> Vec<ConnInfo> {
        self.conns
            .iter()
            .map(|(_, c)| {
                let template = c.flags & F_TEMPLATE != 0;
                let state = if template {
                    if c.flags & F_ASSURED != 0 {
                        "ASSURED"
                    } else {
                        "NONE"
                    }
                } else {
                    match c.proto {
                        6 => TcpState::from_index(c.state).name(),
                        132 => SctpState::from_index(c.state).name(),
                        17 => "UDP",
                        _ => "NONE",
                    }
                };
                let v6 = c.is_v6();
                ConnInfo {
                    protocol: c.proto,
                    caddr: from16(&c.caddr, v6),
                    cport: c.cport,
                    vaddr: if template && c.proto == 0 {
                        from16(&c.vaddr, false)
                    } else {
                        from16(&c.vaddr, v6)
                    },
                    vport: c.vport,
                    daddr: from16(&c.daddr, c.dest_v6()),
                    dport: c.dport,
                    state,
                    expires_secs: c.expires_ms.saturating_sub(now.millis()).div_ceil(1000),
                    template,
                    in_pkts: c.in_pkts,
                    offloaded: c.flags & crate::conn::F_OFF != 0,
                }
            })
            .collect()
    }
}
