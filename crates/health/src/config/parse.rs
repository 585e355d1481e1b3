//! From the generic block tree to the typed [`Model`].

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rvs_api::{
    DEFAULT_PERSISTENT_TIMEOUT, DEFAULT_SCHEDULER, Family, ForwardMethod, IFNAME_MAX,
    MAX_SYNC_MAXLEN, MAX_TIMEOUT, Protocol, Timeouts, TunnelCsum, TunnelType, svc_flags,
};

use super::lex::Node;
use super::{
    Check, CheckKind, ConfigError, ConnOpts, DnsCheck, DnsType, ErrorKind, Granularity,
    GroupMember, HttpCheck, HttpVersion, Method, MiscCheck, Model, Notice, NoticeKind, RealServer,
    ReplyPattern, Script, SorryServer, SyncDaemon, Timing, UdpCheck, Url, VirtualServer, VsAddr,
    VsGroup,
};

/// Most members a `virtual_server_group` may expand to (ranges and prefixes included).
pub const MAX_GROUP_MEMBERS: usize = 4096;

/// Scheduler names IPVS knows (keepalived passes them through).
const SCHEDULERS: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos",
];

/// Top-level sections of keepalived's VRRP side: skipped with a notice.
const VRRP_SECTIONS: &[&str] = &[
    "vrrp_instance",
    "vrrp_sync_group",
    "vrrp_script",
    "vrrp_track_process",
    "static_ipaddress",
    "static_routes",
    "static_rules",
    "garp_group",
    "linkbeat_interfaces",
];

/// Other top-level sections outside the LVS side: skipped with a notice.
const OTHER_SECTIONS: &[&str] = &[
    "track_file",
    "track_process",
    "bfd_instance",
    "SSL",
    "net_namespace",
    "net_namespace_ipvs",
    "instance",
    "use_pid_dir",
    "linkbeat_use_polling",
    "local_address_group",
];

type Res<T> = Result<T, ConfigError>;

impl Node {
    fn err(&self, kind: ErrorKind) -> ConfigError {
        ConfigError::at(&self.pos, &self.kw, kind)
    }

    fn invalid(&self, msg: impl Into<String>) -> ConfigError {
        self.err(ErrorKind::Invalid(msg.into()))
    }

    fn bad(&self, value: &str, expected: &str) -> ConfigError {
        self.err(ErrorKind::BadValue {
            value: value.to_owned(),
            expected: expected.to_owned(),
        })
    }

    fn arg(&self, i: usize, expected: &str) -> Res<&str> {
        self.args
            .get(i)
            .map(String::as_str)
            .ok_or_else(|| self.err(ErrorKind::MissingArgument(expected.to_owned())))
    }

    fn max_args(&self, n: usize) -> Res<()> {
        match self.args.get(n) {
            Some(a) => Err(self.err(ErrorKind::ExtraArgument(a.clone()))),
            None => Ok(()),
        }
    }

    /// A statement without block taking exactly one argument.
    fn one(&self, expected: &str) -> Res<&str> {
        self.leaf()?;
        self.max_args(1)?;
        self.arg(0, expected)
    }

    fn leaf(&self) -> Res<()> {
        if self.block.is_some() {
            return Err(self.err(ErrorKind::UnexpectedBlock));
        }
        Ok(())
    }

    fn children(&self) -> Res<&[Self]> {
        self.block
            .as_deref()
            .ok_or_else(|| self.err(ErrorKind::MissingBlock))
    }

    /// `keyword` or `keyword true|false|on|off|yes|no`.
    fn flag(&self) -> Res<bool> {
        self.leaf()?;
        self.max_args(1)?;
        match self.args.first().map(String::as_str) {
            None | Some("true" | "on" | "yes") => Ok(true),
            Some("false" | "off" | "no") => Ok(false),
            Some(v) => Err(self.bad(v, "nothing, or true/false")),
        }
    }

    fn notice(&self, notices: &mut Vec<Notice>, kind: NoticeKind) {
        notices.push(Notice {
            pos: self.pos.clone(),
            keyword: self.kw.clone(),
            kind,
        });
    }
}

fn num(n: &Node, s: &str, lo: u64, hi: u64, expected: &str) -> Res<u64> {
    match s.parse::<u64>() {
        Ok(v) if (lo..=hi).contains(&v) => Ok(v),
        _ => Err(n.bad(s, &format!("{expected} ({lo}..={hi})"))),
    }
}

fn u32_arg(n: &Node, s: &str, lo: u32, hi: u32, expected: &str) -> Res<u32> {
    num(n, s, lo.into(), hi.into(), expected).map(|v| u32::try_from(v).unwrap_or(hi))
}

fn port(n: &Node, s: &str) -> Res<u16> {
    num(n, s, 0, 65535, "a port").map(|v| u16::try_from(v).unwrap_or(0))
}

fn ip(n: &Node, s: &str) -> Res<IpAddr> {
    s.parse().map_err(|_| n.bad(s, "an IPv4 or IPv6 address"))
}

/// Decimal seconds with up to 6 fractional digits, `min..=31 days`.
fn secs(n: &Node, s: &str, allow_zero: bool) -> Res<Duration> {
    let expected = if allow_zero {
        "seconds (0..=2678400, up to 6 decimals)"
    } else {
        "a positive number of seconds (at most 2678400, up to 6 decimals)"
    };
    let bad = || n.bad(s, expected);
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || int.len() > 8 || frac.len() > 6 {
        return Err(bad());
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let whole: u64 = int.parse().map_err(|_| bad())?;
    let mut micros: u64 = 0;
    for b in frac.bytes().chain(std::iter::repeat(b'0')).take(6) {
        micros = micros * 10 + u64::from(b - b'0');
    }
    let d = Duration::from_secs(whole) + Duration::from_micros(micros);
    if d > Duration::from_secs(MAX_TIMEOUT.into()) || (!allow_zero && d.is_zero()) {
        return Err(bad());
    }
    Ok(d)
}

fn hex_bytes(n: &Node, s: &str, max: usize) -> Res<Vec<u8>> {
    let expected = format!("an even number of hex digits (at most {max} bytes)");
    if !s.len().is_multiple_of(2) || s.len() / 2 > max {
        return Err(n.bad(s, &expected));
    }
    s.as_bytes()
        .chunks(2)
        .map(|c| {
            let hi = (c[0] as char).to_digit(16);
            let lo = (c[1] as char).to_digit(16);
            match (hi, lo) {
                (Some(h), Some(l)) => Ok(u8::try_from(h * 16 + l).unwrap_or(0)),
                _ => Err(n.bad(s, &expected)),
            }
        })
        .collect()
}

fn script(n: &Node) -> Res<Script> {
    n.leaf()?;
    n.max_args(2)?;
    let command = n.arg(0, "a script command line")?;
    if command.trim().is_empty() {
        return Err(n.bad(command, "a non-empty command line"));
    }
    Ok(Script {
        command: command.to_owned(),
        user: n.args.get(1).cloned(),
    })
}

pub(crate) fn model(nodes: &[Node], notices: &mut Vec<Notice>) -> Res<Model> {
    let mut m = Model::default();
    let mut vs_nodes = Vec::new();
    for n in nodes {
        match n.kw.as_str() {
            "global_defs" => globals(n, &mut m, notices)?,
            "virtual_server_group" => {
                let g = group(n)?;
                if let Some(old) = m.groups.get(&g.name) {
                    return Err(
                        n.invalid(format!("group {} already declared at {}", g.name, old.pos))
                    );
                }
                m.groups.insert(g.name.clone(), g);
            }
            "virtual_server" => vs_nodes.push(n),
            k if VRRP_SECTIONS.contains(&k) => n.notice(
                notices,
                NoticeKind::NotHandled("VRRP section: rvs does not run VRRP".to_owned()),
            ),
            k if OTHER_SECTIONS.contains(&k) || k.starts_with("bfd_") => n.notice(
                notices,
                NoticeKind::NotHandled("section outside the LVS side: skipped".to_owned()),
            ),
            _ => return Err(n.err(ErrorKind::UnknownKeyword("the top level".to_owned()))),
        }
    }
    let mut seen: HashMap<rvs_api::ServiceKey, super::Pos> = HashMap::new();
    for n in vs_nodes {
        let vs = virtual_server(n, &m, notices)?;
        let entries = super::api::entries(&vs, &m.groups)
            .map_err(|(pos, kw, msg)| ConfigError::at(&pos, kw, ErrorKind::Invalid(msg)))?;
        for (svc, _) in &entries {
            if let Some(p) = seen.get(&svc.key) {
                return Err(n.invalid(format!(
                    "service {} already declared at {p}",
                    super::api::key_text(&svc.key)
                )));
            }
            seen.insert(svc.key, n.pos.clone());
        }
        m.virtual_servers.push(vs);
    }
    Ok(m)
}

fn globals(n: &Node, m: &mut Model, notices: &mut Vec<Notice>) -> Res<()> {
    for c in n.children()? {
        let g = &mut m.globals;
        match c.kw.as_str() {
            "lvs_timeouts" => {
                c.leaf()?;
                if c.args.is_empty() {
                    return Err(c.err(ErrorKind::MissingArgument(
                        "tcp S, tcpfin S and/or udp S".to_owned(),
                    )));
                }
                let mut t = Timeouts::default();
                let mut it = c.args.chunks(2);
                for pair in it.by_ref() {
                    let [name, v] = pair else {
                        return Err(c.err(ErrorKind::MissingArgument(format!(
                            "seconds after {}",
                            pair[0]
                        ))));
                    };
                    let v = u32_arg(c, v, 0, MAX_TIMEOUT, "seconds")?;
                    match name.as_str() {
                        "tcp" => t.tcp = v,
                        "tcpfin" => t.tcp_fin = v,
                        "udp" => t.udp = v,
                        other => return Err(c.bad(other, "tcp, tcpfin or udp")),
                    }
                }
                g.lvs_timeouts = Some(t);
            }
            "lvs_flush" => g.lvs_flush = c.flag()?,
            "lvs_flush_on_stop" => {
                c.leaf()?;
                c.max_args(1)?;
                match c.args.first().map(String::as_str) {
                    None => g.lvs_flush_on_stop = true,
                    Some("VS") => g.lvs_flush_on_stop_vs = true,
                    Some(v) => return Err(c.bad(v, "nothing or VS")),
                }
            }
            "lvs_sync_daemon" => {
                g.lvs_sync_daemon = Some(sync_daemon(c)?);
                c.notice(
                    notices,
                    NoticeKind::NotHandled(
                        "the sync daemon's role follows a VRRP instance, which rvs does not run; \
                         start it with rvsadm --start-daemon"
                            .to_owned(),
                    ),
                );
            }
            "enable_script_security" => g.enable_script_security = c.flag()?,
            "script_user" => {
                c.leaf()?;
                c.max_args(2)?;
                g.script_user = Some(c.arg(0, "a user name")?.to_owned());
            }
            _ => c.notice(
                notices,
                NoticeKind::Ignored("global_defs keyword without effect in rvs".to_owned()),
            ),
        }
    }
    Ok(())
}

fn sync_daemon(c: &Node) -> Res<SyncDaemon> {
    c.leaf()?;
    let iface = c.arg(0, "an interface name")?;
    if iface.is_empty() || iface.len() > IFNAME_MAX {
        return Err(c.bad(
            iface,
            &format!("an interface name of 1..={IFNAME_MAX} bytes"),
        ));
    }
    let mut d = SyncDaemon {
        interface: iface.to_owned(),
        instance: None,
        id: None,
        maxlen: None,
        port: None,
        ttl: None,
        group: None,
    };
    let mut i = 1;
    while let Some(k) = c.args.get(i) {
        let v = || c.arg(i + 1, &format!("a value after {k}"));
        match k.as_str() {
            "inst" => d.instance = Some(v()?.to_owned()),
            "id" => d.id = Some(u8::try_from(num(c, v()?, 0, 255, "a sync id")?).unwrap_or(0)),
            "maxlen" => {
                d.maxlen = Some(
                    u16::try_from(num(c, v()?, 1, MAX_SYNC_MAXLEN.into(), "a length")?)
                        .unwrap_or(1),
                );
            }
            "port" => {
                d.port = Some(u16::try_from(num(c, v()?, 1, 65535, "a port")?).unwrap_or(1));
            }
            "ttl" => d.ttl = Some(u8::try_from(num(c, v()?, 1, 255, "a TTL")?).unwrap_or(1)),
            "group" => {
                let a = ip(c, v()?)?;
                if !a.is_multicast() {
                    return Err(c.bad(v()?, "a multicast group"));
                }
                d.group = Some(a);
            }
            other if i == 1 => {
                d.instance = Some(other.to_owned());
                i += 1;
                continue;
            }
            other => return Err(c.bad(other, "inst, id, maxlen, port, ttl or group")),
        }
        i += 2;
    }
    Ok(d)
}

fn group(n: &Node) -> Res<VsGroup> {
    n.max_args(1)?;
    let name = n.arg(0, "a group name")?;
    let mut members = Vec::new();
    let mut seen = HashSet::new();
    for c in n.children()? {
        c.leaf()?;
        let before = members.len();
        if c.kw == "fwmark" {
            c.max_args(2)?;
            let mark = u32_arg(c, c.arg(0, "a mark")?, 1, u32::MAX, "a nonzero mark")?;
            let family = match c.args.get(1).map(String::as_str) {
                None => None,
                Some("inet") => Some(Family::V4),
                Some("inet6") => Some(Family::V6),
                Some(v) => return Err(c.bad(v, "inet or inet6")),
            };
            members.push(GroupMember::Fwmark { mark, family });
        } else {
            c.max_args(1)?;
            let port = match c.args.first() {
                Some(p) => port(c, p)?,
                None => 0,
            };
            for addr in addr_range(c, &c.kw, MAX_GROUP_MEMBERS - members.len())? {
                members.push(GroupMember::Addr { addr, port });
            }
        }
        for m in &members[before..] {
            if !seen.insert(*m) {
                return Err(c.invalid("duplicate group member"));
            }
        }
        if members.len() > MAX_GROUP_MEMBERS {
            return Err(c.invalid(format!("group has more than {MAX_GROUP_MEMBERS} members")));
        }
    }
    Ok(VsGroup {
        pos: n.pos.clone(),
        name: name.to_owned(),
        members,
    })
}

/// `IP`, `IP-LAST` (last octet, or last group in hex for IPv6), `IP-IP`, `IP/PREFIX`.
fn addr_range(n: &Node, s: &str, room: usize) -> Res<Vec<IpAddr>> {
    let expected = "an address, a range (a.b.c.d-e, 2001:db8::1-ff, a.b.c.d-a.b.c.e) or a prefix";
    let too_many = || n.invalid(format!("group has more than {MAX_GROUP_MEMBERS} members"));
    let (first, last): (u128, u128);
    let v6;
    if let Some((a, len)) = s.split_once('/') {
        let a: IpAddr = a.parse().map_err(|_| n.bad(s, expected))?;
        v6 = a.is_ipv6();
        let bits = if v6 { 128 } else { 32 };
        let len: u32 = len
            .parse()
            .ok()
            .filter(|l| *l <= bits)
            .ok_or_else(|| n.bad(s, expected))?;
        let host_bits = bits - len;
        if host_bits >= 16 {
            return Err(too_many());
        }
        let base = to_u128(a) & !((1u128 << host_bits) - 1);
        first = base;
        last = base + ((1u128 << host_bits) - 1);
    } else if let Some((a, b)) = s.split_once('-') {
        let a: IpAddr = a.parse().map_err(|_| n.bad(s, expected))?;
        v6 = a.is_ipv6();
        first = to_u128(a);
        last = if let Ok(full) = b.parse::<IpAddr>() {
            if full.is_ipv6() != v6 {
                return Err(n.bad(s, expected));
            }
            to_u128(full)
        } else if v6 {
            let v = u16::from_str_radix(b, 16).map_err(|_| n.bad(s, expected))?;
            (first & !0xffff) | u128::from(v)
        } else {
            let v: u8 = b.parse().map_err(|_| n.bad(s, expected))?;
            (first & !0xff) | u128::from(v)
        };
        if last < first {
            return Err(n.bad(s, expected));
        }
    } else {
        let a: IpAddr = s.parse().map_err(|_| n.bad(s, expected))?;
        return Ok(vec![a]);
    }
    if last - first >= room as u128 {
        return Err(too_many());
    }
    Ok((first..=last).map(|v| from_u128(v, v6)).collect())
}

fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_u128(v: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(v))
    } else {
        IpAddr::V4(Ipv4Addr::from(u32::try_from(v).unwrap_or(0)))
    }
}

/// Timing and `alpha` as set at one level; unset fields inherit.
#[derive(Clone, Copy, Debug, Default)]
struct PartialTiming {
    delay_loop: Option<Duration>,
    connect_timeout: Option<Duration>,
    retry: Option<u32>,
    delay_before_retry: Option<Duration>,
    warmup: Option<Duration>,
    alpha: Option<bool>,
}

impl PartialTiming {
    /// Handle a timing keyword; `Ok(false)` when `c` is not one.
    fn keyword(&mut self, c: &Node, with_connect: bool) -> Res<bool> {
        match c.kw.as_str() {
            "delay_loop" => self.delay_loop = Some(secs(c, c.one("seconds")?, false)?),
            "connect_timeout" if with_connect => {
                self.connect_timeout = Some(secs(c, c.one("seconds")?, false)?);
            }
            "retry" | "nb_get_retry" => {
                self.retry = Some(u32_arg(c, c.one("a count")?, 0, 1_000_000, "a count")?);
            }
            "delay_before_retry" => {
                self.delay_before_retry = Some(secs(c, c.one("seconds")?, true)?);
            }
            "warmup" => self.warmup = Some(secs(c, c.one("seconds")?, true)?),
            "alpha" => self.alpha = Some(c.flag()?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn over(self, parent: Self) -> Self {
        Self {
            delay_loop: self.delay_loop.or(parent.delay_loop),
            connect_timeout: self.connect_timeout.or(parent.connect_timeout),
            retry: self.retry.or(parent.retry),
            delay_before_retry: self.delay_before_retry.or(parent.delay_before_retry),
            warmup: self.warmup.or(parent.warmup),
            alpha: self.alpha.or(parent.alpha),
        }
    }

    /// keepalived's defaults (check_parser.c / check_api.c).
    fn resolve(self, kind: &CheckKind) -> (Timing, bool) {
        let delay_loop = self.delay_loop.unwrap_or(Duration::from_secs(60));
        let retry = self.retry.unwrap_or(match kind {
            CheckKind::Dns(_) => 3,
            CheckKind::Misc(_) => 0,
            _ => 1,
        });
        let delay_before_retry = self.delay_before_retry.unwrap_or(match kind {
            CheckKind::Http(_) => Duration::from_secs(3),
            CheckKind::Dns(_) => delay_loop,
            _ => Duration::from_secs(1),
        });
        let timing = Timing {
            delay_loop,
            connect_timeout: self.connect_timeout.unwrap_or(Duration::from_secs(5)),
            retry,
            delay_before_retry,
            warmup: self.warmup.unwrap_or(delay_loop),
        };
        (timing, self.alpha.unwrap_or(false))
    }
}

fn method(n: &Node, args: &[String]) -> Res<Method> {
    let kind = args
        .first()
        .ok_or_else(|| n.err(ErrorKind::MissingArgument("NAT, DR or TUN".to_owned())))?;
    let mut m = Method {
        kind: match kind.to_ascii_uppercase().as_str() {
            "NAT" => ForwardMethod::Masq,
            "DR" => ForwardMethod::Route,
            "TUN" => ForwardMethod::Tunnel,
            _ => return Err(n.bad(kind, "NAT, DR or TUN")),
        },
        ..Method::default()
    };
    let mut i = 1;
    let mut csum_set = false;
    while let Some(a) = args.get(i) {
        if m.kind != ForwardMethod::Tunnel {
            return Err(n.err(ErrorKind::ExtraArgument(a.clone())));
        }
        match a.as_str() {
            "type" => {
                let t = args
                    .get(i + 1)
                    .ok_or_else(|| n.err(ErrorKind::MissingArgument("ipip, gue or gre".into())))?;
                m.tun_type = match t.as_str() {
                    "ipip" => TunnelType::Ipip,
                    "gue" => TunnelType::Gue,
                    "gre" => TunnelType::Gre,
                    _ => return Err(n.bad(t, "ipip, gue or gre")),
                };
                i += 2;
                if m.tun_type == TunnelType::Gue {
                    match (args.get(i).map(String::as_str), args.get(i + 1)) {
                        (Some("port"), Some(p)) => {
                            m.tun_port =
                                u16::try_from(num(n, p, 1, 65535, "a GUE port")?).unwrap_or(1);
                            i += 2;
                        }
                        _ => {
                            return Err(n.err(ErrorKind::MissingArgument(
                                "port N after type gue".to_owned(),
                            )));
                        }
                    }
                }
            }
            "nocsum" | "csum" | "remcsum" => {
                if csum_set {
                    return Err(n.err(ErrorKind::ExtraArgument(a.clone())));
                }
                csum_set = true;
                m.tun_flags = match a.as_str() {
                    "nocsum" => TunnelCsum::NoCsum,
                    "csum" => TunnelCsum::Csum,
                    _ => TunnelCsum::RemCsum,
                };
                i += 1;
            }
            other => return Err(n.bad(other, "type ipip|gue port N|gre, nocsum, csum or remcsum")),
        }
    }
    if m.tun_flags != TunnelCsum::NoCsum && m.tun_type == TunnelType::Ipip {
        return Err(n.invalid("checksum options need a gue or gre tunnel"));
    }
    if m.tun_flags == TunnelCsum::RemCsum && m.tun_type == TunnelType::Gre {
        return Err(n.invalid("gre tunnels do not support remcsum"));
    }
    Ok(m)
}

fn granularity(n: &Node, s: &str) -> Res<Granularity> {
    if let Ok(a) = s.parse::<Ipv4Addr>() {
        let m = u32::from(a);
        if m.leading_ones() + m.trailing_zeros() != 32 || m == 0 {
            return Err(n.bad(s, "a contiguous netmask"));
        }
        return Ok(Granularity::V4Mask(m));
    }
    match s.parse::<u8>() {
        Ok(p) if (1..=128).contains(&p) => Ok(Granularity::Prefix(p)),
        _ => Err(n.bad(s, "a dotted IPv4 netmask or a prefix length 1..=128")),
    }
}

#[derive(Default)]
struct VsDraft {
    timing: PartialTiming,
    inhibit: bool,
    virtualhost: Option<String>,
    sorry_method: Option<Method>,
}

fn virtual_server(n: &Node, m: &Model, notices: &mut Vec<Notice>) -> Res<VirtualServer> {
    let addr = match n.args.first().map(String::as_str) {
        Some("fwmark") => {
            n.max_args(2)?;
            VsAddr::Fwmark(u32_arg(
                n,
                n.arg(1, "a mark")?,
                1,
                u32::MAX,
                "a nonzero mark",
            )?)
        }
        Some("group") => {
            n.max_args(2)?;
            let g = n.arg(1, "a group name")?;
            match m.groups.get(g) {
                None => return Err(n.invalid(format!("no virtual_server_group named {g}"))),
                Some(grp) if grp.members.is_empty() => {
                    return Err(n.invalid(format!("virtual_server_group {g} has no members")));
                }
                Some(_) => {}
            }
            VsAddr::Group(g.to_owned())
        }
        Some(a) => {
            n.max_args(2)?;
            let addr = ip(n, a)?;
            let port = match n.args.get(1) {
                Some(p) => port(n, p)?,
                None => 0,
            };
            VsAddr::Addr { addr, port }
        }
        None => {
            return Err(n.err(ErrorKind::MissingArgument(
                "IP [PORT], fwmark N or group NAME".to_owned(),
            )));
        }
    };
    let mut vs = VirtualServer {
        pos: n.pos.clone(),
        addr,
        protocol: Protocol::Tcp,
        scheduler: DEFAULT_SCHEDULER.to_owned(),
        sched_flags: 0,
        ops: false,
        method: Method::default(),
        persistence_timeout: None,
        persistence_granularity: None,
        persistence_engine: None,
        ip_family: None,
        omega: false,
        quorum: 1,
        hysteresis: 0,
        quorum_up: None,
        quorum_down: None,
        sorry_server: None,
        real_servers: Vec::new(),
    };
    let mut d = VsDraft::default();
    let mut flags: Vec<(&Node, u32, Option<&str>)> = Vec::new();
    let mut ops_node = None;
    let mut rs_nodes = Vec::new();
    for c in n.children()? {
        if d.timing.keyword(c, true)? {
            continue;
        }
        match c.kw.as_str() {
            "real_server" => rs_nodes.push(c),
            "lb_algo" | "lvs_sched" => {
                let s = c.one("a scheduler name")?;
                if !SCHEDULERS.contains(&s) {
                    return Err(c.bad(s, &format!("one of {}", SCHEDULERS.join(" "))));
                }
                s.clone_into(&mut vs.scheduler);
            }
            "flag-1" => flags.push((c, svc_flags::SCHED1, None)),
            "flag-2" => flags.push((c, svc_flags::SCHED2, None)),
            "flag-3" => flags.push((c, svc_flags::SCHED3, None)),
            "sh-fallback" => flags.push((c, svc_flags::SH_FALLBACK, Some("sh"))),
            "sh-port" => flags.push((c, svc_flags::SH_PORT, Some("sh"))),
            "mh-fallback" => flags.push((c, svc_flags::MH_FALLBACK, Some("mh"))),
            "mh-port" => flags.push((c, svc_flags::MH_PORT, Some("mh"))),
            "hashed" => c.notice(
                notices,
                NoticeKind::Ignored("kernel-internal flag; not settable".to_owned()),
            ),
            "ops" => {
                vs.ops = c.flag()?;
                ops_node = Some(c);
            }
            "lb_kind" | "lvs_method" => {
                c.leaf()?;
                vs.method = method(c, &c.args)?;
            }
            "persistence_timeout" => {
                c.leaf()?;
                c.max_args(1)?;
                vs.persistence_timeout = Some(match c.args.first() {
                    Some(v) => u32_arg(c, v, 1, MAX_TIMEOUT, "seconds")?,
                    None => DEFAULT_PERSISTENT_TIMEOUT,
                });
            }
            "persistence_granularity" => {
                vs.persistence_granularity = Some(granularity(c, c.one("a netmask")?)?);
            }
            "persistence_engine" => {
                let pe = c.one("a persistence engine")?;
                if pe != "sip" {
                    return Err(c.bad(pe, "sip"));
                }
                vs.persistence_engine = Some(pe.to_owned());
            }
            "protocol" => {
                let p = c.one("TCP, UDP or SCTP")?;
                vs.protocol = match p.to_ascii_uppercase().as_str() {
                    "TCP" => Protocol::Tcp,
                    "UDP" => Protocol::Udp,
                    "SCTP" => Protocol::Sctp,
                    _ => return Err(c.bad(p, "TCP, UDP or SCTP")),
                };
            }
            "ip_family" => {
                let f = c.one("inet or inet6")?;
                vs.ip_family = Some(match f {
                    "inet" => Family::V4,
                    "inet6" => Family::V6,
                    _ => return Err(c.bad(f, "inet or inet6")),
                });
            }
            "virtualhost" => d.virtualhost = Some(c.one("a host name")?.to_owned()),
            "omega" => vs.omega = c.flag()?,
            "quorum" => {
                vs.quorum = u32_arg(
                    c,
                    c.one("a weight sum")?,
                    1,
                    i32::MAX.unsigned_abs(),
                    "a weight sum",
                )?
            }
            "hysteresis" => {
                vs.hysteresis = u32_arg(
                    c,
                    c.one("a weight")?,
                    0,
                    i32::MAX.unsigned_abs(),
                    "a weight",
                )?;
            }
            "quorum_up" => vs.quorum_up = Some(script(c)?),
            "quorum_down" => vs.quorum_down = Some(script(c)?),
            "sorry_server" => {
                c.leaf()?;
                c.max_args(2)?;
                let addr = ip(c, c.arg(0, "an address")?)?;
                let p = c.args.get(1).map(|p| port(c, p)).transpose()?;
                let inhibit = vs.sorry_server.as_ref().is_some_and(|s| s.inhibit);
                vs.sorry_server = Some(SorryServer {
                    addr,
                    port: p,
                    method: Method::default(),
                    inhibit,
                });
            }
            "sorry_server_inhibit" => {
                let v = c.flag()?;
                match &mut vs.sorry_server {
                    Some(s) => s.inhibit = v,
                    None => {
                        // keepalived accepts it before sorry_server; keep it for then.
                        vs.sorry_server = Some(SorryServer {
                            addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                            port: None,
                            method: Method::default(),
                            inhibit: v,
                        });
                    }
                }
            }
            "sorry_server_lvs_method" => {
                c.leaf()?;
                d.sorry_method = Some(method(c, &c.args)?);
            }
            "inhibit_on_failure" => d.inhibit = c.flag()?,
            "ha_suspend" | "smtp_alert" | "snmp_name" | "log_all_failures"
            | "lvs_flush_on_stop" | "retry_it" => c.notice(
                notices,
                NoticeKind::Ignored("virtual_server keyword without effect in rvs".to_owned()),
            ),
            _ => return Err(c.err(ErrorKind::UnknownKeyword("virtual_server".to_owned()))),
        }
    }
    if let Some(s) = &vs.sorry_server
        && s.addr.is_unspecified()
    {
        return Err(n.invalid("sorry_server_inhibit without sorry_server"));
    }
    for (c, bit, sched) in flags {
        c.flag()?;
        if let Some(s) = sched
            && vs.scheduler != s
        {
            return Err(c.invalid(format!(
                "flag for the {s} scheduler, but lb_algo is {}",
                vs.scheduler
            )));
        }
        vs.sched_flags |= bit;
    }
    if vs.ops
        && vs.protocol != Protocol::Udp
        && let Some(c) = ops_node
    {
        c.notice(
            notices,
            NoticeKind::Warning("one-packet scheduling is meant for UDP services".to_owned()),
        );
    }
    if let Some(s) = &mut vs.sorry_server {
        s.method = d.sorry_method.unwrap_or(vs.method);
    }
    let mut seen: HashMap<(IpAddr, Option<u16>), &Node> = HashMap::new();
    for c in rs_nodes {
        let rs = real_server(c, &vs, &d, &m.globals.script_user, notices)?;
        if let Some(prev) = seen.insert((rs.addr, rs.port), c) {
            return Err(c.invalid(format!("real server already declared at {}", prev.pos)));
        }
        if let Some(s) = &vs.sorry_server
            && s.addr == rs.addr
            && s.port == rs.port
        {
            return Err(c.invalid("real server is also the sorry_server"));
        }
        vs.real_servers.push(rs);
    }
    Ok(vs)
}

fn real_server(
    n: &Node,
    vs: &VirtualServer,
    d: &VsDraft,
    script_user: &Option<String>,
    notices: &mut Vec<Notice>,
) -> Res<RealServer> {
    n.max_args(2)?;
    let addr = ip(n, n.arg(0, "an address")?)?;
    let port = n.args.get(1).map(|p| port(n, p)).transpose()?;
    let mut rs = RealServer {
        pos: n.pos.clone(),
        addr,
        port,
        weight: 1,
        method: vs.method,
        u_threshold: 0,
        l_threshold: 0,
        inhibit_on_failure: d.inhibit,
        notify_up: None,
        notify_down: None,
        checks: Vec::new(),
    };
    let mut timing = PartialTiming::default();
    let mut virtualhost = None;
    let mut lthreshold_node = None;
    let mut check_nodes = Vec::new();
    for c in n.children()? {
        if timing.keyword(c, true)? {
            continue;
        }
        match c.kw.as_str() {
            "weight" => {
                rs.weight = i32::try_from(u32_arg(
                    c,
                    c.one("a weight")?,
                    0,
                    i32::MAX.unsigned_abs(),
                    "a weight",
                )?)
                .unwrap_or(i32::MAX);
            }
            "lvs_method" | "lb_kind" => {
                c.leaf()?;
                rs.method = method(c, &c.args)?;
            }
            "uthreshold" => {
                rs.u_threshold = u32_arg(
                    c,
                    c.one("a connection count")?,
                    0,
                    i32::MAX.unsigned_abs(),
                    "a count",
                )?;
            }
            "lthreshold" => {
                rs.l_threshold = u32_arg(
                    c,
                    c.one("a connection count")?,
                    0,
                    i32::MAX.unsigned_abs(),
                    "a count",
                )?;
                lthreshold_node = Some(c);
            }
            "inhibit_on_failure" => rs.inhibit_on_failure = c.flag()?,
            "notify_up" => rs.notify_up = Some(script(c)?),
            "notify_down" => rs.notify_down = Some(script(c)?),
            "virtualhost" => virtualhost = Some(c.one("a host name")?.to_owned()),
            "smtp_alert" | "snmp_name" | "log_all_failures" => c.notice(
                notices,
                NoticeKind::Ignored("real_server keyword without effect in rvs".to_owned()),
            ),
            "TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "UDP_CHECK" | "DNS_CHECK" | "MISC_CHECK"
            | "PING_CHECK" | "SMTP_CHECK" | "FILE_CHECK" | "BFD_CHECK" => check_nodes.push(c),
            _ => return Err(c.err(ErrorKind::UnknownKeyword("real_server".to_owned()))),
        }
    }
    if let Some(c) = lthreshold_node
        && rs.l_threshold > rs.u_threshold
    {
        return Err(c.invalid(format!(
            "lthreshold {} is above uthreshold {}",
            rs.l_threshold, rs.u_threshold
        )));
    }
    let inherited = timing.over(d.timing);
    let vhost = virtualhost.or_else(|| d.virtualhost.clone());
    let rs_port = rs.port.or(match vs.addr {
        VsAddr::Addr { port, .. } => Some(port),
        _ => None,
    });
    let mut dynamic_seen = false;
    for c in check_nodes {
        let mut chk = checker(c, inherited, &vhost, script_user, notices)?;
        if let CheckKind::Misc(m) = &mut chk.kind
            && m.dynamic
        {
            if dynamic_seen {
                c.notice(
                    notices,
                    NoticeKind::Warning(
                        "only the first misc_dynamic checker of a real server sets its weight"
                            .to_owned(),
                    ),
                );
                m.dynamic = false;
            }
            dynamic_seen = true;
        }
        let needs_port = matches!(
            chk.kind,
            CheckKind::Tcp | CheckKind::Http(_) | CheckKind::Udp(_) | CheckKind::Dns(_)
        );
        if needs_port && chk.enabled && chk.conn.connect_port.or(rs_port).unwrap_or(0) == 0 {
            return Err(c.invalid("no port to probe: the real server has none, set connect_port"));
        }
        rs.checks.push(chk);
    }
    Ok(rs)
}

fn checker(
    n: &Node,
    inherited: PartialTiming,
    vhost: &Option<String>,
    script_user: &Option<String>,
    notices: &mut Vec<Notice>,
) -> Res<Check> {
    n.max_args(0)?;
    let kw = n.kw.as_str();
    if matches!(kw, "SMTP_CHECK" | "FILE_CHECK" | "BFD_CHECK") {
        n.children()?;
        n.notice(
            notices,
            NoticeKind::CheckerDisabled(format!("{kw} is not implemented in rvs")),
        );
        let (timing, alpha) = inherited.resolve(&CheckKind::Tcp);
        return Ok(Check {
            pos: n.pos.clone(),
            kind: CheckKind::Unsupported(kw.to_owned()),
            timing,
            alpha,
            conn: ConnOpts::default(),
            enabled: false,
        });
    }
    let is_misc = kw == "MISC_CHECK";
    let mut timing = PartialTiming::default();
    let mut conn = ConnOpts::default();
    let mut http = HttpCheck {
        tls: kw == "SSL_GET",
        urls: Vec::new(),
        virtualhost: vhost.clone(),
        protocol: HttpVersion::default(),
    };
    let mut udp = UdpCheck {
        payload: Vec::new(),
        require_reply: None,
        min_reply_length: 0,
        max_reply_length: 255,
    };
    let mut dns = DnsCheck {
        qtype: DnsType::Soa,
        name: ".".to_owned(),
    };
    let mut misc_cmd: Option<String> = None;
    let mut misc_timeout = None;
    let mut misc_dynamic = false;
    let mut misc_user = None;
    let ignored = |c: &Node, notices: &mut Vec<Notice>, why: &str| {
        c.notice(notices, NoticeKind::Ignored(why.to_owned()));
    };
    for c in n.children()? {
        if timing.keyword(c, !is_misc)? {
            continue;
        }
        let k = c.kw.as_str();
        match (kw, k) {
            (_, "log_all_failures") => ignored(c, notices, "logging option without effect in rvs"),
            (k0, "connect_ip") if k0 != "MISC_CHECK" => {
                conn.connect_ip = Some(ip(c, c.one("an address")?)?);
            }
            (k0, "connect_port") if k0 != "MISC_CHECK" => {
                conn.connect_port = Some(port(c, c.one("a port")?)?);
            }
            (k0, "bindto") if k0 != "MISC_CHECK" => {
                conn.bindto = Some(ip(c, c.one("an address")?)?);
            }
            (k0, "bind_port") if k0 != "MISC_CHECK" => {
                conn.bind_port = Some(port(c, c.one("a port")?)?);
            }
            (k0, "bind_if" | "fwmark") if k0 != "MISC_CHECK" => ignored(
                c,
                notices,
                "needs socket options std does not offer (SO_BINDTODEVICE / SO_MARK); probes go out unmarked on the routed interface",
            ),
            ("HTTP_GET" | "SSL_GET", "url") => http.urls.push(url(c, notices)?),
            ("HTTP_GET" | "SSL_GET", "virtualhost") => {
                http.virtualhost = Some(c.one("a host name")?.to_owned());
            }
            ("HTTP_GET" | "SSL_GET", "http_protocol") => {
                let v = c.one("1.0, 1.0C or 1.1")?;
                http.protocol = match v {
                    "1.0" => HttpVersion::Http10,
                    "1.0C" | "1.0c" => HttpVersion::Http10Close,
                    "1.1" => HttpVersion::Http11,
                    _ => return Err(c.bad(v, "1.0, 1.0C or 1.1")),
                };
            }
            ("HTTP_GET" | "SSL_GET", "fast_recovery") => {
                ignored(c, notices, "fast_recovery has no effect in rvs");
            }
            ("SSL_GET", "enable_sni" | "sni_name" | "tls_compliant") => {
                ignored(
                    c,
                    notices,
                    "SSL_GET always sends SNI (the virtual host) and does not verify certificates",
                );
            }
            ("UDP_CHECK", "payload") => udp.payload = hex_bytes(c, c.one("hex bytes")?, 65_507)?,
            ("UDP_CHECK", "require_reply") => {
                c.leaf()?;
                c.max_args(1)?;
                udp.require_reply = Some(match c.args.first() {
                    Some(p) => reply_pattern(c, p)?,
                    None => ReplyPattern::default(),
                });
            }
            ("UDP_CHECK", "min_reply_length") => {
                udp.min_reply_length = num(c, c.one("a length")?, 0, 65_535, "a length")? as usize;
            }
            ("UDP_CHECK", "max_reply_length") => {
                udp.max_reply_length = num(c, c.one("a length")?, 0, 65_535, "a length")? as usize;
            }
            ("DNS_CHECK", "type") => {
                let t = c.one("a query type")?;
                dns.qtype = match t.to_ascii_uppercase().as_str() {
                    "A" => DnsType::A,
                    "NS" => DnsType::Ns,
                    "CNAME" => DnsType::Cname,
                    "SOA" => DnsType::Soa,
                    "MX" => DnsType::Mx,
                    "TXT" => DnsType::Txt,
                    "AAAA" => DnsType::Aaaa,
                    _ => return Err(c.bad(t, "A, NS, CNAME, SOA, MX, TXT or AAAA")),
                };
            }
            ("DNS_CHECK", "name") => {
                let name = c.one("a domain name")?;
                if !valid_dns_name(name) {
                    return Err(c.bad(
                        name,
                        "a domain name (labels of 1..=63 bytes, at most 253 bytes)",
                    ));
                }
                dns.name = name.to_owned();
            }
            ("MISC_CHECK", "misc_path") => misc_cmd = Some(c.one("a command line")?.to_owned()),
            ("MISC_CHECK", "misc_timeout") => {
                misc_timeout = Some(secs(c, c.one("seconds")?, false)?)
            }
            ("MISC_CHECK", "misc_dynamic") => misc_dynamic = c.flag()?,
            ("MISC_CHECK", "user") => {
                c.leaf()?;
                c.max_args(2)?;
                let u = c.arg(0, "a user name")?;
                misc_user = Some(match c.args.get(1) {
                    Some(g) => format!("{u}:{g}"),
                    None => u.to_owned(),
                });
            }
            _ => return Err(c.err(ErrorKind::UnknownKeyword(kw.to_owned()))),
        }
    }
    let kind = match kw {
        "TCP_CHECK" => CheckKind::Tcp,
        "PING_CHECK" => CheckKind::Ping,
        "HTTP_GET" | "SSL_GET" => {
            if http.urls.is_empty() {
                return Err(n.invalid("needs at least one url { path ... } block"));
            }
            CheckKind::Http(http)
        }
        "UDP_CHECK" => {
            if udp.min_reply_length > udp.max_reply_length {
                return Err(n.invalid("min_reply_length is above max_reply_length"));
            }
            CheckKind::Udp(udp)
        }
        "DNS_CHECK" => CheckKind::Dns(dns),
        _ => {
            let Some(command) = misc_cmd else {
                return Err(n.invalid("needs misc_path"));
            };
            let argv: Vec<String> = command.split_whitespace().map(str::to_owned).collect();
            if argv.is_empty() {
                return Err(n.invalid("misc_path is empty"));
            }
            CheckKind::Misc(MiscCheck {
                command,
                argv,
                timeout: Duration::ZERO,
                dynamic: misc_dynamic,
                user: misc_user.or_else(|| script_user.clone()),
            })
        }
    };
    let (timing, alpha) = timing.over(inherited).resolve(&kind);
    let mut kind = kind;
    if let CheckKind::Misc(m) = &mut kind {
        m.timeout = misc_timeout.unwrap_or(timing.delay_loop);
    }
    let mut enabled = true;
    match &kind {
        CheckKind::Http(h) if h.tls => {
            enabled = false;
            n.notice(
                notices,
                NoticeKind::CheckerDisabled(
                    "SSL_GET needs a TLS stack, which this build of rvs does not have".to_owned(),
                ),
            );
        }
        CheckKind::Tcp | CheckKind::Http(_)
            if conn.bindto.is_some() || conn.bind_port.is_some() =>
        {
            n.notice(
                notices,
                NoticeKind::Ignored(
                    "bindto/bind_port on TCP probes: std sockets cannot bind before connecting; \
                     the routed source is used"
                        .to_owned(),
                ),
            );
        }
        _ => {}
    }
    Ok(Check {
        pos: n.pos.clone(),
        kind,
        timing,
        alpha,
        conn,
        enabled,
    })
}

fn url(n: &Node, notices: &mut Vec<Notice>) -> Res<Url> {
    n.max_args(0)?;
    let mut u = Url {
        path: String::new(),
        status: Vec::new(),
        digest: None,
        virtualhost: None,
    };
    let mut has_path = false;
    for c in n.children()? {
        match c.kw.as_str() {
            "path" => {
                let p = c.one("a request path")?;
                if p.is_empty() || p.len() > 2048 || !p.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(c.bad(p, "a printable request path of at most 2048 bytes"));
                }
                p.clone_into(&mut u.path);
                has_path = true;
            }
            "digest" => {
                let s = c.one("32 hex digits")?;
                let b = hex_bytes(c, s, 16)?;
                let d: [u8; 16] = b.try_into().map_err(|_| c.bad(s, "32 hex digits"))?;
                u.digest = Some(d);
            }
            "status_code" => {
                c.leaf()?;
                if c.args.is_empty() {
                    return Err(c.err(ErrorKind::MissingArgument("status codes".to_owned())));
                }
                for a in &c.args {
                    let (lo, hi) = a.split_once('-').unwrap_or((a, a));
                    let lo = u16::try_from(num(c, lo, 100, 599, "a status code")?).unwrap_or(0);
                    let hi = u16::try_from(num(c, hi, 100, 599, "a status code")?).unwrap_or(0);
                    if hi < lo {
                        return Err(c.bad(a, "a status code range low-high"));
                    }
                    u.status.push((lo, hi));
                }
            }
            "virtualhost" => u.virtualhost = Some(c.one("a host name")?.to_owned()),
            "regex" | "regex_no_match" | "regex_options" | "regex_stack" | "regex_min_offset"
            | "regex_max_offset" => c.notice(
                notices,
                NoticeKind::Ignored(
                    "body regex matching is not implemented; only status and digest are checked"
                        .to_owned(),
                ),
            ),
            _ => return Err(c.err(ErrorKind::UnknownKeyword("url".to_owned()))),
        }
    }
    if !has_path {
        return Err(n.invalid("url needs a path"));
    }
    if u.status.is_empty() {
        u.status.push((200, 299));
    }
    Ok(u)
}

fn reply_pattern(n: &Node, s: &str) -> Res<ReplyPattern> {
    let expected = "an even number of hex digits, X for a wildcard digit";
    if !s.len().is_multiple_of(2) || s.len() > 2 * 65_507 {
        return Err(n.bad(s, expected));
    }
    let mut bytes = Vec::with_capacity(s.len() / 2);
    for pair in s.as_bytes().chunks(2) {
        let mut v = 0u8;
        let mut m = 0u8;
        for &h in pair {
            v <<= 4;
            m <<= 4;
            if h == b'X' || h == b'x' {
                continue;
            }
            let d = (h as char).to_digit(16).ok_or_else(|| n.bad(s, expected))?;
            v |= u8::try_from(d).unwrap_or(0);
            m |= 0xf;
        }
        bytes.push((v, m));
    }
    Ok(ReplyPattern { bytes })
}

fn valid_dns_name(name: &str) -> bool {
    if name == "." {
        return true;
    }
    let n = name.strip_suffix('.').unwrap_or(name);
    !n.is_empty()
        && n.len() <= 253
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}
