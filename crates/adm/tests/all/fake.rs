//! An in-memory stand-in for rvsd with the kernel's refusal rules, reached
//! through the real codec (every request is encoded, decoded and validated, every
//! response encoded and decoded) so the tests exercise the wire format too.

use std::collections::HashMap;

use rvs_api::{
    ApiError, ClientError, ConnEntry, DaemonConfig, DestEntry, ErrorCode, Info, Rates, Request,
    Response, ServiceEntry, ServiceKey, Stats, SyncState, Timeouts, decode_request,
    decode_response, encode_request, encode_response,
};
use rvsadm::run::Backend;

const SCHEDULERS: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos",
];

#[derive(Default)]
pub struct Fake {
    pub services: Vec<ServiceEntry>,
    pub timeouts: Timeouts,
    pub daemons: Vec<DaemonConfig>,
    pub conns: Vec<ConnEntry>,
    /// Round trips seen.
    pub calls: usize,
    /// Operations applied (batch members counted one by one).
    pub ops: usize,
    /// Use the JSON codec on every call (slower; off for big benchmarks).
    pub codec: bool,
    index: HashMap<ServiceKey, usize>,
}

fn err(code: ErrorCode) -> Response {
    Response::error(code, "fake")
}

impl Fake {
    pub fn new() -> Self {
        Self {
            timeouts: Timeouts {
                tcp: 900,
                tcp_fin: 120,
                udp: 300,
            },
            codec: true,
            ..Self::default()
        }
    }

    fn find(&mut self, key: &ServiceKey) -> Option<&mut ServiceEntry> {
        if self.index.len() != self.services.len() {
            self.index = self
                .services
                .iter()
                .enumerate()
                .map(|(i, s)| (s.config.key, i))
                .collect();
        }
        let i = *self.index.get(key)?;
        self.services.get_mut(i)
    }

    pub fn apply(&mut self, req: Request) -> Response {
        if !matches!(req, Request::Batch(_)) {
            self.ops += 1;
        }
        match req {
            Request::AddService(cfg) => {
                if self.find(&cfg.key).is_some() {
                    return err(ErrorCode::Exists);
                }
                if !SCHEDULERS.contains(&cfg.scheduler.as_str())
                    || cfg.pe.as_deref().is_some_and(|p| p != "sip")
                {
                    return err(ErrorCode::SchedNotFound);
                }
                self.index.insert(cfg.key, self.services.len());
                self.services.push(ServiceEntry {
                    config: cfg,
                    stats: Stats::default(),
                    rates: Rates::default(),
                    dests: Vec::new(),
                });
                Response::Ok
            }
            Request::EditService(cfg) => {
                let known = SCHEDULERS.contains(&cfg.scheduler.as_str());
                let Some(s) = self.find(&cfg.key) else {
                    return err(ErrorCode::NoService);
                };
                if !known {
                    return err(ErrorCode::SchedNotFound);
                }
                s.config = cfg;
                Response::Ok
            }
            Request::DelService(key) => {
                let before = self.services.len();
                self.services.retain(|s| s.config.key != key);
                self.index.clear();
                if self.services.len() == before {
                    err(ErrorCode::NoService)
                } else {
                    Response::Ok
                }
            }
            Request::Flush => {
                self.services.clear();
                self.index.clear();
                Response::Ok
            }
            Request::AddDest { service, dest } => {
                let Some(s) = self.find(&service) else {
                    return err(ErrorCode::NoService);
                };
                if dest.l_threshold > dest.u_threshold {
                    return err(ErrorCode::Range);
                }
                if s.dests
                    .iter()
                    .any(|d| d.config.addr == dest.addr && d.config.port == dest.port)
                {
                    return err(ErrorCode::Exists);
                }
                s.dests.insert(
                    0,
                    DestEntry {
                        config: dest,
                        active: 0,
                        inactive: 0,
                        persist: 0,
                        stats: Stats::default(),
                        rates: Rates::default(),
                    },
                );
                Response::Ok
            }
            Request::EditDest { service, dest } => {
                let Some(s) = self.find(&service) else {
                    return err(ErrorCode::NoService);
                };
                let Some(d) = s
                    .dests
                    .iter_mut()
                    .find(|d| d.config.addr == dest.addr && d.config.port == dest.port)
                else {
                    return err(ErrorCode::NotFound);
                };
                if dest.l_threshold > dest.u_threshold {
                    return err(ErrorCode::Range);
                }
                d.config = dest;
                Response::Ok
            }
            Request::DelDest {
                service,
                addr,
                port,
            } => {
                let Some(s) = self.find(&service) else {
                    return err(ErrorCode::NoService);
                };
                let before = s.dests.len();
                s.dests
                    .retain(|d| !(d.config.addr == addr && d.config.port == port));
                if s.dests.len() == before {
                    err(ErrorCode::NotFound)
                } else {
                    Response::Ok
                }
            }
            Request::SetTimeouts(t) => {
                if t.tcp != 0 {
                    self.timeouts.tcp = t.tcp;
                }
                if t.tcp_fin != 0 {
                    self.timeouts.tcp_fin = t.tcp_fin;
                }
                if t.udp != 0 {
                    self.timeouts.udp = t.udp;
                }
                Response::Ok
            }
            Request::StartDaemon(d) => {
                if self.daemons.iter().any(|x| x.state == d.state) {
                    return err(ErrorCode::Exists);
                }
                self.daemons.push(d);
                Response::Ok
            }
            Request::StopDaemon(state) => {
                let before = self.daemons.len();
                self.daemons.retain(|d| d.state != state);
                if self.daemons.len() == before {
                    err(ErrorCode::NoService)
                } else {
                    Response::Ok
                }
            }
            Request::Zero(None) => Response::Ok,
            Request::Zero(Some(k)) => {
                if self.find(&k).is_some() {
                    Response::Ok
                } else {
                    err(ErrorCode::NoService)
                }
            }
            Request::GetInfo => Response::Info(Info::default()),
            Request::GetServices => Response::Services(self.services.clone()),
            Request::GetService(k) => match self.find(&k) {
                Some(s) => Response::Service(s.clone()),
                None => err(ErrorCode::NoService),
            },
            Request::GetTimeouts => Response::Timeouts(self.timeouts),
            Request::GetDaemons => {
                let mut d = self.daemons.clone();
                d.sort_by_key(|x| x.state != SyncState::Master);
                Response::Daemons(d)
            }
            Request::GetConns => Response::Conns(self.conns.clone()),
            Request::Batch(items) => {
                Response::Batch(items.into_iter().map(|r| self.apply(r)).collect())
            }
        }
    }
}

impl Backend for Fake {
    fn call(&mut self, req: &Request) -> Result<Response, ClientError> {
        self.calls += 1;
        if !self.codec {
            if let Err(e) = req.validate() {
                return Ok(Response::Error(e));
            }
            return Ok(self.apply(req.clone()));
        }
        let resp = match decode_request(&encode_request(req)) {
            Ok(r) => self.apply(r),
            Err(e) => Response::Error(e),
        };
        Ok(decode_response(&encode_response(&resp))
            .unwrap_or_else(|e| Response::Error(ApiError::new(e.code, e.message))))
    }
}

/// Backend handle shared between the test and the runner.
pub struct Shared(pub std::rc::Rc<std::cell::RefCell<Fake>>);

impl Backend for Shared {
    fn call(&mut self, req: &Request) -> Result<Response, ClientError> {
        self.0.borrow_mut().call(req)
    }
}
