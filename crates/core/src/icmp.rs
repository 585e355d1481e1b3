//! ICMP: relaying errors about tracked connections (spec 6.6) and generating errors for
//! clients (port unreachable, fragmentation needed / packet too big, time exceeded).

use rvs_wire::checksum;

use crate::addr::{Addr16, from16};
use crate::balancer::{Action, Balancer, DropReason, Egress, FrameBuf};
use crate::conn::{InKey, OutKey};
use crate::packet::{Parsed, Quoted, parse_quoted, rd16, wr16};
use crate::service::ForwardMethod;
use crate::time::Instant;
use crate::xmit::dec_ttl;

/// Generated ICMP errors allowed per second (like the kernel's `icmp_ratelimit`, so a flood
/// toward a service without destinations cannot make the director reflect at line rate).
const ICMP_PER_SEC: u32 = 1000;

fn is_error(v6: bool, ty: u8) -> bool {
    if v6 {
        ty < 128
    } else {
        matches!(ty, 3 | 4 | 11)
    }
}

/// Full ICMP checksum over `msg` (ICMPv6 includes the pseudo header).
fn icmp_checksum(v6: bool, src: &Addr16, dst: &Addr16, msg: &[u8]) -> u16 {
    if v6 {
        let ph = checksum::pseudo_header_v6(&(*src).into(), &(*dst).into(), 58, msg.len() as u32);
        !checksum::combine(&[ph, checksum::data(msg)])
    } else {
        !checksum::data(msg)
    }
}

/// Handle an ICMP/ICMPv6 packet: relay errors about connections, pass everything else.
pub(crate) fn handle(lb: &mut Balancer, now: Instant, p: &Parsed, f: &mut FrameBuf<'_>) -> Action {
    if p.fragment || !p.has_l4 {
        return Action::Pass;
    }
    let base = f.offset;
    let end = base + p.l3 + p.ip_len;
    let icmp = base + p.l4;
    let Some(&ty) = f.buf.get(icmp) else {
        return Action::Pass;
    };
    if !is_error(p.v6, ty) {
        return Action::Pass;
    }
    let Some(msg) = f.buf.get(icmp..end) else {
        return Action::Drop(DropReason::Malformed);
    };
    let ok = if p.v6 {
        let ph = checksum::pseudo_header_v6(&p.src.into(), &p.dst.into(), 58, msg.len() as u32);
        checksum::combine(&[ph, checksum::data(msg)]) == 0xffff
    } else {
        checksum::data(msg) == 0xffff
    };
    if !ok {
        return Action::Drop(DropReason::BadChecksum);
    }
    let Some(q) = parse_quoted(f.buf, icmp, end, p.v6) else {
        return Action::Pass;
    };
    if !matches!(q.proto, 6 | 17 | 132) {
        return tunnel_error(lb, p, f, &q, ty);
    }
    let af = u8::from(p.v6);
    // Error about a reply VIP → client, sent toward the VIP: belongs to an inbound entry.
    if lb.is_vip(p.v6, &p.dst) {
        let key = InKey {
            af,
            proto: q.proto,
            caddr: q.dst,
            cport: q.dport,
            vaddr: q.src,
            vport: q.sport,
            template: false,
        };
        if let Some(idx) = lb.lookup_in_conn(&key) {
            if !lb.icmp_in_hit(now, idx, p.ip_len) {
                return Action::Drop(DropReason::IcmpUnmatched);
            }
            let c = lb.conns.get(idx).clone();
            let l3 = base + p.l3;
            return match ForwardMethod::from_u8(c.method) {
                ForwardMethod::Local => Action::Pass,
                ForwardMethod::Masq => {
                    if !dec_ttl(f.buf, l3, p.v6) {
                        return Action::Drop(DropReason::TtlExceeded);
                    }
                    // outer dst VIP → RIP; quoted src VIP → RIP, quoted sport vport → dport
                    rewrite_icmp(f.buf, p, &q, false, &c.daddr, c.dport);
                    Action::Forward(Egress {
                        next_hop: from16(&c.daddr, c.dest_v6()),
                        offset: base,
                        len: p.l3 + p.ip_len,
                    })
                }
                ForwardMethod::DirectRoute => {
                    if !dec_ttl(f.buf, l3, p.v6) {
                        return Action::Drop(DropReason::TtlExceeded);
                    }
                    Action::Forward(Egress {
                        next_hop: from16(&c.daddr, c.dest_v6()),
                        offset: base,
                        len: p.l3 + p.ip_len,
                    })
                }
                ForwardMethod::Tunnel => {
                    if !dec_ttl(f.buf, l3, p.v6) {
                        return Action::Drop(DropReason::TtlExceeded);
                    }
                    crate::xmit::encapsulate(lb, idx, p, f)
                }
            };
        }
        return Action::Pass;
    }
    // Error from a NAT real server about client → RIP: rewrite to come from the VIP.
    let key = OutKey {
        af,
        proto: q.proto,
        caddr: q.src,
        cport: q.sport,
        daddr: q.dst,
        dport: q.dport,
    };
    if let Some(idx) = lb.lookup_out_conn(&key) {
        if !lb.icmp_out_hit(now, idx, p.ip_len) {
            return Action::Drop(DropReason::IcmpUnmatched);
        }
        let c = lb.conns.get(idx).clone();
        if !dec_ttl(f.buf, base + p.l3, p.v6) {
            return Action::Drop(DropReason::TtlExceeded);
        }
        rewrite_icmp(f.buf, p, &q, true, &c.vaddr, c.vport);
        return Action::Forward(Egress {
            next_hop: from16(&c.caddr, c.is_v6()),
            offset: base,
            len: p.l3 + p.ip_len,
        });
    }
    Action::Pass
}

/// Rewrite an ICMP error and its quoted packet for NAT.
///
/// `outbound = false`: outer dst, quoted src and quoted sport change (toward the RS).
/// `outbound = true`: outer src, quoted dst and quoted dport change (toward the client).
fn rewrite_icmp(buf: &mut [u8], p: &Parsed, q: &Quoted, outbound: bool, addr: &Addr16, port: u16) {
    let base_l3 = buf_l3(p, q);
    let alen = if p.v6 { 16 } else { 4 };
    let (outer_at, inner_at, inner_port_at) = if p.v6 {
        if outbound { (8, 24, 2) } else { (24, 8, 0) }
    } else if outbound {
        (12, 16, 2)
    } else {
        (16, 12, 0)
    };
    // outer header
    let o = base_l3 + outer_at;
    let old: Vec<u8> = buf[o..o + alen].to_vec();
    buf[o..o + alen].copy_from_slice(&addr[..alen]);
    if !p.v6 {
        let c = rd16(buf, base_l3 + 10).unwrap_or(0);
        wr16(
            buf,
            base_l3 + 10,
            checksum::update_bytes(c, &old, &addr[..alen]),
        );
    }
    // quoted header and port
    let qi = q.l3 + inner_at;
    let old_q: Vec<u8> = buf[qi..qi + alen].to_vec();
    buf[qi..qi + alen].copy_from_slice(&addr[..alen]);
    if !p.v6 {
        let c = rd16(buf, q.l3 + 10).unwrap_or(0);
        wr16(
            buf,
            q.l3 + 10,
            checksum::update_bytes(c, &old_q, &addr[..alen]),
        );
    }
    wr16(buf, q.l4 + inner_port_at, port);
    // the quoted L4 checksum is usually cut off; ICMP checksum is recomputed in full
    let icmp = q.l3 - 8;
    let end = base_l3 + p.ip_len;
    wr16(buf, icmp + 2, 0);
    let src = if p.v6 {
        addr_at(buf, base_l3 + 8)
    } else {
        [0; 16]
    };
    let dst = if p.v6 {
        addr_at(buf, base_l3 + 24)
    } else {
        [0; 16]
    };
    let cs = icmp_checksum(p.v6, &src, &dst, &buf[icmp..end]);
    wr16(buf, icmp + 2, cs);
}

fn buf_l3(p: &Parsed, q: &Quoted) -> usize {
    // q.l3 is absolute; the outer header starts (l4 - l3) + 8 bytes earlier
    q.l3 - 8 - (p.l4 - p.l3)
}

fn addr_at(buf: &[u8], at: usize) -> Addr16 {
    let mut a = [0u8; 16];
    a.copy_from_slice(&buf[at..at + 16]);
    a
}

/// An ICMP "fragmentation needed" about one of our IPIP packets toward a real server:
/// tell the client, with the MTU reduced by the tunnel header (spec 6.4).
fn tunnel_error(lb: &mut Balancer, p: &Parsed, f: &mut FrameBuf<'_>, q: &Quoted, ty: u8) -> Action {
    let is_too_big = if p.v6 {
        ty == 2
    } else {
        ty == 3 && f.buf.get(f.offset + p.l4 + 1) == Some(&4)
    };
    if !is_too_big || !matches!(q.proto, 4 | 41) {
        return Action::Pass;
    }
    let mine = if q.v6 {
        lb.cfg.tunnel_src_v6.map(|a| a.octets()) == Some(q.src)
    } else {
        lb.cfg
            .tunnel_src_v4
            .map(|a| crate::addr::v4to16(a.octets()))
            == Some(q.src)
    };
    if !mine {
        return Action::Pass;
    }
    let icmp = f.offset + p.l4;
    let reported = if p.v6 {
        u32::from_be_bytes([
            f.buf[icmp + 4],
            f.buf[icmp + 5],
            f.buf[icmp + 6],
            f.buf[icmp + 7],
        ]) as usize
    } else {
        usize::from(rd16(f.buf, icmp + 6).unwrap_or(0))
    };
    let outer = if q.v6 { 40 } else { 20 };
    let mtu = if reported == 0 {
        usize::from(lb.cfg.mtu)
    } else {
        reported
    }
    .saturating_sub(outer);
    // The inner packet starts where the quoted outer header's payload begins.
    let end = f.offset + p.l3 + p.ip_len;
    let inner_l3 = q.l4;
    let inner_v6 = q.proto == 41;
    let Some(inner) = crate::packet::parse_inner(f.buf, inner_l3, end, inner_v6) else {
        return Action::Drop(DropReason::IcmpUnmatched);
    };
    let key = InKey {
        af: u8::from(inner_v6),
        proto: inner.proto,
        caddr: inner.src,
        cport: inner.sport,
        vaddr: inner.dst,
        vport: inner.dport,
        template: false,
    };
    if lb.lookup_in_conn(&key).is_none() {
        return Action::Drop(DropReason::IcmpUnmatched);
    }
    let min = if inner_v6 { 1280 } else { 68 };
    match build_error(
        lb,
        f,
        p.l3,
        (inner_l3, end.min(inner_l3 + inner.ip_len)),
        inner_v6,
        inner.dst,
        inner.src,
        if inner_v6 { (2, 0) } else { (3, 4) },
        mtu.max(min) as u32,
    ) {
        Some(e) => Action::Reply(e),
        None => Action::Drop(DropReason::IcmpUnmatched),
    }
}

/// Build an ICMP error for the sender of the packet quoted at `quote` (absolute range) and
/// replace the frame with it. Returns None when rate-limited.
#[allow(clippy::too_many_arguments)]
fn build_error(
    lb: &mut Balancer,
    f: &mut FrameBuf<'_>,
    l2: usize,
    quote: (usize, usize),
    v6: bool,
    src: Addr16,
    dst: Addr16,
    (ty, code): (u8, u8),
    word: u32,
) -> Option<Egress> {
    let limit = if v6 { 1280 - 48 } else { 576 - 28 };
    let ip_hdr = if v6 { 40 } else { 20 };
    let room = f.buf.len().checked_sub(f.offset + l2 + ip_hdr + 8)?;
    let qlen = (quote.1.saturating_sub(quote.0)).min(limit).min(room);
    if qlen < if v6 { 48 } else { 28 }.min(quote.1.saturating_sub(quote.0)) {
        return None;
    }
    let mut msg = core::mem::take(&mut lb.scratch);
    msg.clear();
    msg.extend_from_slice(&[ty, code, 0, 0]);
    msg.extend_from_slice(&word.to_be_bytes());
    msg.extend_from_slice(f.buf.get(quote.0..quote.0 + qlen)?);
    let cs = icmp_checksum(v6, &src, &dst, &msg);
    msg[2..4].copy_from_slice(&cs.to_be_bytes());
    let base = f.offset;
    // L2: reply to where the frame came from
    let mut macs = [0u8; 12];
    macs.copy_from_slice(&f.buf[base..base + 12]);
    f.buf[base..base + 6].copy_from_slice(&macs[6..12]);
    f.buf[base + 6..base + 12].copy_from_slice(&macs[..6]);
    let o = base + l2;
    let total = ip_hdr + msg.len();
    let ident = lb.next_ident();
    if v6 {
        let h = &mut f.buf[o..o + 40];
        h.copy_from_slice(&[0u8; 40]);
        h[0] = 0x60;
        h[4..6].copy_from_slice(&(msg.len() as u16).to_be_bytes());
        h[6] = 58;
        h[7] = 64;
        h[8..24].copy_from_slice(&src);
        h[24..40].copy_from_slice(&dst);
    } else {
        let h = &mut f.buf[o..o + 20];
        h[0] = 0x45;
        h[1] = 0xc0;
        h[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        h[4..6].copy_from_slice(&ident.to_be_bytes());
        h[6..8].copy_from_slice(&[0, 0]);
        h[8] = 64;
        h[9] = 1;
        h[10..12].copy_from_slice(&[0, 0]);
        h[12..16].copy_from_slice(&src[..4]);
        h[16..20].copy_from_slice(&dst[..4]);
        let cs = !checksum::data(h);
        h[10..12].copy_from_slice(&cs.to_be_bytes());
    }
    f.buf[o + ip_hdr..o + total].copy_from_slice(&msg);
    lb.scratch = msg;
    Some(Egress {
        next_hop: from16(&dst, v6),
        offset: base,
        len: l2 + total,
    })
}

fn rate_ok(lb: &mut Balancer) -> bool {
    // The budget is kept per second of the last packet time the balancer saw.
    let (sec, n) = lb.icmp_budget;
    let now_sec = lb.last_now.secs();
    if now_sec != sec {
        lb.icmp_budget = (now_sec, 1);
        return true;
    }
    if n >= ICMP_PER_SEC {
        return false;
    }
    lb.icmp_budget.1 = n + 1;
    true
}

fn error_to_client(
    lb: &mut Balancer,
    p: &Parsed,
    f: &mut FrameBuf<'_>,
    tc: (u8, u8),
    word: u32,
) -> Option<Egress> {
    if !rate_ok(lb) {
        return None;
    }
    let q0 = f.offset + p.l3;
    let q1 = q0 + p.ip_len;
    build_error(lb, f, p.l3, (q0, q1), p.v6, p.dst, p.src, tc, word)
}

/// Port unreachable for a packet no destination could take (spec 5.11).
pub(crate) fn unreachable(lb: &mut Balancer, p: &Parsed, f: &mut FrameBuf<'_>) -> Option<Egress> {
    let tc = if p.v6 { (1, 4) } else { (3, 3) };
    error_to_client(lb, p, f, tc, 0)
}

/// Fragmentation needed (IPv4, RFC 1191) / packet too big (IPv6) with the usable MTU.
pub(crate) fn frag_needed(
    lb: &mut Balancer,
    p: &Parsed,
    f: &mut FrameBuf<'_>,
    mtu: usize,
) -> Option<Egress> {
    let tc = if p.v6 { (2, 0) } else { (3, 4) };
    error_to_client(lb, p, f, tc, mtu as u32)
}

/// Time exceeded in transit.
pub(crate) fn time_exceeded(lb: &mut Balancer, p: &Parsed, f: &mut FrameBuf<'_>) -> Option<Egress> {
    let tc = if p.v6 { (3, 0) } else { (11, 0) };
    error_to_client(lb, p, f, tc, 0)
}
