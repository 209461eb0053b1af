//! [`RedisScheduleStore`]: schedules in three hashes of their own hash slot
//! (`pfc:{schedules}:defs|next|last`), changed only by Lua scripts, over the job store's
//! connection layer ([`pfc_queue::RedisConnections`]: same settings, reconnects, cluster).
//! Every script's keys share the `{schedules}` tag, so each runs whole on one cluster node.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use pfc_queue::RedisConnections;
use redis::Script;

use crate::{
    LastFire, Result, Schedule, ScheduleError, ScheduleState, ScheduleStore, MAX_SCHEDULES,
};

/// The key prefix: one hash slot for every schedule key.
pub const PREFIX: &str = "pfc:{schedules}:";

fn key(name: &str) -> String {
    format!("{PREFIX}{name}")
}

/// The store's scripts (redis-rs loads them after a `NOSCRIPT`).
struct Scripts {
    now: Script,
    lead: Script,
    create: Script,
    replace: Script,
    advance: Script,
    delete: Script,
}

/// Schedules in Redis.
pub struct RedisScheduleStore {
    conns: RedisConnections,
    scripts: Scripts,
}

impl RedisScheduleStore {
    /// A store over `conns` (the job store's Redis).
    pub fn new(conns: RedisConnections) -> Self {
        Self {
            conns,
            scripts: Scripts {
                now: Script::new(include_str!("lua/now.lua")),
                lead: Script::new(include_str!("lua/lead.lua")),
                create: Script::new(include_str!("lua/create.lua")),
                replace: Script::new(include_str!("lua/replace.lua")),
                advance: Script::new(include_str!("lua/advance.lua")),
                delete: Script::new(include_str!("lua/delete.lua")),
            },
        }
    }

    async fn run<T: redis::FromRedisValue>(&self, inv: &redis::ScriptInvocation<'_>) -> Result<T> {
        let mut conn = self.conns.get().await?;
        Ok(self.conns.check(inv.invoke_async(&mut conn).await)?)
    }
}

fn state(name: &str, def: &str, next: Option<&str>, last: Option<&str>) -> Result<ScheduleState> {
    let corrupt = |detail: String| ScheduleError::Corrupt {
        name: name.to_owned(),
        detail,
    };
    let schedule = Schedule::from_json(def).map_err(|e| corrupt(e.to_string()))?;
    let next_ms = next
        .map(|n| n.parse::<i64>().map_err(|e| corrupt(format!("next: {e}"))))
        .transpose()?;
    let last = last
        .map(|l| serde_json::from_str::<LastFire>(l).map_err(|e| corrupt(format!("last: {e}"))))
        .transpose()?;
    Ok(ScheduleState {
        schedule,
        next_ms,
        last,
    })
}

#[async_trait]
impl ScheduleStore for RedisScheduleStore {
    /// The time of the schedules slot's master (a bare `TIME` would go to any cluster node,
    /// whose clock may differ from the one `lead` reads).
    async fn now(&self) -> Result<i64> {
        let mut inv = self.scripts.now.prepare_invoke();
        inv.key(key("leader"));
        self.run(&inv).await
    }

    async fn lead(&self, instance: &str, term: Duration) -> Result<Option<i64>> {
        let mut inv = self.scripts.lead.prepare_invoke();
        inv.key(key("leader"))
            .arg(instance)
            .arg(term.as_millis() as u64);
        let (leads, now): (i64, i64) = self.run(&inv).await?;
        Ok((leads == 1).then_some(now))
    }

    async fn create(&self, schedule: &Schedule, next_ms: Option<i64>) -> Result<()> {
        let mut inv = self.scripts.create.prepare_invoke();
        inv.key(key("defs"))
            .key(key("next"))
            .key(key("last"))
            .arg(&schedule.name)
            .arg(schedule.to_json())
            .arg(next_ms.map(|n| n.to_string()).unwrap_or_default())
            .arg(MAX_SCHEDULES);
        match self.run::<i64>(&inv).await? {
            1 => Ok(()),
            0 => Err(ScheduleError::AlreadyExists(schedule.name.clone())),
            _ => Err(ScheduleError::Full(MAX_SCHEDULES)),
        }
    }

    async fn get(&self, name: &str) -> Result<Option<ScheduleState>> {
        let mut conn = self.conns.get().await?;
        let (def, next, last): (Option<String>, Option<String>, Option<String>) =
            self.conns.check(
                redis::pipe()
                    .cmd("HGET")
                    .arg(key("defs"))
                    .arg(name)
                    .cmd("HGET")
                    .arg(key("next"))
                    .arg(name)
                    .cmd("HGET")
                    .arg(key("last"))
                    .arg(name)
                    .query_async(&mut conn)
                    .await,
            )?;
        def.map(|d| state(name, &d, next.as_deref(), last.as_deref()))
            .transpose()
    }

    async fn list(&self) -> Result<Vec<ScheduleState>> {
        let mut conn = self.conns.get().await?;
        let (defs, next, last): (
            HashMap<String, String>,
            HashMap<String, String>,
            HashMap<String, String>,
        ) = self.conns.check(
            redis::pipe()
                .cmd("HGETALL")
                .arg(key("defs"))
                .cmd("HGETALL")
                .arg(key("next"))
                .cmd("HGETALL")
                .arg(key("last"))
                .query_async(&mut conn)
                .await,
        )?;
        let mut out = defs
            .iter()
            .map(|(name, d)| {
                state(
                    name,
                    d,
                    next.get(name).map(String::as_str),
                    last.get(name).map(String::as_str),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        out.sort_by(|a, b| a.schedule.name.cmp(&b.schedule.name));
        Ok(out)
    }

    async fn due(&self, now_ms: i64) -> Result<Vec<(String, i64)>> {
        let mut conn = self.conns.get().await?;
        let next: HashMap<String, String> = self.conns.check(
            redis::cmd("HGETALL")
                .arg(key("next"))
                .query_async(&mut conn)
                .await,
        )?;
        let mut due: Vec<(String, i64)> = next
            .into_iter()
            .filter_map(|(n, t)| t.parse::<i64>().ok().map(|t| (n, t)))
            .filter(|(_, t)| *t <= now_ms)
            .collect();
        due.sort_by_key(|(_, t)| *t);
        Ok(due)
    }

    async fn replace(
        &self,
        expected: &Schedule,
        new: &Schedule,
        next_ms: Option<Option<i64>>,
    ) -> Result<bool> {
        let (mode, n) = match next_ms {
            None => ("keep", String::new()),
            Some(None) => ("clear", String::new()),
            Some(Some(t)) => ("set", t.to_string()),
        };
        let mut inv = self.scripts.replace.prepare_invoke();
        inv.key(key("defs"))
            .key(key("next"))
            .arg(&expected.name)
            .arg(expected.to_json())
            .arg(new.to_json())
            .arg(mode)
            .arg(n);
        match self.run::<i64>(&inv).await? {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(ScheduleError::NotFound(expected.name.clone())),
        }
    }

    async fn advance(
        &self,
        name: &str,
        expected_next: i64,
        next_ms: Option<i64>,
        last: Option<&LastFire>,
    ) -> Result<bool> {
        let last = last
            // serialising plain data with derived impls cannot fail
            .map(|l| serde_json::to_string(l).expect("last fire serialises"))
            .unwrap_or_default();
        let mut inv = self.scripts.advance.prepare_invoke();
        inv.key(key("next"))
            .key(key("last"))
            .arg(name)
            .arg(expected_next.to_string())
            .arg(next_ms.map(|n| n.to_string()).unwrap_or_default())
            .arg(last);
        Ok(self.run::<i64>(&inv).await? == 1)
    }

    async fn delete(&self, name: &str) -> Result<bool> {
        let mut inv = self.scripts.delete.prepare_invoke();
        inv.key(key("defs"))
            .key(key("next"))
            .key(key("last"))
            .arg(name);
        Ok(self.run::<i64>(&inv).await? == 1)
    }
}
