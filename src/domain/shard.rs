//! Shards: the queue split into `{prefix:0}` … `{prefix:N-1}` so Redis Cluster can spread it
//! over nodes. A number's shard is a stable hash of the number (its code, caps, jobs and stream
//! entries share one slot, so issuing a code stays one script); a job id carries its shard in
//! its first byte, so a lookup by id is one read.

use std::fmt;

/// One shard: an index below the configured count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shard(u8);

impl Shard {
    /// Shard 0 always exists; it also holds what the fleet shares (rate, pause, heartbeats).
    pub const FIRST: Shard = Shard(0);

    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// How many shards there are: 1 to 256 (a job id has one byte for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shards(u16);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be between 1 and {max}", max = Shards::MAX)]
pub struct InvalidShards;

impl Shards {
    pub const MAX: u16 = 256;
    pub const ONE: Shards = Shards(1);

    pub fn new(count: u64) -> Result<Self, InvalidShards> {
        match u16::try_from(count) {
            Ok(n) if (1..=Self::MAX).contains(&n) => Ok(Self(n)),
            _ => Err(InvalidShards),
        }
    }

    pub fn count(self) -> usize {
        self.0 as usize
    }

    pub fn all(self) -> impl DoubleEndedIterator<Item = Shard> + ExactSizeIterator + Clone {
        // `count` is at most 256, so every index fits a byte.
        (0..self.0).map(|i| Shard(i as u8))
    }

    /// The shard of a number: FNV-1a of its digits. Stable across versions and processes,
    /// which is all it must be (it is not a defence against anyone).
    pub fn of_mobile(self, mobile: &super::Mobile) -> Shard {
        let hash = mobile
            .as_str()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
            });
        Shard((hash % self.0 as u64) as u8)
    }

    /// The shard a job id names. Ids made before shards existed (random first byte) and any
    /// id under one shard map to shard 0.
    pub fn of_job(self, id: &super::JobId) -> Shard {
        Shard((id.shard_byte() as u16 % self.0) as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{JobId, Mobile};

    #[test]
    fn counts_are_bounded() {
        assert!(Shards::new(0).is_err());
        assert!(Shards::new(257).is_err());
        assert_eq!(Shards::new(256).map(Shards::count), Ok(256));
        assert_eq!(Shards::new(6).map(|s| s.all().count()), Ok(6));
    }

    #[test]
    fn a_job_id_names_its_shard() {
        let shards = Shards::new(6).unwrap();
        for shard in shards.all() {
            let id = JobId::generate_in(shard);
            assert_eq!(shards.of_job(&id), shard);
            assert_eq!(Shards::ONE.of_job(&id), Shard::FIRST);
        }
    }

    #[test]
    fn numbers_spread_over_shards_and_stay_put() {
        let shards = Shards::new(4).unwrap();
        let mut seen = [0u32; 4];
        for n in 0..400u32 {
            let mobile = Mobile::parse(&format!("1380013{n:04}")).unwrap();
            let shard = shards.of_mobile(&mobile);
            assert_eq!(shard, shards.of_mobile(&mobile));
            seen[shard.index()] += 1;
        }
        // A fair hash puts ~100 in each; 50 is far outside chance.
        assert!(seen.iter().all(|&n| n > 50), "{seen:?}");
        // Pinned: the hash must never change under a running system.
        let m = Mobile::parse("13800138000").unwrap();
        assert_eq!(shards.of_mobile(&m), Shard(3));
        assert_eq!(Shards::new(6).unwrap().of_mobile(&m), Shard(1));
        assert_eq!(Shards::ONE.of_mobile(&m), Shard::FIRST);
    }
}
