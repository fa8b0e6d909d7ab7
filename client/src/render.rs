//! Server frames as text lines: what the TCP gateway writes to `nc` and what
//! the terminal client prints.
//!
//! [`Renderer::render`] turns one [`ServerMsg`] into zero or more [`Line`]s
//! (a `history` is many, an `ack` none). It remembers the user's own name,
//! so its own online notices are not echoed back, a line of a private
//! conversation names the other person, and a message that mentions it is
//! marked. A [`Line`] becomes text with [`Line::body`] (`[lobby] #42
//! <alice> hi`, `* notice`, `! error`) or, timestamped and safe for a bare
//! terminal, with [`Line::to_terminal`].
//!
//! A private conversation (docs/protocol.md, "Private conversations") is
//! a room named after its two people, `@alice+bob`; its lines show the
//! *other* person instead, `@` and their name (as a `conversation` frame
//! spells it, else as the room does): to bob, `[@alice] #3 <alice> psst`
//! and `[@alice] #4 <bob> hello`; to alice, `[@bob] #3 <alice> psst`. The
//! [`Line::room`] stays the room's name, so views still sort lines by
//! room; [`Line::with`] holds the other person, and
//! [`Renderer::room_label`] gives any room's shown name (`lobby`, `@bob`)
//! for room lists and a client's own notices ([`Renderer::notice`]).
//!
//! A room message shows its handle, `#` and its `seq`, after the room: what
//! `/reply`, `/edit`, `/delete` and `/react` name it by. The rest of
//! docs/protocol.md's "Edits, deletions and reactions" and "Mentions", as
//! lines (the same live and in `history`, which replays them in order):
//!
//! | frame | line |
//! |---|---|
//! | a message | `[lobby] #42 <alice> hi` |
//! | a reply | `[lobby] #45 <bob> ↳ #41 alice: are we on? \| yes, tomorrow` (the quote on one row) |
//! | a message that mentions the reader | `@ [lobby] #46 <bob> @alice look` |
//! | an edit | `[lobby] * alice edited #42: hi all` |
//! | a deletion | `[lobby] * alice deleted #42` |
//! | a reaction | `[lobby] * bob reacted 👍 to #42`, `[lobby] * bob took back 👍 from #42` |
//! | a deleted message in `history` | `[lobby] #43 <alice> (deleted)` |
//! | a message in a private conversation | `[@bob] #3 <bob> psst` |
//! | `conversation` (news of one not joined yet) | `[@bob] * conversation with bob: /msg bob TEXT answers` |
//! | `conversations` (not when empty) | `* your conversations: bob (online), carol` |
//!
//! Text is shown as sent: no markup is interpreted.
//!
//! A message's attachments (docs/protocol.md, "Files") come after its
//! caption (left out when empty), one line each, in the message's own kind
//! so they read as the sender's: `[lobby] #7 <bob> image: cat.png (47.1 KiB,
//! image/png, 640x480) http://host:8080/api/files/ID?token=…`. The links
//! are absolute: the renderer's owner tells it the server's HTTP origin
//! ([`Renderer::set_http_base`]); a guest's `upload_token`, learned from
//! its `welcome` (and forgotten on its own rename, which ends it), is put in
//! the query so the link opens in a browser or `curl` for that user.
//!
//! Safety (docs/protocol.md, "Raw TCP gateway"): control characters in what
//! others wrote become U+FFFD, so nobody can send terminal escape sequences;
//! a line break (LF or CRLF) continues on an indented line, so nobody can
//! fake a line from someone else. A lone CR would move the cursor back over
//! the start of the line: it too becomes U+FFFD.

use hubbub_protocol::names::{self, name_key};
use hubbub_protocol::{Attachment, Event, Quote, ServerMsg};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// What kind of line a [`Line`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Something said in a room.
    Message {
        from: String,
        /// Its `seq` in the room: the handle commands name it by (`#42`).
        seq: u64,
        /// It mentions the reader (`mentions` holds the reader's name).
        mention: bool,
        /// The message it answers, on its first line only.
        quote: Option<Quote>,
    },
    /// A message a search found in `room` (shown whatever room is current).
    Hit { room: String, from: String },
    /// Presence, answers, connection state: `* ...`.
    Notice,
    /// A refused request or a usage mistake: `! ...`.
    Error,
}

/// One line of the conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// When it happened: the server's `sent_at` for messages, else the time
    /// the frame was rendered. Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The room it belongs to; `None` for answers about no room in
    /// particular.
    pub room: Option<String>,
    /// For a line of a private conversation of this user: the other
    /// person, shown instead of the room (`[@bob]`). Set by the
    /// [`Renderer`]; `None` for any other line.
    pub with: Option<String>,
    pub kind: Kind,
    /// The text as the server sent it: not yet made safe for a terminal.
    pub text: String,
}

impl Line {
    /// A `* ...` line.
    pub fn notice(at_ms: u64, room: Option<&str>, text: impl Into<String>) -> Line {
        Line {
            at_ms,
            room: room.map(String::from),
            with: None,
            kind: Kind::Notice,
            text: text.into(),
        }
    }

    /// A `! ...` line.
    pub fn error(at_ms: u64, room: Option<&str>, text: impl Into<String>) -> Line {
        Line {
            at_ms,
            room: room.map(String::from),
            with: None,
            kind: Kind::Error,
            text: text.into(),
        }
    }

    /// The line as text, without timestamp and not yet made safe:
    /// `[lobby] #42 <alice> hi`, `@ [lobby] #46 <bob> @alice look` (it
    /// mentions the reader), `[lobby] #45 <bob> ↳ #41 alice: are we on? |
    /// yes`, `[@bob] #3 <bob> psst` (a private conversation), `[lobby] *
    /// bob joined`, `! text (code)`.
    pub fn body(&self) -> String {
        let room = match (&self.with, &self.room) {
            (Some(with), _) => format!("[@{with}] "),
            (None, Some(room)) => format!("[{room}] "),
            (None, None) => String::new(),
        };
        match &self.kind {
            Kind::Message {
                from,
                seq,
                mention,
                quote,
            } => {
                let mark = if *mention { "@ " } else { "" };
                let quote = quote.as_ref().map(quote_text).unwrap_or_default();
                format!("{mark}{room}#{seq} <{from}> {quote}{}", self.text)
            }
            Kind::Hit { room, from } => match &self.with {
                Some(with) => format!("[@{with}] <{from}> {}", self.text),
                None => format!("[{room}] <{from}> {}", self.text),
            },
            Kind::Notice => format!("{room}* {}", self.text),
            Kind::Error => format!("{room}! {}", self.text),
        }
    }

    /// `CLOCK body`, safe for a bare terminal: each line break of the text
    /// continues on a line indented as wide as `clock` plus a space, other
    /// control characters become U+FFFD. No final newline.
    pub fn to_terminal(&self, clock: &str) -> String {
        let indent = " ".repeat(clock.chars().count() + 1);
        let body = self.body();
        let mut out = String::with_capacity(clock.len() + 1 + body.len());
        out.push_str(clock);
        out.push(' ');
        let mut chars = body.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\r' if chars.peek() == Some(&'\n') => {} // CRLF: the LF breaks
                '\n' => {
                    out.push('\n');
                    out.push_str(&indent);
                }
                '\t' => out.push('\t'),
                c if c.is_control() => out.push('\u{FFFD}'),
                c => out.push(c),
            }
        }
        out
    }
}

/// How a reply shows what it answers, before its own text: `↳ #41 alice:
/// are we on? | `. Always one row: the quote is defanged (a line break in
/// it becomes U+FFFD), whatever the server sent.
pub fn quote_text(quote: &Quote) -> String {
    let from = defang(&quote.from);
    match quote.text.is_empty() {
        true => format!("↳ #{} {from} | ", quote.seq),
        false => format!("↳ #{} {from}: {} | ", quote.seq, defang(&quote.text)),
    }
}

/// `HH:MM:SS` (UTC) of a time in ms since the Unix epoch.
pub fn utc_clock(ms: u64) -> String {
    let secs = (ms / 1000) % 86_400;
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// Text made safe for one terminal cell row: every control character but
/// tab, line breaks included, becomes U+FFFD. For views that lay out lines
/// themselves (the full-screen terminal client).
pub fn defang(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c == '\t' || !c.is_control() {
                c
            } else {
                '\u{FFFD}'
            }
        })
        .collect()
}

/// A size in bytes as people read it: `512 B`, `47.1 KiB`, `25.0 MiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// What [`url_component`] leaves as it is: the unreserved characters of
/// RFC 3986.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `text` made safe as one URL path segment or query value: everything but
/// the unreserved characters percent-encoded (UTF-8).
pub fn url_component(text: &str) -> String {
    utf8_percent_encode(text, UNRESERVED).to_string()
}

/// A room message as `message` and `history` carry it alike.
struct RoomMessage<'a> {
    seq: u64,
    from: &'a str,
    text: &'a str,
    sent_at: u64,
    attachments: &'a [Attachment],
    reply_to: Option<&'a Quote>,
    mentions: &'a [String],
    event: Option<&'a Event>,
}

/// Renders frames as lines; remembers who "me" is, and what makes a file's
/// link work for this user.
#[derive(Debug, Clone, Default)]
pub struct Renderer {
    me: Option<String>,
    /// The server's HTTP origin (`http://127.0.0.1:8080`), without a final
    /// slash; without it, links are relative (`/api/files/ID`).
    http_base: Option<String>,
    /// This guest's upload token (from `welcome`), which also authorizes
    /// its downloads: appended to links as `?token=`.
    upload_token: Option<String>,
    /// The other person of each private conversation a `conversation` or
    /// `conversations` frame named, as they spell their name, or as a line
    /// of it first showed them: `(room, with)`, at most one per room,
    /// forgotten with the room's `leave_ok`.
    spelled: Vec<(String, String)>,
}

impl Renderer {
    pub fn new() -> Renderer {
        Renderer::default()
    }

    /// The user's own name, once welcomed (updated on its own rename).
    pub fn me(&self) -> Option<&str> {
        self.me.as_deref()
    }

    /// The other person of `room` if it is a private conversation of this
    /// user: as a `conversation` frame spelled them, else as the room does.
    pub fn with_of(&self, room: &str) -> Option<String> {
        if let Some((_, with)) = self.spelled.iter().find(|(r, _)| r == room) {
            return Some(with.clone());
        }
        let me = name_key(self.me.as_deref()?);
        names::conversation_peer(room, &me).map(String::from)
    }

    /// How `room` is shown: `@bob` for this user's conversation with bob,
    /// else the room's name.
    pub fn room_label(&self, room: &str) -> String {
        match self.with_of(room) {
            Some(with) => format!("@{with}"),
            None => room.to_string(),
        }
    }

    /// A `* ...` line of the client's own about `room`, shown as the
    /// renderer shows the room's lines (`[@bob] * ...` for a conversation).
    pub fn notice(&self, at_ms: u64, room: Option<&str>, text: impl Into<String>) -> Line {
        let mut line = Line::notice(at_ms, room, text);
        line.with = room.and_then(|room| self.with_of(room));
        line
    }

    /// Remembers how a conversation's other person spells their name.
    fn learn(&mut self, room: &str, with: &str) {
        match self.spelled.iter_mut().find(|(r, _)| r == room) {
            Some((_, known)) => *known = with.to_string(),
            None => self.spelled.push((room.to_string(), with.to_string())),
        }
    }

    fn is_me(&self, name: &str) -> bool {
        self.me.as_deref() == Some(name)
    }

    /// Whether `mentions` names this user (ignoring case, as names are).
    fn mentions_me(&self, mentions: &[String]) -> bool {
        self.me
            .as_deref()
            .is_some_and(|me| mentions.iter().any(|m| name_key(m) == name_key(me)))
    }

    /// The lines of one room message, live or from `history`: an event's
    /// notice, or the message (its handle, its quote, marked when it
    /// mentions this user).
    fn room_message(&self, room: &str, m: RoomMessage<'_>) -> Vec<Line> {
        let from = m.from;
        let text = match m.event {
            Some(Event::Edit { target }) => format!("{from} edited #{target}: {}", m.text),
            Some(Event::Delete { target }) => format!("{from} deleted #{target}"),
            Some(Event::React {
                target,
                emoji,
                on: true,
            }) => format!("{from} reacted {} to #{target}", defang(emoji)),
            Some(Event::React {
                target,
                emoji,
                on: false,
            }) => format!("{from} took back {} from #{target}", defang(emoji)),
            None => {
                let kind = Kind::Message {
                    from: from.to_string(),
                    seq: m.seq,
                    mention: !self.is_me(from) && self.mentions_me(m.mentions),
                    quote: m.reply_to.cloned(),
                };
                // Nothing said and nothing carried: deleted (a send cannot be empty).
                let text = match m.text.is_empty() && m.attachments.is_empty() {
                    true => "(deleted)",
                    false => m.text,
                };
                let mut lines =
                    self.message_lines(m.sent_at, Some(room), kind, text, m.attachments);
                for line in lines.iter_mut().skip(1) {
                    if let Kind::Message { quote, .. } = &mut line.kind {
                        *quote = None;
                    }
                }
                return lines;
            }
        };
        vec![Line::notice(m.sent_at, Some(room), text)]
    }

    /// Sets the server's HTTP origin that file links start with, e.g.
    /// `http://127.0.0.1:8080` (a final `/` is dropped).
    pub fn set_http_base(&mut self, base: impl Into<String>) {
        let base: String = base.into();
        self.http_base = Some(base.trim_end_matches('/').to_string());
    }

    /// The server's HTTP origin, if set.
    pub fn http_base(&self) -> Option<&str> {
        self.http_base.as_deref()
    }

    /// This guest's upload token, from the latest `welcome`; `None` for an
    /// account, before a welcome, and after an own rename (which ends it).
    pub fn upload_token(&self) -> Option<&str> {
        self.upload_token.as_deref()
    }

    /// Where this user downloads `file`: absolute once the HTTP origin is
    /// set, with `?token=` for a guest.
    pub fn file_url(&self, file: &Attachment) -> String {
        let mut url = format!(
            "{}/api/files/{}",
            self.http_base.as_deref().unwrap_or(""),
            url_component(&file.id)
        );
        if let Some(token) = &self.upload_token {
            url.push_str("?token=");
            url.push_str(&url_component(token));
        }
        url
    }

    /// One line's text for `file`: `image: cat.png (47.1 KiB, image/png,
    /// 640x480) URL`, or `file: notes.pdf (2.0 MiB, application/pdf) URL`.
    /// The name is defanged to one row whatever it holds.
    pub fn attachment_text(&self, file: &Attachment) -> String {
        let what = if file.is_image() { "image" } else { "file" };
        let mut facts = format!("{}, {}", human_size(file.size), defang(&file.mime));
        if let (Some(w), Some(h)) = (file.width, file.height) {
            facts.push_str(&format!(", {w}x{h}"));
        }
        format!(
            "{what}: {} ({facts}) {}",
            defang(&file.name),
            self.file_url(file)
        )
    }

    /// A message's lines: its caption (unless it is empty and files carry
    /// the message), then one line per file, all of the same kind and time.
    fn message_lines(
        &self,
        at_ms: u64,
        room: Option<&str>,
        kind: Kind,
        text: &str,
        files: &[Attachment],
    ) -> Vec<Line> {
        let line = |text: String| Line {
            at_ms,
            room: room.map(String::from),
            with: None,
            kind: kind.clone(),
            text,
        };
        let caption = (!text.is_empty() || files.is_empty()).then(|| line(text.to_string()));
        caption
            .into_iter()
            .chain(files.iter().map(|f| line(self.attachment_text(f))))
            .collect()
    }

    /// The lines for one frame, `now_ms` being the time for lines that have
    /// no time of their own. Lines of a private conversation of this user
    /// carry its other person ([`Line::with`]).
    pub fn render(&mut self, msg: &ServerMsg, now_ms: u64) -> Vec<Line> {
        let mut lines = self.lines(msg, now_ms);
        for line in &mut lines {
            if line.with.is_some() {
                continue;
            }
            let Some(room) = line.room.as_deref() else {
                continue;
            };
            line.with = self.with_of(room);
            // Kept, so a conversation's lines still name its other person
            // after an own rename (a guest's conversations end with it).
            if let Some(with) = &line.with {
                self.learn(room, with);
            }
        }
        if let ServerMsg::LeaveOk { room } = msg {
            self.spelled.retain(|(r, _)| r != room);
        }
        lines
    }

    fn lines(&mut self, msg: &ServerMsg, now_ms: u64) -> Vec<Line> {
        match msg {
            ServerMsg::Welcome {
                user, upload_token, ..
            } => {
                self.me = Some(user.clone());
                self.upload_token = upload_token.clone();
                vec![Line::notice(
                    now_ms,
                    None,
                    format!("welcome, {user}! /help lists the commands"),
                )]
            }
            ServerMsg::Presence { room, users } => {
                let online = if users.is_empty() {
                    "(nobody yet)".to_string()
                } else {
                    users.join(", ")
                };
                vec![Line::notice(
                    now_ms,
                    Some(room),
                    format!("online: {online}"),
                )]
            }
            ServerMsg::Joined { room, users } => self.others(now_ms, room, users, "joined"),
            ServerMsg::Left { room, users } => self.others(now_ms, room, users, "left"),
            ServerMsg::LeaveOk { room } => vec![Line::notice(
                now_ms,
                Some(room),
                format!("you left {}", self.room_label(room)),
            )],
            ServerMsg::Message {
                room,
                seq,
                from,
                text,
                sent_at,
                attachments,
                reply_to,
                mentions,
                event,
            } => self.room_message(
                room,
                RoomMessage {
                    seq: *seq,
                    from,
                    text,
                    sent_at: *sent_at,
                    attachments,
                    reply_to: reply_to.as_ref(),
                    mentions,
                    event: event.as_ref(),
                },
            ),
            ServerMsg::History {
                room,
                messages,
                resync,
                ..
            } => {
                let resynced = resync.then(|| {
                    Line::notice(
                        now_ms,
                        Some(room),
                        "missed too much: recent history follows",
                    )
                });
                resynced
                    .into_iter()
                    .chain(messages.iter().flat_map(|m| {
                        self.room_message(
                            room,
                            RoomMessage {
                                seq: m.seq,
                                from: &m.from,
                                text: &m.text,
                                sent_at: m.sent_at,
                                attachments: &m.attachments,
                                reply_to: m.reply_to.as_ref(),
                                mentions: &m.mentions,
                                event: m.event.as_ref(),
                            },
                        )
                    }))
                    .collect()
            }
            ServerMsg::Conversation { room, with } => {
                self.learn(room, with);
                vec![Line::notice(
                    now_ms,
                    Some(room),
                    format!("conversation with {with}: /msg {with} TEXT answers"),
                )]
            }
            ServerMsg::Conversations { conversations } => {
                for c in conversations {
                    self.learn(&c.room, &c.with);
                }
                if conversations.is_empty() {
                    return Vec::new();
                }
                let listed: Vec<String> = conversations
                    .iter()
                    .map(|c| match c.online {
                        true => format!("{} (online)", c.with),
                        false => c.with.clone(),
                    })
                    .collect();
                vec![Line::notice(
                    now_ms,
                    None,
                    format!("your conversations: {}", listed.join(", ")),
                )]
            }
            ServerMsg::Renamed {
                room: Some(room),
                from,
                to,
                ..
            } => vec![Line::notice(
                now_ms,
                Some(room),
                format!("{from} is now {to}"),
            )],
            ServerMsg::Renamed {
                room: None,
                to,
                upload_token,
                ..
            } => {
                self.me = Some(to.clone());
                // The token was for the old name; the server sends one for
                // the new (a server before that sends none: no links then).
                self.upload_token = upload_token.clone();
                vec![Line::notice(now_ms, None, format!("you are {to} now"))]
            }
            ServerMsg::Rooms { rooms } if rooms.is_empty() => {
                vec![Line::notice(now_ms, None, "no rooms")]
            }
            ServerMsg::Rooms { rooms } => {
                let rooms: Vec<String> = rooms
                    .iter()
                    .map(|r| format!("{} ({})", r.room, r.members))
                    .collect();
                vec![Line::notice(
                    now_ms,
                    None,
                    format!("rooms: {}", rooms.join(", ")),
                )]
            }
            ServerMsg::SearchResults {
                query,
                results,
                next,
            } => {
                let head = match results.len() {
                    0 => format!("no results for \"{query}\""),
                    1 => format!("1 result for \"{query}\", newest first"),
                    n => format!("{n} results for \"{query}\", newest first"),
                };
                let more = next.as_ref().map(|_| {
                    let text = format!(
                        "showing the newest {}; add words to narrow the search",
                        results.len()
                    );
                    Line::notice(now_ms, None, text)
                });
                std::iter::once(Line::notice(now_ms, None, head))
                    .chain(results.iter().flat_map(|hit| {
                        let kind = Kind::Hit {
                            room: hit.room.clone(),
                            from: hit.from.clone(),
                        };
                        let mut lines = self.message_lines(
                            hit.sent_at,
                            None,
                            kind,
                            &hit.text,
                            &hit.attachments,
                        );
                        for line in &mut lines {
                            line.with = self.with_of(&hit.room);
                        }
                        lines
                    }))
                    .chain(more)
                    .collect()
            }
            ServerMsg::Error { code, message, .. } => {
                vec![Line::error(now_ms, None, format!("{message} ({code})"))]
            }
            // The message itself is the news; typing, read markers, pong
            // and heartbeat have nothing to say in a line-based view.
            ServerMsg::Ack { .. }
            | ServerMsg::Typing { .. }
            | ServerMsg::Read { .. }
            | ServerMsg::Pong { .. }
            | ServerMsg::Heartbeat => Vec::new(),
        }
    }

    /// `"ana, bo joined"` for the users other than me; nothing if only me.
    fn others(&self, now_ms: u64, room: &str, users: &[String], what: &str) -> Vec<Line> {
        let others: Vec<&str> = users
            .iter()
            .map(String::as_str)
            .filter(|u| !self.is_me(u))
            .collect();
        if others.is_empty() {
            return Vec::new();
        }
        vec![Line::notice(
            now_ms,
            Some(room),
            format!("{} {what}", others.join(", ")),
        )]
    }
}

#[cfg(test)]
mod tests {
    use hubbub_protocol::{
        ConversationInfo, ErrorCode, HistoryMessage, Limits, RoomInfo, SearchHit,
    };

    use super::*;

    fn welcomed(name: &str) -> Renderer {
        let mut r = Renderer::new();
        r.render(
            &ServerMsg::Welcome {
                user: name.into(),
                protocol: 1,
                heartbeat_ms: 25_000,
                idle_timeout_ms: 60_000,
                server_time: 0,
                limits: Limits::default(),
                upload_token: None,
            },
            0,
        );
        r
    }

    fn bodies(r: &mut Renderer, msg: ServerMsg) -> Vec<String> {
        r.render(&msg, 0).iter().map(Line::body).collect()
    }

    #[test]
    fn each_frame_reads_as_the_gateway_documents() {
        let mut r = welcomed("alice");
        assert_eq!(r.me(), Some("alice"));
        let room = || "lobby".to_string();
        let cases: Vec<(ServerMsg, Vec<&str>)> = vec![
            (
                ServerMsg::Presence {
                    room: room(),
                    users: vec!["alice".into(), "bob".into()],
                },
                vec!["[lobby] * online: alice, bob"],
            ),
            (
                ServerMsg::Presence {
                    room: room(),
                    users: vec![],
                },
                vec!["[lobby] * online: (nobody yet)"],
            ),
            (
                ServerMsg::Joined {
                    room: room(),
                    users: vec!["alice".into(), "carol".into(), "dave".into()],
                },
                vec!["[lobby] * carol, dave joined"],
            ),
            (
                ServerMsg::Joined {
                    room: room(),
                    users: vec!["alice".into()],
                },
                vec![],
            ),
            (
                ServerMsg::Left {
                    room: room(),
                    users: vec!["bob".into()],
                },
                vec!["[lobby] * bob left"],
            ),
            (
                ServerMsg::LeaveOk { room: room() },
                vec!["[lobby] * you left lobby"],
            ),
            (
                ServerMsg::Message {
                    event: None,
                    mentions: Vec::new(),
                    reply_to: None,
                    room: room(),
                    seq: 1,
                    from: "bob".into(),
                    text: "hi".into(),
                    sent_at: 5,
                    attachments: Vec::new(),
                },
                vec!["[lobby] #1 <bob> hi"],
            ),
            (
                ServerMsg::History {
                    room: room(),
                    messages: vec![
                        HistoryMessage {
                            event: None,
                            mentions: Vec::new(),
                            reply_to: None,
                            seq: 1,
                            from: "bob".into(),
                            text: "one".into(),
                            sent_at: 1,
                            attachments: Vec::new(),
                        },
                        HistoryMessage {
                            event: None,
                            mentions: Vec::new(),
                            reply_to: None,
                            seq: 2,
                            from: "alice".into(),
                            text: "two".into(),
                            sent_at: 2,
                            attachments: Vec::new(),
                        },
                    ],
                    has_more: false,
                    before: None,
                    resync: true,
                },
                vec![
                    "[lobby] * missed too much: recent history follows",
                    "[lobby] #1 <bob> one",
                    "[lobby] #2 <alice> two",
                ],
            ),
            (
                ServerMsg::Renamed {
                    room: Some(room()),
                    from: "bob".into(),
                    to: "bobby".into(),
                    upload_token: None,
                },
                vec!["[lobby] * bob is now bobby"],
            ),
            (ServerMsg::Rooms { rooms: vec![] }, vec!["* no rooms"]),
            (
                ServerMsg::Rooms {
                    rooms: vec![
                        RoomInfo {
                            room: "kitchen".into(),
                            members: 1,
                        },
                        RoomInfo {
                            room: room(),
                            members: 2,
                        },
                    ],
                },
                vec!["* rooms: kitchen (1), lobby (2)"],
            ),
            (
                ServerMsg::SearchResults {
                    query: "lunch".into(),
                    results: vec![],
                    next: None,
                },
                vec!["* no results for \"lunch\""],
            ),
            (
                ServerMsg::SearchResults {
                    query: "Lunch".into(),
                    results: vec![
                        SearchHit {
                            room: "kitchen".into(),
                            seq: 2,
                            from: "bob".into(),
                            text: "lunch is ready".into(),
                            sent_at: 2,
                            attachments: vec![],
                        },
                        SearchHit {
                            room: room(),
                            seq: 9,
                            from: "alice".into(),
                            text: "lunch?".into(),
                            sent_at: 1,
                            attachments: vec![],
                        },
                    ],
                    next: Some("1.9.lobby".into()),
                },
                vec![
                    "* 2 results for \"Lunch\", newest first",
                    "[kitchen] <bob> lunch is ready",
                    "[lobby] <alice> lunch?",
                    "* showing the newest 2; add words to narrow the search",
                ],
            ),
            (
                ServerMsg::error(ErrorCode::NameTaken, "\"Alice\" is taken"),
                vec!["! \"Alice\" is taken (name_taken)"],
            ),
            (
                ServerMsg::Ack {
                    client_id: None,
                    room: None,
                    seq: None,
                },
                vec![],
            ),
            (
                ServerMsg::Typing {
                    room: room(),
                    user: "bob".into(),
                },
                vec![],
            ),
            (ServerMsg::Pong { id: None }, vec![]),
            (ServerMsg::Heartbeat, vec![]),
        ];
        for (msg, want) in cases {
            assert_eq!(bodies(&mut r, msg.clone()), want, "{msg:?}");
        }
    }

    /// A `message` of `lobby` at `sent_at` 5, with what a test sets.
    fn said(seq: u64, from: &str, text: &str) -> ServerMsg {
        ServerMsg::Message {
            room: "lobby".into(),
            seq,
            from: from.into(),
            text: text.into(),
            sent_at: 5,
            attachments: Vec::new(),
            reply_to: None,
            mentions: Vec::new(),
            event: None,
        }
    }

    /// `msg` said in `room` instead.
    fn in_room(room: &str, mut msg: ServerMsg) -> ServerMsg {
        if let ServerMsg::Message { room: r, .. } | ServerMsg::History { room: r, .. } = &mut msg {
            *r = room.to_string();
        }
        msg
    }

    #[test]
    fn a_conversation_shows_the_other_person_to_each_side() {
        let frames = [
            in_room("@alice+bob", said(3, "bob", "psst")),
            in_room("@alice+bob", said(4, "alice", "hello")),
            event(
                in_room("@alice+bob", said(5, "bob", "")),
                Event::React {
                    target: 4,
                    emoji: "👍".into(),
                    on: true,
                },
            ),
            ServerMsg::Presence {
                room: "@alice+bob".into(),
                users: vec!["alice".into(), "bob".into()],
            },
            ServerMsg::Left {
                room: "@alice+bob".into(),
                users: vec!["bob".into()],
            },
            ServerMsg::LeaveOk {
                room: "@alice+bob".into(),
            },
        ];
        let mut alice = welcomed("alice");
        let mut bob = welcomed("Bob");
        let seen = |r: &mut Renderer| -> Vec<String> {
            frames.iter().flat_map(|f| bodies(r, f.clone())).collect()
        };
        assert_eq!(
            seen(&mut alice),
            [
                "[@bob] #3 <bob> psst",
                "[@bob] #4 <alice> hello",
                "[@bob] * bob reacted 👍 to #4",
                "[@bob] * online: alice, bob",
                "[@bob] * bob left",
                "[@bob] * you left @bob",
            ]
        );
        assert_eq!(
            seen(&mut bob)[..2],
            ["[@alice] #3 <bob> psst", "[@alice] #4 <alice> hello"]
        );
        // The line still belongs to the room, for views that sort by room.
        let line = &alice.render(&frames[0], 0)[0];
        assert_eq!(line.room.as_deref(), Some("@alice+bob"));
        assert_eq!(line.with.as_deref(), Some("bob"));
        // History reads the same.
        assert_eq!(
            bodies(&mut alice, in_room("@alice+bob", as_history(&frames[..2]))),
            ["[@bob] #3 <bob> psst", "[@bob] #4 <alice> hello"]
        );
        // Someone else's conversation (nobody joins one, but a search of a
        // bad server's could name it) and rooms keep their names.
        assert_eq!(alice.room_label("@bob+carol"), "@bob+carol");
        assert_eq!(alice.room_label("lobby"), "lobby");
        assert_eq!(
            alice
                .notice(0, Some("@alice+bob"), "you are talking in @bob now")
                .body(),
            "[@bob] * you are talking in @bob now"
        );
    }

    #[test]
    fn conversation_frames_name_the_other_person_as_they_spell_it() {
        let mut r = welcomed("alice");
        assert_eq!(
            bodies(
                &mut r,
                ServerMsg::Conversation {
                    room: "@alice+bob".into(),
                    with: "Bob".into(),
                }
            ),
            ["[@Bob] * conversation with Bob: /msg Bob TEXT answers"]
        );
        assert_eq!(
            bodies(&mut r, in_room("@alice+bob", said(1, "Bob", "hi"))),
            ["[@Bob] #1 <Bob> hi"]
        );
        assert_eq!(
            bodies(
                &mut r,
                ServerMsg::Conversations {
                    conversations: vec![]
                }
            ),
            Vec::<String>::new()
        );
        let listed = ServerMsg::Conversations {
            conversations: vec![
                ConversationInfo {
                    room: "@alice+carol".into(),
                    with: "Carol".into(),
                    online: true,
                    last_seq: 4,
                },
                ConversationInfo {
                    room: "@alice+bob".into(),
                    with: "Bob".into(),
                    online: false,
                    last_seq: 1,
                },
            ],
        };
        assert_eq!(
            bodies(&mut r, listed),
            ["* your conversations: Carol (online), Bob"]
        );
        assert_eq!(r.room_label("@alice+carol"), "@Carol");
        // A conversation shown before an own rename keeps its label; one
        // left is forgotten.
        bodies(&mut r, in_room("@alice+dave", said(1, "dave", "yo")));
        bodies(
            &mut r,
            ServerMsg::Renamed {
                room: None,
                from: "alice".into(),
                to: "al".into(),
                upload_token: None,
            },
        );
        assert_eq!(
            bodies(
                &mut r,
                ServerMsg::LeaveOk {
                    room: "@alice+dave".into()
                }
            ),
            ["[@dave] * you left @dave"]
        );
        assert_eq!(r.room_label("@alice+dave"), "@alice+dave");
        // A search hit in a conversation is shown by its other person too.
        let found = ServerMsg::SearchResults {
            query: "hi".into(),
            results: vec![SearchHit {
                room: "@alice+bob".into(),
                seq: 1,
                from: "Bob".into(),
                text: "hi".into(),
                sent_at: 1,
                attachments: vec![],
            }],
            next: None,
        };
        assert_eq!(
            bodies(&mut r, found),
            ["* 1 result for \"hi\", newest first", "[@Bob] <Bob> hi"]
        );
    }

    /// `msg` with `event` set.
    fn event(mut msg: ServerMsg, kind: Event) -> ServerMsg {
        if let ServerMsg::Message { event, .. } = &mut msg {
            *event = Some(kind);
        }
        msg
    }

    /// The same frames as `history` carries them.
    fn as_history(frames: &[ServerMsg]) -> ServerMsg {
        let messages = frames
            .iter()
            .map(|frame| match frame.clone() {
                ServerMsg::Message {
                    seq,
                    from,
                    text,
                    sent_at,
                    attachments,
                    reply_to,
                    mentions,
                    event,
                    ..
                } => HistoryMessage {
                    seq,
                    from,
                    text,
                    sent_at,
                    attachments,
                    reply_to,
                    mentions,
                    event,
                },
                other => panic!("{other:?}"),
            })
            .collect();
        ServerMsg::History {
            room: "lobby".into(),
            messages,
            has_more: false,
            before: None,
            resync: false,
        }
    }

    #[test]
    fn edits_deletions_reactions_replies_and_mentions_read_as_lines() {
        let mut r = welcomed("alice");
        let mut reply = said(45, "bob", "yes, tomorrow");
        let mut mention = said(46, "bob", "@Alice look");
        let mut other_mention = said(47, "bob", "@carol look");
        let mut own_mention = said(48, "alice", "note to @alice");
        if let ServerMsg::Message { reply_to, .. } = &mut reply {
            *reply_to = Some(Quote::of(41, "alice", "are we on?\nor not"));
        }
        for (msg, who) in [
            (&mut mention, "alice"),
            (&mut other_mention, "carol"),
            (&mut own_mention, "alice"),
        ] {
            if let ServerMsg::Message { mentions, .. } = msg {
                *mentions = vec![who.into()];
            }
        }
        let frames = [
            said(42, "alice", "hi al"),
            event(said(43, "alice", "hi all"), Event::Edit { target: 42 }),
            reply,
            mention,
            other_mention,
            own_mention,
            event(said(49, "alice", ""), Event::Delete { target: 44 }),
            event(
                said(50, "bob", ""),
                Event::React {
                    target: 42,
                    emoji: "👍".into(),
                    on: true,
                },
            ),
            event(
                said(51, "bob", ""),
                Event::React {
                    target: 42,
                    emoji: "👍".into(),
                    on: false,
                },
            ),
        ];
        let want = [
            "[lobby] #42 <alice> hi al",
            "[lobby] * alice edited #42: hi all",
            "[lobby] #45 <bob> ↳ #41 alice: are we on?… | yes, tomorrow",
            "@ [lobby] #46 <bob> @Alice look",
            "[lobby] #47 <bob> @carol look",
            "[lobby] #48 <alice> note to @alice",
            "[lobby] * alice deleted #44",
            "[lobby] * bob reacted 👍 to #42",
            "[lobby] * bob took back 👍 from #42",
        ];
        let live: Vec<String> = frames
            .iter()
            .flat_map(|frame| bodies(&mut r, frame.clone()))
            .collect();
        assert_eq!(live, want);
        let lines = r.render(&frames[1], 0);
        assert_eq!(lines[0].at_ms, 5, "an event keeps its own time");
        assert_eq!(lines[0].kind, Kind::Notice);
        // History replays the same lines, in the same order.
        assert_eq!(bodies(&mut r, as_history(&frames)), want);
    }

    #[test]
    fn a_deleted_message_in_history_is_a_tombstone() {
        let mut r = welcomed("alice");
        assert_eq!(
            bodies(&mut r, as_history(&[said(43, "bob", "")])),
            ["[lobby] #43 <bob> (deleted)"]
        );
    }

    #[test]
    fn a_quote_stays_on_one_row_and_on_the_first_line() {
        let mut r = welcomed("alice");
        let mut msg = said(45, "bob", "look\x1b[2J");
        if let ServerMsg::Message {
            reply_to,
            attachments,
            ..
        } = &mut msg
        {
            // What a server sends is not trusted to be one clean line.
            *reply_to = Some(Quote {
                seq: 41,
                from: "eve".into(),
                text: "a\x1b[2J\r\n00:00:00 [lobby] #1 <carol> fake\u{9b}".into(),
            });
            *attachments = vec![cat()];
        }
        let lines = r.render(&msg, 0);
        let terminal: Vec<String> = lines.iter().map(|l| l.to_terminal("00:00:00")).collect();
        assert_eq!(
            terminal,
            [
                "00:00:00 [lobby] #45 <bob> ↳ #41 eve: a\u{FFFD}[2J\u{FFFD}\u{FFFD}00:00:00 \
                 [lobby] #1 <carol> fake\u{FFFD} | look\u{FFFD}[2J",
                "00:00:00 [lobby] #45 <bob> image: cat.png (47.1 KiB, image/png, 640x480) \
                 /api/files/q3Yc0Jw1",
            ]
        );
        // A quote of a message that had only files.
        let quote = Quote::of(3, "bob", "");
        assert_eq!(quote_text(&quote), "↳ #3 bob | ");
    }

    #[test]
    fn an_edit_that_breaks_lines_continues_indented_like_a_message() {
        let mut r = welcomed("alice");
        let edit = event(said(9, "bob", "one\ntwo\x1b"), Event::Edit { target: 8 });
        let lines = r.render(&edit, 0);
        assert_eq!(
            lines[0].to_terminal("00:00:00"),
            "00:00:00 [lobby] * bob edited #8: one\n         two\u{FFFD}"
        );
        let react = event(
            said(10, "bob", ""),
            Event::React {
                target: 8,
                emoji: "👍\n00:00:00 fake".into(),
                on: true,
            },
        );
        assert!(!r.render(&react, 0)[0].to_terminal("--").contains('\n'));
    }

    #[test]
    fn search_lines_belong_to_no_room_so_every_view_shows_them() {
        let mut r = welcomed("alice");
        let hit = SearchHit {
            room: "kitchen".into(),
            seq: 2,
            from: "bob".into(),
            text: "lunch".into(),
            sent_at: 5_000,
            attachments: vec![cat()],
        };
        let msg = ServerMsg::SearchResults {
            query: "lunch".into(),
            results: vec![hit],
            next: None,
        };
        let lines = r.render(&msg, 9_000);
        assert_eq!(lines.len(), 3, "head, text, file: {lines:?}");
        assert!(lines.iter().all(|l| l.room.is_none()));
        assert_eq!(lines[0].at_ms, 9_000);
        assert!(
            lines[1..].iter().all(|l| l.at_ms == 5_000),
            "when it was said"
        );
        assert!(lines[2]
            .body()
            .starts_with("[kitchen] <bob> image: cat.png"));
    }

    #[test]
    fn an_own_rename_changes_who_me_is() {
        let mut r = welcomed("alice");
        assert_eq!(
            bodies(
                &mut r,
                ServerMsg::Renamed {
                    room: None,
                    from: "alice".into(),
                    to: "al".into(),
                    upload_token: None,
                }
            ),
            ["* you are al now"]
        );
        assert_eq!(r.me(), Some("al"));
        let lines = r.render(&in_room("@al+bob", said(9, "al", "x")), 0);
        assert_eq!(lines[0].at_ms, 5, "a message keeps its own time");
        assert_eq!(lines[0].body(), "[@bob] #9 <al> x");
    }

    #[test]
    fn terminal_lines_are_timestamped_and_defanged() {
        let line = Line {
            at_ms: 3_723_000,
            room: Some("lobby".into()),
            with: None,
            kind: Kind::Message {
                from: "bob".into(),
                seq: 7,
                mention: false,
                quote: None,
            },
            text: "hi\x1b[2J\r\nfake\tline\rover\u{9b}".into(),
        };
        assert_eq!(utc_clock(line.at_ms), "01:02:03");
        assert_eq!(
            line.to_terminal(&utc_clock(line.at_ms)),
            "01:02:03 [lobby] #7 <bob> hi\u{FFFD}[2J\n         fake\tline\u{FFFD}over\u{FFFD}"
        );
    }

    #[test]
    fn a_lone_carriage_return_shows_as_a_replacement_character() {
        // Dropping it (as the gateway once did) hides that the sender tried
        // to move the cursor; printing it lets them overwrite the line.
        let line = Line::notice(0, None, "a\rb\r");
        assert_eq!(
            line.to_terminal("00:00:00"),
            "00:00:00 * a\u{FFFD}b\u{FFFD}"
        );
        assert_eq!(
            Line::notice(0, None, "a\r\nb").to_terminal("--"),
            "-- * a\n   b"
        );
    }

    #[test]
    fn defang_keeps_one_row() {
        assert_eq!(defang("a\nb\tc\x1b"), "a\u{FFFD}b\tc\u{FFFD}");
    }

    fn cat() -> Attachment {
        Attachment {
            id: "q3Yc0Jw1".into(),
            name: "cat.png".into(),
            size: 48_213,
            mime: "image/png".into(),
            width: Some(640),
            height: Some(480),
        }
    }

    fn notes() -> Attachment {
        Attachment {
            id: "n0tes".into(),
            name: "notes\x1b[2J\nfake.txt".into(),
            size: 512,
            mime: "application/octet-stream".into(),
            width: None,
            height: None,
        }
    }

    #[test]
    fn attachments_read_as_lines_with_absolute_links() {
        let mut r = welcomed("alice");
        r.set_http_base("http://127.0.0.1:8080/");
        let msg = ServerMsg::Message {
            event: None,
            mentions: Vec::new(),
            reply_to: None,
            room: "lobby".into(),
            seq: 1,
            from: "bob".into(),
            text: "look".into(),
            sent_at: 7,
            attachments: vec![cat(), notes()],
        };
        let lines = r.render(&msg, 0);
        assert!(lines.iter().all(|l| l.at_ms == 7));
        assert_eq!(
            lines.iter().map(Line::body).collect::<Vec<_>>(),
            [
                "[lobby] #1 <bob> look",
                "[lobby] #1 <bob> image: cat.png (47.1 KiB, image/png, 640x480) \
                 http://127.0.0.1:8080/api/files/q3Yc0Jw1",
                // A name cannot clear the screen or start a line of its own.
                "[lobby] #1 <bob> file: notes\u{FFFD}[2J\u{FFFD}fake.txt (512 B, \
                 application/octet-stream) http://127.0.0.1:8080/api/files/n0tes",
            ]
        );
        assert!(!lines[2].to_terminal("00:00:00").contains('\n'));
    }

    #[test]
    fn an_empty_caption_leaves_just_the_files() {
        let mut r = welcomed("alice");
        let mut direct = in_room("@alice+bob", said(2, "alice", ""));
        if let ServerMsg::Message { attachments, .. } = &mut direct {
            *attachments = vec![cat()];
        }
        // No HTTP origin set: the link is relative.
        assert_eq!(
            bodies(&mut r, direct),
            ["[@bob] #2 <alice> image: cat.png (47.1 KiB, image/png, 640x480) /api/files/q3Yc0Jw1"]
        );
        let history = ServerMsg::History {
            room: "lobby".into(),
            messages: vec![HistoryMessage {
                event: None,
                mentions: Vec::new(),
                reply_to: None,
                seq: 3,
                from: "bob".into(),
                text: String::new(),
                sent_at: 1,
                attachments: vec![notes()],
            }],
            has_more: false,
            before: None,
            resync: false,
        };
        let lines = bodies(&mut r, history);
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].starts_with("[lobby] #3 <bob> file: notes"),
            "{lines:?}"
        );
    }

    #[test]
    fn a_guest_link_carries_the_upload_token_of_its_latest_name() {
        let mut r = Renderer::new();
        r.set_http_base("https://chat.example");
        r.render(
            &ServerMsg::Welcome {
                user: "alice".into(),
                protocol: 1,
                heartbeat_ms: 25_000,
                idle_timeout_ms: 60_000,
                server_time: 0,
                limits: Limits::default(),
                upload_token: Some("g1.17.4.YWxpY2U.m+/=".into()),
            },
            0,
        );
        assert_eq!(r.upload_token(), Some("g1.17.4.YWxpY2U.m+/="));
        assert_eq!(
            r.file_url(&cat()),
            "https://chat.example/api/files/q3Yc0Jw1?token=g1.17.4.YWxpY2U.m%2B%2F%3D"
        );
        r.render(
            &ServerMsg::Renamed {
                room: None,
                from: "alice".into(),
                to: "al".into(),
                upload_token: Some("g1.18.4.YWw.n".into()),
            },
            0,
        );
        assert_eq!(r.upload_token(), Some("g1.18.4.YWw.n"));
        r.render(
            &ServerMsg::Renamed {
                room: None,
                from: "al".into(),
                to: "alf".into(),
                upload_token: None,
            },
            0,
        );
        assert_eq!(r.upload_token(), None);
        assert_eq!(
            r.file_url(&cat()),
            "https://chat.example/api/files/q3Yc0Jw1"
        );
    }

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.0 KiB");
        assert_eq!(human_size(25 * 1024 * 1024), "25.0 MiB");
        assert_eq!(human_size(3 * 1024 * 1024 * 1024 + 1), "3.0 GiB");
    }
}
