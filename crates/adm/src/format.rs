//! Byte-exact ipvsadm 1.31 output: listings (`-L`), save (`-S`), connections,
//! timeouts and daemons. Every function here is pure: it takes the daemon's
//! answer and returns the text.

use core::cmp::Ordering;
use core::fmt::Write as _;
use core::net::IpAddr;

use rvs_api::{
    ConnEntry, DaemonConfig, DestConfig, DestEntry, Family, ForwardMethod, Info, ServiceConfig,
    ServiceEntry, ServiceKey, SyncState, Timeouts, TunnelType, netmask_v4, svc_flags,
};

use crate::cli::ListOpts;
use crate::names::{Names, ntop, truncate_bytes};

/// The address as the 4 big-endian 32-bit words of `union nf_inet_addr`.
fn addr_words(a: &IpAddr) -> [u32; 4] {
    match a {
        IpAddr::V4(v4) => [u32::from(*v4), 0, 0, 0],
        IpAddr::V6(v6) => {
            let s = v6.segments();
            [
                (u32::from(s[0]) << 16) | u32::from(s[1]),
                (u32::from(s[2]) << 16) | u32::from(s[3]),
                (u32::from(s[4]) << 16) | u32::from(s[5]),
                (u32::from(s[6]) << 16) | u32::from(s[7]),
            ]
        }
    }
}

/// `(int)(a - b)` on unsigned 32-bit values, as C computes it.
const fn wrapped_diff(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b).cast_signed()
}

/// Compare the address words: all four for IPv6 (of the first operand), one for IPv4.
fn cmp_addr(a: &IpAddr, b: &IpAddr) -> i32 {
    let (wa, wb) = (addr_words(a), addr_words(b));
    let n = if a.is_ipv6() { 4 } else { 1 };
    for i in 0..n {
        let r = wrapped_diff(wa[i], wb[i]);
        if r != 0 {
            return r;
        }
    }
    0
}

/// libipvs `ipvs_cmp_services`: fwmark, family, protocol, address, port, with the
/// 32-bit wrapped subtraction quirk (an fwmark ≥ 2^31 sorts first; an IPv4 address
/// sorts after one that is ≥ 2^31 larger).
pub fn cmp_services(a: &ServiceConfig, b: &ServiceConfig) -> i32 {
    let r = wrapped_diff(a.key.fwmark(), b.key.fwmark());
    if r != 0 {
        return r;
    }
    let r = i32::from(a.key.family().af_number()) - i32::from(b.key.family().af_number());
    if r != 0 {
        return r;
    }
    let proto = |k: &ServiceKey| k.protocol().map_or(0, |p| i32::from(p.number()));
    let r = proto(&a.key) - proto(&b.key);
    if r != 0 {
        return r;
    }
    let addr = |k: &ServiceKey| match k {
        ServiceKey::Addr { addr, .. } => *addr,
        ServiceKey::Fwmark { af: Family::V4, .. } => IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED),
        ServiceKey::Fwmark { af: Family::V6, .. } => IpAddr::V6(core::net::Ipv6Addr::UNSPECIFIED),
    };
    let r = cmp_addr(&addr(&a.key), &addr(&b.key));
    if r != 0 {
        return r;
    }
    i32::from(a.key.port()) - i32::from(b.key.port())
}

/// libipvs `ipvs_cmp_dests`: address (wrapped 32-bit words), then port.
pub fn cmp_dests(a: &DestConfig, b: &DestConfig) -> i32 {
    let r = cmp_addr(&a.addr, &b.addr);
    if r != 0 {
        return r;
    }
    i32::from(a.port) - i32::from(b.port)
}

/// glibc's `qsort` (its merge sort, `msort_with_tmp`), reproduced so that the
/// non-transitive comparators above order elements exactly as ipvsadm does.
pub fn glibc_qsort<T: Clone>(v: &mut [T], cmp: &impl Fn(&T, &T) -> i32) {
    let n = v.len();
    if n <= 1 {
        return;
    }
    let n1 = n / 2;
    {
        let (left, right) = v.split_at_mut(n1);
        glibc_qsort(left, cmp);
        glibc_qsort(right, cmp);
    }
    let mut merged: Vec<T> = Vec::with_capacity(n);
    let (mut i, mut j) = (0, n1);
    while i < n1 && j < n {
        if cmp(&v[i], &v[j]) <= 0 {
            merged.push(v[i].clone());
            i += 1;
        } else {
            merged.push(v[j].clone());
            j += 1;
        }
    }
    merged.extend_from_slice(&v[i..n1]);
    merged.extend_from_slice(&v[j..n]);
    v.clone_from_slice(&merged);
}

/// Sort services (and each service's destinations) as ipvsadm does.
pub fn sort_services(services: &mut [ServiceEntry]) {
    glibc_qsort(services, &|a: &ServiceEntry, b: &ServiceEntry| {
        cmp_services(&a.config, &b.config)
    });
    for s in services.iter_mut() {
        sort_dests(&mut s.dests);
    }
}

/// Sort destinations as ipvsadm does.
pub fn sort_dests(dests: &mut [DestEntry]) {
    glibc_qsort(dests, &|a: &DestEntry, b: &DestEntry| {
        cmp_dests(&a.config, &b.config)
    });
}

/// ipvsadm's `addrport_to_anyname`: `addr:port` (`[addr]:port` for IPv6), names
/// from the databases unless numeric; at most 59 bytes.
pub fn addrport(addr: &IpAddr, port: u16, proto: u16, numeric: bool, names: &Names) -> String {
    let a = if numeric {
        ntop(addr)
    } else {
        names
            .addr_to_host(addr)
            .map_or_else(|| ntop(addr), str::to_owned)
    };
    let p = if numeric {
        port.to_string()
    } else {
        names
            .port_to_service(port, proto)
            .map_or_else(|| port.to_string(), str::to_owned)
    };
    let mut s = if addr.is_ipv4() {
        format!("{a}:{p}")
    } else {
        format!("[{a}]:{p}")
    };
    truncate_bytes(&mut s, 59);
    s
}

/// ipvsadm's `print_largenum`.
pub fn largenum(out: &mut String, i: u64, exact: bool) {
    if exact {
        let digits = i.to_string();
        let width = if digits.len() <= 8 {
            9
        } else {
            digits.len() + 1
        };
        let _ = write!(out, "{digits:>width$}");
        return;
    }
    let _ = if i < 100_000_000 {
        write!(out, "{i:>9}")
    } else if i < 1_000_000_000 {
        write!(out, "{:>8}K", i / 1000)
    } else if i < 100_000_000_000 {
        write!(out, "{:>8}M", i / 1_000_000)
    } else if i < 100_000_000_000_000 {
        write!(out, "{:>8}G", i / 1_000_000_000)
    } else {
        write!(out, "{:>8}T", i / 1_000_000_000_000)
    };
}

/// The "IP Virtual Server version ..." line.
pub fn version_header(info: &Info) -> String {
    let (maj, min, patch) = info.version_triple();
    format!(
        "IP Virtual Server version {maj}.{min}.{patch} (size={})\n",
        info.conn_tab_size
    )
}

/// The column titles for a listing format.
pub fn title(opts: &ListOpts) -> String {
    const P: &str = "Prot LocalAddress:Port";
    const R: &str = "  -> RemoteAddress:Port";
    if opts.stats {
        format!(
            "{P:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n{R}\n",
            "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
        )
    } else if opts.rate {
        format!(
            "{P:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n{R}\n",
            "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
        )
    } else if opts.thresholds {
        format!(
            "{P:<33} {:<10} {:<10} {:<10} {:<10}\n{R}\n",
            "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        )
    } else if opts.persistent_conn {
        format!(
            "{P:<33} {:<9} {:<11} {:<10} {:<10}\n{R}\n",
            "Weight", "PersistConn", "ActiveConn", "InActConn"
        )
    } else if opts.tun_info {
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n".to_owned()
    } else {
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n".to_owned()
    }
}

/// Scheduler-flag text (`sh-fallback,sh-port`, `flag-1`, ...); empty if none.
pub fn sched_flags_text(cfg: &ServiceConfig) -> String {
    let f = cfg.flags;
    let names: [(u32, &str); 3] = match cfg.scheduler.as_str() {
        "sh" => [
            (svc_flags::SH_FALLBACK, "sh-fallback"),
            (svc_flags::SH_PORT, "sh-port"),
            (0, ""),
        ],
        "mh" => [
            (svc_flags::MH_FALLBACK, "mh-fallback"),
            (svc_flags::MH_PORT, "mh-port"),
            (0, ""),
        ],
        _ => [
            (svc_flags::SCHED1, "flag-1"),
            (svc_flags::SCHED2, "flag-2"),
            (svc_flags::SCHED3, "flag-3"),
        ],
    };
    names
        .iter()
        .filter(|(bit, _)| *bit != 0 && f & bit != 0)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(",")
}

fn proto_number(key: &ServiceKey) -> u16 {
    key.protocol().map_or(0, rvs_api::Protocol::number)
}

/// Service name column for listings (`TCP  10.0.0.1:80`, `FWM  1`, `FWM  1 IPv6`).
fn list_service_name(cfg: &ServiceConfig, numeric: bool, names: &Names) -> String {
    match &cfg.key {
        ServiceKey::Fwmark { af, mark } => {
            // Shown as a signed 32-bit number (ipvsadm 1.31 as verified).
            let m = mark.cast_signed();
            match af {
                Family::V4 => format!("FWM  {m}"),
                Family::V6 => format!("FWM  {m} IPv6"),
            }
        }
        ServiceKey::Addr { proto, addr, port } => {
            let v = addrport(addr, *port, proto.number(), numeric, names);
            let mut s = format!("{:<4} {v}", proto.name());
            if addr.is_ipv4() {
                truncate_bytes(&mut s, 33);
            }
            s
        }
    }
}

/// Service designation in `-S` rules (`-t 10.0.0.1:80`, `-f 1 -6`).
fn rule_service_name(cfg: &ServiceConfig, numeric: bool, names: &Names) -> String {
    match &cfg.key {
        ServiceKey::Fwmark { af, mark } => {
            let m = mark.cast_signed();
            match af {
                Family::V4 => format!("-f {m}"),
                Family::V6 => format!("-f {m} -6"),
            }
        }
        ServiceKey::Addr { proto, addr, port } => {
            let v = addrport(addr, *port, proto.number(), numeric, names);
            let opt = match proto {
                rvs_api::Protocol::Tcp => "-t",
                rvs_api::Protocol::Udp => "-u",
                rvs_api::Protocol::Sctp => "--sctp-service",
            };
            format!("{opt} {v}")
        }
    }
}

fn mask_text(cfg: &ServiceConfig) -> Option<String> {
    match cfg.key.family() {
        Family::V4 if cfg.netmask != u32::MAX => Some(netmask_v4(cfg.netmask).to_string()),
        Family::V6 if cfg.netmask != 128 => Some(cfg.netmask.to_string()),
        _ => None,
    }
}

fn tun_info(d: &DestConfig) -> String {
    if d.method != ForwardMethod::Tunnel {
        return "n/a".to_owned();
    }
    match d.tun_type {
        TunnelType::Ipip => "ipip".to_owned(),
        TunnelType::Gue => format!("gue:{}:{}", d.tun_port, d.tun_flags.info()),
        TunnelType::Gre => format!("gre:{}", d.tun_flags.info()),
    }
}

/// ipvsadm's `print_service_entry` for listings: the service line and its
/// destinations (sorted unless `--nosort`).
pub fn service_entry(out: &mut String, entry: &ServiceEntry, opts: &ListOpts, names: &Names) {
    let cfg = &entry.config;
    let name = list_service_name(cfg, opts.numeric, names);
    if opts.stats || opts.rate {
        let _ = write!(out, "{name:<33}");
        let v = if opts.stats {
            let s = &entry.stats;
            [s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes]
        } else {
            let r = &entry.rates;
            [r.cps, r.inpps, r.outpps, r.inbps, r.outbps]
        };
        for n in v {
            largenum(out, n, opts.exact);
        }
    } else {
        let _ = write!(out, "{name} {}", cfg.scheduler);
        let flags = sched_flags_text(cfg);
        if !flags.is_empty() {
            let _ = write!(out, " ({flags})");
        }
        if cfg.is_persistent() {
            let _ = write!(out, " persistent {}", cfg.timeout_secs);
            if let Some(m) = mask_text(cfg) {
                let _ = write!(out, " mask {m}");
            }
            if let Some(pe) = cfg.pe.as_deref().filter(|p| !p.is_empty()) {
                let _ = write!(out, " pe {pe}");
            }
        }
        if cfg.is_onepacket() {
            out.push_str(" ops");
        }
    }
    out.push('\n');

    let mut dests = entry.dests.clone();
    if !opts.nosort {
        sort_dests(&mut dests);
    }
    let proto = proto_number(&cfg.key);
    for e in &dests {
        let d = &e.config;
        let mut dname = addrport(&d.addr, d.port, proto, opts.numeric, names);
        if d.addr.is_ipv4() {
            truncate_bytes(&mut dname, 28);
        }
        if opts.stats {
            let _ = write!(out, "  -> {dname:<28}");
            let s = &e.stats;
            for n in [s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes] {
                largenum(out, n, opts.exact);
            }
            out.push('\n');
        } else if opts.rate {
            let r = &e.rates;
            let _ = write!(
                out,
                "  -> {dname:<28} {:>8} {:>8} {:>8}",
                r.cps, r.inpps, r.outpps
            );
            largenum(out, r.inbps, opts.exact);
            largenum(out, r.outbps, opts.exact);
            out.push('\n');
        } else if opts.thresholds {
            let _ = writeln!(
                out,
                "  -> {dname:<28} {:<10} {:<10} {:<10} {:<10}",
                d.u_threshold, d.l_threshold, e.active, e.inactive
            );
        } else if opts.persistent_conn {
            let _ = writeln!(
                out,
                "  -> {dname:<28} {:<9} {:<11} {:<10} {:<10}",
                d.weight, e.persist, e.active, e.inactive
            );
        } else if opts.tun_info {
            let _ = writeln!(
                out,
                "  -> {dname:<28} {:<7} {:<13} {:<6} {:<10} {:<10}",
                d.method.name(),
                tun_info(d),
                d.weight,
                e.active,
                e.inactive
            );
        } else {
            let _ = writeln!(
                out,
                "  -> {dname:<28} {:<7} {:<6} {:<10} {:<10}",
                d.method.name(),
                d.weight,
                e.active,
                e.inactive
            );
        }
    }
}

/// `-L` / bare `ipvsadm`: version header, titles, every service (sorted unless
/// `--nosort`).
pub fn format_list(
    services: &[ServiceEntry],
    info: &Info,
    opts: &ListOpts,
    names: &Names,
) -> String {
    let mut out = version_header(info);
    out.push_str(&format_services(services, opts, names));
    out
}

/// Titles and services, without the version header (what follows it in `-L`).
pub fn format_services(services: &[ServiceEntry], opts: &ListOpts, names: &Names) -> String {
    let mut sorted = services.to_vec();
    if !opts.nosort {
        glibc_qsort(&mut sorted, &|a: &ServiceEntry, b: &ServiceEntry| {
            cmp_services(&a.config, &b.config)
        });
    }
    let mut out = title(opts);
    for s in &sorted {
        service_entry(&mut out, s, opts, names);
    }
    out
}

/// `-L -t ...`: titles and one service (no version header).
pub fn format_one_service(entry: &ServiceEntry, opts: &ListOpts, names: &Names) -> String {
    let mut out = title(opts);
    service_entry(&mut out, entry, opts, names);
    out
}

/// `-S`: every service and destination as restore commands, sorted.
pub fn format_save(services: &[ServiceEntry], numeric: bool, names: &Names) -> String {
    let mut sorted = services.to_vec();
    sort_services(&mut sorted);
    let mut out = String::new();
    for s in &sorted {
        let cfg = &s.config;
        let svc = rule_service_name(cfg, numeric, names);
        let _ = write!(out, "-A {svc} -s {}", cfg.scheduler);
        if cfg.is_persistent() {
            let _ = write!(out, " -p {}", cfg.timeout_secs);
            if let Some(m) = mask_text(cfg) {
                let _ = write!(out, " -M {m}");
            }
        }
        if let Some(pe) = cfg.pe.as_deref().filter(|p| !p.is_empty()) {
            let _ = write!(out, " --pe {pe}");
        }
        if cfg.is_onepacket() {
            out.push_str(" -o");
        }
        if cfg.flags & svc_flags::SCHED_MASK != 0 {
            let _ = write!(out, " -b {}", sched_flags_text(cfg));
        }
        out.push('\n');
        let proto = proto_number(&cfg.key);
        for e in &s.dests {
            let d = &e.config;
            let dname = addrport(&d.addr, d.port, proto, numeric, names);
            let sw = match d.method {
                ForwardMethod::Masq => "-m",
                ForwardMethod::Tunnel => "-i",
                ForwardMethod::Local | ForwardMethod::Route => "-g",
            };
            let _ = write!(out, "-a {svc} -r {dname} {sw} -w {}", d.weight);
            if d.method == ForwardMethod::Tunnel {
                match d.tun_type {
                    TunnelType::Ipip => out.push_str(" --tun-type ipip"),
                    TunnelType::Gue => {
                        let _ = write!(
                            out,
                            " --tun-type gue --tun-port {} {}",
                            d.tun_port,
                            d.tun_flags.option()
                        );
                    }
                    TunnelType::Gre => {
                        let _ = write!(out, " --tun-type gre {}", d.tun_flags.option());
                    }
                }
            }
            out.push('\n');
        }
    }
    out
}

/// Kernel `ip_vs_proto_name`.
pub fn conn_proto_name(p: u16) -> String {
    match p {
        0 => "IP".to_owned(),
        6 => "TCP".to_owned(),
        17 => "UDP".to_owned(),
        132 => "SCTP".to_owned(),
        1 => "ICMP".to_owned(),
        58 => "ICMPv6".to_owned(),
        n => format!("IP_{n}"),
    }
}

/// `-L -c`: the connection table.
pub fn format_conns(conns: &[ConnEntry], opts: &ListOpts, names: &Names) -> String {
    let mut out = String::from("IPVS connection entries\n");
    if opts.persistent_conn {
        let _ = writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} {:<18} {:<16} pe_data",
            "state", "source", "virtual", "destination", "pe name"
        );
    } else {
        let _ = writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} destination",
            "state", "source", "virtual"
        );
    }
    for c in conns {
        let proto = conn_proto_name(c.protocol);
        let pnum = match c.protocol {
            6 | 17 | 132 => c.protocol,
            _ => 0,
        };
        let cname = addrport(&c.caddr, c.cport, pnum, opts.numeric, names);
        let vname = addrport(&c.vaddr, c.vport, pnum, opts.numeric, names);
        let dname = addrport(&c.daddr, c.dport, pnum, opts.numeric, names);
        let expire = format!("{:02}:{:02}", c.expires_secs / 60, c.expires_secs % 60);
        match (opts.persistent_conn, &c.pe_name, &c.pe_data) {
            (true, Some(pe_name), Some(pe_data)) => {
                let _ = writeln!(
                    out,
                    "{proto:<3} {expire:<6} {:<11} {cname:<18} {vname:<18} {dname:<16} {pe_name:<18} {pe_data}",
                    c.state
                );
            }
            _ => {
                let _ = writeln!(
                    out,
                    "{proto:<3} {expire:<6} {:<11} {cname:<18} {vname:<18} {dname}",
                    c.state
                );
            }
        }
    }
    out
}

/// `--timeout`.
pub fn format_timeouts(t: &Timeouts) -> String {
    format!(
        "Timeout (tcp tcpfin udp): {} {} {}\n",
        t.tcp, t.tcp_fin, t.udp
    )
}

/// `--daemon`: one line per running daemon, master first.
pub fn format_daemons(daemons: &[DaemonConfig]) -> String {
    let mut sorted: Vec<&DaemonConfig> = daemons.iter().collect();
    sorted.sort_by(|a, b| match (a.state, b.state) {
        (SyncState::Master, SyncState::Backup) => Ordering::Less,
        (SyncState::Backup, SyncState::Master) => Ordering::Greater,
        _ => Ordering::Equal,
    });
    let mut out = String::new();
    for dm in sorted {
        let _ = write!(
            out,
            "{} sync daemon (mcast={}, syncid={}",
            dm.state.name(),
            dm.mcast_ifn,
            dm.syncid
        );
        if let Some(m) = dm.sync_maxlen.filter(|&m| m != 0) {
            let _ = write!(out, ", maxlen={m}");
        }
        if let Some(g) = dm.mcast_group {
            let _ = write!(out, ", group={}", ntop(&g));
        }
        if let Some(p) = dm.mcast_port.filter(|&p| p != 0) {
            let _ = write!(out, ", port={p}");
        }
        if let Some(t) = dm.mcast_ttl.filter(|&t| t != 0) {
            let _ = write!(out, ", ttl={t}");
        }
        out.push_str(")\n");
    }
    out
}
