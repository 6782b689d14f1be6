//! The closed sets of values the API speaks — scopes, permissions, sort keys — as enums in the
//! OpenAPI document, so that code generators type them. The values are the domain's own (a
//! test below compares them with the domain's lists); the wire types keep carrying the domain's
//! names as strings and point their schema here (`#[schema(value_type = …)]`).

#![allow(dead_code)] // Schema-only types: never constructed, only described.

use utoipa::ToSchema;

/// What a non-admin API key may do: `read` the owner's data, record `metering` usage, or report
/// `deposits`.
#[derive(ToSchema)]
#[schema(as = ApiKeyScope, rename_all = "snake_case")]
pub enum ApiKeyScopeName {
    Read,
    Metering,
    Deposits,
}

/// A scope one user grants another on their data (SweatStack's scopes).
#[derive(ToSchema)]
#[schema(as = ShareScope)]
pub enum ShareScopeName {
    #[schema(rename = "data:read")]
    DataRead,
    #[schema(rename = "data:write")]
    DataWrite,
    #[schema(rename = "admin")]
    Admin,
    #[schema(rename = "openid")]
    OpenId,
    #[schema(rename = "profile")]
    Profile,
    #[schema(rename = "offline_access")]
    OfflineAccess,
}

/// A named permission bit (Chutes' numbering, extended with the administrator bits).
#[derive(ToSchema)]
#[schema(as = Permission, rename_all = "snake_case")]
pub enum PermissionName {
    Developer,
    CreateUser,
    UpdateUser,
    DeleteUser,
    FreeAccount,
    Unlimited,
    BillingAdmin,
    UnlimitedDev,
    InvoiceBilling,
    StakeWeightQuota,
    Admin,
    Superuser,
}

/// What the directory can be sorted by (Run:ai's `sortBy`).
#[derive(ToSchema)]
#[schema(as = UserSortField, rename_all = "camelCase")]
pub enum UserSortFieldName {
    Username,
    CreatedBy,
    LastLogin,
    CreationTime,
    LastUpdated,
    Type,
}

/// `asc` or `desc`.
#[derive(ToSchema)]
#[schema(as = SortOrder, rename_all = "snake_case")]
pub enum SortOrderName {
    Asc,
    Desc,
}

#[cfg(test)]
mod tests {
    use tessera_domain::directory::{SortField, SortOrder};
    use tessera_domain::model::{ApiKeyScope, Permission, Scope};
    use utoipa::PartialSchema;

    use super::*;

    fn values<T: PartialSchema>() -> Vec<String> {
        let schema = serde_json::to_value(T::schema()).unwrap_or_default();
        schema["enum"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    }

    fn names(list: impl IntoIterator<Item = &'static str>) -> Vec<String> {
        list.into_iter().map(str::to_owned).collect()
    }

    #[test]
    fn the_documented_sets_are_the_domains() {
        assert_eq!(
            values::<ApiKeyScopeName>(),
            names(ApiKeyScope::ALL.map(ApiKeyScope::as_str))
        );
        assert_eq!(
            values::<ShareScopeName>(),
            names(Scope::ALL.map(Scope::as_str))
        );
        assert_eq!(
            values::<PermissionName>(),
            names(Permission::ALL.map(Permission::name))
        );
        let sort_fields = values::<UserSortFieldName>();
        assert_eq!(sort_fields.len(), 6);
        for field in &sort_fields {
            assert!(SortField::parse(field).is_ok(), "{field}");
        }
        for order in values::<SortOrderName>() {
            assert!(SortOrder::parse(&order).is_ok(), "{order}");
        }
    }
}
