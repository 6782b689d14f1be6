//! Events over HTTP against PostgreSQL: the feed (order, cursor, filters, long poll, access),
//! balance thresholds, and webhooks delivered to a real receiver on loopback — signed so the
//! `standardwebhooks` library verifies them, retried after failures, with rotation, attempts
//! and redelivery visible to the administrator.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};
use tessera_testkit::TestApp;

use crate::support::send;

/// One request the receiver got.
type Received = (http::HeaderMap, Vec<u8>);

/// What the receiver got: headers and body of each request, in order.
#[derive(Default, Clone)]
struct Inbox {
    seen: Arc<Mutex<Vec<Received>>>,
    /// How many requests to answer with 500 before answering 204.
    fail_first: Arc<Mutex<u32>>,
}

impl Inbox {
    fn len(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
    fn get(&self, i: usize) -> Received {
        self.seen.lock().unwrap()[i].clone()
    }
    /// Waits until `n` requests arrived (the delivery worker runs in the background).
    async fn wait_for(&self, n: usize) {
        for _ in 0..600 {
            if self.len() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the receiver got {} requests, expected {n}", self.len());
    }
}

async fn receive(req: HttpRequest, body: web::Bytes, inbox: web::Data<Inbox>) -> HttpResponse {
    let mut headers = http::HeaderMap::new();
    for (k, v) in req.headers() {
        headers.insert(
            http::HeaderName::from_bytes(k.as_str().as_bytes()).unwrap(),
            http::HeaderValue::from_bytes(v.as_bytes()).unwrap(),
        );
    }
    inbox.seen.lock().unwrap().push((headers, body.to_vec()));
    let mut fail = inbox.fail_first.lock().unwrap();
    if *fail > 0 {
        *fail -= 1;
        return HttpResponse::InternalServerError().body("try later");
    }
    HttpResponse::NoContent().finish()
}

/// A webhook receiver on its own thread and runtime; returns its URL.
fn receiver(inbox: Inbox) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            HttpServer::new(move || {
                App::new()
                    .app_data(web::Data::new(inbox.clone()))
                    .default_service(web::to(receive))
            })
            .workers(1)
            .listen(listener)
            .unwrap()
            .run()
            .await
        })
    });
    format!("http://127.0.0.1:{port}/hooks")
}

async fn feed(app: &TestApp, token: &str, query: &str) -> (u16, Value) {
    send(
        app.get(&format!("/api/v1/events{query}"))
            .bearer_auth(token),
    )
    .await
}

fn types_of(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

async fn credit(app: &TestApp, token: &str, user_id: &str, amount: i64) {
    let (status, body) = send(
        app.get(&format!("/api/v1/users/{user_id}/wallets"))
            .bearer_auth(token),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let wallet = body["data"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no wallet in {body}"))
        .to_owned();
    let (status, body) = send(
        app.post(&format!("/api/v1/wallets/{wallet}/adjustments"))
            .bearer_auth(token)
            .json(&json!({"amount": amount, "reason": "events test"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

fn verify(secret: &str, headers: &http::HeaderMap, body: &[u8]) -> bool {
    standardwebhooks::Webhook::new(secret)
        .unwrap()
        .verify(body, headers)
        .is_ok()
}

/// Reads `query` until it shows at least `n` events: an event is readable once every
/// transaction that started writing before it has ended, anywhere on the database cluster.
async fn feed_until(app: &TestApp, token: &str, query: &str, n: usize) -> Value {
    for _ in 0..600 {
        let (status, page) = feed(app, token, query).await;
        assert_eq!(status, 200, "{page}");
        if page["data"].as_array().unwrap().len() >= n {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{query} never showed {n} events");
}

#[tokio::test]
async fn the_feed_shows_changes_in_commit_order_and_pages_by_cursor() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let ada = app
        .create_user(
            &admin,
            json!({"username": "ada", "password": "correct-horse-9"}),
        )
        .await;
    let ada_id = ada["id"].as_str().unwrap().to_owned();
    credit(&app, &admin, &ada_id, 700).await;

    let page = feed_until(&app, &admin, &format!("?subject={ada_id}"), 2).await;
    let types = types_of(&page);
    assert_eq!(types, vec!["user.created", "wallet.credited"], "{page}");
    let created = &page["data"][0];
    assert_eq!(created["subject_id"], ada_id.as_str());
    assert_eq!(created["version"], 1);
    assert!(created["cursor"].as_str().is_some());
    assert!(created["id"].as_str().is_some());
    assert!(created["actor_id"].as_str().is_some());
    let credited = &page["data"][1]["payload"];
    assert_eq!(credited["amount"], 700);
    assert_eq!(credited["balance_after"], 700);
    assert_eq!(credited["currency"], "usd");

    // The whole feed: the bootstrap superuser, Ada, her credit.
    let whole = feed_until(&app, &admin, "?limit=1000", 3).await;
    assert_eq!(
        types_of(&whole),
        vec!["user.created", "user.created", "wallet.credited"],
        "{whole}"
    );
    // Nothing after the last cursor; the cursor stays.
    let next = whole["next_cursor"].as_str().unwrap();
    let (_, empty) = feed(&app, &admin, &format!("?after={next}")).await;
    assert_eq!(empty["data"], json!([]));
    assert_eq!(empty["next_cursor"], next);
    // Paging one by one from the start gives the same events in the same order.
    let mut cursor: Option<String> = None;
    let mut paged = Vec::new();
    loop {
        let query = match &cursor {
            Some(c) => format!("?limit=1&after={c}"),
            None => "?limit=1".to_owned(),
        };
        let (_, page) = feed(&app, &admin, &query).await;
        let events = page["data"].as_array().unwrap().clone();
        if events.is_empty() {
            break;
        }
        paged.extend(events);
        cursor = Some(page["next_cursor"].as_str().unwrap().to_owned());
    }
    assert_eq!(paged, whole["data"].as_array().unwrap().clone());

    // Type filter.
    let (_, only) = feed(&app, &admin, "?types=wallet.credited&limit=1000").await;
    assert_eq!(types_of(&only), vec!["wallet.credited"]);

    // Bad input names the parameter; nothing else is accepted.
    for query in [
        "?after=nonsense",
        "?types=user.nonsense",
        "?limit=0",
        "?limit=100000",
        "?wait=31",
    ] {
        let (status, body) = feed(&app, &admin, query).await;
        assert_eq!(status, 422, "{query}: {body}");
    }
    // The catalogue of types.
    let (status, catalogue) = send(app.get("/api/v1/events/types").bearer_auth(&admin)).await;
    assert_eq!(status, 200);
    assert!(catalogue
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["type"] == "balance.below_threshold"));

    // Users who are not administrators do not read the feed.
    let (_, user_token) = app.user_with_token("bob").await;
    let (status, _) = feed(&app, &user_token, "").await;
    assert_eq!(status, 403);
    let (status, _) = send(app.get("/api/v1/events")).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_waiting_read_returns_when_an_event_commits() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    // Once the bootstrap superuser's event is readable, the feed is settled.
    let start = feed_until(&app, &admin, "?limit=1000", 1).await;
    let cursor = start["next_cursor"].as_str().unwrap().to_owned();
    let waiting = {
        let client = app.client.clone();
        let url = app.url(&format!("/api/v1/events?after={cursor}&wait=20"));
        let token = admin.clone();
        tokio::spawn(async move {
            let r = client.get(url).bearer_auth(token).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.create_user(
        &admin,
        json!({"username": "late", "password": "correct-horse-9"}),
    )
    .await;
    let (status, page) = waiting.await.unwrap();
    assert_eq!(status, 200, "{page}");
    assert_eq!(types_of(&page), vec!["user.created"]);
    assert_eq!(
        page["data"][0]["payload"]["changes"]["username"]["after"],
        "late"
    );
}

#[tokio::test]
async fn balance_thresholds_are_set_by_administrators_and_fire_on_crossing() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let ada = app
        .create_user(
            &admin,
            json!({"username": "ada", "password": "correct-horse-9"}),
        )
        .await;
    let id = ada["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/users/{id}/balance-thresholds");
    let (status, body) = send(app.get(&path).bearer_auth(&admin)).await;
    assert_eq!((status, body), (200, json!({"thresholds": {}})));
    let (status, body) = send(
        app.put(&path)
            .bearer_auth(&admin)
            .json(&json!({"thresholds": {"usd": 1000}})),
    )
    .await;
    assert_eq!((status, body), (200, json!({"thresholds": {"usd": 1000}})));
    // Bad input changes nothing.
    for bad in [
        json!({"thresholds": {"xyz": 5}}),
        json!({"thresholds": {"usd": 10_i64.pow(16)}}),
        json!({"thresholds": "usd"}),
    ] {
        let (status, body) = send(app.put(&path).bearer_auth(&admin).json(&bad)).await;
        assert_eq!(status, 422, "{bad}: {body}");
    }
    let (_, body) = send(app.get(&path).bearer_auth(&admin)).await;
    assert_eq!(body, json!({"thresholds": {"usd": 1000}}));
    // The user reads but does not change them.
    let ada_token = app.token("ada", "correct-horse-9").await;
    let (status, _) = send(
        app.get("/api/v1/users/ada/balance-thresholds")
            .bearer_auth(&ada_token),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = send(
        app.put("/api/v1/users/ada/balance-thresholds")
            .bearer_auth(&ada_token)
            .json(&json!({"thresholds": {}})),
    )
    .await;
    assert_eq!(status, 403);

    credit(&app, &admin, &id, 1500).await;
    credit(&app, &admin, &id, -600).await; // 900: crosses 1000
    credit(&app, &admin, &id, -100).await; // 800: no new crossing
                                           // Once the last debit is readable, so is every crossing before it.
    feed_until(
        &app,
        &admin,
        &format!("?types=wallet.debited&subject={id}"),
        2,
    )
    .await;
    let (_, page) = feed(
        &app,
        &admin,
        &format!("?types=balance.below_threshold&subject={id}"),
    )
    .await;
    let crossings = page["data"].as_array().unwrap();
    assert_eq!(crossings.len(), 1, "{page}");
    assert_eq!(crossings[0]["payload"]["threshold"], 1000);
    assert_eq!(crossings[0]["payload"]["balance"], 900);
}

#[tokio::test]
async fn webhooks_deliver_signed_events_retry_rotate_and_redeliver() {
    let inbox = Inbox::default();
    let url = receiver(inbox.clone());
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;

    // Registration answers with the secret once.
    let (status, created) = send(
        app.post("/api/v1/webhooks")
            .bearer_auth(&admin)
            .json(&json!({
                "url": url,
                "description": "billing",
                "event_types": ["user.created", "wallet.credited"],
            })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let endpoint = created["id"].as_str().unwrap().to_owned();
    let (status, shown) = send(
        app.get(&format!("/api/v1/webhooks/{endpoint}"))
            .bearer_auth(&admin),
    )
    .await;
    assert_eq!(status, 200);
    assert!(shown.get("secret").is_none(), "{shown}");
    assert!(!shown.to_string().contains(&secret));
    let (_, list) = send(app.get("/api/v1/webhooks").bearer_auth(&admin)).await;
    assert!(!list.to_string().contains(&secret));

    // The first two attempts fail; the third is delivered.
    *inbox.fail_first.lock().unwrap() = 2;
    let ada = app
        .create_user(
            &admin,
            json!({"username": "ada", "password": "correct-horse-9"}),
        )
        .await;
    inbox.wait_for(3).await;
    let ids: Vec<String> = (0..3)
        .map(|i| inbox.get(i).0["webhook-id"].to_str().unwrap().to_owned())
        .collect();
    assert!(
        ids.iter().all(|id| id == &ids[0]),
        "one event, one id: {ids:?}"
    );
    let (headers, body) = inbox.get(2);
    assert!(verify(&secret, &headers, &body));
    let json: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["type"], "user.created");
    assert_eq!(json["data"]["subject_id"], ada["id"]);
    assert_eq!(json["data"]["id"].as_str().unwrap(), ids[0]);

    // The administrator sees the delivery and its attempts.
    let mut delivered = Value::Null;
    for _ in 0..200 {
        let (_, deliveries) = send(
            app.get(&format!("/api/v1/webhooks/{endpoint}/deliveries"))
                .bearer_auth(&admin),
        )
        .await;
        if deliveries["data"][0]["status"] == "delivered" {
            delivered = deliveries["data"][0].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(delivered["status"], "delivered", "{delivered}");
    assert_eq!(delivered["attempts"], 3);
    assert_eq!(delivered["event_id"].as_str().unwrap(), ids[0]);
    let delivery = delivered["id"].as_str().unwrap();
    let (status, detail) = send(
        app.get(&format!(
            "/api/v1/webhooks/{endpoint}/deliveries/{delivery}"
        ))
        .bearer_auth(&admin),
    )
    .await;
    assert_eq!(status, 200, "{detail}");
    let codes: Vec<Value> = detail["attempts_made"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].clone())
        .collect();
    assert_eq!(codes, vec![json!(500), json!(500), json!(204)]);

    // Rotation: the new secret is shown once; during the overlap both sign.
    let (status, rotated) = send(
        app.post(&format!("/api/v1/webhooks/{endpoint}/secret"))
            .bearer_auth(&admin)
            .json(&json!({"overlap_secs": 3600})),
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    credit(&app, &admin, ada["id"].as_str().unwrap(), 250).await;
    inbox.wait_for(4).await;
    let (headers, body) = inbox.get(3);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["type"],
        "wallet.credited"
    );
    assert!(verify(&new_secret, &headers, &body));
    assert!(verify(&secret, &headers, &body));

    // Redelivery of the first event: the same webhook-id again.
    let (status, queued) = send(
        app.post(&format!("/api/v1/webhooks/{endpoint}/redeliver"))
            .bearer_auth(&admin)
            .json(&json!({"event_id": ids[0]})),
    )
    .await;
    assert_eq!((status, queued["queued"].clone()), (202, json!(1)));
    inbox.wait_for(5).await;
    assert_eq!(inbox.get(4).0["webhook-id"].to_str().unwrap(), ids[0]);
    // An event type the endpoint does not take is not sent: the deletion commits before
    // Bob's creation, and the next delivery is Bob's.
    let (status, _) = send(
        app.delete(&format!("/api/v1/users/{}", ada["id"].as_str().unwrap()))
            .bearer_auth(&admin),
    )
    .await;
    assert!(status == 200 || status == 204, "{status}");
    let bob = app
        .create_user(
            &admin,
            json!({"username": "bob", "password": "correct-horse-9"}),
        )
        .await;
    inbox.wait_for(6).await;
    let next: Value = serde_json::from_slice(&inbox.get(5).1).unwrap();
    assert_eq!(next["type"], "user.created");
    assert_eq!(next["data"]["subject_id"], bob["id"]);
}

#[tokio::test]
async fn webhook_management_validates_and_is_for_administrators() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    for (bad, field) in [
        (json!({"url": "ftp://example.com/x"}), "url"),
        (json!({"url": "https://user:pw@example.com/x"}), "url"),
        (json!({"url": "not a url"}), "url"),
        (
            json!({"url": format!("https://example.com/{}", "a".repeat(3000))}),
            "url",
        ),
        (
            json!({"url": "https://example.com/x", "event_types": ["user.nonsense"]}),
            "event_types",
        ),
        (
            json!({"url": "https://example.com/x", "description": "d".repeat(501)}),
            "description",
        ),
        (json!({"url": "https://example.com/x", "extra": 1}), "extra"),
    ] {
        let (status, body) =
            send(app.post("/api/v1/webhooks").bearer_auth(&admin).json(&bad)).await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert!(body.to_string().contains(field), "{bad}: {body}");
    }
    let (_, list) = send(app.get("/api/v1/webhooks").bearer_auth(&admin)).await;
    assert_eq!(list, json!([]), "{list}");

    let missing = uuid::Uuid::now_v7();
    for (status, _) in [
        send(
            app.get(&format!("/api/v1/webhooks/{missing}"))
                .bearer_auth(&admin),
        )
        .await,
        send(
            app.delete(&format!("/api/v1/webhooks/{missing}"))
                .bearer_auth(&admin),
        )
        .await,
        send(
            app.post(&format!("/api/v1/webhooks/{missing}/redeliver"))
                .bearer_auth(&admin)
                .json(&json!({"event_id": missing})),
        )
        .await,
    ] {
        assert_eq!(status, 404);
    }

    let (_, token) = app.user_with_token("eve").await;
    let (status, _) = send(
        app.post("/api/v1/webhooks")
            .bearer_auth(&token)
            .json(&json!({"url": "https://example.com/x"})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = send(app.get("/api/v1/webhooks").bearer_auth(&token)).await;
    assert_eq!(status, 403);
}
