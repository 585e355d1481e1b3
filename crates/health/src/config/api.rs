//! From the model to rvs-api services, and from one configuration to the next.
//!
//! Precedence rules: see the [`crate::config`] module docs.

use std::collections::{BTreeMap, HashMap};

use rvs_api::{DestConfig, Family, Request, ServiceConfig, ServiceKey, default_netmask, svc_flags};

use super::{Granularity, GroupMember, Model, Pos, VirtualServer, VsAddr, VsGroup};

type Entry = (ServiceConfig, Vec<DestConfig>);

/// A service key as a human reads it: `TCP 198.18.0.10:80`, `FWM 5 IPv6`.
pub(crate) fn key_text(k: &ServiceKey) -> String {
    match k {
        ServiceKey::Addr { proto, addr, port } => match addr {
            core::net::IpAddr::V4(a) => format!("{proto} {a}:{port}"),
            core::net::IpAddr::V6(a) => format!("{proto} [{a}]:{port}"),
        },
        ServiceKey::Fwmark { af, mark } => match af {
            Family::V4 => format!("FWM {mark} IPv4"),
            Family::V6 => format!("FWM {mark} IPv6"),
        },
    }
}

/// Family of an fwmark service: the group member's, else `ip_family`, else
/// the first non-tunnelled real server's, else IPv4.
fn fwmark_family(vs: &VirtualServer, explicit: Option<Family>) -> Family {
    explicit
        .or(vs.ip_family)
        .or_else(|| {
            vs.real_servers
                .iter()
                .find(|r| r.method.kind != rvs_api::ForwardMethod::Tunnel)
                .map(|r| Family::of(&r.addr))
        })
        .unwrap_or(Family::V4)
}

/// The service keys a virtual server declares (several for a group).
pub(crate) fn keys(vs: &VirtualServer, groups: &BTreeMap<String, VsGroup>) -> Vec<ServiceKey> {
    match &vs.addr {
        VsAddr::Addr { addr, port } => vec![ServiceKey::Addr {
            proto: vs.protocol,
            addr: *addr,
            port: *port,
        }],
        VsAddr::Fwmark(mark) => vec![ServiceKey::Fwmark {
            af: fwmark_family(vs, None),
            mark: *mark,
        }],
        VsAddr::Group(name) => groups
            .get(name)
            .map(|g| {
                g.members
                    .iter()
                    .map(|m| match *m {
                        GroupMember::Addr { addr, port } => ServiceKey::Addr {
                            proto: vs.protocol,
                            addr,
                            port,
                        },
                        GroupMember::Fwmark { mark, family } => ServiceKey::Fwmark {
                            af: fwmark_family(vs, family),
                            mark,
                        },
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// The service settings of `vs` for one of its keys.
pub(crate) fn service_config(vs: &VirtualServer, key: ServiceKey) -> Result<ServiceConfig, String> {
    let mut s = ServiceConfig::new(key);
    s.scheduler.clone_from(&vs.scheduler);
    s.flags = vs.sched_flags;
    if vs.ops {
        s.flags |= svc_flags::ONEPACKET;
    }
    if let Some(t) = vs.persistence_timeout {
        s.flags |= svc_flags::PERSISTENT;
        s.timeout_secs = t;
    }
    s.netmask = match (vs.persistence_granularity, key.family()) {
        (None, f) => default_netmask(f),
        (Some(Granularity::V4Mask(m)), Family::V4) => m,
        (Some(Granularity::V4Mask(_)), Family::V6) => {
            return Err(
                "persistence_granularity of an IPv6 service must be a prefix length".into(),
            );
        }
        (Some(Granularity::Prefix(p)), Family::V4) if p <= 32 => {
            u32::MAX.checked_shl(32 - u32::from(p)).unwrap_or(0)
        }
        (Some(Granularity::Prefix(p)), Family::V4) => {
            return Err(format!("prefix length {p} is too long for IPv4"));
        }
        (Some(Granularity::Prefix(p)), Family::V6) => u32::from(p),
    };
    s.pe.clone_from(&vs.persistence_engine);
    s.validate().map_err(|e| e.message)?;
    Ok(s)
}

/// A real server's destination settings under `key`, at `weight`.
pub(crate) fn dest_config(
    rs: &super::RealServer,
    key: &ServiceKey,
    weight: i32,
) -> Result<DestConfig, String> {
    let d = DestConfig {
        addr: rs.addr,
        port: rs.port.unwrap_or(key.port()),
        method: rs.method.kind,
        weight,
        u_threshold: rs.u_threshold,
        l_threshold: rs.l_threshold,
        tun_type: rs.method.tun_type,
        tun_port: rs.method.tun_port,
        tun_flags: rs.method.tun_flags,
    };
    d.validate_for(key).map_err(|e| e.message)?;
    Ok(d)
}

/// The sorry server's destination settings under `key`, at `weight`.
pub(crate) fn sorry_config(
    s: &super::SorryServer,
    key: &ServiceKey,
    weight: i32,
) -> Result<DestConfig, String> {
    let d = DestConfig {
        addr: s.addr,
        port: s.port.unwrap_or(key.port()),
        method: s.method.kind,
        weight,
        u_threshold: 0,
        l_threshold: 0,
        tun_type: s.method.tun_type,
        tun_port: s.method.tun_port,
        tun_flags: s.method.tun_flags,
    };
    d.validate_for(key).map_err(|e| e.message)?;
    Ok(d)
}

/// Every service of `vs` with every real server at its configured weight;
/// the first validation failure as `(position, keyword, message)`.
pub(crate) fn entries(
    vs: &VirtualServer,
    groups: &BTreeMap<String, VsGroup>,
) -> Result<Vec<Entry>, (Pos, &'static str, String)> {
    let mut out = Vec::new();
    for key in keys(vs, groups) {
        let what = key_text(&key);
        let svc = service_config(vs, key)
            .map_err(|m| (vs.pos.clone(), "virtual_server", format!("{what}: {m}")))?;
        let mut dests = Vec::with_capacity(vs.real_servers.len());
        for rs in &vs.real_servers {
            dests.push(
                dest_config(rs, &key, rs.weight)
                    .map_err(|m| (rs.pos.clone(), "real_server", format!("{what}: {m}")))?,
            );
        }
        if let Some(s) = &vs.sorry_server {
            sorry_config(s, &key, 1)
                .map_err(|m| (vs.pos.clone(), "sorry_server", format!("{what}: {m}")))?;
        }
        out.push((svc, dests));
    }
    Ok(out)
}

/// The services a model declares, each with every real server at its
/// configured weight (the state with every checker passing), in file order.
///
/// This is the static view of the file; [`crate::check::Monitor`] applies health
/// state on top of it (alpha, failures, quorum and sorry servers). Entries that
/// fail rvs-api validation cannot come from [`Model::load`]; in a model built by
/// hand they are skipped.
pub fn to_api(model: &Model) -> Vec<(ServiceConfig, Vec<DestConfig>)> {
    model
        .virtual_servers
        .iter()
        .flat_map(|vs| entries(vs, &model.groups).unwrap_or_default())
        .collect()
}

/// How a reload removes destinations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiffOptions {
    /// Drain instead of deleting at once: removed destinations (and those of
    /// removed services) are first set to weight 0 (quiescent: existing
    /// connections continue, no new ones), and deleted only by [`Plan::after_drain`].
    pub drain: bool,
}

/// The requests of a reload, in two steps when draining.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// To apply now, in order.
    pub now: Vec<Request>,
    /// To apply once the drain period is over (empty without draining). A newer
    /// reload before then supersedes it: compute a new plan from the configuration
    /// in force instead of applying a stale one.
    pub after_drain: Vec<Request>,
}

/// The requests that turn the services of `old` into those of `new`.
///
/// Only differences are applied: a service whose settings changed gets
/// `EditService`; removed services `DelService`; destinations are compared by
/// `(addr, port)` and get `DelDest`, `EditDest` (any setting changed) or
/// `AddDest`. Identical services and destinations produce nothing. Order:
/// service deletions, then per service (in `new`'s order) add or edit, destination
/// deletions, edits, additions.
pub fn diff_api(old: &[Entry], new: &[Entry]) -> Vec<Request> {
    diff_impl(old, new, DiffOptions::default()).now
}

/// [`diff_api`] between two models' static views ([`to_api`]).
pub fn diff(old: &Model, new: &Model) -> Vec<Request> {
    diff_api(&to_api(old), &to_api(new))
}

/// [`diff_api`] with options (draining), between two api views.
pub fn diff_with(old: &[Entry], new: &[Entry], opts: DiffOptions) -> Plan {
    diff_impl(old, new, opts)
}

fn diff_impl(old: &[Entry], new: &[Entry], opts: DiffOptions) -> Plan {
    let mut plan = Plan::default();
    let old_map: HashMap<ServiceKey, &Entry> = old.iter().map(|e| (e.0.key, e)).collect();
    let new_keys: HashMap<ServiceKey, ()> = new.iter().map(|e| (e.0.key, ())).collect();
    for (svc, dests) in old {
        if new_keys.contains_key(&svc.key) {
            continue;
        }
        if opts.drain {
            for d in dests.iter().filter(|d| d.weight != 0) {
                plan.now.push(Request::EditDest {
                    service: svc.key,
                    dest: DestConfig {
                        weight: 0,
                        ..d.clone()
                    },
                });
            }
            plan.after_drain.push(Request::DelService(svc.key));
        } else {
            plan.now.push(Request::DelService(svc.key));
        }
    }
    for (svc, dests) in new {
        let key = svc.key;
        let Some((old_svc, old_dests)) = old_map.get(&key).map(|e| (&e.0, &e.1)) else {
            plan.now.push(Request::AddService(svc.clone()));
            for d in dests {
                plan.now.push(Request::AddDest {
                    service: key,
                    dest: d.clone(),
                });
            }
            continue;
        };
        if svc != old_svc {
            plan.now.push(Request::EditService(svc.clone()));
        }
        let new_by: HashMap<_, &DestConfig> = dests.iter().map(|d| ((d.addr, d.port), d)).collect();
        let old_by: HashMap<_, &DestConfig> =
            old_dests.iter().map(|d| ((d.addr, d.port), d)).collect();
        for d in old_dests {
            if new_by.contains_key(&(d.addr, d.port)) {
                continue;
            }
            let del = Request::DelDest {
                service: key,
                addr: d.addr,
                port: d.port,
            };
            if opts.drain {
                if d.weight != 0 {
                    plan.now.push(Request::EditDest {
                        service: key,
                        dest: DestConfig {
                            weight: 0,
                            ..d.clone()
                        },
                    });
                }
                plan.after_drain.push(del);
            } else {
                plan.now.push(del);
            }
        }
        for d in dests {
            if let Some(o) = old_by.get(&(d.addr, d.port))
                && *o != d
            {
                plan.now.push(Request::EditDest {
                    service: key,
                    dest: d.clone(),
                });
            }
        }
        for d in dests {
            if !old_by.contains_key(&(d.addr, d.port)) {
                plan.now.push(Request::AddDest {
                    service: key,
                    dest: d.clone(),
                });
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_api::Protocol;

    fn key(port: u16) -> ServiceKey {
        ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: "198.18.0.10".parse().expect("addr"),
            port,
        }
    }

    fn dest(last: u8, weight: i32) -> DestConfig {
        let mut d = DestConfig::new(format!("198.19.0.{last}").parse().expect("addr"), 80);
        d.weight = weight;
        d
    }

    #[test]
    fn identical_views_give_nothing() {
        let v = vec![(ServiceConfig::new(key(80)), vec![dest(1, 1), dest(2, 5)])];
        assert!(diff_api(&v, &v).is_empty());
    }

    #[test]
    fn drain_sets_weight_zero_then_deletes() {
        let old = vec![(ServiceConfig::new(key(80)), vec![dest(1, 1), dest(2, 5)])];
        let new = vec![(ServiceConfig::new(key(80)), vec![dest(1, 1)])];
        let plan = diff_with(&old, &new, DiffOptions { drain: true });
        assert_eq!(
            plan.now,
            vec![Request::EditDest {
                service: key(80),
                dest: dest(2, 0)
            }]
        );
        assert_eq!(
            plan.after_drain,
            vec![Request::DelDest {
                service: key(80),
                addr: dest(2, 0).addr,
                port: 80
            }]
        );
    }
}
