//! Search: stored room messages found by their words, from any room,
//! newest first, a page at a time; bad queries refused with a stable code;
//! the index kept across a restart (a real SQLite file).

mod common;

use common::{Client, TestServer};
use hubbub_protocol::{SearchHit, ServerMsg};
use serde_json::{json, Value};

/// Sends `search` and returns its answer: `(hits, next)`.
async fn search(client: &mut Client, request: Value) -> (Vec<SearchHit>, Option<String>) {
    let mut request = request;
    request["type"] = json!("search");
    let query = request["query"].as_str().unwrap().to_string();
    client.send(request).await;
    match client.recv().await {
        ServerMsg::SearchResults {
            query: q,
            results,
            next,
        } => {
            assert_eq!(q, query, "the answer names its query");
            (results, next)
        }
        other => panic!("expected search_results, got {other:?}"),
    }
}

/// `(room, from, text)` of each hit.
fn said(hits: &[SearchHit]) -> Vec<(&str, &str, &str)> {
    hits.iter()
        .map(|h| (h.room.as_str(), h.from.as_str(), h.text.as_str()))
        .collect()
}

/// Whether `hits` are in the order of results: by `sent_at`, `room`,
/// `seq`, all descending.
fn newest_first(hits: &[SearchHit]) -> bool {
    hits.windows(2)
        .all(|w| (w[0].sent_at, &w[0].room, w[0].seq) > (w[1].sent_at, &w[1].room, w[1].seq))
}

#[tokio::test]
async fn words_are_found_in_every_room_newest_first_and_a_room_narrows_it() {
    let server = TestServer::default().await;
    let mut ann = server.join_as("ann").await;
    let mut bob = server.join_as("bob").await;
    ann.join("lobby").await;
    bob.join("kitchen").await;
    ann.say("lobby", "Lunch at noon?", "a1").await;
    bob.say("kitchen", "the LUNCH is ready", "b1").await;
    ann.say("lobby", "we launched it", "a2").await;
    bob.say("kitchen", "tacos for lunch", "b2").await;

    // A third user in no room finds what both said, in both rooms.
    let mut cy = server.join_as("cy").await;
    let (hits, next) = search(&mut cy, json!({"query": "lunch"})).await;
    // Newest first (two said in the same millisecond: by room, then seq,
    // both descending).
    assert!(newest_first(&hits), "{hits:?}");
    let mut found = said(&hits);
    found.sort();
    assert_eq!(
        found,
        [
            ("kitchen", "bob", "tacos for lunch"),
            ("kitchen", "bob", "the LUNCH is ready"),
            ("lobby", "ann", "Lunch at noon?"),
        ]
    );
    assert_eq!(next, None, "nothing older");
    assert_eq!(hits[0].text, "tacos for lunch", "the newest");

    // Every word is needed, whole, whatever its case.
    let (hits, _) = search(&mut cy, json!({"query": "TACOS lunch"})).await;
    assert_eq!(said(&hits), [("kitchen", "bob", "tacos for lunch")]);
    let (hits, _) = search(&mut cy, json!({"query": "launch"})).await;
    assert!(hits.is_empty(), "{hits:?}");
    // Operators are just text.
    let (hits, _) = search(&mut cy, json!({"query": "\"noon\" OR* -lunch"})).await;
    assert!(hits.is_empty(), "\"or\" is a word no message has: {hits:?}");
    let (hits, _) = search(&mut cy, json!({"query": "(noon*"})).await;
    assert_eq!(said(&hits), [("lobby", "ann", "Lunch at noon?")]);

    let (hits, _) = search(&mut cy, json!({"query": "lunch", "room": "lobby"})).await;
    assert_eq!(said(&hits), [("lobby", "ann", "Lunch at noon?")]);
    let (hits, _) = search(&mut cy, json!({"query": "lunch", "room": "attic"})).await;
    assert!(hits.is_empty());

    // Only the one who asked hears the answer.
    assert!(ann.drain().await.is_empty());
}

#[tokio::test]
async fn pages_through_many_hits_give_each_once_newest_first() {
    let server = TestServer::default().await;
    let mut ann = server.join_as("ann").await;
    let mut bob = server.join_as("bob").await;
    ann.join("lobby").await;
    bob.join("kitchen").await;
    let mut sent = Vec::new();
    for i in 0..25 {
        let (client, room) = if i % 2 == 0 {
            (&mut ann, "lobby")
        } else {
            (&mut bob, "kitchen")
        };
        let text = format!("ping number {i}");
        let seq = client.say(room, &text, &format!("c{i}")).await;
        sent.push((room.to_string(), seq, text));
    }
    ann.say("lobby", "pong", "other").await;

    let mut found = Vec::new();
    let mut before: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut request = json!({"query": "ping", "limit": 10});
        if let Some(before) = &before {
            request["before"] = json!(before);
        }
        let (hits, next) = search(&mut ann, request).await;
        pages += 1;
        assert!(hits.len() <= 10);
        found.extend(hits);
        match next {
            Some(next) => before = Some(next),
            None => break,
        }
        assert!(pages < 5, "paging ends");
    }
    assert_eq!(pages, 3);
    assert!(newest_first(&found), "{found:?}");
    let mut got: Vec<_> = found.into_iter().map(|h| (h.room, h.seq, h.text)).collect();
    got.sort();
    sent.sort();
    assert_eq!(got, sent, "every hit once");

    // Past the maximum page: 50.
    let (hits, next) = search(&mut ann, json!({"query": "ping", "limit": 1000})).await;
    assert_eq!((hits.len(), next), (25, None));
}

#[tokio::test]
async fn bad_searches_are_refused_with_a_stable_code() {
    let server = TestServer::default().await;
    let mut ann = Client::connect(&server.url()).await;
    ann.send(json!({"type": "search", "query": "lunch"})).await;
    ann.expect_error("hello_required").await;
    ann.hello("ann").await;

    for query in ["", "   ", "*** \" -"] {
        ann.send(json!({"type": "search", "query": query})).await;
        ann.expect_error("bad_field").await;
    }
    let long = "lunch ".repeat(40);
    ann.send(json!({"type": "search", "query": long})).await;
    match ann.expect_error("bad_field").await {
        ServerMsg::Error { message, .. } => assert!(message.contains("200 bytes"), "{message}"),
        _ => unreachable!(),
    }
    let many = "a b c d e f g h i j k";
    ann.send(json!({"type": "search", "query": many})).await;
    match ann.expect_error("bad_field").await {
        ServerMsg::Error { message, .. } => assert!(message.contains("10 words"), "{message}"),
        _ => unreachable!(),
    }
    ann.send(json!({"type": "search", "query": "lunch", "before": "soon"}))
        .await;
    ann.expect_error("bad_field").await;
    ann.send(json!({"type": "search", "query": "lunch", "room": "Big Room"}))
        .await;
    match ann.expect_error("invalid_room").await {
        ServerMsg::Error { room, .. } => assert_eq!(room.as_deref(), Some("Big Room")),
        _ => unreachable!(),
    }
    // The connection goes on.
    let (hits, _) = search(&mut ann, json!({"query": "lunch"})).await;
    assert!(hits.is_empty());
}

#[tokio::test]
async fn the_index_outlives_a_restart() {
    let server = TestServer::default().await;
    let mut ann = server.join_as("ann").await;
    ann.join("lobby").await;
    ann.say("lobby", "remember the milk", "m1").await;
    drop(ann);
    let data = server.shutdown().await;

    let server = TestServer::start_with_data(data, |_| {}).await;
    let mut bob = server.join_as("bob").await;
    let (hits, _) = search(&mut bob, json!({"query": "Milk"})).await;
    assert_eq!(said(&hits), [("lobby", "ann", "remember the milk")]);
    // And new messages join it.
    bob.join("lobby").await;
    bob.say("lobby", "milk bought", "m2").await;
    let (hits, _) = search(&mut bob, json!({"query": "milk"})).await;
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0].text, "milk bought");
}
