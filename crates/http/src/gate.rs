//! The gate every route passes before its handler: each route's resource (see the route list,
//! `routes.rs`) is wrapped by [`gate`] and carries a [`RouteInfo`].
//!
//! For an authenticated route it identifies the caller once, from whichever credential the
//! request carries, then asks the domain whether that credential allows the route's
//! [`Access`](tessera_domain::actor::Access) at all (a read-only key on a state-changing route is
//! refused here, whatever the handler does next), and applies the caller's tier rate limits to
//! the route's template. A request without a credential, or with one that does not
//! authenticate, is refused (401) and counts against the anonymous limits of its client
//! address. Open routes only meet the anonymous limits. The handler's extractors then read the
//! caller the gate established ([`Identified`]).

use std::rc::Rc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest};
use tessera_domain::actor::Access;
use tessera_domain::model::WalletSummary;
use tessera_domain::policy::{self, Denied};
use tessera_domain::{Actor, Failure};

use crate::auth::{client_ip, has_credentials, identify, AuthFailure};
use crate::error::ApiError;
use crate::state::ApiState;

/// What the gate asks of a request to one route and method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteMode {
    /// No credential is taken (public routes, and routes that check their own secret).
    Open,
    /// A credential is required and must allow this access.
    Authenticated(Access),
}

/// A resource's template and, per method, what the gate asks; resource data read by the gate.
#[derive(Debug, Clone)]
pub struct RouteInfo {
    /// The full template (`/api/v1/users/{user}`): rate-limit rules and metrics match it.
    pub template: Rc<str>,
    pub modes: Vec<(Method, RouteMode)>,
}

impl RouteInfo {
    pub fn mode(&self, method: &Method) -> Option<RouteMode> {
        self.modes
            .iter()
            .find(|(m, _)| m == method || (*method == Method::HEAD && m == Method::GET))
            .map(|(_, mode)| *mode)
    }
}

/// The caller the gate established for this request, with its wallet summary when the session
/// check read it (routes marked [`WalletsInSessionCheck`]).
pub(crate) struct Identified(pub Actor, pub Option<WalletSummary>);

/// Resource data: read the caller's wallet summary in the session check of a `GET` (one query
/// for `GET /users/me`).
#[derive(Debug, Clone, Copy)]
pub struct WalletsInSessionCheck;

/// How a surface words the gate's refusals: resource or scope data (the Chutes scope sets its
/// own); without it, the canonical `{"detail", "code"}` shapes.
#[derive(Clone, Copy)]
pub struct SurfaceErrors {
    pub unauthenticated: fn(AuthFailure) -> actix_web::Error,
    pub limited: fn(Failure) -> actix_web::Error,
    pub denied: fn(Denied) -> actix_web::Error,
}

impl SurfaceErrors {
    pub const CANONICAL: Self = Self {
        unauthenticated: |failure| ApiError::from(failure).into(),
        limited: |failure| ApiError::from(failure).into(),
        denied: |denied| match denied {
            Denied::NotFound => ApiError::NotFound("Not found").into(),
            Denied::Forbidden { code, message } => ApiError::Forbidden {
                code,
                detail: message.to_owned(),
            }
            .into(),
        },
    };
}

/// The caller [`crate::gate`] established for this request. Only authenticated routes have
/// one; asking on an open route is a wiring error, answered as a server error.
pub fn authenticate(req: &HttpRequest) -> Result<Actor, AuthFailure> {
    Ok(authenticate_with_wallets(req)?.0)
}

/// [`authenticate`], with the caller's wallet summary when the session check read it (`None`:
/// read it separately).
pub fn authenticate_with_wallets(
    req: &HttpRequest,
) -> Result<(Actor, Option<WalletSummary>), AuthFailure> {
    req.extensions_mut()
        .remove::<Identified>()
        .map(|Identified(actor, wallets)| (actor, wallets))
        .ok_or_else(|| AuthFailure::Internal("no caller: the route is not authenticated".into()))
}

/// The middleware itself. A refusal is answered here, as a response (not an error), so the
/// outer middleware still stamps the request id and counts it.
pub async fn gate<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    match admit(&req).await {
        Ok(()) => Ok(next.call(req).await?.map_into_left_body()),
        Err(refusal) => Ok(req.error_response(refusal).map_into_right_body()),
    }
}

/// What the gate decides for one request; `Err` is the refusal to answer with.
async fn admit(req: &ServiceRequest) -> Result<(), actix_web::Error> {
    let (Some(info), Some(state)) = (
        req.app_data::<RouteInfo>().cloned(),
        req.app_data::<web::Data<ApiState>>().cloned(),
    ) else {
        return Ok(());
    };
    let surface = req
        .app_data::<SurfaceErrors>()
        .copied()
        .unwrap_or(SurfaceErrors::CANONICAL);
    let limits = &state.tessera.limits;
    let ip = client_ip(req.request());
    // A method the resource lacks is its 405, decided by the resource.
    let Some(mode) = info.mode(req.method()) else {
        return Ok(());
    };
    match mode {
        RouteMode::Open => limits
            .check_request(None, &ip, &info.template)
            .await
            .map_err(surface.limited)?,
        RouteMode::Authenticated(access) => {
            let with_wallets =
                *req.method() == Method::GET && req.app_data::<WalletsInSessionCheck>().is_some();
            let identified = if has_credentials(req.request()) {
                identify(req.request(), with_wallets).await
            } else {
                Err(AuthFailure::Missing)
            };
            match identified {
                Ok((actor, wallets)) => {
                    let actor = actor.from_address(ip.clone());
                    limits
                        .check_request(Some(&actor), &ip, &info.template)
                        .await
                        .map_err(surface.limited)?;
                    policy::authorize_pending(&actor, access).map_err(surface.denied)?;
                    req.extensions_mut().insert(Identified(actor, wallets));
                }
                Err(failure) => {
                    // A credential that does not authenticate is no credential: the request
                    // counts as anonymous before it is refused.
                    limits
                        .check_request(None, &ip, &info.template)
                        .await
                        .map_err(surface.limited)?;
                    return Err((surface.unauthenticated)(failure));
                }
            }
        }
    }
    Ok(())
}
