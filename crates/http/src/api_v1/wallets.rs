//! Wallets and the ledger (PRODUCT.md §4 "Wallets and ledger").

use actix_web::{web, HttpResponse};
use tessera_domain::model::LedgerCursor;
use tessera_domain::services::{AdjustmentInput, LedgerInput, TransferInput, DEFAULT_LEDGER_LIMIT};
use uuid::Uuid;

use super::user_ref;
use crate::api_v1::dto::{
    AdjustmentBody, CreateWalletBody, LedgerEntryView, LedgerPageView, LedgerQuery,
    ListWalletsQuery, TransferBody, TransferView, WalletListView, WalletView,
};
use crate::error::responses::{
    Conflict, Forbidden, InvalidBody, InvalidInput, NotFound, ServerErrors, Unauthenticated,
};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, Authenticated, Idempotency};
use crate::routes::{op, Routes};
use crate::state::ApiState;

pub fn configure(routes: &mut Routes) {
    routes
        .resource("/users/{user}/wallets", |r| r.op(op!(list)).op(op!(create)))
        .resource("/wallets/{id}", |r| r.op(op!(get)).op(op!(delete)))
        .op(op!(restore))
        .op(op!(adjust))
        .op(op!(ledger))
        .op(op!(transfer));
}

fn wallet_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound("Wallet not found"))
}

/// 201 for a new entry; a replay answers the same, marked `Idempotent-Replayed: true`.
fn created(replayed: bool) -> actix_web::HttpResponseBuilder {
    let mut response = HttpResponse::Created();
    if replayed {
        response.insert_header(("Idempotent-Replayed", "true"));
    }
    response
}

#[utoipa::path(
    get,
    path = "/api/v1/users/{user}/wallets",
    operation_id = "list_wallets",
    summary = "The user's wallets",
    tag = "wallets",
    params(("user" = String, Path, description = "A user id (UUID) or a username"), ListWalletsQuery),
    responses(
        (status = 200, description = "The user's wallets with their balances", body = WalletListView),
        Unauthenticated, Forbidden, NotFound, InvalidInput, ServerErrors,
    ),
)]
pub(crate) async fn list(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
    ApiQuery(q): ApiQuery<ListWalletsQuery>,
) -> Result<HttpResponse, ApiError> {
    let wallets = state
        .tessera
        .wallets
        .list_for_user(&actor, &user_ref(&path)?, q.include_deleted)
        .await?;
    Ok(HttpResponse::Ok().json(WalletListView {
        data: wallets.into_iter().map(WalletView::from).collect(),
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/users/{user}/wallets",
    operation_id = "create_wallet",
    summary = "Opens a wallet for the user",
    tag = "wallets",
    params(("user" = String, Path, description = "A user id (UUID) or a username")),
    request_body = CreateWalletBody,
    responses(
        (status = 201, description = "The new wallet", body = WalletView),
        Unauthenticated, Forbidden, NotFound, Conflict, InvalidBody, ServerErrors,
    ),
)]
pub(crate) async fn create(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
    ApiJson(body): ApiJson<CreateWalletBody>,
) -> Result<HttpResponse, ApiError> {
    let wallet = state
        .tessera
        .wallets
        .create(&actor, &user_ref(&path)?, &body.name, &body.currency)
        .await?;
    Ok(HttpResponse::Created().json(WalletView::from(wallet)))
}

#[utoipa::path(
    get,
    path = "/api/v1/wallets/{id}",
    operation_id = "get_wallet",
    summary = "One wallet",
    tag = "wallets",
    params(("id" = String, Path, description = "A wallet id (UUID)")),
    responses(
        (status = 200, description = "The wallet", body = WalletView),
        Unauthenticated, Forbidden, NotFound, ServerErrors,
    ),
)]
pub(crate) async fn get(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let wallet = state.tessera.wallets.get(&actor, wallet_id(&path)?).await?;
    Ok(HttpResponse::Ok().json(WalletView::from(wallet)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/wallets/{id}",
    operation_id = "delete_wallet",
    summary = "Deletes a wallet (restorable)",
    tag = "wallets",
    params(("id" = String, Path, description = "A wallet id (UUID)")),
    responses(
        (status = 204, description = "Soft-deleted"),
        Unauthenticated, Forbidden, NotFound, Conflict, ServerErrors,
    ),
)]
pub(crate) async fn delete(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .tessera
        .wallets
        .delete(&actor, wallet_id(&path)?)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post,
    path = "/api/v1/wallets/{id}/restore",
    operation_id = "restore_wallet",
    summary = "Restores a deleted wallet",
    tag = "wallets",
    params(("id" = String, Path, description = "A wallet id (UUID)")),
    responses(
        (status = 200, description = "The restored wallet", body = WalletView),
        Unauthenticated, Forbidden, NotFound, Conflict, ServerErrors,
    ),
)]
pub(crate) async fn restore(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let wallet = state
        .tessera
        .wallets
        .restore(&actor, wallet_id(&path)?)
        .await?;
    Ok(HttpResponse::Ok().json(WalletView::from(wallet)))
}

#[utoipa::path(
    post,
    path = "/api/v1/wallets/{id}/adjustments",
    operation_id = "adjust_wallet",
    summary = "Credits or debits a wallet (honours Idempotency-Key)",
    tag = "wallets",
    params(("id" = String, Path, description = "A wallet id (UUID)"), ("Idempotency-Key" = Option<String>, Header, description = "1..=255 printable ASCII characters; a replay with the same body returns the first result (marked `Idempotent-Replayed: true`), a different body is 409")),
    request_body = AdjustmentBody,
    responses(
        (status = 201, description = "The ledger entry, with `balance_after`", body = LedgerEntryView, headers(("Idempotent-Replayed" = String, description = "`true` when this is the stored result of an earlier request with the same key"))),
        Unauthenticated, Forbidden, NotFound, Conflict, InvalidBody, ServerErrors,
    ),
)]
pub(crate) async fn adjust(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
    Idempotency(key): Idempotency,
    ApiJson(body): ApiJson<AdjustmentBody>,
) -> Result<HttpResponse, ApiError> {
    let input = AdjustmentInput {
        amount: body.amount,
        reason: body.reason,
    };
    let posted = state
        .tessera
        .wallets
        .adjust(&actor, wallet_id(&path)?, input, key)
        .await?;
    Ok(created(posted.replayed).json(LedgerEntryView::from(posted.entry)))
}

#[utoipa::path(
    post,
    path = "/api/v1/transfers",
    operation_id = "transfer",
    summary = "Moves money between two wallets of one currency",
    tag = "wallets",
    params(("Idempotency-Key" = Option<String>, Header, description = "1..=255 printable ASCII characters; a replay with the same body returns the first result (marked `Idempotent-Replayed: true`), a different body is 409")),
    request_body = TransferBody,
    responses(
        (status = 201, description = "Both ledger entries of the transfer", body = TransferView, headers(("Idempotent-Replayed" = String, description = "`true` when this is the stored result of an earlier request with the same key"))),
        Unauthenticated, Forbidden, NotFound, Conflict, InvalidBody, ServerErrors,
    ),
)]
pub(crate) async fn transfer(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    Idempotency(key): Idempotency,
    ApiJson(body): ApiJson<TransferBody>,
) -> Result<HttpResponse, ApiError> {
    let input = TransferInput {
        from_wallet: body.from_wallet,
        to_wallet: body.to_wallet,
        amount: body.amount,
        reason: body.reason,
    };
    let transfer = state.tessera.wallets.transfer(&actor, input, key).await?;
    Ok(created(transfer.replayed).json(TransferView::from(transfer)))
}

#[utoipa::path(
    get,
    path = "/api/v1/wallets/{id}/ledger",
    operation_id = "wallet_ledger",
    summary = "The wallet's ledger, newest first",
    tag = "wallets",
    params(("id" = String, Path, description = "A wallet id (UUID)"), LedgerQuery),
    responses(
        (status = 200, description = "Ledger entries, newest first", body = LedgerPageView),
        Unauthenticated, Forbidden, NotFound, InvalidInput, ServerErrors,
    ),
)]
pub(crate) async fn ledger(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
    ApiQuery(q): ApiQuery<LedgerQuery>,
) -> Result<HttpResponse, ApiError> {
    let cursor = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(raw) => Some(LedgerCursor::decode(raw).ok_or_else(|| {
            ApiError::validation("query", "cursor", "invalid cursor", "value_error")
        })?),
    };
    let limit = q.limit.unwrap_or(DEFAULT_LEDGER_LIMIT);
    let page = state
        .tessera
        .wallets
        .ledger(&actor, wallet_id(&path)?, LedgerInput { cursor, limit })
        .await
        .map_err(|e| match e {
            tessera_domain::WalletError::Failure(tessera_domain::Failure::Validation(v)) => {
                ApiError::validation("query", &v.field, v.reason.into_owned(), "value_error")
            }
            other => other.into(),
        })?;
    Ok(HttpResponse::Ok().json(LedgerPageView {
        data: page
            .entries
            .into_iter()
            .map(LedgerEntryView::from)
            .collect(),
        next_cursor: page.next.map(|c| c.encode()),
        limit,
    }))
}
