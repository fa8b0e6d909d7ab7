//! Time as connections keep it, and the one task that runs every
//! connection's timers: the heartbeat (an app-level `heartbeat` frame and a
//! ping), the idle timeout, the write timeout, session expiry, and closing
//! rooms nobody is in. One task and two intervals for all connections, not
//! a timer each (every byte of a connection is paid per connection).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hubbub_protocol::{close, ServerMsg};

use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::outbox::{frame, Close};

/// A moment as a connection keeps it (when its peer last sent, since when
/// its socket is stalled): ms since the server started, in 32 bits. It
/// wraps every 49.7 days, so spans are taken wrapping, and are right up to
/// [`MAX_SPAN`]: the idle and write timeouts count as at most that, and the
/// sweep looks at every connection well within it.
pub type Stamp = u32;

/// Longest span between two [`Stamp`]s that is measured right: 24.8 days.
pub const MAX_SPAN: Duration = Duration::from_millis(i32::MAX as u64);

/// Milliseconds from `then` to `now`; 0 if `then` is later (a connection
/// touched on another thread after the sweep read the clock).
pub fn since(now: Stamp, then: Stamp) -> u64 {
    (now.wrapping_sub(then) as i32).max(0) as u64
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The server's monotonic clock, started with it.
pub struct Clock {
    started: Instant,
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            started: Instant::now(),
        }
    }

    /// Milliseconds since the server started.
    pub fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Now, as a connection keeps it; see [`Stamp`].
    pub fn stamp(&self) -> Stamp {
        self.elapsed_ms() as Stamp
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new()
    }
}

/// Pings every connection and sends the app-level heartbeat every
/// `heartbeat`; closes connections silent for longer than `idle_timeout`,
/// whose socket took nothing for `write_timeout`, or whose session
/// expired; closes rooms nobody is in. Ends when the server shuts down.
pub async fn run(hub: Arc<Hub>) {
    let heartbeat = frame(&ServerMsg::Heartbeat);
    let mut beat = tokio::time::interval(hub.config.heartbeat);
    // Check often enough that a silent peer is closed within a quarter
    // of the timeout after it expires.
    let idle_limit = hub.config.idle_timeout.min(MAX_SPAN);
    let write_limit = hub.config.write_timeout.min(MAX_SPAN);
    let mut sweep =
        tokio::time::interval((idle_limit.min(write_limit) / 4).max(Duration::from_millis(10)));
    let (idle_limit, write_limit) = (
        idle_limit.as_millis() as u64,
        write_limit.as_millis() as u64,
    );
    beat.tick().await;
    sweep.tick().await;
    loop {
        tokio::select! {
            _ = hub.shutdown.cancelled() => return,
            _ = beat.tick() => {
                hub.registry.each(|conn| {
                    conn.outbox.push(&heartbeat);
                    conn.outbox.ping();
                });
            }
            _ = sweep.tick() => {
                hub.evict_idle_rooms();
                let now = hub.clock.stamp();
                let wall = now_ms();
                hub.registry.each(|conn| {
                    let stalled = conn.stalled_since();
                    let silent = since(now, conn.last_seen());
                    if silent > idle_limit {
                        conn.outbox.close_now(Close { code: close::IDLE_TIMEOUT, reason: "idle timeout" });
                    } else if stalled.is_some_and(|at| since(now, at) > write_limit) {
                        // Counted once, though the sweep may see it again
                        // before its task is gone.
                        if conn.outbox.close_now(Close { code: close::SLOW_CONSUMER, reason: "write timeout" }) {
                            Metrics::inc(&hub.metrics.slow_consumers);
                            tracing::info!(conn = conn.id, "closing a connection whose socket takes nothing");
                        }
                    } else if conn.account.as_ref().is_some_and(|a| a.expires_at <= wall) {
                        conn.outbox.close_after_drain(Close { code: close::SESSION_EXPIRED, reason: "session expired" });
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_between_stamps_survive_the_wrap_and_a_later_touch_is_no_silence() {
        assert_eq!(since(1_000, 400), 600);
        // 49.7 days after the start the stamp wraps; spans stay right.
        assert_eq!(since(5, u32::MAX - 4), 10);
        // Touched on another thread after the sweep read the clock: no
        // silence, not 49 days of it.
        assert_eq!(since(400, 1_000), 0);
    }
}
