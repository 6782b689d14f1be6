-- Events: facts about changes, written in the same transaction as the change they describe.
--
-- The feed reads them in (tx, seq) order and only those whose transaction id is below the
-- oldest transaction still running (pg_snapshot_xmin of the current snapshot): every
-- transaction below that horizon has finished, so no event can later appear before a position
-- a reader was given, even though transactions commit in any order.

-- A UUID version 7 whose timestamp is `at` (RFC 9562): 48 bits of Unix milliseconds, then the
-- random bits of a version 4 UUID with the version nibble set to 7.
CREATE FUNCTION tessera_uuid_v7(at timestamptz) RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send(floor(extract(epoch FROM at) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;

CREATE TABLE events (
    seq          bigint GENERATED ALWAYS AS IDENTITY,
    -- The writing transaction; a subtransaction's rows carry the top-level id.
    tx           xid8 NOT NULL DEFAULT pg_current_xact_id(),
    id           uuid NOT NULL,
    type         text NOT NULL CHECK (length(type) BETWEEN 1 AND 64),
    version      smallint NOT NULL CHECK (version >= 1),
    occurred_at  timestamptz NOT NULL,
    subject_id   uuid,
    actor_id     uuid,
    payload      jsonb NOT NULL,
    PRIMARY KEY (tx, seq)
);
CREATE UNIQUE INDEX events_id_idx ON events (id);
CREATE INDEX events_subject_idx ON events (subject_id, tx, seq);
-- Housekeeping and redelivery by time.
CREATE INDEX events_occurred_at_idx ON events (occurred_at);

-- Balance thresholds: a user's own for a currency, else their tier's.
CREATE TABLE user_balance_thresholds (
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    currency   text NOT NULL CHECK (length(currency) BETWEEN 2 AND 16),
    threshold  bigint NOT NULL,
    PRIMARY KEY (user_id, currency)
);
CREATE TABLE tier_balance_thresholds (
    tier_id    uuid NOT NULL REFERENCES tiers (id) ON DELETE CASCADE,
    currency   text NOT NULL CHECK (length(currency) BETWEEN 2 AND 16),
    threshold  bigint NOT NULL,
    PRIMARY KEY (tier_id, currency)
);

-- Every ledger entry is one money movement: its events are made here, so no path that writes
-- an entry can forget them. `wallet.credited` / `wallet.debited`, and `balance.below_threshold`
-- when a debit takes the balance from at least the owner's threshold to below it (so once per
-- crossing; again only after the balance was back at or above it). The payloads are the
-- domain's `LedgerPayload` and `BalancePayload`; the storage contract suite checks that both
-- adapters produce the same events.
CREATE FUNCTION tessera_ledger_events() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    owner_id   uuid;
    cur        text;
    threshold  bigint;
BEGIN
    SELECT user_id, currency INTO owner_id, cur FROM wallets WHERE id = NEW.wallet_id;
    INSERT INTO events (id, type, version, occurred_at, subject_id, actor_id, payload)
    VALUES (tessera_uuid_v7(NEW.created_at),
            CASE WHEN NEW.amount > 0 THEN 'wallet.credited' ELSE 'wallet.debited' END,
            1, NEW.created_at, owner_id, NEW.actor_id,
            jsonb_build_object('wallet_id', NEW.wallet_id, 'entry_id', NEW.id,
                               'kind', NEW.kind, 'amount', NEW.amount,
                               'balance_after', NEW.balance_after, 'currency', cur,
                               'reason', NEW.reason, 'transfer_id', NEW.transfer_id));
    IF NEW.amount < 0 THEN
        SELECT coalesce(
                 (SELECT b.threshold FROM user_balance_thresholds b
                   WHERE b.user_id = owner_id AND b.currency = cur),
                 (SELECT t.threshold FROM users u
                    JOIN tier_balance_thresholds t ON t.tier_id = u.tier_id
                   WHERE u.id = owner_id AND t.currency = cur))
          INTO threshold;
        IF threshold IS NOT NULL
           AND NEW.balance_after < threshold
           AND NEW.balance_after::numeric - NEW.amount >= threshold THEN
            INSERT INTO events (id, type, version, occurred_at, subject_id, actor_id, payload)
            VALUES (tessera_uuid_v7(NEW.created_at), 'balance.below_threshold', 1,
                    NEW.created_at, owner_id, NEW.actor_id,
                    jsonb_build_object('wallet_id', NEW.wallet_id, 'currency', cur,
                                       'balance', NEW.balance_after, 'threshold', threshold,
                                       'entry_id', NEW.id));
        END IF;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER ledger_entries_events AFTER INSERT ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION tessera_ledger_events();

-- Set by the first call of the day the quota did not cover, with the id of its
-- `quota.exhausted` event: one event per user, counter and day.
ALTER TABLE quota_counters ADD COLUMN exhausted_by uuid;

-- Webhook endpoints. Secrets are sealed with the server's `webhooks.secret_key`.
CREATE TABLE webhook_endpoints (
    id                          uuid PRIMARY KEY,
    url                         text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    description                 text NOT NULL CHECK (length(description) <= 500),
    -- Empty: every type.
    event_types                 text[] NOT NULL CHECK (cardinality(event_types) <= 64),
    enabled                     boolean NOT NULL,
    disabled_reason             text CHECK (length(disabled_reason) <= 200),
    failing_since               timestamptz,
    secret                      bytea NOT NULL,
    previous_secret             bytea,
    previous_secret_expires_at  timestamptz,
    created_at                  timestamptz NOT NULL,
    updated_at                  timestamptz NOT NULL
);

-- One delivery per endpoint and event. A pending delivery is due at next_attempt_at; claiming
-- it moves next_attempt_at to the end of the claimer's lease, so a worker that dies simply
-- lets the lease run out.
CREATE TABLE webhook_deliveries (
    id                uuid PRIMARY KEY,
    endpoint_id       uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id          uuid NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    event_type        text NOT NULL,
    status            text NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts          integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at   timestamptz,
    first_attempt_at  timestamptz,
    last_attempt_at   timestamptz,
    delivered_at      timestamptz,
    last_status_code  integer,
    last_error        text,
    claim             uuid,
    created_at        timestamptz NOT NULL,
    UNIQUE (endpoint_id, event_id),
    CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL))
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, id DESC);
CREATE INDEX webhook_deliveries_event_idx ON webhook_deliveries (event_id);
CREATE INDEX webhook_deliveries_finished_idx ON webhook_deliveries (created_at)
    WHERE status <> 'pending';

CREATE TABLE webhook_attempts (
    id                uuid PRIMARY KEY,
    delivery_id       uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempted_at      timestamptz NOT NULL,
    duration_ms       integer NOT NULL CHECK (duration_ms >= 0),
    status_code       integer,
    error             text CHECK (length(error) <= 1000),
    response_excerpt  text CHECK (length(response_excerpt) <= 1024)
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, attempted_at);

-- How far fan-out has read the feed. One row; the process that fans out holds it locked.
CREATE TABLE event_consumers (
    name  text PRIMARY KEY,
    tx    xid8 NOT NULL,
    seq   bigint NOT NULL
);
INSERT INTO event_consumers (name, tx, seq) VALUES ('webhooks', '0', 0);
