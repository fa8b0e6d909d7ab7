//! A client's session, whatever its transport: the name it said `hello`
//! with, the rooms it joined, its rate limit, and what each request does.
//!
//! The WebSocket connection ([`crate::conn`]) feeds it decoded frames; other
//! gateways can feed it [`ClientMsg`]s. Replies and notices go to the
//! connection's outbox as serialized [`ServerMsg`] frames.

use std::sync::Arc;

use smallvec::SmallVec;

use hubbub_protocol::{
    close, decode_client, names, Attachment, ClientMsg, ErrorCode, HistoryMessage, Limits,
    SearchHit, ServerMsg, PROTOCOL_VERSION,
};

use crate::checks::{self, Change};
use crate::conversation;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::outbox::{frame, Close};
use crate::registry::Conn;
use crate::room::{history_message, JoinMarker, Name, Room, Said};
use crate::store::{
    search_words, FileRecord, SearchCursor, SearchQuery, Signal, StoreError, StoredMessage,
};
use crate::timers::now_ms;

/// Requests per second a connection may sustain, with a burst allowance
/// (`rate` and `burst` are the hub's, not kept here: this is paid per
/// connection).
struct TokenBucket {
    /// Requests that may be made now (fractions earn over time).
    tokens: f32,
    /// Requests refused in a row; the flood is cut off past a bound.
    refused: u32,
    /// When `tokens` was last brought up to date, ms since the hub started.
    last_ms: u64,
}

impl TokenBucket {
    /// A full bucket of `burst` (at least one) at `now_ms`.
    fn new(burst: u32, now_ms: u64) -> TokenBucket {
        TokenBucket {
            tokens: burst.max(1) as f32,
            refused: 0,
            last_ms: now_ms,
        }
    }

    /// Takes a token at `now_ms`, earning `rate` per second up to `burst`.
    fn take(&mut self, now_ms: u64, rate: f64, burst: u32) -> bool {
        // Whole milliseconds: what one call leaves out, the next one counts.
        let earned = now_ms.saturating_sub(self.last_ms) as f64 / 1000.0 * rate;
        let capacity = f64::from(burst.max(1));
        self.tokens = (f64::from(self.tokens) + earned).min(capacity) as f32;
        self.last_ms = now_ms.max(self.last_ms);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.refused = 0;
            true
        } else {
            self.refused += 1;
            false
        }
    }
}

/// One client's session. It lives inside its connection's task, so every
/// byte of it is paid per connection, idle or not (see
/// docs/benchmarks.md, "Idle memory per connection").
pub struct Session {
    hub: Arc<Hub>,
    conn: Arc<Conn>,
    /// Set by `hello`; the same allocation as the hub's user entry and
    /// the session's room memberships.
    name: Option<Name>,
    /// Rooms this connection is a member of (at most `max_rooms`, so a
    /// list: smaller than a set; the first one inline, as most connections
    /// are in one room). A member keeps its room loaded, so the session
    /// holds the room itself.
    rooms: SmallVec<[Arc<Room>; 1]>,
    bucket: TokenBucket,
    /// For a guest, when (server clock, ms since the epoch) it took its
    /// name: a guest may edit or delete only what it said since, not what
    /// an earlier guest of the same name said. 0 for an account (a plain
    /// `u64`, not an `Option`: an idle connection's task has a size budget).
    guest_since: u64,
}

impl Session {
    pub fn new(hub: Arc<Hub>, conn: Arc<Conn>) -> Session {
        let bucket = TokenBucket::new(hub.config.burst, hub.clock.elapsed_ms());
        Session {
            hub,
            conn,
            name: None,
            rooms: SmallVec::new(),
            bucket,
            guest_since: 0,
        }
    }

    /// The name this session said `hello` with (or renamed to).
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The names of the rooms this session is a member of.
    pub fn rooms(&self) -> impl Iterator<Item = &str> {
        self.rooms
            .iter()
            .filter(|room| self.room(&room.name).is_some())
            .map(|room| room.name.as_str())
    }

    /// Whether this session is a member of `room`.
    pub fn in_room(&self, room: &str) -> bool {
        self.room(room).is_some()
    }

    /// The room named `room`, if this session is a member (a private
    /// conversation that ended is no longer one).
    fn room(&self, room: &str) -> Option<&Arc<Room>> {
        self.rooms
            .iter()
            .find(|r| r.name == room)
            .filter(|r| !names::is_conversation(room) || !r.is_closed())
    }

    /// Handles one text frame: rate limit, decode, act.
    pub async fn on_text(&mut self, text: &str) {
        let msg = decode_client(text);
        if !matches!(&msg, Ok(msg) if self.free_of_rate(msg)) && !self.check_rate() {
            return;
        }
        match msg {
            Ok(msg) => self.handle(msg).await,
            Err(err) => {
                tracing::info!(conn = self.conn.id, code = %err.code(), "bad request");
                self.reply_error(err.code(), err.to_string());
            }
        }
    }

    /// Handles one binary frame: the protocol has none.
    pub fn on_binary(&mut self) {
        if self.check_rate() {
            self.reply_error(
                ErrorCode::BinaryUnsupported,
                "binary frames are not supported; send JSON text",
            );
        }
    }

    /// Handles one request that arrived already decoded (rate limited too).
    pub async fn on_request(&mut self, msg: ClientMsg) {
        if self.free_of_rate(&msg) || self.check_rate() {
            self.handle(msg).await;
        }
    }

    /// Whether `msg` is a `join` that adds a membership the checks admit
    /// (a valid room this connection is not in, within `max_rooms`; or a
    /// conversation of its own this node knows, within
    /// `max_conversations`): such joins do not count against the rate
    /// limit, so a client rejoining its rooms and conversations after
    /// `welcome` is never refused. They are bounded by the caps (and the
    /// `leave` that makes room again counts).
    fn free_of_rate(&self, msg: &ClientMsg) -> bool {
        let free = self.joins_as_member(msg);
        if free {
            Metrics::inc(&self.hub.metrics.requests);
        }
        free
    }

    /// Whether `msg` is a `join` the cheap checks admit as a new membership.
    fn joins_as_member(&self, msg: &ClientMsg) -> bool {
        let (ClientMsg::Join { room, .. }, Some(name)) = (msg, &self.name) else {
            return false;
        };
        if self.in_room(room) || conversation::check_room(room, name).is_err() {
            return false;
        }
        if names::is_conversation(room) && self.hub.conversations.record(room).is_none() {
            return false;
        }
        self.past_cap(room).is_none()
    }

    /// Why a join of `room` would take this connection past its cap of
    /// that kind (`max_rooms`, or `max_conversations` for a conversation;
    /// ended conversations do not count), if it would.
    fn past_cap(&self, room: &str) -> Option<String> {
        let private = names::is_conversation(room);
        let config = &self.hub.config;
        let (max, what) = if private {
            (config.max_conversations, "conversations")
        } else {
            (config.max_rooms, "rooms")
        };
        let count = self
            .rooms
            .iter()
            .filter(|r| names::is_conversation(&r.name) == private && !r.is_closed())
            .count();
        (count >= max).then(|| format!("a connection may be in at most {max} {what}"))
    }

    /// Ends the session: leaves every room (offline notices) and frees the name.
    pub fn end(self) {
        self.hub
            .disconnect(&self.conn, self.name.as_deref(), &self.rooms);
    }

    /// Applies the rate limit: the first refused request of a run gets
    /// `rate_limited`; a flood that goes on for another burst is closed with 1008.
    fn check_rate(&mut self) -> bool {
        Metrics::inc(&self.hub.metrics.requests);
        let config = &self.hub.config;
        if self
            .bucket
            .take(self.hub.clock.elapsed_ms(), config.rate, config.burst)
        {
            return true;
        }
        Metrics::inc(&self.hub.metrics.rate_limited);
        let refused = self.bucket.refused;
        if refused == 1 {
            tracing::info!(conn = self.conn.id, "rate limited");
            self.reply_error(ErrorCode::RateLimited, "slow down: too many requests");
        } else if refused > self.hub.config.burst.max(1) {
            tracing::info!(conn = self.conn.id, "closing a flooding connection");
            self.conn.outbox.close_after_drain(Close {
                code: close::POLICY,
                reason: "flood",
            });
        }
        false
    }

    pub fn reply_error(&self, code: ErrorCode, message: impl Into<String>) {
        self.conn.send(&ServerMsg::error(code, message));
    }

    fn reply_error_for(
        &self,
        code: ErrorCode,
        message: String,
        room: Option<&str>,
        client_id: Option<String>,
    ) {
        self.conn.send(&ServerMsg::Error {
            code,
            message,
            client_id,
            room: room.map(String::from),
        });
    }

    async fn handle(&mut self, msg: ClientMsg) {
        let Some(name) = self.name.clone() else {
            return self.hello(msg).await;
        };
        match msg {
            ClientMsg::Hello { .. } => self.reply_error(
                ErrorCode::AlreadyHello,
                format!("already said hello as {name:?}"),
            ),
            ClientMsg::Join { room, since } => self.join(room, since, &name).await,
            ClientMsg::Leave { room } => {
                if let Some(at) = self.rooms.iter().position(|r| r.name == room) {
                    let left = self.rooms.swap_remove(at);
                    self.hub.leave(&left, &self.conn);
                    self.conn.send(&ServerMsg::LeaveOk { room });
                } else {
                    self.not_in_room(&room, None);
                }
            }
            ClientMsg::Send {
                reply_to,
                room,
                text,
                client_id,
                attachments,
            } => {
                let Some(joined) = self.room(&room).cloned() else {
                    return self.not_in_room(&room, client_id);
                };
                if reply_to.is_some() {
                    // Checked against its original, which a retry must
                    // not be (it may be deleted since).
                    if let Some(said) = self.retried(&joined, &name, client_id.as_deref()) {
                        return self.answer_said(&joined, client_id, Ok(said));
                    }
                }
                let files = match check_client_id(client_id.as_deref())
                    .and_then(|()| self.check_text(&text, !attachments.is_empty()))
                {
                    Ok(()) => self.attachments(attachments, &name).await,
                    Err(refused) => Err(refused),
                };
                let files = match files {
                    Ok(files) => files,
                    Err((code, why)) => {
                        return self.reply_error_for(code, why, Some(&room), client_id)
                    }
                };
                let reply_to = match reply_to {
                    None => None,
                    Some(seq) => match checks::quote(&self.hub, &joined, seq).await {
                        Ok(quote) => Some(quote),
                        Err((code, why)) => {
                            return self.reply_error_for(code, why, Some(&room), client_id)
                        }
                    },
                };
                if names::is_conversation(&room) {
                    if let Err((code, why)) = conversation::check_peer(&self.hub, &room, &name) {
                        return self.reply_error_for(code, why, Some(&room), client_id);
                    }
                }
                let mentions = checks::mentions(&self.hub, &text).await;
                let draft = StoredMessage {
                    from: name.to_string(),
                    text,
                    client_id: client_id.clone(),
                    attachments: files,
                    reply_to,
                    mentions,
                    ..StoredMessage::default()
                };
                // A conversation's news goes out once it is stored (the
                // persist thread's `conversation::said`).
                let said = self.hub.say(&joined, &self.conn, draft);
                self.answer_said(&joined, client_id, said);
            }
            ClientMsg::Edit {
                room,
                seq,
                text,
                client_id,
            } => {
                let change = Change::Edit { text };
                self.change(room, seq, change, client_id, &name).await
            }
            ClientMsg::Delete {
                room,
                seq,
                client_id,
            } => {
                self.change(room, seq, Change::Delete, client_id, &name)
                    .await
            }
            ClientMsg::React {
                room,
                seq,
                emoji,
                on,
                client_id,
            } => {
                let change = Change::React { emoji, on };
                self.change(room, seq, change, client_id, &name).await
            }
            ClientMsg::Open { with } => self.open(with, &name).await,
            ClientMsg::Conversations => match conversation::list(&self.hub, &name).await {
                Ok(conversations) => self.conn.send(&ServerMsg::Conversations { conversations }),
                Err(err) => {
                    tracing::error!(error = %err, "cannot read conversations");
                    let why = "conversations cannot be read now; retry shortly";
                    self.reply_error(ErrorCode::Unavailable, why);
                }
            },
            ClientMsg::Rename { name: new } => {
                if self.conn.account.is_some() {
                    let why = "a registered name cannot be changed here";
                    return self.reply_error(ErrorCode::Forbidden, why);
                }
                if let Err((code, why)) = self.guest_may_take(&new).await {
                    return self.reply_error(code, why);
                }
                if let Err((code, why)) = self.hub.hold_guest_name(&new).await {
                    return self.reply_error(code, why);
                }
                if let Err((code, why)) =
                    conversation::before_guest(&self.hub, &names::name_key(&new)).await
                {
                    self.hub.forget_hold(&new);
                    return self.reply_error(code, why);
                }
                // The old name's conversations go before the name does.
                let old_key = names::name_key(&name);
                if self.hub.conversations.has_guest(&old_key) {
                    conversation::end_guest(&self.hub, &old_key).await;
                }
                let renamed = self.hub.rename(&self.conn, &name, &new, &self.rooms);
                if renamed.is_err() {
                    self.hub.forget_hold(&new);
                }
                match renamed {
                    Ok(renamed) => {
                        // The welcome's token was for the old name.
                        let token = self
                            .hub
                            .uploads
                            .guest_token(&renamed, self.conn.id, now_ms());
                        self.conn.send(&ServerMsg::Renamed {
                            room: None,
                            from: name.to_string(),
                            to: new,
                            upload_token: Some(token),
                        });
                        self.guest_since = now_ms();
                        self.name = Some(renamed);
                    }
                    Err((code, why)) => self.reply_error(code, why),
                }
            }
            ClientMsg::Who { room } => {
                if let Err((code, why)) = conversation::check_room(&room, &name) {
                    return self.reply_error_for(code, why, Some(&room), None);
                }
                let users = self.hub.who(&room);
                self.conn.send(&ServerMsg::Presence { room, users });
            }
            ClientMsg::Rooms => match self.hub.rooms().await {
                Ok(rooms) => self.conn.send(&ServerMsg::Rooms { rooms }),
                Err(err) => {
                    tracing::error!(error = %err, "cannot read the room directory");
                    let why = "the room directory cannot be read now; retry shortly";
                    self.reply_error(ErrorCode::Unavailable, why);
                }
            },
            ClientMsg::History {
                room,
                before,
                limit,
            } => self.history(room, before, limit, &name).await,
            ClientMsg::Typing { room } => {
                if let Some(joined) = self.room(&room) {
                    joined.typing(self.conn.id, &name);
                    self.hub.signal(Signal::Typing {
                        room,
                        user: name.to_string(),
                    });
                } else {
                    self.not_in_room(&room, None);
                }
            }
            ClientMsg::Read { room, seq } => self.read(room, seq, &name).await,
            ClientMsg::Search {
                query,
                room,
                before,
                limit,
            } => self.search(query, room, before, limit, &name).await,
            ClientMsg::Ping { id } => self.conn.send(&ServerMsg::Pong { id }),
            ClientMsg::Quit => self.conn.outbox.close_after_drain(Close {
                code: close::NORMAL,
                reason: "bye",
            }),
        }
    }

    /// Handles the first request, which must be `hello` (or `ping`/`quit`).
    async fn hello(&mut self, msg: ClientMsg) {
        match msg {
            ClientMsg::Hello { name } => {
                // A signed-in connection is its account, whatever name it gives.
                let name = match &self.conn.account {
                    Some(account) => account.name.clone(),
                    None => match self.guest_may_take(&name).await {
                        Ok(()) => match self.hub.hold_guest_name(&name).await {
                            Ok(()) => {
                                let key = names::name_key(&name);
                                if let Err((code, why)) =
                                    conversation::before_guest(&self.hub, &key).await
                                {
                                    self.hub.forget_hold(&name);
                                    return self.reply_error(code, why);
                                }
                                name
                            }
                            Err((code, why)) => return self.reply_error(code, why),
                        },
                        Err((code, why)) => return self.reply_error(code, why),
                    },
                };
                let claimed = self.hub.registry.claim_name(&name, &self.conn);
                if claimed.is_err() && self.conn.account.is_none() {
                    self.hub.forget_hold(&name);
                }
                if claimed.is_ok() && self.conn.account.is_some() {
                    self.hub.tell_hold(&name).await;
                }
                match claimed {
                    Ok(claimed) => {
                        let config = &self.hub.config;
                        self.conn.send(&ServerMsg::Welcome {
                            user: name,
                            protocol: PROTOCOL_VERSION,
                            heartbeat_ms: config.heartbeat.as_millis() as u64,
                            idle_timeout_ms: config.idle_timeout.as_millis() as u64,
                            server_time: now_ms(),
                            limits: config.limits(),
                            upload_token: self.conn.account.is_none().then(|| {
                                self.hub
                                    .uploads
                                    .guest_token(&claimed, self.conn.id, now_ms())
                            }),
                        });
                        self.conn.welcomed();
                        tracing::debug!(conn = self.conn.id, user = %claimed, "hello");
                        self.guest_since = if self.conn.account.is_none() {
                            now_ms()
                        } else {
                            0
                        };
                        self.name = Some(claimed);
                    }
                    Err((code, why)) => self.reply_error(code, why),
                }
            }
            ClientMsg::Ping { id } => self.conn.send(&ServerMsg::Pong { id }),
            ClientMsg::Quit => self.conn.outbox.close_after_drain(Close {
                code: close::NORMAL,
                reason: "bye",
            }),
            // Like every refusal, it names the request it refuses.
            other => {
                let (room, client_id) = match other {
                    ClientMsg::Send {
                        room, client_id, ..
                    }
                    | ClientMsg::Edit {
                        room, client_id, ..
                    }
                    | ClientMsg::Delete {
                        room, client_id, ..
                    }
                    | ClientMsg::React {
                        room, client_id, ..
                    } => (Some(room), client_id),
                    ClientMsg::Join { room, .. }
                    | ClientMsg::Leave { room }
                    | ClientMsg::Who { room }
                    | ClientMsg::History { room, .. }
                    | ClientMsg::Read { room, .. }
                    | ClientMsg::Typing { room } => (Some(room), None),
                    ClientMsg::Search { room, .. } => (room, None),
                    _ => (None, None),
                };
                self.reply_error_for(
                    ErrorCode::HelloRequired,
                    "say hello first: {\"type\":\"hello\",\"name\":\"...\"}".into(),
                    room.as_deref(),
                    client_id,
                )
            }
        }
    }

    /// Whether a guest may go by `name`: guests are allowed, the name is
    /// well formed, and no account is registered under it.
    async fn guest_may_take(&self, name: &str) -> Result<(), (ErrorCode, String)> {
        if !self.hub.config.guests {
            return Err((
                ErrorCode::Forbidden,
                "this server requires signing in".into(),
            ));
        }
        names::validate_name(name).map_err(|why| (ErrorCode::InvalidName, why))?;
        match self.hub.is_registered(name).await {
            Ok(false) => Ok(()),
            Ok(true) => Err((
                ErrorCode::NameTaken,
                format!("{name:?} is a registered name; sign in to use it"),
            )),
            Err(err) => {
                tracing::error!(error = %err, "cannot look up a name");
                Err((
                    ErrorCode::Unavailable,
                    "cannot check the name now; retry".into(),
                ))
            }
        }
    }

    async fn join(&mut self, room: String, since: Option<u64>, name: &Name) {
        if let Err((code, why)) = conversation::check_room(&room, name) {
            return self.reply_error_for(code, why, Some(&room), None);
        }
        // A conversation whose guest left is no longer one to be in.
        self.rooms.retain(|r| !r.is_closed());
        if let Some(why) = self.past_cap(&room).filter(|_| !self.in_room(&room)) {
            return self.reply_error_for(ErrorCode::TooManyRooms, why, Some(&room), None);
        }
        if let Some(peer) = names::conversation_peer(&room, &names::name_key(name)) {
            let guest = self.conn.account.is_none();
            if let Err((code, why)) = conversation::open(&self.hub, name, guest, peer).await {
                return self.reply_error_for(code, why, Some(&room), None);
            }
        }
        let marker = match self.stored_marker(name, &room, since.is_some()).await {
            Ok(marker) => marker,
            Err(err) => {
                // The room works without it; the client counts from what
                // it has.
                tracing::warn!(error = %err, %room, "cannot read a read marker");
                JoinMarker::Nothing
            }
        };
        match self.hub.join(&room, &self.conn, name, since, marker).await {
            Ok((joined, last)) => {
                if marker == JoinMarker::End && self.conn.account.is_some() {
                    // A first join marked the room read: keep it so.
                    self.store_marker(name, &room, last);
                }
                if !self.in_room(&room) {
                    // Grow by one past the first: most connections are in
                    // one room, and few in many.
                    self.rooms.reserve_exact(1);
                    self.rooms.push(joined);
                }
            }
            Err(err) => {
                tracing::error!(error = %err, %room, "cannot load a room");
                let why = "the room's history cannot be read now; retry shortly".to_string();
                self.reply_error_for(ErrorCode::Unavailable, why, Some(&room), None);
            }
        }
    }

    /// The read marker a join of `room` sends behind its history. An
    /// account's is stored; a first join without `since` marks what the
    /// room has as read. A guest's marker is its client's (a guest name
    /// has one connection): a fresh join starts it at the room's end, a
    /// resume leaves it to the client.
    async fn stored_marker(
        &self,
        name: &str,
        room: &str,
        resumed: bool,
    ) -> Result<JoinMarker, StoreError> {
        let fresh = if resumed {
            JoinMarker::Nothing
        } else if names::is_conversation(room) {
            // What the other person said while you were away is unread.
            JoinMarker::At(0)
        } else {
            JoinMarker::End
        };
        if self.conn.account.is_none() {
            return Ok(fresh);
        }
        let (user, room) = (name.to_string(), room.to_string());
        let stored = self
            .hub
            .with_store(move |store| store.read_marker(&user, &room))
            .await?;
        Ok(stored.map_or(fresh, JoinMarker::At))
    }

    /// Stores `name`'s marker in `room` at `seq` (never back), not waited
    /// for: what a first join showed as read.
    fn store_marker(&self, name: &str, room: &str, seq: u64) {
        let (user, room) = (name.to_string(), room.to_string());
        let hub = Arc::clone(&self.hub);
        tokio::spawn(async move {
            let stored = hub
                .with_store(move |store| store.mark_read(&user, &room, seq))
                .await;
            if let Err(err) = stored {
                tracing::warn!(error = %err, "cannot store a read marker");
            }
        });
    }

    /// `read`: moves this user's marker in `room` to `seq` (at most the
    /// room's last message). An account's is stored and every connection
    /// of the account hears of it, on every node; a guest's is echoed.
    async fn read(&self, room: String, seq: u64, name: &Name) {
        let Some(joined) = self.room(&room) else {
            return self.not_in_room(&room, None);
        };
        let seq = seq.min(joined.delivered());
        if self.conn.account.is_none() {
            return self.conn.send(&ServerMsg::Read { room, seq });
        }
        let (user, key) = (name.to_string(), room.clone());
        match self
            .hub
            .with_store(move |store| store.mark_read(&user, &key, seq))
            .await
        {
            Ok(marker) if marker == seq => self.hub.tell_read(name, room, seq),
            Ok(_) => {} // another connection read further, and said so
            Err(err) => {
                tracing::error!(error = %err, %room, "cannot store a read marker");
                let why = "the read marker cannot be stored now; retry shortly".to_string();
                self.reply_error_for(ErrorCode::Unavailable, why, Some(&room), None);
            }
        }
    }

    async fn history(&self, room: String, before: Option<u64>, limit: Option<u32>, name: &str) {
        if let Err((code, why)) = conversation::check_room(&room, name) {
            return self.reply_error_for(code, why, Some(&room), None);
        }
        let max = hubbub_protocol::Limits::DEFAULT_MAX_HISTORY;
        let limit = limit.map_or(max, |l| (l as usize).min(max));
        match self.hub.history(&room, before, limit).await {
            Ok(stored) => {
                let messages: Vec<HistoryMessage> = stored.iter().map(history_message).collect();
                self.conn.send(&ServerMsg::History {
                    room,
                    has_more: messages.len() == limit
                        && messages.first().is_some_and(|m| m.seq > 1),
                    messages,
                    before,
                    resync: false,
                });
            }
            Err(err) => {
                tracing::error!(error = %err, %room, "cannot read history");
                let why = "history cannot be read now; retry shortly".to_string();
                self.reply_error_for(ErrorCode::Unavailable, why, Some(&room), None);
            }
        }
    }

    /// `search`: every room's stored messages are public (anyone may
    /// join a room and page through its history), so any of them may be
    /// found; of the private conversations, only the searcher's own.
    async fn search(
        &self,
        query: String,
        room: Option<String>,
        before: Option<String>,
        limit: Option<u32>,
        name: &str,
    ) {
        let refuse = |code, why: String| self.reply_error_for(code, why, room.as_deref(), None);
        if let Some(Err((code, why))) = room.as_deref().map(|r| conversation::check_room(r, name)) {
            return refuse(code, why);
        }
        if query.len() > Limits::MAX_SEARCH_BYTES {
            let why = format!(
                "a search query is at most {} bytes",
                Limits::MAX_SEARCH_BYTES
            );
            return refuse(ErrorCode::BadField, why);
        }
        let words = search_words(&query);
        if words.is_empty() {
            let why = "a search query needs at least one word (letters or digits)";
            return refuse(ErrorCode::BadField, why.to_string());
        }
        if words.len() > Limits::MAX_SEARCH_WORDS {
            let why = format!(
                "a search query has at most {} words",
                Limits::MAX_SEARCH_WORDS
            );
            return refuse(ErrorCode::BadField, why);
        }
        let before = match before.as_deref().map(SearchCursor::decode) {
            None => None,
            Some(Some(cursor)) => Some(cursor),
            Some(None) => {
                let why = "\"before\" is not the \"next\" of a search_results frame";
                return refuse(ErrorCode::BadField, why.to_string());
            }
        };
        let limit = limit.map_or(Limits::DEFAULT_SEARCH_RESULTS, |l| {
            (l as usize).clamp(1, Limits::MAX_SEARCH_RESULTS)
        });
        // One more than asked tells whether there is a next page.
        let search = SearchQuery {
            words,
            room: room.clone(),
            reader: names::name_key(name),
            before,
            limit: limit + 1,
        };
        match self
            .hub
            .with_store(move |store| store.search(&search))
            .await
        {
            Ok(mut found) => {
                let next = (found.len() > limit).then(|| {
                    found.truncate(limit);
                    SearchCursor::at(&found[limit - 1]).encode()
                });
                let results = found
                    .into_iter()
                    .map(|m| SearchHit {
                        room: m.room,
                        seq: m.seq,
                        from: m.from,
                        text: m.text,
                        sent_at: m.sent_at,
                        attachments: m.attachments,
                    })
                    .collect();
                self.conn.send(&ServerMsg::SearchResults {
                    query,
                    results,
                    next,
                });
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot search messages");
                let why = "messages cannot be searched now; retry shortly".to_string();
                refuse(ErrorCode::Unavailable, why);
            }
        }
    }

    /// `edit`, `delete` or `react` of message `seq` in `room`: checked
    /// against its target ([`checks::event`]), then said like a
    /// `send`, as an event row. A retry of one already said is acked
    /// with its `seq` without checking again.
    async fn change(
        &self,
        room: String,
        seq: u64,
        change: Change,
        client_id: Option<String>,
        name: &Name,
    ) {
        let Some(joined) = self.room(&room).cloned() else {
            return self.not_in_room(&room, client_id);
        };
        if let Err((code, why)) = check_client_id(client_id.as_deref()) {
            return self.reply_error_for(code, why, Some(&room), client_id);
        }
        if let Some(said) = self.retried(&joined, name, client_id.as_deref()) {
            return self.answer_said(&joined, client_id, Ok(said));
        }
        let author = checks::Author {
            name,
            guest_since: (self.guest_since > 0).then_some(self.guest_since),
        };
        let said = match checks::event(&self.hub, &joined, author, seq, change).await {
            Ok(draft) => {
                let draft = StoredMessage {
                    client_id: client_id.clone(),
                    ..draft
                };
                self.hub.say(&joined, &self.conn, draft)
            }
            Err(refused) => Err(refused),
        };
        self.answer_said(&joined, client_id, said);
    }

    /// What became of an earlier request of this user with `client_id` in
    /// `room`, if the room remembers one ([`Room::retried`]).
    fn retried(&self, room: &Arc<Room>, name: &str, client_id: Option<&str>) -> Option<Said> {
        room.retried(&self.conn, names::name_key(name), client_id?)
    }

    /// Answers a request said in `room` (`send`, `edit`, `delete`,
    /// `react`): an ack once durable, or the refusal.
    fn answer_said(
        &self,
        room: &Arc<Room>,
        client_id: Option<String>,
        said: Result<Said, (ErrorCode, String)>,
    ) {
        match said {
            Ok(Said::Queued | Said::Waiting) => {} // acked once durable
            Ok(Said::Duplicate(seq)) => {
                // Durable already; still behind its message, like every
                // ack: a client that resumed from before it (the first ack
                // was lost with the link) gets the message first.
                let ack = frame(&ServerMsg::Ack {
                    client_id,
                    room: Some(room.name.clone()),
                    seq: Some(seq),
                });
                self.conn.outbox.push_after(Arc::clone(room), seq, &ack);
            }
            Err((code, why)) => self.reply_error_for(code, why, Some(&room.name), client_id),
        }
    }

    /// `open`: the conversation with `with`, opened (recorded) if new,
    /// told to every connection of this user, here and on other nodes.
    async fn open(&self, with: String, name: &Name) {
        if let Err(why) = names::validate_name(&with) {
            return self.reply_error(ErrorCode::InvalidName, why);
        }
        let me = names::name_key(name);
        if names::name_key(&with) == me {
            let why = "a conversation is between two people: that is your own name";
            return self.reply_error(ErrorCode::BadField, why);
        }
        let guest = self.conn.account.is_none();
        match conversation::open(&self.hub, name, guest, &with).await {
            Ok(record) => {
                let peer = record.peer_of(&me);
                conversation::tell(&self.hub, &me, &record.room, &peer.name, true);
            }
            Err((code, why)) => self.reply_error(code, why),
        }
    }

    fn not_in_room(&self, room: &str, client_id: Option<String>) {
        self.reply_error_for(
            ErrorCode::NotInRoom,
            format!("join {room:?} first"),
            Some(room),
            client_id,
        );
    }

    /// The files `ids` as a message of `name` carries them: each an upload
    /// of `name`'s, at most `--max-files-per-message`, each once.
    async fn attachments(
        &self,
        ids: Vec<String>,
        name: &str,
    ) -> Result<Vec<Attachment>, (ErrorCode, String)> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let max = self.hub.config.max_files_per_message;
        if ids.len() > max {
            let why = format!("a message carries at most {max} files");
            return Err((ErrorCode::TooManyFiles, why));
        }
        if let Some(twice) = ids
            .iter()
            .enumerate()
            .find(|(i, id)| ids[..*i].contains(id))
        {
            let why = format!("file {:?} is attached twice", twice.1);
            return Err((ErrorCode::BadField, why));
        }
        let lookup = ids.clone();
        let found = self
            .hub
            .with_store(move |store| {
                lookup
                    .iter()
                    .map(|id| store.file(id))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await
            .map_err(|err: StoreError| {
                tracing::error!(error = %err, "cannot look up attachments");
                let why = "files cannot be attached right now; retry shortly";
                (ErrorCode::Unavailable, why.to_string())
            })?;
        let me = names::name_key(name);
        ids.iter()
            .zip(found)
            .map(|(id, file): (&String, Option<FileRecord>)| match file {
                Some(file) if names::name_key(&file.uploader) == me => Ok(file.attachment()),
                _ => {
                    let shown: String = id.chars().take(64).collect();
                    let why = format!("no file {shown:?} uploaded by you");
                    Err((ErrorCode::UnknownFile, why))
                }
            })
            .collect()
    }

    /// `text` as a message may say it; empty only with files.
    fn check_text(&self, text: &str, with_files: bool) -> Result<(), (ErrorCode, String)> {
        check_text(self.hub.config.max_text_bytes, text, with_files)
    }
}

/// `text` as a message (or an edit) may say it, at most `max` bytes; empty
/// only with files.
pub fn check_text(max: usize, text: &str, with_files: bool) -> Result<(), (ErrorCode, String)> {
    if text.trim().is_empty() && !with_files {
        Err((ErrorCode::EmptyText, "the message is empty".into()))
    } else if text.contains('\0') {
        // No store keeps it alike (PostgreSQL's text refuses it), and no
        // one types it.
        Err((ErrorCode::BadField, "the message contains U+0000".into()))
    } else if text.len() > max {
        Err((
            ErrorCode::TextTooLong,
            format!("the message is longer than {max} bytes"),
        ))
    } else {
        Ok(())
    }
}

/// Longest `client_id`, in bytes: it is stored with the message.
pub const MAX_CLIENT_ID_BYTES: usize = 128;

/// A `client_id` is stored with its message and compared on retries: short,
/// and without U+0000.
fn check_client_id(client_id: Option<&str>) -> Result<(), (ErrorCode, String)> {
    match client_id {
        Some(id) if id.len() > MAX_CLIENT_ID_BYTES => Err((
            ErrorCode::BadField,
            format!("client_id is longer than {MAX_CLIENT_ID_BYTES} bytes"),
        )),
        Some(id) if id.contains('\0') => {
            Err((ErrorCode::BadField, "client_id contains U+0000".into()))
        }
        _ => Ok(()),
    }
}
