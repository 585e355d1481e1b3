//! rvs-sched: the IPVS schedulers, making the same decisions as the Linux kernel.
//!
//! This crate owns the fourteen IPVS scheduling algorithms (`rr`, `wrr`, `lc`, `wlc`,
//! `lblc`, `lblcr`, `dh`, `sh`, `sed`, `nq`, `fo`, `ovf`, `mh`, `twos`) and their
//! per-service state: round-robin cursors, the wrr weight walk, the dh/sh bucket
//! tables, the Maglev lookup table and the lblc/lblcr locality tables. It does no
//! I/O, reads no clock (time comes in as `now_ms`), spawns nothing and depends on no
//! other crate. It does not count connections, set OVERLOAD or keep the destination
//! list: the caller owns all of that and passes the list in on every call.
//!
//! # Contract
//!
//! * The destination list is a slice in the kernel's order: **newest first**. Every
//!   "first wins" tie-break therefore favours the most recently added destination.
//!   [`Scheduler::schedule`] returns an index into that slice.
//! * After every change of the list (add, delete, edit of weight or flags that the
//!   kernel reports to the scheduler), call [`Scheduler::update`] with the new list,
//!   or [`Scheduler::init`] for a fresh start. Tables store indices, so a list that
//!   changed behind the scheduler's back gives stale (but never out-of-bounds)
//!   answers.
//! * The [`Flow`] is oriented client to service: `src`/`sport` are the client's. For
//!   a packet coming from the real-server side (the kernel's "inverse" case) swap
//!   the tuple before calling; `sh` and `mh` hash `src` (+ `sport`), `dh`, `lblc` and
//!   `lblcr` hash `dst`.
//! * Call [`Scheduler::handle_timeout`] when [`Scheduler::poll_timeout`] says
//!   (only `lblc`/`lblcr` ever ask).
//! * `schedule` does not allocate, except `lblc`/`lblcr` when they create a
//!   locality entry.
//!
//! Behaviour follows section 4 of the IPVS spec (`docs/ipvs-spec.md` in the shared
//! docs), itself written from `net/netfilter/ipvs/ip_vs_*.c`.
//!
//! # Deviations from the kernel
//!
//! * Weighted products and sums are computed in `i64`; the kernel's `twos` uses
//!   `int` and can overflow with huge weights.
//! * `twos` draws from a SplitMix64 seeded by [`Scheduler::new`], not the kernel
//!   CSPRNG, so runs are reproducible.
//! * `wrr` skips, arithmetically, the passes that cannot find a dest (the kernel
//!   rescans the list for every `cw` value, up to 2^31 scans when the heaviest dest
//!   is overloaded). Decisions and state are identical.
//! * `lblc`/`lblcr` look entries up in a randomly keyed `HashMap` instead of 1024
//!   hash chains (the bucket number still drives the collector's visiting order);
//!   the number of entries is bounded ([`Scheduler::set_lblc_max_entries`]); the
//!   60 s timer is armed by the first pick unless [`Scheduler::start_timer`] is
//!   called at service creation. A dest removed from the list stays in `lblcr`
//!   sets (as the kernel keeps its trashed dest) but, its counters being unknown,
//!   is never the "most loaded" member.
//! * `mh` with more dests than table slots keeps its previous table as the kernel
//!   does, but slots of a dest removed meanwhile become empty (the kernel would
//!   still return the deleted dest).
//! * `hsiphash` is the 64-bit kernels' SipHash-1-3; 32-bit kernels (HalfSipHash)
//!   place `mh` flows differently.
//!
//! # Example
//!
//! ```
//! use core::net::{IpAddr, Ipv4Addr};
//! use rvs_sched::{DestChange, DestId, DestState, Flow, SchedFlags, SchedKind, Scheduler};
//!
//! let dest = |id: u32, weight: i32| DestState {
//!     id: DestId(id),
//!     addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, id as u8)),
//!     port: 80,
//!     weight,
//!     last_weight: weight,
//!     active: 0,
//!     inactive: 0,
//!     available: true,
//!     overloaded: false,
//! };
//! // Added A (weight 4), then B (weight 2): the list is B, A.
//! let mut list = vec![dest(1, 4)];
//! let mut sched = Scheduler::new("wrr".parse().unwrap(), SchedFlags::NONE, 0);
//! sched.init(&list);
//! list.insert(0, dest(2, 2));
//! sched.update(&list, DestChange::Added { index: 0 });
//!
//! let flow = Flow {
//!     proto: 6,
//!     src: IpAddr::V4(Ipv4Addr::new(192, 168, 1, 100)),
//!     sport: 40000,
//!     dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 100)),
//!     dport: 80,
//! };
//! let picks: Vec<u32> = (0..6)
//!     .map(|_| list[sched.schedule(&list, &flow, 0).unwrap()].id.0)
//!     .collect();
//! // The walk goes on from the weight it had reached (cw = 1), then settles into
//! // the period A B A.
//! assert_eq!(picks, [2, 1, 1, 2, 1, 1]);
//! sched.init(&list);
//! let picks: Vec<u32> = (0..3)
//!     .map(|_| list[sched.schedule(&list, &flow, 0).unwrap()].id.0)
//!     .collect();
//! assert_eq!(picks, [1, 2, 1]);
//! assert_eq!(sched.kind(), SchedKind::Wrr);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod hash;
mod hashing;
mod lblc;
mod least;
mod mh;
mod rr;
#[cfg(test)]
mod tests;

use core::fmt;
use core::net::IpAddr;
use core::str::FromStr;

pub use hash::{fold_addr, hash_32, hsiphash_u32};

/// Stable id of a destination within the core (never reused for another
/// destination of the same service while the scheduler may remember it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DestId(pub u32);

/// What a scheduler sees of one destination (real server).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestState {
    /// Stable id; lblc/lblcr remember destinations by it.
    pub id: DestId,
    /// Real server address (hashed by `mh` for its permutation).
    pub addr: IpAddr,
    /// Real server port, host order (hashed by `mh`).
    pub port: u16,
    /// Current weight; 0 = quiescent, never chosen for a new connection.
    pub weight: i32,
    /// Last non-zero weight; `mh` builds its table from it so that quiescing a
    /// destination does not move other flows.
    pub last_weight: i32,
    /// Active connections (`activeconns`).
    pub active: u32,
    /// Inactive connections (`inactconns`).
    pub inactive: u32,
    /// `IP_VS_DEST_F_AVAILABLE`; only `dh`, `lblc` and `lblcr` consult it, as in the
    /// kernel (every dest in a service's list is available there).
    pub available: bool,
    /// `IP_VS_DEST_F_OVERLOAD` (upper connection threshold reached).
    pub overloaded: bool,
}

/// The packet tuple a scheduler may hash, oriented client to service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Flow {
    /// IP protocol number (6 TCP, 17 UDP, 132 SCTP, ...).
    pub proto: u8,
    /// Client address (`sh`/`mh` key).
    pub src: IpAddr,
    /// Client port, host order (`sh-port`/`mh-port` key).
    pub sport: u16,
    /// Packet destination address (`dh`/`lblc`/`lblcr` key).
    pub dst: IpAddr,
    /// Packet destination port, host order.
    pub dport: u16,
}

/// A scheduling algorithm, named as ipvsadm and the kernel name it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SchedKind {
    /// `rr`: round robin.
    Rr,
    /// `wrr`: weighted round robin.
    Wrr,
    /// `lc`: least connection.
    Lc,
    /// `wlc`: weighted least connection, ipvsadm's default.
    #[default]
    Wlc,
    /// `lblc`: locality-based least connection.
    Lblc,
    /// `lblcr`: locality-based least connection with replication.
    Lblcr,
    /// `dh`: destination hashing.
    Dh,
    /// `sh`: source hashing.
    Sh,
    /// `sed`: shortest expected delay.
    Sed,
    /// `nq`: never queue.
    Nq,
    /// `fo`: weighted failover.
    Fo,
    /// `ovf`: weighted overflow.
    Ovf,
    /// `mh`: Maglev hashing.
    Mh,
    /// `twos`: weighted random "power of two choices".
    Twos,
}

impl SchedKind {
    /// Every scheduler, in ipvsadm's help order with `twos` last.
    pub const ALL: [Self; 14] = [
        Self::Rr,
        Self::Wrr,
        Self::Lc,
        Self::Wlc,
        Self::Lblc,
        Self::Lblcr,
        Self::Dh,
        Self::Sh,
        Self::Sed,
        Self::Nq,
        Self::Fo,
        Self::Ovf,
        Self::Mh,
        Self::Twos,
    ];

    /// The ipvsadm/kernel short name (`"rr"`, `"wlc"`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Rr => "rr",
            Self::Wrr => "wrr",
            Self::Lc => "lc",
            Self::Wlc => "wlc",
            Self::Lblc => "lblc",
            Self::Lblcr => "lblcr",
            Self::Dh => "dh",
            Self::Sh => "sh",
            Self::Sed => "sed",
            Self::Nq => "nq",
            Self::Fo => "fo",
            Self::Ovf => "ovf",
            Self::Mh => "mh",
            Self::Twos => "twos",
        }
    }
}

impl fmt::Display for SchedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A scheduler name that no scheduler has (the kernel answers `ENOENT`, which
/// ipvsadm prints as "Scheduler or persistence engine not found").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownScheduler;

impl fmt::Display for UnknownScheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown scheduler")
    }
}

impl std::error::Error for UnknownScheduler {}

impl FromStr for SchedKind {
    type Err = UnknownScheduler;

    /// Exact, case-sensitive match of the short name, as the kernel's `strcmp`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or(UnknownScheduler)
    }
}

/// Scheduler flag bits, as in the IPVS service flags word.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SchedFlags(pub u32);

impl SchedFlags {
    /// No flag.
    pub const NONE: Self = Self(0);
    /// `IP_VS_SVC_F_SCHED1` (0x8).
    pub const SCHED1: Self = Self(0x8);
    /// `IP_VS_SVC_F_SCHED2` (0x10).
    pub const SCHED2: Self = Self(0x10);
    /// `IP_VS_SVC_F_SCHED3` (0x20).
    pub const SCHED3: Self = Self(0x20);
    /// `sh-fallback` / `mh-fallback`: move on when the hashed dest is unusable.
    pub const FALLBACK: Self = Self::SCHED1;
    /// `sh-port` / `mh-port`: mix the client port into the hash (TCP, UDP, SCTP).
    pub const PORT: Self = Self::SCHED2;
    /// The three scheduler bits.
    pub const MASK: Self = Self(0x38);

    /// True if every bit of `other` is set in `self`.
    #[inline]
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl core::ops::BitOr for SchedFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl core::ops::BitOrAssign for SchedFlags {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

/// A change of the destination list, reported to [`Scheduler::update`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DestChange {
    /// A destination was inserted at `index` (0, the head, for IPVS).
    Added {
        /// Its index in the new list.
        index: usize,
    },
    /// A destination was removed.
    Removed {
        /// The index it had in the old list.
        index: usize,
        /// Its id.
        id: DestId,
    },
    /// A destination's weight, thresholds or flags changed in place.
    Edited {
        /// Its index.
        index: usize,
    },
}

/// `mh` table size not in [`MH_TABLE_SIZES`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidMhTableSize(pub u32);

impl fmt::Display for InvalidMhTableSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "mh table size {} is not one of the kernel's primes",
            self.0
        )
    }
}

impl std::error::Error for InvalidMhTableSize {}

/// Maglev lookup-table sizes the kernel can be built with
/// (`CONFIG_IP_VS_MH_TAB_INDEX` 8..=17 picks index 0..=9).
pub const MH_TABLE_SIZES: [u32; 10] = [
    251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071,
];

/// The kernel's default Maglev table size (`CONFIG_IP_VS_MH_TAB_INDEX` = 12).
pub const MH_DEFAULT_TABLE_SIZE: u32 = 4093;

/// Default `lblc_expiration` / `lblcr_expiration`: 24 hours, in milliseconds.
pub const LBLC_DEFAULT_EXPIRATION_MS: u64 = lblc::DEFAULT_EXPIRATION_MS;

/// Default bound on lblc/lblcr locality entries (see
/// [`Scheduler::set_lblc_max_entries`]).
pub const LBLC_DEFAULT_MAX_ENTRIES: usize = lblc::DEFAULT_MAX_ENTRIES;

/// Per-algorithm state.
#[derive(Clone, Debug)]
enum State {
    Rr(rr::Rr),
    Wrr(rr::Wrr),
    Lc,
    Wlc,
    Sed,
    Nq,
    Fo,
    Ovf,
    Twos(least::SplitMix64),
    Dh(hashing::Dh),
    Sh(hashing::Sh),
    Mh(mh::Mh),
    Lblc(lblc::Lblc),
    Lblcr(lblc::Lblcr),
}

/// One service's scheduler: the algorithm, its flags and its state.
///
/// Create it with [`Scheduler::new`], call [`Scheduler::init`] with the current
/// destination list, then [`Scheduler::update`] after each change and
/// [`Scheduler::schedule`] for each new connection.
#[derive(Clone, Debug)]
pub struct Scheduler {
    kind: SchedKind,
    flags: SchedFlags,
    state: State,
}

impl Scheduler {
    /// A scheduler of `kind` with no destinations yet.
    ///
    /// `flags` matter to `sh` and `mh` only. `seed` seeds the deterministic PRNG of
    /// `twos` (the kernel draws from its CSPRNG; a fixed seed makes runs
    /// reproducible) and is ignored by the others.
    pub fn new(kind: SchedKind, flags: SchedFlags, seed: u64) -> Self {
        let state = match kind {
            SchedKind::Rr => State::Rr(rr::Rr::default()),
            SchedKind::Wrr => State::Wrr(rr::Wrr::default()),
            SchedKind::Lc => State::Lc,
            SchedKind::Wlc => State::Wlc,
            SchedKind::Sed => State::Sed,
            SchedKind::Nq => State::Nq,
            SchedKind::Fo => State::Fo,
            SchedKind::Ovf => State::Ovf,
            SchedKind::Twos => State::Twos(least::SplitMix64::new(seed)),
            SchedKind::Dh => State::Dh(hashing::Dh::default()),
            SchedKind::Sh => State::Sh(hashing::Sh::default()),
            SchedKind::Mh => State::Mh(mh::Mh::new(MH_DEFAULT_TABLE_SIZE)),
            SchedKind::Lblc => State::Lblc(lblc::Lblc::default()),
            SchedKind::Lblcr => State::Lblcr(lblc::Lblcr::default()),
        };
        Self { kind, flags, state }
    }

    /// Use a Maglev table of `size` slots instead of the default 4093 (the kernel's
    /// build option). No effect on other kinds. Call [`Scheduler::init`] after.
    ///
    /// # Errors
    ///
    /// [`InvalidMhTableSize`] if `size` is not one of [`MH_TABLE_SIZES`].
    pub fn with_mh_table_size(mut self, size: u32) -> Result<Self, InvalidMhTableSize> {
        if !MH_TABLE_SIZES.contains(&size) {
            return Err(InvalidMhTableSize(size));
        }
        if let State::Mh(m) = &mut self.state {
            *m = mh::Mh::new(size);
        }
        Ok(self)
    }

    /// The algorithm.
    pub fn kind(&self) -> SchedKind {
        self.kind
    }

    /// The flags.
    pub fn flags(&self) -> SchedFlags {
        self.flags
    }

    /// Change the flags (an `ipvsadm -E` keeping the scheduler). Takes effect on the
    /// next [`Scheduler::schedule`]; no table depends on them.
    pub fn set_flags(&mut self, flags: SchedFlags) {
        self.flags = flags;
    }

    /// The most destinations this scheduler can place: the table size for `mh`
    /// (the kernel refuses to create an `mh` service with more dests, and stops
    /// rebuilding the table when more are added), unlimited for the others.
    pub fn max_dests(&self) -> Option<usize> {
        match &self.state {
            State::Mh(m) => Some(m.size() as usize),
            _ => None,
        }
    }

    /// Called after every change of the destination list; `dests` is the new list
    /// (newest first). For [`DestChange::Removed`], `index` is where the removed
    /// dest used to be.
    ///
    /// * `rr`: an added dest shifts the cursor; deleting the cursor dest moves the
    ///   cursor to its predecessor (the list head if it was first).
    /// * `wrr`: cursor back to the head, gcd/max recomputed, `cw` adjusted.
    /// * `dh`, `sh`, `mh`: tables rebuilt (`mh` keeps its old table, re-indexed,
    ///   while there are more dests than slots).
    /// * `lblc`, `lblcr`: their id index is refreshed; locality entries are kept.
    pub fn update(&mut self, dests: &[DestState], change: DestChange) {
        match &mut self.state {
            State::Rr(s) => s.update(dests.len(), change),
            State::Wrr(s) => s.changed(dests),
            State::Dh(s) => s.rebuild(dests),
            State::Sh(s) => s.rebuild(dests),
            State::Mh(s) => s.update(dests, change),
            State::Lblc(s) => s.rebuild(dests),
            State::Lblcr(s) => s.rebuild(dests),
            State::Lc | State::Wlc | State::Sed | State::Nq | State::Fo | State::Ovf => {}
            State::Twos(_) => {}
        }
    }

    /// Full rebuild, as the kernel's `init_service` when a service gets this
    /// scheduler: `rr`/`wrr` cursors back to the head (`wrr`'s `cw` to the max
    /// weight), tables rebuilt. lblc/lblcr locality entries are kept; create a new
    /// `Scheduler` to start them afresh.
    pub fn init(&mut self, dests: &[DestState]) {
        match &mut self.state {
            State::Rr(s) => s.init(),
            State::Wrr(s) => s.init(dests),
            State::Dh(s) => s.rebuild(dests),
            State::Sh(s) => s.rebuild(dests),
            State::Mh(s) => s.rebuild(dests),
            State::Lblc(s) => s.rebuild(dests),
            State::Lblcr(s) => s.rebuild(dests),
            State::Lc | State::Wlc | State::Sed | State::Nq | State::Fo | State::Ovf => {}
            State::Twos(_) => {}
        }
    }

    /// Pick a destination for a new connection: an index into `dests`, or `None`
    /// when no destination is available (the kernel logs
    /// "`<sched>`: no destination available" and the caller applies spec 5.11).
    ///
    /// `now_ms` is a monotonic millisecond clock, used by `lblc`/`lblcr` only.
    /// Never allocates, except `lblc`/`lblcr` when they create a locality entry.
    #[inline]
    pub fn schedule(&mut self, dests: &[DestState], flow: &Flow, now_ms: u64) -> Option<usize> {
        match &mut self.state {
            State::Rr(s) => s.schedule(dests),
            State::Wrr(s) => s.schedule(dests),
            State::Lc => least::lc(dests),
            State::Wlc => least::wlc(dests),
            State::Sed => least::sed(dests),
            State::Nq => least::nq(dests),
            State::Fo => least::fo(dests),
            State::Ovf => least::ovf(dests),
            State::Twos(rng) => least::twos(dests, rng),
            State::Dh(s) => s.schedule(dests, flow),
            State::Sh(s) => s.schedule(dests, flow, self.flags),
            State::Mh(s) => s.schedule(dests, flow, self.flags),
            State::Lblc(s) => s.schedule(dests, flow, now_ms),
            State::Lblcr(s) => s.schedule(dests, flow, now_ms),
        }
    }

    /// When [`Scheduler::handle_timeout`] must next run, in the same milliseconds
    /// as `now_ms`. Only `lblc`/`lblcr` have a timer (every 60 s); it is armed by
    /// the first [`Scheduler::schedule`] (before that their table is empty) or by
    /// [`Scheduler::start_timer`]. `None` for every other scheduler.
    pub fn poll_timeout(&self) -> Option<u64> {
        match &self.state {
            State::Lblc(s) => s.poll_timeout(),
            State::Lblcr(s) => s.poll_timeout(),
            _ => None,
        }
    }

    /// Arm the lblc/lblcr timer from the service's creation time, as the kernel
    /// does in `init_service`, so that the 30-minute full expiration pass keeps the
    /// kernel's phase. Optional; no effect on other schedulers or an armed timer.
    pub fn start_timer(&mut self, now_ms: u64) {
        match &mut self.state {
            State::Lblc(s) => s.start_timer(now_ms),
            State::Lblcr(s) => s.start_timer(now_ms),
            _ => {}
        }
    }

    /// Periodic housekeeping: when the deadline of [`Scheduler::poll_timeout`] has
    /// passed, run the lblc/lblcr garbage collector once (spec 4.10) and re-arm 60 s
    /// later. Calls before the deadline, and for other schedulers, do nothing.
    pub fn handle_timeout(&mut self, dests: &[DestState], now_ms: u64) {
        let _ = dests; // the kernel's collector looks at entries only
        match &mut self.state {
            State::Lblc(s) => s.handle_timeout(now_ms),
            State::Lblcr(s) => s.handle_timeout(now_ms),
            _ => {}
        }
    }

    /// The `lblc_expiration` / `lblcr_expiration` sysctl, in milliseconds (default
    /// 24 h): idle time after which the full pass drops an entry, and for `lblcr`
    /// the age after which a replicated set sheds its most loaded member.
    pub fn set_lblc_expiration_ms(&mut self, ms: u64) {
        match &mut self.state {
            State::Lblc(s) => s.set_expiration_ms(ms),
            State::Lblcr(s) => s.set_expiration_ms(ms),
            _ => {}
        }
    }

    /// Bound the number of lblc/lblcr locality entries (default
    /// [`LBLC_DEFAULT_MAX_ENTRIES`]). At the bound a new destination address is
    /// scheduled by wlc without being remembered, as the kernel does when an entry
    /// cannot be allocated. The kernel itself has no bound.
    pub fn set_lblc_max_entries(&mut self, max: usize) {
        match &mut self.state {
            State::Lblc(s) => s.set_max_entries(max),
            State::Lblcr(s) => s.set_max_entries(max),
            _ => {}
        }
    }

    /// Number of lblc/lblcr locality entries (0 for other schedulers).
    pub fn lblc_entries(&self) -> usize {
        match &self.state {
            State::Lblc(s) => s.len(),
            State::Lblcr(s) => s.len(),
            _ => 0,
        }
    }

    /// The Maglev lookup table (slot -> dest index, `u32::MAX` for an empty slot),
    /// for diagnostics and tests; `None` for other schedulers.
    pub fn mh_table(&self) -> Option<&[u32]> {
        match &self.state {
            State::Mh(m) => Some(m.table()),
            _ => None,
        }
    }
}
