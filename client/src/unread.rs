//! Unread counts and read markers, per room, the same in every client.
//!
//! The server keeps how far a user has read each room (its *read marker*,
//! docs/protocol.md `read`) and tells every connection of the user when it
//! moves. [`Unread`] follows those markers and the messages this client
//! hears of, and answers what a room list and a tab title show: how many
//! messages past the marker were said by someone else. Room `seq`s have no
//! gaps, so the count does not need the messages themselves: it is the
//! distance from the marker to the last `seq` heard of, less what does not
//! count in between (this user's own messages, and edits, deletions and
//! reactions, which are `seq`s too). Messages that mention this user are
//! counted apart as well ([`Unread::mentions`]). What the user has seen
//! goes back with [`Unread::seen`], which makes the `read` request to send.

use hubbub_protocol::{ClientMsg, ServerMsg};

/// One room's marker and what was heard past it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Marker {
    room: String,
    /// Every message up to this `seq` is read (`None`: the server has not
    /// said yet, and nothing was seen: nothing counts as unread).
    read: Option<u64>,
    /// The highest `seq` heard of in the room.
    last: u64,
    /// `seq`s past `read` that are never unread: this user's own messages
    /// and events (edits, deletions, reactions).
    quiet: Vec<u64>,
    /// `seq`s past `read` of others' messages that mention this user.
    mentions: Vec<u64>,
}

impl Marker {
    fn unread(&self) -> u64 {
        let Some(read) = self.read else { return 0 };
        let quiet = self.quiet.iter().filter(|&&s| s > read).count() as u64;
        self.last.saturating_sub(read).saturating_sub(quiet)
    }

    fn mentions(&self) -> u64 {
        let Some(read) = self.read else { return 0 };
        self.mentions.iter().filter(|&&s| s > read).count() as u64
    }

    fn move_to(&mut self, seq: u64) {
        let read = self.read.map_or(seq, |r| r.max(seq));
        self.read = Some(read);
        self.quiet.retain(|&s| s > read);
        self.mentions.retain(|&s| s > read);
    }
}

/// The read markers and unread counts of the rooms a client is in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unread {
    /// This user's name, to tell its own messages (from `welcome`).
    me: Option<String>,
    rooms: Vec<Marker>,
}

impl Unread {
    pub fn new() -> Unread {
        Unread::default()
    }

    fn marker(&mut self, room: &str) -> &mut Marker {
        let at = match self.rooms.iter().position(|m| m.room == room) {
            Some(at) => at,
            None => {
                self.rooms.push(Marker {
                    room: room.to_string(),
                    read: None,
                    last: 0,
                    quiet: Vec::new(),
                    mentions: Vec::new(),
                });
                self.rooms.len() - 1
            }
        };
        &mut self.rooms[at]
    }

    /// Heard of message `seq` of `room` from `from`; `event` if it is an
    /// edit, deletion or reaction, with the users it `mentions`.
    fn heard(&mut self, room: &str, seq: u64, from: &str, event: bool, mentions: &[String]) {
        let me = self.me.clone();
        let mine = me.as_deref() == Some(from);
        // The server spells a mention as the user's name is spelled, as
        // `welcome` does; folding ASCII case on top costs nothing, where
        // `names::name_key` (Unicode lower case) would bring the Unicode
        // case tables into the web app's bundle (~10 KB gzipped).
        let mentioned = !mine
            && !event
            && me.is_some_and(|me| mentions.iter().any(|m| m.eq_ignore_ascii_case(&me)));
        let marker = self.marker(room);
        marker.last = marker.last.max(seq);
        if marker.read.is_some_and(|r| seq <= r) {
            return;
        }
        if (mine || event) && !marker.quiet.contains(&seq) {
            marker.quiet.push(seq);
        }
        if mentioned && !marker.mentions.contains(&seq) {
            marker.mentions.push(seq);
        }
    }

    /// Learns from one server frame. Call it for every frame, once.
    pub fn observe(&mut self, msg: &ServerMsg) {
        match msg {
            ServerMsg::Welcome { user, .. } => self.me = Some(user.clone()),
            ServerMsg::Renamed { room: None, to, .. } => self.me = Some(to.clone()),
            ServerMsg::Message {
                room,
                seq,
                from,
                event,
                mentions,
                ..
            } => self.heard(room, *seq, from, event.is_some(), mentions),
            ServerMsg::History { room, messages, .. } => {
                for m in messages {
                    self.heard(room, m.seq, &m.from, m.event.is_some(), &m.mentions);
                }
            }
            ServerMsg::Read { room, seq } => self.marker(room).move_to(*seq),
            ServerMsg::LeaveOk { room } => self.rooms.retain(|m| m.room != *room),
            ServerMsg::Renamed { room: Some(_), .. }
            | ServerMsg::Presence { .. }
            | ServerMsg::Joined { .. }
            | ServerMsg::Left { .. }
            | ServerMsg::Ack { .. }
            | ServerMsg::Conversation { .. }
            | ServerMsg::Conversations { .. }
            | ServerMsg::Rooms { .. }
            | ServerMsg::Typing { .. }
            | ServerMsg::Pong { .. }
            | ServerMsg::Heartbeat
            | ServerMsg::Error { .. } => {}
            // Found messages are old news, of rooms maybe not joined: they
            // neither count nor read.
            ServerMsg::SearchResults { .. } => {}
        }
    }

    /// Messages past the marker in `room` said by someone else.
    pub fn unread(&self, room: &str) -> u64 {
        self.rooms
            .iter()
            .find(|m| m.room == room)
            .map_or(0, Marker::unread)
    }

    /// Unread messages in every room (for a tab title).
    pub fn total(&self) -> u64 {
        self.rooms.iter().map(Marker::unread).sum()
    }

    /// Unread messages in `room` that mention this user (counted in
    /// [`Unread::unread`] too).
    pub fn mentions(&self, room: &str) -> u64 {
        self.rooms
            .iter()
            .find(|m| m.room == room)
            .map_or(0, Marker::mentions)
    }

    /// Unread mentions in every room.
    pub fn total_mentions(&self) -> u64 {
        self.rooms.iter().map(Marker::mentions).sum()
    }

    /// The marker in `room`: where a "new messages" divider goes (after
    /// it), if the server or this client has set one.
    pub fn read(&self, room: &str) -> Option<u64> {
        self.rooms.iter().find(|m| m.room == room)?.read
    }

    /// The user has seen `room` up to `seq`: moves the marker there and
    /// returns the `read` to send, or `None` if it was there already.
    pub fn seen(&mut self, room: &str, seq: u64) -> Option<ClientMsg> {
        let marker = self.marker(room);
        if marker.read.is_some_and(|r| r >= seq) {
            return None;
        }
        marker.move_to(seq);
        Some(ClientMsg::Read {
            room: room.to_string(),
            seq,
        })
    }

    /// The `seq` that reading all of `room` moves the marker to (the last
    /// one heard of), or `None` if the marker is there already.
    pub fn read_to_end(&self, room: &str) -> Option<u64> {
        let marker = self.rooms.iter().find(|m| m.room == room)?;
        (marker.last > marker.read.unwrap_or(0)).then_some(marker.last)
    }

    /// The user has seen everything `room` has: [`Unread::seen`] of the
    /// last `seq` heard of.
    pub fn seen_all(&mut self, room: &str) -> Option<ClientMsg> {
        let last = self.read_to_end(room)?;
        self.seen(room, last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubbub_protocol::{Event, HistoryMessage, Limits};

    fn welcome(user: &str) -> ServerMsg {
        ServerMsg::Welcome {
            user: user.into(),
            protocol: 1,
            heartbeat_ms: 1,
            idle_timeout_ms: 1,
            server_time: 0,
            limits: Limits::default(),
            upload_token: None,
        }
    }

    fn message(seq: u64, from: &str) -> ServerMsg {
        ServerMsg::Message {
            event: None,
            mentions: Vec::new(),
            reply_to: None,
            room: "lobby".into(),
            seq,
            from: from.into(),
            text: "hi".into(),
            sent_at: 0,
            attachments: Vec::new(),
        }
    }

    fn event(seq: u64, from: &str, target: u64) -> ServerMsg {
        ServerMsg::Message {
            event: Some(Event::React {
                target,
                emoji: "👍".into(),
                on: true,
            }),
            mentions: Vec::new(),
            reply_to: None,
            room: "lobby".into(),
            seq,
            from: from.into(),
            text: String::new(),
            sent_at: 0,
            attachments: Vec::new(),
        }
    }

    fn mention(seq: u64, from: &str, who: &str) -> ServerMsg {
        ServerMsg::Message {
            event: None,
            mentions: vec![who.into()],
            reply_to: None,
            room: "lobby".into(),
            seq,
            from: from.into(),
            text: format!("@{who}"),
            sent_at: 0,
            attachments: Vec::new(),
        }
    }

    #[test]
    fn events_do_not_count_and_mentions_count_apart() {
        let mut unread = Unread::new();
        unread.observe(&welcome("Me"));
        unread.observe(&read(1));
        unread.observe(&message(2, "bob"));
        unread.observe(&event(3, "bob", 2));
        unread.observe(&mention(4, "bob", "me"));
        unread.observe(&mention(5, "bob", "carol"));
        unread.observe(&mention(6, "Me", "me"));
        assert_eq!(unread.unread("lobby"), 3, "2, 4 and 5");
        assert_eq!(
            unread.mentions("lobby"),
            1,
            "4 (ignoring case), not my own 6"
        );
        assert_eq!(unread.total_mentions(), 1);
        unread.observe(&read(4));
        assert_eq!((unread.unread("lobby"), unread.mentions("lobby")), (1, 0));
    }

    fn read(seq: u64) -> ServerMsg {
        ServerMsg::Read {
            room: "lobby".into(),
            seq,
        }
    }

    #[test]
    fn messages_past_the_marker_from_others_are_unread() {
        let mut unread = Unread::new();
        unread.observe(&welcome("me"));
        unread.observe(&ServerMsg::History {
            room: "lobby".into(),
            messages: (1..=3)
                .map(|seq| HistoryMessage {
                    event: None,
                    mentions: Vec::new(),
                    reply_to: None,
                    seq,
                    from: "bob".into(),
                    text: "x".into(),
                    sent_at: 0,
                    attachments: Vec::new(),
                })
                .collect(),
            has_more: false,
            before: None,
            resync: false,
        });
        assert_eq!(unread.unread("lobby"), 0, "no marker yet: nothing counted");
        unread.observe(&read(1));
        assert_eq!(unread.unread("lobby"), 2);
        unread.observe(&message(4, "me"));
        unread.observe(&message(5, "bob"));
        assert_eq!(unread.unread("lobby"), 3, "my own message is not unread");
        assert_eq!(unread.total(), 3);
        assert_eq!(unread.read("lobby"), Some(1));
        // Messages not loaded count too: seqs have no gaps.
        unread.observe(&message(9, "bob"));
        assert_eq!(unread.unread("lobby"), 7);
    }

    #[test]
    fn seeing_moves_the_marker_once_and_never_back() {
        let mut unread = Unread::new();
        unread.observe(&welcome("me"));
        unread.observe(&read(2));
        unread.observe(&message(3, "bob"));
        unread.observe(&message(4, "bob"));
        assert_eq!(
            unread.seen("lobby", 3),
            Some(ClientMsg::Read {
                room: "lobby".into(),
                seq: 3
            })
        );
        assert_eq!(unread.seen("lobby", 3), None, "said once");
        assert_eq!(unread.seen("lobby", 2), None, "never back");
        assert_eq!(unread.unread("lobby"), 1);
        // Another tab read further: the count follows.
        unread.observe(&read(4));
        assert_eq!(unread.unread("lobby"), 0);
        assert_eq!(unread.read_to_end("lobby"), None);
        assert_eq!(unread.seen_all("lobby"), None);
        unread.observe(&message(5, "bob"));
        assert_eq!(unread.read_to_end("lobby"), Some(5));
        assert!(unread.seen_all("lobby").is_some());
        // An older marker from a slower tab does not move it back.
        unread.observe(&read(3));
        assert_eq!(unread.read("lobby"), Some(5));
    }

    #[test]
    fn leaving_forgets_the_room() {
        let mut unread = Unread::new();
        unread.observe(&read(0));
        unread.observe(&message(1, "bob"));
        assert_eq!(unread.total(), 1);
        unread.observe(&ServerMsg::LeaveOk {
            room: "lobby".into(),
        });
        assert_eq!(unread.total(), 0);
        assert_eq!(unread.read("lobby"), None);
    }

    #[test]
    fn a_conversation_counts_like_a_room() {
        let in_conversation = |mut msg: ServerMsg| {
            if let ServerMsg::Message { room, .. } = &mut msg {
                *room = "@bob+me".into();
            }
            msg
        };
        let mut unread = Unread::new();
        unread.observe(&welcome("me"));
        // Its first join leaves it unread from the start (`read` 0).
        unread.observe(&ServerMsg::Read {
            room: "@bob+me".into(),
            seq: 0,
        });
        unread.observe(&in_conversation(message(1, "bob")));
        unread.observe(&in_conversation(message(2, "me")));
        unread.observe(&in_conversation(mention(3, "bob", "me")));
        assert_eq!(unread.unread("@bob+me"), 2, "1 and 3, not my own 2");
        assert_eq!(unread.mentions("@bob+me"), 1);
        assert_eq!(
            unread.seen_all("@bob+me"),
            Some(ClientMsg::Read {
                room: "@bob+me".into(),
                seq: 3
            })
        );
        assert_eq!(unread.unread("@bob+me"), 0);
    }
}
