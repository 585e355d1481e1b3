//! TUN devices: a layer-3 virtual interface whose "wire" is a file descriptor.
//!
//! Writing an IP packet to a [`TunDevice`] makes the kernel receive it on the interface, as
//! if it had arrived from a link: it goes through `ip_rcv`/`ipv6_rcv`, routing, netfilter
//! and, for a local destination, to the local sockets. That is how the real-server helper
//! delivers decapsulated tunnel packets without the `ipip` module. Packets the kernel routes
//! *out of* the interface can be read from the same descriptor.
//!
//! Devices are opened with `IFF_TUN | IFF_NO_PI`: each read or write is exactly one IP packet,
//! with no 4-byte packet-information header before it. A device is removed when its last
//! descriptor closes unless it was made persistent ([`TunDevice::set_persist`]); a persistent
//! device stays until [`crate::link::delete`] (or `ip link del`) removes it, and can be
//! attached to again by opening it by name.
//!
//! Like every call of this crate, the device is created in the calling thread's network
//! namespace.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::{invalid, os_err, syscall, syscall_size};

/// The clone device every TUN/TAP interface is made from.
const CLONE_DEV: &std::ffi::CStr = c"/dev/net/tun";

/// An open TUN interface (`IFF_TUN | IFF_NO_PI`).
#[derive(Debug)]
pub struct TunDevice {
    fd: OwnedFd,
    name: String,
}

impl TunDevice {
    /// Create the TUN interface `name`, or attach to it when it exists as a persistent TUN
    /// device. The interface starts down; bring it up with [`crate::link::set_up`].
    ///
    /// The descriptor is non-blocking when `nonblocking` is set: reads then fail with
    /// `WouldBlock` when no packet is queued.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a name that is empty, longer than 15 bytes or holds `/`; the
    /// `open(/dev/net/tun)` error (no TUN support, no permission); the `TUNSETIFF` error
    /// (`EBUSY` when another process is attached, `EINVAL` when `name` is an interface of
    /// another kind, `EPERM` without `CAP_NET_ADMIN`).
    pub fn open(name: &str, nonblocking: bool) -> io::Result<Self> {
        let mut ifr = ifreq_for(name)?;
        let mut flags = libc::O_RDWR | libc::O_CLOEXEC;
        if nonblocking {
            flags |= libc::O_NONBLOCK;
        }
        // SAFETY: `CLONE_DEV` is a NUL-terminated path; open(2) does not keep the pointer.
        let raw = syscall(unsafe { libc::open(CLONE_DEV.as_ptr(), flags) })
            .map_err(|e| os_err("open(/dev/net/tun)", name, e))?;
        // SAFETY: `raw` is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        ifr.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: TUNSETIFF reads the name and flags of the valid `ifreq` passed and writes
        // the final name back into it; the pointer is not kept.
        syscall(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &raw mut ifr) })
            .map_err(|e| os_err("ioctl(TUNSETIFF)", name, e))?;
        let bytes: Vec<u8> = ifr
            .ifr_name
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        Ok(Self {
            fd,
            name: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Keep the interface after the descriptor closes (`TUNSETPERSIST 1`), or let it go
    /// with the last descriptor (`TUNSETPERSIST 0`).
    ///
    /// # Errors
    ///
    /// The `TUNSETPERSIST` error.
    pub fn set_persist(&self, persist: bool) -> io::Result<()> {
        // TUNSETPERSIST takes its argument as the ioctl's integer value, not a pointer.
        let arg = libc::c_ulong::from(persist);
        // SAFETY: TUNSETPERSIST reads only the integer argument.
        syscall(unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::TUNSETPERSIST, arg) })
            .map_err(|e| os_err("ioctl(TUNSETPERSIST)", &self.name, e))?;
        Ok(())
    }

    /// Hand one IP packet to the kernel as received on this interface.
    ///
    /// # Errors
    ///
    /// The `write(2)` error: `EINVAL` for a packet the kernel cannot parse as IP, `EIO`
    /// when the interface is down or gone, `WouldBlock` when non-blocking and the queue is
    /// full.
    pub fn send(&self, packet: &[u8]) -> io::Result<usize> {
        // SAFETY: `packet` is a valid buffer of its length; write(2) only reads it.
        syscall_size(unsafe {
            libc::write(self.fd.as_raw_fd(), packet.as_ptr().cast(), packet.len())
        })
        .map_err(|e| os_err("write(tun)", &self.name, e))
    }

    /// Read one packet the kernel sent out of this interface, truncated to `buf`.
    ///
    /// # Errors
    ///
    /// The `read(2)` error; `WouldBlock` when non-blocking and nothing is queued.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is a valid writable buffer of its length.
        syscall_size(unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) })
            .map_err(|e| {
                if e.kind() == io::ErrorKind::WouldBlock {
                    e
                } else {
                    os_err("read(tun)", &self.name, e)
                }
            })
    }
}

impl AsFd for TunDevice {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// An `ifreq` holding `ifname`, the rest zeroed.
fn ifreq_for(ifname: &str) -> io::Result<libc::ifreq> {
    let b = ifname.as_bytes();
    if b.is_empty() || b.len() >= libc::IFNAMSIZ || b.contains(&0) || b.contains(&b'/') {
        return Err(invalid(format!("invalid interface name {ifname:?}")));
    }
    // SAFETY: ifreq is plain old data (a name and a union of plain values); all-zero is
    // a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(b) {
        *d = *s as libc::c_char;
    }
    Ok(ifr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_names_before_any_syscall() {
        for name in ["", "a/b", "0123456789abcdef", "nul\0"] {
            let e = TunDevice::open(name, true).expect_err("invalid name");
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{name:?}");
        }
    }
}
