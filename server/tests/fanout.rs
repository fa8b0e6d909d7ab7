//! Room-log fan-out: nobody healthy is evicted. Bursts from several senders
//! within the documented limits reach every reading member in order; a
//! reader that pauses catches up from the store without reconnecting; only a
//! socket that takes nothing for `write_timeout` is closed.

mod common;

use std::time::Duration;

use common::{http, joined, left, Client, Ended, TestServer};
use futures_util::{SinkExt, StreamExt};
use hubbub_protocol::{close, ServerMsg};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// Reads room messages of `room` until `total` arrived; returns their seqs
/// in arrival order. Fails if the connection closes.
async fn read_messages(client: &mut Client, room: &str, total: usize) -> Vec<u64> {
    let mut seqs = Vec::with_capacity(total);
    while seqs.len() < total {
        if let ServerMsg::Message { room: r, seq, .. } = client.recv().await {
            assert_eq!(r, room);
            seqs.push(seq);
        }
    }
    seqs
}

/// Sends `count` messages of `size` bytes at once (no waiting between
/// them), then reads until every one is acked; returns the acked seqs.
async fn burst(mut client: Client, who: usize, count: usize, size: usize) -> Vec<u64> {
    let text = "b".repeat(size);
    for i in 0..count {
        let msg = json!({"type": "send", "room": "lobby", "text": text, "client_id": format!("{who}-{i}")});
        client
            .ws
            .feed(Message::text(msg.to_string()))
            .await
            .unwrap();
    }
    client.ws.flush().await.unwrap();
    let mut acked = Vec::new();
    while acked.len() < count {
        match client.recv().await {
            ServerMsg::Ack { seq: Some(seq), .. } => acked.push(seq),
            ServerMsg::Error { code, .. } => panic!("sender {who} refused: {code}"),
            _ => {}
        }
    }
    acked
}

/// `senders` guests each send the burst the rate limit allows while
/// `readers` members read as fast as they can: every reader gets every
/// message, in order, and stays connected.
async fn bursts_reach_every_reader(senders: usize, per_sender: usize, readers: usize) {
    // Default limits: 16 KB texts, a burst of 40, the default SQLite store.
    let server = TestServer::default().await;
    let mut reading = Vec::new();
    for r in 0..readers {
        let mut reader = server.join_as(&format!("reader{r}")).await;
        reader.join("lobby").await;
        reading.push(reader);
    }
    let mut sending = Vec::new();
    for s in 0..senders {
        let mut sender = server.join_as(&format!("sender{s}")).await;
        sender.join("lobby").await;
        sending.push(sender);
    }
    let total = senders * per_sender;
    let readers: Vec<_> = reading
        .into_iter()
        .map(|mut reader| {
            tokio::spawn(async move {
                let seqs = read_messages(&mut reader, "lobby", total).await;
                // Still connected, and nothing more was queued for it.
                reader.drain().await;
                seqs
            })
        })
        .collect();
    let senders: Vec<_> = sending
        .into_iter()
        .enumerate()
        .map(|(who, sender)| tokio::spawn(burst(sender, who, per_sender, 16_000)))
        .collect();
    let mut acked = Vec::new();
    for sender in senders {
        acked.extend(sender.await.unwrap());
    }
    acked.sort_unstable();
    let all: Vec<u64> = (1..=total as u64).collect();
    assert_eq!(acked, all, "every send acked once, seq gapless");
    for reader in readers {
        let seqs = tokio::time::timeout(common::DEADLINE * 3, reader)
            .await
            .expect("the reader got everything in time")
            .unwrap();
        assert_eq!(seqs, all, "every message, in order, no duplicate");
    }
    let metrics = http(server.addr, "GET", "/metrics", &[], None).await.body;
    assert!(
        metrics.contains("hubbub_slow_consumers_total 0"),
        "nobody was closed as a slow consumer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_bursting_guests_do_not_empty_the_room() {
    // The default burst is 40 requests; `hello` and `join` took two of
    // them, so 38 sends at once is the most a guest can burst right away
    // (40 was refused `rate_limited` when the tokens had not refilled yet).
    bursts_reach_every_reader(2, 38, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_bursting_guests_reach_every_reader() {
    bursts_reach_every_reader(8, 20, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_reader_catches_up_from_the_store_without_reconnecting() {
    let server = TestServer::start(|c| {
        c.rate = 1e6;
        c.burst = 1_000_000;
        // A short log, so the reader falls far behind it.
        c.room_log = 10;
    })
    .await;
    let mut sender = server.join_as("sender").await;
    let mut paused = server.join_as("paused").await;
    sender.join("lobby").await;
    paused.join("lobby").await;
    sender.recv_until(|m| joined(m, "lobby", "paused")).await;

    // 16 MB: far more than the loopback socket buffers hold, so the paused
    // reader's cursor stops while the log moves on by 1,000 messages.
    let total = 1000;
    let text = "p".repeat(16_000);
    for i in 0..total {
        let msg =
            json!({"type": "send", "room": "lobby", "text": text, "client_id": i.to_string()});
        sender
            .ws
            .feed(Message::text(msg.to_string()))
            .await
            .unwrap();
    }
    sender.ws.flush().await.unwrap();
    let mut acks = 0;
    while acks < total {
        if let ServerMsg::Ack { .. } = sender.recv().await {
            acks += 1;
        }
    }
    // Everything is committed and the log holds only the last 10. Now the
    // paused reader reads: all of it, in order, on the same connection.
    let seqs = read_messages(&mut paused, "lobby", total).await;
    assert_eq!(seqs, (1..=total as u64).collect::<Vec<_>>());
    paused.drain().await;
    let metrics = http(server.addr, "GET", "/metrics", &[], None).await.body;
    let reads: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("hubbub_catch_up_reads_total "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(reads > 0, "the reader was served from the store");
    assert!(metrics.contains("hubbub_slow_consumers_total 0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_takes_nothing_is_closed_by_the_write_timeout_alone() {
    let server = TestServer::start(|c| {
        c.rate = 1e6;
        c.burst = 1_000_000;
        c.write_timeout = Duration::from_millis(500);
    })
    .await;
    let mut sender = server.join_as("sender").await;
    let mut reader = server.join_as("reader").await;
    let mut stuck = server.join_as("stuck").await;
    sender.join("lobby").await;
    reader.join("lobby").await;
    stuck.join("lobby").await;
    reader.recv_until(|m| joined(m, "lobby", "stuck")).await;

    // The stuck client never reads: once its socket is full, it takes
    // nothing, and the write timeout closes it. The reader reads it all.
    // 24 MB: far more than the loopback socket buffers hold.
    let total = 1500;
    let text = "s".repeat(16_000);
    let reading = tokio::spawn(async move {
        // The stuck one's offline notice may come before the reader is
        // through the backlog (notices are not held behind messages).
        let mut seqs = Vec::new();
        let mut stuck_left = false;
        while seqs.len() < total || !stuck_left {
            match reader.recv().await {
                ServerMsg::Message { seq, .. } => seqs.push(seq),
                m if left(&m, "lobby", "stuck") => stuck_left = true,
                _ => {}
            }
        }
        reader.drain().await;
        seqs
    });
    // The sender reads too (its own messages and acks), in its own task.
    let (mut to_server, mut from_server) = sender.ws.split();
    let sender_reading = tokio::spawn(async move {
        let mut acks = 0;
        while acks < total {
            match from_server.next().await {
                Some(Ok(Message::Text(t))) if t.contains("\"type\":\"ack\"") => acks += 1,
                Some(Ok(_)) => {}
                other => panic!("the sender lost its connection: {other:?}"),
            }
        }
    });
    for i in 0..total {
        let msg =
            json!({"type": "send", "room": "lobby", "text": text, "client_id": i.to_string()});
        to_server
            .feed(Message::text(msg.to_string()))
            .await
            .unwrap();
    }
    to_server.flush().await.unwrap();
    sender_reading.await.unwrap();
    let seqs = tokio::time::timeout(common::DEADLINE * 3, reading)
        .await
        .expect("the reader got everything and saw the stuck one leave")
        .unwrap();
    assert_eq!(seqs, (1..=total as u64).collect::<Vec<_>>());
    // Reading at last, the stuck client finds itself closed as a slow
    // consumer (or cut, if even the close frame could not go out).
    let rest = stuck.ws.by_ref();
    let ended = loop {
        match tokio::time::timeout(common::DEADLINE, rest.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => {
                break Ended::Close(frame.map(|f| u16::from(f.code)).unwrap_or(1005))
            }
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_)) | None) => break Ended::Dropped,
            Err(_) => panic!("the stuck client was not closed"),
        }
    };
    if let Ended::Close(code) = ended {
        assert_eq!(code, close::SLOW_CONSUMER);
    }
    let metrics = http(server.addr, "GET", "/metrics", &[], None).await.body;
    assert!(metrics.contains("hubbub_slow_consumers_total 1"));
}
