//! Translation between the control protocol's types (`rvs-api`) and the core's.

use rvs_api as api;
use rvs_core as core;
use rvs_sched::{SchedFlags, SchedKind};

/// An api error with the code ipvsadm maps to its message.
pub(crate) fn err(code: api::ErrorCode, msg: impl Into<String>) -> api::Response {
    api::Response::error(code, msg)
}

pub(crate) fn control_error(e: &core::ControlError) -> api::Response {
    use core::ControlError as E;
    let code = match e {
        E::ServiceExists | E::DestExists => api::ErrorCode::Exists,
        E::NoSuchService => api::ErrorCode::NoService,
        E::NoSuchDest => api::ErrorCode::NotFound,
        E::SchedulerNotFound => api::ErrorCode::SchedNotFound,
        E::OutOfRange(_) => api::ErrorCode::Range,
        _ => api::ErrorCode::Inval,
    };
    err(code, e.to_string())
}

pub(crate) fn key_to_core(k: &api::ServiceKey) -> core::ServiceKey {
    match *k {
        api::ServiceKey::Addr { proto, addr, port } => core::ServiceKey::Addr {
            proto: match proto {
                api::Protocol::Tcp => core::Protocol::Tcp,
                api::Protocol::Udp => core::Protocol::Udp,
                api::Protocol::Sctp => core::Protocol::Sctp,
            },
            addr,
            port,
        },
        api::ServiceKey::Fwmark { af, mark } => core::ServiceKey::Fwmark {
            v6: af == api::Family::V6,
            mark,
        },
    }
}

pub(crate) fn key_to_api(k: &core::ServiceKey) -> api::ServiceKey {
    match *k {
        core::ServiceKey::Addr { proto, addr, port } => api::ServiceKey::Addr {
            proto: match proto {
                core::Protocol::Tcp => api::Protocol::Tcp,
                core::Protocol::Udp => api::Protocol::Udp,
                core::Protocol::Sctp => api::Protocol::Sctp,
            },
            addr,
            port,
        },
        core::ServiceKey::Fwmark { v6, mark } => api::ServiceKey::Fwmark {
            af: if v6 { api::Family::V6 } else { api::Family::V4 },
            mark,
        },
    }
}

/// Service settings; unknown schedulers and persistence engines are `SchedNotFound`.
pub(crate) fn service_to_core(
    s: &api::ServiceConfig,
) -> Result<core::ServiceConfig, (api::ErrorCode, String)> {
    let scheduler: SchedKind = s.scheduler.parse().map_err(|_| {
        (
            api::ErrorCode::SchedNotFound,
            format!("scheduler {} not found", s.scheduler),
        )
    })?;
    if let Some(pe) = &s.pe {
        // rvs implements no persistence engine (the kernel has only `sip`)
        return Err((
            api::ErrorCode::SchedNotFound,
            format!("persistence engine {pe} not available"),
        ));
    }
    let key = key_to_core(&s.key);
    let persistence = s.is_persistent().then(|| {
        if key.is_v6() {
            core::Persistence {
                timeout_secs: s.timeout_secs,
                v4_mask: u32::MAX,
                v6_prefix: u8::try_from(s.netmask).unwrap_or(128),
            }
        } else {
            core::Persistence {
                timeout_secs: s.timeout_secs,
                v4_mask: s.netmask,
                v6_prefix: 128,
            }
        }
    });
    Ok(core::ServiceConfig {
        key,
        scheduler,
        sched_flags: SchedFlags(s.flags & api::svc_flags::SCHED_MASK),
        persistence,
        one_packet: s.is_onepacket(),
    })
}

pub(crate) fn service_to_api(s: &core::ServiceConfig) -> api::ServiceConfig {
    let key = key_to_api(&s.key);
    let mut flags = s.sched_flags.0 & api::svc_flags::SCHED_MASK;
    if s.persistence.is_some() {
        flags |= api::svc_flags::PERSISTENT;
    }
    if s.one_packet {
        flags |= api::svc_flags::ONEPACKET;
    }
    let (timeout_secs, netmask) = match s.persistence {
        Some(p) if s.key.is_v6() => (p.timeout_secs, u32::from(p.v6_prefix)),
        Some(p) => (p.timeout_secs, p.v4_mask),
        None => (0, api::default_netmask(key.family())),
    };
    api::ServiceConfig {
        key,
        scheduler: s.scheduler.to_string(),
        flags,
        timeout_secs,
        netmask,
        pe: None,
    }
}

pub(crate) fn dest_to_core(d: &api::DestConfig) -> core::DestConfig {
    core::DestConfig {
        addr: d.addr,
        port: d.port,
        method: match d.method {
            api::ForwardMethod::Masq => core::ForwardMethod::Masq,
            api::ForwardMethod::Local => core::ForwardMethod::Local,
            api::ForwardMethod::Tunnel => core::ForwardMethod::Tunnel,
            api::ForwardMethod::Route => core::ForwardMethod::DirectRoute,
        },
        weight: d.weight,
        u_threshold: d.u_threshold,
        l_threshold: d.l_threshold,
        tunnel: match d.tun_type {
            api::TunnelType::Ipip => core::TunnelType::Ipip,
            api::TunnelType::Gue => core::TunnelType::Gue { port: d.tun_port },
            api::TunnelType::Gre => core::TunnelType::Gre,
        },
        tun_csum: match d.tun_flags {
            api::TunnelCsum::NoCsum => core::TunnelCsum::NoCsum,
            api::TunnelCsum::Csum => core::TunnelCsum::Csum,
            api::TunnelCsum::RemCsum => core::TunnelCsum::RemCsum,
        },
    }
}

pub(crate) fn dest_to_api(d: &core::DestConfig) -> api::DestConfig {
    let (tun_type, tun_port) = match d.tunnel {
        core::TunnelType::Ipip => (api::TunnelType::Ipip, 0),
        core::TunnelType::Gue { port } => (api::TunnelType::Gue, port),
        core::TunnelType::Gre => (api::TunnelType::Gre, 0),
    };
    api::DestConfig {
        addr: d.addr,
        port: d.port,
        method: match d.method {
            core::ForwardMethod::Masq => api::ForwardMethod::Masq,
            core::ForwardMethod::Local => api::ForwardMethod::Local,
            core::ForwardMethod::Tunnel => api::ForwardMethod::Tunnel,
            core::ForwardMethod::DirectRoute => api::ForwardMethod::Route,
        },
        weight: d.weight,
        u_threshold: d.u_threshold,
        l_threshold: d.l_threshold,
        tun_type,
        tun_port,
        tun_flags: match d.tun_csum {
            core::TunnelCsum::NoCsum => api::TunnelCsum::NoCsum,
            core::TunnelCsum::Csum => api::TunnelCsum::Csum,
            core::TunnelCsum::RemCsum => api::TunnelCsum::RemCsum,
        },
    }
}

fn stats(s: &core::stats::Stats) -> api::Stats {
    api::Stats {
        conns: s.conns,
        inpkts: s.inpkts,
        outpkts: s.outpkts,
        inbytes: s.inbytes,
        outbytes: s.outbytes,
    }
}

fn rates(r: &core::stats::Rates) -> api::Rates {
    api::Rates {
        cps: r.cps,
        inpps: r.inpps,
        outpps: r.outpps,
        inbps: r.inbps,
        outbps: r.outbps,
    }
}

pub(crate) fn service_entry(s: &core::ServiceInfo) -> api::ServiceEntry {
    api::ServiceEntry {
        config: service_to_api(&s.config),
        stats: stats(&s.stats),
        rates: rates(&s.rates),
        dests: s
            .dests
            .iter()
            .map(|d| api::DestEntry {
                config: dest_to_api(&d.config),
                active: d.active,
                inactive: d.inactive,
                persist: d.persist,
                stats: stats(&d.stats),
                rates: rates(&d.rates),
            })
            .collect(),
    }
}

pub(crate) fn conn_entry(c: &core::ConnInfo) -> api::ConnEntry {
    api::ConnEntry {
        protocol: u16::from(c.protocol),
        caddr: c.caddr,
        cport: c.cport,
        vaddr: c.vaddr,
        vport: c.vport,
        daddr: c.daddr,
        dport: c.dport,
        state: c.state.to_owned(),
        expires_secs: c.expires_secs,
        pe_name: None,
        pe_data: None,
        fast_path: c.offloaded,
    }
}
