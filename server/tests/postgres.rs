//! hubbub on PostgreSQL (`--database`), against a real PostgreSQL server
//! started for each test (tests/common/postgres.rs): the store contract
//! every backend keeps, the one-node-per-database guard, and a user's view
//! of history, resume and accounts across a restart of hubbub and of the
//! database.

mod common;

use common::postgres::Postgres;
use common::*;
use hubbub::store::{
    Accounts, ConversationRecord, Conversations, Messages, Party, PgStore, Store, StoreError,
    StoredMessage,
};
use hubbub_protocol::ServerMsg;
use serde_json::json;

#[test]
fn a_database_restart_costs_no_call_made_after_it() {
    let pg = Postgres::start();
    let store = PgStore::open(&pg.database("chat"), false).unwrap();
    // A pooled connection, used once.
    assert!(store.user("ann").unwrap().is_none());
    pg.stop();
    pg.restart();
    // The pool checks a connection idle this long (a second) before
    // using it; time is what is waited for here.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    // The dead connection is not handed out: the first call works.
    assert!(store.user("ann").unwrap().is_none());
    store.ping().unwrap();
}

#[test]
fn the_postgres_store_keeps_the_contract() {
    let pg = Postgres::start();
    let messages = PgStore::open(&pg.database("messages"), false).unwrap();
    hubbub::store::contract::messages(&messages);
    let accounts = PgStore::open(&pg.database("accounts"), false).unwrap();
    hubbub::store::contract::accounts(&accounts);
    let files = PgStore::open(&pg.database("files"), false).unwrap();
    hubbub::store::contract::files(&files);
    hubbub::store::contract::shared_blobs(&files);
    let attachments = PgStore::open(&pg.database("attachments"), false).unwrap();
    hubbub::store::contract::attachments(&attachments);
    let search = PgStore::open(&pg.database("search"), false).unwrap();
    hubbub::store::contract::search(&search);
    let events = PgStore::open(&pg.database("events"), false).unwrap();
    hubbub::store::contract::events(&events);
    let conversations = PgStore::open(&pg.database("conversations"), false).unwrap();
    hubbub::store::contract::conversations(&conversations);
    drop(messages);
    // Migrations ran once; opening again finds the schema and the data.
    let url = pg.url("messages");
    let again = loop {
        match PgStore::open(&url, false) {
            Err(StoreError::NodeBusy(_)) => std::thread::yield_now(), // the first one is closing
            other => break other.unwrap(),
        }
    };
    assert_eq!(again.load_room("lobby", 10, 10).unwrap().last_seq, 5);
}

/// In a cluster the database numbers each room's messages: a dropped
/// conversation's numbering goes with it, so the same two talking again
/// start at seq 1 on any node.
#[test]
fn a_conversation_dropped_in_a_cluster_numbers_from_one_again() {
    let pg = Postgres::start();
    let url = pg.database("cluster");
    let (one, two) = (
        PgStore::open(&url, true).unwrap(),
        PgStore::open(&url, true).unwrap(),
    );
    let party = |name: &str, guest| Party {
        key: name.into(),
        name: name.into(),
        guest,
    };
    let record = ConversationRecord {
        room: "@ann+gus".into(),
        a: party("ann", false),
        b: party("gus", true),
        opened_at: 1,
        ..ConversationRecord::default()
    };
    let said = |text: &str| StoredMessage {
        room: record.room.clone(),
        from: "ann".into(),
        text: text.into(),
        sent_at: 2,
        ..StoredMessage::default()
    };
    one.open_conversation(&record).unwrap();
    let mut batch = [said("hi"), said("there")];
    one.number_and_append(&mut batch).unwrap();
    let mut batch = [said("again")];
    two.number_and_append(&mut batch).unwrap();
    assert_eq!(batch[0].seq, 3, "numbered across nodes");
    assert_eq!(
        two.drop_conversations("gus").unwrap(),
        [record.room.as_str()]
    );
    assert_eq!(
        one.last_seqs(std::slice::from_ref(&record.room)).unwrap(),
        []
    );
    two.open_conversation(&record).unwrap();
    let mut batch = [said("hello again")];
    one.number_and_append(&mut batch).unwrap();
    assert_eq!(batch[0].seq, 1);
    let history = two.history(&record.room, None, 10).unwrap();
    assert_eq!(
        history
            .iter()
            .map(|m| (m.seq, m.text.as_str()))
            .collect::<Vec<_>>(),
        [(1, "hello again")]
    );
}

#[test]
fn a_second_node_on_the_same_database_is_refused_with_the_reason() {
    let pg = Postgres::start();
    let url = pg.database("hub");
    let first = PgStore::open(&url, false).unwrap();
    let Err(StoreError::NodeBusy(why)) = PgStore::open(&url, false) else {
        panic!("a second node must not open the database");
    };
    assert!(why.contains("another hubbub node"), "{why}");
    drop(first);
}

/// A user's messages and account outlive the server, and a resume picks
/// up exactly where it left off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_resume_and_accounts_survive_a_restart_on_postgres() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let url = {
        let pg = &pg;
        tokio::task::block_in_place(|| pg.database("chat"))
    };
    let with_db = |url: String| move |c: &mut hubbub::Config| c.database = Some(url);

    let server = TestServer::start(with_db(url.clone())).await;
    let registered = http(
        server.addr,
        "POST",
        "/api/register",
        &[],
        Some(json!({"name": "carol", "password": "correct horse battery"})),
    )
    .await;
    assert_eq!(registered.status, 201, "{}", registered.body);
    let mut alice = server.join_as("alice").await;
    alice.join("lobby").await;
    let mut bob = server.join_as("bob").await;
    bob.join("lobby").await;
    for i in 1..=3 {
        let seq = alice
            .say("lobby", &format!("hello {i} ✓"), &format!("c-{i}"))
            .await;
        assert_eq!(seq, i);
    }
    // bob saw 1 and 2, then his connection dropped.
    for i in 1..=2 {
        let msg = bob
            .recv_until(|m| matches!(m, ServerMsg::Message { seq, .. } if *seq == i))
            .await;
        assert!(matches!(msg, ServerMsg::Message { .. }));
    }
    drop(bob);
    drop(alice);
    server.shutdown().await;

    // A new server on the same database.
    let server = TestServer::start(with_db(url.clone())).await;
    let mut bob = Client::connect(&server.url()).await;
    bob.hello("bob").await;
    bob.send(json!({"type":"join","room":"lobby","since":2}))
        .await;
    let msg = bob
        .recv_until(|m| matches!(m, ServerMsg::Message { .. }))
        .await;
    let ServerMsg::Message { seq, text, .. } = msg else {
        unreachable!()
    };
    assert_eq!(
        (seq, text.as_str()),
        (3, "hello 3 ✓"),
        "resume from since=2"
    );
    // The next message continues the sequence.
    let seq = bob.say("lobby", "after the restart", "b-1").await;
    assert_eq!(seq, 4);
    // A retry of alice's first send is recognised after the restart.
    let mut alice = server.join_as("alice").await;
    alice.join("lobby").await;
    alice
        .send(json!({"type":"send","room":"lobby","text":"hello 1 ✓","client_id":"c-1"}))
        .await;
    let ack = alice
        .recv_until(|m| matches!(m, ServerMsg::Ack { .. }))
        .await;
    assert!(
        matches!(ack, ServerMsg::Ack { seq: Some(1), .. }),
        "{ack:?}"
    );
    // carol's account is still there.
    let login = http(
        server.addr,
        "POST",
        "/api/login",
        &[],
        Some(json!({"name": "carol", "password": "correct horse battery"})),
    )
    .await;
    assert_eq!(login.status, 200, "{}", login.body);
    server.shutdown().await;
}

/// PostgreSQL going away and coming back: the send that meets the outage
/// waits and is acked once stored; sends after it are refused with
/// `unavailable` (retry), `/readyz` says not ready meanwhile, and nothing
/// acked is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_database_is_down_sends_wait_or_are_refused_and_nothing_is_lost() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let url = tokio::task::block_in_place(|| pg.database("chat"));
    let server = TestServer::start(|c| c.database = Some(url.clone())).await;
    let ready = |server: &TestServer| {
        let addr = server.addr;
        async move { http(addr, "GET", "/readyz", &[], None).await.status }
    };
    assert_eq!(ready(&server).await, 200);
    let mut alice = server.join_as("alice").await;
    alice.join("lobby").await;
    assert_eq!(alice.say("lobby", "before", "c-1").await, 1);

    tokio::task::block_in_place(|| pg.stop());
    assert_eq!(ready(&server).await, 503, "not ready without its database");
    alice
        .send(json!({"type":"send","room":"lobby","text":"during","client_id":"c-2"}))
        .await;
    // Once the store has failed, new sends are refused, not queued.
    let failed = async {
        loop {
            let metrics = http(server.addr, "GET", "/metrics", &[], None).await;
            if !metrics.body.contains("hubbub_store_errors_total 0") {
                break;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(DEADLINE, failed)
        .await
        .expect("the store failed");
    alice
        .send(json!({"type":"send","room":"lobby","text":"after","client_id":"c-3"}))
        .await;
    let refused = alice.expect_error("unavailable").await;
    assert!(
        matches!(refused, ServerMsg::Error { client_id: Some(ref id), .. } if id == "c-3"),
        "{refused:?}"
    );

    tokio::task::block_in_place(|| pg.restart());
    let ack = alice
        .recv_until(|m| matches!(m, ServerMsg::Ack { .. }))
        .await;
    assert!(
        matches!(ack, ServerMsg::Ack { seq: Some(2), .. }),
        "{ack:?}"
    );
    assert_eq!(ready(&server).await, 200);
    assert_eq!(
        alice.say("lobby", "after", "c-3").await,
        3,
        "the retry goes through"
    );
    server.shutdown().await;

    let server = TestServer::start(|c| c.database = Some(url.clone())).await;
    let mut bob = server.join_as("bob").await;
    let history = bob.join_with_history("lobby").await;
    let ServerMsg::History { messages, .. } = history else {
        panic!("{history:?}")
    };
    let texts: Vec<_> = messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["before", "during", "after"]);
    server.shutdown().await;
}
