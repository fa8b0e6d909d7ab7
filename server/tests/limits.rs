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
            Message::text(r#"{"type":"direct","to":"ghost","text":"x"}"#),
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
    // pair() spent 2 of alice's 5 tokens; the next 3 pass.
    for i in 0..3 {
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
    assert_eq!(texts, ["m0", "m1", "m2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_closed_while_a_fast_neighbour_gets_everything() {
    let server = TestServer::start(|c| {
        c.rate = 1e6;
        c.burst = 1_000_000;
        // The default 1 MiB queue; no storage work, so the test measures
        // only the fan-out it is about.
        c.store = hubbub::config::StoreKind::Memory;
    })
    .await;
    let mut sender = server.join_as("sender").await;
    let mut fast = server.join_as("fast").await;
    let mut slow = server.join_as("slow").await;
    sender.join("lobby").await;
    fast.join("lobby").await;
    slow.join("lobby").await;
    fast.recv_until(|m| joined(m, "lobby", "slow")).await;

    // 24 MB for each member: far more than loopback socket buffers (a few
    // MB) plus the 1 MiB queue. The slow client reads nothing meanwhile;
    // the fast one and the sender read everything, each in its own task.
    let text = "y".repeat(16_000);
    let total = 1500u64;
    // The sender stays at most WINDOW messages ahead of the fast reader, so
    // the fast reader's backlog stays far below its queue limit however
    // slowly this (debug, shared) machine runs it.
    const WINDOW: u64 = 16;
    let (progress, mut seen) = tokio::sync::watch::channel(0u64);
    let reader = tokio::spawn(async move {
        let mut next = 1;
        let mut slow_left = false;
        while next <= total {
            match fast.recv().await {
                ServerMsg::Message { seq, .. } => {
                    assert_eq!(seq, next, "the fast reader gets every message in order");
                    let _ = progress.send(seq);
                    next += 1;
                }
                m if left(&m, "lobby", "slow") => slow_left = true,
                _ => {}
            }
        }
        if !slow_left {
            fast.recv_until(|m| left(m, "lobby", "slow")).await;
        }
    });
    let (mut to_server, mut from_server) = futures_util::StreamExt::split(sender.ws);
    let sender_reader = tokio::spawn(async move {
        let mut acks = 0;
        while acks < total {
            match futures_util::StreamExt::next(&mut from_server).await {
                Some(Ok(Message::Text(t))) if t.contains("\"type\":\"ack\"") => acks += 1,
                Some(Ok(_)) => {}
                other => panic!("the sender lost its connection: {other:?}"),
            }
        }
    });
    for i in 0..total {
        seen.wait_for(|&got| got + WINDOW >= i).await.unwrap();
        let msg =
            json!({"type": "send", "room": "lobby", "text": text, "client_id": i.to_string()});
        futures_util::SinkExt::send(&mut to_server, Message::text(msg.to_string()))
            .await
            .unwrap();
    }
    tokio::time::timeout(common::DEADLINE * 6, reader)
        .await
        .expect("fast reader done")
        .unwrap();
    tokio::time::timeout(common::DEADLINE * 6, sender_reader)
        .await
        .expect("sender acked")
        .unwrap();
    // The slow one, reading at last, finds its connection closed as a slow
    // consumer (or cut, if even the close frame could not be written).
    match slow.ended().await {
        Ended::Close(code) => assert_eq!(code, close::SLOW_CONSUMER),
        Ended::Dropped => {}
    }
}
