//! [`Link`]: the state of the connection to the server, as every client
//! shows it (the web app's top bar, the terminal client's status line).
//!
//! Times are absolute (ms since the Unix epoch, by the caller's clock), so a
//! view can count down to the next attempt without the core having a clock.

use hubbub_protocol::close;

/// The connection as the user sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Nothing to connect as yet: no name chosen, or signed out.
    Idle,
    /// Opening the socket and saying `hello`; `attempt` failed tries since
    /// the last `welcome` (0 for the first try).
    Connecting { attempt: u32 },
    /// Welcomed by the server; frames flow.
    Connected,
    /// The link was lost (`why`); the next attempt starts at `retry_at_ms`.
    Reconnecting {
        attempt: u32,
        why: String,
        retry_at_ms: u64,
    },
    /// The link ended for good: the user quit, or the server said not to
    /// come back (a close code in 4500–4999, or 1000).
    Ended { why: String },
}

impl Link {
    /// A short stable word for styling and tests: `idle`, `connecting`,
    /// `connected`, `reconnecting`, `ended`.
    pub fn kind(&self) -> &'static str {
        match self {
            Link::Idle => "idle",
            Link::Connecting { .. } => "connecting",
            Link::Connected => "connected",
            Link::Reconnecting { .. } => "reconnecting",
            Link::Ended { .. } => "ended",
        }
    }

    /// Whether frames flow now.
    pub fn is_connected(&self) -> bool {
        matches!(self, Link::Connected)
    }

    /// How long until the next attempt, in ms, at `now_ms` (0 when it is
    /// due, `None` when no attempt is scheduled).
    pub fn retry_in_ms(&self, now_ms: u64) -> Option<u64> {
        match self {
            Link::Reconnecting { retry_at_ms, .. } => Some(retry_at_ms.saturating_sub(now_ms)),
            Link::Idle | Link::Connecting { .. } | Link::Connected | Link::Ended { .. } => None,
        }
    }
}

/// A sentence for a close the server sent: the reason and the code, or
/// what the code means when the reason is empty, e.g.
/// `"server shutting down (1001)"`, `"your session expired (4502)"`.
pub fn close_why(code: u16, reason: &str) -> String {
    let known = match code {
        close::NORMAL => "closed",
        close::GOING_AWAY => "server shutting down",
        close::PROTOCOL_ERROR => "protocol error",
        close::INVALID_PAYLOAD => "invalid UTF-8",
        close::POLICY => "too many requests",
        close::TOO_BIG => "message too big",
        close::IDLE_TIMEOUT => "idle timeout",
        close::SLOW_CONSUMER => "read too slowly",
        close::LOGGED_OUT => "signed out",
        close::SESSION_EXPIRED => "your session expired",
        _ => "closed",
    };
    let text = if reason.is_empty() { known } else { reason };
    format!("{text} ({code})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_countdown_is_relative_to_now() {
        let link = Link::Reconnecting {
            attempt: 2,
            why: "connection lost".into(),
            retry_at_ms: 10_000,
        };
        assert_eq!(link.kind(), "reconnecting");
        assert_eq!(link.retry_in_ms(7_500), Some(2_500));
        assert_eq!(link.retry_in_ms(12_000), Some(0));
        assert_eq!(Link::Connected.retry_in_ms(0), None);
        assert!(Link::Connected.is_connected());
        assert!(!Link::Connecting { attempt: 0 }.is_connected());
    }

    #[test]
    fn a_close_says_why_with_its_code() {
        assert_eq!(
            close_why(1001, "server shutting down"),
            "server shutting down (1001)"
        );
        assert_eq!(
            close_why(close::SESSION_EXPIRED, ""),
            "your session expired (4502)"
        );
        assert_eq!(close_why(4999, ""), "closed (4999)");
    }
}
