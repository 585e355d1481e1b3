//! Framing: a big-endian `u32` length prefix followed by a JSON body.
//!
//! Request body: `{"version":1,"request":{"op":...,"args":...}}`.
//! Response body: `{"version":1,"response":{"kind":...,"data":...}}`.
//!
//! Decoding is total: any byte sequence yields either a value or an error, never
//! a panic (serde_json bounds nesting depth at 128, so hostile nesting cannot
//! exhaust the stack). A length prefix above [`MAX_FRAME_LEN`] is refused before
//! anything is allocated for the body.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use crate::proto::{ApiError, ErrorCode, Request, Response};

/// Version of the JSON body format. Bump on any incompatible change.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest frame body accepted or produced, in bytes (64 MiB).
pub const MAX_FRAME_LEN: usize = 64 << 20;

/// A framing or transport failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The underlying read or write failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The peer announced (or we tried to send) a body above the limit.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// Limit in force.
        max: usize,
    },
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed in the middle of a frame")]
    Truncated,
}

/// Read one frame body. `Ok(None)` means the peer closed the connection cleanly
/// before the first byte of a frame.
///
/// # Errors
/// [`FrameError::TooLarge`] if the announced length exceeds `max` (the body is not
/// consumed, so the stream cannot be reused); [`FrameError::Truncated`] on EOF
/// mid-frame; [`FrameError::Io`] otherwise.
pub fn read_frame<R: Read + ?Sized>(r: &mut R, max: usize) -> Result<Option<Vec<u8>>, FrameError> {
    let mut len_buf = [0u8; 4];
    let mut got = 0;
    while got < len_buf.len() {
        match r.read(&mut len_buf[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(FrameError::Truncated),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let len = usize::try_from(u32::from_be_bytes(len_buf)).unwrap_or(usize::MAX);
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    // Grow with the data actually received rather than trusting the prefix.
    let mut body = Vec::with_capacity(len.min(64 * 1024));
    let n = r.take(len as u64).read_to_end(&mut body)?;
    if n != len {
        return Err(FrameError::Truncated);
    }
    Ok(Some(body))
}

/// Write one frame (length prefix + body) and flush.
///
/// # Errors
/// [`FrameError::TooLarge`] if `body` exceeds [`MAX_FRAME_LEN`]; [`FrameError::Io`].
pub fn write_frame<W: Write + ?Sized>(w: &mut W, body: &[u8]) -> Result<(), FrameError> {
    if body.len() > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge {
            len: body.len(),
            max: MAX_FRAME_LEN,
        });
    }
    let len = u32::try_from(body.len()).map_err(|_| FrameError::TooLarge {
        len: body.len(),
        max: MAX_FRAME_LEN,
    })?;
    let mut buf = Vec::with_capacity(body.len() + 4);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(body);
    w.write_all(&buf)?;
    w.flush()?;
    Ok(())
}

#[derive(Serialize)]
struct RequestOut<'a> {
    version: u32,
    request: &'a Request,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestIn {
    #[serde(rename = "version")]
    _version: u32,
    request: Request,
}

#[derive(Serialize)]
struct ResponseOut<'a> {
    version: u32,
    response: &'a Response,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResponseIn {
    #[serde(rename = "version")]
    _version: u32,
    response: Response,
}

/// Only the version, other fields skipped, so an unknown future body still
/// yields a clean "unsupported version" answer.
#[derive(Deserialize)]
struct VersionProbe {
    version: u32,
}

fn probe_version(body: &[u8]) -> Result<(), ApiError> {
    let probe: VersionProbe = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("malformed frame: {e}")))?;
    if probe.version != PROTOCOL_VERSION {
        return Err(ApiError::new(
            ErrorCode::UnsupportedVersion,
            format!(
                "unsupported protocol version {} (this side speaks {PROTOCOL_VERSION})",
                probe.version
            ),
        ));
    }
    Ok(())
}

/// Serialise a request into a frame body.
pub fn encode_request(req: &Request) -> Vec<u8> {
    // Serialising these plain data types into memory cannot fail (no maps with
    // non-string keys, no custom Serialize impls); fall back to an empty body
    // rather than panicking, which the peer rejects as malformed.
    serde_json::to_vec(&RequestOut {
        version: PROTOCOL_VERSION,
        request: req,
    })
    .unwrap_or_default()
}

/// Decode **and validate** a request frame body.
///
/// # Errors
/// [`ErrorCode::BadRequest`] for anything that is not a well-formed request,
/// [`ErrorCode::UnsupportedVersion`] for another version, and any error from
/// [`Request::validate`].
pub fn decode_request(body: &[u8]) -> Result<Request, ApiError> {
    probe_version(body)?;
    let frame: RequestIn = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("malformed request: {e}")))?;
    frame.request.validate()?;
    Ok(frame.request)
}

/// Serialise a response into a frame body.
pub fn encode_response(resp: &Response) -> Vec<u8> {
    serde_json::to_vec(&ResponseOut {
        version: PROTOCOL_VERSION,
        response: resp,
    })
    .unwrap_or_default()
}

/// Decode a response frame body.
///
/// # Errors
/// [`ErrorCode::BadRequest`] for a malformed body, [`ErrorCode::UnsupportedVersion`].
pub fn decode_response(body: &[u8]) -> Result<Response, ApiError> {
    probe_version(body)?;
    let frame: ResponseIn = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("malformed response: {e}")))?;
    Ok(frame.response)
}

/// Serve one connection: read request frames until the peer closes, answer each
/// with `handler`'s response. Frames that fail to decode or validate are answered
/// with [`Response::Error`] without calling `handler`.
///
/// Peer-credential checks are the caller's job (before calling this).
///
/// # Errors
/// Transport errors; an oversized frame is answered with a `TooLarge` error
/// response and then reported as [`FrameError::TooLarge`] (the stream is unusable).
pub fn serve_connection<S, F>(stream: &mut S, mut handler: F) -> Result<(), FrameError>
where
    S: Read + Write + ?Sized,
    F: FnMut(Request) -> Response,
{
    loop {
        let body = match read_frame(stream, MAX_FRAME_LEN) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(()),
            Err(FrameError::TooLarge { len, max }) => {
                let resp = Response::error(
                    ErrorCode::TooLarge,
                    format!("frame of {len} bytes exceeds the limit of {max} bytes"),
                );
                // Best effort: the peer may already be gone.
                let _ = write_frame(stream, &encode_response(&resp));
                return Err(FrameError::TooLarge { len, max });
            }
            Err(e) => return Err(e),
        };
        let resp = match decode_request(&body) {
            Ok(req) => handler(req),
            Err(e) => Response::Error(e),
        };
        write_frame(stream, &encode_response(&resp))?;
    }
}
