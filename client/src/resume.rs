//! The resume tracker: what a client needs to pick up where the last
//! connection stopped (docs/protocol.md, "Resume after a reconnect").
//!
//! It keeps the rooms to be in, in the order they were joined, and the last
//! `seq` the client has of each. After every `welcome`,
//! [`ResumeTracker::rejoin`] gives a `join` per room with `since` set to
//! that `seq`; the server answers with exactly the messages after it. The
//! tracker learns from every frame ([`ResumeTracker::observe`]): messages
//! and history move a room's `seq` forward, a `history` with `resync` sets
//! it anew, a `leave_ok` or a refused join forgets the room.
//!
//! Private conversations (docs/protocol.md, "Private conversations") are
//! rooms to the tracker too (named `@alice+bob`), rejoined with `since`
//! like any room. What the tracker adds for them is *finding* them: after
//! `welcome` the client asks `conversations` ([`crate::resume_frames`]
//! does), and every conversation that answer lists, and every one a
//! `conversation` frame announces (someone spoke in one this connection has
//! not joined, or an `open` answer), is joined if the tracker does not
//! have it yet. [`ResumeTracker::joins_for`] gives those `join`s. So a
//! client's whole use of the tracker is, for every server frame, once:
//!
//! ```
//! # use hubbub_client::ResumeTracker;
//! # use hubbub_protocol::{ClientMsg, ServerMsg};
//! # let mut tracker = ResumeTracker::new();
//! # let msg = ServerMsg::Conversation { room: "@alice+bob".into(), with: "bob".into() };
//! # let mut write = |_frame: ClientMsg| {};
//! tracker.observe(&msg);
//! for join in tracker.joins_for(&msg) {
//!     write(join);
//! }
//! ```
//!
//! and, on every `welcome`, writing [`crate::resume_frames`]. A
//! conversation's `leave_ok` (its guest left) forgets it as for a room; a
//! join refused with `forbidden` or `unknown_user` (not one of this user's
//! conversations, or its guest is gone) forgets it too.

use hubbub_protocol::{ClientMsg, ErrorCode, ServerMsg};

/// Rooms to be in and the last `seq` received in each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResumeTracker {
    /// In join order; `None`: nothing received of the room yet.
    rooms: Vec<(String, Option<u64>)>,
}

impl ResumeTracker {
    pub fn new() -> ResumeTracker {
        ResumeTracker::default()
    }

    /// A tracker that will join `rooms` (e.g. remembered from last time),
    /// with nothing received of them yet.
    pub fn with_rooms<I, S>(rooms: I) -> ResumeTracker
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut tracker = ResumeTracker::new();
        for room in rooms {
            tracker.join(&room.into());
        }
        tracker
    }

    fn find(&self, room: &str) -> Option<usize> {
        self.rooms.iter().position(|(r, _)| r == room)
    }

    /// Remembers `room` as one to be in, and gives the `join` to send now
    /// (with `since` if the client has messages of it).
    pub fn join(&mut self, room: &str) -> ClientMsg {
        let since = match self.find(room) {
            Some(i) => self.rooms[i].1,
            None => {
                self.rooms.push((room.to_string(), None));
                None
            }
        };
        ClientMsg::Join {
            room: room.to_string(),
            since,
        }
    }

    /// Forgets `room` and gives the `leave` to send now.
    pub fn leave(&mut self, room: &str) -> ClientMsg {
        self.forget(room);
        ClientMsg::Leave {
            room: room.to_string(),
        }
    }

    /// Forgets `room` without a request (the server already dropped it).
    pub fn forget(&mut self, room: &str) {
        if let Some(i) = self.find(room) {
            self.rooms.remove(i);
        }
    }

    /// Whether `room` is one to be in.
    pub fn contains(&self, room: &str) -> bool {
        self.find(room).is_some()
    }

    /// The rooms to be in, in join order.
    pub fn rooms(&self) -> impl Iterator<Item = &str> {
        self.rooms.iter().map(|(r, _)| r.as_str())
    }

    /// The last `seq` received in `room`.
    pub fn last_seq(&self, room: &str) -> Option<u64> {
        self.find(room).and_then(|i| self.rooms[i].1)
    }

    /// Whether a message `seq` of `room` is one the client has not had:
    /// false for a repeat of what it already received. Always true for a
    /// room not tracked.
    pub fn is_new(&self, room: &str, seq: u64) -> bool {
        self.last_seq(room).is_none_or(|last| seq > last)
    }

    /// The `join`s to send in answer to `msg`, each with its room now
    /// tracked: one per conversation that a `conversations` answer lists
    /// or a `conversation` frame announces and the tracker does not have
    /// yet (one it has is joined already, or its join is on its way, or it
    /// will be rejoined with `since` after the next `welcome`). Empty for
    /// every other frame. Call it for every frame, once, besides
    /// [`ResumeTracker::observe`] (in either order), and write what it
    /// gives.
    pub fn joins_for(&mut self, msg: &ServerMsg) -> Vec<ClientMsg> {
        let rooms: Vec<&str> = match msg {
            ServerMsg::Conversation { room, .. } => vec![room],
            ServerMsg::Conversations { conversations } => {
                conversations.iter().map(|c| c.room.as_str()).collect()
            }
            _ => Vec::new(),
        };
        let mut joins = Vec::new();
        for room in rooms {
            if !self.contains(room) {
                joins.push(self.join(room));
            }
        }
        joins
    }

    /// The `join`s to send after `welcome`, one per room, in join order.
    pub fn rejoin(&self) -> impl Iterator<Item = ClientMsg> + '_ {
        self.rooms.iter().map(|(room, since)| ClientMsg::Join {
            room: room.clone(),
            since: *since,
        })
    }

    fn saw(&mut self, room: &str, seq: u64) {
        if let Some(i) = self.find(room) {
            let last = &mut self.rooms[i].1;
            *last = Some(last.map_or(seq, |l| l.max(seq)));
        }
    }

    /// Learns from one server frame. Call it for every frame, once.
    pub fn observe(&mut self, msg: &ServerMsg) {
        match msg {
            ServerMsg::Message { room, seq, .. } => self.saw(room, *seq),
            ServerMsg::History {
                room,
                messages,
                resync: true,
                ..
            } => {
                // Too far behind (or the server's data was reset): start
                // again from what this history holds.
                if let Some(i) = self.find(room) {
                    self.rooms[i].1 = messages.last().map(|m| m.seq);
                }
            }
            ServerMsg::History { room, messages, .. } => {
                if let Some(last) = messages.last() {
                    self.saw(room, last.seq);
                }
            }
            ServerMsg::LeaveOk { room } => self.forget(room),
            ServerMsg::Error {
                code:
                    ErrorCode::InvalidRoom
                    | ErrorCode::TooManyRooms
                    | ErrorCode::Forbidden
                    | ErrorCode::UnknownUser,
                room: Some(room),
                ..
            } => self.forget(room),
            ServerMsg::Error { .. }
            | ServerMsg::Welcome { .. }
            | ServerMsg::Presence { .. }
            | ServerMsg::Joined { .. }
            | ServerMsg::Left { .. }
            | ServerMsg::Ack { .. }
            | ServerMsg::Conversation { .. }
            | ServerMsg::Conversations { .. }
            | ServerMsg::Renamed { .. }
            | ServerMsg::Rooms { .. }
            | ServerMsg::Typing { .. }
            | ServerMsg::Read { .. }
            | ServerMsg::SearchResults { .. }
            | ServerMsg::Pong { .. }
            | ServerMsg::Heartbeat => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use hubbub_protocol::{ConversationInfo, HistoryMessage};

    use super::*;

    fn message(room: &str, seq: u64) -> ServerMsg {
        ServerMsg::Message {
            event: None,
            mentions: Vec::new(),
            reply_to: None,
            room: room.into(),
            seq,
            from: "bob".into(),
            text: "x".into(),
            sent_at: 0,
            attachments: Vec::new(),
        }
    }

    fn history(room: &str, seqs: &[u64], resync: bool) -> ServerMsg {
        ServerMsg::History {
            room: room.into(),
            messages: seqs
                .iter()
                .map(|&seq| HistoryMessage {
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
            resync,
        }
    }

    fn join(room: &str, since: Option<u64>) -> ClientMsg {
        ClientMsg::Join {
            room: room.into(),
            since,
        }
    }

    #[test]
    fn rejoins_resume_after_the_last_seq_received() {
        let mut t = ResumeTracker::with_rooms(["lobby", "kitchen"]);
        assert_eq!(t.join("lobby"), join("lobby", None));
        t.observe(&history("lobby", &[3, 4, 5], false));
        t.observe(&message("lobby", 6));
        t.observe(&message("elsewhere", 9)); // not tracked: ignored
        assert_eq!(
            t.rejoin().collect::<Vec<_>>(),
            [join("lobby", Some(6)), join("kitchen", None)]
        );
        assert_eq!(
            t.join("lobby"),
            join("lobby", Some(6)),
            "joining again resumes"
        );
        assert!(!t.contains("elsewhere"));
    }

    #[test]
    fn repeats_are_recognised_and_never_move_the_seq_back() {
        let mut t = ResumeTracker::with_rooms(["lobby"]);
        assert!(t.is_new("lobby", 1));
        t.observe(&message("lobby", 2));
        assert!(!t.is_new("lobby", 2));
        assert!(!t.is_new("lobby", 1));
        assert!(t.is_new("lobby", 3));
        // An older page of history does not rewind.
        t.observe(&history("lobby", &[1], false));
        assert_eq!(t.last_seq("lobby"), Some(2));
        assert!(t.is_new("nowhere", 1));
    }

    #[test]
    fn a_resync_starts_the_room_again() {
        let mut t = ResumeTracker::with_rooms(["lobby"]);
        t.observe(&message("lobby", 900));
        t.observe(&history("lobby", &[1, 2], true));
        assert_eq!(t.last_seq("lobby"), Some(2));
        t.observe(&history("lobby", &[], true));
        assert_eq!(t.last_seq("lobby"), None);
    }

    #[test]
    fn a_leave_or_a_refused_join_forgets_the_room() {
        let mut t = ResumeTracker::with_rooms(["lobby", "kitchen", "bad"]);
        assert_eq!(
            t.leave("kitchen"),
            ClientMsg::Leave {
                room: "kitchen".into()
            }
        );
        t.observe(&ServerMsg::Error {
            code: ErrorCode::InvalidRoom,
            message: "no".into(),
            client_id: None,
            room: Some("bad".into()),
        });
        t.observe(&ServerMsg::Error {
            code: ErrorCode::NotInRoom,
            message: "join first".into(),
            client_id: None,
            room: Some("lobby".into()),
        });
        assert_eq!(t.rooms().collect::<Vec<_>>(), ["lobby"]);
        t.observe(&ServerMsg::LeaveOk {
            room: "lobby".into(),
        });
        assert_eq!(t.rejoin().count(), 0);
    }

    fn listed(rooms: &[&str]) -> ServerMsg {
        ServerMsg::Conversations {
            conversations: rooms
                .iter()
                .map(|room| ConversationInfo {
                    room: room.to_string(),
                    with: "x".into(),
                    online: false,
                    last_seq: 3,
                })
                .collect(),
        }
    }

    fn announced(room: &str) -> ServerMsg {
        ServerMsg::Conversation {
            room: room.into(),
            with: "bob".into(),
        }
    }

    #[test]
    fn conversations_listed_or_announced_are_joined_once() {
        let mut t = ResumeTracker::with_rooms(["lobby", "@alice+carol"]);
        t.observe(&message("@alice+carol", 4));
        // The answer to `conversations`: the one already tracked is
        // rejoined with `since` by `rejoin`, not joined again here.
        let answer = listed(&["@alice+bob", "@alice+carol", "@alice+dave"]);
        t.observe(&answer);
        assert_eq!(
            t.joins_for(&answer),
            [join("@alice+bob", None), join("@alice+dave", None)]
        );
        assert!(t.joins_for(&answer).is_empty(), "not twice");
        // Someone speaks in a conversation not joined yet: joined, once.
        assert_eq!(
            t.joins_for(&announced("@alice+erin")),
            [join("@alice+erin", None)]
        );
        assert!(t.joins_for(&announced("@alice+erin")).is_empty());
        assert!(t.joins_for(&announced("@alice+bob")).is_empty());
        assert!(t.joins_for(&message("@alice+zed", 1)).is_empty());
        t.observe(&history("@alice+bob", &[1, 2], false));
        // After the next welcome every one is rejoined, resuming.
        assert_eq!(
            t.rejoin().collect::<Vec<_>>(),
            [
                join("lobby", None),
                join("@alice+carol", Some(4)),
                join("@alice+bob", Some(2)),
                join("@alice+dave", None),
                join("@alice+erin", None),
            ]
        );
    }

    #[test]
    fn a_conversation_gone_or_refused_is_forgotten_and_joined_again_when_announced() {
        let mut t = ResumeTracker::new();
        t.joins_for(&listed(&["@alice+bob", "@alice+guest", "@bob+carol"]));
        // Its guest left: every member gets `leave_ok`.
        t.observe(&ServerMsg::LeaveOk {
            room: "@alice+guest".into(),
        });
        // Not this user's (a stale name, say).
        t.observe(&ServerMsg::Error {
            code: ErrorCode::Forbidden,
            message: "not yours".into(),
            client_id: None,
            room: Some("@bob+carol".into()),
        });
        assert_eq!(t.rooms().collect::<Vec<_>>(), ["@alice+bob"]);
        // A new guest of that name writes: a new conversation, joined.
        assert_eq!(
            t.joins_for(&announced("@alice+guest")),
            [join("@alice+guest", None)]
        );
        t.observe(&ServerMsg::Error {
            code: ErrorCode::UnknownUser,
            message: "gone".into(),
            client_id: None,
            room: Some("@alice+guest".into()),
        });
        assert!(!t.contains("@alice+guest"));
    }
}
