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
mod engine;
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
    let listener = bind(&spec)?;
    let seed = {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(std::process::id().into());
        h.finish()
    };
    let cfg = rvs_core::Config {
        capacity: args.max_connections,
        hash_seed: seed,
        ..rvs_core::Config::default()
    };
    let mut engine = engine::Engine::new(cfg, state_path.clone());
    let restored = engine.load()?;
    tracing::info!(
        socket = ?spec,
        state = ?state_path,
        services = restored,
        "rvsd ready"
    );
    let (tx, rx) = mpsc::channel::<server::Job>();
    std::thread::Builder::new()
        .name("rvsd-control".into())
        .spawn(move || server::serve(listener, tx))
        .context("starting the control thread")?;
    // The engine loop: control requests between timer runs.
    loop {
        let now = engine.clock.now();
        let wait = engine
            .lb
            .poll_timeout()
            .map(|t| Duration::from_millis(t.millis().saturating_sub(now.millis()).clamp(1, 1000)))
            .unwrap_or(Duration::from_secs(1));
        match rx.recv_timeout(wait) {
            Ok(job) => {
                let resp = engine.handle(job.req, job.may_admin);
                let _ = job.reply.send(resp);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => anyhow::bail!("control thread stopped"),
        }
        let now = engine.clock.now();
        engine.lb.handle_timeout(now);
    }
}
