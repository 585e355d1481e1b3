//! The in-kernel fast path's flow table: [`FlowKey`] → [`FlowEntry`], encoded as the
//! `rvs_flows` hash map of `bpf/steer.c`, and the per-slot counters of `rvs_flow_stats`,
//! read through a shared mapping of the array (no syscall per read).
//!
//! IPv4 flows whose rewrite fits (route, IPv4 NAT, IP-in-IP with an IPv4 outer header)
//! live in `rvs_ftab` instead when there is room: an array of 32-byte slots in front of
//! the hash map (key, packet and byte counts, and the index of the flow's rewrite in
//! `rvs_ftab_targets`, which flows with the same rewrite share), written through shared
//! mappings ([`FlowTab`]) under a sequence lock, probed by the program over the aligned
//! bucket of [`FTAB_WINDOW`] slots that [`ftab_hash`] picks. A key is in one table only;
//! this process keeps the key → place map.
//!
//! The layouts here must match `struct rvs_flow_key`, `struct rvs_flow` and
//! `struct rvs_flow_stat` of `bpf/steer.c` byte for byte (the unit tests pin them).

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

use aya::maps::MapData;

use super::{MAP_FLOWS, MAP_FTAB, MAP_FTAB_TARGETS, XdpProgram, aya_err, raw_errno};
use crate::{MacAddr, invalid, os_err};

/// Default capacity of the flow table, in flows (also the number of counter slots).
pub const DEFAULT_MAX_FLOWS: u32 = 131_072;
/// Largest accepted `max_flows` (16 Mi flows: 256 MiB of counters and 512 MiB of IPv4
/// slots, 32 bytes per flow rounded up to a power of two).
pub const MAX_MAX_FLOWS: u32 = 1 << 24;

/// A flow as the director receives it: the packet's 5-tuple (client → VIP for traffic to
/// a service, real server → client for NAT replies). Ports in host byte order.
///
/// Both addresses must have the same family (an IPv4-mapped IPv6 address counts as IPv4);
/// `proto` is 6 (TCP) or 17 (UDP), the only protocols the fast path forwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Source address of the received packet.
    pub src: IpAddr,
    /// Destination address of the received packet.
    pub dst: IpAddr,
    /// IP protocol: 6 (TCP) or 17 (UDP).
    pub proto: u8,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
}

/// How the fast path rewrites a packet of a flow. Every rewrite also decrements the TTL
/// (hop limit), trims Ethernet padding and sets the MAC addresses of the [`FlowEntry`];
/// the bytes are those rvs-core produces for the same packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlowRewrite {
    /// Direct routing: nothing but TTL and MACs.
    Route,
    /// NAT toward a real server: destination address and port become `addr:port`
    /// (same family as the flow).
    Dnat {
        /// New destination address.
        addr: IpAddr,
        /// New destination port.
        port: u16,
    },
    /// NAT reply toward the client: source address and port become `addr:port` (the
    /// virtual service; same family as the flow).
    Snat {
        /// New source address.
        addr: IpAddr,
        /// New source port.
        port: u16,
    },
    /// IP-in-IP tunnel from `src` to `dst` (same family; may differ from the flow's).
    /// `copy_df`: an IPv4 outer header copies the inner DF bit (an IPv6 inner packet
    /// counts as DF set), as rvs-core with `pmtu_disc` on; otherwise DF is clear.
    Ipip {
        /// Outer source address (the director's tunnel address).
        src: IpAddr,
        /// Outer destination address (the real server).
        dst: IpAddr,
        /// Copy the inner DF bit into an IPv4 outer header.
        copy_df: bool,
    },
}

/// What the fast path does with a flow's packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowEntry {
    /// The rewrite.
    pub rewrite: FlowRewrite,
    /// Egress interface: `XDP_TX` when it is the receiving interface, else
    /// `bpf_redirect` (the egress device must accept XDP frames: see the module docs of
    /// [`crate::xdp`] about veth).
    pub ifindex: u32,
    /// New Ethernet source address.
    pub src_mac: MacAddr,
    /// New Ethernet destination address (the next hop's).
    pub dst_mac: MacAddr,
    /// Largest IP length (of the received packet, before any encapsulation) forwarded in
    /// the kernel; longer packets go to user space (which answers with "fragmentation
    /// needed" / "packet too big"). For IPIP, the path MTU minus the outer header.
    pub max_len: u16,
    /// Counter slot in `0..max_flows` ([`XdpProgram::flow_counter`]); flows may share one.
    pub counter: u32,
}

/// `struct rvs_flow_key` (40 bytes, byte arrays only: no padding, alignment 1).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FlowKeyRaw {
    family: u8,
    proto: u8,
    pad: [u8; 2],
    /// Network byte order.
    sport: [u8; 2],
    dport: [u8; 2],
    saddr: [u8; 16],
    daddr: [u8; 16],
}

// SAFETY: `repr(C)`, only `u8`s and `u8` arrays (no padding, no invalid bit patterns),
// `Copy` and `'static`: any 40 bytes are a valid value.
unsafe impl aya::Pod for FlowKeyRaw {}

/// `struct rvs_flow` (60 bytes, alignment 4, no padding: every field sits at a multiple
/// of its alignment and the total is a multiple of 4).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FlowValueRaw {
    action: u8,
    outer_family: u8,
    flags: u8,
    pad: u8,
    ifindex: u32,
    counter: u32,
    max_len: u16,
    /// Network byte order.
    port: [u8; 2],
    dmac: [u8; 6],
    smac: [u8; 6],
    addr: [u8; 16],
    tsrc: [u8; 16],
}

// SAFETY: `repr(C)` of integers and `u8` arrays laid out without padding (offsets 0, 1, 2,
// 3, 4, 8, 12, 14, 16, 22, 28, 44; size 60, a multiple of the alignment 4), `Copy` and
// `'static`: any 60 bytes are a valid value.
unsafe impl aya::Pod for FlowValueRaw {}

/// `enum action` of `steer.c`.
mod action {
    pub(super) const ROUTE: u8 = 1;
    pub(super) const DNAT: u8 = 2;
    pub(super) const SNAT: u8 = 3;
    pub(super) const IPIP: u8 = 4;
}
/// `FLOW_COPY_DF` of `steer.c`.
const FLOW_COPY_DF: u8 = 1;

/// Family (4 or 6) and the 16 bytes of `a` as the maps store it (IPv4 first, rest zero).
fn addr_bytes(a: IpAddr) -> (u8, [u8; 16]) {
    match a.to_canonical() {
        IpAddr::V4(a) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&a.octets());
            (4, b)
        }
        IpAddr::V6(a) => (6, a.octets()),
    }
}

impl FlowKey {
    pub(crate) fn encode(&self) -> io::Result<FlowKeyRaw> {
        let (fs, saddr) = addr_bytes(self.src);
        let (fd, daddr) = addr_bytes(self.dst);
        if fs != fd {
            return Err(invalid(format!(
                "flow key {} -> {}: mixed address families",
                self.src, self.dst
            )));
        }
        if self.proto != 6 && self.proto != 17 {
            return Err(invalid(format!(
                "flow key protocol {}: only TCP (6) and UDP (17) are forwarded in the kernel",
                self.proto
            )));
        }
        Ok(FlowKeyRaw {
            family: fs,
            proto: self.proto,
            pad: [0; 2],
            sport: self.sport.to_be_bytes(),
            dport: self.dport.to_be_bytes(),
            saddr,
            daddr,
        })
    }
}

impl FlowEntry {
    /// The map value, for a flow of `family` (4 or 6) in a table of `max_flows` slots.
    pub(crate) fn encode(&self, family: u8, max_flows: u32) -> io::Result<FlowValueRaw> {
        if self.counter >= max_flows {
            return Err(invalid(format!(
                "flow counter {} out of range (max_flows {max_flows})",
                self.counter
            )));
        }
        let mut v = FlowValueRaw {
            action: action::ROUTE,
            outer_family: 0,
            flags: 0,
            pad: 0,
            ifindex: self.ifindex,
            counter: self.counter,
            max_len: self.max_len,
            port: [0; 2],
            dmac: self.dst_mac.0,
            smac: self.src_mac.0,
            addr: [0; 16],
            tsrc: [0; 16],
        };
        match self.rewrite {
            FlowRewrite::Route => {}
            FlowRewrite::Dnat { addr, port } | FlowRewrite::Snat { addr, port } => {
                let (f, a) = addr_bytes(addr);
                if f != family {
                    return Err(invalid(format!(
                        "NAT address {addr} is not of the flow's family (IPv{family})"
                    )));
                }
                v.action = if matches!(self.rewrite, FlowRewrite::Dnat { .. }) {
                    action::DNAT
                } else {
                    action::SNAT
                };
                v.addr = a;
                v.port = port.to_be_bytes();
            }
            FlowRewrite::Ipip { src, dst, copy_df } => {
                let (fs, s) = addr_bytes(src);
                let (fd, d) = addr_bytes(dst);
                if fs != fd {
                    return Err(invalid(format!(
                        "tunnel {src} -> {dst}: mixed address families"
                    )));
                }
                v.action = action::IPIP;
                v.outer_family = fs;
                v.flags = if copy_df { FLOW_COPY_DF } else { 0 };
                v.addr = d;
                v.tsrc = s;
            }
        }
        Ok(v)
    }
}

/// The first bytes of a `BPF_F_MMAPABLE` array map, mapped shared and writable into this
/// process; unmapped on drop. Only hands out a pointer: its users access the memory
/// atomically (the program reads or updates it concurrently).
struct MappedArray {
    base: NonNull<u8>,
    len: usize,
    /// The map; kept open while mapped (the mapping would survive it anyway).
    _map: MapData,
}

// SAFETY: the mapping is plain shared memory owned by this value and only reachable through
// `ptr`, whose users access it atomically; moving or sharing the value between threads is
// sound.
unsafe impl Send for MappedArray {}
// SAFETY: as above: `&self` gives out only a raw pointer.
unsafe impl Sync for MappedArray {}

impl MappedArray {
    /// Map the first `bytes` bytes (rounded up to pages) of `map`.
    fn new(map: MapData, bytes: usize, name: &str) -> io::Result<Self> {
        // SAFETY: sysconf has no memory effects.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
            .ok()
            .filter(|&p| p > 0)
            .unwrap_or(4096);
        let len = bytes.div_ceil(page).max(1) * page;
        let fd = map.fd().as_fd().as_raw_fd();
        // SAFETY: a fresh shared mapping of `len` bytes of the map's fd at offset 0; the
        // kernel checks the length against the map's size and its BPF_F_MMAPABLE flag.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(os_err("mmap", name, io::Error::last_os_error()));
        }
        let base = NonNull::new(p.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned a null mapping"))?;
        Ok(Self {
            base,
            len,
            _map: map,
        })
    }

    /// Start of the mapping (page-aligned, `len` bytes, valid while `self` lives).
    fn ptr(&self) -> *mut u8 {
        self.base.as_ptr()
    }
}

impl Drop for MappedArray {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once; references derived from `ptr`
        // borrow the value that owns `self`, so none outlives it.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// `struct rvs_flow_stat`.
const STAT_SIZE: usize = 16;

/// The `rvs_flow_stats` array mapped into this process (`BPF_F_MMAPABLE`): counters are
/// read and reset with atomic loads and stores, no syscall.
pub(crate) struct FlowStats {
    mem: MappedArray,
    slots: u32,
}

impl FlowStats {
    /// Map `slots` counters of the array map `map`.
    pub(crate) fn map(map: MapData, slots: u32) -> io::Result<Self> {
        let mem = MappedArray::new(map, slots as usize * STAT_SIZE, super::MAP_FLOW_STATS)?;
        Ok(Self { mem, slots })
    }

    /// The two counters of slot `idx`, or `None` out of range.
    fn slot(&self, idx: u32) -> Option<[&AtomicU64; 2]> {
        if idx >= self.slots {
            return None;
        }
        let off = idx as usize * STAT_SIZE;
        // SAFETY: `off + 16 <= slots * 16 <= len`: inside the mapping, which lives as long
        // as `self` (it owns it); the mapping is page-aligned and the offset a multiple of 16, so both
        // words are 8-byte aligned. The memory is only ever accessed atomically (here and
        // by the program's atomic adds).
        unsafe {
            let p = self.mem.ptr().add(off).cast::<u64>();
            Some([AtomicU64::from_ptr(p), AtomicU64::from_ptr(p.add(1))])
        }
    }

    pub(crate) fn get(&self, idx: u32) -> (u64, u64) {
        self.slot(idx).map_or((0, 0), |[p, b]| {
            (p.load(Ordering::Relaxed), b.load(Ordering::Relaxed))
        })
    }

    /// Add to the counters of slot `idx` (nothing out of range).
    fn add(&self, idx: u32, packets: u64, bytes: u64) {
        if let Some([p, b]) = self.slot(idx) {
            p.fetch_add(packets, Ordering::Relaxed);
            b.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    pub(crate) fn reset(&self, idx: u32) {
        if let Some([p, b]) = self.slot(idx) {
            p.store(0, Ordering::Relaxed);
            b.store(0, Ordering::Relaxed);
        }
    }
}

/// Slots of `rvs_ftab` in a key's bucket (`FTAB_WINDOW` of `steer.c`).
pub(crate) const FTAB_WINDOW: u32 = 4;
/// `struct rvs_ftab_slot`: two per cache line.
const FTAB_SLOT_SIZE: usize = 32;
/// `struct rvs_ftab_target`.
const FTAB_TARGET_SIZE: usize = 32;
/// A slot's counts: packets above this bit, bytes below (`FTAB_CTR_SHIFT` of `steer.c`).
/// Folded into the counter slot at least at every [`XdpProgram::flow_counter`] read, so
/// up to 2^28 packets and 64 GiB per flow between two reads.
pub(crate) const FTAB_CTR_SHIFT: u32 = 36;

/// Packets and bytes of a slot's packed counts.
fn unpack_ctr(v: u64) -> (u64, u64) {
    (v >> FTAB_CTR_SHIFT, v & ((1 << FTAB_CTR_SHIFT) - 1))
}

/// Most entries of `rvs_ftab_targets`: distinct rewrites (real server, egress, next hop)
/// of the IPv4 slots. Flows whose rewrite finds no free entry go to the hash map.
pub(crate) const MAX_FTAB_TARGETS: u32 = 65_536;

/// Slots of `rvs_ftab` for a table of `max_flows` flows: the next power of two, at
/// least one bucket.
pub(crate) fn ftab_slots(max_flows: u32) -> u32 {
    max_flows.max(FTAB_WINDOW).next_power_of_two()
}

/// Entries of `rvs_ftab_targets` for a table of `max_flows` flows.
pub(crate) fn ftab_targets(max_flows: u32) -> u32 {
    max_flows.clamp(1, MAX_FTAB_TARGETS)
}

/// The slot hash of an IPv4 key: `ftab_hash` of `steer.c`, which works on the addresses
/// and ports as native loads of their network-order bytes.
pub(crate) fn ftab_hash(k: &FlowKeyRaw) -> u32 {
    let w = |b: &[u8]| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
    let ports =
        u32::from(u16::from_ne_bytes(k.sport)) | (u32::from(u16::from_ne_bytes(k.dport)) << 16);
    let mut h = w(&k.saddr).wrapping_mul(0x9e37_79b1);
    h = (h ^ w(&k.daddr)).wrapping_mul(0x85eb_ca6b);
    h = (h ^ ports ^ u32::from(k.proto)).wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// First slot of `k`'s bucket in a table of `slots` slots (the program's `base`).
pub(crate) fn ftab_bucket(k: &FlowKeyRaw, slots: u32) -> u32 {
    ftab_hash(k) & (slots - 1) & !(FTAB_WINDOW - 1)
}

/// The `struct rvs_ftab_slot` (with `seq`, `target` and `ctr` left 0) and the
/// `struct rvs_ftab_target` of a flow, or `None` when it does not fit a slot: an IPv6 key,
/// or IP-in-IP with an IPv6 outer header.
fn ftab_images(
    k: &FlowKeyRaw,
    v: &FlowValueRaw,
) -> Option<([u8; FTAB_SLOT_SIZE], [u8; FTAB_TARGET_SIZE])> {
    if k.family != 4 || (v.action == action::IPIP && v.outer_family != 4) {
        return None;
    }
    let mut s = [0u8; FTAB_SLOT_SIZE];
    s[4..8].copy_from_slice(&k.saddr[..4]);
    s[8..12].copy_from_slice(&k.daddr[..4]);
    s[12..14].copy_from_slice(&k.sport);
    s[14..16].copy_from_slice(&k.dport);
    s[16] = k.proto;
    s[17] = 1; // used
    let mut t = [0u8; FTAB_TARGET_SIZE];
    t[0] = v.action;
    t[1] = v.flags;
    t[2] = v.outer_family;
    t[4..8].copy_from_slice(&v.ifindex.to_ne_bytes());
    t[8..10].copy_from_slice(&v.max_len.to_ne_bytes());
    t[10..12].copy_from_slice(&v.port);
    t[12..18].copy_from_slice(&v.dmac);
    t[18..24].copy_from_slice(&v.smac);
    t[24..28].copy_from_slice(&v.addr[..4]);
    t[28..32].copy_from_slice(&v.tsrc[..4]);
    Some((s, t))
}

/// Where a flow lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FlowPlace {
    /// Slot of `rvs_ftab`.
    Slot(u32),
    /// The hash map `rvs_flows`.
    Hash,
}

/// The 32-byte records of a mapped array, as atomic words (the program reads them
/// concurrently).
fn words32(mem: &MappedArray, len: u32, idx: u32) -> Option<&[AtomicU32; 8]> {
    if idx >= len {
        return None;
    }
    let off = idx as usize * 32;
    // SAFETY: `off + 32 <= len * 32 <= mem.len` (both arrays are mapped with 32 bytes per
    // record): inside the mapping, which lives as long as `mem`, whose borrow the result
    // keeps; the mapping is page-aligned and the offset a multiple of 32, so the words are
    // 4-byte aligned. `[AtomicU32; 8]` has the layout of `[u32; 8]`, and the memory is
    // only accessed atomically: here, and by the program, which reads the records and adds
    // to a slot's `ctr` (words 6-7, which this process accesses only as one `AtomicU64`,
    // through `FlowTab::ctr`).
    unsafe { Some(&*mem.ptr().add(off).cast::<[AtomicU32; 8]>()) }
}

/// The word `i` of a 32-byte image, as the program loads it.
fn word(img: &[u8; 32], i: usize) -> u32 {
    u32::from_ne_bytes([img[i * 4], img[i * 4 + 1], img[i * 4 + 2], img[i * 4 + 3]])
}

/// `rvs_ftab_targets` mapped into this process: each distinct rewrite once, shared by
/// the slots that use it (reference counted). An entry is written only while no slot
/// refers to it.
struct Targets {
    mem: MappedArray,
    len: u32,
    ids: HashMap<[u8; FTAB_TARGET_SIZE], u32>,
    /// Per entry: its image and how many slots use it (0: free).
    entries: Vec<([u8; FTAB_TARGET_SIZE], u32)>,
    free: Vec<u32>,
}

impl Targets {
    /// The entry holding `img`, written into a free one if none does; one more
    /// reference. `None` when every entry holds another rewrite.
    fn acquire(&mut self, img: &[u8; FTAB_TARGET_SIZE]) -> Option<u32> {
        if let Some(&i) = self.ids.get(img) {
            self.entries[i as usize].1 += 1;
            return Some(i);
        }
        let i = match self.free.pop() {
            Some(i) => i,
            None if (self.entries.len() as u32) < self.len => {
                self.entries.push(([0; FTAB_TARGET_SIZE], 0));
                self.entries.len() as u32 - 1
            }
            None => return None,
        };
        let w = words32(&self.mem, self.len, i)?;
        for (n, word_) in w.iter().enumerate() {
            word_.store(word(img, n), Ordering::Relaxed);
        }
        // Published by the slot's sequence-lock write that follows.
        fence(Ordering::Release);
        self.entries[i as usize] = (*img, 1);
        self.ids.insert(*img, i);
        Some(i)
    }

    /// One reference less on entry `i`; freed at zero (after the slot that used it was
    /// rewritten: a reader that still holds the old slot sees its `seq` change).
    fn release(&mut self, i: u32) {
        let Some(e) = self.entries.get_mut(i as usize) else {
            return;
        };
        e.1 = e.1.saturating_sub(1);
        if e.1 == 0 {
            self.ids.remove(&e.0);
            self.free.push(i);
        }
    }

    /// Entries in use.
    #[cfg(test)]
    fn in_use(&self) -> usize {
        self.ids.len()
    }
}

/// What a used slot refers to.
#[derive(Clone, Copy, Debug)]
struct SlotUse {
    /// Its entry of `rvs_ftab_targets`.
    target: u32,
    /// The counter slot its counts are folded into.
    counter: u32,
}

/// The `rvs_ftab` and `rvs_ftab_targets` arrays mapped into this process, and where each
/// flow of the program lives (this process is the tables' only writer).
pub(crate) struct FlowTab {
    mem: MappedArray,
    slots: u32,
    used: Vec<Option<SlotUse>>,
    places: HashMap<FlowKeyRaw, FlowPlace>,
    targets: Targets,
    /// The slots whose counts go to each counter slot.
    counter_slots: HashMap<u32, Vec<u32>>,
}

impl FlowTab {
    /// Map the `slots` slots (a power of two) of the array map `map` and the `targets`
    /// entries of `targets_map`.
    pub(crate) fn map(
        map: MapData,
        slots: u32,
        targets_map: MapData,
        targets: u32,
    ) -> io::Result<Self> {
        let mem = MappedArray::new(map, slots as usize * FTAB_SLOT_SIZE, MAP_FTAB)?;
        let tmem = MappedArray::new(
            targets_map,
            targets as usize * FTAB_TARGET_SIZE,
            MAP_FTAB_TARGETS,
        )?;
        Ok(Self {
            mem,
            slots,
            used: vec![None; slots as usize],
            places: HashMap::new(),
            counter_slots: HashMap::new(),
            targets: Targets {
                mem: tmem,
                len: targets,
                ids: HashMap::new(),
                entries: Vec::new(),
                free: Vec::new(),
            },
        })
    }

    /// Write `img` with target `t` into slot `idx` under the sequence lock: `seq` odd, the
    /// fields up to `target`, `seq` even again. The counts (`ctr`, which the program adds
    /// to) are left alone.
    fn write(&self, idx: u32, img: &[u8; FTAB_SLOT_SIZE], t: u32) {
        let Some(w) = words32(&self.mem, self.slots, idx) else {
            return;
        };
        let odd = w[0].load(Ordering::Relaxed) | 1;
        w[0].store(odd, Ordering::SeqCst);
        fence(Ordering::Release);
        for (i, word_) in w.iter().enumerate().take(6).skip(1) {
            let v = if i == 5 { t } else { word(img, i) };
            word_.store(v, Ordering::Relaxed);
        }
        w[0].store(odd.wrapping_add(1), Ordering::SeqCst);
    }

    /// The `ctr` word of slot `idx`.
    fn ctr(&self, idx: u32) -> Option<&AtomicU64> {
        if idx >= self.slots {
            return None;
        }
        let off = idx as usize * FTAB_SLOT_SIZE + 24;
        // SAFETY: `off + 8 <= slots * 32 <= len`: inside the mapping, which lives as long
        // as `self` (it owns it) and whose borrow the result keeps; the mapping is
        // page-aligned and `off` a multiple of 8. The word is only accessed atomically,
        // here and by the program's atomic adds.
        unsafe { Some(AtomicU64::from_ptr(self.mem.ptr().add(off).cast::<u64>())) }
    }

    /// Take slot `idx`'s counts (zeroing them) into counter slot `counter`.
    fn fold_slot(&self, idx: u32, counter: u32, stats: &FlowStats) {
        // A load first: an idle flow's line is not taken away from the program's CPU.
        if let Some(c) = self.ctr(idx)
            && c.load(Ordering::Relaxed) != 0
        {
            let v = c.swap(0, Ordering::AcqRel);
            if v != 0 {
                let (p, b) = unpack_ctr(v);
                stats.add(counter, p, b);
            }
        }
    }

    /// Fold the counts of every slot counted in `counter` into it (or, with `keep`
    /// false, drop them).
    pub(crate) fn fold_counter(&self, counter: u32, stats: &FlowStats, keep: bool) {
        for &i in self.counter_slots.get(&counter).into_iter().flatten() {
            if keep {
                self.fold_slot(i, counter, stats);
            } else if let Some(c) = self.ctr(i) {
                c.store(0, Ordering::Relaxed);
            }
        }
    }

    /// Fold every used slot's counts into its counter slot, in one pass in address order
    /// (which the hardware prefetcher follows, unlike one flow after another).
    pub(crate) fn fold_all(&self, stats: &FlowStats) {
        for (i, u) in (0..).zip(&self.used) {
            if let Some(u) = u {
                self.fold_slot(i, u.counter, stats);
            }
        }
    }

    fn unlink_counter(&mut self, counter: u32, idx: u32) {
        if let Some(v) = self.counter_slots.get_mut(&counter) {
            v.retain(|&i| i != idx);
            if v.is_empty() {
                self.counter_slots.remove(&counter);
            }
        }
    }

    /// Slot of `k`'s bucket that is free, if any.
    fn free_slot(&self, k: &FlowKeyRaw) -> Option<u32> {
        let base = ftab_bucket(k, self.slots);
        (base..base + FTAB_WINDOW).find(|&i| self.used[i as usize].is_none())
    }

    /// Put a flow (images from [`ftab_images`]) counted in `counter` into slot `idx`,
    /// replacing what was there: `false` (nothing changed) when its rewrite finds no free
    /// target entry. A slot that changes counter slot first hands its counts to the old
    /// one; a free slot starts from zero.
    fn put(
        &mut self,
        idx: u32,
        img: &[u8; FTAB_SLOT_SIZE],
        target: &[u8; FTAB_TARGET_SIZE],
        counter: u32,
        stats: &FlowStats,
    ) -> bool {
        if idx >= self.slots {
            return false;
        }
        let Some(t) = self.targets.acquire(target) else {
            return false;
        };
        let old = self.used[idx as usize];
        match old {
            None => {
                // Counts a packet of an earlier flow may have left after its removal.
                if let Some(c) = self.ctr(idx) {
                    c.swap(0, Ordering::AcqRel);
                }
            }
            Some(u) if u.counter != counter => self.fold_slot(idx, u.counter, stats),
            Some(_) => {}
        }
        self.write(idx, img, t);
        self.used[idx as usize] = Some(SlotUse { target: t, counter });
        if let Some(u) = old {
            self.targets.release(u.target);
            if u.counter != counter {
                self.unlink_counter(u.counter, idx);
            }
        }
        if old.is_none_or(|u| u.counter != counter) {
            self.counter_slots.entry(counter).or_default().push(idx);
        }
        true
    }

    /// Empty slot `idx` (`used` 0), hand its counts to its counter slot and forget it.
    fn release(&mut self, idx: u32, stats: &FlowStats) {
        self.write(idx, &[0; FTAB_SLOT_SIZE], 0);
        if let Some(u) = self.used.get_mut(idx as usize).and_then(Option::take) {
            self.fold_slot(idx, u.counter, stats);
            self.unlink_counter(u.counter, idx);
            self.targets.release(u.target);
        }
    }

    /// Where `k` lives.
    pub(crate) fn place(&self, k: &FlowKeyRaw) -> Option<FlowPlace> {
        self.places.get(k).copied()
    }

    /// Distinct rewrites the slots use (tests).
    #[cfg(test)]
    pub(crate) fn targets_in_use(&self) -> usize {
        self.targets.in_use()
    }

    /// The `seq` word of slot `idx` (tests).
    #[cfg(test)]
    pub(crate) fn seq(&self, idx: u32) -> u32 {
        words32(&self.mem, self.slots, idx).map_or(0, |w| w[0].load(Ordering::SeqCst))
    }

    /// Set the `seq` word of slot `idx` by hand (tests).
    #[cfg(test)]
    pub(crate) fn set_seq(&self, idx: u32, seq: u32) {
        if let Some(w) = words32(&self.mem, self.slots, idx) {
            w[0].store(seq, Ordering::SeqCst);
        }
    }
}

/// The error of a map update: `OutOfMemory` when the table is full (`E2BIG`) or the
/// kernel is out of memory (`ENOMEM`), the OS error's kind otherwise.
fn update_err<E>(e: E) -> io::Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    let e = aya_err("bpf(map update)", MAP_FLOWS, e);
    match raw_errno(&e) {
        Some(libc::E2BIG | libc::ENOMEM) => io::Error::new(io::ErrorKind::OutOfMemory, e),
        _ => e,
    }
}

impl XdpProgram {
    /// Install (or replace) the fast-path entry of `key`. From the next packet on, the
    /// kernel forwards the flow itself, except TCP segments with SYN, FIN or RST, packets
    /// with TTL <= 1 and packets longer than `e.max_len`, which go on to the steering
    /// (user space) unmodified.
    ///
    /// # Errors
    ///
    /// `InvalidInput` (nothing changed) when the key mixes address families or is not
    /// TCP/UDP, a NAT address is not of the key's family, the tunnel's addresses mix
    /// families, or `e.counter >= max_flows`. `OutOfMemory` when the table already holds
    /// `max_flows` other flows (`E2BIG`) or the kernel is short of memory (`ENOMEM`);
    /// another kernel error of the update otherwise.
    pub fn flow_insert(&mut self, key: &FlowKey, e: &FlowEntry) -> io::Result<()> {
        let k = key.encode()?;
        let v = e.encode(k.family, self.max_flows)?;
        let place = self.ftab.place(&k);
        if place.is_none() && self.ftab.places.len() >= self.max_flows as usize {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                format!("flow table full ({} flows)", self.max_flows),
            ));
        }
        let img = ftab_images(&k, &v);
        match (place, img) {
            (Some(FlowPlace::Slot(i)), Some((img, t))) => {
                if !self.ftab.put(i, &img, &t, v.counter, &self.flow_stats) {
                    // No free target entry for the new rewrite: into the hash map.
                    self.flows.insert(k, v, 0).map_err(update_err)?;
                    self.ftab.release(i, &self.flow_stats);
                    self.ftab.places.insert(k, FlowPlace::Hash);
                }
            }
            (Some(FlowPlace::Slot(i)), None) => {
                // No longer fits a slot: into the hash map, then out of the array.
                self.flows.insert(k, v, 0).map_err(update_err)?;
                self.ftab.release(i, &self.flow_stats);
                self.ftab.places.insert(k, FlowPlace::Hash);
            }
            (_, Some((img, t))) => match self.ftab.free_slot(&k) {
                // The array is looked up first: from this write on it is the entry.
                Some(i) if self.ftab.put(i, &img, &t, v.counter, &self.flow_stats) => {
                    if place == Some(FlowPlace::Hash)
                        && let Err(e) = self.hash_remove(&k)
                    {
                        self.ftab.release(i, &self.flow_stats);
                        return Err(e);
                    }
                    self.ftab.places.insert(k, FlowPlace::Slot(i));
                }
                _ => {
                    self.flows.insert(k, v, 0).map_err(update_err)?;
                    self.ftab.places.insert(k, FlowPlace::Hash);
                }
            },
            (_, None) => {
                self.flows.insert(k, v, 0).map_err(update_err)?;
                self.ftab.places.insert(k, FlowPlace::Hash);
            }
        }
        Ok(())
    }

    /// Delete `k` from the hash map: `false` when it was not there.
    fn hash_remove(&mut self, k: &FlowKeyRaw) -> io::Result<bool> {
        match self.flows.remove(k) {
            Ok(()) => Ok(true),
            Err(aya::maps::MapError::KeyNotFound) => Ok(false),
            Err(e) => {
                let e = aya_err("bpf(map delete)", MAP_FLOWS, e);
                if e.kind() == io::ErrorKind::NotFound {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Remove the entry of `key`: its packets go to user space again. `false` when there
    /// was none.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a key no entry can have (mixed families, not TCP/UDP); the
    /// kernel's error of the delete other than "not found".
    pub fn flow_remove(&mut self, key: &FlowKey) -> io::Result<bool> {
        let k = key.encode()?;
        if let Some(FlowPlace::Slot(i)) = self.ftab.place(&k) {
            self.ftab.release(i, &self.flow_stats);
            self.ftab.places.remove(&k);
            return Ok(true);
        }
        let removed = self.hash_remove(&k)?;
        self.ftab.places.remove(&k);
        Ok(removed)
    }

    /// Remove every entry; returns how many there were. Counters are left as they are
    /// (reset a slot with [`XdpProgram::flow_counter_reset`] before reusing it).
    ///
    /// # Errors
    ///
    /// The kernel's error of a key walk or delete; entries removed so far stay removed.
    pub fn flow_clear(&mut self) -> io::Result<usize> {
        let keys = self
            .flows
            .keys()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| aya_err("bpf(map get next key)", MAP_FLOWS, e))?;
        let mut n = 0;
        let slots: Vec<(FlowKeyRaw, u32)> = self
            .ftab
            .places
            .iter()
            .filter_map(|(k, p)| match p {
                FlowPlace::Slot(i) => Some((*k, *i)),
                FlowPlace::Hash => None,
            })
            .collect();
        for (k, i) in slots {
            self.ftab.release(i, &self.flow_stats);
            self.ftab.places.remove(&k);
            n += 1;
        }
        for k in keys {
            if self.hash_remove(&k)? {
                n += 1;
            }
            self.ftab.places.remove(&k);
        }
        Ok(n)
    }

    /// Packets and bytes (IP length as received, before any encapsulation) the kernel
    /// forwarded on counter slot `idx`, summed over CPUs; `(0, 0)` out of range. Memory
    /// operations on the shared arrays, no syscall: the counts that IPv4 slots keep in
    /// their own cache line are folded into the counter slot first. Read each counter in
    /// use at least every few seconds: a slot holds at most 2^28 packets and 64 GiB
    /// between two reads.
    pub fn flow_counter(&self, idx: u32) -> (u64, u64) {
        self.ftab.fold_counter(idx, &self.flow_stats, true);
        self.flow_stats.get(idx)
    }

    /// Fold the counts of every IPv4 slot into the counter array in one pass over the
    /// table in address order, for [`XdpProgram::flow_counter_folded`]: reading every
    /// flow's counters once a second costs a sequential scan instead of a cache miss per
    /// flow.
    pub fn flow_counters_fold(&self) {
        self.ftab.fold_all(&self.flow_stats);
    }

    /// Counter slot `idx` as of the last fold ([`XdpProgram::flow_counters_fold`], or any
    /// of the folds [`XdpProgram::flow_counter`] describes): only what the counter array
    /// holds, a memory read. Packets forwarded since then from IPv4 slots are not in it
    /// yet.
    pub fn flow_counter_folded(&self, idx: u32) -> (u64, u64) {
        self.flow_stats.get(idx)
    }

    /// Zero counter slot `idx` (before reusing it for another flow). Not atomic with a
    /// packet being counted at the same moment on another CPU: remove the flows that use
    /// the slot first.
    pub fn flow_counter_reset(&self, idx: u32) {
        self.ftab.fold_counter(idx, &self.flow_stats, false);
        self.flow_stats.reset(idx);
    }

    /// Capacity of the flow table, and number of counter slots.
    pub fn max_flows(&self) -> u32 {
        self.max_flows
    }
}

/// `BPF_PROG_TEST_RUN` of the program on `data`, `repeat` times (0 = once; the kernel
/// runs the program again on the frame the previous run left): returns the program's
/// verdict, the frame it left and the mean run time in nanoseconds. Test-only: lets the golden tests compare the
/// program's output with rvs-core's byte for byte without any interface.
#[cfg(test)]
pub(crate) fn test_run(
    prog: std::os::fd::BorrowedFd<'_>,
    data: &[u8],
    repeat: u32,
) -> io::Result<(u32, Vec<u8>, u32)> {
    let mut out = vec![0u8; data.len() + 512];
    let mut attr = super::test_run::TestRunAttr {
        prog_fd: prog.as_raw_fd() as u32,
        data_size_in: u32::try_from(data.len()).map_err(|_| invalid("frame too long"))?,
        data_size_out: out.len() as u32,
        data_in: data.as_ptr() as u64,
        data_out: out.as_mut_ptr() as u64,
        repeat,
        ..Default::default()
    };
    // SAFETY: `data_in` points at `data` (`data_size_in` bytes, alive for the call) and
    // `data_out` at `out` (`data_size_out` bytes, alive and exclusively borrowed).
    unsafe { super::test_run::prog_test_run(&mut attr) }
        .map_err(|e| os_err("bpf(BPF_PROG_TEST_RUN)", "rvs_steer", e))?;
    out.truncate(attr.data_size_out as usize);
    Ok((attr.retval, out, attr.duration))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn layouts_match_the_program() {
        assert_eq!(size_of::<FlowKeyRaw>(), 40);
        assert_eq!(align_of::<FlowKeyRaw>(), 1);
        assert_eq!(size_of::<FlowValueRaw>(), 60);
        assert_eq!(std::mem::offset_of!(FlowValueRaw, ifindex), 4);
        assert_eq!(std::mem::offset_of!(FlowValueRaw, counter), 8);
        assert_eq!(std::mem::offset_of!(FlowValueRaw, max_len), 12);
        assert_eq!(std::mem::offset_of!(FlowValueRaw, port), 14);
        assert_eq!(std::mem::offset_of!(FlowValueRaw, dmac), 16);
        assert_eq!(std::mem::offset_of!(FlowValueRaw, smac), 22);
        assert_eq!(std::mem::offset_of!(FlowValueRaw, addr), 28);
        assert_eq!(std::mem::offset_of!(FlowValueRaw, tsrc), 44);
        let k = FlowKey {
            src: Ipv4Addr::new(198, 18, 1, 10).into(),
            dst: Ipv4Addr::new(198, 18, 0, 100).into(),
            proto: 17,
            sport: 40000,
            dport: 53,
        }
        .encode()
        .expect("valid");
        assert_eq!((k.family, k.proto), (4, 17));
        assert_eq!(k.sport, [0x9c, 0x40]);
        assert_eq!(k.dport, [0, 53]);
        assert_eq!(&k.saddr[..4], &[198, 18, 1, 10]);
        assert_eq!(&k.saddr[4..], &[0; 12]);
    }

    fn entry(rewrite: FlowRewrite) -> FlowEntry {
        FlowEntry {
            rewrite,
            ifindex: 3,
            src_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            dst_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            max_len: 1500,
            counter: 7,
        }
    }

    #[test]
    fn invalid_input_is_refused() {
        let v4: IpAddr = Ipv4Addr::new(198, 18, 0, 1).into();
        let v6: IpAddr = "2001:db8::1".parse::<Ipv6Addr>().expect("v6").into();
        let k = |src, dst, proto| FlowKey {
            src,
            dst,
            proto,
            sport: 1,
            dport: 2,
        };
        for bad in [k(v4, v6, 6), k(v6, v4, 17), k(v4, v4, 132), k(v4, v4, 1)] {
            let e = bad.encode().expect_err("invalid key");
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
        // A mapped address is its IPv4 address.
        let mapped = IpAddr::V6(Ipv4Addr::new(198, 18, 0, 2).to_ipv6_mapped());
        assert_eq!(k(v4, mapped, 6).encode().expect("ok").family, 4);
        let bad = [
            (entry(FlowRewrite::Dnat { addr: v6, port: 1 }), 4),
            (entry(FlowRewrite::Snat { addr: v4, port: 1 }), 6),
            (
                entry(FlowRewrite::Ipip {
                    src: v4,
                    dst: v6,
                    copy_df: true,
                }),
                4,
            ),
            (
                FlowEntry {
                    counter: 16,
                    ..entry(FlowRewrite::Route)
                },
                4,
            ),
        ];
        for (e, fam) in bad {
            let err = e.encode(fam, 16).expect_err("invalid entry");
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{e:?}");
        }
        let v = entry(FlowRewrite::Ipip {
            src: v6,
            dst: v6,
            copy_df: true,
        })
        .encode(4, 16)
        .expect("v4 in v6");
        assert_eq!((v.action, v.outer_family, v.flags), (4, 6, 1));
        assert_eq!(v.dmac, [2, 0, 0, 0, 0, 2]);
        let v = entry(FlowRewrite::Snat { addr: v4, port: 80 })
            .encode(4, 16)
            .expect("snat");
        assert_eq!((v.action, v.port, v.counter), (3, [0, 80], 7));
    }
}
