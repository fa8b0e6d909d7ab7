//! The middle column for one chat: its header, timeline, who is typing and
//! the composer.

use std::rc::Rc;

use yew::prelude::*;

use super::composer::{Composer, Drafts};
use super::message_list::MessageList;
use crate::fmt::now_ms;
use hubbub_client::pending::PendingSend;

use crate::state::{Chat, Copied, Target};

#[derive(Properties, PartialEq)]
pub struct ChatViewProps {
    pub chat: Rc<Chat>,
    pub connected: bool,
    pub me: Option<AttrValue>,
    /// Own messages on their way to this chat, oldest first.
    pub pending: Copied<Vec<PendingSend>>,
    pub max_bytes: usize,
    pub drafts: Drafts,
    pub on_send: Callback<String>,
    pub on_typing: Callback<()>,
    pub on_dismiss: Callback<String>,
    pub on_load_older: Callback<u64>,
    /// Show the member list (on narrow screens it is a drawer).
    pub on_members: Callback<()>,
}

#[function_component(ChatView)]
pub fn chat_view(props: &ChatViewProps) -> Html {
    let chat = &props.chat;
    let (title, subtitle) = match &chat.target {
        Target::Room(room) => (
            html! { <><span class="sigil" aria-hidden="true">{ "#" }</span>{ room.clone() }</> },
            format!("{} online", chat.members.len()),
        ),
        Target::Direct(user) => (
            html! { <><span class="sigil" aria-hidden="true">{ "@" }</span>{ user.clone() }</> },
            "Direct message".to_string(),
        ),
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
    html! {
        <main class="chat" aria-labelledby="chat-title">
            <header class="chat-header">
                <div class="chat-heading">
                    <h1 id="chat-title" class="chat-title">{ title }</h1>
                    <span class="muted small">{ subtitle }</span>
                </div>
                <button class="button small members-toggle" type="button" onclick={members}
                    aria-controls="people">
                    <svg viewBox="0 0 24 24" width="16" height="16" aria-hidden="true" focusable="false">
                        <circle cx="9" cy="8" r="3.2" fill="none" stroke="currentColor" stroke-width="1.8" />
                        <path d="M3 19c.8-3.2 3.2-5 6-5s5.2 1.8 6 5M15.5 5.2a3 3 0 0 1 0 5.6M17.5 14.2c1.8.7 3 2.4 3.5 4.8"
                            fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" />
                    </svg>
                    if matches!(chat.target, Target::Room(_)) {
                        { chat.members.len().to_string() }<span class="sr-only">{ " online" }</span>
                    } else {
                        { "Info" }
                    }
                </button>
            </header>
            <MessageList chat={chat.clone()} connected={props.connected} me={props.me.clone()}
                pending={props.pending.clone()} on_dismiss={props.on_dismiss.clone()}
                on_load_older={props.on_load_older.clone()} />
            <div class="typing" aria-live="polite">{ typing_text }</div>
            <Composer key={chat.target.label()} target={chat.target.clone()} drafts={props.drafts.clone()}
                max_bytes={props.max_bytes} connected={props.connected}
                on_send={props.on_send.clone()} on_typing={props.on_typing.clone()} />
        </main>
    }
}

#[derive(Properties, PartialEq)]
pub struct EmptyChatProps {
    /// Join (or create) a room.
    pub on_join: Callback<String>,
}

/// Shown when no chat is open: how to start.
#[function_component(EmptyChat)]
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
