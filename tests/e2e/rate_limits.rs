//! Rate limits against real PostgreSQL: a tier's rules per user, held across two servers that
//! share only the database; `unlimited` users exempt; the default tier per client IP for calls
//! without credentials; the login throttles per account and per IP.

use serde_json::json;
use tessera_testkit::TestApp;

use crate::support::send;

/// A tier limiting `path` to `limit` calls an hour (an hour, so a test never straddles a
/// window boundary in practice).
async fn tier(app: &TestApp, root: &str, name: &str, path: &str, limit: u32) -> String {
    let (status, tier) = send(app.post("/api/v1/tiers").bearer_auth(root).json(&json!({
        "name": name,
        "rate_limits": [{"path": path, "limit": limit, "period_secs": 3600}],
    })))
    .await;
    assert_eq!(status, 201, "{tier}");
    tier["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_tier_limit_holds_per_user_across_two_servers() {
    let app = TestApp::spawn().await;
    let sibling = app.spawn_sibling().await;
    let root = app.admin_token().await;
    let tier_id = tier(&app, &root, "five-an-hour", "/api/v1/users/me", 5).await;
    let (user_id, token) = app.user_with_token("limited").await;
    let (status, _) = send(
        app.patch(&format!("/api/v1/users/{user_id}/tier"))
            .bearer_auth(&root)
            .json(&json!({"tier_id": tier_id})),
    )
    .await;
    assert_eq!(status, 200);

    let mut ok = 0;
    let mut limited = 0;
    for i in 0..12 {
        let server = if i % 2 == 0 { &app } else { &sibling };
        let response = server
            .get("/api/v1/users/me")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            200 => ok += 1,
            429 => {
                let retry: u64 = response.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=3600).contains(&retry), "{retry}");
                let body: serde_json::Value = response.json().await.unwrap();
                assert_eq!(body["code"], "too_many_requests");
                limited += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(
        (ok, limited),
        (5, 7),
        "five calls an hour, whichever server answers"
    );

    // Other paths are not limited by this rule; other users are not counted with this one.
    assert_eq!(
        send(
            app.get(&format!("/api/v1/users/{user_id}"))
                .bearer_auth(&token)
        )
        .await
        .0,
        200
    );
    let (_, other) = app.user_with_token("unlimited-one").await;
    assert_eq!(
        send(app.get("/api/v1/users/me").bearer_auth(&other))
            .await
            .0,
        200
    );

    // `unlimited` exempts a user of the same tier.
    let (status, _) = send(
        app.patch(&format!("/api/v1/users/{user_id}"))
            .bearer_auth(&root)
            .json(&json!({"permissions": 32})),
    )
    .await;
    assert_eq!(status, 200);
    for _ in 0..3 {
        assert_eq!(
            send(sibling.get("/api/v1/users/me").bearer_auth(&token))
                .await
                .0,
            200
        );
    }
}

#[tokio::test]
async fn the_default_tier_limits_anonymous_calls_per_ip() {
    let app = TestApp::spawn_with(&[("rate_limits.default_tier", "anonymous".into())]).await;
    let root = app.admin_token().await;
    tier(&app, &root, "anonymous", "/users/name_check", 3).await;
    let statuses: Vec<u16> = {
        let mut out = Vec::new();
        for _ in 0..5 {
            out.push(send(app.get("/users/name_check?username=someone")).await.0);
        }
        out
    };
    assert_eq!(statuses, vec![200, 200, 200, 429, 429]);
    // A public route takes no credential: whatever `Authorization` says (a garbage one once
    // skipped the anonymous limits altogether), the call counts against its address.
    for credential in [root.as_str(), "garbage"] {
        assert_eq!(
            send(
                app.get("/users/name_check?username=x1")
                    .bearer_auth(credential)
            )
            .await
            .0,
            429
        );
    }
}

#[tokio::test]
async fn logins_are_throttled_per_account_and_per_ip() {
    let app = TestApp::spawn_with(&[
        ("rate_limits.login_per_account", "3".into()),
        ("rate_limits.login_per_ip", "6".into()),
    ])
    .await;
    let root = app.admin_token().await; // attempt 1 from this IP
    app.create_user(
        &root,
        json!({"username": "target", "password": "target-password"}),
    )
    .await;
    let attempt = |password: &'static str| {
        app.post("/api/v1/auth/login")
            .json(&json!({"username": "target", "password": password}))
    };
    assert_eq!(send(attempt("wrong-1")).await.0, 401);
    assert_eq!(send(attempt("wrong-2")).await.0, 401);
    assert_eq!(send(attempt("wrong-3")).await.0, 401);
    // The fourth attempt on the account is refused even with the right password.
    let response = attempt("target-password").send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    // Another account still logs in, until the address has used its six attempts.
    app.create_user(
        &root,
        json!({"username": "bystander", "password": "bystander-password"}),
    )
    .await;
    let by = || {
        app.post("/api/v1/auth/login")
            .json(&json!({"username": "bystander", "password": "bystander-password"}))
    };
    assert_eq!(send(by()).await.0, 200); // attempt 6
    assert_eq!(send(by()).await.0, 429, "the address is over its limit");
    // Fingerprint logins share the per-IP limit.
    let (status, body) = send(app.post("/users/login").json(&json!({"fingerprint": "x"}))).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body, json!({"detail": "Too many requests."}));
}

#[tokio::test]
async fn anonymous_calls_are_limited_per_address_on_every_route() {
    let app = TestApp::spawn_with(&[
        ("rate_limits.anonymous_per_ip", "4".into()),
        ("rate_limits.anonymous_window_secs", "3600".into()),
    ])
    .await;
    // The login is a call without credentials too: the first of the four.
    let root = app.admin_token().await;
    let mut statuses = Vec::new();
    for path in [
        "/api/v1/stats/growth",
        "/users/growth",
        "/users/name_check?username=someone",
        "/api/v1/stats/growth",
    ] {
        statuses.push(send(app.get(path)).await.0);
    }
    assert_eq!(statuses, vec![200, 200, 200, 429]);
    // Authenticated calls are not anonymous: the address's count does not apply to them.
    assert_eq!(
        send(app.get("/api/v1/users/me").bearer_auth(&root)).await.0,
        200
    );
}
