//! Key names of one queue. Every script receives the same [`Keys::all`] list as `KEYS`, in
//! the order `lua/prelude.lua` expects, so no script builds a key name (Redis Cluster and
//! Dragonfly require keys to be declared) and all of them share the `{queue}` hash tag.

/// The keys and channel of one queue.
pub(crate) struct Keys {
    slot: u16,
    prefix: String,
    all: Vec<String>,
    channel: String,
}

/// Key suffixes in `KEYS` order (must match `K` in `lua/prelude.lua`).
const SUFFIXES: [&str; 20] = [
    "jobs",
    "input",
    "output",
    "status:queued",
    "scheduled",
    "leases",
    "all",
    "expiring",
    "idem",
    "stats",
    "kinds",
    "clock",
    "workers",
    "winfo",
    "status:scheduled",
    "status:done",
    "status:failed",
    "status:cancelled",
    "conf",
    "starts",
];

impl Keys {
    /// The keys of queue `queue` (`pfc:{queue}:…`).
    pub(crate) fn new(queue: &str) -> Self {
        let prefix = format!("pfc:{{{queue}}}:");
        Self {
            slot: hash_slot(queue.as_bytes()),
            all: SUFFIXES.iter().map(|s| format!("{prefix}{s}")).collect(),
            channel: format!("{prefix}events"),
            prefix,
        }
    }

    /// The Redis Cluster slot of every key of the queue.
    pub(crate) fn slot(&self) -> u16 {
        self.slot
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

    /// The ready set of a kind: jobs queued for it, a sorted set ordered by priority, then
    /// FIFO (`pending:` — the `ready:` lists of earlier versions were plain lists).
    pub(crate) fn ready(&self, kind: &str) -> String {
        format!("{}pending:{kind}", self.prefix)
    }

    /// The wake list of a kind (tokens for its idle workers).
    pub(crate) fn wake(&self, kind: &str) -> String {
        format!("{}wake:{kind}", self.prefix)
    }
}

/// Redis Cluster's slot of a hash tag: CRC16 (XMODEM) mod 16384.
pub(crate) fn hash_slot(tag: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in tag {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slot matches Redis's own (`CLUSTER KEYSLOT 123456789` = 12739, the reference value).
    #[test]
    fn hash_slots_match_redis() {
        assert_eq!(hash_slot(b"123456789"), 12739);
        assert_eq!(Keys::new("default").slot(), hash_slot(b"default"));
    }

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
