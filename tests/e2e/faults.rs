//! The database going away under a running server: requests fail fast with 503 and
//! `Retry-After`, `/readyz` turns 503, and both recover by themselves when it returns.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use tessera_testkit::{TestApp, ADMIN_PASSWORD, ADMIN_USERNAME};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/dev-postgres");

/// A private PostgreSQL cluster of this test's own, run by `scripts/dev-postgres`.
struct PrivateCluster {
    dir: PathBuf,
    port: u16,
}

impl PrivateCluster {
    fn new() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let dir = std::env::temp_dir().join(format!("tessera-fault-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("cluster dir");
        Self { dir, port }
    }

    fn script(&self, args: &[&str]) -> String {
        let out = Command::new(SCRIPT)
            .args(args)
            // Never the shared server: force the private-cluster path.
            .env_remove("DATABASE_URL")
            .env_remove("TESSERA__DATABASE__URL")
            .env("TESSERA_PG_PORT", "1")
            .env("TESSERA_PRIVATE_PG_DIR", &self.dir)
            .env("TESSERA_PRIVATE_PG_PORT", self.port.to_string())
            .output()
            .expect("run scripts/dev-postgres");
        assert!(
            out.status.success(),
            "dev-postgres {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Starts the cluster (initialising it the first time); returns the database URL.
    fn start(&self) -> String {
        self.script(&["url", "tessera_fault"])
    }

    fn stop(&self) {
        self.script(&["stop"]);
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = Command::new(SCRIPT)
            .arg("stop")
            .env("TESSERA_PRIVATE_PG_DIR", &self.dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_gives_fast_503s_and_heals_without_a_restart() {
    let cluster = PrivateCluster::new();
    let url = cluster.start();
    let app = TestApp::spawn_on(
        &url,
        &[
            ("database.pool_wait_timeout_ms", "1000".to_owned()),
            ("database.connect_timeout_ms", "1000".to_owned()),
        ],
    )
    .await;
    // A client that gives up long after any sane fail-fast: a hang fails the test.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let token = app.token(ADMIN_USERNAME, ADMIN_PASSWORD).await;
    let me = || client.get(app.url("/api/v1/users/me")).bearer_auth(&token);
    assert_eq!(me().send().await.unwrap().status(), 200);
    let ready = client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    cluster.stop();
    for _ in 0..3 {
        let down = me().send().await.expect("an answer, not a hang");
        assert_eq!(down.status(), 503);
        assert_eq!(down.headers()["retry-after"], "1");
        let body: serde_json::Value = down.json().await.unwrap();
        assert_eq!(body["code"], "unavailable", "{body}");
    }
    let login = client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 503);
    let not_ready = client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(not_ready.status(), 503);
    assert!(not_ready.headers().contains_key("retry-after"));

    cluster.start();
    // The pool heals by itself: readiness returns, and the old session still works.
    let mut healed = false;
    for _ in 0..60 {
        let r = client.get(app.url("/readyz")).send().await.unwrap();
        if r.status() == 200 {
            healed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(healed, "/readyz never came back");
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(me().send().await.unwrap().status().as_u16());
    }
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
}
