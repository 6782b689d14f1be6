//! LNbits' Admin Users API.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use tessera_domain::model::User;
use tessera_domain::services::{CreateUserInput, ListUsersInput, UpdateUserInput};
use tessera_domain::values::{Paging, UserRef};
use tessera_domain::Actor;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::responses::{
    Conflict, Forbidden, InvalidBody, InvalidInput, NotFound, ServerErrors, Unauthenticated,
};
use crate::error::ApiError;
use crate::extract::double_option;
use crate::extract::{idempotency_key, ApiQuery, Authenticated, LaterJson};
use crate::routes::{op, Routes};
use crate::state::ApiState;

/// The seed's default page size.
const DEFAULT_LIMIT: u64 = 20;
/// LNbits keeps balances in whole sats on this surface and millisats inside.
const CURRENCY: &str = "sat";

pub fn configure(routes: &mut Routes) {
    routes
        .resource("/user", |r| r.op(op!(list)).op(op!(create)))
        .resource("/user/{user_id}", |r| {
            r.op(op!(get)).op(op!(update)).op(op!(delete))
        })
        .op(op!(balance));
}

/// `{id, username, email, is_admin, wallet_count, created_at}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = lnbits::UserItem)]
pub(crate) struct UserItem {
    id: Uuid,
    username: Option<String>,
    email: Option<String>,
    is_admin: bool,
    /// Live wallets (LNbits also counts soft-deleted ones; see docs/api.md).
    wallet_count: u64,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    limit: Option<u64>,
    offset: Option<u64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = lnbits::CreateBody)]
pub(crate) struct CreateBody {
    username: String,
    password: String,
    email: Option<String>,
    /// Sent by LNbits' own clients; must match `password` when present.
    password_repeat: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = lnbits::CreatedItem)]
pub(crate) struct CreatedItem {
    id: Uuid,
    username: Option<String>,
    email: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = lnbits::UpdateBody)]
pub(crate) struct UpdateBody {
    username: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    email: Option<Option<String>>,
    is_admin: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = lnbits::UpdatedItem)]
pub(crate) struct UpdatedItem {
    id: Uuid,
    username: Option<String>,
    email: Option<String>,
    is_admin: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = lnbits::BalanceBody)]
pub(crate) struct BalanceBody {
    /// Whole sats, signed.
    amount: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = lnbits::BalanceItem)]
pub(crate) struct BalanceItem {
    user_id: Uuid,
    /// Millisats.
    new_balance: i64,
}

/// LNbits user ids are UUIDs; anything else names nobody.
fn user_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound("User not found"))
}

async fn items(
    state: &ApiState,
    actor: &Actor,
    users: Vec<User>,
) -> Result<Vec<UserItem>, ApiError> {
    let summaries = state.tessera.wallets.summaries(actor, &users).await?;
    Ok(users
        .into_iter()
        .map(|u| UserItem {
            wallet_count: summaries.get(&u.id).map_or(0, |s| s.wallet_count),
            is_admin: u.permissions.is_admin(),
            id: u.id,
            username: u.username,
            email: u.email,
            created_at: u.created_at,
        })
        .collect())
}

/// A bare message: `{"detail": "User deleted"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DetailView {
    pub detail: &'static str,
}

/// `GET /users/api/v1/user?limit=&offset=`: a plain JSON array, oldest first.
#[utoipa::path(
    get,
    path = "/users/api/v1/user",
    operation_id = "lnbits_list_users",
    tag = "lnbits",
    params(ListQuery),
    responses(
        (status = 200, description = "Users, oldest first (a plain array)", body = [UserItem]),
        Unauthenticated, Forbidden, InvalidInput, ServerErrors,
    ),
)]
pub(crate) async fn list(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    state.tessera.users.require_admin(&actor)?;
    let paging = Paging::from_params(q.offset, Some(q.limit.unwrap_or(DEFAULT_LIMIT)), None, None)
        .map_err(|e| {
            ApiError::validation("query", &e.field, e.reason.into_owned(), "value_error")
        })?;
    let page = state
        .tessera
        .users
        .list(&actor, ListUsersInput::first_page(paging))
        .await?;
    Ok(HttpResponse::Ok().json(items(&state, &actor, page.users).await?))
}

/// `GET /users/api/v1/user/{user_id}`.
#[utoipa::path(
    get,
    path = "/users/api/v1/user/{user_id}",
    operation_id = "lnbits_get_user",
    tag = "lnbits",
    params(("user_id" = Uuid, Path, description = "The user's id")),
    responses(
        (status = 200, description = "The user", body = UserItem),
        Unauthenticated, Forbidden, NotFound, ServerErrors,
    ),
)]
pub(crate) async fn get(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.tessera.users.require_admin(&actor)?;
    let id = user_id(&path)?;
    let user = state.tessera.users.get(&actor, &UserRef::Id(id)).await?;
    let mut found = items(&state, &actor, vec![user]).await?;
    let item = found
        .pop()
        .ok_or_else(|| ApiError::Internal("user vanished from its own view".into()))?;
    Ok(HttpResponse::Ok().json(item))
}

/// `POST /users/api/v1/user` `{username, password, email}` → 201 `{id, username, email}`.
/// The password is never echoed (LNbits echoes it).
#[utoipa::path(
    post,
    path = "/users/api/v1/user",
    operation_id = "lnbits_create_user",
    tag = "lnbits",
    request_body = CreateBody,
    responses(
        (status = 201, description = "The new user (the password is not echoed)", body = CreatedItem),
        Unauthenticated, Forbidden, Conflict, InvalidBody, ServerErrors,
    ),
)]
pub(crate) async fn create(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    body: LaterJson,
) -> Result<HttpResponse, ApiError> {
    state.tessera.users.require_admin(&actor)?;
    let body: CreateBody = body.parse()?;
    if body
        .password_repeat
        .as_ref()
        .is_some_and(|r| *r != body.password)
    {
        return Err(ApiError::validation(
            "body",
            "password_repeat",
            "Passwords do not match.",
            "value_error",
        ));
    }
    let input = CreateUserInput {
        username: Some(body.username),
        email: body.email,
        password: Some(body.password),
        ..CreateUserInput::default()
    };
    let created = state.tessera.users.create(&actor, input).await?;
    Ok(HttpResponse::Created()
        .insert_header(("Cache-Control", "no-store"))
        .json(CreatedItem {
            id: created.user.id,
            username: created.user.username,
            email: created.user.email,
        }))
}

/// `PUT /users/api/v1/user/{user_id}` `{username, email, is_admin}`; absent fields stay as
/// they are (granting or revoking admin takes a superuser).
#[utoipa::path(
    put,
    path = "/users/api/v1/user/{user_id}",
    operation_id = "lnbits_update_user",
    tag = "lnbits",
    params(("user_id" = Uuid, Path, description = "The user's id")),
    request_body = UpdateBody,
    responses(
        (status = 200, description = "The updated user", body = UpdatedItem),
        Unauthenticated, Forbidden, NotFound, Conflict, InvalidBody, ServerErrors,
    ),
)]
pub(crate) async fn update(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
    body: LaterJson,
) -> Result<HttpResponse, ApiError> {
    state.tessera.users.require_admin(&actor)?;
    let id = user_id(&path)?;
    let body: UpdateBody = body.parse()?;
    let input = UpdateUserInput {
        username: body.username,
        email: body.email,
        is_admin: body.is_admin,
        ..UpdateUserInput::default()
    };
    let user = state
        .tessera
        .users
        .update(&actor, &UserRef::Id(id), input)
        .await?;
    Ok(HttpResponse::Ok().json(UpdatedItem {
        id: user.id,
        is_admin: user.permissions.is_admin(),
        username: user.username,
        email: user.email,
    }))
}

/// `DELETE /users/api/v1/user/{user_id}` (super user): purges the user with its wallets and
/// their ledger → `{"detail": "User deleted"}`.
#[utoipa::path(
    delete,
    path = "/users/api/v1/user/{user_id}",
    operation_id = "lnbits_delete_user",
    tag = "lnbits",
    params(("user_id" = Uuid, Path, description = "The user's id")),
    responses(
        (status = 200, description = "Purged with its wallets and their ledger", body = DetailView, example = json!({"detail": "User deleted"})),
        Unauthenticated, Forbidden, NotFound, ServerErrors,
    ),
)]
pub(crate) async fn delete(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.tessera.users.require_admin(&actor)?;
    state.tessera.users.require_superuser(&actor)?;
    let id = user_id(&path)?;
    state.tessera.users.purge(&actor, &UserRef::Id(id)).await?;
    Ok(HttpResponse::Ok().json(DetailView {
        detail: "User deleted",
    }))
}

/// `PUT /users/api/v1/user/{user_id}/balance` `{amount}` in whole sats (signed), on the
/// user's default `sat` wallet (opened with the change if the user has none) →
/// `{user_id, new_balance}` in millisats. Honours `Idempotency-Key`.
#[utoipa::path(
    put,
    path = "/users/api/v1/user/{user_id}/balance",
    operation_id = "lnbits_adjust_balance",
    tag = "lnbits",
    params(("user_id" = Uuid, Path, description = "The user's id"), ("Idempotency-Key" = Option<String>, Header, description = "1..=255 printable ASCII characters; a replay with the same body returns the first result (marked `Idempotent-Replayed: true`), a different body is 409")),
    request_body = BalanceBody,
    responses(
        (status = 200, description = "The default `sat` wallet's new balance, in millisats", body = BalanceItem, headers(("Idempotent-Replayed" = String, description = "`true` when this is the stored result of an earlier request with the same key"))),
        Unauthenticated, Forbidden, NotFound, Conflict, InvalidBody, ServerErrors,
    ),
)]
pub(crate) async fn balance(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
    req: HttpRequest,
    body: LaterJson,
) -> Result<HttpResponse, ApiError> {
    state.tessera.users.require_admin(&actor)?;
    let id = user_id(&path)?;
    let key = idempotency_key(&req)?;
    let body: BalanceBody = body.parse()?;
    let reason = if body.amount < 0 {
        "Admin debit"
    } else {
        "Admin credit"
    };
    let posted = state
        .tessera
        .wallets
        .adjust_default_in_major_units(&actor, &UserRef::Id(id), CURRENCY, body.amount, reason, key)
        .await?;
    let mut response = HttpResponse::Ok();
    if posted.replayed {
        response.insert_header(("Idempotent-Replayed", "true"));
    }
    Ok(response.json(BalanceItem {
        user_id: id,
        new_balance: posted.entry.balance_after,
    }))
}
