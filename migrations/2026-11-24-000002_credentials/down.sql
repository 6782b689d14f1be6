DROP TABLE rate_counters;
DROP TABLE used_signatures;
DROP TABLE api_keys;
DROP INDEX users_coldkey_idx;
DROP INDEX users_fingerprint_hash_key;
