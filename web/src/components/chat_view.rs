//! The middle column for one chat: its header, timeline, who is typing and
//! the composer. Files dropped anywhere on it, or pasted into it, are
//! uploaded for the chat's next message.

use std::rc::Rc;

use wasm_bindgen::JsCast;
use web_sys::{ClipboardEvent, DataTransfer, Element, FileList};
use yew::prelude::*;

use super::composer::{ComposerProps, Drafts};
use super::message_list::MessageListProps;
use super::part::{Part, Piece};
use crate::fmt::now_ms;
use hubbub_client::pending::PendingSend;

use crate::state::{Action, Chat, Copied};
use hubbub_protocol::{ClientMsg, Quote};

#[derive(Properties, PartialEq)]
pub struct ChatViewProps {
    pub chat: Rc<Chat>,
    pub connected: bool,
    pub me: Option<AttrValue>,
    /// Own messages on their way to this chat, oldest first.
    pub pending: Copied<Vec<PendingSend>>,
    pub max_bytes: usize,
    pub drafts: Drafts,
    /// A guest's upload token, for file links (`None` for an account).
    pub token: Option<AttrValue>,
    /// Send the text (a caption, with files) and the upload ids.
    pub on_send: Callback<(String, Vec<String>)>,
    pub on_typing: Callback<()>,
    pub on_dismiss: Callback<String>,
    pub on_load_older: Callback<u64>,
    /// The end of the chat is on screen.
    pub on_seen: Callback<()>,
    /// Times the tab became visible.
    pub visible: u32,
    /// The `seq` of a message to bring into view (a search result).
    pub found: Option<u64>,
    /// Show the member list (on narrow screens it is a drawer).
    pub on_members: Callback<()>,
    /// Own messages sent after this time (the server's clock) may be edited.
    pub edit_after: u64,
    /// The message being edited, by `seq`.
    pub editing: Option<u64>,
    /// The message the next one answers.
    pub reply: Option<Quote>,
    /// Send an `edit`, `delete` or `react`.
    pub on_change: Callback<ClientMsg>,
    /// Reply, edit, or show a message.
    pub on_action: Callback<Action>,
}

// A plain function, not a component: a component costs the bundle its own
// copy of Yew's lifecycle code, and this one keeps no state.
pub fn chat_view(props: &ChatViewProps) -> Html {
    let chat = &props.chat;
    let label = chat.label();
    let subtitle = match &chat.with {
        None => format!("{} online", chat.members.len()),
        Some(_) => "Private conversation".to_string(),
    };
    let now = now_ms();
    let typing: Vec<&str> = chat
        .typing
        .iter()
        .filter(|(_, until)| *until > now)
        .map(|(user, _)| user.as_str())
        .collect();
    let typing_text = match typing.as_slice() {
        [] => String::new(),
        [one] => format!("{one} is typing…"),
        [a, b] => format!("{a} and {b} are typing…"),
        _ => "Several people are typing…".to_string(),
    };
    let members = props.on_members.reform(|_: MouseEvent| ());
    // Files dragged over the chat: it says so (class `dropping`, set on
    // the element itself: no state to keep), and takes them if dropped.
    let ondragover = Callback::from(|e: DragEvent| {
        if carries_files(&e) {
            e.prevent_default();
            dropping(&e, true);
        }
    });
    // While files are over it the chat is covered by its drop zone (CSS),
    // so leaving that is leaving the chat, not entering a child.
    let ondragleave = Callback::from(|e: DragEvent| dropping(&e, false));
    let ondrop = {
        let uploads = props.drafts.1.clone();
        let target = chat.target.clone();
        Callback::from(move |e: DragEvent| {
            // Text dropped in the message box goes in as text.
            if let Some(files) = files_of(e.data_transfer()) {
                e.prevent_default();
                dropping(&e, false);
                uploads.add(&target, Some(files), false);
            }
        })
    };
    let onpaste = {
        let uploads = props.drafts.1.clone();
        let target = chat.target.clone();
        Callback::from(move |e: Event| {
            let e: ClipboardEvent = e.unchecked_into();
            // Text pastes as text; files become uploads.
            if let Some(files) = files_of(e.clipboard_data()) {
                e.prevent_default();
                uploads.add(&target, Some(files), true);
            }
        })
    };
    html! {
        <main class="chat" aria-labelledby="chat-title"
            {ondragover} {ondragleave} {ondrop} {onpaste}>
            <header class="chat-header">
                <div class="chat-heading">
                    <h1 id="chat-title" class="chat-title">
                        <span class="sigil" aria-hidden="true">{ &label[..1] }</span>{ &label[1..] }
                    </h1>
                    <span class="muted small">{ subtitle }</span>
                </div>
                <button class="button small members-toggle" type="button" onclick={members}
                    aria-controls="people">
                    <span class="icon icon-people" aria-hidden="true"></span>
                    if chat.with.is_none() {
                        { chat.members.len().to_string() }<span class="sr-only">{ " online" }</span>
                    } else {
                        { "Info" }
                    }
                </button>
            </header>
            <Part key="message-list" piece={Piece::MessageList(MessageListProps {
                chat: Copied(chat.clone()),
                connected: props.connected,
                me: props.me.clone(),
                token: props.token.clone(),
                pending: props.pending.clone(),
                on_dismiss: props.on_dismiss.clone(),
                on_load_older: props.on_load_older.clone(),
                on_seen: props.on_seen.clone(),
                visible: props.visible,
                found: props.found,
                edit_after: props.edit_after,
                editing: props.editing,
                on_change: props.on_change.clone(),
                on_action: props.on_action.clone(),
            })} />
            <div class="typing" aria-live="polite">{ typing_text }</div>
            // Keyed by chat: each chat's message box is a part of its own.
            <Part key={chat.target.0.clone()} piece={Piece::Composer(ComposerProps {
                target: chat.target.clone(),
                label,
                drafts: props.drafts.clone(),
                max_bytes: props.max_bytes,
                connected: props.connected,
                on_send: props.on_send.clone(),
                on_typing: props.on_typing.clone(),
                reply: props.reply.clone(),
                on_action: props.on_action.clone(),
            })} />
        </main>
    }
}

/// The files a drop or a paste carries, if any.
fn files_of(data: Option<DataTransfer>) -> Option<FileList> {
    data?.files().filter(|f| f.length() > 0)
}

/// Whether files (not text) are being dragged.
pub fn carries_files(e: &DragEvent) -> bool {
    e.data_transfer()
        .is_some_and(|d| d.types().includes(&"Files".into(), 0))
}

/// Marks the chat as a drop target for the files dragged over it, or not.
/// (Yew listens at the app's root, so the chat is found from the event's
/// target, not its `currentTarget`.)
fn dropping(e: &DragEvent, on: bool) {
    let chat = e
        .target()
        .and_then(|t| t.dyn_into::<Element>().ok())
        .and_then(|t| t.closest(".chat").ok().flatten());
    if let Some(chat) = chat {
        chat.set_class_name(if on { "chat dropping" } else { "chat" });
    }
}

#[derive(Properties, PartialEq)]
pub struct EmptyChatProps {
    /// Join (or create) a room.
    pub on_join: Callback<String>,
}

/// Shown when no chat is open: how to start.
// A plain function, not a component: a component costs the bundle its own
// copy of Yew's lifecycle code, and this one keeps no state.
pub fn empty_chat(props: &EmptyChatProps) -> Html {
    let lobby = props.on_join.reform(|_: MouseEvent| "lobby".to_string());
    html! {
        <main class="chat chat-empty" aria-labelledby="empty-title">
            <div class="card empty-card">
                <h1 id="empty-title">{ "No room open" }</h1>
                <p class="muted">
                    { "Join a room from the list, or create one by typing a new name. Rooms are created on first join." }
                </p>
                <button class="button primary" type="button" onclick={lobby}>{ "Join #lobby" }</button>
            </div>
        </main>
    }
}
