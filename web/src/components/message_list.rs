//! A chat's timeline: messages, online/offline notices and own messages on
//! their way. Text is always rendered as text.

use std::rc::Rc;

use web_sys::Element;
use yew::prelude::*;

use super::user_menu::{avatar_class, initial};
use crate::fmt::{full_time, iso_time, short_time};
use crate::state::{Chat, Entry, Pending};

/// Messages from one sender closer than this share one header.
const GROUP_MS: u64 = 5 * 60 * 1000;
/// Within this many pixels of the bottom, new messages scroll into view.
const STICK_PX: i32 = 80;

#[derive(Properties, PartialEq)]
pub struct MessageListProps {
    pub chat: Rc<Chat>,
    pub connected: bool,
    /// This user's name, shown on own messages still on their way.
    pub me: Option<AttrValue>,
    /// Forget a refused message (by `client_id`).
    pub on_dismiss: Callback<String>,
    /// Fetch the messages before this `seq`.
    pub on_load_older: Callback<u64>,
}

#[function_component(MessageList)]
pub fn message_list(props: &MessageListProps) -> Html {
    let scroller = use_node_ref();
    // Whether the view was at the bottom before this render.
    let stick = use_mut_ref(|| true);
    {
        let scroller = scroller.clone();
        let stick = stick.clone();
        let last = (
            props.chat.target.clone(),
            props.chat.entries.last().map(|e| e.id()),
            props.chat.pending.len(),
        );
        use_effect_with(last, move |_| {
            if let Some(el) = scroller.cast::<Element>() {
                if *stick.borrow() {
                    el.set_scroll_top(el.scroll_height());
                }
            }
        });
    }
    let onscroll = {
        let stick = stick.clone();
        Callback::from(move |e: Event| {
            let el: Element = e.target_unchecked_into();
            *stick.borrow_mut() =
                el.scroll_height() - el.scroll_top() - el.client_height() < STICK_PX;
        })
    };
    let chat = &props.chat;
    let mut previous: Option<&Entry> = None;
    let items = chat.entries.iter().map(|entry| {
        let continued = matches!(
            (previous, &**entry),
            (
                Some(Entry::Message { from: a, sent_at: t0, .. }),
                Entry::Message { from: b, sent_at: t1, .. }
            ) if a == b && t1.saturating_sub(*t0) < GROUP_MS
        );
        previous = Some(entry);
        view_entry(entry, continued)
    });
    // Pending messages continue the last group if it is our own.
    let after_own = matches!(
        chat.entries.last().map(|e| &**e),
        Some(Entry::Message { own: true, .. })
    );
    let me = props.me.clone().unwrap_or_default();
    let pending = chat.pending.iter().enumerate().map(|(i, p)| {
        let header = (i == 0 && !after_own).then_some(me.as_str());
        view_pending(p, header, props.connected, &props.on_dismiss)
    });
    let empty = chat.entries.is_empty() && chat.pending.is_empty();
    let older = chat.first_seq().filter(|_| chat.has_more).map(|first| {
        let onclick = props.on_load_older.reform(move |_: MouseEvent| first);
        html! {
            <div class="load-older">
                <button class="button small" type="button" {onclick} disabled={!props.connected}>
                    { "Load earlier messages" }
                </button>
            </div>
        }
    });
    html! {
        <div class="timeline" ref={scroller} {onscroll} tabindex="0"
            aria-label={format!("Messages in {}", chat.target.label())}>
            { for older }
            if empty {
                <div class="timeline-empty">
                    <p class="muted">{ format!("This is the start of {}. Say hello!", chat.target.label()) }</p>
                </div>
            }
            <ol class="messages" role="log" aria-live="polite" aria-relevant="additions">
                { for items }
                { for pending }
            </ol>
        </div>
    }
}

fn view_entry(entry: &Entry, continued: bool) -> Html {
    match entry {
        Entry::System { id, text, at } => html! {
            <li key={*id} class="system">
                <span class="system-text">{ text.clone() }</span>
                <time datetime={iso_time(*at)} title={full_time(*at)}>{ short_time(*at) }</time>
            </li>
        },
        Entry::Message {
            id,
            from,
            text,
            sent_at,
            own,
            ..
        } => html! {
            <li key={*id} class={classes!("message", own.then_some("own"), continued.then_some("continued"))}
                data-from={from.clone()}>
                if continued {
                    <span class="gutter" aria-hidden="true">
                        <time datetime={iso_time(*sent_at)} title={full_time(*sent_at)}>{ short_time(*sent_at) }</time>
                    </span>
                } else {
                    <span class={classes!("avatar", avatar_class(from))} aria-hidden="true">{ initial(from) }</span>
                }
                <div class="message-body">
                    if !continued {
                        <div class="message-meta">
                            <span class="from">{ from.clone() }</span>
                            if *own {
                                <span class="you-tag">{ "you" }</span>
                            }
                            <time datetime={iso_time(*sent_at)} title={full_time(*sent_at)}>{ short_time(*sent_at) }</time>
                        </div>
                    }
                    <p class="text">{ text.clone() }</p>
                </div>
            </li>
        },
    }
}

/// An own message not yet confirmed; `header` is the name to head it with
/// when it starts a group.
fn view_pending(
    pending: &Pending,
    header: Option<&str>,
    connected: bool,
    on_dismiss: &Callback<String>,
) -> Html {
    let (state, label) = match (&pending.failed, connected) {
        (Some(why), _) => ("failed", format!("Not sent: {why}")),
        (None, true) => ("sending", "Sending…".to_string()),
        (None, false) => ("queued", "Queued · sends when reconnected".to_string()),
    };
    let dismiss = on_dismiss.reform({
        let id = pending.client_id.clone();
        move |_: MouseEvent| id.clone()
    });
    html! {
        <li key={pending.client_id.clone()}
            class={classes!("message", "own", "pending", state, header.is_none().then_some("continued"))}>
            if let Some(name) = header {
                <span class={classes!("avatar", avatar_class(name))} aria-hidden="true">{ initial(name) }</span>
            } else {
                <span class="gutter" aria-hidden="true"></span>
            }
            <div class="message-body">
                if let Some(name) = header {
                    <div class="message-meta">
                        <span class="from">{ name.to_string() }</span>
                        <span class="you-tag">{ "you" }</span>
                    </div>
                }
                <p class="text">{ pending.text.clone() }</p>
                <p class="pending-state">
                    { label }
                    if pending.failed.is_some() {
                        <button class="link-button" type="button" onclick={dismiss}>{ "Dismiss" }</button>
                    }
                </p>
            </div>
        </li>
    }
}
