//! The right column: who is online in the room, each with a button to
//! message them (their private conversation). For a conversation, who it
//! is with.

use std::rc::Rc;

use yew::prelude::*;

use super::user_menu::avatar;
use crate::state::Chat;

#[derive(Properties, PartialEq)]
pub struct PresenceProps {
    pub chat: Rc<Chat>,
    pub me: Option<AttrValue>,
    /// For a conversation: whether the other person is online
    /// ([`Chat::peer_online`], which needs every chat).
    pub online: bool,
    /// Message this user (open the conversation with them).
    pub on_message: Callback<String>,
}

// A plain function, not a component: a component costs the bundle its own
// copy of Yew's lifecycle code, and this one keeps no state.
pub fn presence(props: &PresenceProps) -> Html {
    let me = props.me.as_deref();
    match &props.chat.with {
        Some(user) => {
            let online = props.online;
            html! {
            <section class="presence" aria-labelledby="presence-heading">
                <h2 id="presence-heading" class="section-title">{ "Conversation" }</h2>
                <ul class="member-list">
                    <li class="member">
                        { avatar(user, "avatar") }
                        <span class="member-name">{ user.clone() }</span>
                        <span CLASS={if online { "presence-dot online" } else { "presence-dot" }}
                            title={if online { "online" } else { "offline" }}></span>
                    </li>
                </ul>
                <p class="muted small pad">{ "Only the two of you can read this conversation." }</p>
            </section>
            }
        }
        None => {
            let members = &props.chat.members;
            html! {
                <section class="presence" aria-labelledby="presence-heading">
                    <h2 id="presence-heading" class="section-title">
                        { format!("Online — {}", members.len()) }
                    </h2>
                    <ul class="member-list" id="presence-list">
                        { for members.iter().map(|user| {
                            let is_me = Some(user.as_str()) == me;
                            let message = props.on_message.reform({
                                let user = user.clone();
                                move |_: MouseEvent| user.clone()
                            });
                            html! {
                                <li key={user.clone()} class="member" data-user={user.clone()}>
                                    { avatar(user, "avatar") }
                                    <span class="member-name">{ user.clone() }</span>
                                    if is_me {
                                        <span class="you-tag">{ "you" }</span>
                                    } else {
                                        <button class="icon-button member-action" type="button" onclick={message}
                                            aria-label={format!("Send a direct message to {user}")}
                                            title="Direct message">
                                            <span class="icon icon-message" aria-hidden="true"></span>
                                        </button>
                                    }
                                </li>
                            }
                        }) }
                    </ul>
                </section>
            }
        }
    }
}
