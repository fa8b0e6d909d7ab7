//! The hub: who is connected, under which name, in which rooms; fan-out of
//! room messages; coalesced presence notices; heartbeat and idle sweep;
//! shutdown.
//!
//! Concurrency model: no actor hop on the hot path. A connection task calls
//! the hub directly; shared state sits behind short synchronous locks that
//! are never held across an `.await`. Lock order, where two are held:
//! `rooms` map → one room → an outbox. A room message is serialized once
//! under its room's lock (so `seq` order is delivery order) and the same
//! bytes are pushed onto every member's byte-bounded [`Outbox`].
//!
//! Presence: a room remembers which names it has *announced*. Joins and
//! leaves change the members at once, and the difference between members
//! and announced names goes out as one `joined` and one `left` frame per
//! room at most once per `presence_interval`; so 10,000 joins cost a few
//! dozen frames per member rather than 10,000. A joiner's `presence`
//! snapshot is the announced set; the next notice brings it up to date,
//! its own name included, so every member learns of every change exactly once.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hubbub_protocol::{close, names, ErrorCode, HistoryMessage, RoomInfo, ServerMsg};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tungstenite::Utf8Bytes;

use crate::config::Config;
use crate::metrics::{Gauges, Metrics};
use crate::outbox::Flusher;
use crate::outbox::{Close, Outbox};
use crate::persist::Persister;
use crate::store::{Store, StoreError, StoredMessage};

/// Most `(user, client_id)` pairs a room remembers for idempotent retries:
/// a retry of a send older than this many sends in its room is taken as new.
pub const CLIENT_ID_WINDOW: usize = 10_000;

fn remember_client_id(state: &mut RoomState, user: String, client_id: String, seq: u64) {
    let key = (user, client_id);
    if state.client_ids.insert(key.clone(), seq).is_none() {
        state.client_id_order.push_back(key);
        if state.client_id_order.len() > CLIENT_ID_WINDOW {
            if let Some(old) = state.client_id_order.pop_front() {
                state.client_ids.remove(&old);
            }
        }
    }
}

/// The `message` frame members get for a stored message.
fn message_frame(msg: &StoredMessage) -> Utf8Bytes {
    frame(&ServerMsg::Message {
        room: msg.room.clone(),
        seq: msg.seq,
        from: msg.from.clone(),
        text: msg.text.clone(),
        sent_at: msg.sent_at,
    })
}

/// A stored message as `history` carries it.
pub fn history_message(msg: &StoredMessage) -> HistoryMessage {
    HistoryMessage {
        seq: msg.seq,
        from: msg.from.clone(),
        text: msg.text.clone(),
        sent_at: msg.sent_at,
    }
}

/// How connections are closed when the server shuts down.
const GOING_AWAY: Close = Close {
    code: close::GOING_AWAY,
    reason: "server shutting down",
};

/// Identifies one connection for its lifetime.
pub type ConnId = u64;

/// One WebSocket connection as the hub sees it.
pub struct Conn {
    pub id: ConnId,
    pub outbox: Outbox,
    /// When the peer last sent anything, in ms since the hub started.
    last_seen: AtomicU64,
    /// The signed-in account this connection speaks for; `None` for a guest
    /// (boxed: most connections are guests, and every byte here is paid
    /// per connection).
    pub account: Option<Box<Account>>,
}

/// A signed-in user, as a connection knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The account's name (it is the user's name in chat).
    pub name: String,
    /// Hash of the session token the connection was opened with.
    pub token_hash: String,
    /// When that session expires, ms since the Unix epoch.
    pub expires_at: u64,
}

impl Conn {
    /// Serializes `msg` and queues it for this connection alone.
    pub fn send(&self, msg: &ServerMsg) {
        self.outbox.push(&frame(msg));
    }
}

/// Serializes a message once into bytes that can be queued many times.
pub fn frame(msg: &ServerMsg) -> Utf8Bytes {
    Utf8Bytes::from(msg.to_json())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A member's name as a room keeps it: one allocation shared by the
/// member, the online count and the announced set.
type Name = Arc<str>;

struct Member {
    name: Name,
    conn: Arc<Conn>,
}

struct RoomState {
    members: HashMap<ConnId, Member>,
    /// Connections per member name: who is online, without a scan.
    online: HashMap<Name, usize>,
    /// Names every member has been told about.
    announced: BTreeSet<Name>,
    /// The `presence` frame for `announced`, serialized once and shared by
    /// every joiner until `announced` changes (a crowd joining between two
    /// presence flushes costs one serialization, not one per joiner).
    snapshot: Option<Utf8Bytes>,
    /// Names whose presence may differ from `announced`.
    changed: BTreeSet<Name>,
    last_flush: Option<Instant>,
    flush_scheduled: bool,
    /// Set when the room was removed from the hub; a late joiner retries.
    closed: bool,
    /// The last `seq` given out (durable or not yet).
    last_seq: u64,
    /// The last `seq` committed and fanned out.
    delivered: u64,
    /// The latest committed messages with their frames, oldest first, for
    /// history on join and resume. Contiguous, ending at `delivered`.
    recent: VecDeque<(StoredMessage, Utf8Bytes)>,
    /// Messages given a `seq` but not committed yet, oldest first.
    pending: VecDeque<Pending>,
    /// Recent `(sender key, client_id)` → `seq`, for idempotent retries.
    client_ids: HashMap<(String, String), u64>,
    /// Insertion order of `client_ids`, to forget the oldest.
    client_id_order: VecDeque<(String, String)>,
}

/// A message waiting for its commit, and whom to ack when it lands.
struct Pending {
    seq: u64,
    ackers: Vec<(Arc<Conn>, Option<String>)>,
}

/// What became of a `send`.
pub enum Said {
    /// Given a `seq`; the ack follows once it is durable.
    Queued,
    /// A retry of a message already durable: ack with its `seq` now.
    Duplicate(u64),
}

impl RoomState {
    fn add(&mut self, id: ConnId, member: Member) -> bool {
        let name = Arc::clone(&member.name);
        if self.members.insert(id, member).is_some() {
            return false;
        }
        *self.online.entry(name.clone()).or_default() += 1;
        self.changed.insert(name);
        true
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
            }
        }
    }

    fn online(&self) -> Vec<String> {
        let mut names: Vec<String> = self.online.keys().map(|n| n.to_string()).collect();
        names.sort();
        names
    }

    fn broadcast(&self, frame: &Utf8Bytes) {
        for member in self.members.values() {
            member.conn.outbox.push(frame);
        }
    }

    fn broadcast_all(&self, frames: &[Utf8Bytes]) {
        for member in self.members.values() {
            member.conn.outbox.push_all(frames);
        }
    }
}

pub struct Room {
    name: String,
    state: Mutex<RoomState>,
    /// Set once the room's sequence and recent messages are loaded.
    ready: tokio::sync::OnceCell<()>,
    /// How many committed messages `recent` keeps.
    recent_cap: usize,
}

impl Room {
    fn new(name: String, recent_cap: usize) -> Room {
        Room {
            name,
            ready: tokio::sync::OnceCell::new(),
            recent_cap,
            state: Mutex::new(RoomState {
                members: HashMap::new(),
                online: HashMap::new(),
                announced: BTreeSet::new(),
                snapshot: None,
                changed: BTreeSet::new(),
                last_flush: None,
                flush_scheduled: false,
                closed: false,
                last_seq: 0,
                delivered: 0,
                recent: VecDeque::new(),
                pending: VecDeque::new(),
                client_ids: HashMap::new(),
                client_id_order: VecDeque::new(),
            }),
        }
    }

    /// Called by the persist thread once `msg` is durable: fans it out to
    /// the members and acks whoever sent it.
    pub fn committed(&self, msgs: impl IntoIterator<Item = StoredMessage>) {
        let mut state = self.state.lock();
        let mut frames = Vec::new();
        let mut acks = Vec::new();
        for msg in msgs {
            let pending = state.pending.pop_front();
            debug_assert_eq!(pending.as_ref().map(|p| p.seq), Some(msg.seq));
            state.delivered = msg.seq;
            let message = message_frame(&msg);
            frames.push(message.clone());
            if let Some(pending) = pending {
                for (conn, client_id) in pending.ackers {
                    acks.push((conn, client_id, msg.seq));
                }
            }
            state.recent.push_back((msg, message));
            if state.recent.len() > self.recent_cap {
                state.recent.pop_front();
            }
        }
        // Every member gets the whole run under one lock of its outbox;
        // a sender gets its message before the ack for it.
        state.broadcast_all(&frames);
        for (conn, client_id, seq) in acks {
            conn.send(&ServerMsg::Ack {
                client_id,
                room: Some(self.name.clone()),
                seq: Some(seq),
            });
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
            match (
                state.online.contains_key(&name),
                state.announced.contains(&name),
            ) {
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

struct User {
    name: String,
    /// Every connection of this user: one for a guest, any number (up to
    /// `max_conns_per_user`) for an account.
    conns: Vec<Arc<Conn>>,
}

impl User {
    fn is_account(&self) -> bool {
        self.conns.iter().any(|c| c.account.is_some())
    }
}

/// Counts connections per client IP address; see [`Hub::admit_ip`].
type IpCounts = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// One admitted connection from an IP address; dropping it frees the slot.
pub struct IpSlot {
    counts: IpCounts,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock();
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Store calls that may run at once, each on a blocking thread. The SQLite
/// store serializes on one reader and one writer connection anyway; without
/// a bound, a burst of thousands of connections saying `hello` made tokio
/// start hundreds of blocking threads (each with its stack), for nothing.
const STORE_THREADS: usize = 4;

/// Shared state of the whole server.
pub struct Hub {
    pub config: Config,
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    /// Online users by [`names::name_key`].
    users: Mutex<HashMap<String, User>>,
    /// Every open connection, for heartbeats, the idle sweep and shutdown.
    conns: Mutex<HashMap<ConnId, Arc<Conn>>>,
    next_id: AtomicU64,
    started: Instant,
    /// Cancelled when the server begins shutting down.
    pub shutdown: CancellationToken,
    /// Tracks connection tasks so shutdown can wait for them to drain.
    pub tasks: TaskTracker,
    store: Arc<dyn Store>,
    /// Bounds the blocking threads store calls occupy (see [`Hub::with_store`]).
    store_slots: tokio::sync::Semaphore,
    /// Open connections per client IP address.
    ips: IpCounts,
    /// The group-commit thread every room message goes through.
    pub persist: Persister,
    /// Counters exposed at `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The write-coalescing tick ([`Flusher`]); `run` drives it.
    pub flusher: Arc<Flusher>,
}

impl Hub {
    pub fn new(config: Config, store: Arc<dyn Store>) -> Arc<Hub> {
        let metrics = Metrics::new();
        let persist = Persister::start(
            Arc::clone(&store),
            config.retention(),
            config.commit_window,
            Arc::clone(&metrics),
        );
        Arc::new(Hub {
            metrics,
            store,
            store_slots: tokio::sync::Semaphore::new(STORE_THREADS),
            ips: IpCounts::default(),
            persist,
            config,
            rooms: Mutex::default(),
            users: Mutex::default(),
            conns: Mutex::default(),
            next_id: AtomicU64::new(1),
            started: Instant::now(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            flusher: Arc::default(),
        })
    }

    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Registers a new connection.
    pub fn connect(&self) -> Arc<Conn> {
        self.connect_as(None)
    }

    /// Registers a new connection of a signed-in `account` (or a guest).
    pub fn connect_as(&self, account: Option<Account>) -> Arc<Conn> {
        let conn = Arc::new(Conn {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            outbox: Outbox::with_metrics(self.config.queue_bytes, Arc::clone(&self.metrics)),
            last_seen: AtomicU64::new(self.elapsed_ms()),
            account: account.map(Box::new),
        });
        Metrics::inc(&self.metrics.connections_total);
        self.conns.lock().insert(conn.id, Arc::clone(&conn));
        // begin_shutdown cancels before it walks `conns`: a connection
        // registered too late for the walk sees the cancellation here.
        if self.shutdown.is_cancelled() {
            conn.outbox.close_after_drain(GOING_AWAY);
        }
        conn
    }

    /// Records that the peer of `conn` is alive.
    pub fn touch(&self, conn: &Conn) {
        conn.last_seen.store(self.elapsed_ms(), Ordering::Relaxed);
    }

    /// Forgets a connection: leaves its rooms (offline notices), frees its name.
    pub fn disconnect(&self, conn: &Conn, name: Option<&str>, rooms: &[String]) {
        for room in rooms {
            self.leave(room, conn.id);
        }
        if let Some(name) = name {
            self.release_name(name, conn.id);
        }
        self.conns.lock().remove(&conn.id);
    }

    /// Takes `name` for `conn`, or says why not.
    pub fn claim_name(&self, name: &str, conn: &Arc<Conn>) -> Result<(), (ErrorCode, String)> {
        names::validate_name(name).map_err(|why| (ErrorCode::InvalidName, why))?;
        let mut users = self.users.lock();
        let key = names::name_key(name);
        match users.get_mut(&key) {
            // Another connection of the same account: a second tab or device.
            Some(user) if conn.account.is_some() && user.is_account() => {
                user.conns.push(Arc::clone(conn));
            }
            Some(_) => return Err((ErrorCode::NameTaken, format!("{name:?} is taken"))),
            None => {
                users.insert(
                    key,
                    User {
                        name: name.to_string(),
                        conns: vec![Arc::clone(conn)],
                    },
                );
            }
        }
        Ok(())
    }

    fn release_name(&self, name: &str, id: ConnId) {
        let mut users = self.users.lock();
        let key = names::name_key(name);
        if let Some(user) = users.get_mut(&key) {
            user.conns.retain(|c| c.id != id);
            if user.conns.is_empty() {
                users.remove(&key);
            }
        }
    }

    /// How many connections the user `name` has open.
    pub fn connections_of(&self, name: &str) -> usize {
        self.users
            .lock()
            .get(&names::name_key(name))
            .map_or(0, |u| u.conns.len())
    }

    /// Whether `name` is a registered account (a guest may not take it).
    pub async fn is_registered(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_string();
        self.with_store(move |store| store.user(&name).map(|u| u.is_some()))
            .await
    }

    /// Runs a (blocking) store call on the blocking pool, never on an async
    /// worker. Store calls do not panic; one that did is a bug worth a crash.
    pub async fn with_store<T: Send + 'static>(
        &self,
        call: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = Arc::clone(&self.store);
        let _slot = self.store_slots.acquire().await.expect("never closed");
        tokio::task::spawn_blocking(move || call(&*store))
            .await
            .expect("store calls do not panic")
    }

    /// Admits one more connection from `ip`, or `None` past `max_conns_per_ip`.
    pub fn admit_ip(&self, ip: IpAddr) -> Option<IpSlot> {
        let mut counts = self.ips.lock();
        let n = counts.entry(ip).or_default();
        if *n >= self.config.max_conns_per_ip {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            counts: Arc::clone(&self.ips),
            ip,
        })
    }

    /// Closes every connection opened with the session `token_hash` (logout).
    pub fn end_session(&self, token_hash: &str) {
        for conn in self.conns.lock().values() {
            if conn
                .account
                .as_ref()
                .is_some_and(|a| a.token_hash == token_hash)
            {
                conn.outbox.close_after_drain(Close {
                    code: close::LOGGED_OUT,
                    reason: "logged out",
                });
            }
        }
    }

    /// Renames the user of `conn` from `old` to `new` in the user table and
    /// in each of `rooms`, telling their members.
    pub fn rename(
        &self,
        conn: &Arc<Conn>,
        old: &str,
        new: &str,
        rooms: &[String],
    ) -> Result<(), (ErrorCode, String)> {
        names::validate_name(new).map_err(|why| (ErrorCode::InvalidName, why))?;
        {
            let mut users = self.users.lock();
            let new_key = names::name_key(new);
            if users
                .get(&new_key)
                .is_some_and(|u| u.conns.iter().any(|c| c.id != conn.id))
            {
                return Err((ErrorCode::NameTaken, format!("{new:?} is taken")));
            }
            users.remove(&names::name_key(old));
            users.insert(
                new_key,
                User {
                    name: new.to_string(),
                    conns: vec![Arc::clone(conn)],
                },
            );
        }
        for room in rooms.iter().filter_map(|r| self.room(r)) {
            let mut state = room.state.lock();
            let Some(member) = state.members.get_mut(&conn.id) else {
                continue;
            };
            let new_name: Name = Arc::from(new);
            member.name = Arc::clone(&new_name);
            state.forget(old);
            *state.online.entry(Arc::clone(&new_name)).or_default() += 1;
            if state.announced.remove(old) {
                state.announced.insert(new_name);
                state.snapshot = None;
                let notice = frame(&ServerMsg::Renamed {
                    room: Some(room.name.clone()),
                    from: old.to_string(),
                    to: new.to_string(),
                });
                for member in state.members.values().filter(|m| m.conn.id != conn.id) {
                    member.conn.outbox.push(&notice);
                }
            } else if state.changed.remove(old) {
                // Not announced yet: the pending notice will carry the new name.
                state.changed.insert(new_name);
            }
        }
        Ok(())
    }

    fn room(&self, name: &str) -> Option<Arc<Room>> {
        self.rooms.lock().get(name).cloned()
    }

    /// The room named `name`, loaded from the store on first use.
    async fn open_room(&self, name: &str) -> Result<Arc<Room>, StoreError> {
        let room = Arc::clone(
            self.rooms
                .lock()
                .entry(name.to_string())
                .or_insert_with(|| Arc::new(Room::new(name.to_string(), self.config.resume_limit))),
        );
        room.ready
            .get_or_try_init(|| async {
                let (room_name, recent) = (name.to_string(), self.config.resume_limit);
                let record = self
                    .with_store(move |store| store.load_room(&room_name, recent, CLIENT_ID_WINDOW))
                    .await?;
                let mut state = room.state.lock();
                state.last_seq = record.last_seq;
                state.delivered = record.last_seq;
                for (from, client_id, seq) in record.client_ids {
                    remember_client_id(&mut state, names::name_key(&from), client_id, seq);
                }
                for msg in record.recent {
                    let message = message_frame(&msg);
                    state.recent.push_back((msg, message));
                }
                Ok::<(), StoreError>(())
            })
            .await?;
        Ok(room)
    }

    /// Adds `conn` (as `name`) to `room`, loading or creating it. The joiner
    /// gets, in order: the `presence` snapshot; then either the messages
    /// after `since` (resume) or the latest history; then live messages.
    pub async fn join(
        &self,
        room_name: &str,
        conn: &Arc<Conn>,
        name: &str,
        since: Option<u64>,
    ) -> Result<(), StoreError> {
        loop {
            let room = self.open_room(room_name).await?;
            let mut state = room.state.lock();
            if state.closed {
                continue; // evicted between the lookup and the lock
            }
            let snapshot = match &state.snapshot {
                Some(snapshot) => snapshot.clone(),
                None => {
                    let snapshot = frame(&ServerMsg::Presence {
                        room: room_name.to_string(),
                        users: state.announced.iter().map(|n| n.to_string()).collect(),
                    });
                    state.snapshot = Some(snapshot.clone());
                    snapshot
                }
            };
            conn.outbox.push(&snapshot);
            let behind = since.map(|since| state.delivered.checked_sub(since));
            match behind {
                // Resume: every missed message, as the frames members got.
                Some(Some(missed)) if missed as usize <= state.recent.len() => {
                    let skip = state.recent.len() - missed as usize;
                    for (_, message) in state.recent.iter().skip(skip) {
                        conn.outbox.push(message);
                    }
                }
                _ => {
                    let limit = self.config.history.min(state.recent.len());
                    let skip = state.recent.len() - limit;
                    let messages: Vec<HistoryMessage> = state
                        .recent
                        .iter()
                        .skip(skip)
                        .map(|(m, _)| history_message(m))
                        .collect();
                    conn.send(&ServerMsg::History {
                        room: room_name.to_string(),
                        has_more: messages.first().is_some_and(|m| m.seq > 1),
                        messages,
                        before: None,
                        resync: since.is_some(),
                    });
                }
            }
            let member = Member {
                name: Arc::from(name),
                conn: Arc::clone(conn),
            };
            if state.add(conn.id, member) {
                room.presence_changed(&mut state, self.config.presence_interval);
            }
            return Ok(());
        }
    }

    /// Removes connection `id` from `room`. An empty room stays loaded
    /// until the sweep evicts it.
    pub fn leave(&self, room_name: &str, id: ConnId) {
        let Some(room) = self.room(room_name) else {
            return;
        };
        let mut state = room.state.lock();
        if state.remove(id) {
            room.presence_changed(&mut state, self.config.presence_interval);
        }
    }

    /// Drops rooms with no members and nothing waiting to be committed;
    /// they are loaded again from the store when someone joins.
    fn evict_idle_rooms(&self) {
        self.rooms.lock().retain(|_, room| {
            let mut state = room.state.lock();
            let idle =
                state.members.is_empty() && state.pending.is_empty() && !state.flush_scheduled;
            if idle {
                state.closed = true;
            }
            !idle
        });
    }

    /// Says `text` in `room` as `from` (whose connection is `conn`): gives
    /// it the next `seq` and hands it to the persist thread, which fans it
    /// out and acks once it is durable. A `client_id` seen before from the
    /// same user is not stored again: its sender gets the original `seq`.
    pub fn say(
        &self,
        room_name: &str,
        conn: &Arc<Conn>,
        from: &str,
        text: String,
        client_id: Option<String>,
    ) -> Result<Said, (ErrorCode, String)> {
        let unavailable = || {
            (
                ErrorCode::Unavailable,
                "the server is busy; retry shortly".to_string(),
            )
        };
        let room = self.room(room_name).ok_or_else(unavailable)?;
        let mut state = room.state.lock();
        let key = client_id
            .as_ref()
            .map(|id| (names::name_key(from), id.clone()));
        if let Some(seq) = key.as_ref().and_then(|k| state.client_ids.get(k)).copied() {
            if seq <= state.delivered {
                return Ok(Said::Duplicate(seq));
            }
            if let Some(pending) = state.pending.iter_mut().find(|p| p.seq == seq) {
                pending.ackers.push((Arc::clone(conn), client_id));
                return Ok(Said::Queued);
            }
        }
        let seq = state.last_seq + 1;
        let msg = StoredMessage {
            room: room_name.to_string(),
            seq,
            from: from.to_string(),
            text,
            sent_at: now_ms(),
            client_id: client_id.clone(),
        };
        if !self.persist.submit(Arc::clone(&room), msg) {
            return Err(unavailable());
        }
        Metrics::inc(&self.metrics.messages_in);
        state.last_seq = seq;
        state.pending.push_back(Pending {
            seq,
            ackers: vec![(Arc::clone(conn), client_id)],
        });
        if let Some((user, id)) = key {
            remember_client_id(&mut state, user, id, seq);
        }
        Ok(Said::Queued)
    }

    /// Up to `limit` stored messages of `room` older than `before`.
    pub async fn history(
        &self,
        room: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let room = room.to_string();
        self.with_store(move |store| store.history(&room, before, limit))
            .await
    }

    /// Tells the other members of `room` that `user` is typing.
    pub fn typing(&self, room_name: &str, id: ConnId, user: &str) {
        let Some(room) = self.room(room_name) else {
            return;
        };
        let notice = frame(&ServerMsg::Typing {
            room: room_name.to_string(),
            user: user.to_string(),
        });
        let state = room.state.lock();
        for member in state.members.values().filter(|m| m.conn.id != id) {
            member.conn.outbox.push(&notice);
        }
    }

    /// Who is online in `room` now (empty if the room does not exist).
    pub fn who(&self, room_name: &str) -> Vec<String> {
        self.room(room_name)
            .map(|room| room.state.lock().online())
            .unwrap_or_default()
    }

    /// Every room with its number of members online, by name.
    pub fn rooms(&self) -> Vec<RoomInfo> {
        let rooms: Vec<Arc<Room>> = self.rooms.lock().values().cloned().collect();
        let mut infos: Vec<RoomInfo> = rooms
            .iter()
            .map(|room| RoomInfo {
                room: room.name.clone(),
                members: room.state.lock().online.len(),
            })
            .filter(|info| info.members > 0)
            .collect();
        infos.sort_by(|a, b| a.room.cmp(&b.room));
        infos
    }

    /// Delivers a direct message to `to` and echoes it to the sender.
    pub fn direct(
        &self,
        sender: &Arc<Conn>,
        from: &str,
        to: &str,
        text: String,
    ) -> Result<(), (ErrorCode, String)> {
        // Every connection of the recipient, and of the sender (so all of
        // the sender's tabs show what was said), each once.
        let (to_name, mut targets) = {
            let users = self.users.lock();
            let Some(recipient) = users.get(&names::name_key(to)) else {
                return Err((ErrorCode::UnknownUser, format!("{to:?} is not online")));
            };
            let mut targets = recipient.conns.clone();
            match users.get(&names::name_key(from)) {
                Some(me) => targets.extend(me.conns.iter().cloned()),
                None => targets.push(Arc::clone(sender)),
            }
            (recipient.name.clone(), targets)
        };
        targets.sort_by_key(|c| c.id);
        targets.dedup_by_key(|c| c.id);
        let msg = frame(&ServerMsg::Direct {
            from: from.to_string(),
            to: to_name,
            text,
            sent_at: now_ms(),
        });
        for conn in targets {
            conn.outbox.push(&msg);
        }
        Ok(())
    }

    /// Pings every connection and sends the app-level heartbeat every
    /// `heartbeat`; closes connections silent for longer than `idle_timeout`.
    /// One task and two timers for all connections.
    pub async fn heartbeat_loop(self: Arc<Hub>) {
        let heartbeat = frame(&ServerMsg::Heartbeat);
        let mut beat = tokio::time::interval(self.config.heartbeat);
        // Check often enough that a silent peer is closed within a quarter
        // of the timeout after it expires.
        let mut sweep =
            tokio::time::interval((self.config.idle_timeout / 4).max(Duration::from_millis(10)));
        beat.tick().await;
        sweep.tick().await;
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = beat.tick() => {
                    for conn in self.conns.lock().values() {
                        conn.outbox.push(&heartbeat);
                        conn.outbox.ping();
                    }
                }
                _ = sweep.tick() => {
                    self.evict_idle_rooms();
                    let now = self.elapsed_ms();
                    let limit = self.config.idle_timeout.as_millis() as u64;
                    let wall = now_ms();
                    for conn in self.conns.lock().values() {
                        if now.saturating_sub(conn.last_seen.load(Ordering::Relaxed)) > limit {
                            conn.outbox.close_now(Close { code: close::IDLE_TIMEOUT, reason: "idle timeout" });
                        } else if conn.account.as_ref().is_some_and(|a| a.expires_at <= wall) {
                            conn.outbox.close_after_drain(Close { code: close::SESSION_EXPIRED, reason: "session expired" });
                        }
                    }
                }
            }
        }
    }

    /// Starts shutting down: every connection is closed with 1001 after what
    /// is queued for it; new upgrades are refused.
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
        for conn in self.conns.lock().values() {
            conn.outbox.close_after_drain(GOING_AWAY);
        }
        self.tasks.close();
    }

    /// Number of open connections.
    pub fn connection_count(&self) -> usize {
        self.conns.lock().len()
    }

    /// The gauges `/metrics` reports, measured now.
    pub fn gauges(&self) -> Gauges {
        let conns: Vec<Arc<Conn>> = self.conns.lock().values().cloned().collect();
        Gauges {
            connections: conns.len(),
            rooms: self.rooms.lock().len(),
            queued_bytes: conns.iter().map(|c| c.outbox.queued_bytes()).sum(),
        }
    }
}
