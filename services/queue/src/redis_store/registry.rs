//! The queues a store knows: each one's keys and cached kinds, and the `pfc:queues` set that
//! names every queue that ever had a job.
//!
//! Each queue lives in its own hash slot (`pfc:{<queue>}:…`), so nothing can list the queues
//! atomically with their contents; the registry is a plain set outside every queue's slot,
//! written (once per process and queue) before a queue's first submit. A queue in the set
//! may be empty; a queue missing from it can't have jobs, because its first submit waited for
//! the `SADD`. Takes from "every queue", housekeeping, `ListQueues` and the cluster event
//! listener read it, cached for [`QUEUES_TTL`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::keys::Keys;
use crate::DEFAULT_QUEUE;

/// The set of every queue name (no hash tag: its own slot).
pub(crate) const QUEUES_KEY: &str = "pfc:queues";
/// How long the list of queues is cached.
pub(crate) const QUEUES_TTL: Duration = Duration::from_secs(1);

/// One queue: its keys and the kinds submitted to it (cached).
pub(crate) struct Queue {
    /// Queue name.
    pub(crate) name: String,
    /// Its keys.
    pub(crate) keys: Keys,
    /// Every kind of the queue (`kinds` set) and when it was read: housekeeping declares
    /// their lists.
    pub(crate) kinds: Mutex<(Option<Instant>, Vec<String>)>,
}

/// Every queue this process met, and the cached registry.
#[derive(Default)]
pub(crate) struct Registry {
    queues: Mutex<HashMap<String, Arc<Queue>>>,
    /// Names known to be in [`QUEUES_KEY`] (registered or read from it).
    registered: Mutex<std::collections::BTreeSet<String>>,
    /// The last read of [`QUEUES_KEY`].
    listed: Mutex<Option<(Instant, Vec<String>)>>,
}

impl Registry {
    /// The queue named `name` (its keys are made once per process).
    pub(crate) fn get(&self, name: &str) -> Arc<Queue> {
        let mut g = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        g.entry(name.to_owned())
            .or_insert_with(|| {
                Arc::new(Queue {
                    name: name.to_owned(),
                    keys: Keys::new(name),
                    kinds: Mutex::new((None, Vec::new())),
                })
            })
            .clone()
    }

    /// True when `name` is known to be in the registry set (no `SADD` needed).
    pub(crate) fn is_registered(&self, name: &str) -> bool {
        name == DEFAULT_QUEUE
            || self
                .registered
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(name)
    }

    /// Notes that `name` is in the registry set.
    pub(crate) fn mark_registered(&self, name: &str) {
        self.registered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned());
        // the next listing must include it
        *self.listed.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Every queue this process knows to be in the registry set, and the default one: the
    /// list to use while the set cannot be read.
    pub(crate) fn known(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .registered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        names.push(DEFAULT_QUEUE.to_owned());
        names.sort();
        names.dedup();
        names
    }

    /// Drops the cached listing: the next one reads the registry set.
    pub(crate) fn forget_listing(&self) {
        *self.listed.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The cached list of queues, when still fresh.
    pub(crate) fn cached(&self) -> Option<Vec<String>> {
        let g = self.listed.lock().unwrap_or_else(|p| p.into_inner());
        g.as_ref()
            .filter(|(at, _)| at.elapsed() < QUEUES_TTL)
            .map(|(_, l)| l.clone())
    }

    /// Stores a fresh read of the registry set; returns it with the default queue, sorted.
    pub(crate) fn store(&self, mut names: Vec<String>) -> Vec<String> {
        if !names.iter().any(|n| n == DEFAULT_QUEUE) {
            names.push(DEFAULT_QUEUE.to_owned());
        }
        names.sort();
        names.dedup();
        {
            let mut r = self.registered.lock().unwrap_or_else(|p| p.into_inner());
            r.extend(names.iter().cloned());
        }
        *self.listed.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((Instant::now(), names.clone()));
        names
    }
}
