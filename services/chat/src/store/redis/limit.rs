//! The shared send limit: one GCRA bucket per user in Redis, so every replica counts the same
//! sends (a per-process bucket would let a user send N times the rate over N replicas).
//!
//! GCRA (the generic cell rate algorithm) keeps one number per user, the theoretical arrival
//! time `tat` of the next send at the sustained rate. A send at `now` is allowed when
//! `max(tat, now) + interval - burst × interval <= now`, i.e. at most `burst` sends ahead of the
//! rate; it then stores the new `tat` (expiring when it falls back to `now`). A refused send
//! changes nothing, so the time it is told to wait is exact. The clock is Redis' own (`TIME`),
//! the same for every replica.

use redis::{RedisError, Script};

use super::RedisStore;
use crate::ChatError;

/// `KEYS[1]` = bucket; `ARGV[1]` = emission interval (µs), `ARGV[2]` = burst.
/// Returns `{1, 0}` when allowed, `{0, ms until allowed}` when not.
const GCRA: &str = r#"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if allow_at > now then
  return {0, math.ceil((allow_at - now) / 1000)}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, 0}
"#;

impl RedisStore {
    pub(super) async fn gcra(
        &self,
        bucket: &str,
        rate: f64,
        burst: f64,
    ) -> Result<Result<(), u64>, ChatError> {
        let interval_us = crate::ratelimit::interval_us(rate);
        let mut conn = self.conn().await?;
        let r: Result<(u8, u64), RedisError> = self
            .scripts
            .gcra
            .key(bucket)
            .arg(interval_us)
            .arg(burst.max(1.0))
            .invoke_async(&mut conn)
            .await;
        let (allowed, retry_ms) = self.check(r)?;
        Ok(if allowed == 1 {
            Ok(())
        } else {
            Err(retry_ms.max(1))
        })
    }
}

/// The limiter script (loaded once per connection on first use).
pub(super) fn script() -> Script {
    Script::new(GCRA)
}
