//! The crash test: a sender sends continuously while the server process is
//! killed with SIGKILL and restarted; afterwards every acked message is in
//! history exactly once, in `seq` order, and retries of the unacked ones
//! are stored once each.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;

use common::{Client, DEADLINE};
use futures_util::{SinkExt, StreamExt};
use hubbub_protocol::ServerMsg;
use serde_json::json;
use tokio::process::Child;
use tokio_tungstenite::tungstenite::Message;

/// Starts the real `hubbub` binary on a free port over `data`, with the
/// rate limit out of the sender's way.
async fn start(data: &Path) -> (Child, SocketAddr) {
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--rate",
        "1000000",
        "--burst",
        "1000000",
    ];
    common::spawn_hubbub(data, &args).await
}

fn history_page(msg: ServerMsg) -> (Vec<(u64, String)>, bool) {
    match msg {
        ServerMsg::History {
            messages, has_more, ..
        } => (
            messages.into_iter().map(|m| (m.seq, m.text)).collect(),
            has_more,
        ),
        other => panic!("expected history, got {other:?}"),
    }
}

#[tokio::test]
async fn every_acked_message_survives_sigkill_exactly_once_in_order() {
    let data = tempfile::tempdir().unwrap();
    let (mut server, addr) = start(data.path()).await;
    let url = format!("ws://{addr}/ws");

    let mut sender = Client::connect(&url).await;
    sender.hello("sender").await;
    sender.join_with_history("lobby").await;
    let (mut sink, mut stream) = sender.ws.split();

    // Send as fast as the socket takes it; the text is the client_id.
    const MAX: u64 = 50_000;
    let writer = tokio::spawn(async move {
        let mut sent = 0;
        for i in 1..=MAX {
            let msg = json!({"type": "send", "room": "lobby", "text": format!("k-{i}"), "client_id": format!("k-{i}")});
            if sink.send(Message::text(msg.to_string())).await.is_err() {
                break;
            }
            sent = i;
        }
        sent
    });
    // Kill the server once a few hundred sends are acked, mid-stream.
    let mut acked: HashMap<String, u64> = HashMap::new();
    while let Ok(Some(Ok(frame))) = tokio::time::timeout(DEADLINE, stream.next()).await {
        let Message::Text(text) = frame else { continue };
        if let Ok(ServerMsg::Ack {
            client_id: Some(id),
            seq: Some(seq),
            ..
        }) = serde_json::from_str(&text)
        {
            acked.insert(id, seq);
            if acked.len() == 300 {
                server.start_kill().unwrap(); // SIGKILL
                server.wait().await.unwrap();
            }
        }
    }
    let sent = writer.await.unwrap();
    assert!(
        acked.len() >= 300,
        "only {} acks before the link went",
        acked.len()
    );
    assert!(sent < MAX, "the server died before the sender finished");

    // Restart on the same data; retry every send that got no ack.
    let (_server, addr) = start(data.path()).await;
    let mut sender = Client::connect(&format!("ws://{addr}/ws")).await;
    sender.hello("sender").await;
    let (latest, _) = history_page(sender.join_with_history("lobby").await);
    let stored_at_restart = latest.last().map_or(0, |(seq, _)| *seq);
    assert!(stored_at_restart >= 300);
    let unacked: Vec<u64> = (1..=sent)
        .filter(|i| !acked.contains_key(&format!("k-{i}")))
        .collect();
    for &i in &unacked {
        sender
            .send(json!({"type": "send", "room": "lobby", "text": format!("k-{i}"), "client_id": format!("k-{i}")}))
            .await;
    }
    let mut retry_acks: HashMap<String, u64> = HashMap::new();
    while retry_acks.len() < unacked.len() {
        if let ServerMsg::Ack {
            client_id: Some(id),
            seq: Some(seq),
            ..
        } = sender.recv().await
        {
            retry_acks.insert(id, seq);
        }
    }

    // Read the whole history back, newest page first.
    let mut all: Vec<(u64, String)> = Vec::new();
    let mut before: Option<u64> = None;
    loop {
        let mut request = json!({"type": "history", "room": "lobby", "limit": 200});
        if let Some(b) = before {
            request["before"] = json!(b);
        }
        sender.send(request).await;
        let (page, more) = history_page(
            sender
                .recv_until(|m| matches!(m, ServerMsg::History { .. }))
                .await,
        );
        before = page.first().map(|(seq, _)| *seq);
        all.splice(0..0, page);
        if !more {
            break;
        }
    }

    let deduplicated = retry_acks
        .values()
        .filter(|&&seq| seq <= stored_at_restart)
        .count();
    eprintln!(
        "sent {sent}, acked before SIGKILL {}, stored at restart {stored_at_restart}, \
         retried {} (already stored, acked with their original seq: {deduplicated})",
        acked.len(),
        unacked.len()
    );

    // Gapless seqs from 1, and exactly the sent ids, once each, in send order.
    let seqs: Vec<u64> = all.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        seqs,
        (1..=sent).collect::<Vec<_>>(),
        "seqs are 1..=sent without gap"
    );
    let texts: Vec<String> = all.iter().map(|(_, t)| t.clone()).collect();
    let expected: Vec<String> = (1..=sent).map(|i| format!("k-{i}")).collect();
    assert_eq!(texts, expected, "every message once, in send order");
    // Every ack, before and after the crash, names where the message is.
    for (id, seq) in acked.iter().chain(retry_acks.iter()) {
        assert_eq!(all[(*seq - 1) as usize].1, *id, "ack {id} → {seq}");
    }
}
