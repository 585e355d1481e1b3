//! `DNS_CHECK`: one query over UDP; any well-formed reply with our id passes.

use core::net::SocketAddr;
use std::io::ErrorKind;
use std::time::Instant;

use super::{ProbeError, left};
use crate::config::DnsType;

/// Build a query (RFC 1035 4.1): header with `id` and RD set, one question
/// `name`/`qtype`/IN. `name` must be a valid domain name (checked at load).
pub fn build_query(id: u16, qtype: DnsType, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(18 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let b = label.as_bytes();
        q.push(u8::try_from(b.len().min(63)).unwrap_or(63));
        q.extend_from_slice(&b[..b.len().min(63)]);
    }
    q.push(0);
    q.extend_from_slice(&qtype.code().to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q
}

/// Check a reply to `query`: same id, QR set, opcode 0, and the question echoed
/// (RFC 1035 4.1.1). The rcode is not judged: an answering server is up.
///
/// # Errors
/// A short description of what is wrong.
pub fn check_reply(query: &[u8], reply: &[u8]) -> Result<(), String> {
    if reply.len() < 12 {
        return Err(format!("{} bytes, shorter than a DNS header", reply.len()));
    }
    if reply[..2] != query[..2] {
        return Err("id differs".into());
    }
    if reply[2] & 0x80 == 0 {
        return Err("QR bit not set".into());
    }
    if (reply[2] >> 3) & 0x0f != 0 {
        return Err("opcode is not QUERY".into());
    }
    let qd = u16::from_be_bytes([reply[4], reply[5]]);
    if qd != 1 {
        return Err(format!("{qd} questions, expected 1"));
    }
    let question = &query[12..];
    match reply.get(12..12 + question.len()) {
        Some(q) if q.eq_ignore_ascii_case(question) => Ok(()),
        _ => Err("question section differs".into()),
    }
}

fn query_id() -> u16 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut r = crate::time::Rng::new(t ^ COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(32));
    (r.next_u64() & 0xffff) as u16
}

/// Most datagrams read while waiting for the answer (others are stale or spoofed).
const MAX_DATAGRAMS: usize = 16;

pub(crate) fn check(
    dst: SocketAddr,
    bind: Option<SocketAddr>,
    qtype: DnsType,
    name: &str,
    deadline: Instant,
) -> Result<(), ProbeError> {
    let total = deadline.saturating_duration_since(Instant::now());
    let query = build_query(query_id(), qtype, name);
    let s = super::udp::connected(dst, bind)?;
    s.send(&query).map_err(|e| ProbeError::Connect {
        addr: dst,
        source: e,
    })?;
    let mut buf = [0u8; 4096];
    let mut last = String::from("no reply");
    for _ in 0..MAX_DATAGRAMS {
        s.set_read_timeout(Some(left(deadline, total)?))
            .map_err(ProbeError::Io)?;
        match s.recv(&mut buf) {
            Ok(n) => match check_reply(&query, &buf[..n]) {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            },
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                return Err(ProbeError::Connect {
                    addr: dst,
                    source: e,
                });
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(ProbeError::NoReply);
            }
            Err(e) => return Err(ProbeError::Io(e)),
        }
    }
    Err(ProbeError::BadReply(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_layout() {
        let q = build_query(0x1234, DnsType::A, "www.example.com.");
        assert_eq!(&q[..12], &[0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&q[12..], b"\x03www\x07example\x03com\x00\x00\x01\x00\x01");
        let root = build_query(1, DnsType::Soa, ".");
        assert_eq!(&root[12..], &[0, 0, 6, 0, 1]);
    }

    #[test]
    fn replies() {
        let q = build_query(7, DnsType::Soa, "example.com");
        let mut r = q.clone();
        r[2] |= 0x80;
        r[3] = 0x03; // NXDOMAIN still means the server answers
        assert_eq!(check_reply(&q, &r), Ok(()));
        let mut wrong_id = r.clone();
        wrong_id[1] ^= 1;
        assert!(check_reply(&q, &wrong_id).is_err());
        assert!(check_reply(&q, &q).is_err(), "a query is not a reply");
        assert!(check_reply(&q, &r[..11]).is_err());
        assert!(check_reply(&q, &r[..14]).is_err());
    }
}
