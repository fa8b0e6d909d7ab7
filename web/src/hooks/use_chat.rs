//! `use_chat`: the app's state and the ways to change it.
//!
//! The hook keeps the one [`ChatState`] reducer and starts the connection
//! task ([`crate::link::run`]) once; it also forwards the browser's
//! `online`/`offline` events to the task. The [`UseChatHandle`] it returns
//! derefs to the state; its methods either change the state (an
//! [`Action`]), ask the task for something (a [`Command`]), or both.

use std::cell::RefCell;
use std::ops::Deref;

use futures::channel::mpsc::{unbounded, UnboundedSender};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use yew::prelude::*;

use crate::link::{self, Command, LinkTask};
use hubbub_protocol::{ClientMsg, ServerMsg};

use crate::state::{Action, ChatState, Target, EVENT_ID};
use crate::storage;

/// The state plus the ways to change it; cheap to clone.
#[derive(Clone)]
pub struct UseChatHandle {
    state: UseReducerHandle<ChatState>,
    commands: UnboundedSender<Command>,
}

impl PartialEq for UseChatHandle {
    fn eq(&self, other: &Self) -> bool {
        self.state == other.state
    }
}

impl Deref for UseChatHandle {
    type Target = ChatState;

    fn deref(&self) -> &ChatState {
        &self.state
    }
}

impl UseChatHandle {
    fn command(&self, command: Command) {
        // The task lives as long as the page; a closed channel means the
        // page is going away and there is nobody left to tell.
        let _ = self.commands.unbounded_send(command);
    }

    pub fn dispatch(&self, action: Action) {
        self.state.dispatch(action);
    }

    /// A callback that calls `f` with this handle and the callback's value.
    /// `f` is a function pointer, not a closure: the callback's code is then
    /// one copy per type of value, not one per call site (the bundle).
    pub fn callback<T: 'static>(&self, f: fn(&UseChatHandle, T)) -> Callback<T> {
        let chat = self.clone();
        Callback::from(move |value| f(&chat, value))
    }

    /// [`Self::callback`] for an `f` that captures state of its own.
    pub fn callback_with<T: 'static>(
        &self,
        f: impl Fn(&UseChatHandle, T) + 'static,
    ) -> Callback<T> {
        let chat = self.clone();
        Callback::from(move |value| f(&chat, value))
    }

    /// Chat as a guest named `name`.
    pub fn sign_in(&self, name: String) {
        self.dispatch(Action::SignIn(name.clone()));
        self.command(Command::SignIn(name));
    }

    /// Chat as the account `user`, just signed in or registered.
    pub fn signed_in(&self, user: String) {
        self.dispatch(Action::SignedIn(user.clone()));
        self.command(Command::SignInAccount(user));
    }

    /// Close the socket and end the login; the sign-in screen follows.
    pub fn sign_out(&self) {
        self.command(Command::SignOut);
    }

    /// Join (or create) `room` and show it.
    pub fn join(&self, room: String) {
        self.dispatch(Action::Open(Target(room.clone())));
        self.command(Command::Join(room));
    }

    /// Show a chat.
    pub fn open(&self, target: Target) {
        self.dispatch(Action::Open(target));
    }

    /// Show the private conversation with `user`: at once if the user has
    /// it, else once the server's answer to `open` is there.
    pub fn message(&self, user: String) {
        match self.conversation_with(&user) {
            Some(chat) => self.open(chat.target.clone()),
            None => {
                self.dispatch(Action::Opening(user.clone()));
                self.command(Command::Open(user));
            }
        }
    }

    /// Leave a room or close a conversation (it comes back with the next
    /// message said in it).
    pub fn close(&self, target: Target) {
        self.command(Command::Leave(target.0.clone()));
        self.dispatch(Action::Close(target));
    }

    /// Send `text` (a caption, if there are `files`) and the uploads
    /// `files` to `target` now, or as soon as the link is back.
    /// A reply (the chat on screen's [`ChatState::reply`]) answers it.
    pub fn send(&self, target: Target, text: String, files: Vec<String>) {
        let reply_to = self
            .reply
            .as_ref()
            .filter(|_| self.current.as_ref() == Some(&target))
            .map(|q| q.seq);
        if reply_to.is_some() {
            self.dispatch(Action::Reply(None));
        }
        self.command(Command::Send {
            target,
            text,
            files,
            reply_to,
        });
    }

    /// Sends an `edit`, `delete` or `react`, with a fresh `client_id` (a
    /// refusal is a notice: [`EVENT_ID`]).
    pub fn change(&self, mut msg: ClientMsg) {
        if let ClientMsg::Edit { client_id, .. }
        | ClientMsg::Delete { client_id, .. }
        | ClientMsg::React { client_id, .. } = &mut msg
        {
            // From a random start: the server takes a `client_id` this
            // user used before in the room as a retry, so ids must not
            // repeat across page loads and tabs of one account.
            let id = match NEXT_EVENT.get() {
                0 => (js_sys::Math::random() * 1e15) as u64 + 1,
                last => last + 1,
            };
            NEXT_EVENT.set(id);
            *client_id = Some(format!("{EVENT_ID}{id}"));
        }
        self.command(Command::Event(msg));
    }

    /// Forget a message the server refused.
    pub fn dismiss(&self, client_id: String) {
        self.command(Command::Dismiss(client_id));
    }

    pub fn rename(&self, name: String) {
        self.command(Command::Rename(name));
    }

    pub fn list_rooms(&self) {
        self.command(Command::ListRooms);
    }

    pub fn load_older(&self, room: String, before: u64) {
        self.command(Command::LoadOlder { room, before });
    }

    pub fn typing(&self, room: String) {
        self.command(Command::Typing(room));
    }

    /// Search every room's messages for the words of `query`.
    pub fn search(&self, query: String) {
        if query.is_empty() {
            return;
        }
        self.dispatch(Action::Search(query.clone()));
        self.command(Command::Search {
            query,
            before: None,
        });
    }

    /// The next page of the open search.
    pub fn search_more(&self) {
        if let Some(search) = self.search.as_ref().filter(|s| !s.busy) {
            if let Some(next) = search.next.clone() {
                self.dispatch(Action::SearchMore);
                self.command(Command::Search {
                    query: search.query.clone(),
                    before: Some(next),
                });
            }
        }
    }

    /// Show message `seq` of `room` (a search result), joining the room
    /// if need be.
    pub fn show_found(&self, room: String, seq: u64) {
        if self.chat(&Target(room.clone())).is_none() {
            self.command(Command::Join(room.clone()));
        }
        self.dispatch(Action::ShowFound(room, seq));
    }

    /// The end of `room` is on screen: if the tab is visible, it is read
    /// up to there, here at once and then on the server (which tells the
    /// user's other tabs and devices).
    ///
    /// At most one `read` a second goes out (a busy room would otherwise
    /// spend the user's request budget, and a store write each, on reads):
    /// one asked for sooner is made when the second is up, from what is
    /// on screen then.
    pub fn seen(&self, room: String) {
        let hidden = web_sys::window()
            .and_then(|w| w.document())
            .is_none_or(|d| d.hidden());
        let Some(seq) = self.reads.read_to_end(&room).filter(|_| !hidden) else {
            return;
        };
        let now = js_sys::Date::now();
        let wait = READ_SENT_AT.get() + READ_EVERY_MS - now;
        if wait > 0.0 {
            if !READ_QUEUED.replace(true) {
                let dispatcher = self.state.dispatcher();
                gloo_timers::callback::Timeout::new(wait as u32, move || {
                    READ_QUEUED.set(false);
                    dispatcher.dispatch(Action::Recheck);
                })
                .forget();
            }
            return;
        }
        READ_SENT_AT.set(now);
        self.dispatch(Action::Server(ServerMsg::Read {
            room: room.clone(),
            seq,
        }));
        self.command(Command::Read { room, seq });
    }

    pub fn retry_now(&self) {
        self.command(Command::RetryNow);
    }
}

/// The least time between two `read`s, in milliseconds.
const READ_EVERY_MS: f64 = 1_000.0;

thread_local! {
    /// When the last `read` went out ([`UseChatHandle::seen`]).
    static READ_SENT_AT: std::cell::Cell<f64> = const { std::cell::Cell::new(0.0) };
    /// Whether a later look at what is on screen is set.
    static READ_QUEUED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// The number of the last edit, deletion or reaction's `client_id`
    /// (0: none yet).
    static NEXT_EVENT: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The chat state and the connection that feeds it.
#[hook]
pub fn use_chat() -> UseChatHandle {
    let state =
        use_reducer(|| ChatState::new(storage::name(), storage::rooms(), storage::current()));
    let channel = use_memo((), |_| {
        let (tx, rx) = unbounded::<Command>();
        (tx, RefCell::new(Some(rx)))
    });
    {
        let channel = channel.clone();
        let dispatcher = state.dispatcher();
        let name = state.wanted_name.clone();
        use_effect_with((), move |_| {
            if let Some(rx) = channel.1.borrow_mut().take() {
                let task = LinkTask::new(name, storage::rooms(), dispatcher.clone());
                wasm_bindgen_futures::spawn_local(link::run(task, rx));
            }
            network_events(channel.0.clone(), dispatcher)
        });
    }
    UseChatHandle {
        state,
        commands: channel.0.clone(),
    }
}

/// Tells the connection task when the browser goes offline or online: it
/// drops a link that cannot work and reconnects the moment it can; and the
/// state when the tab becomes visible (what is on screen then is read).
/// Returns what removes the listeners. (In the one effect that starts the
/// task: an effect of its own would cost the bundle a hook's worth of code.)
fn network_events(
    commands: UnboundedSender<Command>,
    dispatcher: UseReducerDispatcher<ChatState>,
) -> impl FnOnce() {
    let window = web_sys::window().expect("the app runs in a browser window");
    let document = window.document();
    let listen = |event: &'static str| {
        let commands = commands.clone();
        let dispatcher = dispatcher.clone();
        let document = document.clone();
        let closure = Closure::<dyn Fn()>::new(move || match event {
            "online" | "offline" => {
                let _ = commands.unbounded_send(Command::Network(event == "online"));
            }
            _ if document.as_ref().is_some_and(|d| !d.hidden()) => {
                dispatcher.dispatch(Action::Visible)
            }
            _ => {}
        });
        let _ = window.add_event_listener_with_callback(event, closure.as_ref().unchecked_ref());
        (event, closure)
    };
    let listeners = [
        listen("online"),
        listen("offline"),
        listen("visibilitychange"),
    ];
    move || {
        for (event, closure) in &listeners {
            let _ =
                window.remove_event_listener_with_callback(event, closure.as_ref().unchecked_ref());
        }
    }
}
