//! Waiting on several descriptors at once (`poll(2)`), for loops that serve more than one
//! packet socket from one thread.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use crate::syscall;

/// Wait until at least one of `fds` is readable or `timeout` passes. Returns one flag per
/// descriptor (readable, or in an error/hang-up state the next read will report). An
/// interrupted wait (`EINTR`) returns all `false`.
///
/// # Errors
///
/// A failed `poll(2)` other than `EINTR`.
pub fn wait_readable(fds: &[RawFd], timeout: Duration) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = i32::try_from(timeout.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
    // SAFETY: `pfds` is a valid, writable array of `pfds.len()` pollfd structures that
    // lives across the call; poll(2) only writes their `revents` fields.
    let r = syscall(unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) });
    match r {
        Ok(_) => Ok(pfds.iter().map(|p| p.revents != 0).collect()),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(vec![false; fds.len()]),
        Err(e) => Err(io::Error::new(e.kind(), format!("poll(2): {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn reports_which_descriptor_is_readable() {
        let (a, mut b) = UnixStream::pair().expect("pair");
        let (c, _d) = UnixStream::pair().expect("pair");
        let fds = [a.as_raw_fd(), c.as_raw_fd()];
        assert_eq!(
            wait_readable(&fds, Duration::from_millis(1)).expect("poll"),
            vec![false, false]
        );
        b.write_all(b"x").expect("write");
        assert_eq!(
            wait_readable(&fds, Duration::from_secs(1)).expect("poll"),
            vec![true, false]
        );
    }
}
