//! In-memory storage for Tessera: a faithful second implementation of the storage ports.
//!
//! [`MemoryStore`] implements [`UserRepository`], [`SessionRepository`] and
//! [`WalletRepository`] with the same
//! observable behaviour as the PostgreSQL adapter, as pinned down by the storage contract suite
//! in `tessera-testkit`: case-insensitive uniqueness among all users (soft-deleted included),
//! the last-superuser rule, cascading purge, refresh-token rotation with reuse detection, exact
//! balances with their ledger, idempotency keys.
//! Timestamps are stored as PostgreSQL stores them: in UTC, truncated to whole microseconds.
//!
//! Every method takes one lock, checks everything, and only then mutates, so each call is one
//! atomic unit exactly like a database transaction.

mod audit;
mod credentials;
mod events;
mod metering;
mod query;
mod sessions;
mod shares;
mod state;
mod tiers;
mod users;
mod wallets;

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tessera_domain::ports::{SessionRepository, UserRepository, WalletRepository};

use crate::state::State;

/// Users, sessions and refresh tokens, held in memory. Cloning shares the same store.
#[derive(Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The store as the two storage ports, ready for [`tessera_domain::Ports`].
    pub fn ports(&self) -> (Arc<dyn UserRepository>, Arc<dyn SessionRepository>) {
        (Arc::new(self.clone()), Arc::new(self.clone()))
    }

    /// The store as the user-storage port.
    pub fn users(&self) -> Arc<dyn UserRepository> {
        Arc::new(self.clone())
    }

    /// The store as the wallet-storage port.
    pub fn wallets(&self) -> Arc<dyn WalletRepository> {
        Arc::new(self.clone())
    }

    /// The store as the session-storage port.
    pub fn sessions(&self) -> Arc<dyn SessionRepository> {
        Arc::new(self.clone())
    }

    /// Every method checks before it mutates, so the state behind a poisoned lock is still
    /// consistent and can be used as is.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for MemoryStore {
    /// Counts only: the store holds password hashes, which are never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("MemoryStore")
            .field("users", &state.users.len())
            .field("sessions", &state.sessions.len())
            .field("refresh_tokens", &state.refresh_tokens.len())
            .field("wallets", &state.wallets.len())
            .field("ledger_entries", &state.ledger.len())
            .finish()
    }
}
