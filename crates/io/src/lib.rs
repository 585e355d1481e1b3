//! rvs-io: the only crate of rvs that talks to the kernel below the standard library.
//!
//! Every `unsafe` block of the project is here, each with a `// SAFETY:` comment, and every
//! syscall goes through the crate-private `syscall()` helper so a negative return becomes
//! an [`std::io::Error`].
//! Errors name the operation and the object (interface, address) they failed on: they are
//! `io::Error`s whose inner error is an [`OsError`] (reach it with `get_ref()` and
//! `downcast_ref`), so the `ErrorKind` of the original errno is kept.
//!
//! What is here, and what the daemon calls:
//!
//! - [`packet`]: the data path. One [`packet::PacketSocket`] per interface (or per queue,
//!   with fanout): a TPACKET_V3 RX ring walked by [`packet::PacketSocket::recv_batch`], and
//!   batched transmit with `sendmmsg(2)` by [`packet::PacketSocket::send_batch`]. Also the
//!   interface facts the daemon needs: [`packet::ifindex`], [`packet::mac_of`],
//!   [`packet::mtu_of`].
//! - [`neigh`]: where to send a frame. A route lookup ([`neigh::route_get`], rtnetlink
//!   `RTM_GETROUTE`) gives the egress interface and the next hop, and
//!   [`neigh::NeighCache`] turns the next hop into a MAC address from the kernel's neighbour
//!   table (rtnetlink `RTM_GETNEIGH`), asking the kernel to resolve missing entries.
//! - [`nft`]: AF_PACKET only receives a *copy* of each frame; the kernel still processes the
//!   original. [`nft::IngressDrop`] installs the nftables `netdev ingress` rules that drop
//!   virtual-service traffic after the packet socket saw it, so that the host stack does not
//!   answer it too (with a RST or an ICMP port unreachable).
//! - [`netns`]: a handle on a network namespace to run code in it; with the `testing`
//!   feature, RAII namespaces, veth pairs and a two-namespace lab for tests.
//! - [`creds`]: peer credentials of a unix-socket client and the current namespace's id.
//!
//! What is not here: no packet parsing beyond the ring's own headers (that is `rvs-wire`),
//! no balancing decisions (`rvs-core`), no threads of its own except the short-lived helper
//! thread of [`netns::NetNsHandle::run_in`].
//!
//! Namespaces: every call acts in the network namespace of the calling *thread* (sockets,
//! ioctls, netlink, `/proc/thread-self/net`), never `/sys/class/net`, which shows the
//! namespace sysfs was mounted in.

#![warn(missing_docs)]
#![allow(
    unsafe_code,
    reason = "this crate is where the project's unsafe code lives"
)]

use std::fmt;
use std::io;
use std::str::FromStr;

pub mod creds;
pub mod icmp;
pub mod link;
pub mod neigh;
mod netlink;
pub mod netns;
pub mod nfqueue;
pub mod nft;
pub mod packet;
pub mod poll;
pub mod rawsock;
pub mod signal;
pub mod tun;
pub mod xdp;

#[cfg(test)]
mod lab_tests;

/// Turn a libc return value into `io::Result`, reading `errno` on a negative value.
pub(crate) fn syscall(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Same as [`syscall`] for the calls that return `ssize_t`.
pub(crate) fn syscall_size(ret: libc::ssize_t) -> io::Result<usize> {
    usize::try_from(ret).map_err(|_| io::Error::last_os_error())
}

/// An OS call that failed, with what it was called on.
///
/// Carried inside the `io::Error`s of this crate; the `io::Error`'s kind is the kind of
/// `cause`.
#[derive(Debug, thiserror::Error)]
#[error("{op} ({target}): {cause}")]
pub struct OsError {
    /// The syscall or operation, e.g. `"setsockopt(PACKET_RX_RING)"`.
    pub op: &'static str,
    /// What it acted on: an interface name, an address, a namespace.
    pub target: String,
    /// The error the OS returned.
    pub cause: io::Error,
}

/// Wrap an OS error with the operation and its target.
pub(crate) fn os_err(op: &'static str, target: impl fmt::Display, cause: io::Error) -> io::Error {
    io::Error::new(
        cause.kind(),
        OsError {
            op,
            target: target.to_string(),
            cause,
        },
    )
}

/// An invalid argument, as an `io::Error` of kind `InvalidInput`.
pub(crate) fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.into())
}

/// An Ethernet (EUI-48) address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The broadcast address `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: Self = Self([0xff; 6]);

    /// The six bytes.
    pub const fn octets(self) -> [u8; 6] {
        self.0
    }

    /// From a slice of exactly six bytes.
    pub fn from_slice(b: &[u8]) -> Option<Self> {
        <[u8; 6]>::try_from(b).ok().map(Self)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// Parse error of a [`MacAddr`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address (expected six hex bytes separated by ':')")]
pub struct MacParseError;

impl FromStr for MacAddr {
    type Err = MacParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.trim().split(':');
        for byte in &mut out {
            let p = parts.next().ok_or(MacParseError)?;
            if p.is_empty() || p.len() > 2 {
                return Err(MacParseError);
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| MacParseError)?;
        }
        if parts.next().is_some() {
            return Err(MacParseError);
        }
        Ok(Self(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trip() {
        let m: MacAddr = "02:00:5e:10:0a:ff".parse().expect("valid mac");
        assert_eq!(m.0, [0x02, 0x00, 0x5e, 0x10, 0x0a, 0xff]);
        assert_eq!(m.to_string(), "02:00:5e:10:0a:ff");
    }

    #[test]
    fn mac_rejects_garbage() {
        for s in [
            "",
            "02:00",
            "02:00:5e:10:0a:ff:00",
            "0g:00:5e:10:0a:ff",
            "002:0:5e:10:0a:f",
        ] {
            assert_eq!(s.parse::<MacAddr>(), Err(MacParseError), "{s:?}");
        }
    }

    #[test]
    fn os_error_keeps_kind_and_context() {
        let e = os_err("bind", "veth0", io::Error::from_raw_os_error(libc::ENODEV));
        assert!(e.to_string().starts_with("bind (veth0): "), "{e}");
        let inner = e
            .get_ref()
            .and_then(|i| i.downcast_ref::<OsError>())
            .expect("inner OsError");
        assert_eq!(inner.cause.raw_os_error(), Some(libc::ENODEV));
    }
}
