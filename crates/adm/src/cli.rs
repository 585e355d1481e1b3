//! The ipvsadm 1.31 command line: grammar, legality matrix, semantic checks.
//!
//! [`parse`] follows ipvsadm's `process_options` step by step so that the first
//! error reported, its wording and its exit status are ipvsadm's:
//!
//! 1. the first option must be a command, else the "Try ..." hint (exit 255);
//! 2. the remaining options in argv order, each checked as it is met
//!    (`illegal weight specified`, `multiple 'x' options specified`, a second
//!    command gives ``invalid option `-Z'``, popt errors `opt: missing argument`
//!    exit 255, ...);
//! 3. `--set` values, then any stray argument;
//! 4. `-b` scheduler flags (after all options, so `-b sh-port -s sh` works);
//! 5. the command × option legality matrix, in option-column order;
//! 6. per-command semantic rules (zero port, one-packet, DR/TUN port forcing,
//!    address family, tunnel options).

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rvs_api::{
    DEFAULT_PERSISTENT_TIMEOUT, DEFAULT_SCHEDULER, DaemonConfig, DestConfig, Family, ForwardMethod,
    MAX_SYNC_MAXLEN, MAX_TIMEOUT, PE_NAME_MAX, SCHED_NAME_MAX, ServiceConfig, ServiceKey,
    SyncState, Timeouts, TunnelCsum, TunnelType, svc_flags,
};

use crate::names::{Names, atoi, inet_aton, str_is_digit, string_to_number, truncate_bytes};
use crate::popt::{ArgKind, Event, OptDef, Popt};

/// A command-line failure: what to print on stderr and the exit status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CliError {
    /// The message, without the final newline.
    pub message: String,
    /// Exit status: 2 for validation errors, 255 for popt errors and the help hint.
    pub exit_code: i32,
    /// Whether the error ends a `-R` restore (ipvsadm `exit()`s) rather than only
    /// failing its line (popt syntax errors, which ipvsadm returns from).
    pub fatal: bool,
}

impl CliError {
    fn fail(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            exit_code: 2,
            fatal: true,
        }
    }
}

impl core::fmt::Display for CliError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// How listings are printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListOpts {
    /// `-n`: no name resolution.
    pub numeric: bool,
    /// `--stats`.
    pub stats: bool,
    /// `--rate`.
    pub rate: bool,
    /// `--thresholds`.
    pub thresholds: bool,
    /// `--persistent-conn`.
    pub persistent_conn: bool,
    /// `--nosort`.
    pub nosort: bool,
    /// `--exact`.
    pub exact: bool,
    /// `--tun-info`.
    pub tun_info: bool,
    /// `--json` (rvs extension).
    pub json: bool,
}

/// What to list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListWhat {
    /// Every service (`-L`).
    All,
    /// One service (`-L -t ...`): no version header.
    Service(ServiceKey),
    /// Connections (`-L -c`).
    Conns,
    /// `--timeout`.
    Timeouts,
    /// `--daemon`.
    Daemons,
}

/// A fully checked command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `-h`: print usage, exit 0.
    Help,
    /// `-v`: print the version, exit 0.
    Version,
    /// `-A`.
    AddService(ServiceConfig),
    /// `-E`.
    EditService(ServiceConfig),
    /// `-D`.
    DelService(ServiceKey),
    /// `-C`.
    Flush,
    /// `-a`.
    AddDest(ServiceKey, DestConfig),
    /// `-e`.
    EditDest(ServiceKey, DestConfig),
    /// `-d`.
    DelDest(ServiceKey, IpAddr, u16),
    /// `--set`.
    SetTimeouts(Timeouts),
    /// `--start-daemon`.
    StartDaemon(DaemonConfig),
    /// `--stop-daemon`.
    StopDaemon(SyncState),
    /// `-Z`.
    Zero(Option<ServiceKey>),
    /// `-L`/`-l` (or no arguments at all).
    List(ListWhat, ListOpts),
    /// `-S`.
    Save {
        /// `-n`.
        numeric: bool,
    },
    /// `-R`.
    Restore,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum O {
    AddService,
    EditService,
    DeleteService,
    Clear,
    List,
    ListL,
    Zero,
    AddServer,
    EditServer,
    DeleteServer,
    Set,
    Help,
    Version,
    Restore,
    Save,
    StartDaemon,
    StopDaemon,
    Tcp,
    Udp,
    Sctp,
    Fwmark,
    Scheduler,
    Persistent,
    Netmask,
    RealServer,
    Masq,
    Ipip,
    Gatewaying,
    Weight,
    UThreshold,
    LThreshold,
    Numeric,
    Connection,
    McastInterface,
    Syncid,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    Sort,
    Exact,
    Ipv6,
    Ops,
    Pe,
    SchedFlags,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunNocsum,
    TunCsum,
    TunRemcsum,
    Json,
}

const fn d(long: &'static str, short: Option<char>, kind: ArgKind, id: O) -> OptDef<O> {
    OptDef {
        long,
        short,
        kind,
        id,
    }
}

use ArgKind::{None as N, Optional as Opt, Required as R};

static TABLE: &[OptDef<O>] = &[
    d("add-service", Some('A'), N, O::AddService),
    d("edit-service", Some('E'), N, O::EditService),
    d("delete-service", Some('D'), N, O::DeleteService),
    d("clear", Some('C'), N, O::Clear),
    d("list", Some('L'), N, O::List),
    d("list", Some('l'), N, O::ListL),
    d("zero", Some('Z'), N, O::Zero),
    d("add-server", Some('a'), N, O::AddServer),
    d("edit-server", Some('e'), N, O::EditServer),
    d("delete-server", Some('d'), N, O::DeleteServer),
    d("set", None, N, O::Set),
    d("help", Some('h'), N, O::Help),
    d("version", Some('v'), N, O::Version),
    d("restore", Some('R'), N, O::Restore),
    d("save", Some('S'), N, O::Save),
    d("start-daemon", None, R, O::StartDaemon),
    d("stop-daemon", None, R, O::StopDaemon),
    d("tcp-service", Some('t'), R, O::Tcp),
    d("udp-service", Some('u'), R, O::Udp),
    d("sctp-service", None, R, O::Sctp),
    d("fwmark-service", Some('f'), R, O::Fwmark),
    d("scheduler", Some('s'), R, O::Scheduler),
    d("persistent", Some('p'), Opt, O::Persistent),
    d("netmask", Some('M'), R, O::Netmask),
    d("real-server", Some('r'), R, O::RealServer),
    d("masquerading", Some('m'), N, O::Masq),
    d("ipip", Some('i'), N, O::Ipip),
    d("gatewaying", Some('g'), N, O::Gatewaying),
    d("weight", Some('w'), R, O::Weight),
    d("u-threshold", Some('x'), R, O::UThreshold),
    d("l-threshold", Some('y'), R, O::LThreshold),
    d("numeric", Some('n'), N, O::Numeric),
    d("connection", Some('c'), N, O::Connection),
    d("mcast-interface", None, R, O::McastInterface),
    d("syncid", None, R, O::Syncid),
    d("timeout", None, N, O::Timeout),
    d("daemon", None, N, O::Daemon),
    d("stats", None, N, O::Stats),
    d("rate", None, N, O::Rate),
    d("thresholds", None, N, O::Thresholds),
    d("persistent-conn", None, N, O::PersistentConn),
    d("nosort", None, N, O::NoSort),
    d("sort", None, N, O::Sort),
    d("exact", Some('X'), N, O::Exact),
    d("ipv6", Some('6'), N, O::Ipv6),
    d("ops", Some('o'), N, O::Ops),
    d("pe", None, R, O::Pe),
    d("sched-flags", Some('b'), R, O::SchedFlags),
    d("mcast-group", None, R, O::McastGroup),
    d("mcast-port", None, R, O::McastPort),
    d("mcast-ttl", None, R, O::McastTtl),
    d("sync-maxlen", None, R, O::SyncMaxlen),
    d("tun-info", None, N, O::TunInfo),
    d("tun-type", None, R, O::TunType),
    d("tun-port", None, R, O::TunPort),
    d("tun-nocsum", None, N, O::TunNocsum),
    d("tun-csum", None, N, O::TunCsum),
    d("tun-remcsum", None, N, O::TunRemcsum),
    d("json", None, N, O::Json),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmd {
    Add,
    Edit,
    Del,
    Flush,
    List,
    AddDest,
    DelDest,
    EditDest,
    Timeout,
    StartDaemon,
    StopDaemon,
    Restore,
    Save,
    Zero,
}

const CMD_NAMES: [&str; 14] = [
    "add-service",
    "edit-service",
    "delete-service",
    "flush",
    "list",
    "add-server",
    "delete-server",
    "edit-server",
    "set",
    "start-daemon",
    "stop-daemon",
    "restore",
    "save",
    "zero",
];

// Option columns (ipvsadm's OPTC_*), plus rvs's --json as the last column.
const OPTC_NUMERIC: usize = 0;
const OPTC_CONNECTION: usize = 1;
const OPTC_SERVICE: usize = 2;
const OPTC_SCHEDULER: usize = 3;
const OPTC_PERSISTENT: usize = 4;
const OPTC_NETMASK: usize = 5;
const OPTC_SERVER: usize = 6;
const OPTC_FORWARD: usize = 7;
const OPTC_WEIGHT: usize = 8;
const OPTC_UTHRESHOLD: usize = 9;
const OPTC_LTHRESHOLD: usize = 10;
const OPTC_MCAST: usize = 11;
const OPTC_TIMEOUT: usize = 12;
const OPTC_DAEMON: usize = 13;
const OPTC_STATS: usize = 14;
const OPTC_RATE: usize = 15;
const OPTC_THRESHOLDS: usize = 16;
const OPTC_PERSISTENTCONN: usize = 17;
const OPTC_NOSORT: usize = 18;
const OPTC_SYNCID: usize = 19;
const OPTC_EXACT: usize = 20;
const OPTC_ONEPACKET: usize = 21;
const OPTC_PE: usize = 22;
const OPTC_SCHED_FLAGS: usize = 23;
const OPTC_MCAST_GROUP: usize = 24;
const OPTC_MCAST_PORT: usize = 25;
const OPTC_MCAST_TTL: usize = 26;
const OPTC_SYNC_MAXLEN: usize = 27;
const OPTC_TUN_INFO: usize = 28;
const OPTC_TUN_TYPE: usize = 29;
const OPTC_TUN_PORT: usize = 30;
const OPTC_TUN_NOCSUM: usize = 31;
const OPTC_TUN_CSUM: usize = 32;
const OPTC_TUN_REMCSUM: usize = 33;
const OPTC_JSON: usize = 34;
const NUMBER_OF_OPT: usize = 35;

const OPT_NAMES: [&str; NUMBER_OF_OPT] = [
    "numeric",
    "connection",
    "service-address",
    "scheduler",
    "persistent",
    "netmask",
    "real-server",
    "forwarding-method",
    "weight",
    "u-threshold",
    "l-threshold",
    "mcast-interface",
    "timeout",
    "daemon",
    "stats",
    "rate",
    "thresholds",
    "persistent-conn",
    "nosort",
    "syncid",
    "exact",
    "ops",
    "pe",
    "sched-flags",
    "mcast-group",
    "mcast-port",
    "mcast-ttl",
    "sync-maxlen",
    "tun-info",
    "tun-type",
    "tun-port",
    "tun-nocsum",
    "tun-csum",
    "tun-remcsum",
    "json",
];

/// ipvsadm's `commands_v_options` (`+` required, `x` illegal, `1` one of a group,
/// ` ` optional), one string per command, one character per option column.
const LEGALITY: [&[u8; NUMBER_OF_OPT]; 14] = [
    //  -n -c svc -s -p -M -r fwd -w -x -y mc tot dmn st rt thr pc srt sid ex ops pe -b grp port ttl size tinf type tprt nocs csum remc json
    b"xx+   xxxxxxxxxxxxxxx   xxxxxxxxxxx", // add-service
    b"xx+   xxxxxxxxxxxxxxx   xxxxxxxxxxx", // edit-service
    b"xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // delete-service
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // flush
    b" 11xxxxxxxxx11       xxxxxxx xxxxx ", // list
    b"xx+xxx+    xxxxxxxxxxxxxxxxxx     x", // add-server
    b"xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxxx", // delete-server
    b"xx+xxx+    xxxxxxxxxxxxxxxxxx     x", // edit-server
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // set
    b"xxxxxxxxxxx xxxxxxx xxxx    xxxxxxx", // start-daemon
    b"xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxxxx", // stop-daemon
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // restore
    b" xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // save
    b"xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // zero
];

/// Tunnel option columns checked per tunnel type (`tunnel_types_v_options`).
const TUN_OPTS: [usize; 4] = [
    OPTC_TUN_PORT,
    OPTC_TUN_NOCSUM,
    OPTC_TUN_CSUM,
    OPTC_TUN_REMCSUM,
];
const TUN_LEGALITY: [&[u8; 4]; 3] = [b"xxxx", b"+111", b"x11x"];

const fn cmd_index(c: Cmd) -> usize {
    match c {
        Cmd::Add => 0,
        Cmd::Edit => 1,
        Cmd::Del => 2,
        Cmd::Flush => 3,
        Cmd::List => 4,
        Cmd::AddDest => 5,
        Cmd::DelDest => 6,
        Cmd::EditDest => 7,
        Cmd::Timeout => 8,
        Cmd::StartDaemon => 9,
        Cmd::StopDaemon => 10,
        Cmd::Restore => 11,
        Cmd::Save => 12,
        Cmd::Zero => 13,
    }
}

const fn tun_index(t: TunnelType) -> usize {
    match t {
        TunnelType::Ipip => 0,
        TunnelType::Gue => 1,
        TunnelType::Gre => 2,
    }
}

/// The basename of argv\[0\], used in messages ("rvsadm" when absent).
pub fn program_name(argv0: Option<&str>) -> String {
    match argv0 {
        Some(a) if !a.is_empty() => a.rsplit('/').next().unwrap_or(a).to_owned(),
        _ => "rvsadm".to_owned(),
    }
}

/// The help hint printed (exit 255) when the first option is not a command.
pub fn try_help(program: &str) -> CliError {
    CliError {
        message: format!("Try `{program} -h' or '{program} --help' for more information."),
        exit_code: 255,
        fatal: true,
    }
}

/// Mirror of ipvsadm's `struct ipvs_command_entry` while options are parsed.
struct Ce {
    // service
    af: Option<Family>,
    proto: u16,
    addr: IpAddr,
    port: u16,
    fwmark: u32,
    sched: String,
    flags: u32,
    timeout: u32,
    netmask: u32,
    pe: String,
    // destination
    dest_af: Option<Family>,
    dest_addr: IpAddr,
    dest_port: u16,
    method: ForwardMethod,
    weight: i32,
    u_threshold: u32,
    l_threshold: u32,
    tun_type: TunnelType,
    tun_port: u16,
    tun_flags: u8,
    // daemon
    state: SyncState,
    mcast_ifn: String,
    syncid: u32,
    sync_maxlen: Option<u16>,
    mcast_group: Option<IpAddr>,
    mcast_port: Option<u16>,
    mcast_ttl: Option<u8>,
    timeouts: Timeouts,
}

impl Ce {
    fn new() -> Self {
        Self {
            af: None,
            proto: 0,
            addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 0,
            fwmark: 0,
            sched: String::new(),
            flags: 0,
            timeout: 0,
            netmask: u32::MAX,
            pe: String::new(),
            dest_af: None,
            dest_addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            dest_port: 0,
            method: ForwardMethod::Route,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            tun_type: TunnelType::Ipip,
            tun_port: 0,
            tun_flags: 0,
            state: SyncState::Master,
            mcast_ifn: String::new(),
            syncid: 0,
            sync_maxlen: None,
            mcast_group: None,
            mcast_port: None,
            mcast_ttl: None,
            timeouts: Timeouts::default(),
        }
    }

    fn service_key(&self) -> ServiceKey {
        if self.fwmark != 0 {
            ServiceKey::Fwmark {
                af: self.af.unwrap_or(Family::V4),
                mark: self.fwmark,
            }
        } else {
            ServiceKey::Addr {
                proto: rvs_api::Protocol::from_number(self.proto).unwrap_or(rvs_api::Protocol::Tcp),
                addr: self.addr,
                port: self.port,
            }
        }
    }

    fn service_config(&self) -> ServiceConfig {
        let mut cfg = ServiceConfig::new(self.service_key());
        cfg.scheduler.clone_from(&self.sched);
        cfg.flags = self.flags;
        cfg.timeout_secs = self.timeout;
        cfg.netmask = self.netmask;
        cfg.pe = (!self.pe.is_empty()).then(|| self.pe.clone());
        cfg
    }

    fn dest_config(&self) -> DestConfig {
        DestConfig {
            addr: self.dest_addr,
            port: self.dest_port,
            method: self.method,
            weight: self.weight,
            u_threshold: self.u_threshold,
            l_threshold: self.l_threshold,
            tun_type: self.tun_type,
            tun_port: self.tun_port,
            tun_flags: match self.tun_flags {
                1 => TunnelCsum::Csum,
                2 => TunnelCsum::RemCsum,
                _ => TunnelCsum::NoCsum,
            },
        }
    }
}

/// Result of ipvsadm's `parse_service`.
struct ParsedAddr {
    af: Family,
    addr: IpAddr,
    port: Option<u16>,
}

/// ipvsadm's `parse_service`: `[v6]:port`, bare IPv6, `v4-or-host[:port]`.
fn parse_service(buf: &str, proto: u16, names: &Names) -> Option<ParsedAddr> {
    if str_is_digit(buf) {
        return None;
    }
    // "[addr]:port": the brackets require a port.
    let (inner, bracket_port) = match buf.strip_prefix('[') {
        Some(rest) => {
            let (h, after) = rest.split_once(']')?;
            (h, Some(after.strip_prefix(':')?))
        }
        None => (buf, None),
    };
    let (af, addr, port_str) = if let Ok(a6) = inner.parse::<Ipv6Addr>() {
        (Family::V6, IpAddr::V6(a6), bracket_port)
    } else {
        // Not IPv6: ipvsadm splits what is inside the brackets (or the whole
        // argument) at its last ':', so a port after "[v4]" is ignored.
        let (host, port) = match inner.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (inner, None),
        };
        let a4 = inet_aton(host).or_else(|| names.host_to_v4(host))?;
        (Family::V4, IpAddr::V4(a4), port)
    };
    let port = match port_str {
        None => None,
        Some(p) => Some(match string_to_number(p, 0, 65535) {
            Some(n) => u16::try_from(n).ok()?,
            None => names.service_to_port(p, proto)?,
        }),
    };
    Some(ParsedAddr { af, addr, port })
}

fn parse_timeout(arg: Option<&str>, min: u32, max: u32) -> Result<u32, CliError> {
    let Some(buf) = arg else {
        return Ok(DEFAULT_PERSISTENT_TIMEOUT);
    };
    string_to_number(buf, i64::from(min), i64::from(max))
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| CliError::fail(format!("invalid timeout value `{buf}' specified")))
}

fn parse_fwmark(buf: &str) -> Result<u32, CliError> {
    crate::names::strtol_full(buf)
        .filter(|&l| l > 0)
        .and_then(|l| u32::try_from(l).ok())
        .ok_or_else(|| CliError::fail(format!("invalid fwmark value `{buf}' specified")))
}

fn parse_sched_flags(sched: &str, arg: &str) -> Result<u32, CliError> {
    let sched = if sched.is_empty() {
        DEFAULT_SCHEDULER
    } else {
        sched
    };
    let mut flags = 0;
    for flag in arg.split(',').filter(|f| !f.is_empty()) {
        let (bit, needs) = match flag {
            "flag-1" => (svc_flags::SCHED1, None),
            "flag-2" => (svc_flags::SCHED2, None),
            "flag-3" => (svc_flags::SCHED3, None),
            "sh-fallback" => (svc_flags::SH_FALLBACK, Some("sh")),
            "sh-port" => (svc_flags::SH_PORT, Some("sh")),
            "mh-fallback" => (svc_flags::MH_FALLBACK, Some("mh")),
            "mh-port" => (svc_flags::MH_PORT, Some("mh")),
            _ => return Err(CliError::fail(format!("invalid scheduler flag `{flag}'"))),
        };
        flags |= bit;
        if needs.is_some_and(|s| s != sched) {
            return Err(CliError::fail(format!(
                "incompatible scheduler flag `{flag}'"
            )));
        }
    }
    Ok(flags)
}

fn set_option(options: &mut u64, optc: usize) -> Result<(), CliError> {
    let bit = 1u64 << optc;
    if *options & bit != 0 {
        return Err(CliError::fail(format!(
            "multiple '{}' options specified",
            OPT_NAMES[optc]
        )));
    }
    *options |= bit;
    Ok(())
}

fn generic_opt_check(cmd: Cmd, options: u64) -> Result<(), CliError> {
    let i = cmd_index(cmd);
    let row = LEGALITY[i];
    let mut last = None;
    for (j, &rule) in row.iter().enumerate() {
        if options & (1u64 << j) == 0 {
            if rule == b'+' {
                return Err(CliError::fail(format!(
                    "You need to supply the '{}' option for the '{}' command",
                    OPT_NAMES[j], CMD_NAMES[i]
                )));
            }
        } else {
            if rule == b'x' {
                return Err(CliError::fail(format!(
                    "Illegal '{}' option with the '{}' command",
                    OPT_NAMES[j], CMD_NAMES[i]
                )));
            }
            if rule == b'1' {
                match last {
                    None => last = Some(j),
                    Some(l) => {
                        return Err(CliError::fail(format!(
                            "The option '{}' conflicts with the '{}' option in the '{}' command",
                            OPT_NAMES[j], OPT_NAMES[l], CMD_NAMES[i]
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}

fn tunnel_opt_check(tun: TunnelType, options: u64) -> Result<(), CliError> {
    let i = tun_index(tun);
    let row = TUN_LEGALITY[i];
    let mut last = None;
    for (j, &rule) in row.iter().enumerate() {
        let k = TUN_OPTS[j];
        if options & (1u64 << k) == 0 {
            if rule == b'+' {
                return Err(CliError::fail(format!(
                    "You need to supply the '{}' option for the '{}' tunnel type",
                    OPT_NAMES[k],
                    tun.name()
                )));
            }
        } else {
            if rule == b'x' {
                return Err(CliError::fail(format!(
                    "Illegal '{}' option with the '{}' tunnel type",
                    OPT_NAMES[k],
                    tun.name()
                )));
            }
            if rule == b'1' {
                match last {
                    None => last = Some(k),
                    Some(l) => {
                        return Err(CliError::fail(format!(
                            "The option '{}' conflicts with the '{}' option in the '{}' tunnel type",
                            OPT_NAMES[k],
                            OPT_NAMES[l],
                            tun.name()
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}

fn truncated(s: &str, max: usize) -> String {
    let mut s = s.to_owned();
    truncate_bytes(&mut s, max);
    s
}

/// Parse a command line (`args[0]` is the program) with the system name databases.
///
/// # Errors
/// The message and exit status ipvsadm would give.
pub fn parse(args: &[String]) -> Result<Command, CliError> {
    parse_with(args, &Names::system(), false)
}

/// Parse a command line; `reading_stdin` is true for lines of `-R` input (where
/// `-R` itself is refused with the help hint).
///
/// # Errors
/// The message and exit status ipvsadm would give.
pub fn parse_with(
    args: &[String],
    names: &Names,
    reading_stdin: bool,
) -> Result<Command, CliError> {
    let program = program_name(args.first().map(String::as_str));
    let mut p = Popt::new(TABLE, args);

    let (cmd, first_arg) = match p.next_event() {
        Event::Opt { id, arg, .. } => {
            let cmd = match id {
                O::AddService => Cmd::Add,
                O::EditService => Cmd::Edit,
                O::DeleteService => Cmd::Del,
                O::AddServer => Cmd::AddDest,
                O::EditServer => Cmd::EditDest,
                O::DeleteServer => Cmd::DelDest,
                O::Clear => Cmd::Flush,
                O::List | O::ListL => Cmd::List,
                O::Zero => Cmd::Zero,
                O::Set => Cmd::Timeout,
                O::Restore => Cmd::Restore,
                O::Save => Cmd::Save,
                O::StartDaemon => Cmd::StartDaemon,
                O::StopDaemon => Cmd::StopDaemon,
                O::Help => return Ok(Command::Help),
                O::Version => return Ok(Command::Version),
                _ => return Err(try_help(&program)),
            };
            (cmd, arg)
        }
        Event::Error { .. } | Event::End => return Err(try_help(&program)),
    };

    let mut ce = Ce::new();
    match cmd {
        Cmd::StartDaemon => {
            ce.state = match first_arg.as_deref() {
                Some("master") => SyncState::Master,
                Some("backup") => SyncState::Backup,
                _ => return Err(CliError::fail("illegal start-daemon parameter specified")),
            };
        }
        Cmd::StopDaemon => {
            ce.state = match first_arg.as_deref() {
                Some("master") => SyncState::Master,
                Some("backup") => SyncState::Backup,
                _ => return Err(CliError::fail("illegal start_daemon specified")),
            };
        }
        _ => {}
    }

    let mut options: u64 = 0;
    let mut opts = ListOpts::default();
    let mut sched_flags_arg = String::new();

    loop {
        let (id, arg, word) = match p.next_event() {
            Event::End => break,
            Event::Error { err, word } => {
                return Err(CliError {
                    message: format!("{}: {}", p.word(word), err.text()),
                    exit_code: 255,
                    fatal: false,
                });
            }
            Event::Opt { id, arg, word } => (id, arg, word),
        };
        let a = arg.as_deref().unwrap_or("");
        match id {
            O::Tcp | O::Udp | O::Sctp => {
                set_option(&mut options, OPTC_SERVICE)?;
                ce.proto = match id {
                    O::Tcp => 6,
                    O::Udp => 17,
                    _ => 132,
                };
                let parsed = parse_service(a, ce.proto, names).ok_or_else(|| {
                    CliError::fail("illegal virtual server address[:port] specified")
                })?;
                ce.af = Some(parsed.af);
                ce.addr = parsed.addr;
                if parsed.af == Family::V6 {
                    ce.netmask = 128;
                }
                if let Some(port) = parsed.port {
                    ce.port = port;
                }
            }
            O::Fwmark => {
                set_option(&mut options, OPTC_SERVICE)?;
                ce.af = Some(Family::V4);
                ce.proto = 6;
                ce.fwmark = parse_fwmark(a)?;
            }
            O::Scheduler => {
                set_option(&mut options, OPTC_SCHEDULER)?;
                ce.sched = truncated(a, SCHED_NAME_MAX);
            }
            O::Persistent => {
                set_option(&mut options, OPTC_PERSISTENT)?;
                ce.flags |= svc_flags::PERSISTENT;
                ce.timeout = parse_timeout(arg.as_deref(), 1, MAX_TIMEOUT)?;
            }
            O::Netmask => {
                set_option(&mut options, OPTC_NETMASK)?;
                if ce.af == Some(Family::V6) {
                    let n = atoi(a);
                    if !(1..=128).contains(&n) {
                        return Err(CliError::fail("illegal ipv6 netmask specified"));
                    }
                    ce.netmask = u32::try_from(n).unwrap_or(128);
                } else {
                    let m = inet_aton(a)
                        .or_else(|| names.host_to_v4(a))
                        .ok_or_else(|| {
                            CliError::fail("illegal virtual server persistent mask specified")
                        })?;
                    ce.netmask = u32::from(m);
                }
            }
            O::RealServer => {
                set_option(&mut options, OPTC_SERVER)?;
                let parsed = parse_service(a, ce.proto, names).ok_or_else(|| {
                    CliError::fail("illegal real server address[:port] specified")
                })?;
                ce.dest_af = Some(parsed.af);
                ce.dest_addr = parsed.addr;
                // No port given: copy the service port known at this point.
                ce.dest_port = parsed.port.unwrap_or(ce.port);
            }
            O::Ipip | O::Gatewaying | O::Masq => {
                set_option(&mut options, OPTC_FORWARD)?;
                ce.method = match id {
                    O::Ipip => ForwardMethod::Tunnel,
                    O::Gatewaying => ForwardMethod::Route,
                    _ => ForwardMethod::Masq,
                };
            }
            O::Weight => {
                set_option(&mut options, OPTC_WEIGHT)?;
                ce.weight = string_to_number(a, 0, i64::from(i32::MAX))
                    .and_then(|n| i32::try_from(n).ok())
                    .ok_or_else(|| CliError::fail("illegal weight specified"))?;
            }
            O::UThreshold => {
                set_option(&mut options, OPTC_UTHRESHOLD)?;
                ce.u_threshold = string_to_number(a, 0, i64::from(i32::MAX))
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| CliError::fail("illegal u_threshold specified"))?;
            }
            O::LThreshold => {
                set_option(&mut options, OPTC_LTHRESHOLD)?;
                ce.l_threshold = string_to_number(a, 0, i64::from(i32::MAX))
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| CliError::fail("illegal l_threshold specified"))?;
            }
            O::Connection => set_option(&mut options, OPTC_CONNECTION)?,
            O::Numeric => {
                set_option(&mut options, OPTC_NUMERIC)?;
                opts.numeric = true;
            }
            O::McastInterface => {
                set_option(&mut options, OPTC_MCAST)?;
                ce.mcast_ifn = truncated(a, rvs_api::IFNAME_MAX);
            }
            O::Syncid => {
                set_option(&mut options, OPTC_SYNCID)?;
                ce.syncid = string_to_number(a, 0, 255)
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| CliError::fail("illegal syncid specified"))?;
            }
            O::Timeout => set_option(&mut options, OPTC_TIMEOUT)?,
            O::Daemon => set_option(&mut options, OPTC_DAEMON)?,
            O::Stats => {
                set_option(&mut options, OPTC_STATS)?;
                opts.stats = true;
            }
            O::Rate => {
                set_option(&mut options, OPTC_RATE)?;
                opts.rate = true;
            }
            O::Thresholds => {
                set_option(&mut options, OPTC_THRESHOLDS)?;
                opts.thresholds = true;
            }
            O::PersistentConn => {
                set_option(&mut options, OPTC_PERSISTENTCONN)?;
                opts.persistent_conn = true;
            }
            O::NoSort => {
                set_option(&mut options, OPTC_NOSORT)?;
                opts.nosort = true;
            }
            O::Sort => {}
            O::Exact => {
                set_option(&mut options, OPTC_EXACT)?;
                opts.exact = true;
            }
            O::Ipv6 => {
                if ce.fwmark != 0 {
                    ce.af = Some(Family::V6);
                    ce.netmask = 128;
                } else {
                    return Err(CliError::fail("-6 used before -f\n"));
                }
            }
            O::Ops => {
                set_option(&mut options, OPTC_ONEPACKET)?;
                ce.flags |= svc_flags::ONEPACKET;
            }
            O::Pe => {
                set_option(&mut options, OPTC_PE)?;
                ce.pe = truncated(a, PE_NAME_MAX);
            }
            O::SchedFlags => {
                set_option(&mut options, OPTC_SCHED_FLAGS)?;
                sched_flags_arg = truncated(a, 127);
            }
            O::McastGroup => {
                set_option(&mut options, OPTC_MCAST_GROUP)?;
                if a.contains(':') {
                    match a.parse::<Ipv6Addr>() {
                        Ok(g) if g.is_multicast() => ce.mcast_group = Some(IpAddr::V6(g)),
                        _ => {
                            return Err(CliError::fail(format!("invalid IPv6 mcast-group `{a}'")));
                        }
                    }
                } else {
                    match a.parse::<Ipv4Addr>() {
                        Ok(g) if g.is_multicast() => ce.mcast_group = Some(IpAddr::V4(g)),
                        _ => {
                            return Err(CliError::fail(format!("invalid IPv4 mcast-group `{a}'")));
                        }
                    }
                }
            }
            O::McastPort => {
                set_option(&mut options, OPTC_MCAST_PORT)?;
                ce.mcast_port = Some(
                    string_to_number(a, 1, 65535)
                        .and_then(|n| u16::try_from(n).ok())
                        .ok_or_else(|| CliError::fail("illegal mcast-port specified"))?,
                );
            }
            O::McastTtl => {
                set_option(&mut options, OPTC_MCAST_TTL)?;
                ce.mcast_ttl = Some(
                    string_to_number(a, 1, 255)
                        .and_then(|n| u8::try_from(n).ok())
                        .ok_or_else(|| CliError::fail("illegal mcast-ttl specified"))?,
                );
            }
            O::SyncMaxlen => {
                set_option(&mut options, OPTC_SYNC_MAXLEN)?;
                ce.sync_maxlen = Some(
                    string_to_number(a, 1, i64::from(MAX_SYNC_MAXLEN))
                        .and_then(|n| u16::try_from(n).ok())
                        .ok_or_else(|| CliError::fail("illegal sync-maxlen specified"))?,
                );
            }
            O::TunInfo => {
                set_option(&mut options, OPTC_TUN_INFO)?;
                opts.tun_info = true;
            }
            O::TunType => {
                set_option(&mut options, OPTC_TUN_TYPE)?;
                ce.tun_type = match a {
                    "ipip" => TunnelType::Ipip,
                    "gue" => TunnelType::Gue,
                    "gre" => TunnelType::Gre,
                    _ => return Err(CliError::fail("illegal tunnel type specified")),
                };
            }
            O::TunPort => {
                set_option(&mut options, OPTC_TUN_PORT)?;
                ce.tun_port = string_to_number(a, 1, 65535)
                    .and_then(|n| u16::try_from(n).ok())
                    .ok_or_else(|| CliError::fail("illegal tunnel port specified"))?;
            }
            O::TunNocsum => set_option(&mut options, OPTC_TUN_NOCSUM)?,
            O::TunCsum => {
                set_option(&mut options, OPTC_TUN_CSUM)?;
                ce.tun_flags |= 1;
            }
            O::TunRemcsum => {
                set_option(&mut options, OPTC_TUN_REMCSUM)?;
                ce.tun_flags |= 2;
            }
            O::Json => {
                set_option(&mut options, OPTC_JSON)?;
                opts.json = true;
            }
            // A second command (or -h/-v after the first option).
            O::AddService
            | O::EditService
            | O::DeleteService
            | O::Clear
            | O::List
            | O::ListL
            | O::Zero
            | O::AddServer
            | O::EditServer
            | O::DeleteServer
            | O::Set
            | O::Help
            | O::Version
            | O::Restore
            | O::Save
            | O::StartDaemon
            | O::StopDaemon => {
                return Err(CliError::fail(format!("invalid option `{}'", p.word(word))));
            }
        }
    }

    let mut leftovers = p.take_leftovers().into_iter();
    if cmd == Cmd::Timeout {
        match (leftovers.next(), leftovers.next(), leftovers.next()) {
            (Some(a), Some(b), Some(c)) => {
                ce.timeouts = Timeouts {
                    tcp: parse_timeout(Some(&a), 0, MAX_TIMEOUT)?,
                    tcp_fin: parse_timeout(Some(&b), 0, MAX_TIMEOUT)?,
                    udp: parse_timeout(Some(&c), 0, MAX_TIMEOUT)?,
                };
            }
            _ => return Err(CliError::fail("--set option requires 3 timeout values")),
        }
    }
    if let Some(extra) = leftovers.next() {
        return Err(CliError::fail(format!("unexpected argument {extra}")));
    }

    if !sched_flags_arg.is_empty() {
        ce.flags &= !svc_flags::SCHED_MASK;
        ce.flags |= parse_sched_flags(&ce.sched, &sched_flags_arg)?;
    }

    generic_opt_check(cmd, options)?;

    if matches!(cmd, Cmd::Add | Cmd::Edit) {
        if ce.fwmark == 0 && ce.port == 0 && ce.flags & svc_flags::PERSISTENT == 0 {
            return Err(CliError::fail(
                "Zero port specified for non-persistent service",
            ));
        }
        if ce.flags & svc_flags::ONEPACKET != 0 && ce.fwmark == 0 && ce.proto != 17 {
            return Err(CliError::fail(
                "One-Packet Scheduling is only for UDP virtual services",
            ));
        }
        if ce.sched.is_empty() {
            DEFAULT_SCHEDULER.clone_into(&mut ce.sched);
        }
    }

    if cmd == Cmd::StartDaemon && ce.mcast_ifn.is_empty() {
        "eth0".clone_into(&mut ce.mcast_ifn);
    }

    if matches!(cmd, Cmd::AddDest | Cmd::EditDest) {
        if ce.fwmark == 0 && matches!(ce.method, ForwardMethod::Tunnel | ForwardMethod::Route) {
            ce.dest_port = ce.port;
        }
        if ce.dest_af != ce.af && ce.method != ForwardMethod::Tunnel {
            return Err(CliError::fail(
                "Different address family is allowed only for tunneling servers",
            ));
        }
        let tun_bits = (1u64 << OPTC_TUN_TYPE)
            | (1u64 << OPTC_TUN_PORT)
            | (1u64 << OPTC_TUN_NOCSUM)
            | (1u64 << OPTC_TUN_CSUM)
            | (1u64 << OPTC_TUN_REMCSUM);
        if options & tun_bits != 0 && ce.method != ForwardMethod::Tunnel {
            return Err(CliError::fail(
                "Tunnel options conflict with forward method",
            ));
        }
        tunnel_opt_check(ce.tun_type, options)?;
    }

    let has = |optc: usize| options & (1u64 << optc) != 0;
    Ok(match cmd {
        Cmd::List => {
            if ((has(OPTC_CONNECTION) || has(OPTC_TIMEOUT) || has(OPTC_DAEMON))
                && (has(OPTC_STATS) || has(OPTC_RATE) || has(OPTC_THRESHOLDS)))
                || ((has(OPTC_TIMEOUT) || has(OPTC_DAEMON)) && has(OPTC_PERSISTENTCONN))
            {
                return Err(CliError::fail("options conflicts in the list command"));
            }
            let what = if has(OPTC_CONNECTION) {
                ListWhat::Conns
            } else if has(OPTC_SERVICE) {
                ListWhat::Service(ce.service_key())
            } else if has(OPTC_TIMEOUT) {
                ListWhat::Timeouts
            } else if has(OPTC_DAEMON) {
                ListWhat::Daemons
            } else {
                ListWhat::All
            };
            Command::List(what, opts)
        }
        Cmd::Restore => {
            if reading_stdin {
                return Err(try_help(&program));
            }
            Command::Restore
        }
        Cmd::Save => Command::Save {
            numeric: opts.numeric,
        },
        Cmd::Flush => Command::Flush,
        Cmd::Add => Command::AddService(ce.service_config()),
        Cmd::Edit => Command::EditService(ce.service_config()),
        Cmd::Del => Command::DelService(ce.service_key()),
        Cmd::Zero => Command::Zero(has(OPTC_SERVICE).then(|| ce.service_key())),
        Cmd::AddDest => Command::AddDest(ce.service_key(), ce.dest_config()),
        Cmd::EditDest => Command::EditDest(ce.service_key(), ce.dest_config()),
        Cmd::DelDest => Command::DelDest(ce.service_key(), ce.dest_addr, ce.dest_port),
        Cmd::Timeout => Command::SetTimeouts(ce.timeouts),
        Cmd::StartDaemon => Command::StartDaemon(DaemonConfig {
            state: ce.state,
            mcast_ifn: ce.mcast_ifn,
            syncid: ce.syncid,
            sync_maxlen: ce.sync_maxlen,
            mcast_group: ce.mcast_group,
            mcast_port: ce.mcast_port,
            mcast_ttl: ce.mcast_ttl,
        }),
        Cmd::StopDaemon => Command::StopDaemon(ce.state),
    })
}
