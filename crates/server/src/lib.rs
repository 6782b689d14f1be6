//! The `tessera` server: reads configuration, builds the adapters, hands them to the domain and
//! serves the result over HTTP. This is the only crate that knows every other one.

pub mod settings;
pub mod telemetry;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};
use async_trait::async_trait;
use secrecy::ExposeSecret;
use tessera_domain::counters::CountersSnapshot;
use tessera_domain::ports::{
    ApiKeyRepository, AuditRepository, EventRepository, ExternalTokenVerifier, GuardRepository,
    MeteringRepository, SecretCipher, SessionRepository, ShareRepository, SystemClock,
    TierRepository, UserRepository, UuidV7Generator, WalletRepository, WebhookRepository,
    WebhookSender,
};
use tessera_domain::services::{AnonymousLimit, CreatedUser, LimitsConfig, LoginLimits};
use tessera_domain::values::PasswordPolicy;
use tessera_domain::{IdentityConfig, Ports, Tessera, TesseraConfig};
use tessera_http::metrics::{CounterSource, Metrics, PoolStats, PoolStatus};
use tessera_http::{ApiState, HttpLimits, Readiness};
use tessera_memory::MemoryStore;
use tessera_postgres::{PgStore, PoolSettings};
use tessera_security::{
    Argon2Hasher, Argon2Settings, ExternalIssuer, JwtCodec, RandomSecrets, SealingKey,
};
use tessera_sr25519::{Sr25519PaymentAddresses, Sr25519Verifier};
use tessera_webhooks::{HttpSender, SenderSettings};

pub use settings::Settings;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Settings(#[from] settings::SettingsError),
    #[error("database: {0}")]
    Database(String),
    #[error("{0}")]
    Security(String),
    #[error("metrics: {0}")]
    Metrics(String),
    #[error("bootstrap: {0}")]
    Bootstrap(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// The storage behind the ports, as chosen by `database.url`.
#[derive(Clone)]
pub enum Storage {
    Postgres(PgStore),
    Memory(MemoryStore),
}

impl Storage {
    /// Builds the pool (connections open lazily, so this works while the database is down).
    pub fn connect(settings: &Settings) -> Result<Self, StartupError> {
        if settings.uses_memory_storage() {
            return Ok(Self::Memory(MemoryStore::new()));
        }
        Self::postgres(settings, settings.database.pool_size)
    }

    fn postgres(settings: &Settings, max_size: usize) -> Result<Self, StartupError> {
        let pool = PoolSettings {
            max_size,
            wait_timeout: settings.pool_wait_timeout(),
            connect_timeout: Duration::from_millis(settings.database.connect_timeout_ms),
            max_lifetime: settings.max_connection_lifetime(),
        }
        .build(settings.database_url())
        .map_err(StartupError::Database)?;
        let directory_timeout =
            Duration::from_millis(settings.database.directory_statement_timeout_ms);
        Ok(Self::Postgres(
            PgStore::new(pool).with_directory_timeout(Some(directory_timeout)),
        ))
    }

    /// One storage per HTTP worker, next to `self`. PostgreSQL gets a pool per worker,
    /// splitting `database.pool_size` between them (at least one connection each): a connection
    /// is driven by the runtime of the worker that opened it, so a worker that only uses its own
    /// connections never needs another thread to wake up for its queries. The in-memory store
    /// is the data itself, so every worker shares `self`'s.
    pub fn per_worker(
        &self,
        settings: &Settings,
        workers: usize,
    ) -> Result<Vec<Self>, StartupError> {
        let workers = workers.max(1);
        let total = settings.database.pool_size;
        (0..workers)
            .map(|i| match self {
                Self::Memory(store) => Ok(Self::Memory(store.clone())),
                Self::Postgres(_) => {
                    let share = total / workers + usize::from(i < total % workers);
                    Self::postgres(settings, share.max(1))
                }
            })
            .collect()
    }

    /// Applies pending migrations (a no-op for memory storage).
    pub async fn migrate(&self, settings: &Settings) -> Result<Vec<String>, StartupError> {
        match self {
            Self::Memory(_) => Ok(Vec::new()),
            Self::Postgres(_) => tessera_postgres::run_migrations(settings.database_url())
                .await
                .map_err(|e| StartupError::Database(e.to_string())),
        }
    }
}

/// The business counters of several application objects (one per HTTP worker, and the one
/// housekeeping runs on), reported as one.
struct SummedCounters(Vec<Tessera>);

impl CounterSource for SummedCounters {
    fn snapshot(&self) -> CountersSnapshot {
        let snapshots: Vec<CountersSnapshot> = self.0.iter().map(Tessera::counters).collect();
        CountersSnapshot::sum(&snapshots)
    }
}

/// The workers' pools, reported as one.
struct StoragePools(Vec<Storage>);

impl PoolStats for StoragePools {
    fn status(&self) -> Option<PoolStatus> {
        let mut total: Option<PoolStatus> = None;
        for storage in &self.0 {
            if let Storage::Postgres(store) = storage {
                let s = store.pool().status();
                let sum = total.get_or_insert(PoolStatus {
                    max_size: 0,
                    size: 0,
                    available: 0,
                    waiting: 0,
                });
                sum.max_size += s.max_size;
                sum.size += s.size;
                sum.available += s.available;
                sum.waiting += s.waiting;
            }
        }
        total
    }
}

struct StorageReadiness(Storage);

#[async_trait]
impl Readiness for StorageReadiness {
    async fn check(&self) -> Result<(), String> {
        match &self.0 {
            Storage::Memory(_) => Ok(()),
            Storage::Postgres(store) => {
                store
                    .ping()
                    .await
                    .map_err(|_| "database unreachable".to_owned())?;
                if store
                    .schema_is_current()
                    .await
                    .map_err(|_| "database unreachable".to_owned())?
                {
                    Ok(())
                } else {
                    Err("database schema is behind: run `tessera migrate`".to_owned())
                }
            }
        }
    }
}

/// What every worker's domain instance shares: the hashing threads, the token keys, the webhook
/// sealing key and sender, and the configuration are process-wide; only the storage differs
/// between workers.
struct ProcessParts {
    hasher: Arc<Argon2Hasher>,
    tokens: Arc<JwtCodec>,
    external_tokens: Option<Arc<dyn ExternalTokenVerifier>>,
    webhook_cipher: Option<Arc<dyn SecretCipher>>,
    webhook_sender: Option<Arc<dyn WebhookSender>>,
    config: TesseraConfig,
}

/// Builds the domain over the configured adapters.
pub fn build_tessera(settings: &Settings, storage: &Storage) -> Result<Tessera, StartupError> {
    Ok(tessera_over(storage, &process_parts(settings)?))
}

/// The storage ports of `Ports`, all from one store.
struct StoragePorts {
    users: Arc<dyn UserRepository>,
    sessions: Arc<dyn SessionRepository>,
    tiers: Arc<dyn TierRepository>,
    audit: Arc<dyn AuditRepository>,
    wallets: Arc<dyn WalletRepository>,
    shares: Arc<dyn ShareRepository>,
    api_keys: Arc<dyn ApiKeyRepository>,
    guards: Arc<dyn GuardRepository>,
    metering: Arc<dyn MeteringRepository>,
    events: Arc<dyn EventRepository>,
    webhooks: Arc<dyn WebhookRepository>,
}

/// One store behind every storage port.
fn storage_ports<S>(store: &S) -> StoragePorts
where
    S: UserRepository
        + SessionRepository
        + TierRepository
        + AuditRepository
        + WalletRepository
        + ShareRepository
        + ApiKeyRepository
        + GuardRepository
        + MeteringRepository
        + EventRepository
        + WebhookRepository
        + Clone
        + 'static,
{
    let shared = Arc::new(store.clone());
    StoragePorts {
        users: shared.clone(),
        sessions: shared.clone(),
        tiers: shared.clone(),
        audit: shared.clone(),
        wallets: shared.clone(),
        shares: shared.clone(),
        api_keys: shared.clone(),
        guards: shared.clone(),
        metering: shared.clone(),
        events: shared.clone(),
        webhooks: shared,
    }
}

/// The domain over `storage`, with the process-wide parts.
fn tessera_over(storage: &Storage, parts: &ProcessParts) -> Tessera {
    let s = match storage {
        Storage::Postgres(store) => storage_ports(store),
        Storage::Memory(store) => storage_ports(store),
    };
    let ports = Ports {
        users: s.users,
        sessions: s.sessions,
        wallets: s.wallets,
        tiers: s.tiers,
        shares: s.shares,
        audit: s.audit,
        api_keys: s.api_keys,
        guards: s.guards,
        metering: s.metering,
        events: s.events,
        webhooks: s.webhooks,
        webhook_cipher: parts.webhook_cipher.clone(),
        webhook_sender: parts.webhook_sender.clone(),
        hasher: parts.hasher.clone(),
        tokens: parts.tokens.clone(),
        secrets: Arc::new(RandomSecrets),
        signatures: Arc::new(Sr25519Verifier::new()),
        external_tokens: parts.external_tokens.clone(),
        clock: Arc::new(SystemClock),
        ids: Arc::new(UuidV7Generator),
    };
    Tessera::new(ports, parts.config.clone())
}

/// `[deposits]`, with the deposit-address adapter when a master public key is configured.
fn deposit_config(settings: &Settings) -> Result<tessera_domain::DepositConfig, StartupError> {
    let deposits = &settings.deposits;
    let mut config = deposits.config(&settings.currencies()?)?;
    let master = deposits.master_public_key.trim();
    if !master.is_empty() {
        let addresses = Sr25519PaymentAddresses::from_ss58(master, deposits.address_prefix)
            .map_err(|e| StartupError::Security(format!("deposits.master_public_key: {e}")))?;
        config.addresses = Some(Arc::new(addresses));
    }
    Ok(config)
}

fn process_parts(settings: &Settings) -> Result<ProcessParts, StartupError> {
    let hashing = &settings.password_hashing;
    let thread_cgroup = Some(hashing.thread_cgroup.trim())
        .filter(|dir| !dir.is_empty())
        .map(std::path::PathBuf::from);
    let hasher = Argon2Hasher::with_thread_cgroup(
        Argon2Settings {
            memory_kib: hashing.memory_kib,
            iterations: hashing.iterations,
            parallelism: hashing.parallelism,
            max_concurrent: hashing.max_concurrent,
        },
        thread_cgroup,
    )
    .map_err(StartupError::Security)?;
    let secret = settings.auth.jwt_secret.expose_secret();
    let tokens = if secret.is_empty() {
        tracing::warn!(
            "auth.jwt_secret is empty: using a random per-process key; tokens will not survive a \
             restart or work across processes (set TESSERA__AUTH__JWT_SECRET)"
        );
        let random = tessera_domain::ports::SecretGenerator::new_token(&RandomSecrets);
        JwtCodec::new(random.as_bytes())
    } else {
        JwtCodec::new(secret.as_bytes())
    }
    .map_err(StartupError::Security)?;
    let identity = &settings.identity;
    let external_tokens: Option<Arc<dyn ExternalTokenVerifier>> =
        if identity.external_issuer_public_key.trim().is_empty() {
            None
        } else {
            let issuer = ExternalIssuer::from_pem(
                &identity.external_issuer,
                &identity.external_issuer_public_key,
            )
            .map_err(StartupError::Security)?;
            Some(Arc::new(issuer))
        };
    let config = TesseraConfig {
        access_token_ttl: Duration::from_secs(settings.auth.access_token_ttl_secs),
        session_ttl: Duration::from_secs(settings.auth.session_ttl_secs),
        password_policy: PasswordPolicy {
            min_len: settings.auth.password_min_length,
            max_len: settings.auth.password_max_length,
        },
        currencies: settings.currencies()?,
        identity: IdentityConfig {
            signature_window_secs: identity.signature_window_secs.clamp(1, 86_400),
            rotation_window_secs: identity.rotation_window_secs.clamp(1, 86_400),
            fingerprint_token_ttl: Duration::from_secs(identity.fingerprint_token_ttl_secs),
            registrations_per_ip_per_day: identity.registrations_per_ip_per_day,
            created_accounts_per_ip_per_day: identity.created_accounts_per_ip_per_day,
            all_accounts_free: identity.all_accounts_free,
            max_api_keys_per_user: identity.max_api_keys_per_user,
        },
        limits: LimitsConfig {
            default_tier: Some(settings.rate_limits.default_tier.trim())
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
            anonymous: (settings.rate_limits.anonymous_per_ip > 0).then(|| AnonymousLimit {
                limit: settings.rate_limits.anonymous_per_ip,
                period_secs: settings.rate_limits.anonymous_window_secs.max(1),
            }),
            login: LoginLimits {
                per_ip: settings.rate_limits.login_per_ip.max(1),
                per_account: settings.rate_limits.login_per_account.max(1),
                per_account_total: settings.rate_limits.login_per_account_total.max(1),
                window_secs: settings.rate_limits.login_window_secs.max(1),
                account_window_secs: settings.rate_limits.login_account_window_secs.max(1),
            },
            max_wallets_per_user: settings.rate_limits.max_wallets_per_user.max(1),
            max_managed_users_per_user: settings.rate_limits.max_managed_users_per_user,
        },
        metering: settings.metering_defaults()?,
        retention: settings.retention.policy(),
        webhooks: settings.webhooks.config(),
        deposits: deposit_config(settings)?,
    };
    let hooks = &settings.webhooks;
    let webhook_cipher: Option<Arc<dyn SecretCipher>> =
        match hooks.secret_key.expose_secret().trim() {
            "" => None,
            key => Some(Arc::new(
                SealingKey::from_base64(key).map_err(|e| StartupError::Security(e.to_string()))?,
            )),
        };
    let webhook_sender: Arc<dyn WebhookSender> = Arc::new(
        HttpSender::new(SenderSettings {
            url_policy: hooks.url_policy(),
            connect_timeout: Duration::from_millis(hooks.connect_timeout_ms),
            timeout: Duration::from_millis(hooks.timeout_ms),
            max_response_bytes: hooks.max_response_bytes,
            ..SenderSettings::default()
        })
        .map_err(StartupError::Security)?,
    );
    Ok(ProcessParts {
        hasher: Arc::new(hasher),
        tokens: Arc::new(tokens),
        external_tokens,
        webhook_cipher,
        webhook_sender: Some(webhook_sender),
        config,
    })
}

/// A server that is listening.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub handle: ServerHandle,
    /// Set when start-up created the first superuser with a generated password.
    pub bootstrapped: Option<CreatedUser>,
    pub tessera: Tessera,
    server: actix_web::dev::Server,
    /// How often housekeeping runs while the server does (`retention.interval_secs`).
    housekeeping: Option<Duration>,
    /// How this process delivers webhooks, if it does.
    delivery: Option<DeliveryLoop>,
}

/// The webhook delivery worker's settings.
#[derive(Debug, Clone, Copy)]
struct DeliveryLoop {
    idle: Duration,
    batch: u32,
    concurrency: usize,
}

impl RunningServer {
    /// Runs until the server stops (SIGINT/SIGTERM, or `handle.stop`), with housekeeping
    /// beside it.
    pub async fn run(self) -> std::io::Result<()> {
        let housekeeping = self
            .housekeeping
            .map(|every| tokio::spawn(housekeeping(self.tessera.clone(), every)));
        let delivery = self
            .delivery
            .map(|settings| tokio::spawn(deliver_webhooks(self.tessera.clone(), settings)));
        let result = self.server.await;
        // Attempts in flight are dropped: their leases run out and another attempt follows.
        for task in [housekeeping, delivery].into_iter().flatten() {
            task.abort();
        }
        result
    }

    /// Runs the server (and its housekeeping) on the current tokio runtime in the background.
    pub fn spawn(self) -> (SocketAddr, ServerHandle, Tessera) {
        let (addr, handle, tessera) = (self.addr, self.handle.clone(), self.tessera.clone());
        tokio::spawn(self.run());
        (addr, handle, tessera)
    }
}

/// Prunes now and then every `every` (a run that overruns delays the next, never doubles up).
/// Failures are logged and retried at the next tick: the data waits, nothing is lost.
async fn housekeeping(tessera: Tessera, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        // The run counts itself in the domain's counters (exported at /metrics).
        let result = tessera.retention.prune().await;
        match result {
            Ok(pruned) if pruned.total() > 0 => tracing::info!(
                users = pruned.users,
                sessions = pruned.sessions,
                idempotency_keys = pruned.idempotency_keys,
                usage_keys = pruned.usage_keys,
                quota_counters = pruned.quota_counters,
                events = pruned.events,
                webhook_deliveries = pruned.webhook_deliveries,
                "housekeeping removed expired data"
            ),
            Ok(_) => tracing::debug!("housekeeping found nothing to remove"),
            Err(e) => tracing::warn!(error = %e, "housekeeping failed; retrying at the next run"),
        }
    }
}

/// Every process's webhook worker: fans newly readable events out into deliveries, claims as
/// many due deliveries as it has free slots, and sends each on a task of its own. Nothing here
/// holds a transaction: each store call commits before any request is sent. Idle (or after a
/// store failure) it waits `idle`, doubling up to 5 s while the store stays unreachable.
async fn deliver_webhooks(tessera: Tessera, settings: DeliveryLoop) {
    /// Events fanned out per round.
    const FAN_OUT: u32 = 1000;
    let slots = Arc::new(tokio::sync::Semaphore::new(settings.concurrency));
    let mut backoff = settings.idle;
    loop {
        let mut busy = false;
        let mut failed = false;
        match tessera.webhooks.fan_out(FAN_OUT).await {
            Ok(n) => busy |= n >= u64::from(FAN_OUT),
            Err(e) => {
                failed = true;
                tracing::debug!(error = %e, "webhook fan-out failed; retrying");
            }
        }
        let free = u32::try_from(slots.available_permits()).unwrap_or(u32::MAX);
        if free > 0 && !failed {
            match tessera.webhooks.claim(free.min(settings.batch)).await {
                Ok(claimed) => {
                    busy |= !claimed.is_empty();
                    for delivery in claimed {
                        let Ok(slot) = slots.clone().acquire_owned().await else {
                            return;
                        };
                        let tessera = tessera.clone();
                        tokio::spawn(async move {
                            let _slot = slot;
                            if let Err(e) = tessera.webhooks.deliver(delivery).await {
                                // The lease runs out and the attempt is made again.
                                tracing::warn!(error = %e, "cannot record a webhook attempt");
                            }
                        });
                    }
                }
                Err(e) => {
                    failed = true;
                    tracing::debug!(error = %e, "webhook claim failed; retrying");
                }
            }
        }
        if failed {
            if backoff >= Duration::from_secs(5) {
                tracing::warn!("webhook delivery cannot reach the database; retrying");
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
            continue;
        }
        backoff = settings.idle;
        if !busy {
            tokio::time::sleep(settings.idle).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
}

/// Logs a warning when PostgreSQL will not keep Tessera's table statistics current by itself
/// (docs/operations.md, Growth). Says nothing while the database is unreachable: the server
/// starts anyway and heals when it returns.
async fn warn_about_database_maintenance(storage: &Storage) {
    if let Storage::Postgres(store) = storage {
        if let Ok(false) = store.autovacuum_enabled().await {
            tracing::warn!(
                "PostgreSQL runs with autovacuum or track_counts off: tables that grow keep the \
                 statistics of their last ANALYZE and their cached query plans (a sequential \
                 scan of sessions, say); turn autovacuum on, or ANALYZE on a schedule \
                 (docs/operations.md, Growth)"
            );
        }
    }
}

/// Migrates (if configured), bootstraps the first superuser on an empty database, binds the
/// listener and returns the server, not yet running.
pub async fn start(settings: &Settings) -> Result<RunningServer, StartupError> {
    // Start-up work and callers of `RunningServer::tessera` use a storage of their own, so no
    // worker's pool holds a connection driven by the caller's runtime.
    let control = Storage::connect(settings)?;
    if settings.database.migrate_on_start {
        let applied = control.migrate(settings).await?;
        if !applied.is_empty() {
            tracing::info!(?applied, "applied database migrations");
        }
    }
    let parts = process_parts(settings)?;
    let tessera = tessera_over(&control, &parts);
    let bootstrapped = bootstrap(settings, &tessera).await?;
    // Users created before a master key was configured get their deposit address now.
    match tessera.users.assign_payment_addresses(500).await {
        Ok(0) => {}
        Ok(assigned) => tracing::info!(assigned, "assigned deposit addresses"),
        Err(e) => tracing::warn!(error = %e, "could not assign deposit addresses at start"),
    }
    warn_about_database_maintenance(&control).await;

    let workers = settings.worker_count();
    let storages = control.per_worker(settings, workers)?;
    let worker_tesseras: Vec<Tessera> = storages
        .iter()
        .map(|storage| tessera_over(storage, &parts))
        .collect();
    // Every application object counts for itself; /metrics shows their sum.
    let mut counted = worker_tesseras.clone();
    counted.push(tessera.clone());
    let metrics = Arc::new(
        Metrics::new(
            Arc::new(StoragePools(storages.clone())),
            Arc::new(SummedCounters(counted)),
        )
        .map_err(StartupError::Metrics)?,
    );
    let states: Vec<web::Data<ApiState>> = storages
        .into_iter()
        .zip(worker_tesseras)
        .map(|(storage, tessera)| {
            web::Data::new(ApiState {
                tessera,
                readiness: Arc::new(StorageReadiness(storage)),
                metrics: metrics.clone(),
            })
        })
        .collect();
    let limits = HttpLimits {
        max_body_bytes: settings.server.max_body_bytes,
        trusted_proxies: match settings.server.trusted_proxies {
            0 if settings.identity.trust_forwarded_for => 1,
            n => n,
        },
        cf_connecting_ip: settings.server.cf_connecting_ip()?,
        body_read_timeout: Duration::from_millis(settings.server.body_read_timeout_ms),
    };
    // actix calls the factory once on each worker's thread: each takes the next state, so each
    // worker queries through its own pool.
    let next_state = Arc::new(AtomicUsize::new(0));
    let addr = format!("{}:{}", settings.server.host, settings.server.port);
    let server = HttpServer::new(move || {
        let state = states[next_state.fetch_add(1, Ordering::Relaxed) % states.len()].clone();
        App::new()
            .wrap(actix_web::middleware::from_fn(
                tessera_http::normalize::normalize_path,
            ))
            .wrap(actix_web::middleware::from_fn(
                tessera_http::deadline::limit_body_time,
            ))
            .wrap(actix_web::middleware::from_fn(
                tessera_http::request_id::assign,
            ))
            .configure(tessera_http::configure(state.clone(), limits))
    })
    .shutdown_timeout(settings.server.shutdown_timeout_secs)
    .client_request_timeout(Duration::from_millis(
        settings.server.client_request_timeout_ms,
    ))
    .client_disconnect_timeout(Duration::from_millis(
        settings.server.client_disconnect_timeout_ms,
    ))
    .keep_alive(match settings.server.keep_alive_secs {
        0 => actix_web::http::KeepAlive::Disabled,
        secs => actix_web::http::KeepAlive::Timeout(Duration::from_secs(secs)),
    })
    .workers(workers);
    let server = server.bind(&addr).map_err(|source| StartupError::Bind {
        addr: addr.clone(),
        source,
    })?;
    let bound = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| StartupError::Bind {
            addr: addr.clone(),
            source: std::io::Error::other("no address bound"),
        })?;
    let server = server.run();
    tracing::info!(address = %format!("http://{bound}"), "tessera listening");
    let delivery =
        (settings.webhooks.deliver && tessera.webhooks.delivers()).then(|| DeliveryLoop {
            idle: Duration::from_millis(settings.webhooks.poll_interval_ms),
            batch: settings.webhooks.batch_size,
            concurrency: settings.webhooks.concurrency,
        });
    Ok(RunningServer {
        addr: bound,
        handle: server.handle(),
        bootstrapped,
        tessera,
        server,
        housekeeping: settings.retention.interval(),
        delivery,
    })
}

async fn bootstrap(
    settings: &Settings,
    tessera: &Tessera,
) -> Result<Option<CreatedUser>, StartupError> {
    let password = settings.bootstrap.admin_password.expose_secret();
    let password = (!password.is_empty()).then_some(password);
    let created = tessera
        .users
        .bootstrap_superuser(&settings.bootstrap.admin_username, password)
        .await
        .map_err(|e| StartupError::Bootstrap(e.to_string()))?;
    if let Some(created) = &created {
        tracing::info!(
            username = created.user.username.as_deref().unwrap_or(""),
            "created the first superuser"
        );
    }
    Ok(created)
}
