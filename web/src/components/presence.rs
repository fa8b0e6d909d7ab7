//! The right column: who is online in the room, each with a button to send
//! them a direct message. For a direct conversation, who it is with.

use std::rc::Rc;

use yew::prelude::*;

use super::user_menu::avatar;
use crate::state::{Chat, Target};

#[derive(Properties, PartialEq)]
pub struct PresenceProps {
    pub chat: Rc<Chat>,
    pub me: Option<AttrValue>,
    /// For a direct conversation: whether the other user shares a room with us.
    pub partner_online: bool,
    pub on_direct: Callback<String>,
}

// A plain function, not a component: a component costs the bundle its own
// copy of Yew's lifecycle code, and this one keeps no state.
pub fn presence(props: &PresenceProps) -> Html {
    let me = props.me.as_deref();
    match &props.chat.target {
        Target::Direct(user) => html! {
            <section class="presence" aria-labelledby="presence-heading">
                <h2 id="presence-heading" class="section-title">{ "Conversation" }</h2>
                <ul class="member-list">
                    <li class="member">
                        { avatar(user, "avatar") }
                        <span class="member-name">{ user.clone() }</span>
                        <span CLASS={if props.partner_online { "presence-dot online" } else { "presence-dot" }}
                            title={if props.partner_online { "online" } else { "not seen in your rooms" }}></span>
                    </li>
                </ul>
                <p class="muted small pad">{ "Direct messages reach this user wherever they are online." }</p>
            </section>
        },
        Target::Room(_) => {
            let members = &props.chat.members;
            html! {
                <section class="presence" aria-labelledby="presence-heading">
                    <h2 id="presence-heading" class="section-title">
                        { format!("Online — {}", members.len()) }
                    </h2>
                    <ul class="member-list" id="presence-list">
                        { for members.iter().map(|user| {
                            let is_me = Some(user.as_str()) == me;
                            let direct = props.on_direct.reform({
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
                                        <button class="icon-button member-action" type="button" onclick={direct}
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
