//! The directory query (filters, search, sort) evaluated in memory with the same semantics as
//! the PostgreSQL adapter: case-insensitive text in byte order (`COLLATE "C"`), NULLs failing
//! every comparison and sorting last, ties broken by id in the sort's direction.

use std::cmp::Ordering;

use tessera_domain::directory::{
    sort_key, Condition, FilterField, FilterOp, FilterValue, SortField, SortKey, SortOrder,
    UserCursor,
};
use tessera_domain::model::{User, UserListQuery, UserState};
use time::OffsetDateTime;

use crate::state::State;

fn text_matches(value: Option<&str>, op: FilterOp, operand: &str) -> bool {
    let Some(value) = value else {
        return false;
    };
    let (value, operand) = (value.to_lowercase(), operand.to_lowercase());
    match op {
        FilterOp::Eq => value == operand,
        FilterOp::Le => value.as_bytes() <= operand.as_bytes(),
        FilterOp::Ge => value.as_bytes() >= operand.as_bytes(),
        FilterOp::Contains => value.contains(&operand),
    }
}

fn time_matches(value: Option<OffsetDateTime>, op: FilterOp, operand: OffsetDateTime) -> bool {
    let Some(value) = value else {
        return false;
    };
    // Stored times are whole microseconds; the bound is compared exactly, even when finer.
    match op {
        FilterOp::Eq => value == operand,
        FilterOp::Le => value <= operand,
        FilterOp::Ge => value >= operand,
        FilterOp::Contains => false,
    }
}

impl State {
    fn username_of(&self, id: Option<uuid::Uuid>) -> Option<&str> {
        id.and_then(|id| self.users.get(&id))
            .and_then(|row| row.user.username.as_deref())
    }

    fn condition_holds(&self, user: &User, c: &Condition) -> bool {
        match (c.field, &c.value) {
            (FilterField::Username, FilterValue::Text(v)) => {
                text_matches(user.username.as_deref(), c.op, v)
            }
            (FilterField::Email, FilterValue::Text(v)) => {
                text_matches(user.email.as_deref(), c.op, v)
            }
            (FilterField::CreatedBy, FilterValue::Id(id)) => user.created_by == Some(*id),
            (FilterField::CreatedBy, FilterValue::Text(v)) => {
                text_matches(self.username_of(user.created_by), c.op, v)
            }
            (FilterField::LastLogin, FilterValue::Time(t)) => {
                time_matches(user.last_login_at, c.op, *t)
            }
            (FilterField::CreationTime, FilterValue::Time(t)) => {
                time_matches(Some(user.created_at), c.op, *t)
            }
            (FilterField::LastUpdated, FilterValue::Time(t)) => {
                time_matches(Some(user.updated_at), c.op, *t)
            }
            (FilterField::IsLocal, FilterValue::Bool(b)) => user.has_password == *b,
            (FilterField::State, FilterValue::State(s)) => user.state == *s,
            (FilterField::Tier, FilterValue::Id(id)) => user.tier_id == Some(*id),
            (FilterField::Tier, FilterValue::Text(v)) => {
                let name = user
                    .tier_id
                    .and_then(|t| self.tiers.get(&t))
                    .map(|t| t.name.as_str());
                text_matches(name, c.op, v)
            }
            // The parser never pairs a field with another value type.
            _ => false,
        }
    }

    /// Whether `user` is covered by the query (paging aside).
    pub fn matches(&self, user: &User, q: &UserListQuery) -> bool {
        let covered = match q.visible_to {
            None => true,
            Some(viewer) => {
                user.id == viewer
                    || (q.include_managed && user.manager_id == Some(viewer))
                    || (q.include_shared && self.shares.contains_key(&(user.id, viewer)))
            }
        };
        if !covered || (!q.include_deleted && user.state == UserState::Deleted) {
            return false;
        }
        if let Some(term) = &q.search {
            let t = term.lowercase();
            let hit = [
                &user.username,
                &user.email,
                &user.first_name,
                &user.last_name,
            ]
            .into_iter()
            .any(|f| f.as_deref().is_some_and(|v| v.to_lowercase().contains(&t)));
            if !hit {
                return false;
            }
        }
        if let Some(term) = &q.name {
            if !user
                .display_name()
                .to_lowercase()
                .contains(&term.lowercase())
            {
                return false;
            }
        }
        q.filter
            .conditions
            .iter()
            .all(|c| self.condition_holds(user, c))
    }

    /// Orders users as the query says.
    pub fn sort(&self, users: &mut [&User], q: &UserListQuery) {
        let Some(sort) = q.sort else {
            users.sort_by_key(|u| (u.created_at, u.id));
            return;
        };
        #[derive(PartialEq, Eq, PartialOrd, Ord)]
        enum Key {
            Text(Vec<u8>),
            Time(OffsetDateTime),
            Flag(bool),
        }
        let key = |u: &User| -> Option<Key> {
            match sort.field {
                SortField::Username => u
                    .username
                    .as_ref()
                    .map(|n| Key::Text(n.to_lowercase().into_bytes())),
                SortField::CreatedBy => self
                    .username_of(u.created_by)
                    .map(|n| Key::Text(n.to_lowercase().into_bytes())),
                SortField::LastLogin => u.last_login_at.map(Key::Time),
                SortField::CreationTime => Some(Key::Time(u.created_at)),
                SortField::LastUpdated => Some(Key::Time(u.updated_at)),
                // Local (password) users first in ascending order.
                SortField::Type => Some(Key::Flag(!u.has_password)),
            }
        };
        let desc = sort.order == SortOrder::Desc;
        users.sort_by(|a, b| {
            let by_key = match (key(a), key(b)) {
                (Some(x), Some(y)) => {
                    if desc {
                        y.cmp(&x)
                    } else {
                        x.cmp(&y)
                    }
                }
                // NULLS LAST in both directions.
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
    }

    /// Whether `user` sorts after the cursor's position in the query's order (keyset paging).
    pub fn is_after(user: &User, q: &UserListQuery, cursor: &UserCursor) -> bool {
        let desc = q.sort.is_some_and(|s| s.order == SortOrder::Desc);
        let by_key = match (sort_key(user, q.sort), &cursor.key) {
            (Some(a), Some(b)) => {
                let o = compare_keys(&a, b);
                if desc {
                    o.reverse()
                } else {
                    o
                }
            }
            // NULLS LAST in both directions.
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        let by_id = if desc {
            cursor.id.cmp(&user.id)
        } else {
            user.id.cmp(&cursor.id)
        };
        by_key.then(by_id) == Ordering::Greater
    }
}

fn compare_keys(a: &SortKey, b: &SortKey) -> Ordering {
    match (a, b) {
        (SortKey::Time(x), SortKey::Time(y)) => x.cmp(y),
        (SortKey::Text(x), SortKey::Text(y)) => x.as_bytes().cmp(y.as_bytes()),
        (SortKey::Flag(x), SortKey::Flag(y)) => x.cmp(y),
        // A cursor's key always has the sort's type (checked when it is read).
        _ => Ordering::Equal,
    }
}
