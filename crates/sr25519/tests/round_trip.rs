//! Rust-side round trips with `Sr25519Keypair`, SS58 round trips, and garbage input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rand::{Rng, RngCore};
use tessera_domain::ports::{SignatureCheck, SignatureVerifier};
use tessera_sr25519::{decode_ss58, encode_ss58, Sr25519Keypair, Sr25519Verifier, Ss58Error};

#[test]
fn a_rust_signature_verifies() {
    let pair = Sr25519Keypair::generate();
    let address = pair.ss58(42);
    let signature = pair.sign(b"5F...:1735689600:me");
    assert_eq!(signature.len(), 128);
    assert_eq!(signature, signature.to_lowercase());
    assert_eq!(
        Sr25519Verifier.verify(&address, b"5F...:1735689600:me", &signature),
        SignatureCheck::Valid
    );
}

#[test]
fn letter_case_and_0x_prefix_are_accepted() {
    let pair = Sr25519Keypair::generate();
    let address = pair.ss58(42);
    let signature = pair.sign(b"msg");
    for sig in [
        signature.to_uppercase(),
        format!("0x{signature}"),
        format!("0x{}", signature.to_uppercase()),
    ] {
        assert_eq!(
            Sr25519Verifier.verify(&address, b"msg", &sig),
            SignatureCheck::Valid
        );
    }
    for sig in [
        format!("0x0x{signature}"),
        format!(" {signature}"),
        format!("{signature} "),
    ] {
        assert_eq!(
            Sr25519Verifier.verify(&address, b"msg", &sig),
            SignatureCheck::MalformedSignature
        );
    }
}

#[test]
fn another_key_is_a_mismatch() {
    let signer = Sr25519Keypair::generate();
    let other = Sr25519Keypair::generate();
    let signature = signer.sign(b"msg");
    assert_eq!(
        Sr25519Verifier.verify(&other.ss58(42), b"msg", &signature),
        SignatureCheck::Mismatch
    );
}

#[test]
fn a_wrapped_message_signature_is_accepted() {
    let pair = Sr25519Keypair::generate();
    let signature = pair.sign(b"<Bytes>msg</Bytes>");
    assert_eq!(
        Sr25519Verifier.verify(&pair.ss58(42), b"msg", &signature),
        SignatureCheck::Valid
    );
    // Only one layer is added: a signature over the bare message does not cover a wrapped one.
    let bare = pair.sign(b"msg");
    assert_eq!(
        Sr25519Verifier.verify(&pair.ss58(42), b"<Bytes>msg</Bytes>", &bare),
        SignatureCheck::Mismatch
    );
}

#[test]
fn a_changed_message_is_a_mismatch() {
    let pair = Sr25519Keypair::generate();
    let signature = pair.sign(b"hotkey:1:me");
    assert_eq!(
        Sr25519Verifier.verify(&pair.ss58(42), b"hotkey:2:me", &signature),
        SignatureCheck::Mismatch
    );
}

#[test]
fn any_prefix_of_the_signer_verifies() {
    let pair = Sr25519Keypair::from_seed(&[9u8; 32]);
    let signature = pair.sign(b"msg");
    for prefix in [0, 2, 42, 63, 64, 255, 1000, 16_383] {
        assert_eq!(
            Sr25519Verifier.verify(&pair.ss58(prefix), b"msg", &signature),
            SignatureCheck::Valid,
            "prefix {prefix}"
        );
    }
}

#[test]
fn from_seed_is_deterministic_and_signatures_are_randomized() {
    let a = Sr25519Keypair::from_seed(&[1u8; 32]);
    let b = Sr25519Keypair::from_seed(&[1u8; 32]);
    assert_eq!(a.public(), b.public());
    assert_ne!(a.public(), Sr25519Keypair::from_seed(&[2u8; 32]).public());
    assert_ne!(a.sign(b"msg"), a.sign(b"msg"));
}

#[test]
fn debug_does_not_print_the_secret() {
    let pair = Sr25519Keypair::from_seed(&[1u8; 32]);
    let shown = format!("{pair:?}");
    assert!(shown.contains(&hex::encode(pair.public())));
    assert!(!shown.contains(&hex::encode([1u8; 32])));
}

#[test]
fn ss58_round_trips_for_several_prefixes() {
    let mut rng = rand::thread_rng();
    for prefix in [
        0u16, 1, 2, 5, 42, 63, 64, 65, 127, 128, 255, 256, 1000, 4096, 16_383,
    ] {
        for _ in 0..8 {
            let mut public = [0u8; 32];
            rng.fill_bytes(&mut public);
            let address = encode_ss58(&public, prefix);
            let decoded = decode_ss58(&address);
            assert_eq!(decoded, Ok((public, prefix)), "{address}");
            assert_eq!(encode_ss58(&public, prefix), address);
        }
    }
}

#[test]
fn ss58_errors_are_specific() {
    let address = encode_ss58(&[3u8; 32], 42);
    assert_eq!(decode_ss58("0OIl"), Err(Ss58Error::BadBase58));
    assert_eq!(decode_ss58(""), Err(Ss58Error::BadLength));
    assert_eq!(
        decode_ss58(&address[..address.len() - 2]),
        Err(Ss58Error::BadLength)
    );
    assert_eq!(decode_ss58(&"1".repeat(200)), Err(Ss58Error::BadLength));
    assert_eq!(
        decode_ss58(&encode_ss58(&[3u8; 32], 46)),
        Err(Ss58Error::ReservedPrefix)
    );
    // Change one character (to another base58 one): the checksum no longer matches, or the
    // length/prefix breaks; never a different valid key.
    let mut changed = 0;
    for (i, c) in address.char_indices().skip(1) {
        let replacement = if c == 'z' { 'y' } else { 'z' };
        let mut tampered = address.clone();
        tampered.replace_range(i..i + 1, &replacement.to_string());
        assert!(decode_ss58(&tampered).is_err(), "{tampered}");
        changed += 1;
    }
    assert!(changed > 40);
}

#[test]
fn garbage_never_panics() {
    let verifier = Sr25519Verifier;
    let pair = Sr25519Keypair::generate();
    let address = pair.ss58(42);
    let mut rng = rand::thread_rng();
    const ALPHABET: &[u8] = b"0123456789abcdefABCDEFxyzXYZ!@ \t\n<>:123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    for _ in 0..2_000 {
        let len = rng.gen_range(0..140);
        let text: String = (0..len)
            .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
            .collect();
        let mut bytes = vec![0u8; rng.gen_range(0..100)];
        rng.fill_bytes(&mut bytes);
        let lossy = String::from_utf8_lossy(&bytes).into_owned();

        let _ = verifier.is_valid_address(&text);
        let _ = verifier.is_valid_address(&lossy);
        let _ = decode_ss58(&text);
        assert_ne!(verifier.verify(&text, &bytes, &text), SignatureCheck::Valid);
        assert_ne!(
            verifier.verify(&address, &bytes, &text),
            SignatureCheck::Valid
        );
        assert_ne!(
            verifier.verify(&lossy, &bytes, &lossy),
            SignatureCheck::Valid
        );
    }
}

#[test]
fn random_64_byte_signatures_are_rejected_without_panicking() {
    let pair = Sr25519Keypair::generate();
    let address = pair.ss58(42);
    let mut rng = rand::thread_rng();
    let mut malformed = 0;
    for _ in 0..300 {
        let mut sig = [0u8; 64];
        rng.fill_bytes(&mut sig);
        match Sr25519Verifier.verify(&address, b"msg", &hex::encode(sig)) {
            SignatureCheck::MalformedSignature => malformed += 1,
            SignatureCheck::Mismatch => {}
            other => panic!("random bytes gave {other:?}"),
        }
    }
    // Most lack the schnorrkel marker bit or carry a non-canonical scalar.
    assert!(malformed > 200, "{malformed}");
    // Well-formed encodings (marker set, canonical scalar) of random signatures: a mismatch.
    for _ in 0..300 {
        let mut sig = [0u8; 64];
        rng.fill_bytes(&mut sig);
        sig[63] = (sig[63] & 0x0f) | 0x80;
        assert_eq!(
            Sr25519Verifier.verify(&address, b"msg", &hex::encode(sig)),
            SignatureCheck::Mismatch
        );
    }
}

#[test]
fn random_keys_are_mostly_not_curve_points_but_still_valid_addresses() {
    let mut rng = rand::thread_rng();
    let signature = Sr25519Keypair::generate().sign(b"msg");
    for _ in 0..100 {
        let mut public = [0u8; 32];
        rng.fill_bytes(&mut public);
        let address = encode_ss58(&public, 42);
        assert!(Sr25519Verifier.is_valid_address(&address));
        assert_eq!(
            Sr25519Verifier.verify(&address, b"msg", &signature),
            SignatureCheck::Mismatch
        );
    }
}
