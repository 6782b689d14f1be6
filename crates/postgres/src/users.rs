use async_trait::async_trait;
use diesel::dsl::{count_star, exists, sql};
use diesel::prelude::*;
use diesel::sql_types::{Bool, Nullable, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tessera_domain::directory::{
    Condition, FilterField, FilterOp, FilterValue, Sort, SortField, SortKey, SortOrder, UserCursor,
};
use tessera_domain::error::Conflict;
use tessera_domain::model::{
    AuditEvent, DailyCount, NewUser, Permission, RevokeSessions, StateCounts, User, UserChanges,
    UserListQuery, UserPage, UserState,
};
use tessera_domain::ports::{RepoError, RepoResult, UserRepository};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::record;
use crate::error::{is_foreign_key_violation, map, TxError};
use crate::models::{NewUserRow, UserChangeset, UserRow, WalletRow};
use crate::precision::{ceil_micros, floor_micros};
use crate::schema::{sessions, users, wallets};
use crate::PgStore;

diesel::define_sql_function!(fn lower(x: Nullable<Text>) -> Nullable<Text>);

/// The only foreign key a user insert or update can break with valid domain input is
/// `tier_id`: a tier that does not exist (any more) reads as `NotFound`.
fn tier_reference(err: diesel::result::Error) -> RepoError {
    if is_foreign_key_violation(&err) {
        RepoError::NotFound
    } else {
        map(err)
    }
}

fn to_users(rows: Vec<UserRow>) -> RepoResult<Vec<User>> {
    rows.into_iter().map(User::try_from).collect()
}

/// `permissions & superuser <> 0`, for the last-superuser guard.
fn is_superuser_sql() -> diesel::expression::SqlLiteral<Bool> {
    sql::<Bool>(&format!(
        "(users.permissions & {}) <> 0",
        Permission::Superuser.bit()
    ))
}

/// Locks every active superuser row and refuses when `target` is the only one and would stop
/// being one. Run inside the transaction that makes the change, so two concurrent demotions
/// cannot both pass.
///
/// `FOR NO KEY UPDATE` is enough: it conflicts with itself (so concurrent guards serialise, and
/// the second re-reads rows the first changed) and with deletes, but not with the `FOR KEY
/// SHARE` that foreign-key checks take, so sessions and ledger entries referencing a superuser
/// are never held up by a demotion elsewhere.
async fn guard_last_superuser(
    conn: &mut AsyncPgConnection,
    target: Uuid,
    still_superuser_after: bool,
) -> Result<(), RepoError> {
    if still_superuser_after {
        return Ok(());
    }
    let active: Vec<Uuid> = users::table
        .filter(users::state.eq(UserState::Active.as_str()))
        .filter(is_superuser_sql())
        .select(users::id)
        .for_no_key_update()
        .load(conn)
        .await
        .map_err(map)?;
    if active.len() == 1 && active[0] == target {
        return Err(RepoError::Conflict(Conflict::LastSuperuser));
    }
    Ok(())
}

pub(crate) async fn revoke_sessions(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    keep: Option<Uuid>,
    now: OffsetDateTime,
) -> Result<(), RepoError> {
    let target = sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::revoked_at.is_null());
    let result = match keep {
        Some(keep) => {
            diesel::update(target.filter(sessions::id.ne(keep)))
                .set(sessions::revoked_at.eq(now))
                .execute(conn)
                .await
        }
        None => {
            diesel::update(target)
                .set(sessions::revoked_at.eq(now))
                .execute(conn)
                .await
        }
    };
    result.map(|_| ()).map_err(map)
}

type BoxedUsers<'a> = users::BoxedQuery<'a, diesel::pg::Pg>;
type BoolSql = Box<dyn BoxableExpression<users::table, diesel::pg::Pg, SqlType = Nullable<Bool>>>;

/// `lower(<column>) COLLATE "C" <op> lower($1)`: case-insensitive text compared in byte order,
/// the same everywhere regardless of the database's locale.
fn text_compare(column: &'static str, op: FilterOp, operand: &str) -> BoolSql {
    let sql_op = match op {
        FilterOp::Eq => "=",
        FilterOp::Le => "<=",
        FilterOp::Ge => ">=",
        FilterOp::Contains => "ILIKE",
    };
    if op == FilterOp::Contains {
        let pattern = tessera_domain::directory::SearchTerm::parse("filterBy", operand)
            .ok()
            .flatten()
            .map(|t| t.like_pattern())
            .unwrap_or_else(|| "%".to_owned());
        return Box::new(
            sql::<Nullable<Bool>>(&format!("{column} ILIKE ")).bind::<Text, _>(pattern),
        );
    }
    Box::new(
        sql::<Nullable<Bool>>(&format!("lower({column}) COLLATE \"C\" {sql_op} lower("))
            .bind::<Text, _>(operand.to_owned())
            .sql(")"),
    )
}

/// A comparison with a bound that may be finer than the stored microseconds, kept exact:
/// `<= t` is `<= floor(t)`, `>= t` is `>= ceil(t)`, and `== t` matches nothing when `t` has a
/// fraction of a microsecond.
fn time_compare(column: &'static str, op: FilterOp, at: OffsetDateTime) -> BoolSql {
    let (sql_op, bound) = match op {
        FilterOp::Le => ("<=", floor_micros(at)),
        FilterOp::Ge => (">=", ceil_micros(at)),
        _ if floor_micros(at) != at => return Box::new(sql::<Nullable<Bool>>("false")),
        _ => ("=", at),
    };
    Box::new(
        sql::<Nullable<Bool>>(&format!("{column} {sql_op} "))
            .bind::<diesel::sql_types::Timestamptz, _>(bound),
    )
}

fn condition_sql(c: &Condition) -> BoolSql {
    match (c.field, &c.value) {
        (FilterField::Username, FilterValue::Text(v)) => text_compare("users.username", c.op, v),
        (FilterField::Email, FilterValue::Text(v)) => text_compare("users.email", c.op, v),
        (FilterField::CreatedBy, FilterValue::Id(id)) => {
            Box::new(users::created_by.eq(*id).nullable())
        }
        (FilterField::CreatedBy, FilterValue::Text(v)) => {
            let inner = match c.op {
                FilterOp::Contains => "c.username ILIKE ",
                _ => "lower(c.username) = lower(",
            };
            let operand = match c.op {
                FilterOp::Contains => tessera_domain::directory::SearchTerm::parse("filterBy", v)
                    .ok()
                    .flatten()
                    .map(|t| t.like_pattern())
                    .unwrap_or_else(|| "%".to_owned()),
                _ => v.clone(),
            };
            let close = if c.op == FilterOp::Contains {
                ")"
            } else {
                "))"
            };
            Box::new(
                sql::<Nullable<Bool>>(&format!(
                    "users.created_by IN (SELECT c.id FROM users c WHERE {inner}"
                ))
                .bind::<Text, _>(operand)
                .sql(close),
            )
        }
        (FilterField::LastLogin, FilterValue::Time(t)) => {
            time_compare("users.last_login_at", c.op, *t)
        }
        (FilterField::CreationTime, FilterValue::Time(t)) => {
            time_compare("users.created_at", c.op, *t)
        }
        (FilterField::LastUpdated, FilterValue::Time(t)) => {
            time_compare("users.updated_at", c.op, *t)
        }
        (FilterField::IsLocal, FilterValue::Bool(true)) => {
            Box::new(users::password_hash.is_not_null().nullable())
        }
        (FilterField::IsLocal, FilterValue::Bool(false)) => {
            Box::new(users::password_hash.is_null().nullable())
        }
        (FilterField::State, FilterValue::State(state)) => {
            Box::new(users::state.eq(state.as_str()).nullable())
        }
        (FilterField::Tier, FilterValue::Id(id)) => Box::new(users::tier_id.eq(*id)),
        (FilterField::Tier, FilterValue::Text(v)) => {
            let (inner, operand, close) = match c.op {
                FilterOp::Contains => (
                    "t.name ILIKE ",
                    tessera_domain::directory::SearchTerm::parse("filterBy", v)
                        .ok()
                        .flatten()
                        .map(|t| t.like_pattern())
                        .unwrap_or_else(|| "%".to_owned()),
                    ")",
                ),
                _ => ("lower(t.name) = lower(", v.clone(), "))"),
            };
            Box::new(
                sql::<Nullable<Bool>>(&format!(
                    "users.tier_id IN (SELECT t.id FROM tiers t WHERE {inner}"
                ))
                .bind::<Text, _>(operand)
                .sql(close),
            )
        }
        // The parser never pairs a field with another value type: match nothing.
        _ => Box::new(sql::<Nullable<Bool>>("false")),
    }
}

/// The visibility rule of a non-admin listing as one `id = ANY(ARRAY(…))`: the caller, its
/// managed users (by `users_manager_id_idx`) and its sharers (by `shares_grantee_idx`) are
/// gathered first, once, and the users are then read by primary key. However the rest of the
/// filter looks, the listing reads only these rows (an `OR` of sub-selects let the planner scan
/// the whole directory under an expensive filter).
fn visible_to(
    viewer: Uuid,
    managed: bool,
    shared: bool,
) -> Box<dyn BoxableExpression<users::table, diesel::pg::Pg, SqlType = Bool>> {
    use diesel::sql_types::{Bool as SqlBool, Uuid as SqlUuid};
    Box::new(
        sql::<Bool>("users.id = ANY(ARRAY(SELECT ")
            .bind::<SqlUuid, _>(viewer)
            .sql("::uuid UNION ALL SELECT m.id FROM users m WHERE ")
            .bind::<SqlBool, _>(managed)
            .sql(" AND m.manager_id = ")
            .bind::<SqlUuid, _>(viewer)
            .sql(" UNION ALL SELECT s.owner_id FROM shares s WHERE ")
            .bind::<SqlBool, _>(shared)
            .sql(" AND s.grantee_id = ")
            .bind::<SqlUuid, _>(viewer)
            .sql("))"),
    )
}

fn list_filter(query: &UserListQuery) -> BoxedUsers<'static> {
    let mut q = users::table.into_boxed();
    if let Some(viewer) = query.visible_to {
        q = q.filter(visible_to(
            viewer,
            query.include_managed,
            query.include_shared,
        ));
    }
    if !query.include_deleted {
        q = q.filter(users::state.ne(UserState::Deleted.as_str()));
    }
    if let Some(term) = &query.search {
        let p = term.like_pattern();
        q = q.filter(
            users::username
                .ilike(p.clone())
                .or(users::email.ilike(p.clone()))
                .or(users::first_name.ilike(p.clone()))
                .or(users::last_name.ilike(p)),
        );
    }
    if let Some(term) = &query.name {
        // The display name, exactly as `User::display_name` derives it.
        q = q.filter(
            sql::<Bool>(
                "COALESCE(NULLIF(btrim(concat_ws(' ', users.first_name, users.last_name)), ''), \
                 users.username, users.email, users.id::text) ILIKE ",
            )
            .bind::<Text, _>(term.like_pattern()),
        );
    }
    for condition in &query.filter.conditions {
        q = q.filter(condition_sql(condition));
    }
    q
}

/// Up to this many matching users, a page is cut from the sorted matches rather than read off a
/// sort index (see [`sort_sql`]).
const SORT_MATCHES_UP_TO: u64 = 2_000;

/// The `ORDER BY` of a listing. With `sort_matches` the keys are written so that no index can
/// serve the order: the planner then fetches the matching rows by the filter's own index (a
/// trigram bitmap scan for a substring filter) and sorts them. For a filter matching few users
/// that is far cheaper than walking a sort index and testing every row it passes — the plan
/// PostgreSQL picks otherwise, because it cannot tell how few rows match (on 100 000 users,
/// `username=@r0042` sorted by creation time: 21 ms walking the index, 5 ms sorting the matches).
fn sort_sql(sort: Option<Sort>, sort_matches: bool) -> String {
    let unindexed = |key: &str, suffix: &str| {
        if sort_matches {
            format!("({key}{suffix})")
        } else {
            key.to_owned()
        }
    };
    let Some(sort) = sort else {
        return format!(
            "{} ASC, users.id ASC",
            unindexed("users.created_at", " + interval '0'")
        );
    };
    let dir = match sort.order {
        SortOrder::Asc => "ASC",
        SortOrder::Desc => "DESC",
    };
    // NULLS LAST only on nullable keys: on a NOT NULL column it would keep the planner from
    // using the index backwards.
    let (key, nullable) = match sort.field {
        SortField::Username => (
            format!(
                "{} COLLATE \"C\"",
                unindexed("lower(users.username)", " || ''")
            ),
            true,
        ),
        // The creator's lowercase username, kept on the row (`creator_key`, by trigger) where
        // an index serves it; looked up per match when the matches are sorted.
        SortField::CreatedBy => (
            if sort_matches {
                "(SELECT lower(c.username) FROM users c WHERE c.id = users.created_by) \
                 COLLATE \"C\""
                    .to_owned()
            } else {
                "users.creator_key".to_owned()
            },
            true,
        ),
        SortField::LastLogin => (unindexed("users.last_login_at", " + interval '0'"), true),
        SortField::CreationTime => (unindexed("users.created_at", " + interval '0'"), false),
        SortField::LastUpdated => (unindexed("users.updated_at", " + interval '0'"), false),
        // Local (password) users first in ascending order.
        SortField::Type => ("(users.password_hash IS NULL)".to_owned(), false),
    };
    let nulls = if nullable { " NULLS LAST" } else { "" };
    format!("{key} {dir}{nulls}, users.id {dir}")
}

/// Whether a listing may match few users: any filter, search or viewer restricts it. Only the
/// whole directory (deleted users aside) is known to be large; it skips [`FewMatchesPage`].
fn narrows(query: &UserListQuery) -> bool {
    query.visible_to.is_some()
        || query.search.is_some()
        || query.name.is_some()
        || !query.filter.conditions.is_empty()
}

/// A page and its total in one statement, for a filter matching up to [`SORT_MATCHES_UP_TO`]
/// users: the matches (at most one more than that) are fetched once, by the filter's own index,
/// then counted and sorted. Counting and paging separately ran the filter's index scan twice (on
/// 100 000 users, `username=@r0042`: two trigram scans of ~5 ms each). Every row carries the
/// total; a total of one more than the limit means "too many", and the caller falls back to a
/// count and an index-ordered page.
///
/// `WITH matches AS MATERIALIZED (SELECT users.* … LIMIT n) SELECT <user columns>,
/// (SELECT count(*) FROM matches) FROM matches AS users ORDER BY … OFFSET … LIMIT …`: the
/// alias lets the usual select list and sort keys name the matches as `users`.
struct FewMatchesPage<M> {
    matches: M,
    columns: diesel::helper_types::AsSelect<UserRow, diesel::pg::Pg>,
    /// Keyset paging: only the matches after the cursor (nulls included: they sort last).
    after: Option<BoxedBool>,
    order: String,
    offset: i64,
    limit: i64,
}

impl FewMatchesPage<()> {
    fn new(
        query: &UserListQuery,
    ) -> FewMatchesPage<impl diesel::query_builder::QueryFragment<diesel::pg::Pg> + Send + 'static>
    {
        FewMatchesPage {
            matches: list_filter(query)
                .select(users::all_columns)
                .limit(clamp_i64(SORT_MATCHES_UP_TO + 1)),
            columns: UserRow::as_select(),
            after: query
                .after
                .as_ref()
                .map(|cursor| keyset_sql(query.sort, cursor, true)),
            // The matches are sorted (the CTE has no index, nor `creator_key`).
            order: sort_sql(query.sort, true),
            offset: clamp_i64(query.offset),
            // One more row than the page tells whether another page follows.
            limit: clamp_i64(query.limit.saturating_add(1)),
        }
    }
}

impl<M> diesel::query_builder::QueryId for FewMatchesPage<M> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<M> diesel::query_builder::Query for FewMatchesPage<M> {
    type SqlType = (
        diesel::dsl::SqlTypeOf<diesel::helper_types::AsSelect<UserRow, diesel::pg::Pg>>,
        diesel::sql_types::BigInt,
    );
}

impl<M: diesel::query_builder::QueryFragment<diesel::pg::Pg>>
    diesel::query_builder::QueryFragment<diesel::pg::Pg> for FewMatchesPage<M>
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> QueryResult<()> {
        // The text varies with the filter and the sort: not worth a prepared statement.
        out.unsafe_to_cache_prepared();
        out.push_sql("WITH matches AS MATERIALIZED (");
        self.matches.walk_ast(out.reborrow())?;
        out.push_sql(") SELECT ");
        self.columns.walk_ast(out.reborrow())?;
        out.push_sql(", (SELECT count(*) FROM matches) FROM matches AS users");
        if let Some(after) = &self.after {
            out.push_sql(" WHERE ");
            after.walk_ast(out.reborrow())?;
        }
        out.push_sql(" ORDER BY ");
        out.push_sql(&self.order);
        out.push_sql(" OFFSET ");
        out.push_bind_param::<diesel::sql_types::BigInt, _>(&self.offset)?;
        out.push_sql(" LIMIT ");
        out.push_bind_param::<diesel::sql_types::BigInt, _>(&self.limit)?;
        Ok(())
    }
}

#[derive(diesel::QueryableByName)]
struct StateRow {
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// The per-state counts `user_state_counts` keeps (by trigger, in the transaction of every
/// change to `users`): at most 3 states × 8 slots rows, whatever the directory size.
async fn state_counts(conn: &mut AsyncPgConnection) -> Result<StateCounts, TxError> {
    let rows: Vec<StateRow> = diesel::sql_query(
        "SELECT state, sum(n)::bigint AS n FROM user_state_counts GROUP BY state",
    )
    .load(conn)
    .await?;
    let mut counts = StateCounts::default();
    for row in rows {
        let n = u64::try_from(row.n).unwrap_or(0);
        match UserState::parse(&row.state) {
            Some(UserState::Active) => counts.active = n,
            Some(UserState::Deactivated) => counts.deactivated = n,
            Some(UserState::Deleted) => counts.deleted = n,
            None => {}
        }
    }
    Ok(counts)
}

#[derive(diesel::QueryableByName)]
struct DayRow {
    #[diesel(sql_type = diesel::sql_types::Date)]
    day: time::Date,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// `SET LOCAL statement_timeout` for the rest of the transaction: a directory statement whose
/// filter the caller chose cannot hold a connection past `limit`.
async fn limit_statements(
    conn: &mut AsyncPgConnection,
    limit: std::time::Duration,
) -> Result<(), TxError> {
    let millis = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX).max(1);
    diesel::sql_query(format!("SET LOCAL statement_timeout = {millis}"))
        .execute(conn)
        .await?;
    Ok(())
}

/// From this offset on, a page is read as ids first (see [`list_page`]).
const DEFER_FROM_OFFSET: u64 = 1_000;

/// A filtered listing whose matches the planner estimates above this is not counted: its
/// total is the estimate, marked as such (counting would read every match).
const ESTIMATE_ABOVE: u64 = 10_000;
/// Otherwise matches are counted exactly up to this many; beyond it, the total is again an
/// estimate (the planner's, at least the number counted).
const COUNT_UP_TO: u64 = 10_000;

/// One page of a listing and its total:
/// - only states restrict it (the whole directory, or `state==…`): the total is the sum of the
///   kept per-state counts, exact, O(1); the page is read off a sort index;
/// - otherwise, when the planner expects more than [`ESTIMATE_ABOVE`] matches, the total is its
///   estimate (`total_exact: false`) and the page is read off a sort index;
/// - otherwise up to [`SORT_MATCHES_UP_TO`] matches are gathered, counted and sorted in one
///   statement ([`FewMatchesPage`]); more are counted up to [`COUNT_UP_TO`] (exact) and the page
///   is read off a sort index.
///
/// Every page reads one row more than asked, which tells whether another page follows.
async fn list_page(
    conn: &mut AsyncPgConnection,
    query: &UserListQuery,
) -> Result<UserPage, TxError> {
    let limit = query.limit;
    let (total, exact, sort_matches) = match query.counted_states() {
        Some(states) => {
            let total = state_counts(conn).await?.covering(&states);
            (total, true, total <= SORT_MATCHES_UP_TO)
        }
        None => {
            let estimate = estimated_matches(conn, query).await?;
            if estimate > ESTIMATE_ABOVE {
                (estimate, false, false)
            } else {
                let rows: Vec<(UserRow, i64)> = FewMatchesPage::new(query).load(conn).await?;
                let total =
                    <[_]>::first(&rows).map(|(_, total)| u64::try_from(*total).unwrap_or(0));
                match total {
                    Some(total) if total <= SORT_MATCHES_UP_TO => {
                        let users = rows.into_iter().map(|(user, _)| user).collect();
                        return page_of(users, limit, total, true);
                    }
                    // No row on a first page: nothing matches.
                    None if query.offset == 0 && query.after.is_none() => {
                        return page_of(Vec::new(), limit, 0, true);
                    }
                    // Too many matches, or a page past the end (whose total the empty page
                    // cannot tell): count, then read the page in the best order for the size.
                    _ => {}
                }
                let counted = bounded_count(conn, query, COUNT_UP_TO).await?;
                if counted <= COUNT_UP_TO {
                    (counted, true, counted <= SORT_MATCHES_UP_TO)
                } else {
                    (estimate.max(counted), false, false)
                }
            }
        }
    };
    if exact && query.after.is_none() && query.offset >= total {
        return page_of(Vec::new(), limit, total, true);
    }
    let fetch = limit.saturating_add(1);
    let mut rows: Vec<UserRow> = if query.offset >= DEFER_FROM_OFFSET && !sort_matches {
        // A deep offset walks the rows before the page in the sort index: it reads only their
        // ids there (an index-only scan where the index covers the filter, as for the default
        // order), and the page's rows by primary key.
        let ids = list_filter(query)
            .order(sql::<Text>(&sort_sql(query.sort, false)))
            .offset(clamp_i64(query.offset))
            .limit(clamp_i64(fetch))
            .select(users::id);
        users::table
            .filter(users::id.eq_any(ids))
            .order(sql::<Text>(&sort_sql(query.sort, false)))
            .select(UserRow::as_select())
            .load(conn)
            .await?
    } else {
        ordered_rows(query, sort_matches, None)
            .offset(clamp_i64(query.offset))
            .limit(clamp_i64(fetch))
            .load(conn)
            .await?
    };
    // Keyset paging on a nullable key walks the index up to the last value, then the users
    // without one (sorted last, by id): two index ranges instead of one `OR`, which no index
    // serves in order.
    if let Some(cursor) = &query.after {
        let missing = fetch.saturating_sub(rows.len() as u64);
        let nullable = key_expr(query.sort).is_some_and(|(_, nullable)| nullable);
        if !sort_matches && nullable && cursor.key.is_some() && missing > 0 {
            let nulls: Vec<UserRow> = ordered_rows(query, sort_matches, Some(()))
                .limit(clamp_i64(missing))
                .load(conn)
                .await?;
            rows.extend(nulls);
        }
    }
    page_of(rows, limit, total, exact)
}

/// The listing's filter, after its cursor if any, in its order, as user rows. `nulls_only`: the
/// users without a value for the (nullable) sort key, which sort after every cursor with one.
fn ordered_rows(
    query: &UserListQuery,
    sort_matches: bool,
    nulls_only: Option<()>,
) -> diesel::dsl::Select<BoxedUsers<'static>, diesel::helper_types::AsSelect<UserRow, diesel::pg::Pg>>
{
    let mut q = list_filter(query);
    match (&query.after, nulls_only) {
        (Some(_), Some(())) => {
            if let Some((expr, _)) = key_expr(query.sort) {
                q = q.filter(sql::<Bool>(&format!("{expr} IS NULL")));
            }
        }
        (Some(cursor), None) => q = q.filter(keyset_sql(query.sort, cursor, sort_matches)),
        (None, _) => {}
    }
    q.order(sql::<Text>(&sort_sql(query.sort, sort_matches)))
        .select(UserRow::as_select())
}

fn page_of(
    mut rows: Vec<UserRow>,
    limit: u64,
    total: u64,
    total_exact: bool,
) -> Result<UserPage, TxError> {
    let more = rows.len() as u64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(UserPage {
        users: to_users(rows)?,
        total,
        total_exact,
        more,
    })
}

/// How many users match, counting at most `up_to + 1` of them.
async fn bounded_count(
    conn: &mut AsyncPgConnection,
    query: &UserListQuery,
    up_to: u64,
) -> Result<u64, TxError> {
    let ids: Vec<Uuid> = list_filter(query)
        .select(users::id)
        .limit(clamp_i64(up_to.saturating_add(1)))
        .load(conn)
        .await?;
    Ok(ids.len() as u64)
}

/// The planner's estimate of how many users the listing's filter matches (`EXPLAIN`, no
/// execution: planning cost only).
async fn estimated_matches(
    conn: &mut AsyncPgConnection,
    query: &UserListQuery,
) -> Result<u64, TxError> {
    let plans: Vec<String> = ExplainJson(list_filter(query).select(users::id))
        .load(conn)
        .await?;
    let rows = <[String]>::first(&plans)
        .and_then(|raw| serde_json::from_str::<serde_json::Value>(raw).ok())
        .and_then(|v| v.get(0)?.get("Plan")?.get("Plan Rows")?.as_f64())
        .unwrap_or(0.0);
    // A float of rows, rounded; negative or absurd values read as zero.
    Ok(if rows.is_finite() && rows > 0.0 {
        rows.round() as u64
    } else {
        0
    })
}

/// `EXPLAIN (FORMAT JSON)` of a query: one text row.
struct ExplainJson<Q>(Q);

impl<Q> diesel::query_builder::QueryId for ExplainJson<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q> diesel::query_builder::Query for ExplainJson<Q> {
    type SqlType = Text;
}

impl<Q: diesel::query_builder::QueryFragment<diesel::pg::Pg>>
    diesel::query_builder::QueryFragment<diesel::pg::Pg> for ExplainJson<Q>
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> QueryResult<()> {
        out.unsafe_to_cache_prepared();
        out.push_sql("EXPLAIN (FORMAT JSON) ");
        self.0.walk_ast(out.reborrow())
    }
}

type BoxedBool = Box<dyn BoxableExpression<users::table, diesel::pg::Pg, SqlType = Bool>>;

/// The sort key as the sort indexes hold it, and whether it can be NULL; `None` for the
/// creator's name (no index, no cursor).
fn key_expr(sort: Option<Sort>) -> Option<(&'static str, bool)> {
    let Some(sort) = sort else {
        return Some(("users.created_at", false));
    };
    match sort.field {
        SortField::Username => Some(("lower(users.username) COLLATE \"C\"", true)),
        SortField::CreatedBy => None,
        SortField::LastLogin => Some(("users.last_login_at", true)),
        SortField::CreationTime => Some(("users.created_at", false)),
        SortField::LastUpdated => Some(("users.updated_at", false)),
        SortField::Type => Some(("(users.password_hash IS NULL)", false)),
    }
}

/// The users after `cursor` in the listing's order: `ROW(key, id) > ROW($key, $id)` (`<`
/// descending), a range of the sort index. Users without a key sort last: after a cursor in
/// them, those with a greater id (smaller, descending); after any other cursor, all of them —
/// included here only `with_nulls` (see [`list_page`] for the index-ordered case).
fn keyset_sql(sort: Option<Sort>, cursor: &UserCursor, with_nulls: bool) -> BoxedBool {
    use diesel::sql_types::{Timestamptz, Uuid as SqlUuid};
    let Some((expr, nullable)) = key_expr(sort) else {
        return Box::new(sql::<Bool>("false"));
    };
    let op = match sort.map(|s| s.order) {
        Some(SortOrder::Desc) => "<",
        _ => ">",
    };
    let Some(key) = &cursor.key else {
        return Box::new(
            sql::<Bool>(&format!("({expr} IS NULL AND users.id {op} "))
                .bind::<SqlUuid, _>(cursor.id)
                .sql(")"),
        );
    };
    let head = format!("(ROW({expr}, users.id) {op} ROW(");
    let tail = if nullable && with_nulls {
        format!(") OR {expr} IS NULL)")
    } else {
        "))".to_owned()
    };
    match key {
        SortKey::Time(t) => Box::new(
            sql::<Bool>(&head)
                .bind::<Timestamptz, _>(*t)
                .sql(", ")
                .bind::<SqlUuid, _>(cursor.id)
                .sql(&tail),
        ),
        SortKey::Text(v) => Box::new(
            sql::<Bool>(&head)
                .bind::<Text, _>(v.clone())
                .sql(" COLLATE \"C\", ")
                .bind::<SqlUuid, _>(cursor.id)
                .sql(&tail),
        ),
        SortKey::Flag(b) => Box::new(
            sql::<Bool>(&head)
                .bind::<Bool, _>(*b)
                .sql(", ")
                .bind::<SqlUuid, _>(cursor.id)
                .sql(&tail),
        ),
    }
}

/// `EXPLAIN (COSTS OFF)` of a query, as one text row per plan line.
struct Explain<Q>(Q);

impl<Q> diesel::query_builder::QueryId for Explain<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q> diesel::query_builder::Query for Explain<Q> {
    type SqlType = Text;
}

impl<Q: diesel::query_builder::QueryFragment<diesel::pg::Pg>>
    diesel::query_builder::QueryFragment<diesel::pg::Pg> for Explain<Q>
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> QueryResult<()> {
        out.unsafe_to_cache_prepared();
        out.push_sql("EXPLAIN (COSTS OFF) ");
        self.0.walk_ast(out.reborrow())
    }
}

impl PgStore {
    /// The plan PostgreSQL chooses for the first statement of a directory listing (for
    /// operators and for the tests that pin the plans: a non-admin listing must never scan the
    /// whole directory).
    pub async fn explain_listing(&self, query: &UserListQuery) -> RepoResult<String> {
        let mut conn = self.conn().await?;
        let lines: Vec<String> = if narrows(query) {
            Explain(FewMatchesPage::new(query))
                .load(&mut conn)
                .await
                .map_err(map)?
        } else {
            Explain(list_filter(query).select(count_star()))
                .load(&mut conn)
                .await
                .map_err(map)?
        };
        Ok(lines.join("\n"))
    }
}

#[async_trait]
impl UserRepository for PgStore {
    async fn create(&self, mut user: NewUser) -> RepoResult<User> {
        let audit = user.audit.take();
        let mut conn = self.conn().await?;
        let wallet = WalletRow {
            id: user.default_wallet.id,
            user_id: user.id,
            name: user.default_wallet.name.clone(),
            currency: user.default_wallet.currency.clone(),
            is_default: true,
            balance: 0,
            allow_negative: false,
            created_at: user.now,
            updated_at: user.now,
            deleted_at: None,
        };
        conn.transaction(async |conn| -> Result<_, TxError> {
            let row: UserRow = diesel::insert_into(users::table)
                .values(NewUserRow::from(user))
                .returning(UserRow::as_returning())
                .get_result(conn)
                .await
                .map_err(tier_reference)?;
            diesel::insert_into(wallets::table)
                .values(&wallet)
                .execute(conn)
                .await
                .map_err(map)?;
            record(conn, audit.as_ref()).await?;
            Ok(User::try_from(row)?)
        })
        .await
        .map_err(RepoError::from)
    }

    async fn get(&self, id: Uuid) -> RepoResult<User> {
        let mut conn = self.conn().await?;
        let row: UserRow = users::table
            .find(id)
            .select(UserRow::as_select())
            .first(&mut conn)
            .await
            .map_err(map)?;
        row.try_into()
    }

    async fn find_by_hotkey(&self, hotkey: &str) -> RepoResult<User> {
        let mut conn = self.conn().await?;
        let row: UserRow = users::table
            .filter(users::hotkey.eq(hotkey))
            .select(UserRow::as_select())
            .first(&mut conn)
            .await
            .map_err(map)?;
        row.try_into()
    }

    async fn find_by_coldkey(&self, coldkey: &str, limit: u32) -> RepoResult<Vec<User>> {
        let mut conn = self.conn().await?;
        let rows: Vec<UserRow> = users::table
            .filter(users::coldkey.eq(coldkey))
            .order(users::id)
            .limit(i64::from(limit))
            .select(UserRow::as_select())
            .load(&mut conn)
            .await
            .map_err(map)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn find_by_fingerprint(&self, digest: &str) -> RepoResult<User> {
        let mut conn = self.conn().await?;
        let row: UserRow = users::table
            .filter(users::fingerprint_hash.eq(digest))
            .select(UserRow::as_select())
            .first(&mut conn)
            .await
            .map_err(map)?;
        row.try_into()
    }

    async fn find_by_username(&self, username: &str) -> RepoResult<User> {
        let mut conn = self.conn().await?;
        let row: UserRow = users::table
            .filter(lower(users::username).eq(lower(username)))
            .select(UserRow::as_select())
            .first(&mut conn)
            .await
            .map_err(map)?;
        row.try_into()
    }

    async fn find_login(&self, login: &str) -> RepoResult<(User, Option<String>)> {
        let mut conn = self.conn().await?;
        // A username match wins over an email match (a Run:ai local user's username is an
        // email address that another user could hold as their email).
        let (row, hash): (UserRow, Option<String>) = users::table
            .filter(
                lower(users::username)
                    .eq(lower(login))
                    .or(lower(users::email).eq(lower(login))),
            )
            .order(lower(users::username).eq(lower(login)).desc())
            .select((UserRow::as_select(), users::password_hash))
            .first(&mut conn)
            .await
            .map_err(map)?;
        Ok((row.try_into()?, hash))
    }

    async fn password_hash(&self, id: Uuid) -> RepoResult<Option<String>> {
        let mut conn = self.conn().await?;
        users::table
            .find(id)
            .select(users::password_hash)
            .first(&mut conn)
            .await
            .map_err(map)
    }

    async fn update(
        &self,
        id: Uuid,
        changes: UserChanges,
        now: OffsetDateTime,
    ) -> RepoResult<User> {
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| -> Result<_, TxError> {
            if changes.may_reduce_superusers() {
                let current: Option<(String, i64)> = users::table
                    .find(id)
                    .select((users::state, users::permissions))
                    .first(conn)
                    .await
                    .optional()
                    .map_err(map)?;
                let (state, bits) = current.ok_or(TxError(RepoError::NotFound))?;
                let after_state = changes
                    .state
                    .map(UserState::as_str)
                    .unwrap_or(state.as_str())
                    .to_owned();
                let after_perms = changes
                    .permissions
                    .unwrap_or(tessera_domain::model::Permissions::from_bits(bits));
                let still = after_state == UserState::Active.as_str() && after_perms.is_superuser();
                guard_last_superuser(conn, id, still).await?;
            }
            let row: UserRow = diesel::update(users::table.find(id))
                .set(UserChangeset::new(&changes, now))
                .returning(UserRow::as_returning())
                .get_result(conn)
                .await
                .map_err(tier_reference)?;
            record(conn, changes.audit.as_ref()).await?;
            match changes.revoke_sessions {
                RevokeSessions::None => {}
                RevokeSessions::All => revoke_sessions(conn, id, None, now).await?,
                RevokeSessions::AllExcept(keep) => {
                    revoke_sessions(conn, id, Some(keep), now).await?
                }
            }
            Ok(User::try_from(row)?)
        })
        .await
        .map_err(RepoError::from)
    }

    async fn set_invoicing(
        &self,
        id: Uuid,
        invoicing: bool,
        unlimited: bool,
        now: OffsetDateTime,
        audit: Option<AuditEvent>,
    ) -> RepoResult<User> {
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| -> Result<_, TxError> {
            let row: UserRow = diesel::update(users::table.find(id))
                .set((
                    users::invoicing.eq(invoicing),
                    users::unlimited.eq(unlimited),
                    users::updated_at.eq(now),
                ))
                .returning(UserRow::as_returning())
                .get_result(conn)
                .await
                .map_err(map)?;
            // The denormalised copy the wallets' CHECK reads; it refuses turning invoicing off
            // while a wallet is below zero.
            diesel::update(wallets::table.filter(wallets::user_id.eq(id)))
                .set(wallets::allow_negative.eq(invoicing))
                .execute(conn)
                .await
                .map_err(|e| match map(e) {
                    RepoError::Conflict(Conflict::InsufficientFunds) => {
                        RepoError::Conflict(Conflict::NegativeBalance)
                    }
                    other => other,
                })?;
            record(conn, audit.as_ref()).await?;
            Ok(User::try_from(row)?)
        })
        .await
        .map_err(RepoError::from)
    }

    async fn list(&self, query: UserListQuery) -> RepoResult<UserPage> {
        let mut conn = self.conn().await?;
        match self.directory_timeout {
            None => list_page(&mut conn, &query).await.map_err(RepoError::from),
            Some(limit) => conn
                .transaction(async |conn| -> Result<_, TxError> {
                    limit_statements(conn, limit).await?;
                    list_page(conn, &query).await
                })
                .await
                .map_err(RepoError::from),
        }
    }

    async fn count(&self, query: UserListQuery) -> RepoResult<u64> {
        let mut conn = self.conn().await?;
        let count = async |conn: &mut AsyncPgConnection| -> Result<u64, TxError> {
            let total: i64 = list_filter(&query).select(count_star()).first(conn).await?;
            Ok(u64::try_from(total).unwrap_or(0))
        };
        match self.directory_timeout {
            None => count(&mut conn).await.map_err(RepoError::from),
            Some(limit) => conn
                .transaction(async |conn| -> Result<_, TxError> {
                    limit_statements(conn, limit).await?;
                    count(conn).await
                })
                .await
                .map_err(RepoError::from),
        }
    }

    async fn count_by_state(&self) -> RepoResult<StateCounts> {
        let mut conn = self.conn().await?;
        state_counts(&mut conn).await.map_err(RepoError::from)
    }

    /// Read off `user_created_days` (kept by trigger, see the migration): one index range of
    /// at most `days` × 8 slot rows.
    async fn growth(&self, days: u32) -> RepoResult<Vec<DailyCount>> {
        let mut conn = self.conn().await?;
        let rows: Vec<DayRow> = diesel::sql_query(
            "SELECT day, sum(n)::bigint AS n FROM user_created_days \
             GROUP BY day HAVING sum(n) > 0 ORDER BY day DESC LIMIT $1",
        )
        .bind::<diesel::sql_types::BigInt, _>(i64::from(days))
        .load(&mut conn)
        .await
        .map_err(map)?;
        Ok(rows
            .into_iter()
            .map(|r| DailyCount {
                day: r.day,
                count: u64::try_from(r.n).unwrap_or(0),
            })
            .collect())
    }

    async fn any_exists(&self) -> RepoResult<bool> {
        let mut conn = self.conn().await?;
        diesel::select(exists(users::table.select(users::id)))
            .get_result(&mut conn)
            .await
            .map_err(map)
    }

    async fn count_managed_by(&self, manager_id: Uuid) -> RepoResult<u64> {
        let mut conn = self.conn().await?;
        let n: i64 = users::table
            .filter(users::manager_id.eq(manager_id))
            .select(count_star())
            .first(&mut conn)
            .await
            .map_err(map)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn purge(&self, id: Uuid, audit: Option<AuditEvent>) -> RepoResult<()> {
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| -> Result<_, TxError> {
            let exists: Option<Uuid> = users::table
                .find(id)
                .select(users::id)
                .first(conn)
                .await
                .optional()
                .map_err(map)?;
            if exists.is_none() {
                return Err(RepoError::NotFound.into());
            }
            lock_wallets_of(conn, id).await?;
            guard_last_superuser(conn, id, false).await?;
            // Sessions, refresh tokens, wallets with their ledger and idempotency keys, and
            // managed users go by ON DELETE CASCADE.
            diesel::delete(users::table.find(id))
                .execute(conn)
                .await
                .map_err(map)?;
            record(conn, audit.as_ref()).await?;
            Ok(())
        })
        .await
        .map_err(RepoError::from)
    }

    async fn deleted_before(&self, cutoff: OffsetDateTime, limit: u32) -> RepoResult<Vec<Uuid>> {
        let mut conn = self.conn().await?;
        users::table
            .filter(users::state.eq(UserState::Deleted.as_str()))
            .filter(users::deleted_at.lt(cutoff))
            .order((users::deleted_at.asc(), users::id.asc()))
            .limit(i64::from(limit))
            .select(users::id)
            .load(&mut conn)
            .await
            .map_err(map)
    }

    async fn purge_deleted(
        &self,
        id: Uuid,
        cutoff: OffsetDateTime,
        audit: Option<AuditEvent>,
    ) -> RepoResult<bool> {
        let mut conn = self.conn().await?;
        conn.transaction(async |conn| -> Result<_, TxError> {
            lock_wallets_of(conn, id).await?;
            // The condition is checked by the delete itself: a restore that commits first
            // leaves nothing to delete (a deleted user is never an active superuser, so the
            // last-superuser guard has nothing to check).
            let deleted = diesel::delete(
                users::table
                    .find(id)
                    .filter(users::state.eq(UserState::Deleted.as_str()))
                    .filter(users::deleted_at.lt(cutoff)),
            )
            .execute(conn)
            .await
            .map_err(map)?;
            if deleted == 0 {
                return Ok(false);
            }
            record(conn, audit.as_ref()).await?;
            Ok(true)
        })
        .await
        .map_err(RepoError::from)
    }

    async fn assign_payment_address(&self, id: Uuid, address: &str) -> RepoResult<String> {
        let mut conn = self.conn().await?;
        // One statement: set it where unset, then read what the user holds.
        let updated: Option<Option<String>> = diesel::update(
            users::table
                .find(id)
                .filter(users::payment_address.is_null()),
        )
        .set(users::payment_address.eq(address))
        .returning(users::payment_address)
        .get_result(&mut conn)
        .await
        .optional()
        .map_err(map)?;
        if let Some(Some(set)) = updated {
            return Ok(set);
        }
        let current: Option<Option<String>> = users::table
            .find(id)
            .select(users::payment_address)
            .first(&mut conn)
            .await
            .optional()
            .map_err(map)?;
        match current {
            Some(Some(held)) => Ok(held),
            Some(None) => Err(RepoError::internal("payment address not assigned")),
            None => Err(RepoError::NotFound),
        }
    }

    async fn without_payment_address(&self, limit: u32) -> RepoResult<Vec<Uuid>> {
        let mut conn = self.conn().await?;
        users::table
            .filter(users::payment_address.is_null())
            .order((users::created_at.asc(), users::id.asc()))
            .select(users::id)
            .limit(i64::from(limit))
            .load(&mut conn)
            .await
            .map_err(map)
    }
}

/// Locks a user's wallets (in id order, like transfers) before any user row is locked: a money
/// movement that already holds one of them, and whose ledger entry must key-share-lock its
/// actor's row, then finishes first instead of deadlocking against the user's delete.
async fn lock_wallets_of(conn: &mut AsyncPgConnection, user_id: Uuid) -> Result<(), TxError> {
    wallets::table
        .filter(wallets::user_id.eq(user_id))
        .order(wallets::id.asc())
        .select(wallets::id)
        .for_update()
        .load::<Uuid>(conn)
        .await
        .map_err(map)?;
    Ok(())
}
