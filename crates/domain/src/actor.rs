//! The calling principal every use case receives first.

use uuid::Uuid;

use crate::model::{Permission, User};

/// Who is making a request, as established by authentication.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user: User,
    /// The session the credential belongs to, when it has one (password sessions).
    pub session_id: Option<Uuid>,
}

impl Actor {
    pub fn id(&self) -> Uuid {
        self.user.id
    }

    pub fn has(&self, p: Permission) -> bool {
        self.user.permissions.has(p)
    }

    pub fn is_admin(&self) -> bool {
        self.user.permissions.is_admin()
    }

    pub fn is_superuser(&self) -> bool {
        self.user.permissions.is_superuser()
    }
}
