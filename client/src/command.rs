//! The slash-command grammar shared by the terminal client and the TCP
//! gateway, and its help text.
//!
//! A line that is not a command is said in the current room; `//TEXT` says
//! `/TEXT`. Commands (case-insensitive, with short aliases):
//! `/join ROOM`, `/leave [ROOM]`, `/who [ROOM]`, `/rooms`, `/msg USER [TEXT]`,
//! `/reply [#SEQ] TEXT`, `/edit [#SEQ] TEXT`, `/delete [#SEQ]`,
//! `/react [#SEQ] EMOJI`, `/unreact [#SEQ] EMOJI`,
//! `/search [#ROOM] WORDS`, `/upload [@USER] PATH [TEXT]`, `/rename NAME`,
//! `/quit`, `/help`. A leading `#` on a room is allowed (for `/search`,
//! it is what marks the room); a `PATH` with spaces is written in double
//! quotes.
//!
//! A message of the current room is named by its handle `#SEQ`, its `seq`,
//! which every message line shows after the room (`[lobby] #42 <alice> hi`).
//! Without one, `/edit` and `/delete` act on the user's own last message
//! shown in the room, `/reply`, `/react` and `/unreact` on the last one by
//! someone else ([`Recent`]). A first word that is `#` and digits is the
//! handle; anything else is already the text. An emoji is checked with
//! [`emoji::validate_emoji`] before anything is sent.
//!
//! `/msg USER TEXT` says `TEXT` in the user's private conversation with
//! `USER` (docs/protocol.md, "Private conversations"), the room
//! [`conversation_with`] names (`@alice+bob`); `/msg USER` alone makes it
//! the current room. A client that has not joined it yet sends the `join`
//! first and the `send` right after (the server answers in order); if the
//! join is refused (`unknown_user`: nobody by that name), the `send`'s
//! `not_in_room` says nothing more and the client does not show it.
//! `/upload @USER PATH` sends the file to that conversation likewise.
//!
//! `/upload` reads a file on the user's own computer, so only a client
//! that runs there (`hubbub-chat`) can do it; [`Command::request`] refuses
//! it with [`CommandError::NeedsLocalFiles`], which the TCP gateway shows.
//!
//! [`parse`] only reads the line; what a command does to a client's state
//! (the current room, the pending ledger) is the client's business.
//! [`Command::request`] gives the protocol request for the simple cases.

use std::fmt;

use hubbub_protocol::{emoji, names, ClientMsg};

use crate::Recent;

/// Every command with what it does, in the order `/help` lists them.
pub const HELP: &[(&str, &str)] = &[
    ("TEXT", "say TEXT in the current room (//TEXT says /TEXT)"),
    (
        "/join ROOM",
        "join ROOM (created if new) and make it the current room",
    ),
    ("/leave [ROOM]", "leave ROOM (default: the current room)"),
    (
        "/who [ROOM]",
        "who is online in ROOM (default: the current room)",
    ),
    ("/rooms", "every room and how many are in it"),
    (
        "/msg USER [TEXT]",
        "say TEXT in your private conversation with USER (only the two of you \
         read it); without TEXT, make it the current room",
    ),
    (
        "/reply [#SEQ] TEXT",
        "answer message #SEQ of the current room, the number after the room on its \
         line (default: the last one by someone else)",
    ),
    (
        "/edit [#SEQ] TEXT",
        "change the text of your message #SEQ (default: your last one here)",
    ),
    (
        "/delete [#SEQ]",
        "delete your message #SEQ for everyone (default: your last one here)",
    ),
    (
        "/react [#SEQ] EMOJI",
        "react to message #SEQ with one emoji, e.g. 👍 ❤️ 😂 🎉 😮 😢 \
         (default: the last one by someone else)",
    ),
    (
        "/unreact [#SEQ] EMOJI",
        "take back your EMOJI reaction (default: from the last one by someone else)",
    ),
    (
        "/search [#ROOM] WORDS",
        "the newest stored room messages with every one of WORDS (only in ROOM with #ROOM)",
    ),
    (
        "/upload PATH [TEXT]",
        "send a file, TEXT its caption, to the current room \
         (/upload @USER PATH [TEXT]: to your conversation with USER); hubbub-chat only",
    ),
    ("/rename NAME", "change your name"),
    ("/quit", "leave"),
    ("/help", "this help"),
];

/// The help as aligned lines (`/join ROOM          join ROOM …`), without indent.
pub fn help_lines() -> impl Iterator<Item = String> {
    let width = HELP.iter().map(|(usage, _)| usage.len()).max().unwrap_or(0);
    HELP.iter()
        .map(move |(usage, does)| format!("{usage:<width$} {does}"))
}

/// One typed line, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Say this text in the current room (a plain line, or `//TEXT`).
    Say(String),
    /// `/join ROOM` (`/j`): join and make current.
    Join(String),
    /// `/leave [ROOM]` (`/part`): `None` means the current room.
    Leave(Option<String>),
    /// `/who [ROOM]`: `None` means the current room.
    Who(Option<String>),
    /// `/rooms` (`/list`).
    Rooms,
    /// `/msg USER [TEXT]` (`/m`): say `text` in the private conversation
    /// with `to` (its room: [`conversation_with`]); without text, make
    /// that conversation the current room.
    Msg { to: String, text: Option<String> },
    /// `/reply [#SEQ] TEXT` (`/re`): say `text` in the current room as an
    /// answer to message `to` (`None`: the last one by someone else).
    Reply { to: Option<u64>, text: String },
    /// `/edit [#SEQ] TEXT`: the user's message `seq` (`None`: their last
    /// one in the current room) now says `text`.
    Edit { seq: Option<u64>, text: String },
    /// `/delete [#SEQ]` (`/del`): delete the user's message `seq` (`None`:
    /// their last one in the current room).
    Delete(Option<u64>),
    /// `/react [#SEQ] EMOJI` (`on`) and `/unreact [#SEQ] EMOJI` (not `on`):
    /// put or take back `emoji` (checked to be one) on message `seq`
    /// (`None`: the last one by someone else in the current room).
    React {
        seq: Option<u64>,
        emoji: String,
        on: bool,
    },
    /// `/search [#ROOM] WORDS` (`/find`): stored room messages with every
    /// word, only in `room` if given.
    Search { room: Option<String>, words: String },
    /// `/upload [@USER] PATH [TEXT]` (`/up`): send the file at `path` (as typed,
    /// not resolved) with `caption` (may be empty) to the current room, or
    /// to the private conversation with `to`.
    Upload {
        to: Option<String>,
        path: String,
        caption: String,
    },
    /// `/rename NAME` (`/nick`).
    Rename(String),
    /// `/quit` (`/exit`).
    Quit,
    /// `/help` (`/?`).
    Help,
}

/// A line that is not a usable command; its `Display` is the sentence to
/// show (without the `! ` of an error line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// A known command without what it needs, e.g. `"/join ROOM"`.
    Usage(&'static str),
    /// `/WORD` is no command (the word cut to 32 characters).
    Unknown(String),
    /// Text to say, or a command that defaults to the current room, while
    /// there is no current room.
    NoRoom,
    /// `/upload` where no local file can be read (the TCP gateway).
    NeedsLocalFiles,
    /// `/msg` (or `/upload @USER`) to a name that cannot be a user, or to
    /// this user itself; the sentence says which.
    BadUser(String),
    /// `/msg` before the server gave this connection a name.
    NoName,
    /// `/react` or `/unreact` with something that is not one emoji; the
    /// reason is [`emoji::validate_emoji`]'s.
    BadEmoji(String),
    /// A message command without `#SEQ` where no message it could default
    /// to was shown in the current room: this user's own (`mine`, for
    /// `/edit` and `/delete`) or someone else's.
    NoMessage { mine: bool, usage: &'static str },
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::Usage(usage) => write!(f, "usage: {usage}"),
            CommandError::Unknown(word) => {
                write!(f, "unknown command /{word}; /help lists them")
            }
            CommandError::NoRoom => f.write_str("you are in no room: /join ROOM first"),
            CommandError::NeedsLocalFiles => f.write_str(
                "/upload sends a file from your own computer, which this connection \
                 cannot read: use hubbub-chat or the web app to send files",
            ),
            CommandError::BadUser(why) => f.write_str(why),
            CommandError::NoName => f.write_str("you have no name yet: type one first"),
            CommandError::BadEmoji(why) => write!(
                f,
                "{why}: react with one emoji, e.g. {}",
                emoji::QUICK.join(" ")
            ),
            CommandError::NoMessage { mine: true, usage } => write!(
                f,
                "no message of yours shown in this room yet: name one, {usage}"
            ),
            CommandError::NoMessage { mine: false, usage } => write!(
                f,
                "no message by someone else shown in this room yet: name one, {usage}"
            ),
        }
    }
}

impl std::error::Error for CommandError {}

const SEARCH_USAGE: CommandError = CommandError::Usage("/search [#ROOM] WORDS");
const REPLY_USAGE: &str = "/reply #SEQ TEXT";
const EDIT_USAGE: &str = "/edit #SEQ TEXT";
const DELETE_USAGE: &str = "/delete #SEQ";
const REACT_USAGE: &str = "/react #SEQ EMOJI";
const UNREACT_USAGE: &str = "/unreact #SEQ EMOJI";

/// Reads one typed line (already cleaned, see [`clean_line`]). `None` for a
/// blank line, which does nothing.
pub fn parse(line: &str) -> Option<Result<Command, CommandError>> {
    if line.trim().is_empty() {
        return None;
    }
    let Some(command) = line.strip_prefix('/') else {
        return Some(Ok(Command::Say(line.to_string())));
    };
    if command.starts_with('/') {
        return Some(Ok(Command::Say(command.to_string())));
    }
    let (word, rest) = split_word(command);
    let arg = split_word(rest).0.trim_start_matches('#');
    let room = (!arg.is_empty()).then(|| arg.to_string());
    Some(match word.to_ascii_lowercase().as_str() {
        "join" | "j" => room
            .map(Command::Join)
            .ok_or(CommandError::Usage("/join ROOM")),
        "leave" | "part" => Ok(Command::Leave(room)),
        "who" => Ok(Command::Who(room)),
        "rooms" | "list" => Ok(Command::Rooms),
        "msg" | "m" => match split_word(rest) {
            ("", _) => Err(CommandError::Usage("/msg USER [TEXT]")),
            (to, text) => Ok(Command::Msg {
                to: to.trim_start_matches('@').to_string(),
                text: (!text.trim().is_empty()).then(|| text.to_string()),
            }),
        },
        "search" | "find" => {
            let (room, words) = match rest.strip_prefix('#') {
                Some(after) => {
                    let (room, words) = split_word(after);
                    (Some(room.to_string()), words)
                }
                None => (None, rest),
            };
            match (room, words.trim_end()) {
                (Some(room), _) if room.is_empty() => Err(SEARCH_USAGE),
                (_, "") => Err(SEARCH_USAGE),
                (room, words) => Ok(Command::Search {
                    room,
                    words: words.to_string(),
                }),
            }
        }
        "reply" | "re" => match split_handle(rest) {
            Some((to, text)) if !text.trim().is_empty() => Ok(Command::Reply {
                to,
                text: text.to_string(),
            }),
            _ => Err(CommandError::Usage("/reply [#SEQ] TEXT")),
        },
        "edit" => match split_handle(rest) {
            Some((seq, text)) if !text.trim().is_empty() => Ok(Command::Edit {
                seq,
                text: text.to_string(),
            }),
            _ => Err(CommandError::Usage("/edit [#SEQ] TEXT")),
        },
        "delete" | "del" => match split_handle(rest) {
            Some((seq, "")) => Ok(Command::Delete(seq)),
            _ => Err(CommandError::Usage("/delete [#SEQ]")),
        },
        "react" => parse_react(rest, true),
        "unreact" => parse_react(rest, false),
        "upload" | "up" => parse_upload(rest),
        "rename" | "nick" => match split_word(rest).0 {
            "" => Err(CommandError::Usage("/rename NAME")),
            name => Ok(Command::Rename(name.to_string())),
        },
        "quit" | "exit" => Ok(Command::Quit),
        "help" | "?" => Ok(Command::Help),
        _ => Err(CommandError::Unknown(word.chars().take(32).collect())),
    })
}

/// The room of the private conversation between the user `me` and the user
/// named `to` (any case, a leading `@` allowed): what `/msg` and `/upload
/// @USER` say things in. Refused when `to` cannot be a name or is `me`.
pub fn conversation_with(me: &str, to: &str) -> Result<String, CommandError> {
    let to = to.trim_start_matches('@');
    names::validate_name(to).map_err(|why| CommandError::BadUser(format!("{to:?}: {why}")))?;
    if names::name_key(to) == names::name_key(me) {
        return Err(CommandError::BadUser(
            "that is you: /msg someone else".to_string(),
        ));
    }
    Ok(names::conversation(me, to))
}

impl Command {
    /// The protocol request for this command, with `me` this connection's
    /// name (once welcomed), `current` the current room and `recent` what a
    /// message command without `#SEQ` defaults to: `Ok(None)` for `/help`,
    /// which asks nothing of the server, and for `/msg USER` without text,
    /// which only makes the conversation current (the client's business).
    /// `/msg USER TEXT` is the `send` to the conversation; it goes after a
    /// `join` of it if the client has not joined it (see the module docs).
    /// Requests carry no `client_id`; a client with a pending ledger enters
    /// sends, edits, deletions and reactions there
    /// ([`crate::Pending::track`]), which gives them one.
    pub fn request(
        self,
        me: Option<&str>,
        current: Option<&str>,
        recent: &Recent,
    ) -> Result<Option<ClientMsg>, CommandError> {
        let or_current = |room: Option<String>, usage| {
            room.or_else(|| current.map(String::from))
                .ok_or(CommandError::Usage(usage))
        };
        // The current room, and the message a command acts on in it.
        let target = |seq: Option<u64>, mine: bool, usage: &'static str| {
            let room = current.ok_or(CommandError::NoRoom)?;
            let last = || match mine {
                true => recent.last_mine(room),
                false => recent.last_others(room),
            };
            match seq.or_else(last) {
                Some(seq) => Ok((room.to_string(), seq)),
                None => Err(CommandError::NoMessage { mine, usage }),
            }
        };
        Ok(Some(match self {
            Command::Say(text) => ClientMsg::Send {
                reply_to: None,
                room: current.ok_or(CommandError::NoRoom)?.to_string(),
                text,
                client_id: None,
                attachments: Vec::new(),
            },
            Command::Join(room) => ClientMsg::Join { room, since: None },
            Command::Leave(room) => ClientMsg::Leave {
                room: or_current(room, "/leave ROOM")?,
            },
            Command::Who(room) => ClientMsg::Who {
                room: or_current(room, "/who ROOM")?,
            },
            Command::Rooms => ClientMsg::Rooms,
            Command::Msg { to, text } => {
                let room = conversation_with(me.ok_or(CommandError::NoName)?, &to)?;
                let Some(text) = text else { return Ok(None) };
                ClientMsg::Send {
                    reply_to: None,
                    room,
                    text,
                    client_id: None,
                    attachments: Vec::new(),
                }
            }
            Command::Reply { to, text } => {
                let (room, to) = target(to, false, REPLY_USAGE)?;
                ClientMsg::Send {
                    room,
                    text,
                    client_id: None,
                    attachments: Vec::new(),
                    reply_to: Some(to),
                }
            }
            Command::Edit { seq, text } => {
                let (room, seq) = target(seq, true, EDIT_USAGE)?;
                ClientMsg::Edit {
                    room,
                    seq,
                    text,
                    client_id: None,
                }
            }
            Command::Delete(seq) => {
                let (room, seq) = target(seq, true, DELETE_USAGE)?;
                ClientMsg::Delete {
                    room,
                    seq,
                    client_id: None,
                }
            }
            Command::React { seq, emoji, on } => {
                let usage = if on { REACT_USAGE } else { UNREACT_USAGE };
                let (room, seq) = target(seq, false, usage)?;
                ClientMsg::React {
                    room,
                    seq,
                    emoji,
                    on,
                    client_id: None,
                }
            }
            Command::Search { room, words } => ClientMsg::Search {
                query: words,
                room,
                before: None,
                limit: None,
            },
            Command::Upload { .. } => return Err(CommandError::NeedsLocalFiles),
            Command::Rename(name) => ClientMsg::Rename { name },
            Command::Quit => ClientMsg::Quit,
            Command::Help => return Ok(None),
        }))
    }
}

/// `[#SEQ] REST`: the handle, if the first word is `#` and digits, and
/// what follows it; `None` for a handle that is no `seq` (`#0`, or past
/// the largest number).
fn split_handle(rest: &str) -> Option<(Option<u64>, &str)> {
    let (word, after) = split_word(rest);
    match word.strip_prefix('#') {
        Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            let seq = digits.parse().ok().filter(|&seq| seq > 0)?;
            Some((Some(seq), after))
        }
        _ => Some((None, rest)),
    }
}

/// The arguments of `/react` (`on`) and `/unreact`: `[#SEQ] EMOJI`.
fn parse_react(rest: &str, on: bool) -> Result<Command, CommandError> {
    let usage = CommandError::Usage(if on {
        "/react [#SEQ] EMOJI"
    } else {
        "/unreact [#SEQ] EMOJI"
    });
    let (seq, emoji) = split_handle(rest).ok_or(usage.clone())?;
    let emoji = emoji.trim_end();
    if emoji.is_empty() {
        return Err(usage);
    }
    emoji::validate_emoji(emoji).map_err(CommandError::BadEmoji)?;
    Ok(Command::React {
        seq,
        emoji: emoji.to_string(),
        on,
    })
}

/// The arguments of `/upload`: `[@USER] PATH [CAPTION]`, `PATH` in double
/// quotes if it holds spaces.
fn parse_upload(rest: &str) -> Result<Command, CommandError> {
    const USAGE: CommandError = CommandError::Usage("/upload [@USER] PATH [TEXT]");
    let (to, rest) = match rest.strip_prefix('@') {
        Some(after) => {
            let (to, rest) = split_word(after);
            if to.is_empty() {
                return Err(USAGE);
            }
            (Some(to.to_string()), rest)
        }
        None => (None, rest),
    };
    let (path, caption) = match rest.strip_prefix('"') {
        Some(quoted) => {
            let end = quoted.find('"').ok_or(USAGE)?;
            (&quoted[..end], quoted[end + 1..].trim_start())
        }
        None => split_word(rest),
    };
    if path.is_empty() {
        return Err(USAGE);
    }
    Ok(Command::Upload {
        to,
        path: path.to_string(),
        caption: caption.trim_end().to_string(),
    })
}

/// Typed input made safe to send: control characters other than tab are
/// dropped (a terminal may pass escape sequences of arrow keys and the like).
pub fn clean_line(line: &str) -> String {
    line.chars()
        .filter(|&c| c == '\t' || !c.is_control())
        .collect()
}

/// Splits off the first white-space separated word; the rest is trimmed at
/// its start.
fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubbub_protocol::ServerMsg;

    fn ok(line: &str) -> Command {
        parse(line).unwrap().unwrap()
    }

    fn err(line: &str) -> CommandError {
        parse(line).unwrap().unwrap_err()
    }

    #[test]
    fn text_and_escaped_slashes_are_said() {
        assert_eq!(parse("   "), None);
        assert_eq!(ok("hello there"), Command::Say("hello there".into()));
        assert_eq!(ok("//me waves"), Command::Say("/me waves".into()));
        assert_eq!(ok(" /join x"), Command::Say(" /join x".into()));
    }

    #[test]
    fn every_command_and_alias_parses() {
        assert_eq!(ok("/join #kitchen"), Command::Join("kitchen".into()));
        assert_eq!(ok("/J kitchen extra"), Command::Join("kitchen".into()));
        assert_eq!(ok("/leave"), Command::Leave(None));
        assert_eq!(ok("/part #x"), Command::Leave(Some("x".into())));
        assert_eq!(ok("/who"), Command::Who(None));
        assert_eq!(ok("/who lobby"), Command::Who(Some("lobby".into())));
        assert_eq!(ok("/rooms"), Command::Rooms);
        assert_eq!(ok("/list"), Command::Rooms);
        assert_eq!(
            ok("/msg bob  hi  there "),
            Command::Msg {
                to: "bob".into(),
                text: Some("hi  there ".into())
            }
        );
        assert_eq!(ok("/m bob x"), ok("/msg bob x"));
        assert_eq!(ok("/msg @bob x"), ok("/msg bob x"));
        assert_eq!(
            ok("/msg Bob  "),
            Command::Msg {
                to: "Bob".into(),
                text: None
            }
        );
        assert_eq!(
            ok("/upload ./cat.png  look at her "),
            Command::Upload {
                to: None,
                path: "./cat.png".into(),
                caption: "look at her".into()
            }
        );
        assert_eq!(
            ok("/up @bob \"my notes.pdf\""),
            Command::Upload {
                to: Some("bob".into()),
                path: "my notes.pdf".into(),
                caption: String::new()
            }
        );
        assert_eq!(
            ok("/search  Lunch \"tacos\" "),
            Command::Search {
                room: None,
                words: "Lunch \"tacos\"".into()
            }
        );
        assert_eq!(
            ok("/find #kitchen lunch"),
            Command::Search {
                room: Some("kitchen".into()),
                words: "lunch".into()
            }
        );
        assert_eq!(
            ok("/search #kitchen lunch").request(Some("alice"), None, &Recent::new()),
            Ok(Some(ClientMsg::Search {
                query: "lunch".into(),
                room: Some("kitchen".into()),
                before: None,
                limit: None,
            }))
        );
        assert_eq!(ok("/rename carol"), Command::Rename("carol".into()));
        assert_eq!(ok("/nick carol"), Command::Rename("carol".into()));
        assert_eq!(ok("/quit"), Command::Quit);
        assert_eq!(ok("/EXIT"), Command::Quit);
        assert_eq!(ok("/help"), Command::Help);
        assert_eq!(ok("/?"), Command::Help);
    }

    #[test]
    fn mistakes_say_what_is_wrong() {
        assert_eq!(err("/join"), CommandError::Usage("/join ROOM"));
        assert_eq!(err("/join #"), CommandError::Usage("/join ROOM"));
        assert_eq!(err("/msg"), CommandError::Usage("/msg USER [TEXT]"));
        assert_eq!(err("/msg   "), CommandError::Usage("/msg USER [TEXT]"));
        assert_eq!(err("/rename"), CommandError::Usage("/rename NAME"));
        let search = CommandError::Usage("/search [#ROOM] WORDS");
        assert_eq!(err("/search"), search);
        assert_eq!(err("/search   "), search);
        assert_eq!(err("/search #kitchen"), search);
        assert_eq!(err("/search # lunch"), search);
        let upload = CommandError::Usage("/upload [@USER] PATH [TEXT]");
        assert_eq!(err("/upload"), upload);
        assert_eq!(err("/upload @bob"), upload);
        assert_eq!(err("/upload @ x"), upload);
        assert_eq!(err("/upload \"unclosed"), upload);
        assert_eq!(
            err("/dance").to_string(),
            "unknown command /dance; /help lists them"
        );
        assert_eq!(
            err(&format!("/{}", "x".repeat(100))),
            CommandError::Unknown("x".repeat(32))
        );
    }

    #[test]
    fn requests_default_to_the_current_room() {
        let lobby = Some("lobby");
        assert_eq!(
            ok("hi").request(Some("alice"), lobby, &Recent::new()),
            Ok(Some(ClientMsg::Send {
                reply_to: None,
                room: "lobby".into(),
                text: "hi".into(),
                client_id: None,
                attachments: Vec::new(),
            }))
        );
        assert_eq!(
            ok("hi").request(Some("alice"), None, &Recent::new()),
            Err(CommandError::NoRoom)
        );
        assert_eq!(
            ok("/who").request(Some("alice"), lobby, &Recent::new()),
            Ok(Some(ClientMsg::Who {
                room: "lobby".into()
            }))
        );
        assert_eq!(
            ok("/leave").request(Some("alice"), None, &Recent::new()),
            Err(CommandError::Usage("/leave ROOM"))
        );
        assert_eq!(
            ok("/who")
                .request(Some("alice"), None, &Recent::new())
                .unwrap_err()
                .to_string(),
            "usage: /who ROOM"
        );
        assert_eq!(
            ok("/join kitchen").request(Some("alice"), None, &Recent::new()),
            Ok(Some(ClientMsg::Join {
                room: "kitchen".into(),
                since: None
            }))
        );
        assert_eq!(
            ok("/help").request(Some("alice"), lobby, &Recent::new()),
            Ok(None)
        );
        assert_eq!(
            ok("/upload x.png").request(Some("alice"), lobby, &Recent::new()),
            Err(CommandError::NeedsLocalFiles)
        );
        assert!(CommandError::NeedsLocalFiles
            .to_string()
            .contains("use hubbub-chat or the web app"));
        assert_eq!(
            ok("/quit").request(Some("alice"), None, &Recent::new()),
            Ok(Some(ClientMsg::Quit))
        );
    }

    fn recent() -> Recent {
        let mut recent = Recent::new();
        let message = |seq: u64, from: &str| ServerMsg::Message {
            room: "lobby".into(),
            seq,
            from: from.into(),
            text: "x".into(),
            sent_at: 0,
            attachments: Vec::new(),
            reply_to: None,
            mentions: Vec::new(),
            event: None,
        };
        recent.observe(&ServerMsg::Welcome {
            user: "alice".into(),
            protocol: 1,
            heartbeat_ms: 1,
            idle_timeout_ms: 1,
            server_time: 0,
            limits: Default::default(),
            upload_token: None,
        });
        recent.observe(&message(7, "alice"));
        recent.observe(&message(8, "bob"));
        recent.observe(&message(9, "alice"));
        recent
    }

    #[test]
    fn message_commands_take_a_handle_or_default_to_the_last_shown() {
        assert_eq!(
            ok("/edit #42  hi all "),
            Command::Edit {
                seq: Some(42),
                text: "hi all ".into()
            }
        );
        assert_eq!(
            ok("/edit hi"),
            Command::Edit {
                seq: None,
                text: "hi".into()
            }
        );
        // Only `#` and digits is a handle; anything else is the text.
        assert_eq!(
            ok("/edit #general is great"),
            Command::Edit {
                seq: None,
                text: "#general is great".into()
            }
        );
        assert_eq!(ok("/delete"), Command::Delete(None));
        assert_eq!(ok("/DEL #3 "), Command::Delete(Some(3)));
        assert_eq!(
            ok("/re #41 yes, tomorrow"),
            Command::Reply {
                to: Some(41),
                text: "yes, tomorrow".into()
            }
        );
        assert_eq!(
            ok("/react 👍"),
            Command::React {
                seq: None,
                emoji: "👍".into(),
                on: true
            }
        );
        assert_eq!(
            ok("/unreact #42 👩‍💻 "),
            Command::React {
                seq: Some(42),
                emoji: "👩‍💻".into(),
                on: false
            }
        );

        let recent = recent();
        let lobby = Some("lobby");
        assert_eq!(
            ok("/edit fixed").request(Some("alice"), lobby, &recent),
            Ok(Some(ClientMsg::Edit {
                room: "lobby".into(),
                seq: 9,
                text: "fixed".into(),
                client_id: None
            }))
        );
        assert_eq!(
            ok("/delete #7").request(Some("alice"), lobby, &recent),
            Ok(Some(ClientMsg::Delete {
                room: "lobby".into(),
                seq: 7,
                client_id: None
            }))
        );
        assert_eq!(
            ok("/react 🎉").request(Some("alice"), lobby, &recent),
            Ok(Some(ClientMsg::React {
                room: "lobby".into(),
                seq: 8,
                emoji: "🎉".into(),
                on: true,
                client_id: None
            }))
        );
        assert_eq!(
            ok("/reply sure").request(Some("alice"), lobby, &recent),
            Ok(Some(ClientMsg::Send {
                room: "lobby".into(),
                text: "sure".into(),
                client_id: None,
                attachments: Vec::new(),
                reply_to: Some(8)
            }))
        );
        assert_eq!(
            ok("/reply #7 me too").request(Some("alice"), lobby, &recent),
            Ok(Some(ClientMsg::Send {
                room: "lobby".into(),
                text: "me too".into(),
                client_id: None,
                attachments: Vec::new(),
                reply_to: Some(7)
            }))
        );
        // Nothing to default to: say so, and how to name one.
        let kitchen = Some("kitchen");
        assert_eq!(
            ok("/delete")
                .request(Some("alice"), kitchen, &recent)
                .unwrap_err()
                .to_string(),
            "no message of yours shown in this room yet: name one, /delete #SEQ"
        );
        assert_eq!(
            ok("/unreact 👍")
                .request(Some("alice"), kitchen, &recent)
                .unwrap_err()
                .to_string(),
            "no message by someone else shown in this room yet: name one, /unreact #SEQ EMOJI"
        );
        assert_eq!(
            ok("/edit #3 x").request(Some("alice"), None, &recent),
            Err(CommandError::NoRoom)
        );
    }

    #[test]
    fn message_command_mistakes_are_caught_before_sending() {
        assert_eq!(err("/edit"), CommandError::Usage("/edit [#SEQ] TEXT"));
        assert_eq!(err("/edit #42"), CommandError::Usage("/edit [#SEQ] TEXT"));
        assert_eq!(err("/edit #0 x"), CommandError::Usage("/edit [#SEQ] TEXT"));
        assert_eq!(
            err("/edit #99999999999999999999 x"),
            CommandError::Usage("/edit [#SEQ] TEXT")
        );
        assert_eq!(
            err("/reply #4  "),
            CommandError::Usage("/reply [#SEQ] TEXT")
        );
        assert_eq!(err("/delete 42"), CommandError::Usage("/delete [#SEQ]"));
        assert_eq!(err("/delete #4 x"), CommandError::Usage("/delete [#SEQ]"));
        assert_eq!(err("/react"), CommandError::Usage("/react [#SEQ] EMOJI"));
        assert_eq!(err("/react #4"), CommandError::Usage("/react [#SEQ] EMOJI"));
        assert_eq!(
            err("/unreact"),
            CommandError::Usage("/unreact [#SEQ] EMOJI")
        );
        for bad in [
            "/react ok",
            "/react 👍👍",
            "/react #4 👍 nice",
            "/unreact <b>",
        ] {
            assert!(matches!(err(bad), CommandError::BadEmoji(_)), "{bad}");
        }
        assert_eq!(
            err("/react :+1:").to_string(),
            "a reaction is one emoji: react with one emoji, e.g. 👍 ❤️ 😂 🎉 😮 😢"
        );
    }

    #[test]
    fn help_is_aligned_and_lists_every_command() {
        let lines: Vec<String> = help_lines().collect();
        assert_eq!(lines.len(), HELP.len());
        assert_eq!(
            lines[0],
            "TEXT                  say TEXT in the current room (//TEXT says /TEXT)"
        );
        assert!(lines
            .iter()
            .any(|l| l.starts_with("/msg USER [TEXT]      say TEXT in your private conversation")));
        for (usage, _) in HELP.iter().skip(1) {
            let command = usage.split(' ').next().unwrap();
            assert!(parse(command).is_some(), "{command} parses");
            assert!(
                !matches!(parse(command), Some(Err(CommandError::Unknown(_)))),
                "{command} is known"
            );
        }
    }

    #[test]
    fn control_characters_are_dropped_from_input() {
        assert_eq!(clean_line("a\x07b\tc\x1b[Ad\u{9b}"), "ab\tc[Ad");
    }

    #[test]
    fn msg_says_text_in_the_conversation_with_the_user() {
        let recent = Recent::new();
        let lobby = Some("lobby");
        assert_eq!(
            ok("/msg Bob psst").request(Some("alice"), lobby, &recent),
            Ok(Some(ClientMsg::Send {
                reply_to: None,
                room: "@alice+bob".into(),
                text: "psst".into(),
                client_id: None,
                attachments: Vec::new(),
            }))
        );
        // The same room from either side.
        assert_eq!(
            ok("/msg alice hi").request(Some("Bob"), None, &recent),
            Ok(Some(ClientMsg::Send {
                reply_to: None,
                room: "@alice+bob".into(),
                text: "hi".into(),
                client_id: None,
                attachments: Vec::new(),
            }))
        );
        // Without text: nothing to send; the client makes it current.
        assert_eq!(
            ok("/msg bob").request(Some("alice"), lobby, &recent),
            Ok(None)
        );
        assert_eq!(conversation_with("alice", "@Bob"), Ok("@alice+bob".into()));
        assert_eq!(
            ok("/msg ALICE hi")
                .request(Some("alice"), lobby, &recent)
                .unwrap_err()
                .to_string(),
            "that is you: /msg someone else"
        );
        assert!(matches!(
            ok("/msg b+ob hi").request(Some("alice"), lobby, &recent),
            Err(CommandError::BadUser(why)) if why.starts_with("\"b+ob\": name may hold")
        ));
        assert_eq!(
            ok("/msg bob hi").request(None, lobby, &recent),
            Err(CommandError::NoName)
        );
    }
}
