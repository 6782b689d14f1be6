//! Contract cases for API keys, single-use signatures, throttle counters and the unique
//! Bittensor credentials of users.

use futures::future::join_all;
use std::collections::BTreeMap;

use tessera_domain::model::{
    ApiKeyScope, ApiKeyScopes, AuditAction, AuditEvent, AuditQuery, NewApiKey,
};
use tessera_domain::ports::RepoError;
use tessera_domain::Conflict;
use time::Duration;
use uuid::Uuid;

use super::{create, err, new_user, now, Stores, UserBuilder};

fn key_for(user_id: Uuid, digest: &str) -> NewApiKey {
    NewApiKey {
        id: Uuid::now_v7(),
        user_id,
        name: "ci".into(),
        admin: false,
        scopes: [ApiKeyScope::Read, ApiKeyScope::Metering]
            .into_iter()
            .collect(),
        digest: digest.into(),
        now: now(),
        audit: None,
    }
}

fn key_event(action: AuditAction, user_id: Uuid) -> AuditEvent {
    AuditEvent {
        id: Uuid::now_v7(),
        at: now(),
        actor_id: Some(user_id),
        target_id: Some(user_id),
        action,
        changes: BTreeMap::new(),
    }
}

pub async fn api_keys_round_trip_find_touch_and_revoke(s: Stores) {
    let user = create(&s, new_user()).await;
    let digest = format!("digest-{}", Uuid::now_v7());
    let key = s.api_keys.create(key_for(user.id, &digest)).await.unwrap();
    assert_eq!(
        key.scopes,
        ApiKeyScopes::default()
            .with(ApiKeyScope::Read)
            .with(ApiKeyScope::Metering)
    );
    assert_eq!(key.last_used_at, None);
    assert_eq!(s.api_keys.list(user.id).await.unwrap(), vec![key.clone()]);

    let (found, owner) = s.api_keys.find(&digest).await.unwrap();
    assert_eq!((found, owner.id), (key.clone(), user.id));
    assert_eq!(err(s.api_keys.find("nope").await), RepoError::NotFound);

    let t = now();
    s.api_keys.touch(key.id, t).await.unwrap();
    let touched = s.api_keys.list(user.id).await.unwrap()[0]
        .last_used_at
        .unwrap();
    // A second use within the interval does not write again.
    s.api_keys
        .touch(key.id, t + Duration::seconds(5))
        .await
        .unwrap();
    assert_eq!(
        s.api_keys.list(user.id).await.unwrap()[0].last_used_at,
        Some(touched)
    );
    s.api_keys
        .touch(key.id, t + Duration::seconds(61))
        .await
        .unwrap();
    assert!(s.api_keys.list(user.id).await.unwrap()[0].last_used_at > Some(touched));

    let other = create(&s, new_user()).await;
    assert_eq!(
        err(s.api_keys.revoke(other.id, key.id, None).await),
        RepoError::NotFound
    );
    s.api_keys.revoke(user.id, key.id, None).await.unwrap();
    assert_eq!(err(s.api_keys.find(&digest).await), RepoError::NotFound);
    assert_eq!(
        err(s.api_keys.create(key_for(Uuid::now_v7(), "x")).await),
        RepoError::NotFound
    );
}

/// A key's creation and revocation are recorded with it; a revocation of a key the owner does
/// not hold, or a creation for nobody, records nothing.
pub async fn api_key_changes_record_their_audit_event(s: Stores) {
    let user = create(&s, new_user()).await;
    let other = create(&s, new_user()).await;
    let created = key_event(AuditAction::ApiKeyCreated, user.id);
    let key = s
        .api_keys
        .create(NewApiKey {
            audit: Some(created.clone()),
            ..key_for(user.id, &format!("digest-{}", Uuid::now_v7()))
        })
        .await
        .unwrap();
    let nobody = Uuid::now_v7();
    assert_eq!(
        err(s
            .api_keys
            .create(NewApiKey {
                audit: Some(key_event(AuditAction::ApiKeyCreated, nobody)),
                ..key_for(nobody, "y")
            })
            .await),
        RepoError::NotFound
    );
    assert_eq!(
        err(s
            .api_keys
            .revoke(
                other.id,
                key.id,
                Some(key_event(AuditAction::ApiKeyRevoked, other.id))
            )
            .await),
        RepoError::NotFound
    );
    let revoked = key_event(AuditAction::ApiKeyRevoked, user.id);
    s.api_keys
        .revoke(user.id, key.id, Some(revoked.clone()))
        .await
        .unwrap();
    let events = s
        .audit
        .list(AuditQuery {
            limit: 500,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let keyed: Vec<Uuid> = events
        .iter()
        .filter(|e| {
            matches!(
                e.action,
                AuditAction::ApiKeyCreated | AuditAction::ApiKeyRevoked
            )
        })
        .map(|e| e.id)
        .collect();
    let mut expected = vec![created.id, revoked.id];
    let mut got = keyed.clone();
    expected.sort();
    got.sort();
    assert_eq!(
        got, expected,
        "exactly the two applied changes are recorded"
    );
}

pub async fn api_keys_go_with_a_purged_user(s: Stores) {
    let user = create(&s, new_user()).await;
    let digest = format!("digest-{}", Uuid::now_v7());
    s.api_keys.create(key_for(user.id, &digest)).await.unwrap();
    s.users.purge(user.id, None).await.unwrap();
    assert_eq!(err(s.api_keys.find(&digest).await), RepoError::NotFound);
    assert!(s.api_keys.list(user.id).await.unwrap().is_empty());
}

pub async fn signatures_are_claimed_once_even_concurrently(s: Stores) {
    let t = now();
    let sig = format!("sig-{}", Uuid::now_v7());
    let claims =
        join_all((0..12).map(|_| s.guards.claim_signature(&sig, t + Duration::minutes(10), t)))
            .await;
    let won = claims
        .into_iter()
        .map(Result::unwrap)
        .filter(|first| *first)
        .count();
    assert_eq!(won, 1);
    assert!(!s
        .guards
        .claim_signature(&sig, t + Duration::minutes(10), t)
        .await
        .unwrap());
    let other = format!("sig-{}", Uuid::now_v7());
    assert!(s
        .guards
        .claim_signature(&other, t + Duration::minutes(10), t)
        .await
        .unwrap());
}

pub async fn hits_count_per_key_and_window_atomically(s: Stores) {
    let t = now();
    let window = t - Duration::seconds(10);
    let key = format!("register:{}", Uuid::now_v7());
    let counts = join_all((0..20).map(|_| s.guards.hit(&key, window, 86_400, t))).await;
    let mut counts: Vec<u64> = counts.into_iter().map(Result::unwrap).collect();
    counts.sort_unstable();
    assert_eq!(
        counts,
        (1..=20).collect::<Vec<u64>>(),
        "every hit saw its own count"
    );
    // Counting reads without adding.
    assert_eq!(s.guards.count(&key, window).await.unwrap(), 20);
    assert_eq!(s.guards.count(&key, window).await.unwrap(), 20);
    assert_eq!(
        s.guards
            .count(&format!("{key}-none"), window)
            .await
            .unwrap(),
        0
    );
    // Another key and another window start from one.
    assert_eq!(
        s.guards
            .hit(&format!("{key}-b"), window, 86_400, t)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.guards
            .hit(
                &key,
                window + Duration::days(1),
                86_400,
                t + Duration::days(1)
            )
            .await
            .unwrap(),
        1
    );
}

pub async fn hotkeys_and_fingerprints_are_unique(s: Stores) {
    let hotkey = format!("5{}", Uuid::now_v7().simple());
    let first = create(
        &s,
        new_user()
            .hotkey(hotkey.clone())
            .fingerprint_digest("a".repeat(128)),
    )
    .await;
    assert_eq!(s.users.find_by_hotkey(&hotkey).await.unwrap().id, first.id);
    assert_eq!(
        s.users
            .find_by_fingerprint(&"a".repeat(128))
            .await
            .unwrap()
            .id,
        first.id
    );
    let dup_hotkey = new_user().hotkey(hotkey.clone());
    assert_eq!(
        err(s.users.create(dup_hotkey).await),
        RepoError::Conflict(Conflict::DuplicateHotkey)
    );
    let dup_fingerprint = new_user().fingerprint_digest("a".repeat(128));
    assert_eq!(
        err(s.users.create(dup_fingerprint).await),
        RepoError::Conflict(Conflict::FingerprintTaken)
    );
    assert_eq!(
        err(s.users.find_by_hotkey("5unknown").await),
        RepoError::NotFound
    );
    let coldkey = format!("cold-{}", Uuid::now_v7());
    let a = create(&s, new_user().coldkey(coldkey.clone())).await;
    let b = create(&s, new_user().coldkey(coldkey.clone())).await;
    let holders = s.users.find_by_coldkey(&coldkey, 5).await.unwrap();
    assert_eq!(holders.len(), 2);
    assert!(holders.iter().any(|u| u.id == a.id) && holders.iter().any(|u| u.id == b.id));
    assert_eq!(s.users.find_by_coldkey(&coldkey, 1).await.unwrap().len(), 1);
}
