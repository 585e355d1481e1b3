//! `rvs-lab`: the small web server and client the demo lab runs on its test hosts.
//!
//! ```text
//! rvs-lab serve --name NAME [--addr 0.0.0.0] [--port 80] [--seconds 600]
//! rvs-lab get URL [--count N] [--timeout-ms 2000]
//! ```
//!
//! `serve` answers every HTTP request with `200 OK` and a body naming the server (the
//! article's test page), `Connection: close`, and exits after `--seconds` (bounded, so a
//! forgotten lab cannot run forever). `get` fetches `URL` N times with a new connection each
//! time and prints one line per answer: the body, or the error. Only `http://host:port/`
//! URLs with a numeric address are supported: the lab has no DNS.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

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
        Some("-h" | "--help") | None => {
            println!(
                "rvs-lab serve --name NAME [--addr A] [--port P] [--seconds S]\n\
                 rvs-lab get http://ADDR:PORT/ [--count N] [--timeout-ms MS]"
            );
            Ok(())
        }
        Some(other) => bail!("unknown command {other} (serve, get)"),
    }
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
