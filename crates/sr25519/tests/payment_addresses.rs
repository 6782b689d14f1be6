//! Deposit addresses against keys the operator derives offline with the real `bittensor-wallet`
//! package, as `docs/operations.md` shows (see `scripts/payment-address-fixtures`): Tessera,
//! knowing only the master *public* key, shows exactly the address the derived secret key
//! signs for.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde::Deserialize;
use tessera_domain::ports::{PaymentAddresses, SignatureCheck, SignatureVerifier};
use tessera_sr25519::{Sr25519PaymentAddresses, Sr25519Verifier};
use uuid::Uuid;

#[derive(Deserialize)]
struct Fixture {
    generator: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    master_address: String,
    user_id: Uuid,
    address: String,
    message: String,
    signature: String,
}

fn fixture() -> Fixture {
    let raw = include_str!("fixtures/payment_addresses.json");
    serde_json::from_str(raw).expect("fixture parses")
}

#[test]
fn derived_secret_keys_sign_for_the_addresses_tessera_shows() {
    let fixture = fixture();
    assert_eq!(fixture.generator, "bittensor-wallet");
    assert!(fixture.cases.len() >= 6);
    let verifier = Sr25519Verifier::new();
    for case in &fixture.cases {
        let addresses = Sr25519PaymentAddresses::from_ss58(&case.master_address, 42).unwrap();
        let shown = addresses.address_of(case.user_id);
        assert_eq!(shown, case.address, "user {}", case.user_id);
        assert_eq!(
            verifier.verify(&shown, case.message.as_bytes(), &case.signature),
            SignatureCheck::Valid,
            "user {}",
            case.user_id
        );
        assert_eq!(
            Sr25519PaymentAddresses::path_of(case.user_id),
            format!("/{}", case.user_id)
        );
    }
}

#[test]
fn a_master_key_that_is_not_an_address_is_refused() {
    assert!(Sr25519PaymentAddresses::from_ss58("not-an-address", 42).is_err());
}
