//! Validated input types. Each is constructed once, by parsing; after that the rest of the code
//! trusts it.

use std::fmt;

use serde::Serialize;

use crate::error::ValidationError;

/// Longest free-text name (first name, last name) accepted anywhere.
pub const MAX_NAME_LEN: usize = 100;
/// Longest email address (RFC 5321 path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// Path words that a `{user}` segment would collide with.
const RESERVED_USERNAMES: [&str; 4] = ["me", "count", "name-check", "db_user"];

/// A login name: 2–32 letters, digits, `.`, `_`, `-`, starting with a letter or digit; or, for
/// local users created by email (Run:ai), an email address.
///
/// Usernames never parse as UUIDs, so `{user}` path segments are unambiguous.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ValidationError> {
        if raw.contains('@') {
            let email = Email::parse(field, raw)?;
            return Ok(Self(email.0));
        }
        let len = raw.chars().count();
        if !(2..=32).contains(&len) {
            return Err(ValidationError::new(
                field,
                "username must be 2 to 32 characters long",
            ));
        }
        let mut chars = raw.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
        if !first_ok {
            return Err(ValidationError::new(
                field,
                "username must start with a letter or digit",
            ));
        }
        if !raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(ValidationError::new(
                field,
                "username may contain only letters, digits, '.', '_' and '-'",
            ));
        }
        if uuid::Uuid::parse_str(raw).is_ok() {
            return Err(ValidationError::new(field, "username must not be a UUID"));
        }
        if RESERVED_USERNAMES
            .iter()
            .any(|r| r.eq_ignore_ascii_case(raw))
        {
            return Err(ValidationError::new(field, "this username is reserved"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email address: one `@`, a non-empty local part, a dotted domain, no whitespace or control
/// characters, at most 254 characters. Deliverability is not this type's business.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ValidationError> {
        let invalid = || ValidationError::new(field, "value is not a valid email address");
        if raw.len() > MAX_EMAIL_LEN || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = raw.split_once('@').ok_or_else(invalid)?;
        if local.is_empty()
            || local.len() > 64
            || domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
            || domain.starts_with('-')
        {
            return Err(invalid());
        }
        if !domain
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-'))
        {
            return Err(invalid());
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A first or last name: trimmed, 1..=100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonName(String);

impl PersonName {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ValidationError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(ValidationError::new(field, "must not be empty"));
        }
        if trimmed.chars().count() > MAX_NAME_LEN {
            return Err(ValidationError::new(
                field,
                "must be at most 100 characters long",
            ));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(ValidationError::new(
                field,
                "must not contain control characters",
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// The password policy: length bounds, configurable (default 8..=255 characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub min_len: usize,
    pub max_len: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_len: 8,
            max_len: 255,
        }
    }
}

/// A plaintext password that satisfied the policy. Its `Debug` never shows the secret.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn parse(
        field: &'static str,
        raw: &str,
        policy: &PasswordPolicy,
    ) -> Result<Self, ValidationError> {
        let len = raw.chars().count();
        if len < policy.min_len || len > policy.max_len {
            return Err(ValidationError::new(
                field,
                format!(
                    "password must be {} to {} characters long",
                    policy.min_len, policy.max_len
                ),
            ));
        }
        if raw.contains('\0') {
            return Err(ValidationError::new(
                field,
                "password must not contain NUL characters",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// A password generated by Tessera itself (temporary passwords); not checked against policy.
    pub fn generated(secret: String) -> Self {
        Self(secret)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A password as presented at login: not policy-checked (old passwords may predate the policy)
/// but bounded, so nobody can make us hash a megabyte.
#[derive(Clone)]
pub struct PresentedSecret(String);

impl PresentedSecret {
    pub const MAX_LEN: usize = 1024;

    pub fn new(raw: String) -> Option<Self> {
        (raw.len() <= Self::MAX_LEN).then_some(Self(raw))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PresentedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PresentedSecret(<redacted>)")
    }
}

/// How a path refers to a user: by id, or by username. A usernames can never be a UUID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserRef {
    Id(uuid::Uuid),
    Username(String),
}

impl UserRef {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if let Ok(id) = uuid::Uuid::parse_str(raw) {
            return Ok(Self::Id(id));
        }
        if !may_name_a_user(raw) {
            return Err(ValidationError::new("user", "not a user id or username"));
        }
        Ok(Self::Username(raw.to_owned()))
    }
}

/// Longest wallet name.
pub const MAX_WALLET_NAME_LEN: usize = 100;
/// Longest reason of a ledger entry.
pub const MAX_REASON_LEN: usize = 500;
/// Longest `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// Trimmed, 1..=`max` characters, no control characters.
fn bounded_text(field: &'static str, raw: &str, max: usize) -> Result<String, ValidationError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if trimmed.chars().count() > max {
        return Err(ValidationError::new(
            field,
            format!("must be at most {max} characters long"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(trimmed.to_owned())
}

/// A wallet's name: trimmed, 1..=100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletName(String);

impl WalletName {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ValidationError> {
        bounded_text(field, raw, MAX_WALLET_NAME_LEN).map(Self)
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// Why a balance changed, as recorded in the ledger: trimmed, 1..=500 characters, no control
/// characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason(String);

impl Reason {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ValidationError> {
        bounded_text(field, raw, MAX_REASON_LEN).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// An `Idempotency-Key`: 1..=255 printable ASCII characters (space through `~`), taken as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ValidationError> {
        if raw.is_empty() || raw.len() > MAX_IDEMPOTENCY_KEY_LEN {
            return Err(ValidationError::new(
                field,
                format!("must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} characters long"),
            ));
        }
        if !raw.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return Err(ValidationError::new(
                field,
                "must contain only printable ASCII characters",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod wallet_value_tests {
    use super::*;

    #[test]
    fn names_and_reasons_are_bounded() {
        assert_eq!(
            WalletName::parse("name", "  Savings ").map(WalletName::into_inner),
            Ok("Savings".to_owned())
        );
        assert!(WalletName::parse("name", " ").is_err());
        assert!(WalletName::parse("name", &"x".repeat(101)).is_err());
        assert!(Reason::parse("reason", &"é".repeat(500)).is_ok());
        assert!(Reason::parse("reason", &"é".repeat(501)).is_err());
        assert!(Reason::parse("reason", "a\u{0}b").is_err());
    }

    #[test]
    fn idempotency_keys_are_bounded_printable_ascii() {
        assert!(IdempotencyKey::parse("k", "order-42 retry #1").is_ok());
        assert!(IdempotencyKey::parse("k", &"k".repeat(255)).is_ok());
        assert!(IdempotencyKey::parse("k", &"k".repeat(256)).is_err());
        assert!(IdempotencyKey::parse("k", "").is_err());
        assert!(IdempotencyKey::parse("k", "tab\there").is_err());
        assert!(IdempotencyKey::parse("k", "ключ").is_err());
    }
}

/// Whether `raw` could be some user's username or email at all: non-empty, at most 254 bytes,
/// no control characters (which neither may contain, and which PostgreSQL cannot even store).
/// A look-up by anything else finds nobody without asking the store.
pub fn may_name_a_user(raw: &str) -> bool {
    !raw.is_empty() && raw.len() <= MAX_EMAIL_LEN && !raw.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_grammar() {
        for ok in ["ab", "alice", "a.b_c-d", "9lives", "jane@example.com"] {
            assert!(Username::parse("username", ok).is_ok(), "{ok}");
        }
        for bad in [
            "a",
            "_alice",
            "-x",
            "has space",
            "ünï",
            "x".repeat(33).as_str(),
            "a;drop",
            "me",
            "Count",
            "0191f1a2-0000-7000-8000-000000000000",
            "bad@",
        ] {
            assert!(Username::parse("username", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails_are_checked_for_shape() {
        assert!(Email::parse("email", "a@b.co").is_ok());
        for bad in [
            "", "a", "a@b", "@b.co", "a@@b.co", "a b@c.de", "a@.b", "a@b..c",
        ] {
            assert!(Email::parse("email", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn password_policy_is_enforced_and_never_printed() {
        let policy = PasswordPolicy::default();
        assert!(Password::parse("password", "short", &policy).is_err());
        assert!(Password::parse("password", &"x".repeat(256), &policy).is_err());
        let ok = Password::parse("password", "long enough", &policy);
        assert!(matches!(ok, Ok(ref p) if p.expose() == "long enough"));
        assert_eq!(format!("{:?}", ok.ok()), "Some(Password(<redacted>))");
    }

    #[test]
    fn user_refs_distinguish_ids_from_names() {
        let id = uuid::Uuid::now_v7();
        assert_eq!(UserRef::parse(&id.to_string()), Ok(UserRef::Id(id)));
        assert_eq!(
            UserRef::parse("alice"),
            Ok(UserRef::Username("alice".into()))
        );
        for nobody in ["", "a\0b", "\0", "tab\there"] {
            assert!(UserRef::parse(nobody).is_err(), "{nobody:?}");
        }
    }
}

/// A validated page request: either `offset`+`limit` or `page`+`items_per_page`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub offset: u64,
    pub limit: u64,
    /// Set when the caller paged by page number, so the response can echo it.
    pub page: Option<u64>,
}

impl Paging {
    pub const DEFAULT_LIMIT: u64 = 50;
    pub const MAX_LIMIT: u64 = 500;
    /// Deep offsets are refused rather than making the database skip millions of rows.
    pub const MAX_OFFSET: u64 = 10_000_000;

    pub fn from_params(
        offset: Option<u64>,
        limit: Option<u64>,
        page: Option<u64>,
        items_per_page: Option<u64>,
    ) -> Result<Self, ValidationError> {
        let check_limit = |field: &'static str, value: u64| {
            if (1..=Self::MAX_LIMIT).contains(&value) {
                Ok(value)
            } else {
                Err(ValidationError::new(field, "must be between 1 and 500"))
            }
        };
        if page.is_some() || items_per_page.is_some() {
            if offset.is_some() {
                return Err(ValidationError::new(
                    "offset",
                    "use either offset/limit or page/items_per_page, not both",
                ));
            }
            let per_page = check_limit(
                "items_per_page",
                items_per_page.or(limit).unwrap_or(Self::DEFAULT_LIMIT),
            )?;
            let page = page.unwrap_or(1);
            if page == 0 {
                return Err(ValidationError::new("page", "must be at least 1"));
            }
            let offset = (page - 1)
                .checked_mul(per_page)
                .filter(|o| *o <= Self::MAX_OFFSET)
                .ok_or_else(|| ValidationError::new("page", "is too large"))?;
            return Ok(Self {
                offset,
                limit: per_page,
                page: Some(page),
            });
        }
        let offset = offset.unwrap_or(0);
        if offset > Self::MAX_OFFSET {
            return Err(ValidationError::new("offset", "is too large"));
        }
        Ok(Self {
            offset,
            limit: check_limit("limit", limit.unwrap_or(Self::DEFAULT_LIMIT))?,
            page: None,
        })
    }
}

#[cfg(test)]
mod paging_tests {
    use super::*;

    #[test]
    fn pages_translate_to_offsets_and_bounds_hold() {
        let p = Paging::from_params(None, None, Some(3), Some(10));
        assert_eq!(
            p,
            Ok(Paging {
                offset: 20,
                limit: 10,
                page: Some(3)
            })
        );
        assert!(Paging::from_params(None, Some(0), None, None).is_err());
        assert!(Paging::from_params(None, Some(501), None, None).is_err());
        assert!(Paging::from_params(None, None, Some(0), None).is_err());
        assert!(Paging::from_params(Some(1), None, Some(1), None).is_err());
        assert_eq!(
            Paging::from_params(None, None, None, None).map(|p| p.limit),
            Ok(50)
        );
    }
}
