-- Directory administration: tier contents, the audit trail, and indexes behind every filter and
-- sort of GET /api/v1/users.

-- Usernames and emails share one login namespace: an email-shaped username must be the user's
-- own email, so the unique index on lower(email) also keeps anyone from logging in as another
-- user's email address.
ALTER TABLE users ADD CONSTRAINT users_email_username_is_own_email
    CHECK (position('@' IN username) = 0 OR (email IS NOT NULL AND lower(username) = lower(email)));

CREATE TABLE tier_quotas (
    tier_id      uuid NOT NULL REFERENCES tiers (id) ON DELETE CASCADE,
    -- A UUID or '*'.
    resource_id  text NOT NULL CHECK (resource_id = '*' OR resource_id ~ '^[0-9a-f-]{36}$'),
    daily_limit  bigint NOT NULL CHECK (daily_limit >= 0),
    PRIMARY KEY (tier_id, resource_id)
);

CREATE TABLE tier_rate_limits (
    tier_id      uuid NOT NULL REFERENCES tiers (id) ON DELETE CASCADE,
    path         text NOT NULL CHECK (length(path) BETWEEN 1 AND 200),
    max_requests integer NOT NULL CHECK (max_requests > 0),
    period_secs  integer NOT NULL CHECK (period_secs > 0),
    PRIMARY KEY (tier_id, path)
);

-- Every administrative change, written in the same transaction as the change. Secrets never
-- appear in `changes`.
CREATE TABLE audit_events (
    id          uuid PRIMARY KEY,
    at          timestamptz NOT NULL,
    actor_id    uuid,
    target_id   uuid,
    action      text NOT NULL CHECK (length(action) <= 64),
    changes     jsonb NOT NULL DEFAULT '{}'::jsonb
);
-- Newest first, cursor on (at, id); filters by actor, target and action.
CREATE INDEX audit_events_at_id_idx ON audit_events (at DESC, id DESC);
CREATE INDEX audit_events_actor_idx ON audit_events (actor_id, at DESC, id DESC);
CREATE INDEX audit_events_target_idx ON audit_events (target_id, at DESC, id DESC);
CREATE INDEX audit_events_action_idx ON audit_events (action, at DESC, id DESC);

-- Substring search (=@, search, name) uses trigram indexes; pg_trgm is a trusted extension.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX users_username_trgm_idx ON users USING gin (username gin_trgm_ops);
CREATE INDEX users_email_trgm_idx ON users USING gin (email gin_trgm_ops);
CREATE INDEX users_first_name_trgm_idx ON users USING gin (first_name gin_trgm_ops);
CREATE INDEX users_last_name_trgm_idx ON users USING gin (last_name gin_trgm_ops);
-- Sorts (nulls last in both directions, ties by id) and range filters. Nullable sort keys need
-- one index per direction, because NULLS LAST reverses to NULLS FIRST in a backward scan.
CREATE INDEX users_lower_username_id_idx ON users ((lower(username) COLLATE "C"), id);
CREATE INDEX users_lower_username_desc_idx
    ON users ((lower(username) COLLATE "C") DESC NULLS LAST, id DESC);
CREATE INDEX users_last_login_id_idx ON users (last_login_at, id);
CREATE INDEX users_last_login_desc_idx ON users (last_login_at DESC NULLS LAST, id DESC);
CREATE INDEX users_updated_at_id_idx ON users (updated_at, id);
-- The default order and the directory's total over live users: an index-only scan, not a
-- sequential one, for both.
CREATE INDEX users_live_created_at_id_idx ON users (created_at, id) WHERE state <> 'deleted';
-- The daily growth statistic groups by UTC day.
CREATE INDEX users_created_day_idx ON users (((created_at AT TIME ZONE 'UTC')::date));
