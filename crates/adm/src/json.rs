//! `--json`: the machine-readable listing extension (schema `rvsadm/1`,
//! documented in docs/json-schema.md). Addresses are always numeric; the order of
//! services and destinations is the text listing's (sorted unless `--nosort`).

use core::net::IpAddr;

use serde::Serialize;

use rvs_api::{
    ConnEntry, DaemonConfig, DestEntry, Family, ForwardMethod, Info, Rates, ServiceEntry,
    ServiceKey, Stats, Timeouts, TunnelCsum, TunnelType, netmask_v4,
};

use crate::format::{cmp_services, conn_proto_name, glibc_qsort, sched_flags_text, sort_dests};
use crate::names::ntop;

/// Schema identifier carried in every document.
pub const SCHEMA: &str = "rvsadm/1";

#[derive(Serialize)]
struct StatsJ {
    conns: u64,
    inpkts: u64,
    outpkts: u64,
    inbytes: u64,
    outbytes: u64,
}

impl From<&Stats> for StatsJ {
    fn from(s: &Stats) -> Self {
        Self {
            conns: s.conns,
            inpkts: s.inpkts,
            outpkts: s.outpkts,
            inbytes: s.inbytes,
            outbytes: s.outbytes,
        }
    }
}

#[derive(Serialize)]
struct RatesJ {
    cps: u64,
    inpps: u64,
    outpps: u64,
    inbps: u64,
    outbps: u64,
}

impl From<&Rates> for RatesJ {
    fn from(r: &Rates) -> Self {
        Self {
            cps: r.cps,
            inpps: r.inpps,
            outpps: r.outpps,
            inbps: r.inbps,
            outbps: r.outbps,
        }
    }
}

#[derive(Serialize)]
struct TunnelJ {
    #[serde(rename = "type")]
    kind: &'static str,
    port: Option<u16>,
    checksum: &'static str,
}

#[derive(Serialize)]
struct DestJ {
    address: String,
    port: u16,
    family: &'static str,
    forward: &'static str,
    weight: i32,
    u_threshold: u32,
    l_threshold: u32,
    active_conns: u32,
    inactive_conns: u32,
    persistent_conns: u32,
    tunnel: Option<TunnelJ>,
    stats: StatsJ,
    rates: RatesJ,
}

#[derive(Serialize)]
struct ServiceJ {
    kind: &'static str,
    family: &'static str,
    protocol: Option<&'static str>,
    address: Option<String>,
    port: Option<u16>,
    fwmark: Option<u32>,
    scheduler: String,
    flags: u32,
    sched_flags: Vec<String>,
    persistent: bool,
    timeout: Option<u32>,
    netmask: String,
    pe: Option<String>,
    one_packet: bool,
    stats: StatsJ,
    rates: RatesJ,
    destinations: Vec<DestJ>,
}

#[derive(Serialize)]
struct ListJ {
    schema: &'static str,
    version: String,
    conn_tab_size: u32,
    services: Vec<ServiceJ>,
}

const fn family_name(f: Family) -> &'static str {
    match f {
        Family::V4 => "ipv4",
        Family::V6 => "ipv6",
    }
}

fn addr_family(a: &IpAddr) -> &'static str {
    family_name(Family::of(a))
}

fn dest_json(e: &DestEntry) -> DestJ {
    let d = &e.config;
    let tunnel = (d.method == ForwardMethod::Tunnel).then(|| TunnelJ {
        kind: d.tun_type.name(),
        port: (d.tun_type == TunnelType::Gue).then_some(d.tun_port),
        checksum: match d.tun_flags {
            TunnelCsum::NoCsum => "nocsum",
            TunnelCsum::Csum => "csum",
            TunnelCsum::RemCsum => "remcsum",
        },
    });
    DestJ {
        address: ntop(&d.addr),
        port: d.port,
        family: addr_family(&d.addr),
        forward: match d.method {
            ForwardMethod::Masq => "masq",
            ForwardMethod::Local => "local",
            ForwardMethod::Tunnel => "tunnel",
            ForwardMethod::Route => "route",
        },
        weight: d.weight,
        u_threshold: d.u_threshold,
        l_threshold: d.l_threshold,
        active_conns: e.active,
        inactive_conns: e.inactive,
        persistent_conns: e.persist,
        tunnel,
        stats: (&e.stats).into(),
        rates: (&e.rates).into(),
    }
}

fn service_json(s: &ServiceEntry, nosort: bool) -> ServiceJ {
    let c = &s.config;
    let mut dests = s.dests.clone();
    if !nosort {
        sort_dests(&mut dests);
    }
    let (kind, protocol, address, port, fwmark) = match &c.key {
        ServiceKey::Addr { proto, addr, port } => (
            "addr",
            Some(proto.services_name()),
            Some(ntop(addr)),
            Some(*port),
            None,
        ),
        ServiceKey::Fwmark { mark, .. } => ("fwmark", None, None, None, Some(*mark)),
    };
    let flags_text = sched_flags_text(c);
    ServiceJ {
        kind,
        family: family_name(c.key.family()),
        protocol,
        address,
        port,
        fwmark,
        scheduler: c.scheduler.clone(),
        flags: c.flags,
        sched_flags: if flags_text.is_empty() {
            Vec::new()
        } else {
            flags_text.split(',').map(str::to_owned).collect()
        },
        persistent: c.is_persistent(),
        timeout: c.is_persistent().then_some(c.timeout_secs),
        netmask: match c.key.family() {
            Family::V4 => netmask_v4(c.netmask).to_string(),
            Family::V6 => c.netmask.to_string(),
        },
        pe: c.pe.clone().filter(|p| !p.is_empty()),
        one_packet: c.is_onepacket(),
        stats: (&s.stats).into(),
        rates: (&s.rates).into(),
        destinations: dests.iter().map(dest_json).collect(),
    }
}

fn render<T: Serialize>(v: &T) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_else(|_| "{}".to_owned());
    s.push('\n');
    s
}

/// `-L --json` / `-L -t ... --json`.
pub fn services(list: &[ServiceEntry], info: &Info, nosort: bool) -> String {
    let mut sorted = list.to_vec();
    if !nosort {
        glibc_qsort(&mut sorted, &|a: &ServiceEntry, b: &ServiceEntry| {
            cmp_services(&a.config, &b.config)
        });
    }
    let (maj, min, patch) = info.version_triple();
    render(&ListJ {
        schema: SCHEMA,
        version: format!("{maj}.{min}.{patch}"),
        conn_tab_size: info.conn_tab_size,
        services: sorted.iter().map(|s| service_json(s, nosort)).collect(),
    })
}

#[derive(Serialize)]
struct ConnJ {
    protocol: String,
    protocol_number: u16,
    client_address: String,
    client_port: u16,
    virtual_address: String,
    virtual_port: u16,
    destination_address: String,
    destination_port: u16,
    state: String,
    expires: u64,
    kernel_fast_path: bool,
    pe_name: Option<String>,
    pe_data: Option<String>,
}

#[derive(Serialize)]
struct ConnsJ {
    schema: &'static str,
    connections: Vec<ConnJ>,
}

/// `-L -c --json`.
pub fn conns(list: &[ConnEntry]) -> String {
    render(&ConnsJ {
        schema: SCHEMA,
        connections: list
            .iter()
            .map(|c| ConnJ {
                protocol: conn_proto_name(c.protocol),
                protocol_number: c.protocol,
                client_address: ntop(&c.caddr),
                client_port: c.cport,
                virtual_address: ntop(&c.vaddr),
                virtual_port: c.vport,
                destination_address: ntop(&c.daddr),
                destination_port: c.dport,
                state: c.state.clone(),
                expires: c.expires_secs,
                kernel_fast_path: c.fast_path,
                pe_name: c.pe_name.clone(),
                pe_data: c.pe_data.clone(),
            })
            .collect(),
    })
}

#[derive(Serialize)]
struct TimeoutsJ {
    schema: &'static str,
    timeouts: TimeoutValues,
}

#[derive(Serialize)]
struct TimeoutValues {
    tcp: u32,
    tcp_fin: u32,
    udp: u32,
}

/// `-L --timeout --json`.
pub fn timeouts(t: &Timeouts) -> String {
    render(&TimeoutsJ {
        schema: SCHEMA,
        timeouts: TimeoutValues {
            tcp: t.tcp,
            tcp_fin: t.tcp_fin,
            udp: t.udp,
        },
    })
}

#[derive(Serialize)]
struct DaemonJ {
    state: &'static str,
    mcast_interface: String,
    syncid: u32,
    sync_maxlen: Option<u16>,
    mcast_group: Option<String>,
    mcast_port: Option<u16>,
    mcast_ttl: Option<u8>,
}

#[derive(Serialize)]
struct DaemonsJ {
    schema: &'static str,
    daemons: Vec<DaemonJ>,
}

/// `-L --daemon --json`.
pub fn daemons(list: &[DaemonConfig]) -> String {
    let mut sorted: Vec<&DaemonConfig> = list.iter().collect();
    sorted.sort_by_key(|d| d.state != rvs_api::SyncState::Master);
    render(&DaemonsJ {
        schema: SCHEMA,
        daemons: sorted
            .iter()
            .map(|d| DaemonJ {
                state: d.state.name(),
                mcast_interface: d.mcast_ifn.clone(),
                syncid: d.syncid,
                sync_maxlen: d.sync_maxlen,
                mcast_group: d.mcast_group.as_ref().map(ntop),
                mcast_port: d.mcast_port,
                mcast_ttl: d.mcast_ttl,
            })
            .collect(),
    })
}
