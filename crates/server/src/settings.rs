//! Layered configuration: the built-in `config/default.toml`, then `config/$TESSERA_ENV.toml`,
//! then `TESSERA__SECTION__KEY` environment variables.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tessera_domain::model::{Currencies, Discount, MeteringDefaults, ResourceId};

const DEFAULTS: &str = include_str!("../../../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub auth: AuthSettings,
    pub password_hashing: PasswordHashingSettings,
    /// Currency code → scale (minor units per major unit = 10^scale).
    pub currencies: BTreeMap<String, u32>,
    pub wallets: WalletSettings,
    pub metering: MeteringSettings,
    pub bootstrap: BootstrapSettings,
    pub identity: IdentitySettings,
    pub rate_limits: RateLimitSettings,
    pub retention: RetentionSettings,
    pub webhooks: WebhookSettings,
    #[serde(default)]
    pub deposits: DepositSettings,
    pub log: LogSettings,
}

impl ServerSettings {
    /// Whether `client_ip_header` names Cloudflare's `CF-Connecting-IP` (the one header it
    /// may name).
    pub fn cf_connecting_ip(&self) -> Result<bool, SettingsError> {
        match self.client_ip_header.trim().to_ascii_lowercase().as_str() {
            "" => Ok(false),
            "cf-connecting-ip" => Ok(true),
            _ => Err(SettingsError(
                "server.client_ip_header must be empty or \"CF-Connecting-IP\"".into(),
            )),
        }
    }
}

/// Deposit addresses and deposits (`[deposits]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DepositSettings {
    /// The operator's master *public* key, as an SS58 address; every user's deposit address is
    /// soft-derived from it. Empty: users have no deposit address.
    pub master_public_key: String,
    /// The SS58 network prefix of the derived addresses (42: Bittensor).
    pub address_prefix: u16,
    /// Transfers below this many rao are recorded as ignored, not credited.
    pub minimum_rao: u64,
    /// Dollars per TAO applied when a report brings no rate; 0: every report must bring one.
    pub tao_usd_rate: f64,
    /// The currency deposits are credited in (must be one of `[currencies]`, in dollars).
    pub currency: String,
}

impl Default for DepositSettings {
    fn default() -> Self {
        Self {
            master_public_key: String::new(),
            address_prefix: 42,
            minimum_rao: 7_000_000,
            tao_usd_rate: 0.0,
            currency: "usd".to_owned(),
        }
    }
}

impl DepositSettings {
    /// The deposit configuration, checked (the master key is parsed where the adapter is
    /// built).
    pub fn config(
        &self,
        currencies: &Currencies,
    ) -> Result<tessera_domain::DepositConfig, SettingsError> {
        let rate = if self.tao_usd_rate == 0.0 {
            None
        } else {
            Some(
                tessera_domain::services::deposits::rate_micros(
                    "deposits.tao_usd_rate",
                    self.tao_usd_rate,
                )
                .map_err(|e| SettingsError(format!("{}: {}", e.field, e.reason)))?,
            )
        };
        currencies
            .parse("deposits.currency", &self.currency)
            .map_err(|_| SettingsError("deposits.currency must be one of [currencies]".into()))?;
        Ok(tessera_domain::DepositConfig {
            addresses: None,
            minimum_rao: self.minimum_rao,
            tao_usd_rate_micros: rate,
            currency: self.currency.trim().to_ascii_lowercase(),
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub workers: usize,
    pub max_body_bytes: usize,
    pub shutdown_timeout_secs: u64,
    /// How long a client may take to send a request's head (line and headers); past it: 408
    /// and the connection is closed. 0 disables the limit.
    pub client_request_timeout_ms: u64,
    /// How long a whole request body may take to arrive; past it: 408 and the connection is
    /// closed. 0 disables the limit.
    pub body_read_timeout_ms: u64,
    /// How long closing a connection may take before it is dropped.
    pub client_disconnect_timeout_ms: u64,
    /// How long an idle keep-alive connection is kept open (0: no keep-alive).
    pub keep_alive_secs: u64,
    /// Proxies in front of Tessera that append the address they saw to `X-Forwarded-For`; the
    /// client address is that many entries from the right. 0: the peer address.
    pub trusted_proxies: u8,
    /// `"CF-Connecting-IP"`: the client address is that header (Tessera reachable only through
    /// Cloudflare, as Chutes is deployed). Empty: not read.
    #[serde(default)]
    pub client_ip_header: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: SecretString,
    pub pool_size: usize,
    pub pool_wait_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    /// Connections older than this are replaced (0: never).
    pub max_connection_lifetime_secs: u64,
    /// The longest one directory statement (a listing or count) may run (0: no limit).
    pub directory_statement_timeout_ms: u64,
    pub migrate_on_start: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    pub jwt_secret: SecretString,
    pub access_token_ttl_secs: u64,
    pub session_ttl_secs: u64,
    pub password_min_length: usize,
    pub password_max_length: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PasswordHashingSettings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    pub max_concurrent: usize,
    /// A cgroup directory every hashing thread moves into (empty: none).
    pub thread_cgroup: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WalletSettings {
    pub default_currency: String,
}

/// Server-wide metering fallbacks: resource id (`*` or a UUID) → daily quota, and → discount
/// (a decimal fraction strictly between 0 and 1, written as a string).
#[derive(Debug, Clone, Deserialize)]
pub struct MeteringSettings {
    pub default_quotas: BTreeMap<String, u64>,
    #[serde(default)]
    pub default_discounts: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BootstrapSettings {
    pub admin_username: String,
    pub admin_password: SecretString,
}

#[derive(Debug, Clone, Deserialize)]
pub struct IdentitySettings {
    pub signature_window_secs: i64,
    pub rotation_window_secs: i64,
    pub fingerprint_token_ttl_secs: u64,
    pub registrations_per_ip_per_day: u64,
    pub created_accounts_per_ip_per_day: u64,
    pub all_accounts_free: bool,
    pub max_api_keys_per_user: usize,
    /// Deprecated: `true` is `server.trusted_proxies = 1` (when that is 0).
    pub trust_forwarded_for: bool,
    pub external_issuer: String,
    /// PEM public key of the trusted external issuer; empty: external tokens are refused.
    pub external_issuer_public_key: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RateLimitSettings {
    /// Tier whose rules apply to users without a tier and, per IP, to anonymous calls.
    pub default_tier: String,
    /// Calls without credentials per client address per `anonymous_window_secs`, on every
    /// route; 0: not limited (beyond the default tier's rules).
    pub anonymous_per_ip: u32,
    pub anonymous_window_secs: u32,
    /// Attempts at a secret (password, current password, fingerprint) per client address per
    /// `login_window_secs`.
    pub login_per_ip: u32,
    /// Failures per account per client address per `login_account_window_secs`.
    pub login_per_account: u32,
    /// Failures per account from everywhere per `login_account_window_secs`; past it only
    /// addresses that have not failed for the account may try.
    pub login_per_account_total: u32,
    pub login_window_secs: u32,
    pub login_account_window_secs: u32,
    /// Wallets one user may hold (soft-deleted ones included).
    pub max_wallets_per_user: usize,
    /// Managed users one manager may have.
    pub max_managed_users_per_user: u64,
}

/// Housekeeping: how long expendable data is kept (0 = until removed by hand), and how often
/// each server process prunes (0 = never; run `tessera prune` instead).
#[derive(Debug, Clone, Deserialize)]
pub struct RetentionSettings {
    pub interval_secs: u64,
    pub batch_size: u32,
    pub deleted_users_secs: u64,
    pub ended_sessions_secs: u64,
    pub idempotency_keys_secs: u64,
    pub usage_keys_secs: u64,
    pub quota_counters_secs: u64,
    pub events_secs: u64,
    pub webhook_deliveries_secs: u64,
}

/// Webhook endpoints and the delivery worker every server process runs.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookSettings {
    /// Seals endpoint signing secrets: the base64 of 32 random bytes. Empty: endpoints cannot be
    /// registered (the feed works regardless).
    pub secret_key: SecretString,
    /// Whether this process delivers (every process may: claims are shared out in PostgreSQL).
    pub deliver: bool,
    pub allow_http: bool,
    pub allow_private_addresses: bool,
    /// How often an idle worker looks for work.
    pub poll_interval_ms: u64,
    /// Deliveries claimed per round.
    pub batch_size: u32,
    /// Requests in flight per process.
    pub concurrency: usize,
    pub connect_timeout_ms: u64,
    /// The whole attempt: connect, send, read the response.
    pub timeout_ms: u64,
    pub max_response_bytes: usize,
    pub retry_initial_ms: u64,
    pub retry_factor: u32,
    pub retry_max_interval_secs: u64,
    pub retry_window_secs: u64,
    pub disable_after_secs: u64,
    pub lease_secs: u64,
    pub max_endpoints: u64,
    pub secret_overlap_secs: u64,
    pub max_redeliveries: u32,
}

impl WebhookSettings {
    pub fn config(&self) -> tessera_domain::services::WebhookConfig {
        use tessera_domain::model::RetryPolicy;
        tessera_domain::services::WebhookConfig {
            url_policy: self.url_policy(),
            retry: RetryPolicy {
                initial: Duration::from_millis(self.retry_initial_ms.max(1)),
                factor: self.retry_factor.max(1),
                max_interval: Duration::from_secs(self.retry_max_interval_secs.max(1)),
                window: Duration::from_secs(self.retry_window_secs),
                disable_after: Duration::from_secs(self.disable_after_secs),
                lease: Duration::from_secs(self.lease_secs.max(1)),
            },
            max_endpoints: self.max_endpoints,
            default_secret_overlap: Duration::from_secs(self.secret_overlap_secs),
            max_redeliveries: self.max_redeliveries.max(1),
        }
    }

    pub fn url_policy(&self) -> tessera_domain::model::UrlPolicy {
        tessera_domain::model::UrlPolicy {
            allow_http: self.allow_http,
            allow_private_addresses: self.allow_private_addresses,
        }
    }

    fn validate(&self) -> Result<(), SettingsError> {
        const DAY: u64 = 24 * 3600;
        let bad = |msg: &str| Err(SettingsError(format!("webhooks.{msg}")));
        if !(1..=60_000).contains(&self.poll_interval_ms) {
            return bad("poll_interval_ms must be between 1 and 60000");
        }
        if !(1..=1000).contains(&self.batch_size) {
            return bad("batch_size must be between 1 and 1000");
        }
        if !(1..=1000).contains(&self.concurrency) {
            return bad("concurrency must be between 1 and 1000");
        }
        if !(1..=300_000).contains(&self.timeout_ms) || self.connect_timeout_ms > self.timeout_ms {
            return bad(
                "timeout_ms must be between 1 and 300000, and connect_timeout_ms at most it",
            );
        }
        if !(1..=16 * 1024 * 1024).contains(&self.max_response_bytes) {
            return bad("max_response_bytes must be between 1 and 16 MiB");
        }
        if self.retry_window_secs > 30 * DAY || self.disable_after_secs > 30 * DAY {
            return bad("retry_window_secs and disable_after_secs must be at most 30 days");
        }
        // The lease covers the claim, the attempt and recording it (which may wait for a
        // pooled connection); a shorter one lets a second worker send the same attempt.
        if self.lease_secs.saturating_mul(1000) < self.timeout_ms.saturating_mul(2) {
            return bad("lease_secs must be at least twice timeout_ms, or two workers could send one attempt");
        }
        if self.secret_overlap_secs > 7 * DAY {
            return bad("secret_overlap_secs must be at most 604800 (7 days)");
        }
        Ok(())
    }
}

impl RetentionSettings {
    pub fn policy(&self) -> tessera_domain::services::RetentionPolicy {
        let keep = |secs: u64| (secs > 0).then(|| Duration::from_secs(secs));
        tessera_domain::services::RetentionPolicy {
            deleted_users: keep(self.deleted_users_secs),
            ended_sessions: keep(self.ended_sessions_secs),
            idempotency_keys: keep(self.idempotency_keys_secs),
            usage_keys: keep(self.usage_keys_secs),
            quota_counters: keep(self.quota_counters_secs),
            events: keep(self.events_secs),
            webhook_deliveries: keep(self.webhook_deliveries_secs),
            batch_size: self.batch_size,
        }
    }

    /// How often the server prunes, if it does.
    pub fn interval(&self) -> Option<Duration> {
        (self.interval_secs > 0).then(|| Duration::from_secs(self.interval_secs))
    }

    fn validate(&self) -> Result<(), SettingsError> {
        const YEAR_SECS: u64 = 365 * 24 * 3600;
        if self.interval_secs > YEAR_SECS {
            return Err(SettingsError(format!(
                "retention.interval_secs must be at most {YEAR_SECS} (a year), or 0 to never prune"
            )));
        }
        if !(1..=100_000).contains(&self.batch_size) {
            return Err(SettingsError(
                "retention.batch_size must be between 1 and 100000".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    pub format: String,
    pub level: String,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct SettingsError(String);

impl Settings {
    /// Reads the layers. `TESSERA_CONFIG_DIR` (default `config`) holds the environment files;
    /// `TESSERA_ENV` picks one (default `development`; the file is optional).
    pub fn load() -> Result<Self, SettingsError> {
        let dir = std::env::var("TESSERA_CONFIG_DIR").unwrap_or_else(|_| "config".into());
        let env = std::env::var("TESSERA_ENV").unwrap_or_else(|_| "development".into());
        Self::load_with(&dir, &env, &[])
    }

    /// The same layers from an explicit directory and environment name, with `overrides`
    /// (dotted keys such as `"server.port"`) applied last. Test harnesses use this.
    pub fn load_with(
        dir: &str,
        env: &str,
        overrides: &[(&str, String)],
    ) -> Result<Self, SettingsError> {
        let mut builder = Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .add_source(File::from(PathBuf::from(&dir).join(format!("{env}.toml"))).required(false))
            .add_source(
                Environment::with_prefix("TESSERA")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true),
            );
        // The conventional variable, honoured when the Tessera-specific one is not set.
        if std::env::var_os("TESSERA__DATABASE__URL").is_none() {
            if let Ok(url) = std::env::var("DATABASE_URL") {
                builder = builder
                    .set_override("database.url", url)
                    .map_err(|e| SettingsError(e.to_string()))?;
            }
        }
        for (key, value) in overrides {
            builder = builder
                .set_override(*key, value.clone())
                .map_err(|e| SettingsError(e.to_string()))?;
        }
        let settings: Settings = builder
            .build()
            .and_then(Config::try_deserialize)
            .map_err(|e| SettingsError(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        let secret = self.auth.jwt_secret.expose_secret();
        if !secret.is_empty() && secret.len() < 32 {
            return Err(SettingsError(
                "auth.jwt_secret must be at least 32 bytes (or empty for a random per-process key)"
                    .into(),
            ));
        }
        if self.database.pool_size == 0 {
            return Err(SettingsError(
                "database.pool_size must be at least 1".into(),
            ));
        }
        if self.auth.password_min_length == 0
            || self.auth.password_min_length > self.auth.password_max_length
            || self.auth.password_max_length > 1024
        {
            return Err(SettingsError(
                "auth.password_min_length must be ≥ 1 and ≤ password_max_length ≤ 1024".into(),
            ));
        }
        self.currencies()?;
        self.metering_defaults()?;
        self.retention.validate()?;
        self.webhooks.validate()?;
        // A delivery still retrying needs its event: events are kept longer than the window.
        let events = self.retention.events_secs;
        if events != 0 && events <= self.webhooks.retry_window_secs {
            return Err(SettingsError(
                "retention.events_secs must be longer than webhooks.retry_window_secs (or 0 to \
                 keep events), or deliveries still retrying would lose their event"
                    .into(),
            ));
        }
        self.deposits.config(&self.currencies()?)?;
        self.server.cf_connecting_ip()?;
        Ok(())
    }

    /// The metering fallbacks, checked.
    pub fn metering_defaults(&self) -> Result<MeteringDefaults, SettingsError> {
        let bad = |e: tessera_domain::ValidationError| {
            SettingsError(format!("[metering] {}: {}", e.field, e.reason))
        };
        let mut quotas = BTreeMap::new();
        for (key, limit) in &self.metering.default_quotas {
            let field = format!("default_quotas.{key}");
            quotas.insert(ResourceId::parse(field, key).map_err(bad)?, *limit);
        }
        let mut discounts = BTreeMap::new();
        for (key, value) in &self.metering.default_discounts {
            let field = format!("default_discounts.{key}");
            let id = ResourceId::parse(field.clone(), key).map_err(bad)?;
            discounts.insert(id, Discount::parse_decimal(&field, value).map_err(bad)?);
        }
        Ok(MeteringDefaults { quotas, discounts })
    }

    /// The configured currencies, checked.
    pub fn currencies(&self) -> Result<Currencies, SettingsError> {
        Currencies::new(
            self.currencies.iter().map(|(c, s)| (c.clone(), *s)),
            &self.wallets.default_currency,
        )
        .map_err(|e| SettingsError(format!("[currencies]/[wallets]: {e}")))
    }

    pub fn database_url(&self) -> &str {
        self.database.url.expose_secret()
    }

    pub fn uses_memory_storage(&self) -> bool {
        self.database_url().starts_with("memory:")
    }

    /// HTTP workers: `server.workers`, or one per available core when it is 0.
    pub fn worker_count(&self) -> usize {
        match self.server.workers {
            0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            n => n,
        }
    }

    /// `database.max_connection_lifetime_secs`, `None` when 0 (connections live forever).
    pub fn max_connection_lifetime(&self) -> Option<Duration> {
        match self.database.max_connection_lifetime_secs {
            0 => None,
            secs => Some(Duration::from_secs(secs)),
        }
    }

    pub fn pool_wait_timeout(&self) -> Duration {
        Duration::from_millis(self.database.pool_wait_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const CONFIG_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config");

    fn load(overrides: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let overrides: Vec<(&str, String)> = overrides
            .iter()
            .map(|(k, v)| (*k, (*v).to_owned()))
            .collect();
        Settings::load_with(CONFIG_DIR, "test", &overrides)
    }

    #[test]
    fn retention_defaults_and_zero_keep_forever() {
        let settings = load(&[]).unwrap();
        let policy = settings.retention.policy();
        assert_eq!(
            policy.deleted_users,
            Some(Duration::from_secs(30 * 24 * 3600))
        );
        assert_eq!(
            settings.retention.interval(),
            Some(Duration::from_secs(3600))
        );
        let settings = load(&[
            ("retention.deleted_users_secs", "0"),
            ("retention.interval_secs", "0"),
        ])
        .unwrap();
        assert_eq!(settings.retention.policy().deleted_users, None);
        assert_eq!(settings.retention.interval(), None);
    }

    #[test]
    fn retention_interval_and_batch_are_bounded() {
        for (key, value) in [
            ("retention.interval_secs", "31536001"),
            ("retention.batch_size", "0"),
            ("retention.batch_size", "100001"),
        ] {
            let error = load(&[(key, value)]).err().unwrap();
            assert!(error.to_string().contains(key), "{key}={value}: {error}");
        }
    }
}
