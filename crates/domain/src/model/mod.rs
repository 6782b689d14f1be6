//! Entities of the domain.

mod permissions;
mod session;
mod user;

pub use permissions::{Permission, Permissions};
pub use session::{AccessClaims, NewSession, RefreshOutcome, Session, SessionCheck, TokenPair};
pub use user::{
    display_name, NewUser, RevokeSessions, User, UserChanges, UserListQuery, UserPage, UserState,
};
