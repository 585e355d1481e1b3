//! Keep the host stack away from virtual-service traffic: nftables `netdev ingress` drops.
//!
//! An AF_PACKET socket receives a copy of every frame; the original still goes up the
//! kernel's stack. For a virtual service the host would then answer too: a TCP RST or an
//! ICMP port unreachable when nothing listens locally, or a local delivery when the VIP is
//! also a local address (which it usually is, so that the host answers ARP/ND for it). The
//! daemon therefore installs, for the interfaces it serves, an nftables table of family
//! `netdev` whose `ingress` chains drop exactly the virtual-service traffic. The kernel
//! hands frames to packet sockets before the ingress hook, so the daemon still sees them;
//! everything else (ARP, ND, management traffic, health-check answers from real servers
//! addressed to the host) passes.
//!
//! [`ingress_drop_ruleset`] renders the ruleset, [`IngressDrop`] applies it with
//! `nft -f -` (one atomic transaction that also replaces an older copy of the table) and
//! deletes the table on drop, in the network namespace it was applied in.
//!
//! Limits: a rule with a port matches only unfragmented packets and first fragments (later
//! fragments carry no port), so later fragments reach the host stack, which drops them when
//! reassembly times out. Services selected by firewall mark cannot be matched here (marks
//! are set later in the path); the daemon handles those by VIP alone with port 0.

use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::invalid;
use crate::netns::NetNsHandle;

/// How long `nft` may run before it is killed.
const NFT_TIMEOUT: Duration = Duration::from_secs(10);

/// Transport protocol of a virtual service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Proto {
    /// The nft keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
        }
    }
}

/// Traffic to drop: protocol, address and port (0 = every port, as for an IPVS
/// persistent-port-zero service). Normally the destination of a virtual service; with
/// `source` set, the source of a NAT real server (its replies must reach only the daemon,
/// never the host's forwarding path). The family is the address's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VipPort {
    /// Protocol.
    pub proto: Proto,
    /// Virtual IP address (or real-server address with `source`).
    pub vip: IpAddr,
    /// Destination port (source port with `source`); 0 for all ports.
    pub port: u16,
    /// Match the source address and port instead of the destination.
    pub source: bool,
    /// With `source`: do not drop packets addressed to this (local) address, e.g. the
    /// answers of the real server to the director's own health checks.
    pub except_daddr: Option<IpAddr>,
}

impl VipPort {
    /// A virtual-service entry (matches destination address and port).
    pub const fn new(proto: Proto, vip: IpAddr, port: u16) -> Self {
        Self {
            proto,
            vip,
            port,
            source: false,
            except_daddr: None,
        }
    }

    /// A NAT real-server entry (matches source address and port).
    pub const fn real_server(proto: Proto, rip: IpAddr, port: u16) -> Self {
        Self {
            proto,
            vip: rip,
            port,
            source: true,
            except_daddr: None,
        }
    }

    /// The same rule, sparing packets addressed to `local` (same family only).
    pub fn except(mut self, local: Option<IpAddr>) -> Self {
        self.except_daddr = local.filter(|l| l.is_ipv4() == self.vip.is_ipv4());
        self
    }

    /// `"ip"` or `"ip6"`, the nft family keyword of the VIP.
    pub fn family(&self) -> &'static str {
        if self.vip.is_ipv4() { "ip" } else { "ip6" }
    }

    /// The set this entry belongs in and its element text.
    fn element(&self) -> (usize, String) {
        let v6 = usize::from(self.vip.is_ipv6());
        let with_port = self.port != 0;
        let set = v6 * 4 + usize::from(self.source) * 2 + usize::from(!with_port);
        let p = self.proto.as_str();
        let text = if with_port {
            format!("{} . {p} . {}", self.vip, self.port)
        } else {
            format!("{} . {p}", self.vip)
        };
        (set, text)
    }
}

/// Where the drops sit in the kernel's receive path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DropHook {
    /// Table `netdev`, one `ingress` chain per device: before IP processing, after the
    /// packet sockets bound to every protocol (`ETH_P_ALL`) and after TC ingress.
    #[default]
    Ingress,
    /// Table `inet`, chains `input` and `forward` matching the devices by name: after the
    /// packet sockets bound to IPv4 or IPv6 only, which the kernel serves after TC and
    /// `netdev ingress` (so that frames a TC program forwarded never reach them). Not
    /// `prerouting`: with bridge netfilter on (`bridge-nf-call-iptables`, the default where
    /// the module is loaded), the bridge runs the prerouting hooks for frames arriving on
    /// its ports before it passes them up, so a drop there would hide them from the
    /// bridge's packet sockets too. (The kernel can still answer a forwarded packet with
    /// TTL 1 or, for IPv6, one too big before the forward hook drops it.)
    Ip,
}

impl DropHook {
    /// The nft family keyword of the table.
    pub fn family(self) -> &'static str {
        match self {
            Self::Ingress => "netdev",
            Self::Ip => "inet",
        }
    }
}

/// The sets of the table, indexed by [`VipPort::element`]: name, element type, and the
/// match expression of the drop rule that uses it (`{spare}`: the spared-destination test of
/// source rules).
const SETS: [(&str, &str, &str); 8] = [
    (
        "dst4",
        "ipv4_addr . inet_proto . inet_service",
        "ip daddr . meta l4proto . th dport",
    ),
    (
        "dst4_all",
        "ipv4_addr . inet_proto",
        "ip daddr . meta l4proto",
    ),
    (
        "src4",
        "ipv4_addr . inet_proto . inet_service",
        "ip saddr . meta l4proto . th sport",
    ),
    (
        "src4_all",
        "ipv4_addr . inet_proto",
        "ip saddr . meta l4proto",
    ),
    (
        "dst6",
        "ipv6_addr . inet_proto . inet_service",
        "ip6 daddr . meta l4proto . th dport",
    ),
    (
        "dst6_all",
        "ipv6_addr . inet_proto",
        "ip6 daddr . meta l4proto",
    ),
    (
        "src6",
        "ipv6_addr . inet_proto . inet_service",
        "ip6 saddr . meta l4proto . th sport",
    ),
    (
        "src6_all",
        "ipv6_addr . inet_proto",
        "ip6 saddr . meta l4proto",
    ),
];

fn check_table(table: &str) -> io::Result<()> {
    let ok = table.len() <= 64
        && table
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
        && table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "invalid nftables table name {table:?} (letters, digits, '_'; a letter first)"
        )))
    }
}

fn check_device(dev: &str) -> io::Result<()> {
    let ok = !dev.is_empty()
        && dev.len() < libc::IFNAMSIZ
        && dev
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '@'));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!("invalid interface name {dev:?}")))
    }
}

/// Render the nft script that (re)creates table `netdev <table>`: sets of what to drop
/// (virtual services by destination address, protocol and port, or address and protocol
/// for port-0 services; NAT real servers by source), and one `ingress` chain per device
/// (priority -500, before any other ingress chain; policy accept) with one drop rule per
/// non-empty set. A lookup in a set costs the same for 10 services or 10,000, and the
/// script grows by one line per service. Source (real-server) rules spare packets
/// addressed to any of the `except_daddr` addresses given (the director's own addresses:
/// answers to its health checks).
///
/// The script first creates and deletes the table, so applying it replaces any older
/// version in the same transaction. Duplicates are removed.
///
/// # Errors
///
/// `InvalidInput` for a table name that is not an nft identifier, a device name that
/// cannot be an interface name, or no device.
pub fn ingress_drop_ruleset(
    table: &str,
    devices: &[&str],
    services: &[VipPort],
) -> io::Result<String> {
    drop_ruleset(table, devices, services, DropHook::Ingress)
}

/// [`ingress_drop_ruleset`] at either hook: with [`DropHook::Ip`] the table is of family
/// `inet` and has two chains, `input` and `forward` (priority -500), whose rules start
/// with `iifname { ... }`, the devices.
///
/// # Errors
///
/// As [`ingress_drop_ruleset`].
pub fn drop_ruleset(
    table: &str,
    devices: &[&str],
    services: &[VipPort],
    hook: DropHook,
) -> io::Result<String> {
    check_table(table)?;
    if devices.is_empty() {
        return Err(invalid(
            "at least one device is needed for a netdev ingress chain",
        ));
    }
    for d in devices {
        check_device(d)?;
    }
    let mut sets: [Vec<String>; 8] = Default::default();
    let mut seen = std::collections::HashSet::new();
    let mut spare: [Vec<String>; 2] = Default::default();
    for s in services {
        let (i, e) = s.element();
        if seen.insert((i, e.clone())) {
            sets[i].push(e);
        }
        if s.source
            && let Some(l) = s.except_daddr
        {
            let l = l.to_string();
            let fam = usize::from(s.vip.is_ipv6());
            if !spare[fam].contains(&l) {
                spare[fam].push(l);
            }
        }
    }
    let mut out = String::new();
    // Writing to a String cannot fail; the results are ignored on purpose.
    let fam = hook.family();
    let _ = writeln!(out, "table {fam} {table}");
    let _ = writeln!(out, "delete table {fam} {table}");
    let _ = writeln!(out, "table {fam} {table} {{");
    let write_set = |out: &mut String, name: &str, ty: &str, elems: &[String]| {
        let _ = writeln!(out, "\tset {name} {{");
        let _ = writeln!(out, "\t\ttype {ty}");
        if !elems.is_empty() {
            let _ = writeln!(out, "\t\telements = {{ {} }}", elems.join(", "));
        }
        let _ = writeln!(out, "\t}}");
    };
    for (i, (name, ty, _)) in SETS.iter().enumerate() {
        if !sets[i].is_empty() {
            write_set(&mut out, name, ty, &sets[i]);
        }
    }
    for (fam, name, ty) in [(0, "spare4", "ipv4_addr"), (1, "spare6", "ipv6_addr")] {
        if !spare[fam].is_empty() {
            write_set(&mut out, name, ty, &spare[fam]);
        }
    }
    let chains: Vec<(String, String, String)> = match hook {
        DropHook::Ingress => devices
            .iter()
            .enumerate()
            .map(|(d, dev)| {
                (
                    format!("ingress_{d}"),
                    format!("type filter hook ingress device \"{dev}\" priority -500;"),
                    String::new(),
                )
            })
            .collect(),
        DropHook::Ip => {
            let names: Vec<String> = devices.iter().map(|d| format!("\"{d}\"")).collect();
            let iif = format!("iifname {{ {} }} ", names.join(", "));
            ["input", "forward"]
                .into_iter()
                .map(|h| {
                    (
                        h.to_owned(),
                        format!("type filter hook {h} priority -500;"),
                        iif.clone(),
                    )
                })
                .collect()
        }
    };
    for (chain, decl, iif) in &chains {
        let _ = writeln!(out, "\tchain {chain} {{");
        let _ = writeln!(out, "\t\t{decl} policy accept;");
        for (i, (name, _, expr)) in SETS.iter().enumerate() {
            if sets[i].is_empty() {
                continue;
            }
            let v6 = i >= 4;
            let source = i % 4 >= 2;
            let guard = match (source, v6) {
                (true, false) if !spare[0].is_empty() => " ip daddr != @spare4",
                (true, true) if !spare[1].is_empty() => " ip6 daddr != @spare6",
                _ => "",
            };
            let _ = writeln!(out, "\t\t{iif}{expr} @{name}{guard} drop");
        }
        let _ = writeln!(out, "\t}}");
    }
    let _ = writeln!(out, "}}");
    Ok(out)
}

/// Why nft-based code cannot run here (`nft` missing), or `None`.
pub fn nft_unavailable() -> Option<String> {
    match Command::new("nft")
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => None,
        Ok(s) => Some(format!("nft --version failed ({s})")),
        Err(e) => Some(format!("nft(8) is not installed: {e}")),
    }
}

/// Run `nft -f -` with `script` on stdin, in the calling thread's network namespace,
/// killing it after 10 s.
///
/// # Errors
///
/// When `nft` cannot be started, fails (its stderr is in the error) or times out.
pub fn run_nft_script(script: &str) -> io::Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("starting nft: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let w = stdin.write_all(script.as_bytes());
        drop(stdin);
        if let Err(e) = w {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(e.kind(), format!("writing to nft: {e}")));
        }
    }
    let deadline = Instant::now() + NFT_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let mut err = String::new();
                if let Some(mut s) = child.stderr.take() {
                    let _ = io::Read::read_to_string(&mut s, &mut err);
                }
                return if status.success() {
                    Ok(())
                } else {
                    Err(io::Error::other(format!(
                        "nft -f - failed ({status}): {}",
                        err.trim()
                    )))
                };
            }
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "nft -f - did not finish in 10 s",
                ));
            }
            Err(e) => return Err(io::Error::new(e.kind(), format!("waiting for nft: {e}"))),
        }
    }
}

/// An installed ingress-drop table, deleted on drop (in the namespace it was installed in,
/// whichever thread drops it).
#[derive(Debug)]
pub struct IngressDrop {
    table: String,
    hook: DropHook,
    ns: NetNsHandle,
    installed: bool,
}

impl IngressDrop {
    /// Install (or replace) table `netdev <table>` in the calling thread's network
    /// namespace; see [`ingress_drop_ruleset`].
    ///
    /// # Errors
    ///
    /// `InvalidInput` from [`ingress_drop_ruleset`], or `nft`'s failure.
    pub fn apply(table: &str, devices: &[&str], services: &[VipPort]) -> io::Result<Self> {
        Self::apply_at(table, devices, services, DropHook::Ingress)
    }

    /// [`IngressDrop::apply`] at `hook` (see [`drop_ruleset`]).
    ///
    /// # Errors
    ///
    /// As [`IngressDrop::apply`].
    pub fn apply_at(
        table: &str,
        devices: &[&str],
        services: &[VipPort],
        hook: DropHook,
    ) -> io::Result<Self> {
        let script = drop_ruleset(table, devices, services, hook)?;
        let ns = NetNsHandle::current()?;
        run_nft_script(&script)?;
        Ok(Self {
            table: table.to_owned(),
            hook,
            ns,
            installed: true,
        })
    }

    /// Replace the rules (atomically) with a new device and service list.
    ///
    /// # Errors
    ///
    /// As [`IngressDrop::apply`]; the old rules stay when this fails.
    pub fn update(&mut self, devices: &[&str], services: &[VipPort]) -> io::Result<()> {
        let script = drop_ruleset(&self.table, devices, services, self.hook)?;
        self.ns.run_in(|| run_nft_script(&script))??;
        self.installed = true;
        Ok(())
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Delete the table now and report the outcome (drop does the same silently).
    ///
    /// # Errors
    ///
    /// When `nft` fails (the table is then considered gone anyway).
    pub fn remove(mut self) -> io::Result<()> {
        self.delete()
    }

    fn delete(&mut self) -> io::Result<()> {
        if !std::mem::replace(&mut self.installed, false) {
            return Ok(());
        }
        // Create-then-delete so that a table removed behind our back is not an error.
        let script = format!(
            "table {f} {t}\ndelete table {f} {t}\n",
            f = self.hook.family(),
            t = self.table
        );
        self.ns.run_in(|| run_nft_script(&script))?
    }
}

impl Drop for IngressDrop {
    fn drop(&mut self) {
        if let Err(e) = self.delete() {
            eprintln!(
                "rvs-io: removing nftables table {} {}: {e}",
                self.hook.family(),
                self.table
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_ruleset() {
        let s = [
            VipPort::new(Proto::Tcp, "198.18.0.10".parse().expect("ip"), 80),
            VipPort::new(Proto::Udp, "2001:db8::10".parse().expect("ip"), 53),
            VipPort::new(Proto::Sctp, "198.18.0.11".parse().expect("ip"), 0),
            VipPort::new(Proto::Tcp, "198.18.0.10".parse().expect("ip"), 80),
            VipPort::new(Proto::Udp, "198.18.0.10".parse().expect("ip"), 53),
        ];
        let text = ingress_drop_ruleset("rvs", &["eth0", "veth-a"], &s).expect("valid");
        let expected = "\
table netdev rvs
delete table netdev rvs
table netdev rvs {
\tset dst4 {
\t\ttype ipv4_addr . inet_proto . inet_service
\t\telements = { 198.18.0.10 . tcp . 80, 198.18.0.10 . udp . 53 }
\t}
\tset dst4_all {
\t\ttype ipv4_addr . inet_proto
\t\telements = { 198.18.0.11 . sctp }
\t}
\tset dst6 {
\t\ttype ipv6_addr . inet_proto . inet_service
\t\telements = { 2001:db8::10 . udp . 53 }
\t}
\tchain ingress_0 {
\t\ttype filter hook ingress device \"eth0\" priority -500; policy accept;
\t\tip daddr . meta l4proto . th dport @dst4 drop
\t\tip daddr . meta l4proto @dst4_all drop
\t\tip6 daddr . meta l4proto . th dport @dst6 drop
\t}
\tchain ingress_1 {
\t\ttype filter hook ingress device \"veth-a\" priority -500; policy accept;
\t\tip daddr . meta l4proto . th dport @dst4 drop
\t\tip daddr . meta l4proto @dst4_all drop
\t\tip6 daddr . meta l4proto . th dport @dst6 drop
\t}
}
";
        assert_eq!(text, expected);
    }

    #[test]
    fn renders_real_server_source_rules() {
        let s = [
            VipPort::real_server(Proto::Tcp, "198.19.0.2".parse().expect("ip"), 8080),
            VipPort::real_server(Proto::Udp, "2001:db8::2".parse().expect("ip"), 0),
        ];
        let text = ingress_drop_ruleset("rvs", &["eth0"], &s).expect("valid");
        assert!(
            text.contains("\t\tip saddr . meta l4proto . th sport @src4 drop\n"),
            "{text}"
        );
        assert!(
            text.contains("elements = { 198.19.0.2 . tcp . 8080 }"),
            "{text}"
        );
        assert!(
            text.contains("\t\tip6 saddr . meta l4proto @src6_all drop\n"),
            "{text}"
        );
        assert!(text.contains("elements = { 2001:db8::2 . udp }"), "{text}");
    }

    #[test]
    fn real_server_rules_spare_the_directors_own_address() {
        let r = VipPort::real_server(Proto::Tcp, "198.19.0.2".parse().expect("ip"), 80)
            .except(Some("198.19.0.1".parse().expect("ip")));
        let text = ingress_drop_ruleset("rvs", &["eth0"], &[r]).expect("valid");
        assert!(
            text.contains(
                "\t\tip saddr . meta l4proto . th sport @src4 ip daddr != @spare4 drop\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("\tset spare4 {\n\t\ttype ipv4_addr\n\t\telements = { 198.19.0.1 }"),
            "{text}"
        );
        // another family's address is not used
        let r6 = VipPort::real_server(Proto::Udp, "2001:db8::2".parse().expect("ip"), 0)
            .except(Some("198.19.0.1".parse().expect("ip")));
        assert_eq!(r6.except_daddr, None);
    }

    /// 10,000 services make one line each, in one set, and one rule per device.
    #[test]
    fn ten_thousand_services_stay_one_rule() {
        let s: Vec<VipPort> = (0..10_000u32)
            .map(|i| {
                let a = std::net::Ipv4Addr::from(0xC612_0000 | (i >> 4));
                VipPort::new(Proto::Tcp, a.into(), 80 + (i & 15) as u16)
            })
            .collect();
        let text = ingress_drop_ruleset("rvs", &["eth0"], &s).expect("valid");
        assert_eq!(text.matches(" drop\n").count(), 1, "one rule");
        assert_eq!(text.matches(" . tcp . ").count(), 10_000);
    }

    #[test]
    fn renders_the_ip_variant_with_input_and_forward_chains() {
        let s = [
            VipPort::new(Proto::Tcp, "198.18.0.10".parse().expect("ip"), 80),
            VipPort::real_server(Proto::Tcp, "198.19.0.2".parse().expect("ip"), 80)
                .except(Some("198.19.0.1".parse().expect("ip"))),
        ];
        let text = drop_ruleset("rvs", &["d0", "br1"], &s, DropHook::Ip).expect("valid");
        assert!(
            text.starts_with("table inet rvs\ndelete table inet rvs\n"),
            "{text}"
        );
        for h in ["input", "forward"] {
            assert!(
                text.contains(&format!(
                    "\tchain {h} {{\n\t\ttype filter hook {h} priority -500; policy accept;\n\
                     \t\tiifname {{ \"d0\", \"br1\" }} ip daddr . meta l4proto . th dport @dst4 drop\n\
                     \t\tiifname {{ \"d0\", \"br1\" }} ip saddr . meta l4proto . th sport @src4 ip daddr != @spare4 drop\n"
                )),
                "{text}"
            );
        }
        assert!(!text.contains("ingress"), "{text}");
        assert!(!text.contains("prerouting"), "{text}");
    }

    #[test]
    fn renders_an_empty_service_list() {
        let text = ingress_drop_ruleset("rvs_x", &["lo"], &[]).expect("valid");
        assert!(text.contains("chain ingress_0 {"));
        assert!(!text.contains("drop\n"), "{text}");
    }

    #[test]
    fn rejects_what_could_inject_text() {
        let s = [];
        for t in ["", "1abc", "a b", "a;b", "a\nb", "rvs}"] {
            assert!(
                ingress_drop_ruleset(t, &["eth0"], &s).is_err(),
                "table {t:?}"
            );
        }
        for d in ["", "eth0\"", "a b", "a\n", "0123456789abcdef", "x;y", "a/b"] {
            assert!(
                ingress_drop_ruleset("rvs", &[d], &s).is_err(),
                "device {d:?}"
            );
        }
        assert!(ingress_drop_ruleset("rvs", &[], &s).is_err(), "no device");
    }
}
