//! Tests of the AF_XDP path: pure ones (fallback, options, frame view) always; the
//! kernel ones in namespace pairs they create (skipped with a reason when not root, when
//! built without clang, or when the kernel refuses XDP).
//!
//! Every address is from 198.18.0.0/15 or 2001:db8::/32, every wait is bounded, and the
//! namespaces are deleted on drop, also when an assertion fails. The socket is dropped
//! inside its namespace (see [`in_a`]).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::*;
use crate::netns::{Pair, skip_reason};
use crate::packet::{PacketOpts, PacketSocket};

const VIP4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
const REAL4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 20);
const PORT: u16 = 9000;
const OTHER_PORT: u16 = 9001;
const WAIT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------
// Pure tests.

#[test]
fn missing_object_reports_built_without_clang() {
    let e = XdpProgram::load(&[], 16, 16, "lo", false).expect_err("an empty object cannot load");
    assert_eq!(e.kind(), io::ErrorKind::Unsupported);
    assert_eq!(e.to_string(), BUILT_WITHOUT_CLANG);
    // The socket fails the same way, before touching the interface or the kernel.
    let e = XdpSocket::open_with(&[&[], &[]], "rvs-nonexist0", &XdpOpts::default())
        .expect_err("no object, no socket");
    assert_eq!(e.kind(), io::ErrorKind::Unsupported);
    assert_eq!(e.to_string(), "AF_XDP unavailable: built without clang");
}

#[test]
fn object_is_embedded_when_clang_was_there() {
    // The build script embeds an ELF object, or nothing at all.
    if STEER_OBJ.is_empty() {
        eprintln!("note: {BUILT_WITHOUT_CLANG}");
        assert_eq!(xdp_unavailable().as_deref(), Some(BUILT_WITHOUT_CLANG));
    } else {
        assert_eq!(&STEER_OBJ[..4], b"\x7fELF");
        assert_eq!(&STEER_OBJ_ALT[..4], b"\x7fELF");
    }
}

#[test]
fn errno_found_through_the_wrapping() {
    #[derive(Debug, thiserror::Error)]
    #[error("load failed")]
    struct Load(#[source] io::Error);
    let e = aya_err(
        "bpf(BPF_PROG_LOAD)",
        "veth0",
        Load(io::Error::from_raw_os_error(ENOTSUPP)),
    );
    assert_eq!(raw_errno(&e), Some(ENOTSUPP));
    let e = os_err("x", "y", io::Error::from_raw_os_error(libc::EPERM));
    assert_eq!(raw_errno(&e), Some(libc::EPERM));
    assert_eq!(raw_errno(&io::Error::other("plain")), None);
}

/// Both builds of the program pass the verifier and the JIT here, so the fallback is
/// not dead weight.
#[test]
fn both_program_builds_load() {
    if let Some(why) = skip_reason().or_else(xdp_unavailable) {
        eprintln!("skipped: {why}");
        return;
    }
    for (name, obj) in [("steer.o", STEER_OBJ), ("steer-alt.o", STEER_OBJ_ALT)] {
        let mut p =
            XdpProgram::load(obj, 64, 1024, "-", false).unwrap_or_else(|e| panic!("{name}: {e}"));
        // The flow table takes entries and the counter array is mapped (BPF_F_MMAPABLE
        // honoured).
        let key = FlowKey {
            src: Pair::B_V4.into(),
            dst: VIP4.into(),
            proto: 17,
            sport: 1,
            dport: PORT,
        };
        let e = FlowEntry {
            rewrite: FlowRewrite::Route,
            ifindex: 1,
            src_mac: OWN_MAC,
            dst_mac: OWN_MAC,
            max_len: 1500,
            counter: 1023,
        };
        p.flow_insert(&key, &e)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(p.flow_counter(1023), (0, 0));
        assert_eq!(p.max_flows(), 1024);
    }
}

#[test]
fn opts_validation() {
    XdpOpts::default().validate().expect("defaults are valid");
    let bad = [
        XdpOpts {
            frame_size: 1024,
            ..Default::default()
        },
        XdpOpts {
            rx_frames: 1000,
            ..Default::default()
        },
        XdpOpts {
            tx_frames: 32,
            ..Default::default()
        },
        XdpOpts {
            queue: MAX_QUEUES,
            ..Default::default()
        },
        XdpOpts {
            max_rules: 0,
            ..Default::default()
        },
    ];
    for o in bad {
        let e = o.validate().expect_err("invalid options");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{o:?}");
    }
}

const OWN_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x0a]);

#[test]
fn rx_view_strips_the_outer_vlan_tag() {
    let mut f = Vec::new();
    f.extend_from_slice(&OWN_MAC.0);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x0b]);
    f.extend_from_slice(&[0x81, 0x00, 0x20, 0x05, 0x08, 0x00]);
    f.extend_from_slice(&[0x45; 20]);
    let mut want = f[..12].to_vec();
    want.extend_from_slice(&f[16..]);
    let (frame, info) = rx_view(&mut f, 7, OWN_MAC);
    assert_eq!(frame, want.as_slice());
    assert_eq!(info.vlan_tci, Some(0x2005));
    assert_eq!(info.vlan_tpid, 0x8100);
    assert_eq!(info.wire_len as usize, want.len());
    assert_eq!(info.ifindex, 7);
    assert_eq!(info.pkt_type, libc::PACKET_HOST);
    assert!(!info.csum_not_ready);
}

#[test]
fn rx_view_packet_types() {
    let frame_to = |dst: [u8; 6]| {
        let mut f = dst.to_vec();
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x0b, 0x08, 0x00]);
        f
    };
    for (dst, want) in [
        (OWN_MAC.0, libc::PACKET_HOST),
        ([0xff; 6], libc::PACKET_BROADCAST),
        ([0x33, 0x33, 0, 0, 0, 1], libc::PACKET_MULTICAST),
        ([0x02, 0, 0, 0, 0, 0x0c], libc::PACKET_OTHERHOST),
    ] {
        let mut f = frame_to(dst);
        let (frame, info) = rx_view(&mut f, 1, OWN_MAC);
        assert_eq!(info.pkt_type, want, "{dst:x?}");
        assert_eq!(info.vlan_tci, None);
        assert_eq!(frame.len(), 14);
    }
    // Runt frames do not panic.
    for n in 0..16 {
        let mut f = vec![0x81; n];
        let _ = rx_view(&mut f, 1, OWN_MAC);
    }
}

#[test]
fn aya_errors_keep_the_os_error_kind() {
    #[derive(Debug, thiserror::Error)]
    #[error("wrapped")]
    struct Wrap(#[source] io::Error);
    let e = aya_err(
        "bpf(test)",
        "veth0",
        Wrap(io::Error::from_raw_os_error(libc::EPERM)),
    );
    assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
    assert!(
        e.to_string().starts_with("bpf(test) (veth0): wrapped"),
        "{e}"
    );
}

#[test]
fn socket_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<XdpSocket>();
}

// ---------------------------------------------------------------------------------------
// Frame builders.

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

fn eth(dst: MacAddr, src: MacAddr, vlan: Option<u16>, ethertype: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(128);
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    if let Some(tci) = vlan {
        f.extend_from_slice(&0x8100u16.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// IPv4 + UDP after `f` (an Ethernet header), valid checksums; `frag` is the IPv4
/// flags/fragment-offset word (0x4000 = DF, 0x2000 = MF).
fn put_udp4(f: &mut Vec<u8>, src: SocketAddr, dst: SocketAddr, frag: u16, payload: &[u8]) {
    let (IpAddr::V4(s), IpAddr::V4(d)) = (src.ip(), dst.ip()) else {
        panic!("IPv4 addresses expected");
    };
    let udp_len = 8 + payload.len();
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + udp_len) as u16).to_be_bytes());
    ip[6..8].copy_from_slice(&frag.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&s.octets());
    ip[16..20].copy_from_slice(&d.octets());
    let c = csum(0, &ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    let mut udp = Vec::new();
    udp.extend_from_slice(&src.port().to_be_bytes());
    udp.extend_from_slice(&dst.port().to_be_bytes());
    udp.extend_from_slice(&(udp_len as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let mut pseudo = 17 + udp_len as u32;
    for w in s.octets().chunks(2).chain(d.octets().chunks(2)) {
        pseudo += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    let c = match csum(pseudo, &udp) {
        0 => 0xffff,
        c => c,
    };
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&udp);
}

/// IPv6 with a hop-by-hop and a destination-options header, then `l4` of protocol `nh`.
fn put_ip6_ext(f: &mut Vec<u8>, src: Ipv6Addr, dst: Ipv6Addr, nh: u8, l4: &[u8]) {
    let ext_len = 8 + 16;
    let mut ip = [0u8; 40];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&((ext_len + l4.len()) as u16).to_be_bytes());
    ip[6] = 0; // hop-by-hop
    ip[7] = 64;
    ip[8..24].copy_from_slice(&src.octets());
    ip[24..40].copy_from_slice(&dst.octets());
    f.extend_from_slice(&ip);
    // Hop-by-hop, 8 bytes: next = destination options, PadN.
    f.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]);
    // Destination options, 16 bytes: next = nh, PadN.
    f.extend_from_slice(&[nh, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    f.extend_from_slice(l4);
}

/// The UDP payload and destination port of an untagged IPv4 or IPv6 (no extension
/// header) frame, if it is UDP.
fn udp_of(frame: &[u8]) -> Option<(u16, &[u8])> {
    let l4 = match u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]) {
        0x0800 if *frame.get(23)? == 17 => 14 + usize::from(frame.get(14)? & 0x0f) * 4,
        0x86dd if *frame.get(20)? == 17 => 14 + 40,
        _ => return None,
    };
    let port = u16::from_be_bytes([*frame.get(l4 + 2)?, *frame.get(l4 + 3)?]);
    Some((port, frame.get(l4 + 8..)?))
}

// ---------------------------------------------------------------------------------------
// Kernel tests.

/// Build the pair, or print why the test is skipped.
fn lab(tag: &str) -> Option<Pair> {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return None;
    }
    if let Some(why) = xdp_unavailable() {
        eprintln!("skipped: {why}");
        return None;
    }
    let p = Pair::new(tag).expect("creating the namespace pair");
    p.a.ip(&["addr", "add", "198.18.0.10/32", "dev", Pair::A_IF])
        .expect("VIP on a");
    p.a.ip(&[
        "addr",
        "add",
        "2001:db8::10/128",
        "dev",
        Pair::A_IF,
        "nodad",
    ])
    .expect("IPv6 VIP on a");
    Some(p)
}

/// Run `f` inside namespace `a` (sockets made there stay there).
fn in_a<T: Send>(p: &Pair, f: impl FnOnce() -> T + Send) -> T {
    p.a.run(f).expect("joining namespace a")
}

fn in_b<T: Send>(p: &Pair, f: impl FnOnce() -> T + Send) -> T {
    p.b.run(f).expect("joining namespace b")
}

/// Open the socket on `veth-a`, or `None` (with the reason printed) when the kernel
/// refuses XDP on veth in this mode.
fn open_xdp(p: &Pair, mode: XdpMode) -> Option<XdpSocket> {
    let opts = XdpOpts {
        mode,
        ..XdpOpts::default()
    };
    match in_a(p, || XdpSocket::open(Pair::A_IF, &opts)) {
        Ok(s) => Some(s),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::Unsupported | io::ErrorKind::PermissionDenied
            ) =>
        {
            eprintln!("skipped: the kernel refuses XDP ({mode} mode) on veth: {e}");
            None
        }
        Err(e) => panic!("opening the AF_XDP socket ({mode}): {e}"),
    }
}

/// Close the socket from inside its namespace.
fn close(p: &Pair, s: XdpSocket) {
    in_a(p, move || drop(s));
}

/// Receive through `s` until `want` frames matched `keep` or the deadline passes.
fn collect(
    s: &mut XdpSocket,
    want: usize,
    mut keep: impl FnMut(&[u8], RxInfo) -> bool,
) -> Vec<(Vec<u8>, RxInfo)> {
    let deadline = Instant::now() + WAIT;
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < deadline {
        s.recv_batch(Duration::from_millis(50), |f, info| {
            if keep(f, info) {
                got.push((f.to_vec(), info));
            }
        })
        .expect("recv_batch");
    }
    got
}

fn udp_socket(addr: SocketAddr) -> UdpSocket {
    let u = UdpSocket::bind(addr).expect("bind");
    u.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("read timeout");
    u
}

/// Read datagrams from `u` until `want` arrived or the deadline passed.
fn read_datagrams(u: &UdpSocket, want: usize) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + WAIT;
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while out.len() < want && Instant::now() < deadline {
        match u.recv(&mut buf) {
            Ok(n) => out.push(buf[..n].to_vec()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("recv: {e}"),
        }
    }
    out
}

/// Whatever `u` has right now, without waiting.
fn drain(u: &UdpSocket) -> Vec<Vec<u8>> {
    u.set_nonblocking(true).expect("nonblocking");
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    for _ in 0..1000 {
        match u.recv(&mut buf) {
            Ok(n) => out.push(buf[..n].to_vec()),
            Err(_) => break,
        }
    }
    u.set_nonblocking(false).expect("blocking");
    out
}

/// Send `payloads` from namespace b to `dst` with a normal UDP socket.
fn send_from_b(p: &Pair, dst: SocketAddr, payloads: &[Vec<u8>]) {
    in_b(p, || {
        let any: SocketAddr = if dst.is_ipv4() {
            (Pair::B_V4, 0).into()
        } else {
            (Pair::B_V6, 0).into()
        };
        let u = UdpSocket::bind(any).expect("bind in b");
        for pl in payloads {
            u.send_to(pl, dst).expect("send_to");
        }
    });
}

fn payloads(tag: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("{tag}-{i:04}-{}", "x".repeat(i * 7)).into_bytes())
        .collect()
}

/// The steered datagrams arrive through `recv_batch` byte for byte; the others reach the
/// kernel's socket; nothing steered reaches the kernel. Run in both modes.
fn steering_in(mode: XdpMode) {
    let Some(p) = lab(&format!("xsteer-{mode}")) else {
        return;
    };
    let Some(mut s) = open_xdp(&p, mode) else {
        return;
    };
    assert_eq!(s.mode(), mode);
    s.set_rules(&[SteerRule::vip(Proto::Udp, VIP4.into(), PORT)])
        .expect("set_rules");
    let (k_vip, k_other) = in_a(&p, || {
        (
            udp_socket((VIP4, PORT).into()),
            udp_socket((VIP4, OTHER_PORT).into()),
        )
    });

    let steered = payloads("steered", 8);
    send_from_b(&p, (VIP4, PORT).into(), &steered);
    let passed = payloads("passed", 3);
    send_from_b(&p, (VIP4, OTHER_PORT).into(), &passed);

    let got = collect(&mut s, steered.len(), |f, _| {
        udp_of(f).is_some_and(|(port, _)| port == PORT)
    });
    let got: Vec<Vec<u8>> = got
        .iter()
        .map(|(f, info)| {
            assert_eq!(info.ifindex, s.ifindex());
            assert_eq!(info.pkt_type, libc::PACKET_HOST);
            assert_eq!(info.wire_len as usize, f.len());
            udp_of(f).expect("udp").1.to_vec()
        })
        .collect();
    assert_eq!(got, steered, "steered datagrams, in order and intact");
    assert_eq!(read_datagrams(&k_other, passed.len()), passed);
    assert!(
        drain(&k_vip).is_empty(),
        "the kernel must not see steered traffic"
    );

    let st = s.stats().expect("stats");
    assert!(st.program.steered_vip >= steered.len() as u64, "{st:?}");
    assert!(st.program.passed_no_match >= passed.len() as u64, "{st:?}");
    // ARP went to the kernel (the peer resolved the VIP).
    assert!(st.program.passed_not_ip >= 1, "{st:?}");
    assert_eq!(st.malformed, 0);

    // A zero timeout never blocks.
    let t = Instant::now();
    let n = s.recv_batch(Duration::ZERO, |_, _| {}).expect("recv");
    assert!(n <= 1, "only stray frames may be left");
    assert!(t.elapsed() < Duration::from_millis(100));
    close(&p, s);
}

#[test]
fn steers_vip_traffic_native() {
    steering_in(XdpMode::Native);
}

#[test]
fn steers_vip_traffic_generic() {
    steering_in(XdpMode::Generic);
}

#[test]
fn steers_ipv6_and_leaves_nd_to_the_kernel() {
    let Some(p) = lab("xsteer6") else {
        return;
    };
    let Some(mut s) = open_xdp(&p, XdpMode::Auto) else {
        return;
    };
    s.set_rules(&[SteerRule::vip(Proto::Udp, VIP6.into(), 0)])
        .expect("set_rules (any port)");
    let k_tcp = in_a(&p, || {
        std::net::TcpListener::bind((VIP6, 22)).expect("listen in a")
    });
    let steered = payloads("v6", 4);
    send_from_b(&p, (VIP6, PORT).into(), &steered[..2]);
    send_from_b(&p, (VIP6, 53).into(), &steered[2..]);
    let got: Vec<Vec<u8>> = collect(&mut s, steered.len(), |f, _| udp_of(f).is_some())
        .iter()
        .map(|(f, _)| udp_of(f).expect("udp").1.to_vec())
        .collect();
    assert_eq!(got, steered);
    // TCP to the same address is not a rule's: the kernel accepts the connection
    // (neighbour discovery for the VIP went through the kernel too).
    let ok = in_b(&p, || {
        std::net::TcpStream::connect_timeout(&(VIP6, 22).into(), WAIT).is_ok()
    });
    assert!(ok, "TCP to a non-steered port reaches the kernel");
    drop(k_tcp);
    let st = s.stats().expect("stats");
    assert!(st.program.passed_nd >= 1, "{st:?}");
    close(&p, s);
}

#[test]
fn hand_built_frames_vlan_ext_headers_fragments_real_servers() {
    let Some(p) = lab("xframes") else {
        return;
    };
    let Some(mut s) = open_xdp(&p, XdpMode::Auto) else {
        return;
    };
    s.set_rules(&[
        SteerRule::vip(Proto::Udp, VIP4.into(), PORT),
        SteerRule::vip(Proto::Udp, VIP6.into(), PORT),
        SteerRule::real(Proto::Udp, REAL4.into(), 8080),
    ])
    .expect("set_rules");
    assert_eq!(s.rule_keys(), 6);
    let a_mac = in_a(&p, || mac_of(Pair::A_IF)).expect("mac a");
    let b_mac = in_b(&p, || mac_of(Pair::B_IF)).expect("mac b");
    let client: SocketAddr = (Pair::B_V4, 40000).into();

    // 1. VLAN-tagged UDP to the VIP: steered, tag reported and stripped.
    let mut tagged = eth(a_mac, b_mac, Some(0x0123), 0x0800);
    put_udp4(&mut tagged, client, (VIP4, PORT).into(), 0x4000, b"tagged");
    // 2. IPv6 with two extension headers to the v6 VIP.
    let mut udp6 = Vec::new();
    udp6.extend_from_slice(&40000u16.to_be_bytes());
    udp6.extend_from_slice(&PORT.to_be_bytes());
    udp6.extend_from_slice(&14u16.to_be_bytes());
    udp6.extend_from_slice(&[0, 0]);
    udp6.extend_from_slice(b"ext-hd");
    let mut ext6 = eth(a_mac, b_mac, None, 0x86dd);
    put_ip6_ext(&mut ext6, Pair::B_V6, VIP6, 17, &udp6);
    // 3. A first fragment (MF) to the VIP on another port: fragments go by address.
    let mut frag = eth(a_mac, b_mac, None, 0x0800);
    put_udp4(&mut frag, client, (VIP4, 1234).into(), 0x2000, b"fragment");
    // 4. A NAT reply from the real server.
    let mut reply = eth(a_mac, b_mac, None, 0x0800);
    put_udp4(&mut reply, (REAL4, 8080).into(), client, 0, b"reply");
    // 5. From the real server's address but another port: not steered.
    let mut not_reply = eth(a_mac, b_mac, None, 0x0800);
    put_udp4(&mut not_reply, (REAL4, 8081).into(), client, 0, b"other");
    let frames = [&tagged, &ext6, &frag, &reply, &not_reply];

    let before = s.stats().expect("stats").program;
    in_b(&p, || {
        let mut ps = PacketSocket::open(Pair::B_IF, &PacketOpts::default()).expect("packet socket");
        let batch: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
        assert_eq!(ps.send_batch(&batch).expect("send"), batch.len());
    });
    let got = collect(&mut s, 4, |_, _| true);
    let find = |needle: &[u8]| {
        got.iter()
            .find(|(f, _)| f.windows(needle.len()).any(|w| w == needle))
            .unwrap_or_else(|| {
                panic!(
                    "{:?} not steered; got {got:x?}",
                    String::from_utf8_lossy(needle)
                )
            })
    };
    let (f, info) = find(b"tagged");
    assert_eq!(info.vlan_tci, Some(0x0123));
    assert_eq!(info.vlan_tpid, 0x8100);
    let mut untagged = tagged[..12].to_vec();
    untagged.extend_from_slice(&tagged[16..]);
    assert_eq!(f, &untagged, "tag stripped, rest intact");
    assert_eq!(&find(b"ext-hd").0, &ext6);
    assert_eq!(&find(b"fragment").0, &frag);
    assert_eq!(&find(b"reply").0, &reply);
    assert!(
        !got.iter().any(|(f, _)| f.ends_with(b"other")),
        "a real server's other ports stay with the kernel"
    );
    let after = s.stats().expect("stats").program;
    assert_eq!(after.steered_vip - before.steered_vip, 2, "{after:?}");
    assert_eq!(after.steered_fragment - before.steered_fragment, 1);
    assert_eq!(after.steered_real - before.steered_real, 1);
    assert!(after.passed_no_match > before.passed_no_match);
    close(&p, s);
}

#[test]
fn send_batch_reaches_a_socket_of_the_peer() {
    let Some(p) = lab("xsend") else {
        return;
    };
    let Some(mut s) = open_xdp(&p, XdpMode::Auto) else {
        return;
    };
    let a_mac = in_a(&p, || mac_of(Pair::A_IF)).expect("mac a");
    let b_mac = in_b(&p, || mac_of(Pair::B_IF)).expect("mac b");
    let dst: SocketAddr = (Pair::B_V4, 7000).into();
    let u = in_b(&p, || udp_socket(dst));
    // More frames than one copy-mode sendto(2) sends (32), and than the TX ring holds in
    // one batch, over several calls.
    let sent = payloads("tx", 100);
    let frames: Vec<Vec<u8>> = sent
        .iter()
        .map(|pl| {
            let mut f = eth(b_mac, a_mac, None, 0x0800);
            put_udp4(&mut f, (Pair::A_V4, 4000).into(), dst, 0x4000, pl);
            f
        })
        .collect();
    let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    let mut done = 0;
    let deadline = Instant::now() + WAIT;
    while done < refs.len() && Instant::now() < deadline {
        done += s.send_batch(&refs[done..]).expect("send_batch");
    }
    assert_eq!(done, refs.len());
    assert_eq!(read_datagrams(&u, sent.len()), sent);
    // Completions come back: every transmit frame is free again.
    let deadline = Instant::now() + WAIT;
    while s.tx_in_flight() > 0 && Instant::now() < deadline {
        s.send_batch(&[]).expect("reap");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(s.tx_in_flight(), 0);

    // Errors of the first frame; a bad later frame ends the batch.
    let e = s.send_batch(&[&[0u8; 10]]).expect_err("runt");
    assert_eq!(e.raw_os_error(), None);
    assert!(e.to_string().contains("send_batch"), "{e}");
    let big = vec![0u8; 3000];
    let e = s.send_batch(&[&big]).expect_err("too big");
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<crate::OsError>());
    assert_eq!(
        inner.and_then(|o| o.cause.raw_os_error()),
        Some(libc::EMSGSIZE)
    );
    assert_eq!(s.send_batch(&[refs[0], &big]).expect("first ok"), 1);
    assert_eq!(read_datagrams(&u, 1), vec![sent[0].clone()]);
    assert_eq!(s.stats().expect("stats").tx_invalid_descs, 0);
    close(&p, s);
}

#[test]
fn rule_updates_and_drop_give_traffic_back_to_the_kernel() {
    let Some(p) = lab("xrules") else {
        return;
    };
    let Some(mut s) = open_xdp(&p, XdpMode::Auto) else {
        return;
    };
    let k = in_a(&p, || udp_socket((VIP4, PORT).into()));
    let dst: SocketAddr = (VIP4, PORT).into();
    let rule = SteerRule::vip(Proto::Udp, VIP4.into(), PORT);
    let steered_count = |s: &mut XdpSocket, n: usize| {
        collect(s, n, |f, _| udp_of(f).is_some_and(|(port, _)| port == PORT)).len()
    };

    // No rule yet: the kernel gets it.
    send_from_b(&p, dst, &payloads("none", 2));
    assert_eq!(read_datagrams(&k, 2).len(), 2);
    // With the rule: steered.
    s.set_rules(&[rule]).expect("add");
    send_from_b(&p, dst, &payloads("on", 2));
    assert_eq!(steered_count(&mut s, 2), 2);
    assert!(drain(&k).is_empty());
    // Replaced by another rule: the kernel again, and the stale keys are gone.
    let other = SteerRule::vip(Proto::Tcp, VIP4.into(), 80);
    s.set_rules(&[other]).expect("replace");
    assert_eq!(s.rule_keys(), 2);
    send_from_b(&p, dst, &payloads("off", 2));
    assert_eq!(read_datagrams(&k, 2).len(), 2);
    assert_eq!(
        s.recv_batch(Duration::from_millis(100), |_, _| {})
            .expect("recv"),
        0
    );
    // Too many keys for the map: refused, nothing changed.
    // (the default map holds 65,536 keys: 70,000 rules do not fit)
    let many: Vec<SteerRule> = (1..=65_535u16)
        .map(|port| SteerRule::vip(Proto::Udp, VIP4.into(), port))
        .chain((1..=4465u16).map(|port| SteerRule::vip(Proto::Tcp, VIP4.into(), port)))
        .collect();
    let e = s.set_rules(&many).expect_err("over max_rules");
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(s.rule_keys(), 2);

    // Steer again, then drop: the program is detached and the kernel gets everything.
    s.set_rules(&[rule]).expect("add again");
    send_from_b(&p, dst, &payloads("again", 1));
    assert_eq!(steered_count(&mut s, 1), 1);
    assert!(
        p.a.ip(&["link", "show", Pair::A_IF])
            .expect("ip link")
            .contains("xdp")
    );
    close(&p, s);
    // The kernel releases the link when the last descriptor goes; give it a moment in case
    // that release is deferred.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut link = p.a.ip(&["link", "show", Pair::A_IF]).expect("ip link");
    while link.contains("xdp") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        link = p.a.ip(&["link", "show", Pair::A_IF]).expect("ip link");
    }
    assert!(!link.contains("xdp"), "program still attached: {link}");
    send_from_b(&p, dst, &payloads("after-drop", 3));
    assert_eq!(read_datagrams(&k, 3).len(), 3);
}

// ---------------------------------------------------------------------------------------
// Benchmark, by hand:
// cargo test -p rvs-io --features testing --release xdp::tests::bench -- --ignored --nocapture

/// Frames the sender pushes; the run also ends after 10 s.
const BENCH_FRAMES: usize = 200_000;
const BENCH_LIMIT: Duration = Duration::from_secs(10);

/// What one receiver saw.
struct BenchRun {
    received: usize,
    sent: usize,
    elapsed: Duration,
}

/// Blast `BENCH_FRAMES` small UDP frames from a packet socket in b while `recv` counts
/// what arrives in a, for at most `BENCH_LIMIT`.
fn blast(p: &Pair, mut recv: impl FnMut(Duration) -> usize) -> BenchRun {
    let a_mac = in_a(p, || mac_of(Pair::A_IF)).expect("mac a");
    let b_mac = in_b(p, || mac_of(Pair::B_IF)).expect("mac b");
    let mut frame = eth(a_mac, b_mac, None, 0x0800);
    put_udp4(
        &mut frame,
        (Pair::B_V4, 40000).into(),
        (VIP4, PORT).into(),
        0x4000,
        &[0u8; 18],
    );
    let start = Instant::now();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|sc| {
        let sender = sc.spawn(|| {
            in_b(p, || {
                let opts = PacketOpts {
                    qdisc_bypass: true,
                    ..PacketOpts::default()
                };
                let mut ps = PacketSocket::open(Pair::B_IF, &opts).expect("packet socket");
                let batch = vec![frame.as_slice(); 64];
                let mut sent = 0;
                while sent < BENCH_FRAMES && start.elapsed() < BENCH_LIMIT {
                    let n = (BENCH_FRAMES - sent).min(batch.len());
                    match ps.send_batch(&batch[..n]) {
                        Ok(0) | Err(_) => std::thread::yield_now(),
                        Ok(k) => sent += k,
                    }
                }
                sent
            })
        });
        let mut received = 0;
        let mut last_rx = Instant::now();
        let mut first: Option<Instant> = None;
        let mut end = Instant::now();
        while received < BENCH_FRAMES && start.elapsed() < BENCH_LIMIT + Duration::from_secs(1) {
            let n = recv(Duration::from_millis(10));
            if n > 0 {
                first.get_or_insert_with(Instant::now);
                received += n;
                last_rx = Instant::now();
                end = last_rx;
            } else if sender.is_finished() && last_rx.elapsed() > Duration::from_millis(500) {
                break;
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let sent = sender.join().expect("sender");
        BenchRun {
            received,
            sent,
            elapsed: end.duration_since(first.unwrap_or(end)),
        }
    })
}

fn report(what: &str, r: &BenchRun) {
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    println!(
        "{what:<34} received {:>7}/{:>7} sent in {:>6.3} s: {:>9.0} frames/s",
        r.received,
        r.sent,
        secs,
        r.received as f64 / secs
    );
}

#[test]
#[ignore = "benchmark: run by hand with --ignored --nocapture"]
fn bench_xdp_vs_packet_socket() {
    for mode in [XdpMode::Native, XdpMode::Generic] {
        let Some(p) = lab(&format!("xbench-{mode}")) else {
            return;
        };
        let Some(mut s) = open_xdp(&p, mode) else {
            return;
        };
        s.set_rules(&[SteerRule::vip(Proto::Udp, VIP4.into(), PORT)])
            .expect("rules");
        let r = blast(&p, |t| s.recv_batch(t, |_, _| {}).expect("recv"));
        report(&format!("AF_XDP ({mode}, copy mode)"), &r);
        let st = s.stats().expect("stats");
        println!("    {st:?}");
        close(&p, s);
    }

    let Some(p) = lab("xbench-packet") else {
        return;
    };
    // The daemon's AF_PACKET setup: the ring, plus nftables dropping the VIP's traffic so
    // that the kernel does not answer it (when nft is there).
    let (mut ps, _nft) = in_a(&p, || {
        let ps = PacketSocket::open(Pair::A_IF, &PacketOpts::default()).expect("packet socket");
        let nft = crate::nft::nft_unavailable().is_none().then(|| {
            let svc = [crate::nft::VipPort::new(Proto::Udp, VIP4.into(), PORT)];
            crate::nft::IngressDrop::apply("rvs_bench", &[Pair::A_IF], &svc).expect("nft")
        });
        (ps, nft)
    });
    let r = blast(&p, |t| ps.recv_batch(t, |_, _| {}).expect("recv"));
    report("AF_PACKET (TPACKET_V3 + nft drop)", &r);
}
