//! A compact address form used inside the tables: 16 bytes plus a family bit.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IPv4 addresses are stored in the first four bytes, the rest zero; the family is kept
/// beside the bytes wherever the two could be confused.
pub(crate) type Addr16 = [u8; 16];

/// Store an address.
#[inline]
pub(crate) fn to16(ip: &IpAddr) -> Addr16 {
    match ip {
        IpAddr::V4(a) => v4to16(a.octets()),
        IpAddr::V6(a) => a.octets(),
    }
}

/// Store four IPv4 bytes.
#[inline(always)]
pub(crate) fn v4to16(o: [u8; 4]) -> Addr16 {
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&o);
    b
}

/// Read an address back.
#[inline]
pub(crate) fn from16(b: &Addr16, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(*b))
    } else {
        IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    }
}

/// The two halves as words for hashing.
#[inline(always)]
pub(crate) fn words(b: &Addr16) -> (u64, u64) {
    let mut lo = [0u8; 8];
    let mut hi = [0u8; 8];
    lo.copy_from_slice(&b[..8]);
    hi.copy_from_slice(&b[8..]);
    (u64::from_ne_bytes(lo), u64::from_ne_bytes(hi))
}

/// Apply a persistence netmask: IPv4 dotted mask as a host-order u32, IPv6 prefix length.
pub(crate) fn mask(b: &Addr16, v6: bool, v4_mask: u32, v6_prefix: u8) -> Addr16 {
    let mut out = *b;
    if v6 {
        let prefix = usize::from(v6_prefix.min(128));
        for (i, byte) in out.iter_mut().enumerate() {
            let bit = i * 8;
            if bit >= prefix {
                *byte = 0;
            } else if bit + 8 > prefix {
                *byte &= 0xffu8 << (8 - (prefix - bit));
            }
        }
    } else {
        let m = v4_mask.to_be_bytes();
        for i in 0..4 {
            out[i] &= m[i];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_v4_and_v6() {
        let a = to16(&"198.18.5.77".parse().unwrap());
        let m = mask(&a, false, 0xffff_ff00, 0);
        assert_eq!(from16(&m, false), "198.18.5.0".parse::<IpAddr>().unwrap());
        let b = to16(&"2001:db8:abcd:1234::1".parse().unwrap());
        let m = mask(&b, true, 0, 52);
        assert_eq!(
            from16(&m, true),
            "2001:db8:abcd:1000::".parse::<IpAddr>().unwrap()
        );
        assert_eq!(mask(&b, true, 0, 128), b);
        assert_eq!(
            from16(&mask(&b, true, 0, 0), true),
            "::".parse::<IpAddr>().unwrap()
        );
    }
}
