//! Big-endian field access helpers shared by the packet views.
//!
//! All of them index the slice and therefore panic when it is too short; callers only use
//! them on offsets that `check_len` has validated (or on `new_unchecked` views whose
//! documented contract is that the caller sized the buffer).

use core::net::{Ipv4Addr, Ipv6Addr};

#[inline]
pub(crate) fn be16(d: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([d[off], d[off + 1]])
}

#[inline]
pub(crate) fn be32(d: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([d[off], d[off + 1], d[off + 2], d[off + 3]])
}

#[inline]
pub(crate) fn set_be16(d: &mut [u8], off: usize, v: u16) {
    d[off..off + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn set_be32(d: &mut [u8], off: usize, v: u32) {
    d[off..off + 4].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn array<const N: usize>(d: &[u8], off: usize) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&d[off..off + N]);
    a
}

#[inline]
pub(crate) fn ipv4(d: &[u8], off: usize) -> Ipv4Addr {
    Ipv4Addr::from(array::<4>(d, off))
}

#[inline]
pub(crate) fn ipv6(d: &[u8], off: usize) -> Ipv6Addr {
    Ipv6Addr::from(array::<16>(d, off))
}
