use actix_web::{web, HttpResponse};
use tessera_domain::directory::{SearchTerm, Sort, SortField, SortOrder, UserCursor, UserFilter};
use tessera_domain::model::User;
use tessera_domain::services::{CreateUserInput, ListUsersInput, UpdateUserInput};
use tessera_domain::values::{Paging, UserRef};
use tessera_domain::{Actor, ValidationError};

use super::user_ref;
use crate::api_v1::dto::{
    scope_names, ChangePasswordBody, CountView, CreateUserBody, CreatedUserView, GrowthPointView,
    GrowthQuery, ListUsersQuery, NameCheckQuery, NameCheckView, TempPasswordView, UpdateUserBody,
    UserListView, UserView,
};
use crate::error::responses::{
    Conflict, Forbidden, InvalidBody, InvalidInput, NotFound, ServerErrors, Unauthenticated,
};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, Authenticated, AuthenticatedWithWallets, JsonOrForm};
use crate::routes::{op, Routes};
use crate::state::ApiState;

pub fn configure(routes: &mut Routes) {
    // Literal segments are registered before `{user}` so that `me` and `db_user` always win.
    routes
        .resource("/users", |r| r.op(op!(list)).op(op!(create)))
        .op(op!(count))
        .op(op!(name_check))
        .op(op!(growth))
        .op(op!(change_own_password))
        .resource("/users/me", |r| {
            // Hotkey-signed `GET /users/me` may sign `{hotkey}:{nonce}:me`, as on Chutes; its
            // session check reads the caller's wallets too (one query).
            r.app_data(crate::auth::SigningPurpose("me"))
                .app_data(crate::gate::WalletsInSessionCheck)
                .op(op!(get_me))
                .op(op!(update_me))
                .op(op!(replace_me))
                .op(op!(delete_me))
        })
        .resource("/users/db_user/{user}", |r| r.op(op!(purge)))
        .resource("/users/{user}", |r| {
            r.op(op!(get))
                .op(op!(update))
                .op(op!(replace))
                .op(op!(delete))
        })
        .op(op!(restore))
        .op(op!(reset_password))
        .op(op!(force_logout))
        .op(op!(deactivate))
        .op(op!(reactivate));
}

/// User views with their wallet counts and default-wallet balances: one extra store round trip
/// for the whole page.
pub(crate) async fn views(
    state: &ApiState,
    actor: &Actor,
    users: Vec<User>,
) -> Result<Vec<UserView>, ApiError> {
    let summaries = state.tessera.wallets.summaries(actor, &users).await?;
    Ok(users
        .into_iter()
        .map(|u| {
            let summary = summaries.get(&u.id);
            UserView::from(u).with_wallets(summary)
        })
        .collect())
}

pub(crate) async fn view(
    state: &ApiState,
    actor: &Actor,
    user: User,
) -> Result<UserView, ApiError> {
    let summaries = state
        .tessera
        .wallets
        .summaries(actor, std::slice::from_ref(&user))
        .await?;
    let summary = summaries.get(&user.id);
    Ok(UserView::from(user).with_wallets(summary))
}

impl From<UpdateUserBody> for UpdateUserInput {
    fn from(b: UpdateUserBody) -> Self {
        Self {
            username: b.username,
            email: b.email,
            first_name: b.first_name,
            last_name: b.last_name,
            name: b.name,
            password: b.password,
            current_password: b.current_password,
            is_admin: b.is_admin,
            is_superuser: b.is_superuser,
            permissions: b.permissions,
        }
    }
}

fn query_error(e: ValidationError) -> ApiError {
    ApiError::validation("query", &e.field, e.reason.into_owned(), "value_error")
}

/// The listing parameters shared by `GET /users` and `GET /users/count`, parsed once.
fn list_input(q: ListUsersQuery) -> Result<ListUsersInput, ApiError> {
    let paging =
        Paging::from_params(q.offset, q.limit, q.page, q.items_per_page).map_err(query_error)?;
    let filter = match q.filter_by.as_deref() {
        Some(raw) => UserFilter::parse(raw).map_err(query_error)?,
        None => UserFilter::default(),
    };
    let sort = match q.sort_by.as_deref() {
        Some(field) => Some(Sort {
            field: SortField::parse(field).map_err(query_error)?,
            order: q
                .sort_order
                .as_deref()
                .map(SortOrder::parse)
                .transpose()
                .map_err(query_error)?
                .unwrap_or_default(),
        }),
        None => {
            if let Some(order) = q.sort_order.as_deref() {
                SortOrder::parse(order).map_err(query_error)?;
            }
            None
        }
    };
    let term = |field: &'static str, raw: Option<String>| {
        raw.map(|r| SearchTerm::parse(field, &r))
            .transpose()
            .map(Option::flatten)
            .map_err(query_error)
    };
    let after = q
        .cursor
        .as_deref()
        .map(|raw| UserCursor::decode(raw, sort))
        .transpose()
        .map_err(query_error)?;
    Ok(ListUsersInput {
        after,
        paging,
        include_deleted: q.include_deleted,
        include_managed: q.include_managed.unwrap_or(true),
        include_shared: q.include_shared.unwrap_or(true),
        filter,
        search: term("search", q.search)?,
        name: term("name", q.name)?,
        sort,
    })
}

#[utoipa::path(
    get,
    path = "/api/v1/users/count",
    operation_id = "count_users",
    summary = "Counts the users a listing with the same filters would return",
    tag = "users",
    params(ListUsersQuery),
    responses(
        (status = 200, description = "How many users the listing would show", body = CountView),
        Unauthenticated, Forbidden, InvalidInput, ServerErrors,
    ),
)]
pub(crate) async fn count(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    ApiQuery(q): ApiQuery<ListUsersQuery>,
) -> Result<HttpResponse, ApiError> {
    let count = state.tessera.users.count(&actor, list_input(q)?).await?;
    Ok(HttpResponse::Ok().json(CountView { count }))
}

#[utoipa::path(
    get,
    path = "/api/v1/users/name-check",
    operation_id = "check_username",
    summary = "Whether a username is valid and free",
    security(),
    tag = "users",
    params(NameCheckQuery),
    responses(
        (status = 200, description = "Whether the name is valid and free", body = NameCheckView),
        InvalidInput, ServerErrors,
    ),
)]
pub(crate) async fn name_check(
    state: web::Data<ApiState>,
    ApiQuery(q): ApiQuery<NameCheckQuery>,
) -> Result<HttpResponse, ApiError> {
    let check = state.tessera.users.name_check(&q.username).await?;
    Ok(HttpResponse::Ok().json(NameCheckView {
        valid: check.valid,
        available: check.available,
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/stats/growth",
    operation_id = "user_growth",
    summary = "Users created per day",
    security(),
    tag = "users",
    params(GrowthQuery),
    responses(
        (status = 200, description = "Daily and cumulative user counts, oldest first", body = [GrowthPointView]),
        InvalidInput, ServerErrors,
    ),
)]
pub(crate) async fn growth(
    state: web::Data<ApiState>,
    ApiQuery(q): ApiQuery<GrowthQuery>,
) -> Result<HttpResponse, ApiError> {
    let points = state.tessera.users.growth(q.days).await?;
    let items: Vec<_> = points
        .into_iter()
        .map(|p| GrowthPointView {
            date: p.day.to_string(),
            count: p.created,
            cumulative: p.cumulative,
        })
        .collect();
    Ok(HttpResponse::Ok().json(items))
}

#[utoipa::path(
    post,
    path = "/api/v1/users/{user}/password",
    operation_id = "reset_user_password",
    summary = "Resets a user's password to a temporary one",
    tag = "users",
    params(("user" = String, Path, description = "A user id (UUID) or a username")),
    responses(
        (status = 200, description = "A temporary password, shown once; the user's sessions are revoked", body = TempPasswordView),
        Unauthenticated, Forbidden, NotFound, ServerErrors,
    ),
)]
pub(crate) async fn reset_password(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let temp = state
        .tessera
        .users
        .reset_password(&actor, &user_ref(&path)?)
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(TempPasswordView {
            temp_password: temp.clone(),
            temp_password_camel: temp,
        }))
}

#[utoipa::path(
    post,
    path = "/api/v1/users/{user}/logout",
    operation_id = "force_logout_user",
    summary = "Ends every session of a user",
    tag = "users",
    params(("user" = String, Path, description = "A user id (UUID) or a username")),
    responses(
        (status = 204, description = "Every session and token of the user is revoked"),
        Unauthenticated, Forbidden, NotFound, ServerErrors,
    ),
)]
pub(crate) async fn force_logout(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .tessera
        .users
        .force_logout(&actor, &user_ref(&path)?)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post,
    path = "/api/v1/me/password",
    operation_id = "change_own_password",
    summary = "Changes the caller's password",
    tag = "users",
    request_body = ChangePasswordBody,
    responses(
        (status = 204, description = "Changed; the caller's other sessions are revoked"),
        Unauthenticated, Forbidden, InvalidBody, ServerErrors,
    ),
)]
pub(crate) async fn change_own_password(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    ApiJson(body): ApiJson<ChangePasswordBody>,
) -> Result<HttpResponse, ApiError> {
    state
        .tessera
        .users
        .change_own_password(&actor, body.current_password, &body.new_password)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    get,
    path = "/api/v1/users",
    operation_id = "list_users",
    summary = "Lists the users the caller may see: paged, filtered, searched and sorted",
    tag = "users",
    params(ListUsersQuery),
    responses(
        (status = 200, description = "A page of the users the caller can see", body = UserListView),
        Unauthenticated, Forbidden, InvalidInput, ServerErrors,
    ),
)]
pub(crate) async fn list(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    ApiQuery(q): ApiQuery<ListUsersQuery>,
) -> Result<HttpResponse, ApiError> {
    let input = list_input(q)?;
    let page = state.tessera.users.list(&actor, input).await?;
    let has_more = page.has_more();
    let limit = page.paging.limit;
    let offset = page.paging.offset;
    let scopes = state.tessera.shares.scopes_on(&actor, &page.users).await?;
    let mut data = views(&state, &actor, page.users).await?;
    for view in &mut data {
        view.scopes = Some(scope_names(
            scopes.get(&view.id).copied().unwrap_or_default(),
        ));
    }
    Ok(HttpResponse::Ok().json(UserListView {
        data,
        total_count: page.total,
        total_is_estimate: !page.total_exact,
        has_more,
        next_cursor: page.next_cursor,
        offset,
        limit,
        page: page.paging.page.unwrap_or(offset / limit + 1),
        items_per_page: limit,
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/users",
    operation_id = "create_user",
    summary = "Creates a user",
    tag = "users",
    request_body = CreateUserBody,
    responses(
        (status = 201, description = "The new user, with `temp_password` when one was generated", body = CreatedUserView),
        Unauthenticated, Forbidden, NotFound, Conflict, InvalidBody, ServerErrors,
    ),
)]
pub(crate) async fn create(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    ApiJson(b): ApiJson<CreateUserBody>,
) -> Result<HttpResponse, ApiError> {
    let input = CreateUserInput {
        username: b.username,
        email: b.email,
        password: b.password,
        first_name: b.first_name,
        last_name: b.last_name,
        name: b.name,
        is_admin: b.is_admin,
        is_superuser: b.is_superuser,
        tier_id: b.tier_id,
    };
    let created = state.tessera.users.create(&actor, input).await?;
    Ok(HttpResponse::Created()
        .insert_header(("Cache-Control", "no-store"))
        .json(CreatedUserView {
            user: view(&state, &actor, created.user).await?,
            temp_password_camel: created.temp_password.clone(),
            temp_password: created.temp_password,
        }))
}

#[utoipa::path(
    get,
    path = "/api/v1/users/me",
    operation_id = "get_me",
    summary = "The caller",
    tag = "users",
    responses(
        (status = 200, description = "The caller", body = UserView),
        Unauthenticated, ServerErrors,
    ),
)]
pub(crate) async fn get_me(
    state: web::Data<ApiState>,
    AuthenticatedWithWallets(actor, wallets): AuthenticatedWithWallets,
) -> Result<HttpResponse, ApiError> {
    let me = state.tessera.users.me(&actor).await?;
    let view = match wallets {
        // Read with the session: the whole request is one store round trip.
        Some(summary) => UserView::from(me).with_wallets(Some(&summary)),
        None => view(&state, &actor, me).await?,
    };
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(
    patch,
    path = "/api/v1/users/me",
    operation_id = "update_me",
    summary = "Updates the caller (a partial update)",
    tag = "users",
    request_body(
        content = UpdateUserBody,
        content_type = "application/json",
        description = "JSON; the same fields are also accepted as application/x-www-form-urlencoded (where a field cannot be set to null)"
    ),
    responses(
        (status = 200, description = "The updated caller", body = UserView),
        Unauthenticated, Forbidden, Conflict, InvalidBody, ServerErrors,
    ),
)]
pub(crate) async fn update_me(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    JsonOrForm(body): JsonOrForm<UpdateUserBody>,
) -> Result<HttpResponse, ApiError> {
    let me = UserRef::Id(actor.id());
    let user = state.tessera.users.update(&actor, &me, body.into()).await?;
    Ok(HttpResponse::Ok().json(view(&state, &actor, user).await?))
}

/// Updates the caller (the same partial update as `PATCH`).
#[utoipa::path(
    put,
    path = "/api/v1/users/me",
    operation_id = "replace_me",
    tag = "users",
    request_body(
        content = UpdateUserBody,
        content_type = "application/json",
        description = "JSON; the same fields are also accepted as application/x-www-form-urlencoded (where a field cannot be set to null)"
    ),
    responses(
        (status = 200, description = "The updated caller", body = UserView),
        Unauthenticated, Forbidden, Conflict, InvalidBody, ServerErrors,
    ),
)]
pub(crate) async fn replace_me(
    state: web::Data<ApiState>,
    actor: Authenticated,
    body: JsonOrForm<UpdateUserBody>,
) -> Result<HttpResponse, ApiError> {
    update_me(state, actor, body).await
}

#[utoipa::path(
    delete,
    path = "/api/v1/users/me",
    operation_id = "delete_me",
    summary = "Deletes the caller's own account",
    tag = "users",
    responses(
        (status = 204, description = "The caller's account is soft-deleted"),
        Unauthenticated, Forbidden, Conflict, ServerErrors,
    ),
)]
pub(crate) async fn delete_me(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
) -> Result<HttpResponse, ApiError> {
    let me = UserRef::Id(actor.id());
    state.tessera.users.delete(&actor, &me).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    get,
    path = "/api/v1/users/{user}",
    operation_id = "get_user",
    summary = "One user",
    tag = "users",
    params(("user" = String, Path, description = "A user id (UUID) or a username")),
    responses(
        (status = 200, description = "The user", body = UserView),
        Unauthenticated, Forbidden, NotFound, ServerErrors,
    ),
)]
pub(crate) async fn get(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = state.tessera.users.get(&actor, &user_ref(&path)?).await?;
    Ok(HttpResponse::Ok().json(view(&state, &actor, user).await?))
}

#[utoipa::path(
    patch,
    path = "/api/v1/users/{user}",
    operation_id = "update_user",
    summary = "Updates a user (a partial update)",
    tag = "users",
    params(("user" = String, Path, description = "A user id (UUID) or a username")),
    request_body(
        content = UpdateUserBody,
        content_type = "application/json",
        description = "JSON; the same fields are also accepted as application/x-www-form-urlencoded (where a field cannot be set to null)"
    ),
    responses(
        (status = 200, description = "The updated user", body = UserView),
        Unauthenticated, Forbidden, NotFound, Conflict, InvalidBody, ServerErrors,
    ),
)]
pub(crate) async fn update(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
    JsonOrForm(body): JsonOrForm<UpdateUserBody>,
) -> Result<HttpResponse, ApiError> {
    let target = user_ref(&path)?;
    let user = state
        .tessera
        .users
        .update(&actor, &target, body.into())
        .await?;
    Ok(HttpResponse::Ok().json(view(&state, &actor, user).await?))
}

/// Updates a user (the same partial update as `PATCH`).
#[utoipa::path(
    put,
    path = "/api/v1/users/{user}",
    operation_id = "replace_user",
    tag = "users",
    params(("user" = String, Path, description = "A user id (UUID) or a username")),
    request_body(
        content = UpdateUserBody,
        content_type = "application/json",
        description = "JSON; the same fields are also accepted as application/x-www-form-urlencoded (where a field cannot be set to null)"
    ),
    responses(
        (status = 200, description = "The updated user", body = UserView),
        Unauthenticated, Forbidden, NotFound, Conflict, InvalidBody, ServerErrors,
    ),
)]
pub(crate) async fn replace(
    state: web::Data<ApiState>,
    actor: Authenticated,
    path: web::Path<String>,
    body: JsonOrForm<UpdateUserBody>,
) -> Result<HttpResponse, ApiError> {
    update(state, actor, path, body).await
}

#[utoipa::path(
    delete,
    path = "/api/v1/users/{user}",
    operation_id = "delete_user",
    summary = "Deletes a user (restorable)",
    tag = "users",
    params(("user" = String, Path, description = "A user id (UUID) or a username")),
    responses(
        (status = 204, description = "Soft-deleted (a managed user is purged)"),
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
        .users
        .delete(&actor, &user_ref(&path)?)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    delete,
    path = "/api/v1/users/db_user/{user}",
    operation_id = "purge_user",
    summary = "Purges a user for good, with its wallets and ledger",
    tag = "users",
    params(("user" = String, Path, description = "A user id (UUID) or a username")),
    responses(
        (status = 204, description = "The user and all their data are gone"),
        Unauthenticated, Forbidden, NotFound, ServerErrors,
    ),
)]
pub(crate) async fn purge(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.tessera.users.purge(&actor, &user_ref(&path)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post,
    path = "/api/v1/users/{user}/restore",
    operation_id = "restore_user",
    summary = "Restores a deleted user",
    tag = "users",
    params(("user" = String, Path, description = "A user id (UUID) or a username")),
    responses(
        (status = 200, description = "The restored user", body = UserView),
        Unauthenticated, Forbidden, NotFound, Conflict, ServerErrors,
    ),
)]
pub(crate) async fn restore(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = state
        .tessera
        .users
        .restore(&actor, &user_ref(&path)?)
        .await?;
    Ok(HttpResponse::Ok().json(view(&state, &actor, user).await?))
}

#[utoipa::path(
    post,
    path = "/api/v1/users/{user}/deactivate",
    operation_id = "deactivate_user",
    summary = "Deactivates a user",
    tag = "users",
    params(("user" = String, Path, description = "A user id (UUID) or a username")),
    responses(
        (status = 200, description = "The deactivated user", body = UserView),
        Unauthenticated, Forbidden, NotFound, Conflict, ServerErrors,
    ),
)]
pub(crate) async fn deactivate(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = state
        .tessera
        .users
        .deactivate(&actor, &user_ref(&path)?)
        .await?;
    Ok(HttpResponse::Ok().json(view(&state, &actor, user).await?))
}

#[utoipa::path(
    post,
    path = "/api/v1/users/{user}/reactivate",
    operation_id = "reactivate_user",
    summary = "Reactivates a deactivated user",
    tag = "users",
    params(("user" = String, Path, description = "A user id (UUID) or a username")),
    responses(
        (status = 200, description = "The reactivated user", body = UserView),
        Unauthenticated, Forbidden, NotFound, Conflict, ServerErrors,
    ),
)]
pub(crate) async fn reactivate(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = state
        .tessera
        .users
        .reactivate(&actor, &user_ref(&path)?)
        .await?;
    Ok(HttpResponse::Ok().json(view(&state, &actor, user).await?))
}
