//! WebSocket (RFC 6455) for the server side, without per-connection buffers:
//! the upgrade handshake as an axum extractor ([`WsUpgrade`]), and the frame
//! codec the connection ([`crate::conn`]) runs on.
//!
//! Reading parses frames in place from whatever buffer the bytes landed in
//! (the connection reads into a per-thread scratch buffer, and keeps bytes
//! only while a frame is incomplete); client frames are unmasked in place.
//! Writing encodes a frame's header on the fly in front of the shared,
//! serialize-once payload, so nothing per member is allocated or kept.
//!
//! Only what the chat protocol needs is supported: no extensions (so no
//! compression), no subprotocols, HTTP/1.1 upgrades only.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hubbub_protocol::close;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The upgraded connection: the socket (plain or TLS) the HTTP request came
/// on, plus whatever the client sent after its request.
pub struct Upgraded {
    pub socket: Socket,
    /// Bytes the client sent after its upgrade request, before it had our
    /// answer (usually none); they are the connection's first.
    pub pre: Bytes,
}

/// An upgraded connection's socket. Plain TCP is taken back from hyper as
/// itself: hyper hands over any socket boxed (with room for `pre` beside
/// it), 80 bytes per connection that an idle connection has no use for
/// (docs/benchmarks.md, "Idle memory per connection"). Anything else (TLS)
/// stays as hyper hands it over, boxed once more to keep this small.
pub enum Socket {
    Tcp(TcpStream),
    Other(Box<TokioIo<hyper::upgrade::Upgraded>>),
}

impl Upgraded {
    fn new(upgraded: hyper::upgrade::Upgraded) -> Upgraded {
        match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => Upgraded {
                socket: Socket::Tcp(parts.io.into_inner()),
                pre: parts.read_buf,
            },
            Err(upgraded) => Upgraded {
                socket: Socket::Other(Box::new(TokioIo::new(upgraded))),
                pre: Bytes::new(),
            },
        }
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Socket::Other(other) => Pin::new(other).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Socket::Tcp(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Socket::Other(other) => Pin::new(other).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Socket::Tcp(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            Socket::Other(other) => Pin::new(other).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Socket::Tcp(tcp) => tcp.is_write_vectored(),
            Socket::Other(other) => other.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(tcp) => Pin::new(tcp).poll_flush(cx),
            Socket::Other(other) => Pin::new(other).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Socket::Other(other) => Pin::new(other).poll_shutdown(cx),
        }
    }
}

/// A valid WebSocket upgrade request (`GET` with `Connection: upgrade`,
/// `Upgrade: websocket`, `Sec-WebSocket-Version: 13` and a key).
pub struct WsUpgrade {
    key: HeaderValue,
    on_upgrade: OnUpgrade,
}

/// Why a request to a WebSocket endpoint is not a WebSocket upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UpgradeRejection {
    #[error("a WebSocket upgrade must be a GET request")]
    NotGet,
    #[error("this endpoint speaks WebSocket: send Connection: upgrade and Upgrade: websocket")]
    NotUpgrade,
    #[error("only WebSocket version 13 is supported")]
    BadVersion,
    #[error("Sec-WebSocket-Key is missing")]
    NoKey,
    #[error("this connection cannot be upgraded")]
    NotUpgradable,
}

impl IntoResponse for UpgradeRejection {
    fn into_response(self) -> Response {
        let status = match self {
            UpgradeRejection::NotGet => StatusCode::METHOD_NOT_ALLOWED,
            UpgradeRejection::NotUpgrade | UpgradeRejection::BadVersion => {
                StatusCode::UPGRADE_REQUIRED
            }
            UpgradeRejection::NoKey => StatusCode::BAD_REQUEST,
            UpgradeRejection::NotUpgradable => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut response = (status, self.to_string()).into_response();
        if status == StatusCode::UPGRADE_REQUIRED {
            let headers = response.headers_mut();
            headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            headers.insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
        }
        response
    }
}

/// Whether a comma-separated header (e.g. `Connection: keep-alive, Upgrade`)
/// has `token`, case-insensitively.
fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value.to_str().is_ok_and(|value| {
            value
                .split(',')
                .any(|part| part.trim().eq_ignore_ascii_case(token))
        })
    })
}

impl<S: Send + Sync> FromRequestParts<S> for WsUpgrade {
    type Rejection = UpgradeRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if parts.method != Method::GET {
            return Err(UpgradeRejection::NotGet);
        }
        if !has_token(&parts.headers, header::CONNECTION, "upgrade")
            || !has_token(&parts.headers, header::UPGRADE, "websocket")
        {
            return Err(UpgradeRejection::NotUpgrade);
        }
        if parts.headers.get(header::SEC_WEBSOCKET_VERSION) != Some(&HeaderValue::from_static("13"))
        {
            return Err(UpgradeRejection::BadVersion);
        }
        let key = parts
            .headers
            .get(header::SEC_WEBSOCKET_KEY)
            .cloned()
            .ok_or(UpgradeRejection::NoKey)?;
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or(UpgradeRejection::NotUpgradable)?;
        Ok(WsUpgrade { key, on_upgrade })
    }
}

impl WsUpgrade {
    /// Answers `101 Switching Protocols` and runs `serve` on the upgraded
    /// connection once hyper hands it over.
    pub fn on_upgrade<F, Fut>(self, serve: F) -> Response
    where
        F: FnOnce(Upgraded) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let accept = tungstenite::handshake::derive_accept_key(self.key.as_bytes());
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            match on_upgrade.await {
                // A task of its own: its size is the connection's alone,
                // not the connection's plus this one's.
                Ok(upgraded) => drop(tokio::spawn(serve(Upgraded::new(upgraded)))),
                Err(err) => tracing::debug!(error = %err, "upgrade failed"),
            }
        });
        let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(
            header::SEC_WEBSOCKET_ACCEPT,
            HeaderValue::from_str(&accept).expect("base64 is a valid header value"),
        );
        response
    }
}

/// A frame's opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl OpCode {
    fn from_bits(bits: u8) -> Option<OpCode> {
        Some(match bits {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    pub fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// A parsed client frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub fin: bool,
    pub opcode: OpCode,
    pub mask: [u8; 4],
    /// Bytes the header takes (2 to 14).
    pub len: usize,
    /// Bytes of payload that follow it.
    pub payload_len: usize,
}

/// Why the peer's bytes are not acceptable; each closes the connection with
/// its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Not a valid WebSocket frame sequence (1002).
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    /// A message over the size limit (1009).
    #[error("message too big")]
    TooBig,
    /// A text message that is not UTF-8 (1007).
    #[error("invalid UTF-8")]
    InvalidUtf8,
}

impl FrameError {
    /// The close code and reason the connection is closed with.
    pub fn close(self) -> (u16, &'static str) {
        match self {
            FrameError::Protocol(why) => (close::PROTOCOL_ERROR, why),
            FrameError::TooBig => (close::TOO_BIG, "message too big"),
            FrameError::InvalidUtf8 => (close::INVALID_PAYLOAD, "invalid UTF-8"),
        }
    }
}

/// Parses the client frame header at the start of `buf`; `Ok(None)` when
/// more bytes are needed. A payload over `max_payload` is refused from the
/// header alone, before any of it is read.
pub fn parse_header(buf: &[u8], max_payload: usize) -> Result<Option<Header>, FrameError> {
    let [first, second, ..] = *buf else {
        return Ok(None);
    };
    if first & 0x70 != 0 {
        return Err(FrameError::Protocol("reserved bits set"));
    }
    let opcode = OpCode::from_bits(first & 0x0F).ok_or(FrameError::Protocol("unknown opcode"))?;
    let fin = first & 0x80 != 0;
    if second & 0x80 == 0 {
        return Err(FrameError::Protocol("client frames must be masked"));
    }
    let (payload_len, at) = match second & 0x7F {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) if b[0] & 0x80 != 0 => {
                return Err(FrameError::Protocol("64-bit length with the top bit set"))
            }
            Some(b) => (u64::from_be_bytes(b.try_into().expect("8 bytes")), 10),
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    if opcode.is_control() && (!fin || payload_len > 125) {
        return Err(FrameError::Protocol("bad control frame"));
    }
    if payload_len > max_payload as u64 {
        return Err(FrameError::TooBig);
    }
    let Some(mask) = buf.get(at..at + 4) else {
        return Ok(None);
    };
    Ok(Some(Header {
        fin,
        opcode,
        mask: mask.try_into().expect("4 bytes"),
        len: at + 4,
        payload_len: payload_len as usize,
    }))
}

/// Unmasks a client payload in place.
pub fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let word = u64::from_ne_bytes((&*chunk).try_into().expect("8 bytes")) ^ wide;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= mask[i % 4];
    }
}

/// Most bytes a server (unmasked) frame header takes.
pub const MAX_SERVER_HEADER: usize = 10;

/// Encodes an unmasked, final frame header for `payload_len` bytes into
/// `out`; returns how many bytes it took.
pub fn encode_header(
    opcode: OpCode,
    payload_len: usize,
    out: &mut [u8; MAX_SERVER_HEADER],
) -> usize {
    out[0] = 0x80 | opcode.bits();
    if payload_len < 126 {
        out[1] = payload_len as u8;
        2
    } else if payload_len <= usize::from(u16::MAX) {
        out[1] = 126;
        out[2..4].copy_from_slice(&(payload_len as u16).to_be_bytes());
        4
    } else {
        out[1] = 127;
        out[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
        10
    }
}

/// The length of the header [`encode_header`] writes for `payload_len`.
pub fn header_len(payload_len: usize) -> usize {
    match payload_len {
        0..126 => 2,
        126..=0xFFFF => 4,
        _ => 10,
    }
}

/// Encodes a whole control frame (`payload` ≤ 125 bytes).
pub fn control_frame(opcode: OpCode, payload: &[u8]) -> bytes::Bytes {
    debug_assert!(opcode.is_control() && payload.len() <= 125);
    let mut frame = Vec::with_capacity(2 + payload.len());
    frame.push(0x80 | opcode.bits());
    frame.push(payload.len() as u8);
    frame.extend_from_slice(payload);
    frame.into()
}

/// Encodes a close frame with `code` and `reason` (truncated to fit).
pub fn close_frame(code: u16, reason: &str) -> bytes::Bytes {
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&code.to_be_bytes());
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    control_frame(OpCode::Close, &payload)
}

/// Checks that `bytes` is UTF-8 or the start of it (a fragmented text
/// message still arriving); returns how many bytes are known good, short
/// of a character cut at the end.
pub fn check_utf8_prefix(bytes: &[u8]) -> Result<usize, FrameError> {
    match std::str::from_utf8(bytes) {
        Ok(_) => Ok(bytes.len()),
        // Cut short, not wrong: the next fragment may complete it.
        Err(err) if err.error_len().is_none() => Ok(err.valid_up_to()),
        Err(_) => Err(FrameError::InvalidUtf8),
    }
}

/// Checks the payload of a client's close frame; returns the code to answer
/// with (the peer's own, or 1000 when it gave none).
pub fn check_close_payload(payload: &[u8]) -> Result<u16, FrameError> {
    match payload {
        [] => Ok(close::NORMAL),
        [_] => Err(FrameError::Protocol("close frame with a one-byte payload")),
        [a, b, reason @ ..] => {
            let code = u16::from_be_bytes([*a, *b]);
            let valid = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            if !valid {
                return Err(FrameError::Protocol("invalid close code"));
            }
            std::str::from_utf8(reason).map_err(|_| FrameError::InvalidUtf8)?;
            Ok(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame, as a browser would send it.
    fn client_frame(first: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut frame = vec![first];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        let start = frame.len();
        frame.extend_from_slice(payload);
        unmask(&mut frame[start..], mask);
        frame
    }

    #[test]
    fn parses_and_unmasks_frames_of_every_length_format() {
        for len in [0, 1, 7, 8, 125, 126, 1000, 0xFFFF, 0x10000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut frame = client_frame(0x81, &payload, [1, 2, 3, 4]);
            let header = parse_header(&frame, 1 << 20).unwrap().unwrap();
            assert_eq!(header.opcode, OpCode::Text);
            assert!(header.fin);
            assert_eq!(header.payload_len, len);
            assert_eq!(header.len + len, frame.len());
            let body = &mut frame[header.len..];
            unmask(body, header.mask);
            assert_eq!(body, &payload[..]);
            // Every strict prefix of the header asks for more bytes.
            for cut in 0..header.len {
                assert_eq!(parse_header(&frame[..cut], 1 << 20), Ok(None));
            }
        }
    }

    #[test]
    fn refuses_what_rfc_6455_forbids() {
        let protocol = |bytes: &[u8]| match parse_header(bytes, 1024) {
            Err(FrameError::Protocol(_)) => {}
            other => panic!("{bytes:?}: {other:?}"),
        };
        protocol(&[0x81, 0x05]); // unmasked
        protocol(&[0xC1, 0x80, 0, 0, 0, 0]); // RSV1 (compression was never agreed)
        protocol(&[0x83, 0x80, 0, 0, 0, 0]); // reserved opcode
        protocol(&[0x09, 0x80, 0, 0, 0, 0]); // fragmented ping
        protocol(&[0x89, 0xFE, 0, 126, 0, 0, 0, 0]); // ping over 125 bytes
        assert_eq!(
            parse_header(&[0x81, 0xFE, 0x04, 0x01], 1024),
            Err(FrameError::TooBig)
        );
        assert_eq!(
            parse_header(&[0x82, 0xFF, 0, 0, 0, 1, 0, 0, 0, 0], 1 << 20),
            Err(FrameError::TooBig)
        );
        protocol(&[0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn encodes_server_headers_browsers_accept() {
        let mut out = [0; MAX_SERVER_HEADER];
        assert_eq!(encode_header(OpCode::Text, 5, &mut out), 2);
        assert_eq!(out[..2], [0x81, 5]);
        assert_eq!(encode_header(OpCode::Text, 300, &mut out), 4);
        assert_eq!(out[..4], [0x81, 126, 1, 44]);
        assert_eq!(encode_header(OpCode::Binary, 70_000, &mut out), 10);
        assert_eq!(out[..10], [0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
        for len in [0, 125, 126, 0xFFFF, 0x10000] {
            assert_eq!(encode_header(OpCode::Text, len, &mut out), header_len(len));
        }
        assert_eq!(
            &close_frame(1000, "bye")[..],
            &[0x88, 5, 0x03, 0xE8, b'b', b'y', b'e']
        );
        assert_eq!(close_frame(4001, &"é".repeat(100)).len(), 2 + 2 + 122);
    }

    #[test]
    fn each_refusal_closes_with_its_own_code() {
        assert_eq!(FrameError::Protocol("x").close().0, close::PROTOCOL_ERROR);
        assert_eq!(FrameError::TooBig.close().0, close::TOO_BIG);
        assert_eq!(FrameError::InvalidUtf8.close().0, close::INVALID_PAYLOAD);
    }

    #[test]
    fn checks_utf8_as_fragments_arrive() {
        let euro = "€".as_bytes(); // three bytes
        assert_eq!(check_utf8_prefix(b"abc"), Ok(3));
        assert_eq!(check_utf8_prefix(&[b'a', euro[0], euro[1]]), Ok(1));
        assert_eq!(check_utf8_prefix(&[]), Ok(0));
        // Wrong at once: a stray continuation byte, a code point past
        // U+10FFFF (F4 90), an encoded surrogate (ED A0).
        for bad in [&[b'a', 0x80][..], &[0xF4, 0x90], &[0xED, 0xA0]] {
            assert_eq!(check_utf8_prefix(bad), Err(FrameError::InvalidUtf8));
        }
    }

    #[test]
    fn checks_close_payloads() {
        assert_eq!(check_close_payload(&[]), Ok(1000));
        assert_eq!(check_close_payload(&[0x03, 0xE9, b'o', b'k']), Ok(1001));
        assert!(check_close_payload(&[0x03]).is_err());
        assert!(check_close_payload(&[0x03, 0xED]).is_err()); // 1005 is never sent
        assert!(check_close_payload(&[0x00, 0x10]).is_err());
        assert_eq!(
            check_close_payload(&[0x03, 0xE8, 0xFF]),
            Err(FrameError::InvalidUtf8)
        );
    }
}
