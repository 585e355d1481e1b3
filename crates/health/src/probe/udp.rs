//! `UDP_CHECK`: send the payload on a connected socket; judge the reply or the silence.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::io::ErrorKind;
use std::net::UdpSocket;
use std::time::Instant;

use super::{ProbeError, left};
use crate::config::UdpCheck;

/// A socket bound to `bind` (or the wildcard of `dst`'s family) and connected
/// to `dst`, so ICMP errors come back as `ConnectionRefused`.
pub(crate) fn connected(
    dst: SocketAddr,
    bind: Option<SocketAddr>,
) -> Result<UdpSocket, ProbeError> {
    let local = bind.unwrap_or_else(|| match dst.ip() {
        IpAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        IpAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    });
    let s = UdpSocket::bind(local).map_err(ProbeError::Io)?;
    s.connect(dst).map_err(|e| ProbeError::Connect {
        addr: dst,
        source: e,
    })?;
    Ok(s)
}

pub(crate) fn check(
    dst: SocketAddr,
    bind: Option<SocketAddr>,
    chk: &UdpCheck,
    deadline: Instant,
) -> Result<(), ProbeError> {
    let total = deadline.saturating_duration_since(Instant::now());
    let s = connected(dst, bind)?;
    s.send(&chk.payload).map_err(|e| ProbeError::Connect {
        addr: dst,
        source: e,
    })?;
    let mut buf = vec![0u8; 65_536];
    let timeout = match left(deadline, total) {
        Ok(t) => t,
        Err(e) => {
            return if chk.require_reply.is_some() {
                Err(e)
            } else {
                Ok(())
            };
        }
    };
    s.set_read_timeout(Some(timeout)).map_err(ProbeError::Io)?;
    match s.recv(&mut buf) {
        Ok(n) => {
            let Some(pattern) = &chk.require_reply else {
                return Ok(());
            };
            let reply = &buf[..n];
            if n < chk.min_reply_length || n > chk.max_reply_length {
                return Err(ProbeError::BadReply(format!(
                    "{n} bytes, expected {}..={}",
                    chk.min_reply_length, chk.max_reply_length
                )));
            }
            if !pattern.matches(reply) {
                return Err(ProbeError::BadReply(
                    "reply does not match require_reply".into(),
                ));
            }
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => Err(ProbeError::Connect {
            addr: dst,
            source: e,
        }),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            if chk.require_reply.is_some() {
                Err(ProbeError::NoReply)
            } else {
                Ok(())
            }
        }
        Err(e) => Err(ProbeError::Io(e)),
    }
}
