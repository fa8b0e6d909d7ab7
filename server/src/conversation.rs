//! Private conversations (docs/protocol.md, "Private conversations"): a
//! direct message is said in a room named after its two people
//! (`@alice+bob`, [`names::conversation`]), so it has everything a room
//! has — `seq`s, durable sends with retries, history, resume, read
//! markers, edits, reactions, search — and this module adds only what
//! differs:
//!
//! - **who may**: only the two people it names may join, read or search it
//!   ([`check_room`]);
//! - **who it is with**: opening one checks that the other person exists
//!   (an account, or a guest online now) and records it in the store
//!   ([`open`], [`crate::store::Conversations`]);
//! - **news**: a connection of either person that has not joined it is
//!   told `conversation` when something is said in it ([`said`]), on this
//!   node and through the others;
//! - **how long**: a guest's conversations are deleted when its name goes
//!   ([`end_guest`]), and their members told `leave_ok`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::Mutex;

use hubbub_protocol::{names, ConversationInfo, ErrorCode, ServerMsg};

use crate::hub::Hub;
use crate::outbox::frame;
use crate::room::Room;
use crate::store::{ConversationRecord, Party, Signal, StoreError};
use crate::timers::now_ms;

/// What this node knows of private conversations: their records (who the
/// two are), and which guests here have any (whose name must not be freed
/// before they are deleted).
#[derive(Default)]
pub struct Known {
    records: Mutex<HashMap<String, ConversationRecord>>,
    /// Name keys of guests with a conversation recorded through this node
    /// (or told of by another): their conversations go with their name.
    guests: Mutex<HashSet<String>>,
}

impl Known {
    fn remember(&self, record: &ConversationRecord) {
        for party in [&record.a, &record.b] {
            if party.guest {
                self.guests.lock().insert(party.key.clone());
            }
        }
        self.records
            .lock()
            .insert(record.room.clone(), record.clone());
    }

    /// The record of the conversation `room`, if this node has seen it.
    pub fn record(&self, room: &str) -> Option<ConversationRecord> {
        self.records.lock().get(room).cloned()
    }

    /// Notes that the guest whose key is `key`, online here, has a
    /// conversation (another node told).
    pub fn note_guest(&self, key: &str) {
        self.guests.lock().insert(key.to_string());
    }

    /// Whether the guest whose key is `key` may have conversations.
    pub fn has_guest(&self, key: &str) -> bool {
        self.guests.lock().contains(key)
    }

    /// Forgets the conversation `room` (it ended).
    fn forget_room(&self, room: &str) {
        self.records.lock().remove(room);
    }

    /// Forgets that the guest whose key is `key` has conversations (they
    /// were dropped with its name).
    fn forget_guest(&self, key: &str) {
        self.guests.lock().remove(key);
    }
}

/// Checks that the user `name` may use the room `room`: any well-formed
/// room, and of the private conversations only their own
/// (`forbidden` for anyone else's, `invalid_room` for a malformed name).
pub fn check_room(room: &str, name: &str) -> Result<(), (ErrorCode, String)> {
    if !names::is_conversation(room) {
        return names::validate_room(room).map_err(|why| (ErrorCode::InvalidRoom, why));
    }
    if names::conversation_parties(room).is_none() {
        let why =
            "a conversation's name is @ and its two people's lowercase names, sorted, joined by +";
        return Err((ErrorCode::InvalidRoom, why.into()));
    }
    if names::conversation_peer(room, &names::name_key(name)).is_none() {
        let why = "that conversation is not yours";
        return Err((ErrorCode::Forbidden, why.into()));
    }
    Ok(())
}

/// Opens the conversation between `me` (a guest when `me_guest`) and
/// `with`: checks that `with` is someone (an account, or a guest online
/// now), records it in the store if it is new, and returns its record.
pub async fn open(
    hub: &Hub,
    me: &str,
    me_guest: bool,
    with: &str,
) -> Result<ConversationRecord, (ErrorCode, String)> {
    let room = names::conversation(me, with);
    if let Some(record) = hub.conversations.record(&room) {
        // A guest's may be gone since: the record is dropped with it.
        return Ok(record);
    }
    let unavailable = |err: StoreError| {
        tracing::error!(error = %err, "cannot open a conversation");
        let why = "the conversation cannot be opened now; retry shortly";
        (ErrorCode::Unavailable, why.to_string())
    };
    let key = names::name_key(with);
    let account = {
        let key = key.clone();
        hub.with_store(move |store| store.user(&key))
            .await
            .map_err(unavailable)?
    };
    let peer = match account {
        Some(user) => Party {
            key,
            name: user.name,
            guest: false,
        },
        None => match hub.online_name(&key) {
            Some(name) => Party {
                key,
                name,
                guest: true,
            },
            None => {
                let why = format!("nobody is called {with:?}: no account, and no guest online");
                return Err((ErrorCode::UnknownUser, why));
            }
        },
    };
    let mine = Party {
        key: names::name_key(me),
        name: me.to_string(),
        guest: me_guest,
    };
    let (a, b) = if mine.key < peer.key {
        (mine, peer)
    } else {
        (peer, mine)
    };
    let record = ConversationRecord {
        room,
        a,
        b,
        opened_at: now_ms(),
        last_seq: 0,
        last_at: 0,
    };
    {
        let record = record.clone();
        hub.with_store(move |store| store.open_conversation(&record))
            .await
            .map_err(unavailable)?;
    }
    hub.conversations.remember(&record);
    Ok(record)
}

/// The conversations of `me` for a `conversations` answer: the latest
/// first, at most `max_conversations`; one with a guest only while that
/// guest is online.
pub async fn list(hub: &Hub, me: &str) -> Result<Vec<ConversationInfo>, StoreError> {
    let key = names::name_key(me);
    let limit = hub.config.max_conversations;
    let records = {
        let key = key.clone();
        hub.with_store(move |store| store.conversations(&key, limit))
            .await?
    };
    let mut infos = Vec::with_capacity(records.len());
    for record in records {
        let peer = record.peer_of(&key);
        let online = hub.online_name(&peer.key).is_some();
        if peer.guest && !online {
            continue;
        }
        infos.push(ConversationInfo {
            room: record.room.clone(),
            with: peer.name.clone(),
            online,
            last_seq: record.last_seq,
        });
        hub.conversations.remember(&record);
    }
    Ok(infos)
}

/// Checks, before something is said in the conversation `room` by `me`,
/// that its other person is still there: a guest that left took it along
/// (`unknown_user`).
pub fn check_peer(hub: &Hub, room: &str, me: &str) -> Result<(), (ErrorCode, String)> {
    let Some(record) = hub.conversations.record(room) else {
        // Dropped with its guest (this node was told), or never opened
        // here: either way not a conversation to say anything in.
        let why = "the conversation has ended: its guest left";
        return Err((ErrorCode::UnknownUser, why.into()));
    };
    let peer = record.peer_of(&names::name_key(me));
    if peer.guest && hub.online_name(&peer.key).is_none() {
        let why = format!(
            "{:?} has left: a guest's conversations end with it",
            peer.name
        );
        return Err((ErrorCode::UnknownUser, why));
    }
    Ok(())
}

/// Tells the connections of the user whose name key is `key` that the
/// conversation `room` (with `with`) has news: those that have not joined
/// it, or with `all` every one; here and on the other nodes.
pub fn tell(hub: &Hub, key: &str, room: &str, with: &str, all: bool) {
    deliver(hub, key, room, with, all);
    hub.signal(Signal::Conversation {
        user: key.to_string(),
        room: room.to_string(),
        with: with.to_string(),
        all,
    });
}

/// [`tell`] for this node's connections.
pub fn deliver(hub: &Hub, key: &str, room: &str, with: &str, all: bool) {
    let conns = hub.registry.welcomed_conns(key);
    if conns.is_empty() {
        return;
    }
    let joined = hub.room(room);
    let msg = frame(&ServerMsg::Conversation {
        room: room.to_string(),
        with: with.to_string(),
    });
    for conn in conns {
        if all || !joined.as_ref().is_some_and(|r| r.has_conn(conn.id)) {
            conn.outbox.push(&msg);
        }
    }
}

/// Something was said by `me` in the conversation `room`: the connections
/// of either person that have not joined it hear of it. Through the other
/// nodes only for a person not in the room anywhere (the usual case once
/// both have joined costs no signal).
pub fn said(hub: &Hub, room: &Arc<Room>, me: &str) {
    let Some(record) = hub.conversations.record(&room.name) else {
        return;
    };
    let key = names::name_key(me);
    let peer = record.peer_of(&key);
    let mine = if record.a.key == key {
        &record.a
    } else {
        &record.b
    };
    for (to, with) in [(peer, mine), (mine, peer)] {
        if room.has_member(&to.name) {
            deliver(hub, &to.key, &room.name, &with.name, false);
        } else {
            tell(hub, &to.key, &room.name, &with.name, false);
        }
    }
}

/// Deletes the conversations of the guest whose name key is `key` (its
/// name is going), ends their rooms here and on the other nodes. Returns
/// once the store has dropped them; a failure is logged (the next guest
/// of the name drops them before it is welcomed, see [`before_guest`]).
pub async fn end_guest(hub: &Hub, key: &str) {
    let dropped = {
        let key = key.to_string();
        hub.with_store(move |store| store.drop_conversations(&key))
            .await
    };
    match dropped {
        Ok(rooms) => {
            for room in &rooms {
                end_room(hub, room);
                hub.signal(Signal::ConversationEnded { room: room.clone() });
            }
            hub.conversations.forget_guest(key);
            if !rooms.is_empty() {
                tracing::debug!(%key, rooms = rooms.len(), "a guest's conversations ended");
            }
        }
        Err(err) => tracing::error!(error = %err, %key, "cannot delete a guest's conversations"),
    }
}

/// Before a guest takes the name whose key is `key` (or an account is
/// registered under it): drops what an earlier guest of the name left if
/// its node died before it could, or an earlier drop here failed (a lone
/// node otherwise drops them as the name goes, and its guests' all at
/// start). One read when there is nothing to drop.
pub async fn before_guest(hub: &Hub, key: &str) -> Result<(), (ErrorCode, String)> {
    if !hub.clustered() && !hub.conversations.has_guest(key) {
        return Ok(());
    }
    let left = {
        let key = key.to_string();
        hub.with_store(move |store| store.conversations(&key, 1))
            .await
    };
    match left {
        Ok(left) if left.is_empty() => Ok(()),
        Ok(_) => {
            end_guest(hub, key).await;
            Ok(())
        }
        Err(err) => {
            tracing::error!(error = %err, "cannot look up a name's conversations");
            Err((
                ErrorCode::Unavailable,
                "cannot check the name now; retry".into(),
            ))
        }
    }
}

/// The conversation `room` was deleted: its members here get `leave_ok`
/// and the room is dropped from this node (a later one of the same name
/// starts afresh from the store).
pub fn end_room(hub: &Hub, room: &str) {
    hub.conversations.forget_room(room);
    if let Some(open) = hub.drop_room(room) {
        let msg = frame(&ServerMsg::LeaveOk {
            room: room.to_string(),
        });
        for conn in open.end() {
            conn.outbox.push(&msg);
        }
    }
}
