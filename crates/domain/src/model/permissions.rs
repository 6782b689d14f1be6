use serde::Serialize;

/// A named permission bit. The numbering is Chutes' (`permissions_bitmask`), extended with the
/// administrator bits of the other seeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    Developer,
    CreateUser,
    UpdateUser,
    DeleteUser,
    FreeAccount,
    Unlimited,
    BillingAdmin,
    UnlimitedDev,
    InvoiceBilling,
    /// Chutes' stake-weighted quota (bit 512); Tessera stores and shows it.
    StakeWeightQuota,
    Admin,
    Superuser,
}

impl Permission {
    pub const ALL: [Permission; 12] = [
        Self::Developer,
        Self::CreateUser,
        Self::UpdateUser,
        Self::DeleteUser,
        Self::FreeAccount,
        Self::Unlimited,
        Self::BillingAdmin,
        Self::UnlimitedDev,
        Self::InvoiceBilling,
        Self::StakeWeightQuota,
        Self::Admin,
        Self::Superuser,
    ];

    pub const fn bit(self) -> i64 {
        match self {
            Self::Developer => 1,
            Self::CreateUser => 2,
            Self::UpdateUser => 4,
            Self::DeleteUser => 8,
            Self::FreeAccount => 16,
            Self::Unlimited => 32,
            Self::BillingAdmin => 64,
            Self::UnlimitedDev => 128,
            Self::InvoiceBilling => 256,
            Self::StakeWeightQuota => 512,
            Self::Admin => 1 << 20,
            Self::Superuser => 1 << 21,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Developer => "developer",
            Self::CreateUser => "create_user",
            Self::UpdateUser => "update_user",
            Self::DeleteUser => "delete_user",
            Self::FreeAccount => "free_account",
            Self::Unlimited => "unlimited",
            Self::BillingAdmin => "billing_admin",
            Self::UnlimitedDev => "unlimited_dev",
            Self::InvoiceBilling => "invoice_billing",
            Self::StakeWeightQuota => "stake_weight_quota",
            Self::Admin => "admin",
            Self::Superuser => "superuser",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// The bitmask of permissions granted to a user, exactly as stored.
///
/// [`Permissions::has`] answers with the implications applied: `admin` implies the
/// user-administration bits (`create_user`, `update_user`, `delete_user`, `billing_admin`) and
/// `superuser` implies everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Permissions(i64);

const KNOWN_BITS: i64 = {
    let mut bits = 0;
    let mut i = 0;
    while i < Permission::ALL.len() {
        bits |= Permission::ALL[i].bit();
        i += 1;
    }
    bits
};

const ADMIN_IMPLIES: i64 = Permission::CreateUser.bit()
    | Permission::UpdateUser.bit()
    | Permission::DeleteUser.bit()
    | Permission::BillingAdmin.bit();

impl Permissions {
    pub const NONE: Self = Self(0);

    /// From a stored or submitted bitmask; unknown bits are dropped.
    pub const fn from_bits(bits: i64) -> Self {
        Self(bits & KNOWN_BITS)
    }

    pub const fn bits(self) -> i64 {
        self.0
    }

    pub fn with(self, p: Permission) -> Self {
        Self(self.0 | p.bit())
    }

    pub fn without(self, p: Permission) -> Self {
        Self(self.0 & !p.bit())
    }

    /// Whether the bit itself is set, without implications.
    pub fn granted(self, p: Permission) -> bool {
        self.0 & p.bit() != 0
    }

    /// Whether the holder may act with this permission, implications applied.
    pub fn has(self, p: Permission) -> bool {
        if self.granted(Permission::Superuser) || self.granted(p) {
            return true;
        }
        self.granted(Permission::Admin) && ADMIN_IMPLIES & p.bit() != 0
    }

    pub fn is_superuser(self) -> bool {
        self.granted(Permission::Superuser)
    }

    pub fn is_admin(self) -> bool {
        self.granted(Permission::Admin) || self.is_superuser()
    }

    /// The names of the bits that are set, for display.
    pub fn names(self) -> Vec<&'static str> {
        Permission::ALL
            .into_iter()
            .filter(|p| self.granted(*p))
            .map(Permission::name)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_implies_user_administration_only() {
        let admin = Permissions::NONE.with(Permission::Admin);
        assert!(admin.has(Permission::DeleteUser));
        assert!(admin.has(Permission::BillingAdmin));
        assert!(!admin.has(Permission::Superuser));
        assert!(!admin.has(Permission::FreeAccount));
        let root = Permissions::NONE.with(Permission::Superuser);
        assert!(root.has(Permission::FreeAccount) && root.is_admin());
    }

    #[test]
    fn unknown_bits_are_dropped() {
        assert_eq!(Permissions::from_bits(1 << 40 | 1).bits(), 1);
        assert_eq!(
            Permissions::from_bits(0).with(Permission::Admin).names(),
            vec!["admin"]
        );
    }
}
