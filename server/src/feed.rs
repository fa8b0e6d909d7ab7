//! What a connection's writer sends next: the items of its outbox in order,
//! then the messages of each of its rooms past its cursor there.
//!
//! A [`Feed`] belongs to one connection's writer (the WebSocket one in
//! [`crate::conn`], the line one in [`crate::tcp`]); the writer hands it a
//! [`Sink`] to fill (a scratch buffer, rendered lines) and writes what it
//! got. Room messages go straight from the room's log into the sink, a
//! commit's frames as one shared slice where the sink takes them
//! ([`Sink::shared`]) and copied otherwise: no per-member queue, no
//! per-member reference count per message.
//!
//! Order: the outbox's items go first, in order; an item that must follow a
//! room message (`Item::After`, a sender's ack) first moves that room's
//! cursor up to it. `Item::Join` and `Item::Leave` start and stop a cursor,
//! so what a join queued (presence, history) always precedes the live
//! messages, and nothing of a room follows the leave.
//!
//! Catching up: a cursor that fell behind its room's log (a slow reader, a
//! resume from long ago) reads the next page from the store by `seq`, writes
//! it, and goes on from the log: no gap, no duplicate, no reconnect, and at
//! most one page in memory per lagging cursor.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use smallvec::SmallVec;

use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::outbox::{Batch, Item};
use crate::pages::{Page, Pages};
use crate::registry::Conn;
use crate::room::{Pulled, Room, Sink, Wire};
use crate::store::StoredMessage;

/// Messages one store read brings to a cursor that is catching up.
pub const CATCH_UP_PAGE: usize = 128;

type Read = Pin<Box<dyn Future<Output = Page> + Send>>;

/// A cursor reading from the store because the log has moved past it.
struct CatchUp {
    /// The store read in flight; `None` once its page is here.
    read: Option<Read>,
    /// Messages read and not yet written, oldest first.
    page: VecDeque<Wire>,
}

/// Where a connection is in one room.
struct Cursor {
    room: Arc<Room>,
    /// The last `seq` handed to the sink.
    seq: u64,
    catch_up: Option<Box<CatchUp>>,
}

/// How a [`Feed::poll_fill`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// The sink is full: write it and fill again.
    Full,
    /// Nothing more for now.
    Drained,
    /// Waiting for the store (the task is woken when the page is here);
    /// write what the sink holds meanwhile.
    Reading,
}

/// How far moving one cursor got.
enum Advanced {
    Done,
    Full,
    Reading,
}

/// The writer side of one connection's rooms and outbox; see the module docs.
#[derive(Default)]
pub struct Feed {
    /// One inline (no allocation): most connections are in one room.
    cursors: SmallVec<[Cursor; 1]>,
    /// Items taken from the outbox and not yet handed to the sink.
    items: VecDeque<Item>,
}

impl Feed {
    /// Hands what is due to `sink` until it is full or nothing is left;
    /// a ping or close asked of the outbox is added to `control`. While
    /// closing (`rooms` false) only the outbox's items go out.
    pub fn poll_fill<S: Sink>(
        &mut self,
        cx: &mut Context<'_>,
        hub: &Arc<Hub>,
        conn: &Conn,
        sink: &mut S,
        rooms: bool,
        control: &mut Batch,
    ) -> Fill {
        let mut counted = Counted {
            sink,
            frames: 0,
            bytes: 0,
        };
        let fill = self.fill(cx, hub, conn, &mut counted, rooms, control);
        if counted.frames > 0 {
            let metrics = &hub.metrics;
            metrics
                .deliveries
                .fetch_add(counted.frames, Ordering::Relaxed);
            metrics
                .delivered_bytes
                .fetch_add(counted.bytes, Ordering::Relaxed);
        }
        fill
    }

    /// The writer is about to wait with nothing to write: each room's next
    /// commit wakes it.
    pub fn wait(&self, conn: &Conn) {
        for cursor in &self.cursors {
            cursor.room.wait(conn.id);
        }
    }

    /// Frees what an idle writer does not need.
    pub fn release(&mut self) {
        if self.items.is_empty() {
            self.items = VecDeque::new();
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn fill<S: Sink>(
        &mut self,
        cx: &mut Context<'_>,
        hub: &Arc<Hub>,
        conn: &Conn,
        sink: &mut S,
        rooms: bool,
        control: &mut Batch,
    ) -> Fill {
        loop {
            if self.items.is_empty() {
                self.take(conn, control);
            }
            if self.items.is_empty() && !rooms {
                return Fill::Drained;
            }
            while let Some(item) = self.items.pop_front() {
                match item {
                    Item::Text(ref text) => {
                        if !sink.text(text) {
                            self.items.push_front(item);
                            return Fill::Full;
                        }
                    }
                    Item::After(ref room, seq, ref text) => {
                        if rooms {
                            match self.advance(cx, hub, room, seq, sink) {
                                Advanced::Done => {}
                                Advanced::Full => {
                                    self.items.push_front(item);
                                    return Fill::Full;
                                }
                                Advanced::Reading => {
                                    self.items.push_front(item);
                                    return Fill::Reading;
                                }
                            }
                        }
                        if !sink.text(text) {
                            self.items.push_front(item);
                            return Fill::Full;
                        }
                    }
                    Item::Raw(ref frame) => {
                        if !sink.raw(frame) {
                            self.items.push_front(item);
                            return Fill::Full;
                        }
                    }
                    Item::Join(room, seq) => {
                        match self
                            .cursors
                            .iter_mut()
                            .find(|c| Arc::ptr_eq(&c.room, &room))
                        {
                            Some(cursor) => {
                                cursor.seq = seq;
                                cursor.catch_up = None;
                            }
                            None => {
                                // Grow by one: most connections are in one room.
                                self.cursors.reserve_exact(1);
                                self.cursors.push(Cursor {
                                    room,
                                    seq,
                                    catch_up: None,
                                });
                            }
                        }
                    }
                    Item::Leave(room) => self.cursors.retain(|c| !Arc::ptr_eq(&c.room, &room)),
                }
            }
            if !rooms {
                return Fill::Drained;
            }
            for at in 0..self.cursors.len() {
                let room = Arc::clone(&self.cursors[at].room);
                match self.advance(cx, hub, &room, u64::MAX, sink) {
                    Advanced::Done => {}
                    Advanced::Full => return Fill::Full,
                    Advanced::Reading => return Fill::Reading,
                }
            }
            // Queued meanwhile? Then once more; else done.
            self.take(conn, control);
            if self.items.is_empty() {
                return Fill::Drained;
            }
        }
    }

    /// Moves what the outbox holds into `items`, and a ping or close it
    /// asks for into `control`.
    fn take(&mut self, conn: &Conn, control: &mut Batch) {
        if let Some(batch) = conn.outbox.take_now(&mut self.items) {
            control.ping |= batch.ping;
            if batch.close.is_some() {
                control.close = batch.close;
            }
        }
    }

    /// Moves the cursor in `room` (if joined) up to `upto`.
    fn advance<S: Sink>(
        &mut self,
        cx: &mut Context<'_>,
        hub: &Arc<Hub>,
        room: &Arc<Room>,
        upto: u64,
        sink: &mut S,
    ) -> Advanced {
        let Some(cursor) = self.cursors.iter_mut().find(|c| Arc::ptr_eq(&c.room, room)) else {
            return Advanced::Done; // left meanwhile
        };
        loop {
            if let Some(catch_up) = cursor.catch_up.as_mut() {
                if let Some(read) = catch_up.read.as_mut() {
                    let Poll::Ready(page) = read.as_mut().poll(cx) else {
                        return Advanced::Reading;
                    };
                    catch_up.read = None;
                    // The shared page may start before the cursor.
                    let after = cursor.seq;
                    catch_up.page = page.iter().filter(|w| w.seq > after).cloned().collect();
                    if catch_up.page.front().is_some_and(|w| w.seq > after + 1) {
                        // Retention dropped them: nothing to deliver there.
                        tracing::debug!(room = %room.name, from = after, "catch-up skips pruned messages");
                    }
                    if catch_up.page.is_empty() {
                        // Nothing stored past the cursor but not in the log:
                        // pruned; go on from the log.
                        cursor.seq = cursor.seq.max(room.oldest_in_log().saturating_sub(1));
                    }
                }
                while let Some(wire) = catch_up.page.front() {
                    if wire.seq > upto {
                        return Advanced::Done;
                    }
                    if wire.seq > cursor.seq {
                        if !sink.message(wire) {
                            return Advanced::Full;
                        }
                        cursor.seq = wire.seq;
                    }
                    catch_up.page.pop_front();
                }
                cursor.catch_up = None;
            }
            match room.pull(&mut cursor.seq, upto, sink) {
                Pulled::Done => return Advanced::Done,
                Pulled::Full => return Advanced::Full,
                Pulled::Behind => {
                    cursor.catch_up = Some(Box::new(CatchUp {
                        read: Some(read_after(hub, room, cursor.seq)),
                        page: VecDeque::new(),
                    }));
                }
            }
        }
    }
}

/// A sink that counts what it takes, for `/metrics`: one update of the
/// shared counters per fill, not one per frame.
struct Counted<'a, S> {
    sink: &'a mut S,
    frames: u64,
    bytes: u64,
}

impl<S: Sink> Sink for Counted<'_, S> {
    fn message(&mut self, wire: &Wire) -> bool {
        let taken = self.sink.message(wire);
        if taken {
            self.frames += 1;
            self.bytes += wire.bytes.len() as u64;
        }
        taken
    }

    fn text(&mut self, text: &tungstenite::Utf8Bytes) -> bool {
        let taken = self.sink.text(text);
        if taken {
            self.frames += 1;
            self.bytes += text.len() as u64;
        }
        taken
    }

    fn raw(&mut self, frame: &[u8]) -> bool {
        self.sink.raw(frame)
    }

    fn takes_shared(&self) -> bool {
        self.sink.takes_shared()
    }

    fn shared(&mut self, bytes: Bytes, frames: u64) -> bool {
        let len = bytes.len() as u64;
        let taken = self.sink.shared(bytes, frames);
        if taken {
            self.frames += frames;
            self.bytes += len;
        }
        taken
    }
}

/// The page of `room` holding the message after `seq`: shared with the
/// room's other readers ([`Pages`]), read from the store by the first to
/// ask, retrying with backoff while the store fails: a reader catching up
/// waits, it is not dropped and it does not skip.
fn read_after(hub: &Arc<Hub>, room: &Arc<Room>, seq: u64) -> Read {
    let hub = Arc::clone(hub);
    let room = Arc::clone(room);
    let start = Pages::start_for(seq);
    let slot = room.pages.slot(start);
    Box::pin(async move {
        let page = slot
            .get_or_init(|| async {
                Metrics::inc(&hub.metrics.catch_up_reads);
                let page: Page = read_page(&hub, &room.name, start)
                    .await
                    .iter()
                    .map(Wire::of)
                    .collect();
                page
            })
            .await
            .clone();
        room.pages.read(start, &slot, &page);
        page
    })
}

/// The store's messages of `room` after `start`, one page.
async fn read_page(hub: &Hub, room: &str, start: u64) -> Vec<StoredMessage> {
    let mut backoff = Duration::from_millis(50);
    loop {
        let name = room.to_string();
        match hub
            .with_store(move |store| store.after(&name, start, CATCH_UP_PAGE))
            .await
        {
            Ok(messages) => return messages,
            Err(err) => {
                tracing::warn!(error = %err, room, "catch-up read failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
