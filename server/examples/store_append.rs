//! How fast the SQLite store takes group commits of many small rooms: what
//! the persist thread pays per message, without sockets or a load generator.
//!
//! ```text
//! cargo run --release -p hubbub --example store_append -- [ROOMS] [BATCH] [MESSAGES]
//! ```
//!
//! Appends MESSAGES messages (default 200,000) in batches of BATCH (default
//! 250: 5 ms of a 50,000 msg/s load, the default commit window) spread
//! round-robin over ROOMS rooms (default 200), to a fresh `hubbub.db` in a
//! temporary directory, and prints the wall and CPU time per message and
//! per commit. See docs/benchmarks.md ("Small rooms, durable").

use std::time::Instant;

use hubbub::store::{SqliteStore, Store, StoredMessage};

fn cpu_seconds() -> f64 {
    // utime + stime of this process, in clock ticks (fields 14 and 15).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) / 100.0,
        _ => 0.0,
    }
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().expect("a number"));
    let rooms = args.next().unwrap_or(200).max(1);
    let batch_size = args.next().unwrap_or(250).max(1);
    let messages = args.next().unwrap_or(200_000);

    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(dir.path()).expect("open the store");
    let mut seqs = vec![0u64; rooms];
    let mut batch = Vec::with_capacity(batch_size);
    let (started, cpu) = (Instant::now(), cpu_seconds());
    let mut commits = 0;
    for i in 0..messages {
        let room = i % rooms;
        seqs[room] += 1;
        batch.push(StoredMessage {
            room: format!("r{room}"),
            seq: seqs[room],
            from: format!("b{}", i % (2 * rooms)),
            text: format!("b{} {} 1764500000000", i % (2 * rooms), seqs[room]),
            sent_at: 1_764_500_000_000 + i as u64 / 50,
            client_id: None,
        });
        if batch.len() == batch_size || i + 1 == messages {
            store.append(&batch).expect("append");
            batch.clear();
            commits += 1;
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu;
    println!(
        "rooms {rooms}, batch {batch_size}, {messages} messages, {commits} commits: \
         {:.1} µs wall and {:.1} µs CPU per message, {:.2} ms wall per commit, {:.0} msg/s",
        wall * 1e6 / messages as f64,
        cpu * 1e6 / messages as f64,
        wall * 1e3 / commits as f64,
        messages as f64 / wall,
    );
}
