//! Flow offload events (`rvs_core::offload`): when flows are offered, what they carry, when
//! they are taken back, and that offloaded traffic reported back keeps counters and timers.

mod common;

use std::collections::HashSet;
use std::net::IpAddr;

use common::*;
use proptest::prelude::*;
use rvs_core::time::Instant;
use rvs_core::{
    Balancer, ConnId, ForwardMethod, OffloadDir, OffloadEvent, OffloadFlow, OffloadRewrite,
    TunnelType,
};
use rvs_sched::SchedKind;
use rvs_testkit::{PacketSpec, flags::*};

const VIP: &str = "198.18.0.100";
const CLIENT: &str = "198.18.1.10";
const RS1: &str = "198.19.0.2";

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn events(lb: &mut Balancer) -> Vec<OffloadEvent> {
    let mut v = Vec::new();
    lb.take_offload_events(&mut v);
    v
}

fn installs(ev: &[OffloadEvent]) -> Vec<OffloadFlow> {
    ev.iter()
        .filter_map(|e| match e {
            OffloadEvent::Install(f) => Some(*f),
            OffloadEvent::Remove { .. } => None,
        })
        .collect()
}

fn removes(ev: &[OffloadEvent]) -> Vec<(ConnId, OffloadDir)> {
    ev.iter()
        .filter_map(|e| match e {
            OffloadEvent::Remove { conn, dir } => Some((*conn, *dir)),
            OffloadEvent::Install(_) => None,
        })
        .collect()
}

fn lb_with(method: ForwardMethod, udp: bool) -> Balancer {
    let mut lb = Balancer::new(config(), t(0));
    lb.set_offload(true);
    let key = if udp {
        udp_key(VIP, 53)
    } else {
        tcp_key(VIP, 80)
    };
    lb.add_service(svc(key, SchedKind::Rr), t(0)).unwrap();
    lb.add_dest(&key, dest(RS1, 8080, method, 1)).unwrap();
    lb
}

fn send(lb: &mut Balancer, now: Instant, spec: &PacketSpec) {
    let (a, _) = run(lb, now, &spec.build());
    assert!(
        matches!(a, rvs_core::Action::Forward(_)),
        "not forwarded: {a:?}"
    );
}

/// SYN, then the handshake's last ACK: the flow is offered only once ESTABLISHED, with the
/// rewrite DR applies, and taken back by the FIN.
#[test]
fn dr_tcp_offered_when_established_and_removed_on_fin() {
    let mut lb = lb_with(ForwardMethod::DirectRoute, false);
    send(
        &mut lb,
        t(1000),
        &PacketSpec::tcp(CLIENT, 40000, VIP, 80, SYN),
    );
    assert!(events(&mut lb).is_empty(), "SYN_RECV must not be offloaded");
    send(
        &mut lb,
        t(1001),
        &PacketSpec::tcp(CLIENT, 40000, VIP, 80, ACK),
    );
    let ev = events(&mut lb);
    let ins = installs(&ev);
    assert_eq!(ins.len(), 1, "{ev:?}");
    let f = ins[0];
    assert_eq!(f.dir, OffloadDir::In);
    assert_eq!(f.rewrite, OffloadRewrite::Route);
    assert_eq!((f.flow.src, f.flow.sport), (ip(CLIENT), 40000));
    assert_eq!((f.flow.dst, f.flow.dport, f.flow.proto), (ip(VIP), 80, 6));
    assert_eq!(f.next_hop, ip(RS1));
    assert_eq!(f.max_len, 1500);
    assert_eq!(lb.offloaded(), 1);
    // more data: offered once only
    send(
        &mut lb,
        t(1002),
        &PacketSpec::tcp(CLIENT, 40000, VIP, 80, ACK | PSH).payload(b"x"),
    );
    assert!(events(&mut lb).is_empty());
    send(
        &mut lb,
        t(1003),
        &PacketSpec::tcp(CLIENT, 40000, VIP, 80, FIN | ACK),
    );
    let ev = events(&mut lb);
    assert_eq!(removes(&ev), vec![(f.conn, OffloadDir::In)]);
    assert_eq!(lb.offloaded(), 0);
}

/// NAT: one flow per direction, each with its own rewrite and next hop; RST takes both back.
#[test]
fn nat_tcp_both_directions() {
    let mut lb = lb_with(ForwardMethod::Masq, false);
    send(
        &mut lb,
        t(1000),
        &PacketSpec::tcp(CLIENT, 40000, VIP, 80, SYN),
    );
    send(
        &mut lb,
        t(1000),
        &PacketSpec::tcp(RS1, 8080, CLIENT, 40000, SYN | ACK),
    );
    assert!(events(&mut lb).is_empty());
    send(
        &mut lb,
        t(1001),
        &PacketSpec::tcp(CLIENT, 40000, VIP, 80, ACK),
    );
    let ins = installs(&events(&mut lb));
    assert_eq!(ins.len(), 1);
    assert_eq!(ins[0].dir, OffloadDir::In);
    assert_eq!(
        ins[0].rewrite,
        OffloadRewrite::Dnat {
            addr: ip(RS1),
            port: 8080
        }
    );
    send(
        &mut lb,
        t(1002),
        &PacketSpec::tcp(RS1, 8080, CLIENT, 40000, ACK | PSH).payload(b"hello"),
    );
    let out = installs(&events(&mut lb));
    assert_eq!(out.len(), 1);
    let o = out[0];
    assert_eq!(o.dir, OffloadDir::Out);
    assert_eq!(o.conn, ins[0].conn);
    assert_eq!((o.flow.src, o.flow.sport), (ip(RS1), 8080));
    assert_eq!((o.flow.dst, o.flow.dport), (ip(CLIENT), 40000));
    assert_eq!(
        o.rewrite,
        OffloadRewrite::Snat {
            addr: ip(VIP),
            port: 80
        }
    );
    assert_eq!(o.next_hop, ip(CLIENT));
    assert_eq!(lb.offloaded(), 1, "one connection, two flows");
    send(
        &mut lb,
        t(1003),
        &PacketSpec::tcp(CLIENT, 40000, VIP, 80, RST),
    );
    let mut r = removes(&events(&mut lb));
    r.sort_by_key(|(_, d)| *d == OffloadDir::Out);
    assert_eq!(r, vec![(o.conn, OffloadDir::In), (o.conn, OffloadDir::Out)]);
}

/// UDP is offered on its first packet; TUN with IPIP carries the outer addresses and a
/// smaller packet limit; GUE is never offered.
#[test]
fn udp_and_tunnels() {
    let mut lb = lb_with(ForwardMethod::Tunnel, true);
    send(&mut lb, t(1000), &PacketSpec::udp(CLIENT, 5000, VIP, 53));
    let ins = installs(&events(&mut lb));
    assert_eq!(ins.len(), 1);
    assert_eq!(
        ins[0].rewrite,
        OffloadRewrite::Ipip {
            src: ip("198.18.2.1"),
            dst: ip(RS1),
            copy_df: true
        }
    );
    assert_eq!(ins[0].max_len, 1480);

    let mut lb = Balancer::new(config(), t(0));
    lb.set_offload(true);
    let key = udp_key(VIP, 53);
    lb.add_service(svc(key, SchedKind::Rr), t(0)).unwrap();
    let mut d = dest(RS1, 0, ForwardMethod::Tunnel, 1);
    d.tunnel = TunnelType::Gue { port: 6080 };
    lb.add_dest(&key, d).unwrap();
    send(&mut lb, t(1000), &PacketSpec::udp(CLIENT, 5000, VIP, 53));
    send(&mut lb, t(1001), &PacketSpec::udp(CLIENT, 5000, VIP, 53));
    assert!(events(&mut lb).is_empty(), "GUE is not offloaded");
    assert_eq!(lb.offloaded(), 0);
}

/// Offloaded packets reported back count in the statistics and keep the connection alive;
/// without reports it expires after its timeout plus the grace, with a Remove.
#[test]
fn reports_count_and_keep_alive() {
    let mut lb = lb_with(ForwardMethod::DirectRoute, true);
    send(&mut lb, t(1000), &PacketSpec::udp(CLIENT, 5000, VIP, 53));
    let f = installs(&events(&mut lb))[0];
    let before = lb.services()[0].stats;
    assert!(lb.offload_seen(t(2000), f.conn, f.dir, 10, 1000));
    let after = lb.services()[0].stats;
    assert_eq!(after.inpkts - before.inpkts, 10);
    assert_eq!(after.inbytes - before.inbytes, 1000);
    assert_eq!(lb.services()[0].dests[0].stats.inpkts, before.inpkts + 10);
    // UDP timeout 300 s from the report at 2 s: alive at 301 s and 303 s (grace)...
    lb.handle_timeout(t(301_000));
    assert_eq!(lb.connection_count().0, 1);
    lb.handle_timeout(t(302_500));
    assert_eq!(lb.connection_count().0, 1, "grace after the deadline");
    assert!(events(&mut lb).is_empty());
    // ...a late report re-arms it for another 300 s
    assert!(lb.offload_seen(t(302_600), f.conn, f.dir, 1, 100));
    lb.handle_timeout(t(500_000));
    assert_eq!(lb.connection_count().0, 1);
    // no more reports: gone after deadline + grace, and the flow is taken back
    lb.handle_timeout(t(602_700));
    assert_eq!(lb.connection_count().0, 1);
    lb.handle_timeout(t(605_000));
    assert_eq!(lb.connection_count().0, 0);
    assert_eq!(removes(&events(&mut lb)), vec![(f.conn, f.dir)]);
    assert!(
        !lb.offload_seen(t(605_000), f.conn, f.dir, 1, 1),
        "stale id"
    );
}

/// Control changes: weight edits keep flows offloaded; a method change or deleting the
/// destination takes them back; turning offload off takes back everything.
#[test]
fn control_changes() {
    let key = udp_key(VIP, 53);
    let mut lb = Balancer::new(config(), t(0));
    lb.set_offload(true);
    lb.add_service(svc(key, SchedKind::Rr), t(0)).unwrap();
    lb.add_dest(&key, dest(RS1, 53, ForwardMethod::DirectRoute, 1))
        .unwrap();
    for port in 5000..5004 {
        send(&mut lb, t(1000), &PacketSpec::udp(CLIENT, port, VIP, 53));
    }
    assert_eq!(installs(&events(&mut lb)).len(), 4);
    lb.edit_dest(&key, dest(RS1, 53, ForwardMethod::DirectRoute, 0))
        .unwrap();
    assert!(events(&mut lb).is_empty(), "quiescing keeps live flows");
    lb.edit_dest(&key, dest(RS1, 53, ForwardMethod::Masq, 0))
        .unwrap();
    assert_eq!(removes(&events(&mut lb)).len(), 4);
    assert_eq!(lb.offloaded(), 0);

    let mut lb = lb_with(ForwardMethod::DirectRoute, true);
    send(&mut lb, t(1000), &PacketSpec::udp(CLIENT, 5000, VIP, 53));
    events(&mut lb);
    lb.del_dest(&key, &ip(RS1), 53, t(1001)).unwrap();
    assert_eq!(removes(&events(&mut lb)).len(), 1);

    let mut lb = lb_with(ForwardMethod::DirectRoute, true);
    send(&mut lb, t(1000), &PacketSpec::udp(CLIENT, 5000, VIP, 53));
    events(&mut lb);
    let mut cfg = lb.config().clone();
    cfg.mtu = 9000;
    lb.set_config(cfg);
    assert_eq!(removes(&events(&mut lb)).len(), 1, "MTU change");

    let mut lb = lb_with(ForwardMethod::DirectRoute, true);
    send(&mut lb, t(1000), &PacketSpec::udp(CLIENT, 5000, VIP, 53));
    events(&mut lb);
    lb.set_offload(false);
    assert_eq!(removes(&events(&mut lb)).len(), 1);
    send(&mut lb, t(1001), &PacketSpec::udp(CLIENT, 5000, VIP, 53));
    assert!(events(&mut lb).is_empty(), "off: nothing offered");
}

/// A rejected install is offered again with the next packet.
#[test]
fn rejected_is_offered_again() {
    let mut lb = lb_with(ForwardMethod::DirectRoute, true);
    send(&mut lb, t(1000), &PacketSpec::udp(CLIENT, 5000, VIP, 53));
    let f = installs(&events(&mut lb))[0];
    lb.offload_rejected(f.conn, f.dir);
    assert_eq!(lb.offloaded(), 0);
    send(&mut lb, t(1001), &PacketSpec::udp(CLIENT, 5000, VIP, 53));
    assert_eq!(installs(&events(&mut lb)), vec![f]);
}

/// Packets the offloaded path hands back unchanged (TTL 1, too big) get the core's
/// answers, and no second offer.
#[test]
fn handed_back_packets_get_core_answers() {
    let mut lb = lb_with(ForwardMethod::DirectRoute, true);
    send(&mut lb, t(1000), &PacketSpec::udp(CLIENT, 5000, VIP, 53));
    events(&mut lb);
    let mut spec = PacketSpec::udp(CLIENT, 5000, VIP, 53);
    spec.ttl = 1;
    let (a, _) = run(&mut lb, t(1001), &spec.build());
    assert!(matches!(a, rvs_core::Action::Reply(_)), "{a:?}");
    assert!(events(&mut lb).is_empty());
}

#[derive(Clone, Debug)]
enum Op {
    Packet { client: u8, kind: u8 },
    Reply { client: u8, kind: u8 },
    Advance(u16),
    Report { client: u8 },
    Reject { client: u8 },
    DelDest,
    AddDest,
    Toggle,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..6, 0u8..5).prop_map(|(client, kind)| Op::Packet { client, kind }),
        3 => (0u8..6, 0u8..5).prop_map(|(client, kind)| Op::Reply { client, kind }),
        2 => (1u16..2000).prop_map(Op::Advance),
        2 => (0u8..6).prop_map(|client| Op::Report { client }),
        1 => (0u8..6).prop_map(|client| Op::Reject { client }),
        1 => Just(Op::DelDest),
        1 => Just(Op::AddDest),
        1 => Just(Op::Toggle),
    ]
}

proptest! {
    /// Whatever happens, the events form a consistent stream: a flow is installed only when
    /// not installed, removed only when installed, `offloaded()` counts the connections with
    /// a flow installed, and turning offload off leaves nothing installed.
    #[test]
    fn event_stream_is_consistent(ops in proptest::collection::vec(op(), 1..80)) {
        let mut lb = lb_with(ForwardMethod::Masq, false);
        let key = tcp_key(VIP, 80);
        let mut now = 1_000u64;
        let mut on = true;
        let mut model: HashSet<(ConnId, OffloadDir)> = HashSet::new();
        let mut by_client: std::collections::HashMap<u8, ConnId> = Default::default();
        let flags_of = |k: u8| [SYN, ACK, ACK | PSH, FIN | ACK, RST][k as usize];
        for o in ops {
            match o {
                Op::Packet { client, kind } => {
                    let spec = PacketSpec::tcp(CLIENT, 40000 + u16::from(client), VIP, 80, flags_of(kind));
                    run(&mut lb, t(now), &spec.build());
                }
                Op::Reply { client, kind } => {
                    let spec = PacketSpec::tcp(RS1, 8080, CLIENT, 40000 + u16::from(client), flags_of(kind) | ACK);
                    run(&mut lb, t(now), &spec.build());
                }
                Op::Advance(s) => {
                    now += u64::from(s) * 1000;
                    lb.handle_timeout(t(now));
                }
                Op::Report { client } => {
                    if let Some(&c) = by_client.get(&client) {
                        lb.offload_seen(t(now), c, OffloadDir::In, 3, 300);
                    }
                }
                Op::Reject { client } => {
                    if let Some(&c) = by_client.get(&client)
                        && model.remove(&(c, OffloadDir::In))
                    {
                        lb.offload_rejected(c, OffloadDir::In);
                    }
                }
                Op::DelDest => { let _ = lb.del_dest(&key, &ip(RS1), 8080, t(now)); }
                Op::AddDest => { let _ = lb.add_dest(&key, dest(RS1, 8080, ForwardMethod::Masq, 1)); }
                Op::Toggle => { on = !on; lb.set_offload(on); }
            }
            for e in events(&mut lb) {
                match e {
                    OffloadEvent::Install(f) => {
                        prop_assert!(on, "install while off");
                        prop_assert!(model.insert((f.conn, f.dir)), "installed twice: {:?}", f);
                        if f.dir == OffloadDir::In {
                            by_client.insert((f.flow.sport - 40000) as u8, f.conn);
                        }
                    }
                    OffloadEvent::Remove { conn, dir } => {
                        prop_assert!(model.remove(&(conn, dir)), "removed but not installed");
                    }
                }
            }
            let conns: HashSet<ConnId> = model.iter().map(|(c, _)| *c).collect();
            prop_assert_eq!(lb.offloaded(), conns.len());
        }
        lb.set_offload(false);
        for e in events(&mut lb) {
            if let OffloadEvent::Remove { conn, dir } = e {
                prop_assert!(model.remove(&(conn, dir)));
            } else {
                prop_assert!(false, "install after off");
            }
        }
        prop_assert!(model.is_empty());
    }
}

/// `offload_after`: short connections stay with the core; a flow is offered once its
/// client sent that many packets.
#[test]
fn offered_only_after_enough_packets() {
    let mut cfg = config();
    cfg.offload_after = 3;
    let mut lb = Balancer::new(cfg, t(0));
    lb.set_offload(true);
    let key = udp_key(VIP, 53);
    lb.add_service(svc(key, SchedKind::Rr), t(0)).unwrap();
    lb.add_dest(&key, dest(RS1, 53, ForwardMethod::DirectRoute, 1))
        .unwrap();
    send(&mut lb, t(1000), &PacketSpec::udp(CLIENT, 5000, VIP, 53));
    send(&mut lb, t(1001), &PacketSpec::udp(CLIENT, 5000, VIP, 53));
    assert!(events(&mut lb).is_empty(), "2 packets: not yet");
    send(&mut lb, t(1002), &PacketSpec::udp(CLIENT, 5000, VIP, 53));
    assert_eq!(
        installs(&events(&mut lb)).len(),
        1,
        "offered with the third"
    );
}
