//! The state of the link, always visible in the top bar. While a reconnect
//! waits, "retrying in N s" counts down (re-rendered every second).

use gloo_timers::callback::Interval;
use hubbub_client::Link;
use yew::prelude::*;

use crate::fmt::{now_ms, seconds};

#[derive(Properties, PartialEq)]
pub struct StatusProps {
    pub link: Link,
    /// Reconnect now instead of waiting out the backoff.
    pub on_retry: Callback<()>,
}

#[function_component(ConnectionStatus)]
pub fn connection_status(props: &StatusProps) -> Html {
    // Ticks once a second while a countdown is shown.
    let tick = use_state(|| 0u32);
    {
        let tick = tick.clone();
        let counting = matches!(props.link, Link::Reconnecting { .. });
        use_effect_with(counting, move |counting| {
            let interval =
                counting.then(|| Interval::new(1_000, move || tick.set((*tick).wrapping_add(1))));
            move || drop(interval)
        });
    }
    let (text, retry) = match &props.link {
        Link::Connected => ("Connected".to_string(), false),
        Link::Connecting { attempt: 0 } => ("Connecting…".to_string(), false),
        Link::Connecting { attempt } => (format!("Reconnecting… (attempt {attempt})"), true),
        Link::Reconnecting { attempt, .. } => {
            let wait = props.link.retry_in_ms(now_ms()).unwrap_or(0);
            (
                format!(
                    "Offline · retrying in {} s (attempt {attempt})",
                    seconds(wait.min(u32::MAX as u64) as u32),
                ),
                true,
            )
        }
        Link::Ended { why } => (format!("Disconnected · {why}"), true),
        Link::Idle => ("Not signed in".to_string(), false),
    };
    let spoken = match &props.link {
        Link::Reconnecting { .. } => "Offline · reconnecting".to_string(),
        Link::Idle | Link::Connecting { .. } | Link::Connected | Link::Ended { .. } => text.clone(),
    };
    let on_retry = props.on_retry.reform(|_: MouseEvent| ());
    let kind = props.link.kind();
    let why = match &props.link {
        Link::Reconnecting { why, .. } => Some(why.clone()),
        Link::Idle | Link::Connecting { .. } | Link::Connected | Link::Ended { .. } => None,
    };
    html! {
        <div id="connection-status" class={classes!("status", format!("status-{kind}"))} data-state={kind}
            title={why}>
            <span class="status-dot" aria-hidden="true"></span>
            // The countdown is for the eye; a screen reader hears the state
            // once, not every second.
            <span class="status-text" aria-hidden="true">{ text }</span>
            <span class="sr-only" role="status">{ spoken }</span>
            if retry {
                <button class="link-button" type="button" onclick={on_retry}>{ "Retry now" }</button>
            }
        </div>
    }
}
