//! ICMP echo ("ping") for health checks: a raw ICMP/ICMPv6 socket (needs `CAP_NET_RAW`),
//! one echo request, the matching reply or a timeout.

use std::io;
use std::mem::size_of;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::{syscall, syscall_size};

static SEQ: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(1);

fn checksum(b: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in b.chunks(2) {
        s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// Whether `reply` (as a raw socket returns it: with the IPv4 header, without the IPv6 one)
/// is the echo reply to `ident`/`seq`.
fn is_reply(reply: &[u8], v6: bool, ident: u16, seq: u16) -> bool {
    let icmp = if v6 {
        reply
    } else {
        let ihl = usize::from(reply.first().map_or(0, |b| b & 0x0f)) * 4;
        match reply.get(ihl..) {
            Some(r) if ihl >= 20 => r,
            _ => return false,
        }
    };
    let ty = if v6 { 129 } else { 0 };
    icmp.len() >= 8
        && icmp[0] == ty
        && u16::from_be_bytes([icmp[4], icmp[5]]) == ident
        && u16::from_be_bytes([icmp[6], icmp[7]]) == seq
}

/// Send one echo request to `dst` and wait up to `timeout` for its reply.
///
/// # Errors
///
/// `TimedOut` without a reply; the socket call's error otherwise (`PermissionDenied`
/// without `CAP_NET_RAW`).
pub fn ping(dst: IpAddr, timeout: Duration) -> io::Result<Duration> {
    let v6 = dst.is_ipv6();
    let (domain, proto) = if v6 {
        (libc::AF_INET6, libc::IPPROTO_ICMPV6)
    } else {
        (libc::AF_INET, libc::IPPROTO_ICMP)
    };
    // SAFETY: plain socket(2) call; the result is checked and owned below.
    let fd = syscall(unsafe { libc::socket(domain, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto) })
        .map_err(|e| io::Error::new(e.kind(), format!("socket(raw ICMP): {e}")))?;
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let ident = (std::process::id() as u16) ^ 0x5256;
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut msg = [0u8; 16];
    msg[0] = if v6 { 128 } else { 8 };
    msg[4..6].copy_from_slice(&ident.to_be_bytes());
    msg[6..8].copy_from_slice(&seq.to_be_bytes());
    msg[8..16].copy_from_slice(b"rvs-ping");
    if !v6 {
        // the kernel fills in the ICMPv6 checksum itself, not the ICMPv4 one
        let c = checksum(&msg);
        msg[2..4].copy_from_slice(&c.to_be_bytes());
    }
    let sent = match dst {
        IpAddr::V4(a) => {
            let sa = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: `msg` and `sa` are valid for the lengths given.
            unsafe {
                libc::sendto(
                    fd.as_raw_fd(),
                    msg.as_ptr().cast(),
                    msg.len(),
                    0,
                    (&raw const sa).cast(),
                    size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            }
        }
        IpAddr::V6(a) => {
            let sa = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: 0,
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: `msg` and `sa` are valid for the lengths given.
            unsafe {
                libc::sendto(
                    fd.as_raw_fd(),
                    msg.as_ptr().cast(),
                    msg.len(),
                    0,
                    (&raw const sa).cast(),
                    size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            }
        }
    };
    syscall_size(sent).map_err(|e| io::Error::new(e.kind(), format!("sendto({dst}): {e}")))?;
    let start = Instant::now();
    let mut buf = [0u8; 1500];
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no echo reply from {dst}"),
            ));
        }
        if !crate::poll::wait_readable(&[fd.as_raw_fd()], left)?[0] {
            continue;
        }
        // SAFETY: `buf` is valid and writable for its length; no address is requested.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        match syscall_size(n) {
            Ok(n) if is_reply(&buf[..n], v6, ident, seq) => return Ok(start.elapsed()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(io::Error::new(e.kind(), format!("recv(ICMP): {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_only_its_own_reply() {
        let mut v4 = vec![0x45u8; 20];
        v4.extend_from_slice(&[0, 0, 0, 0, 0x12, 0x34, 0, 7]);
        assert!(is_reply(&v4, false, 0x1234, 7));
        assert!(!is_reply(&v4, false, 0x1234, 8));
        assert!(!is_reply(&v4[..22], false, 0x1234, 7));
        let v6 = [129u8, 0, 0, 0, 0x12, 0x34, 0, 7];
        assert!(is_reply(&v6, true, 0x1234, 7));
        assert!(!is_reply(
            &[128u8, 0, 0, 0, 0x12, 0x34, 0, 7],
            true,
            0x1234,
            7
        ));
    }

    #[test]
    fn pings_loopback_as_root() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: raw sockets need root");
            return;
        }
        ping("127.0.0.1".parse().unwrap(), Duration::from_secs(2)).expect("echo reply");
        ping("::1".parse().unwrap(), Duration::from_secs(2)).expect("echo reply");
    }
}
