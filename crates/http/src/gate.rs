//! The gate every route passes before its handler (each route's resource is wrapped by
//! [`gate`]; see [`crate::routes`]).
//!
//! For an authenticated route it identifies the caller once, from whichever credential the
//! request carries, then asks the domain whether that credential allows the route's
//! [`Access`](tessera_domain::actor::Access) at all (a read-only key on a state-changing route is
//! refused here, whatever the handler does next), and applies the caller's tier rate limits to
//! the route's template. A request without a credential, or with one that does not
//! authenticate, is refused (401) and counts against the anonymous limits of its client
//! address. Open routes only meet the anonymous limits. The handler's extractors then read the
//! caller the gate established ([`Identified`]).

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};
use tessera_domain::model::WalletSummary;
use tessera_domain::policy::{self, Denied};
use tessera_domain::{Actor, Failure};

use crate::auth::{client_ip, has_credentials, identify, AuthFailure};
use crate::chutes::ChutesError;
use crate::error::ApiError;
use crate::routes::{RouteInfo, RouteMode};
use crate::state::ApiState;

/// The caller the gate established for this request, with its wallet summary when the session
/// check read it (routes marked [`WalletsInSessionCheck`]).
pub(crate) struct Identified(pub Actor, pub Option<WalletSummary>);

/// Resource data: read the caller's wallet summary in the session check of a `GET` (one query
/// for `GET /users/me`).
#[derive(Debug, Clone, Copy)]
pub struct WalletsInSessionCheck;

/// Which error shape a route answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Surface {
    Canonical,
    Chutes,
}

impl Surface {
    fn of(template: &str) -> Self {
        if template.starts_with("/users") && !template.starts_with("/users/api/v1") {
            Self::Chutes
        } else {
            Self::Canonical
        }
    }

    fn refuse(self, error: ApiError) -> actix_web::Error {
        error.into()
    }

    fn limited(self, error: Failure) -> actix_web::Error {
        match (self, error) {
            (Self::Chutes, Failure::Throttled { retry_after_secs }) => {
                ChutesError::throttled("Too many requests.", retry_after_secs).into()
            }
            (_, other) => ApiError::from(other).into(),
        }
    }

    fn denied(self, denied: Denied) -> actix_web::Error {
        match (self, denied) {
            (Self::Chutes, Denied::Forbidden { message, .. }) => {
                ChutesError::forbidden(message).into()
            }
            (_, Denied::NotFound) => ApiError::NotFound("Not found").into(),
            (_, Denied::Forbidden { code, message }) => ApiError::Forbidden {
                code,
                detail: message.to_owned(),
            }
            .into(),
        }
    }

    fn unauthenticated(self, failure: AuthFailure) -> actix_web::Error {
        match self {
            Self::Chutes => crate::chutes::auth_failure(failure).into(),
            Self::Canonical => self.refuse(failure.into()),
        }
    }
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
    let surface = Surface::of(&info.template);
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
            .map_err(|e| surface.limited(e))?,
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
                        .map_err(|e| surface.limited(e))?;
                    policy::authorize_pending(&actor, access).map_err(|d| surface.denied(d))?;
                    req.extensions_mut().insert(Identified(actor, wallets));
                }
                Err(failure) => {
                    // A credential that does not authenticate is no credential: the request
                    // counts as anonymous before it is refused.
                    limits
                        .check_request(None, &ip, &info.template)
                        .await
                        .map_err(|e| surface.limited(e))?;
                    return Err(surface.unauthenticated(failure));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Surface;

    #[test]
    fn surfaces_follow_the_template() {
        assert_eq!(Surface::of("/users/me"), Surface::Chutes);
        assert_eq!(Surface::of("/users/{user_id}/quotas"), Surface::Chutes);
        assert_eq!(Surface::of("/users/api/v1/user"), Surface::Canonical);
        assert_eq!(Surface::of("/api/v1/users/me"), Surface::Canonical);
    }
}
