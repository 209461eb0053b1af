//! Named queues: the name rule, how a job id carries its queue, and what `ListQueues` shows.
//!
//! A job id names its queue, so every call that has only an id (get, cancel, watch, a
//! worker's report) finds the queue — and on Redis its hash slot — without a lookup: jobs of
//! the `default` queue keep a bare ULID (the ids every client has seen so far), jobs of any
//! other queue get `<queue>.<ULID>`. A ULID is 26 characters of Crockford base32 with no
//! `.`, so the queue is everything before the final 27 characters (`docs/design.md`).

/// The queue of a submit that names none.
pub const DEFAULT_QUEUE: &str = "default";
/// Longest queue name, in bytes (`[a-z0-9][a-z0-9._-]{0,63}`).
pub const MAX_QUEUE: usize = 64;
/// Length of a ULID, the time-ordered part of every job id.
const ULID_LEN: usize = 26;

/// True for a well-formed queue name: `[a-z0-9][a-z0-9._-]{0,63}` (the kind rule).
pub fn is_valid_queue(name: &str) -> bool {
    let b = name.as_bytes();
    let lower_digit = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.len() <= MAX_QUEUE
        && lower_digit(&b[0])
        && b[1..]
            .iter()
            .all(|c| lower_digit(c) || matches!(c, b'.' | b'_' | b'-'))
}

/// The queue name a request means: empty is [`DEFAULT_QUEUE`].
pub fn queue_or_default(name: &str) -> &str {
    if name.is_empty() {
        DEFAULT_QUEUE
    } else {
        name
    }
}

/// A new job id in `queue` (a bare ULID in the default queue, `<queue>.<ULID>` elsewhere).
pub fn new_id_in(queue: &str) -> String {
    let ulid = crate::model::new_job_id();
    if queue == DEFAULT_QUEUE || queue.is_empty() {
        ulid
    } else {
        format!("{queue}.{ulid}")
    }
}

/// `(queue, ULID)` of an id that names a queue (`<queue>.<ULID>`), else `None`.
fn split(id: &str) -> Option<(&str, &str)> {
    let at = id.len().checked_sub(ULID_LEN + 1)?;
    if at == 0 || id.as_bytes()[at] != b'.' {
        return None;
    }
    // the byte at `at` is an ASCII '.', so both sides are char boundaries
    let (q, rest) = (&id[..at], &id[at + 1..]);
    is_valid_queue(q).then_some((q, rest))
}

/// The queue a job id belongs to. Ids that do not name a queue belong to the default one
/// (a malformed id then simply is not found there).
pub fn queue_of(id: &str) -> &str {
    split(id).map_or(DEFAULT_QUEUE, |(q, _)| q)
}

/// The time-ordered part of a job id (its ULID): ids of different queues sort by it.
pub fn sort_key(id: &str) -> &str {
    split(id).map_or(id, |(_, u)| u)
}

/// One queue as `ListQueues` shows it: its depth, in-flight work and counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueInfo {
    /// Queue name.
    pub name: String,
    /// Jobs waiting for a worker.
    pub queued: u64,
    /// Jobs waiting for their run time or a retry.
    pub scheduled: u64,
    /// Jobs leased by workers.
    pub processing: u64,
    /// Counter: accepted.
    pub submitted_total: u64,
    /// Counter: finished.
    pub done_total: u64,
    /// Counter: failed for good.
    pub failed_total: u64,
    /// Counter: cancelled.
    pub cancelled_total: u64,
    /// Counter: deliveries retried.
    pub retried_total: u64,
    /// Paused: accepts submits, leases nothing (in-flight jobs finish; scheduled jobs keep
    /// their due times and become queued).
    pub paused: bool,
    /// The queue's limits.
    pub limits: QueueLimits,
}

/// Limits of one queue, enforced by the take itself (on Redis inside the take script), so
/// they hold across any number of workers and jobs servers. 0 means no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueLimits {
    /// At most this many of the queue's jobs processing at once.
    pub concurrency: u32,
    /// At most this many job starts (deliveries) in any window of `rate_period_ms`.
    pub rate: u32,
    /// The rate limit's window, in ms (0 when there is no rate limit).
    pub rate_period_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Queue names follow the kind rule.
    #[test]
    fn queue_names() {
        for ok in ["default", "a", "0", "mail.high", "a_b-c", &"q".repeat(64)] {
            assert!(is_valid_queue(ok), "{ok}");
        }
        for bad in [
            "",
            "A",
            "-a",
            ".a",
            "a b",
            "a:b",
            "a{b}",
            &"q".repeat(65),
            "é",
        ] {
            assert!(!is_valid_queue(bad), "{bad:?}");
        }
    }

    /// An id names its queue, even when the queue name has dots; default ids are bare ULIDs.
    #[test]
    fn ids_carry_their_queue() {
        let d = new_id_in("default");
        assert_eq!(d.len(), 26);
        assert_eq!(queue_of(&d), "default");
        assert_eq!(sort_key(&d), d);
        for q in ["mail", "mail.high", "a"] {
            let id = new_id_in(q);
            assert_eq!(queue_of(&id), q);
            assert_eq!(sort_key(&id).len(), 26);
            assert!(id.ends_with(sort_key(&id)));
        }
        // garbage never panics and falls back to the default queue
        for bad in [
            "",
            ".",
            "x",
            "Bad.01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "ééééééééééééééééééééééééééééé",
        ] {
            assert_eq!(queue_of(bad), "default", "{bad:?}");
            let _ = sort_key(bad);
        }
        // ULIDs sort by time across queues
        let a = new_id_in("zzz");
        let b = new_id_in("aaa");
        assert!(sort_key(&a) < sort_key(&b));
    }
}
