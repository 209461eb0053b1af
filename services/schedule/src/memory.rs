//! [`MemoryScheduleStore`]: schedules in a mutex-guarded map, for `pfc dev` and tests. Same
//! semantics as Redis; its clock is the process's, and there is one scheduler, so it always
//! leads.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::{
    LastFire, Result, Schedule, ScheduleError, ScheduleState, ScheduleStore, MAX_SCHEDULES,
};

/// Schedules in memory (they live as long as the process).
#[derive(Default)]
pub struct MemoryScheduleStore {
    map: Mutex<BTreeMap<String, ScheduleState>>,
}

impl MemoryScheduleStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ScheduleState>> {
        // a panic while holding the lock leaves consistent data (every change is one insert)
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl ScheduleStore for MemoryScheduleStore {
    async fn now(&self) -> Result<i64> {
        Ok(pfc_queue::now_ms())
    }

    async fn lead(&self, _instance: &str, _term: Duration) -> Result<Option<i64>> {
        Ok(Some(pfc_queue::now_ms()))
    }

    async fn create(&self, schedule: &Schedule, next_ms: Option<i64>) -> Result<()> {
        let mut map = self.map();
        if map.contains_key(&schedule.name) {
            return Err(ScheduleError::AlreadyExists(schedule.name.clone()));
        }
        if map.len() >= MAX_SCHEDULES {
            return Err(ScheduleError::Full(MAX_SCHEDULES));
        }
        map.insert(
            schedule.name.clone(),
            ScheduleState {
                schedule: schedule.clone(),
                next_ms,
                last: None,
            },
        );
        Ok(())
    }

    async fn get(&self, name: &str) -> Result<Option<ScheduleState>> {
        Ok(self.map().get(name).cloned())
    }

    async fn list(&self) -> Result<Vec<ScheduleState>> {
        Ok(self.map().values().cloned().collect())
    }

    async fn due(&self, now_ms: i64) -> Result<Vec<(String, i64)>> {
        Ok(self
            .map()
            .values()
            .filter_map(|s| {
                s.next_ms
                    .filter(|t| *t <= now_ms)
                    .map(|t| (s.schedule.name.clone(), t))
            })
            .collect())
    }

    async fn replace(
        &self,
        expected: &Schedule,
        new: &Schedule,
        next_ms: Option<Option<i64>>,
    ) -> Result<bool> {
        let mut map = self.map();
        let Some(cur) = map.get_mut(&expected.name) else {
            return Err(ScheduleError::NotFound(expected.name.clone()));
        };
        // compare what Redis compares: the stored bytes
        if cur.schedule.to_json() != expected.to_json() {
            return Ok(false);
        }
        cur.schedule = new.clone();
        if let Some(n) = next_ms {
            cur.next_ms = n;
        }
        Ok(true)
    }

    async fn advance(
        &self,
        name: &str,
        expected_next: i64,
        next_ms: Option<i64>,
        last: Option<&LastFire>,
    ) -> Result<bool> {
        let mut map = self.map();
        let Some(cur) = map.get_mut(name) else {
            return Ok(false);
        };
        if cur.next_ms != Some(expected_next) {
            return Ok(false);
        }
        cur.next_ms = next_ms;
        if let Some(l) = last {
            cur.last = Some(l.clone());
        }
        Ok(true)
    }

    async fn delete(&self, name: &str) -> Result<bool> {
        Ok(self.map().remove(name).is_some())
    }
}
