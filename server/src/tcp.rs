//! The raw TCP gateway (`--tcp-listen`): plain line-based chat for `nc` and
//! telnet, on the same hub as the WebSocket clients.
//!
//! A TCP user is a [`Session`] like any other: the same names, rooms,
//! presence, history, limits, rate limit and idle timeout. This module only
//! translates. Each input line becomes one [`ClientMsg`] (a slash command, or
//! a `send` to the user's *current room*), and each [`ServerMsg`] frame the
//! hub queues on the connection's outbox is rendered as a plain text line
//! with a UTC timestamp (`HH:MM:SS`). The lines the gateway says itself
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
//! Output: control characters in what others wrote are replaced (a newline
//! continues on an indented line), so nobody can send terminal escape
//! sequences to a bare terminal or fake a line from someone else.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use hubbub_protocol::{close, ClientMsg, ServerMsg};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tungstenite::Utf8Bytes;

use crate::hub::{now_ms, Conn, Hub};
use crate::outbox::{Close, Frame};
use crate::session::Session;

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

/// Indent of a continuation line: as wide as the `HH:MM:SS ` timestamp.
const CONTINUATION: &str = "         ";

/// The gateway's help, one command per line.
const HELP: &[&str] = &[
    "  TEXT            say TEXT in the current room (//TEXT says /TEXT)",
    "  /join ROOM      join ROOM (created if new) and make it the current room",
    "  /leave [ROOM]   leave ROOM (default: the current room)",
    "  /who [ROOM]     who is online in ROOM (default: the current room)",
    "  /rooms          every room and how many are in it",
    "  /msg USER TEXT  a direct message to USER",
    "  /rename NAME    change your name",
    "  /quit           leave",
    "  /help           this help",
];

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
                let Some(slot) = hub.admit_ip(peer.ip()) else {
                    tracing::info!(%peer, "tcp gateway: too many connections from one address");
                    hub.tasks.spawn(async move {
                        let _ = socket
                            .write_all(b"too many connections from your address\r\n")
                            .await;
                    });
                    continue;
                };
                let _ = socket.set_nodelay(true);
                let task_hub = Arc::clone(&hub);
                hub.tasks.spawn(async move {
                    serve(task_hub, socket).await;
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

/// Serves one line-based connection until it closes. Generic over the
/// stream so it can be driven without a socket.
pub async fn serve<S>(hub: Arc<Hub>, stream: S)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let conn = hub.connect();
    let (reader, writer) = tokio::io::split(stream);
    let mut lines = LineReader::new(reader, hub.config.max_frame_bytes);
    let done = CancellationToken::new();
    let write_task = tokio::spawn(write_loop(
        writer,
        Arc::clone(&conn),
        hub.config.idle_timeout,
        done.clone(),
    ));
    let mut gateway = Gateway {
        session: Session::new(Arc::clone(&hub), Arc::clone(&conn)),
        conn: Arc::clone(&conn),
        current: None,
    };
    gateway.say("* welcome to hubbub");
    gateway.prompt();

    loop {
        let line = tokio::select! {
            _ = done.cancelled() => break,
            line = lines.next() => line,
        };
        match line {
            Ok(Line::Text(text)) => {
                hub.touch(&conn);
                gateway.on_line(&text).await;
            }
            Ok(Line::TooLong) => {
                hub.touch(&conn);
                gateway.too_long(lines.max).await;
            }
            Ok(Line::Eof) | Err(_) => break,
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
}

impl Gateway {
    /// Queues one of the gateway's own lines, timestamped now.
    fn say(&self, text: impl AsRef<str>) {
        let mut out = Vec::new();
        line(&mut out, now_ms(), None, text.as_ref());
        out.pop(); // the newline: the writer adds it
        let text = String::from_utf8(out).expect("rendered from str");
        self.conn.outbox.push(&Utf8Bytes::from(text));
    }

    fn prompt(&self) {
        self.say("* what is your name?");
    }

    /// Counts a line the gateway answers itself against the rate limit (as
    /// a `ping`, whose `pong` renders nothing); false if it closed the connection.
    async fn count(&mut self) -> bool {
        self.session.on_request(ClientMsg::Ping { id: None }).await;
        !self.conn.outbox.is_closing()
    }

    async fn too_long(&mut self, max: usize) {
        if self.count().await {
            self.say(format!("! line longer than {max} bytes: dropped"));
        }
    }

    async fn on_line(&mut self, line: &str) {
        if line.trim().is_empty() {
            return;
        }
        if self.session.name().is_none() {
            return self.on_name(line.trim()).await;
        }
        let Some(command) = line.strip_prefix('/') else {
            return self.send_text(line.to_string()).await;
        };
        if command.starts_with('/') {
            return self.send_text(command.to_string()).await;
        }
        let (word, rest) = split_word(command);
        let room_or_current = |rest: &str| {
            let (room, _) = split_word(rest);
            (!room.is_empty())
                .then(|| room.trim_start_matches('#').to_string())
                .or_else(|| self.current.clone())
        };
        match word.to_ascii_lowercase().as_str() {
            "join" | "j" => match split_word(rest).0.trim_start_matches('#') {
                "" => self.usage("/join ROOM").await,
                room => self.join(room.to_string()).await,
            },
            "leave" | "part" => match room_or_current(rest) {
                Some(room) => self.leave(room).await,
                None => self.usage("/leave ROOM").await,
            },
            "who" => match room_or_current(rest) {
                Some(room) => self.session.on_request(ClientMsg::Who { room }).await,
                None => self.usage("/who ROOM").await,
            },
            "rooms" | "list" => self.session.on_request(ClientMsg::Rooms).await,
            "msg" | "m" => match split_word(rest) {
                (to, text) if !to.is_empty() && !text.trim().is_empty() => {
                    self.session
                        .on_request(ClientMsg::Direct {
                            to: to.to_string(),
                            text: text.to_string(),
                            client_id: None,
                        })
                        .await
                }
                _ => self.usage("/msg USER TEXT").await,
            },
            "rename" | "nick" => match split_word(rest).0 {
                "" => self.usage("/rename NAME").await,
                name => {
                    self.session
                        .on_request(ClientMsg::Rename {
                            name: name.to_string(),
                        })
                        .await
                }
            },
            "quit" | "exit" => self.session.on_request(ClientMsg::Quit).await,
            "help" | "?" => self.help().await,
            _ => {
                if self.count().await {
                    self.say(format!(
                        "! unknown command /{}; /help lists them",
                        truncate(word, 32)
                    ));
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
        } else if !self.conn.outbox.is_closing() {
            self.prompt();
        }
    }

    async fn help(&mut self) {
        if self.count().await {
            self.say("* commands:");
            for line in HELP {
                self.conn.outbox.push(&Utf8Bytes::from_static(line));
            }
        }
    }

    async fn usage(&mut self, usage: &str) {
        if self.count().await {
            self.say(format!("! usage: {usage}"));
        }
    }

    async fn send_text(&mut self, text: String) {
        match self.current.clone() {
            Some(room) => {
                self.session
                    .on_request(ClientMsg::Send {
                        room,
                        text,
                        client_id: None,
                    })
                    .await
            }
            None => {
                if self.count().await {
                    self.say("! you are in no room: /join ROOM first");
                }
            }
        }
    }

    async fn join(&mut self, room: String) {
        self.session
            .on_request(ClientMsg::Join {
                room: room.clone(),
                since: None,
            })
            .await;
        if self.session.rooms().contains(&room) {
            self.say(format!("[{room}] * you are talking in {room} now"));
            self.current = Some(room);
        }
    }

    async fn leave(&mut self, room: String) {
        self.session
            .on_request(ClientMsg::Leave { room: room.clone() })
            .await;
        if self.current.as_deref() == Some(&room) && !self.session.rooms().contains(&room) {
            self.current = self.session.rooms().iter().min().cloned();
            match &self.current {
                Some(room) => self.say(format!("[{room}] * you are talking in {room} now")),
                None => self.say("* you are in no room now: /join ROOM"),
            }
        }
    }
}

/// Splits off the first white-space separated word.
fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// What [`LineReader::next`] read.
#[derive(Debug, PartialEq)]
enum Line {
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

    /// The next line. Not cancel safe: only race it against the end of the connection.
    async fn next(&mut self) -> io::Result<Line> {
        while self.discarding {
            let chunk = self.inner.fill_buf().await?;
            if chunk.is_empty() {
                return Ok(Line::Eof);
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
        self.buf.clear();
        let limit = self.max as u64 + 1;
        let n = (&mut self.inner)
            .take(limit)
            .read_until(b'\n', &mut self.buf)
            .await?;
        if n == 0 {
            return Ok(Line::Eof);
        }
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
            if self.buf.last() == Some(&b'\r') {
                self.buf.pop();
            }
        } else if self.buf.len() > self.max {
            self.discarding = true;
            return Ok(Line::TooLong);
        }
        // Otherwise a last line without its newline, before the end.
        Ok(Line::Text(clean_input(&self.buf)))
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
    String::from_utf8_lossy(bytes)
        .chars()
        .filter(|&c| c == '\t' || !c.is_control())
        .collect()
}

/// Drains the outbox into the socket, rendering each frame as text lines,
/// one write and flush per batch; on a close, a last line says why.
async fn write_loop<W>(mut writer: W, conn: Arc<Conn>, idle: Duration, done: CancellationToken)
where
    W: AsyncWrite + Unpin,
{
    let outbox = &conn.outbox;
    let mut frames = VecDeque::new();
    let mut renderer = Renderer::default();
    let mut out = Vec::with_capacity(4 * 1024);
    loop {
        let batch = outbox.take(&mut frames).await;
        out.clear();
        for frame in frames.drain(..) {
            if let Frame::Text(text) = frame {
                renderer.frame(text.as_str(), &mut out);
            }
        }
        if let Some(close) = batch.close {
            closing_line(close, idle, &mut out);
        }
        let written = tokio::select! {
            biased;
            result = write_out(&mut writer, &out) => Some(result.is_ok()),
            // Closing without draining: say why, briefly, and stop.
            _ = outbox.aborted() => None,
        };
        match written {
            Some(true) if batch.close.is_none() => continue,
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
    let text = match close.code {
        close::NORMAL => "* bye".to_string(),
        close::GOING_AWAY => "* server shutting down".to_string(),
        close::IDLE_TIMEOUT => format!(
            "* idle timeout: nothing heard for {} s, closing",
            idle.as_secs()
        ),
        close::POLICY => "! too many requests: closing".to_string(),
        close::SLOW_CONSUMER => "! you read too slowly: closing".to_string(),
        code => format!("* closing ({code}: {})", close.reason),
    };
    line(out, now_ms(), None, &text);
}

/// Turns server frames into text lines. Remembers the user's own name so
/// its own online notices are not echoed back.
#[derive(Default)]
struct Renderer {
    me: Option<String>,
}

impl Renderer {
    fn frame(&mut self, frame: &str, out: &mut Vec<u8>) {
        if !frame.starts_with('{') {
            out.extend_from_slice(frame.as_bytes());
            out.push(b'\n');
            return;
        }
        match serde_json::from_str::<ServerMsg>(frame) {
            Ok(msg) => self.render(&msg, out),
            Err(err) => tracing::warn!(error = %err, "tcp gateway: unrenderable frame"),
        }
    }

    fn is_me(&self, name: &str) -> bool {
        self.me.as_deref() == Some(name)
    }

    fn render(&mut self, msg: &ServerMsg, out: &mut Vec<u8>) {
        let now = now_ms();
        match msg {
            ServerMsg::Welcome { user, .. } => {
                self.me = Some(user.clone());
                line(
                    out,
                    now,
                    None,
                    &format!("* welcome, {user}! /help lists the commands"),
                );
            }
            ServerMsg::Presence { room, users } => {
                line(out, now, Some(room), &format!("* online: {}", list(users)))
            }
            ServerMsg::Joined { room, users } => {
                let others: Vec<&String> = users.iter().filter(|u| !self.is_me(u)).collect();
                if !others.is_empty() {
                    line(out, now, Some(room), &format!("* {} joined", join(&others)));
                }
            }
            ServerMsg::LeaveOk { room } => {
                line(out, now, Some(room), &format!("* you left {room}"));
            }
            ServerMsg::Left { room, users } => {
                let others: Vec<&String> = users.iter().filter(|u| !self.is_me(u)).collect();
                if !others.is_empty() {
                    line(out, now, Some(room), &format!("* {} left", join(&others)));
                }
            }
            ServerMsg::Message {
                room,
                from,
                text,
                sent_at,
                ..
            } => line(out, *sent_at, Some(room), &format!("<{from}> {text}")),
            ServerMsg::History { room, messages, .. } => {
                for m in messages {
                    line(
                        out,
                        m.sent_at,
                        Some(room),
                        &format!("<{}> {}", m.from, m.text),
                    );
                }
            }
            ServerMsg::Direct {
                from,
                to,
                text,
                sent_at,
            } => {
                let tag = if self.is_me(from) {
                    format!("[dm to {to}]")
                } else {
                    "[dm]".to_string()
                };
                line(out, *sent_at, None, &format!("{tag} <{from}> {text}"));
            }
            ServerMsg::Renamed {
                room: Some(room),
                from,
                to,
            } => line(out, now, Some(room), &format!("* {from} is now {to}")),
            ServerMsg::Renamed { room: None, to, .. } => {
                self.me = Some(to.clone());
                line(out, now, None, &format!("* you are {to} now"));
            }
            ServerMsg::Rooms { rooms } if rooms.is_empty() => line(out, now, None, "* no rooms"),
            ServerMsg::Rooms { rooms } => {
                let rooms: Vec<String> = rooms
                    .iter()
                    .map(|r| format!("{} ({})", r.room, r.members))
                    .collect();
                line(out, now, None, &format!("* rooms: {}", rooms.join(", ")));
            }
            ServerMsg::Error { code, message, .. } => {
                line(out, now, None, &format!("! {message} ({code})"))
            }
            // Acks (the message itself is shown), typing, pong and heartbeat
            // have nothing to say in a line-based terminal.
            _ => {}
        }
    }
}

fn list(users: &[String]) -> String {
    if users.is_empty() {
        "(nobody yet)".to_string()
    } else {
        users.join(", ")
    }
}

fn join(users: &[&String]) -> String {
    users
        .iter()
        .map(|u| u.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `HH:MM:SS` (UTC) of a time in ms since the Unix epoch.
fn clock(ms: u64) -> String {
    let secs = (ms / 1000) % 86_400;
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// Appends `HH:MM:SS [room] text` and a newline, made safe for a terminal:
/// a newline in `text` continues on an indented line, a carriage return is
/// dropped, other control characters (escape sequences) become U+FFFD.
fn line(out: &mut Vec<u8>, at_ms: u64, room: Option<&String>, text: &str) {
    let mut s = clock(at_ms);
    s.push(' ');
    if let Some(room) = room {
        s.push('[');
        s.push_str(room);
        s.push_str("] ");
    }
    for c in text.chars() {
        match c {
            '\n' => {
                s.push('\n');
                s.push_str(CONTINUATION);
            }
            '\r' => {}
            '\t' => s.push('\t'),
            c if c.is_control() => s.push('\u{FFFD}'),
            c => s.push(c),
        }
    }
    s.push('\n');
    out.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_timestamped_and_defanged() {
        let mut out = Vec::new();
        let room = "lobby".to_string();
        line(
            &mut out,
            3_723_000,
            Some(&room),
            "<bob> hi\x1b[2J\r\nfake\tline",
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "01:02:03 [lobby] <bob> hi\u{FFFD}[2J\n         fake\tline\n"
        );
    }

    #[test]
    fn input_is_cleaned() {
        assert_eq!(clean_input(b"a\x07b\tc\xffd\x1b"), "ab\tc\u{FFFD}d");
    }

    #[test]
    fn words_split() {
        assert_eq!(split_word("  msg bob  hi there"), ("msg", "bob  hi there"));
        assert_eq!(split_word("rooms"), ("rooms", ""));
    }

    #[tokio::test]
    async fn line_reader_caps_lines_and_accepts_crlf() {
        let input: &[u8] = b"one\r\ntwo\n0123456789abc\nthree";
        let mut lines = LineReader::new(input, 10);
        assert_eq!(lines.next().await.unwrap(), Line::Text("one".into()));
        assert_eq!(lines.next().await.unwrap(), Line::Text("two".into()));
        assert_eq!(lines.next().await.unwrap(), Line::TooLong);
        assert_eq!(lines.next().await.unwrap(), Line::Text("three".into()));
        assert_eq!(lines.next().await.unwrap(), Line::Eof);
    }
}
