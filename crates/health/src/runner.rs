//! The runner: a [`Monitor`] on its own thread, probes on a small worker pool,
//! actions out through a channel.
//!
//! ```no_run
//! use rvs_health::{Checker, CheckerOptions, Model};
//! let (model, notices) = Model::load("/etc/keepalived/keepalived.conf").expect("config");
//! for n in &notices { eprintln!("{n}"); }
//! let (checker, more) = Checker::from_model(&model, CheckerOptions::default());
//! for n in &more { eprintln!("{n}"); }
//! while let Some(action) = checker.recv_timeout(std::time::Duration::from_secs(1)) {
//!     if let Some(request) = action.request() {
//!         // send `request` to the balancer
//!         let _ = request;
//!     }
//! }
//! ```
//!
//! On SIGHUP the daemon loads the file again and calls [`Checker::reload`]; at
//! stop it calls [`Checker::stop`] and applies the returned actions (or a flush,
//! per `lvs_flush_on_stop`).

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::check::{Action, CheckId, Monitor, MonitorOptions, ProbeRequest, RealStatus, Targets};
use crate::config::{Model, Notice};
use crate::probe::{Outcome, ProbeError, Prober, StdProber};
use crate::time::Instant;

/// Longest the runner sleeps without looking at its clock.
const MAX_SLEEP: Duration = Duration::from_millis(500);

/// Options of a [`Checker`].
#[derive(Clone)]
pub struct CheckerOptions {
    /// Warmup RNG seed.
    pub seed: u64,
    /// Drain removed destinations for this long on reload (weight 0 first).
    pub drain: Option<Duration>,
    /// Probe worker threads (0 = one per checker, at most 32).
    pub workers: usize,
    /// Probe implementation.
    pub prober: Arc<dyn Prober>,
}

impl Default for CheckerOptions {
    fn default() -> Self {
        Self {
            seed: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            drain: None,
            workers: 0,
            prober: Arc::new(StdProber),
        }
    }
}

impl core::fmt::Debug for CheckerOptions {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CheckerOptions")
            .field("seed", &self.seed)
            .field("drain", &self.drain)
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

enum Cmd {
    Result(CheckId, u64, Outcome),
    Reload(Targets),
    Status(Sender<Vec<RealStatus>>),
    Stop(Sender<Vec<Action>>),
}

/// Runs health checks in the background and yields [`Action`]s.
#[derive(Debug)]
pub struct Checker {
    cmd: Sender<Cmd>,
    actions: Receiver<Action>,
    thread: Option<JoinHandle<()>>,
}

impl Checker {
    /// Start checking a loaded model; also returns notices for checkers the
    /// prober does not implement (they are disabled).
    pub fn from_model(model: &Model, opts: CheckerOptions) -> (Self, Vec<Notice>) {
        let (targets, notices) = Targets::from_model(model, opts.prober.as_ref());
        (Self::start(targets, opts), notices)
    }

    /// Start checking `targets`. The first actions (available at once) add the
    /// services with their initially-up real servers.
    pub fn start(targets: Targets, opts: CheckerOptions) -> Self {
        let checks: usize = targets
            .services
            .iter()
            .flat_map(|s| &s.reals)
            .map(|r| r.checks.len())
            .sum();
        let workers = if opts.workers == 0 {
            checks.clamp(1, 32)
        } else {
            opts.workers
        };
        let (cmd_tx, cmd_rx) = mpsc::channel();
        let (act_tx, act_rx) = mpsc::channel();
        let (job_tx, job_rx) = mpsc::channel::<ProbeRequest>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        for _ in 0..workers {
            let jobs = Arc::clone(&job_rx);
            let results = cmd_tx.clone();
            let prober = Arc::clone(&opts.prober);
            std::thread::Builder::new()
                .name("rvs-health-probe".into())
                .spawn(move || {
                    loop {
                        let job = match jobs.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        // A panicking prober must not take the worker (and with it a
                        // share of all checking) down: the probe counts as failed.
                        let outcome =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                prober.probe(&job.spec)
                            }))
                            .unwrap_or_else(|_| {
                                Outcome::Fail(ProbeError::Io(std::io::Error::other(
                                    "probe panicked",
                                )))
                            });
                        if results.send(Cmd::Result(job.id, job.seq, outcome)).is_err() {
                            return;
                        }
                    }
                })
                .expect("spawn probe worker");
        }
        let mopts = MonitorOptions {
            seed: opts.seed,
            drain: opts.drain,
        };
        let thread = std::thread::Builder::new()
            .name("rvs-health".into())
            .spawn(move || event_loop(targets, mopts, &cmd_rx, &job_tx, &act_tx))
            .expect("spawn health thread");
        Self {
            cmd: cmd_tx,
            actions: act_rx,
            thread: Some(thread),
        }
    }

    /// Replace the targets (SIGHUP); the resulting actions follow on the channel.
    pub fn reload(&self, targets: Targets) {
        let _ = self.cmd.send(Cmd::Reload(targets));
    }

    /// [`Checker::reload`] from a model; returns notices for unsupported checkers.
    pub fn reload_model(&self, model: &Model, prober: &dyn Prober) -> Vec<Notice> {
        let (t, n) = Targets::from_model(model, prober);
        self.reload(t);
        n
    }

    /// The action channel (for `select`-style loops or iteration).
    pub fn actions(&self) -> &Receiver<Action> {
        &self.actions
    }

    /// Next action if one is ready.
    pub fn poll_action(&self) -> Option<Action> {
        self.actions.try_recv().ok()
    }

    /// Next action, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Action> {
        self.actions.recv_timeout(timeout).ok()
    }

    /// Current state of every real server (waits for the health thread, at most 1 s).
    pub fn status(&self) -> Vec<RealStatus> {
        let (tx, rx) = mpsc::channel();
        if self.cmd.send(Cmd::Status(tx)).is_err() {
            return Vec::new();
        }
        rx.recv_timeout(Duration::from_secs(1)).unwrap_or_default()
    }

    /// Stop checking; returns the shutdown actions (service deletions, `omega`
    /// notifications). Probes still running finish on their own, bounded by
    /// their timeouts; their results are dropped.
    pub fn stop(mut self) -> Vec<Action> {
        let (tx, rx) = mpsc::channel();
        let _ = self.cmd.send(Cmd::Stop(tx));
        let out = rx.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        out
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let (tx, _rx) = mpsc::channel();
            let _ = self.cmd.send(Cmd::Stop(tx));
            let _ = t.join();
        }
    }
}

fn event_loop(
    targets: Targets,
    opts: MonitorOptions,
    cmds: &Receiver<Cmd>,
    jobs: &Sender<ProbeRequest>,
    actions: &Sender<Action>,
) {
    let origin = std::time::Instant::now();
    let now =
        || Instant::from_micros(u64::try_from(origin.elapsed().as_micros()).unwrap_or(u64::MAX));
    let mut m = Monitor::new(targets, now(), opts);
    loop {
        let t = now();
        m.handle_timeout(t);
        while let Some(p) = m.poll_probe() {
            let _ = jobs.send(p);
        }
        while let Some(a) = m.poll_action() {
            let _ = actions.send(a);
        }
        let wait = m
            .poll_timeout()
            .map_or(MAX_SLEEP, |d| d.saturating_since(now()))
            .min(MAX_SLEEP);
        match cmds.recv_timeout(wait) {
            Ok(Cmd::Result(id, seq, outcome)) => m.handle_result(now(), id, seq, &outcome),
            Ok(Cmd::Reload(t)) => m.reload(t, now()),
            Ok(Cmd::Status(tx)) => {
                let _ = tx.send(m.status());
            }
            Ok(Cmd::Stop(tx)) => {
                let _ = tx.send(m.shutdown());
                return;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}
