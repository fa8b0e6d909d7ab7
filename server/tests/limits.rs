//! Bad input and limits: each class gets its own error or close code, and a
//! healthy neighbour in the same room keeps receiving everything.

mod common;

use common::{joined, left, Client, Ended, TestServer};
use hubbub_protocol::{close, ServerMsg};
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::{Bytes, Message};

/// alice (the offender) and bob (the neighbour) in lobby, notices drained.
async fn pair(server: &TestServer) -> (Client, Client) {
    let mut alice = server.join_as("alice").await;
    let mut bob = server.join_as("bob").await;
    alice.join("lobby").await;
    bob.join("lobby").await;
    alice.recv_until(|m| joined(m, "lobby", "bob")).await;
    bob.recv_until(|m| joined(m, "lobby", "bob")).await;
    (alice, bob)
}

/// bob still gets alice's messages, and alice's connection still works.
async fn both_still_work(alice: &mut Client, bob: &mut Client, n: u64) {
    let seq = alice
        .say("lobby", &format!("still here {n}"), &format!("ok-{n}"))
        .await;
    let got = bob
        .recv_until(|m| matches!(m, ServerMsg::Message { .. }))
        .await;
    assert!(
        matches!(got, ServerMsg::Message { seq: s, .. } if s == seq),
        "{got:?}"
    );
}

#[tokio::test]
async fn each_bad_request_gets_its_error_code_and_nothing_breaks() {
    let server = TestServer::start(|c| c.max_rooms = 2).await;
    let (mut alice, mut bob) = pair(&server).await;
    let cases: Vec<(Message, &str)> = vec![
        (Message::text("{not json"), "bad_json"),
        (Message::text("[1,2,3]"), "bad_json"),
        (Message::text(r#"{"room":"lobby"}"#), "missing_type"),
        (Message::text(r#"{"type":"dance"}"#), "unknown_type"),
        (
            Message::text(r#"{"type":"send","room":"lobby"}"#),
            "bad_field",
        ),
        (Message::text(r#"{"type":"join","room":42}"#), "bad_field"),
        (
            Message::binary(Bytes::from_static(b"\x00\x01")),
            "binary_unsupported",
        ),
        (
            Message::text(r#"{"type":"hello","name":"again"}"#),
            "already_hello",
        ),
        (
            Message::text(r#"{"type":"join","room":"Not Valid"}"#),
            "invalid_room",
        ),
        (
            Message::text(r#"{"type":"send","room":"elsewhere","text":"x"}"#),
            "not_in_room",
        ),
        (
            Message::text(r#"{"type":"leave","room":"elsewhere"}"#),
            "not_in_room",
        ),
        (
            Message::text(r#"{"type":"send","room":"lobby","text":"  \n "}"#),
            "empty_text",
        ),
        (
            Message::text(
                json!({"type":"send","room":"lobby","text":"x".repeat(16 * 1024 + 1)}).to_string(),
            ),
            "text_too_long",
        ),
        (
            Message::text(r#"{"type":"send","room":"lobby","text":"a\u0000b"}"#),
            "bad_field",
        ),
        (
            Message::text(
                json!({"type":"send","room":"lobby","text":"x","client_id":"c".repeat(129)})
                    .to_string(),
            ),
            "bad_field",
        ),
        (
            Message::text(r#"{"type":"open","with":"ghost"}"#),
            "unknown_user",
        ),
        (
            Message::text(r#"{"type":"rename","name":"-bad"}"#),
            "invalid_name",
        ),
        (
            Message::text(r#"{"type":"rename","name":"BOB"}"#),
            "name_taken",
        ),
    ];
    for (n, (frame, code)) in cases.into_iter().enumerate() {
        alice.send_raw(frame).await;
        alice.expect_error(code).await;
        both_still_work(&mut alice, &mut bob, n as u64).await;
    }

    // The rooms-per-connection limit (2 here; lobby is one).
    alice.join("second").await;
    alice.recv_until(|m| joined(m, "second", "alice")).await;
    alice.send(json!({"type": "join", "room": "third"})).await;
    alice.expect_error("too_many_rooms").await;
    both_still_work(&mut alice, &mut bob, 100).await;

    // An error names the request it refuses.
    alice
        .send(json!({"type": "send", "room": "nowhere", "text": "x", "client_id": "c-77"}))
        .await;
    let err = alice.expect_error("not_in_room").await;
    assert!(
        matches!(&err, ServerMsg::Error { client_id: Some(c), room: Some(r), .. } if c == "c-77" && r == "nowhere"),
        "{err:?}"
    );
}

#[tokio::test]
async fn requests_before_hello_get_hello_required() {
    let server = TestServer::default().await;
    let mut anon = Client::connect(&server.url()).await;
    anon.send(json!({"type": "join", "room": "lobby"})).await;
    anon.expect_error("hello_required").await;
    anon.send(json!({"type": "hello", "name": " spaced"})).await;
    anon.expect_error("invalid_name").await;
    anon.hello("anon").await;
}

#[tokio::test]
async fn a_frame_over_the_limit_closes_with_1009() {
    let server = TestServer::default().await;
    let (mut alice, mut bob) = pair(&server).await;
    let huge = json!({"type":"send","room":"lobby","text":"x".repeat(70 * 1024)}).to_string();
    alice.send_raw(Message::text(huge)).await;
    assert_eq!(alice.ended().await, Ended::Close(close::TOO_BIG));
    bob.recv_until(|m| left(m, "lobby", "alice")).await;
    let mut carol = server.join_as("carol").await;
    carol.join("lobby").await;
    carol.say("lobby", "fine", "c-1").await;
    bob.recv_until(|m| matches!(m, ServerMsg::Message { .. }))
        .await;
}

#[tokio::test]
async fn invalid_utf8_in_a_text_frame_closes_with_1007() {
    let server = TestServer::default().await;
    let (mut alice, mut bob) = pair(&server).await;
    let frame = Frame::message(
        Bytes::from_static(b"{\"type\":\"ping\"\xff}"),
        OpCode::Data(Data::Text),
        true,
    );
    alice.send_raw(Message::Frame(frame)).await;
    assert_eq!(alice.ended().await, Ended::Close(close::INVALID_PAYLOAD));
    bob.recv_until(|m| left(m, "lobby", "alice")).await;
}

#[tokio::test]
async fn a_flood_is_rate_limited_then_closed_with_1008() {
    let server = TestServer::start(|c| {
        c.rate = 1.0;
        c.burst = 5;
    })
    .await;
    let (mut alice, mut bob) = pair(&server).await;
    // pair() spent 1 of alice's 5 tokens (its hello; the join that made
    // her a member is free); the next 4 pass.
    for i in 0..4 {
        alice
            .say("lobby", &format!("m{i}"), &format!("c-{i}"))
            .await;
    }
    alice
        .send(json!({"type": "send", "room": "lobby", "text": "too fast"}))
        .await;
    alice.expect_error("rate_limited").await;
    // Keep flooding: past another burst of refusals the server hangs up.
    for _ in 0..10 {
        alice
            .send(json!({"type": "send", "room": "lobby", "text": "flood"}))
            .await;
    }
    assert_eq!(alice.ended().await, Ended::Close(close::POLICY));
    let seen = bob.collect_until(|m| left(m, "lobby", "alice")).await;
    let texts: Vec<_> = seen
        .iter()
        .filter_map(|m| match m {
            ServerMsg::Message { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["m0", "m1", "m2", "m3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbox_overflow_closes_only_that_connection() {
    // The outbox holds frames other than room messages (here: typing
    // notices, as long as names make them) and is bounded in bytes; a
    // client that never reads them overflows it once its socket is full
    // and is closed with 4001; the sender, who gets none, is not.
    let server = TestServer::start(|c| {
        c.rate = 1e6;
        c.burst = 1_000_000;
        c.queue_bytes = 256 * 1024;
    })
    .await;
    let (room, name) = ("r".repeat(32), "t".repeat(32));
    let mut talker = server.join_as(&name).await;
    let mut quiet = server.join_as("quiet").await;
    talker.join(&room).await;
    quiet.join(&room).await;
    talker.recv_until(|m| joined(m, &room, "quiet")).await;
    let mut sent = 0;
    loop {
        for _ in 0..1000 {
            talker.send(json!({"type": "typing", "room": room})).await;
        }
        sent += 1000;
        let seen = talker.drain().await;
        if seen.iter().any(|m| left(m, &room, "quiet"))
            || seen.iter().any(|m| matches!(m, ServerMsg::Error { .. }))
        {
            break;
        }
        assert!(sent < 400_000, "the quiet one was never closed");
    }
    match quiet.ended().await {
        Ended::Close(code) => assert_eq!(code, close::SLOW_CONSUMER),
        Ended::Dropped => {}
    }
    talker.drain().await;
}
