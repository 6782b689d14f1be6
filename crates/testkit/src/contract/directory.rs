//! Contract cases for the directory (filters, search, sort, count, growth), tiers and the audit
//! trail.
//!
//! Every case builds its fixture at fixed instants (whole microseconds, PostgreSQL's precision)
//! so bounds and UTC days are exact, and states its expectations explicitly: both adapters must
//! give exactly these answers.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};

use tessera_domain::directory::{SearchTerm, Sort, SortField, SortOrder, UserFilter};
use tessera_domain::model::{
    AuditAction, AuditEvent, AuditQuery, DailyCount, FieldChange, NewUser, Permission, Permissions,
    RateLimit, ResourceId, RevokeSessions, Tier, TierSpec, User, UserChanges, UserListQuery,
    UserState,
};
use tessera_domain::ports::RepoError;
use tessera_domain::Conflict;
use time::format_description::well_known::Rfc3339;
use time::macros::{date, datetime};
use time::{Duration, OffsetDateTime, UtcOffset};
use uuid::Uuid;

use super::{
    create, err, fake_hash, new_managed_user, new_superuser, new_user, soft_delete,
    start_session_at, with_permissions, with_state, Stores,
};

// ---------------------------------------------------------------------------------------------
// Helpers

/// The fixed instant every directory fixture is built around.
fn t0() -> OffsetDateTime {
    datetime!(2024-05-01 12:00:00 UTC)
}

/// `t0` plus `secs` seconds.
fn at(secs: i64) -> OffsetDateTime {
    t0() + Duration::seconds(secs)
}

fn rfc(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("an RFC 3339 time")
}

fn some(s: &str) -> Option<String> {
    Some(s.to_owned())
}

/// A login user `username` (email `<username>@example.com`, a password), created at `at(secs)`.
fn named(username: &str, secs: i64) -> NewUser {
    NewUser {
        username: some(username),
        email: Some(format!("{username}@example.com")),
        now: at(secs),
        ..new_user()
    }
}

fn filter(raw: &str) -> UserFilter {
    UserFilter::parse(raw).unwrap_or_else(|e| panic!("filter {raw:?} should parse: {e}"))
}

fn term(raw: &str) -> Option<SearchTerm> {
    let t = SearchTerm::parse("search", raw).unwrap_or_else(|e| panic!("{raw:?}: {e}"));
    assert!(t.is_some(), "{raw:?} is a blank term");
    t
}

/// The whole directory (soft-deleted users aside), first 500 users.
fn everyone() -> UserListQuery {
    UserListQuery::all(None, 500)
}

fn filtered(raw: &str) -> UserListQuery {
    UserListQuery {
        filter: filter(raw),
        ..everyone()
    }
}

fn searched(raw: &str) -> UserListQuery {
    UserListQuery {
        search: term(raw),
        ..everyone()
    }
}

fn by_name(raw: &str) -> UserListQuery {
    UserListQuery {
        name: term(raw),
        ..everyone()
    }
}

fn sorted_by(field: SortField, order: SortOrder) -> UserListQuery {
    UserListQuery {
        sort: Some(Sort { field, order }),
        ..everyone()
    }
}

/// Lists `query`, checks `count` and the page agree with the listing's total, and returns the
/// ids in listing order.
async fn listed(s: &Stores, query: UserListQuery) -> Vec<Uuid> {
    let page = s.users.list(query.clone()).await.expect("list users");
    let count = s.users.count(query.clone()).await.expect("count users");
    assert_eq!(
        page.total, count,
        "count and list().total differ for {query:?}"
    );
    let expected_len = page.total.saturating_sub(query.offset).min(query.limit);
    assert_eq!(
        page.users.len() as u64,
        expected_len,
        "page size for {query:?}"
    );
    page.users.iter().map(|u| u.id).collect()
}

/// Asserts `query` lists exactly `expected`, in that order.
async fn assert_lists(s: &Stores, query: UserListQuery, expected: &[&User], what: &str) {
    let got = listed(s, query).await;
    let want: Vec<Uuid> = expected.iter().map(|u| u.id).collect();
    assert_eq!(
        got,
        want,
        "{what}: got {:?}, want {:?}",
        labels(s, &got).await,
        labels(s, &want).await
    );
}

/// `filterBy` lists exactly `expected` in creation order.
async fn assert_filter(s: &Stores, raw: &str, expected: &[&User]) {
    assert_lists(s, filtered(raw), expected, &format!("filterBy {raw:?}")).await;
}

async fn assert_search(s: &Stores, raw: &str, expected: &[&User]) {
    assert_lists(s, searched(raw), expected, &format!("search {raw:?}")).await;
}

async fn assert_name(s: &Stores, raw: &str, expected: &[&User]) {
    assert_lists(s, by_name(raw), expected, &format!("name {raw:?}")).await;
}

/// Display names of users by id, for readable failures.
async fn labels(s: &Stores, ids: &[Uuid]) -> Vec<String> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.push(match s.users.get(*id).await {
            Ok(u) => u.display_name(),
            Err(_) => id.to_string(),
        });
    }
    out
}

fn renamed(first_name: &str) -> UserChanges {
    UserChanges {
        first_name: Some(some(first_name)),
        ..UserChanges::default()
    }
}

fn with_tier(tier: Option<Uuid>) -> UserChanges {
    UserChanges {
        tier_id: Some(tier),
        ..UserChanges::default()
    }
}

fn tier_spec(name: &str) -> TierSpec {
    TierSpec {
        name: some(name),
        quotas: None,
        rate_limits: None,
    }
}

async fn new_tier(s: &Stores, name: &str) -> Tier {
    s.tiers
        .create(Uuid::now_v7(), tier_spec(name), at(0), None)
        .await
        .expect("create tier")
}

fn limit(path: &str, limit: u32, period_secs: u32) -> RateLimit {
    RateLimit {
        path: path.to_owned(),
        limit,
        period_secs,
    }
}

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
// filterBy: each field with each operator it supports

pub async fn filter_username_and_email_by_each_operator(s: Stores) {
    let alice = create(
        &s,
        NewUser {
            email: some("alice@x.org"),
            ..named("alice", 1)
        },
    )
    .await;
    let bob = create(
        &s,
        NewUser {
            email: some("BOB@Example.com"),
            ..named("Bob", 2)
        },
    )
    .await;
    let carol = create(&s, named("carol", 3)).await;
    let dave = create(
        &s,
        NewUser {
            email: None,
            ..named("dave", 4)
        },
    )
    .await;
    // No username and no email: fails every text comparison.
    let managed = create(
        &s,
        NewUser {
            now: at(5),
            ..new_managed_user(alice.id)
        },
    )
    .await;
    assert_lists(
        &s,
        everyone(),
        &[&alice, &bob, &carol, &dave, &managed],
        "no filter",
    )
    .await;

    // == is case-insensitive equality, not a prefix or a pattern.
    assert_filter(&s, "username==ALICE", &[&alice]).await;
    assert_filter(&s, "username==bob", &[&bob]).await;
    assert_filter(&s, "username==ali", &[]).await;
    assert_filter(&s, "username==al%", &[]).await;
    // <= and >= compare lower-cased names in byte order, inclusively.
    assert_filter(&s, "username<=bob", &[&alice, &bob]).await;
    assert_filter(&s, "username<=BOA", &[&alice]).await;
    assert_filter(&s, "username>=BOB", &[&bob, &carol, &dave]).await;
    assert_filter(&s, "username>=b", &[&bob, &carol, &dave]).await;
    assert_filter(&s, "username>=carol,username<=carol", &[&carol]).await;
    // =@ is a case-insensitive substring.
    assert_filter(&s, "username=@A", &[&alice, &carol, &dave]).await;
    assert_filter(&s, "username=@O", &[&bob, &carol]).await;
    assert_filter(&s, "username=@lic", &[&alice]).await;
    assert_filter(&s, "username=@zz", &[]).await;

    assert_filter(&s, "email==bob@example.COM", &[&bob]).await;
    assert_filter(&s, "email==bob@example", &[]).await;
    assert_filter(&s, "email=@EXAMPLE.COM", &[&bob, &carol]).await;
    assert_filter(&s, "email=@@", &[&alice, &bob, &carol]).await;
    assert_filter(&s, "email<=b", &[&alice]).await;
    assert_filter(&s, "email<=BOB@EXAMPLE.COM", &[&alice, &bob]).await;
    assert_filter(&s, "email>=c", &[&carol]).await;
    assert_filter(&s, "email>=bob@example.com", &[&bob, &carol]).await;
}

pub async fn filter_created_by_by_username_id_and_contains(s: Stores) {
    let admin = create(&s, named("Admin.One", 1)).await;
    let helper = create(&s, named("helper", 2)).await;
    let by = |creator: &User, name: &str, secs: i64| NewUser {
        created_by: Some(creator.id),
        ..named(name, secs)
    };
    let u1 = create(&s, by(&admin, "u1", 3)).await;
    let u2 = create(&s, by(&admin, "u2", 4)).await;
    let u3 = create(&s, by(&helper, "u3", 5)).await;
    let u4 = create(&s, named("u4", 6)).await;
    let managed = create(
        &s,
        NewUser {
            now: at(7),
            ..new_managed_user(helper.id)
        },
    )
    .await;

    assert_filter(&s, "createdBy==admin.one", &[&u1, &u2]).await;
    assert_filter(&s, "createdBy==ADMIN.ONE", &[&u1, &u2]).await;
    assert_filter(&s, "createdBy==admin", &[]).await;
    assert_filter(&s, &format!("createdBy=={}", admin.id), &[&u1, &u2]).await;
    assert_filter(&s, &format!("createdBy=={}", helper.id), &[&u3, &managed]).await;
    assert_filter(&s, &format!("createdBy=={}", Uuid::now_v7()), &[]).await;
    assert_filter(&s, "createdBy==nobody", &[]).await;
    assert_filter(&s, "createdBy=@HELP", &[&u3, &managed]).await;
    assert_filter(&s, "createdBy=@e", &[&u1, &u2, &u3, &managed]).await;
    assert_filter(&s, "createdBy=@.", &[&u1, &u2]).await;
    assert_filter(&s, "createdBy=@u", &[]).await;
    assert_filter(&s, "createdBy=@e,username=@2", &[&u2]).await;

    // The creator is looked up when the query runs: once purged, nobody created u3.
    s.users.purge(helper.id, None).await.unwrap();
    assert_filter(&s, "createdBy=@e", &[&u1, &u2]).await;
    assert_filter(&s, "createdBy==helper", &[]).await;
    assert_lists(&s, everyone(), &[&admin, &u1, &u2, &u3, &u4], "after purge").await;
}

pub async fn filter_dates_with_inclusive_bounds(s: Stores) {
    let a = create(&s, named("a-user", 0)).await;
    let b = create(&s, named("b-user", 10)).await;
    let c = create(&s, named("c-user", 20)).await;
    let d = create(&s, named("d-user", 30)).await;
    start_session_at(&s, a.id, at(100), at(100_000)).await;
    start_session_at(&s, b.id, at(100), at(100_000)).await;
    start_session_at(&s, c.id, at(200), at(100_000)).await;
    // d never logs in. b is updated later.
    s.users.update(b.id, renamed("Bea"), at(300)).await.unwrap();
    let micro = Duration::microseconds(1);

    let f = |field: &str, op: &str, t: OffsetDateTime| format!("{field}{op}{}", rfc(t));
    assert_filter(&s, &f("creationTime", ">=", at(10)), &[&b, &c, &d]).await;
    assert_filter(&s, &f("creationTime", "<=", at(10)), &[&a, &b]).await;
    assert_filter(&s, &f("creationTime", "==", at(10)), &[&b]).await;
    assert_filter(&s, &f("creationTime", ">=", at(10) + micro), &[&c, &d]).await;
    assert_filter(&s, &f("creationTime", "<=", at(10) - micro), &[&a]).await;
    assert_filter(&s, &f("creationTime", "==", at(10) + micro), &[]).await;
    // The same instant written with another offset.
    let plus_two = UtcOffset::from_hms(2, 0, 0).unwrap();
    assert_filter(
        &s,
        &f("creationTime", "==", at(10).to_offset(plus_two)),
        &[&b],
    )
    .await;
    assert_filter(
        &s,
        &f("creationTime", ">=", at(20).to_offset(plus_two)),
        &[&c, &d],
    )
    .await;
    assert_filter(
        &s,
        &format!("creationTime>={},creationTime<={}", rfc(at(5)), rfc(at(25))),
        &[&b, &c],
    )
    .await;

    // A user that never logged in fails every lastLogin comparison.
    assert_filter(&s, "lastLogin>=1970-01-01T00:00:00Z", &[&a, &b, &c]).await;
    assert_filter(&s, "lastLogin<=9999-12-31T23:59:59Z", &[&a, &b, &c]).await;
    assert_filter(&s, &f("lastLogin", "==", at(100)), &[&a, &b]).await;
    assert_filter(&s, &f("lastLogin", "<=", at(100)), &[&a, &b]).await;
    assert_filter(&s, &f("lastLogin", ">=", at(100) + micro), &[&c]).await;
    assert_filter(&s, &f("lastLogin", ">=", at(200)), &[&c]).await;
    assert_filter(&s, &f("lastLogin", "<=", at(99)), &[]).await;

    assert_filter(&s, &f("lastUpdated", ">=", at(300)), &[&b]).await;
    assert_filter(&s, &f("lastUpdated", "==", at(20)), &[&c]).await;
    assert_filter(&s, &f("lastUpdated", "<=", at(20)), &[&a, &c]).await;
    assert_filter(&s, &f("lastUpdated", "<=", at(30)), &[&a, &c, &d]).await;

    // Conditions are AND-ed.
    assert_filter(
        &s,
        &format!("creationTime>={},lastLogin<={}", rfc(at(0)), rfc(at(150))),
        &[&a, &b],
    )
    .await;
    assert_filter(
        &s,
        &format!("lastLogin>={},lastUpdated<={}", rfc(at(0)), rfc(at(250))),
        &[&a, &c],
    )
    .await;
}

pub async fn filter_is_local_and_state(s: Stores) {
    let local = create(&s, named("local", 1)).await;
    let passwordless = create(
        &s,
        NewUser {
            password_hash: None,
            ..named("passwordless", 2)
        },
    )
    .await;
    let managed = create(
        &s,
        NewUser {
            now: at(3),
            ..new_managed_user(local.id)
        },
    )
    .await;
    let locked = create(&s, named("locked", 4)).await;
    let locked = s
        .users
        .update(locked.id, with_state(UserState::Deactivated), at(4))
        .await
        .unwrap();
    let gone = create(&s, named("gone", 5)).await;
    let gone = s
        .users
        .update(gone.id, soft_delete(at(5)), at(5))
        .await
        .unwrap();

    assert_filter(&s, "isLocal==true", &[&local, &locked]).await;
    assert_filter(&s, "isLocal==false", &[&passwordless, &managed]).await;
    assert_filter(&s, "state==active", &[&local, &passwordless, &managed]).await;
    assert_filter(&s, "state==deactivated", &[&locked]).await;
    // Soft-deleted users only appear when deleted users are included.
    assert_filter(&s, "state==deleted", &[]).await;
    assert_filter(
        &s,
        "isLocal==false,state==active",
        &[&passwordless, &managed],
    )
    .await;
    assert_filter(&s, "isLocal==true,state==active", &[&local]).await;

    let with_deleted = |raw: &str| UserListQuery {
        include_deleted: true,
        ..filtered(raw)
    };
    assert_lists(&s, with_deleted("state==deleted"), &[&gone], "deleted").await;
    assert_lists(
        &s,
        with_deleted("isLocal==true"),
        &[&local, &locked, &gone],
        "local, deleted included",
    )
    .await;
}

pub async fn filter_tier_by_name_id_and_contains(s: Stores) {
    let gold = new_tier(&s, "Gold").await;
    let silver = new_tier(&s, "Silver").await;
    let golden = new_tier(&s, "Golden Plus").await;
    let in_tier = |tier: &Tier, name: &str, secs: i64| NewUser {
        tier_id: Some(tier.id),
        ..named(name, secs)
    };
    let g1 = create(&s, in_tier(&gold, "g1", 1)).await;
    let g2 = create(&s, in_tier(&golden, "g2", 2)).await;
    let s1 = create(&s, in_tier(&silver, "s1", 3)).await;
    let none = create(&s, named("none", 4)).await;

    assert_filter(&s, "tier==gold", &[&g1]).await;
    assert_filter(&s, "tier==GOLD", &[&g1]).await;
    assert_filter(&s, "tier==golden", &[]).await;
    assert_filter(&s, &format!("tier=={}", gold.id), &[&g1]).await;
    assert_filter(&s, &format!("tier=={}", silver.id), &[&s1]).await;
    assert_filter(&s, &format!("tier=={}", Uuid::now_v7()), &[]).await;
    assert_filter(&s, "tier=@gold", &[&g1, &g2]).await;
    assert_filter(&s, "tier=@L", &[&g1, &g2, &s1]).await;
    assert_filter(&s, "tier=@ plus", &[&g2]).await;
    assert_filter(&s, "tier==bronze", &[]).await;
    assert_filter(&s, "tier=@gold,username=@2", &[&g2]).await;

    // The tier's name is looked up when the query runs.
    s.tiers
        .update(gold.id, tier_spec("Platinum"), at(9), None)
        .await
        .unwrap();
    assert_filter(&s, "tier==gold", &[]).await;
    assert_filter(&s, "tier==platinum", &[&g1]).await;
    s.users
        .update(none.id, with_tier(Some(silver.id)), at(10))
        .await
        .unwrap();
    assert_filter(&s, "tier==silver", &[&s1, &none]).await;
    s.users
        .update(s1.id, with_tier(None), at(11))
        .await
        .unwrap();
    assert_filter(&s, "tier==silver", &[&none]).await;
}

pub async fn filter_conditions_are_anded(s: Stores) {
    let tier = new_tier(&s, "pro").await;
    let a = create(
        &s,
        NewUser {
            tier_id: Some(tier.id),
            ..named("anna", 1)
        },
    )
    .await;
    let b = create(
        &s,
        NewUser {
            tier_id: Some(tier.id),
            password_hash: None,
            ..named("annabel", 2)
        },
    )
    .await;
    let c = create(&s, named("andrew", 3)).await;
    let d = create(&s, named("bertha", 4)).await;

    assert_filter(&s, "username=@an", &[&a, &b, &c]).await;
    assert_filter(&s, "username=@an,tier==pro", &[&a, &b]).await;
    assert_filter(&s, "username=@an,tier==pro,isLocal==true", &[&a]).await;
    assert_filter(
        &s,
        &format!("username=@an,creationTime>={}", rfc(at(2))),
        &[&b, &c],
    )
    .await;
    assert_filter(&s, "username=@an,username=@bel", &[&b]).await;
    assert_filter(&s, "username=@an,username=@bert", &[]).await;
    assert_filter(&s, "isLocal==true,state==active", &[&a, &c, &d]).await;
    // Filters, search and name combine.
    let q = UserListQuery {
        search: term("ANN"),
        ..filtered("isLocal==true")
    };
    assert_lists(&s, q, &[&a], "search with filter").await;
    let q = UserListQuery {
        name: term("e"),
        ..filtered("tier==pro")
    };
    assert_lists(&s, q, &[&b], "name with filter").await;
}

// ---------------------------------------------------------------------------------------------
// search and name

pub async fn search_covers_username_email_first_and_last_name(s: Stores) {
    let john = create(
        &s,
        NewUser {
            email: some("j@corp.io"),
            first_name: some("John"),
            last_name: some("Smith"),
            ..named("jsmith", 1)
        },
    )
    .await;
    let ann = create(
        &s,
        NewUser {
            email: some("annie@SMITHS.example"),
            first_name: some("Ann"),
            last_name: some("Lee"),
            ..named("ann", 2)
        },
    )
    .await;
    let zed = create(
        &s,
        NewUser {
            email: some("zed@x.io"),
            first_name: some("Smithy"),
            ..named("zed", 3)
        },
    )
    .await;
    let bob = create(
        &s,
        NewUser {
            email: None,
            last_name: some("Jones"),
            ..named("bob", 4)
        },
    )
    .await;
    let managed = create(
        &s,
        NewUser {
            first_name: some("Smitty"),
            now: at(5),
            ..new_managed_user(bob.id)
        },
    )
    .await;

    assert_search(&s, "SMITH", &[&john, &ann, &zed]).await;
    assert_search(&s, "  smith  ", &[&john, &ann, &zed]).await;
    assert_search(&s, "jones", &[&bob]).await;
    assert_search(&s, "CORP", &[&john]).await;
    assert_search(&s, "ann", &[&ann]).await;
    assert_search(&s, "mitt", &[&managed]).await;
    assert_search(&s, "o", &[&john, &zed, &bob]).await;
    assert_search(&s, "nomatch", &[]).await;
    // Each field on its own: first and last names are not searched together.
    assert_search(&s, "john smith", &[]).await;

    let q = UserListQuery {
        search: term("smith"),
        ..filtered("username=@j")
    };
    assert_lists(&s, q, &[&john], "search and filter").await;
}

pub async fn search_filters_and_name_match_metacharacters_literally(s: Stores) {
    let percent = create(
        &s,
        NewUser {
            email: some("50%off@example.com"),
            first_name: some("50% off"),
            ..named("pct", 1)
        },
    )
    .await;
    let no_percent = create(
        &s,
        NewUser {
            first_name: some("50 off"),
            ..named("nopct", 2)
        },
    )
    .await;
    let underscore = create(&s, named("a_b", 3)).await;
    let no_underscore = create(&s, named("axb", 4)).await;
    let backslash = create(
        &s,
        NewUser {
            email: some("bs@example.com"),
            ..named("back\\slash", 5)
        },
    )
    .await;
    let no_backslash = create(&s, named("backslash", 6)).await;
    let injection = create(
        &s,
        NewUser {
            last_name: some("'; drop table users; --"),
            ..named("inj", 7)
        },
    )
    .await;
    let no_injection = create(
        &s,
        NewUser {
            last_name: some("drop table users"),
            ..named("noinj", 8)
        },
    )
    .await;
    let by_underscore = create(
        &s,
        NewUser {
            created_by: Some(underscore.id),
            ..named("child1", 9)
        },
    )
    .await;
    let by_no_underscore = create(
        &s,
        NewUser {
            created_by: Some(no_underscore.id),
            ..named("child2", 10)
        },
    )
    .await;
    let all = [
        &percent,
        &no_percent,
        &underscore,
        &no_underscore,
        &backslash,
        &no_backslash,
        &injection,
        &no_injection,
        &by_underscore,
        &by_no_underscore,
    ];

    assert_search(&s, "%", &[&percent]).await;
    assert_search(&s, "50%", &[&percent]).await;
    assert_search(&s, "50%off", &[&percent]).await;
    assert_search(&s, "0% o", &[&percent]).await;
    assert_search(&s, "_", &[&underscore]).await;
    assert_search(&s, "a_b", &[&underscore]).await;
    assert_search(&s, "\\", &[&backslash]).await;
    assert_search(&s, "k\\s", &[&backslash]).await;
    assert_search(&s, "\\%", &[]).await;
    assert_search(&s, "'; drop table users; --", &[&injection]).await;
    assert_search(&s, "'", &[&injection]).await;
    assert_search(&s, "--", &[&injection]).await;
    assert_search(&s, "drop table", &[&injection, &no_injection]).await;
    // Nothing was dropped.
    assert_lists(&s, everyone(), &all, "everyone").await;

    assert_filter(&s, "username=@_", &[&underscore]).await;
    assert_filter(&s, "username=@a_b", &[&underscore]).await;
    assert_filter(&s, "username=@\\", &[&backslash]).await;
    assert_filter(&s, "username=@k\\s", &[&backslash]).await;
    assert_filter(&s, "username=@%", &[]).await;
    assert_filter(&s, "email=@%", &[&percent]).await;
    assert_filter(&s, "email=@50%o", &[&percent]).await;
    assert_filter(&s, "username==a_b", &[&underscore]).await;
    assert_filter(&s, "username==a%", &[]).await;
    assert_filter(&s, "username==back\\slash", &[&backslash]).await;
    assert_filter(&s, "username=@'", &[]).await;
    assert_filter(&s, "createdBy=@a_b", &[&by_underscore]).await;
    assert_filter(&s, "createdBy=@_", &[&by_underscore]).await;
    assert_filter(&s, "createdBy==a_b", &[&by_underscore]).await;

    let tier_under = new_tier(&s, "x_y").await;
    let tier_plain = new_tier(&s, "xzy").await;
    let tier_pct = new_tier(&s, "50%").await;
    s.users
        .update(percent.id, with_tier(Some(tier_under.id)), at(20))
        .await
        .unwrap();
    s.users
        .update(no_percent.id, with_tier(Some(tier_plain.id)), at(20))
        .await
        .unwrap();
    s.users
        .update(underscore.id, with_tier(Some(tier_pct.id)), at(20))
        .await
        .unwrap();
    assert_filter(&s, "tier=@x_y", &[&percent]).await;
    assert_filter(&s, "tier=@_", &[&percent]).await;
    assert_filter(&s, "tier=@%", &[&underscore]).await;
    assert_filter(&s, "tier==x_y", &[&percent]).await;

    assert_name(&s, "%", &[&percent]).await;
    assert_name(&s, "_", &[&underscore]).await;
    assert_name(&s, "\\", &[&backslash]).await;
    assert_name(&s, "'; drop", &[&injection]).await;
}

pub async fn name_matches_the_display_name(s: Stores) {
    let jane = create(
        &s,
        NewUser {
            first_name: some("Jane"),
            last_name: some("Doe"),
            ..named("jd", 1)
        },
    )
    .await;
    let prince = create(
        &s,
        NewUser {
            first_name: some("Prince"),
            ..named("tafkap", 2)
        },
    )
    .await;
    let doe = create(
        &s,
        NewUser {
            last_name: some("Doe"),
            ..named("johnny", 3)
        },
    )
    .await;
    let plain = create(&s, named("plainuser", 4)).await;
    let mail_only = create(
        &s,
        NewUser {
            username: None,
            email: some("mail.only@example.org"),
            ..named("unused", 5)
        },
    )
    .await;
    let nobody = create(
        &s,
        NewUser {
            username: None,
            email: None,
            password_hash: None,
            ..named("unused2", 6)
        },
    )
    .await;
    assert_eq!(jane.display_name(), "Jane Doe");
    assert_eq!(mail_only.display_name(), "mail.only@example.org");
    assert_eq!(nobody.display_name(), nobody.id.to_string());

    assert_name(&s, "e d", &[&jane]).await;
    assert_name(&s, "JANE DOE", &[&jane]).await;
    assert_name(&s, "doe", &[&jane, &doe]).await;
    // The username is not part of a display name made from first and last names.
    assert_name(&s, "jd", &[]).await;
    assert_name(&s, "tafkap", &[]).await;
    assert_name(&s, "johnny", &[]).await;
    assert_name(&s, "prince", &[&prince]).await;
    assert_name(&s, "PlainUser", &[&plain]).await;
    assert_name(&s, "mail.only", &[&mail_only]).await;
    assert_name(&s, "@example.org", &[&mail_only]).await;
    // Emails of users with a username or names are not their display name.
    assert_name(&s, "@example.com", &[]).await;
    let id = nobody.id.to_string();
    assert_name(&s, &id[id.len() - 12..], &[&nobody]).await;
}

// ---------------------------------------------------------------------------------------------
// Sorting and paging

pub async fn sort_by_every_field_nulls_last_ties_by_id(s: Stores) {
    let zed = create(&s, named("zed", 0)).await;
    let amy = create(
        &s,
        NewUser {
            password_hash: None,
            ..named("Amy", 0)
        },
    )
    .await;
    let carl = create(
        &s,
        NewUser {
            created_by: Some(zed.id),
            ..named("carl", 10)
        },
    )
    .await;
    let beth = create(
        &s,
        NewUser {
            created_by: Some(amy.id),
            ..named("Beth", 10)
        },
    )
    .await;
    let dan = create(
        &s,
        NewUser {
            created_by: Some(zed.id),
            password_hash: None,
            ..named("dan", 20)
        },
    )
    .await;
    let alan = create(&s, named("alan", 30)).await;
    let managed = create(
        &s,
        NewUser {
            now: at(30),
            ..new_managed_user(amy.id)
        },
    )
    .await;
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
            NewUser {
                id: Uuid::new_v4(),
                created_by: (i % 2 == 0).then_some(creator.id),
                password_hash: (i % 3 != 0).then(fake_hash),
                ..named(&format!("tied{i}"), 60)
            },
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
// Counting and growth

pub async fn count_equals_list_total_for_every_query(s: Stores) {
    let tier = new_tier(&s, "gold").await;
    let root = create(
        &s,
        NewUser {
            tier_id: Some(tier.id),
            first_name: some("Root"),
            ..named("root", 0)
        },
    )
    .await;
    for i in 1..=6 {
        create(
            &s,
            NewUser {
                created_by: Some(root.id),
                tier_id: (i % 2 == 0).then_some(tier.id),
                first_name: some(&format!("First{i}")),
                ..named(&format!("member{i}"), i)
            },
        )
        .await;
    }
    for i in 0..3 {
        create(
            &s,
            NewUser {
                now: at(10 + i),
                ..new_managed_user(root.id)
            },
        )
        .await;
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
    let created_at = |t: OffsetDateTime| NewUser {
        now: t,
        ..new_user()
    };
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
        NewUser {
            now: datetime!(2024-03-05 23:59:59 -01:00),
            ..new_managed_user(first.id)
        },
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

// ---------------------------------------------------------------------------------------------
// Tiers

pub async fn tiers_round_trip_with_quotas_and_rate_limits(s: Stores) {
    let resource = Uuid::new_v4();
    let quotas = BTreeMap::from([
        (ResourceId::Any, 0),
        (ResourceId::Id(resource), i64::MAX as u64),
        (ResourceId::Id(Uuid::new_v4()), 42),
    ]);
    let spec = TierSpec {
        name: some("Gold"),
        quotas: Some(quotas.clone()),
        rate_limits: Some(vec![
            limit("/v1/b", 10, 60),
            limit("/v1/a", 5, 1),
            limit("/v1/A", 1_000_000, 2_678_400),
        ]),
    };
    let id = Uuid::now_v7();
    let created = s.tiers.create(id, spec, at(0), None).await.unwrap();
    let expected = Tier {
        id,
        name: "Gold".to_owned(),
        quotas,
        // Ordered by path, byte-wise.
        rate_limits: vec![
            limit("/v1/A", 1_000_000, 2_678_400),
            limit("/v1/a", 5, 1),
            limit("/v1/b", 10, 60),
        ],
        created_at: at(0),
        updated_at: at(0),
    };
    assert_eq!(created, expected);
    assert_eq!(s.tiers.get(id).await.unwrap(), expected);
    assert_eq!(s.tiers.find_by_name("gold").await.unwrap(), expected);
    assert_eq!(s.tiers.find_by_name("GOLD").await.unwrap(), expected);
    assert_eq!(s.tiers.list().await.unwrap(), vec![expected.clone()]);

    // A tier with nothing in it.
    let bare = s
        .tiers
        .create(Uuid::now_v7(), tier_spec("Bare"), at(1), None)
        .await
        .unwrap();
    assert!(bare.quotas.is_empty() && bare.rate_limits.is_empty());
    assert_eq!(s.tiers.get(bare.id).await.unwrap(), bare);

    assert_eq!(err(s.tiers.get(Uuid::now_v7()).await), RepoError::NotFound);
    assert_eq!(err(s.tiers.find_by_name("gol").await), RepoError::NotFound);
    assert_eq!(
        err(s.tiers.find_by_name("gold ").await),
        RepoError::NotFound
    );
    assert_eq!(err(s.tiers.find_by_name("%").await), RepoError::NotFound);
}

pub async fn tier_names_are_unique_in_any_case(s: Stores) {
    let gold = new_tier(&s, "Gold").await;
    let silver = new_tier(&s, "Silver").await;
    let dup = TierSpec {
        quotas: Some(BTreeMap::from([(ResourceId::Any, 1)])),
        ..tier_spec("GOLD")
    };
    let id = Uuid::now_v7();
    assert_eq!(
        err(s.tiers.create(id, dup, at(1), None).await),
        RepoError::Conflict(Conflict::DuplicateTierName)
    );
    assert_eq!(err(s.tiers.get(id).await), RepoError::NotFound);

    // Renaming onto another tier's name conflicts and changes nothing at all.
    let rename = TierSpec {
        quotas: Some(BTreeMap::new()),
        rate_limits: Some(vec![]),
        ..tier_spec("gOLD")
    };
    let silver_full = s
        .tiers
        .update(
            silver.id,
            TierSpec {
                name: None,
                quotas: Some(BTreeMap::from([(ResourceId::Any, 7)])),
                rate_limits: Some(vec![limit("/x", 1, 1)]),
            },
            at(2),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        err(s.tiers.update(silver.id, rename, at(3), None).await),
        RepoError::Conflict(Conflict::DuplicateTierName)
    );
    assert_eq!(s.tiers.get(silver.id).await.unwrap(), silver_full);
    assert_eq!(s.tiers.get(gold.id).await.unwrap(), gold);

    // A tier may take its own name in another case.
    let renamed = s
        .tiers
        .update(gold.id, tier_spec("GOLD"), at(4), None)
        .await
        .unwrap();
    assert_eq!(renamed.name, "GOLD");
    assert_eq!(s.tiers.find_by_name("gold").await.unwrap(), renamed);
}

pub async fn tier_update_replaces_contents_and_renames(s: Stores) {
    let resource = Uuid::new_v4();
    let gold = s
        .tiers
        .create(
            Uuid::now_v7(),
            TierSpec {
                name: some("Gold"),
                quotas: Some(BTreeMap::from([
                    (ResourceId::Any, 10),
                    (ResourceId::Id(resource), 3),
                ])),
                rate_limits: Some(vec![limit("/a", 1, 1), limit("/b", 2, 2)]),
            },
            at(0),
            None,
        )
        .await
        .unwrap();

    // Only a name: quotas and rate limits stay.
    let t = s
        .tiers
        .update(gold.id, tier_spec("Platinum"), at(10), None)
        .await
        .unwrap();
    assert_eq!(
        t,
        Tier {
            name: "Platinum".into(),
            updated_at: at(10),
            ..gold.clone()
        }
    );
    assert_eq!(s.tiers.get(gold.id).await.unwrap(), t);
    assert_eq!(err(s.tiers.find_by_name("gold").await), RepoError::NotFound);
    assert_eq!(s.tiers.find_by_name("platinum").await.unwrap(), t);

    // Quotas replace every quota; rate limits stay.
    let other = Uuid::new_v4();
    let t = s
        .tiers
        .update(
            gold.id,
            TierSpec {
                name: None,
                quotas: Some(BTreeMap::from([(ResourceId::Id(other), 5)])),
                rate_limits: None,
            },
            at(20),
            None,
        )
        .await
        .unwrap();
    assert_eq!(t.quotas, BTreeMap::from([(ResourceId::Id(other), 5)]));
    assert_eq!(t.rate_limits, gold.rate_limits);
    assert_eq!((t.created_at, t.updated_at), (at(0), at(20)));

    // Rate limits replace every rate limit; quotas stay.
    let t = s
        .tiers
        .update(
            gold.id,
            TierSpec {
                name: None,
                quotas: None,
                rate_limits: Some(vec![limit("/c", 3, 30)]),
            },
            at(30),
            None,
        )
        .await
        .unwrap();
    assert_eq!(t.quotas, BTreeMap::from([(ResourceId::Id(other), 5)]));
    assert_eq!(t.rate_limits, vec![limit("/c", 3, 30)]);

    // Empty replacements clear.
    let t = s
        .tiers
        .update(
            gold.id,
            TierSpec {
                name: None,
                quotas: Some(BTreeMap::new()),
                rate_limits: Some(vec![]),
            },
            at(40),
            None,
        )
        .await
        .unwrap();
    assert!(t.quotas.is_empty() && t.rate_limits.is_empty());
    assert_eq!(t.updated_at, at(40));
    assert_eq!(s.tiers.get(gold.id).await.unwrap(), t);

    assert_eq!(
        err(s
            .tiers
            .update(Uuid::now_v7(), tier_spec("Ghost"), at(50), None)
            .await),
        RepoError::NotFound
    );
    assert_eq!(
        err(s.tiers.find_by_name("ghost").await),
        RepoError::NotFound
    );
}

pub async fn tiers_are_listed_by_name_case_insensitively(s: Stores) {
    for name in ["beta", "Zulu", "Alpha", "gamma", "_under"] {
        new_tier(&s, name).await;
    }
    let names: Vec<String> = s
        .tiers
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["_under", "Alpha", "beta", "gamma", "Zulu"]);
}

pub async fn tier_in_use_cannot_be_deleted(s: Stores) {
    let gold = new_tier(&s, "Gold").await;
    let spare = new_tier(&s, "Spare").await;
    let user = create(
        &s,
        NewUser {
            tier_id: Some(gold.id),
            ..named("member", 1)
        },
    )
    .await;
    assert_eq!(user.tier_id, Some(gold.id));

    assert_eq!(
        err(s.tiers.delete(gold.id, None).await),
        RepoError::Conflict(Conflict::TierInUse)
    );
    assert_eq!(s.tiers.get(gold.id).await.unwrap(), gold);

    // A soft-deleted user still holds the tier.
    s.users
        .update(user.id, soft_delete(at(2)), at(2))
        .await
        .unwrap();
    assert_eq!(
        err(s.tiers.delete(gold.id, None).await),
        RepoError::Conflict(Conflict::TierInUse)
    );

    // Unassigned, it goes.
    let after = s
        .users
        .update(user.id, with_tier(None), at(3))
        .await
        .unwrap();
    assert_eq!(after.tier_id, None);
    s.tiers.delete(gold.id, None).await.unwrap();
    assert_eq!(err(s.tiers.get(gold.id).await), RepoError::NotFound);
    assert_eq!(err(s.tiers.find_by_name("gold").await), RepoError::NotFound);
    assert_eq!(s.tiers.list().await.unwrap(), vec![spare.clone()]);
    assert_eq!(
        err(s.tiers.delete(gold.id, None).await),
        RepoError::NotFound
    );

    // A purged user releases its tier, and the freed name can be reused.
    let other = create(
        &s,
        NewUser {
            tier_id: Some(spare.id),
            ..named("other", 4)
        },
    )
    .await;
    assert_eq!(
        err(s.tiers.delete(spare.id, None).await),
        RepoError::Conflict(Conflict::TierInUse)
    );
    s.users.purge(other.id, None).await.unwrap();
    s.tiers.delete(spare.id, None).await.unwrap();
    assert_eq!(s.tiers.list().await.unwrap(), vec![]);
    new_tier(&s, "gold").await;
}

pub async fn unknown_tier_on_user_create_or_update_is_not_found(s: Stores) {
    let ghost = Uuid::now_v7();
    let new = NewUser {
        tier_id: Some(ghost),
        ..named("tierless", 1)
    };
    let id = new.id;
    assert_eq!(err(s.users.create(new).await), RepoError::NotFound);
    assert_eq!(err(s.users.get(id).await), RepoError::NotFound);
    assert_eq!(s.users.count(everyone()).await.unwrap(), 0);
    // The name was not taken by the failed insert.
    let user = create(&s, named("tierless", 2)).await;

    assert_eq!(
        err(s.users.update(user.id, with_tier(Some(ghost)), at(3)).await),
        RepoError::NotFound
    );
    assert_eq!(s.users.get(user.id).await.unwrap(), user);

    // A deleted tier is as unknown as one that never existed.
    let gone = new_tier(&s, "gone").await;
    s.tiers.delete(gone.id, None).await.unwrap();
    assert_eq!(
        err(s
            .users
            .update(user.id, with_tier(Some(gone.id)), at(4))
            .await),
        RepoError::NotFound
    );
    let real = new_tier(&s, "real").await;
    let assigned = s
        .users
        .update(user.id, with_tier(Some(real.id)), at(5))
        .await
        .unwrap();
    assert_eq!(
        (assigned.tier_id, assigned.updated_at),
        (Some(real.id), at(5))
    );
    assert_eq!(s.users.get(user.id).await.unwrap(), assigned);
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
    create(
        &s,
        NewUser {
            audit: Some(system.clone()),
            ..named("system-made", 7)
        },
    )
    .await;

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
    let dup = NewUser {
        audit: Some(e(AuditAction::UserCreated)),
        ..named("ONE", 10)
    };
    assert_eq!(
        err(s.users.create(dup).await),
        RepoError::Conflict(Conflict::DuplicateUsername)
    );
    let dup = NewUser {
        email: some("TWO@example.com"),
        audit: Some(e(AuditAction::UserCreated)),
        ..named("three", 10)
    };
    assert_eq!(
        err(s.users.create(dup).await),
        RepoError::Conflict(Conflict::DuplicateEmail)
    );
    let tierless = NewUser {
        tier_id: Some(Uuid::now_v7()),
        audit: Some(e(AuditAction::UserCreated)),
        ..named("four", 10)
    };
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
    let before = create(
        &s,
        NewUser {
            now: epoch - Duration::microseconds(1),
            ..new_user()
        },
    )
    .await;
    let on = create(
        &s,
        NewUser {
            now: epoch,
            ..new_user()
        },
    )
    .await;
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
