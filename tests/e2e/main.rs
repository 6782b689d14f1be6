//! Black-box tests: the real server on port 0, a fresh PostgreSQL database per test, HTTP only,
//! one module per surface or concern.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin;
mod api_description;
mod audit;
mod auth;
mod chutes;
mod chutes_clients;
mod deposits;
mod directory;
mod events;
mod faults;
mod lnbits;
mod metering;
mod money;
mod policy_matrix;
mod rate_limits;
mod security;
mod sharing;
mod smoke;
mod support;
mod tiers;
mod trust;
mod trust_matrix;
mod users;
mod validation;
mod wallets;
