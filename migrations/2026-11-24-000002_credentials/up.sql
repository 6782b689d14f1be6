-- Bittensor identities, fingerprints and API keys, and the shared abuse guards.

-- Fingerprints are looked up by their hash (login, change_bt_auth, DELETE /users/me); two
-- accounts can never share one.
CREATE UNIQUE INDEX users_fingerprint_hash_key ON users (fingerprint_hash);
-- Fingerprint rotation signed by a coldkey finds its account by coldkey.
CREATE INDEX users_coldkey_idx ON users (coldkey) WHERE coldkey IS NOT NULL;

-- Secrets are stored as SHA-256 digests only; a key is found by the digest of what is presented.
CREATE TABLE api_keys (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    admin         boolean NOT NULL,
    -- Comma-separated scope names of non-admin keys.
    scopes        text NOT NULL DEFAULT '' CHECK (length(scopes) <= 200),
    digest        text NOT NULL,
    created_at    timestamptz NOT NULL,
    last_used_at  timestamptz
);
CREATE UNIQUE INDEX api_keys_digest_key ON api_keys (digest);
CREATE INDEX api_keys_user_id_idx ON api_keys (user_id, created_at);

-- Signatures of state-changing hotkey-signed requests, kept until their nonce window closes so
-- a replay is refused by every server process.
CREATE TABLE used_signatures (
    signature   text PRIMARY KEY CHECK (length(signature) <= 256),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX used_signatures_expires_at_idx ON used_signatures (expires_at);

-- Fixed-window counters (registration throttles, rate limits): one upsert per hit.
CREATE TABLE rate_counters (
    key           text NOT NULL CHECK (length(key) <= 300),
    window_start  timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    hits          bigint NOT NULL CHECK (hits >= 0),
    PRIMARY KEY (key, window_start)
);
CREATE INDEX rate_counters_expires_at_idx ON rate_counters (expires_at);
