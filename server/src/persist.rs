//! The persist thread: group commit of room messages, then fan-out.
//!
//! A `send` gets its `seq` under the room lock and is handed to this thread
//! through a bounded channel. The thread takes everything waiting (up to
//! [`MAX_BATCH`]), appends it to the [`Store`] in one transaction (one fsync
//! for the lot) and only then fans each message out and acks its sender, in
//! `seq` order. So an `ack` means durable, and a member never sees a message
//! that a crash could take back.
//!
//! Under load the thread commits at most once per `commit_window`: after a
//! commit it sleeps until the window has passed and takes what arrived, so a
//! busy server pays one fsync (and one wake-up of this thread) per window,
//! not one per message. A message that arrives after a quiet spell is
//! committed at once.
//!
//! If the store fails, the batch is retried with backoff; nothing is acked
//! and nothing is skipped, so sequence numbers stay gapless. Meanwhile new
//! sends are refused with `unavailable` ([`Persister::is_failing`]), so
//! clients retry rather than wait behind an outage.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hubbub_protocol::names;
use parking_lot::Mutex;

use crate::metrics::Metrics;
use crate::room::Room;
use crate::store::{Retention, Store, StoredMessage};
use crate::timers::now_ms;

/// Most messages committed in one transaction.
pub const MAX_BATCH: usize = 4096;
/// Most messages waiting for the persist thread; past it `send` gets `unavailable`.
pub const QUEUE_CAPACITY: usize = 65_536;

struct Job {
    room: Arc<Room>,
    msg: StoredMessage,
}

pub struct Persister {
    tx: Mutex<Option<SyncSender<Job>>>,
    /// Set while the store refuses writes (the last attempt failed): new
    /// sends are refused with `unavailable` rather than queued behind it.
    failing: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Called on the persist thread once a private conversation's messages
/// are durable, with the senders of those new in it (not retries, not
/// edits, deletions or reactions): the news that something was said there
/// goes out only for what is stored ([`crate::conversation::said`]).
pub type SaidInConversation = Box<dyn Fn(&Arc<Room>, &[String]) + Send + 'static>;

impl Persister {
    /// Starts the persist thread over `store`.
    pub fn start(
        store: Arc<dyn Store>,
        retention: (Retention, Duration),
        window: Duration,
        metrics: Arc<Metrics>,
        said: SaidInConversation,
    ) -> Persister {
        let (tx, rx) = sync_channel(QUEUE_CAPACITY);
        let failing = Arc::new(AtomicBool::new(false));
        let failed = Arc::clone(&failing);
        let thread = std::thread::Builder::new()
            .name("hubbub-persist".into())
            .spawn(move || persist_loop(store, rx, retention, window, metrics, failed, said))
            .expect("spawn the persist thread");
        Persister {
            tx: Mutex::new(Some(tx)),
            failing,
            thread: Mutex::new(Some(thread)),
        }
    }

    /// Whether the store's last write failed (and is being retried).
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    /// Hands a message to the thread; `false` if it is backed up or stopped.
    pub fn submit(&self, room: Arc<Room>, msg: StoredMessage) -> bool {
        let tx = self.tx.lock();
        let Some(tx) = tx.as_ref() else { return false };
        match tx.try_send(Job { room, msg }) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                tracing::warn!("persist queue full; refusing a send");
                false
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    /// Stops taking messages; the thread commits what it has and exits.
    /// Returns the thread to join.
    pub fn stop(&self) -> Option<JoinHandle<()>> {
        self.tx.lock().take();
        self.thread.lock().take()
    }
}

/// Longest wait between two tries of a failing store: a database back
/// from a restart is used again within about this long.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

fn persist_loop(
    store: Arc<dyn Store>,
    rx: Receiver<Job>,
    (retention, prune_every): (Retention, Duration),
    window: Duration,
    metrics: Arc<Metrics>,
    failing: Arc<AtomicBool>,
    said: SaidInConversation,
) {
    let prunes = retention.max_count.is_some() || retention.max_age.is_some();
    let mut last_prune: Option<Instant> = None;
    let mut last_commit: Option<Instant> = None;
    let mut rooms = Vec::with_capacity(MAX_BATCH);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        if prunes && last_prune.is_none_or(|at| at.elapsed() >= prune_every) {
            last_prune = Some(Instant::now());
            match store.prune(retention, now_ms()) {
                Ok(dropped) => tracing::debug!(dropped, "retention applied"),
                Err(err) => tracing::error!(error = %err, "retention failed"),
            }
        }
        let first = match rx.recv_timeout(prune_every) {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        rooms.push(first.room);
        batch.push(first.msg);
        // The group commit window: under load, gather until a window has
        // passed since the last commit. Sleeping through it rather than
        // waiting on the channel: a wait would be woken (a futex call and a
        // context switch on each side) by every message that arrives.
        if let Some(until) = last_commit.map(|at| at + window) {
            let left = until.saturating_duration_since(Instant::now());
            if !left.is_zero() {
                std::thread::sleep(left);
            }
        }
        // Stopping (disconnected): commit what we have, then exit on the next recv.
        while batch.len() < MAX_BATCH {
            let Ok(job) = rx.try_recv() else { break };
            rooms.push(job.room);
            batch.push(job.msg);
        }
        last_commit = Some(Instant::now());
        let mut backoff = Duration::from_millis(10);
        let retries = loop {
            let started = Instant::now();
            let result = store.number_and_append(&mut batch);
            metrics.store_write(batch.len(), started.elapsed());
            let err = match result {
                Ok(retries) => {
                    failing.store(false, Ordering::Relaxed);
                    break retries;
                }
                Err(err) => err,
            };
            failing.store(true, Ordering::Relaxed);
            Metrics::inc(&metrics.store_errors);
            tracing::error!(error = %err, messages = batch.len(), "storing messages failed; retrying");
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        };
        // Fan out each run of one room's messages at once.
        let mut jobs = rooms.drain(..).zip(batch.drain(..).zip(retries)).peekable();
        while let Some((room, first)) = jobs.next() {
            let mut run = vec![first];
            while let Some((_, next)) = jobs.next_if(|(next, _)| Arc::ptr_eq(next, &room)) {
                run.push(next);
            }
            catch_up(&*store, &room, &run, &failing);
            let mut senders: Vec<String> = Vec::new();
            if names::is_conversation(&room.name) {
                for (msg, retry) in &run {
                    if !retry && msg.event.is_none() && !senders.contains(&msg.from) {
                        senders.push(msg.from.clone());
                    }
                }
            }
            room.committed(run);
            if !senders.is_empty() {
                said(&room, &senders);
            }
        }
    }
}

/// Before a run of `room`'s messages joins its log: in a store that nodes
/// share, other nodes may have committed messages of the room since it
/// last heard; read them (by `seq`) so the log has no gap. A lone node's
/// runs always continue its log, and this reads nothing.
/// While the store cannot be read, `failing` is set: sends are refused
/// rather than queued behind this.
fn catch_up(store: &dyn Store, room: &Room, run: &[(StoredMessage, bool)], failing: &AtomicBool) {
    // The new messages' numbers follow each other and every retry's.
    let before_new = run.iter().find(|(_, retry)| !retry).map(|(m, _)| m.seq - 1);
    let last_retry = run
        .iter()
        .filter(|(_, retry)| *retry)
        .map(|(m, _)| m.seq)
        .max();
    let need = before_new.into_iter().chain(last_retry).max().unwrap_or(0);
    let mut backoff = Duration::from_millis(10);
    loop {
        let read = room.read_up_to(store, need);
        if read.is_ok() {
            failing.store(false, Ordering::Relaxed);
        }
        match read {
            Ok(true) => return,
            Ok(false) => {
                let from = room.delivered();
                tracing::error!(room = %room.name, from, need, "committed messages missing from the store");
                return;
            }
            Err(err) => {
                failing.store(true, Ordering::Relaxed);
                tracing::warn!(error = %err, room = %room.name, "reading other nodes' messages failed; retrying");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
