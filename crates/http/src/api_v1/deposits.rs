//! TAO deposits: the operator's chain watcher reports confirmed transfers; users and billing
//! administrators list them. Handlers translate; the rules are in `DepositService`.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use tessera_domain::model::{Deposit, DepositStatus};
use tessera_domain::services::{DepositInput, DepositPage};
use tessera_domain::values::Paging;
use tessera_domain::{Failure, ValidationError, WalletError};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::user_ref;
use crate::error::responses::{
    Forbidden, InvalidBody, InvalidInput, NotFound, ServerErrors, Unauthenticated,
};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, Authenticated};
use crate::routes::{op, Routes};
use crate::state::ApiState;

pub fn configure(routes: &mut Routes) {
    routes
        .resource("/deposits", |r| {
            r.op(op!(report_deposit)).op(op!(list_deposits))
        })
        .op(op!(list_user_deposits));
}

/// One confirmed TAO transfer, as the chain watcher saw it.
#[derive(Deserialize, ToSchema)]
pub(crate) struct DepositBody {
    /// The destination SS58 address (a user's `payment_address`).
    address: String,
    /// The block holding the transfer: its number in decimal (`"4123456"`, or a JSON integer)
    /// or its hash (`0x` and 64 hex digits). Report every transfer the same way: the block and
    /// the extrinsic index are the transfer's identity.
    block: BlockRef,
    /// The transfer's extrinsic index in the block.
    extrinsic_index: u32,
    /// The amount transferred, in rao (10^-9 TAO), above 0.
    amount_rao: u64,
    /// Dollars per TAO to apply; without it, `deposits.tao_usd_rate` of the configuration.
    tao_usd_rate: Option<f64>,
}

/// A block number or hash.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum BlockRef {
    Number(u64),
    Text(String),
}

/// A recorded deposit.
#[derive(Serialize, ToSchema)]
pub(crate) struct DepositView {
    id: Uuid,
    /// `credited`, `ignored` (below `deposits.minimum_rao`) or `unmatched` (no user holds the
    /// address).
    #[schema(example = "credited")]
    status: &'static str,
    address: String,
    /// The block number in decimal, or the block hash (lower-case `0x` hex).
    block: String,
    extrinsic_index: u32,
    amount_rao: i64,
    /// The rate applied, dollars per TAO (exact to six decimal places).
    tao_usd_rate: f64,
    /// Minor units of `currency` credited (0 unless `credited`).
    credited: i64,
    currency: String,
    /// The owner of the address, when one was found.
    user_id: Option<Uuid>,
    wallet_id: Option<Uuid>,
    /// The ledger entry of the credit (kind `deposit`).
    entry_id: Option<Uuid>,
    /// The user whose credential reported it.
    reported_by: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

impl From<Deposit> for DepositView {
    fn from(d: Deposit) -> Self {
        Self {
            id: d.id,
            status: d.status.as_str(),
            address: d.address,
            block: d.chain.block,
            extrinsic_index: d.chain.extrinsic_index,
            amount_rao: d.amount_rao,
            tao_usd_rate: d.rate_micros as f64 / 1_000_000.0,
            credited: d.credited,
            currency: d.currency,
            user_id: d.user_id,
            wallet_id: d.wallet_id,
            entry_id: d.entry_id,
            reported_by: d.reported_by,
            created_at: d.created_at,
        }
    }
}

/// The answer to a report.
#[derive(Serialize, ToSchema)]
pub(crate) struct ReportedView {
    deposit: DepositView,
    /// The transfer had been reported before: nothing changed, and `deposit` is the first
    /// report's record.
    duplicate: bool,
}

/// 404 to a report whose address no user holds: the deposit is recorded as `unmatched`.
#[derive(Serialize, ToSchema)]
pub(crate) struct UnmatchedView {
    #[schema(example = "No user holds this address; the deposit is recorded as unmatched")]
    detail: &'static str,
    #[schema(example = "unmatched_deposit")]
    code: &'static str,
    deposit: DepositView,
    duplicate: bool,
}

/// `POST /api/v1/deposits`: the transfer is credited once, however often it is reported.
#[utoipa::path(
    post,
    path = "/api/v1/deposits",
    operation_id = "report_deposit",
    summary = "Report a confirmed TAO transfer to a deposit address",
    extensions(("x-tessera-access" = json!("deposit"))),
    tag = "deposits",
    request_body = DepositBody,
    responses(
        (status = 201, description = "Recorded: `credited` to the owner's default wallet (a ledger entry of kind `deposit` naming the transfer, audited `wallet.deposit_reported`), or `ignored` below `deposits.minimum_rao`. Billing administrators, or an API key with the `deposits` scope whose owner is one", body = ReportedView),
        (status = 200, description = "Already reported (same block and extrinsic index): nothing changed; the first record, with `duplicate: true`", body = ReportedView),
        (status = 404, description = "No user holds the address: recorded as `unmatched` for reconciliation (also on a repeat)", body = UnmatchedView),
        Unauthenticated, Forbidden, InvalidBody, ServerErrors,
    ),
)]
pub(crate) async fn report_deposit(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    ApiJson(body): ApiJson<DepositBody>,
) -> Result<HttpResponse, ApiError> {
    let block = match body.block {
        BlockRef::Number(n) => n.to_string(),
        BlockRef::Text(t) => t,
    };
    let input = DepositInput {
        address: body.address,
        block,
        extrinsic_index: body.extrinsic_index,
        amount_rao: body.amount_rao,
        tao_usd_rate: body.tao_usd_rate,
    };
    let reported = state.tessera.deposits.report(&actor, input).await?;
    let duplicate = reported.duplicate;
    let deposit = DepositView::from(reported.deposit);
    if deposit.status == DepositStatus::Unmatched.as_str() {
        return Ok(HttpResponse::NotFound().json(UnmatchedView {
            detail: "No user holds this address; the deposit is recorded as unmatched",
            code: "unmatched_deposit",
            deposit,
            duplicate,
        }));
    }
    let mut response = if duplicate {
        HttpResponse::Ok()
    } else {
        HttpResponse::Created()
    };
    Ok(response.json(ReportedView { deposit, duplicate }))
}

/// Listing parameters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DepositsQuery {
    /// `credited`, `ignored` or `unmatched`.
    status: Option<String>,
    /// Skip this many (default 0).
    offset: Option<u64>,
    /// Page size, 1..=500 (default 50).
    limit: Option<u64>,
}

/// A page of deposits, newest first.
#[derive(Serialize, ToSchema)]
pub(crate) struct DepositsPage {
    items: Vec<DepositView>,
    offset: u64,
    limit: u64,
    has_more: bool,
}

impl From<DepositPage> for DepositsPage {
    fn from(p: DepositPage) -> Self {
        Self {
            items: p.deposits.into_iter().map(DepositView::from).collect(),
            offset: p.paging.offset,
            limit: p.paging.limit,
            has_more: p.has_more,
        }
    }
}

fn query_error(e: ValidationError) -> ApiError {
    ApiError::validation("query", &e.field, e.reason.into_owned(), "value_error")
}

fn listing(q: DepositsQuery) -> Result<(Option<DepositStatus>, Paging), ApiError> {
    let status = q
        .status
        .as_deref()
        .map(|raw| {
            DepositStatus::parse(raw).ok_or_else(|| {
                query_error(ValidationError::new(
                    "status",
                    "must be one of: credited, ignored, unmatched",
                ))
            })
        })
        .transpose()?;
    let paging = Paging::from_params(q.offset, q.limit, None, None).map_err(query_error)?;
    Ok((status, paging))
}

fn listed(result: Result<DepositPage, WalletError>) -> Result<HttpResponse, ApiError> {
    match result {
        Ok(page) => Ok(HttpResponse::Ok().json(DepositsPage::from(page))),
        Err(WalletError::Failure(Failure::Validation(v))) => Err(query_error(v)),
        Err(other) => Err(other.into()),
    }
}

/// Every recorded deposit (billing administrators), optionally of one status.
#[utoipa::path(
    get,
    path = "/api/v1/deposits",
    operation_id = "list_deposits",
    summary = "Every recorded deposit: credited, ignored and unmatched",
    tag = "deposits",
    params(DepositsQuery),
    responses(
        (status = 200, description = "Newest first. Billing administrators", body = DepositsPage),
        Unauthenticated, Forbidden, InvalidInput, ServerErrors,
    ),
)]
pub(crate) async fn list_deposits(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    ApiQuery(q): ApiQuery<DepositsQuery>,
) -> Result<HttpResponse, ApiError> {
    let (status, paging) = listing(q)?;
    listed(
        state
            .tessera
            .deposits
            .list_all(&actor, status, paging)
            .await,
    )
}

/// The deposits that reached a user's address.
#[utoipa::path(
    get,
    path = "/api/v1/users/{user}/deposits",
    operation_id = "list_user_deposits",
    summary = "The deposits to a user's deposit address",
    tag = "deposits",
    params(("user" = String, Path, description = "A user id (UUID), a username, or `me`"), DepositsQuery),
    responses(
        (status = 200, description = "Newest first. The user, their manager, administrators and billing administrators", body = DepositsPage),
        Unauthenticated, Forbidden, NotFound, InvalidInput, ServerErrors,
    ),
)]
pub(crate) async fn list_user_deposits(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
    ApiQuery(q): ApiQuery<DepositsQuery>,
) -> Result<HttpResponse, ApiError> {
    let (status, paging) = listing(q)?;
    let user = if path.as_str() == "me" {
        tessera_domain::values::UserRef::Id(actor.id())
    } else {
        user_ref(&path)?
    };
    listed(
        state
            .tessera
            .deposits
            .list_for_user(&actor, &user, status, paging)
            .await,
    )
}
