//! The state of the link, always visible in the top bar. While a reconnect
//! waits, "retrying in N s" counts down: the connection task shows the
//! state again every second of the wait.

use hubbub_client::Link;
use yew::prelude::*;

use crate::fmt::seconds;

#[derive(Properties, PartialEq)]
pub struct StatusProps {
    pub link: Link,
    /// The time of this render, in whole seconds: the countdown's clock.
    pub now_s: u64,
    /// Reconnect now instead of waiting out the backoff.
    pub on_retry: Callback<()>,
}

// A plain function, not a component: a component costs the bundle its own
// copy of Yew's lifecycle code, and this one keeps no state.
pub fn connection_status(props: &StatusProps) -> Html {
    let (text, retry) = match &props.link {
        Link::Connected => ("Connected".to_string(), false),
        Link::Connecting { attempt } => ("Connecting…".to_string(), *attempt > 0),
        Link::Reconnecting { attempt, .. } => {
            let wait = props.link.retry_in_ms(props.now_s * 1000).unwrap_or(0);
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
    let on_retry = props.on_retry.reform(|_: MouseEvent| ());
    let kind = props.link.kind();
    html! {
        <div id="connection-status" CLASS={format!("status status-{kind}")} data-state={kind}>
            <span class="status-dot" aria-hidden="true"></span>
            // The countdown is for the eye; a screen reader hears the state
            // word (connected, reconnecting, ...) once, not every second.
            <span class="status-text" aria-hidden="true">{ text }</span>
            <span class="sr-only" role="status">{ kind }</span>
            if retry {
                <button class="link-button" type="button" onclick={on_retry}>{ "Retry now" }</button>
            }
        </div>
    }
}
