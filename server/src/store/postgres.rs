//! The PostgreSQL store (`--database postgres://…`): the same tables as the
//! SQLite store, in a database a team already runs and backs up.
//!
//! Calls are blocking, like SQLite's: the persist thread appends, the hub's
//! blocking pool reads. Connections come from a small pool and are opened
//! again when PostgreSQL went away, so a database restart costs the calls
//! made while it was down (the persist thread retries a batch until it is
//! stored; nothing is acked before) and nothing after.
//!
//! A batch is one transaction of two statements whatever its size (rows go
//! in as arrays through `UNNEST`), committed with PostgreSQL's default
//! `synchronous_commit = on`: durable in the WAL before [`Store::append`]
//! returns.
//!
//! The schema is versioned in `hubbub_schema`; [`MIGRATIONS`] (the SQLite
//! ones, in PostgreSQL's dialect) are applied in order on open, under an
//! advisory lock, so nodes starting together migrate once.
//!
//! **One node per database, for now.** A room's `seq` is given out in the
//! memory of the node that holds the room; two nodes writing one database
//! would hand out the same numbers. So a node holds a session advisory lock
//! ([`NODE_LOCK`]) on a connection of its own for as long as it runs, and a
//! second node refuses to start, with a message saying why. If that
//! connection is lost, appends wait until the lock is held again.

use std::str::FromStr;
use std::time::Duration;

use parking_lot::Mutex;
use postgres::{Client, Config, NoTls};

use super::{Retention, RoomRecord, SessionRecord, Store, StoreError, StoredMessage, UserRecord};
use hubbub_protocol::names::name_key;

/// Schema migrations; `MIGRATIONS[i]` takes the schema from version i to i+1.
const MIGRATIONS: &[&str] = &[
    // 1: rooms with their sequence, messages keyed by (room, seq).
    "CREATE TABLE rooms (
         name TEXT PRIMARY KEY,
         last_seq BIGINT NOT NULL
     );
     CREATE TABLE messages (
         room TEXT NOT NULL,
         seq BIGINT NOT NULL,
         sender TEXT NOT NULL,
         text TEXT NOT NULL,
         sent_at BIGINT NOT NULL,
         client_id TEXT,
         PRIMARY KEY (room, seq)
     );
     CREATE INDEX messages_sent_at ON messages (sent_at);",
    // 2: accounts and their sessions (tokens are stored hashed).
    "CREATE TABLE users (
         name_key TEXT PRIMARY KEY,
         name TEXT NOT NULL,
         password_hash TEXT NOT NULL,
         created_at BIGINT NOT NULL
     );
     CREATE TABLE sessions (
         token_hash TEXT PRIMARY KEY,
         name_key TEXT NOT NULL REFERENCES users (name_key),
         expires_at BIGINT NOT NULL
     );
     CREATE INDEX sessions_expires_at ON sessions (expires_at);",
];

/// Advisory lock key taken while migrating (`'hubbub'` in ASCII, then 1).
const MIGRATE_LOCK: i64 = 0x6875_6262_7562_0001;
/// Advisory lock key a running node holds (see the module docs).
pub const NODE_LOCK: i64 = 0x6875_6262_7562_0002;
/// Most idle connections the pool keeps.
const POOL_IDLE: usize = 16;

pub struct PgStore {
    config: Config,
    idle: Mutex<Vec<Client>>,
    /// The connection holding [`NODE_LOCK`].
    node: Mutex<Option<Client>>,
}

impl PgStore {
    /// Connects to `url` (a `postgres://` URL or `key=value` pairs),
    /// migrates the schema and takes the node lock.
    pub fn open(url: &str) -> Result<PgStore, StoreError> {
        let mut config = Config::from_str(url)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        if config.get_application_name().is_none() {
            config.application_name("hubbub");
        }
        let store = PgStore {
            config,
            idle: Mutex::new(Vec::new()),
            node: Mutex::new(None),
        };
        migrate(&mut store.connect()?)?;
        store.hold_node_lock()?;
        Ok(store)
    }

    fn connect(&self) -> Result<Client, StoreError> {
        Ok(self.config.connect(NoTls)?)
    }

    /// A connection from the pool, or a new one.
    fn client(&self) -> Result<Lease<'_>, StoreError> {
        let client = loop {
            match self.idle.lock().pop() {
                Some(client) if client.is_closed() => continue,
                Some(client) => break client,
                None => break self.connect()?,
            }
        };
        Ok(Lease {
            store: self,
            client: Some(client),
        })
    }

    /// Makes sure this node holds [`NODE_LOCK`], connecting again if the
    /// connection that held it was lost.
    fn hold_node_lock(&self) -> Result<(), StoreError> {
        let mut node = self.node.lock();
        if node.as_ref().is_some_and(|c| !c.is_closed()) {
            return Ok(());
        }
        *node = None;
        let mut client = self.connect()?;
        let held: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&NODE_LOCK])?
            .get(0);
        if !held {
            return Err(StoreError::NodeBusy(
                "another hubbub node is using this database; one node per database \
                 for now (README, Deployment)"
                    .into(),
            ));
        }
        *node = Some(client);
        Ok(())
    }
}

impl Drop for PgStore {
    /// A client closes its connection through a runtime of its own, which
    /// cannot run on an async worker (where the hub may be dropped): close
    /// them on a thread of their own.
    fn drop(&mut self) {
        let mut clients = std::mem::take(&mut *self.idle.lock());
        clients.extend(self.node.lock().take());
        if !clients.is_empty() {
            let _ = std::thread::Builder::new()
                .name("hubbub-pg-close".into())
                .spawn(move || drop(clients));
        }
    }
}

/// A pooled connection, handed back when dropped unless it broke.
struct Lease<'a> {
    store: &'a PgStore,
    client: Option<Client>,
}

impl std::ops::Deref for Lease<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client.as_ref().expect("held until drop")
    }
}

impl std::ops::DerefMut for Lease<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("held until drop")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let mut idle = self.store.idle.lock();
            if !client.is_closed() && idle.len() < POOL_IDLE {
                idle.push(client);
            }
        }
    }
}

fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])?;
    // "already exists, skipping" is not news.
    tx.batch_execute("SET LOCAL client_min_messages = warning")?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS hubbub_schema (version INTEGER NOT NULL)")?;
    let version: i32 = match tx.query_opt("SELECT version FROM hubbub_schema", &[])? {
        Some(row) => row.get(0),
        None => {
            tx.execute("INSERT INTO hubbub_schema (version) VALUES (0)", &[])?;
            0
        }
    };
    let known = MIGRATIONS.len() as i64;
    if i64::from(version) > known {
        return Err(StoreError::SchemaTooNew {
            found: version.into(),
            known,
        });
    }
    for (i, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.batch_execute(migration)?;
        tx.execute("UPDATE hubbub_schema SET version = $1", &[&(i as i32 + 1)])?;
        tracing::info!(version = i + 1, "database schema migrated");
    }
    tx.commit()?;
    Ok(())
}

/// `u64` as PostgreSQL's `BIGINT`, saturating.
fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn row_to_message(room: &str, row: &postgres::Row) -> StoredMessage {
    StoredMessage {
        room: room.to_string(),
        seq: row.get::<_, i64>(0) as u64,
        from: row.get(1),
        text: row.get(2),
        sent_at: row.get::<_, i64>(3) as u64,
        client_id: row.get(4),
    }
}

/// The newest `limit` messages below `before`, oldest first.
fn page(
    client: &mut Client,
    room: &str,
    before: u64,
    limit: usize,
) -> Result<Vec<StoredMessage>, StoreError> {
    let rows = client.query(
        "SELECT seq, sender, text, sent_at, client_id FROM messages
         WHERE room = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
        &[&room, &int(before), &(limit as i64)],
    )?;
    Ok(rows
        .iter()
        .rev()
        .map(|row| row_to_message(room, row))
        .collect())
}

impl Store for PgStore {
    fn load_room(
        &self,
        room: &str,
        recent: usize,
        client_ids: usize,
    ) -> Result<RoomRecord, StoreError> {
        let mut client = self.client()?;
        let last_seq: i64 = client
            .query_opt("SELECT last_seq FROM rooms WHERE name = $1", &[&room])?
            .map_or(0, |row| row.get(0));
        let from = last_seq.saturating_sub(client_ids as i64);
        let ids = client
            .query(
                "SELECT sender, client_id, seq FROM messages
                 WHERE room = $1 AND seq > $2 AND client_id IS NOT NULL ORDER BY seq",
                &[&room, &from],
            )?
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get::<_, i64>(2) as u64))
            .collect();
        Ok(RoomRecord {
            last_seq: last_seq as u64,
            recent: page(&mut client, room, u64::MAX, recent)?,
            client_ids: ids,
        })
    }

    fn append(&self, batch: &[StoredMessage]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.hold_node_lock()?;
        let rooms: Vec<&str> = batch.iter().map(|m| m.room.as_str()).collect();
        let seqs: Vec<i64> = batch.iter().map(|m| int(m.seq)).collect();
        let senders: Vec<&str> = batch.iter().map(|m| m.from.as_str()).collect();
        let texts: Vec<&str> = batch.iter().map(|m| m.text.as_str()).collect();
        let sent: Vec<i64> = batch.iter().map(|m| int(m.sent_at)).collect();
        let ids: Vec<Option<&str>> = batch.iter().map(|m| m.client_id.as_deref()).collect();
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        tx.execute(
            "INSERT INTO messages (room, seq, sender, text, sent_at, client_id)
             SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[],
                                  $5::bigint[], $6::text[])",
            &[&rooms, &seqs, &senders, &texts, &sent, &ids],
        )?;
        tx.execute(
            "INSERT INTO rooms (name, last_seq)
             SELECT room, max(seq) FROM UNNEST($1::text[], $2::bigint[]) AS b (room, seq)
             GROUP BY room
             ON CONFLICT (name) DO UPDATE SET last_seq = GREATEST(rooms.last_seq, excluded.last_seq)",
            &[&rooms, &seqs],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn history(
        &self,
        room: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        page(
            &mut *self.client()?,
            room,
            before.unwrap_or(u64::MAX),
            limit,
        )
    }

    fn after(
        &self,
        room: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let rows = self.client()?.query(
            "SELECT seq, sender, text, sent_at, client_id FROM messages
             WHERE room = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            &[&room, &int(after), &(limit as i64)],
        )?;
        Ok(rows.iter().map(|row| row_to_message(room, row)).collect())
    }

    fn active_rooms(&self, since_ms: u64, limit: usize) -> Result<Vec<String>, StoreError> {
        let rows = self.client()?.query(
            "SELECT r.name FROM rooms r JOIN messages m ON m.room = r.name AND m.seq = r.last_seq
             WHERE m.sent_at >= $1 ORDER BY m.sent_at DESC, r.name LIMIT $2",
            &[&int(since_ms), &(limit as i64)],
        )?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    fn prune(&self, retention: Retention, now_ms: u64) -> Result<u64, StoreError> {
        let mut client = self.client()?;
        let mut dropped = 0;
        if let Some(max) = retention.max_count {
            dropped += client.execute(
                "DELETE FROM messages m USING rooms r
                 WHERE r.name = m.room AND m.seq <= r.last_seq - $1",
                &[&int(max)],
            )?;
        }
        if let Some(age) = retention.max_age {
            let cutoff = now_ms.saturating_sub(age.as_millis() as u64);
            dropped +=
                client.execute("DELETE FROM messages WHERE sent_at < $1", &[&int(cutoff)])?;
        }
        Ok(dropped)
    }

    fn create_user(&self, user: &UserRecord) -> Result<bool, StoreError> {
        let inserted = self.client()?.execute(
            "INSERT INTO users (name_key, name, password_hash, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name_key) DO NOTHING",
            &[
                &name_key(&user.name),
                &user.name,
                &user.password_hash,
                &int(user.created_at),
            ],
        )?;
        Ok(inserted == 1)
    }

    fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        Ok(self
            .client()?
            .query_opt(
                "SELECT name, password_hash, created_at FROM users WHERE name_key = $1",
                &[&name_key(name)],
            )?
            .map(|row| UserRecord {
                name: row.get(0),
                password_hash: row.get(1),
                created_at: row.get::<_, i64>(2) as u64,
            }))
    }

    fn create_session(
        &self,
        token_hash: &str,
        name: &str,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        let mut client = self.client()?;
        client.execute(
            "INSERT INTO sessions (token_hash, name_key, expires_at) VALUES ($1, $2, $3)",
            &[&token_hash, &name_key(name), &int(expires_at)],
        )?;
        // Expired sessions are useless; forget them while we are here.
        client.execute(
            "DELETE FROM sessions WHERE expires_at <= $1",
            &[&int(crate::hub::now_ms())],
        )?;
        Ok(())
    }

    fn session(&self, token_hash: &str, now_ms: u64) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self
            .client()?
            .query_opt(
                "SELECT u.name, s.expires_at FROM sessions s JOIN users u ON u.name_key = s.name_key
                 WHERE s.token_hash = $1 AND s.expires_at > $2",
                &[&token_hash, &int(now_ms)],
            )?
            .map(|row| SessionRecord {
                name: row.get(0),
                expires_at: row.get::<_, i64>(1) as u64,
            }))
    }

    fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        self.client()?
            .execute("DELETE FROM sessions WHERE token_hash = $1", &[&token_hash])?;
        Ok(())
    }
}
