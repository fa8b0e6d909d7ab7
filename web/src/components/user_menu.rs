//! Who you are: a menu under your name. For an account: "Sign out". For a
//! guest: "Change name" (the rename form; an account's name cannot change)
//! and "Sign in or create an account".

use hubbub_protocol::names::MAX_NAME_CHARS;

use web_sys::{HtmlElement, HtmlInputElement};
use yew::prelude::*;

use crate::fmt::flag;
use crate::hooks::use_focus;
use crate::names::validate_name;
use crate::notify;
use web_sys::NotificationPermission;

#[derive(PartialEq)]
pub struct UserMenuProps {
    pub name: AttrValue,
    /// Signed in with an account (no rename; a sign-out menu instead).
    pub account: bool,
    /// Renaming needs a live link.
    pub connected: bool,
    pub on_rename: Callback<String>,
    pub on_sign_out: Callback<()>,
}

/// Your name; opens a small menu: "Sign out" for an account, "Change name"
/// and "Sign in or create an account" for a guest. For a guest renaming,
/// the rename form in its place. (One [`Piece`](super::part::Piece) for
/// the menu and the form.)
#[hook]
pub fn use_user_menu(props: &UserMenuProps) -> Html {
    let open = use_state(|| false);
    let editing = use_state(|| false);
    let draft = use_state(String::new);
    let input = use_node_ref();
    let button = use_node_ref();
    // The rename field, when it opens, has the focus and its text selected.
    use_focus(&input, 0, *editing, true);
    if props.account || !*editing {
        return account_menu(props, &open, &button, &editing, &draft);
    }
    let problem = validate_name(draft.trim()).err();
    let cancel = {
        let editing = editing.clone();
        Callback::from(move |_: MouseEvent| editing.set(false))
    };
    let onkeydown = {
        let editing = editing.clone();
        Callback::from(move |e: KeyboardEvent| {
            if e.key() == "Escape" {
                editing.set(false);
            }
        })
    };
    let oninput = {
        let draft = draft.clone();
        Callback::from(move |e: InputEvent| {
            draft.set(e.target_unchecked_into::<HtmlInputElement>().value())
        })
    };
    let onsubmit = {
        let editing = editing.clone();
        let draft = draft.clone();
        let on_rename = props.on_rename.clone();
        let current = props.name.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let name = draft.trim().to_string();
            if validate_name(&name).is_ok() {
                if name != current.as_str() {
                    on_rename.emit(name);
                }
                editing.set(false);
            }
        })
    };
    html! {
        <form class="rename-form" {onsubmit} {onkeydown} aria-label="Change your name">
            <label for="rename-input" class="sr-only">{ "New name" }</label>
            <input id="rename-input" ref={input} class="input input-small" type="text"
                maxlength={MAX_NAME_CHARS.to_string()} value={(*draft).clone()} {oninput}
                autocomplete="nickname" spellcheck="false"
                aria-invalid={flag(problem.is_some())}
                title={problem.clone().unwrap_or_default()} />
            <button class="button primary small" type="submit"
                disabled={problem.is_some() || !props.connected}
                title={if props.connected { "" } else { "Renaming needs a connection" }}>
                { "Save" }
            </button>
            <button class="button small" type="button" onclick={cancel}>{ "Cancel" }</button>
        </form>
    }
}

/// The name button and, when `open`, its menu. A guest's "Change name"
/// starts editing `draft`, from the current name.
fn account_menu(
    props: &UserMenuProps,
    open: &UseStateHandle<bool>,
    button: &NodeRef,
    editing: &UseStateHandle<bool>,
    draft: &UseStateHandle<String>,
) -> Html {
    let toggle = {
        let open = open.clone();
        Callback::from(move |_: MouseEvent| open.set(!*open))
    };
    // Escape closes the menu and puts focus back on the button that opened it.
    let onkeydown = {
        let open = open.clone();
        let button = button.clone();
        Callback::from(move |e: KeyboardEvent| {
            if e.key() == "Escape" && *open {
                e.stop_propagation();
                open.set(false);
                if let Some(button) = button.cast::<HtmlElement>() {
                    let _ = button.focus();
                }
            }
        })
    };
    let sign_out = {
        let open = open.clone();
        let on_sign_out = props.on_sign_out.clone();
        Callback::from(move |_: MouseEvent| {
            open.set(false);
            on_sign_out.emit(());
        })
    };
    let guest = !props.account;
    let change_name = guest.then(|| {
        let (open, editing, draft) = (open.clone(), editing.clone(), draft.clone());
        let name = props.name.clone();
        Callback::from(move |_: MouseEvent| {
            open.set(false);
            draft.set(name.to_string());
            editing.set(true);
        })
    });
    // Notifications: asked for only on this click; nothing to offer once
    // the browser has the answer, except to say plainly that it is no.
    let notifications = match notify::permission() {
        Some(NotificationPermission::Default) => {
            let open = open.clone();
            let ask = Callback::from(move |_: MouseEvent| {
                let open = open.clone();
                notify::ask(Callback::from(move |()| open.set(true)));
            });
            html! {
                <button id="enable-notifications" class="button wide small menu-gap" type="button"
                    onclick={ask}>{ "Enable notifications" }</button>
            }
        }
        Some(NotificationPermission::Denied) => html! {
            <p class="muted small menu-gap">
                { "Notifications are blocked: allow them in this site's browser settings." }
            </p>
        },
        _ => html! {},
    };
    html! {
        <div class="account-menu" {onkeydown}>
            <button class="user-button" type="button" onclick={toggle} ref={button.clone()}
                aria-haspopup="true" aria-expanded={flag(**open)} aria-controls="account-menu">
                { avatar(&props.name, "avatar avatar-small") }
                <span class="user-name">{ props.name.clone() }</span>
                <span class="sr-only">
                    { if guest { " (guest): menu" } else { " (account): menu" } }
                </span>
            </button>
            if **open {
                <div id="account-menu" class="menu card">
                    <p class="menu-label muted small">
                        { if guest { "Chatting as a guest" } else { "Signed in as" } }
                    </p>
                    <p class="menu-name">{ props.name.clone() }</p>
                    if let Some(change_name) = change_name {
                        <button id="change-name" class="button wide small" type="button" onclick={change_name}>
                            { "Change name" }
                        </button>
                        <button id="sign-in-instead" class="button wide small menu-gap" type="button" onclick={sign_out}>
                            { "Sign in or create an account" }
                        </button>
                    } else {
                        <button id="sign-out" class="button wide small" type="button" onclick={sign_out}>
                            { "Sign out" }
                        </button>
                    }
                    { notifications }
                </div>
            }
        </div>
    }
}

/// The first letter of a name, upper-cased, for avatars. Only ASCII is
/// case-mapped: the full Unicode tables would add ~20 KB to the bundle.
pub fn initial(name: &str) -> String {
    name.chars()
        .next()
        .map(|c| c.to_ascii_uppercase().to_string())
        .unwrap_or_default()
}

/// A name's avatar: its initial on one of eight colours, stable per name
/// (`hue-0` to `hue-7`), with the classes `class`. (One function for
/// every avatar of the app: each `html!` element is code in the bundle.)
pub fn avatar(name: &str, class: &'static str) -> Html {
    let hash = name.bytes().fold(5381u32, |h, b| {
        h.wrapping_mul(33) ^ u32::from(b.to_ascii_lowercase())
    });
    html! {
        <span CLASS={format!("{class} hue-{}", hash % 8)} aria-hidden="true">{ initial(name) }</span>
    }
}
