//! Rooms, messages, who, rename, direct: the chat as two or three users see it.

mod common;

use common::{joined, TestServer};
use hubbub_protocol::{RoomInfo, ServerMsg};
use serde_json::json;

#[tokio::test]
async fn welcome_tells_the_name_heartbeat_and_limits() {
    let server = TestServer::default().await;
    let mut alice = common::Client::connect(&server.url()).await;
    match alice.hello("alice").await {
        ServerMsg::Welcome {
            user,
            heartbeat_ms,
            idle_timeout_ms,
            limits,
            protocol,
            ..
        } => {
            assert_eq!(user, "alice");
            assert_eq!(heartbeat_ms, 25_000);
            assert_eq!(idle_timeout_ms, 60_000);
            assert_eq!(limits.max_frame_bytes, 64 * 1024);
            assert_eq!(protocol, hubbub_protocol::PROTOCOL_VERSION);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_message_reaches_every_member_and_only_members() {
    let server = TestServer::default().await;
    let mut alice = server.join_as("alice").await;
    let mut bob = server.join_as("bob").await;
    let mut carol = server.join_as("carol").await;
    alice.join("lobby").await;
    bob.join("lobby").await;
    carol.join("kitchen").await;

    // Exactly as sent: markup, emoji, surrounding white space, newlines.
    let text = "  <img src=x onerror=alert(1)> héllo 😀\nsecond line ";
    let seq = alice.say("lobby", text, "c-1").await;
    assert_eq!(seq, 1);

    let expect = |msg: &ServerMsg, seq: u64, sender: &str, body: &str| match msg {
        ServerMsg::Message {
            room,
            seq: s,
            from,
            text,
            sent_at,
            ..
        } => {
            assert_eq!(
                (room.as_str(), *s, from.as_str(), text.as_str()),
                ("lobby", seq, sender, body)
            );
            assert!(*sent_at > 1_600_000_000_000);
        }
        other => panic!("expected a message, got {other:?}"),
    };
    let got = bob
        .recv_until(|m| matches!(m, ServerMsg::Message { .. }))
        .await;
    expect(&got, 1, "alice", text);

    // The sender sees its own message too, before its ack.
    let alice_saw = alice.drain().await;
    assert!(alice_saw
        .iter()
        .all(|m| !matches!(m, ServerMsg::Message { .. })));

    // seq goes up by one per room, whoever sends.
    assert_eq!(bob.say("lobby", "second", "b-1").await, 2);
    let got = alice
        .recv_until(|m| matches!(m, ServerMsg::Message { .. }))
        .await;
    expect(&got, 2, "bob", "second");

    // Another room has its own sequence.
    assert_eq!(carol.say("kitchen", "elsewhere", "k-1").await, 1);

    // carol, not in lobby, received none of lobby's messages.
    let carol_saw = carol.drain().await;
    assert!(
        carol_saw
            .iter()
            .all(|m| !matches!(m, ServerMsg::Message { room, .. } if room == "lobby")),
        "{carol_saw:?}"
    );
}

#[tokio::test]
async fn the_sender_gets_its_message_then_an_ack_with_client_id_and_seq() {
    let server = TestServer::default().await;
    let mut alice = server.join_as("alice").await;
    alice.join("lobby").await;
    alice.drain().await;
    alice
        .send(json!({"type": "send", "room": "lobby", "text": "hi", "client_id": "c-9"}))
        .await;
    assert!(matches!(
        alice.recv().await,
        ServerMsg::Message { seq: 1, .. }
    ));
    assert_eq!(
        alice.recv().await,
        ServerMsg::Ack {
            client_id: Some("c-9".into()),
            room: Some("lobby".into()),
            seq: Some(1)
        }
    );
}

#[tokio::test]
async fn who_lists_the_members_online_and_rooms_lists_rooms() {
    let server = TestServer::default().await;
    let mut alice = server.join_as("alice").await;
    let mut bob = server.join_as("bob").await;
    alice.join("lobby").await;
    bob.join("lobby").await;
    bob.join("kitchen").await;
    alice.send(json!({"type": "who", "room": "lobby"})).await;
    let presence = alice
        .recv_until(|m| matches!(m, ServerMsg::Presence { .. }))
        .await;
    assert_eq!(
        presence,
        ServerMsg::Presence {
            room: "lobby".into(),
            users: vec!["alice".into(), "bob".into()]
        }
    );
    alice.send(json!({"type": "rooms"})).await;
    let rooms = alice
        .recv_until(|m| matches!(m, ServerMsg::Rooms { .. }))
        .await;
    assert_eq!(
        rooms,
        ServerMsg::Rooms {
            rooms: vec![
                RoomInfo {
                    room: "kitchen".into(),
                    members: 1
                },
                RoomInfo {
                    room: "lobby".into(),
                    members: 2
                },
            ]
        }
    );
}

#[tokio::test]
async fn rename_tells_the_room_and_refuses_a_taken_name() {
    let server = TestServer::default().await;
    let mut alice = server.join_as("alice").await;
    let mut bob = server.join_as("bob").await;
    alice.join("lobby").await;
    bob.join("lobby").await;
    alice.recv_until(|m| joined(m, "lobby", "bob")).await;

    alice
        .send(json!({"type": "rename", "name": "alicia"}))
        .await;
    let confirmed = alice.recv().await;
    assert!(
        matches!(&confirmed, ServerMsg::Renamed { room: None, from, to, upload_token: Some(_) }
                 if from == "alice" && to == "alicia"),
        "{confirmed:?}"
    );
    let notice = bob
        .recv_until(|m| matches!(m, ServerMsg::Renamed { .. }))
        .await;
    assert_eq!(
        notice,
        ServerMsg::Renamed {
            room: Some("lobby".into()),
            from: "alice".into(),
            to: "alicia".into(),
            upload_token: None,
        }
    );
    alice.say("lobby", "new name", "c-1").await;
    let msg = bob
        .recv_until(|m| matches!(m, ServerMsg::Message { .. }))
        .await;
    assert!(matches!(msg, ServerMsg::Message { from, .. } if from == "alicia"));

    // Names are unique ignoring case; the old name is free again.
    bob.send(json!({"type": "rename", "name": "ALICIA"})).await;
    bob.expect_error("name_taken").await;
    bob.send(json!({"type": "rename", "name": "no spaces"}))
        .await;
    bob.expect_error("invalid_name").await;
    let mut newcomer = common::Client::connect(&server.url()).await;
    newcomer
        .send(json!({"type": "hello", "name": "Alicia"}))
        .await;
    newcomer.expect_error("name_taken").await;
    newcomer.hello("alice").await;

    // who shows the new name.
    bob.send(json!({"type": "who", "room": "lobby"})).await;
    let presence = bob
        .recv_until(|m| matches!(m, ServerMsg::Presence { .. }))
        .await;
    assert_eq!(
        presence,
        ServerMsg::Presence {
            room: "lobby".into(),
            users: vec!["alicia".into(), "bob".into()]
        }
    );
}

#[tokio::test]
async fn typing_reaches_the_others_in_the_room() {
    let server = TestServer::default().await;
    let mut alice = server.join_as("alice").await;
    let mut bob = server.join_as("bob").await;
    alice.join("lobby").await;
    bob.join("lobby").await;
    alice.send(json!({"type": "typing", "room": "lobby"})).await;
    let got = bob
        .recv_until(|m| matches!(m, ServerMsg::Typing { .. }))
        .await;
    assert_eq!(
        got,
        ServerMsg::Typing {
            room: "lobby".into(),
            user: "alice".into()
        }
    );
    assert!(alice
        .drain()
        .await
        .iter()
        .all(|m| !matches!(m, ServerMsg::Typing { .. })));
}

#[tokio::test]
async fn ping_gets_pong_with_the_same_id() {
    let server = TestServer::default().await;
    let mut alice = common::Client::connect(&server.url()).await;
    alice.send(json!({"type": "ping", "id": 7})).await;
    assert_eq!(alice.recv().await, ServerMsg::Pong { id: Some(7) });
}
