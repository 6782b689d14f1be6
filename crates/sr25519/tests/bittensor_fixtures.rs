//! Cases produced by the real `bittensor-wallet` package (see `scripts/sr25519-fixtures`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde::Deserialize;
use tessera_domain::ports::{SignatureCheck, SignatureVerifier};
use tessera_sr25519::{decode_ss58, encode_ss58, Sr25519Keypair, Sr25519Verifier};

#[derive(Deserialize)]
struct Fixture {
    generator: Generator,
    nonce: String,
    body_json: String,
    body_sha256_hex: String,
    keys: Vec<Key>,
    addresses: Vec<AddressCase>,
    signatures: Vec<SignatureCase>,
}

#[derive(Deserialize)]
struct Generator {
    package: String,
}

#[derive(Deserialize)]
struct Key {
    name: String,
    seed_hex: Option<String>,
    public_key_hex: String,
    ss58_42: String,
    addresses: Vec<PrefixedAddress>,
}

#[derive(Deserialize)]
struct PrefixedAddress {
    prefix: u16,
    address: String,
}

#[derive(Deserialize)]
struct AddressCase {
    kind: String,
    address: String,
    expected_valid: bool,
    bittensor_valid: bool,
    public_key_hex: Option<String>,
    prefix: Option<u16>,
}

#[derive(Deserialize)]
struct SignatureCase {
    name: String,
    address: String,
    message: String,
    signature_hex: String,
    expected: String,
    bittensor: String,
}

fn fixture() -> Fixture {
    serde_json::from_str(include_str!("fixtures/bittensor.json")).expect("fixture parses")
}

fn public_of(hex_key: &str) -> [u8; 32] {
    hex::decode(hex_key)
        .expect("hex public key")
        .try_into()
        .expect("32 bytes")
}

fn check_from_name(name: &str) -> SignatureCheck {
    match name {
        "Valid" => SignatureCheck::Valid,
        "Mismatch" => SignatureCheck::Mismatch,
        "MalformedAddress" => SignatureCheck::MalformedAddress,
        "MalformedSignature" => SignatureCheck::MalformedSignature,
        other => panic!("unknown expectation {other}"),
    }
}

#[test]
fn fixture_is_from_bittensor_wallet_and_complete() {
    let f = fixture();
    assert_eq!(f.generator.package, "bittensor-wallet");
    assert_eq!(f.keys.len(), 4);
    assert!(f.addresses.len() >= 15);
    assert!(f.signatures.len() >= 20);
    for expected in [
        "Valid",
        "Mismatch",
        "MalformedAddress",
        "MalformedSignature",
    ] {
        assert!(
            f.signatures.iter().any(|c| c.expected == expected),
            "{expected}"
        );
    }
}

#[test]
fn seeds_derive_the_same_keys_as_bittensor_wallet() {
    let mut seeded = 0;
    for key in fixture().keys {
        let Some(seed_hex) = &key.seed_hex else {
            continue;
        };
        let seed: [u8; 32] = hex::decode(seed_hex).unwrap().try_into().unwrap();
        let pair = Sr25519Keypair::from_seed(&seed);
        assert_eq!(
            hex::encode(pair.public()),
            key.public_key_hex,
            "{}",
            key.name
        );
        assert_eq!(pair.ss58(42), key.ss58_42, "{}", key.name);
        seeded += 1;
    }
    assert_eq!(seeded, 3);
}

#[test]
fn addresses_of_every_prefix_encode_and_decode_like_the_fixture() {
    for key in fixture().keys {
        let public = public_of(&key.public_key_hex);
        assert_eq!(encode_ss58(&public, 42), key.ss58_42);
        assert_eq!(decode_ss58(&key.ss58_42), Ok((public, 42)));
        for a in &key.addresses {
            assert_eq!(encode_ss58(&public, a.prefix), a.address, "{}", key.name);
            assert_eq!(
                decode_ss58(&a.address),
                Ok((public, a.prefix)),
                "{}",
                key.name
            );
        }
    }
}

#[test]
fn address_cases_match_expectations() {
    let verifier = Sr25519Verifier;
    for case in fixture().addresses {
        let decoded = decode_ss58(&case.address);
        assert_eq!(
            verifier.is_valid_address(&case.address),
            case.expected_valid,
            "{}: {decoded:?}",
            case.kind
        );
        assert_eq!(decoded.is_ok(), case.expected_valid, "{}", case.kind);
        if let Ok((public, prefix)) = decoded {
            assert_eq!(Some(prefix), case.prefix, "{}", case.kind);
            if let Some(bt_public) = &case.public_key_hex {
                assert_eq!(hex::encode(public), *bt_public, "{}", case.kind);
            }
        }
        // Tessera departs from bittensor-wallet only where documented in `decode_ss58`.
        let divergent = case.kind.starts_with("full_form_unregistered")
            || case.kind.starts_with("non_canonical");
        assert_eq!(
            case.expected_valid != case.bittensor_valid,
            divergent,
            "{}",
            case.kind
        );
    }
}

#[test]
fn signature_cases_match_expectations() {
    let verifier = Sr25519Verifier;
    for case in fixture().signatures {
        let expected = check_from_name(&case.expected);
        let got = verifier.verify(&case.address, case.message.as_bytes(), &case.signature_hex);
        assert_eq!(got, expected, "{}", case.name);
        // What the real library said is consistent with the expectation.
        let consistent = match expected {
            SignatureCheck::Valid => case.bittensor == "valid",
            SignatureCheck::Mismatch => case.bittensor == "invalid",
            SignatureCheck::MalformedAddress => case.bittensor == "address_error",
            SignatureCheck::MalformedSignature => {
                matches!(case.bittensor.as_str(), "signature_error" | "invalid")
            }
        };
        assert!(
            consistent,
            "{}: bittensor said {}",
            case.name, case.bittensor
        );
    }
}

#[test]
fn chutes_message_shapes_are_covered() {
    let f = fixture();
    let hotkey = &f.keys[0].ss58_42;
    let by_name = |name: &str| {
        f.signatures
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("case {name}"))
    };
    assert_eq!(by_name("me").message, format!("{hotkey}:{}:me", f.nonce));
    assert_eq!(
        by_name("body_hash").message,
        format!("{hotkey}:{}:{}", f.nonce, f.body_sha256_hex)
    );
    assert!(by_name("change_fingerprint_hotkey")
        .message
        .starts_with(&format!("{hotkey}:")));
    assert!(f.body_json.starts_with('{'));
}
