//! Test support: a real server on 127.0.0.1:0 and real WebSocket clients.
#![allow(dead_code)] // each test binary uses a different part of this module

pub mod postgres;

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hubbub::Config;
use hubbub_protocol::ServerMsg;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for an event before failing.
pub const DEADLINE: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub addr: SocketAddr,
    /// The data directory (a real SQLite file), removed when dropped.
    pub data: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    /// A server with default settings, except as `tweak` says.
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> TestServer {
        TestServer::start_with_data(tempfile::tempdir().unwrap(), tweak).await
    }

    /// A server keeping its SQLite database in `data` (e.g. one a previous
    /// server used, to test a restart).
    pub async fn start_with_data(
        data: tempfile::TempDir,
        tweak: impl FnOnce(&mut Config),
    ) -> TestServer {
        let mut config = Config {
            data_dir: data.path().to_path_buf(),
            ..Config::default()
        };
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(hubbub::run(listener, config, async {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            data,
            shutdown: Some(tx),
            task,
        }
    }

    pub async fn default() -> TestServer {
        TestServer::start(|_| {}).await
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// A connected client that has said hello as `name`.
    pub async fn join_as(&self, name: &str) -> Client {
        let mut client = Client::connect(&self.url()).await;
        client.hello(name).await;
        client
    }

    /// Asks the server to shut down, waits for `run` to return, and hands
    /// back the data directory.
    pub async fn shutdown(mut self) -> tempfile::TempDir {
        self.shutdown.take().unwrap().send(()).unwrap();
        tokio::time::timeout(DEADLINE, &mut self.task)
            .await
            .expect("server stopped in time")
            .unwrap()
            .unwrap();
        self.data
    }
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// What a client saw when the connection ended.
#[derive(Debug, PartialEq)]
pub enum Ended {
    /// A close frame with this code.
    Close(u16),
    /// The connection ended without a close frame.
    Dropped,
}

impl Client {
    pub async fn connect(url: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connect");
        Client { ws }
    }

    pub async fn send(&mut self, value: Value) {
        self.ws
            .send(Message::text(value.to_string()))
            .await
            .unwrap();
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.ws.send(message).await.unwrap();
    }

    pub async fn hello(&mut self, name: &str) -> ServerMsg {
        self.send(json!({"type": "hello", "name": name})).await;
        let welcome = self.recv().await;
        assert!(matches!(welcome, ServerMsg::Welcome { .. }), "{welcome:?}");
        welcome
    }

    /// Joins `room`; returns the presence snapshot and the history that
    /// followed it (and checks the read marker that follows a first join).
    pub async fn join_full(&mut self, room: &str) -> (Vec<String>, ServerMsg) {
        self.send(json!({"type": "join", "room": room})).await;
        let users = match self.recv().await {
            ServerMsg::Presence { room: r, users } if r == room => users,
            other => panic!("expected presence for {room}, got {other:?}"),
        };
        let history = self.recv().await;
        assert!(
            matches!(&history, ServerMsg::History { room: r, .. } if r == room),
            "{history:?}"
        );
        match self.recv().await {
            ServerMsg::Read { room: r, .. } if r == room => {}
            other => panic!("expected the read marker of {room}, got {other:?}"),
        }
        (users, history)
    }

    /// Joins `room` and returns the presence snapshot it answered with.
    pub async fn join(&mut self, room: &str) -> Vec<String> {
        self.join_full(room).await.0
    }

    /// Joins `room` and returns the history that came with it.
    pub async fn join_with_history(&mut self, room: &str) -> ServerMsg {
        self.join_full(room).await.1
    }

    /// Says `text` in `room` and returns the acked seq (skipping other frames).
    pub async fn say(&mut self, room: &str, text: &str, client_id: &str) -> u64 {
        self.send(json!({"type": "send", "room": room, "text": text, "client_id": client_id}))
            .await;
        let ack = self
            .recv_until(
                |m| matches!(m, ServerMsg::Ack { client_id: Some(c), .. } if c == client_id),
            )
            .await;
        match ack {
            ServerMsg::Ack { seq: Some(seq), .. } => seq,
            other => panic!("{other:?}"),
        }
    }

    /// The next frame, heartbeats included; fails after [`DEADLINE`].
    pub async fn recv_any(&mut self) -> ServerMsg {
        loop {
            let message = tokio::time::timeout(DEADLINE, self.ws.next())
                .await
                .expect("a frame within the deadline")
                .expect("connection still open")
                .expect("read ok");
            match message {
                Message::Text(text) => {
                    return serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("bad server frame {text}: {e}"))
                }
                Message::Close(frame) => panic!("closed: {frame:?}"),
                _ => continue,
            }
        }
    }

    /// The next frame that is not a heartbeat.
    pub async fn recv(&mut self) -> ServerMsg {
        loop {
            match self.recv_any().await {
                ServerMsg::Heartbeat => continue,
                msg => return msg,
            }
        }
    }

    /// Frames up to and including the first one matching `pred`; returns it.
    pub async fn recv_until(&mut self, pred: impl Fn(&ServerMsg) -> bool) -> ServerMsg {
        self.collect_until(pred).await.pop().unwrap()
    }

    /// Every non-heartbeat frame up to and including the first matching `pred`.
    pub async fn collect_until(&mut self, pred: impl Fn(&ServerMsg) -> bool) -> Vec<ServerMsg> {
        let mut seen = Vec::new();
        loop {
            let msg = self.recv().await;
            let done = pred(&msg);
            seen.push(msg);
            if done {
                return seen;
            }
        }
    }

    /// Sends a ping and returns everything received before its pong: since
    /// the server answers in order, this is all that was queued for us.
    pub async fn drain(&mut self) -> Vec<ServerMsg> {
        self.send(json!({"type": "ping", "id": 424242})).await;
        let mut seen = self
            .collect_until(|m| matches!(m, ServerMsg::Pong { id: Some(424242) }))
            .await;
        seen.pop();
        seen
    }

    /// Reads until the connection ends; returns how it ended.
    pub async fn ended(&mut self) -> Ended {
        loop {
            let next = tokio::time::timeout(DEADLINE, self.ws.next())
                .await
                .expect("connection ended within the deadline");
            match next {
                Some(Ok(Message::Close(frame))) => {
                    // Keep reading so our close reply goes out and the
                    // server sees the handshake complete.
                    let rest = async { while self.ws.next().await.is_some() {} };
                    let _ = tokio::time::timeout(DEADLINE, rest).await;
                    return Ended::Close(
                        frame.map(|f: CloseFrame| u16::from(f.code)).unwrap_or(1005),
                    );
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Ended::Dropped,
            }
        }
    }

    /// Expects an error frame with `code` as the next non-heartbeat frame.
    pub async fn expect_error(&mut self, code: &str) -> ServerMsg {
        let msg = self.recv().await;
        match &msg {
            ServerMsg::Error { code: c, .. } if c.as_str() == code => msg,
            other => panic!("expected error {code}, got {other:?}"),
        }
    }
}

/// Whether `msg` is an online notice for `user` in `room`.
pub fn joined(msg: &ServerMsg, room: &str, user: &str) -> bool {
    matches!(msg, ServerMsg::Joined { room: r, users } if r == room && users.iter().any(|u| u == user))
}

/// Whether `msg` is an offline notice for `user` in `room`.
pub fn left(msg: &ServerMsg, room: &str, user: &str) -> bool {
    matches!(msg, ServerMsg::Left { room: r, users } if r == room && users.iter().any(|u| u == user))
}

/// Starts the real `hubbub` binary on `args` (which must include
/// `--listen`) over the data directory `data`, and returns it with the
/// address it printed. Its stdout keeps being drained, so it never blocks
/// on a full pipe; it is killed when dropped.
pub async fn spawn_hubbub(
    data: &std::path::Path,
    args: &[&str],
) -> (tokio::process::Child, SocketAddr) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hubbub"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env("HUBBUB_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start hubbub");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(DEADLINE * 3, lines.next_line())
        .await
        .expect("hubbub printed its address in time")
        .expect("read hubbub's stdout")
        .expect("hubbub printed a line");
    let addr = line
        .strip_prefix("hubbub listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line from hubbub: {line:?}"))
        .parse()
        .expect("an address");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

/// An HTTP response, read whole.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// The value of header `name` (any case) among `headers`.
fn header_in<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.headers, name)
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One HTTP/1.1 request over a fresh connection (`Connection: close`),
/// with a JSON body if one is given.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> HttpResponse {
    let body = body.map(|b| b.to_string());
    let mut all = headers.to_vec();
    if body.is_some() {
        all.push(("Content-Type", "application/json"));
    }
    let body = body.as_deref().unwrap_or_default().as_bytes();
    let raw = http_raw(addr, method, path, &all, Body::Sized(body)).await;
    HttpResponse {
        status: raw.status,
        headers: raw.headers,
        body: String::from_utf8_lossy(&raw.body).into_owned(),
    }
}

/// An HTTP response with its body as bytes, read whole.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.headers, name)
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    /// The JSON of a response that must be a 201 (the body shown if not).
    pub fn created(&self) -> Value {
        assert_eq!(self.status, 201, "{}", String::from_utf8_lossy(&self.body));
        self.json()
    }
}

/// How a request body is sent ([`http_raw`]).
pub enum Body<'a> {
    None,
    /// With its Content-Length.
    Sized(&'a [u8]),
    /// Chunked, no length said up front.
    Chunked(&'a [u8]),
    /// Only a Content-Length header, no bytes.
    Declared(u64),
}

/// One HTTP/1.1 request over a fresh connection (`Connection: close`),
/// the response read whole, its body as bytes.
pub async fn http_raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Body<'_>,
) -> RawResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let mut bytes = Vec::new();
    match body {
        Body::None => head.push_str("\r\n"),
        Body::Sized(b) => {
            head.push_str(&format!("Content-Length: {}\r\n\r\n", b.len()));
            bytes.extend_from_slice(b);
        }
        Body::Chunked(b) => {
            head.push_str("Transfer-Encoding: chunked\r\n\r\n");
            for chunk in b.chunks(512) {
                bytes.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                bytes.extend_from_slice(chunk);
                bytes.extend_from_slice(b"\r\n");
            }
            bytes.extend_from_slice(b"0\r\n\r\n");
        }
        Body::Declared(len) => head.push_str(&format!("Content-Length: {len}\r\n\r\n")),
    }
    stream.write_all(head.as_bytes()).await.unwrap();
    // The server may answer (and close) before it has read all of a
    // refused body; what matters is its answer.
    let _ = stream.write_all(&bytes).await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut raw))
        .await
        .expect("response in time");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    RawResponse {
        status: status.parse().unwrap(),
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// Registers the account `name` (a fixed password) through the server at
/// `addr` and signs it in: the bearer token for its sockets.
pub async fn register(addr: SocketAddr, name: &str) -> String {
    let body = json!({"name": name, "password": "correct horse battery"});
    let created = http(addr, "POST", "/api/register", &[], Some(body.clone())).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let session = http(addr, "POST", "/api/login", &[], Some(body)).await;
    assert_eq!(session.status, 200, "{}", session.body);
    format!("Bearer {}", session.json()["token"].as_str().unwrap())
}

/// A connection, past its `hello`, of the account whose token is `bearer`,
/// to the server at `addr` (a tab, a device).
pub async fn tab(addr: SocketAddr, bearer: &str) -> Client {
    let url = format!("ws://{addr}/ws");
    let mut tab = connect_with(&url, &[("authorization", bearer)])
        .await
        .unwrap();
    tab.hello("whoever").await;
    tab
}

/// Opens `/ws` with extra request headers; `Err(status)` if the upgrade is refused.
pub async fn connect_with(url: &str, headers: &[(&str, &str)]) -> Result<Client, u16> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request().unwrap();
    for (k, v) in headers {
        request.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(Client { ws }),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(other) => panic!("connect failed: {other}"),
    }
}
