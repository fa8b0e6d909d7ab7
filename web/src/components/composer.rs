//! The message box: Enter sends, Shift+Enter starts a new line. What is typed
//! stays (per chat) while offline or while another chat is open.

use std::cell::RefCell;
use std::rc::Rc;

use web_sys::HtmlTextAreaElement;
use yew::prelude::*;

use crate::fmt::now_ms;
use crate::state::Target;

/// At most one `typing` notice per this many milliseconds.
const TYPING_EVERY_MS: u64 = 3_000;

/// Unsent text per chat, shared by every composer of the page. A list, not
/// a map: there are only as many drafts as open chats (at most a few
/// dozen), and a `HashMap` of its own would cost the bundle ~1 KB.
#[derive(Clone, Default)]
pub struct Drafts(Rc<RefCell<Vec<(Target, String)>>>);

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

#[derive(Properties, PartialEq)]
pub struct ComposerProps {
    pub target: Target,
    pub drafts: Drafts,
    /// The server's `max_text_bytes`.
    pub max_bytes: usize,
    pub connected: bool,
    pub on_send: Callback<String>,
    /// Called while typing in a room, at most every few seconds.
    pub on_typing: Callback<()>,
}

#[function_component(Composer)]
pub fn composer(props: &ComposerProps) -> Html {
    let text = use_state(|| props.drafts.get(&props.target));
    let last_typing = use_mut_ref(|| 0u64);
    let area = use_node_ref();
    {
        let area = area.clone();
        use_effect_with(props.target.clone(), move |_| {
            if let Some(area) = area.cast::<HtmlTextAreaElement>() {
                let _ = area.focus();
            }
        });
    }
    let bytes = text.len();
    let too_long = bytes > props.max_bytes;
    let blank = text.trim().is_empty();
    let submit = {
        let text = text.clone();
        let drafts = props.drafts.clone();
        let target = props.target.clone();
        let on_send = props.on_send.clone();
        let max = props.max_bytes;
        move || {
            let body = text.trim_end().to_string();
            if body.trim().is_empty() || body.len() > max {
                return;
            }
            on_send.emit(body);
            drafts.set(&target, String::new());
            text.set(String::new());
        }
    };
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
        Callback::from(move |e: KeyboardEvent| {
            if e.key() == "Enter" && !e.shift_key() && !e.is_composing() {
                e.prevent_default();
                submit();
            }
        })
    };
    let onsubmit = Callback::from(move |e: SubmitEvent| {
        e.prevent_default();
        submit();
    });
    let label = format!("Message {}", props.target.label());
    html! {
        <form class="composer" {onsubmit}>
            <label for="composer-input" class="sr-only">{ label.clone() }</label>
            <textarea id="composer-input" ref={area} class="composer-input" rows="1"
                placeholder={label} value={(*text).clone()} {oninput} {onkeydown}
                aria-describedby="composer-help"
                aria-invalid={too_long.to_string()} />
            <button class="button primary send" type="submit" disabled={blank || too_long}
                aria-label="Send message">
                <svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true" focusable="false">
                    <path d="M3.4 20.4 21 12 3.4 3.6 3.4 10l12.6 2-12.6 2z" fill="currentColor" />
                </svg>
            </button>
            <p id="composer-help" class={classes!("composer-help", too_long.then_some("error"))}>
                if too_long {
                    { format!("Too long: {bytes} of {} bytes.", props.max_bytes) }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_chat_keeps_its_own_draft_until_it_is_emptied() {
        let drafts = Drafts::default();
        let lobby = Target::Room("lobby".into());
        let ann = Target::Direct("ann".into());
        let rust = Target::Room("rust".into());
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
        assert_eq!(drafts.get(&Target::Room("ann".into())), "");
        assert_eq!(drafts.0.borrow().len(), 2);
    }
}
