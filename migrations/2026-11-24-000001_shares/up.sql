-- Sharing (PRODUCT.md §1): a user (the owner) grants another (the grantee) scopes on their data.
-- One share per ordered pair; a share goes with either user (ON DELETE CASCADE), so purging a
-- user removes every share it granted or held. Scopes are a bitmask, bit n being the n-th of
-- data:read, data:write, admin, openid, profile, offline_access (tessera_domain::model::Scope).
CREATE TABLE shares (
    owner_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    grantee_id  uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    scopes      integer     NOT NULL CONSTRAINT shares_scopes_check CHECK (scopes > 0 AND scopes < 64),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (owner_id, grantee_id),
    CONSTRAINT shares_not_self CHECK (owner_id <> grantee_id)
);

-- "Who shared with me" and the listing's include_shared read shares by grantee.
CREATE INDEX shares_grantee_idx ON shares (grantee_id, owner_id);
