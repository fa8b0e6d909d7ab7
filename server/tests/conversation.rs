//! Conversation: edits, deletions, reactions, replies and mentions, through
//! a real server and real WebSocket clients. Every edit, deletion and
//! reaction is an event in the room's `seq` stream: acked like a send,
//! replayed by history and resume, folded into its target by the store.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{http, Client, TestServer};
use hubbub_protocol::{Event, HistoryMessage, Quote, ServerMsg};
use serde_json::{json, Value};

/// Sends `request` (which has `client_id`) and waits for its answer: the
/// acked `seq`, or the refusal's code (checking it names the request).
async fn ask(client: &mut Client, request: Value) -> Result<u64, String> {
    let id = request["client_id"].as_str().unwrap().to_string();
    client.send(request).await;
    let answer = client
        .recv_until(|m| match m {
            ServerMsg::Ack { client_id, .. } | ServerMsg::Error { client_id, .. } => {
                client_id.as_deref() == Some(id.as_str())
            }
            _ => false,
        })
        .await;
    match answer {
        ServerMsg::Ack { seq: Some(seq), .. } => Ok(seq),
        ServerMsg::Error { code, room, .. } => {
            assert!(room.is_some(), "a refusal names the room");
            Err(code.as_str().to_string())
        }
        other => panic!("{other:?}"),
    }
}

fn edit(seq: u64, text: &str, id: &str) -> Value {
    json!({"type": "edit", "room": "lobby", "seq": seq, "text": text, "client_id": id})
}

fn delete(seq: u64, id: &str) -> Value {
    json!({"type": "delete", "room": "lobby", "seq": seq, "client_id": id})
}

fn react(seq: u64, emoji: &str, on: bool, id: &str) -> Value {
    json!({"type": "react", "room": "lobby", "seq": seq, "emoji": emoji, "on": on, "client_id": id})
}

/// The next room message `client` gets: (seq, text, event).
async fn next_message(client: &mut Client) -> (u64, String, Option<Event>) {
    match client
        .recv_until(|m| matches!(m, ServerMsg::Message { .. }))
        .await
    {
        ServerMsg::Message {
            seq, text, event, ..
        } => (seq, text, event),
        _ => unreachable!(),
    }
}

/// `room`'s stored history, as a `history` request answers it.
async fn history(client: &mut Client, room: &str) -> Vec<HistoryMessage> {
    client.send(json!({"type": "history", "room": room})).await;
    match client
        .recv_until(|m| matches!(m, ServerMsg::History { before: None, .. }))
        .await
    {
        ServerMsg::History { messages, .. } => messages,
        _ => unreachable!(),
    }
}

/// The `(room, seq)` of what `search` finds for `query`.
async fn search(client: &mut Client, query: &str) -> Vec<u64> {
    client.send(json!({"type": "search", "query": query})).await;
    match client
        .recv_until(|m| matches!(m, ServerMsg::SearchResults { .. }))
        .await
    {
        ServerMsg::SearchResults { results, .. } => results.into_iter().map(|h| h.seq).collect(),
        _ => unreachable!(),
    }
}

/// Who has which emoji on message `target`, folded from `messages` as a
/// client folds them.
fn reactions(messages: &[HistoryMessage], target: u64) -> BTreeMap<String, BTreeSet<String>> {
    let mut folded: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for m in messages {
        if let Some(Event::React {
            target: t,
            emoji,
            on,
        }) = &m.event
        {
            if *t != target {
                continue;
            }
            let users = folded.entry(emoji.clone()).or_default();
            if *on {
                users.insert(m.from.clone());
            } else {
                users.remove(&m.from);
            }
        }
    }
    folded.retain(|_, users| !users.is_empty());
    folded
}

#[tokio::test]
async fn an_edit_reaches_everyone_and_is_replayed_and_found_by_its_new_text() {
    let server = TestServer::default().await;
    let mut alice = server.join_as("alice").await;
    alice.join("lobby").await;
    let mut bob = server.join_as("bob").await;
    bob.join("lobby").await;
    let said = alice.say("lobby", "lunch at noon", "c1").await;
    assert_eq!(next_message(&mut bob).await.1, "lunch at noon");

    let seq = ask(&mut alice, edit(said, "dinner at eight", "e1"))
        .await
        .unwrap();
    assert_eq!(seq, said + 1, "the edit is the room's next seq");
    // (alice had it before her ack.)
    let (at, text, event) = next_message(&mut bob).await;
    assert_eq!(
        (at, text.as_str(), event),
        (seq, "dinner at eight", Some(Event::Edit { target: said }))
    );
    // Someone else's: refused, named.
    assert_eq!(
        ask(&mut bob, edit(said, "mine now", "b1")).await,
        Err("not_author".into())
    );
    // Not a message of the room: an event, or nothing.
    assert_eq!(
        ask(&mut alice, edit(seq, "x", "e2")).await,
        Err("unknown_message".into())
    );
    assert_eq!(
        ask(&mut alice, edit(999, "x", "e3")).await,
        Err("unknown_message".into())
    );
    assert_eq!(
        ask(&mut alice, edit(said, "  ", "e4")).await,
        Err("empty_text".into())
    );

    // History from the store: the message as edited, then the event.
    let messages = history(&mut bob, "lobby").await;
    assert_eq!(messages.len(), 2);
    assert_eq!(
        (messages[0].text.as_str(), &messages[0].event),
        ("dinner at eight", &None)
    );
    assert_eq!(messages[1].event, Some(Event::Edit { target: said }));

    // A resume replays the event.
    let mut carol = server.join_as("carol").await;
    carol
        .send(json!({"type": "join", "room": "lobby", "since": said}))
        .await;
    let (at, _, event) = next_message(&mut carol).await;
    assert_eq!((at, event), (seq, Some(Event::Edit { target: said })));

    // Search finds the new text, not the old, and never the event row.
    assert_eq!(search(&mut carol, "dinner").await, [said]);
    assert!(search(&mut carol, "noon").await.is_empty());
}

#[tokio::test]
async fn an_edit_after_the_edit_window_is_refused() {
    let server = TestServer::start(|c| c.edit_window = Duration::from_millis(1)).await;
    let mut alice = Client::connect(&server.url()).await;
    match alice.hello("alice").await {
        ServerMsg::Welcome { limits, .. } => assert_eq!(limits.edit_window_ms, 1),
        _ => unreachable!(),
    }
    alice.join("lobby").await;
    let said = alice.say("lobby", "typo", "c1").await;
    // The window is what is tested: let it pass.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        ask(&mut alice, edit(said, "fixed", "e1")).await,
        Err("edit_window_passed".into())
    );
    // Deleting has no window.
    assert!(ask(&mut alice, delete(said, "d1")).await.is_ok());
}

#[tokio::test]
async fn a_delete_leaves_a_tombstone_and_its_text_leaves_the_store() {
    let server = TestServer::default().await;
    let mut alice = server.join_as("alice").await;
    alice.join("lobby").await;
    let mut bob = server.join_as("bob").await;
    bob.join("lobby").await;
    let said = alice.say("lobby", "the secret plan", "c1").await;
    let kept = alice.say("lobby", "the public plan", "c2").await;
    assert_eq!(search(&mut bob, "secret").await, [said]);

    assert_eq!(
        ask(&mut bob, delete(said, "b1")).await,
        Err("not_author".into())
    );
    let seq = ask(&mut alice, delete(said, "d1")).await.unwrap();
    match bob
        .recv_until(|m| matches!(m, ServerMsg::Message { seq: s, .. } if *s == seq))
        .await
    {
        ServerMsg::Message { event, text, .. } => {
            assert_eq!(
                (event, text.as_str()),
                (Some(Event::Delete { target: said }), "")
            );
        }
        _ => unreachable!(),
    }

    // Gone for everyone: search, history from the store, and any further
    // change of it.
    assert!(search(&mut bob, "secret").await.is_empty());
    assert_eq!(search(&mut bob, "plan").await, [kept]);
    let messages = history(&mut bob, "lobby").await;
    assert_eq!((messages[0].seq, messages[0].text.as_str()), (said, ""));
    assert_eq!(messages[0].from, "alice");
    for refused in [
        delete(said, "d2"),
        edit(said, "back", "e1"),
        react(said, "👍", true, "r1"),
    ] {
        assert_eq!(
            ask(&mut alice, refused).await,
            Err("unknown_message".into())
        );
    }
    let reply = json!({"type": "send", "room": "lobby", "text": "what plan?", "client_id": "s1", "reply_to": said});
    assert_eq!(ask(&mut bob, reply).await, Err("unknown_message".into()));
}

#[tokio::test]
async fn a_reply_carries_a_quote_of_its_original() {
    let server = TestServer::default().await;
    let mut alice = server.join_as("alice").await;
    alice.join("lobby").await;
    let mut bob = server.join_as("bob").await;
    bob.join("lobby").await;
    let said = alice.say("lobby", "\nare we on?\nfor tomorrow", "c1").await;
    let reply = json!({"type": "send", "room": "lobby", "text": "yes", "client_id": "s1", "reply_to": said});
    let seq = ask(&mut bob, reply).await.unwrap();
    let quote = Quote {
        seq: said,
        from: "alice".into(),
        text: "are we on?…".into(),
    };
    match alice
        .recv_until(|m| matches!(m, ServerMsg::Message { seq: s, .. } if *s == seq))
        .await
    {
        ServerMsg::Message { reply_to, .. } => assert_eq!(reply_to, Some(quote.clone())),
        _ => unreachable!(),
    }
    assert_eq!(history(&mut alice, "lobby").await[1].reply_to, Some(quote));

    for target in [999, seq + 1, 0] {
        let reply = json!({"type": "send", "room": "lobby", "text": "?", "client_id": format!("x{target}"), "reply_to": target});
        assert_eq!(ask(&mut bob, reply).await, Err("unknown_message".into()));
    }
    // An event is not something to reply to.
    let edited = ask(&mut alice, edit(said, "are we on?", "e1"))
        .await
        .unwrap();
    let reply = json!({"type": "send", "room": "lobby", "text": "?", "client_id": "s2", "reply_to": edited});
    assert_eq!(ask(&mut bob, reply).await, Err("unknown_message".into()));
}

#[tokio::test]
async fn reactions_from_many_users_at_once_fold_to_the_right_sets() {
    let server = TestServer::default().await;
    let mut alice = server.join_as("alice").await;
    alice.join("lobby").await;
    let said = alice.say("lobby", "vote with 👍 or 🎉", "c1").await;

    // 20 users at once: each puts 👍, some take it back, some put it twice,
    // some also put 🎉.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let url = server.url();
        tasks.push(tokio::spawn(async move {
            let name = format!("u{i:02}");
            let mut client = Client::connect(&url).await;
            client.hello(&name).await;
            client.join("lobby").await;
            ask(&mut client, react(said, "👍", true, "r1"))
                .await
                .unwrap();
            if i % 5 == 0 {
                ask(&mut client, react(said, "👍", true, "r2"))
                    .await
                    .unwrap();
            }
            if i % 3 == 0 {
                ask(&mut client, react(said, "👍", false, "r3"))
                    .await
                    .unwrap();
            }
            if i % 4 == 0 {
                ask(&mut client, react(said, "🎉", true, "r4"))
                    .await
                    .unwrap();
            }
            // The same request again is not a new reaction.
            let again = ask(&mut client, react(said, "👍", true, "r1")).await;
            (name, i, again, client)
        }));
    }
    let mut expected: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut clients = Vec::new();
    for task in tasks {
        let (name, i, again, client) = task.await.unwrap();
        assert!(again.is_ok(), "a retry is acked: {again:?}");
        if i % 3 != 0 {
            expected
                .entry("👍".into())
                .or_default()
                .insert(name.clone());
        }
        if i % 4 == 0 {
            expected.entry("🎉".into()).or_default().insert(name);
        }
        clients.push(client);
    }
    let messages = history(&mut alice, "lobby").await;
    let events = 20 + 4 + 7 + 5;
    assert_eq!(
        messages.len(),
        1 + events,
        "each request once, retries not again"
    );
    assert_eq!(reactions(&messages, said), expected);

    // Anything but one emoji, and a 21st distinct one, are refused.
    for bad in ["", "ab", "👍👍", "👍 "] {
        assert_eq!(
            ask(&mut alice, react(said, bad, true, "bad")).await,
            Err("invalid_emoji".into()),
            "{bad:?}"
        );
    }
    for i in 0..18 {
        let emoji = char::from_u32(0x1F600 + i).unwrap().to_string();
        ask(&mut alice, react(said, &emoji, true, &format!("e{i}")))
            .await
            .unwrap();
    }
    assert_eq!(
        ask(&mut alice, react(said, "🚀", true, "e-21")).await,
        Err("invalid_emoji".into())
    );
    // One already there is fine, and so is taking one back.
    assert!(ask(&mut alice, react(said, "🎉", true, "e-old"))
        .await
        .is_ok());
    assert!(ask(&mut alice, react(said, "👍", false, "e-off"))
        .await
        .is_ok());
}

#[tokio::test]
async fn mentions_resolve_users_online_and_accounts_but_not_unknown_names() {
    let server = TestServer::default().await;
    let body = json!({"name": "Dora", "password": "correct horse battery"});
    let created = http(server.addr, "POST", "/api/register", &[], Some(body)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let mut alice = server.join_as("alice").await;
    alice.join("lobby").await;
    let _bob = server.join_as("Bob").await;
    let text = "hi @bob, @DORA and @nobody (mail bob@example.com)";
    let send = json!({"type": "send", "room": "lobby", "text": text, "client_id": "c1"});
    alice.send(send).await;
    match alice
        .recv_until(|m| matches!(m, ServerMsg::Message { .. }))
        .await
    {
        ServerMsg::Message { mentions, .. } => assert_eq!(mentions, ["Bob", "Dora"]),
        _ => unreachable!(),
    }
    let said = history(&mut alice, "lobby").await.remove(0);
    assert_eq!(said.mentions, ["Bob", "Dora"]);
    // An edit's mentions are its new text's.
    let seq = ask(&mut alice, edit(said.seq, "only @alice now", "e1"))
        .await
        .unwrap();
    let messages = history(&mut alice, "lobby").await;
    assert_eq!(messages[0].mentions, ["alice"]);
    assert_eq!(messages[1].seq, seq);
    assert_eq!(messages[1].mentions, ["alice"]);
}

#[tokio::test]
async fn a_retried_edit_delete_or_reaction_is_applied_once() {
    let server = TestServer::default().await;
    let mut alice = server.join_as("alice").await;
    alice.join("lobby").await;
    let first = alice.say("lobby", "one", "c1").await;
    let second = alice.say("lobby", "two", "c2").await;
    let edited = ask(&mut alice, edit(first, "uno", "e1")).await.unwrap();
    let deleted = ask(&mut alice, delete(second, "d1")).await.unwrap();
    let reacted = ask(&mut alice, react(first, "👍", true, "r1"))
        .await
        .unwrap();
    // Sent again (as after a lost ack): the first one's seq, even for a
    // delete whose target is gone now.
    assert_eq!(ask(&mut alice, edit(first, "uno", "e1")).await, Ok(edited));
    assert_eq!(ask(&mut alice, delete(second, "d1")).await, Ok(deleted));
    assert_eq!(
        ask(&mut alice, react(first, "👍", true, "r1")).await,
        Ok(reacted)
    );
    let messages = history(&mut alice, "lobby").await;
    assert_eq!(
        messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [first, second, edited, deleted, reacted]
    );
}

#[tokio::test]
async fn events_survive_a_restart() {
    let server = TestServer::default().await;
    let mut alice = server.join_as("alice").await;
    alice.join("lobby").await;
    let first = alice.say("lobby", "draft", "c1").await;
    let second = alice.say("lobby", "oops", "c2").await;
    ask(&mut alice, edit(first, "final", "e1")).await.unwrap();
    ask(&mut alice, delete(second, "d1")).await.unwrap();
    ask(&mut alice, react(first, "🎉", true, "r1"))
        .await
        .unwrap();
    drop(alice);
    let data = server.shutdown().await;

    let server = TestServer::start_with_data(data, |_| {}).await;
    let mut bob = server.join_as("bob").await;
    let messages = match bob.join_with_history("lobby").await {
        ServerMsg::History { messages, .. } => messages,
        _ => unreachable!(),
    };
    assert_eq!(messages.len(), 5);
    assert_eq!(messages[0].text, "final");
    assert_eq!(messages[1].text, "");
    assert_eq!(messages[3].event, Some(Event::Delete { target: second }));
    assert_eq!(
        reactions(&messages, first),
        BTreeMap::from([("🎉".into(), BTreeSet::from(["alice".into()]))])
    );
    // The room's client_id window survived too: alice's retry is not new.
    let mut alice = server.join_as("alice").await;
    alice.join("lobby").await;
    assert_eq!(ask(&mut alice, react(first, "🎉", true, "r1")).await, Ok(5));
    assert_eq!(search(&mut bob, "final").await, [first]);
    assert!(search(&mut bob, "oops").await.is_empty());
}

#[tokio::test]
async fn a_later_guest_of_the_same_name_cannot_change_what_an_earlier_one_said() {
    let server = TestServer::default().await;
    let mut first = server.join_as("alice").await;
    first.join("lobby").await;
    let said = first.say("lobby", "the first alice was here", "c1").await;
    let mine = first.say("lobby", "and this one she deletes", "c2").await;
    assert!(ask(&mut first, delete(mine, "d1")).await.is_ok());
    first.send(json!({"type": "quit"})).await;
    first.ended().await;

    // The name is free again: another guest takes it.
    let mut second = server.join_as("alice").await;
    second.join("lobby").await;
    assert_eq!(
        ask(&mut second, edit(said, "rewritten", "e1")).await,
        Err("not_author".into())
    );
    assert_eq!(
        ask(&mut second, delete(said, "d2")).await,
        Err("not_author".into())
    );
    // What this guest says is its own.
    let own = second.say("lobby", "the second alice", "c3").await;
    assert!(
        ask(&mut second, edit(own, "the second alice, edited", "e2"))
            .await
            .is_ok()
    );
}
