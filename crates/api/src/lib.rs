//! rvs-api: the versioned control protocol between `rvsd` and `rvsadm`.
//!
//! This crate owns the wire contract and nothing else: it holds no state, runs
//! no scheduler and does no packet I/O. It provides
//!
//! * the data model mirroring IPVS ([`ServiceKey`], [`ServiceConfig`],
//!   [`DestConfig`], listings such as [`ServiceEntry`] and [`ConnEntry`]);
//! * [`Request`] / [`Response`] with [`ErrorCode`]s that carry the kernel errno
//!   ipvsadm would have seen, and [`ErrorCode::ipvsadm_message`] giving
//!   ipvsadm's exact wording per operation;
//! * [`Request::validate`], run by [`decode_request`] on every decoded request;
//! * framing ([`read_frame`], [`write_frame`]: `u32` big-endian length + JSON body
//!   `{"version":1,...}`, at most [`MAX_FRAME_LEN`] bytes) and a tiny server loop
//!   ([`serve_connection`]);
//! * addressing ([`default_socket`]: abstract unix socket `@rvsd`, per network
//!   namespace, overridable with `RVS_SOCKET`) and a blocking [`Client`].
//!
//! Peer-credential checks (`SO_PEERCRED`) are the daemon's; it answers a refused
//! caller with [`ErrorCode::Perm`].
//!
//! ```
//! use rvs_api::{decode_request, encode_request, Protocol, Request, ServiceConfig, ServiceKey};
//! let key = ServiceKey::Addr { proto: Protocol::Tcp, addr: "10.0.0.1".parse().unwrap(), port: 80 };
//! let req = Request::AddService(ServiceConfig::new(key));
//! let body = encode_request(&req);
//! assert_eq!(decode_request(&body).unwrap(), req);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod frame;
mod model;
mod proto;
mod validate;

pub use client::{
    Client, ClientError, DEFAULT_SOCKET_NAME, SOCKET_ENV, SocketSpec, default_socket,
};
pub use frame::{
    FrameError, MAX_FRAME_LEN, PROTOCOL_VERSION, decode_request, decode_response, encode_request,
    encode_response, read_frame, serve_connection, write_frame,
};
pub use model::{
    ConnEntry, DEFAULT_PERSISTENT_TIMEOUT, DEFAULT_SCHEDULER, DaemonConfig, DestConfig, DestEntry,
    Family, ForwardMethod, IFNAME_MAX, IPVS_VERSION, Info, MAX_SYNC_MAXLEN, MAX_TIMEOUT,
    PE_NAME_MAX, Protocol, Rates, SCHED_NAME_MAX, ServiceConfig, ServiceEntry, ServiceKey, Stats,
    SyncState, Timeouts, TunnelCsum, TunnelType, default_netmask, netmask_v4, svc_flags,
};
pub use proto::{ApiError, ErrorCode, Operation, Request, Response};
pub use validate::MAX_BATCH_LEN;
