//! Checks on top of room messages: replies (`send` `reply_to`),
//! `@name` mentions, and the edits, deletions and reactions of earlier
//! messages (docs/protocol.md, "Edits, deletions and reactions").
//!
//! An edit, deletion or reaction is an *event row*: a message of the room
//! with its own `seq` and an [`Event`], said through the same durable path
//! as `send` ([`Hub::say`]: group commit, ack once durable, idempotent
//! `client_id` retries). The store folds it into its target in the commit's
//! transaction ([`crate::store::Messages::append`]), so what everything that
//! replays a room replays is the events in order, and what history and
//! search read from the store is the folded message.
//!
//! This module checks a request against its target, read from the store
//! on the blocking pool ([`Hub::with_store`]), never under a lock: the
//! store, not a room's in-memory log, knows whether a message was edited or
//! deleted. It builds the row [`Hub::say`] is given; the session sends it.

use hubbub_protocol::emoji::{validate_emoji, MAX_REACTIONS_PER_MESSAGE};
use hubbub_protocol::{names, ErrorCode, Event, Quote};

use crate::hub::Hub;
use crate::room::Room;
use crate::session::check_text;
use crate::store::{StoreError, StoredMessage};
use crate::timers::now_ms;

/// Why a request is refused: its error code and a sentence.
pub type Refusal = (ErrorCode, String);

/// What a request does to an earlier message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `edit`: its text becomes this.
    Edit { text: String },
    /// `delete`.
    Delete,
    /// `react`: the sender puts (`on`) or takes back `emoji`.
    React { emoji: String, on: bool },
}

/// Who asks to change a message.
#[derive(Debug, Clone, Copy)]
pub struct Author<'a> {
    /// The name the request comes from.
    pub name: &'a str,
    /// For a guest, when it took `name` (ms since the epoch): guest names
    /// are freed and taken again, so a guest owns only what its name said
    /// since then. `None` for an account, which owns its name for good.
    pub guest_since: Option<u64>,
}

/// Checks `change` of message `seq` of `room` by `author` and gives the event
/// row to say (its `client_id` is the caller's to set). Refused with
/// `unknown_message` (no such message, deleted, or an event),
/// `not_author` (edit or delete of someone else's), `edit_window_passed`,
/// `invalid_emoji`, or as `send` refuses the text of an edit.
pub async fn event(
    hub: &Hub,
    room: &Room,
    author: Author<'_>,
    seq: u64,
    change: Change,
) -> Result<StoredMessage, Refusal> {
    if let Change::React { emoji, .. } = &change {
        validate_emoji(emoji).map_err(|why| (ErrorCode::InvalidEmoji, why))?;
    }
    let reacting = matches!(change, Change::React { .. });
    let (target, emoji) = target(hub, room, seq, reacting).await?;
    let (text, event, mentions) = match change {
        Change::Edit { text } => {
            owns(&target, author)?;
            let window = hub.config.edit_window.as_millis() as u64;
            if now_ms().saturating_sub(target.sent_at) > window {
                let why = format!(
                    "message {seq} was sent more than {} ago; it can no longer be edited",
                    humantime::format_duration(hub.config.edit_window)
                );
                return Err((ErrorCode::EditWindowPassed, why));
            }
            check_text(
                hub.config.max_text_bytes,
                &text,
                !target.attachments.is_empty(),
            )?;
            let mentions = mentions(hub, &text).await;
            (text, Event::Edit { target: seq }, mentions)
        }
        Change::Delete => {
            owns(&target, author)?;
            (String::new(), Event::Delete { target: seq }, Vec::new())
        }
        Change::React { emoji: new, on } => {
            if on && !emoji.contains(&new) && emoji.len() >= MAX_REACTIONS_PER_MESSAGE {
                let why = format!(
                    "message {seq} has {MAX_REACTIONS_PER_MESSAGE} different reactions already"
                );
                return Err((ErrorCode::InvalidEmoji, why));
            }
            let event = Event::React {
                target: seq,
                emoji: new,
                on,
            };
            (String::new(), event, Vec::new())
        }
    };
    Ok(StoredMessage {
        from: author.name.to_string(),
        text,
        mentions,
        event: Some(event),
        ..StoredMessage::default()
    })
}

/// The quote a reply to message `seq` of `room` carries: its sender and
/// first line, or, for a message of files only, its first file's name.
pub async fn quote(hub: &Hub, room: &Room, seq: u64) -> Result<Quote, Refusal> {
    let (original, _) = target(hub, room, seq, false).await?;
    let text = match original.attachments.first() {
        Some(file) if original.text.trim().is_empty() => file.name.as_str(),
        _ => original.text.as_str(),
    };
    Ok(Quote::of(seq, &original.from, text))
}

/// The users `text` `@name`s, resolved against the names the server knows:
/// users online (here, and on the other nodes of a cluster) and accounts
/// (one store read, only for names not online), each spelled as its user
/// is. Text without `@` costs nothing. If accounts cannot be read now, the
/// names online are all that is resolved (a mention is not worth refusing
/// a message for).
pub async fn mentions(hub: &Hub, text: &str) -> Vec<String> {
    if !text.contains('@') {
        return Vec::new();
    }
    let candidates = names::mentioned(text);
    let mut resolved: Vec<Option<String>> = candidates
        .iter()
        .map(|name| hub.online_name(&names::name_key(name)))
        .collect();
    let unknown: Vec<(usize, String)> = resolved
        .iter()
        .enumerate()
        .filter(|(_, found)| found.is_none())
        .map(|(at, _)| (at, candidates[at].to_string()))
        .collect();
    if !unknown.is_empty() {
        let accounts = hub
            .with_store(move |store| {
                unknown
                    .into_iter()
                    .map(|(at, name)| Ok((at, store.user(&name)?.map(|user| user.name))))
                    .collect::<Result<Vec<_>, StoreError>>()
            })
            .await;
        match accounts {
            Ok(accounts) => {
                for (at, name) in accounts {
                    resolved[at] = name;
                }
            }
            Err(err) => tracing::warn!(error = %err, "cannot look up mentioned accounts"),
        }
    }
    let mut mentions: Vec<String> = Vec::new();
    for name in resolved.into_iter().flatten() {
        let key = names::name_key(&name);
        if !mentions.iter().any(|m| names::name_key(m) == key) {
            mentions.push(name);
        }
    }
    mentions
}

/// Message `seq` of `room` as stored now, if it is a message (not an event)
/// and not deleted, with the distinct emoji on it when `with_emoji`.
async fn target(
    hub: &Hub,
    room: &Room,
    seq: u64,
    with_emoji: bool,
) -> Result<(StoredMessage, Vec<String>), Refusal> {
    let unknown = || {
        let why = format!("there is no message {seq} in {:?}", room.name);
        (ErrorCode::UnknownMessage, why)
    };
    // Nothing past what the room has committed can be one (no read).
    if seq == 0 || seq > room.delivered() {
        return Err(unknown());
    }
    let name = room.name.clone();
    let found = hub
        .with_store(move |store| {
            let Some(msg) = store.message(&name, seq)? else {
                return Ok(None);
            };
            let emoji = if with_emoji && msg.event.is_none() && !msg.deleted {
                store.reaction_emoji(&name, seq)?
            } else {
                Vec::new()
            };
            Ok(Some((msg, emoji)))
        })
        .await
        .map_err(|err| {
            tracing::error!(error = %err, room = %room.name, "cannot read a message");
            let why = "the message cannot be read now; retry shortly".to_string();
            (ErrorCode::Unavailable, why)
        })?;
    match found {
        Some((msg, emoji)) if msg.event.is_none() && !msg.deleted => Ok((msg, emoji)),
        _ => Err(unknown()),
    }
}

/// Whether `author` wrote `msg`: the same name (ignoring case) and, for a
/// guest, said since it took the name.
fn owns(msg: &StoredMessage, author: Author<'_>) -> Result<(), Refusal> {
    if names::name_key(&msg.from) != names::name_key(author.name) {
        let why = format!("message {} is {}'s, not yours", msg.seq, msg.from);
        return Err((ErrorCode::NotAuthor, why));
    }
    if author.guest_since.is_some_and(|since| msg.sent_at < since) {
        let why = format!(
            "message {} was said by an earlier guest named {}; a guest may change only \
             what it said since it took its name",
            msg.seq, msg.from
        );
        return Err((ErrorCode::NotAuthor, why));
    }
    Ok(())
}
