//! The AF_XDP socket itself: UMEM, the four rings, bind, and the syscalls that drive them
//! (`if_xdp.h`, Documentation/networking/af_xdp.rst). No policy here: `xdp.rs` decides
//! what goes in and out.
//!
//! Ring protocol: each ring is a power-of-two array of descriptors with a producer and a
//! consumer index (free-running `u32`s) shared with the kernel through `mmap(2)`. The side
//! that produces writes descriptors, then publishes the producer index with release
//! ordering; the consumer reads the producer index with acquire ordering, reads the
//! descriptors, then publishes its consumer index with release ordering. We produce on the
//! fill and TX rings and consume on the RX and completion rings. Both sides cache the
//! other's index and reread it only when the cached value says the ring is full or empty.

use std::io;
use std::marker::PhantomData;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::{os_err, syscall};

/// A memory mapping, unmapped on drop.
#[derive(Debug)]
struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mmap {
    /// `len` bytes of fresh, zeroed, page-aligned memory (the UMEM).
    fn anonymous(len: usize, what: &str) -> io::Result<Self> {
        // SAFETY: a new private anonymous mapping (addr NULL); the result is checked
        // against MAP_FAILED below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        Self::checked(p, len, "mmap(umem)", what)
    }

    /// Map `len` bytes of the ring the kernel exposes at page offset `pgoff` of `fd`.
    fn ring(fd: RawFd, len: usize, pgoff: u64, what: &str) -> io::Result<Self> {
        let off = libc::off_t::try_from(pgoff).map_err(|_| crate::invalid("ring offset"))?;
        // SAFETY: a new shared mapping (addr NULL) of a ring the socket set up, at the
        // offset if_xdp.h defines for it; the result is checked against MAP_FAILED below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                off,
            )
        };
        Self::checked(p, len, "mmap(xsk ring)", what)
    }

    fn checked(p: *mut libc::c_void, len: usize, op: &'static str, what: &str) -> io::Result<Self> {
        if p == libc::MAP_FAILED {
            return Err(os_err(op, what, io::Error::last_os_error()));
        }
        let ptr = NonNull::new(p.cast::<u8>())
            .ok_or_else(|| os_err(op, what, io::Error::other("null mapping")))?;
        Ok(Self { ptr, len })
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly a mapping this value created and owns; nothing
        // borrows it any more (every borrow is tied to `&self` of an owner of this value).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// One mapped ring: its shared indices and descriptor array of `T`.
#[derive(Debug)]
struct Ring<T> {
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    desc: NonNull<T>,
    mask: u32,
    _map: Mmap,
    _t: PhantomData<T>,
}

impl<T: Copy> Ring<T> {
    /// Map the ring of `size` entries described by `off` at page offset `pgoff`.
    fn map(
        fd: RawFd,
        off: &libc::xdp_ring_offset,
        size: u32,
        pgoff: u64,
        what: &str,
    ) -> io::Result<Self> {
        let bad = || os_err("mmap(xsk ring)", what, io::Error::other("bad ring offsets"));
        let desc_off = usize::try_from(off.desc).map_err(|_| bad())?;
        let len = (size as usize)
            .checked_mul(size_of::<T>())
            .and_then(|l| l.checked_add(desc_off))
            .ok_or_else(bad)?;
        let idx_ok = |o: u64| {
            usize::try_from(o)
                .ok()
                .filter(|&o| o % 4 == 0 && o + 4 <= desc_off)
        };
        let (Some(p), Some(c), Some(f)) = (
            idx_ok(off.producer),
            idx_ok(off.consumer),
            idx_ok(off.flags),
        ) else {
            return Err(bad());
        };
        if desc_off % align_of::<T>() != 0 || !size.is_power_of_two() {
            return Err(bad());
        }
        let map = Mmap::ring(fd, len, pgoff, what)?;
        let at = |o: usize| {
            // SAFETY: `o < desc_off <= len`: inside the mapping.
            unsafe { map.ptr.add(o) }
        };
        Ok(Self {
            producer: at(p).cast(),
            consumer: at(c).cast(),
            flags: at(f).cast(),
            desc: at(desc_off).cast(),
            mask: size - 1,
            _map: map,
            _t: PhantomData,
        })
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: points into the live mapping, 4-aligned (checked in `map`); the word is
        // shared with the kernel and only ever accessed atomically.
        unsafe { self.producer.as_ref() }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { self.consumer.as_ref() }
    }

    fn flags(&self) -> u32 {
        // SAFETY: as for `producer`.
        unsafe { self.flags.as_ref() }.load(Ordering::Relaxed)
    }

    fn size(&self) -> u32 {
        self.mask + 1
    }

    /// Write descriptor `idx` (any free-running index; masked here).
    fn write(&mut self, idx: u32, v: T) {
        // SAFETY: `idx & mask < size`, so the slot lies in the descriptor array of the
        // mapping; `desc` is aligned for T (checked in `map`). The caller only writes slots
        // between the consumer and the producer-to-be, which the kernel does not read
        // until the producer index is published (with release ordering) past them.
        unsafe { self.desc.add((idx & self.mask) as usize).write(v) }
    }

    /// Read descriptor `idx`.
    fn read(&self, idx: u32) -> T {
        // SAFETY: as in `write`; the caller only reads slots between the consumer index and
        // the producer index it loaded with acquire ordering, which the kernel wrote before
        // publishing and does not touch until the consumer index moves past them.
        unsafe { self.desc.add((idx & self.mask) as usize).read() }
    }
}

/// A ring user space produces on (fill, TX).
#[derive(Debug)]
pub(super) struct ProdRing<T> {
    ring: Ring<T>,
    /// Our producer index (published or about to be).
    prod: u32,
    /// The kernel's consumer index plus the ring size, as last read.
    cons_limit: u32,
}

impl<T: Copy> ProdRing<T> {
    fn new(ring: Ring<T>) -> Self {
        let prod = ring.producer().load(Ordering::Relaxed);
        let cons_limit = ring
            .consumer()
            .load(Ordering::Acquire)
            .wrapping_add(ring.size());
        Self {
            ring,
            prod,
            cons_limit,
        }
    }

    /// Free slots (rereading the kernel's consumer index when the cached one says fewer
    /// than `want`).
    pub(super) fn free(&mut self, want: u32) -> u32 {
        let free = self.cons_limit.wrapping_sub(self.prod);
        if free >= want {
            return free;
        }
        self.cons_limit = self
            .ring
            .consumer()
            .load(Ordering::Acquire)
            .wrapping_add(self.ring.size());
        self.cons_limit.wrapping_sub(self.prod)
    }

    /// Append a descriptor; `false` (and nothing written) when the ring is full. Not
    /// visible to the kernel until [`ProdRing::publish`].
    pub(super) fn push(&mut self, v: T) -> bool {
        if self.free(1) == 0 {
            return false;
        }
        self.ring.write(self.prod, v);
        self.prod = self.prod.wrapping_add(1);
        true
    }

    /// Hand the pushed descriptors to the kernel.
    pub(super) fn publish(&self) {
        self.ring.producer().store(self.prod, Ordering::Release);
    }

    /// Descriptors published but not yet consumed by the kernel.
    pub(super) fn in_flight(&self) -> u32 {
        self.prod
            .wrapping_sub(self.ring.consumer().load(Ordering::Acquire))
    }

    /// The kernel asked to be woken up (`XDP_RING_NEED_WAKEUP`).
    pub(super) fn needs_wakeup(&self) -> bool {
        self.ring.flags() & libc::XDP_RING_NEED_WAKEUP != 0
    }
}

/// A ring user space consumes from (RX, completion).
#[derive(Debug)]
pub(super) struct ConsRing<T> {
    ring: Ring<T>,
    /// Our consumer index.
    cons: u32,
    /// The kernel's producer index, as last read.
    prod: u32,
}

impl<T: Copy> ConsRing<T> {
    fn new(ring: Ring<T>) -> Self {
        let cons = ring.consumer().load(Ordering::Relaxed);
        let prod = ring.producer().load(Ordering::Acquire);
        Self { ring, cons, prod }
    }

    /// Entries ready to read (rereading the producer index when the cache is empty).
    pub(super) fn ready(&mut self) -> u32 {
        if self.prod == self.cons {
            self.prod = self.ring.producer().load(Ordering::Acquire);
        }
        self.prod.wrapping_sub(self.cons)
    }

    /// Entry `i` of the ready ones (`i < ready()`).
    pub(super) fn peek(&self, i: u32) -> T {
        debug_assert!(i < self.prod.wrapping_sub(self.cons));
        self.ring.read(self.cons.wrapping_add(i))
    }

    /// Give `n` read entries back to the kernel.
    pub(super) fn release(&mut self, n: u32) {
        debug_assert!(n <= self.prod.wrapping_sub(self.cons));
        self.cons = self.cons.wrapping_add(n);
        self.ring.consumer().store(self.cons, Ordering::Release);
    }
}

/// Geometry of an [`Xsk`].
#[derive(Clone, Copy, Debug)]
pub(super) struct Geometry {
    /// Bytes per UMEM frame: 2048 or 4096.
    pub(super) frame_size: u32,
    /// Frames for receiving, also the size of the fill and RX rings (power of two).
    pub(super) rx_frames: u32,
    /// Frames for transmitting, also the size of the TX and completion rings (power of two).
    pub(super) tx_frames: u32,
}

/// How to bind.
#[derive(Clone, Copy, Debug)]
pub(super) struct BindFlags {
    pub(super) copy: bool,
    pub(super) zerocopy: bool,
    pub(super) need_wakeup: bool,
}

/// An AF_XDP socket bound to one queue, with its own UMEM.
///
/// Field order is drop order: the socket is closed before its rings and UMEM are unmapped.
#[derive(Debug)]
pub(super) struct Xsk {
    fd: OwnedFd,
    pub(super) fill: ProdRing<u64>,
    pub(super) comp: ConsRing<u64>,
    pub(super) rx: ConsRing<libc::xdp_desc>,
    pub(super) tx: ProdRing<libc::xdp_desc>,
    umem: Mmap,
    pub(super) geo: Geometry,
    /// The kernel reported zero-copy mode (`XDP_OPTIONS_ZEROCOPY`).
    pub(super) zerocopy: bool,
    what: String,
}

// SAFETY: the raw pointers all point into mappings owned by this value; nothing is tied
// to the creating thread (the kernel objects are per socket, not per thread).
unsafe impl Send for Xsk {}

fn setsockopt<T>(fd: RawFd, name: libc::c_int, val: &T) -> io::Result<()> {
    let len = libc::socklen_t::try_from(size_of::<T>()).map_err(|_| crate::invalid("option"))?;
    // SAFETY: `val` points to a live, initialised `T` of `len` bytes that the kernel only
    // reads; `fd` is a socket owned by the caller.
    syscall(unsafe { libc::setsockopt(fd, libc::SOL_XDP, name, (val as *const T).cast(), len) })
        .map(drop)
}

/// `getsockopt(SOL_XDP, name)` into a zeroed `T`; returns it and the length the kernel
/// wrote.
fn getsockopt<T: Copy>(fd: RawFd, name: libc::c_int) -> io::Result<(T, usize)> {
    // SAFETY: only used with if_xdp.h structs and integers, plain old data for which
    // all-zero is a valid value.
    let mut v: T = unsafe { std::mem::zeroed() };
    let mut len = libc::socklen_t::try_from(size_of::<T>()).map_err(|_| crate::invalid("opt"))?;
    // SAFETY: `v` is writable for `len` bytes, `len` is valid and writable.
    syscall(unsafe {
        libc::getsockopt(fd, libc::SOL_XDP, name, (&raw mut v).cast(), &raw mut len)
    })?;
    Ok((v, len as usize))
}

impl Xsk {
    /// Create the socket and its UMEM and rings, put every receive frame on the fill ring,
    /// and bind to `queue` of `ifindex`.
    pub(super) fn open(
        ifname: &str,
        ifindex: u32,
        queue: u32,
        geo: Geometry,
        bind: BindFlags,
    ) -> io::Result<Self> {
        let what = format!("{ifname} queue {queue}");
        let w = what.as_str();
        // SAFETY: plain socket(2) call, no pointers.
        let raw =
            syscall(unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) })
                .map_err(|e| os_err("socket(AF_XDP)", w, e))?;
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let s = fd.as_raw_fd();

        let frames = geo.rx_frames as usize + geo.tx_frames as usize;
        let umem_len = frames * geo.frame_size as usize;
        let umem = Mmap::anonymous(umem_len, w)?;
        let reg = libc::xdp_umem_reg {
            addr: umem.ptr.as_ptr() as u64,
            len: umem_len as u64,
            chunk_size: geo.frame_size,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        setsockopt(s, libc::XDP_UMEM_REG, &reg)
            .map_err(|e| os_err("setsockopt(XDP_UMEM_REG)", w, e))?;
        for (opt, n, op) in [
            (
                libc::XDP_UMEM_FILL_RING,
                geo.rx_frames,
                "setsockopt(XDP_UMEM_FILL_RING)",
            ),
            (
                libc::XDP_UMEM_COMPLETION_RING,
                geo.tx_frames,
                "setsockopt(XDP_UMEM_COMPLETION_RING)",
            ),
            (libc::XDP_RX_RING, geo.rx_frames, "setsockopt(XDP_RX_RING)"),
            (libc::XDP_TX_RING, geo.tx_frames, "setsockopt(XDP_TX_RING)"),
        ] {
            let n = libc::c_int::try_from(n).map_err(|_| crate::invalid("ring size"))?;
            setsockopt(s, opt, &n).map_err(|e| os_err(op, w, e))?;
        }
        let (off, len) = getsockopt::<libc::xdp_mmap_offsets>(s, libc::XDP_MMAP_OFFSETS)
            .map_err(|e| os_err("getsockopt(XDP_MMAP_OFFSETS)", w, e))?;
        if len != size_of::<libc::xdp_mmap_offsets>() {
            // Kernels before 5.4 have no `flags` word (and no need_wakeup).
            return Err(os_err(
                "getsockopt(XDP_MMAP_OFFSETS)",
                w,
                io::Error::new(io::ErrorKind::Unsupported, "kernel too old (needs 5.4)"),
            ));
        }
        let fill = ProdRing::new(Ring::map(
            s,
            &off.fr,
            geo.rx_frames,
            libc::XDP_UMEM_PGOFF_FILL_RING,
            w,
        )?);
        let comp = ConsRing::new(Ring::map(
            s,
            &off.cr,
            geo.tx_frames,
            libc::XDP_UMEM_PGOFF_COMPLETION_RING,
            w,
        )?);
        let rx = ConsRing::new(Ring::map(
            s,
            &off.rx,
            geo.rx_frames,
            libc::XDP_PGOFF_RX_RING as u64,
            w,
        )?);
        let tx = ProdRing::new(Ring::map(
            s,
            &off.tx,
            geo.tx_frames,
            libc::XDP_PGOFF_TX_RING as u64,
            w,
        )?);
        let mut xsk = Self {
            fd,
            fill,
            comp,
            rx,
            tx,
            umem,
            geo,
            zerocopy: false,
            what,
        };
        // Frames [0, rx_frames) receive; the rest transmit (see `tx_frame_addrs`).
        for i in 0..u64::from(geo.rx_frames) {
            let pushed = xsk.fill.push(i * u64::from(geo.frame_size));
            debug_assert!(pushed, "the fill ring holds every receive frame");
        }
        xsk.fill.publish();

        let mut flags = 0u16;
        if bind.copy {
            flags |= libc::XDP_COPY;
        }
        if bind.zerocopy {
            flags |= libc::XDP_ZEROCOPY;
        }
        if bind.need_wakeup {
            flags |= libc::XDP_USE_NEED_WAKEUP;
        }
        let sxdp = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: flags,
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: 0,
        };
        // SAFETY: `sxdp` is a valid sockaddr_xdp and the length passed is its size.
        syscall(unsafe {
            libc::bind(
                s,
                (&raw const sxdp).cast(),
                size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        })
        .map_err(|e| os_err("bind(AF_XDP)", &xsk.what, e))?;
        let (opts, _) = getsockopt::<u32>(s, libc::XDP_OPTIONS)
            .map_err(|e| os_err("getsockopt(XDP_OPTIONS)", &xsk.what, e))?;
        xsk.zerocopy = opts & libc::XDP_OPTIONS_ZEROCOPY != 0;
        Ok(xsk)
    }

    /// UMEM addresses of the transmit frames.
    pub(super) fn tx_frame_addrs(&self) -> impl Iterator<Item = u64> + use<> {
        let fs = u64::from(self.geo.frame_size);
        let first = u64::from(self.geo.rx_frames);
        (first..first + u64::from(self.geo.tx_frames)).map(move |i| i * fs)
    }

    /// The UMEM bytes `addr..addr + len`, or `None` when that is not inside one frame.
    pub(super) fn frame_mut(&mut self, addr: u64, len: usize) -> Option<&mut [u8]> {
        let fs = u64::from(self.geo.frame_size);
        let end = addr.checked_add(u64::try_from(len).ok()?)?;
        // Inside the UMEM and not crossing a frame boundary (aligned chunk mode).
        if end > self.umem.len as u64 || (len > 0 && (end - 1) / fs != addr / fs) {
            return None;
        }
        // SAFETY: the range lies in the UMEM mapping (checked above). Only frames user
        // space owns are asked for: a received frame between reading its RX descriptor and
        // putting it back on the fill ring, or a transmit frame from the free list (not on
        // the TX ring, or completed). The kernel does not touch a frame while user space
        // owns it, and the `&mut self` borrow keeps this the only slice into the UMEM.
        Some(unsafe {
            std::slice::from_raw_parts_mut(self.umem.ptr.as_ptr().add(addr as usize), len)
        })
    }

    /// Start of the frame `addr` points into.
    pub(super) fn frame_base(&self, addr: u64) -> u64 {
        addr & !(u64::from(self.geo.frame_size) - 1)
    }

    /// Non-blocking `sendto(2)` with no data: makes the kernel process the TX ring (in
    /// copy mode, at most 32 descriptors per call).
    pub(super) fn kick_tx(&self) -> io::Result<()> {
        // SAFETY: no buffer and no address are passed; the kernel only looks at the socket.
        syscall_size(unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        })
        .map(drop)
    }

    /// Non-blocking `recvfrom(2)` with no buffer: wakes the driver to refill (only needed
    /// when the fill ring says so).
    pub(super) fn kick_rx(&self) -> io::Result<()> {
        // SAFETY: no buffer and no address are passed; the kernel only looks at the socket.
        syscall_size(unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        })
        .map(drop)
    }

    /// The kernel's counters (`XDP_STATISTICS`), cumulative.
    pub(super) fn statistics(&self) -> io::Result<libc::xdp_statistics> {
        getsockopt::<libc::xdp_statistics>(self.fd.as_raw_fd(), libc::XDP_STATISTICS)
            .map(|(s, _)| s)
            .map_err(|e| os_err("getsockopt(XDP_STATISTICS)", &self.what, e))
    }

    /// Read and clear the socket's pending error (`SO_ERROR`), if any.
    pub(super) fn take_error(&self) -> Option<io::Error> {
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
            Ok(_) if v != 0 => Some(io::Error::from_raw_os_error(v)),
            Ok(_) => None,
            Err(e) => Some(e),
        }
    }
}

fn syscall_size(r: libc::ssize_t) -> io::Result<usize> {
    crate::syscall_size(r)
}

impl AsRawFd for Xsk {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
