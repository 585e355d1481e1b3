//! Static hashing schedulers with a 256-bucket table: `dh` (spec 4.12) and `sh`
//! (spec 4.13).
//!
//! Buckets hold indices into the destination list; they are rebuilt by
//! [`Scheduler::update`](crate::Scheduler::update) so a lookup is one multiply, one
//! shift and one load.

use crate::hash::{fold_addr, hash_32};
use crate::{DestState, Flow, SchedFlags};

/// Marker of an empty bucket.
pub(crate) const EMPTY: u32 = u32::MAX;

/// log2 of the dh/sh table size (`CONFIG_IP_VS_{DH,SH}_TAB_BITS`).
pub(crate) const TAB_BITS: u32 = 8;
/// Number of dh/sh buckets.
pub(crate) const TAB_SIZE: usize = 1 << TAB_BITS;
const TAB_MASK: u32 = (TAB_SIZE as u32) - 1;

/// IP protocols whose ports the `sh-port`/`mh-port` flags may hash.
#[inline(always)]
pub(crate) fn has_ports(proto: u8) -> bool {
    matches!(proto, 6 | 17 | 132)
}

/// The port mixed into sh/mh keys: the client's port with the PORT flag and a
/// protocol that has ports, else 0.
#[inline(always)]
pub(crate) fn key_port(flow: &Flow, flags: SchedFlags) -> u32 {
    if flags.contains(SchedFlags::PORT) && has_ports(flow.proto) {
        u32::from(flow.sport)
    } else {
        0
    }
}

/// Resolve a bucket entry to a dest index that exists in `dests`.
#[inline(always)]
pub(crate) fn resolve(entry: u32, dests: &[DestState]) -> Option<usize> {
    let i = entry as usize;
    (entry != EMPTY && i < dests.len()).then_some(i)
}

/// sh/mh availability: weight > 0 and not OVERLOAD (AVAILABLE is not consulted).
#[inline(always)]
pub(crate) fn usable(d: &DestState) -> bool {
    d.weight > 0 && !d.overloaded
}

/// `dh` state: bucket `i` holds dest `i mod n`.
#[derive(Clone, Debug)]
pub(crate) struct Dh {
    table: Box<[u32; TAB_SIZE]>,
}

impl Default for Dh {
    fn default() -> Self {
        Self {
            table: Box::new([EMPTY; TAB_SIZE]),
        }
    }
}

impl Dh {
    /// Refill the buckets round-robin in list order (weights are ignored).
    pub(crate) fn rebuild(&mut self, dests: &[DestState]) {
        let n = dests.len();
        for (b, slot) in self.table.iter_mut().enumerate() {
            *slot = if n == 0 { EMPTY } else { (b % n) as u32 };
        }
    }

    /// Bucket of the packet's destination address; no fallback.
    #[inline]
    pub(crate) fn schedule(&self, dests: &[DestState], flow: &Flow) -> Option<usize> {
        let b = hash_32(fold_addr(&flow.dst), TAB_BITS) as usize;
        let i = resolve(self.table[b], dests)?;
        let d = &dests[i];
        (d.available && d.weight > 0 && !d.overloaded).then_some(i)
    }
}

/// `sh` state.
#[derive(Clone, Debug)]
pub(crate) struct Sh {
    table: Box<[u32; TAB_SIZE]>,
}

impl Default for Sh {
    fn default() -> Self {
        Self {
            table: Box::new([EMPTY; TAB_SIZE]),
        }
    }
}

impl Sh {
    /// Walk the list in order, giving each dest `max(weight, 1)` consecutive buckets
    /// and wrapping around the list until every bucket is filled.
    pub(crate) fn rebuild(&mut self, dests: &[DestState]) {
        if dests.is_empty() {
            self.table.fill(EMPTY);
            return;
        }
        let mut p = 0usize;
        let mut count = 0i64;
        for slot in self.table.iter_mut() {
            *slot = p as u32;
            count += 1;
            if count >= i64::from(dests[p].weight) {
                p = (p + 1) % dests.len();
                count = 0;
            }
        }
    }

    /// Source hashing with the optional port and fallback flags.
    #[inline]
    pub(crate) fn schedule(
        &self,
        dests: &[DestState],
        flow: &Flow,
        flags: SchedFlags,
    ) -> Option<usize> {
        let key = key_port(flow, flags).wrapping_add(fold_addr(&flow.src));
        let ihash = hash_32(key, TAB_BITS);
        let first = resolve(self.table[ihash as usize], dests);
        if !flags.contains(SchedFlags::FALLBACK) {
            return first.filter(|&i| usable(&dests[i]));
        }
        let i = first?;
        if usable(&dests[i]) {
            return Some(i);
        }
        // Probe starting from bucket 2*ihash, one step at a time; an empty bucket
        // (only possible with an empty list) ends the search.
        for offset in 0..TAB_SIZE as u32 {
            let roffset = (offset + ihash) & TAB_MASK;
            let b = (roffset + ihash) & TAB_MASK;
            let i = resolve(self.table[b as usize], dests)?;
            if usable(&dests[i]) {
                return Some(i);
            }
        }
        None
    }

    #[cfg(test)]
    pub(crate) fn table(&self) -> &[u32; TAB_SIZE] {
        &self.table
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{dests_newest_first, flow_from};
    use core::net::{IpAddr, Ipv4Addr};

    #[test]
    fn sh_fill_follows_spec_vector() {
        // Added A(1), B(0), C(2): list C, B, A.
        let ds = dests_newest_first(&[("A", 1), ("B", 0), ("C", 2)]);
        let mut sh = Sh::default();
        sh.rebuild(&ds);
        let names: Vec<&str> = sh.table()[..12]
            .iter()
            .map(|&i| ["C", "B", "A"][i as usize])
            .collect();
        assert_eq!(names.join(" "), "C C B A C C B A C C B A");
        // 256 = 64 * 4: the pattern repeats to the end.
        assert_eq!(sh.table()[252..], [0, 0, 1, 2]);
    }

    #[test]
    fn sh_client_uses_bucket_89() {
        // One dest per bucket so the bucket number is visible: weights 1, n = 256.
        let ds: Vec<_> = (0..256)
            .map(|i| crate::tests::dest(&format!("d{i}"), 1))
            .collect();
        let mut sh = Sh::default();
        sh.rebuild(&ds);
        let f = flow_from(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 100)), 1234);
        assert_eq!(sh.schedule(&ds, &f, SchedFlags::NONE), Some(89));
    }

    #[test]
    fn sh_weight_zero_bucket_refused_without_fallback() {
        let mut ds: Vec<_> = (0..256)
            .map(|i| crate::tests::dest(&format!("d{i}"), 1))
            .collect();
        ds[89].weight = 0;
        let mut sh = Sh::default();
        sh.rebuild(&ds);
        // Weight 0 still gets its bucket (max(w, 1)), but it is unusable.
        let f = flow_from(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 100)), 1234);
        assert_eq!(sh.schedule(&ds, &f, SchedFlags::NONE), None);
        // Fallback probes from bucket (89 + 89) & 255 = 178.
        assert_eq!(sh.schedule(&ds, &f, SchedFlags::FALLBACK), Some(178));
        ds[178].overloaded = true;
        assert_eq!(sh.schedule(&ds, &f, SchedFlags::FALLBACK), Some(179));
    }

    #[test]
    fn sh_port_flag_only_for_tcp_udp_sctp() {
        let mut f = flow_from(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 100)), 7);
        assert_eq!(key_port(&f, SchedFlags::PORT), 7);
        assert_eq!(key_port(&f, SchedFlags::NONE), 0);
        for (proto, ports) in [(6, true), (17, true), (132, true), (1, false), (47, false)] {
            f.proto = proto;
            assert_eq!(key_port(&f, SchedFlags::PORT) == 7, ports, "proto {proto}");
        }
        let ds: Vec<_> = (0..256)
            .map(|i| crate::tests::dest(&format!("d{i}"), 1))
            .collect();
        let mut sh = Sh::default();
        sh.rebuild(&ds);
        f.proto = 6;
        let key = 7u32.wrapping_add(u32::from(Ipv4Addr::new(192, 168, 1, 100)));
        let expect = hash_32(key, 8) as usize;
        assert_eq!(sh.schedule(&ds, &f, SchedFlags::PORT), Some(expect));
    }

    #[test]
    fn sh_empty_list_is_none() {
        let mut sh = Sh::default();
        sh.rebuild(&[]);
        let f = flow_from(IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4)), 1);
        assert_eq!(sh.schedule(&[], &f, SchedFlags::FALLBACK), None);
        assert_eq!(sh.schedule(&[], &f, SchedFlags::NONE), None);
    }

    #[test]
    fn sh_all_unusable_with_fallback_is_none() {
        let ds = dests_newest_first(&[("A", 0), ("B", 0)]);
        let mut sh = Sh::default();
        sh.rebuild(&ds);
        let f = flow_from(IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4)), 1);
        assert_eq!(sh.schedule(&ds, &f, SchedFlags::FALLBACK), None);
    }

    #[test]
    fn dh_round_robin_fill_and_bucket_39() {
        let mut ds: Vec<_> = (0..256)
            .map(|i| crate::tests::dest(&format!("d{i}"), 1))
            .collect();
        let mut dh = Dh::default();
        dh.rebuild(&ds);
        let mut f = flow_from(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 100)), 1);
        f.dst = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(dh.schedule(&ds, &f), Some(39));
        // No fallback: AVAILABLE, weight and OVERLOAD all checked.
        ds[39].available = false;
        assert_eq!(dh.schedule(&ds, &f), None);
        ds[39].available = true;
        ds[39].overloaded = true;
        assert_eq!(dh.schedule(&ds, &f), None);
        ds[39].overloaded = false;
        ds[39].weight = 0;
        assert_eq!(dh.schedule(&ds, &f), None);
        // Three dests: bucket 39 -> dest 39 mod 3 = 0, whatever the weights.
        let ds3 = dests_newest_first(&[("A", 9), ("B", 1), ("C", 1)]);
        dh.rebuild(&ds3);
        assert_eq!(dh.schedule(&ds3, &f), Some(0));
    }
}
