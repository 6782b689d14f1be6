-- Seeds :n users (psql -v n=100000) with realistic spread: creation over a year, 70% logged in,
-- 2% soft-deleted, 5% managed, creators among the first 100 users. Used by the directory EXPLAIN
-- and by `make bench`. Every seeded user gets its default `usd` wallet, as the service would have
-- opened it (migrations only open wallets for users who exist when they run).
\set ON_ERROR_STOP on
INSERT INTO users (id, username, email, first_name, last_name, password_hash, permissions,
                   state, tokens_valid_after, created_by, created_at, updated_at, last_login_at,
                   deleted_at)
SELECT gen_random_uuid(),
       'user' || lpad(i::text, 7, '0'),
       'user' || lpad(i::text, 7, '0') || '@example.' || (ARRAY['com','org','net'])[1 + i % 3],
       (ARRAY['Ada','Grace','Alan','Edsger','Barbara','Donald','Ken','Frances'])[1 + i % 8],
       (ARRAY['Lovelace','Hopper','Turing','Dijkstra','Liskov','Knuth','Thompson','Allen'])[1 + (i / 8) % 8],
       CASE WHEN i % 10 = 0 THEN NULL ELSE '$argon2id$v=19$m=19456,t=2,p=1$c2VlZA$seed' END,
       0,
       CASE WHEN i % 50 = 0 THEN 'deleted' ELSE 'active' END,
       now() - make_interval(days => i % 365),
       NULL,
       now() - make_interval(days => i % 365, secs => i % 86400),
       now() - make_interval(days => i % 180),
       CASE WHEN i % 10 < 7 THEN now() - make_interval(days => i % 90, secs => i) END,
       CASE WHEN i % 50 = 0 THEN now() - make_interval(days => i % 30) END
FROM generate_series(1, :n) AS i;
-- Creators: the first 100 users created the rest.
WITH creators AS (SELECT id, row_number() OVER (ORDER BY username) AS k FROM users ORDER BY username LIMIT 100)
UPDATE users u SET created_by = c.id
FROM creators c
WHERE c.k = 1 + (abs(hashtext(u.username)) % 100) AND u.id <> c.id;
INSERT INTO wallets (id, user_id, name, currency, is_default, balance, allow_negative,
                     created_at, updated_at)
SELECT gen_random_uuid(), u.id, 'Main', 'usd', true, 0, u.invoicing, u.created_at, u.created_at
FROM users u
WHERE NOT EXISTS (
    SELECT 1 FROM wallets w
    WHERE w.user_id = u.id AND w.currency = 'usd' AND w.is_default AND w.deleted_at IS NULL
);
ANALYZE users;
ANALYZE wallets;
