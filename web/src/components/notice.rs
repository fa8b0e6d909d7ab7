//! A dismissible message over the app (a refused join, a rename, ...).

use gloo_timers::callback::Timeout;
use yew::prelude::*;

use crate::state::Notice;

/// How long a notice stays up unless dismissed.
const NOTICE_MS: u32 = 6_000;

#[derive(Properties, PartialEq)]
pub struct NoticeProps {
    pub notice: Option<Notice>,
    pub on_dismiss: Callback<()>,
}

#[function_component(NoticeToast)]
pub fn notice_toast(props: &NoticeProps) -> Html {
    {
        let on_dismiss = props.on_dismiss.clone();
        use_effect_with(props.notice.as_ref().map(|n| n.id), move |id| {
            let timer = id.map(|_| Timeout::new(NOTICE_MS, move || on_dismiss.emit(())));
            move || drop(timer)
        });
    }
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
