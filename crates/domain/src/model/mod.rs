//! Entities of the domain.

mod audit;
mod permissions;
mod session;
mod tier;
mod user;

pub use audit::{AuditAction, AuditEvent, AuditQuery, FieldChange};
pub use permissions::{Permission, Permissions};
pub use session::{AccessClaims, NewSession, RefreshOutcome, Session, SessionCheck, TokenPair};
pub use tier::{RateLimit, ResourceId, Tier, TierSpec};
pub use user::{
    display_name, DailyCount, NewUser, RevokeSessions, User, UserChanges, UserListQuery, UserPage,
    UserState,
};
