//! `filterBy`: each field with each operator it supports, and conditions combined.

use tessera_domain::model::{Tier, User, UserListQuery, UserState};
use time::{Duration, OffsetDateTime, UtcOffset};
use uuid::Uuid;

use super::{assert_filter, assert_lists, everyone, filtered, term};
use crate::contract::tiers::{new_tier, tier_spec};
use crate::contract::{
    at, create, named, new_managed_user, renamed, rfc, soft_delete, start_session_at, with_state,
    with_tier, Stores, UserBuilder,
};

pub async fn filter_username_and_email_by_each_operator(s: Stores) {
    let alice = create(&s, named("alice", 1).email("alice@x.org")).await;
    let bob = create(&s, named("Bob", 2).email("BOB@Example.com")).await;
    let carol = create(&s, named("carol", 3)).await;
    let dave = create(&s, named("dave", 4).email(None)).await;
    // No username and no email: fails every text comparison.
    let managed = create(&s, new_managed_user(alice.id).created_at(at(5))).await;
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
    let by = |creator: &User, name: &str, secs: i64| named(name, secs).created_by(creator.id);
    let u1 = create(&s, by(&admin, "u1", 3)).await;
    let u2 = create(&s, by(&admin, "u2", 4)).await;
    let u3 = create(&s, by(&helper, "u3", 5)).await;
    let u4 = create(&s, named("u4", 6)).await;
    let managed = create(&s, new_managed_user(helper.id).created_at(at(7))).await;

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
    let passwordless = create(&s, named("passwordless", 2).password_hash(None)).await;
    let managed = create(&s, new_managed_user(local.id).created_at(at(3))).await;
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
    let in_tier = |tier: &Tier, name: &str, secs: i64| named(name, secs).tier_id(tier.id);
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
    let a = create(&s, named("anna", 1).tier_id(tier.id)).await;
    let b = create(&s, named("annabel", 2).tier_id(tier.id).password_hash(None)).await;
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
