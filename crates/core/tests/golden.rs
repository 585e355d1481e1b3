//! Golden table of packets: each row is a description, a service configuration, an input
//! frame, the expected action and the expected output frame (Katran's fixture table).
//!
//! Expected frames are built with rvs-testkit's [`PacketSpec`] from the rules of the IPVS
//! spec (6.2 NAT, 6.3 DR, 6.4 TUN, 6.6 ICMP, 5.11 no destination), never by copying what the
//! core produced, and compared byte for byte. The core leaves Ethernet addresses to the
//! caller, so forwarded frames keep the input's MACs; generated ICMP errors go back where
//! the frame came from, with the MACs swapped. The only values read back from the output
//! are those the spec leaves to the director: the IPv4 identification of headers it
//! creates ("fresh IP ID") and the GUE source port ("flow-hash entropy port", checked to be
//! in the ephemeral range); the expected frame is then built around them.

mod common;

use std::net::IpAddr;

use common::{HEADROOM, config, run};
use rvs_core::time::Instant;
use rvs_core::{
    Action, Balancer, DestConfig, DropReason, Egress, ForwardMethod, Protocol, ServiceConfig,
    ServiceKey, TunnelCsum, TunnelType,
};
use rvs_sched::{SchedFlags, SchedKind};
use rvs_testkit::{L4, PacketSpec, flags::*};

const CLIENT4: &str = "198.18.1.10";
const CLIENT6: &str = "2001:db8:1::10";
const VIP4: &str = "198.18.0.100";
const VIP6: &str = "2001:db8::100";
const RS4: &str = "198.19.0.2";
const RS6: &str = "2001:db8:9::2";
/// Tunnel sources of `common::config()`.
const TUN4: &str = "198.18.2.1";
const TUN6: &str = "2001:db8:2::1";
const GUE_PORT: u16 = 6080;

// ------------------------------------------------------------------ the row format

/// A virtual service with one real server.
#[derive(Clone, Copy, Debug)]
struct Setup {
    proto: Protocol,
    vip: &'static str,
    vport: u16,
    rs: &'static str,
    rport: u16,
    method: ForwardMethod,
    tunnel: TunnelType,
    csum: TunnelCsum,
    weight: i32,
}

impl Setup {
    fn new(proto: Protocol, vip: &'static str, vport: u16, method: ForwardMethod) -> Self {
        let v6 = vip.contains(':');
        Self {
            proto,
            vip,
            vport,
            rs: if v6 { RS6 } else { RS4 },
            rport: if method == ForwardMethod::Masq {
                vport + 8000
            } else {
                vport
            },
            method,
            tunnel: TunnelType::Ipip,
            csum: TunnelCsum::NoCsum,
            weight: 1,
        }
    }

    fn apply(&self, lb: &mut Balancer) {
        let key = ServiceKey::Addr {
            proto: self.proto,
            addr: self.vip.parse().expect("VIP"),
            port: self.vport,
        };
        lb.add_service(
            ServiceConfig {
                key,
                scheduler: SchedKind::Rr,
                sched_flags: SchedFlags::NONE,
                persistence: None,
                one_packet: false,
            },
            Instant::ZERO,
        )
        .expect("service added");
        let mut d = DestConfig::new(self.rs.parse().expect("RS"), self.rport);
        d.method = self.method;
        d.weight = self.weight;
        d.tunnel = self.tunnel;
        d.tun_csum = self.csum;
        lb.add_dest(&key, d).expect("destination added");
    }
}

/// Values the director chooses itself, read from the output frame.
#[derive(Clone, Copy, Debug)]
struct Chosen {
    /// IPv4 identification of the outer (or generated) header.
    ident: u16,
    /// UDP source port of a GUE outer header.
    gue_sport: u16,
}

type Build = Box<dyn Fn(Chosen) -> Vec<u8>>;

enum Expect {
    Pass,
    Drop(DropReason),
    /// Forwarded toward `next_hop`; a frame that grows (tunnel headers) grows into the
    /// headroom, anything else is rewritten in place.
    Forward(&'static str, Build),
    /// Replaced in place by an ICMP error for `next_hop`.
    Reply(&'static str, Build),
}

struct Row {
    name: &'static str,
    setup: Vec<Setup>,
    /// Frames processed first (the connection a later frame or ICMP error refers to).
    before: Vec<Vec<u8>>,
    input: Vec<u8>,
    expect: Expect,
}

fn row(name: &'static str, setup: Setup, input: Vec<u8>, expect: Expect) -> Row {
    Row {
        name,
        setup: vec![setup],
        before: Vec::new(),
        input,
        expect,
    }
}

fn fixed(frame: Vec<u8>) -> Build {
    Box::new(move |_| frame.clone())
}

/// RFC 6040 normal mode: the outer ECN copies the inner one, except CE becomes ECT(0).
fn outer_tos(inner: u8) -> u8 {
    if inner & 3 == 3 {
        (inner & !3) | 2
    } else {
        inner
    }
}

fn with_ttl(mut s: PacketSpec, ttl: u8) -> PacketSpec {
    s.ttl = ttl;
    s
}

// ------------------------------------------------------------------ forwarding matrix

/// The client's first packet to a service: a TCP SYN or a UDP datagram with a payload.
fn first_packet(s: &Setup) -> PacketSpec {
    let v6 = s.vip.contains(':');
    let client = if v6 { CLIENT6 } else { CLIENT4 };
    match s.proto {
        Protocol::Udp => PacketSpec::udp(client, 40_000, s.vip, s.vport).payload(b"query"),
        _ => PacketSpec::tcp(client, 40_000, s.vip, s.vport, SYN).payload(b"hello"),
    }
}

/// NAT (6.2): destination address and port become the real server's, TTL - 1, IP and L4
/// checksums valid.
fn nat_expect(s: &Setup, input: &PacketSpec) -> PacketSpec {
    let mut e = with_ttl(input.clone(), input.ttl - 1);
    e.dst = s.rs.parse().expect("RS");
    match &mut e.l4 {
        L4::Tcp { dport, .. } | L4::Udp { dport, .. } => *dport = s.rport,
        other => panic!("no port in {other:?}"),
    }
    e
}

/// TUN (6.4): the input, TTL - 1, inside an outer header from the director's tunnel
/// address to the real server; outer TTL = inner TTL after the decrement, outer TOS from
/// the inner one with CE as ECT(0), DF copied from the inner packet (IPv6 inner: always).
fn tunnel_expect(s: &Setup, input: &PacketSpec, c: Chosen) -> Vec<u8> {
    let inner = with_ttl(input.clone(), input.ttl - 1);
    let inner_ip = inner.build_ip();
    let outer_v6 = s.rs.contains(':');
    let src = if outer_v6 { TUN6 } else { TUN4 };
    let mut o = match s.tunnel {
        TunnelType::Ipip => PacketSpec::ipip(src, s.rs, &inner_ip),
        TunnelType::Gue { port } => {
            assert!(
                c.gue_sport >= 0xC000,
                "GUE source port {} outside the ephemeral range",
                c.gue_sport
            );
            PacketSpec::new(
                src,
                s.rs,
                L4::Gue {
                    sport: c.gue_sport,
                    dport: port,
                    // IPv6 forbids a zero UDP checksum (RFC 8200 8.1)
                    checksum: outer_v6 || s.csum != TunnelCsum::NoCsum,
                },
            )
            .payload(&inner_ip)
        }
        TunnelType::Gre => unreachable!("no GRE rows"),
    };
    o.src_mac = input.src_mac;
    o.dst_mac = input.dst_mac;
    o.vlan = input.vlan;
    o.ttl = inner.ttl;
    o.tos = outer_tos(input.tos);
    o.df = input.df || input.src.is_ipv6();
    o.ident = c.ident;
    o.build()
}

fn forwarding_rows() -> Vec<Row> {
    let mut rows = Vec::new();
    let methods: [(&str, ForwardMethod, TunnelType); 4] = [
        ("NAT", ForwardMethod::Masq, TunnelType::Ipip),
        ("DR", ForwardMethod::DirectRoute, TunnelType::Ipip),
        ("TUN-ipip", ForwardMethod::Tunnel, TunnelType::Ipip),
        (
            "TUN-gue",
            ForwardMethod::Tunnel,
            TunnelType::Gue { port: GUE_PORT },
        ),
    ];
    let names: [[[&str; 2]; 2]; 4] = [
        [
            ["NAT IPv4 TCP SYN", "NAT IPv4 UDP"],
            ["NAT IPv6 TCP SYN", "NAT IPv6 UDP"],
        ],
        [
            ["DR IPv4 TCP SYN", "DR IPv4 UDP"],
            ["DR IPv6 TCP SYN", "DR IPv6 UDP"],
        ],
        [
            ["TUN-ipip IPv4 TCP SYN", "TUN-ipip IPv4 UDP"],
            ["TUN-ipip IPv6 TCP SYN", "TUN-ipip IPv6 UDP"],
        ],
        [
            ["TUN-gue IPv4 TCP SYN", "TUN-gue IPv4 UDP"],
            ["TUN-gue IPv6 TCP SYN", "TUN-gue IPv6 UDP"],
        ],
    ];
    for (m, (_, method, tunnel)) in methods.into_iter().enumerate() {
        for (f, vip) in [VIP4, VIP6].into_iter().enumerate() {
            for (p, proto) in [Protocol::Tcp, Protocol::Udp].into_iter().enumerate() {
                let mut s = Setup::new(proto, vip, if p == 0 { 80 } else { 53 }, method);
                s.tunnel = tunnel;
                let input = first_packet(&s);
                let expect = match method {
                    ForwardMethod::Masq => {
                        Expect::Forward(s.rs, fixed(nat_expect(&s, &input).build()))
                    }
                    ForwardMethod::DirectRoute => {
                        Expect::Forward(s.rs, fixed(with_ttl(input.clone(), input.ttl - 1).build()))
                    }
                    _ => {
                        let i = input.clone();
                        Expect::Forward(s.rs, Box::new(move |c| tunnel_expect(&s, &i, c)))
                    }
                };
                rows.push(row(names[m][f][p], s, input.build(), expect));
            }
        }
    }

    // variations on the matrix
    let s = Setup::new(Protocol::Tcp, VIP4, 80, ForwardMethod::Masq);
    let mut input = first_packet(&s);
    input.vlan = Some(42);
    rows.push(row(
        "NAT IPv4 TCP through a VLAN tag (kept)",
        s,
        input.build(),
        Expect::Forward(s.rs, fixed(nat_expect(&s, &input).build())),
    ));

    let s = Setup::new(Protocol::Udp, VIP4, 53, ForwardMethod::Masq);
    let input = first_packet(&s);
    let mut bytes = input.build();
    bytes[14 + 20 + 6..14 + 20 + 8].copy_from_slice(&[0, 0]);
    let mut expect = nat_expect(&s, &input).build();
    expect[14 + 20 + 6..14 + 20 + 8].copy_from_slice(&[0, 0]);
    rows.push(row(
        "NAT IPv4 UDP without checksum (0 stays 0, RFC 768)",
        s,
        bytes,
        Expect::Forward(s.rs, fixed(expect)),
    ));

    let mut s = Setup::new(Protocol::Tcp, VIP4, 80, ForwardMethod::Tunnel);
    let mut input = first_packet(&s);
    input.tos = 0xb8 | 3; // EF, CE
    s.tunnel = TunnelType::Ipip;
    let i = input.clone();
    rows.push(row(
        "TUN-ipip IPv4 CE marked: outer ECN is ECT(0), DSCP copied (RFC 6040)",
        s,
        input.build(),
        Expect::Forward(s.rs, Box::new(move |c| tunnel_expect(&s, &i, c))),
    ));

    let mut s = Setup::new(Protocol::Udp, VIP4, 53, ForwardMethod::Tunnel);
    s.rs = RS6;
    let input = first_packet(&s);
    let i = input.clone();
    rows.push(row(
        "TUN-ipip IPv4 service to an IPv6 real server (4in6)",
        s,
        input.build(),
        Expect::Forward(RS6, Box::new(move |c| tunnel_expect(&s, &i, c))),
    ));

    let mut s = Setup::new(Protocol::Tcp, VIP4, 80, ForwardMethod::Tunnel);
    s.tunnel = TunnelType::Gue { port: GUE_PORT };
    s.csum = TunnelCsum::Csum;
    let input = first_packet(&s);
    let i = input.clone();
    rows.push(row(
        "TUN-gue IPv4 with --tun-csum (outer UDP checksum)",
        s,
        input.build(),
        Expect::Forward(RS4, Box::new(move |c| tunnel_expect(&s, &i, c))),
    ));

    // NAT replies (6.2 outbound): source becomes VIP:vport
    for (name, proto, vip, vport) in [
        (
            "NAT IPv4 TCP reply from the real server",
            Protocol::Tcp,
            VIP4,
            80,
        ),
        (
            "NAT IPv6 UDP reply from the real server",
            Protocol::Udp,
            VIP6,
            53,
        ),
    ] {
        let s = Setup::new(proto, vip, vport, ForwardMethod::Masq);
        let first = first_packet(&s);
        let client = first.src.to_string();
        let reply = match proto {
            Protocol::Udp => PacketSpec::udp(s.rs, s.rport, &client, 40_000).payload(b"answer"),
            _ => PacketSpec::tcp(s.rs, s.rport, &client, 40_000, SYN | ACK).payload(b"hi"),
        };
        let mut expect = with_ttl(reply.clone(), 63);
        expect.src = vip.parse().expect("VIP");
        match &mut expect.l4 {
            L4::Tcp { sport, .. } | L4::Udp { sport, .. } => *sport = vport,
            _ => unreachable!(),
        }
        rows.push(Row {
            name,
            setup: vec![s],
            before: vec![first.build()],
            input: reply.build(),
            expect: Expect::Forward(
                if vip.contains(':') { CLIENT6 } else { CLIENT4 },
                fixed(expect.build()),
            ),
        });
    }

    // an established flow (SYN first, then data)
    let s = Setup::new(Protocol::Tcp, VIP6, 443, ForwardMethod::DirectRoute);
    let data = PacketSpec::tcp(CLIENT6, 40_000, VIP6, 443, ACK | PSH).payload(&[7u8; 300]);
    rows.push(Row {
        name: "DR IPv6 TCP data on an established connection",
        setup: vec![s],
        before: vec![first_packet(&s).build()],
        input: data.build(),
        expect: Expect::Forward(RS6, fixed(with_ttl(data, 63).build())),
    });
    rows
}

// ------------------------------------------------------------------ ICMP

/// The first `n` bytes of an IP packet, as an ICMP error quotes it.
fn quote(spec: &PacketSpec, n: usize) -> Vec<u8> {
    let ip = spec.build_ip();
    ip[..n.min(ip.len())].to_vec()
}

/// An ICMP (IPv4) or ICMPv6 error.
fn icmp_error(src: &str, dst: &str, (ty, code): (u8, u8), word: u32, quoted: &[u8]) -> PacketSpec {
    PacketSpec::new(src, dst, L4::Icmp { ty, code, word }).payload(quoted)
}

/// An ICMP error the director generates for the sender of `input` (5.11, 6.1): back to
/// where the frame came from (MACs swapped), from the address the client used, TTL 64,
/// IPv4 TOS 0xc0 and no DF, quoting as much of `quoted` (the packet as it stood when the
/// error was found) as fits 576 (IPv4) or 1280 (IPv6) bytes.
fn generated(
    input: &PacketSpec,
    quoted: &PacketSpec,
    tc: (u8, u8),
    word: u32,
    c: Chosen,
) -> Vec<u8> {
    let v6 = input.src.is_ipv6();
    let q = quote(quoted, if v6 { 1280 - 48 } else { 576 - 28 });
    let mut e = icmp_error(&input.dst.to_string(), &input.src.to_string(), tc, word, &q);
    e.src_mac = input.dst_mac;
    e.dst_mac = input.src_mac;
    e.vlan = input.vlan;
    e.ttl = 64;
    e.df = false;
    e.tos = if v6 { 0 } else { 0xc0 };
    e.ident = c.ident;
    e.build()
}

fn icmp_rows() -> Vec<Row> {
    let mut rows = Vec::new();

    // 6.2: an error from the client about a reply (VIP -> client) of a NAT connection goes
    // to the real server: outer destination and quoted source become the RS, the quoted
    // source port becomes the RS port; the quoted L4 checksum is left alone (it is mostly
    // cut off anyway) and the ICMP checksum recomputed.
    for (name, vip, tc) in [
        (
            "NAT IPv4 ICMP port unreachable from the client, relayed to the RS",
            VIP4,
            (3, 3),
        ),
        (
            "NAT IPv6 ICMPv6 port unreachable from the client, relayed to the RS",
            VIP6,
            (1, 4),
        ),
    ] {
        let s = Setup::new(Protocol::Udp, vip, 53, ForwardMethod::Masq);
        let v6 = vip.contains(':');
        let client = if v6 { CLIENT6 } else { CLIENT4 };
        let hdr = if v6 { 48 } else { 28 };
        let reply_seen = PacketSpec::udp(vip, 53, client, 40_000).payload(b"answer");
        let input = icmp_error(client, vip, tc, 0, &quote(&reply_seen, hdr));
        let mut as_rs = quote(
            &PacketSpec::udp(s.rs, s.rport, client, 40_000).payload(b"answer"),
            hdr,
        );
        let orig = quote(&reply_seen, hdr);
        as_rs[hdr - 2..hdr].copy_from_slice(&orig[hdr - 2..hdr]);
        let expect = with_ttl(icmp_error(client, s.rs, tc, 0, &as_rs), 63);
        rows.push(Row {
            name,
            setup: vec![s],
            before: vec![first_packet(&s).build()],
            input: input.build(),
            expect: Expect::Forward(s.rs, fixed(expect.build())),
        });
    }

    // 6.2 outbound: an error from the NAT real server about client -> RS goes to the client
    // as if from the VIP (outer source, quoted destination and port rewritten).
    let s = Setup::new(Protocol::Udp, VIP4, 53, ForwardMethod::Masq);
    let sent_to_rs = PacketSpec::udp(CLIENT4, 40_000, s.rs, s.rport).payload(b"query");
    let input = icmp_error(s.rs, CLIENT4, (3, 3), 0, &quote(&sent_to_rs, 28));
    let mut as_vip = quote(
        &PacketSpec::udp(CLIENT4, 40_000, VIP4, 53).payload(b"query"),
        28,
    );
    as_vip[26..28].copy_from_slice(&quote(&sent_to_rs, 28)[26..28]);
    rows.push(Row {
        name: "NAT IPv4 ICMP error from the RS, sent to the client from the VIP",
        setup: vec![s],
        before: vec![first_packet(&s).build()],
        input: input.build(),
        expect: Expect::Forward(
            CLIENT4,
            fixed(with_ttl(icmp_error(VIP4, CLIENT4, (3, 3), 0, &as_vip), 63).build()),
        ),
    });

    // 6.3: DR relays inbound errors unchanged (but for the TTL)
    let s = Setup::new(Protocol::Tcp, VIP4, 80, ForwardMethod::DirectRoute);
    let seen = PacketSpec::tcp(VIP4, 80, CLIENT4, 40_000, SYN | ACK);
    let input = icmp_error(CLIENT4, VIP4, (3, 3), 0, &quote(&seen, 28));
    rows.push(Row {
        name: "DR IPv4 ICMP error from the client, relayed unchanged to the RS",
        setup: vec![s],
        before: vec![first_packet(&s).build()],
        input: input.build(),
        expect: Expect::Forward(RS4, fixed(with_ttl(input, 63).build())),
    });

    // 6.4: TUN relays them through the tunnel
    let s = Setup::new(Protocol::Tcp, VIP6, 80, ForwardMethod::Tunnel);
    let seen = PacketSpec::tcp(VIP6, 80, CLIENT6, 40_000, SYN | ACK);
    let input = icmp_error(CLIENT6, VIP6, (1, 4), 0, &quote(&seen, 48));
    let i = input.clone();
    rows.push(Row {
        name: "TUN-ipip IPv6 ICMPv6 error from the client, relayed through the tunnel",
        setup: vec![s],
        before: vec![first_packet(&s).build()],
        input: input.build(),
        expect: Expect::Forward(RS6, Box::new(move |c| tunnel_expect(&s, &i, c))),
    });

    // 6.4: frag-needed about our own IPIP packet becomes frag-needed for the client with
    // the MTU less the outer header
    let s = Setup::new(Protocol::Tcp, VIP4, 80, ForwardMethod::Tunnel);
    let inner = with_ttl(first_packet(&s), 63).build_ip();
    let mut ours = PacketSpec::ipip(TUN4, RS4, &inner);
    ours.ttl = 63;
    let router = "198.19.0.1";
    let input = icmp_error(router, TUN4, (3, 4), 1400, &ours.build_ip());
    let client_view = first_packet(&s);
    rows.push(Row {
        name: "TUN-ipip frag-needed (MTU 1400) from the path becomes frag-needed 1380 for the client",
        setup: vec![s],
        before: vec![first_packet(&s).build()],
        input: input.build(),
        expect: Expect::Reply(
            CLIENT4,
            Box::new(move |c| {
                let mut e = icmp_error(VIP4, CLIENT4, (3, 4), 1380, &inner);
                e.src_mac = client_view.dst_mac;
                e.dst_mac = client_view.src_mac;
                e.ttl = 64;
                e.df = false;
                e.tos = 0xc0;
                e.ident = c.ident;
                e.build()
            }),
        ),
    });

    // errors about nothing we know, informational messages and broken errors
    let s = Setup::new(Protocol::Udp, VIP4, 53, ForwardMethod::Masq);
    let unknown = PacketSpec::udp(VIP4, 53, CLIENT4, 1).payload(b"x");
    rows.push(row(
        "ICMP error about no connection: host stack",
        s,
        icmp_error(CLIENT4, VIP4, (3, 3), 0, &quote(&unknown, 28)).build(),
        Expect::Pass,
    ));
    rows.push(row(
        "ICMP echo request to the VIP: host stack",
        s,
        icmp_error(CLIENT4, VIP4, (8, 0), 0x0001_0001, b"ping").build(),
        Expect::Pass,
    ));
    let mut bad = icmp_error(CLIENT4, VIP4, (3, 3), 0, &quote(&unknown, 28)).build();
    let n = bad.len();
    bad[n - 1] ^= 0xff;
    rows.push(row(
        "ICMP error with a bad ICMP checksum: dropped",
        s,
        bad,
        Expect::Drop(DropReason::BadChecksum),
    ));

    // errors the director generates
    let mut s = Setup::new(Protocol::Tcp, VIP4, 80, ForwardMethod::DirectRoute);
    s.weight = 0;
    let input = first_packet(&s);
    let i = input.clone();
    rows.push(row(
        "no destination (weight 0): ICMP port unreachable to the client (5.11)",
        s,
        input.build(),
        Expect::Reply(CLIENT4, Box::new(move |c| generated(&i, &i, (3, 3), 0, c))),
    ));
    let mut s = Setup::new(Protocol::Udp, VIP6, 53, ForwardMethod::Masq);
    s.weight = 0;
    let input = first_packet(&s);
    let i = input.clone();
    rows.push(row(
        "no destination IPv6: ICMPv6 port unreachable to the client",
        s,
        input.build(),
        Expect::Reply(CLIENT6, Box::new(move |c| generated(&i, &i, (1, 4), 0, c))),
    ));
    let s = Setup::new(Protocol::Tcp, VIP4, 80, ForwardMethod::Masq);
    let input = with_ttl(first_packet(&s), 1);
    let i = input.clone();
    rows.push(row(
        "TTL 1: ICMP time exceeded to the client (6.1)",
        s,
        input.build(),
        Expect::Reply(CLIENT4, Box::new(move |c| generated(&i, &i, (11, 0), 0, c))),
    ));
    let s = Setup::new(Protocol::Tcp, VIP6, 80, ForwardMethod::DirectRoute);
    let input = with_ttl(first_packet(&s), 1);
    let i = input.clone();
    rows.push(row(
        "hop limit 1 IPv6: ICMPv6 time exceeded to the client",
        s,
        input.build(),
        Expect::Reply(CLIENT6, Box::new(move |c| generated(&i, &i, (3, 0), 0, c))),
    ));
    // the TTL is decremented before the MTU check (the kernel's __ip_vs_get_out_rt), so
    // the quoted packet shows TTL 63
    let s = Setup::new(Protocol::Tcp, VIP4, 80, ForwardMethod::DirectRoute);
    let input = first_packet(&s).payload(&[0u8; 1500]);
    let i = input.clone();
    rows.push(row(
        "DR IPv4 larger than the MTU with DF: frag-needed 1500 to the client (6.1)",
        s,
        input.build(),
        Expect::Reply(
            CLIENT4,
            Box::new(move |c| generated(&i, &with_ttl(i.clone(), 63), (3, 4), 1500, c)),
        ),
    ));
    let s = Setup::new(Protocol::Tcp, VIP6, 80, ForwardMethod::Tunnel);
    let input = first_packet(&s).payload(&[0u8; 1440]);
    let i = input.clone();
    rows.push(row(
        "TUN IPv6 over an IPv6 tunnel beyond the MTU: packet too big 1460 (6.4)",
        s,
        input.build(),
        Expect::Reply(
            CLIENT6,
            Box::new(move |c| generated(&i, &with_ttl(i.clone(), 63), (2, 0), 1460, c)),
        ),
    ));
    rows
}

// ------------------------------------------------------------------ malformed input

/// An IPv4 frame with fragment flags and offset set, header checksum fixed.
fn v4_fragment(spec: &PacketSpec, mf: bool, offset8: u16) -> Vec<u8> {
    let mut f = spec.build();
    let word = (u16::from(mf) << 13) | offset8 | if spec.df { 0x4000 } else { 0 };
    f[14 + 6..14 + 8].copy_from_slice(&word.to_be_bytes());
    f[14 + 10..14 + 12].copy_from_slice(&[0, 0]);
    let c = !rvs_testkit::sum(&f[14..34]);
    f[14 + 10..14 + 12].copy_from_slice(&c.to_be_bytes());
    f
}

fn malformed_rows() -> Vec<Row> {
    let tcp = Setup::new(Protocol::Tcp, VIP4, 80, ForwardMethod::Masq);
    let udp = Setup::new(Protocol::Udp, VIP4, 53, ForwardMethod::Masq);
    let udp6 = Setup::new(Protocol::Udp, VIP6, 53, ForwardMethod::Masq);
    let syn = first_packet(&tcp).build();
    let mut rows = Vec::new();

    let mut f = syn.clone();
    f[14 + 10] ^= 1;
    rows.push(row(
        "bad IPv4 header checksum",
        tcp,
        f,
        Expect::Drop(DropReason::BadChecksum),
    ));
    rows.push(row(
        "truncated in the Ethernet header",
        tcp,
        syn[..10].to_vec(),
        Expect::Drop(DropReason::Malformed),
    ));
    rows.push(row(
        "truncated in the IPv4 header",
        tcp,
        syn[..14 + 12].to_vec(),
        Expect::Drop(DropReason::Malformed),
    ));
    rows.push(row(
        "IPv4 total length beyond the frame",
        tcp,
        syn[..syn.len() - 3].to_vec(),
        Expect::Drop(DropReason::Malformed),
    ));
    let mut f = syn[..14 + 20 + 10].to_vec();
    f[14 + 2..14 + 4].copy_from_slice(&30u16.to_be_bytes());
    f[14 + 10..14 + 12].copy_from_slice(&[0, 0]);
    let c = !rvs_testkit::sum(&f[14..34]);
    f[14 + 10..14 + 12].copy_from_slice(&c.to_be_bytes());
    rows.push(row(
        "TCP header cut short (IPv4 length consistent) to a VIP",
        tcp,
        f,
        Expect::Drop(DropReason::Malformed),
    ));
    let mut f = syn;
    f[14] = 0x55; // version 5
    rows.push(row(
        "IP version field not 4 behind an IPv4 ethertype",
        tcp,
        f,
        Expect::Drop(DropReason::Malformed),
    ));
    let f6 = first_packet(&udp6).build();
    rows.push(row(
        "IPv6 payload length beyond the frame",
        udp6,
        f6[..f6.len() - 1].to_vec(),
        Expect::Drop(DropReason::Malformed),
    ));
    let frag = first_packet(&udp).payload(&[1u8; 32]);
    rows.push(row(
        "IPv4 first fragment (MF) to a VIP: dropped, rvs does not reassemble",
        udp,
        v4_fragment(&frag, true, 0),
        Expect::Drop(DropReason::Fragment),
    ));
    rows.push(row(
        "IPv4 later fragment (offset) to a VIP",
        udp,
        v4_fragment(&frag, false, 185),
        Expect::Drop(DropReason::Fragment),
    ));
    let elsewhere = PacketSpec::udp(CLIENT4, 1, "198.18.7.7", 53).payload(&[1u8; 32]);
    rows.push(row(
        "IPv4 fragment to an address that is no VIP: host stack",
        udp,
        v4_fragment(&elsewhere, true, 0),
        Expect::Pass,
    ));
    // IPv6 fragment header (next header 44) in front of the UDP datagram
    let dgram = first_packet(&udp6).build_ip()[40..].to_vec();
    let mut fh = vec![17, 0, 0, 1, 0, 0, 0x12, 0x34]; // offset 0, M = 1
    fh.extend_from_slice(&dgram);
    rows.push(row(
        "IPv6 fragment header to a VIP",
        udp6,
        PacketSpec::new(CLIENT6, VIP6, L4::Raw { proto: 44 })
            .payload(&fh)
            .build(),
        Expect::Drop(DropReason::Fragment),
    ));
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
    arp.extend_from_slice(&[0u8; 28]);
    rows.push(row("ARP: host stack", tcp, arp, Expect::Pass));
    rows.push(row(
        "TCP to a VIP port without a service: host stack",
        tcp,
        PacketSpec::tcp(CLIENT4, 1, VIP4, 22, SYN).build(),
        Expect::Pass,
    ));
    rows.push(row(
        "TCP ACK without a connection: dropped",
        tcp,
        PacketSpec::tcp(CLIENT4, 1, VIP4, 80, ACK).build(),
        Expect::Drop(DropReason::NoConnection),
    ));
    rows.push(row(
        "IPv4 GRE to a VIP: host stack (not a balanced protocol)",
        tcp,
        PacketSpec::new(CLIENT4, VIP4, L4::Raw { proto: 47 })
            .payload(&[0, 0, 8, 0])
            .build(),
        Expect::Pass,
    ));
    rows
}

// ------------------------------------------------------------------ the harness

/// Run one row; `Err` describes the first difference.
fn check(row: &Row) -> Result<(), String> {
    let now = Instant::from_secs(1);
    let mut lb = Balancer::new(config(), Instant::ZERO);
    for s in &row.setup {
        s.apply(&mut lb);
    }
    for f in &row.before {
        let (a, _) = run(&mut lb, now, f);
        if !matches!(a, Action::Forward(_)) {
            return Err(format!("setup frame not forwarded: {a:?}"));
        }
    }
    let (action, out) = run(&mut lb, now, &row.input);
    let (next_hop, build, reply) = match &row.expect {
        Expect::Pass => {
            return (action == Action::Pass)
                .then_some(())
                .ok_or(format!("{action:?}, expected Pass"));
        }
        Expect::Drop(r) => {
            return (action == Action::Drop(*r))
                .then_some(())
                .ok_or(format!("{action:?}, expected Drop({r:?})"));
        }
        Expect::Forward(h, b) => (h, b, false),
        Expect::Reply(h, b) => (h, b, true),
    };
    let out = out.ok_or(format!("no frame out: {action:?}"))?;
    let outer = if out.len() > 14 && out[12..14] == [0x86, 0xdd] {
        40
    } else {
        20
    };
    let chosen = Chosen {
        ident: u16::from_be_bytes([out[18], out[19]]),
        gue_sport: out
            .get(14 + outer..16 + outer)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]])),
    };
    let want = build(chosen);
    let next_hop: IpAddr = next_hop.parse().expect("next hop");
    let in_len = row.input.len();
    let offset = if reply || want.len() <= in_len {
        HEADROOM
    } else {
        HEADROOM - (want.len() - in_len)
    };
    let egress = Egress {
        next_hop,
        offset,
        len: want.len(),
    };
    let want_action = if reply {
        Action::Reply(egress)
    } else {
        Action::Forward(egress)
    };
    if action != want_action {
        return Err(format!("{action:?}, expected {want_action:?}"));
    }
    if out != want {
        let at = out.iter().zip(&want).position(|(a, b)| a != b);
        return Err(format!(
            "output differs at byte {at:?}\n   got {}\n  want {}",
            hex(&out),
            hex(&want)
        ));
    }
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn run_table(rows: Vec<Row>) {
    assert!(!rows.is_empty());
    let failures: Vec<String> = rows
        .iter()
        .filter_map(|r| check(r).err().map(|e| format!("{}: {e}", r.name)))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

#[test]
fn golden_forwarding_every_method_family_and_protocol() {
    let rows = forwarding_rows();
    assert!(rows.len() >= 16, "4 methods x 2 families x 2 protocols");
    run_table(rows);
}

#[test]
fn golden_icmp_relayed_and_generated() {
    run_table(icmp_rows());
}

#[test]
fn golden_malformed_truncated_and_fragments() {
    run_table(malformed_rows());
}

#[test]
fn golden_rows_also_hold_through_the_batch_path() {
    // the same table through process_batch, one frame per call after its setup frames
    use rvs_core::{FrameBuf, RxMeta};
    for r in forwarding_rows()
        .into_iter()
        .chain(icmp_rows())
        .chain(malformed_rows())
    {
        let now = Instant::from_secs(1);
        let mut one = Balancer::new(config(), Instant::ZERO);
        let mut batch = Balancer::new(config(), Instant::ZERO);
        for s in &r.setup {
            s.apply(&mut one);
            s.apply(&mut batch);
        }
        let frames: Vec<&Vec<u8>> = r.before.iter().chain([&r.input]).collect();
        let mut bufs: Vec<Vec<u8>> = frames
            .iter()
            .map(|f| rvs_testkit::with_room(f, HEADROOM, 64))
            .collect();
        let mut fbs: Vec<FrameBuf<'_>> = bufs
            .iter_mut()
            .zip(&frames)
            .map(|(b, f)| FrameBuf {
                buf: b,
                offset: HEADROOM,
                len: f.len(),
            })
            .collect();
        let mut actions = vec![Action::Pass; frames.len()];
        batch.process_batch(now, &[RxMeta::default()], &mut fbs, &mut actions);
        for (i, f) in frames.iter().enumerate() {
            let (a, out) = run(&mut one, now, f);
            assert_eq!(a, actions[i], "{}: frame {i}", r.name);
            if let Some(out) = out {
                let (Action::Forward(e) | Action::Reply(e)) = a else {
                    unreachable!("a frame out means forward or reply")
                };
                assert_eq!(
                    out,
                    bufs[i][e.offset..e.offset + e.len],
                    "{}: frame {i}",
                    r.name
                );
            }
        }
    }
}
