//! Contract cases of [`SessionRepository`](tessera_domain::ports::SessionRepository): starting,
//! checking and revoking sessions, revocation with a user change, and refresh tokens rotating
//! in a chain (reuse, expiry, revocation, and one rotation under concurrent refreshes).

use tessera_domain::model::{RefreshOutcome, RevokeSessions, Session, UserChanges, UserState};
use tessera_domain::ports::RepoError;
use time::Duration;
use uuid::Uuid;

use super::{
    create, digest, err, fake_hash, new_user, now, session, start_session, start_session_at,
    with_state, Stores,
};

// ---------------------------------------------------------------------------------------------
// Sessions

pub async fn session_start_records_login(s: Stores) {
    let user = create(&s, new_user()).await;
    let other = create(&s, new_user()).await;
    let t = now() + Duration::seconds(1);
    let expires_at = t + Duration::hours(1);
    let (sid, _) = start_session_at(&s, user.id, t, expires_at).await;

    let after = s.users.get(user.id).await.unwrap();
    assert_eq!(after.last_login_at, Some(t));
    let check = s.sessions.check(sid, user.id).await.unwrap();
    assert_eq!(
        check.session,
        Session {
            id: sid,
            user_id: user.id,
            created_at: t,
            expires_at,
            revoked_at: None,
        }
    );
    assert_eq!(check.user, after);

    assert_eq!(
        err(s.sessions.check(sid, other.id).await),
        RepoError::NotFound
    );
    assert_eq!(
        err(s.sessions.check(Uuid::now_v7(), user.id).await),
        RepoError::NotFound
    );
    assert_eq!(s.users.get(other.id).await.unwrap().last_login_at, None);

    // The check sees the user as it is now.
    let changed = s
        .users
        .update(user.id, with_state(UserState::Deactivated), now())
        .await
        .unwrap();
    assert_eq!(s.sessions.check(sid, user.id).await.unwrap().user, changed);

    // A second login moves the time.
    let t2 = t + Duration::seconds(30);
    start_session_at(&s, user.id, t2, t2 + Duration::hours(1)).await;
    assert_eq!(s.users.get(user.id).await.unwrap().last_login_at, Some(t2));
}

pub async fn check_returns_revoked_and_expired_sessions(s: Stores) {
    let user = create(&s, new_user()).await;
    let t = now();
    let (expired, _) =
        start_session_at(&s, user.id, t - Duration::hours(2), t - Duration::hours(1)).await;
    assert_eq!(
        session(&s, expired, user.id).await.expires_at,
        t - Duration::hours(1)
    );
    let (revoked, _) = start_session(&s, user.id).await;
    s.sessions.revoke(revoked, t).await.unwrap();
    assert_eq!(session(&s, revoked, user.id).await.revoked_at, Some(t));
}

pub async fn revoke_is_idempotent(s: Stores) {
    let user = create(&s, new_user()).await;
    let (sid, _) = start_session(&s, user.id).await;
    let (other_sid, _) = start_session(&s, user.id).await;
    let t1 = now() + Duration::seconds(1);
    let t2 = t1 + Duration::seconds(1);
    s.sessions.revoke(sid, t1).await.unwrap();
    assert_eq!(session(&s, sid, user.id).await.revoked_at, Some(t1));
    s.sessions.revoke(sid, t2).await.unwrap();
    assert_eq!(session(&s, sid, user.id).await.revoked_at, Some(t1));
    s.sessions.revoke(Uuid::now_v7(), t2).await.unwrap();
    assert_eq!(session(&s, other_sid, user.id).await.revoked_at, None);
}

pub async fn revoke_all_spares_kept_session(s: Stores) {
    let user = create(&s, new_user()).await;
    let other = create(&s, new_user()).await;
    let (s1, _) = start_session(&s, user.id).await;
    let (s2, _) = start_session(&s, user.id).await;
    let (s3, _) = start_session(&s, user.id).await;
    let (so, _) = start_session(&s, other.id).await;
    let t1 = now() + Duration::seconds(1);
    let t2 = t1 + Duration::seconds(1);

    s.sessions.revoke_all(user.id, Some(s2), t1).await.unwrap();
    assert_eq!(session(&s, s1, user.id).await.revoked_at, Some(t1));
    assert_eq!(session(&s, s2, user.id).await.revoked_at, None);
    assert_eq!(session(&s, s3, user.id).await.revoked_at, Some(t1));
    assert_eq!(session(&s, so, other.id).await.revoked_at, None);

    s.sessions.revoke_all(user.id, None, t2).await.unwrap();
    assert_eq!(session(&s, s1, user.id).await.revoked_at, Some(t1));
    assert_eq!(session(&s, s2, user.id).await.revoked_at, Some(t2));
    assert_eq!(session(&s, so, other.id).await.revoked_at, None);

    s.sessions
        .revoke_all(Uuid::now_v7(), None, t2)
        .await
        .unwrap();
}

pub async fn update_revokes_sessions(s: Stores) {
    let user = create(&s, new_user()).await;
    let other = create(&s, new_user()).await;
    let (s1, _) = start_session(&s, user.id).await;
    let (s2, _) = start_session(&s, user.id).await;
    let (s3, _) = start_session(&s, user.id).await;
    let (so, _) = start_session(&s, other.id).await;
    let t0 = now();
    let (t1, t2) = (t0 + Duration::seconds(1), t0 + Duration::seconds(2));
    s.sessions.revoke(s3, t0).await.unwrap();

    let changes = UserChanges {
        password_hash: Some(fake_hash()),
        revoke_sessions: RevokeSessions::AllExcept(s2),
        ..UserChanges::default()
    };
    s.users.update(user.id, changes, t1).await.unwrap();
    assert_eq!(session(&s, s1, user.id).await.revoked_at, Some(t1));
    assert_eq!(session(&s, s2, user.id).await.revoked_at, None);
    assert_eq!(session(&s, s3, user.id).await.revoked_at, Some(t0));

    let changes = UserChanges {
        revoke_sessions: RevokeSessions::All,
        ..UserChanges::default()
    };
    s.users.update(user.id, changes, t2).await.unwrap();
    assert_eq!(session(&s, s1, user.id).await.revoked_at, Some(t1));
    assert_eq!(session(&s, s2, user.id).await.revoked_at, Some(t2));
    assert_eq!(session(&s, s3, user.id).await.revoked_at, Some(t0));
    assert_eq!(session(&s, so, other.id).await.revoked_at, None);

    // Without a revocation request, sessions are left alone.
    let (s4, _) = start_session(&s, user.id).await;
    let changes = UserChanges {
        first_name: Some(Some("Still".into())),
        ..UserChanges::default()
    };
    s.users.update(user.id, changes, t2).await.unwrap();
    assert_eq!(session(&s, s4, user.id).await.revoked_at, None);
}

// ---------------------------------------------------------------------------------------------
// Refresh tokens

pub async fn refresh_tokens_rotate_in_a_chain(s: Stores) {
    let user = create(&s, new_user()).await;
    let (sid, first) = start_session(&s, user.id).await;
    let mut current = first;
    for step in 1..=3 {
        let next = digest();
        let at = now() + Duration::seconds(step);
        let outcome = s
            .sessions
            .rotate_refresh(&current, &next, at)
            .await
            .unwrap();
        let expected = RefreshOutcome::Rotated {
            session: session(&s, sid, user.id).await,
            user: Box::new(s.users.get(user.id).await.unwrap()),
        };
        assert_eq!(outcome, expected);
        current = next;
    }
    assert_eq!(session(&s, sid, user.id).await.revoked_at, None);
}

pub async fn reused_refresh_token_revokes_session(s: Stores) {
    let user = create(&s, new_user()).await;
    let (sid, first) = start_session(&s, user.id).await;
    let (other_sid, _) = start_session(&s, user.id).await;
    let t = now();
    let second = digest();
    let outcome = s.sessions.rotate_refresh(&first, &second, t).await;
    assert!(matches!(outcome.unwrap(), RefreshOutcome::Rotated { .. }));

    let (t1, t2) = (t + Duration::seconds(1), t + Duration::seconds(2));
    let attempted = digest();
    let outcome = s.sessions.rotate_refresh(&first, &attempted, t1).await;
    assert_eq!(outcome.unwrap(), RefreshOutcome::Reused { session_id: sid });
    assert_eq!(session(&s, sid, user.id).await.revoked_at, Some(t1));

    // Everything of that session is dead now, even the newest token.
    for token in [&second, &attempted, &first] {
        let outcome = s.sessions.rotate_refresh(token, &digest(), t2).await;
        assert_eq!(outcome.unwrap(), RefreshOutcome::Invalid);
    }
    assert_eq!(session(&s, sid, user.id).await.revoked_at, Some(t1));
    assert_eq!(session(&s, other_sid, user.id).await.revoked_at, None);
}

pub async fn unknown_refresh_token_is_invalid(s: Stores) {
    let outcome = s.sessions.rotate_refresh(&digest(), &digest(), now()).await;
    assert_eq!(outcome.unwrap(), RefreshOutcome::Invalid);
    let user = create(&s, new_user()).await;
    let (sid, first) = start_session(&s, user.id).await;
    let outcome = s.sessions.rotate_refresh(&digest(), &digest(), now()).await;
    assert_eq!(outcome.unwrap(), RefreshOutcome::Invalid);
    assert_eq!(session(&s, sid, user.id).await.revoked_at, None);
    let outcome = s.sessions.rotate_refresh(&first, &digest(), now()).await;
    assert!(matches!(outcome.unwrap(), RefreshOutcome::Rotated { .. }));
}

pub async fn expired_session_refresh_is_invalid(s: Stores) {
    let user = create(&s, new_user()).await;
    let t = now();
    let expires_at = t + Duration::hours(1);
    let (sid, first) = start_session_at(&s, user.id, t, expires_at).await;

    let second = digest();
    let just_before = expires_at - Duration::microseconds(1);
    let outcome = s
        .sessions
        .rotate_refresh(&first, &second, just_before)
        .await;
    assert!(matches!(outcome.unwrap(), RefreshOutcome::Rotated { .. }));

    for at in [expires_at, expires_at + Duration::hours(1)] {
        let outcome = s.sessions.rotate_refresh(&second, &digest(), at).await;
        assert_eq!(outcome.unwrap(), RefreshOutcome::Invalid);
        // Even a spent token only gets `Invalid` once the session has expired.
        let outcome = s.sessions.rotate_refresh(&first, &digest(), at).await;
        assert_eq!(outcome.unwrap(), RefreshOutcome::Invalid);
    }
    assert_eq!(session(&s, sid, user.id).await.revoked_at, None);
}

pub async fn revoked_session_refresh_is_invalid(s: Stores) {
    let user = create(&s, new_user()).await;
    let (sid, first) = start_session(&s, user.id).await;
    let t = now();
    s.sessions.revoke(sid, t).await.unwrap();
    let outcome = s
        .sessions
        .rotate_refresh(&first, &digest(), t + Duration::seconds(1))
        .await;
    assert_eq!(outcome.unwrap(), RefreshOutcome::Invalid);
    assert_eq!(session(&s, sid, user.id).await.revoked_at, Some(t));
}

// ---------------------------------------------------------------------------------------------
// Concurrency

/// One refresh token presented ten times at once: one rotation, the rest see theft or a dead
/// session, and the session ends revoked.
pub async fn concurrent_refresh_rotates_once(s: Stores) {
    let user = create(&s, new_user()).await;
    let (sid, first) = start_session(&s, user.id).await;
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (s, first) = (s.clone(), first.clone());
            tokio::spawn(async move { s.sessions.rotate_refresh(&first, &digest(), now()).await })
        })
        .collect();
    let (mut rotated, mut reused, mut invalid) = (0, 0, 0);
    for task in tasks {
        match task.await.unwrap().unwrap() {
            RefreshOutcome::Rotated { session, .. } => {
                assert_eq!(session.id, sid);
                rotated += 1;
            }
            RefreshOutcome::Reused { session_id } => {
                assert_eq!(session_id, sid);
                reused += 1;
            }
            RefreshOutcome::Invalid => invalid += 1,
        }
    }
    assert_eq!(rotated, 1, "reused {reused}, invalid {invalid}");
    assert!(reused >= 1, "reused {reused}, invalid {invalid}");
    assert!(session(&s, sid, user.id).await.revoked_at.is_some());
}
