//! `setup` as a plan computed from what the host has now, then applied change by change;
//! `undo` as the changes recorded, reverted in reverse order.
//!
//! What a real server for DR and TUN needs (LVS-HOWTO, the kernel's `ipvs.sh` selftest):
//!
//! - each VIP on `lo` (/32 or /128), so the kernel accepts packets to it as local;
//! - `arp_ignore=1` and `arp_announce=2` on `all` and `lo` (IPv4 VIPs only), so the host
//!   neither answers ARP for the VIP nor uses it as the source of its own ARP requests:
//!   only the director may own the VIP on the shared link (IPv6 needs nothing: Linux
//!   answers neighbour solicitations only for addresses of the receiving interface);
//! - `rp_filter` relaxed on `all` and on the interfaces packets arrive on. The kernel uses
//!   the larger of `all` and the interface's value. A decapsulated packet arrives on the
//!   tunnel device while the route back to its source leaves through another, which
//!   strict mode (1) rejects, and so does loose mode (2) on a device without an IPv4
//!   address: with a tunnel, `all` and the tunnel device are set to 0;
//! - for TUN, a device where decapsulated packets come in: the kernel's `tunl0` when the
//!   `ipip` module exists, else a TUN device fed by `rvs-rs decap`.
//!
//! Values that already satisfy the requirement are kept, not rewritten: `arp_ignore` 1 or
//! 2, `arp_announce` 2, `rp_filter` 0 or the requested value. A VIP already on `lo` is
//! kept (and not removed by `undo`).

use std::fmt::Write as _;
use std::io;
use std::net::IpAddr;

use anyhow::{Context, bail};

use crate::host::{Host, Sysctl, errno};
use crate::state::{Change, DecapMode, State, Tunnel, VERSION};

/// The loopback interface the VIPs go on.
pub(crate) const LO: &str = "lo";
/// The kernel's IP-in-IP fallback device.
pub(crate) const TUNL0: &str = "tunl0";

/// How the user asked decapsulation to be done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DecapChoice {
    /// The kernel when it can, else userspace.
    Auto,
    /// The kernel's `ipip` module (`tunl0`); an error when it is not available.
    Kernel,
    /// `rvs-rs decap` and a TUN device.
    Userspace,
}

/// What `setup` was asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SetupOpts {
    /// VIPs, without duplicates.
    pub(crate) vips: Vec<IpAddr>,
    /// Tunnel to terminate.
    pub(crate) tunnel: Tunnel,
    /// Who should decapsulate.
    pub(crate) decap: DecapChoice,
    /// Interfaces whose `rp_filter` to relax; `None` for every interface with an IPv4
    /// configuration.
    pub(crate) ifaces: Option<Vec<String>>,
    /// Relaxed `rp_filter` value: 0 (off) or 2 (loose).
    pub(crate) rp_filter: u8,
    /// Name of the TUN device for userspace decapsulation.
    pub(crate) tun_name: String,
}

/// A value already right, shown by `--dry-run` and left alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kept {
    /// A VIP already on the interface.
    Address {
        /// Interface.
        dev: String,
        /// Address.
        addr: IpAddr,
        /// Its prefix length there.
        prefix: u8,
    },
    /// A sysctl that already has an acceptable value.
    Sysctl {
        /// The sysctl.
        key: Sysctl,
        /// Its value.
        value: String,
    },
    /// An interface already up.
    LinkUp {
        /// Interface name.
        name: String,
    },
}

/// What `setup` will do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Who decapsulates.
    pub(crate) decap: DecapMode,
    /// Why that decapsulation was chosen (for `auto`).
    pub(crate) decap_note: Option<String>,
    /// Changes, in the order they are applied. For a device this plan creates, a sysctl's
    /// `old` is the `default` value it will start with.
    pub(crate) changes: Vec<Change>,
    /// What is already right.
    pub(crate) kept: Vec<Kept>,
}

/// Whether an `rp_filter` value `current` must change to reach `target` (0 or 2).
/// 0 is the most relaxed, then 2 (loose), then 1 (strict); never tighten.
pub(crate) fn rp_filter_needs_change(current: &str, target: u8) -> bool {
    match current.trim() {
        "0" => false,
        "2" => target == 0,
        _ => true,
    }
}

/// Plan `setup` against what `host` has now. Reads only.
///
/// # Errors
///
/// When the kernel decapsulation was asked for and is not available, when the TUN device
/// name is taken, or when the host cannot be read.
pub(crate) fn plan(host: &dyn Host, opts: &SetupOpts) -> anyhow::Result<Plan> {
    let any_v4 = opts.vips.iter().any(IpAddr::is_ipv4);
    let any_v6 = opts.vips.iter().any(IpAddr::is_ipv6);
    let mut changes = Vec::new();
    let mut kept = Vec::new();

    let (decap, decap_note) = match (opts.tunnel, opts.decap) {
        (Tunnel::None, _) => (DecapMode::None, None),
        (Tunnel::Gue { .. }, DecapChoice::Kernel) => {
            bail!("GUE is decapsulated in userspace only (--decap kernel is for --tunnel ipip)")
        }
        (Tunnel::Gue { .. }, _) => (DecapMode::Userspace, None),
        (Tunnel::Ipip, DecapChoice::Userspace) => (DecapMode::Userspace, None),
        (Tunnel::Ipip, DecapChoice::Kernel) => {
            if any_v6 {
                bail!("kernel decapsulation (tunl0) carries IPv4 VIPs only; use --decap userspace");
            }
            if !host.kernel_ipip_available() {
                bail!(
                    "kernel decapsulation needs the ipip module, which this kernel does not have; \
                     use --decap userspace (or auto)"
                );
            }
            (DecapMode::Kernel, None)
        }
        (Tunnel::Ipip, DecapChoice::Auto) => {
            if any_v6 {
                (
                    DecapMode::Userspace,
                    Some("IPv6 VIPs: tunl0 carries IPv4 only".to_owned()),
                )
            } else if host.kernel_ipip_available() {
                (
                    DecapMode::Kernel,
                    Some("the kernel's ipip module is available".to_owned()),
                )
            } else {
                (
                    DecapMode::Userspace,
                    Some("no ipip kernel module".to_owned()),
                )
            }
        }
    };

    // The device decapsulated packets arrive on, if any, and whether it exists yet.
    let tunnel_dev = match decap {
        DecapMode::None => None,
        DecapMode::Userspace => {
            if host.link_up(&opts.tun_name)?.is_some() {
                bail!(
                    "interface {} already exists (left by an earlier run? remove it with \
                     `ip link del {}`, or pick another name with --tun-name)",
                    opts.tun_name,
                    opts.tun_name
                );
            }
            changes.push(Change::TunDevice {
                name: opts.tun_name.clone(),
            });
            Some((opts.tun_name.clone(), false))
        }
        DecapMode::Kernel => match host.link_up(TUNL0)? {
            Some(true) => {
                kept.push(Kept::LinkUp { name: TUNL0.into() });
                Some((TUNL0.to_owned(), true))
            }
            Some(false) => {
                changes.push(Change::LinkUp { name: TUNL0.into() });
                Some((TUNL0.to_owned(), true))
            }
            None => {
                changes.push(Change::IpipDevice { name: TUNL0.into() });
                changes.push(Change::LinkUp { name: TUNL0.into() });
                Some((TUNL0.to_owned(), false))
            }
        },
    };

    let lo_addrs = host.addrs(LO).context("reading the addresses of lo")?;
    for &vip in &opts.vips {
        let prefix = if vip.is_ipv4() { 32 } else { 128 };
        match lo_addrs.iter().find(|(a, _)| *a == vip) {
            Some(&(_, p)) => kept.push(Kept::Address {
                dev: LO.into(),
                addr: vip,
                prefix: p,
            }),
            None => changes.push(Change::Address {
                dev: LO.into(),
                addr: vip,
                prefix,
            }),
        }
    }

    if any_v4 {
        let mut want = |key: Sysctl, current: String, needs: bool, new: String| {
            if needs {
                changes.push(Change::Sysctl {
                    key: key.0,
                    old: current,
                    new,
                });
            } else {
                kept.push(Kept::Sysctl {
                    key,
                    value: current,
                });
            }
        };
        for dev in ["all", LO] {
            let key = Sysctl::ipv4_conf(dev, "arp_ignore");
            let cur = host.sysctl_read(&key)?;
            let ok = cur == "1" || cur == "2";
            want(key, cur, !ok, "1".into());
        }
        for dev in ["all", LO] {
            let key = Sysctl::ipv4_conf(dev, "arp_announce");
            let cur = host.sysctl_read(&key)?;
            let ok = cur == "2";
            want(key, cur, !ok, "2".into());
        }
        let mut devs: Vec<String> = vec!["all".into()];
        if let Some((dev, _)) = &tunnel_dev {
            devs.push(dev.clone());
        }
        let others = match &opts.ifaces {
            Some(list) => list.clone(),
            None => host.ipv4_conf_devices()?,
        };
        for d in others {
            if d != LO && !devs.contains(&d) {
                devs.push(d);
            }
        }
        for dev in devs {
            // A tunnel device has no IPv4 address, and for such a device the kernel's
            // loose mode rejects every source whose route leaves through another
            // interface (`__fib_validate_source`: no address -> last resort -> drop when
            // rp_filter is set). So with a tunnel, `all` and the tunnel device must be 0
            // (the kernel uses the larger of the two); other interfaces get the option.
            let target = match &tunnel_dev {
                Some((t, _)) if dev == "all" || *t == dev => 0,
                _ => opts.rp_filter,
            };
            let key = Sysctl::ipv4_conf(&dev, "rp_filter");
            // A device this plan creates starts with the `default` value.
            let created = matches!(&tunnel_dev, Some((d, false)) if *d == dev);
            let cur = if created {
                host.sysctl_read(&Sysctl::ipv4_conf("default", "rp_filter"))?
            } else {
                host.sysctl_read(&key)
                    .with_context(|| format!("interface {dev}: no IPv4 configuration"))?
            };
            let needs = rp_filter_needs_change(&cur, target);
            want(key, cur, needs, target.to_string());
        }
    }

    Ok(Plan {
        decap,
        decap_note,
        changes,
        kept,
    })
}

/// The plan as `setup --dry-run` prints it.
pub(crate) fn render(plan: &Plan, opts: &SetupOpts, state_path: &std::path::Path) -> String {
    let mut s = String::new();
    let decap = match plan.decap {
        DecapMode::None => "none (direct routing)".to_owned(),
        DecapMode::Kernel => format!("kernel ({TUNL0}, ipip module)"),
        DecapMode::Userspace => match opts.tunnel {
            Tunnel::Gue { port } => format!(
                "userspace: `rvs-rs decap` reads GUE from UDP port {port} and writes to {}",
                opts.tun_name
            ),
            _ => format!(
                "userspace: `rvs-rs decap` reads IP-in-IP (protocols 4 and 41) from raw \
                 sockets and writes to {}",
                opts.tun_name
            ),
        },
    };
    let vips: Vec<String> = opts.vips.iter().map(ToString::to_string).collect();
    let _ = writeln!(s, "vips     {}", vips.join(" "));
    let _ = writeln!(s, "tunnel   {}", opts.tunnel);
    let _ = write!(s, "decap    {decap}");
    if let Some(n) = &plan.decap_note {
        let _ = write!(s, " [{n}]");
    }
    s.push('\n');
    for c in &plan.changes {
        let _ = writeln!(s, "{c}");
    }
    for k in &plan.kept {
        let _ = match k {
            Kept::Address { dev, addr, prefix } => {
                writeln!(s, "keep     {addr}/{prefix} already on {dev}")
            }
            Kept::Sysctl { key, value } => writeln!(s, "keep     {key} = {value}"),
            Kept::LinkUp { name } => writeln!(s, "keep     {name} already up"),
        };
    }
    let _ = writeln!(s, "state    record the changes in {}", state_path.display());
    if plan.changes.is_empty() {
        s.push_str("(nothing to change)\n");
    }
    s
}

/// A fresh state for `opts` and `plan`, with no change applied yet.
pub(crate) fn new_state(opts: &SetupOpts, plan: &Plan) -> State {
    State {
        version: VERSION,
        vips: opts.vips.clone(),
        tunnel: opts.tunnel,
        decap: plan.decap,
        tun_name: opts.tun_name.clone(),
        decap_pid: None,
        changes: Vec::new(),
    }
}

/// Apply `plan` (computed by [`plan`] for `opts`) and return the plan actually applied
/// with its state. With `--decap auto`, when the kernel's ipip module looked available but
/// cannot be loaded (`EOPNOTSUPP` creating `tunl0`, e.g. in a container), everything is
/// rolled back and planned again with userspace decapsulation.
///
/// # Errors
///
/// As [`apply`] (the state then holds what could not be rolled back).
pub(crate) fn setup(
    host: &mut dyn Host,
    opts: &SetupOpts,
    plan: Plan,
    save: &mut dyn FnMut(&State) -> anyhow::Result<()>,
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<(Plan, State)> {
    const EOPNOTSUPP: i32 = 95;
    let mut st = new_state(opts, &plan);
    match apply(host, &plan, &mut st, save, log) {
        Ok(()) => Ok((plan, st)),
        Err(e)
            if plan.decap == DecapMode::Kernel
                && opts.decap == DecapChoice::Auto
                && st.changes.is_empty()
                && e.downcast_ref::<io::Error>().and_then(errno) == Some(EOPNOTSUPP) =>
        {
            log(&format!(
                "decap    the ipip module cannot be loaded ({e:#}); using userspace decapsulation"
            ));
            let fallback = SetupOpts {
                decap: DecapChoice::Userspace,
                ..opts.clone()
            };
            let plan = self::plan(host, &fallback)?;
            let mut st = new_state(&fallback, &plan);
            apply(host, &plan, &mut st, save, log)?;
            Ok((plan, st))
        }
        Err(e) => Err(e),
    }
}

/// Make one change. Returns what to record: `None` when there was nothing to do after
/// all (a sysctl found at its new value), or the change with the old value read just
/// before writing.
fn apply_one(host: &mut dyn Host, c: &Change) -> io::Result<Option<Change>> {
    match c {
        Change::TunDevice { name } => {
            host.create_tun(name)?;
            if let Err(e) = host.set_up(name, true) {
                let _ = host.delete_link(name);
                return Err(e);
            }
            Ok(Some(c.clone()))
        }
        Change::IpipDevice { name } => match host.create_ipip(name) {
            Ok(()) => Ok(Some(c.clone())),
            // Loading the module created the fallback device first: nothing of ours.
            Err(e) if errno(&e) == Some(17) => Ok(None),
            Err(e) => Err(e),
        },
        Change::LinkUp { name } => {
            if host.link_up(name)? == Some(true) {
                return Ok(None);
            }
            host.set_up(name, true)?;
            Ok(Some(c.clone()))
        }
        Change::Address { dev, addr, prefix } => {
            host.addr_add(dev, *addr, *prefix)?;
            Ok(Some(c.clone()))
        }
        Change::Sysctl { key, new, .. } => {
            let k = Sysctl(key.clone());
            let old = host.sysctl_read(&k)?;
            if old == *new {
                return Ok(None);
            }
            host.sysctl_write(&k, new)?;
            Ok(Some(Change::Sysctl {
                key: key.clone(),
                old,
                new: new.clone(),
            }))
        }
    }
}

/// Apply `plan`, recording each change in `state` and calling `save` after each. When a
/// change fails, what was applied is reverted (and `save` called with the emptied state)
/// before the error is returned. `log` gets one line per change made.
///
/// # Errors
///
/// The first failed change (after the rollback), or a failed `save`.
pub(crate) fn apply(
    host: &mut dyn Host,
    plan: &Plan,
    state: &mut State,
    save: &mut dyn FnMut(&State) -> anyhow::Result<()>,
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<()> {
    save(state)?;
    for c in &plan.changes {
        match apply_one(host, c) {
            Ok(Some(done)) => {
                log(&done.to_string());
                state.changes.push(done);
                if let Err(e) = save(state) {
                    let _ = revert(host, state, log);
                    return Err(e);
                }
            }
            Ok(None) => {}
            Err(e) => {
                let err = anyhow::Error::new(e)
                    .context(format!("setup failed at: {}", c.to_string().trim()));
                let failures = revert(host, state, log);
                save(state)?;
                if !failures.is_empty() {
                    return Err(err.context(format!(
                        "and the rollback left {} change(s) in place: {}",
                        failures.len(),
                        failures.join("; ")
                    )));
                }
                return Err(err);
            }
        }
    }
    Ok(())
}

/// Revert one change; already reverted (an address or device gone) counts as done.
fn revert_one(host: &mut dyn Host, c: &Change) -> io::Result<String> {
    const ENODEV: i32 = 19;
    const EADDRNOTAVAIL: i32 = 99;
    const EOPNOTSUPP: i32 = 95;
    match c {
        Change::TunDevice { name } | Change::IpipDevice { name } => match host.delete_link(name) {
            Ok(()) => Ok(format!("device   deleted {name}")),
            Err(e) if errno(&e) == Some(ENODEV) => Ok(format!("device   {name} already gone")),
            Err(e) if errno(&e) == Some(EOPNOTSUPP) => {
                // The module's fallback device cannot be deleted; leave it down.
                let _ = host.set_up(name, false);
                Ok(format!("device   {name} cannot be deleted, left down"))
            }
            Err(e) => Err(e),
        },
        Change::LinkUp { name } => match host.set_up(name, false) {
            Ok(()) => Ok(format!("device   set {name} down")),
            Err(e) if errno(&e) == Some(ENODEV) => Ok(format!("device   {name} already gone")),
            Err(e) => Err(e),
        },
        Change::Address { dev, addr, prefix } => match host.addr_del(dev, *addr, *prefix) {
            Ok(()) => Ok(format!("address  removed {addr}/{prefix} from {dev}")),
            Err(e) if matches!(errno(&e), Some(ENODEV | EADDRNOTAVAIL)) => {
                Ok(format!("address  {addr}/{prefix} already gone from {dev}"))
            }
            Err(e) => Err(e),
        },
        Change::Sysctl { key, old, new } => {
            let k = Sysctl(key.clone());
            let now = match host.sysctl_read(&k) {
                Ok(v) => v,
                // The interface went away with its configuration: nothing to restore.
                Err(e) if e.kind() == io::ErrorKind::NotFound && k.conf_dev().is_some() => {
                    return Ok(format!("sysctl   {k}: interface gone, nothing to restore"));
                }
                Err(e) => return Err(e),
            };
            host.sysctl_write(&k, old)?;
            if now == *new {
                Ok(format!("sysctl   {k} {now} -> {old} (restored)"))
            } else {
                Ok(format!(
                    "sysctl   {k} {now} -> {old} (restored; it had been changed from {new} since setup)"
                ))
            }
        }
    }
}

/// Revert `state.changes` in reverse order, removing each one reverted from `state`.
/// Returns a description of each change that could not be reverted (they stay in
/// `state`, in order).
pub(crate) fn revert(
    host: &mut dyn Host,
    state: &mut State,
    log: &mut dyn FnMut(&str),
) -> Vec<String> {
    let mut left = Vec::new();
    let mut failures = Vec::new();
    while let Some(c) = state.changes.pop() {
        match revert_one(host, &c) {
            Ok(line) => log(&line),
            Err(e) => {
                failures.push(format!("{}: {e}", c.to_string().trim()));
                left.push(c);
            }
        }
    }
    left.reverse();
    state.changes = left;
    failures
}

/// The changes `undo` would revert, as `undo --dry-run` prints them.
pub(crate) fn render_undo(state: &State) -> String {
    let mut s = String::new();
    for c in state.changes.iter().rev() {
        let _ = match c {
            Change::TunDevice { name } | Change::IpipDevice { name } => {
                writeln!(s, "device   delete {name}")
            }
            Change::LinkUp { name } => writeln!(s, "device   set {name} down"),
            Change::Address { dev, addr, prefix } => {
                writeln!(s, "address  remove {addr}/{prefix} from {dev}")
            }
            Change::Sysctl { key, old, new } => {
                writeln!(s, "sysctl   {} {new} -> {old}", Sysctl(key.clone()))
            }
        };
    }
    if state.changes.is_empty() {
        s.push_str("(nothing to undo)\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::FakeHost;

    fn opts(vips: &[&str], tunnel: Tunnel) -> SetupOpts {
        SetupOpts {
            vips: vips.iter().map(|v| v.parse().expect("ip")).collect(),
            tunnel,
            decap: DecapChoice::Auto,
            ifaces: None,
            rp_filter: 2,
            tun_name: "rvs-tun0".into(),
        }
    }

    fn apply_ok(host: &mut FakeHost, plan: &Plan, o: &SetupOpts) -> State {
        let mut st = new_state(o, plan);
        apply(host, plan, &mut st, &mut |_| Ok(()), &mut |_| {}).expect("apply");
        st
    }

    #[test]
    fn dry_run_plan_for_ipip_without_the_module() {
        let host = FakeHost::typical();
        let o = opts(&["198.18.0.100"], Tunnel::Ipip);
        let p = plan(&host, &o).expect("plan");
        let text = render(&p, &o, std::path::Path::new("/run/rvs-rs/state.json"));
        let want = "\
vips     198.18.0.100
tunnel   ipip
decap    userspace: `rvs-rs decap` reads IP-in-IP (protocols 4 and 41) from raw sockets and writes to rvs-tun0 [no ipip kernel module]
device   create TUN device rvs-tun0 (persistent) and set it up
address  add 198.18.0.100/32 to lo
sysctl   net.ipv4.conf.all.arp_ignore 0 -> 1
sysctl   net.ipv4.conf.lo.arp_ignore 0 -> 1
sysctl   net.ipv4.conf.all.arp_announce 0 -> 2
sysctl   net.ipv4.conf.lo.arp_announce 0 -> 2
sysctl   net.ipv4.conf.all.rp_filter 1 -> 0
sysctl   net.ipv4.conf.rvs-tun0.rp_filter 1 -> 0
sysctl   net.ipv4.conf.eth0.rp_filter 1 -> 2
state    record the changes in /run/rvs-rs/state.json
";
        assert_eq!(text, want);
        // Planning changed nothing.
        assert_eq!(host.sysctls, FakeHost::typical().sysctls);
    }

    #[test]
    fn kept_values_are_shown_and_not_rewritten() {
        let mut host = FakeHost::typical();
        host.sysctls
            .insert("net/ipv4/conf/all/arp_ignore".into(), "2".into());
        host.sysctls
            .insert("net/ipv4/conf/eth0/rp_filter".into(), "0".into());
        host.addrs
            .get_mut("lo")
            .expect("lo")
            .push(("198.18.0.100".parse().expect("ip"), 32));
        let mut o = opts(&["198.18.0.100", "2001:db8::100"], Tunnel::None);
        o.rp_filter = 0;
        let p = plan(&host, &o).expect("plan");
        let text = render(&p, &o, std::path::Path::new("s.json"));
        assert!(text.contains("decap    none (direct routing)\n"), "{text}");
        assert!(
            text.contains("address  add 2001:db8::100/128 to lo\n"),
            "{text}"
        );
        assert!(
            text.contains("keep     198.18.0.100/32 already on lo\n"),
            "{text}"
        );
        assert!(
            text.contains("keep     net.ipv4.conf.all.arp_ignore = 2\n"),
            "{text}"
        );
        assert!(
            text.contains("keep     net.ipv4.conf.eth0.rp_filter = 0\n"),
            "{text}"
        );
        assert!(
            text.contains("sysctl   net.ipv4.conf.all.rp_filter 1 -> 0\n"),
            "{text}"
        );
        assert!(!text.contains("rvs-tun0"), "{text}");
    }

    #[test]
    fn ipv6_only_changes_no_ipv4_sysctl() {
        let host = FakeHost::typical();
        let o = opts(&["2001:db8::100"], Tunnel::Ipip);
        let p = plan(&host, &o).expect("plan");
        assert_eq!(p.decap, DecapMode::Userspace);
        assert!(
            p.changes
                .iter()
                .all(|c| !matches!(c, Change::Sysctl { .. })),
            "{:?}",
            p.changes
        );
    }

    #[test]
    fn rp_filter_is_never_tightened() {
        assert!(rp_filter_needs_change("1", 2));
        assert!(rp_filter_needs_change("1", 0));
        assert!(rp_filter_needs_change("2", 0));
        assert!(!rp_filter_needs_change("2", 2));
        assert!(!rp_filter_needs_change("0", 2));
        assert!(!rp_filter_needs_change("0", 0));
    }

    #[test]
    fn kernel_decap_uses_tunl0_when_the_module_exists() {
        let mut host = FakeHost::typical();
        host.ipip = true;
        let o = opts(&["198.18.0.100"], Tunnel::Ipip);
        let p = plan(&host, &o).expect("plan");
        assert_eq!(p.decap, DecapMode::Kernel);
        assert_eq!(
            p.changes[..2],
            [
                Change::IpipDevice {
                    name: "tunl0".into()
                },
                Change::LinkUp {
                    name: "tunl0".into()
                }
            ]
        );
        let before = host.clone();
        let mut st = apply_ok(&mut host, &p, &o);
        assert_eq!(host.links.get("tunl0"), Some(&true));
        assert_eq!(host.sysctls["net/ipv4/conf/tunl0/rp_filter"], "0");
        assert_eq!(host.sysctls["net/ipv4/conf/all/rp_filter"], "0");
        assert_eq!(host.sysctls["net/ipv4/conf/eth0/rp_filter"], "2");
        assert!(revert(&mut host, &mut st, &mut |_| {}).is_empty());
        assert_eq!(host.sysctls, before.sysctls);
        assert_eq!(host.links, before.links);
        assert_eq!(host.addrs, before.addrs);
    }

    #[test]
    fn explicit_choices_that_cannot_work_are_errors() {
        let host = FakeHost::typical();
        let mut o = opts(&["198.18.0.100"], Tunnel::Ipip);
        o.decap = DecapChoice::Kernel;
        let e = plan(&host, &o).expect_err("no module");
        assert!(e.to_string().contains("ipip module"), "{e}");
        let mut o = opts(&["198.18.0.100"], Tunnel::Gue { port: 6080 });
        o.decap = DecapChoice::Kernel;
        assert!(plan(&host, &o).is_err());
        let mut host = FakeHost::typical();
        host.links.insert("rvs-tun0".into(), false);
        let e = plan(&host, &opts(&["198.18.0.100"], Tunnel::Ipip)).expect_err("taken");
        assert!(e.to_string().contains("already exists"), "{e}");
        let mut o = opts(&["198.18.0.100"], Tunnel::None);
        o.ifaces = Some(vec!["nonexistent0".into()]);
        let e = plan(&FakeHost::typical(), &o).expect_err("no such iface");
        assert!(format!("{e:#}").contains("nonexistent0"), "{e:#}");
    }

    #[test]
    fn setup_then_undo_restores_everything() {
        let mut host = FakeHost::typical();
        host.sysctls
            .insert("net/ipv4/conf/lo/arp_announce".into(), "1".into());
        let before = host.clone();
        let o = opts(
            &["198.18.0.100", "2001:db8::100"],
            Tunnel::Gue { port: 6080 },
        );
        let p = plan(&host, &o).expect("plan");
        let mut saved = Vec::new();
        let mut st = new_state(&o, &p);
        apply(
            &mut host,
            &p,
            &mut st,
            &mut |s| {
                saved.push(s.changes.len());
                Ok(())
            },
            &mut |_| {},
        )
        .expect("apply");
        // Saved before the first change and after each one.
        assert_eq!(saved, (0..=st.changes.len()).collect::<Vec<_>>());
        assert_eq!(host.links.get("rvs-tun0"), Some(&true));
        assert_eq!(host.sysctls["net/ipv4/conf/all/arp_ignore"], "1");
        assert_eq!(host.sysctls["net/ipv4/conf/lo/arp_announce"], "2");
        assert_eq!(host.sysctls["net/ipv4/conf/rvs-tun0/rp_filter"], "0");
        assert!(st.changes.contains(&Change::Sysctl {
            key: "net/ipv4/conf/lo/arp_announce".into(),
            old: "1".into(),
            new: "2".into()
        }));
        let undo_text = render_undo(&st);
        assert!(
            undo_text.starts_with("sysctl   net.ipv4.conf.eth0.rp_filter 2 -> 1\n"),
            "{undo_text}"
        );
        assert!(
            undo_text.ends_with("device   delete rvs-tun0\n"),
            "{undo_text}"
        );

        // Someone changes a value afterwards: undo still restores the original.
        host.sysctls
            .insert("net/ipv4/conf/all/arp_ignore".into(), "2".into());
        let mut lines = Vec::new();
        let failures = revert(&mut host, &mut st, &mut |l| lines.push(l.to_owned()));
        assert!(failures.is_empty(), "{failures:?}");
        assert!(st.changes.is_empty());
        assert!(
            lines.iter().any(|l| l.contains("had been changed from 1")),
            "{lines:?}"
        );
        assert_eq!(host.sysctls, before.sysctls);
        assert_eq!(host.links, before.links);
        assert_eq!(host.addrs, before.addrs);
        assert_eq!(render_undo(&st), "(nothing to undo)\n");
    }

    #[test]
    fn a_failed_change_rolls_back_what_was_done() {
        let mut host = FakeHost::typical();
        let before = host.clone();
        host.fail_on = Some("sysctl net.ipv4.conf.all.arp_announce".into());
        let o = opts(&["198.18.0.100"], Tunnel::Ipip);
        let p = plan(&host, &o).expect("plan");
        let mut st = new_state(&o, &p);
        let e = apply(&mut host, &p, &mut st, &mut |_| Ok(()), &mut |_| {})
            .expect_err("fails half-way");
        assert!(format!("{e:#}").contains("arp_announce"), "{e:#}");
        assert!(st.changes.is_empty(), "{:?}", st.changes);
        host.fail_on = None;
        assert_eq!(host.sysctls, before.sysctls);
        assert_eq!(host.links, before.links);
        assert_eq!(host.addrs, before.addrs);
    }

    #[test]
    fn auto_falls_back_to_userspace_when_the_module_cannot_load() {
        let mut host = FakeHost::typical();
        host.ipip = true;
        host.fail_on = Some("create ipip".into());
        host.fail_errno = 95;
        let o = opts(&["198.18.0.100"], Tunnel::Ipip);
        let p = plan(&host, &o).expect("plan");
        assert_eq!(p.decap, DecapMode::Kernel);
        let mut lines = Vec::new();
        let (p, st) = setup(&mut host, &o, p, &mut |_| Ok(()), &mut |l| {
            lines.push(l.to_owned())
        })
        .expect("falls back");
        assert_eq!(p.decap, DecapMode::Userspace);
        assert_eq!(st.decap, DecapMode::Userspace);
        assert_eq!(host.links.get("rvs-tun0"), Some(&true));
        assert!(!host.links.contains_key("tunl0"));
        assert!(
            lines.iter().any(|l| l.contains("using userspace")),
            "{lines:?}"
        );
        // An explicit --decap kernel does not fall back.
        let mut host = FakeHost::typical();
        host.ipip = true;
        host.fail_on = Some("create ipip".into());
        host.fail_errno = 95;
        let mut o = opts(&["198.18.0.100"], Tunnel::Ipip);
        o.decap = DecapChoice::Kernel;
        let p = plan(&host, &o).expect("plan");
        assert!(setup(&mut host, &o, p, &mut |_| Ok(()), &mut |_| {}).is_err());
    }

    #[test]
    fn undo_keeps_what_it_could_not_revert() {
        let mut host = FakeHost::typical();
        let o = opts(&["198.18.0.100"], Tunnel::None);
        let p = plan(&host, &o).expect("plan");
        let mut st = apply_ok(&mut host, &p, &o);
        let n = st.changes.len();
        host.fail_on = Some("addr del".into());
        let failures = revert(&mut host, &mut st, &mut |_| {});
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert_eq!(st.changes.len(), 1);
        assert!(matches!(st.changes[0], Change::Address { .. }));
        assert!(n > 1);
        // Already-gone things count as reverted.
        host.fail_on = None;
        host.addrs.get_mut("lo").expect("lo").clear();
        assert!(revert(&mut host, &mut st, &mut |_| {}).is_empty());
    }
}
