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
    pub log: LogSettings,
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
