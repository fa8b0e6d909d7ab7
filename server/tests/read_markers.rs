//! Read markers: how far a user has read each room, what unread counts
//! are made from. A guest's lasts its connection; an account's is stored,
//! reaches every tab of the account, and outlives a restart.

mod common;

use common::{register, tab, Client, TestServer};
use hubbub_protocol::ServerMsg;
use serde_json::json;

/// Joins `room` by hand; returns the seq of the `read` that follows the
/// history, or `None` if the next frame is not one.
async fn join_marker(client: &mut Client, room: &str) -> Option<u64> {
    client.send(json!({"type": "join", "room": room})).await;
    let presence = client.recv().await;
    assert!(
        matches!(presence, ServerMsg::Presence { .. }),
        "{presence:?}"
    );
    let history = client.recv().await;
    assert!(matches!(history, ServerMsg::History { .. }), "{history:?}");
    match client.recv().await {
        ServerMsg::Read { room: r, seq } if r == room => Some(seq),
        _ => None,
    }
}

async fn read(client: &mut Client, room: &str, seq: u64) {
    client
        .send(json!({"type": "read", "room": room, "seq": seq}))
        .await;
}

/// The next `read` frame, skipping what comes before it.
async fn next_marker(client: &mut Client) -> (String, u64) {
    match client
        .recv_until(|m| matches!(m, ServerMsg::Read { .. }))
        .await
    {
        ServerMsg::Read { room, seq } => (room, seq),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn a_first_join_marks_what_is_there_as_read_and_reads_stay_within_the_room() {
    let server = TestServer::default().await;
    let mut bob = server.join_as("bob").await;
    bob.join("lobby").await;
    for i in 1..=3 {
        bob.say("lobby", &format!("m{i}"), &format!("c{i}")).await;
    }
    let mut carol = server.join_as("carol").await;
    assert_eq!(join_marker(&mut carol, "lobby").await, Some(3));

    bob.say("lobby", "m4", "c4").await;
    // Past the room's end is the room's end.
    read(&mut carol, "lobby", 99).await;
    assert_eq!(next_marker(&mut carol).await, ("lobby".into(), 4));
    // Only a room the connection is in.
    read(&mut carol, "kitchen", 1).await;
    carol.expect_error("not_in_room").await;
    // A resume leaves a guest's marker to its client: no `read` then.
    let mut dave = server.join_as("dave").await;
    dave.send(json!({"type": "join", "room": "lobby", "since": 2}))
        .await;
    let frames = dave.drain().await;
    assert!(
        frames.iter().all(|m| !matches!(m, ServerMsg::Read { .. })),
        "{frames:?}"
    );
    assert!(
        frames
            .iter()
            .any(|m| matches!(m, ServerMsg::Message { seq: 3, .. })),
        "the resume itself still happens: {frames:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn an_accounts_marker_reaches_its_other_tabs_and_outlives_a_restart() {
    let server = TestServer::default().await;
    let bearer = register(server.addr, "dana").await;
    let mut erin = server.join_as("erin").await;
    erin.join("lobby").await;
    let mut tab1 = tab(server.addr, &bearer).await;
    let mut tab2 = tab(server.addr, &bearer).await;
    assert_eq!(join_marker(&mut tab1, "lobby").await, Some(0));
    assert_eq!(join_marker(&mut tab2, "lobby").await, Some(0));
    for i in 1..=3 {
        erin.say("lobby", &format!("m{i}"), &format!("c{i}")).await;
    }

    // Read in one tab: both hear it (the other tab's count drops).
    read(&mut tab1, "lobby", 2).await;
    assert_eq!(next_marker(&mut tab1).await, ("lobby".into(), 2));
    assert_eq!(next_marker(&mut tab2).await, ("lobby".into(), 2));
    // A slower tab's older marker does not move it back, and says nothing.
    read(&mut tab2, "lobby", 1).await;
    for tab in [&mut tab2, &mut tab1] {
        let frames = tab.drain().await;
        assert!(
            frames.iter().all(|m| !matches!(m, ServerMsg::Read { .. })),
            "{frames:?}"
        );
    }

    // The marker is stored: after a restart, a new login's join is told.
    drop((tab1, tab2, erin));
    let data = server.shutdown().await;
    let server = TestServer::start_with_data(data, |_| {}).await;
    let mut tab3 = tab(server.addr, &bearer).await;
    assert_eq!(join_marker(&mut tab3, "lobby").await, Some(2));
    server.shutdown().await;
}
