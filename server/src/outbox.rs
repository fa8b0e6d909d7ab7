//! The per-connection outbound queue: bounded in bytes, shared frames, one
//! waiting writer.
//!
//! The hub pushes already-serialized frames ([`Utf8Bytes`], a refcounted
//! buffer: a room message is serialized once and the same bytes are queued
//! for every member). Pushing never blocks and never awaits, so it is safe
//! under the room lock. The connection takes everything queued in one go
//! and writes it with as few writes as it can.
//!
//! A queue that would exceed its byte limit is not grown: the connection is
//! marked for closing with [`close::SLOW_CONSUMER`] and everything queued is
//! dropped. The client reconnects and catches up; the room never waits for it.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use hubbub_protocol::close;
use parking_lot::Mutex;
use tungstenite::Utf8Bytes;

use crate::metrics::Metrics;

/// Why and how the writer should close the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close {
    pub code: u16,
    pub reason: &'static str,
}

/// A frame waiting in an outbox or in a connection's write queue.
#[derive(Debug, Clone)]
pub enum Frame {
    /// A message (JSON text), shared by every member it goes to.
    Text(Utf8Bytes),
    /// A whole WebSocket control frame (ping, pong, close), made by the
    /// connection itself; never queued in an outbox.
    Raw(bytes::Bytes),
    /// A binary message: the chat protocol has none; the echo server
    /// ([`crate::echo`]) sends them back.
    Binary(bytes::Bytes),
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

/// What the writer should do next, handed out by [`Outbox::take`].
#[derive(Debug, Default)]
pub struct Batch {
    /// Send a WebSocket ping after the frames.
    pub ping: bool,
    /// Close the socket after the frames.
    pub close: Option<Close>,
}

#[derive(Default)]
struct State {
    frames: VecDeque<Frame>,
    /// Sum of the lengths of `frames`.
    bytes: usize,
    ping: bool,
    close: Option<Close>,
    /// The connection just wrote and looks again at the next flush tick
    /// ([`Flusher`]): pushes until then do not wake it.
    deferred: bool,
}

pub struct Outbox {
    state: Mutex<State>,
    /// The task serving the connection. It registers before looking at the
    /// queue and is woken after a change to it, so no wake-up is lost.
    waker: AtomicWaker,
    /// The close must not wait for what is queued (overflow, idle timeout).
    /// Outside the lock: the connection checks it on every write.
    aborted: AtomicBool,
    /// Most bytes that may wait in the queue.
    limit: usize,
    /// Where deliveries and slow consumers are counted.
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
            aborted: AtomicBool::new(false),
            limit,
            metrics,
        }
    }

    /// Queues a frame for the writer. Never blocks.
    ///
    /// This is the fan-out's inner loop (once per member per message), so it
    /// does as little as it can: one lock, one refcount increment, and a
    /// wake-up only when the queue goes from empty to non-empty (a non-empty
    /// queue has already woken its writer, which has not taken it yet).
    /// Deliveries are counted by [`Outbox::take`], once per batch.
    pub fn push(&self, frame: &Utf8Bytes) -> Pushed {
        self.push_all(std::slice::from_ref(frame))
    }

    /// Queues several frames under one lock, in order ([`Outbox::push`]
    /// for each, as the fan-out of a batch of commits).
    pub fn push_all(&self, frames: &[Utf8Bytes]) -> Pushed {
        let bytes: usize = frames.iter().map(|f| f.len()).sum();
        let mut state = self.state.lock();
        if state.close.is_some() {
            return Pushed::Closed;
        }
        if state.bytes + bytes > self.limit {
            drop(state);
            Metrics::inc(&self.metrics.slow_consumers);
            self.close_now(Close {
                code: close::SLOW_CONSUMER,
                reason: "outbound queue overflow",
            });
            return Pushed::Overflow;
        }
        let wake = state.frames.is_empty() && !state.deferred && !frames.is_empty();
        state.bytes += bytes;
        state.frames.extend(frames.iter().cloned().map(Frame::Text));
        drop(state);
        if wake {
            self.waker.wake();
        }
        Pushed::Queued
    }

    /// Queues a binary message ([`Outbox::push`]'s limit and close rules);
    /// only the echo server ([`crate::echo`]) sends binary.
    pub fn push_binary(&self, data: bytes::Bytes) -> Pushed {
        let mut state = self.state.lock();
        if state.close.is_some() {
            return Pushed::Closed;
        }
        if state.bytes + data.len() > self.limit {
            drop(state);
            Metrics::inc(&self.metrics.slow_consumers);
            self.close_now(Close {
                code: close::SLOW_CONSUMER,
                reason: "outbound queue overflow",
            });
            return Pushed::Overflow;
        }
        let wake = state.frames.is_empty() && !state.deferred;
        state.bytes += data.len();
        state.frames.push_back(Frame::Binary(data));
        drop(state);
        if wake {
            self.waker.wake();
        }
        Pushed::Queued
    }

    /// Asks the writer to send a WebSocket ping.
    pub fn ping(&self) {
        let mut state = self.state.lock();
        if state.close.is_none() {
            state.ping = true;
            drop(state);
            self.waker.wake();
        }
    }

    /// Closes after what is already queued has been written. The first close
    /// asked for wins.
    pub fn close_after_drain(&self, reason: Close) {
        let mut state = self.state.lock();
        if state.close.is_none() {
            state.close = Some(reason);
            drop(state);
            self.waker.wake();
        }
    }

    /// Drops what is queued and closes as soon as possible, interrupting a
    /// write in progress. The first close asked for wins.
    pub fn close_now(&self, reason: Close) {
        let mut state = self.state.lock();
        if state.close.is_none() {
            state.close = Some(reason);
            state.frames = VecDeque::new();
            state.bytes = 0;
            state.ping = false;
            self.aborted.store(true, Ordering::Release);
            drop(state);
            self.waker.wake();
        }
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
        self.state.lock().bytes
    }

    /// Waits until there is something to do, then moves all queued frames
    /// into `frames` (which must be empty) and says what else to do.
    pub async fn take(&self, frames: &mut VecDeque<Frame>) -> Batch {
        poll_fn(|cx| self.poll_take(cx, frames)).await
    }

    /// [`Outbox::take`] as a poll, for a connection that is its own future:
    /// `Pending` registers `cx` to be woken by the next push, ping or close.
    pub fn poll_take(&self, cx: &mut Context<'_>, frames: &mut VecDeque<Frame>) -> Poll<Batch> {
        if let Some(batch) = self.take_now(frames) {
            return Poll::Ready(batch);
        }
        self.waker.register(cx.waker());
        match self.take_now(frames) {
            Some(batch) => Poll::Ready(batch),
            None => Poll::Pending,
        }
    }

    /// Moves what is queued now to the end of `frames` (the writer may
    /// already hold some) and says what else to do; `None` if nothing is queued.
    pub fn take_now(&self, frames: &mut VecDeque<Frame>) -> Option<Batch> {
        let mut state = self.state.lock();
        if state.frames.is_empty() && !state.ping && state.close.is_none() {
            return None;
        }
        let count = state.frames.len();
        if frames.is_empty() {
            // Swap rather than copy: both queues keep their capacity.
            std::mem::swap(&mut state.frames, frames);
        } else {
            frames.extend(state.frames.drain(..));
        }
        let bytes = std::mem::take(&mut state.bytes);
        let batch = Batch {
            ping: std::mem::take(&mut state.ping),
            close: state.close,
        };
        drop(state);
        if count > 0 {
            self.metrics
                .deliveries
                .fetch_add(count as u64, Ordering::Relaxed);
            self.metrics
                .delivered_bytes
                .fetch_add(bytes as u64, Ordering::Relaxed);
        }
        Some(batch)
    }

    /// Holds the wake-ups of pushes until [`Outbox::undefer`]: the
    /// connection just wrote and gathers what follows until the next flush
    /// tick (write coalescing). Closes and pings still wake it at once.
    pub fn defer(&self) {
        self.state.lock().deferred = true;
    }

    /// Ends a [`Outbox::defer`] and wakes the connection.
    pub fn undefer(&self) {
        self.state.lock().deferred = false;
        self.waker.wake();
    }

    /// Frees the queue's allocation if nothing is queued: the connection
    /// calls it when it goes idle, so a busy connection keeps its queue
    /// from one batch to the next and an idle one holds none.
    pub fn release(&self) {
        let mut state = self.state.lock();
        if state.frames.is_empty() {
            state.frames = VecDeque::new();
        }
    }

    /// Registers the connection's task to be woken by the next change.
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

/// Write coalescing for every connection with one timer: a connection that
/// just wrote [`defers`](Outbox::defer) and registers here; one task wakes
/// all registered connections every `write_coalesce`, and each writes
/// everything that gathered meanwhile in one go. A busy connection thus
/// costs one wake-up and one write per tick, however many messages it
/// gets, and no timer of its own; a quiet one (not registered) writes at
/// once.
#[derive(Default)]
pub struct Flusher {
    waiting: Mutex<Vec<Arc<crate::hub::Conn>>>,
    /// Wakes the tick task when the first connection registers.
    notify: tokio::sync::Notify,
}

impl Flusher {
    /// Defers `conn`'s wake-ups until the next tick.
    pub fn add(&self, conn: &Arc<crate::hub::Conn>) {
        conn.outbox.defer();
        let mut waiting = self.waiting.lock();
        waiting.push(Arc::clone(conn));
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
            loop {
                tokio::time::sleep(every).await;
                std::mem::swap(&mut *self.waiting.lock(), &mut due);
                if due.is_empty() {
                    break;
                }
                for conn in due.drain(..) {
                    conn.outbox.undefer();
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

    #[tokio::test]
    async fn takes_everything_queued_in_order() {
        let outbox = Outbox::new(1024);
        assert_eq!(outbox.push(&frame("a")), Pushed::Queued);
        assert_eq!(outbox.push(&frame("bb")), Pushed::Queued);
        outbox.ping();
        assert_eq!(outbox.queued_bytes(), 3);
        let mut frames = VecDeque::new();
        let batch = outbox.take(&mut frames).await;
        assert!(batch.ping);
        assert!(batch.close.is_none());
        let texts: Vec<&str> = frames
            .iter()
            .map(|f| match f {
                Frame::Text(text) => text.as_str(),
                Frame::Raw(_) | Frame::Binary(_) => "not text",
            })
            .collect();
        assert_eq!(texts, ["a", "bb"]);
        assert_eq!(outbox.queued_bytes(), 0);
    }

    #[tokio::test]
    async fn overflow_drops_the_queue_and_closes_as_slow_consumer() {
        let outbox = Outbox::new(10);
        assert_eq!(outbox.push(&frame("12345")), Pushed::Queued);
        assert_eq!(outbox.push(&frame("12345")), Pushed::Queued);
        assert_eq!(outbox.push(&frame("1")), Pushed::Overflow);
        assert_eq!(outbox.push(&frame("1")), Pushed::Closed);
        outbox.aborted().await;
        let mut frames = VecDeque::new();
        let batch = outbox.take(&mut frames).await;
        assert!(frames.is_empty());
        assert_eq!(batch.close.unwrap().code, close::SLOW_CONSUMER);
    }

    #[tokio::test]
    async fn close_after_drain_keeps_queued_frames_and_first_close_wins() {
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
        let mut frames = VecDeque::new();
        let batch = outbox.take(&mut frames).await;
        assert_eq!(frames.len(), 1);
        assert_eq!(batch.close.unwrap().code, close::GOING_AWAY);
    }
}
