//! The account half of the Chutes surface: registration, fingerprints, Bittensor keys, the
//! caller's profile, and the public name and growth endpoints.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tessera_domain::model::{
    CreatedAccount, FingerprintRotation, IssuedApiKey, Permission, Permissions, Registration, User,
};
use tessera_domain::services::KeyChange;
use tessera_domain::Actor;
use tessera_domain::Failure;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::error::responses::{ChutesInvalidBody, ChutesInvalidInput, ChutesServerErrors};
use super::{identity_error, ChutesAuth, ChutesError, ChutesErrorBody};
use crate::auth::{
    client_ip, signed_request_with, ChutesBodySignature, SigningPurpose, HOTKEY_HEADER,
    NONCE_HEADER, SIGNATURE_HEADER,
};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::routes::{op, Routes};
use crate::state::ApiState;

const COLDKEY_HEADER: &str = "x-chutes-coldkey";
const LOGO_BASE: &str = "https://logos.chutes.ai/logos";

pub fn configure(routes: &mut Routes) {
    routes
        .op(op!(growth))
        .op(op!(name_check))
        // Registration checks its own signature, in Chutes' body form too.
        .resource("/register", |r| {
            r.app_data(ChutesBodySignature).op(op!(register))
        })
        .op(op!(login))
        .op(op!(change_fingerprint))
        .op(op!(change_bt_auth))
        .op(op!(user_id_lookup))
        .op(op!(create_user))
        .op(op!(set_logo))
        .op(op!(squad_access))
        .resource("/me", |r| {
            r.app_data(SigningPurpose("me"))
                .op(op!(me))
                .op(op!(delete_me))
        });
}

/// Chutes' descriptions of the permission bits, listed in `permissions`.
fn description(p: Permission) -> &'static str {
    match p {
        Permission::Developer => "Developer -- create images and chutes on the platform.",
        Permission::CreateUser => "Create users -- administrator role allowing creation of users.",
        Permission::UpdateUser => "Update users -- administrator role allowing updates to users.",
        Permission::DeleteUser => "Delete users -- administrator role allowing deletion of users.",
        Permission::FreeAccount => "Free invocation -- run anything, for free.",
        Permission::Unlimited => "No rate limits.",
        Permission::BillingAdmin => "Billing admin.",
        Permission::UnlimitedDev => "Unlimited dev activity.",
        Permission::InvoiceBilling => "Invoice billing option",
        Permission::StakeWeightQuota => {
            "Enable stake weighted quota (signed message with the coldkey)"
        }
        // Tessera's own bits (Chutes has none above 1 << 13).
        Permission::Admin => "Administrator -- user administration and the admin directory.",
        Permission::Superuser => "Superuser -- everything.",
    }
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Chutes' SelfResponse.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = chutes::SelfResponse)]
pub struct SelfResponse {
    pub username: Option<String>,
    pub user_id: Uuid,
    pub logo_id: Option<Uuid>,
    pub logo: Option<String>,
    pub created_at: String,
    pub hotkey: Option<String>,
    pub coldkey: Option<String>,
    pub payment_address: Option<String>,
    pub permissions_bitmask: i64,
    /// USD, from the default wallet's exact micro-dollar balance.
    pub balance: f64,
    pub permissions: Vec<&'static str>,
}

/// The user's default-wallet balance in major units (a float, as Chutes shows it).
async fn balance_of(state: &ApiState, actor: &Actor, user: &User) -> Result<f64, ChutesError> {
    let wallets = &state.tessera.wallets;
    let summaries = wallets.summaries(actor, std::slice::from_ref(user)).await?;
    let currency = wallets.currencies().default_currency();
    let scale = wallets.currencies().scale(&currency);
    let minor = summaries
        .get(&user.id)
        .and_then(|s| s.balances.get(currency.as_str()))
        .copied()
        .unwrap_or(0);
    // Display only: exact amounts stay integers inside.
    Ok(minor as f64 / 10f64.powi(i32::try_from(scale).unwrap_or(0)))
}

/// The bitmask as Chutes clients read it: the stored permissions, plus Chutes' invoicing bit
/// (`invoice_billing`, 256) for an invoiced user and its `unlimited` bit (32) for an unlimited
/// one — Tessera keeps those two as flags of their own, Chutes as bits.
fn chutes_bits(user: &User) -> Permissions {
    let mut bits = user.permissions.bits();
    if user.invoicing {
        bits |= Permission::InvoiceBilling.bit();
    }
    if user.unlimited {
        bits |= Permission::Unlimited.bit();
    }
    Permissions::from_bits(bits)
}

pub async fn self_response(
    state: &ApiState,
    actor: &Actor,
    user: User,
) -> Result<SelfResponse, ChutesError> {
    let balance = balance_of(state, actor, &user).await?;
    let bits = chutes_bits(&user);
    Ok(SelfResponse {
        username: user.username,
        user_id: user.id,
        logo_id: user.logo_id,
        logo: user.logo_id.map(|id| format!("{LOGO_BASE}/{id}.webp")),
        created_at: rfc3339(user.created_at),
        hotkey: user.hotkey,
        coldkey: user.coldkey,
        payment_address: user.payment_address,
        permissions_bitmask: bits.bits(),
        balance,
        permissions: Permission::ALL
            .into_iter()
            .filter(|p| bits.granted(*p))
            .map(description)
            .collect(),
    })
}

/// An API key issued with the account; `secret_key` is shown only here.
#[derive(Serialize, ToSchema)]
#[schema(as = chutes::ApiKeyView)]
pub(crate) struct ApiKeyView {
    api_key_id: Uuid,
    user_id: Uuid,
    admin: bool,
    name: String,
    created_at: String,
    last_used_at: Option<String>,
    #[schema(value_type = Vec<crate::vocabulary::ApiKeyScopeName>)]
    scopes: Vec<&'static str>,
    secret_key: String,
}

impl From<IssuedApiKey> for ApiKeyView {
    fn from(issued: IssuedApiKey) -> Self {
        let k = issued.key;
        Self {
            api_key_id: k.id,
            user_id: k.user_id,
            admin: k.admin,
            name: k.name,
            created_at: rfc3339(k.created_at),
            last_used_at: k.last_used_at.map(rfc3339),
            scopes: k.scopes.names(),
            secret_key: issued.secret,
        }
    }
}

/// Chutes' RegistrationResponse: the only time the fingerprint (and key) is shown.
#[derive(Serialize, ToSchema)]
#[schema(as = chutes::RegistrationResponse)]
pub(crate) struct RegistrationResponse {
    username: Option<String>,
    user_id: Uuid,
    logo_id: Option<Uuid>,
    logo: Option<String>,
    created_at: String,
    hotkey: Option<String>,
    coldkey: Option<String>,
    payment_address: Option<String>,
    fingerprint: String,
    api_key: Option<ApiKeyView>,
}

impl From<CreatedAccount> for RegistrationResponse {
    fn from(a: CreatedAccount) -> Self {
        let u = a.user;
        Self {
            username: u.username,
            user_id: u.id,
            logo_id: u.logo_id,
            logo: u.logo_id.map(|id| format!("{LOGO_BASE}/{id}.webp")),
            created_at: rfc3339(u.created_at),
            hotkey: u.hotkey,
            coldkey: u.coldkey,
            payment_address: u.payment_address,
            fingerprint: a.fingerprint,
            api_key: a.api_key.map(ApiKeyView::from),
        }
    }
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A required header, missing → FastAPI's 422.
fn required_header<'a>(req: &'a HttpRequest, name: &'static str) -> Result<&'a str, ChutesError> {
    header(req, name)
        .ok_or_else(|| ApiError::validation("header", name, "Field required", "missing").into())
}

/// One day of user growth.
#[derive(Serialize, ToSchema)]
#[schema(as = chutes::Day)]
pub(crate) struct Day {
    /// `YYYY-MM-DD`.
    date: String,
    daily_count: u64,
    cumulative_count: u64,
}

#[utoipa::path(
    get,
    path = "/users/growth",
    operation_id = "chutes_user_growth",
    summary = "Users created per day (Chutes)",
    security(),
    tag = "chutes",
    responses(
        (status = 200, description = "Users created per day and in total, oldest first", body = [Day]),
        ChutesServerErrors,
    ),
)]
pub(crate) async fn growth(state: web::Data<ApiState>) -> Result<HttpResponse, ChutesError> {
    let points = state.tessera.users.growth(None).await?;
    let days: Vec<Day> = points
        .into_iter()
        .map(|p| Day {
            date: p.day.to_string(),
            daily_count: p.created,
            cumulative_count: p.cumulative,
        })
        .collect();
    Ok(HttpResponse::Ok().json(days))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct UsernameQuery {
    username: String,
}

#[derive(Serialize, ToSchema)]
#[schema(as = chutes::NameCheckResponse)]
pub(crate) struct NameCheckResponse {
    valid: bool,
    available: bool,
}

#[derive(Serialize, ToSchema)]
#[schema(as = chutes::UserIdResponse)]
pub(crate) struct UserIdResponse {
    user_id: Uuid,
}

#[utoipa::path(
    get,
    path = "/users/name_check",
    operation_id = "chutes_name_check",
    summary = "Whether a username is valid and free (Chutes)",
    security(),
    tag = "chutes",
    params(UsernameQuery),
    responses(
        (status = 200, description = "Whether the username is valid and free", body = NameCheckResponse),
        ChutesInvalidInput, ChutesServerErrors,
    ),
)]
pub(crate) async fn name_check(
    state: web::Data<ApiState>,
    ApiQuery(q): ApiQuery<UsernameQuery>,
) -> Result<HttpResponse, ChutesError> {
    let (valid, available) = state
        .tessera
        .identity
        .chutes_name_check(&q.username)
        .await
        .map_err(identity_error)?;
    Ok(HttpResponse::Ok().json(NameCheckResponse { valid, available }))
}

#[utoipa::path(
    get,
    path = "/users/user_id_lookup",
    operation_id = "chutes_user_id_lookup",
    summary = "A user's id by username (Chutes)",
    tag = "chutes",
    params(UsernameQuery),
    responses(
        (status = 200, description = "The user's id", body = UserIdResponse),
        (status = 401, description = "No or an invalid credential, signature or nonce (Chutes' message)", body = ChutesErrorBody),
        (status = 403, description = "Not allowed for this credential", body = ChutesErrorBody),
        (status = 404, description = "No user by that name", body = ChutesErrorBody),
        ChutesInvalidInput, ChutesServerErrors,
    ),
)]
pub(crate) async fn user_id_lookup(
    state: web::Data<ApiState>,
    ChutesAuth(actor): ChutesAuth,
    ApiQuery(q): ApiQuery<UsernameQuery>,
) -> Result<HttpResponse, ChutesError> {
    match state
        .tessera
        .identity
        .user_id_lookup(&actor, &q.username)
        .await
    {
        Ok(user_id) => Ok(HttpResponse::Ok().json(UserIdResponse { user_id })),
        Err(tessera_domain::IdentityError::NotFound) => Err(ChutesError::not_found(format!(
            "User not found: {}",
            q.username
        ))),
        Err(e) => Err(identity_error(e)),
    }
}

#[derive(Deserialize, ToSchema)]
#[schema(as = chutes::RegisterBody)]
pub(crate) struct RegisterBody {
    username: String,
    /// The account's Bittensor coldkey (SS58).
    coldkey: String,
    /// Accepted and ignored, as in Chutes.
    #[serde(default)]
    #[allow(dead_code)]
    logo_id: Option<Value>,
}

#[utoipa::path(
    post,
    path = "/users/register",
    operation_id = "chutes_register",
    summary = "Registers an account by hotkey signature (Chutes)",
    extensions(("x-tessera-access" = json!("own"))),
    tag = "chutes",
    request_body = RegisterBody,
    security(("hotkey" = [], "hotkey_signature" = [], "hotkey_nonce" = [])),
    responses(
        (status = 200, description = "The new account, with its fingerprint (shown only here)", body = RegistrationResponse),
        (status = 401, description = "No signature, or an invalid signature or nonce", body = ChutesErrorBody),
        (status = 409, description = "The hotkey or the username is taken", body = ChutesErrorBody),
        (status = 429, description = "Too many registrations from this IP", body = ChutesErrorBody,
            headers(("Retry-After" = String, description = "Seconds to wait before retrying"))),
        ChutesInvalidBody, ChutesServerErrors,
    ),
)]
pub(crate) async fn register(
    req: HttpRequest,
    state: web::Data<ApiState>,
    ApiJson(body): ApiJson<RegisterBody>,
) -> Result<HttpResponse, ChutesError> {
    let hotkey = required_header(&req, HOTKEY_HEADER)?;
    // Unlike Chutes, the signature is required: registering proves ownership of the hotkey.
    let signature = header(&req, SIGNATURE_HEADER)
        .ok_or_else(|| ChutesError::unauthorized("A hotkey signature is required to register"))?;
    let signed = signed_request_with(&req, hotkey, signature);
    let registration = Registration {
        username: body.username.clone(),
        coldkey: body.coldkey,
        client_ip: client_ip(&req),
    };
    match state.tessera.identity.register(&signed, registration).await {
        Ok(account) => Ok(HttpResponse::Ok().json(RegistrationResponse::from(account))),
        Err(e) => Err(registration_error(e, &body.username)),
    }
}

fn registration_error(e: tessera_domain::IdentityError, username: &str) -> ChutesError {
    use tessera_domain::{Conflict, IdentityError};
    match e {
        IdentityError::Failure(Failure::Conflict(Conflict::DuplicateHotkey)) => {
            ChutesError::conflict("This hotkey is already registered to a user!")
        }
        IdentityError::Failure(Failure::Conflict(Conflict::DuplicateUsername)) => {
            ChutesError::conflict(format!(
                "Username {username} already exists, sorry! Please choose another."
            ))
        }
        IdentityError::Failure(Failure::Validation(v)) if v.field == "username" => {
            ChutesError::bad_request(v.reason.into_owned())
        }
        IdentityError::Failure(Failure::Throttled { retry_after_secs }) => ChutesError::throttled(
            "Too many registration requests from this IP.",
            retry_after_secs,
        ),
        other => identity_error(other),
    }
}

#[derive(Deserialize, ToSchema)]
#[schema(as = chutes::CreateUserBody)]
pub(crate) struct CreateUserBody {
    username: String,
    #[serde(default)]
    #[allow(dead_code)]
    logo_id: Option<Value>,
}

#[utoipa::path(
    post,
    path = "/users/create_user",
    operation_id = "chutes_create_user",
    summary = "Creates an account without Bittensor keys, with its fingerprint and an admin key (Chutes)",
    tag = "chutes",
    request_body = CreateUserBody,
    responses(
        (status = 200, description = "The new account, with its fingerprint and API key (shown only here)", body = RegistrationResponse),
        (status = 401, description = "No or an invalid credential, signature or nonce (Chutes' message)", body = ChutesErrorBody),
        (status = 403, description = "The caller may not create users", body = ChutesErrorBody),
        (status = 409, description = "The username is taken", body = ChutesErrorBody),
        (status = 429, description = "Too many accounts created from this IP", body = ChutesErrorBody,
            headers(("Retry-After" = String, description = "Seconds to wait before retrying"))),
        ChutesInvalidBody, ChutesServerErrors,
    ),
)]
pub(crate) async fn create_user(
    req: HttpRequest,
    state: web::Data<ApiState>,
    ChutesAuth(actor): ChutesAuth,
    ApiJson(body): ApiJson<CreateUserBody>,
) -> Result<HttpResponse, ChutesError> {
    let ip = client_ip(&req);
    match state
        .tessera
        .identity
        .create_account_for(&actor, &body.username, &ip)
        .await
    {
        Ok(account) => Ok(HttpResponse::Ok().json(RegistrationResponse::from(account))),
        Err(e) => Err(registration_error(e, &body.username)),
    }
}

#[derive(Deserialize, ToSchema)]
#[schema(as = chutes::LoginBody)]
pub(crate) struct LoginBody {
    #[serde(default)]
    fingerprint: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = chutes::TokenResponse)]
pub(crate) struct TokenResponse {
    /// A JWT for `Authorization: Bearer`.
    token: String,
}

#[utoipa::path(
    post,
    path = "/users/login",
    operation_id = "chutes_login",
    summary = "Logs in with a fingerprint (Chutes)",
    security(),
    tag = "chutes",
    request_body = LoginBody,
    responses(
        (status = 200, description = "An access token for the account of this fingerprint", body = TokenResponse),
        (status = 401, description = "Missing or invalid fingerprint", body = ChutesErrorBody),
        ChutesInvalidBody, ChutesServerErrors,
    ),
)]
pub(crate) async fn login(
    req: HttpRequest,
    state: web::Data<ApiState>,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<HttpResponse, ChutesError> {
    let fingerprint = body.fingerprint.unwrap_or_default();
    let token = state
        .tessera
        .identity
        .login_with_fingerprint(&fingerprint, &client_ip(&req))
        .await
        .map_err(identity_error)?;
    Ok(HttpResponse::Ok().json(TokenResponse { token }))
}

#[derive(Deserialize, ToSchema)]
#[schema(as = chutes::FingerprintBody)]
pub(crate) struct FingerprintBody {
    /// The new fingerprint.
    fingerprint: String,
}

#[derive(Serialize, ToSchema)]
#[schema(as = chutes::StatusResponse)]
pub(crate) struct StatusResponse {
    status: String,
}

#[utoipa::path(
    post,
    path = "/users/change_fingerprint",
    operation_id = "chutes_change_fingerprint",
    summary = "Replaces the account's fingerprint (hotkey- or coldkey-signed)",
    extensions(("x-tessera-access" = json!("own"))),
    tag = "chutes",
    request_body = FingerprintBody,
    params(
        ("X-Chutes-Coldkey" = Option<String>, Header,
            description = "The account's coldkey (SS58), instead of `X-Chutes-Hotkey`; the signature is then the coldkey's"),
    ),
    // The hotkey, or `X-Chutes-Coldkey` with the signature and nonce; signature and nonce are
    // required (422 without them).
    security(
        ("hotkey" = [], "hotkey_signature" = [], "hotkey_nonce" = []),
        ("hotkey_signature" = [], "hotkey_nonce" = []),
    ),
    responses(
        (status = 200, description = "The fingerprint was replaced", body = StatusResponse),
        (status = 401, description = "An invalid signature or nonce, or no user with that hotkey/coldkey", body = ChutesErrorBody),
        (status = 409, description = "The coldkey belongs to several accounts: sign with the hotkey", body = ChutesErrorBody),
        ChutesInvalidBody, ChutesServerErrors,
    ),
)]
pub(crate) async fn change_fingerprint(
    req: HttpRequest,
    state: web::Data<ApiState>,
    ApiJson(body): ApiJson<FingerprintBody>,
) -> Result<HttpResponse, ChutesError> {
    let nonce = required_header(&req, NONCE_HEADER)?;
    let signature = required_header(&req, SIGNATURE_HEADER)?;
    let rotation = FingerprintRotation {
        hotkey: header(&req, HOTKEY_HEADER).map(|h| h.trim().to_owned()),
        coldkey: header(&req, COLDKEY_HEADER).map(|h| h.trim().to_owned()),
        signature: signature.trim().to_owned(),
        nonce: nonce.trim().to_owned(),
        fingerprint: body.fingerprint,
    };
    use tessera_domain::IdentityError;
    match state.tessera.identity.rotate_fingerprint(rotation).await {
        Ok(()) => Ok(HttpResponse::Ok().json(StatusResponse {
            status: "Fingerprint updated".to_owned(),
        })),
        Err(IdentityError::MalformedSignature) => {
            Err(ChutesError::unauthorized("Invalid signature"))
        }
        Err(IdentityError::InvalidNonce) => Err(ChutesError::unauthorized(format!(
            "Invalid nonce: {}",
            nonce.trim()
        ))),
        Err(IdentityError::UnknownKey | IdentityError::SignatureMismatch { .. }) => Err(
            ChutesError::unauthorized("No user found with the provided hotkey/coldkey"),
        ),
        Err(IdentityError::Failure(Failure::Conflict(
            tessera_domain::Conflict::DuplicateHotkey,
        ))) => Err(ChutesError::conflict(
            "This coldkey belongs to several accounts; sign with the account's hotkey",
        )),
        Err(e) => Err(identity_error(e)),
    }
}

#[derive(Deserialize, ToSchema)]
#[schema(as = chutes::KeysBody)]
pub(crate) struct KeysBody {
    #[serde(default)]
    coldkey: Option<String>,
    #[serde(default)]
    hotkey: Option<String>,
    /// Unix seconds within the signature window (Tessera's fix: Chutes asks no proof).
    #[serde(default)]
    nonce: Option<String>,
    /// The new coldkey's signature of `{coldkey}:{nonce}:change_bt_auth:{username}`.
    #[serde(default)]
    coldkey_signature: Option<String>,
    /// The new hotkey's signature of `{hotkey}:{nonce}:change_bt_auth:{username}`.
    #[serde(default)]
    hotkey_signature: Option<String>,
}

#[utoipa::path(
    post,
    path = "/users/change_bt_auth",
    operation_id = "chutes_change_bt_auth",
    summary = "Attaches Bittensor keys to the account (fingerprint-authenticated, each key signed)",
    security(("fingerprint" = [])),
    extensions(("x-tessera-access" = json!("own"))),
    tag = "chutes",
    request_body = KeysBody,
    params(
        ("Authorization" = String, Header, description = "The account's fingerprint, the whole header value (no `Bearer`)"),
    ),
    responses(
        (status = 200, description = "The account with its new keys", body = SelfResponse),
        (status = 401, description = "Missing or invalid fingerprint", body = ChutesErrorBody),
        (status = 409, description = "The hotkey belongs to another user", body = ChutesErrorBody),
        ChutesInvalidBody, ChutesServerErrors,
    ),
)]
pub(crate) async fn change_bt_auth(
    req: HttpRequest,
    state: web::Data<ApiState>,
    ApiJson(body): ApiJson<KeysBody>,
) -> Result<HttpResponse, ChutesError> {
    use tessera_domain::{Conflict, IdentityError};
    // The whole header is the fingerprint here (Chutes strips no "Bearer").
    let fingerprint = header(&req, "authorization").unwrap_or("").to_owned();
    let change = KeyChange {
        coldkey: body.coldkey,
        hotkey: body.hotkey.clone(),
        nonce: body.nonce,
        coldkey_signature: body.coldkey_signature,
        hotkey_signature: body.hotkey_signature,
    };
    match state
        .tessera
        .identity
        .change_keys(&fingerprint, change, &client_ip(&req))
        .await
    {
        Ok(user) => {
            let actor = Actor::direct(user.clone(), None);
            Ok(HttpResponse::Ok().json(self_response(&state, &actor, user).await?))
        }
        Err(IdentityError::Failure(Failure::Conflict(Conflict::DuplicateHotkey))) => {
            Err(ChutesError::conflict(format!(
                "Hotkey already associated with another user: {}",
                body.hotkey.unwrap_or_default()
            )))
        }
        Err(IdentityError::Failure(Failure::Validation(v))) => {
            Err(ChutesError::bad_request(v.reason.into_owned()))
        }
        Err(e) => Err(identity_error(e)),
    }
}

#[utoipa::path(
    get,
    path = "/users/me",
    operation_id = "chutes_me",
    summary = "The caller's profile and balance (Chutes)",
    tag = "chutes",
    responses(
        (status = 200, description = "The caller's profile and balance (hotkey signatures sign the purpose `me`)", body = SelfResponse),
        (status = 401, description = "No or an invalid credential, signature or nonce (Chutes' message)", body = ChutesErrorBody),
        (status = 403, description = "Not allowed for this credential", body = ChutesErrorBody),
        (status = 404, description = "The account is gone", body = ChutesErrorBody),
        ChutesServerErrors,
    ),
)]
pub(crate) async fn me(
    state: web::Data<ApiState>,
    ChutesAuth(actor): ChutesAuth,
) -> Result<HttpResponse, ChutesError> {
    let user = state.tessera.users.me(&actor).await?;
    Ok(HttpResponse::Ok().json(self_response(&state, &actor, user).await?))
}

/// Chutes purges the account whose fingerprint is the last token of `Authorization`; tokens
/// and API keys do not work here.
#[derive(Serialize, ToSchema)]
#[schema(as = chutes::DeletedResponse)]
pub(crate) struct DeletedResponse {
    deleted: bool,
}

#[utoipa::path(
    delete,
    path = "/users/me",
    operation_id = "chutes_delete_me",
    summary = "Deletes the caller's account (fingerprint-authenticated)",
    security(("fingerprint" = [])),
    extensions(("x-tessera-access" = json!("own"))),
    tag = "chutes",
    params(
        ("Authorization" = String, Header, description = "The account's fingerprint, as the header's last word (`Bearer` optional); tokens and API keys do not work here"),
    ),
    responses(
        (status = 200, description = "The account was purged", body = DeletedResponse),
        (status = 401, description = "No account has this fingerprint", body = ChutesErrorBody),
        ChutesInvalidInput, ChutesServerErrors,
    ),
)]
pub(crate) async fn delete_me(
    req: HttpRequest,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ChutesError> {
    let value = required_header(&req, "authorization")?;
    let fingerprint = value.trim().rsplit(' ').next().unwrap_or("");
    match state
        .tessera
        .identity
        .purge_by_fingerprint(fingerprint, &client_ip(&req))
        .await
    {
        Ok(()) => Ok(HttpResponse::Ok().json(DeletedResponse { deleted: true })),
        Err(tessera_domain::IdentityError::InvalidFingerprint) => {
            Err(ChutesError::unauthorized("Not authorized"))
        }
        Err(e) => Err(identity_error(e)),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LogoQuery {
    /// A logo id (UUID).
    logo_id: String,
}

#[utoipa::path(
    get,
    path = "/users/set_logo",
    operation_id = "chutes_set_logo",
    summary = "Sets the caller's logo (Chutes)",
    extensions(("x-tessera-access" = json!("write"))),
    tag = "chutes",
    params(LogoQuery),
    responses(
        (status = 200, description = "The caller's profile with the new logo", body = SelfResponse),
        (status = 401, description = "No or an invalid credential, signature or nonce (Chutes' message)", body = ChutesErrorBody),
        (status = 403, description = "Not allowed for this credential", body = ChutesErrorBody),
        ChutesInvalidInput, ChutesServerErrors,
    ),
)]
pub(crate) async fn set_logo(
    state: web::Data<ApiState>,
    ChutesAuth(actor): ChutesAuth,
    ApiQuery(q): ApiQuery<LogoQuery>,
) -> Result<HttpResponse, ChutesError> {
    let logo_id = Uuid::parse_str(q.logo_id.trim()).map_err(|_| {
        ChutesError::from(ApiError::validation(
            "query",
            "logo_id",
            "Input should be a valid UUID",
            "uuid_parsing",
        ))
    })?;
    let user = state
        .tessera
        .identity
        .set_logo(&actor, logo_id)
        .await
        .map_err(identity_error)?;
    Ok(HttpResponse::Ok().json(self_response(&state, &actor, user).await?))
}

#[derive(Serialize, ToSchema)]
#[schema(as = chutes::SquadAccessResponse)]
pub(crate) struct SquadAccessResponse {
    squad_enabled: bool,
}

#[utoipa::path(
    put,
    path = "/users/squad_access",
    operation_id = "chutes_squad_access",
    summary = "Enables or disables squad access for the caller (Chutes)",
    tag = "chutes",
    request_body(
        content = Object,
        description = "`{\"enable\": true|false}` (also `\"true\"` / `\"True\"`)",
        example = json!({"enable": true}),
    ),
    responses(
        (status = 200, description = "Whether squad access is now enabled", body = SquadAccessResponse),
        (status = 401, description = "No or an invalid credential, signature or nonce (Chutes' message)", body = ChutesErrorBody),
        (status = 403, description = "Not allowed for this credential", body = ChutesErrorBody),
        ChutesInvalidBody, ChutesServerErrors,
    ),
)]
pub(crate) async fn squad_access(
    state: web::Data<ApiState>,
    ChutesAuth(actor): ChutesAuth,
    ApiJson(body): ApiJson<serde_json::Map<String, Value>>,
) -> Result<HttpResponse, ChutesError> {
    let enable = match body.get("enable") {
        None => {
            return Err(ChutesError::bad_request(
                r#"Invalid request, payload should be {"enable": true|false}"#,
            ))
        }
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true" || s == "True",
        Some(_) => false,
    };
    let user = state
        .tessera
        .identity
        .set_squad_access(&actor, enable)
        .await
        .map_err(identity_error)?;
    Ok(HttpResponse::Ok().json(SquadAccessResponse {
        squad_enabled: user.squad_enabled,
    }))
}
