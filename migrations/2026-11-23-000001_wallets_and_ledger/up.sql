-- Wallets and their ledger (PRODUCT.md §1 "Wallet and ledger").
--
-- A wallet's balance is a signed count of its currency's minor unit (the scale of each currency
-- is configuration). Every change of a balance is an immutable ledger entry written in the same
-- transaction, so the stored balance always equals the sum of the wallet's entries.
--
-- `allow_negative` is a denormalised copy of the owner's `users.invoicing` flag, kept so that a
-- row-level CHECK can enforce the non-negative rule in the database itself. Whatever changes
-- `users.invoicing` must update `wallets.allow_negative` of that user in the same transaction
-- (the storage port's `set_invoicing` does); new wallets copy the flag when they are inserted.

CREATE TABLE wallets (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name            text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    currency        text NOT NULL CHECK (currency ~ '^[a-z][a-z0-9_]{1,15}$'),
    is_default      boolean NOT NULL DEFAULT false,
    balance         bigint NOT NULL DEFAULT 0,
    allow_negative  boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz,
    CONSTRAINT wallets_balance_non_negative CHECK (balance >= 0 OR allow_negative)
);
-- One live default wallet per user and currency.
CREATE UNIQUE INDEX wallets_one_default_key ON wallets (user_id, currency)
    WHERE is_default AND deleted_at IS NULL;
CREATE INDEX wallets_user_id_idx ON wallets (user_id, created_at, id);

CREATE TABLE ledger_entries (
    id               uuid PRIMARY KEY,
    wallet_id        uuid NOT NULL REFERENCES wallets (id) ON DELETE CASCADE,
    amount           bigint NOT NULL CHECK (amount <> 0),
    balance_after    bigint NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('adjustment', 'transfer_in', 'transfer_out')),
    reason           text NOT NULL CHECK (char_length(reason) BETWEEN 1 AND 500),
    actor_id         uuid REFERENCES users (id) ON DELETE SET NULL,
    transfer_id      uuid,
    idempotency_key  text CHECK (char_length(idempotency_key) BETWEEN 1 AND 255),
    created_at       timestamptz NOT NULL,
    CONSTRAINT ledger_entries_transfer_kind
        CHECK ((kind IN ('transfer_in', 'transfer_out')) = (transfer_id IS NOT NULL))
);
-- The ledger page: newest first, keyset-paginated.
CREATE INDEX ledger_entries_wallet_page_idx
    ON ledger_entries (wallet_id, created_at DESC, id DESC);
CREATE INDEX ledger_entries_transfer_id_idx ON ledger_entries (transfer_id)
    WHERE transfer_id IS NOT NULL;
-- Keeps ON DELETE SET NULL of a purged actor from scanning the whole ledger.
CREATE INDEX ledger_entries_actor_id_idx ON ledger_entries (actor_id)
    WHERE actor_id IS NOT NULL;

-- Idempotency keys of money-moving requests, one per (acting user, key). The row is inserted
-- first in the transaction that moves the money (INSERT … ON CONFLICT DO NOTHING): a concurrent
-- request with the same key waits on the unique index until the first commits, then finds the
-- row and answers with the first result. A transaction that fails leaves no row behind.
CREATE TABLE idempotency_keys (
    scope        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key          text NOT NULL CHECK (char_length(key) BETWEEN 1 AND 255),
    -- The canonical form of the request the key was first used for.
    fingerprint  text NOT NULL,
    -- The entry the request produced (a transfer's debit). Deferred: the key is claimed before
    -- the entry exists, in the same transaction.
    entry_id     uuid NOT NULL REFERENCES ledger_entries (id) ON DELETE CASCADE
                 DEFERRABLE INITIALLY DEFERRED,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_entry_id_idx ON idempotency_keys (entry_id);
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);

-- Every existing user gets its default wallet in `usd`, the shipped default currency (a
-- migration cannot read the configuration; a deployment that configured another default
-- currency before this migration opens those wallets through the API). The ids are v4
-- (PostgreSQL 15 has no v7 generator); later wallets get v7 ids from the application.
INSERT INTO wallets (id, user_id, name, currency, is_default, balance, allow_negative,
                     created_at, updated_at)
SELECT gen_random_uuid(), u.id, 'Main', 'usd', true, 0, u.invoicing, now(), now()
FROM users u
WHERE NOT EXISTS (
    SELECT 1 FROM wallets w
    WHERE w.user_id = u.id AND w.currency = 'usd' AND w.is_default AND w.deleted_at IS NULL
);
