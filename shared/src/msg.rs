//! The JSON messages: [`ClientMsg`] (client → server) and [`ServerMsg`]
//! (server → client), both `{"type": "...", ...}` with snake_case tags.
//!
//! Unknown fields are ignored so either side can add fields without breaking
//! the other; unknown `type`s are refused with `unknown_type`.

use serde::{Deserialize, Serialize};

use crate::{ErrorCode, Limits};

/// A request from a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    /// The first frame of every connection: who this is.
    Hello { name: String },
    /// Become a member of `room` (created on first join). With `since`, the
    /// last `seq` this client has of the room: the server sends exactly the
    /// messages after it (resume); without, the latest history.
    Join {
        room: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<u64>,
    },
    /// Stop being a member of `room`.
    Leave { room: String },
    /// Say `text` in `room`. `client_id` is the client's own id for this
    /// request, echoed in the `ack` (and in an `error`, if refused).
    /// `attachments` are ids of files this user uploaded (`POST /api/files`);
    /// with at least one, `text` (the caption) may be empty.
    Send {
        room: String,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<String>,
        /// The `seq` of the message in `room` this one answers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<u64>,
    },
    /// Replace the text of this user's own message `seq` in `room`, within
    /// the edit window (`limits.edit_window_ms`). Acked like `send`: the
    /// edit is an event in the room's `seq` stream.
    Edit {
        room: String,
        seq: u64,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
    /// Delete this user's own message `seq` in `room` (at any time). Acked
    /// like `send`; the message becomes a tombstone for everyone.
    Delete {
        room: String,
        seq: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
    /// Put (`on: true`) or take back (`on: false`) this user's `emoji`
    /// reaction on message `seq` in `room`. Acked like `send`.
    React {
        room: String,
        seq: u64,
        emoji: String,
        on: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
    /// Open (or find) this user's private conversation with `with`: every
    /// connection of this user gets `conversation` with its room, which
    /// they then `join` like any room.
    Open { with: String },
    /// Ask for this user's conversations, the latest first.
    Conversations,
    /// Change this user's name.
    Rename { name: String },
    /// Ask who is online in `room`.
    Who { room: String },
    /// Ask which rooms exist and how many members each has.
    Rooms,
    /// Ask for up to `limit` messages of `room` older than `before` (the
    /// latest ones without `before`).
    History {
        room: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// Tell the room this user is typing.
    Typing { room: String },
    /// This user has read `room` up to `seq` (what the client showed). The
    /// server keeps the furthest (an account's across logins, a guest's
    /// for its session) and tells the user's other connections.
    Read { room: String, seq: u64 },
    /// Find stored room messages holding every word of `query` (whole
    /// words, ignoring case), newest first; only in `room` if given.
    /// `before` is the `next` of the previous `search_results` page.
    Search {
        query: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// Application-level ping; answered by `pong` with the same `id`.
    Ping {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
    /// Leave every room and close the connection normally (1000).
    Quit,
}

/// The `type` tags of [`ClientMsg`], to tell an unknown type from a bad field.
const CLIENT_TYPES: &[&str] = &[
    "hello",
    "join",
    "leave",
    "send",
    "edit",
    "delete",
    "react",
    "open",
    "conversations",
    "rename",
    "who",
    "rooms",
    "history",
    "typing",
    "read",
    "search",
    "ping",
    "quit",
];

/// One room in a `rooms` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInfo {
    pub room: String,
    /// Members online in the room now.
    pub members: usize,
}

/// One conversation in a `conversations` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationInfo {
    /// Its room name ([`crate::names::conversation`]).
    pub room: String,
    /// The other person, as their name is spelled.
    pub with: String,
    /// Whether they are online now.
    pub online: bool,
    /// The `seq` of its latest message (0: none yet).
    pub last_seq: u64,
}

/// One stored message of a room, as carried by `history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryMessage {
    pub seq: u64,
    pub from: String,
    pub text: String,
    pub sent_at: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Quote>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Event>,
}

/// What a `seq` that is not a new message does to an earlier one. Edits,
/// deletions and reactions are events in the room's `seq` stream, so
/// history, resume and catch-up replay them in order; a client applies
/// each to its `target` (if it has that message; if not, the target is
/// older than anything it loaded, and the server's history gives it as
/// stored, with every earlier event already applied).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// The target's text is now this message's `text` (and its mentions
    /// this message's `mentions`).
    Edit { target: u64 },
    /// The target is deleted: show a tombstone; its text and files are gone.
    Delete { target: u64 },
    /// The sender put (`on`) or took back their `emoji` on the target.
    React {
        target: u64,
        emoji: String,
        on: bool,
    },
}

impl Event {
    /// The `seq` of the message this event changes.
    pub fn target(&self) -> u64 {
        match self {
            Event::Edit { target } | Event::Delete { target } | Event::React { target, .. } => {
                *target
            }
        }
    }
}

/// The message a reply answers, as it was when the reply was sent: who
/// said it and its first line (at most [`Quote::MAX_CHARS`] characters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    pub seq: u64,
    pub from: String,
    pub text: String,
}

impl Quote {
    /// Most characters of the original a quote carries.
    pub const MAX_CHARS: usize = 100;

    /// The quote of message `seq` by `from` saying `text`: its first
    /// non-blank line, cut to [`Quote::MAX_CHARS`] characters (with `…`).
    pub fn of(seq: u64, from: &str, text: &str) -> Quote {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("");
        let mut cut: String = line.chars().take(Self::MAX_CHARS).collect();
        if cut.len() < line.len() || text.trim().len() > line.len() {
            cut.push('…');
        }
        Quote {
            seq,
            from: from.to_string(),
            text: cut,
        }
    }
}

/// One message a `search` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchHit {
    pub room: String,
    pub seq: u64,
    pub from: String,
    pub text: String,
    pub sent_at: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
}

/// A file a message carries: a reference to an upload, never its bytes.
/// The bytes are at [`Attachment::url`] over HTTP, for the room's members
/// (for a conversation, its two people) only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The upload's id (what `send` named).
    pub id: String,
    /// The name the uploader gave; shown, never trusted as a path or a type.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// The type the server found in the bytes (never the client's claim).
    pub mime: String,
    /// An image's size in pixels; with it, a thumbnail exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
}

impl Attachment {
    /// Where the bytes are, relative to the server's origin.
    pub fn url(&self) -> String {
        format!("/api/files/{}", self.id)
    }

    /// Where an image's thumbnail is (`None` for other files).
    pub fn thumb_url(&self) -> Option<String> {
        self.width.map(|_| format!("/api/files/{}/thumb", self.id))
    }

    /// Whether clients show it inline (an image the server decoded).
    pub fn is_image(&self) -> bool {
        self.width.is_some()
    }
}

/// A frame from the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// The answer to `hello`.
    Welcome {
        /// The name this connection now has.
        user: String,
        /// [`crate::PROTOCOL_VERSION`] of the server.
        protocol: u32,
        /// How often the server sends `heartbeat` (and a WebSocket ping).
        heartbeat_ms: u64,
        /// A connection silent for this long is closed with 4000.
        idle_timeout_ms: u64,
        /// Server clock, milliseconds since the Unix epoch.
        server_time: u64,
        limits: Limits,
        /// A guest's upload token: what authorizes its `POST /api/files`
        /// and downloads (as `Authorization: Bearer`) for a day, while
        /// this connection is open under this name. Absent for an account,
        /// whose session does that.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        upload_token: Option<String>,
    },
    /// Who is online in `room`: the answer to `join` and `who`.
    Presence { room: String, users: Vec<String> },
    /// Online notice: `users` joined `room` (several joins may be coalesced).
    Joined { room: String, users: Vec<String> },
    /// Offline notice: `users` left `room` or disconnected. Presence only:
    /// the answer to this connection's own `leave` is [`ServerMsg::LeaveOk`].
    Left { room: String, users: Vec<String> },
    /// The answer to `leave`: this connection is no longer a member of `room`.
    LeaveOk { room: String },
    /// A message said in `room`; `seq` increases by one per room. With
    /// `event`, this `seq` is an edit, deletion or reaction of an earlier
    /// message rather than a message of its own.
    Message {
        room: String,
        seq: u64,
        from: String,
        text: String,
        /// Milliseconds since the Unix epoch, by the server's clock.
        sent_at: u64,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<Attachment>,
        /// The message this one answers (`send` `reply_to`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<Quote>,
        /// The users `@name`d in `text`, as the server resolved them
        /// (their names as they are spelled, each once).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        mentions: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event: Option<Event>,
    },
    /// Stored messages of `room`, oldest first: the answer to `history`, and
    /// to a `join` without `since` (or with a `since` too far behind to
    /// resume, then with `resync: true`: drop what you have of the room).
    History {
        room: String,
        messages: Vec<HistoryMessage>,
        /// Whether older messages exist: page with `history` `before` the first.
        has_more: bool,
        /// The `before` of the request this answers, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<u64>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        resync: bool,
    },
    /// The server accepted a `send`, `edit`, `delete` or `react`: its
    /// `room` and `seq`.
    Ack {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
    },
    /// A private conversation of this user, with `with`: the answer to
    /// `open` (on every connection of the user), and the news that someone
    /// spoke in a conversation this connection has not joined. `join` it.
    Conversation { room: String, with: String },
    /// The answer to `conversations`.
    Conversations {
        conversations: Vec<ConversationInfo>,
    },
    /// A user changed name. With `room`, a member of that room did; without,
    /// it confirms the receiver's own rename, and for a guest carries its
    /// new `upload_token` (the one of its `welcome` ends with the old name).
    Renamed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        from: String,
        to: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        upload_token: Option<String>,
    },
    /// The answer to `rooms`.
    Rooms { rooms: Vec<RoomInfo> },
    /// `user` is typing in `room`.
    Typing { room: String, user: String },
    /// This user's read marker in `room`: every message up to `seq` is
    /// read. Sent after each `join` (a first join marks what is already
    /// there as read) and whenever another connection of the same user
    /// reads further. Unread = the room's messages past `seq`.
    Read { room: String, seq: u64 },
    /// The answer to `search`: the messages found, newest first.
    SearchResults {
        /// The `query` of the request this answers.
        query: String,
        results: Vec<SearchHit>,
        /// Where the next (older) page starts: the `before` of the next
        /// `search`. Absent when nothing older matches.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<String>,
    },
    /// The answer to `ping`.
    Pong {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
    /// Sent every heartbeat interval so page code can see the link is alive.
    Heartbeat,
    /// A request was refused; the connection stays open.
    Error {
        code: ErrorCode,
        /// A sentence for humans; may change between versions.
        message: String,
        /// The `client_id` of the refused request, if it had one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        /// The room the refused request named, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
    },
}

impl ServerMsg {
    /// An `error` frame with no request context.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> ServerMsg {
        ServerMsg::Error {
            code,
            message: message.into(),
            client_id: None,
            room: None,
        }
    }

    /// The frame as JSON text.
    pub fn to_json(&self) -> String {
        // Serializing these types cannot fail: no maps with non-string keys,
        // no custom Serialize impls.
        serde_json::to_string(self).expect("ServerMsg serializes")
    }
}

/// Why a text frame could not be decoded into a [`ClientMsg`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Not JSON, or not a JSON object.
    BadJson(String),
    /// An object without a string `type`.
    MissingType,
    /// A `type` the protocol does not have.
    UnknownType(String),
    /// A known `type` whose fields are missing or of the wrong type.
    BadField { kind: String, detail: String },
}

impl DecodeError {
    /// The error code to send back.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::BadJson(_) => ErrorCode::BadJson,
            DecodeError::MissingType => ErrorCode::MissingType,
            DecodeError::UnknownType(_) => ErrorCode::UnknownType,
            DecodeError::BadField { .. } => ErrorCode::BadField,
        }
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::BadJson(detail) => write!(f, "not a JSON object: {detail}"),
            DecodeError::MissingType => f.write_str("the object has no string \"type\" field"),
            DecodeError::UnknownType(kind) => write!(f, "unknown message type {kind:?}"),
            DecodeError::BadField { kind, detail } => write!(f, "bad {kind:?} message: {detail}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Decodes one text frame from a client, classifying what is wrong with it.
///
/// The fast path is a single serde pass; only a frame that fails is parsed a
/// second time to tell bad JSON, a missing or unknown `type` and bad fields apart.
pub fn decode_client(text: &str) -> Result<ClientMsg, DecodeError> {
    // serde's internally tagged enums also accept a sequence with the tag
    // first (`["quit"]`, `["hello","alice"]`); the protocol is objects only,
    // so anything that does not start like an object skips the fast path.
    let starts_object = text
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{');
    let err = match starts_object.then(|| serde_json::from_str::<ClientMsg>(text)) {
        Some(Ok(msg)) => return Ok(msg),
        Some(Err(err)) => Some(err),
        None => None,
    };
    let value = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value) => value,
        Err(syntax) => {
            return Err(DecodeError::BadJson(truncate(
                &syntax.to_string(),
                MAX_DETAIL,
            )))
        }
    };
    let Some(object) = value.as_object() else {
        return Err(DecodeError::BadJson("expected an object".into()));
    };
    let Some(kind) = object.get("type").and_then(|t| t.as_str()) else {
        return Err(DecodeError::MissingType);
    };
    if !CLIENT_TYPES.contains(&kind) {
        return Err(DecodeError::UnknownType(truncate(kind, 64)));
    }
    Err(DecodeError::BadField {
        kind: kind.to_string(),
        // Only an object gets here, and for one the typed parse above ran.
        // serde quotes the offending value: cap it so an echo stays small.
        detail: err.map_or_else(
            || "expected an object".into(),
            |e| truncate(&e.to_string(), MAX_DETAIL),
        ),
    })
}

/// Most characters of a decode error's detail echoed back to the client.
const MAX_DETAIL: usize = 200;

/// Cuts `s` to at most `max` characters so an echoed value stays small.
fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat() -> Attachment {
        Attachment {
            id: "q3Yc0Jw1m3J8bT2kqE5XGA".into(),
            name: "cat.png".into(),
            size: 48_213,
            mime: "image/png".into(),
            width: Some(640),
            height: Some(480),
        }
    }

    fn notes() -> Attachment {
        Attachment {
            id: "Zm9vYmFyYmF6cXV4cXV1eA".into(),
            name: "notes.pdf".into(),
            size: 1_024,
            mime: "application/pdf".into(),
            width: None,
            height: None,
        }
    }

    fn round_trip_client(msg: ClientMsg) {
        let json = serde_json::to_string(&msg).unwrap();
        assert_eq!(decode_client(&json).unwrap(), msg, "{json}");
    }

    fn round_trip_server(msg: ServerMsg) {
        let json = msg.to_json();
        let back: ServerMsg = serde_json::from_str(&json).unwrap();
        assert_eq!(back, msg, "{json}");
    }

    #[test]
    fn every_client_message_round_trips() {
        let room = || "lobby".to_string();
        for msg in [
            ClientMsg::Hello {
                name: "alice".into(),
            },
            ClientMsg::Join {
                room: room(),
                since: None,
            },
            ClientMsg::Join {
                room: room(),
                since: Some(41),
            },
            ClientMsg::History {
                room: room(),
                before: Some(100),
                limit: Some(50),
            },
            ClientMsg::History {
                room: room(),
                before: None,
                limit: None,
            },
            ClientMsg::Leave { room: room() },
            ClientMsg::Send {
                reply_to: None,
                room: room(),
                text: "hi".into(),
                client_id: Some("c-1".into()),
                attachments: vec![],
            },
            ClientMsg::Send {
                reply_to: None,
                room: room(),
                text: "".into(),
                client_id: None,
                attachments: vec!["q3Yc0Jw1m3J8bT2kqE5XGA".into()],
            },
            ClientMsg::Open { with: "bob".into() },
            ClientMsg::Conversations,
            ClientMsg::Rename {
                name: "carol".into(),
            },
            ClientMsg::Who { room: room() },
            ClientMsg::Rooms,
            ClientMsg::Typing { room: room() },
            ClientMsg::Read {
                room: room(),
                seq: 41,
            },
            ClientMsg::Search {
                query: "lunch plans".into(),
                room: Some(room()),
                before: Some("1700000000000.4.lobby".into()),
                limit: Some(10),
            },
            ClientMsg::Search {
                query: "lunch".into(),
                room: None,
                before: None,
                limit: None,
            },
            ClientMsg::Ping { id: Some(7) },
            ClientMsg::Ping { id: None },
            ClientMsg::Quit,
        ] {
            round_trip_client(msg);
        }
    }

    #[test]
    fn every_server_message_round_trips() {
        let room = || "lobby".to_string();
        for msg in [
            ServerMsg::Welcome {
                user: "alice".into(),
                protocol: crate::PROTOCOL_VERSION,
                heartbeat_ms: 25_000,
                idle_timeout_ms: 60_000,
                server_time: 1_700_000_000_000,
                limits: Limits::default(),
                upload_token: Some("g1.1700003600000.1.YWxpY2U.mac".into()),
            },
            ServerMsg::Presence {
                room: room(),
                users: vec!["alice".into(), "bob".into()],
            },
            ServerMsg::Joined {
                room: room(),
                users: vec!["bob".into()],
            },
            ServerMsg::Left {
                room: room(),
                users: vec!["bob".into()],
            },
            ServerMsg::LeaveOk { room: room() },
            ServerMsg::Message {
                event: None,
                mentions: Vec::new(),
                reply_to: None,
                room: room(),
                seq: 1,
                from: "alice".into(),
                text: "<b>hi</b> \u{1F600}".into(),
                sent_at: 1_700_000_000_000,
                attachments: vec![],
            },
            ServerMsg::Message {
                event: None,
                mentions: Vec::new(),
                reply_to: None,
                room: room(),
                seq: 2,
                from: "alice".into(),
                text: "".into(),
                sent_at: 1_700_000_000_000,
                attachments: vec![cat(), notes()],
            },
            ServerMsg::History {
                room: room(),
                messages: vec![HistoryMessage {
                    event: None,
                    mentions: Vec::new(),
                    reply_to: None,
                    seq: 1,
                    from: "alice".into(),
                    text: "first".into(),
                    sent_at: 1,
                    attachments: vec![notes()],
                }],
                has_more: false,
                before: Some(2),
                resync: true,
            },
            ServerMsg::History {
                room: room(),
                messages: vec![],
                has_more: false,
                before: None,
                resync: false,
            },
            ServerMsg::Ack {
                client_id: Some("c-1".into()),
                room: Some(room()),
                seq: Some(1),
            },
            ServerMsg::Ack {
                client_id: None,
                room: None,
                seq: None,
            },
            ServerMsg::Conversation {
                room: "@alice+bob".into(),
                with: "Bob".into(),
            },
            ServerMsg::Conversations {
                conversations: vec![ConversationInfo {
                    room: "@alice+bob".into(),
                    with: "Bob".into(),
                    online: true,
                    last_seq: 12,
                }],
            },
            ServerMsg::Renamed {
                room: Some(room()),
                from: "alice".into(),
                to: "al".into(),
                upload_token: None,
            },
            ServerMsg::Renamed {
                room: None,
                from: "alice".into(),
                to: "al".into(),
                upload_token: Some("g1.1700003600000.1.YWw.bWFj.mac".into()),
            },
            ServerMsg::Rooms {
                rooms: vec![RoomInfo {
                    room: room(),
                    members: 2,
                }],
            },
            ServerMsg::Typing {
                room: room(),
                user: "bob".into(),
            },
            ServerMsg::Read {
                room: room(),
                seq: 41,
            },
            ServerMsg::SearchResults {
                query: "lunch".into(),
                results: vec![SearchHit {
                    room: room(),
                    seq: 4,
                    from: "bob".into(),
                    text: "Lunch?".into(),
                    sent_at: 1_700_000_000_000,
                    attachments: vec![],
                }],
                next: Some("1700000000000.4.lobby".into()),
            },
            ServerMsg::SearchResults {
                query: "nothing".into(),
                results: vec![],
                next: None,
            },
            ServerMsg::Pong { id: Some(7) },
            ServerMsg::Heartbeat,
            ServerMsg::Error {
                code: ErrorCode::NotInRoom,
                message: "join it first".into(),
                client_id: Some("c-1".into()),
                room: Some(room()),
            },
        ] {
            round_trip_server(msg);
        }
    }

    #[test]
    fn wire_shapes_are_the_documented_ones() {
        assert_eq!(
            decode_client(r#"{"type":"send","room":"lobby","text":"hi","client_id":"c-1"}"#)
                .unwrap(),
            ClientMsg::Send {
                reply_to: None,
                room: "lobby".into(),
                text: "hi".into(),
                client_id: Some("c-1".into()),
                attachments: vec![],
            }
        );
        assert_eq!(
            ServerMsg::Message {
                event: None,
                mentions: Vec::new(),
                reply_to: None,
                room: "lobby".into(),
                seq: 3,
                from: "alice".into(),
                text: "hi".into(),
                sent_at: 5,
                attachments: vec![],
            }
            .to_json(),
            r#"{"type":"message","room":"lobby","seq":3,"from":"alice","text":"hi","sent_at":5}"#
        );
        assert_eq!(
            serde_json::to_string(&cat()).unwrap(),
            r#"{"id":"q3Yc0Jw1m3J8bT2kqE5XGA","name":"cat.png","size":48213,"mime":"image/png","width":640,"height":480}"#
        );
        assert_eq!(cat().url(), "/api/files/q3Yc0Jw1m3J8bT2kqE5XGA");
        assert_eq!(
            cat().thumb_url().as_deref(),
            Some("/api/files/q3Yc0Jw1m3J8bT2kqE5XGA/thumb")
        );
        assert_eq!(notes().thumb_url(), None);
        assert_eq!(ServerMsg::Heartbeat.to_json(), r#"{"type":"heartbeat"}"#);
        assert_eq!(
            ServerMsg::LeaveOk {
                room: "lobby".into()
            }
            .to_json(),
            r#"{"type":"leave_ok","room":"lobby"}"#
        );
    }

    #[test]
    fn unknown_fields_are_ignored() {
        assert_eq!(
            decode_client(r#"{"type":"join","room":"lobby","extra":[1,2]}"#).unwrap(),
            ClientMsg::Join {
                room: "lobby".into(),
                since: None
            }
        );
    }

    #[test]
    fn decode_errors_are_classified() {
        assert_eq!(
            decode_client("{nope").unwrap_err().code(),
            ErrorCode::BadJson
        );
        assert_eq!(decode_client("").unwrap_err().code(), ErrorCode::BadJson);
        assert_eq!(
            decode_client("[1,2]").unwrap_err().code(),
            ErrorCode::BadJson
        );
        // serde would take a sequence as an internally tagged enum; we do not.
        assert_eq!(
            decode_client(r#"["quit"]"#).unwrap_err().code(),
            ErrorCode::BadJson
        );
        assert_eq!(
            decode_client(r#" ["hello","alice"]"#).unwrap_err().code(),
            ErrorCode::BadJson
        );
        assert_eq!(
            decode_client(r#"{"room":"x"}"#).unwrap_err().code(),
            ErrorCode::MissingType
        );
        assert_eq!(
            decode_client(r#"{"type":5}"#).unwrap_err().code(),
            ErrorCode::MissingType
        );
        assert_eq!(
            decode_client(r#"{"type":"dance"}"#).unwrap_err(),
            DecodeError::UnknownType("dance".into())
        );
        let err = decode_client(r#"{"type":"send","room":"lobby"}"#).unwrap_err();
        assert_eq!(err.code(), ErrorCode::BadField);
        assert!(err.to_string().contains("missing field `text`"), "{err}");
        let err = decode_client(r#"{"type":"join","room":7}"#).unwrap_err();
        assert_eq!(err.code(), ErrorCode::BadField);
        let long = format!(
            r#"{{"type":"join","room":"lobby","since":"{}"}}"#,
            "9".repeat(10_000)
        );
        assert!(
            decode_client(&long).unwrap_err().to_string().len() < 300,
            "echoes stay small"
        );
    }
}
