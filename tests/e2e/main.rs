//! Black-box tests: the real server on port 0, a fresh PostgreSQL database per test, HTTP only.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin;
mod audit;
mod auth;
mod directory;
mod smoke;
mod support;
mod tiers;
mod users;
mod validation;
