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

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::ws::Utf8Bytes;
use hubbub_protocol::{close, names, ErrorCode, RoomInfo, ServerMsg};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::outbox::{Close, Outbox};

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

struct Member {
    name: String,
    conn: Arc<Conn>,
}

struct RoomState {
    members: HashMap<ConnId, Member>,
    /// Connections per member name: who is online, without a scan.
    online: HashMap<String, usize>,
    /// Last `seq` given to a message in this room.
    seq: u64,
    /// Names every member has been told about.
    announced: BTreeSet<String>,
    /// Names whose presence may differ from `announced`.
    changed: BTreeSet<String>,
    last_flush: Option<Instant>,
    flush_scheduled: bool,
    /// Set when the room was removed from the hub; a late joiner retries.
    closed: bool,
}

impl RoomState {
    fn add(&mut self, id: ConnId, member: Member) -> bool {
        let name = member.name.clone();
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
        let mut names: Vec<String> = self.online.keys().cloned().collect();
        names.sort();
        names
    }

    fn broadcast(&self, frame: &Utf8Bytes) {
        for member in self.members.values() {
            member.conn.outbox.push(frame);
        }
    }
}

pub struct Room {
    name: String,
    state: Mutex<RoomState>,
}

impl Room {
    fn new(name: String) -> Room {
        Room {
            name,
            state: Mutex::new(RoomState {
                members: HashMap::new(),
                online: HashMap::new(),
                seq: 0,
                announced: BTreeSet::new(),
                changed: BTreeSet::new(),
                last_flush: None,
                flush_scheduled: false,
                closed: false,
            }),
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
        if !joined.is_empty() {
            state.broadcast(&frame(&ServerMsg::Joined {
                room: self.name.clone(),
                users: joined,
            }));
        }
        if !left.is_empty() {
            state.broadcast(&frame(&ServerMsg::Left {
                room: self.name.clone(),
                users: left,
            }));
        }
    }
}

struct User {
    name: String,
    conn: Arc<Conn>,
}

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
}

impl Hub {
    pub fn new(config: Config) -> Arc<Hub> {
        Arc::new(Hub {
            config,
            rooms: Mutex::default(),
            users: Mutex::default(),
            conns: Mutex::default(),
            next_id: AtomicU64::new(1),
            started: Instant::now(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        })
    }

    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Registers a new connection.
    pub fn connect(&self) -> Arc<Conn> {
        let conn = Arc::new(Conn {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            outbox: Outbox::new(self.config.queue_bytes),
            last_seen: AtomicU64::new(self.elapsed_ms()),
        });
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
    pub fn disconnect(&self, conn: &Conn, name: Option<&str>, rooms: &HashSet<String>) {
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
        if users.contains_key(&key) {
            return Err((ErrorCode::NameTaken, format!("{name:?} is taken")));
        }
        users.insert(
            key,
            User {
                name: name.to_string(),
                conn: Arc::clone(conn),
            },
        );
        Ok(())
    }

    fn release_name(&self, name: &str, id: ConnId) {
        let mut users = self.users.lock();
        let key = names::name_key(name);
        if users.get(&key).is_some_and(|u| u.conn.id == id) {
            users.remove(&key);
        }
    }

    /// Renames the user of `conn` from `old` to `new` in the user table and
    /// in each of `rooms`, telling their members.
    pub fn rename(
        &self,
        conn: &Arc<Conn>,
        old: &str,
        new: &str,
        rooms: &HashSet<String>,
    ) -> Result<(), (ErrorCode, String)> {
        names::validate_name(new).map_err(|why| (ErrorCode::InvalidName, why))?;
        {
            let mut users = self.users.lock();
            let new_key = names::name_key(new);
            if users.get(&new_key).is_some_and(|u| u.conn.id != conn.id) {
                return Err((ErrorCode::NameTaken, format!("{new:?} is taken")));
            }
            users.remove(&names::name_key(old));
            users.insert(
                new_key,
                User {
                    name: new.to_string(),
                    conn: Arc::clone(conn),
                },
            );
        }
        for room in rooms.iter().filter_map(|r| self.room(r)) {
            let mut state = room.state.lock();
            let Some(member) = state.members.get_mut(&conn.id) else {
                continue;
            };
            member.name = new.to_string();
            state.forget(old);
            *state.online.entry(new.to_string()).or_default() += 1;
            if state.announced.remove(old) {
                state.announced.insert(new.to_string());
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
                state.changed.insert(new.to_string());
            }
        }
        Ok(())
    }

    fn room(&self, name: &str) -> Option<Arc<Room>> {
        self.rooms.lock().get(name).cloned()
    }

    /// Adds `conn` (as `name`) to `room`, creating it if needed. The joiner
    /// gets the `presence` snapshot before any notice that follows it.
    pub fn join(&self, room_name: &str, conn: &Arc<Conn>, name: &str) {
        loop {
            let room = Arc::clone(
                self.rooms
                    .lock()
                    .entry(room_name.to_string())
                    .or_insert_with(|| Arc::new(Room::new(room_name.to_string()))),
            );
            let mut state = room.state.lock();
            if state.closed {
                continue; // removed between the map lookup and the lock
            }
            conn.send(&ServerMsg::Presence {
                room: room_name.to_string(),
                users: state.announced.iter().cloned().collect(),
            });
            let member = Member {
                name: name.to_string(),
                conn: Arc::clone(conn),
            };
            if state.add(conn.id, member) {
                room.presence_changed(&mut state, self.config.presence_interval);
            }
            return;
        }
    }

    /// Removes connection `id` from `room`; drops the room once it is empty.
    pub fn leave(&self, room_name: &str, id: ConnId) {
        let Some(room) = self.room(room_name) else {
            return;
        };
        let empty = {
            let mut state = room.state.lock();
            if state.remove(id) {
                room.presence_changed(&mut state, self.config.presence_interval);
            }
            state.members.is_empty()
        };
        if empty {
            let mut rooms = self.rooms.lock();
            let mut state = room.state.lock();
            if state.members.is_empty() && !state.closed {
                state.closed = true;
                rooms.remove(room_name);
            }
        }
    }

    /// Says `text` in `room` as `from`: assigns the next `seq` and queues one
    /// shared frame for every member. Returns the `seq`.
    pub fn say(&self, room_name: &str, from: &str, text: String) -> Option<u64> {
        let room = self.room(room_name)?;
        let mut state = room.state.lock();
        state.seq += 1;
        let seq = state.seq;
        state.broadcast(&frame(&ServerMsg::Message {
            room: room_name.to_string(),
            seq,
            from: from.to_string(),
            text,
            sent_at: now_ms(),
        }));
        Some(seq)
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
                members: room.state.lock().online().len(),
            })
            .collect();
        infos.sort_by(|a, b| a.room.cmp(&b.room));
        infos
    }

    /// Delivers a direct message to `to` and echoes it to the sender.
    pub fn direct(
        &self,
        sender: &Conn,
        from: &str,
        to: &str,
        text: String,
    ) -> Result<(), (ErrorCode, String)> {
        let recipient = self
            .users
            .lock()
            .get(&names::name_key(to))
            .map(|u| (Arc::clone(&u.conn), u.name.clone()));
        let Some((recipient, to_name)) = recipient else {
            return Err((ErrorCode::UnknownUser, format!("{to:?} is not online")));
        };
        let msg = frame(&ServerMsg::Direct {
            from: from.to_string(),
            to: to_name,
            text,
            sent_at: now_ms(),
        });
        recipient.outbox.push(&msg);
        if recipient.id != sender.id {
            sender.outbox.push(&msg);
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
                    let now = self.elapsed_ms();
                    let limit = self.config.idle_timeout.as_millis() as u64;
                    for conn in self.conns.lock().values() {
                        if now.saturating_sub(conn.last_seen.load(Ordering::Relaxed)) > limit {
                            conn.outbox.close_now(Close { code: close::IDLE_TIMEOUT, reason: "idle timeout" });
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
}
