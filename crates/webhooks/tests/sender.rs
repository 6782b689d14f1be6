#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The sender against a real HTTP receiver on loopback: signatures the `standardwebhooks`
//! crate verifies (with either secret during a rotation), the body's shape, and the refusals —
//! private addresses, names resolving to them, redirects, slow and endless responses.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use tessera_domain::model::{
    ChangesPayload, Event, EventPayload, EventType, OutgoingWebhook, SendOutcome, UrlPolicy,
};
use tessera_domain::ports::WebhookSender;
use tessera_webhooks::{HttpSender, SenderSettings};
use uuid::Uuid;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OLD_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// One request: its headers and body.
type Request = (Vec<(String, String)>, Vec<u8>);

/// What the receiver saw, in order.
#[derive(Default, Clone)]
struct Seen(Arc<Mutex<Vec<Request>>>);

async fn receive(req: HttpRequest, body: web::Bytes, seen: web::Data<Seen>) -> HttpResponse {
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    seen.0.lock().unwrap().push((headers, body.to_vec()));
    match req.path() {
        "/redirect" => HttpResponse::TemporaryRedirect()
            .insert_header(("location", "/ok"))
            .finish(),
        "/slow" => {
            actix_web::rt::time::sleep(Duration::from_secs(5)).await;
            HttpResponse::Ok().finish()
        }
        "/huge" => HttpResponse::Ok().body("x".repeat(8 * 1024 * 1024)),
        "/fail" => HttpResponse::ServiceUnavailable().body("down for maintenance"),
        _ => HttpResponse::NoContent().finish(),
    }
}

/// A receiver on an ephemeral loopback port; returns its port.
fn receiver(seen: Seen) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(seen.clone()))
            .default_service(web::to(receive))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    actix_web::rt::spawn(server);
    port
}

fn event() -> Event {
    Event {
        id: Uuid::now_v7(),
        event_type: EventType::UserCreated,
        occurred_at: time::OffsetDateTime::now_utc(),
        subject_id: Some(Uuid::now_v7()),
        actor_id: None,
        payload: EventPayload::Changes(ChangesPayload {
            changes: BTreeMap::new(),
        }),
    }
}

fn sender(policy: UrlPolicy, timeout: Duration) -> HttpSender {
    HttpSender::new(SenderSettings {
        url_policy: policy,
        timeout,
        connect_timeout: Duration::from_secs(2),
        ..SenderSettings::default()
    })
    .unwrap()
}

fn local() -> UrlPolicy {
    UrlPolicy {
        allow_http: true,
        allow_private_addresses: true,
    }
}

async fn send(s: &HttpSender, url: &str, e: &Event, secrets: &[&str]) -> SendOutcome {
    s.send(OutgoingWebhook {
        url,
        message_id: e.id.to_string(),
        timestamp: time::OffsetDateTime::now_utc(),
        event: e,
        secrets: secrets.iter().map(|s| (*s).to_owned()).collect(),
    })
    .await
}

fn header_map(headers: &[(String, String)]) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    for (k, v) in headers {
        map.insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    map
}

#[actix_web::test]
async fn signed_deliveries_verify_with_either_secret_of_a_rotation() {
    let seen = Seen::default();
    let port = receiver(seen.clone());
    let s = sender(local(), Duration::from_secs(5));
    let e = event();
    let outcome = send(
        &s,
        &format!("http://127.0.0.1:{port}/hook"),
        &e,
        &[SECRET, OLD_SECRET],
    )
    .await;
    assert_eq!(outcome.status_code, Some(204), "{outcome:?}");
    assert!(outcome.succeeded());

    let (headers, body) = seen.0.lock().unwrap()[0].clone();
    let map = header_map(&headers);
    assert_eq!(map["webhook-id"], e.id.to_string().as_str());
    assert_eq!(map["content-type"], "application/json");
    // Two signatures, each verified by the specification's own library.
    let signatures = map["webhook-signature"].to_str().unwrap();
    assert_eq!(signatures.split(' ').count(), 2);
    assert!(signatures.split(' ').all(|s| s.starts_with("v1,")));
    for secret in [SECRET, OLD_SECRET] {
        standardwebhooks::Webhook::new(secret)
            .unwrap()
            .verify(&body, &map)
            .expect("verifies");
    }
    // A receiver holding another secret, or a changed body, does not verify.
    let stranger = standardwebhooks::Webhook::new("whsec_dGhpcyBpcyBub3QgdGhlIHNlY3JldCEhISE=");
    assert!(stranger.unwrap().verify(&body, &map).is_err());
    let mut tampered = body.clone();
    tampered[5] ^= 1;
    assert!(standardwebhooks::Webhook::new(SECRET)
        .unwrap()
        .verify(&tampered, &map)
        .is_err());

    // The body: type, timestamp and the event as the feed shows it.
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["type"], "user.created");
    assert!(json["timestamp"].as_str().is_some());
    assert_eq!(json["data"]["id"], e.id.to_string());
    assert_eq!(json["data"]["type"], "user.created");
    assert_eq!(json["data"]["version"], 1);
}

#[actix_web::test]
async fn failures_keep_the_status_and_an_excerpt() {
    let seen = Seen::default();
    let port = receiver(seen.clone());
    let s = sender(local(), Duration::from_secs(5));
    let outcome = send(
        &s,
        &format!("http://127.0.0.1:{port}/fail"),
        &event(),
        &[SECRET],
    )
    .await;
    assert_eq!(outcome.status_code, Some(503));
    assert!(!outcome.succeeded());
    assert_eq!(
        outcome.response_excerpt.as_deref(),
        Some("down for maintenance")
    );
}

#[actix_web::test]
async fn private_destinations_are_refused_by_default() {
    let seen = Seen::default();
    let port = receiver(seen.clone());
    let strict = sender(
        UrlPolicy {
            allow_http: true,
            allow_private_addresses: false,
        },
        Duration::from_secs(5),
    );
    // A literal loopback address, and a name that resolves to one.
    for url in [
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://localhost:{port}/hook"),
        format!("http://[::1]:{port}/hook"),
    ] {
        let outcome = send(&strict, &url, &event(), &[SECRET]).await;
        assert_eq!(outcome.status_code, None, "{url}: {outcome:?}");
        assert!(outcome.error.is_some(), "{url}");
    }
    // Plain http is refused unless allowed.
    let https_only = sender(UrlPolicy::default(), Duration::from_secs(5));
    let outcome = send(&https_only, "http://example.com/hook", &event(), &[SECRET]).await;
    assert!(outcome.error.unwrap().contains("scheme"));
    assert!(
        seen.0.lock().unwrap().is_empty(),
        "nothing reached the receiver"
    );
}

#[actix_web::test]
async fn redirects_are_not_followed() {
    let seen = Seen::default();
    let port = receiver(seen.clone());
    let s = sender(local(), Duration::from_secs(5));
    let outcome = send(
        &s,
        &format!("http://127.0.0.1:{port}/redirect"),
        &event(),
        &[SECRET],
    )
    .await;
    assert_eq!(outcome.status_code, Some(307));
    assert!(!outcome.succeeded());
    assert_eq!(
        seen.0.lock().unwrap().len(),
        1,
        "the target was not fetched"
    );
}

#[actix_web::test]
async fn slow_and_endless_responses_are_cut_off() {
    let seen = Seen::default();
    let port = receiver(seen.clone());
    let s = sender(local(), Duration::from_millis(500));
    let outcome = send(
        &s,
        &format!("http://127.0.0.1:{port}/slow"),
        &event(),
        &[SECRET],
    )
    .await;
    assert_eq!(outcome.status_code, None);
    assert!(outcome.error.unwrap().contains("timed out"));

    let s = HttpSender::new(SenderSettings {
        url_policy: local(),
        max_response_bytes: 4096,
        ..SenderSettings::default()
    })
    .unwrap();
    let outcome = send(
        &s,
        &format!("http://127.0.0.1:{port}/huge"),
        &event(),
        &[SECRET],
    )
    .await;
    assert_eq!(outcome.status_code, Some(200));
    assert!(outcome.response_excerpt.unwrap().len() <= 1024);
}
