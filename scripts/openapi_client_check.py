#!/usr/bin/env python3
"""Checks Tessera's OpenAPI document from a consumer's side; run by scripts/openapi-clients.

Subcommands (each exits non-zero on a failure, after saying what failed):

  lint-report REPORT.json   summarise a `redocly lint --format=json` report: errors and
                            warnings grouped by rule, each with its JSON pointer and message;
                            fails when there is any error (warnings are listed, not fatal)
  enums DOCUMENT.json       check that the closed sets of values (API-key and share scopes,
                            permissions, user sort fields and orders) are enums wherever the
                            document shows them, each listing at least the server's values
  imports PACKAGE           import every module of a generated client package (found on
                            PYTHONPATH), walking it whole; fails listing each module that does
                            not import and why
  drive PACKAGE             use the generated client, and nothing else, against OPENAPI_BASE:
                            log in as OPENAPI_ADMIN_USERNAME / OPENAPI_ADMIN_PASSWORD (JSON),
                            create a user, clear two of its fields to JSON null with a PATCH,
                            send and read enum-typed values (sortBy/sortOrder, API-key scopes,
                            permissions), make a wallet adjustment twice under one
                            Idempotency-Key (one entry, one id), then revoke and purge what it
                            made

Only the standard library is used here; `drive` and `imports` need the generated client's own
dependencies (httpx, attrs), which the generator's virtualenv has.
"""

import enum
import importlib
import inspect
import json
import os
import pkgutil
import secrets
import sys
import traceback
from collections import defaultdict


def fail(message):
    print(f"openapi-clients: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


# ---------------------------------------------------------------------------------------------
# lint-report


def lint_report(path):
    with open(path, encoding="utf-8") as f:
        report = json.load(f)
    problems = report.get("problems", [])
    by_severity = defaultdict(lambda: defaultdict(list))
    for problem in problems:
        pointers = [loc.get("pointer", "?") for loc in problem.get("location", [])] or ["?"]
        by_severity[problem["severity"]][problem["ruleId"]].append(
            (pointers[0], problem.get("message", "").strip())
        )
    totals = report.get("totals", {})
    errors = totals.get("errors", len([p for p in problems if p["severity"] == "error"]))
    warnings = totals.get("warnings", len([p for p in problems if p["severity"] == "warn"]))
    for severity, title in (("error", "ERRORS"), ("warn", "warnings")):
        rules = by_severity.get(severity, {})
        if not rules:
            continue
        print(f"redocly {title}:")
        for rule in sorted(rules):
            entries = rules[rule]
            messages = sorted({m for _, m in entries})
            common = f": {messages[0]}" if len(messages) == 1 else ""
            print(f"  {rule} ({len(entries)}){common}")
            for pointer, message in entries:
                suffix = "" if len(messages) == 1 else f"  {message}"
                print(f"    {pointer}{suffix}")
    print(f"redocly lint (recommended): {errors} error(s), {warnings} warning(s)")
    if errors:
        fail(f"redocly lint reports {errors} error(s)")


# ---------------------------------------------------------------------------------------------
# enums

# Closed sets of values the server parses or emits (the Rust enums named), and where the
# document must say so with an `enum`: (operationId, "request" | "response STATUS" |
# "query NAME", property path with "[]" for array items). Each must list at least these values.
API_KEY_SCOPES = ["read", "metering"]  # tessera_domain::model::ApiKeyScope
SHARE_SCOPES = ["data:read", "data:write", "admin", "openid", "profile", "offline_access"]  # Scope
PERMISSIONS = [  # tessera_domain::model::Permission
    "developer",
    "create_user",
    "update_user",
    "delete_user",
    "free_account",
    "unlimited",
    "billing_admin",
    "unlimited_dev",
    "invoice_billing",
    "admin",
    "superuser",
]
SORT_FIELDS = ["username", "createdBy", "lastLogin", "creationTime", "lastUpdated", "type"]
SORT_ORDERS = ["asc", "desc"]
CLOSED_SETS = [
    (
        "API key scopes",
        API_KEY_SCOPES,
        [
            ("create_api_key", "request", "scopes[]"),
            ("create_api_key", "response 201", "scopes[]"),
            ("list_api_keys", "response 200", "[].scopes[]"),
            ("chutes_create_user", "response 200", "api_key.scopes[]"),
        ],
    ),
    (
        "share scopes",
        SHARE_SCOPES,
        [
            ("grant_share", "request", "scopes[]"),
            ("grant_share", "response 201", "scopes[]"),
            ("change_share", "request", "scopes[]"),
            ("list_my_shares", "response 200", "[].scopes[]"),
            ("delegated_token", "request", "scopes[]"),
            ("delegated_token", "response 200", "scopes[]"),
            ("list_users", "response 200", "data[].scopes[]"),
        ],
    ),
    (
        "permissions",
        PERMISSIONS,
        [
            ("get_user", "response 200", "permissions[]"),
            ("get_me", "response 200", "permissions[]"),
        ],
    ),
    (
        "user sort fields",
        SORT_FIELDS,
        [
            ("list_users", "query sortBy", ""),
            ("count_users", "query sortBy", ""),
        ],
    ),
    (
        "sort orders",
        SORT_ORDERS,
        [
            ("list_users", "query sortOrder", ""),
            ("count_users", "query sortOrder", ""),
        ],
    ),
]


class Missing(Exception):
    pass


def closed_set_problems(document):
    """Where a closed set is not an enum (or lacks some of its values), as messages."""

    def resolve(schema, seen=()):
        while isinstance(schema, dict) and "$ref" in schema:
            ref = schema["$ref"]
            if not ref.startswith("#/") or ref in seen:
                raise Missing(f"cannot follow $ref {ref}")
            seen = (*seen, ref)
            node = document
            for part in ref[2:].split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
            schema = node
        return schema

    def branches(schema):
        """The schema and the non-null schemas it combines (allOf / oneOf / anyOf), resolved."""
        schema = resolve(schema)
        found = [schema]
        for key in ("allOf", "oneOf", "anyOf"):
            for sub in schema.get(key, []):
                sub = resolve(sub)
                if sub.get("type") != "null":
                    found += branches(sub)
        return found

    def step(schema, token):
        for candidate in branches(schema):
            if token == "[]" and "items" in candidate:
                return candidate["items"]
            if token != "[]" and token in candidate.get("properties", {}):
                return candidate["properties"][token]
        raise Missing(f"no {'array items' if token == '[]' else 'property ' + token!r}")

    def enum_values(schema):
        values = set()
        for candidate in branches(schema):
            values |= {v for v in candidate.get("enum", []) if v is not None}
            if "const" in candidate and candidate["const"] is not None:
                values.add(candidate["const"])
        return values

    operations = {}
    for path, item in document.get("paths", {}).items():
        for method, op in item.items():
            if isinstance(op, dict) and "operationId" in op:
                operations[op["operationId"]] = (method.upper(), path, op)

    problems = []
    for label, expected, places in CLOSED_SETS:
        for operation_id, where, prop_path in places:
            here = f"{label} at {operation_id} {where} {prop_path}".rstrip()
            try:
                if operation_id not in operations:
                    raise Missing(f"no operation {operation_id}")
                method, path, op = operations[operation_id]
                here = f"{label} at {method} {path} ({operation_id}) {where} {prop_path}".rstrip()
                kind, _, name = where.partition(" ")
                if kind == "request":
                    content = op.get("requestBody", {}).get("content", {})
                    schema = content.get("application/json", {}).get("schema")
                elif kind == "response":
                    content = op.get("responses", {}).get(name, {}).get("content", {})
                    schema = content.get("application/json", {}).get("schema")
                else:
                    params = [resolve(p) for p in op.get("parameters", [])]
                    schema = next((p.get("schema") for p in params if p.get("name") == name), None)
                if schema is None:
                    raise Missing(f"no JSON schema for the {where}")
                tokens = [t for t in prop_path.replace("[]", ".[]").split(".") if t]
                for token in tokens:
                    schema = step(schema, token)
                values = enum_values(schema)
            except Missing as e:
                problems.append(f"{here}: {e}")
                continue
            if not values:
                problems.append(f"{here}: not an enum (expected {', '.join(expected)})")
            elif not set(expected) <= values:
                absent = [v for v in expected if v not in values]
                problems.append(f"{here}: the enum lacks {', '.join(absent)}")
    return problems


def check_enums(path):
    with open(path, encoding="utf-8") as f:
        document = json.load(f)
    problems = closed_set_problems(document)
    places = sum(len(places) for _, _, places in CLOSED_SETS)
    for problem in problems:
        print(f"  {problem}")
    print(f"enums: {places - len(problems)} of {places} closed-set places are enums")
    if problems:
        fail(f"{len(problems)} closed set(s) of values are not enums in the document")


# ---------------------------------------------------------------------------------------------
# imports


def import_everything(package):
    try:
        root = importlib.import_module(package)
    except Exception:  # noqa: BLE001 - every failure is a finding
        fail(f"the package {package} does not import:\n{traceback.format_exc()}")
    failures = []
    count = 1

    def on_error(name):
        failures.append((name, "".join(traceback.format_exception_only(*sys.exc_info()[:2]))))

    for info in pkgutil.walk_packages(root.__path__, package + ".", onerror=on_error):
        count += 1
        try:
            importlib.import_module(info.name)
        except Exception as e:  # noqa: BLE001
            tb = traceback.extract_tb(e.__traceback__)
            where = f" ({tb[-1].filename}:{tb[-1].lineno})" if tb else ""
            failures.append((info.name, f"{type(e).__name__}: {e}{where}"))
    for name, why in failures:
        print(f"  module does not import: {name}: {why.strip()}")
    print(f"imports: {count} generated module(s), {len(failures)} failed")
    if failures:
        fail(f"{len(failures)} generated module(s) do not import")


# ---------------------------------------------------------------------------------------------
# drive


class Step:
    """Names the step under way so a failure says where it happened."""

    current = "start"

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        Step.current = self.name
        print(f"  step: {self.name}")
        return self

    def __exit__(self, kind, value, tb):
        if kind is None:
            return False
        if kind is SystemExit:
            return False
        detail = "".join(traceback.format_exception(kind, value, tb)[-3:]).strip()
        fail(f"step '{self.name}': {kind.__name__}: {value}\n{detail}")


def check(condition, message):
    if not condition:
        fail(f"step '{Step.current}': {message}")


def need_env(name):
    value = os.environ.get(name)
    if not value:
        fail(f"{name} is not set")
    return value


def value_of(item):
    """A generated enum member's value, or the plain value where the document has no enum."""
    return item.value if isinstance(item, enum.Enum) else item


def enums_in(annotation):
    """The enum classes an annotation (`SortBy | Unset`, `list[Scope] | None`) names."""
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return [annotation]
    found = []
    for arg in getattr(annotation, "__args__", ()) or ():
        found += enums_in(arg)
    return found


def argument(function, name, raw):
    """`raw` as the generated function's parameter `name` takes it: its enum's member where the
    document makes the parameter an enum, else the plain value."""
    annotation = inspect.signature(function).parameters[name].annotation
    for cls in enums_in(annotation):
        return cls(raw)
    return raw


def drive(package):
    base = need_env("OPENAPI_BASE").rstrip("/")
    username = need_env("OPENAPI_ADMIN_USERNAME")
    password = need_env("OPENAPI_ADMIN_PASSWORD")

    # Everything below comes from the generated package: its client, operations and models.
    def gen(module):
        with Step(f"import {package}.{module}"):
            return importlib.import_module(f"{package}.{module}")

    client_mod = gen("client")
    login = gen("api.auth.login")
    create_user = gen("api.users.create_user")
    get_user = gen("api.users.get_user")
    update_user = gen("api.users.update_user")
    list_wallets = gen("api.wallets.list_wallets")
    adjust_wallet = gen("api.wallets.adjust_wallet")
    wallet_ledger = gen("api.wallets.wallet_ledger")
    get_wallet = gen("api.wallets.get_wallet")
    get_me = gen("api.users.get_me")
    list_users = gen("api.users.list_users")
    create_api_key = gen("api.auth.create_api_key")
    revoke_api_key = gen("api.auth.revoke_api_key")
    purge_user = gen("api.users.purge_user")
    models = gen("models")
    types = gen("types")

    # What went over the wire, to tell a JSON body from a form one when a check fails.
    sent = []

    def record(request):
        sent.append(
            (
                request.method,
                str(request.url),
                request.headers.get("content-type"),
                request.read(),
                dict(request.headers),
            )
        )

    hooks = {"event_hooks": {"request": [record]}}

    def last_request():
        if not sent:
            return "no request was sent"
        method, url, content_type, body, _ = sent[-1]
        return f"{method} {url} content-type={content_type!r} body={body[:300]!r}"

    def expect(response, status, model, what):
        check(
            int(response.status_code) == status,
            f"{what}: HTTP {int(response.status_code)}, expected {status}; "
            f"body {response.content[:500]!r}; request {last_request()}",
        )
        check(
            isinstance(response.parsed, model),
            f"{what}: parsed as {type(response.parsed).__name__}, expected {model.__name__}",
        )
        return response.parsed

    anonymous = client_mod.Client(base_url=base, raise_on_unexpected_status=True, httpx_args=hooks)

    with Step("log in as the bootstrap admin (login, JSON body)"):
        response = login.sync_detailed(
            client=anonymous, body=models.LoginBody(username=username, password=password)
        )
        tokens = expect(response, 200, models.TokenView, "login")
        check(tokens.access_token, "login: no access_token")
        content_type = sent[-1][2] or ""
        check(
            content_type.startswith("application/json"),
            f"login: the client sent {content_type!r}, not JSON ({last_request()})",
        )

    admin = client_mod.AuthenticatedClient(
        base_url=base, token=tokens.access_token, raise_on_unexpected_status=True, httpx_args=hooks
    )

    suffix = secrets.token_hex(4)
    name = f"oac-{suffix}"
    with Step("create a user (create_user)"):
        response = create_user.sync_detailed(
            client=admin,
            body=models.CreateUserBody(
                username=name,
                password=f"pw-{secrets.token_urlsafe(12)}",
                email=f"{name}@example.com",
                first_name="Ada",
                last_name="Lovelace",
            ),
        )
        created = expect(response, 201, models.CreatedUserView, "create_user")
        user_id = str(created.id)
        check(created.last_name == "Lovelace", f"create_user: last_name is {created.last_name!r}")
        check(created.email == f"{name}@example.com", f"create_user: email is {created.email!r}")

    with Step("clear last_name and email to null (update_user, JSON body)"):
        response = update_user.sync_detailed(
            user_id, client=admin, body=models.UpdateUserBody(last_name=None, email=None)
        )
        _, _, content_type, body, _ = sent[-1]
        check(
            (content_type or "").startswith("application/json"),
            f"update_user: the client sent {content_type!r}, not JSON, so null cannot be said "
            f"({last_request()})",
        )
        try:
            sent_body = json.loads(body)
        except ValueError:
            sent_body = None
        check(
            sent_body == {"last_name": None, "email": None},
            f"update_user: sent {body!r}; expected exactly the two fields, each null (an unset "
            "field must be left out, not sent)",
        )
        updated = expect(response, 200, models.UserView, "update_user")
        check(updated.last_name is None, f"update_user: last_name is {updated.last_name!r}")
        check(updated.email is None, f"update_user: email is {updated.email!r}")
        check(updated.first_name == "Ada", f"update_user: first_name is {updated.first_name!r}")

    with Step("read the user back (get_user)"):
        seen = expect(
            get_user.sync_detailed(user_id, client=admin), 200, models.UserView, "get_user"
        )
        check(seen.last_name is None, f"get_user: last_name is {seen.last_name!r} after clearing")
        check(seen.email is None, f"get_user: email is {seen.email!r} after clearing")
        check(seen.first_name == "Ada", f"get_user: first_name is {seen.first_name!r}")
        check(seen.username == name, f"get_user: username is {seen.username!r}")

    # Closed sets of values (permissions, scopes, sort fields) are enums in the document: the
    # client then has enum classes for them, and parses every value the server sends.
    with Step("the admin's own profile parses, permissions included (get_me)"):
        me = expect(get_me.sync_detailed(client=admin), 200, models.UserView, "get_me")
        permissions = [value_of(p) for p in me.permissions]
        check(
            "admin" in permissions or "superuser" in permissions,
            f"get_me: permissions {permissions}",
        )

    with Step("list users sorted by creation time, newest first (list_users: sortBy, sortOrder)"):
        response = list_users.sync_detailed(
            client=admin,
            search=name,
            sort_by=argument(list_users.sync_detailed, "sort_by", "creationTime"),
            sort_order=argument(list_users.sync_detailed, "sort_order", "desc"),
        )
        listing = expect(response, 200, models.UserListView, "list_users")
        ids = [str(u.id) for u in listing.data]
        check(user_id in ids, f"list_users: the new user is not in {ids}")

    with Step("create an API key with the read scope (create_api_key: scopes)"):
        body = models.CreateApiKeyBody.from_dict({"name": f"{name}-key", "scopes": ["read"]})
        response = create_api_key.sync_detailed(client=admin, body=body)
        sent_body = json.loads(sent[-1][3])
        check(sent_body.get("scopes") == ["read"], f"create_api_key: sent {sent_body!r}")
        key_view = expect(response, 201, models.CreatedApiKey, "create_api_key")
        scopes = [value_of(s) for s in key_view.scopes]
        check(scopes == ["read"], f"create_api_key: scopes {scopes}")

    with Step("find the user's default wallet (list_wallets)"):
        wallets = expect(
            list_wallets.sync_detailed(user_id, client=admin),
            200,
            models.WalletListView,
            "list_wallets",
        )
        defaults = [w for w in wallets.data if w.is_default]
        check(len(defaults) >= 1, f"list_wallets: no default wallet in {wallets.data!r}")
        wallet_id = str(defaults[0].id)
        before = defaults[0].balance

    key = f"oac-{suffix}-credit"
    amount = 1234
    entries = []
    for attempt in ("first", "replayed"):
        with Step(f"adjust the wallet by {amount} under Idempotency-Key {key} ({attempt})"):
            response = adjust_wallet.sync_detailed(
                wallet_id,
                client=admin,
                body=models.AdjustmentBody(amount=amount, reason="openapi client check"),
                idempotency_key=key,
            )
            sent_key = sent[-1][4].get("idempotency-key")
            check(sent_key == key, f"adjust_wallet: the client sent Idempotency-Key {sent_key!r}")
            entry = expect(response, 201, models.LedgerEntryView, f"adjust_wallet ({attempt})")
            check(entry.amount == amount, f"adjust_wallet: amount {entry.amount!r}")
            check(
                entry.idempotency_key == key,
                f"adjust_wallet: idempotency_key {entry.idempotency_key!r}",
            )
            replayed = response.headers.get("idempotent-replayed")
            if attempt == "replayed":
                check(
                    replayed == "true",
                    f"adjust_wallet: Idempotent-Replayed is {replayed!r} on the replay",
                )
            entries.append(entry)
    with Step("the replay returned the first entry"):
        check(
            str(entries[0].id) == str(entries[1].id),
            f"adjust_wallet: two entry ids {entries[0].id} and {entries[1].id} for one key",
        )
        check(
            entries[0].balance_after == entries[1].balance_after, "adjust_wallet: balances differ"
        )

    with Step("the ledger holds one entry for the key (wallet_ledger)"):
        page = expect(
            wallet_ledger.sync_detailed(wallet_id, client=admin),
            200,
            models.LedgerPageView,
            "wallet_ledger",
        )
        keyed = [e for e in page.data if e.idempotency_key == key]
        check(len(keyed) == 1, f"wallet_ledger: {len(keyed)} entries under the key, expected 1")
        check(str(keyed[0].id) == str(entries[0].id), "wallet_ledger: a different entry id")
        check(
            isinstance(page.next_cursor, (str, type(None), types.Unset)),
            "wallet_ledger: cursor type",
        )

    with Step("the balance moved once (get_wallet)"):
        wallet = expect(
            get_wallet.sync_detailed(wallet_id, client=admin), 200, models.WalletView, "get_wallet"
        )
        check(
            wallet.balance == before + amount,
            f"get_wallet: balance {wallet.balance}, expected {before + amount}",
        )

    # Leave nothing behind on a long-lived server.
    with Step("revoke the API key (revoke_api_key)"):
        response = revoke_api_key.sync_detailed(str(key_view.id), client=admin)
        check(int(response.status_code) == 204, f"revoke_api_key: HTTP {int(response.status_code)}")

    with Step("purge the user with its wallet and ledger (purge_user)"):
        response = purge_user.sync_detailed(user_id, client=admin)
        check(int(response.status_code) == 204, f"purge_user: HTTP {int(response.status_code)}")
        response = get_user.sync_detailed(user_id, client=admin)
        check(
            int(response.status_code) == 404,
            f"get_user after purge: HTTP {int(response.status_code)}",
        )

    print(f"drive: every step passed through the generated client ({len(sent)} requests)")


def main(argv):
    if len(argv) != 3 or argv[1] not in ("lint-report", "enums", "imports", "drive"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    command, argument = argv[1], argv[2]
    if command == "lint-report":
        lint_report(argument)
    elif command == "enums":
        check_enums(argument)
    elif command == "imports":
        import_everything(argument)
    else:
        drive(argument)


if __name__ == "__main__":
    main(sys.argv)
