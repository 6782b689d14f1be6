//! The OpenAPI 3.1 document of every surface, served at `/openapi.json` and explored at `/docs`.
//!
//! Schemas are derived next to the wire types (`ToSchema` / `IntoParams`); each handler carries
//! its own `#[utoipa::path]`; the operations come from the very list that registers the routes
//! ([`crate::routes`]), so the document and the server cannot disagree. This module adds what is
//! not an operation (info, servers, tags, security schemes, the error schemas) and stamps the
//! default security requirement on every operation that does not state its own.
//!
//! # Adding a route
//!
//! 1. Write the handler with `#[utoipa::path(...)]`: the method, the FULL path with the scope
//!    prefix (`/api/v1/...`, `/users/...`), a unique `operation_id`, a `tag` (see [`ApiDoc`]),
//!    a one-line `summary` (the doc comment's first line), `params(...)`, `request_body`, and
//!    `responses(...)`: the success statuses with their bodies, then the error sets of
//!    [`crate::error::responses`] that apply. Chutes routes answer `{"detail": …}`: describe
//!    their errors with `body = ChutesErrorBody`.
//! 2. Security: say nothing for the default (a bearer token, an API key or a hotkey
//!    signature); `security()` for a public route; a scheme of its own otherwise. What the
//!    credential must allow follows from the method unless
//!    `extensions(("x-tessera-access" = json!(...)))` says otherwise (see [`crate::routes`]).
//! 3. Register it in its module's `configure` with `routes.op(op!(handler))` (or inside a
//!    `routes.resource(path, |r| r.op(..))`), in matching order.

use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::{Modify, OpenApi};

use crate::chutes::ChutesErrorBody;
use crate::error::{ErrorBody, FieldError, ValidationBody};
use crate::vocabulary::{
    ApiKeyScopeName, PermissionName, ShareScopeName, SortOrderName, UserSortFieldName,
};

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
    // Schemas referenced by hand-built responses (`crate::error::responses`), and the closed
    // sets, some of which only query parameters name.
    components(schemas(
        ErrorBody,
        ValidationBody,
        FieldError,
        ChutesErrorBody,
        ApiKeyScopeName,
        ShareScopeName,
        PermissionName,
        UserSortFieldName,
        SortOrderName,
    )),
    servers((url = "/", description = "This server")),
    modifiers(&SecuritySchemes, &PackageVersion),
    tags(
        (name = "auth", description = "Canonical API (`/api/v1`): login, refresh, logout, delegated tokens, API keys"),
        (name = "users", description = "Canonical API (`/api/v1`): users"),
        (name = "tiers", description = "Canonical API (`/api/v1`): tiers and their assignment"),
        (name = "shares", description = "Canonical API (`/api/v1`): sharing with other users"),
        (name = "wallets", description = "Canonical API (`/api/v1`): wallets, the ledger, transfers"),
        (name = "metering", description = "Canonical API (`/api/v1`): quotas, discounts, consumption, usage, invoicing"),
        (name = "deposits", description = "Canonical API (`/api/v1`): TAO deposits reported by the operator's chain watcher"),
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
        components.add_security_scheme(
            "fingerprint",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "A Chutes account's fingerprint (`change_bt_auth`: the whole header value; \
                 `DELETE /users/me`: its last word)",
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
                "Hex sr25519 signature over `{hotkey}:{nonce}:{METHOD}:{path?query}:{SHA-256 of \
                 the body}` (Chutes' `{hotkey}:{nonce}:{purpose}` on reads of a route with a \
                 purpose, and `{hotkey}:{nonce}:{SHA-256 of the body}` on registration)",
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

/// The requirement every operation gets unless it states its own: an access token, an API key,
/// or a hotkey signature (three headers that only make sense together).
fn default_security() -> Vec<SecurityRequirement> {
    vec![
        SecurityRequirement::new("bearer", Vec::<String>::new()),
        SecurityRequirement::new("api_key", Vec::<String>::new()),
        SecurityRequirement::new("hotkey", Vec::<String>::new())
            .add("hotkey_signature", Vec::<String>::new())
            .add("hotkey_nonce", Vec::<String>::new()),
    ]
}

/// The document `/openapi.json` serves: [`ApiDoc`] with every registered operation, each
/// carrying its security requirement (generators read it per operation, not from the root).
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    let components = doc.components.get_or_insert_with(Default::default);
    for logged in crate::registered_operations() {
        let mut operation = logged.operation;
        if operation.security.is_none() {
            operation.security = Some(default_security());
        }
        for (name, schema) in logged.schemas {
            components.schemas.entry(name).or_insert(schema);
        }
        doc.paths
            .add_path_operation(logged.path, vec![logged.method], operation);
    }
    doc
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
            if crate::routes::is_public(&operation) {
                continue;
            }
            let Some(requirements) = operation.security else {
                panic!("{method} {path} states no security requirement");
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

    /// What code generators and linters need of every operation (the `openapi-clients` check
    /// runs them for real; this catches a regression at `cargo test`).
    #[test]
    fn every_operation_serves_code_generators() {
        let json = serde_json::to_value(document()).unwrap_or_default();
        assert!(
            json["servers"].as_array().is_some_and(|s| !s.is_empty()),
            "the document names no server"
        );
        for (method, path, operation) in operations() {
            assert!(
                operation.summary.as_deref().is_some_and(|s| !s.is_empty()),
                "{method} {path} has no summary"
            );
            assert!(
                operation.security.is_some(),
                "{method} {path} states no security (public ones say `security()`)"
            );
            if let Some(body) = &operation.request_body {
                assert_eq!(
                    body.content.len(),
                    1,
                    "{method} {path}: generators mishandle a body with several media types"
                );
            }
        }
    }

    #[test]
    fn actix_regex_segments_compare_as_plain_parameters() {
        assert_eq!(openapi_template("/docs/{file:.*}"), "/docs/{file}");
        assert_eq!(openapi_template("/a/{b}/c"), "/a/{b}/c");
    }
}
