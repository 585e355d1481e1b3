//! `rvs-lab`: the small web server and client the demo lab runs on its test hosts.
//!
//! ```text
//! rvs-lab serve --name NAME [--addr 0.0.0.0] [--port 80] [--seconds 600]
//! rvs-lab get URL [--count N] [--timeout-ms 2000]
//! rvs-lab xdpgen -i IFNAME --dst-mac MAC --dst ADDR [--dport 9] --src ADDR [--src-count 1]
//!        [--sport 1024] [--sport-count 1] [--src-mac MAC] [--len 60] --seconds S
//!        [--count N] [--rate PPS [--burst 64]] [--loop [--seeds 64]] [--cpu N] [--json]
//! ```
//!
//! `serve` answers every HTTP request with `200 OK` and a body naming the server (the
//! article's test page), `Connection: close`, and exits after `--seconds` (bounded, so a
//! forgotten lab cannot run forever). `get` fetches `URL` N times with a new connection each
//! time and prints one line per answer: the body, or the error. Only `http://host:port/`
//! URLs with a numeric address are supported: the lab has no DNS.
//!
//! `xdpgen` injects UDP frames as XDP frames out of `IFNAME` (`rvs_io::xdp::gen`: an XDP
//! program run by `BPF_PROG_TEST_RUN` in live-frames mode, like `xdp-trafficgen`), from
//! `--src-count` source addresses (the last byte of `--src` counting up) and
//! `--sport-count` source ports, for `--seconds` (required, at most 600) or `--count`
//! frames, whichever comes first, from one CPU (`--cpu` pins it); with `--rate`, at most
//! PPS frames per second in bursts of `--burst` frames (`rvs_io::xdp::gen::Pace`),
//! otherwise as fast as it can. `--len` is the frame
//! length without FCS (60 = 64 bytes on the wire); `--src-mac` defaults to the
//! interface's. It prints one line, `sent=N seconds=S pps=R` (or a JSON object with
//! `--json`). On a veth, the peer needs NAPI (an XDP program, or `ethtool -K PEER gro on`)
//! or every frame is dropped: `sent` counts frames handed to the device, not delivered.
//!
//! `xdpgen --loop` makes the frames without test runs, for kernels that refuse live-frames
//! runs (EPERM): `--seeds` frames go round a veth pair the command creates and deletes
//! (`rvsgl<pid>a/b`), and an XDP program on it sends a copy of each frame coming round out
//! of `IFNAME` (`rvs_io::xdp::gen::run_loop`). The receiver sees the same XDP frames. The
//! bounds are kept by the program itself. With `--rate`, each burst is `--seeds` seeds (at
//! most `--burst`) sent together whose hop counts add up to `--burst` frames: as many seeds
//! as frames make each burst arrive at once.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rvs_io::MacAddr;
use rvs_io::xdp::r#gen::{self as xdpgen, GenSpec};

/// Longest `xdpgen --seconds`.
const MAX_GEN_SECONDS: u64 = 600;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rvs-lab: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn opt<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn num<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> anyhow::Result<T> {
    match opt(args, name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}: not a number: {v}")),
    }
}

fn run(args: &[String]) -> anyhow::Result<()> {
    match args.first().map(String::as_str) {
        Some("serve") => {
            let name = opt(args, "--name").context("serve needs --name NAME")?;
            let addr = opt(args, "--addr").unwrap_or("0.0.0.0");
            let port: u16 = num(args, "--port", 80)?;
            let secs: u64 = num(args, "--seconds", 600)?;
            serve(name, addr, port, Duration::from_secs(secs))
        }
        Some("get") => {
            let url = args.get(1).context("get needs a URL")?;
            let count: u32 = num(args, "--count", 1)?;
            let timeout: u64 = num(args, "--timeout-ms", 2000)?;
            get(url, count, Duration::from_millis(timeout))
        }
        Some("xdpgen") => xdp_gen(args),
        Some("-h" | "--help") | None => {
            println!(
                "rvs-lab serve --name NAME [--addr A] [--port P] [--seconds S]\n\
                 rvs-lab get http://ADDR:PORT/ [--count N] [--timeout-ms MS]\n\
                 rvs-lab xdpgen -i IFNAME --dst-mac MAC --dst ADDR [--dport N] --src ADDR \
                 [--src-count N] [--sport N] [--sport-count N] [--src-mac MAC] [--len 60] \
                 --seconds S [--count N] [--rate PPS [--burst 64]] [--loop [--seeds 64]] \
                 [--cpu N] [--json]"
            );
            Ok(())
        }
        Some(other) => bail!("unknown command {other} (serve, get, xdpgen)"),
    }
}

fn parsed<T: std::str::FromStr>(args: &[String], name: &str) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    let v = opt(args, name).with_context(|| format!("xdpgen needs {name}"))?;
    v.parse().map_err(|e| anyhow::anyhow!("{name} {v}: {e}"))
}

fn xdp_gen(args: &[String]) -> anyhow::Result<()> {
    let ifname = opt(args, "-i").context("xdpgen needs -i IFNAME")?;
    let secs: u64 = parsed(args, "--seconds")?;
    if secs == 0 || secs > MAX_GEN_SECONDS {
        bail!("--seconds must be 1 to {MAX_GEN_SECONDS}");
    }
    let src_mac = match opt(args, "--src-mac") {
        Some(_) => parsed(args, "--src-mac")?,
        None => rvs_io::packet::mac_of(ifname).with_context(|| format!("MAC of {ifname}"))?,
    };
    let spec = GenSpec {
        ifname: ifname.to_owned(),
        dst_mac: parsed::<MacAddr>(args, "--dst-mac")?,
        src_mac,
        src: parsed(args, "--src")?,
        src_count: num(args, "--src-count", 1)?,
        sport_first: num(args, "--sport", 1024)?,
        sport_count: num(args, "--sport-count", 1)?,
        dst: parsed(args, "--dst")?,
        dport: num(args, "--dport", 9)?,
        frame_len: num(args, "--len", xdpgen::MIN_FRAME)?,
    };
    let count: u64 = num(args, "--count", u64::MAX)?;
    let pace = match opt(args, "--rate") {
        Some(_) => {
            let p = xdpgen::Pace {
                rate: parsed(args, "--rate")?,
                burst: num(args, "--burst", 64)?,
            };
            p.validate().context("--rate/--burst")?;
            Some(p)
        }
        None if opt(args, "--burst").is_some() => bail!("--burst needs --rate"),
        None => None,
    };
    if let Some(cpu) = opt(args, "--cpu") {
        let cpu: usize = cpu
            .parse()
            .map_err(|_| anyhow::anyhow!("--cpu: not a number: {cpu}"))?;
        xdpgen::pin_current_thread(cpu)?;
    }
    let looped = args.iter().any(|a| a == "--loop");
    if !looped && opt(args, "--seeds").is_some() {
        bail!("--seeds needs --loop");
    }
    let r = if looped {
        let seeds: u32 = num(args, "--seeds", 64)?;
        xdpgen::run_loop(&spec, seeds, count, Duration::from_secs(secs), pace)
    } else {
        xdpgen::run_paced(&spec, count, Duration::from_secs(secs), pace)
    }
    .with_context(|| format!("xdpgen on {ifname}"))?;
    if args.iter().any(|a| a == "--json") {
        println!(
            "{{\"sent\":{},\"seconds\":{:.3},\"pps\":{:.0}}}",
            r.sent,
            r.elapsed.as_secs_f64(),
            r.pps()
        );
    } else {
        println!("{r}");
    }
    Ok(())
}

fn serve(name: &str, addr: &str, port: u16, lifetime: Duration) -> anyhow::Result<()> {
    let listener =
        TcpListener::bind((addr, port)).with_context(|| format!("bind {addr}:{port}"))?;
    listener.set_nonblocking(true)?;
    let body = format!("{name}\n");
    let end = Instant::now() + lifetime;
    while Instant::now() < end {
        match listener.accept() {
            Ok((mut s, _)) => {
                s.set_nonblocking(false)?;
                s.set_read_timeout(Some(Duration::from_secs(2)))?;
                // read the request head (bounded), answer, close
                let mut r = BufReader::new(s.try_clone()?).take(16 * 1024);
                let mut line = String::new();
                while r.read_line(&mut line).unwrap_or(0) > 0 {
                    if line == "\r\n" || line == "\n" {
                        break;
                    }
                    line.clear();
                }
                let resp = format!(
                    "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes());
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(e).context("accept"),
        }
    }
    Ok(())
}

fn get(url: &str, count: u32, timeout: Duration) -> anyhow::Result<()> {
    let rest = url
        .strip_prefix("http://")
        .context("only http:// URLs are supported")?;
    let hostport = rest.split('/').next().unwrap_or(rest);
    let addr: SocketAddr = hostport
        .parse()
        .or_else(|_| format!("{hostport}:80").parse())
        .with_context(|| format!("{hostport}: need a numeric address[:port]"))?;
    let mut failures = 0;
    for _ in 0..count {
        match fetch(addr, hostport, timeout) {
            Ok(body) => println!("{}", body.trim_end()),
            Err(e) => {
                failures += 1;
                println!("error: {e:#}");
            }
        }
    }
    if failures > 0 {
        bail!("{failures} of {count} requests failed");
    }
    Ok(())
}

fn fetch(addr: SocketAddr, host: &str, timeout: Duration) -> anyhow::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).context("connect")?;
    s.set_read_timeout(Some(timeout))?;
    write!(s, "GET / HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
    let mut buf = Vec::new();
    s.take(1 << 20).read_to_end(&mut buf).context("read")?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("no end of headers in the answer")?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        bail!("unexpected status: {}", head.lines().next().unwrap_or(""));
    }
    Ok(body.to_string())
}
