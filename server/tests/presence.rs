//! Online and offline notices, heartbeat and idle timeout, quit.

mod common;

use std::time::Duration;

use common::{joined, left, Ended, TestServer};
use hubbub_protocol::{close, ServerMsg};
use serde_json::json;

fn notices_of(seen: &[ServerMsg], user: &str, pred: fn(&ServerMsg, &str, &str) -> bool) -> usize {
    seen.iter().filter(|m| pred(m, "lobby", user)).count()
}

#[tokio::test]
async fn online_and_offline_notices_come_exactly_once() {
    let server = TestServer::default().await;
    let mut alice = server.join_as("alice").await;
    assert!(alice.join("lobby").await.is_empty());
    let mut seen = alice.collect_until(|m| joined(m, "lobby", "alice")).await;

    // bob joins: his snapshot has alice, and he hears of himself once.
    let mut bob = server.join_as("bob").await;
    assert_eq!(bob.join("lobby").await, vec!["alice".to_string()]);
    bob.recv_until(|m| joined(m, "lobby", "bob")).await;
    seen.extend(alice.collect_until(|m| joined(m, "lobby", "bob")).await);

    // bob leaves; he is told at once.
    bob.send(json!({"type": "leave", "room": "lobby"})).await;
    assert_eq!(
        bob.recv().await,
        ServerMsg::LeaveOk {
            room: "lobby".into()
        }
    );
    seen.extend(alice.collect_until(|m| left(m, "lobby", "bob")).await);

    // carol joins and vanishes without a close frame.
    let mut carol = server.join_as("carol").await;
    carol.join("lobby").await;
    seen.extend(alice.collect_until(|m| joined(m, "lobby", "carol")).await);
    drop(carol);
    seen.extend(alice.collect_until(|m| left(m, "lobby", "carol")).await);

    // dave's arrival comes after anything the room still had to say about
    // bob and carol: notices of one room are delivered in order.
    let mut dave = server.join_as("dave").await;
    dave.join("lobby").await;
    seen.extend(alice.collect_until(|m| joined(m, "lobby", "dave")).await);

    assert_eq!(notices_of(&seen, "bob", joined), 1, "{seen:?}");
    assert_eq!(notices_of(&seen, "bob", left), 1, "{seen:?}");
    assert_eq!(notices_of(&seen, "carol", joined), 1, "{seen:?}");
    assert_eq!(notices_of(&seen, "carol", left), 1, "{seen:?}");
    assert_eq!(notices_of(&seen, "alice", left), 0, "{seen:?}");
}

#[tokio::test]
async fn a_crowd_joining_is_announced_in_a_few_coalesced_notices() {
    // A long interval: every join after the first lands in one batch.
    let server = TestServer::start(|c| c.presence_interval = Duration::from_secs(2)).await;
    let mut alice = server.join_as("alice").await;
    alice.join("lobby").await;
    alice.recv_until(|m| joined(m, "lobby", "alice")).await;

    let mut crowd = Vec::new();
    let mut snapshot = Vec::new();
    for i in 0..60 {
        let mut c = server.join_as(&format!("guest{i}")).await;
        snapshot = c.join("lobby").await;
        crowd.push(c);
    }
    let mut announced = std::collections::BTreeSet::new();
    let mut frames = 0;
    while announced.len() < 60 {
        match alice.recv().await {
            ServerMsg::Joined { users, .. } => {
                frames += 1;
                announced.extend(users);
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(frames <= 3, "60 joins took {frames} notices");
    // The last joiner learns of everyone, itself included, exactly once.
    let last = crowd.last_mut().unwrap();
    assert_eq!(
        snapshot,
        vec!["alice".to_string()],
        "the snapshot is what was announced"
    );
    let mut heard: std::collections::BTreeSet<String> = snapshot.into_iter().collect();
    while heard.len() < 61 {
        if let ServerMsg::Joined { users, .. } = last.recv().await {
            for u in users {
                assert!(heard.insert(u.clone()), "{u} announced twice");
            }
        }
    }
}

#[tokio::test]
async fn heartbeats_keep_a_reading_client_alive_and_a_silent_peer_is_closed() {
    let server = TestServer::start(|c| {
        c.heartbeat = Duration::from_millis(50);
        c.idle_timeout = Duration::from_millis(300);
    })
    .await;
    let mut alice = server.join_as("alice").await;
    let mut silent = server.join_as("silent").await;
    alice.join("lobby").await;
    silent.join("lobby").await;

    // alice reads (and so answers pings); the silent client reads nothing.
    let mut heartbeats = 0;
    loop {
        match alice.recv_any().await {
            ServerMsg::Heartbeat => heartbeats += 1,
            m if left(&m, "lobby", "silent") => break,
            _ => {}
        }
    }
    assert!(
        heartbeats >= 3,
        "only {heartbeats} heartbeats before the timeout"
    );
    // alice, connected as long as the silent one, is still served.
    assert!(alice
        .drain()
        .await
        .iter()
        .all(|m| !left(m, "lobby", "silent")));
    assert_eq!(silent.ended().await, Ended::Close(close::IDLE_TIMEOUT));
}

#[tokio::test]
async fn quit_closes_normally_and_the_room_hears_it_once() {
    let server = TestServer::default().await;
    let mut alice = server.join_as("alice").await;
    let mut bob = server.join_as("bob").await;
    alice.join("lobby").await;
    bob.join("lobby").await;
    alice.recv_until(|m| joined(m, "lobby", "bob")).await;
    bob.send(json!({"type": "quit"})).await;
    assert_eq!(bob.ended().await, Ended::Close(close::NORMAL));
    alice.recv_until(|m| left(m, "lobby", "bob")).await;
    // The name is free again.
    server.join_as("bob").await;
}
