//! The engine: owns the packet core, applies control requests, keeps the configuration on
//! disk so it survives a restart (`kill -9` included).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant as StdInstant;

use anyhow::Context;
use rvs_api as api;
use rvs_core::{Balancer, Config};
use serde::{Deserialize, Serialize};

use crate::convert::{
    conn_entry, control_error, dest_to_api, dest_to_core, err, key_to_core, service_entry,
    service_to_api, service_to_core,
};

/// Monotonic milliseconds since the daemon started, as the core's clock.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock(StdInstant);

impl Clock {
    pub(crate) fn new() -> Self {
        Self(StdInstant::now())
    }
    pub(crate) fn now(&self) -> rvs_core::time::Instant {
        rvs_core::time::Instant::from_millis(self.0.elapsed().as_millis() as u64)
    }
}

/// What is kept on disk: the configuration, never connections or counters.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedState {
    version: u32,
    timeouts: api::Timeouts,
    services: Vec<SavedService>,
    #[serde(default)]
    daemons: Vec<api::DaemonConfig>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedService {
    config: api::ServiceConfig,
    /// Oldest first, so re-adding rebuilds the newest-first list order.
    dests: Vec<api::DestConfig>,
}

pub(crate) struct Engine {
    pub(crate) lb: Balancer,
    pub(crate) clock: Clock,
    daemons: Vec<api::DaemonConfig>,
    state_path: Option<PathBuf>,
}

impl Engine {
    pub(crate) fn new(cfg: Config, state_path: Option<PathBuf>) -> Self {
        let clock = Clock::new();
        Self {
            lb: Balancer::new(cfg, clock.now()),
            clock,
            daemons: Vec::new(),
            state_path,
        }
    }

    /// Restore the saved configuration. A file that cannot be read or applied stops the
    /// start: running with half a configuration would be worse.
    pub(crate) fn load(&mut self) -> anyhow::Result<usize> {
        let Some(path) = self.state_path.clone() else {
            return Ok(0);
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let saved: SavedState = serde_json::from_str(&text)
            .with_context(|| format!("parsing saved configuration {}", path.display()))?;
        let mut n = 0;
        let now = self.clock.now();
        for s in &saved.services {
            s.config.validate().map_err(|e| {
                anyhow::anyhow!("{}: invalid service: {}", path.display(), e.message)
            })?;
            let cfg = service_to_core(&s.config).map_err(|_| {
                anyhow::anyhow!(
                    "{}: unknown scheduler {}",
                    path.display(),
                    s.config.scheduler
                )
            })?;
            self.lb.add_service(cfg, now).with_context(|| {
                format!("{}: restoring service {:?}", path.display(), s.config.key)
            })?;
            for d in &s.dests {
                self.lb
                    .add_dest(&key_to_core(&s.config.key), dest_to_core(d))
                    .with_context(|| {
                        format!("{}: restoring destination {}", path.display(), d.addr)
                    })?;
            }
            n += 1;
        }
        let t = saved.timeouts;
        self.lb.set_timeouts(t.tcp, t.tcp_fin, t.udp);
        self.daemons = saved.daemons;
        Ok(n)
    }

    fn snapshot(&self) -> SavedState {
        let (tcp, tcp_fin, udp) = self.lb.timeouts();
        SavedState {
            version: 1,
            timeouts: api::Timeouts { tcp, tcp_fin, udp },
            services: self
                .lb
                .services()
                .iter()
                .map(|s| SavedService {
                    config: service_to_api(&s.config),
                    dests: s
                        .dests
                        .iter()
                        .rev()
                        .map(|d| dest_to_api(&d.config))
                        .collect(),
                })
                .collect(),
            daemons: self.daemons.clone(),
        }
    }

    /// Write the configuration atomically: temp file, fsync, rename, fsync the directory.
    fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.state_path else {
            return Ok(());
        };
        let body = serde_json::to_vec(&self.snapshot()).map_err(std::io::Error::other)?;
        write_atomic(path, &body)
    }

    /// Apply one request; mutations that succeed are on disk before the answer leaves.
    pub(crate) fn handle(&mut self, req: api::Request, may_admin: bool) -> api::Response {
        if req.is_mutation() && !may_admin {
            return err(api::ErrorCode::Perm, "permission denied (you must be root)");
        }
        let mutation = req.is_mutation();
        let resp = match req {
            api::Request::Batch(items) => {
                api::Response::Batch(items.into_iter().map(|r| self.apply(r)).collect())
            }
            other => self.apply(other),
        };
        if mutation && let Err(e) = self.save() {
            tracing::error!(error = %e, "cannot save configuration");
            return err(
                api::ErrorCode::Internal,
                format!("applied, but saving the configuration failed: {e}"),
            );
        }
        resp
    }

    fn apply(&mut self, req: api::Request) -> api::Response {
        let now = self.clock.now();
        let lb = &mut self.lb;
        let done = |r: Result<(), rvs_core::ControlError>| match r {
            Ok(()) => api::Response::Ok,
            Err(e) => control_error(&e),
        };
        match req {
            api::Request::AddService(s) => match service_to_core(&s) {
                Ok(c) => done(lb.add_service(c, now)),
                Err((code, msg)) => {
                    // ipvsadm reports an existing service before a bad scheduler
                    if lb.service(&key_to_core(&s.key)).is_some() {
                        err(api::ErrorCode::Exists, "service already exists")
                    } else {
                        err(code, msg)
                    }
                }
            },
            api::Request::EditService(s) => match service_to_core(&s) {
                Ok(c) => done(lb.edit_service(c)),
                Err((code, msg)) => {
                    if lb.service(&key_to_core(&s.key)).is_none() {
                        err(api::ErrorCode::NoService, "no such service")
                    } else {
                        err(code, msg)
                    }
                }
            },
            api::Request::DelService(k) => done(lb.del_service(&key_to_core(&k), now)),
            api::Request::Flush => {
                lb.flush(now);
                api::Response::Ok
            }
            api::Request::AddDest { service, dest } => {
                done(lb.add_dest(&key_to_core(&service), dest_to_core(&dest)))
            }
            api::Request::EditDest { service, dest } => {
                done(lb.edit_dest(&key_to_core(&service), dest_to_core(&dest)))
            }
            api::Request::DelDest {
                service,
                addr,
                port,
            } => done(lb.del_dest(&key_to_core(&service), &addr, port, now)),
            api::Request::SetTimeouts(t) => {
                lb.set_timeouts(t.tcp, t.tcp_fin, t.udp);
                api::Response::Ok
            }
            api::Request::StartDaemon(d) => {
                if self.daemons.iter().any(|x| x.state == d.state) {
                    err(api::ErrorCode::Exists, "daemon has already run")
                } else {
                    // Connection synchronisation is not implemented yet: the daemon's
                    // settings are validated, kept and listed like the kernel does.
                    tracing::warn!(
                        state = d.state.name(),
                        "sync daemon recorded; connection sync is not implemented yet"
                    );
                    self.daemons.push(d);
                    self.daemons
                        .sort_by_key(|d| d.state != api::SyncState::Master);
                    api::Response::Ok
                }
            }
            api::Request::StopDaemon(state) => {
                let before = self.daemons.len();
                self.daemons.retain(|d| d.state != state);
                if self.daemons.len() == before {
                    err(api::ErrorCode::NoService, "no daemon is running")
                } else {
                    api::Response::Ok
                }
            }
            api::Request::Zero(k) => done(lb.zero(k.as_ref().map(key_to_core).as_ref())),
            api::Request::GetInfo => api::Response::Info(api::Info {
                version: api::IPVS_VERSION,
                conn_tab_size: 1u32 << lb.config().conn_tab_bits.min(31),
            }),
            api::Request::GetServices => {
                api::Response::Services(lb.services().iter().map(service_entry).collect())
            }
            api::Request::GetService(k) => match lb.service(&key_to_core(&k)) {
                Some(s) => api::Response::Service(service_entry(&s)),
                None => err(api::ErrorCode::NoService, "no such service"),
            },
            api::Request::GetTimeouts => {
                let (tcp, tcp_fin, udp) = lb.timeouts();
                api::Response::Timeouts(api::Timeouts { tcp, tcp_fin, udp })
            }
            api::Request::GetDaemons => api::Response::Daemons(self.daemons.clone()),
            api::Request::GetConns => {
                api::Response::Conns(lb.connections(now).iter().map(conn_entry).collect())
            }
            api::Request::Batch(_) => err(api::ErrorCode::BadRequest, "nested batch"),
        }
    }
}

/// Write `body` to `path` so that a crash leaves either the old or the new file.
pub(crate) fn write_atomic(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(body)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn key() -> api::ServiceKey {
        api::ServiceKey::Addr {
            proto: api::Protocol::Tcp,
            addr: "198.18.0.1".parse().unwrap(),
            port: 80,
        }
    }

    #[test]
    fn state_round_trips_through_disk_in_list_order() {
        let dir = std::env::temp_dir().join(format!("rvsd-test-{}", std::process::id()));
        let path = dir.join("state.json");
        let _ = std::fs::remove_file(&path);
        let mut e = Engine::new(Config::default(), Some(path.clone()));
        let mut s = api::ServiceConfig::new(key());
        s.scheduler = "rr".into();
        assert_eq!(
            e.handle(api::Request::AddService(s), true),
            api::Response::Ok
        );
        for last in [2u8, 3, 4] {
            let addr: IpAddr = format!("198.19.0.{last}").parse().unwrap();
            let r = e.handle(
                api::Request::AddDest {
                    service: key(),
                    dest: api::DestConfig::new(addr, 80),
                },
                true,
            );
            assert_eq!(r, api::Response::Ok);
        }
        let before = e.lb.services();
        let mut e2 = Engine::new(Config::default(), Some(path));
        assert_eq!(e2.load().unwrap(), 1);
        let after = e2.lb.services();
        assert_eq!(before.len(), after.len());
        let order = |v: &Vec<rvs_core::ServiceInfo>| {
            v[0].dests.iter().map(|d| d.config.addr).collect::<Vec<_>>()
        };
        assert_eq!(order(&before), order(&after));
        std::fs::remove_dir_all(&dir).ok();
        let _ = e2;
    }

    #[test]
    fn unprivileged_callers_may_only_read() {
        let mut e = Engine::new(Config::default(), None);
        let r = e.handle(api::Request::Flush, false);
        assert!(matches!(r, api::Response::Error(ref x) if x.code == api::ErrorCode::Perm));
        assert!(matches!(
            e.handle(api::Request::GetServices, false),
            api::Response::Services(_)
        ));
    }
}
