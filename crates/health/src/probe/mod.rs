//! Probes: the I/O side of health checking.
//!
//! Each probe is one blocking call on std sockets or one child process, bounded
//! by a hard deadline ([`ProbeSpec::timeout`]) and by read limits, because the
//! bytes come from the checked server and are treated as hostile (keepalived had
//! a heap overflow parsing status lines, CVE-2018-19115, and slow-drip responses
//! holding checkers, keepalived#1822):
//!
//! * TCP: connect within the deadline;
//! * HTTP: connect, send `GET`, read at most [`MAX_HEADER_BYTES`] of headers and
//!   [`MAX_BODY_BYTES`] of body, all before the deadline (a server dripping a byte
//!   at a time cannot extend it); status line must be exactly `HTTP/x.y NNN`;
//!   status in the configured ranges; MD5 of the body equal to `digest`;
//! * UDP: send the payload; with `require_reply`, a reply of the configured length
//!   matching the pattern; without, a reply or silence passes and an ICMP error
//!   (seen as connection refused) fails;
//! * DNS: a query for `type`/`name` with a random id; any well-formed reply with the
//!   same id passes (RFC 1035 4.1);
//! * MISC: run the program (no shell) with a timeout; killed when it expires;
//! * SSL_GET: HTTP_GET over TLS (rustls, ring provider); SNI is the virtual host, the
//!   certificate is not verified (as in keepalived: the check is about the answer);
//! * PING: not implemented here (raw ICMP needs libc, which lives in rvs-io; rvsd's prober
//!   adds it); reports [`ProbeError::NotImplemented`].
//!
//! [`run`] dispatches a [`ProbeSpec`]; [`Prober`] lets a caller (rvsd) replace or
//! extend the implementation, e.g. with a PING probe from rvs-io.

mod dns;
mod http;
pub mod md5;
mod misc;
mod udp;

use core::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::config::{DnsType, HttpVersion, UdpCheck, Url};

pub use dns::{build_query, check_reply};
pub use http::{MAX_BODY_BYTES, MAX_HEADER_BYTES, parse_status_line};

/// One probe to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeSpec {
    /// What to do.
    pub kind: ProbeKind,
    /// Hard bound on the whole probe (connect, request, response, script run).
    pub timeout: Duration,
}

/// The kinds of probe.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProbeKind {
    /// TCP connect.
    Tcp {
        /// Where to connect.
        dst: SocketAddr,
    },
    /// HTTP GET of each URL (`tls` = SSL_GET).
    Http {
        /// Where to connect.
        dst: SocketAddr,
        /// SSL_GET.
        tls: bool,
        /// Default `Host` header (a URL's own `virtualhost` wins).
        host: String,
        /// URLs; all must pass.
        urls: Vec<Url>,
        /// Request version.
        version: HttpVersion,
    },
    /// UDP payload and optional reply check.
    Udp {
        /// Where to send.
        dst: SocketAddr,
        /// Source address/port (`bindto`, `bind_port`).
        bind: Option<SocketAddr>,
        /// Payload and reply rules.
        check: UdpCheck,
    },
    /// DNS query over UDP.
    Dns {
        /// The server.
        dst: SocketAddr,
        /// Source address/port.
        bind: Option<SocketAddr>,
        /// Query type.
        qtype: DnsType,
        /// Query name.
        name: String,
    },
    /// Run a program.
    Misc {
        /// Program and arguments (no shell).
        argv: Vec<String>,
        /// `user[:group]` to run as (needs root), from `user` or `script_user`.
        user: Option<String>,
        /// `misc_dynamic`: exit 2..=255 passes with weight `code - 2`.
        dynamic: bool,
        /// `enable_script_security`: refuse a program writable by others.
        script_security: bool,
    },
    /// ICMP echo.
    Ping {
        /// The host.
        dst: IpAddr,
    },
    /// A checker this crate does not implement.
    Unsupported {
        /// Its keepalived name.
        name: String,
    },
}

impl ProbeKind {
    /// Short name for logs (`tcp`, `http`, ...).
    pub fn name(&self) -> &str {
        match self {
            Self::Tcp { .. } => "tcp",
            Self::Http { tls: false, .. } => "http",
            Self::Http { tls: true, .. } => "ssl",
            Self::Udp { .. } => "udp",
            Self::Dns { .. } => "dns",
            Self::Misc { .. } => "misc",
            Self::Ping { .. } => "ping",
            Self::Unsupported { name } => name,
        }
    }
}

/// Result of one probe.
#[derive(Debug)]
pub enum Outcome {
    /// The check passed.
    Pass,
    /// The check passed and sets the real server's weight (`misc_dynamic` exit 2..=255).
    Weight(i32),
    /// The check failed.
    Fail(ProbeError),
}

impl Outcome {
    /// Whether the check passed.
    pub const fn passed(&self) -> bool {
        !matches!(self, Self::Fail(_))
    }
}

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// Connecting failed (refused, unreachable, ...).
    #[error("connect to {addr} failed: {source}")]
    Connect {
        /// Target.
        addr: SocketAddr,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// The deadline passed.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// Reading or writing failed after connecting.
    #[error("i/o error: {0}")]
    Io(#[source] std::io::Error),
    /// The status line is not `HTTP/x.y NNN ...`.
    #[error("malformed HTTP status line")]
    BadStatusLine,
    /// The response headers are larger than [`MAX_HEADER_BYTES`] or malformed.
    #[error("malformed or oversized HTTP headers")]
    BadHeaders,
    /// The status code is not in the configured ranges.
    #[error("HTTP status {0} not accepted")]
    Status(u16),
    /// The body is larger than [`MAX_BODY_BYTES`].
    #[error("HTTP body larger than {0} bytes")]
    BodyTooLarge(usize),
    /// The body's MD5 differs from `digest`.
    #[error("body digest {got} differs from {expected}")]
    Digest {
        /// Configured digest (hex).
        expected: String,
        /// Computed digest (hex).
        got: String,
    },
    /// No reply where one was required.
    #[error("no reply")]
    NoReply,
    /// A reply that does not satisfy the check.
    #[error("bad reply: {0}")]
    BadReply(String),
    /// The program exited with a failing status.
    #[error("exited with status {0}")]
    Exit(i32),
    /// The program was killed by a signal.
    #[error("killed by signal {0}")]
    Signal(i32),
    /// The program could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// Program path.
        program: String,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// Script security refused the program.
    #[error("script refused: {0}")]
    Refused(String),
    /// The probe kind is not implemented by this prober.
    #[error("{0} is not implemented here")]
    NotImplemented(String),
}

/// Something that runs probes; [`StdProber`] is this crate's.
///
/// The runner calls [`Prober::probe`] from worker threads, so implementations
/// must be `Send + Sync` and must return by the spec's timeout (plus a small
/// margin; the state machine counts a probe still running a second after its
/// timeout as failed).
pub trait Prober: Send + Sync {
    /// Whether this prober implements `kind` (checkers it does not are
    /// disabled at start with a notice instead of failing forever).
    fn supports(&self, kind: &ProbeKind) -> bool;
    /// Run one probe.
    fn probe(&self, spec: &ProbeSpec) -> Outcome;
}

/// The std-only prober (TLS by rustls): everything but PING.
#[derive(Clone, Copy, Debug, Default)]
pub struct StdProber;

impl Prober for StdProber {
    fn supports(&self, kind: &ProbeKind) -> bool {
        !matches!(kind, ProbeKind::Ping { .. } | ProbeKind::Unsupported { .. })
    }

    fn probe(&self, spec: &ProbeSpec) -> Outcome {
        run(spec)
    }
}

/// Run one probe with [`StdProber`]'s implementation.
pub fn run(spec: &ProbeSpec) -> Outcome {
    let deadline = Instant::now() + spec.timeout;
    let r = match &spec.kind {
        ProbeKind::Tcp { dst } => tcp(*dst, deadline).map(|_| Outcome::Pass),
        ProbeKind::Http {
            dst,
            tls,
            host,
            urls,
            version,
        } => http::check(*dst, *tls, host, urls, *version, deadline).map(|()| Outcome::Pass),
        ProbeKind::Udp { dst, bind, check } => {
            udp::check(*dst, *bind, check, deadline).map(|()| Outcome::Pass)
        }
        ProbeKind::Dns {
            dst,
            bind,
            qtype,
            name,
        } => dns::check(*dst, *bind, *qtype, name, deadline).map(|()| Outcome::Pass),
        ProbeKind::Misc {
            argv,
            user,
            dynamic,
            script_security,
        } => misc::run(argv, user.as_deref(), *dynamic, *script_security, deadline),
        ProbeKind::Ping { .. } => Err(ProbeError::NotImplemented(
            "PING_CHECK (raw ICMP lives in rvs-io; rvsd's prober provides it)".to_owned(),
        )),
        ProbeKind::Unsupported { name } => Err(ProbeError::NotImplemented(name.clone())),
    };
    r.unwrap_or_else(Outcome::Fail)
}

/// Run a notification script (`quorum_up`, `notify_down`, ... carried by
/// [`crate::check::Notify`]) the way MISC_CHECK runs its program: split on
/// whitespace, no shell, as `script.user` when given, killed at `timeout`.
/// `script_security` refuses a program writable by others.
pub fn run_script(
    script: &crate::config::Script,
    script_security: bool,
    timeout: Duration,
) -> Outcome {
    let argv: Vec<String> = script
        .command
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let deadline = Instant::now() + timeout;
    misc::run(
        &argv,
        script.user.as_deref(),
        false,
        script_security,
        deadline,
    )
    .unwrap_or_else(Outcome::Fail)
}

/// Time left before `deadline`, or a timeout error.
pub(crate) fn left(deadline: Instant, total: Duration) -> Result<Duration, ProbeError> {
    let now = Instant::now();
    if now >= deadline {
        return Err(ProbeError::Timeout(total));
    }
    // std refuses a zero timeout; never ask for less than a microsecond.
    Ok((deadline - now).max(Duration::from_micros(1)))
}

/// TCP connect with the deadline as timeout.
pub(crate) fn tcp(dst: SocketAddr, deadline: Instant) -> Result<std::net::TcpStream, ProbeError> {
    let total = deadline.saturating_duration_since(Instant::now());
    let t = left(deadline, total)?;
    std::net::TcpStream::connect_timeout(&dst, t).map_err(|e| {
        if e.kind() == std::io::ErrorKind::TimedOut || e.kind() == std::io::ErrorKind::WouldBlock {
            ProbeError::Timeout(total)
        } else {
            ProbeError::Connect {
                addr: dst,
                source: e,
            }
        }
    })
}

/// Map an I/O error during a read/write to timeout or I/O failure.
pub(crate) fn io_err(e: std::io::Error, total: Duration) -> ProbeError {
    match e.kind() {
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => ProbeError::Timeout(total),
        _ => ProbeError::Io(e),
    }
}
