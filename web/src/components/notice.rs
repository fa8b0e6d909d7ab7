//! A dismissible message over the app (a refused join, a rename, ...).

use yew::prelude::*;

use crate::hooks::{use_every, UseChatHandle};
use crate::state::Action;

use crate::state::Notice;

/// How long a notice stays up unless dismissed.
const NOTICE_MS: u32 = 6_000;

#[derive(Properties, PartialEq)]
pub struct NoticeProps {
    pub notice: Option<Notice>,
    pub on_dismiss: Callback<()>,
}

/// Takes a notice down after [`NOTICE_MS`] (a hook of the app: the toast
/// itself is a plain function, not a component, which would cost the
/// bundle its own copy of Yew's lifecycle code).
#[hook]
pub fn use_notice_expiry(chat: &UseChatHandle) {
    // (Dispatched once: the notice, and so the timer, goes with it.)
    let id = chat.notice.as_ref().map(|n| n.id);
    use_every(chat, id, NOTICE_MS, || Action::DismissNotice);
}

pub fn notice_toast(props: &NoticeProps) -> Html {
    let Some(notice) = &props.notice else {
        return html! {};
    };
    let onclick = props.on_dismiss.reform(|_: MouseEvent| ());
    html! {
        <div class="toast" role="alert">
            <span>{ notice.text.clone() }</span>
            <button class="icon-button" type="button" aria-label="Dismiss" {onclick}>{ "✕" }</button>
        </div>
    }
}
