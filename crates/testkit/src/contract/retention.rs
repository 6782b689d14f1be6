//! Contract cases of housekeeping: what each port's prune method removes, and what it must
//! leave alone.

use tessera_domain::model::{
    day_of, hour_of, AuditAction, AuditEvent, AuditQuery, ConsumptionMode, CounterKey,
    IdempotencyClaim, QuotaOrigin, RefreshOutcome, ResolvedQuota, ResourceId, UserChanges,
    UserState,
};
use tessera_domain::ports::RepoError;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::{
    all_entries, apply, change, consumption, create, digest, err, keyed, new_managed_user,
    new_user, now, only_wallet, session, soft_delete, start_session, start_session_at, Stores,
};

fn purged_event(target: Uuid, at: OffsetDateTime) -> AuditEvent {
    AuditEvent {
        id: Uuid::now_v7(),
        at,
        actor_id: None,
        target_id: Some(target),
        action: AuditAction::UserPurged,
        changes: Default::default(),
    }
}

async fn purge_events(s: &Stores) -> Vec<Option<Uuid>> {
    s.audit
        .list(AuditQuery {
            action: Some(AuditAction::UserPurged),
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.target_id)
        .collect()
}

pub async fn users_deleted_before_the_cutoff_are_purged_once(s: Stores) {
    let t = now();
    let cutoff = t - Duration::days(30);
    let deleted_at = |days: i64| soft_delete(t - Duration::days(days));
    let oldest = create(&s, new_user()).await;
    let old = create(&s, new_user()).await;
    let recent = create(&s, new_user()).await;
    let restored = create(&s, new_user()).await;
    let active = create(&s, new_user()).await;
    let managed = create(&s, new_managed_user(old.id)).await;
    let (old_session, old_token) = start_session(&s, old.id).await;
    for (user, days) in [(&oldest, 50), (&old, 40), (&recent, 10), (&restored, 45)] {
        s.users.update(user.id, deleted_at(days), t).await.unwrap();
    }
    let restore = UserChanges {
        state: Some(UserState::Active),
        deleted_at: Some(None),
        ..UserChanges::default()
    };
    s.users.update(restored.id, restore, t).await.unwrap();

    // Longest-deleted first; only soft-deleted users, only before the cutoff.
    assert_eq!(
        s.users.deleted_before(cutoff, 10).await.unwrap(),
        [oldest.id, old.id]
    );
    assert_eq!(
        s.users.deleted_before(cutoff, 1).await.unwrap(),
        [oldest.id]
    );
    assert!(s
        .users
        .deleted_before(t - Duration::days(60), 10)
        .await
        .unwrap()
        .is_empty());

    // Not due: nothing happens and no event is recorded.
    for user in [&recent, &restored, &active] {
        let event = purged_event(user.id, t);
        assert!(!s
            .users
            .purge_deleted(user.id, cutoff, Some(event))
            .await
            .unwrap());
        assert_eq!(s.users.get(user.id).await.unwrap().id, user.id);
    }
    assert!(!s
        .users
        .purge_deleted(Uuid::now_v7(), cutoff, None)
        .await
        .unwrap());
    assert!(purge_events(&s).await.is_empty());

    // Due: gone with everything it owns, once, with its event.
    assert!(s
        .users
        .purge_deleted(old.id, cutoff, Some(purged_event(old.id, t)))
        .await
        .unwrap());
    assert_eq!(err(s.users.get(old.id).await), RepoError::NotFound);
    assert_eq!(err(s.users.get(managed.id).await), RepoError::NotFound);
    assert_eq!(
        err(s.sessions.check(old_session, old.id).await),
        RepoError::NotFound
    );
    let outcome = s.sessions.rotate_refresh(&old_token, &digest(), t).await;
    assert_eq!(outcome.unwrap(), RefreshOutcome::Invalid);
    assert!(s
        .wallets
        .list_for_user(old.id, true)
        .await
        .unwrap()
        .is_empty());
    assert!(!s
        .users
        .purge_deleted(old.id, cutoff, Some(purged_event(old.id, t)))
        .await
        .unwrap());
    assert_eq!(purge_events(&s).await, [Some(old.id)]);
    assert_eq!(
        s.users.deleted_before(cutoff, 10).await.unwrap(),
        [oldest.id]
    );
}

pub async fn ended_sessions_are_pruned_and_live_ones_kept(s: Stores) {
    let t = now();
    let user = create(&s, new_user()).await;
    let days = Duration::days;
    let (expired_long_ago, expired_token) =
        start_session_at(&s, user.id, t - days(20), t - days(10)).await;
    let (revoked_long_ago, revoked_token) =
        start_session_at(&s, user.id, t - days(20), t + days(10)).await;
    s.sessions
        .revoke(revoked_long_ago, t - days(9))
        .await
        .unwrap();
    let (expired_lately, _) = start_session_at(&s, user.id, t - days(5), t - days(1)).await;
    let (revoked_lately, _) = start_session_at(&s, user.id, t - days(5), t + days(10)).await;
    s.sessions
        .revoke(revoked_lately, t - days(1))
        .await
        .unwrap();
    let (live, live_token) = start_session(&s, user.id).await;

    let cutoff = t - days(7);
    assert_eq!(s.sessions.prune_ended(cutoff, 1).await.unwrap(), 1);
    assert_eq!(s.sessions.prune_ended(cutoff, 10).await.unwrap(), 1);
    assert_eq!(s.sessions.prune_ended(cutoff, 10).await.unwrap(), 0);

    for id in [expired_long_ago, revoked_long_ago] {
        assert_eq!(
            err(s.sessions.check(id, user.id).await),
            RepoError::NotFound
        );
    }
    for token in [expired_token, revoked_token] {
        let outcome = s.sessions.rotate_refresh(&token, &digest(), t).await;
        assert_eq!(outcome.unwrap(), RefreshOutcome::Invalid);
    }
    for id in [expired_lately, revoked_lately, live] {
        assert_eq!(session(&s, id, user.id).await.id, id);
    }
    let outcome = s.sessions.rotate_refresh(&live_token, &digest(), t).await;
    assert!(matches!(outcome.unwrap(), RefreshOutcome::Rotated { .. }));
}

pub async fn old_idempotency_keys_are_forgotten_and_recent_ones_kept(s: Stores) {
    let t = now();
    let admin = create(&s, new_user()).await;
    let user = create(&s, new_user()).await;
    let w = only_wallet(&s, user.id).await;
    let at = |c: tessera_domain::model::BalanceChange, when: OffsetDateTime| {
        tessera_domain::model::BalanceChange { now: when, ..c }
    };
    let old = keyed(change(w.id, 5, None), admin.id, "old");
    apply(&s, at(old, t - Duration::days(40))).await;
    let recent = keyed(change(w.id, 7, None), admin.id, "recent");
    apply(&s, at(recent, t - Duration::days(1))).await;

    let cutoff = t - Duration::days(30);
    assert_eq!(
        s.wallets.prune_idempotency_keys(cutoff, 10).await.unwrap(),
        1
    );
    assert_eq!(
        s.wallets.prune_idempotency_keys(cutoff, 10).await.unwrap(),
        0
    );
    // The entries stay; the old key now counts as new, the recent one still replays.
    assert_eq!(all_entries(&s, w.id).await.len(), 2);
    let again = apply(&s, keyed(change(w.id, 5, None), admin.id, "old")).await;
    assert!(!again.replayed);
    let replay = apply(&s, keyed(change(w.id, 7, None), admin.id, "recent")).await;
    assert!(replay.replayed);
    assert_eq!(all_entries(&s, w.id).await.len(), 3);
}

pub async fn old_usage_keys_and_past_quota_counters_are_pruned(s: Stores) {
    let t = now();
    let payer = create(&s, new_user()).await;
    let mode = ConsumptionMode::Metered(ResolvedQuota {
        limit: 100,
        counter: CounterKey::Shared,
        origin: QuotaOrigin::UserWildcard,
    });
    let keyed_at = |key: &str, when: OffsetDateTime| {
        let mut c = consumption(payer.id, ResourceId::Any, mode, 0);
        c.now = when;
        c.day = day_of(when);
        c.bucket = hour_of(when);
        c.idempotency = Some(IdempotencyClaim {
            scope: payer.id,
            key: key.into(),
            fingerprint: "same".into(),
        });
        c
    };
    let long_ago = t - Duration::days(40);
    let yesterday = t - Duration::days(1);
    s.metering.consume(keyed_at("old", long_ago)).await.unwrap();
    s.metering
        .consume(keyed_at("recent", yesterday))
        .await
        .unwrap();
    s.metering.consume(keyed_at("today", t)).await.unwrap();

    let cutoff = t - Duration::days(30);
    assert_eq!(s.metering.prune_usage_keys(cutoff, 10).await.unwrap(), 1);
    assert_eq!(s.metering.prune_usage_keys(cutoff, 10).await.unwrap(), 0);
    let again = s.metering.consume(keyed_at("old", t)).await.unwrap();
    assert!(!again.replayed);
    let replay = s.metering.consume(keyed_at("recent", t)).await.unwrap();
    assert!(replay.replayed);

    // Counters of days before the given one go; that day's and later stay.
    let counter = |day| s.metering.counter(payer.id, CounterKey::Shared, day);
    assert_eq!(counter(day_of(long_ago)).await.unwrap(), 1);
    assert_eq!(
        s.metering
            .prune_quota_counters(day_of(yesterday), 10)
            .await
            .unwrap(),
        1
    );
    assert_eq!(counter(day_of(long_ago)).await.unwrap(), 0);
    assert_eq!(counter(day_of(yesterday)).await.unwrap(), 1);
    assert_eq!(counter(day_of(t)).await.unwrap(), 2);
    assert_eq!(
        s.metering
            .prune_quota_counters(day_of(yesterday), 10)
            .await
            .unwrap(),
        0
    );
}
