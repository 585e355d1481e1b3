//! keepalived configuration (`--config FILE`) and health checks: the file declares
//! services and real servers with their checkers; the checker thread yields actions that
//! the engine applies like `rvsadm` requests; SIGHUP reloads the file.
//!
//! Precedence: the file is authoritative for the services it declares. At start those are
//! removed from the table restored from the state file and re-created from the file, real
//! servers entering as their checkers (and `alpha`) allow. A reload applies only the
//! difference. Services the file does not declare are left to `rvsadm` and the state file.
//! An `rvsadm` change to a declared service lasts until the file or a health state changes
//! that item.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use rvs_api as api;
use rvs_health::probe::{Outcome, ProbeError, ProbeKind, ProbeSpec, Prober, StdProber};
use rvs_health::{Action, Checker, CheckerOptions, Model};

/// Per-target probe statistics for the metrics endpoint.
#[derive(Clone, Copy, Debug, Default)]
struct ProbeStats {
    last_seconds: f64,
    total: u64,
    failed: u64,
}

type ProbeLog =
    std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<(String, String), ProbeStats>>>;

/// Everything rvs-health probes with the standard library, plus PING_CHECK through a raw
/// ICMP socket from rvs-io; records each probe's duration and result.
struct RvsProber {
    log: ProbeLog,
}

fn target(kind: &ProbeKind) -> String {
    match kind {
        ProbeKind::Tcp { dst } | ProbeKind::Http { dst, .. } => dst.to_string(),
        ProbeKind::Ping { dst } => dst.to_string(),
        ProbeKind::Udp { dst, .. } | ProbeKind::Dns { dst, .. } => dst.to_string(),
        _ => String::new(),
    }
}

impl Prober for RvsProber {
    fn supports(&self, kind: &ProbeKind) -> bool {
        matches!(kind, ProbeKind::Ping { .. }) || StdProber.supports(kind)
    }

    fn probe(&self, spec: &ProbeSpec) -> Outcome {
        let start = std::time::Instant::now();
        let out = self.probe_inner(spec);
        let key = (spec.kind.name().to_owned(), target(&spec.kind));
        if let Ok(mut log) = self.log.lock() {
            let e = log.entry(key).or_default();
            e.last_seconds = start.elapsed().as_secs_f64();
            e.total += 1;
            e.failed += u64::from(!out.passed());
        }
        out
    }
}

impl RvsProber {
    fn probe_inner(&self, spec: &ProbeSpec) -> Outcome {
        match &spec.kind {
            ProbeKind::Ping { dst } => match rvs_io::icmp::ping(*dst, spec.timeout) {
                Ok(_) => Outcome::Pass,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    Outcome::Fail(ProbeError::Timeout(spec.timeout))
                }
                Err(e) => Outcome::Fail(ProbeError::Io(e)),
            },
            _ => StdProber.probe(spec),
        }
    }
}

use crate::engine::Engine;

pub(crate) struct Health {
    path: PathBuf,
    log: ProbeLog,
    checker: Checker,
    opts: CheckerOptions,
}

fn log_notices(notices: &[rvs_health::Notice]) {
    for n in notices {
        tracing::warn!("{n}");
    }
}

impl Health {
    /// Load the file (refusing to start on any error), apply its global requests, replace
    /// the declared services and start checking.
    pub(crate) fn start(path: PathBuf, engine: &mut Engine) -> anyhow::Result<Self> {
        let (model, notices) = Model::load(&path)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("configuration")?;
        log_notices(&notices);
        for req in model.globals.start_requests() {
            if let api::Response::Error(e) = engine.handle(req, true) {
                anyhow::bail!("{}: global_defs: {}", path.display(), e.message);
            }
        }
        for (svc, _) in rvs_health::to_api(&model) {
            // declared services come from the file, not from the restored table
            let _ = engine.handle(api::Request::DelService(svc.key), true);
        }
        let log = ProbeLog::default();
        let opts = CheckerOptions {
            prober: std::sync::Arc::new(RvsProber { log: log.clone() }),
            ..CheckerOptions::default()
        };
        let (checker, notices) = Checker::from_model(&model, opts.clone());
        log_notices(&notices);
        tracing::info!(
            file = %path.display(),
            services = model.virtual_servers.len(),
            "configuration loaded"
        );
        Ok(Self {
            path,
            log,
            checker,
            opts,
        })
    }

    /// SIGHUP: read the file again; a bad file is rejected and the running configuration
    /// stays.
    pub(crate) fn reload(&self) {
        match Model::load(&self.path) {
            Ok((model, notices)) => {
                log_notices(&notices);
                let more = self.checker.reload_model(&model, self.opts.prober.as_ref());
                log_notices(&more);
                tracing::info!(file = %self.path.display(), "configuration reloaded");
            }
            Err(e) => tracing::error!("reload rejected, keeping the running configuration: {e}"),
        }
    }

    /// Apply every action the checkers produced; true when the table changed.
    pub(crate) fn apply_actions(&self, engine: &mut Engine) -> bool {
        let mut changed = false;
        while let Some(action) = self.checker.poll_action() {
            match action.request() {
                Some(req) => {
                    let what = format!("{action:?}");
                    match engine.handle(req, true) {
                        api::Response::Error(e) => {
                            tracing::warn!(action = %what, error = %e.message, "health action failed");
                        }
                        _ => {
                            tracing::info!(action = %what, "health action");
                            changed = true;
                        }
                    }
                }
                None => {
                    if let Action::Notify(n) = &action {
                        tracing::info!(event = ?n.event, service = ?n.service, real = ?n.real, "health");
                        if let Some(script) = &n.script {
                            let out = rvs_health::probe::run_script(
                                script,
                                true,
                                Duration::from_secs(10),
                            );
                            tracing::debug!(?out, "notify script");
                        }
                    }
                }
            }
        }
        changed
    }

    /// Health gauges and probe statistics for the metrics endpoint.
    pub(crate) fn metrics(&self) -> String {
        use std::fmt::Write as _;
        let mut out = rvs_health::metrics::render_health(&self.checker.status());
        let log = self.log.lock().map(|l| l.clone()).unwrap_or_default();
        out.push_str("# HELP rvs_health_probe_duration_seconds Duration of the last probe.\n# TYPE rvs_health_probe_duration_seconds gauge\n");
        for ((kind, t), st) in &log {
            let _ = writeln!(
                out,
                "rvs_health_probe_duration_seconds{{checker=\"{kind}\",target=\"{t}\"}} {:.6}",
                st.last_seconds
            );
        }
        out.push_str("# HELP rvs_health_probes_total Probes run, by outcome.\n# TYPE rvs_health_probes_total counter\n");
        for ((kind, t), st) in &log {
            let _ = writeln!(
                out,
                "rvs_health_probes_total{{checker=\"{kind}\",target=\"{t}\",result=\"pass\"}} {}",
                st.total - st.failed
            );
            let _ = writeln!(
                out,
                "rvs_health_probes_total{{checker=\"{kind}\",target=\"{t}\",result=\"fail\"}} {}",
                st.failed
            );
        }
        out
    }
}
