//! The directory over HTTP: `filterBy`, `search`, `name`, sorting, paging stability, counting,
//! `include_deleted`, and the public helpers `name-check` and `stats/growth`.

use std::collections::HashSet;

use serde_json::{json, Value};
use tessera_testkit::TestApp;

use crate::support::*;

/// `GET /api/v1/users` with query parameters (URL-encoded by the client) as `token`.
pub(crate) async fn get_users(app: &TestApp, token: &str, params: &[(&str, &str)]) -> (u16, Value) {
    send(app.get("/api/v1/users").bearer_auth(token).query(params)).await
}

/// `GET /api/v1/users/count` with query parameters as `token`.
pub(crate) async fn get_count(app: &TestApp, token: &str, params: &[(&str, &str)]) -> (u16, Value) {
    send(
        app.get("/api/v1/users/count")
            .bearer_auth(token)
            .query(params),
    )
    .await
}

/// How a listed user is named in assertions: the username, else the display name.
fn label(user: &ApiUser) -> String {
    user.username
        .clone()
        .unwrap_or_else(|| user.display_name.clone())
}

fn labels(page: &UserPage) -> Vec<String> {
    page.data.iter().map(label).collect()
}

fn ids(page: &UserPage) -> Vec<String> {
    page.data.iter().map(|u| u.id.clone()).collect()
}

/// Lists with `params`, checks the page is the whole answer and that `/users/count` with the
/// same parameters agrees; returns the labels in listing order.
pub(crate) async fn listing(app: &TestApp, token: &str, params: &[(&str, &str)]) -> Vec<String> {
    let mut all = vec![("limit", "500")];
    all.extend_from_slice(params);
    let (status, body) = get_users(app, token, &all).await;
    assert_eq!(status, 200, "{params:?}: {body}");
    let page: UserPage = typed(&body);
    let names = labels(&page);
    assert_eq!(page.total_count, names.len() as u64, "{params:?}: {body}");
    assert!(!page.has_more, "{params:?}");
    let (status, count) = get_count(app, token, params).await;
    assert_eq!(status, 200, "count {params:?}: {count}");
    assert_eq!(count, json!({"count": names.len()}), "count {params:?}");
    names
}

async fn assert_listing(app: &TestApp, token: &str, params: &[(&str, &str)], want: &[&str]) {
    assert_eq!(listing(app, token, params).await, want, "{params:?}");
}

async fn assert_filter(app: &TestApp, token: &str, filter: &str, want: &[&str]) {
    assert_listing(app, token, &[("filterBy", filter)], want).await;
}

/// A small directory, created in this order: root (bootstrap), alice, Bob,
/// carol@corp.example (created by email only), dave, and alice's managed user "Kid Liddell".
/// root, alice and Bob have logged in (in that order); alice has tier Gold, Bob tier Silver;
/// dave is deactivated.
struct Directory {
    root: String,
    root_id: String,
    alice: ApiUser,
    alice_token: String,
    bob: ApiUser,
    gold_id: String,
}

async fn directory(app: &TestApp) -> Directory {
    let root = app.admin_token().await;
    let root_id = assert_token_works(app, &root).await.id;
    app.create_user(
        &root,
        json!({"username": "alice", "email": "alice@example.com", "password": "alice-password",
               "first_name": "Alice", "last_name": "Liddell"}),
    )
    .await;
    app.create_user(
        &root,
        json!({"username": "Bob", "email": "BOB@Example.org", "password": "bob-password"}),
    )
    .await;
    app.create_user(&root, json!({"email": "carol@corp.example"}))
        .await;
    app.create_user(
        &root,
        json!({"username": "dave", "password": "dave-password", "first_name": "Dave",
               "last_name": "O'Brien"}),
    )
    .await;
    let alice_token = app.token("alice", "alice-password").await;
    let (status, kid) = post_user(
        app,
        &alice_token,
        json!({"first_name": "Kid", "last_name": "Liddell"}),
    )
    .await;
    assert_eq!(status, 201, "{kid}");
    app.token("Bob", "bob-password").await;

    let mut tier_ids = Vec::new();
    for (name, user) in [("Gold", "alice"), ("Silver", "Bob")] {
        let (status, tier) = send(
            app.post("/api/v1/tiers")
                .bearer_auth(&root)
                .json(&json!({"name": name})),
        )
        .await;
        assert_eq!(status, 201, "{tier}");
        let id = tier["id"].as_str().unwrap().to_owned();
        let (status, body) = send(
            app.patch(&format!("/api/v1/users/{user}/tier"))
                .bearer_auth(&root)
                .json(&json!({"tier_id": id})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        tier_ids.push(id);
    }
    let (status, body) = send(app.post("/api/v1/users/dave/deactivate").bearer_auth(&root)).await;
    assert_eq!(status, 200, "{body}");

    // Read back with root's token: another root login would move its lastLogin.
    let alice = typed(&get_user(app, &root, "alice").await.1);
    let bob = typed(&get_user(app, &root, "Bob").await.1);
    Directory {
        alice,
        bob,
        root,
        root_id,
        alice_token,
        gold_id: tier_ids.remove(0),
    }
}

const CAROL: &str = "carol@corp.example";
const KID: &str = "Kid Liddell";

// ---------------------------------------------------------------------------------------------
// filterBy

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_filters_by_each_field_and_operator() {
    let app = TestApp::spawn().await;
    let d = directory(&app).await;
    let root = d.root.as_str();
    let everyone = ["root", "alice", "Bob", CAROL, "dave", KID];
    assert_listing(&app, root, &[], &everyone).await;
    assert_filter(&app, root, "", &everyone).await;

    // username and email: ==, <=, >= (case-insensitive), =@ (case-insensitive contains).
    assert_filter(&app, root, "username==ALICE", &["alice"]).await;
    assert_filter(&app, root, "username==bob", &["Bob"]).await;
    assert_filter(&app, root, "username==ali", &[]).await;
    assert_filter(&app, root, "username<=BOB", &["alice", "Bob"]).await;
    assert_filter(&app, root, "username>=d", &["root", "dave"]).await;
    assert_filter(&app, root, "username=@O", &["root", "Bob", CAROL]).await;
    assert_filter(&app, root, "email==alice@EXAMPLE.com", &["alice"]).await;
    assert_filter(&app, root, "email=@EXAMPLE.ORG", &["Bob"]).await;
    assert_filter(&app, root, "email>=a", &["alice", "Bob", CAROL]).await;
    assert_filter(&app, root, "email<=bob@example.org", &["alice", "Bob"]).await;

    // createdBy: by username, by id, contains.
    let by_root = ["alice", "Bob", CAROL, "dave"];
    assert_filter(&app, root, "createdBy==root", &by_root).await;
    assert_filter(&app, root, "createdBy==ROOT", &by_root).await;
    assert_filter(&app, root, &format!("createdBy=={}", d.root_id), &by_root).await;
    assert_filter(&app, root, &format!("createdBy=={}", d.alice.id), &[KID]).await;
    assert_filter(&app, root, "createdBy=@LIC", &[KID]).await;
    assert_filter(&app, root, "createdBy=@o", &by_root).await;
    assert_filter(&app, root, "createdBy==nobody", &[]).await;

    // Dates: inclusive bounds; never-logged-in users fail every lastLogin comparison.
    assert_filter(
        &app,
        root,
        "lastLogin>=2000-01-01T00:00:00Z",
        &["root", "alice", "Bob"],
    )
    .await;
    assert_filter(
        &app,
        root,
        "lastLogin<=9999-01-01T00:00:00Z",
        &["root", "alice", "Bob"],
    )
    .await;
    let alice_login = d.alice.last_login_at.as_deref().expect("alice logged in");
    assert_filter(&app, root, &format!("lastLogin=={alice_login}"), &["alice"]).await;
    assert_filter(
        &app,
        root,
        &format!("lastLogin<={alice_login}"),
        &["root", "alice"],
    )
    .await;
    assert_filter(
        &app,
        root,
        &format!("lastLogin>={alice_login}"),
        &["alice", "Bob"],
    )
    .await;
    let alice_created = &d.alice.created_at;
    assert_filter(
        &app,
        root,
        &format!("creationTime=={alice_created}"),
        &["alice"],
    )
    .await;
    assert_filter(
        &app,
        root,
        &format!("creationTime<={alice_created}"),
        &["root", "alice"],
    )
    .await;
    assert_filter(
        &app,
        root,
        &format!("creationTime>={alice_created}"),
        &["alice", "Bob", CAROL, "dave", KID],
    )
    .await;
    let bob_updated = &d.bob.updated_at;
    // Bob's tier came after alice's; dave's deactivation after both.
    assert_filter(
        &app,
        root,
        &format!("lastUpdated>={bob_updated}"),
        &["Bob", "dave"],
    )
    .await;
    assert_filter(&app, root, &format!("lastUpdated=={bob_updated}"), &["Bob"]).await;
    assert_filter(
        &app,
        root,
        &format!("lastUpdated<={bob_updated}"),
        &["root", "alice", "Bob", CAROL, KID],
    )
    .await;
    assert_filter(
        &app,
        root,
        &format!("creationTime>={alice_created},creationTime<={bob_updated},lastLogin>=2000-01-01T00:00:00Z"),
        &["alice", "Bob"],
    )
    .await;

    // isLocal, state.
    assert_filter(&app, root, "isLocal==false", &[KID]).await;
    assert_filter(
        &app,
        root,
        "isLocal==true",
        &["root", "alice", "Bob", CAROL, "dave"],
    )
    .await;
    assert_filter(&app, root, "state==deactivated", &["dave"]).await;
    assert_filter(
        &app,
        root,
        "state==active",
        &["root", "alice", "Bob", CAROL, KID],
    )
    .await;
    assert_filter(&app, root, "state==deleted", &[]).await;

    // tier: by name, by id, contains.
    assert_filter(&app, root, "tier==gold", &["alice"]).await;
    assert_filter(&app, root, "tier==GOLD", &["alice"]).await;
    assert_filter(&app, root, &format!("tier=={}", d.gold_id), &["alice"]).await;
    assert_filter(&app, root, "tier=@L", &["alice", "Bob"]).await;
    assert_filter(&app, root, "tier==bronze", &[]).await;

    // Conditions are AND-ed, also with search and name.
    assert_filter(
        &app,
        root,
        "username=@a,isLocal==true",
        &["alice", CAROL, "dave"],
    )
    .await;
    assert_filter(&app, root, "username=@a,tier==gold", &["alice"]).await;
    assert_filter(&app, root, "username=@a,state==deactivated", &["dave"]).await;
    assert_listing(
        &app,
        root,
        &[("filterBy", "isLocal==true"), ("search", "liddell")],
        &["alice"],
    )
    .await;
    assert_listing(
        &app,
        root,
        &[("filterBy", "createdBy==alice"), ("name", "kid l")],
        &[KID],
    )
    .await;
    // Whitespace around fields, operators and conditions is ignored.
    assert_filter(
        &app,
        root,
        " username == ALICE , isLocal == true ",
        &["alice"],
    )
    .await;
    // The snake_case spelling works too.
    assert_listing(&app, root, &[("filter_by", "username==alice")], &["alice"]).await;

    // A plain user's filters apply within what they can see.
    let alice = d.alice_token.as_str();
    assert_listing(&app, alice, &[], &["alice", KID]).await;
    assert_filter(&app, alice, "isLocal==false", &[KID]).await;
    assert_listing(&app, alice, &[("include_managed", "false")], &["alice"]).await;
    assert_filter(&app, alice, "username==Bob", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_filters_are_422_naming_the_failing_condition() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    for (filter, needles) in [
        (
            "nope==x",
            vec!["condition 1", "`nope==x`", "unknown field `nope`"],
        ),
        ("Username==x", vec!["unknown field `Username`"]),
        ("username!=x", vec!["condition 1", "`username!=x`", "op"]),
        ("username<>x", vec!["`username<>x`"]),
        ("username", vec!["`username`"]),
        ("username==", vec!["`username==`", "missing value"]),
        (
            "lastLogin>=yesterday",
            vec!["`lastLogin>=yesterday`", "RFC 3339"],
        ),
        ("creationTime==2024-13-01T00:00:00Z", vec!["RFC 3339"]),
        (
            "lastUpdated<=2024-01-01",
            vec!["`lastUpdated<=2024-01-01`", "RFC 3339"],
        ),
        (
            "creationTime=@2024",
            vec![
                "`creationTime=@2024`",
                "operator not supported for `creationTime`",
            ],
        ),
        (
            "lastLogin=@2024-01-01T00:00:00Z",
            vec!["operator not supported for `lastLogin`"],
        ),
        (
            "lastUpdated=@x",
            vec!["operator not supported for `lastUpdated`"],
        ),
        (
            "isLocal=@true",
            vec!["`isLocal=@true`", "operator not supported for `isLocal`"],
        ),
        (
            "isLocal>=true",
            vec!["operator not supported for `isLocal`"],
        ),
        ("isLocal==yes", vec!["true or false"]),
        ("state=@act", vec!["operator not supported for `state`"]),
        ("state==gone", vec!["active, deactivated or deleted"]),
        (
            "createdBy>=a",
            vec!["operator not supported for `createdBy`"],
        ),
        ("tier<=gold", vec!["operator not supported for `tier`"]),
        (
            "username==alice,bogus==1",
            vec!["condition 2", "`bogus==1`", "unknown field `bogus`"],
        ),
        (
            "username==alice,lastLogin>=soon",
            vec!["condition 2", "`lastLogin>=soon`"],
        ),
        ("username==a\0b", vec!["NUL"]),
    ] {
        for path in ["/api/v1/users", "/api/v1/users/count"] {
            let (status, body) = send(
                app.get(path)
                    .bearer_auth(&root)
                    .query(&[("filterBy", filter)]),
            )
            .await;
            let error = assert_invalid(status, &body, &["query", "filterBy"]);
            let msg = error.msg.as_str();
            for needle in &needles {
                assert!(
                    msg.contains(needle),
                    "{path} {filter:?}: {msg:?} lacks {needle:?}"
                );
            }
            assert_eq!(error.kind, "value_error", "{body}");
        }
    }
    let too_many = vec!["username==a"; 17].join(",");
    let (status, body) = get_users(&app, &root, &[("filterBy", &too_many)]).await;
    assert_invalid(status, &body, &["query", "filterBy"]);
    let too_long = format!("username=={}", "x".repeat(2100));
    let (status, body) = get_users(&app, &root, &[("filterBy", &too_long)]).await;
    assert_invalid(status, &body, &["query", "filterBy"]);
}

// ---------------------------------------------------------------------------------------------
// Sorting and paging

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_sorts_by_every_field_with_nulls_last() {
    let app = TestApp::spawn().await;
    let d = directory(&app).await;
    let root = d.root.as_str();
    let sorted = |by: &'static str, order: &'static str| vec![("sortBy", by), ("sortOrder", order)];

    // Case-insensitive; the managed user has no username and comes last either way.
    assert_listing(
        &app,
        root,
        &sorted("username", "asc"),
        &["alice", "Bob", CAROL, "dave", "root", KID],
    )
    .await;
    assert_listing(
        &app,
        root,
        &[("sortBy", "username")],
        &["alice", "Bob", CAROL, "dave", "root", KID],
    )
    .await;
    assert_listing(
        &app,
        root,
        &sorted("username", "desc"),
        &["root", "dave", CAROL, "Bob", "alice", KID],
    )
    .await;
    assert_listing(
        &app,
        root,
        &[("sort_by", "username"), ("sort_order", "desc")],
        &["root", "dave", CAROL, "Bob", "alice", KID],
    )
    .await;
    // Never-logged-in users last, among themselves by id (ids grow with creation).
    assert_listing(
        &app,
        root,
        &sorted("lastLogin", "asc"),
        &["root", "alice", "Bob", CAROL, "dave", KID],
    )
    .await;
    assert_listing(
        &app,
        root,
        &sorted("lastLogin", "desc"),
        &["Bob", "alice", "root", KID, "dave", CAROL],
    )
    .await;
    assert_listing(
        &app,
        root,
        &sorted("creationTime", "desc"),
        &[KID, "dave", CAROL, "Bob", "alice", "root"],
    )
    .await;
    // Updated: root, carol and Kid only at creation; then alice's and Bob's tiers, then
    // dave's deactivation.
    assert_listing(
        &app,
        root,
        &sorted("lastUpdated", "asc"),
        &["root", CAROL, KID, "alice", "Bob", "dave"],
    )
    .await;
    assert_listing(
        &app,
        root,
        &sorted("lastUpdated", "desc"),
        &["dave", "Bob", "alice", KID, CAROL, "root"],
    )
    .await;
    // By the creator's username; root has no creator.
    assert_listing(
        &app,
        root,
        &sorted("createdBy", "asc"),
        &[KID, "alice", "Bob", CAROL, "dave", "root"],
    )
    .await;
    assert_listing(
        &app,
        root,
        &sorted("createdBy", "desc"),
        &["dave", CAROL, "Bob", "alice", KID, "root"],
    )
    .await;
    // Local users first, ties by id.
    assert_listing(
        &app,
        root,
        &sorted("type", "asc"),
        &["root", "alice", "Bob", CAROL, "dave", KID],
    )
    .await;
    assert_listing(
        &app,
        root,
        &sorted("type", "desc"),
        &[KID, "dave", CAROL, "Bob", "alice", "root"],
    )
    .await;
    // Sorting combines with filters.
    assert_listing(
        &app,
        root,
        &[
            ("sortBy", "username"),
            ("sortOrder", "desc"),
            ("filterBy", "createdBy==root"),
        ],
        &["dave", CAROL, "Bob", "alice"],
    )
    .await;

    for (params, field) in [
        (vec![("sortBy", "password")], "sortBy"),
        (vec![("sortBy", "")], "sortBy"),
        (vec![("sortBy", "Username")], "sortBy"),
        (
            vec![("sortBy", "username"), ("sortOrder", "DESC")],
            "sortOrder",
        ),
        (
            vec![("sortBy", "username"), ("sortOrder", "down")],
            "sortOrder",
        ),
        (vec![("sortOrder", "sideways")], "sortOrder"),
    ] {
        let (status, body) = get_users(&app, root, &params).await;
        assert_invalid(status, &body, &["query", field]);
        let (status, body) = get_count(&app, root, &params).await;
        assert_invalid(status, &body, &["query", field]);
    }
    // A sort order alone is fine.
    let (status, body) = get_users(&app, root, &[("sortOrder", "desc")]).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_through_tied_sort_keys_never_repeats_or_skips() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    for i in 1..=9 {
        // Half local (with a password), half by email with a temporary password: same type.
        let body = if i % 2 == 0 {
            json!({"username": format!("user{i}"), "password": "user-password"})
        } else {
            json!({"email": format!("user{i}@example.com")})
        };
        app.create_user(&root, body).await;
    }
    for (by, order) in [
        ("lastLogin", "asc"),
        ("lastLogin", "desc"),
        ("type", "asc"),
        ("type", "desc"),
        ("createdBy", "asc"),
        ("createdBy", "desc"),
        ("username", "desc"),
        ("creationTime", "asc"),
        ("lastUpdated", "desc"),
    ] {
        let full: UserPage = answer_as(
            get_users(
                &app,
                &root,
                &[("sortBy", by), ("sortOrder", order), ("limit", "500")],
            )
            .await,
            200,
        );
        let full = ids(&full);
        assert_eq!(full.len(), 10);
        assert_eq!(full.iter().collect::<HashSet<_>>().len(), 10);

        let mut paged = Vec::new();
        for offset in (0..12).step_by(2) {
            let offset = offset.to_string();
            let page: UserPage = answer_as(
                get_users(
                    &app,
                    &root,
                    &[
                        ("sortBy", by),
                        ("sortOrder", order),
                        ("offset", &offset),
                        ("limit", "2"),
                    ],
                )
                .await,
                200,
            );
            assert_eq!(page.total_count, 10);
            let n: usize = offset.parse().unwrap();
            assert_eq!(page.has_more, n + 2 < 10, "{by} {order} at {offset}");
            paged.extend(ids(&page));
        }
        assert_eq!(paged, full, "{by} {order}: pages by offset");

        let mut by_page = Vec::new();
        for page in 1..=5 {
            let page = page.to_string();
            let body: UserPage = answer_as(
                get_users(
                    &app,
                    &root,
                    &[
                        ("sortBy", by),
                        ("sortOrder", order),
                        ("page", &page),
                        ("items_per_page", "3"),
                    ],
                )
                .await,
                200,
            );
            by_page.extend(ids(&body));
        }
        assert_eq!(by_page, full, "{by} {order}: pages by page number");
    }

    // The nine users nobody logged in as tie on lastLogin (NULL) and come by id.
    let body: UserPage = typed(
        &get_users(&app, &root, &[("sortBy", "lastLogin"), ("limit", "500")])
            .await
            .1,
    );
    let listed = ids(&body);
    let mut tail = listed[1..].to_vec();
    tail.sort();
    assert_eq!(listed[1..], tail[..]);
    assert_eq!(labels(&body)[0], "root");

    for (params, field) in [
        (vec![("limit", "0")], "limit"),
        (vec![("limit", "501")], "limit"),
        (vec![("offset", "-1")], "offset"),
        (vec![("page", "0")], "page"),
        (vec![("items_per_page", "501")], "items_per_page"),
    ] {
        let (status, body) = get_users(&app, &root, &params).await;
        assert_invalid(status, &body, &["query", field]);
    }
}

// ---------------------------------------------------------------------------------------------
// search, name, include_deleted, count

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_search_and_name_match_sql_metacharacters_literally() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    for body in [
        json!({"username": "pct", "email": "50%off@example.com", "first_name": "50% off"}),
        json!({"username": "nopct", "first_name": "50 off"}),
        json!({"username": "a_b"}),
        json!({"username": "axb"}),
        json!({"username": "bs", "email": "back\\slash@example.com"}),
        json!({"username": "nobs", "email": "backslash@example.com"}),
        json!({"username": "inj", "last_name": "'; drop table users; --"}),
        json!({"username": "noinj", "last_name": "drop table users"}),
    ] {
        app.create_user(&root, body).await;
    }
    let everyone = [
        "root", "pct", "nopct", "a_b", "axb", "bs", "nobs", "inj", "noinj",
    ];
    let search = |term: &'static str| [("search", term)];

    assert_listing(&app, &root, &search("%"), &["pct"]).await;
    assert_listing(&app, &root, &search("50%"), &["pct"]).await;
    assert_listing(&app, &root, &search("_"), &["a_b"]).await;
    assert_listing(&app, &root, &search("A_B"), &["a_b"]).await;
    assert_listing(&app, &root, &search("\\"), &["bs"]).await;
    assert_listing(&app, &root, &search("k\\s"), &["bs"]).await;
    assert_listing(&app, &root, &search("'; drop table users; --"), &["inj"]).await;
    assert_listing(&app, &root, &search("'"), &["inj"]).await;
    assert_listing(&app, &root, &search("--"), &["inj"]).await;
    assert_listing(&app, &root, &search("DROP TABLE"), &["inj", "noinj"]).await;
    assert_listing(&app, &root, &search("off"), &["pct", "nopct"]).await;
    assert_listing(&app, &root, &search("   "), &everyone).await;

    assert_filter(&app, &root, "email=@%", &["pct"]).await;
    assert_filter(&app, &root, "username=@_", &["a_b"]).await;
    assert_filter(&app, &root, "email=@\\", &["bs"]).await;
    assert_filter(&app, &root, "email=@k\\s", &["bs"]).await;
    assert_filter(&app, &root, "username==a%", &[]).await;

    assert_listing(&app, &root, &[("name", "%")], &["pct"]).await;
    assert_listing(&app, &root, &[("name", "_")], &["a_b"]).await;
    assert_listing(&app, &root, &[("name", "'; DROP")], &["inj"]).await;

    // Nothing was dropped or changed.
    assert_listing(&app, &root, &[], &everyone).await;

    for (param, value) in [
        ("search", "a\0b".to_owned()),
        ("name", "a\0b".to_owned()),
        ("search", "x".repeat(255)),
        ("name", "x".repeat(255)),
    ] {
        let (status, body) = get_users(&app, &root, &[(param, &value)]).await;
        assert_invalid(status, &body, &["query", param]);
        let (status, body) = get_count(&app, &root, &[(param, &value)]).await;
        assert_invalid(status, &body, &["query", param]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_name_searches_the_display_name() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    for body in [
        json!({"username": "jd", "first_name": "Jane", "last_name": "Doe"}),
        json!({"username": "johnny", "last_name": "Doe"}),
        json!({"username": "prince", "first_name": "Prince"}),
        json!({"email": "mail.only@example.org"}),
    ] {
        app.create_user(&root, body).await;
    }
    assert_listing(&app, &root, &[("name", "e d")], &["jd"]).await;
    assert_listing(&app, &root, &[("name", "JANE DOE")], &["jd"]).await;
    assert_listing(&app, &root, &[("name", "doe")], &["jd", "johnny"]).await;
    // Display names come from first and last names when there are any.
    assert_listing(&app, &root, &[("name", "jd")], &[]).await;
    assert_listing(&app, &root, &[("name", "johnny")], &[]).await;
    assert_listing(&app, &root, &[("name", "root")], &["root"]).await;
    assert_listing(
        &app,
        &root,
        &[("name", "mail.only")],
        &["mail.only@example.org"],
    )
    .await;
    // search covers usernames but not "first last" together.
    assert_listing(&app, &root, &[("search", "johnny")], &["johnny"]).await;
    assert_listing(&app, &root, &[("search", "jane doe")], &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_include_deleted_is_for_admins_only() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let (_, alice) = app.user_with_token("alice").await;
    let (_, ops) = admin_with_token(&app, "ops").await;
    app.create_user(
        &root,
        json!({"username": "eve", "password": "eve-password"}),
    )
    .await;
    let (status, _) = send(app.delete("/api/v1/users/eve").bearer_auth(&root)).await;
    assert_eq!(status, 204);

    assert_listing(&app, &root, &[], &["root", "alice", "ops"]).await;
    assert_listing(
        &app,
        &root,
        &[("include_deleted", "false")],
        &["root", "alice", "ops"],
    )
    .await;
    for admin in [&root, &ops] {
        assert_listing(
            &app,
            admin,
            &[("include_deleted", "true")],
            &["root", "alice", "ops", "eve"],
        )
        .await;
        assert_listing(
            &app,
            admin,
            &[("include_deleted", "true"), ("filterBy", "state==deleted")],
            &["eve"],
        )
        .await;
    }
    let (_, body) = get_users(
        &app,
        &root,
        &[("include_deleted", "true"), ("search", "eve")],
    )
    .await;
    let page: UserPage = typed(&body);
    assert_eq!(page.data[0].state, "deleted");
    assert!(page.data[0].deleted_at.is_some(), "{body}");

    // A plain user asking for deleted users gets what they can see anyway.
    assert_listing(&app, &alice, &[("include_deleted", "true")], &["alice"]).await;
    assert_listing(
        &app,
        &alice,
        &[("include_deleted", "true"), ("filterBy", "state==deleted")],
        &[],
    )
    .await;
    let (status, body) = get_users(&app, &root, &[("include_deleted", "maybe")]).await;
    assert_invalid(status, &body, &["query", "include_deleted"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_count_takes_the_same_filters_and_ignores_paging() {
    let app = TestApp::spawn().await;
    let d = directory(&app).await;
    let root = d.root.as_str();
    for (params, want) in [
        (vec![], 6),
        (vec![("filterBy", "isLocal==true")], 5),
        (vec![("filterBy", "createdBy==root,username=@a")], 3),
        (vec![("search", "liddell")], 2),
        (vec![("name", "kid")], 1),
        (vec![("filterBy", "state==deactivated")], 1),
        (vec![("include_deleted", "true")], 6),
        (vec![("offset", "4"), ("limit", "1")], 6),
        (vec![("page", "3"), ("items_per_page", "1")], 6),
        (vec![("sortBy", "lastLogin"), ("sortOrder", "desc")], 6),
        (vec![("filterBy", "username==nobody")], 0),
    ] {
        let (status, body) = get_count(&app, root, &params).await;
        assert_eq!(status, 200, "{params:?}: {body}");
        assert_eq!(body, json!({"count": want}), "{params:?}");
        let page: UserPage = typed(&get_users(&app, root, &params).await.1);
        assert_eq!(page.total_count, want, "{params:?}");
    }
    // A plain user counts what they can see.
    let (status, body) = get_count(&app, &d.alice_token, &[]).await;
    assert_eq!((status, body), (200, json!({"count": 2})));
    // Counting needs a caller, like listing.
    let (status, body) = send(app.get("/api/v1/users/count")).await;
    assert_eq!(status, 401, "{body}");
}

// ---------------------------------------------------------------------------------------------
// Public helpers

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_name_check_reports_validity_and_availability() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    app.create_user(
        &root,
        json!({"username": "alice", "password": "alice-password"}),
    )
    .await;
    app.create_user(
        &root,
        json!({"username": "eve", "password": "eve-password"}),
    )
    .await;
    app.create_user(&root, json!({"email": "carol@example.com"}))
        .await;
    let (status, _) = send(app.delete("/api/v1/users/eve").bearer_auth(&root)).await;
    assert_eq!(status, 204);

    let check = |name: &str| {
        let request = app
            .get("/api/v1/users/name-check")
            .query(&[("username", name)]);
        async move { send(request).await }
    };
    let long = "x".repeat(33);
    for (name, valid, available) in [
        ("alice", true, false),
        ("ALICE", true, false),
        ("Alice", true, false),
        ("root", true, false),
        // Soft-deleted users keep their names.
        ("eve", true, false),
        ("EVE", true, false),
        ("carol@example.com", true, false),
        ("Carol@Example.COM", true, false),
        ("bob", true, true),
        ("new.user-1_x", true, true),
        ("someone@example.com", true, true),
        ("a", false, false),
        ("_alice", false, false),
        ("has space", false, false),
        ("al%", false, false),
        ("al_", true, true),
        ("'; drop table users; --", false, false),
        ("0191f1a2-0000-7000-8000-000000000000", false, false),
        (long.as_str(), false, false),
        ("", false, false),
    ] {
        let (status, body) = check(name).await;
        assert_eq!(status, 200, "{name:?}: {body}");
        assert_eq!(
            body,
            json!({"valid": valid, "available": available}),
            "{name:?}"
        );
    }
    // A purged user's name is free again.
    let (status, _) = send(app.delete("/api/v1/users/db_user/eve").bearer_auth(&root)).await;
    assert_eq!(status, 204);
    let (_, body) = check("eve").await;
    assert_eq!(body, json!({"valid": true, "available": true}));

    let (status, body) = send(app.get("/api/v1/users/name-check")).await;
    assert_invalid(status, &body, &["query", "username"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_growth_counts_users_per_day_newest_first() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let today = read_user(&app, "root").await.created_at[..10].to_owned();

    let growth = |query: &'static str| {
        let request = app.get(&format!("/api/v1/stats/growth{query}"));
        async move { send(request).await }
    };
    // Public: no token needed.
    let (status, body) = growth("").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!([{"date": today, "count": 1, "cumulative": 1}]));

    for i in 0..3 {
        app.create_user(
            &root,
            json!({"username": format!("user{i}"), "password": "user-password"}),
        )
        .await;
    }
    let (_, alice) = app.user_with_token("alice").await;
    // A managed user and a soft-deleted user count too.
    let (status, _) = post_user(&app, &alice, json!({"first_name": "Kid"})).await;
    assert_eq!(status, 201);
    let (status, _) = send(app.delete("/api/v1/users/user0").bearer_auth(&root)).await;
    assert_eq!(status, 204);
    let (_, body) = growth("").await;
    assert_eq!(body, json!([{"date": today, "count": 6, "cumulative": 6}]));
    let (_, body) = growth("?days=1").await;
    assert_eq!(body, json!([{"date": today, "count": 6, "cumulative": 6}]));
    // Purged users are gone.
    let (status, _) = send(app.delete("/api/v1/users/db_user/user1").bearer_auth(&root)).await;
    assert_eq!(status, 204);
    let (_, body) = growth("?days=366").await;
    assert_eq!(body, json!([{"date": today, "count": 5, "cumulative": 5}]));
    let (status, body) = growth("?days=0").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!([{"date": today, "count": 5, "cumulative": 5}]));

    for query in ["?days=abc", "?days=-1", "?days=1.5"] {
        let (status, body) = growth(query).await;
        assert_invalid(status, &body, &["query", "days"]);
    }
}

#[tokio::test]
async fn directory_pages_by_cursor_stably_while_users_are_created() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    for i in 1..=7 {
        app.create_user(
            &root,
            json!({"username": format!("user{i}"), "password": "user-password"}),
        )
        .await;
    }
    for (by, order) in [
        ("creationTime", "asc"),
        ("username", "desc"),
        ("lastLogin", "desc"),
        ("type", "asc"),
        ("lastUpdated", "asc"),
    ] {
        let sort = [("sortBy", by), ("sortOrder", order)];
        let mut all = sort.to_vec();
        all.push(("limit", "500"));
        let before = ids(&answer_as(get_users(&app, &root, &all).await, 200));
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut created = 0;
        loop {
            let mut params = sort.to_vec();
            params.push(("limit", "3"));
            if let Some(c) = &cursor {
                params.push(("cursor", c));
            }
            let page: UserPage = answer_as(get_users(&app, &root, &params).await, 200);
            assert!(!page.total_is_estimate);
            seen.extend(ids(&page));
            assert_eq!(page.has_more, page.next_cursor.is_some(), "{by} {order}");
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
            // A user created between two pages never makes the walk repeat or skip one.
            created += 1;
            let name = format!("{by}{order}{created}").to_lowercase();
            app.create_user(
                &root,
                json!({"username": name, "password": "user-password"}),
            )
            .await;
        }
        assert_eq!(
            seen.iter().collect::<HashSet<_>>().len(),
            seen.len(),
            "{by} {order}: no user twice"
        );
        let kept: Vec<String> = seen.into_iter().filter(|id| before.contains(id)).collect();
        assert_eq!(
            kept, before,
            "{by} {order}: every earlier user once, in order"
        );
    }
    // A cursor is bound to its sort, excludes offset and page, and is not made up.
    let page: UserPage = answer_as(get_users(&app, &root, &[("limit", "2")]).await, 200);
    let cursor = page.next_cursor.expect("a next cursor");
    for params in [
        vec![("cursor", cursor.as_str()), ("sortBy", "username")],
        vec![("cursor", cursor.as_str()), ("offset", "2")],
        vec![("cursor", cursor.as_str()), ("page", "2")],
        vec![("cursor", "garbage")],
        vec![("cursor", cursor.as_str()), ("sortBy", "createdBy")],
    ] {
        let (status, body) = get_users(&app, &root, &params).await;
        assert_eq!(status, 422, "{params:?}: {body}");
        assert!(body.to_string().contains("cursor"), "{params:?}: {body}");
    }
    let (status, _) = get_users(&app, &root, &[("cursor", cursor.as_str()), ("offset", "0")]).await;
    assert_eq!(status, 200);
}
