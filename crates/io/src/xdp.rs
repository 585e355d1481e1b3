//! AF_XDP I/O: the fast path beside [`crate::packet`], with the same shape.
//!
//! # What it does
//!
//! [`XdpSocket::open`] puts a small XDP program (`bpf/steer.c`) on an interface and binds an
//! AF_XDP socket to one of its receive queues. The program looks at every frame before the
//! kernel's stack does and *moves* to the socket only the frames that belong to the
//! balancer: those whose destination is a virtual service, and NAT replies whose source is
//! a real server ([`SteerRule`], replaced as a whole by [`XdpSocket::set_rules`]).
//! Everything else passes to the kernel untouched: ARP, IPv6 neighbour discovery (always,
//! whatever the rules), SSH, health-check replies, the host's own traffic. So unlike
//! AF_PACKET there is no copy left for the kernel to answer, and no nftables drop rule
//! ([`crate::nft`]) is needed for steered traffic.
//!
//! The socket then works like a [`crate::packet::PacketSocket`]:
//!
//! 1. [`XdpSocket::recv_batch`] waits up to a timeout, then calls back once per received
//!    frame with its bytes (Ethernet header first) and an [`RxInfo`]. The frame borrows the
//!    UMEM; it goes back to the kernel when the callback returns.
//! 2. [`XdpSocket::send_batch`] copies frames into transmit frames of the UMEM, hands them
//!    to the kernel, and wakes it with `sendto(2)`; finished frames are reaped from the
//!    completion ring on the next call.
//! 3. [`AsRawFd`] gives the socket's descriptor for `poll(2)` ([`crate::poll`]): readable
//!    when frames wait. `recv_batch` with a zero timeout never blocks and makes no syscall
//!    when nothing waits, so a busy-polling loop may call it back to back.
//!
//! Dropping the socket detaches the program (the kernel gets every frame again), then
//! closes the socket and unmaps its memory.
//!
//! # In-kernel fast path for established flows
//!
//! The same program also forwards established connections itself, before any steering
//! (Katran's model): user space installs one entry per connection and direction in a flow
//! table ([`XdpProgram::flow_insert`]: [`FlowKey`] → [`FlowEntry`]), and a matching packet
//! is rewritten and sent straight back out (`XDP_TX` when the egress is the receiving
//! interface, else `bpf_redirect`). The table is two maps: IPv4 flows whose rewrite fits
//! (DR, IPv4 NAT, IP-in-IP with an IPv4 outer header) go to an array of 32-byte slots
//! (`rvs_ftab`: key, counter and an index into `rvs_ftab_targets`, the rewrites that flows
//! share; written by this process through shared mappings under a sequence lock, probed
//! over an aligned bucket of 4 slots picked by a hash of the 4-tuple) while their bucket
//! and the targets have room; the others, and the overflow, to the hash map `rvs_flows`,
//! looked up next. A flow
//! is in one of them only. [`XdpProgram::attach`] gives the program without an
//! AF_XDP socket, for the AF_PACKET backend; an [`XdpSocket`] has one inside
//! ([`XdpSocket::program`]).
//!
//! What the kernel forwards: untagged Ethernet frames with IPv4 (no options, not a
//! fragment, valid header checksum) or IPv6 (no extension header), TCP or UDP, whose
//! 5-tuple has an entry. Every rewrite decrements the TTL / hop limit (IPv4 checksum fixed
//! incrementally), trims Ethernet padding and sets the entry's MAC addresses; then
//! [`FlowRewrite::Route`] (DR) stops there, [`FlowRewrite::Dnat`] / [`FlowRewrite::Snat`]
//! rewrite the destination / source address and port with incremental checksum updates,
//! and [`FlowRewrite::Ipip`] adds an IPv4 or IPv6 outer header (RFC 6040 ECN, DF copied
//! from the inner packet with `copy_df`). The bytes are exactly rvs-core's for the same
//! packet (the IPv4 outer identification aside: the program counts its own, per CPU); the
//! tests compare them with `BPF_PROG_TEST_RUN`.
//!
//! What always goes to user space (unmodified, through the steering as before), and why:
//! TCP segments with SYN, FIN or RST (the connection state machine and its timers live in
//! rvs-core), packets with TTL <= 1 (ICMP time exceeded), packets whose IP length exceeds
//! the entry's `max_len` (fragmentation needed / packet too big), and every frame the
//! parser does not take: VLAN-tagged, IPv4 options or fragments, a bad IPv4 header
//! checksum (rvs-core counts the drop), IPv6 extension headers, other protocols, and
//! truncated or inconsistent lengths. So user space still sees each connection's
//! handshake and teardown and must refresh its idle timers from the flow counters. An
//! entry is never removed by the kernel: remove it when rvs-core expires the connection
//! ([`XdpProgram::flow_remove`]).
//!
//! Counters: [`XdpProgram::flow_counter`] gives packets and IP bytes (as received, before
//! encapsulation) per counter slot, read from a shared mapping of the `BPF_F_MMAPABLE`
//! array (no syscall), after folding in the counts IPv4 slots keep in their own cache
//! line; [`SteerCounters`] counts the fast path's outcomes
//! (`fast_forwarded`, `fast_passed_tcp_flags`, `fast_passed_ttl`, `fast_passed_too_big`,
//! `fast_dropped` when the frame cannot be trimmed or grown: `XDP_DROP`). A frame passed
//! on is counted again by the steering.
//!
//! **veth needs NAPI on the receiving peer.** A frame sent with `XDP_TX` or redirected
//! into a veth device is delivered by the NAPI instance of the *peer* device, which exists
//! only while the peer has an XDP program attached or GRO enabled
//! (`ethtool -K PEER gro on`, kernel 5.13 and later). Without either, the kernel refuses
//! the transmission and the frame is lost although the program counted it as forwarded
//! (verified on 6.18 by `fast_tests::netns_route_is_forwarded_by_the_kernel`, which also
//! shows that either remedy works). Physical NICs need only driver support for
//! `ndo_xdp_xmit` on the egress device. Also on veth: a sender in the peer namespace with
//! transmit checksum offload leaves a partial UDP/TCP checksum, which a redirected frame
//! carries to its destination as is; turn offload off there (`ethtool -K IF tx off`).
//!
//! # Geometry
//!
//! One UMEM per socket of `rx_frames + tx_frames` frames of `frame_size` bytes ([`XdpOpts`],
//! 8 MiB by default). Receive frames live on the fill ring or in the RX ring or in the
//! callback; transmit frames on a free list, the TX ring, or the completion ring. The fill
//! and RX rings are as large as the receive frames, the TX and completion rings as the
//! transmit frames, so no ring can overflow and no frame is ever lost by the rings.
//!
//! # Differences from AF_PACKET the daemon should know
//!
//! - **Checksums**: XDP runs before checksum offload is resolved, and AF_XDP carries no
//!   checksum status, so [`RxInfo::csum_not_ready`] is always `false`. On veth, a frame
//!   sent by a local socket of the peer namespace may carry a partial checksum (pseudo-header
//!   sum only) that the sender's kernel left for offload; the bytes show it. Turn transmit
//!   checksum offload off on such peers (`ethtool -K IF tx off`) or verify leniently. Real
//!   NICs deliver complete checksums.
//! - **VLAN**: the tag is in the frame in native mode; `recv_batch` strips an outer
//!   802.1Q/802.1ad tag and reports it in [`RxInfo::vlan_tci`]/[`RxInfo::vlan_tpid`], as the
//!   kernel does for AF_PACKET. In generic mode a tag the sending device offloaded may not
//!   be visible at all.
//! - **Packet type**: [`RxInfo::pkt_type`] is derived from the destination MAC against the
//!   interface's address read at open (`PACKET_HOST`, `PACKET_BROADCAST`,
//!   `PACKET_MULTICAST`, `PACKET_OTHERHOST`).
//! - **Frame size**: a received frame larger than `frame_size` minus the kernel's 256-byte
//!   headroom (1792 bytes with the default 2048) is dropped by the kernel and counted in
//!   [`XdpStats::rx_dropped`]; there is no truncation, so `wire_len` is the slice's length.
//!   GRO super-frames do not exist before the stack.
//! - **Queues**: the socket serves one receive queue (`queue`, default 0). A matching frame
//!   that arrives on a queue without a socket passes to the kernel (counted as
//!   [`SteerCounters::passed_no_socket`]). veth has one queue by default.
//! - **Copy mode**: veth and generic XDP copy each frame into the UMEM and transmit through
//!   an skb; zero-copy needs driver support and is used when the kernel offers it.
//!
//! # Build
//!
//! The program is compiled by `build.rs` with clang (`-target bpf -O2`) and embedded.
//! Without clang the crate still builds; [`XdpSocket::open`] then fails with
//! "AF_XDP unavailable: built without clang" ([`xdp_unavailable`] says so up front).
//! After installing clang, rebuild rvs-io (`cargo clean -p rvs-io`) to get the program.
//!
//! It is built twice, with different instruction layouts (`-O2 -mcpu=v3` and
//! `-O1 -mcpu=v2`), and [`XdpSocket::open`] falls back to the second when the kernel refuses
//! the first with `ENOTSUPP` after verifying it: the x86 JIT of some kernels (seen on 6.18
//! with the ITS mitigations) fails on particular layouts of jumps ("bpf_jit: fatal error" in
//! the kernel log). A test loads both builds so that the fallback cannot rot.
//!
//! # Privileges
//!
//! Loading a program needs `CAP_BPF` + `CAP_NET_ADMIN` (or root), the socket `CAP_NET_RAW`.

#[cfg(test)]
mod fast_tests;
mod flows;
pub mod r#gen;
mod rules;
mod test_run;
#[cfg(test)]
mod tests;
mod umem;

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuArray, XskMap};
use aya::programs::{SchedClassifier, Xdp};

pub use self::flows::{DEFAULT_MAX_FLOWS, FlowEntry, FlowKey, FlowRewrite, MAX_MAX_FLOWS};
use self::flows::{FlowKeyRaw, FlowStats, FlowTab, FlowValueRaw, ftab_slots, ftab_targets};
pub use self::rules::{Proto, SteerCounters, SteerRule};
use self::rules::{SteerKey, diff, key_set, stat};
use self::umem::{BindFlags, Geometry, Xsk};
use crate::packet::{RxInfo, ifindex, mac_of, mtu_of};
use crate::{MacAddr, invalid, os_err, syscall};

/// The compiled steering program, or empty when built without clang.
static STEER_OBJ: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/steer.o"));
/// The same program compiled to another instruction layout (`-O1 -mcpu=v2`), tried when the
/// kernel's JIT refuses the first (see [`XdpProgram::load_any`]).
static STEER_OBJ_ALT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/steer-alt.o"));
/// `ENOTSUPP` (kernel-internal 524): what `BPF_PROG_LOAD` returns when the verifier accepted
/// the program but the JIT failed on it and the interpreter is compiled out.
const ENOTSUPP: i32 = 524;

/// What [`XdpSocket::open`] and [`xdp_unavailable`] say when the program was not built.
pub const BUILT_WITHOUT_CLANG: &str = "AF_XDP unavailable: built without clang";

/// Name of the program's entry point and maps in `bpf/steer.c`.
const PROG: &str = "rvs_steer";
/// The fast path alone, for the TC ingress hook ([`XdpMode::Tc`]).
const PROG_TC: &str = "rvs_tc";
const MAP_RULES: &str = "rvs_rules";
const MAP_XSKS: &str = "rvs_xsks";
const MAP_STATS: &str = "rvs_stats";
const MAP_FLOWS: &str = "rvs_flows";
const MAP_FLOW_STATS: &str = "rvs_flow_stats";
const MAP_FTAB: &str = "rvs_ftab";
const MAP_FTAB_TARGETS: &str = "rvs_ftab_targets";
/// Entries of `rvs_xsks`: the highest queue a socket may bind, plus one.
const MAX_QUEUES: u32 = 64;
/// Ethernet header, and an 802.1Q tag.
const ETH_HLEN: usize = 14;
const VLAN_HLEN: usize = 4;

/// Where the program runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum XdpMode {
    /// Native (driver) mode, falling back to generic when the driver refuses it.
    #[default]
    Auto,
    /// Native mode only: in the driver, before any socket buffer is built (veth, most
    /// 10G+ NICs).
    Native,
    /// Generic (SKB) mode only: after the socket buffer is built; works on any device,
    /// slower.
    Generic,
    /// Not XDP: the fast path alone ([`XdpProgram::attach`] only, no AF_XDP steering) at
    /// the TC ingress hook (tcx, Linux 6.6 or later), on socket buffers. Where frames reach
    /// the stack as socket buffers anyway (veth, or any device without native XDP) this
    /// avoids the copy into a page that XDP costs there. Established flows whose tunnel
    /// header is of the other family than the packet's are not taken on this hook.
    Tc,
}

impl fmt::Display for XdpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Native => "native",
            Self::Generic => "generic",
            Self::Tc => "tc",
        })
    }
}

/// How the socket moves frames between the device and the UMEM.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum BindMode {
    /// Zero-copy when the driver supports it, copy otherwise.
    #[default]
    Auto,
    /// Always copy (`XDP_COPY`).
    Copy,
    /// Zero-copy or fail (`XDP_ZEROCOPY`).
    ZeroCopy,
}

/// Options of [`XdpSocket::open`]. The defaults suit veth and a 1500-byte MTU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XdpOpts {
    /// Where the program runs (default [`XdpMode::Auto`]: native, else generic).
    pub mode: XdpMode,
    /// Copy or zero-copy (default [`BindMode::Auto`]).
    pub bind: BindMode,
    /// Receive queue to serve (default 0).
    pub queue: u32,
    /// Bytes per UMEM frame, 2048 or 4096 (default 2048). The largest frame received is
    /// this minus 256 bytes of kernel headroom; the largest sent is this.
    pub frame_size: u32,
    /// Receive frames, also the size of the fill and RX rings: a power of two (default
    /// 2048).
    pub rx_frames: u32,
    /// Transmit frames, also the size of the TX and completion rings: a power of two
    /// (default 2048). `send_batch` accepts at most this many frames in flight.
    pub tx_frames: u32,
    /// Capacity of the rule map, in keys (default 65,536: 10,000 services with their NAT
    /// real servers fit; each [`SteerRule`] takes one key plus one shared per address and
    /// protocol for fragments). Memory is taken per key in use, not up front.
    pub max_rules: u32,
    /// Capacity of the fast path's flow table, and number of its counter slots (default
    /// [`DEFAULT_MAX_FLOWS`], at most [`MAX_MAX_FLOWS`]). Taken up front: 16 bytes of
    /// counters per flow, and a 64-byte IPv4 slot per flow rounded up to a power of two.
    pub max_flows: u32,
    /// Ask the kernel to say when it needs a syscall to make progress
    /// (`XDP_USE_NEED_WAKEUP`, default on): saves syscalls in zero-copy mode.
    pub need_wakeup: bool,
}

impl Default for XdpOpts {
    fn default() -> Self {
        Self {
            mode: XdpMode::Auto,
            bind: BindMode::Auto,
            queue: 0,
            frame_size: 2048,
            rx_frames: 2048,
            tx_frames: 2048,
            max_rules: 65_536,
            max_flows: DEFAULT_MAX_FLOWS,
            need_wakeup: true,
        }
    }
}

impl XdpOpts {
    fn validate(&self) -> io::Result<()> {
        if self.mode == XdpMode::Tc {
            return Err(invalid(
                "an AF_XDP socket needs an XDP program (mode auto, native or generic), not tc",
            ));
        }
        if self.frame_size != 2048 && self.frame_size != 4096 {
            return Err(invalid(format!(
                "frame_size {} must be 2048 or 4096",
                self.frame_size
            )));
        }
        for (n, what) in [(self.rx_frames, "rx_frames"), (self.tx_frames, "tx_frames")] {
            if !n.is_power_of_two() || !(64..=1 << 16).contains(&n) {
                return Err(invalid(format!(
                    "{what} {n} must be a power of two between 64 and 65536"
                )));
            }
        }
        if self.queue >= MAX_QUEUES {
            return Err(invalid(format!(
                "queue {} out of range (at most {})",
                self.queue,
                MAX_QUEUES - 1
            )));
        }
        validate_sizes(self.max_rules, self.max_flows)
    }
}

fn validate_sizes(max_rules: u32, max_flows: u32) -> io::Result<()> {
    if max_rules == 0 || max_rules > 1 << 20 {
        return Err(invalid("max_rules must be between 1 and 1048576"));
    }
    if max_flows == 0 || max_flows > MAX_MAX_FLOWS {
        return Err(invalid(format!(
            "max_flows must be between 1 and {MAX_MAX_FLOWS}"
        )));
    }
    Ok(())
}

/// Counters of an [`XdpSocket`]: the program's verdicts and the kernel's socket counters
/// (`XDP_STATISTICS`), all cumulative since open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct XdpStats {
    /// The steering program's verdicts by reason.
    pub program: SteerCounters,
    /// Frames steered to the socket but dropped by the kernel: RX ring full or frame too
    /// large for a UMEM frame.
    pub rx_dropped: u64,
    /// Receive descriptors the kernel found invalid.
    pub rx_invalid_descs: u64,
    /// Transmit descriptors the kernel found invalid (should stay 0).
    pub tx_invalid_descs: u64,
    /// Times the RX ring was full.
    pub rx_ring_full: u64,
    /// Times a frame arrived while the fill ring was empty.
    pub rx_fill_ring_empty: u64,
    /// Times the kernel found the TX ring empty when woken (in copy mode every `poll(2)`
    /// wakes the transmit side, so this grows while idle: not a problem).
    pub tx_ring_empty: u64,
    /// Receive descriptors pointing outside their UMEM frame, skipped (should stay 0).
    pub malformed: u64,
}

/// Names of the programs attached at `ifname`'s TC ingress through tcx links (in the
/// calling thread's network namespace), in order.
///
/// # Errors
///
/// No such interface, or the kernel's error (tcx needs Linux 6.6 or later).
pub fn tc_ingress_programs(ifname: &str) -> io::Result<Vec<String>> {
    use aya::programs::tc::TcAttachType;
    let (_, progs) = SchedClassifier::query_tcx(ifname, TcAttachType::Ingress)
        .map_err(|e| aya_err("bpf(BPF_PROG_QUERY)", ifname, e))?;
    Ok(progs
        .iter()
        .map(|p| p.name_as_str().unwrap_or("?").to_owned())
        .collect())
}

/// Why AF_XDP cannot be used here, or `None` when it can (as far as can be told without
/// attaching): the program was built, and the kernel creates AF_XDP sockets for us.
pub fn xdp_unavailable() -> Option<String> {
    if STEER_OBJ.is_empty() {
        return Some(BUILT_WITHOUT_CLANG.to_owned());
    }
    // SAFETY: plain socket(2) call, no pointers.
    let r = syscall(unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) });
    match r {
        Ok(fd) => {
            // SAFETY: `fd` is the descriptor just created, owned here and closed once.
            unsafe { libc::close(fd) };
            None
        }
        Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {
            Some("AF_XDP unavailable: the kernel has no AF_XDP sockets (CONFIG_XDP_SOCKETS)".into())
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Some(format!(
            "AF_XDP unavailable: not permitted ({e}); needs CAP_NET_RAW, CAP_BPF and CAP_NET_ADMIN"
        )),
        Err(e) => Some(format!("AF_XDP unavailable: socket(AF_XDP): {e}")),
    }
}

/// The first OS error number inside `e`: its own, or one wrapped in an [`OsError`], an
/// inner `io::Error`, or the source chain of a wrapped error (aya's).
fn raw_errno(e: &io::Error) -> Option<i32> {
    if let Some(n) = e.raw_os_error() {
        return Some(n);
    }
    let inner = e.get_ref()?;
    if let Some(os) = inner.downcast_ref::<crate::OsError>() {
        return raw_errno(&os.cause);
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(inner);
    while let Some(c) = cur {
        if let Some(n) = c.downcast_ref::<io::Error>().and_then(raw_errno) {
            return Some(n);
        }
        cur = c.source();
    }
    None
}

/// An error of aya as an `io::Error` naming the operation and target, with the kind of the
/// first OS error in its cause chain (`Other` when there is none).
fn aya_err<E>(op: &'static str, target: &str, e: E) -> io::Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    let mut kind = io::ErrorKind::Other;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<io::Error>() {
            kind = io.kind();
            break;
        }
        cur = c.source();
    }
    os_err(op, target, io::Error::new(kind, e))
}

/// The XDP program (`bpf/steer.c`) attached to one interface, with its maps: the steering
/// rules of an [`XdpSocket`] and the fast path's flow table ([`XdpProgram::flow_insert`]).
///
/// Made by [`XdpProgram::attach`] for the AF_PACKET backend (no AF_XDP socket: no steering
/// rule, every frame without a flow entry passes to the kernel), or owned by an
/// [`XdpSocket`] ([`XdpSocket::program`]). Dropping it detaches the program (see
/// [`XdpSocket`] about the namespace of the drop).
///
/// Field order is drop order: `ebpf` owns the program and its attachment, so dropping it
/// first detaches the program before anything else goes away.
pub struct XdpProgram {
    ebpf: aya::Ebpf,
    rules: BpfHashMap<MapData, SteerKey, u32>,
    xsks: XskMap<MapData>,
    stats: PerCpuArray<MapData, u64>,
    flows: BpfHashMap<MapData, FlowKeyRaw, FlowValueRaw>,
    flow_stats: FlowStats,
    ftab: FlowTab,
    max_flows: u32,
    ifindex: u32,
    ifname: String,
    mode: XdpMode,
}

impl fmt::Debug for XdpProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XdpProgram")
            .field("ifname", &self.ifname)
            .field("ifindex", &self.ifindex)
            .field("mode", &self.mode)
            .field("max_flows", &self.max_flows)
            .finish_non_exhaustive()
    }
}

impl XdpProgram {
    /// Load the program and attach it to `ifname` (in the calling thread's network
    /// namespace) in `mode`, with a steering map of `max_rules` keys (left empty) and a
    /// flow table of `max_flows` entries and counter slots. Frames without a flow entry
    /// pass to the kernel (counted as [`SteerCounters::passed_no_match`]).
    ///
    /// # Errors
    ///
    /// As [`XdpSocket::open`]: `Unsupported` with [`BUILT_WITHOUT_CLANG`]; `InvalidInput`
    /// for bad sizes or interface name; `NotFound` without such an interface; the
    /// kernel's error when it refuses the program or the attachment.
    pub fn attach(ifname: &str, mode: XdpMode, max_rules: u32, max_flows: u32) -> io::Result<Self> {
        Self::attach_with(
            &[STEER_OBJ, STEER_OBJ_ALT],
            ifname,
            mode,
            max_rules,
            max_flows,
        )
    }

    fn attach_with(
        objs: &[&[u8]],
        ifname: &str,
        mode: XdpMode,
        max_rules: u32,
        max_flows: u32,
    ) -> io::Result<Self> {
        validate_sizes(max_rules, max_flows)?;
        if objs.iter().all(|o| o.is_empty()) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                BUILT_WITHOUT_CLANG,
            ));
        }
        let ifindex = ifindex(ifname)?;
        let mut p = Self::load_any(objs, max_rules, max_flows, ifname, mode == XdpMode::Tc)?;
        p.attach_to(ifindex, ifname, mode)?;
        Ok(p)
    }

    /// Index of the interface.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Name of the interface.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Where the program runs: [`XdpMode::Native`], [`XdpMode::Generic`] or
    /// [`XdpMode::Tc`].
    pub fn mode(&self) -> XdpMode {
        self.mode
    }

    /// Load the first of `objs` the kernel takes. Some x86 kernels' JIT fails on particular
    /// instruction layouts after the verifier accepted the program (`ENOTSUPP`, with
    /// "bpf_jit: fatal error" in the kernel log: jump sizes that never settle between JIT
    /// passes); another layout of the same program then usually goes through.
    fn load_any(
        objs: &[&[u8]],
        max_rules: u32,
        max_flows: u32,
        ifname: &str,
        tc: bool,
    ) -> io::Result<Self> {
        let mut first_err = None;
        for obj in objs {
            match Self::load(obj, max_rules, max_flows, ifname, tc) {
                Ok(s) => return Ok(s),
                Err(e) if raw_errno(&e) == Some(ENOTSUPP) => {
                    first_err.get_or_insert(e);
                }
                Err(e) => return Err(first_err.unwrap_or(e)),
            }
        }
        Err(first_err
            .unwrap_or_else(|| io::Error::new(io::ErrorKind::Unsupported, BUILT_WITHOUT_CLANG)))
    }

    /// Load (verify) the program of object `obj` with a rule map of `max_rules` keys and a
    /// flow table of `max_flows`: the XDP program, or with `tc` the TC one. Not attached
    /// yet.
    fn load(
        obj: &[u8],
        max_rules: u32,
        max_flows: u32,
        ifname: &str,
        tc: bool,
    ) -> io::Result<Self> {
        if obj.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                BUILT_WITHOUT_CLANG,
            ));
        }
        let slots = ftab_slots(max_flows);
        let targets = ftab_targets(max_flows);
        let mask = slots - 1;
        let mut ebpf = aya::EbpfLoader::new()
            .map_max_entries(MAP_RULES, max_rules)
            .map_max_entries(MAP_FLOWS, max_flows)
            .map_max_entries(MAP_FLOW_STATS, max_flows)
            .map_max_entries(MAP_FTAB, slots)
            .map_max_entries(MAP_FTAB_TARGETS, targets)
            .override_global("rvs_ftab_mask", &mask, true)
            .load(obj)
            .map_err(|e| aya_err("bpf(load object)", ifname, e))?;
        let name = if tc { PROG_TC } else { PROG };
        let prog = ebpf
            .program_mut(name)
            .ok_or_else(|| io::Error::other(format!("steering object has no program {name}")))?;
        if tc {
            let prog: &mut SchedClassifier = prog
                .try_into()
                .map_err(|e| aya_err("bpf(program type)", ifname, e))?;
            prog.load()
                .map_err(|e| aya_err("bpf(BPF_PROG_LOAD)", ifname, e))?;
        } else {
            let prog: &mut Xdp = prog
                .try_into()
                .map_err(|e| aya_err("bpf(program type)", ifname, e))?;
            prog.load()
                .map_err(|e| aya_err("bpf(BPF_PROG_LOAD)", ifname, e))?;
        }
        let mut take = |name: &str| {
            ebpf.take_map(name)
                .ok_or_else(|| io::Error::other(format!("steering object has no map {name}")))
        };
        let (rules, xsks, stats) = (take(MAP_RULES)?, take(MAP_XSKS)?, take(MAP_STATS)?);
        let (flows, flow_stats) = (take(MAP_FLOWS)?, take(MAP_FLOW_STATS)?);
        let aya::maps::Map::Array(flow_stats) = flow_stats else {
            return Err(io::Error::other(format!(
                "{MAP_FLOW_STATS} is not an array map"
            )));
        };
        let aya::maps::Map::Array(ftab) = take(MAP_FTAB)? else {
            return Err(io::Error::other(format!("{MAP_FTAB} is not an array map")));
        };
        let aya::maps::Map::Array(ftab_targets_map) = take(MAP_FTAB_TARGETS)? else {
            return Err(io::Error::other(format!(
                "{MAP_FTAB_TARGETS} is not an array map"
            )));
        };
        Ok(Self {
            rules: BpfHashMap::try_from(rules).map_err(|e| aya_err("bpf(map)", MAP_RULES, e))?,
            xsks: XskMap::try_from(xsks).map_err(|e| aya_err("bpf(map)", MAP_XSKS, e))?,
            stats: PerCpuArray::try_from(stats).map_err(|e| aya_err("bpf(map)", MAP_STATS, e))?,
            flows: BpfHashMap::try_from(flows).map_err(|e| aya_err("bpf(map)", MAP_FLOWS, e))?,
            flow_stats: FlowStats::map(flow_stats, max_flows)?,
            ftab: FlowTab::map(ftab, slots, ftab_targets_map, targets)?,
            max_flows,
            ifindex: 0,
            ifname: ifname.to_owned(),
            mode: if tc { XdpMode::Tc } else { XdpMode::Auto },
            ebpf,
        })
    }

    /// The loaded program (for `BPF_PROG_TEST_RUN` in tests).
    #[cfg(test)]
    fn prog_ref(&self) -> io::Result<&Xdp> {
        self.ebpf
            .program(PROG)
            .and_then(|p| <&Xdp>::try_from(p).ok())
            .ok_or_else(|| io::Error::other("steering program vanished"))
    }

    /// The loaded TC program (for `BPF_PROG_TEST_RUN` in tests).
    #[cfg(test)]
    fn tc_prog_ref(&self) -> io::Result<&SchedClassifier> {
        self.ebpf
            .program(PROG_TC)
            .and_then(|p| <&SchedClassifier>::try_from(p).ok())
            .ok_or_else(|| io::Error::other("TC program vanished"))
    }

    fn prog(&mut self) -> io::Result<&mut Xdp> {
        self.ebpf
            .program_mut(PROG)
            .and_then(|p| <&mut Xdp>::try_from(p).ok())
            .ok_or_else(|| io::Error::other("steering program vanished"))
    }

    /// Attach to `ifindex` in `mode`; records the interface and the mode it runs in (never
    /// `Auto`).
    fn attach_to(&mut self, ifindex: u32, ifname: &str, mode: XdpMode) -> io::Result<()> {
        let mode = self.attach_mode(ifindex, ifname, mode)?;
        self.ifindex = ifindex;
        self.ifname = ifname.to_owned();
        self.mode = mode;
        Ok(())
    }

    fn attach_mode(&mut self, ifindex: u32, ifname: &str, mode: XdpMode) -> io::Result<XdpMode> {
        use aya::programs::XdpMode as Aya;
        if mode == XdpMode::Tc {
            return self.attach_tc(ifname).map(|()| XdpMode::Tc);
        }
        let mut try_mode = |m: Aya| {
            self.prog()?
                .attach_to_if_index(ifindex, m)
                .map(drop)
                .map_err(|e| aya_err("attach(XDP)", ifname, e))
        };
        match mode {
            XdpMode::Tc => Err(io::Error::other("tc is not an XDP mode")),
            XdpMode::Native => try_mode(Aya::Driver).map(|()| XdpMode::Native),
            XdpMode::Generic => try_mode(Aya::Skb).map(|()| XdpMode::Generic),
            XdpMode::Auto => match try_mode(Aya::Driver) {
                Ok(()) => Ok(XdpMode::Native),
                Err(native) => try_mode(Aya::Skb)
                    .map(|()| XdpMode::Generic)
                    .map_err(|generic| {
                        io::Error::new(
                            generic.kind(),
                            format!("native mode: {native}; generic mode: {generic}"),
                        )
                    }),
            },
        }
    }

    /// Attach the TC program at `ifname`'s ingress through a tcx link (no qdisc needed;
    /// detached when the program is dropped).
    fn attach_tc(&mut self, ifname: &str) -> io::Result<()> {
        use aya::programs::links::LinkOrder;
        use aya::programs::tc::{TcAttachOptions, TcAttachType};
        let prog: &mut SchedClassifier = self
            .ebpf
            .program_mut(PROG_TC)
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| io::Error::other("TC program vanished"))?;
        prog.attach_with_options(
            ifname,
            TcAttachType::Ingress,
            TcAttachOptions::TcxOrder(LinkOrder::default()),
        )
        .map(drop)
        .map_err(|e| {
            let e = aya_err("attach(tcx ingress)", ifname, e);
            io::Error::new(
                e.kind(),
                format!("{e} (the TC fast path needs tcx links: Linux 6.6 or later)"),
            )
        })
    }

    /// The program's verdicts by reason, summed over CPUs (cumulative since loading).
    ///
    /// # Errors
    ///
    /// A failed map lookup.
    pub fn counters(&self) -> io::Result<SteerCounters> {
        let mut sums = [0u64; stat::COUNT as usize];
        for (i, s) in (0..stat::COUNT).zip(sums.iter_mut()) {
            let v = self
                .stats
                .get(&i, 0)
                .map_err(|e| aya_err("bpf(map lookup)", MAP_STATS, e))?;
            *s = v.iter().fold(0u64, |a, &b| a.wrapping_add(b));
        }
        Ok(SteerCounters::from_sums(&sums))
    }
}

/// An AF_XDP socket on one receive queue of one interface, with the steering program that
/// feeds it. See the [module documentation](self).
///
/// Dropping it detaches the program. The attachment is a BPF link (kernel 5.9 and later),
/// released with its descriptor wherever the drop happens; on older kernels aya attaches
/// through netlink instead, and the detach then acts in the dropping thread's network
/// namespace, so drop the socket in the namespace it was opened in.
pub struct XdpSocket {
    // Drop order: the program is detached before the socket and its memory go.
    steer: XdpProgram,
    xsk: Xsk,
    installed: HashSet<SteerKey>,
    tx_free: Vec<u64>,
    ifindex: u32,
    ifname: String,
    mac: MacAddr,
    mtu: u32,
    queue: u32,
    mode: XdpMode,
    max_rules: u32,
    malformed: u64,
}

impl fmt::Debug for XdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XdpSocket")
            .field("ifname", &self.ifname)
            .field("ifindex", &self.ifindex)
            .field("queue", &self.queue())
            .field("mode", &self.mode)
            .field("zerocopy", &self.xsk.zerocopy)
            .field("rules", &self.installed.len())
            .finish_non_exhaustive()
    }
}

impl XdpSocket {
    /// Load the steering program, create the socket with its UMEM and rings, bind it to
    /// `opts.queue` of `ifname` (in the calling thread's network namespace), register it
    /// with the program and attach the program. No rule is installed yet: until
    /// [`XdpSocket::set_rules`], every frame passes to the kernel.
    ///
    /// # Errors
    ///
    /// `Unsupported` with [`BUILT_WITHOUT_CLANG`] when the program was not built;
    /// `InvalidInput` for bad options or interface name; `NotFound` when there is no such
    /// interface; `PermissionDenied` without the privileges; the kernel's error when it
    /// refuses the program (the verifier log is in the message), the attachment (`EBUSY`:
    /// another XDP program is attached; `EOPNOTSUPP`: no native mode, with
    /// [`XdpMode::Native`]) or the socket.
    pub fn open(ifname: &str, opts: &XdpOpts) -> io::Result<Self> {
        Self::open_with(&[STEER_OBJ, STEER_OBJ_ALT], ifname, opts)
    }

    fn open_with(objs: &[&[u8]], ifname: &str, opts: &XdpOpts) -> io::Result<Self> {
        opts.validate()?;
        if objs.iter().all(|o| o.is_empty()) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                BUILT_WITHOUT_CLANG,
            ));
        }
        let ifindex = ifindex(ifname)?;
        let mac = mac_of(ifname)?;
        let mtu = mtu_of(ifname)?;
        let mut steer = XdpProgram::load_any(objs, opts.max_rules, opts.max_flows, ifname, false)?;
        let geo = Geometry {
            frame_size: opts.frame_size,
            rx_frames: opts.rx_frames,
            tx_frames: opts.tx_frames,
        };
        let bind = BindFlags {
            copy: opts.bind == BindMode::Copy,
            zerocopy: opts.bind == BindMode::ZeroCopy,
            need_wakeup: opts.need_wakeup,
        };
        let xsk = Xsk::open(ifname, ifindex, opts.queue, geo, bind)?;
        steer
            .xsks
            .set(opts.queue, xsk.as_raw_fd(), 0)
            .map_err(|e| aya_err("bpf(map update)", MAP_XSKS, e))?;
        steer.attach_to(ifindex, ifname, opts.mode)?;
        let mode = steer.mode;
        let tx_free = xsk.tx_frame_addrs().collect();
        Ok(Self {
            steer,
            xsk,
            installed: HashSet::new(),
            tx_free,
            ifindex,
            ifname: ifname.to_owned(),
            mac,
            mtu,
            queue: opts.queue,
            mode,
            max_rules: opts.max_rules,
            malformed: 0,
        })
    }

    /// Index of the interface.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Name of the interface.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The receive queue served.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// Where the program runs: [`XdpMode::Native`] or [`XdpMode::Generic`].
    pub fn mode(&self) -> XdpMode {
        self.mode
    }

    /// The XDP program feeding the socket: its fast-path flow table
    /// ([`XdpProgram::flow_insert`]) and counters.
    pub fn program(&mut self) -> &mut XdpProgram {
        &mut self.steer
    }

    /// [`XdpSocket::program`], shared (counters, [`XdpProgram::flow_counter`]).
    pub fn program_ref(&self) -> &XdpProgram {
        &self.steer
    }

    /// Whether the kernel moves frames without copying (zero-copy driver support).
    pub fn zerocopy(&self) -> bool {
        self.xsk.zerocopy
    }

    /// Replace the steering rules with `rules`: keys that are new are added first, then
    /// stale keys deleted, so a rule present before and after keeps matching throughout
    /// and a frame never sees an empty table half-way. Not atomic as a whole: during the
    /// update a frame may match a mix of old and new rules.
    ///
    /// # Errors
    ///
    /// `InvalidInput` when the rules need more keys than `max_rules` (nothing changed);
    /// the kernel's error of a map update (`ENOMEM`). After an error the map holds the
    /// keys added so far; calling again converges.
    pub fn set_rules(&mut self, rules: &[SteerRule]) -> io::Result<()> {
        let wanted = key_set(rules);
        if wanted.len() > self.max_rules as usize {
            return Err(invalid(format!(
                "{} rules need {} map keys, more than max_rules {}",
                rules.len(),
                wanted.len(),
                self.max_rules
            )));
        }
        let (add, del) = diff(&self.installed, &wanted);
        for k in add {
            self.steer
                .rules
                .insert(k, 1, 0)
                .map_err(|e| aya_err("bpf(map update)", MAP_RULES, e))?;
            self.installed.insert(k);
        }
        for k in del {
            match self.steer.rules.remove(&k) {
                Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
                Err(e) => {
                    let e = aya_err("bpf(map delete)", MAP_RULES, e);
                    if e.kind() != io::ErrorKind::NotFound {
                        return Err(e);
                    }
                }
            }
            self.installed.remove(&k);
        }
        Ok(())
    }

    /// Number of keys in the rule map (each rule takes one, plus one per address and
    /// protocol for fragments).
    pub fn rule_keys(&self) -> usize {
        self.installed.len()
    }

    /// Wait up to `timeout` for received frames and call `f` once per frame, with the
    /// frame's bytes (Ethernet header first, outer VLAN tag stripped) and its [`RxInfo`].
    /// Every frame waiting in the RX ring is delivered and its UMEM frame given back to
    /// the kernel before returning, so one call delivers at most `rx_frames` frames.
    /// Returns the number of frames delivered.
    ///
    /// A zero `timeout` never blocks, and makes no syscall when nothing waits (unless the
    /// driver asked for a wake-up). An interrupted wait (`EINTR`) returns `Ok(0)`.
    ///
    /// # Errors
    ///
    /// A failed `poll(2)`, or the socket's pending error (`ENETDOWN` when the interface
    /// went away).
    pub fn recv_batch(
        &mut self,
        timeout: Duration,
        mut f: impl FnMut(&[u8], RxInfo),
    ) -> io::Result<usize> {
        let mut ready = self.xsk.rx.ready();
        if ready == 0 {
            if self.xsk.fill.needs_wakeup() {
                // Best effort: the wake-up only makes the driver look at the fill ring.
                let _ = self.xsk.kick_rx();
            }
            if timeout.is_zero() {
                return Ok(0);
            }
            self.wait(timeout)?;
            ready = self.xsk.rx.ready();
            if ready == 0 {
                return Ok(0);
            }
        }
        let (ifindex, mac) = (self.ifindex, self.mac);
        let mut delivered = 0;
        for i in 0..ready {
            let d = self.xsk.rx.peek(i);
            let base = self.xsk.frame_base(d.addr);
            match self.xsk.frame_mut(d.addr, d.len as usize) {
                Some(frame) => {
                    let (frame, info) = rx_view(frame, ifindex, mac);
                    f(frame, info);
                    delivered += 1;
                }
                None => self.malformed += 1,
            }
            // The fill ring has room for every receive frame, this one included.
            let pushed = self.xsk.fill.push(base);
            debug_assert!(pushed, "fill ring sized for every receive frame");
        }
        self.xsk.rx.release(ready);
        self.xsk.fill.publish();
        Ok(delivered)
    }

    fn wait(&self, timeout: Duration) -> io::Result<()> {
        // Round up so a sub-millisecond timeout still waits.
        let ms = i32::try_from(timeout.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
        let mut pfd = libc::pollfd {
            fd: self.xsk.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, count 1.
        match syscall(unsafe { libc::poll(&raw mut pfd, 1, ms) }) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(os_err("poll", &self.ifname, e)),
        }
        if pfd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
            let e = self
                .xsk
                .take_error()
                .unwrap_or_else(|| io::Error::other("socket error without an error code"));
            return Err(os_err("poll(xsk)", &self.ifname, e));
        }
        Ok(())
    }

    /// Give the frames the kernel finished sending back to the free list.
    fn reap_completions(&mut self) {
        let n = self.xsk.comp.ready();
        for i in 0..n {
            let addr = self.xsk.comp.peek(i);
            self.tx_free.push(self.xsk.frame_base(addr));
        }
        self.xsk.comp.release(n);
    }

    /// Make the kernel process the TX ring. In copy mode each `sendto(2)` sends at most 32
    /// frames, so kick until the ring is drained or the kernel stops making progress
    /// (device queue full: the rest goes on the next call).
    fn flush_tx(&mut self) -> io::Result<()> {
        if self.xsk.zerocopy {
            if self.xsk.tx.needs_wakeup() {
                self.kick_tx()?;
            }
            return Ok(());
        }
        let mut last = u32::MAX;
        for _ in 0..self.xsk.geo.tx_frames / 32 + 2 {
            let in_flight = self.xsk.tx.in_flight();
            if in_flight == 0 || in_flight == last {
                break;
            }
            last = in_flight;
            self.kick_tx()?;
        }
        Ok(())
    }

    fn kick_tx(&self) -> io::Result<()> {
        match self.xsk.kick_tx() {
            Ok(()) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::EINTR)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(os_err("sendto(AF_XDP)", &self.ifname, e)),
        }
    }

    /// Transmit frames (each a complete Ethernet frame) out of the interface: copy them
    /// into free transmit frames of the UMEM, put them on the TX ring and wake the kernel.
    /// Returns how many frames, from the start of `frames`, were accepted: fewer than
    /// `frames.len()` when every transmit frame is in flight or the TX ring is full (retry
    /// the rest later or count them as dropped). Frames finished by the kernel are
    /// reclaimed at the start and end of each call.
    ///
    /// # Errors
    ///
    /// For the *first* frame only (a bad later frame ends the batch early with the count
    /// so far; sending the rest again reports it): `EMSGSIZE` when it is longer than the
    /// interface MTU plus the Ethernet header and a VLAN tag, or than a UMEM frame;
    /// `EINVAL` when shorter than an Ethernet header. The kernel's error when waking it
    /// fails for another reason than a full queue (`ENETDOWN`, `ENXIO`: the interface went
    /// down or away).
    pub fn send_batch(&mut self, frames: &[&[u8]]) -> io::Result<usize> {
        self.reap_completions();
        let max = (self.mtu as usize + ETH_HLEN + VLAN_HLEN).min(self.xsk.geo.frame_size as usize);
        let mut queued = 0;
        for frame in frames {
            let errno = if frame.len() < ETH_HLEN {
                Some(libc::EINVAL)
            } else if frame.len() > max {
                Some(libc::EMSGSIZE)
            } else {
                None
            };
            if let Some(errno) = errno {
                if queued == 0 {
                    return Err(os_err(
                        "send_batch",
                        &self.ifname,
                        io::Error::from_raw_os_error(errno),
                    ));
                }
                break;
            }
            if self.xsk.tx.free(1) == 0 {
                break;
            }
            let Some(addr) = self.tx_free.pop() else {
                break;
            };
            let Some(buf) = self.xsk.frame_mut(addr, frame.len()) else {
                // Cannot happen: free-list addresses are frame starts and the length was
                // checked against the frame size. Drop the frame rather than the address.
                self.tx_free.push(addr);
                break;
            };
            buf.copy_from_slice(frame);
            let desc = libc::xdp_desc {
                addr,
                len: frame.len() as u32,
                options: 0,
            };
            let pushed = self.xsk.tx.push(desc);
            debug_assert!(pushed, "free slot checked above");
            queued += 1;
        }
        if queued > 0 {
            self.xsk.tx.publish();
        }
        self.flush_tx()?;
        self.reap_completions();
        Ok(queued)
    }

    /// Frames handed to `send_batch` that the kernel has not completed yet.
    pub fn tx_in_flight(&self) -> usize {
        (self.xsk.geo.tx_frames as usize).saturating_sub(self.tx_free.len())
    }

    /// Read the program's and the kernel's counters (cumulative; reading does not reset).
    ///
    /// # Errors
    ///
    /// A failed map lookup or `getsockopt(XDP_STATISTICS)`.
    pub fn stats(&self) -> io::Result<XdpStats> {
        let program = self.steer.counters()?;
        let k = self.xsk.statistics()?;
        Ok(XdpStats {
            program,
            rx_dropped: k.rx_dropped,
            rx_invalid_descs: k.rx_invalid_descs,
            tx_invalid_descs: k.tx_invalid_descs,
            rx_ring_full: k.rx_ring_full,
            rx_fill_ring_empty: k.rx_fill_ring_empty_descs,
            tx_ring_empty: k.tx_ring_empty_descs,
            malformed: self.malformed,
        })
    }
}

impl AsRawFd for XdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.xsk.as_raw_fd()
    }
}

/// The frame as the daemon sees it, and its metadata: an outer VLAN tag is moved out of
/// the bytes into the [`RxInfo`] (AF_PACKET's behaviour), and the packet type derived from
/// the destination MAC.
fn rx_view(frame: &mut [u8], ifindex: u32, mac: MacAddr) -> (&[u8], RxInfo) {
    let mut vlan = None;
    let frame = match frame.get(12..16) {
        Some(&[a, b, c, d]) if matches!(u16::from_be_bytes([a, b]), 0x8100 | 0x88a8) => {
            vlan = Some((u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d])));
            // Slide the two MAC addresses over the tag: 12 bytes, cheaper than moving the
            // payload.
            frame.copy_within(0..12, VLAN_HLEN);
            &frame[VLAN_HLEN..]
        }
        _ => &frame[..],
    };
    let dst = &frame[..6.min(frame.len())];
    let pkt_type = if dst == MacAddr::BROADCAST.0 {
        libc::PACKET_BROADCAST
    } else if dst.first().is_some_and(|b| b & 1 != 0) {
        libc::PACKET_MULTICAST
    } else if dst == mac.0 {
        libc::PACKET_HOST
    } else {
        libc::PACKET_OTHERHOST
    };
    let info = RxInfo {
        ifindex,
        vlan_tci: vlan.map(|(_, tci)| tci),
        vlan_tpid: vlan.map_or(0, |(tpid, _)| tpid),
        pkt_type,
        wire_len: frame.len() as u32,
        csum_not_ready: false,
    };
    (frame, info)
}
