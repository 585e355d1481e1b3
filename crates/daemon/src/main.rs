//! `rvsd`: the rvs director daemon.
//!
//! Started with no arguments in a network namespace it serves that namespace in the
//! foreground: it listens on the abstract unix socket `@rvsd` (abstract sockets are per
//! network namespace, so `ip netns exec NS rvsadm` reaches the rvsd of NS), restores the
//! configuration saved for this namespace and logs to stderr.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

mod convert;
mod csum;
mod dataplane;
mod engine;
mod fastpath;
mod health;
mod metrics;
mod server;

/// rvs director daemon (Linux Virtual Server in userspace).
#[derive(Debug, Parser)]
#[command(name = "rvsd", version, about, long_about = None)]
struct Args {
    /// Control socket: a path, or `@name` for an abstract socket of this network
    /// namespace. Default `@rvsd` (or the RVS_SOCKET environment variable).
    #[arg(long, value_name = "PATH|@NAME")]
    socket: Option<String>,
    /// Where the configuration is kept across restarts. Default
    /// `/var/lib/rvs/netns-<inode>.json` for the current network namespace.
    #[arg(long, value_name = "FILE")]
    state_file: Option<PathBuf>,
    /// Do not save or restore the configuration.
    #[arg(long, conflicts_with = "state_file")]
    no_state: bool,
    /// Maximum tracked connections (connections + persistence templates).
    #[arg(long, default_value_t = 1 << 20, value_name = "N")]
    max_connections: usize,
    /// keepalived configuration (virtual_server blocks with their health checkers). SIGHUP
    /// reloads it; a bad file refuses to start, a bad reload keeps the running configuration.
    #[arg(short = 'f', long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Forward traffic on this interface (repeat for several). Without it rvsd only keeps
    /// the service table (control plane only).
    #[arg(short = 'i', long = "interface", value_name = "IFNAME")]
    interfaces: Vec<String>,
    /// Packet I/O backend for the served interfaces.
    #[arg(long, value_enum, default_value_t = dataplane::Backend::Auto)]
    backend: dataplane::Backend,
    /// Flows per interface in the kernel fast path: established TCP and UDP flows of DR,
    /// NAT and IPIP tunnels are forwarded by rvs's XDP program from a table filled after
    /// scheduling; 0 turns the fast path off (every packet through user space).
    #[arg(long, default_value_t = 131_072, value_name = "N")]
    fastpath_flows: u32,
    /// Offer a connection to the kernel fast path only after this many packets from its
    /// client (default 1). Higher values keep short connections, which gain little from
    /// it, out of the flow tables and save their install/remove updates.
    #[arg(long, default_value_t = 1, value_name = "PACKETS")]
    fastpath_after: u32,
    /// Where rvs's XDP program runs on the served interfaces (AF_XDP steering and the
    /// kernel fast path): `native` in the driver, `generic` after the kernel built its
    /// socket buffer (any device; costlier), `auto` native where the driver has it.
    #[arg(long, value_enum, default_value_t = dataplane::XdpModeArg::Auto)]
    xdp_mode: dataplane::XdpModeArg,
    /// Where the kernel fast path runs with the AF_PACKET backend: `xdp` in rvs's XDP
    /// program (see --xdp-mode); `tc` at the TC ingress hook (tcx, Linux 6.6+) on the
    /// kernel's socket buffers, which skips the copy XDP costs on devices that hand the
    /// stack socket buffers (veth, drivers without native XDP) and can redirect to any
    /// device, bridges included (falls back to xdp without tcx). `auto`: xdp, which
    /// measured faster under load in the bench lab. AF_XDP always uses its XDP program.
    #[arg(long, value_enum, default_value_t = dataplane::FastHook::Auto)]
    fastpath_hook: dataplane::FastHook,
    /// Source address of tunnel (TUN) packets; default: the kernel's preferred source
    /// toward each real server (repeat for IPv4 and IPv6).
    #[arg(long, value_name = "ADDR")]
    tunnel_src: Vec<std::net::IpAddr>,
    /// IPVS sysctl equivalents, `NAME=VALUE` (repeatable): expire_nodest_conn,
    /// expire_quiescent_template, conn_reuse_mode, sloppy_tcp, sloppy_sctp, secure_tcp,
    /// pmtu_disc, nat_icmp_send (see /proc/sys/net/ipv4/vs/ in the kernel's documentation).
    #[arg(long = "sysctl", value_name = "NAME=VALUE", value_parser = parse_sysctl)]
    sysctls: Vec<(String, u8)>,
    /// Serve Prometheus metrics on this address (off by default; use a loopback address,
    /// e.g. 127.0.0.1:9105). node_exporter's `node_ipvs_*` names plus `rvs_*` series.
    #[arg(long, value_name = "ADDR:PORT")]
    metrics: Option<std::net::SocketAddr>,
    /// More logging (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    init_tracing(args.verbose);
    match run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rvsd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

const SYSCTLS: [&str; 8] = [
    "expire_nodest_conn",
    "expire_quiescent_template",
    "conn_reuse_mode",
    "sloppy_tcp",
    "sloppy_sctp",
    "secure_tcp",
    "pmtu_disc",
    "nat_icmp_send",
];

fn parse_sysctl(s: &str) -> Result<(String, u8), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, got {s:?}"))?;
    if !SYSCTLS.contains(&name) {
        return Err(format!(
            "unknown sysctl {name:?} (known: {})",
            SYSCTLS.join(", ")
        ));
    }
    let v: u8 = value
        .parse()
        .map_err(|_| format!("{name}: value must be a small integer, got {value:?}"))?;
    let max = if name == "conn_reuse_mode" { 3 } else { 1 };
    if v > max {
        return Err(format!("{name}: value must be 0..={max}, got {v}"));
    }
    Ok((name.to_owned(), v))
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn bind(spec: &rvs_api::SocketSpec) -> anyhow::Result<std::os::unix::net::UnixListener> {
    let addr = spec
        .to_addr()
        .with_context(|| format!("socket address {spec:?}"))?;
    if let rvs_api::SocketSpec::Path(p) = spec {
        // a stale socket file from a previous run would make bind fail
        if std::os::unix::net::UnixStream::connect(p).is_err() {
            let _ = std::fs::remove_file(p);
        }
    }
    std::os::unix::net::UnixListener::bind_addr(&addr).with_context(|| {
        format!("cannot listen on {spec:?} (is another rvsd running in this network namespace?)")
    })
}

fn run(args: Args) -> anyhow::Result<()> {
    let spec = match &args.socket {
        Some(s) => rvs_api::SocketSpec::parse(s),
        None => rvs_api::SocketSpec::from_env(),
    };
    let state_path = if args.no_state {
        None
    } else {
        Some(match args.state_file {
            Some(p) => p,
            None => {
                let id = rvs_io::creds::netns_id().context("reading the network namespace id")?;
                PathBuf::from(format!("/var/lib/rvs/netns-{id}.json"))
            }
        })
    };
    // before any thread starts, so every thread inherits the blocked mask
    let signals = rvs_io::signal::SignalFd::with_reload(args.config.is_some())
        .context("setting up signal handling")?;
    let listener = bind(&spec)?;
    let seed = {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(std::process::id().into());
        h.finish()
    };
    let mut cfg = rvs_core::Config {
        capacity: args.max_connections,
        hash_seed: seed,
        ..rvs_core::Config::default()
    };
    for a in &args.tunnel_src {
        match a {
            std::net::IpAddr::V4(v4) => cfg.tunnel_src_v4 = Some(*v4),
            std::net::IpAddr::V6(v6) => cfg.tunnel_src_v6 = Some(*v6),
        }
    }
    let fixed_src = (cfg.tunnel_src_v4.is_some(), cfg.tunnel_src_v6.is_some());
    cfg.offload_after = args.fastpath_after.max(1);
    for (name, v) in &args.sysctls {
        let on = *v != 0;
        match name.as_str() {
            "expire_nodest_conn" => cfg.expire_nodest_conn = on,
            "expire_quiescent_template" => cfg.expire_quiescent_template = on,
            "conn_reuse_mode" => cfg.conn_reuse_mode = *v,
            "sloppy_tcp" => cfg.sloppy_tcp = on,
            "sloppy_sctp" => cfg.sloppy_sctp = on,
            "secure_tcp" => cfg.secure_tcp = on,
            "pmtu_disc" => cfg.pmtu_disc = on,
            "nat_icmp_send" => cfg.nat_icmp_send = on,
            _ => unreachable!("checked by parse_sysctl"),
        }
    }
    let mut engine = engine::Engine::new(cfg, state_path.clone());
    let restored = engine.load()?;
    let health = match &args.config {
        Some(path) => Some(health::Health::start(path.clone(), &mut engine)?),
        None => None,
    };
    tracing::info!(
        socket = ?spec,
        state = ?state_path,
        services = restored,
        "rvsd ready"
    );
    let (tx, rx) = mpsc::channel::<server::Job>();
    if let Some(addr) = args.metrics {
        if !addr.ip().is_loopback() {
            tracing::warn!(%addr, "metrics served on a non-loopback address");
        }
        let listener = std::net::TcpListener::bind(addr)
            .with_context(|| format!("binding the metrics endpoint {addr}"))?;
        let jobs = tx.clone();
        std::thread::Builder::new()
            .name("rvsd-metrics".into())
            .spawn(move || metrics::serve(listener, jobs))
            .context("starting the metrics thread")?;
        tracing::info!(%addr, "metrics endpoint");
    }
    std::thread::Builder::new()
        .name("rvsd-control".into())
        .spawn(move || server::serve(listener, tx))
        .context("starting the control thread")?;
    if args.interfaces.is_empty() {
        control_only_loop(&mut engine, &rx, &signals, health.as_ref())
    } else {
        let mut dp = dataplane::DataPlane::open(
            &args.interfaces,
            args.backend,
            fixed_src,
            args.fastpath_flows,
            args.xdp_mode.into(),
            args.fastpath_hook,
        )?;
        dp.sync(&mut engine.lb)?;
        tracing::info!(interfaces = ?args.interfaces, "forwarding");
        forwarding_loop(&mut engine, &rx, &mut dp, &signals, health.as_ref())?;
        let c = dp.counters;
        tracing::info!(
            rx = c.rx,
            tx = c.tx,
            truncated = c.truncated,
            no_route = c.no_route,
            not_served = c.not_served,
            no_neighbour = c.no_neighbour + c.pending_expired,
            tx_errors = c.tx_errors,
            "data plane stopped"
        );
        // dropping `dp` removes the nftables table
        Ok(())
    }
}

/// Do one piece of engine work.
/// Host-side rules (nftables, XDP steering) follow a change before its answer leaves, so
/// that a finished `rvsadm -a` is in force on the wire.
fn run_job(
    engine: &mut engine::Engine,
    job: server::Job,
    mut dp: Option<&mut dataplane::DataPlane>,
    health: Option<&health::Health>,
) {
    match job {
        server::Job::Api {
            req,
            may_admin,
            reply,
        } => {
            let mutation = req.is_mutation();
            let resp = engine.handle(req, may_admin);
            if mutation
                && let Some(dp) = dp.as_deref_mut()
                && let Err(e) = dp.sync(&mut engine.lb)
            {
                tracing::error!(error = %format!("{e:#}"), "cannot apply host-side rules");
            }
            let _ = reply.send(resp);
        }
        server::Job::Metrics { reply } => {
            let now = engine.clock.now();
            let mut text = metrics::render(
                &engine.lb,
                now,
                dp.as_deref().map(|d| (d.counters, d.backend_name())),
            );
            if let Some(h) = health {
                text.push_str(&h.metrics());
            }
            let _ = reply.send(text);
        }
    }
}

/// Handle pending signals: true when rvsd must stop; SIGHUP reloads the configuration.
fn stop_requested(signals: &rvs_io::signal::SignalFd, health: Option<&health::Health>) -> bool {
    match signals.take() {
        Ok(Some(sig)) if rvs_io::signal::is_reload(sig) => {
            if let Some(h) = health {
                h.reload();
            }
            false
        }
        Ok(Some(sig)) => {
            tracing::info!(signal = sig, "shutting down");
            true
        }
        Ok(None) => false,
        Err(e) => {
            tracing::warn!(error = %e, "reading signals failed");
            false
        }
    }
}

/// No interfaces: control requests between timer runs.
fn control_only_loop(
    engine: &mut engine::Engine,
    rx: &mpsc::Receiver<server::Job>,
    signals: &rvs_io::signal::SignalFd,
    health: Option<&health::Health>,
) -> anyhow::Result<()> {
    loop {
        if stop_requested(signals, health) {
            return Ok(());
        }
        if let Some(h) = health {
            h.apply_actions(engine);
        }
        let now = engine.clock.now();
        let wait = engine
            .lb
            .poll_timeout()
            .map(|t| Duration::from_millis(t.millis().saturating_sub(now.millis()).clamp(1, 200)))
            .unwrap_or(Duration::from_millis(200));
        match rx.recv_timeout(wait) {
            Ok(job) => {
                run_job(engine, job, None, health);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => anyhow::bail!("control thread stopped"),
        }
        let now = engine.clock.now();
        engine.lb.handle_timeout(now);
    }
}

/// Run to completion: control requests, then a batch from every ready socket, then timers.
/// Busy-polls while traffic flows and backs off to a short blocking wait when idle.
fn forwarding_loop(
    engine: &mut engine::Engine,
    rx: &mpsc::Receiver<server::Job>,
    dp: &mut dataplane::DataPlane,
    signals: &rvs_io::signal::SignalFd,
    health: Option<&health::Health>,
) -> anyhow::Result<()> {
    let mut idle_rounds: u32 = 0;
    let mut next_timer = engine.clock.now();
    let mut next_harvest = engine.clock.now();
    let mut rounds: u32 = 0;
    loop {
        rounds = rounds.wrapping_add(1);
        // a signal check is a syscall: every round when idle, every 1024 when busy
        if (idle_rounds > 0 || rounds.is_multiple_of(1024)) && stop_requested(signals, health) {
            return Ok(());
        }
        loop {
            match rx.try_recv() {
                Ok(job) => run_job(engine, job, Some(&mut *dp), health),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => anyhow::bail!("control thread stopped"),
            }
        }
        let changed = health.is_some_and(|h| h.apply_actions(engine));
        if changed && let Err(e) = dp.sync(&mut engine.lb) {
            tracing::error!(error = %format!("{e:#}"), "cannot apply host-side rules");
        }
        // spin while busy, then wait in poll(2) for up to 2 ms (pending neighbours: 1 ms)
        let timeout = if idle_rounds < 64 {
            Duration::ZERO
        } else if dp.has_pending() {
            Duration::from_millis(1)
        } else {
            Duration::from_millis(2)
        };
        let now = engine.clock.now();
        let round = std::time::Instant::now();
        let polled = dp.poll(&mut engine.lb, now, timeout);
        let spent = round.elapsed().as_nanos() as u64;
        match polled {
            Ok(0) => {
                idle_rounds = idle_rounds.saturating_add(1);
                dp.counters.idle_ns += spent;
            }
            Ok(_) => {
                idle_rounds = 0;
                dp.counters.busy_ns += spent;
            }
            Err(e) => {
                tracing::error!(error = %e, "packet I/O failed");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let now = engine.clock.now();
        if now >= next_harvest {
            // before the timers: a connection the fast path kept busy must not expire
            dp.harvest(&mut engine.lb, now);
            next_harvest = now + rvs_core::time::Duration::from_secs(1);
        }
        if now >= next_timer {
            engine.lb.handle_timeout(now);
            next_timer = engine
                .lb
                .poll_timeout()
                .unwrap_or(now + rvs_core::time::Duration::from_secs(1))
                .min(now + rvs_core::time::Duration::from_millis(500));
        }
    }
}
