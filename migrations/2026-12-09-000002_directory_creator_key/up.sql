-- The directory's `sortBy=createdBy` key — the creator's username in lowercase — kept on each
-- user's row, so the sort reads an index instead of looking up every user's creator and sorting
-- the whole directory. Kept by triggers: set when a user is inserted or its creator changes
-- (including ON DELETE SET NULL when the creator is purged), and rewritten on the rows a user
-- created when that user's username changes.

ALTER TABLE users ADD COLUMN creator_key text COLLATE "C";

CREATE FUNCTION users_creator_key_set() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.created_by IS NULL THEN
        NEW.creator_key := NULL;
    ELSIF NEW.created_by = NEW.id THEN
        NEW.creator_key := lower(NEW.username);
    ELSE
        NEW.creator_key := (SELECT lower(c.username) FROM users c WHERE c.id = NEW.created_by);
    END IF;
    RETURN NEW;
END
$$;

CREATE FUNCTION users_creator_key_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE users SET creator_key = lower(NEW.username)
    WHERE created_by = NEW.id AND creator_key IS DISTINCT FROM lower(NEW.username);
    RETURN NULL;
END
$$;

CREATE TRIGGER users_creator_key_insert BEFORE INSERT ON users
    FOR EACH ROW EXECUTE FUNCTION users_creator_key_set();
CREATE TRIGGER users_creator_key_update BEFORE UPDATE OF created_by ON users
    FOR EACH ROW EXECUTE FUNCTION users_creator_key_set();
CREATE TRIGGER users_creator_key_rename AFTER UPDATE OF username ON users
    FOR EACH ROW WHEN (lower(OLD.username) IS DISTINCT FROM lower(NEW.username))
    EXECUTE FUNCTION users_creator_key_follow();

UPDATE users u SET creator_key = lower(c.username) FROM users c WHERE c.id = u.created_by;

CREATE INDEX users_creator_key_id_idx ON users (creator_key, id);
CREATE INDEX users_creator_key_desc_idx ON users (creator_key DESC NULLS LAST, id DESC);
