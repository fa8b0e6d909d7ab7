//! `use_every`: an action dispatched on a timer while there is a reason to.

use gloo_timers::callback::Interval;
use yew::prelude::*;

use super::UseChatHandle;
use crate::state::Action;

/// Dispatches `action()` every `ms` milliseconds while `key` is `Some`,
/// counting afresh whenever `key` changes. One hook for the app's timers
/// (a notice taken down, "is typing" notices expired): each
/// `use_effect_with` of their own was a copy of Yew's effect code in the
/// bundle.
#[hook]
pub fn use_every(chat: &UseChatHandle, key: Option<u64>, ms: u32, action: fn() -> Action) {
    let chat = chat.clone();
    use_effect_with(key, move |key| {
        let timer = key.map(|_| Interval::new(ms, move || chat.dispatch(action())));
        move || drop(timer)
    });
}
