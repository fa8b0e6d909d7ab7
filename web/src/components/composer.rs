//! The message box: Enter sends, Shift+Enter starts a new line. What is typed
//! stays (per chat) while offline or while another chat is open.
//!
//! Files come in with the attach button (or are dropped or pasted on the
//! chat), each with its progress and a button to cancel or remove it. Send
//! waits until they are all uploaded, then sends one message: the text as
//! an optional caption and the uploads as its `attachments`.

use std::cell::RefCell;
use std::rc::Rc;

use web_sys::{HtmlInputElement, HtmlTextAreaElement};
use yew::prelude::*;

use crate::fmt::flag;

use crate::fmt::now_ms;
use crate::fmt::size;
use crate::hooks::use_focus;
use crate::state::{Action, Target};
use crate::upload::{Progress, Upload, Uploads};
use hubbub_protocol::Quote;

/// At most one `typing` notice per this many milliseconds.
const TYPING_EVERY_MS: u64 = 3_000;

/// Unsent text per chat, and the files for the next messages, shared by
/// every composer of the page. A list, not a map: there are only as many
/// drafts as open chats (at most a few dozen), and a `HashMap` of its own
/// would cost the bundle ~1 KB.
#[derive(Clone, Default)]
pub struct Drafts(Rc<RefCell<Vec<(Target, String)>>>, pub Uploads);

impl PartialEq for Drafts {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

impl Drafts {
    fn get(&self, target: &Target) -> String {
        self.0
            .borrow()
            .iter()
            .find(|(t, _)| t == target)
            .map(|(_, text)| text.clone())
            .unwrap_or_default()
    }

    fn set(&self, target: &Target, text: String) {
        let mut drafts = self.0.borrow_mut();
        let at = drafts.iter().position(|(t, _)| t == target);
        match (at, text.is_empty()) {
            (Some(at), true) => {
                drafts.swap_remove(at);
            }
            (Some(at), false) => drafts[at].1 = text,
            (None, true) => {}
            (None, false) => drafts.push((target.clone(), text)),
        }
    }
}

#[derive(PartialEq)]
pub struct ComposerProps {
    pub target: Target,
    /// The chat as the UI writes it (`#lobby`, `@bob`).
    pub label: String,
    pub drafts: Drafts,
    /// The server's `max_text_bytes`.
    pub max_bytes: usize,
    pub connected: bool,
    /// Send the text and the upload ids.
    pub on_send: Callback<(String, Vec<String>)>,
    /// Called while typing in a room, at most every few seconds.
    pub on_typing: Callback<()>,
    /// The message the next one answers, shown above the box.
    pub reply: Option<Quote>,
    /// Stop replying; edit the last own message (Up in an empty box).
    pub on_action: Callback<Action>,
}

/// The message box of one chat (a [`Piece`](super::part::Piece) of its own).
#[hook]
pub fn use_composer(props: &ComposerProps) -> Html {
    let text = use_state(|| props.drafts.get(&props.target));
    let last_typing = use_mut_ref(|| 0u64);
    let area = use_node_ref();
    let picker = use_node_ref();
    // Drawn again when an upload moves on. (A `use_state::<bool>`, of
    // which the app has others, rather than a hook type of its own; its
    // `set` always draws again.)
    let redraw = use_state(|| false);
    let uploads = &props.drafts.1;
    uploads.on_change(Callback::from(move |()| redraw.set(true)));
    // Focused when it appears (a composer is keyed by its chat: a part
    // of its own for each).
    use_focus(&area, 0, true, false);
    let bytes = text.len();
    let too_long = bytes > props.max_bytes;
    let target = &props.target;
    let (busy, ready) = uploads.state(target);
    let blank = text.trim().is_empty() && !ready;
    let submit = {
        let text = text.clone();
        let drafts = props.drafts.clone();
        let target = props.target.clone();
        let on_send = props.on_send.clone();
        let max = props.max_bytes;
        move || {
            let body = text.trim_end().to_string();
            if blank || busy || body.len() > max {
                return;
            }
            on_send.emit((body, drafts.1.take(&target)));
            drafts.set(&target, String::new());
            text.set(String::new());
        }
    };
    let pick = {
        let picker = picker.clone();
        Callback::from(move |_: MouseEvent| {
            if let Some(input) = picker.cast::<HtmlInputElement>() {
                input.click();
            }
        })
    };
    let picked = {
        let uploads = uploads.clone();
        let target = target.clone();
        Callback::from(move |e: Event| {
            let input: HtmlInputElement = e.target_unchecked_into();
            uploads.add(&target, input.files(), false);
            // The same file can be picked again.
            input.set_value("");
        })
    };
    let files = uploads.with(target, |list| {
        list.iter()
            .map(|u| view_upload(u, uploads))
            .collect::<Html>()
    });
    let oninput = {
        let text = text.clone();
        let drafts = props.drafts.clone();
        let target = props.target.clone();
        let on_typing = props.on_typing.clone();
        let connected = props.connected;
        Callback::from(move |e: InputEvent| {
            let value = e.target_unchecked_into::<HtmlTextAreaElement>().value();
            drafts.set(&target, value.clone());
            text.set(value);
            let now = now_ms();
            if connected && now - *last_typing.borrow() > TYPING_EVERY_MS {
                *last_typing.borrow_mut() = now;
                on_typing.emit(());
            }
        })
    };
    let onkeydown = {
        let submit = submit.clone();
        let (on_action, empty, replying) = (
            props.on_action.clone(),
            text.is_empty(),
            props.reply.is_some(),
        );
        Callback::from(move |e: KeyboardEvent| match e.key().as_str() {
            "Enter" if !e.shift_key() && !e.is_composing() => {
                e.prevent_default();
                submit();
            }
            // Up in an empty box edits the last own message (if it may).
            "ArrowUp" if empty => {
                e.prevent_default();
                on_action.emit(Action::EditLast);
            }
            "Escape" if replying => on_action.emit(Action::Reply(None)),
            _ => {}
        })
    };
    let cancel_reply = props.on_action.reform(|_: MouseEvent| Action::Reply(None));
    let onsubmit = Callback::from(move |e: SubmitEvent| {
        e.prevent_default();
        submit();
    });
    let label = format!("Message {}", props.label);
    html! {
        <form class="composer" {onsubmit}>
            <ul class="uploads" aria-label="Files to send">{ files }</ul>
            if let Some(quote) = &props.reply {
                <p class="replying">
                    <span>{ "Replying to " }<strong>{ quote.from.clone() }</strong>{ ": " }{ quote.text.clone() }</span>
                    <button class="icon-button" type="button" onclick={cancel_reply}
                        aria-label="Cancel reply" title="Cancel reply">{ "✕" }</button>
                </p>
            }
            <button class="button attach" type="button" onclick={pick}
                aria-label="Attach files" title="Attach files">
                <span class="icon icon-attach" aria-hidden="true"></span>
            </button>
            <input ref={picker} id="attach-input" type="file" multiple=true class="sr-only"
                tabindex="-1" aria-hidden="true" onchange={picked} />
            <label for="composer-input" class="sr-only">{ label.clone() }</label>
            <textarea id="composer-input" ref={area} class="composer-input" rows="1"
                placeholder={label} value={(*text).clone()} {oninput} {onkeydown}
                aria-describedby="composer-help"
                aria-invalid={flag(too_long)} />
            <button class="button primary send" type="submit" disabled={blank || too_long || busy}
                aria-label="Send message">
                <span class="icon icon-send" aria-hidden="true"></span>
            </button>
            <p id="composer-help" CLASS={if too_long { "composer-help error" } else { "composer-help" }}>
                if too_long {
                    { format!("Too long: {bytes} of {} bytes.", props.max_bytes) }
                } else if busy {
                    { "Uploading… Send is ready when the files are." }
                } else if props.connected {
                    // Touch screens have no Shift key to speak of: say nothing.
                    <span class="key-hint">{ "Enter to send · Shift+Enter for a new line" }</span>
                } else {
                    { "Offline: messages are queued and sent on reconnect." }
                }
            </p>
        </form>
    }
}

/// One file of the next message: its name, size and progress (or why it
/// was refused), and a button to cancel or remove it.
fn view_upload(upload: &Upload, uploads: &Uploads) -> Html {
    let remove = {
        let uploads = uploads.clone();
        let key = upload.key;
        Callback::from(move |_: MouseEvent| uploads.remove(key))
    };
    let (class, status, action) = match &upload.progress {
        Progress::Sending(sent) => (
            "upload sending",
            html! { <progress max={upload.size.to_string()} value={sent.to_string()}
            aria-label={format!("Uploading {}", upload.name)} /> },
            "Cancel",
        ),
        Progress::Done(_) => ("upload done", html! { size(upload.size) }, "Remove"),
        Progress::Failed(why) => ("upload failed", html! { why.clone() }, "Remove"),
    };
    html! {
        <li key={upload.key} CLASS={class}>
            <span class="upload-name">{ upload.name.clone() }</span>
            <span class="upload-status" role={(class == "upload failed").then_some("alert")}>{ status }</span>
            <button class="icon-button" type="button" onclick={remove}
                aria-label={format!("{action} {}", upload.name)} title={action}>{ "×" }</button>
        </li>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_chat_keeps_its_own_draft_until_it_is_emptied() {
        let drafts = Drafts::default();
        let lobby = Target("lobby".into());
        let ann = Target("@al+ann".into());
        let rust = Target("rust".into());
        drafts.set(&lobby, "hello".into());
        drafts.set(&ann, "psst".into());
        drafts.set(&rust, "fn main".into());
        drafts.set(&lobby, "hello all".into());
        assert_eq!(drafts.get(&lobby), "hello all");
        assert_eq!(drafts.get(&ann), "psst");
        drafts.set(&lobby, String::new());
        assert_eq!(drafts.get(&lobby), "");
        assert_eq!(drafts.get(&ann), "psst");
        assert_eq!(drafts.get(&rust), "fn main");
        assert_eq!(drafts.get(&Target("ann".into())), "");
        assert_eq!(drafts.0.borrow().len(), 2);
    }
}
