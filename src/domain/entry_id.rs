//! A Redis stream entry id, `<ms>-<seq>`: when the entry arrived, and its order.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryId {
    /// Unix ms of the Redis clock when the entry was added.
    pub ms: u64,
    pub seq: u64,
}

impl EntryId {
    /// `None` unless `id` is `<ms>-<seq>`, both decimal.
    pub fn parse(id: &str) -> Option<Self> {
        let (ms, seq) = id.split_once('-')?;
        Some(Self {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }

    /// The smallest id after this one (`XTRIM MINID` keeps it and everything newer).
    pub fn next(self) -> Self {
        match self.seq.checked_add(1) {
            Some(seq) => Self { seq, ..self },
            None => Self {
                ms: self.ms + 1,
                seq: 0,
            },
        }
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_ids_parse_order_and_step() {
        let a = EntryId::parse("1700000000000-9").unwrap();
        let b = EntryId::parse("1700000000000-10").unwrap();
        assert!(a < b, "ordered by number, not text");
        assert_eq!(a.next(), b);
        assert_eq!(a.to_string(), "1700000000000-9");
        for bad in ["", "17", "17-", "-1", "a-1", "1-b", "1-2-3"] {
            assert_eq!(EntryId::parse(bad), None, "{bad:?}");
        }
        let last = EntryId {
            ms: 5,
            seq: u64::MAX,
        };
        assert_eq!(last.next(), EntryId { ms: 6, seq: 0 });
    }
}
