//! Server frames as text lines: what the TCP gateway writes to `nc` and what
//! the terminal client prints.
//!
//! [`Renderer::render`] turns one [`ServerMsg`] into zero or more [`Line`]s
//! (a `history` is many, an `ack` none). It remembers the user's own name,
//! so its own online notices are not echoed back and a direct message it
//! sent reads `[dm to bob]`. A [`Line`] becomes text with [`Line::body`]
//! (`[lobby] <alice> hi`, `* notice`, `! error`) or, timestamped and safe
//! for a bare terminal, with [`Line::to_terminal`].
//!
//! Safety (docs/protocol.md, "Raw TCP gateway"): control characters in what
//! others wrote become U+FFFD, so nobody can send terminal escape sequences;
//! a line break (LF or CRLF) continues on an indented line, so nobody can
//! fake a line from someone else. A lone CR would move the cursor back over
//! the start of the line: it too becomes U+FFFD.

use hubbub_protocol::ServerMsg;

/// What kind of line a [`Line`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Something said in a room.
    Message { from: String },
    /// A direct message; `outgoing` when this user sent it.
    Direct {
        from: String,
        to: String,
        outgoing: bool,
    },
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
    /// The room it belongs to; `None` for direct messages and answers about
    /// no room in particular.
    pub room: Option<String>,
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
            kind: Kind::Notice,
            text: text.into(),
        }
    }

    /// A `! ...` line.
    pub fn error(at_ms: u64, room: Option<&str>, text: impl Into<String>) -> Line {
        Line {
            at_ms,
            room: room.map(String::from),
            kind: Kind::Error,
            text: text.into(),
        }
    }

    /// The line as text, without timestamp and not yet made safe:
    /// `[lobby] <alice> hi`, `[dm] <bob> psst`, `[dm to bob] <alice> psst`,
    /// `[lobby] * bob joined`, `! text (code)`.
    pub fn body(&self) -> String {
        let room = self
            .room
            .as_ref()
            .map(|r| format!("[{r}] "))
            .unwrap_or_default();
        match &self.kind {
            Kind::Message { from } => format!("{room}<{from}> {}", self.text),
            Kind::Direct {
                from,
                to,
                outgoing: true,
            } => format!("[dm to {to}] <{from}> {}", self.text),
            Kind::Direct { from, .. } => format!("[dm] <{from}> {}", self.text),
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

/// Renders frames as lines; remembers who "me" is.
#[derive(Debug, Clone, Default)]
pub struct Renderer {
    me: Option<String>,
}

impl Renderer {
    pub fn new() -> Renderer {
        Renderer::default()
    }

    /// The user's own name, once welcomed (updated on its own rename).
    pub fn me(&self) -> Option<&str> {
        self.me.as_deref()
    }

    fn is_me(&self, name: &str) -> bool {
        self.me.as_deref() == Some(name)
    }

    /// The lines for one frame, `now_ms` being the time for lines that have
    /// no time of their own.
    pub fn render(&mut self, msg: &ServerMsg, now_ms: u64) -> Vec<Line> {
        match msg {
            ServerMsg::Welcome { user, .. } => {
                self.me = Some(user.clone());
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
            ServerMsg::LeaveOk { room } => {
                vec![Line::notice(now_ms, Some(room), format!("you left {room}"))]
            }
            ServerMsg::Message {
                room,
                from,
                text,
                sent_at,
                ..
            } => vec![Line {
                at_ms: *sent_at,
                room: Some(room.clone()),
                kind: Kind::Message { from: from.clone() },
                text: text.clone(),
            }],
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
                    .chain(messages.iter().map(|m| Line {
                        at_ms: m.sent_at,
                        room: Some(room.clone()),
                        kind: Kind::Message {
                            from: m.from.clone(),
                        },
                        text: m.text.clone(),
                    }))
                    .collect()
            }
            ServerMsg::Direct {
                from,
                to,
                text,
                sent_at,
                ..
            } => vec![Line {
                at_ms: *sent_at,
                room: None,
                kind: Kind::Direct {
                    from: from.clone(),
                    to: to.clone(),
                    outgoing: self.is_me(from),
                },
                text: text.clone(),
            }],
            ServerMsg::Renamed {
                room: Some(room),
                from,
                to,
            } => vec![Line::notice(
                now_ms,
                Some(room),
                format!("{from} is now {to}"),
            )],
            ServerMsg::Renamed { room: None, to, .. } => {
                self.me = Some(to.clone());
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
            ServerMsg::Error { code, message, .. } => {
                vec![Line::error(now_ms, None, format!("{message} ({code})"))]
            }
            // The message itself is the news; typing, pong and heartbeat
            // have nothing to say in a line-based view.
            ServerMsg::Ack { .. }
            | ServerMsg::Typing { .. }
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
    use hubbub_protocol::{ErrorCode, HistoryMessage, Limits, RoomInfo};

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
                    room: room(),
                    seq: 1,
                    from: "bob".into(),
                    text: "hi".into(),
                    sent_at: 5,
                    attachments: Vec::new(),
                },
                vec!["[lobby] <bob> hi"],
            ),
            (
                ServerMsg::History {
                    room: room(),
                    messages: vec![
                        HistoryMessage {
                            seq: 1,
                            from: "bob".into(),
                            text: "one".into(),
                            sent_at: 1,
                            attachments: Vec::new(),
                        },
                        HistoryMessage {
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
                    "[lobby] <bob> one",
                    "[lobby] <alice> two",
                ],
            ),
            (
                ServerMsg::Direct {
                    from: "bob".into(),
                    to: "alice".into(),
                    text: "psst".into(),
                    sent_at: 1,
                    attachments: Vec::new(),
                },
                vec!["[dm] <bob> psst"],
            ),
            (
                ServerMsg::Direct {
                    from: "alice".into(),
                    to: "bob".into(),
                    text: "psst".into(),
                    sent_at: 1,
                    attachments: Vec::new(),
                },
                vec!["[dm to bob] <alice> psst"],
            ),
            (
                ServerMsg::Renamed {
                    room: Some(room()),
                    from: "bob".into(),
                    to: "bobby".into(),
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

    #[test]
    fn an_own_rename_changes_who_me_is() {
        let mut r = welcomed("alice");
        assert_eq!(
            bodies(
                &mut r,
                ServerMsg::Renamed {
                    room: None,
                    from: "alice".into(),
                    to: "al".into()
                }
            ),
            ["* you are al now"]
        );
        assert_eq!(r.me(), Some("al"));
        let lines = r.render(
            &ServerMsg::Direct {
                from: "al".into(),
                to: "bob".into(),
                text: "x".into(),
                sent_at: 9,
                attachments: Vec::new(),
            },
            0,
        );
        assert_eq!(lines[0].at_ms, 9, "a message keeps its own time");
        assert_eq!(lines[0].body(), "[dm to bob] <al> x");
    }

    #[test]
    fn terminal_lines_are_timestamped_and_defanged() {
        let line = Line {
            at_ms: 3_723_000,
            room: Some("lobby".into()),
            kind: Kind::Message { from: "bob".into() },
            text: "hi\x1b[2J\r\nfake\tline\rover\u{9b}".into(),
        };
        assert_eq!(utc_clock(line.at_ms), "01:02:03");
        assert_eq!(
            line.to_terminal(&utc_clock(line.at_ms)),
            "01:02:03 [lobby] <bob> hi\u{FFFD}[2J\n         fake\tline\u{FFFD}over\u{FFFD}"
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
}
