//! `rvsadm --drain`: the operator's graceful removal of a real server (rvs extension; no
//! ipvsadm invocation reaches it).
//!
//! ```text
//! rvsadm --drain -t|-u|--sctp-service VIP:PORT | -f MARK [-6]  -r RIP[:PORT] [--timeout SECONDS]
//! ```
//!
//! Sets the destination's weight to 0 (quiesce: no new connections, existing ones go on),
//! waits until its connections have ended — ActiveConn 0 for TCP and SCTP services,
//! InActConn 0 as well for UDP and firewall-mark services, whose entries are never active —
//! or until the timeout (default 300 s), then deletes it. Progress goes to stderr; exit 0
//! when the destination is gone, the usual ipvsadm exit codes for errors.

use std::io::Write;
use std::time::{Duration, Instant};

use rvs_api::{Operation, Request, Response, ServiceKey};

use crate::cli::{Command, parse_with};
use crate::names::Names;
use crate::run::Connector;

/// Default wait for connections to end.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Whether `argv` asks for a drain.
pub fn is_drain(argv: &[String]) -> bool {
    argv.get(1).is_some_and(|a| a == "--drain")
}

/// Run `rvsadm --drain ...`; returns the exit status.
pub fn run(argv: &[String], connect: Connector<'_>, err: &mut dyn Write, names: &Names) -> i32 {
    run_with_poll(argv, connect, err, names, Duration::from_millis(500))
}

/// [`run`] with the polling interval chosen by the caller (tests).
pub fn run_with_poll(
    argv: &[String],
    connect: Connector<'_>,
    err: &mut dyn Write,
    names: &Names,
    poll: Duration,
) -> i32 {
    // split off --timeout, then let the ipvsadm grammar parse the rest as `-d`
    let mut timeout = DEFAULT_TIMEOUT;
    let mut rest: Vec<String> = vec![argv.first().cloned().unwrap_or_else(|| "rvsadm".into())];
    rest.push("-d".into());
    let mut it = argv.iter().skip(2);
    while let Some(a) = it.next() {
        if a == "--timeout" {
            match it.next().and_then(|v| v.parse::<u64>().ok()) {
                Some(s) if s <= 86_400 => timeout = Duration::from_secs(s),
                _ => {
                    let _ = writeln!(err, "illegal drain timeout specified (0..86400 seconds)");
                    return 2;
                }
            }
        } else {
            rest.push(a.clone());
        }
    }
    let (key, addr, port) = match parse_with(&rest, names, false) {
        Ok(Command::DelDest(k, a, p)) => (k, a, p),
        Ok(_) => {
            let _ = writeln!(err, "--drain needs a service and a real server (-r)");
            return 2;
        }
        Err(e) => {
            let _ = writeln!(err, "{}", e.message);
            return e.exit_code;
        }
    };
    let mut b = match connect() {
        Ok(b) => b,
        Err(e) => {
            let _ = writeln!(err, "Can't initialize ipvs: {e}");
            return 2;
        }
    };
    let mut call = |err: &mut dyn Write, req: Request| call(b.as_mut(), err, req);
    let find = |r: Response| -> Option<rvs_api::DestEntry> {
        match r {
            Response::Service(s) => s
                .dests
                .into_iter()
                .find(|d| d.config.addr == addr && d.config.port == port),
            _ => None,
        }
    };
    let dest = match call(err, Request::GetService(key)).map(find) {
        Ok(Some(d)) => d,
        Ok(None) => {
            let _ = writeln!(
                err,
                "{}",
                rvs_api::ErrorCode::NotFound
                    .ipvsadm_message(Operation::DelDest)
                    .unwrap_or("No such destination")
            );
            return 255;
        }
        Err(code) => return code,
    };
    let mut quiet = dest.config;
    quiet.weight = 0;
    if let Err(code) = call(
        err,
        Request::EditDest {
            service: key,
            dest: quiet,
        },
    ) {
        return code;
    }
    let counts_inactive = !matches!(
        key,
        ServiceKey::Addr {
            proto: rvs_api::Protocol::Tcp | rvs_api::Protocol::Sctp,
            ..
        }
    );
    let start = Instant::now();
    loop {
        let left = match call(err, Request::GetService(key)).map(find) {
            Ok(Some(d)) => {
                u64::from(d.active)
                    + if counts_inactive {
                        u64::from(d.inactive)
                    } else {
                        0
                    }
            }
            Ok(None) => {
                let _ = writeln!(err, "destination removed while draining");
                return 0;
            }
            Err(code) => return code,
        };
        if left == 0 {
            break;
        }
        if start.elapsed() >= timeout {
            let _ = writeln!(
                err,
                "drain timeout: removing with {left} connection(s) left"
            );
            break;
        }
        std::thread::sleep(poll);
    }
    match call(
        err,
        Request::DelDest {
            service: key,
            addr,
            port,
        },
    ) {
        Ok(_) => {
            let _ = writeln!(
                err,
                "drained and removed after {:.1} s",
                start.elapsed().as_secs_f64()
            );
            0
        }
        Err(code) => code,
    }
}

/// One request; refusals are printed as ipvsadm would and turned into its exit status.
fn call(
    b: &mut dyn crate::run::Backend,
    err: &mut dyn Write,
    req: Request,
) -> Result<Response, i32> {
    let op = req.operation();
    match b.call(&req) {
        Ok(Response::Error(e)) => {
            let _ = writeln!(err, "{}", e.ipvsadm_message(op));
            Err(255)
        }
        Ok(r) => Ok(r),
        Err(e) => {
            let _ = writeln!(err, "rvsd: {e}");
            Err(2)
        }
    }
}
