//! Use cases, grouped by capability. Each takes the calling [`crate::Actor`] first and decides
//! authorization itself.

pub mod auth;
pub mod users;
pub mod wallets;

pub use auth::AuthService;
pub use users::{
    CreateUserInput, CreatedUser, ListUsersInput, UpdateUserInput, UserService, UsersPage,
};
pub use wallets::{
    AdjustmentInput, LedgerInput, TransferInput, WalletService, DEFAULT_LEDGER_LIMIT,
    MAX_LEDGER_LIMIT,
};
