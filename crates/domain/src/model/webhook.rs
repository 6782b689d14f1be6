//! Webhook endpoints, their deliveries and the rules deliveries follow: which URLs may receive
//! events, when a failed delivery is tried again, when an endpoint is given up on.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use super::event::{Event, EventType};
use crate::error::ValidationError;

/// Longest endpoint URL.
pub const MAX_URL_LEN: usize = 2048;
/// Longest endpoint description.
pub const MAX_DESCRIPTION_LEN: usize = 500;

/// A signing secret as stored: sealed with the server's key, so the database alone cannot sign.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret(pub Vec<u8>);

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealedSecret(..)")
    }
}

/// Which URLs may receive deliveries, beyond public `https` ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UrlPolicy {
    /// Plain `http` URLs (for a receiver on a private network, or tests).
    pub allow_http: bool,
    /// Hosts that are, or resolve to, loopback, private, link-local or other non-public
    /// addresses.
    pub allow_private_addresses: bool,
}

/// An endpoint URL that passed [`WebhookUrl::parse`]: `https` (or `http` when allowed), a
/// host, no credentials, no fragment, and — when the host is a literal address — a public one
/// unless allowed. Host names are checked again when they are resolved, at every delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    pub fn parse(raw: &str, policy: UrlPolicy) -> Result<Self, ValidationError> {
        let bad = |msg: &'static str| ValidationError::new("url", msg);
        if raw.len() > MAX_URL_LEN {
            return Err(bad("must be at most 2048 characters"));
        }
        if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad("must not contain spaces or control characters"));
        }
        let (scheme, rest) = raw
            .split_once("://")
            .ok_or_else(|| bad("must be an absolute https URL"))?;
        match scheme.to_ascii_lowercase().as_str() {
            "https" => {}
            "http" if policy.allow_http => {}
            "http" => return Err(bad("must use https")),
            _ => return Err(bad("must be an absolute https URL")),
        }
        if rest.contains('#') {
            return Err(bad("must not have a fragment"));
        }
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        if authority.contains('@') {
            return Err(bad("must not carry credentials"));
        }
        let host = host_of(authority).ok_or_else(|| bad("must name a host"))?;
        if let Some(ip) = literal_ip(host) {
            if !policy.allow_private_addresses && !is_public(ip) {
                return Err(bad(
                    "must not point to a private, loopback or reserved address",
                ));
            }
        } else if !is_host_name(host) {
            return Err(bad("must name a valid host"));
        } else if !policy.allow_private_addresses && is_local_name(host) {
            return Err(bad(
                "must not point to a private, loopback or reserved address",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The host of an authority (`host`, `host:port`, `[v6]`, `[v6]:port`); `None` when empty or
/// the port is not a number.
fn host_of(authority: &str) -> Option<&str> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        // Nothing but a port may follow the bracketed address.
        if !after.is_empty() && !after.starts_with(':') {
            return None;
        }
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || port.parse::<u16>().is_err() {
            return None;
        }
    }
    (!host.is_empty()).then_some(host)
}

fn literal_ip(host: &str) -> Option<IpAddr> {
    host.parse::<IpAddr>().ok()
}

/// A DNS name. Its last label is not numeric: URL parsers read `2130706433`, `127.1` or
/// `0x7f.1` as IPv4 addresses, which the check above would not have seen.
fn is_host_name(host: &str) -> bool {
    let last = host.rsplit('.').next().unwrap_or_default();
    let numeric = last.chars().all(|c| c.is_ascii_digit())
        || (last.len() > 2
            && last[..2].eq_ignore_ascii_case("0x")
            && last[2..].chars().all(|c| c.is_ascii_hexdigit()));
    host.len() <= 253
        && !numeric
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Names that always mean this machine or the local network.
fn is_local_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost") || host.ends_with(".local")
}

/// Whether a delivery may connect to `ip` when private addresses are not allowed: a globally
/// reachable unicast address. Everything the IANA special-purpose registries mark as not
/// globally reachable is refused, as are IPv4 addresses embedded in IPv6 forms (mapped,
/// compatible, NAT64, 6to4) whose IPv4 part is refused. (`IpAddr::is_global` is not stable
/// Rust, and no maintained crate offers it.)
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0                                   // "this network"
        || ip.is_private()                     // 10/8, 172.16/12, 192.168/16
        || ip.is_loopback()                    // 127/8
        || ip.is_link_local()                  // 169.254/16, cloud metadata
        || (a == 100 && (b & 0xc0) == 64)      // 100.64/10 shared (CGNAT)
        || (a == 192 && b == 0 && c == 0)      // 192.0.0/24 protocol assignments
        || ip.is_documentation()               // 192.0.2/24, 198.51.100/24, 203.0.113/24
        || (a == 192 && b == 88 && c == 99)    // 6to4 relay anycast
        || (a == 198 && (b & 0xfe) == 18)      // 198.18/15 benchmarking
        || a >= 224) // multicast 224/4, reserved 240/4, broadcast
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    // 64:ff9b:1::/48, local-use NAT64: a local translator decides where it goes.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        return false;
    }
    if let Some(v4) = embedded_v4(ip) {
        return is_public_v4(v4);
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || (s[0] & 0xfe00) == 0xfc00           // fc00::/7 unique local
        || (s[0] & 0xffc0) == 0xfe80           // fe80::/10 link-local
        || (s[0] & 0xffc0) == 0xfec0           // fec0::/10 site-local (deprecated)
        || (s[0] & 0xff00) == 0xff00           // multicast
        || (s[0] == 0x2001 && s[1] == 0x0db8)  // documentation
        || (s[0] == 0x3fff && s[1] < 0x1000)   // 3fff::/20 documentation
        || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0) // 100::/64 discard
        || (s[0] == 0x2001 && s[1] < 0x0200)   // 2001::/23 IETF protocol assignments
        || (s[0] & 0xe000) != 0x2000) // outside 2000::/3, the global unicast space
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`),
/// well-known-prefix NAT64 (`64:ff9b::/96`) or 6to4 (`2002::/16`) address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let o = ip.octets();
    let last = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    if s[..5] == [0, 0, 0, 0, 0] && (s[5] == 0xffff || (s[5] == 0 && !(s[6] == 0 && s[7] <= 1))) {
        return Some(last);
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return Some(last);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    None
}

/// A registered receiver of events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub id: Uuid,
    pub url: String,
    pub description: String,
    /// The types delivered; empty means every type.
    pub event_types: Vec<EventType>,
    pub enabled: bool,
    /// Why the endpoint was disabled by Tessera (not set when an administrator disabled it).
    pub disabled_reason: Option<String>,
    /// Since when every delivery has failed; `None` after a success.
    pub failing_since: Option<OffsetDateTime>,
    /// Until when the previous signing secret still signs, after a rotation.
    pub previous_secret_expires_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl WebhookEndpoint {
    pub fn wants(&self, event_type: EventType) -> bool {
        self.event_types.is_empty() || self.event_types.contains(&event_type)
    }
}

/// An endpoint to store.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    pub endpoint: WebhookEndpoint,
    pub secret: SealedSecret,
}

/// A change of an endpoint's settings; `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointChanges {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Vec<EventType>>,
    /// Enabling clears `failing_since` and `disabled_reason`.
    pub enabled: Option<bool>,
    pub now: Option<OffsetDateTime>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its next attempt (or being attempted).
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Every attempt in the retry window failed.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// One event on its way to one endpoint. The event id is the delivery's idempotency key: it is
/// the `webhook-id` of every attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub event_type: EventType,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: Option<OffsetDateTime>,
    pub first_attempt_at: Option<OffsetDateTime>,
    pub last_attempt_at: Option<OffsetDateTime>,
    pub delivered_at: Option<OffsetDateTime>,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: OffsetDateTime,
}

/// One try of a delivery, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub id: Uuid,
    pub delivery_id: Uuid,
    pub attempted_at: OffsetDateTime,
    pub duration_ms: u32,
    pub status_code: Option<u16>,
    /// Why it failed, when it did without a response (or with a non-2xx one).
    pub error: Option<String>,
    /// The start of the response body, for diagnosis (at most 1 KiB).
    pub response_excerpt: Option<String>,
}

/// Which deliveries of an endpoint to list: newest first, after `before` (the id of the last
/// delivery of the previous page) when given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryQuery {
    pub endpoint_id: Uuid,
    pub status: Option<DeliveryStatus>,
    pub event_id: Option<Uuid>,
    pub before: Option<Uuid>,
    pub limit: u32,
}

/// What to deliver again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redelivery {
    /// One event, whether or not it was delivered before.
    Event(Uuid),
    /// Every event the endpoint subscribes to since this time (oldest first, at most `limit`).
    Since(OffsetDateTime),
}

/// What a redelivery request queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redelivered {
    pub queued: u64,
    /// Where to continue (`Since` this time) when the limit cut the request short.
    pub continue_from: Option<OffsetDateTime>,
}

/// A delivery claimed by one worker for one attempt. The claim is a lease: a worker that dies
/// loses it when `lease_until` passes and another worker tries again — with the same
/// `webhook-id`, so receivers can tell.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub delivery_id: Uuid,
    /// Proves the claim when the attempt is recorded; a stale worker's record is ignored.
    pub claim: Uuid,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub first_attempt_at: OffsetDateTime,
    pub endpoint_id: Uuid,
    pub url: String,
    pub failing_since: Option<OffsetDateTime>,
    /// The current secret first, then the previous one while it still signs.
    pub secrets: Vec<SealedSecret>,
    pub event: Event,
}

/// A signed request to send.
#[derive(Debug, Clone)]
pub struct OutgoingWebhook<'a> {
    pub url: &'a str,
    /// `webhook-id`: the event id.
    pub message_id: String,
    /// `webhook-timestamp`.
    pub timestamp: OffsetDateTime,
    pub event: &'a Event,
    /// Signing secrets (`whsec_…`); each adds a `v1,` signature.
    pub secrets: Vec<String>,
}

/// How an attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendOutcome {
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: u32,
    pub response_excerpt: Option<String>,
}

impl SendOutcome {
    pub fn succeeded(&self) -> bool {
        matches!(self.status_code, Some(200..=299))
    }
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextStep {
    Delivered,
    RetryAt(OffsetDateTime),
    GiveUp,
}

/// An attempt to record, with what follows from it.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub delivery_id: Uuid,
    pub claim: Uuid,
    pub endpoint_id: Uuid,
    pub attempt: Attempt,
    pub next: NextStep,
    /// Set when this failure disables the endpoint: the `webhook_endpoint.disabled` event to
    /// write with it — only if the endpoint is still enabled and still failing since
    /// `failing_since` or earlier (a success or another worker's disabling in the meantime
    /// wins), so the event is written once.
    pub disable: Option<Event>,
    /// The endpoint's `failing_since` the decision to disable was based on (from the claim).
    pub failing_since: Option<OffsetDateTime>,
}

/// What recording an attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Recorded {
    /// The claim was still current, so the attempt and its consequence were stored.
    pub applied: bool,
    /// This record disabled the endpoint (and wrote its event).
    pub disabled: bool,
}

/// When failed deliveries are tried again and when Tessera gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait after the first failure; each further failure multiplies it by `factor`.
    pub initial: Duration,
    pub factor: u32,
    /// The longest wait between two attempts.
    pub max_interval: Duration,
    /// How long after its first attempt a delivery keeps being tried. The last attempt is
    /// made at the end of the window.
    pub window: Duration,
    /// An endpoint whose deliveries have all failed for this long is disabled.
    pub disable_after: Duration,
    /// How long a claimed attempt may take before another worker may take it over.
    pub lease: Duration,
}

impl Default for RetryPolicy {
    /// 5 s, then ×4 up to 10 h between attempts, for 26 h (about 9 attempts: 5 s, 20 s, 80 s,
    /// 5 min, 21 min, 85 min, 5.7 h, 10 h, then the end of the window); an endpoint failing
    /// for 26 h is disabled.
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(5),
            factor: 4,
            max_interval: Duration::from_secs(10 * 3600),
            window: Duration::from_secs(26 * 3600),
            disable_after: Duration::from_secs(26 * 3600),
            lease: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// What follows a failed attempt number `attempt` (1-based) of a delivery first attempted at
    /// `first`. The wait is exponential with ±20 % jitter, derived from the delivery id and the
    /// attempt number, so retries of many deliveries that failed together spread out; the last
    /// attempt falls at the end of the window.
    pub fn after_failure(
        &self,
        delivery_id: Uuid,
        attempt: u32,
        first: OffsetDateTime,
        now: OffsetDateTime,
    ) -> NextStep {
        let deadline = first + self.window;
        if now >= deadline {
            return NextStep::GiveUp;
        }
        let exponent = attempt.saturating_sub(1).min(40);
        let growth = f64::from(self.factor).powi(i32::try_from(exponent).unwrap_or(40));
        let base = (self.initial.as_secs_f64() * growth).min(self.max_interval.as_secs_f64());
        let jitter = 0.8 + 0.4 * unit_fraction(delivery_id, attempt);
        let wait = time::Duration::seconds_f64((base * jitter).max(0.001));
        NextStep::RetryAt((now + wait).min(deadline))
    }

    /// Whether a failure now disables an endpoint failing since `failing_since` (`None`: this
    /// is the first failure).
    pub fn disables(&self, failing_since: Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
        failing_since.is_some_and(|since| now - since >= self.disable_after)
    }
}

/// A number in [0, 1) from a delivery id and an attempt number (FNV-1a).
fn unit_fraction(id: Uuid, attempt: u32) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.as_bytes().iter().chain(attempt.to_le_bytes().iter()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Queue figures for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeliveryStats {
    /// Events written since the store was created.
    pub events_written: u64,
    /// Deliveries waiting for an attempt.
    pub pending: u64,
    /// Age of the oldest pending delivery, in seconds.
    pub oldest_pending_secs: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<WebhookUrl, ValidationError> {
        WebhookUrl::parse(raw, UrlPolicy::default())
    }

    #[test]
    fn urls_must_be_public_https() {
        for ok in [
            "https://example.com/hook",
            "https://hooks.example.com:8443/a?b=c",
            "https://93.184.216.34/x",
            "https://[2606:2800:220:1:248:1893:25c8:1946]/x",
        ] {
            assert!(parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://example.com/",
            "ftp://example.com/",
            "example.com",
            "https://",
            "https://user:pw@example.com/",
            "https://example.com/#frag",
            "https://example.com:99999/",
            "https://localhost/",
            "https://printer.local/",
            "https://127.0.0.1/",
            "https://10.1.2.3/",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/",
            "https://[::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://[64:ff9b::a9fe:a9fe]/",
            "https://[64:ff9b:1:a00:0:100:808:808]/",
            "https://[2002:a00:1::]/",
            "https://0.0.0.0/",
            "https://exa mple.com/",
            "https://-bad-.com/",
            "https://2130706433/",
            "https://127.1/",
            "https://0x7f.1/",
            "https://0177.0.0.1/",
            "https://foo.123/",
            "https://[2606:4700::1]junk/",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(parse(&long).is_err());
    }

    #[test]
    fn configuration_can_allow_loopback_http() {
        let policy = UrlPolicy {
            allow_http: true,
            allow_private_addresses: true,
        };
        assert!(WebhookUrl::parse("http://127.0.0.1:9000/hook", policy).is_ok());
        assert!(WebhookUrl::parse("http://localhost:9000/hook", policy).is_ok());
        let http_only = UrlPolicy {
            allow_http: true,
            allow_private_addresses: false,
        };
        assert!(WebhookUrl::parse("http://127.0.0.1:9000/hook", http_only).is_err());
    }

    #[test]
    fn retries_back_off_within_the_window_then_give_up() {
        let policy = RetryPolicy::default();
        let id = Uuid::from_u128(99);
        let first = OffsetDateTime::UNIX_EPOCH;
        let mut now = first;
        let mut attempts = 1;
        let mut waits = Vec::new();
        loop {
            match policy.after_failure(id, attempts, first, now) {
                NextStep::RetryAt(at) => {
                    assert!(at > now);
                    waits.push((at - now).as_seconds_f64());
                    now = at;
                    attempts += 1;
                }
                NextStep::GiveUp => break,
                NextStep::Delivered => unreachable!(),
            }
            assert!(attempts < 100);
        }
        // Retried for at least a day, never waiting past the maximum interval (+ jitter).
        assert!((now - first).whole_hours() >= 24);
        assert_eq!(now, first + policy.window);
        assert!(waits.iter().all(|w| *w <= 10.0 * 3600.0 * 1.2));
        assert!(waits[0] >= 4.0 && waits[0] <= 6.0, "{waits:?}");
        assert!(waits[1] > waits[0]);
        assert!((5..=12).contains(&attempts), "{attempts}");
    }

    #[test]
    fn jitter_spreads_deliveries_that_failed_together() {
        let policy = RetryPolicy::default();
        let first = OffsetDateTime::UNIX_EPOCH;
        let times: std::collections::HashSet<i128> = (0..50u128)
            .filter_map(
                |i| match policy.after_failure(Uuid::from_u128(i), 3, first, first) {
                    NextStep::RetryAt(at) => Some(at.unix_timestamp_nanos()),
                    _ => None,
                },
            )
            .collect();
        assert!(times.len() > 40);
    }

    #[test]
    fn an_endpoint_failing_longer_than_the_window_is_disabled() {
        let policy = RetryPolicy::default();
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(3);
        assert!(!policy.disables(None, now));
        assert!(!policy.disables(Some(now - time::Duration::hours(1)), now));
        assert!(policy.disables(Some(now - time::Duration::hours(27)), now));
    }
}
