//! Termination signals for single-threaded event loops.
//!
//! - [`SignalFd`]: SIGINT and SIGTERM turned into a readable descriptor (`signalfd(2)`), so
//!   that a loop waiting in [`crate::poll::wait_readable`] wakes up on them and shuts down
//!   cleanly, with no signal handler and no async-signal-safety concerns.
//! - [`terminate`]: send SIGTERM to a process.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::{invalid, os_err, syscall, syscall_size};

/// SIGINT and SIGTERM delivered through a descriptor instead of a handler.
///
/// Creating it blocks both signals for the calling thread (and for threads it starts
/// afterwards, which inherit the mask), so they stay pending until read here. Create it in
/// `main` before starting threads.
#[derive(Debug)]
pub struct SignalFd {
    fd: OwnedFd,
}

impl SignalFd {
    /// Block SIGINT and SIGTERM and open a non-blocking signalfd for them.
    ///
    /// # Errors
    ///
    /// The `pthread_sigmask(3)` or `signalfd(2)` error.
    pub fn termination() -> io::Result<Self> {
        Self::with_reload(false)
    }

    /// As [`SignalFd::termination`], plus SIGHUP when `reload` is set (a daemon's "read
    /// your configuration again").
    ///
    /// # Errors
    ///
    /// The `pthread_sigmask(3)` or `signalfd(2)` error.
    pub fn with_reload(reload: bool) -> io::Result<Self> {
        // SAFETY: sigset_t is plain old data; sigemptyset initialises it before use.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid sigset_t; the signal numbers are valid.
        unsafe {
            libc::sigemptyset(&raw mut set);
            libc::sigaddset(&raw mut set, libc::SIGINT);
            libc::sigaddset(&raw mut set, libc::SIGTERM);
            if reload {
                libc::sigaddset(&raw mut set, libc::SIGHUP);
            }
        }
        // SAFETY: `set` is initialised; a null old-set pointer is allowed.
        let r =
            unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &raw const set, std::ptr::null_mut()) };
        if r != 0 {
            return Err(os_err(
                "pthread_sigmask(SIG_BLOCK)",
                "SIGINT SIGTERM",
                io::Error::from_raw_os_error(r),
            ));
        }
        // SAFETY: `set` is initialised; -1 asks for a new descriptor.
        let raw = syscall(unsafe {
            libc::signalfd(-1, &raw const set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC)
        })
        .map_err(|e| os_err("signalfd", "SIGINT SIGTERM", e))?;
        // SAFETY: `raw` is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(Self { fd })
    }

    /// The number of a pending signal, consuming it, or `None` when none is pending.
    ///
    /// # Errors
    ///
    /// The `read(2)` error other than `EAGAIN`.
    pub fn take(&self) -> io::Result<Option<i32>> {
        // SAFETY: signalfd_siginfo is plain old data; all-zero is a valid value.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid, writable signalfd_siginfo of the size given.
        let r = syscall_size(unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&raw mut info).cast(),
                size_of::<libc::signalfd_siginfo>(),
            )
        });
        match r {
            Ok(n) if n == size_of::<libc::signalfd_siginfo>() => {
                Ok(Some(i32::try_from(info.ssi_signo).unwrap_or(0)))
            }
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(os_err("read(signalfd)", "SIGINT SIGTERM", e)),
        }
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Whether a signal from [`SignalFd::take`] asks for a configuration reload (SIGHUP).
pub fn is_reload(sig: i32) -> bool {
    sig == libc::SIGHUP
}

/// Send SIGTERM to process `pid`.
///
/// # Errors
///
/// `InvalidInput` for pid 0 or one that does not fit a `pid_t` (which would address a
/// process group); `ESRCH` when there is no such process; `EPERM`.
pub fn terminate(pid: u32) -> io::Result<()> {
    let p = libc::pid_t::try_from(pid)
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| invalid(format!("invalid pid {pid}")))?;
    // SAFETY: kill(2) with a positive pid addresses one process; no pointers.
    syscall(unsafe { libc::kill(p, libc::SIGTERM) })
        .map_err(|e| os_err("kill(SIGTERM)", pid, e))?;
    Ok(())
}

/// Send SIGHUP to one process (ask a daemon to reload its configuration).
///
/// # Errors
///
/// `InvalidInput` for pid 0 or one that does not fit `pid_t`; the `kill(2)` error.
pub fn reload(pid: u32) -> io::Result<()> {
    let p = libc::pid_t::try_from(pid)
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| invalid(format!("invalid pid {pid}")))?;
    // SAFETY: kill(2) with a positive pid addresses one process; no pointers.
    syscall(unsafe { libc::kill(p, libc::SIGHUP) }).map_err(|e| os_err("kill(SIGHUP)", pid, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminate_refuses_process_groups() {
        assert_eq!(
            terminate(0).expect_err("pid 0").kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            terminate(u32::MAX).expect_err("pid -1").kind(),
            io::ErrorKind::InvalidInput
        );
    }
}
