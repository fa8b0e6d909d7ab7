//! The guest form of the first screen: pick the display name to chat under
//! without an account (shown only when the server takes guests).

use hubbub_protocol::names::{validate_name, MAX_NAME_CHARS};
use web_sys::HtmlInputElement;
use yew::prelude::*;

#[derive(Properties, PartialEq)]
pub struct NamePickerProps {
    /// The name to start from (the one the server refused, if any).
    pub initial: Option<AttrValue>,
    /// Why the last name was refused.
    pub error: Option<AttrValue>,
    pub on_submit: Callback<String>,
}

#[function_component(NamePicker)]
pub fn name_picker(props: &NamePickerProps) -> Html {
    let name = use_state(|| props.initial.as_deref().unwrap_or_default().to_string());
    let touched = use_state(|| false);
    let input = use_node_ref();
    {
        let input = input.clone();
        use_effect_with((), move |_| {
            if let Some(input) = input.cast::<HtmlInputElement>() {
                let _ = input.focus();
            }
        });
    }
    let problem = validate_name(name.trim()).err();
    // Say what is wrong as soon as something is typed (an empty field is
    // only wrong once submitted), like the room field does.
    let typed = !name.trim().is_empty();
    let shown_error = if *touched || typed {
        problem.clone()
    } else {
        None
    }
    .map(AttrValue::from)
    .or_else(|| props.error.clone().filter(|_| problem.is_none()));
    let oninput = {
        let name = name.clone();
        Callback::from(move |e: InputEvent| {
            name.set(e.target_unchecked_into::<HtmlInputElement>().value());
        })
    };
    let onsubmit = {
        let name = name.clone();
        let touched = touched.clone();
        let on_submit = props.on_submit.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            touched.set(true);
            let value = name.trim().to_string();
            if validate_name(&value).is_ok() {
                on_submit.emit(value);
            }
        })
    };
    html! {
        <form class="auth-form" {onsubmit} novalidate=true aria-label="Continue as a guest">
            <label for="name-input" class="field-label">{ "Display name" }</label>
            <input
                id="name-input"
                ref={input}
                class={classes!("input", shown_error.is_some().then_some("invalid"))}
                type="text"
                autocomplete="nickname"
                autocapitalize="off"
                spellcheck="false"
                maxlength={MAX_NAME_CHARS.to_string()}
                placeholder="e.g. ada"
                value={(*name).clone()}
                aria-invalid={shown_error.is_some().to_string()}
                aria-describedby="name-help"
                {oninput}
            />
            <p id="name-help" class={classes!("help", shown_error.is_some().then_some("error"))} role="alert">
                { shown_error.unwrap_or_else(|| AttrValue::from("Letters, digits, '_', '-' and '.'; up to 32 characters. Registered names need signing in.")) }
            </p>
            <button class="button primary wide" type="submit">
                { "Start chatting" }
            </button>
        </form>
    }
}
