"""Writes sr25519/SS58 test fixtures made with the real `bittensor_wallet.Keypair`.

Run through scripts/sr25519-fixtures, which installs the pinned bittensor-wallet into a venv.
Every signature case records what Tessera must answer (`expected`) and what bittensor-wallet
answered (`bittensor`); the script stops if the two disagree, so a regeneration also checks that
the real library still behaves as the fixture claims.
"""

import hashlib
import json
import platform
import sys
from importlib.metadata import version

from bittensor_wallet import Keypair

NONCE = "1735689600"
# The well-known Substrate development phrase: a fixed mnemonic, so regeneration is stable.
DEV_MNEMONIC = "bottom drive obey lake curtain smoke basket hold race lonely fit walk"
B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def seed(label: str) -> bytes:
    return hashlib.sha256(f"tessera sr25519 fixture {label}".encode()).digest()


def b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def ss58(public: bytes, prefix: int, full_form: bool = False) -> str:
    # bittensor-wallet 3.1.0 always encodes with prefix 42, so other prefixes are encoded here
    # (and checked below by decoding them with bittensor-wallet where it supports the prefix).
    if prefix < 64 and not full_form:
        head = bytes([prefix])
    else:
        head = bytes([((prefix & 0xFC) >> 2) | 0x40, (prefix >> 8) | ((prefix & 3) << 6)])
    return b58check(head + public)


def checksum(body: bytes) -> bytes:
    return hashlib.blake2b(b"SS58PRE" + body).digest()[:2]


def b58check(body: bytes) -> str:
    return b58encode(body + checksum(body))


def bt_address(address: str):
    """The public key bittensor-wallet decodes from `address`, or None if it refuses it."""
    try:
        return Keypair(ss58_address=address).public_key
    except Exception:  # noqa: BLE001 - any refusal counts
        return None


def bt_verify(address: str, message: bytes, signature_hex: str) -> str:
    try:
        verifier = Keypair(ss58_address=address)
    except Exception:  # noqa: BLE001
        return "address_error"
    # bittensor-wallet only takes a hex *string* with a 0x prefix; normalise to that.
    digits = signature_hex[2:] if signature_hex[:2] in ("0x", "0X") else signature_hex
    try:
        return "valid" if verifier.verify(message, "0x" + digits) else "invalid"
    except Exception:  # noqa: BLE001
        return "signature_error"


# Which bittensor-wallet outcomes are consistent with each Tessera answer.
CONSISTENT = {
    "Valid": {"valid"},
    "Mismatch": {"invalid"},
    "MalformedAddress": {"address_error"},
    "MalformedSignature": {"signature_error", "invalid"},
}


def main(out_path: str) -> None:
    hotkey = Keypair.create_from_seed("0x" + seed("hotkey").hex())
    coldkey = Keypair.create_from_seed("0x" + seed("coldkey").hex())
    other = Keypair.create_from_seed("0x" + seed("other").hex())
    dev = Keypair.create_from_mnemonic(DEV_MNEMONIC)

    keys = []
    for name, kp, seed_hex, mnemonic in [
        ("hotkey", hotkey, seed("hotkey").hex(), None),
        ("coldkey", coldkey, seed("coldkey").hex(), None),
        ("other", other, seed("other").hex(), None),
        ("dev_mnemonic", dev, None, DEV_MNEMONIC),
    ]:
        public = kp.public_key
        assert ss58(public, 42) == kp.ss58_address, "local SS58 encoder disagrees with the library"
        keys.append(
            {
                "name": name,
                "seed_hex": seed_hex,
                "mnemonic": mnemonic,
                "public_key_hex": public.hex(),
                "ss58_42": kp.ss58_address,
                "addresses": [
                    {"prefix": p, "address": ss58(public, p)} for p in (0, 2, 42, 63, 255, 1000)
                ],
            }
        )

    hk = hotkey.ss58_address
    pk = hotkey.public_key

    # --- addresses -------------------------------------------------------------------------
    good = checksum(bytes([42]) + pk)
    bad_checksum = b58encode(bytes([42]) + pk + bytes([good[0], good[1] ^ 0x01]))
    long_key = b58check(bytes([42]) + pk + b"\x00")
    short_key = b58check(bytes([42]) + pk[:31])
    not_a_point = b"\xff" * 32

    address_cases = [
        ("prefix_42", hk, True, 42),
        ("prefix_0", ss58(pk, 0), True, 0),
        ("prefix_2", ss58(pk, 2), True, 2),
        ("prefix_63", ss58(pk, 63), True, 63),
        ("full_form_registered_255", ss58(pk, 255), True, 255),
        ("coldkey_prefix_42", coldkey.ss58_address, True, 42),
        ("dev_mnemonic_prefix_42", dev.ss58_address, True, 42),
        ("not_a_curve_point", ss58(not_a_point, 42), True, 42),
        # bittensor-wallet consults the SS58 registry; Tessera accepts any 14-bit prefix.
        ("full_form_unregistered_1000", ss58(pk, 1000), True, 1000),
        ("full_form_unregistered_16383", ss58(pk, 16383), True, 16383),
        # bittensor-wallet accepts a 2-byte spelling of a prefix below 64; Tessera refuses it
        # as non-canonical (a second string for the same address).
        ("non_canonical_full_form_42", ss58(pk, 42, full_form=True), False, None),
        ("reserved_prefix_46", ss58(pk, 46), False, None),
        ("reserved_prefix_47", ss58(pk, 47), False, None),
        ("bad_checksum", bad_checksum, False, None),
        ("not_base58", "0" + hk[1:], False, None),
        ("key_too_long", long_key, False, None),
        ("key_too_short", short_key, False, None),
        ("empty", "", False, None),
        ("hex_public_key", "0x" + pk.hex(), False, None),
        ("truncated", hk[:-3], False, None),
    ]
    addresses = []
    for kind, address, expected_valid, prefix in address_cases:
        bt = bt_address(address)
        addresses.append(
            {
                "kind": kind,
                "address": address,
                "expected_valid": expected_valid,
                "bittensor_valid": bt is not None,
                "public_key_hex": bt.hex() if bt is not None else None,
                "prefix": prefix,
            }
        )
        # The documented divergences must still diverge, and nothing else may.
        divergent = kind.startswith(("full_form_unregistered", "non_canonical"))
        agrees = (bt is not None) == expected_valid
        assert agrees != divergent, f"bittensor-wallet changed on {kind}"

    # --- signatures ------------------------------------------------------------------------
    body_json = json.dumps(
        {"username": "fixture_user", "coldkey": coldkey.ss58_address}, separators=(",", ":")
    ).encode()
    body_sha = hashlib.sha256(body_json).hexdigest()
    fingerprint = "Ab3dEf9hJkLmN0pQrStUvWxYz1234567"
    messages = {
        "me": f"{hk}:{NONCE}:me",
        "body": f"{hk}:{NONCE}:{body_sha}",
        "change_fingerprint_hotkey": f"{hk}:{fingerprint}:{NONCE}",
        "change_fingerprint_coldkey": f"{coldkey.ss58_address}:{fingerprint}:{NONCE}",
    }

    def sig(kp: Keypair, message: str) -> str:
        return kp.sign(message.encode()).hex()

    me_sig = sig(hotkey, messages["me"])
    me_bytes = bytes.fromhex(me_sig)
    tampered = bytearray(me_bytes)
    tampered[0] ^= 0x01
    unmarked = bytearray(me_bytes)
    unmarked[63] &= 0x7F
    wrapped_me = sig(hotkey, "<Bytes>" + messages["me"] + "</Bytes>")

    cases = [
        ("me", hk, messages["me"], me_sig, "Valid"),
        ("me_uppercase_hex", hk, messages["me"], me_sig.upper(), "Valid"),
        ("me_0x_prefix", hk, messages["me"], "0x" + me_sig, "Valid"),
        ("me_prefix_0_address", ss58(pk, 0), messages["me"], me_sig, "Valid"),
        ("me_full_form_address", ss58(pk, 255), messages["me"], me_sig, "Valid"),
        ("body_hash", hk, messages["body"], sig(hotkey, messages["body"]), "Valid"),
        (
            "change_fingerprint_hotkey",
            hk,
            messages["change_fingerprint_hotkey"],
            sig(hotkey, messages["change_fingerprint_hotkey"]),
            "Valid",
        ),
        (
            "change_fingerprint_coldkey",
            coldkey.ss58_address,
            messages["change_fingerprint_coldkey"],
            sig(coldkey, messages["change_fingerprint_coldkey"]),
            "Valid",
        ),
        (
            "dev_mnemonic",
            dev.ss58_address,
            "hello from a mnemonic",
            sig(dev, "hello from a mnemonic"),
            "Valid",
        ),
        ("wrapped_over_plain_message", hk, messages["me"], wrapped_me, "Valid"),
        (
            "wrapped_over_wrapped_message",
            hk,
            "<Bytes>" + messages["me"] + "</Bytes>",
            wrapped_me,
            "Valid",
        ),
        ("empty_message", hk, "", sig(hotkey, ""), "Valid"),
        ("tampered_signature", hk, messages["me"], tampered.hex(), "Mismatch"),
        ("other_key", hk, messages["me"], sig(other, messages["me"]), "Mismatch"),
        ("coldkey_sig_for_hotkey", hk, messages["me"], sig(coldkey, messages["me"]), "Mismatch"),
        ("message_changed", hk, messages["me"] + "x", me_sig, "Mismatch"),
        (
            "body_changed",
            hk,
            messages["body"].replace(body_sha, hashlib.sha256(b"{}").hexdigest()),
            sig(hotkey, messages["body"]),
            "Mismatch",
        ),
        ("not_a_curve_point", ss58(not_a_point, 42), messages["me"], me_sig, "Mismatch"),
        ("bad_checksum_address", bad_checksum, messages["me"], me_sig, "MalformedAddress"),
        ("reserved_prefix_address", ss58(pk, 46), messages["me"], me_sig, "MalformedAddress"),
        ("not_base58_address", "0" + hk[1:], messages["me"], me_sig, "MalformedAddress"),
        ("malformed_hex", hk, messages["me"], "zz" + me_sig[2:], "MalformedSignature"),
        ("truncated_signature", hk, messages["me"], me_sig[:-2], "MalformedSignature"),
        ("odd_length_signature", hk, messages["me"], me_sig[:-1], "MalformedSignature"),
        ("extended_signature", hk, messages["me"], me_sig + "00", "MalformedSignature"),
        ("empty_signature", hk, messages["me"], "", "MalformedSignature"),
        ("unmarked_signature", hk, messages["me"], unmarked.hex(), "MalformedSignature"),
    ]
    signatures = []
    for name, address, message, signature_hex, expected in cases:
        bt = bt_verify(address, message.encode(), signature_hex)
        assert bt in CONSISTENT[expected], f"{name}: bittensor-wallet said {bt}, expected {expected}"
        signatures.append(
            {
                "name": name,
                "address": address,
                "message": message,
                "signature_hex": signature_hex,
                "expected": expected,
                "bittensor": bt,
            }
        )

    fixture = {
        "generator": {
            "package": "bittensor-wallet",
            "version": version("bittensor-wallet"),
            "python": platform.python_version(),
            "script": "scripts/sr25519-fixtures",
        },
        "nonce": NONCE,
        "body_json": body_json.decode(),
        "body_sha256_hex": body_sha,
        "fingerprint": fingerprint,
        "keys": keys,
        "addresses": addresses,
        "signatures": signatures,
    }
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(fixture, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
