//! The raw TCP gateway: `nc` users and WebSocket users in the same rooms.
//!
//! Each test starts a real server with the gateway on 127.0.0.1:0 and talks
//! to it with a plain TCP socket, line by line, as `nc` would. Waiting is by
//! reading until an expected line arrives, bounded by [`common::DEADLINE`].

mod common;

use std::net::SocketAddr;

use common::{http_raw, joined, left, register, tab, Body, Client, DEADLINE};
use hubbub::config::StoreKind;
use hubbub::Config;
use hubbub_protocol::{Event, ServerMsg};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A server with the gateway enabled.
struct Server {
    addr: SocketAddr,
    tcp: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
    /// Where uploaded files are kept; removed when dropped.
    _data: tempfile::TempDir,
}

impl Server {
    async fn start(tweak: impl FnOnce(&mut Config)) -> Server {
        let data = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gateway = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tcp = gateway.local_addr().unwrap();
        let mut config = Config {
            store: StoreKind::Memory,
            data_dir: data.path().to_path_buf(),
            ..Config::default()
        };
        tweak(&mut config);
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(hubbub::run_with_gateway(
            listener,
            Some(gateway),
            config,
            async {
                let _ = rx.await;
            },
        ));
        Server {
            addr,
            tcp,
            shutdown: Some(tx),
            task,
            _data: data,
        }
    }

    async fn default() -> Server {
        Server::start(|_| {}).await
    }

    /// A WebSocket user who said hello as `name` and joined `lobby`.
    async fn ws_in_lobby(&self, name: &str) -> Client {
        let mut client = Client::connect(&format!("ws://{}/ws", self.addr)).await;
        client.hello(name).await;
        client.join("lobby").await;
        client
    }

    /// A TCP user who picked `name` (and so is in `lobby`).
    async fn nc(&self, name: &str) -> Nc {
        let mut nc = Nc::connect(self.tcp).await;
        nc.until("what is your name?").await;
        nc.send(name).await;
        nc.until("you are talking in lobby now").await;
        nc
    }

    async fn shutdown(mut self) {
        self.shutdown.take().unwrap().send(()).unwrap();
        tokio::time::timeout(DEADLINE, &mut self.task)
            .await
            .expect("server stopped in time")
            .unwrap()
            .unwrap();
    }
}

/// A line-based TCP client, as `nc` is.
struct Nc {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Nc {
    async fn connect(addr: SocketAddr) -> Nc {
        let (reader, writer) = TcpStream::connect(addr).await.unwrap().into_split();
        Nc {
            reader: BufReader::new(reader),
            writer,
        }
    }

    async fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\n").as_bytes()).await;
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.unwrap();
    }

    /// The next line (without its end), or `None` at the end of the stream.
    async fn line(&mut self) -> Option<String> {
        let mut line = String::new();
        let n = tokio::time::timeout(DEADLINE, self.reader.read_line(&mut line))
            .await
            .expect("a line within the deadline")
            .expect("read ok");
        (n > 0).then(|| line.trim_end_matches('\n').to_string())
    }

    /// Lines up to and including the first that contains `needle`.
    async fn until(&mut self, needle: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            match self.line().await {
                Some(line) => {
                    let done = line.contains(needle);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                None => panic!("the stream ended before {needle:?}; saw {seen:#?}"),
            }
        }
    }

    /// Every line until the server closes the stream.
    async fn until_end(&mut self) -> Vec<String> {
        let mut seen = Vec::new();
        while let Some(line) = self.line().await {
            seen.push(line);
        }
        seen
    }
}

/// Whether `line` is `HH:MM:SS rest`.
fn stamped(line: &str, rest: &str) -> bool {
    let (clock, tail) = line.split_at(line.len().min(9));
    clock.len() == 9
        && clock.as_bytes()[2] == b':'
        && clock.as_bytes()[5] == b':'
        && clock.ends_with(' ')
        && tail == rest
}

#[tokio::test]
async fn the_gateway_is_off_by_default() {
    assert_eq!(Config::default().tcp_listen, None);
}

#[tokio::test]
async fn tcp_and_websocket_users_chat_both_ways_and_see_each_others_notices() {
    let server = Server::default().await;
    let mut bob = server.nc("bob").await;
    let mut alice = Client::connect(&format!("ws://{}/ws", server.addr)).await;
    alice.hello("alice").await;

    // bob (TCP) sees alice (WebSocket) come online; she finds him there.
    assert_eq!(alice.join("lobby").await, ["bob"]);
    let line = bob.until("alice joined").await.pop().unwrap();
    assert!(stamped(&line, "[lobby] * alice joined"), "{line}");

    // WebSocket → TCP.
    alice.say("lobby", "hi bob", "c-1").await;
    let line = bob.until("<alice>").await.pop().unwrap();
    assert!(stamped(&line, "[lobby] #1 <alice> hi bob"), "{line}");

    // TCP → WebSocket; bob sees his own line come back like everyone else.
    bob.send("hello alice").await;
    let got = alice
        .recv_until(|m| matches!(m, ServerMsg::Message { .. }))
        .await;
    match got {
        ServerMsg::Message {
            room, from, text, ..
        } => assert_eq!(
            (room.as_str(), from.as_str(), text.as_str()),
            ("lobby", "bob", "hello alice")
        ),
        other => panic!("{other:?}"),
    }
    let line = bob.until("<bob>").await.pop().unwrap();
    assert!(stamped(&line, "[lobby] #2 <bob> hello alice"), "{line}");

    // Another TCP user comes and goes: the WebSocket user sees both notices.
    let mut carol = server.nc("carol").await;
    alice.recv_until(|m| joined(m, "lobby", "carol")).await;
    carol.send("/quit").await;
    let lines = carol.until_end().await;
    assert!(lines.last().unwrap().ends_with("* bye"), "{lines:?}");
    alice.recv_until(|m| left(m, "lobby", "carol")).await;

    // The WebSocket user leaves: the TCP user sees the offline notice.
    alice.send(json!({"type": "quit"})).await;
    let line = bob.until("alice left").await.pop().unwrap();
    assert!(stamped(&line, "[lobby] * alice left"), "{line}");
}

#[tokio::test]
async fn the_name_prompt_repeats_until_a_valid_free_name() {
    let server = Server::default().await;
    let _alice = server.ws_in_lobby("alice").await;
    let mut nc = Nc::connect(server.tcp).await;
    nc.until("what is your name?").await;

    nc.send("no spaces please").await;
    nc.until("(invalid_name)").await;
    nc.until("what is your name?").await;

    // Names are unique ignoring case, across transports.
    nc.send("ALICE").await;
    nc.until("(name_taken)").await;
    nc.until("what is your name?").await;

    nc.send("  bob  ").await;
    nc.until("welcome, bob!").await;
    let lines = nc.until("you are talking in lobby now").await;
    assert!(
        lines.iter().any(|l| l.ends_with("[lobby] * online: alice")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn every_slash_command() {
    let server = Server::default().await;
    let mut alice = server.ws_in_lobby("alice").await;
    alice.send(json!({"type": "join", "room": "kitchen"})).await;
    alice
        .recv_until(|m| matches!(m, ServerMsg::Presence { room, .. } if room == "kitchen"))
        .await;
    let mut bob = server.nc("bob").await;
    alice.recv_until(|m| joined(m, "lobby", "bob")).await;

    // /help
    bob.send("/help").await;
    let lines = bob.until("/help ").await;
    for command in [
        "/join ROOM",
        "/leave",
        "/who",
        "/rooms",
        "/msg USER [TEXT]",
        "/search [#ROOM] WORDS",
        "/rename NAME",
        "/quit",
    ] {
        assert!(
            lines.iter().any(|l| l.contains(command)),
            "{command} in {lines:?}"
        );
    }

    // /who (the current room, or the one named)
    bob.send("/who").await;
    let line = bob.until("online:").await.pop().unwrap();
    assert!(line.ends_with("[lobby] * online: alice, bob"), "{line}");
    bob.send("/who kitchen").await;
    let line = bob.until("online:").await.pop().unwrap();
    assert!(line.ends_with("[kitchen] * online: alice"), "{line}");

    // /join switches the current room: plain lines now go to kitchen.
    bob.send("/join #kitchen").await;
    bob.until("you are talking in kitchen now").await;
    alice.recv_until(|m| joined(m, "kitchen", "bob")).await;
    bob.send("in the kitchen").await;
    match alice
        .recv_until(|m| matches!(m, ServerMsg::Message { .. }))
        .await
    {
        ServerMsg::Message { room, text, .. } => {
            assert_eq!(
                (room.as_str(), text.as_str()),
                ("kitchen", "in the kitchen")
            )
        }
        other => panic!("{other:?}"),
    }

    // /rooms
    bob.send("/rooms").await;
    let line = bob.until("* rooms:").await.pop().unwrap();
    assert!(line.ends_with("* rooms: kitchen (2), lobby (2)"), "{line}");

    // /msg: said in the private conversation with alice, joined first;
    // alice hears of it. (More in `private_conversations_over_tcp`.)
    bob.send("/msg Alice psst, alice").await;
    let line = bob.until("<bob> psst").await.pop().unwrap();
    assert!(line.ends_with("[@alice] #1 <bob> psst, alice"), "{line}");
    alice
        .recv_until(
            |m| matches!(m, ServerMsg::Conversation { room, with } if room == "@alice+bob" && with == "bob"),
        )
        .await;
    bob.send("/msg nobody hello?").await;
    bob.until("(unknown_user)").await;

    // /rename: bob is told, and alice sees it in both shared rooms.
    bob.send("/rename bobby").await;
    bob.until("* you are bobby now").await;
    let renamed = alice
        .recv_until(|m| matches!(m, ServerMsg::Renamed { .. }))
        .await;
    assert!(
        matches!(&renamed, ServerMsg::Renamed { from, to, .. } if from == "bob" && to == "bobby"),
        "{renamed:?}"
    );
    bob.send("/rename alice").await;
    bob.until("(name_taken)").await;

    // /leave: the current room by default; then the remaining one is current.
    bob.send("/leave").await;
    bob.until("[kitchen] * you left kitchen").await;
    bob.until("you are talking in lobby now").await;
    alice.recv_until(|m| left(m, "kitchen", "bobby")).await;
    bob.send("/leave lobby").await;
    bob.until("you are in no room now").await;
    bob.send("anyone?").await;
    bob.until("! you are in no room: /join ROOM first").await;
    bob.send("/who").await;
    bob.until("! usage: /who ROOM").await;

    // Usage errors and unknown commands.
    bob.send("/join").await;
    bob.until("! usage: /join ROOM").await;
    bob.send("/msg").await;
    bob.until("! usage: /msg USER [TEXT]").await;
    bob.send("/msg bobby hi").await;
    bob.until("! that is you: /msg someone else").await;
    bob.send("/dance").await;
    bob.until("! unknown command /dance").await;
    bob.send("/join Not A Room").await;
    bob.until("(invalid_room)").await;

    // `//` says a line that starts with a slash.
    bob.send("/join lobby").await;
    bob.until("you are talking in lobby now").await;
    bob.send("//shrug").await;
    let line = bob.until("<bobby>").await.pop().unwrap();
    assert!(line.ends_with("[lobby] #1 <bobby> /shrug"), "{line}");

    // /quit: a last line, then the server closes; alice hears the offline notice.
    bob.send("/quit").await;
    let lines = bob.until_end().await;
    assert!(lines.last().unwrap().ends_with("* bye"), "{lines:?}");
    alice.recv_until(|m| left(m, "lobby", "bobby")).await;
}

#[tokio::test]
async fn a_silent_tcp_user_is_closed_after_the_idle_timeout() {
    let server = Server::start(|c| c.idle_timeout = std::time::Duration::from_millis(300)).await;
    let mut bob = server.nc("bob").await;
    let lines = bob.until_end().await;
    assert!(
        lines.last().unwrap().contains("* idle timeout"),
        "{lines:?}"
    );
    // Gone from the hub: the name is free again.
    let mut again = server.nc("bob").await;
    again.send("/who").await;
    again.until("online:").await;
}

#[tokio::test]
async fn a_flood_from_tcp_is_rate_limited_then_closed() {
    let server = Server::start(|c| {
        c.rate = 1.0;
        c.burst = 5;
    })
    .await;
    let mut alice = server.ws_in_lobby("alice").await;
    let mut bob = server.nc("bob").await;
    // (A join and a leave within one presence interval would cancel out.)
    alice.recv_until(|m| joined(m, "lobby", "bob")).await;
    let flood: String = (0..40).map(|i| format!("flood {i}\n")).collect();
    bob.send_raw(flood.as_bytes()).await;
    let lines = bob.until_end().await;
    assert!(
        lines.iter().any(|l| l.contains("(rate_limited)")),
        "{lines:?}"
    );
    assert!(
        lines.last().unwrap().contains("too many requests: closing"),
        "{lines:?}"
    );
    // The room saw only what the bucket let through.
    let seen = alice.collect_until(|m| left(m, "lobby", "bob")).await;
    let floods = seen
        .iter()
        .filter(|m| matches!(m, ServerMsg::Message { from, .. } if from == "bob"))
        .count();
    assert!((1..=5).contains(&floods), "{floods} messages: {seen:?}");
}

#[tokio::test]
async fn long_lines_bad_utf8_and_control_characters_are_handled() {
    let server = Server::start(|c| c.max_frame_bytes = 1024).await;
    let mut alice = server.ws_in_lobby("alice").await;
    let mut bob = server.nc("bob").await;

    // An over-long line is dropped with an error line; the connection stays.
    let long = format!("{}\n", "x".repeat(5000));
    bob.send_raw(long.as_bytes()).await;
    bob.until("! line longer than 1024 bytes: dropped").await;

    // Invalid UTF-8 becomes U+FFFD, control characters are stripped, CRLF is fine.
    bob.send_raw(b"caf\xe9 \x1b[31mred\x07\ttab\r\n").await;
    match alice
        .recv_until(|m| matches!(m, ServerMsg::Message { .. }))
        .await
    {
        ServerMsg::Message { text, .. } => assert_eq!(text, "caf\u{FFFD} [31mred\ttab"),
        other => panic!("{other:?}"),
    }

    // What others send cannot drive bob's terminal or fake a line.
    alice
        .say("lobby", "evil\x1b[2J\n00:00:00 [lobby] <carol> fake", "c-1")
        .await;
    let line = bob.until("<alice>").await.pop().unwrap();
    assert!(
        line.ends_with("[lobby] #2 <alice> evil\u{FFFD}[2J"),
        "{line}"
    );
    let next = bob.line().await.unwrap();
    assert_eq!(next, "         00:00:00 [lobby] <carol> fake");

    // A lone carriage return would move bob's cursor back over the line:
    // it shows as U+FFFD, like any other control character.
    alice.say("lobby", "real\rfake", "c-2").await;
    let line = bob.until("<alice> real").await.pop().unwrap();
    assert!(
        line.ends_with("[lobby] #3 <alice> real\u{FFFD}fake"),
        "{line}"
    );

    // Still chatting after all that.
    bob.send("still here").await;
    bob.until("<bob> still here").await;
}

#[tokio::test]
async fn shutdown_tells_tcp_users_and_closes_them() {
    let server = Server::default().await;
    let mut bob = server.nc("bob").await;
    bob.send("/who").await;
    bob.until("online:").await;
    server.shutdown().await;
    let lines = bob.until_end().await;
    assert!(
        lines.last().unwrap().ends_with("* server shutting down"),
        "{lines:?}"
    );
}

#[tokio::test]
async fn files_show_as_lines_whose_links_work_for_the_tcp_user() {
    let server = Server::default().await;
    let mut bob = server.nc("bob").await;
    let mut alice = Client::connect(&format!("ws://{}/ws", server.addr)).await;
    let ServerMsg::Welcome {
        upload_token: Some(token),
        ..
    } = alice.hello("alice").await
    else {
        panic!("a guest gets an upload token");
    };
    alice.join("lobby").await;
    bob.until("alice joined").await;

    let bytes: Vec<u8> = (0..3000u32).map(|i| (i * 13 % 251) as u8).collect();
    let uploaded = http_raw(
        server.addr,
        "POST",
        "/api/files?name=notes%20v2.bin",
        &[("Authorization", &format!("Bearer {token}"))],
        Body::Sized(&bytes),
    )
    .await;
    assert_eq!(uploaded.status, 201, "{:?}", uploaded);
    let id = uploaded.json()["id"].as_str().unwrap().to_string();
    alice
        .send(json!({"type": "send", "room": "lobby", "text": "",
                     "client_id": "f-1", "attachments": [id]}))
        .await;

    // No caption line; the file's line, with a link.
    let line = bob.until("<alice>").await.pop().unwrap();
    let prefix = format!(
        "[lobby] #1 <alice> file: notes v2.bin (2.9 KiB, application/octet-stream) \
         http://{}/api/files/{id}?token=g1.",
        server.addr
    );
    assert!(line[9..].starts_with(&prefix), "{line}");
    let url = line.rsplit(' ').next().unwrap();
    let path = url
        .strip_prefix(&format!("http://{}", server.addr))
        .unwrap();
    let fetched = http_raw(server.addr, "GET", path, &[], Body::None).await;
    assert_eq!(fetched.status, 200, "{fetched:?}");
    assert_eq!(fetched.body, bytes, "the same bytes");
}

#[tokio::test]
async fn upload_on_the_gateway_says_where_files_can_be_sent_from() {
    let server = Server::default().await;
    let mut bob = server.nc("bob").await;
    bob.send("/upload ./cat.png look").await;
    let line = bob.until("! ").await.pop().unwrap();
    assert!(
        stamped(
            &line,
            "! /upload sends a file from your own computer, which this connection \
             cannot read: use hubbub-chat or the web app to send files"
        ),
        "{line}"
    );
    bob.send("/help").await;
    bob.until("/upload PATH [TEXT]").await;
}

#[tokio::test]
async fn search_finds_stored_messages_of_every_room_as_lines() {
    let server = Server::start(|c| c.store = StoreKind::Sqlite).await;
    let mut alice = server.ws_in_lobby("alice").await;
    alice.send(json!({"type": "join", "room": "kitchen"})).await;
    alice
        .recv_until(|m| matches!(m, ServerMsg::Presence { room, .. } if room == "kitchen"))
        .await;
    alice.say("lobby", "Lunch at noon?", "l-1").await;
    alice.say("kitchen", "the lunch\nis ready", "l-2").await;
    alice.say("kitchen", "dinner later", "l-3").await;
    let mut bob = server.nc("bob").await;

    // Both rooms, the newest first, each hit at the time it was said.
    bob.send("/search LUNCH").await;
    let head = bob.until("results for").await.pop().unwrap();
    assert!(
        stamped(&head, "* 2 results for \"LUNCH\", newest first"),
        "{head}"
    );
    let first = bob.line().await.unwrap();
    assert!(stamped(&first, "[kitchen] <alice> the lunch"), "{first}");
    // A line break in a message continues on an indented line.
    assert_eq!(bob.line().await.unwrap(), "         is ready");
    let second = bob.line().await.unwrap();
    assert!(
        stamped(&second, "[lobby] <alice> Lunch at noon?"),
        "{second}"
    );

    // Only one room; nothing found; what is wrong with a query.
    bob.send("/search #lobby lunch").await;
    bob.until("* 1 result for \"lunch\"").await;
    let only = bob.line().await.unwrap();
    assert!(stamped(&only, "[lobby] <alice> Lunch at noon?"), "{only}");
    bob.send("/find breakfast").await;
    bob.until("* no results for \"breakfast\"").await;
    bob.send("/search").await;
    let line = bob.until("! ").await.pop().unwrap();
    assert!(stamped(&line, "! usage: /search [#ROOM] WORDS"), "{line}");
    bob.send("/search ***").await;
    let line = bob.until("! ").await.pop().unwrap();
    assert!(line.ends_with("(bad_field)"), "{line}");

    // More than a page: the newest 20, and a word on how to see fewer.
    for i in 0..21 {
        alice
            .say("lobby", &format!("ping {i}"), &format!("p-{i}"))
            .await;
    }
    // (bob is in lobby: the live messages first.)
    bob.until("> ping 20").await;
    bob.send("/search ping").await;
    let lines = bob.until("showing the newest").await;
    assert!(lines
        .iter()
        .any(|l| l.ends_with("* 20 results for \"ping\", newest first")));
    assert_eq!(lines.iter().filter(|l| l.contains("> ping ")).count(), 20);
    assert!(
        stamped(
            lines.last().unwrap(),
            "* showing the newest 20; add words to narrow the search"
        ),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.ends_with("> ping 0")),
        "the oldest is left out"
    );
    server.shutdown().await;
}

/// The next `message` frame from `from` that is an event (`event` set) or not.
fn message_from(msg: &ServerMsg, who: &str, is_event: bool) -> bool {
    matches!(msg, ServerMsg::Message { from, event, .. } if from == who && event.is_some() == is_event)
}

#[tokio::test]
async fn message_commands_say_what_is_wrong_before_sending_anything() {
    let server = Server::default().await;
    let mut alice = server.ws_in_lobby("alice").await;
    let mut bob = server.nc("bob").await;
    alice.recv_until(|m| joined(m, "lobby", "bob")).await;

    // Nothing shown yet to default to: how to name a message instead.
    bob.send("/edit hello").await;
    let line = bob.until("! ").await.pop().unwrap();
    assert!(
        stamped(
            &line,
            "! no message of yours shown in this room yet: name one, /edit #SEQ TEXT"
        ),
        "{line}"
    );
    bob.send("/react 👍").await;
    bob.until("! no message by someone else shown in this room yet: name one, /react #SEQ EMOJI")
        .await;
    // Not one emoji: refused here, with the ones to try.
    bob.send("/react #1 thumbs up").await;
    let line = bob.until("! ").await.pop().unwrap();
    assert!(
        stamped(
            &line,
            "! a reaction is one emoji: react with one emoji, e.g. 👍 ❤️ 😂 🎉 😮 😢"
        ),
        "{line}"
    );
    bob.send("/delete 3").await;
    bob.until("! usage: /delete [#SEQ]").await;
    bob.send("/reply #2").await;
    bob.until("! usage: /reply [#SEQ] TEXT").await;
    bob.send("/help").await;
    for usage in [
        "/reply [#SEQ] TEXT",
        "/edit [#SEQ] TEXT",
        "/delete [#SEQ]",
        "/react [#SEQ] EMOJI",
        "/unreact [#SEQ] EMOJI",
    ] {
        bob.until(usage).await;
    }

    // None of it reached the room: the next message alice hears is this.
    bob.send("still here").await;
    let next = alice
        .recv_until(|m| matches!(m, ServerMsg::Message { .. }))
        .await;
    assert!(
        matches!(&next, ServerMsg::Message { text, event: None, .. } if text == "still here"),
        "{next:?}"
    );
}

/// Needs the server side of edits, deletions, reactions, replies and
/// mentions (docs/protocol.md, "Edits, deletions and reactions").
#[tokio::test]
async fn a_tcp_user_replies_edits_deletes_and_reacts_and_everyone_sees_it() {
    let server = Server::default().await;
    let mut alice = server.ws_in_lobby("alice").await;
    let mut bob = server.nc("bob").await;
    alice.recv_until(|m| joined(m, "lobby", "bob")).await;

    let first = alice.say("lobby", "are we on?", "a-1").await;
    let line = bob.until("<alice>").await.pop().unwrap();
    assert!(
        stamped(&line, &format!("[lobby] #{first} <alice> are we on?")),
        "{line}"
    );

    // /reply without #SEQ answers the last message by someone else; the
    // quote shows on the reply's line.
    bob.send("/reply yes, tomorrow").await;
    let line = bob.until("<bob>").await.pop().unwrap();
    let reply = match alice.recv_until(|m| message_from(m, "bob", false)).await {
        ServerMsg::Message {
            seq,
            text,
            reply_to: Some(quote),
            ..
        } => {
            assert_eq!(
                (
                    text.as_str(),
                    quote.seq,
                    quote.from.as_str(),
                    quote.text.as_str()
                ),
                ("yes, tomorrow", first, "alice", "are we on?")
            );
            seq
        }
        other => panic!("a reply: {other:?}"),
    };
    assert!(
        stamped(
            &line,
            &format!("[lobby] #{reply} <bob> ↳ #{first} alice: are we on? | yes, tomorrow")
        ),
        "{line}"
    );

    // /edit without #SEQ changes bob's own last message.
    bob.send("/edit yes, tomorrow at 9").await;
    let line = bob.until("edited").await.pop().unwrap();
    assert!(
        stamped(
            &line,
            &format!("[lobby] * bob edited #{reply}: yes, tomorrow at 9")
        ),
        "{line}"
    );
    let edit = alice.recv_until(|m| message_from(m, "bob", true)).await;
    assert!(
        matches!(&edit, ServerMsg::Message { text, event: Some(Event::Edit { target }), .. }
            if text == "yes, tomorrow at 9" && *target == reply),
        "{edit:?}"
    );

    // /react without #SEQ: the last message by someone else; /unreact with one.
    bob.send("/react 👍").await;
    bob.until(&format!("[lobby] * bob reacted 👍 to #{first}"))
        .await;
    let react = alice.recv_until(|m| message_from(m, "bob", true)).await;
    assert!(
        matches!(&react, ServerMsg::Message { event: Some(Event::React { target, emoji, on: true }), .. }
            if *target == first && emoji == "👍"),
        "{react:?}"
    );
    bob.send(&format!("/unreact #{first} 👍")).await;
    bob.until(&format!("[lobby] * bob took back 👍 from #{first}"))
        .await;

    // A newcomer's history replays the same lines, in order. (The reply
    // itself may come with its latest text or as said, the edit following:
    // either way it reads as edited.)
    let lines = newcomer(&server, "carol").await;
    let mut shown = room_lines(&lines);
    let replied = format!("[lobby] #{reply} <bob> ↳ #{first} alice: are we on? | yes, tomorrow");
    assert!(
        shown.len() > 1 && shown[1].starts_with(&replied),
        "{lines:#?}"
    );
    shown.remove(1);
    let want = [
        format!("[lobby] #{first} <alice> are we on?"),
        format!("[lobby] * bob edited #{reply}: yes, tomorrow at 9"),
        format!("[lobby] * bob reacted 👍 to #{first}"),
        format!("[lobby] * bob took back 👍 from #{first}"),
    ];
    assert_eq!(shown, want, "{lines:#?}");

    // Someone else's message is not bob's to change.
    bob.send(&format!("/edit #{first} hijacked")).await;
    bob.until("(not_author)").await;
    bob.send(&format!("/delete #{first}")).await;
    bob.until("(not_author)").await;
    bob.send("/react #9999 👍").await;
    bob.until("(unknown_message)").await;

    // /delete without #SEQ: bob's last; then he has none left here.
    bob.send("/delete").await;
    bob.until(&format!("[lobby] * bob deleted #{reply}")).await;
    bob.send("/delete").await;
    bob.until("! no message of yours shown in this room yet")
        .await;

    // A message that mentions bob is marked for him, and for nobody else.
    let mention = alice.say("lobby", "@bob look", "a-2").await;
    let line = bob.until("@bob look").await.pop().unwrap();
    assert!(
        stamped(&line, &format!("@ [lobby] #{mention} <alice> @bob look")),
        "{line}"
    );

    // Later, the deleted reply is a tombstone: its words are gone.
    let lines = newcomer(&server, "dave").await;
    let shown = room_lines(&lines);
    let tombstone = shown
        .iter()
        .find(|l| l.starts_with(&format!("[lobby] #{reply} <bob> ")))
        .expect("the deleted reply's line");
    assert!(tombstone.ends_with("(deleted)"), "{lines:#?}");
    assert!(shown.contains(&format!("[lobby] * bob deleted #{reply}")));
    assert!(shown.contains(&format!("[lobby] #{mention} <alice> @bob look")));
}

/// A TCP user who picks `name` now: every line up to being in `lobby`
/// (its `history` included).
async fn newcomer(server: &Server, name: &str) -> Vec<String> {
    let mut nc = Nc::connect(server.tcp).await;
    nc.until("what is your name?").await;
    nc.send(name).await;
    nc.until("you are talking in lobby now").await
}

/// The room messages and events among `lines`, without their clocks.
fn room_lines(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l[9..].to_string())
        .filter(|l| l.starts_with("[lobby] #") || l.starts_with("[lobby] * bob "))
        .collect()
}

/// A signed-in WebSocket user: registers `name` and connects with its
/// login's bearer token; also gives that token, to connect again.
async fn account(server: &Server, name: &str) -> (Client, String) {
    let bearer = register(server.addr, name).await;
    (tab(server.addr, &bearer).await, bearer)
}

#[tokio::test]
async fn private_conversations_over_tcp() {
    let server = Server::default().await;
    let (mut bob, bearer) = account(&server, "Bob").await;
    let mut alice = server.nc("alice").await;
    let mut carol = server.nc("carol").await;

    // alice (nc) writes to bob (an account on the web): the gateway joins
    // the conversation first, then says it there.
    alice.send("/msg bob hi").await;
    let line = alice.until("<alice> hi").await.pop().unwrap();
    assert!(stamped(&line, "[@bob] #1 <alice> hi"), "{line}");
    // bob hears of it with nothing asked, joins it and reads it.
    let news = bob
        .recv_until(|m| matches!(m, ServerMsg::Conversation { .. }))
        .await;
    assert_eq!(
        news,
        ServerMsg::Conversation {
            room: "@alice+bob".into(),
            with: "alice".into()
        }
    );
    match bob.join_with_history("@alice+bob").await {
        ServerMsg::History { messages, .. } => {
            let said: Vec<(&str, &str)> = messages
                .iter()
                .map(|m| (m.from.as_str(), m.text.as_str()))
                .collect();
            assert_eq!(said, [("alice", "hi")]);
        }
        other => panic!("{other:?}"),
    }
    // bob answers; alice sees it live, as a line of the conversation.
    bob.say("@alice+bob", "hey alice", "b-1").await;
    let line = alice.until("<Bob>").await.pop().unwrap();
    assert!(stamped(&line, "[@bob] #2 <Bob> hey alice"), "{line}");

    // bob comes back later: the conversation is listed and its history kept.
    bob.send(json!({"type": "quit"})).await;
    let mut bob = tab(server.addr, &bearer).await;
    bob.send(json!({"type": "conversations"})).await;
    let listed = bob
        .recv_until(|m| matches!(m, ServerMsg::Conversations { .. }))
        .await;
    assert!(
        matches!(&listed, ServerMsg::Conversations { conversations }
            if conversations.len() == 1
                && conversations[0].room == "@alice+bob"
                && conversations[0].with == "alice"
                && conversations[0].online
                && conversations[0].last_seq == 2),
        "{listed:?}"
    );
    match bob.join_with_history("@alice+bob").await {
        ServerMsg::History { messages, .. } => {
            let texts: Vec<&str> = messages.iter().map(|m| m.text.as_str()).collect();
            assert_eq!(texts, ["hi", "hey alice"]);
        }
        other => panic!("{other:?}"),
    }

    // carol (nc) gets the conversation alice starts live, typing nothing:
    // the gateway joins it when the server announces it.
    alice.send("/msg Carol psst").await;
    let lines = carol.until("<alice> psst").await;
    assert!(
        lines.iter().any(|l| stamped(
            l,
            "[@alice] * conversation with alice: /msg alice TEXT answers"
        )),
        "{lines:?}"
    );
    assert!(
        stamped(lines.last().unwrap(), "[@alice] #1 <alice> psst"),
        "{lines:?}"
    );
    // `/msg alice` alone makes it current: plain lines go there.
    carol.send("/msg alice").await;
    carol
        .until("[@alice] * you are talking in @alice now")
        .await;
    carol.send("psst back").await;
    let line = alice.until("<carol>").await.pop().unwrap();
    assert!(stamped(&line, "[@carol] #2 <carol> psst back"), "{line}");
    // alice's current room is still lobby: the joins did not move it.
    alice.send("in the lobby").await;
    let line = alice.until("<alice> in the lobby").await.pop().unwrap();
    assert!(stamped(&line, "[lobby] #1 <alice> in the lobby"), "{line}");

    // Someone else's conversation is not for carol.
    carol.send("/join @alice+bob").await;
    carol.until("(forbidden)").await;
    // Nobody by that name: the join's refusal is said once, the text is
    // not sent (no `not_in_room` after it).
    carol.send("/msg nobody hello?").await;
    carol.until("(unknown_user)").await;
    carol.send("/who").await;
    let lines = carol.until("online:").await;
    assert!(
        !lines.iter().any(|l| l.contains("not_in_room")),
        "{lines:?}"
    );
    assert!(
        stamped(lines.last().unwrap(), "[@alice] * online: alice, carol"),
        "{lines:?}"
    );

    // carol (a guest) leaves: her conversation with alice ends with her
    // name, and alice's gateway says so.
    carol.send("/quit").await;
    carol.until_end().await;
    alice.until("[@carol] * you left @carol").await;
    server.shutdown().await;
}
