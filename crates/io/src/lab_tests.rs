//! Tests against the real kernel, inside namespaces they create (skipped when not root).
//!
//! Every address is from 198.18.0.0/15 or 2001:db8::/32, every wait is bounded, and the
//! namespaces are deleted on drop, also when an assertion fails.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::MacAddr;
use crate::neigh::{NeighCache, RouteKind, neigh_dump, proc_net_arp, route_get};
use crate::netns::{Pair, skip_reason};
use crate::nft::{DropHook, IngressDrop, Proto, VipPort, nft_unavailable};
use crate::packet::{Fanout, FanoutMode, PacketOpts, PacketSocket, ifindex, mac_of};

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

#[test]
fn neighbour_cache_resolves_the_peer_v4_and_v6() {
    let Some(lab) = lab("neigh") else { return };
    let b_mac = lab
        .b
        .run(|| mac_of(Pair::B_IF).expect("mac of veth-b"))
        .expect("entering ns b");
    lab.a
        .run(|| {
            let idx = ifindex(Pair::A_IF).expect("ifindex");
            let mut cache = NeighCache::default();
            for ip in [IpAddr::V4(Pair::B_V4), IpAddr::V6(Pair::B_V6)] {
                let now = Instant::now();
                assert_eq!(cache.get(now, idx, ip), None, "nothing cached yet");
                // Nothing has talked to b yet: the kernel table has no entry.
                let first = cache.resolve(now, idx, ip).expect("resolve");
                assert_eq!(first, None, "{ip} unresolved before any probe");
                let mac = cache
                    .resolve_wait(idx, ip, Duration::from_secs(5))
                    .expect("resolve_wait");
                assert_eq!(mac, Some(b_mac), "{ip} resolves to veth-b's MAC");
                assert_eq!(cache.get(Instant::now(), idx, ip), Some(b_mac), "cached");
            }
            // The kernel's own view agrees (netlink dump and /proc/net/arp).
            let dump = neigh_dump(None).expect("dump");
            for ip in [IpAddr::V4(Pair::B_V4), IpAddr::V6(Pair::B_V6)] {
                assert!(
                    dump.iter()
                        .any(|e| e.ip == ip && e.ifindex == idx && e.mac == Some(b_mac)),
                    "{ip} in {dump:?}"
                );
            }
            let arp = proc_net_arp().expect("/proc/thread-self/net/arp");
            assert!(
                arp.iter()
                    .any(|e| e.ip == Pair::B_V4 && e.mac == b_mac && e.complete()),
                "{arp:?}"
            );
        })
        .expect("entering ns a");
}

#[test]
fn route_lookup_gives_interface_and_next_hop() {
    let Some(lab) = lab("route") else { return };
    lab.a
        .ip(&["route", "add", "198.19.5.0/24", "via", "198.18.0.2"])
        .expect("route add");
    lab.a
        .ip(&[
            "-6",
            "route",
            "add",
            "2001:db8:5::/64",
            "via",
            "2001:db8::2",
        ])
        .expect("route add v6");
    lab.a
        .run(|| {
            let idx = ifindex(Pair::A_IF).expect("ifindex");
            let on_link = IpAddr::V4(Pair::B_V4);
            let r = route_get(on_link).expect("on-link route");
            assert_eq!(
                (r.kind, r.ifindex, r.gateway),
                (RouteKind::Unicast, idx, None)
            );
            assert_eq!(r.next_hop(on_link), on_link);
            assert_eq!(r.prefsrc, Some(IpAddr::V4(Pair::A_V4)));

            let far: IpAddr = "198.19.5.7".parse().expect("ip");
            let r = route_get(far).expect("gatewayed route");
            assert_eq!(r.ifindex, idx);
            assert_eq!(r.next_hop(far), IpAddr::V4(Pair::B_V4));

            let far6: IpAddr = "2001:db8:5::7".parse().expect("ip");
            let r = route_get(far6).expect("gatewayed v6 route");
            assert_eq!((r.ifindex, r.next_hop(far6)), (idx, IpAddr::V6(Pair::B_V6)));

            let local = route_get(IpAddr::V4(Pair::A_V4)).expect("local route");
            assert_eq!(local.kind, RouteKind::Local);

            // No default route in the namespace.
            let e = route_get("198.19.200.1".parse().expect("ip")).expect_err("unroutable");
            assert_eq!(e.kind(), std::io::ErrorKind::NetworkUnreachable, "{e}");
            assert!(e.to_string().contains("RTM_GETROUTE"), "{e}");
        })
        .expect("entering ns a");
}

#[test]
fn ingress_drop_hides_service_traffic_from_the_stack_not_from_the_packet_socket() {
    drop_hides_service_traffic(DropHook::Ingress, "nft");
}

/// The variant for the TC fast path: `inet` input/forward drops, and a packet socket
/// bound to IPv4 only (served after TC and netdev ingress).
#[test]
fn ip_drop_hides_service_traffic_from_the_stack_not_from_an_ipv4_socket() {
    drop_hides_service_traffic(DropHook::Ip, "nftip");
}

fn drop_hides_service_traffic(hook: DropHook, name: &str) {
    let Some(lab) = lab(name) else { return };
    if let Some(why) = nft_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    const PORT: u16 = 40003;
    const N: usize = 4;
    let svc = [VipPort::new(Proto::Udp, IpAddr::V4(Pair::A_V4), PORT)];
    let (guard, local, mut sock) = lab
        .a
        .run(|| {
            let g =
                IngressDrop::apply_at("rvs_test", &[Pair::A_IF], &svc, hook).expect("nft apply");
            let u = UdpSocket::bind((Pair::A_V4, PORT)).expect("bind in a");
            u.set_read_timeout(Some(Duration::from_millis(100)))
                .expect("timeout");
            let opts = PacketOpts {
                protocol: if hook == DropHook::Ingress {
                    libc::ETH_P_ALL as u16
                } else {
                    libc::ETH_P_IP as u16
                },
                ..PacketOpts::default()
            };
            let s = PacketSocket::open(Pair::A_IF, &opts).expect("open");
            (g, u, s)
        })
        .expect("entering ns a");
    let listed = lab.a.exec("nft", &["list", "tables"]).expect("nft list");
    assert!(
        String::from_utf8_lossy(&listed.stdout)
            .contains(&format!("table {} rvs_test", hook.family())),
        "table installed in ns a"
    );

    let send = |tag: &str| {
        lab.b
            .run(|| {
                let u = UdpSocket::bind((Pair::B_V4, 0)).expect("bind in b");
                for i in 0..N {
                    u.send_to(format!("{tag}-{i}").as_bytes(), (Pair::A_V4, PORT))
                        .expect("send");
                }
            })
            .expect("entering ns b");
    };
    send("dropped");
    // The packet socket sees all of them...
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen < N && Instant::now() < deadline {
        sock.recv_batch(Duration::from_millis(50), |f, _| {
            if parse_udp4(f).is_some_and(|(_, _, _, dp, _)| dp == PORT) {
                seen += 1;
            }
        })
        .expect("recv_batch");
    }
    assert_eq!(seen, N, "the packet socket got its copies");
    // ...the host stack none.
    let mut buf = [0u8; 64];
    assert!(
        local.recv_from(&mut buf).is_err(),
        "the stack must not see dropped traffic"
    );

    // Dropped from this (host-namespace) thread: the table goes from ns a.
    drop(guard);
    let listed = lab.a.exec("nft", &["list", "tables"]).expect("nft list");
    assert!(
        !String::from_utf8_lossy(&listed.stdout).contains("rvs_test"),
        "table removed from ns a"
    );
    send("passed");
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while got < N && Instant::now() < deadline {
        if let Ok((n, _)) = local.recv_from(&mut buf) {
            assert!(buf[..n].starts_with(b"passed-"));
            got += 1;
        }
    }
    assert_eq!(got, N, "without the table the stack receives again");
}

#[test]
fn both_probe_methods_make_the_kernel_resolve() {
    let Some(lab) = lab("probe") else { return };
    let b_mac = lab
        .b
        .run(|| mac_of(Pair::B_IF).expect("mac of veth-b"))
        .expect("entering ns b");
    lab.a
        .run(|| {
            use crate::neigh::tests::{probe_ntf_use, probe_udp};
            let idx = ifindex(Pair::A_IF).expect("ifindex");
            let wait_for = |ip: IpAddr| {
                let deadline = Instant::now() + Duration::from_secs(5);
                loop {
                    let d = neigh_dump(None).expect("dump");
                    if let Some(e) = d.iter().find(|e| e.ip == ip && e.usable()) {
                        return e.mac;
                    }
                    if Instant::now() > deadline {
                        return None;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            };
            probe_ntf_use(idx, IpAddr::V4(Pair::B_V4)).expect("NTF_USE accepted");
            assert_eq!(wait_for(IpAddr::V4(Pair::B_V4)), Some(b_mac), "via NTF_USE");
            probe_udp(idx, IpAddr::V6(Pair::B_V6)).expect("udp probe sent");
            assert_eq!(
                wait_for(IpAddr::V6(Pair::B_V6)),
                Some(b_mac),
                "via UDP probe"
            );
            // An address nobody has: an entry appears, unresolved.
            let ghost: IpAddr = "198.18.0.77".parse().expect("ip");
            probe_ntf_use(idx, ghost).expect("NTF_USE accepted");
            let d = neigh_dump(None).expect("dump");
            let e = d.iter().find(|e| e.ip == ghost).expect("entry created");
            assert!(!e.usable(), "{e:?}");
        })
        .expect("entering ns a");
}

/// Send `n` datagrams "{tag}-{i}" from b (bound to `from`) to `to`.
fn send_from_b(lab: &Pair, from: IpAddr, to: SocketAddr, tag: &str, n: usize) {
    lab.b
        .run(|| {
            let u = UdpSocket::bind((from, 0)).expect("bind in b");
            for i in 0..n {
                u.send_to(format!("{tag}-{i}").as_bytes(), to)
                    .expect("send");
            }
        })
        .expect("entering ns b");
}

/// Receive for up to 5 s until `want` UDP frames to `port` were seen; returns their
/// payloads and RxInfo.
fn collect(
    sock: &mut PacketSocket,
    port: u16,
    want: usize,
) -> Vec<(String, crate::packet::RxInfo)> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < want && Instant::now() < deadline {
        sock.recv_batch(Duration::from_millis(20), |f, info| {
            if let Some((_, _, _, dp, p)) = parse_udp4(f)
                && dp == port
            {
                got.push((String::from_utf8_lossy(p).into_owned(), info));
            }
        })
        .expect("recv_batch");
    }
    got
}

#[test]
fn vlan_tag_is_reported_in_rx_info() {
    let Some(lab) = lab("vlan") else { return };
    const PORT: u16 = 40004;
    let (mut rx, a_mac) = lab
        .a
        .run(|| {
            let s = PacketSocket::open(Pair::A_IF, &PacketOpts::default()).expect("open");
            (s, mac_of(Pair::A_IF).expect("mac"))
        })
        .expect("entering ns a");
    // No 8021q module needed: b sends 802.1Q-tagged frames through its own packet socket;
    // the receiving kernel moves the tag out of the frame into its metadata.
    let (mut tx, b_mac) = lab
        .b
        .run(|| {
            let s = PacketSocket::open(Pair::B_IF, &PacketOpts::default()).expect("open");
            (s, mac_of(Pair::B_IF).expect("mac"))
        })
        .expect("entering ns b");
    let src = SocketAddr::from((Pair::B_V4, 40006));
    let dst = SocketAddr::from((Pair::A_V4, PORT));
    let frames: Vec<Vec<u8>> = (0..3u16)
        .map(|i| {
            let mut f = udp4_frame(a_mac, b_mac, src, dst, format!("vlan-{i}").as_bytes());
            // TPID 0x8100, PCP 5, VID 100 + i.
            let tci = (5 << 13) | (100 + i);
            f.splice(12..12, [0x81, 0x00, (tci >> 8) as u8, tci as u8]);
            f
        })
        .collect();
    let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    assert_eq!(tx.send_batch(&refs).expect("send tagged"), 3);
    let mut got = collect(&mut rx, PORT, 3);
    got.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(got.len(), 3, "{got:?}");
    for (i, (payload, info)) in got.iter().enumerate() {
        assert_eq!(payload, &format!("vlan-{i}"));
        let tci = info.vlan_tci.expect("tag reported");
        assert_eq!((tci >> 13, tci & 0x0fff), (5, 100 + i as u16), "{info:?}");
        assert_eq!(info.vlan_tpid, 0x8100, "{info:?}");
    }
}

#[test]
fn fanout_group_shares_frames_between_sockets() {
    let Some(lab) = lab("fanout") else { return };
    const PORT: u16 = 40005;
    const N: usize = 20;
    let opts = PacketOpts {
        fanout: Some(Fanout {
            group_id: 0x5151,
            mode: FanoutMode::RoundRobin,
        }),
        ..PacketOpts::default()
    };
    let (mut s1, mut s2) = lab
        .a
        .run(|| {
            (
                PacketSocket::open(Pair::A_IF, &opts).expect("open 1"),
                PacketSocket::open(Pair::A_IF, &opts).expect("open 2"),
            )
        })
        .expect("entering ns a");
    send_from_b(
        &lab,
        IpAddr::V4(Pair::B_V4),
        SocketAddr::from((Pair::A_V4, PORT)),
        "fan",
        N,
    );
    let mut all: Vec<String> = Vec::new();
    let mut per_socket = [0usize; 2];
    let deadline = Instant::now() + Duration::from_secs(5);
    while all.len() < N && Instant::now() < deadline {
        for (k, s) in [&mut s1, &mut s2].into_iter().enumerate() {
            s.recv_batch(Duration::from_millis(10), |f, _| {
                if let Some((_, _, _, dp, p)) = parse_udp4(f)
                    && dp == PORT
                {
                    all.push(String::from_utf8_lossy(p).into_owned());
                    per_socket[k] += 1;
                }
            })
            .expect("recv_batch");
        }
    }
    all.sort();
    let mut want: Vec<String> = (0..N).map(|i| format!("fan-{i}")).collect();
    want.sort();
    assert_eq!(all, want, "every frame exactly once across the group");
    assert!(
        per_socket.iter().all(|&c| c > 0),
        "both sockets got a share: {per_socket:?}"
    );
}

#[test]
fn recv_batch_reports_a_vanished_interface() {
    let Some(lab) = lab("gone") else { return };
    let mut sock = lab
        .a
        .run(|| PacketSocket::open(Pair::A_IF, &PacketOpts::default()).expect("open"))
        .expect("entering ns a");
    lab.a.ip(&["link", "del", Pair::A_IF]).expect("link del");
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut result = Ok(0);
    while result.is_ok() && Instant::now() < deadline {
        result = sock.recv_batch(Duration::from_millis(50), |_, _| {});
    }
    let e = result.expect_err("an error once the interface is gone");
    assert!(e.to_string().contains(Pair::A_IF), "{e}");
    let e = sock
        .send_batch(&[&[0u8; 60]])
        .expect_err("cannot send either");
    assert!(e.to_string().contains("sendmmsg"), "{e}");
}
