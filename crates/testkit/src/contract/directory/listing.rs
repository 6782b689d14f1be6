//! The listing's order, pages and visibility, sorting by every field, and paging that never
//! repeats or skips a user.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt::Debug;

use tessera_domain::directory::{Sort, SortField, SortOrder, UserCursor};
use tessera_domain::model::{User, UserListQuery};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::{assert_lists, everyone, filter, filtered, labels, listed, sorted_by};
use crate::contract::{
    at, create, fake_hash, ids, named, new_managed_user, new_user, now, query, renamed, rfc,
    soft_delete, start_session_at, Stores, UserBuilder,
};

// ---------------------------------------------------------------------------------------------
// Helpers

const ALL_SORT_FIELDS: [SortField; 6] = [
    SortField::Username,
    SortField::CreatedBy,
    SortField::LastLogin,
    SortField::CreationTime,
    SortField::LastUpdated,
    SortField::Type,
];

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Text(String),
    Time(OffsetDateTime),
    Flag(bool),
}

/// The sort key the API documents for `field`: names case-insensitively, the creator by
/// username, local (password) users before the others.
fn sort_key(field: SortField, u: &User, all: &[User]) -> Option<Key> {
    let lower = |n: &String| Key::Text(n.to_lowercase());
    match field {
        SortField::Username => u.username.as_ref().map(lower),
        SortField::CreatedBy => u
            .created_by
            .and_then(|c| all.iter().find(|x| x.id == c))
            .and_then(|c| c.username.as_ref())
            .map(lower),
        SortField::LastLogin => u.last_login_at.map(Key::Time),
        SortField::CreationTime => Some(Key::Time(u.created_at)),
        SortField::LastUpdated => Some(Key::Time(u.updated_at)),
        SortField::Type => Some(Key::Flag(!u.has_password)),
    }
}

/// `users` in the documented order: by key in the direction, nulls last either way, ties by
/// id in the same direction.
fn documented_order(users: &[User], creators: &[User], sort: Sort) -> Vec<Uuid> {
    let desc = sort.order == SortOrder::Desc;
    let mut v: Vec<&User> = users.iter().collect();
    v.sort_by(|a, b| {
        let by_key = match (
            sort_key(sort.field, a, creators),
            sort_key(sort.field, b, creators),
        ) {
            (Some(x), Some(y)) if desc => y.cmp(&x),
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        by_key.then_with(|| {
            if desc {
                b.id.cmp(&a.id)
            } else {
                a.id.cmp(&b.id)
            }
        })
    });
    v.into_iter().map(|u| u.id).collect()
}

/// Lists `query(field, order)` for every sort field in both directions and checks each against
/// the documented order of `users`.
async fn assert_every_order(
    s: &Stores,
    users: &[User],
    what: &str,
    query: impl Fn(SortField, SortOrder) -> UserListQuery,
) {
    for field in ALL_SORT_FIELDS {
        for order in [SortOrder::Asc, SortOrder::Desc] {
            let sort = Sort { field, order };
            let got = listed(s, query(field, order)).await;
            let want = documented_order(users, users, sort);
            assert_eq!(
                got,
                want,
                "{sort:?} {what}: got {:?}, want {:?}",
                labels(s, &got).await,
                labels(s, &want).await
            );
        }
    }
}

/// Pages through `query` `page_size` at a time; asserts every page reports the same total,
/// and returns the concatenated ids.
async fn page_through(s: &Stores, query: UserListQuery, page_size: u64) -> Vec<Uuid> {
    let total = s.users.count(query.clone()).await.unwrap();
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < total + page_size {
        let page = s
            .users
            .list(UserListQuery {
                offset,
                limit: page_size,
                ..query.clone()
            })
            .await
            .unwrap();
        assert_eq!(page.total, total, "total of the page at {offset}");
        out.extend(page.users.iter().map(|u| u.id));
        offset += page_size;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Order, pages and visibility

pub async fn list_orders_pages_and_counts(s: Stores) {
    let t = now();
    // Created out of order, and ids in the opposite order of creation time.
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let (early_id, late_id) = (a.min(b), a.max(b));
    let second = create(
        &s,
        new_user().id(early_id).created_at(t + Duration::seconds(2)),
    )
    .await;
    let first = create(
        &s,
        new_user().id(late_id).created_at(t + Duration::seconds(1)),
    )
    .await;
    // Same creation time: ties go by id.
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let (tie_low, tie_high) = (a.min(b), a.max(b));
    let tie_b = create(
        &s,
        new_user().id(tie_high).created_at(t + Duration::seconds(3)),
    )
    .await;
    let tie_a = create(
        &s,
        new_user().id(tie_low).created_at(t + Duration::seconds(3)),
    )
    .await;
    let gone = create(&s, new_user().created_at(t + Duration::seconds(4))).await;
    let gone = s
        .users
        .update(
            gone.id,
            soft_delete(t + Duration::seconds(5)),
            t + Duration::seconds(5),
        )
        .await
        .unwrap();
    let expected = vec![first.clone(), second.clone(), tie_a.clone(), tie_b.clone()];

    let page = s.users.list(query(None, false, false)).await.unwrap();
    assert_eq!(page.total, 4);
    assert_eq!(page.users, expected);
    // Managed-ness does not matter for the whole directory.
    let page = s.users.list(query(None, true, false)).await.unwrap();
    assert_eq!(page.users, expected);

    let page = s
        .users
        .list(UserListQuery {
            offset: 1,
            limit: 2,
            ..query(None, false, false)
        })
        .await
        .unwrap();
    assert_eq!(page.total, 4);
    assert_eq!(page.users, vec![second, tie_a.clone()]);

    let page = s
        .users
        .list(UserListQuery {
            offset: 3,
            limit: 10,
            ..query(None, false, false)
        })
        .await
        .unwrap();
    assert_eq!((page.total, ids(&page.users)), (4, vec![tie_b.id]));

    let page = s
        .users
        .list(UserListQuery {
            offset: 10,
            limit: 10,
            ..query(None, false, false)
        })
        .await
        .unwrap();
    assert_eq!((page.total, page.users.len()), (4, 0));

    let page = s.users.list(query(None, false, true)).await.unwrap();
    assert_eq!(page.total, 5);
    assert_eq!(
        ids(&page.users),
        vec![first.id, early_id, tie_low, tie_high, gone.id]
    );
    assert_eq!(page.users[4], gone);
}

pub async fn list_visible_to_self_and_managed(s: Stores) {
    let t = now();
    let manager = create(&s, new_user().created_at(t)).await;
    let at = |secs: i64, manager: Uuid| {
        new_managed_user(manager).created_at(t + Duration::seconds(secs))
    };
    let m1 = create(&s, at(1, manager.id)).await;
    let m2 = create(&s, at(2, manager.id)).await;
    let m2 = s
        .users
        .update(
            m2.id,
            soft_delete(t + Duration::seconds(3)),
            t + Duration::seconds(3),
        )
        .await
        .unwrap();
    let stranger = create(&s, new_user()).await;
    create(&s, at(4, stranger.id)).await;
    let m3 = create(&s, at(5, manager.id)).await;

    let mine = Some(manager.id);
    let page = s.users.list(query(mine, true, false)).await.unwrap();
    assert_eq!(page.total, 3);
    assert_eq!(page.users, vec![manager.clone(), m1.clone(), m3.clone()]);

    let page = s.users.list(query(mine, true, true)).await.unwrap();
    assert_eq!(page.total, 4);
    assert_eq!(ids(&page.users), vec![manager.id, m1.id, m2.id, m3.id]);

    let page = s.users.list(query(mine, false, true)).await.unwrap();
    assert_eq!(page.total, 1);
    assert_eq!(page.users, vec![manager.clone()]);

    let page = s
        .users
        .list(UserListQuery {
            offset: 1,
            limit: 2,
            ..query(mine, true, true)
        })
        .await
        .unwrap();
    assert_eq!((page.total, ids(&page.users)), (4, vec![m1.id, m2.id]));

    // A soft-deleted viewer is itself hidden unless deleted users are included.
    s.users
        .update(manager.id, soft_delete(now()), now())
        .await
        .unwrap();
    let page = s.users.list(query(mine, true, false)).await.unwrap();
    assert_eq!((page.total, ids(&page.users)), (2, vec![m1.id, m3.id]));
    let page = s.users.list(query(mine, false, false)).await.unwrap();
    assert_eq!((page.total, page.users.len()), (0, 0));

    let page = s
        .users
        .list(query(Some(Uuid::now_v7()), true, true))
        .await
        .unwrap();
    assert_eq!((page.total, page.users.len()), (0, 0));
}

// ---------------------------------------------------------------------------------------------
// Sorting and paging

pub async fn sort_by_every_field_nulls_last_ties_by_id(s: Stores) {
    let zed = create(&s, named("zed", 0)).await;
    let amy = create(&s, named("Amy", 0).password_hash(None)).await;
    let carl = create(&s, named("carl", 10).created_by(zed.id)).await;
    let beth = create(&s, named("Beth", 10).created_by(amy.id)).await;
    let dan = create(&s, named("dan", 20).created_by(zed.id).password_hash(None)).await;
    let alan = create(&s, named("alan", 30)).await;
    let managed = create(&s, new_managed_user(amy.id).created_at(at(30))).await;
    start_session_at(&s, carl.id, at(100), at(100_000)).await;
    start_session_at(&s, beth.id, at(100), at(100_000)).await;
    start_session_at(&s, alan.id, at(50), at(100_000)).await;
    s.users
        .update(dan.id, renamed("Dan"), at(400))
        .await
        .unwrap();
    s.users
        .update(carl.id, renamed("Carl"), at(400))
        .await
        .unwrap();
    // A soft-deleted user is not listed in any order.
    let gone = create(&s, named("aaron", 5)).await;
    s.users
        .update(gone.id, soft_delete(at(6)), at(6))
        .await
        .unwrap();

    // Case-insensitive names, NULL (a managed user has no username) last in both directions.
    assert_lists(
        &s,
        sorted_by(SortField::Username, SortOrder::Asc),
        &[&alan, &amy, &beth, &carl, &dan, &zed, &managed],
        "username asc",
    )
    .await;
    assert_lists(
        &s,
        sorted_by(SortField::Username, SortOrder::Desc),
        &[&zed, &dan, &carl, &beth, &amy, &alan, &managed],
        "username desc",
    )
    .await;
    let (lo, hi) = if carl.id < beth.id {
        (&carl, &beth)
    } else {
        (&beth, &carl)
    };
    let never: Vec<&User> = {
        let mut v = vec![&zed, &amy, &dan, &managed];
        v.sort_by_key(|u| u.id);
        v
    };
    let mut want: Vec<&User> = vec![&alan, lo, hi];
    want.extend(never.iter().copied());
    assert_lists(
        &s,
        sorted_by(SortField::LastLogin, SortOrder::Asc),
        &want,
        "lastLogin asc",
    )
    .await;
    let mut want: Vec<&User> = vec![hi, lo, &alan];
    want.extend(never.iter().rev().copied());
    assert_lists(
        &s,
        sorted_by(SortField::LastLogin, SortOrder::Desc),
        &want,
        "lastLogin desc",
    )
    .await;

    // Every field in both directions, against the documented order.
    let users = s.users.list(everyone()).await.unwrap().users;
    assert_eq!(users.len(), 7);
    assert_every_order(&s, &users, "", sorted_by).await;
    // The same orders through a filter (a listing that matches few users is counted and
    // sorted in one statement on PostgreSQL). No user in this fixture is deactivated.
    assert_every_order(&s, &users, "through a filter", |field, order| {
        UserListQuery {
            filter: filter("state==active"),
            ..sorted_by(field, order)
        }
    })
    .await;
    // Deleted users included: sorted with the rest.
    let all = s
        .users
        .list(UserListQuery {
            include_deleted: true,
            ..everyone()
        })
        .await
        .unwrap()
        .users;
    assert_eq!(all.len(), 8);
    assert_every_order(&s, &all, "with deleted", |field, order| UserListQuery {
        include_deleted: true,
        ..sorted_by(field, order)
    })
    .await;
}

pub async fn paging_through_ties_never_repeats_or_skips(s: Stores) {
    let creator = create(&s, named("creator", 0)).await;
    // Nine users with the same creation and update time, no login, ids in no particular
    // order relative to creation; some share a creator, some have none; mixed types.
    let mut tied = Vec::new();
    for i in 0..9 {
        let user = create(
            &s,
            named(&format!("tied{i}"), 60)
                .id(Uuid::new_v4())
                .created_by((i % 2 == 0).then_some(creator.id))
                .password_hash((i % 3 != 0).then(fake_hash)),
        )
        .await;
        tied.push(user);
    }
    let everyone_count = 10u64;
    let mut queries = vec![
        ("default".to_owned(), everyone()),
        ("default, filtered".to_owned(), filtered("state==active")),
    ];
    for field in ALL_SORT_FIELDS {
        for order in [SortOrder::Asc, SortOrder::Desc] {
            queries.push((format!("{field:?} {order:?}"), sorted_by(field, order)));
            queries.push((
                format!("{field:?} {order:?}, filtered"),
                UserListQuery {
                    filter: filter("state==active"),
                    ..sorted_by(field, order)
                },
            ));
        }
    }
    for (what, query) in queries {
        let full = listed(&s, query.clone()).await;
        assert_eq!(full.len() as u64, everyone_count, "{what}");
        for page_size in [1, 2, 3, 4] {
            let paged = page_through(&s, query.clone(), page_size).await;
            assert_eq!(paged, full, "{what}: pages of {page_size}");
        }
        let unique: HashSet<Uuid> = full.iter().copied().collect();
        assert_eq!(unique.len() as u64, everyone_count, "{what}: repeats");
    }
    // Among users tied on creation time, the default order (and creationTime asc) is by id.
    let mut by_id: Vec<Uuid> = tied.iter().map(|u| u.id).collect();
    by_id.sort();
    let mut want = vec![creator.id];
    want.extend(by_id.iter().copied());
    assert_eq!(listed(&s, everyone()).await, want);
    assert_eq!(
        listed(&s, sorted_by(SortField::CreationTime, SortOrder::Asc)).await,
        want
    );
    let mut want: Vec<Uuid> = by_id.iter().rev().copied().collect();
    want.push(creator.id);
    assert_eq!(
        listed(&s, sorted_by(SortField::CreationTime, SortOrder::Desc)).await,
        want
    );
    // All NULL last logins: by id alone, in the direction.
    let mut all_ids: Vec<Uuid> = by_id.clone();
    all_ids.push(creator.id);
    all_ids.sort();
    assert_eq!(
        listed(&s, sorted_by(SortField::LastLogin, SortOrder::Asc)).await,
        all_ids
    );
    all_ids.reverse();
    assert_eq!(
        listed(&s, sorted_by(SortField::LastLogin, SortOrder::Desc)).await,
        all_ids
    );
}

/// PostgreSQL sorts the matches of a filter matching up to 2 000 users and walks a sort index
/// beyond that: both sides of the line page the same way.
pub async fn filters_matching_thousands_page_like_filters_matching_few(s: Stores) {
    const MATCHING: usize = 2_003;
    for i in 0..MATCHING {
        create(&s, named(&format!("bulk{i:04}"), i as i64)).await;
    }
    create(&s, named("other", 0)).await;
    let bulk = |raw: &str, sort: SortOrder, offset: u64, limit: u64| UserListQuery {
        offset,
        limit,
        ..UserListQuery {
            filter: filter(raw),
            ..sorted_by(SortField::Username, sort)
        }
    };
    let names = |from: usize, to: usize| -> Vec<String> {
        (from..to).map(|i| format!("bulk{i:04}")).collect()
    };
    let page_names = |page: tessera_domain::model::UserPage| -> (u64, Vec<String>) {
        let names = page.users.into_iter().filter_map(|u| u.username).collect();
        (page.total, names)
    };
    let total = MATCHING as u64;
    // Above the line: all 2 003 match.
    let page = s
        .users
        .list(bulk("username=@bulk", SortOrder::Asc, 0, 3))
        .await
        .unwrap();
    assert_eq!(page_names(page), (total, names(0, 3)));
    let page = s
        .users
        .list(bulk("username=@bulk", SortOrder::Desc, 2_000, 5))
        .await
        .unwrap();
    assert_eq!(
        page_names(page),
        (
            total,
            vec!["bulk0002".into(), "bulk0001".into(), "bulk0000".into()]
        )
    );
    let page = s
        .users
        .list(bulk("username=@bulk", SortOrder::Asc, 5_000, 5))
        .await
        .unwrap();
    assert_eq!(page_names(page), (total, vec![]));
    // Below it: 1 000 match (bulk1000 to bulk1999).
    let page = s
        .users
        .list(bulk("username=@bulk1", SortOrder::Asc, 998, 5))
        .await
        .unwrap();
    assert_eq!(page_names(page), (1_000, names(1_998, 2_000)));
    let page = s
        .users
        .list(bulk("username=@bulk1", SortOrder::Asc, 1_000, 5))
        .await
        .unwrap();
    assert_eq!(page_names(page), (1_000, vec![]));
    // Right at it: 2 000 match (bulk0000 to bulk1999, created before the last three).
    let at_the_line = format!("username=@bulk,creationTime<={}", rfc(at(1_999)));
    let page = s
        .users
        .list(bulk(&at_the_line, SortOrder::Desc, 0, 2))
        .await
        .unwrap();
    assert_eq!(
        page_names(page),
        (2_000, vec!["bulk1999".into(), "bulk1998".into()])
    );
    assert_eq!(
        s.users
            .count(bulk("username=@bulk", SortOrder::Asc, 0, 1))
            .await
            .unwrap(),
        total
    );
}

// ---------------------------------------------------------------------------------------------
// Keyset (cursor) paging

/// Every sort a cursor is offered for.
fn cursor_sorts() -> Vec<Option<Sort>> {
    let mut sorts = vec![None];
    for field in ALL_SORT_FIELDS {
        if field == SortField::CreatedBy {
            continue;
        }
        for order in [SortOrder::Asc, SortOrder::Desc] {
            sorts.push(Some(Sort { field, order }));
        }
    }
    sorts
}

/// Pages through `query` by cursor, `page_size` at a time, calling `between` after each page;
/// returns the ids in the order seen.
async fn cursor_through(
    s: &Stores,
    query: &UserListQuery,
    page_size: u64,
    mut between: impl AsyncFnMut(usize),
) -> Vec<Uuid> {
    let mut out = Vec::new();
    let mut after = None;
    for page_no in 0.. {
        let page = s
            .users
            .list(UserListQuery {
                limit: page_size,
                after: after.clone(),
                ..query.clone()
            })
            .await
            .unwrap();
        assert!(page.users.len() as u64 <= page_size);
        out.extend(page.users.iter().map(|u| u.id));
        if !page.more {
            break;
        }
        let last = page
            .users
            .last()
            .expect("a page with more after it is not empty");
        after = Some(UserCursor::after(last, query.sort).expect("a cursor for this sort"));
        between(page_no).await;
        assert!(page_no < 10_000, "the walk ends");
    }
    out
}

/// Walking a listing by cursor gives every user once, in the listing's order, while users are
/// inserted meanwhile (keys missing included: they sort last); with no more pages, `more` is
/// false.
pub async fn cursor_pages_keep_their_order_under_concurrent_inserts(s: Stores) {
    let boss = create(&s, named("boss", 0)).await;
    for i in 0..7_i64 {
        let user = create(
            &s,
            named(&format!("u{i}"), (i % 3) * 10).password_hash((i % 2 == 0).then(fake_hash)),
        )
        .await;
        if i % 3 != 0 {
            start_session_at(&s, user.id, at(100 + i % 2), at(100_000)).await;
        }
    }
    for _ in 0..2 {
        create(&s, new_managed_user(boss.id).created_at(at(10))).await;
    }
    let mut inserted = 0;
    for sort in cursor_sorts() {
        let query = UserListQuery { sort, ..everyone() };
        let before = listed(&s, query.clone()).await;
        let seen = cursor_through(&s, &query, 2, async |page_no| {
            if page_no >= 3 {
                return;
            }
            inserted += 1;
            let name = format!("a{inserted:03}");
            create(&s, named(&name, -inserted).password_hash(None)).await;
        })
        .await;
        let unique: HashSet<&Uuid> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "{sort:?}: no user twice");
        let kept: Vec<Uuid> = seen.into_iter().filter(|id| before.contains(id)).collect();
        assert_eq!(kept, before, "{sort:?}: every earlier user once, in order");
    }
    // A page holding the last user says there is nothing after it; one short of it, that
    // there is.
    let total = s.users.count(everyone()).await.unwrap();
    for (limit, more) in [(total, false), (total - 1, true), (total + 1, false)] {
        let page = s
            .users
            .list(UserListQuery {
                limit,
                ..everyone()
            })
            .await
            .unwrap();
        assert_eq!(page.more, more, "limit {limit} of {total}");
    }
}

/// Past 2 000 users PostgreSQL reads pages off the sort indexes (the keys as ranges, then the
/// users without a key): cursor pages agree with offset pages there too.
pub async fn cursor_pages_agree_with_offset_pages_past_thousands(s: Stores) {
    let boss = create(&s, named("boss", 0)).await;
    for i in 0..2_001_i64 {
        let user = create(&s, named(&format!("bulk{i:04}"), i % 7)).await;
        if i % 400 == 0 {
            start_session_at(&s, user.id, at(100 + i % 3), at(100_000)).await;
        }
    }
    for _ in 0..3 {
        create(&s, new_managed_user(boss.id).created_at(at(3))).await;
    }
    for sort in cursor_sorts() {
        let query = UserListQuery { sort, ..everyone() };
        let by_offset = page_through(&s, query.clone(), 450).await;
        assert_eq!(by_offset.len(), 2_005, "{sort:?}");
        let by_cursor = cursor_through(&s, &query, 450, async |_| {}).await;
        assert_eq!(by_cursor, by_offset, "{sort:?}");
    }
}

/// Every user of `query`, in its order, read 500 at a time.
async fn all_users(s: &Stores, query: &UserListQuery) -> Vec<User> {
    let mut out = Vec::new();
    loop {
        let page = s
            .users
            .list(UserListQuery {
                offset: out.len() as u64,
                limit: 500,
                ..query.clone()
            })
            .await
            .unwrap();
        out.extend(page.users);
        if !page.more {
            return out;
        }
    }
}

/// Past 2 000 users the creator's name is read off an index (kept on each row): it follows a
/// creator's rename and purge like the looked-up name does.
pub async fn creator_order_follows_renames_and_purges_past_thousands(s: Stores) {
    let amy = create(&s, named("amy", 0)).await;
    let bob = create(&s, named("Bob", 0)).await;
    let cat = create(&s, named("cat", 0)).await;
    let creators = [Some(amy.id), Some(bob.id), Some(cat.id), None];
    for i in 0..2_001_usize {
        let user = named(&format!("bulk{i:04}"), (i % 5) as i64);
        let user = match creators[i % 4] {
            Some(creator) => user.created_by(creator),
            None => user,
        };
        create(&s, user).await;
    }
    let check = async |what: &str| {
        let users = all_users(&s, &everyone()).await;
        assert_eq!(users.len() as u64, s.users.count(everyone()).await.unwrap());
        for order in [SortOrder::Asc, SortOrder::Desc] {
            let sort = Sort {
                field: SortField::CreatedBy,
                order,
            };
            let query = UserListQuery {
                sort: Some(sort),
                ..everyone()
            };
            let got: Vec<Uuid> = all_users(&s, &query).await.iter().map(|u| u.id).collect();
            assert_eq!(
                got,
                documented_order(&users, &users, sort),
                "{what} {order:?}"
            );
        }
    };
    check("as created").await;
    let rename = tessera_domain::model::UserChanges {
        username: Some("zed".into()),
        ..Default::default()
    };
    s.users.update(amy.id, rename, at(10)).await.unwrap();
    check("after a creator's rename").await;
    s.users.purge(bob.id, None).await.unwrap();
    check("after a creator's purge").await;
}
