//! Wire shapes of the canonical API. Field names follow PRODUCT.md §4; aliases keep the seeds'
//! spellings working (`docs/api.md` maps each).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tessera_domain::model::{LedgerEntry, ScopeSet, TokenPair, User, Wallet, WalletSummary};
use tessera_domain::services::{DelegatedToken, SharedUser, TransferOutcome};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// A user as the canonical API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub username: Option<String>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub display_name: String,
    /// FastAPI-boilerplate's `name`: the display name.
    pub name: String,
    pub logo_id: Option<Uuid>,
    pub hotkey: Option<String>,
    pub coldkey: Option<String>,
    /// The user's TAO deposit address (SS58), derived from the operator's master public key;
    /// absent when no master key is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_address: Option<String>,
    #[schema(value_type = Vec<crate::vocabulary::PermissionName>)]
    pub permissions: Vec<&'static str>,
    pub permissions_bitmask: i64,
    pub is_admin: bool,
    /// SweatStack's spelling of `is_admin`.
    pub admin: bool,
    pub is_superuser: bool,
    pub is_active: bool,
    pub is_managed: bool,
    pub is_local: bool,
    pub manager_id: Option<Uuid>,
    pub state: &'static str,
    pub tier_id: Option<Uuid>,
    pub invoicing: bool,
    pub unlimited: bool,
    pub squad_enabled: bool,
    pub must_change_password: bool,
    pub created_by: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// SweatStack's spelling of `created_at`.
    #[serde(with = "time::serde::rfc3339")]
    pub registered_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_login_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub deleted_at: Option<OffsetDateTime>,
    /// The balance of each live default wallet, by currency, in minor units
    /// (`{"usd": 12500000}` is 12.5 USD).
    pub balances: BTreeMap<String, i64>,
    /// Live (not deleted) wallets.
    pub wallet_count: u64,
    /// In listings: the caller's scopes on this user (all of them on themselves and on their
    /// managed users; a share's on a user who shared with the caller).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<crate::vocabulary::ShareScopeName>>)]
    pub scopes: Option<Vec<&'static str>>,
}

impl UserView {
    /// Fills in the wallet fields.
    pub fn with_wallets(mut self, summary: Option<&WalletSummary>) -> Self {
        if let Some(summary) = summary {
            self.balances = summary.balances.clone();
            self.wallet_count = summary.wallet_count;
        }
        self
    }
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        let display_name = u.display_name();
        let is_active = u.is_active();
        Self {
            id: u.id,
            name: display_name.clone(),
            display_name,
            username: u.username,
            email: u.email,
            first_name: u.first_name,
            last_name: u.last_name,
            logo_id: u.logo_id,
            hotkey: u.hotkey,
            coldkey: u.coldkey,
            payment_address: u.payment_address,
            permissions: u.permissions.names(),
            permissions_bitmask: u.permissions.bits(),
            is_admin: u.permissions.is_admin(),
            admin: u.permissions.is_admin(),
            is_superuser: u.permissions.is_superuser(),
            is_active,
            is_managed: u.manager_id.is_some(),
            is_local: u.has_password,
            manager_id: u.manager_id,
            state: u.state.as_str(),
            tier_id: u.tier_id,
            invoicing: u.invoicing,
            unlimited: u.unlimited,
            squad_enabled: u.squad_enabled,
            must_change_password: u.must_change_password,
            created_by: u.created_by,
            created_at: u.created_at,
            registered_at: u.created_at,
            updated_at: u.updated_at,
            last_login_at: u.last_login_at,
            deleted_at: u.deleted_at,
            balances: BTreeMap::new(),
            wallet_count: 0,
            scopes: None,
        }
    }
}

/// 201 body of `POST /users`: the user, plus the temporary password when one was generated.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedUserView {
    #[serde(flatten)]
    pub user: UserView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temp_password: Option<String>,
    /// Run:ai's spelling of `temp_password` (its clients read this one on creation too).
    #[serde(rename = "tempPassword", skip_serializing_if = "Option::is_none")]
    pub temp_password_camel: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateUserBody {
    pub username: Option<String>,
    pub email: Option<String>,
    pub password: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub name: Option<String>,
    pub is_admin: Option<bool>,
    pub is_superuser: Option<bool>,
    /// Superusers only.
    pub tier_id: Option<Uuid>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateUserBody {
    pub username: Option<String>,
    #[serde(default, deserialize_with = "crate::extract::double_option")]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::extract::double_option")]
    pub first_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::extract::double_option")]
    pub last_name: Option<Option<String>>,
    pub name: Option<String>,
    pub password: Option<String>,
    #[serde(alias = "currentPassword")]
    pub current_password: Option<String>,
    pub is_admin: Option<bool>,
    pub is_superuser: Option<bool>,
    pub permissions: Option<i64>,
}

/// Paging and listing parameters of `GET /users`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListUsersQuery {
    pub offset: Option<u64>,
    pub limit: Option<u64>,
    pub page: Option<u64>,
    pub items_per_page: Option<u64>,
    #[serde(default)]
    pub include_deleted: bool,
    pub include_managed: Option<bool>,
    pub include_shared: Option<bool>,
    #[serde(rename = "filterBy", alias = "filter_by")]
    pub filter_by: Option<String>,
    pub search: Option<String>,
    pub name: Option<String>,
    #[serde(rename = "sortBy", alias = "sort_by")]
    #[param(value_type = Option<crate::vocabulary::UserSortFieldName>)]
    pub sort_by: Option<String>,
    #[serde(rename = "sortOrder", alias = "sort_order")]
    #[param(value_type = Option<crate::vocabulary::SortOrderName>)]
    pub sort_order: Option<String>,
    /// Keyset paging: the `next_cursor` of the previous page of the same listing (same
    /// filters and sort); excludes `offset` and `page`. Not offered with `sortBy=createdBy`.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserListView {
    pub data: Vec<UserView>,
    /// Exact unless `total_is_estimate`.
    pub total_count: u64,
    /// `true` when the filter matches too many users to count cheaply: `total_count` is then
    /// the database's estimate (at least the number of matches already counted).
    pub total_is_estimate: bool,
    pub has_more: bool,
    /// Pass as `cursor` for the next page (stable under concurrent inserts); absent on the
    /// last page and with `sortBy=createdBy`.
    pub next_cursor: Option<String>,
    pub offset: u64,
    pub limit: u64,
    pub page: u64,
    pub items_per_page: u64,
}

/// Login by JSON or OAuth2 password form (`username`, `password`, optional `grant_type`).
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginBody {
    #[serde(alias = "email", alias = "login")]
    pub username: String,
    pub password: String,
    pub grant_type: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshBody {
    pub refresh_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub refresh_token: String,
}

impl From<TokenPair> for TokenView {
    fn from(t: TokenPair) -> Self {
        Self {
            access_token: t.access_token,
            token_type: t.token_type,
            expires_in: t.expires_in,
            refresh_token: t.refresh_token,
        }
    }
}

/// A wallet. Amounts are signed integers of the currency's minor unit (`usd`: micro-dollars,
/// `sat`: millisatoshis).
#[derive(Debug, Serialize, ToSchema)]
pub struct WalletView {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub currency: String,
    pub is_default: bool,
    pub balance: i64,
    pub allow_negative: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub deleted_at: Option<OffsetDateTime>,
}

impl From<Wallet> for WalletView {
    fn from(w: Wallet) -> Self {
        Self {
            id: w.id,
            user_id: w.user_id,
            name: w.name,
            currency: w.currency,
            is_default: w.is_default,
            balance: w.balance,
            allow_negative: w.allow_negative,
            created_at: w.created_at,
            updated_at: w.updated_at,
            deleted_at: w.deleted_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WalletListView {
    pub data: Vec<WalletView>,
}

/// One ledger entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerEntryView {
    pub id: Uuid,
    pub wallet_id: Uuid,
    pub amount: i64,
    pub balance_after: i64,
    pub kind: &'static str,
    pub reason: String,
    pub actor_id: Option<Uuid>,
    pub transfer_id: Option<Uuid>,
    pub idempotency_key: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<LedgerEntry> for LedgerEntryView {
    fn from(e: LedgerEntry) -> Self {
        Self {
            id: e.id,
            wallet_id: e.wallet_id,
            amount: e.amount,
            balance_after: e.balance_after,
            kind: e.kind.as_str(),
            reason: e.reason,
            actor_id: e.actor_id,
            transfer_id: e.transfer_id,
            idempotency_key: e.idempotency_key,
            created_at: e.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerPageView {
    pub data: Vec<LedgerEntryView>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page.
    pub next_cursor: Option<String>,
    pub limit: u32,
}

/// A transfer: its debit, and its credit when the caller may read the recipient's wallet (the
/// credit carries the recipient's balance).
#[derive(Debug, Serialize, ToSchema)]
pub struct TransferView {
    pub transfer_id: Uuid,
    pub from_wallet: Uuid,
    pub to_wallet: Uuid,
    pub amount: i64,
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub debit: LedgerEntryView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credit: Option<LedgerEntryView>,
}

impl From<TransferOutcome> for TransferView {
    fn from(t: TransferOutcome) -> Self {
        Self {
            transfer_id: t.transfer_id,
            from_wallet: t.from_wallet,
            to_wallet: t.to_wallet,
            amount: -t.debit.amount,
            reason: t.debit.reason.clone(),
            created_at: t.debit.created_at,
            debit: t.debit.into(),
            credit: t.credit.map(Into::into),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateWalletBody {
    pub name: String,
    pub currency: String,
}

/// `amount` must be a JSON integer that fits in i64: `1.5`, `"10"` or `1e30` are 422.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AdjustmentBody {
    pub amount: i64,
    pub reason: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TransferBody {
    pub from_wallet: Uuid,
    pub to_wallet: Uuid,
    pub amount: i64,
    pub reason: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListWalletsQuery {
    #[serde(default)]
    pub include_deleted: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LedgerQuery {
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// `POST /me/password` (Run:ai's camelCase names accepted).
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChangePasswordBody {
    #[serde(alias = "currentPassword")]
    pub current_password: Option<String>,
    #[serde(alias = "newPassword")]
    pub new_password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TempPasswordView {
    pub temp_password: String,
    /// Run:ai's spelling.
    #[serde(rename = "tempPassword")]
    pub temp_password_camel: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NameCheckQuery {
    pub username: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GrowthQuery {
    pub days: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CountView {
    pub count: u64,
}

/// `POST /me/shares`: the grantee (id or username) and the scopes to grant.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ShareBody {
    pub grantee: String,
    #[schema(value_type = Vec<crate::vocabulary::ShareScopeName>)]
    pub scopes: Vec<String>,
}

/// `PATCH /me/shares/{grantee}`: the new scopes.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ShareScopesBody {
    #[schema(value_type = Vec<crate::vocabulary::ShareScopeName>)]
    pub scopes: Vec<String>,
}

/// A share as the API shows it. `user` is the other party: the grantee in `/me/shares`, shown
/// by its username only (the owner learns nothing about the grantee that the grantee did not
/// give: no id, no names); the owner in `/me/shared-with-me`, with its id and display name
/// (the owner chose to share with the caller).
#[derive(Debug, Serialize, ToSchema)]
pub struct ShareView {
    pub owner_id: Uuid,
    /// Only in `/me/shared-with-me` (the caller's own id there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grantee_id: Option<Uuid>,
    pub user: ShareUserView,
    #[schema(value_type = Vec<crate::vocabulary::ShareScopeName>)]
    pub scopes: Vec<&'static str>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ShareUserView {
    /// The owner's id (`/me/shared-with-me` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    pub username: Option<String>,
    /// The owner's display name (`/me/shared-with-me` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

impl ShareView {
    /// A share the caller granted: the grantee by username only.
    pub fn granted(s: SharedUser) -> Self {
        Self {
            owner_id: s.share.owner_id,
            grantee_id: None,
            user: ShareUserView {
                id: None,
                username: s.user.username,
                display_name: None,
            },
            scopes: s.share.scopes.names(),
            created_at: s.share.created_at,
            updated_at: s.share.updated_at,
        }
    }

    /// A share granted to the caller: the owner in full.
    pub fn received(s: SharedUser) -> Self {
        Self {
            owner_id: s.share.owner_id,
            grantee_id: Some(s.share.grantee_id),
            user: ShareUserView {
                id: Some(s.user.id),
                display_name: Some(s.user.display_name()),
                username: s.user.username,
            },
            scopes: s.share.scopes.names(),
            created_at: s.share.created_at,
            updated_at: s.share.updated_at,
        }
    }
}

/// `POST /auth/delegated-token`: the subject (id or username) and, optionally, the scopes.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DelegatedTokenBody {
    /// SweatStack names it `sub`.
    #[serde(alias = "sub")]
    pub user: String,
    #[schema(value_type = Option<Vec<crate::vocabulary::ShareScopeName>>)]
    pub scopes: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DelegatedTokenView {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub user_id: Uuid,
    pub scope: String,
    #[schema(value_type = Vec<crate::vocabulary::ShareScopeName>)]
    pub scopes: Vec<&'static str>,
}

impl From<DelegatedToken> for DelegatedTokenView {
    fn from(t: DelegatedToken) -> Self {
        Self {
            access_token: t.access_token,
            token_type: t.token_type,
            expires_in: t.expires_in,
            user_id: t.subject_id,
            scope: t.scopes.to_claim(),
            scopes: t.scopes.names(),
        }
    }
}

/// The names of a scope set, for views.
pub fn scope_names(scopes: ScopeSet) -> Vec<&'static str> {
    scopes.names()
}

/// `GET /users/name-check`.
#[derive(Debug, Serialize, ToSchema)]
pub struct NameCheckView {
    /// The name satisfies the username rules.
    pub valid: bool,
    /// No user has it.
    pub available: bool,
}

/// One day of `GET /stats/growth`.
#[derive(Debug, Serialize, ToSchema)]
pub struct GrowthPointView {
    /// `YYYY-MM-DD`.
    #[schema(example = "2025-01-31")]
    pub date: String,
    /// Users created that day.
    pub count: u64,
    /// Users created up to and including that day.
    pub cumulative: u64,
}
