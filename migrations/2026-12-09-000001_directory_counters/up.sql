-- Directory counters: how many users are in each state, and how many existing users were
-- created on each UTC day, kept by triggers in the same transaction as every insert, update,
-- delete (cascades included) and truncate of `users`. Reading them costs O(states) and
-- O(days), whatever the size of the directory.
--
-- Each counter is split into slots (the writing backend's pid modulo 8) so concurrent writers
-- rarely wait on the same row; a count is the sum of its slots. Slots may go negative; only
-- their sum means anything.

CREATE TABLE user_state_counts (
    state  text NOT NULL CHECK (state IN ('active', 'deactivated', 'deleted')),
    slot   smallint NOT NULL CHECK (slot BETWEEN 0 AND 7),
    n      bigint NOT NULL,
    PRIMARY KEY (state, slot)
);

CREATE TABLE user_created_days (
    day    date NOT NULL,
    slot   smallint NOT NULL CHECK (slot BETWEEN 0 AND 7),
    n      bigint NOT NULL,
    PRIMARY KEY (day, slot)
);

-- One statement at a time (transition tables): a bulk insert adds one row per state and day,
-- not one per user. Rows are written in key order so two writers on one slot lock alike.
CREATE FUNCTION users_counters_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO user_state_counts AS c (state, slot, n)
        SELECT state, pg_backend_pid() % 8, count(*) FROM counted_new GROUP BY state ORDER BY state
        ON CONFLICT (state, slot) DO UPDATE SET n = c.n + EXCLUDED.n;
        INSERT INTO user_created_days AS c (day, slot, n)
        SELECT (created_at AT TIME ZONE 'UTC')::date, pg_backend_pid() % 8, count(*)
        FROM counted_new GROUP BY 1 ORDER BY 1
        ON CONFLICT (day, slot) DO UPDATE SET n = c.n + EXCLUDED.n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO user_state_counts AS c (state, slot, n)
        SELECT state, pg_backend_pid() % 8, -count(*) FROM counted_old GROUP BY state ORDER BY state
        ON CONFLICT (state, slot) DO UPDATE SET n = c.n + EXCLUDED.n;
        INSERT INTO user_created_days AS c (day, slot, n)
        SELECT (created_at AT TIME ZONE 'UTC')::date, pg_backend_pid() % 8, -count(*)
        FROM counted_old GROUP BY 1 ORDER BY 1
        ON CONFLICT (day, slot) DO UPDATE SET n = c.n + EXCLUDED.n;
    ELSE
        -- An update moves counts only when it changes a state or a creation day; otherwise
        -- every group sums to zero and no counter row is touched (or locked).
        INSERT INTO user_state_counts AS c (state, slot, n)
        SELECT state, pg_backend_pid() % 8, sum(d) FROM (
            SELECT state, 1 AS d FROM counted_new
            UNION ALL SELECT state, -1 FROM counted_old
        ) moved GROUP BY state HAVING sum(d) <> 0 ORDER BY state
        ON CONFLICT (state, slot) DO UPDATE SET n = c.n + EXCLUDED.n;
        INSERT INTO user_created_days AS c (day, slot, n)
        SELECT day, pg_backend_pid() % 8, sum(d) FROM (
            SELECT (created_at AT TIME ZONE 'UTC')::date AS day, 1 AS d FROM counted_new
            UNION ALL SELECT (created_at AT TIME ZONE 'UTC')::date, -1 FROM counted_old
        ) moved GROUP BY day HAVING sum(d) <> 0 ORDER BY day
        ON CONFLICT (day, slot) DO UPDATE SET n = c.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION users_counters_reset() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM user_state_counts;
    DELETE FROM user_created_days;
    RETURN NULL;
END
$$;

CREATE TRIGGER users_counters_insert AFTER INSERT ON users
    REFERENCING NEW TABLE AS counted_new
    FOR EACH STATEMENT EXECUTE FUNCTION users_counters_apply();
CREATE TRIGGER users_counters_update AFTER UPDATE ON users
    REFERENCING OLD TABLE AS counted_old NEW TABLE AS counted_new
    FOR EACH STATEMENT EXECUTE FUNCTION users_counters_apply();
CREATE TRIGGER users_counters_delete AFTER DELETE ON users
    REFERENCING OLD TABLE AS counted_old
    FOR EACH STATEMENT EXECUTE FUNCTION users_counters_apply();
CREATE TRIGGER users_counters_truncate AFTER TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION users_counters_reset();

-- The users that exist when this runs.
LOCK TABLE users IN SHARE MODE;
INSERT INTO user_state_counts (state, slot, n)
SELECT state, 0, count(*) FROM users GROUP BY state;
INSERT INTO user_created_days (day, slot, n)
SELECT (created_at AT TIME ZONE 'UTC')::date, 0, count(*) FROM users GROUP BY 1;

-- The users in a rarer state, for a listing filtered by it and known (by the counts) to be
-- small: fetched by this index and sorted, instead of walking a sort index past every active
-- user.
CREATE INDEX users_rare_state_idx ON users (state, created_at, id) WHERE state <> 'active';

-- Sorting by type (local users first) reads this index instead of sorting the directory.
CREATE INDEX users_type_id_idx ON users ((password_hash IS NULL), id);
