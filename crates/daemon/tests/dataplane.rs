//! The kernel's IPVS selftest (`tools/testing/selftests/net/netfilter/ipvs.sh`, spec 8)
//! rebuilt for rvs: three network namespaces, a TCP service on a VIP, 32 random bytes from
//! the client must reach the real server intact through rvsd, for each forwarding method.
//! Then the article's walkthrough: three real servers, requests rotating.
//!
//! Runs as root only (prints why and passes otherwise). Addresses: 198.18.0.0/15.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rvs_io::netns::{NetNs, skip_reason, veth};

const VIP: &str = "198.18.100.100";
const VIP6: &str = "2001:db8:100::100";
const PORT: u16 = 8080;

fn bin(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rvsd")).with_file_name(name)
}

struct Rvsd {
    child: Child,
    socket: String,
    ns: String,
}

impl Rvsd {
    fn start(ns: &NetNs, ifaces: &[&str]) -> Self {
        Self::start_with(ns, ifaces, &[])
    }

    fn start_with(ns: &NetNs, ifaces: &[&str], extra: &[&str]) -> Self {
        let socket = format!("@rvs-selftest-{}-{}", std::process::id(), ns.name());
        let mut args = vec!["netns".to_string(), "exec".into(), ns.name().into()];
        args.push(bin("rvsd").display().to_string());
        for i in ifaces {
            args.push("-i".into());
            args.push((*i).into());
        }
        args.extend(["--no-state".into(), "--socket".into(), socket.clone()]);
        args.extend(extra.iter().map(|a| (*a).to_string()));
        if let Ok(more) = std::env::var("RVSD_TEST_ARGS") {
            args.extend(more.split_whitespace().map(str::to_owned));
        }
        let child = Command::new("ip")
            .args(&args)
            .env(
                "RUST_LOG",
                std::env::var("RVSD_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start rvsd");
        let d = Self {
            child,
            socket,
            ns: ns.name().into(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if d.adm(&["-L", "-n"]).0 == 0 {
                return d;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("rvsd did not come up");
    }

    fn adm(&self, args: &[&str]) -> (i32, String, String) {
        let o = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .arg(bin("rvsadm"))
            .args(args)
            .env("RVS_SOCKET", &self.socket)
            .output()
            .expect("run rvsadm");
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    fn ok(&self, line: &str) -> String {
        let args: Vec<&str> = line.split_whitespace().collect();
        let (c, out, err) = self.adm(&args);
        assert_eq!(c, 0, "rvsadm {line}: {err}");
        out
    }
}

impl Drop for Rvsd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Method {
    Dr,
    Nat,
    Tun,
    Gue,
}

impl Method {
    fn flag(self) -> &'static str {
        match self {
            Self::Dr => "-g",
            Self::Nat => "-m",
            Self::Tun => "-i",
            Self::Gue => "-i --tun-type gue --tun-port 6080",
        }
    }
}

/// A background program in a namespace, killed on drop.
struct Bg(Child);

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The selftest topology. Client LAN 198.18.0.0/24 is a bridge in the client namespace
/// joining the director (198.18.0.1) and, for DR, the real servers' second legs; the
/// real-server LAN 198.19.0.0/24 is a bridge in the director's namespace.
struct Lab {
    // field order = drop order: decapsulators before their namespaces
    _decap: Vec<Bg>,
    client: NetNs,
    director: NetNs,
    servers: Vec<NetNs>,
    _tmp: TmpDir,
}

struct TmpDir(PathBuf);

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sh(ns: &NetNs, args: &str) {
    let a: Vec<&str> = args.split_whitespace().collect();
    ns.ip(&a)
        .unwrap_or_else(|e| panic!("ip -n {} {args}: {e}", ns.name()));
}

impl Lab {
    fn new(method: Method, n: usize) -> Self {
        Self::build(method, n, false)
    }

    /// One real server on its own link to the director (no bridge on the director), so
    /// both of the director's interfaces run rvs's XDP program in native mode and the
    /// kernel fast path forwards between them. Every sender fills in its checksums
    /// (XDP sees frames before checksum offload is resolved) and the director's veth
    /// peers have GRO on, which gives them the NAPI context that frames redirected by
    /// native XDP need.
    fn direct(method: Method) -> Self {
        let lab = Self::build(method, 1, true);
        tx_checksums_off(&lab);
        for (ns, dev) in [(&lab.client, "c-dir"), (&lab.servers[0], "r0")] {
            let o = ns
                .exec("ethtool", &["-K", dev, "gro", "on"])
                .expect("ethtool");
            assert!(o.status.success(), "ethtool -K {dev} gro on");
        }
        lab
    }

    fn build(method: Method, n: usize, direct: bool) -> Self {
        assert!(!direct || n == 1, "a direct lab has one real server");
        let tmp = std::env::temp_dir().join(format!(
            "rvs-selftest-{}-{}",
            std::process::id(),
            NEXT_LAB.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&tmp).expect("tmp dir");
        let mut decap = Vec::new();
        let client = NetNs::new("client").expect("netns");
        let director = NetNs::new("dir").expect("netns");
        let mut servers = Vec::new();
        sh(&client, "link add br0 type bridge");
        sh(&client, "link set br0 up");
        sh(&client, "addr add 198.18.0.2/24 dev br0");
        sh(&client, &format!("route add {VIP}/32 via 198.18.0.1"));
        sh(&client, "addr add 2001:db8::2/64 dev br0 nodad");
        veth(&client, "c-dir", &director, "d0").expect("veth");
        sh(&client, &format!("-6 route add {VIP6}/128 via 2001:db8::1"));
        sh(&client, "link set c-dir master br0");
        // no TSO/GSO super-frames from the client's stack (rvsd reads one frame per slot)
        sh(&client, "link set br0 gso_max_segs 1");
        sh(&client, "link set c-dir gso_max_segs 1");
        sh(&director, "addr add 198.18.0.1/24 dev d0");
        let rs_lan = if direct { "d-rs0" } else { "br1" };
        if !direct {
            sh(&director, "link add br1 type bridge");
            sh(&director, "link set br1 up");
        }
        sh(&director, &format!("addr add {VIP}/32 dev lo"));
        sh(&director, "addr add 2001:db8::1/64 dev d0 nodad");

        sh(&director, &format!("addr add {VIP6}/128 dev lo nodad"));
        director.sysctl("net.ipv4.ip_forward", "1").expect("sysctl");
        director
            .sysctl("net.ipv6.conf.all.forwarding", "1")
            .expect("sysctl");
        for k in 0..n {
            let rs = NetNs::new(&format!("rs{k}")).expect("netns");
            let rip = format!("198.19.0.{}", 2 + k);
            veth(&director, &format!("d-rs{k}"), &rs, "r0").expect("veth");
            if direct {
                sh(&director, "addr add 198.19.0.1/24 dev d-rs0");
                sh(&director, "addr add 2001:db8:1::1/64 dev d-rs0 nodad");
            } else {
                sh(&director, &format!("link set d-rs{k} master br1"));
            }
            sh(&rs, &format!("addr add {rip}/24 dev r0"));
            // no TSO/GSO super-frames toward the director (rvsd reads one frame per slot)
            sh(&rs, "link set r0 gso_max_segs 1");
            match method {
                Method::Nat => {
                    sh(&rs, "route add default via 198.19.0.1");
                    sh(
                        &rs,
                        &format!("addr add 2001:db8:1::{}/64 dev r0 nodad", 2 + k),
                    );
                    sh(&rs, "-6 route add default via 2001:db8:1::1");
                }
                Method::Tun | Method::Gue => {
                    veth(&client, &format!("c-rs{k}"), &rs, "r1").expect("veth");
                    sh(&client, &format!("link set c-rs{k} master br0"));
                    sh(&rs, &format!("addr add 198.18.0.{}/24 dev r1", 3 + k));
                    sh(
                        &rs,
                        &format!("addr add 2001:db8:1::{}/64 dev r0 nodad", 2 + k),
                    );
                    sh(
                        &rs,
                        &format!("addr add 2001:db8::{}/64 dev r1 nodad", 3 + k),
                    );
                    let rvs_rs = bin("rvs-rs");
                    assert!(
                        rvs_rs.exists(),
                        "{} missing: build rvs-realserver",
                        rvs_rs.display()
                    );
                    let child = Command::new("ip")
                        .args(["netns", "exec", rs.name()])
                        .arg(rvs_rs)
                        .arg("--state")
                        .arg(tmp.join(format!("rs{k}.json")))
                        .args(["setup", "--vip", VIP, "--vip", VIP6, "--foreground"])
                        .args(if method == Method::Gue {
                            ["--tunnel", "gue", "--gue-port", "6080"].as_slice()
                        } else {
                            ["--tunnel", "ipip"].as_slice()
                        })
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .expect("start rvs-rs");
                    decap.push(Bg(child));
                }
                Method::Dr => {
                    veth(&client, &format!("c-rs{k}"), &rs, "r1").expect("veth");
                    sh(&client, &format!("link set c-rs{k} master br0"));
                    sh(&rs, &format!("addr add 198.18.0.{}/24 dev r1", 3 + k));
                    sh(&rs, &format!("addr add {VIP}/32 dev lo"));
                    sh(
                        &rs,
                        &format!("addr add 2001:db8:1::{}/64 dev r0 nodad", 2 + k),
                    );
                    sh(
                        &rs,
                        &format!("addr add 2001:db8::{}/64 dev r1 nodad", 3 + k),
                    );
                    sh(&rs, &format!("addr add {VIP6}/128 dev lo nodad"));
                    for (key, v) in [
                        ("net.ipv4.conf.all.arp_ignore", "1"),
                        ("net.ipv4.conf.all.arp_announce", "2"),
                        ("net.ipv4.conf.all.rp_filter", "0"),
                        ("net.ipv4.conf.r0.rp_filter", "0"),
                    ] {
                        rs.sysctl(key, v).expect("sysctl");
                    }
                }
            }
            servers.push(rs);
        }
        if !direct {
            sh(
                &director,
                &format!("addr add 2001:db8:1::1/64 dev {rs_lan} nodad"),
            );
            sh(&director, &format!("addr add 198.19.0.1/24 dev {rs_lan}"));
        }
        if matches!(method, Method::Tun | Method::Gue) {
            // wait until every decapsulator has set up its TUN device
            for rs in &servers {
                let deadline = Instant::now() + Duration::from_secs(10);
                while rs.ip(&["link", "show", "rvs-tun0"]).is_err() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        Self {
            _decap: decap,
            client,
            director,
            servers,
            _tmp: TmpDir(tmp),
        }
    }
}

static NEXT_LAB: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A TCP server in `ns` answering each connection: echoes what it read, prefixed with
/// `name:`. Stops after `n` connections or `deadline`.
fn serve(ns: &NetNs, name: &'static str, n: usize) -> std::thread::JoinHandle<Vec<Vec<u8>>> {
    let listener = ns
        .run(|| TcpListener::bind(("0.0.0.0", PORT)))
        .expect("join ns")
        .expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut got = Vec::new();
        while got.len() < n && Instant::now() < deadline {
            match listener.accept() {
                Ok((mut s, _)) => {
                    s.set_nonblocking(false).ok();
                    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
                    let mut buf = Vec::new();
                    let _ = s.read_to_end(&mut buf);
                    let mut reply = format!("{name}:").into_bytes();
                    reply.extend_from_slice(&buf);
                    let _ = s.write_all(&reply);
                    got.push(buf);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        got
    })
}

/// Connect from the client namespace, send `data`, return the reply.
fn request(client: &NetNs, data: &[u8]) -> std::io::Result<Vec<u8>> {
    let data = data.to_vec();
    client
        .run(move || {
            let addr: SocketAddr = format!("{VIP}:{PORT}").parse().expect("addr");
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(&data)?;
            s.shutdown(Shutdown::Write)?;
            let mut out = Vec::new();
            s.read_to_end(&mut out)?;
            Ok(out)
        })
        .expect("join ns")
}

fn random32() -> Vec<u8> {
    let mut seed = Instant::now().elapsed().as_nanos() as u64 ^ u64::from(std::process::id());
    (0..32)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

/// `ethtool -K DEV tx off` for every sender in the lab.
fn tx_checksums_off(lab: &Lab) {
    let run = |ns: &NetNs, dev: &str| {
        let o = ns
            .exec("ethtool", &["-K", dev, "tx", "off"])
            .expect("ethtool");
        assert!(
            o.status.success(),
            "ethtool -K {dev} tx off: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run(&lab.client, "c-dir");
    run(&lab.client, "br0");
    for rs in &lab.servers {
        run(rs, "r0");
        if rs.ip(&["link", "show", "r1"]).is_ok() {
            run(rs, "r1");
        }
    }
}

fn selftest(method: Method) {
    selftest_on(method, "af-packet");
}

fn selftest_on(method: Method, backend: &str) {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    if backend == "af-xdp"
        && let Some(why) = rvs_io::xdp::xdp_unavailable()
    {
        eprintln!("skipped: {why}");
        return;
    }
    let lab = Lab::new(method, 1);
    if backend == "af-xdp" {
        // XDP sees frames before checksum offload is resolved: local senders on veth must
        // fill in their checksums (AF_PACKET reports such frames and rvsd completes them)
        tx_checksums_off(&lab);
    }
    // "af-packet+tc": the fast path at the TC hook
    let (backend, hook) = backend.split_once('+').unwrap_or((backend, "auto"));
    let d = Rvsd::start_with(
        &lab.director,
        &["d0", "br1"],
        &["--backend", backend, "--fastpath-hook", hook],
    );
    let flag = method.flag();
    d.ok(&format!("-A -t {VIP}:{PORT} -s rr"));
    d.ok(&format!("-a -t {VIP}:{PORT} -r 198.19.0.2:{PORT} {flag}"));
    let server = serve(&lab.servers[0], "rs0", 1);
    let data = random32();
    let reply = request(&lab.client, &data).expect("connection through rvsd");
    let got = server.join().expect("server thread");
    assert_eq!(got, vec![data.clone()], "the 32 bytes arrive intact");
    let mut expect = b"rs0:".to_vec();
    expect.extend_from_slice(&data);
    assert_eq!(reply, expect, "the reply reaches the client");
    let stats = d.ok("-L -n --stats --exact");
    let line = stats
        .lines()
        .find(|l| l.starts_with("TCP"))
        .expect("service line");
    let conns: u64 = line.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert_eq!(conns, 1, "{stats}");
    let _ = &lab.director;
}

/// The fast path at the TC hook, on the bridge lab whose senders leave their checksums to
/// offload (NAT rewrites them with the kernel's helpers; rvs-rs finishes TUN's inner ones).
#[test]
fn selftest_tc_hook_every_method() {
    for method in [Method::Dr, Method::Nat, Method::Tun] {
        selftest_on(method, "af-packet+tc");
    }
}

#[test]
fn selftest_dr() {
    selftest(Method::Dr);
}

#[test]
fn selftest_nat() {
    selftest(Method::Nat);
}

#[test]
fn selftest_tun() {
    selftest(Method::Tun);
}

#[test]
fn selftest_tun_gue() {
    selftest(Method::Gue);
}

#[test]
fn selftest_af_xdp_every_method() {
    for m in [Method::Dr, Method::Nat, Method::Tun, Method::Gue] {
        selftest_on(m, "af-xdp");
    }
}

#[test]
fn article_walkthrough_rr_rotates_over_three_servers() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    for method in [Method::Nat, Method::Dr, Method::Tun] {
        let lab = Lab::new(method, 3);
        let d = Rvsd::start(&lab.director, &["d0", "br1"]);
        let flag = method.flag();
        d.ok(&format!("-A -t {VIP}:{PORT} -s rr"));
        for k in 0..3 {
            d.ok(&format!(
                "-a -t {VIP}:{PORT} -r 198.19.0.{}:{PORT} {flag}",
                2 + k
            ));
        }
        let names = ["rs0", "rs1", "rs2"];
        let servers: Vec<_> = lab
            .servers
            .iter()
            .zip(names)
            .map(|(ns, name)| serve(ns, name, 2))
            .collect();
        let mut seen = Vec::new();
        for i in 0..6u8 {
            let r = request(&lab.client, &[i]).expect("request");
            seen.push(String::from_utf8_lossy(&r[..3]).into_owned());
        }
        for s in servers {
            assert_eq!(s.join().expect("server").len(), 2);
        }
        // newest first: rs2 rs1 rs0 rs2 rs1 rs0
        assert_eq!(seen, ["rs2", "rs1", "rs0", "rs2", "rs1", "rs0"]);
        let list = d.ok("-L -n --stats --exact");
        for k in 0..3 {
            let l = list
                .lines()
                .find(|l| l.contains(&format!("198.19.0.{}:{PORT}", 2 + k)))
                .expect("dest line");
            assert_eq!(l.split_whitespace().nth(2), Some("2"), "{list}");
        }
    }
}

// ---------------------------------------------------------------- more of issue 4

/// Connect to `addr` from the client namespace and return the first `n` bytes answered to
/// `data` (connection left open when `keep` is set: returned for later use).
fn connect(client: &NetNs, addr: SocketAddr) -> std::io::Result<TcpStream> {
    client
        .run(move || {
            let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            Ok(s)
        })
        .expect("join ns")
}

/// A line-echo server prefixing each line with `name`, one thread per connection, for
/// `lifetime`.
fn serve_echo(ns: &NetNs, name: &'static str, lifetime: Duration) {
    let listener = ns
        .run(|| TcpListener::bind(("::", PORT)).or_else(|_| TcpListener::bind(("0.0.0.0", PORT))))
        .expect("join ns")
        .expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let end = Instant::now() + lifetime;
        while Instant::now() < end {
            match listener.accept() {
                Ok((s, _)) => {
                    std::thread::spawn(move || {
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
                        let mut w = s.try_clone().expect("clone");
                        let r = std::io::BufReader::new(s);
                        for line in std::io::BufRead::lines(r) {
                            let Ok(line) = line else { break };
                            if writeln!(w, "{name}:{line}").is_err() {
                                break;
                            }
                        }
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
}

fn ask(s: &mut TcpStream, line: &str) -> std::io::Result<String> {
    writeln!(s, "{line}")?;
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\n") {
        if s.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&buf).trim_end().to_string())
}

fn who(client: &NetNs, addr: SocketAddr) -> String {
    let mut s = connect(client, addr).expect("connect");
    let r = ask(&mut s, "hi").expect("answer");
    r.split(':').next().unwrap_or("").to_string()
}

fn vip4() -> SocketAddr {
    format!("{VIP}:{PORT}").parse().unwrap()
}

#[test]
fn ipv6_vip_nat_with_a_different_real_server_port_and_udp() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let lab = Lab::new(Method::Nat, 1);
    let d = Rvsd::start(&lab.director, &["d0", "br1"]);
    // IPv6 VIP port 80 to the real server's 8080
    d.ok(&format!("-A -t [{VIP6}]:80 -s rr"));
    d.ok(&format!("-a -t [{VIP6}]:80 -r [2001:db8:1::2]:{PORT} -m"));
    serve_echo(&lab.servers[0], "rs0", Duration::from_secs(20));
    let addr: SocketAddr = format!("[{VIP6}]:80").parse().unwrap();
    let mut s = connect(&lab.client, addr).expect("connect to the IPv6 VIP");
    assert_eq!(ask(&mut s, "six").expect("answer"), "rs0:six");
    // UDP, IPv4, NAT to another port
    d.ok(&format!("-A -u {VIP}:53 -s rr"));
    d.ok(&format!("-a -u {VIP}:53 -r 198.19.0.2:5353 -m"));
    let sock = lab.servers[0]
        .run(|| std::net::UdpSocket::bind("0.0.0.0:5353"))
        .expect("ns")
        .expect("bind udp");
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let server = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        let (n, from) = sock
            .recv_from(&mut buf)
            .expect("datagram at the real server");
        sock.send_to(&buf[..n], from).expect("reply");
        (buf[..n].to_vec(), from)
    });
    let reply = lab
        .client
        .run(|| {
            let c = std::net::UdpSocket::bind("0.0.0.0:0")?;
            c.set_read_timeout(Some(Duration::from_secs(5)))?;
            c.send_to(b"query", format!("{VIP}:53"))?;
            let mut buf = [0u8; 512];
            let (n, from) = c.recv_from(&mut buf)?;
            Ok::<_, std::io::Error>((buf[..n].to_vec(), from))
        })
        .expect("ns")
        .expect("udp answer");
    let (got, from) = server.join().unwrap();
    assert_eq!(got, b"query");
    assert_eq!(
        from.ip().to_string(),
        "198.18.0.2",
        "the real server sees the client"
    );
    assert_eq!(reply.0, b"query");
    assert_eq!(
        reply.1.to_string(),
        format!("{VIP}:53"),
        "the answer comes from the VIP"
    );
    let conns = d.ok("-L -c -n");
    assert!(conns.contains("UDP"), "{conns}");
}

#[test]
fn schedulers_and_persistence_on_real_packets() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let lab = Lab::new(Method::Nat, 3);
    let d = Rvsd::start(&lab.director, &["d0", "br1"]);
    for (k, ns) in lab.servers.iter().enumerate() {
        serve_echo(ns, ["rs0", "rs1", "rs2"][k], Duration::from_secs(60));
    }
    let count = |seen: &[String], name: &str| seen.iter().filter(|s| *s == name).count();
    // wrr by weight: 1, 2, 3 over 12 connections -> 2, 4, 6
    d.ok(&format!("-A -t {VIP}:{PORT} -s wrr"));
    for k in 0..3 {
        d.ok(&format!(
            "-a -t {VIP}:{PORT} -r 198.19.0.{}:{PORT} -m -w {}",
            2 + k,
            k + 1
        ));
    }
    let seen: Vec<String> = (0..12).map(|_| who(&lab.client, vip4())).collect();
    assert_eq!(
        (
            count(&seen, "rs0"),
            count(&seen, "rs1"),
            count(&seen, "rs2")
        ),
        (2, 4, 6),
        "{seen:?}"
    );
    // sh and mh: one client always lands on the same server
    for sched in ["sh", "mh"] {
        d.ok(&format!("-E -t {VIP}:{PORT} -s {sched}"));
        let seen: Vec<String> = (0..6).map(|_| who(&lab.client, vip4())).collect();
        assert!(seen.iter().all(|s| *s == seen[0]), "{sched}: {seen:?}");
    }
    // rr with persistence: the client stays on its first server
    d.ok(&format!("-E -t {VIP}:{PORT} -s rr -p 60"));
    let seen: Vec<String> = (0..6).map(|_| who(&lab.client, vip4())).collect();
    assert!(seen.iter().all(|s| *s == seen[0]), "persistence: {seen:?}");
    let list = d.ok("-L -n --persistent-conn");
    assert!(list.contains("persistent 60"), "{list}");
    let conns = d.ok("-L -c -n");
    assert!(conns.contains("ASSURED"), "a template is shown: {conns}");
}

#[test]
fn quiescing_keeps_existing_connections_and_deleting_ends_them() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let lab = Lab::new(Method::Nat, 2);
    let d = Rvsd::start_with(
        &lab.director,
        &["d0", "br1"],
        &["--sysctl", "expire_nodest_conn=1"],
    );
    serve_echo(&lab.servers[0], "rs0", Duration::from_secs(60));
    serve_echo(&lab.servers[1], "rs1", Duration::from_secs(60));
    d.ok(&format!("-A -t {VIP}:{PORT} -s rr"));
    d.ok(&format!("-a -t {VIP}:{PORT} -r 198.19.0.2:{PORT} -m"));
    d.ok(&format!("-a -t {VIP}:{PORT} -r 198.19.0.3:{PORT} -m"));
    // the first connection goes to the newest server, rs1
    let mut long = connect(&lab.client, vip4()).expect("connect");
    assert_eq!(ask(&mut long, "a").expect("answer"), "rs1:a");
    d.ok(&format!("-e -t {VIP}:{PORT} -r 198.19.0.3:{PORT} -m -w 0"));
    for _ in 0..4 {
        assert_eq!(
            who(&lab.client, vip4()),
            "rs0",
            "weight 0 gets no new connection"
        );
    }
    assert_eq!(ask(&mut long, "b").expect("still served"), "rs1:b");
    let list = d.ok("-L -n");
    let line: Vec<&str> = list
        .lines()
        .find(|l| l.contains("198.19.0.3:8080"))
        .expect("dest line")
        .split_whitespace()
        .collect();
    assert_eq!(
        line[2..5],
        ["Masq", "0", "1"],
        "weight 0, one active: {list}"
    );
    // deleting the server ends its connection (expire_nodest_conn=1): no more answers
    d.ok(&format!("-d -t {VIP}:{PORT} -r 198.19.0.3:{PORT}"));
    let after = ask(&mut long, "c");
    assert!(
        after.is_err(),
        "the deleted server's connection must end: {after:?}\n{}",
        d.ok("-L -c -n")
    );
    assert_eq!(who(&lab.client, vip4()), "rs0");
}

#[test]
fn long_download_keeps_going_while_servers_change() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    const SIZE: usize = 16 << 20;
    let lab = Lab::new(Method::Nat, 3);
    let d = Rvsd::start(&lab.director, &["d0", "br1"]);
    d.ok(&format!("-A -t {VIP}:{PORT} -s wlc"));
    d.ok(&format!("-a -t {VIP}:{PORT} -r 198.19.0.2:{PORT} -m"));
    // rs0 streams SIZE bytes of a known pattern
    let listener = lab.servers[0]
        .run(|| TcpListener::bind(("0.0.0.0", PORT)))
        .expect("ns")
        .expect("bind");
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let chunk: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
        let mut sent = 0;
        while sent < SIZE {
            s.write_all(&chunk).expect("send");
            sent += chunk.len();
        }
    });
    let (got, bad) = std::thread::scope(|sc| {
        let dl = sc.spawn(|| download(&lab.client, vip4(), SIZE));
        // change the table while the download runs
        std::thread::sleep(Duration::from_millis(200));
        d.ok(&format!("-a -t {VIP}:{PORT} -r 198.19.0.3:{PORT} -m -w 2"));
        d.ok(&format!("-a -t {VIP}:{PORT} -r 198.19.0.4:{PORT} -m"));
        d.ok(&format!("-e -t {VIP}:{PORT} -r 198.19.0.3:{PORT} -m -w 5"));
        d.ok(&format!("-d -t {VIP}:{PORT} -r 198.19.0.4:{PORT}"));
        d.ok(&format!("-E -t {VIP}:{PORT} -s rr"));
        d.ok(&format!("-e -t {VIP}:{PORT} -r 198.19.0.2:{PORT} -m -w 3"));
        dl.join().expect("download thread")
    });
    server.join().expect("server");
    assert_eq!(got, SIZE, "every byte arrived");
    assert_eq!(bad, 0, "no byte was corrupted");
}

#[test]
fn path_mtu_discovery_through_the_tunnel() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    const SIZE: usize = 256 * 1024;
    let lab = Lab::new(Method::Tun, 1);
    let d = Rvsd::start(&lab.director, &["d0", "br1"]);
    d.ok(&format!("-A -t {VIP}:{PORT} -s rr"));
    d.ok(&format!("-a -t {VIP}:{PORT} -r 198.19.0.2:{PORT} -i"));
    let server = serve(&lab.servers[0], "rs0", 1);
    // full-size segments do not fit the tunnel: rvsd answers "fragmentation needed" with
    // the tunnel MTU, the client lowers its path MTU and the upload completes
    let data: Vec<u8> = (0..SIZE).map(|i| (i % 253) as u8).collect();
    let reply = request(&lab.client, &data).expect("upload through the tunnel");
    let got = server.join().expect("server");
    assert_eq!(got.len(), 1);
    assert!(got[0] == data, "{} bytes arrived of {SIZE}", got[0].len());
    assert!(reply.starts_with(b"rs0:"));
    let mtu = lab.client.ip(&["route", "get", VIP]).expect("route get");
    assert!(
        mtu.contains("mtu 1480"),
        "the client learned the tunnel MTU: {mtu}"
    );
}

#[test]
fn ipv6_through_dr_and_tunnels() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    for (method, rs) in [
        (Method::Dr, "[2001:db8:1::2]"),
        (Method::Tun, "[2001:db8:1::2]"),
        // an IPv6 VIP tunnelled to an IPv4 real server (mixed families are allowed for -i)
        (Method::Tun, "198.19.0.2"),
    ] {
        let lab = Lab::new(method, 1);
        let d = Rvsd::start(&lab.director, &["d0", "br1"]);
        d.ok(&format!("-A -t [{VIP6}]:{PORT} -s rr"));
        d.ok(&format!(
            "-a -t [{VIP6}]:{PORT} -r {rs}:{PORT} {}",
            method.flag()
        ));
        serve_echo(&lab.servers[0], "rs0", Duration::from_secs(20));
        let addr: SocketAddr = format!("[{VIP6}]:{PORT}").parse().unwrap();
        let mut s = connect(&lab.client, addr)
            .unwrap_or_else(|e| panic!("{method:?} to {rs}: connect: {e}"));
        assert_eq!(
            ask(&mut s, "v6").unwrap_or_else(|e| panic!("{method:?} to {rs}: {e}")),
            "rs0:v6"
        );
    }
}

#[test]
fn sigterm_removes_the_host_rules_and_exits_cleanly() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    // the default (fast path at TC: drops at inet input/forward) and the XDP hook (drops
    // at netdev ingress)
    for (hook, family) in [("tc", "inet"), ("auto", "netdev")] {
        sigterm_cleans_up(hook, family);
    }
}

fn sigterm_cleans_up(hook: &str, family: &str) {
    let lab = Lab::new(Method::Nat, 1);
    let mut d = Rvsd::start_with(&lab.director, &["d0", "br1"], &["--fastpath-hook", hook]);
    d.ok(&format!("-A -t {VIP}:{PORT} -s rr"));
    d.ok(&format!("-a -t {VIP}:{PORT} -r 198.19.0.2:{PORT} -m"));
    let rules = lab
        .director
        .exec("nft", &["list", "table", family, "rvsd"])
        .expect("nft");
    let text = String::from_utf8_lossy(&rules.stdout);
    assert!(rules.status.success(), "table {family} rvsd: {text}");
    assert!(
        text.contains("ip daddr . meta l4proto . th dport @dst4 drop"),
        "{text}"
    );
    assert!(
        text.contains(&format!("elements = {{ {VIP} . tcp . {PORT} }}")),
        "{text}"
    );
    assert!(
        text.contains("ip saddr . meta l4proto . th sport @src4 ip daddr != @spare4 drop"),
        "{text}"
    );
    assert!(
        text.contains(&format!("elements = {{ 198.19.0.2 . tcp . {PORT} }}")),
        "{text}"
    );
    assert!(text.contains("elements = { 198.19.0.1 }"), "{text}");
    // the kernel fast path's program is on the served interfaces
    let tc = || {
        lab.director
            .run(|| rvs_io::xdp::tc_ingress_programs("d0").expect("tcx query"))
            .expect("entering the director")
    };
    let link = lab.director.ip(&["link", "show", "d0"]).expect("ip link");
    if hook != "tc" {
        assert!(link.contains("xdp"), "{link}");
        assert!(tc().is_empty());
    } else {
        assert!(!link.contains("xdp"), "{link}");
        assert_eq!(tc(), ["rvs_tc"]);
    }
    rvs_io::signal::terminate(d.child.id()).expect("SIGTERM");
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(st) = d.child.try_wait().expect("wait") {
            break st;
        }
        assert!(Instant::now() < deadline, "rvsd did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    let after = lab
        .director
        .exec("nft", &["list", "table", family, "rvsd"])
        .expect("nft");
    assert!(
        !after.status.success(),
        "the table is gone after a clean stop"
    );
    let link = lab.director.ip(&["link", "show", "d0"]).expect("ip link");
    assert!(!link.contains("xdp"), "the XDP program is detached: {link}");
    assert!(tc().is_empty(), "the TC program is detached");
}

#[test]
fn metrics_scraped_over_http_show_the_traffic() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let lab = Lab::new(Method::Nat, 2);
    let d = Rvsd::start_with(
        &lab.director,
        &["d0", "br1"],
        &["--metrics", "127.0.0.1:9105"],
    );
    d.ok(&format!("-A -t {VIP}:{PORT} -s rr"));
    d.ok(&format!("-a -t {VIP}:{PORT} -r 198.19.0.2:{PORT} -m -w 2"));
    d.ok(&format!("-a -t {VIP}:{PORT} -r 198.19.0.3:{PORT} -m"));
    serve_echo(&lab.servers[0], "rs0", Duration::from_secs(20));
    serve_echo(&lab.servers[1], "rs1", Duration::from_secs(20));
    for _ in 0..3 {
        who(&lab.client, vip4());
    }
    let text = scrape(&lab.director, "127.0.0.1:9105");
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(text.contains("\nnode_ipvs_connections_total 3\n"), "{text}");
    let weight = format!(
        "node_ipvs_backend_weight{{local_address=\"{VIP}\",local_port=\"{PORT}\",remote_address=\"198.19.0.2\",remote_port=\"{PORT}\",proto=\"TCP\",local_mark=\"\"}} 2\n"
    );
    assert!(text.contains(&weight), "{text}");
    // rr over two: 2 + 1 connections, every one closed again (inactive)
    let conns: u64 = text
        .lines()
        .filter(|l| l.starts_with("rvs_backend_connections_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(conns, 3, "{text}");
    assert!(text.contains("rvs_dataplane_info{backend=\"af_packet\"} 1"));
    assert!(text.contains("rvs_dataplane_loop_seconds_total{loop=\"0\",state=\"busy\"}"));
    assert!(text.contains("rvs_drops_total{reason=\"malformed\"} 0"));
}

#[test]
fn firewall_mark_service_with_marks_from_nftables() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let lab = Lab::new(Method::Nat, 2);
    // the administrator's own marking rule, as LVS users write it for `ipvsadm -A -f 1`
    let script = format!(
        "table ip mangle_demo {{\n chain pre {{\n  type filter hook prerouting priority -150; policy accept;\n  ip daddr {VIP} tcp dport {{ {PORT}, 8443 }} meta mark set 1\n }}\n}}\n"
    );
    let out = Command::new("ip")
        .args(["netns", "exec", lab.director.name(), "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin
                .take()
                .expect("stdin")
                .write_all(script.as_bytes())?;
            c.wait_with_output()
        })
        .expect("nft");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = Rvsd::start(&lab.director, &["d0", "br1"]);
    d.ok("-A -f 1 -s rr");
    d.ok(&format!("-a -f 1 -r 198.19.0.2:{PORT} -m"));
    d.ok(&format!("-a -f 1 -r 198.19.0.3:{PORT} -m"));
    serve_echo(&lab.servers[0], "rs0", Duration::from_secs(20));
    serve_echo(&lab.servers[1], "rs1", Duration::from_secs(20));
    let seen: Vec<String> = (0..4).map(|_| who(&lab.client, vip4())).collect();
    assert_eq!(seen, ["rs1", "rs0", "rs1", "rs0"]);
    // a long-lived connection keeps working (its later packets come marked too)
    let mut s = connect(&lab.client, vip4()).expect("connect");
    for i in 0..5 {
        assert!(
            ask(&mut s, &format!("m{i}"))
                .expect("answer")
                .ends_with(&format!(":m{i}"))
        );
    }
    let list = d.ok("-L -n --stats --exact");
    let line = list
        .lines()
        .find(|l| l.starts_with("FWM"))
        .expect("FWM line");
    assert_eq!(line.split_whitespace().nth(2), Some("5"), "{list}");
}

/// A TCP server that can be stopped and started again (a real server's web server going
/// down and coming back).
struct Switchable {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Switchable {
    fn start(ns: &NetNs, name: &'static str) -> Self {
        let listener = ns
            .run(|| TcpListener::bind(("0.0.0.0", PORT)))
            .expect("ns")
            .expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(60);
            while !flag.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < end {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                        let mut b = [0u8; 64];
                        let n = s.read(&mut b).unwrap_or(0);
                        if n > 0 {
                            let _ = s.write_all(format!("{name}:").as_bytes());
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Poll `rvsadm -L -n` until `pred` holds (bounded).
fn wait_for(d: &Rvsd, what: &str, secs: u64, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let list = d.adm(&["-L", "-n"]).1;
        if pred(&list) {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}:\n{list}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn keepalived_configuration_with_health_checks() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let lab = Lab::new(Method::Nat, 3);
    let dir = std::env::temp_dir().join(format!("rvs-kconf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let conf = dir.join("keepalived.conf");
    let text = format!(
        "! rvs end-to-end test\n\
         global_defs {{\n    router_id rvs_test\n}}\n\
         vrrp_instance VI_1 {{\n    state MASTER\n    interface d0\n    virtual_router_id 51\n    priority 100\n}}\n\
         virtual_server {VIP} {PORT} {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n\
             real_server 198.19.0.2 {PORT} {{\n        weight 1\n        TCP_CHECK {{\n            connect_timeout 1\n            retry 1\n            delay_before_retry 1\n        }}\n    }}\n\
             real_server 198.19.0.3 {PORT} {{\n        weight 2\n        inhibit_on_failure\n        TCP_CHECK {{\n            connect_timeout 1\n            retry 1\n            delay_before_retry 1\n        }}\n    }}\n\
             real_server 198.19.0.4 {PORT} {{\n        weight 1\n        PING_CHECK {{\n            connect_timeout 1\n            retry 1\n            delay_before_retry 1\n        }}\n    }}\n\
         }}\n"
    );
    std::fs::write(&conf, text).expect("write config");
    let servers: Vec<Switchable> = lab
        .servers
        .iter()
        .take(2)
        .zip(["rs0", "rs1"])
        .map(|(ns, n)| Switchable::start(ns, n))
        .collect();
    let d = Rvsd::start_with(
        &lab.director,
        &["d0", "br1"],
        &["--config", conf.to_str().expect("utf-8 path")],
    );
    // the real servers come up once their checks pass (rs2 by PING_CHECK)
    wait_for(&d, "three real servers", 10, |l| {
        l.contains("198.19.0.2:8080")
            && l.contains("198.19.0.3:8080")
            && l.contains("198.19.0.4:8080")
    });
    // rs2 stops answering pings: removed
    lab.servers[2]
        .ip(&["link", "set", "r0", "down"])
        .expect("link down");
    wait_for(&d, "rs2 removed (ping)", 10, |l| {
        !l.contains("198.19.0.4:8080")
    });
    let mut servers = servers.into_iter();
    let rs0 = servers.next().unwrap();
    let rs1 = servers.next().unwrap();
    // rs0 goes down: removed within delay_loop + retry
    rs0.stop();
    wait_for(&d, "rs0 removed", 10, |l| !l.contains("198.19.0.2:8080"));
    // rs1 goes down: inhibit_on_failure keeps it with weight 0
    rs1.stop();
    let list = wait_for(&d, "rs1 at weight 0", 10, |l| {
        l.lines()
            .find(|x| x.contains("198.19.0.3:8080"))
            .is_some_and(|x| x.split_whitespace().nth(3) == Some("0"))
    });
    assert!(!list.contains("198.19.0.2:8080"), "{list}");
    // rs0 comes back: re-added
    let _rs0 = Switchable::start(&lab.servers[0], "rs0");
    wait_for(&d, "rs0 back", 10, |l| l.contains("198.19.0.2:8080"));
    assert_eq!(who_raw(&lab.client), "rs0:");
    // a reload with a bad file keeps the running configuration
    std::fs::write(&conf, "virtual_server {\n").expect("write");
    rvs_io::signal::reload(d.child.id()).expect("SIGHUP");
    std::thread::sleep(Duration::from_millis(500));
    assert!(d.adm(&["-L", "-n"]).1.contains("198.19.0.2:8080"));
    // a good reload adds a service
    let text2 = format!(
        "virtual_server {VIP} {PORT} {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n    real_server 198.19.0.2 {PORT} {{\n        TCP_CHECK {{\n            connect_timeout 1\n        }}\n    }}\n}}\n\
         virtual_server {VIP} 9090 {{\n    lb_algo wlc\n    lb_kind NAT\n    protocol TCP\n    real_server 198.19.0.4 9090 {{\n        weight 1\n    }}\n}}\n"
    );
    std::fs::write(&conf, text2).expect("write");
    rvs_io::signal::reload(d.child.id()).expect("SIGHUP");
    let list = wait_for(&d, "reloaded", 10, |l| l.contains(":9090 wlc"));
    assert!(list.contains("198.19.0.4:9090"), "{list}");
    assert!(
        !list.contains("198.19.0.3:8080"),
        "rs1 is no longer declared: {list}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn who_raw(client: &NetNs) -> String {
    client
        .run(|| {
            let mut s = TcpStream::connect_timeout(&vip4(), Duration::from_secs(3))?;
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            s.write_all(b"x")?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok::<_, std::io::Error>(out)
        })
        .expect("ns")
        .expect("request")
}

#[test]
fn operator_drain_waits_for_connections_then_removes() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let lab = Lab::new(Method::Nat, 2);
    let d = Rvsd::start(&lab.director, &["d0", "br1"]);
    serve_echo(&lab.servers[0], "rs0", Duration::from_secs(30));
    serve_echo(&lab.servers[1], "rs1", Duration::from_secs(30));
    d.ok(&format!("-A -t {VIP}:{PORT} -s rr"));
    d.ok(&format!("-a -t {VIP}:{PORT} -r 198.19.0.2:{PORT} -m"));
    d.ok(&format!("-a -t {VIP}:{PORT} -r 198.19.0.3:{PORT} -m"));
    let mut long = connect(&lab.client, vip4()).expect("connect");
    assert_eq!(ask(&mut long, "a").expect("answer"), "rs1:a");
    let mut drain = Command::new("ip")
        .args(["netns", "exec", &d.ns])
        .arg(bin("rvsadm"))
        .args([
            "--drain",
            "-t",
            &format!("{VIP}:{PORT}"),
            "-r",
            &format!("198.19.0.3:{PORT}"),
        ])
        .args(["--timeout", "30"])
        .env("RVS_SOCKET", &d.socket)
        .stderr(Stdio::piped())
        .spawn()
        .expect("rvsadm --drain");
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        drain.try_wait().expect("wait").is_none(),
        "drain waits for the connection"
    );
    for _ in 0..3 {
        assert_eq!(
            who(&lab.client, vip4()),
            "rs0",
            "no new connection to a draining server"
        );
    }
    assert_eq!(
        ask(&mut long, "b").expect("still served while draining"),
        "rs1:b"
    );
    drop(long);
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(st) = drain.try_wait().expect("wait") {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "drain did not finish after the connection ended"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
    let list = d.ok("-L -n");
    assert!(!list.contains("198.19.0.3"), "{list}");
    assert!(list.contains("198.19.0.2"), "{list}");
}

/// Stream `size` bytes of a known pattern from `ns` to the first client that connects.
fn serve_bulk(ns: &NetNs, port: u16, size: usize, pace: Duration) -> std::thread::JoinHandle<()> {
    let listener = ns
        .run(|| TcpListener::bind(("0.0.0.0", port)))
        .expect("ns")
        .expect("bind");
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let chunk: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
        let mut sent = 0;
        while sent < size {
            if s.write_all(&chunk).is_err() {
                return;
            }
            sent += chunk.len();
            std::thread::sleep(pace);
        }
    })
}

/// Download from `addr` in the client namespace; returns (bytes, corrupted bytes).
fn download(client: &NetNs, addr: SocketAddr, size: usize) -> (usize, usize) {
    client
        .run(move || {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            let mut buf = vec![0u8; 65536];
            let (mut got, mut bad) = (0usize, 0usize);
            let start = Instant::now();
            while got < size && start.elapsed() < Duration::from_secs(60) {
                let n = s.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                for (i, b) in buf[..n].iter().enumerate() {
                    if *b != (((got + i) % 65536) % 251) as u8 {
                        bad += 1;
                    }
                }
                got += n;
            }
            Ok::<_, std::io::Error>((got, bad))
        })
        .expect("ns")
        .expect("download")
}

#[test]
fn reload_with_one_changed_service_leaves_a_download_on_another_running() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    const SIZE: usize = 16 << 20;
    let lab = Lab::new(Method::Nat, 2);
    let dir = std::env::temp_dir().join(format!("rvs-kreload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let conf = dir.join("keepalived.conf");
    let svc = |port: u16, algo: &str, rs: &str| {
        format!(
            "virtual_server {VIP} {port} {{\n    lb_algo {algo}\n    lb_kind NAT\n    protocol TCP\n    real_server {rs} {port} {{\n        weight 1\n    }}\n}}\n"
        )
    };
    std::fs::write(
        &conf,
        svc(PORT, "rr", "198.19.0.2") + &svc(9090, "rr", "198.19.0.3"),
    )
    .expect("write");
    let d = Rvsd::start_with(
        &lab.director,
        &["d0", "br1"],
        &["--config", conf.to_str().unwrap()],
    );
    wait_for(&d, "both services", 10, |l| {
        l.contains(":9090 rr") && l.contains(":8080 rr")
    });
    // paced at about 64 KiB per 5 ms, so the download lasts well past the reload
    let server = serve_bulk(&lab.servers[0], PORT, SIZE, Duration::from_millis(5));
    let started = Instant::now();
    let (got, bad, reloaded_at, finished_at) = std::thread::scope(|sc| {
        let dl = sc.spawn(|| {
            let r = download(&lab.client, vip4(), SIZE);
            (r, started.elapsed())
        });
        std::thread::sleep(Duration::from_millis(300));
        // change only the other service, then reload
        std::fs::write(
            &conf,
            svc(PORT, "rr", "198.19.0.2") + &svc(9090, "wlc", "198.19.0.3"),
        )
        .expect("write");
        rvs_io::signal::reload(d.child.id()).expect("SIGHUP");
        wait_for(&d, "the changed service", 10, |l| l.contains(":9090 wlc"));
        let reloaded_at = started.elapsed();
        let ((got, bad), finished_at) = dl.join().expect("download thread");
        (got, bad, reloaded_at, finished_at)
    });
    server.join().expect("server");
    assert_eq!(
        (got, bad),
        (SIZE, 0),
        "the download on the unchanged service went on"
    );
    assert!(
        finished_at > reloaded_at,
        "the reload happened during the download ({reloaded_at:?} < {finished_at:?})"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn quorum_loss_switches_to_the_sorry_server() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let lab = Lab::new(Method::Nat, 2);
    let dir = std::env::temp_dir().join(format!("rvs-ksorry-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let conf = dir.join("keepalived.conf");
    let text = format!(
        "virtual_server {VIP} {PORT} {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n    quorum 1\n    sorry_server 198.19.0.3 {PORT}\n\
         real_server 198.19.0.2 {PORT} {{\n        weight 1\n        TCP_CHECK {{\n            connect_timeout 1\n            retry 1\n            delay_before_retry 1\n        }}\n    }}\n}}\n"
    );
    std::fs::write(&conf, text).expect("write");
    let rs0 = Switchable::start(&lab.servers[0], "rs0");
    let _sorry = Switchable::start(&lab.servers[1], "sorry");
    let d = Rvsd::start_with(
        &lab.director,
        &["d0", "br1"],
        &["--config", conf.to_str().unwrap()],
    );
    wait_for(&d, "rs0 up", 10, |l| l.contains("198.19.0.2:8080"));
    assert_eq!(who_raw(&lab.client), "rs0:");
    rs0.stop();
    let list = wait_for(&d, "the sorry server", 10, |l| {
        l.contains("198.19.0.3:8080") && !l.contains("198.19.0.2:8080")
    });
    assert!(list.contains("198.19.0.3:8080"), "{list}");
    assert_eq!(who_raw(&lab.client), "sorry:");
    // rs0 back: quorum regained, the sorry server leaves
    let _rs0 = Switchable::start(&lab.servers[0], "rs0");
    wait_for(&d, "quorum back", 10, |l| {
        l.contains("198.19.0.2:8080") && !l.contains("198.19.0.3:8080")
    });
    assert_eq!(who_raw(&lab.client), "rs0:");
    let _ = std::fs::remove_dir_all(&dir);
}

/// An nftables counter of what the namespace's own stack sends to `dst` (every IPv4 or IPv6
/// packet, as it leaves: the lab's senders build no GSO super-packets).
struct OutCounter<'a> {
    ns: &'a NetNs,
}

impl<'a> OutCounter<'a> {
    fn new(ns: &'a NetNs, dst: &str) -> Self {
        let chain = "{ type filter hook output priority 0 ; }";
        let fam = if dst.contains(':') { "ip6" } else { "ip" };
        let rule = format!("{fam} daddr {dst} counter");
        for args in [
            vec!["add", "table", "inet", "rvs_count"],
            vec!["add", "chain", "inet", "rvs_count", "out", chain],
            vec!["add", "rule", "inet", "rvs_count", "out", &rule],
        ] {
            let o = ns.exec("nft", &args).expect("nft");
            assert!(
                o.status.success(),
                "nft: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        Self { ns }
    }

    /// (packets, bytes)
    fn read(&self) -> (u64, u64) {
        let o = self
            .ns
            .exec("nft", &["list", "chain", "inet", "rvs_count", "out"])
            .expect("nft");
        let text = String::from_utf8_lossy(&o.stdout);
        let words: Vec<&str> = text.split_whitespace().collect();
        let at = words
            .iter()
            .position(|w| *w == "packets")
            .unwrap_or_else(|| panic!("no counter in {text}"));
        (
            words[at + 1].parse().unwrap(),
            words[at + 3].parse().unwrap(),
        )
    }
}

fn scrape(ns: &NetNs, addr: &'static str) -> String {
    ns.run(move || {
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok::<_, std::io::Error>(out)
    })
    .expect("ns")
    .expect("scrape")
}

fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in {text}"))
}

/// A TCP server in `ns` (IPv4 and IPv6): reads until EOF, answers with the byte count and a
/// checksum of what it read, then closes. One connection.
fn serve_sink(ns: &NetNs) -> std::thread::JoinHandle<()> {
    let listener = ns
        .run(|| TcpListener::bind(("::", PORT)))
        .expect("ns")
        .expect("bind");
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = vec![0u8; 65536];
        let (mut n, mut sum) = (0u64, 0u64);
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => {
                    n += k as u64;
                    sum = buf[..k]
                        .iter()
                        .fold(sum, |a, &b| a.wrapping_mul(31).wrapping_add(u64::from(b)));
                }
            }
        }
        let _ = s.write_all(format!("{n} {sum}\n").as_bytes());
    })
}

/// Established flows go through the kernel fast path (XDP, native mode on both director
/// interfaces) while SYN and FIN go through rvsd: the upload arrives intact, the
/// connection's state follows the FIN, and the statistics count exactly the packets the
/// client sent (and, for NAT, the real server's answers), most of them forwarded by XDP.
fn fast_path_case(method: Method) {
    fast_path_with(method, "af-packet", true);
}

fn fast_path_with(method: Method, backend: &str, fast: bool) {
    fast_path_on(method, backend, fast, false);
}

/// `fast`: the kernel fast path on (rvsd's default) or off (`--fastpath-flows 0`): the
/// same exact counts either way, and with it on most packets are forwarded by XDP.
fn fast_path_on(method: Method, backend: &str, fast: bool, v6: bool) {
    if let Some(why) = skip_reason().or_else(rvs_io::xdp::xdp_unavailable) {
        eprintln!("skipped: {why}");
        return;
    }
    let lab = Lab::direct(method);
    // "af-packet+tc": the fast path at the TC hook
    let (backend, hook) = backend.split_once('+').unwrap_or((backend, "auto"));
    let mut args = vec![
        "--backend",
        backend,
        "--metrics",
        "127.0.0.1:9105",
        "--fastpath-hook",
        hook,
    ];
    if !fast {
        args.extend(["--fastpath-flows", "0"]);
    }
    let d = Rvsd::start_with(&lab.director, &["d0", "d-rs0"], &args);
    let flag = method.flag();
    let (vip, rip, client) = if v6 {
        (format!("[{VIP6}]"), "[2001:db8:1::2]", "2001:db8::2")
    } else {
        (VIP.to_string(), "198.19.0.2", "198.18.0.2")
    };
    d.ok(&format!("-A -t {vip}:{PORT} -s rr"));
    d.ok(&format!("-a -t {vip}:{PORT} -r {rip}:{PORT} {flag}"));
    let to_vip = OutCounter::new(&lab.client, vip.trim_matches(['[', ']']));
    let to_client = OutCounter::new(&lab.servers[0], client);
    let vip_addr: SocketAddr = format!("{vip}:{PORT}").parse().unwrap();
    let server = serve_sink(&lab.servers[0]);
    let data: Vec<u8> = (0..4u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let expect_sum = data
        .iter()
        .fold(0u64, |a, &b| a.wrapping_mul(31).wrapping_add(u64::from(b)));
    let answer = lab
        .client
        .run(|| {
            let mut s = TcpStream::connect_timeout(&vip_addr, Duration::from_secs(5))?;
            s.set_read_timeout(Some(Duration::from_secs(20)))?;
            for c in data.chunks(65536) {
                s.write_all(c)?;
            }
            s.shutdown(Shutdown::Write)?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok::<_, std::io::Error>(out)
        })
        .expect("ns")
        .expect("upload through rvsd");
    server.join().expect("server");
    assert_eq!(
        answer,
        format!("{} {expect_sum}\n", data.len()),
        "intact upload"
    );
    // the fast path's counts reach the core within a second
    std::thread::sleep(Duration::from_millis(2500));
    let (sent, sent_bytes) = to_vip.read();
    let (answered, answered_bytes) = to_client.read();
    let stats = d.ok("-L -n --stats --exact");
    let line = stats
        .lines()
        .find(|l| l.starts_with("TCP"))
        .expect("service line");
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(2)
        .map(|w| w.parse().unwrap())
        .collect();
    // Conns InPkts OutPkts InBytes OutBytes
    assert_eq!(f[0], 1, "{stats}");
    assert_eq!(
        (f[1], f[3]),
        (sent, sent_bytes),
        "in: every packet the client sent\n{stats}"
    );
    if method == Method::Nat {
        assert_eq!(
            (f[2], f[4]),
            (answered, answered_bytes),
            "out: every answer\n{stats}"
        );
    } else {
        assert_eq!(f[2], 0, "{stats}");
    }
    let m = scrape(&lab.director, "127.0.0.1:9105");
    // rvsd saw the FIN: the connection left ESTABLISHED
    let conns = d.ok("-L -c -n");
    assert!(!conns.contains("ESTABLISHED"), "{conns}");
    assert!(conns.contains("TCP"), "{conns}");
    if !fast {
        assert!(!m.contains("rvs_fastpath_"), "{m}");
        return;
    }
    let fast = metric(&m, "rvs_fastpath_packets_total{outcome=\"forwarded\"}");
    let total = sent + if method == Method::Nat { answered } else { 0 };
    assert!(
        fast * 10 >= total * 8,
        "most packets by XDP: {fast} of {total}\n{m}"
    );
    assert!(
        metric(&m, "rvs_fastpath_updates_total{kind=\"install\"}") >= 1,
        "{m}"
    );
    // and its flows left the table
    assert_eq!(metric(&m, "rvs_fastpath_flows"), 0, "{m}");
}

#[test]
fn fast_path_dr() {
    fast_path_case(Method::Dr);
}

#[test]
fn fast_path_nat() {
    fast_path_case(Method::Nat);
}

#[test]
fn fast_path_tun() {
    fast_path_case(Method::Tun);
}

/// The same exact counts with the fast path at the TC ingress hook.
#[test]
fn fast_path_at_the_tc_hook() {
    for method in [Method::Dr, Method::Nat, Method::Tun] {
        fast_path_with(method, "af-packet+tc", true);
    }
    fast_path_on(Method::Nat, "af-packet+tc", true, true);
}

#[test]
fn fast_path_ipv6_nat_and_dr() {
    fast_path_on(Method::Nat, "af-packet", true, true);
    fast_path_on(Method::Dr, "af-packet", true, true);
}

#[test]
fn fast_path_nat_with_af_xdp() {
    fast_path_with(Method::Nat, "af-xdp", true);
}

#[test]
fn without_fast_path_counts_are_the_same() {
    fast_path_with(Method::Nat, "af-packet", false);
}

/// A flow in the kernel fast path follows its real server to a new MAC address (an
/// address taken over by another machine, ARP updated): rvsd re-checks installed flows'
/// next hops and rewrites them, within its neighbour cache's lifetime (15 s) plus one check
/// interval (5 s).
#[test]
fn fast_path_follows_a_real_server_mac_change() {
    if let Some(why) = skip_reason().or_else(rvs_io::xdp::xdp_unavailable) {
        eprintln!("skipped: {why}");
        return;
    }
    let lab = Lab::direct(Method::Dr);
    let d = Rvsd::start_with(
        &lab.director,
        &["d0", "d-rs0"],
        &["--backend", "af-packet", "--metrics", "127.0.0.1:9105"],
    );
    d.ok(&format!("-A -u {VIP}:{PORT} -s rr"));
    d.ok(&format!("-a -u {VIP}:{PORT} -r 198.19.0.2:{PORT} -g"));
    let rx = lab.servers[0]
        .run(|| std::net::UdpSocket::bind(("0.0.0.0", PORT)))
        .expect("ns")
        .expect("bind");
    rx.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let tx = lab
        .client
        .run(|| std::net::UdpSocket::bind(("198.18.0.2", 0)))
        .expect("ns")
        .expect("bind");
    let vip: SocketAddr = format!("{VIP}:{PORT}").parse().unwrap();
    // send until `want` datagrams arrived or `secs` passed; returns how many arrived
    let exchange = |want: usize, secs: u64| {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut got = 0;
        let mut buf = [0u8; 64];
        while got < want && Instant::now() < deadline {
            tx.send_to(b"ping", vip).expect("send");
            while rx.recv_from(&mut buf).is_ok() {
                got += 1;
            }
        }
        got
    };
    assert!(exchange(20, 10) >= 20, "traffic through the fast path");
    let m = scrape(&lab.director, "127.0.0.1:9105");
    assert_eq!(metric(&m, "rvs_fastpath_flows"), 1, "{m}");
    let json = d.ok("-L -c -n --json");
    assert!(json.contains("\"kernel_fast_path\": true"), "{json}");
    // the real server's address moves to another MAC; the director learns it
    let new_mac = "02:00:5e:00:53:99";
    sh(&lab.servers[0], &format!("link set r0 address {new_mac}"));
    sh(
        &lab.director,
        &format!("neigh replace 198.19.0.2 lladdr {new_mac} dev d-rs0 nud reachable"),
    );
    assert!(exchange(10, 30) >= 10, "traffic again after the MAC change");
    let m = scrape(&lab.director, "127.0.0.1:9105");
    assert!(
        metric(&m, "rvs_fastpath_updates_total{kind=\"rerouted\"}") >= 1,
        "{m}"
    );
}
