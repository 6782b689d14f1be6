"""Writes the deposit-address fixture: user keys derived from a master secret with the
bittensor-wallet package, exactly as docs/operations.md tells an operator to derive them.

For a master seed and a master mnemonic, and a few user ids, it records the master public
address, the address of the key derived along `<master>/<user id>`, and a signature made by that
derived key. Tessera's test derives the address from the master public address alone and checks
that it is the same and that the signature verifies for it.

Usage: python payment_address_fixtures.py OUT.json
"""

import json
import sys
import uuid

from bittensor_wallet import Keypair

MESSAGE = "tessera deposit address check"
USER_IDS = [
    "0191f1a2-0000-7000-8000-00000000c0de",
    "019b0000-1111-7222-8333-444455556666",
    str(uuid.UUID(int=0)),
]
MASTERS = [
    # A raw 32-byte seed, as `0x` + hex.
    "0x" + "09" * 32,
    # A BIP-39 mnemonic (the usual form of a coldkey's secret).
    "bottom drive obey lake curtain smoke basket hold race lonely fit walk",
]


def derive(master_secret_uri: str, user_id: str) -> Keypair:
    """The secret key of a user's deposit address (docs/operations.md)."""
    return Keypair.create_from_uri(f"{master_secret_uri}/{user_id}")


def main(out: str) -> None:
    cases = []
    for master_uri in MASTERS:
        master = Keypair.create_from_uri(master_uri)
        for user_id in USER_IDS:
            key = derive(master_uri, user_id)
            cases.append(
                {
                    "master_address": master.ss58_address,
                    "user_id": user_id,
                    "address": key.ss58_address,
                    "message": MESSAGE,
                    "signature": key.sign(MESSAGE.encode()).hex(),
                }
            )
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"generator": "bittensor-wallet", "cases": cases}, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
