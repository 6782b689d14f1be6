use serde_json::json;
use tessera_testkit::{status_and_json, TestApp};

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
