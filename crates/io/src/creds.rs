//! Who is on the other end of a unix socket, and what may they do.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use crate::syscall;

/// Credentials of a connected peer (`SO_PEERCRED`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCred {
    /// Process id (in our pid namespace; 0 if the peer is in another one).
    pub pid: i32,
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
}

/// `CAP_NET_ADMIN`'s bit number.
pub const CAP_NET_ADMIN: u32 = 12;

/// Read the peer credentials of a connected unix stream.
pub fn peer_cred(stream: &UnixStream) -> io::Result<PeerCred> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: the fd is a live socket owned by `stream`; `cred` and `len` are valid,
    // writable and `len` holds the size of `cred`, as getsockopt(2) requires.
    syscall(unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &raw mut len,
        )
    })?;
    Ok(PeerCred {
        pid: cred.pid,
        uid: cred.uid,
        gid: cred.gid,
    })
}

/// Whether a process holds an effective capability (from `/proc/PID/status`).
pub fn has_capability(pid: i32, cap: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|bits| bits & (1u64 << cap) != 0)
}

/// Whether the peer may change the director's configuration: root or `CAP_NET_ADMIN`,
/// as for the kernel's IPVS interface.
pub fn may_administer(c: &PeerCred) -> bool {
    c.uid == 0 || (c.pid > 0 && has_capability(c.pid, CAP_NET_ADMIN))
}

/// Inode number of the current network namespace (`/proc/self/ns/net`), a stable name
/// for per-namespace state files.
pub fn netns_id() -> io::Result<u64> {
    let link = std::fs::read_link("/proc/self/ns/net")?;
    let s = link.to_string_lossy();
    s.trim_start_matches("net:[")
        .trim_end_matches(']')
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("unexpected {s}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_cred_of_socketpair_is_ourselves() {
        let (a, _b) = UnixStream::pair().expect("socketpair");
        let c = peer_cred(&a).expect("SO_PEERCRED");
        assert_eq!(c.pid, std::process::id() as i32);
        // SAFETY: getuid never fails and has no preconditions.
        assert_eq!(c.uid, unsafe { libc::getuid() });
    }

    #[test]
    fn netns_id_is_stable() {
        assert_eq!(netns_id().unwrap(), netns_id().unwrap());
    }
}
