-- Metering (PRODUCT.md §1 "Tiers, quotas, discounts, usage", §4 "Metering").
--
-- Everything here belongs to one user and goes with it on purge (ON DELETE CASCADE).
-- A resource id is a UUID or '*' (the wildcard), as in tier_quotas.

-- Per-user daily quotas; they win over the tier's defaults and the server default.
CREATE TABLE user_quotas (
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    resource_id  text NOT NULL CHECK (resource_id = '*' OR resource_id ~ '^[0-9a-f-]{36}$'),
    daily_limit  bigint NOT NULL CHECK (daily_limit BETWEEN 0 AND 1000000000000),
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (user_id, resource_id)
);

-- Per-user discounts, in parts per million, strictly between 0 and 1.
CREATE TABLE user_discounts (
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    resource_id  text NOT NULL CHECK (resource_id = '*' OR resource_id ~ '^[0-9a-f-]{36}$'),
    ppm          integer NOT NULL CHECK (ppm BETWEEN 1 AND 999999),
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (user_id, resource_id)
);

-- The day's quota counters: one per user, counter and UTC day. `counter_key` is a resource id
-- when the quota came from a row for that resource, else '__default__' (shared by every
-- resource under the wildcard). Incremented only by one conditional upsert
-- (INSERT … ON CONFLICT DO UPDATE … WHERE used + n <= quota), never read-modify-write.
CREATE TABLE quota_counters (
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    counter_key  text NOT NULL
                 CHECK (counter_key = '__default__' OR counter_key ~ '^[0-9a-f-]{36}$'),
    day          date NOT NULL,
    used         bigint NOT NULL CHECK (used >= 0),
    PRIMARY KEY (user_id, counter_key, day)
);

-- Hourly usage: calls, amount charged (minor units of the default currency) and tokens.
CREATE TABLE usage_buckets (
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    resource_id    text NOT NULL CHECK (resource_id = '*' OR resource_id ~ '^[0-9a-f-]{36}$'),
    bucket         timestamptz NOT NULL CHECK (date_trunc('hour', bucket AT TIME ZONE 'UTC')
                                              = bucket AT TIME ZONE 'UTC'),
    count          bigint NOT NULL CHECK (count >= 0),
    amount         bigint NOT NULL CHECK (amount >= 0),
    input_tokens   bigint NOT NULL CHECK (input_tokens >= 0),
    output_tokens  bigint NOT NULL CHECK (output_tokens >= 0),
    PRIMARY KEY (user_id, resource_id, bucket)
);
-- The grouped history: newest bucket first per user.
CREATE INDEX usage_buckets_user_bucket_idx ON usage_buckets (user_id, bucket DESC);

-- Idempotency keys of consumptions, one per (caller, key). Claimed first in the consumption's
-- transaction (INSERT … ON CONFLICT DO NOTHING; a concurrent duplicate waits on the unique index
-- until the first commits), and completed with the decision at the end of that transaction, so
-- a replay answers with the first decision. Unlike idempotency_keys, the result need not be a
-- ledger entry (a call covered by the quota writes none).
CREATE TABLE usage_keys (
    scope           uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key             text NOT NULL CHECK (char_length(key) BETWEEN 1 AND 255),
    fingerprint     text NOT NULL,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    source          text CHECK (source IN ('quota', 'balance', 'free', 'invoice')),
    amount_charged  bigint,
    entry_id        uuid REFERENCES ledger_entries (id) ON DELETE SET NULL,
    balance_after   bigint,
    quota_used      bigint,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX usage_keys_user_id_idx ON usage_keys (user_id);
CREATE INDEX usage_keys_entry_id_idx ON usage_keys (entry_id) WHERE entry_id IS NOT NULL;

-- Charges past the quota are ledger entries of their own kind.
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_kind_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_kind_check
    CHECK (kind IN ('adjustment', 'transfer_in', 'transfer_out', 'usage'));
