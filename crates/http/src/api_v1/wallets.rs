//! Wallets and the ledger (PRODUCT.md §4 "Wallets and ledger").

use actix_web::{web, HttpResponse};
use tessera_domain::model::LedgerCursor;
use tessera_domain::services::{AdjustmentInput, LedgerInput, TransferInput, DEFAULT_LEDGER_LIMIT};
use uuid::Uuid;

use super::user_ref;
use crate::dto::{
    AdjustmentBody, CreateWalletBody, LedgerEntryView, LedgerPageView, LedgerQuery,
    ListWalletsQuery, TransferBody, TransferView, WalletListView, WalletView,
};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, Authenticated, Idempotency};
use crate::state::ApiState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/users/{user}/wallets")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(
        web::resource("/wallets/{id}")
            .route(web::get().to(get))
            .route(web::delete().to(delete)),
    )
    .route("/wallets/{id}/restore", web::post().to(restore))
    .route("/wallets/{id}/adjustments", web::post().to(adjust))
    .route("/wallets/{id}/ledger", web::get().to(ledger))
    .route("/transfers", web::post().to(transfer));
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

async fn list(
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

async fn create(
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

async fn get(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let wallet = state.tessera.wallets.get(&actor, wallet_id(&path)?).await?;
    Ok(HttpResponse::Ok().json(WalletView::from(wallet)))
}

async fn delete(
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

async fn restore(
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

async fn adjust(
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
    if !posted.replayed {
        state.metrics.ledger_entries(1);
    }
    Ok(created(posted.replayed).json(LedgerEntryView::from(posted.entry)))
}

async fn transfer(
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
    if !transfer.replayed {
        state.metrics.ledger_entries(2);
    }
    Ok(created(transfer.replayed).json(TransferView::from(transfer)))
}

async fn ledger(
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
            tessera_domain::WalletError::Validation(v) => {
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
