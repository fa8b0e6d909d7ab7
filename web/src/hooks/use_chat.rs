//! `use_chat`: the one place that owns the WebSocket.
//!
//! The hook keeps the [`ChatState`] reducer and spawns one long-lived task,
//! [`run`], that connects to `/ws`, says `hello`, rejoins the rooms, sends what
//! was queued while offline and turns every server frame into an
//! [`Action::Server`]. Components talk to the task through [`Command`]s on an
//! unbounded channel; the task never blocks the UI.
//!
//! The link counts as dead when the socket closes, errors, or stays silent for
//! two heartbeat intervals plus a margin (the server sends `heartbeat` every
//! `heartbeat_ms`). Then the task waits an exponentially growing delay with
//! full jitter (capped at [`BACKOFF_CAP_MS`]) and tries again, unless the close
//! code says not to ([`close::should_reconnect`]).
//!
//! Who the task connects as is settled first: `GET /api/session` says whether
//! the browser's session cookie is signed in (the upgrade then carries it and
//! `hello` names the account) and whether guests may chat. The task ends a
//! session itself on sign-out (closes the socket, then `POST /api/logout`)
//! and goes back to the sign-in screen, without reconnecting, when the server
//! ends it: close 4501 (signed out elsewhere), 4502 (session expired), or an
//! upgrade refused before `welcome` that `GET /api/session` explains.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures::stream::SplitSink;
use futures::{select, FutureExt, SinkExt, StreamExt};
use gloo_net::websocket::{futures::WebSocket, Message, WebSocketError};
use gloo_timers::future::TimeoutFuture;
use hubbub_protocol::{close, ClientMsg, ErrorCode, ServerMsg};
use yew::prelude::*;

use crate::api;
use crate::fmt::now_ms;
use crate::state::{Action, ChatState, Status, Target};
use crate::storage;
use crate::wire;

/// The first reconnect waits up to this long; each further one doubles it.
pub const BACKOFF_BASE_MS: f64 = 500.0;
/// No reconnect waits longer than this.
pub const BACKOFF_CAP_MS: f64 = 15_000.0;
/// The shortest wait, so a flapping server is never hammered.
const BACKOFF_FLOOR_MS: u32 = 100;
/// How long to wait for `welcome` after opening the socket.
const HELLO_TIMEOUT_MS: u64 = 10_000;
/// Silence allowed on top of two missed heartbeats before the link is dead.
const HEARTBEAT_MARGIN_MS: u64 = 3_000;

/// What the UI asks of the connection task.
#[derive(Debug, Clone)]
pub enum Command {
    /// Connect as a guest with this name (from the first screen).
    SignIn(String),
    /// Connect as this account (the session cookie is set).
    SignInAccount(String),
    /// Close the socket, end the session, back to the sign-in screen.
    SignOut,
    Join(String),
    Leave(String),
    Send {
        room: String,
        text: String,
        client_id: String,
    },
    Direct {
        to: String,
        text: String,
        client_id: String,
    },
    Rename(String),
    /// Ask for the room directory.
    ListRooms,
    /// Ask for messages of `room` older than `before`.
    LoadOlder {
        room: String,
        before: u64,
    },
    Typing(String),
    /// Skip the rest of the backoff delay (or reconnect after a stop).
    RetryNow,
}

/// The wait before reconnect attempt `attempt` (1-based): uniformly random in
/// `[0, min(cap, base·2^attempt))` ("full jitter"), `random` being in `[0, 1)`.
pub fn backoff_delay(attempt: u32, random: f64) -> u32 {
    let ceiling = (BACKOFF_BASE_MS * 2f64.powi(attempt.min(20) as i32)).min(BACKOFF_CAP_MS);
    ((ceiling * random) as u32).max(BACKOFF_FLOOR_MS)
}

/// A fresh `client_id`: a per-page random prefix and a counter.
fn new_client_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static PREFIX: String = format!("{:08x}", (js_sys::Math::random() * u32::MAX as f64) as u32);
    }
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    PREFIX.with(|p| format!("{p}-{n}"))
}

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

    /// Close the socket and end the session; the sign-in screen follows.
    pub fn sign_out(&self) {
        self.command(Command::SignOut);
    }

    /// Join (or create) `room` and show it.
    pub fn join(&self, room: String) {
        self.dispatch(Action::Open(Target::Room(room.clone())));
        self.command(Command::Join(room));
    }

    /// Show a chat; a direct conversation is created if new.
    pub fn open(&self, target: Target) {
        self.dispatch(Action::Open(target));
    }

    /// Leave a room or close a direct conversation.
    pub fn close(&self, target: Target) {
        if let Target::Room(room) = &target {
            self.command(Command::Leave(room.clone()));
        }
        self.dispatch(Action::Close(target));
    }

    /// Send `text` to `target` now, or as soon as the link is back.
    pub fn send(&self, target: Target, text: String) {
        let client_id = new_client_id();
        self.dispatch(Action::Sent {
            target: target.clone(),
            client_id: client_id.clone(),
            text: text.clone(),
        });
        self.command(match target {
            Target::Room(room) => Command::Send {
                room,
                text,
                client_id,
            },
            Target::Direct(to) => Command::Direct {
                to,
                text,
                client_id,
            },
        });
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

    pub fn retry_now(&self) {
        self.command(Command::RetryNow);
    }
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
                let session = Session::new(name, storage::rooms());
                wasm_bindgen_futures::spawn_local(run(session, rx, dispatcher));
            }
        });
    }
    UseChatHandle {
        state,
        commands: channel.0.clone(),
    }
}

type Dispatch = UseReducerDispatcher<ChatState>;
type Sink = SplitSink<WebSocket, Message>;

/// A request the server has not answered yet, resent after a reconnect.
struct Outgoing {
    client_id: String,
    msg: ClientMsg,
}

/// What the task remembers across connections.
struct Session {
    url: String,
    /// The name to say `hello` with; `None` until the user picks one.
    name: Option<String>,
    /// Whether `name` is a signed-in account (not a guest name to remember).
    account: bool,
    /// The user asked to sign out; the session is not ended yet.
    signing_out: bool,
    /// Whether the current connection got its `welcome`.
    welcomed_now: bool,
    /// Rooms to be in, rejoined on every connection.
    rooms: Vec<String>,
    /// The last `seq` received per room: where a rejoin resumes from.
    last_seq: HashMap<String, u64>,
    /// Sends not yet acknowledged.
    outbox: Vec<Outgoing>,
    /// Whether any connection of this page was welcomed.
    welcomed_once: bool,
    idle_timeout_ms: u64,
    /// Failed attempts since the last welcome.
    attempt: u32,
}

impl Session {
    fn new(name: Option<String>, rooms: Vec<String>) -> Session {
        Session {
            url: socket_url(),
            name,
            account: false,
            signing_out: false,
            welcomed_now: false,
            rooms,
            last_seq: HashMap::new(),
            outbox: Vec::new(),
            welcomed_once: false,
            idle_timeout_ms: 60_000,
            attempt: 0,
        }
    }

    /// Records `command`; returns the frame to send if the link is up.
    fn accept(&mut self, command: Command) -> Option<ClientMsg> {
        match command {
            Command::SignIn(name) => {
                self.name = Some(name);
                self.account = false;
                None
            }
            Command::SignInAccount(name) => {
                self.name = Some(name);
                self.account = true;
                None
            }
            Command::SignOut => {
                self.signing_out = self.name.is_some();
                None
            }
            Command::Join(room) => {
                if !self.rooms.contains(&room) {
                    self.rooms.push(room.clone());
                    storage::set_rooms(&self.rooms);
                }
                let since = self.last_seq.get(&room).copied();
                Some(ClientMsg::Join { room, since })
            }
            Command::Leave(room) => {
                self.rooms.retain(|r| *r != room);
                self.last_seq.remove(&room);
                storage::set_rooms(&self.rooms);
                Some(ClientMsg::Leave { room })
            }
            Command::Send {
                room,
                text,
                client_id,
            } => Some(self.queue(
                client_id.clone(),
                ClientMsg::Send {
                    room,
                    text,
                    client_id: Some(client_id),
                },
            )),
            Command::Direct {
                to,
                text,
                client_id,
            } => Some(self.queue(
                client_id.clone(),
                ClientMsg::Direct {
                    to,
                    text,
                    client_id: Some(client_id),
                },
            )),
            Command::Rename(name) => Some(ClientMsg::Rename { name }),
            Command::ListRooms => Some(ClientMsg::Rooms),
            Command::LoadOlder { room, before } => Some(ClientMsg::History {
                room,
                before: Some(before),
                limit: None,
            }),
            Command::Typing(room) => Some(ClientMsg::Typing { room }),
            Command::RetryNow => None,
        }
    }

    fn queue(&mut self, client_id: String, msg: ClientMsg) -> ClientMsg {
        self.outbox.push(Outgoing {
            client_id,
            msg: msg.clone(),
        });
        msg
    }

    /// Notes that `room` has messages up to `seq`.
    fn saw(&mut self, room: &str, seq: u64) {
        if self.rooms.iter().any(|r| r == room) {
            let last = self.last_seq.entry(room.to_string()).or_default();
            *last = (*last).max(seq);
        }
    }

    fn settle(&mut self, client_id: &str) {
        self.outbox.retain(|o| o.client_id != client_id);
    }

    /// What to send right after `welcome`: joins, then queued sends.
    fn resume_frames(&self) -> Vec<ClientMsg> {
        let joins = self.rooms.iter().map(|room| ClientMsg::Join {
            room: room.clone(),
            since: self.last_seq.get(room).copied(),
        });
        let sends = self.outbox.iter().map(|o| o.msg.clone());
        joins
            .chain(sends)
            .chain(std::iter::once(ClientMsg::Rooms))
            .collect()
    }
}

/// `ws://host/ws` or `wss://host/ws`, matching the page.
fn socket_url() -> String {
    let location = gloo_utils_location();
    let secure = location.protocol().is_ok_and(|p| p == "https:");
    let host = location.host().unwrap_or_else(|_| "127.0.0.1:8080".into());
    format!("{}://{host}/ws", if secure { "wss" } else { "ws" })
}

fn gloo_utils_location() -> web_sys::Location {
    web_sys::window()
        .expect("the app runs in a browser window")
        .location()
}

/// Why one connection ended.
enum Ended {
    /// The link closed or went silent; `code` is the close code (1006 when
    /// there was none).
    Closed { code: u16, reason: String },
    /// The server refused the name before welcoming us.
    NameRefused { code: ErrorCode, message: String },
    /// The user asked to sign out; the socket is closed.
    SigningOut,
    /// The UI dropped its end of the command channel.
    Shutdown,
}

/// The connection task: connect, serve, back off, repeat.
async fn run(mut session: Session, mut commands: UnboundedReceiver<Command>, dispatch: Dispatch) {
    // Signed in already (the cookie), a guest, or neither yet? If the server
    // cannot be reached, a remembered guest name tries anyway and backs off.
    let (user, guests) = match api::session().await {
        Ok(who) => (who.user, who.guests),
        Err(_) => (None, true),
    };
    if let Some(user) = &user {
        session.name = Some(user.clone());
        session.account = true;
    } else if !guests {
        session.name = None;
    }
    dispatch.dispatch(Action::SessionChecked { user, guests });

    let mut name_refused_since: Option<u64> = None;
    loop {
        end_session_if_asked(&mut session, &dispatch).await;
        // Nothing to connect as until the user signs in or picks a name.
        while session.name.is_none() {
            match commands.next().await {
                Some(command) => {
                    session.accept(command);
                    end_session_if_asked(&mut session, &dispatch).await;
                }
                None => return,
            }
        }
        dispatch.dispatch(Action::Status(Status::Connecting));
        match connect(&mut session, &mut commands, &dispatch).await {
            Ended::Shutdown => return,
            Ended::SigningOut => continue,
            Ended::Closed { code, reason } => {
                name_refused_since = None;
                if let Some(why) = session_ended(&session, code).await {
                    match why {
                        SessionEnd::SignedOut(why) => {
                            forget_user(&mut session);
                            dispatch.dispatch(Action::SignedOut(Some(why)));
                        }
                        SessionEnd::GuestsOff(why) => {
                            forget_user(&mut session);
                            dispatch.dispatch(Action::GuestsRefused(why));
                        }
                    }
                    continue;
                }
                if !close::should_reconnect(code) {
                    let reason = if reason.is_empty() {
                        format!("The server closed the connection ({code}).")
                    } else {
                        reason
                    };
                    dispatch.dispatch(Action::Status(Status::Stopped { reason }));
                    if !wait_for_retry(&mut session, &mut commands).await {
                        return;
                    }
                    session.attempt = 0;
                    continue;
                }
            }
            Ended::NameRefused {
                code: ErrorCode::Forbidden,
                message,
            } => {
                // Guests are off on this server: sign in instead.
                forget_user(&mut session);
                dispatch.dispatch(Action::GuestsRefused(api::sentence(&message)));
                continue;
            }
            Ended::NameRefused { code, message } => {
                // After a dropped link the server may still count our old
                // connection as online (until its idle timeout), holding the
                // name: keep retrying for that long before asking the user.
                let since = *name_refused_since.get_or_insert_with(now_ms);
                let still_ours = session.welcomed_once
                    && code == ErrorCode::NameTaken
                    && now_ms() - since < session.idle_timeout_ms + HEARTBEAT_MARGIN_MS;
                if !still_ours {
                    name_refused_since = None;
                    session.name = None;
                    session.welcomed_once = false;
                    session.attempt = 0;
                    storage::set_name(None);
                    dispatch.dispatch(Action::NameRejected(api::sentence(&message)));
                    continue;
                }
            }
        }
        session.attempt += 1;
        let delay_ms = backoff_delay(session.attempt, js_sys::Math::random());
        dispatch.dispatch(Action::Status(Status::Reconnecting {
            attempt: session.attempt,
            delay_ms,
        }));
        if !wait_offline(delay_ms, &mut session, &mut commands).await {
            return;
        }
    }
}

/// Why the server ended this user's session rather than just the link.
enum SessionEnd {
    /// Back to the sign-in screen, with this explanation.
    SignedOut(String),
    /// The server does not take guests (any more).
    GuestsOff(String),
}

/// Whether a connection that ended with `code` ended the session: closed
/// with 4501 (signed out elsewhere) or 4502 (session expired), or refused at
/// the upgrade (the socket errors before it opens, so the page only sees
/// 1006) for a reason `GET /api/session` confirms. A server that is down, or
/// refuses for another reason (429), is retried with backoff as usual.
async fn session_ended(session: &Session, code: u16) -> Option<SessionEnd> {
    if code == close::LOGGED_OUT {
        return Some(SessionEnd::SignedOut(
            "You were signed out, in this browser or elsewhere. Sign in again to chat.".into(),
        ));
    }
    if code == close::SESSION_EXPIRED {
        return Some(SessionEnd::SignedOut(
            "Your session expired. Sign in again to chat.".into(),
        ));
    }
    if code != 1006 || session.welcomed_now {
        return None;
    }
    match api::session().await {
        Ok(who) if session.account && who.user.is_none() => Some(SessionEnd::SignedOut(
            "Your session has ended. Sign in again to chat.".into(),
        )),
        Ok(who) if !session.account && !who.guests => Some(SessionEnd::GuestsOff(
            "This server no longer takes guests. Sign in or create an account.".into(),
        )),
        _ => None,
    }
}

/// Nothing to connect as until the user signs in again.
fn forget_user(session: &mut Session) {
    if !session.account {
        storage::set_name(None);
    }
    session.name = None;
    session.account = false;
    session.welcomed_once = false;
    session.attempt = 0;
}

/// If the user asked to sign out: ends the session (`POST /api/logout`,
/// which also closes this session's sockets in other tabs) and shows the
/// sign-in screen. The socket of this page is already closed.
async fn end_session_if_asked(session: &mut Session, dispatch: &Dispatch) {
    if !std::mem::take(&mut session.signing_out) {
        return;
    }
    if session.account {
        // If the server is unreachable the cookie stays, but this page
        // still signs out; the next visit asks the server again.
        let _ = api::logout().await;
    }
    forget_user(session);
    dispatch.dispatch(Action::SignedOut(None));
}

/// Waits `delay_ms` while recording commands; `RetryNow` cuts it short.
/// Returns `false` if the UI went away.
async fn wait_offline(
    delay_ms: u32,
    session: &mut Session,
    commands: &mut UnboundedReceiver<Command>,
) -> bool {
    let mut timer = TimeoutFuture::new(delay_ms).fuse();
    loop {
        let command = select! {
            _ = timer => return true,
            command = commands.next() => command,
        };
        match command {
            None => return false,
            Some(Command::RetryNow) => return true,
            Some(command) => {
                session.accept(command);
                if session.signing_out {
                    return true;
                }
            }
        }
    }
}

/// Waits for the user to ask for a reconnect. Returns `false` if the UI went
/// away.
async fn wait_for_retry(session: &mut Session, commands: &mut UnboundedReceiver<Command>) -> bool {
    while let Some(command) = commands.next().await {
        match command {
            Command::RetryNow
            | Command::SignIn(_)
            | Command::SignInAccount(_)
            | Command::SignOut => {
                session.accept(command);
                return true;
            }
            command => {
                session.accept(command);
            }
        }
    }
    false
}

/// What woke the connection loop.
enum Event {
    Frame(Option<Result<Message, WebSocketError>>),
    Command(Option<Command>),
    Silence,
}

/// One connection, from opening the socket to its end.
async fn connect(
    session: &mut Session,
    commands: &mut UnboundedReceiver<Command>,
    dispatch: &Dispatch,
) -> Ended {
    let ws = match WebSocket::open(&session.url) {
        Ok(ws) => ws,
        Err(err) => {
            return Ended::Closed {
                code: 1006,
                reason: err.to_string(),
            }
        }
    };
    let (mut sink, mut stream) = ws.split();
    session.welcomed_now = false;
    let name = session.name.clone().unwrap_or_default();
    if send(&mut sink, &ClientMsg::Hello { name }).await.is_err() {
        return lost();
    }
    let mut welcomed = false;
    let mut silence_ms = HELLO_TIMEOUT_MS;
    let mut deadline = now_ms() + silence_ms;
    loop {
        let wait = deadline.saturating_sub(now_ms()).min(u32::MAX as u64) as u32;
        let event = {
            let mut timer = TimeoutFuture::new(wait).fuse();
            let mut frame = stream.next().fuse();
            let mut command = commands.next().fuse();
            select! {
                f = frame => Event::Frame(f),
                c = command => Event::Command(c),
                _ = timer => Event::Silence,
            }
        };
        match event {
            Event::Silence => {
                return Ended::Closed {
                    code: 1006,
                    reason: "no heartbeat from the server".into(),
                }
            }
            Event::Command(None) => return Ended::Shutdown,
            Event::Command(Some(Command::SignOut)) => {
                // gloo-net does not close a socket when it is dropped.
                if let Ok(ws) = sink.reunite(stream) {
                    let _ = ws.close(Some(close::NORMAL), Some("signed out"));
                }
                session.signing_out = true;
                return Ended::SigningOut;
            }
            Event::Command(Some(command)) => {
                if let Some(msg) = session.accept(command) {
                    if welcomed && send(&mut sink, &msg).await.is_err() {
                        return lost();
                    }
                }
            }
            Event::Frame(None) => return lost(),
            Event::Frame(Some(Err(WebSocketError::ConnectionClose(event)))) => {
                return Ended::Closed {
                    code: event.code,
                    reason: event.reason,
                }
            }
            // An `error` event; the `close` event follows it.
            Event::Frame(Some(Err(_))) => {}
            Event::Frame(Some(Ok(Message::Bytes(_)))) => {}
            Event::Frame(Some(Ok(Message::Text(text)))) => {
                deadline = now_ms() + silence_ms;
                // Frames of a newer protocol are skipped, not fatal.
                let Some(msg) = wire::decode(&text) else {
                    continue;
                };
                match &msg {
                    ServerMsg::Welcome {
                        user,
                        heartbeat_ms,
                        idle_timeout_ms,
                        ..
                    } => {
                        welcomed = true;
                        session.welcomed_now = true;
                        session.welcomed_once = true;
                        session.attempt = 0;
                        session.name = Some(user.clone());
                        session.idle_timeout_ms = *idle_timeout_ms;
                        if !session.account {
                            storage::set_name(Some(user));
                        }
                        silence_ms = 2 * heartbeat_ms + HEARTBEAT_MARGIN_MS;
                        deadline = now_ms() + silence_ms;
                        dispatch.dispatch(Action::Server(msg.clone()));
                        for frame in session.resume_frames() {
                            if send(&mut sink, &frame).await.is_err() {
                                return lost();
                            }
                        }
                        continue;
                    }
                    ServerMsg::Error { code, message, .. }
                        if !welcomed
                            && matches!(
                                code,
                                ErrorCode::NameTaken
                                    | ErrorCode::InvalidName
                                    | ErrorCode::Forbidden
                            ) =>
                    {
                        return Ended::NameRefused {
                            code: *code,
                            message: message.clone(),
                        };
                    }
                    ServerMsg::Ack {
                        client_id: Some(id),
                        ..
                    } => session.settle(id),
                    ServerMsg::Error {
                        code,
                        client_id,
                        room,
                        ..
                    } => {
                        if let Some(id) = client_id {
                            session.settle(id);
                        } else if let (
                            ErrorCode::InvalidRoom | ErrorCode::TooManyRooms,
                            Some(room),
                        ) = (code, room)
                        {
                            session.rooms.retain(|r| r != room);
                            storage::set_rooms(&session.rooms);
                        }
                    }
                    ServerMsg::Message { room, seq, .. } => session.saw(room, *seq),
                    ServerMsg::History {
                        room,
                        messages,
                        resync,
                        ..
                    } => {
                        if *resync {
                            session.last_seq.remove(room);
                        }
                        if let Some(last) = messages.iter().map(|m| m.seq).max() {
                            session.saw(room, last);
                        }
                    }
                    ServerMsg::Renamed { room: None, to, .. } => {
                        session.name = Some(to.clone());
                        storage::set_name(Some(to));
                    }
                    _ => {}
                }
                dispatch.dispatch(Action::Server(msg));
            }
        }
    }
}

fn lost() -> Ended {
    Ended::Closed {
        code: 1006,
        reason: "connection lost".into(),
    }
}

async fn send(sink: &mut Sink, msg: &ClientMsg) -> Result<(), WebSocketError> {
    sink.send(Message::Text(wire::encode(msg))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_full_jitter_and_is_capped() {
        assert_eq!(backoff_delay(1, 0.0), BACKOFF_FLOOR_MS);
        assert!(backoff_delay(1, 0.999) < 1_000);
        assert!(backoff_delay(3, 0.999) < 4_000);
        assert!(backoff_delay(3, 0.999) > 3_900);
        for attempt in [10, 30, u32::MAX] {
            assert!(backoff_delay(attempt, 0.999_999) <= BACKOFF_CAP_MS as u32);
        }
    }

    #[test]
    fn resume_rejoins_from_the_last_seq_then_resends_the_outbox() {
        let mut session = Session {
            url: "ws://test/ws".into(),
            name: Some("al".into()),
            account: false,
            signing_out: false,
            welcomed_now: false,
            rooms: vec!["lobby".into(), "rust".into()],
            last_seq: HashMap::new(),
            outbox: Vec::new(),
            welcomed_once: true,
            idle_timeout_ms: 60_000,
            attempt: 0,
        };
        session.saw("lobby", 7);
        session.saw("lobby", 5);
        session.saw("elsewhere", 9);
        session.queue(
            "c-1".into(),
            ClientMsg::Send {
                room: "lobby".into(),
                text: "hi".into(),
                client_id: Some("c-1".into()),
            },
        );
        let frames = session.resume_frames();
        assert_eq!(
            frames[0],
            ClientMsg::Join {
                room: "lobby".into(),
                since: Some(7)
            }
        );
        assert_eq!(
            frames[1],
            ClientMsg::Join {
                room: "rust".into(),
                since: None
            }
        );
        assert!(matches!(&frames[2], ClientMsg::Send { client_id: Some(id), .. } if id == "c-1"));
        assert_eq!(frames[3], ClientMsg::Rooms);
        session.settle("c-1");
        assert_eq!(session.resume_frames().len(), 3);
    }
}
