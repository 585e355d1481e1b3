//! The connection table: a slab of fixed-size entries, two hash indexes and a timer wheel.
//!
//! * The slab holds [`Conn`] entries (96 bytes, 32-byte aligned: every entry covers exactly
//!   two cache lines). A slot is addressed by its index plus a generation, so stale
//!   references (timer entries, eviction queue) are detected.
//! * `inbound` indexes every entry by `(af, proto, caddr, cport, vaddr, vport)`: client
//!   packets and persistence templates are found there. `outbound` indexes NAT entries by the
//!   real-server side `(af, proto, caddr, cport, daddr, dport)` so replies are found. Both are
//!   [`ConnIndex`]es: one cache line per probe, and a home bucket the batched data path can
//!   compute and read ahead of the lookup ([`ConnTable::touch_in`]).
//! * Timers are idle timeouts re-armed by every packet. Re-arming only writes the entry's
//!   `expires`; the wheel (one slot per second) holds a reference that, when its slot comes,
//!   either expires the entry or moves it to the slot of its current deadline. A deadline
//!   that moves earlier (ESTABLISHED 900 s → FIN_WAIT 120 s) adds a new reference.
//! * Capacity is fixed at construction. When the table is full, the oldest half-open entry
//!   (SYN_RECV, SYNACK, SCTP INIT) is evicted to make room; established entries are never
//!   evicted to admit a new one.

use std::collections::VecDeque;

use crate::addr::{Addr16, words};
use crate::hash::hash5;
use crate::index::ConnIndex;
use crate::time::Instant;

/// Entry is a persistence template.
pub(crate) const F_TEMPLATE: u16 = 0x0001;
/// Replies bypass the director (DR, TUN): use the INPUT_ONLY table.
pub(crate) const F_NOOUTPUT: u16 = 0x0002;
/// Counted in the destination's InActConn (else ActiveConn; templates in PersistConn).
pub(crate) const F_INACTIVE: u16 = 0x0004;
/// Template has seen an established/answered controlled connection.
pub(crate) const F_ASSURED: u16 = 0x0008;
/// Linked in the outbound index.
pub(crate) const F_OUT_HASHED: u16 = 0x0010;
/// Template neutralised (never matches again, left to expire).
pub(crate) const F_DEAD: u16 = 0x0020;
/// One-packet scheduling entry, never hashed.
pub(crate) const F_ONE_PACKET: u16 = 0x0040;
/// The slab slot holds a live entry.
pub(crate) const F_LIVE: u16 = 0x0080;
/// Belongs to a firewall-mark service: only frames that carry their mark may use it.
pub(crate) const F_FWMARK: u16 = 0x0100;
/// The client → VIP flow is offloaded (`crate::offload`).
pub(crate) const F_OFF_IN: u16 = 0x0200;
/// The NAT reply flow is offloaded.
pub(crate) const F_OFF_OUT: u16 = 0x0400;
/// Offloaded, deadline passed once: waiting [`crate::offload::OFFLOAD_GRACE`] for a late report.
pub(crate) const F_OFF_GRACE: u16 = 0x0800;
/// Either direction offloaded.
pub(crate) const F_OFF: u16 = F_OFF_IN | F_OFF_OUT;

/// Address-family bits in [`Conn::af`].
pub(crate) const AF_V6: u8 = 0x1;
/// The destination (real server) is IPv6.
pub(crate) const AF_DEST_V6: u8 = 0x2;

/// "No index" marker.
pub(crate) const NONE: u32 = u32::MAX;

/// One tracked connection or persistence template.
///
/// `repr(C)` keeps the declared order so the batch path can touch both cache lines of an
/// entry by reading its first and last byte; 96 bytes at 32-byte alignment never span a
/// third line.
#[derive(Clone, Debug, Default)]
#[repr(C, align(32))]
pub(crate) struct Conn {
    pub(crate) caddr: Addr16,
    pub(crate) vaddr: Addr16,
    pub(crate) daddr: Addr16,
    pub(crate) expires_ms: u64,
    /// Second of the wheel slot holding this entry's newest timer reference.
    pub(crate) wheel_sec: u64,
    /// Destination record id.
    pub(crate) dest: u32,
    /// Controlling template slot, or [`NONE`].
    pub(crate) controller: u32,
    /// A template's count of controlled connections; a connection's controller
    /// generation. A template is never controlled and a connection never controls, so the
    /// two share a word (read them through [`Conn::n_controlled`] and
    /// [`Conn::controller_slot`]).
    pub(crate) link: u32,
    pub(crate) in_pkts: u32,
    pub(crate) generation: u32,
    pub(crate) cport: u16,
    pub(crate) vport: u16,
    pub(crate) dport: u16,
    pub(crate) flags: u16,
    /// IP protocol; 0 for templates of fwmark services (shown as `IP`).
    pub(crate) proto: u8,
    pub(crate) af: u8,
    /// Protocol state index (TCP/SCTP), 0 otherwise; templates: 0 NONE, ASSURED via flag.
    pub(crate) state: u8,
    /// Forwarding method (`crate::service::ForwardMethod as u8`).
    pub(crate) method: u8,
}

impl Conn {
    pub(crate) fn is_v6(&self) -> bool {
        self.af & AF_V6 != 0
    }
    pub(crate) fn dest_v6(&self) -> bool {
        self.af & AF_DEST_V6 != 0
    }
    pub(crate) fn is_template(&self) -> bool {
        self.flags & F_TEMPLATE != 0
    }
    pub(crate) fn is_live(&self) -> bool {
        self.flags & F_LIVE != 0
    }
    /// Connections this template controls (0 for a connection).
    pub(crate) fn n_controlled(&self) -> u32 {
        if self.is_template() { self.link } else { 0 }
    }
    /// One more (`true`) or one fewer controlled connection; no effect on a connection.
    pub(crate) fn count_controlled(&mut self, more: bool) {
        if self.is_template() {
            self.link = if more {
                self.link.saturating_add(1)
            } else {
                self.link.saturating_sub(1)
            };
        }
    }
    /// The controlling template's slot, if any.
    pub(crate) fn controller_slot(&self) -> Option<Slot> {
        (self.controller != NONE && !self.is_template()).then_some(Slot {
            idx: self.controller,
            generation: self.link,
        })
    }
}

/// Lookup key on the client side (also the template key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct InKey {
    pub(crate) af: u8,
    pub(crate) proto: u8,
    pub(crate) caddr: Addr16,
    pub(crate) cport: u16,
    pub(crate) vaddr: Addr16,
    pub(crate) vport: u16,
    pub(crate) template: bool,
}

/// Lookup key on the real-server side (NAT replies).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OutKey {
    pub(crate) af: u8,
    pub(crate) proto: u8,
    pub(crate) caddr: Addr16,
    pub(crate) cport: u16,
    pub(crate) daddr: Addr16,
    pub(crate) dport: u16,
}

#[inline(always)]
#[expect(
    clippy::too_many_arguments,
    reason = "a flat key keeps the hot path free of temporaries"
)]
fn key_hash(
    seed: u64,
    af: u8,
    proto: u8,
    a: &Addr16,
    ap: u16,
    b: &Addr16,
    bp: u16,
    t: bool,
) -> u64 {
    let (a0, a1) = words(a);
    let (b0, b1) = words(b);
    let misc = u64::from(af & AF_V6)
        | (u64::from(proto) << 8)
        | (u64::from(ap) << 16)
        | (u64::from(bp) << 32)
        | (u64::from(t) << 48);
    hash5(seed, [a0, a1, b0, b1, misc])
}

impl InKey {
    #[inline(always)]
    fn hash(&self, seed: u64) -> u64 {
        key_hash(
            seed,
            self.af,
            self.proto,
            &self.caddr,
            self.cport,
            &self.vaddr,
            self.vport,
            self.template,
        )
    }
    #[inline(always)]
    fn matches(&self, c: &Conn) -> bool {
        c.cport == self.cport
            && c.vport == self.vport
            && c.proto == self.proto
            && (c.af & AF_V6) == (self.af & AF_V6)
            && ((c.flags & F_TEMPLATE) != 0) == self.template
            && c.caddr == self.caddr
            && c.vaddr == self.vaddr
            && c.flags & F_DEAD == 0
    }
    pub(crate) fn of(c: &Conn) -> Self {
        Self {
            af: c.af & AF_V6,
            proto: c.proto,
            caddr: c.caddr,
            cport: c.cport,
            vaddr: c.vaddr,
            vport: c.vport,
            template: c.is_template(),
        }
    }
}

impl OutKey {
    #[inline(always)]
    fn hash(&self, seed: u64) -> u64 {
        key_hash(
            seed ^ 0x5bd1_e995,
            self.af,
            self.proto,
            &self.caddr,
            self.cport,
            &self.daddr,
            self.dport,
            false,
        )
    }
    #[inline(always)]
    fn matches(&self, c: &Conn) -> bool {
        c.cport == self.cport
            && c.dport == self.dport
            && c.proto == self.proto
            && c.flags & F_OUT_HASHED != 0
            && (c.af & AF_DEST_V6 != 0) == (self.af & AF_V6 != 0)
            && c.caddr == self.caddr
            && c.daddr == self.daddr
    }
    pub(crate) fn of(c: &Conn) -> Self {
        Self {
            af: u8::from(c.dest_v6()),
            proto: c.proto,
            caddr: c.caddr,
            cport: c.cport,
            daddr: c.daddr,
            dport: c.dport,
        }
    }
}

/// A reference to a slab slot that survives reuse checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Slot {
    pub(crate) idx: u32,
    pub(crate) generation: u32,
}

const WHEEL_SLOTS: u64 = 4096;

/// Why an entry could not be inserted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InsertError {
    /// Table at capacity and nothing evictable.
    Full,
}

/// See the module documentation.
pub(crate) struct ConnTable {
    slab: Vec<Conn>,
    free: Vec<u32>,
    inbound: ConnIndex,
    outbound: ConnIndex,
    wheel: Vec<Vec<Slot>>,
    /// Every slot up to (excluding) this second has been processed.
    wheel_next_sec: u64,
    half_open: VecDeque<Slot>,
    capacity: usize,
    live: usize,
    seed: u64,
}

impl ConnTable {
    pub(crate) fn new(capacity: usize, seed: u64, now: Instant) -> Self {
        Self {
            slab: Vec::new(),
            free: Vec::new(),
            inbound: ConnIndex::new(),
            outbound: ConnIndex::new(),
            wheel: (0..WHEEL_SLOTS).map(|_| Vec::new()).collect(),
            wheel_next_sec: now.secs(),
            half_open: VecDeque::new(),
            capacity: capacity.max(1),
            live: 0,
            seed,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.live
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Reserve the inbound index and the slab for `n` entries up front (avoids rehash
    /// pauses). The outbound index holds NAT entries only and grows on demand.
    pub(crate) fn reserve(&mut self, n: usize) {
        let seed = self.seed;
        let slab = &self.slab;
        self.inbound
            .reserve(n, |i| InKey::of(&slab[i as usize]).hash(seed));
        self.slab.reserve(n.saturating_sub(self.slab.len()));
    }

    #[inline]
    pub(crate) fn get(&self, idx: u32) -> &Conn {
        &self.slab[idx as usize]
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, idx: u32) -> &mut Conn {
        &mut self.slab[idx as usize]
    }

    /// The entry at `s` if it is still the same entry.
    pub(crate) fn resolve(&self, s: Slot) -> Option<u32> {
        let c = self.slab.get(s.idx as usize)?;
        (c.is_live() && c.generation == s.generation).then_some(s.idx)
    }

    pub(crate) fn slot_of(&self, idx: u32) -> Slot {
        Slot {
            idx,
            generation: self.slab[idx as usize].generation,
        }
    }

    /// The seeded hash of an inbound key (a pure function of the key).
    #[inline(always)]
    pub(crate) fn hash_in(&self, key: &InKey) -> u64 {
        key.hash(self.seed)
    }

    /// The seeded hash of an outbound key.
    #[inline(always)]
    pub(crate) fn hash_out(&self, key: &OutKey) -> u64 {
        key.hash(self.seed)
    }

    #[inline]
    pub(crate) fn lookup_in(&self, key: &InKey) -> Option<u32> {
        self.lookup_in_hashed(key, self.hash_in(key))
    }

    /// [`ConnTable::lookup_in`] with the key's hash already computed.
    #[inline]
    pub(crate) fn lookup_in_hashed(&self, key: &InKey, h: u64) -> Option<u32> {
        let slab = &self.slab;
        self.inbound
            .find(h, |i| slab.get(i as usize).is_some_and(|c| key.matches(c)))
    }

    #[inline]
    pub(crate) fn lookup_out(&self, key: &OutKey) -> Option<u32> {
        self.lookup_out_hashed(key, self.hash_out(key))
    }

    /// [`ConnTable::lookup_out`] with the key's hash already computed.
    #[inline]
    pub(crate) fn lookup_out_hashed(&self, key: &OutKey, h: u64) -> Option<u32> {
        let slab = &self.slab;
        self.outbound
            .find(h, |i| slab.get(i as usize).is_some_and(|c| key.matches(c)))
    }

    /// Whether the entry at `idx` is live and is the one `key` looks up. An inbound key
    /// matches at most one live entry (entries are created only after a lookup missed, and
    /// neutralised templates never match), so this answers a lookup without probing.
    #[inline]
    pub(crate) fn is_live_match_in(&self, idx: u32, key: &InKey) -> bool {
        self.slab
            .get(idx as usize)
            .is_some_and(|c| c.is_live() && key.matches(c))
    }

    /// Whether any NAT entry is indexed for replies.
    #[inline]
    pub(crate) fn has_outbound(&self) -> bool {
        !self.outbound.is_empty()
    }

    /// Read the inbound bucket of hash `h` early (see [`ConnIndex::touch`]).
    #[inline(always)]
    pub(crate) fn touch_in(&self, h: u64) -> u32 {
        self.inbound.touch(h)
    }

    /// Read the outbound bucket of hash `h` early.
    #[inline(always)]
    pub(crate) fn touch_out(&self, h: u64) -> u32 {
        self.outbound.touch(h)
    }

    /// The likely inbound hit for hash `h`: the first tag match in its home bucket.
    #[inline(always)]
    pub(crate) fn candidate_in(&self, h: u64) -> Option<u32> {
        self.inbound.candidate(h)
    }

    /// The likely outbound hit for hash `h`.
    #[inline(always)]
    pub(crate) fn candidate_out(&self, h: u64) -> Option<u32> {
        self.outbound.candidate(h)
    }

    /// Read both cache lines of the entry at `idx` (its first and last byte: a 96-byte,
    /// 32-aligned entry spans exactly two lines) and return a word of them.
    #[inline(always)]
    pub(crate) fn touch_entry(&self, idx: u32) -> u32 {
        self.slab
            .get(idx as usize)
            .map_or(0, |c| u32::from(c.caddr[0]) ^ u32::from(c.method))
    }

    /// Whether a new entry can be admitted, evicting the oldest half-open entry if needed.
    /// Returns the evicted entry's slot, which the caller must release (unbind) with
    /// [`ConnTable::remove`] — the caller owns destination accounting.
    pub(crate) fn make_room(&mut self) -> Result<Option<u32>, InsertError> {
        if self.live < self.capacity {
            return Ok(None);
        }
        while let Some(s) = self.half_open.pop_front() {
            if let Some(idx) = self.resolve(s) {
                let c = &self.slab[idx as usize];
                if !c.is_template() && c.n_controlled() == 0 && is_half_open(c) {
                    return Ok(Some(idx));
                }
            }
        }
        Err(InsertError::Full)
    }

    /// Insert an entry (the caller made room). Links it in the indexes and the wheel.
    pub(crate) fn insert(&mut self, mut c: Conn) -> u32 {
        c.flags |= F_LIVE;
        let idx = match self.free.pop() {
            Some(i) => {
                c.generation = self.slab[i as usize].generation.wrapping_add(1);
                self.slab[i as usize] = c;
                i
            }
            None => {
                c.generation = 0;
                self.slab.push(c);
                (self.slab.len() - 1) as u32
            }
        };
        self.live += 1;
        let seed = self.seed;
        let slab = &self.slab;
        let c = &slab[idx as usize];
        if c.flags & F_ONE_PACKET == 0 {
            let h = InKey::of(c).hash(seed);
            self.inbound
                .insert(h, idx, |i| InKey::of(&slab[i as usize]).hash(seed));
        }
        if c.flags & F_OUT_HASHED != 0 {
            let h = OutKey::of(c).hash(seed);
            self.outbound
                .insert(h, idx, |i| OutKey::of(&slab[i as usize]).hash(seed));
        }
        let exp = c.expires_ms;
        self.schedule(idx, exp);
        idx
    }

    /// Unlink and free an entry. Returns a copy for the caller's accounting.
    pub(crate) fn remove(&mut self, idx: u32) -> Conn {
        let seed = self.seed;
        let c = &self.slab[idx as usize];
        debug_assert!(c.is_live());
        if c.flags & F_ONE_PACKET == 0 {
            self.inbound.remove(InKey::of(c).hash(seed), idx);
        }
        if c.flags & F_OUT_HASHED != 0 {
            self.outbound.remove(OutKey::of(c).hash(seed), idx);
        }
        let old = core::mem::take(&mut self.slab[idx as usize]);
        self.slab[idx as usize].generation = old.generation;
        self.free.push(idx);
        self.live -= 1;
        old
    }

    /// Re-key an entry in the inbound index after its key fields changed (template
    /// neutralisation, or a NAT entry's first client port).
    pub(crate) fn rehash_in(&mut self, idx: u32, old: &InKey) {
        let seed = self.seed;
        self.inbound.remove(old.hash(seed), idx);
        let slab = &self.slab;
        let nh = InKey::of(&slab[idx as usize]).hash(seed);
        self.inbound
            .insert(nh, idx, |i| InKey::of(&slab[i as usize]).hash(seed));
    }

    /// Set a new deadline; adds a wheel reference only when it moves earlier than the slot
    /// already holding one.
    #[inline]
    pub(crate) fn set_expires(&mut self, idx: u32, expires_ms: u64) {
        let c = &mut self.slab[idx as usize];
        c.expires_ms = expires_ms;
        let sec = (expires_ms / 1000).max(self.wheel_next_sec);
        if sec < c.wheel_sec {
            self.schedule(idx, expires_ms);
        }
    }

    fn schedule(&mut self, idx: u32, expires_ms: u64) {
        // Slots further away than the wheel's span park at its far end and are moved again
        // when that slot comes round.
        let sec = (expires_ms / 1000)
            .max(self.wheel_next_sec)
            .min(self.wheel_next_sec + WHEEL_SLOTS - 1);
        let c = &mut self.slab[idx as usize];
        c.wheel_sec = sec;
        let generation = c.generation;
        self.wheel[(sec % WHEEL_SLOTS) as usize].push(Slot { idx, generation });
    }

    /// Note an entry entering a half-open state (candidates for eviction, oldest first).
    pub(crate) fn note_half_open(&mut self, idx: u32) {
        if self.half_open.len() >= self.capacity {
            self.half_open.pop_front();
        }
        let s = self.slot_of(idx);
        self.half_open.push_back(s);
    }

    /// Collect entries whose deadline has passed into `out` (the caller expires them, which
    /// may re-arm templates via [`ConnTable::set_expires`]).
    pub(crate) fn collect_expired(&mut self, now: Instant, out: &mut Vec<u32>) {
        let now_sec = now.secs();
        if now_sec < self.wheel_next_sec {
            return;
        }
        let first = if now_sec - self.wheel_next_sec >= WHEEL_SLOTS {
            now_sec + 1 - WHEEL_SLOTS
        } else {
            self.wheel_next_sec
        };
        // Entries parked in skipped slots (huge clock jump) still sit in the ring: every
        // ring slot is visited once at most per call.
        let mut sec = first;
        while sec <= now_sec {
            let slot = (sec % WHEEL_SLOTS) as usize;
            let entries = core::mem::take(&mut self.wheel[slot]);
            let mut keep = Vec::new();
            for s in entries {
                let Some(idx) = self.resolve(s) else { continue };
                let c = &self.slab[idx as usize];
                if c.wheel_sec % WHEEL_SLOTS != sec % WHEEL_SLOTS {
                    continue; // superseded reference
                }
                if c.expires_ms <= now.millis() {
                    out.push(idx);
                } else if c.expires_ms / 1000 <= now_sec {
                    keep.push(s); // later in the current second
                } else {
                    let exp = c.expires_ms;
                    self.wheel_next_sec = now_sec; // schedule relative to now
                    self.schedule(idx, exp);
                }
            }
            if !keep.is_empty() {
                self.wheel[slot].extend(keep);
            } else if self.wheel[slot].capacity() > 1024 && self.wheel[slot].is_empty() {
                self.wheel[slot].shrink_to(64);
            }
            sec += 1;
        }
        self.wheel_next_sec = now_sec;
        // mark processed entries' wheel_sec so later set_expires re-schedules them
        for &idx in out.iter() {
            self.slab[idx as usize].wheel_sec = u64::MAX;
        }
    }

    /// Earliest time `collect_expired` has work, at one-second resolution.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        if self.live == 0 {
            return None;
        }
        Some(Instant::from_secs(self.wheel_next_sec + 1))
    }

    /// Iterate live entries.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &Conn)> {
        self.slab
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_live())
            .map(|(i, c)| (i as u32, c))
    }

    /// Approximate heap bytes held, for reporting.
    pub(crate) fn heap_bytes(&self) -> usize {
        let wheel: usize = self.wheel.iter().map(|v| v.capacity() * 8 + 24).sum();
        self.slab.capacity() * size_of::<Conn>()
            + self.free.capacity() * 4
            + self.inbound.heap_bytes()
            + self.outbound.heap_bytes()
            + wheel
            + self.half_open.capacity() * 8
    }
}

fn is_half_open(c: &Conn) -> bool {
    match c.proto {
        6 => crate::proto::TcpState::from_index(c.state).is_half_open(),
        132 => crate::proto::SctpState::from_index(c.state).is_half_open(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::v4to16;

    fn conn(cport: u16, exp: u64) -> Conn {
        Conn {
            caddr: v4to16([198, 18, 0, 1]),
            vaddr: v4to16([198, 18, 1, 1]),
            daddr: v4to16([198, 19, 0, 2]),
            cport,
            vport: 80,
            dport: 8080,
            proto: 6,
            flags: F_OUT_HASHED,
            expires_ms: exp,
            controller: NONE,
            ..Conn::default()
        }
    }

    #[test]
    fn conn_fits_two_cache_lines() {
        assert_eq!(size_of::<Conn>(), 96);
        assert_eq!(align_of::<Conn>(), 32);
    }

    #[test]
    fn insert_lookup_remove() {
        let mut t = ConnTable::new(10, 42, Instant::ZERO);
        let idx = t.insert(conn(1000, 5000));
        let c = t.get(idx).clone();
        assert_eq!(t.lookup_in(&InKey::of(&c)), Some(idx));
        assert_eq!(t.lookup_out(&OutKey::of(&c)), Some(idx));
        let mut other = InKey::of(&c);
        other.cport = 1001;
        assert_eq!(t.lookup_in(&other), None);
        t.remove(idx);
        assert_eq!(t.lookup_in(&InKey::of(&c)), None);
        assert_eq!(t.lookup_out(&OutKey::of(&c)), None);
        assert_eq!(t.len(), 0);
        // reuse bumps the generation
        let s_old = Slot {
            idx,
            generation: c.generation,
        };
        let idx2 = t.insert(conn(2000, 5000));
        assert_eq!(idx2, idx);
        assert_eq!(t.resolve(s_old), None);
    }

    #[test]
    fn wheel_expires_exactly_and_follows_rearm() {
        let mut t = ConnTable::new(10, 1, Instant::ZERO);
        let a = t.insert(conn(1, 2_500));
        let b = t.insert(conn(2, 10_000));
        let mut out = Vec::new();
        t.collect_expired(Instant::from_millis(2_499), &mut out);
        assert!(out.is_empty());
        t.collect_expired(Instant::from_millis(2_500), &mut out);
        assert_eq!(out, vec![a]);
        t.remove(a);
        out.clear();
        // push b later, then earlier
        t.set_expires(b, 20_000);
        t.collect_expired(Instant::from_millis(10_000), &mut out);
        assert!(out.is_empty());
        t.set_expires(b, 12_000);
        t.collect_expired(Instant::from_millis(11_999), &mut out);
        assert!(out.is_empty());
        t.collect_expired(Instant::from_millis(12_000), &mut out);
        assert_eq!(out, vec![b]);
    }

    #[test]
    fn far_deadlines_park_and_return() {
        let mut t = ConnTable::new(10, 1, Instant::ZERO);
        let a = t.insert(conn(1, 10_000_000)); // 10000 s, beyond the 4096 s wheel
        let mut out = Vec::new();
        for s in (0..=9_999u64).step_by(7) {
            t.collect_expired(Instant::from_secs(s), &mut out);
            assert!(out.is_empty(), "expired early at {s}");
        }
        t.collect_expired(Instant::from_secs(10_000), &mut out);
        assert_eq!(out, vec![a]);
    }

    #[test]
    fn clock_jump_expires_everything_due() {
        let mut t = ConnTable::new(100, 1, Instant::ZERO);
        for i in 0..50 {
            t.insert(conn(i, 1000 * u64::from(i) + 500));
        }
        let mut out = Vec::new();
        t.collect_expired(Instant::from_secs(100_000), &mut out);
        assert_eq!(out.len(), 50);
    }

    #[test]
    fn make_room_evicts_half_open_only() {
        let mut t = ConnTable::new(2, 1, Instant::ZERO);
        let mut est = conn(1, 1_000_000);
        est.state = crate::proto::TcpState::Established as u8;
        let e = t.insert(est);
        let mut ho = conn(2, 1_000_000);
        ho.state = crate::proto::TcpState::SynRecv as u8;
        let h = t.insert(ho);
        t.note_half_open(h);
        assert_eq!(t.make_room(), Ok(Some(h)));
        t.remove(h);
        t.insert(conn(3, 1_000_000));
        // full again, only established/none entries left: nothing evictable
        assert_eq!(t.make_room(), Err(InsertError::Full));
        assert!(t.resolve(t.slot_of(e)).is_some());
    }
}
