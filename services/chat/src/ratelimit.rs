//! Per-user rate limits (sends, typing signals) counted in the store, so one user gets one
//! budget however many chat replicas serve them.
//!
//! The bucket is a GCRA ([`gcra`]; in Redis a small Lua script, `store/redis/limit.rs`): one
//! number per user, the theoretical arrival time of the next event at the sustained rate.
//!
//! **Fast path.** A refused event does not change the bucket, and the time until the next
//! allowed one only grows, so a replica that was told "retry in 300 ms" knows every attempt of
//! that user in the next 300 ms would be refused too: it refuses them itself without asking
//! Redis. That is exact (it never refuses what Redis would allow), and it keeps a client
//! hammering the limit from costing a Redis round trip per attempt.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::store::ChatStore;
use crate::ChatError;

/// Users remembered as refused, at most (expired entries are swept past this).
const MAX_DENIED: usize = 10_000;

/// One GCRA step: with theoretical arrival time `tat` (µs, `None` for a fresh bucket) at
/// `now`, allows an event (returning the new `tat`) or refuses it (returning the ms to wait).
/// `interval` is 1/rate in µs; up to `burst` events may be taken at once.
pub fn gcra(tat: Option<u64>, now: u64, interval: u64, burst: f64) -> Result<u64, u64> {
    let tat = tat.unwrap_or(now).max(now);
    let new_tat = tat + interval;
    let allow_at = new_tat as f64 - burst * interval as f64;
    if allow_at > now as f64 {
        Err((((allow_at - now as f64) / 1000.0).ceil() as u64).max(1))
    } else {
        Ok(new_tat)
    }
}

/// The emission interval of `rate` events per second, in µs.
pub fn interval_us(rate: f64) -> u64 {
    (1_000_000.0 / rate.max(0.001)).round().max(1.0) as u64
}

/// A per-user limit of one kind (e.g. `send`), counted in the store.
pub struct RateLimiter {
    kind: &'static str,
    rate: f64,
    burst: f64,
    /// Users refused recently, and until when any attempt of theirs will be refused.
    denied: Mutex<HashMap<String, Instant>>,
}

impl RateLimiter {
    /// `rate` events per second per user, at most `burst` at once; `kind` names the bucket.
    pub fn new(kind: &'static str, rate: f64, burst: f64) -> Self {
        Self {
            kind,
            rate: rate.max(0.001),
            burst: burst.max(1.0),
            denied: Mutex::new(HashMap::new()),
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

    fn limited(&self, retry_ms: u64) -> ChatError {
        ChatError::RateLimited {
            what: if self.kind == "send" {
                "messages"
            } else {
                "typing signals"
            },
            rate: self.rate,
            burst: self.burst,
            retry_ms,
        }
    }

    /// Takes one event for `user`, or `RESOURCE_EXHAUSTED` with the time to wait.
    pub async fn check(&self, store: &dyn ChatStore, user: &str) -> Result<(), ChatError> {
        let now = Instant::now();
        {
            let mut denied = self.denied.lock().unwrap_or_else(|e| e.into_inner());
            match denied.get(user) {
                Some(until) if *until > now => {
                    let ms = until.duration_since(now).as_millis() as u64;
                    return Err(self.limited(ms.max(1)));
                }
                Some(_) => {
                    denied.remove(user);
                }
                None => {}
            }
        }
        let bucket = crate::store::keys::rate(self.kind, user);
        match store.take_token(&bucket, self.rate, self.burst).await? {
            Ok(()) => Ok(()),
            Err(retry_ms) => {
                let mut denied = self.denied.lock().unwrap_or_else(|e| e.into_inner());
                if denied.len() >= MAX_DENIED {
                    denied.retain(|_, until| *until > now);
                }
                if denied.len() < MAX_DENIED {
                    denied.insert(user.to_string(), now + Duration::from_millis(retry_ms));
                }
                Err(self.limited(retry_ms))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh bucket gives the burst at once, then one event per interval; the wait it
    /// announces is exact, and a refusal does not change the bucket.
    #[test]
    fn gcra_burst_then_rate() {
        let iv = interval_us(5.0);
        assert_eq!(iv, 200_000);
        let t0 = 1_000_000_000;
        let mut tat = None;
        for _ in 0..10 {
            tat = Some(gcra(tat, t0, iv, 10.0).unwrap());
        }
        assert_eq!(gcra(tat, t0, iv, 10.0), Err(200));
        assert_eq!(
            gcra(tat, t0 + 50_000, iv, 10.0),
            Err(150),
            "refusals change nothing"
        );
        let tat = Some(gcra(tat, t0 + 200_000, iv, 10.0).unwrap());
        assert_eq!(gcra(tat, t0 + 250_000, iv, 10.0), Err(150));
        // Idle for long: the bucket is full again, not fuller.
        let mut tat = tat;
        let later = t0 + 60_000_000;
        for _ in 0..10 {
            tat = Some(gcra(tat, later, iv, 10.0).unwrap());
        }
        assert!(gcra(tat, later, iv, 10.0).is_err());
    }

    /// The error says what was limited, the limits, and when to retry.
    #[test]
    fn error_message() {
        let rl = RateLimiter::new("send", 5.0, 10.0);
        assert_eq!(
            rl.limited(200).to_string(),
            "rate limit exceeded: at most 5 messages/s (burst 10); retry in 200 ms"
        );
        let rl = RateLimiter::new("typing", 1.0, 5.0);
        assert!(rl.limited(1).to_string().contains("typing signals/s"));
    }
}
