//! Throttles for presented secrets: passwords at login, current passwords, fingerprints.
//!
//! An attacker must not be able to guess quickly, and must not be able to use the throttle to
//! lock the owner out. So attempts are counted per client address, and *failures* per account
//! and address and per account overall:
//!
//! - an address makes at most `per_ip` attempts (of any secret, for any account) per
//!   `window_secs`;
//! - an address that failed `per_account` times for one account in `account_window_secs` is
//!   refused for that account until the window ends;
//! - once an account has `per_account_total` failures in the window, every address that has
//!   failed for it at least once in the window is refused for it. An address that has not
//!   failed — the owner's, usually — keeps its attempts.
//!
//! So an attacker with N addresses makes at most `per_account_total + N` guesses at one account
//! per account window (and each address at most `per_ip` attempts per short window), while the
//! owner signing in from an address of their own is never refused because of someone else.
//!
//! Counters live in the store (`GuardRepository`), one atomic upsert each, so the limits hold
//! across server processes; the account key is the user id when the name resolves (a username
//! and an email of one user share it), else the normalised name.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{Failure, RepoError};
use crate::ports::{Clock, GuardRepository};

/// What stands for the client address when none is known (calls from outside HTTP).
pub const UNKNOWN_ADDRESS: &str = "unknown";

/// Attempt and failure limits for presented secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    /// Attempts per client address per `window_secs`, any secret, any account.
    pub per_ip: u32,
    /// Failures per account per client address per `account_window_secs`.
    pub per_account: u32,
    /// Failures per account from all addresses per `account_window_secs`; past it, only
    /// addresses without a failure for the account may still try.
    pub per_account_total: u32,
    pub window_secs: u32,
    pub account_window_secs: u32,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            per_ip: 60,
            per_account: 10,
            per_account_total: 100,
            window_secs: 300,
            account_window_secs: 3600,
        }
    }
}

/// Whose secret is presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountKey {
    /// A known user: every name of theirs shares this key.
    User(Uuid),
    /// A name that resolves to nobody (still throttled, so absence is not revealed by speed).
    Name(String),
}

impl AccountKey {
    fn as_key(&self) -> String {
        match self {
            Self::User(id) => format!("u:{}", id.simple()),
            Self::Name(name) => format!("n:{}", bounded(&name.trim().to_lowercase())),
        }
    }
}

/// At most this many refused addresses are remembered; past it, refusals ask the store.
const MAX_REMEMBERED: usize = 10_000;

#[derive(Clone)]
pub struct CredentialThrottle {
    guards: Arc<dyn GuardRepository>,
    clock: Arc<dyn Clock>,
    limits: LoginLimits,
    /// Addresses over their attempt limit, with the end of that window: a window's count only
    /// grows, so the refusal is repeated without writing to the store (a storm of refused
    /// attempts costs the database nothing). Other processes still ask the store.
    refused: Arc<Mutex<HashMap<String, OffsetDateTime>>>,
}

/// A fixed window: its start, and the seconds left in it.
fn window(now: OffsetDateTime, secs: u32) -> (OffsetDateTime, i64, u64) {
    let period = i64::from(secs.max(1));
    let start = now.unix_timestamp() - now.unix_timestamp().rem_euclid(period);
    let left = (start + period - now.unix_timestamp()).max(1);
    let start_at = OffsetDateTime::from_unix_timestamp(start).unwrap_or(now);
    (start_at, period, u64::try_from(left).unwrap_or(1))
}

impl CredentialThrottle {
    pub fn new(
        guards: Arc<dyn GuardRepository>,
        clock: Arc<dyn Clock>,
        limits: LoginLimits,
    ) -> Self {
        Self {
            guards,
            clock,
            limits,
            refused: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    pub fn limits(&self) -> LoginLimits {
        self.limits
    }

    fn remembered(&self, key: &str, now: OffsetDateTime) -> bool {
        self.refused
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .is_some_and(|until| *until > now)
    }

    /// Counts one attempt from `client` (any secret); refused past `per_ip`.
    pub async fn before_anonymous_attempt(&self, client: &str) -> Result<(), Failure> {
        let now = self.clock.now();
        let (start, period, left) = window(now, self.limits.window_secs);
        let key = format!("secret:ip:{}", bounded(client));
        if self.remembered(&key, now) {
            return Err(Failure::Throttled {
                retry_after_secs: left,
            });
        }
        let hits = self
            .guards
            .hit(&key, start, period, now)
            .await
            .map_err(counter_failure)?;
        if hits > u64::from(self.limits.per_ip) {
            let mut refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
            if refused.len() >= MAX_REMEMBERED {
                refused.retain(|_, until| *until > now);
            }
            if refused.len() < MAX_REMEMBERED {
                refused.insert(key, start + time::Duration::seconds(period));
            }
            return Err(Failure::Throttled {
                retry_after_secs: left,
            });
        }
        Ok(())
    }

    /// Before a secret of `account` is checked: the address's attempts, then the account's
    /// failures (see the module documentation).
    pub async fn before_attempt(&self, account: &AccountKey, client: &str) -> Result<(), Failure> {
        self.before_anonymous_attempt(client).await?;
        self.check_account(account, client).await
    }

    /// The account half of [`Self::before_attempt`]: counts nothing.
    pub async fn check_account(&self, account: &AccountKey, client: &str) -> Result<(), Failure> {
        let now = self.clock.now();
        let (start, _, left) = window(now, self.limits.account_window_secs);
        let account = account.as_key();
        let from_here = self
            .guards
            .count(&format!("secret:fail:{account}:{}", bounded(client)), start)
            .await
            .map_err(counter_failure)?;
        if from_here >= u64::from(self.limits.per_account) {
            return Err(Failure::Throttled {
                retry_after_secs: left,
            });
        }
        if from_here > 0 {
            let everywhere = self
                .guards
                .count(&format!("secret:fail:{account}"), start)
                .await
                .map_err(counter_failure)?;
            if everywhere >= u64::from(self.limits.per_account_total) {
                return Err(Failure::Throttled {
                    retry_after_secs: left,
                });
            }
        }
        Ok(())
    }

    /// After a wrong secret for `account` from `client`.
    pub async fn record_failure(&self, account: &AccountKey, client: &str) -> Result<(), Failure> {
        let now = self.clock.now();
        let (start, period, _) = window(now, self.limits.account_window_secs);
        let account = account.as_key();
        self.guards
            .hit(
                &format!("secret:fail:{account}:{}", bounded(client)),
                start,
                period,
                now,
            )
            .await
            .map_err(counter_failure)?;
        self.guards
            .hit(&format!("secret:fail:{account}"), start, period, now)
            .await
            .map_err(counter_failure)?;
        Ok(())
    }
}

/// A counter the store could not read or write.
fn counter_failure(err: RepoError) -> Failure {
    match err {
        RepoError::Unavailable => Failure::Unavailable,
        other => Failure::internal(format!("throttle counter: {other}")),
    }
}

/// Keys stay short and storable whatever the client sends (PostgreSQL text refuses NUL).
pub(crate) fn bounded(raw: &str) -> String {
    raw.chars()
        .take(128)
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids_make_distinct_bounded_keys() {
        let id = Uuid::nil();
        assert_eq!(AccountKey::User(id).as_key(), format!("u:{}", id.simple()));
        assert_eq!(AccountKey::Name(" Alice ".into()).as_key(), "n:alice");
        let long = AccountKey::Name(format!("a\0{}", "x".repeat(500))).as_key();
        assert_eq!(long.chars().count(), 130);
        assert!(!long.chars().any(char::is_control));
    }

    #[test]
    fn windows_start_on_their_boundary() {
        let now = OffsetDateTime::from_unix_timestamp(3_700).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let (start, period, left) = window(now, 3600);
        assert_eq!(start.unix_timestamp(), 3600);
        assert_eq!(period, 3600);
        assert_eq!(left, 3500);
    }
}
