//! Where hubbub keeps what it keeps, behind narrow traits by concern, as
//! centrifuge keeps its broker and presence apart:
//!
//! - [`Messages`]: room messages, numbering, history, catch-up, retention;
//! - [`Accounts`]: accounts and their sessions;
//! - [`Files`]: what is known of each uploaded file (its bytes are kept
//!   apart, content-addressed: see [`crate::files`]);
//! - [`NodePresence`]: what the nodes of a cluster tell each other
//!   (presence, names held, direct messages, [`Signal`]s);
//! - [`Commits`]: the cross-node feed's wake-up.
//!
//! [`Store`] is all a server needs of one backend. Each backend is one
//! file: [`SqliteStore`] (the embedded default, durable), [`PgStore`]
//! (PostgreSQL, and the only one several nodes can share) and
//! [`MemoryStore`] (nothing survives a restart; for tests and benchmarks of
//! fan-out without persistence). One error type, [`StoreError`], for all;
//! [`contract`] holds the behaviour every backend must show.
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

use hubbub_protocol::{names, Attachment, Event, Quote};

pub use memory::MemoryStore;
pub use postgres::PgStore;

pub use sqlite::SqliteStore;

/// One room message as stored. An edit, deletion or reaction is one too
/// (with [`StoredMessage::event`]); storing it also folds it into its
/// target, in the same transaction (see [`Messages::append`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    /// Files the message carries (references to uploads, never bytes).
    /// Storing the message also records that its room may read them
    /// ([`Files::file_readers`]).
    pub attachments: Vec<Attachment>,
    /// The message this one answers, quoted as it was then.
    pub reply_to: Option<Quote>,
    /// The users its text `@name`s, as the server resolved them. An edit
    /// folded into the message replaces them.
    pub mentions: Vec<String>,
    /// Set when this `seq` is an edit, deletion or reaction of an earlier
    /// message rather than a message of its own.
    pub event: Option<Event>,
    /// A delete event was folded into it: its text, files and mentions
    /// are gone (empty); only that a message of its sender was here stays.
    pub deleted: bool,
}

/// What an event row does to its target when it is committed: the
/// backend-neutral reading of [`StoredMessage::event`] every store folds by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fold<'a> {
    /// The target's text and mentions become these.
    Edit {
        target: u64,
        text: &'a str,
        mentions: &'a [String],
    },
    /// The target's text, files, mentions and reactions go; quotes of it
    /// in replies lose their text.
    Delete { target: u64 },
    /// The sender (by name key) puts or takes back `emoji` on the target.
    React {
        target: u64,
        emoji: &'a str,
        on: bool,
    },
}

impl<'a> Fold<'a> {
    /// What `msg` folds into its target, if it is an event.
    fn of(msg: &'a StoredMessage) -> Option<Fold<'a>> {
        Some(match msg.event.as_ref()? {
            Event::Edit { target } => Fold::Edit {
                target: *target,
                text: &msg.text,
                mentions: &msg.mentions,
            },
            Event::Delete { target } => Fold::Delete { target: *target },
            Event::React { target, emoji, on } => Fold::React {
                target: *target,
                emoji,
                on: *on,
            },
        })
    }
}

/// Applies the edit or deletion `event` to the messages of its room it
/// changes, among `msgs` (any run of the room's messages, in order), as
/// every store does at commit: an edit gives a live target (a message, not
/// deleted) its text and mentions; a deletion empties the target and marks
/// it deleted, and empties the edits of it and the quotes of it in
/// replies. Reactions are not kept in messages: nothing to do for them.
/// Returns the `seq`s of the messages it changed. The in-memory store and
/// each room's log ([`crate::room`]) fold by it, so that what they serve
/// is what the store serves.
pub fn fold_messages<'m>(
    event: &StoredMessage,
    msgs: impl IntoIterator<Item = &'m mut StoredMessage>,
) -> Vec<u64> {
    let mut changed = Vec::new();
    match Fold::of(event) {
        Some(Fold::Edit {
            target,
            text,
            mentions,
        }) => {
            if let Some(msg) = msgs
                .into_iter()
                .find(|m| m.seq == target && m.event.is_none() && !m.deleted)
            {
                msg.text = text.to_string();
                msg.mentions = mentions.to_vec();
                changed.push(target);
            }
        }
        Some(Fold::Delete { target }) => {
            let mut msgs: Vec<&mut StoredMessage> = msgs.into_iter().collect();
            // A target that is there but not live (an event, or deleted
            // already) is nobody's to delete. One that is not there (older
            // than the run) was live when the delete was checked.
            if msgs
                .iter()
                .any(|m| m.seq == target && (m.event.is_some() || m.deleted))
            {
                return changed;
            }
            for msg in msgs.iter_mut() {
                if msg.seq == target {
                    msg.text.clear();
                    msg.attachments.clear();
                    msg.mentions.clear();
                    msg.deleted = true;
                } else if msg.event == Some(Event::Edit { target }) && !msg.text.is_empty() {
                    msg.text.clear();
                    msg.mentions.clear();
                } else if let Some(quote) = msg
                    .reply_to
                    .as_mut()
                    .filter(|q| q.seq == target && !q.text.is_empty())
                {
                    *quote = deleted_quote(target, &quote.from);
                } else {
                    continue;
                }
                changed.push(msg.seq);
            }
        }
        Some(Fold::React { .. }) | None => {}
    }
    changed
}

/// The quote replies keep of a deleted message: who, no text.
fn deleted_quote(seq: u64, from: &str) -> Quote {
    Quote {
        seq,
        from: from.to_string(),
        text: String::new(),
    }
}

/// A JSON column as a store keeps it (`None` for none).
fn to_json<T: serde::Serialize>(value: Option<&T>) -> Option<String> {
    value.map(|v| serde_json::to_string(v).expect("protocol types serialize"))
}

/// A message's mentions as a store keeps them: JSON, `None` for none.
fn mentions_to_json(mentions: &[String]) -> Option<String> {
    (!mentions.is_empty()).then(|| to_json(Some(&mentions)).expect("some"))
}

/// What [`to_json`] kept; a value that does not decode is logged and
/// taken for none.
fn from_json<T: serde::de::DeserializeOwned + Default>(json: Option<&str>) -> T {
    match json {
        None => T::default(),
        Some(json) => serde_json::from_str(json).unwrap_or_else(|err| {
            tracing::error!(error = %err, "a stored message's column does not decode");
            T::default()
        }),
    }
}

/// A message's attachments as a store keeps them: JSON, `None` for none.
fn attachments_to_json(attachments: &[Attachment]) -> Option<String> {
    (!attachments.is_empty())
        .then(|| serde_json::to_string(attachments).expect("attachments serialize"))
}

/// The attachments [`attachments_to_json`] kept.
fn attachments_from_json(json: Option<&str>) -> Vec<Attachment> {
    match json {
        None => Vec::new(),
        Some(json) => serde_json::from_str(json).unwrap_or_else(|err| {
            tracing::error!(error = %err, "a stored message's attachments do not decode");
            Vec::new()
        }),
    }
}

/// Who may read an uploaded file besides its uploader.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileReaders {
    /// Rooms with a stored message that carries it: their members may.
    pub rooms: Vec<String>,
    /// Name keys of users a direct message gave it to.
    pub users: Vec<String>,
}

impl FileReaders {
    /// From `file_refs` rows: `(room, reader)`, one of them set.
    fn from_refs(rows: impl IntoIterator<Item = (Option<String>, Option<String>)>) -> FileReaders {
        let mut readers = FileReaders::default();
        for row in rows {
            match row {
                (Some(room), _) => readers.rooms.push(room),
                (None, Some(user)) => readers.users.push(user),
                (None, None) => {}
            }
        }
        readers.rooms.sort();
        readers.users.sort();
        readers
    }
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

/// An uploaded file, as recorded once its bytes are stored whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    /// Random, unguessable (22 characters of base64url).
    pub id: String,
    /// The name the uploader gave (shown, never used as a path).
    pub name: String,
    pub size: u64,
    /// Decided from the bytes ([`crate::files::sniff`]).
    pub mime: String,
    /// Hex SHA-256 of the bytes: where they are, and the `ETag`.
    pub sha256: String,
    /// Who uploaded it (the name as it was then).
    pub uploader: String,
    /// Milliseconds since the Unix epoch.
    pub uploaded_at: u64,
    /// An image's size in pixels (`None` for other files).
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Hex SHA-256 of an image's thumbnail.
    pub thumb_sha256: Option<String>,
}

impl FileRecord {
    /// The file as a message carries it.
    pub fn attachment(&self) -> Attachment {
        Attachment {
            id: self.id.clone(),
            name: self.name.clone(),
            size: self.size,
            mime: self.mime.clone(),
            width: self.width,
            height: self.height,
        }
    }
}

/// A search of stored room messages ([`Messages::search`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    /// What to find, from [`search_words`]: every one must be in a
    /// message, as a whole word, ignoring case. Never empty.
    pub words: Vec<String>,
    /// Only in this room.
    pub room: Option<String>,
    /// The name key of who searches: of the private conversations
    /// ([`hubbub_protocol::names::is_conversation`] rooms), only theirs
    /// are searched; every other room is.
    pub reader: String,
    /// Only messages after this one in the order of results (older):
    /// where the previous page ended.
    pub before: Option<SearchCursor>,
    /// At most this many messages.
    pub limit: usize,
}

/// A message's place in the order of search results: newest first, by
/// `sent_at`, then `room`, then `seq`, all descending (a total order:
/// `(room, seq)` is unique). On the wire it is `"<sent_at>.<seq>.<room>"`,
/// which clients pass back without reading: the room comes last, whole,
/// as a conversation's holds its people's names, which may hold `.`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchCursor {
    pub sent_at: u64,
    pub room: String,
    pub seq: u64,
}

impl SearchCursor {
    /// Where `msg` is in the order of results.
    pub fn at(msg: &StoredMessage) -> SearchCursor {
        SearchCursor {
            sent_at: msg.sent_at,
            room: msg.room.clone(),
            seq: msg.seq,
        }
    }

    /// The cursor [`SearchCursor::encode`] made; `None` if `text` is not one.
    pub fn decode(text: &str) -> Option<SearchCursor> {
        let mut parts = text.splitn(3, '.');
        let sent_at = parts.next()?.parse().ok()?;
        let seq = parts.next()?.parse().ok()?;
        let room = parts.next()?;
        if names::validate_room(room).is_err() && names::conversation_parties(room).is_none() {
            return None;
        }
        Some(SearchCursor {
            sent_at,
            room: room.to_string(),
            seq,
        })
    }

    pub fn encode(&self) -> String {
        format!("{}.{}.{}", self.sent_at, self.seq, self.room)
    }

    /// Whether `msg` comes after this cursor in the order of results.
    pub fn is_before(&self, msg: &StoredMessage) -> bool {
        (msg.sent_at, msg.room.as_str(), msg.seq) < (self.sent_at, self.room.as_str(), self.seq)
    }
}

/// The words of a search query or a message: its runs of letters and
/// digits, lowercased. What is between them (`"`, `*`, `-`, `(`, spaces…)
/// only separates them, so no query is ever syntax to a store.
pub fn search_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
        .collect()
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
    #[error("file storage: {0}")]
    Files(std::io::Error),
    #[error("the store holds something malformed: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether the database could not be reached (as opposed to refusing
    /// what was asked): worth a retry shortly, `unavailable` to a client.
    pub fn is_unreachable(&self) -> bool {
        match self {
            StoreError::Postgres(err) => err.as_db_error().is_none(),
            _ => false,
        }
    }
}

/// What [`Commits::wait`] heard.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct News {
    /// These rooms have messages up to these `seq`s.
    pub rooms: Vec<(String, u64)>,
    /// Something was missed (a notice was too long): check every room.
    pub everything: bool,
    /// Presence changed on another node in these rooms.
    pub presence: Vec<String>,
    /// … in rooms too many to name: check every room's presence.
    pub all_presence: bool,
    /// What other nodes told every node at once, with the teller's id.
    pub signals: Vec<(String, Signal)>,
}

/// Something one node tells every other node at once, for their sockets:
/// not stored, so a node that is not listening at that moment misses it
/// (which only matters for a node cut off from the database, whose
/// sockets are then told nothing else either).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// A session ended (logout): its sockets close with 4501 everywhere.
    LoggedOut { token_hash: String },
    /// `user` is typing in `room`.
    Typing { room: String, user: String },
    /// The guest `from` is now called `to`.
    Renamed { from: String, to: String },
    /// The account `user` has read `room` up to `seq` (the marker is
    /// stored already): for its connections on the other nodes.
    Read {
        user: String,
        room: String,
        seq: u64,
    },
    /// Tell the connections of `user` that have not joined the private
    /// conversation `room` that it has news (`conversation`, with `with`);
    /// with `all`, every connection of `user` (an `open`).
    Conversation {
        user: String,
        room: String,
        with: String,
        all: bool,
    },
    /// The private conversation `room` was deleted (its guest left): its
    /// members get `leave_ok`, and nodes drop the room.
    ConversationEnded { room: String },
}

/// Who holds a name on the other nodes of a cluster ([`NodePresence::held_elsewhere`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Held {
    /// Connections of the name open on other nodes.
    pub conns: u64,
    /// Whether a guest holds it there.
    pub guest: bool,
}

/// Presence across nodes sharing a store: which names each node has
/// online in which room, and which nodes are alive (see [`crate::cluster`]).
pub trait NodePresence: Send + Sync {
    /// Records `node` as alive now and forgets nodes silent for `ttl`, with
    /// what they had online (telling every node). `true` if `node` was not
    /// known (new, or taken for dead meanwhile): it must publish all its
    /// presence again.
    fn heartbeat(&self, node: &str, ttl: Duration) -> Result<bool, StoreError>;
    /// Records, for `node`, names that came online in a room (`true`) or
    /// left it (`false`), and tells the other nodes.
    fn publish(&self, node: &str, changes: &[(String, String, bool)]) -> Result<(), StoreError>;
    /// `(room, name, nodes)`: who is online in `rooms` on nodes other than
    /// `node` (dead ones are forgotten by [`NodePresence::heartbeat`]), and
    /// on how many of them.
    fn others(
        &self,
        node: &str,
        rooms: &[String],
    ) -> Result<Vec<(String, String, u64)>, StoreError>;
    /// `node` stops: what it had online goes (telling every node).
    fn leave(&self, node: &str) -> Result<(), StoreError>;
    /// Tells every other node `signal` now, from `node`.
    fn signal(&self, node: &str, signal: &Signal) -> Result<(), StoreError>;
    /// Records that `node` has `conns` connections of the name whose key
    /// is `key` (0: none; a `guest` name, or an account's). With
    /// `exclusive`, only if no other node holds the name: `false` then
    /// (nothing recorded). Holds of one name are serialized across nodes,
    /// so two nodes cannot both take a guest name.
    fn hold(
        &self,
        node: &str,
        key: &str,
        conns: u64,
        guest: bool,
        exclusive: bool,
    ) -> Result<bool, StoreError>;
    /// Who holds the name whose key is `key` on nodes other than `node`.
    fn held_elsewhere(&self, node: &str, key: &str) -> Result<Held, StoreError>;
    /// Whether `node` holds the name whose key is `key` for a guest.
    fn guest_holds(&self, node: &str, key: &str) -> Result<bool, StoreError>;
    /// The secret every node uses for `name`: the first node's `fresh`
    /// one, kept in the store (e.g. the key of guest upload tokens, so
    /// that any node verifies another's).
    fn shared_secret(&self, name: &str, fresh: &[u8; 32]) -> Result<[u8; 32], StoreError>;
}

/// A subscription to the commits of every node sharing a store (see
/// [`crate::cluster`]): a wake-up, not the messages; they are read by `seq`.
pub trait Commits: Send {
    /// Waits up to `timeout` for news; `Ok(None)` if there was none.
    fn wait(&mut self, timeout: Duration) -> Result<Option<News>, StoreError>;
}

/// Room messages: numbering, storing, history, catch-up and retention.
/// Implementations are blocking.
pub trait Messages: Send + Sync {
    /// The room's last `seq`, its latest `recent` messages, and the client
    /// ids of its latest `client_ids` messages.
    fn load_room(
        &self,
        room: &str,
        recent: usize,
        client_ids: usize,
    ) -> Result<RoomRecord, StoreError>;

    /// Stores a batch in one transaction; durable when this returns `Ok`
    /// (as durable as the implementation promises). Each event row is
    /// folded into its target in the same transaction, in batch order: an
    /// edit replaces the target's text (and mentions), so search and
    /// history find the latest; a delete empties its text, files,
    /// mentions and reactions and marks it [`StoredMessage::deleted`]; a
    /// reaction puts or takes back the sender's emoji on it. A target that
    /// is gone, deleted or itself an event is left alone. Event rows are
    /// never search hits; neither are deleted messages.
    fn append(&self, batch: &[StoredMessage]) -> Result<(), StoreError>;

    /// What the persist thread calls: stores a batch in one transaction,
    /// giving each message its `seq`. A store that one node owns keeps the
    /// `seq` the node's room gave out ([`Messages::append`]); a store that
    /// nodes share ([`PgStore`] in a cluster) gives the next numbers of
    /// each room itself, under the room's row lock, and finds retries made
    /// on another node. Returns, per message, whether it was such a retry
    /// (its `seq` is then the stored message's).
    fn number_and_append(&self, batch: &mut [StoredMessage]) -> Result<Vec<bool>, StoreError> {
        self.append(batch)?;
        Ok(vec![false; batch.len()])
    }

    /// Each of `rooms`' last `seq` (0 for a room without messages): how a
    /// node checks it missed nothing other nodes committed.
    fn last_seqs(&self, rooms: &[String]) -> Result<Vec<(String, u64)>, StoreError> {
        rooms
            .iter()
            .map(|room| Ok((room.clone(), self.load_room(room, 0, 0)?.last_seq)))
            .collect()
    }

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

    /// For each `(room, after, upto)`, the room's messages with
    /// `after < seq <= upto`, grouped by room, oldest first in each: how a
    /// cluster node reads what the other nodes committed in many rooms at
    /// once. The caller bounds each span.
    fn between(&self, spans: &[(String, u64, u64)]) -> Result<Vec<StoredMessage>, StoreError> {
        let mut msgs = Vec::new();
        for (room, after, upto) in spans {
            let limit = upto.saturating_sub(*after) as usize;
            msgs.extend(
                self.after(room, *after, limit)?
                    .into_iter()
                    .filter(|m| m.seq <= *upto),
            );
        }
        Ok(msgs)
    }

    /// Message `seq` of `room` as stored now (every event before it
    /// folded in), if the store has it: what edits, deletions, reactions
    /// and replies are checked against.
    fn message(&self, room: &str, seq: u64) -> Result<Option<StoredMessage>, StoreError>;

    /// The distinct emoji users have on message `seq` of `room` now.
    fn reaction_emoji(&self, room: &str, seq: u64) -> Result<Vec<String>, StoreError>;

    /// Rooms whose latest message was sent at or after `since_ms`, newest
    /// first, at most `limit`: the directory's recently active rooms.
    /// Never a private conversation.
    fn active_rooms(&self, since_ms: u64, limit: usize) -> Result<Vec<String>, StoreError>;

    /// Up to `query.limit` stored messages holding every word of
    /// `query.words` (whole, ignoring case), newest first in the order
    /// [`SearchCursor`] describes, after `query.before` if given. A
    /// message retention dropped is not found, nor one of a conversation
    /// `query.reader` is not one of the two of.
    fn search(&self, query: &SearchQuery) -> Result<Vec<StoredMessage>, StoreError>;

    /// Drops what `retention` says to drop; returns how many messages went.
    fn prune(&self, retention: Retention, now_ms: u64) -> Result<u64, StoreError>;
}

/// Whether a search by the user whose name key is `reader` may find the
/// messages of `room`: every room's, and of the private conversations
/// only the reader's own.
pub fn may_find(room: &str, reader: &str) -> bool {
    !names::is_conversation(room) || names::conversation_peer(room, reader).is_some()
}

/// A private conversation between two users, as the store keeps it
/// (docs/protocol.md, "Private conversations"): its room, whose messages
/// are kept like any room's, and who its two people are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversationRecord {
    /// `@a+b` ([`hubbub_protocol::names::conversation`]).
    pub room: String,
    /// The two people: name key, name as spelled, whether a guest (whose
    /// conversations go with its name). `a`'s key sorts before `b`'s.
    pub a: Party,
    pub b: Party,
    /// When it was opened, ms since the epoch.
    pub opened_at: u64,
    /// Its latest message's `seq` and `sent_at` (0, 0 without messages);
    /// filled in by [`Conversations::conversations`], ignored when opening.
    pub last_seq: u64,
    pub last_at: u64,
}

/// One of a conversation's two people.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Party {
    pub key: String,
    pub name: String,
    pub guest: bool,
}

impl ConversationRecord {
    /// The other person of the conversation, for the user whose key is `key`.
    pub fn peer_of(&self, key: &str) -> &Party {
        if self.a.key == key {
            &self.b
        } else {
            &self.a
        }
    }
}

/// Private conversations: who talks with whom. Their messages are room
/// messages ([`Messages`]). Implementations are blocking.
pub trait Conversations: Send + Sync {
    /// Records the conversation `record.room` between `record.a` and
    /// `record.b`, if it is not recorded yet (then it changes nothing).
    fn open_conversation(&self, record: &ConversationRecord) -> Result<(), StoreError>;

    /// The conversations of the user whose name key is `key`, the latest
    /// message first (a conversation without messages by when it was
    /// opened), at most `limit`, each with its `last_seq` and `last_at`.
    fn conversations(&self, key: &str, limit: usize)
        -> Result<Vec<ConversationRecord>, StoreError>;

    /// Deletes every conversation of the user whose name key is `key`,
    /// with all it holds: its messages (search entries, reactions, the
    /// links to their files), the read markers in it, its client ids.
    /// Returns the rooms that went. What a guest leaves when its name goes.
    fn drop_conversations(&self, key: &str) -> Result<Vec<String>, StoreError>;

    /// Deletes, as [`Conversations::drop_conversations`] does, every
    /// conversation one of whose people is a guest: what a lone server
    /// does as it starts (its guests went with the last run).
    fn drop_guest_conversations(&self) -> Result<Vec<String>, StoreError>;
}

/// Accounts and their sessions. Implementations are blocking.
pub trait Accounts: Send + Sync {
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

    /// How far account `name` has read `room` (its read marker), if it
    /// ever has.
    fn read_marker(&self, name: &str, room: &str) -> Result<Option<u64>, StoreError>;

    /// Moves `name`'s read marker in `room` to `seq`, never back; the
    /// marker after the call (at least `seq`).
    fn mark_read(&self, name: &str, room: &str, seq: u64) -> Result<u64, StoreError>;
}

/// What is known of uploaded files. Implementations are blocking.
pub trait Files: Send + Sync {
    /// Records an upload whose bytes are stored.
    fn add_file(&self, file: &FileRecord) -> Result<(), StoreError>;

    /// The file with this id.
    fn file(&self, id: &str) -> Result<Option<FileRecord>, StoreError>;

    /// The bytes of every file `uploader` (any case) has uploaded: what
    /// `--max-upload-bytes-per-user` bounds.
    fn uploaded_bytes(&self, uploader: &str) -> Result<u64, StoreError>;

    /// Keeps the bytes whose SHA-256 (hex) is `sha256`, read from `bytes`,
    /// where every node sharing the store can read them, all or nothing;
    /// nothing if they are there already. A store one node owns keeps
    /// nothing: the node's `files/` directory is the only copy.
    fn put_blob(&self, _sha256: &str, _bytes: &mut dyn std::io::Read) -> Result<(), StoreError> {
        Ok(())
    }

    /// Records that a direct message gave the files `ids` to the user whose
    /// name key is `user` (at `at_ms`, for retention by age).
    fn share_files(&self, ids: &[String], user: &str, at_ms: u64) -> Result<(), StoreError>;

    /// Who may read the file `id` besides its uploader.
    fn file_readers(&self, id: &str) -> Result<FileReaders, StoreError>;

    /// Forgets every file uploaded before `uploaded_before_ms` that no
    /// stored message carries and no direct message gave anyone (so an
    /// upload never sent, and the files of messages retention dropped),
    /// with the direct-message shares older than `shared_before_ms`.
    /// Gives the SHA-256 of bytes no file refers to any more (a store
    /// that keeps bytes drops its copy): the node removes them from its
    /// `files/` ([`Files::bytes_in_use`] first, under its upload gate).
    fn collect_files(
        &self,
        uploaded_before_ms: u64,
        shared_before_ms: u64,
    ) -> Result<Vec<String>, StoreError>;

    /// Whether a file refers to the bytes whose SHA-256 is `sha256` (as its
    /// bytes or its thumbnail).
    fn bytes_in_use(&self, sha256: &str) -> Result<bool, StoreError>;

    /// Writes the bytes [`Files::put_blob`] kept under `sha256` to `out`;
    /// `false` (nothing written) if the store has none.
    fn get_blob(&self, _sha256: &str, _out: &mut dyn std::io::Write) -> Result<bool, StoreError> {
        Ok(false)
    }
}

/// A place to keep what hubbub keeps: room messages, accounts and files,
/// and, for a store several nodes share, what the nodes tell each other.
/// Implementations are blocking.
pub trait Store: Messages + Accounts + Files + Conversations + 'static {
    /// News of what other nodes commit, for a store that nodes share
    /// (`None`: this node is the only writer).
    fn commits(&self) -> Result<Option<Box<dyn Commits>>, StoreError> {
        Ok(None)
    }

    /// Whether the store answers (`/readyz`).
    fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Presence across the nodes sharing this store (`None`: one node).
    fn node_presence(&self) -> Option<&dyn NodePresence> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_keeps_the_contract() {
        contract::messages(&MemoryStore::default());
        contract::search(&MemoryStore::default());
        contract::accounts(&MemoryStore::default());
        contract::files(&MemoryStore::default());
        contract::attachments(&MemoryStore::default());
        contract::events(&MemoryStore::default());
        contract::conversations(&MemoryStore::default());
    }

    #[test]
    fn sqlite_store_keeps_the_conversation_contract_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        contract::conversations(&SqliteStore::open(dir.path()).unwrap());
        let reopened = SqliteStore::open(dir.path()).unwrap();
        let kept = reopened.conversations("al.ice", 10).unwrap();
        assert_eq!(
            kept.iter()
                .map(|c| (c.room.as_str(), c.last_seq))
                .collect::<Vec<_>>(),
            [("@al.ice+bob", 1)]
        );
        // What went took its index rows with it: the index holds the live
        // messages' words, no more.
        let conn = rusqlite::Connection::open(dir.path().join("hubbub.db")).unwrap();
        let count = |sql: &str| -> i64 { conn.query_row(sql, [], |row| row.get(0)).unwrap() };
        assert_eq!(
            count("SELECT count(*) FROM messages_fts"),
            count("SELECT count(*) FROM messages WHERE event IS NULL AND deleted = 0")
        );
        assert_eq!(
            count("SELECT count(*) FROM messages_fts WHERE room LIKE '@%'"),
            1,
            "the reopened conversation's one message"
        );
    }

    #[test]
    fn sqlite_store_keeps_the_event_contract_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        contract::events(&SqliteStore::open(dir.path()).unwrap());
        let reopened = SqliteStore::open(dir.path()).unwrap();
        let edited = reopened.message("lobby", 13).unwrap().unwrap();
        assert_eq!(edited.text, "eventful");
        assert!(reopened.message("lobby", 1).unwrap().unwrap().deleted);
        assert!(reopened.message("lobby", 2).unwrap().unwrap().deleted);
        assert_eq!(reopened.message("lobby", 4).unwrap().unwrap().text, "");
    }

    #[test]
    fn sqlite_store_keeps_the_attachment_contract() {
        let dir = tempfile::tempdir().unwrap();
        contract::attachments(&SqliteStore::open(dir.path()).unwrap());
    }

    #[test]
    fn sqlite_store_keeps_the_file_contract() {
        let dir = tempfile::tempdir().unwrap();
        contract::files(&SqliteStore::open(dir.path()).unwrap());
        let reopened = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(reopened.uploaded_bytes("alice").unwrap(), 10);
    }

    #[test]
    fn sqlite_store_keeps_the_account_contract() {
        let dir = tempfile::tempdir().unwrap();
        contract::accounts(&SqliteStore::open(dir.path()).unwrap());
        let reopened = SqliteStore::open(dir.path()).unwrap();
        assert!(reopened.user("ALICE").unwrap().is_some());
        assert_eq!(reopened.read_marker("alice", "lobby").unwrap(), Some(9));
    }

    #[test]
    fn sqlite_store_keeps_the_search_contract_and_its_index_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        contract::search(&SqliteStore::open(dir.path()).unwrap());
        let reopened = SqliteStore::open(dir.path()).unwrap();
        let found = reopened
            .search(&SearchQuery {
                words: search_words("lunch"),
                room: None,
                reader: "alice".into(),
                before: None,
                limit: 100,
            })
            .unwrap();
        assert!(!found.is_empty(), "the index is on disk");
    }

    #[test]
    fn migrating_an_sqlite_store_indexes_the_messages_it_already_has() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let said = StoredMessage {
            room: "lobby".into(),
            seq: 1,
            from: "ann".into(),
            text: "Lunch at noon?".into(),
            sent_at: 1000,
            client_id: None,
            ..StoredMessage::default()
        };
        store.append(std::slice::from_ref(&said)).unwrap();
        drop(store);
        // Back to the schema before search (6), messages kept.
        let conn = rusqlite::Connection::open(dir.path().join("hubbub.db")).unwrap();
        conn.execute_batch(
            "DROP TABLE conversations;
             DROP TABLE messages_fts; DROP TABLE reactions; DROP INDEX messages_replies;
             ALTER TABLE messages DROP COLUMN reply_to; ALTER TABLE messages DROP COLUMN reply_seq;
             ALTER TABLE messages DROP COLUMN mentions; ALTER TABLE messages DROP COLUMN event;
             ALTER TABLE messages DROP COLUMN deleted; ALTER TABLE messages DROP COLUMN fts_rowid;
             PRAGMA user_version = 6;",
        )
        .unwrap();
        drop(conn);
        let store = SqliteStore::open(dir.path()).unwrap();
        let query = |words: &str| SearchQuery {
            words: search_words(words),
            room: None,
            reader: "ann".into(),
            before: None,
            limit: 10,
        };
        assert_eq!(
            store.search(&query("lunch")).unwrap(),
            std::slice::from_ref(&said)
        );
        // Migration 8 found each message's index row: an edit replaces
        // its words, a delete drops them.
        let edit = StoredMessage {
            seq: 2,
            text: "Dinner at eight".into(),
            event: Some(hubbub_protocol::Event::Edit { target: 1 }),
            ..said.clone()
        };
        store.append(&[edit]).unwrap();
        assert!(store.search(&query("lunch")).unwrap().is_empty());
        assert_eq!(store.search(&query("dinner")).unwrap().len(), 1);
        let delete = StoredMessage {
            seq: 3,
            text: String::new(),
            event: Some(hubbub_protocol::Event::Delete { target: 1 }),
            ..said
        };
        store.append(&[delete]).unwrap();
        assert!(store.search(&query("dinner")).unwrap().is_empty());
        let conn = rusqlite::Connection::open(dir.path().join("hubbub.db")).unwrap();
        let indexed: i64 = conn
            .query_row("SELECT count(*) FROM messages_fts", [], |row| row.get(0))
            .unwrap();
        assert_eq!(indexed, 0, "the deleted text is gone from the index");
    }

    #[test]
    fn a_search_cursor_round_trips_and_a_bad_one_is_refused() {
        let cursor = SearchCursor {
            sent_at: 1_700_000_000_000,
            room: "a-b_c".into(),
            seq: 42,
        };
        assert_eq!(cursor.encode(), "1700000000000.42.a-b_c");
        assert_eq!(SearchCursor::decode(&cursor.encode()), Some(cursor));
        // A conversation's room, whose names hold dots.
        let cursor = SearchCursor {
            sent_at: 7,
            room: names::conversation("Al.ice", "b.o.b"),
            seq: 3,
        };
        assert_eq!(cursor.encode(), "7.3.@al.ice+b.o.b");
        assert_eq!(SearchCursor::decode(&cursor.encode()), Some(cursor));
        for bad in [
            "",
            "1.2",
            "x.2.lobby",
            "1.x.lobby",
            "1.2.",
            "-1.2.lobby",
            "1.2.Lobby",
            "1.2.a.b",
            "1.2.@bob+al.ice",
            "1.2.@Al.ice+bob",
            "1.2.@al.ice+al.ice",
            "1.2.@al.ice",
        ] {
            assert_eq!(SearchCursor::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn search_words_are_runs_of_letters_and_digits_lowercased() {
        assert_eq!(
            search_words(" \"Lunch\" OR near(tacos*) -Zoë 42 "),
            ["lunch", "or", "near", "tacos", "zoë", "42"]
        );
        assert!(search_words("*** \"\" -").is_empty());
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
