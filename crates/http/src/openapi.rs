//! The OpenAPI 3.1 document of every surface, served at `/openapi.json` and explored at `/docs`.
//!
//! Schemas are derived next to the wire types (`ToSchema` / `IntoParams` in `dto.rs` and the
//! surface modules); each handler carries its own `#[utoipa::path]`; this module only gathers
//! them. The test below compares the document with the routes the server really registers
//! (recorded by [`crate::routes::Routes`]) and fails on any difference, in either direction.
//!
//! # Adding a route
//!
//! 1. Register it in its module's `configure(routes: &mut Routes)` with `routes.get(..)`,
//!    `routes.post(..)`, `routes.resource(path, |r| r.get(..).patch(..))` or inside
//!    `routes.scope(..)` — never on actix's `ServiceConfig` directly, or it is not recorded.
//! 2. Annotate the handler with `#[utoipa::path(...)]`: the method, the FULL path with the scope
//!    prefix (`/api/v1/...`, `/users/...`), a unique `operation_id`, a `tag` (see [`ApiDoc`]),
//!    `params(...)` for path / query / header (`Idempotency-Key`) parameters, `request_body`,
//!    `security(...)` (`bearer`, `api_key`, or the three hotkey schemes together:
//!    `("hotkey" = [], "hotkey_signature" = [], "hotkey_nonce" = [])`), and `responses(...)`:
//!    the success statuses with their bodies, then the error sets of
//!    [`crate::error::responses`] that apply (`Unauthenticated`, `Forbidden`, `NotFound`,
//!    `Conflict`, `InvalidBody`, `InvalidInput`, `ServerErrors`). Chutes routes answer
//!    `{"detail": …}`: describe their errors with `body = ChutesErrorBody`.
//! 3. Derive `ToSchema` (bodies) or `IntoParams` (query structs) on its wire types.
//! 4. Add the handler to `paths(...)` of [`ApiDoc`] below.
//!
//! `cargo test -p tessera-http openapi` then passes; it names any route that is registered but
//! not documented, or documented but not registered.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api_v1::{api_keys, audit, auth, metering, shares, tiers, users, wallets};
use crate::chutes::ChutesErrorBody;
use crate::error::{ErrorBody, FieldError, ValidationBody};
use crate::{chutes, docs, health, lnbits};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tessera",
        description = "Users, accounts, wallets, quotas and metering behind three HTTP surfaces:\n\n\
            - the canonical REST API under `/api/v1`;\n\
            - the Chutes-compatible surface under `/users/*`;\n\
            - the LNbits-compatible admin surface under `/users/api/v1/user*`.\n\n\
            Errors are `{\"detail\", \"code\"}` (Chutes: `{\"detail\"}`); validation failures are \
            422 with FastAPI's `{\"detail\": [{\"loc\", \"msg\", \"type\"}]}`.",
    ),
    paths(
        // Operations
        health::healthz,
        health::readyz,
        health::metrics,
        docs::openapi_json,
        docs::docs_page,
        docs::docs_asset,
        // /api/v1 auth
        auth::login,
        auth::refresh,
        auth::logout,
        shares::delegated_token,
        api_keys::list,
        api_keys::create,
        api_keys::revoke,
        // /api/v1 users
        users::list,
        users::create,
        users::count,
        users::name_check,
        users::growth,
        users::change_own_password,
        users::get_me,
        users::update_me,
        users::replace_me,
        users::delete_me,
        users::purge,
        users::get,
        users::update,
        users::replace,
        users::delete,
        users::restore,
        users::reset_password,
        users::force_logout,
        users::deactivate,
        users::reactivate,
        // /api/v1 tiers
        tiers::list,
        tiers::create,
        tiers::get,
        tiers::update,
        tiers::delete,
        tiers::user_tier,
        tiers::assign,
        // /api/v1 sharing
        shares::list,
        shares::grant,
        shares::shared_with_me,
        shares::change,
        shares::revoke,
        // /api/v1 wallets and ledger
        wallets::list,
        wallets::create,
        wallets::get,
        wallets::delete,
        wallets::restore,
        wallets::adjust,
        wallets::ledger,
        wallets::transfer,
        // /api/v1 metering
        metering::get_quotas,
        metering::put_quotas,
        metering::get_discounts,
        metering::put_discounts,
        metering::quota_usage,
        metering::usage,
        metering::invoicing,
        metering::consume,
        // /api/v1 audit
        audit::list,
        // Chutes
        chutes::account::growth,
        chutes::account::name_check,
        chutes::account::user_id_lookup,
        chutes::account::register,
        chutes::account::create_user,
        chutes::account::login,
        chutes::account::change_fingerprint,
        chutes::account::change_bt_auth,
        chutes::account::set_logo,
        chutes::account::squad_access,
        chutes::account::me,
        chutes::account::delete_me,
        chutes::billing::my_quotas,
        chutes::billing::my_discounts,
        chutes::billing::my_quota_usage,
        chutes::billing::my_usage,
        chutes::billing::admin_balance_change,
        chutes::billing::set_quotas,
        chutes::billing::set_discounts,
        chutes::billing::enable_invoicing,
        // LNbits
        lnbits::users::list,
        lnbits::users::create,
        lnbits::users::get,
        lnbits::users::update,
        lnbits::users::delete,
        lnbits::users::balance,
    ),
    // Schemas referenced by hand-built responses (`crate::error::responses`) or kept for
    // surfaces whose routes reference them by name.
    components(schemas(ErrorBody, ValidationBody, FieldError, ChutesErrorBody)),
    modifiers(&SecuritySchemes, &PackageVersion),
    tags(
        (name = "auth", description = "Canonical API (`/api/v1`): login, refresh, logout, delegated tokens, API keys"),
        (name = "users", description = "Canonical API (`/api/v1`): users"),
        (name = "tiers", description = "Canonical API (`/api/v1`): tiers and their assignment"),
        (name = "shares", description = "Canonical API (`/api/v1`): sharing with other users"),
        (name = "wallets", description = "Canonical API (`/api/v1`): wallets, the ledger, transfers"),
        (name = "metering", description = "Canonical API (`/api/v1`): quotas, discounts, consumption, usage, invoicing"),
        (name = "audit", description = "Canonical API (`/api/v1`): the audit trail"),
        (name = "chutes", description = "Chutes-compatible surface (`/users/*`)"),
        (name = "lnbits", description = "LNbits-compatible admin surface (`/users/api/v1/user*`)"),
        (name = "operations", description = "Probes, metrics, this document and its explorer"),
    ),
)]
pub struct ApiDoc;

/// The security schemes operations refer to by name.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("An access token from `/api/v1/auth/login`"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "An API key, bare or as `Bearer <key>`",
            ))),
        );
        // A hotkey signature is three headers that only make sense together: operations list
        // the three schemes in one requirement.
        for (name, header, description) in [
            (
                "hotkey",
                "X-Chutes-Hotkey",
                "The caller's Bittensor hotkey (SS58)",
            ),
            (
                "hotkey_signature",
                "X-Chutes-Signature",
                "Hex sr25519 signature over `{hotkey}:{nonce}:{purpose or SHA-256 of the body}`",
            ),
            (
                "hotkey_nonce",
                "X-Chutes-Nonce",
                "Unix seconds, within ±600 s of the server's clock",
            ),
        ] {
            components.add_security_scheme(
                name,
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                    header,
                    description,
                ))),
            );
        }
    }
}

/// The document's version is the server's.
struct PackageVersion;

impl Modify for PackageVersion {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi.info.version = env!("CARGO_PKG_VERSION").to_owned();
    }
}

/// The document `/openapi.json` serves.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use utoipa::openapi::path::Operation;
    use utoipa::openapi::RefOr;

    use super::document;

    /// `{name:regex}` (actix) → `{name}` (OpenAPI).
    fn openapi_template(actix_path: &str) -> String {
        let mut out = String::with_capacity(actix_path.len());
        let mut in_regex = false;
        for c in actix_path.chars() {
            match c {
                ':' if out.rfind('{') > out.rfind('}') => in_regex = true,
                '}' => {
                    in_regex = false;
                    out.push(c);
                }
                _ if in_regex => {}
                _ => out.push(c),
            }
        }
        out
    }

    fn operations() -> Vec<(String, String, Operation)> {
        let doc = document();
        let mut all = Vec::new();
        for (path, item) in doc.paths.paths {
            for (method, operation) in [
                ("GET", item.get),
                ("PUT", item.put),
                ("POST", item.post),
                ("DELETE", item.delete),
                ("PATCH", item.patch),
                ("HEAD", item.head),
                ("OPTIONS", item.options),
                ("TRACE", item.trace),
            ] {
                if let Some(operation) = operation {
                    all.push((method.to_owned(), path.clone(), operation));
                }
            }
        }
        all
    }

    #[test]
    fn every_registered_route_is_documented_and_every_documented_one_registered() {
        let registered: BTreeSet<(String, String)> = crate::registered_routes()
            .into_iter()
            .map(|r| (r.method, openapi_template(&r.path)))
            .collect();
        let documented: BTreeSet<(String, String)> = operations()
            .into_iter()
            .map(|(method, path, _)| (method, path))
            .collect();
        let undocumented: Vec<_> = registered.difference(&documented).collect();
        let unregistered: Vec<_> = documented.difference(&registered).collect();
        assert!(
            undocumented.is_empty() && unregistered.is_empty(),
            "registered but not in the OpenAPI document (see crate::openapi's doc): \
             {undocumented:#?}\ndocumented but not registered: {unregistered:#?}"
        );
        // A sanity bound, so an empty registration cannot pass.
        assert!(registered.len() > 50, "only {} routes", registered.len());
    }

    #[test]
    fn operation_ids_are_unique_and_every_operation_is_tagged_and_answers() {
        let mut ids = BTreeSet::new();
        for (method, path, operation) in operations() {
            let id = operation.operation_id.clone().unwrap_or_default();
            assert!(!id.is_empty(), "{method} {path} has no operation id");
            assert!(ids.insert(id.clone()), "operation id {id} is used twice");
            assert!(
                operation.tags.as_ref().is_some_and(|t| !t.is_empty()),
                "{method} {path} has no tag"
            );
            assert!(
                !operation.responses.responses.is_empty(),
                "{method} {path} documents no response"
            );
        }
    }

    #[test]
    fn authenticated_operations_document_401_and_use_declared_schemes() {
        let doc = document();
        let declared: BTreeSet<String> = doc
            .components
            .as_ref()
            .map(|c| c.security_schemes.keys().cloned().collect())
            .unwrap_or_default();
        for required in [
            "bearer",
            "api_key",
            "hotkey",
            "hotkey_signature",
            "hotkey_nonce",
        ] {
            assert!(declared.contains(required), "scheme {required} missing");
        }
        let json = serde_json::to_value(&doc).unwrap_or_default();
        for (method, path, operation) in operations() {
            let Some(requirements) = operation.security else {
                continue;
            };
            let requirements = serde_json::to_value(requirements).unwrap_or_default();
            for requirement in requirements.as_array().into_iter().flatten() {
                for name in requirement.as_object().into_iter().flat_map(|o| o.keys()) {
                    assert!(declared.contains(name), "{method} {path}: unknown {name}");
                }
            }
            assert!(
                operation.responses.responses.contains_key("401"),
                "{method} {path} needs a credential but documents no 401"
            );
        }
        assert_eq!(json["openapi"], "3.1.0");
    }

    #[test]
    fn error_sets_point_at_the_canonical_shapes() {
        let doc = document();
        let json = serde_json::to_value(&doc).unwrap_or_default();
        let adjust = &json["paths"]["/api/v1/wallets/{id}/adjustments"]["post"];
        assert_eq!(
            adjust["responses"]["422"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ValidationBody"
        );
        assert_eq!(
            adjust["responses"]["409"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorBody"
        );
        assert!(adjust["responses"]["503"]["headers"]["Retry-After"].is_object());
        let parameters = adjust["parameters"].as_array().cloned().unwrap_or_default();
        assert!(parameters
            .iter()
            .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"));
        let field_error = &json["components"]["schemas"]["FieldError"]["properties"];
        for field in ["loc", "msg", "type"] {
            assert!(field_error[field].is_object(), "FieldError.{field}");
        }
        for (_, _, operation) in operations() {
            for response in operation.responses.responses.values() {
                assert!(matches!(response, RefOr::T(_)));
            }
        }
    }

    #[test]
    fn chutes_operations_use_chutes_error_bodies_and_document_their_credentials() {
        let json = serde_json::to_value(document()).unwrap_or_default();
        let chutes = "#/components/schemas/ChutesErrorBody";
        for path in ["/users/register", "/users/create_user"] {
            let post = &json["paths"][path]["post"];
            assert_eq!(
                post["responses"]["429"]["content"]["application/json"]["schema"]["$ref"], chutes,
                "{path}"
            );
            assert!(post["responses"]["429"]["headers"]["Retry-After"].is_object());
            assert_eq!(
                post["responses"]["422"]["content"]["application/json"]["schema"]["$ref"], chutes,
                "{path}"
            );
        }
        let schemes = |path: &str, method: &str| {
            json["paths"][path][method]["security"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|r| r.as_object().into_iter().flat_map(|o| o.keys().cloned()))
                .collect::<BTreeSet<String>>()
        };
        let any: BTreeSet<String> = [
            "bearer",
            "api_key",
            "hotkey",
            "hotkey_signature",
            "hotkey_nonce",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        assert_eq!(schemes("/users/me", "get"), any);
        assert_eq!(schemes("/api/v1/wallets/{id}", "get"), any);
        assert_eq!(schemes("/api/v1/me/api-keys", "post"), any);
        assert!(!schemes("/users/register", "post").contains("bearer"));
        for (path, method) in [
            ("/users/login", "post"),
            ("/users/growth", "get"),
            ("/users/name_check", "get"),
        ] {
            assert!(
                schemes(path, method).is_empty(),
                "{method} {path} is public"
            );
        }
        let delete_me = json["paths"]["/users/me"]["delete"]["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(delete_me
            .iter()
            .any(|p| p["name"] == "Authorization" && p["in"] == "header"));
        assert!(json["paths"]["/api/v1/me/api-keys"]["post"]["responses"]["201"].is_object());
    }

    #[test]
    fn every_schema_reference_resolves() {
        fn refs(value: &serde_json::Value, out: &mut BTreeSet<String>) {
            match value {
                serde_json::Value::Object(map) => {
                    for (key, inner) in map {
                        match (key.as_str(), inner) {
                            ("$ref", serde_json::Value::String(r)) => {
                                out.insert(r.clone());
                            }
                            _ => refs(inner, out),
                        }
                    }
                }
                serde_json::Value::Array(items) => items.iter().for_each(|i| refs(i, out)),
                _ => {}
            }
        }
        let json = serde_json::to_value(document()).unwrap_or_default();
        let mut found = BTreeSet::new();
        refs(&json, &mut found);
        assert!(!found.is_empty());
        for r in found {
            let name = r.trim_start_matches("#/components/schemas/");
            assert!(
                json["components"]["schemas"][name].is_object(),
                "{r} does not resolve"
            );
        }
    }

    #[test]
    fn metering_operations_document_their_refusals() {
        let json = serde_json::to_value(document()).unwrap_or_default();
        let consume = &json["paths"]["/api/v1/usage"]["post"];
        assert_eq!(
            consume["responses"]["402"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/QuotaExceededBody"
        );
        assert!(consume["responses"]["201"].is_object());
        let chutes = "#/components/schemas/ChutesErrorBody";
        for (path, method) in [
            ("/users/admin_balance_change", "post"),
            ("/users/{user_id}/quotas", "post"),
            ("/users/{user_id}/discounts", "post"),
            ("/users/{user_id}/enable_invoicing", "post"),
        ] {
            let op = &json["paths"][path][method];
            for status in ["401", "403", "404"] {
                assert_eq!(
                    op["responses"][status]["content"]["application/json"]["schema"]["$ref"],
                    chutes,
                    "{method} {path} {status}"
                );
            }
        }
        assert_eq!(
            json["paths"]["/users/{user_id}/enable_invoicing"]["post"]["responses"]["200"]
                ["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/chutes.SelfResponse"
        );
    }

    #[test]
    fn actix_regex_segments_compare_as_plain_parameters() {
        assert_eq!(openapi_template("/docs/{file:.*}"), "/docs/{file}");
        assert_eq!(openapi_template("/a/{b}/c"), "/a/{b}/c");
    }
}
