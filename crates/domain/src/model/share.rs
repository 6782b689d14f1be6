use std::fmt;

use time::OffsetDateTime;
use uuid::Uuid;

use super::AuditEvent;
use crate::error::ValidationError;

/// A scope of access one user grants another (SweatStack's scope list, PRODUCT.md §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    DataRead,
    DataWrite,
    Admin,
    OpenId,
    Profile,
    OfflineAccess,
}

impl Scope {
    pub const ALL: [Scope; 6] = [
        Self::DataRead,
        Self::DataWrite,
        Self::Admin,
        Self::OpenId,
        Self::Profile,
        Self::OfflineAccess,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::DataRead => "data:read",
            Self::DataWrite => "data:write",
            Self::Admin => "admin",
            Self::OpenId => "openid",
            Self::Profile => "profile",
            Self::OfflineAccess => "offline_access",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    fn bit(self) -> i32 {
        1 << (self as i32)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes, stored as a bitmask (bit `n` is `Scope::ALL[n]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ScopeSet(i32);

impl ScopeSet {
    pub const EMPTY: ScopeSet = ScopeSet(0);
    pub const ALL: ScopeSet = ScopeSet(0b11_1111);

    /// Parses scope names; an unknown one is a validation error naming it. Duplicates collapse.
    pub fn parse<S: AsRef<str>>(field: &'static str, raw: &[S]) -> Result<Self, ValidationError> {
        let mut set = Self::EMPTY;
        for name in raw {
            let name = name.as_ref();
            match Scope::parse(name) {
                Some(scope) => set = set.with(scope),
                None => {
                    return Err(ValidationError::new(
                        field,
                        format!(
                            "unknown scope {name:?}; expected one of {}",
                            Scope::ALL.map(Scope::as_str).join(", ")
                        ),
                    ))
                }
            }
        }
        Ok(set)
    }

    /// Space-separated names, as an OAuth `scope` claim carries them.
    pub fn parse_claim(raw: &str) -> Option<Self> {
        let names: Vec<&str> = raw.split_whitespace().collect();
        Self::parse("scope", &names).ok()
    }

    pub fn to_claim(self) -> String {
        self.names().join(" ")
    }

    pub fn from_bits(bits: i32) -> Self {
        Self(bits & Self::ALL.0)
    }

    pub fn bits(self) -> i32 {
        self.0
    }

    pub fn with(self, scope: Scope) -> Self {
        Self(self.0 | scope.bit())
    }

    pub fn has(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn contains(self, other: ScopeSet) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn names(self) -> Vec<&'static str> {
        Scope::ALL
            .into_iter()
            .filter(|s| self.has(*s))
            .map(Scope::as_str)
            .collect()
    }

    /// Reading the user's data: any of `data:read`, `data:write`, `admin`, `profile`.
    pub fn may_read(self) -> bool {
        self.has(Scope::DataRead)
            || self.has(Scope::DataWrite)
            || self.has(Scope::Admin)
            || self.has(Scope::Profile)
    }

    /// Changing the user's data: `data:write` or `admin`.
    pub fn may_write(self) -> bool {
        self.has(Scope::DataWrite) || self.has(Scope::Admin)
    }
}

/// Access one user (`owner`) grants another (`grantee`) to their data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub owner_id: Uuid,
    pub grantee_id: Uuid,
    pub scopes: ScopeSet,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// Creating or replacing a share, with its audit event.
#[derive(Debug, Clone)]
pub struct NewShare {
    pub owner_id: Uuid,
    pub grantee_id: Uuid,
    pub scopes: ScopeSet,
    pub now: OffsetDateTime,
    pub audit: Option<AuditEvent>,
}
