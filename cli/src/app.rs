//! The client's state and its slash commands, without any I/O: who I am,
//! the rooms I am in and who is online in each, the current room, what was
//! said, and how connected we are. Both front ends (plain lines and the
//! TUI) feed it input lines and [`NetEvent`]s and show what it keeps.
//!
//! The commands are the TCP gateway's (`server/src/tcp.rs`): a line that
//! is not a command is said in the current room; `/join ROOM` joins and
//! switches to it; `/leave [ROOM]`, `/who [ROOM]`, `/rooms`,
//! `/msg USER TEXT`, `/rename NAME`, `/quit`, `/help`; `//TEXT` says `/TEXT`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use hubbub_protocol::{ClientMsg, ErrorCode, ServerMsg};

use crate::net::NetEvent;

/// Most entries kept for the message pane.
const MAX_LOG: usize = 5_000;

pub const HELP: &[&str] = &[
    "TEXT            say TEXT in the current room (//TEXT says /TEXT)",
    "/join ROOM      join ROOM (created if new) and make it the current room",
    "/leave [ROOM]   leave ROOM (default: the current room)",
    "/who [ROOM]     who is online in ROOM (default: the current room)",
    "/rooms          every room and how many are in it",
    "/msg USER TEXT  a direct message to USER",
    "/rename NAME    change your name",
    "/quit           leave (also Esc or Ctrl-C in the full-screen view)",
    "/help           this help; in the full-screen view Tab switches rooms, PgUp/PgDn scroll",
];

/// What kind of line an [`Entry`] is.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Message {
        from: String,
    },
    Direct {
        from: String,
        to: String,
    },
    /// Presence, connection state, answers: `* ...`.
    Notice,
    /// A refused request or a usage mistake: `! ...`.
    Error,
}

/// One line of the conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub room: Option<String>,
    pub kind: Kind,
    pub text: String,
}

/// The connection as the status line shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum Link {
    Connecting,
    Connected,
    Reconnecting { why: String, retry_in: Duration },
    Ended { why: String },
}

#[derive(Debug, Default)]
pub struct RoomView {
    pub users: BTreeSet<String>,
    /// Last `seq` shown: a message at or below it is a repeat (resume).
    pub last_seq: u64,
    /// Messages since the room was last the current one.
    pub unread: usize,
}

pub struct App {
    pub url: String,
    pub me: Option<String>,
    pub current: Option<String>,
    pub rooms: BTreeMap<String, RoomView>,
    /// Rooms asked to join and not answered yet.
    joining: BTreeSet<String>,
    /// The room to switch to once its join is answered.
    switch_to: Option<String>,
    pub log: VecDeque<Entry>,
    pub link: Link,
    /// Set when the connection ended for good: the front end exits.
    pub done: bool,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl App {
    /// A client that will join `rooms`, the first becoming current.
    pub fn new(url: &str, rooms: &[String]) -> App {
        App {
            url: url.to_string(),
            me: None,
            current: None,
            rooms: BTreeMap::new(),
            joining: rooms.iter().cloned().collect(),
            switch_to: rooms.first().cloned(),
            log: VecDeque::new(),
            link: Link::Connecting,
            done: false,
        }
    }

    fn push(
        &mut self,
        out: &mut Vec<Entry>,
        at_ms: u64,
        room: Option<&str>,
        kind: Kind,
        text: String,
    ) {
        let entry = Entry {
            at_ms,
            room: room.map(String::from),
            kind,
            text,
        };
        if self.log.len() >= MAX_LOG {
            self.log.pop_front();
        }
        self.log.push_back(entry.clone());
        out.push(entry);
    }

    fn notice(&mut self, out: &mut Vec<Entry>, room: Option<&str>, text: String) {
        self.push(out, now_ms(), room, Kind::Notice, text);
    }

    fn error(&mut self, out: &mut Vec<Entry>, text: String) {
        self.push(out, now_ms(), None, Kind::Error, text);
    }

    /// Applies what the connection reports; returns the new entries.
    pub fn on_net(&mut self, event: NetEvent) -> Vec<Entry> {
        let mut out = Vec::new();
        match event {
            NetEvent::Connecting { attempt } => {
                self.link = Link::Connecting;
                if attempt == 0 && self.log.is_empty() {
                    let text = format!("connecting to {}", self.url);
                    self.notice(&mut out, None, text);
                }
            }
            NetEvent::Connected => {
                self.link = Link::Connected;
                let text = format!("connected to {}", self.url);
                self.notice(&mut out, None, text);
                // Rejoins answer with fresh presence.
                let rooms: Vec<String> = self.rooms.keys().cloned().collect();
                self.joining.extend(rooms);
            }
            NetEvent::Disconnected { why, retry_in } => {
                let text = format!(
                    "disconnected: {why}; reconnecting in {:.1} s",
                    retry_in.as_secs_f64()
                );
                self.link = Link::Reconnecting { why, retry_in };
                for room in self.rooms.values_mut() {
                    room.users.clear();
                }
                self.notice(&mut out, None, text);
            }
            NetEvent::Ended { why } => {
                self.notice(&mut out, None, format!("disconnected: {why}"));
                self.link = Link::Ended { why };
                self.done = true;
            }
            NetEvent::Server(msg) => self.apply(msg, &mut out),
        }
        out
    }

    fn is_me(&self, name: &str) -> bool {
        self.me.as_deref() == Some(name)
    }

    fn apply(&mut self, msg: ServerMsg, out: &mut Vec<Entry>) {
        match msg {
            ServerMsg::Welcome { user, .. } => {
                self.notice(
                    out,
                    None,
                    format!("welcome, {user}! /help lists the commands"),
                );
                self.me = Some(user);
            }
            ServerMsg::Presence { room, users } => {
                let member = self.joining.remove(&room) || self.rooms.contains_key(&room);
                if member {
                    let view = self.rooms.entry(room.clone()).or_default();
                    view.users = users.iter().cloned().collect();
                    if let Some(me) = &self.me {
                        view.users.insert(me.clone());
                    }
                }
                let text = format!("online: {}", list(&users));
                self.notice(out, Some(&room), text);
                if member && (self.switch_to.as_ref() == Some(&room) || self.current.is_none()) {
                    self.switch_to = None;
                    self.switch(out, room);
                }
            }
            ServerMsg::Joined { room, users } => {
                if let Some(view) = self.rooms.get_mut(&room) {
                    view.users.extend(users.iter().cloned());
                }
                let others: Vec<String> = users.into_iter().filter(|u| !self.is_me(u)).collect();
                if !others.is_empty() {
                    self.notice(out, Some(&room), format!("{} joined", others.join(", ")));
                }
            }
            ServerMsg::LeaveOk { room } => {
                self.rooms.remove(&room);
                self.notice(out, Some(&room), format!("you left {room}"));
                if self.current.as_ref() == Some(&room) {
                    self.current = None;
                    match self.rooms.keys().next().cloned() {
                        Some(next) => self.switch(out, next),
                        None => self.notice(out, None, "you are in no room now: /join ROOM".into()),
                    }
                }
            }
            ServerMsg::Left { room, users } => {
                let others: Vec<String> = users.into_iter().filter(|u| !self.is_me(u)).collect();
                if let Some(view) = self.rooms.get_mut(&room) {
                    for user in &others {
                        view.users.remove(user);
                    }
                }
                if !others.is_empty() {
                    self.notice(out, Some(&room), format!("{} left", others.join(", ")));
                }
            }
            ServerMsg::Message {
                room,
                seq,
                from,
                text,
                sent_at,
            } => self.message(out, room, seq, from, text, sent_at),
            ServerMsg::History {
                room,
                messages,
                resync,
                ..
            } => {
                if resync {
                    if let Some(view) = self.rooms.get_mut(&room) {
                        view.last_seq = 0;
                    }
                    self.notice(
                        out,
                        Some(&room),
                        "missed too much: recent history follows".into(),
                    );
                }
                for m in messages {
                    self.message(out, room.clone(), m.seq, m.from, m.text, m.sent_at);
                }
            }
            ServerMsg::Direct {
                from,
                to,
                text,
                sent_at,
            } => self.push(out, sent_at, None, Kind::Direct { from, to }, text),
            ServerMsg::Renamed {
                room: Some(room),
                from,
                to,
            } => {
                if let Some(view) = self.rooms.get_mut(&room) {
                    view.users.remove(&from);
                    view.users.insert(to.clone());
                }
                self.notice(out, Some(&room), format!("{from} is now {to}"));
            }
            ServerMsg::Renamed {
                room: None,
                from,
                to,
            } => {
                for view in self.rooms.values_mut() {
                    if view.users.remove(&from) {
                        view.users.insert(to.clone());
                    }
                }
                self.notice(out, None, format!("you are {to} now"));
                self.me = Some(to);
            }
            ServerMsg::Rooms { rooms } => {
                let text = if rooms.is_empty() {
                    "no rooms".to_string()
                } else {
                    let rooms: Vec<String> = rooms
                        .iter()
                        .map(|r| format!("{} ({})", r.room, r.members))
                        .collect();
                    format!("rooms: {}", rooms.join(", "))
                };
                self.notice(out, None, text);
            }
            ServerMsg::Error {
                code,
                message,
                room,
                ..
            } => {
                if let Some(room) = &room {
                    if matches!(
                        code,
                        ErrorCode::InvalidRoom | ErrorCode::TooManyRooms | ErrorCode::Unavailable
                    ) && self.joining.remove(room)
                        && self.switch_to.as_ref() == Some(room)
                    {
                        self.switch_to = None;
                    }
                }
                self.error(out, format!("{message} ({code})"));
                if self.me.is_none()
                    && matches!(code, ErrorCode::NameTaken | ErrorCode::InvalidName)
                {
                    self.notice(out, None, "type another name".into());
                }
            }
            // Acks, typing, pong and heartbeat change nothing on screen.
            _ => {}
        }
    }

    fn message(
        &mut self,
        out: &mut Vec<Entry>,
        room: String,
        seq: u64,
        from: String,
        text: String,
        at: u64,
    ) {
        let current = self.current.as_ref() == Some(&room);
        if let Some(view) = self.rooms.get_mut(&room) {
            if seq <= view.last_seq {
                return; // seen before this reconnect
            }
            view.last_seq = seq;
            if !current {
                view.unread += 1;
            }
        }
        self.push(out, at, Some(&room), Kind::Message { from }, text);
    }

    fn switch(&mut self, out: &mut Vec<Entry>, room: String) {
        if let Some(view) = self.rooms.get_mut(&room) {
            view.unread = 0;
        }
        self.notice(out, Some(&room), format!("you are talking in {room} now"));
        self.current = Some(room);
    }

    /// Makes the next joined room current (Tab in the TUI).
    pub fn next_room(&mut self) {
        let next = match &self.current {
            Some(current) => self
                .rooms
                .range::<String, _>((
                    std::ops::Bound::Excluded(current),
                    std::ops::Bound::Unbounded,
                ))
                .next()
                .or_else(|| self.rooms.iter().next())
                .map(|(room, _)| room.clone()),
            None => self.rooms.keys().next().cloned(),
        };
        if let Some(room) = next {
            if let Some(view) = self.rooms.get_mut(&room) {
                view.unread = 0;
            }
            self.current = Some(room);
        }
    }

    /// Handles one typed line; returns the requests to send and new entries.
    pub fn on_input(&mut self, line: &str) -> (Vec<ClientMsg>, Vec<Entry>) {
        let mut out = Vec::new();
        let mut requests = Vec::new();
        let line: String = line
            .chars()
            .filter(|&c| c == '\t' || !c.is_control())
            .collect();
        if line.trim().is_empty() {
            return (requests, out);
        }
        if self.me.is_none() && !line.starts_with('/') {
            requests.push(ClientMsg::Hello {
                name: line.trim().to_string(),
            });
            return (requests, out);
        }
        let Some(command) = line.strip_prefix('/') else {
            self.say(&mut requests, &mut out, line.clone());
            return (requests, out);
        };
        if command.starts_with('/') {
            self.say(&mut requests, &mut out, command.to_string());
            return (requests, out);
        }
        let (word, rest) = split_word(command);
        let arg = split_word(rest).0.trim_start_matches('#').to_string();
        let room_or_current = (!arg.is_empty())
            .then(|| arg.clone())
            .or_else(|| self.current.clone());
        match word.to_ascii_lowercase().as_str() {
            "join" | "j" if arg.is_empty() => self.error(&mut out, "usage: /join ROOM".into()),
            "join" | "j" => {
                if self.rooms.contains_key(&arg) {
                    self.switch(&mut out, arg);
                } else {
                    self.joining.insert(arg.clone());
                    self.switch_to = Some(arg.clone());
                    requests.push(ClientMsg::Join {
                        room: arg,
                        since: None,
                    });
                }
            }
            "leave" | "part" => match room_or_current {
                Some(room) => requests.push(ClientMsg::Leave { room }),
                None => self.error(&mut out, "usage: /leave ROOM".into()),
            },
            "who" => match room_or_current {
                Some(room) => requests.push(ClientMsg::Who { room }),
                None => self.error(&mut out, "usage: /who ROOM".into()),
            },
            "rooms" | "list" => requests.push(ClientMsg::Rooms),
            "msg" | "m" => match split_word(rest) {
                (to, text) if !to.is_empty() && !text.trim().is_empty() => {
                    requests.push(ClientMsg::Direct {
                        to: to.to_string(),
                        text: text.to_string(),
                        client_id: None,
                    })
                }
                _ => self.error(&mut out, "usage: /msg USER TEXT".into()),
            },
            "rename" | "nick" if arg.is_empty() => {
                self.error(&mut out, "usage: /rename NAME".into())
            }
            "rename" | "nick" => requests.push(ClientMsg::Rename { name: arg }),
            "quit" | "exit" => requests.push(ClientMsg::Quit),
            "help" | "?" => {
                self.notice(&mut out, None, "commands:".into());
                for line in HELP {
                    self.notice(&mut out, None, format!("  {line}"));
                }
            }
            _ => {
                let word: String = word.chars().take(32).collect();
                self.error(
                    &mut out,
                    format!("unknown command /{word}; /help lists them"),
                );
            }
        }
        (requests, out)
    }

    fn say(&mut self, requests: &mut Vec<ClientMsg>, out: &mut Vec<Entry>, text: String) {
        match &self.current {
            Some(room) => requests.push(ClientMsg::Send {
                room: room.clone(),
                text,
                client_id: None,
            }),
            None => self.error(out, "you are in no room: /join ROOM first".into()),
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

/// Splits off the first white-space separated word.
fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

/// `HH:MM:SS` in local time.
pub fn clock(at_ms: u64) -> String {
    use chrono::TimeZone;
    chrono::Local
        .timestamp_millis_opt(at_ms as i64)
        .single()
        .map(|t| t.format("%H:%M:%S").to_string())
        .unwrap_or_else(|| "--:--:--".to_string())
}

/// Replaces what could drive a terminal: control characters other than tab
/// become U+FFFD (a newline too; the caller splits lines first if it wants them).
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

impl Entry {
    /// The entry as plain text lines, without the timestamp: the TCP
    /// gateway's format (`[room] <alice> hi`, `* notice`, `! error`).
    pub fn body(&self, me: Option<&str>) -> String {
        let room = self
            .room
            .as_ref()
            .map(|r| format!("[{r}] "))
            .unwrap_or_default();
        match &self.kind {
            Kind::Message { from } => format!("{room}<{from}> {}", self.text),
            Kind::Direct { from, to } if me == Some(from.as_str()) => {
                format!("[dm to {to}] <{from}> {}", self.text)
            }
            Kind::Direct { from, .. } => format!("[dm] <{from}> {}", self.text),
            Kind::Notice => format!("{room}* {}", self.text),
            Kind::Error => format!("{room}! {}", self.text),
        }
    }

    /// `HH:MM:SS body`, one terminal line per line of text (continuations
    /// indented), control characters replaced.
    pub fn plain(&self, me: Option<&str>) -> String {
        let body = self.body(me);
        let mut lines = body.split('\n');
        let mut out = format!(
            "{} {}",
            clock(self.at_ms),
            defang(lines.next().unwrap_or(""))
        );
        for line in lines {
            out.push_str("\n         ");
            out.push_str(&defang(line));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> App {
        let mut app = App::new("ws://x/ws", &["lobby".to_string()]);
        app.on_net(NetEvent::Server(ServerMsg::Welcome {
            user: "alice".into(),
            protocol: 1,
            heartbeat_ms: 25_000,
            idle_timeout_ms: 60_000,
            server_time: 0,
            limits: Default::default(),
        }));
        app.on_net(NetEvent::Server(ServerMsg::Presence {
            room: "lobby".into(),
            users: vec!["bob".into()],
        }));
        app
    }

    #[test]
    fn joining_makes_the_room_current_and_tracks_presence() {
        let mut app = app();
        assert_eq!(app.current.as_deref(), Some("lobby"));
        let users = &app.rooms["lobby"].users;
        assert!(users.contains("alice") && users.contains("bob"));
        let (requests, _) = app.on_input("hello there");
        assert_eq!(
            requests,
            [ClientMsg::Send {
                room: "lobby".into(),
                text: "hello there".into(),
                client_id: None
            }]
        );
        app.on_net(NetEvent::Server(ServerMsg::Left {
            room: "lobby".into(),
            users: vec!["bob".into()],
        }));
        assert!(!app.rooms["lobby"].users.contains("bob"));
    }

    #[test]
    fn repeated_messages_after_a_resume_are_shown_once() {
        let mut app = app();
        let msg = |seq| {
            NetEvent::Server(ServerMsg::Message {
                room: "lobby".into(),
                seq,
                from: "bob".into(),
                text: format!("m{seq}"),
                sent_at: 0,
            })
        };
        assert_eq!(app.on_net(msg(1)).len(), 1);
        assert_eq!(app.on_net(msg(2)).len(), 1);
        assert!(app.on_net(msg(2)).is_empty());
    }

    #[test]
    fn commands_parse_like_the_gateway() {
        let mut app = app();
        assert_eq!(
            app.on_input("/msg bob hi there").0,
            [ClientMsg::Direct {
                to: "bob".into(),
                text: "hi there".into(),
                client_id: None
            }]
        );
        assert_eq!(
            app.on_input("/who").0,
            [ClientMsg::Who {
                room: "lobby".into()
            }]
        );
        assert_eq!(
            app.on_input("/join #kitchen").0,
            [ClientMsg::Join {
                room: "kitchen".into(),
                since: None
            }]
        );
        assert_eq!(
            app.on_input("//me").0,
            [ClientMsg::Send {
                room: "lobby".into(),
                text: "/me".into(),
                client_id: None
            }]
        );
        assert!(app.on_input("/dance").0.is_empty());
        assert!(app.on_input("/msg bob").0.is_empty());
    }

    #[test]
    fn plain_lines_are_defanged() {
        let entry = Entry {
            at_ms: 0,
            room: Some("lobby".into()),
            kind: Kind::Message { from: "bob".into() },
            text: "a\x1b[2J\nb".into(),
        };
        assert!(entry
            .plain(None)
            .ends_with("[lobby] <bob> a\u{FFFD}[2J\n         b"));
    }
}
