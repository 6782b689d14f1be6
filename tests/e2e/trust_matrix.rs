//! The route × credential matrix, generated from `/openapi.json`: every documented operation is
//! called with each restricted credential, and every state-changing one must be refused without
//! changing anything. A new route is covered without editing this file.
//!
//! Credentials: (a) a read-only API key, (b) a metering API key and (b') a deposits API key of a
//! billing administrator, (c) a delegated token with only `data:read` (grantee → sharer), (d) a
//! purpose signature `{hotkey}:{nonce}:me`. Each acts as its *subject* (the key's owner, the
//! sharer, the hotkey's user), and path parameters are filled, by parameter name, from the
//! subject's real objects (`user`/`user_id`: its id, and its username for `{user}` too; `id` under
//! `wallets`: its default wallet; `id` under `api-keys`: one of its keys; `grantee`: the user it
//! shares with; `tier`: a real tier); any other parameter gets a fresh UUID. Bodies are built from
//! the operation's schema: the required properties, the current password where there is one, and
//! else one harmless field (`first_name`, `name`, …), with values that would be accepted from a
//! credential allowed to do the operation (the subject's wallets, which hold money, its grantee,
//! its password), so that a hole shows as a success and a change, not as a validation error.
//!
//! Expectations, per (operation, credential):
//!
//! - Public operations — the document gives them no `security` (it marks every route registered
//!   under `Routes::open` that way, except `/users/register` and `/users/change_fingerprint`,
//!   which check a hotkey signature of their own and document it) — are sent an empty body and
//!   must not fail with 5xx.
//! - A state-changing operation (any method but GET/HEAD) must answer 401, 403 or 404 when its
//!   documented security accepts the credential's kind (`api_key` for keys, `bearer` for the
//!   delegated token, `hotkey` for the signature), and some other 4xx when it does not (a
//!   bearer credential on a signature-only route is no credential there at all: 422 for the
//!   missing headers is a refusal too).
//! - Documented allowances, sent an empty body so they change nothing either: the metering key
//!   may `POST /api/v1/usage`, the deposits key `POST /api/v1/deposits`; any credential may `POST /api/v1/auth/logout` (it ends only that
//!   credential's own session; it runs last in each pass, after the deletions).
//! - Safe operations must not answer 5xx.
//!
//! The database is digested before and after each credential's pass
//! ([`tessera_testkit::state_digests`], which documents the few tables and columns a refused
//! request may legitimately change) and must be the same. Every offending cell is printed and
//! the test fails once, at the end.

use std::collections::BTreeSet;

use reqwest::{Method, RequestBuilder};
use serde_json::{json, Map, Value};
use tessera_sr25519::Sr25519Keypair;
use tessera_testkit::{state_digests, StateProbe, TestApp};

use crate::chutes::{now, register, signed};
use crate::money::{default_wallet, id_of};
use crate::support::{patch_user, send};

const RESOURCE: &str = "0191f1a2-0000-7000-8000-00000000c0de";

/// The real objects a credential's path parameters and bodies name.
struct Subject {
    id: String,
    username: String,
    wallet: String,
    /// A wallet of someone else (the grantee's), for transfers.
    other_wallet: String,
    grantee: String,
    api_key: String,
    tier: String,
}

enum Presented {
    Bearer(String),
    Purpose(Box<Sr25519Keypair>),
}

struct Credential {
    name: &'static str,
    /// The security scheme of the document this credential is an instance of.
    scheme: &'static str,
    presented: Presented,
    subject: Subject,
    /// State-changing operations this credential may perform, beyond logging out.
    allowed: &'static [(&'static str, &'static str)],
}

impl Credential {
    fn attach(&self, request: RequestBuilder) -> RequestBuilder {
        match &self.presented {
            Presented::Bearer(token) => request.bearer_auth(token),
            Presented::Purpose(key) => signed(request, key, now(), Ok("me")),
        }
    }

    fn allows(&self, method: &str, path: &str) -> bool {
        (method == "POST" && path == "/api/v1/auth/logout")
            || self.allowed.contains(&(method, path))
    }
}

struct Operation {
    method: String,
    path: String,
    spec: Value,
}

impl Operation {
    fn is_public(&self) -> bool {
        match self.spec.get("security") {
            None | Some(Value::Null) => true,
            Some(Value::Array(requirements)) => {
                requirements.is_empty()
                    || requirements
                        .iter()
                        .all(|r| r.as_object().is_some_and(Map::is_empty))
            }
            Some(_) => false,
        }
    }

    /// Whether the documented security takes this kind of credential.
    fn accepts(&self, scheme: &str) -> bool {
        self.spec["security"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r.get(scheme).is_some())
    }

    fn changes_state(&self) -> bool {
        !matches!(self.method.as_str(), "GET" | "HEAD")
    }
}

/// Every operation of the document in its order, except that deletions come after the rest and
/// logging out last: should one of them get through, it must not end the subject or the
/// credential before the other operations are tried.
fn operations(doc: &Value) -> Vec<Operation> {
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, spec) in item.as_object().expect("a path item") {
            let method = method.to_uppercase();
            if Method::from_bytes(method.as_bytes()).is_err() || !spec.is_object() {
                continue; // `parameters`, `summary`, … of the path item
            }
            all.push(Operation {
                method,
                path: path.clone(),
                spec: spec.clone(),
            });
        }
    }
    all.sort_by_key(|o| (o.path == "/api/v1/auth/logout", o.method == "DELETE"));
    all
}

/// The value a path parameter `name` gets, `after` being the literal segment before it.
fn path_value(name: &str, after: &str, subject: &Subject, by_username: bool) -> String {
    match (name, after) {
        ("user", _) if by_username => subject.username.clone(),
        ("user" | "user_id", _) => subject.id.clone(),
        ("id", "wallets") | ("wallet", _) | ("wallet_id", _) => subject.wallet.clone(),
        ("id", "api-keys") | ("key_id", _) => subject.api_key.clone(),
        ("grantee", _) => subject.grantee.clone(),
        ("tier" | "tier_id", _) => subject.tier.clone(),
        _ => uuid::Uuid::new_v4().to_string(),
    }
}

/// The concrete paths to call for a template: one, or two when `{user}` can be an id and a
/// username.
fn fill(template: &str, subject: &Subject) -> Vec<String> {
    let variants: &[bool] = if template.contains("{user}") {
        &[false, true]
    } else {
        &[false]
    };
    variants
        .iter()
        .map(|by_username| {
            let mut previous = "";
            template
                .split('/')
                .map(|segment| {
                    let filled = match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        Some(name) => path_value(name, previous, subject, *by_username),
                        None => segment.to_owned(),
                    };
                    previous = segment;
                    filled
                })
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect()
}

/// Required query parameters, by name.
fn query(spec: &Value, subject: &Subject) -> Vec<(String, String)> {
    spec["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["in"] == "query" && p["required"] == true)
        .map(|p| {
            let name = p["name"].as_str().unwrap_or_default().to_owned();
            let value = match name.as_str() {
                "username" => subject.username.clone(),
                _ => uuid::Uuid::new_v4().to_string(),
            };
            (name, value)
        })
        .collect()
}

/// What a property called `name` is given when the body has it: real objects of the subject,
/// or values that would be accepted from a credential that may do the operation.
fn named_value(name: &str, subject: &Subject) -> Option<Value> {
    Some(match name {
        "user" | "user_id" => json!(subject.id),
        "grantee" => json!(subject.grantee),
        "scopes" => json!(["data:read"]),
        "from_wallet" => json!(subject.wallet),
        "to_wallet" => json!(subject.other_wallet),
        "tier_id" => json!(subject.tier),
        "username" => json!("matrixprobe"),
        "email" => json!("matrix-probe@example.com"),
        "first_name" | "last_name" | "name" | "reason" => json!("matrix"),
        "password" | "new_password" | "password_repeat" => json!("matrix-password-1"),
        // The subject's real password where it has one (`app.user_with_token`'s convention), so
        // a password change would go through if the credential were taken.
        "current_password" => json!(format!("{}-password", subject.username)),
        "enabled" | "enable" => json!(true),
        "amount" | "cost" | "count" => json!(1),
        "resource_id" => json!(RESOURCE),
        "currency" => json!("sat"),
        "fingerprint" => json!("MatrixProbeFingerprint0123456789"),
        _ => return None,
    })
}

/// Optional properties a body gets anyway: the current password (so a password change is
/// complete), and the first harmless field of an otherwise empty update, so the request would
/// change something if accepted. Nothing that would be refused for a reason of its own
/// (permissions, `is_admin`): the credential must be what refuses.
const ALWAYS: &[&str] = &["current_password"];
const ONE_OF: &[&str] = &["first_name", "name", "last_name", "username", "email"];

fn resolve<'a>(schema: &'a Value, doc: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.trim_start_matches("#/components/schemas/");
            resolve(&doc["components"]["schemas"][name], doc)
        }
        None => schema,
    }
}

/// A value for `schema`: by the property's name when known, else by type.
fn example(schema: &Value, doc: &Value, name: Option<&str>, subject: &Subject, depth: u8) -> Value {
    if let Some(value) = name.and_then(|n| named_value(n, subject)) {
        return value;
    }
    let schema = resolve(schema, doc);
    if let Some(alternatives) = schema["oneOf"].as_array().or(schema["anyOf"].as_array()) {
        if let Some(first) = alternatives.iter().find(|a| a["type"] != "null") {
            return example(first, doc, name, subject, depth);
        }
    }
    let kind = match &schema["type"] {
        Value::String(t) => t.clone(),
        Value::Array(types) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null")
            .to_owned(),
        _ if schema.get("properties").is_some() => "object".to_owned(),
        _ => "string".to_owned(),
    };
    match kind.as_str() {
        "object" if depth < 4 => {
            let mut out = Map::new();
            let mut wanted: BTreeSet<&str> = schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let properties = schema["properties"].as_object();
            let has = |name: &str| properties.is_some_and(|p| p.contains_key(name));
            wanted.extend(ALWAYS.iter().filter(|n| has(n)));
            if wanted.is_empty() {
                wanted.extend(ONE_OF.iter().find(|n| has(n)));
            }
            for (property, inner) in properties.into_iter().flatten() {
                if wanted.contains(property.as_str()) {
                    out.insert(
                        property.clone(),
                        example(inner, doc, Some(property), subject, depth + 1),
                    );
                }
            }
            if let Some(values) = schema.get("additionalProperties").filter(|v| v.is_object()) {
                out.insert(
                    "*".to_owned(),
                    example(values, doc, None, subject, depth + 1),
                );
            }
            Value::Object(out)
        }
        "array" if depth < 4 => json!([example(&schema["items"], doc, None, subject, depth + 1)]),
        "integer" => json!(1000),
        "number" => json!(0.5),
        "boolean" => json!(true),
        "string" if schema["format"] == "uuid" => json!(uuid::Uuid::new_v4()),
        _ => json!("matrix"),
    }
}

fn body_for(op: &Operation, doc: &Value, subject: &Subject) -> Option<Value> {
    let content = op.spec["requestBody"]["content"].as_object()?;
    let schema = content
        .get("application/json")
        .or_else(|| content.values().next())
        .map(|c| &c["schema"])?;
    Some(example(schema, doc, None, subject, 0))
}

fn excerpt(text: &str) -> String {
    text.chars().take(200).collect()
}

/// Runs every operation with one credential; returns the offending cells.
async fn pass(app: &TestApp, doc: &Value, credential: &Credential) -> Vec<String> {
    let mut offences = Vec::new();
    let url = &app.db.as_ref().expect("a database-backed app").url;
    let before = state_digests(url).await;
    // A digest after every request too, to say which request changed what.
    let mut probe = StateProbe::connect(url).await;
    let mut last = before.clone();
    let mut calls = 0;
    for op in operations(doc) {
        let public = op.is_public();
        let allowed = credential.allows(&op.method, &op.path);
        for path in fill(&op.path, &credential.subject) {
            let method = Method::from_bytes(op.method.as_bytes()).expect("a method");
            let mut request = app
                .request(method, &path)
                .query(&query(&op.spec, &credential.subject));
            if op.spec.get("requestBody").is_some() {
                let body = if public || allowed {
                    json!({})
                } else {
                    body_for(&op, doc, &credential.subject).unwrap_or_else(|| json!({}))
                };
                request = request.json(&body);
            }
            let response = credential.attach(request).send().await.expect("a response");
            calls += 1;
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            let refused_as_expected = if status >= 500 {
                false
            } else if public || allowed || !op.changes_state() {
                true
            } else if op.accepts(credential.scheme) {
                matches!(status, 401 | 403 | 404)
            } else {
                (400..500).contains(&status)
            };
            let now = probe.digests().await;
            let changed: Vec<&str> = now
                .iter()
                .filter(|(table, digest)| last.get(*table) != Some(*digest))
                .map(|(table, _)| table.as_str())
                .collect();
            if !refused_as_expected || !changed.is_empty() {
                offences.push(format!(
                    "{} {path} [{}] -> {status}{}: {}",
                    op.method,
                    credential.name,
                    if changed.is_empty() {
                        String::new()
                    } else {
                        format!(", changed {}", changed.join(", "))
                    },
                    excerpt(&text)
                ));
            }
            last = now;
        }
    }
    let after = state_digests(url).await;
    for (table, digest) in &before {
        if after.get(table) != Some(digest) {
            offences.push(format!(
                "[{}] table {table} changed during the pass",
                credential.name
            ));
        }
    }
    for table in after.keys().filter(|t| !before.contains_key(*t)) {
        offences.push(format!("[{}] table {table} appeared", credential.name));
    }
    assert!(calls > 80, "only {calls} calls for {}", credential.name);
    offences
}

async fn created(request: RequestBuilder) -> Value {
    let (status, body) = send(request).await;
    assert!((200..300).contains(&status), "{status}: {body}");
    body
}

async fn share_with(app: &TestApp, token: &str, grantee: &str, scopes: &[&str]) {
    created(
        app.post("/api/v1/me/shares")
            .bearer_auth(token)
            .json(&json!({"grantee": grantee, "scopes": scopes})),
    )
    .await;
}

async fn key(app: &TestApp, token: &str, scopes: &[&str]) -> (String, String) {
    let body = created(
        app.post("/api/v1/me/api-keys")
            .bearer_auth(token)
            .json(&json!({"name": "matrix", "admin": false, "scopes": scopes})),
    )
    .await;
    (
        id_of(&body),
        body["secret_key"].as_str().unwrap().to_owned(),
    )
}

async fn subject(
    app: &TestApp,
    root: &str,
    id: &str,
    username: &str,
    api_key: String,
    ctx: &(String, String, String),
) -> Subject {
    let (grantee, other_wallet, tier) = ctx;
    // Money in the wallet, so a transfer or a debit would go through if it were let through.
    let wallet = default_wallet(app, root, id, "usd").await.id;
    created(
        app.post(&format!("/api/v1/wallets/{wallet}/adjustments"))
            .bearer_auth(root)
            .json(&json!({"amount": 1_000_000, "reason": "matrix"})),
    )
    .await;
    Subject {
        id: id.to_owned(),
        username: username.to_owned(),
        wallet,
        other_wallet: other_wallet.clone(),
        grantee: grantee.clone(),
        api_key,
        tier: tier.clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_refuses_every_restricted_credential_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let (status, doc) = send(app.get("/openapi.json")).await;
    assert_eq!(status, 200);

    // The grantee every subject shares with, a wallet of its, and a tier.
    let (grantee_id, grantee_token) = app.user_with_token("grantee").await;
    let grantee_wallet = default_wallet(&app, &root, &grantee_id, "usd").await.id;
    let tier = created(
        app.post("/api/v1/tiers")
            .bearer_auth(&root)
            .json(&json!({"name": "matrix", "rate_limits": []})),
    )
    .await;
    let ctx = ("grantee".to_owned(), grantee_wallet, id_of(&tier));

    // (a) A read-only key of a plain user.
    let (reader_id, reader) = app.user_with_token("reader").await;
    share_with(&app, &reader, "grantee", &["data:read"]).await;
    let (read_key_id, read_key) = key(&app, &reader, &["read"]).await;

    // (b) A metering key of a billing administrator.
    let (meterer_id, _) = app.user_with_token("meterer").await;
    let (status, body) = patch_user(&app, &root, &meterer_id, json!({"permissions": 64})).await;
    assert_eq!(status, 200, "{body}");
    let meterer = app.token("meterer", "meterer-password").await;
    share_with(&app, &meterer, "grantee", &["data:read"]).await;
    let (meter_key_id, meter_key) = key(&app, &meterer, &["metering"]).await;

    // (b') A deposits key of a billing administrator: the chain watcher's credential.
    let (depositor_id, _) = app.user_with_token("depositor").await;
    let (status, body) = patch_user(&app, &root, &depositor_id, json!({"permissions": 64})).await;
    assert_eq!(status, 200, "{body}");
    let depositor = app.token("depositor", "depositor-password").await;
    share_with(&app, &depositor, "grantee", &["data:read"]).await;
    let (deposit_key_id, deposit_key) = key(&app, &depositor, &["deposits"]).await;

    // (c) A delegated token with only `data:read`, grantee → sharer.
    let (sharer_id, sharer) = app.user_with_token("sharer").await;
    share_with(&app, &sharer, "grantee", &["data:read"]).await;
    let (sharer_key_id, _) = key(&app, &sharer, &["read"]).await;
    let delegated = created(
        app.post("/api/v1/auth/delegated-token")
            .bearer_auth(&grantee_token)
            .json(&json!({"user": "sharer", "scopes": ["data:read"]})),
    )
    .await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // (d) A purpose signature of a hotkey user.
    let (hotkey, registered) = register(&app, "hotsig").await;
    let hotsig_id = registered.user_id.clone();
    let login = created(
        app.post("/users/login")
            .json(&json!({"fingerprint": registered.fingerprint})),
    )
    .await;
    let hotsig = login["token"].as_str().unwrap().to_owned();
    share_with(&app, &hotsig, "grantee", &["data:read"]).await;
    let (hotsig_key_id, _) = key(&app, &hotsig, &["read"]).await;

    let credentials = [
        Credential {
            name: "read-only key",
            scheme: "api_key",
            presented: Presented::Bearer(read_key),
            subject: subject(&app, &root, &reader_id, "reader", read_key_id, &ctx).await,
            allowed: &[],
        },
        Credential {
            name: "metering key",
            scheme: "api_key",
            presented: Presented::Bearer(meter_key),
            subject: subject(&app, &root, &meterer_id, "meterer", meter_key_id, &ctx).await,
            allowed: &[("POST", "/api/v1/usage")],
        },
        Credential {
            name: "deposits key",
            scheme: "api_key",
            presented: Presented::Bearer(deposit_key),
            subject: subject(
                &app,
                &root,
                &depositor_id,
                "depositor",
                deposit_key_id,
                &ctx,
            )
            .await,
            allowed: &[("POST", "/api/v1/deposits")],
        },
        Credential {
            name: "delegated data:read",
            scheme: "bearer",
            presented: Presented::Bearer(delegated),
            subject: subject(&app, &root, &sharer_id, "sharer", sharer_key_id, &ctx).await,
            allowed: &[],
        },
        Credential {
            name: "purpose signature",
            scheme: "hotkey",
            presented: Presented::Purpose(Box::new(hotkey)),
            subject: subject(&app, &root, &hotsig_id, "hotsig", hotsig_key_id, &ctx).await,
            allowed: &[],
        },
    ];

    let mut offences = Vec::new();
    for credential in &credentials {
        offences.extend(pass(&app, &doc, credential).await);
    }
    assert!(
        offences.is_empty(),
        "{} offending cells:\n{}",
        offences.len(),
        offences.join("\n")
    );
}
