use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// What an administrative change did.
///
/// Targets: `user.*` events name the user, `tier.*` events the tier, and `wallet.*` events the
/// wallet's owner (the source wallet's owner for a transfer); the wallet ids are in `changes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum AuditAction {
    UserCreated,
    UserUpdated,
    PermissionsChanged,
    PasswordChanged,
    PasswordReset,
    UserDeleted,
    UserRestored,
    UserPurged,
    UserDeactivated,
    UserReactivated,
    ForcedLogout,
    TierAssigned,
    QuotasChanged,
    DiscountsChanged,
    InvoicingChanged,
    TierCreated,
    TierUpdated,
    TierDeleted,
    WalletCreated,
    WalletDeleted,
    WalletRestored,
    WalletAdjusted,
    WalletTransferred,
    DepositReported,
    ShareGranted,
    ShareChanged,
    ShareRevoked,
    ApiKeyCreated,
    ApiKeyRevoked,
    BalanceThresholdsChanged,
    WebhookEndpointCreated,
    WebhookEndpointUpdated,
    WebhookEndpointDeleted,
    WebhookSecretRotated,
}

impl AuditAction {
    pub const ALL: [AuditAction; 34] = [
        Self::UserCreated,
        Self::UserUpdated,
        Self::PermissionsChanged,
        Self::PasswordChanged,
        Self::PasswordReset,
        Self::UserDeleted,
        Self::UserRestored,
        Self::UserPurged,
        Self::UserDeactivated,
        Self::UserReactivated,
        Self::ForcedLogout,
        Self::TierAssigned,
        Self::QuotasChanged,
        Self::DiscountsChanged,
        Self::InvoicingChanged,
        Self::TierCreated,
        Self::TierUpdated,
        Self::TierDeleted,
        Self::WalletCreated,
        Self::WalletDeleted,
        Self::WalletRestored,
        Self::WalletAdjusted,
        Self::WalletTransferred,
        Self::DepositReported,
        Self::ShareGranted,
        Self::ShareChanged,
        Self::ShareRevoked,
        Self::ApiKeyCreated,
        Self::ApiKeyRevoked,
        Self::BalanceThresholdsChanged,
        Self::WebhookEndpointCreated,
        Self::WebhookEndpointUpdated,
        Self::WebhookEndpointDeleted,
        Self::WebhookSecretRotated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserCreated => "user.created",
            Self::UserUpdated => "user.updated",
            Self::PermissionsChanged => "user.permissions_changed",
            Self::PasswordChanged => "user.password_changed",
            Self::PasswordReset => "user.password_reset",
            Self::UserDeleted => "user.deleted",
            Self::UserRestored => "user.restored",
            Self::UserPurged => "user.purged",
            Self::UserDeactivated => "user.deactivated",
            Self::UserReactivated => "user.reactivated",
            Self::ForcedLogout => "user.logged_out",
            Self::TierAssigned => "user.tier_assigned",
            Self::QuotasChanged => "user.quotas_changed",
            Self::DiscountsChanged => "user.discounts_changed",
            Self::InvoicingChanged => "user.invoicing_changed",
            Self::TierCreated => "tier.created",
            Self::TierUpdated => "tier.updated",
            Self::TierDeleted => "tier.deleted",
            Self::WalletCreated => "wallet.created",
            Self::WalletDeleted => "wallet.deleted",
            Self::WalletRestored => "wallet.restored",
            Self::WalletAdjusted => "wallet.adjusted",
            Self::WalletTransferred => "wallet.transferred",
            Self::DepositReported => "wallet.deposit_reported",
            Self::ShareGranted => "share.granted",
            Self::ShareChanged => "share.changed",
            Self::ShareRevoked => "share.revoked",
            Self::ApiKeyCreated => "api_key.created",
            Self::ApiKeyRevoked => "api_key.revoked",
            Self::BalanceThresholdsChanged => "user.balance_thresholds_changed",
            Self::WebhookEndpointCreated => "webhook_endpoint.created",
            Self::WebhookEndpointUpdated => "webhook_endpoint.updated",
            Self::WebhookEndpointDeleted => "webhook_endpoint.deleted",
            Self::WebhookSecretRotated => "webhook_endpoint.secret_rotated",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == raw)
    }
}

/// One field's before and after, as display strings. Secrets are recorded as `"(changed)"`,
/// never by value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    pub before: Option<String>,
    pub after: Option<String>,
}

/// An audit event, written by the store in the same transaction as the change it records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub id: Uuid,
    pub at: OffsetDateTime,
    /// `None` for changes made by the system (bootstrap, `tessera create-admin`).
    pub actor_id: Option<Uuid>,
    pub target_id: Option<Uuid>,
    pub action: AuditAction,
    pub changes: BTreeMap<String, FieldChange>,
}

/// Which events a listing covers; newest first, after `cursor` when given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub actor_id: Option<Uuid>,
    pub target_id: Option<Uuid>,
    pub action: Option<AuditAction>,
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    /// The `(at, id)` of the last event of the previous page.
    pub after: Option<(OffsetDateTime, Uuid)>,
    pub limit: u64,
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// `ALL`, `as_str` and `parse` agree: every action is listed once, has its own name, and
    /// parses back from it; the match below stops compiling when a variant is added without
    /// being counted.
    #[test]
    fn actions_round_trip_and_all_lists_every_variant() {
        let variants = |a: AuditAction| match a {
            AuditAction::UserCreated
            | AuditAction::UserUpdated
            | AuditAction::PermissionsChanged
            | AuditAction::PasswordChanged
            | AuditAction::PasswordReset
            | AuditAction::UserDeleted
            | AuditAction::UserRestored
            | AuditAction::UserPurged
            | AuditAction::UserDeactivated
            | AuditAction::UserReactivated
            | AuditAction::ForcedLogout
            | AuditAction::TierAssigned
            | AuditAction::QuotasChanged
            | AuditAction::DiscountsChanged
            | AuditAction::InvoicingChanged
            | AuditAction::TierCreated
            | AuditAction::TierUpdated
            | AuditAction::TierDeleted
            | AuditAction::WalletCreated
            | AuditAction::WalletDeleted
            | AuditAction::WalletRestored
            | AuditAction::WalletAdjusted
            | AuditAction::WalletTransferred
            | AuditAction::DepositReported
            | AuditAction::ShareGranted
            | AuditAction::ShareChanged
            | AuditAction::ShareRevoked
            | AuditAction::ApiKeyCreated
            | AuditAction::ApiKeyRevoked
            | AuditAction::BalanceThresholdsChanged
            | AuditAction::WebhookEndpointCreated
            | AuditAction::WebhookEndpointUpdated
            | AuditAction::WebhookEndpointDeleted
            | AuditAction::WebhookSecretRotated => 34,
        };
        assert_eq!(AuditAction::ALL.len(), variants(AuditAction::UserCreated));
        let listed: HashSet<AuditAction> = AuditAction::ALL.into_iter().collect();
        assert_eq!(listed.len(), AuditAction::ALL.len(), "listed twice");
        let names: HashSet<&str> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(names.len(), AuditAction::ALL.len(), "a name used twice");
        for action in AuditAction::ALL {
            assert_eq!(AuditAction::parse(action.as_str()), Some(action));
            assert!(action.as_str().len() <= 64, "the column's CHECK");
        }
        assert_eq!(
            AuditAction::parse("wallet.adjusted"),
            Some(AuditAction::WalletAdjusted)
        );
        assert_eq!(AuditAction::parse("wallet.transfer"), None);
        assert_eq!(AuditAction::parse("WALLET.ADJUSTED"), None);
    }
}
