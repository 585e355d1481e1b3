//! Every rvs-wire parser on arbitrary bytes: no panic, whatever the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_wire::*;

fuzz_target!(|data: &[u8]| {
    let _ = parse_l2(data);
    if let Ok(f) = EthernetFrame::new_checked(data) {
        let _ = EthernetRepr::parse(&f);
        let _ = f.payload();
    }
    if let Ok(p) = ArpPacket::new_checked(data) {
        let _ = ArpRepr::parse(&p);
    }
    if let Ok(p) = Ipv4Packet::new_checked(data) {
        let _ = Ipv4Repr::parse(&p);
        let _ = p.verify_checksum();
        let _ = p.payload();
    }
    if let Ok(p) = Ipv6Packet::new_checked(data) {
        let _ = Ipv6Repr::parse(&p);
        let _ = p.payload();
    }
    let _ = ipv6_upper_layer(data);
    let src: core::net::IpAddr = [198, 18, 0, 1].into();
    let dst: core::net::IpAddr = [198, 18, 0, 2].into();
    if let Ok(p) = TcpPacket::new_checked(data) {
        let _ = TcpRepr::parse(&p, &src, &dst);
        let _ = p.options();
        let _ = p.payload();
    }
    if let Ok(p) = UdpPacket::new_checked(data) {
        let _ = UdpRepr::parse(&p, &src, &dst);
    }
    if let Ok(p) = SctpPacket::new_checked(data) {
        let _ = p.verify_checksum();
    }
    if let Ok(p) = Icmpv4Packet::new_checked(data) {
        let _ = Icmpv4Repr::parse(&p);
        let _ = p.quoted();
    }
    if let Ok(p) = Icmpv6Packet::new_checked(data) {
        let _ = p.quoted();
    }
    let _ = quoted_ipv4(data);
    if let Ok(p) = GuePacket::new_checked(data) {
        let _ = p.payload();
    }
    let _ = checksum::data(data);
});
