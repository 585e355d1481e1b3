//! `rvs-rs` end to end: the built binary against namespaces made here.
//!
//! ```text
//!  ns "dir" (director + client)                ns "rs" (real server)
//!  veth-d 198.18.1.1/24  ------------------  veth-r 198.18.1.2/24
//!                                              lo: VIP 198.18.0.100/32 (rvs-rs setup)
//!                                              rvs-tun0 (rvs-rs decap)
//! ```
//!
//! The director side builds the tunnel packets by hand: IP-in-IP through a raw socket for
//! protocol 4 (the kernel writes the outer header 198.18.1.1 -> 198.18.1.2), GUE through a
//! UDP socket. The inner packet is UDP 198.18.1.1:40000 -> VIP:9000 with a 32-byte payload.
//! A UDP socket on VIP:9000 in "rs" must receive the payload intact, and its reply must
//! reach 198.18.1.1 as a plain UDP packet from the VIP (checked on the wire with a packet
//! socket too). Hostile packets are counted drops. `rvs-rs undo` must then put every sysctl
//! back, remove the VIP and the TUN device, and stop the decapsulator.
//!
//! Everything runs as root inside namespaces made by the test (deleted on drop, also on
//! failure); without root the tests print why and pass.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rvs_io::netns::{NetNs, reap_stale, skip_reason, veth};
use rvs_io::packet::{PacketOpts, PacketSocket};
use rvs_io::rawsock::RawSocket;
use rvs_testkit::PacketSpec;

const BIN: &str = env!("CARGO_BIN_EXE_rvs-rs");
const DIR_IP: &str = "198.18.1.1";
const RS_IP: &str = "198.18.1.2";
const VIP: &str = "198.18.0.100";
const VIP_PORT: u16 = 9000;
const CLIENT_PORT: u16 = 40000;
const GUE_PORT: u16 = 6080;

/// The sysctls of "rs" that setup changes and undo must restore.
const WATCHED: [&str; 8] = [
    "net.ipv4.conf.all.arp_ignore",
    "net.ipv4.conf.lo.arp_ignore",
    "net.ipv4.conf.all.arp_announce",
    "net.ipv4.conf.lo.arp_announce",
    "net.ipv4.conf.all.rp_filter",
    "net.ipv4.conf.veth-r.rp_filter",
    "net.ipv4.conf.lo.rp_filter",
    "net.ipv4.conf.default.rp_filter",
];

/// A child process killed (and reaped) on drop, so that a failing test leaves nothing
/// running in a namespace about to be deleted.
struct ChildGuard(Option<Child>);

impl ChildGuard {
    /// Wait for the process to exit by itself, for at most `limit`.
    fn wait_output(&mut self, limit: Duration) -> Output {
        let mut child = self.0.take().expect("child still owned");
        let deadline = Instant::now() + limit;
        while child.try_wait().expect("try_wait").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let out = child.wait_with_output().expect("output");
                panic!(
                    "rvs-rs did not exit within {limit:?}; stdout: {} stderr: {}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().expect("output")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The two namespaces, a private state directory, and a decapsulator if one was started.
/// Field order is drop order: the process goes first, then the namespaces.
struct Lab {
    decap: Option<ChildGuard>,
    dir: NetNs,
    rs: NetNs,
    tmp: PathBuf,
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.decap.take();
        let _ = std::fs::remove_dir_all(&self.tmp);
    }
}

impl Lab {
    fn new(tag: &str) -> Self {
        reap_stale();
        let dir = NetNs::new(&format!("{tag}-dir")).expect("namespace dir");
        let rs = NetNs::new(&format!("{tag}-rs")).expect("namespace rs");
        let tmp = std::env::temp_dir().join(format!("rvs-rs-e2e-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).expect("temp dir");
        let lab = Self {
            decap: None,
            dir,
            rs,
            tmp,
        };
        veth(&lab.dir, "veth-d", &lab.rs, "veth-r").expect("veth pair");
        lab.dir
            .ip(&["addr", "add", &format!("{DIR_IP}/24"), "dev", "veth-d"])
            .expect("address dir");
        lab.rs
            .ip(&["addr", "add", &format!("{RS_IP}/24"), "dev", "veth-r"])
            .expect("address rs");
        // The client in "dir" has no route to the VIP: without rp_filter off there, the
        // reply from the VIP would be dropped as martian before reaching the socket.
        for k in ["all", "default", "veth-d"] {
            lab.dir
                .sysctl(&format!("net.ipv4.conf.{k}.rp_filter"), "0")
                .expect("dir rp_filter");
        }
        // Start "rs" from a known, strict state so that setup has everything to change and
        // undo has everything to restore.
        for (k, v) in [
            ("net.ipv4.conf.all.arp_ignore", "0"),
            ("net.ipv4.conf.lo.arp_ignore", "0"),
            ("net.ipv4.conf.all.arp_announce", "0"),
            ("net.ipv4.conf.lo.arp_announce", "0"),
            ("net.ipv4.conf.default.rp_filter", "1"),
            ("net.ipv4.conf.all.rp_filter", "1"),
            ("net.ipv4.conf.veth-r.rp_filter", "1"),
            ("net.ipv4.conf.lo.rp_filter", "0"),
        ] {
            lab.rs.sysctl(k, v).expect("rs sysctl");
        }
        lab
    }

    fn state(&self) -> PathBuf {
        self.tmp.join("state.json")
    }

    /// `ip netns exec rs rvs-rs --state STATE ARGS...`.
    fn rvs_rs_command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", self.rs.name(), BIN, "--state"])
            .arg(self.state())
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn rvs_rs(&self, args: &[&str]) -> Output {
        self.rvs_rs_command(args).output().expect("run rvs-rs")
    }

    fn sysctl(&self, key: &str) -> String {
        let out = self.rs.exec("sysctl", &["-n", key]).expect("sysctl");
        assert!(out.status.success(), "sysctl {key}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn watched(&self) -> Vec<(String, String)> {
        WATCHED
            .iter()
            .map(|k| ((*k).to_owned(), self.sysctl(k)))
            .collect()
    }

    fn lo_has_vip(&self) -> bool {
        self.rs
            .ip(&["-o", "addr", "show", "dev", "lo"])
            .expect("ip addr")
            .contains(&format!("inet {VIP}/32"))
    }

    fn link_exists(&self, name: &str) -> bool {
        self.rs.ip(&["link", "show", "dev", name]).is_ok()
    }

    /// Start `setup ... --foreground` and wait until the decapsulator says it is ready.
    fn start_foreground(&mut self, args: &[&str]) {
        let mut all = vec!["setup"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--foreground", "-v", "--stats-interval", "1"]);
        let child = self
            .rvs_rs_command(&all)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rvs-rs setup --foreground");
        self.decap = Some(ChildGuard(Some(child)));
        // Ready once the pid is recorded in the state file (written after the receivers
        // are open).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(self.state()).unwrap_or_default();
            if text.contains("\"decap_pid\": ") && !text.contains("\"decap_pid\": null") {
                return;
            }
            let exited = self
                .decap
                .as_mut()
                .and_then(|g| g.0.as_mut())
                .map(|c| c.try_wait().expect("try_wait").is_some())
                .unwrap_or(true);
            if exited || Instant::now() > deadline {
                let out = self
                    .decap
                    .as_mut()
                    .expect("guard")
                    .wait_output(Duration::from_secs(1));
                panic!(
                    "decapsulator not ready (exited: {exited}); stdout: {} stderr: {}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `undo`, then collect the decapsulator's output (it must have stopped).
    fn undo_and_collect(&mut self) -> (Output, Output) {
        let undo = self.rvs_rs(&["undo"]);
        let decap = self
            .decap
            .as_mut()
            .expect("decapsulator started")
            .wait_output(Duration::from_secs(10));
        self.decap = None;
        (undo, decap)
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn payload() -> Vec<u8> {
    (0u8..32)
        .map(|i| i.wrapping_mul(37).wrapping_add(11))
        .collect()
}

/// The inner IPv4/UDP packet (no Ethernet header) from the client to the VIP.
fn inner_packet(dst: &str, payload: &[u8]) -> Vec<u8> {
    PacketSpec::udp(DIR_IP, CLIENT_PORT, dst, VIP_PORT)
        .payload(payload)
        .build()[14..]
        .to_vec()
}

/// The counter `name=N` of a counters line.
fn counter(line: &str, name: &str) -> u64 {
    let key = format!(" {name}=");
    let line = format!(" {line}");
    let at = line
        .rfind(&key)
        .unwrap_or_else(|| panic!("no {name} in {line}"));
    line[at + key.len()..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad {name} in {line}"))
}

/// What the real server's application and the client saw.
struct Exchange {
    server_got: Vec<u8>,
    server_peer: SocketAddr,
    client_got: Vec<u8>,
    client_peer: SocketAddr,
    /// The reply as seen on the director's veth: (IP protocol, source, destination).
    wire: (u8, Ipv4Addr, Ipv4Addr),
}

/// Send the 32-byte payload through the tunnel with `send_tunnelled`, let the server in
/// "rs" answer, and collect what everyone saw.
fn exchange(lab: &Lab, send_tunnelled: SendFn<'_>) -> Exchange {
    let server = lab
        .rs
        .run(|| UdpSocket::bind((VIP.parse::<IpAddr>().expect("ip"), VIP_PORT)))
        .expect("run in rs")
        .expect("bind the VIP");
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let client = lab
        .dir
        .run(|| UdpSocket::bind((DIR_IP.parse::<IpAddr>().expect("ip"), CLIENT_PORT)))
        .expect("run in dir")
        .expect("bind the client");
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut tap = lab
        .dir
        .run(|| PacketSocket::open("veth-d", &PacketOpts::default()))
        .expect("run in dir")
        .expect("packet socket on veth-d");

    let data = payload();
    send_tunnelled(&inner_packet(VIP, &data));
    let mut buf = [0u8; 2048];
    let (n, server_peer) = server
        .recv_from(&mut buf)
        .expect("the server receives within 5 s");
    let server_got = buf[..n].to_vec();
    let mut reply = b"reply:".to_vec();
    reply.extend_from_slice(&server_got);
    server.send_to(&reply, server_peer).expect("reply");
    let (n, client_peer) = client
        .recv_from(&mut buf)
        .expect("the client gets the reply within 5 s");
    let client_got = buf[..n].to_vec();

    // The reply on the wire: the first IPv4 frame from the VIP.
    let mut wire = None;
    let deadline = Instant::now() + Duration::from_secs(2);
    while wire.is_none() && Instant::now() < deadline {
        tap.recv_batch(Duration::from_millis(100), |f, _| {
            if wire.is_none() && f.len() >= 34 && f[12..14] == [0x08, 0x00] {
                let src = Ipv4Addr::new(f[26], f[27], f[28], f[29]);
                let dst = Ipv4Addr::new(f[30], f[31], f[32], f[33]);
                if src.to_string() == VIP {
                    wire = Some((f[23], src, dst));
                }
            }
        })
        .expect("capture");
    }
    Exchange {
        server_got,
        server_peer,
        client_got,
        client_peer,
        wire: wire.expect("the reply seen on veth-d"),
    }
}

fn assert_exchange(x: &Exchange) {
    let data = payload();
    assert_eq!(x.server_got, data, "payload intact at the real server");
    assert_eq!(
        x.server_peer,
        SocketAddr::new(DIR_IP.parse().expect("ip"), CLIENT_PORT),
        "the server sees the real client address"
    );
    let mut want = b"reply:".to_vec();
    want.extend_from_slice(&data);
    assert_eq!(x.client_got, want);
    assert_eq!(
        x.client_peer,
        SocketAddr::new(VIP.parse().expect("ip"), VIP_PORT),
        "the reply comes from the VIP"
    );
    // Plain UDP (17) from the VIP to the client: not IP-in-IP (4), not GUE.
    assert_eq!(
        x.wire,
        (17, VIP.parse().expect("ip"), DIR_IP.parse().expect("ip")),
        "the reply goes straight to the client"
    );
}

/// Sysctls, VIP and devices back as before.
fn assert_restored(lab: &Lab, before: &[(String, String)], undo: &Output) {
    assert!(
        undo.status.success(),
        "undo: {} {}",
        text(&undo.stdout),
        text(&undo.stderr)
    );
    assert_eq!(lab.watched(), before, "sysctls restored");
    assert!(!lab.lo_has_vip(), "VIP removed from lo");
    assert!(!lab.link_exists("rvs-tun0"), "TUN device removed");
    assert!(!lab.state().exists(), "state file removed");
}

fn skip() -> bool {
    if let Some(why) = skip_reason() {
        eprintln!("skipping: {why}");
        return true;
    }
    false
}

#[test]
fn ipip_is_decapsulated_without_the_ipip_module_and_undo_restores_everything() {
    if skip() {
        return;
    }
    let mut lab = Lab::new("rsipip");
    let before = lab.watched();
    let args = ["--vip", VIP, "--tunnel", "ipip", "--decap", "userspace"];

    // --dry-run prints the changes and makes none.
    let mut dry = vec!["setup"];
    dry.extend_from_slice(&args);
    dry.push("--dry-run");
    let out = lab.rvs_rs(&dry);
    let shown = text(&out.stdout);
    assert!(out.status.success(), "{shown} {}", text(&out.stderr));
    for line in [
        "dry run: nothing is changed",
        "device   create TUN device rvs-tun0 (persistent) and set it up",
        "address  add 198.18.0.100/32 to lo",
        "sysctl   net.ipv4.conf.all.arp_ignore 0 -> 1",
        "sysctl   net.ipv4.conf.lo.arp_ignore 0 -> 1",
        "sysctl   net.ipv4.conf.all.arp_announce 0 -> 2",
        "sysctl   net.ipv4.conf.lo.arp_announce 0 -> 2",
        "sysctl   net.ipv4.conf.all.rp_filter 1 -> 0",
        "sysctl   net.ipv4.conf.rvs-tun0.rp_filter 1 -> 0",
        "sysctl   net.ipv4.conf.veth-r.rp_filter 1 -> 2",
    ] {
        assert!(
            shown.lines().any(|l| l == line),
            "missing {line:?} in:\n{shown}"
        );
    }
    assert_eq!(lab.watched(), before, "dry run changed a sysctl");
    assert!(!lab.lo_has_vip() && !lab.link_exists("rvs-tun0") && !lab.state().exists());

    lab.start_foreground(&args);
    assert!(lab.lo_has_vip());
    assert_eq!(lab.sysctl("net.ipv4.conf.all.arp_ignore"), "1");
    assert_eq!(lab.sysctl("net.ipv4.conf.lo.arp_announce"), "2");
    assert_eq!(lab.sysctl("net.ipv4.conf.rvs-tun0.rp_filter"), "0");
    assert_eq!(lab.sysctl("net.ipv4.conf.veth-r.rp_filter"), "2");
    let status = lab.rvs_rs(&["status"]);
    assert!(
        text(&status.stdout).contains("decap    userspace, running as pid"),
        "{}",
        text(&status.stdout)
    );

    let raw = lab
        .dir
        .run(|| RawSocket::open(false, 4))
        .expect("run in dir")
        .expect("raw socket for protocol 4");
    let rs_ip: IpAddr = RS_IP.parse().expect("ip");
    let x = exchange(&lab, &|inner| {
        raw.send_to(inner, rs_ip).expect("send IP-in-IP");
    });
    assert_exchange(&x);

    // Hostile tunnel packets: each a counted drop, none delivered, no crash.
    let good = inner_packet(VIP, &payload());
    let hostile: Vec<Vec<u8>> = vec![
        inner_packet("198.18.0.101", &payload()), // not a VIP
        good[..good.len() - 5].to_vec(),          // truncated
        {
            let mut p = good.clone(); // IPv6 version in a protocol-4 tunnel
            p[0] = 0x65;
            p
        },
        vec![0xff; 60_000], // huge, version 15
        {
            let mut p = good.clone(); // bad inner header checksum
            p[10] ^= 0x5a;
            p
        },
        Vec::new(), // empty
    ];
    for p in &hostile {
        raw.send_to(p, rs_ip).expect("send hostile");
    }
    // Let the decapsulator count them, and print its counters once (-v, every second).
    std::thread::sleep(Duration::from_millis(1200));

    let (undo, decap) = lab.undo_and_collect();
    let undo_out = text(&undo.stdout);
    assert!(undo_out.contains("decap    stopped pid"), "{undo_out}");
    assert!(undo_out.contains("device   deleted rvs-tun0"), "{undo_out}");
    assert!(
        undo_out.contains("sysctl   net.ipv4.conf.all.rp_filter 0 -> 1 (restored)"),
        "{undo_out}"
    );
    assert_restored(&lab, &before, &undo);

    let out = text(&decap.stdout);
    assert!(decap.status.success(), "{out} {}", text(&decap.stderr));
    let last = out
        .lines()
        .rev()
        .find(|l| l.contains("stopped after"))
        .unwrap_or_else(|| panic!("no counters in {out}"));
    assert_eq!(counter(last, "decapsulated"), 1, "{last}");
    assert_eq!(counter(last, "ipip4"), 1, "{last}");
    assert_eq!(counter(last, "not-vip"), 1, "{last}");
    assert_eq!(counter(last, "truncated"), 2, "{last}");
    assert_eq!(counter(last, "wrong-version"), 2, "{last}");
    assert_eq!(counter(last, "bad-checksum"), 1, "{last}");
    assert_eq!(counter(last, "dropped"), 6, "{last}");
    assert!(
        text(&decap.stderr).contains("counters: decapsulated="),
        "-v prints counters periodically: {}",
        text(&decap.stderr)
    );
}

#[test]
fn gue_is_decapsulated_and_undo_restores_everything() {
    if skip() {
        return;
    }
    let mut lab = Lab::new("rsgue");
    let before = lab.watched();
    let port = GUE_PORT.to_string();
    lab.start_foreground(&["--vip", VIP, "--tunnel", "gue", "--gue-port", &port]);
    assert!(lab.lo_has_vip());
    assert!(lab.link_exists("rvs-tun0"));

    let sender = lab
        .dir
        .run(|| UdpSocket::bind((DIR_IP.parse::<IpAddr>().expect("ip"), 0)))
        .expect("run in dir")
        .expect("GUE sender");
    let gue_dst = SocketAddr::new(RS_IP.parse().expect("ip"), GUE_PORT);
    let with_header = |h: [u8; 4], inner: &[u8]| {
        let mut b = h.to_vec();
        b.extend_from_slice(inner);
        b
    };
    let x = exchange(&lab, &|inner| {
        sender
            .send_to(&with_header([0, 4, 0, 0], inner), gue_dst)
            .expect("send GUE");
    });
    assert_exchange(&x);

    let good = inner_packet(VIP, &payload());
    let hostile: Vec<Vec<u8>> = vec![
        with_header([0x20, 4, 0, 0], &good), // control message
        with_header([0x01, 4, 0, 0], &good), // options (hlen 1)
        with_header([0, 17, 0, 0], &good),   // not IP
        vec![0, 4],                          // shorter than the GUE header
        with_header([0, 41, 0, 0], &good),   // IPv4 packet announced as IPv6
        with_header([0, 4, 0, 0], &inner_packet("198.18.0.7", &payload())), // not a VIP
    ];
    for p in &hostile {
        sender.send_to(p, gue_dst).expect("send hostile");
    }
    std::thread::sleep(Duration::from_millis(300));

    let (undo, decap) = lab.undo_and_collect();
    assert_restored(&lab, &before, &undo);
    let out = text(&decap.stdout);
    let last = out
        .lines()
        .rev()
        .find(|l| l.contains("stopped after"))
        .unwrap_or_else(|| panic!("no counters in {out}"));
    assert_eq!(counter(last, "gue"), 1, "{last}");
    assert_eq!(counter(last, "decapsulated"), 1, "{last}");
    assert_eq!(counter(last, "gue-unsupported"), 3, "{last}");
    assert_eq!(counter(last, "gue-malformed"), 1, "{last}");
    assert_eq!(counter(last, "wrong-version"), 1, "{last}");
    assert_eq!(counter(last, "not-vip"), 1, "{last}");
}

#[test]
fn usage_errors_exit_2_and_runtime_errors_exit_1() {
    let tmp = std::env::temp_dir().join(format!("rvs-rs-cli-{}", std::process::id()));
    let state = tmp.join("state.json");
    let run = |args: &[&str]| {
        Command::new(BIN)
            .arg("--state")
            .arg(&state)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run rvs-rs")
    };
    for (args, needle) in [
        (vec!["setup"], "--vip"),
        (vec!["setup", "--vip", "224.0.0.1"], "cannot be a VIP"),
        (
            vec!["setup", "--vip", "bogus"],
            "not an IPv4 or IPv6 address",
        ),
        (vec!["setup", "--vip", VIP, "--tunnel", "gue"], "--gue-port"),
        (
            vec!["setup", "--vip", VIP, "--gue-port", "6080"],
            "only for --tunnel gue",
        ),
        (
            vec!["setup", "--vip", VIP, "--foreground"],
            "needs --tunnel",
        ),
        (
            vec![
                "setup",
                "--vip",
                VIP,
                "--tunnel",
                "gue",
                "--gue-port",
                "1",
                "--decap",
                "kernel",
            ],
            "--decap kernel",
        ),
        (
            vec!["setup", "--vip", VIP, "--rp-filter", "1"],
            "0 (off) or 2",
        ),
        (vec!["nonsense"], "unrecognized subcommand"),
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(
            text(&out.stderr).contains(needle),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let out = run(&["undo"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        text(&out.stderr).contains("nothing to undo"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&["decap"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = run(&["status"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text(&out.stdout).contains("not set up"),
        "{}",
        text(&out.stdout)
    );
    let help = run(&["setup", "--help"]);
    assert!(help.status.success());
    for opt in [
        "--vip",
        "--tunnel",
        "--gue-port",
        "--decap",
        "--iface",
        "--rp-filter",
        "--tun-name",
        "--dry-run",
        "--foreground",
        "--stats-interval",
        "--state",
    ] {
        assert!(text(&help.stdout).contains(opt), "{opt} not in --help");
    }
    assert!(!Path::new(&state).exists());
    let _ = std::fs::remove_dir_all(&tmp);
}

/// Something that sends an inner packet through a tunnel.
type SendFn<'a> = &'a dyn Fn(&[u8]);

const DIR_IP6: &str = "2001:db8:1::1";
const RS_IP6: &str = "2001:db8:1::2";
const VIP6: &str = "2001:db8::100";

/// One datagram to the IPv6 VIP through `send_tunnelled`, and the reply back: returns
/// (what the server got, from whom; what the client got, from whom).
fn exchange6(
    lab: &Lab,
    send_tunnelled: SendFn<'_>,
) -> ((Vec<u8>, SocketAddr), (Vec<u8>, SocketAddr)) {
    let server = lab
        .rs
        .run(|| UdpSocket::bind((VIP6.parse::<IpAddr>().expect("ip"), VIP_PORT)))
        .expect("run in rs")
        .expect("bind the IPv6 VIP");
    let client = lab
        .dir
        .run(|| UdpSocket::bind((DIR_IP6.parse::<IpAddr>().expect("ip"), CLIENT_PORT)))
        .expect("run in dir")
        .expect("bind the IPv6 client");
    for s in [&server, &client] {
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
    }
    let inner = PacketSpec::udp(DIR_IP6, CLIENT_PORT, VIP6, VIP_PORT)
        .payload(&payload())
        .build()[14..]
        .to_vec();
    send_tunnelled(&inner);
    let mut buf = [0u8; 2048];
    let (n, peer) = server
        .recv_from(&mut buf)
        .expect("the server receives within 5 s");
    let got = buf[..n].to_vec();
    server.send_to(&got, peer).expect("reply");
    let (m, from) = client
        .recv_from(&mut buf)
        .expect("the client gets the reply within 5 s");
    ((got, peer), (buf[..m].to_vec(), from))
}

#[test]
fn ipv6_vip_through_ipv4_and_ipv6_outer_headers() {
    if skip() {
        return;
    }
    let mut lab = Lab::new("rsip6");
    for ns in [&lab.dir, &lab.rs] {
        ns.sysctl("net.ipv6.conf.all.accept_dad", "0").expect("dad");
        ns.sysctl("net.ipv6.conf.default.accept_dad", "0")
            .expect("dad");
    }
    lab.dir
        .ip(&[
            "addr",
            "add",
            &format!("{DIR_IP6}/64"),
            "dev",
            "veth-d",
            "nodad",
        ])
        .expect("address dir");
    lab.rs
        .ip(&[
            "addr",
            "add",
            &format!("{RS_IP6}/64"),
            "dev",
            "veth-r",
            "nodad",
        ])
        .expect("address rs");
    let before = lab.watched();
    // IPv6 VIPs are served by the userspace decapsulator (tunl0 carries IPv4 only).
    lab.start_foreground(&["--vip", VIP6, "--tunnel", "ipip"]);
    let addrs = lab
        .rs
        .ip(&["-o", "addr", "show", "dev", "lo"])
        .expect("ip addr");
    assert!(addrs.contains(&format!("inet6 {VIP6}/128")), "{addrs}");
    assert_eq!(lab.watched(), before, "IPv6 VIPs need no IPv4 sysctl");

    let (raw4, raw6) = lab
        .dir
        .run(|| (RawSocket::open(false, 41), RawSocket::open(true, 41)))
        .expect("run in dir");
    let (raw4, raw6) = (raw4.expect("raw IPv4/41"), raw6.expect("raw IPv6/41"));
    let client: SocketAddr = SocketAddr::new(DIR_IP6.parse().expect("ip"), CLIENT_PORT);
    let vip: SocketAddr = SocketAddr::new(VIP6.parse().expect("ip"), VIP_PORT);
    let over_ipv4 = |p: &[u8]| {
        raw4.send_to(p, RS_IP.parse().expect("ip"))
            .expect("send 6in4");
    };
    let over_ipv6 = |p: &[u8]| {
        raw6.send_to(p, RS_IP6.parse().expect("ip"))
            .expect("send 6in6");
    };
    for outer in [&over_ipv4 as SendFn<'_>, &over_ipv6] {
        let ((got, peer), (reply, from)) = exchange6(&lab, outer);
        assert_eq!((got, peer), (payload(), client));
        assert_eq!((reply, from), (payload(), vip));
    }

    let (undo, decap) = lab.undo_and_collect();
    assert_restored(&lab, &before, &undo);
    let addrs = lab
        .rs
        .ip(&["-o", "addr", "show", "dev", "lo"])
        .expect("ip addr");
    assert!(!addrs.contains(VIP6), "{addrs}");
    let out = text(&decap.stdout);
    let last = out
        .lines()
        .rev()
        .find(|l| l.contains("stopped after"))
        .unwrap_or_else(|| panic!("no counters in {out}"));
    assert_eq!(counter(last, "ipip4"), 1, "{last}");
    assert_eq!(counter(last, "ipip6"), 1, "{last}");
    assert_eq!(counter(last, "dropped"), 0, "{last}");
}

#[test]
fn decap_stops_when_its_tun_device_is_deleted_and_undo_still_cleans_up() {
    if skip() {
        return;
    }
    let mut lab = Lab::new("rsgone");
    let before = lab.watched();
    lab.start_foreground(&["--vip", VIP, "--tunnel", "ipip", "--decap", "userspace"]);
    lab.rs
        .ip(&["link", "del", "rvs-tun0"])
        .expect("delete the TUN device");
    let out = lab
        .decap
        .as_mut()
        .expect("decapsulator started")
        .wait_output(Duration::from_secs(5));
    lab.decap = None;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        text(&out.stderr).contains("rvs-tun0 is gone"),
        "{}",
        text(&out.stderr)
    );
    let undo = lab.rvs_rs(&["undo"]);
    assert!(
        text(&undo.stdout).contains("device   rvs-tun0 already gone"),
        "{}",
        text(&undo.stdout)
    );
    assert_restored(&lab, &before, &undo);
}
