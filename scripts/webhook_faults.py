"""Webhook delivery under faults, judged by a receiver that verifies every request with the
`standardwebhooks` package from PyPI (the Standard Webhooks maintainers' Python library).

Run by scripts/webhook-faults, which installs the pinned package. One private PostgreSQL
cluster (scripts/dev-postgres) serves every scenario, each on its own database; Tessera runs as
the real binary (`TESSERA_BIN`, default target/debug/tessera) with the test configuration
(retries from 50 ms up to 1 s, a 5 s claim lease). Scenarios, in order:

  down-then-up   the receiver is not listening while 100 credits happen, then comes back:
                 every event arrives.
  sigkill        two Tessera processes deliver 300 events to a slow receiver; one is killed
                 with SIGKILL mid-way (its leased deliveries pass to the other when the lease
                 ends): every event arrives, and a repeat carries the same webhook-id (the
                 event id).
  db-restart     the database restarts while 200 deliveries are under way: delivery resumes
                 by itself, and events written after the restart arrive too.
  burst          two processes, 1 000 events written concurrently through both: each arrives
                 exactly once.

Every request must verify with the endpoint's secret, and its webhook-id must equal the event
id in its body; the set of event ids received is compared with the feed's. Exit status 0 when
every scenario holds; the figures go to stdout.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import standardwebhooks

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("TESSERA_BIN") or os.path.join(
    os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target"), "debug", "tessera"
)
ADMIN_PASSWORD = "webhook-faults-admin-1"
DEADLINE = float(os.environ.get("WEBHOOK_FAULTS_DEADLINE", "120"))


def say(*args):
    print("webhook-faults:", *args, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the receiver ------------------------------------------------------------------------------


class Receiver:
    """A webhook receiver on a fixed port that can be taken down and brought back."""

    def __init__(self):
        self.port = free_port()
        self.lock = threading.Lock()
        self.received = {}  # webhook-id -> deliveries
        self.bad = []  # what did not verify
        self.secret = None
        self.delay = 0.0
        self.server = None

    def up(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.check(headers, body)
                if receiver.delay:
                    time.sleep(receiver.delay)
                self.send_response(204)
                self.end_headers()

        ThreadingHTTPServer.request_queue_size = 256  # two senders of 16 connections each
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def check(self, headers, body):
        try:
            payload = standardwebhooks.Webhook(self.secret).verify(body, headers)
        except Exception as e:  # noqa: BLE001 - any failure to verify is a finding
            with self.lock:
                self.bad.append(f"did not verify: {e}")
            return
        message_id = headers.get("webhook-id")
        with self.lock:
            if payload["data"]["id"] != message_id:
                self.bad.append(f"webhook-id {message_id} is not the event id {payload['data']['id']}")
            self.received[message_id] = self.received.get(message_id, 0) + 1

    def count(self):
        with self.lock:
            return len(self.received)

    def reset(self, secret):
        with self.lock:
            self.received = {}
            self.bad = []
        self.secret = secret
        self.delay = 0.0

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/hooks"


# -- the database and Tessera -----------------------------------------------------------------


class Cluster:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="tessera-webhook-faults-")
        self.port = free_port()

    def script(self, *args):
        env = dict(os.environ)
        env.pop("DATABASE_URL", None)
        env.pop("TESSERA__DATABASE__URL", None)
        env.update(
            TESSERA_PG_PORT="1",
            TESSERA_PRIVATE_PG_DIR=self.dir,
            TESSERA_PRIVATE_PG_PORT=str(self.port),
        )
        out = subprocess.run(
            [os.path.join(REPO, "scripts", "dev-postgres"), *args],
            env=env, capture_output=True, text=True,
        )
        if out.returncode != 0:
            raise SystemExit(f"dev-postgres {args} failed: {out.stderr}")
        return out.stdout.strip()

    def url(self, db):
        return self.script("url", db)

    def stop(self):
        self.script("stop")

    def remove(self):
        try:
            self.stop()
        finally:
            subprocess.run(["rm", "-rf", self.dir])


class Tessera:
    def __init__(self, db_url, name, **settings):
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix=f"tessera-{name}-", suffix=".log", delete=False)
        env = dict(os.environ)
        env.update(
            TESSERA_ENV="test",
            TESSERA_CONFIG_DIR=os.path.join(REPO, "config"),
            TESSERA__DATABASE__URL=db_url,
            TESSERA__SERVER__PORT=str(self.port),
            TESSERA__BOOTSTRAP__ADMIN_USERNAME="admin",
            TESSERA__BOOTSTRAP__ADMIN_PASSWORD=ADMIN_PASSWORD,
            TESSERA__LOG__LEVEL="warn",
        )
        env.update({f"TESSERA__{k.upper()}": str(v) for k, v in settings.items()})
        self.proc = subprocess.Popen([BIN, "serve"], env=env, stdout=self.log, stderr=self.log)
        for _ in range(300):
            try:
                urllib.request.urlopen(self.base + "/readyz", timeout=1)
                return
            except Exception:  # noqa: BLE001 - not ready yet
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        raise SystemExit(f"tessera did not start; log in {self.log.name}")

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def call(base, method, path, token=None, body=None, attempts=1):
    """One JSON request; retried on 503 when `attempts` > 1 (a database restart)."""
    data = None if body is None else json.dumps(body).encode()
    for attempt in range(attempts):
        req = urllib.request.Request(base + path, data=data, method=method)
        req.add_header("content-type", "application/json")
        if token:
            req.add_header("authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                raw = r.read()
                return r.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as e:
            if e.code == 503 and attempt + 1 < attempts:
                time.sleep(0.5)
                continue
            return e.code, e.read().decode(errors="replace")
        except (urllib.error.URLError, ConnectionError):
            if attempt + 1 < attempts:
                time.sleep(0.5)
                continue
            raise
    raise AssertionError("unreachable")


class Account:
    """An admin session, a user with a wallet, and an endpoint subscribed to its credits."""

    def __init__(self, tessera, receiver):
        status, login = call(tessera.base, "POST", "/api/v1/auth/login",
                             body={"username": "admin", "password": ADMIN_PASSWORD})
        assert status == 200, login
        self.token = login["access_token"]
        status, user = call(tessera.base, "POST", "/api/v1/users", self.token,
                            {"username": f"payer{int(time.time() * 1000)}",
                             "password": "correct-horse-9"})
        assert status == 201, user
        self.user = user["id"]
        status, wallets = call(tessera.base, "GET", f"/api/v1/users/{self.user}/wallets", self.token)
        assert status == 200, wallets
        self.wallet = wallets["data"][0]["id"]
        status, endpoint = call(tessera.base, "POST", "/api/v1/webhooks", self.token,
                                {"url": receiver.url, "event_types": ["wallet.credited"],
                                 "description": "fault harness"})
        assert status == 201, endpoint
        self.endpoint = endpoint["id"]
        receiver.reset(endpoint["secret"])

    def credit(self, tessera, n, attempts=1):
        status, body = call(tessera.base, "POST", f"/api/v1/wallets/{self.wallet}/adjustments",
                            self.token, {"amount": 1, "reason": f"credit {n}"}, attempts)
        assert status == 201, (status, body)

    def credits(self, tesseras, count, workers=16):
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda n: self.credit(tesseras[n % len(tesseras)], n), range(count)))

    def feed_ids(self, tessera):
        """The ids of every credit event of the user, from the feed."""
        ids, after = [], None
        while True:
            query = f"?types=wallet.credited&subject={self.user}&limit=1000"
            if after:
                query += f"&after={after}"
            status, page = call(tessera.base, "GET", "/api/v1/events" + query, self.token,
                                attempts=20)
            assert status == 200, page
            ids += [e["id"] for e in page["data"]]
            if not page["data"]:
                return ids
            after = page["next_cursor"]


def wait_for_all(account, tessera, receiver, expected_count):
    """Waits until the feed shows `expected_count` credits and the receiver has each of them."""
    start = time.monotonic()
    ids = []
    while time.monotonic() - start < DEADLINE:
        ids = account.feed_ids(tessera)
        if len(ids) >= expected_count and set(ids) <= set(receiver.received):
            return ids, time.monotonic() - start
        time.sleep(0.25)
    missing = set(ids) - set(receiver.received)
    raise AssertionError(
        f"after {DEADLINE:.0f}s: feed has {len(ids)}/{expected_count} events, "
        f"{len(missing)} never reached the receiver"
    )


def check(receiver, ids, exactly_once):
    assert not receiver.bad, receiver.bad[:5]
    unexpected = set(receiver.received) - set(ids)
    assert not unexpected, f"{len(unexpected)} deliveries of events that are not the user's credits"
    repeats = sum(n - 1 for n in receiver.received.values())
    if exactly_once:
        assert repeats == 0, f"{repeats} repeated deliveries"
    return repeats


def explain_repeats(account, tessera, receiver):
    """Prints the attempts of every event the receiver got more than once."""
    for event_id, n in receiver.received.items():
        if n < 2:
            continue
        status, page = call(tessera.base, "GET",
                            f"/api/v1/webhooks/{account.endpoint}/deliveries?event_id={event_id}",
                            account.token)
        for d in page["data"] if status == 200 else []:
            _, detail = call(tessera.base, "GET",
                             f"/api/v1/webhooks/{account.endpoint}/deliveries/{d['id']}",
                             account.token)
            attempts = [(a.get("status_code"), a.get("error")) for a in detail["attempts_made"]]
            say(f"  event {event_id} arrived {n} times; attempts recorded: {attempts}")


# -- scenarios ---------------------------------------------------------------------------------


def down_then_up(cluster, receiver):
    t = Tessera(cluster.url("wh_down"), "down")
    try:
        receiver.up()
        account = Account(t, receiver)
        receiver.down()
        account.credits([t], 100)
        time.sleep(3)  # several attempts fail meanwhile (retries start at 50 ms)
        assert receiver.count() == 0
        receiver.up()
        ids, waited = wait_for_all(account, t, receiver, 100)
        repeats = check(receiver, ids, exactly_once=False)
        status, deliveries = call(t.base, "GET",
                                  f"/api/v1/webhooks/{account.endpoint}/deliveries?limit=500",
                                  account.token)
        assert status == 200, deliveries
        retried = sum(1 for d in deliveries["data"] if d["attempts"] > 1)
        assert retried > 0, "no delivery was retried"
        say(f"down-then-up: 100/100 delivered {waited:.1f}s after the receiver came back; "
            f"{retried} deliveries needed more than one attempt; {repeats} repeats")
    finally:
        t.stop()


def sigkill(cluster, receiver):
    url = cluster.url("wh_sigkill")
    a = Tessera(url, "a")
    b = Tessera(url, "b")
    try:
        receiver.up()
        account = Account(b, receiver)
        receiver.delay = 0.2
        killed = {}

        def kill_a_mid_way():
            while receiver.count() < 30:
                time.sleep(0.02)
            a.kill()
            killed["after"] = receiver.count()

        killer = threading.Thread(target=kill_a_mid_way)
        killer.start()
        # Written through the survivor; both processes deliver until one is killed.
        account.credits([b], 300)
        killer.join()
        ids, waited = wait_for_all(account, b, receiver, 300)
        repeats = check(receiver, ids, exactly_once=False)
        say(f"sigkill: one of two delivering processes killed after {killed['after']} "
            f"deliveries; 300/300 delivered, the rest by the survivor within {waited:.1f}s; "
            f"{repeats} repeats, each with its event's webhook-id")
    finally:
        a.stop()
        b.stop()


def db_restart(cluster, receiver):
    t = Tessera(cluster.url("wh_restart"), "restart")
    try:
        receiver.up()
        account = Account(t, receiver)
        receiver.delay = 0.25  # about 64 a second: the restart lands mid-way
        account.credits([t], 200)
        while receiver.count() < 20:
            time.sleep(0.05)
        cluster.stop()
        time.sleep(2)
        cluster.url("wh_restart")
        restarted_at = receiver.count()
        receiver.delay = 0.0
        # Events written after the restart are delivered too (the server's pool reconnects).
        for n in range(20):
            account.credit(t, 1000 + n, attempts=60)
        ids, waited = wait_for_all(account, t, receiver, 220)
        repeats = check(receiver, ids, exactly_once=False)
        say(f"db-restart: the database restarted after {restarted_at} deliveries; 220/220 "
            f"delivered within {waited:.1f}s; {repeats} repeats")
    finally:
        t.stop()


def burst(cluster, receiver):
    url = cluster.url("wh_burst")
    # The normal case: attempts are not cut short by a busy machine (a timeout after the
    # receiver took the request is a legitimate repeat, which this scenario is not about).
    normal = {"webhooks__timeout_ms": 15000, "webhooks__lease_secs": 60}
    a = Tessera(url, "a", **normal)
    b = Tessera(url, "b", **normal)
    try:
        receiver.up()
        account = Account(a, receiver)
        started = time.monotonic()
        account.credits([a, b], 1000, workers=32)
        ids, _ = wait_for_all(account, a, receiver, 1000)
        took = time.monotonic() - started
        explain_repeats(account, a, receiver)
        check(receiver, ids, exactly_once=True)
        say(f"burst: 1000 events written through two processes and delivered exactly once "
            f"each in {took:.1f}s")
    finally:
        a.stop()
        b.stop()


SCENARIOS = {
    "down-then-up": down_then_up,
    "sigkill": sigkill,
    "db-restart": db_restart,
    "burst": burst,
}


def main():
    wanted = sys.argv[1:] or list(SCENARIOS)
    unknown = [w for w in wanted if w not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenario(s) {unknown}; choose from {list(SCENARIOS)}")
    if not os.access(BIN, os.X_OK):
        raise SystemExit(f"no tessera binary at {BIN} (cargo build -p tessera-server)")
    cluster = Cluster()
    receiver = Receiver()
    failed = []
    try:
        for name in wanted:
            try:
                SCENARIOS[name](cluster, receiver)
            except AssertionError as e:
                failed.append(name)
                say(f"{name}: FAILED: {e}")
            finally:
                receiver.down()
    finally:
        cluster.remove()
    if failed:
        raise SystemExit(f"webhook-faults: failed: {', '.join(failed)}")
    say("every scenario held")


if __name__ == "__main__":
    main()
