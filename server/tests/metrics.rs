//! `/metrics`, `/healthz` and `/readyz` on a real server.

mod common;

use std::future::IntoFuture;
use std::sync::Arc;

use common::TestServer;
use hubbub::config::StoreKind;
use hubbub::hub::Hub;
use hubbub::Config;
use hubbub_protocol::ServerMsg;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `GET path` over plain HTTP/1.1; returns the status code and the body.
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(common::DEADLINE, stream.read_to_string(&mut response))
        .await
        .expect("response in time")
        .unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad response {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The value of an unlabelled series in a Prometheus text exposition.
fn value(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn counters_move_when_a_message_is_fanned_out() {
    let server = TestServer::default().await;
    let (status, before) = get(server.addr, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(value(&before, "hubbub_connections"), 0);
    assert_eq!(value(&before, "hubbub_messages_in_total"), 0);

    let mut alice = server.join_as("alice").await;
    let mut bob = server.join_as("bob").await;
    alice.join("lobby").await;
    bob.join("lobby").await;
    alice.say("lobby", "hello", "c-1").await;
    bob.drain().await;

    let (_, after) = get(server.addr, "/metrics").await;
    assert_eq!(value(&after, "hubbub_connections"), 2);
    assert_eq!(value(&after, "hubbub_connections_total"), 2);
    assert_eq!(value(&after, "hubbub_rooms"), 1);
    assert_eq!(value(&after, "hubbub_messages_in_total"), 1);
    // welcome ×2, presence ×2, joined notices, the message ×2, the ack, pong…
    assert!(value(&after, "hubbub_deliveries_total") >= 7, "{after}");
    assert!(value(&after, "hubbub_delivered_bytes_total") > 0);
    assert!(value(&after, "hubbub_requests_total") >= 6);
    assert_eq!(value(&after, "hubbub_slow_consumers_total"), 0);
    assert!(value(&after, "hubbub_store_messages_total") >= 1);
    assert!(value(&after, "hubbub_store_write_seconds_count") >= 1);
    assert!(after.contains("# TYPE hubbub_deliveries_total counter"));
    assert!(after.contains("hubbub_store_write_seconds_bucket{le=\"+Inf\"}"));
    server.shutdown().await;
}

#[tokio::test]
async fn rate_limited_requests_are_counted() {
    let server = TestServer::start(|c| {
        c.rate = 0.001;
        c.burst = 2;
    })
    .await;
    let mut client = common::Client::connect(&server.url()).await;
    for id in 0..3 {
        client.send(json!({"type": "ping", "id": id})).await;
    }
    client
        .recv_until(
            |m| matches!(m, ServerMsg::Error { code, .. } if code.as_str() == "rate_limited"),
        )
        .await;
    let (_, text) = get(server.addr, "/metrics").await;
    assert!(value(&text, "hubbub_rate_limited_total") >= 1, "{text}");
    server.shutdown().await;
}

#[tokio::test]
async fn health_and_readiness_while_serving() {
    let server = TestServer::default().await;
    assert_eq!(get(server.addr, "/healthz").await.0, 200);
    assert_eq!(get(server.addr, "/readyz").await.0, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn readyz_is_503_once_shutdown_begins() {
    // The listener of a real server closes when shutdown begins, so serve
    // the same router on a listener of our own to ask it during shutdown.
    let config = Config {
        store: StoreKind::Memory,
        ..Config::default()
    };
    let store = config.open_store().unwrap();
    let hub: Arc<Hub> = Hub::new(config, store);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving =
        tokio::spawn(axum::serve(listener, hubbub::router(Arc::clone(&hub))).into_future());
    assert_eq!(get(addr, "/readyz").await.0, 200);
    hub.begin_shutdown();
    let (status, body) = get(addr, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(get(addr, "/healthz").await.0, 200);
    serving.abort();
}
