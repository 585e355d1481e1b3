//! Round-robin schedulers: `rr` (spec 4.1) and `wrr` (spec 4.2).
//!
//! The kernel keeps a pointer into the destination list, with the list head standing
//! for "before the first dest". We keep an index, `None` standing for the head.

use crate::{DestChange, DestState, hash::gcd};

/// `rr` state: the cursor (last picked dest, `None` = list head).
#[derive(Clone, Debug, Default)]
pub(crate) struct Rr {
    cursor: Option<usize>,
}

impl Rr {
    /// `init_service`: cursor at the list head.
    pub(crate) fn init(&mut self) {
        self.cursor = None;
    }

    /// `del_dest` moves the cursor to the predecessor of a deleted cursor dest; an
    /// added dest shifts the cursor's index (the kernel keeps a pointer).
    pub(crate) fn update(&mut self, len: usize, change: DestChange) {
        let Some(c) = self.cursor else { return };
        self.cursor = match change {
            DestChange::Added { index } if c >= index => Some(c + 1),
            DestChange::Removed { index, .. } if c == index => index.checked_sub(1),
            DestChange::Removed { index, .. } if c > index => Some(c - 1),
            _ => Some(c),
        };
        if self.cursor.is_some_and(|c| c >= len) {
            self.cursor = None;
        }
    }

    /// Walk forward from the cursor, at most one lap (the cursor dest is checked last).
    #[inline]
    pub(crate) fn schedule(&mut self, dests: &[DestState]) -> Option<usize> {
        let n = dests.len();
        let usable = |d: &DestState| !d.overloaded && d.weight > 0;
        let start = match self.cursor {
            Some(c) if c < n => c + 1,
            _ => 0,
        };
        let found = (start..n)
            .find(|&i| usable(&dests[i]))
            .or_else(|| (0..start.min(n)).find(|&i| usable(&dests[i])));
        if found.is_some() {
            self.cursor = found;
        }
        found
    }

    #[cfg(test)]
    pub(crate) fn cursor(&self) -> Option<usize> {
        self.cursor
    }
}

/// `wrr` state (kernel `struct ip_vs_wrr_mark`).
#[derive(Clone, Debug)]
pub(crate) struct Wrr {
    /// Current dest, `None` = list head.
    cl: Option<usize>,
    /// Current weight.
    cw: i64,
    /// Maximum weight minus (`di` - 1).
    mw: i64,
    /// Decreasing interval: gcd of the positive weights, 1 if none.
    di: i64,
}

impl Default for Wrr {
    fn default() -> Self {
        Self {
            cl: None,
            cw: 0,
            mw: 0,
            di: 1,
        }
    }
}

impl Wrr {
    fn recompute(&mut self, dests: &[DestState]) {
        let mut g = 0i64;
        let mut max = 0i64;
        for d in dests {
            let w = i64::from(d.weight);
            if w > 0 {
                g = if g > 0 { gcd(w, g) } else { w };
            }
            max = max.max(w);
        }
        self.di = if g > 0 { g } else { 1 };
        self.mw = max - (self.di - 1);
        self.cl = None;
    }

    /// `init_service`: cursor at head, `cw = mw`.
    pub(crate) fn init(&mut self, dests: &[DestState]) {
        self.recompute(dests);
        self.cw = self.mw;
    }

    /// `add_dest` / `del_dest` / `upd_dest`: cursor back to head and `cw` adjusted.
    pub(crate) fn changed(&mut self, dests: &[DestState]) {
        self.recompute(dests);
        if self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if self.di > 1 {
            self.cw = (self.cw / self.di) * self.di + 1;
        }
    }

    /// The kernel's scan: from the cursor, find the next dest with `weight >= cw`;
    /// at the end of the list lower `cw` by `di`, and stop once every dest has been
    /// checked against `weight >= 1`.
    ///
    /// Passes from the head that cannot succeed (`cw` above every usable weight) are
    /// skipped arithmetically: the kernel would scan the list once per skipped `cw`
    /// value, up to 2^31 times when the heaviest dest is overloaded. The resulting
    /// state is identical (checked against a literal transcription in the tests).
    pub(crate) fn schedule(&mut self, dests: &[DestState]) -> Option<usize> {
        let n = dests.len();
        if self.mw == 0 {
            return None;
        }
        if self.cl.is_some_and(|c| c >= n) {
            // Only reachable if the caller changed the list without `update`.
            self.cl = None;
        }
        let last = self.cl;
        let mut stop: Option<usize> = None;
        let mut last_pass = false;
        let mut restarted = false;
        let mut start = last.map_or(0, |c| c + 1);
        // Highest weight of a non-overloaded dest, computed on the first failed pass.
        let mut max_usable: Option<i64> = None;
        loop {
            for (i, d) in dests.iter().enumerate().skip(start) {
                if !d.overloaded && i64::from(d.weight) >= self.cw {
                    self.cl = Some(i);
                    return Some(i);
                }
                if stop == Some(i) {
                    self.cl = Some(i);
                    return None;
                }
            }
            start = 0;
            self.cw -= self.di;
            if self.cw <= 0 {
                self.cw = self.mw;
                if last_pass || last.is_none() {
                    self.cl = None;
                    return None;
                }
                restarted = true;
            }
            last_pass = self.cw <= self.di;
            if last_pass && restarted && last.is_some() {
                stop = last;
            }
            if stop.is_none() {
                let m = *max_usable.get_or_insert_with(|| {
                    dests
                        .iter()
                        .filter(|d| !d.overloaded)
                        .map(|d| i64::from(d.weight))
                        .max()
                        .unwrap_or(0)
                });
                // Each skipped pass fails (cw > m), does not wrap and leaves
                // last_pass false (cw - di > di), exactly as a scanned pass would.
                let floor = m.max(2 * self.di);
                if self.cw > floor {
                    let k = (self.cw - floor + self.di - 1) / self.di;
                    self.cw -= k * self.di;
                }
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn state(&self) -> (Option<usize>, i64, i64, i64) {
        (self.cl, self.cw, self.mw, self.di)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{dest, dests_newest_first, names};

    #[test]
    fn rr_first_pick_is_newest_then_cycles() {
        // Added A, B, C: list C, B, A.
        let ds = dests_newest_first(&[("A", 1), ("B", 1), ("C", 1)]);
        let mut rr = Rr::default();
        rr.init();
        let picks: Vec<_> = (0..6).map(|_| rr.schedule(&ds).unwrap()).collect();
        assert_eq!(names(&ds, &picks), "C B A C B A");
    }

    #[test]
    fn rr_skips_weight_zero_and_overloaded() {
        let mut ds = dests_newest_first(&[("A", 1), ("B", 0), ("C", 1)]);
        ds[2].overloaded = true; // A
        let mut rr = Rr::default();
        for _ in 0..4 {
            assert_eq!(rr.schedule(&ds), Some(0));
        }
        ds[0].weight = 0;
        assert_eq!(rr.schedule(&ds), None);
        // A failed pick leaves the cursor where it was.
        assert_eq!(rr.cursor(), Some(0));
    }

    #[test]
    fn rr_cursor_checks_itself_last() {
        let ds = dests_newest_first(&[("A", 1), ("B", 0), ("C", 0)]);
        let mut rr = Rr::default();
        assert_eq!(rr.schedule(&ds), Some(2));
        assert_eq!(rr.schedule(&ds), Some(2));
    }

    #[test]
    fn rr_delete_cursor_moves_to_predecessor() {
        // List C B A, cursor on B (index 1).
        let mut ds = dests_newest_first(&[("A", 1), ("B", 1), ("C", 1)]);
        let mut rr = Rr::default();
        rr.schedule(&ds);
        rr.schedule(&ds);
        assert_eq!(rr.cursor(), Some(1));
        let removed = ds.remove(1);
        rr.update(
            ds.len(),
            DestChange::Removed {
                index: 1,
                id: removed.id,
            },
        );
        assert_eq!(rr.cursor(), Some(0)); // C, the predecessor
        assert_eq!(names(&ds, &[rr.schedule(&ds).unwrap()]), "A");
    }

    #[test]
    fn rr_delete_head_cursor_goes_to_list_head() {
        let mut ds = dests_newest_first(&[("A", 1), ("B", 1), ("C", 1)]);
        let mut rr = Rr::default();
        rr.schedule(&ds); // C at 0
        let removed = ds.remove(0);
        rr.update(
            ds.len(),
            DestChange::Removed {
                index: 0,
                id: removed.id,
            },
        );
        assert_eq!(rr.cursor(), None);
        assert_eq!(names(&ds, &[rr.schedule(&ds).unwrap()]), "B");
    }

    #[test]
    fn rr_delete_other_dest_keeps_cursor_dest() {
        let mut ds = dests_newest_first(&[("A", 1), ("B", 1), ("C", 1)]);
        let mut rr = Rr::default();
        rr.schedule(&ds);
        rr.schedule(&ds);
        rr.schedule(&ds); // cursor on A (index 2)
        let removed = ds.remove(0); // delete C
        rr.update(
            ds.len(),
            DestChange::Removed {
                index: 0,
                id: removed.id,
            },
        );
        assert_eq!(rr.cursor(), Some(1)); // still A
        assert_eq!(names(&ds, &[rr.schedule(&ds).unwrap()]), "B");
    }

    #[test]
    fn rr_add_at_head_shifts_cursor() {
        let mut ds = dests_newest_first(&[("A", 1), ("B", 1)]);
        let mut rr = Rr::default();
        rr.schedule(&ds); // B at 0
        ds.insert(0, dest("D", 1));
        rr.update(ds.len(), DestChange::Added { index: 0 });
        assert_eq!(rr.cursor(), Some(1)); // still B
        let picks: Vec<_> = (0..3).map(|_| rr.schedule(&ds).unwrap()).collect();
        assert_eq!(names(&ds, &picks), "A D B");
    }

    #[test]
    fn rr_add_with_cursor_at_head_picks_new_dest_first() {
        let mut ds = dests_newest_first(&[("A", 1)]);
        let mut rr = Rr::default();
        ds.insert(0, dest("B", 1));
        rr.update(ds.len(), DestChange::Added { index: 0 });
        assert_eq!(names(&ds, &[rr.schedule(&ds).unwrap()]), "B");
    }

    fn wrr_seq(ds: &[DestState], wrr: &mut Wrr, n: usize) -> String {
        let picks: Vec<_> = (0..n).map(|_| wrr.schedule(ds).unwrap()).collect();
        names(ds, &picks)
    }

    #[test]
    fn wrr_spec_sequence_a4_b3_c2() {
        let ds = dests_newest_first(&[("A", 4), ("B", 3), ("C", 2)]);
        let mut wrr = Wrr::default();
        wrr.init(&ds);
        assert_eq!(
            wrr_seq(&ds, &mut wrr, 18),
            "A B A C B A C B A A B A C B A C B A"
        );
    }

    #[test]
    fn wrr_spec_sequence_a4_b2() {
        let ds = dests_newest_first(&[("A", 4), ("B", 2)]);
        let mut wrr = Wrr::default();
        wrr.init(&ds);
        assert_eq!(wrr.state(), (None, 3, 3, 2));
        assert_eq!(wrr_seq(&ds, &mut wrr, 6), "A B A A B A");
    }

    #[test]
    fn wrr_all_zero_is_none() {
        let ds = dests_newest_first(&[("A", 0), ("B", 0)]);
        let mut wrr = Wrr::default();
        wrr.init(&ds);
        assert_eq!(wrr.state(), (None, 0, 0, 1));
        assert_eq!(wrr.schedule(&ds), None);
        assert_eq!(wrr.schedule(&[]), None);
    }

    #[test]
    fn wrr_all_overloaded_is_none_and_cursor_per_kernel() {
        let mut ds = dests_newest_first(&[("A", 2), ("B", 1)]);
        let mut wrr = Wrr::default();
        wrr.init(&ds);
        assert_eq!(wrr.schedule(&ds), Some(1)); // A
        for d in &mut ds {
            d.overloaded = true;
        }
        // From A (last in list): the pass for cw = 1 already was the last one, so
        // the kernel gives up with the cursor on the list head and cw = mw.
        assert_eq!(wrr.schedule(&ds), None);
        assert_eq!(wrr.state().0, None);
        assert_eq!(wrr.state().1, 2);
        ds[0].overloaded = false; // B usable again
        assert_eq!(wrr.schedule(&ds), Some(0));
    }

    #[test]
    fn wrr_change_resets_cursor_and_adjusts_cw() {
        let mut ds = dests_newest_first(&[("A", 4), ("B", 3), ("C", 2)]);
        let mut wrr = Wrr::default();
        wrr.init(&ds);
        assert_eq!(wrr_seq(&ds, &mut wrr, 4), "A B A C");
        assert_eq!(wrr.state(), (Some(0), 2, 4, 1));
        // Edit C's weight to 6: mw = 6, cw stays 2 (di = 1), cursor to head.
        ds[0].weight = 6;
        wrr.changed(&ds);
        assert_eq!(wrr.state(), (None, 2, 6, 1));
        // Weights 6,3,4 -> cw >= 2 from head: C.
        assert_eq!(wrr_seq(&ds, &mut wrr, 1), "C");
        // Weights multiples of 2 with cw odd: cw = (cw/di)*di + 1.
        ds[0].weight = 8;
        ds[1].weight = 2;
        ds[2].weight = 4;
        let mut w2 = Wrr::default();
        w2.init(&ds);
        w2.cw = 5;
        w2.changed(&ds);
        assert_eq!(w2.state(), (None, 5, 7, 2));
        w2.cw = 6;
        w2.changed(&ds);
        assert_eq!(w2.state(), (None, 7, 7, 2));
        // cw above the new mw, or zero: back to mw.
        w2.cw = 100;
        w2.changed(&ds);
        assert_eq!(w2.state().1, 7);
        w2.cw = 0;
        w2.changed(&ds);
        assert_eq!(w2.state().1, 7);
    }

    #[test]
    fn wrr_huge_weight_overloaded_terminates_fast() {
        let mut ds = dests_newest_first(&[("A", i32::MAX), ("B", 1)]);
        ds[1].overloaded = true; // A, the heavy one
        let mut wrr = Wrr::default();
        wrr.init(&ds);
        for _ in 0..10 {
            assert_eq!(wrr.schedule(&ds), Some(0));
        }
        ds[0].overloaded = true;
        assert_eq!(wrr.schedule(&ds), None);
    }
}
