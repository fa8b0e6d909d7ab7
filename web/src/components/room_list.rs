//! The left column: joined rooms, the join form, private conversations
//! (each with the other person's online dot) and the room directory.

use std::rc::Rc;

use hubbub_protocol::names::{validate_room, MAX_ROOM_CHARS};
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::fmt::flag;

use super::part::{Part, Piece};
use crate::state::{Chat, Target};

#[derive(Properties, PartialEq)]
pub struct RoomListProps {
    pub chats: Vec<Rc<Chat>>,
    pub current: Option<Target>,
    /// Rooms on the server and their member counts.
    pub directory: Vec<(String, usize)>,
    pub on_open: Callback<Target>,
    pub on_close: Callback<Target>,
    pub on_join: Callback<String>,
    pub on_refresh: Callback<()>,
}

// A plain function, not a component: a component costs the bundle its own
// copy of Yew's lifecycle code, and this one keeps no state.
pub fn room_list(props: &RoomListProps) -> Html {
    let rooms: Vec<&Rc<Chat>> = props.chats.iter().filter(|c| c.with.is_none()).collect();
    let conversations: Vec<&Rc<Chat>> = props.chats.iter().filter(|c| c.with.is_some()).collect();
    let others: Vec<&(String, usize)> = props
        .directory
        .iter()
        .filter(|(room, _)| !rooms.iter().any(|c| c.target.0 == *room))
        .collect();
    let item = |chat: &Rc<Chat>| {
        let target = chat.target.clone();
        let active = props.current.as_ref() == Some(&target);
        let open = props.on_open.reform({
            let target = target.clone();
            move |_: MouseEvent| target.clone()
        });
        let close = props.on_close.reform({
            let target = target.clone();
            move |_: MouseEvent| target.clone()
        });
        let label = chat.label();
        let online = chat.peer_online(&props.chats);
        let close_text = if chat.with.is_some() {
            "Close"
        } else {
            "Leave"
        };
        let close_label = format!("{close_text} {label}");
        let mut name = label.clone();
        if online {
            name.push_str(", online");
        }
        if chat.unread > 0 {
            name.push_str(&format!(", {} unread", chat.unread));
        }
        if chat.mentions > 0 {
            name.push_str(&format!(", {} mentioning you", chat.mentions));
        }
        html! {
            <li key={target.0.clone()} CLASS={if active { "nav-item active" } else { "nav-item" }}>
                <button class="nav-link" type="button" onclick={open}
                    aria-current={active.then_some("page")}
                    aria-label={name}>
                    if chat.with.is_some() {
                        <span CLASS={if online { "presence-dot online" } else { "presence-dot" }}
                            aria-hidden="true"></span>
                    } else {
                        <span class="nav-sigil" aria-hidden="true">{ "#" }</span>
                    }
                    <span class="nav-name">{ label[1..].to_string() }</span>
                    // The space keeps the visible text ("lobby 2") inside
                    // the accessible name ("#lobby, 2 unread").
                    if chat.unread > 0 {
                        { " " }<span class="badge" aria-hidden="true">{ chat.unread.min(99) }</span>
                    }
                    // Mentions apart: "@2".
                    if chat.mentions > 0 {
                        { " " }<span class="badge mention" aria-hidden="true">{ "@" }{ chat.mentions.min(99) }</span>
                    }
                </button>
                <button class="icon-button nav-close" type="button" onclick={close}
                    aria-label={close_label} title={close_text}>{ "✕" }</button>
            </li>
        }
    };
    let refresh = props.on_refresh.reform(|_: MouseEvent| ());
    html! {
        <div class="room-list">
            <section aria-labelledby="rooms-heading">
                <h2 id="rooms-heading" class="section-title">{ "Rooms" }</h2>
                if rooms.is_empty() {
                    <p class="muted small pad">{ "You are in no room yet." }</p>
                } else {
                    <ul class="nav-list">{ for rooms.into_iter().map(item) }</ul>
                }
                <Part key="join-form" piece={Piece::JoinForm(JoinFormProps { on_join: props.on_join.clone() })} />
            </section>
            if !conversations.is_empty() {
                <section aria-labelledby="conversations-heading">
                    <h2 id="conversations-heading" class="section-title">{ "Direct messages" }</h2>
                    <ul class="nav-list" id="conversation-list">{ for conversations.into_iter().map(item) }</ul>
                </section>
            }
            <section aria-labelledby="directory-heading">
                <div class="section-head">
                    <h2 id="directory-heading" class="section-title">{ "Other rooms" }</h2>
                    <button class="icon-button" type="button" onclick={refresh}
                        aria-label="Refresh the room list" title="Refresh">{ "↻" }</button>
                </div>
                if others.is_empty() {
                    <p class="muted small pad">{ "No other rooms right now." }</p>
                } else {
                    <ul class="nav-list">
                        { for others.into_iter().map(|(room, members)| {
                            let join = props.on_join.reform({
                                let room = room.clone();
                                move |_: MouseEvent| room.clone()
                            });
                            html! {
                                <li key={room.clone()} class="nav-item">
                                    <button class="nav-link" type="button" onclick={join}
                                        aria-label={format!("Join #{room}, {members} online")}>
                                        <span class="nav-sigil" aria-hidden="true">{ "#" }</span>
                                        <span class="nav-name">{ room.clone() }</span>
                                        { " " }<span class="count" aria-hidden="true">{ *members }</span>
                                    </button>
                                </li>
                            }
                        }) }
                    </ul>
                }
            </section>
        </div>
    }
}

#[derive(PartialEq)]
pub struct JoinFormProps {
    pub on_join: Callback<String>,
}

/// "Join or create a room": lower-cases as you type and explains bad names.
/// (A [`Piece`] of its own.)
#[hook]
pub fn use_join_form(props: &JoinFormProps) -> Html {
    let value = use_state(String::new);
    // Why the name was refused (empty: it was not).
    let error = use_state(String::new);
    let oninput = {
        let value = value.clone();
        let error = error.clone();
        Callback::from(move |e: InputEvent| {
            let input = e.target_unchecked_into::<HtmlInputElement>();
            let text = input.value().trim().to_ascii_lowercase().replace(' ', "-");
            let text = text.trim_start_matches('#').to_string();
            error.set(String::new());
            value.set(text);
        })
    };
    let onsubmit = {
        let value = value.clone();
        let error = error.clone();
        let on_join = props.on_join.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            match validate_room(&value) {
                Ok(()) => {
                    on_join.emit((*value).clone());
                    value.set(String::new());
                }
                Err(why) => error.set(why),
            }
        })
    };
    html! {
        <form class="join-form" {onsubmit} novalidate=true>
            <label for="join-input" class="sr-only">{ "Join or create a room" }</label>
            <div class="input-row">
                <input id="join-input" CLASS={if !error.is_empty() { "input input-small invalid" } else { "input input-small" }}
                    type="text" placeholder="Join or create a room" autocomplete="off"
                    autocapitalize="off" spellcheck="false"
                    maxlength={MAX_ROOM_CHARS.to_string()}
                    value={(*value).clone()} {oninput}
                    aria-invalid={flag(!error.is_empty())}
                    aria-describedby="join-error" />
                <button class="button small" type="submit" aria-label="Join room">{ "Join" }</button>
            </div>
            <p id="join-error" class="help error" role="alert">{ (*error).clone() }</p>
        </form>
    }
}
