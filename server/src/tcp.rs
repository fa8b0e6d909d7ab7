//! The raw TCP gateway (`--tcp-listen`): plain line-based chat for `nc` and
//! telnet, on the same hub as the WebSocket clients.
//!
//! A TCP user is a [`Session`] like any other: the same names, rooms,
//! presence, history, limits, rate limit and idle timeout. This module only
//! translates, and the translation is the client core's (`hubbub-client`),
//! shared with the terminal client: each input line is read by
//! [`command::parse`] and becomes one [`ClientMsg`] (a slash command, or a
//! `send` to the user's *current room*), and each [`ServerMsg`] frame the
//! hub queues on the connection's outbox is rendered by [`Renderer`] as
//! plain text lines with a UTC timestamp (`HH:MM:SS`). The lines the gateway says itself
//! (prompts, help, usage) travel through the same outbox, so everything
//! reaches the user in order and the outbox's byte bound covers it all. A
//! queued frame that starts with `{` is a JSON [`ServerMsg`]; anything else
//! is one of the gateway's own lines, already rendered.
//!
//! Input: lines end with LF (CRLF is accepted). A line longer than
//! `max_frame_bytes` is answered with an error line and discarded up to its
//! end; the connection stays open. Invalid UTF-8 becomes U+FFFD; control
//! characters other than tab are stripped. Every non-empty line counts as
//! one request against the rate limit, like a WebSocket frame.
//!
//! Output: control characters in what others wrote are replaced (a line
//! break continues on an indented line; see [`Line::to_terminal`]), so
//! nobody can send terminal escape sequences to a bare terminal or fake a
//! line from someone else.
//!
//! Messages: each room message's line shows its handle (`[lobby] #42 <alice>
//! hi`), which `/reply`, `/edit`, `/delete`, `/react` and `/unreact` take;
//! without one they act on the last message shown in the current room (the
//! user's own for `/edit` and `/delete`, else someone else's). What was
//! shown is the write side's to know: it keeps a [`Recent`], shared with
//! the line side under a mutex held only to read or update it. Edits,
//! deletions and reactions are notices (`* alice edited #42: hi all`), a
//! reply shows its quote, and a message that mentions the user is marked
//! with a leading `@` (the client core's [`Renderer`]).
//!
//! Private conversations (docs/protocol.md, "Private conversations"):
//! `/msg USER TEXT` says `TEXT` in the user's conversation with `USER`, the
//! room `@alice+bob`, joining it first if need be (a refused join says why
//! once, and the text is not sent); `/msg USER` alone makes it the current
//! room. Its lines show the other person (`[@bob] #3 <bob> psst`). Once the
//! name is taken, the gateway asks `conversations` and joins each one; the
//! write side, which sees every frame, finds the conversations to join with
//! the client core's [`ResumeTracker::joins_for`] (from that answer, and
//! from each `conversation` frame: someone wrote in one this connection
//! has not joined) and hands the `join`s to the line side over a channel,
//! which sends them through the session as it does typed requests. So a
//! conversation someone else starts appears live, without the user doing
//! anything. Those joins do not change the current room.
//!
//! Files: a message's attachments are lines of their own with an absolute
//! download link ([`http_base`]: the HTTP listener's scheme and port at the
//! address this user reached the gateway on), carrying the user's guest
//! upload token as `?token=` (the renderer takes it from the `welcome`),
//! so `curl` or a browser can fetch it. A gateway user cannot upload (it
//! has no files to read): `/upload` says to use `hubbub-chat` or the web app.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use hubbub_client::command::{
    self, clean_line, conversation_with, help_lines, Command, CommandError,
};
use hubbub_client::{utc_clock, Line, Recent, Renderer, ResumeTracker};
use hubbub_protocol::names::{conversation_peer, is_conversation, name_key};
use hubbub_protocol::{close, ClientMsg, ServerMsg};
use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tungstenite::Utf8Bytes;

use crate::config::Config;
use crate::feed::{Feed, Fill};
use crate::hub::Hub;
use crate::outbox::{Batch, Close};
use crate::registry::Conn;
use crate::room::{Sink, Wire};
use crate::session::Session;
use crate::timers::now_ms;

/// The room every TCP user joins after picking a name.
pub const LOBBY: &str = "lobby";

/// How long the last line and the socket shutdown may take, and how long we
/// keep reading (and discarding) afterwards so that closing does not reset
/// the connection under a line the peer has not read yet.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Pause after a failed `accept` (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Read buffer per connection, in bytes. Longer lines are fine: they are
/// assembled in a separate buffer up to the line limit.
const READ_BUFFER: usize = 2 * 1024;

/// Accepts gateway connections until the hub begins shutting down; each one
/// is served on a task the hub's shutdown waits for.
pub async fn accept_loop(hub: Arc<Hub>, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            _ = hub.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((mut socket, peer)) => {
                tracing::debug!(%peer, "tcp gateway connection");
                // The same per-address cap as WebSocket connections; the
                // slot lives as long as the connection's task.
                let Some(slot) = hub.registry.admit_ip(peer.ip()) else {
                    tracing::info!(%peer, "tcp gateway: too many connections from one address");
                    hub.tasks.spawn(async move {
                        let _ = socket
                            .write_all(b"too many connections from your address\r\n")
                            .await;
                    });
                    continue;
                };
                let _ = socket.set_nodelay(true);
                let base = socket
                    .local_addr()
                    .ok()
                    .and_then(|local| http_base(&hub.config, local));
                let task_hub = Arc::clone(&hub);
                hub.tasks.spawn(async move {
                    serve(task_hub, socket, base).await;
                    drop(slot);
                });
            }
            Err(err) => {
                tracing::warn!(error = %err, "tcp gateway accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// The HTTP origin a gateway user reached at `local` (the gateway socket's
/// own address) downloads files from: the HTTP listener's scheme and port,
/// at its address if it listens on one, else at the address the user
/// reached. `None` when the listener's port is not known (configured as 0).
pub fn http_base(config: &Config, local: SocketAddr) -> Option<String> {
    let port = config.listen.port();
    if port == 0 {
        return None;
    }
    let scheme = if config.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    let ip = if config.listen.ip().is_unspecified() {
        local.ip().to_canonical()
    } else {
        config.listen.ip()
    };
    Some(format!("{scheme}://{}", SocketAddr::new(ip, port)))
}

/// Serves one line-based connection until it closes; file links start with
/// `http_base` (see [`http_base`]). Generic over the stream so it can be
/// driven without a socket.
pub async fn serve<S>(hub: Arc<Hub>, stream: S, http_base: Option<String>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let conn = hub.connect();
    let (reader, writer) = tokio::io::split(stream);
    let mut lines = LineReader::new(reader, hub.config.max_frame_bytes);
    let done = CancellationToken::new();
    let mut renderer = Renderer::new();
    if let Some(base) = http_base {
        renderer.set_http_base(base);
    }
    let recent = Arc::new(Mutex::new(Recent::new()));
    // At most one `join` per conversation the tracker learns of: bounded by
    // what the server announces, which stops once the room is joined.
    let (joins_tx, mut joins) = mpsc::unbounded_channel();
    let write_task = tokio::spawn(write_loop(
        writer,
        Arc::clone(&hub),
        Arc::clone(&conn),
        Shown {
            renderer,
            recent: Arc::clone(&recent),
            tracker: ResumeTracker::new(),
            joins: joins_tx,
        },
        done.clone(),
    ));
    let mut gateway = Gateway {
        session: Session::new(Arc::clone(&hub), Arc::clone(&conn)),
        conn: Arc::clone(&conn),
        current: None,
        recent,
    };
    gateway.notice(None, "welcome to hubbub");
    gateway.prompt();

    loop {
        let line = tokio::select! {
            _ = done.cancelled() => break,
            Some(join) = joins.recv() => {
                gateway.join_conversation(join).await;
                if conn.outbox.is_closing() {
                    break;
                }
                continue;
            }
            line = lines.next() => line,
        };
        match line {
            Ok(Input::Text(text)) => {
                conn.touch(hub.clock.stamp());
                gateway.on_line(&text).await;
            }
            Ok(Input::TooLong) => {
                conn.touch(hub.clock.stamp());
                gateway.too_long(lines.max).await;
            }
            Ok(Input::Eof) | Err(_) => break,
        }
        if conn.outbox.is_closing() {
            break;
        }
    }

    gateway.session.end();
    conn.outbox.close_after_drain(Close {
        code: close::NORMAL,
        reason: "bye",
    });
    let _ = write_task.await;
    let _ = tokio::time::timeout(CLOSE_GRACE, lines.discard_to_end()).await;
}

/// One connection's translation from lines to requests.
struct Gateway {
    session: Session,
    conn: Arc<Conn>,
    /// Where a line that is not a command is said.
    current: Option<String>,
    /// The latest messages shown, per room: what a message command without
    /// `#SEQ` acts on. Updated by the write side as it renders.
    recent: Arc<Mutex<Recent>>,
}

impl Gateway {
    /// Queues one of the gateway's own lines, rendered now.
    fn say(&self, line: Line) {
        let text = line.to_terminal(&utc_clock(line.at_ms));
        self.conn.outbox.push(&Utf8Bytes::from(text));
    }

    /// Queues a `* ...` line of the gateway's own.
    fn notice(&self, room: Option<&str>, text: impl Into<String>) {
        self.say(Line::notice(now_ms(), room, text));
    }

    /// Queues a `! ...` line of the gateway's own.
    fn error(&self, text: impl Into<String>) {
        self.say(Line::error(now_ms(), None, text));
    }

    fn prompt(&self) {
        self.notice(None, "what is your name?");
    }

    /// Counts a line the gateway answers itself against the rate limit (as
    /// a `ping`, whose `pong` renders nothing); false if it closed the connection.
    async fn count(&mut self) -> bool {
        self.session.on_request(ClientMsg::Ping { id: None }).await;
        !self.conn.outbox.is_closing()
    }

    async fn too_long(&mut self, max: usize) {
        if self.count().await {
            self.error(format!("line longer than {max} bytes: dropped"));
        }
    }

    async fn on_line(&mut self, line: &str) {
        if line.trim().is_empty() {
            return;
        }
        if self.session.name().is_none() {
            return self.on_name(line.trim()).await;
        }
        self.keep_current();
        let command = match command::parse(line) {
            None => return,
            Some(Ok(command)) => command,
            Some(Err(mistake)) => return self.mistake(mistake).await,
        };
        match command {
            Command::Join(room) => self.join(room).await,
            Command::Leave(room) => match room.or_else(|| self.current.clone()) {
                Some(room) => self.leave(room).await,
                None => self.mistake(CommandError::Usage("/leave ROOM")).await,
            },
            Command::Help => self.help().await,
            Command::Upload { .. } => self.mistake(CommandError::NeedsLocalFiles).await,
            Command::Msg { to, text } => self.msg(&to, text).await,
            command @ (Command::Say(_)
            | Command::Who(_)
            | Command::Rooms
            | Command::Reply { .. }
            | Command::Edit { .. }
            | Command::Delete(_)
            | Command::React { .. }
            | Command::Search { .. }
            | Command::Rename(_)
            | Command::Quit) => {
                let request = command.request(
                    self.session.name(),
                    self.current.as_deref(),
                    &self.recent.lock(),
                );
                match request {
                    Ok(Some(request)) => self.session.on_request(request).await,
                    Ok(None) => {}
                    Err(mistake) => self.mistake(mistake).await,
                }
            }
        }
    }

    /// Before a name is taken, every line is a try at one.
    async fn on_name(&mut self, name: &str) {
        match name {
            "/quit" | "/exit" => return self.session.on_request(ClientMsg::Quit).await,
            "/help" => return self.help().await,
            _ => {}
        }
        self.session
            .on_request(ClientMsg::Hello {
                name: name.to_string(),
            })
            .await;
        if self.session.name().is_some() {
            self.join(LOBBY.to_string()).await;
            // The answer's conversations are joined as the write side
            // renders it (`join_conversation`).
            self.session.on_request(ClientMsg::Conversations).await;
        } else if !self.conn.outbox.is_closing() {
            self.prompt();
        }
    }

    async fn help(&mut self) {
        if self.count().await {
            self.notice(None, "commands:");
            for line in help_lines() {
                self.conn.outbox.push(&Utf8Bytes::from(format!("  {line}")));
            }
        }
    }

    /// A line that asks nothing of the server: says what is wrong with it.
    async fn mistake(&mut self, mistake: CommandError) {
        if self.count().await {
            self.error(mistake.to_string());
        }
    }

    async fn join(&mut self, room: String) {
        self.session
            .on_request(ClientMsg::Join {
                room: room.clone(),
                since: None,
            })
            .await;
        if self.session.in_room(&room) {
            self.talking_in(room);
        }
    }

    /// Makes `room` the current room and says so.
    fn talking_in(&mut self, room: String) {
        let mut line = Line::notice(now_ms(), Some(&room), "");
        line.with = self.with_of(&room);
        let shown = match &line.with {
            Some(with) => format!("@{with}"),
            None => room.clone(),
        };
        line.text = format!("you are talking in {shown} now");
        self.say(line);
        self.current = Some(room);
    }

    /// The other person of `room`, if it is one of this user's
    /// conversations (as the room spells them).
    fn with_of(&self, room: &str) -> Option<String> {
        let me = name_key(self.session.name()?);
        conversation_peer(room, &me).map(String::from)
    }

    /// `/msg USER [TEXT]`: the conversation with USER, joined first if need
    /// be (a refused join has said why: the text is not sent), then TEXT
    /// said in it, or, without TEXT, made the current room.
    async fn msg(&mut self, to: &str, text: Option<String>) {
        let Some(me) = self.session.name() else {
            return self.mistake(CommandError::NoName).await;
        };
        let room = match conversation_with(me, to) {
            Ok(room) => room,
            Err(mistake) => return self.mistake(mistake).await,
        };
        if !self.session.in_room(&room) {
            self.session
                .on_request(ClientMsg::Join {
                    room: room.clone(),
                    since: None,
                })
                .await;
            if !self.session.in_room(&room) {
                return;
            }
        }
        match text {
            Some(text) => {
                let send = ClientMsg::Send {
                    room,
                    text,
                    client_id: None,
                    attachments: Vec::new(),
                    reply_to: None,
                };
                self.session.on_request(send).await;
            }
            None => self.talking_in(room),
        }
    }

    /// A `join` of a conversation the write side learned of: sent unless
    /// this connection is in it already (the user joined it meanwhile).
    async fn join_conversation(&mut self, join: ClientMsg) {
        if let ClientMsg::Join { room, .. } = &join {
            if !self.session.in_room(room) {
                self.session.on_request(join).await;
            }
        }
    }

    async fn leave(&mut self, room: String) {
        self.session
            .on_request(ClientMsg::Leave { room: room.clone() })
            .await;
        self.keep_current();
    }

    /// If this connection is no longer in the current room (the user left
    /// it, or the server dropped it: a guest's conversation ends with its
    /// name), another joined room becomes current.
    fn keep_current(&mut self) {
        let Some(current) = &self.current else { return };
        if self.session.in_room(current) {
            return;
        }
        // A room before a conversation, then by name.
        let next = self
            .session
            .rooms()
            // (`rooms` may still hold a conversation that ended.)
            .filter(|room| self.session.in_room(room))
            .min_by_key(|room| (is_conversation(room), *room))
            .map(String::from);
        match next {
            Some(room) => self.talking_in(room),
            None => {
                self.current = None;
                self.notice(None, "you are in no room now: /join ROOM");
            }
        }
    }
}

/// What [`LineReader::next`] read.
#[derive(Debug, PartialEq)]
enum Input {
    /// A line without its end, cleaned: see [`clean_input`].
    Text(String),
    /// A line longer than the limit; the rest of it will be skipped.
    TooLong,
    /// The peer closed its side.
    Eof,
}

/// Reads lines of at most `max` bytes.
struct LineReader<R> {
    inner: BufReader<R>,
    buf: Vec<u8>,
    max: usize,
    /// Skipping the rest of an over-long line.
    discarding: bool,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    fn new(reader: R, max: usize) -> Self {
        LineReader {
            inner: BufReader::with_capacity(READ_BUFFER, reader),
            buf: Vec::new(),
            max,
            discarding: false,
        }
    }

    /// The next line. Cancel safe: what a cancelled call read of a line
    /// stays in the buffer for the next (every wait is a `fill_buf`, and
    /// what it gives is taken in before the next wait), so it can race the
    /// conversation joins the write side hands over.
    async fn next(&mut self) -> io::Result<Input> {
        while self.discarding {
            let chunk = self.inner.fill_buf().await?;
            if chunk.is_empty() {
                return Ok(Input::Eof);
            }
            match chunk.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    self.inner.consume(end + 1);
                    self.discarding = false;
                }
                None => {
                    let n = chunk.len();
                    self.inner.consume(n);
                }
            }
        }
        loop {
            let chunk = self.inner.fill_buf().await?;
            if chunk.is_empty() {
                if self.buf.is_empty() {
                    return Ok(Input::Eof);
                }
                // A last line without its newline, before the end.
                return Ok(self.take_line());
            }
            // At most `max` bytes and the newline; `buf` holds at most `max`.
            let room = self.max + 1 - self.buf.len();
            let window = &chunk[..chunk.len().min(room)];
            if let Some(end) = window.iter().position(|&b| b == b'\n') {
                self.buf.extend_from_slice(&window[..end]);
                self.inner.consume(end + 1);
                if self.buf.last() == Some(&b'\r') {
                    self.buf.pop();
                }
                return Ok(self.take_line());
            }
            let n = window.len();
            self.buf.extend_from_slice(window);
            self.inner.consume(n);
            if self.buf.len() > self.max {
                self.buf.clear();
                self.discarding = true;
                return Ok(Input::TooLong);
            }
        }
    }

    /// The line gathered in `buf`, cleaned; `buf` is emptied for the next.
    fn take_line(&mut self) -> Input {
        let text = clean_input(&self.buf);
        self.buf.clear();
        Input::Text(text)
    }

    /// Reads and drops everything until the peer closes.
    async fn discard_to_end(&mut self) {
        let mut sink = [0u8; 1024];
        while matches!(self.inner.read(&mut sink).await, Ok(n) if n > 0) {}
    }
}

/// Decodes a line as UTF-8 (invalid sequences become U+FFFD) and strips
/// control characters other than tab.
fn clean_input(bytes: &[u8]) -> String {
    clean_line(&String::from_utf8_lossy(bytes))
}

/// Most bytes of rendered lines gathered for one write.
const LINES_PER_WRITE: usize = 64 * 1024;

/// What the write side keeps of what it showed the user.
struct Shown {
    /// Frames as lines; knows who the user is.
    renderer: Renderer,
    /// The latest messages shown per room, shared with the [`Gateway`].
    recent: Arc<Mutex<Recent>>,
    /// The conversations asked to join (the tracker's own: rooms the user
    /// joins are the session's), so each is asked once until it is left.
    tracker: ResumeTracker,
    /// Where the `join`s of conversations go, to the line side.
    joins: mpsc::UnboundedSender<ClientMsg>,
}

/// Renders what the feed hands over as text lines.
struct LineSink<'a> {
    shown: &'a mut Shown,
    out: &'a mut Vec<u8>,
}

impl LineSink<'_> {
    fn take(&mut self, json: &[u8]) -> bool {
        if self.out.len() >= LINES_PER_WRITE {
            return false;
        }
        match std::str::from_utf8(json) {
            Ok(frame) => render_frame(self.shown, frame, self.out),
            Err(_) => tracing::warn!("tcp gateway: a frame that is not UTF-8"),
        }
        true
    }
}

impl Sink for LineSink<'_> {
    fn message(&mut self, wire: &Wire) -> bool {
        self.take(wire.json())
    }

    fn text(&mut self, text: &Utf8Bytes) -> bool {
        self.take(text.as_bytes())
    }

    /// WebSocket frames have no line form (a line client gets none).
    fn raw(&mut self, _frame: &[u8]) -> bool {
        true
    }
}

/// Writes what the connection's feed hands over (its outbox, its rooms'
/// messages), rendered as text lines by `shown`, one write and flush per
/// batch; on a close, a last line says why. A socket that takes nothing for
/// `write_timeout` is closed.
async fn write_loop<W>(
    mut writer: W,
    hub: Arc<Hub>,
    conn: Arc<Conn>,
    mut shown: Shown,
    done: CancellationToken,
) where
    W: AsyncWrite + Unpin,
{
    let idle = hub.config.idle_timeout;
    let outbox = &conn.outbox;
    let mut feed = Feed::default();
    let mut out = Vec::with_capacity(4 * 1024);
    loop {
        out.clear();
        let mut control = Batch::default();
        poll_fn(|cx| {
            let mut waited = false;
            loop {
                let mut sink = LineSink {
                    shown: &mut shown,
                    out: &mut out,
                };
                let fill = feed.poll_fill(cx, &hub, &conn, &mut sink, true, &mut control);
                if !out.is_empty() || control.close.is_some() || fill == Fill::Full {
                    if waited {
                        outbox.resume();
                    }
                    return Poll::Ready(());
                }
                if fill == Fill::Reading || waited {
                    return Poll::Pending;
                }
                // Say we wait, then look once more (see `Outbox::wait`).
                feed.wait(&conn);
                outbox.wait(cx.waker());
                waited = true;
            }
        })
        .await;
        if let Some(close) = control.close {
            closing_line(close, idle, &mut out);
        }
        let written = tokio::select! {
            biased;
            result = tokio::time::timeout(hub.config.write_timeout, write_out(&mut writer, &out)) => {
                Some(matches!(result, Ok(Ok(()))))
            }
            // Closing without draining: say why, briefly, and stop.
            _ = outbox.aborted() => None,
        };
        match written {
            Some(true) if control.close.is_none() => continue,
            Some(_) => break,
            None => {
                if let Some(close) = outbox.close_reason() {
                    out.clear();
                    closing_line(close, idle, &mut out);
                    let _ = tokio::time::timeout(CLOSE_GRACE, write_out(&mut writer, &out)).await;
                }
                break;
            }
        }
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, writer.shutdown()).await;
    done.cancel();
}

async fn write_out<W: AsyncWrite + Unpin>(writer: &mut W, out: &[u8]) -> io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    writer.write_all(out).await?;
    writer.flush().await
}

/// The last line before the gateway closes a connection.
fn closing_line(close: Close, idle: Duration, out: &mut Vec<u8>) {
    let now = now_ms();
    let line = match close.code {
        close::NORMAL => Line::notice(now, None, "bye"),
        close::GOING_AWAY => Line::notice(now, None, "server shutting down"),
        close::IDLE_TIMEOUT => Line::notice(
            now,
            None,
            format!(
                "idle timeout: nothing heard for {} s, closing",
                idle.as_secs()
            ),
        ),
        close::POLICY => Line::error(now, None, "too many requests: closing"),
        close::SLOW_CONSUMER => Line::error(now, None, "you read too slowly: closing"),
        code => Line::notice(now, None, format!("closing ({code}: {})", close.reason)),
    };
    push_line(out, &line);
}

/// Appends one queued frame as text lines. A frame that starts with `{` is
/// a JSON [`ServerMsg`] for the renderer (and the record of what was
/// shown); anything else is one of the gateway's own lines, already rendered.
fn render_frame(shown: &mut Shown, frame: &str, out: &mut Vec<u8>) {
    if !frame.starts_with('{') {
        out.extend_from_slice(frame.as_bytes());
        out.push(b'\n');
        return;
    }
    match serde_json::from_str::<ServerMsg>(frame) {
        Ok(msg) => {
            shown.tracker.observe(&msg);
            for join in shown.tracker.joins_for(&msg) {
                // The line side is gone only when the connection is.
                let _ = shown.joins.send(join);
            }
            shown.recent.lock().observe(&msg);
            for line in shown.renderer.render(&msg, now_ms()) {
                push_line(out, &line);
            }
        }
        Err(err) => tracing::warn!(error = %err, "tcp gateway: unrenderable frame"),
    }
}

/// Appends `HH:MM:SS [room] text` (UTC), made safe for a terminal, and a newline.
fn push_line(out: &mut Vec<u8>, line: &Line) {
    out.extend_from_slice(line.to_terminal(&utc_clock(line.at_ms)).as_bytes());
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_become_timestamped_defanged_lines() {
        let (joins, mut asked) = mpsc::unbounded_channel();
        let mut shown = Shown {
            renderer: Renderer::new(),
            recent: Arc::new(Mutex::new(Recent::new())),
            tracker: ResumeTracker::new(),
            joins,
        };
        let mut out = Vec::new();
        let frame = ServerMsg::Message {
            event: None,
            mentions: Vec::new(),
            reply_to: None,
            room: "lobby".into(),
            seq: 1,
            from: "bob".into(),
            text: "hi\x1b[2J\r\nfake\tline\rover".into(),
            sent_at: 3_723_000,
            attachments: Vec::new(),
        };
        render_frame(&mut shown, &frame.to_json(), &mut out);
        render_frame(&mut shown, "already rendered", &mut out);
        assert_eq!(shown.recent.lock().last_others("lobby"), Some(1));
        // A conversation someone wrote in: its join goes to the line side, once.
        let news = ServerMsg::Conversation {
            room: "@alice+bob".into(),
            with: "bob".into(),
        };
        render_frame(&mut shown, &news.to_json(), &mut Vec::new());
        render_frame(&mut shown, &news.to_json(), &mut Vec::new());
        assert_eq!(
            asked.try_recv().ok(),
            Some(ClientMsg::Join {
                room: "@alice+bob".into(),
                since: None
            })
        );
        assert!(asked.try_recv().is_err());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "01:02:03 [lobby] #1 <bob> hi\u{FFFD}[2J\n         fake\tline\u{FFFD}over\nalready rendered\n"
        );
    }

    #[test]
    fn links_point_at_the_http_listener_as_the_user_reached_the_gateway() {
        let at = |listen: &str, tls: bool, local: &str| {
            let config = Config {
                listen: listen.parse().unwrap(),
                tls_cert: tls.then(|| "cert.pem".into()),
                ..Config::default()
            };
            http_base(&config, local.parse().unwrap())
        };
        assert_eq!(
            at("0.0.0.0:8080", false, "10.1.2.3:7000").as_deref(),
            Some("http://10.1.2.3:8080")
        );
        assert_eq!(
            at("[::]:8443", true, "[::ffff:127.0.0.1]:7000").as_deref(),
            Some("https://127.0.0.1:8443")
        );
        assert_eq!(
            at("[::]:8080", false, "[::1]:7000").as_deref(),
            Some("http://[::1]:8080")
        );
        assert_eq!(
            at("127.0.0.2:8080", false, "127.0.0.1:7000").as_deref(),
            Some("http://127.0.0.2:8080"),
            "an HTTP listener on one address is reached there"
        );
        assert_eq!(at("127.0.0.1:0", false, "127.0.0.1:7000"), None);
    }

    #[test]
    fn input_is_cleaned() {
        assert_eq!(clean_input(b"a\x07b\tc\xffd\x1b"), "ab\tc\u{FFFD}d");
    }

    #[tokio::test]
    async fn line_reader_caps_lines_and_accepts_crlf() {
        let input: &[u8] = b"one\r\ntwo\n0123456789abc\nthree";
        let mut lines = LineReader::new(input, 10);
        assert_eq!(lines.next().await.unwrap(), Input::Text("one".into()));
        assert_eq!(lines.next().await.unwrap(), Input::Text("two".into()));
        assert_eq!(lines.next().await.unwrap(), Input::TooLong);
        assert_eq!(lines.next().await.unwrap(), Input::Text("three".into()));
        assert_eq!(lines.next().await.unwrap(), Input::Eof);
        // Exactly `max` bytes is a line; one more is too long.
        let input: &[u8] = b"0123456789\n0123456789a\nok\n";
        let mut lines = LineReader::new(input, 10);
        assert_eq!(
            lines.next().await.unwrap(),
            Input::Text("0123456789".into())
        );
        assert_eq!(lines.next().await.unwrap(), Input::TooLong);
        assert_eq!(lines.next().await.unwrap(), Input::Text("ok".into()));
    }

    #[tokio::test]
    async fn a_line_read_in_parts_survives_a_cancelled_read() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut lines = LineReader::new(server, 100);
        client.write_all(b"hel").await.unwrap();
        // Cancelled while waiting for the rest (as the select on the
        // conversation joins may cancel it).
        tokio::select! {
            biased;
            line = lines.next() => panic!("a line without its end: {line:?}"),
            () = std::future::ready(()) => {}
        }
        client.write_all(b"lo\r\nnext\n").await.unwrap();
        assert_eq!(lines.next().await.unwrap(), Input::Text("hello".into()));
        assert_eq!(lines.next().await.unwrap(), Input::Text("next".into()));
    }
}
