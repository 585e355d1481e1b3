//! rvs-sched: the IPVS schedulers.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use core::fmt;
use core::net::IpAddr;
use core::str::FromStr;

/// Stable id of a destination within the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DestId(pub u32);

/// What a scheduler sees of one destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestState {
    /// Stable id.
    pub id: DestId,
    /// Real server address.
    pub addr: IpAddr,
    /// Real server port (host order).
    pub port: u16,
    /// Current weight, 0 = quiescent.
    pub weight: i32,
    /// Last non-zero weight (used by mh).
    pub last_weight: i32,
    /// Active connections.
    pub active: u32,
    /// Inactive connections.
    pub inactive: u32,
    /// `IP_VS_DEST_F_AVAILABLE`.
    pub available: bool,
    /// `IP_VS_DEST_F_OVERLOAD`.
    pub overloaded: bool,
}

/// The packet tuple a scheduler may hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Flow {
    /// IP protocol number.
    pub proto: u8,
    /// Source address.
    pub src: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination address.
    pub dst: IpAddr,
    /// Destination port.
    pub dport: u16,
}

/// Scheduler algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SchedKind {
    /// Round robin.
    Rr,
    /// Weighted round robin.
    Wrr,
    /// Least connection.
    Lc,
    /// Weighted least connection.
    Wlc,
    /// Locality-based least connection.
    Lblc,
    /// Locality-based least connection with replication.
    Lblcr,
    /// Destination hashing.
    Dh,
    /// Source hashing.
    Sh,
    /// Shortest expected delay.
    Sed,
    /// Never queue.
    Nq,
    /// Weighted failover.
    Fo,
    /// Weighted overflow.
    Ovf,
    /// Maglev hashing.
    Mh,
    /// Weighted random twos choice.
    Twos,
}

impl SchedKind {
    /// Every scheduler.
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

    /// ipvsadm short name.
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

/// Unknown scheduler name.
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
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or(UnknownScheduler)
    }
}

/// Scheduler flag bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SchedFlags(pub u32);

impl SchedFlags {
    /// No flag.
    pub const NONE: Self = Self(0);
    /// `IP_VS_SVC_F_SCHED1`.
    pub const SCHED1: Self = Self(0x8);
    /// `IP_VS_SVC_F_SCHED2`.
    pub const SCHED2: Self = Self(0x10);
    /// `IP_VS_SVC_F_SCHED3`.
    pub const SCHED3: Self = Self(0x20);
    /// sh/mh fallback.
    pub const FALLBACK: Self = Self::SCHED1;
    /// sh/mh port.
    pub const PORT: Self = Self::SCHED2;

    /// True if all bits of `other` are set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

/// A change of the destination list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DestChange {
    /// A destination was added at `index` (normally 0).
    Added {
        /// Index in the new list.
        index: usize,
    },
    /// A destination was removed.
    Removed {
        /// Index it used to have.
        index: usize,
        /// Its id.
        id: DestId,
    },
    /// A destination was edited.
    Edited {
        /// Its index.
        index: usize,
    },
}

/// A scheduler instance.
#[derive(Clone, Debug)]
pub struct Scheduler {
    kind: SchedKind,
    flags: SchedFlags,
    cursor: Option<usize>,
}

impl Scheduler {
    /// New scheduler.
    pub fn new(kind: SchedKind, flags: SchedFlags, seed: u64) -> Self {
        let _ = seed;
        Self {
            kind,
            flags,
            cursor: None,
        }
    }
    /// Kind.
    pub fn kind(&self) -> SchedKind {
        self.kind
    }
    /// Flags.
    pub fn flags(&self) -> SchedFlags {
        self.flags
    }
    /// Update after a change.
    pub fn update(&mut self, dests: &[DestState], change: DestChange) {
        let _ = (dests, change);
        self.cursor = None;
    }
    /// Full rebuild.
    pub fn init(&mut self, dests: &[DestState]) {
        let _ = dests;
        self.cursor = None;
    }
    /// Pick a destination.
    pub fn schedule(&mut self, dests: &[DestState], flow: &Flow, now_ms: u64) -> Option<usize> {
        let _ = (flow, now_ms);
        dests.iter().position(|d| d.weight > 0 && !d.overloaded)
    }
    /// Next housekeeping deadline.
    pub fn poll_timeout(&self) -> Option<u64> {
        None
    }
    /// Housekeeping.
    pub fn handle_timeout(&mut self, dests: &[DestState], now_ms: u64) {
        let _ = (dests, now_ms);
    }
    /// lblc/lblcr expiration.
    pub fn set_lblc_expiration_ms(&mut self, ms: u64) {
        let _ = ms;
    }
}

/// Maglev table sizes.
pub const MH_TABLE_SIZES: [u32; 10] = [
    251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071,
];
/// Default Maglev table size.
pub const MH_DEFAULT_TABLE_SIZE: u32 = 4093;

/// Kernel `hash_32`.
pub fn hash_32(v: u32, bits: u32) -> u32 {
    v.wrapping_mul(0x61C8_8647) >> (32 - bits)
}

/// Fold an address to 32 bits.
pub fn fold_addr(addr: &IpAddr) -> u32 {
    match addr {
        IpAddr::V4(a) => u32::from(*a),
        IpAddr::V6(a) => {
            let o = a.octets();
            let mut r = 0;
            for c in o.chunks_exact(4) {
                r ^= u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
            }
            r
        }
    }
}

/// hsiphash of one u32 (SipHash-1-3).
pub fn hsiphash_u32(v: u32, k0: u64, k1: u64) -> u32 {
    let _ = (k0, k1);
    v
}
