//! Private conversations (stored direct messages), through a real server
//! and real WebSocket clients, on SQLite (a real file, restarted) and the
//! memory store: a conversation is a room only its two people may read,
//! told to the other person live, kept like a room for accounts and ended
//! with a guest's name.

mod common;

use common::{register, tab, Client, TestServer};
use hubbub::config::StoreKind;
use hubbub_protocol::{ConversationInfo, ServerMsg};
use serde_json::{json, Value};

/// The next `conversation` frame: (room, with).
async fn told(client: &mut Client) -> (String, String) {
    match client
        .recv_until(|m| matches!(m, ServerMsg::Conversation { .. }))
        .await
    {
        ServerMsg::Conversation { room, with } => (room, with),
        _ => unreachable!(),
    }
}

async fn list(client: &mut Client) -> Vec<ConversationInfo> {
    client.send(json!({"type": "conversations"})).await;
    match client
        .recv_until(|m| matches!(m, ServerMsg::Conversations { .. }))
        .await
    {
        ServerMsg::Conversations { conversations } => conversations,
        _ => unreachable!(),
    }
}

/// Sends `request` and waits for its refusal's code.
async fn refused(client: &mut Client, request: Value) -> String {
    client.send(request).await;
    match client
        .recv_until(|m| matches!(m, ServerMsg::Error { .. }))
        .await
    {
        ServerMsg::Error { code, .. } => code.as_str().to_string(),
        _ => unreachable!(),
    }
}

/// Joins `room` and returns the texts of its history and the read marker.
async fn join_texts(client: &mut Client, room: &str) -> (Vec<String>, u64) {
    client.send(json!({"type": "join", "room": room})).await;
    let texts = match client
        .recv_until(|m| matches!(m, ServerMsg::History { .. }))
        .await
    {
        ServerMsg::History { messages, .. } => messages.into_iter().map(|m| m.text).collect(),
        _ => unreachable!(),
    };
    let marker = match client
        .recv_until(|m| matches!(m, ServerMsg::Read { .. }))
        .await
    {
        ServerMsg::Read { seq, .. } => seq,
        _ => unreachable!(),
    };
    (texts, marker)
}

/// The next room message: (room, from, text).
async fn next_message(client: &mut Client) -> (String, String, String) {
    match client
        .recv_until(|m| matches!(m, ServerMsg::Message { .. }))
        .await
    {
        ServerMsg::Message {
            room, from, text, ..
        } => (room, from, text),
        _ => unreachable!(),
    }
}

fn on(kind: StoreKind) -> impl FnOnce(&mut hubbub::config::Config) {
    move |config| config.store = kind
}

#[tokio::test]
async fn a_direct_message_reaches_the_other_person_live_and_lasts_across_reconnects_and_a_restart()
{
    let server = TestServer::start(on(StoreKind::Sqlite)).await;
    let (alice_token, bob_token) = (
        register(server.addr, "alice").await,
        register(server.addr, "Bob").await,
    );
    let mut alice = tab(server.addr, &alice_token).await;
    let mut bob = tab(server.addr, &bob_token).await;

    // alice opens it by bob's name, in any case: the room is theirs.
    alice.send(json!({"type": "open", "with": "BOB"})).await;
    let (room, with) = told(&mut alice).await;
    assert_eq!((room.as_str(), with.as_str()), ("@alice+bob", "Bob"));
    let (texts, _) = join_texts(&mut alice, &room).await;
    assert!(texts.is_empty());
    let seq = alice.say(&room, "psst", "c-1").await;
    assert_eq!(seq, 1);

    // bob, who asked for nothing, hears of it and joins: it is unread.
    assert_eq!(told(&mut bob).await, (room.clone(), "alice".to_string()));
    let (texts, marker) = join_texts(&mut bob, &room).await;
    assert_eq!((texts, marker), (vec!["psst".to_string()], 0));
    bob.say(&room, "hi alice", "b-1").await;
    assert_eq!(
        next_message(&mut alice).await,
        (room.clone(), "Bob".into(), "hi alice".into())
    );

    // A retry of alice's send is the same message.
    let again = alice.say(&room, "psst", "c-1").await;
    assert_eq!(again, 1);

    // Across a restart: listed, with its latest seq, and resumable.
    drop((alice, bob));
    let data = server.shutdown().await;
    let server = TestServer::start_with_data(data, on(StoreKind::Sqlite)).await;
    let mut bob = tab(server.addr, &bob_token).await;
    let listed = list(&mut bob).await;
    assert_eq!(
        listed,
        [ConversationInfo {
            room: room.clone(),
            with: "alice".into(),
            online: false,
            last_seq: 2,
        }]
    );
    bob.send(json!({"type": "join", "room": room, "since": 1}))
        .await;
    assert_eq!(
        next_message(&mut bob).await,
        (room.clone(), "Bob".into(), "hi alice".into())
    );
    let mut alice = tab(server.addr, &alice_token).await;
    let listed = list(&mut alice).await;
    assert_eq!(listed[0].with, "Bob");
    assert!(listed[0].online, "bob is online now");
}

#[tokio::test]
async fn only_its_two_people_may_read_or_find_a_conversation() {
    for kind in [StoreKind::Memory, StoreKind::Sqlite] {
        let server = TestServer::start(on(kind)).await;
        let mut alice = server.join_as("alice").await;
        let _bob = server.join_as("bob").await;
        let mut carol = server.join_as("carol").await;
        let room = "@alice+bob";
        join_texts(&mut alice, room).await;
        alice.say(room, "the secret plan", "c-1").await;

        for request in [
            json!({"type": "join", "room": room}),
            json!({"type": "history", "room": room}),
            json!({"type": "who", "room": room}),
            json!({"type": "search", "query": "secret", "room": room}),
        ] {
            assert_eq!(refused(&mut carol, request).await, "forbidden", "{kind:?}");
        }
        assert_eq!(
            refused(&mut carol, json!({"type": "join", "room": "@bob+alice"})).await,
            "invalid_room",
            "not a conversation's name: unsorted"
        );
        // carol's search finds nothing of it; alice's does.
        for (client, found) in [(&mut carol, 0), (&mut alice, 1)] {
            client
                .send(json!({"type": "search", "query": "secret plan"}))
                .await;
            match client
                .recv_until(|m| matches!(m, ServerMsg::SearchResults { .. }))
                .await
            {
                ServerMsg::SearchResults { results, .. } => {
                    assert_eq!(results.len(), found, "{kind:?}")
                }
                _ => unreachable!(),
            }
        }
        // Not in the directory.
        carol.send(json!({"type": "rooms"})).await;
        match carol
            .recv_until(|m| matches!(m, ServerMsg::Rooms { .. }))
            .await
        {
            ServerMsg::Rooms { rooms } => assert!(rooms.iter().all(|r| r.room != room)),
            _ => unreachable!(),
        }
        // Opening one with nobody, or with yourself, is refused.
        assert_eq!(
            refused(&mut carol, json!({"type": "open", "with": "nobody"})).await,
            "unknown_user"
        );
        assert_eq!(
            refused(&mut carol, json!({"type": "open", "with": "Carol"})).await,
            "bad_field"
        );
    }
}

#[tokio::test]
async fn a_guests_conversations_end_with_its_name() {
    for kind in [StoreKind::Memory, StoreKind::Sqlite] {
        let server = TestServer::start(on(kind)).await;
        let token = register(server.addr, "alice").await;
        let mut alice = tab(server.addr, &token).await;
        let mut gus = server.join_as("gus").await;
        alice.send(json!({"type": "open", "with": "gus"})).await;
        let (room, _) = told(&mut alice).await;
        join_texts(&mut alice, &room).await;
        alice.say(&room, "are you there, gus?", "c-1").await;
        assert_eq!(told(&mut gus).await.0, room);
        let (texts, _) = join_texts(&mut gus, &room).await;
        assert_eq!(texts, ["are you there, gus?"]);

        // gus leaves: alice is told the conversation ended.
        drop(gus);
        alice
            .recv_until(|m| matches!(m, ServerMsg::LeaveOk { room: r } if *r == room))
            .await;
        assert_eq!(
            refused(
                &mut alice,
                json!({"type": "send", "room": room, "text": "hello?"})
            )
            .await,
            "not_in_room"
        );
        assert_eq!(
            refused(&mut alice, json!({"type": "open", "with": "gus"})).await,
            "unknown_user",
            "no guest by that name online"
        );
        assert!(list(&mut alice).await.is_empty(), "{kind:?}");

        // A new guest of the same name finds nothing of it.
        let mut gus = server.join_as("gus").await;
        assert!(list(&mut gus).await.is_empty());
        let (texts, _) = join_texts(&mut gus, &room).await;
        assert!(texts.is_empty(), "{kind:?}: {texts:?}");
        gus.say(&room, "hi, I am the new gus", "g-1").await;
        let (texts, marker) = join_texts(&mut alice, &room).await;
        assert_eq!(texts, ["hi, I am the new gus"], "{kind:?}");
        assert_eq!(marker, 0, "a fresh conversation: nothing read");
    }
}

#[tokio::test]
async fn open_tells_every_tab_and_news_reaches_tabs_that_have_not_joined() {
    let server = TestServer::default().await;
    let token = register(server.addr, "alice").await;
    let mut first = tab(server.addr, &token).await;
    let mut second = tab(server.addr, &token).await;
    let mut bob = server.join_as("bob").await;
    first.send(json!({"type": "open", "with": "bob"})).await;
    let (room, with) = told(&mut first).await;
    assert_eq!(told(&mut second).await, (room.clone(), with));
    join_texts(&mut first, &room).await;
    join_texts(&mut bob, &room).await;
    bob.say(&room, "one", "b-1").await;
    // The tab that joined gets the message; the other is told of news.
    assert_eq!(next_message(&mut first).await.2, "one");
    assert_eq!(told(&mut second).await, (room.clone(), "bob".into()));
    // Conversations have their own limit, apart from rooms'.
    let server = TestServer::start(|c| c.max_conversations = 1).await;
    let mut carol = server.join_as("carol").await;
    let _dan = server.join_as("dan").await;
    let _eve = server.join_as("eve").await;
    join_texts(&mut carol, "@carol+dan").await;
    assert_eq!(
        refused(&mut carol, json!({"type": "join", "room": "@carol+eve"})).await,
        "too_many_rooms"
    );
    carol.join("lobby").await;
}

#[tokio::test]
async fn rejoining_every_room_and_conversation_after_welcome_is_never_rate_limited() {
    let server = TestServer::start(|c| {
        c.rate = 1.0;
        c.burst = 5;
        c.max_rooms = 30;
    })
    .await;
    let token = register(server.addr, "alice").await;
    let mut first = tab(server.addr, &token).await;
    let peers = ["bo", "cy", "di"];
    let mut others = Vec::new();
    for peer in peers {
        others.push(server.join_as(peer).await);
        first.send(json!({"type": "open", "with": peer})).await;
        told(&mut first).await;
    }
    // A second tab rejoins 30 rooms and its 3 conversations at once,
    // with a burst of 5: every join is answered, none refused.
    let mut second = tab(server.addr, &token).await;
    assert_eq!(list(&mut second).await.len(), 3);
    let mut rooms: Vec<String> = (0..30).map(|i| format!("room-{i}")).collect();
    rooms.extend(
        peers
            .iter()
            .map(|p| hubbub_protocol::names::conversation("alice", p)),
    );
    for room in &rooms {
        second.send(json!({"type": "join", "room": room})).await;
    }
    for room in &rooms {
        let answer = second
            .recv_until(|m| matches!(m, ServerMsg::Presence { .. } | ServerMsg::Error { .. }))
            .await;
        assert!(
            matches!(&answer, ServerMsg::Presence { room: r, .. } if r == room),
            "{answer:?}"
        );
    }
    // Past the cap, a join counts (and is refused).
    assert_eq!(
        refused(&mut second, json!({"type": "join", "room": "one-more"})).await,
        "too_many_rooms"
    );
}

/// The news of a conversation goes out once its message is stored: the
/// other person, joining on the news, finds the message in the history
/// (never told of a message that a failed commit then lost, nor racing the
/// commit). A long commit window makes the race certain were the news sent
/// when the message is said.
#[tokio::test]
async fn the_news_of_a_direct_message_follows_its_commit() {
    let server = TestServer::start(|config| {
        config.store = StoreKind::Sqlite;
        config.commit_window = std::time::Duration::from_millis(400);
    })
    .await;
    let (alice_token, bob_token) = (
        register(server.addr, "alice").await,
        register(server.addr, "bob").await,
    );
    let mut alice = tab(server.addr, &alice_token).await;
    let mut bob = tab(server.addr, &bob_token).await;
    alice.send(json!({"type": "open", "with": "bob"})).await;
    let (room, _) = told(&mut alice).await;
    join_texts(&mut alice, &room).await;
    // The first commit after a quiet spell is at once; the next one waits
    // out the window.
    assert_eq!(alice.say(&room, "zero", "c-0").await, 1);
    assert_eq!(told(&mut bob).await.0, room);
    alice
        .send(json!({"type": "send", "room": room, "text": "one", "client_id": "c-1"}))
        .await;
    assert_eq!(told(&mut bob).await.0, room);
    let (texts, _) = join_texts(&mut bob, &room).await;
    assert_eq!(texts, ["zero", "one"]);
}
