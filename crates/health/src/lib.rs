//! rvs-health: keepalived's LVS configuration, health-check state and probes.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;

pub use config::{ConfigError, Model, Notice, diff, to_api};
