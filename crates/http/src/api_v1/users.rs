use actix_web::{web, HttpResponse};
use serde_json::json;
use tessera_domain::directory::{SearchTerm, Sort, SortField, SortOrder, UserFilter};
use tessera_domain::model::User;
use tessera_domain::services::{CreateUserInput, ListUsersInput, UpdateUserInput};
use tessera_domain::values::{Paging, UserRef};
use tessera_domain::{Actor, ValidationError};

use super::user_ref;
use crate::dto::{
    scope_names, ChangePasswordBody, CountView, CreateUserBody, CreatedUserView, GrowthQuery,
    ListUsersQuery, NameCheckQuery, TempPasswordView, UpdateUserBody, UserListView, UserView,
};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, Authenticated, JsonOrForm};
use crate::state::ApiState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Literal segments are registered before `{user}` so that `me` and `db_user` always win.
    cfg.service(
        web::resource("/users")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .route("/users/count", web::get().to(count))
    .route("/users/name-check", web::get().to(name_check))
    .route("/stats/growth", web::get().to(growth))
    .route("/me/password", web::post().to(change_own_password))
    .service(
        web::resource("/users/me")
            // Hotkey-signed `GET /users/me` signs `{hotkey}:{nonce}:me`, as on Chutes.
            .app_data(crate::auth::SigningPurpose("me"))
            .route(web::get().to(get_me))
            .route(web::patch().to(update_me))
            .route(web::put().to(update_me))
            .route(web::delete().to(delete_me)),
    )
    .service(web::resource("/users/db_user/{user}").route(web::delete().to(purge)))
    .service(
        web::resource("/users/{user}")
            .route(web::get().to(get))
            .route(web::patch().to(update))
            .route(web::put().to(update))
            .route(web::delete().to(delete)),
    )
    .route("/users/{user}/restore", web::post().to(restore))
    .route("/users/{user}/password", web::post().to(reset_password))
    .route("/users/{user}/logout", web::post().to(force_logout))
    .route("/users/{user}/deactivate", web::post().to(deactivate))
    .route("/users/{user}/reactivate", web::post().to(reactivate));
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
    Ok(ListUsersInput {
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

async fn count(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    ApiQuery(q): ApiQuery<ListUsersQuery>,
) -> Result<HttpResponse, ApiError> {
    let count = state.tessera.users.count(&actor, list_input(q)?).await?;
    Ok(HttpResponse::Ok().json(CountView { count }))
}

async fn name_check(
    state: web::Data<ApiState>,
    ApiQuery(q): ApiQuery<NameCheckQuery>,
) -> Result<HttpResponse, ApiError> {
    let check = state.tessera.users.name_check(&q.username).await?;
    Ok(HttpResponse::Ok().json(json!({"valid": check.valid, "available": check.available})))
}

async fn growth(
    state: web::Data<ApiState>,
    ApiQuery(q): ApiQuery<GrowthQuery>,
) -> Result<HttpResponse, ApiError> {
    let points = state.tessera.users.growth(q.days).await?;
    let items: Vec<_> = points
        .into_iter()
        .map(|p| json!({"date": p.day.to_string(), "count": p.created, "cumulative": p.cumulative}))
        .collect();
    Ok(HttpResponse::Ok().json(items))
}

async fn reset_password(
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

async fn force_logout(
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

async fn change_own_password(
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

async fn list(
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
        has_more,
        offset,
        limit,
        page: page.paging.page.unwrap_or(offset / limit + 1),
        items_per_page: limit,
    }))
}

async fn create(
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
            temp_password: created.temp_password,
        }))
}

async fn get_me(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
) -> Result<HttpResponse, ApiError> {
    let me = state.tessera.users.me(&actor).await?;
    Ok(HttpResponse::Ok().json(view(&state, &actor, me).await?))
}

async fn update_me(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    JsonOrForm(body): JsonOrForm<UpdateUserBody>,
) -> Result<HttpResponse, ApiError> {
    let me = UserRef::Id(actor.id());
    let user = state.tessera.users.update(&actor, &me, body.into()).await?;
    Ok(HttpResponse::Ok().json(view(&state, &actor, user).await?))
}

async fn delete_me(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
) -> Result<HttpResponse, ApiError> {
    let me = UserRef::Id(actor.id());
    state.tessera.users.delete(&actor, &me).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn get(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = state.tessera.users.get(&actor, &user_ref(&path)?).await?;
    Ok(HttpResponse::Ok().json(view(&state, &actor, user).await?))
}

async fn update(
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

async fn delete(
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

async fn purge(
    state: web::Data<ApiState>,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.tessera.users.purge(&actor, &user_ref(&path)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn restore(
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

async fn deactivate(
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

async fn reactivate(
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
