//! Small hashing helpers for the core's tables.
//!
//! The connection table is keyed by attacker-chosen values (client address and port), so its
//! hash is seeded by the caller (from the OS RNG in the daemon). Control-plane maps (services
//! by VIP) are keyed by administrator-chosen values and use a fixed fast hash.

use core::hash::{BuildHasher, Hasher};

const K: u64 = 0x9E37_79B9_7F4A_7C15;

/// Multiply two 64-bit values as 128 bits and fold the halves (wyhash's mixing step).
#[inline(always)]
pub(crate) fn fold_mul(a: u64, b: u64) -> u64 {
    let r = u128::from(a).wrapping_mul(u128::from(b));
    (r as u64) ^ ((r >> 64) as u64)
}

/// Keyed hash of five 64-bit words (two addresses and a word of ports/protocol).
#[inline(always)]
pub(crate) fn hash5(seed: u64, w: [u64; 5]) -> u64 {
    let a = fold_mul(w[0] ^ seed, w[1] ^ K);
    let b = fold_mul(w[2] ^ seed.rotate_left(17), w[3] ^ K.rotate_left(31));
    let c = fold_mul(w[4] ^ a, b ^ seed);
    fold_mul(c ^ K, seed ^ a)
}

/// A fast non-cryptographic hasher for control-plane keys (FxHash-style).
#[derive(Default, Clone, Copy)]
pub(crate) struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        fold_mul(self.0, K)
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut buf = [0u8; 8];
            buf[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(buf));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }
    fn write_u16(&mut self, i: u16) {
        self.write_u64(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(K);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
}

/// `BuildHasher` for [`FastHasher`].
#[derive(Default, Clone, Copy)]
pub(crate) struct FastBuild;

impl BuildHasher for FastBuild {
    type Hasher = FastHasher;
    fn build_hasher(&self) -> FastHasher {
        FastHasher::default()
    }
}

/// A `HashMap` with the fast control-plane hasher.
pub(crate) type FastMap<K, V> = hashbrown::HashMap<K, V, FastBuild>;
