//! `HTTP_GET`: one request per URL, every read bounded in size and time.

use core::net::SocketAddr;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::md5::{Md5, hex};
use super::{ProbeError, io_err, left, tcp};
use crate::config::{HttpVersion, Url};

/// Most bytes of status line plus headers read before giving up.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Most body bytes read (for the digest) before giving up.
pub const MAX_BODY_BYTES: usize = 1 << 20;

pub(crate) fn check(
    dst: SocketAddr,
    tls: bool,
    host: &str,
    urls: &[Url],
    version: HttpVersion,
    deadline: Instant,
) -> Result<(), ProbeError> {
    for u in urls {
        get(
            dst,
            tls,
            u.virtualhost.as_deref().unwrap_or(host),
            u,
            version,
            deadline,
        )?;
    }
    Ok(())
}

/// A connected stream whose read and write timeouts can be set (TCP, or TLS over TCP).
trait Stream: Read + Write {
    fn set_timeouts(&mut self, d: Duration) -> std::io::Result<()>;
}

impl Stream for TcpStream {
    fn set_timeouts(&mut self, d: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(d))?;
        self.set_write_timeout(Some(d))
    }
}

impl Stream for rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    fn set_timeouts(&mut self, d: Duration) -> std::io::Result<()> {
        self.sock.set_read_timeout(Some(d))?;
        self.sock.set_write_timeout(Some(d))
    }
}

/// SSL_GET does not verify the server's certificate (keepalived does not either: the check
/// is about the service answering, not about its identity); signatures of the handshake
/// are still checked by the TLS library's algorithms.
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_config() -> Result<Arc<rustls::ClientConfig>, ProbeError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ProbeError::Io(std::io::Error::other(e)))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// Connect, with TLS for SSL_GET (SNI = the virtual host when it is a DNS name).
fn connect(
    dst: SocketAddr,
    tls: bool,
    host: &str,
    deadline: Instant,
) -> Result<Box<dyn Stream>, ProbeError> {
    let s = tcp(dst, deadline)?;
    if !tls {
        return Ok(Box::new(s));
    }
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .unwrap_or_else(|_| rustls::pki_types::ServerName::from(dst.ip()));
    let conn = rustls::ClientConnection::new(tls_config()?, name)
        .map_err(|e| ProbeError::Io(std::io::Error::other(e)))?;
    Ok(Box::new(rustls::StreamOwned::new(conn, s)))
}

/// Parse a status line: exactly `HTTP/D.D NNN`, then the end or a space and a
/// reason phrase. Anything else is refused (CVE-2018-19115 came from a lax parse).
pub fn parse_status_line(line: &[u8]) -> Option<u16> {
    let l = line.strip_suffix(b"\r").unwrap_or(line);
    if l.len() < 12 || !l.starts_with(b"HTTP/") {
        return None;
    }
    let (v, rest) = l[5..].split_at(3);
    if !(v[0].is_ascii_digit() && v[1] == b'.' && v[2].is_ascii_digit()) {
        return None;
    }
    if rest[0] != b' ' || !rest[1..4].iter().all(u8::is_ascii_digit) {
        return None;
    }
    if rest.len() > 4 && rest[4] != b' ' {
        return None;
    }
    let code = rest[1..4]
        .iter()
        .fold(0u16, |a, d| a * 10 + u16::from(d - b'0'));
    (100..=599).contains(&code).then_some(code)
}

fn header_value<'a>(headers: &'a [u8], name: &str) -> Option<&'a str> {
    let text = std::str::from_utf8(headers).ok()?;
    text.split("\r\n").skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn get(
    dst: SocketAddr,
    tls: bool,
    host: &str,
    url: &Url,
    version: HttpVersion,
    deadline: Instant,
) -> Result<(), ProbeError> {
    let total = deadline.saturating_duration_since(Instant::now());
    let mut s = connect(dst, tls, host, deadline)?;
    let v = match version {
        HttpVersion::Http11 => "1.1",
        HttpVersion::Http10 | HttpVersion::Http10Close => "1.0",
    };
    let req = format!(
        "GET {} HTTP/{v}\r\nUser-Agent: rvs-health\r\nHost: {host}\r\nConnection: close\r\n\r\n",
        url.path
    );
    s.set_timeouts(left(deadline, total)?)
        .map_err(ProbeError::Io)?;
    s.write_all(req.as_bytes()).map_err(|e| io_err(e, total))?;

    let mut head: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = [0u8; 8192];
    let body_start;
    loop {
        s.set_timeouts(left(deadline, total)?)
            .map_err(ProbeError::Io)?;
        let n = s.read(&mut chunk).map_err(|e| io_err(e, total))?;
        if n == 0 {
            return Err(if head.is_empty() {
                ProbeError::BadStatusLine
            } else {
                ProbeError::BadHeaders
            });
        }
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&chunk[..n]);
        if let Some(i) = head[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            body_start = from + i + 4;
            break;
        }
        // The status line can be judged before the headers end.
        if let Some(eol) = head.iter().position(|&b| b == b'\n')
            && parse_status_line(&head[..eol]).is_none()
        {
            return Err(ProbeError::BadStatusLine);
        }
        if head.len() > MAX_HEADER_BYTES {
            return Err(ProbeError::BadHeaders);
        }
    }
    if body_start > MAX_HEADER_BYTES {
        return Err(ProbeError::BadHeaders);
    }
    let eol = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let code = parse_status_line(&head[..eol]).ok_or(ProbeError::BadStatusLine)?;
    if !url.status.iter().any(|&(lo, hi)| (lo..=hi).contains(&code)) {
        return Err(ProbeError::Status(code));
    }
    let Some(want) = url.digest else {
        return Ok(());
    };
    let length = match header_value(&head[..body_start], "content-length") {
        Some(v) => Some(v.parse::<usize>().map_err(|_| ProbeError::BadHeaders)?),
        None => None,
    };
    if length.is_some_and(|l| l > MAX_BODY_BYTES) {
        return Err(ProbeError::BodyTooLarge(MAX_BODY_BYTES));
    }
    // The digest covers the body bytes as received (no chunked decoding), as
    // keepalived computes it.
    let mut md5 = Md5::new();
    let mut got = head.len() - body_start;
    md5.update(
        &head[body_start
            ..head
                .len()
                .min(body_start.saturating_add(length.unwrap_or(usize::MAX)))],
    );
    while length.is_none_or(|l| got < l) {
        if got > MAX_BODY_BYTES {
            return Err(ProbeError::BodyTooLarge(MAX_BODY_BYTES));
        }
        s.set_timeouts(left(deadline, total)?)
            .map_err(ProbeError::Io)?;
        let n = s.read(&mut chunk).map_err(|e| io_err(e, total))?;
        if n == 0 {
            if length.is_some() {
                return Err(ProbeError::BadReply(
                    "body shorter than Content-Length".into(),
                ));
            }
            break;
        }
        let take = length.map_or(n, |l| n.min(l - got));
        md5.update(&chunk[..take]);
        got += n;
    }
    if got > MAX_BODY_BYTES {
        return Err(ProbeError::BodyTooLarge(MAX_BODY_BYTES));
    }
    let d = md5.finish();
    if d != want {
        return Err(ProbeError::Digest {
            expected: hex(&want),
            got: hex(&d),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_status_line as p;

    #[test]
    fn status_lines() {
        assert_eq!(p(b"HTTP/1.1 200 OK\r"), Some(200));
        assert_eq!(p(b"HTTP/1.0 404"), Some(404));
        assert_eq!(p(b"HTTP/2.0 503 Service Unavailable"), Some(503));
        assert_eq!(p(b"HTTP/1.1 2000 OK"), None);
        assert_eq!(p(b"HTTP/1.1 20 OK"), None);
        assert_eq!(p(b"HTTP/1.1  200 OK"), None);
        assert_eq!(p(b"HTTP/11 200 OK"), None);
        assert_eq!(p(b"http/1.1 200 OK"), None);
        assert_eq!(p(b"HTTP/1.1 099 x"), None);
        assert_eq!(p(b"HTTP/1.1 2x0 OK"), None);
        assert_eq!(p(b""), None);
    }
}
