use std::collections::BTreeMap;
use std::fmt;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::ValidationError;

/// What the platform meters: a UUID (a Chutes "chute") or the wildcard `*`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceId {
    Any,
    Id(Uuid),
}

impl ResourceId {
    pub fn parse(field: impl Into<String>, raw: &str) -> Result<Self, ValidationError> {
        if raw == "*" {
            return Ok(Self::Any);
        }
        Uuid::parse_str(raw)
            .map(Self::Id)
            .map_err(|_| ValidationError::new(field.into(), "resource id must be a UUID or \"*\""))
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Id(id) => write!(f, "{id}"),
        }
    }
}

/// A rate limit of a tier: at most `limit` requests per `period_secs` on paths starting with
/// `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    pub path: String,
    pub limit: u32,
    pub period_secs: u32,
}

/// A tier: a named bundle of default daily quotas per resource and rate limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tier {
    pub id: Uuid,
    pub name: String,
    pub quotas: BTreeMap<ResourceId, u64>,
    pub rate_limits: Vec<RateLimit>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A validated tier definition, for create and for replacing parts on update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierSpec {
    pub name: Option<String>,
    /// `Some` replaces every quota of the tier.
    pub quotas: Option<BTreeMap<ResourceId, u64>>,
    /// `Some` replaces every rate limit of the tier.
    pub rate_limits: Option<Vec<RateLimit>>,
}
