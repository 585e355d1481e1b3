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
        let socket = format!("@rvs-selftest-{}-{}", std::process::id(), ns.name());
        let mut args = vec!["netns".to_string(), "exec".into(), ns.name().into()];
        args.push(bin("rvsd").display().to_string());
        for i in ifaces {
            args.push("-i".into());
            args.push((*i).into());
        }
        args.extend(["--no-state".into(), "--socket".into(), socket.clone()]);
        let child = Command::new("ip")
            .args(&args)
            .env("RUST_LOG", "warn")
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
}

impl Method {
    fn flag(self) -> &'static str {
        match self {
            Self::Dr => "-g",
            Self::Nat => "-m",
            Self::Tun => "-i",
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
        veth(&client, "c-dir", &director, "d0").expect("veth");
        sh(&client, "link set c-dir master br0");
        sh(&director, "addr add 198.18.0.1/24 dev d0");
        sh(&director, "link add br1 type bridge");
        sh(&director, "link set br1 up");
        sh(&director, "addr add 198.19.0.1/24 dev br1");
        sh(&director, &format!("addr add {VIP}/32 dev lo"));
        director.sysctl("net.ipv4.ip_forward", "1").expect("sysctl");
        for k in 0..n {
            let rs = NetNs::new(&format!("rs{k}")).expect("netns");
            let rip = format!("198.19.0.{}", 2 + k);
            veth(&director, &format!("d-rs{k}"), &rs, "r0").expect("veth");
            sh(&director, &format!("link set d-rs{k} master br1"));
            sh(&rs, &format!("addr add {rip}/24 dev r0"));
            // no TSO/GSO super-frames toward the director (rvsd reads one frame per slot)
            sh(&rs, "link set r0 gso_max_segs 1");
            match method {
                Method::Nat => sh(&rs, "route add default via 198.19.0.1"),
                Method::Tun => {
                    veth(&client, &format!("c-rs{k}"), &rs, "r1").expect("veth");
                    sh(&client, &format!("link set c-rs{k} master br0"));
                    sh(&rs, &format!("addr add 198.18.0.{}/24 dev r1", 3 + k));
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
                        .args(["setup", "--vip", VIP, "--tunnel", "ipip", "--foreground"])
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
        if method == Method::Tun {
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

fn selftest(method: Method) {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let lab = Lab::new(method, 1);
    let d = Rvsd::start(&lab.director, &["d0", "br1"]);
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
