//! Host and service names, and the C parsing/printing primitives ipvsadm relies on.
//!
//! ipvsadm resolves names through glibc (`gethostbyname`, `gethostbyaddr`,
//! `getservbyname`, `getservbyport`). rvsadm reads only the local databases
//! `/etc/hosts` and `/etc/services` and never sends a DNS query: a name that is
//! not in those files does not resolve (input is refused, output stays numeric).
//!
//! The numeric helpers reproduce the C functions whose quirks are visible in
//! ipvsadm's behaviour: `strtol` ([`string_to_number`]), `inet_aton`
//! ([`inet_aton`], which accepts `10.1` or `0x0a.0.0.1`), `atoi` ([`atoi`]) and
//! glibc's `inet_ntop` for IPv6 ([`ntop`]).

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::cell::OnceCell;
use std::fmt::Write as _;

/// Resolves names the way ipvsadm does, from `/etc/hosts` and `/etc/services`.
#[derive(Debug, Default)]
pub struct Names {
    hosts_text: Option<String>,
    services_text: Option<String>,
    system: bool,
    hosts: OnceCell<Vec<(IpAddr, Vec<String>)>>,
    services: OnceCell<Vec<ServEntry>>,
}

#[derive(Debug)]
struct ServEntry {
    names: Vec<String>,
    port: u16,
    proto: String,
}

/// Protocol name used by `/etc/services` for an IP protocol number.
fn proto_db_name(proto: u16) -> Option<&'static str> {
    match proto {
        6 => Some("tcp"),
        17 => Some("udp"),
        132 => Some("sctp"),
        _ => None,
    }
}

impl Names {
    /// Resolver over the system files, read lazily on first use.
    pub fn system() -> Self {
        Self {
            system: true,
            ..Self::default()
        }
    }

    /// Resolver over given file contents (tests).
    pub fn from_strs(hosts: &str, services: &str) -> Self {
        Self {
            hosts_text: Some(hosts.to_owned()),
            services_text: Some(services.to_owned()),
            ..Self::default()
        }
    }

    /// Resolver that knows no names at all.
    pub fn empty() -> Self {
        Self::default()
    }

    fn hosts(&self) -> &[(IpAddr, Vec<String>)] {
        self.hosts.get_or_init(|| {
            let text = if self.system {
                std::fs::read_to_string("/etc/hosts").unwrap_or_default()
            } else {
                self.hosts_text.clone().unwrap_or_default()
            };
            parse_hosts(&text)
        })
    }

    fn services(&self) -> &[ServEntry] {
        self.services.get_or_init(|| {
            let text = if self.system {
                std::fs::read_to_string("/etc/services").unwrap_or_default()
            } else {
                self.services_text.clone().unwrap_or_default()
            };
            parse_services(&text)
        })
    }

    /// `gethostbyname`: the first IPv4 address listed for `name` (case-insensitive).
    pub fn host_to_v4(&self, name: &str) -> Option<Ipv4Addr> {
        self.hosts().iter().find_map(|(addr, names)| match addr {
            IpAddr::V4(a) if names.iter().any(|n| n.eq_ignore_ascii_case(name)) => Some(*a),
            _ => None,
        })
    }

    /// `gethostbyaddr`: the canonical name of the first line listing `addr`.
    pub fn addr_to_host(&self, addr: &IpAddr) -> Option<&str> {
        self.hosts()
            .iter()
            .find(|(a, _)| a == addr)
            .and_then(|(_, names)| names.first())
            .map(String::as_str)
    }

    /// `getservbyname(name, proto)`.
    pub fn service_to_port(&self, name: &str, proto: u16) -> Option<u16> {
        let p = proto_db_name(proto)?;
        self.services()
            .iter()
            .find(|s| s.proto == p && s.names.iter().any(|n| n == name))
            .map(|s| s.port)
    }

    /// `getservbyport(port, proto)`: the official service name.
    pub fn port_to_service(&self, port: u16, proto: u16) -> Option<&str> {
        let p = proto_db_name(proto)?;
        self.services()
            .iter()
            .find(|s| s.proto == p && s.port == port)
            .and_then(|s| s.names.first())
            .map(String::as_str)
    }
}

fn strip_comment(line: &str) -> &str {
    match line.find('#') {
        Some(i) => &line[..i],
        None => line,
    }
}

fn parse_hosts(text: &str) -> Vec<(IpAddr, Vec<String>)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut fields = strip_comment(line).split_ascii_whitespace();
        let Some(addr) = fields.next() else { continue };
        let Ok(addr) = addr.parse::<IpAddr>() else {
            continue;
        };
        let names: Vec<String> = fields.map(str::to_owned).collect();
        if !names.is_empty() {
            out.push((addr, names));
        }
    }
    out
}

fn parse_services(text: &str) -> Vec<ServEntry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut fields = strip_comment(line).split_ascii_whitespace();
        let (Some(name), Some(pp)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Some((port, proto)) = pp.split_once('/') else {
            continue;
        };
        let Ok(port) = port.parse::<u16>() else {
            continue;
        };
        let mut names = vec![name.to_owned()];
        names.extend(fields.map(str::to_owned));
        out.push(ServEntry {
            names,
            port,
            proto: proto.to_owned(),
        });
    }
    out
}

/// C `isspace` in the C locale.
const fn c_isspace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// ipvsadm's `string_to_number`: `strtol(s, &end, 10)` that must consume the whole
/// string (leading white space and a sign allowed), within `min..=max`.
pub fn string_to_number(s: &str, min: i64, max: i64) -> Option<i64> {
    let v = strtol_full(s)?;
    (min..=max).contains(&v).then_some(v)
}

/// `strtol(s, &end, 10)` requiring `*end == '\0' && end != s`; `None` on overflow.
pub fn strtol_full(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && c_isspace(b[i]) {
        i += 1;
    }
    let mut neg = false;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        neg = b[i] == b'-';
        i += 1;
    }
    let start = i;
    let mut v: i64 = 0;
    let mut overflow = false;
    while i < b.len() && b[i].is_ascii_digit() {
        let d = i64::from(b[i] - b'0');
        match v.checked_mul(10).and_then(|x| {
            if neg {
                x.checked_sub(d)
            } else {
                x.checked_add(d)
            }
        }) {
            Some(n) => v = n,
            None => overflow = true,
        }
        i += 1;
    }
    if i == start || i != b.len() || overflow {
        return None;
    }
    Some(v)
}

/// C `atoi`: leading white space, optional sign, digits; stops at the first
/// non-digit; 0 when there are none. Saturates instead of overflowing.
pub fn atoi(s: &str) -> i64 {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && c_isspace(b[i]) {
        i += 1;
    }
    let mut neg = false;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        neg = b[i] == b'-';
        i += 1;
    }
    let mut v: i64 = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        v = v.saturating_mul(10).saturating_add(i64::from(b[i] - b'0'));
        i += 1;
    }
    if neg { -v } else { v }
}

/// Whether every byte is an ASCII digit (ipvsadm's `str_is_digit`; true for "").
pub fn str_is_digit(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

/// glibc `inet_aton`: 1 to 4 parts in decimal, octal (leading 0) or hex (0x);
/// the last part fills the remaining bytes. Anything after white space is ignored.
pub fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let b = s.as_bytes();
    let mut parts: Vec<u64> = Vec::with_capacity(4);
    let mut i = 0;
    loop {
        if i >= b.len() || !b[i].is_ascii_digit() {
            return None;
        }
        let (base, mut j) = if b[i] == b'0' {
            if i + 1 < b.len() && (b[i + 1] == b'x' || b[i + 1] == b'X') {
                (16, i + 2)
            } else {
                (8, i + 1)
            }
        } else {
            (10, i)
        };
        let mut v: u64 = 0;
        while j < b.len() {
            let c = b[j];
            let d = match c {
                b'0'..=b'9' => u64::from(c - b'0'),
                b'a'..=b'f' if base == 16 => u64::from(c - b'a' + 10),
                b'A'..=b'F' if base == 16 => u64::from(c - b'A' + 10),
                _ => break,
            };
            if base == 8 && d >= 8 {
                return None;
            }
            v = v.saturating_mul(base).saturating_add(d);
            if v > u64::from(u32::MAX) {
                return None;
            }
            j += 1;
        }
        parts.push(v);
        i = j;
        if i < b.len() && b[i] == b'.' {
            if parts.len() >= 4 {
                return None;
            }
            i += 1;
            continue;
        }
        break;
    }
    if i < b.len() && !c_isspace(b[i]) {
        return None;
    }
    let val: u32 = match parts.as_slice() {
        [a] => u32::try_from(*a).ok()?,
        [a, rest] => {
            if *a > 0xff || *rest > 0x00ff_ffff {
                return None;
            }
            u32::try_from((a << 24) | rest).ok()?
        }
        [a, b2, rest] => {
            if *a > 0xff || *b2 > 0xff || *rest > 0xffff {
                return None;
            }
            u32::try_from((a << 24) | (b2 << 16) | rest).ok()?
        }
        [a, b2, c, d] => {
            if *a > 0xff || *b2 > 0xff || *c > 0xff || *d > 0xff {
                return None;
            }
            u32::try_from((a << 24) | (b2 << 16) | (c << 8) | d).ok()?
        }
        _ => return None,
    };
    Some(Ipv4Addr::from(val))
}

/// glibc `inet_ntop`: dotted quad for IPv4; for IPv6 the longest run (≥ 2) of zero
/// groups becomes `::`, and `::a.b.c.d` / `::ffff:a.b.c.d` forms are used when
/// the first 96 (or 80 + `ffff`) bits are zero.
pub fn ntop(addr: &IpAddr) -> String {
    match addr {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => ntop6(a),
    }
}

fn ntop6(a: &Ipv6Addr) -> String {
    let w = a.segments();
    // Longest run of zero words, first on ties, only if at least 2 long.
    let (mut best_base, mut best_len) = (usize::MAX, 0usize);
    let mut i = 0;
    while i < 8 {
        if w[i] == 0 {
            let start = i;
            while i < 8 && w[i] == 0 {
                i += 1;
            }
            let len = i - start;
            if len > best_len {
                best_base = start;
                best_len = len;
            }
        } else {
            i += 1;
        }
    }
    if best_len < 2 {
        best_base = usize::MAX;
        best_len = 0;
    }
    let mut out = String::with_capacity(40);
    let mut i = 0;
    while i < 8 {
        if best_base != usize::MAX && i >= best_base && i < best_base + best_len {
            if i == best_base {
                out.push(':');
            }
            i += 1;
            continue;
        }
        if i != 0 {
            out.push(':');
        }
        if i == 6 && best_base == 0 && (best_len == 6 || (best_len == 5 && w[5] == 0xffff)) {
            let o = a.octets();
            let _ = write!(out, "{}.{}.{}.{}", o[12], o[13], o[14], o[15]);
            return out;
        }
        let _ = write!(out, "{:x}", w[i]);
        i += 1;
    }
    if best_base != usize::MAX && best_base + best_len == 8 {
        out.push(':');
    }
    out
}

/// Truncate `s` to at most `max` bytes (on a character boundary).
pub fn truncate_bytes(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtol_rules() {
        assert_eq!(strtol_full("80"), Some(80));
        assert_eq!(strtol_full(" +80"), Some(80));
        assert_eq!(strtol_full("-1"), Some(-1));
        assert_eq!(strtol_full(""), None);
        assert_eq!(strtol_full("80x"), None);
        assert_eq!(strtol_full("99999999999999999999"), None);
        assert_eq!(string_to_number("65536", 0, 65535), None);
        assert_eq!(atoi("64abc"), 64);
        assert_eq!(atoi("abc"), 0);
    }

    #[test]
    fn aton_forms() {
        assert_eq!(inet_aton("198.18.0.1"), Some(Ipv4Addr::new(198, 18, 0, 1)));
        assert_eq!(inet_aton("10.1"), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(inet_aton("127.1.2"), Some(Ipv4Addr::new(127, 1, 0, 2)));
        assert_eq!(inet_aton("0x0a.010.0.1"), Some(Ipv4Addr::new(10, 8, 0, 1)));
        assert_eq!(inet_aton("64"), Some(Ipv4Addr::new(0, 0, 0, 64)));
        assert_eq!(inet_aton("256.0.0.1"), None);
        assert_eq!(inet_aton("1.2.3.4.5"), None);
        assert_eq!(inet_aton("1.2.3.4x"), None);
        assert_eq!(inet_aton("1.2.3.4 junk"), Some(Ipv4Addr::new(1, 2, 3, 4)));
        assert_eq!(inet_aton("09"), None);
        assert_eq!(inet_aton("host"), None);
        assert_eq!(inet_aton(""), None);
        assert_eq!(inet_aton("1..2"), None);
    }

    #[test]
    fn ntop6_like_glibc() {
        let f = |s: &str| ntop(&s.parse::<IpAddr>().unwrap());
        assert_eq!(f("2001:db8::1"), "2001:db8::1");
        assert_eq!(f("::1"), "::1");
        assert_eq!(f("::"), "::");
        assert_eq!(f("::ffff:1.2.3.4"), "::ffff:1.2.3.4");
        assert_eq!(f("::102:304"), "::1.2.3.4");
        assert_eq!(f("1:0:0:2:0:0:0:3"), "1:0:0:2::3");
        assert_eq!(f("1:0:2:0:3:0:4:0"), "1:0:2:0:3:0:4:0");
        assert_eq!(f("1::"), "1::");
        assert_eq!(f("fe80::1:0:0:1"), "fe80::1:0:0:1");
    }

    #[test]
    fn databases() {
        let n = Names::from_strs(
            "127.0.0.1 localhost\n::1 localhost ip6-localhost\n198.18.0.1 lb.example.com lb # c\n",
            "http 80/tcp www\nhttp 80/udp\ndomain 53/udp\n# x\nsip 5060/sctp\n",
        );
        assert_eq!(n.host_to_v4("LB"), Some(Ipv4Addr::new(198, 18, 0, 1)));
        assert_eq!(n.host_to_v4("ip6-localhost"), None);
        assert_eq!(
            n.addr_to_host(&"198.18.0.1".parse().unwrap()),
            Some("lb.example.com")
        );
        assert_eq!(n.service_to_port("www", 6), Some(80));
        assert_eq!(n.service_to_port("domain", 6), None);
        assert_eq!(n.port_to_service(53, 17), Some("domain"));
        assert_eq!(n.port_to_service(5060, 132), Some("sip"));
        assert_eq!(n.port_to_service(80, 0), None);
    }
}
