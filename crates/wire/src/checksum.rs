//! Internet checksum arithmetic (RFC 1071) and incremental updates (RFC 1624).
//!
//! Two kinds of values appear in this module and must not be confused:
//!
//! * a **sum**: the one's complement sum of some bytes, folded to 16 bits and *not*
//!   complemented ([`data`], [`combine`], [`pseudo_header_v4`], [`pseudo_header_v6`]);
//! * a **checksum field**: the value stored in a header, which is the complement of the
//!   sum over everything it covers (`!combine(&[pseudo, data(segment)])`).
//!
//! The incremental functions ([`update16`], [`update32`], [`update_bytes`]) take and return
//! checksum *field* values, exactly as read from and written to a header. They implement
//! equation 3 of RFC 1624, `HC' = ~(~HC + ~m + m')`, which never produces the `0xFFFF`
//! ("negative zero") field that equation 2 can produce, so an incrementally updated field
//! is bit-identical to a full recomputation.
//!
//! # UDP
//!
//! UDP has two special rules (RFC 768, RFC 8200 section 8.1):
//!
//! * a computed checksum of `0x0000` is transmitted as `0xFFFF`;
//! * over IPv4 a field of `0x0000` means "no checksum" and must stay `0` when addresses or
//!   ports are rewritten. Over IPv6 the checksum is mandatory and a zero field is invalid.
//!
//! Use [`update16_udp`], [`update32_udp`] and [`update_bytes_udp`] for UDP fields: they keep
//! a zero field at zero and map a result of zero to `0xFFFF`.
//!
//! # NAT example
//!
//! ```
//! use core::net::Ipv4Addr;
//! use rvs_wire::checksum;
//!
//! // TCP checksum field of a segment whose destination is rewritten from VIP to RIP:
//! let vip = Ipv4Addr::new(192, 0, 2, 10);
//! let rip = Ipv4Addr::new(10, 0, 0, 5);
//! let field = 0x1c46;
//! // The pseudo header covers the addresses, so the L4 checksum changes as well.
//! let field = checksum::update_bytes(field, &vip.octets(), &rip.octets());
//! // And the destination port 80 -> 8080.
//! let field = checksum::update16(field, 80, 8080);
//! # let _ = field;
//! ```

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Folds a 64-bit accumulator into a 16-bit one's complement sum (end-around carry).
#[inline]
const fn fold(mut sum: u64) -> u16 {
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// Adds two 64-bit values with end-around carry.
#[inline(always)]
const fn add_carry(acc: u64, v: u64) -> u64 {
    let (s, carry) = acc.overflowing_add(v);
    // When the addition overflowed, `s <= v - 1 < u64::MAX`, so adding the carry cannot
    // overflow again.
    s + carry as u64
}

/// Computes the one's complement sum (RFC 1071) of `bytes`, folded to 16 bits and
/// **not** complemented.
///
/// Bytes are interpreted as big-endian 16-bit words; an odd trailing byte is padded with a
/// zero byte, as RFC 1071 prescribes. The loop adds 8 bytes at a time in native byte order
/// and swaps the folded result once at the end, which is valid because the one's complement
/// sum is byte-order independent (RFC 1071 section 2.B).
///
/// The result is `0` only when every byte is zero, otherwise it lies in `1..=0xFFFF`.
///
/// ```
/// // The example of RFC 1071 section 3.
/// assert_eq!(rvs_wire::checksum::data(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), 0xddf2);
/// ```
pub fn data(bytes: &[u8]) -> u16 {
    let (chunks, rest) = bytes.as_chunks::<8>();
    let mut sum = if chunks.len() >= 8 {
        sum_wide(chunks)
    } else {
        chunks
            .iter()
            .fold(0, |acc, c| add_carry(acc, u64::from_ne_bytes(*c)))
    };
    // The tail (at most 7 bytes) starts at an even offset. A native-endian u32 holds two
    // 16-bit words `w0 + w1 * 2^16`, and 2^16 = 1 (mod 0xffff), so it contributes
    // `w0 + w1` once folded. A final odd byte is the high byte of a zero-padded word.
    let mut rest = rest;
    if let Some((w, r)) = rest.split_first_chunk::<4>() {
        sum = add_carry(sum, u64::from(u32::from_ne_bytes(*w)));
        rest = r;
    }
    if let Some((w, r)) = rest.split_first_chunk::<2>() {
        sum = add_carry(sum, u64::from(u16::from_ne_bytes(*w)));
        rest = r;
    }
    if let [last] = rest {
        sum = add_carry(sum, u64::from(u16::from_ne_bytes([*last, 0])));
    }
    // The native-order sum is the byte-swapped big-endian sum on little-endian targets.
    u16::from_be(fold(sum))
}

/// Sums whole 8-byte words with four independent accumulators, so that the additions do
/// not serialise on a single carry chain.
#[inline]
fn sum_wide(chunks: &[[u8; 8]]) -> u64 {
    let mut acc = [0u64; 4];
    let (quads, singles) = chunks.as_chunks::<4>();
    for q in quads {
        acc[0] = add_carry(acc[0], u64::from_ne_bytes(q[0]));
        acc[1] = add_carry(acc[1], u64::from_ne_bytes(q[1]));
        acc[2] = add_carry(acc[2], u64::from_ne_bytes(q[2]));
        acc[3] = add_carry(acc[3], u64::from_ne_bytes(q[3]));
    }
    for c in singles {
        acc[0] = add_carry(acc[0], u64::from_ne_bytes(*c));
    }
    // 2^64 = 1 (mod 0xffff), so adding with end-around carry at 64 bits and folding
    // later gives the same 16-bit sum.
    add_carry(add_carry(acc[0], acc[1]), add_carry(acc[2], acc[3]))
}

/// Combines several partial sums (as returned by [`data`] or the pseudo-header functions)
/// into one, with end-around carry. The result is not complemented.
///
/// Partial sums may only be combined when each one covers bytes starting at an even offset
/// of the checksummed data.
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&s| u64::from(s)).sum())
}

/// Sum of the IPv4 pseudo header (RFC 793 section 3.1, RFC 768): source and destination
/// address, zero, protocol and upper-layer length. Not complemented.
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: u32) -> u16 {
    let s = u32::from(src);
    let d = u32::from(dst);
    fold(
        u64::from(s >> 16)
            + u64::from(s & 0xffff)
            + u64::from(d >> 16)
            + u64::from(d & 0xffff)
            + u64::from(proto)
            + u64::from(len >> 16)
            + u64::from(len & 0xffff),
    )
}

/// Sum of the IPv6 pseudo header (RFC 8200 section 8.1): source and destination address,
/// 32-bit upper-layer length and next header. Not complemented.
pub fn pseudo_header_v6(src: &Ipv6Addr, dst: &Ipv6Addr, proto: u8, len: u32) -> u16 {
    let mut sum = u64::from(proto) + u64::from(len >> 16) + u64::from(len & 0xffff);
    for w in src.segments().iter().chain(dst.segments().iter()) {
        sum += u64::from(*w);
    }
    fold(sum)
}

/// Sum of the pseudo header for either address family.
///
/// Both addresses should be of the same family. A mixed pair is a caller bug; it is
/// handled without panicking by using the IPv6 pseudo header over the IPv4-mapped form of
/// the IPv4 address, which will not match what any receiver computes.
pub fn pseudo_header(src: &IpAddr, dst: &IpAddr, proto: u8, len: u32) -> u16 {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => pseudo_header_v4(*s, *d, proto, len),
        (IpAddr::V6(s), IpAddr::V6(d)) => pseudo_header_v6(s, d, proto, len),
        (IpAddr::V4(s), IpAddr::V6(d)) => pseudo_header_v6(&s.to_ipv6_mapped(), d, proto, len),
        (IpAddr::V6(s), IpAddr::V4(d)) => pseudo_header_v6(s, &d.to_ipv6_mapped(), proto, len),
    }
}

/// Checksum field for data whose covered bytes sum to `sum`: `!sum`.
#[inline]
pub const fn finish(sum: u16) -> u16 {
    !sum
}

/// Incrementally updates a checksum **field** after a 16-bit word of the covered data
/// changed from `old` to `new` (RFC 1624 equation 3).
///
/// The word must be 16-bit aligned within the checksummed data (ports, IPv4 TTL+protocol,
/// identification...). For the UDP zero rule use [`update16_udp`].
///
/// ```
/// use rvs_wire::checksum;
/// // RFC 1624 section 4: field 0xDD2F, a word changes from 0x5555 to 0x3285.
/// assert_eq!(checksum::update16(0xdd2f, 0x5555, 0x3285), 0x0000);
/// ```
#[inline]
pub const fn update16(csum: u16, old: u16, new: u16) -> u16 {
    !fold((!csum) as u64 + (!old) as u64 + new as u64)
}

/// Incrementally updates a checksum **field** after a 32-bit aligned value (an IPv4
/// address, a TCP sequence number) changed from `old` to `new`.
#[inline]
pub const fn update32(csum: u16, old: u32, new: u32) -> u16 {
    let old_hi = (old >> 16) as u16;
    let old_lo = old as u16;
    !fold(
        (!csum) as u64
            + (!old_hi) as u64
            + (!old_lo) as u64
            + (new >> 16) as u64
            + (new & 0xffff) as u64,
    )
}

/// Incrementally updates a checksum **field** after the bytes `old` were replaced by
/// `new` (for example a 4 or 16 byte address, or address + port).
///
/// Both spans must start at the same even offset of the checksummed data and normally have
/// the same, even, length. Other lengths never panic: each side is summed as by [`data`]
/// (an odd trailing byte is the high byte of its word), which is still exact as long as
/// both spans start at the same even offset.
#[inline]
pub fn update_bytes(csum: u16, old: &[u8], new: &[u8]) -> u16 {
    // Fast path for IPv4 addresses, the most common rewrite.
    if let (Some(o), Some(n)) = (old.as_array::<4>(), new.as_array::<4>()) {
        return update32(csum, u32::from_be_bytes(*o), u32::from_be_bytes(*n));
    }
    !fold(u64::from(!csum) + u64::from(!data(old)) + u64::from(data(new)))
}

/// Maps a UDP checksum field through `f`, applying the UDP zero rules: a field of `0`
/// (no checksum, IPv4 only) stays `0`, and a computed `0` is stored as `0xFFFF`.
#[inline]
const fn udp_rule(csum: u16, updated: u16) -> u16 {
    if csum == 0 {
        0
    } else if updated == 0 {
        0xffff
    } else {
        updated
    }
}

/// [`update16`] for a UDP checksum field: `0` stays `0` (no checksum), a result of `0` is
/// stored as `0xFFFF`.
#[inline]
pub const fn update16_udp(csum: u16, old: u16, new: u16) -> u16 {
    udp_rule(csum, update16(csum, old, new))
}

/// [`update32`] for a UDP checksum field: `0` stays `0` (no checksum), a result of `0` is
/// stored as `0xFFFF`.
#[inline]
pub const fn update32_udp(csum: u16, old: u32, new: u32) -> u16 {
    udp_rule(csum, update32(csum, old, new))
}

/// [`update_bytes`] for a UDP checksum field: `0` stays `0` (no checksum), a result of `0`
/// is stored as `0xFFFF`.
#[inline]
pub fn update_bytes_udp(csum: u16, old: &[u8], new: &[u8]) -> u16 {
    udp_rule(csum, update_bytes(csum, old, new))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte-at-a-time reference implementation of RFC 1071.
    fn reference(bytes: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        for pair in bytes.chunks(2) {
            let hi = u32::from(pair[0]) << 8;
            let lo = pair.get(1).map_or(0, |b| u32::from(*b));
            sum += hi | lo;
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    #[test]
    fn rfc1071_example() {
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(data(&bytes), 0xddf2);
        assert_eq!(reference(&bytes), 0xddf2);
    }

    #[test]
    fn empty_and_zero() {
        assert_eq!(data(&[]), 0);
        assert_eq!(data(&[0; 77]), 0);
        assert_eq!(data(&[0xff, 0xff]), 0xffff);
        assert_eq!(data(&[0xff; 64]), 0xffff);
    }

    #[test]
    fn odd_lengths_pad_with_zero() {
        assert_eq!(data(&[0x12]), 0x1200);
        assert_eq!(data(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }

    #[test]
    fn matches_reference_for_all_lengths() {
        let mut buf = [0u8; 300];
        let mut x: u32 = 0x1234_5678;
        for b in buf.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        for len in 0..buf.len() {
            for start in 0..3 {
                if start <= len {
                    assert_eq!(
                        data(&buf[start..len]),
                        reference(&buf[start..len]),
                        "{start}..{len}"
                    );
                }
            }
        }
    }

    #[test]
    fn carries_across_many_words() {
        // Large all-0xff blocks exercise the 64-bit carries.
        let buf = [0xffu8; 1500];
        assert_eq!(data(&buf), reference(&buf));
        let mut buf = [0xfeu8; 1501];
        buf[1500] = 0x01;
        assert_eq!(data(&buf), reference(&buf));
    }

    #[test]
    fn ipv4_header_checksum_known_good() {
        // Classic example header, checksum field 0xb861.
        let header = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(finish(data(&header)), 0xb861);
    }

    #[test]
    fn combine_is_split_sum() {
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(combine(&[data(&bytes[..2]), data(&bytes[2..])]), 0xddf2);
        assert_eq!(combine(&[0xffff, 0x0001]), 0x0001);
        assert_eq!(combine(&[]), 0);
    }

    #[test]
    fn pseudo_headers() {
        let s = Ipv4Addr::new(192, 168, 0, 1);
        let d = Ipv4Addr::new(192, 168, 0, 199);
        let mut bytes = [0u8; 12];
        bytes[0..4].copy_from_slice(&s.octets());
        bytes[4..8].copy_from_slice(&d.octets());
        bytes[9] = 17;
        bytes[10..12].copy_from_slice(&95u16.to_be_bytes());
        assert_eq!(pseudo_header_v4(s, d, 17, 95), data(&bytes));

        let s6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let d6: Ipv6Addr = "2001:db8::ffff:2".parse().unwrap();
        let mut bytes = [0u8; 40];
        bytes[0..16].copy_from_slice(&s6.octets());
        bytes[16..32].copy_from_slice(&d6.octets());
        bytes[32..36].copy_from_slice(&70_000u32.to_be_bytes());
        bytes[39] = 6;
        assert_eq!(pseudo_header_v6(&s6, &d6, 6, 70_000), data(&bytes));
        assert_eq!(
            pseudo_header(&IpAddr::V6(s6), &IpAddr::V6(d6), 6, 70_000),
            data(&bytes)
        );
    }

    #[test]
    fn rfc1624_example() {
        // RFC 1624 section 4: the other octets sum to 0xCD7A, so with m = 0x5555 the field
        // is ~(0xCD7A + 0x5555) = 0xDD2F; after m' = 0x3285 the new field must be 0x0000
        // (equation 3), not 0xFFFF (equation 2).
        assert_eq!(finish(combine(&[0xcd7a, 0x5555])), 0xdd2f);
        assert_eq!(update16(0xdd2f, 0x5555, 0x3285), 0x0000);
        assert_eq!(finish(combine(&[0xcd7a, 0x3285])), 0x0000);
    }

    #[test]
    fn incremental_matches_recompute() {
        let mut header = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        let field = finish(data(&header));
        // TTL decrement (word at offset 8 = TTL, protocol).
        let old = u16::from_be_bytes([header[8], header[9]]);
        header[8] -= 1;
        let new = u16::from_be_bytes([header[8], header[9]]);
        let field = update16(field, old, new);
        assert_eq!(field, finish(data(&header)));
        // Destination address rewrite, both ways.
        let old32 = u32::from_be_bytes([header[16], header[17], header[18], header[19]]);
        let new32: u32 = 0x0a00_0005;
        header[16..20].copy_from_slice(&new32.to_be_bytes());
        let f32 = update32(field, old32, new32);
        assert_eq!(f32, finish(data(&header)));
        assert_eq!(
            update_bytes(field, &old32.to_be_bytes(), &new32.to_be_bytes()),
            f32
        );
    }

    #[test]
    fn udp_zero_rules() {
        assert_eq!(update16_udp(0, 1, 2), 0);
        assert_eq!(update32_udp(0, 1, 2), 0);
        assert_eq!(update_bytes_udp(0, &[1, 2], &[3, 4]), 0);
        // A result of zero becomes 0xffff: field 0x0001 (sum 0xfffe), add 1.
        assert_eq!(update16(0x0001, 0x0000, 0x0001), 0x0000);
        assert_eq!(update16_udp(0x0001, 0x0000, 0x0001), 0xffff);
        // And a field of 0xffff (computed zero) updates like zero did.
        assert_eq!(update16_udp(0xffff, 0x0001, 0x0000), 0x0001);
    }
}
