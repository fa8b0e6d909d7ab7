//! The connection status, always visible in the top bar.

use yew::prelude::*;

use crate::fmt::seconds;
use crate::state::Status;

#[derive(Properties, PartialEq)]
pub struct StatusProps {
    pub status: Status,
    /// Reconnect now instead of waiting out the backoff.
    pub on_retry: Callback<()>,
}

#[function_component(ConnectionStatus)]
pub fn connection_status(props: &StatusProps) -> Html {
    let (text, retry) = match &props.status {
        Status::Connected => ("Connected".to_string(), false),
        Status::Connecting => ("Connecting…".to_string(), false),
        Status::Reconnecting { attempt, delay_ms } => (
            format!(
                "Offline · retrying in {} s (attempt {attempt})",
                seconds(*delay_ms)
            ),
            true,
        ),
        Status::Stopped { reason } => (format!("Disconnected · {reason}"), true),
        Status::SignedOut => ("Not signed in".to_string(), false),
    };
    let on_retry = props.on_retry.reform(|_: MouseEvent| ());
    let kind = props.status.kind();
    html! {
        <div id="connection-status" class={classes!("status", format!("status-{kind}"))} data-state={kind}>
            <span class="status-dot" aria-hidden="true"></span>
            <span class="status-text" role="status" aria-live="polite">{ text }</span>
            if retry {
                <button class="link-button" type="button" onclick={on_retry}>{ "Retry now" }</button>
            }
        </div>
    }
}
