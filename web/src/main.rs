//! The hubbub web app: a Yew single-page app that chats over `/ws`.
//!
//! Layout of the crate (after Yew's `function_todomvc`):
//! - [`api`]: the account API (session, sign in, register, sign out);
//! - [`state`]: the [`state::ChatState`] reducer and its [`state::Action`]s;
//! - [`link`]: the connection task (transport and resume, on the client
//!   core `hubbub-client`);
//! - [`hooks`]: `use_chat`, the state and the handle to change it;
//! - [`components`]: the UI, one piece per file, all in one component
//!   type ([`components::part::Part`]);
//! - [`wire`]: frames to and from JSON, with the browser's own `JSON`;
//! - [`upload`]: files on their way to the server, per chat;
//! - [`notify`]: browser notifications of mentions and of messages in
//!   private conversations;
//! - [`storage`], [`fmt`]: `localStorage` and formatting helpers.

mod api;
mod components;
mod fmt;
mod hooks;
mod link;
mod markup;
mod names;
mod notify;
mod state;
mod storage;
mod upload;
mod wire;

use hubbub_client::Link;
use yew::prelude::*;

use components::auth::AuthProps;
use components::chat_view::{carries_files, chat_view, empty_chat, ChatViewProps, EmptyChatProps};
use components::composer::Drafts;
use components::notice::{notice_toast, use_notice_expiry, NoticeProps};
use components::part::{Part, PartProps, Piece};
use components::presence::{presence, PresenceProps};
use components::room_list::{room_list, RoomListProps};
use components::search::{search_form, search_results, SearchProps};
use components::status::{connection_status, StatusProps};
use components::user_menu::UserMenuProps;
use fmt::flag;
use hooks::{use_chat, use_every, UseChatHandle};
use state::{Action, Copied, Target};

/// The allocator: talc instead of the standard library's dlmalloc, for a
/// smaller bundle (the app is single-threaded wasm, which talc's
/// `TalcSyncCell` requires).
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

/// The side panel open on a narrow screen, as the app's class names it
/// (none: empty). A `String` state, not an enum of its own: each type of
/// `use_state` is a copy of its code in the bundle (~1.2 KB raw), and
/// `String` is one the app has anyway.
const ROOMS: &str = "show-rooms";
const MEMBERS: &str = "show-members";

/// The whole app (the root [`Part`]): loading, the sign-in screen, or the
/// chat.
#[hook]
fn use_app() -> Html {
    let chat = use_chat();
    let panel = use_state(String::new);
    let drafts = use_memo((), |_| Drafts::default());
    remember_current(&chat);
    use_typing_expiry(&chat);
    use_notice_expiry(&chat);

    if !chat.session_checked {
        // Until `GET /api/session` answers (normally a few milliseconds).
        return html! {
            <main class="welcome" aria-busy="true">
                <p class="muted" role="status">{ "Loading…" }</p>
            </main>
        };
    }
    if chat.link == Link::Idle {
        return html! {
            <Part key="auth" piece={Piece::Auth(AuthProps {
                guests: chat.guests,
                notice: chat.auth_notice.clone().map(AttrValue::from),
                guest_name: chat.wanted_name.clone().map(AttrValue::from),
                guest_error: chat.name_error.clone().map(AttrValue::from),
                on_signed_in: chat.callback(|chat, user| chat.signed_in(user)),
                on_guest: chat.callback(|chat, name| chat.sign_in(name)),
            })} />
        };
    }
    drafts.1.configure(
        chat.upload_token.as_deref(),
        chat.limits.max_files_per_message,
        chat.limits.max_file_bytes,
    );
    chat_app(&chat, panel, &drafts)
}

/// Remembers the chat on screen for the next visit, when it changes. Not
/// an effect: each type an effect depends on is a copy of Yew's effect
/// code in the bundle (~1 KB raw), and a `localStorage` write is as well
/// made while drawing.
fn remember_current(chat: &UseChatHandle) {
    thread_local! {
        static SAVED: std::cell::RefCell<Option<Target>> = const { std::cell::RefCell::new(None) };
    }
    SAVED.with_borrow_mut(|saved| {
        if *saved != chat.current {
            storage::set_current(chat.current.as_ref());
            saved.clone_from(&chat.current);
        }
    });
}

/// Expires "is typing" notices while any are shown.
#[hook]
fn use_typing_expiry(chat: &UseChatHandle) {
    let typing = chat.chats.iter().any(|c| !c.typing.is_empty());
    use_every(chat, typing.then_some(0), 1_000, || Action::ExpireTyping);
}

/// The signed-in app: top bar, rooms, the open chat and who is in it. (A
/// plain function of [`use_app`], which holds its state, not a part of
/// its own.)
fn chat_app(chat: &UseChatHandle, panel: UseStateHandle<String>, drafts: &Drafts) -> Html {
    let connected = chat.link.is_connected();
    let toggle = |p: &'static str| {
        let panel = panel.clone();
        Callback::from(move |()| panel.set(if *panel == p { String::new() } else { p.into() }))
    };
    // Picking something in a drawer closes it.
    let and_close = |f: fn(&UseChatHandle, String)| {
        let panel = panel.clone();
        chat.callback_with(move |chat, value: String| {
            f(chat, value);
            panel.set(String::new());
        })
    };
    let on_open = {
        let panel = panel.clone();
        chat.callback_with(move |chat, target: Target| {
            chat.open(target);
            panel.set(String::new());
        })
    };
    let on_join = and_close(|chat, room| chat.join(room));
    let on_message = and_close(|chat, user| chat.message(user));

    let current = chat.current_chat().cloned();
    let found = match (&chat.found, &current) {
        (Some((room, seq)), Some(c)) if c.target == Target(room.clone()) => Some(*seq),
        _ => None,
    };
    // An open search shows in place of the chat.
    let main = match (&current, chat.search.clone()) {
        (_, Some(search)) => search_results(&SearchProps {
            search,
            connected,
            on_show: {
                let panel = panel.clone();
                chat.callback_with(move |chat, (room, seq)| {
                    chat.show_found(room, seq);
                    panel.set(String::new());
                })
            },
            on_more: chat.callback(|chat, ()| chat.search_more()),
            on_close: chat.callback(|chat, ()| chat.dispatch(Action::CloseSearch)),
        }),
        (Some(current), None) => {
            let target = current.target.clone();
            let room = target.0.clone();
            let on_send = {
                let target = target.clone();
                chat.callback_with(move |chat, (text, files)| {
                    chat.send(target.clone(), text, files)
                })
            };
            let on_typing = {
                let room = room.clone();
                chat.callback_with(move |chat, ()| chat.typing(room.clone()))
            };
            let on_seen = {
                let room = room.clone();
                chat.callback_with(move |chat, ()| chat.seen(room.clone()))
            };
            let on_load_older =
                chat.callback_with(move |chat, before| chat.load_older(room.clone(), before));
            html! {
                <>
                    { chat_view(&ChatViewProps {
                        chat: current.clone(),
                        connected,
                        me: chat.display_name().map(|n| AttrValue::from(n.to_string())),
                        pending: Copied(std::rc::Rc::new(chat.pending_for(&target))),
                        max_bytes: chat.limits.max_text_bytes,
                        drafts: drafts.clone(),
                        token: chat.upload_token.clone().map(AttrValue::from),
                        on_send,
                        on_typing,
                        on_dismiss: chat.callback(|chat, id| chat.dismiss(id)),
                        on_load_older,
                        on_seen,
                        visible: chat.visible,
                        found,
                        on_members: toggle(MEMBERS),
                        edit_after: chat.edit_after(),
                        editing: chat.editing,
                        reply: chat.reply.clone(),
                        on_change: chat.callback(|chat, msg| chat.change(msg)),
                        on_action: chat.callback(|chat, action| chat.dispatch(action)),
                    }) }
                    <aside id="people" class="sidebar sidebar-right" aria-label="People">
                        { presence(&PresenceProps {
                            online: current.peer_online(&chat.chats),
                            chat: current.clone(),
                            me: chat.me.clone().map(AttrValue::from),
                            on_message,
                        }) }
                    </aside>
                </>
            }
        }
        (None, None) => empty_chat(&EmptyChatProps {
            on_join: on_join.clone(),
        }),
    };

    let unread: u32 = chat
        .chats
        .iter()
        .filter(|c| Some(&c.target) != chat.current.as_ref())
        .map(|c| c.unread)
        .sum();
    // The tab's title counts every unread message: "(3) hubbub".
    let total: u32 = chat.chats.iter().map(|c| c.unread).sum();
    let title = if total > 0 {
        format!("({total}) hubbub")
    } else {
        "hubbub".to_string()
    };
    if let Some(document) = web_sys::window().and_then(|w| w.document()) {
        if document.title() != title {
            document.set_title(&title);
        }
    }
    // Escape closes an open drawer.
    let onkeydown = {
        let panel = panel.clone();
        Callback::from(move |e: KeyboardEvent| {
            if e.key() == "Escape" && !panel.is_empty() {
                panel.set(String::new());
            }
        })
    };
    let close_panel = {
        let panel = panel.clone();
        Callback::from(move |_: MouseEvent| panel.set(String::new()))
    };
    // Files dropped beside the chat (a sidebar, the top bar) are refused,
    // not opened by the browser in place of the app; text drops as ever.
    let refuse_files = Callback::from(|e: DragEvent| {
        if carries_files(&e) {
            e.prevent_default();
        }
    });
    // Plain strings, not `classes!` (each use is code in the bundle).
    let mut classes = String::from("app");
    for (on, class) in [
        (!panel.is_empty(), panel.as_str()),
        (!connected, "offline"),
        (current.is_none() || chat.search.is_some(), "no-chat"),
    ] {
        if on {
            classes.push(' ');
            classes.push_str(class);
        }
    }
    html! {
        <div CLASS={classes} {onkeydown} ondragover={refuse_files.clone()} ondrop={refuse_files}>
            if current.is_some() && chat.search.is_none() {
                <a class="skip-link" href="#composer-input">{ "Skip to the message box" }</a>
            }
            <header class="topbar">
                <button class="icon-button rooms-toggle" type="button"
                    onclick={toggle(ROOMS).reform(|_: MouseEvent| ())}
                    aria-label="Show rooms" aria-expanded={flag(*panel == ROOMS)}>
                    <span class="icon icon-menu" aria-hidden="true"></span>
                    if unread > 0 {
                        <span class="dot-badge" aria-hidden="true"></span>
                    }
                </button>
                <div class="brand"><span class="brand-mark" aria-hidden="true">{ "#" }</span>{ "hubbub" }</div>
                { connection_status(&StatusProps {
                    link: chat.link.clone(),
                    now_s: fmt::now_ms() / 1000,
                    on_retry: chat.callback(|chat, ()| chat.retry_now()),
                }) }
                <div class="topbar-end">
                    <Part key="user-menu" piece={Piece::UserMenu(UserMenuProps {
                        name: AttrValue::from(chat.display_name().unwrap_or_default().to_string()),
                        account: chat.account.is_some(),
                        connected,
                        on_rename: chat.callback(|chat, name| chat.rename(name)),
                        on_sign_out: chat.callback(|chat, ()| chat.sign_out()),
                    })} />
                </div>
            </header>
            <div class="layout">
                <nav class="sidebar sidebar-left" aria-label="Rooms and conversations">
                    { search_form(&and_close(|chat, query| chat.search(query))) }
                    { room_list(&RoomListProps {
                        chats: chat.chats.clone(),
                        current: chat.current.clone(),
                        directory: chat.directory.clone(),
                        on_open,
                        on_close: chat.callback(|chat, target| chat.close(target)),
                        on_join,
                        on_refresh: chat.callback(|chat, ()| chat.list_rooms()),
                    }) }
                </nav>
                { main }
                <div class="scrim" onclick={close_panel} aria-hidden="true"></div>
            </div>
            { notice_toast(&NoticeProps {
                notice: chat.notice.clone(),
                on_dismiss: chat.callback(|chat, ()| chat.dispatch(Action::DismissNotice)),
            }) }
        </div>
    }
}

fn main() {
    yew::Renderer::<Part>::with_props(PartProps { piece: Piece::App }).render();
}
