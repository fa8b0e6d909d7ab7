//! The WebSocket layer as it looks on the wire, from a hand-rolled client:
//! the handshake, frames split across reads and several in one read,
//! fragmented messages with control frames in between, the closing
//! handshake, and each protocol violation with its close code. Also the
//! echo server ([`hubbub::echo`]) the Autobahn suite runs against: the same
//! layer with binary messages sent back.

mod common;

use std::net::SocketAddr;

use common::{http, TestServer, DEADLINE};
use hubbub_protocol::close;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CONTINUATION: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;
const FIN: u8 = 0x80;

/// A WebSocket client that writes exactly the bytes a test gives it.
struct Raw {
    stream: TcpStream,
    /// Bytes read and not yet parsed.
    buf: Vec<u8>,
}

/// A frame from the server.
#[derive(Debug, PartialEq)]
struct Frame {
    fin: bool,
    opcode: u8,
    payload: Vec<u8>,
}

/// A masked client frame (`first` = FIN bit | opcode).
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut out = vec![first];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

fn text(value: Value) -> Vec<u8> {
    frame(FIN | TEXT, value.to_string().as_bytes())
}

impl Raw {
    /// Opens `/ws` and checks the handshake, with RFC 6455's sample key.
    async fn open(server: &TestServer) -> Raw {
        Raw::open_at(server.addr).await
    }

    /// [`Raw::open`] on any server.
    async fn open_at(addr: SocketAddr) -> Raw {
        Raw::open_sending(addr, &[]).await
    }

    /// [`Raw::open_at`], with `frames` in the same write as the upgrade
    /// request (a client that does not wait for the answer).
    async fn open_sending(addr: SocketAddr, frames: &[u8]) -> Raw {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nConnection: keep-alive, Upgrade\r\n\
             Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        let mut first = request.into_bytes();
        first.extend_from_slice(frames);
        stream.write_all(&first).await.unwrap();
        let mut raw = Raw {
            stream,
            buf: Vec::new(),
        };
        let end = loop {
            if let Some(at) = raw.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            assert!(raw.fill().await, "the server closed during the handshake");
        };
        let head = String::from_utf8(raw.buf.drain(..end).collect()).unwrap();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
            "{head}"
        );
        raw
    }

    /// Reads more bytes; `false` at end of stream.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0; 4096];
        let n = tokio::time::timeout(DEADLINE, self.stream.read(&mut chunk))
            .await
            .expect("the server answered in time")
            .unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next frame from the server; `None` when the connection ends.
    async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some((frame, used)) = parse_server_frame(&self.buf) {
                self.buf.drain(..used);
                return Some(frame);
            }
            if !self.fill().await {
                assert!(self.buf.is_empty(), "a frame cut short: {:?}", self.buf);
                return None;
            }
        }
    }

    /// The next text frame as JSON, skipping server heartbeats.
    async fn next_json(&mut self) -> Value {
        loop {
            let frame = self.next().await.expect("a frame, not the end");
            if frame.opcode == TEXT {
                let value: Value = serde_json::from_slice(&frame.payload).unwrap();
                if value["type"] != "heartbeat" {
                    return value;
                }
            }
        }
    }

    /// Reads until the server's close frame; returns its code, and checks
    /// that the server then ends the TCP connection.
    async fn closed_with(&mut self) -> u16 {
        loop {
            let frame = self.next().await.expect("a close frame before the end");
            if frame.opcode == CLOSE {
                let code = u16::from_be_bytes([frame.payload[0], frame.payload[1]]);
                assert_eq!(self.next().await, None, "nothing after the close frame");
                return code;
            }
        }
    }
}

/// Parses one unmasked server frame at the start of `buf`.
fn parse_server_frame(buf: &[u8]) -> Option<(Frame, usize)> {
    let [first, second, ..] = *buf else {
        return None;
    };
    assert_eq!(second & 0x80, 0, "server frames are never masked");
    let (len, at) = match second & 0x7F {
        126 => (
            u16::from_be_bytes(buf.get(2..4)?.try_into().unwrap()) as usize,
            4,
        ),
        127 => (
            u64::from_be_bytes(buf.get(2..10)?.try_into().unwrap()) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    let payload = buf.get(at..at + len)?.to_vec();
    let frame = Frame {
        fin: first & 0x80 != 0,
        opcode: first & 0x0F,
        payload,
    };
    Some((frame, at + len))
}

#[tokio::test]
async fn frames_are_understood_however_the_bytes_arrive() {
    let server = TestServer::default().await;
    let mut raw = Raw::open(&server).await;

    // One frame, one byte per write.
    for byte in text(json!({"type": "hello", "name": "ada"})) {
        raw.send(&[byte]).await;
        raw.stream.flush().await.unwrap();
    }
    assert_eq!(raw.next_json().await["type"], "welcome");

    // Three requests in one write are all answered, in order.
    let mut burst = Vec::new();
    for id in 1..=3 {
        burst.extend(text(json!({"type": "ping", "id": id})));
    }
    raw.send(&burst).await;
    for id in 1..=3 {
        let pong = raw.next_json().await;
        assert_eq!(
            (pong["type"].as_str(), pong["id"].as_u64()),
            (Some("pong"), Some(id))
        );
    }

    // A request split into three fragments, with a ping between two of
    // them: the ping is answered at once, the request once it is whole.
    let request = json!({"type": "ping", "id": 77}).to_string();
    let (a, rest) = request.as_bytes().split_at(5);
    let (b, c) = rest.split_at(7);
    raw.send(&frame(TEXT, a)).await;
    raw.send(&frame(FIN | PING, b"are you there")).await;
    raw.send(&frame(CONTINUATION, b)).await;
    raw.send(&frame(FIN | CONTINUATION, c)).await;
    let pong = raw.next().await.unwrap();
    assert_eq!(
        pong,
        Frame {
            fin: true,
            opcode: PONG,
            payload: b"are you there".to_vec()
        }
    );
    assert_eq!(raw.next_json().await["id"], 77);

    // A large message (a 16-bit length) in one frame.
    raw.send(&text(json!({"type": "join", "room": "lobby"})))
        .await;
    raw.next_json().await; // presence
    let long = "x".repeat(3000);
    raw.send(&text(
        json!({"type": "send", "room": "lobby", "text": long, "client_id": "c1"}),
    ))
    .await;
    let mut seen_message = false;
    while !seen_message {
        let msg = raw.next_json().await;
        seen_message = msg["type"] == "message" && msg["text"] == long.as_str();
    }
}

#[tokio::test]
async fn frames_sent_with_the_upgrade_request_are_answered() {
    // hyper reads them with the request and hands them over with the
    // socket; the connection handles them before anything it reads itself.
    let server = TestServer::default().await;
    let mut eager = text(json!({"type": "hello", "name": "eager"}));
    eager.extend(text(json!({"type": "ping", "id": 5})));
    let mut raw = Raw::open_sending(server.addr, &eager).await;
    assert_eq!(raw.next_json().await["type"], "welcome");
    let pong = raw.next_json().await;
    assert_eq!(
        (pong["type"].as_str(), pong["id"].as_u64()),
        (Some("pong"), Some(5))
    );
    // And the connection goes on as any other.
    raw.send(&text(json!({"type": "ping", "id": 6}))).await;
    assert_eq!(raw.next_json().await["id"], 6);
}

#[tokio::test]
async fn the_closing_handshake_echoes_the_peer_code_then_ends_the_connection() {
    let server = TestServer::default().await;
    let mut raw = Raw::open(&server).await;
    raw.send(&text(json!({"type": "hello", "name": "ada"})))
        .await;
    raw.next_json().await;
    raw.send(&frame(FIN | CLOSE, &close::GOING_AWAY.to_be_bytes()))
        .await;
    assert_eq!(raw.closed_with().await, close::GOING_AWAY);

    // The name was freed: someone else may take it at once.
    let mut again = Raw::open(&server).await;
    again
        .send(&text(json!({"type": "hello", "name": "ada"})))
        .await;
    assert_eq!(again.next_json().await["type"], "welcome");
}

#[tokio::test]
async fn protocol_violations_close_with_their_code() {
    let server = TestServer::start(|c| c.max_frame_bytes = 1024).await;
    let unmasked = {
        let mut f = text(json!({"type": "ping"}));
        f[1] &= 0x7F;
        f.drain(2..6);
        f
    };
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("an unmasked frame", unmasked, close::PROTOCOL_ERROR),
        (
            "a continuation with nothing to continue",
            frame(FIN | CONTINUATION, b"{}"),
            close::PROTOCOL_ERROR,
        ),
        (
            "a reserved opcode",
            frame(FIN | 0x3, b""),
            close::PROTOCOL_ERROR,
        ),
        (
            "a compressed frame (RSV1) never agreed on",
            frame(FIN | 0x40 | TEXT, b"{}"),
            close::PROTOCOL_ERROR,
        ),
        (
            "a fragmented ping",
            frame(PING, b"x"),
            close::PROTOCOL_ERROR,
        ),
        (
            "a close code that may not be sent",
            frame(FIN | CLOSE, &1005u16.to_be_bytes()),
            close::PROTOCOL_ERROR,
        ),
        (
            "fragments adding up to more than the limit",
            [
                frame(TEXT, &[b' '; 600]),
                frame(FIN | CONTINUATION, &[b' '; 600]),
            ]
            .concat(),
            close::TOO_BIG,
        ),
        (
            "invalid UTF-8 across fragments",
            [frame(TEXT, b"\"\xE2\x82"), frame(FIN | CONTINUATION, b"\"")].concat(),
            close::INVALID_PAYLOAD,
        ),
    ];
    for (what, bytes, code) in cases {
        let mut raw = Raw::open(&server).await;
        raw.send(&text(json!({"type": "hello", "name": "ada"})))
            .await;
        raw.next_json().await;
        raw.send(&bytes).await;
        assert_eq!(raw.closed_with().await, code, "{what}");
    }
    // The server is fine afterwards.
    let mut raw = Raw::open(&server).await;
    raw.send(&text(json!({"type": "ping", "id": 1}))).await;
    assert_eq!(raw.next_json().await["type"], "pong");
}

#[tokio::test]
async fn a_plain_request_to_the_socket_endpoint_is_told_to_upgrade() {
    let server = TestServer::default().await;
    let response = http(server.addr, "GET", "/ws", &[], None).await;
    assert_eq!(response.status, 426, "{response:?}");
    assert_eq!(response.header("sec-websocket-version"), Some("13"));
    let old = http(
        server.addr,
        "GET",
        "/ws",
        &[
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "8"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
        None,
    )
    .await;
    assert_eq!(old.status, 426);
}

#[tokio::test]
async fn a_text_fragment_that_is_not_utf8_fails_at_once() {
    let server = TestServer::default().await;
    let mut raw = Raw::open(&server).await;
    raw.send(&text(json!({"type": "hello", "name": "ada"})))
        .await;
    raw.next_json().await;
    // The message is not over, but no continuation can mend a stray
    // continuation byte: the connection fails now, not at the last fragment.
    raw.send(&frame(TEXT, b"{\"type\": \"\x80")).await;
    assert_eq!(raw.closed_with().await, close::INVALID_PAYLOAD);
}

/// Starts the echo server on 127.0.0.1:0; it stops when the sender drops.
async fn start_echo() -> (SocketAddr, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(hubbub::echo::run(
        listener,
        hubbub::echo::config(),
        async move {
            let _ = stopped.await;
        },
    ));
    (addr, stop)
}

#[tokio::test]
async fn the_echo_server_sends_every_message_back_as_it_came() {
    let (addr, _stop) = start_echo().await;
    let mut raw = Raw::open_at(addr).await;
    let echoed = |opcode: u8, payload: &[u8]| Frame {
        fin: true,
        opcode,
        payload: payload.to_vec(),
    };

    raw.send(&frame(FIN | TEXT, "héllo".as_bytes())).await;
    assert_eq!(raw.next().await, Some(echoed(TEXT, "héllo".as_bytes())));
    raw.send(&frame(FIN | TEXT, b"")).await;
    assert_eq!(raw.next().await, Some(echoed(TEXT, b"")));

    // Binary, long enough for the 64-bit length form, every byte value.
    let big: Vec<u8> = (0..70_000u32).map(|i| (i % 256) as u8).collect();
    raw.send(&frame(FIN | BINARY, &big)).await;
    assert_eq!(raw.next().await, Some(echoed(BINARY, &big)));

    // A fragmented text message with a character cut between fragments and
    // a ping in between: the pong first, then the whole message in one.
    let euro = "€".as_bytes();
    raw.send(
        &[
            frame(TEXT, &[b'a', euro[0]]),
            frame(FIN | PING, b"p"),
            frame(CONTINUATION, &euro[1..]),
            frame(FIN | CONTINUATION, b"b"),
        ]
        .concat(),
    )
    .await;
    assert_eq!(raw.next().await, Some(echoed(PONG, b"p")));
    assert_eq!(raw.next().await, Some(echoed(TEXT, "a€b".as_bytes())));

    // Pings that arrive together each get their pong, in order.
    raw.send(
        &[
            frame(FIN | PING, b"1"),
            frame(FIN | PING, b"2"),
            frame(FIN | PING, b"3"),
        ]
        .concat(),
    )
    .await;
    for payload in [b"1", b"2", b"3"] {
        assert_eq!(raw.next().await, Some(echoed(PONG, payload)));
    }

    // The close handshake, as on the chat endpoint.
    raw.send(&frame(FIN | CLOSE, &close::NORMAL.to_be_bytes()))
        .await;
    assert_eq!(raw.closed_with().await, close::NORMAL);
}

#[tokio::test]
async fn the_echo_server_fails_a_bad_frame_after_echoing_what_came_before() {
    let (addr, _stop) = start_echo().await;
    let mut raw = Raw::open_at(addr).await;
    // One write: a good message, then a frame with a reserved bit set.
    raw.send(&[frame(FIN | TEXT, b"first"), frame(FIN | 0x20 | TEXT, b"x")].concat())
        .await;
    assert_eq!(
        raw.next().await.map(|f| f.payload),
        Some(b"first".to_vec()),
        "the message before the bad frame is answered"
    );
    assert_eq!(raw.closed_with().await, close::PROTOCOL_ERROR);
}
