//! The first screen: sign in, create an account, or (when the server takes
//! guests) continue as a guest with just a display name.
//!
//! Sign-in and registration call the account API themselves
//! ([`crate::api`]); on success the browser holds the session cookie and the
//! screen reports the account name through `on_signed_in`. Errors from the
//! server (wrong password, name taken, too many attempts) show under the
//! form, in the server's words.

use hubbub_protocol::names::MAX_NAME_CHARS;

use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::fmt::flag;
use crate::names::validate_name;

use crate::api;
use crate::hooks::use_focus;

/// Shortest and longest password the server accepts, in characters.
pub const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 8..=256;

/// Which form is showing.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    SignIn,
    Register,
    Guest,
}

#[derive(PartialEq)]
pub struct AuthProps {
    /// Whether the server takes guests (the guest form is offered only then).
    pub guests: bool,
    /// Why this screen is showing (signed out elsewhere, session expired).
    pub notice: Option<AttrValue>,
    /// The guest name to start from (the one the server refused, if any).
    pub guest_name: Option<AttrValue>,
    /// Why the server refused the guest name.
    pub guest_error: Option<AttrValue>,
    /// Signed in (or registered) as this account.
    pub on_signed_in: Callback<String>,
    /// Chat as a guest with this name.
    pub on_guest: Callback<String>,
}

/// What is wrong with a new password, if anything.
pub fn password_problem(password: &str) -> Option<&'static str> {
    (!PASSWORD_CHARS.contains(&password.chars().count()))
        .then_some("The password must be 8 to 256 characters.")
}

/// What is wrong with the confirmation of a new password, if anything. An
/// empty confirmation is only wrong once the password itself is right.
pub fn confirm_problem(password: &str, confirm: &str) -> Option<&'static str> {
    if confirm.is_empty() {
        password_problem(password)
            .is_none()
            .then_some("Type the password again.")
    } else {
        (password != confirm).then_some("The passwords do not match.")
    }
}

/// The sign-in screen (a [`Piece`](super::part::Piece) of its own).
#[hook]
pub fn use_auth_screen(props: &AuthProps) -> Html {
    // Which form shows, as two `bool` states rather than a `Mode` state:
    // each type of `use_state` is a copy of its code in the bundle
    // (~1.2 KB raw), and the app has `bool` ones anyway.
    let register_form = use_state(|| false);
    let guest_form_shown = use_state(|| props.guests && props.guest_error.is_some());
    let name = use_state(String::new);
    let password = use_state(String::new);
    let confirm = use_state(String::new);
    let touched = use_state(|| false);
    let busy = use_state(|| false);
    // The server's answer to the last attempt (empty: none).
    let error = use_state(String::new);
    // The guest form's name, from the one the server refused, if any.
    let guest = use_state(|| props.guest_name.as_deref().unwrap_or_default().to_string());
    let first = use_node_ref();
    // Focus the first field whenever the form changes.
    let mode_now = match (*guest_form_shown && props.guests, *register_form) {
        (true, _) => Mode::Guest,
        (false, true) => Mode::Register,
        (false, false) => Mode::SignIn,
    };
    use_focus(&first, mode_now as u8, true, false);
    let set_mode = |m: Mode| {
        let register_form = register_form.clone();
        let guest_form_shown = guest_form_shown.clone();
        let error = error.clone();
        let touched = touched.clone();
        let guest = guest.clone();
        let start = props.guest_name.clone();
        Callback::from(move |_: MouseEvent| {
            register_form.set(m == Mode::Register);
            guest_form_shown.set(m == Mode::Guest);
            error.set(String::new());
            touched.set(false);
            if m == Mode::Guest {
                // The guest form starts afresh each time it is opened.
                guest.set(start.as_deref().unwrap_or_default().to_string());
            }
        })
    };
    let on_input = |field: &UseStateHandle<String>| {
        let field = field.clone();
        let error = error.clone();
        Callback::from(move |e: InputEvent| {
            field.set(e.target_unchecked_into::<HtmlInputElement>().value());
            error.set(String::new());
        })
    };

    let register = mode_now == Mode::Register;
    let name_problem = validate_name(name.trim()).err();
    let pw_problem = if register {
        password_problem(&password)
    } else if password.is_empty() {
        Some("Enter your password.")
    } else {
        None
    };
    let confirm_problem = if register {
        confirm_problem(&password, &confirm)
    } else {
        None
    };
    let onsubmit = {
        let (name, password, touched, busy, error) = (
            name.clone(),
            password.clone(),
            touched.clone(),
            busy.clone(),
            error.clone(),
        );
        let on_signed_in = props.on_signed_in.clone();
        let invalid = name_problem.is_some() || pw_problem.is_some() || confirm_problem.is_some();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            touched.set(true);
            if invalid || *busy {
                return;
            }
            busy.set(true);
            let (user, pass) = (name.trim().to_string(), (*password).clone());
            let (busy, error, on_signed_in) = (busy.clone(), error.clone(), on_signed_in.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let answer = if register {
                    api::register(&user, &pass).await
                } else {
                    api::login(&user, &pass).await
                };
                busy.set(false);
                match answer {
                    Ok(account) => on_signed_in.emit(account),
                    Err(err) => error.set(err.message()),
                }
            });
        })
    };

    let (title, lead) = match mode_now {
        Mode::SignIn => ("Sign in to hubbub", "Welcome back. Your rooms are waiting."),
        Mode::Register => (
            "Create your account",
            "Your name is yours alone: nobody else can chat under it.",
        ),
        Mode::Guest => (
            "Chat as a guest",
            "Pick a display name. Others see it next to your messages; you can change it later.",
        ),
    };
    let tab = |m: Mode, label: &'static str, id: &'static str| {
        html! {
            <button {id} type="button" CLASS={if mode_now == m { "tab active" } else { "tab" }}
                aria-pressed={flag(mode_now == m)} onclick={set_mode(m)}>
                { label }
            </button>
        }
    };

    let form = if mode_now == Mode::Guest {
        html! {
            <>
                { guest_form(props, &guest, &touched, &first) }
                <button id="back-to-sign-in" type="button" class="link-button back-link"
                    onclick={set_mode(Mode::SignIn)}>
                    { "Have an account? Sign in" }
                </button>
            </>
        }
    } else {
        // Each error shows under its own field, once the form was submitted.
        let show = *touched;
        let name_error = show.then_some(name_problem).flatten();
        let pw_error = show.then_some(pw_problem).flatten();
        let confirm_error = show.then_some(confirm_problem).flatten();
        let name_help = if register {
            "Letters, digits, '_', '-' and '.'; up to 32 characters."
        } else {
            ""
        };
        let password_field = |id: &'static str, auto: &'static str, help: &'static str| {
            html! {
                <input {id} CLASS={if pw_error.is_some() { "input invalid" } else { "input" }}
                    type="password" autocomplete={auto} value={(*password).clone()}
                    maxlength={PASSWORD_CHARS.end().to_string()}
                    aria-invalid={flag(pw_error.is_some())} aria-describedby={help}
                    required=true oninput={on_input(&password)} />
            }
        };
        html! {
            <form class="auth-form" {onsubmit} novalidate=true
                aria-label={if register { "Create an account" } else { "Sign in" }}>
                <label for="account-name" class="field-label">{ "Name" }</label>
                <input id="account-name" ref={first.clone()}
                    CLASS={if name_error.is_some() { "input invalid" } else { "input" }}
                    type="text" autocomplete="username" autocapitalize="off" spellcheck="false"
                    maxlength={MAX_NAME_CHARS.to_string()} value={(*name).clone()}
                    aria-invalid={flag(name_error.is_some())} aria-describedby="account-name-help"
                    required=true oninput={on_input(&name)} />
                <p id="account-name-help" CLASS={if name_error.is_some() { "help error" } else { "help" }}>
                    { name_error.unwrap_or_else(|| name_help.into()) }
                </p>
                if register {
                    <label for="register-password" class="field-label">{ "Password" }</label>
                    { password_field("register-password", "new-password", "password-rules") }
                    <p id="password-rules" CLASS={if pw_error.is_some() { "help error" } else { "help" }}>
                        { pw_error.unwrap_or("8 to 256 characters.") }
                    </p>
                    <label for="register-confirm" class="field-label">{ "Confirm password" }</label>
                    <input id="register-confirm" CLASS={if confirm_error.is_some() { "input invalid" } else { "input" }}
                        type="password" autocomplete="new-password" value={(*confirm).clone()}
                        maxlength={PASSWORD_CHARS.end().to_string()}
                        aria-invalid={flag(confirm_error.is_some())} aria-describedby="password-help"
                        required=true oninput={on_input(&confirm)} />
                    <p id="password-help" CLASS={if confirm_error.is_some() { "help error" } else { "help" }}>
                        { confirm_error.unwrap_or_default() }
                    </p>
                } else {
                    <label for="login-password" class="field-label">{ "Password" }</label>
                    { password_field("login-password", "current-password", "password-help") }
                    <p id="password-help" CLASS={if pw_error.is_some() { "help error" } else { "help" }}>
                        { pw_error.unwrap_or_default() }
                    </p>
                }
                <p id="auth-error" class="help error" role="alert">{ (*error).clone() }</p>
                <button id="auth-submit" class="button primary wide" type="submit" disabled={*busy}
                    aria-busy={flag(*busy)}>
                    { match (register, *busy) {
                        (false, false) => "Sign in",
                        (false, true) => "Signing in…",
                        (true, false) => "Create account",
                        (true, true) => "Creating account…",
                    } }
                </button>
            </form>
        }
    };

    html! {
        <main class="welcome">
            <div class="card welcome-card">
                <div class="brand brand-large" aria-hidden="true">
                    <span class="brand-mark">{ "#" }</span>{ "hubbub" }
                </div>
                <h1 id="auth-title">{ title }</h1>
                <p class="muted">{ lead }</p>
                if let Some(notice) = props.notice.clone() {
                    <p id="auth-notice" class="auth-notice" role="status">{ notice }</p>
                }
                if mode_now != Mode::Guest {
                    <div class="tabs" role="group" aria-label="Sign in or create an account">
                        { tab(Mode::SignIn, "Sign in", "tab-sign-in") }
                        { tab(Mode::Register, "Create account", "tab-register") }
                    </div>
                }
                { form }
                if props.guests && mode_now != Mode::Guest {
                    <div class="divider" aria-hidden="true"><span>{ "or" }</span></div>
                    <button id="guest-button" type="button" class="button wide" onclick={set_mode(Mode::Guest)}>
                        { "Continue as guest" }
                    </button>
                }
            </div>
        </main>
    }
}

/// The guest form: the display name to chat under without an account.
/// (Part of the sign-in screen's piece, with its state, not a piece of its
/// own.)
fn guest_form(
    props: &AuthProps,
    name: &UseStateHandle<String>,
    touched: &UseStateHandle<bool>,
    input: &NodeRef,
) -> Html {
    let problem = validate_name(name.trim()).err();
    // Say what is wrong as soon as something is typed (an empty field is
    // only wrong once submitted), like the room field does.
    let typed = !name.trim().is_empty();
    let shown_error = if **touched || typed {
        problem.clone()
    } else {
        None
    }
    .map(AttrValue::from)
    .or_else(|| props.guest_error.clone().filter(|_| problem.is_none()));
    let oninput = {
        let name = name.clone();
        Callback::from(move |e: InputEvent| {
            name.set(e.target_unchecked_into::<HtmlInputElement>().value());
        })
    };
    let onsubmit = {
        let name = name.clone();
        let touched = touched.clone();
        let on_guest = props.on_guest.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            touched.set(true);
            let value = name.trim().to_string();
            if validate_name(&value).is_ok() {
                on_guest.emit(value);
            }
        })
    };
    html! {
        <form class="auth-form" {onsubmit} novalidate=true aria-label="Continue as a guest">
            <label for="name-input" class="field-label">{ "Display name" }</label>
            <input
                id="name-input"
                ref={input.clone()}
                CLASS={if shown_error.is_some() { "input invalid" } else { "input" }}
                type="text"
                autocomplete="nickname"
                autocapitalize="off"
                spellcheck="false"
                maxlength={MAX_NAME_CHARS.to_string()}
                placeholder="e.g. ada"
                value={(**name).clone()}
                aria-invalid={flag(shown_error.is_some())}
                aria-describedby="name-help"
                {oninput}
            />
            <p id="name-help" CLASS={if shown_error.is_some() { "help error" } else { "help" }} role="alert">
                { shown_error.unwrap_or_else(|| AttrValue::from("Letters, digits, '_', '-' and '.'; up to 32 characters. Registered names need signing in.")) }
            </p>
            <button class="button primary wide" type="submit">
                { "Start chatting" }
            </button>
        </form>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_passwords_follow_the_server_rules() {
        assert!(password_problem("short").is_some());
        assert!(password_problem(&"x".repeat(257)).is_some());
        assert_eq!(password_problem("long enough"), None);
        // Characters, not bytes: eight accented letters are enough.
        assert_eq!(password_problem("éééééééé"), None);
        // The confirmation has its own error, and a short password none.
        assert_eq!(
            confirm_problem("long enough", "long enougH"),
            Some("The passwords do not match.")
        );
        assert_eq!(confirm_problem("short", "short"), None);
        assert_eq!(confirm_problem("short", ""), None);
        assert!(confirm_problem("long enough", "").is_some());
    }
}
