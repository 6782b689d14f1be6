//! Test harness for Tessera: a real PostgreSQL database per test ([`db`]), the real server
//! spawned in-process on port 0 ([`app`]), and the storage contract suite that every adapter
//! must pass ([`contract`]).

#![allow(clippy::panic)]

pub mod app;
pub mod contract;
pub mod db;

pub use app::{status_and_json, TestApp, ADMIN_PASSWORD, ADMIN_USERNAME};
pub use db::{state_digests, StateProbe, TestDatabase};
