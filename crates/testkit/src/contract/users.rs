//! Contract cases of users in [`UserRepository`](tessera_domain::ports::UserRepository):
//! creation and read-back, usernames and emails unique in any letter case, the login look-ups,
//! partial and full updates, purge and existence.

use tessera_domain::model::{
    NewSession, NewUser, Permission, Permissions, RefreshOutcome, RevokeSessions, User,
    UserChanges, UserState,
};
use tessera_domain::ports::RepoError;
use tessera_domain::Conflict;
use time::Duration;
use uuid::Uuid;

use super::{
    conflict, create, default_wallet, digest, err, fake_hash, new_managed_user, new_user, now,
    query, session, soft_delete, start_session, unique_username, with_permissions, with_state,
    Stores, UserBuilder,
};

/// `s`, upper-cased: the same name in another letter case.
fn upper(s: &Option<String>) -> String {
    s.as_deref().expect("a name").to_uppercase()
}

// ---------------------------------------------------------------------------------------------
// Create, get, uniqueness

pub async fn create_and_get_roundtrip(s: Stores) {
    let creator = create(&s, new_user()).await;
    let t = now();
    let username = unique_username();
    let hash = fake_hash();
    let permissions = Permissions::NONE
        .with(Permission::Developer)
        .with(Permission::Admin);
    let new = NewUser {
        id: Uuid::now_v7(),
        username: Some(username.clone()),
        email: Some(format!("{username}@Example.com")),
        first_name: Some("Ada".into()),
        last_name: Some("Lovelace".into()),
        password_hash: Some(hash.clone()),
        hotkey: None,
        coldkey: None,
        fingerprint_digest: None,
        permissions,
        tier_id: None,
        manager_id: None,
        must_change_password: true,
        created_by: Some(creator.id),
        now: t,
        default_wallet: default_wallet(),
        audit: None,
    };
    let expected = User {
        id: new.id,
        username: Some(username.clone()),
        email: Some(format!("{username}@Example.com")),
        first_name: Some("Ada".into()),
        last_name: Some("Lovelace".into()),
        logo_id: None,
        hotkey: None,
        coldkey: None,
        payment_address: None,
        permissions,
        tier_id: None,
        invoicing: false,
        unlimited: false,
        squad_enabled: false,
        manager_id: None,
        state: UserState::Active,
        has_password: true,
        must_change_password: true,
        tokens_valid_after: t,
        created_by: Some(creator.id),
        created_at: t,
        updated_at: t,
        last_login_at: None,
        deleted_at: None,
    };
    let created = s.users.create(new).await.unwrap();
    assert_eq!(created, expected);
    assert_eq!(s.users.get(expected.id).await.unwrap(), expected);
    assert_eq!(
        s.users.password_hash(expected.id).await.unwrap(),
        Some(hash)
    );

    let managed_new = new_managed_user(creator.id);
    let managed = s.users.create(managed_new.clone()).await.unwrap();
    let expected_managed = User {
        id: managed_new.id,
        username: None,
        email: None,
        first_name: Some("Managed".into()),
        last_name: None,
        permissions: Permissions::NONE,
        manager_id: Some(creator.id),
        has_password: false,
        must_change_password: false,
        tokens_valid_after: managed_new.now,
        created_by: Some(creator.id),
        created_at: managed_new.now,
        updated_at: managed_new.now,
        ..expected
    };
    assert_eq!(managed, expected_managed);
    assert_eq!(s.users.get(managed.id).await.unwrap(), expected_managed);
    assert_eq!(s.users.password_hash(managed.id).await.unwrap(), None);
}

pub async fn duplicate_username_in_other_case_conflicts(s: Stores) {
    let a = create(&s, new_user()).await;
    let b = new_user().username(upper(&a.username));
    let b_id = b.id;
    assert_eq!(
        err(s.users.create(b).await),
        conflict(Conflict::DuplicateUsername)
    );
    assert_eq!(err(s.users.get(b_id).await), RepoError::NotFound);
}

pub async fn duplicate_email_in_other_case_conflicts(s: Stores) {
    let a = create(&s, new_user()).await;
    let b = new_user().email(upper(&a.email));
    let b_id = b.id;
    assert_eq!(
        err(s.users.create(b).await),
        conflict(Conflict::DuplicateEmail)
    );
    assert_eq!(err(s.users.get(b_id).await), RepoError::NotFound);
    // Users without an email never conflict with each other.
    create(&s, new_user().email(None)).await;
    create(&s, new_user().email(None)).await;
}

pub async fn username_conflict_is_reported_before_email(s: Stores) {
    let a = create(&s, new_user()).await;
    let b = new_user()
        .username(a.username.clone())
        .email(a.email.clone());
    assert_eq!(
        err(s.users.create(b).await),
        conflict(Conflict::DuplicateUsername)
    );
}

pub async fn soft_deleted_users_keep_their_names(s: Stores) {
    let gone = create(&s, new_user()).await;
    let deleted = s.users.update(gone.id, soft_delete(now()), now()).await;
    assert_eq!(deleted.unwrap().state, UserState::Deleted);

    let same_name = new_user().username(upper(&gone.username));
    assert_eq!(
        err(s.users.create(same_name).await),
        conflict(Conflict::DuplicateUsername)
    );
    let same_email = new_user().email(upper(&gone.email));
    assert_eq!(
        err(s.users.create(same_email).await),
        conflict(Conflict::DuplicateEmail)
    );
    let other = create(&s, new_user()).await;
    let rename = UserChanges {
        username: Some(upper(&gone.username)),
        ..UserChanges::default()
    };
    assert_eq!(
        err(s.users.update(other.id, rename, now()).await),
        conflict(Conflict::DuplicateUsername)
    );
}

pub async fn update_to_taken_name_conflicts_and_changes_nothing(s: Stores) {
    let a = create(&s, new_user()).await;
    let b_new = new_user();
    let b_hash = b_new.password_hash.clone();
    let b = create(&s, b_new).await;
    let (sid, _) = start_session(&s, b.id).await;
    let before = s.users.get(b.id).await.unwrap();
    let later = now() + Duration::seconds(5);

    let rename = UserChanges {
        username: Some(upper(&a.username)),
        first_name: Some(Some("Changed".into())),
        password_hash: Some(fake_hash()),
        revoke_sessions: RevokeSessions::All,
        ..UserChanges::default()
    };
    assert_eq!(
        err(s.users.update(b.id, rename, later).await),
        conflict(Conflict::DuplicateUsername)
    );
    let re_email = UserChanges {
        email: Some(Some(upper(&a.email))),
        first_name: Some(Some("Changed".into())),
        revoke_sessions: RevokeSessions::All,
        ..UserChanges::default()
    };
    assert_eq!(
        err(s.users.update(b.id, re_email, later).await),
        conflict(Conflict::DuplicateEmail)
    );

    assert_eq!(s.users.get(b.id).await.unwrap(), before);
    assert_eq!(s.users.password_hash(b.id).await.unwrap(), b_hash);
    assert_eq!(session(&s, sid, b.id).await.revoked_at, None);
    assert_eq!(s.users.get(a.id).await.unwrap(), a);
}

pub async fn update_own_name_in_other_case_is_fine(s: Stores) {
    let a = create(&s, new_user()).await;
    let changes = UserChanges {
        username: Some(upper(&a.username)),
        email: Some(Some(upper(&a.email))),
        ..UserChanges::default()
    };
    let updated = s.users.update(a.id, changes, now()).await.unwrap();
    assert_eq!(updated.username, Some(upper(&a.username)));
    assert_eq!(updated.email, Some(upper(&a.email)));
    assert_eq!(s.users.get(a.id).await.unwrap(), updated);
    let found = s
        .users
        .find_by_username(a.username.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(found.id, a.id);
}

pub async fn find_by_username_ignores_case(s: Stores) {
    let a = create(&s, new_user()).await;
    create(&s, new_user()).await;
    let name = a.username.clone().unwrap();
    assert_eq!(s.users.find_by_username(&name).await.unwrap(), a);
    assert_eq!(
        s.users
            .find_by_username(&name.to_uppercase())
            .await
            .unwrap(),
        a
    );
    assert_eq!(
        err(s.users.find_by_username(&unique_username()).await),
        RepoError::NotFound
    );
    // The username only, never the email.
    assert_eq!(
        err(s.users.find_by_username(a.email.as_deref().unwrap()).await),
        RepoError::NotFound
    );
    // Users in any state are found; the services decide what to do with them.
    s.users
        .update(a.id, soft_delete(now()), now())
        .await
        .unwrap();
    let found = s.users.find_by_username(&name.to_uppercase()).await;
    assert_eq!(found.unwrap().state, UserState::Deleted);
}

pub async fn find_login_by_username_or_email(s: Stores) {
    let new = new_user();
    let hash = new.password_hash.clone();
    let a = create(&s, new).await;
    let by_name = s.users.find_login(&upper(&a.username)).await.unwrap();
    assert_eq!(by_name, (a.clone(), hash.clone()));
    let by_email = s.users.find_login(&upper(&a.email)).await.unwrap();
    assert_eq!(by_email, (a.clone(), hash));

    let no_password = create(&s, new_user().password_hash(None)).await;
    assert!(!no_password.has_password);
    let found = s
        .users
        .find_login(no_password.email.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(found, (no_password, None));

    assert_eq!(
        err(s.users.find_login(&unique_username()).await),
        RepoError::NotFound
    );
    assert_eq!(
        err(s.users.find_login("nobody@example.com").await),
        RepoError::NotFound
    );

    let deactivated = s
        .users
        .update(a.id, with_state(UserState::Deactivated), now())
        .await
        .unwrap();
    let found = s.users.find_login(a.username.as_deref().unwrap()).await;
    assert_eq!(found.unwrap().0, deactivated);
}

/// A username may be an email address (Run:ai local users) that another user holds as their
/// email; the username match wins.
/// Usernames and emails share the login namespace: an email-shaped username must be the user's
/// own email, so no user can hold another user's email as a login name.
pub async fn email_shaped_usernames_are_the_users_own_email(s: Stores) {
    let login = format!("{}@example.org", unique_username());
    let owner = create(&s, new_user().email(login.to_uppercase())).await;
    // Without the matching email: refused by the store's CHECK constraint.
    let alone = s
        .users
        .create(new_user().username(login.clone()).email(None))
        .await;
    assert!(matches!(alone, Err(RepoError::Internal(_))), "{alone:?}");
    // With it: the email is taken, in any letter case.
    let both = s
        .users
        .create(new_user().username(login.clone()).email(login.clone()))
        .await;
    assert_eq!(err(both), RepoError::Conflict(Conflict::DuplicateEmail));
    let found = s.users.find_login(&login).await.unwrap();
    assert_eq!(found.0.id, owner.id);
    // A user whose username is their own email logs in by it.
    let other = format!("{}@example.net", unique_username());
    let local = create(
        &s,
        new_user()
            .username(other.clone())
            .email(other.to_uppercase()),
    )
    .await;
    assert_eq!(s.users.find_login(&other).await.unwrap().0.id, local.id);
}

pub async fn missing_users_are_not_found(s: Stores) {
    let missing = Uuid::now_v7();
    let t = now();
    assert_eq!(err(s.users.get(missing).await), RepoError::NotFound);
    assert_eq!(
        err(s.users.password_hash(missing).await),
        RepoError::NotFound
    );
    let changes = UserChanges {
        first_name: Some(Some("x".into())),
        ..UserChanges::default()
    };
    assert_eq!(
        err(s.users.update(missing, changes, t).await),
        RepoError::NotFound
    );
    assert_eq!(
        err(s
            .users
            .update(missing, with_state(UserState::Deactivated), t)
            .await),
        RepoError::NotFound
    );
    assert_eq!(err(s.users.purge(missing, None).await), RepoError::NotFound);
    let start = s
        .sessions
        .start(NewSession {
            id: Uuid::now_v7(),
            user_id: missing,
            refresh_token_digest: digest(),
            now: t,
            expires_at: t + Duration::hours(1),
        })
        .await;
    assert_eq!(err(start), RepoError::NotFound);
    assert_eq!(
        err(s.sessions.check(Uuid::now_v7(), missing).await),
        RepoError::NotFound
    );
    assert!(!s.users.any_exists().await.unwrap());
}

// ---------------------------------------------------------------------------------------------
// Update

pub async fn partial_update_leaves_other_fields_alone(s: Stores) {
    let t0 = now();
    let new = new_user()
        .first_name("Ada")
        .last_name("Lovelace")
        .permissions(Permissions::NONE.with(Permission::Developer))
        .must_change_password(true)
        .created_at(t0);
    let hash = new.password_hash.clone();
    let before = create(&s, new).await;
    let t1 = t0 + Duration::seconds(1);
    let changes = UserChanges {
        first_name: Some(Some("Grace".into())),
        email: Some(None),
        ..UserChanges::default()
    };
    let updated = s.users.update(before.id, changes, t1).await.unwrap();
    let expected = User {
        first_name: Some("Grace".into()),
        email: None,
        updated_at: t1,
        ..before.clone()
    };
    assert_eq!(updated, expected);
    assert_eq!(s.users.get(before.id).await.unwrap(), expected);
    assert_eq!(s.users.password_hash(before.id).await.unwrap(), hash);

    // A cleared email is free for another user.
    let reuse = new_user().email(upper(&before.email));
    create(&s, reuse).await;
}

pub async fn update_applies_every_field(s: Stores) {
    let t0 = now();
    let before = create(&s, new_user().password_hash(None).created_at(t0)).await;
    assert!(!before.has_password);

    let (t1, t2, t3) = (
        t0 + Duration::seconds(1),
        t0 + Duration::seconds(2),
        t0 + Duration::seconds(3),
    );
    let username = unique_username();
    let hash = fake_hash();
    let permissions = Permissions::NONE
        .with(Permission::Developer)
        .with(Permission::UnlimitedDev);
    let changes = UserChanges {
        username: Some(username.clone()),
        email: Some(Some(format!("{username}@example.net"))),
        first_name: Some(Some("First".into())),
        last_name: Some(Some("Last".into())),
        password_hash: Some(hash.clone()),
        must_change_password: Some(true),
        permissions: Some(permissions),
        tier_id: None,
        state: Some(UserState::Deactivated),
        deleted_at: None,
        hotkey: Some(Some(
            "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty".into(),
        )),
        coldkey: Some(Some(
            "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY".into(),
        )),
        logo_id: Some(Some(Uuid::nil())),
        squad_enabled: Some(true),
        fingerprint_digest: Some("f".repeat(128)),
        tokens_valid_after: Some(t1),
        revoke_sessions: RevokeSessions::None,
        audit: None,
    };
    let expected = User {
        hotkey: Some("5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty".into()),
        coldkey: Some("5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY".into()),
        logo_id: Some(Uuid::nil()),
        squad_enabled: true,
        username: Some(username.clone()),
        email: Some(format!("{username}@example.net")),
        first_name: Some("First".into()),
        last_name: Some("Last".into()),
        permissions,
        state: UserState::Deactivated,
        has_password: true,
        must_change_password: true,
        tokens_valid_after: t1,
        updated_at: t1,
        ..before.clone()
    };
    assert_eq!(
        s.users.update(before.id, changes, t1).await.unwrap(),
        expected
    );
    assert_eq!(s.users.get(before.id).await.unwrap(), expected);
    assert_eq!(
        s.users.password_hash(before.id).await.unwrap(),
        Some(hash.clone())
    );
    assert_eq!(
        s.users.find_login(&username).await.unwrap(),
        (expected.clone(), Some(hash))
    );
    assert_eq!(
        s.users
            .find_by_hotkey("5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty")
            .await
            .unwrap(),
        expected
    );
    assert_eq!(
        s.users.find_by_fingerprint(&"f".repeat(128)).await.unwrap(),
        expected
    );

    let delete = UserChanges {
        state: Some(UserState::Deleted),
        deleted_at: Some(Some(t2)),
        first_name: Some(None),
        must_change_password: Some(false),
        ..UserChanges::default()
    };
    let expected = User {
        state: UserState::Deleted,
        deleted_at: Some(t2),
        first_name: None,
        must_change_password: false,
        updated_at: t2,
        ..expected
    };
    assert_eq!(
        s.users.update(before.id, delete, t2).await.unwrap(),
        expected
    );

    let restore = UserChanges {
        state: Some(UserState::Active),
        deleted_at: Some(None),
        last_name: Some(None),
        ..UserChanges::default()
    };
    let expected = User {
        state: UserState::Active,
        deleted_at: None,
        last_name: None,
        updated_at: t3,
        ..expected
    };
    assert_eq!(
        s.users.update(before.id, restore, t3).await.unwrap(),
        expected
    );
    assert_eq!(s.users.get(before.id).await.unwrap(), expected);
}

pub async fn update_sets_updated_at(s: Stores) {
    let t0 = now();
    let before = create(&s, new_user().created_at(t0)).await;
    let t1 = t0 + Duration::seconds(10);
    let updated = s
        .users
        .update(before.id, UserChanges::default(), t1)
        .await
        .unwrap();
    assert_eq!(
        updated,
        User {
            updated_at: t1,
            ..before.clone()
        }
    );
    let t2 = t1 + Duration::seconds(10);
    let updated = s
        .users
        .update(before.id, with_permissions(Permissions::NONE), t2)
        .await
        .unwrap();
    assert_eq!(updated.updated_at, t2);
    assert_eq!(updated.created_at, t0);
    assert_eq!(s.users.get(before.id).await.unwrap().updated_at, t2);
}

// ---------------------------------------------------------------------------------------------
// Purge and existence

pub async fn purge_cascades_to_managed_users_and_sessions(s: Stores) {
    let manager = create(&s, new_user()).await;
    let managed = create(&s, new_managed_user(manager.id)).await;
    let nested = create(&s, new_managed_user(managed.id)).await;
    let created = create(&s, new_user().created_by(manager.id)).await;
    let bystander = create(&s, new_user()).await;
    let (manager_sid, manager_token) = start_session(&s, manager.id).await;
    let (managed_sid, managed_token) = start_session(&s, managed.id).await;
    let (created_sid, _) = start_session(&s, created.id).await;
    let (bystander_sid, bystander_token) = start_session(&s, bystander.id).await;

    s.users.purge(manager.id, None).await.unwrap();

    for id in [manager.id, managed.id, nested.id] {
        assert_eq!(err(s.users.get(id).await), RepoError::NotFound);
        assert_eq!(err(s.users.password_hash(id).await), RepoError::NotFound);
    }
    assert_eq!(
        err(s.sessions.check(manager_sid, manager.id).await),
        RepoError::NotFound
    );
    assert_eq!(
        err(s.sessions.check(managed_sid, managed.id).await),
        RepoError::NotFound
    );
    for token in [manager_token, managed_token] {
        let outcome = s.sessions.rotate_refresh(&token, &digest(), now()).await;
        assert_eq!(outcome.unwrap(), RefreshOutcome::Invalid);
    }

    // Users it merely created stay, without the reference.
    let created_after = s.users.get(created.id).await.unwrap();
    assert_eq!(
        created_after,
        User {
            created_by: None,
            last_login_at: created_after.last_login_at,
            ..created
        }
    );
    assert_eq!(session(&s, created_sid, created.id).await.revoked_at, None);
    assert_eq!(
        session(&s, bystander_sid, bystander.id).await.revoked_at,
        None
    );
    let outcome = s
        .sessions
        .rotate_refresh(&bystander_token, &digest(), now())
        .await;
    assert!(matches!(outcome.unwrap(), RefreshOutcome::Rotated { .. }));
    let page = s.users.list(query(None, true, true)).await.unwrap();
    assert_eq!(page.total, 2);

    // Purged names are free again.
    create(
        &s,
        new_user()
            .username(manager.username.clone())
            .email(manager.email.clone()),
    )
    .await;
    assert_eq!(
        err(s.users.purge(manager.id, None).await),
        RepoError::NotFound
    );
}

pub async fn any_exists_reflects_any_user(s: Stores) {
    assert!(!s.users.any_exists().await.unwrap());
    let a = create(&s, new_user()).await;
    assert!(s.users.any_exists().await.unwrap());
    s.users
        .update(a.id, soft_delete(now()), now())
        .await
        .unwrap();
    assert!(s.users.any_exists().await.unwrap());
    s.users.purge(a.id, None).await.unwrap();
    assert!(!s.users.any_exists().await.unwrap());
}

// ---------------------------------------------------------------------------------------------
// Concurrency

/// Twenty concurrent creates of one username in twenty letter cases: exactly one wins.
pub async fn concurrent_creates_of_one_username(s: Stores) {
    let suffix = &Uuid::new_v4().simple().to_string()[..12];
    let base = "concurrent";
    let tasks: Vec<_> = (0..20u32)
        .map(|i| {
            let variant: String = base
                .chars()
                .enumerate()
                .map(|(j, c)| {
                    if i & (1 << j) != 0 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
            let user = new_user().username(format!("{variant}{suffix}"));
            let s = s.clone();
            tokio::spawn(async move { s.users.create(user).await })
        })
        .collect();
    let mut created = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(user) => created.push(user),
            Err(e) => assert_eq!(e, conflict(Conflict::DuplicateUsername)),
        }
    }
    assert_eq!(created.len(), 1);
    let found = s
        .users
        .find_by_username(&format!("{base}{suffix}"))
        .await
        .unwrap();
    assert_eq!(found, created[0]);
    assert_eq!(
        s.users.list(query(None, true, true)).await.unwrap().total,
        1
    );
}
