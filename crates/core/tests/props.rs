//! Property tests of the data path: NAT in then out restores the client's view of the
//! tuple with valid checksums, for random addresses and ports over IPv4 and IPv6.

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
