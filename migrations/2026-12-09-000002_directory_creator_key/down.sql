DROP INDEX users_creator_key_desc_idx;
DROP INDEX users_creator_key_id_idx;
DROP TRIGGER users_creator_key_rename ON users;
DROP TRIGGER users_creator_key_update ON users;
DROP TRIGGER users_creator_key_insert ON users;
DROP FUNCTION users_creator_key_follow();
DROP FUNCTION users_creator_key_set();
ALTER TABLE users DROP COLUMN creator_key;
