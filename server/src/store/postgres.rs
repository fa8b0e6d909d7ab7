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
//! in as arrays through `UNNEST`; the hot statements are prepared once per
//! pooled connection, so each costs one round trip), committed with PostgreSQL's default
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
use std::collections::HashMap;

use postgres::{Client, Config, NoTls, Statement};

use super::{
    attachments_from_json, attachments_to_json, deleted_quote, from_json, mentions_to_json,
    to_json, Accounts, Commits, ConversationRecord, Conversations, FileReaders, FileRecord, Files,
    Fold, Held, Messages, News, NodePresence, Party, Retention, RoomRecord, SearchQuery,
    SessionRecord, Signal, Store, StoreError, StoredMessage, UserRecord,
};
use crate::room::CLIENT_ID_WINDOW;
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
    // 3: finding a retry by its client_id when nodes share the database.
    "CREATE INDEX messages_client_id ON messages (room, client_id) WHERE client_id IS NOT NULL;",
    // 4: nodes of a cluster and who each has online in which room.
    "CREATE TABLE nodes (
         id TEXT PRIMARY KEY,
         seen_at BIGINT NOT NULL
     );
     CREATE TABLE presence (
         room TEXT NOT NULL,
         name TEXT NOT NULL,
         node TEXT NOT NULL,
         PRIMARY KEY (room, name, node)
     );
     CREATE INDEX presence_node ON presence (node);",
    // 5: direct messages passed between nodes (kept a minute; dropped by 16).
    "CREATE TABLE directs (
         id BIGSERIAL PRIMARY KEY,
         node TEXT NOT NULL,
         to_name TEXT NOT NULL,
         from_name TEXT NOT NULL,
         frame TEXT NOT NULL,
         sent_at BIGINT NOT NULL
     );",
    // 6: who holds which name on which node (guest names are unique
    // across nodes; accounts' connections are counted across nodes).
    "CREATE TABLE holds (
         name_key TEXT NOT NULL,
         node TEXT NOT NULL,
         conns BIGINT NOT NULL,
         guest BOOLEAN NOT NULL,
         held_at BIGINT NOT NULL,
         PRIMARY KEY (name_key, node)
     );
     CREATE INDEX holds_node ON holds (node);",
    // 7: uploaded files (their bytes are under the node's files/, by SHA-256).
    "CREATE TABLE files (
         id TEXT PRIMARY KEY,
         name TEXT NOT NULL,
         size BIGINT NOT NULL,
         mime TEXT NOT NULL,
         sha256 TEXT NOT NULL,
         uploader TEXT NOT NULL,
         uploader_key TEXT NOT NULL,
         uploaded_at BIGINT NOT NULL
     );
     CREATE INDEX files_uploader ON files (uploader_key);",
    // 8: an image's size and thumbnail.
    "ALTER TABLE files ADD COLUMN width BIGINT, ADD COLUMN height BIGINT,
                      ADD COLUMN thumb_sha256 TEXT;",
    // 9: the bytes of files, so that every node can serve every file.
    "CREATE TABLE blobs (
         sha256 TEXT NOT NULL,
         n INTEGER NOT NULL,
         data BYTEA NOT NULL,
         PRIMARY KEY (sha256, n)
     );",
    // 10: files in messages: the message keeps their description; who may
    // read a file is a row per message (room, seq) or direct share (reader).
    "ALTER TABLE messages ADD COLUMN attachments TEXT;
     CREATE TABLE file_refs (
         file_id TEXT NOT NULL,
         room TEXT,
         seq BIGINT,
         reader TEXT,
         at BIGINT NOT NULL
     );
     CREATE INDEX file_refs_file ON file_refs (file_id);
     CREATE INDEX file_refs_message ON file_refs (room, seq);",
    // 11: secrets the nodes of a cluster share (the guest upload token key).
    "CREATE TABLE secrets (
         name TEXT PRIMARY KEY,
         value BYTEA NOT NULL
     );",
    // 12: how far each account has read each room.
    "CREATE TABLE read_markers (
         name_key TEXT NOT NULL,
         room TEXT NOT NULL,
         seq BIGINT NOT NULL,
         PRIMARY KEY (name_key, room)
     );",
    // 13: full-text search: the words of every message ('simple': case
    // folded, no stemming, no stop words, like the SQLite store's FTS5).
    "CREATE INDEX messages_words ON messages USING GIN (to_tsvector('simple', text));",
    // 14: replies, mentions, and edits, deletions and reactions as event
    // rows folded into their target on commit. Event rows leave the word
    // index (a partial index: search asks for `event IS NULL`); a delete
    // empties the target's text, which takes it out of the index too.
    // Replies are found by `reply_seq` (for the quotes a delete empties);
    // `reactions` holds who has which emoji on what.
    "ALTER TABLE messages ADD COLUMN reply_to TEXT, ADD COLUMN reply_seq BIGINT,
         ADD COLUMN mentions TEXT, ADD COLUMN event TEXT,
         ADD COLUMN deleted BOOLEAN NOT NULL DEFAULT false;
     CREATE INDEX messages_replies ON messages (room, reply_seq) WHERE reply_seq IS NOT NULL;
     CREATE TABLE reactions (
         room TEXT NOT NULL,
         seq BIGINT NOT NULL,
         emoji TEXT NOT NULL,
         user_key TEXT NOT NULL,
         PRIMARY KEY (room, seq, emoji, user_key)
     );
     DROP INDEX messages_words;
     CREATE INDEX messages_words ON messages USING GIN (to_tsvector('simple', text))
         WHERE event IS NULL;",
    // 15: private conversations: who talks with whom in each `@a+b` room
    // (its messages are room messages), found by either person's key;
    // the guests' ones are dropped as a lone server starts.
    "CREATE TABLE conversations (
         room TEXT PRIMARY KEY,
         a_key TEXT NOT NULL,
         a_name TEXT NOT NULL,
         a_guest BOOLEAN NOT NULL,
         b_key TEXT NOT NULL,
         b_name TEXT NOT NULL,
         b_guest BOOLEAN NOT NULL,
         opened_at BIGINT NOT NULL
     );
     CREATE INDEX conversations_a ON conversations (a_key);
     CREATE INDEX conversations_b ON conversations (b_key);
     CREATE INDEX conversations_guests ON conversations (room) WHERE a_guest OR b_guest;",
    // 16: direct messages are conversations now: nothing passes them
    // between nodes any more.
    "DROP TABLE directs;",
];

/// The columns [`row_to_message`] reads, in its order.
const COLUMNS: &str =
    "seq, sender, text, sent_at, client_id, attachments, reply_to, mentions, event, deleted";

/// Bytes per row of `blobs`.
const BLOB_CHUNK: usize = 1024 * 1024;

/// The channel on which a node tells the others a [`Signal`].
const SIGNAL_CHANNEL: &str = "hubbub_signal";

/// Advisory lock class for holding one name (see [`NodePresence::hold`]).
const HOLD_LOCK_CLASS: i32 = 0x6875_6262;
/// Advisory lock class for one file's bytes: shared by [`Files::add_file`]
/// (the bytes must still be there when the record is), exclusive by
/// [`Files::collect_files`] (while it deletes bytes no file has).
const BLOB_LOCK_CLASS: i32 = 0x6875_6263;

/// The channel on which a node tells the others in which rooms its
/// presence changed.
const PRESENCE_CHANNEL: &str = "hubbub_presence";
/// The database's clock in milliseconds: every node's heartbeat is judged
/// by one clock.
const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// The channel on which a commit tells every node which rooms grew.
const COMMITS_CHANNEL: &str = "hubbub_commits";
/// Longest `NOTIFY` payload sent (PostgreSQL's limit is 8000 bytes); past
/// it, nodes are told to check every room.
const MAX_NOTICE: usize = 7900;

/// Advisory lock key taken while migrating (`'hubbub'` in ASCII, then 1).
const MIGRATE_LOCK: i64 = 0x6875_6262_7562_0001;
/// Advisory lock taken by [`Files::collect_files`].
const COLLECT_LOCK: i64 = 0x6875_6262_7562_0003;
/// Advisory lock key a running node holds (see the module docs).
pub const NODE_LOCK: i64 = 0x6875_6262_7562_0002;
/// Most idle connections the pool keeps.
const POOL_IDLE: usize = 16;

pub struct PgStore {
    config: Config,
    /// Several nodes share the database (`--cluster`).
    cluster: bool,
    idle: Mutex<Vec<Pooled>>,
    /// The connection holding [`NODE_LOCK`].
    node: Mutex<Option<Client>>,
    /// When that connection was last seen alive.
    node_checked: Mutex<std::time::Instant>,
}

/// How often the connection holding [`NODE_LOCK`] is checked.
const NODE_LOCK_CHECK: Duration = Duration::from_secs(1);

impl PgStore {
    /// Connects to `url` (a `postgres://` URL or `key=value` pairs),
    /// migrates the schema and takes the node lock: exclusive for a lone
    /// node, shared for a node of a `cluster`.
    pub fn open(url: &str, cluster: bool) -> Result<PgStore, StoreError> {
        let mut config = Config::from_str(url)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        if config.get_application_name().is_none() {
            config.application_name("hubbub");
        }
        let store = PgStore {
            config,
            cluster,
            idle: Mutex::new(Vec::new()),
            node: Mutex::new(None),
            node_checked: Mutex::new(std::time::Instant::now()),
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
        let pooled = loop {
            let popped = self.idle.lock().pop();
            match popped {
                Some(pooled) if pooled.client.is_closed() => continue,
                Some(mut pooled) => {
                    if pooled.idle_since.elapsed() >= IDLE_CHECK
                        && pooled.client.is_valid(Duration::from_secs(2)).is_err()
                    {
                        continue;
                    }
                    break pooled;
                }
                None => {
                    break Pooled {
                        client: self.connect()?,
                        statements: HashMap::new(),
                        idle_since: std::time::Instant::now(),
                    }
                }
            }
        };
        Ok(Lease {
            store: self,
            pooled: Some(pooled),
        })
    }

    /// Makes sure this node holds [`NODE_LOCK`], connecting again if the
    /// connection that held it was lost.
    fn hold_node_lock(&self) -> Result<(), StoreError> {
        let mut node = self.node.lock();
        // A blocking client notices a lost connection only when used (a
        // database restart drops the lock with it): ask once a second.
        let mut checked = self.node_checked.lock();
        if node.as_ref().is_some_and(|c| !c.is_closed()) {
            if checked.elapsed() < NODE_LOCK_CHECK {
                return Ok(());
            }
            *checked = std::time::Instant::now();
            if node
                .as_mut()
                .is_some_and(|c| c.is_valid(Duration::from_secs(2)).is_ok())
            {
                return Ok(());
            }
            tracing::warn!(
                "the connection holding this node's database lock was lost; taking it again"
            );
        }
        *checked = std::time::Instant::now();
        *node = None;
        let mut client = self.connect()?;
        let take = if self.cluster {
            "SELECT pg_try_advisory_lock_shared($1)"
        } else {
            "SELECT pg_try_advisory_lock($1)"
        };
        let held: bool = client.query_one(take, &[&NODE_LOCK])?.get(0);
        if !held {
            return Err(StoreError::NodeBusy(if self.cluster {
                "a hubbub node without --cluster is using this database".into()
            } else {
                "another hubbub node is using this database: start every node \
                 with --cluster to share it (README, Deployment)"
                    .into()
            }));
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
        let mut clients: Vec<Client> = std::mem::take(&mut *self.idle.lock())
            .into_iter()
            .map(|pooled| pooled.client)
            .collect();
        clients.extend(self.node.lock().take());
        if !clients.is_empty() {
            let _ = std::thread::Builder::new()
                .name("hubbub-pg-close".into())
                .spawn(move || drop(clients));
        }
    }
}

/// A connection of the pool, with the statements prepared on it: a
/// statement used again costs one round trip instead of two (parse, then
/// bind and execute).
struct Pooled {
    client: Client,
    statements: HashMap<&'static str, Statement>,
    /// When it was handed back to the pool.
    idle_since: std::time::Instant,
}

/// A connection idle longer than this is checked before it is used: a
/// blocking client learns that the database went away (a restart) only
/// when used, and the call that learns it fails.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// A pooled connection, handed back when dropped unless it broke.
struct Lease<'a> {
    store: &'a PgStore,
    pooled: Option<Pooled>,
}

impl Lease<'_> {
    /// `sql` prepared on this connection (once per connection).
    fn prepared(&mut self, sql: &'static str) -> Result<Statement, StoreError> {
        let pooled = self.pooled.as_mut().expect("held until drop");
        if let Some(statement) = pooled.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = pooled.client.prepare(sql)?;
        pooled.statements.insert(sql, statement.clone());
        Ok(statement)
    }
}

impl std::ops::Deref for Lease<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.pooled.as_ref().expect("held until drop").client
    }
}

impl std::ops::DerefMut for Lease<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.pooled.as_mut().expect("held until drop").client
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(mut pooled) = self.pooled.take() {
            pooled.idle_since = std::time::Instant::now();
            let mut idle = self.store.idle.lock();
            if !pooled.client.is_closed() && idle.len() < POOL_IDLE {
                idle.push(pooled);
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

/// Inserts messages (their `seq` given) with one statement.
/// Stores a batch of messages: one statement whatever its size.
const INSERT_MESSAGES: &str =
    "INSERT INTO messages (room, seq, sender, text, sent_at, client_id, attachments,
                           reply_to, reply_seq, mentions, event)
     SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[],
                          $5::bigint[], $6::text[], $7::text[],
                          $8::text[], $9::bigint[], $10::text[], $11::text[])";

fn insert(
    tx: &mut postgres::Transaction<'_>,
    statement: &Statement,
    batch: &[&StoredMessage],
) -> Result<(), StoreError> {
    let rooms: Vec<&str> = batch.iter().map(|m| m.room.as_str()).collect();
    let seqs: Vec<i64> = batch.iter().map(|m| int(m.seq)).collect();
    let senders: Vec<&str> = batch.iter().map(|m| m.from.as_str()).collect();
    let texts: Vec<&str> = batch.iter().map(|m| m.text.as_str()).collect();
    let sent: Vec<i64> = batch.iter().map(|m| int(m.sent_at)).collect();
    let ids: Vec<Option<&str>> = batch.iter().map(|m| m.client_id.as_deref()).collect();
    let files: Vec<Option<String>> = batch
        .iter()
        .map(|m| attachments_to_json(&m.attachments))
        .collect();
    let replies: Vec<Option<String>> = batch.iter().map(|m| to_json(m.reply_to.as_ref())).collect();
    let reply_seqs: Vec<Option<i64>> = batch
        .iter()
        .map(|m| m.reply_to.as_ref().map(|q| int(q.seq)))
        .collect();
    let mentions: Vec<Option<String>> = batch
        .iter()
        .map(|m| mentions_to_json(&m.mentions))
        .collect();
    let events: Vec<Option<String>> = batch.iter().map(|m| to_json(m.event.as_ref())).collect();
    tx.execute(
        statement,
        &[
            &rooms,
            &seqs,
            &senders,
            &texts,
            &sent,
            &ids,
            &files,
            &replies,
            &reply_seqs,
            &mentions,
            &events,
        ],
    )?;
    // Events fold into their targets, in order (rare; no statement when
    // the batch has none).
    for msg in batch.iter().filter(|m| m.event.is_some()) {
        fold(tx, msg)?;
    }
    // Who may read what the messages carry: their rooms (rare; no
    // statement when none do).
    let carried: Vec<(&str, &str, i64, i64)> = batch
        .iter()
        .flat_map(|m| {
            m.attachments
                .iter()
                .map(|a| (a.id.as_str(), m.room.as_str(), int(m.seq), int(m.sent_at)))
        })
        .collect();
    if !carried.is_empty() {
        let ids: Vec<&str> = carried.iter().map(|c| c.0).collect();
        let rooms: Vec<&str> = carried.iter().map(|c| c.1).collect();
        let seqs: Vec<i64> = carried.iter().map(|c| c.2).collect();
        let at: Vec<i64> = carried.iter().map(|c| c.3).collect();
        tx.execute(
            "INSERT INTO file_refs (file_id, room, seq, at)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[])",
            &[&ids, &rooms, &seqs, &at],
        )?;
    }
    Ok(())
}

/// Folds the event row `msg` into its target (see [`Messages::append`]),
/// inside the commit's transaction.
fn fold(tx: &mut postgres::Transaction<'_>, msg: &StoredMessage) -> Result<(), StoreError> {
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
            tx.execute(
                "UPDATE messages SET text = $3, mentions = $4
                 WHERE room = $1 AND seq = $2 AND event IS NULL AND NOT deleted",
                &[&room, &int(target), &text, &mentions_to_json(mentions)],
            )?;
        }
        Fold::Delete { target } => {
            let gone = tx.query_opt(
                "UPDATE messages SET text = '', attachments = NULL, mentions = NULL, deleted = true
                 WHERE room = $1 AND seq = $2 AND event IS NULL AND NOT deleted
                 RETURNING sender",
                &[&room, &int(target)],
            )?;
            let Some(gone) = gone else {
                return Ok(());
            };
            let sender: String = gone.get(0);
            // Its earlier texts, in the edit rows that replaced them.
            tx.execute(
                "UPDATE messages SET text = '', mentions = NULL
                 WHERE room = $1 AND seq > $2 AND event IS NOT NULL
                   AND event::jsonb ->> 'kind' = 'edit'
                   AND (event::jsonb ->> 'target')::bigint = $2",
                &[&room, &int(target)],
            )?;
            tx.execute(
                "DELETE FROM file_refs WHERE room = $1 AND seq = $2",
                &[&room, &int(target)],
            )?;
            tx.execute(
                "DELETE FROM reactions WHERE room = $1 AND seq = $2",
                &[&room, &int(target)],
            )?;
            tx.execute(
                "UPDATE messages SET reply_to = $3 WHERE room = $1 AND reply_seq = $2",
                &[
                    &room,
                    &int(target),
                    &to_json(Some(&deleted_quote(target, &sender))),
                ],
            )?;
        }
        Fold::React { target, emoji, on } => {
            let user = name_key(&msg.from);
            if on {
                tx.execute(
                    "INSERT INTO reactions (room, seq, emoji, user_key)
                     SELECT $1, $2, $3, $4 WHERE EXISTS (
                         SELECT 1 FROM messages
                         WHERE room = $1 AND seq = $2 AND event IS NULL AND NOT deleted)
                     ON CONFLICT DO NOTHING",
                    &[&room, &int(target), &emoji, &user],
                )?;
            } else {
                tx.execute(
                    "DELETE FROM reactions
                     WHERE room = $1 AND seq = $2 AND emoji = $3 AND user_key = $4",
                    &[&room, &int(target), &emoji, &user],
                )?;
            }
        }
    }
    Ok(())
}

/// The `LISTEN` connection behind [`Store::commits`].
struct Listener {
    client: Client,
}

impl Commits for Listener {
    fn wait(&mut self, timeout: Duration) -> Result<Option<News>, StoreError> {
        use postgres::fallible_iterator::FallibleIterator;
        let mut notices = self.client.notifications();
        let Some(first) = notices.timeout_iter(timeout).next()? else {
            return Ok(None);
        };
        let mut news = News::default();
        let mut take = |notice: &postgres::Notification| {
            let payload = notice.payload();
            if notice.channel() == SIGNAL_CHANNEL {
                news.signals.extend(decode_signal(payload));
                return;
            }
            let presence = notice.channel() == PRESENCE_CHANNEL;
            if presence && payload.is_empty() {
                // The one room named "": who is connected at all.
                news.presence.push(String::new());
                return;
            }
            if payload == "*" {
                if presence {
                    news.all_presence = true;
                } else {
                    news.everything = true;
                }
                return;
            }
            for line in payload.lines() {
                if presence {
                    news.presence.push(line.to_string());
                } else if let Some((room, seq)) = line.rsplit_once(' ') {
                    if let Ok(seq) = seq.parse() {
                        news.rooms.push((room.to_string(), seq));
                    }
                }
            }
        };
        take(&first);
        // Whatever else has arrived, in one go.
        let mut more = notices.iter();
        while let Some(notice) = more.next()? {
            take(&notice);
        }
        Ok(Some(news))
    }
}

/// A signal as a `NOTIFY` payload: lines of the sending node, the kind
/// and its fields (names, rooms and token hashes have no line breaks).
fn encode_signal(node: &str, signal: &Signal) -> String {
    match signal {
        Signal::LoggedOut { token_hash } => format!("{node}\nlogout\n{token_hash}"),
        Signal::Typing { room, user } => format!("{node}\ntyping\n{room}\n{user}"),
        Signal::Renamed { from, to } => format!("{node}\nrenamed\n{from}\n{to}"),
        Signal::Read { user, room, seq } => format!("{node}\nread\n{user}\n{room}\n{seq}"),
        Signal::Conversation {
            user,
            room,
            with,
            all,
        } => format!("{node}\nconversation\n{user}\n{room}\n{with}\n{all}"),
        Signal::ConversationEnded { room } => format!("{node}\nended\n{room}"),
    }
}

fn decode_signal(payload: &str) -> Option<(String, Signal)> {
    let mut lines = payload.split('\n');
    let node = lines.next()?.to_string();
    let mut field = || lines.next().map(str::to_string);
    let signal = match field()?.as_str() {
        "logout" => Signal::LoggedOut {
            token_hash: field()?,
        },
        "typing" => Signal::Typing {
            room: field()?,
            user: field()?,
        },
        "renamed" => Signal::Renamed {
            from: field()?,
            to: field()?,
        },
        "read" => Signal::Read {
            user: field()?,
            room: field()?,
            seq: field()?.parse().ok()?,
        },
        "conversation" => Signal::Conversation {
            user: field()?,
            room: field()?,
            with: field()?,
            all: field()?.parse().ok()?,
        },
        "ended" => Signal::ConversationEnded { room: field()? },
        // From a newer node: not for us.
        _ => return None,
    };
    Some((node, signal))
}

/// Tells every node that presence changed in `rooms`.
fn notify_presence(
    client: &mut impl postgres::GenericClient,
    rooms: &[String],
) -> Result<(), StoreError> {
    if rooms.is_empty() {
        return Ok(());
    }
    let mut notice = rooms.join("\n");
    if notice.len() > MAX_NOTICE {
        notice = "*".into();
    }
    client.execute("SELECT pg_notify($1, $2)", &[&PRESENCE_CHANNEL, &notice])?;
    Ok(())
}

impl NodePresence for PgStore {
    fn heartbeat(&self, node: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        // `xmax = 0`: the row was inserted, not updated: this node is new,
        // or was taken for dead (its presence is gone; it must tell again).
        let revived: bool = tx
            .query_one(
                &format!(
                    "INSERT INTO nodes (id, seen_at) VALUES ($1, {NOW_MS})
                     ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at
                     RETURNING xmax = 0"
                ),
                &[&node],
            )?
            .get(0);
        let dead: Vec<String> = tx
            .query(
                &format!("DELETE FROM nodes WHERE seen_at < {NOW_MS} - $1 RETURNING id"),
                &[&(ttl.as_millis() as i64)],
            )?
            .iter()
            .map(|row| row.get(0))
            .collect();
        // Names held by nodes that are gone (a node holding names before
        // its first heartbeat is given the TTL to beat).
        tx.execute(
            &format!(
                "DELETE FROM holds h WHERE held_at < {NOW_MS} - $1
                 AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.id = h.node)"
            ),
            &[&(ttl.as_millis() as i64)],
        )?;
        if !dead.is_empty() {
            tracing::warn!(nodes = ?dead, "nodes silent past the node TTL: their users go offline");
            let mut rooms: Vec<String> = tx
                .query(
                    "DELETE FROM presence WHERE node = ANY($1) RETURNING room",
                    &[&dead],
                )?
                .iter()
                .map(|row| row.get(0))
                .collect();
            rooms.sort_unstable();
            rooms.dedup();
            notify_presence(&mut tx, &rooms)?;
        }
        tx.commit()?;
        Ok(revived)
    }

    fn publish(&self, node: &str, changes: &[(String, String, bool)]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        let (on, off): (Vec<_>, Vec<_>) = changes.iter().partition(|(_, _, online)| *online);
        let columns = |list: &[&(String, String, bool)]| -> (Vec<String>, Vec<String>) {
            list.iter()
                .map(|(room, name, _)| (room.clone(), name.clone()))
                .unzip()
        };
        let (rooms, names) = columns(&on);
        if !rooms.is_empty() {
            tx.execute(
                "INSERT INTO presence (room, name, node)
                 SELECT r, n, $3 FROM UNNEST($1::text[], $2::text[]) AS c (r, n)
                 ON CONFLICT DO NOTHING",
                &[&rooms, &names, &node],
            )?;
        }
        let (rooms, names) = columns(&off);
        if !rooms.is_empty() {
            tx.execute(
                "DELETE FROM presence p USING UNNEST($1::text[], $2::text[]) AS c (r, n)
                 WHERE p.room = c.r AND p.name = c.n AND p.node = $3",
                &[&rooms, &names, &node],
            )?;
        }
        let mut touched: Vec<String> = changes.iter().map(|(room, _, _)| room.clone()).collect();
        touched.sort_unstable();
        touched.dedup();
        notify_presence(&mut tx, &touched)?;
        tx.commit()?;
        Ok(())
    }

    fn others(
        &self,
        node: &str,
        rooms: &[String],
    ) -> Result<Vec<(String, String, u64)>, StoreError> {
        Ok(self
            .client()?
            .query(
                "SELECT p.room, p.name, count(*) FROM presence p JOIN nodes n ON n.id = p.node
                 WHERE p.room = ANY($1) AND p.node <> $2
                 GROUP BY p.room, p.name",
                &[&rooms, &node],
            )?
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get::<_, i64>(2) as u64))
            .collect())
    }

    fn signal(&self, node: &str, signal: &Signal) -> Result<(), StoreError> {
        let payload = encode_signal(node, signal);
        self.client()?
            .execute("SELECT pg_notify($1, $2)", &[&SIGNAL_CHANNEL, &payload])?;
        Ok(())
    }

    fn hold(
        &self,
        node: &str,
        key: &str,
        conns: u64,
        guest: bool,
        exclusive: bool,
    ) -> Result<bool, StoreError> {
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&HOLD_LOCK_CLASS, &key],
        )?;
        if exclusive {
            let elsewhere = tx
                .query_opt(
                    "SELECT 1 FROM holds WHERE name_key = $1 AND node <> $2 LIMIT 1",
                    &[&key, &node],
                )?
                .is_some();
            if elsewhere {
                return Ok(false);
            }
        }
        if conns == 0 {
            tx.execute(
                "DELETE FROM holds WHERE name_key = $1 AND node = $2",
                &[&key, &node],
            )?;
        } else {
            tx.execute(
                &format!(
                    "INSERT INTO holds (name_key, node, conns, guest, held_at)
                     VALUES ($1, $2, $3, $4, {NOW_MS})
                     ON CONFLICT (name_key, node) DO UPDATE
                     SET conns = excluded.conns, guest = excluded.guest,
                         held_at = excluded.held_at"
                ),
                &[&key, &node, &int(conns), &guest],
            )?;
        }
        tx.commit()?;
        Ok(true)
    }

    fn guest_holds(&self, node: &str, key: &str) -> Result<bool, StoreError> {
        Ok(self
            .client()?
            .query_opt(
                "SELECT 1 FROM holds WHERE name_key = $1 AND node = $2 AND guest AND conns > 0",
                &[&key, &node],
            )?
            .is_some())
    }

    fn shared_secret(&self, name: &str, fresh: &[u8; 32]) -> Result<[u8; 32], StoreError> {
        let mut client = self.client()?;
        client.execute(
            "INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            &[&name, &&fresh[..]],
        )?;
        let value: Vec<u8> = client
            .query_one("SELECT value FROM secrets WHERE name = $1", &[&name])?
            .get(0);
        value
            .try_into()
            .map_err(|_| StoreError::Corrupt(format!("the shared secret {name:?} is not 32 bytes")))
    }

    fn held_elsewhere(&self, node: &str, key: &str) -> Result<Held, StoreError> {
        let row = self.client()?.query_one(
            "SELECT coalesce(sum(conns), 0)::bigint, coalesce(bool_or(guest), false)
             FROM holds WHERE name_key = $1 AND node <> $2",
            &[&key, &node],
        )?;
        Ok(Held {
            conns: row.get::<_, i64>(0).max(0) as u64,
            guest: row.get(1),
        })
    }

    fn leave(&self, node: &str) -> Result<(), StoreError> {
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        let mut rooms: Vec<String> = tx
            .query(
                "DELETE FROM presence WHERE node = $1 RETURNING room",
                &[&node],
            )?
            .iter()
            .map(|row| row.get(0))
            .collect();
        tx.execute("DELETE FROM nodes WHERE id = $1", &[&node])?;
        tx.execute("DELETE FROM holds WHERE node = $1", &[&node])?;
        rooms.sort_unstable();
        rooms.dedup();
        notify_presence(&mut tx, &rooms)?;
        tx.commit()?;
        Ok(())
    }
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
        attachments: attachments_from_json(row.get(5)),
        reply_to: from_json(row.get(6)),
        mentions: from_json(row.get(7)),
        event: from_json(row.get(8)),
        deleted: row.get(9),
    }
}

/// The newest `limit` messages below `before`, oldest first.
fn page(
    client: &mut impl postgres::GenericClient,
    room: &str,
    before: u64,
    limit: usize,
) -> Result<Vec<StoredMessage>, StoreError> {
    let rows = client.query(
        &format!(
            "SELECT {COLUMNS} FROM messages WHERE room = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
        ),
        &[&room, &int(before), &(limit as i64)],
    )?;
    Ok(rows
        .iter()
        .rev()
        .map(|row| row_to_message(room, row))
        .collect())
}

impl Messages for PgStore {
    fn load_room(
        &self,
        room: &str,
        recent: usize,
        client_ids: usize,
    ) -> Result<RoomRecord, StoreError> {
        let mut client = self.client()?;
        // One snapshot for the three reads: another node may commit to the
        // room meanwhile, and a `last_seq` older than `recent` would put
        // the log off by the messages between (a member would miss them).
        let mut tx = client
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        let last_seq: i64 = tx
            .query_opt("SELECT last_seq FROM rooms WHERE name = $1", &[&room])?
            .map_or(0, |row| row.get(0));
        let from = last_seq.saturating_sub(client_ids as i64);
        let ids = tx
            .query(
                "SELECT sender, client_id, seq FROM messages
                 WHERE room = $1 AND seq > $2 AND client_id IS NOT NULL ORDER BY seq",
                &[&room, &from],
            )?
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get::<_, i64>(2) as u64))
            .collect();
        let recent = page(&mut tx, room, u64::MAX, recent)?;
        tx.commit()?;
        Ok(RoomRecord {
            last_seq: last_seq as u64,
            recent,
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
        let mut client = self.client()?;
        let messages = client.prepared(INSERT_MESSAGES)?;
        let last = client.prepared(
            "INSERT INTO rooms (name, last_seq)
             SELECT room, max(seq) FROM UNNEST($1::text[], $2::bigint[]) AS b (room, seq)
             GROUP BY room
             ON CONFLICT (name) DO UPDATE SET last_seq = GREATEST(rooms.last_seq, excluded.last_seq)",
        )?;
        let mut tx = client.transaction()?;
        insert(&mut tx, &messages, &batch.iter().collect::<Vec<_>>())?;
        tx.execute(&last, &[&rooms, &seqs])?;
        tx.commit()?;
        Ok(())
    }

    fn number_and_append(&self, batch: &mut [StoredMessage]) -> Result<Vec<bool>, StoreError> {
        if !self.cluster {
            // This node numbers its rooms' messages itself.
            self.append(batch)?;
            return Ok(vec![false; batch.len()]);
        }
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        self.hold_node_lock()?;
        let mut client = self.client()?;
        let create = client.prepared(
            "INSERT INTO rooms (name, last_seq) SELECT unnest($1::text[]), 0
             ON CONFLICT (name) DO NOTHING",
        )?;
        let lock = client.prepared(
            "SELECT name, last_seq FROM rooms WHERE name = ANY($1) ORDER BY name FOR UPDATE",
        )?;
        let find_retries = client.prepared(
            "SELECT m.room, m.sender, m.client_id, m.seq FROM messages m
             JOIN UNNEST($1::text[], $2::text[]) AS k (room, client_id)
               ON m.room = k.room AND m.client_id = k.client_id
             JOIN rooms r ON r.name = m.room
             WHERE m.seq > r.last_seq - $3",
        )?;
        let messages = client.prepared(INSERT_MESSAGES)?;
        let advance = client.prepared(
            "UPDATE rooms SET last_seq = b.seq FROM UNNEST($1::text[], $2::bigint[]) AS b (name, seq)
             WHERE rooms.name = b.name AND rooms.last_seq < b.seq",
        )?;
        let notify = client.prepared("SELECT pg_notify($1, $2)")?;
        let mut tx = client.transaction()?;
        // Each room's row, locked in name order (no deadlock between two
        // nodes' batches): the numbers and the retry check below are this
        // transaction's alone until it commits.
        let mut names: Vec<&str> = batch.iter().map(|m| m.room.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let mut last: HashMap<String, i64> = HashMap::with_capacity(names.len());
        // A row can go between its creation and its lock (a conversation
        // dropped meanwhile, [`Conversations::drop_conversations`]):
        // create and lock what is still missing until all are held.
        while last.len() < names.len() {
            let missing: Vec<&str> = names
                .iter()
                .copied()
                .filter(|name| !last.contains_key(*name))
                .collect();
            tx.execute(&create, &[&missing])?;
            last.extend(
                tx.query(&lock, &[&missing])?
                    .iter()
                    .map(|row| (row.get(0), row.get(1))),
            );
        }
        // Retries of messages already stored (sent again through another
        // node after its ack was lost), within the window a room remembers.
        let keyed: Vec<(&str, &str)> = batch
            .iter()
            .filter_map(|m| Some((m.room.as_str(), m.client_id.as_deref()?)))
            .collect();
        let mut stored: HashMap<(String, String, String), i64> = HashMap::new();
        if !keyed.is_empty() {
            let (rooms, ids): (Vec<&str>, Vec<&str>) = keyed.into_iter().unzip();
            for row in tx.query(&find_retries, &[&rooms, &ids, &(CLIENT_ID_WINDOW as i64)])? {
                let (room, sender, id): (String, String, String) =
                    (row.get(0), row.get(1), row.get(2));
                stored.insert((room, name_key(&sender), id), row.get(3));
            }
        }
        let mut retries = Vec::with_capacity(batch.len());
        let mut fresh = Vec::with_capacity(batch.len());
        for (i, msg) in batch.iter_mut().enumerate() {
            let found = msg.client_id.as_ref().and_then(|id| {
                stored
                    .get(&(msg.room.clone(), name_key(&msg.from), id.clone()))
                    .copied()
            });
            match found {
                Some(seq) => {
                    msg.seq = seq as u64;
                    retries.push(true);
                }
                None => {
                    let next = last.get_mut(&msg.room).expect("every room was locked");
                    *next += 1;
                    msg.seq = *next as u64;
                    retries.push(false);
                    fresh.push(i);
                }
            }
        }
        let fresh: Vec<&StoredMessage> = fresh.into_iter().map(|i| &batch[i]).collect();
        if !fresh.is_empty() {
            insert(&mut tx, &messages, &fresh)?;
            let (rooms, seqs): (Vec<&str>, Vec<i64>) =
                last.iter().map(|(room, seq)| (room.as_str(), *seq)).unzip();
            tx.execute(&advance, &[&rooms, &seqs])?;
            let mut notice = String::new();
            for (room, seq) in &last {
                notice.push_str(&format!("{room} {seq}\n"));
            }
            if notice.len() > MAX_NOTICE {
                notice = "*".into();
            }
            tx.execute(&notify, &[&COMMITS_CHANNEL, &notice])?;
        }
        tx.commit()?;
        Ok(retries)
    }

    fn last_seqs(&self, rooms: &[String]) -> Result<Vec<(String, u64)>, StoreError> {
        let mut client = self.client()?;
        let last = client.prepared("SELECT name, last_seq FROM rooms WHERE name = ANY($1)")?;
        Ok(client
            .query(&last, &[&rooms])?
            .iter()
            .map(|row| (row.get(0), row.get::<_, i64>(1) as u64))
            .collect())
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
        let mut client = self.client()?;
        let page = client.prepared(
            "SELECT seq, sender, text, sent_at, client_id, attachments, reply_to, mentions, event,
                    deleted FROM messages WHERE room = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )?;
        let rows = client.query(&page, &[&room, &int(after), &(limit as i64)])?;
        Ok(rows.iter().map(|row| row_to_message(room, row)).collect())
    }

    fn between(&self, spans: &[(String, u64, u64)]) -> Result<Vec<StoredMessage>, StoreError> {
        if spans.is_empty() {
            return Ok(Vec::new());
        }
        let rooms: Vec<&str> = spans.iter().map(|(room, _, _)| room.as_str()).collect();
        let afters: Vec<i64> = spans.iter().map(|(_, after, _)| int(*after)).collect();
        let uptos: Vec<i64> = spans.iter().map(|(_, _, upto)| int(*upto)).collect();
        // One round trip for every room a commit notice named.
        let mut client = self.client()?;
        let between = client.prepared(
            "SELECT m.seq, m.sender, m.text, m.sent_at, m.client_id, m.attachments,
                    m.reply_to, m.mentions, m.event, m.deleted, m.room
             FROM UNNEST($1::text[], $2::bigint[], $3::bigint[]) AS s (room, after, upto)
             JOIN messages m ON m.room = s.room AND m.seq > s.after AND m.seq <= s.upto
             ORDER BY m.room, m.seq",
        )?;
        let rows = client.query(&between, &[&rooms, &afters, &uptos])?;
        Ok(rows
            .iter()
            .map(|row| row_to_message(row.get(10), row))
            .collect())
    }

    fn message(&self, room: &str, seq: u64) -> Result<Option<StoredMessage>, StoreError> {
        let row = self.client()?.query_opt(
            &format!("SELECT {COLUMNS} FROM messages WHERE room = $1 AND seq = $2"),
            &[&room, &int(seq)],
        )?;
        Ok(row.map(|row| row_to_message(room, &row)))
    }

    fn reaction_emoji(&self, room: &str, seq: u64) -> Result<Vec<String>, StoreError> {
        let rows = self.client()?.query(
            "SELECT DISTINCT emoji FROM reactions WHERE room = $1 AND seq = $2 ORDER BY emoji",
            &[&room, &int(seq)],
        )?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    fn active_rooms(&self, since_ms: u64, limit: usize) -> Result<Vec<String>, StoreError> {
        let rows = self.client()?.query(
            "SELECT r.name FROM rooms r JOIN messages m ON m.room = r.name AND m.seq = r.last_seq
             WHERE m.sent_at >= $1 AND left(r.name, 1) <> '@'
             ORDER BY m.sent_at DESC, r.name LIMIT $2",
            &[&int(since_ms), &(limit as i64)],
        )?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    fn search(&self, query: &SearchQuery) -> Result<Vec<StoredMessage>, StoreError> {
        // The words are letters and digits only; plainto_tsquery AND-s
        // them and reads no operators. The expression is the index's.
        // Rooms compare byte by byte ("C"), as the other stores do. Of the
        // conversations, only the reader's ([`super::may_find`]): `@` and
        // its key then `+`, or `+` and its key at the end (`+` is in no
        // name).
        let words = query.words.join(" ");
        let (sent_at, room, seq) = match &query.before {
            Some(at) => (int(at.sent_at), at.room.as_str(), int(at.seq)),
            None => (i64::MAX, "", i64::MAX),
        };
        let rows = self.client()?.query(
            "SELECT seq, sender, text, sent_at, client_id, attachments, reply_to, mentions, event,
                    deleted, room FROM messages
             WHERE to_tsvector('simple', text) @@ plainto_tsquery('simple', $1)
               AND event IS NULL AND NOT deleted
               AND ($2::text IS NULL OR room = $2)
               AND (sent_at, room COLLATE \"C\", seq) < ($3, $4::text COLLATE \"C\", $5)
               AND (left(room, 1) <> '@'
                    OR left(room, length($7::text) + 2) = '@' || $7 || '+'
                    OR right(room, length($7::text) + 1) = '+' || $7)
             ORDER BY sent_at DESC, room COLLATE \"C\" DESC, seq DESC LIMIT $6",
            &[
                &words,
                &query.room,
                &sent_at,
                &room,
                &seq,
                &(query.limit as i64),
                &query.reader,
            ],
        )?;
        Ok(rows
            .iter()
            .map(|row| row_to_message(row.get(10), row))
            .collect())
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
        if dropped > 0 {
            // What the dropped messages carried is theirs no more.
            client.execute(
                "DELETE FROM file_refs r WHERE r.room IS NOT NULL AND NOT EXISTS (
                     SELECT 1 FROM messages m WHERE m.room = r.room AND m.seq = r.seq)",
                &[],
            )?;
            client.execute(
                "DELETE FROM reactions r WHERE NOT EXISTS (
                     SELECT 1 FROM messages m WHERE m.room = r.room AND m.seq = r.seq)",
                &[],
            )?;
        }
        Ok(dropped)
    }
}

fn row_to_conversation(row: &postgres::Row) -> ConversationRecord {
    let party = |at: usize| Party {
        key: row.get(at),
        name: row.get(at + 1),
        guest: row.get(at + 2),
    };
    ConversationRecord {
        room: row.get(0),
        a: party(1),
        b: party(4),
        opened_at: row.get::<_, i64>(7) as u64,
        last_seq: row.get::<_, i64>(8) as u64,
        last_at: row.get::<_, i64>(9) as u64,
    }
}

impl PgStore {
    /// Deletes the conversations `which` (a condition on `conversations`,
    /// with `$1` bound to `key` if given) picks, with everything their
    /// rooms hold, in one transaction
    /// ([`Conversations::drop_conversations`]). The word index goes with
    /// the messages.
    fn drop_where(&self, which: &str, key: Option<&str>) -> Result<Vec<String>, StoreError> {
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        let sql = format!("DELETE FROM conversations WHERE {which} RETURNING room, a_key, b_key");
        let gone = match key {
            Some(key) => tx.query(&sql, &[&key])?,
            None => tx.query(&sql, &[])?,
        };
        let mut rooms: Vec<String> = gone.iter().map(|row| row.get(0)).collect();
        if rooms.is_empty() {
            return Ok(rooms);
        }
        rooms.sort_unstable();
        // Their numbering rows first, locked in name order as a commit
        // locks them: a batch of another node numbering in one of them
        // waits for this, then numbers from 1.
        tx.execute(
            "SELECT 1 FROM rooms WHERE name = ANY($1) ORDER BY name FOR UPDATE",
            &[&rooms],
        )?;
        for sql in [
            "DELETE FROM messages WHERE room = ANY($1)",
            "DELETE FROM reactions WHERE room = ANY($1)",
            "DELETE FROM file_refs WHERE room = ANY($1)",
            "DELETE FROM rooms WHERE name = ANY($1)",
        ] {
            tx.execute(sql, &[&rooms])?;
        }
        // Only its two people can have read it: their markers, by key.
        let (mut marked, mut readers): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
        for row in &gone {
            for key in [row.get::<_, String>(1), row.get(2)] {
                marked.push(row.get(0));
                readers.push(key);
            }
        }
        tx.execute(
            "DELETE FROM read_markers r USING UNNEST($1::text[], $2::text[]) AS g (room, name_key)
             WHERE r.name_key = g.name_key AND r.room = g.room",
            &[&marked, &readers],
        )?;
        tx.commit()?;
        Ok(rooms)
    }
}

impl Conversations for PgStore {
    fn open_conversation(&self, record: &ConversationRecord) -> Result<(), StoreError> {
        self.client()?.execute(
            "INSERT INTO conversations (room, a_key, a_name, a_guest, b_key, b_name, b_guest,
                                        opened_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (room) DO NOTHING",
            &[
                &record.room,
                &record.a.key,
                &record.a.name,
                &record.a.guest,
                &record.b.key,
                &record.b.name,
                &record.b.guest,
                &int(record.opened_at),
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
        // one primary-key lookup.
        let rows = self.client()?.query(
            "SELECT c.room, c.a_key, c.a_name, c.a_guest, c.b_key, c.b_name, c.b_guest,
                    c.opened_at, coalesce(m.seq, 0), coalesce(m.sent_at, 0)
             FROM conversations c
             LEFT JOIN LATERAL (
                 SELECT seq, sent_at FROM messages WHERE room = c.room ORDER BY seq DESC LIMIT 1
             ) m ON true
             WHERE c.a_key = $1 OR c.b_key = $1
             ORDER BY coalesce(m.sent_at, c.opened_at) DESC, c.room COLLATE \"C\" LIMIT $2",
            &[&key, &(limit as i64)],
        )?;
        Ok(rows.iter().map(row_to_conversation).collect())
    }

    fn drop_conversations(&self, key: &str) -> Result<Vec<String>, StoreError> {
        self.drop_where("a_key = $1 OR b_key = $1", Some(key))
    }

    fn drop_guest_conversations(&self) -> Result<Vec<String>, StoreError> {
        self.drop_where("a_guest OR b_guest", None)
    }
}

impl Accounts for PgStore {
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
            &[&int(crate::timers::now_ms())],
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

    fn read_marker(&self, name: &str, room: &str) -> Result<Option<u64>, StoreError> {
        Ok(self
            .client()?
            .query_opt(
                "SELECT seq FROM read_markers WHERE name_key = $1 AND room = $2",
                &[&name_key(name), &room],
            )?
            .map(|row| row.get::<_, i64>(0) as u64))
    }

    fn mark_read(&self, name: &str, room: &str, seq: u64) -> Result<u64, StoreError> {
        let row = self.client()?.query_one(
            "INSERT INTO read_markers (name_key, room, seq) VALUES ($1, $2, $3)
             ON CONFLICT (name_key, room)
             DO UPDATE SET seq = GREATEST(read_markers.seq, excluded.seq)
             RETURNING seq",
            &[&name_key(name), &room, &int(seq)],
        )?;
        Ok(row.get::<_, i64>(0) as u64)
    }
}

impl Files for PgStore {
    fn add_file(&self, file: &FileRecord) -> Result<(), StoreError> {
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        // Bytes the collector deleted between their `put_blob` (which found
        // them there) and this record would be lost: refused instead.
        let mut hashes: Vec<&String> = std::iter::once(&file.sha256)
            .chain(&file.thumb_sha256)
            .collect();
        hashes.sort();
        for sha256 in hashes {
            tx.execute(
                "SELECT pg_advisory_xact_lock_shared($1, hashtext($2))",
                &[&BLOB_LOCK_CLASS, sha256],
            )?;
            let kept =
                tx.query_opt("SELECT 1 FROM blobs WHERE sha256 = $1 AND n = 0", &[sha256])?;
            if kept.is_none() {
                return Err(StoreError::Files(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("the bytes {sha256} are not in the database: upload again"),
                )));
            }
        }
        tx.execute(
            "INSERT INTO files (id, name, size, mime, sha256, uploader, uploader_key, uploaded_at,
                                width, height, thumb_sha256)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            &[
                &file.id,
                &file.name,
                &int(file.size),
                &file.mime,
                &file.sha256,
                &file.uploader,
                &name_key(&file.uploader),
                &int(file.uploaded_at),
                &file.width.map(i64::from),
                &file.height.map(i64::from),
                &file.thumb_sha256,
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn file(&self, id: &str) -> Result<Option<FileRecord>, StoreError> {
        Ok(self
            .client()?
            .query_opt(
                "SELECT id, name, size, mime, sha256, uploader, uploaded_at, width, height, thumb_sha256
                 FROM files WHERE id = $1",
                &[&id],
            )?
            .map(|row| FileRecord {
                id: row.get(0),
                name: row.get(1),
                size: row.get::<_, i64>(2) as u64,
                mime: row.get(3),
                sha256: row.get(4),
                uploader: row.get(5),
                uploaded_at: row.get::<_, i64>(6) as u64,
                width: row.get::<_, Option<i64>>(7).map(|w| w as u32),
                height: row.get::<_, Option<i64>>(8).map(|h| h as u32),
                thumb_sha256: row.get(9),
            }))
    }

    fn put_blob(&self, sha256: &str, bytes: &mut dyn std::io::Read) -> Result<(), StoreError> {
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        // Chunk 0 is written in the same transaction as the rest.
        if tx
            .query_opt(
                "SELECT 1 FROM blobs WHERE sha256 = $1 AND n = 0",
                &[&sha256],
            )?
            .is_some()
        {
            return Ok(());
        }
        let mut chunk = vec![0u8; BLOB_CHUNK];
        for n in 0i32.. {
            let mut filled = 0;
            while filled < chunk.len() {
                match bytes
                    .read(&mut chunk[filled..])
                    .map_err(StoreError::Files)?
                {
                    0 => break,
                    read => filled += read,
                }
            }
            if filled == 0 && n > 0 {
                break;
            }
            tx.execute(
                "INSERT INTO blobs (sha256, n, data) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                &[&sha256, &n, &&chunk[..filled]],
            )?;
            if filled < chunk.len() {
                break;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn get_blob(&self, sha256: &str, out: &mut dyn std::io::Write) -> Result<bool, StoreError> {
        let mut client = self.client()?;
        // One chunk at a time: a file is never whole in memory.
        for n in 0i32.. {
            let Some(row) = client.query_opt(
                "SELECT data FROM blobs WHERE sha256 = $1 AND n = $2",
                &[&sha256, &n],
            )?
            else {
                return Ok(n > 0);
            };
            out.write_all(row.get::<_, &[u8]>(0))
                .map_err(StoreError::Files)?;
        }
        unreachable!("the chunks of one file end")
    }

    fn uploaded_bytes(&self, uploader: &str) -> Result<u64, StoreError> {
        let total: i64 = self
            .client()?
            .query_one(
                "SELECT COALESCE(SUM(size), 0)::BIGINT FROM files WHERE uploader_key = $1",
                &[&name_key(uploader)],
            )?
            .get(0);
        Ok(total as u64)
    }

    fn share_files(&self, ids: &[String], user: &str, at_ms: u64) -> Result<(), StoreError> {
        self.client()?.execute(
            "INSERT INTO file_refs (file_id, reader, at) SELECT unnest($1::text[]), $2, $3",
            &[&ids, &user, &int(at_ms)],
        )?;
        Ok(())
    }

    fn file_readers(&self, id: &str) -> Result<FileReaders, StoreError> {
        let rows = self.client()?.query(
            "SELECT DISTINCT room, reader FROM file_refs WHERE file_id = $1",
            &[&id],
        )?;
        Ok(FileReaders::from_refs(
            rows.iter().map(|row| (row.get(0), row.get(1))),
        ))
    }

    fn collect_files(
        &self,
        uploaded_before_ms: u64,
        shared_before_ms: u64,
    ) -> Result<Vec<String>, StoreError> {
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        // Every node collects; one at a time.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&COLLECT_LOCK])?;
        tx.execute(
            "DELETE FROM file_refs WHERE room IS NULL AND at < $1",
            &[&int(shared_before_ms)],
        )?;
        let gone = tx.query(
            "DELETE FROM files f WHERE f.uploaded_at < $1
             AND NOT EXISTS (SELECT 1 FROM file_refs r WHERE r.file_id = f.id)
             RETURNING f.sha256, f.thumb_sha256",
            &[&int(uploaded_before_ms)],
        )?;
        let mut candidates: Vec<String> = gone
            .iter()
            .flat_map(|row| [Some(row.get(0)), row.get::<_, Option<String>>(1)])
            .flatten()
            .collect();
        candidates.sort();
        candidates.dedup();
        // No file can be recorded with these bytes from here to the commit.
        for sha256 in &candidates {
            tx.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                &[&BLOB_LOCK_CLASS, sha256],
            )?;
        }
        let unused: Vec<String> = tx
            .query(
                "SELECT c FROM unnest($1::text[]) AS c WHERE NOT EXISTS (
                     SELECT 1 FROM files f WHERE f.sha256 = c OR f.thumb_sha256 = c)
                 ORDER BY c",
                &[&candidates],
            )?
            .iter()
            .map(|row| row.get(0))
            .collect();
        tx.execute("DELETE FROM blobs WHERE sha256 = ANY($1)", &[&unused])?;
        tx.commit()?;
        Ok(unused)
    }

    fn bytes_in_use(&self, sha256: &str) -> Result<bool, StoreError> {
        Ok(self
            .client()?
            .query_opt(
                "SELECT 1 FROM files WHERE sha256 = $1 OR thumb_sha256 = $1 LIMIT 1",
                &[&sha256],
            )?
            .is_some())
    }
}

impl Store for PgStore {
    fn ping(&self) -> Result<(), StoreError> {
        self.client()?.simple_query("SELECT 1")?;
        Ok(())
    }

    fn node_presence(&self) -> Option<&dyn NodePresence> {
        self.cluster.then_some(self as &dyn NodePresence)
    }

    fn commits(&self) -> Result<Option<Box<dyn Commits>>, StoreError> {
        if !self.cluster {
            return Ok(None);
        }
        let mut client = self.connect()?;
        client.batch_execute(&format!(
            "LISTEN {COMMITS_CHANNEL}; LISTEN {PRESENCE_CHANNEL};
             LISTEN {SIGNAL_CHANNEL}"
        ))?;
        Ok(Some(Box::new(Listener { client })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_signal_survives_its_notice_and_an_unknown_kind_is_skipped() {
        let signals = [
            Signal::LoggedOut {
                token_hash: "ab12".into(),
            },
            Signal::Typing {
                room: "lobby".into(),
                user: "Zoë".into(),
            },
            Signal::Renamed {
                from: "ann".into(),
                to: "anna".into(),
            },
            Signal::Read {
                user: "Zoë".into(),
                room: "lobby".into(),
                seq: 42,
            },
            Signal::Conversation {
                user: "bob".into(),
                room: "@al.ice+bob".into(),
                with: "Al.ice".into(),
                all: true,
            },
            Signal::ConversationEnded {
                room: "@al.ice+bob".into(),
            },
        ];
        for signal in signals {
            let payload = encode_signal("n1", &signal);
            assert_eq!(decode_signal(&payload), Some(("n1".into(), signal)));
        }
        assert_eq!(decode_signal("n1\nwave\nhi"), None);
        assert_eq!(decode_signal("n1\ntyping\nlobby"), None);
    }
}
