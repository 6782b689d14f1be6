// @generated automatically by Diesel CLI.

diesel::table! {
    api_keys (id) {
        id -> Uuid,
        user_id -> Uuid,
        name -> Text,
        admin -> Bool,
        scopes -> Text,
        digest -> Text,
        created_at -> Timestamptz,
        last_used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Uuid,
        at -> Timestamptz,
        actor_id -> Nullable<Uuid>,
        target_id -> Nullable<Uuid>,
        action -> Text,
        changes -> Jsonb,
    }
}

diesel::table! {
    deposits (id) {
        id -> Uuid,
        block -> Text,
        extrinsic_index -> Int8,
        address -> Text,
        amount_rao -> Int8,
        rate_micros -> Int8,
        credited -> Int8,
        currency -> Text,
        status -> Text,
        user_id -> Nullable<Uuid>,
        wallet_id -> Nullable<Uuid>,
        entry_id -> Nullable<Uuid>,
        reported_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    idempotency_keys (scope, key) {
        scope -> Uuid,
        key -> Text,
        fingerprint -> Text,
        entry_id -> Uuid,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    ledger_entries (id) {
        id -> Uuid,
        wallet_id -> Uuid,
        amount -> Int8,
        balance_after -> Int8,
        kind -> Text,
        reason -> Text,
        actor_id -> Nullable<Uuid>,
        transfer_id -> Nullable<Uuid>,
        idempotency_key -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    quota_counters (user_id, counter_key, day) {
        user_id -> Uuid,
        counter_key -> Text,
        day -> Date,
        used -> Int8,
    }
}

diesel::table! {
    rate_counters (key, window_start) {
        key -> Text,
        window_start -> Timestamptz,
        expires_at -> Timestamptz,
        hits -> Int8,
    }
}

diesel::table! {
    refresh_tokens (digest) {
        digest -> Text,
        session_id -> Uuid,
        created_at -> Timestamptz,
        spent_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    sessions (id) {
        id -> Uuid,
        user_id -> Uuid,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    shares (owner_id, grantee_id) {
        owner_id -> Uuid,
        grantee_id -> Uuid,
        scopes -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    tier_quotas (tier_id, resource_id) {
        tier_id -> Uuid,
        resource_id -> Text,
        daily_limit -> Int8,
    }
}

diesel::table! {
    tier_rate_limits (tier_id, path) {
        tier_id -> Uuid,
        path -> Text,
        max_requests -> Int4,
        period_secs -> Int4,
    }
}

diesel::table! {
    tiers (id) {
        id -> Uuid,
        name -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    usage_buckets (user_id, resource_id, bucket) {
        user_id -> Uuid,
        resource_id -> Text,
        bucket -> Timestamptz,
        count -> Int8,
        amount -> Int8,
        input_tokens -> Int8,
        output_tokens -> Int8,
    }
}

diesel::table! {
    usage_keys (scope, key) {
        scope -> Uuid,
        key -> Text,
        fingerprint -> Text,
        user_id -> Uuid,
        source -> Nullable<Text>,
        amount_charged -> Nullable<Int8>,
        entry_id -> Nullable<Uuid>,
        balance_after -> Nullable<Int8>,
        quota_used -> Nullable<Int8>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    user_discounts (user_id, resource_id) {
        user_id -> Uuid,
        resource_id -> Text,
        ppm -> Int4,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    user_quotas (user_id, resource_id) {
        user_id -> Uuid,
        resource_id -> Text,
        daily_limit -> Int8,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        username -> Nullable<Text>,
        email -> Nullable<Text>,
        first_name -> Nullable<Text>,
        last_name -> Nullable<Text>,
        logo_id -> Nullable<Uuid>,
        password_hash -> Nullable<Text>,
        hotkey -> Nullable<Text>,
        coldkey -> Nullable<Text>,
        payment_address -> Nullable<Text>,
        fingerprint_hash -> Nullable<Text>,
        permissions -> Int8,
        tier_id -> Nullable<Uuid>,
        invoicing -> Bool,
        unlimited -> Bool,
        squad_enabled -> Bool,
        manager_id -> Nullable<Uuid>,
        state -> Text,
        must_change_password -> Bool,
        tokens_valid_after -> Timestamptz,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        last_login_at -> Nullable<Timestamptz>,
        deleted_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    wallets (id) {
        id -> Uuid,
        user_id -> Uuid,
        name -> Text,
        currency -> Text,
        is_default -> Bool,
        balance -> Int8,
        allow_negative -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        deleted_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    used_signatures (signature) {
        signature -> Text,
        expires_at -> Timestamptz,
    }
}

diesel::joinable!(api_keys -> users (user_id));
diesel::joinable!(idempotency_keys -> ledger_entries (entry_id));
diesel::joinable!(idempotency_keys -> users (scope));
diesel::joinable!(ledger_entries -> users (actor_id));
diesel::joinable!(ledger_entries -> wallets (wallet_id));
diesel::joinable!(quota_counters -> users (user_id));
diesel::joinable!(refresh_tokens -> sessions (session_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(tier_quotas -> tiers (tier_id));
diesel::joinable!(tier_rate_limits -> tiers (tier_id));
diesel::joinable!(usage_buckets -> users (user_id));
diesel::joinable!(usage_keys -> ledger_entries (entry_id));
diesel::joinable!(user_discounts -> users (user_id));
diesel::joinable!(user_quotas -> users (user_id));
diesel::joinable!(users -> tiers (tier_id));
diesel::joinable!(wallets -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    api_keys,
    audit_events,
    deposits,
    idempotency_keys,
    ledger_entries,
    quota_counters,
    rate_counters,
    refresh_tokens,
    sessions,
    shares,
    tier_quotas,
    tier_rate_limits,
    tiers,
    usage_buckets,
    usage_keys,
    used_signatures,
    user_discounts,
    user_quotas,
    users,
    wallets,
);
