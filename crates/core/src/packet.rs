//! Header parsing for the data path: one bounds-checked pass that finds the offsets and
//! fields the balancer needs, and small big-endian accessors that never panic.

use crate::addr::{Addr16, v4to16};

#[inline(always)]
pub(crate) fn rd16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at + 2)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

#[inline(always)]
pub(crate) fn wr16(b: &mut [u8], at: usize, v: u16) {
    if let Some(s) = b.get_mut(at..at + 2) {
        s.copy_from_slice(&v.to_be_bytes());
    }
}

/// Ethernet types handled by the data path.
pub(crate) const ETH_IPV4: u16 = 0x0800;
pub(crate) const ETH_IPV6: u16 = 0x86DD;
const ETH_VLAN: u16 = 0x8100;
const ETH_QINQ: u16 = 0x88A8;

/// Where the parts of a frame are (offsets relative to the frame start).
///
/// `repr(C)` with the two ports apart: parsing stores each port separately, and the
/// key hash that follows must read them separately too. Were they adjacent, the compiler
/// would merge the two reads into one that spans both stores, which the CPU cannot
/// forward from its store buffer (a stall of a dozen cycles per packet).
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct Parsed {
    pub(crate) src: Addr16,
    pub(crate) dst: Addr16,
    /// Offset of the ethertype field that announces the IP header (after VLAN tags).
    pub(crate) ethertype_at: usize,
    pub(crate) l3: usize,
    /// IP total length (header + payload) as the header states, bounded by the frame.
    pub(crate) ip_len: usize,
    pub(crate) l4: usize,
    pub(crate) sport: u16,
    pub(crate) proto: u8,
    pub(crate) v6: bool,
    pub(crate) dport: u16,
    pub(crate) tcp_flags: u8,
    pub(crate) sctp_chunk: u8,
    /// IPv4 DF (IPv6: always, routers never fragment).
    pub(crate) df: bool,
    /// A fragment (IPv4 MF or offset, IPv6 fragment header).
    pub(crate) fragment: bool,
    /// L4 header fields are present (not a non-first fragment, long enough).
    pub(crate) has_l4: bool,
}

impl Parsed {
    /// All zero (the `Default`), usable in constants.
    pub(crate) const EMPTY: Self = Self {
        ethertype_at: 0,
        l3: 0,
        v6: false,
        ip_len: 0,
        proto: 0,
        l4: 0,
        src: [0; 16],
        dst: [0; 16],
        sport: 0,
        dport: 0,
        tcp_flags: 0,
        sctp_chunk: 0,
        df: false,
        fragment: false,
        has_l4: false,
    };
}

/// Outcome of parsing when it is not a usable IP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ParseOutcome {
    /// Not IP (ARP, LLDP, ...): the host's business.
    NotIp,
    /// Truncated or inconsistent headers.
    Malformed,
    /// IPv4 header checksum wrong.
    BadChecksum,
}

/// Parse Ethernet (with up to two VLAN tags), IPv4/IPv6 and the first L4 bytes into `p`
/// (every field is overwritten, so `p` may hold the previous frame's result: the batch
/// path parses in place to avoid moving the result around).
#[inline]
pub(crate) fn parse_into(frame: &[u8], p: &mut Parsed) -> Result<(), ParseOutcome> {
    let mut at = 12;
    let mut ty = rd16(frame, at).ok_or(ParseOutcome::Malformed)?;
    let mut tags = 0;
    while (ty == ETH_VLAN || ty == ETH_QINQ) && tags < 2 {
        at += 4;
        ty = rd16(frame, at).ok_or(ParseOutcome::Malformed)?;
        tags += 1;
    }
    *p = Parsed {
        ethertype_at: at,
        l3: at + 2,
        ..Parsed::EMPTY
    };
    match ty {
        ETH_IPV4 => parse_v4(frame, p)?,
        ETH_IPV6 => parse_v6(frame, p)?,
        _ => return Err(ParseOutcome::NotIp),
    }
    parse_l4(frame, p);
    Ok(())
}

#[inline(always)]
fn parse_v4(frame: &[u8], p: &mut Parsed) -> Result<(), ParseOutcome> {
    let h = frame.get(p.l3..p.l3 + 20).ok_or(ParseOutcome::Malformed)?;
    if h[0] >> 4 != 4 {
        return Err(ParseOutcome::Malformed);
    }
    let ihl = usize::from(h[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    if ihl < 20 || total < ihl || p.l3 + total > frame.len() {
        return Err(ParseOutcome::Malformed);
    }
    let hdr = &frame[p.l3..p.l3 + ihl];
    if rvs_wire::checksum::data(hdr) != 0xffff {
        return Err(ParseOutcome::BadChecksum);
    }
    let frag = u16::from_be_bytes([h[6], h[7]]);
    p.df = frag & 0x4000 != 0;
    let mf = frag & 0x2000 != 0;
    let off = frag & 0x1fff;
    p.fragment = mf || off != 0;
    p.has_l4 = off == 0;
    p.ip_len = total;
    p.proto = h[9];
    p.src = v4to16([h[12], h[13], h[14], h[15]]);
    p.dst = v4to16([h[16], h[17], h[18], h[19]]);
    p.l4 = p.l3 + ihl;
    Ok(())
}

#[inline(never)]
fn parse_v6(frame: &[u8], p: &mut Parsed) -> Result<(), ParseOutcome> {
    let h = frame.get(p.l3..p.l3 + 40).ok_or(ParseOutcome::Malformed)?;
    if h[0] >> 4 != 6 {
        return Err(ParseOutcome::Malformed);
    }
    let plen = usize::from(u16::from_be_bytes([h[4], h[5]]));
    if plen == 0 || p.l3 + 40 + plen > frame.len() {
        // jumbograms (payload length 0) are not forwarded
        return Err(ParseOutcome::Malformed);
    }
    p.v6 = true;
    p.df = true;
    p.ip_len = 40 + plen;
    p.src.copy_from_slice(&h[8..24]);
    p.dst.copy_from_slice(&h[24..40]);
    let info = rvs_wire::ipv6_upper_layer(&frame[p.l3..p.l3 + p.ip_len])
        .map_err(|_| ParseOutcome::Malformed)?;
    p.proto = u8::from(info.protocol);
    p.l4 = p.l3 + info.l4_offset;
    match info.fragment {
        Some(f) => {
            p.fragment = true;
            p.has_l4 = f.offset == 0;
        }
        None => p.has_l4 = true,
    }
    Ok(())
}

#[inline(always)]
fn parse_l4(frame: &[u8], p: &mut Parsed) {
    if !p.has_l4 {
        return;
    }
    let end = p.l3 + p.ip_len;
    let Some(l4) = frame.get(p.l4..end) else {
        p.has_l4 = false;
        return;
    };
    let need = match p.proto {
        6 => 20,
        17 => 8,
        132 => 12 + 4,
        1 | 58 => 8,
        _ => 0,
    };
    if l4.len() < need {
        p.has_l4 = false;
        return;
    }
    match p.proto {
        6 => {
            let doff = usize::from(l4[12] >> 4) * 4;
            if doff < 20 || doff > l4.len() {
                p.has_l4 = false;
                return;
            }
            p.sport = u16::from_be_bytes([l4[0], l4[1]]);
            p.dport = u16::from_be_bytes([l4[2], l4[3]]);
            p.tcp_flags = l4[13];
        }
        17 => {
            p.sport = u16::from_be_bytes([l4[0], l4[1]]);
            p.dport = u16::from_be_bytes([l4[2], l4[3]]);
            let ulen = usize::from(u16::from_be_bytes([l4[4], l4[5]]));
            if ulen < 8 || ulen > l4.len() {
                p.has_l4 = false;
            }
        }
        132 => {
            p.sport = u16::from_be_bytes([l4[0], l4[1]]);
            p.dport = u16::from_be_bytes([l4[2], l4[3]]);
            p.sctp_chunk = l4[12];
        }
        _ => {}
    }
}

/// Fields of the packet quoted inside an ICMP error.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Quoted {
    /// Offset (in the frame) of the quoted IP header.
    pub(crate) l3: usize,
    pub(crate) v6: bool,
    pub(crate) proto: u8,
    pub(crate) l4: usize,
    pub(crate) src: Addr16,
    pub(crate) dst: Addr16,
    pub(crate) sport: u16,
    pub(crate) dport: u16,
}

/// Parse the packet quoted by an ICMP error at `icmp` (offset of the ICMP header),
/// requiring its IP header and the first 8 L4 bytes. Non-first fragments are refused.
pub(crate) fn parse_quoted(frame: &[u8], icmp: usize, end: usize, v6: bool) -> Option<Quoted> {
    let l3 = icmp + 8;
    let body = frame.get(l3..end)?;
    if !v6 {
        let h = body.get(..20)?;
        if h[0] >> 4 != 4 {
            return None;
        }
        let ihl = usize::from(h[0] & 0x0f) * 4;
        let frag = u16::from_be_bytes([h[6], h[7]]);
        if ihl < 20 || frag & 0x1fff != 0 || body.len() < ihl + 8 {
            return None;
        }
        let l4 = l3 + ihl;
        Some(Quoted {
            l3,
            v6,
            proto: h[9],
            l4,
            src: v4to16([h[12], h[13], h[14], h[15]]),
            dst: v4to16([h[16], h[17], h[18], h[19]]),
            sport: rd16(frame, l4)?,
            dport: rd16(frame, l4 + 2)?,
        })
    } else {
        let h = body.get(..40)?;
        if h[0] >> 4 != 6 {
            return None;
        }
        // The quoted packet may be cut short: walk extension headers only within it.
        let (proto, l4_off) = walk_v6_quoted(body)?;
        let l4 = l3 + l4_off;
        if l4 + 8 > end {
            return None;
        }
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        src.copy_from_slice(&h[8..24]);
        dst.copy_from_slice(&h[24..40]);
        Some(Quoted {
            l3,
            v6,
            proto,
            l4,
            src,
            dst,
            sport: rd16(frame, l4)?,
            dport: rd16(frame, l4 + 2)?,
        })
    }
}

/// Walk the extension headers of a possibly truncated IPv6 packet (the copy inside an ICMPv6
/// error). Returns the upper-layer protocol and its offset; `None` for non-first fragments,
/// more than 8 extension headers, or headers cut off.
fn walk_v6_quoted(b: &[u8]) -> Option<(u8, usize)> {
    let mut next = *b.get(6)?;
    let mut off = 40;
    for _ in 0..8 {
        match next {
            0 | 43 | 60 => {
                let len = (usize::from(*b.get(off + 1)?) + 1) * 8;
                next = *b.get(off)?;
                off += len;
            }
            51 => {
                let len = (usize::from(*b.get(off + 1)?) + 2) * 4;
                next = *b.get(off)?;
                off += len;
            }
            44 => {
                let fo = u16::from_be_bytes([*b.get(off + 2)?, *b.get(off + 3)?]) >> 3;
                if fo != 0 {
                    return None;
                }
                next = *b.get(off)?;
                off += 8;
            }
            p => return Some((p, off)),
        }
    }
    None
}

/// Fields of an IP packet quoted inside a tunnel error (the client's original packet).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Inner {
    pub(crate) proto: u8,
    pub(crate) src: Addr16,
    pub(crate) dst: Addr16,
    pub(crate) sport: u16,
    pub(crate) dport: u16,
    pub(crate) ip_len: usize,
}

/// Parse a (possibly truncated) inner IP packet at `l3` up to `end`.
pub(crate) fn parse_inner(buf: &[u8], l3: usize, end: usize, v6: bool) -> Option<Inner> {
    let b = buf.get(l3..end)?;
    let (proto, l4, src, dst, ip_len) = if v6 {
        let h = b.get(..40)?;
        let (proto, off) = walk_v6_quoted(b)?;
        let mut s = [0u8; 16];
        let mut d = [0u8; 16];
        s.copy_from_slice(&h[8..24]);
        d.copy_from_slice(&h[24..40]);
        (
            proto,
            off,
            s,
            d,
            40 + usize::from(u16::from_be_bytes([h[4], h[5]])),
        )
    } else {
        let h = b.get(..20)?;
        let ihl = usize::from(h[0] & 0x0f) * 4;
        if h[0] >> 4 != 4 || ihl < 20 {
            return None;
        }
        (
            h[9],
            ihl,
            v4to16([h[12], h[13], h[14], h[15]]),
            v4to16([h[16], h[17], h[18], h[19]]),
            usize::from(u16::from_be_bytes([h[2], h[3]])),
        )
    };
    Some(Inner {
        proto,
        src,
        dst,
        sport: rd16(b, l4)?,
        dport: rd16(b, l4 + 2)?,
        ip_len,
    })
}
