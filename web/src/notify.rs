//! Browser notifications: a message that mentions the reader, or any
//! message of someone else in one of the reader's private conversations,
//! while the tab is hidden and the user allowed notifications
//! (docs/protocol.md, "Mentions" and "Private conversations").
//!
//! Permission is asked only when the user clicks "Enable notifications"
//! in the user menu ([`ask`]), never on load. A notification's title is
//! the sender (and the room), its body the text's first line; clicking it
//! brings the tab forward and opens the chat. Which frames notify is
//! decided by [`worth`], free of the browser, so it is unit-tested; so is
//! [`announced`], which finds the message that started a conversation
//! this connection was not in (it comes in the join's `history`).

use hubbub_protocol::names::is_conversation;
use hubbub_protocol::{HistoryMessage, Quote, ServerMsg};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Notification, NotificationOptions, NotificationPermission};
use yew::prelude::*;

use crate::state::{same_name, Action, ChatState, Target};

/// Whether `msg` is worth a notification to `me`: its title, body and
/// the chat to open. Only others' new messages (not an edit, deletion or
/// reaction): in a room, one that mentions `me`; in a private
/// conversation, every one (titled with the sender alone).
pub fn worth(msg: &ServerMsg, me: &str) -> Option<(String, String, Target)> {
    let ServerMsg::Message {
        room,
        from,
        text,
        mentions,
        event: None,
        ..
    } = msg
    else {
        return None;
    };
    let title = match is_conversation(room) {
        true => from.clone(),
        false if mentions.iter().any(|m| same_name(m, me)) => format!("{from} in #{room}"),
        false => return None,
    };
    if same_name(from, me) {
        return None;
    }
    Some((title, Quote::of(0, from, text).text, Target(room.clone())))
}

/// How recent (by the server's clock) the latest message of a newly
/// announced conversation must be to be news.
const FRESH_MS: u64 = 60_000;

/// The news of a conversation a `conversation` frame announced (someone
/// said something in one this connection had not joined): the message
/// that did it comes as the last of the join's `history`, not as a
/// `message`. It is given back as a `message` for [`worth`], if it was
/// said within [`FRESH_MS`] of `server_now`.
pub fn announced(room: &str, history: &[HistoryMessage], server_now: u64) -> Option<ServerMsg> {
    // (An edit, deletion or reaction is no news: [`worth`] says so too.)
    let m = history.last()?;
    (m.event.is_none() && m.sent_at + FRESH_MS >= server_now).then(|| ServerMsg::Message {
        room: room.to_string(),
        seq: m.seq,
        from: m.from.clone(),
        text: m.text.clone(),
        sent_at: m.sent_at,
        attachments: Vec::new(),
        reply_to: None,
        mentions: Vec::new(),
        event: None,
    })
}

/// What the browser says of notifications: `None` if it has none.
pub fn permission() -> Option<NotificationPermission> {
    let window = web_sys::window()?;
    js_sys::Reflect::has(&window, &JsValue::from_str("Notification"))
        .unwrap_or(false)
        .then(Notification::permission)
}

/// Asks the browser for permission (the user clicked for it), then calls
/// `done`.
pub fn ask(done: Callback<()>) {
    if let Ok(promise) = Notification::request_permission() {
        wasm_bindgen_futures::spawn_local(async move {
            let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
            done.emit(());
        });
    }
}

/// Shows a notification for `msg` if it is [`worth`] one, the tab is
/// hidden and notifications are allowed; a click on it focuses the tab
/// and opens the chat.
pub fn consider(msg: &ServerMsg, me: &str, dispatch: &UseReducerDispatcher<ChatState>) {
    let hidden = web_sys::window()
        .and_then(|w| w.document())
        .is_some_and(|d| d.hidden());
    if !hidden || permission() != Some(NotificationPermission::Granted) {
        return;
    }
    let Some((title, body, target)) = worth(msg, me) else {
        return;
    };
    let options = NotificationOptions::new();
    options.set_body(&body);
    let Ok(note) = Notification::new_with_options(&title, &options) else {
        return;
    };
    let dispatch = dispatch.clone();
    let shown = note.clone();
    let onclick = Closure::once_into_js(move || {
        if let Some(window) = web_sys::window() {
            let _ = window.focus();
        }
        dispatch.dispatch(Action::Open(target));
        shown.close();
    });
    note.set_onclick(Some(onclick.unchecked_ref()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(from: &str, mentions: &[&str], event: bool) -> ServerMsg {
        said("lobby", from, mentions, event)
    }

    fn said(room: &str, from: &str, mentions: &[&str], event: bool) -> ServerMsg {
        ServerMsg::Message {
            event: event.then_some(hubbub_protocol::Event::Edit { target: 1 }),
            mentions: mentions.iter().map(|m| m.to_string()).collect(),
            reply_to: None,
            room: room.into(),
            seq: 2,
            from: from.into(),
            text: "\n@Al look at this\nsecond line".into(),
            sent_at: 0,
            attachments: Vec::new(),
        }
    }

    #[test]
    fn mentions_and_conversation_messages_from_others_notify() {
        assert_eq!(
            worth(&message("bob", &["al"], false), "Al"),
            Some((
                "bob in #lobby".into(),
                "@Al look at this…".into(),
                Target("lobby".into())
            ))
        );
        assert_eq!(worth(&message("bob", &["cy"], false), "al"), None);
        assert_eq!(worth(&message("bob", &["al"], true), "al"), None, "an edit");
        assert_eq!(worth(&message("AL", &["al"], false), "al"), None, "mine");
        // In a conversation every message of the other person notifies,
        // mention or not; an edit, and the user's own, do not.
        assert_eq!(
            worth(&said("@al+bob", "Bob", &[], false), "Al"),
            Some((
                "Bob".into(),
                "@Al look at this…".into(),
                Target("@al+bob".into())
            ))
        );
        assert_eq!(worth(&said("@al+bob", "Bob", &[], true), "al"), None);
        assert_eq!(worth(&said("@al+bob", "al", &[], false), "al"), None);
    }

    #[test]
    fn a_new_conversations_first_message_is_news_while_fresh() {
        let history = |from: &str, sent_at: u64| {
            vec![HistoryMessage {
                seq: 1,
                from: from.into(),
                text: "hi al".into(),
                sent_at,
                attachments: Vec::new(),
                reply_to: None,
                mentions: Vec::new(),
                event: None,
            }]
        };
        let news = announced("@al+bob", &history("bob", 1_000), 1_000 + FRESH_MS);
        assert_eq!(
            worth(&news.unwrap(), "al"),
            Some(("bob".into(), "hi al".into(), Target("@al+bob".into())))
        );
        assert_eq!(
            announced("@al+bob", &history("bob", 1_000), 1_001 + FRESH_MS),
            None,
            "old news"
        );
        assert_eq!(announced("@al+bob", &[], 0), None);
        let own = announced("@al+bob", &history("al", 1_000), 1_000).unwrap();
        assert_eq!(worth(&own, "al"), None);
    }
}
