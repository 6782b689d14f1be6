//! Domain events: facts about changes, written by the store in the same transaction as the
//! change they describe, read back as a feed and delivered to webhooks.
//!
//! Every event has a time-ordered id (UUID v7), a type from a closed set, a payload whose shape
//! the type and its version fix, the subject it is about (a user for `user.*`, `wallet.*`,
//! `share.*`, `api_key.*`, `quota.*` and `balance.*`; a tier for `tier.*`; an endpoint for
//! `webhook_endpoint.*`) and the actor who caused it (`None` for the system).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::audit::{AuditAction, AuditEvent, FieldChange};

macro_rules! event_types {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, $payload:ident; )*) => {
        /// The kinds of event, each with the name it has on the wire.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventType {
            $( $(#[$doc])* $variant, )*
        }

        impl EventType {
            pub const ALL: &'static [EventType] = &[$(Self::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $name, )*
                }
            }

            pub fn parse(raw: &str) -> Option<Self> {
                match raw {
                    $( $name => Some(Self::$variant), )*
                    _ => None,
                }
            }

            /// Which payload shape events of this type carry.
            pub fn payload_kind(self) -> PayloadKind {
                match self {
                    $( Self::$variant => PayloadKind::$payload, )*
                }
            }
        }
    };
}

event_types! {
    UserCreated = "user.created", Changes;
    UserUpdated = "user.updated", Changes;
    UserDeactivated = "user.deactivated", Changes;
    UserReactivated = "user.reactivated", Changes;
    UserDeleted = "user.deleted", Changes;
    UserRestored = "user.restored", Changes;
    UserPurged = "user.purged", Changes;
    PasswordChanged = "user.password_changed", Changes;
    PasswordReset = "user.password_reset", Changes;
    /// An administrator ended every session of the user (forced logout). Password resets,
    /// deactivations and deletions end sessions too; their own events say so.
    SessionsRevoked = "user.sessions_revoked", Changes;
    PermissionsChanged = "user.permissions_changed", Changes;
    TierChanged = "user.tier_changed", Changes;
    InvoicingChanged = "user.invoicing_changed", Changes;
    QuotasChanged = "user.quotas_changed", Changes;
    DiscountsChanged = "user.discounts_changed", Changes;
    ApiKeyCreated = "api_key.created", Changes;
    ApiKeyRevoked = "api_key.revoked", Changes;
    ShareGranted = "share.granted", Changes;
    ShareChanged = "share.changed", Changes;
    ShareRevoked = "share.revoked", Changes;
    TierCreated = "tier.created", Changes;
    TierUpdated = "tier.updated", Changes;
    TierDeleted = "tier.deleted", Changes;
    WalletCreated = "wallet.created", Changes;
    WalletDeleted = "wallet.deleted", Changes;
    WalletRestored = "wallet.restored", Changes;
    /// Money came into a wallet: an adjustment, the credit half of a transfer, a deposit.
    WalletCredited = "wallet.credited", Ledger;
    /// Money left a wallet: an adjustment, the debit half of a transfer, a metered call.
    WalletDebited = "wallet.debited", Ledger;
    /// A daily quota could not cover a call: from now until 00:00 UTC the user's calls on that
    /// counter are paid from the balance (or refused). Once per user, counter and day.
    QuotaExhausted = "quota.exhausted", Quota;
    /// A debit took a wallet's balance from at least its threshold to below it. Once per
    /// crossing: it fires again only after the balance has been at or above the threshold.
    BalanceBelowThreshold = "balance.below_threshold", Balance;
    /// Deliveries to the endpoint failed for longer than the retry window; it was disabled.
    WebhookEndpointDisabled = "webhook_endpoint.disabled", Endpoint;
}

/// The payload shapes, one per family of event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    Changes,
    Ledger,
    Quota,
    Balance,
    Endpoint,
}

impl EventType {
    /// The version of this type's payload shape. A change that removes or retypes a field
    /// gets a new version (and a new documentation entry); adding fields does not.
    pub fn version(self) -> u16 {
        1
    }

    /// The event an audited change produces, if any. Balance movements have their own events,
    /// made from the ledger entry (`wallet.credited`, `wallet.debited`), so the audit records
    /// of adjustments and transfers map to none.
    pub fn for_audit(action: AuditAction) -> Option<Self> {
        Some(match action {
            AuditAction::UserCreated => Self::UserCreated,
            AuditAction::UserUpdated => Self::UserUpdated,
            AuditAction::PermissionsChanged => Self::PermissionsChanged,
            AuditAction::PasswordChanged => Self::PasswordChanged,
            AuditAction::PasswordReset => Self::PasswordReset,
            AuditAction::UserDeleted => Self::UserDeleted,
            AuditAction::UserRestored => Self::UserRestored,
            AuditAction::UserPurged => Self::UserPurged,
            AuditAction::UserDeactivated => Self::UserDeactivated,
            AuditAction::UserReactivated => Self::UserReactivated,
            AuditAction::ForcedLogout => Self::SessionsRevoked,
            AuditAction::TierAssigned => Self::TierChanged,
            AuditAction::QuotasChanged => Self::QuotasChanged,
            AuditAction::DiscountsChanged => Self::DiscountsChanged,
            AuditAction::InvoicingChanged => Self::InvoicingChanged,
            AuditAction::TierCreated => Self::TierCreated,
            AuditAction::TierUpdated => Self::TierUpdated,
            AuditAction::TierDeleted => Self::TierDeleted,
            AuditAction::WalletCreated => Self::WalletCreated,
            AuditAction::WalletDeleted => Self::WalletDeleted,
            AuditAction::WalletRestored => Self::WalletRestored,
            AuditAction::ShareGranted => Self::ShareGranted,
            AuditAction::ShareChanged => Self::ShareChanged,
            AuditAction::ShareRevoked => Self::ShareRevoked,
            AuditAction::ApiKeyCreated => Self::ApiKeyCreated,
            AuditAction::ApiKeyRevoked => Self::ApiKeyRevoked,
            // Money moves are reported by their ledger entries (wallet.credited/debited).
            AuditAction::WalletAdjusted
            | AuditAction::WalletTransferred
            | AuditAction::DepositReported
            | AuditAction::BalanceThresholdsChanged
            | AuditAction::WebhookEndpointCreated
            | AuditAction::WebhookEndpointUpdated
            | AuditAction::WebhookEndpointDeleted
            | AuditAction::WebhookSecretRotated => return None,
        })
    }
}

/// What an audited change did, field by field (secrets appear only as `"(changed)"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangesPayload {
    pub changes: BTreeMap<String, FieldChange>,
}

/// A ledger entry as an event: the money that moved and the balance it left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerPayload {
    pub wallet_id: Uuid,
    pub entry_id: Uuid,
    /// `adjustment`, `transfer_in`, `transfer_out`, `usage`, `deposit`, …
    pub kind: String,
    /// Signed minor units of `currency`.
    pub amount: i64,
    pub balance_after: i64,
    pub currency: String,
    pub reason: String,
    pub transfer_id: Option<Uuid>,
}

/// `quota.exhausted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaPayload {
    /// The resource of the call that found the quota spent (`*` for the wildcard).
    pub resource_id: String,
    /// The counter the quota is kept in: the resource's own, or `__default__`.
    pub counter: String,
    /// The UTC day the quota is for (`YYYY-MM-DD`); it resets at the next 00:00 UTC.
    pub day: String,
    pub quota: u64,
}

/// `balance.below_threshold`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalancePayload {
    pub wallet_id: Uuid,
    pub currency: String,
    pub balance: i64,
    pub threshold: i64,
    /// The debit that crossed the threshold.
    pub entry_id: Uuid,
}

/// `webhook_endpoint.disabled`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointPayload {
    pub endpoint_id: Uuid,
    pub url: String,
    /// RFC 3339: when the failures began.
    pub failing_since: Option<String>,
    pub reason: String,
}

/// An event's payload; its variant always matches [`EventType::payload_kind`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum EventPayload {
    Changes(ChangesPayload),
    Ledger(LedgerPayload),
    Quota(QuotaPayload),
    Balance(BalancePayload),
    Endpoint(EndpointPayload),
}

impl EventPayload {
    pub fn kind(&self) -> PayloadKind {
        match self {
            Self::Changes(_) => PayloadKind::Changes,
            Self::Ledger(_) => PayloadKind::Ledger,
            Self::Quota(_) => PayloadKind::Quota,
            Self::Balance(_) => PayloadKind::Balance,
            Self::Endpoint(_) => PayloadKind::Endpoint,
        }
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// UUID v7: its first 48 bits are `occurred_at` in milliseconds.
    pub id: Uuid,
    pub event_type: EventType,
    pub occurred_at: OffsetDateTime,
    pub subject_id: Option<Uuid>,
    /// Who caused it: a delegated token's principal, `None` for the system.
    pub actor_id: Option<Uuid>,
    pub payload: EventPayload,
}

impl Event {
    /// The event an audited change produces (see [`EventType::for_audit`]), with the audit
    /// record's id, time, actor and target, so the two can be matched.
    pub fn from_audit(audit: &AuditEvent) -> Option<Self> {
        EventType::for_audit(audit.action).map(|event_type| Self {
            id: audit.id,
            event_type,
            occurred_at: audit.at,
            subject_id: audit.target_id,
            actor_id: audit.actor_id,
            payload: EventPayload::Changes(ChangesPayload {
                changes: audit.changes.clone(),
            }),
        })
    }

    pub fn version(&self) -> u16 {
        self.event_type.version()
    }
}

/// The one JSON form of an event, in the feed and in every webhook body:
/// `{id, type, version, occurred_at, subject_id, actor_id, payload}`.
impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            id: Uuid,
            #[serde(rename = "type")]
            event_type: &'static str,
            version: u16,
            #[serde(with = "time::serde::rfc3339")]
            occurred_at: OffsetDateTime,
            subject_id: Option<Uuid>,
            actor_id: Option<Uuid>,
            payload: &'a EventPayload,
        }
        Wire {
            id: self.id,
            event_type: self.event_type.as_str(),
            version: self.version(),
            occurred_at: self.occurred_at,
            subject_id: self.subject_id,
            actor_id: self.actor_id,
            payload: &self.payload,
        }
        .serialize(serializer)
    }
}

/// Whether a balance change from `before` to `after` crosses `threshold` downwards: the rule of
/// `balance.below_threshold`. Because it compares the balances on both sides of one change,
/// it fires once per crossing with no stored state, and again only after the balance has
/// climbed back to the threshold or above.
pub fn crosses_below(threshold: i64, before: i128, after: i128) -> bool {
    before >= i128::from(threshold) && after < i128::from(threshold)
}

/// The ledger events a stored entry produces: `wallet.credited` or `wallet.debited`, and
/// `balance.below_threshold` when a debit crosses the owner's threshold for the currency.
/// The ids come from `ids` (first the movement's, then the crossing's).
pub fn ledger_events(
    entry: &super::LedgerEntry,
    owner_id: Uuid,
    currency: &str,
    threshold: Option<i64>,
    mut ids: impl FnMut() -> Uuid,
) -> Vec<Event> {
    let event_type = if entry.amount > 0 {
        EventType::WalletCredited
    } else {
        EventType::WalletDebited
    };
    let mut out = vec![Event {
        id: ids(),
        event_type,
        occurred_at: entry.created_at,
        subject_id: Some(owner_id),
        actor_id: entry.actor_id,
        payload: EventPayload::Ledger(LedgerPayload {
            wallet_id: entry.wallet_id,
            entry_id: entry.id,
            kind: entry.kind.as_str().to_owned(),
            amount: entry.amount,
            balance_after: entry.balance_after,
            currency: currency.to_owned(),
            reason: entry.reason.clone(),
            transfer_id: entry.transfer_id,
        }),
    }];
    let before = i128::from(entry.balance_after) - i128::from(entry.amount);
    if let Some(threshold) = threshold {
        if crosses_below(threshold, before, i128::from(entry.balance_after)) {
            out.push(Event {
                id: ids(),
                event_type: EventType::BalanceBelowThreshold,
                occurred_at: entry.created_at,
                subject_id: Some(owner_id),
                actor_id: entry.actor_id,
                payload: EventPayload::Balance(BalancePayload {
                    wallet_id: entry.wallet_id,
                    currency: currency.to_owned(),
                    balance: entry.balance_after,
                    threshold,
                    entry_id: entry.id,
                }),
            });
        }
    }
    out
}

/// A position in the event feed. Events are ordered by the transaction that wrote them and
/// then by the order they were written in; a position is only handed out once every earlier
/// transaction has finished, so nothing can later appear before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FeedCursor {
    /// The writing transaction (PostgreSQL's 64-bit transaction id; 0 in memory).
    pub tx: u64,
    /// The event's sequence number.
    pub seq: i64,
}

impl FeedCursor {
    /// Where a feed starts.
    pub const START: FeedCursor = FeedCursor { tx: 0, seq: 0 };

    /// The opaque text form clients store and send back as `after`.
    pub fn encode(self) -> String {
        format!("{:x}.{:x}", self.tx, self.seq)
    }

    pub fn decode(raw: &str) -> Option<Self> {
        let (tx, seq) = raw.split_once('.')?;
        if tx.is_empty() || seq.is_empty() || tx.len() > 16 || seq.len() > 16 {
            return None;
        }
        let tx = u64::from_str_radix(tx, 16).ok()?;
        let seq = i64::from_str_radix(seq, 16).ok()?;
        (seq >= 0).then_some(Self { tx, seq })
    }
}

/// An event with its place in the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEvent {
    pub cursor: FeedCursor,
    pub event: Event,
}

/// Which events a feed read covers: those after `after`, in feed order, at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedQuery {
    pub after: FeedCursor,
    /// Empty: every type.
    pub types: Vec<EventType>,
    pub subject: Option<Uuid>,
    pub limit: u32,
}

/// One page of the feed. `next` is where the next read starts: the last event's position, or
/// `after` again when nothing was returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedPage {
    pub events: Vec<FeedEvent>,
    pub next: FeedCursor,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EntryKind, LedgerEntry};
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_and_round_trip() {
        let names: HashSet<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(names.len(), EventType::ALL.len());
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(*t));
            assert!(t.as_str().len() <= 64);
        }
        assert_eq!(EventType::parse("wallet.moved"), None);
    }

    #[test]
    fn every_audited_change_but_money_has_an_event() {
        for action in AuditAction::ALL {
            let event = EventType::for_audit(action);
            let money_or_settings = matches!(
                action,
                AuditAction::WalletAdjusted
                    | AuditAction::WalletTransferred
                    | AuditAction::DepositReported
                    | AuditAction::BalanceThresholdsChanged
                    | AuditAction::WebhookEndpointCreated
                    | AuditAction::WebhookEndpointUpdated
                    | AuditAction::WebhookEndpointDeleted
                    | AuditAction::WebhookSecretRotated
            );
            assert_eq!(event.is_none(), money_or_settings, "{action:?}");
            if let Some(t) = event {
                assert_eq!(t.payload_kind(), PayloadKind::Changes);
            }
        }
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = FeedCursor {
            tx: 0x1234_5678_9abc,
            seq: 42,
        };
        assert_eq!(FeedCursor::decode(&c.encode()), Some(c));
        assert_eq!(
            FeedCursor::decode(&FeedCursor::START.encode()),
            Some(FeedCursor::START)
        );
        for bad in [
            "",
            ".",
            "1.",
            ".1",
            "x.1",
            "1.-1",
            "1.1.1",
            "11111111111111111.1",
            "1",
        ] {
            assert_eq!(FeedCursor::decode(bad), None, "{bad}");
        }
    }

    fn entry(amount: i64, balance_after: i64) -> LedgerEntry {
        LedgerEntry {
            id: Uuid::from_u128(7),
            wallet_id: Uuid::from_u128(8),
            amount,
            balance_after,
            kind: EntryKind::Adjustment,
            reason: "r".into(),
            actor_id: None,
            transfer_id: None,
            idempotency_key: None,
            created_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_debit_across_the_threshold_fires_once_per_crossing() {
        let mut n = 0u128;
        let mut ids = || {
            n += 1;
            Uuid::from_u128(n)
        };
        let owner = Uuid::from_u128(1);
        // 150 → 90 crosses 100.
        let out = ledger_events(&entry(-60, 90), owner, "usd", Some(100), &mut ids);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].event_type, EventType::WalletDebited);
        assert_eq!(out[1].event_type, EventType::BalanceBelowThreshold);
        // 90 → 50: already below.
        assert_eq!(
            ledger_events(&entry(-40, 50), owner, "usd", Some(100), &mut ids).len(),
            1
        );
        // 50 → 100 (back at the threshold), then 100 → 99 crosses again.
        let up = ledger_events(&entry(50, 100), owner, "usd", Some(100), &mut ids);
        assert_eq!(up[0].event_type, EventType::WalletCredited);
        assert_eq!(up.len(), 1);
        assert_eq!(
            ledger_events(&entry(-1, 99), owner, "usd", Some(100), &mut ids).len(),
            2
        );
        // No threshold, no crossing event.
        assert_eq!(
            ledger_events(&entry(-1, 99), owner, "usd", None, &mut ids).len(),
            1
        );
        // Extreme values do not overflow.
        assert!(!crosses_below(
            i64::MIN,
            i128::from(i64::MIN),
            i128::from(i64::MIN)
        ));
        assert!(crosses_below(0, 0, -1));
    }
}
