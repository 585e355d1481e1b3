//! Executing commands against rvsd: the only place that talks to the daemon,
//! through the [`Backend`] trait so tests can stand in for it.

use std::io::{self, BufRead, Write};

use rvs_api::{
    ApiError, Client, ClientError, ErrorCode, Info, Operation, Request, Response, ServiceEntry,
};

use crate::cli::{Command, ListOpts, ListWhat, parse_with, program_name};
use crate::format;
use crate::help;
use crate::json;
use crate::names::Names;
use crate::restore::LineReader;

/// Operations sent per batch while restoring (each batch is one round trip).
pub const RESTORE_BATCH: usize = 4096;

/// Lowest IPVS version ipvsadm accepts without a warning (1.1.4).
const MIN_IPVS_VERSION: u32 = 0x01_01_04;

/// Something that answers requests: rvsd over its socket, or a test double.
pub trait Backend {
    /// Send one request and wait for the answer.
    ///
    /// # Errors
    /// Transport failures only; refusals are `Ok(Response::Error(..))`.
    fn call(&mut self, req: &Request) -> Result<Response, ClientError>;
}

impl Backend for Client {
    fn call(&mut self, req: &Request) -> Result<Response, ClientError> {
        Self::call(self, req)
    }
}

/// How a command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Finished with this status; a restore goes on with the next line.
    Status(i32),
    /// Terminate the process with this status (ipvsadm calls `exit()`).
    Exit(i32),
}

impl Outcome {
    /// The process exit status.
    pub const fn code(self) -> i32 {
        match self {
            Self::Status(c) | Self::Exit(c) => c,
        }
    }
}

/// An OS error's text without Rust's " (os error N)" suffix, like `strerror`.
pub fn io_error_text(e: &io::Error) -> String {
    let s = e.to_string();
    match (e.raw_os_error(), s.rfind(" (os error ")) {
        (Some(_), Some(i)) => s[..i].to_owned(),
        _ => s,
    }
}

/// Text for a transport failure.
pub fn client_error_text(e: &ClientError) -> String {
    match e {
        ClientError::Connect { socket, source } => match source.kind() {
            io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound => format!(
                "rvsd is not running (no socket {socket}): {}",
                io_error_text(source)
            ),
            _ => format!(
                "cannot connect to rvsd at {socket}: {}",
                io_error_text(source)
            ),
        },
        ClientError::Frame(rvs_api::FrameError::Io(io)) => {
            format!("lost connection to rvsd: {}", io_error_text(io))
        }
        other => other.to_string(),
    }
}

/// The request a state-changing command sends, `None` for the others.
pub fn to_request(cmd: &Command) -> Option<Request> {
    Some(match cmd {
        Command::AddService(c) => Request::AddService(c.clone()),
        Command::EditService(c) => Request::EditService(c.clone()),
        Command::DelService(k) => Request::DelService(*k),
        Command::Flush => Request::Flush,
        Command::AddDest(k, d) => Request::AddDest {
            service: *k,
            dest: d.clone(),
        },
        Command::EditDest(k, d) => Request::EditDest {
            service: *k,
            dest: d.clone(),
        },
        Command::DelDest(k, addr, port) => Request::DelDest {
            service: *k,
            addr: *addr,
            port: *port,
        },
        Command::SetTimeouts(t) => Request::SetTimeouts(*t),
        Command::StartDaemon(d) => Request::StartDaemon(d.clone()),
        Command::StopDaemon(s) => Request::StopDaemon(*s),
        Command::Zero(k) => Request::Zero(*k),
        Command::Help
        | Command::Version
        | Command::List(..)
        | Command::Save { .. }
        | Command::Restore => return None,
    })
}

/// Executes parsed commands against a backend, printing like ipvsadm.
pub struct Runner<'a> {
    backend: &'a mut dyn Backend,
    info: Info,
    names: &'a Names,
    program: String,
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
}

impl<'a> Runner<'a> {
    /// A runner; `info` is what `GetInfo` returned at start-up.
    pub fn new(
        backend: &'a mut dyn Backend,
        info: Info,
        names: &'a Names,
        program: &str,
        out: &'a mut dyn Write,
        err: &'a mut dyn Write,
    ) -> Self {
        Self {
            backend,
            info,
            names,
            program: program.to_owned(),
            out,
            err,
        }
    }

    // Output errors (e.g. a closed pipe) are ignored: there is nobody to tell.
    fn print(&mut self, s: &str) {
        let _ = self.out.write_all(s.as_bytes());
    }

    fn eprint_line(&mut self, s: &str) {
        // Keep stdout and stderr in program order when both go to one place.
        let _ = self.out.flush();
        let _ = self.err.write_all(s.as_bytes());
        let _ = self.err.write_all(b"\n");
    }

    /// Run one command. `stdin` feeds `-R`; `interactive` sends each restore line
    /// on its own instead of batching.
    pub fn execute(&mut self, cmd: Command, stdin: &mut dyn BufRead, interactive: bool) -> Outcome {
        match cmd {
            Command::Help => {
                let u = help::usage(&self.program);
                self.print(&u);
                Outcome::Exit(0)
            }
            Command::Version => {
                self.print(&format!("{}\n", help::VERSION));
                Outcome::Exit(0)
            }
            Command::Restore => self.restore(stdin, interactive),
            Command::List(what, opts) => self.list(&what, &opts),
            Command::Save { numeric } => match self.get_services(Operation::GetServices) {
                Ok(list) => {
                    let text = format::format_save(&list, numeric, self.names);
                    self.print(&text);
                    Outcome::Status(0)
                }
                Err(msg) => {
                    self.eprint_line(&msg);
                    Outcome::Exit(1)
                }
            },
            other => match to_request(&other) {
                Some(req) => self.mutate(&req),
                None => Outcome::Status(0),
            },
        }
    }

    fn mutate(&mut self, req: &Request) -> Outcome {
        let op = req.operation();
        match self.backend.call(req) {
            Ok(Response::Error(e)) => {
                let m = e.ipvsadm_message(op);
                self.eprint_line(&m);
                Outcome::Status(255)
            }
            Ok(_) => Outcome::Status(0),
            Err(e) => {
                let m = client_error_text(&e);
                self.eprint_line(&m);
                Outcome::Status(255)
            }
        }
    }

    /// Fetch something; on failure the message ipvsadm would print.
    fn fetch(&mut self, req: &Request) -> Result<Response, String> {
        let op = req.operation();
        match self.backend.call(req) {
            Ok(Response::Error(e)) => Err(e.ipvsadm_message(op)),
            Ok(r) => Ok(r),
            Err(e) => Err(client_error_text(&e)),
        }
    }

    fn get_services(&mut self, op: Operation) -> Result<Vec<ServiceEntry>, String> {
        match self.fetch(&Request::GetServices)? {
            Response::Services(list) => Ok(list),
            _ => Err(unexpected(op)),
        }
    }

    fn list(&mut self, what: &ListWhat, opts: &ListOpts) -> Outcome {
        let result: Result<String, String> = match what {
            ListWhat::All => {
                if !opts.json {
                    let h = format::version_header(&self.info);
                    self.print(&h);
                }
                self.get_services(Operation::GetServices).map(|list| {
                    if opts.json {
                        json::services(&list, &self.info, opts.nosort)
                    } else {
                        format::format_services(&list, opts, self.names)
                    }
                })
            }
            ListWhat::Service(key) => match self.fetch(&Request::GetService(*key)) {
                Ok(Response::Service(entry)) => Ok(if opts.json {
                    json::services(core::slice::from_ref(&entry), &self.info, opts.nosort)
                } else {
                    format::format_one_service(&entry, opts, self.names)
                }),
                Ok(_) => Err(unexpected(Operation::GetService)),
                Err(m) => Err(m),
            },
            ListWhat::Conns => match self.fetch(&Request::GetConns) {
                Ok(Response::Conns(list)) => Ok(if opts.json {
                    json::conns(&list)
                } else {
                    format::format_conns(&list, opts, self.names)
                }),
                Ok(_) => Err(unexpected(Operation::GetConns)),
                Err(m) => Err(m),
            },
            ListWhat::Timeouts => match self.fetch(&Request::GetTimeouts) {
                Ok(Response::Timeouts(t)) => Ok(if opts.json {
                    json::timeouts(&t)
                } else {
                    format::format_timeouts(&t)
                }),
                Ok(_) => Err(unexpected(Operation::GetTimeouts)),
                Err(m) => Err(m),
            },
            ListWhat::Daemons => match self.fetch(&Request::GetDaemons) {
                Ok(Response::Daemons(list)) => Ok(if opts.json {
                    json::daemons(&list)
                } else {
                    format::format_daemons(&list)
                }),
                Ok(_) => Err(unexpected(Operation::GetDaemons)),
                Err(m) => Err(m),
            },
        };
        match result {
            Ok(text) => {
                self.print(&text);
                Outcome::Status(0)
            }
            Err(msg) => {
                self.eprint_line(&msg);
                Outcome::Exit(1)
            }
        }
    }

    /// `-R`: one command per input line, state changes sent in batches.
    fn restore(&mut self, stdin: &mut dyn BufRead, interactive: bool) -> Outcome {
        let chunk = if interactive { 1 } else { RESTORE_BATCH };
        let mut reader = LineReader::new(stdin);
        let mut pending: Vec<Request> = Vec::new();
        let mut last = 0;
        let names = self.names;
        loop {
            let line = match reader.next_line(&self.program) {
                Ok(Some(l)) => l,
                Ok(None) => break,
                Err(e) => {
                    if let Err(o) = self.flush(&mut pending, &mut last) {
                        return o;
                    }
                    let m = format!("error reading standard input: {}", io_error_text(&e));
                    self.eprint_line(&m);
                    return Outcome::Exit(1);
                }
            };
            if line.len() <= 1 {
                continue;
            }
            match parse_with(&line, names, true) {
                Err(e) => {
                    if let Err(o) = self.flush(&mut pending, &mut last) {
                        return o;
                    }
                    self.eprint_line(&e.message);
                    if e.fatal {
                        return Outcome::Exit(e.exit_code);
                    }
                    last = e.exit_code;
                }
                Ok(cmd) => {
                    if let Some(req) = to_request(&cmd) {
                        pending.push(req);
                        if pending.len() >= chunk
                            && let Err(o) = self.flush(&mut pending, &mut last)
                        {
                            return o;
                        }
                    } else {
                        if let Err(o) = self.flush(&mut pending, &mut last) {
                            return o;
                        }
                        match self.execute(cmd, &mut io::empty(), interactive) {
                            Outcome::Status(s) => last = s,
                            exit @ Outcome::Exit(_) => return exit,
                        }
                    }
                }
            }
        }
        if let Err(o) = self.flush(&mut pending, &mut last) {
            return o;
        }
        Outcome::Status(last)
    }

    /// Send the pending operations as one batch, print each failure in order
    /// (with ipvsadm's message for its operation) and set `last` to the status of
    /// the last one. An operation that fails local validation is reported the same
    /// way without being sent, so it cannot make the daemon refuse the whole batch.
    fn flush(&mut self, pending: &mut Vec<Request>, last: &mut i32) -> Result<(), Outcome> {
        if pending.is_empty() {
            return Ok(());
        }
        let items = std::mem::take(pending);
        let mut results: Vec<Option<Result<(), ApiError>>> = vec![None; items.len()];
        let mut send: Vec<Request> = Vec::new();
        let mut sent_idx: Vec<usize> = Vec::new();
        for (i, r) in items.iter().enumerate() {
            match r.validate() {
                Ok(()) => {
                    send.push(r.clone());
                    sent_idx.push(i);
                }
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        if !send.is_empty() {
            let single = send.len() == 1;
            let req = if single {
                send.swap_remove(0)
            } else {
                Request::Batch(send)
            };
            let answers: Vec<Result<(), ApiError>> = match self.backend.call(&req) {
                Ok(Response::Batch(resps)) if !single => sent_idx
                    .iter()
                    .enumerate()
                    .map(|(k, _)| match resps.get(k) {
                        Some(Response::Error(e)) => Err(e.clone()),
                        Some(_) => Ok(()),
                        None => Err(ApiError::new(
                            ErrorCode::Internal,
                            "rvsd returned fewer answers than operations",
                        )),
                    })
                    .collect(),
                Ok(Response::Error(e)) => sent_idx.iter().map(|_| Err(e.clone())).collect(),
                Ok(_) if single => vec![Ok(())],
                Ok(_) => sent_idx
                    .iter()
                    .map(|_| {
                        Err(ApiError::new(
                            ErrorCode::Internal,
                            "unexpected answer from rvsd",
                        ))
                    })
                    .collect(),
                Err(e) => {
                    let m = client_error_text(&e);
                    self.eprint_line(&m);
                    return Err(Outcome::Exit(255));
                }
            };
            for (i, a) in sent_idx.into_iter().zip(answers) {
                results[i] = Some(a);
            }
        }
        for (req, res) in items.iter().zip(results) {
            match res {
                Some(Err(e)) => {
                    let m = e.ipvsadm_message(req.operation());
                    self.eprint_line(&m);
                    *last = 255;
                }
                _ => *last = 0,
            }
        }
        Ok(())
    }
}

fn unexpected(op: Operation) -> String {
    format!("unexpected answer from rvsd to {op:?}")
}

/// Connects to the daemon (or a test double).
pub type Connector<'a> = &'a mut dyn FnMut() -> Result<Box<dyn Backend>, ClientError>;

/// The whole program: parse `argv`, connect, execute; returns the exit status.
///
/// Like ipvsadm, the daemon is contacted (`GetInfo`, ipvsadm's `ipvs_init`)
/// before the arguments are judged, so an unreachable daemon is reported first;
/// `-h` and `-v` work without a daemon.
pub fn main_with(
    argv: &[String],
    connect: Connector<'_>,
    stdin: &mut dyn BufRead,
    interactive: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
    names: &Names,
) -> i32 {
    let program = program_name(argv.first().map(String::as_str));
    if crate::drain::is_drain(argv) {
        return crate::drain::run(argv, connect, err, names);
    }
    let parsed = if argv.len() <= 1 {
        Ok(Command::List(ListWhat::All, ListOpts::default()))
    } else {
        parse_with(argv, names, false)
    };
    match &parsed {
        Ok(Command::Help) => {
            let _ = out.write_all(help::usage(&program).as_bytes());
            return 0;
        }
        Ok(Command::Version) => {
            let _ = writeln!(out, "{}", help::VERSION);
            return 0;
        }
        _ => {}
    }

    let cant_init = |err: &mut dyn Write, why: &str| {
        let _ = writeln!(
            err,
            "Can't initialize ipvs: {why}\nAre you sure that IP Virtual Server is built in the kernel or as module?"
        );
        2
    };
    let mut backend = match connect() {
        Ok(b) => b,
        Err(e) => return cant_init(err, &client_error_text(&e)),
    };
    let info = match backend.call(&Request::GetInfo) {
        Ok(Response::Info(i)) => i,
        Ok(Response::Error(e)) => return cant_init(err, &e.ipvsadm_message(Operation::GetInfo)),
        Ok(_) => return cant_init(err, "unexpected answer from rvsd"),
        Err(e) => return cant_init(err, &client_error_text(&e)),
    };
    if info.version < MIN_IPVS_VERSION {
        let (a, b, c) = info.version_triple();
        let _ = write!(
            err,
            "Warning: IPVS version mismatch: \n  Kernel compiled with IPVS version {a}.{b}.{c}\n  ipvsadm v1.31  requires minimum IPVS version 1.1.4\n\n"
        );
    }

    let cmd = match parsed {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(err, "{}", e.message);
            return e.exit_code;
        }
    };
    let mut runner = Runner::new(backend.as_mut(), info, names, &program, out, err);
    runner.execute(cmd, stdin, interactive).code()
}
