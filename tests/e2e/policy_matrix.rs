//! The access-model matrix (PRODUCT.md §3), over HTTP against real PostgreSQL: every caller ×
//! every target × every operation, with the exact status of each cell.
//!
//! Each caller row runs in its own world (a fresh server and database), where:
//! - `manager` manages `kid` (a managed user);
//! - `sharer` shared with each grantee caller the scope that names the row;
//! - `stranger` has no relation to anyone; `gone` is soft-deleted.
//!
//! Targets: `self` (the caller's own account; a delegated token's subject), `managed` (`kid`),
//! `sharer`, `stranger`, `deleted` (`gone`). Operations: `read` (`GET /users/{id}`), `list`
//! (`GET /users`: `in`/`out` says whether the target is listed, or the refusal status),
//! `update` (`PATCH /users/{id}`), `act` (`POST /auth/delegated-token`) and `delete`
//! (`DELETE /users/{id}`), run in that order per target and with `self` last, so a destructive
//! cell never hides another. A failure prints every mismatched cell.

use serde_json::{json, Value};
use tessera_testkit::TestApp;

use crate::support::send;

const TARGETS: [&str; 5] = ["managed", "sharer", "stranger", "deleted", "self"];
const OPS: [&str; 5] = ["read", "list", "update", "act", "delete"];

/// The world of one row: ids by role, and the caller's token.
struct World {
    app: TestApp,
    ids: std::collections::HashMap<&'static str, String>,
    token: String,
}

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> (u16, Value) {
    send(app.post(path).bearer_auth(token).json(&body)).await
}

async fn world(caller: &str) -> World {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let mut ids = std::collections::HashMap::new();
    let (manager_id, manager) = app.user_with_token("manager").await;
    let (status, kid) = post(
        &app,
        &manager,
        "/api/v1/users",
        json!({"first_name": "Kid", "last_name": "Managed"}),
    )
    .await;
    assert_eq!(status, 201, "{kid}");
    let kid_id = kid["id"].as_str().unwrap().to_owned();
    let (sharer_id, sharer) = app.user_with_token("sharer").await;
    let (stranger_id, _) = app.user_with_token("stranger").await;
    let (gone_id, gone) = app.user_with_token("gone").await;
    // `gone` had shared with everyone who might ask, then deleted its account.
    ids.insert("managed", kid_id.clone());
    ids.insert("sharer", sharer_id.clone());
    ids.insert("stranger", stranger_id);
    ids.insert("deleted", gone_id.clone());

    let grantee = |scope: &str| {
        let scope = scope.to_owned();
        let app = &app;
        let sharer = sharer.clone();
        let gone = gone.clone();
        async move {
            let (id, token) = app.user_with_token("grantee").await;
            for owner in [&sharer, &gone] {
                let (status, body) = post(
                    app,
                    owner,
                    "/api/v1/me/shares",
                    json!({"grantee": id, "scopes": [scope]}),
                )
                .await;
                assert_eq!(status, 201, "{body}");
            }
            (id, token)
        }
    };
    let (self_id, token) = match caller {
        "manager" => (manager_id, manager.clone()),
        "stranger" => app.user_with_token("outsider").await,
        "admin" => crate::support::admin_with_token(&app, "admin").await,
        "superuser" => {
            let (_, body) = send(app.get("/api/v1/users/me").bearer_auth(&root)).await;
            (body["id"].as_str().unwrap().to_owned(), root.clone())
        }
        "delegated:manager" => {
            let (status, body) = post(
                &app,
                &manager,
                "/api/v1/auth/delegated-token",
                json!({"user": kid_id}),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            (
                kid_id.clone(),
                body["access_token"].as_str().unwrap().to_owned(),
            )
        }
        "delegated:data:read" => {
            let (_, grantee_token) = grantee("data:read").await;
            let (status, body) = post(
                &app,
                &grantee_token,
                "/api/v1/auth/delegated-token",
                json!({"user": sharer_id}),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            (
                sharer_id.clone(),
                body["access_token"].as_str().unwrap().to_owned(),
            )
        }
        other => {
            let scope = other.strip_prefix("grantee:").expect("a grantee row");
            grantee(scope).await
        }
    };
    let (status, body) = send(
        app.delete(&format!("/api/v1/users/{gone_id}"))
            .bearer_auth(&gone),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    ids.insert("self", self_id);
    World { app, ids, token }
}

async fn cell(w: &World, target: &str, op: &str) -> String {
    let id = &w.ids[target];
    let app = &w.app;
    let (status, body) = match op {
        "read" => {
            send(
                app.get(&format!("/api/v1/users/{id}"))
                    .bearer_auth(&w.token),
            )
            .await
        }
        "list" => {
            let (status, body) =
                send(app.get("/api/v1/users?limit=500").bearer_auth(&w.token)).await;
            if status != 200 {
                return status.to_string();
            }
            let listed = body["data"]
                .as_array()
                .unwrap()
                .iter()
                .any(|u| u["id"].as_str() == Some(id));
            return if listed { "in" } else { "out" }.to_owned();
        }
        "update" => {
            send(
                app.patch(&format!("/api/v1/users/{id}"))
                    .bearer_auth(&w.token)
                    .json(&json!({"first_name": "Changed"})),
            )
            .await
        }
        "act" => {
            post(
                app,
                &w.token,
                "/api/v1/auth/delegated-token",
                json!({"user": id}),
            )
            .await
        }
        "delete" => {
            send(
                app.delete(&format!("/api/v1/users/{id}"))
                    .bearer_auth(&w.token),
            )
            .await
        }
        _ => unreachable!(),
    };
    let _ = body;
    status.to_string()
}

/// Runs one caller's row and compares every cell with `expected[target][op]`.
async fn row(caller: &str, expected: [(&str, [&str; 5]); 5]) {
    let w = world(caller).await;
    let mut mismatches = Vec::new();
    for target in TARGETS {
        let want = expected
            .iter()
            .find(|(t, _)| *t == target)
            .unwrap_or_else(|| panic!("row {caller} lacks target {target}"))
            .1;
        for (i, op) in OPS.iter().enumerate() {
            let got = cell(&w, target, op).await;
            if got != want[i] {
                mismatches.push(format!(
                    "caller={caller} target={target} op={op}: expected {}, got {got}",
                    want[i]
                ));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "policy matrix cells differ:\n{}",
        mismatches.join("\n")
    );
}

// Columns: read, list, update, act, delete.
const NONE: [&str; 5] = ["404", "out", "404", "404", "404"];
const OWN: [&str; 5] = ["200", "in", "200", "422", "204"];
const SHARED: [&str; 5] = ["200", "in", "403", "200", "403"];
// A delegated token is refused what its credential does not allow before any user is looked
// up, so those cells are 403 whatever the target: deleting (an account act) always, and with
// `data:read` alone updating too.
const DELEGATED_ELSEWHERE: [&str; 5] = ["404", "403", "404", "403", "403"];
const READ_ONLY_DELEGATED_ELSEWHERE: [&str; 5] = ["404", "403", "403", "403", "403"];

macro_rules! grantee_rows {
    ($($name:ident => $scope:literal),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                row(
                    concat!("grantee:", $scope),
                    [
                        ("self", OWN),
                        ("managed", NONE),
                        ("sharer", SHARED),
                        ("stranger", NONE),
                        ("deleted", NONE),
                    ],
                )
                .await;
            }
        )+
    };
}

grantee_rows! {
    grantee_with_data_read => "data:read",
    grantee_with_data_write => "data:write",
    grantee_with_admin => "admin",
    grantee_with_openid => "openid",
    grantee_with_profile => "profile",
    grantee_with_offline_access => "offline_access",
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager() {
    row(
        "manager",
        [
            ("self", OWN),
            ("managed", ["200", "in", "200", "200", "204"]),
            ("sharer", NONE),
            ("stranger", NONE),
            ("deleted", NONE),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stranger() {
    row(
        "stranger",
        [
            ("self", OWN),
            ("managed", NONE),
            ("sharer", NONE),
            ("stranger", NONE),
            ("deleted", NONE),
        ],
    )
    .await;
}

/// Administrators see and change everyone, but hold no delegation on anyone (403 to act), and
/// the deleted user is theirs to read but not listed by default.
const ADMINISTERED: [&str; 5] = ["200", "in", "200", "403", "204"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin() {
    row(
        "admin",
        [
            ("self", OWN),
            ("managed", ADMINISTERED),
            ("sharer", ADMINISTERED),
            ("stranger", ADMINISTERED),
            ("deleted", ["200", "out", "200", "403", "204"]),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn superuser() {
    row(
        "superuser",
        [
            // The only superuser cannot delete itself.
            ("self", ["200", "in", "200", "422", "409"]),
            ("managed", ADMINISTERED),
            ("sharer", ADMINISTERED),
            ("stranger", ADMINISTERED),
            ("deleted", ["200", "out", "200", "403", "204"]),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delegated_from_manager() {
    // Subject: `kid`, with every scope. `self` and `managed` are the same user.
    let as_kid = ["200", "403", "200", "403", "403"];
    row(
        "delegated:manager",
        [
            ("self", as_kid),
            ("managed", as_kid),
            ("sharer", DELEGATED_ELSEWHERE),
            ("stranger", DELEGATED_ELSEWHERE),
            ("deleted", DELEGATED_ELSEWHERE),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delegated_from_grantee_read_only() {
    // Subject: `sharer`, with `data:read` only. `self` and `sharer` are the same user.
    let as_sharer = ["200", "403", "403", "403", "403"];
    row(
        "delegated:data:read",
        [
            ("self", as_sharer),
            ("managed", READ_ONLY_DELEGATED_ELSEWHERE),
            ("sharer", as_sharer),
            ("stranger", READ_ONLY_DELEGATED_ELSEWHERE),
            ("deleted", READ_ONLY_DELEGATED_ELSEWHERE),
        ],
    )
    .await;
}
