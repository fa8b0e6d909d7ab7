//! The per-connection outbox: the frames for this connection alone (acks,
//! presence, errors, direct messages, pongs' friends), bounded in bytes, and
//! the marks that start and stop its reading of a room's log.
//!
//! Room messages do not pass through here: a connection's writer reads them
//! from each room's log past its cursor ([`crate::room`], [`crate::feed`]).
//! What does pass through is small and bounded: pushing never blocks and
//! never awaits, so it is safe under a room's lock, and a queue that would
//! exceed its byte limit is not grown: the connection is closed with
//! [`close::SLOW_CONSUMER`] and everything queued is dropped.
//!
//! Wake-ups: the writer [`waits`](Outbox::wait) (registers its waker and
//! says it is idle; it is also on each of its rooms' waiting lists,
//! [`Room::wait`]) before its last look for work; a push, or a commit in
//! one of its rooms, [`notifies`](Outbox::notify) it, which wakes it only
//! if it was idle. A writer that is busy, blocked on its socket or waiting
//! for the flush tick is not woken for every message, and a commit does
//! not even look at it.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;

use futures_util::task::AtomicWaker;
use hubbub_protocol::close;
use parking_lot::Mutex;
use tungstenite::Utf8Bytes;

use hubbub_protocol::ServerMsg;

use crate::metrics::Metrics;
use crate::room::Room;

/// Why and how the writer should close the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close {
    pub code: u16,
    pub reason: &'static str,
}

/// Something queued for the writer, in order.
#[derive(Clone)]
pub enum Item {
    /// A frame of JSON text, maybe shared by many connections.
    Text(Utf8Bytes),
    /// A frame that goes out only once the connection has delivered
    /// `room`'s messages up to `seq` (a sender's ack follows its message).
    After(Arc<Room>, u64, Utf8Bytes),
    /// Start reading `room`'s log after `seq` (a join or a resume).
    Join(Arc<Room>, u64),
    /// Stop reading `room`'s log (a leave).
    Leave(Arc<Room>),
    /// A whole WebSocket frame made here: a binary message, which the chat
    /// protocol has none of; the echo server ([`crate::echo`]) sends them back.
    Raw(bytes::Bytes),
}

impl Item {
    fn bytes(&self) -> usize {
        match self {
            Item::Text(text) | Item::After(_, _, text) => text.len(),
            Item::Raw(frame) => frame.len(),
            Item::Join(..) | Item::Leave(_) => 0,
        }
    }
}

impl std::fmt::Debug for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Item::Text(text) => write!(f, "Text({text})"),
            Item::After(room, seq, text) => write!(f, "After({}, {seq}, {text})", room.name),
            Item::Join(room, seq) => write!(f, "Join({}, {seq})", room.name),
            Item::Leave(room) => write!(f, "Leave({})", room.name),
            Item::Raw(frame) => write!(f, "Raw({} bytes)", frame.len()),
        }
    }
}

/// What [`Outbox::push`] did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued for the writer.
    Queued,
    /// The connection is closing; the frame was dropped.
    Closed,
    /// The queue was full: the connection is now closing as a slow consumer.
    Overflow,
}

/// What the writer should do besides the items, handed out by [`Outbox::take_now`].
#[derive(Debug, Default)]
pub struct Batch {
    /// Send a WebSocket ping.
    pub ping: bool,
    /// Close the socket after the items.
    pub close: Option<Close>,
}

#[derive(Default)]
struct State {
    items: VecDeque<Item>,
    /// Sum of the frame lengths in `items` (at most `limit`).
    bytes: u32,
    ping: bool,
    close: Option<Close>,
}

pub struct Outbox {
    state: Mutex<State>,
    /// The task serving the connection.
    waker: AtomicWaker,
    /// The writer found nothing to do and waits: the next push or commit
    /// wakes it. See the module docs.
    idle: AtomicBool,
    /// The close must not wait for what is queued (overflow, timeouts).
    /// Outside the lock: the connection checks it on every write.
    aborted: AtomicBool,
    /// The connection's `welcome` is queued ([`crate::registry::Conn::welcomed`]).
    pub(crate) welcomed: AtomicBool,
    /// Most bytes that may wait in the queue (a `u32`, 4 GiB at most:
    /// every byte of an outbox is paid per connection).
    limit: u32,
    /// Where slow consumers are counted.
    metrics: Arc<Metrics>,
}

impl Outbox {
    /// An outbox counting into metrics of its own (for tests and tools).
    pub fn new(limit: usize) -> Outbox {
        Outbox::with_metrics(limit, Metrics::new())
    }

    /// An outbox counting into the server's `metrics`.
    pub fn with_metrics(limit: usize, metrics: Arc<Metrics>) -> Outbox {
        Outbox {
            state: Mutex::new(State::default()),
            waker: AtomicWaker::new(),
            idle: AtomicBool::new(false),
            aborted: AtomicBool::new(false),
            welcomed: AtomicBool::new(false),
            limit: u32::try_from(limit).unwrap_or(u32::MAX),
            metrics,
        }
    }

    /// Queues a frame for the writer. Never blocks.
    pub fn push(&self, frame: &Utf8Bytes) -> Pushed {
        self.enqueue(Item::Text(frame.clone()))
    }

    /// Queues a frame that follows `room`'s messages up to `seq`.
    pub fn push_after(&self, room: Arc<Room>, seq: u64, frame: &Utf8Bytes) -> Pushed {
        self.enqueue(Item::After(room, seq, frame.clone()))
    }

    /// Marks where the writer starts reading `room`'s log: after `seq`.
    pub fn join(&self, room: Arc<Room>, seq: u64) {
        self.enqueue(Item::Join(room, seq));
    }

    /// Marks where the writer stops reading `room`'s log.
    pub fn leave(&self, room: Arc<Room>) {
        self.enqueue(Item::Leave(room));
    }

    fn enqueue(&self, item: Item) -> Pushed {
        let bytes = item.bytes();
        let mut state = self.state.lock();
        if state.close.is_some() {
            return Pushed::Closed;
        }
        if state.bytes as usize + bytes > self.limit as usize {
            drop(state);
            Metrics::inc(&self.metrics.slow_consumers);
            self.close_now(Close {
                code: close::SLOW_CONSUMER,
                reason: "outbound queue overflow",
            });
            return Pushed::Overflow;
        }
        state.bytes += bytes as u32; // within `limit`, checked above
        if state.items.capacity() == 0 {
            // An idle connection holds no queue (see `release`), and most
            // get one notice at a time: room for one, not the default four
            // (the 224 bytes that every idle connection paid for each notice
            // outlived it as a hole in the heap; docs/benchmarks.md).
            state.items.reserve_exact(1);
        }
        state.items.push_back(item);
        drop(state);
        self.notify();
        Pushed::Queued
    }

    /// Queues a binary message ([`Outbox::push`]'s limit and close rules);
    /// only the echo server ([`crate::echo`]) sends binary.
    pub fn push_binary(&self, data: &[u8]) -> Pushed {
        let mut header = [0; crate::ws::MAX_SERVER_HEADER];
        let len = crate::ws::encode_header(crate::ws::OpCode::Binary, data.len(), &mut header);
        let mut frame = Vec::with_capacity(len + data.len());
        frame.extend_from_slice(&header[..len]);
        frame.extend_from_slice(data);
        self.enqueue(Item::Raw(frame.into()))
    }

    /// Asks the writer to send a WebSocket ping.
    pub fn ping(&self) {
        let mut state = self.state.lock();
        if state.close.is_none() {
            state.ping = true;
            drop(state);
            self.wake();
        }
    }

    /// Closes after what is already queued has been written. The first close
    /// asked for wins.
    pub fn close_after_drain(&self, reason: Close) {
        let mut state = self.state.lock();
        if state.close.is_none() {
            state.close = Some(reason);
            drop(state);
            self.wake();
        }
    }

    /// Drops what is queued and closes as soon as possible, interrupting a
    /// write in progress. The first close asked for wins.
    pub fn close_now(&self, reason: Close) -> bool {
        let mut state = self.state.lock();
        if state.close.is_some() {
            return false;
        }
        state.close = Some(reason);
        state.items = VecDeque::new();
        state.bytes = 0;
        state.ping = false;
        self.aborted.store(true, Ordering::Release);
        drop(state);
        self.wake();
        true
    }

    /// Whether a close has been asked for.
    pub fn is_closing(&self) -> bool {
        self.state.lock().close.is_some()
    }

    /// The close asked for, if any.
    pub fn close_reason(&self) -> Option<Close> {
        self.state.lock().close
    }

    /// Bytes waiting in the queue now.
    pub fn queued_bytes(&self) -> usize {
        self.state.lock().bytes as usize
    }

    /// Moves what is queued now to the end of `items` and says what else to
    /// do; `None` if nothing is queued.
    pub fn take_now(&self, items: &mut VecDeque<Item>) -> Option<Batch> {
        let mut state = self.state.lock();
        if state.items.is_empty() && !state.ping && state.close.is_none() {
            return None;
        }
        if items.is_empty() {
            // Swap rather than copy: both queues keep their capacity.
            std::mem::swap(&mut state.items, items);
        } else {
            items.extend(state.items.drain(..));
        }
        state.bytes = 0;
        Some(Batch {
            ping: std::mem::take(&mut state.ping),
            close: state.close,
        })
    }

    /// The writer has nothing to do: the next push or commit wakes `waker`.
    /// It must look for work once more after this (see the module docs).
    pub fn wait(&self, waker: &std::task::Waker) {
        self.waker.register(waker);
        self.idle.store(true, Ordering::SeqCst);
    }

    /// The writer found work after [`Outbox::wait`].
    pub fn resume(&self) {
        self.idle.store(false, Ordering::Relaxed);
    }

    /// Something new for the writer: wakes it if it waits with nothing to
    /// do; a busy one finds it on its own. Cheap when not idle (one load).
    pub fn notify(&self) {
        if self.idle.load(Ordering::SeqCst) && self.idle.swap(false, Ordering::SeqCst) {
            self.waker.wake();
        }
    }

    /// Wakes the writer whatever it is doing.
    pub fn wake(&self) {
        self.idle.store(false, Ordering::Relaxed);
        self.waker.wake();
    }

    /// Frees the queue's allocation if nothing is queued: the connection
    /// calls it when it goes idle, so a busy connection keeps its queue
    /// from one batch to the next and an idle one holds none.
    pub fn release(&self) {
        let mut state = self.state.lock();
        if state.items.is_empty() {
            state.items = VecDeque::new();
        }
    }

    /// Registers the connection's task to be woken by the next close or tick.
    pub fn register(&self, waker: &std::task::Waker) {
        self.waker.register(waker);
    }

    /// Whether the connection must close without draining.
    pub fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Acquire)
    }

    /// Completes when the connection must close without draining.
    pub async fn aborted(&self) {
        poll_fn(|cx| {
            if self.is_aborted() {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            if self.is_aborted() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

/// Serializes a message once into bytes that can be queued many times.
pub fn frame(msg: &ServerMsg) -> Utf8Bytes {
    Utf8Bytes::from(msg.to_json())
}

/// What the [`Flusher`] wakes at its tick: a connection's writer.
pub trait Wake: Send + Sync {
    fn wake(&self);
}

/// Write coalescing for every connection with one timer: a connection that
/// just wrote registers here instead of [waiting](Outbox::wait), so pushes
/// and commits do not wake it; one task wakes all registered connections
/// every `write_coalesce` (start to start), and each writes everything
/// that gathered meanwhile in one go. A busy connection thus
/// costs one wake-up and one write per tick, however many messages it
/// gets, and no timer of its own; a quiet one (not registered) writes at
/// once.
#[derive(Default)]
pub struct Flusher {
    waiting: Mutex<Vec<Arc<dyn Wake>>>,
    /// Wakes the tick task when the first connection registers.
    notify: tokio::sync::Notify,
}

impl Flusher {
    /// Wakes `conn` at the next tick.
    pub fn add(&self, conn: Arc<dyn Wake>) {
        let mut waiting = self.waiting.lock();
        waiting.push(conn);
        let first = waiting.len() == 1;
        drop(waiting);
        if first {
            self.notify.notify_one();
        }
    }

    /// Ticks every `every` while connections are registered; sleeps otherwise.
    pub async fn run(self: Arc<Self>, every: std::time::Duration) {
        let mut due = Vec::new();
        loop {
            self.notify.notified().await;
            // Ticks `every` apart from start to start: the wake-ups a tick
            // makes do not stretch the interval (nor the latency it adds).
            let mut tick = tokio::time::Instant::now();
            loop {
                tick += every;
                tokio::time::sleep_until(tick).await;
                let now = tokio::time::Instant::now();
                if now > tick + every {
                    tick = now; // fell behind: no burst of ticks to catch up
                }
                std::mem::swap(&mut *self.waiting.lock(), &mut due);
                if due.is_empty() {
                    break;
                }
                for conn in due.drain(..) {
                    conn.wake();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(s: &str) -> Utf8Bytes {
        Utf8Bytes::from(s.to_string())
    }

    fn texts(items: &VecDeque<Item>) -> Vec<&str> {
        items
            .iter()
            .map(|item| match item {
                Item::Text(text) | Item::After(_, _, text) => text.as_str(),
                Item::Join(..) | Item::Leave(_) | Item::Raw(_) => "mark",
            })
            .collect()
    }

    #[test]
    fn takes_everything_queued_in_order() {
        let outbox = Outbox::new(1024);
        assert_eq!(outbox.push(&frame("a")), Pushed::Queued);
        assert_eq!(outbox.push(&frame("bb")), Pushed::Queued);
        outbox.ping();
        assert_eq!(outbox.queued_bytes(), 3);
        let mut items = VecDeque::new();
        let batch = outbox.take_now(&mut items).unwrap();
        assert!(batch.ping);
        assert!(batch.close.is_none());
        assert_eq!(texts(&items), ["a", "bb"]);
        assert_eq!(outbox.queued_bytes(), 0);
        assert!(outbox.take_now(&mut items).is_none());
    }

    #[tokio::test]
    async fn overflow_drops_the_queue_and_closes_as_slow_consumer() {
        let outbox = Outbox::new(10);
        assert_eq!(outbox.push(&frame("12345")), Pushed::Queued);
        assert_eq!(outbox.push(&frame("12345")), Pushed::Queued);
        assert_eq!(outbox.push(&frame("1")), Pushed::Overflow);
        assert_eq!(outbox.push(&frame("1")), Pushed::Closed);
        outbox.aborted().await;
        let mut items = VecDeque::new();
        let batch = outbox.take_now(&mut items).unwrap();
        assert!(items.is_empty());
        assert_eq!(batch.close.unwrap().code, close::SLOW_CONSUMER);
    }

    #[test]
    fn close_after_drain_keeps_queued_frames_and_first_close_wins() {
        let outbox = Outbox::new(100);
        outbox.push(&frame("bye"));
        outbox.close_after_drain(Close {
            code: close::GOING_AWAY,
            reason: "shutdown",
        });
        outbox.close_now(Close {
            code: close::IDLE_TIMEOUT,
            reason: "idle",
        });
        let mut items = VecDeque::new();
        let batch = outbox.take_now(&mut items).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(batch.close.unwrap().code, close::GOING_AWAY);
    }

    /// Counts wake-ups of a task.
    struct Counter(std::sync::atomic::AtomicUsize);
    impl std::task::Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn only_a_waiting_writer_is_woken_and_only_once() {
        let outbox = Outbox::new(100);
        let counter = Arc::new(Counter(Default::default()));
        let waker = std::task::Waker::from(Arc::clone(&counter));
        // Busy (not waiting): notifications cost nothing and wake nobody.
        outbox.notify();
        assert_eq!(counter.0.load(Ordering::SeqCst), 0);
        outbox.wait(&waker);
        outbox.notify();
        outbox.notify();
        outbox.push(&frame("x"));
        assert_eq!(counter.0.load(Ordering::SeqCst), 1, "one wake per wait");
        outbox.wait(&waker);
        outbox.resume();
        outbox.notify();
        assert_eq!(counter.0.load(Ordering::SeqCst), 1, "resumed: busy again");
    }
}
