//! The connection table's hash indexes: open addressing from a 64-bit key hash to a slab
//! slot, laid out so that a probe reads one cache line.
//!
//! * A [`Bucket`] fills one 64-byte line: [`WIDTH`] 16-bit tags (the hash's top bits, 0 marks
//!   a free entry), an overflow count and the [`WIDTH`] slab slots. A lookup reads the home
//!   bucket, compares the tags and confirms each candidate slot with the caller's equality
//!   test against the slab. A 16-bit tag lets a non-matching entry through once in 65,535
//!   comparisons, which costs one extra slab read; the seeded hash keeps an attacker from
//!   aiming at tags or buckets.
//! * The home bucket is `(hash as u32) * buckets >> 32` (Lemire's fast range) so the bucket
//!   count need not be a power of two: [`ConnIndex::reserve`] sizes the index for a given
//!   number of entries at 3/4 load instead of rounding up to the next power of two.
//! * At most 3/4 of the entries are used. Linear probing over buckets clusters: at 7/8
//!   load 4.6% of the entries end up two or more buckets from home, where the batched data
//!   path's early reads (home bucket and the next) miss them and the lookup pays two
//!   serialized cache misses; at 3/4 load 95% sit in their home bucket and 1.2% beyond the
//!   next one, for 8.5 bytes of index per entry.
//! * A full bucket spills into the next ones (linear probing over buckets). Every bucket
//!   counts the entries that probed past it (the overflow count of Facebook's F14 tables), so
//!   a lookup stops at the first bucket whose count is zero and a removal needs no tombstone:
//!   it decrements the counts on the path from the home bucket. A count that reaches
//!   `u16::MAX` sticks there (lookups then merely probe one bucket further) until the next
//!   resize rebuilds the counts.
//! * The home bucket is a pure function of the hash, so the batched data path computes it
//!   for a whole batch first and reads the buckets early ([`ConnIndex::touch`]), letting the
//!   cache misses of many packets overlap.
//!
//! Growth doubles the bucket count and re-inserts every entry, asking the caller for each
//! entry's hash (the index stores only tags).

/// Entries per bucket: ten 16-bit tags, a 16-bit overflow count and ten 32-bit slots fill
/// one 64-byte cache line exactly.
pub(crate) const WIDTH: usize = 10;

const FREE: u16 = 0;
const MIN_BUCKETS: usize = 4;

/// One cache line of the index.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(64))]
struct Bucket {
    /// Tag of each entry, [`FREE`] when unused.
    tags: [u16; WIDTH],
    /// Entries whose probe passed this bucket because it was full (saturating, sticky at
    /// `u16::MAX`).
    overflow: u16,
    _pad: u16,
    /// Slab slot of each entry (meaningless where the tag is free).
    slots: [u32; WIDTH],
}

const _: () = assert!(size_of::<Bucket>() == 64);

/// The tag stored for a hash: its top 16 bits, never [`FREE`].
#[inline(always)]
fn tag_of(h: u64) -> u16 {
    let t = (h >> 48) as u16;
    if t == FREE { 1 } else { t }
}

/// Home bucket of a hash among `n` buckets (fast range on the low 32 bits).
#[inline(always)]
fn home(h: u64, n: usize) -> usize {
    ((u64::from(h as u32) * n as u64) >> 32) as usize
}

/// Bit `i` set where `tags[i] == t`.
#[inline(always)]
fn match_tags(tags: &[u16; WIDTH], t: u16) -> u32 {
    let mut m = 0u32;
    for (i, &x) in tags.iter().enumerate() {
        m |= u32::from(x == t) << i;
    }
    m
}

/// Most entries `n` buckets hold before growing (3/4 of the slots).
const fn max_len_for(n: usize) -> usize {
    n * WIDTH / 4 * 3
}

/// Buckets needed to hold `entries` at most 3/4 full.
fn buckets_for(entries: usize) -> usize {
    entries
        .saturating_mul(4)
        .div_ceil(3 * WIDTH)
        .saturating_add(1)
        .max(MIN_BUCKETS)
}

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct ConnIndex {
    buckets: Vec<Bucket>,
    len: usize,
    max_len: usize,
}

impl ConnIndex {
    /// An empty index (allocates on first insert).
    pub(crate) const fn new() -> Self {
        Self {
            buckets: Vec::new(),
            len: 0,
            max_len: 0,
        }
    }

    /// Number of entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the index holds no entry.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Heap bytes held by the buckets.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.buckets.capacity() * size_of::<Bucket>()
    }

    /// Make room for `total` entries in all without further growth. `rehash` gives the
    /// hash of the entry at a slot.
    pub(crate) fn reserve(&mut self, total: usize, rehash: impl Fn(u32) -> u64) {
        if total > self.max_len {
            self.resize(buckets_for(total), rehash);
        }
    }

    fn resize(&mut self, n: usize, rehash: impl Fn(u32) -> u64) {
        let old = core::mem::replace(&mut self.buckets, vec![Bucket::default(); n]);
        self.max_len = max_len_for(n);
        self.len = 0;
        for b in &old {
            for (&t, &s) in b.tags.iter().zip(&b.slots) {
                if t != FREE {
                    self.place(rehash(s), s);
                }
            }
        }
    }

    /// The slot of the first entry with hash `h` for which `eq(slot)` holds.
    #[inline]
    pub(crate) fn find(&self, h: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let n = self.buckets.len();
        let tag = tag_of(h);
        let mut b = home(h, n);
        for _ in 0..n {
            let bk = self.buckets.get(b)?;
            let mut m = match_tags(&bk.tags, tag);
            while m != 0 {
                let s = bk.slots[m.trailing_zeros() as usize % WIDTH];
                if eq(s) {
                    return Some(s);
                }
                m &= m - 1;
            }
            if bk.overflow == 0 {
                return None;
            }
            b = if b + 1 == n { 0 } else { b + 1 };
        }
        None
    }

    /// Read the home bucket of `h` and the bucket after it (where the home bucket's
    /// overflow goes) and return a word of them: issued early for a batch of packets,
    /// these reads overlap their cache and TLB misses (the caller folds the words into
    /// `core::hint::black_box` so the reads are not optimised away). The two lines are
    /// often the two halves of the 128-byte pair the L2 prefetcher fetches together.
    #[inline(always)]
    pub(crate) fn touch(&self, h: u64) -> u32 {
        let n = self.buckets.len();
        let b = home(h, n);
        let next = if b + 1 >= n { 0 } else { b + 1 };
        let word = |i: usize| {
            self.buckets
                .get(i)
                .map_or(0, |b| u32::from(b.overflow) ^ b.slots[0])
        };
        word(b) ^ word(next)
    }

    /// The slot of the first entry whose tag matches `h` in its home bucket or, when the
    /// home bucket overflowed, in the next one: the likely hit, whose slab entry the batch
    /// path reads early. A hint only (the equality test is the caller's).
    #[inline(always)]
    pub(crate) fn candidate(&self, h: u64) -> Option<u32> {
        let n = self.buckets.len();
        let tag = tag_of(h);
        let b = home(h, n);
        let bk = self.buckets.get(b)?;
        let m = match_tags(&bk.tags, tag);
        if m != 0 {
            return Some(bk.slots[m.trailing_zeros() as usize % WIDTH]);
        }
        if bk.overflow == 0 {
            return None;
        }
        let bk = self.buckets.get(if b + 1 >= n { 0 } else { b + 1 })?;
        let m = match_tags(&bk.tags, tag);
        (m != 0).then(|| bk.slots[m.trailing_zeros() as usize % WIDTH])
    }

    /// Add an entry (the caller guarantees `slot` is not already indexed). `rehash` gives
    /// the hash of any indexed slot, for growth.
    pub(crate) fn insert(&mut self, h: u64, slot: u32, rehash: impl Fn(u32) -> u64) {
        if self.len >= self.max_len {
            let n = (self.buckets.len() * 2).max(MIN_BUCKETS);
            self.resize(n, rehash);
        }
        self.place(h, slot);
    }

    /// Insert without growing; the load bound guarantees a free entry exists.
    fn place(&mut self, h: u64, slot: u32) {
        let n = self.buckets.len();
        let tag = tag_of(h);
        let mut b = home(h, n);
        for _ in 0..n {
            let Some(bk) = self.buckets.get_mut(b) else {
                break;
            };
            let free = match_tags(&bk.tags, FREE);
            if free != 0 {
                let i = free.trailing_zeros() as usize % WIDTH;
                bk.tags[i] = tag;
                bk.slots[i] = slot;
                self.len += 1;
                return;
            }
            bk.overflow = bk.overflow.saturating_add(1);
            b = if b + 1 == n { 0 } else { b + 1 };
        }
        debug_assert!(false, "index full despite the load bound");
    }

    /// Remove the entry of `slot` indexed under hash `h`. False if it is not there.
    pub(crate) fn remove(&mut self, h: u64, slot: u32) -> bool {
        let n = self.buckets.len();
        let tag = tag_of(h);
        let start = home(h, n);
        let mut b = start;
        for probed in 0..n {
            let Some(bk) = self.buckets.get_mut(b) else {
                return false;
            };
            let mut m = match_tags(&bk.tags, tag);
            while m != 0 {
                let i = m.trailing_zeros() as usize % WIDTH;
                if bk.slots[i] == slot {
                    bk.tags[i] = FREE;
                    self.len -= 1;
                    // undo the overflow counts its insertion added on the way
                    let mut p = start;
                    for _ in 0..probed {
                        if let Some(pb) = self.buckets.get_mut(p)
                            && pb.overflow != u16::MAX
                        {
                            pb.overflow -= 1;
                        }
                        p = if p + 1 == n { 0 } else { p + 1 };
                    }
                    return true;
                }
                m &= m - 1;
            }
            if bk.overflow == 0 {
                return false;
            }
            b = if b + 1 == n { 0 } else { b + 1 };
        }
        false
    }

    /// Every indexed slot (any order).
    #[cfg(test)]
    fn slots(&self) -> impl Iterator<Item = u32> + '_ {
        self.buckets.iter().flat_map(|b| {
            b.tags
                .iter()
                .zip(&b.slots)
                .filter(|(t, _)| **t != FREE)
                .map(|(_, s)| *s)
        })
    }

    #[cfg(test)]
    fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    #[cfg(test)]
    fn total_overflow(&self) -> u64 {
        self.buckets.iter().map(|b| u64::from(b.overflow)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// SplitMix64 finaliser: a well-mixed hash of a small key.
    fn mix(x: u64) -> u64 {
        let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// An index over `keys[slot]` with a given hash function, checked against a model.
    struct Harness<F: Fn(u64) -> u64> {
        idx: ConnIndex,
        keys: Vec<u64>,
        live: HashMap<u64, u32>,
        hash: F,
    }

    impl<F: Fn(u64) -> u64> Harness<F> {
        fn new(hash: F) -> Self {
            Self {
                idx: ConnIndex::new(),
                keys: Vec::new(),
                live: HashMap::new(),
                hash,
            }
        }

        fn insert(&mut self, key: u64) {
            let slot = self.keys.len() as u32;
            self.keys.push(key);
            let keys = &self.keys;
            let hash = &self.hash;
            self.idx.insert(hash(key), slot, |s| hash(keys[s as usize]));
            self.live.insert(key, slot);
        }

        fn find(&self, key: u64) -> Option<u32> {
            self.idx
                .find((self.hash)(key), |s| self.keys[s as usize] == key)
        }

        fn remove(&mut self, key: u64) -> bool {
            let Some(slot) = self.live.remove(&key) else {
                return false;
            };
            assert!(self.idx.remove((self.hash)(key), slot), "{key} indexed");
            true
        }

        fn check(&self) {
            assert_eq!(self.idx.len(), self.live.len());
            for (&k, &s) in &self.live {
                assert_eq!(self.find(k), Some(s), "key {k}");
            }
            let mut slots: Vec<u32> = self.idx.slots().collect();
            slots.sort_unstable();
            let mut want: Vec<u32> = self.live.values().copied().collect();
            want.sort_unstable();
            assert_eq!(slots, want);
        }
    }

    #[test]
    fn empty_index_finds_nothing_and_removes_nothing() {
        let mut idx = ConnIndex::new();
        assert_eq!(idx.find(42, |_| true), None);
        assert_eq!(idx.candidate(42), None);
        assert_eq!(idx.touch(42), 0);
        assert!(!idx.remove(42, 0));
        assert!(idx.is_empty());
    }

    #[test]
    fn insert_find_remove() {
        let mut h = Harness::new(mix);
        for k in 0..1000 {
            h.insert(k);
        }
        h.check();
        assert_eq!(h.find(5000), None);
        for k in (0..1000).step_by(3) {
            assert!(h.remove(k));
            assert_eq!(h.find(k), None);
        }
        h.check();
        assert!(!h.idx.remove(mix(1), 999_999), "unknown slot");
        for k in 0..1000 {
            h.remove(k);
        }
        h.check();
        assert!(h.idx.is_empty());
        assert_eq!(h.idx.total_overflow(), 0, "counts undone by removals");
    }

    #[test]
    fn grows_by_doubling_and_keeps_every_entry() {
        let mut h = Harness::new(mix);
        let mut sizes = Vec::new();
        for k in 0..100_000 {
            h.insert(k);
            if sizes.last() != Some(&h.idx.bucket_count()) {
                sizes.push(h.idx.bucket_count());
            }
        }
        h.check();
        assert!(sizes.windows(2).all(|w| w[1] == w[0] * 2), "{sizes:?}");
        assert!(h.idx.len() <= max_len_for(h.idx.bucket_count()));
    }

    #[test]
    fn reserve_sizes_exactly_and_avoids_growth() {
        let mut h = Harness::new(mix);
        let keys = &h.keys;
        h.idx.reserve(1_000_000, |s| mix(keys[s as usize]));
        let n = h.idx.bucket_count();
        // 3/4 load: about 133,334 buckets for a million entries, not a power of two
        assert!((133_334..=133_340).contains(&n), "{n}");
        for k in 0..1_000_000 {
            h.insert(k);
        }
        assert_eq!(h.idx.bucket_count(), n, "no growth after reserve");
        assert_eq!(h.idx.heap_bytes(), n * 64);
        for k in (0..1_000_000).step_by(997) {
            assert_eq!(h.find(k), Some(k as u32));
        }
        // reserving less than what is there is a no-op
        let keys = &h.keys;
        h.idx.reserve(10, |s| mix(keys[s as usize]));
        assert_eq!(h.idx.bucket_count(), n);
    }

    #[test]
    fn same_home_bucket_spills_and_unspills() {
        // every key lands in the same home bucket, tags differ: a long overflow chain
        let mut h = Harness::new(|k| (mix(k) & !0xffff_ffff) | 7);
        for k in 0..500 {
            h.insert(k);
        }
        h.check();
        // remove from the middle of the chain, then re-add: still consistent
        for k in 100..300 {
            assert!(h.remove(k));
        }
        h.check();
        for k in 1000..1200 {
            h.insert(k);
        }
        h.check();
        for k in (0..100).chain(300..500).chain(1000..1200) {
            assert!(h.remove(k));
        }
        h.check();
        assert_eq!(h.idx.total_overflow(), 0);
    }

    #[test]
    fn identical_hashes_are_told_apart_by_the_equality_test() {
        // full 64-bit collisions: only the slab comparison separates the keys
        let mut h = Harness::new(|_| 0xdead_beef_0000_0001);
        for k in 0..300 {
            h.insert(k);
        }
        h.check();
        for k in (0..300).filter(|k| k % 2 == 0) {
            assert!(h.remove(k));
        }
        h.check();
        assert_eq!(h.find(1), Some(1));
        assert_eq!(h.find(2), None);
    }

    #[test]
    fn zero_tag_hashes_are_stored() {
        // top 16 bits zero: the tag is remapped away from the free marker
        let mut h = Harness::new(|k| k & 0xffff_ffff);
        for k in 0..100 {
            h.insert(k);
        }
        h.check();
        assert_eq!(h.find(5), Some(5));
    }

    #[test]
    fn wraps_around_the_last_bucket() {
        // home = the last bucket: spills continue at bucket 0
        let mut h = Harness::new(|k| (mix(k) & !0xffff_ffff) | 0xffff_ffff);
        for k in 0..25 {
            h.insert(k);
        }
        h.check();
        for k in 0..25 {
            assert!(h.remove(k));
        }
        h.check();
        assert_eq!(h.idx.total_overflow(), 0);
    }

    #[test]
    fn random_operations_match_a_model() {
        let mut h = Harness::new(|k| mix(k) & 0xffff_0000_0000_03ff); // few homes, many tags
        let mut rng = 1u64;
        let mut next = || {
            rng = mix(rng);
            rng
        };
        for _ in 0..20_000 {
            let k = next() % 2_000;
            if h.live.contains_key(&k) {
                h.remove(k);
            } else {
                h.insert(k);
            }
        }
        h.check();
    }

    #[test]
    fn candidate_and_touch_read_the_home_bucket() {
        let mut h = Harness::new(mix);
        h.insert(77);
        assert_eq!(h.idx.candidate(mix(77)), Some(0));
        let _ = h.idx.touch(mix(77));
        assert_eq!(h.idx.candidate(mix(78)).filter(|&s| s != 0), None);
    }

    #[test]
    fn candidate_follows_the_overflow_into_the_next_bucket() {
        // fifteen keys with the same home bucket: five spill into the next one
        let mut h = Harness::new(|k| (mix(k) & !0xffff_ffff) | 0x8000_0000);
        for k in 0..15 {
            h.insert(k);
        }
        for k in 0..15 {
            assert_eq!(h.idx.candidate((h.hash)(k)), Some(k as u32), "key {k}");
        }
        // a bucket that never overflowed gives no candidate from its neighbour
        let mut h = Harness::new(mix);
        h.insert(1);
        assert_eq!(h.idx.candidate(mix(2) ^ 0xffff_0000_0000_0000), None);
    }
}
