//! Counting (`count` agrees with the listing's total) and growth (users per UTC day).

use tessera_domain::model::{DailyCount, StateCounts, UserChanges, UserListQuery, UserState};
use time::macros::{date, datetime};
use time::OffsetDateTime;

use super::{by_name, everyone, filtered, listed, searched};
use crate::contract::tiers::new_tier;
use crate::contract::{
    at, create, named, new_managed_user, new_user, soft_delete, with_state, Stores, UserBuilder,
};

pub async fn count_equals_list_total_for_every_query(s: Stores) {
    let tier = new_tier(&s, "gold").await;
    let root = create(&s, named("root", 0).tier_id(tier.id).first_name("Root")).await;
    for i in 1..=6 {
        create(
            &s,
            named(&format!("member{i}"), i)
                .created_by(root.id)
                .tier_id((i % 2 == 0).then_some(tier.id))
                .first_name(format!("First{i}")),
        )
        .await;
    }
    for i in 0..3 {
        create(&s, new_managed_user(root.id).created_at(at(10 + i))).await;
    }
    let gone = create(&s, named("gone", 20)).await;
    s.users
        .update(gone.id, soft_delete(at(21)), at(21))
        .await
        .unwrap();
    let locked = create(&s, named("locked", 22)).await;
    s.users
        .update(locked.id, with_state(UserState::Deactivated), at(22))
        .await
        .unwrap();

    let queries = vec![
        (everyone(), 11),
        (
            UserListQuery {
                include_deleted: true,
                ..everyone()
            },
            12,
        ),
        (filtered("tier==gold"), 4),
        (filtered("isLocal==false"), 3),
        (filtered("createdBy==root"), 9),
        (filtered("username=@member,tier==gold"), 3),
        (filtered("state==deactivated"), 1),
        (searched("first"), 6),
        (by_name("managed"), 3),
        (UserListQuery::all(Some(root.id), 500), 4),
        (
            UserListQuery {
                include_managed: false,
                ..UserListQuery::all(Some(root.id), 500)
            },
            1,
        ),
        (filtered("username==nobody"), 0),
    ];
    for (query, want) in queries {
        assert_eq!(
            s.users.count(query.clone()).await.unwrap(),
            want,
            "{query:?}"
        );
        assert_eq!(
            listed(&s, query.clone()).await.len() as u64,
            want,
            "{query:?}"
        );
        // Paging changes the page, never the total or the count.
        for (offset, limit) in [(0, 1), (2, 2), (50, 5)] {
            let paged = UserListQuery {
                offset,
                limit,
                ..query.clone()
            };
            assert_eq!(
                s.users.count(paged.clone()).await.unwrap(),
                want,
                "{paged:?}"
            );
            assert_eq!(s.users.list(paged.clone()).await.unwrap().total, want);
            listed(&s, paged).await;
        }
    }
}

pub async fn growth_counts_users_per_utc_day_newest_first(s: Stores) {
    assert_eq!(s.users.growth(366).await.unwrap(), vec![]);
    let created_at = |t: OffsetDateTime| new_user().created_at(t);
    let first = create(&s, created_at(datetime!(2024-03-01 00:00:00 UTC))).await;
    create(&s, created_at(datetime!(2024-03-01 23:59:59.999999 UTC))).await;
    // 01:00 on the 2nd at +05:00 is 20:00 on the 1st in UTC.
    create(&s, created_at(datetime!(2024-03-02 01:00:00 +05:00))).await;
    create(&s, created_at(datetime!(2024-03-02 00:00:00 UTC))).await;
    create(&s, created_at(datetime!(2024-03-05 12:00:00 UTC))).await;
    // Every state counts: soft-deleted, deactivated and managed users too.
    let gone = create(&s, created_at(datetime!(2024-03-05 13:00:00 UTC))).await;
    s.users
        .update(gone.id, soft_delete(at(0)), at(0))
        .await
        .unwrap();
    let locked = create(&s, created_at(datetime!(2024-03-05 14:00:00 UTC))).await;
    s.users
        .update(locked.id, with_state(UserState::Deactivated), at(0))
        .await
        .unwrap();
    create(
        &s,
        new_managed_user(first.id).created_at(datetime!(2024-03-05 23:59:59 -01:00)),
    )
    .await;

    let day = |d: time::Date, count: u64| DailyCount { day: d, count };
    // The managed user was created at 00:59:59 UTC on the 6th.
    assert_eq!(
        s.users.growth(366).await.unwrap(),
        vec![
            day(date!(2024 - 03 - 06), 1),
            day(date!(2024 - 03 - 05), 3),
            day(date!(2024 - 03 - 02), 1),
            day(date!(2024 - 03 - 01), 3),
        ]
    );
    assert_eq!(
        s.users.growth(2).await.unwrap(),
        vec![day(date!(2024 - 03 - 06), 1), day(date!(2024 - 03 - 05), 3)]
    );
    assert_eq!(
        s.users.growth(1).await.unwrap(),
        vec![day(date!(2024 - 03 - 06), 1)]
    );
    // Purged users are gone from the statistic.
    s.users.purge(gone.id, None).await.unwrap();
    assert_eq!(
        s.users.growth(2).await.unwrap(),
        vec![day(date!(2024 - 03 - 06), 1), day(date!(2024 - 03 - 05), 2)]
    );
}

/// The per-state counts and the per-day growth move with every change that moves a user —
/// create, state change, soft delete, restore, purge (managed users going with their manager),
/// housekeeping's purge — and not with a change that fails; the listing's unfiltered and
/// state-filtered totals agree with them.
pub async fn state_counts_move_with_every_change(s: Stores) {
    let counts = |active: u64, deactivated: u64, deleted: u64| StateCounts {
        active,
        deactivated,
        deleted,
    };
    async fn check(s: &Stores, want: StateCounts, step: &str) {
        assert_eq!(s.users.count_by_state().await.unwrap(), want, "{step}");
        let grown: u64 = s
            .users
            .growth(366)
            .await
            .unwrap()
            .iter()
            .map(|d| d.count)
            .sum();
        assert_eq!(grown, want.total(), "{step}: growth adds up to every user");
        let all = UserListQuery {
            include_deleted: true,
            ..everyone()
        };
        assert_eq!(
            s.users.list(everyone()).await.unwrap().total,
            want.active + want.deactivated,
            "{step}: listing total"
        );
        assert_eq!(
            s.users.list(all.clone()).await.unwrap().total,
            want.total(),
            "{step}: listing total with deleted users"
        );
        for state in [
            UserState::Active,
            UserState::Deactivated,
            UserState::Deleted,
        ] {
            let by_state = UserListQuery {
                filter: super::filter(&format!("state=={}", state.as_str())),
                ..all.clone()
            };
            assert_eq!(
                s.users.list(by_state.clone()).await.unwrap().total,
                want.of(state),
                "{step}: total of {state:?}"
            );
            assert_eq!(
                listed(s, by_state).await.len() as u64,
                want.of(state),
                "{step}: listed {state:?}"
            );
        }
    }

    check(&s, counts(0, 0, 0), "empty").await;
    let boss = create(&s, named("boss", 0)).await;
    for i in 0..2 {
        create(&s, new_managed_user(boss.id).created_at(at(1 + i))).await;
    }
    let a = create(&s, named("alice", 86_400)).await;
    let b = create(&s, named("bob", 2 * 86_400)).await;
    check(&s, counts(5, 0, 0), "created").await;

    // A create that fails (a taken name) leaves every count as it was.
    assert!(s.users.create(named("alice", 3 * 86_400)).await.is_err());
    check(&s, counts(5, 0, 0), "failed create").await;

    s.users
        .update(a.id, with_state(UserState::Deactivated), at(10))
        .await
        .unwrap();
    check(&s, counts(4, 1, 0), "deactivated").await;
    // A change that leaves the state alone moves nothing.
    s.users
        .update(a.id, with_state(UserState::Deactivated), at(11))
        .await
        .unwrap();
    check(&s, counts(4, 1, 0), "same state again").await;

    s.users
        .update(b.id, soft_delete(at(12)), at(12))
        .await
        .unwrap();
    check(&s, counts(3, 1, 1), "soft-deleted").await;
    let restore = UserChanges {
        state: Some(UserState::Active),
        deleted_at: Some(None),
        ..UserChanges::default()
    };
    s.users.update(b.id, restore, at(13)).await.unwrap();
    check(&s, counts(4, 1, 0), "restored").await;

    // The manager goes with its two managed users.
    s.users.purge(boss.id, None).await.unwrap();
    check(&s, counts(1, 1, 0), "purged with managed users").await;

    s.users
        .update(b.id, soft_delete(at(14)), at(14))
        .await
        .unwrap();
    check(&s, counts(0, 1, 1), "soft-deleted again").await;
    assert!(s.users.purge_deleted(b.id, at(15), None).await.unwrap());
    check(&s, counts(0, 1, 0), "housekeeping purged").await;
}

/// Creates, state changes, soft deletes and purges running at once (on several connections)
/// leave the kept counts equal to the users actually stored, state by state.
pub async fn state_counts_stay_exact_under_concurrent_changes(s: Stores) {
    let mut existing = Vec::new();
    for i in 0..12 {
        existing.push(create(&s, named(&format!("old{i}"), i)).await);
    }
    let mut tasks = Vec::new();
    for i in 0..24_i64 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            create(&s, named(&format!("new{i}"), 100 + i)).await;
        }));
    }
    for (i, user) in existing.iter().enumerate() {
        let (s, id) = (s.clone(), user.id);
        tasks.push(tokio::spawn(async move {
            let result = match i % 4 {
                0 => s
                    .users
                    .update(id, with_state(UserState::Deactivated), at(50))
                    .await
                    .map(|_| ()),
                1 => s
                    .users
                    .update(id, soft_delete(at(50)), at(50))
                    .await
                    .map(|_| ()),
                2 => s.users.purge(id, None).await,
                _ => Ok(()),
            };
            result.unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut actual = StateCounts::default();
    for state in [
        UserState::Active,
        UserState::Deactivated,
        UserState::Deleted,
    ] {
        let query = UserListQuery {
            include_deleted: true,
            filter: super::filter(&format!("state=={}", state.as_str())),
            ..everyone()
        };
        let n = listed(&s, query).await.len() as u64;
        match state {
            UserState::Active => actual.active = n,
            UserState::Deactivated => actual.deactivated = n,
            UserState::Deleted => actual.deleted = n,
        }
    }
    assert_eq!(
        actual,
        StateCounts {
            active: 24 + 3,
            deactivated: 3,
            deleted: 3,
        }
    );
    assert_eq!(s.users.count_by_state().await.unwrap(), actual);
    let grown: u64 = s
        .users
        .growth(366)
        .await
        .unwrap()
        .iter()
        .map(|d| d.count)
        .sum();
    assert_eq!(grown, actual.total());
}
