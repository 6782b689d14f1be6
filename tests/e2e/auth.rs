//! Authentication over HTTP: login, refresh, logout, and which access tokens are accepted.

use serde_json::{json, Value};
use tessera_testkit::{TestApp, ADMIN_PASSWORD, ADMIN_USERNAME};

use crate::support::*;

fn assert_token_pair(pair: &TokenPair) {
    assert!(pair.access_token.len() > 20, "{pair:?}");
    assert_eq!(pair.token_type, "bearer", "{pair:?}");
    assert_eq!(pair.expires_in, 900, "{pair:?}");
    assert!(pair.refresh_token.len() > 20, "{pair:?}");
}

/// Creates `alice` (email `Alice@Example.com`) and returns her id.
async fn alice(app: &TestApp) -> String {
    let root = app.admin_token().await;
    create_user_typed(
        app,
        &root,
        json!({"username": "alice", "email": "Alice@Example.com", "password": "alice-password"}),
    )
    .await
    .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_username_returns_a_bearer_token_pair() {
    let app = TestApp::spawn().await;
    let id = alice(&app).await;
    let response = app
        .post("/api/v1/auth/login")
        .json(&json!({"username": "alice", "password": "alice-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().get("cache-control").unwrap(), "no-store");
    let pair: TokenPair = typed(&response.json().await.unwrap());
    assert_token_pair(&pair);
    let me = assert_token_works(&app, &pair.access_token).await;
    assert_eq!(me.id, id);
    assert!(me.last_login_at.is_some(), "{me:?}");
    // The username is matched case-insensitively.
    let pair: TokenPair = answer_as(try_login(&app, "ALICE", "alice-password").await, 200);
    assert_token_pair(&pair);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_email_in_any_case_returns_a_token_pair() {
    let app = TestApp::spawn().await;
    let id = alice(&app).await;
    for email in ["Alice@Example.com", "alice@example.com"] {
        let (status, body) = try_login(&app, email, "alice-password").await;
        assert_eq!(status, 200, "{email}: {body}");
        let pair: TokenPair = typed(&body);
        assert_token_pair(&pair);
        let me = assert_token_works(&app, &pair.access_token).await;
        assert_eq!(me.id, id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_the_oauth2_password_form_returns_a_token_pair() {
    let app = TestApp::spawn().await;
    let id = alice(&app).await;
    let pair: TokenPair = send_as(
        app.post("/api/v1/auth/login").form(&[
            ("username", "alice"),
            ("password", "alice-password"),
            ("grant_type", "password"),
        ]),
        200,
    )
    .await;
    assert_token_pair(&pair);
    let me = assert_token_works(&app, &pair.access_token).await;
    assert_eq!(me.id, id);

    // Any other grant is refused, naming the field.
    let (status, body) = send(app.post("/api/v1/auth/login").form(&[
        ("username", "alice"),
        ("password", "alice-password"),
        ("grant_type", "client_credentials"),
    ]))
    .await;
    assert_invalid(status, &body, &["body", "grant_type"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refused_login_gets_the_same_401_body() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    alice(&app).await;
    for name in ["gone", "locked"] {
        app.create_user(
            &root,
            json!({"username": name, "password": format!("{name}-password")}),
        )
        .await;
    }
    let (status, _) = send(app.delete("/api/v1/users/gone").bearer_auth(&root)).await;
    assert_eq!(status, 204);
    let (status, _) = send(
        app.post("/api/v1/users/locked/deactivate")
            .bearer_auth(&root),
    )
    .await;
    assert_eq!(status, 200);

    let mut headers = Vec::new();
    for (username, password) in [
        ("alice", "wrong-password"),
        ("nobody", "whatever-password"),
        ("gone", "gone-password"),
        ("locked", "locked-password"),
        ("alice", ""),
        ("", "alice-password"),
    ] {
        let response = app
            .post("/api/v1/auth/login")
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{username}/{password}");
        headers.push(response.headers().get("www-authenticate").cloned());
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, invalid_credentials(), "{username}/{password}");
    }
    assert!(headers.iter().all(|h| h.as_ref().unwrap() == "Bearer"));
    // The right password still works for the user who exists.
    let (status, _) = try_login(&app, "alice", "alice-password").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_rotates_the_refresh_token() {
    let app = TestApp::spawn().await;
    alice(&app).await;
    let first = login_pair(&app, "alice", "alice-password").await;
    let r1 = first.refresh_token.as_str();

    let response = app
        .post("/api/v1/auth/refresh")
        .json(&json!({"refresh_token": r1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().get("cache-control").unwrap(), "no-store");
    let second: TokenPair = typed(&response.json().await.unwrap());
    assert_token_pair(&second);
    let r2 = second.refresh_token.as_str();
    assert_ne!(r1, r2);
    // The new access token belongs to the same session.
    let a2 = second.access_token.as_str();
    assert_eq!(claims_of(a2)["sid"], claims_of(&first.access_token)["sid"]);
    assert_token_works(&app, a2).await;

    let third: TokenPair = answer_as(try_refresh(&app, r2).await, 200);
    assert_ne!(third.refresh_token, second.refresh_token);
    assert_token_works(&app, &third.access_token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reusing_a_spent_refresh_token_kills_the_whole_session() {
    let app = TestApp::spawn().await;
    alice(&app).await;
    let other = login_pair(&app, "alice", "alice-password").await;
    let first = login_pair(&app, "alice", "alice-password").await;
    let r1 = first.refresh_token.as_str();
    let second: TokenPair = answer_as(try_refresh(&app, r1).await, 200);
    let r2 = second.refresh_token.as_str();
    let a2 = second.access_token.as_str();
    assert_token_works(&app, a2).await;

    // Someone replays the spent token: refused, and the session is over.
    let (status, body) = try_refresh(&app, r1).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body, invalid_token());
    let (status, body) = try_refresh(&app, r2).await;
    assert_eq!(
        status, 401,
        "the newest refresh token dies with the session: {body}"
    );
    assert_token_dead(&app, a2).await;
    assert_token_dead(&app, &first.access_token).await;

    // Another session of the same user is untouched.
    assert_token_works(&app, &other.access_token).await;
    let (status, _) = try_refresh(&app, &other.refresh_token).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_malformed_refresh_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let long = "x".repeat(600);
    for token in ["", "not-a-refresh-token", long.as_str()] {
        let (status, body) = try_refresh(&app, token).await;
        assert_eq!(status, 401, "{token}: {body}");
        assert_eq!(body, invalid_token());
    }
    // An access token is not a refresh token.
    let access = app.admin_token().await;
    let (status, _) = try_refresh(&app, &access).await;
    assert_eq!(status, 401);
    let (status, body) = send(app.post("/api/v1/auth/refresh").json(&json!({}))).await;
    let error = assert_invalid(status, &body, &["body", "refresh_token"]);
    assert_eq!(error.kind, "missing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_ends_the_session_at_once() {
    let app = TestApp::spawn().await;
    alice(&app).await;
    let other = login_pair(&app, "alice", "alice-password").await;
    let pair = login_pair(&app, "alice", "alice-password").await;
    let access = pair.access_token.as_str();
    assert_token_works(&app, access).await;

    let (status, body) = send(app.post("/api/v1/auth/logout").bearer_auth(access)).await;
    assert_eq!(status, 204, "{body}");
    assert_token_dead(&app, access).await;
    let (status, body) = try_refresh(&app, &pair.refresh_token).await;
    assert_eq!(status, 401, "{body}");
    // Logging out again with the dead token is itself unauthenticated.
    let (status, body) = send(app.post("/api/v1/auth/logout").bearer_auth(access)).await;
    assert_eq!(status, 401);
    assert_eq!(body, invalid_token());
    // Only that session ended.
    assert_token_works(&app, &other.access_token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_without_a_token_is_401() {
    let app = TestApp::spawn().await;
    let (status, body) = send(app.post("/api/v1/auth/logout")).await;
    assert_eq!(status, 401);
    assert_eq!(body, not_authenticated());
}

/// A real token of the superuser, its claims, and a check that re-signing those claims with the
/// test key is accepted (so each forged variant below fails for exactly one reason).
async fn real_token(app: &TestApp) -> (String, Value) {
    let token = app.admin_token().await;
    let claims = claims_of(&token);
    for field in ["sub", "sid", "iat", "exp", "iss"] {
        assert!(!claims[field].is_null(), "{field} missing in {claims}");
    }
    let resigned = sign(&claims, test_jwt_secret().as_bytes());
    assert_token_works(app, &resigned).await;
    (token, claims)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_401() {
    let app = TestApp::spawn().await;
    let (_, mut claims) = real_token(&app).await;
    claims["exp"] = json!(now_secs() - 60);
    let expired = sign(&claims, test_jwt_secret().as_bytes());
    assert_token_dead(&app, &expired).await;
    // Just past expiry is expired too, whatever leeway the codec allows.
    claims["exp"] = json!(now_secs() - 1);
    let expired = sign(&claims, test_jwt_secret().as_bytes());
    assert_token_dead(&app, &expired).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_with_a_tampered_payload_is_401() {
    let app = TestApp::spawn().await;
    let (_, alice_token) = app.user_with_token("alice").await;
    let (root_token, root_claims) = real_token(&app).await;
    // Alice's token, claiming to be the superuser: her signature, root's subject and session.
    let mut claims = claims_of(&alice_token);
    claims["sub"] = root_claims["sub"].clone();
    claims["sid"] = root_claims["sid"].clone();
    let forged_parts = sign(&claims, b"whatever-key-whatever-key-whatever-key");
    let (header_and_payload, _) = forged_parts.rsplit_once('.').unwrap();
    let (_, alice_signature) = alice_token.rsplit_once('.').unwrap();
    let tampered = format!("{header_and_payload}.{alice_signature}");
    assert_token_dead(&app, &tampered).await;
    // A payload byte flipped on root's own token.
    let (header, rest) = root_token.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    let flipped: String = payload
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i == 10 {
                if c == 'A' {
                    'B'
                } else {
                    'A'
                }
            } else {
                c
            }
        })
        .collect();
    assert_token_dead(&app, &format!("{header}.{flipped}.{signature}")).await;
    // The alice check above would be meaningless if the server did not answer to her token.
    assert_token_works(&app, &alice_token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_signed_with_another_key_or_algorithm_is_401() {
    let app = TestApp::spawn().await;
    let (_, claims) = real_token(&app).await;
    let other = sign(&claims, b"another-secret-another-secret-another");
    assert_token_dead(&app, &other).await;
    // The right key with another HMAC algorithm.
    let secret = test_jwt_secret();
    for alg in [
        jsonwebtoken::Algorithm::HS384,
        jsonwebtoken::Algorithm::HS512,
    ] {
        let token = sign_with(alg, &claims, secret.as_bytes());
        assert_token_dead(&app, &token).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsigned_alg_none_token_is_401() {
    let app = TestApp::spawn().await;
    let (token, _) = real_token(&app).await;
    let (_, rest) = token.split_once('.').unwrap();
    let (payload, _) = rest.split_once('.').unwrap();
    // {"alg":"none","typ":"JWT"} and {"alg":"None","typ":"JWT"}
    for header in [
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0",
        "eyJhbGciOiJOb25lIiwidHlwIjoiSldUIn0",
    ] {
        assert_token_dead(&app, &format!("{header}.{payload}.")).await;
        assert_token_dead(&app, &format!("{header}.{payload}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_authorization_is_401() {
    let app = TestApp::spawn().await;
    for path in ["/api/v1/users/me", "/api/v1/users", "/api/v1/users/root"] {
        let response = app.get(path).send().await.unwrap();
        assert_eq!(response.status(), 401, "{path}");
        assert_eq!(
            response.headers().get("www-authenticate").unwrap(),
            "Bearer"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, not_authenticated(), "{path}");
    }
    // Nothing is created without a token.
    let (status, _) = send(
        app.post("/api/v1/users")
            .json(&json!({"username": "sneaky", "password": "sneaky-password"})),
    )
    .await;
    assert_eq!(status, 401);
    assert_absent(&app, "sneaky").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_authorization_is_401() {
    let app = TestApp::spawn().await;
    // root:root-password-1 in Basic form: passwords are not accepted on API calls.
    let (status, body) = send(
        app.get("/api/v1/users/me")
            .basic_auth(ADMIN_USERNAME, Some(ADMIN_PASSWORD)),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body, not_authenticated());
    // Nor is a valid token under another scheme.
    let token = app.admin_token().await;
    let (status, _) = send(
        app.get("/api/v1/users/me")
            .header("Authorization", format!("Token {token}")),
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bearer_tokens_are_401() {
    let app = TestApp::spawn().await;
    let huge = "a".repeat(5000);
    for garbage in [
        "garbage",
        "a.b.c",
        "....",
        "eyJhbGciOiJIUzI1NiJ9.eyJ9.x",
        huge.as_str(),
    ] {
        let (status, body) = send(
            app.get("/api/v1/users/me")
                .header("Authorization", format!("Bearer {garbage}")),
        )
        .await;
        assert_eq!(status, 401, "{garbage}: {body}");
        assert_eq!(body, invalid_token(), "{garbage}");
    }
    // Not even a readable header value.
    let (status, _) = send(app.get("/api/v1/users/me").header(
        "Authorization",
        reqwest::header::HeaderValue::from_bytes("Bearer \u{1F600}".as_bytes()).unwrap(),
    ))
    .await;
    assert_eq!(status, 401);
    for header in ["Bearer", "Bearer ", "bearer"] {
        let (status, body) =
            send(app.get("/api/v1/users/me").header("Authorization", header)).await;
        assert_eq!(status, 401, "{header}: {body}");
        assert_eq!(body, not_authenticated(), "{header}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_work_across_server_processes_and_logout_is_seen_everywhere() {
    let a = TestApp::spawn().await;
    let b = a.spawn_sibling().await;
    alice(&a).await;
    let pair = login_pair(&a, "alice", "alice-password").await;
    let access = pair.access_token.as_str();
    assert_token_works(&a, access).await;
    assert_token_works(&b, access).await;
    // Refresh on B, with a token issued by A.
    let refreshed: TokenPair = answer_as(try_refresh(&b, &pair.refresh_token).await, 200);
    let refreshed_access = refreshed.access_token.as_str();
    assert_token_works(&a, refreshed_access).await;

    let (status, _) = send(a.post("/api/v1/auth/logout").bearer_auth(access)).await;
    assert_eq!(status, 204);
    assert_token_dead(&b, access).await;
    assert_token_dead(&b, refreshed_access).await;
    let (status, _) = try_refresh(&b, &refreshed.refresh_token).await;
    assert_eq!(status, 401);
}
