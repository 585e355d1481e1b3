//! A minimal rtnetlink (`NETLINK_ROUTE`) client: send one request, collect the replies.
//!
//! Messages are built and parsed as byte slices with bounds checks, so a malformed reply
//! ends the parse instead of reading out of bounds. Netlink integers are in host order.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::{os_err, syscall, syscall_size};

pub(crate) const NLM_F_REQUEST: u16 = 0x1;
pub(crate) const NLM_F_ACK: u16 = 0x4;
pub(crate) const NLM_F_REPLACE: u16 = 0x100;
pub(crate) const NLM_F_CREATE: u16 = 0x400;
pub(crate) const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const HDR_LEN: usize = 16;

/// How long one request may take in total (a full neighbour dump included).
const DEADLINE: Duration = Duration::from_secs(5);
/// Receive buffer: the kernel's dump messages are at most 32 KiB.
const RX_BUF: usize = 64 * 1024;

pub(crate) const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

pub(crate) fn rd_u16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(
        b.get(off..off.checked_add(2)?)?.try_into().ok()?,
    ))
}

pub(crate) fn rd_u32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(
        b.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Iterate the `rtattr`s of `b`: (type without flag bits, payload).
pub(crate) fn attrs(b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut rest = b;
    std::iter::from_fn(move || {
        let len = usize::from(rd_u16(rest, 0)?);
        let ty = rd_u16(rest, 2)? & 0x3fff;
        if len < 4 || len > rest.len() {
            rest = &[];
            return None;
        }
        let payload = rest.get(4..len)?;
        rest = rest.get(align4(len).min(rest.len())..).unwrap_or(&[]);
        Some((ty, payload))
    })
}

/// Append an `rtattr` to a request body.
pub(crate) fn push_attr(buf: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    let len = u16::try_from(4 + payload.len()).unwrap_or(u16::MAX);
    buf.extend_from_slice(&len.to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(payload);
    buf.resize(align4(buf.len()), 0);
}

/// A NETLINK_ROUTE socket of the calling thread's network namespace.
#[derive(Debug)]
pub(crate) struct Netlink {
    fd: OwnedFd,
    seq: u32,
    port: u32,
    buf: Vec<u8>,
}

impl Netlink {
    pub(crate) fn open() -> io::Result<Self> {
        // SAFETY: plain socket(2) call, no pointers.
        let raw = syscall(unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        })
        .map_err(|e| os_err("socket(AF_NETLINK)", "NETLINK_ROUTE", e))?;
        // SAFETY: `raw` is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let tv = libc::timeval {
            tv_sec: 1,
            tv_usec: 0,
        };
        // SAFETY: `tv` is a valid timeval and the length is its size.
        syscall(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const tv).cast(),
                size_of::<libc::timeval>() as libc::socklen_t,
            )
        })
        .map_err(|e| os_err("setsockopt(SO_RCVTIMEO)", "netlink", e))?;
        // SAFETY: sockaddr_nl is plain old data; all-zero is a valid value.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: `sa` is a valid sockaddr_nl and the length is its size.
        syscall(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const sa).cast(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        })
        .map_err(|e| os_err("bind(AF_NETLINK)", "netlink", e))?;
        let mut len = size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        // SAFETY: `sa`/`len` are valid and writable; `len` holds the size of `sa`.
        syscall(unsafe { libc::getsockname(fd.as_raw_fd(), (&raw mut sa).cast(), &raw mut len) })
            .map_err(|e| os_err("getsockname(AF_NETLINK)", "netlink", e))?;
        Ok(Self {
            fd,
            seq: 1,
            port: sa.nl_pid,
            buf: vec![0; RX_BUF],
        })
    }

    /// Send one request (`body` after the netlink header) and call `on_msg(type, payload)`
    /// for each reply message until the kernel's `DONE` or ack. A dump (`NLM_F_DUMP`) ends
    /// with `DONE`; other requests get `NLM_F_ACK` added so that they end with an ack.
    ///
    /// `what` names the request in errors. A negative error from the kernel becomes an
    /// `io::Error` of that errno.
    pub(crate) fn request(
        &mut self,
        ty: u16,
        flags: u16,
        body: &[u8],
        what: &'static str,
        mut on_msg: impl FnMut(u16, &[u8]),
    ) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let flags = if flags & NLM_F_DUMP == NLM_F_DUMP {
            flags | NLM_F_REQUEST
        } else {
            flags | NLM_F_REQUEST | NLM_F_ACK
        };
        let len = u32::try_from(HDR_LEN + body.len())
            .map_err(|_| crate::invalid("netlink request too large"))?;
        let mut msg = Vec::with_capacity(HDR_LEN + body.len());
        msg.extend_from_slice(&len.to_ne_bytes());
        msg.extend_from_slice(&ty.to_ne_bytes());
        msg.extend_from_slice(&flags.to_ne_bytes());
        msg.extend_from_slice(&seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(body);
        // SAFETY: sockaddr_nl is plain old data; all-zero (port 0) addresses the kernel.
        let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: `msg` is a valid buffer of its length; `kernel` a valid address of the
        // size given.
        syscall_size(unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&raw const kernel).cast(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        })
        .map_err(|e| os_err("sendto(netlink)", what, e))?;

        let deadline = Instant::now() + DEADLINE;
        loop {
            if Instant::now() > deadline {
                return Err(os_err(
                    "recv(netlink)",
                    what,
                    io::Error::new(io::ErrorKind::TimedOut, "no complete answer in time"),
                ));
            }
            // SAFETY: `buf` is a valid writable buffer of its length.
            let n = syscall_size(unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    libc::MSG_TRUNC,
                )
            });
            let n = match n {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(os_err("recv(netlink)", what, e)),
            };
            if n > self.buf.len() {
                return Err(os_err(
                    "recv(netlink)",
                    what,
                    io::Error::new(io::ErrorKind::InvalidData, "message truncated"),
                ));
            }
            let data = self.buf.get(..n).unwrap_or(&[]);
            match walk(data, seq, self.port, &mut on_msg) {
                Walk::More => {}
                Walk::Done => return Ok(()),
                Walk::Error(errno) => {
                    return Err(os_err(what, "kernel", io::Error::from_raw_os_error(errno)));
                }
            }
        }
    }
}

enum Walk {
    More,
    Done,
    Error(i32),
}

/// Walk the messages of one datagram, skipping those that do not answer `seq`.
fn walk(mut data: &[u8], seq: u32, port: u32, on_msg: &mut impl FnMut(u16, &[u8])) -> Walk {
    while data.len() >= HDR_LEN {
        let (Some(len), Some(ty), Some(mseq), Some(mport)) = (
            rd_u32(data, 0),
            rd_u16(data, 4),
            rd_u32(data, 8),
            rd_u32(data, 12),
        ) else {
            break;
        };
        let len = len as usize;
        if len < HDR_LEN || len > data.len() {
            break;
        }
        let payload = data.get(HDR_LEN..len).unwrap_or(&[]);
        data = data.get(align4(len).min(data.len())..).unwrap_or(&[]);
        if mseq != seq || (mport != port && mport != 0) {
            continue;
        }
        match ty {
            NLMSG_DONE => {
                // A dump may end with an error in place of its status.
                return match rd_u32(payload, 0).map(|v| v as i32) {
                    Some(e) if e < 0 => Walk::Error(-e),
                    _ => Walk::Done,
                };
            }
            NLMSG_ERROR => {
                return match rd_u32(payload, 0).map(|v| v as i32) {
                    Some(0) => Walk::Done,
                    Some(e) if e < 0 => Walk::Error(e.saturating_neg()),
                    _ => Walk::Error(libc::EBADMSG),
                };
            }
            _ => on_msg(ty, payload),
        }
    }
    Walk::More
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(ty: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((HDR_LEN + payload.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(payload);
        m.resize(align4(m.len()), 0);
        m
    }

    #[test]
    fn attrs_round_trip_and_stop_on_garbage() {
        let mut b = Vec::new();
        push_attr(&mut b, 1, &[198, 18, 0, 1]);
        push_attr(&mut b, 2, &[1, 2, 3, 4, 5, 6]);
        push_attr(&mut b, 4, &7u32.to_ne_bytes());
        let got: Vec<(u16, Vec<u8>)> = attrs(&b).map(|(t, p)| (t, p.to_vec())).collect();
        assert_eq!(
            got,
            vec![
                (1, vec![198, 18, 0, 1]),
                (2, vec![1, 2, 3, 4, 5, 6]),
                (4, 7u32.to_ne_bytes().to_vec())
            ]
        );
        // Length fields that lie end the iteration without panicking.
        for pos in 0..b.len() {
            let mut c = b.clone();
            c[pos] = 0xff;
            let _ = attrs(&c).count();
            c[pos] = 0;
            let _ = attrs(&c).count();
        }
        assert_eq!(attrs(&[4, 0]).count(), 0);
    }

    #[test]
    fn walk_filters_by_sequence_and_reports_errors() {
        let mut d = msg(24, 7, b"other");
        d.extend(msg(24, 8, b"mine"));
        d.extend(msg(NLMSG_DONE, 8, &0i32.to_ne_bytes()));
        let mut got = Vec::new();
        assert!(matches!(
            walk(&d, 8, 0, &mut |t, p: &[u8]| got.push((t, p.to_vec()))),
            Walk::Done
        ));
        assert_eq!(got, vec![(24, b"mine".to_vec())]);

        let e = msg(NLMSG_ERROR, 3, &(-libc::ENETUNREACH).to_ne_bytes());
        assert!(matches!(
            walk(&e, 3, 0, &mut |_, _: &[u8]| {}),
            Walk::Error(libc::ENETUNREACH)
        ));
        let ack = msg(NLMSG_ERROR, 3, &0i32.to_ne_bytes());
        assert!(matches!(
            walk(&ack, 3, 0, &mut |_, _: &[u8]| {}),
            Walk::Done
        ));
        // Truncated input: more to read, no panic.
        assert!(matches!(
            walk(&d[..10], 8, 0, &mut |_, _: &[u8]| {}),
            Walk::More
        ));
    }
}
