//! Test helpers shared by rvs crates (dev-dependency only).
//!
//! The packet builder and the checksum checker here are deliberately written without
//! `rvs-wire`, so tests of the wire and core crates verify them against an independent
//! implementation.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::net::IpAddr;

/// Layer-4 part of a test packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum L4 {
    /// TCP segment.
    Tcp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Flags byte (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10).
        flags: u8,
        /// Sequence number.
        seq: u32,
        /// Acknowledgement number.
        ack: u32,
    },
    /// UDP datagram.
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
    },
    /// SCTP packet with one chunk of the given type (checksum computed).
    Sctp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Chunk type.
        chunk: u8,
    },
    /// ICMP/ICMPv6 message: type, code, 4-byte rest-of-header word; payload follows.
    Icmp {
        /// Type.
        ty: u8,
        /// Code.
        code: u8,
        /// Rest of header.
        word: u32,
    },
    /// Any protocol: the payload is the whole L4 part, written as given (no checksum is
    /// touched). With protocol 4 or 41 and an IP packet as payload this is IP-in-IP
    /// (RFC 2003, RFC 2473); see [`PacketSpec::ipip`].
    Raw {
        /// IP protocol / next header.
        proto: u8,
    },
    /// Generic UDP Encapsulation (draft-ietf-intarea-gue, variant 0): a UDP header, a
    /// 4-byte GUE header (version 0, no control flag, no options, protocol 4 or 41 from the
    /// inner packet's version) and the payload, an IP packet.
    Gue {
        /// UDP source port.
        sport: u16,
        /// UDP destination port.
        dport: u16,
        /// Compute the UDP checksum (else 0, which only IPv4 allows).
        checksum: bool,
    },
}

/// TCP flag bits.
pub mod flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// A packet to build.
#[derive(Clone, Debug)]
pub struct PacketSpec {
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// Optional 802.1Q VLAN id.
    pub vlan: Option<u16>,
    /// IP source.
    pub src: IpAddr,
    /// IP destination (same family as `src`).
    pub dst: IpAddr,
    /// TTL / hop limit.
    pub ttl: u8,
    /// IPv4 DF bit.
    pub df: bool,
    /// TOS / traffic class.
    pub tos: u8,
    /// IPv4 identification (default 0x1c46).
    pub ident: u16,
    /// L4 header.
    pub l4: L4,
    /// Payload after the L4 header.
    pub payload: Vec<u8>,
}

impl PacketSpec {
    /// A TCP packet with default MACs, TTL 64, DF set.
    pub fn tcp(src: &str, sport: u16, dst: &str, dport: u16, flags: u8) -> Self {
        Self::new(
            src,
            dst,
            L4::Tcp {
                sport,
                dport,
                flags,
                seq: 1000,
                ack: if flags & flags::ACK != 0 { 2000 } else { 0 },
            },
        )
    }

    /// A UDP datagram with default MACs, TTL 64, DF clear.
    pub fn udp(src: &str, sport: u16, dst: &str, dport: u16) -> Self {
        let mut s = Self::new(src, dst, L4::Udp { sport, dport });
        s.df = false;
        s
    }

    /// Any L4.
    pub fn new(src: &str, dst: &str, l4: L4) -> Self {
        Self {
            src_mac: [0x02, 0, 0, 0, 0, 0x01],
            dst_mac: [0x02, 0, 0, 0, 0, 0x02],
            vlan: None,
            src: src.parse().expect("valid source address"),
            dst: dst.parse().expect("valid destination address"),
            ttl: 64,
            df: true,
            tos: 0,
            ident: 0x1c46,
            l4,
            payload: Vec::new(),
        }
    }

    /// An IP-in-IP packet carrying `inner`, an IP packet (protocol 4 for IPv4 inside, 41
    /// for IPv6 inside), with default MACs, TTL 64, DF set.
    pub fn ipip(src: &str, dst: &str, inner: &[u8]) -> Self {
        let proto = if inner.first().is_some_and(|b| b >> 4 == 6) {
            41
        } else {
            4
        };
        Self::new(src, dst, L4::Raw { proto }).payload(inner)
    }

    /// Set the payload.
    pub fn payload(mut self, p: &[u8]) -> Self {
        self.payload = p.to_vec();
        self
    }

    /// Build the IP packet alone (what [`PacketSpec::build`] puts after the Ethernet
    /// header and VLAN tag).
    pub fn build_ip(&self) -> Vec<u8> {
        let f = self.build();
        let eth = if self.vlan.is_some() { 18 } else { 14 };
        f[eth..].to_vec()
    }

    /// Build the Ethernet frame.
    pub fn build(&self) -> Vec<u8> {
        let v6 = self.src.is_ipv6();
        let mut l4 = match &self.l4 {
            L4::Tcp {
                sport,
                dport,
                flags,
                seq,
                ack,
            } => {
                let mut h = vec![0u8; 20];
                h[0..2].copy_from_slice(&sport.to_be_bytes());
                h[2..4].copy_from_slice(&dport.to_be_bytes());
                h[4..8].copy_from_slice(&seq.to_be_bytes());
                h[8..12].copy_from_slice(&ack.to_be_bytes());
                h[12] = 5 << 4;
                h[13] = *flags;
                h[14..16].copy_from_slice(&65535u16.to_be_bytes());
                h
            }
            L4::Udp { sport, dport } => {
                let mut h = vec![0u8; 8];
                h[0..2].copy_from_slice(&sport.to_be_bytes());
                h[2..4].copy_from_slice(&dport.to_be_bytes());
                h[4..6].copy_from_slice(&((8 + self.payload.len()) as u16).to_be_bytes());
                h
            }
            L4::Sctp {
                sport,
                dport,
                chunk,
            } => {
                let mut h = vec![0u8; 12];
                h[0..2].copy_from_slice(&sport.to_be_bytes());
                h[2..4].copy_from_slice(&dport.to_be_bytes());
                h[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
                // one chunk header of 4 bytes + the payload as chunk value
                let clen = 4 + self.payload.len();
                h.extend_from_slice(&[*chunk, 0]);
                h.extend_from_slice(&(clen as u16).to_be_bytes());
                h
            }
            L4::Icmp { ty, code, word } => {
                let mut h = vec![*ty, *code, 0, 0];
                h.extend_from_slice(&word.to_be_bytes());
                h
            }
            L4::Raw { .. } => Vec::new(),
            L4::Gue { sport, dport, .. } => {
                let mut h = vec![0u8; 12];
                h[0..2].copy_from_slice(&sport.to_be_bytes());
                h[2..4].copy_from_slice(&dport.to_be_bytes());
                h[4..6].copy_from_slice(&((12 + self.payload.len()) as u16).to_be_bytes());
                h[9] = if self.payload.first().is_some_and(|b| b >> 4 == 6) {
                    41
                } else {
                    4
                };
                h
            }
        };
        l4.extend_from_slice(&self.payload);
        let proto = match self.l4 {
            L4::Tcp { .. } => 6,
            L4::Udp { .. } | L4::Gue { .. } => 17,
            L4::Sctp { .. } => 132,
            L4::Raw { proto } => proto,
            L4::Icmp { .. } => {
                if v6 {
                    58
                } else {
                    1
                }
            }
        };
        // pad SCTP chunk to 4 bytes
        if proto == 132 {
            while l4.len() % 4 != 0 {
                l4.push(0);
            }
        }
        let src = addr_bytes(&self.src);
        let dst = addr_bytes(&self.dst);
        match (&self.l4, proto) {
            (L4::Raw { .. }, _)
            | (
                L4::Gue {
                    checksum: false, ..
                },
                _,
            ) => {}
            (_, 6 | 17) => {
                let at = if proto == 6 { 16 } else { 6 };
                let c = l4_checksum(&src, &dst, proto, &l4);
                l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
            }
            (_, 132) => {
                let crc = crc32c(&l4);
                l4[8..12].copy_from_slice(&crc.to_le_bytes());
            }
            (_, 58) => {
                let c = l4_checksum(&src, &dst, 58, &l4);
                l4[2..4].copy_from_slice(&c.to_be_bytes());
            }
            _ => {
                let c = !sum(&l4);
                l4[2..4].copy_from_slice(&c.to_be_bytes());
            }
        }
        let ip = if v6 {
            let mut h = vec![0u8; 40];
            h[0] = 0x60 | (self.tos >> 4);
            h[1] = self.tos << 4;
            h[4..6].copy_from_slice(&(l4.len() as u16).to_be_bytes());
            h[6] = proto;
            h[7] = self.ttl;
            h[8..24].copy_from_slice(&src);
            h[24..40].copy_from_slice(&dst);
            h
        } else {
            let mut h = vec![0u8; 20];
            h[0] = 0x45;
            h[1] = self.tos;
            h[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
            h[4..6].copy_from_slice(&self.ident.to_be_bytes());
            if self.df {
                h[6] = 0x40;
            }
            h[8] = self.ttl;
            h[9] = proto;
            h[12..16].copy_from_slice(&src);
            h[16..20].copy_from_slice(&dst);
            let c = !sum(&h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            h
        };
        let mut f = Vec::new();
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&self.src_mac);
        if let Some(v) = self.vlan {
            f.extend_from_slice(&0x8100u16.to_be_bytes());
            f.extend_from_slice(&v.to_be_bytes());
        }
        f.extend_from_slice(&(if v6 { 0x86DDu16 } else { 0x0800 }).to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&l4);
        f
    }
}

fn addr_bytes(a: &IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// Plain RFC 1071 sum, two bytes at a time (independent of rvs-wire).
pub fn sum(b: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in b.chunks(2) {
        let w = (u32::from(c[0]) << 8) | u32::from(*c.get(1).unwrap_or(&0));
        s += w;
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

fn l4_checksum(src: &[u8], dst: &[u8], proto: u8, l4: &[u8]) -> u16 {
    let mut ph = Vec::new();
    ph.extend_from_slice(src);
    ph.extend_from_slice(dst);
    if src.len() == 4 {
        ph.extend_from_slice(&[0, proto]);
        ph.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    } else {
        ph.extend_from_slice(&(l4.len() as u32).to_be_bytes());
        ph.extend_from_slice(&[0, 0, 0, proto]);
    }
    ph.extend_from_slice(l4);
    let c = !sum(&ph);
    if proto == 17 && c == 0 { 0xffff } else { c }
}

/// CRC32c (Castagnoli), bitwise (independent reference).
pub fn crc32c(b: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &x in b {
        crc ^= u32::from(x);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// What a test wants to know about a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Ethertype after VLAN tags.
    pub ethertype: u16,
    /// IP source.
    pub src: IpAddr,
    /// IP destination.
    pub dst: IpAddr,
    /// Protocol / next header.
    pub proto: u8,
    /// TTL / hop limit.
    pub ttl: u8,
    /// IPv4 DF.
    pub df: bool,
    /// TOS / traffic class.
    pub tos: u8,
    /// L4 ports (0 when not TCP/UDP/SCTP).
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// TCP flags.
    pub tcp_flags: u8,
    /// Offset of the IP header in the frame.
    pub l3: usize,
    /// Offset of the L4 header in the frame.
    pub l4: usize,
    /// IP payload (after the IP header, up to the IP length).
    pub ip_payload: Vec<u8>,
}

/// Parse a frame (Ethernet, optional VLAN, IPv4 without options or IPv6 without extension
/// headers) and verify every checksum it carries. Errors name the first problem.
pub fn check_frame(f: &[u8]) -> Result<Summary, String> {
    let mut at = 12;
    let mut ty = u16::from_be_bytes([f[at], f[at + 1]]);
    if ty == 0x8100 {
        at += 4;
        ty = u16::from_be_bytes([f[at], f[at + 1]]);
    }
    let l3 = at + 2;
    let (src, dst, proto, ttl, df, tos, l4, end) = match ty {
        0x0800 => {
            let h = &f[l3..l3 + 20];
            if sum(h) != 0xffff {
                return Err("bad IPv4 header checksum".into());
            }
            let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
            if l3 + total > f.len() {
                return Err("IPv4 total length beyond frame".into());
            }
            (
                IpAddr::from([h[12], h[13], h[14], h[15]]),
                IpAddr::from([h[16], h[17], h[18], h[19]]),
                h[9],
                h[8],
                h[6] & 0x40 != 0,
                h[1],
                l3 + usize::from(h[0] & 0xf) * 4,
                l3 + total,
            )
        }
        0x86DD => {
            let h = &f[l3..l3 + 40];
            let plen = usize::from(u16::from_be_bytes([h[4], h[5]]));
            if l3 + 40 + plen > f.len() {
                return Err("IPv6 payload length beyond frame".into());
            }
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s.copy_from_slice(&h[8..24]);
            d.copy_from_slice(&h[24..40]);
            (
                IpAddr::from(s),
                IpAddr::from(d),
                h[6],
                h[7],
                true,
                ((h[0] & 0xf) << 4) | (h[1] >> 4),
                l3 + 40,
                l3 + 40 + plen,
            )
        }
        other => return Err(format!("not IP: ethertype {other:#06x}")),
    };
    let seg = &f[l4..end];
    let sb = addr_bytes(&src);
    let db = addr_bytes(&dst);
    let (mut sport, mut dport, mut tcp_flags) = (0, 0, 0);
    match proto {
        6 => {
            if l4_checksum(&sb, &db, 6, &zeroed(seg, 16)) != u16::from_be_bytes([seg[16], seg[17]])
            {
                return Err("bad TCP checksum".into());
            }
            sport = u16::from_be_bytes([seg[0], seg[1]]);
            dport = u16::from_be_bytes([seg[2], seg[3]]);
            tcp_flags = seg[13];
        }
        17 => {
            let c = u16::from_be_bytes([seg[6], seg[7]]);
            if (c != 0 || src.is_ipv6()) && l4_checksum(&sb, &db, 17, &zeroed(seg, 6)) != c {
                return Err("bad UDP checksum".into());
            }
            sport = u16::from_be_bytes([seg[0], seg[1]]);
            dport = u16::from_be_bytes([seg[2], seg[3]]);
        }
        132 => {
            let mut z = seg.to_vec();
            z[8..12].copy_from_slice(&[0; 4]);
            if crc32c(&z).to_le_bytes() != seg[8..12] {
                return Err("bad SCTP CRC32c".into());
            }
            sport = u16::from_be_bytes([seg[0], seg[1]]);
            dport = u16::from_be_bytes([seg[2], seg[3]]);
        }
        1 if sum(seg) != 0xffff => return Err("bad ICMP checksum".into()),
        58 if l4_checksum(&sb, &db, 58, &zeroed(seg, 2))
            != u16::from_be_bytes([seg[2], seg[3]]) =>
        {
            return Err("bad ICMPv6 checksum".into());
        }
        _ => {}
    }
    Ok(Summary {
        ethertype: ty,
        src,
        dst,
        proto,
        ttl,
        df,
        tos,
        sport,
        dport,
        tcp_flags,
        l3,
        l4,
        ip_payload: f[l4..end].to_vec(),
    })
}

fn zeroed(seg: &[u8], at: usize) -> Vec<u8> {
    let mut v = seg.to_vec();
    v[at] = 0;
    v[at + 1] = 0;
    v
}

/// Copy a frame into a buffer with `headroom` free bytes in front and `tailroom` after.
pub fn with_room(frame: &[u8], headroom: usize, tailroom: usize) -> Vec<u8> {
    let mut b = vec![0u8; headroom];
    b.extend_from_slice(frame);
    b.resize(headroom + frame.len() + tailroom, 0);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_frames_pass_their_own_check() {
        for spec in [
            PacketSpec::tcp("198.18.0.1", 1234, "198.18.1.1", 80, flags::SYN),
            PacketSpec::udp("2001:db8::1", 53, "2001:db8::2", 5353).payload(b"hello"),
            PacketSpec::new(
                "198.18.0.1",
                "198.18.0.2",
                L4::Sctp {
                    sport: 1,
                    dport: 2,
                    chunk: 1,
                },
            ),
        ] {
            let f = spec.build();
            let s = check_frame(&f).expect("valid frame");
            assert_eq!(s.src, spec.src);
        }
    }

    #[test]
    fn corrupted_checksum_detected() {
        let mut f = PacketSpec::tcp("198.18.0.1", 1234, "198.18.1.1", 80, flags::SYN).build();
        let n = f.len();
        f[n - 1] ^= 0xff; // inside the TCP header (window/urgent)
        assert!(check_frame(&f).is_err());
    }

    #[test]
    fn tunnels_wrap_an_inner_packet() {
        let inner = PacketSpec::tcp("198.18.0.1", 1234, "198.18.1.1", 80, flags::SYN).build_ip();
        let mut outer = PacketSpec::ipip("198.18.2.1", "198.19.0.2", &inner);
        outer.ident = 7;
        let f = outer.build();
        let s = check_frame(&f).expect("valid outer header");
        assert_eq!((s.proto, s.ip_payload.as_slice()), (4, inner.as_slice()));
        assert_eq!(&f[18..20], &[0, 7]);
        let v6 = PacketSpec::udp("2001:db8::1", 1, "2001:db8::2", 2).build_ip();
        assert_eq!(
            check_frame(&PacketSpec::ipip("198.18.2.1", "198.19.0.2", &v6).build())
                .unwrap()
                .proto,
            41
        );
        for checksum in [false, true] {
            let g = PacketSpec::new(
                "2001:db8:2::1",
                "2001:db8:9::2",
                L4::Gue {
                    sport: 0xc123,
                    dport: 6080,
                    checksum,
                },
            )
            .payload(&inner)
            .build();
            let s = check_frame(&g);
            // a zero UDP checksum is invalid over IPv6
            assert_eq!(s.is_ok(), checksum, "{s:?}");
            assert_eq!(&g[54 + 8..54 + 12], &[0, 4, 0, 0]);
            assert_eq!(&g[54 + 12..], inner.as_slice());
        }
    }

    #[test]
    fn crc32c_reference_vector() {
        // RFC 3720 B.4: 32 bytes of zeros
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
    }
}
