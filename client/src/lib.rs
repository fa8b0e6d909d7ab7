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
//! | [`command`] | the slash-command grammar (`/join ROOM`, `/msg USER TEXT`, …) and its [`HELP`] |
//! | [`render`] | server frames as text [`Line`]s (`[lobby] <alice> hi`), made safe for a terminal |
//! | [`resume`] | the [`ResumeTracker`]: the rooms to be in and the last `seq` of each, rejoined with `since` |
//! | [`pending`] | the [`Pending`] ledger: sends not acknowledged yet, keyed by `client_id`, resent after a reconnect |
//! | [`backoff`] | the reconnect [`Backoff`] policy: exponential, full jitter, capped |
//! | [`link`] | [`Link`], the state of the connection as a user sees it |
//!
//! Names, used the same way in every client and in the docs: *pending* is
//! the client's ledger of unacknowledged messages (the server's per-connection
//! byte queue is its *outbox*); the *resume tracker* is the client's memory
//! for reconnecting (a *session* is a login); the *link* is the connection
//! state.
//!
//! A client's data flow: the transport hands each [`hubbub_protocol::ServerMsg`]
//! once to the resume tracker ([`ResumeTracker::observe`]) and the pending
//! ledger ([`Pending::settle`]), then to its one reducer of UI state (the
//! terminal client and the gateway render it with [`Renderer`]). Typed input
//! goes through [`command::parse`]; sends enter the ledger before they are
//! written. On every `welcome` the transport writes [`resume_frames`].

pub mod backoff;
pub mod command;
pub mod link;
pub mod pending;
pub mod render;
pub mod resume;

pub use backoff::Backoff;
pub use command::{clean_line, help_lines, parse, Command, CommandError, HELP};
pub use link::{close_why, Link};
pub use pending::{Pending, PendingFull, PendingSend, Settled};
pub use render::{defang, utc_clock, Kind, Line, Renderer};
pub use resume::ResumeTracker;

use hubbub_protocol::ClientMsg;

/// What to send right after `welcome` on a new connection: a `join` (with
/// `since` where known) for every room to be in, then every pending send in
/// the order it was made. Joins come first so the resent sends find their
/// rooms joined.
pub fn resume_frames(tracker: &ResumeTracker, pending: &Pending) -> Vec<ClientMsg> {
    tracker.rejoin().chain(pending.resend()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubbub_protocol::ServerMsg;

    #[test]
    fn after_welcome_rooms_are_rejoined_before_pending_sends_are_resent() {
        let mut tracker = ResumeTracker::new();
        tracker.join("lobby");
        tracker.observe(&ServerMsg::Message {
            room: "lobby".into(),
            seq: 7,
            from: "bob".into(),
            text: "hi".into(),
            sent_at: 0,
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
                send
            ]
        );
    }
}
