//! Who you are, and the rename form.

use hubbub_protocol::names::{validate_name, MAX_NAME_CHARS};
use web_sys::HtmlInputElement;
use yew::prelude::*;

#[derive(Properties, PartialEq)]
pub struct UserMenuProps {
    pub name: AttrValue,
    /// Renaming needs a live link.
    pub connected: bool,
    pub on_rename: Callback<String>,
}

#[function_component(UserMenu)]
pub fn user_menu(props: &UserMenuProps) -> Html {
    let editing = use_state(|| false);
    let draft = use_state(String::new);
    let input = use_node_ref();
    {
        let input = input.clone();
        use_effect_with(*editing, move |editing| {
            if *editing {
                if let Some(input) = input.cast::<HtmlInputElement>() {
                    let _ = input.focus();
                    input.select();
                }
            }
        });
    }
    let open = {
        let editing = editing.clone();
        let draft = draft.clone();
        let name = props.name.clone();
        Callback::from(move |_: MouseEvent| {
            draft.set(name.to_string());
            editing.set(true);
        })
    };
    if !*editing {
        return html! {
            <button class="user-button" type="button" onclick={open}
                aria-label={format!("Signed in as {}. Change name", props.name)}>
                <span class={classes!("avatar", "avatar-small", avatar_class(&props.name))} aria-hidden="true">
                    { initial(&props.name) }
                </span>
                <span class="user-name">{ props.name.clone() }</span>
            </button>
        };
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
                aria-invalid={problem.is_some().to_string()}
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

/// The first letter of a name, upper-cased, for avatars.
pub fn initial(name: &str) -> String {
    name.chars()
        .next()
        .map(|c| c.to_uppercase().collect())
        .unwrap_or_default()
}

/// One of eight avatar colours, stable per name.
pub fn avatar_class(name: &str) -> String {
    let hash = name
        .to_lowercase()
        .bytes()
        .fold(5381u32, |h, b| h.wrapping_mul(33) ^ u32::from(b));
    format!("hue-{}", hash % 8)
}
