//! Who is connected to this node: every connection ([`Conn`]), the users
//! online under each name (one guest per name; an account's several
//! connections under one), the connections per client address, and who
//! is online on the other nodes of a cluster.
//!
//! Each table sits behind its own short lock, never held across an
//! `.await` nor while calling into a room. What a name means across the
//! nodes of a cluster (holds, signals) is the hub's ([`crate::hub`]); this
//! is the node's own view.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use hubbub_protocol::{close, names, ErrorCode, ServerMsg};
use parking_lot::Mutex;
use smallvec::SmallVec;

use crate::outbox::{frame, Close, Outbox, Wake};
use crate::room::Name;
use crate::timers::Stamp;

/// Identifies one connection for its lifetime.
pub type ConnId = u64;

/// One WebSocket (or gateway) connection as the node sees it.
pub struct Conn {
    pub id: ConnId,
    pub outbox: Outbox,
    /// When the peer last sent anything, as a [`Stamp`].
    last_seen: AtomicU32,
    /// Since when (a [`Stamp`], plus one) the socket has taken nothing
    /// while something waits to be written; 0 while it keeps up.
    stalled: AtomicU32,
    /// The signed-in account this connection speaks for; `None` for a guest
    /// (boxed: most connections are guests, and every byte here is paid
    /// per connection).
    pub account: Option<Box<Account>>,
}

impl Wake for Conn {
    fn wake(&self) {
        self.outbox.wake();
    }
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
    /// A connection whose peer was last heard `now`.
    pub fn new(id: ConnId, outbox: Outbox, now: Stamp, account: Option<Account>) -> Conn {
        Conn {
            id,
            outbox,
            last_seen: AtomicU32::new(now),
            stalled: AtomicU32::new(0),
            account: account.map(Box::new),
        }
    }

    /// Its `welcome` is queued: frames for its user (a read marker another
    /// tab moved, a conversation's news) may follow. Before that (an
    /// account's hello waits for the other nodes between claiming the name
    /// and the welcome) they are not sent to it; the client asks for both
    /// after its welcome anyway (its joins bring the markers). The flag
    /// sits in the outbox's padding: every byte of a `Conn` is paid per
    /// connection.
    pub fn welcomed(&self) {
        self.outbox.welcomed.store(true, Ordering::Release);
    }

    /// Whether frames for its user may go to it yet ([`Conn::welcomed`]).
    pub fn is_welcomed(&self) -> bool {
        self.outbox.welcomed.load(Ordering::Acquire)
    }

    /// Serializes `msg` and queues it for this connection alone.
    pub fn send(&self, msg: &ServerMsg) {
        self.outbox.push(&frame(msg));
    }

    /// Records that the peer was heard `now`.
    pub fn touch(&self, now: Stamp) {
        self.last_seen.store(now, Ordering::Relaxed);
    }

    /// When the peer was last heard.
    pub fn last_seen(&self) -> Stamp {
        self.last_seen.load(Ordering::Relaxed)
    }

    /// The writer could not write what waits (`now`): starts the
    /// write-timeout clock if it is not running.
    pub fn stalled(&self, now: Stamp) {
        if self.stalled.load(Ordering::Relaxed) == 0 {
            self.stalled
                .store(now.wrapping_add(1).max(1), Ordering::Relaxed);
        }
    }

    /// Since when the socket has taken nothing, if it is stalled.
    pub fn stalled_since(&self) -> Option<Stamp> {
        match self.stalled.load(Ordering::Relaxed) {
            0 => None,
            since => Some(since.wrapping_sub(1)),
        }
    }

    /// The socket took bytes: stops the write-timeout clock.
    pub fn progressed(&self) {
        if self.stalled.load(Ordering::Relaxed) != 0 {
            self.stalled.store(0, Ordering::Relaxed);
        }
    }
}

/// An online user, in the registry under its [`names::name_key`].
struct User {
    /// The name as the user gave it: one allocation, shared with the
    /// sessions and the rooms' member lists (and with the key, when the
    /// name is already lowercase).
    name: Name,
    /// Every connection of this user: one for a guest (kept inline, no
    /// allocation), any number (up to `max_conns_per_user`) for an account.
    conns: SmallVec<[Arc<Conn>; 1]>,
}

impl User {
    /// The entry for `name` (whose key is `key`) with one connection.
    fn new(name: &str, key: String, conn: &Arc<Conn>) -> (Name, User) {
        let name = Name::from(name);
        // Most names are lowercase already: then key and name are one.
        let key = if key == *name {
            Arc::clone(&name)
        } else {
            Name::from(key)
        };
        let conns = SmallVec::from_buf([Arc::clone(conn)]);
        (key, User { name, conns })
    }

    fn is_account(&self) -> bool {
        self.conns.iter().any(|c| c.account.is_some())
    }
}

/// Counts connections per client IP address (IPv4 as IPv4-mapped IPv6,
/// so a slot is 24 bytes, not 32); see [`Registry::admit_ip`].
type IpCounts = Arc<Mutex<HashMap<Ipv6Addr, usize>>>;

/// One admitted connection from an IP address; dropping it frees the slot.
pub struct IpSlot {
    counts: IpCounts,
    ip: Ipv6Addr,
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

/// The node's tables of connections, users and addresses.
pub struct Registry {
    /// Every open connection, for heartbeats, the idle sweep and shutdown.
    conns: Mutex<HashMap<ConnId, Arc<Conn>>>,
    /// Online users by [`names::name_key`] (see [`User`]).
    users: Mutex<HashMap<Name, User>>,
    /// Set when a user came online here or went: a cluster node then tells
    /// the others ([`Registry::local_users_if_changed`]).
    users_changed: AtomicBool,
    /// Users online on the other nodes of a cluster, by name key, with
    /// their names: whom a `direct` can reach through them.
    remote_users: Mutex<HashMap<String, String>>,
    /// Open connections per client IP address.
    ips: IpCounts,
    max_conns_per_ip: usize,
}

impl Registry {
    pub fn new(max_conns_per_ip: usize) -> Registry {
        Registry {
            conns: Mutex::default(),
            users: Mutex::default(),
            users_changed: AtomicBool::new(false),
            remote_users: Mutex::default(),
            ips: IpCounts::default(),
            max_conns_per_ip,
        }
    }

    /// Adds an open connection.
    pub fn add(&self, conn: &Arc<Conn>) {
        self.conns.lock().insert(conn.id, Arc::clone(conn));
    }

    /// Forgets a closed connection.
    pub fn remove(&self, id: ConnId) {
        self.conns.lock().remove(&id);
    }

    /// Calls `f` for every open connection, under the table's lock (`f`
    /// only queues).
    pub fn each(&self, mut f: impl FnMut(&Arc<Conn>)) {
        for conn in self.conns.lock().values() {
            f(conn);
        }
    }

    /// Every open connection, now.
    pub fn all(&self) -> Vec<Arc<Conn>> {
        self.conns.lock().values().cloned().collect()
    }

    /// Number of open connections.
    pub fn count(&self) -> usize {
        self.conns.lock().len()
    }

    /// Takes `name` for `conn`, or says why not. Returns the name as the
    /// registry keeps it, for the session to share.
    pub fn claim_name(&self, name: &str, conn: &Arc<Conn>) -> Result<Name, (ErrorCode, String)> {
        names::validate_name(name).map_err(|why| (ErrorCode::InvalidName, why))?;
        let mut users = self.users.lock();
        let key = names::name_key(name);
        match users.get_mut(key.as_str()) {
            // Another connection of the same account: a second tab or device.
            Some(user) if conn.account.is_some() && user.is_account() => {
                user.conns.push(Arc::clone(conn));
                if *user.name == *name {
                    return Ok(Arc::clone(&user.name));
                }
                Ok(Name::from(name))
            }
            Some(_) => Err((ErrorCode::NameTaken, format!("{name:?} is taken"))),
            None => {
                let (key, user) = User::new(name, key, conn);
                let name = Arc::clone(&user.name);
                users.insert(key, user);
                self.users_changed.store(true, Ordering::Relaxed);
                Ok(name)
            }
        }
    }

    /// The connection `id` no longer goes by `name`. Returns the name's
    /// key if the name was held here.
    pub fn release_name(&self, name: &str, id: ConnId) -> Option<String> {
        let mut users = self.users.lock();
        let key = names::name_key(name);
        let user = users.get_mut(key.as_str())?;
        user.conns.retain(|c| c.id != id);
        if user.conns.is_empty() {
            users.remove(key.as_str());
            self.users_changed.store(true, Ordering::Relaxed);
        }
        Some(key)
    }

    /// The guest of `conn` goes by `new` instead of `old`.
    pub fn rename(
        &self,
        conn: &Arc<Conn>,
        old: &str,
        new: &str,
    ) -> Result<Name, (ErrorCode, String)> {
        names::validate_name(new).map_err(|why| (ErrorCode::InvalidName, why))?;
        let mut users = self.users.lock();
        let new_key = names::name_key(new);
        if users
            .get(new_key.as_str())
            .is_some_and(|u| u.conns.iter().any(|c| c.id != conn.id))
        {
            return Err((ErrorCode::NameTaken, format!("{new:?} is taken")));
        }
        users.remove(names::name_key(old).as_str());
        let (key, user) = User::new(new, new_key, conn);
        let renamed = Arc::clone(&user.name);
        users.insert(key, user);
        self.users_changed.store(true, Ordering::Relaxed);
        Ok(renamed)
    }

    /// How many connections the user `name` has open here.
    pub fn connections_of(&self, name: &str) -> usize {
        self.users
            .lock()
            .get(names::name_key(name).as_str())
            .map_or(0, |u| u.conns.len())
    }

    /// The user under `key` here: the name and every connection.
    pub fn user(&self, key: &str) -> Option<(Name, Vec<Arc<Conn>>)> {
        let users = self.users.lock();
        let user = users.get(key)?;
        Some((Arc::clone(&user.name), user.conns.to_vec()))
    }

    /// The connections of the user under `key` here that frames meant for
    /// the user may go to: those whose `welcome` is queued
    /// ([`Conn::welcomed`]).
    pub fn welcomed_conns(&self, key: &str) -> Vec<Arc<Conn>> {
        let users = self.users.lock();
        users.get(key).map_or_else(Vec::new, |user| {
            user.conns
                .iter()
                .filter(|conn| conn.is_welcomed())
                .cloned()
                .collect()
        })
    }

    /// How many connections hold the name under `key` here, and whether a
    /// guest holds it (`(0, true)` if nobody does).
    pub fn hold(&self, key: &str) -> (u64, bool) {
        match self.users.lock().get(key) {
            Some(user) => (user.conns.len() as u64, !user.is_account()),
            None => (0, true),
        }
    }

    /// The keys of every name held here.
    pub fn keys(&self) -> Vec<String> {
        self.users.lock().keys().map(|k| k.to_string()).collect()
    }

    /// The names of the users online here, if that changed since the last
    /// call (or `force`).
    pub fn local_users_if_changed(&self, force: bool) -> Option<Vec<Name>> {
        if !self.users_changed.swap(false, Ordering::Relaxed) && !force {
            return None;
        }
        Some(
            self.users
                .lock()
                .values()
                .map(|u| Arc::clone(&u.name))
                .collect(),
        )
    }

    /// Who is online on the other nodes of a cluster (name key → name).
    pub fn set_remote_users(&self, users: HashMap<String, String>) {
        *self.remote_users.lock() = users;
    }

    /// The name of the user under `key` if online on another node.
    pub fn remote_user(&self, key: &str) -> Option<String> {
        self.remote_users.lock().get(key).cloned()
    }

    /// A user of another node was renamed from `from` to `to`.
    pub fn rename_remote_user(&self, from: &str, to: &str) {
        let mut remote = self.remote_users.lock();
        if remote.remove(&names::name_key(from)).is_some() {
            remote.insert(names::name_key(to), to.to_string());
        }
    }

    /// Admits one more connection from `ip`, or `None` past `max_conns_per_ip`.
    pub fn admit_ip(&self, ip: IpAddr) -> Option<IpSlot> {
        let ip = match ip {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        let mut counts = self.ips.lock();
        let n = counts.entry(ip).or_default();
        if *n >= self.max_conns_per_ip {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            counts: Arc::clone(&self.ips),
            ip,
        })
    }

    /// Closes the connections opened with the session `token_hash`.
    pub fn close_session(&self, token_hash: &str) {
        self.each(|conn| {
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
        });
    }
}
