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
//! and nothing is skipped, so sequence numbers stay gapless.

use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::hub::now_ms;
use crate::metrics::Metrics;
use crate::room::Room;
use crate::store::{Retention, Store, StoredMessage};

/// Most messages committed in one transaction.
pub const MAX_BATCH: usize = 4096;
/// Most messages waiting for the persist thread; past it `send` gets `unavailable`.
pub const QUEUE_CAPACITY: usize = 65_536;
/// How often retention is applied.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

struct Job {
    room: Arc<Room>,
    msg: StoredMessage,
}

pub struct Persister {
    tx: Mutex<Option<SyncSender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Persister {
    /// Starts the persist thread over `store`.
    pub fn start(
        store: Arc<dyn Store>,
        retention: Retention,
        window: Duration,
        metrics: Arc<Metrics>,
    ) -> Persister {
        let (tx, rx) = sync_channel(QUEUE_CAPACITY);
        let thread = std::thread::Builder::new()
            .name("hubbub-persist".into())
            .spawn(move || persist_loop(store, rx, retention, window, metrics))
            .expect("spawn the persist thread");
        Persister {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        }
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

fn persist_loop(
    store: Arc<dyn Store>,
    rx: Receiver<Job>,
    retention: Retention,
    window: Duration,
    metrics: Arc<Metrics>,
) {
    let prunes = retention.max_count.is_some() || retention.max_age.is_some();
    let mut last_prune: Option<Instant> = None;
    let mut last_commit: Option<Instant> = None;
    let mut rooms = Vec::with_capacity(MAX_BATCH);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        if prunes && last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            last_prune = Some(Instant::now());
            match store.prune(retention, now_ms()) {
                Ok(dropped) => tracing::debug!(dropped, "retention applied"),
                Err(err) => tracing::error!(error = %err, "retention failed"),
            }
        }
        let first = match rx.recv_timeout(PRUNE_EVERY) {
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
        loop {
            let started = Instant::now();
            let result = store.append(&batch);
            metrics.store_write(batch.len(), started.elapsed());
            let Err(err) = result else { break };
            Metrics::inc(&metrics.store_errors);
            tracing::error!(error = %err, messages = batch.len(), "storing messages failed; retrying");
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        // Fan out each run of one room's messages at once.
        let mut jobs = rooms.drain(..).zip(batch.drain(..)).peekable();
        while let Some((room, msg)) = jobs.next() {
            let mut run = vec![msg];
            while let Some((_, msg)) = jobs.next_if(|(next, _)| Arc::ptr_eq(next, &room)) {
                run.push(msg);
            }
            room.committed(run);
        }
    }
}
