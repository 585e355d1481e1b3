//! Tests against the real kernel, inside namespaces they create (skipped when not root).
//!
//! Every address is from 198.18.0.0/15 or 2001:db8::/32, every wait is bounded, and the
//! namespaces are deleted on drop, also when an assertion fails.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::MacAddr;
use crate::netns::{Pair, skip_reason};
use crate::packet::{PacketOpts, PacketSocket, mac_of};

/// Build the pair or print why the test is skipped.
fn lab(tag: &str) -> Option<Pair> {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return None;
    }
    Some(Pair::new(tag).expect("creating the namespace pair"))
}

/// RFC 1071 checksum of `data` with an initial sum.
fn csum(mut sum: u32, data: &[u8]) -> u16 {
    let mut it = data.chunks_exact(2);
    for w in &mut it {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [b] = it.remainder() {
        sum += u32::from(*b) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet + IPv4 + UDP frame with valid checksums.
fn udp4_frame(
    dst_mac: MacAddr,
    src_mac: MacAddr,
    src: SocketAddr,
    dst: SocketAddr,
    payload: &[u8],
) -> Vec<u8> {
    let (IpAddr::V4(s), IpAddr::V4(d)) = (src.ip(), dst.ip()) else {
        panic!("udp4_frame needs IPv4 addresses");
    };
    let udp_len = 8 + payload.len();
    let ip_len = 20 + udp_len;
    let mut f = Vec::with_capacity(14 + ip_len);
    f.extend_from_slice(&dst_mac.0);
    f.extend_from_slice(&src_mac.0);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&s.octets());
    ip[16..20].copy_from_slice(&d.octets());
    let c = csum(0, &ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    let mut udp = Vec::with_capacity(udp_len);
    udp.extend_from_slice(&src.port().to_be_bytes());
    udp.extend_from_slice(&dst.port().to_be_bytes());
    udp.extend_from_slice(&(udp_len as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let mut pseudo = 0u32;
    for w in s.octets().chunks(2).chain(d.octets().chunks(2)) {
        pseudo += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    pseudo += 17 + udp_len as u32;
    let c = match csum(pseudo, &udp) {
        0 => 0xffff,
        c => c,
    };
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&udp);
    f
}

/// A parsed IPv4/UDP frame: (src ip, dst ip, src port, dst port, payload).
fn parse_udp4(f: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr, u16, u16, &[u8])> {
    if f.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let ip = f.get(14..)?;
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    if *ip.get(9)? != 17 {
        return None;
    }
    let tot = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
    let src = Ipv4Addr::from(<[u8; 4]>::try_from(ip.get(12..16)?).ok()?);
    let dst = Ipv4Addr::from(<[u8; 4]>::try_from(ip.get(16..20)?).ok()?);
    let udp = ip.get(ihl..tot)?;
    let sp = u16::from_be_bytes([*udp.first()?, *udp.get(1)?]);
    let dp = u16::from_be_bytes([*udp.get(2)?, *udp.get(3)?]);
    Some((src, dst, sp, dp, udp.get(8..)?))
}

#[test]
fn packet_socket_receives_udp_sent_by_the_peer() {
    let Some(lab) = lab("rx") else { return };
    const N: usize = 16;
    const PORT: u16 = 40000;
    let (mut sock, a_mac) = lab
        .a
        .run(|| {
            let s = PacketSocket::open(Pair::A_IF, &PacketOpts::default()).expect("open");
            (s, mac_of(Pair::A_IF).expect("mac of veth-a"))
        })
        .expect("entering ns a");
    let (b_mac, b_port) = lab
        .b
        .run(|| {
            let u = UdpSocket::bind((Pair::B_V4, 0)).expect("bind in b");
            for i in 0..N {
                u.send_to(format!("rvs-rx-{i}").as_bytes(), (Pair::A_V4, PORT))
                    .expect("send_to");
            }
            (
                mac_of(Pair::B_IF).expect("mac of veth-b"),
                u.local_addr().expect("addr").port(),
            )
        })
        .expect("entering ns b");

    let ifx = sock.ifindex();
    let mut seen = [0u32; N];
    let mut own_icmp = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.contains(&0) && Instant::now() < deadline {
        sock.recv_batch(Duration::from_millis(50), |frame, info| {
            assert_eq!(info.ifindex, ifx);
            // Ignore ARP/ND and whatever else the kernel says on the link.
            if frame.get(12..14) == Some(&[0x08, 0x00]) && frame.get(23) == Some(&1) {
                // ICMP from a (port unreachable): our own stack's output.
                if frame.get(26..30) == Some(&Pair::A_V4.octets()) {
                    own_icmp += 1;
                }
            }
            let Some((src, dst, sp, dp, payload)) = parse_udp4(frame) else {
                return;
            };
            if dp != PORT {
                return;
            }
            assert_eq!(&frame[0..6], &a_mac.0, "destination MAC");
            assert_eq!(&frame[6..12], &b_mac.0, "source MAC");
            assert_eq!((src, dst, sp), (Pair::B_V4, Pair::A_V4, b_port));
            let text = std::str::from_utf8(payload).expect("utf-8 payload");
            let i: usize = text
                .strip_prefix("rvs-rx-")
                .and_then(|n| n.parse().ok())
                .expect("payload we sent");
            assert_eq!(info.vlan_tci, None);
            assert_eq!(info.wire_len as usize, frame.len());
            seen[i] += 1;
        })
        .expect("recv_batch");
    }
    assert!(seen.iter().all(|&c| c == 1), "each datagram once: {seen:?}");
    assert_eq!(
        own_icmp, 0,
        "PACKET_IGNORE_OUTGOING hides our host's own frames"
    );
    assert_eq!(sock.malformed(), 0);
    let st = sock.stats().expect("stats");
    assert_eq!(st.drops, 0);
}

#[test]
fn packet_socket_transmits_a_hand_built_frame() {
    let Some(lab) = lab("tx") else { return };
    const N: usize = 8;
    const PORT: u16 = 40001;
    let (receiver, b_mac) = lab
        .b
        .run(|| {
            let u = UdpSocket::bind((Pair::B_V4, PORT)).expect("bind in b");
            u.set_read_timeout(Some(Duration::from_millis(200)))
                .expect("read timeout");
            (u, mac_of(Pair::B_IF).expect("mac of veth-b"))
        })
        .expect("entering ns b");
    let (mut sock, a_mac) = lab
        .a
        .run(|| {
            let s = PacketSocket::open(Pair::A_IF, &PacketOpts::default()).expect("open");
            (s, mac_of(Pair::A_IF).expect("mac of veth-a"))
        })
        .expect("entering ns a");
    let src = SocketAddr::from((Pair::A_V4, 40002));
    let dst = SocketAddr::from((Pair::B_V4, PORT));
    let frames: Vec<Vec<u8>> = (0..N)
        .map(|i| udp4_frame(b_mac, a_mac, src, dst, format!("rvs-tx-{i}").as_bytes()))
        .collect();
    let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    let sent = sock.send_batch(&refs).expect("send_batch");
    assert_eq!(sent, N, "all frames accepted");

    let mut seen = [0u32; N];
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.contains(&0) && Instant::now() < deadline {
        let Ok((n, from)) = receiver.recv_from(&mut buf) else {
            continue;
        };
        assert_eq!(from, src);
        let text = std::str::from_utf8(&buf[..n]).expect("utf-8 payload");
        let i: usize = text
            .strip_prefix("rvs-tx-")
            .and_then(|n| n.parse().ok())
            .expect("payload we sent");
        seen[i] += 1;
    }
    assert!(
        seen.iter().all(|&c| c == 1),
        "each frame delivered once: {seen:?}"
    );
}

#[test]
fn send_batch_reports_the_bad_frame() {
    let Some(lab) = lab("txbad") else { return };
    let mut sock = lab
        .a
        .run(|| PacketSocket::open(Pair::A_IF, &PacketOpts::default()).expect("open"))
        .expect("entering ns a");
    let big = vec![0u8; 14 + 1500 + 100];
    let e = sock.send_batch(&[&big]).expect_err("frame above the MTU");
    assert_eq!(e.raw_os_error(), None);
    assert!(e.to_string().contains("sendmmsg"), "{e}");
    assert_eq!(sock.send_batch(&[]).expect("nothing to send"), 0);
}
