//! rvs-health: keepalived's LVS configuration, health-check state and probes.
//!
//! What it owns: reading keepalived.conf (the LVS side) into a typed model,
//! mapping it to rvs-api requests, deciding from check results which real
//! servers are in service, and running the probes. What it refuses: talking to
//! the balancer (it only produces [`rvs_api::Request`]s, the daemon sends them),
//! VRRP, and anything that needs `unsafe` or libc (that lives in rvs-io).
//!
//! Layers:
//! * [`config`]: [`Model::load`] (file, includes, [`Notice`]s, [`ConfigError`]s
//!   with file:line:keyword), [`to_api`], [`diff`] and the precedence rules
//!   between the file and rvsadm;
//! * [`check`]: the sans-IO state machine [`check::Monitor`] (schedule, retry,
//!   alpha, inhibit, quorum with hysteresis, sorry server, misc_dynamic weights,
//!   reload with carried state and draining), driven by a caller-supplied clock;
//! * [`probe`]: blocking probes with hard deadlines and bounded reads (TCP, HTTP
//!   with MD5 digest, UDP, DNS, MISC scripts);
//! * [`runner`]: [`Checker`], the monitor on a thread with a probe worker pool,
//!   yielding [`check::Action`]s on a channel;
//! * [`metrics`]: Prometheus text in node_exporter's `node_ipvs_*` names plus
//!   per-real-server health gauges.
//!
//! ```
//! use rvs_health::{Model, to_api};
//! let conf = "virtual_server 198.18.0.10 80 {\n  lb_algo rr\n  lb_kind DR\n  \
//!             real_server 198.19.0.11 80 {\n    weight 3\n    TCP_CHECK {\n      connect_timeout 2\n    }\n  }\n}\n";
//! let (model, notices) = Model::parse_str("inline.conf", conf).expect("valid");
//! assert!(notices.is_empty());
//! let services = to_api(&model);
//! assert_eq!(services[0].0.scheduler, "rr");
//! assert_eq!(services[0].1[0].weight, 3);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod check;
pub mod config;
pub mod metrics;
pub mod probe;
pub mod runner;
pub mod time;

pub use check::{Action, Monitor, Targets};
pub use config::{ConfigError, Model, Notice, diff, to_api};
pub use runner::{Checker, CheckerOptions};
