//! The directory query language (Run:ai's `filterBy`, plus `search`, `name` and sorting), parsed
//! once into typed values. Adapters translate these into their own queries; nothing raw from the
//! wire reaches storage.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::ValidationError;
use crate::model::UserState;

/// Longest `filterBy` accepted, and most conditions in it.
pub const MAX_FILTER_LEN: usize = 2048;
pub const MAX_CONDITIONS: usize = 16;
/// Most substring (`=@`) conditions in one filter: each is an index scan of its own (or a test
/// of every candidate row), so their number bounds a listing's cost.
pub const MAX_SUBSTRING_CONDITIONS: usize = 4;
/// Longest value in a condition, or in `search` / `name`.
pub const MAX_TERM_LEN: usize = 254;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterField {
    Username,
    Email,
    /// The creator, by username (or id).
    CreatedBy,
    LastLogin,
    CreationTime,
    LastUpdated,
    /// Has a password credential (a "local" user in Run:ai's terms).
    IsLocal,
    State,
    /// The tier, by name (or id).
    Tier,
}

impl FilterField {
    const ALL: [(&'static str, FilterField); 9] = [
        ("username", Self::Username),
        ("email", Self::Email),
        ("createdBy", Self::CreatedBy),
        ("lastLogin", Self::LastLogin),
        ("creationTime", Self::CreationTime),
        ("lastUpdated", Self::LastUpdated),
        ("isLocal", Self::IsLocal),
        ("state", Self::State),
        ("tier", Self::Tier),
    ];

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
    }

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, f)| *f == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOp {
    /// `==`
    Eq,
    /// `<=` (inclusive)
    Le,
    /// `>=` (inclusive)
    Ge,
    /// `=@`: case-insensitive substring.
    Contains,
}

impl FilterOp {
    const ALL: [(&'static str, FilterOp); 4] = [
        ("==", Self::Eq),
        ("<=", Self::Le),
        (">=", Self::Ge),
        ("=@", Self::Contains),
    ];
}

/// A condition's operand, typed by its field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterValue {
    Text(String),
    Time(OffsetDateTime),
    Bool(bool),
    State(UserState),
    /// A creator or tier named by id rather than by name.
    Id(Uuid),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub field: FilterField,
    pub op: FilterOp,
    pub value: FilterValue,
}

/// A conjunction of conditions (`filterBy`). Empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserFilter {
    pub conditions: Vec<Condition>,
}

fn condition_error(index: usize, raw: &str, reason: impl std::fmt::Display) -> ValidationError {
    ValidationError::new(
        "filterBy",
        format!("condition {} (`{raw}`): {reason}", index + 1),
    )
}

/// Splits `field op value` at the first operator.
fn split_condition(raw: &str) -> Option<(&str, FilterOp, &str)> {
    // Compared as bytes: the operators are ASCII, so a match starts and ends on character
    // boundaries, while slicing the `str` at every byte index would panic inside a multi-byte
    // character.
    let bytes = raw.as_bytes();
    for i in 0..bytes.len().saturating_sub(1) {
        for (token, op) in FilterOp::ALL {
            if bytes[i..].starts_with(token.as_bytes()) {
                let (field, value) = (raw.get(..i)?, raw.get(i + token.len()..)?);
                return Some((field.trim(), op, value.trim()));
            }
        }
    }
    None
}

impl UserFilter {
    /// Parses `field op value[,field op value…]`. Fails on an unknown field or operator, a value
    /// of the wrong type, or an operator the field does not support, naming the condition.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if raw.len() > MAX_FILTER_LEN {
            return Err(ValidationError::new(
                "filterBy",
                format!("must be at most {MAX_FILTER_LEN} characters"),
            ));
        }
        let items: Vec<&str> = raw
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if items.len() > MAX_CONDITIONS {
            return Err(ValidationError::new(
                "filterBy",
                format!("at most {MAX_CONDITIONS} conditions"),
            ));
        }
        let mut conditions: Vec<Condition> = Vec::with_capacity(items.len());
        for (index, item) in items.into_iter().enumerate() {
            let condition = Self::parse_condition(index, item)?;
            // A repeated condition adds cost and nothing else: AND is idempotent.
            if !conditions.contains(&condition) {
                conditions.push(condition);
            }
        }
        let substrings = conditions
            .iter()
            .filter(|c| c.op == FilterOp::Contains)
            .count();
        if substrings > MAX_SUBSTRING_CONDITIONS {
            return Err(ValidationError::new(
                "filterBy",
                format!("at most {MAX_SUBSTRING_CONDITIONS} different `=@` conditions"),
            ));
        }
        Ok(Self { conditions })
    }

    fn parse_condition(index: usize, raw: &str) -> Result<Condition, ValidationError> {
        let err = |reason: &str| condition_error(index, raw, reason);
        let (name, op, value) = split_condition(raw)
            .ok_or_else(|| err("expected `field op value` with op one of ==, <=, >=, =@"))?;
        let field = FilterField::parse(name).ok_or_else(|| {
            condition_error(
                index,
                raw,
                format!(
                    "unknown field `{name}`; expected one of username, email, createdBy, \
                     lastLogin, creationTime, lastUpdated, isLocal, state, tier"
                ),
            )
        })?;
        if value.is_empty() {
            return Err(err("missing value"));
        }
        if value.chars().count() > MAX_TERM_LEN || value.contains('\0') {
            return Err(err("value is too long or contains NUL"));
        }
        let unsupported = || {
            condition_error(
                index,
                raw,
                format!("operator not supported for `{}`", field.name()),
            )
        };
        let value = match field {
            FilterField::Username | FilterField::Email => FilterValue::Text(value.to_owned()),
            FilterField::CreatedBy | FilterField::Tier => {
                if matches!(op, FilterOp::Le | FilterOp::Ge) {
                    return Err(unsupported());
                }
                match (op, Uuid::parse_str(value)) {
                    (FilterOp::Eq, Ok(id)) => FilterValue::Id(id),
                    _ => FilterValue::Text(value.to_owned()),
                }
            }
            FilterField::LastLogin | FilterField::CreationTime | FilterField::LastUpdated => {
                if op == FilterOp::Contains {
                    return Err(unsupported());
                }
                let at = OffsetDateTime::parse(value, &Rfc3339)
                    .map_err(|_| err("not an RFC 3339 date-time (e.g. 2024-09-24T00:00:00Z)"))?;
                FilterValue::Time(at)
            }
            FilterField::IsLocal => {
                if op != FilterOp::Eq {
                    return Err(unsupported());
                }
                match value {
                    "true" => FilterValue::Bool(true),
                    "false" => FilterValue::Bool(false),
                    _ => return Err(err("expected true or false")),
                }
            }
            FilterField::State => {
                if op != FilterOp::Eq {
                    return Err(unsupported());
                }
                FilterValue::State(
                    UserState::parse(value)
                        .ok_or_else(|| err("expected active, deactivated or deleted"))?,
                )
            }
        };
        Ok(Condition { field, op, value })
    }
}

/// What a listing can be sorted by (Run:ai's `sortBy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    Username,
    /// The creator's username.
    CreatedBy,
    LastLogin,
    CreationTime,
    LastUpdated,
    /// Local (password) users before the others, in ascending order.
    Type,
}

impl SortField {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        match raw {
            "username" => Ok(Self::Username),
            "createdBy" => Ok(Self::CreatedBy),
            "lastLogin" => Ok(Self::LastLogin),
            "creationTime" => Ok(Self::CreationTime),
            "lastUpdated" => Ok(Self::LastUpdated),
            "type" => Ok(Self::Type),
            _ => Err(ValidationError::new(
                "sortBy",
                "expected one of username, createdBy, lastLogin, creationTime, lastUpdated, type",
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortOrder {
    #[default]
    Asc,
    Desc,
}

impl SortOrder {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        match raw {
            "asc" => Ok(Self::Asc),
            "desc" => Ok(Self::Desc),
            _ => Err(ValidationError::new("sortOrder", "expected asc or desc")),
        }
    }
}

/// A sort: the field, the direction; nulls always last, ties broken by id in the same direction
/// so paging through a sorted list never repeats or skips a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub field: SortField,
    pub order: SortOrder,
}

/// A bounded free-text term (`search`, `name`): matched case-insensitively as a literal
/// substring — `%`, `_` and `\` match themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchTerm(String);

impl SearchTerm {
    pub fn parse(field: &'static str, raw: &str) -> Result<Option<Self>, ValidationError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        if trimmed.chars().count() > MAX_TERM_LEN || trimmed.contains('\0') {
            return Err(ValidationError::new(
                field,
                format!("must be at most {MAX_TERM_LEN} characters, without NUL"),
            ));
        }
        Ok(Some(Self(trimmed.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The lowercase term, for adapters that compare in memory.
    pub fn lowercase(&self) -> String {
        self.0.to_lowercase()
    }

    /// A SQL `LIKE` pattern matching the term literally anywhere, with `\` as escape character.
    pub fn like_pattern(&self) -> String {
        let mut out = String::with_capacity(self.0.len() + 2);
        out.push('%');
        for c in self.0.chars() {
            if matches!(c, '%' | '_' | '\\') {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('%');
        out
    }
}

/// The value of a user's sort key, as a listing orders by it: usernames in lowercase (compared
/// bytewise), `type` as "has no password" (local users first in ascending order), `None` for
/// a missing value (sorted last in both directions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortKey {
    Time(OffsetDateTime),
    Text(String),
    Flag(bool),
}

/// The sort key of `user` under `sort` (`None`: creation time); `None` when the user has no
/// value for it — and for `createdBy`, whose key is another user's name (not offered for
/// cursor paging).
pub fn sort_key(user: &crate::model::User, sort: Option<Sort>) -> Option<SortKey> {
    let Some(sort) = sort else {
        return Some(SortKey::Time(user.created_at));
    };
    match sort.field {
        SortField::Username => user
            .username
            .as_ref()
            .map(|n| SortKey::Text(n.to_lowercase())),
        SortField::CreatedBy => None,
        SortField::LastLogin => user.last_login_at.map(SortKey::Time),
        SortField::CreationTime => Some(SortKey::Time(user.created_at)),
        SortField::LastUpdated => Some(SortKey::Time(user.updated_at)),
        SortField::Type => Some(SortKey::Flag(!user.has_password)),
    }
}

/// A position in a sorted listing (keyset paging): the sort, and the sort key and id of the
/// last user already seen. The next page holds the users that sort after it — whatever was
/// inserted or removed meanwhile before that position, nothing repeats and nothing is skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCursor {
    pub sort: Option<Sort>,
    /// `None`: the last user seen had no value for the key (the nulls, sorted last).
    pub key: Option<SortKey>,
    pub id: Uuid,
}

fn sort_code(sort: Option<Sort>) -> &'static str {
    let Some(sort) = sort else { return "d" };
    match (sort.field, sort.order) {
        (SortField::Username, SortOrder::Asc) => "ua",
        (SortField::Username, SortOrder::Desc) => "ud",
        (SortField::CreatedBy, SortOrder::Asc) => "ba",
        (SortField::CreatedBy, SortOrder::Desc) => "bd",
        (SortField::LastLogin, SortOrder::Asc) => "la",
        (SortField::LastLogin, SortOrder::Desc) => "ld",
        (SortField::CreationTime, SortOrder::Asc) => "ca",
        (SortField::CreationTime, SortOrder::Desc) => "cd",
        (SortField::LastUpdated, SortOrder::Asc) => "ma",
        (SortField::LastUpdated, SortOrder::Desc) => "md",
        (SortField::Type, SortOrder::Asc) => "ta",
        (SortField::Type, SortOrder::Desc) => "td",
    }
}

impl UserCursor {
    /// The cursor after `user` in a listing sorted by `sort`; `None` for `createdBy`.
    pub fn after(user: &crate::model::User, sort: Option<Sort>) -> Option<Self> {
        if sort.is_some_and(|s| s.field == SortField::CreatedBy) {
            return None;
        }
        let key = sort_key(user, sort);
        Some(Self {
            sort,
            key,
            id: user.id,
        })
    }

    /// An opaque, URL-safe string: `<sort>.<key>.<id>`, text keys hex-encoded.
    pub fn encode(&self) -> String {
        let key = match &self.key {
            None => "n".to_owned(),
            Some(SortKey::Time(t)) => format!("t{}", t.unix_timestamp_nanos()),
            Some(SortKey::Flag(b)) => format!("b{}", u8::from(*b)),
            Some(SortKey::Text(s)) => {
                let mut out = String::with_capacity(1 + 2 * s.len());
                out.push('s');
                for byte in s.as_bytes() {
                    out.push_str(&format!("{byte:02x}"));
                }
                out
            }
        };
        format!("{}.{key}.{}", sort_code(self.sort), self.id.simple())
    }

    /// Reads a cursor given back by a client. It must come from a listing with the same sort:
    /// the position means nothing in another order. Errors name the field `cursor`.
    pub fn decode(raw: &str, sort: Option<Sort>) -> Result<Self, ValidationError> {
        let bad = || ValidationError::new("cursor", "not a cursor returned by this listing");
        if matches!(sort, Some(s) if s.field == SortField::CreatedBy) {
            return Err(ValidationError::new(
                "cursor",
                "cursor paging is not offered with sortBy=createdBy; use offset",
            ));
        }
        let mut parts = raw.split('.');
        let (Some(code), Some(key), Some(id), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        if code != sort_code(sort) {
            return Err(ValidationError::new(
                "cursor",
                "this cursor belongs to a listing with another sortBy or sortOrder",
            ));
        }
        let id = Uuid::parse_str(id).map_err(|_| bad())?;
        let (kind, value) = key.split_at_checked(1).ok_or_else(bad)?;
        let key = match kind {
            "n" if value.is_empty() => None,
            "t" => {
                let nanos: i128 = value.parse().map_err(|_| bad())?;
                Some(SortKey::Time(
                    OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| bad())?,
                ))
            }
            "b" => match value {
                "0" => Some(SortKey::Flag(false)),
                "1" => Some(SortKey::Flag(true)),
                _ => return Err(bad()),
            },
            "s" => {
                if value.len() % 2 != 0 || value.len() > 2 * 4 * MAX_TERM_LEN {
                    return Err(bad());
                }
                let bytes = (0..value.len())
                    .step_by(2)
                    .map(|i| {
                        value
                            .get(i..i + 2)
                            .and_then(|h| u8::from_str_radix(h, 16).ok())
                    })
                    .collect::<Option<Vec<u8>>>()
                    .ok_or_else(bad)?;
                let text = String::from_utf8(bytes).map_err(|_| bad())?;
                if text.contains('\0') {
                    return Err(bad());
                }
                Some(SortKey::Text(text))
            }
            _ => return Err(bad()),
        };
        // The key must have the type of the sort's key.
        let fits = match (&key, sort.map(|s| s.field)) {
            (None, Some(SortField::Username | SortField::LastLogin)) => true,
            (None, _) => false,
            (Some(SortKey::Text(_)), Some(SortField::Username)) => true,
            (Some(SortKey::Flag(_)), Some(SortField::Type)) => true,
            (
                Some(SortKey::Time(_)),
                None
                | Some(SortField::LastLogin | SortField::CreationTime | SortField::LastUpdated),
            ) => true,
            _ => false,
        };
        if !fits {
            return Err(bad());
        }
        Ok(Self { sort, key, id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(raw: &str) -> Condition {
        match UserFilter::parse(raw) {
            Ok(f) if f.conditions.len() == 1 => f.conditions[0].clone(),
            other => panic!("{raw}: {other:?}"),
        }
    }

    #[test]
    fn multi_byte_characters_never_split_a_condition_mid_character() {
        assert!(UserFilter::parse("\u{FFFD}\u{FFFD}").is_err());
        assert!(UserFilter::parse("usérname==x").is_err());
        assert_eq!(
            one("username==été"),
            one("username == été"),
            "operators are found between multi-byte characters"
        );
    }

    fn fails(raw: &str, needle: &str) {
        match UserFilter::parse(raw) {
            Err(e) => assert!(e.reason.contains(needle), "{raw}: {}", e.reason),
            Ok(f) => panic!("{raw} parsed: {f:?}"),
        }
    }

    #[test]
    fn every_operator_parses_for_text_fields() {
        for (op, want) in [
            ("==", FilterOp::Eq),
            ("<=", FilterOp::Le),
            (">=", FilterOp::Ge),
            ("=@", FilterOp::Contains),
        ] {
            let c = one(&format!("username{op}al"));
            assert_eq!(c.field, FilterField::Username);
            assert_eq!(c.op, want);
            assert_eq!(c.value, FilterValue::Text("al".into()));
        }
        assert_eq!(one("email =@ @example.com").field, FilterField::Email);
    }

    #[test]
    fn conditions_are_anded_and_typed() {
        let f = UserFilter::parse(
            "username=@test,lastLogin>=2024-09-24T00:00:00.00Z,isLocal==false,state==deactivated",
        );
        let f = f.map(|f| f.conditions).unwrap_or_default();
        assert_eq!(f.len(), 4);
        assert!(matches!(f[1].value, FilterValue::Time(_)));
        assert_eq!(f[2].value, FilterValue::Bool(false));
        assert_eq!(f[3].value, FilterValue::State(UserState::Deactivated));
    }

    #[test]
    fn every_date_field_takes_rfc3339_with_comparisons() {
        for field in ["lastLogin", "creationTime", "lastUpdated"] {
            for op in ["==", "<=", ">="] {
                assert!(matches!(
                    one(&format!("{field}{op}2024-01-02T03:04:05+02:00")).value,
                    FilterValue::Time(_)
                ));
            }
            fails(&format!("{field}=@2024"), "operator not supported");
            fails(&format!("{field}>=yesterday"), "RFC 3339");
        }
    }

    #[test]
    fn repeated_conditions_count_once_and_substrings_are_bounded() {
        let repeated = vec!["email=@@"; 16].join(",");
        let f = UserFilter::parse(&repeated).map(|f| f.conditions.len());
        assert_eq!(f, Ok(1));
        let five = "username=@a,username=@b,email=@c,email=@d,createdBy=@e";
        assert!(UserFilter::parse(five).is_err());
        let four_and_more =
            "username=@a,username=@b,email=@c,createdBy=@e,state==active,isLocal==true";
        assert!(UserFilter::parse(four_and_more).is_ok());
    }

    #[test]
    fn malformed_conditions_name_themselves() {
        fails("nope==x", "unknown field `nope`");
        fails("username!=x", "expected `field op value`");
        fails("username", "expected `field op value`");
        fails("username==", "missing value");
        fails("isLocal=@x", "operator not supported");
        fails("isLocal==yes", "true or false");
        fails("state==gone", "active, deactivated or deleted");
        fails("createdBy>=a", "operator not supported");
        fails("username==a,bogus==b", "condition 2");
        fails(&"username==a,".repeat(17), "at most 16");
        fails(&format!("username=={}", "x".repeat(255)), "too long");
    }

    #[test]
    fn ids_are_recognised_for_creator_and_tier() {
        let id = Uuid::now_v7();
        assert_eq!(one(&format!("createdBy=={id}")).value, FilterValue::Id(id));
        assert_eq!(one("tier==gold").value, FilterValue::Text("gold".into()));
    }

    #[test]
    fn search_terms_escape_like_metacharacters() {
        let t = SearchTerm::parse("search", " 50%_off\\ ").ok().flatten();
        assert_eq!(
            t.map(|t| t.like_pattern()),
            Some("%50\\%\\_off\\\\%".to_owned())
        );
        assert_eq!(SearchTerm::parse("search", "   "), Ok(None));
        assert!(SearchTerm::parse("search", &"x".repeat(255)).is_err());
    }

    #[test]
    fn sort_parameters_parse() {
        assert_eq!(SortField::parse("lastLogin"), Ok(SortField::LastLogin));
        assert!(SortField::parse("password").is_err());
        assert_eq!(SortOrder::parse("desc"), Ok(SortOrder::Desc));
        assert!(SortOrder::parse("DESC").is_err());
    }

    #[test]
    fn cursors_round_trip_per_sort_and_refuse_another_sort() {
        let by = |field, order| Some(Sort { field, order });
        let id = Uuid::now_v7();
        let cases = [
            (None, Some(SortKey::Time(OffsetDateTime::UNIX_EPOCH))),
            (
                by(SortField::Username, SortOrder::Desc),
                Some(SortKey::Text("ad.a_é".into())),
            ),
            (by(SortField::Username, SortOrder::Asc), None),
            (by(SortField::LastLogin, SortOrder::Desc), None),
            (
                by(SortField::Type, SortOrder::Asc),
                Some(SortKey::Flag(true)),
            ),
        ];
        for (sort, key) in cases {
            let cursor = UserCursor { sort, key, id };
            let raw = cursor.encode();
            assert_eq!(UserCursor::decode(&raw, sort), Ok(cursor.clone()), "{raw}");
            let other = by(SortField::LastUpdated, SortOrder::Asc);
            assert!(UserCursor::decode(&raw, other).is_err(), "{raw}");
        }
        for bad in [
            "",
            "d",
            "d.x.y",
            "d.t1.nope",
            "ua.s6.00",
            "d.n.0000",
            "ca.b1.00",
        ] {
            let err = UserCursor::decode(bad, None).map_err(|e| e.field);
            assert!(err.is_err(), "{bad}");
        }
        let created_by = by(SortField::CreatedBy, SortOrder::Asc);
        assert!(UserCursor::decode("ba.n.00", created_by).is_err());
    }
}
