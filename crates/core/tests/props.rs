//! Property tests of the data path: NAT in then out restores the client's view of the
//! tuple with valid checksums, for random addresses and ports over IPv4 and IPv6; any
//! frame stays in bounds; and batched processing is indistinguishable from processing the
//! same frames one by one (actions, output bytes, counters, connections, statistics).

mod common;

use common::*;
use proptest::prelude::*;
use rvs_core::time::Instant;
use rvs_core::{Balancer, ForwardMethod};
use rvs_sched::SchedKind;
use rvs_testkit::{PacketSpec, flags::*};

fn v4(n: u32) -> String {
    // 198.18.0.0/15
    std::net::Ipv4Addr::from(0xC612_0000 | (n & 0x1_FFFF)).to_string()
}

fn v6(n: u32) -> String {
    format!("2001:db8::{:x}:{:x}", n >> 16, n & 0xffff)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(128)))]

    #[test]
    fn nat_in_then_out_restores_the_tuple(
        v6_family in any::<bool>(),
        client in 1u32..0x1_FFFE,
        cport in 1u16..,
        vport in 1u16..,
        dport in 1u16..,
        udp in any::<bool>(),
        payload in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let (vip, rs, cl) = if v6_family {
            (v6(0xffff_0001), v6(0xeeee_0002), v6(client))
        } else {
            (v4(0x1_FFFF), v4(0x1_FFFE), v4(client))
        };
        let mut lb = Balancer::new(config(), Instant::ZERO);
        let key = if udp { udp_key(&vip, vport) } else { tcp_key(&vip, vport) };
        lb.add_service(svc(key, SchedKind::Rr), Instant::ZERO).unwrap();
        lb.add_dest(&key, dest(&rs, dport, ForwardMethod::Masq, 1)).unwrap();
        let inbound = if udp {
            PacketSpec::udp(&cl, cport, &vip, vport).payload(&payload)
        } else {
            PacketSpec::tcp(&cl, cport, &vip, vport, SYN).payload(&payload)
        };
        let (_, s, _) = fwd(&mut lb, Instant::from_secs(1), &inbound);
        prop_assert_eq!(s.src.to_string(), cl.parse::<std::net::IpAddr>().unwrap().to_string());
        prop_assert_eq!(s.sport, cport);
        prop_assert_eq!(s.dst.to_string(), rs.parse::<std::net::IpAddr>().unwrap().to_string());
        prop_assert_eq!(s.dport, dport);
        let reply = if udp {
            PacketSpec::udp(&rs, dport, &cl, cport).payload(&payload)
        } else {
            PacketSpec::tcp(&rs, dport, &cl, cport, SYN | ACK).payload(&payload)
        };
        let (_, r, _) = fwd(&mut lb, Instant::from_secs(1), &reply);
        prop_assert_eq!(r.src.to_string(), vip.parse::<std::net::IpAddr>().unwrap().to_string());
        prop_assert_eq!(r.sport, vport);
        prop_assert_eq!(r.dst, s.src);
        prop_assert_eq!(r.dport, cport);
        // the payload is untouched both ways
        let hdr = if udp { 8 } else { 20 };
        prop_assert_eq!(&s.ip_payload[hdr..], &payload[..]);
        prop_assert_eq!(&r.ip_payload[hdr..], &payload[..]);
    }

    #[test]
    fn any_frame_never_panics_and_stays_in_bounds(frame in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut lb = Balancer::new(config(), Instant::ZERO);
        let key = tcp_key("198.18.0.100", 80);
        lb.add_service(svc(key, SchedKind::Rr), Instant::ZERO).unwrap();
        lb.add_dest(&key, dest("198.19.0.2", 80, ForwardMethod::Tunnel, 1)).unwrap();
        let (a, out) = run(&mut lb, Instant::from_secs(1), &frame);
        if let Some(o) = out {
            prop_assert!(o.len() <= frame.len() + HEADROOM + 64, "{a:?}");
        }
    }
}

// ------------------------------------------------------------------ batch = one by one

/// Services over every method, both families, TCP and UDP, with persistence and a
/// fwmark service, so that random traffic reaches every branch of the data path.
fn mixed_balancer() -> Balancer {
    use rvs_core::{ServiceKey, TunnelType};
    let mut lb = Balancer::new(config(), Instant::ZERO);
    let mut add = |key: ServiceKey, sched: SchedKind, dests: &[(&str, u16, ForwardMethod)]| {
        lb.add_service(svc(key, sched), Instant::ZERO).unwrap();
        for &(a, p, m) in dests {
            let mut d = dest(a, p, m, 1);
            if a == "2001:db8:9::2" {
                d.tunnel = TunnelType::Gue { port: 6080 };
            }
            lb.add_dest(&key, d).unwrap();
        }
    };
    add(
        tcp_key("198.18.0.100", 80),
        SchedKind::Rr,
        &[
            ("198.19.0.2", 8080, ForwardMethod::Masq),
            ("198.19.0.3", 8080, ForwardMethod::Masq),
        ],
    );
    add(
        tcp_key("198.18.0.101", 80),
        SchedKind::Wlc,
        &[
            ("198.19.0.4", 80, ForwardMethod::DirectRoute),
            ("198.19.0.5", 80, ForwardMethod::DirectRoute),
        ],
    );
    add(
        udp_key("198.18.0.102", 53),
        SchedKind::Rr,
        &[("198.19.0.6", 53, ForwardMethod::Tunnel)],
    );
    add(
        tcp_key("2001:db8::100", 443),
        SchedKind::Mh,
        &[("2001:db8:9::2", 443, ForwardMethod::Tunnel)],
    );
    add(
        udp_key("2001:db8::101", 53),
        SchedKind::Rr,
        &[("2001:db8:9::3", 5353, ForwardMethod::Masq)],
    );
    add(
        udp_key("198.18.0.103", 514),
        SchedKind::Rr,
        &[("198.19.0.8", 514, ForwardMethod::Masq)],
    );
    let key = tcp_key("198.18.0.104", 22);
    lb.add_service(
        persistent(key, SchedKind::Rr, 30, 0xffff_ff00),
        Instant::ZERO,
    )
    .unwrap();
    lb.add_dest(&key, dest("198.19.0.9", 22, ForwardMethod::DirectRoute, 1))
        .unwrap();
    lb.add_dest(&key, dest("198.19.0.10", 22, ForwardMethod::DirectRoute, 1))
        .unwrap();
    let key = ServiceKey::Fwmark { v6: false, mark: 7 };
    lb.add_service(svc(key, SchedKind::Rr), Instant::ZERO)
        .unwrap();
    lb.add_dest(&key, dest("198.19.0.11", 0, ForwardMethod::DirectRoute, 1))
        .unwrap();
    lb
}

/// An address service of [`mixed_balancer`] as the traffic generator sees it.
struct Svc {
    vip: &'static str,
    port: u16,
    udp: bool,
    /// NAT real servers (address, port), which send replies.
    nat: &'static [(&'static str, u16)],
}

const fn s(vip: &'static str, port: u16, udp: bool, nat: &'static [(&'static str, u16)]) -> Svc {
    Svc {
        vip,
        port,
        udp,
        nat,
    }
}

const SERVICES: [Svc; 8] = [
    s(
        "198.18.0.100",
        80,
        false,
        &[("198.19.0.2", 8080), ("198.19.0.3", 8080)],
    ),
    s("198.18.0.101", 80, false, &[]),
    s("198.18.0.102", 53, true, &[]),
    s("2001:db8::100", 443, false, &[]),
    s("2001:db8::101", 53, true, &[("2001:db8:9::3", 5353)]),
    s("198.18.0.103", 514, true, &[("198.19.0.8", 514)]),
    s("198.18.0.104", 22, false, &[]),
    s("198.18.0.200", 9000, false, &[]), // reached only through fwmark 7
];

/// One random frame: what it is, for which service and client, and its bytes.
#[derive(Clone, Debug)]
struct Frame {
    bytes: Vec<u8>,
    fwmark: u32,
}

fn client(v6: bool, c: u8) -> String {
    if v6 {
        format!("2001:db8:1::{}", 10 + c)
    } else {
        format!("198.18.1.{}", 10 + c)
    }
}

fn frame_strategy() -> impl Strategy<Value = Frame> {
    (
        0u8..12,
        0usize..SERVICES.len(),
        0u8..3,
        0u16..3,
        proptest::collection::vec(any::<u8>(), 0..48),
        any::<u16>(),
    )
        .prop_map(|(kind, s, c, p, payload, noise)| {
            let Svc {
                vip,
                port: vport,
                udp,
                nat,
            } = SERVICES[s];
            let v6 = vip.contains(':');
            let cl = client(v6, c);
            let cport = 40_000 + p;
            let l4 = |f: u8| {
                if udp {
                    PacketSpec::udp(&cl, cport, vip, vport)
                } else {
                    PacketSpec::tcp(&cl, cport, vip, vport, f)
                }
            };
            let mut fwmark = 0;
            let bytes = match kind {
                0 | 1 => l4(SYN).payload(&payload).build(),
                2 | 3 => l4(ACK).payload(&payload).build(),
                4 => l4(FIN | ACK).build(),
                5 => l4(RST).build(),
                6 => {
                    // a reply from a NAT real server (or from an address nobody knows)
                    let (rs, rport) = nat
                        .get(usize::from(noise) % nat.len().max(1))
                        .copied()
                        .unwrap_or((if v6 { "2001:db8:9::99" } else { "198.19.9.9" }, 1));
                    if udp {
                        PacketSpec::udp(rs, rport, &cl, cport)
                    } else {
                        PacketSpec::tcp(
                            rs,
                            rport,
                            &cl,
                            cport,
                            if noise & 1 == 0 { SYN | ACK } else { FIN | ACK },
                        )
                    }
                    .payload(&payload)
                    .build()
                }
                7 => {
                    // an ICMP error from the client about a reply it got from the VIP
                    let quoted = PacketSpec::udp(vip, vport, &cl, cport).build();
                    let ip_hdr = if v6 { 40 } else { 20 };
                    let (ty, code) = if v6 { (1, 4) } else { (3, 3) };
                    PacketSpec::new(&cl, vip, rvs_testkit::L4::Icmp { ty, code, word: 0 })
                        .payload(&quoted[14..14 + ip_hdr + 8])
                        .build()
                }
                8 => {
                    let mut f = l4(SYN).payload(&payload).build();
                    let cut = usize::from(noise) % f.len();
                    f.truncate(cut);
                    f
                }
                9 => {
                    let mut f = l4(ACK).payload(&payload).build();
                    f[14 + usize::from(noise) % 20] ^= 0x40; // IPv4 header or IPv6 addresses
                    f
                }
                10 => {
                    fwmark = if noise & 1 == 0 { 7 } else { u32::from(noise) };
                    l4(SYN).payload(&payload).build()
                }
                _ => payload,
            };
            Frame { bytes, fwmark }
        })
}

/// Run frames through `process` one at a time and through `process_batch` in one call;
/// the two balancers must agree on every action, every output byte and their state.
fn check_batch_equivalence(groups: &[(u64, Vec<Frame>, usize)]) -> Result<(), TestCaseError> {
    use rvs_core::{Action, FrameBuf, RxMeta};
    let mut one = mixed_balancer();
    let mut batch = mixed_balancer();
    let mut t = 0u64;
    for (step, frames, metas_len) in groups {
        t += step;
        let now = Instant::from_millis(t);
        let metas: Vec<RxMeta> = frames
            .iter()
            .take(*metas_len)
            .map(|f| RxMeta {
                fwmark: f.fwmark,
                ..RxMeta::default()
            })
            .collect();
        // one by one
        let mut bufs_one: Vec<Vec<u8>> = frames
            .iter()
            .map(|f| rvs_testkit::with_room(&f.bytes, HEADROOM, 64))
            .collect();
        let mut actions_one = Vec::new();
        for (i, (b, f)) in bufs_one.iter_mut().zip(frames).enumerate() {
            let mut fb = FrameBuf {
                buf: b,
                offset: HEADROOM,
                len: f.bytes.len(),
            };
            let meta = metas.get(i).copied().unwrap_or_default();
            actions_one.push(one.process(now, meta, &mut fb));
        }
        // batched
        let mut bufs_batch: Vec<Vec<u8>> = frames
            .iter()
            .map(|f| rvs_testkit::with_room(&f.bytes, HEADROOM, 64))
            .collect();
        let mut fbs: Vec<FrameBuf<'_>> = bufs_batch
            .iter_mut()
            .zip(frames)
            .map(|(b, f)| FrameBuf {
                buf: b,
                offset: HEADROOM,
                len: f.bytes.len(),
            })
            .collect();
        let mut actions_batch = vec![Action::Pass; frames.len()];
        let n = batch.process_batch(now, &metas, &mut fbs, &mut actions_batch);
        prop_assert_eq!(n, frames.len());
        prop_assert_eq!(&actions_one, &actions_batch);
        for (i, (a, b)) in bufs_one.iter().zip(&bufs_batch).enumerate() {
            prop_assert!(a == b, "frame {} of the group: output bytes differ", i);
        }
        prop_assert_eq!(one.counters(), batch.counters());
        prop_assert_eq!(one.connections(now), batch.connections(now));
        prop_assert_eq!(one.services(), batch.services());
        one.handle_timeout(now);
        batch.handle_timeout(now);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64)))]

    #[test]
    fn batch_processing_equals_one_by_one(
        groups in proptest::collection::vec(
            (0u64..90_000, proptest::collection::vec(frame_strategy(), 0..80), 0usize..80),
            1..6,
        ),
    ) {
        check_batch_equivalence(&groups)?;
    }
}

#[test]
fn batch_output_slices_shorter_than_frames_process_only_what_fits() {
    use rvs_core::{Action, FrameBuf, RxMeta};
    let mut lb = mixed_balancer();
    let frames: Vec<Vec<u8>> = (0..5u16)
        .map(|p| PacketSpec::tcp("198.18.1.10", 1000 + p, "198.18.0.101", 80, SYN).build())
        .collect();
    let mut bufs: Vec<Vec<u8>> = frames
        .iter()
        .map(|f| rvs_testkit::with_room(f, HEADROOM, 0))
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
    let mut actions = [Action::Pass; 3];
    let n = lb.process_batch(
        Instant::from_secs(1),
        &[RxMeta::default()],
        &mut fbs,
        &mut actions,
    );
    assert_eq!(n, 3);
    assert!(
        actions.iter().all(|a| matches!(a, Action::Forward(_))),
        "{actions:?}"
    );
    assert_eq!(lb.counters().conns_created, 3);
    assert_eq!(
        lb.process_batch(Instant::from_secs(1), &[], &mut [], &mut actions),
        0
    );
}
