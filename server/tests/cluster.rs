//! Several hubbub nodes sharing one PostgreSQL database (`--cluster`):
//! room messages, their order and numbering, resume and idempotent retries
//! hold across nodes. Each test starts a throwaway PostgreSQL
//! (tests/common/postgres.rs) and three nodes on it, in-process.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::postgres::Postgres;
use common::*;
use hubbub::store::{PgStore, StoreError};
use hubbub_protocol::{ErrorCode, Event, ServerMsg};
use serde_json::json;

/// Three nodes on one fresh database.
async fn three_nodes() -> (Postgres, Vec<TestServer>) {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let url = tokio::task::block_in_place(|| pg.database("chat"));
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(node(&url, Duration::from_secs(10)).await);
    }
    (pg, nodes)
}

/// A node of the cluster on `url`, in-process, presence announced promptly,
/// other nodes taken for dead after `ttl` of silence.
async fn node(url: &str, ttl: Duration) -> TestServer {
    let url = url.to_string();
    TestServer::start(move |c| {
        c.database = Some(url);
        c.cluster = true;
        c.presence_interval = Duration::from_millis(20);
        c.node_ttl = ttl;
    })
    .await
}

/// The names in `joined` (or `left`) notices for `room` among `msgs`.
fn notices(msgs: &[ServerMsg], joined: bool) -> Vec<String> {
    msgs.iter()
        .flat_map(|m| match m {
            ServerMsg::Joined { users, .. } if joined => users.clone(),
            ServerMsg::Left { users, .. } if !joined => users.clone(),
            _ => Vec::new(),
        })
        .collect()
}

/// A tab of an account in the lobby, through `node`.
async fn account_member(node: &TestServer, bearer: &str) -> Client {
    let mut tab = tab(node.addr, bearer).await;
    tab.join("lobby").await;
    tab
}

async fn member(node: &TestServer, name: &str) -> Client {
    let mut client = node.join_as(name).await;
    client.join("lobby").await;
    client
}

/// A guest coming back as `name` through `node` after its link dropped:
/// until its old node has let go of the name, `hello` is refused with
/// `name_taken` and tried again (as the web and terminal clients do).
async fn rejoin(node: &TestServer, name: &str) -> Client {
    let mut client = Client::connect(&node.url()).await;
    let welcomed = async {
        loop {
            client.send(json!({"type": "hello", "name": name})).await;
            match client.recv().await {
                ServerMsg::Welcome { .. } => return,
                ServerMsg::Error { code, .. } => {
                    assert_eq!(code, ErrorCode::NameTaken);
                    // The old node's release has no event to await here.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                other => panic!("{other:?}"),
            }
        }
    };
    tokio::time::timeout(DEADLINE, welcomed)
        .await
        .expect("the name came free");
    client
}

/// Collects room messages until `n` have arrived: seq → (from, text).
async fn messages(client: &mut Client, n: usize) -> BTreeMap<u64, (String, String)> {
    let mut got = BTreeMap::new();
    while got.len() < n {
        if let ServerMsg::Message {
            seq, from, text, ..
        } = client
            .recv_until(|m| matches!(m, ServerMsg::Message { .. }))
            .await
        {
            assert!(
                got.insert(seq, (from, text)).is_none(),
                "seq {seq} delivered twice"
            );
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_on_every_node_get_every_message_numbered_once_in_one_order() {
    let (_pg, nodes) = three_nodes().await;
    let names = ["ann", "ben", "cat"];
    let mut clients = Vec::new();
    for (node, name) in nodes.iter().zip(names) {
        clients.push(member(node, name).await);
    }
    // Everyone sends at once, through their own node.
    const EACH: usize = 20;
    for i in 0..EACH {
        for (client, name) in clients.iter_mut().zip(names) {
            client
                .send(json!({"type":"send","room":"lobby","text":format!("{name} {i}"),"client_id":format!("{name}-{i}")}))
                .await;
        }
    }
    let mut seen = Vec::new();
    for client in &mut clients {
        seen.push(messages(client, 3 * EACH).await);
    }
    let seqs: Vec<u64> = seen[0].keys().copied().collect();
    assert_eq!(
        seqs,
        (1..=3 * EACH as u64).collect::<Vec<_>>(),
        "gapless from 1"
    );
    assert_eq!(seen[0], seen[1], "node 2 saw the same numbering");
    assert_eq!(seen[0], seen[2], "node 3 saw the same numbering");
    // Each sender's messages keep the order it sent them in.
    for name in names {
        let mine: Vec<&str> = seen[0]
            .values()
            .filter(|(from, _)| from == name)
            .map(|(_, text)| text.as_str())
            .collect();
        let sent: Vec<String> = (0..EACH).map(|i| format!("{name} {i}")).collect();
        assert_eq!(mine, sent);
    }
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resumes_on_another_node_with_no_gap_and_no_duplicate() {
    let (_pg, nodes) = three_nodes().await;
    let mut ann = member(&nodes[0], "ann").await;
    let mut ben = member(&nodes[1], "ben").await;
    for i in 1..=3 {
        assert_eq!(
            ben.say("lobby", &format!("m{i}"), &format!("b-{i}")).await,
            i
        );
    }
    let before = messages(&mut ann, 3).await;
    assert_eq!(before.keys().copied().collect::<Vec<_>>(), [1, 2, 3]);
    drop(ann); // her link drops; the room goes on
    for i in 4..=6 {
        assert_eq!(
            ben.say("lobby", &format!("m{i}"), &format!("b-{i}")).await,
            i
        );
    }
    // She comes back through the third node.
    let mut ann = rejoin(&nodes[2], "ann").await;
    ann.send(json!({"type":"join","room":"lobby","since":3}))
        .await;
    let after = messages(&mut ann, 3).await;
    let texts: Vec<&str> = after.values().map(|(_, t)| t.as_str()).collect();
    assert_eq!(after.keys().copied().collect::<Vec<_>>(), [4, 5, 6]);
    assert_eq!(texts, ["m4", "m5", "m6"]);
    // Live again: a new message reaches her once.
    assert_eq!(ben.say("lobby", "m7", "b-7").await, 7);
    assert_eq!(
        messages(&mut ann, 1)
            .await
            .keys()
            .copied()
            .collect::<Vec<_>>(),
        [7]
    );
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_through_another_node_is_acked_with_the_first_number() {
    let (_pg, nodes) = three_nodes().await;
    let mut cat = member(&nodes[2], "cat").await;
    let mut ann = member(&nodes[0], "ann").await;
    assert_eq!(ann.say("lobby", "only once", "a-1").await, 1);
    drop(ann);
    // Her ack was lost (say); she reconnects elsewhere and sends again.
    let mut ann = rejoin(&nodes[1], "ann").await;
    ann.join("lobby").await;
    assert_eq!(
        ann.say("lobby", "only once", "a-1").await,
        1,
        "the same seq"
    );
    assert_eq!(
        ann.say("lobby", "next", "a-2").await,
        2,
        "no number was used up"
    );
    let seen = messages(&mut cat, 2).await;
    assert_eq!(
        seen.values().map(|(_, t)| t.as_str()).collect::<Vec<_>>(),
        ["only once", "next"]
    );
    for node in nodes {
        node.shutdown().await;
    }
}

#[test]
fn a_lone_node_and_a_cluster_never_share_a_database() {
    let pg = Postgres::start();
    let url = pg.database("chat");
    let clustered = PgStore::open(&url, true).unwrap();
    let _second = PgStore::open(&url, true).expect("cluster nodes share it");
    let Err(StoreError::NodeBusy(why)) = PgStore::open(&url, false) else {
        panic!("a lone node must not open a cluster's database");
    };
    assert!(why.contains("--cluster"), "{why}");
    drop(clustered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_spans_the_nodes_and_each_change_is_announced_once() {
    let (pg, nodes) = three_nodes().await;
    let mut ann = member(&nodes[0], "ann").await;
    // ben (an account, so he may have several tabs) arrives through
    // another node: ann hears of it once.
    let bearer = register(nodes[1].addr, "ben").await;
    let mut ben = connect_with(&nodes[1].url(), &[("authorization", &bearer)])
        .await
        .unwrap();
    ben.hello("whoever").await;
    let snapshot = ben.join("lobby").await;
    ann.recv_until(|m| joined(m, "lobby", "ben")).await;
    // He sees her too (in his snapshot, if her node had published her by
    // then, or right after), and `who` anywhere lists both.
    let heard = ben.drain().await;
    let knows_ann = |m: &ServerMsg| {
        matches!(m, ServerMsg::Presence { users, .. } | ServerMsg::Joined { users, .. }
            if users.iter().any(|u| u == "ann"))
    };
    if !snapshot.iter().any(|u| u == "ann") && !heard.iter().any(knows_ann) {
        ben.recv_until(|m| joined(m, "lobby", "ann")).await;
    }
    let mut cat = nodes[2].join_as("cat").await;
    let snapshot = cat.join("lobby").await;
    ann.recv_until(|m| joined(m, "lobby", "cat")).await;
    ben.recv_until(|m| joined(m, "lobby", "cat")).await;
    // cat learns of the two others, from the snapshot or right after it.
    let mut known = snapshot;
    while !(known.iter().any(|u| u == "ann") && known.iter().any(|u| u == "ben")) {
        if let ServerMsg::Joined { users, .. } = cat
            .recv_until(|m| matches!(m, ServerMsg::Joined { .. }))
            .await
        {
            known.extend(users);
        }
    }
    cat.send(json!({"type":"who","room":"lobby"})).await;
    let who = cat
        .recv_until(|m| matches!(m, ServerMsg::Presence { .. }))
        .await;
    let ServerMsg::Presence { users, .. } = who else {
        unreachable!()
    };
    assert_eq!(users, ["ann", "ben", "cat"]);
    let before = cat.drain().await;
    assert!(notices(&before, false).is_empty(), "{before:?}");

    // ben opens a second tab on the third node: he was online already.
    let mut ben2 = account_member(&nodes[2], &bearer).await;
    // Once both nodes have said so (otherwise the two changes could reach
    // ann's node in either order, as they would in life) ...
    let both = async {
        while pg.query(
            "chat",
            "SELECT count(*) FROM presence WHERE room = 'lobby' AND name = 'ben'",
        ) != "2"
        {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(DEADLINE, both)
        .await
        .expect("published");
    // ...he closes the first: still online (through the other tab).
    drop(ben);
    // cat hears nothing of ben either way; a message shows the order.
    ben2.say("lobby", "still here", "b2-1").await;
    let seen = ann
        .collect_until(|m| matches!(m, ServerMsg::Message { text, .. } if text == "still here"))
        .await;
    assert!(notices(&seen, false).is_empty(), "nobody left: {seen:?}");
    assert!(notices(&seen, true).is_empty(), "nobody new: {seen:?}");
    // The last tab goes: everyone hears ben left, once.
    drop(ben2);
    let seen = ann.collect_until(|m| left(m, "lobby", "ben")).await;
    assert_eq!(notices(&seen, true), Vec::<String>::new());
    let seen = cat.collect_until(|m| left(m, "lobby", "ben")).await;
    assert!(
        !notices(&seen, true).contains(&"ben".to_string()),
        "{seen:?}"
    );
    let rest = ann.drain().await;
    assert!(
        notices(&rest, false).is_empty() && notices(&rest, true).is_empty(),
        "{rest:?}"
    );
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_users_go_offline_on_the_others_once() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let url = tokio::task::block_in_place(|| pg.database("chat"));
    let survivor = node(&url, Duration::from_secs(1)).await;
    let mut ann = member(&survivor, "ann").await;
    // A real node process, killed with SIGKILL: no goodbye.
    let data = tempfile::tempdir().unwrap();
    let (mut doomed, addr) = spawn_hubbub(
        data.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--database",
            &url,
            "--cluster",
            "--node-ttl",
            "1s",
            "--presence-interval",
            "20ms",
        ],
    )
    .await;
    let mut dan = Client::connect(&format!("ws://{addr}/ws")).await;
    dan.hello("dan").await;
    dan.join("lobby").await;
    ann.recv_until(|m| joined(m, "lobby", "dan")).await;
    doomed.kill().await.unwrap(); // SIGKILL
    let started = std::time::Instant::now();
    let seen = ann.collect_until(|m| left(m, "lobby", "dan")).await;
    // Within the node TTL and a heartbeat, and only once.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(notices(&seen, true).is_empty(), "{seen:?}");
    let rest = ann.drain().await;
    assert!(notices(&rest, false).is_empty(), "{rest:?}");
    survivor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_message_reaches_the_other_person_on_another_node() {
    let (_pg, nodes) = three_nodes().await;
    let bearer = register(nodes[0].addr, "ann").await;
    let mut ann = connect_with(&nodes[0].url(), &[("authorization", &bearer)])
        .await
        .unwrap();
    ann.hello("ann").await;
    let mut ben = nodes[1].join_as("ben").await;
    // ann's tab on the third node sees what she says too.
    let mut ann2 = connect_with(&nodes[2].url(), &[("authorization", &bearer)])
        .await
        .unwrap();
    ann2.hello("ann").await;
    // Until ann's node has heard that ben is online elsewhere, he is
    // unknown there; then the conversation opens, on all her tabs.
    let opened = async {
        loop {
            ann.send(json!({"type":"open","with":"BEN"})).await;
            match ann
                .recv_until(|m| {
                    matches!(m, ServerMsg::Conversation { .. } | ServerMsg::Error { .. })
                })
                .await
            {
                ServerMsg::Conversation { room, with } => return (room, with),
                ServerMsg::Error { code, .. } => {
                    assert!(matches!(code, ErrorCode::UnknownUser), "{code:?}");
                    // Polling for news that has no event of its own here.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                other => panic!("{other:?}"),
            }
        }
    };
    let (room, with) = tokio::time::timeout(DEADLINE, opened)
        .await
        .expect("ben became reachable");
    assert_eq!((room.as_str(), with.as_str()), ("@ann+ben", "ben"));
    let told = ann2
        .recv_until(|m| matches!(m, ServerMsg::Conversation { .. }))
        .await;
    assert_eq!(
        told,
        ServerMsg::Conversation {
            room: room.clone(),
            with
        }
    );
    ann.join(&room).await;
    ann.say(&room, "psst", "d-1").await;
    // ben, on another node, hears of it and joins: the message is there.
    let told = ben
        .recv_until(|m| matches!(m, ServerMsg::Conversation { .. }))
        .await;
    assert_eq!(
        told,
        ServerMsg::Conversation {
            room: room.clone(),
            with: "ann".into()
        }
    );
    match ben.join_with_history(&room).await {
        ServerMsg::History { messages, .. } => {
            assert_eq!(messages.len(), 1);
            assert_eq!(
                (messages[0].from.as_str(), messages[0].text.as_str()),
                ("ann", "psst")
            );
        }
        other => panic!("{other:?}"),
    }
    ben.say(&room, "hi ann", "b-1").await;
    let msg = ann
        .recv_until(|m| matches!(m, ServerMsg::Message { from, .. } if from == "ben"))
        .await;
    assert!(matches!(msg, ServerMsg::Message { text, .. } if text == "hi ann"));
    // Nobody by that name anywhere.
    ann.send(json!({"type":"open","with":"ghost"})).await;
    // ben's online notice in the conversation comes from his node, in its
    // own time: it may come first.
    let refused = ann
        .recv_until(|m| matches!(m, ServerMsg::Error { .. }))
        .await;
    assert!(
        matches!(
            refused,
            ServerMsg::Error {
                code: ErrorCode::UnknownUser,
                ..
            }
        ),
        "{refused:?}"
    );
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_through_one_node_closes_that_sessions_sockets_on_every_node() {
    let (_pg, nodes) = three_nodes().await;
    let bearer = register(nodes[0].addr, "ann").await;
    let mut far = account_member(&nodes[1], &bearer).await;
    let mut farther = account_member(&nodes[2], &bearer).await;
    // Another session of the same account stays.
    let other = account_session(&nodes[0], "ann").await;
    let mut kept = account_member(&nodes[2], &other).await;
    let out = http(
        nodes[0].addr,
        "POST",
        "/api/logout",
        &[("authorization", &bearer)],
        None,
    )
    .await;
    assert_eq!(out.status, 204, "{}", out.body);
    for tab in [&mut far, &mut farther] {
        assert_eq!(tab.ended().await, Ended::Close(4501));
    }
    kept.send(json!({"type":"ping","id":7})).await;
    kept.recv_until(|m| matches!(m, ServerMsg::Pong { .. }))
        .await;
    // The session is gone everywhere: no node lets it in again.
    for node in &nodes {
        let refused = connect_with(&node.url(), &[("authorization", &bearer)]).await;
        assert_eq!(refused.err(), Some(401));
    }
    for node in nodes {
        node.shutdown().await;
    }
}

/// Signs in to the existing account `name` through `node`: a second session.
async fn account_session(node: &TestServer, name: &str) -> String {
    let body = json!({"name": name, "password": "correct horse battery"});
    let session = http(node.addr, "POST", "/api/login", &[], Some(body)).await;
    assert_eq!(session.status, 200, "{}", session.body);
    format!("Bearer {}", session.json()["token"].as_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_name_is_one_guests_on_every_node() {
    let (_pg, nodes) = three_nodes().await;
    let mut zed = member(&nodes[0], "zed").await;
    // Not through another node, in any case, by hello or by rename.
    let mut other = Client::connect(&nodes[1].url()).await;
    other.send(json!({"type":"hello","name":"ZED"})).await;
    other.expect_error("name_taken").await;
    let mut amy = member(&nodes[2], "amy").await;
    amy.send(json!({"type":"rename","name":"Zed"})).await;
    let refused = amy
        .recv_until(|m| matches!(m, ServerMsg::Error { .. }))
        .await;
    assert!(
        matches!(
            refused,
            ServerMsg::Error {
                code: ErrorCode::NameTaken,
                ..
            }
        ),
        "{refused:?}"
    );
    // Nor can anyone register it while the guest is online.
    let body = json!({"name": "zed", "password": "correct horse battery"});
    let taken = http(nodes[1].addr, "POST", "/api/register", &[], Some(body)).await;
    assert_eq!(taken.status, 409, "{}", taken.body);
    assert_eq!(taken.json()["error"], "name_taken");
    // Two nodes asking for one free name at once: one gets it.
    let mut left = Client::connect(&nodes[1].url()).await;
    let mut right = Client::connect(&nodes[2].url()).await;
    left.send(json!({"type":"hello","name":"kim"})).await;
    right.send(json!({"type":"hello","name":"kim"})).await;
    let answers = [left.recv().await, right.recv().await];
    let welcomed = answers
        .iter()
        .filter(|m| matches!(m, ServerMsg::Welcome { .. }))
        .count();
    assert_eq!(welcomed, 1, "{answers:?}");
    // zed leaves; the name comes free on the other nodes.
    zed.send(json!({"type":"quit"})).await;
    assert_eq!(zed.ended().await, Ended::Close(1000));
    let mut again = rejoin(&nodes[1], "Zed").await;
    again.join("lobby").await;
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renames_and_typing_reach_members_on_other_nodes() {
    let (_pg, nodes) = three_nodes().await;
    let mut bob = member(&nodes[0], "bob").await;
    let mut amy = member(&nodes[1], "amy").await;
    bob.recv_until(|m| joined(m, "lobby", "amy")).await;
    amy.send(json!({"type":"typing","room":"lobby"})).await;
    let typing = bob
        .recv_until(|m| matches!(m, ServerMsg::Typing { .. }))
        .await;
    assert_eq!(
        typing,
        ServerMsg::Typing {
            room: "lobby".into(),
            user: "amy".into()
        }
    );
    amy.send(json!({"type":"rename","name":"amelia"})).await;
    let seen = bob
        .collect_until(|m| matches!(m, ServerMsg::Renamed { .. }))
        .await;
    assert_eq!(
        seen.last(),
        Some(&ServerMsg::Renamed {
            room: Some("lobby".into()),
            from: "amy".into(),
            to: "amelia".into(),
            upload_token: None,
        })
    );
    // One rename, not also a departure and an arrival: by the time cy,
    // who comes through amelia's node after her rename, is announced, that
    // node has published the rename too.
    let _cy = member(&nodes[1], "cy").await;
    let rest = bob.collect_until(|m| joined(m, "lobby", "cy")).await;
    let everything: Vec<ServerMsg> = seen.into_iter().chain(rest).collect();
    assert_eq!(notices(&everything, true), ["cy"], "{everything:?}");
    assert!(notices(&everything, false).is_empty(), "{everything:?}");
    bob.send(json!({"type":"who","room":"lobby"})).await;
    let who = bob
        .recv_until(|m| matches!(m, ServerMsg::Presence { .. }))
        .await;
    let ServerMsg::Presence { users, .. } = who else {
        unreachable!()
    };
    assert_eq!(users, ["amelia", "bob", "cy"]);
    // The old name is free everywhere, the new one taken everywhere.
    let _amy = rejoin(&nodes[2], "amy").await;
    let mut other = Client::connect(&nodes[2].url()).await;
    other.send(json!({"type":"hello","name":"amelia"})).await;
    other.expect_error("name_taken").await;
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accounts_read_marker_reaches_its_tabs_on_every_node() {
    let (_pg, nodes) = three_nodes().await;
    let bearer = register(nodes[0].addr, "ann").await;
    let mut ann = account_member(&nodes[0], &bearer).await;
    let mut ann2 = account_member(&nodes[2], &bearer).await;
    let mut ben = member(&nodes[1], "ben").await;
    let seq = ben.say("lobby", "read me", "r-1").await;
    ann.recv_until(|m| matches!(m, ServerMsg::Message { seq: s, .. } if *s == seq))
        .await;
    ann.send(json!({"type":"read","room":"lobby","seq":seq}))
        .await;
    let told = ServerMsg::Read {
        room: "lobby".into(),
        seq,
    };
    for tab in [&mut ann, &mut ann2] {
        let read = tab
            .recv_until(|m| matches!(m, ServerMsg::Read { .. }))
            .await;
        assert_eq!(read, told);
    }
    // Stored in the shared database: a new tab on the third node is told.
    let mut ann3 = connect_with(&nodes[1].url(), &[("authorization", &bearer)])
        .await
        .unwrap();
    ann3.hello("ann").await;
    ann3.send(json!({"type":"join","room":"lobby"})).await;
    let read = ann3
        .recv_until(|m| matches!(m, ServerMsg::Read { .. }))
        .await;
    assert_eq!(read, told);
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_said_through_one_node_is_found_through_another() {
    let (_pg, nodes) = three_nodes().await;
    let mut ann = member(&nodes[0], "ann").await;
    ann.say("lobby", "Lunch at the harbour?", "s-1").await;
    // A user of another node, in no room, finds it once it is acked.
    let mut ben = nodes[1].join_as("ben").await;
    ben.send(json!({"type": "search", "query": "harbour LUNCH"}))
        .await;
    match ben.recv().await {
        ServerMsg::SearchResults { results, next, .. } => {
            let found: Vec<_> = results
                .iter()
                .map(|h| (h.room.as_str(), h.seq, h.from.as_str(), h.text.as_str()))
                .collect();
            assert_eq!(found, [("lobby", 1, "ann", "Lunch at the harbour?")]);
            assert_eq!(next, None);
        }
        other => panic!("expected search_results, got {other:?}"),
    }
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accounts_connection_cap_counts_its_sockets_on_every_node() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let url = tokio::task::block_in_place(|| pg.database("chat"));
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let url = url.clone();
        nodes.push(
            TestServer::start(move |c| {
                c.database = Some(url);
                c.cluster = true;
                c.max_conns_per_user = 2;
            })
            .await,
        );
    }
    let bearer = register(nodes[0].addr, "ann").await;
    let first = account_member(&nodes[0], &bearer).await;
    let _second = account_member(&nodes[1], &bearer).await;
    let refused = connect_with(&nodes[2].url(), &[("authorization", &bearer)]).await;
    assert_eq!(refused.err(), Some(429), "a third socket, on a third node");
    // One tab closes: a socket may open again, on any node.
    drop(first);
    let reopened = async {
        loop {
            match connect_with(&nodes[2].url(), &[("authorization", &bearer)]).await {
                Ok(mut tab) => {
                    tab.hello("ann").await;
                    return tab;
                }
                Err(status) => {
                    assert_eq!(status, 429);
                    // The count is told by the first node; no event here.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    };
    tokio::time::timeout(DEADLINE, reopened)
        .await
        .expect("the slot came free");
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_uploaded_through_one_node_downloads_through_another() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let url = tokio::task::block_in_place(|| pg.database("chat"));
    let a = node(&url, Duration::from_secs(10)).await;
    let b = node(&url, Duration::from_secs(10)).await;
    let c = node(&url, Duration::from_secs(10)).await;
    let bearer = register(a.addr, "alice").await;
    // Over one row of the store's chunks.
    let bytes: Vec<u8> = (0..1_500_000u32).map(|i| (i * 7 % 253) as u8).collect();
    let alices = [("Authorization", bearer.as_str())];
    let up = http_raw(
        a.addr,
        "POST",
        "/api/files?name=report.bin",
        &alices,
        Body::Sized(&bytes),
    )
    .await;
    let path = up.created()["url"].as_str().unwrap().to_string();

    // Node B never saw the upload: its data directory has no files/.
    assert!(!b.data.path().join("files").exists());
    let got = http_raw(b.addr, "GET", &path, &alices, Body::None).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, bytes);
    let ranged = [alices[0], ("Range", "bytes=1400000-1400009")];
    let got = http_raw(b.addr, "GET", &path, &ranged, Body::None).await;
    assert_eq!(got.status, 206);
    assert_eq!(got.body, bytes[1_400_000..1_400_010]);
    // Someone else, on any node, gets the 404 of no file.
    let bob = register(b.addr, "bob").await;
    let theirs = [("Authorization", bob.as_str())];
    for node in [&b, &a, &c] {
        let got = http_raw(node.addr, "GET", &path, &theirs, Body::None).await;
        assert_eq!(got.status, 404);
    }

    // Sent in a room, through node A, to bob in it through node B.
    let mut alices_tab = account_member(&a, &bearer).await;
    let mut bobs_tab = account_member(&b, &bob).await;
    // Node A knows bob is in the room once alice is told so.
    alices_tab
        .recv_until(|m| common::joined(m, "lobby", "bob"))
        .await;
    let id = up.json()["id"].as_str().unwrap().to_string();
    alices_tab
        .send(json!({"type":"send","room":"lobby","text":"the report",
                     "client_id":"r-1","attachments":[id]}))
        .await;
    let got = bobs_tab
        .recv_until(|m| matches!(m, ServerMsg::Message { .. }))
        .await;
    let ServerMsg::Message { attachments, .. } = got else {
        unreachable!()
    };
    assert_eq!(attachments.len(), 1);
    assert_eq!(
        (attachments[0].id.as_str(), attachments[0].name.as_str()),
        (id.as_str(), "report.bin")
    );
    assert_eq!(attachments[0].size, bytes.len() as u64);
    // Bob may read it through every node: B (his), A (the room is open
    // there, bob a member from afar) and C (the room is not open there).
    for node in [&b, &a, &c] {
        let got = http_raw(node.addr, "GET", &path, &theirs, Body::None).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.body, bytes);
    }
    // Once he leaves the room, nowhere: node C, where the room is not
    // open, asks the nodes' shared presence, which node B updates on its
    // own schedule; so each node has a few seconds to learn of the leave.
    bobs_tab.send(json!({"type":"leave","room":"lobby"})).await;
    alices_tab
        .recv_until(|m| common::left(m, "lobby", "bob"))
        .await;
    for node in [&b, &a, &c] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let got = http_raw(node.addr, "GET", &path, &theirs, Body::None).await;
            if got.status == 404 {
                break;
            }
            assert_eq!(got.status, 200, "only 200 or 404 while the leave spreads");
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} still serves the file 10 s after bob left",
                node.addr
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guests_upload_token_works_through_every_node_while_it_holds_its_name() {
    let (_pg, nodes) = three_nodes().await;
    let mut ann = Client::connect(&nodes[0].url()).await;
    let ServerMsg::Welcome {
        upload_token: Some(token),
        ..
    } = ann.hello("ann").await
    else {
        panic!("a guest's welcome carries an upload token")
    };
    ann.join("lobby").await;
    let auth = format!("Bearer {token}");
    // Uploaded through node B, though ann's socket is on node A.
    let up = http_raw(
        nodes[1].addr,
        "POST",
        "/api/files?name=hi.txt",
        &[("Authorization", &auth)],
        Body::Sized(b"from a guest"),
    )
    .await;
    let id = up.created()["id"].as_str().unwrap().to_string();
    let mut bo = Client::connect(&nodes[2].url()).await;
    let ServerMsg::Welcome {
        upload_token: Some(bos_token),
        ..
    } = bo.hello("bo").await
    else {
        panic!("a guest's welcome carries an upload token")
    };
    bo.join("lobby").await;
    ann.recv_until(|m| common::joined(m, "lobby", "bo")).await;
    ann.send(json!({"type":"send","room":"lobby","text":"","client_id":"g-1","attachments":[id]}))
        .await;
    bo.recv_until(|m| matches!(m, ServerMsg::Message { .. }))
        .await;
    // Bo, on node C, reads it through node A with the token in the query.
    let path = format!("/api/files/{id}?token={bos_token}");
    let got = http_raw(nodes[0].addr, "GET", &path, &[], Body::None).await;
    assert_eq!(
        (got.status, got.body.as_slice()),
        (200, &b"from a guest"[..])
    );
    // Once ann is gone, her token is good nowhere.
    drop(ann);
    bo.recv_until(|m| common::left(m, "lobby", "ann")).await;
    for node in &nodes {
        let refused = http_raw(
            node.addr,
            "POST",
            "/api/files?name=late.txt",
            &[("Authorization", &auth)],
            Body::Sized(b"too late"),
        )
        .await;
        assert_eq!(refused.status, 401);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_and_a_reaction_through_one_node_reach_the_other_and_stay_in_history() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let url = tokio::task::block_in_place(|| pg.database("chat"));
    let nodes = [
        node(&url, Duration::from_secs(10)).await,
        node(&url, Duration::from_secs(10)).await,
    ];
    let mut ann = member(&nodes[0], "ann").await;
    let mut ben = member(&nodes[1], "ben").await;
    let said = ann.say("lobby", "see you at five", "s-1").await;
    assert_eq!(messages(&mut ben, 1).await[&said].1, "see you at five");

    // An edit through node 0 reaches ben on node 1 as an event.
    let edit = json!({"type": "edit", "room": "lobby", "seq": said, "text": "see you at six", "client_id": "e-1"});
    ann.send(edit).await;
    let edited = match ann
        .recv_until(|m| matches!(m, ServerMsg::Ack { .. } | ServerMsg::Error { .. }))
        .await
    {
        ServerMsg::Ack { seq: Some(seq), .. } => seq,
        other => panic!("{other:?}"),
    };
    match ben
        .recv_until(|m| matches!(m, ServerMsg::Message { .. }))
        .await
    {
        ServerMsg::Message {
            seq, text, event, ..
        } => assert_eq!(
            (seq, text.as_str(), event),
            (edited, "see you at six", Some(Event::Edit { target: said }))
        ),
        _ => unreachable!(),
    }

    // A reaction through node 1 reaches ann on node 0.
    let react = json!({"type": "react", "room": "lobby", "seq": said, "emoji": "👍", "on": true, "client_id": "r-1"});
    ben.send(react).await;
    let reacted = match ben
        .recv_until(|m| matches!(m, ServerMsg::Ack { .. } | ServerMsg::Error { .. }))
        .await
    {
        ServerMsg::Ack { seq: Some(seq), .. } => seq,
        other => panic!("{other:?}"),
    };
    let reaction = Event::React {
        target: said,
        emoji: "👍".into(),
        on: true,
    };
    match ann
        .recv_until(|m| matches!(m, ServerMsg::Message { seq, .. } if *seq == reacted))
        .await
    {
        ServerMsg::Message { from, event, .. } => {
            assert_eq!((from.as_str(), event), ("ben", Some(reaction.clone())))
        }
        _ => unreachable!(),
    }

    // History through either node: the edited text, then both events.
    for (node, reader) in nodes.iter().zip(["cas", "dee"]) {
        let mut cas = node.join_as(reader).await;
        cas.send(json!({"type": "history", "room": "lobby"})).await;
        match cas
            .recv_until(|m| matches!(m, ServerMsg::History { .. }))
            .await
        {
            ServerMsg::History { messages, .. } => {
                let seen: Vec<_> = messages
                    .iter()
                    .map(|m| (m.seq, m.text.as_str(), m.event.clone()))
                    .collect();
                assert_eq!(
                    seen,
                    [
                        (said, "see you at six", None),
                        (edited, "see you at six", Some(Event::Edit { target: said })),
                        (reacted, "", Some(reaction.clone())),
                    ]
                );
            }
            _ => unreachable!(),
        }
        drop(cas);
    }
    for node in nodes {
        node.shutdown().await;
    }
}

/// A tab of an account through `node`, in no room.
async fn signed_in(node: &TestServer, bearer: &str, name: &str) -> Client {
    let mut tab = connect_with(&node.url(), &[("authorization", bearer)])
        .await
        .unwrap();
    tab.hello(name).await;
    tab
}

/// `(seq, from, text)` of the messages a `history` frame holds.
fn said_in(history: &ServerMsg) -> Vec<(u64, String, String)> {
    match history {
        ServerMsg::History { messages, .. } => messages
            .iter()
            .map(|m| (m.seq, m.from.clone(), m.text.clone()))
            .collect(),
        other => panic!("expected history, got {other:?}"),
    }
}

/// A private conversation between accounts on two nodes: the one who is
/// written to hears of it on their node and joins it, both see both
/// messages in one order, a third account can neither read nor find it,
/// and it is all still there when both nodes have restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_conversation_between_two_nodes_is_theirs_alone_and_lasts() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let url = tokio::task::block_in_place(|| pg.database("chat"));
    let nodes = [
        node(&url, Duration::from_secs(10)).await,
        node(&url, Duration::from_secs(10)).await,
    ];
    let alice_token = register(nodes[0].addr, "alice").await;
    let bob_token = register(nodes[0].addr, "Bob").await;
    let carol_token = register(nodes[1].addr, "carol").await;
    let mut alice = signed_in(&nodes[0], &alice_token, "alice").await;
    let mut bob = signed_in(&nodes[1], &bob_token, "Bob").await;

    alice.send(json!({"type": "open", "with": "bob"})).await;
    let room = match alice
        .recv_until(|m| matches!(m, ServerMsg::Conversation { .. } | ServerMsg::Error { .. }))
        .await
    {
        ServerMsg::Conversation { room, with } => {
            assert_eq!(with, "Bob", "as he spells it");
            room
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(room, "@alice+bob");
    alice.join(&room).await;
    let first = alice.say(&room, "Lunch at the harbour?", "a-1").await;
    assert_eq!(first, 1);

    // Bob, on the other node and in no room, is told, joins, and has it.
    let told = bob
        .recv_until(|m| matches!(m, ServerMsg::Conversation { .. }))
        .await;
    assert_eq!(
        told,
        ServerMsg::Conversation {
            room: room.clone(),
            with: "alice".into()
        }
    );
    let history = bob.join_with_history(&room).await;
    assert_eq!(
        said_in(&history),
        [(1, "alice".into(), "Lunch at the harbour?".into())]
    );
    let second = bob.say(&room, "yes, at noon", "b-1").await;
    assert_eq!(second, 2);
    // Alice, on hers, gets the answer live; each reads both, in order,
    // through their own node.
    let got = messages(&mut alice, 1).await;
    assert_eq!(got[&2], ("Bob".into(), "yes, at noon".into()));
    let both = [
        (1, "alice".into(), "Lunch at the harbour?".into()),
        (2, "Bob".into(), "yes, at noon".into()),
    ];
    for tab in [&mut alice, &mut bob] {
        tab.send(json!({"type": "history", "room": room})).await;
        let history = tab
            .recv_until(|m| matches!(m, ServerMsg::History { .. }))
            .await;
        assert_eq!(said_in(&history), both);
    }

    // Carol may not join it, read it or find its words, on either node.
    for node in &nodes {
        let mut carol = signed_in(node, &carol_token, "carol").await;
        carol.send(json!({"type": "join", "room": room})).await;
        carol.expect_error("forbidden").await;
        carol.send(json!({"type": "history", "room": room})).await;
        carol.expect_error("forbidden").await;
        carol
            .send(json!({"type": "search", "query": "harbour"}))
            .await;
        match carol.recv().await {
            ServerMsg::SearchResults { results, .. } => {
                assert!(results.is_empty(), "{results:?}")
            }
            other => panic!("expected search_results, got {other:?}"),
        }
        drop(carol);
    }
    // Bob finds it through his node.
    bob.send(json!({"type": "search", "query": "harbour"}))
        .await;
    match bob
        .recv_until(|m| matches!(m, ServerMsg::SearchResults { .. }))
        .await
    {
        ServerMsg::SearchResults { results, .. } => {
            let found: Vec<_> = results.iter().map(|h| (h.room.as_str(), h.seq)).collect();
            assert_eq!(found, [(room.as_str(), 1)]);
        }
        _ => unreachable!(),
    }

    // Both nodes restart: the conversation and its messages are there.
    drop((alice, bob));
    for node in nodes {
        node.shutdown().await;
    }
    let nodes = [
        node(&url, Duration::from_secs(10)).await,
        node(&url, Duration::from_secs(10)).await,
    ];
    // Each comes back through the other node and says something: alice
    // first (seq 3), then Bob (4).
    for (node, token, name, with, last_seq) in [
        (&nodes[1], &alice_token, "alice", "Bob", 2),
        (&nodes[0], &bob_token, "Bob", "alice", 3),
    ] {
        let mut tab = signed_in(node, token, name).await;
        tab.send(json!({"type": "conversations"})).await;
        match tab
            .recv_until(|m| matches!(m, ServerMsg::Conversations { .. }))
            .await
        {
            ServerMsg::Conversations { conversations } => {
                let listed: Vec<_> = conversations
                    .iter()
                    .map(|c| (c.room.as_str(), c.with.as_str(), c.last_seq))
                    .collect();
                assert_eq!(listed, [(room.as_str(), with, last_seq)]);
            }
            _ => unreachable!(),
        }
        let history = said_in(&tab.join_with_history(&room).await);
        assert_eq!(history[..2], both);
        assert_eq!(history.len() as u64, last_seq);
        // Numbering goes on where it was.
        let next = tab.say(&room, &format!("back, {name}"), "r-1").await;
        assert_eq!(next, last_seq + 1);
    }
    for node in nodes {
        node.shutdown().await;
    }
}
