//! The latest messages of each room a text client has shown: what `/edit`,
//! `/delete`, `/react` and `/reply` act on when no `#SEQ` is named.
//!
//! A text client (the terminal client, the TCP gateway) names a message by
//! its `seq`, shown on its line as `#42`. Typing the number is not always
//! needed: `/edit TEXT` and `/delete` mean "my last message here", `/react
//! EMOJI` and `/reply TEXT` "the last message by someone else here".
//! [`Recent`] answers those from the frames the client rendered, so the
//! default is always a message the user has seen: the last one *shown*
//! (a message still on its way has no `seq` yet).
//!
//! It keeps, per room, the `seq`s of the latest [`Recent::KEPT`] messages
//! and whether each is this user's, in `seq` order. Edits and reactions are
//! not messages (nothing to act on); a deletion removes its target, so
//! `/delete` twice deletes the last two messages. A message `history` gives
//! without text or files is a deleted one (a `send` cannot be empty) and is
//! not kept either.

use std::collections::VecDeque;

use hubbub_protocol::names::name_key;
use hubbub_protocol::{Event, ServerMsg};

/// One room's latest messages.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Room {
    room: String,
    /// `(seq, mine)`, ascending `seq`.
    messages: VecDeque<(u64, bool)>,
}

/// The latest messages of each room, and which are this user's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recent {
    /// This user's name (from `welcome`, and its own renames).
    me: Option<String>,
    rooms: Vec<Room>,
}

impl Recent {
    /// Messages kept per room: enough to `/delete` a run of one's own.
    pub const KEPT: usize = 50;

    pub fn new() -> Recent {
        Recent::default()
    }

    fn room(&mut self, room: &str) -> &mut Room {
        let at = match self.rooms.iter().position(|r| r.room == room) {
            Some(at) => at,
            None => {
                self.rooms.push(Room {
                    room: room.to_string(),
                    messages: VecDeque::new(),
                });
                self.rooms.len() - 1
            }
        };
        &mut self.rooms[at]
    }

    /// Heard of `seq` in `room`, said by `from`: keeps a message, forgets
    /// the target of a deletion.
    fn heard(&mut self, room: &str, seq: u64, from: &str, event: Option<&Event>, empty: bool) {
        let mine = self
            .me
            .as_deref()
            .is_some_and(|me| name_key(me) == name_key(from));
        let kept = &mut self.room(room).messages;
        match event {
            Some(Event::Delete { target }) => kept.retain(|&(s, _)| s != *target),
            Some(Event::Edit { .. } | Event::React { .. }) => {}
            // A tombstone: deleted before this client heard of it.
            None if empty => kept.retain(|&(s, _)| s != seq),
            None => {
                let at = kept.partition_point(|&(s, _)| s < seq);
                if kept.get(at).is_some_and(|&(s, _)| s == seq) {
                    return;
                }
                kept.insert(at, (seq, mine));
                if kept.len() > Self::KEPT {
                    kept.pop_front();
                }
            }
        }
    }

    /// Learns from one server frame the client showed. Call it for every
    /// frame, once.
    pub fn observe(&mut self, msg: &ServerMsg) {
        match msg {
            ServerMsg::Welcome { user, .. } => self.me = Some(user.clone()),
            ServerMsg::Renamed { room: None, to, .. } => self.me = Some(to.clone()),
            ServerMsg::Message {
                room,
                seq,
                from,
                text,
                attachments,
                event,
                ..
            } => {
                let empty = text.is_empty() && attachments.is_empty();
                self.heard(room, *seq, from, event.as_ref(), empty);
            }
            ServerMsg::History {
                room,
                messages,
                resync,
                ..
            } => {
                if *resync {
                    self.room(room).messages.clear();
                }
                for m in messages {
                    let empty = m.text.is_empty() && m.attachments.is_empty();
                    self.heard(room, m.seq, &m.from, m.event.as_ref(), empty);
                }
            }
            ServerMsg::LeaveOk { room } => self.rooms.retain(|r| r.room != *room),
            ServerMsg::Renamed { room: Some(_), .. }
            | ServerMsg::Presence { .. }
            | ServerMsg::Joined { .. }
            | ServerMsg::Left { .. }
            | ServerMsg::Ack { .. }
            | ServerMsg::Conversation { .. }
            | ServerMsg::Conversations { .. }
            | ServerMsg::Rooms { .. }
            | ServerMsg::Typing { .. }
            | ServerMsg::Read { .. }
            | ServerMsg::SearchResults { .. }
            | ServerMsg::Pong { .. }
            | ServerMsg::Heartbeat
            | ServerMsg::Error { .. } => {}
        }
    }

    fn last(&self, room: &str, mine: bool) -> Option<u64> {
        let room = self.rooms.iter().find(|r| r.room == room)?;
        room.messages
            .iter()
            .rev()
            .find(|&&(_, m)| m == mine)
            .map(|&(seq, _)| seq)
    }

    /// This user's last message in `room` that is not deleted: what
    /// `/edit TEXT` and `/delete` change.
    pub fn last_mine(&self, room: &str) -> Option<u64> {
        self.last(room, true)
    }

    /// The last message in `room` by someone else: what `/react EMOJI` and
    /// `/reply TEXT` answer.
    pub fn last_others(&self, room: &str) -> Option<u64> {
        self.last(room, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubbub_protocol::{HistoryMessage, Limits};

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

    fn said(seq: u64, from: &str, event: Option<Event>) -> ServerMsg {
        ServerMsg::Message {
            room: "lobby".into(),
            seq,
            from: from.into(),
            text: "x".into(),
            sent_at: 0,
            attachments: Vec::new(),
            reply_to: None,
            mentions: Vec::new(),
            event,
        }
    }

    #[test]
    fn the_defaults_are_the_last_shown_message_of_each_side() {
        let mut recent = Recent::new();
        assert_eq!(recent.last_mine("lobby"), None);
        recent.observe(&welcome("Alice"));
        recent.observe(&said(1, "alice", None));
        recent.observe(&said(2, "bob", None));
        recent.observe(&said(3, "alice", None));
        recent.observe(&said(4, "bob", Some(Event::Edit { target: 2 })));
        recent.observe(&said(
            5,
            "bob",
            Some(Event::React {
                target: 3,
                emoji: "👍".into(),
                on: true,
            }),
        ));
        assert_eq!(recent.last_mine("lobby"), Some(3), "ignoring case");
        assert_eq!(
            recent.last_others("lobby"),
            Some(2),
            "events are no messages"
        );
        assert_eq!(recent.last_mine("kitchen"), None);
        // Deleting the last one makes the one before it the last.
        recent.observe(&said(6, "alice", Some(Event::Delete { target: 3 })));
        assert_eq!(recent.last_mine("lobby"), Some(1));
        // A rename keeps what was said under the old name mine.
        recent.observe(&ServerMsg::Renamed {
            room: None,
            from: "alice".into(),
            to: "al".into(),
            upload_token: None,
        });
        assert_eq!(recent.last_mine("lobby"), Some(1));
        recent.observe(&said(7, "al", None));
        assert_eq!(recent.last_mine("lobby"), Some(7));
        recent.observe(&ServerMsg::LeaveOk {
            room: "lobby".into(),
        });
        assert_eq!(recent.last_others("lobby"), None);
    }

    #[test]
    fn history_fills_in_order_without_tombstones_or_repeats() {
        let mut recent = Recent::new();
        recent.observe(&welcome("alice"));
        recent.observe(&said(9, "bob", None));
        let stored = |seq: u64, from: &str, text: &str| HistoryMessage {
            seq,
            from: from.into(),
            text: text.into(),
            sent_at: 0,
            attachments: Vec::new(),
            reply_to: None,
            mentions: Vec::new(),
            event: None,
        };
        let history = |messages, resync| ServerMsg::History {
            room: "lobby".into(),
            messages,
            has_more: false,
            before: None,
            resync,
        };
        // An older page: below what is there, the deleted one left out.
        recent.observe(&history(
            vec![stored(7, "alice", "one"), stored(8, "alice", "")],
            false,
        ));
        assert_eq!(recent.last_mine("lobby"), Some(7));
        assert_eq!(recent.last_others("lobby"), Some(9));
        recent.observe(&said(9, "bob", None));
        assert_eq!(recent.rooms[0].messages.len(), 2, "a repeat is kept once");
        // A resync starts the room again.
        recent.observe(&history(vec![stored(3, "bob", "new")], true));
        assert_eq!(
            (recent.last_mine("lobby"), recent.last_others("lobby")),
            (None, Some(3))
        );
        for seq in 10..100 {
            recent.observe(&said(seq, "alice", None));
        }
        assert_eq!(recent.rooms[0].messages.len(), Recent::KEPT);
        assert_eq!(recent.last_others("lobby"), None, "pushed out");
    }
}
