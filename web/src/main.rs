//! The hubbub web app: a Yew single-page app that chats over `/ws`.
//!
//! Layout of the crate (after Yew's `function_todomvc`):
//! - [`api`]: the account API (session, sign in, register, sign out);
//! - [`state`]: the [`state::ChatState`] reducer and its [`state::Action`]s;
//! - [`hooks`]: `use_chat`, which owns the WebSocket and reconnects;
//! - [`components`]: the UI, one component per file;
//! - [`wire`]: frames to and from JSON, with the browser's own `JSON`;
//! - [`storage`], [`fmt`]: `localStorage` and formatting helpers.

mod api;
mod components;
mod fmt;
mod hooks;
mod state;
mod storage;
mod wire;

use gloo_timers::callback::Interval;
use yew::prelude::*;

use components::auth::AuthScreen;
use components::chat_view::{ChatView, EmptyChat};
use components::composer::Drafts;
use components::notice::NoticeToast;
use components::presence::Presence;
use components::room_list::RoomList;
use components::status::ConnectionStatus;
use components::user_menu::UserMenu;
use hooks::use_chat;
use state::{Action, Status, Target};

/// Which side panel is open on a narrow screen.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Panel {
    None,
    Rooms,
    Members,
}

#[function_component(App)]
fn app() -> Html {
    let chat = use_chat();
    let panel = use_state(|| Panel::None);
    let drafts = use_memo((), |_| Drafts::default());

    // Remember the chat on screen.
    use_effect_with(chat.current.clone(), |current| {
        storage::set_current(current.as_ref());
    });
    // Expire "is typing" notices while any are shown.
    {
        let chat = chat.clone();
        let typing = chat.chats.iter().any(|c| !c.typing.is_empty());
        use_effect_with(typing, move |typing| {
            let interval =
                typing.then(|| Interval::new(1_000, move || chat.dispatch(Action::ExpireTyping)));
            move || drop(interval)
        });
    }

    if !chat.session_checked {
        // Until `GET /api/session` answers (normally a few milliseconds).
        return html! {
            <main class="welcome" aria-busy="true">
                <p class="muted" role="status">{ "Loading…" }</p>
            </main>
        };
    }
    if chat.status == Status::SignedOut {
        let on_guest = {
            let chat = chat.clone();
            Callback::from(move |name: String| chat.sign_in(name))
        };
        let on_signed_in = {
            let chat = chat.clone();
            Callback::from(move |user: String| chat.signed_in(user))
        };
        return html! {
            <AuthScreen
                guests={chat.guests}
                notice={chat.auth_notice.clone().map(AttrValue::from)}
                guest_name={chat.wanted_name.clone().map(AttrValue::from)}
                guest_error={chat.name_error.clone().map(AttrValue::from)}
                {on_signed_in} {on_guest} />
        };
    }

    let connected = chat.status == Status::Connected;
    let set_panel = |p: Panel| {
        let panel = panel.clone();
        Callback::from(move |()| panel.set(if *panel == p { Panel::None } else { p }))
    };
    let close_panel = {
        let panel = panel.clone();
        Callback::from(move |_: MouseEvent| panel.set(Panel::None))
    };
    let on_open = {
        let chat = chat.clone();
        let panel = panel.clone();
        Callback::from(move |target: Target| {
            chat.open(target);
            panel.set(Panel::None);
        })
    };
    let on_close = {
        let chat = chat.clone();
        Callback::from(move |target: Target| chat.close(target))
    };
    let on_join = {
        let chat = chat.clone();
        let panel = panel.clone();
        Callback::from(move |room: String| {
            chat.join(room);
            panel.set(Panel::None);
        })
    };
    let on_refresh = {
        let chat = chat.clone();
        Callback::from(move |()| chat.list_rooms())
    };
    let on_retry = {
        let chat = chat.clone();
        Callback::from(move |()| chat.retry_now())
    };
    let on_rename = {
        let chat = chat.clone();
        Callback::from(move |name: String| chat.rename(name))
    };
    let on_direct = {
        let chat = chat.clone();
        let panel = panel.clone();
        Callback::from(move |user: String| {
            chat.open(Target::Direct(user));
            panel.set(Panel::None);
        })
    };
    let on_sign_out = {
        let chat = chat.clone();
        Callback::from(move |()| chat.sign_out())
    };
    let on_dismiss_notice = {
        let chat = chat.clone();
        Callback::from(move |()| chat.dispatch(Action::DismissNotice))
    };

    let main = match chat.current_chat() {
        Some(current) => {
            let target = current.target.clone();
            let on_send = {
                let chat = chat.clone();
                let target = target.clone();
                Callback::from(move |text: String| chat.send(target.clone(), text))
            };
            let on_typing = {
                let chat = chat.clone();
                let target = target.clone();
                Callback::from(move |()| {
                    if let Target::Room(room) = &target {
                        chat.typing(room.clone());
                    }
                })
            };
            let on_dismiss = {
                let chat = chat.clone();
                let target = target.clone();
                Callback::from(move |client_id: String| {
                    chat.dispatch(Action::DismissPending {
                        target: target.clone(),
                        client_id,
                    })
                })
            };
            let on_load_older = {
                let chat = chat.clone();
                let target = target.clone();
                Callback::from(move |before: u64| {
                    if let Target::Room(room) = &target {
                        chat.load_older(room.clone(), before);
                    }
                })
            };
            let partner_online = match &target {
                Target::Direct(user) => chat.is_online(user),
                Target::Room(_) => false,
            };
            html! {
                <>
                    <ChatView chat={current.clone()} {connected}
                        me={chat.display_name().map(|n| AttrValue::from(n.to_string()))} max_bytes={chat.limits.max_text_bytes}
                        drafts={(*drafts).clone()} {on_send} {on_typing} {on_dismiss} {on_load_older}
                        on_members={set_panel(Panel::Members)} />
                    <aside class="sidebar sidebar-right" aria-label="People">
                        <Presence chat={current.clone()} me={chat.me.clone().map(AttrValue::from)}
                            {partner_online} {on_direct} />
                    </aside>
                </>
            }
        }
        None => html! { <EmptyChat on_join={on_join.clone()} /> },
    };

    let panel_class = match *panel {
        Panel::None => None,
        Panel::Rooms => Some("show-rooms"),
        Panel::Members => Some("show-members"),
    };
    let unread: u32 = chat
        .chats
        .iter()
        .filter(|c| Some(&c.target) != chat.current.as_ref())
        .map(|c| c.unread)
        .sum();
    // Escape closes an open drawer.
    let onkeydown = {
        let panel = panel.clone();
        Callback::from(move |e: KeyboardEvent| {
            if e.key() == "Escape" && *panel != Panel::None {
                panel.set(Panel::None);
            }
        })
    };
    html! {
        <div class={classes!("app", panel_class, (!connected).then_some("offline"))} {onkeydown}>
            <a class="skip-link" href="#composer-input">{ "Skip to the message box" }</a>
            <header class="topbar">
                <button class="icon-button rooms-toggle" type="button" onclick={set_panel(Panel::Rooms).reform(|_: MouseEvent| ())}
                    aria-label="Show rooms" aria-expanded={(*panel == Panel::Rooms).to_string()}>
                    <svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true" focusable="false">
                        <path d="M4 7h16M4 12h16M4 17h16" stroke="currentColor" stroke-width="2" stroke-linecap="round" />
                    </svg>
                    if unread > 0 {
                        <span class="dot-badge" aria-hidden="true"></span>
                    }
                </button>
                <div class="brand"><span class="brand-mark" aria-hidden="true">{ "#" }</span>{ "hubbub" }</div>
                <ConnectionStatus status={chat.status.clone()} {on_retry} />
                <div class="topbar-end">
                    <UserMenu name={AttrValue::from(chat.display_name().unwrap_or_default().to_string())}
                        account={chat.account.is_some()} {connected} {on_rename} {on_sign_out} />
                </div>
            </header>
            <div class="layout">
                <nav class="sidebar sidebar-left" aria-label="Rooms and conversations">
                    <RoomList chats={chat.chats.clone()} current={chat.current.clone()}
                        directory={chat.directory.clone()} {on_open} {on_close} {on_join} {on_refresh} />
                </nav>
                { main }
                <div class="scrim" onclick={close_panel} aria-hidden="true"></div>
            </div>
            <NoticeToast notice={chat.notice.clone()} on_dismiss={on_dismiss_notice} />
        </div>
    }
}

fn main() {
    yew::Renderer::<App>::new().render();
}
