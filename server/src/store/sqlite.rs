//! The embedded default store: one SQLite file, `hubbub.db`, in the data
//! directory.
//!
//! WAL mode with `synchronous = FULL`: a batch is fsynced to the WAL before
//! [`Store::append`] returns, so an acknowledged message survives a process
//! crash and a power cut alike (on storage that honours fsync). Writes use
//! one connection (the persist thread is the only writer); reads use
//! another, so history reads never wait for a commit.
//!
//! **Appends go to a journal, not to the per-room tree.** `messages` is keyed
//! by `(room, seq)`, so a commit of many small rooms' messages touched one
//! leaf page per room: a 4 KiB page written to the WAL (and fsynced) for
//! each ~100-byte message. [`Store::append`] instead adds rows to `journal`,
//! an append-only rowid table (a commit writes a few consecutive pages),
//! and every [`FOLD_ROWS`] journal rows moves them into `messages` in
//! `(room, seq)` order, in the same transaction: then each leaf page
//! takes many rows of its room at once. Reads look in both tables; the
//! journal holds at most a fold's worth of rows (scanned, not indexed), and
//! for any room its rows are newer than those in `messages`.
//!
//! The schema is versioned with `PRAGMA user_version`; [`MIGRATIONS`] are
//! applied in order on open.

use std::collections::HashMap;
use std::path::Path;

use parking_lot::Mutex;
use rusqlite::{params, Connection, OptionalExtension};

use super::{Retention, RoomRecord, SessionRecord, Store, StoreError, StoredMessage, UserRecord};
use hubbub_protocol::names::name_key;

/// Schema migrations; `MIGRATIONS[i]` takes the schema from version i to i+1.
const MIGRATIONS: &[&str] = &[
    // 1: rooms with their sequence, messages keyed by (room, seq).
    "CREATE TABLE rooms (
         name TEXT PRIMARY KEY,
         last_seq INTEGER NOT NULL
     ) STRICT;
     CREATE TABLE messages (
         room TEXT NOT NULL,
         seq INTEGER NOT NULL,
         sender TEXT NOT NULL,
         text TEXT NOT NULL,
         sent_at INTEGER NOT NULL,
         client_id TEXT,
         PRIMARY KEY (room, seq)
     ) STRICT, WITHOUT ROWID;
     CREATE INDEX messages_sent_at ON messages (sent_at);",
    // 2: accounts and their sessions (tokens are stored hashed).
    "CREATE TABLE users (
         name_key TEXT PRIMARY KEY,
         name TEXT NOT NULL,
         password_hash TEXT NOT NULL,
         created_at INTEGER NOT NULL
     ) STRICT;
     CREATE TABLE sessions (
         token_hash TEXT PRIMARY KEY,
         name_key TEXT NOT NULL REFERENCES users (name_key),
         expires_at INTEGER NOT NULL
     ) STRICT;
     CREATE INDEX sessions_expires_at ON sessions (expires_at);",
    // 3: the append-only journal of recent messages (see the module doc).
    "CREATE TABLE journal (
         id INTEGER PRIMARY KEY,
         room TEXT NOT NULL,
         seq INTEGER NOT NULL,
         sender TEXT NOT NULL,
         text TEXT NOT NULL,
         sent_at INTEGER NOT NULL,
         client_id TEXT
     ) STRICT;",
];

/// Journal rows that make the next append fold the journal into `messages`.
/// Larger folds write fewer pages per message (at 200 rooms, 4096 rows are
/// about 20 per room) but make the commit that folds take longer, and every
/// read scans up to this many rows.
pub const FOLD_ROWS: usize = 4096;

/// Moves every journal row into `messages`, in key order.
const FOLD: &str = "INSERT INTO messages (room, seq, sender, text, sent_at, client_id)
         SELECT room, seq, sender, text, sent_at, client_id FROM journal ORDER BY room, seq;
     DELETE FROM journal;";

/// Folds the journal into `messages` in a transaction of its own.
fn fold(conn: &Connection) -> Result<(), StoreError> {
    let tx = conn.unchecked_transaction()?;
    tx.execute_batch(FOLD)?;
    tx.commit()?;
    Ok(())
}

/// The single writer connection and what it knows of the journal.
struct Writer {
    conn: Connection,
    /// Rows in `journal` (as of the last commit).
    journal_rows: usize,
}

pub struct SqliteStore {
    writer: Mutex<Writer>,
    reader: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating if needed) `hubbub.db` in `dir`, migrating its schema.
    pub fn open(dir: &Path) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
            path: dir.display().to_string(),
            source,
        })?;
        let path = dir.join("hubbub.db");
        let writer = Connection::open(&path)?;
        writer.pragma_update(None, "journal_mode", "WAL")?;
        writer.pragma_update(None, "synchronous", "FULL")?;
        writer.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&writer)?;
        // A journal left by the last run (a crash, or rows short of a fold).
        fold(&writer)?;
        let reader = Connection::open(&path)?;
        reader.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(SqliteStore {
            writer: Mutex::new(Writer {
                conn: writer,
                journal_rows: 0,
            }),
            reader: Mutex::new(reader),
        })
    }
}

fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::SchemaTooNew {
            found: version,
            known,
        });
    }
    for (i, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(migration)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "database schema migrated");
    }
    Ok(())
}

fn row_to_message(room: &str, row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredMessage> {
    Ok(StoredMessage {
        room: room.to_string(),
        seq: row.get::<_, i64>(0)? as u64,
        from: row.get(1)?,
        text: row.get(2)?,
        sent_at: row.get::<_, i64>(3)? as u64,
        client_id: row.get(4)?,
    })
}

/// Runs `sql` (parameters: room, a seq bound, a limit) over `messages` and
/// over `journal` (`{table}` in `sql`), and returns the messages of both,
/// sorted by `seq`. Call it in a transaction: a fold may commit between the
/// two queries, and only one snapshot sees every message exactly once.
fn both(
    conn: &Connection,
    sql: &str,
    room: &str,
    bound: u64,
    limit: usize,
) -> Result<Vec<StoredMessage>, StoreError> {
    let bound = i64::try_from(bound).unwrap_or(i64::MAX);
    let mut messages = Vec::new();
    for table in ["messages", "journal"] {
        let mut stmt = conn.prepare_cached(&sql.replace("{table}", table))?;
        let rows = stmt.query_map(params![room, bound, limit as i64], |row| {
            row_to_message(room, row)
        })?;
        for row in rows {
            messages.push(row?);
        }
    }
    messages.sort_unstable_by_key(|m| m.seq);
    Ok(messages)
}

/// The newest `limit` messages below `before`, oldest first.
fn page(
    conn: &Connection,
    room: &str,
    before: u64,
    limit: usize,
) -> Result<Vec<StoredMessage>, StoreError> {
    let mut messages = both(
        conn,
        "SELECT seq, sender, text, sent_at, client_id FROM {table}
         WHERE room = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3",
        room,
        before,
        limit,
    )?;
    let extra = messages.len().saturating_sub(limit);
    messages.drain(..extra);
    Ok(messages)
}

impl Store for SqliteStore {
    fn load_room(
        &self,
        room: &str,
        recent: usize,
        client_ids: usize,
    ) -> Result<RoomRecord, StoreError> {
        let reader = self.reader.lock();
        // One snapshot for both tables: a fold may commit meanwhile.
        let conn = reader.unchecked_transaction()?;
        let last_seq: Option<i64> = conn
            .query_row(
                "SELECT last_seq FROM rooms WHERE name = ?1",
                [room],
                |row| row.get(0),
            )
            .optional()?;
        let last_seq = last_seq.unwrap_or(0);
        let mut stmt = conn.prepare_cached(
            "SELECT sender, client_id, seq FROM messages
             WHERE room = ?1 AND seq > ?2 AND client_id IS NOT NULL
             UNION ALL
             SELECT sender, client_id, seq FROM journal
             WHERE room = ?1 AND seq > ?2 AND client_id IS NOT NULL
             ORDER BY seq",
        )?;
        let from = last_seq.saturating_sub(client_ids as i64);
        let ids = stmt
            .query_map(params![room, from], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get::<_, i64>(2)? as u64))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        drop(stmt);
        let recent = page(&conn, room, u64::MAX, recent)?;
        conn.finish()?;
        Ok(RoomRecord {
            last_seq: last_seq as u64,
            recent,
            client_ids: ids,
        })
    }

    fn append(&self, batch: &[StoredMessage]) -> Result<(), StoreError> {
        let mut writer = self.writer.lock();
        let fold = writer.journal_rows + batch.len() >= FOLD_ROWS;
        let tx = writer.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO journal (room, seq, sender, text, sent_at, client_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            // Each room's sequence once per batch, not once per message.
            let mut last_seqs: HashMap<&str, u64> = HashMap::new();
            for msg in batch {
                insert.execute(params![
                    msg.room,
                    msg.seq as i64,
                    msg.from,
                    msg.text,
                    msg.sent_at as i64,
                    msg.client_id
                ])?;
                let last = last_seqs.entry(&msg.room).or_default();
                *last = (*last).max(msg.seq);
            }
            let mut bump = tx.prepare_cached(
                "INSERT INTO rooms (name, last_seq) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)",
            )?;
            for (room, seq) in last_seqs {
                bump.execute(params![room, seq as i64])?;
            }
            if fold {
                tx.execute_batch(FOLD)?;
            }
        }
        tx.commit()?;
        writer.journal_rows = if fold {
            0
        } else {
            writer.journal_rows + batch.len()
        };
        Ok(())
    }

    fn history(
        &self,
        room: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let reader = self.reader.lock();
        let tx = reader.unchecked_transaction()?;
        let messages = page(&tx, room, before.unwrap_or(u64::MAX), limit)?;
        tx.finish()?;
        Ok(messages)
    }

    fn after(
        &self,
        room: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let reader = self.reader.lock();
        let tx = reader.unchecked_transaction()?;
        let mut messages = both(
            &tx,
            "SELECT seq, sender, text, sent_at, client_id FROM {table}
             WHERE room = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            room,
            after,
            limit,
        )?;
        tx.finish()?;
        messages.truncate(limit);
        Ok(messages)
    }

    fn active_rooms(&self, since_ms: u64, limit: usize) -> Result<Vec<String>, StoreError> {
        // One lookup per room: its last message, in `messages` (a
        // primary-key lookup) or in the journal (SQLite indexes the journal
        // for the join on the fly).
        let conn = self.reader.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT r.name, coalesce(j.sent_at, m.sent_at) AS at FROM rooms r
             LEFT JOIN messages m ON m.room = r.name AND m.seq = r.last_seq
             LEFT JOIN journal j ON j.room = r.name AND j.seq = r.last_seq
             WHERE at >= ?1 ORDER BY at DESC, r.name LIMIT ?2",
        )?;
        let since = i64::try_from(since_ms).unwrap_or(i64::MAX);
        let rooms = stmt
            .query_map(params![since, limit as i64], |row| row.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(rooms)
    }

    fn prune(&self, retention: Retention, now_ms: u64) -> Result<u64, StoreError> {
        let mut writer = self.writer.lock();
        // Everything in `messages` first, so one pass over one table suffices.
        fold(&writer.conn)?;
        writer.journal_rows = 0;
        let conn = &writer.conn;
        let mut dropped = 0;
        if let Some(max) = retention.max_count {
            dropped += conn.execute(
                "DELETE FROM messages WHERE (room, seq) IN (
                     SELECT m.room, m.seq FROM messages m JOIN rooms r ON r.name = m.room
                     WHERE m.seq <= r.last_seq - ?1)",
                [max as i64],
            )? as u64;
        }
        if let Some(age) = retention.max_age {
            let cutoff = now_ms.saturating_sub(age.as_millis() as u64);
            dropped +=
                conn.execute("DELETE FROM messages WHERE sent_at < ?1", [cutoff as i64])? as u64;
        }
        Ok(dropped)
    }

    fn create_user(&self, user: &UserRecord) -> Result<bool, StoreError> {
        let inserted = self.writer.lock().conn.execute(
            "INSERT INTO users (name_key, name, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (name_key) DO NOTHING",
            params![
                name_key(&user.name),
                user.name,
                user.password_hash,
                user.created_at as i64
            ],
        )?;
        Ok(inserted == 1)
    }

    fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        Ok(self
            .reader
            .lock()
            .query_row(
                "SELECT name, password_hash, created_at FROM users WHERE name_key = ?1",
                [name_key(name)],
                |row| {
                    Ok(UserRecord {
                        name: row.get(0)?,
                        password_hash: row.get(1)?,
                        created_at: row.get::<_, i64>(2)? as u64,
                    })
                },
            )
            .optional()?)
    }

    fn create_session(
        &self,
        token_hash: &str,
        name: &str,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        let writer = self.writer.lock();
        let conn = &writer.conn;
        conn.execute(
            "INSERT INTO sessions (token_hash, name_key, expires_at) VALUES (?1, ?2, ?3)",
            params![token_hash, name_key(name), expires_at as i64],
        )?;
        // Expired sessions are useless; forget them while we are here.
        conn.execute(
            "DELETE FROM sessions WHERE expires_at <= ?1",
            [crate::hub::now_ms() as i64],
        )?;
        Ok(())
    }

    fn session(&self, token_hash: &str, now_ms: u64) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self
            .reader
            .lock()
            .query_row(
                "SELECT u.name, s.expires_at FROM sessions s JOIN users u ON u.name_key = s.name_key
                 WHERE s.token_hash = ?1 AND s.expires_at > ?2",
                params![token_hash, now_ms as i64],
                |row| {
                    Ok(SessionRecord {
                        name: row.get(0)?,
                        expires_at: row.get::<_, i64>(1)? as u64,
                    })
                },
            )
            .optional()?)
    }

    fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        self.writer
            .lock()
            .conn
            .execute("DELETE FROM sessions WHERE token_hash = ?1", [token_hash])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(room: &str, seq: u64) -> StoredMessage {
        StoredMessage {
            room: room.into(),
            seq,
            from: "alice".into(),
            text: format!("{room} {seq}"),
            sent_at: 1_000 + seq,
            client_id: Some(format!("c-{seq}")),
        }
    }

    fn seqs(messages: &[StoredMessage]) -> Vec<u64> {
        messages.iter().map(|m| m.seq).collect()
    }

    /// The newest seq of `room` that was folded into `messages`.
    fn folded(store: &SqliteStore, room: &str) -> u64 {
        store
            .reader
            .lock()
            .query_row(
                "SELECT coalesce(max(seq), 0) FROM messages WHERE room = ?1",
                [room],
                |row| row.get::<_, i64>(0),
            )
            .unwrap() as u64
    }

    /// Reads that straddle a fold see every message once, in order, whether
    /// it is still in the journal or already in `messages`; reopening folds
    /// the rest and changes nothing a reader sees.
    #[test]
    fn reads_span_the_journal_and_the_folded_messages() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        // Two rooms interleaved, in batches of 100, past one fold.
        let per_room = FOLD_ROWS as u64 / 2 + 150;
        let all: Vec<_> = (1..=per_room)
            .flat_map(|seq| [msg("a", seq), msg("b", seq)])
            .collect();
        for batch in all.chunks(100) {
            store.append(batch).unwrap();
        }
        let boundary = folded(&store, "a");
        assert!(
            boundary > 100 && boundary < per_room - 100,
            "a fold happened and rows were journaled after it: {boundary}"
        );

        let check = |store: &SqliteStore| {
            let page = store.history("a", Some(boundary + 10), 30).unwrap();
            assert_eq!(
                seqs(&page),
                (boundary - 20..=boundary + 9).collect::<Vec<_>>()
            );
            assert_eq!(page[0], msg("a", boundary - 20));
            let page = store.history("a", None, 50).unwrap();
            assert_eq!(seqs(&page), (per_room - 49..=per_room).collect::<Vec<_>>());
            let page = store.after("a", boundary - 5, 10).unwrap();
            assert_eq!(
                seqs(&page),
                (boundary - 4..=boundary + 5).collect::<Vec<_>>()
            );
            assert_eq!(page[9], msg("a", boundary + 5));

            let record = store.load_room("b", 20, 200).unwrap();
            assert_eq!(record.last_seq, per_room);
            assert_eq!(
                seqs(&record.recent),
                (per_room - 19..=per_room).collect::<Vec<_>>()
            );
            let ids: Vec<u64> = record.client_ids.iter().map(|(_, _, seq)| *seq).collect();
            assert_eq!(ids, (per_room - 199..=per_room).collect::<Vec<_>>());
            assert_eq!(record.client_ids[0].1, format!("c-{}", per_room - 199));

            assert_eq!(
                store.active_rooms(1_000 + per_room, 10).unwrap(),
                ["a", "b"]
            );
            assert!(store.active_rooms(1_001 + per_room, 10).unwrap().is_empty());
        };
        check(&store);
        drop(store);
        let reopened = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(
            folded(&reopened, "a"),
            per_room,
            "opening folds the journal"
        );
        check(&reopened);

        // Retention counts the journaled messages too.
        reopened.append(&[msg("a", per_room + 1)]).unwrap();
        let retention = Retention {
            max_count: Some(10),
            max_age: None,
        };
        reopened.prune(retention, 0).unwrap();
        let page = reopened.history("a", None, 100).unwrap();
        assert_eq!(
            seqs(&page),
            (per_room - 8..=per_room + 1).collect::<Vec<_>>()
        );
    }
}
