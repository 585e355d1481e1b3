//! The real binary, over a real (abstract, per-test) unix socket served by the
//! rvs-api server loop in front of the fake table.

use std::io::Write;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rvs_api::serve_connection;

use crate::Fake;

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Start a server on a fresh abstract socket; returns its `RVS_SOCKET` value.
fn server() -> String {
    let name = format!(
        "rvsadm-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let listener = UnixListener::bind_addr(&addr).unwrap();
    let fake = Arc::new(Mutex::new(Fake::new()));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let fake = Arc::clone(&fake);
            std::thread::spawn(move || {
                let _ = serve_connection(&mut stream, |req| fake.lock().unwrap().apply(req));
            });
        }
    });
    format!("@{name}")
}

fn rvsadm(socket: &str, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rvsadm"))
        .args(args)
        .env("RVS_SOCKET", socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn binary_end_to_end() {
    let s = server();
    assert_eq!(
        rvsadm(&s, &["-A", "-t", "198.18.0.1:80", "-s", "rr"], ""),
        (0, String::new(), String::new())
    );
    assert_eq!(
        rvsadm(&s, &["-A", "-t", "198.18.0.1:80", "-s", "rr"], ""),
        (255, String::new(), "Service already exists\n".into())
    );
    let (c, _, e) = rvsadm(
        &s,
        &["-R"],
        "-a -t 198.18.0.1:80 -r 198.18.0.2:8080 -m\n-a -t 198.18.0.1:80 -r 198.18.0.3 -w 3\n",
    );
    assert_eq!((c, e.as_str()), (0, ""));
    assert_eq!(
        rvsadm(&s, &["-Ln"], "").1,
        concat!(
            "IP Virtual Server version 1.2.1 (size=4096)\n",
            "Prot LocalAddress:Port Scheduler Flags\n",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
            "TCP  198.18.0.1:80 rr\n",
            "  -> 198.18.0.2:8080              Masq    1      0          0         \n",
            "  -> 198.18.0.3:80                Route   3      0          0         \n",
        )
    );
    assert_eq!(
        rvsadm(&s, &["-Sn"], "").1,
        "-A -t 198.18.0.1:80 -s rr\n-a -t 198.18.0.1:80 -r 198.18.0.2:8080 -m -w 1\n-a -t 198.18.0.1:80 -r 198.18.0.3:80 -g -w 3\n"
    );
}

#[test]
fn binary_without_daemon() {
    let missing = format!("@rvsadm-test-missing-{}", std::process::id());
    let (c, out, err) = rvsadm(&missing, &["-L", "-n"], "");
    assert_eq!((c, out.as_str()), (2, ""));
    assert_eq!(
        err,
        format!(
            "Can't initialize ipvs: rvsd is not running (no socket {missing}): Connection refused\nAre you sure that IP Virtual Server is built in the kernel or as module?\n"
        )
    );
    let (c, out, _) = rvsadm(&missing, &["-v"], "");
    assert_eq!(
        (c, out.as_str()),
        (
            0,
            "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n"
        )
    );
    let (c, out, _) = rvsadm(&missing, &["-h"], "");
    assert_eq!(c, 0);
    assert!(
        out.contains("\n  rvsadm -L|l [virtual-service] [options]\n"),
        "{out}"
    );
}
