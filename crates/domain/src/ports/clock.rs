use time::OffsetDateTime;
use uuid::Uuid;

/// The source of "now", so tests can fix time.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;
}

/// The source of new ids, so tests can fix them.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait IdGenerator: Send + Sync {
    fn new_id(&self) -> Uuid;
}

/// The wall clock, in UTC.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// Time-ordered UUIDv7 ids, which keep B-tree inserts local.
///
/// Every id carries 74 fresh random bits after its millisecond timestamp. (`Uuid::now_v7`
/// instead continues a counter within a millisecond, so an id made right after another — a
/// user's default wallet after the user — shares 92 of its bits with it, and one id would
/// guess the other.) Ids are ordered by their millisecond only.
#[derive(Debug, Default, Clone, Copy)]
pub struct UuidV7Generator;

impl IdGenerator for UuidV7Generator {
    fn new_id(&self) -> Uuid {
        Uuid::new_v7(uuid::Timestamp::now(uuid::NoContext))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_ids_share_only_their_timestamp() {
        let ids = UuidV7Generator;
        for _ in 0..64 {
            let (a, b) = (ids.new_id().as_u128(), ids.new_id().as_u128());
            // The 48-bit millisecond, the version and variant bits may match; two random 74-bit
            // strings share their first 32 bits with probability 2^-32. A counter shares 92.
            let shared = (a ^ b).leading_zeros();
            assert!(
                shared < 48 + 4 + 2 + 32,
                "ids {a:x} and {b:x} share {shared} bits"
            );
        }
    }
}
