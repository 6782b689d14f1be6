-- Users carry every field of PRODUCT.md §1 from the start, so later capabilities add behaviour,
-- not churn. Secrets (password and fingerprint hashes) live here but never leave the adapter.

CREATE TABLE tiers (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX tiers_name_key ON tiers (lower(name));

CREATE TABLE users (
    id                    uuid PRIMARY KEY,
    username              text CHECK (length(username) BETWEEN 2 AND 254),
    email                 text CHECK (length(email) <= 254),
    first_name            text CHECK (length(first_name) <= 400),
    last_name             text CHECK (length(last_name) <= 400),
    logo_id               uuid,
    password_hash         text,
    hotkey                text CHECK (length(hotkey) <= 64),
    coldkey               text CHECK (length(coldkey) <= 64),
    payment_address       text CHECK (length(payment_address) <= 128),
    fingerprint_hash      text,
    permissions           bigint NOT NULL DEFAULT 0 CHECK (permissions >= 0),
    tier_id               uuid REFERENCES tiers (id) ON DELETE RESTRICT,
    invoicing             boolean NOT NULL DEFAULT false,
    unlimited             boolean NOT NULL DEFAULT false,
    squad_enabled         boolean NOT NULL DEFAULT false,
    manager_id            uuid REFERENCES users (id) ON DELETE CASCADE,
    state                 text NOT NULL DEFAULT 'active'
                          CHECK (state IN ('active', 'deactivated', 'deleted')),
    must_change_password  boolean NOT NULL DEFAULT false,
    tokens_valid_after    timestamptz NOT NULL DEFAULT now(),
    created_by            uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    last_login_at         timestamptz,
    deleted_at            timestamptz,
    -- Managed users have no login identity and no credentials.
    CONSTRAINT users_managed_without_credentials CHECK (
        manager_id IS NULL
        OR (username IS NULL AND email IS NULL AND password_hash IS NULL
            AND hotkey IS NULL AND fingerprint_hash IS NULL)
    ),
    CONSTRAINT users_deleted_at_matches_state CHECK ((state = 'deleted') = (deleted_at IS NOT NULL))
);

-- Case-insensitive uniqueness, including soft-deleted users (their names stay reserved).
CREATE UNIQUE INDEX users_username_key ON users (lower(username));
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE UNIQUE INDEX users_hotkey_key ON users (hotkey);
CREATE INDEX users_manager_id_idx ON users (manager_id) WHERE manager_id IS NOT NULL;
CREATE INDEX users_created_by_idx ON users (created_by) WHERE created_by IS NOT NULL;
CREATE INDEX users_created_at_id_idx ON users (created_at, id);
CREATE INDEX users_tier_id_idx ON users (tier_id) WHERE tier_id IS NOT NULL;

CREATE TABLE sessions (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id) WHERE revoked_at IS NULL;

-- Refresh tokens are stored as SHA-256 digests. A spent token is kept until its session goes,
-- so presenting it again is recognised as theft.
CREATE TABLE refresh_tokens (
    digest      text PRIMARY KEY,
    session_id  uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL,
    spent_at    timestamptz
);
CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);
