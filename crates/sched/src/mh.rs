//! Maglev hashing, `mh` (spec 4.14).
//!
//! The lookup table of `M` (prime) slots holds dest indices and is rebuilt on every
//! destination change; a lookup is one SipHash-1-3 of a `u32`, one modulo and one
//! load.

use crate::hash::{fls, fold_addr, gcd, hsiphash_u32};
use crate::hashing::{EMPTY, key_port, resolve, usable};
use crate::{DestChange, DestState, Flow, SchedFlags};

/// Key of the first hash (offsets and lookups): `(2654435761, 2654435761)`.
const K1: u64 = 2_654_435_761;
/// Key of the second hash (skips): `(2654446892, 2654446892)`.
const K2: u64 = 2_654_446_892;

/// `hsiphash(port + fold(addr) + offset)` with key K1 or K2.
#[inline(always)]
fn mh_hash(v: u32, k: u64) -> u32 {
    hsiphash_u32(v, k, k)
}

/// Per-dest permutation state while populating (`struct ip_vs_mh_dest_setup`).
struct Setup {
    skip: u32,
    perm: u32,
    turns: i64,
}

/// `mh` state.
#[derive(Clone, Debug)]
pub(crate) struct Mh {
    /// Table size `M`, a prime of [`crate::MH_TABLE_SIZES`].
    size: u32,
    /// `IP_VS_MH_TAB_BITS` for this size: `CONFIG_IP_VS_MH_TAB_INDEX / 2`.
    tab_bits: u32,
    /// Slot -> dest index, [`EMPTY`] when the service has no positive last_weight.
    table: Box<[u32]>,
}

impl Mh {
    /// A table of `size` slots; `size` must be one of [`crate::MH_TABLE_SIZES`].
    pub(crate) fn new(size: u32) -> Self {
        let index = crate::MH_TABLE_SIZES
            .iter()
            .position(|&s| s == size)
            .unwrap_or(4) as u32;
        Self {
            size,
            tab_bits: (index + 8) / 2,
            table: vec![EMPTY; size as usize].into_boxed_slice(),
        }
    }

    pub(crate) fn size(&self) -> u32 {
        self.size
    }

    /// Rebuild after a change. With more dests than slots the kernel's rebuild
    /// fails (`-EINVAL`, ignored by the caller) and the old table stays: we keep it
    /// too, only re-pointing its indices at the same dests.
    pub(crate) fn update(&mut self, dests: &[DestState], change: DestChange) {
        if dests.len() > self.size as usize {
            for slot in self.table.iter_mut() {
                if *slot == EMPTY {
                    continue;
                }
                match change {
                    DestChange::Added { index } if *slot as usize >= index => *slot += 1,
                    DestChange::Removed { index, .. } if *slot as usize == index => {
                        // The kernel would keep the deleted dest (now in the trash);
                        // it has no index here, so the slot empties.
                        *slot = EMPTY;
                    }
                    DestChange::Removed { index, .. } if *slot as usize > index => *slot -= 1,
                    _ => {}
                }
            }
            return;
        }
        self.rebuild(dests);
    }

    /// `init_service` / `dest_changed`: gcd, shift, permutations, population. With
    /// more dests than slots (where the kernel refuses the service) the table is
    /// left empty.
    pub(crate) fn rebuild(&mut self, dests: &[DestState]) {
        self.table.fill(EMPTY);
        if dests.len() > self.size as usize {
            return;
        }
        let mut g = 0i64;
        let mut max = 0i64;
        for d in dests {
            let lw = i64::from(d.last_weight);
            if lw > 0 {
                g = if g > 0 { gcd(lw, g) } else { lw };
            }
            max = max.max(lw);
        }
        if g < 1 {
            return;
        }
        let shift = fls((max / g) as u32) as i64 - i64::from(self.tab_bits);
        let rshift = shift.max(0);
        let m = self.size;
        let mut setup: Vec<Setup> = dests
            .iter()
            .map(|d| {
                let v = u32::from(d.port).wrapping_add(fold_addr(&d.addr));
                let offset = mh_hash(v, K1) % m;
                let skip = mh_hash(v, K2) % (m - 1) + 1;
                let lw = i64::from(d.last_weight);
                let t = (lw / g) >> rshift;
                let turns = if t != 0 { t } else { i64::from(lw != 0) };
                Setup {
                    skip,
                    perm: offset,
                    turns,
                }
            })
            .collect();
        // Round after round over the list: each dest with turns >= 1 claims `turns`
        // slots in a row, each time its next free preferred slot.
        let mut filled = 0u32;
        'fill: loop {
            for (i, ds) in setup.iter_mut().enumerate() {
                if ds.turns < 1 {
                    continue;
                }
                for _ in 0..ds.turns {
                    let mut c = ds.perm;
                    while self.table[c as usize] != EMPTY {
                        ds.perm += ds.skip;
                        if ds.perm >= m {
                            ds.perm -= m;
                        }
                        c = ds.perm;
                    }
                    self.table[c as usize] = i as u32;
                    filled += 1;
                    if filled == m {
                        break 'fill;
                    }
                }
            }
        }
    }

    /// Lookup by client address (and port with `mh-port`), with optional fallback.
    #[inline]
    pub(crate) fn schedule(
        &self,
        dests: &[DestState],
        flow: &Flow,
        flags: SchedFlags,
    ) -> Option<usize> {
        let m = self.size;
        let key = key_port(flow, flags).wrapping_add(fold_addr(&flow.src));
        let ihash = mh_hash(key, K1) % m;
        let first = resolve(self.table[ihash as usize], dests);
        if !flags.contains(SchedFlags::FALLBACK) {
            return first.filter(|&i| usable(&dests[i]));
        }
        let i = first?;
        if usable(&dests[i]) {
            return Some(i);
        }
        for offset in 0..m {
            let roffset = (offset + ihash) % m;
            let slot = mh_hash(roffset.wrapping_add(key), K1) % m;
            let i = resolve(self.table[slot as usize], dests)?;
            if usable(&dests[i]) {
                return Some(i);
            }
        }
        None
    }

    pub(crate) fn table(&self) -> &[u32] {
        &self.table
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{dest_at, flow_from};
    use core::net::{IpAddr, Ipv4Addr};

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    #[test]
    fn offsets_and_skips_match_spec_vectors() {
        let v = 80u32 + 0x0A00_0002;
        assert_eq!(mh_hash(v, K1), 0xa1cf_683b);
        assert_eq!(mh_hash(v, K1) % 4093, 1231);
        assert_eq!(mh_hash(v, K2) % 4092 + 1, 3544);
        let v = 80u32 + 0x0A00_0003;
        assert_eq!(mh_hash(v, K1) % 4093, 1631);
        assert_eq!(mh_hash(v, K2) % 4092 + 1, 3453);
        let client = u32::from(Ipv4Addr::new(192, 168, 1, 100));
        assert_eq!(mh_hash(client, K1) % 4093, 1341);
    }

    #[test]
    fn single_dest_fills_table_from_its_offset() {
        let ds = vec![dest_at("A", 1, v4(10, 0, 0, 2), 80)];
        let mut mh = Mh::new(4093);
        mh.rebuild(&ds);
        assert!(mh.table().iter().all(|&s| s == 0));
        let f = flow_from(v4(192, 168, 1, 100), 5);
        assert_eq!(mh.schedule(&ds, &f, SchedFlags::NONE), Some(0));
    }

    #[test]
    fn two_dests_first_slots_per_spec() {
        // List: 10.0.0.3 (newest), 10.0.0.2. Equal weights: turns 1 each, so the
        // first round gives 10.0.0.3 slot 1631 and 10.0.0.2 slot 1231.
        let ds = vec![
            dest_at("B", 1, v4(10, 0, 0, 3), 80),
            dest_at("A", 1, v4(10, 0, 0, 2), 80),
        ];
        let mut mh = Mh::new(4093);
        mh.rebuild(&ds);
        assert_eq!(mh.table()[1631], 0);
        assert_eq!(mh.table()[1231], 1);
        // Second round: each takes offset + skip (mod M) since it is free.
        assert_eq!(mh.table()[(1631 + 3453) % 4093], 0);
        assert_eq!(mh.table()[(1231 + 3544) % 4093], 1);
        let counts = [0u32, 1].map(|d| mh.table().iter().filter(|&&s| s == d).count());
        assert_eq!(counts, [2047, 2046]);
    }

    #[test]
    fn weight_zero_keeps_table_but_refuses_without_fallback() {
        let mut ds = vec![
            dest_at("B", 1, v4(10, 0, 0, 3), 80),
            dest_at("A", 1, v4(10, 0, 0, 2), 80),
        ];
        let mut mh = Mh::new(4093);
        mh.rebuild(&ds);
        let before = mh.table().to_vec();
        let f = flow_from(v4(192, 168, 1, 100), 5);
        let owner = before[1341] as usize;
        assert_eq!(mh.schedule(&ds, &f, SchedFlags::NONE), Some(owner));
        ds[owner].weight = 0; // last_weight stays 1
        mh.rebuild(&ds);
        assert_eq!(mh.table(), &before[..]);
        assert_eq!(mh.schedule(&ds, &f, SchedFlags::NONE), None);
        assert_eq!(mh.schedule(&ds, &f, SchedFlags::FALLBACK), Some(1 - owner));
        ds[1 - owner].overloaded = true;
        assert_eq!(mh.schedule(&ds, &f, SchedFlags::FALLBACK), None);
    }

    #[test]
    fn all_last_weights_zero_empties_table() {
        let mut ds = vec![dest_at("A", 0, v4(10, 0, 0, 2), 80)];
        ds[0].last_weight = 0;
        let mut mh = Mh::new(251);
        mh.rebuild(&ds);
        assert!(mh.table().iter().all(|&s| s == EMPTY));
        let f = flow_from(v4(1, 1, 1, 1), 5);
        assert_eq!(mh.schedule(&ds, &f, SchedFlags::FALLBACK), None);
    }

    #[test]
    fn turns_follow_gcd_and_shift() {
        // Weights 2 and 4 (gcd 2): turns 1 and 2, shares 1/3 and 2/3.
        let ds = vec![
            dest_at("B", 4, v4(10, 0, 0, 3), 80),
            dest_at("A", 2, v4(10, 0, 0, 2), 80),
        ];
        let mut mh = Mh::new(4093);
        mh.rebuild(&ds);
        let b = mh.table().iter().filter(|&&s| s == 0).count();
        assert!((2727..=2730).contains(&b), "b = {b}");
        // Weights 1 and 1000: 1000 >> (fls(1000) - 6 = 4) = 62 turns vs 1.
        let ds = vec![
            dest_at("B", 1000, v4(10, 0, 0, 3), 80),
            dest_at("A", 1, v4(10, 0, 0, 2), 80),
        ];
        mh.rebuild(&ds);
        let a = mh.table().iter().filter(|&&s| s == 1).count();
        // 63 slots per round (B first): 64 full rounds, then B takes the last 61.
        assert_eq!(a, 64);
    }

    #[test]
    fn too_many_dests_keeps_old_table() {
        let mut ds: Vec<_> = (0..251u32)
            .map(|i| {
                dest_at(
                    &format!("d{i}"),
                    1,
                    IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + i)),
                    80,
                )
            })
            .collect();
        let mut mh = Mh::new(251);
        mh.rebuild(&ds);
        let before = mh.table().to_vec();
        ds.insert(0, dest_at("new", 1, v4(10, 1, 0, 0), 80));
        mh.update(&ds, DestChange::Added { index: 0 });
        let after: Vec<u32> = before.iter().map(|&s| s + 1).collect();
        assert_eq!(mh.table(), &after[..]);
        let removed = ds.remove(5);
        mh.update(
            &ds,
            DestChange::Removed {
                index: 5,
                id: removed.id,
            },
        );
        // Back to 251 dests: a full rebuild.
        let mut fresh = Mh::new(251);
        fresh.rebuild(&ds);
        assert_eq!(mh.table(), fresh.table());
    }
}
