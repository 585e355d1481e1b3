//! Hash helpers shared by the hashing schedulers (spec 4.15, 4.14).
//!
//! Everything here is a pure function of its arguments; the values must match the
//! kernel's bit for bit, so every constant below is quoted from the spec.

use core::net::IpAddr;

/// Golden-ratio multiplier of the kernel's `hash_32` (`GOLDEN_RATIO_32`).
const GOLDEN_RATIO_32: u32 = 0x61C8_8647;

/// The kernel's `hash_32(v, bits)`: multiply by the 32-bit golden ratio and keep the
/// top `bits` bits.
///
/// `bits` must be in `1..=32`; `0` yields `0` rather than panicking (the kernel never
/// uses it).
#[inline]
pub fn hash_32(v: u32, bits: u32) -> u32 {
    let h = v.wrapping_mul(GOLDEN_RATIO_32);
    if bits == 0 {
        0
    } else if bits >= 32 {
        h
    } else {
        h >> (32 - bits)
    }
}

/// Fold an address to 32 bits as the IPVS schedulers do: IPv4 is the address as a
/// host-order integer, IPv6 the XOR of its four big-endian 32-bit words.
#[inline]
pub fn fold_addr(addr: &IpAddr) -> u32 {
    match addr {
        IpAddr::V4(a) => u32::from(*a),
        IpAddr::V6(a) => {
            let o = a.octets();
            let w = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
            w(0) ^ w(4) ^ w(8) ^ w(12)
        }
    }
}

/// The four SipHash state words.
#[derive(Clone, Copy)]
struct Sip {
    v0: u64,
    v1: u64,
    v2: u64,
    v3: u64,
}

impl Sip {
    #[inline(always)]
    fn new(k0: u64, k1: u64) -> Self {
        Self {
            v0: k0 ^ 0x736f_6d65_7073_6575,
            v1: k1 ^ 0x646f_7261_6e64_6f6d,
            v2: k0 ^ 0x6c79_6765_6e65_7261,
            v3: k1 ^ 0x7465_6462_7974_6573,
        }
    }

    #[inline(always)]
    fn round(&mut self) {
        self.v0 = self.v0.wrapping_add(self.v1);
        self.v1 = self.v1.rotate_left(13);
        self.v1 ^= self.v0;
        self.v0 = self.v0.rotate_left(32);
        self.v2 = self.v2.wrapping_add(self.v3);
        self.v3 = self.v3.rotate_left(16);
        self.v3 ^= self.v2;
        self.v0 = self.v0.wrapping_add(self.v3);
        self.v3 = self.v3.rotate_left(21);
        self.v3 ^= self.v0;
        self.v2 = self.v2.wrapping_add(self.v1);
        self.v1 = self.v1.rotate_left(17);
        self.v1 ^= self.v2;
        self.v2 = self.v2.rotate_left(32);
    }

    #[inline(always)]
    fn compress(&mut self, m: u64, c_rounds: u32) {
        self.v3 ^= m;
        for _ in 0..c_rounds {
            self.round();
        }
        self.v0 ^= m;
    }

    #[inline(always)]
    fn finish(mut self, d_rounds: u32) -> u64 {
        self.v2 ^= 0xff;
        for _ in 0..d_rounds {
            self.round();
        }
        self.v0 ^ self.v1 ^ self.v2 ^ self.v3
    }
}

/// Generic SipHash-c-d over a byte string (little-endian words, length in the top
/// byte of the last block). Only used to check the SipRound against the published
/// SipHash-2-4 vectors; the schedulers use the specialised [`hsiphash_u32`].
#[cfg(test)]
pub(crate) fn siphash(data: &[u8], k0: u64, k1: u64, c_rounds: u32, d_rounds: u32) -> u64 {
    let mut s = Sip::new(k0, k1);
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        s.compress(u64::from_le_bytes(w), c_rounds);
    }
    let mut b = (data.len() as u64) << 56;
    for (i, byte) in chunks.remainder().iter().enumerate() {
        b |= u64::from(*byte) << (8 * i);
    }
    s.compress(b, c_rounds);
    s.finish(d_rounds)
}

/// The kernel's `hsiphash()` of one `u32` on a 64-bit kernel: SipHash-1-3 with the
/// 128-bit key `(k0, k1)`, the message being the 4 bytes of `v` in little-endian
/// order, truncated to the low 32 bits (spec 4.14).
///
/// 32-bit kernels use HalfSipHash-1-3 instead, so `mh` placements differ between
/// 32- and 64-bit kernels; we reproduce the 64-bit one.
#[inline]
pub fn hsiphash_u32(v: u32, k0: u64, k1: u64) -> u32 {
    let mut s = Sip::new(k0, k1);
    s.compress((4u64 << 56) | u64::from(v), 1);
    s.finish(3) as u32
}

/// Greatest common divisor of two positive integers.
#[inline]
pub(crate) fn gcd(mut a: i64, mut b: i64) -> i64 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a.abs()
}

/// 1-based index of the highest set bit (`fls` in the kernel), 0 for 0.
#[inline]
pub(crate) fn fls(x: u32) -> u32 {
    32 - x.leading_zeros()
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn hash_32_matches_spec_vectors() {
        assert_eq!(hash_32(0x0A00_0001, 8), 39);
        assert_eq!(hash_32(0x0A00_0001, 10), 159);
        let c100 = u32::from(Ipv4Addr::new(192, 168, 1, 100));
        assert_eq!(hash_32(c100, 8), 89);
        assert_eq!(hash_32(c100, 10), 357);
        let c101 = u32::from(Ipv4Addr::new(192, 168, 1, 101));
        assert_eq!(hash_32(c101, 8), 187);
        assert_eq!(hash_32(c101, 10), 748);
    }

    #[test]
    fn hash_32_edge_bits_do_not_panic() {
        assert_eq!(hash_32(12345, 0), 0);
        assert_eq!(hash_32(1, 32), GOLDEN_RATIO_32);
    }

    #[test]
    fn fold_v4_is_host_order() {
        assert_eq!(
            fold_addr(&IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))),
            0x0A00_0001
        );
    }

    #[test]
    fn fold_v6_xors_words() {
        let a = Ipv6Addr::new(0x2001, 0x0db8, 0, 1, 0x1111, 0x2222, 0, 0x00ff);
        let expect = 0x2001_0db8 ^ 0x0000_0001 ^ 0x1111_2222 ^ 0x0000_00ff;
        assert_eq!(fold_addr(&IpAddr::V6(a)), expect);
    }

    #[test]
    fn sipround_reproduces_siphash_2_4_reference_vectors() {
        // Key 00 01 .. 0f, as in the SipHash paper and the kernel's self-test.
        let k0 = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        let k1 = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
        assert_eq!(siphash(&[], k0, k1, 2, 4), 0x726f_db47_dd0e_0e31);
        // Message 00 .. 0e (15 bytes): last vector of the paper's appendix.
        let msg: Vec<u8> = (0u8..15).collect();
        assert_eq!(siphash(&msg, k0, k1, 2, 4), 0xa129_ca61_49be_45e5);
        // Message 00 (1 byte).
        assert_eq!(siphash(&[0], k0, k1, 2, 4), 0x74f8_39c5_93dc_67fd);
    }

    #[test]
    fn hsiphash_is_siphash_1_3_of_four_le_bytes() {
        let v = 80u32 + 0x0A00_0002;
        let generic = siphash(&v.to_le_bytes(), 2_654_435_761, 2_654_435_761, 1, 3) as u32;
        assert_eq!(hsiphash_u32(v, 2_654_435_761, 2_654_435_761), generic);
    }

    #[test]
    fn hsiphash_matches_spec_mh_vectors() {
        const K1: u64 = 2_654_435_761;
        const K2: u64 = 2_654_446_892;
        let d2 = 80u32.wrapping_add(0x0A00_0002);
        assert_eq!(hsiphash_u32(d2, K1, K1), 0xa1cf_683b);
        assert_eq!(hsiphash_u32(d2, K2, K2), 0xfa5d_46df);
        let d3 = 80u32.wrapping_add(0x0A00_0003);
        assert_eq!(hsiphash_u32(d3, K1, K1), 0x2cdf_0afa);
        assert_eq!(hsiphash_u32(d3, K2, K2), 0xedeb_33d0);
        let client = u32::from(Ipv4Addr::new(192, 168, 1, 100));
        assert_eq!(hsiphash_u32(client, K1, K1), 0xc15d_2cf8);
    }

    #[test]
    fn gcd_and_fls() {
        assert_eq!(gcd(12, 18), 6);
        assert_eq!(gcd(7, 0), 7);
        assert_eq!(fls(0), 0);
        assert_eq!(fls(1), 1);
        assert_eq!(fls(64), 7);
        assert_eq!(fls(u32::MAX), 32);
    }
}
