//! Contract cases for the directory, the user listing: `filterBy` (`filters.rs`), search and
//! name (`search.rs`), order, visibility, sorting and paging (`listing.rs`), counts and growth
//! (`counts.rs`). This file holds their helpers.
//!
//! Every case builds its fixture at fixed instants (whole microseconds, PostgreSQL's precision)
//! so bounds and UTC days are exact, and states its expectations explicitly: both adapters must
//! give exactly these answers.

use tessera_domain::directory::{SearchTerm, Sort, SortField, SortOrder, UserFilter};
use tessera_domain::model::{User, UserListQuery};
use uuid::Uuid;

use super::Stores;

mod counts;
pub use counts::*;

mod filters;
pub use filters::*;

mod listing;
pub use listing::*;

mod search;
pub use search::*;

// ---------------------------------------------------------------------------------------------
// Helpers

fn filter(raw: &str) -> UserFilter {
    UserFilter::parse(raw).unwrap_or_else(|e| panic!("filter {raw:?} should parse: {e}"))
}

fn term(raw: &str) -> Option<SearchTerm> {
    let t = SearchTerm::parse("search", raw).unwrap_or_else(|e| panic!("{raw:?}: {e}"));
    assert!(t.is_some(), "{raw:?} is a blank term");
    t
}

/// The whole directory (soft-deleted users aside), first 500 users.
pub(super) fn everyone() -> UserListQuery {
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
pub(super) async fn assert_filter(s: &Stores, raw: &str, expected: &[&User]) {
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
