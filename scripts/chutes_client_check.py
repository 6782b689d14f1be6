"""Drives a running Tessera with the published `chutes` client (CLI and library), unchanged.

Run by scripts/chutes-client inside its pinned venv (chutes, bittensor-wallet). Environment:
  CHUTES_CHECK_BASE     the server, e.g. http://127.0.0.1:8080
  CHUTES_CHECK_MASTER   the master SECRET (URI) whose public key the server was given as
                        deposits.master_public_key
  CHUTES_CHECK_WORK     a scratch directory (wallets, the chutes config)

Steps, each a failure of its own if it goes wrong:
  1. a real bittensor wallet on disk (coldkey + hotkey files, bittensor-wallet);
  2. `chutes register` (the CLI, answering "y" to saving the config) completes, prints the
     fingerprint, and writes a config whose payment address is the key the operator derives
     offline from the master secret along /<user id> (docs/operations.md);
  3. the printed fingerprint logs in (POST /users/login) and the token reads /users/me;
  4. the library's own request signer (chutes.util.auth.sign_request, reading that config)
     authenticates a read (GET /users/me, purpose "me"); the client's signed account write
     (`chutes refinger`, POST /users/change_fingerprint, through the library's own function)
     changes the fingerprint; a forged signature is refused.
"""

import configparser
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request

BASE = os.environ["CHUTES_CHECK_BASE"].rstrip("/")
MASTER = os.environ["CHUTES_CHECK_MASTER"]
WORK = os.environ["CHUTES_CHECK_WORK"]
CONFIG = os.path.join(WORK, "chutes", "config.ini")
WALLETS = os.path.join(WORK, "wallets")
USERNAME = "chutes_cli"

# The library reads its config path when it is imported.
os.environ["CHUTES_CONFIG_PATH"] = CONFIG
os.environ["CHUTES_API_URL"] = BASE

failures = []


def check(name, condition, detail=""):
    print(f"chutes-client: {'ok  ' if condition else 'FAIL'} {name}" + (f": {detail}" if detail and not condition else ""))
    if not condition:
        failures.append(name)
    return condition


def call(method, path, headers=None, body=None):
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(BASE + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw.decode(errors="replace")


def main():
    from bittensor_wallet import Keypair, Wallet

    # 1. A real wallet on disk.
    wallet = Wallet(name="tessera", hotkey="default", path=WALLETS)
    wallet.create_new_coldkey(use_password=False, overwrite=True, suppress=True)
    wallet.create_new_hotkey(use_password=False, overwrite=True, suppress=True)
    hotkey_ss58 = wallet.hotkey.ss58_address
    check("bittensor wallet created", os.path.isfile(os.path.join(WALLETS, "tessera", "hotkeys", "default")))

    # 2. `chutes register`, unchanged.
    env = dict(os.environ, HOME=WORK, NO_COLOR="1")
    register = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "chutes"), "register",
         "--username", USERNAME, "--wallets-path", WALLETS, "--wallet", "tessera",
         "--hotkey", "default"],
        input="y\n", capture_output=True, text=True, env=env, timeout=120,
    )
    output = register.stdout + register.stderr
    check("chutes register exits 0", register.returncode == 0, output[-2000:])
    fingerprint = re.search(r"with fingerprint ([A-Za-z0-9]+)", output)
    check("chutes register prints the fingerprint", fingerprint is not None, output[-2000:])
    check("chutes register prints no 'send tao to: None'", "send tao to: None" not in output, output[-2000:])
    config = configparser.ConfigParser()
    check("chutes register writes the config", bool(config.read(CONFIG)), CONFIG)
    if failures:
        return
    user_id = config["auth"]["user_id"]
    address = config["payment"]["address"]
    derived = Keypair.create_from_uri(f"{MASTER}/{user_id}")
    check("the config's payment address is the key derived offline from the master secret",
          address == derived.ss58_address, f"{address} != {derived.ss58_address}")
    check("the config names the hotkey", config["auth"]["hotkey_ss58address"] == hotkey_ss58)
    message = b"tessera deposit address check"
    check("the derived secret signs for that address",
          Keypair(ss58_address=address).verify(message, derived.sign(message)))

    # 3. The fingerprint logs in.
    status, body = call("POST", "/users/login", {"Content-Type": "application/json"},
                        json.dumps({"fingerprint": fingerprint.group(1)}))
    check("the printed fingerprint logs in", status == 200 and "token" in body, f"{status} {body}")
    if status == 200:
        status, me = call("GET", "/users/me", {"Authorization": f"Bearer {body['token']}"})
        check("its token reads /users/me", status == 200 and me.get("user_id") == user_id, f"{status} {me}")

    # 4. The library's signer, reading the config `chutes register` wrote.
    from chutes.util.auth import sign_request

    headers, _ = sign_request(purpose="me")
    status, me = call("GET", "/users/me", headers)
    check("sign_request(purpose='me') reads /users/me",
          status == 200 and me.get("username") == USERNAME and me.get("payment_address") == address,
          f"{status} {me}")
    # A signed write the client makes: `chutes refinger` (change_fingerprint, its own signature
    # `{hotkey}:{new fingerprint}:{nonce}`), run through the library's own function with its
    # prompt answered here instead of on a terminal.
    import typer
    from chutes.entrypoint import fingerprint as refinger

    new_fingerprint = "TesseraRefinger0123456789abcdefX"
    typer.prompt = lambda *args, **kwargs: new_fingerprint
    refinger.typer.prompt = typer.prompt
    refinger.change_fingerprint(
        config_path=None,
        hotkey_path=os.path.join(WALLETS, "tessera", "hotkeys", "default"),
    )
    status, body = call("POST", "/users/login", {"Content-Type": "application/json"},
                        json.dumps({"fingerprint": new_fingerprint}))
    check("chutes refinger's signed write changed the fingerprint (the new one logs in)",
          status == 200 and "token" in body, f"{status} {body}")
    status, body = call("POST", "/users/login", {"Content-Type": "application/json"},
                        json.dumps({"fingerprint": fingerprint.group(1)}))
    check("the old fingerprint no longer logs in", status == 401, f"{status} {body}")
    # A signature made for another hotkey's config is refused (the signer is really checked).
    headers, _ = sign_request(purpose="me")
    headers["X-Chutes-Signature"] = "00" * 64
    status, body = call("GET", "/users/me", headers)
    check("a forged signature is refused", status == 401, f"{status} {body}")

if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # a crash is a failure with its reason, not a traceback to hunt for
        import traceback

        traceback.print_exc()
        failures.append(f"crashed: {e}")
    if failures:
        print(f"chutes-client: FAILED: {'; '.join(failures)}")
        sys.exit(1)
    print("chutes-client: every check passed")
