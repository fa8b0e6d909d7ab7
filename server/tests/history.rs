//! History on join, paging, resume without gap or duplicate, idempotent
//! retries, and a restart that a resuming client does not notice.

mod common;

use common::{Client, TestServer};
use hubbub_protocol::ServerMsg;
use serde_json::json;

fn fast(c: &mut hubbub::Config) {
    c.rate = 1e6;
    c.burst = 1_000_000;
}

fn seqs(msg: &ServerMsg) -> Vec<u64> {
    match msg {
        ServerMsg::History { messages, .. } => messages.iter().map(|m| m.seq).collect(),
        other => panic!("expected history, got {other:?}"),
    }
}

fn has_more(msg: &ServerMsg) -> bool {
    matches!(msg, ServerMsg::History { has_more: true, .. })
}

/// Sends `n` messages (ids `{prefix}-{i}`) and waits for all their acks.
async fn send_many(client: &mut Client, room: &str, prefix: &str, n: u64) {
    for i in 1..=n {
        client
            .send(json!({"type": "send", "room": room, "text": format!("{prefix} {i}"), "client_id": format!("{prefix}-{i}")}))
            .await;
    }
    let last = format!("{prefix}-{n}");
    client
        .recv_until(|m| matches!(m, ServerMsg::Ack { client_id: Some(c), .. } if *c == last))
        .await;
}

#[tokio::test]
async fn a_joiner_gets_the_latest_history_and_can_page_back() {
    let server = TestServer::start(fast).await;
    let mut alice = server.join_as("alice").await;
    assert_eq!(
        seqs(&alice.join_with_history("lobby").await),
        Vec::<u64>::new()
    );
    send_many(&mut alice, "lobby", "m", 120).await;

    let mut bob = server.join_as("bob").await;
    let history = bob.join_with_history("lobby").await;
    assert_eq!(seqs(&history), (71..=120).collect::<Vec<_>>());
    assert!(has_more(&history));
    match &history {
        ServerMsg::History {
            messages, resync, ..
        } => {
            assert!(!resync);
            assert_eq!(
                (messages[0].from.as_str(), messages[0].text.as_str()),
                ("alice", "m 71")
            );
        }
        _ => unreachable!(),
    }

    bob.send(json!({"type": "history", "room": "lobby", "before": 71, "limit": 50}))
        .await;
    let page = bob
        .recv_until(|m| matches!(m, ServerMsg::History { .. }))
        .await;
    assert_eq!(seqs(&page), (21..=70).collect::<Vec<_>>());
    assert!(has_more(&page));
    assert!(matches!(
        page,
        ServerMsg::History {
            before: Some(71),
            ..
        }
    ));
    bob.send(json!({"type": "history", "room": "lobby", "before": 21, "limit": 50}))
        .await;
    let page = bob
        .recv_until(|m| matches!(m, ServerMsg::History { .. }))
        .await;
    assert_eq!(seqs(&page), (1..=20).collect::<Vec<_>>());
    assert!(!has_more(&page));
}

#[tokio::test]
async fn a_retried_send_is_stored_once_and_gets_the_original_ack() {
    let server = TestServer::start(fast).await;
    let mut alice = server.join_as("alice").await;
    alice.join_with_history("lobby").await;
    let first = alice.say("lobby", "only once", "c-1").await;
    let again = alice.say("lobby", "only once", "c-1").await;
    assert_eq!(first, again);
    // From a new connection too, as after a reconnect.
    drop(alice);
    let mut alice = reconnect(&server, "alice").await;
    alice.join_with_history("lobby").await;
    assert_eq!(alice.say("lobby", "only once", "c-1").await, first);
    // Another user's c-1 is another message.
    let mut bob = server.join_as("bob").await;
    bob.join_with_history("lobby").await;
    assert_eq!(bob.say("lobby", "mine", "c-1").await, first + 1);
    let mut carol = server.join_as("carol").await;
    assert_eq!(seqs(&carol.join_with_history("lobby").await), vec![1, 2]);
}

/// Connects as `name`, retrying while the server still holds the name of
/// a connection it has not yet seen drop.
async fn reconnect(server: &TestServer, name: &str) -> Client {
    let deadline = tokio::time::Instant::now() + common::DEADLINE;
    loop {
        let mut client = Client::connect(&server.url()).await;
        client.send(json!({"type": "hello", "name": name})).await;
        match client.recv().await {
            ServerMsg::Welcome { .. } => return client,
            ServerMsg::Error { code, .. } if code.as_str() == "name_taken" => {
                assert!(tokio::time::Instant::now() < deadline, "{name} never freed");
                // Wait for the server to notice the old connection is gone:
                // a barrier round trip on the new connection, then retry.
                client.drain().await;
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn a_client_that_drops_mid_stream_resumes_with_no_gap_and_no_duplicate() {
    let server = TestServer::start(fast).await;
    let mut sender = server.join_as("sender").await;
    sender.join_with_history("lobby").await;
    let mut reader = server.join_as("reader").await;
    reader.join_with_history("lobby").await;

    let total = 300u64;
    let sending = tokio::spawn(async move {
        send_many(&mut sender, "lobby", "s", total).await;
        sender
    });

    let mut got = Vec::new();
    while got.len() < 60 {
        if let ServerMsg::Message { seq, .. } = reader.recv().await {
            got.push(seq);
        }
    }
    drop(reader); // the link drops; messages keep flowing
    let last = *got.last().unwrap();
    let mut reader = reconnect(&server, "reader").await;
    reader
        .send(json!({"type": "join", "room": "lobby", "since": last}))
        .await;
    assert!(matches!(reader.recv().await, ServerMsg::Presence { .. }));
    while *got.last().unwrap() < total {
        match reader.recv().await {
            ServerMsg::Message { seq, .. } => got.push(seq),
            ServerMsg::History { .. } => panic!("a resume within the limit must not resync"),
            _ => {}
        }
    }
    assert_eq!(
        got,
        (1..=total).collect::<Vec<_>>(),
        "no gap, no duplicate, in order"
    );
    sending.await.unwrap();
}

#[tokio::test]
async fn a_client_behind_the_room_log_resumes_from_the_store() {
    let server = TestServer::start(|c| {
        fast(c);
        c.room_log = 10;
        c.history = 5;
    })
    .await;
    let mut alice = server.join_as("alice").await;
    alice.join_with_history("lobby").await;
    send_many(&mut alice, "lobby", "m", 30).await;
    // 25 behind, the log holds the last 10: the rest comes from the store,
    // with no gap, no duplicate, and no resync.
    let mut bob = server.join_as("bob").await;
    bob.send(json!({"type": "join", "room": "lobby", "since": 5}))
        .await;
    assert!(matches!(bob.recv().await, ServerMsg::Presence { .. }));
    let mut got = Vec::new();
    while got.len() < 25 {
        match bob.recv().await {
            ServerMsg::Message { seq, .. } => got.push(seq),
            ServerMsg::History { .. } => panic!("a resume the store can serve must not resync"),
            _ => {}
        }
    }
    assert_eq!(got, (6..=30).collect::<Vec<_>>());
    // And then live ones.
    assert_eq!(alice.say("lobby", "live", "live-1").await, 31);
    assert!(matches!(
        bob.recv_until(|m| matches!(m, ServerMsg::Message { .. }))
            .await,
        ServerMsg::Message { seq: 31, .. }
    ));
}

#[tokio::test]
async fn a_client_ahead_of_the_room_is_told_to_resync() {
    let server = TestServer::start(|c| {
        fast(c);
        c.history = 5;
    })
    .await;
    let mut alice = server.join_as("alice").await;
    alice.join_with_history("lobby").await;
    send_many(&mut alice, "lobby", "m", 8).await;
    // A `since` the room never reached (its data was reset): fresh history.
    let mut bob = server.join_as("bob").await;
    bob.send(json!({"type": "join", "room": "lobby", "since": 50}))
        .await;
    bob.recv().await;
    let history = bob.recv().await;
    assert!(
        matches!(history, ServerMsg::History { resync: true, .. }),
        "{history:?}"
    );
    assert_eq!(seqs(&history), (4..=8).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_restart_is_invisible_to_a_resuming_client_but_the_reconnect() {
    let server = TestServer::start(fast).await;
    let mut alice = server.join_as("alice").await;
    alice.join_with_history("lobby").await;
    send_many(&mut alice, "lobby", "m", 10).await;
    let before = server
        .join_as("peek")
        .await
        .join_with_history("lobby")
        .await;
    let data = server.shutdown().await;

    let server = TestServer::start_with_data(data, fast).await;
    let mut alice = server.join_as("alice").await;
    alice
        .send(json!({"type": "join", "room": "lobby", "since": 10}))
        .await;
    assert!(matches!(alice.recv().await, ServerMsg::Presence { .. }));
    // Nothing missed: the next message is the next seq.
    assert_eq!(alice.say("lobby", "after the restart", "after-1").await, 11);
    // A retry of a message sent before the restart is still recognised.
    assert_eq!(alice.say("lobby", "m 3", "m-3").await, 3);
    // The history, timestamps included, is what it was.
    let after = server
        .join_as("peek")
        .await
        .join_with_history("lobby")
        .await;
    match (before, after) {
        (ServerMsg::History { messages: b, .. }, ServerMsg::History { messages: a, .. }) => {
            assert_eq!(a[..10], b[..]);
            assert_eq!(a.len(), 11);
        }
        other => panic!("{other:?}"),
    }
}

/// The room directory a client gets for `rooms`, as (room, members online).
async fn directory(client: &mut Client) -> Vec<(String, usize)> {
    client.send(json!({"type": "rooms"})).await;
    match client
        .recv_until(|m| matches!(m, ServerMsg::Rooms { .. }))
        .await
    {
        ServerMsg::Rooms { rooms } => rooms.into_iter().map(|r| (r.room, r.members)).collect(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_directory_lists_rooms_with_recent_history_not_only_rooms_with_people() {
    let server = TestServer::start(fast).await;
    let mut alice = server.join_as("alice").await;
    alice.join_with_history("attic").await;
    alice.say("attic", "anyone?", "a-1").await;
    alice.send(json!({"type": "leave", "room": "attic"})).await;
    alice
        .recv_until(|m| matches!(m, ServerMsg::LeaveOk { .. }))
        .await;
    alice.join("lobby").await;
    // Nobody is in the attic, but it was talked in: it is listed, empty.
    assert_eq!(
        directory(&mut alice).await,
        [("attic".to_string(), 0), ("lobby".to_string(), 1)]
    );
    // And still after a restart, when no room is loaded.
    let data = server.shutdown().await;
    let server = TestServer::start_with_data(data, fast).await;
    let mut bob = server.join_as("bob").await;
    assert_eq!(directory(&mut bob).await, [("attic".to_string(), 0)]);
    let data = server.shutdown().await;

    // With the directory age at 0, only rooms with someone online.
    let server = TestServer::start_with_data(data, |c| {
        fast(c);
        c.directory_age = std::time::Duration::ZERO;
    })
    .await;
    let mut carol = server.join_as("carol").await;
    assert!(directory(&mut carol).await.is_empty());
}
