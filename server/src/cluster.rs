//! The cross-node message feed: what other nodes commit lands in this
//! node's room logs, in `seq` order, and members pull it from there as they
//! do local messages ([`crate::room`], [`crate::feed`]).
//!
//! The shared store is the source of truth (messages by room and `seq`).
//! Its commit notices ([`Store::commits`]: PostgreSQL's `LISTEN`/`NOTIFY`,
//! one notice per committed batch, not per message) only wake this thread;
//! it then reads by `seq` what is new in the rooms open here
//! ([`Room::arrived`]). Nothing depends on a notice arriving: the thread
//! also checks every open room's last `seq` each [`SWEEP_EVERY`], and after
//! the link to the store was lost, so a missed notice costs latency, never
//! a message.
//!
//! **Presence across nodes.** The same thread publishes who is online here
//! in each open room (what changed, each `presence_interval`) and reads
//! who is online on the other nodes when told their presence changed
//! ([`NodePresence`](crate::store::NodePresence)); a room announces a name
//! that came or went on any node as it does a local one, so each change
//! goes out once to every member, whichever node it is on. Each node beats
//! a heartbeat every third of `node_ttl`; a node silent for `node_ttl`
//! (killed) is forgotten by the next heartbeat of a surviving node, with
//! its presence, and its users go offline everywhere.
//!
//! **Names and signals.** Which node holds which name is kept in the
//! store ([`NodePresence::hold`](crate::store::NodePresence::hold)): a guest
//! name is one guest's on every node, and an account's connections are
//! counted on all of them; a node taken for dead tells its holds again when
//! it comes back. What must reach sockets on every node at once (a logout
//! closing that session's sockets with 4501, typing, a guest's rename) is
//! a [`Signal`](crate::store::Signal), dispatched here to [`Hub::signalled`].
//!
//! One thread per node, blocking like the store's other callers.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::feed::CATCH_UP_PAGE;
use crate::hub::Hub;
use crate::room::{Name, Room};
use crate::store::{Commits, Store, StoreError, StoredMessage};

/// How often every open room is checked whatever the notices said.
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The running feed; stops when dropped or told to.
pub struct Cluster {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Cluster {
    /// Starts the feed if `store` is shared with other nodes.
    pub fn start(hub: &Arc<Hub>, store: Arc<dyn Store>) -> Result<Option<Cluster>, StoreError> {
        // The store's client blocks on a runtime of its own: not here.
        let commits = std::thread::scope(|scope| {
            scope
                .spawn(|| store.commits())
                .join()
                .expect("listening does not panic")
        })?;
        let Some(commits) = commits else {
            return Ok(None);
        };
        let stop = Arc::new(AtomicBool::new(false));
        let hub = Arc::downgrade(hub);
        let stopping = Arc::clone(&stop);
        // Presence notices are timed on the hub's runtime.
        let runtime = tokio::runtime::Handle::current();
        let thread = std::thread::Builder::new()
            .name("hubbub-cluster".into())
            .spawn(move || {
                let _runtime = runtime.enter();
                run(hub, store, commits, stopping)
            })
            .expect("spawn the cluster thread");
        Ok(Some(Cluster {
            stop,
            thread: Some(thread),
        }))
    }

    /// Stops the feed; returns the thread to join (it ends within a sweep).
    pub fn stop(mut self) -> Option<JoinHandle<()>> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn run(hub: Weak<Hub>, store: Arc<dyn Store>, commits: Box<dyn Commits>, stop: Arc<AtomicBool>) {
    let Some(strong) = hub.upgrade() else { return };
    let mut node = Node {
        id: strong.node_id.clone(),
        users_known: false,
        ttl: strong.config.node_ttl,
        tick: strong
            .config
            .presence_interval
            .max(Duration::from_millis(10)),
        published: HashMap::new(),
        known: HashMap::new(),
    };
    drop(strong);
    let mut commits = Some(commits);
    let mut backoff = Duration::from_millis(50);
    let mut last_sweep = Instant::now();
    let mut last_tick = Instant::now();
    let mut last_beat: Option<Instant> = None;
    while !stop.load(Ordering::SeqCst) {
        let Some(listener) = commits.as_mut() else {
            // The link was lost: listen again, then check everything, as
            // notices sent meanwhile are gone.
            match store.commits() {
                Ok(Some(again)) => {
                    commits = Some(again);
                    backoff = Duration::from_millis(50);
                    last_sweep = Instant::now();
                    if let Some(hub) = hub.upgrade() {
                        sweep(&hub, &*store);
                        node.refresh(&hub, &*store, None);
                    }
                }
                Ok(None) => return,
                Err(err) => {
                    tracing::warn!(error = %err, "listening for other nodes' commits failed; retrying");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
            continue;
        };
        let beat_due = last_beat.map_or(Duration::ZERO, |at| {
            (node.ttl / 3).saturating_sub(at.elapsed())
        });
        let wait = SWEEP_EVERY
            .saturating_sub(last_sweep.elapsed())
            .min(node.tick.saturating_sub(last_tick.elapsed()))
            .min(beat_due);
        let news = listener.wait(wait);
        let Some(hub) = hub.upgrade() else { return };
        match news {
            Ok(Some(news)) => {
                let grown: Vec<(Arc<Room>, u64)> = news
                    .rooms
                    .into_iter()
                    .filter_map(|(name, seq)| hub.room(&name).map(|room| (room, seq)))
                    .collect();
                read_all(grown, &*store);
                if news.everything {
                    sweep(&hub, &*store);
                }
                for (from, signal) in news.signals {
                    if from != node.id {
                        hub.signalled(signal);
                    }
                }
                if news.all_presence {
                    node.refresh(&hub, &*store, None);
                } else if !news.presence.is_empty() {
                    node.refresh(&hub, &*store, Some(&news.presence));
                }
            }
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(error = %err, "the link for other nodes' commits broke; listening again");
                commits = None;
                continue;
            }
        }
        if last_sweep.elapsed() >= SWEEP_EVERY {
            last_sweep = Instant::now();
            sweep(&hub, &*store);
        }
        if last_tick.elapsed() >= node.tick {
            last_tick = Instant::now();
            node.publish(&hub, &*store);
        }
        if last_beat.is_none_or(|at| at.elapsed() >= node.ttl / 3) {
            last_beat = Some(Instant::now());
            if let Some(presence) = store.node_presence() {
                match presence.heartbeat(&node.id, node.ttl) {
                    Ok(true) => {
                        node.republish(&hub);
                        hub.resync_holds();
                    }
                    Ok(false) => {}
                    Err(err) => tracing::warn!(error = %err, "the node heartbeat failed"),
                }
            }
        }
    }
    // A clean stop: this node's users go offline everywhere at once.
    if let Some(presence) = store.node_presence() {
        if let Err(err) = presence.leave(&node.id) {
            tracing::warn!(error = %err, "could not withdraw this node's presence");
        }
    }
}

/// This node's side of presence across the cluster.
struct Node {
    id: String,
    ttl: Duration,
    /// How often local presence changes are published.
    tick: Duration,
    /// The names this node last published as online, per room.
    published: HashMap<String, HashSet<Name>>,
    /// The open rooms whose other nodes' presence this node has read (a
    /// room closed and opened again is a new `Room`: read again).
    known: HashMap<String, Arc<Room>>,
    /// Whether the users online on other nodes were read once.
    users_known: bool,
}

/// Presence's room name for "connected to this node at all": who is
/// online anywhere (a conversation's guest, a mention). No room is named so (names have 1 to 32 characters).
const ANYWHERE: &str = "";

impl Node {
    /// Publishes what changed in who is online here, and reads the other
    /// nodes' presence for rooms opened since the last tick.
    fn publish(&mut self, hub: &Hub, store: &dyn Store) {
        let Some(presence) = store.node_presence() else {
            return;
        };
        let open = hub.open_rooms();
        let mut changes = Vec::new();
        let mut now: HashMap<String, Option<Vec<Name>>> = HashMap::new();
        for room in &open {
            now.insert(room.name.clone(), room.local_names_if_changed());
        }
        let force = !self.published.contains_key(ANYWHERE);
        now.insert(
            ANYWHERE.to_string(),
            hub.registry.local_users_if_changed(force),
        );
        // Queued before the changes just read were made: out first.
        for signal in hub.take_signals() {
            if let Err(err) = presence.signal(&self.id, &signal) {
                tracing::warn!(error = %err, "telling the other nodes failed");
            }
        }
        for (name, names) in &now {
            let Some(names) = names else { continue };
            let before = self.published.get(name);
            for n in names {
                if !before.is_some_and(|b| b.contains(n)) {
                    changes.push((name.clone(), n.to_string(), true));
                }
            }
            if let Some(before) = before {
                for n in before.iter().filter(|n| !names.contains(n)) {
                    changes.push((name.clone(), n.to_string(), false));
                }
            }
        }
        // Rooms closed here: nobody of ours is in them any more.
        for (name, before) in &self.published {
            if !now.contains_key(name) {
                for n in before {
                    changes.push((name.clone(), n.to_string(), false));
                }
            }
        }
        match presence.publish(&self.id, &changes) {
            Ok(()) => {
                for (room, names) in now {
                    if let Some(names) = names {
                        self.published.insert(room, names.into_iter().collect());
                    }
                }
                let open_names: HashSet<&String> = open.iter().map(|r| &r.name).collect();
                self.published.retain(|room, names| {
                    room == ANYWHERE || (open_names.contains(room) && !names.is_empty())
                });
            }
            Err(err) => {
                tracing::warn!(error = %err, "publishing presence failed; retrying");
                // Ask again next tick.
                for room in &open {
                    room.mark_local_changed();
                }
                self.published.remove(ANYWHERE);
            }
        }
        if !self.users_known {
            self.users_known = true;
            self.refresh_users(hub, store);
        }
        let fresh: Vec<String> = open
            .iter()
            .filter(|room| {
                !self
                    .known
                    .get(&room.name)
                    .is_some_and(|known| Arc::ptr_eq(known, room))
            })
            .map(|room| room.name.clone())
            .collect();
        self.known = open
            .into_iter()
            .map(|room| (room.name.clone(), room))
            .collect();
        if !fresh.is_empty() {
            self.refresh(hub, store, Some(&fresh));
        }
    }

    /// The store had forgotten this node (it starts, or was silent past the
    /// TTL and taken for dead): everything it has online is told again at
    /// the next tick.
    fn republish(&mut self, hub: &Hub) {
        self.published.clear();
        for room in hub.open_rooms() {
            room.mark_local_changed();
        }
    }

    /// Reads the other nodes' presence in `rooms` (all open ones if
    /// `None`) into each room.
    fn refresh(&self, hub: &Hub, store: &dyn Store, rooms: Option<&[String]>) {
        let Some(presence) = store.node_presence() else {
            return;
        };
        if rooms.is_none_or(|rooms| rooms.iter().any(|r| r == ANYWHERE)) {
            self.refresh_users(hub, store);
        }
        let open: Vec<Arc<Room>> = match rooms {
            Some(names) => names.iter().filter_map(|n| hub.room(n)).collect(),
            None => hub.open_rooms(),
        };
        if open.is_empty() {
            return;
        }
        let names: Vec<String> = open.iter().map(|room| room.name.clone()).collect();
        let others = match presence.others(&self.id, &names) {
            Ok(others) => others,
            Err(err) => {
                tracing::warn!(error = %err, "reading other nodes' presence failed");
                return;
            }
        };
        let mut by_room: HashMap<String, HashMap<Name, u64>> = HashMap::new();
        for (room, name, nodes) in others {
            by_room
                .entry(room)
                .or_default()
                .insert(Name::from(name), nodes);
        }
        let interval = hub.config.presence_interval;
        for room in open {
            let remote = by_room.remove(&room.name).unwrap_or_default();
            room.set_remote(remote, interval);
        }
    }
}

impl Node {
    /// Reads who is online on the other nodes into the hub.
    fn refresh_users(&self, hub: &Hub, store: &dyn Store) {
        let Some(presence) = store.node_presence() else {
            return;
        };
        match presence.others(&self.id, &[ANYWHERE.to_string()]) {
            Ok(others) => hub.registry.set_remote_users(
                others
                    .into_iter()
                    .map(|(_, name, _)| (hubbub_protocol::names::name_key(&name), name))
                    .collect(),
            ),
            Err(err) => tracing::warn!(error = %err, "reading who is online elsewhere failed"),
        }
    }
}

/// Checks every open room against the store's last `seq`.
fn sweep(hub: &Hub, store: &dyn Store) {
    let rooms = hub.open_rooms();
    if rooms.is_empty() {
        return;
    }
    let names: Vec<String> = rooms.iter().map(|room| room.name.clone()).collect();
    match store.last_seqs(&names) {
        Ok(lasts) => {
            let by_name: HashMap<&str, &Arc<Room>> = rooms
                .iter()
                .map(|room| (room.name.as_str(), room))
                .collect();
            let grown = lasts
                .into_iter()
                .filter_map(|(name, seq)| by_name.get(name.as_str()).map(|r| (Arc::clone(r), seq)))
                .collect();
            read_all(grown, store);
        }
        Err(err) => tracing::warn!(error = %err, "checking rooms for other nodes' messages failed"),
    }
}

/// Reads each room's messages up to its `seq` from the store into its
/// log: the first page of every room that grew in one query, then any room
/// still short (more than a page behind) on its own.
fn read_all(mut grown: Vec<(Arc<Room>, u64)>, store: &dyn Store) {
    // A notice may name a room more than once: its highest `seq` counts.
    grown.sort_by(|a, b| a.0.name.cmp(&b.0.name).then(b.1.cmp(&a.1)));
    grown.dedup_by(|a, b| a.0.name == b.0.name);
    // A room still loading gets its log from the store as it opens.
    grown.retain(|(room, seq)| room.ready.get().is_some() && room.delivered() < *seq);
    if grown.is_empty() {
        return;
    }
    let spans: Vec<(String, u64, u64)> = grown
        .iter()
        .map(|(room, seq)| {
            let from = room.delivered();
            (
                room.name.clone(),
                from,
                (*seq).min(from + CATCH_UP_PAGE as u64),
            )
        })
        .collect();
    match store.between(&spans) {
        Ok(msgs) => {
            let mut by_room: HashMap<String, Vec<StoredMessage>> = HashMap::new();
            for msg in msgs {
                by_room.entry(msg.room.clone()).or_default().push(msg);
            }
            for (room, _) in &grown {
                if let Some(mut mine) = by_room.remove(&room.name) {
                    mine.sort_by_key(|m| m.seq);
                    room.arrived(mine);
                }
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, "reading other nodes' messages failed");
            return;
        }
    }
    for (room, seq) in grown {
        if room.delivered() < seq {
            read_up_to(&room, store, seq);
        }
    }
}

/// Reads `room`'s messages up to `seq` from the store into its log.
fn read_up_to(room: &Room, store: &dyn Store, seq: u64) {
    // A room still loading gets its log from the store as it opens.
    if room.ready.get().is_none() {
        return;
    }
    match room.read_up_to(store, seq) {
        Ok(true) => {}
        // Only retention makes a hole in committed numbers.
        Ok(false) => {
            tracing::warn!(room = %room.name, seq, "messages pruned before this node read them")
        }
        Err(err) => {
            tracing::warn!(error = %err, room = %room.name, "reading other nodes' messages failed")
        }
    }
}
