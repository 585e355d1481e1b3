//! AF_PACKET I/O: a TPACKET_V3 receive ring and batched transmit on one interface.
//!
//! # Contract
//!
//! The daemon opens one [`PacketSocket`] per interface it serves (or one per worker with
//! [`PacketOpts::fanout`], so that the kernel spreads flows over the workers by hash), then
//! loops:
//!
//! 1. [`PacketSocket::recv_batch`] waits up to a timeout for the ring, and calls back once
//!    per received frame with the bytes from the Ethernet header on and an [`RxInfo`]. The
//!    frame borrows the ring; the core needs a mutable buffer with headroom to prepend tunnel
//!    headers, so the callback copies it with [`copy_with_headroom`] (one copy per frame,
//!    into a buffer the worker reuses).
//! 2. The core rewrites the frame; the daemon fills the Ethernet addresses (its own MAC from
//!    [`mac_of`], the next hop's from [`crate::neigh::NeighCache`]) and queues the frame.
//! 3. [`PacketSocket::send_batch`] hands the queued frames to the kernel with one
//!    `sendmmsg(2)` per 64 frames.
//!
//! Ring: `block_count` blocks of `block_size` bytes, shared with the kernel through
//! `mmap(2)` (4 MiB with the defaults of [`PacketOpts`]). The kernel fills a block with
//! frames back to back and hands it over when the block is full or `block_timeout_ms` after
//! its first frame; `recv_batch` walks every handed-over block and gives it back. A frame
//! longer than what fits in a block is truncated ([`RxInfo::wire_len`] tells the real length);
//! when the ring is full the kernel drops and counts ([`PacketSocket::stats`]).
//!
//! What the kernel does with the same frames: an AF_PACKET socket receives a *copy*; the
//! kernel's own stack still processes the original. For virtual-service traffic the host
//! would answer with a TCP RST or an ICMP port unreachable (or, if the VIP is local, deliver
//! to a local socket). The daemon must therefore drop that traffic in an nftables
//! `netdev ingress` chain, which runs after packet sockets got their copy and before the IP
//! stack: see [`crate::nft`]. Frames we transmit are not seen by our own ring
//! (`PACKET_IGNORE_OUTGOING`).
//!
//! Offloads: on virtual devices (veth) and with GRO a received frame may carry a partial
//! checksum (`RxInfo::csum_not_ready`) or be larger than the MTU (GRO super-frame). The
//! daemon should turn GRO/LRO off on the interfaces it serves, and treat a frame whose
//! checksum is not ready as having a valid checksum that is not in the bytes yet.
//! VLAN: the kernel strips the 802.1Q tag it parsed; it is given back in
//! [`RxInfo::vlan_tci`].

use std::io;
use std::mem::{offset_of, size_of};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::{MacAddr, invalid, os_err, syscall};

/// Headroom left before a copied frame, enough for the tunnel headers the core prepends
/// (outer IPv6 + UDP + GUE is 56 bytes; IPv6-in-IPv6 is 40) with room to spare.
pub const HEADROOM: usize = 128;

/// Frames per `sendmmsg(2)` call.
const TX_CHUNK: usize = 64;

/// How the kernel spreads frames over the sockets of one fanout group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FanoutMode {
    /// By flow hash (IP fragments are reassembled first so they hash together).
    Hash,
    /// By the CPU that received the frame.
    Cpu,
    /// By the device's receive queue.
    QueueMapping,
    /// Round robin.
    RoundRobin,
}

impl FanoutMode {
    fn bits(self) -> u32 {
        match self {
            Self::Hash => libc::PACKET_FANOUT_HASH | libc::PACKET_FANOUT_FLAG_DEFRAG,
            Self::Cpu => libc::PACKET_FANOUT_CPU,
            Self::QueueMapping => libc::PACKET_FANOUT_QM,
            Self::RoundRobin => libc::PACKET_FANOUT_LB,
        }
    }
}

/// A fanout group: sockets on the same interface with the same `group_id` share its
/// traffic instead of each getting a copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fanout {
    /// Group id, unique per network namespace.
    pub group_id: u16,
    /// How frames are spread.
    pub mode: FanoutMode,
}

/// Options of [`PacketSocket::open`]. The defaults suit a server port at moderate rates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketOpts {
    /// Size of one ring block in bytes: a multiple of the page size (default 256 KiB). A
    /// frame longer than a block minus its headers is truncated.
    pub block_size: u32,
    /// Number of blocks (default 16, so the ring is 4 MiB).
    pub block_count: u32,
    /// Nominal frame size the kernel checks the ring geometry with: a multiple of 16 that
    /// divides `block_size` (default 2048). TPACKET_V3 packs frames by their real length;
    /// this does not cap the frame size.
    pub frame_size: u32,
    /// How long the kernel may keep a partly filled block before handing it over, in
    /// milliseconds (default 2). The latency floor at low rates; higher values batch more.
    /// 0 lets the kernel derive one from the link speed (8 ms or more).
    pub block_timeout_ms: u32,
    /// Transmit straight to the driver, bypassing the qdisc (`PACKET_QDISC_BYPASS`, default
    /// off). Faster, but frames then skip traffic shaping and are not seen by other packet
    /// sockets (tcpdump).
    pub qdisc_bypass: bool,
    /// Do not receive frames this host sends on the interface, ours included
    /// (`PACKET_IGNORE_OUTGOING`, default on).
    pub ignore_outgoing: bool,
    /// Put the interface in promiscuous mode while the socket is open (default off: a
    /// director receives virtual-service traffic addressed to its own MAC).
    pub promiscuous: bool,
    /// Join a fanout group (default none).
    pub fanout: Option<Fanout>,
    /// Receive frames of this EtherType only (host order; default `ETH_P_ALL`, every
    /// frame). With `ETH_P_ALL` the kernel hands frames over before its ingress hooks (TC,
    /// nftables `netdev ingress`); with a particular type, after them, so that frames a TC
    /// program redirects or drops never reach the socket.
    pub protocol: u16,
}

impl Default for PacketOpts {
    fn default() -> Self {
        Self {
            block_size: 1 << 18,
            block_count: 16,
            frame_size: 2048,
            block_timeout_ms: 2,
            qdisc_bypass: false,
            ignore_outgoing: true,
            promiscuous: false,
            fanout: None,
            protocol: libc::ETH_P_ALL as u16,
        }
    }
}

impl PacketOpts {
    /// Check the ring geometry the way the kernel will, with a readable error.
    fn validate(&self) -> io::Result<usize> {
        let page = page_size();
        let (bs, fs, bn) = (
            self.block_size as usize,
            self.frame_size as usize,
            self.block_count as usize,
        );
        if bs == 0 || bs % page != 0 {
            return Err(invalid(format!(
                "block_size {bs} must be a non-zero multiple of the page size {page}"
            )));
        }
        if fs < libc::TPACKET3_HDRLEN || fs % libc::TPACKET_ALIGNMENT != 0 || fs > bs {
            return Err(invalid(format!(
                "frame_size {fs} must be a multiple of {} between {} and block_size",
                libc::TPACKET_ALIGNMENT,
                libc::TPACKET3_HDRLEN
            )));
        }
        if bs % fs != 0 {
            return Err(invalid(format!(
                "frame_size {fs} must divide block_size {bs}"
            )));
        }
        if bn == 0 {
            return Err(invalid("block_count must be at least 1"));
        }
        let total = bs
            .checked_mul(bn)
            .filter(|&t| t <= 1 << 32)
            .ok_or_else(|| invalid("ring larger than 4 GiB"))?;
        u32::try_from((bs / fs) * bn).map_err(|_| invalid("too many frames in the ring"))?;
        Ok(total)
    }
}

/// Metadata of a received frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RxInfo {
    /// Interface the frame arrived on.
    pub ifindex: u32,
    /// The 802.1Q tag control information the kernel stripped from the frame, if any.
    pub vlan_tci: Option<u16>,
    /// The tag protocol of `vlan_tci` (0x8100 or 0x88a8), 0 when not reported.
    pub vlan_tpid: u16,
    /// `PACKET_HOST`, `PACKET_BROADCAST`, `PACKET_MULTICAST` or `PACKET_OTHERHOST`.
    pub pkt_type: u8,
    /// Length of the frame on the wire; larger than the slice when it was truncated.
    pub wire_len: u32,
    /// The transport checksum is not filled in yet (offloaded, locally generated).
    pub csum_not_ready: bool,
}

/// Kernel ring counters, as `PACKET_STATISTICS` reports them. Reading resets them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingStats {
    /// Frames the socket received since the last read (dropped ones included).
    pub packets: u32,
    /// Frames dropped because the ring was full.
    pub drops: u32,
    /// How many times the ring was frozen (all blocks held by user space).
    pub freeze_count: u32,
}

/// The mmap'ed TPACKET_V3 ring; unmapped on drop.
#[derive(Debug)]
struct Ring {
    base: NonNull<u8>,
    len: usize,
    block_size: usize,
    block_count: usize,
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are exactly what mmap returned and nothing borrows the
        // mapping any more (borrows of frames never outlive a `recv_batch` call).
        let _ = unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// An AF_PACKET socket bound to one interface, with a TPACKET_V3 RX ring.
#[derive(Debug)]
pub struct PacketSocket {
    // Field order: the ring is unmapped before the socket is closed.
    ring: Ring,
    fd: OwnedFd,
    ifindex: u32,
    ifname: String,
    next_block: usize,
    malformed: u64,
}

// SAFETY: the ring mapping is owned by this value alone (no aliasing pointer leaves it
// except frame borrows bounded by `&mut self` calls); the kernel side is thread-agnostic.
unsafe impl Send for PacketSocket {}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, val: &T) -> io::Result<()> {
    let len = libc::socklen_t::try_from(size_of::<T>()).map_err(|_| invalid("option too big"))?;
    // SAFETY: `val` points to a live, initialised `T` of `len` bytes that the kernel only
    // reads; `fd` is a socket owned by the caller.
    syscall(unsafe { libc::setsockopt(fd, level, name, (val as *const T).cast(), len) })?;
    Ok(())
}

fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p).ok().filter(|&p| p > 0).unwrap_or(4096)
}

impl PacketSocket {
    /// Open an AF_PACKET socket on `ifname` (in the calling thread's network namespace),
    /// set up the RX ring and the options of `opts`, and bind it.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a bad ring geometry or interface name; `NotFound` when there is
    /// no such interface; `PermissionDenied` without `CAP_NET_RAW`; otherwise the failing
    /// syscall, named in the error.
    pub fn open(ifname: &str, opts: &PacketOpts) -> io::Result<Self> {
        let ring_len = opts.validate()?;
        let ifindex = ifindex(ifname)?;
        // Protocol 0: no frame is queued before the ring exists and the socket is bound to
        // the interface; `bind` below sets the protocol.
        // SAFETY: plain socket(2) call, no pointers.
        let raw = syscall(unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                0,
            )
        })
        .map_err(|e| os_err("socket(AF_PACKET)", ifname, e))?;
        // SAFETY: `raw` is a fresh descriptor we own and nothing else will close.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let s = fd.as_raw_fd();

        let version: libc::c_int = libc::tpacket_versions::TPACKET_V3 as libc::c_int;
        setsockopt(s, libc::SOL_PACKET, libc::PACKET_VERSION, &version)
            .map_err(|e| os_err("setsockopt(PACKET_VERSION)", ifname, e))?;
        if opts.ignore_outgoing {
            setsockopt(
                s,
                libc::SOL_PACKET,
                libc::PACKET_IGNORE_OUTGOING,
                &1 as &libc::c_int,
            )
            .map_err(|e| os_err("setsockopt(PACKET_IGNORE_OUTGOING)", ifname, e))?;
        }
        if opts.qdisc_bypass {
            setsockopt(
                s,
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                &1 as &libc::c_int,
            )
            .map_err(|e| os_err("setsockopt(PACKET_QDISC_BYPASS)", ifname, e))?;
        }
        let req = libc::tpacket_req3 {
            tp_block_size: opts.block_size,
            tp_block_nr: opts.block_count,
            tp_frame_size: opts.frame_size,
            tp_frame_nr: (opts.block_size / opts.frame_size) * opts.block_count,
            tp_retire_blk_tov: opts.block_timeout_ms,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        setsockopt(s, libc::SOL_PACKET, libc::PACKET_RX_RING, &req)
            .map_err(|e| os_err("setsockopt(PACKET_RX_RING)", ifname, e))?;
        // SAFETY: mapping a fresh region (addr NULL) of the ring's size over the socket,
        // as packet_mmap(7) prescribes; the result is checked against MAP_FAILED.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ring_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                s,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(os_err("mmap(rx ring)", ifname, io::Error::last_os_error()));
        }
        let base = NonNull::new(base.cast::<u8>())
            .ok_or_else(|| os_err("mmap(rx ring)", ifname, io::Error::other("null mapping")))?;
        let ring = Ring {
            base,
            len: ring_len,
            block_size: opts.block_size as usize,
            block_count: opts.block_count as usize,
        };

        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = opts.protocol.to_be();
        sll.sll_ifindex = i32::try_from(ifindex).map_err(|_| invalid("ifindex out of range"))?;
        // SAFETY: `sll` is a valid sockaddr_ll and the length passed is its size.
        syscall(unsafe {
            libc::bind(
                s,
                (&raw const sll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })
        .map_err(|e| os_err("bind(AF_PACKET)", ifname, e))?;

        if opts.promiscuous {
            // SAFETY: packet_mreq is plain old data; all-zero is a valid value.
            let mut mr: libc::packet_mreq = unsafe { std::mem::zeroed() };
            mr.mr_ifindex = sll.sll_ifindex;
            mr.mr_type = libc::PACKET_MR_PROMISC as u16;
            setsockopt(s, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mr)
                .map_err(|e| os_err("setsockopt(PACKET_ADD_MEMBERSHIP)", ifname, e))?;
        }
        if let Some(f) = opts.fanout {
            let arg: u32 = u32::from(f.group_id) | (f.mode.bits() << 16);
            setsockopt(s, libc::SOL_PACKET, libc::PACKET_FANOUT, &arg)
                .map_err(|e| os_err("setsockopt(PACKET_FANOUT)", ifname, e))?;
        }
        Ok(Self {
            ring,
            fd,
            ifindex,
            ifname: ifname.to_owned(),
            next_block: 0,
            malformed: 0,
        })
    }

    /// Index of the interface the socket is bound to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Name of the interface the socket is bound to.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Frames skipped because their ring header pointed outside their block (should stay 0;
    /// counted rather than trusted).
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    /// Pointer to the status word of block `i` (`i < block_count`).
    fn block_status(&self, i: usize) -> &AtomicU32 {
        const OFF: usize = offset_of!(libc::tpacket_block_desc, hdr)
            + offset_of!(libc::tpacket_hdr_v1, block_status);
        // SAFETY: `i < block_count`, so the block and its header lie inside the mapping;
        // blocks are page aligned and OFF is a multiple of 4, so the u32 is aligned; the
        // word is shared with the kernel, hence accessed only atomically.
        unsafe {
            AtomicU32::from_ptr(
                self.ring
                    .base
                    .as_ptr()
                    .add(i * self.ring.block_size + OFF)
                    .cast(),
            )
        }
    }

    fn block_ready(&self, i: usize) -> bool {
        self.block_status(i).load(Ordering::Acquire) & libc::TP_STATUS_USER != 0
    }

    /// Wait up to `timeout` for received frames and call `f` once per frame, with the
    /// frame's bytes (Ethernet header first) and its [`RxInfo`]. Every block the kernel has
    /// handed over is walked and given back before returning, so one call delivers at most
    /// one ring's worth of frames. Returns the number of frames delivered.
    ///
    /// A zero `timeout` only looks. An interrupted wait (`EINTR`) returns `Ok(0)`.
    ///
    /// # Errors
    ///
    /// The socket's pending error when the interface went down or disappeared (`ENETDOWN`,
    /// `ENXIO`), or a failed `poll(2)`.
    pub fn recv_batch(
        &mut self,
        timeout: Duration,
        mut f: impl FnMut(&[u8], RxInfo),
    ) -> io::Result<usize> {
        if !self.block_ready(self.next_block) {
            self.wait(timeout)?;
        }
        let mut delivered = 0;
        for _ in 0..self.ring.block_count {
            let i = self.next_block;
            if !self.block_ready(i) {
                break;
            }
            delivered += self.walk_block(i, &mut f);
            self.block_status(i)
                .store(libc::TP_STATUS_KERNEL, Ordering::Release);
            self.next_block = (i + 1) % self.ring.block_count;
        }
        Ok(delivered)
    }

    fn wait(&self, timeout: Duration) -> io::Result<()> {
        let ms = if timeout.is_zero() {
            0
        } else {
            // Round up so a sub-millisecond timeout still waits.
            i32::try_from(timeout.as_micros().div_ceil(1000)).unwrap_or(i32::MAX)
        };
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN | libc::POLLERR,
            revents: 0,
        };
        // SAFETY: one valid pollfd, count 1.
        match syscall(unsafe { libc::poll(&raw mut pfd, 1, ms) }) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(os_err("poll", &self.ifname, e)),
        }
        if pfd.revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
            let err = self.take_error();
            return Err(os_err("poll(rx ring)", &self.ifname, err));
        }
        Ok(())
    }

    /// Read and clear the socket's pending error (`SO_ERROR`).
    fn take_error(&self) -> io::Error {
        let mut v: libc::c_int = 0;
        let mut len = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `v` and `len` are valid, writable, and `len` is the size of `v`.
        let r = syscall(unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&raw mut v).cast(),
                &raw mut len,
            )
        });
        match r {
            Ok(_) if v != 0 => io::Error::from_raw_os_error(v),
            Ok(_) => io::Error::other("socket error reported without an error code"),
            Err(e) => e,
        }
    }

    /// Deliver the frames of block `i`, which user space owns. Returns the count delivered.
    fn walk_block(&mut self, i: usize, f: &mut impl FnMut(&[u8], RxInfo)) -> usize {
        // SAFETY: block `i` lies in the mapping, and its status (read with Acquire) says
        // user space owns it: the kernel neither writes it nor reuses it until the status
        // is set back to TP_STATUS_KERNEL, which happens after this borrow ends.
        let blk: &[u8] = unsafe {
            std::slice::from_raw_parts(
                self.ring.base.as_ptr().add(i * self.ring.block_size),
                self.ring.block_size,
            )
        };
        let (delivered, malformed) = walk_frames(blk, self.ifindex, f);
        self.malformed += malformed;
        delivered
    }

    /// Transmit frames (each a complete Ethernet frame) out of the bound interface with as
    /// few `sendmmsg(2)` calls as possible. Returns how many frames, from the start of
    /// `frames`, the kernel accepted: fewer than `frames.len()` when the socket buffer or
    /// the device queue is full (retry the rest later or count them as dropped).
    ///
    /// # Errors
    ///
    /// The error of the *first* frame when none was accepted, except "no buffer space" and
    /// "would block", which return `Ok(0)`. An error on a later frame ends the batch early
    /// with the count so far; sending the rest again reports it. `EMSGSIZE` means the frame
    /// is larger than the interface MTU plus the Ethernet header; `EINVAL` that it is
    /// shorter than an Ethernet header.
    pub fn send_batch(&mut self, frames: &[&[u8]]) -> io::Result<usize> {
        let mut sent = 0;
        for chunk in frames.chunks(TX_CHUNK) {
            let n = self.send_chunk(chunk);
            match n {
                Ok(n) => {
                    sent += n;
                    if n < chunk.len() {
                        return Ok(sent);
                    }
                }
                Err(e)
                    if sent > 0
                        || matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                        )
                        || e.raw_os_error() == Some(libc::ENOBUFS) =>
                {
                    return Ok(sent);
                }
                Err(e) => return Err(os_err("sendmmsg", &self.ifname, e)),
            }
        }
        Ok(sent)
    }

    fn send_chunk(&mut self, chunk: &[&[u8]]) -> io::Result<usize> {
        // SAFETY: iovec and mmsghdr are plain old data; all-zero is a valid value.
        let mut iov: [libc::iovec; TX_CHUNK] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; TX_CHUNK] = unsafe { std::mem::zeroed() };
        let n = chunk.len().min(TX_CHUNK);
        for ((frame, v), m) in chunk.iter().zip(iov.iter_mut()).zip(msgs.iter_mut()) {
            // The kernel only reads through iov_base; the `*mut` is what the C type says.
            v.iov_base = frame.as_ptr().cast_mut().cast();
            v.iov_len = frame.len();
            // No address: the socket is bound, the kernel uses its interface and protocol.
            m.msg_hdr.msg_iov = v;
            m.msg_hdr.msg_iovlen = 1;
        }
        let vlen = libc::c_uint::try_from(n).unwrap_or(0);
        // SAFETY: `msgs[..n]` are initialised message headers whose iovecs point into
        // `chunk`'s frames, alive for the duration of the call; the kernel reads them and
        // writes only `msg_len` of each header.
        let r = syscall(unsafe {
            libc::sendmmsg(
                self.fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                vlen,
                libc::MSG_DONTWAIT,
            )
        })?;
        Ok(usize::try_from(r).unwrap_or(0))
    }

    /// Read and reset the kernel's ring counters.
    ///
    /// # Errors
    ///
    /// A failed `getsockopt(PACKET_STATISTICS)`.
    pub fn stats(&self) -> io::Result<RingStats> {
        // SAFETY: tpacket_stats_v3 is plain old data; all-zero is a valid value.
        let mut st: libc::tpacket_stats_v3 = unsafe { std::mem::zeroed() };
        let mut len = size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
        // SAFETY: `st` and `len` are valid, writable, and `len` is the size of `st`.
        syscall(unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&raw mut st).cast(),
                &raw mut len,
            )
        })
        .map_err(|e| os_err("getsockopt(PACKET_STATISTICS)", &self.ifname, e))?;
        Ok(RingStats {
            packets: st.tp_packets,
            drops: st.tp_drops,
            freeze_count: st.tp_freeze_q_cnt,
        })
    }
}

impl AsRawFd for PacketSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

fn rd_u32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_ne_bytes(s.try_into().ok()?))
}

fn rd_u16(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_ne_bytes(s.try_into().ok()?))
}

/// Walk the frames of one TPACKET_V3 block (its bytes, header included) and call `f` for
/// each. Bounds are checked against the block: a corrupt header ends the walk. Returns
/// (frames delivered, frames skipped as malformed).
fn walk_frames(blk: &[u8], ifindex: u32, f: &mut impl FnMut(&[u8], RxInfo)) -> (usize, u64) {
    const BH: usize = offset_of!(libc::tpacket_block_desc, hdr);
    const HDR: usize = size_of::<libc::tpacket3_hdr>();
    // The sockaddr_ll follows the (aligned) frame header.
    const SLL: usize = HDR.next_multiple_of(libc::TPACKET_ALIGNMENT);
    let (Some(num), Some(first)) = (
        rd_u32(blk, BH + offset_of!(libc::tpacket_hdr_v1, num_pkts)),
        rd_u32(
            blk,
            BH + offset_of!(libc::tpacket_hdr_v1, offset_to_first_pkt),
        ),
    ) else {
        return (0, 1);
    };
    let mut off = first as usize;
    let mut delivered = 0;
    let mut malformed = 0;
    for _ in 0..num {
        let Some(h) = off.checked_add(HDR).and_then(|end| blk.get(off..end)) else {
            malformed += 1;
            break;
        };
        let field = |o: usize| rd_u32(h, o).unwrap_or(0);
        let next = field(offset_of!(libc::tpacket3_hdr, tp_next_offset)) as usize;
        let snaplen = field(offset_of!(libc::tpacket3_hdr, tp_snaplen)) as usize;
        let wire_len = field(offset_of!(libc::tpacket3_hdr, tp_len));
        let status = field(offset_of!(libc::tpacket3_hdr, tp_status));
        let mac = rd_u16(h, offset_of!(libc::tpacket3_hdr, tp_mac)).unwrap_or(0) as usize;
        let hv1 = offset_of!(libc::tpacket3_hdr, hv1);
        let tci = field(hv1 + offset_of!(libc::tpacket_hdr_variant1, tp_vlan_tci));
        let tpid = rd_u16(
            h,
            hv1 + offset_of!(libc::tpacket_hdr_variant1, tp_vlan_tpid),
        )
        .unwrap_or(0);
        let sll = off + SLL;
        let pkt_type = blk
            .get(sll + offset_of!(libc::sockaddr_ll, sll_pkttype))
            .copied()
            .unwrap_or(0);
        let rx_ifindex = rd_u32(blk, sll + offset_of!(libc::sockaddr_ll, sll_ifindex))
            .filter(|&i| i != 0)
            .unwrap_or(ifindex);
        let frame = off
            .checked_add(mac)
            .and_then(|s| Some((s, s.checked_add(snaplen)?)))
            .and_then(|(s, e)| blk.get(s..e));
        match frame {
            Some(frame) if mac >= SLL => {
                let info = RxInfo {
                    ifindex: rx_ifindex,
                    vlan_tci: (status & libc::TP_STATUS_VLAN_VALID != 0)
                        .then_some(u16::try_from(tci & 0xffff).unwrap_or(0)),
                    vlan_tpid: if status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                        tpid
                    } else {
                        0
                    },
                    pkt_type,
                    wire_len,
                    csum_not_ready: status & libc::TP_STATUS_CSUMNOTREADY != 0,
                };
                f(frame, info);
                delivered += 1;
            }
            _ => malformed += 1,
        }
        if next == 0 {
            break;
        }
        off = match off.checked_add(next) {
            Some(o) => o,
            None => break,
        };
    }
    (delivered, malformed)
}

/// Copy `frame` into `buf` after [`HEADROOM`] bytes of headroom, leaving `tailroom` more
/// bytes after it (the core writes ICMP errors that may be longer than the frame they
/// answer; 600 bytes covers the IPv6 minimum-MTU quote). Reuses `buf`'s allocation.
/// Returns the frame's offset in `buf` (always `HEADROOM`) and its length, the shape of
/// the core's `FrameBuf`.
pub fn copy_with_headroom(frame: &[u8], buf: &mut Vec<u8>, tailroom: usize) -> (usize, usize) {
    buf.clear();
    buf.resize(HEADROOM, 0);
    buf.extend_from_slice(frame);
    buf.resize(HEADROOM + frame.len() + tailroom, 0);
    (HEADROOM, frame.len())
}

/// A zeroed `ifreq` naming `ifname`, or `InvalidInput` when the name cannot be one.
fn ifreq_for(ifname: &str) -> io::Result<libc::ifreq> {
    let b = ifname.as_bytes();
    if b.is_empty() || b.len() >= libc::IFNAMSIZ || b.contains(&0) || b.contains(&b'/') {
        return Err(invalid(format!("invalid interface name {ifname:?}")));
    }
    // SAFETY: ifreq is plain old data (a name and a union of plain values); all-zero is
    // a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(b) {
        *d = *s as libc::c_char;
    }
    Ok(ifr)
}

/// Run an interface ioctl on a throwaway datagram socket (of the calling thread's
/// network namespace).
fn if_ioctl(ifname: &str, req: libc::c_ulong, op: &'static str) -> io::Result<libc::ifreq> {
    let mut ifr = ifreq_for(ifname)?;
    // SAFETY: plain socket(2) call, no pointers.
    let raw =
        syscall(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })
            .map_err(|e| os_err("socket(AF_INET)", ifname, e))?;
    // SAFETY: `raw` is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: `req` is one of the SIOCGIF* requests that read a name from and write a
    // result into the `ifreq` passed, which is valid and writable.
    syscall(unsafe { libc::ioctl(fd.as_raw_fd(), req, &raw mut ifr) }).map_err(|e| {
        let e = if e.raw_os_error() == Some(libc::ENODEV) {
            io::Error::new(io::ErrorKind::NotFound, e)
        } else {
            e
        };
        os_err(op, ifname, e)
    })?;
    Ok(ifr)
}

/// Index of interface `ifname`.
///
/// # Errors
///
/// `NotFound` when there is no such interface; `InvalidInput` for a malformed name.
pub fn ifindex(ifname: &str) -> io::Result<u32> {
    let ifr = if_ioctl(ifname, libc::SIOCGIFINDEX, "ioctl(SIOCGIFINDEX)")?;
    // SAFETY: SIOCGIFINDEX filled the `ifru_ifindex` member of the union.
    let idx = unsafe { ifr.ifr_ifru.ifru_ifindex };
    u32::try_from(idx)
        .ok()
        .filter(|&i| i > 0)
        .ok_or_else(|| invalid(format!("kernel returned ifindex {idx} for {ifname}")))
}

/// Name of the interface with index `ifindex`.
///
/// # Errors
///
/// `NotFound` when there is no such interface.
pub fn ifname_of(ifindex: u32) -> io::Result<String> {
    let mut name: [libc::c_char; libc::IF_NAMESIZE] = [0; libc::IF_NAMESIZE];
    // SAFETY: `name` has the IF_NAMESIZE bytes if_indextoname(3) may write.
    let p = unsafe { libc::if_indextoname(ifindex, name.as_mut_ptr()) };
    if p.is_null() {
        return Err(os_err(
            "if_indextoname",
            ifindex,
            io::Error::last_os_error(),
        ));
    }
    let bytes: Vec<u8> = name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Hardware (MAC) address of an Ethernet interface.
///
/// # Errors
///
/// `NotFound` when there is no such interface; `InvalidData` when it is not Ethernet-like.
pub fn mac_of(ifname: &str) -> io::Result<MacAddr> {
    let ifr = if_ioctl(ifname, libc::SIOCGIFHWADDR, "ioctl(SIOCGIFHWADDR)")?;
    // SAFETY: SIOCGIFHWADDR filled the `ifru_hwaddr` member of the union.
    let sa = unsafe { ifr.ifr_ifru.ifru_hwaddr };
    if sa.sa_family != libc::ARPHRD_ETHER && sa.sa_family != libc::ARPHRD_LOOPBACK {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{ifname} is not an Ethernet device (hardware type {})",
                sa.sa_family
            ),
        ));
    }
    let mut mac = [0u8; 6];
    for (d, s) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *d = *s as u8;
    }
    Ok(MacAddr(mac))
}

/// MTU of an interface (the largest IP packet, without the Ethernet header).
///
/// # Errors
///
/// `NotFound` when there is no such interface.
pub fn mtu_of(ifname: &str) -> io::Result<u32> {
    let ifr = if_ioctl(ifname, libc::SIOCGIFMTU, "ioctl(SIOCGIFMTU)")?;
    // SAFETY: SIOCGIFMTU filled the `ifru_mtu` member of the union.
    let mtu = unsafe { ifr.ifr_ifru.ifru_mtu };
    u32::try_from(mtu).map_err(|_| invalid(format!("kernel returned MTU {mtu} for {ifname}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Build a block image: a block header then frames as the kernel lays them out.
    fn block(frames: &[(&[u8], u32, Option<u16>)]) -> Vec<u8> {
        const BH: usize = offset_of!(libc::tpacket_block_desc, hdr);
        const HDR: usize = size_of::<libc::tpacket3_hdr>();
        const SLL: usize = HDR.next_multiple_of(libc::TPACKET_ALIGNMENT);
        let mac_off = (SLL + size_of::<libc::sockaddr_ll>()).next_multiple_of(16) + 2;
        let mut b = vec![0u8; 4096];
        let first = 48usize;
        let put32 =
            |b: &mut Vec<u8>, o: usize, v: u32| b[o..o + 4].copy_from_slice(&v.to_ne_bytes());
        put32(
            &mut b,
            BH + offset_of!(libc::tpacket_hdr_v1, num_pkts),
            frames.len() as u32,
        );
        put32(
            &mut b,
            BH + offset_of!(libc::tpacket_hdr_v1, offset_to_first_pkt),
            first as u32,
        );
        let mut off = first;
        for (k, (data, status, tci)) in frames.iter().enumerate() {
            let size = (mac_off + data.len()).next_multiple_of(16);
            let next = if k + 1 == frames.len() { 0 } else { size };
            put32(
                &mut b,
                off + offset_of!(libc::tpacket3_hdr, tp_next_offset),
                next as u32,
            );
            put32(
                &mut b,
                off + offset_of!(libc::tpacket3_hdr, tp_snaplen),
                data.len() as u32,
            );
            put32(
                &mut b,
                off + offset_of!(libc::tpacket3_hdr, tp_len),
                data.len() as u32,
            );
            put32(
                &mut b,
                off + offset_of!(libc::tpacket3_hdr, tp_status),
                *status,
            );
            let m = off + offset_of!(libc::tpacket3_hdr, tp_mac);
            b[m..m + 2].copy_from_slice(&(mac_off as u16).to_ne_bytes());
            let hv1 = off + offset_of!(libc::tpacket3_hdr, hv1);
            put32(
                &mut b,
                hv1 + offset_of!(libc::tpacket_hdr_variant1, tp_vlan_tci),
                u32::from(tci.unwrap_or(0)),
            );
            put32(
                &mut b,
                off + SLL + offset_of!(libc::sockaddr_ll, sll_ifindex),
                7,
            );
            b[off + SLL + offset_of!(libc::sockaddr_ll, sll_pkttype)] = 3;
            b[off + mac_off..off + mac_off + data.len()].copy_from_slice(data);
            off += size;
        }
        b
    }

    #[test]
    fn walk_frames_delivers_each_frame_with_metadata() {
        let f1 = [1u8; 60];
        let f2 = [2u8; 100];
        let blk = block(&[
            (&f1, libc::TP_STATUS_USER, None),
            (
                &f2,
                libc::TP_STATUS_USER | libc::TP_STATUS_VLAN_VALID | libc::TP_STATUS_CSUMNOTREADY,
                Some(42),
            ),
        ]);
        let mut got = Vec::new();
        let (n, bad) = walk_frames(&blk, 9, &mut |fr: &[u8], info| {
            got.push((fr.to_vec(), info))
        });
        assert_eq!((n, bad), (2, 0));
        assert_eq!(got[0].0, f1);
        assert_eq!(got[0].1.vlan_tci, None);
        assert_eq!(got[0].1.ifindex, 7);
        assert_eq!(got[0].1.pkt_type, 3);
        assert_eq!(got[1].0, f2);
        assert_eq!(got[1].1.vlan_tci, Some(42));
        assert!(got[1].1.csum_not_ready);
        assert!(!got[0].1.csum_not_ready);
    }

    #[test]
    fn walk_frames_survives_corrupt_headers() {
        let f1 = [1u8; 60];
        let good = block(&[(&f1, 0, None), (&f1, 0, None)]);
        // Every single-byte corruption of the header area either still parses or is
        // counted; none panics or reads outside the block.
        for pos in 0..256 {
            for v in [0u8, 0x7f, 0xff] {
                let mut b = good.clone();
                b[pos] = v;
                let _ = walk_frames(&b, 1, &mut |fr: &[u8], _| assert!(fr.len() <= b.len()));
            }
        }
        // Truncated blocks too.
        for len in 0..200 {
            let _ = walk_frames(&good[..len], 1, &mut |_: &[u8], _| {});
        }
    }

    #[test]
    fn opts_validation() {
        assert!(PacketOpts::default().validate().is_ok());
        let bad = [
            PacketOpts {
                block_size: 1000,
                ..Default::default()
            },
            PacketOpts {
                block_count: 0,
                ..Default::default()
            },
            PacketOpts {
                frame_size: 24,
                ..Default::default()
            },
            PacketOpts {
                frame_size: 2050,
                ..Default::default()
            },
            PacketOpts {
                frame_size: 3072,
                ..Default::default()
            },
            PacketOpts {
                block_count: u32::MAX,
                ..Default::default()
            },
        ];
        for o in bad {
            let e = o.validate().expect_err("invalid geometry");
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{o:?}");
        }
    }

    #[test]
    fn copy_with_headroom_places_frame() {
        let mut buf = vec![9u8; 3];
        let (off, len) = copy_with_headroom(&[1, 2, 3, 4], &mut buf, 10);
        assert_eq!((off, len), (HEADROOM, 4));
        assert_eq!(&buf[off..off + len], &[1, 2, 3, 4]);
        assert_eq!(buf.len(), HEADROOM + 4 + 10);
        assert!(buf[..HEADROOM].iter().all(|&b| b == 0));
    }

    #[test]
    fn bad_interface_names_are_rejected() {
        for n in ["", "a/b", "0123456789abcdef", "a\0b"] {
            assert_eq!(
                ifindex(n).expect_err("bad name").kind(),
                io::ErrorKind::InvalidInput,
                "{n:?}"
            );
        }
        assert_eq!(
            ifindex("rvs-nonexist0")
                .expect_err("no such interface")
                .kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn loopback_facts() {
        assert_eq!(ifindex("lo").expect("lo exists"), 1);
        assert_eq!(ifname_of(1).expect("index 1"), "lo");
        assert!(mtu_of("lo").expect("lo mtu") >= 1280);
        assert_eq!(mac_of("lo").expect("lo mac"), MacAddr([0; 6]));
    }
}
