use uuid::Uuid;

/// Deposit addresses without custody: each user's address is derived from an operator's master
/// *public* key, so Tessera never holds a secret for it and only the operator, offline, can
/// derive the matching secret key.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait PaymentAddresses: Send + Sync {
    /// The SS58 address that receives the deposits of the user with this id; the same for
    /// the same id every time, and different for different ids.
    fn address_of(&self, user_id: Uuid) -> String;
}
