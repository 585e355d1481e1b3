//! A packet generator that injects XDP frames, like `xdp-trafficgen`: `rvs-lab xdpgen`.
//!
//! (`gen` is a reserved word in Rust 2024: the module is written `rvs_io::xdp::r#gen`.)
//!
//! # How
//!
//! [`run`] loads a tiny XDP program (`bpf/gen.c`) and runs it with `BPF_PROG_TEST_RUN`
//! in live-frames mode (`BPF_F_TEST_XDP_LIVE_FRAMES`, Linux 5.18+) on an Ethernet, IPv4 and
//! UDP template frame ([`template`]) "received" on the interface of [`GenSpec::ifname`].
//! For each frame the program writes a source address low byte and a UDP source port
//! derived from a per-CPU counter (address index `n % src_count`, port index
//! `(n / src_count) % sport_count`: every pair comes up), recomputes the IPv4 header
//! checksum, sets the UDP checksum to 0 and returns `XDP_TX`; the kernel then transmits
//! the frame out of that interface with its `ndo_xdp_xmit`. No socket buffer is built on
//! the sending side: on a veth pair the frames arrive at the peer as XDP frames in a page
//! pool's pages with full headroom, as from a NIC's driver, unlike AF_PACKET (`trafgen`),
//! whose socket buffers a native XDP program on the peer must first copy.
//!
//! # Without live frames: [`run_loop`]
//!
//! Some kernels refuse live-frames test runs even to root (EPERM on a 6.18 build whose
//! other test-run modes work). [`run_loop`] makes the same frames another way: seed
//! frames go round a veth pair it creates, and the `rvs_gen_loop` program on one end sends
//! a copy of each frame that comes round (a `BPF_F_BROADCAST` redirect to the loop's other
//! end and to the output device; the kernel clones the frame into a fresh page) stamped as
//! [`run`] stamps them. The bounds are kept by the program (`bpf_ktime_get_ns`). Paced,
//! each burst is a few seeds whose hop counts add up to the burst. Measured by hand on
//! that 6.18 VM into a veth peer that drops with a native XDP program, everything on one
//! CPU: 5.2-5.3 M frames/s flat out with 16 to 128 seeds; paced, at most 1.6 M/s with one
//! seed per burst of 64 (one frame per turn of the loop), 1.3-1.5 M/s with 8 or 16 seeds,
//! 0.84 M/s with 64 (each seed costs an AF_PACKET send and a copy into the loop).
//!
//! A generator this fast can overfill a receiver whose NAPI runs on another CPU: with
//! the peer's threaded NAPI pinned to the other CPU, 5.6 M/s offered flat out let only
//! 0.28 M/s through (the rest dropped at the peer's full ring, and the receiving CPU busy
//! all the while), against 2.68 M/s through at 2.7 M/s offered in an even stream. Measure
//! a receiver at paced rates, not flat out.
//!
//! # Requirements and limits
//!
//! - **veth needs NAPI on the receiving peer**, as for any `XDP_TX`/redirect into a veth:
//!   an XDP program attached to the peer, or `ethtool -K PEER gro on`. Without either the
//!   kernel refuses each transmission and [`GenReport::sent`] still counts the frames: it
//!   counts frames the program returned `XDP_TX` for, not frames delivered. Frames refused
//!   for want of NAPI appear in no counter at all (checked on 6.18: both devices' counters
//!   stay still); frames dropped because the peer's 256-frame ring was full appear as the
//!   peer's `rx_dropped` and the sender's `tx_dropped`. Check the receiver's `rx_packets`.
//!   Physical NICs need driver support for `ndo_xdp_xmit`.
//! - **Where the receiver's work runs**: the veth peer's NAPI is scheduled on the CPU that
//!   transmitted, i.e. the generator's, and runs there after each batch of 64 (XDP program,
//!   stack) unless the peer uses threaded NAPI (`echo 1 > /sys/class/net/PEER/threaded`,
//!   then a `napi/PEER-*` kernel thread that can be pinned elsewhere). The same holds for
//!   AF_PACKET into a veth whose peer has NAPI. So into a veth, the measured rate is that
//!   of generator *and* receiver on one CPU unless NAPI is threaded.
//! - One CPU per call: the test run executes on the calling thread's CPU. Pin it with
//!   [`pin_current_thread`] (or `taskset`); run several processes for several CPUs (each
//!   has its own counter, so the flows they generate are the same).
//! - Frames of 60 to 1514 bytes (no FCS); IPv4 only, no VLAN tag, UDP payload zeros.
//! - The run is bounded by a packet count and a time, checked between chunks of at most
//!   [`CHUNK`] frames (one syscall each), so the time may overshoot by one chunk (tens of
//!   milliseconds). A signal interrupting a chunk ends the run (`EINTR`, frames of that
//!   chunk not counted).
//!
//! # Measured
//!
//! By hand on Linux 6.18, 2 vCPUs (shared machine), 60-byte frames (64 on the wire),
//! 16 sources x 1000 ports, generator pinned to CPU 1 with `taskset`, 4 s, into a veth
//! whose peer drops everything with a native XDP program (`return XDP_DROP`); rate =
//! frames counted by the peer's `rx_packets`:
//!
//! | generator                                         | frames/s into the peer |
//! |---------------------------------------------------|------------------------|
//! | `rvs-lab xdpgen` (this module), two runs          | 2.71 M, 2.72 M         |
//! | `trafgen -P 1 -Q -C` (AF_PACKET, as `bench.sh`)   | 1.55 M                 |
//!
//! In both cases the peer's NAPI (its XDP program) ran on the generator's CPU, so these
//! rates are generator plus receiver on one CPU. With threaded NAPI on the peer and its
//! `napi/r0-*` thread pinned to CPU 0, `xdpgen` handed 2.43 M frames/s to the device and
//! the peer received 2.30 M/s: the rest (5%) overflowed the peer's 256-frame ring
//! (`rx_dropped`), still counted in [`GenReport::sent`]. Left on the same CPU as the
//! generator, the thread received only 60% of them.
//!
//! # Privileges
//!
//! `CAP_BPF` + `CAP_NET_ADMIN` (or root).

use std::fmt;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use aya::maps::{Array, MapData};
use aya::programs::Xdp;

use super::test_run::{TestRunAttr, prog_test_run};
use super::{BUILT_WITHOUT_CLANG, ENOTSUPP, aya_err, raw_errno};
use crate::packet::ifindex;
use crate::{MacAddr, invalid, os_err, syscall};

/// The compiled generator, or empty when built without clang.
static GEN_OBJ: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/gen.o"));
/// The same program in another instruction layout, for JITs that refuse the first.
static GEN_OBJ_ALT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/gen-alt.o"));

const PROG: &str = "rvs_gen";
const PROG_LOOP: &str = "rvs_gen_loop";
const MAP_PARAMS: &str = "rvs_gen_params";
const MAP_LOOP_CFG: &str = "rvs_loop_cfg";
const MAP_LOOP_STATE: &str = "rvs_loop_state";
const MAP_LOOP_OUT: &str = "rvs_loop_out";

/// Frames per `BPF_PROG_TEST_RUN` call, at most.
pub const CHUNK: u32 = 65536;
/// Smallest frame: 64 bytes on the wire without the FCS.
pub const MIN_FRAME: usize = 60;
/// Largest frame: a 1500-byte IP packet.
pub const MAX_FRAME: usize = 1514;
/// `BPF_F_TEST_XDP_LIVE_FRAMES`.
const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 2;

/// What to generate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenSpec {
    /// Interface to send from (in the calling thread's network namespace).
    pub ifname: String,
    /// Destination MAC address (the receiver's).
    pub dst_mac: MacAddr,
    /// Source MAC address (usually the interface's).
    pub src_mac: MacAddr,
    /// First source address: its last byte varies over `src_count` values.
    pub src: Ipv4Addr,
    /// Number of source addresses, 1 to 256 minus the first's last byte.
    pub src_count: u8,
    /// First UDP source port.
    pub sport_first: u16,
    /// Number of UDP source ports, at least 1, `sport_first + sport_count - 1 <= 65535`.
    pub sport_count: u16,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// UDP destination port.
    pub dport: u16,
    /// Frame length without FCS, [`MIN_FRAME`] (64 on the wire) to [`MAX_FRAME`].
    pub frame_len: usize,
}

impl GenSpec {
    /// Check the ranges.
    ///
    /// # Errors
    ///
    /// `InvalidInput` naming the bad field.
    pub fn validate(&self) -> io::Result<()> {
        if self.ifname.is_empty() {
            return Err(invalid("xdpgen: empty interface name"));
        }
        if self.src_count == 0 {
            return Err(invalid("xdpgen: src_count must be at least 1"));
        }
        let last = u32::from(self.src.octets()[3]);
        if last + u32::from(self.src_count) - 1 > 255 {
            return Err(invalid(format!(
                "xdpgen: {} source addresses from {} pass .255",
                self.src_count, self.src
            )));
        }
        if self.sport_count == 0 {
            return Err(invalid("xdpgen: sport_count must be at least 1"));
        }
        if u32::from(self.sport_first) + u32::from(self.sport_count) - 1 > 65535 {
            return Err(invalid(format!(
                "xdpgen: {} source ports from {} pass 65535",
                self.sport_count, self.sport_first
            )));
        }
        if !(MIN_FRAME..=MAX_FRAME).contains(&self.frame_len) {
            return Err(invalid(format!(
                "xdpgen: frame length {} not in {MIN_FRAME}..={MAX_FRAME}",
                self.frame_len
            )));
        }
        Ok(())
    }
}

/// What a run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GenReport {
    /// Frames the program sent (`XDP_TX`): handed to the device, not necessarily
    /// delivered (see the module docs).
    pub sent: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl GenReport {
    /// Frames per second.
    pub fn pps(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 { self.sent as f64 / s } else { 0.0 }
    }
}

impl fmt::Display for GenReport {
    /// `sent=N seconds=S pps=R`: one line a shell script can parse.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sent={} seconds={:.3} pps={:.0}",
            self.sent,
            self.elapsed.as_secs_f64(),
            self.pps()
        )
    }
}

/// The program's parameters (`struct gen_params` in `bpf/gen.c`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct GenParams {
    src_count: u32,
    src_first: u32,
    sport_count: u32,
    sport_first: u32,
}

// SAFETY: `repr(C)`, four `u32`s: no padding, every bit pattern valid.
unsafe impl aya::Pod for GenParams {}

impl GenParams {
    fn of(spec: &GenSpec) -> Self {
        Self {
            src_count: spec.src_count.into(),
            src_first: spec.src.octets()[3].into(),
            sport_count: spec.sport_count.into(),
            sport_first: spec.sport_first.into(),
        }
    }
}

/// RFC 1071 checksum of `data` (even length).
fn csum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The template frame of `spec`: Ethernet, IPv4 (DF, TTL 64, valid checksum), UDP from the
/// first source address and port (checksum 0), zero payload up to `frame_len`.
///
/// # Errors
///
/// `InvalidInput` as [`GenSpec::validate`].
pub fn template(spec: &GenSpec) -> io::Result<Vec<u8>> {
    spec.validate()?;
    let len = spec.frame_len;
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&spec.dst_mac.0);
    f[6..12].copy_from_slice(&spec.src_mac.0);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip_len = (len - 14) as u16;
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&spec.src.octets());
    ip[16..20].copy_from_slice(&spec.dst.octets());
    let c = csum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let udp = &mut f[34..42];
    udp[0..2].copy_from_slice(&spec.sport_first.to_be_bytes());
    udp[2..4].copy_from_slice(&spec.dport.to_be_bytes());
    udp[4..6].copy_from_slice(&(ip_len - 20).to_be_bytes());
    Ok(f)
}

/// Pin the calling thread to CPU `cpu` (`sched_setaffinity(2)`).
///
/// # Errors
///
/// `InvalidInput` for a CPU number beyond the set; the kernel's error (`EINVAL` for a CPU
/// that is not online or not allowed).
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(invalid(format!("cpu {cpu} out of range")));
    }
    // SAFETY: `cpu_set_t` is a plain bit array; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below CPU_SETSIZE (checked above), so the bit is inside `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a live, initialised `cpu_set_t` of the size passed; pid 0 is the
    // calling thread.
    let r = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set) };
    syscall(r)
        .map(drop)
        .map_err(|e| os_err("sched_setaffinity", format!("cpu {cpu}"), e))
}

/// The loaded generator program and its parameter map.
struct GenProgram {
    ebpf: aya::Ebpf,
    prog: &'static str,
}

impl GenProgram {
    fn load_any(prog: &'static str, ifname: &str) -> io::Result<Self> {
        if GEN_OBJ.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                BUILT_WITHOUT_CLANG,
            ));
        }
        let mut first_err = None;
        for obj in [GEN_OBJ, GEN_OBJ_ALT] {
            match Self::load(obj, prog, ifname) {
                Ok(p) => return Ok(p),
                Err(e) if raw_errno(&e) == Some(ENOTSUPP) => {
                    first_err.get_or_insert(e);
                }
                Err(e) => return Err(first_err.unwrap_or(e)),
            }
        }
        Err(first_err.unwrap_or_else(|| io::Error::other("xdpgen: no program loaded")))
    }

    fn load(obj: &[u8], name: &'static str, ifname: &str) -> io::Result<Self> {
        let mut ebpf = aya::EbpfLoader::new()
            .load(obj)
            .map_err(|e| aya_err("bpf(load object)", ifname, e))?;
        let prog: &mut Xdp = ebpf
            .program_mut(name)
            .ok_or_else(|| io::Error::other(format!("generator object has no program {name}")))?
            .try_into()
            .map_err(|e| aya_err("bpf(program type)", ifname, e))?;
        prog.load()
            .map_err(|e| aya_err("bpf(BPF_PROG_LOAD)", ifname, e))?;
        Ok(Self { ebpf, prog: name })
    }

    fn array<V: aya::Pod>(&mut self, name: &str) -> io::Result<Array<&mut MapData, V>> {
        let map = self
            .ebpf
            .map_mut(name)
            .ok_or_else(|| io::Error::other(format!("generator object has no map {name}")))?;
        Array::try_from(map).map_err(|e| aya_err("bpf(map)", name, e))
    }

    fn set_params(&mut self, p: GenParams) -> io::Result<()> {
        self.array(MAP_PARAMS)?
            .set(0, p, 0)
            .map_err(|e| aya_err("bpf(BPF_MAP_UPDATE_ELEM)", MAP_PARAMS, e))
    }

    fn fd(&self) -> io::Result<BorrowedFd<'_>> {
        let prog: &Xdp = self
            .ebpf
            .program(self.prog)
            .and_then(|p| <&Xdp>::try_from(p).ok())
            .ok_or_else(|| io::Error::other("generator program vanished"))?;
        Ok(prog
            .fd()
            .map_err(|e| aya_err("bpf(program fd)", self.prog, e))?
            .as_fd())
    }
}

/// `struct xdp_md` as the test run's context.
#[repr(C)]
#[derive(Default)]
struct XdpMd {
    data: u32,
    data_end: u32,
    data_meta: u32,
    ingress_ifindex: u32,
    rx_queue_index: u32,
    egress_ifindex: u32,
}

/// One live-frames test run: `repeat` frames from `data` "received" on `ifindex`, queue 0.
fn live_run(prog: BorrowedFd<'_>, ifindex: u32, data: &[u8], repeat: u32) -> io::Result<()> {
    let size = u32::try_from(data.len()).map_err(|_| invalid("frame too long"))?;
    let ctx = XdpMd {
        data_end: size,
        ingress_ifindex: ifindex,
        ..XdpMd::default()
    };
    let mut attr = TestRunAttr {
        prog_fd: prog.as_raw_fd() as u32,
        data_size_in: size,
        data_in: data.as_ptr() as u64,
        repeat,
        ctx_size_in: size_of::<XdpMd>() as u32,
        ctx_in: (&raw const ctx) as u64,
        flags: BPF_F_TEST_XDP_LIVE_FRAMES,
        batch_size: 0, // kernel default, 64
        ..TestRunAttr::default()
    };
    // SAFETY: `data_in` points at `data` (`data_size_in` bytes, alive for the call) and
    // `ctx_in` at `ctx` (`ctx_size_in` bytes, alive); no output buffers (live mode writes
    // none).
    unsafe { prog_test_run(&mut attr) }
}

/// How fast to send: at most `rate` frames per second, in bursts of `burst` frames (one
/// `BPF_PROG_TEST_RUN` call each). `None` in [`run_paced`] means as fast as possible, in
/// calls of up to [`CHUNK`] frames.
///
/// A burst of `burst` frames leaves back to back (the kernel flushes them to the device in
/// batches of 64), then the generator waits until the average rate since the start is back
/// at `rate`: the receiver sees `rate / burst` bursts per second, like a NIC's interrupt
/// coalescing would hand them over. A late burst is not made up by a faster one: after a
/// stall (the generator descheduled) the schedule restarts from the current time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pace {
    /// Frames per second, at least 1.
    pub rate: u64,
    /// Frames per burst, 1 to [`CHUNK`].
    pub burst: u32,
}

impl Pace {
    /// Check the ranges.
    ///
    /// # Errors
    ///
    /// `InvalidInput` naming the bad field.
    pub fn validate(&self) -> io::Result<()> {
        if self.rate == 0 {
            return Err(invalid("rate must be at least 1 frame per second"));
        }
        if self.burst == 0 || self.burst > CHUNK {
            return Err(invalid("burst must be 1 to 65536 frames"));
        }
        Ok(())
    }

    /// When the burst after `sent` frames is due, counted from the start of the schedule.
    pub fn due(&self, sent: u64) -> Duration {
        let nanos = u128::from(sent) * 1_000_000_000 / u128::from(self.rate.max(1));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

/// A schedule falls this far behind before it is restarted rather than caught up.
const PACE_SLACK: Duration = Duration::from_millis(5);

/// Generate frames of `spec` until `max_packets` are sent or `max_time` has passed
/// (checked between chunks of at most [`CHUNK`] frames), from the calling thread's CPU and
/// network namespace.
///
/// # Errors
///
/// `InvalidInput` for a bad spec; `NotFound` without such an interface; `Unsupported` when
/// built without clang; the kernel's error when it refuses the program or the run
/// (`EINVAL` from a kernel without `BPF_F_TEST_XDP_LIVE_FRAMES` (before 5.18), said so).
pub fn run(spec: &GenSpec, max_packets: u64, max_time: Duration) -> io::Result<GenReport> {
    run_paced(spec, max_packets, max_time, None)
}

/// [`run`] at the rate of `pace` (see [`Pace`]), or as fast as possible with `None`.
///
/// # Errors
///
/// As [`run`]; `InvalidInput` for a bad `pace`.
pub fn run_paced(
    spec: &GenSpec,
    max_packets: u64,
    max_time: Duration,
    pace: Option<Pace>,
) -> io::Result<GenReport> {
    if let Some(p) = pace {
        p.validate()?;
    }
    let frame = template(spec)?;
    let ifi = ifindex(&spec.ifname)?;
    let mut prog = GenProgram::load_any(PROG, &spec.ifname)?;
    prog.set_params(GenParams::of(spec))?;
    let fd = prog.fd()?;
    let start = Instant::now();
    let mut sent = 0u64;
    // the paced schedule: its origin and the frames sent since
    let (mut origin, mut since) = (start, 0u64);
    while sent < max_packets && start.elapsed() < max_time {
        let chunk = pace.map_or(CHUNK, |p| p.burst);
        let n = (max_packets - sent).min(u64::from(chunk)) as u32;
        if let Some(p) = pace {
            let due = origin + p.due(since);
            let now = Instant::now();
            if now > due + PACE_SLACK {
                (origin, since) = (now, 0);
            } else if due > now {
                wait_until(due);
            }
        }
        match live_run(fd, ifi, &frame, n) {
            Ok(()) => {
                sent += u64::from(n);
                since += u64::from(n);
            }
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => break,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                return Err(os_err(
                    "bpf(BPF_PROG_TEST_RUN, BPF_F_TEST_XDP_LIVE_FRAMES)",
                    &spec.ifname,
                    io::Error::new(
                        e.kind(),
                        format!(
                            "{e}: the kernel refused a live-frames run \
                             (needs Linux 5.18+; frame or context refused)"
                        ),
                    ),
                ));
            }
            Err(e) => {
                return Err(os_err(
                    "bpf(BPF_PROG_TEST_RUN, BPF_F_TEST_XDP_LIVE_FRAMES)",
                    &spec.ifname,
                    e,
                ));
            }
        }
    }
    Ok(GenReport {
        sent,
        elapsed: start.elapsed(),
    })
}

// ------------------------------------------------------------------ the redirect loop

/// Most seed frames [`run_loop`] puts in its loop: veth rings hold 256 frames.
pub const MAX_SEEDS: u32 = 128;

/// `struct loop_cfg` in `bpf/gen.c`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct LoopCfg {
    max_sent: u64,
    duration_ns: u64,
}

// SAFETY: `repr(C)`, two `u64`s: no padding, every bit pattern valid.
unsafe impl aya::Pod for LoopCfg {}

/// `struct loop_state` in `bpf/gen.c`: what the loop did so far.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoopState {
    /// `CLOCK_MONOTONIC` nanoseconds of the first frame the program saw (0: none yet).
    pub start_ns: u64,
    /// ... and of the last frame it sent.
    pub last_ns: u64,
    /// Frames sent out of the output device.
    pub sent: u64,
    /// Frames dropped because the run was over (each ends one seed's journey).
    pub ended: u64,
}

// SAFETY: `repr(C)`, four `u64`s: no padding, every bit pattern valid.
unsafe impl aya::Pod for LoopState {}

impl GenProgram {
    fn set_loop_cfg(&mut self, c: LoopCfg) -> io::Result<()> {
        self.array(MAP_LOOP_CFG)?
            .set(0, c, 0)
            .map_err(|e| aya_err("bpf(BPF_MAP_UPDATE_ELEM)", MAP_LOOP_CFG, e))
    }

    fn loop_state(&mut self) -> io::Result<LoopState> {
        self.array(MAP_LOOP_STATE)?
            .get(&0, 0)
            .map_err(|e| aya_err("bpf(BPF_MAP_LOOKUP_ELEM)", MAP_LOOP_STATE, e))
    }

    /// Entry 0 of the output map: the loop's other end; entry 1: the output device.
    fn set_loop_out(&mut self, back: u32, out: u32) -> io::Result<()> {
        let map = self.ebpf.map_mut(MAP_LOOP_OUT).ok_or_else(|| {
            io::Error::other(format!("generator object has no map {MAP_LOOP_OUT}"))
        })?;
        let mut dm =
            aya::maps::DevMap::try_from(map).map_err(|e| aya_err("bpf(map)", MAP_LOOP_OUT, e))?;
        for (k, ifi) in [(0, back), (1, out)] {
            dm.set(k, ifi, None, 0)
                .map_err(|e| aya_err("bpf(BPF_MAP_UPDATE_ELEM)", MAP_LOOP_OUT, e))?;
        }
        Ok(())
    }

    fn attach_native(&mut self, ifname: &str) -> io::Result<()> {
        let prog: &mut Xdp = self
            .ebpf
            .program_mut(self.prog)
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| io::Error::other("generator program vanished"))?;
        prog.attach(ifname, aya::programs::XdpMode::Driver)
            .map(drop)
            .map_err(|e| aya_err("attach(XDP, native)", ifname, e))
    }
}

/// The loop's veth pair, deleted on drop (which also detaches the program).
struct LoopPair {
    a: String,
    b: String,
}

impl LoopPair {
    fn create() -> io::Result<Self> {
        // `rvsgl` + up to 8 digits + a/b: within the 15 characters of a name.
        let id = std::process::id() % 100_000_000;
        let pair = Self {
            a: format!("rvsgl{id}a"),
            b: format!("rvsgl{id}b"),
        };
        crate::link::add_veth(&pair.a, &pair.b)?;
        crate::link::set_up(&pair.b, true)?;
        crate::link::set_up(&pair.a, true)?;
        Ok(pair)
    }
}

impl Drop for LoopPair {
    fn drop(&mut self) {
        if let Err(e) = crate::link::delete(&self.a) {
            eprintln!("rvs-io: deleting the generator's loop {}: {e}", self.a);
        }
    }
}

/// Generate frames of `spec` out of [`GenSpec::ifname`] without `BPF_PROG_TEST_RUN`,
/// through a veth pair this function creates (`rvsgl<pid>a` - `rvsgl<pid>b`, deleted at
/// the end) with the `rvs_gen_loop` program on its `b` end, which stamps each frame as
/// [`run`]'s (next source address and port):
///
/// - `pace` `None`, flat out: `seeds` frames (1 to [`MAX_SEEDS`]) go round the pair for
///   the whole run, and a copy of each frame coming round goes out of the output device.
///   The loop keeps the calling thread's CPU busy in its NAPI poll.
/// - `pace` `Some`: each burst is `min(seeds, pace.burst)` seeds sent together by this
///   thread on the schedule of [`Pace`], each carrying a hop count in its IPv4 ID field,
///   the counts adding up to `pace.burst` (at most 65535). A seed with hop count h comes
///   round h times, a copy out each time but the last, when it leaves by the output device
///   itself. The loop is idle between bursts. With as many seeds as frames per burst, the
///   burst reaches the receiver at once, as a NIC's batch would; with one seed, one frame
///   per turn of the loop (about half a microsecond each).
///
/// At most `max_packets` frames, at most `max_time` from the first frame: both enforced
/// by the program itself, so that the loop stops even if this process is killed.
///
/// The receiver gets the same as from [`run`]: XDP frames with full headroom in pages (the
/// kernel's clones of the looping frame), no socket buffer. The loop runs in the veth's
/// NAPI poll on the calling thread's CPU (the seeds are sent from it): pin the thread
/// first. Returns after the run, or on SIGINT/SIGTERM (blocked for the calling thread
/// from then on), with what was sent; `elapsed` is from the first frame to the last one
/// sent, by the program's clock.
///
/// # Errors
///
/// As [`run`]; `InvalidInput` for a bad `seeds` or `pace`; the kernel's error when it
/// refuses the veth pair or a native XDP attachment; `TimedOut` when no seed frame ever
/// reached the program.
pub fn run_loop(
    spec: &GenSpec,
    seeds: u32,
    max_packets: u64,
    max_time: Duration,
    pace: Option<Pace>,
) -> io::Result<GenReport> {
    if let Some(p) = pace {
        p.validate()?;
        if p.burst > u32::from(u16::MAX) {
            return Err(invalid("xdpgen loop: burst must be 1 to 65535 frames"));
        }
    }
    if !(1..=MAX_SEEDS).contains(&seeds) {
        return Err(invalid(format!("seeds must be 1 to {MAX_SEEDS}")));
    }
    let frame = template(spec)?;
    let out = ifindex(&spec.ifname)?;
    let mut prog = GenProgram::load_any(PROG_LOOP, &spec.ifname)?;
    prog.set_params(GenParams::of(spec))?;
    prog.set_loop_cfg(LoopCfg {
        max_sent: max_packets,
        duration_ns: u64::try_from(max_time.as_nanos()).unwrap_or(u64::MAX),
    })?;
    let sig = crate::signal::SignalFd::termination()?;
    let pair = LoopPair::create()?;
    prog.set_loop_out(ifindex(&pair.a)?, out)?;
    prog.attach_native(&pair.b)?;
    let mut sock = crate::packet::PacketSocket::open(
        &pair.a,
        &crate::packet::PacketOpts {
            block_size: 1 << 16,
            block_count: 1,
            ..Default::default()
        },
    )?;
    let started = Instant::now();
    let hard_stop = started + max_time + Duration::from_secs(1);
    if let Some(p) = pace {
        // One burst: `n` seeds sent together, their hop counts (in the IPv4 ID field; the
        // checksum is the program's to write) adding up to the burst.
        let n = seeds.min(p.burst);
        let burst: Vec<Vec<u8>> = (0..n)
            .map(|i| {
                let hops = p.burst / n + u32::from(i < p.burst % n);
                let mut f = frame.clone();
                f[18..20].copy_from_slice(&(hops as u16).to_be_bytes());
                f
            })
            .collect();
        let burst: Vec<&[u8]> = burst.iter().map(Vec::as_slice).collect();
        let end = started + max_time;
        let (mut origin, mut since, mut bursts) = (started, 0u64, 0u64);
        while bursts.saturating_mul(u64::from(p.burst)) < max_packets
            && Instant::now() < end
            && sig.take()?.is_none()
        {
            let due = origin + p.due(since);
            let now = Instant::now();
            if now > due + PACE_SLACK {
                (origin, since) = (now, 0);
            } else if due > now {
                // no spinning: a late wake-up is made up by the next bursts, sent at once
                std::thread::sleep(due - now);
            }
            send_all(&mut sock, &burst, end)?;
            bursts += 1;
            since += u64::from(p.burst);
            if bursts == 1 {
                // the first seeds must reach the program: wait for them (bounded)
                let t = Instant::now();
                while prog.loop_state()?.start_ns == 0 && t.elapsed() < Duration::from_secs(1) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    } else {
        send_all(
            &mut sock,
            &vec![frame.as_slice(); seeds as usize],
            hard_stop,
        )?;
    }
    drop(sock);

    // Wait for the end: the program stops sending at the bounds; the state then stands
    // still. A stall of 200 ms is an end too (the seeds lost, or the bursts over).
    let mut last = LoopState::default();
    let mut last_change = Instant::now();
    loop {
        let st = prog.loop_state()?;
        let now = Instant::now();
        if st.start_ns == 0 && now - started > Duration::from_secs(1) {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "xdpgen loop: no seed frame reached the program on {} in 1 s",
                    pair.b
                ),
            ));
        }
        if st != last {
            last = st;
            last_change = now;
        }
        if sig.take()?.is_some()
            || now >= hard_stop
            || (st.start_ns != 0 && now - last_change > Duration::from_millis(200))
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(pair); // detaches the program: the loop stops
    let st = prog.loop_state()?;
    Ok(GenReport {
        sent: st.sent,
        elapsed: Duration::from_nanos(st.last_ns.saturating_sub(st.start_ns)),
    })
}

/// Send all of `frames` on `sock`, waiting out a full queue, until `end` at the latest.
fn send_all(
    sock: &mut crate::packet::PacketSocket,
    frames: &[&[u8]],
    end: Instant,
) -> io::Result<()> {
    let mut put = 0;
    while put < frames.len() && Instant::now() < end {
        let k = sock.send_batch(&frames[put..])?;
        if k == 0 {
            std::thread::sleep(Duration::from_micros(50));
        }
        put += k;
    }
    Ok(())
}

/// Sleep until `t`, the last stretch spinning: a sleep alone overshoots by tens of
/// microseconds, as long as a burst at high rates.
fn wait_until(t: Instant) {
    const SPIN: Duration = Duration::from_micros(60);
    loop {
        let now = Instant::now();
        if now >= t {
            return;
        }
        let left = t - now;
        if left > SPIN {
            std::thread::sleep(left - SPIN);
        } else {
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests;
