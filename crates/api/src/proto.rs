//! Requests, responses and error codes of the control protocol.

use core::fmt;
use core::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::model::{
    ConnEntry, DaemonConfig, DestConfig, Info, ServiceConfig, ServiceEntry, ServiceKey, SyncState,
    Timeouts,
};

/// One control operation.
///
/// Serialised adjacently tagged: `{"op":"add_service","args":{...}}`; operations
/// without arguments are `{"op":"flush"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "op",
    content = "args",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum Request {
    /// Add a virtual service (`-A`). Errors: `Exists`, `SchedNotFound`.
    AddService(ServiceConfig),
    /// Replace a service's settings (`-E`). Errors: `NoService`, `SchedNotFound`.
    EditService(ServiceConfig),
    /// Delete a service and its destinations (`-D`). Errors: `NoService`.
    DelService(ServiceKey),
    /// Delete every service (`-C`).
    Flush,
    /// Add a destination (`-a`). Errors: `NoService`, `Exists`, `Range` (l > u), `Inval`.
    AddDest {
        /// Service the destination belongs to.
        service: ServiceKey,
        /// Destination settings.
        dest: DestConfig,
    },
    /// Replace a destination's settings (`-e`). Errors: `NoService`, `NotFound`, `Range`.
    EditDest {
        /// Service the destination belongs to.
        service: ServiceKey,
        /// Destination settings (address and port select the destination).
        dest: DestConfig,
    },
    /// Delete a destination (`-d`). Errors: `NoService`, `NotFound`.
    DelDest {
        /// Service the destination belongs to.
        service: ServiceKey,
        /// Destination address.
        addr: IpAddr,
        /// Destination port.
        port: u16,
    },
    /// Set protocol timeouts (`--set`); a 0 field keeps the current value.
    SetTimeouts(Timeouts),
    /// Start a sync daemon. Errors: `Exists` (already running), `Inval`.
    StartDaemon(DaemonConfig),
    /// Stop a sync daemon. Errors: `NoService` (ESRCH: none running).
    StopDaemon(SyncState),
    /// Zero counters of one service (with its destinations), or of everything with `None`.
    Zero(Option<ServiceKey>),
    /// Global information, answered with [`Response::Info`].
    GetInfo,
    /// Every service with its destinations, answered with [`Response::Services`].
    GetServices,
    /// One service, answered with [`Response::Service`]. Errors: `NoService`.
    GetService(ServiceKey),
    /// Protocol timeouts, answered with [`Response::Timeouts`].
    GetTimeouts,
    /// Running sync daemons (master first), answered with [`Response::Daemons`].
    GetDaemons,
    /// The connection table, answered with [`Response::Conns`].
    GetConns,
    /// Several operations in one round trip, answered with [`Response::Batch`].
    ///
    /// Operations run in order; each gets its own response and a failing operation
    /// does not stop the ones after it (ipvsadm `-R` semantics). Nested batches and
    /// batches longer than [`crate::MAX_BATCH_LEN`] are refused by validation.
    Batch(Vec<Request>),
}

impl Request {
    /// The operation this request performs, for error-message selection.
    pub const fn operation(&self) -> Operation {
        match self {
            Self::AddService(_) => Operation::AddService,
            Self::EditService(_) => Operation::EditService,
            Self::DelService(_) => Operation::DelService,
            Self::Flush => Operation::Flush,
            Self::AddDest { .. } => Operation::AddDest,
            Self::EditDest { .. } => Operation::EditDest,
            Self::DelDest { .. } => Operation::DelDest,
            Self::SetTimeouts(_) => Operation::SetTimeouts,
            Self::StartDaemon(_) => Operation::StartDaemon,
            Self::StopDaemon(_) => Operation::StopDaemon,
            Self::Zero(_) => Operation::Zero,
            Self::GetInfo => Operation::GetInfo,
            Self::GetServices => Operation::GetServices,
            Self::GetService(_) => Operation::GetService,
            Self::GetTimeouts => Operation::GetTimeouts,
            Self::GetDaemons => Operation::GetDaemons,
            Self::GetConns => Operation::GetConns,
            Self::Batch(_) => Operation::Batch,
        }
    }

    /// Whether the request changes state (everything but the `Get*` queries).
    pub fn is_mutation(&self) -> bool {
        match self {
            Self::GetInfo
            | Self::GetServices
            | Self::GetService(_)
            | Self::GetTimeouts
            | Self::GetDaemons
            | Self::GetConns => false,
            Self::Batch(v) => v.iter().any(Self::is_mutation),
            _ => true,
        }
    }
}

/// Answer to one [`Request`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    content = "data",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum Response {
    /// The operation succeeded.
    Ok,
    /// The operation failed; nothing was changed by it.
    Error(ApiError),
    /// Answer to [`Request::GetInfo`].
    Info(Info),
    /// Answer to [`Request::GetServices`], in kernel (unsorted) order.
    Services(Vec<ServiceEntry>),
    /// Answer to [`Request::GetService`].
    Service(ServiceEntry),
    /// Answer to [`Request::GetTimeouts`].
    Timeouts(Timeouts),
    /// Answer to [`Request::GetDaemons`]: running daemons, master first.
    Daemons(Vec<DaemonConfig>),
    /// Answer to [`Request::GetConns`].
    Conns(Vec<ConnEntry>),
    /// Answer to [`Request::Batch`]: one response per operation, same order.
    Batch(Vec<Response>),
}

impl Response {
    /// Shorthand for an error response.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error(ApiError::new(code, message))
    }
}

/// The operation an error happened in; selects ipvsadm's wording (spec 2.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `-A`.
    AddService,
    /// `-E`.
    EditService,
    /// `-D`.
    DelService,
    /// `-C`.
    Flush,
    /// `-a`.
    AddDest,
    /// `-e`.
    EditDest,
    /// `-d`.
    DelDest,
    /// `--set`.
    SetTimeouts,
    /// `--start-daemon`.
    StartDaemon,
    /// `--stop-daemon`.
    StopDaemon,
    /// `-Z`.
    Zero,
    /// Version/info query.
    GetInfo,
    /// Listing of all services.
    GetServices,
    /// Listing of one service.
    GetService,
    /// `--timeout`.
    GetTimeouts,
    /// `--daemon`.
    GetDaemons,
    /// `-c`.
    GetConns,
    /// A batch as a whole.
    Batch,
}

/// Error category. Kernel-like codes carry the errno that IPVS would return, so
/// rvsadm prints exactly what ipvsadm prints for it ([`ErrorCode::ipvsadm_message`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// `EEXIST`: service/destination exists, daemon already running.
    Exists,
    /// `ENOENT`: no such destination.
    NotFound,
    /// `ENOENT`: scheduler or persistence engine not found (add/edit service).
    SchedNotFound,
    /// `ESRCH`: no such service (or no such daemon for stop).
    NoService,
    /// `EPERM`: caller not allowed (peer-credential check failed).
    Perm,
    /// `EINVAL`: invalid argument (any field failing validation, address not unicast, ...).
    Inval,
    /// `ERANGE`: value out of range (negative weight, `l_threshold > u_threshold`).
    Range,
    /// `ENOMEM`: resource exhaustion.
    NoMem,
    /// `ENOPROTOOPT`.
    NoProtoOpt,
    /// `EOPNOTSUPP`.
    NotSupported,
    /// `EAFNOSUPPORT`: address family not supported.
    AfNotSupported,
    /// `EMSGSIZE`.
    MsgSize,
    /// `EBUSY`.
    Busy,
    /// `ENODEV`: no such device (sync daemon interface).
    NoDevice,
    /// The frame could not be decoded (bad JSON, unknown field, wrong type).
    BadRequest,
    /// The frame's `version` is not [`crate::PROTOCOL_VERSION`].
    UnsupportedVersion,
    /// The frame exceeds [`crate::MAX_FRAME_LEN`].
    TooLarge,
    /// The daemon hit an internal error.
    Internal,
}

impl ErrorCode {
    /// The Linux errno this code stands for, if it is a kernel-like code.
    pub const fn errno(self) -> Option<i32> {
        Some(match self {
            Self::Perm => 1,
            Self::NotFound | Self::SchedNotFound => 2,
            Self::NoService => 3,
            Self::NoMem => 12,
            Self::Busy => 16,
            Self::Exists => 17,
            Self::NoDevice => 19,
            Self::Inval => 22,
            Self::Range => 34,
            Self::MsgSize => 90,
            Self::NoProtoOpt => 92,
            Self::NotSupported => 95,
            Self::AfNotSupported => 97,
            Self::BadRequest | Self::UnsupportedVersion | Self::TooLarge | Self::Internal => {
                return None;
            }
        })
    }

    /// The message ipvsadm 1.31 prints for this error in `op` (`ipvs_strerror`,
    /// spec 2.8), falling back to glibc's `strerror` text. `None` for the
    /// protocol-level codes, whose text is the [`ApiError::message`].
    pub fn ipvsadm_message(self, op: Operation) -> Option<&'static str> {
        use Operation as O;
        let errno = self.errno()?;
        let specific = match (errno, op) {
            (17, O::AddService) => Some("Service already exists"),
            (2, O::AddService | O::EditService) => {
                Some("Scheduler or persistence engine not found")
            }
            (3, O::EditService | O::DelService | O::Zero) => Some("No such service"),
            (3, O::AddDest | O::EditDest | O::DelDest) => Some("Service not defined"),
            (17, O::AddDest) => Some("Destination already exists"),
            (2, O::EditDest | O::DelDest) => Some("No such destination"),
            (17, O::StartDaemon) => Some("Daemon has already run"),
            (3, O::StopDaemon) => Some("No daemon is running"),
            (3, O::GetServices | O::GetService) => Some("No such service"),
            _ => None,
        };
        if specific.is_some() {
            return specific;
        }
        Some(match errno {
            1 => "Permission denied (you must be root)",
            22 => "Invalid operation.  Possibly wrong module version, address not unicast, ...",
            92 => "Protocol not available",
            12 => "Memory allocation problem",
            95 => "Operation not supported with IPv6",
            97 => "Operation not supported with specified address family",
            90 => "Module is wrong version",
            2 => "No such file or directory",
            3 => "No such process",
            16 => "Device or resource busy",
            17 => "File exists",
            19 => "No such device",
            34 => "Numerical result out of range",
            _ => "Unknown error",
        })
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Self::Exists => "exists",
            Self::NotFound => "not_found",
            Self::SchedNotFound => "sched_not_found",
            Self::NoService => "no_service",
            Self::Perm => "perm",
            Self::Inval => "inval",
            Self::Range => "range",
            Self::NoMem => "no_mem",
            Self::NoProtoOpt => "no_proto_opt",
            Self::NotSupported => "not_supported",
            Self::AfNotSupported => "af_not_supported",
            Self::MsgSize => "msg_size",
            Self::Busy => "busy",
            Self::NoDevice => "no_device",
            Self::BadRequest => "bad_request",
            Self::UnsupportedVersion => "unsupported_version",
            Self::TooLarge => "too_large",
            Self::Internal => "internal",
        };
        f.write_str(s)
    }
}

/// An error answer: a machine-readable code plus a human-readable detail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(deny_unknown_fields)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// Category (maps to the kernel errno where one exists).
    pub code: ErrorCode,
    /// Detail for logs and `--json`; rvsadm prints ipvsadm's fixed text instead
    /// for kernel-like codes.
    pub message: String,
}

impl ApiError {
    /// Build an error.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// What ipvsadm would print for this error in `op` (the fixed text for
    /// kernel-like codes, else the detail message).
    pub fn ipvsadm_message(&self, op: Operation) -> String {
        match self.code.ipvsadm_message(op) {
            Some(m) => m.to_owned(),
            None => self.message.clone(),
        }
    }
}
