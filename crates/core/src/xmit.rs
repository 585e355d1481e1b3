//! Transmitters: the NAT, DR and TUN rewrites (spec 6).

use rvs_wire::checksum;

use crate::addr::Addr16;
use crate::balancer::{Action, Balancer, DropReason, Egress, FrameBuf};
use crate::conn::Conn;
use crate::packet::{ETH_IPV4, ETH_IPV6, Parsed, rd16, wr16};
use crate::service::{ForwardMethod, TunnelCsum, TunnelType};

/// Decrement TTL / hop limit of the IP header at `l3` (absolute). False when it would
/// reach zero (the packet must not be forwarded).
pub(crate) fn dec_ttl(buf: &mut [u8], l3: usize, v6: bool) -> bool {
    if v6 {
        match buf.get_mut(l3 + 7) {
            Some(h) if *h > 1 => {
                *h -= 1;
                true
            }
            _ => false,
        }
    } else {
        let Some(&ttl) = buf.get(l3 + 8) else {
            return false;
        };
        if ttl <= 1 {
            return false;
        }
        let Some(old) = rd16(buf, l3 + 8) else {
            return false;
        };
        buf[l3 + 8] = ttl - 1;
        let new = old - 0x0100;
        let csum = rd16(buf, l3 + 10).unwrap_or(0);
        wr16(buf, l3 + 10, checksum::update16(csum, old, new));
        true
    }
}

/// Offsets of the address fields: (src, dst, len).
const fn addr_fields(v6: bool) -> (usize, usize, usize) {
    if v6 { (8, 24, 16) } else { (12, 16, 4) }
}

/// Replace an address (`which` = src or dst offset) and a port at `port_at` (absolute, or
/// None), fixing the IPv4 header checksum and the L4 checksum at `l4` for `proto`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn rewrite(
    buf: &mut [u8],
    l3: usize,
    l4: usize,
    l4_end: usize,
    v6: bool,
    proto: u8,
    addr_at: usize,
    new_addr: &Addr16,
    port_at: usize,
    new_port: u16,
) -> bool {
    let (_, _, alen) = addr_fields(v6);
    let a = l3 + addr_at;
    let Some(old_addr) = buf.get(a..a + alen).map(|s| {
        let mut o = [0u8; 16];
        o[..alen].copy_from_slice(s);
        o
    }) else {
        return false;
    };
    let Some(old_port) = rd16(buf, port_at) else {
        return false;
    };
    buf[a..a + alen].copy_from_slice(&new_addr[..alen]);
    if !v6 {
        let c = rd16(buf, l3 + 10).unwrap_or(0);
        wr16(
            buf,
            l3 + 10,
            checksum::update_bytes(c, &old_addr[..4], &new_addr[..4]),
        );
    }
    wr16(buf, port_at, new_port);
    match proto {
        6 => {
            let at = l4 + 16;
            let Some(c) = rd16(buf, at) else { return false };
            let c = checksum::update_bytes(c, &old_addr[..alen], &new_addr[..alen]);
            wr16(buf, at, checksum::update16(c, old_port, new_port));
        }
        17 => {
            let at = l4 + 6;
            let Some(c) = rd16(buf, at) else { return false };
            if v6 {
                // IPv6 UDP checksums are mandatory: keep the 0 → 0xffff rule.
                let c = checksum::update_bytes(c, &old_addr[..alen], &new_addr[..alen]);
                let c = checksum::update16(c, old_port, new_port);
                wr16(buf, at, if c == 0 { 0xffff } else { c });
            } else {
                let c = checksum::update_bytes_udp(c, &old_addr[..alen], &new_addr[..alen]);
                wr16(buf, at, checksum::update16_udp(c, old_port, new_port));
            }
        }
        132 => {
            // SCTP's CRC32c covers only the SCTP packet: recompute it whole.
            let Some(seg) = buf.get_mut(l4..l4_end) else {
                return false;
            };
            if seg.len() < 12 {
                return false;
            }
            seg[8..12].copy_from_slice(&[0; 4]);
            let crc = !rvs_wire::sctp::crc32c::update(0xFFFF_FFFF, seg);
            seg[8..12].copy_from_slice(&crc.to_le_bytes());
        }
        _ => {}
    }
    true
}

fn forward(next_hop: std::net::IpAddr, offset: usize, len: usize) -> Action {
    Action::Forward(Egress {
        next_hop,
        offset,
        len,
    })
}

/// Transmit a client → real server packet of connection `idx`.
pub(crate) fn transmit_in(lb: &mut Balancer, idx: u32, p: &Parsed, f: &mut FrameBuf<'_>) -> Action {
    let c = lb.conns.get(idx);
    let method = ForwardMethod::from_u8(c.method);
    if method == ForwardMethod::Local {
        return Action::Pass;
    }
    let l3 = f.offset + p.l3;
    if !dec_ttl(f.buf, l3, p.v6) {
        return match crate::icmp::time_exceeded(lb, p, f) {
            Some(e) => Action::Reply(e),
            None => Action::Drop(DropReason::TtlExceeded),
        };
    }
    let (daddr, dport, dest_v6) = {
        let c = lb.conns.get(idx);
        (c.daddr, c.dport, c.dest_v6())
    };
    let next_hop = crate::addr::from16(&daddr, dest_v6);
    let len = p.l3 + p.ip_len;
    match method {
        ForwardMethod::DirectRoute => {
            if p.ip_len > usize::from(lb.cfg.mtu) {
                return too_big(lb, p, f, usize::from(lb.cfg.mtu));
            }
            forward(next_hop, f.offset, len)
        }
        ForwardMethod::Masq => {
            if p.ip_len > usize::from(lb.cfg.mtu) {
                return too_big(lb, p, f, usize::from(lb.cfg.mtu));
            }
            let (_, dst_at, _) = addr_fields(p.v6);
            let l4 = f.offset + p.l4;
            if !rewrite(
                f.buf,
                l3,
                l4,
                l3 + p.ip_len,
                p.v6,
                p.proto,
                dst_at,
                &daddr,
                l4 + 2,
                dport,
            ) {
                return Action::Drop(DropReason::Malformed);
            }
            forward(next_hop, f.offset, len)
        }
        ForwardMethod::Tunnel => encapsulate(lb, idx, p, f),
        ForwardMethod::Local => Action::Pass,
    }
}

fn too_big(lb: &mut Balancer, p: &Parsed, f: &mut FrameBuf<'_>, mtu: usize) -> Action {
    if (p.v6 || (p.df && lb.cfg.pmtu_disc))
        && let Some(e) = crate::icmp::frag_needed(lb, p, f, mtu)
    {
        return Action::Reply(e);
    }
    Action::Drop(DropReason::TooBig)
}

/// Transmit a real server → client reply (NAT): source becomes VIP:vport.
pub(crate) fn transmit_out(
    lb: &mut Balancer,
    idx: u32,
    p: &Parsed,
    f: &mut FrameBuf<'_>,
) -> Action {
    let (vaddr, vport, caddr, client_v6) = {
        let c = lb.conns.get(idx);
        (c.vaddr, c.vport, c.caddr, c.is_v6())
    };
    let l3 = f.offset + p.l3;
    if !dec_ttl(f.buf, l3, p.v6) {
        return Action::Drop(DropReason::TtlExceeded);
    }
    let (src_at, _, _) = addr_fields(p.v6);
    let l4 = f.offset + p.l4;
    if !rewrite(
        f.buf,
        l3,
        l4,
        l3 + p.ip_len,
        p.v6,
        p.proto,
        src_at,
        &vaddr,
        l4,
        vport,
    ) {
        return Action::Drop(DropReason::Malformed);
    }
    forward(
        crate::addr::from16(&caddr, client_v6),
        f.offset,
        p.l3 + p.ip_len,
    )
}

/// RFC 6040 normal mode: the outer ECN field copies the inner one except CE → ECT(0).
pub(crate) fn outer_tos(inner: u8) -> u8 {
    if inner & 0x03 == 0x03 {
        (inner & !0x03) | 0x02
    } else {
        inner
    }
}

/// UDP source port for GUE: a flow hash in the ephemeral range, so ECMP and RSS on the
/// real server spread tunnels by flow.
fn entropy_port(c: &Conn) -> u16 {
    let (a, b) = crate::addr::words(&c.caddr);
    let h = crate::hash::fold_mul(
        a ^ b.rotate_left(7) ^ u64::from(c.cport),
        0x9E37_79B9_7F4A_7C15,
    );
    0xC000 | (h as u16 & 0x3FFF)
}

/// Prepend the tunnel headers (spec 6.4) in the buffer's headroom (data packets and the
/// ICMP errors relayed for tunnel connections).
pub(crate) fn encapsulate(lb: &mut Balancer, idx: u32, p: &Parsed, f: &mut FrameBuf<'_>) -> Action {
    let (dest, daddr, outer_v6, eport) = {
        let c = lb.conns.get(idx);
        (c.dest, c.daddr, c.dest_v6(), entropy_port(c))
    };
    let dcfg = &lb.services.dest(dest).cfg;
    let (tunnel, csum) = (dcfg.tunnel, dcfg.tun_csum);
    let extra = match tunnel {
        TunnelType::Ipip => 0,
        TunnelType::Gue { .. } => 12,
        TunnelType::Gre => {
            if csum == TunnelCsum::NoCsum {
                4
            } else {
                8
            }
        }
    };
    let outer_ip = if outer_v6 { 40 } else { 20 };
    let overhead = outer_ip + extra;
    let mtu = usize::from(lb.cfg.mtu);
    let min_mtu = if p.v6 { 1280 } else { 68 };
    if p.ip_len + overhead > mtu {
        if mtu.saturating_sub(overhead) < min_mtu {
            return Action::Drop(DropReason::TooBig);
        }
        return too_big(lb, p, f, mtu - overhead);
    }
    let src: Addr16 = if outer_v6 {
        match lb.cfg.tunnel_src_v6 {
            Some(a) => a.octets(),
            None => return Action::Drop(DropReason::NoTunnelSource),
        }
    } else {
        match lb.cfg.tunnel_src_v4 {
            Some(a) => crate::addr::v4to16(a.octets()),
            None => return Action::Drop(DropReason::NoTunnelSource),
        }
    };
    if f.offset < overhead {
        return Action::Drop(DropReason::NoHeadroom);
    }
    let l2 = p.l3;
    let old = f.offset;
    let new = old - overhead;
    let l3 = old + l2;
    let (inner_tos, inner_ttl) = if p.v6 {
        let b0 = f.buf[l3];
        let b1 = f.buf[l3 + 1];
        (((b0 & 0x0f) << 4) | (b1 >> 4), f.buf[l3 + 7])
    } else {
        (f.buf[l3 + 1], f.buf[l3 + 8])
    };
    let inner_df = p.df;
    let inner_len = p.ip_len;
    let total = overhead + inner_len;
    let inner_proto: u8 = if p.v6 { 41 } else { 4 };
    let ip_proto = match tunnel {
        TunnelType::Ipip => inner_proto,
        TunnelType::Gue { .. } => 17,
        TunnelType::Gre => 47,
    };
    let ident = lb.next_ident();
    f.buf.copy_within(old..old + l2, new);
    wr16(
        f.buf,
        new + p.ethertype_at,
        if outer_v6 { ETH_IPV6 } else { ETH_IPV4 },
    );
    let o = new + l2;
    let tos = outer_tos(inner_tos);
    if outer_v6 {
        let h = &mut f.buf[o..o + 40];
        h[0] = 0x60 | (tos >> 4);
        h[1] = tos << 4;
        h[2] = 0;
        h[3] = 0;
        h[4..6].copy_from_slice(&((total - 40) as u16).to_be_bytes());
        h[6] = ip_proto;
        h[7] = inner_ttl;
        h[8..24].copy_from_slice(&src);
        h[24..40].copy_from_slice(&daddr);
    } else {
        let h = &mut f.buf[o..o + 20];
        h[0] = 0x45;
        h[1] = tos;
        h[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        h[4..6].copy_from_slice(&ident.to_be_bytes());
        let df = lb.cfg.pmtu_disc && inner_df;
        h[6..8].copy_from_slice(&(if df { 0x4000u16 } else { 0 }).to_be_bytes());
        h[8] = inner_ttl;
        h[9] = ip_proto;
        h[10..12].copy_from_slice(&[0, 0]);
        h[12..16].copy_from_slice(&src[..4]);
        h[16..20].copy_from_slice(&daddr[..4]);
        let cs = !checksum::data(h);
        h[10..12].copy_from_slice(&cs.to_be_bytes());
    }
    let t = o + outer_ip;
    match tunnel {
        TunnelType::Ipip => {}
        TunnelType::Gue { port } => {
            let ulen = (8 + 4 + inner_len) as u16;
            let sport = eport;
            let u = &mut f.buf[t..t + 12];
            u[0..2].copy_from_slice(&sport.to_be_bytes());
            u[2..4].copy_from_slice(&port.to_be_bytes());
            u[4..6].copy_from_slice(&ulen.to_be_bytes());
            u[6..8].copy_from_slice(&[0, 0]);
            // GUE variant 0 header: version 0, C 0, hlen 0, proto, flags 0
            u[8] = 0;
            u[9] = inner_proto;
            u[10] = 0;
            u[11] = 0;
            // IPv6 forbids a zero UDP checksum (RFC 8200 8.1), so an IPv6 outer header
            // always carries one; remote checksum offload is not implemented and sends a
            // full checksum too.
            if csum != TunnelCsum::NoCsum || outer_v6 {
                let seg = &f.buf[t..t + usize::from(ulen)];
                let ph = if outer_v6 {
                    checksum::pseudo_header_v6(&src.into(), &daddr.into(), 17, u32::from(ulen))
                } else {
                    checksum::pseudo_header_v4(
                        [src[0], src[1], src[2], src[3]].into(),
                        [daddr[0], daddr[1], daddr[2], daddr[3]].into(),
                        17,
                        u32::from(ulen),
                    )
                };
                let mut cs = !checksum::combine(&[ph, checksum::data(seg)]);
                if cs == 0 {
                    cs = 0xffff;
                }
                wr16(f.buf, t + 6, cs);
            }
        }
        TunnelType::Gre => {
            let ethertype = if p.v6 { ETH_IPV6 } else { ETH_IPV4 };
            let flags: u16 = if csum == TunnelCsum::NoCsum {
                0
            } else {
                0x8000
            };
            wr16(f.buf, t, flags);
            wr16(f.buf, t + 2, ethertype);
            if csum != TunnelCsum::NoCsum {
                wr16(f.buf, t + 4, 0);
                wr16(f.buf, t + 6, 0);
                let cs = !checksum::data(&f.buf[t..t + extra + inner_len]);
                wr16(f.buf, t + 4, cs);
            }
        }
    }
    Action::Forward(Egress {
        next_hop: crate::addr::from16(&daddr, outer_v6),
        offset: new,
        len: l2 + total,
    })
}
