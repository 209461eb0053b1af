//! Read markers and unread counts: the id of the last message each user has read in a room,
//! in the room's hash `pfc:chat:{<room>}:read` (field = username), next to the room's stream
//! (same hash tag, so one script sees both).

use redis::{RedisError, Script};

use super::RedisStore;
use crate::{ChatError, MessageId};

/// `KEYS[1]` = stream, `KEYS[2]` = read hash; `ARGV` = user, ms, seq of the id read.
/// Clamps the id to the room's newest message (a marker never points past what readers can
/// see) and never moves a marker back. Returns the stored marker (`""` for an empty room).
const MARK_READ: &str = r#"
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #newest == 0 then return '' end
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function less(am, as, bm, bs) return am < bm or (am == bm and as < bs) end
local nm, ns = parse(newest[1][1])
local id = ARGV[2] .. '-' .. ARGV[3]
local im, is = tonumber(ARGV[2]), tonumber(ARGV[3])
if less(nm, ns, im, is) then id, im, is = newest[1][1], nm, ns end
local cur = redis.call('HGET', KEYS[2], ARGV[1])
if cur then
  local cm, cs = parse(cur)
  if cm and not less(cm, cs, im, is) then return cur end
end
redis.call('HSET', KEYS[2], ARGV[1], id)
return id
"#;

/// `KEYS[1]` = stream, `KEYS[2]` = read hash; `ARGV` = user, cap. Returns `{marker, n}`: the
/// user's marker (`""` if none, then n = 0) and how many messages by others follow it (at most
/// cap).
const UNREAD: &str = r#"
local m = redis.call('HGET', KEYS[2], ARGV[1])
if not m then return {'', 0} end
local entries = redis.call('XRANGE', KEYS[1], '(' .. m, '+', 'COUNT', tonumber(ARGV[2]))
local n = 0
for _, e in ipairs(entries) do
  local f = e[2]
  local author = nil
  for i = 1, #f, 2 do if f[i] == 'a' then author = f[i + 1] end end
  if author ~= ARGV[1] then n = n + 1 end
end
return {m, n}
"#;

pub(super) fn mark_read_script() -> Script {
    Script::new(MARK_READ)
}

pub(super) fn unread_script() -> Script {
    Script::new(UNREAD)
}

impl RedisStore {
    pub(super) async fn mark_read_impl(
        &self,
        room: &str,
        user: &str,
        id: MessageId,
    ) -> Result<Option<MessageId>, ChatError> {
        let mut conn = self.conn().await?;
        let r: Result<String, RedisError> = self
            .scripts
            .mark_read
            .key(super::keys::messages(room))
            .key(super::keys::read(room))
            .arg(user)
            .arg(id.ms)
            .arg(id.seq)
            .invoke_async(&mut conn)
            .await;
        let stored = self.check(r)?;
        if stored.is_empty() {
            return Ok(None);
        }
        stored
            .parse()
            .map(Some)
            .map_err(|_| ChatError::Corrupt(format!("read marker {stored:?}")))
    }

    pub(super) async fn unread_impl(
        &self,
        user: &str,
        rooms: &[String],
        cap: usize,
    ) -> Result<Vec<Option<(MessageId, usize)>>, ChatError> {
        let conn = self.conn().await?;
        // Concurrent calls on the multiplexed connection go out pipelined.
        let calls = rooms.iter().map(|room| {
            let mut conn = conn.clone();
            async move {
                let r: Result<(String, usize), RedisError> = self
                    .scripts
                    .unread
                    .key(super::keys::messages(room))
                    .key(super::keys::read(room))
                    .arg(user)
                    .arg(cap)
                    .invoke_async(&mut conn)
                    .await;
                r
            }
        });
        let mut out = Vec::with_capacity(rooms.len());
        for r in futures::future::join_all(calls).await {
            let (marker, n) = self.check(r)?;
            out.push(if marker.is_empty() {
                None
            } else {
                let id = marker
                    .parse()
                    .map_err(|_| ChatError::Corrupt(format!("read marker {marker:?}")))?;
                Some((id, n))
            });
        }
        Ok(out)
    }
}
