//! Key names of one queue. Every script receives the same [`Keys::all`] list as `KEYS`, in
//! the order `lua/prelude.lua` expects, so no script builds a key name (Redis Cluster and
//! Dragonfly require keys to be declared) and all of them share the `{queue}` hash tag.

/// The keys and channel of one queue.
pub(crate) struct Keys {
    prefix: String,
    all: Vec<String>,
    channel: String,
}

/// Key suffixes in `KEYS` order (must match `K` in `lua/prelude.lua`).
const SUFFIXES: [&str; 20] = [
    "jobs",
    "input",
    "output",
    "queued",
    "scheduled",
    "leases",
    "all",
    "expiring",
    "idem",
    "stats",
    "wake",
    "clock",
    "workers",
    "winfo",
    "status:scheduled",
    "status:done",
    "status:failed",
    "status:cancelled",
    "kinds",
    "status:queued",
];

impl Keys {
    /// The keys of queue `queue` (`pfc:{queue}:…`).
    pub(crate) fn new(queue: &str) -> Self {
        let prefix = format!("pfc:{{{queue}}}:");
        Self {
            all: SUFFIXES.iter().map(|s| format!("{prefix}{s}")).collect(),
            channel: format!("{prefix}events"),
            prefix,
        }
    }

    /// The prefix shared by every key (`pfc:{default}:`).
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Every fixed key, in `KEYS` order.
    pub(crate) fn all(&self) -> &[String] {
        &self.all
    }

    /// The events channel (pub/sub: not a key).
    pub(crate) fn channel(&self) -> &str {
        &self.channel
    }

    /// One key by suffix (e.g. `"jobs"`).
    pub(crate) fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    /// The receipt of a take request (`KEYS[21]` of `take.lua`).
    pub(crate) fn take_receipt(&self, request: &str) -> String {
        format!("{}take:{request}", self.prefix)
    }

    /// `KEYS[21]` of calls that have no key of their own.
    pub(crate) fn placeholder(&self) -> String {
        format!("{}-", self.prefix)
    }

    /// The ready list of a kind (jobs queued for it, FIFO).
    pub(crate) fn ready(&self, kind: &str) -> String {
        format!("{}ready:{kind}", self.prefix)
    }

    /// The wake list of a kind (tokens for its idle workers).
    pub(crate) fn wake(&self, kind: &str) -> String {
        format!("{}wake:{kind}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key carries the queue's hash tag, so a queue lives in one cluster slot; the
    /// list matches the order the Lua prelude reads.
    #[test]
    fn keys_share_the_hash_tag_in_prelude_order() {
        let k = Keys::new("default");
        assert!(k.all().iter().all(|x| x.starts_with("pfc:{default}:")));
        assert!(k.take_receipt("r1").starts_with("pfc:{default}:"));
        let prelude = include_str!("../lua/prelude.lua");
        for (i, s) in SUFFIXES.iter().enumerate() {
            let needle = format!("= KEYS[{}]", i + 1);
            assert!(prelude.contains(&needle), "prelude lacks {needle} ({s})");
        }
        assert_eq!(k.key("jobs"), k.all()[0]);
    }
}
