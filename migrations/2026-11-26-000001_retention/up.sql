-- Housekeeping (retention.*) finds what it may remove by these indexes instead of scanning.
-- Soft-deleted users past their retention, oldest first.
CREATE INDEX users_deleted_at_idx ON users (deleted_at, id) WHERE state = 'deleted';
-- Ended sessions: expired, or revoked.
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);
CREATE INDEX sessions_revoked_at_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
-- Old consumption keys (idempotency_keys already has idempotency_keys_created_at_idx).
CREATE INDEX usage_keys_created_at_idx ON usage_keys (created_at);
-- Past days' quota counters. `day` is never updated, so counter increments stay HOT updates.
CREATE INDEX quota_counters_day_idx ON quota_counters (day);
