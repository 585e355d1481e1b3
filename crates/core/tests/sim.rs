//! In-memory simulation of client, director and real servers under a manual clock: whole
//! TCP and UDP exchanges through NAT, DR and TUN, IPv4 and IPv6.

mod common;

use common::*;
use rvs_core::time::{Duration, Instant};
use rvs_core::{Action, Balancer, DropReason, ForwardMethod, TunnelType};
use rvs_sched::SchedKind;
use rvs_testkit::{PacketSpec, check_frame, flags::*};

const VIP: &str = "198.18.0.100";
const CLIENT: &str = "198.18.1.10";
const RS1: &str = "198.19.0.2";
const RS2: &str = "198.19.0.3";

fn t(s: u64) -> Instant {
    Instant::from_secs(s)
}

#[test]
fn nat_whole_tcp_connection_v4() {
    let mut lb = Balancer::new(config(), t(0));
    let key = tcp_key(VIP, 80);
    lb.add_service(svc(key, SchedKind::Rr), t(0)).unwrap();
    lb.add_dest(&key, dest(RS1, 8080, ForwardMethod::Masq, 1))
        .unwrap();

    // SYN client → VIP:80 becomes client → RS1:8080
    let syn = PacketSpec::tcp(CLIENT, 40000, VIP, 80, SYN).payload(b"");
    let (a, s, _) = fwd(&mut lb, t(1), &syn);
    assert_eq!(next_hop(&a), RS1.parse::<std::net::IpAddr>().unwrap());
    assert_eq!(s.dst, RS1.parse::<std::net::IpAddr>().unwrap());
    assert_eq!(s.dport, 8080);
    assert_eq!(s.src, CLIENT.parse::<std::net::IpAddr>().unwrap());
    assert_eq!(s.ttl, 63);

    // SYN-ACK RS1:8080 → client becomes VIP:80 → client
    let synack = PacketSpec::tcp(RS1, 8080, CLIENT, 40000, SYN | ACK);
    let (a, s, _) = fwd(&mut lb, t(1), &synack);
    assert_eq!(next_hop(&a), CLIENT.parse::<std::net::IpAddr>().unwrap());
    assert_eq!(s.src, VIP.parse::<std::net::IpAddr>().unwrap());
    assert_eq!(s.sport, 80);

    // ACK + data
    let ack = PacketSpec::tcp(CLIENT, 40000, VIP, 80, ACK).payload(b"GET / HTTP/1.0\r\n\r\n");
    let (_, s, _) = fwd(&mut lb, t(2), &ack);
    assert_eq!(s.ip_payload[20..], b"GET / HTTP/1.0\r\n\r\n"[..]);
    let conns = lb.connections(t(2));
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].state, "ESTABLISHED");
    assert_eq!(conns[0].expires_secs, 900);
    let info = &lb.services()[0];
    assert_eq!((info.dests[0].active, info.dests[0].inactive), (1, 0));
    assert_eq!(info.stats.conns, 1);
    assert_eq!(info.stats.inpkts, 2);
    assert_eq!(info.stats.outpkts, 1);

    // client FIN → CLOSE_WAIT, server FIN → TIME_WAIT (inactive)
    fwd(
        &mut lb,
        t(3),
        &PacketSpec::tcp(CLIENT, 40000, VIP, 80, FIN | ACK),
    );
    assert_eq!(lb.connections(t(3))[0].state, "CLOSE_WAIT");
    fwd(
        &mut lb,
        t(3),
        &PacketSpec::tcp(RS1, 8080, CLIENT, 40000, FIN | ACK),
    );
    assert_eq!(lb.connections(t(3))[0].state, "TIME_WAIT");
    let info = &lb.services()[0];
    assert_eq!((info.dests[0].active, info.dests[0].inactive), (0, 1));

    // expires after TIME_WAIT's 120 s, not before
    lb.handle_timeout(Instant::from_millis(3_000 + 119_999));
    assert_eq!(lb.connections(t(122)).len(), 1);
    lb.handle_timeout(t(123));
    assert!(lb.connections(t(123)).is_empty());
    let info = &lb.services()[0];
    assert_eq!((info.dests[0].active, info.dests[0].inactive), (0, 0));
}

#[test]
fn dr_rewrites_nothing_but_ttl_and_uses_input_only() {
    let mut lb = Balancer::new(config(), t(0));
    let key = tcp_key(VIP, 80);
    lb.add_service(svc(key, SchedKind::Wlc), t(0)).unwrap();
    lb.add_dest(&key, dest(RS1, 80, ForwardMethod::DirectRoute, 1))
        .unwrap();
    let syn = PacketSpec::tcp(CLIENT, 40001, VIP, 80, SYN).payload(b"x");
    let input = syn.build();
    let (a, s, out) = fwd(&mut lb, t(1), &syn);
    assert_eq!(next_hop(&a), RS1.parse::<std::net::IpAddr>().unwrap());
    assert_eq!(s.dst, VIP.parse::<std::net::IpAddr>().unwrap());
    assert_eq!(s.dport, 80);
    // only TTL and the IP checksum differ
    let diff: Vec<usize> = (0..input.len()).filter(|&i| input[i] != out[i]).collect();
    assert!(
        diff.iter()
            .all(|&i| i == 14 + 8 || i == 14 + 10 || i == 14 + 11),
        "{diff:?}"
    );
    fwd(&mut lb, t(1), &PacketSpec::tcp(CLIENT, 40001, VIP, 80, ACK));
    fwd(
        &mut lb,
        t(2),
        &PacketSpec::tcp(CLIENT, 40001, VIP, 80, FIN | ACK),
    );
    assert_eq!(lb.connections(t(2))[0].state, "FIN_WAIT");
    assert_eq!(lb.services()[0].stats.outpkts, 0);
}

#[test]
fn tun_ipip_v4_outer_header() {
    let mut lb = Balancer::new(config(), t(0));
    let key = tcp_key(VIP, 80);
    lb.add_service(svc(key, SchedKind::Rr), t(0)).unwrap();
    lb.add_dest(&key, dest(RS1, 80, ForwardMethod::Tunnel, 1))
        .unwrap();
    let mut syn = PacketSpec::tcp(CLIENT, 40002, VIP, 80, SYN);
    syn.tos = 0x03; // CE
    let inner_in = syn.build();
    let (a, s, out) = fwd(&mut lb, t(1), &syn);
    assert_eq!(next_hop(&a), RS1.parse::<std::net::IpAddr>().unwrap());
    assert_eq!(s.proto, 4);
    assert_eq!(s.src, "198.18.2.1".parse::<std::net::IpAddr>().unwrap());
    assert_eq!(s.dst, RS1.parse::<std::net::IpAddr>().unwrap());
    assert_eq!(s.ttl, 63, "outer TTL = inner TTL after decrement");
    assert_eq!(s.tos & 3, 2, "CE becomes ECT(0) outside");
    assert!(s.df, "DF copied from inner with pmtu_disc");
    // inner packet is the original with TTL decremented
    let mut inner = out[14..].to_vec();
    inner.drain(..20);
    let mut expect = inner_in[14..].to_vec();
    expect[8] -= 1;
    let c = u16::from_be_bytes([expect[10], expect[11]]);
    let _ = c;
    assert_eq!(inner[..8], expect[..8]);
    assert_eq!(inner[9..10], expect[9..10]);
    assert_eq!(inner[12..], expect[12..]);
    let mut framed = out[..14].to_vec();
    framed.extend_from_slice(&inner);
    check_frame(&framed).expect("inner packet valid");
}

#[test]
fn tun_gue_v6_in_v4_and_v4_in_v6() {
    let mut lb = Balancer::new(config(), t(0));
    let key = tcp_key(VIP, 80);
    lb.add_service(svc(key, SchedKind::Rr), t(0)).unwrap();
    let mut d = dest("2001:db8:9::2", 80, ForwardMethod::Tunnel, 1);
    d.tunnel = TunnelType::Gue { port: 6080 };
    lb.add_dest(&key, d).unwrap();
    let (a, s, _) = fwd(&mut lb, t(1), &PacketSpec::tcp(CLIENT, 40003, VIP, 80, SYN));
    assert_eq!(s.ethertype, 0x86DD);
    assert_eq!(s.proto, 17);
    assert_eq!(s.dport, 6080);
    assert!(s.sport >= 0xC000);
    assert_eq!(s.ip_payload[9], 4, "GUE proto = IPv4 inner");
    assert_eq!(
        next_hop(&a),
        "2001:db8:9::2".parse::<std::net::IpAddr>().unwrap()
    );
}

#[test]
fn ipv6_nat_udp_round_trip() {
    let vip = "2001:db8::100";
    let client = "2001:db8:1::10";
    let rs = "2001:db8:9::2";
    let mut lb = Balancer::new(config(), t(0));
    let key = udp_key(vip, 53);
    lb.add_service(svc(key, SchedKind::Rr), t(0)).unwrap();
    lb.add_dest(&key, dest(rs, 5353, ForwardMethod::Masq, 1))
        .unwrap();
    let q = PacketSpec::udp(client, 5000, vip, 53).payload(b"query");
    let (_, s, _) = fwd(&mut lb, t(1), &q);
    assert_eq!((s.dst, s.dport), (rs.parse().unwrap(), 5353));
    let r = PacketSpec::udp(rs, 5353, client, 5000).payload(b"answer");
    let (_, s, _) = fwd(&mut lb, t(1), &r);
    assert_eq!((s.src, s.sport), (vip.parse().unwrap(), 53));
    assert_eq!(s.ttl, 63);
    let c = &lb.connections(t(1))[0];
    assert_eq!(c.state, "UDP");
    assert_eq!(c.expires_secs, 300);
    // UDP always counts as inactive
    assert_eq!(lb.services()[0].dests[0].inactive, 1);
}

#[test]
fn udp_v4_zero_checksum_stays_zero_after_nat() {
    let mut lb = Balancer::new(config(), t(0));
    let key = udp_key(VIP, 53);
    lb.add_service(svc(key, SchedKind::Rr), t(0)).unwrap();
    lb.add_dest(&key, dest(RS1, 53, ForwardMethod::Masq, 1))
        .unwrap();
    let mut f = PacketSpec::udp(CLIENT, 5000, VIP, 53).payload(b"q").build();
    let l4 = 14 + 20;
    f[l4 + 6] = 0;
    f[l4 + 7] = 0;
    let (_, out) = run(&mut lb, t(1), &f);
    let out = out.expect("forwarded");
    assert_eq!(&out[l4 + 6..l4 + 8], &[0, 0]);
    check_frame(&out).expect("valid");
}

#[test]
fn rr_rotates_and_weight_zero_quiesces() {
    let mut lb = Balancer::new(config(), t(0));
    let key = tcp_key(VIP, 80);
    lb.add_service(svc(key, SchedKind::Rr), t(0)).unwrap();
    lb.add_dest(&key, dest(RS1, 80, ForwardMethod::DirectRoute, 1))
        .unwrap();
    lb.add_dest(&key, dest(RS2, 80, ForwardMethod::DirectRoute, 1))
        .unwrap();
    let mut hops = Vec::new();
    for port in 1000..1004 {
        let (a, _, _) = fwd(&mut lb, t(1), &PacketSpec::tcp(CLIENT, port, VIP, 80, SYN));
        hops.push(next_hop(&a).to_string());
    }
    // newest first: RS2, RS1, RS2, RS1
    assert_eq!(hops, [RS2, RS1, RS2, RS1]);
    // quiesce RS2: existing connection keeps going, new ones avoid it
    lb.edit_dest(&key, dest(RS2, 80, ForwardMethod::DirectRoute, 0))
        .unwrap();
    let (a, _, _) = fwd(&mut lb, t(2), &PacketSpec::tcp(CLIENT, 1000, VIP, 80, ACK));
    assert_eq!(next_hop(&a).to_string(), RS2);
    for port in 2000..2004 {
        let (a, _, _) = fwd(&mut lb, t(2), &PacketSpec::tcp(CLIENT, port, VIP, 80, SYN));
        assert_eq!(next_hop(&a).to_string(), RS1);
    }
}

#[test]
fn deleted_destination_drops_or_reschedules() {
    for expire_nodest in [false, true] {
        let mut cfg = config();
        cfg.expire_nodest_conn = expire_nodest;
        let mut lb = Balancer::new(cfg, t(0));
        let key = tcp_key(VIP, 80);
        lb.add_service(svc(key, SchedKind::Rr), t(0)).unwrap();
        lb.add_dest(&key, dest(RS1, 80, ForwardMethod::DirectRoute, 1))
            .unwrap();
        fwd(&mut lb, t(1), &PacketSpec::tcp(CLIENT, 3000, VIP, 80, SYN));
        lb.add_dest(&key, dest(RS2, 80, ForwardMethod::DirectRoute, 1))
            .unwrap();
        lb.del_dest(&key, &RS1.parse().unwrap(), 80, t(2)).unwrap();
        let (a, _) = run(
            &mut lb,
            t(3),
            &PacketSpec::tcp(CLIENT, 3000, VIP, 80, ACK).build(),
        );
        if expire_nodest {
            // swept at deletion: the ACK finds no connection and cannot open one
            assert_eq!(a, Action::Drop(DropReason::NoConnection));
            assert!(lb.connections(t(3)).is_empty());
            // a new SYN on the same tuple goes to RS2
            let (a, _, _) = fwd(&mut lb, t(3), &PacketSpec::tcp(CLIENT, 3000, VIP, 80, SYN));
            assert_eq!(next_hop(&a).to_string(), RS2);
        } else {
            assert_eq!(a, Action::Drop(DropReason::DestUnavailable));
            assert_eq!(lb.connections(t(3)).len(), 1);
        }
    }
}

#[test]
fn persistence_pins_client_network_and_counts_persistconn() {
    let mut lb = Balancer::new(config(), t(0));
    let key = tcp_key(VIP, 443);
    lb.add_service(persistent(key, SchedKind::Rr, 360, 0xffff_ff00), t(0))
        .unwrap();
    lb.add_dest(&key, dest(RS1, 443, ForwardMethod::DirectRoute, 1))
        .unwrap();
    lb.add_dest(&key, dest(RS2, 443, ForwardMethod::DirectRoute, 1))
        .unwrap();
    let (a, _, _) = fwd(
        &mut lb,
        t(1),
        &PacketSpec::tcp("198.18.5.7", 51234, VIP, 443, SYN),
    );
    let first = next_hop(&a);
    // same /24, different host and port: same server
    for (i, host) in ["198.18.5.99", "198.18.5.1", "198.18.5.7"]
        .iter()
        .enumerate()
    {
        let (a, _, _) = fwd(
            &mut lb,
            t(100),
            &PacketSpec::tcp(host, 40000 + i as u16, VIP, 443, SYN),
        );
        assert_eq!(next_hop(&a), first);
    }
    let info = &lb.services()[0];
    let pinned = info.dests.iter().find(|d| d.config.addr == first).unwrap();
    assert_eq!(pinned.persist, 1);
    let tmpl: Vec<_> = lb
        .connections(t(100))
        .into_iter()
        .filter(|c| c.template)
        .collect();
    assert_eq!(tmpl.len(), 1);
    assert_eq!(tmpl[0].caddr.to_string(), "198.18.5.0");
    assert_eq!(tmpl[0].cport, 0);
    assert_eq!(
        tmpl[0].expires_secs, 360,
        "template timer restarted by the new connection"
    );
    // a client in another /24 may go elsewhere; rr gives the other server
    let (a, _, _) = fwd(
        &mut lb,
        t(100),
        &PacketSpec::tcp("198.18.6.7", 1, VIP, 443, SYN),
    );
    assert_ne!(next_hop(&a), first);
}

#[test]
fn template_outlives_its_connections_then_expires() {
    let mut lb = Balancer::new(config(), t(0));
    let key = udp_key(VIP, 53);
    lb.add_service(persistent(key, SchedKind::Rr, 30, u32::MAX), t(0))
        .unwrap();
    lb.add_dest(&key, dest(RS1, 53, ForwardMethod::DirectRoute, 1))
        .unwrap();
    fwd(&mut lb, t(0), &PacketSpec::udp(CLIENT, 1, VIP, 53));
    // template 30 s, connection 300 s: at 30 s the template re-arms for 60 s
    lb.handle_timeout(t(31));
    assert_eq!(lb.connections(t(31)).len(), 2);
    lb.handle_timeout(t(301));
    let left = lb.connections(t(301));
    assert_eq!(left.len(), 1, "connection gone, template waiting");
    assert!(left[0].template);
    lb.handle_timeout(t(400));
    assert!(lb.connections(t(400)).is_empty());
    assert_eq!(lb.services()[0].dests[0].persist, 0);
}

#[test]
fn no_destination_sends_port_unreachable() {
    let mut lb = Balancer::new(config(), t(0));
    let key = tcp_key(VIP, 80);
    lb.add_service(svc(key, SchedKind::Wlc), t(0)).unwrap();
    lb.add_dest(&key, dest(RS1, 80, ForwardMethod::DirectRoute, 0))
        .unwrap();
    let syn = PacketSpec::tcp(CLIENT, 1, VIP, 80, SYN);
    let (a, out) = run(&mut lb, t(1), &syn.build());
    assert!(matches!(a, Action::Reply(_)), "{a:?}");
    let s = check_frame(&out.unwrap()).expect("valid ICMP");
    assert_eq!(s.proto, 1);
    assert_eq!(
        (s.src.to_string().as_str(), s.dst.to_string().as_str()),
        (VIP, CLIENT)
    );
    assert_eq!(s.ip_payload[0..2], [3, 3]);
    // the quoted header is the client's packet
    assert_eq!(&s.ip_payload[8 + 12..8 + 16], &[198, 18, 1, 10]);
}

#[test]
fn non_syn_without_connection_is_dropped_not_passed() {
    let mut lb = Balancer::new(config(), t(0));
    let key = tcp_key(VIP, 80);
    lb.add_service(svc(key, SchedKind::Rr), t(0)).unwrap();
    lb.add_dest(&key, dest(RS1, 80, ForwardMethod::DirectRoute, 1))
        .unwrap();
    let (a, _) = run(
        &mut lb,
        t(1),
        &PacketSpec::tcp(CLIENT, 1, VIP, 80, ACK).build(),
    );
    assert_eq!(a, Action::Drop(DropReason::NoConnection));
    // a port without a service on the VIP goes to the host (ssh to the director)
    let (a, _) = run(
        &mut lb,
        t(1),
        &PacketSpec::tcp(CLIENT, 1, VIP, 22, SYN).build(),
    );
    assert_eq!(a, Action::Pass);
    assert_eq!(lb.counters().drops[DropReason::NoConnection as usize], 1);
}

#[test]
fn ttl_one_gets_time_exceeded() {
    let mut lb = Balancer::new(config(), t(0));
    let key = tcp_key(VIP, 80);
    lb.add_service(svc(key, SchedKind::Rr), t(0)).unwrap();
    lb.add_dest(&key, dest(RS1, 80, ForwardMethod::DirectRoute, 1))
        .unwrap();
    let mut syn = PacketSpec::tcp(CLIENT, 1, VIP, 80, SYN);
    syn.ttl = 1;
    let (a, out) = run(&mut lb, t(1), &syn.build());
    assert!(matches!(a, Action::Reply(_)));
    let s = check_frame(&out.unwrap()).unwrap();
    assert_eq!(s.ip_payload[0], 11);
}

#[test]
fn tunnel_mtu_sends_frag_needed_with_reduced_mtu() {
    let mut lb = Balancer::new(config(), t(0));
    let key = tcp_key(VIP, 80);
    lb.add_service(svc(key, SchedKind::Rr), t(0)).unwrap();
    lb.add_dest(&key, dest(RS1, 80, ForwardMethod::Tunnel, 1))
        .unwrap();
    fwd(&mut lb, t(1), &PacketSpec::tcp(CLIENT, 5, VIP, 80, SYN));
    let big = PacketSpec::tcp(CLIENT, 5, VIP, 80, ACK).payload(&[0u8; 1460]);
    let (a, out) = run(&mut lb, t(1), &big.build());
    assert!(matches!(a, Action::Reply(_)), "{a:?}");
    let s = check_frame(&out.unwrap()).unwrap();
    assert_eq!(s.ip_payload[0..2], [3, 4]);
    assert_eq!(u16::from_be_bytes([s.ip_payload[6], s.ip_payload[7]]), 1480);
    // IPv6 client through a v4 tunnel: packet too big with 1280 minimum honoured
}

#[test]
fn syn_flood_never_evicts_established() {
    let mut cfg = config();
    cfg.capacity = 100;
    let mut lb = Balancer::new(cfg, t(0));
    let key = tcp_key(VIP, 80);
    lb.add_service(svc(key, SchedKind::Rr), t(0)).unwrap();
    lb.add_dest(&key, dest(RS1, 80, ForwardMethod::DirectRoute, 1))
        .unwrap();
    // 50 established
    for p in 0..50u16 {
        fwd(
            &mut lb,
            t(1),
            &PacketSpec::tcp(CLIENT, 10_000 + p, VIP, 80, SYN),
        );
        fwd(
            &mut lb,
            t(1),
            &PacketSpec::tcp(CLIENT, 10_000 + p, VIP, 80, ACK),
        );
    }
    // 10,000 spoofed SYNs
    for i in 0..10_000u32 {
        let src = format!("198.18.{}.{}", 100 + (i >> 8) % 100, i & 0xff);
        run(
            &mut lb,
            t(2),
            &PacketSpec::tcp(&src, (i % 60000) as u16 + 1, VIP, 80, SYN).build(),
        );
    }
    assert_eq!(lb.connection_count().0, 100);
    // every established connection still forwards
    for p in 0..50u16 {
        let (a, _) = run(
            &mut lb,
            t(3),
            &PacketSpec::tcp(CLIENT, 10_000 + p, VIP, 80, ACK).build(),
        );
        assert!(
            matches!(a, Action::Forward(_)),
            "established flow {p} lost: {a:?}"
        );
    }
    assert!(lb.counters().conns_evicted >= 9_950);
    let est = lb
        .connections(t(3))
        .iter()
        .filter(|c| c.state == "ESTABLISHED")
        .count();
    assert_eq!(est, 50);
}

#[test]
fn table_full_of_established_drops_new() {
    let mut cfg = config();
    cfg.capacity = 10;
    let mut lb = Balancer::new(cfg, t(0));
    let key = tcp_key(VIP, 80);
    lb.add_service(svc(key, SchedKind::Rr), t(0)).unwrap();
    lb.add_dest(&key, dest(RS1, 80, ForwardMethod::DirectRoute, 1))
        .unwrap();
    for p in 0..10u16 {
        fwd(&mut lb, t(1), &PacketSpec::tcp(CLIENT, p + 1, VIP, 80, SYN));
        fwd(&mut lb, t(1), &PacketSpec::tcp(CLIENT, p + 1, VIP, 80, ACK));
    }
    let (a, _) = run(
        &mut lb,
        t(2),
        &PacketSpec::tcp(CLIENT, 999, VIP, 80, SYN).build(),
    );
    assert_eq!(a, Action::Drop(DropReason::TableFull));
}

#[test]
fn syn_on_time_wait_reschedules() {
    let mut lb = Balancer::new(config(), t(0));
    let key = tcp_key(VIP, 80);
    lb.add_service(svc(key, SchedKind::Rr), t(0)).unwrap();
    lb.add_dest(&key, dest(RS1, 80, ForwardMethod::Masq, 1))
        .unwrap();
    lb.add_dest(&key, dest(RS2, 80, ForwardMethod::Masq, 1))
        .unwrap();
    let (a, _, _) = fwd(&mut lb, t(1), &PacketSpec::tcp(CLIENT, 7, VIP, 80, SYN));
    let first = next_hop(&a);
    let rs = first.to_string();
    fwd(
        &mut lb,
        t(1),
        &PacketSpec::tcp(&rs, 80, CLIENT, 7, SYN | ACK),
    );
    fwd(&mut lb, t(1), &PacketSpec::tcp(CLIENT, 7, VIP, 80, ACK));
    fwd(
        &mut lb,
        t(2),
        &PacketSpec::tcp(CLIENT, 7, VIP, 80, FIN | ACK),
    );
    fwd(
        &mut lb,
        t(2),
        &PacketSpec::tcp(&rs, 80, CLIENT, 7, FIN | ACK),
    );
    assert_eq!(lb.connections(t(2))[0].state, "TIME_WAIT");
    let (a, _, _) = fwd(&mut lb, t(3), &PacketSpec::tcp(CLIENT, 7, VIP, 80, SYN));
    assert_ne!(next_hop(&a), first, "rescheduled by rr");
    assert_eq!(lb.connections(t(3)).len(), 1);
    let _ = Duration::ZERO;
}

#[test]
fn icmp_error_from_client_reaches_nat_real_server_rewritten() {
    let mut lb = Balancer::new(config(), t(0));
    let key = udp_key(VIP, 53);
    lb.add_service(svc(key, SchedKind::Rr), t(0)).unwrap();
    lb.add_dest(&key, dest(RS1, 5353, ForwardMethod::Masq, 1))
        .unwrap();
    fwd(
        &mut lb,
        t(1),
        &PacketSpec::udp(CLIENT, 5000, VIP, 53).payload(b"q"),
    );
    // the client says "port unreachable" about VIP:53 → client:5000
    let reply = PacketSpec::udp(VIP, 53, CLIENT, 5000).payload(b"a").build();
    let quoted = &reply[14..14 + 28];
    let icmp = PacketSpec::new(
        CLIENT,
        VIP,
        rvs_testkit::L4::Icmp {
            ty: 3,
            code: 3,
            word: 0,
        },
    )
    .payload(quoted);
    let (a, s, _) = fwd(&mut lb, t(1), &icmp);
    assert_eq!(next_hop(&a).to_string(), RS1);
    assert_eq!(s.dst.to_string(), RS1);
    // quoted source is now RS1:5353
    assert_eq!(&s.ip_payload[8 + 12..8 + 16], &[198, 19, 0, 2]);
    assert_eq!(
        u16::from_be_bytes([s.ip_payload[28], s.ip_payload[29]]),
        5353
    );
    // and the quoted IPv4 header checksum is still right
    assert_eq!(rvs_testkit::sum(&s.ip_payload[8..28]), 0xffff);
}

#[test]
fn icmp_error_from_nat_real_server_goes_to_client_as_vip() {
    let mut lb = Balancer::new(config(), t(0));
    let key = udp_key(VIP, 53);
    lb.add_service(svc(key, SchedKind::Rr), t(0)).unwrap();
    lb.add_dest(&key, dest(RS1, 5353, ForwardMethod::Masq, 1))
        .unwrap();
    let (_, _, fwd_frame) = fwd(
        &mut lb,
        t(1),
        &PacketSpec::udp(CLIENT, 5000, VIP, 53).payload(b"q"),
    );
    let quoted = &fwd_frame[14..14 + 28];
    let icmp = PacketSpec::new(
        RS1,
        CLIENT,
        rvs_testkit::L4::Icmp {
            ty: 3,
            code: 3,
            word: 0,
        },
    )
    .payload(quoted);
    let (a, s, _) = fwd(&mut lb, t(1), &icmp);
    assert_eq!(next_hop(&a).to_string(), CLIENT);
    assert_eq!(s.src.to_string(), VIP);
    assert_eq!(&s.ip_payload[8 + 16..8 + 20], &[198, 18, 0, 100]);
    assert_eq!(u16::from_be_bytes([s.ip_payload[30], s.ip_payload[31]]), 53);
}

#[test]
fn echo_to_vip_and_arp_pass_to_host() {
    let mut lb = Balancer::new(config(), t(0));
    let key = tcp_key(VIP, 80);
    lb.add_service(svc(key, SchedKind::Rr), t(0)).unwrap();
    let ping = PacketSpec::new(
        CLIENT,
        VIP,
        rvs_testkit::L4::Icmp {
            ty: 8,
            code: 0,
            word: 1,
        },
    );
    assert_eq!(run(&mut lb, t(1), &ping.build()).0, Action::Pass);
    let mut arp = vec![0xffu8; 6];
    arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
    arp.extend_from_slice(&[0u8; 28]);
    assert_eq!(run(&mut lb, t(1), &arp).0, Action::Pass);
}

#[test]
fn fragments_to_vip_dropped_and_counted() {
    let mut lb = Balancer::new(config(), t(0));
    let key = udp_key(VIP, 53);
    lb.add_service(svc(key, SchedKind::Rr), t(0)).unwrap();
    let mut f = PacketSpec::udp(CLIENT, 1, VIP, 53)
        .payload(&[1; 16])
        .build();
    // set MF and fix the header checksum
    f[14 + 6] |= 0x20;
    f[14 + 10] = 0;
    f[14 + 11] = 0;
    let c = !rvs_testkit::sum(&f[14..34]);
    f[14 + 10..14 + 12].copy_from_slice(&c.to_be_bytes());
    assert_eq!(run(&mut lb, t(1), &f).0, Action::Drop(DropReason::Fragment));
}

#[test]
fn bad_ip_checksum_and_truncation_are_counted_drops() {
    let mut lb = Balancer::new(config(), t(0));
    let key = tcp_key(VIP, 80);
    lb.add_service(svc(key, SchedKind::Rr), t(0)).unwrap();
    let mut f = PacketSpec::tcp(CLIENT, 1, VIP, 80, SYN).build();
    f[14 + 10] ^= 1;
    assert_eq!(
        run(&mut lb, t(1), &f).0,
        Action::Drop(DropReason::BadChecksum)
    );
    let f = PacketSpec::tcp(CLIENT, 1, VIP, 80, SYN).build();
    for cut in [13, 20, 33, 40] {
        let (a, _) = run(&mut lb, t(1), &f[..cut]);
        assert!(matches!(a, Action::Drop(_) | Action::Pass), "{cut}: {a:?}");
        assert!(!matches!(a, Action::Forward(_)));
    }
}
