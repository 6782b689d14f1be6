//! Tessera's webhook sender: the [`WebhookSender`] port over HTTP.
//!
//! - The body is `{"type", "timestamp", "data"}` as Standard Webhooks recommends, `data` being
//!   the event in the same JSON form the event feed uses.
//! - The headers are `webhook-id` (the event id: receivers deduplicate on it),
//!   `webhook-timestamp` and `webhook-signature`, signed by the `standardwebhooks` crate — the
//!   specification maintainers' own implementation — once per secret, space-separated, so a
//!   receiver holding either secret verifies during a rotation.
//! - Destinations are checked where it matters: on the addresses the host resolves to, at
//!   connection time (a resolver that drops non-public addresses unless allowed), and on
//!   literal addresses before sending. A name that resolves to private addresses between
//!   registration and delivery (DNS rebinding) is refused. No proxy is used, so the check sees
//!   the real destination.
//! - No redirect is followed (a 3xx is a failed attempt), the whole exchange has a deadline,
//!   and at most `max_response_bytes` of the response are read.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde::Serialize;
use tessera_domain::model::{is_public, Event, OutgoingWebhook, SendOutcome, UrlPolicy};
use tessera_domain::ports::WebhookSender;
use time::format_description::well_known::Rfc3339;

/// How much of a response body an attempt records.
const EXCERPT_BYTES: usize = 1024;

/// Limits of one delivery attempt.
#[derive(Debug, Clone)]
pub struct SenderSettings {
    pub url_policy: UrlPolicy,
    pub connect_timeout: Duration,
    /// The whole attempt: connecting, sending, and reading the response.
    pub timeout: Duration,
    /// Response bytes read at most; the rest is not waited for.
    pub max_response_bytes: usize,
    pub user_agent: String,
}

impl Default for SenderSettings {
    fn default() -> Self {
        Self {
            url_policy: UrlPolicy::default(),
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(15),
            max_response_bytes: 64 * 1024,
            user_agent: concat!("Tessera-Webhooks/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// The webhook body.
#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    event_type: &'static str,
    timestamp: String,
    data: &'a Event,
}

/// The exact bytes sent for an event at a timestamp (also what the signature covers).
pub fn body(event: &Event, timestamp: time::OffsetDateTime) -> Result<String, String> {
    serde_json::to_string(&Envelope {
        event_type: event.event_type.as_str(),
        timestamp: timestamp.format(&Rfc3339).map_err(|e| e.to_string())?,
        data: event,
    })
    .map_err(|e| e.to_string())
}

/// The `webhook-signature` header: one `v1,` signature per secret.
pub fn signature(
    secrets: &[String],
    message_id: &str,
    timestamp: i64,
    body: &str,
) -> Result<String, String> {
    let mut out = Vec::with_capacity(secrets.len());
    for secret in secrets {
        let signer = standardwebhooks::Webhook::new(secret).map_err(|e| e.to_string())?;
        out.push(
            signer
                .sign(message_id, timestamp, body.as_bytes())
                .map_err(|e| e.to_string())?,
        );
    }
    Ok(out.join(" "))
}

/// Resolves with the system resolver, then keeps only the addresses the policy allows.
struct CheckedResolver {
    policy: UrlPolicy,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.policy.allow_private_addresses;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| allow_private || is_public(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(format!("{host} resolves to no address webhooks may reach").into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// Sends webhooks with one shared connection pool.
#[derive(Clone)]
pub struct HttpSender {
    client: reqwest::Client,
    settings: Arc<SenderSettings>,
}

impl HttpSender {
    pub fn new(settings: SenderSettings) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.timeout)
            .user_agent(settings.user_agent.clone())
            .dns_resolver(Arc::new(CheckedResolver {
                policy: settings.url_policy,
            }))
            .build()
            .map_err(|e| format!("cannot build the webhook HTTP client: {e}"))?;
        Ok(Self {
            client,
            settings: Arc::new(settings),
        })
    }

    /// Refuses a literal destination address the policy does not allow (names are checked by
    /// the resolver), and a scheme it does not allow.
    fn refusal(&self, url: &reqwest::Url) -> Option<String> {
        let policy = self.settings.url_policy;
        match url.scheme() {
            "https" => {}
            "http" if policy.allow_http => {}
            other => return Some(format!("the scheme {other} is not allowed")),
        }
        let ip = match url.host() {
            Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
            Some(url::Host::Domain(_)) => return None,
            None => return Some("the URL has no host".into()),
        };
        (!policy.allow_private_addresses && !is_public(ip))
            .then(|| format!("{ip} is not an address webhooks may reach"))
    }

    async fn attempt(&self, request: &OutgoingWebhook<'_>) -> Result<(u16, String), String> {
        let url = reqwest::Url::parse(request.url).map_err(|e| format!("bad URL: {e}"))?;
        if let Some(refused) = self.refusal(&url) {
            return Err(format!("refused: {refused}"));
        }
        let body = body(request.event, request.timestamp)?;
        let timestamp = request.timestamp.unix_timestamp();
        let signature = signature(&request.secrets, &request.message_id, timestamp, &body)?;
        let mut response = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &request.message_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(describe)?;
        let status = response.status().as_u16();
        let mut read = Vec::new();
        // Read what the limit allows; a longer (or endless) body is simply not waited for.
        while read.len() < self.settings.max_response_bytes {
            match response.chunk().await {
                Ok(Some(chunk)) => read.extend_from_slice(&chunk),
                Ok(None) => break,
                // The status is known; a body cut short by the deadline does not change it.
                Err(_) => break,
            }
        }
        read.truncate(EXCERPT_BYTES);
        Ok((status, String::from_utf8_lossy(&read).into_owned()))
    }
}

/// A transport failure in words an operator can act on (no secrets: the URL is theirs).
fn describe(err: reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else if err.is_redirect() {
        "redirected"
    } else {
        "request failed"
    };
    let mut detail = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        detail = format!("{detail}: {s}");
        source = s.source();
    }
    format!("{kind}: {detail}")
}

#[async_trait]
impl WebhookSender for HttpSender {
    async fn send<'a>(&self, request: OutgoingWebhook<'a>) -> SendOutcome {
        let started = Instant::now();
        let result = self.attempt(&request).await;
        let duration_ms = u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX);
        match result {
            Ok((status, excerpt)) => SendOutcome {
                status_code: Some(status),
                error: None,
                duration_ms,
                response_excerpt: (!excerpt.is_empty()).then_some(excerpt),
            },
            Err(error) => {
                tracing::debug!(url = request.url, %error, "webhook attempt failed");
                SendOutcome {
                    status_code: None,
                    error: Some(error),
                    duration_ms,
                    response_excerpt: None,
                }
            }
        }
    }
}
