//! The HTTP front door against slow and greedy clients: headers or bodies
//! that stall or trickle are cut, connections that never upgrade are
//! capped per address and in all, and none of it touches a WebSocket that
//! did upgrade. Every API error keeps the documented JSON shape.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use common::{http, Client, TestServer, DEADLINE};
use hubbub_protocol::ServerMsg;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

/// A TCP connection to `server` from the loopback address `from`
/// (127.0.0.2 is another client address as far as the server can tell).
async fn connect_from(server: SocketAddr, from: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))
        .unwrap();
    socket.connect(server).await.unwrap()
}

/// Reads until the server closes the connection (EOF or reset); returns
/// what arrived. Fails if that takes longer than [`DEADLINE`].
async fn until_closed(stream: &mut (impl AsyncRead + Unpin)) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(DEADLINE, read_all)
        .await
        .expect("the server closed the connection in time");
    seen
}

/// The status and JSON body of the HTTP response at the start of `raw`.
fn response(raw: &[u8]) -> (u16, Value) {
    let raw = String::from_utf8_lossy(raw);
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete response in {raw:?}"));
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        })
        .expect("a Content-Length");
    let body = serde_json::from_str(&body[..len]).unwrap_or_else(|e| panic!("{e}: {body}"));
    (status, body)
}

/// The value of an unlabelled counter on `/metrics`.
async fn counter(server: &TestServer, name: &str) -> u64 {
    let metrics = http(server.addr, "GET", "/metrics", &[], None).await;
    metrics
        .body
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in {}", metrics.body))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn headers_that_stall_are_cut_after_the_header_timeout() {
    let header_timeout = Duration::from_millis(300);
    let server = TestServer::start(|c| c.header_timeout = header_timeout).await;
    let started = Instant::now();
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: hubbub\r\nX-Slow")
        .await
        .unwrap();
    until_closed(&mut slow).await;
    assert!(
        started.elapsed() >= header_timeout,
        "cut after {:?}, before the header timeout",
        started.elapsed()
    );
    // A connection that sends nothing at all fares no better.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    assert!(until_closed(&mut silent).await.is_empty());
    assert!(counter(&server, "hubbub_http_header_timeouts_total").await >= 2);
    // The server still serves whoever sends a whole request.
    assert_eq!(
        http(server.addr, "GET", "/healthz", &[], None).await.status,
        200
    );
}

#[tokio::test]
async fn a_body_that_trickles_is_cut_by_the_minimum_rate() {
    let body_timeout = Duration::from_millis(300);
    let server = TestServer::start(|c| {
        c.body_timeout = body_timeout;
        c.body_min_rate = 1000; // each byte earns 1 ms
    })
    .await;
    let started = Instant::now();
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "POST /api/register HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n\r\n",
        server.addr
    );
    writer.write_all(head.as_bytes()).await.unwrap();
    // One byte every 20 ms (50 bytes/s) for as long as the server listens:
    // never silent long, but far below the minimum rate.
    let trickle = tokio::spawn(async move {
        let mut sent = 0usize;
        let mut every = tokio::time::interval(Duration::from_millis(20));
        loop {
            every.tick().await;
            if writer.write_all(b" ").await.is_err() || sent == 9_999 {
                return sent;
            }
            sent += 1;
        }
    });
    let raw = until_closed(&mut reader).await;
    let elapsed = started.elapsed();
    let (status, body) = response(&raw);
    assert_eq!(status, 408, "{body}");
    assert_eq!(body["error"], "body_timeout");
    assert!(body["message"].is_string());
    assert!(elapsed >= body_timeout, "cut after {elapsed:?}");
    let sent = tokio::time::timeout(DEADLINE, trickle)
        .await
        .expect("the trickle noticed the close")
        .unwrap();
    assert!(
        sent < 9_999,
        "the body was cut, not finished ({sent} bytes)"
    );
    assert!(counter(&server, "hubbub_http_body_timeouts_total").await >= 1);

    // A body that does not come at all is cut at the body timeout.
    let mut stalled = TcpStream::connect(server.addr).await.unwrap();
    stalled.write_all(head.as_bytes()).await.unwrap();
    let (status, body) = response(&until_closed(&mut stalled).await);
    assert_eq!(
        (status, body["error"].as_str()),
        (408, Some("body_timeout"))
    );

    // A body sent at once is not troubled by the short timeout.
    let ok = http(
        server.addr,
        "POST",
        "/api/register",
        &[],
        Some(json!({"name": "patient", "password": "a fine password"})),
    )
    .await;
    assert_eq!(ok.status, 201, "{}", ok.body);
}

#[tokio::test]
async fn a_huge_declared_body_is_refused_at_once() {
    // Long timeouts: the answer must not wait for them.
    let server = TestServer::start(|c| {
        c.body_timeout = Duration::from_secs(60);
        c.header_timeout = Duration::from_secs(60);
    })
    .await;
    for (path, status, code) in [
        ("/api/register", 413, "body_too_large"),
        ("/api/login", 413, "body_too_large"),
        // Logout reads no body: it answers, and the body is not waited for.
        ("/api/logout", 401, "unauthorized"),
    ] {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n",
            server.addr
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let started = Instant::now();
        let (got, body) = response(&until_closed(&mut stream).await);
        assert_eq!(
            (got, body["error"].as_str()),
            (status, Some(code)),
            "{path}"
        );
        assert!(started.elapsed() < Duration::from_secs(5), "{path}");
    }
}

#[tokio::test]
async fn a_register_body_over_16_kib_gets_the_json_413() {
    let server = TestServer::default().await;
    let big = json!({"name": "alice", "password": "x".repeat(17 * 1024)}).to_string();
    // Declared with Content-Length… (The server may read the whole body
    // and keep the connection: the client asks it to close.)
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "POST /api/register HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{big}",
        server.addr,
        big.len()
    );
    let _ = stream.write_all(request.as_bytes()).await;
    let (status, body) = response(&until_closed(&mut stream).await);
    assert_eq!(status, 413);
    assert_eq!(body["error"], "body_too_large");
    assert!(
        body["message"].as_str().unwrap().contains("16384"),
        "{body}"
    );
    // …or chunked, so only reading it tells.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "POST /api/register HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n",
        server.addr,
        big.len()
    );
    let _ = stream.write_all(request.as_bytes()).await;
    let (status, body) = response(&until_closed(&mut stream).await);
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("body_too_large"))
    );
}

#[tokio::test]
async fn every_api_error_is_json() {
    let server = TestServer::default().await;
    let cases: Vec<(&str, &str, Option<Value>, u16, &str)> = vec![
        ("GET", "/api/register", None, 405, "method_not_allowed"),
        ("POST", "/api/session", None, 405, "method_not_allowed"),
        ("GET", "/api/nothing/here", None, 404, "not_found"),
        ("POST", "/api/register", None, 415, "unsupported_media_type"),
        (
            "POST",
            "/api/login",
            Some(json!({"name": "alice"})),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/login",
            Some(json!(["not", "an", "object"])),
            400,
            "bad_request",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let got = http(server.addr, method, path, &[], body).await;
        assert_eq!(got.status, status, "{method} {path}: {}", got.body);
        let json = got.json();
        assert_eq!(json["error"], code, "{method} {path}");
        assert!(json["message"].is_string(), "{method} {path}");
        assert!(
            got.header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "{method} {path}"
        );
    }
    let wrong = http(server.addr, "GET", "/api/login", &[], None).await;
    assert_eq!(wrong.header("allow"), Some("POST"));
}

#[tokio::test]
async fn connections_that_never_upgrade_are_capped_per_address() {
    let server = TestServer::start(|c| {
        c.max_http_conns_per_ip = 3;
        c.header_timeout = Duration::from_secs(60);
    })
    .await;
    // 127.0.0.2 holds its three connections with half a request each.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = connect_from(server.addr, "127.0.0.2").await;
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x")
            .await
            .unwrap();
        held.push(stream);
    }
    // Its fourth is closed at once, long before any timeout.
    let started = Instant::now();
    let mut fourth = connect_from(server.addr, "127.0.0.2").await;
    let _ = fourth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    assert!(until_closed(&mut fourth).await.is_empty(), "no answer");
    assert!(started.elapsed() < Duration::from_secs(5));

    // Another address is not affected: HTTP and WebSocket both work.
    assert_eq!(
        http(server.addr, "GET", "/healthz", &[], None).await.status,
        200
    );
    let mut alice = server.join_as("alice").await;
    alice.join("lobby").await;
    assert!(counter(&server, "hubbub_http_refused_total").await >= 1);

    // Once 127.0.0.2 lets one go, it may open another.
    drop(held.pop());
    let again = async {
        loop {
            let mut stream = connect_from(server.addr, "127.0.0.2").await;
            let _ = stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await;
            let mut raw = Vec::new();
            let _ = stream.read_to_end(&mut raw).await;
            if raw.starts_with(b"HTTP/1.1 200") {
                return;
            }
        }
    };
    tokio::time::timeout(DEADLINE, again)
        .await
        .expect("a freed place is free again");
}

#[tokio::test]
async fn connections_that_never_upgrade_are_capped_in_all() {
    let server = TestServer::start(|c| {
        c.max_http_conns = 2;
        c.header_timeout = Duration::from_secs(60);
    })
    .await;
    let mut held = Vec::new();
    for from in ["127.0.0.2", "127.0.0.3"] {
        let mut stream = connect_from(server.addr, from).await;
        stream.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        held.push(stream);
    }
    let mut third = connect_from(server.addr, "127.0.0.4").await;
    assert!(until_closed(&mut third).await.is_empty());
}

#[tokio::test]
async fn an_upgraded_websocket_is_no_longer_an_http_connection() {
    let header_timeout = Duration::from_millis(200);
    let server = TestServer::start(|c| {
        c.header_timeout = header_timeout;
        c.heartbeat = Duration::from_millis(100);
        // One HTTP connection per address: the second WebSocket below gets
        // in only if the first one's place was freed by its upgrade.
        c.max_http_conns_per_ip = 1;
    })
    .await;
    let mut alice = server.join_as("alice").await;
    let mut bob = Client::connect(&server.url()).await;
    bob.hello("bob").await;
    // Heartbeats keep coming well past the header timeout…
    let started = Instant::now();
    while started.elapsed() < header_timeout * 3 {
        alice.recv_any().await;
    }
    // …and the socket still answers.
    alice.send(json!({"type": "ping", "id": 7})).await;
    let pong = alice
        .recv_until(|m| matches!(m, ServerMsg::Pong { .. }))
        .await;
    assert_eq!(pong, ServerMsg::Pong { id: Some(7) });
}

#[tokio::test]
async fn tls_handshakes_and_headers_are_bounded_too() {
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
    use tokio_rustls::rustls::{self, RootCertStore};

    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    // Long enough that the three connections below are all open at once.
    let header_timeout = Duration::from_secs(1);
    let server = TestServer::start(|c| {
        c.tls_cert = Some(cert_path.clone());
        c.tls_key = Some(key_path.clone());
        c.header_timeout = header_timeout;
        c.max_http_conns_per_ip = 2;
    })
    .await;
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(cert.cert.der().to_vec()))
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));

    // A client that never starts its handshake…
    let started = Instant::now();
    let mut mute = TcpStream::connect(server.addr).await.unwrap();
    // …and one that finishes it, then stalls in its headers.
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut slow = connector.connect(name.clone(), tcp).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x")
        .await
        .unwrap();
    slow.flush().await.unwrap();
    // Both hold this address's two places: a third is refused.
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    assert!(until_closed(&mut third).await.is_empty());
    // Both are cut after the header timeout.
    until_closed(&mut mute).await;
    until_closed(&mut slow).await;
    assert!(started.elapsed() >= header_timeout);

    // A whole request over TLS is answered.
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut ok = connector.connect(name, tcp).await.unwrap();
    ok.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let raw = until_closed(&mut ok).await;
    assert!(
        raw.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&raw)
    );
}

#[tokio::test]
async fn a_stalled_request_does_not_hold_up_shutdown() {
    let server = TestServer::start(|c| {
        c.header_timeout = Duration::from_secs(60);
        c.body_timeout = Duration::from_secs(60);
        c.shutdown_timeout = Duration::from_millis(500);
    })
    .await;
    let mut headers = TcpStream::connect(server.addr).await.unwrap();
    headers
        .write_all(b"GET / HTTP/1.1\r\nHost: x")
        .await
        .unwrap();
    let mut body = TcpStream::connect(server.addr).await.unwrap();
    let head = "POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{";
    body.write_all(head.as_bytes()).await.unwrap();
    // Both are in the server's hands before it is told to stop.
    assert_eq!(
        http(server.addr, "GET", "/healthz", &[], None).await.status,
        200
    );
    // `shutdown` fails unless the server stops within the test deadline.
    server.shutdown().await;
}
