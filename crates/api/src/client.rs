//! Socket addressing and the blocking client used by rvsadm.
//!
//! The daemon listens on a Linux **abstract** unix socket named `rvsd` by default.
//! Abstract sockets live in the network namespace, not the file system, so
//! `ip netns exec NS rvsadm ...` reaches the rvsd of namespace `NS` and nothing
//! needs cleaning up when the daemon dies. The environment variable
//! [`SOCKET_ENV`] (`RVS_SOCKET`) overrides it: a value starting with `@` names
//! another abstract socket, anything else is a file-system path.

use core::fmt;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};
use std::path::PathBuf;

use crate::frame::{
    FrameError, MAX_FRAME_LEN, decode_response, encode_request, read_frame, write_frame,
};
use crate::proto::{ApiError, Request, Response};

/// Name of the default abstract socket (`@rvsd`).
pub const DEFAULT_SOCKET_NAME: &str = "rvsd";

/// Environment variable overriding the socket: `@name` (abstract) or a path.
pub const SOCKET_ENV: &str = "RVS_SOCKET";

/// Where the control socket is, in a printable form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SocketSpec {
    /// Abstract socket name (without the leading `@` / NUL).
    Abstract(String),
    /// File-system socket path.
    Path(PathBuf),
}

impl SocketSpec {
    /// Parse `@name` (abstract) or a path.
    pub fn parse(s: &str) -> Self {
        match s.strip_prefix('@') {
            Some(name) => Self::Abstract(name.to_owned()),
            None => Self::Path(PathBuf::from(s)),
        }
    }

    /// The default `@rvsd`, or [`SOCKET_ENV`] when set and non-empty.
    pub fn from_env() -> Self {
        match std::env::var_os(SOCKET_ENV) {
            Some(v) if !v.is_empty() => match v.to_str() {
                Some(s) => Self::parse(s),
                None => Self::Path(PathBuf::from(v)),
            },
            _ => Self::Abstract(DEFAULT_SOCKET_NAME.to_owned()),
        }
    }

    /// Build the socket address.
    ///
    /// # Errors
    /// `InvalidInput` if the name/path is too long (108 bytes) or contains NUL.
    pub fn to_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Self::Abstract(name) => SocketAddr::from_abstract_name(name.as_bytes()),
            Self::Path(p) => SocketAddr::from_pathname(p),
        }
    }
}

impl fmt::Display for SocketSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Abstract(name) => write!(f, "@{name}"),
            Self::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The daemon's control socket address: abstract `@rvsd`, or [`SOCKET_ENV`].
///
/// If `RVS_SOCKET` holds a value that cannot form an address (a path over 107
/// bytes), the default `@rvsd` is returned; use [`SocketSpec::from_env`] and
/// [`SocketSpec::to_addr`] to report such a value as an error instead.
pub fn default_socket() -> SocketAddr {
    if let Ok(a) = SocketSpec::from_env().to_addr() {
        return a;
    }
    abstract_default()
}

fn abstract_default() -> SocketAddr {
    // A 4-byte abstract name always fits in `sun_path` (107 bytes): cannot fail.
    #[allow(clippy::expect_used, reason = "provably infallible, see above")]
    SocketAddr::from_abstract_name(DEFAULT_SOCKET_NAME.as_bytes()).expect("short abstract name")
}

/// A client error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The socket could not be reached.
    #[error("rvsd is not running (no socket {socket}): {source}")]
    Connect {
        /// The socket that was tried, printable.
        socket: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The connection broke or a frame was malformed.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The daemon's answer was not a valid response (bad JSON, other version).
    #[error("invalid response from rvsd: {0}")]
    Protocol(ApiError),
    /// The daemon closed the connection without answering.
    #[error("rvsd closed the connection without answering")]
    NoAnswer,
}

/// A blocking connection to rvsd.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
}

impl Client {
    /// Connect to the socket `spec`.
    ///
    /// # Errors
    /// [`ClientError::Connect`] naming the socket.
    pub fn connect(spec: &SocketSpec) -> Result<Self, ClientError> {
        let conn_err = |source| ClientError::Connect {
            socket: spec.to_string(),
            source,
        };
        let addr = spec.to_addr().map_err(conn_err)?;
        let stream = UnixStream::connect_addr(&addr).map_err(conn_err)?;
        Ok(Self { stream })
    }

    /// Connect to [`SocketSpec::from_env`] (`RVS_SOCKET` or `@rvsd`).
    ///
    /// # Errors
    /// [`ClientError::Connect`] naming the socket.
    pub fn connect_default() -> Result<Self, ClientError> {
        Self::connect(&SocketSpec::from_env())
    }

    /// Wrap an already connected stream (tests, socketpairs).
    pub fn from_stream(stream: UnixStream) -> Self {
        Self { stream }
    }

    /// Send one request and wait for its response.
    ///
    /// # Errors
    /// Transport failures and undecodable answers. An operation the daemon
    /// refused is **not** an error here: it is `Ok(Response::Error(..))`.
    pub fn call(&mut self, req: &Request) -> Result<Response, ClientError> {
        write_frame(&mut self.stream, &encode_request(req))?;
        let body = read_frame(&mut self.stream, MAX_FRAME_LEN)?.ok_or(ClientError::NoAnswer)?;
        decode_response(&body).map_err(ClientError::Protocol)
    }
}
