use serde_json::json;
use tessera_testkit::{status_and_json, TestApp};

use crate::support::metrics_text;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_logs_in_creates_a_user_who_reads_themselves() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let created = app
        .create_user(&admin, json!({"username": "alice", "email": "alice@example.com", "password": "alice-password"}))
        .await;
    assert_eq!(created["username"], "alice");
    assert!(created.get("temp_password").is_none());
    let token = app.token("alice@example.com", "alice-password").await;
    let (status, me) = status_and_json(
        app.get("/api/v1/users/me")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["id"], created["id"]);
    assert_eq!(me["is_admin"], false);
    println!("{me:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_a_request_id() {
    let app = TestApp::spawn().await;
    let generated = app.get("/healthz").send().await.unwrap();
    let id = generated.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 32, "{id}");
    let other = app.get("/healthz").send().await.unwrap();
    assert_ne!(other.headers()["x-request-id"].to_str().unwrap(), id);
    // A client's own short id is kept (also on errors); anything else is replaced.
    let echoed = app
        .get("/api/v1/users/me")
        .header("x-request-id", "client-42.retry_1")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.status(), 401);
    assert_eq!(echoed.headers()["x-request-id"], "client-42.retry_1");
    let replaced = app
        .get("/healthz")
        .header("x-request-id", "x".repeat(65))
        .send()
        .await
        .unwrap();
    assert_eq!(replaced.headers()["x-request-id"].len(), 32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_by_route_template_logins_and_the_pool() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let refused = app
        .post("/api/v1/auth/login")
        .json(&json!({"username": "nobody", "password": "wrong-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    for _ in 0..3 {
        let r = app
            .get("/api/v1/users/root")
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let text = metrics_text(&app).await;
    // Labelled by the route template, not the raw path.
    assert!(
        text.contains(r#"tessera_http_requests_total{method="GET",route="/api/v1/users/{user}",status="200"} 3"#),
        "{text}"
    );
    assert!(
        text.contains(r#"tessera_logins_total{outcome="failure"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"tessera_logins_total{outcome="success"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("tessera_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains("tessera_db_pool_max_size 8"), "{text}");
    assert!(
        !text.contains("/api/v1/users/root"),
        "raw paths must not become labels"
    );
}
