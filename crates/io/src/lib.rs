//! rvs-io: the only crate of rvs that talks to the kernel below the standard library.
//!
//! Every `unsafe` block of the project is here, each with a `// SAFETY:` comment, and every
//! syscall goes through [`syscall`] so a negative return becomes an [`std::io::Error`].
//!
//! What is here now: peer credentials of a unix-socket client (for the control API's
//! permission check) and the identity of the current network namespace.

#![warn(missing_docs)]
#![allow(
    unsafe_code,
    reason = "this crate is where the project's unsafe code lives"
)]

pub mod creds;

/// Turn a libc return value into `io::Result`, reading `errno` on a negative value.
pub(crate) fn syscall(ret: libc::c_int) -> std::io::Result<libc::c_int> {
    if ret < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}
