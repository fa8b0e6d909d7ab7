//! The embedded default store: one SQLite file, `hubbub.db`, in the data
//! directory.
//!
//! WAL mode with `synchronous = FULL`: a batch is fsynced to the WAL before
//! [`Store::append`] returns, so an acknowledged message survives a process
//! crash and a power cut alike (on storage that honours fsync). Writes use
//! one connection (the persist thread is the only writer); reads use
//! another, so history reads never wait for a commit.
//!
//! The schema is versioned with `PRAGMA user_version`; [`MIGRATIONS`] are
//! applied in order on open.

use std::collections::HashMap;
use std::path::Path;

use parking_lot::Mutex;
use rusqlite::{params, Connection, OptionalExtension};

use super::{
    attachments_from_json, attachments_to_json, deleted_quote, from_json, mentions_to_json,
    to_json, Accounts, ConversationRecord, Conversations, FileReaders, FileRecord, Files, Fold,
    Messages, Party, Retention, RoomRecord, SearchQuery, SessionRecord, Store, StoreError,
    StoredMessage, UserRecord,
};
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
    // 3: uploaded files (their bytes are under files/, by SHA-256).
    "CREATE TABLE files (
         id TEXT PRIMARY KEY,
         name TEXT NOT NULL,
         size INTEGER NOT NULL,
         mime TEXT NOT NULL,
         sha256 TEXT NOT NULL,
         uploader TEXT NOT NULL,
         uploader_key TEXT NOT NULL,
         uploaded_at INTEGER NOT NULL
     ) STRICT;
     CREATE INDEX files_uploader ON files (uploader_key);",
    // 4: an image's size and thumbnail.
    "ALTER TABLE files ADD COLUMN width INTEGER;
     ALTER TABLE files ADD COLUMN height INTEGER;
     ALTER TABLE files ADD COLUMN thumb_sha256 TEXT;",
    // 5: files in messages: the message keeps their description; who may
    // read a file is a row per message (room, seq) or direct share (reader).
    "ALTER TABLE messages ADD COLUMN attachments TEXT;
     CREATE TABLE file_refs (
         file_id TEXT NOT NULL,
         room TEXT,
         seq INTEGER,
         reader TEXT,
         at INTEGER NOT NULL
     ) STRICT;
     CREATE INDEX file_refs_file ON file_refs (file_id);
     CREATE INDEX file_refs_message ON file_refs (room, seq);",
    // 6: how far each account has read each room.
    "CREATE TABLE read_markers (
         name_key TEXT NOT NULL,
         room TEXT NOT NULL,
         seq INTEGER NOT NULL,
         PRIMARY KEY (name_key, room)
     ) STRICT, WITHOUT ROWID;",
    // 7: full-text search: an FTS5 index of every stored message's words
    // (letters and digits, case folded, diacritics kept so that it finds
    // what the other stores find), with the message's key.
    "CREATE VIRTUAL TABLE messages_fts USING fts5 (
         text, room UNINDEXED, seq UNINDEXED,
         tokenize = 'unicode61 remove_diacritics 0'
     );
     INSERT INTO messages_fts (text, room, seq) SELECT text, room, seq FROM messages;",
    // 8: replies, mentions, and edits, deletions and reactions as event
    // rows folded into their target on commit. An event row is not in the
    // search index; a message's index row is found by `fts_rowid` (set
    // when it is stored), so an edit updates it and a delete drops it
    // without a scan. Replies are found by `reply_seq` (for the quotes a
    // delete empties); `reactions` holds who has which emoji on what.
    "ALTER TABLE messages ADD COLUMN reply_to TEXT;
     ALTER TABLE messages ADD COLUMN reply_seq INTEGER;
     ALTER TABLE messages ADD COLUMN mentions TEXT;
     ALTER TABLE messages ADD COLUMN event TEXT;
     ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE messages ADD COLUMN fts_rowid INTEGER;
     UPDATE messages SET fts_rowid = f.rowid FROM messages_fts f
     WHERE f.room = messages.room AND f.seq = messages.seq;
     CREATE INDEX messages_replies ON messages (room, reply_seq) WHERE reply_seq IS NOT NULL;
     CREATE TABLE reactions (
         room TEXT NOT NULL,
         seq INTEGER NOT NULL,
         emoji TEXT NOT NULL,
         user_key TEXT NOT NULL,
         PRIMARY KEY (room, seq, emoji, user_key)
     ) STRICT, WITHOUT ROWID;",
    // 9: private conversations: who talks with whom in each `@a+b` room
    // (its messages are room messages), found by either person's key;
    // the guests' ones are dropped as a lone server starts.
    "CREATE TABLE conversations (
         room TEXT PRIMARY KEY,
         a_key TEXT NOT NULL,
         a_name TEXT NOT NULL,
         a_guest INTEGER NOT NULL,
         b_key TEXT NOT NULL,
         b_name TEXT NOT NULL,
         b_guest INTEGER NOT NULL,
         opened_at INTEGER NOT NULL
     ) STRICT;
     CREATE INDEX conversations_a ON conversations (a_key);
     CREATE INDEX conversations_b ON conversations (b_key);
     CREATE INDEX conversations_guests ON conversations (room) WHERE a_guest OR b_guest;",
];

/// The columns [`row_to_message`] reads, in its order.
const COLUMNS: &str =
    "seq, sender, text, sent_at, client_id, attachments, reply_to, mentions, event, deleted";

pub struct SqliteStore {
    writer: Mutex<Connection>,
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
        let reader = Connection::open(&path)?;
        reader.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(SqliteStore {
            writer: Mutex::new(writer),
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

/// A `u64` as SQLite's INTEGER, saturating.
fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn row_to_message(room: &str, row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredMessage> {
    Ok(StoredMessage {
        room: room.to_string(),
        seq: row.get::<_, i64>(0)? as u64,
        from: row.get(1)?,
        text: row.get(2)?,
        sent_at: row.get::<_, i64>(3)? as u64,
        client_id: row.get(4)?,
        attachments: attachments_from_json(row.get_ref(5)?.as_str_or_null()?),
        reply_to: from_json(row.get_ref(6)?.as_str_or_null()?),
        mentions: from_json(row.get_ref(7)?.as_str_or_null()?),
        event: from_json(row.get_ref(8)?.as_str_or_null()?),
        deleted: row.get(9)?,
    })
}

/// Folds the event row `msg` into its target (see [`Messages::append`]),
/// inside the commit's transaction.
fn fold(tx: &rusqlite::Transaction<'_>, msg: &StoredMessage) -> Result<(), StoreError> {
    let Some(fold) = Fold::of(msg) else {
        return Ok(());
    };
    let room = msg.room.as_str();
    match fold {
        Fold::Edit {
            target,
            text,
            mentions,
        } => {
            let indexed: Option<Option<i64>> = tx
                .prepare_cached(
                    "UPDATE messages SET text = ?3, mentions = ?4
                     WHERE room = ?1 AND seq = ?2 AND event IS NULL AND deleted = 0
                     RETURNING fts_rowid",
                )?
                .query_row(
                    params![room, int(target), text, mentions_to_json(mentions)],
                    |row| row.get(0),
                )
                .optional()?;
            if let Some(Some(rowid)) = indexed {
                tx.prepare_cached("UPDATE messages_fts SET text = ?2 WHERE rowid = ?1")?
                    .execute(params![rowid, text])?;
            }
        }
        Fold::Delete { target } => {
            let gone: Option<(Option<i64>, String)> = tx
                .prepare_cached(
                    "UPDATE messages SET text = '', attachments = NULL, mentions = NULL, deleted = 1
                     WHERE room = ?1 AND seq = ?2 AND event IS NULL AND deleted = 0
                     RETURNING fts_rowid, sender",
                )?
                .query_row(params![room, int(target)], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .optional()?;
            let Some((rowid, sender)) = gone else {
                return Ok(());
            };
            if let Some(rowid) = rowid {
                tx.prepare_cached("DELETE FROM messages_fts WHERE rowid = ?1")?
                    .execute([rowid])?;
            }
            // Its earlier texts, in the edit rows that replaced them.
            tx.prepare_cached(
                "UPDATE messages SET text = '', mentions = NULL
                 WHERE room = ?1 AND seq > ?2 AND event IS NOT NULL
                   AND json_extract(event, '$.kind') = 'edit'
                   AND json_extract(event, '$.target') = ?2",
            )?
            .execute(params![room, int(target)])?;
            tx.prepare_cached("DELETE FROM file_refs WHERE room = ?1 AND seq = ?2")?
                .execute(params![room, int(target)])?;
            tx.prepare_cached("DELETE FROM reactions WHERE room = ?1 AND seq = ?2")?
                .execute(params![room, int(target)])?;
            tx.prepare_cached(
                "UPDATE messages SET reply_to = ?3 WHERE room = ?1 AND reply_seq = ?2",
            )?
            .execute(params![
                room,
                int(target),
                to_json(Some(&deleted_quote(target, &sender)))
            ])?;
        }
        Fold::React { target, emoji, on } => {
            let user = name_key(&msg.from);
            if on {
                tx.prepare_cached(
                    "INSERT INTO reactions (room, seq, emoji, user_key)
                     SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (
                         SELECT 1 FROM messages
                         WHERE room = ?1 AND seq = ?2 AND event IS NULL AND deleted = 0)
                     ON CONFLICT DO NOTHING",
                )?
                .execute(params![room, int(target), emoji, user])?;
            } else {
                tx.prepare_cached(
                    "DELETE FROM reactions
                     WHERE room = ?1 AND seq = ?2 AND emoji = ?3 AND user_key = ?4",
                )?
                .execute(params![room, int(target), emoji, user])?;
            }
        }
    }
    Ok(())
}

/// The newest `limit` messages below `before`, oldest first.
fn page(
    conn: &Connection,
    room: &str,
    before: u64,
    limit: usize,
) -> Result<Vec<StoredMessage>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM messages WHERE room = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3"
    ))?;
    let before = i64::try_from(before).unwrap_or(i64::MAX);
    let mut messages = stmt
        .query_map(params![room, before, limit as i64], |row| {
            row_to_message(room, row)
        })?
        .collect::<Result<Vec<_>, _>>()?;
    messages.reverse();
    Ok(messages)
}

impl Messages for SqliteStore {
    fn load_room(
        &self,
        room: &str,
        recent: usize,
        client_ids: usize,
    ) -> Result<RoomRecord, StoreError> {
        let conn = self.reader.lock();
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
             WHERE room = ?1 AND seq > ?2 AND client_id IS NOT NULL ORDER BY seq",
        )?;
        let from = last_seq.saturating_sub(client_ids as i64);
        let ids = stmt
            .query_map(params![room, from], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get::<_, i64>(2)? as u64))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RoomRecord {
            last_seq: last_seq as u64,
            recent: page(&conn, room, u64::MAX, recent)?,
            client_ids: ids,
        })
    }

    fn append(&self, batch: &[StoredMessage]) -> Result<(), StoreError> {
        let mut conn = self.writer.lock();
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO messages (room, seq, sender, text, sent_at, client_id, attachments,
                                       reply_to, reply_seq, mentions, event, fts_rowid)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?;
            let mut index = tx
                .prepare_cached("INSERT INTO messages_fts (text, room, seq) VALUES (?1, ?2, ?3)")?;
            let mut bump = tx.prepare_cached(
                "INSERT INTO rooms (name, last_seq) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)",
            )?;
            for msg in batch {
                // A message's words first, so that the message knows its
                // index row; an event row has none.
                let fts_rowid = match msg.event {
                    None => {
                        index.execute(params![msg.text, msg.room, msg.seq as i64])?;
                        Some(tx.last_insert_rowid())
                    }
                    Some(_) => None,
                };
                insert.execute(params![
                    msg.room,
                    msg.seq as i64,
                    msg.from,
                    msg.text,
                    msg.sent_at as i64,
                    msg.client_id,
                    attachments_to_json(&msg.attachments),
                    to_json(msg.reply_to.as_ref()),
                    msg.reply_to.as_ref().map(|q| int(q.seq)),
                    mentions_to_json(&msg.mentions),
                    to_json(msg.event.as_ref()),
                    fts_rowid
                ])?;
                for file in &msg.attachments {
                    tx.prepare_cached(
                        "INSERT INTO file_refs (file_id, room, seq, at) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![
                        file.id,
                        msg.room,
                        msg.seq as i64,
                        msg.sent_at as i64
                    ])?;
                }
                if msg.event.is_some() {
                    fold(&tx, msg)?;
                }
            }
            // Each room's sequence once per batch, not once per message.
            let mut last: HashMap<&str, u64> = HashMap::new();
            for msg in batch {
                let seq = last.entry(msg.room.as_str()).or_default();
                *seq = (*seq).max(msg.seq);
            }
            for (room, seq) in last {
                bump.execute(params![room, seq as i64])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn history(
        &self,
        room: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        page(&self.reader.lock(), room, before.unwrap_or(u64::MAX), limit)
    }

    fn after(
        &self,
        room: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let conn = self.reader.lock();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM messages WHERE room = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
        ))?;
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let messages = stmt
            .query_map(params![room, after, limit as i64], |row| {
                row_to_message(room, row)
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(messages)
    }

    fn message(&self, room: &str, seq: u64) -> Result<Option<StoredMessage>, StoreError> {
        let conn = self.reader.lock();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM messages WHERE room = ?1 AND seq = ?2"
        ))?;
        Ok(stmt
            .query_row(params![room, int(seq)], |row| row_to_message(room, row))
            .optional()?)
    }

    fn reaction_emoji(&self, room: &str, seq: u64) -> Result<Vec<String>, StoreError> {
        let conn = self.reader.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT DISTINCT emoji FROM reactions WHERE room = ?1 AND seq = ?2 ORDER BY emoji",
        )?;
        let emoji = stmt
            .query_map(params![room, int(seq)], |row| row.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(emoji)
    }

    fn active_rooms(&self, since_ms: u64, limit: usize) -> Result<Vec<String>, StoreError> {
        // One primary-key lookup per room: its last message.
        let conn = self.reader.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT r.name FROM rooms r JOIN messages m ON m.room = r.name AND m.seq = r.last_seq
             WHERE m.sent_at >= ?1 AND substr(r.name, 1, 1) <> '@'
             ORDER BY m.sent_at DESC, r.name LIMIT ?2",
        )?;
        let since = i64::try_from(since_ms).unwrap_or(i64::MAX);
        let rooms = stmt
            .query_map(params![since, limit as i64], |row| row.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(rooms)
    }

    fn search(&self, query: &SearchQuery) -> Result<Vec<StoredMessage>, StoreError> {
        // Each word an FTS5 string ("…", inner quotes doubled), the strings
        // AND-ed: whatever the user typed, never FTS5 syntax.
        let fts_query = query
            .words
            .iter()
            .map(|word| format!("\"{}\"", word.replace('"', "\"\"")))
            .collect::<Vec<_>>()
            .join(" AND ");
        // Without a cursor, before everything (no message is sent at
        // i64::MAX).
        let (sent_at, room, seq) = match &query.before {
            Some(at) => (int(at.sent_at), at.room.as_str(), int(at.seq)),
            None => (i64::MAX, "", i64::MAX),
        };
        let conn = self.reader.lock();
        // The newest matches: every row the index has for the words, then
        // the order of results (sent_at, room, seq, descending). Of the
        // conversations, only the reader's ([`super::may_find`]): `@` and
        // its key then `+`, or `+` and its key at the end (`+` is in no
        // name).
        let mut stmt = conn.prepare_cached(
            "SELECT m.seq, m.sender, m.text, m.sent_at, m.client_id, m.attachments,
                    m.reply_to, m.mentions, m.event, m.deleted, m.room
             FROM messages_fts f JOIN messages m ON m.room = f.room AND m.seq = f.seq
             WHERE messages_fts MATCH ?1 AND (?2 IS NULL OR f.room = ?2)
               AND (m.sent_at, m.room, m.seq) < (?3, ?4, ?5)
               AND (substr(m.room, 1, 1) <> '@'
                    OR substr(m.room, 1, length(?7) + 2) = '@' || ?7 || '+'
                    OR substr(m.room, -length(?7) - 1) = '+' || ?7)
             ORDER BY m.sent_at DESC, m.room DESC, m.seq DESC LIMIT ?6",
        )?;
        let found = stmt
            .query_map(
                params![
                    fts_query,
                    query.room,
                    sent_at,
                    room,
                    seq,
                    query.limit as i64,
                    query.reader
                ],
                |row| row_to_message(&row.get::<_, String>(10)?, row),
            )?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(found)
    }

    fn prune(&self, retention: Retention, now_ms: u64) -> Result<u64, StoreError> {
        let conn = self.writer.lock();
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
        if dropped > 0 {
            // What the dropped messages carried is theirs no more.
            conn.execute(
                "DELETE FROM file_refs WHERE room IS NOT NULL AND NOT EXISTS (
                     SELECT 1 FROM messages m WHERE m.room = file_refs.room AND m.seq = file_refs.seq)",
                [],
            )?;
            // Nor are their words found. (One pass over the index, each row
            // a primary-key lookup; a row left behind by a crash between
            // the two deletes is never returned, as search joins messages,
            // and goes with the next prune.)
            conn.execute(
                "DELETE FROM messages_fts WHERE NOT EXISTS (
                     SELECT 1 FROM messages m
                     WHERE m.room = messages_fts.room AND m.seq = messages_fts.seq)",
                [],
            )?;
            conn.execute(
                "DELETE FROM reactions WHERE NOT EXISTS (
                     SELECT 1 FROM messages m WHERE m.room = reactions.room AND m.seq = reactions.seq)",
                [],
            )?;
        }
        Ok(dropped)
    }
}

/// The columns [`row_to_conversation`] reads, in its order.
const CONVERSATION_COLUMNS: &str =
    "c.room, c.a_key, c.a_name, c.a_guest, c.b_key, c.b_name, c.b_guest,
     c.opened_at, coalesce(m.seq, 0), coalesce(m.sent_at, 0)";

fn row_to_conversation(row: &rusqlite::Row<'_>) -> rusqlite::Result<ConversationRecord> {
    let party = |at: usize| -> rusqlite::Result<Party> {
        Ok(Party {
            key: row.get(at)?,
            name: row.get(at + 1)?,
            guest: row.get(at + 2)?,
        })
    };
    Ok(ConversationRecord {
        room: row.get(0)?,
        a: party(1)?,
        b: party(4)?,
        opened_at: row.get::<_, i64>(7)? as u64,
        last_seq: row.get::<_, i64>(8)? as u64,
        last_at: row.get::<_, i64>(9)? as u64,
    })
}

impl SqliteStore {
    /// Deletes the conversations `which` (a condition on `conversations`
    /// with `?1` bound to `key`) picks, with everything their rooms hold,
    /// in one transaction ([`Conversations::drop_conversations`]).
    fn drop_where(&self, which: &str, key: Option<&str>) -> Result<Vec<String>, StoreError> {
        let mut conn = self.writer.lock();
        let tx = conn.transaction()?;
        let gone: Vec<(String, String, String)> = {
            let mut stmt = tx.prepare_cached(&format!(
                "DELETE FROM conversations WHERE {which} RETURNING room, a_key, b_key"
            ))?;
            let bound: Vec<&dyn rusqlite::ToSql> =
                key.iter().map(|key| key as &dyn rusqlite::ToSql).collect();
            let rows = stmt.query_map(bound.as_slice(), |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })?;
            rows.collect::<Result<_, _>>()?
        };
        for (room, a, b) in &gone {
            // Index rows first, found by the messages that own them (a
            // deleted message's went with it; its rowid may be another's
            // since).
            tx.prepare_cached(
                "DELETE FROM messages_fts WHERE rowid IN (
                     SELECT fts_rowid FROM messages
                     WHERE room = ?1 AND deleted = 0 AND fts_rowid IS NOT NULL)",
            )?
            .execute([room])?;
            for sql in [
                "DELETE FROM messages WHERE room = ?1",
                "DELETE FROM reactions WHERE room = ?1",
                "DELETE FROM file_refs WHERE room = ?1",
                // Numbering starts again at 1 if they talk again.
                "DELETE FROM rooms WHERE name = ?1",
            ] {
                tx.prepare_cached(sql)?.execute([room])?;
            }
            // Only its two people can have read it: their markers, by key.
            tx.prepare_cached("DELETE FROM read_markers WHERE name_key IN (?2, ?3) AND room = ?1")?
                .execute(params![room, a, b])?;
        }
        tx.commit()?;
        Ok(gone.into_iter().map(|(room, _, _)| room).collect())
    }
}

impl Conversations for SqliteStore {
    fn open_conversation(&self, record: &ConversationRecord) -> Result<(), StoreError> {
        self.writer.lock().execute(
            "INSERT INTO conversations (room, a_key, a_name, a_guest, b_key, b_name, b_guest,
                                        opened_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (room) DO NOTHING",
            params![
                record.room,
                record.a.key,
                record.a.name,
                record.a.guest,
                record.b.key,
                record.b.name,
                record.b.guest,
                int(record.opened_at)
            ],
        )?;
        Ok(())
    }

    fn conversations(
        &self,
        key: &str,
        limit: usize,
    ) -> Result<Vec<ConversationRecord>, StoreError> {
        // The user's rows by either index; each one's latest message by
        // two primary-key lookups (its room's greatest seq, then it).
        let conn = self.reader.lock();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations c
             LEFT JOIN messages m ON m.room = c.room
                 AND m.seq = (SELECT max(seq) FROM messages WHERE room = c.room)
             WHERE c.a_key = ?1 OR c.b_key = ?1
             ORDER BY coalesce(m.sent_at, c.opened_at) DESC, c.room LIMIT ?2"
        ))?;
        let found = stmt
            .query_map(params![key, limit as i64], row_to_conversation)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(found)
    }

    fn drop_conversations(&self, key: &str) -> Result<Vec<String>, StoreError> {
        self.drop_where("a_key = ?1 OR b_key = ?1", Some(key))
    }

    fn drop_guest_conversations(&self) -> Result<Vec<String>, StoreError> {
        self.drop_where("a_guest OR b_guest", None)
    }
}

impl Accounts for SqliteStore {
    fn create_user(&self, user: &UserRecord) -> Result<bool, StoreError> {
        let inserted = self.writer.lock().execute(
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
        let conn = self.writer.lock();
        conn.execute(
            "INSERT INTO sessions (token_hash, name_key, expires_at) VALUES (?1, ?2, ?3)",
            params![token_hash, name_key(name), expires_at as i64],
        )?;
        // Expired sessions are useless; forget them while we are here.
        conn.execute(
            "DELETE FROM sessions WHERE expires_at <= ?1",
            [crate::timers::now_ms() as i64],
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
            .execute("DELETE FROM sessions WHERE token_hash = ?1", [token_hash])?;
        Ok(())
    }

    fn read_marker(&self, name: &str, room: &str) -> Result<Option<u64>, StoreError> {
        Ok(self
            .reader
            .lock()
            .query_row(
                "SELECT seq FROM read_markers WHERE name_key = ?1 AND room = ?2",
                params![name_key(name), room],
                |row| row.get::<_, i64>(0),
            )
            .optional()?
            .map(|seq| seq as u64))
    }

    fn mark_read(&self, name: &str, room: &str, seq: u64) -> Result<u64, StoreError> {
        let marker: i64 = self.writer.lock().query_row(
            "INSERT INTO read_markers (name_key, room, seq) VALUES (?1, ?2, ?3)
             ON CONFLICT (name_key, room) DO UPDATE SET seq = max(seq, excluded.seq)
             RETURNING seq",
            params![name_key(name), room, seq as i64],
            |row| row.get(0),
        )?;
        Ok(marker as u64)
    }
}

impl Files for SqliteStore {
    fn add_file(&self, file: &FileRecord) -> Result<(), StoreError> {
        self.writer.lock().execute(
            "INSERT INTO files (id, name, size, mime, sha256, uploader, uploader_key, uploaded_at,
                                width, height, thumb_sha256)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                file.id,
                file.name,
                file.size as i64,
                file.mime,
                file.sha256,
                file.uploader,
                name_key(&file.uploader),
                file.uploaded_at as i64,
                file.width,
                file.height,
                file.thumb_sha256
            ],
        )?;
        Ok(())
    }

    fn file(&self, id: &str) -> Result<Option<FileRecord>, StoreError> {
        Ok(self
            .reader
            .lock()
            .query_row(
                "SELECT id, name, size, mime, sha256, uploader, uploaded_at, width, height, thumb_sha256
                 FROM files WHERE id = ?1",
                [id],
                |row| {
                    Ok(FileRecord {
                        id: row.get(0)?,
                        name: row.get(1)?,
                        size: row.get::<_, i64>(2)? as u64,
                        mime: row.get(3)?,
                        sha256: row.get(4)?,
                        uploader: row.get(5)?,
                        uploaded_at: row.get::<_, i64>(6)? as u64,
                        width: row.get(7)?,
                        height: row.get(8)?,
                        thumb_sha256: row.get(9)?,
                    })
                },
            )
            .optional()?)
    }

    fn uploaded_bytes(&self, uploader: &str) -> Result<u64, StoreError> {
        let total: i64 = self.reader.lock().query_row(
            "SELECT COALESCE(SUM(size), 0) FROM files WHERE uploader_key = ?1",
            [name_key(uploader)],
            |row| row.get(0),
        )?;
        Ok(total as u64)
    }

    fn share_files(&self, ids: &[String], user: &str, at_ms: u64) -> Result<(), StoreError> {
        let mut conn = self.writer.lock();
        let tx = conn.transaction()?;
        for id in ids {
            tx.prepare_cached("INSERT INTO file_refs (file_id, reader, at) VALUES (?1, ?2, ?3)")?
                .execute(params![id, user, at_ms as i64])?;
        }
        tx.commit()?;
        Ok(())
    }

    fn file_readers(&self, id: &str) -> Result<FileReaders, StoreError> {
        let conn = self.reader.lock();
        let mut stmt =
            conn.prepare_cached("SELECT DISTINCT room, reader FROM file_refs WHERE file_id = ?1")?;
        let rows = stmt
            .query_map([id], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(FileReaders::from_refs(rows))
    }

    fn collect_files(
        &self,
        uploaded_before_ms: u64,
        shared_before_ms: u64,
    ) -> Result<Vec<String>, StoreError> {
        let mut conn = self.writer.lock();
        let tx = conn.transaction()?;
        tx.execute(
            "DELETE FROM file_refs WHERE room IS NULL AND at < ?1",
            [shared_before_ms as i64],
        )?;
        let gone = {
            let mut stmt = tx.prepare(
                "DELETE FROM files WHERE uploaded_at < ?1
                 AND NOT EXISTS (SELECT 1 FROM file_refs r WHERE r.file_id = files.id)
                 RETURNING sha256, thumb_sha256",
            )?;
            let rows = stmt.query_map([uploaded_before_ms as i64], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, Option<String>>(1)?))
            })?;
            rows.collect::<Result<Vec<_>, _>>()?
        };
        let mut unused = Vec::new();
        for sha256 in gone
            .into_iter()
            .flat_map(|(bytes, thumb)| [Some(bytes), thumb])
            .flatten()
        {
            if !unused.contains(&sha256) && !in_use(&tx, &sha256)? {
                unused.push(sha256);
            }
        }
        tx.commit()?;
        Ok(unused)
    }

    fn bytes_in_use(&self, sha256: &str) -> Result<bool, StoreError> {
        in_use(&self.reader.lock(), sha256)
    }
}

/// Whether a file's bytes or thumbnail are the bytes `sha256`.
fn in_use(conn: &Connection, sha256: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM files WHERE sha256 = ?1 OR thumb_sha256 = ?1 LIMIT 1")?
        .exists([sha256])?)
}

impl Store for SqliteStore {}
