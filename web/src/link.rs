//! The connection task: transport and resume, nothing else.
//!
//! One long-lived task ([`run`]) owns the WebSocket to `/ws`. It says
//! `hello`, and after every `welcome` it writes the client core's
//! [`resume_frames`]: a `join` per room with `since` (the [`ResumeTracker`]),
//! `conversations`, and every send not yet acknowledged (the [`Pending`]
//! ledger, keyed by `client_id`). Each private conversation the answer
//! lists, or a `conversation` frame announces, is joined if the tracker
//! does not have it yet ([`ResumeTracker::joins_for`]; docs/protocol.md,
//! "Private conversations"). Each server frame is decoded once, shown to the tracker and
//! the ledger, and handed to the one reducer of UI state
//! ([`Action::Server`]); the task never decides what the UI shows. The UI
//! asks for things with [`Command`]s on an unbounded channel.
//!
//! The link is dead when the socket closes or errors, when the browser says
//! it went offline (the `offline` event), or when a probe goes unanswered:
//! the task sends `ping` while a send waits for its `ack` and after a quiet
//! spell, and gives the answer [`PROBE_TIMEOUT_MS`]. (A dead network often
//! leaves the socket open for a minute; the probe finds out in seconds.)
//! Then it waits the client core's [`Backoff`] (full jitter, capped) and
//! tries again, unless the close code says not to
//! ([`close::should_reconnect`]). The `online` event, or "Retry now", cuts
//! the wait short.
//!
//! Who the task connects as is settled first: `GET /api/session` says
//! whether the browser's session cookie is signed in (the upgrade then
//! carries it and `hello` names the account) and whether guests may chat.
//! The task ends a login itself on sign-out (closes the socket, then
//! `POST /api/logout`) and goes back to the sign-in screen, without
//! reconnecting, when the server ends it: close 4501 (signed out
//! elsewhere), 4502 (session expired), or an upgrade refused before
//! `welcome` that `GET /api/session` explains.

use std::cell::RefCell;
use std::rc::Rc;

use futures::channel::mpsc::UnboundedReceiver;
use futures::stream::SplitSink;
use futures::{select_biased, FutureExt, SinkExt, StreamExt};
use gloo_net::websocket::{futures::WebSocket, Message, WebSocketError};
use gloo_timers::future::TimeoutFuture;
use hubbub_client::{resume_frames, Backoff, Link, Pending, ResumeTracker};
use hubbub_protocol::names::is_conversation;
use hubbub_protocol::{close, ClientMsg, ErrorCode, ServerMsg};
use yew::prelude::*;

use crate::api;
use crate::fmt::now_ms;
use crate::notify;
use crate::state::{Action, ChatState, Ledger, Target};
use crate::storage;
use crate::wire;

/// The first reconnect waits up to this long; each further one doubles it.
const BACKOFF_BASE_MS: u64 = 1_000;
/// No reconnect waits longer than this.
const BACKOFF_CAP_MS: u64 = 15_000;
/// The shortest wait, so a flapping server is never hammered.
const BACKOFF_FLOOR_MS: u64 = 100;
/// How long to wait for `welcome` after opening the socket.
const HELLO_TIMEOUT_MS: u64 = 10_000;
/// A send unacknowledged this long makes the task probe the link.
const UNACKED_PROBE_MS: u64 = 2_000;
/// This long without a frame from the server makes the task probe the link.
const QUIET_PROBE_MS: u64 = 10_000;
/// A probe unanswered this long (no frame at all) means the link is dead.
pub const PROBE_TIMEOUT_MS: u64 = 4_000;
/// Where someone in no room at all lands on the page's first welcome.
const LANDING_ROOM: &str = "lobby";

/// What the UI asks of the connection task.
#[derive(Debug, Clone)]
pub enum Command {
    /// Connect as a guest with this name (from the first screen).
    SignIn(String),
    /// Connect as this account (the session cookie is set).
    SignInAccount(String),
    /// Close the socket, end the login, back to the sign-in screen.
    SignOut,
    Join(String),
    Leave(String),
    /// Open the private conversation with this user (its `conversation`
    /// answer is joined).
    Open(String),
    /// Say `text` to a room, with the uploads `files`; it waits in the
    /// ledger until acked.
    Send {
        target: Target,
        text: String,
        files: Vec<String>,
        /// The `seq` of the message of the room this one answers.
        reply_to: Option<u64>,
    },
    /// An `edit`, `delete` or `react` (with a `client_id` starting with
    /// [`crate::state::EVENT_ID`]): sent if the link is up, not kept.
    Event(ClientMsg),
    /// Forget a send the server refused.
    Dismiss(String),
    Rename(String),
    /// Ask for the room directory.
    ListRooms,
    /// Ask for messages of `room` older than `before`.
    LoadOlder {
        room: String,
        before: u64,
    },
    Typing(String),
    /// Search for `query`, from the cursor `before` (the next page).
    Search {
        query: String,
        before: Option<String>,
    },
    /// The user has seen `room` up to `seq`.
    Read {
        room: String,
        seq: u64,
    },
    /// Skip the rest of the backoff delay (or reconnect after a stop).
    RetryNow,
    /// The browser's `online` (true) or `offline` (false) event.
    Network(bool),
}

type Dispatch = UseReducerDispatcher<ChatState>;
type Sink = SplitSink<WebSocket, Message>;

/// What the task remembers across connections: who to be, where to resume.
pub struct LinkTask {
    url: String,
    /// The name to say `hello` with; `None` until the user picks one.
    name: Option<String>,
    /// Whether `name` is a signed-in account (not a guest name to remember).
    account: bool,
    /// The user asked to sign out; the login is not ended yet.
    signing_out: bool,
    /// Whether the current connection got its `welcome`.
    welcomed_now: bool,
    /// Whether any connection of this page was welcomed.
    welcomed_once: bool,
    idle_timeout_ms: u64,
    /// The server's clock less this browser's, from the last `welcome`.
    clock: i64,
    /// Conversations joined because a `conversation` frame announced them:
    /// the message that did it comes in the join's `history`
    /// ([`notify::announced`]).
    announced: Vec<String>,
    /// The rooms to be in and the last `seq` of each.
    tracker: ResumeTracker,
    /// Sends not acknowledged yet, resent after a reconnect: the one ledger,
    /// which the UI reads (never writes) through [`Ledger`].
    pending: Rc<RefCell<Pending>>,
    /// Counts the ledger's changes, so the UI knows to draw it again.
    pending_version: u64,
    backoff: Backoff,
    dispatch: Dispatch,
}

impl LinkTask {
    pub fn new(name: Option<String>, rooms: Vec<String>, dispatch: Dispatch) -> LinkTask {
        // Random per page, so two tabs' ids do not meet.
        let prefix = ((js_sys::Math::random() * u32::MAX as f64) as u32).to_string();
        LinkTask {
            url: socket_url(),
            name,
            account: false,
            signing_out: false,
            welcomed_now: false,
            welcomed_once: false,
            idle_timeout_ms: 60_000,
            clock: 0,
            announced: Vec::new(),
            tracker: ResumeTracker::with_rooms(rooms),
            pending: Rc::new(RefCell::new(Pending::new(prefix))),
            pending_version: 0,
            backoff: Backoff::new(BACKOFF_BASE_MS, BACKOFF_CAP_MS).with_floor(BACKOFF_FLOOR_MS),
            dispatch,
        }
    }

    fn link(&self, link: Link) {
        self.dispatch.dispatch(Action::Link(link));
    }

    /// Shows the UI the ledger as it is now.
    fn show_pending(&mut self) {
        self.pending_version += 1;
        self.dispatch.dispatch(Action::Pending(Ledger::new(
            self.pending.clone(),
            self.pending_version,
        )));
    }

    /// Remembers the rooms for the next visit (not the conversations: the
    /// server lists those after `welcome`).
    fn save_rooms(&self) {
        let rooms: Vec<String> = self
            .tracker
            .rooms()
            .filter(|r| !is_conversation(r))
            .map(str::to_string)
            .collect();
        storage::set_rooms(&rooms);
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
                let join = self.tracker.join(&room);
                self.save_rooms();
                Some(join)
            }
            Command::Leave(room) => {
                let leave = self.tracker.leave(&room);
                self.save_rooms();
                Some(leave)
            }
            Command::Open(with) => Some(ClientMsg::Open { with }),
            Command::Send {
                target,
                text,
                files,
                reply_to,
            } => {
                let sent = self
                    .pending
                    .borrow_mut()
                    .reply(&target.0, &text, files, reply_to);
                self.show_pending();
                sent.ok()
            }
            Command::Dismiss(client_id) => {
                self.pending.borrow_mut().dismiss(&client_id);
                self.show_pending();
                None
            }
            Command::Event(msg) => Some(msg),
            Command::Rename(name) => Some(ClientMsg::Rename { name }),
            Command::ListRooms => Some(ClientMsg::Rooms),
            Command::LoadOlder { room, before } => Some(ClientMsg::History {
                room,
                before: Some(before),
                limit: None,
            }),
            Command::Typing(room) => Some(ClientMsg::Typing { room }),
            Command::Read { room, seq } => Some(ClientMsg::Read { room, seq }),
            Command::Search { query, before } => Some(ClientMsg::Search {
                query,
                room: None,
                before,
                limit: None,
            }),
            Command::RetryNow | Command::Network(_) => None,
        }
    }

    /// Shows one server frame to the tracker and the ledger.
    fn observe(&mut self, msg: &ServerMsg) {
        let rooms = self.tracker.rooms().count();
        self.tracker.observe(msg);
        if self.tracker.rooms().count() != rooms {
            self.save_rooms();
        }
        let settled = self.pending.borrow_mut().settle(msg).is_some();
        if settled {
            self.show_pending();
        }
    }
}

/// `ws://host/ws` or `wss://host/ws`, matching the page.
fn socket_url() -> String {
    let location = web_sys::window()
        .expect("the app runs in a browser window")
        .location();
    let secure = location.protocol().is_ok_and(|p| p == "https:");
    let host = location.host().unwrap_or_else(|_| "127.0.0.1:8080".into());
    format!("{}://{host}/ws", if secure { "wss" } else { "ws" })
}

/// Why one connection ended.
enum Ended {
    /// The link closed or died; `code` is the close code (1006 when there
    /// was none).
    Closed { code: u16, reason: String },
    /// The server refused the name before welcoming us.
    NameRefused { code: ErrorCode, message: String },
    /// The user asked to sign out; the socket is closed.
    SigningOut,
    /// The UI dropped its end of the command channel.
    Shutdown,
}

/// The connection task: connect, serve, back off, repeat.
pub async fn run(mut task: LinkTask, mut commands: UnboundedReceiver<Command>) {
    // Signed in already (the cookie), a guest, or neither yet? If the server
    // cannot be reached, a remembered guest name tries anyway and backs off.
    let (user, guests) = match api::session().await {
        Ok(who) => (who.user, who.guests),
        Err(_) => (None, true),
    };
    if let Some(user) = &user {
        task.name = Some(user.clone());
        task.account = true;
    } else if !guests {
        task.name = None;
    }
    task.dispatch
        .dispatch(Action::SessionChecked { user, guests });

    let mut name_refused_since: Option<u64> = None;
    loop {
        end_login_if_asked(&mut task).await;
        // Nothing to connect as until the user signs in or picks a name.
        while task.name.is_none() {
            match commands.next().await {
                Some(command) => {
                    task.accept(command);
                    end_login_if_asked(&mut task).await;
                }
                None => return,
            }
        }
        task.link(Link::Connecting {
            attempt: task.backoff.attempt(),
        });
        match connect(&mut task, &mut commands).await {
            Ended::Shutdown => return,
            Ended::SigningOut => continue,
            Ended::Closed { code, reason } => {
                name_refused_since = None;
                if let Some(why) = login_ended(&task, code).await {
                    match why {
                        LoginEnd::SignedOut(why) => {
                            forget_user(&mut task);
                            task.dispatch.dispatch(Action::SignedOut(Some(why)));
                        }
                        LoginEnd::GuestsOff(why) => {
                            forget_user(&mut task);
                            task.dispatch.dispatch(Action::GuestsRefused(why));
                        }
                    }
                    continue;
                }
                if !close::should_reconnect(code) {
                    let why = if reason.is_empty() {
                        "the server closed the connection".into()
                    } else {
                        reason
                    };
                    task.link(Link::Ended { why });
                    if !wait_for_retry(&mut task, &mut commands).await {
                        return;
                    }
                    task.backoff.reset();
                    continue;
                }
                let delay_ms = task.backoff.next_delay_ms(js_sys::Math::random());
                let waiting = Link::Reconnecting {
                    attempt: task.backoff.attempt(),
                    why: reason,
                    retry_at_ms: now_ms() + delay_ms,
                };
                if !wait_offline(delay_ms, waiting, &mut task, &mut commands).await {
                    return;
                }
            }
            Ended::NameRefused {
                code: ErrorCode::Forbidden,
                message,
            } => {
                // Guests are off on this server: sign in instead.
                forget_user(&mut task);
                task.dispatch
                    .dispatch(Action::GuestsRefused(api::sentence(&message)));
            }
            Ended::NameRefused { code, message } => {
                // After a dropped link the server may still count our old
                // connection as online (until its idle timeout), holding the
                // name: keep retrying for that long before asking the user.
                let since = *name_refused_since.get_or_insert_with(now_ms);
                let still_ours = task.welcomed_once
                    && code == ErrorCode::NameTaken
                    && now_ms() - since < task.idle_timeout_ms + PROBE_TIMEOUT_MS;
                if !still_ours {
                    name_refused_since = None;
                    task.name = None;
                    task.welcomed_once = false;
                    task.backoff.reset();
                    storage::set_name(None);
                    task.dispatch
                        .dispatch(Action::NameRejected(api::sentence(&message)));
                    continue;
                }
                let delay_ms = task.backoff.next_delay_ms(js_sys::Math::random());
                let waiting = Link::Reconnecting {
                    attempt: task.backoff.attempt(),
                    why: "name still held".into(),
                    retry_at_ms: now_ms() + delay_ms,
                };
                if !wait_offline(delay_ms, waiting, &mut task, &mut commands).await {
                    return;
                }
            }
        }
    }
}

/// Why the server ended this user's login rather than just the link.
enum LoginEnd {
    /// Back to the sign-in screen, with this explanation.
    SignedOut(String),
    /// The server does not take guests (any more).
    GuestsOff(String),
}

/// Whether a connection that ended with `code` ended the login: closed with
/// 4501 (signed out elsewhere) or 4502 (session expired), or refused at the
/// upgrade (the socket errors before it opens, so the page only sees 1006)
/// for a reason `GET /api/session` confirms. A server that is down, or
/// refuses for another reason (429), is retried with backoff as usual.
async fn login_ended(task: &LinkTask, code: u16) -> Option<LoginEnd> {
    if code == close::LOGGED_OUT {
        return Some(LoginEnd::SignedOut(
            "You were signed out, in this browser or elsewhere. Sign in again to chat.".into(),
        ));
    }
    if code == close::SESSION_EXPIRED {
        return Some(LoginEnd::SignedOut(
            "Your session expired. Sign in again to chat.".into(),
        ));
    }
    if code != 1006 || task.welcomed_now {
        return None;
    }
    match api::session().await {
        Ok(who) if task.account && who.user.is_none() => Some(LoginEnd::SignedOut(
            "Your session has ended. Sign in again to chat.".into(),
        )),
        Ok(who) if !task.account && !who.guests => Some(LoginEnd::GuestsOff(
            "This server no longer takes guests. Sign in or create an account.".into(),
        )),
        _ => None,
    }
}

/// Nothing to connect as until the user signs in again.
fn forget_user(task: &mut LinkTask) {
    if !task.account {
        storage::set_name(None);
    }
    task.name = None;
    task.account = false;
    task.welcomed_once = false;
    task.backoff.reset();
}

/// If the user asked to sign out: ends the login (`POST /api/logout`, which
/// also closes this login's sockets in other tabs) and shows the sign-in
/// screen. The socket of this page is already closed.
async fn end_login_if_asked(task: &mut LinkTask) {
    if !std::mem::take(&mut task.signing_out) {
        return;
    }
    if task.account {
        // If the server is unreachable the cookie stays, but this page
        // still signs out; the next visit asks the server again.
        let _ = api::logout().await;
    }
    forget_user(task);
    task.dispatch.dispatch(Action::SignedOut(None));
}

/// Waits `delay_ms` while recording commands; "Retry now" and the browser's
/// `online` event cut it short. Returns `false` if the UI went away.
///
/// Every second of the wait it shows `waiting` again, so the top bar's
/// "retrying in N s" counts down (the UI needs no timer of its own).
async fn wait_offline(
    delay_ms: u64,
    waiting: Link,
    task: &mut LinkTask,
    commands: &mut UnboundedReceiver<Command>,
) -> bool {
    let until = now_ms() + delay_ms;
    task.link(waiting.clone());
    loop {
        let left = until.saturating_sub(now_ms());
        if left == 0 {
            return true;
        }
        let mut tick = TimeoutFuture::new(left.min(1_000) as u32).fuse();
        // `select_biased!` (polls in the order written) rather than
        // `select!` (a random order, and a random number generator in the
        // bundle): a tick and a command ready together both run, one
        // turn of the loop apart.
        let command = select_biased! {
            _ = tick => {
                task.link(waiting.clone());
                continue;
            }
            command = commands.next() => command,
        };
        match command {
            None => return false,
            Some(Command::RetryNow | Command::Network(true)) => return true,
            Some(command) => {
                task.accept(command);
                if task.signing_out {
                    return true;
                }
            }
        }
    }
}

/// Waits for the user to ask for a reconnect. Returns `false` if the UI went
/// away.
async fn wait_for_retry(task: &mut LinkTask, commands: &mut UnboundedReceiver<Command>) -> bool {
    while let Some(command) = commands.next().await {
        match command {
            Command::RetryNow
            | Command::SignIn(_)
            | Command::SignInAccount(_)
            | Command::SignOut => {
                task.accept(command);
                return true;
            }
            command => {
                task.accept(command);
            }
        }
    }
    false
}

/// What woke the connection loop.
enum Event {
    Frame(Option<Result<Message, WebSocketError>>),
    Command(Option<Command>),
    Timer,
}

/// When to look at the link again, and what to conclude then.
struct Liveness {
    /// The last frame from the server.
    heard_at: u64,
    /// A `ping` sent and not answered (by any frame) yet: when.
    probe_at: Option<u64>,
    /// Since when a send has waited for its `ack` (`None`: none waits).
    unacked_since: Option<u64>,
    /// Silence that ends the link even without a probe (before `welcome`:
    /// the hello timeout; then two heartbeats and a margin).
    silence_ms: u64,
    next_probe_id: u64,
}

impl Liveness {
    fn new(now: u64) -> Liveness {
        Liveness {
            heard_at: now,
            probe_at: None,
            unacked_since: None,
            silence_ms: HELLO_TIMEOUT_MS,
            next_probe_id: 1,
        }
    }

    /// When the link is to be looked at next.
    fn next_check(&self, welcomed: bool) -> u64 {
        let mut at = self.heard_at + self.silence_ms;
        if let Some(probe) = self.probe_at {
            at = at.min(probe + PROBE_TIMEOUT_MS);
        } else if welcomed {
            at = at.min(self.heard_at + QUIET_PROBE_MS);
            if let Some(since) = self.unacked_since {
                at = at.min(since + UNACKED_PROBE_MS);
            }
        }
        at
    }

    /// What to do at `now`: `Err` if the link is dead, `Ok(Some(ping))` to
    /// probe it.
    fn check(&mut self, now: u64, welcomed: bool) -> Result<Option<ClientMsg>, &'static str> {
        if now >= self.heard_at + self.silence_ms {
            return Err("no heartbeat");
        }
        if let Some(probe) = self.probe_at {
            if now >= probe + PROBE_TIMEOUT_MS {
                return Err("probe unanswered");
            }
            return Ok(None);
        }
        let quiet = now >= self.heard_at + QUIET_PROBE_MS;
        let unacked = self
            .unacked_since
            .is_some_and(|since| now >= since + UNACKED_PROBE_MS);
        if welcomed && (quiet || unacked) {
            self.probe_at = Some(now);
            let id = self.next_probe_id;
            self.next_probe_id += 1;
            return Ok(Some(ClientMsg::Ping { id: Some(id) }));
        }
        Ok(None)
    }

    /// A frame arrived: the link is alive. A send still unacknowledged is
    /// given time again from now (no probe while frames flow).
    fn heard(&mut self, now: u64) {
        self.heard_at = now;
        self.probe_at = None;
        if self.unacked_since.is_some() {
            self.unacked_since = Some(now);
        }
    }
}

/// One connection, from opening the socket to its end.
async fn connect(task: &mut LinkTask, commands: &mut UnboundedReceiver<Command>) -> Ended {
    let ws = match WebSocket::open(&task.url) {
        Ok(ws) => ws,
        Err(err) => {
            return Ended::Closed {
                code: 1006,
                reason: err.to_string(),
            }
        }
    };
    let (mut sink, mut stream) = ws.split();
    task.welcomed_now = false;
    let name = task.name.clone().unwrap_or_default();
    // The send waits for the socket to open, which a server that accepted
    // the TCP connection but never answers would make last forever.
    let hello = ClientMsg::Hello { name };
    let hello = {
        let sending = send(&mut sink, &hello).fuse();
        futures::pin_mut!(sending);
        let mut timer = TimeoutFuture::new(HELLO_TIMEOUT_MS as u32).fuse();
        // (A `hello` sent as the time runs out counts as sent.)
        select_biased! {
            sent = sending => sent.is_ok(),
            _ = timer => false,
        }
    };
    if !hello {
        return close_dead(sink, stream, "no answer");
    }
    let mut welcomed = false;
    let mut live = Liveness::new(now_ms());
    loop {
        let wait = live.next_check(welcomed).saturating_sub(now_ms());
        let event = {
            let mut timer = TimeoutFuture::new(wait.min(u32::MAX as u64) as u32).fuse();
            let mut frame = stream.next().fuse();
            let mut command = commands.next().fuse();
            // In the order written (`select_biased!`, see above): a frame
            // ready first, then a command, then the timer. Frames come in
            // through the event loop, so a turn drains only what arrived
            // since the last one and a command waits at most that long;
            // the timer is looked at once neither is ready (a frame heard
            // is what the liveness check wants to know anyway).
            select_biased! {
                f = frame => Event::Frame(f),
                c = command => Event::Command(c),
                _ = timer => Event::Timer,
            }
        };
        // What this event has to write, in order: written after the
        // `match`, from one place (each `.await` is code of its own in the
        // bundle).
        let mut out = Vec::new();
        match event {
            Event::Timer => match live.check(now_ms(), welcomed) {
                Err(why) => return close_dead(sink, stream, why),
                Ok(Some(ping)) => out.push(ping),
                Ok(None) => {}
            },
            Event::Command(None) => return Ended::Shutdown,
            Event::Command(Some(Command::SignOut)) => {
                // gloo-net does not close a socket when it is dropped.
                if let Ok(ws) = sink.reunite(stream) {
                    let _ = ws.close(Some(close::NORMAL), Some("signed out"));
                }
                task.signing_out = true;
                return Ended::SigningOut;
            }
            Event::Command(Some(Command::Network(false))) => {
                return close_dead(sink, stream, "offline");
            }
            Event::Command(Some(command)) => {
                let sending = matches!(command, Command::Send { .. });
                if let Some(msg) = task.accept(command) {
                    if welcomed {
                        if sending {
                            live.unacked_since.get_or_insert_with(now_ms);
                        }
                        out.push(msg);
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
                live.heard(now_ms());
                // Frames of a newer protocol are skipped, not fatal.
                let Some(msg) = wire::decode(&text) else {
                    continue;
                };
                // Before `welcome`, a refused `hello` ends this connection.
                if let ServerMsg::Error { code, message, .. } = &msg {
                    if !welcomed
                        && matches!(
                            code,
                            ErrorCode::NameTaken | ErrorCode::InvalidName | ErrorCode::Forbidden
                        )
                    {
                        return Ended::NameRefused {
                            code: *code,
                            message: message.clone(),
                        };
                    }
                }
                task.observe(&msg);
                // A conversation listed or announced and not joined yet.
                let joins = task.tracker.joins_for(&msg);
                if let (ServerMsg::Conversation { room, .. }, false) = (&msg, joins.is_empty()) {
                    task.announced.push(room.clone());
                }
                out.extend(joins);
                if task.pending.borrow().resend().next().is_none() {
                    live.unacked_since = None;
                }
                let welcome = welcome_of(&msg);
                if let Some(name) = own_name(&msg) {
                    task.name = Some(name.to_string());
                    if !task.account {
                        storage::set_name(Some(name));
                    }
                }
                if let ServerMsg::Welcome { server_time, .. } = &msg {
                    task.clock = *server_time as i64 - now_ms() as i64;
                }
                let news = match &msg {
                    ServerMsg::History {
                        room,
                        messages,
                        before: None,
                        ..
                    } if task.announced.contains(room) => {
                        task.announced.retain(|r| r != room);
                        let now = (now_ms() as i64 + task.clock).max(0) as u64;
                        notify::announced(room, messages, now)
                    }
                    _ => None,
                };
                if let Some(me) = &task.name {
                    notify::consider(news.as_ref().unwrap_or(&msg), me, &task.dispatch);
                }
                task.dispatch.dispatch(Action::Server(msg));
                if let Some((heartbeat_ms, idle_timeout_ms)) = welcome {
                    welcomed = true;
                    task.welcomed_now = true;
                    task.backoff.reset();
                    task.idle_timeout_ms = idle_timeout_ms;
                    live.silence_ms = 2 * heartbeat_ms + PROBE_TIMEOUT_MS;
                    task.link(Link::Connected);
                    // A newcomer (or someone who left every room) starts in
                    // the lobby rather than on an empty page.
                    if !task.welcomed_once && task.tracker.rooms().next().is_none() {
                        task.tracker.join(LANDING_ROOM);
                        task.save_rooms();
                        task.dispatch
                            .dispatch(Action::Open(Target(LANDING_ROOM.into())));
                    }
                    task.welcomed_once = true;
                    out = resume_frames(&task.tracker, &task.pending.borrow());
                    if task.pending.borrow().resend().next().is_some() {
                        live.unacked_since = Some(now_ms());
                    }
                    out.push(ClientMsg::Rooms);
                }
            }
        }
        for frame in &out {
            if send(&mut sink, frame).await.is_err() {
                return lost();
            }
        }
    }
}

/// The heartbeat and idle timeout of a `welcome`.
fn welcome_of(msg: &ServerMsg) -> Option<(u64, u64)> {
    if let ServerMsg::Welcome {
        heartbeat_ms,
        idle_timeout_ms,
        ..
    } = msg
    {
        return Some((*heartbeat_ms, *idle_timeout_ms));
    }
    None
}

/// The name this connection now has, if `msg` says (welcome, own rename):
/// the next `hello` asks for it.
fn own_name(msg: &ServerMsg) -> Option<&str> {
    if let ServerMsg::Welcome { user, .. }
    | ServerMsg::Renamed {
        room: None,
        to: user,
        ..
    } = msg
    {
        return Some(user);
    }
    None
}

/// Ends a connection found dead: closes the socket (so a late frame cannot
/// arrive on it) and reports why.
fn close_dead(sink: Sink, stream: futures::stream::SplitStream<WebSocket>, why: &str) -> Ended {
    if let Ok(ws) = sink.reunite(stream) {
        let _ = ws.close(Some(close::NORMAL), Some("link dead"));
    }
    Ended::Closed {
        code: 1006,
        reason: why.into(),
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
    fn an_unacked_send_is_probed_and_an_unanswered_probe_ends_the_link() {
        let mut live = Liveness::new(0);
        live.silence_ms = 54_000;
        // Quiet but not long: nothing to do.
        assert_eq!(live.check(1_000, true), Ok(None));
        live.unacked_since = Some(1_000);
        assert_eq!(live.next_check(true), 1_000 + UNACKED_PROBE_MS);
        assert!(matches!(
            live.check(1_000 + UNACKED_PROBE_MS, true),
            Ok(Some(ClientMsg::Ping { .. }))
        ));
        // The probe waits for any frame; none comes.
        assert_eq!(
            live.next_check(true),
            1_000 + UNACKED_PROBE_MS + PROBE_TIMEOUT_MS
        );
        assert!(live
            .check(1_000 + UNACKED_PROBE_MS + PROBE_TIMEOUT_MS, true)
            .is_err());
    }

    #[test]
    fn a_quiet_spell_is_probed_and_an_answer_keeps_the_link() {
        let mut live = Liveness::new(0);
        live.silence_ms = 54_000;
        assert_eq!(live.next_check(true), QUIET_PROBE_MS);
        assert!(matches!(
            live.check(QUIET_PROBE_MS, true),
            Ok(Some(ClientMsg::Ping { .. }))
        ));
        live.heard(QUIET_PROBE_MS + 50);
        assert_eq!(live.check(QUIET_PROBE_MS + 100, true), Ok(None));
        assert_eq!(live.next_check(true), 2 * QUIET_PROBE_MS + 50);
        // Before `welcome` nothing is probed; the hello timeout rules.
        let mut fresh = Liveness::new(0);
        assert_eq!(fresh.next_check(false), HELLO_TIMEOUT_MS);
        assert_eq!(fresh.check(QUIET_PROBE_MS - 1, false), Ok(None));
    }
}
