//! The terminal client driven as a user would: the built binary in plain
//! mode, commands on its stdin, assertions on what it prints, against a real
//! server in-process (and a WebSocket user in the same rooms).
//!
//! Waiting is by reading until an expected line, bounded by [`DEADLINE`].

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hubbub::config::StoreKind;
use hubbub::Config;
use hubbub_protocol::ServerMsg;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const DEADLINE: Duration = Duration::from_secs(10);

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
    /// Where uploaded files are kept; removed when dropped.
    _data: tempfile::TempDir,
}

impl Server {
    /// A server on `addr` (port 0: any free port).
    async fn start_on(addr: &str) -> Server {
        Server::start_with(addr, |_| {}).await
    }

    /// A server on `addr`, with defaults except as `tweak` says.
    async fn start_with(addr: &str, tweak: impl FnOnce(&mut Config)) -> Server {
        let data = tempfile::tempdir().unwrap();
        let mut config = Config {
            store: StoreKind::Memory,
            data_dir: data.path().to_path_buf(),
            ..Config::default()
        };
        tweak(&mut config);
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(hubbub::run(listener, config, async {
            let _ = rx.await;
        }));
        Server {
            addr,
            stop: Some(tx),
            task,
            _data: data,
        }
    }

    async fn start() -> Server {
        Server::start_on("127.0.0.1:0").await
    }

    fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    async fn shutdown(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        tokio::time::timeout(DEADLINE, &mut self.task)
            .await
            .expect("server stopped in time")
            .unwrap()
            .unwrap();
    }
}

/// A WebSocket user.
struct Ws(
    WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The upload token of its `welcome`.
    Option<String>,
);

impl Ws {
    async fn join_as(server: &Server, name: &str, room: &str) -> Ws {
        let (ws, _) = tokio_tungstenite::connect_async(server.url())
            .await
            .unwrap();
        let mut ws = Ws(ws, None);
        ws.send(json!({"type": "hello", "name": name})).await;
        if let ServerMsg::Welcome { upload_token, .. } =
            ws.until(|m| matches!(m, ServerMsg::Welcome { .. })).await
        {
            ws.1 = upload_token;
        }
        ws.send(json!({"type": "join", "room": room})).await;
        ws.until(|m| matches!(m, ServerMsg::Presence { .. })).await;
        ws
    }

    async fn send(&mut self, value: Value) {
        self.0.send(Message::text(value.to_string())).await.unwrap();
    }

    /// Joins `room` and gives the `history` its join answers with.
    async fn join_history(&mut self, room: &str) -> ServerMsg {
        self.send(json!({"type": "join", "room": room})).await;
        self.until(|m| matches!(m, ServerMsg::History { room: r, .. } if r == room))
            .await
    }

    /// Frames until one matches `pred`; returns it.
    async fn until(&mut self, pred: impl Fn(&ServerMsg) -> bool) -> ServerMsg {
        loop {
            let frame = tokio::time::timeout(DEADLINE, self.0.next())
                .await
                .expect("a frame within the deadline")
                .expect("open")
                .expect("read ok");
            if let Message::Text(text) = frame {
                let msg: ServerMsg = serde_json::from_str(&text).unwrap();
                if pred(&msg) {
                    return msg;
                }
            }
        }
    }
}

fn joined(msg: &ServerMsg, user: &str) -> bool {
    matches!(msg, ServerMsg::Joined { users, .. } if users.iter().any(|u| u == user))
}

fn left(msg: &ServerMsg, user: &str) -> bool {
    matches!(msg, ServerMsg::Left { users, .. } if users.iter().any(|u| u == user))
}

/// The client binary in plain mode, with piped stdin and stdout.
struct Chat {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Chat {
    fn spawn(args: &[&str]) -> Chat {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hubbub-chat"))
            .args(["--plain", "--retry-base", "50ms", "--retry-max", "500ms"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the client starts");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        Chat {
            child,
            stdin,
            stdout,
        }
    }

    /// Starts as `name` against `server` and waits until it is in `lobby`.
    async fn start(server: &Server, name: &str) -> Chat {
        let url = server.url();
        let mut chat = Chat::spawn(&["--url", &url, "--name", name]);
        chat.until("you are talking in lobby now").await;
        chat
    }

    async fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        stdin.flush().await.unwrap();
    }

    /// Printed lines up to and including the first containing `needle`.
    async fn until(&mut self, needle: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let line = tokio::time::timeout(DEADLINE, self.stdout.next_line())
                .await
                .unwrap_or_else(|_| panic!("no {needle:?} within the deadline; saw {seen:#?}"))
                .unwrap();
            match line {
                Some(line) => {
                    let done = line.contains(needle);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                None => panic!("the client exited before {needle:?}; saw {seen:#?}"),
            }
        }
    }

    /// Closes stdin (the end of input means quit) and waits for the exit.
    async fn finish(mut self) -> Vec<String> {
        self.stdin.take();
        let mut rest = Vec::new();
        while let Some(line) = tokio::time::timeout(DEADLINE, self.stdout.next_line())
            .await
            .expect("output ends within the deadline")
            .unwrap()
        {
            rest.push(line);
        }
        let status = tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .expect("exits within the deadline")
            .unwrap();
        assert!(status.success(), "{status:?}; printed {rest:#?}");
        rest
    }
}

#[tokio::test]
async fn a_scripted_session_with_every_command() {
    let server = Server::start().await;
    let mut alice = Ws::join_as(&server, "alice", "lobby").await;
    let mut carol = Chat::start(&server, "carol").await;
    alice.until(|m| joined(m, "carol")).await;

    // WebSocket user → terminal client.
    alice
        .send(json!({"type": "send", "room": "lobby", "text": "hi carol"}))
        .await;
    let line = carol.until("<alice>").await.pop().unwrap();
    assert!(line.ends_with("[lobby] #1 <alice> hi carol"), "{line}");

    // Terminal client → WebSocket user.
    carol.type_line("hello alice").await;
    let msg = alice
        .until(|m| matches!(m, ServerMsg::Message { from, .. } if from == "carol"))
        .await;
    assert!(matches!(msg, ServerMsg::Message { text, .. } if text == "hello alice"));

    carol.type_line("/who").await;
    let line = carol.until("online:").await.pop().unwrap();
    assert!(line.ends_with("[lobby] * online: alice, carol"), "{line}");

    // /msg: in the private conversation with alice (joined first), which
    // alice hears of and joins.
    carol.type_line("/msg alice psst").await;
    let line = carol.until("<carol> psst").await.pop().unwrap();
    assert!(line.ends_with("[@alice] #1 <carol> psst"), "{line}");
    alice
        .until(|m| matches!(m, ServerMsg::Conversation { .. }))
        .await;
    alice.join_history("@alice+carol").await;
    alice
        .send(json!({"type": "send", "room": "@alice+carol", "text": "psst back"}))
        .await;
    carol.until("[@alice] #2 <alice> psst back").await;

    carol.type_line("/join kitchen").await;
    carol.until("you are talking in kitchen now").await;
    carol.type_line("/rooms").await;
    let line = carol.until("rooms:").await.pop().unwrap();
    assert!(line.ends_with("* rooms: kitchen (1), lobby (2)"), "{line}");

    carol.type_line("/rename carola").await;
    carol.until("* you are carola now").await;
    alice
        .until(|m| matches!(m, ServerMsg::Renamed { to, .. } if to == "carola"))
        .await;

    carol.type_line("/leave").await;
    carol.until("[kitchen] * you left kitchen").await;
    carol.until("you are talking in lobby now").await;

    carol.type_line("/help").await;
    carol.until("/msg USER [TEXT]").await;
    carol.type_line("/dance").await;
    carol.until("! unknown command /dance").await;
    carol.type_line("/join Bad Room").await;
    carol.until("(invalid_room)").await;

    // The end of input quits: the client exits cleanly and alice sees it go.
    let rest = carol.finish().await;
    assert!(
        rest.iter().any(|l| l.contains("disconnected: bye")),
        "{rest:?}"
    );
    alice.until(|m| left(m, "carola")).await;
}

#[tokio::test]
async fn a_conversation_someone_else_starts_appears_and_msg_answers_it() {
    let server = Server::start().await;
    let mut alice = Ws::join_as(&server, "alice", "lobby").await;
    let mut carol = Chat::start(&server, "carol").await;
    alice.until(|m| joined(m, "carol")).await;

    // alice writes to carol first: carol's client joins the conversation
    // by itself and prints the message, carol typing nothing.
    alice.join_history("@alice+carol").await;
    alice
        .send(json!({"type": "send", "room": "@alice+carol", "text": "lunch?"}))
        .await;
    let lines = carol.until("<alice> lunch?").await;
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with("[@alice] * conversation with alice: /msg alice TEXT answers")),
        "{lines:?}"
    );
    assert!(
        lines
            .last()
            .unwrap()
            .ends_with("[@alice] #1 <alice> lunch?"),
        "{lines:?}"
    );

    // `/msg alice` makes it current: plain lines go there, and back.
    carol.type_line("/msg alice").await;
    carol
        .until("[@alice] * you are talking in @alice now")
        .await;
    carol.type_line("yes, at noon").await;
    let msg = alice
        .until(|m| matches!(m, ServerMsg::Message { from, .. } if from == "carol"))
        .await;
    assert!(
        matches!(&msg, ServerMsg::Message { room, text, .. }
            if room == "@alice+carol" && text == "yes, at noon"),
        "{msg:?}"
    );
    carol.until("[@alice] #2 <carol> yes, at noon").await;

    // Nobody by that name: said once, and the text goes nowhere.
    carol.type_line("/msg nobody hello?").await;
    carol.until("(unknown_user)").await;
    carol.type_line("/who").await;
    let lines = carol.until("online:").await;
    assert!(
        !lines.iter().any(|l| l.contains("not_in_room")),
        "{lines:?}"
    );
    assert!(
        lines
            .last()
            .unwrap()
            .ends_with("[@alice] * online: alice, carol"),
        "{lines:?}"
    );
    carol.finish().await;
}

#[tokio::test]
async fn search_shows_what_was_said_in_a_room_the_user_is_not_in() {
    let server = Server::start().await;
    let mut alice = Ws::join_as(&server, "alice", "kitchen").await;
    alice
        .send(json!({"type": "send", "room": "kitchen", "text": "Lunch at noon?", "client_id": "l-1"}))
        .await;
    alice.until(|m| matches!(m, ServerMsg::Ack { .. })).await;
    let mut carol = Chat::start(&server, "carol").await;

    carol.type_line("/search lunch").await;
    let head = carol.until("result for").await.pop().unwrap();
    let hit = carol.until("<alice>").await.pop().unwrap();
    assert!(
        head.ends_with("* 1 result for \"lunch\", newest first"),
        "{head}"
    );
    assert!(hit.ends_with("[kitchen] <alice> Lunch at noon?"), "{hit}");
    carol.type_line("/search #lobby lunch").await;
    carol.until("* no results for \"lunch\"").await;
    carol.type_line("/search").await;
    carol.until("! usage: /search [#ROOM] WORDS").await;
    carol.finish().await;
}

#[tokio::test]
async fn what_others_write_cannot_drive_the_terminal_or_fake_a_line() {
    let server = Server::start().await;
    let mut alice = Ws::join_as(&server, "alice", "lobby").await;
    let mut carol = Chat::start(&server, "carol").await;
    alice.until(|m| joined(m, "carol")).await;
    alice
        .send(json!({"type": "send", "room": "lobby",
                     "text": "evil\x1b[2J\r\n00:00:00 [lobby] <bob> fake\rover"}))
        .await;
    let line = carol.until("<alice> evil").await.pop().unwrap();
    assert!(
        line.ends_with("[lobby] #1 <alice> evil\u{FFFD}[2J"),
        "{line}"
    );
    // The line break continues indented; the lone CR shows as U+FFFD.
    let next = carol.until("fake").await.pop().unwrap();
    assert_eq!(next, "         00:00:00 [lobby] <bob> fake\u{FFFD}over");
    carol.finish().await;
}

#[tokio::test]
async fn the_name_is_asked_for_and_asked_again_when_taken() {
    let server = Server::start().await;
    let _alice = Ws::join_as(&server, "alice", "lobby").await;
    let url = server.url();
    let mut chat = Chat::spawn(&["--url", &url]);
    chat.until("* what is your name?").await;
    chat.type_line("Alice").await;
    chat.until("(name_taken)").await;
    chat.until("* type another name").await;
    chat.type_line("dave").await;
    chat.until("welcome, dave!").await;
    chat.until("[lobby] * online: alice").await;
    chat.finish().await;
}

#[tokio::test]
async fn it_reconnects_after_a_server_restart_and_sends_what_was_typed_meanwhile() {
    let first = Server::start().await;
    let addr = first.addr;
    let mut carol = Chat::start(&first, "carol").await;
    first.shutdown().await;
    let line = carol.until("reconnecting in").await.pop().unwrap();
    assert!(
        line.contains("disconnected: server shutting down (1001)"),
        "{line}"
    );

    // Typed while away: sent once the connection is back.
    carol.type_line("typed while away").await;
    let second = Server::start_on(&addr.to_string()).await;
    carol.until("* connected to").await;
    carol.until("[lobby] * online:").await; // rejoined by itself

    let mut bob = Ws::join_as(&second, "bob", "lobby").await;
    let seen = bob
        .until(|m| match m {
            ServerMsg::Message { text, .. } => text == "typed while away",
            ServerMsg::History { messages, .. } => {
                messages.iter().any(|h| h.text == "typed while away")
            }
            _ => false,
        })
        .await;
    assert!(!matches!(seen, ServerMsg::Error { .. }));
    carol.until("<carol> typed while away").await;
    carol.finish().await;
}

/// `GET path` on `server` over plain HTTP/1.1: the status and the body.
async fn http_get(server: &Server, path: &str) -> (u16, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        server.addr
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut answer))
        .await
        .expect("an answer within the deadline")
        .unwrap();
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a whole head");
    let head = String::from_utf8_lossy(&answer[..end]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(
        head.to_ascii_lowercase().contains("content-length"),
        "not chunked: {head}"
    );
    (status, answer[end + 4..].to_vec())
}

/// A file of `len` bytes that are not all alike, in a fresh directory.
fn temp_file(name: &str, len: usize) -> (tempfile::TempDir, std::path::PathBuf, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&path, &bytes).unwrap();
    (dir, path, bytes)
}

#[tokio::test]
async fn a_file_too_large_is_refused_with_the_servers_reason_and_nothing_is_sent() {
    let server = Server::start_with("127.0.0.1:0", |c| c.max_file_bytes = 1000).await;
    let mut alice = Ws::join_as(&server, "alice", "lobby").await;
    let mut carol = Chat::start(&server, "carol").await;
    alice.until(|m| joined(m, "carol")).await;

    // Well past the limit: refused from its Content-Length, before the body.
    let (_dir, path, _) = temp_file("big.bin", 2 * 1024 * 1024);
    carol
        .type_line(&format!("/upload {} too big", path.display()))
        .await;
    carol.until("* uploading").await;
    let line = carol.until("not sent").await.pop().unwrap();
    assert!(
        line.ends_with("big.bin not sent: the file is larger than 1000 bytes (file_too_large)"),
        "{line}"
    );
    carol.type_line("/upload /no/such/file.txt").await;
    let line = carol.until("not sent").await.pop().unwrap();
    assert!(line.contains("cannot read /no/such/file.txt"), "{line}");

    // Nothing reached the room: the next thing alice hears is this.
    carol.type_line("after").await;
    let next = alice
        .until(|m| matches!(m, ServerMsg::Message { .. }))
        .await;
    assert!(
        matches!(&next, ServerMsg::Message { text, attachments, .. }
        if text == "after" && attachments.is_empty()),
        "{next:?}"
    );
    carol.finish().await;
}

#[tokio::test]
async fn a_file_uploaded_from_the_terminal_reaches_the_room_and_a_dm_intact() {
    let server = Server::start().await;
    let mut alice = Ws::join_as(&server, "alice", "lobby").await;
    let token = alice.1.clone().expect("a guest's upload token");
    let mut carol = Chat::start(&server, "carol").await;
    alice.until(|m| joined(m, "carol")).await;

    let (_dir, path, bytes) = temp_file("report v2.bin", 5000);
    carol
        .type_line(&format!("/upload \"{}\" the report", path.display()))
        .await;
    let line = carol.until("* uploading").await.pop().unwrap();
    assert!(
        line.ends_with(&format!("* uploading {}", path.display())),
        "{line}"
    );
    let msg = alice
        .until(|m| matches!(m, ServerMsg::Message { from, .. } if from == "carol"))
        .await;
    let ServerMsg::Message {
        text, attachments, ..
    } = msg
    else {
        unreachable!()
    };
    assert_eq!(text, "the report");
    let [file] = &attachments[..] else {
        panic!("one file: {attachments:?}");
    };
    assert_eq!(
        (file.name.as_str(), file.size, file.mime.as_str()),
        ("report v2.bin", 5000, "application/octet-stream")
    );
    // Another member downloads the very bytes.
    let (status, got) = http_get(&server, &format!("/api/files/{}?token={token}", file.id)).await;
    assert_eq!(status, 200);
    assert_eq!(got, bytes);

    // carol sees her message come back: the caption, then the file's line,
    // whose link works for her as printed.
    carol.until("[lobby] #1 <carol> the report").await;
    let line = carol.until("<carol> file:").await.pop().unwrap();
    let base = format!("http://{}", server.addr);
    assert!(
        line.contains(&format!(
            "[lobby] #1 <carol> file: report v2.bin (4.9 KiB, application/octet-stream) \
             {base}/api/files/{}?token=g1.",
            file.id
        )),
        "{line}"
    );
    let link = line.rsplit(' ').next().unwrap();
    let (status, got) = http_get(&server, link.strip_prefix(&base).unwrap()).await;
    assert_eq!((status, got), (200, bytes.clone()));

    // To one user: to the private conversation with them (joined first),
    // the file and no caption; alice hears of it and finds it there.
    carol
        .type_line(&format!("/upload @alice \"{}\"", path.display()))
        .await;
    alice
        .until(|m| matches!(m, ServerMsg::Conversation { .. }))
        .await;
    // Told as soon as it is said; stored once carol sees it come back.
    carol.until("[@alice] #1 <carol> file: report v2.bin").await;
    let dm = alice.join_history("@alice+carol").await;
    assert!(
        matches!(&dm, ServerMsg::History { messages, .. }
            if messages.len() == 1 && messages[0].from == "carol"
                && messages[0].text.is_empty() && messages[0].attachments.len() == 1
                && messages[0].attachments[0].size == 5000),
        "{dm:?}"
    );
    let rest = carol.finish().await;
    assert!(
        rest.iter().any(|l| l.contains("disconnected: bye")),
        "{rest:#?}"
    );
}

/// Needs the server side of edits, deletions, reactions, replies and
/// mentions (docs/protocol.md, "Edits, deletions and reactions").
#[tokio::test]
async fn messages_are_answered_edited_reacted_to_and_deleted_from_the_terminal() {
    use hubbub_protocol::Event;
    let server = Server::start().await;
    let mut alice = Ws::join_as(&server, "alice", "lobby").await;
    let mut carol = Chat::start(&server, "carol").await;
    alice.until(|m| joined(m, "carol")).await;
    alice
        .send(json!({"type": "send", "room": "lobby", "text": "are we on?"}))
        .await;
    carol.until("[lobby] #1 <alice> are we on?").await;

    carol.type_line("/reply yes, tomorrow").await;
    carol
        .until("[lobby] #2 <carol> ↳ #1 alice: are we on? | yes, tomorrow")
        .await;
    let reply = alice
        .until(|m| matches!(m, ServerMsg::Message { from, .. } if from == "carol"))
        .await;
    assert!(
        matches!(&reply, ServerMsg::Message { reply_to: Some(q), .. } if q.seq == 1),
        "{reply:?}"
    );
    carol.type_line("/edit yes, at 9").await;
    carol.until("[lobby] * carol edited #2: yes, at 9").await;
    carol.type_line("/react 🎉").await;
    carol.until("[lobby] * carol reacted 🎉 to #1").await;
    carol.type_line("/delete").await;
    carol.until("[lobby] * carol deleted #2").await;
    for want in ["edit", "react", "delete"] {
        let got = alice
            .until(|m| matches!(m, ServerMsg::Message { event: Some(_), .. }))
            .await;
        let ServerMsg::Message {
            event: Some(event), ..
        } = got
        else {
            unreachable!()
        };
        let kind = match event {
            Event::Edit { target: 2 } => "edit",
            Event::React { target: 1, .. } => "react",
            Event::Delete { target: 2 } => "delete",
            other => panic!("{other:?}"),
        };
        assert_eq!(kind, want);
    }

    // A mention of carol is marked on her screen.
    alice
        .send(json!({"type": "send", "room": "lobby", "text": "@carol look"}))
        .await;
    carol.until("@ [lobby] #6 <alice> @carol look").await;
    carol.finish().await;
}
