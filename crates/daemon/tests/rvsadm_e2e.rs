//! rvsadm against a real rvsd: the conformance table, save/restore round trips, large rule
//! sets, concurrent clients and kill -9 in the middle of changes.
//!
//! Every test starts its own rvsd on a private abstract socket (no network traffic at all).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn rvsd_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rvsd"))
}

fn rvsadm_bin() -> PathBuf {
    let p = rvsd_bin().with_file_name("rvsadm");
    assert!(
        p.exists(),
        "rvsadm binary not found next to rvsd at {}: run `cargo build -p rvsadm` (cargo test --workspace builds it)",
        p.display()
    );
    p
}

struct Daemon {
    child: Child,
    socket: String,
}

impl Daemon {
    fn start(tag: &str, state: Option<&Path>) -> Self {
        let socket = format!("@rvs-e2e-{}-{tag}", std::process::id());
        let mut cmd = Command::new(rvsd_bin());
        cmd.arg("--socket").arg(&socket);
        match state {
            Some(p) => cmd.arg("--state-file").arg(p),
            None => cmd.arg("--no-state"),
        };
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rvsd");
        let d = Self { child, socket };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if d.adm(&["-L", "-n"]).status.success() {
                return d;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("rvsd did not come up on {}", d.socket);
    }

    fn adm(&self, args: &[&str]) -> Output {
        Command::new(rvsadm_bin())
            .args(args)
            .env("RVS_SOCKET", &self.socket)
            .output()
            .expect("run rvsadm")
    }

    fn adm_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut c = Command::new(rvsadm_bin())
            .args(args)
            .env("RVS_SOCKET", &self.socket)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run rvsadm");
        c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        c.wait_with_output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.adm(args);
        assert!(
            o.status.success(),
            "rvsadm {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rvs-e2e-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn conformance_table_against_rvsd() {
    let d = Daemon::start("conf", None);
    // (arguments, expected stderr, expected exit code), in order, on a fresh table (spec 2.11
    // with test-range addresses)
    let rows: &[(&str, &str, i32)] = &[
        ("-A -t 198.18.0.1:80 -s rr", "", 0),
        ("-A -t 198.18.0.1:80 -s rr", "Service already exists\n", 255),
        (
            "-A -t 198.18.0.1 -s rr",
            "Zero port specified for non-persistent service\n",
            2,
        ),
        (
            "-A -t 198.18.0.5:80 -s foo",
            "Scheduler or persistence engine not found\n",
            255,
        ),
        (
            "-A -t 198.18.0.6:80 -b sh-port",
            "incompatible scheduler flag `sh-port'\n",
            2,
        ),
        ("-E -t 198.18.0.9:80", "No such service\n", 255),
        (
            "-a -t 198.18.0.2:80 -r 198.18.0.3",
            "Service not defined\n",
            255,
        ),
        ("-a -t 198.18.0.1:80 -r 198.18.0.3", "", 0),
        (
            "-a -t 198.18.0.1:80 -r 198.18.0.3",
            "Destination already exists\n",
            255,
        ),
        (
            "-a -t 198.18.0.1:80 -r 198.18.0.4 -w -1",
            "illegal weight specified\n",
            2,
        ),
        (
            "-a -t 198.18.0.1:80 -r 198.18.0.4 -y 5",
            "Numerical result out of range\n",
            255,
        ),
        (
            "-a -t 198.18.0.1:80 -r 198.18.0.4 -m --tun-port 1",
            "Tunnel options conflict with forward method\n",
            2,
        ),
        (
            "-a -t 198.18.0.1:80 -r 198.18.0.4 -i --tun-type gue",
            "You need to supply the 'tun-port' option for the 'gue' tunnel type\n",
            2,
        ),
        (
            "-d -t 198.18.0.1:80 -r 198.18.0.9",
            "No such destination\n",
            255,
        ),
        (
            "-a -t 198.18.0.1:80 -r 198.18.0.4 -s rr",
            "Illegal 'scheduler' option with the 'add-server' command\n",
            2,
        ),
        (
            "-L -c --stats",
            "options conflicts in the list command\n",
            2,
        ),
        (
            "-L -c -t 198.18.0.1:80",
            "The option 'service-address' conflicts with the 'connection' option in the 'list' command\n",
            2,
        ),
        ("-L -t 198.18.0.9:80", "No such service\n", 1),
        ("--stop-daemon master", "No daemon is running\n", 255),
    ];
    for (args, err, code) in rows {
        let argv: Vec<&str> = args.split_whitespace().collect();
        let o = d.adm(&argv);
        assert_eq!(
            (String::from_utf8_lossy(&o.stderr).as_ref(), o.status.code()),
            (*err, Some(*code)),
            "ipvsadm {args}"
        );
    }
    // the table ends as ipvsadm would leave it
    assert_eq!(
        d.ok(&["-L", "-n"]),
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n  \
         -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
         TCP  198.18.0.1:80 rr\n  \
         -> 198.18.0.3:80                Route   1      0          0         \n"
    );
}

#[test]
fn listings_are_byte_exact() {
    let d = Daemon::start("list", None);
    for line in [
        "-A -t 198.18.0.1:80 -s rr",
        "-a -t 198.18.0.1:80 -r 198.19.0.2:80 -m -w 1",
        "-a -t 198.18.0.1:80 -r 198.19.0.3:8080 -m -w 2",
        "-A -t 198.18.0.1:443 -s wlc -p 360 -M 255.255.255.0",
        "-a -t 198.18.0.1:443 -r 198.19.1.10:443 -g -w 1",
        "-a -t 198.18.0.1:443 -r 198.19.1.11:443 -g -w 0",
        "-A -u 198.18.0.1:53 -s sh -b sh-fallback,sh-port",
        "-a -u 198.18.0.1:53 -r 198.19.2.5:53 -i -w 1",
        "-A -t [2001:db8::80]:80 -s rr",
        "-a -t [2001:db8::80]:80 -r [2001:db8::a0a0]:80 -m -w 1",
        "-A -f 1 -s rr",
        "-a -f 1 -r 198.19.4.1:0 -m -w 1",
    ] {
        d.ok(&line.split_whitespace().collect::<Vec<_>>());
    }
    let expected = "IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  198.18.0.1:80 rr
  -> 198.19.0.2:80                Masq    1      0          0         
  -> 198.19.0.3:8080              Masq    2      0          0         
TCP  198.18.0.1:443 wlc persistent 360 mask 255.255.255.0
  -> 198.19.1.10:443              Route   1      0          0         
  -> 198.19.1.11:443              Route   0      0          0         
UDP  198.18.0.1:53 sh (sh-fallback,sh-port)
  -> 198.19.2.5:53                Tunnel  1      0          0         
TCP  [2001:db8::80]:80 rr
  -> [2001:db8::a0a0]:80          Masq    1      0          0         
FWM  1 rr
  -> 198.19.4.1:0                 Masq    1      0          0         
";
    assert_eq!(d.ok(&["-L", "-n"]), expected);
    let save = "-A -t 198.18.0.1:80 -s rr
-a -t 198.18.0.1:80 -r 198.19.0.2:80 -m -w 1
-a -t 198.18.0.1:80 -r 198.19.0.3:8080 -m -w 2
-A -t 198.18.0.1:443 -s wlc -p 360 -M 255.255.255.0
-a -t 198.18.0.1:443 -r 198.19.1.10:443 -g -w 1
-a -t 198.18.0.1:443 -r 198.19.1.11:443 -g -w 0
-A -u 198.18.0.1:53 -s sh -b sh-fallback,sh-port
-a -u 198.18.0.1:53 -r 198.19.2.5:53 -i -w 1 --tun-type ipip
-A -t [2001:db8::80]:80 -s rr
-a -t [2001:db8::80]:80 -r [2001:db8::a0a0]:80 -m -w 1
-A -f 1 -s rr
-a -f 1 -r 198.19.4.1:0 -m -w 1
";
    assert_eq!(d.ok(&["-S", "-n"]), save);
    assert_eq!(
        d.ok(&["-L", "-n", "--timeout"]),
        "Timeout (tcp tcpfin udp): 900 120 300\n"
    );
    d.ok(&["--set", "100", "0", "20"]);
    assert_eq!(
        d.ok(&["-L", "-n", "--timeout"]),
        "Timeout (tcp tcpfin udp): 100 120 20\n"
    );
    let stats = d.ok(&["-L", "-n", "--stats", "-t", "198.18.0.1:80"]);
    assert_eq!(
        stats,
        "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  198.18.0.1:80                       0        0        0        0        0
  -> 198.19.0.2:80                       0        0        0        0        0
  -> 198.19.0.3:8080                     0        0        0        0        0
"
    );
    assert_eq!(
        d.ok(&["-L", "-n", "-c"]),
        "IPVS connection entries\npro expire state       source             virtual            destination\n"
    );
}

#[test]
fn save_restore_round_trip_and_large_rule_set() {
    let d = Daemon::start("rt", None);
    let mut rules = String::new();
    for s in 0..1000u32 {
        let vip = format!("198.18.{}.{}", s / 250, s % 250 + 1);
        rules.push_str(&format!("-A -t {vip}:80 -s wrr\n"));
        for r in 0..10u32 {
            rules.push_str(&format!(
                "-a -t {vip}:80 -r 198.19.{}.{}:8080 -m -w {}\n",
                s % 200,
                r + 1,
                r + 1
            ));
        }
    }
    let t = Instant::now();
    let o = d.adm_stdin(&["-R"], &rules);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    eprintln!("restore of 1000 x 10: {:?}", t.elapsed());
    let saved = d.ok(&["-S", "-n"]);
    assert_eq!(saved.lines().filter(|l| l.starts_with("-A ")).count(), 1000);
    assert_eq!(
        saved.lines().filter(|l| l.starts_with("-a ")).count(),
        10_000
    );
    // -S output restored on an empty table reproduces the same -S
    d.ok(&["-C"]);
    assert_eq!(d.ok(&["-S", "-n"]), "");
    let o = d.adm_stdin(&["-R"], &saved);
    assert!(o.status.success());
    assert_eq!(d.ok(&["-S", "-n"]), saved);
}

#[test]
fn concurrent_clients_do_not_corrupt_the_table() {
    let d = Daemon::start("conc", None);
    let socket = d.socket.clone();
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                for i in 0..25u32 {
                    let vip = format!("198.18.{t}.{}:80", i + 1);
                    let o = Command::new(rvsadm_bin())
                        .args(["-A", "-t", &vip, "-s", "rr"])
                        .env("RVS_SOCKET", &socket)
                        .output()
                        .unwrap();
                    assert!(o.status.success());
                    let o = Command::new(rvsadm_bin())
                        .args(["-a", "-t", &vip, "-r", "198.19.0.1:80", "-m"])
                        .env("RVS_SOCKET", &socket)
                        .output()
                        .unwrap();
                    assert!(o.status.success());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    let saved = d.ok(&["-S", "-n"]);
    assert_eq!(saved.lines().filter(|l| l.starts_with("-A ")).count(), 100);
    assert_eq!(saved.lines().filter(|l| l.starts_with("-a ")).count(), 100);
}

#[test]
fn kill_dash_nine_loses_no_applied_change() {
    let dir = tmpdir("kill");
    let state = dir.join("state.json");
    let mut d = Daemon::start("kill1", Some(&state));
    // a writer adds services one by one; we kill rvsd while it runs
    let socket = d.socket.clone();
    let writer = std::thread::spawn(move || {
        let mut applied = Vec::new();
        for i in 0..400u32 {
            let vip = format!("198.18.{}.{}:80", i / 200, i % 200 + 1);
            let o = Command::new(rvsadm_bin())
                .args(["-A", "-t", &vip, "-s", "rr"])
                .env("RVS_SOCKET", &socket)
                .output()
                .unwrap();
            if o.status.success() {
                applied.push(vip);
            } else {
                break;
            }
        }
        applied
    });
    std::thread::sleep(Duration::from_millis(300));
    d.kill9();
    let applied = writer.join().unwrap();
    assert!(!applied.is_empty(), "writer made no change before the kill");
    drop(d);
    let d2 = Daemon::start("kill2", Some(&state));
    let saved = d2.ok(&["-S", "-n"]);
    for vip in &applied {
        assert!(saved.contains(&format!("-A -t {vip} -s rr")), "lost {vip}");
    }
    // and -C really clears what is kept
    d2.ok(&["-C"]);
    drop(d2);
    let d3 = Daemon::start("kill3", Some(&state));
    assert_eq!(d3.ok(&["-S", "-n"]), "");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unreachable_daemon_is_reported_with_the_socket() {
    let o = Command::new(rvsadm_bin())
        .args(["-L", "-n"])
        .env("RVS_SOCKET", "@rvs-e2e-nobody-listens")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("rvs-e2e-nobody-listens"), "{err}");
}
