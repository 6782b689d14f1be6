#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Black-box end-to-end tests: the real server on port 0 against real PostgreSQL, one module
//! per surface.

mod lnbits;
mod support;
mod wallets;
