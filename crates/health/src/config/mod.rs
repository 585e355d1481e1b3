//! keepalived's configuration, as it applies to LVS.
//!
//! [`Model::load`] reads a keepalived.conf (with its `include`s) into a typed
//! [`Model`]: global LVS settings, `virtual_server_group`s, and virtual servers
//! with their real servers and checkers, every inherited default resolved.
//! [`to_api`] turns a model into the rvs-api services and destinations it
//! declares, and [`diff`] / [`diff_api`] compute the requests that move the
//! balancer from one configuration to the next.
//!
//! Contract:
//! * a file either loads completely or yields one [`ConfigError`] naming the
//!   file, line and keyword; never a panic, never a partial model;
//! * everything read but not acted upon is reported as a [`Notice`] (file,
//!   line, keyword): VRRP sections, keywords without effect here, checkers this
//!   crate does not implement. Nothing is dropped silently;
//! * every service and destination of the model passes rvs-api validation
//!   ([`rvs_api::ServiceConfig::validate`], [`rvs_api::DestConfig::validate_for`]),
//!   checked at load time against the block that declared it.
//!
//! # Precedence between the file and rvsadm
//!
//! The file is authoritative for the services it declares, and only for them:
//!
//! * a reload changes exactly what differs between the previous and the new
//!   configuration ([`diff`], [`diff_api`], and [`crate::check::Monitor::reload`]
//!   which adds health state): services and destinations identical in both are
//!   not touched, so their connections and counters stay;
//! * services that neither configuration declares are never touched: rvsadm
//!   changes to them, and services added by hand, survive every reload;
//! * an rvsadm change to a *declared* service or destination lasts until the
//!   file changes that item (the file's value is then applied) or its health
//!   state changes (the checker then rewrites its weight). A caller that wants
//!   the file to win at every reload passes the live table, restricted to the
//!   declared keys, as `old` to [`diff_api`];
//! * removed destinations are deleted at once, or, with draining
//!   ([`DiffOptions::drain`], [`crate::check::MonitorOptions::drain`]), set to
//!   weight 0 first and deleted after the drain period; a destination that comes
//!   back before then is restored in place;
//! * `lvs_flush` empties the whole table only at start
//!   ([`Globals::start_requests`]), never at reload.
//!
//! Not supported (each is an error naming the line, never a silent misreading):
//! conditional lines (`@name`), parameters (`$NAME=`), `~SEQ` expansion.

pub(crate) mod api;
mod lex;
mod parse;

use core::fmt;
use core::net::IpAddr;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rvs_api::{Family, ForwardMethod, Protocol, Timeouts, TunnelCsum, TunnelType};

pub use api::{DiffOptions, Plan, diff, diff_api, diff_with, to_api};
pub use lex::{MAX_FILE_BYTES, MAX_FILES, MAX_INCLUDE_DEPTH, MAX_NESTING, MAX_TOKENS};
pub use parse::MAX_GROUP_MEMBERS;

/// A place in a configuration file.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pos {
    /// File, as named by the caller or the `include` that pulled it in.
    pub file: Arc<Path>,
    /// Line number, from 1.
    pub line: u32,
}

impl Pos {
    /// A position in `file` at `line`.
    pub fn new(file: &Path, line: usize) -> Self {
        Self {
            file: Arc::from(file),
            line: u32::try_from(line).unwrap_or(u32::MAX),
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// Why a configuration was refused.
///
/// Displayed as `FILE:LINE: KEYWORD: reason` (without the keyword part when
/// the problem is not tied to one, e.g. an unterminated quote).
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    /// Where the problem is; `None` only when the top file itself cannot be read.
    pub pos: Option<Pos>,
    /// The keyword of the offending statement (`""` for purely lexical problems).
    pub keyword: String,
    /// What is wrong.
    #[source]
    pub kind: ErrorKind,
}

impl ConfigError {
    pub(crate) fn at(pos: &Pos, keyword: &str, kind: ErrorKind) -> Self {
        Self {
            pos: Some(pos.clone()),
            keyword: keyword.to_owned(),
            kind,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.pos {
            write!(f, "{p}: ")?;
        }
        if !self.keyword.is_empty() {
            write!(f, "{}: ", self.keyword)?;
        }
        write!(f, "{}", self.kind)
    }
}

/// The reason part of a [`ConfigError`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A file could not be read (missing, not a regular file, too large).
    /// Remedy: fix the path or permissions.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Lexical or structural problem: quotes, braces, control characters, limits.
    #[error("{0}")]
    Syntax(String),
    /// A required argument is missing.
    #[error("missing argument: expected {0}")]
    MissingArgument(String),
    /// An argument could not be parsed or is out of range.
    #[error("invalid value '{value}': expected {expected}")]
    BadValue {
        /// The text found.
        value: String,
        /// What was expected there.
        expected: String,
    },
    /// Too many arguments.
    #[error("unexpected argument '{0}'")]
    ExtraArgument(String),
    /// The keyword is not known in this block.
    #[error("unknown keyword in {0}")]
    UnknownKeyword(String),
    /// The keyword needs a `{ ... }` block.
    #[error("expected a '{{ ... }}' block")]
    MissingBlock,
    /// The keyword takes no block.
    #[error("takes no '{{ ... }}' block")]
    UnexpectedBlock,
    /// An `include` could not be processed (depth, cycle, too many files).
    #[error("{0}")]
    Include(String),
    /// The statement is well formed but inconsistent (duplicate service, flag
    /// for another scheduler, a field the control API refuses, ...).
    #[error("{0}")]
    Invalid(String),
    /// A keepalived feature this implementation refuses rather than misreads.
    #[error("not supported: {0}")]
    Unsupported(String),
}

/// Something read but not (fully) acted upon. Loading still succeeds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// Where.
    pub pos: Pos,
    /// The keyword of the statement.
    pub keyword: String,
    /// What happens to it.
    pub kind: NoticeKind,
}

/// Kinds of [`Notice`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NoticeKind {
    /// A whole section outside the LVS side (VRRP, BFD, track files, ...): skipped.
    NotHandled(String),
    /// A keyword accepted for compatibility that has no effect here.
    Ignored(String),
    /// A checker that this crate cannot run; it is disabled, so the real server's
    /// state follows its other checkers (keepalived does the same for checkers it
    /// disables, e.g. scripts refused by script security).
    CheckerDisabled(String),
    /// Accepted, but probably not what was meant.
    Warning(String),
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (tag, msg) = match &self.kind {
            NoticeKind::NotHandled(m) => ("not handled", m),
            NoticeKind::Ignored(m) => ("ignored", m),
            NoticeKind::CheckerDisabled(m) => ("checker disabled", m),
            NoticeKind::Warning(m) => ("warning", m),
        };
        write!(f, "{}: {}: {tag}: {msg}", self.pos, self.keyword)
    }
}

/// A loaded configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Model {
    /// `global_defs` settings that concern LVS.
    pub globals: Globals,
    /// `virtual_server_group`s by name, members expanded.
    pub groups: BTreeMap<String, VsGroup>,
    /// `virtual_server` blocks in file order.
    pub virtual_servers: Vec<VirtualServer>,
}

impl Model {
    /// Read `path` and its includes.
    ///
    /// # Errors
    /// The first problem found, as a [`ConfigError`] naming file, line and keyword.
    pub fn load(path: impl AsRef<Path>) -> Result<(Self, Vec<Notice>), ConfigError> {
        let path = path.as_ref();
        let mut notices = Vec::new();
        let nodes = lex::Lexer::new(&mut notices)
            .run(path, None)
            .map_err(|mut e| {
                if e.pos.is_none() {
                    e.keyword.clear();
                }
                e
            })?;
        let model = parse::model(&nodes, &mut notices)?;
        Ok((model, notices))
    }

    /// Parse `text` as if it were the file `name` (includes are resolved
    /// relative to `name`'s directory).
    ///
    /// # Errors
    /// As [`Model::load`].
    pub fn parse_str(
        name: impl AsRef<Path>,
        text: &str,
    ) -> Result<(Self, Vec<Notice>), ConfigError> {
        let mut notices = Vec::new();
        let nodes = lex::Lexer::new(&mut notices).run(name.as_ref(), Some(text))?;
        let model = parse::model(&nodes, &mut notices)?;
        Ok((model, notices))
    }
}

/// `global_defs` keywords that concern LVS.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Globals {
    /// `lvs_timeouts tcp S tcpfin S udp S` (0 = keep current), as `ipvsadm --set`.
    pub lvs_timeouts: Option<Timeouts>,
    /// `lvs_flush`: flush the whole table before applying the configuration at start.
    pub lvs_flush: bool,
    /// `lvs_flush_on_stop`: remove everything at stop (only the file's services
    /// otherwise). The optional `VS` argument is recorded as `lvs_flush_on_stop_vs`.
    pub lvs_flush_on_stop: bool,
    /// `lvs_flush_on_stop VS`: remove only the file's virtual servers at stop.
    pub lvs_flush_on_stop_vs: bool,
    /// `lvs_sync_daemon`, parsed and checked; not started by this crate (its role
    /// follows a VRRP instance, which rvs does not run).
    pub lvs_sync_daemon: Option<SyncDaemon>,
    /// `enable_script_security`: refuse scripts writable by anyone but root/us.
    pub enable_script_security: bool,
    /// `script_user USER [GROUP]`: default user for scripts.
    pub script_user: Option<String>,
}

impl Globals {
    /// Requests to apply once at start, before the services: `lvs_flush`
    /// (flush the whole table) then `lvs_timeouts` (`SetTimeouts`). Not for
    /// reloads: a reload never flushes. At stop, `lvs_flush_on_stop` asks for a
    /// [`rvs_api::Request::Flush`] instead of deleting the file's services one by one.
    pub fn start_requests(&self) -> Vec<rvs_api::Request> {
        let mut v = Vec::new();
        if self.lvs_flush {
            v.push(rvs_api::Request::Flush);
        }
        if let Some(t) = self.lvs_timeouts {
            v.push(rvs_api::Request::SetTimeouts(t));
        }
        v
    }
}

/// `lvs_sync_daemon IFACE [[inst] VRRP_INSTANCE] [id N] [maxlen N] [port N] [ttl N] [group ADDR]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncDaemon {
    /// Multicast interface.
    pub interface: String,
    /// VRRP instance whose role the daemon follows.
    pub instance: Option<String>,
    /// Sync id 0..=255.
    pub id: Option<u8>,
    /// Maximum message length 1..=65507.
    pub maxlen: Option<u16>,
    /// UDP port.
    pub port: Option<u16>,
    /// Multicast TTL.
    pub ttl: Option<u8>,
    /// Multicast group.
    pub group: Option<IpAddr>,
}

/// A `virtual_server_group` with its members expanded (at most
/// [`MAX_GROUP_MEMBERS`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VsGroup {
    /// Where it is declared.
    pub pos: Pos,
    /// Group name.
    pub name: String,
    /// Members in declaration order.
    pub members: Vec<GroupMember>,
}

/// One member of a [`VsGroup`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupMember {
    /// `IP [PORT]` (ranges and prefixes are expanded); port 0 when omitted.
    Addr {
        /// Virtual address.
        addr: IpAddr,
        /// Virtual port.
        port: u16,
    },
    /// `fwmark N [inet|inet6]`.
    Fwmark {
        /// The mark (nonzero).
        mark: u32,
        /// Family when given.
        family: Option<Family>,
    },
}

/// The header of a `virtual_server`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum VsAddr {
    /// `virtual_server IP [PORT]` (port 0 when omitted: persistent services only).
    Addr {
        /// Virtual address.
        addr: IpAddr,
        /// Virtual port.
        port: u16,
    },
    /// `virtual_server fwmark N`.
    Fwmark(u32),
    /// `virtual_server group NAME`.
    Group(String),
}

impl fmt::Display for VsAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Addr { addr, port } => match addr {
                IpAddr::V4(a) => write!(f, "{a}:{port}"),
                IpAddr::V6(a) => write!(f, "[{a}]:{port}"),
            },
            Self::Fwmark(m) => write!(f, "fwmark {m}"),
            Self::Group(g) => write!(f, "group {g}"),
        }
    }
}

/// Forwarding method with its tunnel options (`lb_kind` / `lvs_method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Method {
    /// NAT = [`ForwardMethod::Masq`], DR = [`ForwardMethod::Route`], TUN = [`ForwardMethod::Tunnel`].
    pub kind: ForwardMethod,
    /// Tunnel type (`ipip` unless TUN).
    pub tun_type: TunnelType,
    /// GUE port (0 unless `TUN type gue port N`).
    pub tun_port: u16,
    /// Tunnel checksum mode.
    pub tun_flags: TunnelCsum,
}

impl Default for Method {
    /// keepalived's default: NAT.
    fn default() -> Self {
        Self {
            kind: ForwardMethod::Masq,
            tun_type: TunnelType::Ipip,
            tun_port: 0,
            tun_flags: TunnelCsum::NoCsum,
        }
    }
}

/// Persistence granularity as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Granularity {
    /// Dotted IPv4 mask, host order (`255.255.255.0` = `0xFFFF_FF00`).
    V4Mask(u32),
    /// A prefix length (IPv6 services; converted to a mask for IPv4 ones).
    Prefix(u8),
}

/// A command line for a script (`quorum_up`, `notify_down`, ...).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Script {
    /// The command as written (split on whitespace, quotes already removed by the file syntax).
    pub command: String,
    /// `user[:group]` when given after the command.
    pub user: Option<String>,
}

/// A `virtual_server` block with defaults applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualServer {
    /// Where it is declared.
    pub pos: Pos,
    /// Header.
    pub addr: VsAddr,
    /// `protocol` (default TCP).
    pub protocol: Protocol,
    /// `lb_algo` / `lvs_sched` (default `wlc`).
    pub scheduler: String,
    /// Scheduler flag bits ([`rvs_api::svc_flags`] SCHED1..3) from `flag-N`, `sh-*`, `mh-*`.
    pub sched_flags: u32,
    /// `ops`: one-packet scheduling.
    pub ops: bool,
    /// `lb_kind` / `lvs_method` (default NAT), inherited by real servers.
    pub method: Method,
    /// `persistence_timeout` in seconds (keyword alone = 360).
    pub persistence_timeout: Option<u32>,
    /// `persistence_granularity`.
    pub persistence_granularity: Option<Granularity>,
    /// `persistence_engine` (only `sip`).
    pub persistence_engine: Option<String>,
    /// `ip_family` for fwmark services.
    pub ip_family: Option<Family>,
    /// `omega`: run `quorum_down` / `notify_down` scripts at shutdown.
    pub omega: bool,
    /// `quorum` (default 1): minimum sum of live real-server weights.
    pub quorum: u32,
    /// `hysteresis` (default 0).
    pub hysteresis: u32,
    /// `quorum_up` script.
    pub quorum_up: Option<Script>,
    /// `quorum_down` script.
    pub quorum_down: Option<Script>,
    /// `sorry_server`, with `sorry_server_inhibit` and `sorry_server_lvs_method`.
    pub sorry_server: Option<SorryServer>,
    /// Real servers in file order.
    pub real_servers: Vec<RealServer>,
}

/// The server that takes the traffic while a service is below quorum.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SorryServer {
    /// Address.
    pub addr: IpAddr,
    /// Port (`None` = the service's port).
    pub port: Option<u16>,
    /// Forwarding method (`sorry_server_lvs_method`, else the service's).
    pub method: Method,
    /// `sorry_server_inhibit`: keep it listed with weight 0 while inactive.
    pub inhibit: bool,
}

/// A `real_server` block with everything inherited resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealServer {
    /// Where it is declared.
    pub pos: Pos,
    /// Address.
    pub addr: IpAddr,
    /// Port (`None` = the service's port).
    pub port: Option<u16>,
    /// `weight` (default 1, 0..=i32::MAX).
    pub weight: i32,
    /// Forwarding method (`lvs_method` here, else the service's).
    pub method: Method,
    /// `uthreshold` (0 = none).
    pub u_threshold: u32,
    /// `lthreshold` (0 = none).
    pub l_threshold: u32,
    /// `inhibit_on_failure` (here or on the service): weight 0 instead of removal when down.
    pub inhibit_on_failure: bool,
    /// `notify_up` script.
    pub notify_up: Option<Script>,
    /// `notify_down` script.
    pub notify_down: Option<Script>,
    /// Checkers; the real server is up only when all enabled ones are.
    pub checks: Vec<Check>,
}

/// One checker block with its timing resolved (checker, else real server,
/// else virtual server, else keepalived's default).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// Where it is declared.
    pub pos: Pos,
    /// What it does.
    pub kind: CheckKind,
    /// When it runs.
    pub timing: Timing,
    /// `alpha`: the checker starts failed, so the real server starts down.
    pub alpha: bool,
    /// Connection options (not used by `MISC_CHECK`).
    pub conn: ConnOpts,
    /// Whether this crate runs it (false for `SMTP_CHECK`, `FILE_CHECK`, `BFD_CHECK`; a
    /// notice says so at load).
    pub enabled: bool,
}

/// Checker timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Timing {
    /// `delay_loop`: interval between checks (default 60 s).
    pub delay_loop: Duration,
    /// `connect_timeout`: bound on one probe (default 5 s; `misc_timeout` for scripts).
    pub connect_timeout: Duration,
    /// `retry` / `nb_get_retry`: failures tolerated before the checker goes down
    /// (default 1; DNS 3; MISC 0).
    pub retry: u32,
    /// `delay_before_retry`: interval after a tolerated failure (default 3 s for
    /// HTTP/SSL, `delay_loop` for DNS, 1 s otherwise).
    pub delay_before_retry: Duration,
    /// `warmup`: the first check runs after a random delay in `0..=warmup`
    /// (default `delay_loop`).
    pub warmup: Duration,
}

/// Connection options of a checker.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ConnOpts {
    /// `connect_ip` (default: the real server).
    pub connect_ip: Option<IpAddr>,
    /// `connect_port` (default: the real server's port).
    pub connect_port: Option<u16>,
    /// `bindto`: source address.
    pub bindto: Option<IpAddr>,
    /// `bind_port`: source port.
    pub bind_port: Option<u16>,
}

/// What a checker does.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckKind {
    /// `TCP_CHECK`: a TCP connect succeeds.
    Tcp,
    /// `HTTP_GET` (`tls: false`) or `SSL_GET` (`tls: true`).
    Http(HttpCheck),
    /// `UDP_CHECK`.
    Udp(UdpCheck),
    /// `DNS_CHECK`.
    Dns(DnsCheck),
    /// `MISC_CHECK`.
    Misc(MiscCheck),
    /// `PING_CHECK`.
    Ping,
    /// A checker type read but not implemented (`SMTP_CHECK`, `FILE_CHECK`, `BFD_CHECK`).
    Unsupported(String),
}

impl CheckKind {
    /// keepalived's block name (`TCP_CHECK`, `HTTP_GET`, ...).
    pub fn name(&self) -> &str {
        match self {
            Self::Tcp => "TCP_CHECK",
            Self::Http(h) if h.tls => "SSL_GET",
            Self::Http(_) => "HTTP_GET",
            Self::Udp(_) => "UDP_CHECK",
            Self::Dns(_) => "DNS_CHECK",
            Self::Misc(_) => "MISC_CHECK",
            Self::Ping => "PING_CHECK",
            Self::Unsupported(n) => n,
        }
    }
}

/// `HTTP_GET` / `SSL_GET`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpCheck {
    /// SSL_GET.
    pub tls: bool,
    /// `url { }` blocks; all must pass.
    pub urls: Vec<Url>,
    /// `virtualhost` for the Host header (checker, else real server, else service).
    pub virtualhost: Option<String>,
    /// `http_protocol`: request version.
    pub protocol: HttpVersion,
}

/// `http_protocol`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum HttpVersion {
    /// `1.0` (default).
    #[default]
    Http10,
    /// `1.0C`: HTTP/1.0 with `Connection: close`.
    Http10Close,
    /// `1.1` (always with `Connection: close`).
    Http11,
}

/// One `url { }` of an HTTP checker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    /// `path` (request target).
    pub path: String,
    /// `status_code` ranges (inclusive); default 200-299.
    pub status: Vec<(u16, u16)>,
    /// `digest`: MD5 of the body.
    pub digest: Option<[u8; 16]>,
    /// `virtualhost` for this URL.
    pub virtualhost: Option<String>,
}

/// `UDP_CHECK`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpCheck {
    /// `payload HEX` (empty when absent).
    pub payload: Vec<u8>,
    /// `require_reply [HEX]`: a reply is needed; with a pattern, it must match.
    pub require_reply: Option<ReplyPattern>,
    /// `min_reply_length` (default 0).
    pub min_reply_length: usize,
    /// `max_reply_length` (default 255).
    pub max_reply_length: usize,
}

/// A reply pattern: byte values under masks (`X` hex digits are wildcards).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ReplyPattern {
    /// `(value, mask)` per byte; the reply must start with these.
    pub bytes: Vec<(u8, u8)>,
}

impl ReplyPattern {
    /// Whether `reply` starts with the pattern.
    pub fn matches(&self, reply: &[u8]) -> bool {
        reply.len() >= self.bytes.len()
            && self
                .bytes
                .iter()
                .zip(reply)
                .all(|(&(v, m), &b)| b & m == v & m)
    }
}

/// `DNS_CHECK`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsCheck {
    /// `type` (default SOA).
    pub qtype: DnsType,
    /// `name` (default `.`).
    pub name: String,
}

/// DNS query types keepalived accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DnsType {
    /// A (1).
    A,
    /// NS (2).
    Ns,
    /// CNAME (5).
    Cname,
    /// SOA (6).
    Soa,
    /// MX (15).
    Mx,
    /// TXT (16).
    Txt,
    /// AAAA (28).
    Aaaa,
}

impl DnsType {
    /// Numeric RR type (RFC 1035 3.2.2, RFC 3596).
    pub const fn code(self) -> u16 {
        match self {
            Self::A => 1,
            Self::Ns => 2,
            Self::Cname => 5,
            Self::Soa => 6,
            Self::Mx => 15,
            Self::Txt => 16,
            Self::Aaaa => 28,
        }
    }
}

/// `MISC_CHECK`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MiscCheck {
    /// `misc_path` as written.
    pub command: String,
    /// The command split into program and arguments (run without a shell).
    pub argv: Vec<String>,
    /// `misc_timeout` (default `delay_loop`).
    pub timeout: Duration,
    /// `misc_dynamic`: exit 2..=255 sets the weight to `code - 2`.
    pub dynamic: bool,
    /// `user USER[:GROUP]` (else `script_user`).
    pub user: Option<String>,
}
