//! Load-based schedulers without per-service tables: `lc`, `wlc`, `sed`, `nq`,
//! `fo`, `ovf` (spec 4.3 to 4.8) and `twos` (spec 4.9).
//!
//! All of them walk the list in order (newest first) and keep the earlier candidate
//! on ties, so ties favour the most recently added destination.

use crate::DestState;

/// `ip_vs_dest_conn_overhead`: `active * 256 + inactive`, widened so it cannot wrap.
#[inline(always)]
pub(crate) fn overhead(d: &DestState) -> i64 {
    i64::from(d.active) * 256 + i64::from(d.inactive)
}

/// `sed`/`nq` overhead: `active + 1`.
#[inline(always)]
fn sed_overhead(d: &DestState) -> i64 {
    i64::from(d.active) + 1
}

/// Weighted least-load scan shared by wlc, sed (and the wlc step of lblc/lblcr):
/// the first non-overloaded dest with weight > 0 starts, later non-overloaded dests
/// replace it when `oh(cand) * w(d) > oh(d) * w(cand)`.
#[inline(always)]
fn weighted_least(dests: &[DestState], oh: impl Fn(&DestState) -> i64) -> Option<usize> {
    let first = dests.iter().position(|d| !d.overloaded && d.weight > 0)?;
    let mut least = first;
    let mut loh = oh(&dests[first]);
    let mut lw = i64::from(dests[first].weight);
    // Written as selects rather than branches: which dest wins depends on the load
    // pattern, so a data-dependent branch mispredicts.
    for (i, d) in dests.iter().enumerate().skip(first + 1) {
        let doh = oh(d);
        let dw = i64::from(d.weight);
        // Products fit in i64: overhead < 2^41, weight < 2^31.
        let better = !d.overloaded & (loh * dw > doh * lw);
        least = if better { i } else { least };
        loh = if better { doh } else { loh };
        lw = if better { dw } else { lw };
    }
    Some(least)
}

/// `wlc` (spec 4.4).
#[inline]
pub(crate) fn wlc(dests: &[DestState]) -> Option<usize> {
    weighted_least(dests, overhead)
}

/// `sed` (spec 4.5).
#[inline]
pub(crate) fn sed(dests: &[DestState]) -> Option<usize> {
    weighted_least(dests, sed_overhead)
}

/// `lc` (spec 4.3): least overhead among non-overloaded dests with weight != 0.
#[inline]
pub(crate) fn lc(dests: &[DestState]) -> Option<usize> {
    let mut least: Option<(usize, i64)> = None;
    for (i, d) in dests.iter().enumerate() {
        if d.overloaded || d.weight == 0 {
            continue;
        }
        let doh = overhead(d);
        if least.is_none_or(|(_, loh)| doh < loh) {
            least = Some((i, doh));
        }
    }
    least.map(|(i, _)| i)
}

/// `nq` (spec 4.6): an idle dest wins at once, else sed's weighted comparison.
#[inline]
pub(crate) fn nq(dests: &[DestState]) -> Option<usize> {
    let mut least: Option<(usize, i64, i64)> = None;
    for (i, d) in dests.iter().enumerate() {
        if d.overloaded || d.weight == 0 {
            continue;
        }
        if d.active == 0 {
            return Some(i);
        }
        let doh = sed_overhead(d);
        let dw = i64::from(d.weight);
        if least.is_none_or(|(_, loh, lw)| loh * dw > doh * lw) {
            least = Some((i, doh, dw));
        }
    }
    least.map(|(i, _, _)| i)
}

/// `fo` (spec 4.7): highest weight among non-overloaded dests, first wins ties.
#[inline]
pub(crate) fn fo(dests: &[DestState]) -> Option<usize> {
    let mut best: Option<usize> = None;
    let mut hw = 0i32;
    for (i, d) in dests.iter().enumerate() {
        if !d.overloaded && d.weight > hw {
            best = Some(i);
            hw = d.weight;
        }
    }
    best
}

/// `ovf` (spec 4.8): like fo but skipping dests whose active count exceeds their
/// weight.
#[inline]
pub(crate) fn ovf(dests: &[DestState]) -> Option<usize> {
    let mut best: Option<(usize, i32)> = None;
    for (i, d) in dests.iter().enumerate() {
        let w = d.weight;
        if d.overloaded || i64::from(d.active) > i64::from(w) || w == 0 {
            continue;
        }
        if best.is_none_or(|(_, bw)| w > bw) {
            best = Some((i, w));
        }
    }
    best.map(|(i, _)| i)
}

/// SplitMix64: a tiny deterministic PRNG so `twos` is reproducible from a seed (the
/// kernel uses `get_random_u32()`, which no test can pin).
#[derive(Clone, Debug)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    #[inline]
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// `twos` (spec 4.9): two weighted random draws in `[0, T]`, keep the less loaded
/// (weighted) of the two, choice1 on ties.
#[inline]
pub(crate) fn twos(dests: &[DestState], rng: &mut SplitMix64) -> Option<usize> {
    let eligible = |d: &DestState| !d.overloaded && d.weight > 0;
    // Sums are kept in i64: the kernel's int sum would overflow with large weights.
    let total: i64 = dests
        .iter()
        .filter(|d| eligible(d))
        .map(|d| i64::from(d.weight))
        .sum();
    if total == 0 {
        return None;
    }
    let span = (total + 1) as u64;
    let mut r1 = (rng.next_u64() % span) as i64;
    let mut r2 = (rng.next_u64() % span) as i64;
    let mut c1: Option<(usize, i64, i64)> = None;
    let mut c2: Option<(usize, i64, i64)> = None;
    for (i, d) in dests.iter().enumerate() {
        if !eligible(d) {
            continue;
        }
        let w = i64::from(d.weight);
        r1 -= w;
        r2 -= w;
        if r1 <= 0 && c1.is_none() {
            c1 = Some((i, w, overhead(d)));
        }
        if r2 <= 0 && c2.is_none() {
            c2 = Some((i, w, overhead(d)));
        }
        if c1.is_some() && c2.is_some() {
            break;
        }
    }
    // Both draws are <= total, so both choices exist once every weight is counted.
    let (i1, w1, o1) = c1?;
    let (i2, w2, o2) = c2?;
    Some(if w2 * o1 > w1 * o2 { i2 } else { i1 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{dests_newest_first, names};

    #[test]
    fn wlc_spec_example_picks_b() {
        // List A, B (A newest): A w=1 active 1 (256), B w=3 active 2 (512).
        let mut ds = dests_newest_first(&[("B", 3), ("A", 1)]);
        ds[0].active = 1;
        ds[1].active = 2;
        assert_eq!(names(&ds, &[wlc(&ds).unwrap()]), "B");
    }

    #[test]
    fn wlc_tie_keeps_newest() {
        let ds = dests_newest_first(&[("A", 2), ("B", 2), ("C", 2)]);
        assert_eq!(wlc(&ds), Some(0));
        assert_eq!(sed(&ds), Some(0));
        assert_eq!(lc(&ds), Some(0));
        assert_eq!(nq(&ds), Some(0));
        assert_eq!(fo(&ds), Some(0));
        assert_eq!(ovf(&ds), Some(0));
    }

    #[test]
    fn wlc_later_weight_zero_never_replaces() {
        let mut ds = dests_newest_first(&[("A", 0), ("B", 1)]);
        ds[0].active = 1000; // B, loaded
        assert_eq!(wlc(&ds), Some(0));
        ds[0].weight = 0;
        assert_eq!(wlc(&ds), None);
    }

    #[test]
    fn lc_ignores_weight_magnitude() {
        let mut ds = dests_newest_first(&[("A", 100), ("B", 1)]);
        ds[0].active = 1; // B
        ds[1].active = 2; // A
        assert_eq!(names(&ds, &[lc(&ds).unwrap()]), "B");
        ds[1].inactive = 0;
        ds[0].active = 2;
        ds[0].inactive = 1;
        assert_eq!(names(&ds, &[lc(&ds).unwrap()]), "A");
    }

    #[test]
    fn sed_uses_active_plus_one() {
        // A: w=1, active 0 -> 1; B: w=3, active 1 -> 2. 1*3 > 2*1 -> B.
        let mut ds = dests_newest_first(&[("B", 3), ("A", 1)]);
        ds[0].active = 0; // A
        ds[1].active = 1; // B
        ds[0].inactive = 1000; // ignored
        assert_eq!(names(&ds, &[sed(&ds).unwrap()]), "B");
    }

    #[test]
    fn nq_idle_wins_immediately() {
        let mut ds = dests_newest_first(&[("A", 1), ("B", 100), ("C", 1)]);
        ds[0].active = 1; // C busy
        ds[1].active = 1; // B busy but heavy
        ds[2].active = 0; // A idle
        assert_eq!(names(&ds, &[nq(&ds).unwrap()]), "A");
        ds[2].active = 5;
        assert_eq!(names(&ds, &[nq(&ds).unwrap()]), "B");
    }

    #[test]
    fn fo_highest_weight() {
        let mut ds = dests_newest_first(&[("A", 5), ("B", 7), ("C", 7)]);
        assert_eq!(names(&ds, &[fo(&ds).unwrap()]), "C");
        ds[0].overloaded = true;
        assert_eq!(names(&ds, &[fo(&ds).unwrap()]), "B");
        ds[1].weight = 0;
        assert_eq!(names(&ds, &[fo(&ds).unwrap()]), "A");
    }

    #[test]
    fn ovf_allows_weight_plus_one_actives() {
        let mut ds = dests_newest_first(&[("A", 1), ("B", 2)]);
        ds[0].active = 2; // B at its weight: still eligible
        assert_eq!(names(&ds, &[ovf(&ds).unwrap()]), "B");
        ds[0].active = 3; // B over
        assert_eq!(names(&ds, &[ovf(&ds).unwrap()]), "A");
        ds[1].active = 2;
        assert_eq!(ovf(&ds), None);
    }

    #[test]
    fn twos_single_dest_and_none() {
        let mut rng = SplitMix64::new(1);
        let ds = dests_newest_first(&[("A", 3)]);
        for _ in 0..10 {
            assert_eq!(twos(&ds, &mut rng), Some(0));
        }
        let ds = dests_newest_first(&[("A", 0), ("B", 0)]);
        assert_eq!(twos(&ds, &mut rng), None);
    }

    #[test]
    fn twos_prefers_less_loaded_of_the_two() {
        // List A, B with equal weights; B heavily loaded, A idle: A wins whenever
        // either draw lands on it.
        let mut ds = dests_newest_first(&[("B", 1), ("A", 1)]);
        ds[1].active = 100; // B
        let mut rng = SplitMix64::new(42);
        let mut a = 0;
        for _ in 0..1000 {
            if twos(&ds, &mut rng) == Some(0) {
                a += 1;
            }
        }
        // T = 2, draws in [0, 2]: A (first) takes 0 and 1, B only 2. P(B) = (1/3)^2,
        // so expect ~889 A picks.
        assert!((820..=950).contains(&a), "a = {a}");
    }

    #[test]
    fn splitmix_is_deterministic() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        for _ in 0..5 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        // Reference value of SplitMix64 seeded with 0.
        assert_eq!(SplitMix64::new(0).next_u64(), 0xe220_a839_7b1d_cdaf);
    }
}
