//! The reconnect policy: how long to wait before the next attempt.
//!
//! Exponential backoff with *full jitter*: before attempt `n` (0 for the
//! first retry after a loss) wait a uniformly random time in
//! `[0, min(cap, base · 2ⁿ))`, never less than `floor`. Jitter spreads a
//! crowd of clients that lost the server at the same moment, so a restarted
//! server is not hit by all of them at once. The random number is passed
//! in: this crate has no source of randomness (and none that builds for
//! wasm without a browser).

/// Reconnect delays, and how many attempts have failed since the last
/// success.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    /// Upper bound of the first delay, in ms; it doubles per failed attempt.
    base_ms: u64,
    /// Largest upper bound, in ms.
    cap_ms: u64,
    /// Smallest delay, in ms, so a flapping server is never hammered.
    floor_ms: u64,
    /// Failed attempts since the last [`Backoff::reset`].
    attempt: u32,
}

impl Backoff {
    /// A policy with delays bounded by `base_ms · 2ⁿ`, at most `cap_ms`, and
    /// no floor.
    pub fn new(base_ms: u64, cap_ms: u64) -> Backoff {
        Backoff {
            base_ms,
            cap_ms,
            floor_ms: 0,
            attempt: 0,
        }
    }

    /// The same policy, but no delay shorter than `floor_ms`.
    pub fn with_floor(mut self, floor_ms: u64) -> Backoff {
        self.floor_ms = floor_ms;
        self
    }

    /// Failed attempts since the last success: 0 before the first retry.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The upper bound of the delay before the next attempt.
    pub fn bound_ms(&self) -> u64 {
        self.base_ms
            .saturating_mul(1u64 << self.attempt.min(32))
            .min(self.cap_ms)
    }

    /// The delay before the next attempt, in ms, and counts the attempt.
    /// `random` is uniform in `[0, 1)` (values outside are clamped).
    pub fn next_delay_ms(&mut self, random: f64) -> u64 {
        let bound = self.bound_ms();
        self.attempt = self.attempt.saturating_add(1);
        let random = if random.is_finite() {
            random.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let delay = ((bound as f64) * random) as u64;
        delay.min(bound.saturating_sub(1)).max(self.floor_ms)
    }

    /// A connection succeeded (was welcomed): the next loss starts over.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_doubles_per_attempt_up_to_the_cap() {
        let mut backoff = Backoff::new(100, 2_000);
        let bounds: Vec<u64> = (0..8)
            .map(|_| {
                let bound = backoff.bound_ms();
                backoff.next_delay_ms(0.5);
                bound
            })
            .collect();
        assert_eq!(bounds, [100, 200, 400, 800, 1_600, 2_000, 2_000, 2_000]);
        assert_eq!(backoff.attempt(), 8);
        backoff.reset();
        assert_eq!(backoff.attempt(), 0);
        assert_eq!(backoff.bound_ms(), 100);
    }

    #[test]
    fn delays_are_full_jitter_below_the_bound() {
        let mut backoff = Backoff::new(100, 2_000);
        assert_eq!(backoff.next_delay_ms(0.0), 0);
        assert_eq!(backoff.next_delay_ms(0.5), 100); // bound 200
        assert_eq!(backoff.next_delay_ms(0.999_999), 399); // bound 400, exclusive
        assert_eq!(backoff.next_delay_ms(7.0), 799, "clamped into [0, 1)");
        assert_eq!(backoff.next_delay_ms(f64::NAN), 0);
    }

    #[test]
    fn the_floor_holds_and_huge_attempts_do_not_overflow() {
        let mut backoff = Backoff::new(500, 15_000).with_floor(100);
        assert_eq!(backoff.next_delay_ms(0.0), 100);
        for _ in 0..100 {
            assert!(backoff.next_delay_ms(0.999) < 15_000);
        }
        let mut huge = Backoff::new(u64::MAX / 2, u64::MAX);
        for _ in 0..70 {
            huge.next_delay_ms(0.5);
        }
        assert_eq!(huge.bound_ms(), u64::MAX);
    }
}
