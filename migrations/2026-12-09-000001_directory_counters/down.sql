DROP INDEX users_rare_state_idx;
DROP TRIGGER users_counters_truncate ON users;
DROP TRIGGER users_counters_delete ON users;
DROP TRIGGER users_counters_update ON users;
DROP TRIGGER users_counters_insert ON users;
DROP FUNCTION users_counters_reset();
DROP FUNCTION users_counters_apply();
DROP TABLE user_created_days;
DROP TABLE user_state_counts;
