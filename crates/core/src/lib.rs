//! The rvs packet core: virtual services, connection tracking, scheduling and the NAT, DR
//! and TUN rewrites of Linux Virtual Server, as a deterministic state machine.
//!
//! What this crate does not do: no sockets, no threads, no clock, no routing or neighbour
//! resolution. The caller owns frames, time and interfaces. It hands a received frame to
//! [`Balancer::process`] with the current [`Instant`](time::Instant) and gets back an [`Action`]: forward
//! the (rewritten) frame toward a next-hop address, pass it to the host stack, or drop it
//! with a [`DropReason`] that indexes a counter. Timers run when the caller calls
//! [`Balancer::handle_timeout`] by the deadline [`Balancer::poll_timeout`] gives.
//!
//! A busy data path hands over what it received at once, [`BATCH`] frames or so, to
//! [`Balancer::process_batch`]: same decisions and same output bytes as one
//! [`Balancer::process`] call per frame, but the connection-table reads of the whole batch
//! are issued together so their cache misses overlap (several times the throughput with
//! a million connections).
//!
//! Memory: about 120 bytes per tracked connection (96-byte entry, 8.5 bytes of index, wheel
//! and eviction-queue references), about 17 more for NAT entries (the reply index). The
//! tables are large and randomly accessed: a daemon should back them with huge pages
//! (transparent huge pages in `madvise` mode need the allocation advised, e.g. by an
//! allocator that calls `madvise(MADV_HUGEPAGE)` on large blocks).
//!
//! Layering: `rvs-wire` (headers, checksums) and `rvs-sched` (IPVS schedulers) below; the
//! daemon (`rvsd`) above, which owns packet I/O, resolves next hops to MAC addresses and
//! translates control requests into [`Balancer`] control calls.
//!
//! ```
//! use rvs_core::{Balancer, Config, ServiceConfig, ServiceKey, Protocol, DestConfig, ForwardMethod};
//! use rvs_core::time::Instant;
//! use rvs_sched::{SchedKind, SchedFlags};
//!
//! let now = Instant::ZERO;
//! let mut lb = Balancer::new(Config::default(), now);
//! let key = ServiceKey::Addr { proto: Protocol::Tcp, addr: "198.18.0.100".parse().unwrap(), port: 80 };
//! lb.add_service(ServiceConfig { key, scheduler: SchedKind::Rr, sched_flags: SchedFlags::NONE,
//!     persistence: None, one_packet: false }, now).unwrap();
//! let mut rs = DestConfig::new("198.19.0.2".parse().unwrap(), 80);
//! rs.method = ForwardMethod::Masq;
//! lb.add_dest(&key, rs).unwrap();
//! assert_eq!(lb.services().len(), 1);
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod addr;
mod balancer;
mod conn;
mod hash;
mod icmp;
mod index;
pub mod offload;
mod packet;
pub mod proto;
mod service;
pub mod stats;
pub mod time;
mod view;
mod xmit;

pub use balancer::{
    Action, BATCH, Balancer, Config, Counters, DropReason, Egress, FrameBuf, RxMeta,
};
pub use offload::{ConnId, FlowMatch, OffloadDir, OffloadEvent, OffloadFlow, OffloadRewrite};
pub use service::{
    ControlError, DestConfig, ForwardMethod, Persistence, Protocol, ServiceConfig, ServiceKey,
    TunnelCsum, TunnelType,
};
pub use view::{ConnInfo, DestInfo, ServiceInfo};
