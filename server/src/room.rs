//! A room: its members, its log of committed messages, and its coalesced
//! presence notices.
//!
//! **The log is the fan-out.** Each committed message is serialized once
//! into a ready-to-write WebSocket frame ([`Wire`]) and appended to the
//! room's in-memory log (the latest `room_log` messages). Nothing is pushed
//! to the members: each member's connection keeps a cursor (the last `seq`
//! it delivered) and its writer pulls what is past the cursor, as much as
//! its socket takes ([`Room::pull`]). A commit only wakes the members that
//! were waiting with nothing to write. A member that fell behind the log
//! catches up from the store by `seq` ([`crate::feed`]) and rejoins the log;
//! memory is bounded per room, not per member.
//!
//! **Shared runs.** The frames of one commit are made into one buffer (a
//! [`Run`]), each message's [`Wire`] a slice of it. A writer that can send
//! bytes as they are ([`Sink::shared`], the WebSocket writer's vectored
//! write) is handed, per run, the slice from its cursor to what is due: no
//! copy per member, one reference per run rather than a copy per message.
//! An edit or deletion that rewrites a message's frame breaks its run (the
//! run is forgotten; its messages are copied one by one from then on), so
//! a shared slice is always exactly the frames a copy would give.
//!
//! Presence: a room remembers which names it has *announced*. Joins and
//! leaves change the members at once, and the difference between members
//! and announced names goes out as one `joined` and one `left` frame per
//! room at most once per `presence_interval`; so 10,000 joins cost a few
//! dozen frames per member rather than 10,000. A joiner's `presence`
//! snapshot is the announced set; the next notice brings it up to date,
//! its own name included, so every member learns of every change exactly once.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use hubbub_protocol::{Event, HistoryMessage, ServerMsg};
use parking_lot::Mutex;
use tungstenite::Utf8Bytes;

use crate::feed::CATCH_UP_PAGE;
use crate::outbox::frame;
use crate::pages::Pages;
use crate::registry::{Conn, ConnId};
use crate::store::{Store, StoreError, StoredMessage};
use crate::ws::{self, OpCode};

/// Most `(user, client_id)` pairs a room remembers for idempotent retries:
/// a retry of a send older than this many sends in its room is taken as new.
pub const CLIENT_ID_WINDOW: usize = 10_000;

/// A room message as it goes on the wire: a whole WebSocket text frame
/// (header, then the `message` JSON), made once and copied to every member.
#[derive(Debug, Clone)]
pub struct Wire {
    pub seq: u64,
    /// Header and payload.
    pub bytes: Bytes,
    /// Length of the header; the JSON starts there.
    pub header: u8,
}

impl Wire {
    /// The frame of a stored message, with its reply quote, mentions and
    /// event. The same message makes the same bytes from the log or from
    /// the store: both fold a later edit or delete into it when it commits
    /// (the event that changed it follows it in both).
    pub fn of(msg: &StoredMessage) -> Wire {
        let json = ServerMsg::Message {
            event: msg.event.clone(),
            mentions: msg.mentions.clone(),
            reply_to: msg.reply_to.clone(),
            room: msg.room.clone(),
            seq: msg.seq,
            from: msg.from.clone(),
            text: msg.text.clone(),
            sent_at: msg.sent_at,
            attachments: msg.attachments.clone(),
        }
        .to_json();
        let mut header = [0; ws::MAX_SERVER_HEADER];
        let len = ws::encode_header(OpCode::Text, json.len(), &mut header);
        let mut bytes = BytesMut::with_capacity(len + json.len());
        bytes.put_slice(&header[..len]);
        bytes.put_slice(json.as_bytes());
        Wire {
            seq: msg.seq,
            bytes: bytes.freeze(),
            header: len as u8,
        }
    }

    /// The `message` JSON without the WebSocket header.
    pub fn json(&self) -> &[u8] {
        &self.bytes[usize::from(self.header)..]
    }
}

/// A stored message as `history` carries it.
pub fn history_message(msg: &StoredMessage) -> HistoryMessage {
    HistoryMessage {
        event: msg.event.clone(),
        mentions: msg.mentions.clone(),
        reply_to: msg.reply_to.clone(),
        seq: msg.seq,
        from: msg.from.clone(),
        text: msg.text.clone(),
        sent_at: msg.sent_at,
        attachments: msg.attachments.clone(),
    }
}

/// Where a writer puts what it pulls; see [`crate::feed`].
pub trait Sink {
    /// Takes a room message's frame; `false` (and nothing taken) if it does
    /// not fit now.
    fn message(&mut self, wire: &Wire) -> bool;
    /// Takes a frame of JSON text (acks, presence, errors ...); `false`
    /// (and nothing taken) if it does not fit now.
    fn text(&mut self, text: &Utf8Bytes) -> bool;
    /// Takes a whole WebSocket frame made by the connection (a ping, a
    /// binary echo); `false` (and nothing taken) if it does not fit now.
    fn raw(&mut self, frame: &[u8]) -> bool;
    /// Whether [`Sink::shared`] may take anything.
    fn takes_shared(&self) -> bool {
        false
    }
    /// Takes `frames` whole room-message frames, back to back in `bytes`
    /// (a slice of a [`Run`]), to send as they are; `false` (and nothing
    /// taken) if not now: then they are offered one by one.
    fn shared(&mut self, _bytes: Bytes, _frames: u64) -> bool {
        false
    }
}

/// How far [`Room::pull`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pulled {
    /// The cursor reached what was asked (or everything committed).
    Done,
    /// The sink is full; pull again once it is written.
    Full,
    /// The next message is no longer in the log: catch up from the store.
    Behind,
}

/// A member's name as a room keeps it: one allocation shared by the
/// member, the online count and the announced set.
pub type Name = Arc<str>;

struct Member {
    name: Name,
    conn: Arc<Conn>,
}

/// A message handed to the persist thread, not committed yet, and whom to
/// ack when it lands. Pending messages commit in the order they were said.
struct Pending {
    /// `(sender key, client_id)`, to recognise a retry meanwhile.
    key: Option<(String, String)>,
    ackers: Vec<(Arc<Conn>, Option<String>)>,
}

/// A committed message in the log.
struct Entry {
    msg: StoredMessage,
    wire: Wire,
}

/// The frames of messages `first..=last`, committed together, back to
/// back in one buffer; each of their [`Wire`]s is a slice of it (see the
/// module docs).
struct Run {
    first: u64,
    last: u64,
    bytes: Bytes,
}

impl Run {
    /// Where `wire` (a slice of this run) starts in it.
    fn offset(&self, wire: &Wire) -> usize {
        wire.bytes.as_ptr() as usize - self.bytes.as_ptr() as usize
    }
}

/// What became of a `send`.
pub enum Said {
    /// Given the next `seq`; the ack follows once it is durable.
    Queued,
    /// Joined a retry of a message not yet durable; acked when it is.
    Waiting,
    /// A retry of a message already durable: ack with its `seq` now.
    Duplicate(u64),
}

struct RoomState {
    members: HashMap<ConnId, Member>,
    /// Connections per member name: who is online here, without a scan.
    online: HashMap<Name, usize>,
    /// Names online in this room on other nodes of a cluster, and on how
    /// many ([`Room::set_remote`]).
    remote: HashMap<Name, u64>,
    /// Whether `online`'s names changed since [`Room::local_names_if_changed`].
    local_changed: bool,
    /// Names every member has been told about.
    announced: BTreeSet<Name>,
    /// The `presence` frame for `announced`, serialized once and shared by
    /// every joiner until `announced` changes.
    snapshot: Option<Utf8Bytes>,
    /// Names whose presence may differ from `announced`.
    changed: BTreeSet<Name>,
    last_flush: Option<Instant>,
    flush_scheduled: bool,
    /// Set when the room was removed from the hub; a late joiner retries.
    closed: bool,
    /// The last `seq` given out (durable or not yet).
    last_seq: u64,
    /// The latest committed messages, oldest first, contiguous, ending at
    /// [`Room::delivered`].
    log: VecDeque<Entry>,
    /// The intact runs of the log's messages, oldest first (messages not
    /// in one are copied one by one).
    runs: VecDeque<Run>,
    /// Messages given a `seq` but not committed yet, oldest first.
    pending: VecDeque<Pending>,
    /// Recent `(sender key, client_id)` → `seq`, for idempotent retries.
    client_ids: HashMap<(String, String), u64>,
    /// Insertion order of `client_ids`, to forget the oldest.
    client_id_order: VecDeque<(String, String)>,
    /// Members whose writers wait with nothing to write ([`Room::wait`]):
    /// the next commit wakes them, and only them; busy members find the
    /// new messages on their own.
    waiting: Waiting,
}

/// Who the next commit wakes: the listed members, or every member once
/// the list would outgrow the room (writers that went idle again and
/// again between two commits).
enum Waiting {
    Listed(Vec<ConnId>),
    Everyone,
}

impl Waiting {
    /// Wakes whoever waits, and starts a new list.
    fn wake(&mut self, members: &HashMap<ConnId, Member>) {
        match std::mem::replace(self, Waiting::Listed(Vec::new())) {
            Waiting::Listed(mut ids) => {
                for id in ids.drain(..) {
                    if let Some(member) = members.get(&id) {
                        member.conn.outbox.notify();
                    }
                }
                *self = Waiting::Listed(ids); // keep the allocation
            }
            Waiting::Everyone => {
                for member in members.values() {
                    member.conn.outbox.notify();
                }
            }
        }
    }
}

impl RoomState {
    fn add(&mut self, id: ConnId, member: Member) -> bool {
        let name = Arc::clone(&member.name);
        if self.members.insert(id, member).is_some() {
            return false;
        }
        let count = self.online.entry(name.clone()).or_default();
        *count += 1;
        self.local_changed |= *count == 1;
        self.changed.insert(name);
        true
    }

    /// Whether `name` is online here or on another node.
    fn is_online(&self, name: &str) -> bool {
        self.online.contains_key(name) || self.remote.contains_key(name)
    }

    fn remove(&mut self, id: ConnId) -> bool {
        let Some(member) = self.members.remove(&id) else {
            return false;
        };
        self.forget(&member.name);
        self.changed.insert(member.name);
        true
    }

    /// Counts one connection of `name` less.
    fn forget(&mut self, name: &str) {
        if let Some(count) = self.online.get_mut(name) {
            *count -= 1;
            if *count == 0 {
                self.online.remove(name);
                self.local_changed = true;
            }
        }
    }

    fn broadcast(&self, frame: &Utf8Bytes) {
        for member in self.members.values() {
            member.conn.outbox.push(frame);
        }
    }

    fn remember_client_id(&mut self, user: String, client_id: String, seq: u64) {
        let key = (user, client_id);
        if self.client_ids.insert(key.clone(), seq).is_none() {
            self.client_id_order.push_back(key);
            if self.client_id_order.len() > CLIENT_ID_WINDOW {
                if let Some(old) = self.client_id_order.pop_front() {
                    self.client_ids.remove(&old);
                }
            }
        }
    }

    /// A request `key` (sender key, client_id) already said: committed,
    /// ack it again; not yet, `conn` is acked with the first.
    fn retried(&mut self, conn: &Arc<Conn>, key: &(String, String)) -> Option<Said> {
        if let Some(&seq) = self.client_ids.get(key) {
            return Some(Said::Duplicate(seq));
        }
        let pending = self
            .pending
            .iter_mut()
            .find(|p| p.key.as_ref() == Some(key))?;
        pending.ackers.push((Arc::clone(conn), Some(key.1.clone())));
        Some(Said::Waiting)
    }

    /// The `seq` of the oldest message in the log (one past the last
    /// committed when the log is empty).
    fn first_in_log(&self, delivered: u64) -> u64 {
        delivered + 1 - self.log.len() as u64
    }

    /// Makes the log's messages from `from` on (just appended together)
    /// one [`Run`]: their frames copied back to back into one buffer, each
    /// [`Wire`] now a slice of it. One message is a run as it is.
    fn seal(&mut self, from: u64) {
        let (Some(first), Some(last)) = (self.log.front(), self.log.back()) else {
            return;
        };
        let (from, last) = (from.max(first.wire.seq), last.wire.seq);
        if from > last {
            return;
        }
        let count = (last - from + 1) as usize;
        let entries = self.log.len() - count..;
        let bytes = if count == 1 {
            self.log[entries.start].wire.bytes.clone()
        } else {
            let size = self
                .log
                .range(entries.clone())
                .map(|e| e.wire.bytes.len())
                .sum();
            let mut buf = BytesMut::with_capacity(size);
            for entry in self.log.range(entries.clone()) {
                buf.put_slice(&entry.wire.bytes);
            }
            let bytes = buf.freeze();
            let mut at = 0;
            for entry in self.log.range_mut(entries) {
                let len = entry.wire.bytes.len();
                entry.wire.bytes = bytes.slice(at..at + len);
                at += len;
            }
            bytes
        };
        self.runs.push_back(Run {
            first: from,
            last,
            bytes,
        });
    }
}

/// The read marker a join sends behind the history (docs/protocol.md,
/// "Read markers and unread counts").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinMarker {
    /// None (a guest's resume: its client keeps its own).
    Nothing,
    /// The user's marker, as stored.
    At(u64),
    /// A first join: what the room has is read.
    End,
}

/// What the store knows of a room when it is opened.
pub struct Loaded {
    pub last_seq: u64,
    pub recent: Vec<StoredMessage>,
    /// `(sender key, client_id, seq)`, oldest first.
    pub client_ids: Vec<(String, String, u64)>,
}

pub struct Room {
    pub name: String,
    state: Mutex<RoomState>,
    /// The last `seq` committed and in the log. Written under the state
    /// lock; read without it by writers checking whether there is news.
    delivered: AtomicU64,
    /// Set once the room's sequence and log are loaded.
    pub ready: tokio::sync::OnceCell<()>,
    /// How many committed messages the log keeps.
    log_cap: usize,
    /// Pages read from the store for members behind the log, shared.
    pub pages: Pages,
}

impl Room {
    pub fn new(name: String, log_cap: usize) -> Room {
        Room {
            name,
            ready: tokio::sync::OnceCell::new(),
            log_cap: log_cap.max(1),
            pages: Pages::default(),
            delivered: AtomicU64::new(0),
            state: Mutex::new(RoomState {
                members: HashMap::new(),
                online: HashMap::new(),
                remote: HashMap::new(),
                local_changed: false,
                announced: BTreeSet::new(),
                snapshot: None,
                changed: BTreeSet::new(),
                last_flush: None,
                flush_scheduled: false,
                closed: false,
                last_seq: 0,
                log: VecDeque::new(),
                runs: VecDeque::new(),
                pending: VecDeque::new(),
                client_ids: HashMap::new(),
                client_id_order: VecDeque::new(),
                waiting: Waiting::Listed(Vec::new()),
            }),
        }
    }

    /// Fills a freshly opened room from the store.
    pub fn load(&self, loaded: Loaded) {
        let mut state = self.state.lock();
        state.last_seq = loaded.last_seq;
        for (user, client_id, seq) in loaded.client_ids {
            state.remember_client_id(user, client_id, seq);
        }
        let skip = loaded.recent.len().saturating_sub(self.log_cap);
        for msg in loaded.recent.into_iter().skip(skip) {
            let wire = Wire::of(&msg);
            state.log.push_back(Entry { msg, wire });
        }
        let from = state.log.front().map_or(0, |e| e.wire.seq);
        state.seal(from);
        self.delivered.store(loaded.last_seq, Ordering::SeqCst);
    }

    /// The last committed `seq`.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::SeqCst)
    }

    /// The `seq` of the oldest message in the log (one past the last
    /// committed when the log is empty): a resume from before it is served
    /// from the store.
    pub fn oldest_in_log(&self) -> u64 {
        let state = self.state.lock();
        state.first_in_log(self.delivered())
    }

    /// Called by the persist thread once `msgs` (a run of this room's
    /// messages, in the order they were said) are durable, each with its
    /// `seq` and whether the store found it was a retry of a message
    /// already stored (`retry`): appends the new ones to the log (unless a
    /// node's [`Room::arrived`] got there first), queues each sender's ack
    /// behind its message, and wakes the members that were waiting. The
    /// log must reach the first new message's `seq` − 1 (the persist
    /// thread fills any gap first).
    pub fn committed(self: &Arc<Room>, msgs: impl IntoIterator<Item = (StoredMessage, bool)>) {
        let mut state = self.state.lock();
        let mut acks = Vec::new();
        let mut grew = false;
        let from = self.delivered() + 1;
        for (msg, retry) in msgs {
            let pending = state.pending.pop_front();
            let seq = msg.seq;
            if let Some(pending) = pending {
                if let Some((user, id)) = pending.key {
                    state.remember_client_id(user, id, seq);
                }
                for (conn, client_id) in pending.ackers {
                    acks.push((conn, client_id, seq));
                }
            }
            if !retry && seq == self.delivered() + 1 {
                self.push_to_log(&mut state, msg);
                grew = true;
            }
            debug_assert!(retry || seq <= self.delivered(), "a gap before {seq}");
        }
        if grew {
            state.seal(from);
        }
        // Only now that the messages are in the log: a sender gets its
        // message before the ack for it (the ack waits for its cursor).
        for (conn, client_id, seq) in acks {
            let ack = frame(&ServerMsg::Ack {
                client_id,
                room: Some(self.name.clone()),
                seq: Some(seq),
            });
            conn.outbox.push_after(Arc::clone(self), seq, &ack);
        }
        if grew {
            let state = &mut *state;
            state.waiting.wake(&state.members);
        }
    }

    /// The writer of member `id` is about to wait with nothing to write:
    /// the next commit wakes it (then it looks for work once more, so a
    /// commit meanwhile is not missed; see [`crate::outbox`]).
    pub fn wait(&self, id: ConnId) {
        let mut state = self.state.lock();
        let state = &mut *state;
        if let Waiting::Listed(ids) = &mut state.waiting {
            if ids.len() >= state.members.len().max(16) {
                state.waiting = Waiting::Everyone;
            } else {
                ids.push(id);
            }
        }
    }

    /// Messages another node committed (read from the shared store by
    /// `seq`, oldest first): appends those that continue the log, skips
    /// those it has. Returns `false` if one left a gap (read again from
    /// [`Room::delivered`]).
    pub fn arrived(&self, msgs: Vec<StoredMessage>) -> bool {
        let mut state = self.state.lock();
        let mut grew = false;
        let from = self.delivered() + 1;
        let mut whole = true;
        for msg in msgs {
            let delivered = self.delivered();
            if msg.seq <= delivered {
                continue;
            }
            if msg.seq != delivered + 1 {
                whole = false;
                break;
            }
            if let Some(id) = &msg.client_id {
                state.remember_client_id(
                    hubbub_protocol::names::name_key(&msg.from),
                    id.clone(),
                    msg.seq,
                );
            }
            self.push_to_log(&mut state, msg);
            grew = true;
        }
        if grew {
            let state = &mut *state;
            state.seal(from);
            state.waiting.wake(&state.members);
        }
        whole
    }

    /// Reads this room's committed messages up to `seq` from `store` into
    /// the log ([`Room::arrived`]), a page at a time: what another node
    /// committed, or what a client resuming from there has seen. `false` if
    /// the store has not got them all (nothing newer, or retention made a
    /// hole in the numbers).
    pub fn read_up_to(&self, store: &dyn Store, seq: u64) -> Result<bool, StoreError> {
        while self.delivered() < seq {
            let from = self.delivered();
            let limit = (seq - from).min(CATCH_UP_PAGE as u64) as usize;
            let msgs = store.after(&self.name, from, limit)?;
            if msgs.is_empty() || !self.arrived(msgs) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Appends the next committed message to the log. An edit or deletion
    /// is folded into the log's copies of what it changes, as the store
    /// folds it at commit ([`crate::store::fold_messages`]): history served
    /// from the log is what the store would serve, and a deleted message's
    /// words leave memory too. A member whose cursor is behind a changed
    /// message gets it as it is now, then the event: applying it again
    /// changes nothing.
    fn push_to_log(&self, state: &mut RoomState, msg: StoredMessage) {
        let seq = msg.seq;
        if matches!(msg.event, Some(Event::Edit { .. } | Event::Delete { .. })) {
            let changed =
                crate::store::fold_messages(&msg, state.log.iter_mut().map(|e| &mut e.msg));
            for entry in state
                .log
                .iter_mut()
                .filter(|e| changed.contains(&e.msg.seq))
            {
                entry.wire = Wire::of(&entry.msg);
            }
            // Their runs hold the old frames: never shared again.
            state
                .runs
                .retain(|run| !changed.iter().any(|&s| run.first <= s && s <= run.last));
        }
        let wire = Wire::of(&msg);
        state.log.push_back(Entry { msg, wire });
        if state.log.len() > self.log_cap {
            state.log.pop_front();
            let first = state.log.front().map_or(seq, |e| e.wire.seq);
            while state.runs.front().is_some_and(|run| run.last < first) {
                state.runs.pop_front();
            }
        }
        state.last_seq = state.last_seq.max(seq);
        self.delivered.store(seq, Ordering::SeqCst);
    }

    /// Moves `cursor` along the log up to `upto` (or the last committed
    /// message), handing each message to `sink`.
    pub fn pull<S: Sink>(&self, cursor: &mut u64, upto: u64, sink: &mut S) -> Pulled {
        // Without the lock first: most calls find nothing new.
        let end = upto.min(self.delivered());
        if *cursor >= end {
            return Pulled::Done;
        }
        let state = self.state.lock();
        let end = upto.min(self.delivered());
        let first = state.first_in_log(self.delivered());
        if *cursor + 1 < first {
            return Pulled::Behind;
        }
        let shares = sink.takes_shared();
        // The run holding the next message, if any.
        let mut run = if shares {
            state.runs.partition_point(|run| run.last <= *cursor)
        } else {
            state.runs.len()
        };
        while *cursor < end {
            let seq = *cursor + 1;
            let entry = &state.log[(seq - first) as usize];
            if let Some(r) = state.runs.get(run).filter(|r| r.first <= seq) {
                let last = r.last.min(end);
                let tail = &state.log[(last - first) as usize].wire;
                let bytes = r
                    .bytes
                    .slice(r.offset(&entry.wire)..r.offset(tail) + tail.bytes.len());
                if sink.shared(bytes, last - *cursor) {
                    *cursor = last;
                    run += 1;
                    continue;
                }
            }
            if !sink.message(&entry.wire) {
                return Pulled::Full;
            }
            *cursor = seq;
            if state.runs.get(run).is_some_and(|r| r.last <= seq) {
                run += 1;
            }
        }
        Pulled::Done
    }

    /// Adds `conn` as `name`: queues, in order, the `presence` snapshot,
    /// then (unless resuming) the latest `history` messages, then the start
    /// of its cursor. Resuming from `since`, the cursor starts there and the
    /// writer delivers every message after it, from the log or the store.
    /// `resync`: `since` cannot be honoured (ahead of the room, or older
    /// than what the store keeps), so fresh history is sent, marked so.
    /// `marker`: the read marker to send right behind the history (so
    /// nothing comes between them). Returns the room's last `seq` at the
    /// join (what [`JoinMarker::End`] sent), or `None` if the room was
    /// closed meanwhile (open it again).
    pub fn join(
        self: &Arc<Room>,
        conn: &Arc<Conn>,
        name: &Name,
        since: Option<u64>,
        history: usize,
        presence_interval: Duration,
        marker: JoinMarker,
    ) -> Option<u64> {
        let mut state = self.state.lock();
        if state.closed {
            return None;
        }
        let snapshot = match &state.snapshot {
            Some(snapshot) => snapshot.clone(),
            None => {
                let snapshot = frame(&ServerMsg::Presence {
                    room: self.name.clone(),
                    users: state.announced.iter().map(|n| n.to_string()).collect(),
                });
                state.snapshot = Some(snapshot.clone());
                snapshot
            }
        };
        conn.outbox.push(&snapshot);
        let delivered = self.delivered();
        match since {
            Some(since) if since <= delivered => conn.outbox.join(Arc::clone(self), since),
            _ => {
                let limit = history.min(state.log.len());
                let skip = state.log.len() - limit;
                let messages: Vec<HistoryMessage> = state
                    .log
                    .iter()
                    .skip(skip)
                    .map(|e| history_message(&e.msg))
                    .collect();
                conn.send(&ServerMsg::History {
                    room: self.name.clone(),
                    has_more: messages.first().is_some_and(|m| m.seq > 1),
                    messages,
                    before: None,
                    resync: since.is_some(),
                });
                conn.outbox.join(Arc::clone(self), delivered);
            }
        }
        let marker = match marker {
            JoinMarker::Nothing => None,
            JoinMarker::At(seq) => Some(seq),
            JoinMarker::End => Some(delivered),
        };
        if let Some(seq) = marker {
            conn.send(&ServerMsg::Read {
                room: self.name.clone(),
                seq,
            });
        }
        let member = Member {
            name: Arc::clone(name),
            conn: Arc::clone(conn),
        };
        if state.add(conn.id, member) {
            self.presence_changed(&mut state, presence_interval);
        }
        Some(delivered)
    }

    /// Removes connection `id`; its writer stops reading the log.
    pub fn leave(self: &Arc<Room>, conn: &Conn, presence_interval: Duration) {
        let mut state = self.state.lock();
        conn.outbox.leave(Arc::clone(self));
        if state.remove(conn.id) {
            self.presence_changed(&mut state, presence_interval);
        }
    }

    /// Whether the room is idle (no members, nothing to commit, no notice
    /// due); if so it is closed for good and a late joiner opens it again.
    pub fn close_if_idle(&self) -> bool {
        let mut state = self.state.lock();
        let idle = state.members.is_empty() && state.pending.is_empty() && !state.flush_scheduled;
        if idle {
            state.closed = true;
        }
        idle
    }

    /// Gives `draft` (a message from the user whose key is `user`; its
    /// `seq` and `sent_at` are set here) the next `seq`, or recognises a
    /// retry of its `client_id`. `submit` hands it to the persist thread;
    /// if it refuses, nothing changes.
    pub fn say(
        &self,
        conn: &Arc<Conn>,
        user: String,
        draft: StoredMessage,
        submit: impl FnOnce(StoredMessage) -> bool,
    ) -> Option<Said> {
        let mut state = self.state.lock();
        let client_id = draft.client_id.clone();
        let key = client_id.as_ref().map(|id| (user, id.clone()));
        if let Some(key) = &key {
            if let Some(said) = state.retried(conn, key) {
                return Some(said);
            }
        }
        // The next number as this node sees it; a store that nodes share
        // gives the final one at commit.
        let seq = state.last_seq + 1;
        let msg = StoredMessage {
            seq,
            sent_at: crate::timers::now_ms(),
            ..draft
        };
        if !submit(msg) {
            return None;
        }
        state.last_seq = seq;
        state.pending.push_back(Pending {
            key,
            ackers: vec![(Arc::clone(conn), client_id)],
        });
        Some(Said::Queued)
    }

    /// What became of an earlier request of the user whose key is `user`
    /// with this `client_id`, if this room remembers it ([`Said::Duplicate`]
    /// or [`Said::Waiting`], `conn` then acked with it); `None` if it is
    /// new. A retried edit, deletion or reaction is recognised here before
    /// it is checked again: its target may have changed since (deleted, out
    /// of the edit window), and the first one's answer is the answer.
    pub fn retried(&self, conn: &Arc<Conn>, user: String, client_id: &str) -> Option<Said> {
        self.state
            .lock()
            .retried(conn, &(user, client_id.to_string()))
    }

    /// Whether the connection `id` is a member.
    pub fn has_conn(&self, id: ConnId) -> bool {
        self.state.lock().members.contains_key(&id)
    }

    /// Whether the room was closed (evicted, or ended): nothing is said
    /// in it any more; a session forgets it.
    pub fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    /// Ends the room for good (a guest's conversation, deleted): closes
    /// it, takes every member out (their writers stop reading its log),
    /// and returns their connections, to be told.
    pub fn end(self: &Arc<Room>) -> Vec<Arc<Conn>> {
        let mut state = self.state.lock();
        state.closed = true;
        let members: Vec<Arc<Conn>> = state.members.drain().map(|(_, m)| m.conn).collect();
        state.online.clear();
        for conn in &members {
            conn.outbox.leave(Arc::clone(self));
        }
        members
    }

    /// Whether `name` is a member now, here or on another node.
    pub fn has_member(&self, name: &str) -> bool {
        self.state.lock().is_online(name)
    }

    /// Who is online now (here or on another node), sorted.
    pub fn online(&self) -> Vec<String> {
        let state = self.state.lock();
        let mut names: Vec<String> = state
            .online
            .keys()
            .chain(
                state
                    .remote
                    .keys()
                    .filter(|n| !state.online.contains_key(*n)),
            )
            .map(|n| n.to_string())
            .collect();
        names.sort();
        names
    }

    /// How many distinct users are online now (here or on another node).
    pub fn online_count(&self) -> usize {
        let state = self.state.lock();
        state.online.len()
            + state
                .remote
                .keys()
                .filter(|n| !state.online.contains_key(*n))
                .count()
    }

    /// The names online here, if they changed since the last call: what a
    /// cluster node tells the others ([`crate::cluster`]).
    pub fn local_names_if_changed(&self) -> Option<Vec<Name>> {
        let mut state = self.state.lock();
        if !std::mem::take(&mut state.local_changed) {
            return None;
        }
        Some(state.online.keys().cloned().collect())
    }

    /// Makes the next [`Room::local_names_if_changed`] answer (publishing
    /// them failed).
    pub fn mark_local_changed(&self) {
        self.state.lock().local_changed = true;
    }

    /// Who is online in this room on the other nodes of a cluster, now:
    /// the names that came or went are announced like local ones.
    pub fn set_remote(self: &Arc<Room>, remote: HashMap<Name, u64>, presence_interval: Duration) {
        let mut state = self.state.lock();
        let came = remote.keys().filter(|n| !state.remote.contains_key(*n));
        let went = state.remote.keys().filter(|n| !remote.contains_key(*n));
        let changed: Vec<Name> = came.chain(went).cloned().collect();
        state.remote = remote;
        if !changed.is_empty() {
            state.changed.extend(changed);
            self.presence_changed(&mut state, presence_interval);
        }
    }

    /// Tells every member but `except` that `user` is typing.
    pub fn typing(&self, except: ConnId, user: &str) {
        let notice = frame(&ServerMsg::Typing {
            room: self.name.clone(),
            user: user.to_string(),
        });
        let state = self.state.lock();
        for member in state.members.values().filter(|m| m.conn.id != except) {
            member.conn.outbox.push(&notice);
        }
    }

    /// The member `conn` now goes by `new` (was `old`); the others are told.
    pub fn rename(&self, conn: &Conn, old: &str, new: &Name) {
        let mut state = self.state.lock();
        let Some(member) = state.members.get_mut(&conn.id) else {
            return;
        };
        let new_name: Name = Arc::clone(new);
        member.name = Arc::clone(&new_name);
        state.forget(old);
        *state.online.entry(Arc::clone(&new_name)).or_default() += 1;
        state.local_changed = true;
        if state.announced.remove(old) {
            state.announced.insert(new_name);
            state.snapshot = None;
            let notice = frame(&ServerMsg::Renamed {
                room: Some(self.name.clone()),
                from: old.to_string(),
                to: new.to_string(),
                upload_token: None,
            });
            for member in state.members.values().filter(|m| m.conn.id != conn.id) {
                member.conn.outbox.push(&notice);
            }
        } else if state.changed.remove(old) {
            // Not announced yet: the pending notice will carry the new name.
            state.changed.insert(new_name);
        }
    }

    /// The member `from` of another node now goes by `to`: the members here
    /// are told once, and the renaming node's next presence shows no change.
    pub fn rename_remote(&self, from: &str, to: &Name) {
        let mut state = self.state.lock();
        let Some(nodes) = state.remote.remove(from) else {
            return;
        };
        state.remote.insert(Arc::clone(to), nodes);
        if state.online.contains_key(from) {
            // Still online here under the old name: the new one is news.
            state.changed.insert(Arc::clone(to));
        } else if state.announced.remove(from) {
            state.announced.insert(Arc::clone(to));
            state.snapshot = None;
            state.broadcast(&frame(&ServerMsg::Renamed {
                room: Some(self.name.clone()),
                from: from.to_string(),
                to: to.to_string(),
                upload_token: None,
            }));
        } else if state.changed.remove(from) {
            state.changed.insert(Arc::clone(to));
        }
    }

    /// Sends the pending presence difference now, or schedules it for when
    /// the presence interval since the last notice has passed.
    fn presence_changed(self: &Arc<Room>, state: &mut RoomState, interval: Duration) {
        if state.flush_scheduled {
            return;
        }
        let now = Instant::now();
        match state.last_flush {
            Some(last) if now < last + interval => {
                state.flush_scheduled = true;
                let room = Arc::clone(self);
                tokio::spawn(async move {
                    tokio::time::sleep_until((last + interval).into()).await;
                    let mut state = room.state.lock();
                    state.flush_scheduled = false;
                    room.flush_presence(&mut state);
                });
            }
            _ => self.flush_presence(state),
        }
    }

    fn flush_presence(&self, state: &mut RoomState) {
        state.last_flush = Some(Instant::now());
        let mut joined = Vec::new();
        let mut left = Vec::new();
        for name in std::mem::take(&mut state.changed) {
            match (state.is_online(&name), state.announced.contains(&name)) {
                (true, false) => joined.push(name),
                (false, true) => left.push(name),
                _ => {}
            }
        }
        for name in &left {
            state.announced.remove(name);
        }
        state.announced.extend(joined.iter().cloned());
        if !joined.is_empty() || !left.is_empty() {
            state.snapshot = None;
        }
        if !joined.is_empty() {
            state.broadcast(&frame(&ServerMsg::Joined {
                room: self.name.clone(),
                users: joined.iter().map(|n| n.to_string()).collect(),
            }));
        }
        if !left.is_empty() {
            state.broadcast(&frame(&ServerMsg::Left {
                room: self.name.clone(),
                users: left.iter().map(|n| n.to_string()).collect(),
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::Outbox;
    use std::sync::atomic::AtomicUsize;
    use std::task::{Wake, Waker};

    /// Counts wake-ups of a writer.
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn member(room: &Arc<Room>, id: ConnId) -> (Arc<Conn>, Arc<Count>) {
        let conn = Arc::new(Conn::new(id, Outbox::new(1 << 16), 0, None));
        let name: Name = Arc::from(format!("u{id}"));
        let joined = room.join(&conn, &name, None, 0, Duration::ZERO, JoinMarker::Nothing);
        assert!(joined.is_some());
        (conn, Arc::new(Count(AtomicUsize::new(0))))
    }

    fn message(seq: u64) -> StoredMessage {
        StoredMessage {
            room: "r".into(),
            seq,
            from: "u0".into(),
            text: "hi".into(),
            ..StoredMessage::default()
        }
    }

    fn wakes(count: &Count) -> usize {
        count.0.load(Ordering::SeqCst)
    }

    #[test]
    fn a_commit_wakes_the_waiting_members_once_and_leaves_busy_ones_alone() {
        let room = Arc::new(Room::new("r".into(), 16));
        let (idle, idle_count) = member(&room, 1);
        let (busy, busy_count) = member(&room, 2);
        room.wait(idle.id);
        idle.outbox.wait(&Waker::from(Arc::clone(&idle_count)));
        // The busy writer registered its waker earlier but is not waiting.
        busy.outbox.register(&Waker::from(Arc::clone(&busy_count)));
        assert!(room.arrived(vec![message(1)]));
        assert_eq!((wakes(&idle_count), wakes(&busy_count)), (1, 0));
        // Woken once: the next commit finds nobody waiting.
        assert!(room.arrived(vec![message(2)]));
        assert_eq!((wakes(&idle_count), wakes(&busy_count)), (1, 0));
    }

    #[test]
    fn writers_waiting_again_and_again_between_commits_do_not_grow_the_list() {
        let room = Arc::new(Room::new("r".into(), 16));
        let members: Vec<_> = (0..4).map(|id| member(&room, id)).collect();
        // Far more waits than members (a quiet room, chatty writers):
        // the list gives way to waking everyone once.
        for _ in 0..100 {
            for (conn, _) in &members {
                room.wait(conn.id);
            }
        }
        match &room.state.lock().waiting {
            Waiting::Everyone => {}
            Waiting::Listed(ids) => panic!("{} ids listed", ids.len()),
        }
        for (conn, count) in &members {
            conn.outbox.wait(&Waker::from(Arc::clone(count)));
        }
        assert!(room.arrived(vec![message(1)]));
        for (_, count) in &members {
            assert_eq!(wakes(count), 1);
        }
        assert!(matches!(&room.state.lock().waiting, Waiting::Listed(ids) if ids.is_empty()));
    }

    /// Collects what a writer would send: slices of runs if `shares`,
    /// else every frame copied.
    struct Collect {
        shares: bool,
        bytes: Vec<u8>,
        slices: usize,
        frames: u64,
    }

    impl Sink for Collect {
        fn message(&mut self, wire: &Wire) -> bool {
            self.bytes.extend_from_slice(&wire.bytes);
            self.frames += 1;
            true
        }
        fn text(&mut self, _: &Utf8Bytes) -> bool {
            true
        }
        fn raw(&mut self, _: &[u8]) -> bool {
            true
        }
        fn takes_shared(&self) -> bool {
            self.shares
        }
        fn shared(&mut self, bytes: Bytes, frames: u64) -> bool {
            self.bytes.extend_from_slice(&bytes);
            self.slices += 1;
            self.frames += frames;
            true
        }
    }

    fn pulled(room: &Room, from: u64, shares: bool) -> Collect {
        let mut sink = Collect {
            shares,
            bytes: Vec::new(),
            slices: 0,
            frames: 0,
        };
        let mut cursor = from;
        assert_eq!(room.pull(&mut cursor, u64::MAX, &mut sink), Pulled::Done);
        assert_eq!(cursor, room.delivered());
        sink
    }

    #[test]
    fn members_anywhere_get_slices_of_one_buffer_that_are_exactly_the_frames_even_after_an_edit() {
        let room = Arc::new(Room::new("r".into(), 16));
        // Three commits: 1..=4 together, 5 alone, 6..=8 together.
        assert!(room.arrived((1..=4).map(message).collect()));
        assert!(room.arrived(vec![message(5)]));
        assert!(room.arrived((6..=8).map(message).collect()));
        for from in 0..8 {
            let shared = pulled(&room, from, true);
            let copied = pulled(&room, from, false);
            assert_eq!(shared.bytes, copied.bytes, "from {from}");
            assert_eq!((shared.frames, copied.frames), (8 - from, 8 - from));
            // One slice per commit the member has not had all of.
            let runs = [4, 5, 8].iter().filter(|&&last| last > from).count();
            assert_eq!(shared.slices, runs, "from {from}");
        }
        // An edit of 2 rewrites its frame: its run is never shared again,
        // and nobody gets the old words.
        let edit = StoredMessage {
            text: "edited".into(),
            event: Some(Event::Edit { target: 2 }),
            ..message(9)
        };
        assert!(room.arrived(vec![edit]));
        for from in 0..9 {
            let shared = pulled(&room, from, true);
            assert_eq!(
                shared.bytes,
                pulled(&room, from, false).bytes,
                "from {from}"
            );
            assert_eq!(shared.frames, 9 - from);
        }
        let all = pulled(&room, 0, true);
        assert!(all.bytes.windows(6).any(|w| w == b"edited"));
        assert_eq!(all.slices, 3, "5, 6..=8 and 9 shared; 1..=4 copied");
        // The log keeps 16: older runs go with their messages.
        for seq in 10..=40 {
            assert!(room.arrived(vec![message(seq)]));
        }
        assert_eq!(pulled(&room, 24, true).slices, 16);
        assert!(room.state.lock().runs.len() <= 16);
    }
}
