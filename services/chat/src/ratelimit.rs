//! Per-user send rate limit: a token bucket per username, in this process.
//!
//! Per process is a deliberate choice (docs/chat.md): it costs no Redis round trip on the send
//! path; with N replicas a user could in theory send N times the rate, but a client's
//! connection stays on one replica, so in practice the limit holds.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Token buckets keyed by username.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// `rate` tokens per second, at most `burst` saved up.
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate: rate.max(0.001),
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Sustained rate.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Burst size.
    pub fn burst(&self) -> f64 {
        self.burst
    }

    /// Takes a token for `user` at `now`; `Err(ms until one is available)` when empty.
    pub fn check_at(&self, user: &str, now: Instant) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > 10_000 {
            // Forget users whose bucket is full again: they are indistinguishable from new ones.
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let (tokens, at) = buckets.entry(user.to_string()).or_insert((self.burst, now));
        let refilled = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * self.rate)
            .min(self.burst);
        *at = now;
        if refilled >= 1.0 {
            *tokens = refilled - 1.0;
            Ok(())
        } else {
            *tokens = refilled;
            Err((((1.0 - refilled) / self.rate) * 1000.0).ceil() as u64)
        }
    }

    /// [`RateLimiter::check_at`] now.
    pub fn check(&self, user: &str) -> Result<(), u64> {
        self.check_at(user, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A user gets the burst at once, then the sustained rate; users don't share buckets.
    #[test]
    fn burst_then_rate() {
        let rl = RateLimiter::new(5.0, 10.0);
        let t0 = Instant::now();
        for _ in 0..10 {
            assert!(rl.check_at("alice", t0).is_ok());
        }
        let wait = rl.check_at("alice", t0).unwrap_err();
        assert_eq!(wait, 200);
        assert!(rl.check_at("bob", t0).is_ok());
        assert!(rl
            .check_at("alice", t0 + Duration::from_millis(200))
            .is_ok());
        assert!(rl
            .check_at("alice", t0 + Duration::from_millis(250))
            .is_err());
    }
}
