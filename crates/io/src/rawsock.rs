//! Raw IP sockets for one IP protocol (`socket(AF_INET[6], SOCK_RAW, proto)`), and UDP
//! sockets bound with an explicit `IPV6_V6ONLY`.
//!
//! The real-server helper receives tunnel packets addressed to the host with them: a raw
//! socket for protocol 4 (IP-in-IP) or 41 (IPv6-in-IP) gets a copy of every such packet the
//! kernel delivers locally, after defragmentation. When no kernel module handles the
//! protocol the kernel, seeing a raw socket took the packet, neither answers with an ICMP
//! "protocol unreachable" nor counts an error.
//!
//! What a receive returns differs by family, as `raw(7)` and `ipv6(7)` specify:
//! - IPv4: the whole packet, **outer IPv4 header included**;
//! - IPv6: the payload only (the outer IPv6 header and its extension headers removed).
//!
//! Sending on a raw IPv4 socket without `IP_HDRINCL` makes the kernel write the outer
//! header (protocol = the socket's, source from the route): that is how tests build
//! IP-in-IP packets.

use std::io;
use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::{os_err, syscall, syscall_size};

/// A raw socket of one address family and IP protocol, non-blocking.
#[derive(Debug)]
pub struct RawSocket {
    fd: OwnedFd,
    ipv6: bool,
    protocol: u8,
}

impl RawSocket {
    /// Open a non-blocking raw socket for IP protocol `protocol`, IPv6 when `ipv6` is set.
    ///
    /// # Errors
    ///
    /// The `socket(2)` error: `EPERM` without `CAP_NET_RAW`, `EAFNOSUPPORT` when IPv6 is
    /// disabled.
    pub fn open(ipv6: bool, protocol: u8) -> io::Result<Self> {
        let af = if ipv6 { libc::AF_INET6 } else { libc::AF_INET };
        let what = format!("{} protocol {protocol}", if ipv6 { "IPv6" } else { "IPv4" });
        // SAFETY: plain socket(2) call, no pointers.
        let raw = syscall(unsafe {
            libc::socket(
                af,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::c_int::from(protocol),
            )
        })
        .map_err(|e| os_err("socket(SOCK_RAW)", what, e))?;
        // SAFETY: `raw` is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(Self { fd, ipv6, protocol })
    }

    /// Whether this is an IPv6 socket (receives without the outer header).
    pub fn is_ipv6(&self) -> bool {
        self.ipv6
    }

    /// The IP protocol number.
    pub fn protocol(&self) -> u8 {
        self.protocol
    }

    /// Ask for a receive buffer of `bytes` (the kernel doubles it and caps it at
    /// `net.core.rmem_max` unless the caller has `CAP_NET_ADMIN`, which `SO_RCVBUFFORCE`
    /// needs; this tries that first).
    ///
    /// # Errors
    ///
    /// The `setsockopt(SO_RCVBUF)` error.
    pub fn set_recv_buffer(&self, bytes: u32) -> io::Result<()> {
        let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
            // SAFETY: `v` is a valid c_int and the length is its size.
            let r = unsafe {
                libc::setsockopt(
                    self.fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&raw const v).cast(),
                    size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if r == 0 {
                return Ok(());
            }
        }
        Err(os_err(
            "setsockopt(SO_RCVBUF)",
            self.protocol,
            io::Error::last_os_error(),
        ))
    }

    /// Receive one packet into `buf`. Returns `None` when nothing is queued, else the
    /// packet's full length (larger than `buf.len()` when it was truncated) and its source
    /// address.
    ///
    /// # Errors
    ///
    /// The `recvfrom(2)` error other than `EAGAIN`/`EINTR`.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<Option<(usize, IpAddr)>> {
        // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
        let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: `buf` is a valid writable buffer of its length; `ss`/`len` are valid and
        // writable and `len` holds the size of `ss`.
        let r = syscall_size(unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_TRUNC,
                (&raw mut ss).cast(),
                &raw mut len,
            )
        });
        let n = match r {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(os_err("recvfrom(SOCK_RAW)", self.protocol, e)),
        };
        Ok(Some((
            n,
            sockaddr_ip(&ss).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        )))
    }

    /// Send `payload` to `dst`; the kernel writes the IP header (protocol = this socket's).
    ///
    /// # Errors
    ///
    /// `InvalidInput` when `dst` is not of the socket's family; the `sendto(2)` error.
    pub fn send_to(&self, payload: &[u8], dst: IpAddr) -> io::Result<usize> {
        let (ss, len) = sockaddr_of(SocketAddr::new(dst, 0));
        if dst.is_ipv6() != self.ipv6 {
            return Err(crate::invalid(format!(
                "{dst} is not of the socket's address family"
            )));
        }
        // SAFETY: `payload` is a valid buffer of its length; `ss` a valid address of
        // `len` bytes.
        syscall_size(unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                payload.as_ptr().cast(),
                payload.len(),
                0,
                (&raw const ss).cast(),
                len,
            )
        })
        .map_err(|e| os_err("sendto(SOCK_RAW)", dst, e))
    }
}

impl AsFd for RawSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn sockaddr_ip(ss: &libc::sockaddr_storage) -> Option<IpAddr> {
    match libc::c_int::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large
            // and aligned enough for.
            let sin = unsafe { &*(std::ptr::from_ref(ss).cast::<libc::sockaddr_in>()) };
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                sin.sin_addr.s_addr,
            ))))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &*(std::ptr::from_ref(ss).cast::<libc::sockaddr_in6>()) };
            Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}

fn sockaddr_of(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*a.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe {
                std::ptr::from_mut(&mut ss)
                    .cast::<libc::sockaddr_in>()
                    .write(sin)
            };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe {
                std::ptr::from_mut(&mut ss)
                    .cast::<libc::sockaddr_in6>()
                    .write(sin6)
            };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

/// A UDP socket bound to `addr`, non-blocking. For an IPv6 address `IPV6_V6ONLY` is set,
/// so that an IPv4 socket can be bound to the same port beside it whatever
/// `net.ipv6.bindv6only` says.
///
/// # Errors
///
/// The `socket(2)`, `setsockopt(2)` or `bind(2)` error (`EADDRINUSE` for a taken port).
pub fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let af = if addr.is_ipv6() {
        libc::AF_INET6
    } else {
        libc::AF_INET
    };
    // SAFETY: plain socket(2) call, no pointers.
    let raw = syscall(unsafe {
        libc::socket(
            af,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })
    .map_err(|e| os_err("socket(SOCK_DGRAM)", addr, e))?;
    // SAFETY: `raw` is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    if addr.is_ipv6() {
        let one: libc::c_int = 1;
        // SAFETY: `one` is a valid c_int and the length is its size.
        syscall(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::IPPROTO_IPV6,
                libc::IPV6_V6ONLY,
                (&raw const one).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        })
        .map_err(|e| os_err("setsockopt(IPV6_V6ONLY)", addr, e))?;
    }
    let (ss, len) = sockaddr_of(addr);
    // SAFETY: `ss` is a valid address of `len` bytes.
    syscall(unsafe { libc::bind(fd.as_raw_fd(), (&raw const ss).cast(), len) })
        .map_err(|e| os_err("bind(SOCK_DGRAM)", addr, e))?;
    Ok(UdpSocket::from(fd))
}

/// The unspecified address of a family with a port, for [`bind_udp`].
pub fn any_addr(ipv6: bool, port: u16) -> SocketAddr {
    if ipv6 {
        SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0))
    } else {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netns::{NetNs, skip_reason};

    #[test]
    fn sockaddr_round_trip() {
        for a in ["198.18.0.1:9000", "[2001:db8::1]:9000"] {
            let sa: SocketAddr = a.parse().expect("addr");
            let (ss, _) = sockaddr_of(sa);
            assert_eq!(sockaddr_ip(&ss), Some(sa.ip()));
        }
    }

    #[test]
    fn raw_protocol_4_loops_back_with_the_outer_header() {
        if let Some(why) = skip_reason() {
            eprintln!("skipping: {why}");
            return;
        }
        let ns = NetNs::new("raw").expect("namespace");
        ns.run(|| {
            let rx = RawSocket::open(false, 4).expect("raw rx");
            let tx = RawSocket::open(false, 4).expect("raw tx");
            let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
            let payload = [
                0x45u8, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8,
            ];
            tx.send_to(&payload, lo).expect("send");
            let mut buf = [0u8; 2048];
            let mut got = None;
            for _ in 0..100 {
                if let Some(r) = rx.recv_from(&mut buf).expect("recv") {
                    got = Some(r);
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            let (n, src) = got.expect("a packet within 1 s");
            assert_eq!(src, lo);
            assert_eq!(n, 20 + payload.len());
            assert_eq!(buf[9], 4, "outer protocol");
            assert_eq!(&buf[20..n], &payload);
            assert!(tx.send_to(&payload, "::1".parse().expect("ip")).is_err());
        })
        .expect("run in namespace");
    }

    #[test]
    fn udp_v4_and_v6_share_a_port() {
        if let Some(why) = skip_reason() {
            eprintln!("skipping: {why}");
            return;
        }
        let ns = NetNs::new("udp").expect("namespace");
        ns.run(|| {
            let a = bind_udp(any_addr(false, 6080)).expect("v4");
            let b = bind_udp(any_addr(true, 6080)).expect("v6 beside v4");
            assert_eq!(a.local_addr().expect("addr").port(), 6080);
            assert_eq!(b.local_addr().expect("addr").port(), 6080);
            assert!(bind_udp(any_addr(false, 6080)).is_err(), "port taken");
        })
        .expect("run in namespace");
    }
}
