//! Locality-based schedulers: `lblc` (spec 4.10) and `lblcr` (spec 4.11).
//!
//! Both keep a per-service table keyed by the packet's destination address. The
//! kernel chains entries in 1024 buckets (`hash_32(fold(daddr), 10)`); we look them
//! up in a `HashMap` (randomly keyed, so a flood of chosen addresses cannot build a
//! long chain) and use the bucket number only where the kernel's behaviour depends
//! on it: the order in which the periodic garbage collector visits entries.
//!
//! Entries name their dests by [`DestId`]; a dest that left the list is treated as
//! the kernel treats a dest in its trash (not AVAILABLE), and becomes usable again if
//! the core re-adds it under the same id, as the kernel revives a trashed dest.

use std::collections::HashMap;

use core::net::IpAddr;

use crate::hash::{fold_addr, hash_32};
use crate::least::{overhead, wlc};
use crate::{DestId, DestState, Flow};

/// Period of the garbage-collection timer (`CHECK_EXPIRE_INTERVAL`, 60 s).
pub(crate) const CHECK_EXPIRE_INTERVAL_MS: u64 = 60_000;
/// Idle time after which an over-full table may drop an entry (`ENTRY_TIMEOUT`).
const ENTRY_TIMEOUT_MS: u64 = 6 * 60_000;
/// Default `lblc_expiration` / `lblcr_expiration` sysctl: 24 h.
pub(crate) const DEFAULT_EXPIRATION_MS: u64 = 24 * 60 * 60 * 1000;
/// Every 30th timer run does a full expiration pass.
const COUNT_FOR_FULL_EXPIRATION: u32 = 30;
/// `CONFIG_IP_VS_LBLC_TAB_BITS` / `CONFIG_IP_VS_LBLCR_TAB_BITS`.
const TAB_BITS: u32 = 10;
const TAB_MASK: u32 = (1 << TAB_BITS) - 1;
/// The kernel's `max_size`: 16 entries per bucket.
const MAX_SIZE: usize = 16 << TAB_BITS;
/// Hard bound on the number of entries. The kernel has none (its GC only trims
/// entries idle for 6 minutes), so a flood of distinct destination addresses grows
/// the table without limit; past this bound a miss is scheduled by wlc without
/// creating an entry, which is what the kernel does when its allocation fails.
pub(crate) const DEFAULT_MAX_ENTRIES: usize = 4 * MAX_SIZE;

/// Bucket the kernel would chain `addr` in.
#[inline]
fn bucket(addr: &IpAddr) -> u32 {
    hash_32(fold_addr(addr), TAB_BITS)
}

/// `is_overloaded()` of lblc/lblcr: busier than its weight while some dest of the
/// service is under half its weight. The OVERLOAD flag is not consulted.
#[inline]
fn locality_overloaded(d: &DestState, dests: &[DestState]) -> bool {
    i64::from(d.active) > i64::from(d.weight)
        && dests
            .iter()
            .any(|m| i64::from(m.active) * 2 < i64::from(m.weight))
}

/// Id -> index map of the current list, rebuilt on every change.
#[derive(Clone, Debug, Default)]
struct Ids(HashMap<DestId, usize>);

impl Ids {
    fn rebuild(&mut self, dests: &[DestState]) {
        self.0.clear();
        self.0
            .extend(dests.iter().enumerate().map(|(i, d)| (d.id, i)));
    }

    /// Index of `id` in `dests`, if it is (still) there.
    #[inline]
    fn resolve(&self, id: DestId, dests: &[DestState]) -> Option<usize> {
        match self.0.get(&id) {
            Some(&i) if dests.get(i).is_some_and(|d| d.id == id) => Some(i),
            // The map is exact when the caller reports every change; fall back to a
            // scan if it did not.
            None if self.0.len() == dests.len() => None,
            _ => dests.iter().position(|d| d.id == id),
        }
    }
}

/// What the garbage collector needs from an entry.
trait LastUse {
    fn lastuse(&self) -> u64;
}

/// The periodic timer state (`counter`, `rover`) and the entry table.
#[derive(Clone, Debug)]
struct Table<E> {
    map: HashMap<IpAddr, E>,
    ids: Ids,
    /// Next timer deadline; armed by the first `schedule`/`handle_timeout`.
    next_gc: Option<u64>,
    counter: u32,
    rover: u32,
    expiration_ms: u64,
    max_entries: usize,
}

impl<E> Default for Table<E> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
            ids: Ids::default(),
            next_gc: None,
            counter: 1,
            rover: 0,
            expiration_ms: DEFAULT_EXPIRATION_MS,
            max_entries: DEFAULT_MAX_ENTRIES,
        }
    }
}

impl<E: LastUse> Table<E> {
    #[inline]
    fn arm(&mut self, now: u64) {
        if self.next_gc.is_none() {
            self.next_gc = Some(now.saturating_add(CHECK_EXPIRE_INTERVAL_MS));
        }
    }

    fn handle_timeout(&mut self, now: u64) {
        match self.next_gc {
            None => self.arm(now),
            Some(t) if now >= t => {
                self.check_expire(now);
                self.next_gc = Some(now.saturating_add(CHECK_EXPIRE_INTERVAL_MS));
            }
            Some(_) => {}
        }
    }

    /// One run of the kernel's `ip_vs_lblc(r)_check_expire`.
    fn check_expire(&mut self, now: u64) {
        if self.counter.is_multiple_of(COUNT_FOR_FULL_EXPIRATION) {
            // Full pass: drop every entry idle for the expiration time. It visits all
            // 1024 buckets, so the rover ends where it started.
            let exp = self.expiration_ms;
            self.map
                .retain(|_, e| now < e.lastuse().saturating_add(exp));
            self.counter = 1;
            return;
        }
        let entries = self.map.len();
        if entries <= MAX_SIZE {
            self.counter += 1;
            return;
        }
        let mut goal = ((entries - MAX_SIZE) * 4 / 3).min(MAX_SIZE / 2) as i64;
        // Visit buckets rover+1, rover+2, ... dropping entries idle >= 6 min, and
        // stop after the bucket that reaches the goal.
        let start = (self.rover + 1) & TAB_MASK;
        let mut victims: Vec<(u32, IpAddr)> = self
            .map
            .iter()
            .filter(|(_, e)| now >= e.lastuse().saturating_add(ENTRY_TIMEOUT_MS))
            .map(|(k, _)| (bucket(k).wrapping_sub(start) & TAB_MASK, *k))
            .collect();
        victims.sort_unstable_by_key(|v| v.0);
        for group in victims.chunk_by(|a, b| a.0 == b.0) {
            for (_, k) in group {
                self.map.remove(k);
            }
            goal -= group.len() as i64;
            if goal <= 0 {
                self.rover = (start + group[0].0) & TAB_MASK;
                return;
            }
        }
        // A whole lap: the rover is back where it was.
    }
}

/// An lblc entry: the dest last chosen for this destination address.
#[derive(Clone, Debug)]
struct LblcEntry {
    dest: DestId,
    lastuse: u64,
}

impl LastUse for LblcEntry {
    fn lastuse(&self) -> u64 {
        self.lastuse
    }
}

/// `lblc` state.
#[derive(Clone, Debug, Default)]
pub(crate) struct Lblc {
    t: Table<LblcEntry>,
}

/// An lblcr entry: a set of dests (newest first) with its last modification time.
#[derive(Clone, Debug)]
struct LblcrEntry {
    set: Vec<DestId>,
    lastmod: u64,
    lastuse: u64,
}

impl LastUse for LblcrEntry {
    fn lastuse(&self) -> u64 {
        self.lastuse
    }
}

/// `lblcr` state.
#[derive(Clone, Debug, Default)]
pub(crate) struct Lblcr {
    t: Table<LblcrEntry>,
}

/// Shared plumbing of the two locality schedulers.
macro_rules! locality_common {
    () => {
        pub(crate) fn rebuild(&mut self, dests: &[DestState]) {
            self.t.ids.rebuild(dests);
        }

        pub(crate) fn poll_timeout(&self) -> Option<u64> {
            self.t.next_gc
        }

        pub(crate) fn start_timer(&mut self, now_ms: u64) {
            self.t.arm(now_ms);
        }

        pub(crate) fn handle_timeout(&mut self, now_ms: u64) {
            self.t.handle_timeout(now_ms);
        }

        pub(crate) fn set_expiration_ms(&mut self, ms: u64) {
            self.t.expiration_ms = ms;
        }

        pub(crate) fn set_max_entries(&mut self, n: usize) {
            self.t.max_entries = n;
        }

        pub(crate) fn len(&self) -> usize {
            self.t.map.len()
        }
    };
}

impl Lblc {
    locality_common!();

    pub(crate) fn schedule(
        &mut self,
        dests: &[DestState],
        flow: &Flow,
        now_ms: u64,
    ) -> Option<usize> {
        let t = &mut self.t;
        t.arm(now_ms);
        let key = flow.dst;
        if let Some(en) = t.map.get_mut(&key) {
            en.lastuse = now_ms;
            if let Some(i) = t.ids.resolve(en.dest, dests) {
                let d = &dests[i];
                if d.available && d.weight > 0 && !locality_overloaded(d, dests) {
                    return Some(i);
                }
            }
        }
        let i = wlc(dests)?;
        let id = dests[i].id;
        let room = t.map.len() < t.max_entries;
        match t.map.get_mut(&key) {
            Some(en) if en.dest != id => {
                // The kernel frees the entry and hashes a new one.
                *en = LblcEntry {
                    dest: id,
                    lastuse: now_ms,
                };
            }
            Some(_) => {}
            None if room => {
                t.map.insert(
                    key,
                    LblcEntry {
                        dest: id,
                        lastuse: now_ms,
                    },
                );
            }
            None => {}
        }
        Some(i)
    }

    #[cfg(test)]
    pub(crate) fn entry(&self, addr: &IpAddr) -> Option<(DestId, u64)> {
        self.t.map.get(addr).map(|e| (e.dest, e.lastuse))
    }
}

impl Lblcr {
    locality_common!();

    /// `ip_vs_dest_set_min`: least weighted overhead among AVAILABLE,
    /// non-overloaded members with weight > 0, first wins ties.
    fn set_min(set: &[DestId], ids: &Ids, dests: &[DestState]) -> Option<usize> {
        let mut least: Option<(usize, i64, i64)> = None;
        for &id in set {
            let Some(i) = ids.resolve(id, dests) else {
                continue; // gone from the list: not AVAILABLE
            };
            let d = &dests[i];
            if d.overloaded {
                continue;
            }
            let dw = i64::from(d.weight);
            match least {
                None => {
                    if dw > 0 && d.available {
                        least = Some((i, overhead(d), dw));
                    }
                }
                Some((_, loh, lw)) => {
                    let doh = overhead(d);
                    if loh * dw > doh * lw && d.available {
                        least = Some((i, doh, dw));
                    }
                }
            }
        }
        least.map(|(i, _, _)| i)
    }

    /// `ip_vs_dest_set_max`: most weighted overhead among members with weight > 0.
    /// Members gone from the list are skipped (the kernel would still weigh its
    /// trashed dest; we no longer know its counters).
    fn set_max(set: &[DestId], ids: &Ids, dests: &[DestState]) -> Option<DestId> {
        let mut most: Option<(DestId, i64, i64)> = None;
        for &id in set {
            let Some(i) = ids.resolve(id, dests) else {
                continue;
            };
            let d = &dests[i];
            let dw = i64::from(d.weight);
            match most {
                None => {
                    if dw > 0 {
                        most = Some((id, overhead(d), dw));
                    }
                }
                Some((_, moh, mw)) => {
                    let doh = overhead(d);
                    if moh * dw < doh * mw && dw > 0 {
                        most = Some((id, doh, dw));
                    }
                }
            }
        }
        most.map(|(id, _, _)| id)
    }

    pub(crate) fn schedule(
        &mut self,
        dests: &[DestState],
        flow: &Flow,
        now_ms: u64,
    ) -> Option<usize> {
        let t = &mut self.t;
        t.arm(now_ms);
        let key = flow.dst;
        if let Some(en) = t.map.get_mut(&key) {
            en.lastuse = now_ms;
            let min = Self::set_min(&en.set, &t.ids, dests);
            // More than one member and not modified for the expiration time: drop
            // the most loaded member (after `min` was chosen, as the kernel does).
            if en.set.len() > 1
                && now_ms > en.lastmod.saturating_add(t.expiration_ms)
                && let Some(m) = Self::set_max(&en.set, &t.ids, dests)
            {
                en.set.retain(|&x| x != m);
                en.lastmod = now_ms;
            }
            if let Some(i) = min
                && !locality_overloaded(&dests[i], dests)
            {
                return Some(i);
            }
            let i = wlc(dests)?;
            let id = dests[i].id;
            if !en.set.contains(&id) {
                en.set.insert(0, id);
                en.lastmod = now_ms;
            }
            return Some(i);
        }
        let i = wlc(dests)?;
        if t.map.len() < t.max_entries {
            t.map.insert(
                key,
                LblcrEntry {
                    set: vec![dests[i].id],
                    lastmod: now_ms,
                    lastuse: now_ms,
                },
            );
        }
        Some(i)
    }

    #[cfg(test)]
    pub(crate) fn entry(&self, addr: &IpAddr) -> Option<(Vec<DestId>, u64, u64)> {
        self.t
            .map
            .get(addr)
            .map(|e| (e.set.clone(), e.lastmod, e.lastuse))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{dests_newest_first, flow_to};
    use core::net::Ipv4Addr;

    fn v4(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(n))
    }

    fn lblc_with(ds: &[DestState]) -> Lblc {
        let mut l = Lblc::default();
        l.rebuild(ds);
        l
    }

    #[test]
    fn bucket_matches_spec_vector() {
        assert_eq!(bucket(&v4(0x0A00_0001)), 159);
    }

    #[test]
    fn lblc_sticks_to_cached_dest() {
        let mut ds = dests_newest_first(&[("A", 1), ("B", 1)]);
        let mut l = lblc_with(&ds);
        let f = flow_to(v4(0x0A00_0001));
        assert_eq!(l.schedule(&ds, &f, 0), Some(0)); // wlc tie -> newest (B)
        ds[0].active = 1; // B now busier: wlc would pick A
        assert_eq!(l.schedule(&ds, &f, 5), Some(0));
        assert_eq!(l.entry(&f.dst), Some((ds[0].id, 5)));
        // Another address goes by wlc.
        assert_eq!(l.schedule(&ds, &flow_to(v4(0x0A00_0002)), 5), Some(1));
    }

    #[test]
    fn lblc_overloaded_rule_needs_an_underloaded_peer() {
        let mut ds = dests_newest_first(&[("A", 4), ("B", 1)]);
        let mut l = lblc_with(&ds);
        let f = flow_to(v4(1));
        ds[1].active = 1; // A: wlc picks B (0*4 vs 256*1)
        assert_eq!(l.schedule(&ds, &f, 0), Some(0));
        // B: active 2 > weight 1, and A has 1*2 < 4: reschedule to A.
        ds[0].active = 2;
        assert_eq!(l.schedule(&ds, &f, 1), Some(1));
        assert_eq!(l.entry(&f.dst).unwrap().0, ds[1].id);
        // Nobody under half its weight any more: the over-weight cached A is kept.
        ds[1].active = 5;
        ds[0].active = 9;
        assert_eq!(l.schedule(&ds, &f, 2), Some(1));
    }

    #[test]
    fn lblc_ignores_overload_flag_on_hit_but_not_weight_zero() {
        let mut ds = dests_newest_first(&[("A", 1), ("B", 1)]);
        let mut l = lblc_with(&ds);
        let f = flow_to(v4(1));
        assert_eq!(l.schedule(&ds, &f, 0), Some(0));
        ds[0].overloaded = true;
        assert_eq!(l.schedule(&ds, &f, 1), Some(0));
        ds[0].weight = 0;
        assert_eq!(l.schedule(&ds, &f, 2), Some(1));
        ds[1].weight = 0;
        assert_eq!(l.schedule(&ds, &f, 3), None);
    }

    #[test]
    fn lblc_removed_dest_is_replaced_and_revived_id_is_reused() {
        let mut ds = dests_newest_first(&[("A", 1), ("B", 1)]);
        let mut l = lblc_with(&ds);
        let f = flow_to(v4(1));
        assert_eq!(l.schedule(&ds, &f, 0), Some(0));
        let b = ds.remove(0);
        l.rebuild(&ds);
        assert_eq!(l.schedule(&ds, &f, 1), Some(0)); // A
        assert_eq!(l.entry(&f.dst).unwrap().0, ds[0].id);
        ds.insert(0, b);
        l.rebuild(&ds);
        assert_eq!(l.schedule(&ds, &f, 2), Some(1)); // still A
    }

    #[test]
    fn lblc_gc_full_pass_on_30th_run() {
        let ds = dests_newest_first(&[("A", 1)]);
        let mut l = lblc_with(&ds);
        l.set_expiration_ms(1000);
        l.schedule(&ds, &flow_to(v4(1)), 0);
        assert_eq!(l.poll_timeout(), Some(60_000));
        let mut now = 0;
        for run in 1..30 {
            now += 60_000;
            l.handle_timeout(now);
            assert_eq!(l.len(), 1, "run {run}: no full pass before the 30th");
        }
        now += 60_000;
        l.handle_timeout(now);
        assert_eq!(l.len(), 0);
        assert_eq!(l.poll_timeout(), Some(now + 60_000));
        // Early calls do nothing.
        l.schedule(&ds, &flow_to(v4(2)), now);
        l.handle_timeout(now + 10);
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn lblc_gc_trims_overfull_table_from_rover() {
        let ds = dests_newest_first(&[("A", 1)]);
        let mut l = lblc_with(&ds);
        let extra = 300;
        for n in 0..(MAX_SIZE + extra) as u32 {
            l.schedule(&ds, &flow_to(v4(n)), 0);
        }
        l.handle_timeout(1); // arms nothing new: already armed at 60 s
        l.handle_timeout(ENTRY_TIMEOUT_MS); // counter 1: partial GC
        let goal = extra * 4 / 3;
        let removed = MAX_SIZE + extra - l.len();
        assert!(removed >= goal, "removed {removed} < goal {goal}");
        // Whole buckets from bucket 1 up to the rover were emptied, nothing beyond.
        let rover = l.t.rover;
        let mut in_range = 0;
        for n in 0..(MAX_SIZE + extra) as u32 {
            let b = bucket(&v4(n));
            let visited = b >= 1 && b <= rover;
            assert_eq!(l.entry(&v4(n)).is_none(), visited, "addr {n} bucket {b}");
            in_range += usize::from(visited);
        }
        assert_eq!(in_range, removed);
        assert_eq!(l.t.counter, 1);
    }

    #[test]
    fn lblc_gc_keeps_recent_entries() {
        let ds = dests_newest_first(&[("A", 1)]);
        let mut l = lblc_with(&ds);
        for n in 0..(MAX_SIZE + 10) as u32 {
            l.schedule(&ds, &flow_to(v4(n)), 0);
        }
        l.handle_timeout(60_000);
        assert_eq!(l.len(), MAX_SIZE + 10); // nothing idle for 6 min yet
        assert_eq!(l.t.rover, 0);
    }

    #[test]
    fn lblc_max_entries_bounds_table() {
        let ds = dests_newest_first(&[("A", 1), ("B", 1)]);
        let mut l = lblc_with(&ds);
        l.set_max_entries(3);
        for n in 0..10 {
            assert!(l.schedule(&ds, &flow_to(v4(n)), 0).is_some());
        }
        assert_eq!(l.len(), 3);
    }

    #[test]
    fn lblcr_replicates_when_member_overloaded() {
        let mut ds = dests_newest_first(&[("A", 2), ("B", 1)]);
        let mut l = Lblcr::default();
        l.rebuild(&ds);
        let f = flow_to(v4(7));
        // wlc tie (both idle) keeps the newest: B.
        assert_eq!(l.schedule(&ds, &f, 0), Some(0));
        let (set, lastmod, _) = l.entry(&f.dst).unwrap();
        assert_eq!((set, lastmod), (vec![ds[0].id], 0));
        // B over its weight while A is under half of its own: wlc adds A.
        ds[0].active = 3;
        assert_eq!(l.schedule(&ds, &f, 10), Some(1));
        let (set, lastmod, _) = l.entry(&f.dst).unwrap();
        assert_eq!((set, lastmod), (vec![ds[1].id, ds[0].id], 10));
        // The set min is now A; no set change, lastmod kept.
        assert_eq!(l.schedule(&ds, &f, 20), Some(1));
        let (_, lastmod, lastuse) = l.entry(&f.dst).unwrap();
        assert_eq!((lastmod, lastuse), (10, 20));
    }

    #[test]
    fn lblcr_expires_most_loaded_member_after_expiration() {
        let mut ds = dests_newest_first(&[("A", 2), ("B", 1)]);
        let mut l = Lblcr::default();
        l.rebuild(&ds);
        l.set_expiration_ms(100);
        let f = flow_to(v4(7));
        l.schedule(&ds, &f, 0); // {B}
        ds[0].active = 3;
        l.schedule(&ds, &f, 10); // {A, B}, lastmod 10
        ds[0].active = 0; // B: 0 / 1
        ds[1].active = 1; // A: 256 / 2
        // now == lastmod + exp: not yet (strictly after). Min is B.
        assert_eq!(l.schedule(&ds, &f, 110), Some(0));
        assert_eq!(l.entry(&f.dst).unwrap().0.len(), 2);
        // Strictly after: A (most loaded) leaves the set, the min (B) is used.
        assert_eq!(l.schedule(&ds, &f, 111), Some(0));
        let (set, lastmod, lastuse) = l.entry(&f.dst).unwrap();
        assert_eq!((set, lastmod, lastuse), (vec![ds[0].id], 111, 111));
    }

    #[test]
    fn lblcr_min_skips_unavailable_and_zero_weight() {
        let mut ds = dests_newest_first(&[("A", 1), ("B", 1)]);
        let mut l = Lblcr::default();
        l.rebuild(&ds);
        let f = flow_to(v4(7));
        assert_eq!(l.schedule(&ds, &f, 0), Some(0)); // {B}
        ds[0].available = false;
        assert_eq!(l.schedule(&ds, &f, 1), Some(0)); // wlc still sees B
        ds[0].weight = 0;
        assert_eq!(l.schedule(&ds, &f, 2), Some(1)); // A added
        let (set, _, _) = l.entry(&f.dst).unwrap();
        assert_eq!(set, vec![ds[1].id, ds[0].id]);
    }

    #[test]
    fn locality_overloaded_rule() {
        let mut ds = dests_newest_first(&[("A", 4), ("B", 1)]);
        ds[0].active = 2; // B over weight
        ds[1].active = 2; // A: 4 < 4 false
        assert!(!locality_overloaded(&ds[0], &ds));
        ds[1].active = 1;
        assert!(locality_overloaded(&ds[0], &ds));
        assert!(!locality_overloaded(&ds[1], &ds));
    }
}
