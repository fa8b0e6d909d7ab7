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
                code: ErrorCode::InvalidRoom | ErrorCode::TooManyRooms,
                room: Some(room),
                ..
            } => self.forget(room),
            ServerMsg::Error { .. }
            | ServerMsg::Welcome { .. }
            | ServerMsg::Presence { .. }
            | ServerMsg::Joined { .. }
            | ServerMsg::Left { .. }
            | ServerMsg::Ack { .. }
            | ServerMsg::Direct { .. }
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
    use hubbub_protocol::HistoryMessage;

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
}
