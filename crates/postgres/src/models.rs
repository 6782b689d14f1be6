use diesel::prelude::*;
use tessera_domain::model::{
    ChainRef, Deposit, DepositStatus, EntryKind, LedgerEntry, NewUser, Permissions, Session, User,
    UserChanges, UserState, Wallet,
};
use tessera_domain::ports::RepoError;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::schema::{deposits, ledger_entries, sessions, users, wallets};

/// A user row without its secrets: the password and fingerprint hashes are never selected here.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub(crate) struct UserRow {
    id: Uuid,
    username: Option<String>,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    logo_id: Option<Uuid>,
    hotkey: Option<String>,
    coldkey: Option<String>,
    payment_address: Option<String>,
    permissions: i64,
    tier_id: Option<Uuid>,
    invoicing: bool,
    unlimited: bool,
    squad_enabled: bool,
    manager_id: Option<Uuid>,
    state: String,
    #[diesel(select_expression = users::password_hash.is_not_null())]
    #[diesel(select_expression_type = diesel::dsl::IsNotNull<users::password_hash>)]
    has_password: bool,
    must_change_password: bool,
    tokens_valid_after: OffsetDateTime,
    created_by: Option<Uuid>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    last_login_at: Option<OffsetDateTime>,
    deleted_at: Option<OffsetDateTime>,
}

impl TryFrom<UserRow> for User {
    type Error = RepoError;

    fn try_from(r: UserRow) -> Result<Self, RepoError> {
        let state = UserState::parse(&r.state)
            .ok_or_else(|| RepoError::internal(format!("unknown user state {:?}", r.state)))?;
        Ok(User {
            id: r.id,
            username: r.username,
            email: r.email,
            first_name: r.first_name,
            last_name: r.last_name,
            logo_id: r.logo_id,
            hotkey: r.hotkey,
            coldkey: r.coldkey,
            payment_address: r.payment_address,
            permissions: Permissions::from_bits(r.permissions),
            tier_id: r.tier_id,
            invoicing: r.invoicing,
            unlimited: r.unlimited,
            squad_enabled: r.squad_enabled,
            manager_id: r.manager_id,
            state,
            has_password: r.has_password,
            must_change_password: r.must_change_password,
            tokens_valid_after: r.tokens_valid_after,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
            last_login_at: r.last_login_at,
            deleted_at: r.deleted_at,
        })
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub(crate) struct NewUserRow {
    id: Uuid,
    username: Option<String>,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    password_hash: Option<String>,
    hotkey: Option<String>,
    coldkey: Option<String>,
    fingerprint_hash: Option<String>,
    permissions: i64,
    tier_id: Option<Uuid>,
    manager_id: Option<Uuid>,
    state: &'static str,
    must_change_password: bool,
    tokens_valid_after: OffsetDateTime,
    created_by: Option<Uuid>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl From<NewUser> for NewUserRow {
    fn from(u: NewUser) -> Self {
        Self {
            id: u.id,
            username: u.username,
            email: u.email,
            first_name: u.first_name,
            last_name: u.last_name,
            password_hash: u.password_hash,
            hotkey: u.hotkey,
            coldkey: u.coldkey,
            fingerprint_hash: u.fingerprint_digest,
            permissions: u.permissions.bits(),
            tier_id: u.tier_id,
            manager_id: u.manager_id,
            state: UserState::Active.as_str(),
            must_change_password: u.must_change_password,
            tokens_valid_after: u.now,
            created_by: u.created_by,
            created_at: u.now,
            updated_at: u.now,
        }
    }
}

/// A partial update; `None` fields are left out of the `SET` list.
#[derive(Debug, AsChangeset)]
#[diesel(table_name = users)]
pub(crate) struct UserChangeset {
    username: Option<String>,
    email: Option<Option<String>>,
    first_name: Option<Option<String>>,
    last_name: Option<Option<String>>,
    password_hash: Option<String>,
    must_change_password: Option<bool>,
    permissions: Option<i64>,
    tier_id: Option<Option<Uuid>>,
    state: Option<&'static str>,
    deleted_at: Option<Option<OffsetDateTime>>,
    hotkey: Option<Option<String>>,
    coldkey: Option<Option<String>>,
    logo_id: Option<Option<Uuid>>,
    squad_enabled: Option<bool>,
    fingerprint_hash: Option<String>,
    tokens_valid_after: Option<OffsetDateTime>,
    // Always set, so the changeset is never empty.
    updated_at: OffsetDateTime,
}

impl UserChangeset {
    pub(crate) fn new(c: &UserChanges, now: OffsetDateTime) -> Self {
        Self {
            username: c.username.clone(),
            email: c.email.clone(),
            first_name: c.first_name.clone(),
            last_name: c.last_name.clone(),
            password_hash: c.password_hash.clone(),
            must_change_password: c.must_change_password,
            permissions: c.permissions.map(Permissions::bits),
            tier_id: c.tier_id,
            state: c.state.map(UserState::as_str),
            deleted_at: c.deleted_at,
            hotkey: c.hotkey.clone(),
            coldkey: c.coldkey.clone(),
            logo_id: c.logo_id,
            squad_enabled: c.squad_enabled,
            fingerprint_hash: c.fingerprint_digest.clone(),
            tokens_valid_after: c.tokens_valid_after,
            updated_at: now,
        }
    }
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = sessions, check_for_backend(diesel::pg::Pg))]
pub(crate) struct SessionRow {
    id: Uuid,
    user_id: Uuid,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    revoked_at: Option<OffsetDateTime>,
}

impl From<SessionRow> for Session {
    fn from(r: SessionRow) -> Self {
        Session {
            id: r.id,
            user_id: r.user_id,
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
        }
    }
}

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = wallets, check_for_backend(diesel::pg::Pg))]
pub(crate) struct WalletRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub currency: String,
    pub is_default: bool,
    pub balance: i64,
    pub allow_negative: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub deleted_at: Option<OffsetDateTime>,
}

impl From<WalletRow> for Wallet {
    fn from(r: WalletRow) -> Self {
        Wallet {
            id: r.id,
            user_id: r.user_id,
            name: r.name,
            currency: r.currency,
            is_default: r.is_default,
            balance: r.balance,
            allow_negative: r.allow_negative,
            created_at: r.created_at,
            updated_at: r.updated_at,
            deleted_at: r.deleted_at,
        }
    }
}

#[derive(Debug, Queryable, QueryableByName, Selectable, Insertable)]
#[diesel(table_name = ledger_entries, check_for_backend(diesel::pg::Pg))]
pub(crate) struct LedgerEntryRow {
    pub id: Uuid,
    pub wallet_id: Uuid,
    pub amount: i64,
    pub balance_after: i64,
    pub kind: String,
    pub reason: String,
    pub actor_id: Option<Uuid>,
    pub transfer_id: Option<Uuid>,
    pub idempotency_key: Option<String>,
    pub created_at: OffsetDateTime,
}

impl TryFrom<LedgerEntryRow> for LedgerEntry {
    type Error = RepoError;

    fn try_from(r: LedgerEntryRow) -> Result<Self, RepoError> {
        let kind = EntryKind::parse(&r.kind).ok_or_else(|| {
            RepoError::internal(format!("unknown ledger entry kind {:?}", r.kind))
        })?;
        Ok(LedgerEntry {
            id: r.id,
            wallet_id: r.wallet_id,
            amount: r.amount,
            balance_after: r.balance_after,
            kind,
            reason: r.reason,
            actor_id: r.actor_id,
            transfer_id: r.transfer_id,
            idempotency_key: r.idempotency_key,
            created_at: r.created_at,
        })
    }
}

impl From<&LedgerEntry> for LedgerEntryRow {
    fn from(e: &LedgerEntry) -> Self {
        Self {
            id: e.id,
            wallet_id: e.wallet_id,
            amount: e.amount,
            balance_after: e.balance_after,
            kind: e.kind.as_str().to_owned(),
            reason: e.reason.clone(),
            actor_id: e.actor_id,
            transfer_id: e.transfer_id,
            idempotency_key: e.idempotency_key.clone(),
            created_at: e.created_at,
        }
    }
}

/// A `deposits` row.
#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = deposits, check_for_backend(diesel::pg::Pg))]
pub(crate) struct DepositRow {
    pub id: Uuid,
    pub block: String,
    pub extrinsic_index: i64,
    pub address: String,
    pub amount_rao: i64,
    pub rate_micros: i64,
    pub credited: i64,
    pub currency: String,
    pub status: String,
    pub user_id: Option<Uuid>,
    pub wallet_id: Option<Uuid>,
    pub entry_id: Option<Uuid>,
    pub reported_by: Option<Uuid>,
    pub created_at: OffsetDateTime,
}

impl From<&Deposit> for DepositRow {
    fn from(d: &Deposit) -> Self {
        Self {
            id: d.id,
            block: d.chain.block.clone(),
            extrinsic_index: i64::from(d.chain.extrinsic_index),
            address: d.address.clone(),
            amount_rao: d.amount_rao,
            rate_micros: d.rate_micros,
            credited: d.credited,
            currency: d.currency.clone(),
            status: d.status.as_str().to_owned(),
            user_id: d.user_id,
            wallet_id: d.wallet_id,
            entry_id: d.entry_id,
            reported_by: d.reported_by,
            created_at: d.created_at,
        }
    }
}

impl TryFrom<DepositRow> for Deposit {
    type Error = RepoError;

    fn try_from(r: DepositRow) -> Result<Self, RepoError> {
        let status = DepositStatus::parse(&r.status)
            .ok_or_else(|| RepoError::internal(format!("unknown deposit status {:?}", r.status)))?;
        let extrinsic_index = u32::try_from(r.extrinsic_index)
            .map_err(|_| RepoError::internal("extrinsic index out of range"))?;
        Ok(Deposit {
            id: r.id,
            chain: ChainRef {
                block: r.block,
                extrinsic_index,
            },
            address: r.address,
            amount_rao: r.amount_rao,
            rate_micros: r.rate_micros,
            credited: r.credited,
            currency: r.currency,
            status,
            user_id: r.user_id,
            wallet_id: r.wallet_id,
            entry_id: r.entry_id,
            reported_by: r.reported_by,
            created_at: r.created_at,
        })
    }
}
