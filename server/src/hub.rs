//! The hub: the node's rooms (opened from the store on first join, closed
//! when nobody is in them), joining, saying and history; direct messages;
//! what a name means across the nodes of a cluster (holds and signals);
//! shutdown. Who is connected is the [`Registry`]'s; what a room does (its
//! log, members, presence) is [`crate::room`]'s; the connections' timers
//! are [`crate::timers`]'.
//!
//! Concurrency model: no actor hop on the hot path. A connection task calls
//! the hub directly; shared state sits behind short synchronous locks that
//! are never held across an `.await`. Lock order, where two are held:
//! `rooms` map → one room → an outbox.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use hubbub_protocol::{close, names, ErrorCode, RoomInfo, ServerMsg};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::metrics::{Gauges, Metrics};
use crate::outbox::{frame, Close, Flusher, Outbox};
use crate::persist::Persister;
use crate::registry::{Account, Conn, Registry};
use crate::room::{JoinMarker, Loaded, Name, Room, Said, CLIENT_ID_WINDOW};
use crate::store::{NodePresence, Signal, Store, StoreError, StoredMessage};
use crate::timers::{now_ms, Clock};

/// How connections are closed when the server shuts down.
const GOING_AWAY: Close = Close {
    code: close::GOING_AWAY,
    reason: "server shutting down",
};

/// Most rooms the directory (`rooms`) lists.
pub const DIRECTORY_MAX: usize = 500;

/// Store calls that may run at once, each on a blocking thread. The SQLite
/// store serializes on one reader and one writer connection anyway; without
/// a bound, a burst of thousands of connections saying `hello` made tokio
/// start hundreds of blocking threads (each with its stack), for nothing.
const STORE_THREADS: usize = 4;

/// Shared state of the whole server.
pub struct Hub {
    pub config: Config,
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    /// Who is connected here: connections, users, addresses.
    pub registry: Registry,
    next_id: AtomicU64,
    /// The server's clock, for connections' timers ([`crate::timers`]).
    pub clock: Clock,
    /// Cancelled when the server begins shutting down.
    pub shutdown: CancellationToken,
    /// Tracks connection tasks so shutdown can wait for them to drain.
    pub tasks: TaskTracker,
    store: Arc<dyn Store>,
    /// Bounds the blocking threads store calls occupy (see [`Hub::with_store`]).
    store_slots: tokio::sync::Semaphore,
    /// The group-commit thread every room message goes through.
    pub persist: Persister,
    /// Counters exposed at `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The write-coalescing tick ([`Flusher`]); `run` drives it.
    pub flusher: Arc<Flusher>,
    /// This node's id in a cluster (`--node-id`, or random).
    pub node_id: String,
    /// In a cluster, orders this node's writes of one name's hold
    /// ([`Hub::hold_guest_name`]): striped by name key, so the last write
    /// of a name is its latest count without one lock for every name.
    holds: Box<[tokio::sync::Mutex<()>]>,
    /// Where uploads go, guest upload tokens, the upload rate.
    pub uploads: crate::files::Uploads,
    /// This hub, for the tasks it spawns.
    me: Weak<Hub>,
    /// Signals the cluster thread sends before it publishes presence
    /// ([`Hub::take_signals`]): a rename must reach the other nodes before
    /// the presence that shows it, or they would announce a leave and a
    /// join.
    queued_signals: Mutex<Vec<Signal>>,
    /// What this node knows of private conversations ([`crate::conversation`]).
    pub conversations: crate::conversation::Known,
}

/// Stripes of [`Hub::holds`].
const HOLD_STRIPES: usize = 64;

/// The key of guest upload tokens: random for a lone node, the cluster's
/// for a node that shares its store (so any node verifies any node's).
fn upload_key(store: &dyn Store) -> [u8; 32] {
    let mut fresh = [0u8; 32];
    rand::fill(&mut fresh);
    let Some(presence) = store.node_presence() else {
        return fresh;
    };
    // A blocking store call, off any async runtime (this runs at start).
    std::thread::scope(|scope| {
        scope
            .spawn(|| presence.shared_secret("guest_upload_tokens", &fresh))
            .join()
            .expect("store calls do not panic")
    })
    .unwrap_or_else(|err| {
            tracing::error!(error = %err, "no shared upload token key: guests' tokens work on this node only");
            fresh
        })
}

/// The persist thread's news of a conversation's stored messages
/// ([`crate::conversation::said`]), run in the runtime that made the hub (telling
/// the other nodes uses its blocking pool).
fn said_in_conversation(hub: Weak<Hub>) -> crate::persist::SaidInConversation {
    let runtime = tokio::runtime::Handle::try_current().ok();
    Box::new(move |room, senders| {
        let Some(hub) = hub.upgrade() else { return };
        let _entered = runtime.as_ref().map(|runtime| runtime.enter());
        for sender in senders {
            crate::conversation::said(&hub, room, sender);
        }
    })
}

impl Hub {
    pub fn new(config: Config, store: Arc<dyn Store>) -> Arc<Hub> {
        let metrics = Metrics::new();
        let node_id = config.node_id.clone().unwrap_or_else(|| {
            // Fresh at each start: a restarted node is a new node.
            format!("{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
        });
        let uploads = crate::files::Uploads::new(&config, &node_id, upload_key(&*store));
        Arc::new_cyclic(|me| Hub {
            persist: Persister::start(
                Arc::clone(&store),
                (config.retention(), config.retention_interval),
                config.commit_window,
                Arc::clone(&metrics),
                said_in_conversation(me.clone()),
            ),
            holds: (0..HOLD_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            me: me.clone(),
            queued_signals: Mutex::default(),
            conversations: Default::default(),
            metrics,
            store,
            store_slots: tokio::sync::Semaphore::new(STORE_THREADS),
            registry: Registry::new(config.max_conns_per_ip),
            uploads,
            config,
            rooms: Mutex::default(),
            next_id: AtomicU64::new(1),
            clock: Clock::new(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            flusher: Arc::default(),
            node_id,
        })
    }

    /// Registers a new connection.
    pub fn connect(&self) -> Arc<Conn> {
        self.connect_as(None)
    }

    /// Registers a new connection of a signed-in `account` (or a guest).
    pub fn connect_as(&self, account: Option<Account>) -> Arc<Conn> {
        let conn = Arc::new(Conn::new(
            self.next_id.fetch_add(1, Ordering::Relaxed),
            Outbox::with_metrics(self.config.queue_bytes, Arc::clone(&self.metrics)),
            self.clock.stamp(),
            account,
        ));
        Metrics::inc(&self.metrics.connections_total);
        self.registry.add(&conn);
        // begin_shutdown cancels before it walks the connections: one
        // registered too late for the walk sees the cancellation here.
        if self.shutdown.is_cancelled() {
            conn.outbox.close_after_drain(GOING_AWAY);
        }
        conn
    }

    /// Forgets a connection: leaves its rooms (offline notices), frees its name.
    pub fn disconnect(&self, conn: &Conn, name: Option<&str>, rooms: &[Arc<Room>]) {
        for room in rooms {
            self.leave(room, conn);
        }
        if let Some(name) = name {
            let key = names::name_key(name);
            match self.me.upgrade() {
                // A guest's conversations go before its name does: no
                // later guest of the name may find them.
                Some(hub) if conn.account.is_none() && self.conversations.has_guest(&key) => {
                    let (name, id) = (name.to_string(), conn.id);
                    tokio::spawn(async move {
                        crate::conversation::end_guest(&hub, &key).await;
                        if let Some(key) = hub.registry.release_name(&name, id) {
                            hub.sync_hold(key);
                        }
                    });
                }
                _ => {
                    if let Some(key) = self.registry.release_name(name, conn.id) {
                        self.sync_hold(key);
                    }
                }
            }
        }
        self.registry.remove(conn.id);
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

    /// The name of the user whose name key is `key`, as they spell it, if
    /// they are online: here, or in a cluster on another node.
    pub fn online_name(&self, key: &str) -> Option<String> {
        match self.registry.user(key) {
            Some((name, _)) => Some(name.to_string()),
            None if self.clustered() => self.registry.remote_user(key),
            None => None,
        }
    }

    /// Whether this node shares its store with other nodes (`--cluster`).
    pub fn clustered(&self) -> bool {
        self.store.node_presence().is_some()
    }

    /// In a cluster, takes the guest name `name` on every node, before the
    /// hub's own table does ([`Registry::claim_name`], [`Hub::rename`]): refused
    /// with `name_taken` while any other node has it. If the hub then
    /// refuses the name, [`Hub::forget_hold`] gives it back.
    pub async fn hold_guest_name(&self, name: &str) -> Result<(), (ErrorCode, String)> {
        if !self.clustered() {
            return Ok(());
        }
        let key = names::name_key(name);
        let _order = self.hold_stripe(&key).lock().await;
        let node = self.node_id.clone();
        let held = self
            .with_store(move |store| match store.node_presence() {
                Some(presence) => presence.hold(&node, &key, 1, true, true),
                None => Ok(true),
            })
            .await;
        match held {
            Ok(true) => Ok(()),
            Ok(false) => Err((ErrorCode::NameTaken, format!("{name:?} is taken"))),
            Err(err) => {
                tracing::error!(error = %err, "cannot hold a name across the cluster");
                Err((
                    ErrorCode::Unavailable,
                    "cannot check the name now; retry".into(),
                ))
            }
        }
    }

    /// Gives back a hold [`Hub::hold_guest_name`] took for a name the hub
    /// then refused (or tells its right count, if it is held here).
    pub fn forget_hold(&self, name: &str) {
        self.sync_hold(names::name_key(name));
    }

    /// In a cluster, tells the other nodes how many connections of `name`
    /// this node has now, and waits until they know: an account's new
    /// socket counts everywhere before its `welcome`.
    pub async fn tell_hold(&self, name: &str) {
        if let Some(told) = self.sync_hold(names::name_key(name)) {
            let _ = told.await;
        }
    }

    fn hold_stripe(&self, key: &str) -> &tokio::sync::Mutex<()> {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let hash = BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
            .hash_one(key);
        &self.holds[hash as usize % self.holds.len()]
    }

    /// In a cluster, tells the other nodes how many connections of the
    /// name whose key is `key` this node has now (none: the name is free
    /// here), in the order the changes happened.
    fn sync_hold(&self, key: String) -> Option<tokio::task::JoinHandle<()>> {
        if !self.clustered() {
            return None;
        }
        let hub = self.me.upgrade()?;
        Some(tokio::spawn(async move {
            let _order = hub.hold_stripe(&key).lock().await;
            let (conns, guest) = hub.registry.hold(&key);
            let node = hub.node_id.clone();
            let written = hub
                .with_store(move |store| match store.node_presence() {
                    Some(presence) => presence.hold(&node, &key, conns, guest, false),
                    None => Ok(true),
                })
                .await;
            if let Err(err) = written {
                tracing::warn!(error = %err, "cannot tell the cluster who holds a name");
            }
        }))
    }

    /// Tells the cluster again every name held here (the other nodes had
    /// taken this node for dead and forgotten them).
    pub fn resync_holds(&self) {
        for key in self.registry.keys() {
            self.sync_hold(key);
        }
    }

    /// How many connections the account `name` has open, on this node and,
    /// in a cluster, on the others: what `--max-conns-per-user` counts.
    pub async fn connections_anywhere(&self, name: &str) -> Result<usize, StoreError> {
        let here = self.registry.connections_of(name);
        if !self.clustered() {
            return Ok(here);
        }
        let node = self.node_id.clone();
        let key = names::name_key(name);
        let held = self
            .with_store(move |store| match store.node_presence() {
                Some(presence) => presence.held_elsewhere(&node, &key),
                None => Ok(Default::default()),
            })
            .await?;
        Ok(here + held.conns as usize)
    }

    /// The signals to send before the next presence is published.
    pub fn take_signals(&self) -> Vec<Signal> {
        std::mem::take(&mut *self.queued_signals.lock())
    }

    /// In a cluster, tells every other node `signal` (not waited for).
    pub fn signal(&self, signal: Signal) {
        self.tell_others("telling the other nodes", move |presence, node| {
            presence.signal(node, &signal)
        });
    }

    /// In a cluster, runs `call` (with this node's id) on the blocking
    /// pool, not waited for; a failure is logged as `what` failing.
    fn tell_others(
        &self,
        what: &'static str,
        call: impl FnOnce(&dyn NodePresence, &str) -> Result<(), StoreError> + Send + 'static,
    ) {
        if !self.clustered() {
            return;
        }
        let store = Arc::clone(&self.store);
        let node = self.node_id.clone();
        tokio::task::spawn_blocking(move || {
            let Some(presence) = store.node_presence() else {
                return;
            };
            if let Err(err) = call(presence, &node) {
                tracing::warn!(error = %err, "{what} failed");
            }
        });
    }

    /// Tells every connection of the account `user` that its read marker
    /// in `room` is now `seq`: here, and through the other nodes.
    pub fn tell_read(&self, user: &str, room: String, seq: u64) {
        self.deliver_read(user, &room, seq);
        self.signal(Signal::Read {
            user: user.to_string(),
            room,
            seq,
        });
    }

    /// Sends `read` to this node's connections of `user`.
    fn deliver_read(&self, user: &str, room: &str, seq: u64) {
        let conns = self.registry.welcomed_conns(&names::name_key(user));
        if conns.is_empty() {
            return;
        }
        let msg = frame(&ServerMsg::Read {
            room: room.to_string(),
            seq,
        });
        for conn in conns {
            conn.outbox.push(&msg);
        }
    }

    /// Acts on what another node signalled, for the connections here.
    pub fn signalled(&self, signal: Signal) {
        match signal {
            Signal::LoggedOut { token_hash } => self.registry.close_session(&token_hash),
            Signal::Typing { room, user } => {
                if let Some(room) = self.room(&room) {
                    // No connection here is the typist.
                    room.typing(0, &user);
                }
            }
            Signal::Read { user, room, seq } => self.deliver_read(&user, &room, seq),
            Signal::Conversation {
                user,
                room,
                with,
                all,
            } => {
                if self
                    .registry
                    .user(&user)
                    .is_some_and(|(_, conns)| conns.iter().all(|c| c.account.is_none()))
                {
                    // A guest here: its conversations go with its name.
                    self.conversations.note_guest(&user);
                }
                crate::conversation::deliver(self, &user, &room, &with, all)
            }
            Signal::ConversationEnded { room } => crate::conversation::end_room(self, &room),
            Signal::Renamed { from, to } => {
                self.registry.rename_remote_user(&from, &to);
                let to = Name::from(to);
                for room in self.open_rooms() {
                    room.rename_remote(&from, &to);
                }
            }
        }
    }

    /// Closes every connection opened with the session `token_hash`
    /// (logout), on this node and on every other node of a cluster.
    pub fn end_session(&self, token_hash: &str) {
        self.registry.close_session(token_hash);
        self.signal(Signal::LoggedOut {
            token_hash: token_hash.to_string(),
        });
    }

    /// Renames the user of `conn` from `old` to `new` in the user table and
    /// in each of `rooms`, telling their members. Returns the new name as
    /// the hub keeps it.
    pub fn rename(
        &self,
        conn: &Arc<Conn>,
        old: &str,
        new: &str,
        rooms: &[Arc<Room>],
    ) -> Result<Name, (ErrorCode, String)> {
        let renamed = self.registry.rename(conn, old, new)?;
        self.sync_hold(names::name_key(old));
        // Queued before the rooms change, so it goes out before any
        // presence that shows the change (see `queued_signals`).
        if self.clustered() {
            self.queued_signals.lock().push(Signal::Renamed {
                from: old.to_string(),
                to: renamed.to_string(),
            });
        }
        for room in rooms {
            room.rename(conn, old, &renamed);
        }
        Ok(renamed)
    }

    /// The room named `name` if it is open on this node.
    pub fn room(&self, name: &str) -> Option<Arc<Room>> {
        self.rooms.lock().get(name).cloned()
    }

    /// Takes the room `name` off this node (it was ended), if it is open.
    pub fn drop_room(&self, name: &str) -> Option<Arc<Room>> {
        self.rooms.lock().remove(name)
    }

    /// Every room open on this node.
    pub fn open_rooms(&self) -> Vec<Arc<Room>> {
        self.rooms.lock().values().cloned().collect()
    }

    /// The room named `name`, loaded from the store on first use.
    async fn open_room(&self, name: &str) -> Result<Arc<Room>, StoreError> {
        let room = Arc::clone(
            self.rooms
                .lock()
                .entry(name.to_string())
                .or_insert_with(|| Arc::new(Room::new(name.to_string(), self.config.room_log))),
        );
        room.ready
            .get_or_try_init(|| async {
                let (room_name, recent) = (name.to_string(), self.config.room_log);
                let record = self
                    .with_store(move |store| store.load_room(&room_name, recent, CLIENT_ID_WINDOW))
                    .await?;
                room.load(Loaded {
                    last_seq: record.last_seq,
                    recent: record.recent,
                    client_ids: record
                        .client_ids
                        .into_iter()
                        .map(|(from, id, seq)| (names::name_key(&from), id, seq))
                        .collect(),
                });
                Ok::<(), StoreError>(())
            })
            .await?;
        Ok(room)
    }

    /// Adds `conn` (as `name`) to `room`, loading or creating it. The joiner
    /// gets, in order: the `presence` snapshot; then either every message
    /// after `since` (resume: from the room's log, or the store for what the
    /// log no longer holds) or the latest history; then live messages.
    /// Returns the room, which stays loaded while `conn` is a member.
    /// `marker` is the read marker to send behind the history; the
    /// answer carries the room's last `seq` at the join.
    pub async fn join(
        &self,
        room_name: &str,
        conn: &Arc<Conn>,
        name: &Name,
        since: Option<u64>,
        marker: JoinMarker,
    ) -> Result<(Arc<Room>, u64), StoreError> {
        loop {
            let room = self.open_room(room_name).await?;
            if let Some(since) = since {
                self.catch_up_to(&room, since).await?;
            }
            let mut since = since;
            if let Some(from) = since.filter(|s| s + 1 < room.oldest_in_log()) {
                // Resuming from before the log: only if the store still has
                // the next message (retention may have dropped it).
                let name = room_name.to_string();
                let next = self
                    .with_store(move |store| store.after(&name, from, 1))
                    .await?;
                if next.first().is_none_or(|m| m.seq != from + 1) {
                    since = Some(u64::MAX); // resync: fresh history
                }
            }
            let history = self.config.history;
            let presence_interval = self.config.presence_interval;
            if let Some(last) = room.join(conn, name, since, history, presence_interval, marker) {
                return Ok((room, last));
            }
            // Evicted between the lookup and the lock: open it again.
        }
    }

    /// A resume from further than this node's log reaches: in a cluster the
    /// client may have seen messages on a node that heard of them sooner.
    /// Reads them from the store into the room's log first (a page at a
    /// time, as far as the store has them), so the resume is a resume, not
    /// a resync. On a lone node the store has nothing newer; it costs one read.
    async fn catch_up_to(&self, room: &Arc<Room>, since: u64) -> Result<(), StoreError> {
        if since > room.delivered() {
            let room = Arc::clone(room);
            self.with_store(move |store| room.read_up_to(store, since))
                .await?;
        }
        Ok(())
    }

    /// Removes `conn` from `room`. An empty room stays loaded until the
    /// sweep evicts it.
    pub fn leave(&self, room: &Arc<Room>, conn: &Conn) {
        room.leave(conn, self.config.presence_interval);
    }

    /// Drops rooms with no members and nothing waiting to be committed;
    /// they are loaded again from the store when someone joins.
    pub fn evict_idle_rooms(&self) {
        self.rooms.lock().retain(|_, room| !room.close_if_idle());
    }

    /// Says `draft` (a message or an event row, checked already; its
    /// sender `from` on connection `conn`) in `room`: gives it the next
    /// `seq` and hands it to the persist thread, which appends it to the
    /// room's log and acks once it is durable. A `client_id` seen before
    /// from the same user is not stored again: its sender gets the
    /// original `seq`.
    pub fn say(
        &self,
        room: &Arc<Room>,
        conn: &Arc<Conn>,
        draft: StoredMessage,
    ) -> Result<Said, (ErrorCode, String)> {
        if self.persist.is_failing() {
            return Err((
                ErrorCode::Unavailable,
                "messages cannot be stored right now; retry shortly".to_string(),
            ));
        }
        let said = room
            .say(
                conn,
                names::name_key(&draft.from),
                StoredMessage {
                    room: room.name.clone(),
                    ..draft
                },
                |msg| self.persist.submit(Arc::clone(room), msg),
            )
            .ok_or_else(|| {
                (
                    ErrorCode::Unavailable,
                    "the server is busy; retry shortly".to_string(),
                )
            })?;
        if matches!(said, Said::Queued) {
            Metrics::inc(&self.metrics.messages_in);
        }
        Ok(said)
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

    /// Who is online in `room` now (empty if the room does not exist).
    pub fn who(&self, room_name: &str) -> Vec<String> {
        self.room(room_name)
            .map(|room| room.online())
            .unwrap_or_default()
    }

    /// The room directory, by name: every room with someone online, and
    /// every room with a message newer than `directory_age` (with its
    /// members online now, maybe none), at most [`DIRECTORY_MAX`].
    pub async fn rooms(&self) -> Result<Vec<RoomInfo>, StoreError> {
        let age = self.config.directory_age;
        let recent = if age.is_zero() {
            Vec::new()
        } else {
            let since = now_ms().saturating_sub(age.as_millis() as u64);
            self.with_store(move |store| store.active_rooms(since, DIRECTORY_MAX))
                .await?
        };
        let rooms: Vec<Arc<Room>> = self.rooms.lock().values().cloned().collect();
        let mut infos: HashMap<String, usize> = rooms
            .iter()
            .filter(|room| !names::is_conversation(&room.name))
            .map(|room| (room.name.clone(), room.online_count()))
            .filter(|(_, members)| *members > 0)
            .collect();
        for room in recent {
            infos.entry(room).or_insert(0);
        }
        let mut infos: Vec<RoomInfo> = infos
            .into_iter()
            .map(|(room, members)| RoomInfo { room, members })
            .collect();
        infos.sort_by(|a, b| a.room.cmp(&b.room));
        infos.truncate(DIRECTORY_MAX);
        Ok(infos)
    }

    /// Starts shutting down: every connection is closed with 1001 after what
    /// is queued for it; new upgrades are refused.
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
        self.registry
            .each(|conn| conn.outbox.close_after_drain(GOING_AWAY));
        self.tasks.close();
    }

    /// The gauges `/metrics` reports, measured now.
    pub fn gauges(&self) -> Gauges {
        let conns = self.registry.all();
        Gauges {
            connections: conns.len(),
            rooms: self.rooms.lock().len(),
            queued_bytes: conns.iter().map(|c| c.outbox.queued_bytes()).sum(),
        }
    }
}
