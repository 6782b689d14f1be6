#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The storage contract suite against the in-memory adapter.

tessera_testkit::contract_tests!(async { tessera_testkit::contract::Stores::memory() });
