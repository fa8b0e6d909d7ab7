//! Where room messages are kept: the [`Store`] trait and its two
//! implementations, [`SqliteStore`] (the embedded default, durable) and
//! [`MemoryStore`] (nothing survives a restart; for tests and benchmarks of
//! fan-out without persistence).
//!
//! The hub never calls a store under a lock or on an async worker: writes go
//! through the [`crate::persist`] thread (group commit), reads run on
//! `spawn_blocking`.

#[doc(hidden)]
pub mod contract;
mod memory;
mod postgres;
mod sqlite;

use std::time::Duration;

pub use memory::MemoryStore;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// One room message as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub room: String,
    /// Assigned once, gapless per room, from 1.
    pub seq: u64,
    pub from: String,
    pub text: String,
    /// Milliseconds since the Unix epoch.
    pub sent_at: u64,
    /// The sender's id for the request, for idempotent retries.
    pub client_id: Option<String>,
}

/// What the hub needs to open a room.
#[derive(Debug, Default)]
pub struct RoomRecord {
    /// The last `seq` given out in this room (0 for a new room).
    pub last_seq: u64,
    /// The latest messages, oldest first.
    pub recent: Vec<StoredMessage>,
    /// `(sender, client_id, seq)` of the latest messages that had a
    /// client_id, oldest first: what idempotent retries are checked against.
    pub client_ids: Vec<(String, String, u64)>,
}

/// How long and how much to keep; `None` keeps everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct Retention {
    /// Keep at most this many messages per room.
    pub max_count: Option<u64>,
    /// Drop messages older than this.
    pub max_age: Option<Duration>,
}

/// A registered account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// The name as registered (case kept).
    pub name: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub created_at: u64,
}

/// A logged-in session, found by the hash of its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The account's name.
    pub name: String,
    /// Milliseconds since the Unix epoch.
    pub expires_at: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("postgresql: {0}")]
    Postgres(#[from] ::postgres::Error),
    #[error("{0}")]
    NodeBusy(String),
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("the database schema is version {found}, newer than this server knows ({known})")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("password hashing: {0}")]
    Hash(String),
}

/// A place to keep room messages. Implementations are blocking.
pub trait Store: Send + Sync + 'static {
    /// The room's last `seq`, its latest `recent` messages, and the client
    /// ids of its latest `client_ids` messages.
    fn load_room(
        &self,
        room: &str,
        recent: usize,
        client_ids: usize,
    ) -> Result<RoomRecord, StoreError>;

    /// Stores a batch in one transaction; durable when this returns `Ok`
    /// (as durable as the implementation promises).
    fn append(&self, batch: &[StoredMessage]) -> Result<(), StoreError>;

    /// Up to `limit` messages of `room` with `seq < before` (all if `None`),
    /// the newest of them, oldest first.
    fn history(
        &self,
        room: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError>;

    /// Up to `limit` messages of `room` with `seq > after`, oldest first:
    /// how a reader that fell behind the room's in-memory log catches up.
    fn after(&self, room: &str, after: u64, limit: usize)
        -> Result<Vec<StoredMessage>, StoreError>;

    /// Rooms whose latest message was sent at or after `since_ms`, newest
    /// first, at most `limit`: the directory's recently active rooms.
    fn active_rooms(&self, since_ms: u64, limit: usize) -> Result<Vec<String>, StoreError>;

    /// Drops what `retention` says to drop; returns how many messages went.
    fn prune(&self, retention: Retention, now_ms: u64) -> Result<u64, StoreError>;

    /// Registers an account; `false` if the name (ignoring case) is taken.
    fn create_user(&self, user: &UserRecord) -> Result<bool, StoreError>;

    /// The account named `name` (ignoring case).
    fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError>;

    /// Records a session of account `name`, keyed by its token's hash.
    fn create_session(
        &self,
        token_hash: &str,
        name: &str,
        expires_at: u64,
    ) -> Result<(), StoreError>;

    /// The session with this token hash, if it exists and has not expired.
    fn session(&self, token_hash: &str, now_ms: u64) -> Result<Option<SessionRecord>, StoreError>;

    /// Ends a session (logout). Ending an unknown one is not an error.
    fn delete_session(&self, token_hash: &str) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_keeps_the_contract() {
        contract::messages(&MemoryStore::default());
        contract::accounts(&MemoryStore::default());
    }

    #[test]
    fn sqlite_store_keeps_the_account_contract() {
        let dir = tempfile::tempdir().unwrap();
        contract::accounts(&SqliteStore::open(dir.path()).unwrap());
        let reopened = SqliteStore::open(dir.path()).unwrap();
        assert!(reopened.user("ALICE").unwrap().is_some());
    }

    #[test]
    fn sqlite_store_keeps_the_contract_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        contract::messages(&SqliteStore::open(dir.path()).unwrap());
        let reopened = SqliteStore::open(dir.path()).unwrap();
        let record = reopened.load_room("lobby", 10, 10).unwrap();
        assert_eq!(record.last_seq, 5);
        assert_eq!(record.recent.len(), 1);
        assert_eq!(reopened.load_room("kitchen", 10, 10).unwrap().last_seq, 1);
    }
}
