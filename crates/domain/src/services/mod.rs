//! Use cases, grouped by capability. Each takes the calling [`crate::Actor`] first and decides
//! authorization itself.

pub mod auth;
pub mod users;

pub use auth::AuthService;
pub use users::{
    CreateUserInput, CreatedUser, ListUsersInput, UpdateUserInput, UserService, UsersPage,
};
