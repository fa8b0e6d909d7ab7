//! https and wss served directly with --tls-cert/--tls-key.

mod common;

use std::sync::Arc;

use common::TestServer;
use futures_util::{SinkExt, StreamExt};
use hubbub_protocol::ServerMsg;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, RootCertStore};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message;

/// A server with a fresh self-signed certificate for 127.0.0.1, and a
/// client TLS config that trusts exactly that certificate.
async fn tls_server() -> (TestServer, TlsConnector, tempfile::TempDir) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let server = TestServer::start(|c| {
        c.tls_cert = Some(cert_path.clone());
        c.tls_key = Some(key_path.clone());
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
    (server, TlsConnector::from(Arc::new(config)), dir)
}

async fn tls_stream(
    server: &TestServer,
    connector: &TlsConnector,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    connector.connect(name, tcp).await.expect("TLS handshake")
}

#[tokio::test]
async fn wss_and_https_work_and_cookies_are_secure() {
    let (server, connector, _certs) = tls_server().await;

    let stream = tls_stream(&server, &connector).await;
    let url = format!("wss://{}/ws", server.addr);
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .expect("wss upgrade");
    let next = async |ws: &mut tokio_tungstenite::WebSocketStream<_>| -> ServerMsg {
        loop {
            let frame = tokio::time::timeout(common::DEADLINE, ws.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            if let Message::Text(text) = frame {
                return serde_json::from_str(&text).unwrap();
            }
        }
    };
    ws.send(Message::text(
        json!({"type": "hello", "name": "alice"}).to_string(),
    ))
    .await
    .unwrap();
    assert!(matches!(next(&mut ws).await, ServerMsg::Welcome { .. }));
    ws.send(Message::text(
        json!({"type": "join", "room": "lobby"}).to_string(),
    ))
    .await
    .unwrap();
    ws.send(Message::text(
        json!({"type": "send", "room": "lobby", "text": "over TLS", "client_id": "t-1"})
            .to_string(),
    ))
    .await
    .unwrap();
    loop {
        if let ServerMsg::Ack { seq: Some(1), .. } = next(&mut ws).await {
            break;
        }
    }

    // Registration over https sets a Secure cookie.
    let mut https = tls_stream(&server, &connector).await;
    let body = json!({"name": "bob", "password": "a fine password"}).to_string();
    let request = format!(
        "POST /api/register HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        server.addr,
        body.len()
    );
    https.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    https.read_to_string(&mut response).await.ok();
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    let cookie = response
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");

    // Plain text on the TLS port gets no service.
    let mut plain = TcpStream::connect(server.addr).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = plain.read_to_end(&mut buf).await;
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
}
