//! What a message offers besides its text: its actions (React, Reply,
//! and on one's own Edit and Delete), the emoji picker, its reactions,
//! the inline edit form, the delete confirmation and a reply's quote.
//!
//! Plain functions of what they show: their buttons say what they do with
//! `data-act` (and `data-emoji`, `data-on`, `data-quote`), and the message
//! list has one listener for all of them (its `act`), as it has for
//! thumbnails; each closure is code in the bundle, so there is one per
//! list, not one per button per message.

use hubbub_protocol::emoji::QUICK;
use hubbub_protocol::Quote;
use yew::prelude::*;

use crate::fmt::flag;

/// `menu` of the list: nothing open.
pub const CLOSED: u8 = 0;
/// `menu` of the list: the emoji picker of a message is open.
pub const PICKING: u8 = 1;
/// `menu` of the list: a message asks whether to delete it.
pub const CONFIRMING: u8 = 2;

/// The actions of a message, shown on hover and when focus is in it.
pub fn toolbar(own: bool, editable: bool, picking: bool, connected: bool) -> Html {
    let button = |act: &'static str, icon: &'static str, label: &'static str| {
        html! {
            <button type="button" class="icon-button" data-act={act} aria-label={label}
                title={label} disabled={!connected}
                aria-expanded={(act == "react").then(|| flag(picking))}>
                <span aria-hidden="true">{ icon }</span>
            </button>
        }
    };
    html! {
        <div class="actions" role="toolbar" aria-label="Message actions">
            { button("react", "☺", "React") }
            { button("reply", "↩", "Reply") }
            if own && editable {
                { button("edit", "✎", "Edit") }
            }
            if own {
                { button("delete", "🗑", "Delete") }
            }
        </div>
    }
}

/// Whether `me` is among `users`.
fn mine(users: &[String], me: &str) -> bool {
    users.iter().any(|u| u == me)
}

/// A button that puts (`data-on="1"`) or takes back this user's `emoji`.
fn emoji_button(emoji: &str, users: &[String], me: &str, label: Option<String>) -> Html {
    let pressed = mine(users, me);
    let count = (!users.is_empty()).then(|| users.len());
    html! {
        <button type="button" class="emoji" data-act="emoji" data-emoji={emoji.to_string()}
            data-on={if pressed { "0" } else { "1" }} aria-pressed={flag(pressed)}
            title={label.clone()} aria-label={label}>
            { emoji.to_string() }
            if let Some(n) = count {
                { " " }{ n }
            }
        </button>
    }
}

/// The reactions on a message: each emoji, how many, and who on hover;
/// a click puts or takes back this user's.
pub fn reactions(list: &[(String, Vec<String>)], me: &str) -> Html {
    if list.is_empty() {
        return html! {};
    }
    let items = list.iter().map(|(emoji, users)| {
        let label = format!("{emoji} {}: {}", users.len(), users.join(", "));
        emoji_button(emoji, users, me, Some(label))
    });
    html! { <div class="reactions">{ for items }</div> }
}

/// The emoji picker of a message: the quick six, and a field for any
/// other single emoji (checked with `validate_emoji` when sent).
pub fn picker(
    list: &[(String, Vec<String>)],
    me: &str,
    on_other: &Callback<SubmitEvent>,
    on_input: &Callback<InputEvent>,
) -> Html {
    let quick = QUICK.iter().map(|emoji| {
        let users = list
            .iter()
            .find(|(e, _)| e == emoji)
            .map_or(&[][..], |(_, u)| u.as_slice());
        emoji_button(emoji, users, me, None)
    });
    html! {
        <div class="picker card" role="group" aria-label="React with">
            { for quick }
            <form class="emoji-form" onsubmit={on_other.clone()}>
                <input class="input input-small" type="text" aria-label="Another emoji"
                    placeholder="Other…" maxlength="40" autocomplete="off" oninput={on_input.clone()} />
            </form>
        </div>
    }
}

/// The inline edit form of a message: Enter or Save saves, Escape or
/// Cancel cancels (the list's key listener).
pub fn edit_form(text: &str, on_save: &Callback<SubmitEvent>) -> Html {
    html! {
        <form class="edit-form" onsubmit={on_save.clone()}>
            <label for="edit-input" class="sr-only">{ "Edit message" }</label>
            <textarea id="edit-input" class="composer-input" rows="2" value={text.to_string()} />
            <div class="edit-buttons">
                <button class="button primary small" type="submit">{ "Save" }</button>
                <button class="button small" type="button" data-act="cancel-edit">{ "Cancel" }</button>
                <span class="muted small">{ "Enter to save · Escape to cancel" }</span>
            </div>
        </form>
    }
}

/// "Delete this message?" with the button that does it.
pub fn confirm_delete() -> Html {
    html! {
        <div class="confirm" role="alertdialog" aria-label="Delete this message?">
            <span>{ "Delete this message for everyone?" }</span>
            <button class="button small danger" type="button" data-act="really-delete">{ "Delete" }</button>
            <button class="button small" type="button" data-act="cancel">{ "Cancel" }</button>
        </div>
    }
}

/// A reply's quote of its original; a click brings the original into view.
pub fn quote(quote: &Quote) -> Html {
    html! {
        <button type="button" class="quote" data-act="quote" data-quote={quote.seq.to_string()}
            title="Show the original message">
            <span class="from">{ quote.from.clone() }</span>{ " " }{ quote.text.clone() }
        </button>
    }
}
