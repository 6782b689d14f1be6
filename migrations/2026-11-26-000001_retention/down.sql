DROP INDEX quota_counters_day_idx;
DROP INDEX usage_keys_created_at_idx;
DROP INDEX sessions_revoked_at_idx;
DROP INDEX sessions_expires_at_idx;
DROP INDEX users_deleted_at_idx;
