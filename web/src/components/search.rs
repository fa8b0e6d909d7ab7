//! Message search: the form above the room list, and the results, shown
//! in place of the chat while a search is open.
//!
//! A result is a button: it opens its room (joining it if need be) at
//! that message, loading older history back to it ([`crate::state`]'s
//! `found`). The words searched for are marked in each result. Plain
//! functions, not components: they keep no state (the query is read from
//! the field when the form is sent).

use std::rc::Rc;

use wasm_bindgen::JsCast;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::fmt::{full_time, short_time};
use crate::markup::is_word;
use crate::state::Search;

/// The search field; `on_search` gets what was typed, trimmed.
pub fn search_form(on_search: &Callback<String>) -> Html {
    let onsubmit = on_search.reform(|e: SubmitEvent| {
        e.prevent_default();
        let form: web_sys::Element = e.target_unchecked_into();
        form.query_selector("input")
            .ok()
            .flatten()
            .and_then(|i| i.dyn_into::<HtmlInputElement>().ok())
            .map(|i| i.value().trim().to_string())
            .unwrap_or_default()
    });
    html! {
        <form class="search-form" role="search" {onsubmit}>
            <input id="search-input" class="input input-small" type="search" maxlength="200"
                placeholder="Search messages" aria-label="Search messages" />
        </form>
    }
}

#[derive(PartialEq)]
pub struct SearchProps {
    pub search: Rc<Search>,
    pub connected: bool,
    /// Open this room at this message.
    pub on_show: Callback<(String, u64)>,
    pub on_more: Callback<()>,
    pub on_close: Callback<()>,
}

/// The results of the open search, newest first.
pub fn search_results(props: &SearchProps) -> Html {
    let search = &props.search;
    let words = words(&search.query);
    let status = if search.busy {
        html! { "Searching…" }
    } else if search.hits.is_empty() {
        html! { "No messages found." }
    } else {
        html! { <>{ search.hits.len() }{ " found" }</> }
    };
    let hits = search.hits.iter().map(|hit| {
        let show = props.on_show.reform({
            let at = (hit.room.clone(), hit.seq);
            move |_: MouseEvent| at.clone()
        });
        html! {
            <li>
                <button class="hit" type="button" onclick={show}>
                    <span class="hit-meta">
                        // A conversation's name (`@alice+bob`) says itself.
                        <span class="hit-room">{ if hit.room.starts_with('@') { "" } else { "#" } }{ hit.room.clone() }</span>
                        <span class="from">{ hit.from.clone() }</span>
                        <time title={full_time(hit.sent_at)}>{ short_time(hit.sent_at) }</time>
                    </span>
                    <span class="hit-text">{ marked(&hit.text, &words) }</span>
                </button>
            </li>
        }
    });
    let onkeydown = {
        let on_close = props.on_close.clone();
        Callback::from(move |e: KeyboardEvent| {
            if e.key() == "Escape" {
                on_close.emit(());
            }
        })
    };
    html! {
        <main class="chat search-view" aria-labelledby="chat-title" {onkeydown}>
            <header class="chat-header">
                <div class="chat-heading">
                    <h1 id="chat-title" class="chat-title">{ "Search: " }{ search.query.clone() }</h1>
                    <span class="muted small" role="status">{ status }</span>
                </div>
                <button class="button small" type="button"
                    onclick={props.on_close.reform(|_: MouseEvent| ())}>{ "Close" }</button>
            </header>
            <div class="timeline">
                <ol class="hits">{ for hits }</ol>
                if search.next.is_some() {
                    <div class="load-older">
                        <button class="button small" type="button" disabled={search.busy || !props.connected}
                            onclick={props.on_more.reform(|_: MouseEvent| ())}>{ "More results" }</button>
                    </div>
                }
            </div>
        </main>
    }
}

/// The words of a query, as the server matches them: runs of letters
/// and digits (any character beyond ASCII counts as a letter here).
fn words(query: &str) -> Vec<&str> {
    query
        .split(|c: char| c.is_ascii() && !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect()
}

/// `text` with each whole-word occurrence of `words` in `<mark>` (ASCII
/// letters ignoring case, as the server does; others as typed).
fn marked(text: &str, words: &[&str]) -> Html {
    let bytes = text.as_bytes();
    let mut out: Vec<Html> = Vec::new();
    let (mut plain, mut i) = (0, 0);
    while i < bytes.len() {
        let starts_word = i == 0 || !is_word(bytes[i - 1]);
        let hit = starts_word
            .then(|| {
                words.iter().find(|w| {
                    let end = i + w.len();
                    end <= bytes.len()
                        && bytes[i..end].eq_ignore_ascii_case(w.as_bytes())
                        && (end == bytes.len() || !is_word(bytes[end]))
                })
            })
            .flatten();
        match hit {
            Some(w) => {
                out.push(html! { { &text[plain..i] } });
                out.push(html! { <mark>{ &text[i..i + w.len()] }</mark> });
                i += w.len();
                plain = i;
            }
            None => i += 1,
        }
    }
    out.push(html! { { &text[plain..] } });
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_runs_of_letters_and_digits() {
        assert_eq!(
            words(" Lunch, at 12?  café "),
            ["Lunch", "at", "12", "café"]
        );
        assert!(words(" *** ").is_empty());
    }
}
