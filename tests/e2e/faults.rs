//! Faults: the database going away under a running server (requests fail fast with 503 and
//! `Retry-After`, `/readyz` turns 503, both recover by themselves when it returns, and no
//! acknowledged write is lost), and slow clients (cut off after the configured timeouts while
//! everyone else is served). A server killed with SIGKILL is in
//! `crates/server/tests/processes.rs`, which runs the real binary.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tessera_testkit::{TestApp, ADMIN_PASSWORD, ADMIN_USERNAME};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

/// Every entry of a wallet's ledger, following the cursor.
async fn whole_ledger(app: &TestApp, token: &str, wallet: &str) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/wallets/{wallet}/ledger?limit=500");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page: Value = app
            .get(&path)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        entries.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return entries,
        }
    }
}

/// One keyed adjustment's outcome.
struct Outcome {
    key: String,
    status: u16,
    elapsed: Duration,
    entry: Option<String>,
}

/// Four clients stream keyed adjustments of 1 while PostgreSQL is stopped and started again.
/// While it is down every answer is a 503, none takes longer than the configured pool wait plus
/// connect timeout (and a generous margin for a loaded machine: a bound derived from
/// configuration, not a speed requirement); the server heals without a restart; every 2xx entry
/// is in the ledger; and retrying the refused keys afterwards leaves exactly one entry per key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_under_load_loses_no_acknowledged_write() {
    const POOL_WAIT_MS: u64 = 1000;
    const CONNECT_MS: u64 = 1000;
    let cluster = PrivateCluster::new();
    let url = cluster.start();
    let app = Arc::new(
        TestApp::spawn_on(
            &url,
            &[
                ("database.pool_wait_timeout_ms", POOL_WAIT_MS.to_string()),
                ("database.connect_timeout_ms", CONNECT_MS.to_string()),
            ],
        )
        .await,
    );
    let token = app.token(ADMIN_USERNAME, ADMIN_PASSWORD).await;
    // Billing authority never credits its own account: the storm pays a member.
    app.create_user(
        &token,
        json!({"username": "payee", "password": "payee-password"}),
    )
    .await;
    let wallets: Value = app
        .get("/api/v1/users/payee/wallets")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let wallet = wallets["data"][0]["id"].as_str().unwrap().to_owned();
    // Far above any bound below: a hang shows up as a long duration, not a client error.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let adjust = {
        let (client, app, token, wallet) =
            (client.clone(), app.clone(), token.clone(), wallet.clone());
        move |key: String| {
            let (client, app, token, wallet) =
                (client.clone(), app.clone(), token.clone(), wallet.clone());
            async move {
                let started = Instant::now();
                let response = client
                    .post(app.url(&format!("/api/v1/wallets/{wallet}/adjustments")))
                    .bearer_auth(&token)
                    .header("Idempotency-Key", key.clone())
                    .json(&json!({"amount": 1, "reason": "under load"}))
                    .send()
                    .await
                    .expect("an answer, not a hang or a dropped connection");
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                Outcome {
                    key,
                    status,
                    elapsed: started.elapsed(),
                    entry: body["id"].as_str().map(str::to_owned),
                }
            }
        }
    };

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (stop, adjust) = (stop.clone(), adjust.clone());
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) && i < 5000 {
                    outcomes.push(adjust(format!("c{c}-{i}")).await);
                    i += 1;
                    if outcomes.last().is_some_and(|o| o.status == 503) {
                        // Clients back off as Retry-After asks, a little.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                outcomes
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(800)).await;
    cluster.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.start();
    let mut healed = false;
    for _ in 0..120 {
        if client
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            == 200
        {
            healed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(healed, "/readyz never came back");
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, Ordering::Relaxed);
    let mut outcomes = Vec::new();
    for client in clients {
        outcomes.extend(client.await.unwrap());
    }

    let bound = Duration::from_millis(POOL_WAIT_MS + CONNECT_MS) + Duration::from_secs(5);
    let mut statuses = BTreeMap::new();
    for o in &outcomes {
        *statuses.entry(o.status).or_insert(0) += 1;
        assert!(
            o.status == 201 || o.status == 503,
            "{}: unexpected {}",
            o.key,
            o.status
        );
        assert!(
            o.elapsed < bound,
            "{} took {:?}, past the configured {bound:?}",
            o.key,
            o.elapsed
        );
    }
    assert!(
        statuses.get(&503).is_some_and(|n| *n > 0),
        "never saw the outage: {statuses:?}"
    );
    let last_of_each: Vec<u16> = outcomes.iter().rev().take(4).map(|o| o.status).collect();
    assert!(
        statuses.get(&201).is_some_and(|n| *n > 0) && last_of_each.contains(&201),
        "no write after the recovery: {statuses:?}"
    );

    // Every acknowledged entry is in the ledger.
    let ledger = whole_ledger(&app, &token, &wallet).await;
    let ids: BTreeSet<&str> = ledger.iter().filter_map(|e| e["id"].as_str()).collect();
    for o in outcomes.iter().filter(|o| o.status == 201) {
        let entry = o.entry.as_deref().expect("a 201 names its entry");
        assert!(
            ids.contains(entry),
            "{}: acknowledged entry {entry} is missing",
            o.key
        );
    }
    // Retrying every refused key settles it; then each key has exactly one entry.
    for o in outcomes.iter().filter(|o| o.status == 503) {
        let retried = adjust(o.key.clone()).await;
        assert_eq!(retried.status, 201, "retrying {}", o.key);
    }
    let ledger = whole_ledger(&app, &token, &wallet).await;
    let mut per_key: BTreeMap<String, usize> = BTreeMap::new();
    for e in &ledger {
        *per_key
            .entry(e["idempotency_key"].as_str().unwrap_or("").to_owned())
            .or_insert(0) += 1;
    }
    let sent: BTreeSet<&str> = outcomes.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(per_key.len(), sent.len(), "one entry per key sent");
    assert!(per_key.values().all(|n| *n == 1), "{per_key:?}");
    let wallet_now: Value = app
        .get(&format!("/api/v1/wallets/{wallet}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sum: i64 = ledger.iter().map(|e| e["amount"].as_i64().unwrap()).sum();
    assert_eq!(wallet_now["balance"], sum, "{wallet_now}");
    assert_eq!(sum, sent.len() as i64);
}

// ---------------------------------------------------------------------------------------------
// Slow clients
// ---------------------------------------------------------------------------------------------

const SLOW_TIMEOUT_MS: u64 = 2000;

async fn slow_app() -> TestApp {
    TestApp::spawn_with(&[
        (
            "server.client_request_timeout_ms",
            SLOW_TIMEOUT_MS.to_string(),
        ),
        ("server.body_read_timeout_ms", SLOW_TIMEOUT_MS.to_string()),
    ])
    .await
}

/// Connects, sends `head`, then drips `drip` one byte every 100 ms. Returns how long until the
/// server closed the connection, and what it answered. Gives up (panics) after 20 s.
async fn slow_client(
    addr: std::net::SocketAddr,
    head: Vec<u8>,
    drip: Vec<u8>,
) -> (Duration, String) {
    let started = Instant::now();
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    writer.write_all(&head).await.unwrap();
    let dripping = async move {
        for byte in drip.iter().cycle().take(200) {
            if writer.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        std::future::pending::<()>().await;
    };
    let reading = async move {
        let mut answer = Vec::new();
        let _ = reader.read_to_end(&mut answer).await;
        answer
    };
    let answer = tokio::time::timeout(Duration::from_secs(20), async {
        tokio::select! {
            answer = reading => answer,
            _ = dripping => unreachable!(),
        }
    })
    .await
    .expect("the slow client was never cut off");
    (
        started.elapsed(),
        String::from_utf8_lossy(&answer).into_owned(),
    )
}

/// Runs `slow` slow clients (more than the server's two workers) and, while they drip, 20
/// ordinary requests: all of those are served before any slow client is cut off, and each slow
/// client is cut off after the configured timeout (within a generous margin). Returns the
/// slow clients' answers.
async fn slow_clients_are_cut_off(app: &TestApp, head: &[u8], drip: &[u8]) -> Vec<String> {
    let token = app.token(ADMIN_USERNAME, ADMIN_PASSWORD).await;
    let started = Instant::now();
    let slow: Vec<_> = (0..4)
        .map(|_| tokio::spawn(slow_client(app.addr, head.to_vec(), drip.to_vec())))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ordinary = (0..20).map(|_| async {
        app.get("/api/v1/users/me")
            .bearer_auth(&token)
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    let statuses = futures::future::join_all(ordinary).await;
    let served_by = started.elapsed();
    assert!(
        statuses.iter().all(|s| matches!(s, Ok(200))),
        "ordinary requests during the slow ones: {statuses:?}"
    );
    let mut answers = Vec::new();
    for client in slow {
        let (cut_after, answer) = client.await.unwrap();
        let timeout = Duration::from_millis(SLOW_TIMEOUT_MS);
        assert!(
            cut_after > served_by,
            "a slow client was cut off ({cut_after:?}) before the ordinary requests were served \
             ({served_by:?})"
        );
        // actix-http computes its deadlines from a clock it refreshes every 500 ms, so a
        // timeout may fire up to half a second early.
        assert!(
            cut_after >= timeout - Duration::from_millis(600),
            "cut off after {cut_after:?}, before the configured {timeout:?}"
        );
        assert!(
            cut_after < timeout + Duration::from_secs(5),
            "cut off only after {cut_after:?}; configured {timeout:?}"
        );
        answers.push(answer);
    }
    answers
}

/// Headers sent byte by byte (slowloris): 408 and the connection closed after
/// `server.client_request_timeout_ms`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_headers_byte_by_byte_is_cut_off() {
    let app = slow_app().await;
    let answers = slow_clients_are_cut_off(
        &app,
        b"GET /api/v1/users/me HTTP/1.1\r\nHost: localhost\r\nX-Slow: ",
        b"abcdefgh",
    )
    .await;
    for answer in answers {
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{answer:?}"
        );
    }
}

/// A body sent byte by byte: 408 `request_timeout` and the connection closed after
/// `server.body_read_timeout_ms`, on a plain JSON route and on a signed one (whose body is
/// read by the signature middleware).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_a_body_byte_by_byte_is_cut_off() {
    let app = slow_app().await;
    for head in [
        &b"POST /api/v1/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n"[..],
        &b"PUT /users/squad_access HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nX-Chutes-Hotkey: 5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY\r\nX-Chutes-Signature: 00\r\nX-Chutes-Nonce: 1\r\nContent-Length: 4000\r\n\r\n"[..],
    ] {
        let answers = slow_clients_are_cut_off(&app, head, b"{\"username\": \"x").await;
        for answer in answers {
            assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
            assert!(answer.contains("request_timeout"), "{answer:?}");
        }
    }
    // The server is still healthy, and an ordinary body is read as before.
    let (status, _) = crate::support::try_login(&app, ADMIN_USERNAME, ADMIN_PASSWORD).await;
    assert_eq!(status, 200);
}
