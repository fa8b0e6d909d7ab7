//! The hubbub client core: everything a client decides, nothing it does.
//!
//! hubbub speaks to people through three clients (the web app, the
//! `hubbub-chat` terminal client and the server's TCP gateway). What they
//! have in common lives here, once, free of I/O: no runtime, no sockets, no
//! clock and no randomness. The caller passes the time (milliseconds since
//! the Unix epoch) and the jitter, so the crate builds for
//! `wasm32-unknown-unknown` as well as natively, and every piece is a plain
//! value that unit tests can drive.
//!
//! | piece | what it owns |
//! |---|---|
//! | [`command`] | the slash-command grammar (`/join ROOM`, `/msg USER [TEXT]`, `/edit [#SEQ] TEXT`, …) and its [`HELP`] |
//! | [`render`] | server frames as text [`Line`]s (`[lobby] #42 <alice> hi`, `[@bob] #3 <bob> psst`, `* alice edited #42: hi all`), made safe for a terminal |
//! | [`recent`] | [`Recent`]: the latest messages shown per room, what `/edit`, `/delete`, `/react` and `/reply` default to |
//! | [`resume`] | the [`ResumeTracker`]: the rooms (and private conversations) to be in and the last `seq` of each, rejoined with `since`; the conversations to join as they become known |
//! | [`pending`] | the [`Pending`] ledger: sends (and edits, deletions, reactions) not acknowledged yet, keyed by `client_id`, resent after a reconnect |
//! | [`backoff`] | the reconnect [`Backoff`] policy: exponential, full jitter, capped |
//! | [`link`] | [`Link`], the state of the connection as a user sees it |
//! | [`unread`] | [`Unread`]: read markers and unread counts per room, and the `read` to send for what was seen |
//!
//! Names, used the same way in every client and in the docs: *pending* is
//! the client's ledger of unacknowledged messages (the server's per-connection
//! byte queue is its *outbox*); the *resume tracker* is the client's memory
//! for reconnecting (a *session* is a login); the *link* is the connection
//! state.
//!
//! A client's data flow: the transport hands each [`hubbub_protocol::ServerMsg`]
//! once to the resume tracker ([`ResumeTracker::observe`], and
//! [`ResumeTracker::joins_for`], whose `join`s of private conversations it
//! writes at once) and the pending ledger ([`Pending::settle`]), then to its
//! one reducer of UI state (the terminal client and the gateway render it
//! with [`Renderer`] and keep what it showed in [`Recent`]). Typed input
//! goes through [`command::parse`]; sends enter the ledger before they are
//! written. On every `welcome` the transport writes [`resume_frames`].
//!
//! A direct message is a `send` to the private conversation of its two
//! people, a room named after them ([`hubbub_protocol::names::conversation`],
//! `@alice+bob`): the ledger, the tracker, [`Unread`] and [`Recent`] treat
//! it as the room it is; [`Renderer`] shows it as `[@bob]`, the other
//! person.
//!
//! ```
//! use hubbub_client::{resume_frames, Backoff, Link, Pending, ResumeTracker, Settled};
//! use hubbub_protocol::{ClientMsg, ConversationInfo, ServerMsg};
//!
//! let mut tracker = ResumeTracker::with_rooms(["lobby"]);
//! let mut pending = Pending::new("3fa9");
//! let mut backoff = Backoff::new(500, 15_000).with_floor(100);
//!
//! // Typed while the link is down: kept, not lost.
//! let send = pending.send("lobby", "hi all").unwrap();
//! let mut link = Link::Reconnecting {
//!     attempt: backoff.attempt(),
//!     why: "connection lost".into(),
//!     retry_at_ms: 1_000 + backoff.next_delay_ms(0.42), // now + jittered delay
//! };
//!
//! // A new socket is welcomed: rejoin, ask for the conversations, then
//! // resend, in that order.
//! link = Link::Connected;
//! backoff.reset();
//! let frames = resume_frames(&tracker, &pending);
//! assert_eq!(frames[0], ClientMsg::Join { room: "lobby".into(), since: None });
//! assert_eq!(frames[1], ClientMsg::Conversations);
//! assert_eq!(frames[2], send);
//!
//! // Every server frame, once: the tracker and the ledger learn from it,
//! // and the tracker says which conversations to join.
//! let listed = ServerMsg::Conversations { conversations: vec![ConversationInfo {
//!     room: "@bob+me".into(), with: "bob".into(), online: true, last_seq: 2 }] };
//! assert_eq!(tracker.joins_for(&listed),
//!            [ClientMsg::Join { room: "@bob+me".into(), since: None }]);
//! for frame in [
//!     ServerMsg::Message { room: "lobby".into(), seq: 8, from: "me".into(),
//!                          text: "hi all".into(), sent_at: 0, attachments: vec![],
//!                          reply_to: None, mentions: vec![], event: None },
//!     ServerMsg::Ack { client_id: Some("3fa9-1".into()), room: Some("lobby".into()), seq: Some(8) },
//! ] {
//!     tracker.observe(&frame);
//!     if let Some(Settled::Acked { seq, .. }) = pending.settle(&frame) {
//!         assert_eq!(seq, Some(8));
//!     }
//! }
//! assert!(pending.is_empty() && link.is_connected());
//! assert_eq!(tracker.last_seq("lobby"), Some(8)); // the next rejoin says since: 8
//! ```

pub mod backoff;
pub mod command;
pub mod link;
pub mod pending;
pub mod recent;
pub mod render;
pub mod resume;
pub mod unread;

pub use backoff::Backoff;
pub use command::{clean_line, help_lines, parse, Command, CommandError, HELP};
pub use link::{close_why, Link};
pub use pending::{Pending, PendingFull, PendingSend, Settled};
pub use recent::Recent;
pub use render::{defang, human_size, quote_text, url_component, utc_clock, Kind, Line, Renderer};
pub use resume::ResumeTracker;
pub use unread::Unread;

use hubbub_protocol::ClientMsg;

/// What to send right after `welcome` on a new connection: a `join` (with
/// `since` where known) for every room (and conversation) to be in, then
/// `conversations` (whose answer, through [`ResumeTracker::joins_for`],
/// joins the ones not tracked yet), then every pending send in the order it
/// was made. Joins come first so the resent sends find their rooms joined.
pub fn resume_frames(tracker: &ResumeTracker, pending: &Pending) -> Vec<ClientMsg> {
    tracker
        .rejoin()
        .chain([ClientMsg::Conversations])
        .chain(pending.resend())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubbub_protocol::ServerMsg;

    #[test]
    fn after_welcome_rooms_are_rejoined_and_conversations_asked_before_pending_sends_are_resent() {
        let mut tracker = ResumeTracker::new();
        tracker.join("lobby");
        tracker.observe(&ServerMsg::Message {
            event: None,
            mentions: Vec::new(),
            reply_to: None,
            room: "lobby".into(),
            seq: 7,
            from: "bob".into(),
            text: "hi".into(),
            sent_at: 0,
            attachments: Vec::new(),
        });
        let mut pending = Pending::new("p");
        let send = pending.send("lobby", "still there?").unwrap();
        assert_eq!(
            resume_frames(&tracker, &pending),
            [
                ClientMsg::Join {
                    room: "lobby".into(),
                    since: Some(7)
                },
                ClientMsg::Conversations,
                send
            ]
        );
    }
}
