//! Contract cases of [`TierRepository`](tessera_domain::ports::TierRepository): quotas and rate
//! limits round-trip, names unique in any case, replace-all updates, listing by name, deletion
//! of a tier in use, and unknown tiers on users.

use std::collections::BTreeMap;

use tessera_domain::model::{RateLimit, ResourceId, Tier, TierSpec};
use tessera_domain::ports::RepoError;
use tessera_domain::Conflict;
use uuid::Uuid;

use super::directory::everyone;
use super::{at, create, err, named, soft_delete, some, with_tier, Stores, UserBuilder};

// ---------------------------------------------------------------------------------------------
// Helpers

pub(super) fn tier_spec(name: &str) -> TierSpec {
    TierSpec {
        name: some(name),
        quotas: None,
        rate_limits: None,
    }
}

pub(super) async fn new_tier(s: &Stores, name: &str) -> Tier {
    s.tiers
        .create(Uuid::now_v7(), tier_spec(name), at(0), None)
        .await
        .expect("create tier")
}

fn limit(path: &str, limit: u32, period_secs: u32) -> RateLimit {
    RateLimit {
        path: path.to_owned(),
        limit,
        period_secs,
    }
}

// ---------------------------------------------------------------------------------------------
// Tiers

pub async fn tiers_round_trip_with_quotas_and_rate_limits(s: Stores) {
    let resource = Uuid::new_v4();
    let quotas = BTreeMap::from([
        (ResourceId::Any, 0),
        (ResourceId::Id(resource), i64::MAX as u64),
        (ResourceId::Id(Uuid::new_v4()), 42),
    ]);
    let spec = TierSpec {
        name: some("Gold"),
        quotas: Some(quotas.clone()),
        rate_limits: Some(vec![
            limit("/v1/b", 10, 60),
            limit("/v1/a", 5, 1),
            limit("/v1/A", 1_000_000, 2_678_400),
        ]),
    };
    let id = Uuid::now_v7();
    let created = s.tiers.create(id, spec, at(0), None).await.unwrap();
    let expected = Tier {
        id,
        name: "Gold".to_owned(),
        quotas,
        // Ordered by path, byte-wise.
        rate_limits: vec![
            limit("/v1/A", 1_000_000, 2_678_400),
            limit("/v1/a", 5, 1),
            limit("/v1/b", 10, 60),
        ],
        created_at: at(0),
        updated_at: at(0),
    };
    assert_eq!(created, expected);
    assert_eq!(s.tiers.get(id).await.unwrap(), expected);
    assert_eq!(s.tiers.find_by_name("gold").await.unwrap(), expected);
    assert_eq!(s.tiers.find_by_name("GOLD").await.unwrap(), expected);
    assert_eq!(s.tiers.list().await.unwrap(), vec![expected.clone()]);

    // A tier with nothing in it.
    let bare = s
        .tiers
        .create(Uuid::now_v7(), tier_spec("Bare"), at(1), None)
        .await
        .unwrap();
    assert!(bare.quotas.is_empty() && bare.rate_limits.is_empty());
    assert_eq!(s.tiers.get(bare.id).await.unwrap(), bare);

    assert_eq!(err(s.tiers.get(Uuid::now_v7()).await), RepoError::NotFound);
    assert_eq!(err(s.tiers.find_by_name("gol").await), RepoError::NotFound);
    assert_eq!(
        err(s.tiers.find_by_name("gold ").await),
        RepoError::NotFound
    );
    assert_eq!(err(s.tiers.find_by_name("%").await), RepoError::NotFound);
}

pub async fn tier_names_are_unique_in_any_case(s: Stores) {
    let gold = new_tier(&s, "Gold").await;
    let silver = new_tier(&s, "Silver").await;
    let dup = TierSpec {
        quotas: Some(BTreeMap::from([(ResourceId::Any, 1)])),
        ..tier_spec("GOLD")
    };
    let id = Uuid::now_v7();
    assert_eq!(
        err(s.tiers.create(id, dup, at(1), None).await),
        RepoError::Conflict(Conflict::DuplicateTierName)
    );
    assert_eq!(err(s.tiers.get(id).await), RepoError::NotFound);

    // Renaming onto another tier's name conflicts and changes nothing at all.
    let rename = TierSpec {
        quotas: Some(BTreeMap::new()),
        rate_limits: Some(vec![]),
        ..tier_spec("gOLD")
    };
    let silver_full = s
        .tiers
        .update(
            silver.id,
            TierSpec {
                name: None,
                quotas: Some(BTreeMap::from([(ResourceId::Any, 7)])),
                rate_limits: Some(vec![limit("/x", 1, 1)]),
            },
            at(2),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        err(s.tiers.update(silver.id, rename, at(3), None).await),
        RepoError::Conflict(Conflict::DuplicateTierName)
    );
    assert_eq!(s.tiers.get(silver.id).await.unwrap(), silver_full);
    assert_eq!(s.tiers.get(gold.id).await.unwrap(), gold);

    // A tier may take its own name in another case.
    let renamed = s
        .tiers
        .update(gold.id, tier_spec("GOLD"), at(4), None)
        .await
        .unwrap();
    assert_eq!(renamed.name, "GOLD");
    assert_eq!(s.tiers.find_by_name("gold").await.unwrap(), renamed);
}

pub async fn tier_update_replaces_contents_and_renames(s: Stores) {
    let resource = Uuid::new_v4();
    let gold = s
        .tiers
        .create(
            Uuid::now_v7(),
            TierSpec {
                name: some("Gold"),
                quotas: Some(BTreeMap::from([
                    (ResourceId::Any, 10),
                    (ResourceId::Id(resource), 3),
                ])),
                rate_limits: Some(vec![limit("/a", 1, 1), limit("/b", 2, 2)]),
            },
            at(0),
            None,
        )
        .await
        .unwrap();

    // Only a name: quotas and rate limits stay.
    let t = s
        .tiers
        .update(gold.id, tier_spec("Platinum"), at(10), None)
        .await
        .unwrap();
    assert_eq!(
        t,
        Tier {
            name: "Platinum".into(),
            updated_at: at(10),
            ..gold.clone()
        }
    );
    assert_eq!(s.tiers.get(gold.id).await.unwrap(), t);
    assert_eq!(err(s.tiers.find_by_name("gold").await), RepoError::NotFound);
    assert_eq!(s.tiers.find_by_name("platinum").await.unwrap(), t);

    // Quotas replace every quota; rate limits stay.
    let other = Uuid::new_v4();
    let t = s
        .tiers
        .update(
            gold.id,
            TierSpec {
                name: None,
                quotas: Some(BTreeMap::from([(ResourceId::Id(other), 5)])),
                rate_limits: None,
            },
            at(20),
            None,
        )
        .await
        .unwrap();
    assert_eq!(t.quotas, BTreeMap::from([(ResourceId::Id(other), 5)]));
    assert_eq!(t.rate_limits, gold.rate_limits);
    assert_eq!((t.created_at, t.updated_at), (at(0), at(20)));

    // Rate limits replace every rate limit; quotas stay.
    let t = s
        .tiers
        .update(
            gold.id,
            TierSpec {
                name: None,
                quotas: None,
                rate_limits: Some(vec![limit("/c", 3, 30)]),
            },
            at(30),
            None,
        )
        .await
        .unwrap();
    assert_eq!(t.quotas, BTreeMap::from([(ResourceId::Id(other), 5)]));
    assert_eq!(t.rate_limits, vec![limit("/c", 3, 30)]);

    // Empty replacements clear.
    let t = s
        .tiers
        .update(
            gold.id,
            TierSpec {
                name: None,
                quotas: Some(BTreeMap::new()),
                rate_limits: Some(vec![]),
            },
            at(40),
            None,
        )
        .await
        .unwrap();
    assert!(t.quotas.is_empty() && t.rate_limits.is_empty());
    assert_eq!(t.updated_at, at(40));
    assert_eq!(s.tiers.get(gold.id).await.unwrap(), t);

    assert_eq!(
        err(s
            .tiers
            .update(Uuid::now_v7(), tier_spec("Ghost"), at(50), None)
            .await),
        RepoError::NotFound
    );
    assert_eq!(
        err(s.tiers.find_by_name("ghost").await),
        RepoError::NotFound
    );
}

pub async fn tiers_are_listed_by_name_case_insensitively(s: Stores) {
    for name in ["beta", "Zulu", "Alpha", "gamma", "_under"] {
        new_tier(&s, name).await;
    }
    let names: Vec<String> = s
        .tiers
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["_under", "Alpha", "beta", "gamma", "Zulu"]);
}

pub async fn tier_in_use_cannot_be_deleted(s: Stores) {
    let gold = new_tier(&s, "Gold").await;
    let spare = new_tier(&s, "Spare").await;
    let user = create(&s, named("member", 1).tier_id(gold.id)).await;
    assert_eq!(user.tier_id, Some(gold.id));

    assert_eq!(
        err(s.tiers.delete(gold.id, None).await),
        RepoError::Conflict(Conflict::TierInUse)
    );
    assert_eq!(s.tiers.get(gold.id).await.unwrap(), gold);

    // A soft-deleted user still holds the tier.
    s.users
        .update(user.id, soft_delete(at(2)), at(2))
        .await
        .unwrap();
    assert_eq!(
        err(s.tiers.delete(gold.id, None).await),
        RepoError::Conflict(Conflict::TierInUse)
    );

    // Unassigned, it goes.
    let after = s
        .users
        .update(user.id, with_tier(None), at(3))
        .await
        .unwrap();
    assert_eq!(after.tier_id, None);
    s.tiers.delete(gold.id, None).await.unwrap();
    assert_eq!(err(s.tiers.get(gold.id).await), RepoError::NotFound);
    assert_eq!(err(s.tiers.find_by_name("gold").await), RepoError::NotFound);
    assert_eq!(s.tiers.list().await.unwrap(), vec![spare.clone()]);
    assert_eq!(
        err(s.tiers.delete(gold.id, None).await),
        RepoError::NotFound
    );

    // A purged user releases its tier, and the freed name can be reused.
    let other = create(&s, named("other", 4).tier_id(spare.id)).await;
    assert_eq!(
        err(s.tiers.delete(spare.id, None).await),
        RepoError::Conflict(Conflict::TierInUse)
    );
    s.users.purge(other.id, None).await.unwrap();
    s.tiers.delete(spare.id, None).await.unwrap();
    assert_eq!(s.tiers.list().await.unwrap(), vec![]);
    new_tier(&s, "gold").await;
}

pub async fn unknown_tier_on_user_create_or_update_is_not_found(s: Stores) {
    let ghost = Uuid::now_v7();
    let new = named("tierless", 1).tier_id(ghost);
    let id = new.id;
    assert_eq!(err(s.users.create(new).await), RepoError::NotFound);
    assert_eq!(err(s.users.get(id).await), RepoError::NotFound);
    assert_eq!(s.users.count(everyone()).await.unwrap(), 0);
    // The name was not taken by the failed insert.
    let user = create(&s, named("tierless", 2)).await;

    assert_eq!(
        err(s.users.update(user.id, with_tier(Some(ghost)), at(3)).await),
        RepoError::NotFound
    );
    assert_eq!(s.users.get(user.id).await.unwrap(), user);

    // A deleted tier is as unknown as one that never existed.
    let gone = new_tier(&s, "gone").await;
    s.tiers.delete(gone.id, None).await.unwrap();
    assert_eq!(
        err(s
            .users
            .update(user.id, with_tier(Some(gone.id)), at(4))
            .await),
        RepoError::NotFound
    );
    let real = new_tier(&s, "real").await;
    let assigned = s
        .users
        .update(user.id, with_tier(Some(real.id)), at(5))
        .await
        .unwrap();
    assert_eq!(
        (assigned.tier_id, assigned.updated_at),
        (Some(real.id), at(5))
    );
    assert_eq!(s.users.get(user.id).await.unwrap(), assigned);
}
