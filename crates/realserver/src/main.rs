//! `rvs-rs`: the real-server side of rvs (and of kernel IPVS) for direct routing (DR) and
//! IP tunnelling (TUN), in one command.
//!
//! `rvs-rs setup` does what the LVS documentation has an administrator do by hand on each
//! real server: put the VIPs on `lo`, keep the server from answering ARP for them, relax
//! reverse-path filtering, and for TUN make the host decapsulate the director's tunnel
//! packets. Every change is recorded with its old value in a state file, and
//! `rvs-rs undo` puts everything back. Where the kernel has no `ipip` module,
//! `rvs-rs decap` decapsulates IP-in-IP and GUE in userspace into a TUN device.
//!
//! Layout: [`decap`] checks tunnel packets (pure), [`serve`] is the decapsulator loop,
//! [`plan`] computes, applies and reverts the host changes through the [`host::Host`]
//! trait, [`state`] is the state file. Every syscall is in `rvs-io`.

#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

mod decap;
mod host;
mod plan;
mod serve;
mod state;

use host::{Host, Linux};
use plan::{DecapChoice, SetupOpts};
use state::{DecapMode, State, Tunnel};

const LONG_ABOUT: &str = "\
Real-server helper for rvs / Linux Virtual Server direct routing (DR) and tunnelling (TUN).

`rvs-rs setup` configures this host as a real server in one step:
  * each --vip goes on `lo` (/32 or /128);
  * net.ipv4.conf.{all,lo}.arp_ignore=1 and arp_announce=2 (IPv4 VIPs), so only the
    director answers ARP for the VIP;
  * rp_filter relaxed, never tightened: to --rp-filter (default 2, loose) on the
    interfaces (--iface, default: all) and on `all`; with a tunnel, `all` and the tunnel
    device go to 0, because the kernel's loose mode drops packets arriving on a device
    without an IPv4 address, as tunl0 and rvs-tun0 are;
  * with --tunnel ipip or gue, decapsulation: the kernel's tunl0 when the ipip module
    exists, else `rvs-rs decap`, a userspace decapsulator writing to a TUN device.
Each change is recorded with its old value in the state file; `rvs-rs undo` restores
everything exactly. Values that are already right are left alone and not recorded.

Exit status: 0 success, 1 failure, 2 usage error.";

/// Command line.
#[derive(Debug, Parser)]
#[command(name = "rvs-rs", version, about = "Real-server helper for DR and TUN (VIP on lo, ARP and rp_filter sysctls, IP-in-IP and GUE decapsulation)", long_about = LONG_ABOUT)]
struct Cli {
    /// State file: what `setup` changed, with the old values, for `undo`.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "RVS_RS_STATE",
        default_value = "/run/rvs-rs/state.json"
    )]
    state: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Configure this host as a real server (see `rvs-rs --help`).
    Setup(SetupArgs),
    /// Revert everything `setup` changed, as recorded in the state file (and stop a
    /// running `rvs-rs decap`).
    Undo {
        /// Print what would be reverted; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Run the userspace decapsulator configured by `setup` until SIGINT or SIGTERM,
    /// then print its counters.
    ///
    /// Receives IP-in-IP (raw sockets, protocols 4 and 41, outer IPv4 and IPv6) or GUE
    /// (UDP on the GUE port), checks the inner packet (version, lengths, IPv4 checksum,
    /// destination one of the VIPs, sane source) and writes it to the TUN device, where
    /// the kernel delivers it to the VIP. Anything else is dropped and counted by reason.
    Decap(DecapArgs),
    /// Print the state file and whether its decapsulator is running.
    Status,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TunnelArg {
    /// Direct routing only.
    None,
    /// IP-in-IP (IPVS `--tun-type ipip`, the default of `ipvsadm -i`).
    Ipip,
    /// Generic UDP Encapsulation (IPVS `--tun-type gue --tun-port P`); needs --gue-port.
    Gue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DecapArg {
    /// The kernel (tunl0) when the ipip module exists and all VIPs are IPv4, else
    /// userspace.
    Auto,
    /// The kernel's ipip module through tunl0; an error when it is missing.
    Kernel,
    /// `rvs-rs decap` and a TUN device.
    Userspace,
}

#[derive(Debug, clap::Args)]
struct DecapArgs {
    /// Print the counters every --stats-interval seconds too.
    #[arg(short, long)]
    verbose: bool,
    /// Seconds between two counter lines with -v.
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=86400))]
    stats_interval: u64,
}

#[derive(Debug, clap::Args)]
struct SetupArgs {
    /// A virtual IP (IPv4 or IPv6) served by this host; repeat for several.
    #[arg(long = "vip", value_name = "ADDR", required = true, value_parser = parse_vip)]
    vips: Vec<IpAddr>,
    /// Tunnel the director uses to reach this host.
    #[arg(long, value_enum, default_value_t = TunnelArg::None)]
    tunnel: TunnelArg,
    /// UDP port of GUE (required with --tunnel gue; IPVS's --tun-port).
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    gue_port: Option<u16>,
    /// Who decapsulates tunnel packets.
    #[arg(long, value_enum, default_value_t = DecapArg::Auto)]
    decap: DecapArg,
    /// Relax rp_filter on this interface (repeat); default: every interface with an
    /// IPv4 configuration. `all` and the tunnel device are always relaxed (to 0 with a
    /// tunnel).
    #[arg(long = "iface", value_name = "IF", value_parser = parse_ifname)]
    ifaces: Vec<String>,
    /// rp_filter value to relax to: 0 (off) or 2 (loose). Never tightens: 0 stays 0.
    #[arg(long, value_name = "0|2", default_value_t = 2, value_parser = parse_rp_filter)]
    rp_filter: u8,
    /// Name of the TUN device for userspace decapsulation.
    #[arg(long, value_name = "IF", default_value = "rvs-tun0", value_parser = parse_ifname)]
    tun_name: String,
    /// Print every change (sysctl old -> new, address, device) and change nothing.
    #[arg(long, conflicts_with = "foreground")]
    dry_run: bool,
    /// After setup, run the userspace decapsulator in the foreground (as `rvs-rs decap`)
    /// until SIGINT or SIGTERM. The configuration stays until `rvs-rs undo`.
    #[arg(long)]
    foreground: bool,
    #[command(flatten)]
    decap_opts: DecapArgs,
}

fn parse_vip(s: &str) -> Result<IpAddr, String> {
    let ip: IpAddr = s
        .parse()
        .map_err(|_| format!("{s:?} is not an IPv4 or IPv6 address"))?;
    let bad = match ip {
        IpAddr::V4(a) => {
            a.is_unspecified() || a.is_loopback() || a.is_multicast() || a.is_broadcast()
        }
        IpAddr::V6(a) => a.is_unspecified() || a.is_loopback() || a.is_multicast(),
    };
    if bad {
        return Err(format!(
            "{ip} cannot be a VIP (unspecified, loopback, multicast or broadcast)"
        ));
    }
    Ok(ip)
}

fn parse_ifname(s: &str) -> Result<String, String> {
    if host::valid_ifname(s) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "{s:?} is not an interface name (1-15 characters, no '/', ':' or spaces)"
        ))
    }
}

fn parse_rp_filter(s: &str) -> Result<u8, String> {
    match s {
        "0" => Ok(0),
        "2" => Ok(2),
        _ => Err("must be 0 (off) or 2 (loose)".into()),
    }
}

/// A usage error found after parsing: printed like clap's own, exit status 2.
fn usage_error(msg: impl std::fmt::Display) -> ! {
    Cli::command()
        .error(clap::error::ErrorKind::ArgumentConflict, msg)
        .exit()
}

/// The setup options, with the checks clap cannot express.
fn setup_opts(a: &SetupArgs) -> SetupOpts {
    let tunnel = match (a.tunnel, a.gue_port) {
        (TunnelArg::Gue, Some(port)) => Tunnel::Gue { port },
        (TunnelArg::Gue, None) => usage_error("--tunnel gue needs --gue-port PORT"),
        (_, Some(_)) => usage_error("--gue-port is only for --tunnel gue"),
        (TunnelArg::Ipip, None) => Tunnel::Ipip,
        (TunnelArg::None, None) => Tunnel::None,
    };
    if a.foreground && tunnel == Tunnel::None {
        usage_error("--foreground runs the decapsulator: it needs --tunnel ipip or gue");
    }
    if a.decap == DecapArg::Kernel && matches!(tunnel, Tunnel::Gue { .. }) {
        usage_error("--decap kernel is for --tunnel ipip; GUE is decapsulated in userspace");
    }
    let mut vips = Vec::new();
    for v in &a.vips {
        if !vips.contains(v) {
            vips.push(*v);
        }
    }
    SetupOpts {
        vips,
        tunnel,
        decap: match a.decap {
            DecapArg::Auto => DecapChoice::Auto,
            DecapArg::Kernel => DecapChoice::Kernel,
            DecapArg::Userspace => DecapChoice::Userspace,
        },
        ifaces: (!a.ifaces.is_empty()).then(|| a.ifaces.clone()),
        rp_filter: a.rp_filter,
        tun_name: a.tun_name.clone(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A closed stdout (`rvs-rs status | head`) is not a failure.
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            warn(&format!("rvs-rs: {e:#}"));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::Setup(a) => setup(&cli.state, &a),
        Cmd::Undo { dry_run } => undo(&cli.state, dry_run),
        Cmd::Decap(a) => {
            let signals =
                rvs_io::signal::SignalFd::termination().context("blocking SIGINT and SIGTERM")?;
            decap_from_state(&cli.state, &a, &signals)
        }
        Cmd::Status => status(&cli.state),
    }
}

/// A line on stdout. Output is best effort: a closed stdout (`| head`) must not abort a
/// setup half-way, as `println!` would by panicking.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// A line on stderr, best effort like [`say`].
fn warn(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn setup(state_path: &Path, a: &SetupArgs) -> anyhow::Result<()> {
    let opts = setup_opts(a);
    // Block the termination signals before changing anything, so that one arriving during
    // setup is handled by the decapsulator loop instead of killing us half-way.
    let signals = if a.foreground {
        Some(rvs_io::signal::SignalFd::termination().context("blocking SIGINT and SIGTERM")?)
    } else {
        None
    };
    if state_path.exists() {
        bail!(
            "already set up: {} exists (run `rvs-rs undo` first, or use another --state)",
            state_path.display()
        );
    }
    let mut host = Linux::new();
    let plan = plan::plan(&host, &opts)?;
    if a.dry_run {
        say("dry run: nothing is changed");
        say(plan::render(&plan, &opts, state_path).trim_end());
        return Ok(());
    }
    let (plan, st) = plan::setup(
        &mut host,
        &opts,
        plan,
        &mut |s| s.save(state_path),
        &mut |l| say(l),
    )
    .inspect_err(|_| {
        // Rolled back completely: no state to keep, so that setup can simply be rerun.
        if State::load(state_path).is_ok_and(|s| s.changes.is_empty()) {
            let _ = std::fs::remove_file(state_path);
        }
    })?;
    if st.changes.is_empty() {
        say("nothing to change");
    }
    say(&format!("state    {}", state_path.display()));
    match (plan.decap, signals) {
        (DecapMode::Userspace, Some(signals)) => {
            decap_from_state(state_path, &a.decap_opts, &signals)
        }
        (DecapMode::Userspace, None) => {
            say(&format!(
                "decap    run `rvs-rs decap` (or `rvs-rs setup --foreground`) to deliver tunnel packets through {}",
                opts.tun_name
            ));
            Ok(())
        }
        (DecapMode::Kernel, Some(_)) => {
            say("decap    the kernel decapsulates (tunl0): nothing to run in the foreground");
            Ok(())
        }
        _ => Ok(()),
    }
}

fn decap_from_state(
    state_path: &Path,
    a: &DecapArgs,
    signals: &rvs_io::signal::SignalFd,
) -> anyhow::Result<()> {
    let mut st = State::load(state_path).context("run `rvs-rs setup --tunnel ipip|gue` first")?;
    if st.decap != DecapMode::Userspace {
        bail!(
            "the state in {} has no userspace decapsulation (tunnel {}, decap by {:?})",
            state_path.display(),
            st.tunnel,
            st.decap
        );
    }
    if let Some(pid) = st
        .decap_pid
        .filter(|&p| p != std::process::id() && is_rvs_rs(p))
    {
        bail!("rvs-rs decap already runs as pid {pid}");
    }
    let cfg = serve::Config {
        vips: st.vips.clone(),
        tunnel: st.tunnel,
        tun_name: st.tun_name.clone(),
        verbose: a.verbose,
        stats_interval: Duration::from_secs(a.stats_interval),
    };
    let me = std::process::id();
    let started = Instant::now();
    let result = serve::run(
        &cfg,
        signals,
        &mut |l| warn(&format!("rvs-rs decap: {l}")),
        &mut |receivers| {
            st.decap_pid = Some(me);
            if let Err(e) = st.save(state_path) {
                warn(&format!("rvs-rs decap: recording the pid: {e:#}"));
            }
            warn(&format!(
                "rvs-rs decap: ready: {} -> {} (pid {me})",
                receivers.join(", "),
                cfg.tun_name
            ));
        },
    );
    // Forget our pid, unless `undo` already removed the state.
    if let Ok(mut now) = State::load(state_path)
        && now.decap_pid == Some(me)
    {
        now.decap_pid = None;
        let _ = now.save(state_path);
    }
    let counters = result?;
    say(&format!(
        "rvs-rs decap: stopped after {} s: {counters}",
        started.elapsed().as_secs()
    ));
    Ok(())
}

/// Whether `pid` is a live process whose command line names rvs-rs (so that a recycled
/// pid is never signalled).
fn is_rvs_rs(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .and_then(|c| {
            c.split(|&b| b == 0)
                .next()
                .map(|argv0| argv0.ends_with(b"rvs-rs"))
        })
        .unwrap_or(false)
}

fn stop_decap(pid: u32) {
    if pid == std::process::id() || !is_rvs_rs(pid) {
        return;
    }
    match rvs_io::signal::terminate(pid) {
        Ok(()) => {
            let deadline = Instant::now() + Duration::from_secs(5);
            while is_rvs_rs(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if is_rvs_rs(pid) {
                warn(&format!(
                    "rvs-rs: decap (pid {pid}) still runs 5 s after SIGTERM"
                ));
            } else {
                say(&format!("decap    stopped pid {pid}"));
            }
        }
        Err(e) => warn(&format!("rvs-rs: stopping decap (pid {pid}): {e}")),
    }
}

fn undo(state_path: &Path, dry_run: bool) -> anyhow::Result<()> {
    let mut st = State::load(state_path).context("nothing to undo")?;
    if dry_run {
        say("dry run: nothing is changed");
        if let Some(pid) = st.decap_pid.filter(|&p| is_rvs_rs(p)) {
            say(&format!("decap    stop pid {pid}"));
        }
        say(plan::render_undo(&st).trim_end());
        return Ok(());
    }
    if let Some(pid) = st.decap_pid {
        stop_decap(pid);
        st.decap_pid = None;
    }
    let mut host = Linux::new();
    let failures = plan::revert(&mut host, &mut st, &mut |l| say(l));
    if failures.is_empty() {
        std::fs::remove_file(state_path)
            .with_context(|| format!("removing the state file {}", state_path.display()))?;
        say(&format!("state    removed {}", state_path.display()));
        Ok(())
    } else {
        st.save(state_path)?;
        bail!(
            "{} change(s) could not be reverted and stay in {}: {}",
            failures.len(),
            state_path.display(),
            failures.join("; ")
        )
    }
}

fn status(state_path: &Path) -> anyhow::Result<()> {
    use std::io::Write;
    let st = match State::load(state_path) {
        Ok(st) => st,
        Err(_) if !state_path.exists() => {
            say(&format!(
                "not set up ({} does not exist)",
                state_path.display()
            ));
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let host = Linux::new();
    let mut out = std::io::stdout().lock();
    let vips: Vec<String> = st.vips.iter().map(ToString::to_string).collect();
    writeln!(out, "vips     {}", vips.join(" "))?;
    writeln!(out, "tunnel   {}", st.tunnel)?;
    let running = st.decap_pid.filter(|&p| is_rvs_rs(p));
    let decap = match (st.decap, running) {
        (DecapMode::None, _) => "none".to_owned(),
        (DecapMode::Kernel, _) => "kernel (tunl0)".to_owned(),
        (DecapMode::Userspace, Some(pid)) => format!("userspace, running as pid {pid}"),
        (DecapMode::Userspace, None) => "userspace, NOT running (start `rvs-rs decap`)".to_owned(),
    };
    writeln!(out, "decap    {decap}")?;
    for c in &st.changes {
        let note = match c {
            state::Change::Sysctl { key, new, .. } => {
                match host.sysctl_read(&host::Sysctl(key.clone())) {
                    Ok(v) if v == *new => String::new(),
                    Ok(v) => format!("   (now {v})"),
                    Err(_) => "   (gone)".into(),
                }
            }
            _ => String::new(),
        };
        writeln!(out, "{c}{note}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn cli_parses_and_rejects() {
        let ok = Cli::try_parse_from([
            "rvs-rs",
            "setup",
            "--vip",
            "198.18.0.100",
            "--vip",
            "2001:db8::100",
            "--tunnel",
            "gue",
            "--gue-port",
            "6080",
            "--dry-run",
        ])
        .expect("valid");
        let Cmd::Setup(a) = ok.cmd else {
            panic!("setup expected")
        };
        assert_eq!(a.vips.len(), 2);
        let o = setup_opts(&a);
        assert_eq!(o.tunnel, Tunnel::Gue { port: 6080 });
        assert_eq!(o.ifaces, None);
        assert_eq!(o.rp_filter, 2);
        for bad in [
            vec!["rvs-rs", "setup"],
            vec!["rvs-rs", "setup", "--vip", "nope"],
            vec!["rvs-rs", "setup", "--vip", "224.0.0.1"],
            vec!["rvs-rs", "setup", "--vip", "127.0.0.1"],
            vec!["rvs-rs", "setup", "--vip", "::"],
            vec!["rvs-rs", "setup", "--vip", "198.18.0.1", "--tunnel", "gre"],
            vec!["rvs-rs", "setup", "--vip", "198.18.0.1", "--gue-port", "0"],
            vec!["rvs-rs", "setup", "--vip", "198.18.0.1", "--rp-filter", "1"],
            vec!["rvs-rs", "setup", "--vip", "198.18.0.1", "--iface", "a/b"],
            vec![
                "rvs-rs",
                "setup",
                "--vip",
                "198.18.0.1",
                "--dry-run",
                "--foreground",
            ],
            vec!["rvs-rs", "decap", "--stats-interval", "0"],
            vec!["rvs-rs", "frobnicate"],
        ] {
            assert!(Cli::try_parse_from(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_rvs_rs_processes_are_signalled() {
        assert!(
            !is_rvs_rs(std::process::id()),
            "the test binary is not rvs-rs"
        );
        assert!(!is_rvs_rs(u32::MAX));
    }
}
