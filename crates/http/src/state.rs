use std::sync::Arc;

use async_trait::async_trait;
use tessera_domain::Tessera;

/// Whether the service can take traffic: the database answers and its schema is current.
/// Implemented by the server crate, which knows the concrete storage.
#[async_trait]
pub trait Readiness: Send + Sync {
    async fn check(&self) -> Result<(), String>;
}

/// What every handler receives: the domain services, the readiness probe and the metrics.
pub struct ApiState {
    pub tessera: Tessera,
    pub readiness: Arc<dyn Readiness>,
    pub metrics: Arc<crate::metrics::Metrics>,
}
