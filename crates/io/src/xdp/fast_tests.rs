//! Tests of the in-kernel fast path with `BPF_PROG_TEST_RUN` (no interface, no traffic):
//! golden equivalence with rvs-core for every rewrite, the frames that must go on to user
//! space unmodified, the counters, and a randomised DNAT/SNAT comparison. Skipped with a
//! reason when not root or built without clang.

use std::net::IpAddr;
use std::os::fd::AsFd;

use rvs_core::time::Instant as CoreInstant;
use rvs_core::{
    Action, Balancer, Config, DestConfig, ForwardMethod, FrameBuf, Protocol, RxMeta, ServiceConfig,
    ServiceKey, TunnelType,
};
use rvs_sched::{SchedFlags, SchedKind};
use rvs_testkit::PacketSpec;
use rvs_testkit::flags::{ACK, FIN, PSH, RST, SYN};

use super::flows::test_run;
use super::*;
use crate::netns::skip_reason;

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;
const XDP_REDIRECT: u32 = 4;
/// `BPF_PROG_TEST_RUN` runs the program as if received on the namespace's loopback.
const LO: u32 = 1;
const OTHER_IF: u32 = 4242;

const CLIENT4: &str = "198.18.1.10";
const CLIENT6: &str = "2001:db8:1::10";
const VIP4: &str = "198.18.0.100";
const VIP6: &str = "2001:db8::100";
const RS4: &str = "198.19.0.2";
const RS6: &str = "2001:db8:9::2";
const TUN4: &str = "198.18.2.1";
const TUN6: &str = "2001:db8:2::1";
const SMAC: MacAddr = MacAddr([0x02, 0xaa, 0, 0, 0, 0x01]);
const DMAC: MacAddr = MacAddr([0x02, 0xbb, 0, 0, 0, 0x02]);
const HEADROOM: usize = 128;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

/// Both builds of the object, each with its XDP program and its TC program, loaded but
/// not attached; `None` (reason printed) when the test cannot run here.
fn programs(max_flows: u32) -> Option<Vec<(&'static str, XdpProgram)>> {
    if let Some(why) = skip_reason().or_else(xdp_unavailable) {
        eprintln!("skipped: {why}");
        return None;
    }
    Some(
        [
            ("steer.o xdp", STEER_OBJ, false),
            ("steer-alt.o xdp", STEER_OBJ_ALT, false),
            ("steer.o tc", STEER_OBJ, true),
            ("steer-alt.o tc", STEER_OBJ_ALT, true),
        ]
        .into_iter()
        .map(|(name, obj, tc)| {
            let p = XdpProgram::load(obj, 64, max_flows, "test", tc)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, p)
        })
        .collect(),
    )
}

fn is_tc(p: &XdpProgram) -> bool {
    p.mode() == XdpMode::Tc
}

/// The loaded program's descriptor, whichever hook it is for.
fn prog_fd(p: &XdpProgram) -> std::os::fd::OwnedFd {
    let fd = if is_tc(p) {
        p.tc_prog_ref()
            .expect("program")
            .fd()
            .expect("program fd")
            .as_fd()
            .try_clone_to_owned()
    } else {
        p.prog_ref()
            .expect("program")
            .fd()
            .expect("program fd")
            .as_fd()
            .try_clone_to_owned()
    };
    fd.expect("dup")
}

/// TC verdicts as the XDP ones the tests compare with: TC_ACT_REDIRECT (the only way the
/// TC program forwards) as XDP_REDIRECT, TC_ACT_UNSPEC (go on) as XDP_PASS, TC_ACT_SHOT
/// as XDP_DROP; anything else as itself plus 1000, which no test expects.
fn as_xdp(p: &XdpProgram, rc: u32) -> u32 {
    if !is_tc(p) {
        return rc;
    }
    match rc as i32 {
        7 => XDP_REDIRECT,
        -1 => XDP_PASS,
        2 => XDP_DROP,
        x => x as u32 + 1000,
    }
}

/// The verdict forwarding out of `ifindex` gives: XDP_TX back out of the receiving
/// interface (the test run's loopback) with XDP, a redirect otherwise and always with TC.
fn fwd_rc(p: &XdpProgram, ifindex: u32) -> u32 {
    if ifindex == LO && !is_tc(p) {
        XDP_TX
    } else {
        XDP_REDIRECT
    }
}

fn run(p: &XdpProgram, frame: &[u8], repeat: u32) -> (u32, Vec<u8>) {
    let fd = prog_fd(p);
    let (rc, out, _) = test_run(fd.as_fd(), frame, repeat).expect("BPF_PROG_TEST_RUN");
    (as_xdp(p, rc), out)
}

/// Mean nanoseconds per run of `frame` over `repeat` runs.
fn time_run(p: &XdpProgram, frame: &[u8], repeat: u32) -> (u32, u32) {
    let fd = prog_fd(p);
    let (rc, _, ns) = test_run(fd.as_fd(), frame, repeat).expect("BPF_PROG_TEST_RUN");
    (as_xdp(p, rc), ns)
}

/// Cost of the program per frame, by hand:
/// `cargo test -p rvs-io --release xdp::fast_tests::bench -- --ignored --nocapture`.
/// The kernel reruns the program on the frame the previous run left, so each rewrite is
/// timed over fewer runs than its TTL allows (and IPIP not at all: it grows every run).
#[test]
#[ignore = "benchmark: run by hand with --ignored --nocapture"]
fn bench_test_run_ns_per_frame() {
    let Some(progs) = programs(131_072) else {
        return;
    };
    for (name, mut p) in progs {
        // A full table: 100,000 other flows.
        let filler = Flow::new(false, false, ForwardMethod::DirectRoute, false);
        for i in 0..100_000u32 {
            let k = FlowKey {
                sport: (i % 60_000) as u16 + 1,
                dport: 1000 + (i / 60_000) as u16,
                ..filler.key(false)
            };
            p.flow_insert(&k, &filler.entry(false, OTHER_IF))
                .expect("filler");
        }
        let no_entry = Flow::new(false, false, ForwardMethod::DirectRoute, false);
        let mut frame = no_entry.spec(false, 0).payload(&[0; 18]).build();
        frame[14 + 20 + 1] = 7; // source port 40000 + 7: no entry
        frame[14 + 20 + 6..14 + 20 + 8].fill(0);
        let (rc, ns) = time_run(&p, &frame, 1_000_000);
        println!("{name}: no entry (steering, pass)        {ns:>4} ns/frame (verdict {rc})");
        for (method, mname) in [
            (ForwardMethod::DirectRoute, "DR"),
            (ForwardMethod::Masq, "DNAT"),
        ] {
            for v6 in [false, true] {
                let f = Flow::new(false, v6, method, false);
                p.flow_insert(&f.key(false), &f.entry(false, OTHER_IF))
                    .expect("insert");
                if method == ForwardMethod::Masq {
                    // The way back too, so that every run finds an entry for the frame
                    // the previous one rewrote.
                    let back = FlowKey {
                        dst: f.rs,
                        dport: f.rport,
                        ..f.key(false)
                    };
                    let mut e = f.entry(false, OTHER_IF);
                    e.rewrite = FlowRewrite::Dnat {
                        addr: f.vip,
                        port: f.vport,
                    };
                    p.flow_insert(&back, &e).expect("insert");
                }
                let mut spec = f.spec(false, 0).payload(&[0; 18]);
                spec.ttl = 255;
                let (rc, ns) = time_run(&p, &spec.build(), 250);
                println!(
                    "{name}: {mname:<4} IPv{} UDP 64-byte frame        {ns:>4} ns/frame (verdict {rc})",
                    if v6 { 6 } else { 4 }
                );
            }
        }
    }
}

// ------------------------------------------------------------------ the packet core side

/// One flow of a virtual service with one real server.
#[derive(Clone, Debug)]
struct Flow {
    tcp: bool,
    client: IpAddr,
    cport: u16,
    vip: IpAddr,
    vport: u16,
    rs: IpAddr,
    rport: u16,
    method: ForwardMethod,
}

impl Flow {
    fn new(tcp: bool, v6: bool, method: ForwardMethod, outer_v6: bool) -> Self {
        let rs = if method == ForwardMethod::Tunnel {
            if outer_v6 { RS6 } else { RS4 }
        } else if v6 {
            RS6
        } else {
            RS4
        };
        Self {
            tcp,
            client: ip(if v6 { CLIENT6 } else { CLIENT4 }),
            cport: 40000,
            vip: ip(if v6 { VIP6 } else { VIP4 }),
            vport: 80,
            rs: ip(rs),
            rport: if method == ForwardMethod::Masq {
                8080
            } else {
                80
            },
            method,
        }
    }

    fn balancer(&self) -> Balancer {
        let cfg = Config {
            capacity: 1024,
            tunnel_src_v4: Some(TUN4.parse().expect("v4")),
            tunnel_src_v6: Some(TUN6.parse().expect("v6")),
            ..Config::default()
        };
        let mut lb = Balancer::new(cfg, CoreInstant::ZERO);
        let key = ServiceKey::Addr {
            proto: if self.tcp {
                Protocol::Tcp
            } else {
                Protocol::Udp
            },
            addr: self.vip,
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
            CoreInstant::ZERO,
        )
        .expect("service");
        let mut d = DestConfig::new(self.rs, self.rport);
        d.method = self.method;
        d.tunnel = TunnelType::Ipip;
        lb.add_dest(&key, d).expect("destination");
        lb
    }

    fn spec(&self, reply: bool, flags: u8) -> PacketSpec {
        let (s, sp, d, dp) = if reply {
            (self.rs, self.rport, self.client, self.cport)
        } else {
            (self.client, self.cport, self.vip, self.vport)
        };
        let (s, d) = (s.to_string(), d.to_string());
        if self.tcp {
            PacketSpec::tcp(&s, sp, &d, dp, flags)
        } else {
            PacketSpec::udp(&s, sp, &d, dp)
        }
    }

    /// The key of the packets `spec(reply, ..)` builds.
    fn key(&self, reply: bool) -> FlowKey {
        let (src, sport, dst, dport) = if reply {
            (self.rs, self.rport, self.client, self.cport)
        } else {
            (self.client, self.cport, self.vip, self.vport)
        };
        FlowKey {
            src,
            dst,
            proto: if self.tcp { 6 } else { 17 },
            sport,
            dport,
        }
    }

    /// What the daemon would install for this connection and direction.
    fn entry(&self, reply: bool, ifindex: u32) -> FlowEntry {
        let (rewrite, overhead) = match (reply, self.method) {
            (true, _) => (
                FlowRewrite::Snat {
                    addr: self.vip,
                    port: self.vport,
                },
                0,
            ),
            (false, ForwardMethod::Masq) => (
                FlowRewrite::Dnat {
                    addr: self.rs,
                    port: self.rport,
                },
                0,
            ),
            (false, ForwardMethod::Tunnel) => {
                let v6 = self.rs.is_ipv6();
                (
                    FlowRewrite::Ipip {
                        src: ip(if v6 { TUN6 } else { TUN4 }),
                        dst: self.rs,
                        copy_df: true,
                    },
                    if v6 { 40 } else { 20 },
                )
            }
            (false, _) => (FlowRewrite::Route, 0),
        };
        FlowEntry {
            rewrite,
            ifindex,
            src_mac: SMAC,
            dst_mac: DMAC,
            max_len: 1500 - overhead,
            counter: 3,
        }
    }

    /// Drive `lb` until the connection is established (handshake for TCP, one datagram
    /// each way for UDP) so that the next data packet takes the established path.
    fn establish(&self, lb: &mut Balancer) {
        let mut go = |s: PacketSpec| {
            let (a, _) = core_run(lb, &s.build());
            assert!(matches!(a, Action::Forward(_)), "{a:?} for {s:?}");
        };
        if self.tcp {
            go(self.spec(false, SYN));
            if self.method == ForwardMethod::Masq {
                go(self.spec(true, SYN | ACK));
            }
            go(self.spec(false, ACK));
        } else {
            go(self.spec(false, 0).payload(b"first"));
            if self.method == ForwardMethod::Masq {
                go(self.spec(true, 0).payload(b"answer"));
            }
        }
    }
}

/// Process `frame` as rvs-core does in the daemon: the action and the output frame.
fn core_run(lb: &mut Balancer, frame: &[u8]) -> (Action, Option<Vec<u8>>) {
    let mut buf = vec![0u8; HEADROOM + frame.len() + 64];
    buf[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
    let mut f = FrameBuf {
        buf: &mut buf,
        offset: HEADROOM,
        len: frame.len(),
    };
    let a = lb.process(CoreInstant::ZERO, RxMeta::default(), &mut f);
    let out = match a {
        Action::Forward(e) => Some(buf[e.offset..e.offset + e.len].to_vec()),
        _ => None,
    };
    (a, out)
}

/// rvs-core's output for `frame` with the MAC addresses the daemon sets.
fn core_expect(lb: &mut Balancer, frame: &[u8]) -> Vec<u8> {
    let (a, out) = core_run(lb, frame);
    let mut out = out.unwrap_or_else(|| panic!("rvs-core did not forward: {a:?}"));
    out[..6].copy_from_slice(&DMAC.0);
    out[6..12].copy_from_slice(&SMAC.0);
    out
}

/// Compare the program's output with rvs-core's; for an IPv4 outer header the
/// identification and header checksum are the director's choice: compared without them,
/// and the checksum checked to be valid.
fn assert_same(what: &str, got: &[u8], want: &[u8], ipip4: bool) {
    if ipip4 {
        assert_eq!(got.len(), want.len(), "{what}: length");
        assert_eq!(
            rvs_wire::checksum::data(&got[14..34]),
            0xffff,
            "{what}: outer IPv4 checksum"
        );
        let mask = |f: &[u8]| {
            let mut f = f.to_vec();
            f[18..20].fill(0);
            f[24..26].fill(0);
            f
        };
        assert_eq!(mask(got), mask(want), "{what}: {got:02x?}");
    } else {
        assert_eq!(got, want, "{what}");
    }
}

// ------------------------------------------------------------------ golden equivalence

#[test]
fn golden_rewrites_equal_the_packet_core() {
    let Some(progs) = programs(64) else {
        return;
    };
    let methods = [
        (ForwardMethod::DirectRoute, false, false, "DR"),
        (ForwardMethod::Masq, false, false, "DNAT"),
        (ForwardMethod::Masq, false, true, "SNAT"),
        (ForwardMethod::Tunnel, false, false, "IPIP v4 outer"),
        (ForwardMethod::Tunnel, true, false, "IPIP v6 outer"),
    ];
    for (name, mut p) in progs {
        for (method, outer_v6, reply, mname) in methods {
            for v6 in [false, true] {
                for tcp in [false, true] {
                    for (tos, pad, ifindex) in [(0u8, false, LO), (0x03, true, OTHER_IF)] {
                        let what = format!(
                            "{name} {mname} {} {} tos {tos:#x} pad {pad} ifindex {ifindex}",
                            if v6 { "IPv6" } else { "IPv4" },
                            if tcp { "TCP" } else { "UDP" },
                        );
                        let flow = Flow::new(tcp, v6, method, outer_v6);
                        let mut lb = flow.balancer();
                        flow.establish(&mut lb);
                        let mut spec = flow.spec(reply, ACK | PSH).payload(b"data!");
                        spec.tos = tos;
                        let mut frame = spec.build();
                        if pad {
                            frame.resize(frame.len().max(60) + 6, 0xee);
                        }
                        let want = core_expect(&mut lb, &frame);
                        p.flow_insert(&flow.key(reply), &flow.entry(reply, ifindex))
                            .unwrap_or_else(|e| panic!("{what}: insert: {e}"));
                        let before = p.counters().expect("counters");
                        let (rc, got) = run(&p, &frame, 0);
                        if is_tc(&p) && method == ForwardMethod::Tunnel && outer_v6 != v6 {
                            // not on this hook: on to user space, untouched
                            assert_eq!(rc, XDP_PASS, "{what}: verdict");
                            assert_eq!(got, frame, "{what}: frame modified");
                            assert!(p.flow_remove(&flow.key(reply)).expect("remove"));
                            continue;
                        }
                        assert_eq!(rc, fwd_rc(&p, ifindex), "{what}: verdict");
                        let ipip4 = method == ForwardMethod::Tunnel && !outer_v6;
                        assert_same(&what, &got, &want, ipip4);
                        let after = p.counters().expect("counters");
                        assert_eq!(after.fast_forwarded, before.fast_forwarded + 1, "{what}");
                        assert_eq!(after.passed(), before.passed(), "{what}");
                        assert!(p.flow_remove(&flow.key(reply)).expect("remove"), "{what}");
                    }
                }
            }
        }
    }
}

/// Outer IPv4 DF: copied from the inner packet with `copy_df`, clear without.
#[test]
fn ipip_df_follows_the_flag() {
    let Some(progs) = programs(64) else {
        return;
    };
    for (name, mut p) in progs {
        let flow = Flow::new(false, false, ForwardMethod::Tunnel, false);
        for (inner_df, copy_df, want) in [(true, true, 0x40), (false, true, 0), (true, false, 0)] {
            let mut e = flow.entry(false, LO);
            if let FlowRewrite::Ipip { copy_df: c, .. } = &mut e.rewrite {
                *c = copy_df;
            }
            p.flow_insert(&flow.key(false), &e).expect("insert");
            let mut spec = flow.spec(false, 0).payload(b"x");
            spec.df = inner_df;
            let (rc, out) = run(&p, &spec.build(), 0);
            assert_eq!(rc, fwd_rc(&p, LO), "{name}");
            assert_eq!(
                out[14 + 6] & 0x40,
                want,
                "{name} inner {inner_df} copy {copy_df}"
            );
            assert_eq!(rvs_wire::checksum::data(&out[14..34]), 0xffff);
        }
    }
}

// ------------------------------------------------------------------ pass-through cases

fn fix_ip4_csum(f: &mut [u8]) {
    let ihl = usize::from(f[14] & 0x0f) * 4;
    f[24..26].fill(0);
    let c = !rvs_wire::checksum::data(&f[14..14 + ihl]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn frames_the_fast_path_leaves_to_user_space() {
    let Some(progs) = programs(64) else {
        return;
    };
    for (name, mut p) in progs {
        let tcp = Flow::new(true, false, ForwardMethod::DirectRoute, false);
        let udp = Flow::new(false, false, ForwardMethod::DirectRoute, false);
        let udp6 = Flow::new(false, true, ForwardMethod::DirectRoute, false);
        for f in [&tcp, &udp, &udp6] {
            let mut e = f.entry(false, LO);
            e.max_len = 200;
            p.flow_insert(&f.key(false), &e).expect("insert");
        }
        let data = |f: &Flow| f.spec(false, ACK).payload(b"hello");
        let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
        for (n, fl) in [("SYN", SYN), ("FIN", FIN | ACK), ("RST", RST)] {
            cases.push((n, tcp.spec(false, fl).build()));
        }
        let mut s = data(&udp);
        s.ttl = 1;
        cases.push(("TTL 1", s.build()));
        let mut s = data(&udp6);
        s.ttl = 1;
        cases.push(("hop limit 1", s.build()));
        cases.push(("too big", data(&udp).payload(&[7; 200]).build()));
        cases.push(("too big v6", data(&udp6).payload(&[7; 200]).build()));
        let mut s = data(&udp);
        s.vlan = Some(5);
        cases.push(("VLAN", s.build()));
        // IPv4 options: a 4-byte NOP option after the header.
        let mut f = data(&udp).build();
        f.splice(34..34, [1u8, 1, 1, 1]);
        f[14] = 0x46;
        let tot = u16::from_be_bytes([f[16], f[17]]) + 4;
        f[16..18].copy_from_slice(&tot.to_be_bytes());
        fix_ip4_csum(&mut f);
        cases.push(("IPv4 options", f));
        let mut f = data(&udp).build();
        f[20] |= 0x20; // MF
        fix_ip4_csum(&mut f);
        cases.push(("fragment (MF)", f));
        let mut f = data(&udp).build();
        f[21] = 8; // offset
        fix_ip4_csum(&mut f);
        cases.push(("fragment (offset)", f));
        let mut f = data(&udp).build();
        f[24] ^= 0x5a;
        cases.push(("bad IPv4 checksum", f));
        let mut s = data(&udp);
        s.l4 = rvs_testkit::L4::Udp {
            sport: 40001,
            dport: 80,
        };
        cases.push(("no entry", s.build()));
        let full = data(&udp).build();
        cases.push(("truncated IP", full[..full.len() - 1].to_vec()));
        cases.push(("truncated UDP", full[..14 + 20 + 4].to_vec()));
        cases.push(("Ethernet only", full[..14].to_vec()));
        let full6 = data(&udp6).build();
        cases.push(("truncated IPv6", full6[..14 + 30].to_vec()));
        let mut f = full6.clone();
        f[18..20].fill(0);
        cases.push(("IPv6 payload length 0", f));
        let mut f = tcp.spec(false, ACK).build();
        f[14 + 20 + 12] = 0x40; // data offset 4
        cases.push(("TCP data offset < 5", f));
        let mut f = tcp.spec(false, ACK).build();
        f[14 + 20 + 12] = 0xf0; // 60 bytes of TCP header in a 20-byte segment
        cases.push(("TCP data offset too long", f));

        if is_tc(&p) {
            // BPF_PROG_TEST_RUN refuses a socket buffer whose IP header is incomplete
            cases.retain(|(what, _)| !matches!(*what, "Ethernet only" | "truncated IPv6"));
        }
        let before = p.counters().expect("counters");
        for (what, frame) in &cases {
            let Ok((rc, out, _)) = test_run(prog_fd(&p).as_fd(), frame, 0) else {
                panic!("{name} {what}: BPF_PROG_TEST_RUN failed");
            };
            let rc = as_xdp(&p, rc);
            assert_eq!(rc, XDP_PASS, "{name} {what}");
            assert_eq!(&out, frame, "{name} {what}: frame modified");
        }
        let after = p.counters().expect("counters");
        assert_eq!(after.fast_forwarded, before.fast_forwarded, "{after:?}");
        assert_eq!(
            after.fast_passed_tcp_flags - before.fast_passed_tcp_flags,
            3
        );
        assert_eq!(after.fast_passed_ttl - before.fast_passed_ttl, 2);
        assert_eq!(after.fast_passed_too_big - before.fast_passed_too_big, 2);
        assert_eq!(after.fast_dropped, 0);
        // Every case then went through the steering: no socket, no rule, all passed.
        assert_eq!(
            after.passed() - before.passed(),
            cases.len() as u64,
            "{after:?}"
        );
    }
}

#[test]
fn flow_counters_count_packets_and_bytes() {
    let Some(progs) = programs(64) else {
        return;
    };
    for (name, mut p) in progs {
        let flow = Flow::new(false, false, ForwardMethod::DirectRoute, false);
        let mut e = flow.entry(false, OTHER_IF);
        e.counter = 63;
        p.flow_counter_reset(63);
        p.flow_insert(&flow.key(false), &e).expect("insert");
        let frame = flow.spec(false, 0).payload(&[1; 30]).build();
        let ip_len = (frame.len() - 14) as u64;
        let (rc, _) = run(&p, &frame, 10);
        assert_eq!(rc, XDP_REDIRECT, "{name}");
        assert_eq!(p.flow_counter(63), (10, 10 * ip_len), "{name}");
        assert_eq!(p.counters().expect("counters").fast_forwarded, 10);
        p.flow_counter_reset(63);
        assert_eq!(p.flow_counter(63), (0, 0));
        // Out of range reads nothing and does not panic.
        assert_eq!(p.flow_counter(64), (0, 0));
        p.flow_counter_reset(u32::MAX);
    }
}

#[test]
fn flow_table_insert_remove_clear_full() {
    let Some(progs) = programs(4) else {
        return;
    };
    for (name, mut p) in progs {
        assert_eq!(p.max_flows(), 4);
        let flow = Flow::new(true, false, ForwardMethod::DirectRoute, false);
        let e = flow.entry(false, LO);
        let e = FlowEntry { counter: 0, ..e };
        let key = |port| FlowKey {
            sport: port,
            ..flow.key(false)
        };
        for port in 1..=4 {
            p.flow_insert(&key(port), &e).expect("insert");
        }
        let err = p.flow_insert(&key(5), &e).expect_err("table full");
        assert_eq!(err.kind(), io::ErrorKind::OutOfMemory, "{name}: {err}");
        // Replacing an existing entry still works when full.
        p.flow_insert(&key(4), &FlowEntry { max_len: 9, ..e })
            .expect("replace");
        let bad = FlowEntry { counter: 4, ..e };
        let err = p
            .flow_insert(&key(1), &bad)
            .expect_err("counter out of range");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(p.flow_remove(&key(1)).expect("remove"));
        assert!(!p.flow_remove(&key(1)).expect("remove again"));
        assert_eq!(p.flow_clear().expect("clear"), 3, "{name}");
        assert_eq!(p.flow_clear().expect("clear"), 0);
        // Cleared: the flow is no longer forwarded.
        let frame = flow.spec(false, ACK).build();
        assert_eq!(run(&p, &frame, 0).0, XDP_PASS);
    }
}

// ------------------------------------------------------------------ randomised NAT

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn u16(&mut self) -> u16 {
        self.next() as u16
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn addr(&mut self, v6: bool) -> IpAddr {
        if v6 {
            let mut o = [0u8; 16];
            o[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
            for b in &mut o[4..] {
                *b = self.next() as u8;
            }
            IpAddr::from(o)
        } else {
            // 198.18.0.0/15, avoiding .0 and .255 for looks only.
            let x = self.next() as u32;
            IpAddr::from([
                198,
                18 + (x & 1) as u8,
                (x >> 8) as u8,
                1 + (x >> 16) as u8 % 254,
            ])
        }
    }
    fn port(&mut self) -> u16 {
        1 + self.below(65535) as u16
    }
}

/// The L4 checksum field rvs-core's rewrite would compute from `c` (before the UDP rules),
/// to find inputs whose result is 0 or 0xffff.
fn raw_update(c: u16, old_a: &[u8], new_a: &[u8], op: u16, np: u16) -> u16 {
    let c = rvs_wire::checksum::update_bytes(c, old_a, new_a);
    rvs_wire::checksum::update16(c, op, np)
}

fn octets(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

#[test]
fn random_nat_equals_the_packet_core() {
    let Some(progs) = programs(64) else {
        return;
    };
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut edge_hits = 0;
    for (name, mut p) in progs {
        for i in 0..300 {
            let v6 = rng.below(2) == 1;
            let tcp = rng.below(2) == 1;
            let reply = rng.below(2) == 1;
            let mut flow = Flow::new(tcp, v6, ForwardMethod::Masq, false);
            flow.client = rng.addr(v6);
            flow.vip = rng.addr(v6);
            flow.rs = rng.addr(v6);
            if flow.client == flow.vip || flow.client == flow.rs || flow.vip == flow.rs {
                continue;
            }
            flow.cport = rng.port();
            flow.vport = rng.port();
            flow.rport = rng.port();
            let mut lb = flow.balancer();
            flow.establish(&mut lb);
            let mut spec = flow
                .spec(reply, ACK)
                .payload(&vec![0x5a; rng.below(40) as usize]);
            spec.ttl = 2 + rng.below(254) as u8;
            spec.tos = rng.next() as u8;
            spec.df = rng.below(2) == 1;
            let mut frame = spec.build();
            let l4 = 14 + if v6 { 40 } else { 20 };
            let at = l4 + if tcp { 16 } else { 6 };
            // The checksum field: valid, random, 0, 0xffff, or one that makes the result
            // 0 / 0xffff.
            let (old_a, new_a, op, np) = if reply {
                (octets(flow.rs), octets(flow.vip), flow.rport, flow.vport)
            } else {
                (octets(flow.vip), octets(flow.rs), flow.vport, flow.rport)
            };
            let c = match rng.below(6) {
                0 => u16::from_be_bytes([frame[at], frame[at + 1]]),
                1 => rng.u16(),
                2 => 0,
                3 => 0xffff,
                k => {
                    let target = if k == 4 { 0 } else { 0xffff };
                    let start = rng.u16();
                    (0..=u16::MAX)
                        .map(|d| start.wrapping_add(d))
                        .find(|&c| raw_update(c, &old_a, &new_a, op, np) == target)
                        .unwrap_or(start)
                }
            };
            let r = raw_update(c, &old_a, &new_a, op, np);
            if r == 0 || r == 0xffff {
                edge_hits += 1;
            }
            frame[at..at + 2].copy_from_slice(&c.to_be_bytes());
            let what = format!(
                "{name} #{i} {} {} {} csum {c:#06x}: {flow:?}",
                if v6 { "v6" } else { "v4" },
                if tcp { "TCP" } else { "UDP" },
                if reply { "SNAT" } else { "DNAT" }
            );
            let want = core_expect(&mut lb, &frame);
            p.flow_insert(&flow.key(reply), &flow.entry(reply, LO))
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let (rc, got) = run(&p, &frame, 0);
            assert_eq!(rc, fwd_rc(&p, LO), "{what}");
            assert_same(&what, &got, &want, false);
            assert!(p.flow_remove(&flow.key(reply)).expect("remove"));
        }
    }
    assert!(
        edge_hits > 20,
        "only {edge_hits} results of 0/0xffff exercised"
    );
}

// ------------------------------------------------------------------ between namespaces

/// Client → director (program on `d0`, ROUTE entry) → real server, all in the kernel.
///
/// Also pins the veth detail of the module docs: a frame redirected into a veth is
/// delivered by the *peer's* NAPI instance, which exists only while the peer has an XDP
/// program or GRO on; without it the redirect fails and the frame is lost.
#[test]
fn netns_route_is_forwarded_by_the_kernel() {
    use crate::netns::{NetNs, veth};
    use crate::packet::{PacketOpts, PacketSocket};
    use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
    use std::time::{Duration, Instant};

    if let Some(why) = skip_reason().or_else(xdp_unavailable) {
        eprintln!("skipped: {why}");
        return;
    }
    const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 5, 1);
    const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 5, 100);
    let c = NetNs::new("fp-client").expect("client namespace");
    let d = NetNs::new("fp-director").expect("director namespace");
    let r = NetNs::new("fp-rs").expect("real-server namespace");
    veth(&c, "c0", &d, "d0").expect("veth client-director");
    veth(&d, "d1", &r, "r0").expect("veth director-rs");
    c.ip(&["addr", "add", "198.18.5.1/24", "dev", "c0"])
        .expect("client address");
    // DR: the real server has the VIP.
    r.ip(&["addr", "add", "198.18.5.100/24", "dev", "r0"])
        .expect("rs address");
    let d0_mac = d.run(|| mac_of("d0")).expect("ns").expect("mac d0");
    let d1_mac = d.run(|| mac_of("d1")).expect("ns").expect("mac d1");
    let r0_mac = r.run(|| mac_of("r0")).expect("ns").expect("mac r0");
    let d1_index = d.run(|| ifindex("d1")).expect("ns").expect("ifindex d1");
    // The client sends the VIP's traffic to the director.
    c.ip(&[
        "neigh",
        "replace",
        "198.18.5.100",
        "lladdr",
        &d0_mac.to_string(),
        "dev",
        "c0",
        "nud",
        "permanent",
    ])
    .expect("client neighbour");
    // A local sender on veth leaves the UDP checksum partial for offload; the redirected
    // frame reaches the real server without that status and would fail its check.
    let o = c
        .exec("ethtool", &["-K", "c0", "tx", "off"])
        .expect("ethtool");
    assert!(
        o.status.success(),
        "ethtool: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let ethtool = |gro: &str| {
        let o = r
            .exec("ethtool", &["-K", "r0", "gro", gro])
            .expect("ethtool");
        assert!(
            o.status.success(),
            "ethtool: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    ethtool("off");

    let mut p = match d.run(|| XdpProgram::attach("d0", XdpMode::Native, 16, 64)) {
        Ok(Ok(p)) => p,
        Ok(Err(e)) if e.kind() == io::ErrorKind::Unsupported => {
            eprintln!("skipped: native XDP on veth refused: {e}");
            return;
        }
        other => panic!("attach: {other:?}"),
    };
    assert_eq!(p.mode(), XdpMode::Native);
    let key = FlowKey {
        src: CLIENT.into(),
        dst: VIP.into(),
        proto: 17,
        sport: 40000,
        dport: 9000,
    };
    p.flow_insert(
        &key,
        &FlowEntry {
            rewrite: FlowRewrite::Route,
            ifindex: d1_index,
            src_mac: d1_mac,
            dst_mac: r0_mac,
            max_len: 1500,
            counter: 1,
        },
    )
    .expect("flow entry");

    let (rs_udp, mut rs_cap) = r
        .run(|| {
            let u = UdpSocket::bind((VIP, 9000)).expect("bind rs");
            u.set_read_timeout(Some(Duration::from_millis(100)))
                .expect("timeout");
            let cap = PacketSocket::open("r0", &PacketOpts::default()).expect("capture");
            (u, cap)
        })
        .expect("ns");
    let send = |n: usize, tag: &str| {
        c.run(|| {
            let u = UdpSocket::bind((CLIENT, 40000)).expect("bind client");
            for i in 0..n {
                let dst: SocketAddr = (VIP, 9000).into();
                u.send_to(format!("{tag}-{i}").as_bytes(), dst)
                    .expect("send");
            }
        })
        .expect("ns");
    };
    let receive = |want: usize, wait: Duration| {
        let mut got = Vec::new();
        let deadline = Instant::now() + wait;
        let mut buf = [0u8; 2048];
        while got.len() < want && Instant::now() < deadline {
            if let Ok(n) = rs_udp.recv(&mut buf) {
                got.push(buf[..n].to_vec());
            }
        }
        got
    };

    // Peer without NAPI (no XDP program, GRO off): the redirect is refused and the frames
    // are lost, though the program forwarded them.
    send(3, "no-napi");
    assert!(
        receive(1, Duration::from_millis(500)).is_empty(),
        "delivered without NAPI on the peer: the module docs are wrong for this kernel"
    );
    assert_eq!(p.flow_counter(1).0, 3);

    // GRO on the peer gives it a NAPI instance: delivered.
    ethtool("on");
    p.flow_counter_reset(1);
    send(5, "napi");
    let got = receive(5, Duration::from_secs(5));
    assert_eq!(got.len(), 5, "{got:?}");
    assert_eq!(got[0], b"napi-0");
    let ip_len = 20 + 8 + "napi-0".len() as u64;
    assert_eq!(p.flow_counter(1), (5, 5 * ip_len));
    let st = p.counters().expect("counters");
    assert_eq!(st.fast_forwarded, 8, "{st:?}");

    // On the wire to the real server: its MAC, from the director's, TTL 64 - 1.
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    while seen.is_empty() && Instant::now() < deadline {
        rs_cap
            .recv_batch(Duration::from_millis(100), |f, _| {
                if f.len() > 34 && f[12..14] == [0x08, 0x00] && f[23] == 17 {
                    seen.push(f.to_vec());
                }
            })
            .expect("capture");
    }
    let f = seen.first().expect("a captured frame");
    assert_eq!(&f[..6], &r0_mac.0);
    assert_eq!(&f[6..12], &d1_mac.0);
    assert_eq!(f[22], 63, "TTL decremented");
    assert_eq!(rvs_wire::checksum::data(&f[14..34]), 0xffff);

    // GRO off again, but an XDP program on the peer (one that passes everything): NAPI
    // again, delivered.
    ethtool("off");
    let peer = r
        .run(|| XdpProgram::attach("r0", XdpMode::Native, 16, 16))
        .expect("ns")
        .expect("program on the peer");
    send(2, "peer-xdp");
    assert_eq!(receive(2, Duration::from_secs(5)).len(), 2);
    r.run(move || drop(peer)).expect("ns");
    d.run(move || drop(p)).expect("ns");
}

// ------------------------------------------------------------------ IPv4 slot table

fn raw_key(k: &FlowKey) -> FlowKeyRaw {
    k.encode().expect("valid key")
}

fn place(p: &XdpProgram, k: &FlowKey) -> Option<flows::FlowPlace> {
    p.ftab.place(&raw_key(k))
}

fn in_hash_map(p: &XdpProgram, k: &FlowKey) -> bool {
    p.flows.get(&raw_key(k), 0).is_ok()
}

/// The slot index user space computes is the one the program probes first: each key,
/// alone in an empty table, lands on the first slot of its bucket and is forwarded from
/// there.
#[test]
fn ftab_hash_of_user_space_is_the_programs() {
    let Some(progs) = programs(1000) else {
        return;
    };
    let mut rng = Rng(0x5eed_f7ab);
    for (name, mut p) in progs {
        let mask = ftab_slots(1000) - 1;
        assert_eq!(mask, 1023);
        for tcp in [false, true] {
            for _ in 0..64 {
                let flow = Flow {
                    client: rng.addr(false),
                    cport: rng.port(),
                    vip: rng.addr(false),
                    vport: rng.port(),
                    ..Flow::new(tcp, false, ForwardMethod::DirectRoute, false)
                };
                let k = flow.key(false);
                p.flow_insert(&k, &flow.entry(false, OTHER_IF))
                    .expect("insert");
                let want = flows::ftab_hash(&raw_key(&k)) & mask & !3;
                assert_eq!(want, flows::ftab_bucket(&raw_key(&k), mask + 1));
                assert_eq!(place(&p, &k), Some(flows::FlowPlace::Slot(want)), "{name}");
                assert!(!in_hash_map(&p, &k));
                let frame = flow.spec(false, ACK).build();
                assert_eq!(run(&p, &frame, 0).0, XDP_REDIRECT, "{name} {k:?}");
                assert!(p.flow_remove(&k).expect("remove"));
                assert_eq!(run(&p, &frame, 0).0, XDP_PASS, "{name} {k:?}");
            }
        }
    }
}

/// More keys than a bucket holds: the extra one goes to the hash map and is still
/// forwarded; a freed slot is reused on the next insert (the key leaves the hash map).
#[test]
fn ftab_window_overflow_falls_back_to_the_hash_map() {
    let Some(progs) = programs(64) else {
        return;
    };
    for (name, mut p) in progs {
        let base = Flow::new(false, false, ForwardMethod::DirectRoute, false);
        let window = |f: &Flow| flows::ftab_bucket(&raw_key(&f.key(false)), 64);
        let want = window(&base);
        let same: Vec<Flow> = (1..=u16::MAX)
            .map(|cport| Flow { cport, ..base })
            .filter(|f| window(f) == want)
            .take(flows::FTAB_WINDOW as usize + 1)
            .collect();
        assert_eq!(same.len(), flows::FTAB_WINDOW as usize + 1);
        for f in &same {
            p.flow_insert(&f.key(false), &f.entry(false, OTHER_IF))
                .expect("insert");
        }
        let (last, rest) = same.split_last().expect("five flows");
        for f in rest {
            assert!(matches!(
                place(&p, &f.key(false)),
                Some(flows::FlowPlace::Slot(_))
            ));
            assert!(!in_hash_map(&p, &f.key(false)));
        }
        assert_eq!(place(&p, &last.key(false)), Some(flows::FlowPlace::Hash));
        assert!(in_hash_map(&p, &last.key(false)));
        for f in &same {
            let frame = f.spec(false, 0).payload(b"x").build();
            assert_eq!(run(&p, &frame, 0).0, XDP_REDIRECT, "{name}");
        }
        // Remove one from the array: it is no longer forwarded, its slot is free.
        let gone = &same[1];
        assert!(p.flow_remove(&gone.key(false)).expect("remove"));
        assert_eq!(place(&p, &gone.key(false)), None);
        let frame = gone.spec(false, 0).payload(b"x").build();
        assert_eq!(run(&p, &frame, 0).0, XDP_PASS, "{name}");
        // Updating the overflowed key moves it into the freed slot, out of the hash map.
        p.flow_insert(&last.key(false), &last.entry(false, OTHER_IF))
            .expect("update");
        assert!(matches!(
            place(&p, &last.key(false)),
            Some(flows::FlowPlace::Slot(_))
        ));
        assert!(!in_hash_map(&p, &last.key(false)));
        let frame = last.spec(false, 0).payload(b"x").build();
        assert_eq!(run(&p, &frame, 0).0, XDP_REDIRECT, "{name}");
        // Re-insert the removed one: the window is full again, so the hash map.
        p.flow_insert(&gone.key(false), &gone.entry(false, OTHER_IF))
            .expect("re-insert");
        assert_eq!(place(&p, &gone.key(false)), Some(flows::FlowPlace::Hash));
        let frame = gone.spec(false, 0).payload(b"x").build();
        assert_eq!(run(&p, &frame, 0).0, XDP_REDIRECT, "{name}");
        assert_eq!(p.flow_clear().expect("clear"), same.len(), "{name}");
        for f in &same {
            assert_eq!(place(&p, &f.key(false)), None);
            let frame = f.spec(false, 0).payload(b"x").build();
            assert_eq!(run(&p, &frame, 0).0, XDP_PASS, "{name}");
        }
    }
}

/// Replacing a slot's entry writes it in place (sequence +2); an entry that no longer fits
/// a slot (IPv6 outer tunnel) moves to the hash map and back.
#[test]
fn ftab_update_in_place_and_move() {
    let Some(progs) = programs(64) else {
        return;
    };
    for (name, mut p) in progs {
        let flow = Flow::new(false, false, ForwardMethod::DirectRoute, false);
        let k = flow.key(false);
        let e = flow.entry(false, OTHER_IF);
        p.flow_insert(&k, &e).expect("insert");
        let Some(flows::FlowPlace::Slot(i)) = place(&p, &k) else {
            panic!("{name}: not in the array");
        };
        let seq = p.ftab.seq(i);
        assert_eq!(seq % 2, 0);
        let frame = flow.spec(false, 0).payload(&[7; 100]).build();
        // Too small max_len: the frame goes on to user space.
        p.flow_insert(&k, &FlowEntry { max_len: 50, ..e })
            .expect("update");
        assert_eq!(place(&p, &k), Some(flows::FlowPlace::Slot(i)));
        assert_eq!(p.ftab.seq(i), seq.wrapping_add(2));
        assert_eq!(run(&p, &frame, 0).0, XDP_PASS, "{name}");
        p.flow_counter_reset(9);
        p.flow_insert(&k, &FlowEntry { counter: 9, ..e })
            .expect("update");
        assert_eq!(place(&p, &k), Some(flows::FlowPlace::Slot(i)));
        assert_eq!(run(&p, &frame, 0).0, XDP_REDIRECT, "{name}");
        assert_eq!(p.flow_counter(9), (1, (frame.len() - 14) as u64));
        // IPv6 outer: not a slot's; back to IPv4 outer: a slot again.
        let tun = |v6: bool| FlowEntry {
            rewrite: FlowRewrite::Ipip {
                src: ip(if v6 { TUN6 } else { TUN4 }),
                dst: ip(if v6 { RS6 } else { RS4 }),
                copy_df: true,
            },
            ..e
        };
        p.flow_insert(&k, &tun(true)).expect("v6 outer");
        assert_eq!(place(&p, &k), Some(flows::FlowPlace::Hash));
        assert!(in_hash_map(&p, &k));
        let (rc, out) = run(&p, &frame, 0);
        if is_tc(&p) {
            // an IPv6 outer header on an IPv4 packet is not added on the TC hook
            assert_eq!((rc, out.len()), (XDP_PASS, frame.len()), "{name}");
        } else {
            assert_eq!((rc, out.len()), (XDP_REDIRECT, frame.len() + 40), "{name}");
        }
        p.flow_insert(&k, &tun(false)).expect("v4 outer");
        assert!(matches!(place(&p, &k), Some(flows::FlowPlace::Slot(_))));
        assert!(!in_hash_map(&p, &k));
        let (rc, out) = run(&p, &frame, 0);
        assert_eq!((rc, out.len()), (XDP_REDIRECT, frame.len() + 20), "{name}");
    }
}

/// A slot being written (odd sequence) is skipped: the frame goes on as without entry.
#[test]
fn ftab_slot_with_odd_sequence_is_not_used() {
    let Some(progs) = programs(64) else {
        return;
    };
    for (name, mut p) in progs {
        let flow = Flow::new(true, false, ForwardMethod::DirectRoute, false);
        let k = flow.key(false);
        p.flow_insert(&k, &flow.entry(false, OTHER_IF))
            .expect("insert");
        let Some(flows::FlowPlace::Slot(i)) = place(&p, &k) else {
            panic!("{name}: not in the array");
        };
        let frame = flow.spec(false, ACK).build();
        assert_eq!(run(&p, &frame, 0).0, XDP_REDIRECT, "{name}");
        let seq = p.ftab.seq(i);
        p.ftab.set_seq(i, seq | 1);
        let (rc, out) = run(&p, &frame, 0);
        assert_eq!(rc, XDP_PASS, "{name}");
        assert_eq!(out, frame, "{name}: frame modified");
        p.ftab.set_seq(i, (seq | 1).wrapping_add(1));
        assert_eq!(run(&p, &frame, 0).0, XDP_REDIRECT, "{name}");
        // A write over an odd sequence still ends even.
        p.ftab.set_seq(i, 7);
        p.flow_insert(&k, &flow.entry(false, OTHER_IF))
            .expect("update");
        assert_eq!(p.ftab.seq(i), 8);
        assert_eq!(run(&p, &frame, 0).0, XDP_REDIRECT, "{name}");
    }
}

/// Flows with the same rewrite share one target entry; a rewrite that finds no free entry
/// sends its flow to the hash map (still forwarded); a freed entry is written again for
/// another rewrite, and the program forwards with the new one.
#[test]
fn ftab_targets_are_shared_and_reused() {
    // 4 flows: one bucket of 4 slots, 4 target entries.
    let Some(progs) = programs(4) else {
        return;
    };
    let slotted = |p: &XdpProgram, f: &Flow| {
        matches!(place(p, &f.key(false)), Some(flows::FlowPlace::Slot(_)))
    };
    for (name, mut p) in progs {
        let base = Flow::new(false, false, ForwardMethod::Masq, false);
        let flows: Vec<Flow> = (0..4u16)
            .map(|i| Flow {
                cport: 40_000 + i,
                ..base.clone()
            })
            .collect();
        // Same rewrite for all: one entry.
        for f in &flows {
            p.flow_insert(&f.key(false), &f.entry(false, OTHER_IF))
                .expect("insert");
            assert!(slotted(&p, f), "{name}");
        }
        assert_eq!(p.ftab.targets_in_use(), 1, "{name}");
        let pick = &flows[2];
        let k = pick.key(false);
        let frame = pick.spec(false, 0).payload(b"abc").build();
        let (rc, before) = run(&p, &frame, 0);
        assert_eq!(rc, XDP_REDIRECT, "{name}");
        // A rewrite of its own for three of them: with the shared one, 4 entries, all
        // taken.
        let distinct = |f: &Flow, i: u16| FlowEntry {
            max_len: 1000 + i,
            ..f.entry(false, OTHER_IF)
        };
        for (i, f) in (0..).zip(&flows[..3]) {
            p.flow_insert(&f.key(false), &distinct(f, i))
                .expect("distinct");
            assert!(slotted(&p, f), "{name}");
        }
        assert_eq!(p.ftab.targets_in_use(), 4, "{name}");
        // A fifth rewrite, for the last flow: no entry free, so it moves to the hash map
        // (the shared entry it held is freed), and the program still forwards it.
        let f = &flows[3];
        p.flow_insert(&f.key(false), &distinct(f, 99))
            .expect("update");
        assert_eq!(
            place(&p, &f.key(false)),
            Some(flows::FlowPlace::Hash),
            "{name}"
        );
        assert!(in_hash_map(&p, &f.key(false)));
        let f3 = f.spec(false, 0).payload(b"abc").build();
        let (rc, out) = run(&p, &f3, 0);
        assert_eq!(rc, XDP_REDIRECT, "{name}");
        assert_eq!(out.len(), f3.len(), "{name}");
        assert_eq!(p.ftab.targets_in_use(), 3, "{name}");
        // Free every entry, then give `pick` a new rewrite: another real server port. The
        // entry written for it may be one another rewrite used before.
        assert_eq!(p.flow_clear().expect("clear"), 4, "{name}");
        assert_eq!(p.ftab.targets_in_use(), 0, "{name}");
        assert_eq!(run(&p, &frame, 0).0, XDP_PASS, "{name}");
        let mut e = pick.entry(false, OTHER_IF);
        let FlowRewrite::Dnat { addr, port } = e.rewrite else {
            panic!("NAT flow");
        };
        e.rewrite = FlowRewrite::Dnat {
            addr,
            port: port.wrapping_add(1),
        };
        p.flow_insert(&k, &e).expect("new rewrite");
        assert!(slotted(&p, pick), "{name}");
        let (rc, after) = run(&p, &frame, 0);
        assert_eq!(rc, XDP_REDIRECT, "{name}");
        let dport = |b: &[u8]| u16::from_be_bytes([b[14 + 20 + 2], b[14 + 20 + 3]]);
        assert_eq!(dport(&after), dport(&before).wrapping_add(1), "{name}");
        assert_eq!(after.len(), before.len(), "{name}");
    }
}

/// IPv4 slots count in their own cache line; the counts reach the counter slot when it is
/// read, when the flow changes counter slot, and when it leaves the slot (removal, or a
/// move to the hash map), never twice, and a reset drops what was not yet read.
#[test]
fn ftab_counts_fold_into_the_counter_slot() {
    let Some(progs) = programs(64) else {
        return;
    };
    for (name, mut p) in progs {
        let flow = Flow::new(false, false, ForwardMethod::DirectRoute, false);
        let k = flow.key(false);
        let frame = flow.spec(false, 0).payload(&[5; 40]).build();
        let len = (frame.len() - 14) as u64;
        let fwd = |p: &XdpProgram, n: u32| {
            for _ in 0..n {
                assert_eq!(run(p, &frame, 0).0, XDP_REDIRECT, "{name}");
            }
        };
        let e = |counter| FlowEntry {
            counter,
            ..flow.entry(false, OTHER_IF)
        };
        for c in [5, 6, 8] {
            p.flow_counter_reset(c);
        }
        p.flow_insert(&k, &e(5)).expect("insert");
        assert!(matches!(place(&p, &k), Some(flows::FlowPlace::Slot(_))));
        fwd(&p, 3);
        assert_eq!(p.flow_counter(5), (3, 3 * len), "{name}");
        assert_eq!(p.flow_counter(5), (3, 3 * len), "{name}: counted twice");
        // Two more, then the flow changes counter slot: they stay with the old one.
        fwd(&p, 2);
        p.flow_insert(&k, &e(6)).expect("new counter");
        fwd(&p, 1);
        assert_eq!(p.flow_counter(5), (5, 5 * len), "{name}");
        assert_eq!(p.flow_counter(6), (1, len), "{name}");
        // Unread counts of a removed flow are folded at the removal; the next packet is
        // not the flow's any more.
        fwd(&p, 2);
        assert!(p.flow_remove(&k).expect("remove"));
        assert_eq!(run(&p, &frame, 0).0, XDP_PASS, "{name}");
        assert_eq!(p.flow_counter(6), (3, 3 * len), "{name}");
        // Back in a slot: a reset drops what was not read.
        p.flow_insert(&k, &e(6)).expect("insert again");
        fwd(&p, 4);
        p.flow_counter_reset(6);
        assert_eq!(p.flow_counter(6), (0, 0), "{name}");
        fwd(&p, 1);
        assert_eq!(p.flow_counter(6), (1, len), "{name}");
        // Moving to the hash map (an IPv6 outer header) takes the unread counts along.
        fwd(&p, 1);
        let v6 = FlowEntry {
            rewrite: FlowRewrite::Ipip {
                src: ip(TUN6),
                dst: ip(RS6),
                copy_df: true,
            },
            ..e(6)
        };
        p.flow_insert(&k, &v6).expect("to the hash map");
        assert_eq!(place(&p, &k), Some(flows::FlowPlace::Hash));
        if !is_tc(&p) {
            assert_eq!(run(&p, &frame, 0).0, XDP_REDIRECT, "{name}");
            assert_eq!(p.flow_counter(6), (3, 3 * len), "{name}");
        } else {
            assert_eq!(p.flow_counter(6), (2, 2 * len), "{name}");
        }
        p.flow_clear().expect("clear");
        // A fold of the whole table, then plain reads: the counts of every slot are in.
        p.flow_insert(&k, &e(5)).expect("counter 5 again");
        p.flow_counter_reset(5);
        fwd(&p, 3);
        assert_eq!(p.flow_counter_folded(5), (0, 0), "{name}: not folded yet");
        p.flow_counters_fold();
        assert_eq!(p.flow_counter_folded(5), (3, 3 * len), "{name}");
        p.flow_counters_fold();
        assert_eq!(p.flow_counter(5), (3, 3 * len), "{name}: folded twice");
        p.flow_clear().expect("clear");
        // Two slotted flows sharing a counter slot: both count into it.
        let other = Flow {
            cport: 40_001,
            ..flow.clone()
        };
        p.flow_insert(&k, &e(8)).expect("first");
        p.flow_insert(
            &other.key(false),
            &FlowEntry {
                counter: 8,
                ..other.entry(false, OTHER_IF)
            },
        )
        .expect("second");
        assert!(matches!(
            place(&p, &other.key(false)),
            Some(flows::FlowPlace::Slot(_))
        ));
        fwd(&p, 2);
        let f2 = other.spec(false, 0).payload(&[5; 40]).build();
        assert_eq!(run(&p, &f2, 0).0, XDP_REDIRECT, "{name}");
        assert_eq!(p.flow_counter(8), (3, 3 * len), "{name}");
        assert!(p.flow_remove(&k).expect("remove first"));
        assert_eq!(run(&p, &f2, 0).0, XDP_REDIRECT, "{name}");
        assert_eq!(p.flow_counter(8), (4, 4 * len), "{name}");
    }
}
