-- Deposit addresses and TAO deposits.
--
-- `users.payment_address` holds each user's deposit address, derived by the application from
-- the operator's master public key (sr25519 soft derivation; no secret is stored anywhere). It is
-- set once and unique.
--
-- `deposits` records every transfer the operator's chain watcher reports, once per chain
-- identity (block, extrinsic index): the unique key is what makes a repeated or concurrent
-- report (from any number of server processes) credit once. The report inserts the row with
-- `INSERT … ON CONFLICT DO NOTHING` first in its transaction; a concurrent duplicate waits on
-- the unique index until the first commits, then finds the row and changes nothing. A credit
-- is an ordinary ledger entry of kind `deposit` in the same transaction.

CREATE UNIQUE INDEX users_payment_address_key ON users (payment_address)
    WHERE payment_address IS NOT NULL;

ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_kind_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_kind_check
    CHECK (kind IN ('adjustment', 'transfer_in', 'transfer_out', 'usage', 'deposit'));

CREATE TABLE deposits (
    id                  uuid PRIMARY KEY,
    -- A decimal block number, or a lower-case 0x block hash.
    block               text NOT NULL CHECK (block ~ '^(0|[1-9][0-9]{0,19}|0x[0-9a-f]{64})$'),
    extrinsic_index     bigint NOT NULL CHECK (extrinsic_index BETWEEN 0 AND 4294967295),
    address             text NOT NULL CHECK (char_length(address) BETWEEN 1 AND 64),
    amount_rao          bigint NOT NULL CHECK (amount_rao > 0),
    -- Millionths of a dollar per TAO.
    rate_micros         bigint NOT NULL CHECK (rate_micros > 0),
    -- Minor units of `currency` credited; 0 unless credited.
    credited            bigint NOT NULL CHECK (credited >= 0),
    currency            text NOT NULL CHECK (currency ~ '^[a-z][a-z0-9_]{1,15}$'),
    status              text NOT NULL CHECK (status IN ('credited', 'ignored', 'unmatched')),
    -- The record stays when the user, wallet, entry or reporter goes: it still keeps the
    -- transfer from being credited again.
    user_id             uuid REFERENCES users (id) ON DELETE SET NULL,
    wallet_id           uuid REFERENCES wallets (id) ON DELETE SET NULL,
    entry_id            uuid REFERENCES ledger_entries (id) ON DELETE SET NULL,
    reported_by         uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at          timestamptz NOT NULL,
    CONSTRAINT deposits_chain_key UNIQUE (block, extrinsic_index),
    CONSTRAINT deposits_credit_matches_status
        CHECK ((status = 'credited') = (credited > 0)),
    CONSTRAINT deposits_unmatched_has_no_user
        CHECK (status <> 'unmatched' OR (user_id IS NULL AND wallet_id IS NULL))
);
CREATE INDEX deposits_created_at_idx ON deposits (created_at DESC, id DESC);
CREATE INDEX deposits_user_id_idx ON deposits (user_id, created_at DESC, id DESC)
    WHERE user_id IS NOT NULL;
CREATE INDEX deposits_status_idx ON deposits (status, created_at DESC, id DESC);
CREATE INDEX deposits_wallet_id_idx ON deposits (wallet_id) WHERE wallet_id IS NOT NULL;
CREATE INDEX deposits_entry_id_idx ON deposits (entry_id) WHERE entry_id IS NOT NULL;
CREATE INDEX deposits_reported_by_idx ON deposits (reported_by) WHERE reported_by IS NOT NULL;
