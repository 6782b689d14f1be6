//! Real `tessera serve` processes on one database: nothing but PostgreSQL is shared, so money
//! stays exact and a forced logout on one process is effective on the other at once; and a
//! process killed with SIGKILL mid-stream loses nothing it acknowledged.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use serde_json::{json, Value};
use tessera_testkit::TestDatabase;

const CONFIG_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config");
const ADMIN_PASSWORD: &str = "process-admin-password";

/// A `tessera serve` child process; killed when dropped.
struct Process {
    child: Child,
    base: String,
}

impl Process {
    /// Starts the binary on a free port with the test configuration (cheap argon2, the shared
    /// JWT key) and waits for it to say where it listens.
    fn start(database_url: &str) -> Self {
        Self::start_with(database_url, &[])
    }

    /// Like [`Process::start`], with extra `TESSERA__…` settings.
    fn start_with(database_url: &str, settings: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
        for (key, value) in settings {
            command.env(key, value);
        }
        let mut child = command
            .arg("serve")
            .env("TESSERA_ENV", "test")
            .env("TESSERA_CONFIG_DIR", CONFIG_DIR)
            .env("TESSERA__DATABASE__URL", database_url)
            .env("TESSERA__SERVER__PORT", "0")
            .env("TESSERA__BOOTSTRAP__ADMIN_USERNAME", "admin")
            .env("TESSERA__BOOTSTRAP__ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env_remove("DATABASE_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tessera");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            let line = match lines.next() {
                Some(Ok(line)) => line,
                _ => panic!("tessera exited before listening"),
            };
            if let Some(addr) = line.strip_prefix("Tessera listening on ") {
                break addr.trim().to_owned();
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self { child, base }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn login(client: &reqwest::Client, p: &Process, username: &str, password: &str) -> Value {
    let r = client
        .post(p.url("/api/v1/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn status_of(request: reqwest::RequestBuilder) -> u16 {
    request.send().await.unwrap().status().as_u16()
}

async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_keep_money_exact_and_share_every_logout() {
    let db = TestDatabase::new().await;
    let a = Process::start(&db.url);
    let b = Process::start(&db.url);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    // The bootstrap raced on two processes; exactly one superuser came out of it.
    let admin = login(&client, &a, "admin", ADMIN_PASSWORD).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let users = json_of(client.get(b.url("/api/v1/users")).bearer_auth(&admin)).await;
    assert_eq!(users["total_count"], 1, "{users}");

    let created = client
        .post(a.url("/api/v1/users"))
        .bearer_auth(&admin)
        .json(&json!({"username": "carol", "password": "carol-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let wallets = json_of(
        client
            .get(b.url("/api/v1/users/carol/wallets"))
            .bearer_auth(&admin),
    )
    .await;
    let wallet = wallets["data"][0]["id"].as_str().unwrap().to_owned();

    // Credits of 3 and debits of 5 from a balance of 100, alternating between the processes:
    // a debit is refused exactly when it would take the balance below zero.
    let seed = client
        .post(a.url(&format!("/api/v1/wallets/{wallet}/adjustments")))
        .bearer_auth(&admin)
        .json(&json!({"amount": 100, "reason": "seed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(seed.status(), 201);
    let requests = (0..120).map(|i| {
        let (client, admin, wallet) = (client.clone(), admin.clone(), wallet.clone());
        let base = if i % 2 == 0 {
            a.base.clone()
        } else {
            b.base.clone()
        };
        async move {
            let amount: i64 = if i % 3 == 0 { 3 } else { -5 };
            let r = client
                .post(format!("{base}/api/v1/wallets/{wallet}/adjustments"))
                .bearer_auth(&admin)
                .json(&json!({"amount": amount, "reason": format!("storm {i}")}))
                .send()
                .await
                .unwrap();
            (amount, r.status().as_u16())
        }
    });
    let outcomes = join_all(requests).await;
    let mut expected = 100i64;
    for (amount, status) in &outcomes {
        match status {
            201 => expected += amount,
            409 => assert!(*amount < 0, "a credit was refused"),
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(
        outcomes.iter().any(|(_, s)| *s == 409),
        "the storm never ran out of money"
    );
    let ledger = json_of(
        client
            .get(b.url(&format!("/api/v1/wallets/{wallet}/ledger?limit=500")))
            .bearer_auth(&admin),
    )
    .await;
    let entries = ledger["data"].as_array().unwrap();
    let accepted = outcomes.iter().filter(|(_, s)| *s == 201).count();
    assert_eq!(entries.len(), accepted + 1, "{ledger}");
    let sum: i64 = entries.iter().map(|e| e["amount"].as_i64().unwrap()).sum();
    assert_eq!(sum, expected);
    assert!(entries
        .iter()
        .all(|e| e["balance_after"].as_i64().unwrap() >= 0));
    let wallet_now = json_of(
        client
            .get(a.url(&format!("/api/v1/wallets/{wallet}")))
            .bearer_auth(&admin),
    )
    .await;
    assert_eq!(wallet_now["balance"], expected, "{wallet_now}");

    // Carol's session works on both processes until an admin on A forces her out.
    let carol = login(&client, &b, "carol", "carol-password").await;
    let token = carol["access_token"].as_str().unwrap().to_owned();
    let refresh = carol["refresh_token"].as_str().unwrap().to_owned();
    for p in [&a, &b] {
        let me = client.get(p.url("/api/v1/users/me")).bearer_auth(&token);
        assert_eq!(status_of(me).await, 200);
    }
    let forced = client
        .post(a.url("/api/v1/users/carol/logout"))
        .bearer_auth(&admin);
    assert_eq!(status_of(forced).await, 204);
    for p in [&a, &b] {
        let me = client.get(p.url("/api/v1/users/me")).bearer_auth(&token);
        assert_eq!(status_of(me).await, 401);
    }
    let refreshed = client
        .post(b.url("/api/v1/auth/refresh"))
        .json(&json!({"refresh_token": refresh}));
    assert_eq!(status_of(refreshed).await, 401);
    drop((a, b));
}

/// Every entry of a wallet's ledger, following the cursor.
async fn whole_ledger(
    client: &reqwest::Client,
    p: &Process,
    token: &str,
    wallet: &str,
) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/wallets/{wallet}/ledger?limit=500");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = json_of(client.get(p.url(&path)).bearer_auth(token)).await;
        entries.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return entries,
        }
    }
}

/// Four clients stream keyed adjustments (credits of 1..=9) into one wallet; the server is
/// killed with SIGKILL mid-stream and a new process started on the same database. Every
/// adjustment that got a 2xx is in the ledger with its amount, the balance equals the ledger
/// sum, and retrying the requests whose answer was lost settles each key exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_stream_loses_no_acknowledged_adjustment() {
    let db = TestDatabase::new().await;
    let mut first = Process::start(&db.url);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let admin = login(&client, &first, "admin", ADMIN_PASSWORD).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Billing authority never credits its own account: the stream pays a member.
    let created = json_of(
        client
            .post(first.url("/api/v1/users"))
            .bearer_auth(&admin)
            .json(&json!({"username": "payee", "password": "payee-password"})),
    )
    .await;
    assert!(created["id"].is_string(), "{created}");
    let wallets = json_of(
        client
            .get(first.url("/api/v1/users/payee/wallets"))
            .bearer_auth(&admin),
    )
    .await;
    let wallet = wallets["data"][0]["id"].as_str().unwrap().to_owned();

    let acknowledged = Arc::new(AtomicUsize::new(0));
    let streams: Vec<_> = (0..4)
        .map(|c| {
            let (client, admin, wallet, base) = (
                client.clone(),
                admin.clone(),
                wallet.clone(),
                first.base.clone(),
            );
            let acknowledged = acknowledged.clone();
            tokio::spawn(async move {
                // (key, amount, Some(entry id) when acknowledged, None when the answer was lost)
                let mut sent = Vec::new();
                for i in 0..2000 {
                    let key = format!("c{c}-{i}");
                    let amount = 1 + (i % 9) as i64;
                    let response = client
                        .post(format!("{base}/api/v1/wallets/{wallet}/adjustments"))
                        .bearer_auth(&admin)
                        .header("Idempotency-Key", key.clone())
                        .json(&json!({"amount": amount, "reason": "stream"}))
                        .send()
                        .await;
                    match response {
                        Ok(r) => {
                            let status = r.status().as_u16();
                            let body: Value = r.json().await.unwrap_or(Value::Null);
                            match (status, body["id"].as_str()) {
                                (201, Some(id)) => {
                                    acknowledged.fetch_add(1, Ordering::Relaxed);
                                    sent.push((key, amount, Some(id.to_owned())));
                                }
                                // The body was cut off with the process.
                                (201, None) => {
                                    sent.push((key, amount, None));
                                    break;
                                }
                                _ => panic!("{key}: unexpected {status} {body}"),
                            }
                        }
                        Err(_) => {
                            // The server died with this request in flight: its outcome is
                            // unknown; the stream ends here.
                            sent.push((key, amount, None));
                            break;
                        }
                    }
                }
                sent
            })
        })
        .collect();
    // Kill while the stream runs: after a fair number of writes have been acknowledged.
    for _ in 0..600 {
        if acknowledged.load(Ordering::Relaxed) >= 150 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.child.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
    first.child.wait().unwrap();
    let mut sent = Vec::new();
    for s in streams {
        sent.extend(s.await.unwrap());
    }
    assert!(
        sent.iter().any(|(_, _, id)| id.is_none()),
        "the server was killed after every stream had finished"
    );

    let second = Process::start(&db.url);
    let ledger = whole_ledger(&client, &second, &admin, &wallet).await;
    let by_id: BTreeMap<&str, &Value> = ledger
        .iter()
        .map(|e| (e["id"].as_str().unwrap(), e))
        .collect();
    for (key, amount, id) in &sent {
        if let Some(id) = id {
            let entry = by_id
                .get(id.as_str())
                .unwrap_or_else(|| panic!("{key}: acknowledged entry {id} is missing"));
            assert_eq!(entry["amount"], *amount, "{key}");
            assert_eq!(entry["idempotency_key"], key.as_str(), "{key}");
        }
    }
    let balance = |p: &Process| {
        let (client, admin, wallet) = (client.clone(), admin.clone(), wallet.clone());
        let url = p.url(&format!("/api/v1/wallets/{wallet}"));
        async move {
            json_of(client.get(url).bearer_auth(&admin)).await["balance"]
                .as_i64()
                .unwrap()
        }
    };
    let sum: i64 = ledger.iter().map(|e| e["amount"].as_i64().unwrap()).sum();
    assert_eq!(
        balance(&second).await,
        sum,
        "balance = ledger sum after the crash"
    );

    // The requests whose answers were lost, retried on the new process with their keys: each
    // ends with exactly one entry, whether or not the dead process had committed it.
    for (key, amount, id) in &sent {
        if id.is_none() {
            let r = client
                .post(second.url(&format!("/api/v1/wallets/{wallet}/adjustments")))
                .bearer_auth(&admin)
                .header("Idempotency-Key", key.clone())
                .json(&json!({"amount": amount, "reason": "stream"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201, "retrying {key}");
        }
    }
    let ledger = whole_ledger(&client, &second, &admin, &wallet).await;
    let keys: Vec<&str> = ledger
        .iter()
        .map(|e| e["idempotency_key"].as_str().unwrap())
        .collect();
    let distinct: BTreeSet<&str> = keys.iter().copied().collect();
    assert_eq!(keys.len(), distinct.len(), "a key was applied twice");
    assert_eq!(distinct.len(), sent.len(), "one entry per adjustment sent");
    let expected: i64 = sent.iter().map(|(_, amount, _)| amount).sum();
    assert_eq!(balance(&second).await, expected);
}

/// A login throttle counted in PostgreSQL holds across processes: attempts alternate between
/// two real servers, and the account is refused after exactly its limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_rate_limit() {
    let db = TestDatabase::new().await;
    let limit = [("TESSERA__RATE_LIMITS__LOGIN_PER_ACCOUNT", "4")];
    let a = Process::start_with(&db.url, &limit);
    let b = Process::start_with(&db.url, &limit);
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for i in 0..8 {
        let p = if i % 2 == 0 { &a } else { &b };
        statuses.push(
            status_of(
                client
                    .post(p.url("/api/v1/auth/login"))
                    .json(&json!({"username": "ghost", "password": "guess-{i}"})),
            )
            .await,
        );
    }
    assert_eq!(statuses, vec![401, 401, 401, 401, 429, 429, 429, 429]);
}

/// Metering through two real processes: a daily quota of 20 and money for exactly 10 paid calls;
/// 60 concurrent calls alternate between the servers. Exactly 20 are covered by quota, 10 are
/// charged, 30 are refused with 402, and the balance ends at exactly zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_meter_exactly() {
    let db = TestDatabase::new().await;
    let a = Process::start(&db.url);
    let b = Process::start(&db.url);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let admin = login(&client, &a, "admin", ADMIN_PASSWORD).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let created = json_of(
        client
            .post(a.url("/api/v1/users"))
            .bearer_auth(&admin)
            .json(&json!({"username": "meter", "password": "meter-password"})),
    )
    .await;
    let user = created["id"].as_str().unwrap().to_owned();
    let quotas = client
        .put(b.url(&format!("/api/v1/users/{user}/quotas")))
        .bearer_auth(&admin)
        .json(&json!({"*": 20}))
        .send()
        .await
        .unwrap();
    assert_eq!(quotas.status(), 200);
    let wallets = json_of(
        client
            .get(a.url(&format!("/api/v1/users/{user}/wallets")))
            .bearer_auth(&admin),
    )
    .await;
    let wallet = wallets["data"][0]["id"].as_str().unwrap().to_owned();
    let seed = client
        .post(b.url(&format!("/api/v1/wallets/{wallet}/adjustments")))
        .bearer_auth(&admin)
        .json(&json!({"amount": 10 * 1_000, "reason": "seed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(seed.status(), 201);

    let body = json!({"user_id": user, "resource_id": "*", "count": 1, "cost": 1_000,
                      "input_tokens": 1, "output_tokens": 1});
    let calls = (0..60).map(|i| {
        let (client, admin, body) = (client.clone(), admin.clone(), body.clone());
        let url = if i % 2 == 0 {
            a.url("/api/v1/usage")
        } else {
            b.url("/api/v1/usage")
        };
        async move {
            let r = client
                .post(url)
                .bearer_auth(admin)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let value: Value = r.json().await.unwrap();
            (status, value)
        }
    });
    let mut quota = 0;
    let mut charged = 0;
    let mut refused = 0;
    for (status, value) in join_all(calls).await {
        match (status, value["source"].as_str()) {
            (201, Some("quota")) => quota += 1,
            (201, Some("balance")) => charged += 1,
            (402, _) => refused += 1,
            other => panic!("unexpected {other:?}: {value}"),
        }
    }
    assert_eq!((quota, charged, refused), (20, 10, 30));
    let after = json_of(
        client
            .get(b.url(&format!("/api/v1/wallets/{wallet}")))
            .bearer_auth(&admin),
    )
    .await;
    assert_eq!(after["balance"], 0, "{after}");
}

/// `tessera prune` (housekeeping once, for cron) purges a user deleted longer ago than
/// retention.deleted_users_secs and says so; the server itself does not prune here
/// (retention.interval_secs = 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tessera_prune_purges_users_past_their_retention() {
    let db = TestDatabase::new().await;
    let retention = [
        ("TESSERA__RETENTION__DELETED_USERS_SECS", "1"),
        ("TESSERA__RETENTION__INTERVAL_SECS", "0"),
    ];
    let p = Process::start_with(&db.url, &retention);
    let client = reqwest::Client::new();
    let admin = login(&client, &p, "admin", ADMIN_PASSWORD).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let created = json_of(
        client
            .post(p.url("/api/v1/users"))
            .bearer_auth(&admin)
            .json(&json!({"username": "alice", "password": "alice-password"})),
    )
    .await;
    let alice = created["id"].as_str().unwrap().to_owned();
    let user = p.url(&format!("/api/v1/users/{alice}"));
    assert_eq!(
        status_of(client.delete(&user).bearer_auth(&admin)).await,
        204
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Not pruned by the server: still there, soft-deleted.
    assert_eq!(status_of(client.get(&user).bearer_auth(&admin)).await, 200);

    let output = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("prune")
        .env("TESSERA_ENV", "test")
        .env("TESSERA_CONFIG_DIR", CONFIG_DIR)
        .env("TESSERA__DATABASE__URL", &db.url)
        .envs(retention)
        .env_remove("DATABASE_URL")
        .output()
        .expect("run tessera prune");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.starts_with("purged 1 deleted users;"), "{stdout}");
    assert_eq!(status_of(client.get(&user).bearer_auth(&admin)).await, 404);
}
