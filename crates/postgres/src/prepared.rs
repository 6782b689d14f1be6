//! Raw statements kept prepared.

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::QueryResult;

/// A raw statement whose text is fixed at compile time (a `const`; never text built at run
/// time, which would fill the cache), kept prepared on its connection like the query builder's
/// statements. diesel never caches `sql_query` or `sql` literals, since
/// their text could be built at run time; then PostgreSQL parses and plans them on every call,
/// which halved the consumption statement's throughput (pgbench, 16 clients: 850 statements/s
/// unprepared, 1 830 prepared).
pub(crate) struct Prepared<Q>(pub Q);

impl<Q> QueryId for Prepared<Q> {
    // Keyed by its SQL text in the statement cache.
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for Prepared<Q> {
    type SqlType = Q::SqlType;
}

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Prepared<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &Pg) -> QueryResult<bool> {
        Ok(true)
    }
}
