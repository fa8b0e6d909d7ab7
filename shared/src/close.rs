//! WebSocket close codes the server uses, and what a client should do on each.
//!
//! The ranges follow one rule a client can rely on: 4000–4499 mean "reconnect
//! (with backoff) and resume", 4500–4999 mean "do not reconnect".

/// The client said `quit` or closed cleanly.
pub const NORMAL: u16 = 1000;
/// The server is shutting down; reconnect with backoff.
pub const GOING_AWAY: u16 = 1001;
/// The peer broke the WebSocket protocol (an unmasked frame, reserved
/// bits or opcodes, a bad control frame, a stray continuation).
pub const PROTOCOL_ERROR: u16 = 1002;
/// A text frame was not valid UTF-8.
pub const INVALID_PAYLOAD: u16 = 1007;
/// Policy violation: a flood that went on after `rate_limited`.
pub const POLICY: u16 = 1008;
/// A frame or message was larger than `max_frame_bytes`.
pub const TOO_BIG: u16 = 1009;
/// The peer was silent for longer than the idle timeout.
pub const IDLE_TIMEOUT: u16 = 4000;
/// The client read too slowly and its outbound queue overflowed.
pub const SLOW_CONSUMER: u16 = 4001;

/// The session was logged out; do not reconnect with it.
pub const LOGGED_OUT: u16 = 4501;
/// The session this socket was opened with expired; sign in again, then
/// connect anew (reconnecting with it would be refused with 401).
pub const SESSION_EXPIRED: u16 = 4502;

/// Whether a client should reconnect after the server closed with `code`.
pub fn should_reconnect(code: u16) -> bool {
    !matches!(code, NORMAL | 4500..=4999)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_ranges() {
        assert!(should_reconnect(GOING_AWAY));
        assert!(should_reconnect(SLOW_CONSUMER));
        assert!(should_reconnect(IDLE_TIMEOUT));
        assert!(!should_reconnect(NORMAL));
        assert!(!should_reconnect(4500));
        assert!(!should_reconnect(LOGGED_OUT));
        assert!(!should_reconnect(SESSION_EXPIRED));
        assert!(!should_reconnect(4999));
    }
}
