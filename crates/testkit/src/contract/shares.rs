//! Contract cases for shares: upsert, change, revoke, listings by owner and grantee, cascade on
//! purge, the listing's `include_shared`, and the one-call check behind delegated tokens.

use std::collections::BTreeMap;

use tessera_domain::model::{
    AuditAction, AuditEvent, AuditQuery, NewShare, Scope, ScopeSet, UserListQuery, UserState,
};
use tessera_domain::ports::RepoError;
use uuid::Uuid;

use super::{create, err, new_managed_user, new_user, now, soft_delete, start_session, Stores};

fn scopes(list: &[Scope]) -> ScopeSet {
    list.iter().fold(ScopeSet::EMPTY, |set, s| set.with(*s))
}

fn event(actor: Uuid, action: AuditAction) -> AuditEvent {
    AuditEvent {
        id: Uuid::now_v7(),
        at: now(),
        actor_id: Some(actor),
        target_id: Some(actor),
        action,
        changes: BTreeMap::new(),
    }
}

fn share(owner: Uuid, grantee: Uuid, set: ScopeSet) -> NewShare {
    NewShare {
        owner_id: owner,
        grantee_id: grantee,
        scopes: set,
        now: now(),
        audit: Some(event(owner, AuditAction::ShareGranted)),
    }
}

async fn listed(s: &Stores, query: UserListQuery) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = s
        .users
        .list(query)
        .await
        .unwrap()
        .users
        .into_iter()
        .map(|u| u.id)
        .collect();
    ids.sort();
    ids
}

fn sorted(mut ids: Vec<Uuid>) -> Vec<Uuid> {
    ids.sort();
    ids
}

pub async fn shares_upsert_change_list_and_revoke(s: Stores) {
    let owner = create(&s, new_user()).await;
    let grantee = create(&s, new_user()).await;
    let other = create(&s, new_user()).await;
    let read = scopes(&[Scope::DataRead]);
    let write = scopes(&[Scope::DataRead, Scope::DataWrite]);

    let (first, created) = s
        .shares
        .put(share(owner.id, grantee.id, read))
        .await
        .unwrap();
    assert!(created);
    assert_eq!(first.scopes, read);
    assert_eq!(first.created_at, first.updated_at);

    // A second put replaces the scopes and keeps the creation time.
    let mut again = share(owner.id, grantee.id, write);
    again.now = first.created_at + time::Duration::seconds(5);
    let (second, created) = s.shares.put(again).await.unwrap();
    assert!(!created);
    assert_eq!(second.scopes, write);
    assert_eq!(second.created_at, first.created_at);
    assert_eq!(second, s.shares.get(owner.id, grantee.id).await.unwrap());

    s.shares
        .put(share(other.id, grantee.id, scopes(&[Scope::Admin])))
        .await
        .unwrap();
    let by_owner = s.shares.granted_by(owner.id).await.unwrap();
    assert_eq!(by_owner.len(), 1);
    assert_eq!(by_owner[0].grantee_id, grantee.id);
    let to_grantee = s.shares.granted_to(grantee.id).await.unwrap();
    assert_eq!(
        to_grantee.iter().map(|s| s.owner_id).collect::<Vec<_>>(),
        vec![owner.id, other.id],
        "oldest first"
    );
    assert!(s.shares.granted_to(owner.id).await.unwrap().is_empty());

    let mut change = share(owner.id, grantee.id, read);
    change.audit = Some(event(owner.id, AuditAction::ShareChanged));
    assert_eq!(s.shares.update(change).await.unwrap().scopes, read);
    assert_eq!(
        err(s.shares.update(share(grantee.id, owner.id, read)).await),
        RepoError::NotFound
    );

    s.shares
        .delete(
            owner.id,
            grantee.id,
            Some(event(owner.id, AuditAction::ShareRevoked)),
        )
        .await
        .unwrap();
    assert_eq!(
        err(s.shares.get(owner.id, grantee.id).await),
        RepoError::NotFound
    );
    assert_eq!(
        err(s.shares.delete(owner.id, grantee.id, None).await),
        RepoError::NotFound
    );

    // Every change recorded its event in the same unit.
    let actions: Vec<AuditAction> = s
        .audit
        .list(AuditQuery {
            actor_id: Some(owner.id),
            limit: 50,
            ..AuditQuery::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .filter(|a| a.as_str().starts_with("share."))
        .collect();
    assert_eq!(
        actions,
        vec![
            AuditAction::ShareRevoked,
            AuditAction::ShareChanged,
            AuditAction::ShareGranted,
            AuditAction::ShareGranted,
        ]
    );
}

pub async fn shares_need_existing_users(s: Stores) {
    let owner = create(&s, new_user()).await;
    assert_eq!(
        err(s
            .shares
            .put(share(owner.id, Uuid::now_v7(), ScopeSet::ALL))
            .await),
        RepoError::NotFound
    );
    assert!(s.shares.granted_by(owner.id).await.unwrap().is_empty());
}

pub async fn shares_go_with_a_purged_user(s: Stores) {
    let owner = create(&s, new_user()).await;
    let grantee = create(&s, new_user()).await;
    let third = create(&s, new_user()).await;
    s.shares
        .put(share(owner.id, grantee.id, ScopeSet::ALL))
        .await
        .unwrap();
    s.shares
        .put(share(grantee.id, third.id, ScopeSet::ALL))
        .await
        .unwrap();
    s.shares
        .put(share(third.id, owner.id, ScopeSet::ALL))
        .await
        .unwrap();
    s.users.purge(grantee.id, None).await.unwrap();
    assert!(s.shares.granted_by(owner.id).await.unwrap().is_empty());
    assert!(s.shares.granted_to(third.id).await.unwrap().is_empty());
    assert_eq!(s.shares.granted_to(owner.id).await.unwrap().len(), 1);
}

pub async fn list_visible_to_includes_users_who_shared(s: Stores) {
    let viewer = create(&s, new_user()).await;
    let managed = create(&s, new_managed_user(viewer.id)).await;
    let sharer = create(&s, new_user()).await;
    let deleted_sharer = create(&s, new_user()).await;
    let stranger = create(&s, new_user()).await;
    let shared_elsewhere = create(&s, new_user()).await;
    for owner in [sharer.id, deleted_sharer.id] {
        s.shares
            .put(share(owner, viewer.id, scopes(&[Scope::DataRead])))
            .await
            .unwrap();
    }
    s.shares
        .put(share(shared_elsewhere.id, stranger.id, ScopeSet::ALL))
        .await
        .unwrap();
    s.users
        .update(deleted_sharer.id, soft_delete(now()), now())
        .await
        .unwrap();

    let query = |managed: bool, shared: bool| UserListQuery {
        include_managed: managed,
        include_shared: shared,
        ..UserListQuery::all(Some(viewer.id), 500)
    };
    assert_eq!(
        listed(&s, query(true, true)).await,
        sorted(vec![viewer.id, managed.id, sharer.id])
    );
    assert_eq!(
        listed(&s, query(false, true)).await,
        sorted(vec![viewer.id, sharer.id])
    );
    assert_eq!(
        listed(&s, query(true, false)).await,
        sorted(vec![viewer.id, managed.id])
    );
    assert_eq!(listed(&s, query(false, false)).await, vec![viewer.id]);
    assert_eq!(s.users.count(query(true, true)).await.unwrap(), 3);
    let mut with_deleted = query(true, true);
    with_deleted.include_deleted = true;
    assert_eq!(
        listed(&s, with_deleted).await,
        sorted(vec![viewer.id, managed.id, sharer.id, deleted_sharer.id])
    );
}

pub async fn check_delegated_reads_both_parties_and_the_share(s: Stores) {
    let principal = create(&s, new_user()).await;
    let subject = create(&s, new_user()).await;
    let managed = create(&s, new_managed_user(principal.id)).await;
    let (session_id, _) = start_session(&s, principal.id).await;

    let check = s
        .sessions
        .check_delegated(session_id, principal.id, subject.id)
        .await
        .unwrap();
    assert_eq!(check.session.id, session_id);
    assert_eq!(check.principal.id, principal.id);
    assert_eq!(check.subject.id, subject.id);
    assert_eq!(check.share, None);

    let granted = scopes(&[Scope::DataRead, Scope::Profile]);
    s.shares
        .put(share(subject.id, principal.id, granted))
        .await
        .unwrap();
    let check = s
        .sessions
        .check_delegated(session_id, principal.id, subject.id)
        .await
        .unwrap();
    assert_eq!(check.share, Some(granted));

    let check = s
        .sessions
        .check_delegated(session_id, principal.id, managed.id)
        .await
        .unwrap();
    assert_eq!(check.subject.manager_id, Some(principal.id));

    // A soft-deleted subject is still returned (the caller decides); a missing one is not.
    s.users
        .update(subject.id, soft_delete(now()), now())
        .await
        .unwrap();
    let check = s
        .sessions
        .check_delegated(session_id, principal.id, subject.id)
        .await
        .unwrap();
    assert_eq!(check.subject.state, UserState::Deleted);
    assert_eq!(
        err(s
            .sessions
            .check_delegated(session_id, principal.id, Uuid::now_v7())
            .await),
        RepoError::NotFound
    );
    // The session must be the principal's.
    assert_eq!(
        err(s
            .sessions
            .check_delegated(session_id, subject.id, principal.id)
            .await),
        RepoError::NotFound
    );
}

pub async fn concurrent_puts_of_one_share_create_it_once(s: Stores) {
    let owner = create(&s, new_user()).await;
    let grantee = create(&s, new_user()).await;
    let puts: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            let set = if i % 2 == 0 {
                scopes(&[Scope::DataRead])
            } else {
                scopes(&[Scope::DataWrite])
            };
            tokio::spawn(async move { s.shares.put(share(owner.id, grantee.id, set)).await })
        })
        .collect();
    let mut created = 0;
    for task in puts {
        if task.await.unwrap().unwrap().1 {
            created += 1;
        }
    }
    assert_eq!(created, 1, "exactly one put creates the share");
    assert_eq!(s.shares.granted_by(owner.id).await.unwrap().len(), 1);
}
