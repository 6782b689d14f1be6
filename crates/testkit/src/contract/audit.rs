//! Contract cases of the audit trail ([`AuditRepository`](tessera_domain::ports::AuditRepository)):
//! events written with the change they describe by every store operation, filters, stable
//! cursor pages, nothing recorded by a failed change, and date bounds at full precision.

use std::collections::BTreeMap;

use tessera_domain::model::{
    AuditAction, AuditEvent, AuditQuery, FieldChange, Permission, Permissions, RevokeSessions,
    UserChanges, UserState,
};
use tessera_domain::ports::RepoError;
use tessera_domain::Conflict;
use time::macros::datetime;
use time::{Duration, OffsetDateTime, UtcOffset};
use uuid::Uuid;

use super::directory::{assert_filter, everyone};
use super::tiers::{new_tier, tier_spec};
use super::{
    at, create, err, named, new_superuser, new_user, renamed, rfc, soft_delete, some,
    start_session_at, with_permissions, with_state, with_tier, Stores, UserBuilder,
};

// ---------------------------------------------------------------------------------------------
// Helpers

/// An audit event with one field change, so the `changes` map round-trips too.
fn event(
    actor: Option<Uuid>,
    target: Option<Uuid>,
    action: AuditAction,
    when: OffsetDateTime,
) -> AuditEvent {
    let mut changes = BTreeMap::new();
    changes.insert(
        "first_name".to_owned(),
        FieldChange {
            before: None,
            after: Some(format!("at {}", rfc(when))),
        },
    );
    AuditEvent {
        // Random, so id order is unrelated to insertion order.
        id: Uuid::new_v4(),
        at: when,
        actor_id: actor,
        target_id: target,
        action,
        changes,
    }
}

fn audit_query() -> AuditQuery {
    AuditQuery {
        limit: 500,
        ..AuditQuery::default()
    }
}

async fn audit(s: &Stores, query: AuditQuery) -> Vec<AuditEvent> {
    s.audit.list(query).await.expect("list audit events")
}

async fn audit_ids(s: &Stores, query: AuditQuery) -> Vec<Uuid> {
    audit(s, query).await.iter().map(|e| e.id).collect()
}

/// Records `e` through a harmless update of `target`.
async fn record_via_update(s: &Stores, target: Uuid, e: &AuditEvent) {
    let changes = UserChanges {
        audit: Some(e.clone()),
        ..renamed(&format!("n{}", e.id.simple()))
    };
    s.users
        .update(target, changes, e.at)
        .await
        .expect("update with audit event");
}

// ---------------------------------------------------------------------------------------------
// Audit

pub async fn audit_events_of_every_store_operation_are_listed(s: Stores) {
    assert_eq!(audit(&s, audit_query()).await, vec![]);
    let actor = create(&s, new_superuser()).await;

    let mut new = named("target", 1);
    let target_id = new.id;
    let created = event(
        Some(actor.id),
        Some(target_id),
        AuditAction::UserCreated,
        at(1),
    );
    new.audit = Some(created.clone());
    create(&s, new).await;

    let mut updated = event(
        Some(actor.id),
        Some(target_id),
        AuditAction::PermissionsChanged,
        at(2),
    );
    updated.changes.insert(
        "permissions".into(),
        FieldChange {
            before: some(""),
            after: some("admin"),
        },
    );
    updated.changes.insert(
        "email".into(),
        FieldChange {
            before: some("target@example.com"),
            after: None,
        },
    );
    updated.changes.insert(
        "note".into(),
        FieldChange {
            before: some("naïve \"quoted\" \\ 'text' 名前"),
            after: some("{\"json\": [1, 2]}"),
        },
    );
    s.users
        .update(
            target_id,
            UserChanges {
                permissions: Some(Permissions::NONE.with(Permission::Admin)),
                email: Some(None),
                audit: Some(updated.clone()),
                ..UserChanges::default()
            },
            at(2),
        )
        .await
        .unwrap();

    let tier_id = Uuid::now_v7();
    let tier_created = event(Some(actor.id), None, AuditAction::TierCreated, at(3));
    s.tiers
        .create(
            tier_id,
            tier_spec("Gold"),
            at(3),
            Some(tier_created.clone()),
        )
        .await
        .unwrap();
    let tier_updated = event(Some(actor.id), None, AuditAction::TierUpdated, at(4));
    s.tiers
        .update(
            tier_id,
            tier_spec("Silver"),
            at(4),
            Some(tier_updated.clone()),
        )
        .await
        .unwrap();
    let tier_deleted = event(Some(actor.id), None, AuditAction::TierDeleted, at(5));
    s.tiers
        .delete(tier_id, Some(tier_deleted.clone()))
        .await
        .unwrap();

    let purged = event(
        Some(actor.id),
        Some(target_id),
        AuditAction::UserPurged,
        at(6),
    );
    s.users
        .purge(target_id, Some(purged.clone()))
        .await
        .unwrap();

    // A system change (no actor, no target) with no details.
    let system = AuditEvent {
        actor_id: None,
        target_id: None,
        changes: BTreeMap::new(),
        ..event(None, None, AuditAction::UserCreated, at(7))
    };
    create(&s, named("system-made", 7).audit(system.clone())).await;

    assert_eq!(
        audit(&s, audit_query()).await,
        vec![
            system,
            purged,
            tier_deleted,
            tier_updated,
            tier_created,
            updated,
            created
        ]
    );
}

pub async fn audit_filters_by_actor_target_action_and_time(s: Stores) {
    let (actor_a, actor_b) = (Uuid::now_v7(), Uuid::now_v7());
    let x = create(&s, named("x-user", 0)).await;
    let mut y_new = named("y-user", 0);
    let y = y_new.id;
    // Written first, but the newest.
    let e4 = event(None, Some(y), AuditAction::UserCreated, at(40));
    y_new.audit = Some(e4.clone());
    create(&s, y_new).await;
    let e1 = event(Some(actor_a), Some(x.id), AuditAction::UserUpdated, at(10));
    let e2 = event(
        Some(actor_b),
        Some(x.id),
        AuditAction::PasswordReset,
        at(20),
    );
    let e3 = event(Some(actor_a), Some(y), AuditAction::UserUpdated, at(30));
    for (target, e) in [(x.id, &e1), (x.id, &e2), (y, &e3)] {
        record_via_update(&s, target, e).await;
    }
    let ids = |events: &[&AuditEvent]| events.iter().map(|e| e.id).collect::<Vec<_>>();
    let q = audit_query;

    assert_eq!(audit_ids(&s, q()).await, ids(&[&e4, &e3, &e2, &e1]));
    let check = |query: AuditQuery, want: Vec<Uuid>| {
        let s = s.clone();
        async move {
            assert_eq!(audit_ids(&s, query.clone()).await, want, "{query:?}");
        }
    };
    check(
        AuditQuery {
            actor_id: Some(actor_a),
            ..q()
        },
        ids(&[&e3, &e1]),
    )
    .await;
    check(
        AuditQuery {
            actor_id: Some(actor_b),
            ..q()
        },
        ids(&[&e2]),
    )
    .await;
    check(
        AuditQuery {
            actor_id: Some(Uuid::now_v7()),
            ..q()
        },
        vec![],
    )
    .await;
    check(
        AuditQuery {
            target_id: Some(x.id),
            ..q()
        },
        ids(&[&e2, &e1]),
    )
    .await;
    check(
        AuditQuery {
            target_id: Some(y),
            ..q()
        },
        ids(&[&e4, &e3]),
    )
    .await;
    check(
        AuditQuery {
            action: Some(AuditAction::UserUpdated),
            ..q()
        },
        ids(&[&e3, &e1]),
    )
    .await;
    check(
        AuditQuery {
            action: Some(AuditAction::TierDeleted),
            ..q()
        },
        vec![],
    )
    .await;
    // Time bounds are inclusive.
    check(
        AuditQuery {
            from: Some(at(20)),
            ..q()
        },
        ids(&[&e4, &e3, &e2]),
    )
    .await;
    check(
        AuditQuery {
            to: Some(at(30)),
            ..q()
        },
        ids(&[&e3, &e2, &e1]),
    )
    .await;
    check(
        AuditQuery {
            from: Some(at(20)),
            to: Some(at(30)),
            ..q()
        },
        ids(&[&e3, &e2]),
    )
    .await;
    check(
        AuditQuery {
            from: Some(at(20) + Duration::microseconds(1)),
            to: Some(at(40) - Duration::microseconds(1)),
            ..q()
        },
        ids(&[&e3]),
    )
    .await;
    // The same instant in another offset.
    check(
        AuditQuery {
            from: Some(at(30).to_offset(UtcOffset::from_hms(-7, 0, 0).unwrap())),
            ..q()
        },
        ids(&[&e4, &e3]),
    )
    .await;
    check(
        AuditQuery {
            from: Some(at(30)),
            to: Some(at(20)),
            ..q()
        },
        vec![],
    )
    .await;
    // Filters combine.
    check(
        AuditQuery {
            actor_id: Some(actor_a),
            target_id: Some(y),
            ..q()
        },
        ids(&[&e3]),
    )
    .await;
    check(
        AuditQuery {
            actor_id: Some(actor_a),
            action: Some(AuditAction::PasswordReset),
            ..q()
        },
        vec![],
    )
    .await;
    check(
        AuditQuery {
            target_id: Some(x.id),
            from: Some(at(15)),
            ..q()
        },
        ids(&[&e2]),
    )
    .await;
    check(AuditQuery { limit: 2, ..q() }, ids(&[&e4, &e3])).await;
    check(
        AuditQuery {
            limit: 2,
            after: Some((e3.at, e3.id)),
            ..q()
        },
        ids(&[&e2, &e1]),
    )
    .await;
    check(
        AuditQuery {
            target_id: Some(x.id),
            after: Some((e2.at, e2.id)),
            ..q()
        },
        ids(&[&e1]),
    )
    .await;
}

pub async fn audit_cursor_pages_are_stable_over_equal_times(s: Stores) {
    let user = create(&s, named("busy", 0)).await;
    let mut written = Vec::new();
    // Nine events at one instant, between two others.
    written.push(event(None, Some(user.id), AuditAction::UserUpdated, at(5)));
    for _ in 0..9 {
        written.push(event(None, Some(user.id), AuditAction::UserUpdated, at(10)));
    }
    written.push(event(None, Some(user.id), AuditAction::UserUpdated, at(15)));
    for e in &written {
        record_via_update(&s, user.id, e).await;
    }
    let full = audit_ids(&s, audit_query()).await;
    let mut want: Vec<(OffsetDateTime, Uuid)> = written.iter().map(|e| (e.at, e.id)).collect();
    want.sort_by(|a, b| b.cmp(a));
    assert_eq!(full, want.iter().map(|w| w.1).collect::<Vec<_>>());

    for page_size in [1, 2, 3, 4] {
        let mut paged = Vec::new();
        let mut after = None;
        loop {
            let page = audit(
                &s,
                AuditQuery {
                    limit: page_size,
                    after,
                    ..audit_query()
                },
            )
            .await;
            assert!(page.len() as u64 <= page_size);
            let Some(last) = page.last() else { break };
            after = Some((last.at, last.id));
            paged.extend(page.iter().map(|e| e.id));
            assert!(paged.len() <= full.len(), "pages of {page_size} repeat");
        }
        assert_eq!(paged, full, "pages of {page_size}");
    }
    // A cursor between stored events (no event has that id) still splits correctly.
    let mid = written[3].at;
    let after = audit_ids(
        &s,
        AuditQuery {
            after: Some((mid, Uuid::max())),
            ..audit_query()
        },
    )
    .await;
    assert_eq!(after, full[1..].to_vec());
    let after = audit_ids(
        &s,
        AuditQuery {
            after: Some((mid, Uuid::nil())),
            ..audit_query()
        },
    )
    .await;
    assert_eq!(after, full[10..].to_vec());
}

pub async fn failed_changes_record_no_audit_event(s: Stores) {
    let root = create(&s, named("root", 0)).await;
    let root = s
        .users
        .update(root.id, with_permissions(super::superuser()), at(0))
        .await
        .unwrap();
    let (root_sid, _) = start_session_at(&s, root.id, at(1), at(100_000)).await;
    let u1 = create(&s, named("one", 1)).await;
    let u2 = create(&s, named("two", 2)).await;
    let gold = new_tier(&s, "Gold").await;
    let silver = new_tier(&s, "Silver").await;
    let u1 = s
        .users
        .update(u1.id, with_tier(Some(gold.id)), at(3))
        .await
        .unwrap();
    assert_eq!(audit(&s, audit_query()).await, vec![]);
    let e = |action| event(Some(root.id), None, action, at(50));

    // Users.
    let dup = named("ONE", 10).audit(e(AuditAction::UserCreated));
    assert_eq!(
        err(s.users.create(dup).await),
        RepoError::Conflict(Conflict::DuplicateUsername)
    );
    let dup = named("three", 10)
        .email("TWO@example.com")
        .audit(e(AuditAction::UserCreated));
    assert_eq!(
        err(s.users.create(dup).await),
        RepoError::Conflict(Conflict::DuplicateEmail)
    );
    let tierless = named("four", 10)
        .tier_id(Uuid::now_v7())
        .audit(e(AuditAction::UserCreated));
    assert_eq!(err(s.users.create(tierless).await), RepoError::NotFound);
    let failing_updates: Vec<(Uuid, UserChanges, RepoError)> = vec![
        (
            u2.id,
            UserChanges {
                username: some("One"),
                ..UserChanges::default()
            },
            RepoError::Conflict(Conflict::DuplicateUsername),
        ),
        (
            u2.id,
            UserChanges {
                email: Some(some("one@EXAMPLE.com")),
                first_name: Some(some("Changed")),
                ..UserChanges::default()
            },
            RepoError::Conflict(Conflict::DuplicateEmail),
        ),
        (
            root.id,
            UserChanges {
                revoke_sessions: RevokeSessions::All,
                tokens_valid_after: Some(at(50)),
                ..with_permissions(Permissions::NONE)
            },
            RepoError::Conflict(Conflict::LastSuperuser),
        ),
        (
            root.id,
            UserChanges {
                revoke_sessions: RevokeSessions::All,
                ..with_state(UserState::Deactivated)
            },
            RepoError::Conflict(Conflict::LastSuperuser),
        ),
        (
            root.id,
            soft_delete(at(50)),
            RepoError::Conflict(Conflict::LastSuperuser),
        ),
        (
            u2.id,
            UserChanges {
                first_name: Some(some("Changed")),
                ..with_tier(Some(Uuid::now_v7()))
            },
            RepoError::NotFound,
        ),
        (Uuid::now_v7(), renamed("Ghost"), RepoError::NotFound),
    ];
    for (id, mut changes, want) in failing_updates {
        changes.audit = Some(e(AuditAction::UserUpdated));
        let what = format!("{changes:?}");
        assert_eq!(
            err(s.users.update(id, changes, at(50)).await),
            want,
            "{what}"
        );
    }
    assert_eq!(
        err(s
            .users
            .purge(root.id, Some(e(AuditAction::UserPurged)))
            .await),
        RepoError::Conflict(Conflict::LastSuperuser)
    );
    assert_eq!(
        err(s
            .users
            .purge(Uuid::now_v7(), Some(e(AuditAction::UserPurged)))
            .await),
        RepoError::NotFound
    );

    // Tiers.
    assert_eq!(
        err(s
            .tiers
            .create(
                Uuid::now_v7(),
                tier_spec("gold"),
                at(50),
                Some(e(AuditAction::TierCreated))
            )
            .await),
        RepoError::Conflict(Conflict::DuplicateTierName)
    );
    assert_eq!(
        err(s
            .tiers
            .update(
                silver.id,
                tier_spec("GOLD"),
                at(50),
                Some(e(AuditAction::TierUpdated))
            )
            .await),
        RepoError::Conflict(Conflict::DuplicateTierName)
    );
    assert_eq!(
        err(s
            .tiers
            .update(
                Uuid::now_v7(),
                tier_spec("new"),
                at(50),
                Some(e(AuditAction::TierUpdated))
            )
            .await),
        RepoError::NotFound
    );
    assert_eq!(
        err(s
            .tiers
            .delete(gold.id, Some(e(AuditAction::TierDeleted)))
            .await),
        RepoError::Conflict(Conflict::TierInUse)
    );
    assert_eq!(
        err(s
            .tiers
            .delete(Uuid::now_v7(), Some(e(AuditAction::TierDeleted)))
            .await),
        RepoError::NotFound
    );

    // Nothing was recorded and nothing changed.
    assert_eq!(audit(&s, audit_query()).await, vec![]);
    assert_eq!(
        s.users.get(root.id).await.unwrap().permissions,
        root.permissions
    );
    assert_eq!(s.users.get(root.id).await.unwrap().state, UserState::Active);
    assert_eq!(super::session(&s, root_sid, root.id).await.revoked_at, None);
    assert_eq!(s.users.get(u1.id).await.unwrap(), u1);
    assert_eq!(s.users.get(u2.id).await.unwrap(), u2);
    assert_eq!(s.tiers.get(silver.id).await.unwrap(), silver);
    assert_eq!(s.tiers.get(gold.id).await.unwrap(), gold);
    assert_eq!(s.users.count(everyone()).await.unwrap(), 3);

    // A change that succeeds records exactly its event.
    let ok = e(AuditAction::UserUpdated);
    s.users
        .update(
            u2.id,
            UserChanges {
                audit: Some(ok.clone()),
                ..renamed("Fine")
            },
            at(60),
        )
        .await
        .unwrap();
    assert_eq!(audit(&s, audit_query()).await, vec![ok]);
}

/// Bounds finer than a microsecond (RFC 3339 allows nanoseconds) compare exactly against the
/// stored microseconds, before and after PostgreSQL's 2000-01-01 epoch alike.
pub async fn date_bounds_compare_at_full_precision(s: Stores) {
    let epoch = datetime!(2000-01-01 00:00:00 UTC);
    let before = create(&s, new_user().created_at(epoch - Duration::microseconds(1))).await;
    let on = create(&s, new_user().created_at(epoch)).await;
    let b = create(&s, named("b-user", 10)).await;
    start_session_at(&s, b.id, at(10), at(100_000)).await;
    let half = Duration::nanoseconds(500);
    let f = |field: &str, op: &str, t: OffsetDateTime| format!("{field}{op}{}", rfc(t));

    // Half a microsecond before the epoch: between `before` and `on`.
    let mid = epoch - half;
    assert_filter(&s, &f("creationTime", "<=", mid), &[&before]).await;
    assert_filter(&s, &f("creationTime", ">=", mid), &[&on, &b]).await;
    assert_filter(&s, &f("creationTime", "==", mid), &[]).await;
    // Around a recent instant.
    for field in ["creationTime", "lastUpdated", "lastLogin"] {
        assert_filter(&s, &f(field, ">=", at(10) + half), &[]).await;
        assert_filter(&s, &f(field, ">=", at(10) - half), &[&b]).await;
        assert_filter(&s, &f(field, "==", at(10) + half), &[]).await;
        assert_filter(&s, &f(field, "==", at(10) - half), &[]).await;
        assert_filter(&s, &f(field, "==", at(10)), &[&b]).await;
    }
    assert_filter(&s, &f("creationTime", "<=", at(10) - half), &[&before, &on]).await;
    assert_filter(
        &s,
        &f("creationTime", "<=", at(10) + half),
        &[&before, &on, &b],
    )
    .await;
    assert_filter(&s, &f("lastLogin", "<=", at(10) - half), &[]).await;
    assert_filter(&s, &f("lastLogin", "<=", at(10) + half), &[&b]).await;

    // The audit trail's time range likewise.
    let old = event(
        None,
        Some(on.id),
        AuditAction::UserUpdated,
        epoch - Duration::microseconds(1),
    );
    let new = event(None, Some(on.id), AuditAction::UserUpdated, at(20));
    record_via_update(&s, on.id, &old).await;
    record_via_update(&s, on.id, &new).await;
    let range = |from: Option<OffsetDateTime>, to: Option<OffsetDateTime>| AuditQuery {
        from,
        to,
        ..audit_query()
    };
    assert_eq!(audit_ids(&s, range(Some(mid), None)).await, vec![new.id]);
    assert_eq!(audit_ids(&s, range(None, Some(mid))).await, vec![old.id]);
    assert!(audit_ids(&s, range(Some(at(20) + half), None))
        .await
        .is_empty());
    assert_eq!(
        audit_ids(&s, range(None, Some(at(20) - half))).await,
        vec![old.id]
    );
    assert_eq!(
        audit_ids(&s, range(Some(at(20) - half), Some(at(20) + half))).await,
        vec![new.id]
    );
}
