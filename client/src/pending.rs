//! The pending ledger: the client's one record of messages it sent that the
//! server has not acknowledged yet (docs/protocol.md, "Idempotent sends").
//!
//! Every `send` (a direct message too: it is a `send` to the private
//! conversation's room), and every `edit`, `delete` and `react` (acked
//! like a send, and as idempotent by `client_id` on the server), gets a
//! fresh `client_id` and enters the ledger *before* it is written, so it survives a lost link: after the next
//! `welcome`, [`Pending::resend`] gives it again with the same `client_id`,
//! which the server stores once. The server's answer settles it
//! ([`Pending::settle`]): an `ack` removes it; an `error` naming it marks it
//! failed (shown as such, not resent) until the user retries or dismisses
//! it, except `unavailable`, which means "retry with the same `client_id`"
//! and so leaves it pending. Views show the ledger as it is: one ledger,
//! settled by `client_id`, never by matching text.
//!
//! (The server's per-connection byte queue is its *outbox*; this is not that.)

use hubbub_protocol::{ClientMsg, ErrorCode, ServerMsg};

/// One message on its way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSend {
    /// The id sent with it, echoed by the `ack` or `error`.
    pub client_id: String,
    /// The `send`, `edit`, `delete` or `react` as written (with
    /// `client_id`).
    pub request: ClientMsg,
    /// Why the server refused it (code and its sentence), if it did.
    pub failed: Option<(ErrorCode, String)>,
}

impl PendingSend {
    /// The message text (of an `edit`: the new text; none for a `delete`
    /// or `react`).
    pub fn text(&self) -> &str {
        match &self.request {
            ClientMsg::Send { text, .. } | ClientMsg::Edit { text, .. } => text,
            _ => "",
        }
    }

    /// The room and `seq` of the message an `edit`, `delete` or `react`
    /// changes (`None` for a `send`, a new message).
    pub fn target(&self) -> Option<(&str, u64)> {
        match &self.request {
            ClientMsg::Edit { room, seq, .. }
            | ClientMsg::Delete { room, seq, .. }
            | ClientMsg::React { room, seq, .. } => Some((room, *seq)),
            _ => None,
        }
    }

    /// The room of a `send` (a new message there).
    pub fn room(&self) -> Option<&str> {
        match &self.request {
            ClientMsg::Send { room, .. } => Some(room),
            _ => None,
        }
    }
}

/// The ledger holds [`Pending::MAX`] messages; the new one was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingFull;

impl std::fmt::Display for PendingFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} messages are still on their way; wait for the connection",
            Pending::MAX
        )
    }
}

impl std::error::Error for PendingFull {}

/// What a server frame did to the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// The server accepted it (durably, for a room message) and it left the
    /// ledger; `seq` is its place in the room.
    Acked { send: PendingSend, seq: Option<u64> },
    /// The server refused it; it stays in the ledger, failed, until
    /// [`Pending::retry`] or [`Pending::dismiss`].
    Refused {
        client_id: String,
        code: ErrorCode,
        message: String,
    },
    /// The server cannot take it now (`unavailable`); it stays pending and
    /// goes again with the next [`Pending::resend`].
    Delayed { client_id: String },
}

/// Sends not acknowledged yet, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Oldest first. A `Vec`, not a `VecDeque`: it holds at most
    /// [`Pending::MAX`], settled from anywhere in it, and the web bundle
    /// then carries no `VecDeque` code (734 bytes gzipped).
    sends: Vec<PendingSend>,
    /// Makes this client's ids unlikely to meet another's (the server keys
    /// them by user and room anyway): e.g. a few random hex digits.
    prefix: String,
    /// The number in the next `client_id`.
    next: u64,
}

impl Pending {
    /// Most messages the ledger holds; past it, new sends are refused.
    pub const MAX: usize = 500;

    /// An empty ledger whose `client_id`s are `"{prefix}-{n}"`.
    pub fn new(prefix: impl Into<String>) -> Pending {
        Pending {
            sends: Vec::new(),
            prefix: prefix.into(),
            next: 1,
        }
    }

    fn push(&mut self, make: impl FnOnce(String) -> ClientMsg) -> Result<ClientMsg, PendingFull> {
        if self.sends.len() >= Self::MAX {
            return Err(PendingFull);
        }
        let client_id = format!("{}-{}", self.prefix, self.next);
        self.next += 1;
        let request = make(client_id.clone());
        self.sends.push(PendingSend {
            client_id,
            request: request.clone(),
            failed: None,
        });
        Ok(request)
    }

    /// Records a `send` of `text` to `room` and gives the frame to write.
    pub fn send(&mut self, room: &str, text: &str) -> Result<ClientMsg, PendingFull> {
        self.send_files(room, text, Vec::new())
    }

    /// Records a `send` of `text` (a caption, may be empty) with the
    /// uploads `attachments` (their ids) to `room`; gives the frame to write.
    pub fn send_files(
        &mut self,
        room: &str,
        text: &str,
        attachments: Vec<String>,
    ) -> Result<ClientMsg, PendingFull> {
        self.reply(room, text, attachments, None)
    }

    /// [`Pending::send_files`] answering message `reply_to` of the room.
    pub fn reply(
        &mut self,
        room: &str,
        text: &str,
        attachments: Vec<String>,
        reply_to: Option<u64>,
    ) -> Result<ClientMsg, PendingFull> {
        self.push(|client_id| ClientMsg::Send {
            reply_to,
            room: room.to_string(),
            text: text.to_string(),
            client_id: Some(client_id),
            attachments,
        })
    }

    /// Records `request` with a fresh `client_id` and gives the frame to
    /// write, if it is one the ledger keeps: a `send` (a reply too),
    /// `edit`, `delete` or `react`. Any other request has no
    /// `client_id` to settle by: it is given back as it is, not recorded.
    pub fn track(&mut self, request: ClientMsg) -> Result<ClientMsg, PendingFull> {
        match request {
            ClientMsg::Send { .. }
            | ClientMsg::Edit { .. }
            | ClientMsg::Delete { .. }
            | ClientMsg::React { .. } => self.push(|id| {
                let mut request = request;
                match &mut request {
                    ClientMsg::Send { client_id, .. }
                    | ClientMsg::Edit { client_id, .. }
                    | ClientMsg::Delete { client_id, .. }
                    | ClientMsg::React { client_id, .. } => *client_id = Some(id),
                    _ => {}
                }
                request
            }),
            other => Ok(other),
        }
    }

    /// Every message on its way, oldest first (failed ones included).
    pub fn iter(&self) -> impl Iterator<Item = &PendingSend> {
        self.sends.iter()
    }

    /// The message with this `client_id`.
    pub fn get(&self, client_id: &str) -> Option<&PendingSend> {
        self.sends.iter().find(|s| s.client_id == client_id)
    }

    pub fn len(&self) -> usize {
        self.sends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sends.is_empty()
    }

    /// The frames to write again on a new connection: every message not
    /// refused, oldest first, with its original `client_id`.
    pub fn resend(&self) -> impl Iterator<Item = ClientMsg> + '_ {
        self.sends
            .iter()
            .filter(|s| s.failed.is_none())
            .map(|s| s.request.clone())
    }

    /// Learns from one server frame: an `ack` or `error` with a `client_id`
    /// of this ledger settles that message. Call it for every frame, once.
    pub fn settle(&mut self, msg: &ServerMsg) -> Option<Settled> {
        match msg {
            ServerMsg::Ack {
                client_id: Some(id),
                seq,
                ..
            } => {
                let at = self.sends.iter().position(|s| s.client_id == *id)?;
                let send = self.sends.remove(at);
                Some(Settled::Acked { send, seq: *seq })
            }
            ServerMsg::Error {
                code: ErrorCode::Unavailable,
                client_id: Some(id),
                ..
            } => {
                self.get(id)?;
                Some(Settled::Delayed {
                    client_id: id.clone(),
                })
            }
            ServerMsg::Error {
                code,
                message,
                client_id: Some(id),
                ..
            } => {
                let send = self.sends.iter_mut().find(|s| s.client_id == *id)?;
                send.failed = Some((*code, message.clone()));
                Some(Settled::Refused {
                    client_id: id.clone(),
                    code: *code,
                    message: message.clone(),
                })
            }
            ServerMsg::Ack {
                client_id: None, ..
            }
            | ServerMsg::Error {
                client_id: None, ..
            }
            | ServerMsg::Welcome { .. }
            | ServerMsg::Presence { .. }
            | ServerMsg::Joined { .. }
            | ServerMsg::Left { .. }
            | ServerMsg::LeaveOk { .. }
            | ServerMsg::Message { .. }
            | ServerMsg::History { .. }
            | ServerMsg::Conversation { .. }
            | ServerMsg::Conversations { .. }
            | ServerMsg::Renamed { .. }
            | ServerMsg::Rooms { .. }
            | ServerMsg::Typing { .. }
            | ServerMsg::Read { .. }
            | ServerMsg::SearchResults { .. }
            | ServerMsg::Pong { .. }
            | ServerMsg::Heartbeat => None,
        }
    }

    /// Tries a failed message again (same `client_id`): gives the frame to
    /// write, or `None` if there is no such message.
    pub fn retry(&mut self, client_id: &str) -> Option<ClientMsg> {
        let send = self.sends.iter_mut().find(|s| s.client_id == client_id)?;
        send.failed = None;
        Some(send.request.clone())
    }

    /// Drops a message from the ledger (the user gave up on a failed one).
    pub fn dismiss(&mut self, client_id: &str) -> Option<PendingSend> {
        let at = self.sends.iter().position(|s| s.client_id == client_id)?;
        Some(self.sends.remove(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(id: &str, seq: Option<u64>) -> ServerMsg {
        ServerMsg::Ack {
            client_id: Some(id.into()),
            room: seq.map(|_| "lobby".into()),
            seq,
        }
    }

    fn error(code: ErrorCode, id: &str) -> ServerMsg {
        ServerMsg::Error {
            code,
            message: "no".into(),
            client_id: Some(id.into()),
            room: None,
        }
    }

    #[test]
    fn sends_get_fresh_ids_and_wait_for_their_ack() {
        let mut p = Pending::new("ab12");
        let first = p.send("lobby", "one").unwrap();
        let second = p.send("@alice+bob", "two").unwrap();
        assert_eq!(
            first,
            ClientMsg::Send {
                reply_to: None,
                room: "lobby".into(),
                text: "one".into(),
                client_id: Some("ab12-1".into()),
                attachments: Vec::new(),
            }
        );
        // A direct message is a send to the conversation's room.
        assert_eq!(
            second,
            ClientMsg::Send {
                reply_to: None,
                room: "@alice+bob".into(),
                text: "two".into(),
                client_id: Some("ab12-2".into()),
                attachments: Vec::new(),
            }
        );
        assert_eq!(p.get("ab12-2").unwrap().room(), Some("@alice+bob"));
        let reply = p.reply("lobby", "yes", Vec::new(), Some(41)).unwrap();
        assert!(matches!(
            reply,
            ClientMsg::Send {
                reply_to: Some(41),
                ..
            }
        ));
        p.dismiss("ab12-3");
        assert_eq!(p.get("ab12-1").unwrap().room(), Some("lobby"));
        assert_eq!(
            p.resend().collect::<Vec<_>>(),
            [first.clone(), second.clone()]
        );

        let Some(Settled::Acked { send, seq }) = p.settle(&ack("ab12-1", Some(42))) else {
            panic!("acked");
        };
        assert_eq!((send.text(), seq), ("one", Some(42)));
        assert_eq!(p.resend().collect::<Vec<_>>(), [second]);
        assert_eq!(p.settle(&ack("ab12-1", Some(42))), None, "settled once");
        assert_eq!(p.settle(&ack("someone-else", None)), None);
        assert_eq!(p.settle(&ServerMsg::Heartbeat), None);
        assert!(p.settle(&ack("ab12-2", None)).is_some());
        assert!(p.is_empty());
    }

    #[test]
    fn a_refused_send_stays_failed_until_retried_or_dismissed() {
        let mut p = Pending::new("x");
        let msg = p.send("lobby", "too long").unwrap();
        assert_eq!(
            p.settle(&error(ErrorCode::TextTooLong, "x-1")),
            Some(Settled::Refused {
                client_id: "x-1".into(),
                code: ErrorCode::TextTooLong,
                message: "no".into()
            })
        );
        assert_eq!(p.len(), 1, "still shown");
        assert_eq!(p.resend().count(), 0, "not resent");
        assert_eq!(
            p.get("x-1").unwrap().failed,
            Some((ErrorCode::TextTooLong, "no".into()))
        );
        assert_eq!(p.retry("x-1"), Some(msg));
        assert_eq!(p.resend().count(), 1);
        assert!(p.dismiss("x-1").is_some());
        assert!(p.is_empty());
        assert_eq!(p.retry("x-1"), None);
    }

    #[test]
    fn a_file_goes_again_after_a_reconnect_with_its_id() {
        let mut p = Pending::new("f");
        let room = p.send_files("lobby", "", vec!["up1".into()]).unwrap();
        let dm = p
            .send_files("@alice+bob", "here", vec!["up2".into()])
            .unwrap();
        assert_eq!(
            dm,
            ClientMsg::Send {
                reply_to: None,
                room: "@alice+bob".into(),
                text: "here".into(),
                client_id: Some("f-2".into()),
                attachments: vec!["up2".into()],
            }
        );
        assert_eq!(p.resend().collect::<Vec<_>>(), [room, dm]);
    }

    #[test]
    fn edits_deletions_and_reactions_are_kept_and_settled_like_sends() {
        let mut p = Pending::new("e");
        let edit = p
            .track(ClientMsg::Edit {
                room: "lobby".into(),
                seq: 42,
                text: "hi all".into(),
                client_id: None,
            })
            .unwrap();
        let react = p
            .track(ClientMsg::React {
                room: "lobby".into(),
                seq: 41,
                emoji: "👍".into(),
                on: true,
                client_id: None,
            })
            .unwrap();
        let delete = p
            .track(ClientMsg::Delete {
                room: "lobby".into(),
                seq: 40,
                client_id: None,
            })
            .unwrap();
        let reply = p
            .track(ClientMsg::Send {
                room: "lobby".into(),
                text: "yes".into(),
                client_id: None,
                attachments: Vec::new(),
                reply_to: Some(41),
            })
            .unwrap();
        assert_eq!(
            edit,
            ClientMsg::Edit {
                room: "lobby".into(),
                seq: 42,
                text: "hi all".into(),
                client_id: Some("e-1".into()),
            }
        );
        assert!(
            matches!(&reply, ClientMsg::Send { client_id: Some(id), reply_to: Some(41), .. } if id == "e-4")
        );
        let first = p.get("e-1").unwrap();
        assert_eq!(
            (first.text(), first.target(), first.room()),
            ("hi all", Some(("lobby", 42)), None)
        );
        assert_eq!(p.get("e-2").unwrap().target(), Some(("lobby", 41)));
        assert_eq!(p.get("e-4").unwrap().target(), None);
        // Lost link: everything goes again, in order, with its id.
        assert_eq!(p.resend().collect::<Vec<_>>(), [edit, react, delete, reply]);
        assert!(matches!(
            p.settle(&ack("e-1", Some(44))),
            Some(Settled::Acked { seq: Some(44), .. })
        ));
        assert!(matches!(
            p.settle(&error(ErrorCode::NotAuthor, "e-3")),
            Some(Settled::Refused {
                code: ErrorCode::NotAuthor,
                ..
            })
        ));
        assert_eq!(p.len(), 3);
        // A request that is not a message is not the ledger's.
        assert_eq!(p.track(ClientMsg::Rooms), Ok(ClientMsg::Rooms));
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn unavailable_means_try_again_later() {
        let mut p = Pending::new("x");
        p.send("lobby", "hi").unwrap();
        assert_eq!(
            p.settle(&error(ErrorCode::Unavailable, "x-1")),
            Some(Settled::Delayed {
                client_id: "x-1".into()
            })
        );
        assert_eq!(p.resend().count(), 1);
        assert_eq!(p.settle(&error(ErrorCode::Unavailable, "x-9")), None);
    }

    #[test]
    fn a_full_ledger_refuses_new_sends_and_keeps_the_old() {
        let mut p = Pending::new("x");
        for i in 0..Pending::MAX {
            p.send("lobby", &i.to_string()).unwrap();
        }
        assert_eq!(p.send("lobby", "one more"), Err(PendingFull));
        assert_eq!(p.iter().next().unwrap().text(), "0");
        p.settle(&ack("x-1", Some(1)));
        assert!(p.send("lobby", "now it fits").is_ok());
    }
}
