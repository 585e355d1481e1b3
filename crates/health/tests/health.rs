//! rvs-health integration tests, one binary (fewer links on two cores).
//!
//! Network rule: every probe in these tests targets 127.0.0.1 servers the test
//! starts itself; configuration addresses come from 198.18.0.0/15 and
//! 2001:db8::/32; every wait is bounded.

#[path = "health/config.rs"]
mod config;
#[path = "health/monitor.rs"]
mod monitor;
#[path = "health/probe.rs"]
mod probe;
#[path = "health/runner.rs"]
mod runner;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A directory under the system temp dir, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "rvs-health-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).expect("create temp dir");
        Self(p)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
