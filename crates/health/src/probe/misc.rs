//! `MISC_CHECK`: run a program (no shell) under a deadline; kill it when late.

use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Outcome, ProbeError};

/// Poll interval while waiting for the program.
const POLL: Duration = Duration::from_millis(5);

/// keepalived's script security, reduced to what std can check: the program
/// must be a regular file owned by root or by us and writable by nobody else.
fn secure(path: &str) -> Result<(), ProbeError> {
    let meta = std::fs::metadata(path).map_err(|e| ProbeError::Spawn {
        program: path.to_owned(),
        source: e,
    })?;
    let me = std::fs::metadata("/proc/self").map_or(0, |m| m.uid());
    if !meta.is_file() {
        return Err(ProbeError::Refused(format!("{path} is not a regular file")));
    }
    if meta.uid() != 0 && meta.uid() != me {
        return Err(ProbeError::Refused(format!(
            "{path} is owned by uid {}, neither root nor us",
            meta.uid()
        )));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(ProbeError::Refused(format!(
            "{path} is writable by group or others"
        )));
    }
    Ok(())
}

/// Look `name` up in a passwd/group style file: the third field.
fn lookup_id(file: &str, name: &str) -> Option<u32> {
    if let Ok(n) = name.parse() {
        return Some(n);
    }
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        f.next()?;
        f.next()?.parse().ok()
    })
}

/// Primary group of a user (fourth field of /etc/passwd).
fn primary_gid(user: &str) -> Option<u32> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 3 && (f[0] == user || f[2] == user)).then(|| f[3].parse().ok())?
    })
}

pub(crate) fn run(
    argv: &[String],
    user: Option<&str>,
    dynamic: bool,
    security: bool,
    deadline: Instant,
) -> Result<Outcome, ProbeError> {
    let total = deadline.saturating_duration_since(Instant::now());
    let Some(program) = argv.first() else {
        return Err(ProbeError::Refused("empty command".into()));
    };
    if security {
        secure(program)?;
    }
    let mut cmd = Command::new(program);
    cmd.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group, so it does not get our terminal's signals.
        .process_group(0);
    if let Some(u) = user {
        let (name, group) = u.split_once(':').map_or((u, None), |(a, b)| (a, Some(b)));
        let uid = lookup_id("/etc/passwd", name)
            .ok_or_else(|| ProbeError::Refused(format!("unknown user {name}")))?;
        let gid = match group {
            Some(g) => lookup_id("/etc/group", g)
                .ok_or_else(|| ProbeError::Refused(format!("unknown group {g}")))?,
            None => primary_gid(name).unwrap_or(uid),
        };
        cmd.uid(uid).gid(gid);
    }
    let mut child = cmd.spawn().map_err(|e| ProbeError::Spawn {
        program: program.clone(),
        source: e,
    })?;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return match (status.code(), status.signal()) {
                    (Some(0), _) => Ok(Outcome::Pass),
                    (Some(c @ 2..=255), _) if dynamic => Ok(Outcome::Weight(c - 2)),
                    (Some(c), _) => Err(ProbeError::Exit(c)),
                    (None, Some(sig)) => Err(ProbeError::Signal(sig)),
                    (None, None) => Err(ProbeError::Exit(-1)),
                };
            }
            Ok(None) => {}
            Err(e) => return Err(ProbeError::Io(e)),
        }
        let now = Instant::now();
        if now >= deadline {
            // SIGKILL to the program; its own children (if any) are not
            // reached without kill(2) on the process group, which needs libc.
            let _ = child.kill();
            let _ = child.wait();
            return Err(ProbeError::Timeout(total));
        }
        std::thread::sleep(POLL.min(deadline - now));
    }
}
