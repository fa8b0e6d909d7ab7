//! Chaos against a real cluster (issue 12): three `hubbub` processes on one
//! throwaway PostgreSQL, clients spread over them in one room, senders
//! sending continuously with `client_id`s, while one node is SIGKILLed, the
//! database restarts, or every node is restarted in turn (SIGTERM).
//! Afterwards: no acked message is lost, every reader got every `seq` once
//! and in order across its reconnects, and retries were idempotent.
//!
//! Each client is a task that behaves as docs/protocol.md asks of a real
//! client: it keeps the last `seq` it has and a ledger of unacked sends;
//! when its connection ends it connects to another node, joins with
//! `since`, and sends its ledger again with the same `client_id`s (and a
//! couple of acked sends, as if those acks had been lost); a send refused
//! with `unavailable` is sent again at its next turn. The test drives the
//! chaos from what the clients report (acks, refusals, reconnects), never
//! from a timer. What the database holds at the end is the reference.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::postgres::Postgres;
use common::{http, spawn_hubbub, Ended, DEADLINE};
use futures_util::{SinkExt, StreamExt};
use hubbub_protocol::{close, ErrorCode, ServerMsg};
use parking_lot::Mutex;
use serde_json::json;
use tokio::process::Child;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

/// The one room everybody is in.
const ROOM: &str = "storm";
/// A sender's turn: it sends a refused send again, or else one new message.
const SEND_EVERY: Duration = Duration::from_millis(15);
/// Most sends a sender has waiting for their ack (refused ones included):
/// far more than the store takes to commit, so a sender never stalls
/// behind the sends a node holds while its database is away.
const WINDOW: usize = 64;
/// Nobody sends more than this, whatever happens (a bound on the test).
const MAX_SENDS: usize = 300;
/// After a reconnect, a sender sends this many of its acked sends again
/// (as if their acks had been lost): each must be acked with its first seq.
const REPEATS: usize = 2;

/// A throwaway PostgreSQL and three `hubbub --cluster` processes on it.
struct Cluster {
    /// Killed when dropped, before the database stops (fields drop in order).
    nodes: Vec<Option<Child>>,
    pg: Postgres,
    url: String,
    /// Each node's data directory (unused with `--database`, but required).
    data: Vec<tempfile::TempDir>,
    /// Where each node listens (`None` while it is down): where clients go.
    addrs: Arc<Mutex<Vec<Option<SocketAddr>>>>,
}

impl Cluster {
    async fn start() -> Cluster {
        let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
        let url = tokio::task::block_in_place(|| pg.database("chat"));
        let mut cluster = Cluster {
            pg,
            url,
            nodes: (0..3).map(|_| None).collect(),
            data: (0..3).map(|_| tempfile::tempdir().unwrap()).collect(),
            addrs: Arc::new(Mutex::new(vec![None; 3])),
        };
        for i in 0..3 {
            cluster.spawn(i).await;
        }
        cluster
    }

    /// Starts node `i` (again) and waits until it is ready.
    async fn spawn(&mut self, i: usize) {
        let args = [
            "--listen",
            "127.0.0.1:0",
            "--database",
            &self.url,
            "--cluster",
            "--node-ttl",
            "2s",
            "--presence-interval",
            "20ms",
            "--rate",
            "1000000",
            "--burst",
            "1000000",
            "--shutdown-timeout",
            "5s",
        ];
        let (child, addr) = spawn_hubbub(self.data[i].path(), &args).await;
        // It prints its address before it has opened the database.
        let started = Instant::now();
        while ready(addr).await != 200 {
            assert!(started.elapsed() < DEADLINE, "node {i} never became ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.nodes[i] = Some(child);
        self.addrs.lock()[i] = Some(addr);
    }

    fn addr(&self, i: usize) -> SocketAddr {
        self.addrs.lock()[i].expect("the node is up")
    }

    /// Takes node `i` out of the clients' choice and returns its process.
    fn take(&mut self, i: usize) -> Child {
        self.addrs.lock()[i] = None;
        self.nodes[i].take().expect("the node is up")
    }

    /// Every stored message of the room, by seq: (seq, client_id).
    fn stored(&self) -> Vec<(u64, String)> {
        let rows = self.pg.query(
            "chat",
            &format!("SELECT seq, client_id FROM messages WHERE room = '{ROOM}' ORDER BY seq"),
        );
        rows.lines()
            .map(|line| {
                let (seq, id) = line.split_once('|').expect("seq|client_id");
                (seq.parse().unwrap(), id.to_string())
            })
            .collect()
    }
}

/// `/readyz`'s status at `addr`.
async fn ready(addr: SocketAddr) -> u16 {
    http(addr, "GET", "/readyz", &[], None).await.status
}

/// What the clients have done so far, as the test watches it.
#[derive(Debug, Default, Clone)]
struct Progress {
    /// Sends acked (each once).
    acked: usize,
    /// The same, by the node that acked them.
    acked_on: [usize; 3],
    /// The highest acked seq.
    last_acked: u64,
    /// Sends refused with `unavailable`, by the node that refused them.
    unavailable: [usize; 3],
    /// Clients connected and joined now.
    connected: usize,
    /// Connections made after a client's first (reconnects).
    rejoined: usize,
    /// Clients connected and joined now, by node.
    on: [usize; 3],
    /// Senders that stopped with every send acked.
    senders_done: usize,
}

/// What the test tells the clients.
#[derive(Debug, Default, Clone)]
struct Control {
    /// Senders send no new messages (they still see their ledger acked).
    stop: bool,
    /// The room's last seq once every sender is done: readers stop there.
    total: Option<u64>,
}

/// What one client saw, checked at the end.
#[derive(Debug, Default)]
struct Record {
    name: String,
    /// Every room message's seq, in the order received, over all its connections.
    seqs: Vec<u64>,
    /// Each of its sends (client_id) → the seq of its ack.
    acks: BTreeMap<String, u64>,
    /// Acked sends sent again after a reconnect: (client_id, seq, seq acked again).
    repeats: Vec<(String, u64, u64)>,
    /// How each of its connections ended, but the last.
    ends: Vec<Ended>,
    /// The nodes it was connected to, in order.
    nodes: Vec<usize>,
    /// Its sends refused with `unavailable`.
    unavailable: usize,
    /// Acks that came before their message: client_id (seq, last seq then).
    early_acks: Vec<String>,
    /// Anything a client should never get here (other errors, resyncs, stray acks).
    surprises: Vec<String>,
}

/// One client and what it does.
struct Member {
    name: String,
    /// The node it connects to first.
    home: usize,
    sender: bool,
}

/// Clients at work in the room.
struct Storm {
    progress: watch::Receiver<Progress>,
    control: watch::Sender<Control>,
    tasks: Vec<JoinHandle<Record>>,
    senders: usize,
}

impl Storm {
    /// On each node, `senders` senders and `readers` readers, connected
    /// and joined before this returns; the senders then start sending.
    async fn start(cluster: &Cluster, senders: usize, readers: usize) -> Storm {
        let (progress_tx, progress) = watch::channel(Progress::default());
        let progress_tx = Arc::new(progress_tx);
        let (control, control_rx) = watch::channel(Control::default());
        let mut tasks = Vec::new();
        for home in 0..3 {
            for k in 0..senders + readers {
                let sender = k < senders;
                let member = Member {
                    name: format!("n{home}{}{k}", if sender { "s" } else { "r" }),
                    home,
                    sender,
                };
                tasks.push(tokio::spawn(run_member(
                    member,
                    Arc::clone(&cluster.addrs),
                    Arc::clone(&progress_tx),
                    control_rx.clone(),
                )));
            }
        }
        let mut storm = Storm {
            progress,
            control,
            senders: senders * 3,
            tasks,
        };
        let n = storm.tasks.len();
        storm.until("everyone joined", |p| p.connected == n).await;
        storm
    }

    /// Waits (bounded) until the clients' progress satisfies `pred`.
    async fn until(&mut self, what: &str, pred: impl FnMut(&Progress) -> bool) -> Progress {
        let waited = tokio::time::timeout(DEADLINE, self.progress.wait_for(pred))
            .await
            .map(|r| r.map(|progress| progress.clone()));
        match waited {
            Ok(Ok(progress)) => progress,
            _ => panic!(
                "timed out waiting for {what}: {:?}",
                *self.progress.borrow()
            ),
        }
    }

    /// Waits for `n` more acks than there are now.
    async fn acks(&mut self, n: usize, what: &str) -> Progress {
        let from = self.progress.borrow().acked;
        self.until(&format!("{n} more acks {what}"), |p| p.acked >= from + n)
            .await
    }

    /// Stops the senders, waits for their ledgers to empty and for every
    /// reader to reach the last seq; returns each client's record and that seq.
    async fn finish(mut self) -> (Vec<Record>, u64) {
        self.control.send_modify(|c| c.stop = true);
        let senders = self.senders;
        let done = self
            .until("every send acked", |p| p.senders_done == senders)
            .await;
        self.control
            .send_modify(|c| c.total = Some(done.last_acked));
        let mut records = Vec::new();
        for task in self.tasks {
            let record = tokio::time::timeout(DEADLINE, task)
                .await
                .expect("every client reached the last seq")
                .expect("a client task failed");
            records.push(record);
        }
        (records, done.last_acked)
    }
}

/// Connects to the first node that takes a `hello`, trying `first` and
/// then the next ones; returns the socket and the node's index.
async fn connect(
    addrs: &Mutex<Vec<Option<SocketAddr>>>,
    first: usize,
    name: &str,
) -> (
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    usize,
) {
    let started = Instant::now();
    loop {
        for k in 0..3 {
            let i = (first + k) % 3;
            let Some(addr) = addrs.lock()[i] else {
                continue;
            };
            let url = format!("ws://{addr}/ws");
            let Ok(Ok((mut ws, _))) =
                tokio::time::timeout(DEADLINE, tokio_tungstenite::connect_async(url)).await
            else {
                continue;
            };
            let hello = json!({"type": "hello", "name": name}).to_string();
            if ws.send(Message::text(hello)).await.is_err() {
                continue;
            }
            // The welcome, or the end of this node (it is going away).
            loop {
                match tokio::time::timeout(DEADLINE, ws.next()).await {
                    Ok(Some(Ok(Message::Text(text)))) => {
                        match serde_json::from_str::<ServerMsg>(&text).unwrap() {
                            ServerMsg::Welcome { .. } => return (ws, i),
                            ServerMsg::Heartbeat => continue,
                            // Say, the name is still online through the
                            // node it left: try another, then again.
                            ServerMsg::Error { .. } => break,
                            other => panic!("{name}: hello answered with {other:?}"),
                        }
                    }
                    Ok(Some(Ok(_))) => continue,
                    _ => break,
                }
            }
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{name}: no node took a connection"
        );
        // A client backs off before trying the nodes again.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A client at work until the test says the room is complete; see the
/// module docs.
async fn run_member(
    member: Member,
    addrs: Arc<Mutex<Vec<Option<SocketAddr>>>>,
    progress: Arc<watch::Sender<Progress>>,
    mut control: watch::Receiver<Control>,
) -> Record {
    let name = member.name.clone();
    let mut record = Record {
        name: name.clone(),
        ..Record::default()
    };
    // The last seq it has, and its unacked sends (client_id → refused).
    let mut last = 0;
    let mut ledger: BTreeMap<String, bool> = BTreeMap::new();
    let mut next = 0;
    let mut done_sending = false;
    let mut first = member.home;
    loop {
        let (ws, at) = connect(&addrs, first, &name).await;
        record.nodes.push(at);
        let (mut sink, mut stream) = ws.split();
        let mut out = Vec::new();
        out.push(json!({"type": "join", "room": ROOM, "since": last}));
        // The ledger, again, with the same client_ids.
        for (id, refused) in ledger.iter_mut() {
            *refused = false;
            out.push(json!({"type": "send", "room": ROOM, "text": id, "client_id": id}));
        }
        // And some acked sends, as if their acks had been lost.
        let mut repeats: BTreeMap<String, u64> = BTreeMap::new();
        if record.nodes.len() > 1 {
            let mut acked: Vec<(&String, &u64)> = record.acks.iter().collect();
            acked.sort_by_key(|(_, seq)| std::cmp::Reverse(**seq));
            for (id, seq) in acked.into_iter().take(REPEATS) {
                repeats.insert(id.clone(), *seq);
                out.push(json!({"type": "send", "room": ROOM, "text": id, "client_id": id}));
            }
        }
        for frame in out {
            let _ = sink.send(Message::text(frame.to_string())).await;
        }
        let again = record.nodes.len() > 1;
        progress.send_modify(|p| {
            p.connected += 1;
            p.on[at] += 1;
            p.rejoined += usize::from(again);
        });
        let mut turn = tokio::time::interval(SEND_EVERY);
        let end = loop {
            let wanted = control.borrow().clone();
            if member.sender && !done_sending && wanted.stop && ledger.is_empty() {
                done_sending = true;
                progress.send_modify(|p| p.senders_done += 1);
            }
            let sent_all = !member.sender || done_sending;
            if sent_all && repeats.is_empty() && wanted.total.is_some_and(|t| last >= t) {
                let _ = sink.send(Message::Close(None)).await;
                return record;
            }
            tokio::select! {
                frame = tokio::time::timeout(DEADLINE, stream.next()) => match frame {
                    Err(_) => panic!(
                        "{name}: nothing heard for {DEADLINE:?} on node {at}: last seq {last}, \
                         unacked {ledger:?}, repeats {repeats:?}"
                    ),
                    Ok(None | Some(Err(_))) => break Ended::Dropped,
                    Ok(Some(Ok(Message::Close(frame)))) => {
                        break Ended::Close(frame.map_or(1005, |f| u16::from(f.code)))
                    }
                    Ok(Some(Ok(Message::Text(text)))) => {
                        match serde_json::from_str::<ServerMsg>(&text).unwrap() {
                            ServerMsg::Message { room, seq, .. } if room == ROOM => {
                                record.seqs.push(seq);
                                last = last.max(seq);
                            }
                            ServerMsg::Ack { client_id: Some(id), seq: Some(seq), .. } => {
                                if ledger.remove(&id).is_some() {
                                    if seq > last {
                                        record.early_acks.push(format!("{id} ({seq}, had {last})"));
                                    }
                                    record.acks.insert(id, seq);
                                    progress.send_modify(|p| {
                                        p.acked += 1;
                                        p.acked_on[at] += 1;
                                        p.last_acked = p.last_acked.max(seq);
                                    });
                                } else if let Some(first) = repeats.remove(&id) {
                                    record.repeats.push((id, first, seq));
                                } else {
                                    record.surprises.push(format!("an ack for {id} ({seq})"));
                                }
                            }
                            ServerMsg::Error { code: ErrorCode::Unavailable, client_id: Some(id), .. }
                                if ledger.contains_key(&id) =>
                            {
                                ledger.insert(id, true);
                                record.unavailable += 1;
                                progress.send_modify(|p| p.unavailable[at] += 1);
                            }
                            ServerMsg::Error { .. } | ServerMsg::History { .. } => {
                                record.surprises.push(text.to_string());
                            }
                            _ => {}
                        }
                    }
                    Ok(Some(Ok(_))) => {}
                },
                _ = turn.tick(), if member.sender => {
                    // Refused: send a refused one again, and nothing new
                    // until the server takes it.
                    let again = ledger.iter().find(|(_, refused)| **refused).map(|(id, _)| id.clone());
                    let id = match again {
                        Some(id) => {
                            ledger.insert(id.clone(), false);
                            Some(id)
                        }
                        None if !wanted.stop && ledger.len() < WINDOW && next < MAX_SENDS => {
                            let id = format!("{name}-{next}");
                            next += 1;
                            ledger.insert(id.clone(), false);
                            Some(id)
                        }
                        None => None,
                    };
                    if let Some(id) = id {
                        let send = json!({"type": "send", "room": ROOM, "text": id, "client_id": id});
                        let _ = sink.send(Message::text(send.to_string())).await;
                    }
                }
                _ = control.changed() => {}
            }
        };
        progress.send_modify(|p| {
            p.connected -= 1;
            p.on[at] -= 1;
        });
        record.ends.push(end);
        first = (at + 1) % 3;
    }
}

/// The checks every chaos test ends with, against what the database holds:
/// the room is numbered 1..=`total` without a gap, each client_id stored
/// once; every ack names where its message is; every repeated send was
/// acked with its first seq; every client got every seq once, in order.
fn check(cluster: &Cluster, records: &[Record], total: u64) {
    let stored = cluster.stored();
    let seqs: Vec<u64> = stored.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(
        seqs,
        (1..=total).collect::<Vec<_>>(),
        "the room is 1..={total}"
    );
    let ids: HashSet<&str> = stored.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(ids.len(), stored.len(), "each client_id is stored once");
    let mut acks = 0;
    for record in records {
        let name = &record.name;
        assert!(
            record.surprises.is_empty(),
            "{name}: {:?}",
            record.surprises
        );
        // An ack follows its message (docs/protocol.md, `ack`), a retry's too.
        assert!(
            record.early_acks.is_empty(),
            "{name}: acks before their message: {:?}",
            record.early_acks
        );
        for (id, &seq) in &record.acks {
            let at = stored.get(seq as usize - 1).map(|(_, id)| id.as_str());
            assert_eq!(at, Some(id.as_str()), "{name}: {id} was acked as {seq}");
        }
        acks += record.acks.len();
        for (id, first, again) in &record.repeats {
            assert_eq!(first, again, "{name}: {id} sent again got another seq");
        }
        if let Some(at) = record
            .seqs
            .iter()
            .enumerate()
            .position(|(i, seq)| *seq != i as u64 + 1)
        {
            let around = &record.seqs[at.saturating_sub(3)..(at + 3).min(record.seqs.len())];
            panic!(
                "{name} (nodes {:?}, ends {:?}): a gap or a duplicate at seq {}: ... {around:?} ...",
                record.nodes,
                record.ends,
                at + 1
            );
        }
        assert_eq!(record.seqs.len() as u64, total, "{name} got every message");
    }
    assert_eq!(acks as u64, total, "every stored message was acked once");
}

/// The clients on node `i` at the start.
fn of_node(records: &[Record], i: usize) -> impl Iterator<Item = &Record> {
    records.iter().filter(move |r| r.nodes[0] == i)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_storm_loses_no_acked_message_and_its_clients_resume_elsewhere() {
    let mut cluster = Cluster::start().await;
    let mut storm = Storm::start(&cluster, 2, 1).await;
    storm.acks(60, "before the kill").await;
    let mut doomed = cluster.take(1);
    doomed.start_kill().unwrap(); // SIGKILL
    doomed.wait().await.unwrap();
    // Its three clients come back through the others, and the storm goes on.
    storm
        .until("node 1's clients back", |p| p.rejoined == 3)
        .await;
    storm.acks(60, "after the kill").await;
    let (records, total) = storm.finish().await;
    check(&cluster, &records, total);
    for record in &records {
        let expected = if record.nodes[0] == 1 {
            vec![Ended::Dropped]
        } else {
            vec![]
        };
        assert_eq!(record.ends, expected, "{}", record.name);
    }
    let repeats: usize = records.iter().map(|r| r.repeats.len()).sum();
    assert!(repeats > 0, "acked sends were sent again");
    eprintln!("{total} messages; {repeats} acked sends repeated after the kill");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_mid_storm_refuses_sends_then_catches_up_with_no_gap() {
    let cluster = Cluster::start().await;
    let mut storm = Storm::start(&cluster, 2, 1).await;
    storm.acks(60, "before the outage").await;
    tokio::task::block_in_place(|| cluster.pg.stop());
    let down = Instant::now();
    // Long enough for every node to notice, and to back off a while.
    storm
        .until("sends refused on every node", |p| {
            p.unavailable.iter().all(|&n| n >= 100)
        })
        .await;
    for i in 0..3 {
        assert_eq!(ready(cluster.addr(i)).await, 503, "node {i} is not ready");
    }
    tokio::task::block_in_place(|| cluster.pg.restart());
    let outage = down.elapsed();
    // Every node takes sends again: how long each took.
    let back = Instant::now();
    let before = storm.progress.borrow().acked_on;
    let mut recovered: [Option<Duration>; 3] = [None; 3];
    while recovered.iter().any(Option::is_none) {
        let now = storm
            .until("acks again on every node", |p| {
                (0..3).any(|i| recovered[i].is_none() && p.acked_on[i] >= before[i] + 10)
            })
            .await;
        for i in 0..3 {
            if recovered[i].is_none() && now.acked_on[i] >= before[i] + 10 {
                recovered[i] = Some(back.elapsed());
            }
        }
    }
    for i in 0..3 {
        let answer = http(cluster.addr(i), "GET", "/readyz", &[], None).await;
        assert_eq!(
            answer.status, 200,
            "node {i} is ready again: {}",
            answer.body
        );
    }
    let (records, total) = storm.finish().await;
    check(&cluster, &records, total);
    for record in &records {
        assert_eq!(
            record.ends,
            vec![],
            "{}: the socket stayed open",
            record.name
        );
    }
    let refused: usize = records.iter().map(|r| r.unavailable).sum();
    eprintln!(
        "{total} messages; {refused} sends refused; database down {outage:?}; \
         each node acked 10 sends again {:?} after it returned",
        recovered.map(Option::unwrap)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_traffic_closes_with_1001_and_loses_nothing() {
    let mut cluster = Cluster::start().await;
    let mut storm = Storm::start(&cluster, 2, 1).await;
    storm.acks(40, "before the restarts").await;
    // Each node's clients move to the others (a client told `name_taken`
    // by a node that has not yet heard its old node let go moves on to
    // the next one, so where each lands varies).
    let clients = storm.tasks.len();
    for i in 0..3 {
        let mut going = cluster.take(i);
        let pid = going.id().expect("running").to_string();
        let term = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(term.success());
        let exit = tokio::time::timeout(DEADLINE, going.wait())
            .await
            .expect("the node stopped within its shutdown timeout")
            .unwrap();
        assert!(exit.success(), "node {i} stopped cleanly: {exit:?}");
        storm
            .until(&format!("node {i}'s clients back"), |p| {
                p.on[i] == 0 && p.connected == clients
            })
            .await;
        cluster.spawn(i).await;
        storm.acks(40, &format!("after node {i} restarted")).await;
    }
    let (records, total) = storm.finish().await;
    check(&cluster, &records, total);
    for record in &records {
        // Every node went down once: every client moved at least once, and
        // each move was a 1001 from the node going away.
        let going_away: Vec<Ended> = (1..record.nodes.len())
            .map(|_| Ended::Close(close::GOING_AWAY))
            .collect();
        assert!(!going_away.is_empty(), "{} never moved", record.name);
        assert_eq!(
            record.ends, going_away,
            "{} (nodes {:?})",
            record.name, record.nodes
        );
    }
    let repeats: usize = of_node(&records, 0).map(|r| r.repeats.len()).sum();
    assert!(repeats > 0, "acked sends were sent again");
    eprintln!("{total} messages through a rolling restart");
}
