//! Contract cases of the last-superuser rule: no demotion, deactivation, soft delete or purge
//! may leave the store without an active superuser, even when every superuser is demoted at
//! once.

use tessera_domain::model::{Permission, Permissions, RevokeSessions, UserChanges, UserState};
use tessera_domain::ports::RepoError;
use tessera_domain::Conflict;
use time::Duration;

use super::{
    conflict, create, err, new_superuser, new_user, now, session, soft_delete, start_session,
    superuser, with_permissions, with_state, Stores, UserBuilder,
};

pub async fn last_superuser_cannot_be_demoted(s: Stores) {
    let root = create(&s, new_superuser()).await;
    create(
        &s,
        new_user().permissions(Permissions::NONE.with(Permission::Admin)),
    )
    .await;
    let demote = UserChanges {
        permissions: Some(Permissions::NONE.with(Permission::Admin)),
        first_name: Some(Some("Changed".into())),
        ..UserChanges::default()
    };
    assert_eq!(
        err(s.users.update(root.id, demote, now()).await),
        conflict(Conflict::LastSuperuser)
    );
    assert_eq!(s.users.get(root.id).await.unwrap(), root);

    // Changes that keep it an active superuser are fine.
    let keep = superuser().with(Permission::Developer);
    let updated = s
        .users
        .update(root.id, with_permissions(keep), now())
        .await
        .unwrap();
    assert_eq!(updated.permissions, keep);
    let updated = s
        .users
        .update(root.id, with_state(UserState::Active), now())
        .await
        .unwrap();
    assert!(updated.is_active());
}

pub async fn one_of_two_superusers_can_be_demoted(s: Stores) {
    let first = create(&s, new_superuser()).await;
    let second = create(&s, new_superuser()).await;
    let demoted = s
        .users
        .update(first.id, with_permissions(Permissions::NONE), now())
        .await
        .unwrap();
    assert!(!demoted.permissions.is_superuser());
    assert_eq!(
        err(s
            .users
            .update(second.id, with_permissions(Permissions::NONE), now())
            .await),
        conflict(Conflict::LastSuperuser)
    );
    assert!(s
        .users
        .get(second.id)
        .await
        .unwrap()
        .permissions
        .is_superuser());

    // Promote the first again: now the second may go.
    s.users
        .update(first.id, with_permissions(superuser()), now())
        .await
        .unwrap();
    s.users
        .update(second.id, with_permissions(Permissions::NONE), now())
        .await
        .unwrap();
}

pub async fn last_superuser_cannot_be_deleted_or_deactivated(s: Stores) {
    let root = create(&s, new_superuser()).await;
    let (sid, _) = start_session(&s, root.id).await;
    let root = s.users.get(root.id).await.unwrap();
    let t = now() + Duration::seconds(1);
    assert_eq!(
        err(s.users.update(root.id, soft_delete(t), t).await),
        conflict(Conflict::LastSuperuser)
    );
    let deactivate = UserChanges {
        state: Some(UserState::Deactivated),
        tokens_valid_after: Some(t),
        revoke_sessions: RevokeSessions::All,
        ..UserChanges::default()
    };
    assert_eq!(
        err(s.users.update(root.id, deactivate, t).await),
        conflict(Conflict::LastSuperuser)
    );
    assert_eq!(s.users.get(root.id).await.unwrap(), root);
    assert_eq!(session(&s, sid, root.id).await.revoked_at, None);
}

pub async fn last_superuser_cannot_be_purged(s: Stores) {
    let root = create(&s, new_superuser()).await;
    assert_eq!(
        err(s.users.purge(root.id, None).await),
        conflict(Conflict::LastSuperuser)
    );
    assert_eq!(s.users.get(root.id).await.unwrap(), root);

    let second = create(&s, new_superuser()).await;
    s.users.purge(root.id, None).await.unwrap();
    assert_eq!(err(s.users.get(root.id).await), RepoError::NotFound);
    assert_eq!(
        err(s.users.purge(second.id, None).await),
        conflict(Conflict::LastSuperuser)
    );
    assert!(s.users.get(second.id).await.is_ok());
}

pub async fn inactive_superusers_do_not_count(s: Stores) {
    let root = create(&s, new_superuser()).await;
    let deactivated = create(&s, new_superuser()).await;
    let deleted = create(&s, new_superuser()).await;
    s.users
        .update(deactivated.id, with_state(UserState::Deactivated), now())
        .await
        .unwrap();
    s.users
        .update(deleted.id, soft_delete(now()), now())
        .await
        .unwrap();

    // `root` is now the only *active* superuser.
    assert_eq!(
        err(s
            .users
            .update(root.id, with_permissions(Permissions::NONE), now())
            .await),
        conflict(Conflict::LastSuperuser)
    );
    assert_eq!(
        err(s
            .users
            .update(root.id, with_state(UserState::Deactivated), now())
            .await),
        conflict(Conflict::LastSuperuser)
    );
    assert_eq!(
        err(s.users.update(root.id, soft_delete(now()), now()).await),
        conflict(Conflict::LastSuperuser)
    );
    assert_eq!(
        err(s.users.purge(root.id, None).await),
        conflict(Conflict::LastSuperuser)
    );

    // Inactive superusers themselves are not protected.
    s.users
        .update(deactivated.id, with_permissions(Permissions::NONE), now())
        .await
        .unwrap();
    s.users.purge(deleted.id, None).await.unwrap();

    // Reactivating a superuser makes `root` removable again.
    let other = create(&s, new_superuser()).await;
    s.users
        .update(other.id, with_state(UserState::Deactivated), now())
        .await
        .unwrap();
    s.users
        .update(other.id, with_state(UserState::Active), now())
        .await
        .unwrap();
    s.users
        .update(root.id, with_state(UserState::Deactivated), now())
        .await
        .unwrap();
}

/// The rule only protects an active superuser that exists.
pub async fn users_are_unconstrained_without_superusers(s: Stores) {
    let a = create(&s, new_user()).await;
    let b = create(&s, new_user()).await;
    s.users
        .update(a.id, with_state(UserState::Deactivated), now())
        .await
        .unwrap();
    s.users
        .update(b.id, soft_delete(now()), now())
        .await
        .unwrap();
    s.users.purge(a.id, None).await.unwrap();
    s.users.purge(b.id, None).await.unwrap();
    assert!(!s.users.any_exists().await.unwrap());
}

/// Concurrent demotions of every superuser: exactly one must survive.
pub async fn concurrent_demotions_keep_one_superuser(s: Stores) {
    let mut roots = Vec::new();
    for _ in 0..5 {
        roots.push(create(&s, new_superuser()).await.id);
    }
    let tasks: Vec<_> = roots
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let (s, id) = (s.clone(), *id);
            tokio::spawn(async move {
                let changes = if i % 2 == 0 {
                    with_state(UserState::Deactivated)
                } else {
                    with_permissions(Permissions::NONE)
                };
                s.users.update(id, changes, now()).await
            })
        })
        .collect();
    let mut refused = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e, conflict(Conflict::LastSuperuser));
                refused += 1;
            }
        }
    }
    assert_eq!(refused, 1);
    let mut active = 0;
    for id in roots {
        let user = s.users.get(id).await.unwrap();
        if user.is_active() && user.permissions.is_superuser() {
            active += 1;
        }
    }
    assert_eq!(active, 1);
}
