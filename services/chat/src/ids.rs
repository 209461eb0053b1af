//! Message ids: Redis stream ids (`<ms>-<seq>`), totally ordered within a room.

use std::fmt;
use std::str::FromStr;

use crate::ChatError;

/// A stream id: milliseconds and a sequence number within that millisecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MessageId {
    /// Milliseconds since the epoch (the send time).
    pub ms: u64,
    /// Sequence within the millisecond.
    pub seq: u64,
}

impl MessageId {
    /// `0-0`: before every message.
    pub const ZERO: MessageId = MessageId { ms: 0, seq: 0 };

    /// The id right before this one (for exclusive upper bounds): `ms-(seq-1)` or `(ms-1)-MAX`.
    pub fn prev(self) -> Option<MessageId> {
        match (self.ms, self.seq) {
            (0, 0) => None,
            (ms, 0) => Some(MessageId {
                ms: ms - 1,
                seq: u64::MAX,
            }),
            (ms, seq) => Some(MessageId { ms, seq: seq - 1 }),
        }
    }

    /// Parses an id sent by a client: empty means `None`; malformed is INVALID_ARGUMENT.
    pub fn parse_opt(field: &str, s: &str) -> Result<Option<MessageId>, ChatError> {
        if s.is_empty() {
            return Ok(None);
        }
        s.parse().map(Some).map_err(|_| {
            ChatError::InvalidArgument(format!(
                "{field} must be a message id like \"1732380000000-0\""
            ))
        })
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

impl FromStr for MessageId {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let (ms, seq) = s.split_once('-').unwrap_or((s, "0"));
        Ok(MessageId {
            ms: ms.parse().map_err(|_| ())?,
            seq: seq.parse().map_err(|_| ())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids order numerically (not as strings), print and parse back, and `prev` steps back one.
    #[test]
    fn ordering_parsing_prev() {
        let a: MessageId = "999-5".parse().unwrap();
        let b: MessageId = "1000-0".parse().unwrap();
        assert!(a < b);
        assert_eq!(b.to_string(), "1000-0");
        assert_eq!(
            b.prev(),
            Some(MessageId {
                ms: 999,
                seq: u64::MAX
            })
        );
        assert_eq!(a.prev().unwrap().to_string(), "999-4");
        assert_eq!(MessageId::ZERO.prev(), None);
        assert!(MessageId::parse_opt("after_id", "x-1").is_err());
        assert_eq!(MessageId::parse_opt("after_id", "").unwrap(), None);
    }
}
