//! Contract cases of [`MeteringRepository`](tessera_domain::ports::MeteringRepository):
//! replace-all quotas and discounts, rates with tier defaults, the consumption step (quota,
//! charge, refusal, invoice, free), idempotency, usage paging, purge, and concurrency.

use std::collections::BTreeMap;

use tessera_domain::model::{
    day_of, hour_of, Consumption, ConsumptionMode, CounterKey, Discount, EntryKind,
    IdempotencyClaim, QuotaOrigin, ResolvedQuota, ResourceId, Source, TierSpec, UsageQuery,
};
use tessera_domain::ports::RepoError;
use tessera_domain::Conflict;
use uuid::Uuid;

use super::{apply, assert_ledger_matches, change, only_wallet};
use super::{create, err, new_user, now, Stores};

fn res(id: Uuid) -> ResourceId {
    ResourceId::Id(id)
}

fn metered(limit: u64, counter: CounterKey) -> ConsumptionMode {
    ConsumptionMode::Metered(ResolvedQuota {
        limit,
        counter,
        origin: QuotaOrigin::UserWildcard,
    })
}

/// One call on `resource` for `user`, paid `charge` past the quota.
pub fn consumption(
    user: Uuid,
    resource: ResourceId,
    mode: ConsumptionMode,
    charge: i64,
) -> Consumption {
    let t = now();
    Consumption {
        user_id: user,
        resource,
        count: 1,
        cost: charge,
        charge,
        input_tokens: 3,
        output_tokens: 4,
        mode,
        currency: "usd".into(),
        day: day_of(t),
        bucket: hour_of(t),
        entry_id: Uuid::now_v7(),
        new_wallet_id: Uuid::now_v7(),
        reason: "usage".into(),
        actor_id: None,
        exhaustion: None,
        idempotency: None,
        now: t,
    }
}

fn all(limit: u64) -> UsageQuery {
    UsageQuery {
        per_resource: true,
        resource: None,
        start: None,
        end: None,
        offset: 0,
        limit,
    }
}

pub async fn quotas_and_discounts_replace_all(s: Stores) {
    let user = create(&s, new_user()).await;
    let r = Uuid::now_v7();
    let quotas = BTreeMap::from([(ResourceId::Any, 5), (res(r), 7)]);
    s.metering
        .replace_quotas(user.id, quotas.clone(), now(), None)
        .await
        .unwrap();
    assert_eq!(s.metering.quotas(user.id).await.unwrap(), quotas);
    let only = BTreeMap::from([(res(r), 1)]);
    s.metering
        .replace_quotas(user.id, only.clone(), now(), None)
        .await
        .unwrap();
    assert_eq!(s.metering.quotas(user.id).await.unwrap(), only);
    s.metering
        .replace_quotas(user.id, BTreeMap::new(), now(), None)
        .await
        .unwrap();
    assert!(s.metering.quotas(user.id).await.unwrap().is_empty());

    let d = Discount::from_ppm("d", 150_000).unwrap();
    let discounts = BTreeMap::from([(ResourceId::Any, d)]);
    s.metering
        .replace_discounts(user.id, discounts.clone(), now(), None)
        .await
        .unwrap();
    assert_eq!(s.metering.discounts(user.id).await.unwrap(), discounts);
    let ghost = Uuid::now_v7();
    assert_eq!(
        err(s
            .metering
            .replace_quotas(ghost, BTreeMap::new(), now(), None)
            .await),
        RepoError::NotFound
    );
    assert_eq!(
        err(s
            .metering
            .replace_discounts(ghost, discounts, now(), None)
            .await),
        RepoError::NotFound
    );
}

pub async fn rates_read_user_rows_and_tier_defaults(s: Stores) {
    let r = Uuid::now_v7();
    let tier_id = Uuid::now_v7();
    s.tiers
        .create(
            tier_id,
            TierSpec {
                name: Some(format!("tier-{tier_id}")),
                quotas: Some(BTreeMap::from([(ResourceId::Any, 20), (res(r), 30)])),
                rate_limits: None,
            },
            now(),
            None,
        )
        .await
        .unwrap();
    let mut new = new_user();
    new.tier_id = Some(tier_id);
    let user = create(&s, new).await;
    let d = Discount::from_ppm("d", 1).unwrap();
    s.metering
        .replace_quotas(user.id, BTreeMap::from([(ResourceId::Any, 2)]), now(), None)
        .await
        .unwrap();
    s.metering
        .replace_discounts(user.id, BTreeMap::from([(res(r), d)]), now(), None)
        .await
        .unwrap();
    let rates = s.metering.rates(user.id, &res(r)).await.unwrap();
    assert_eq!(rates.user_quota, None);
    assert_eq!(rates.user_wildcard_quota, Some(2));
    assert_eq!(rates.tier_quota, Some(30));
    assert_eq!(rates.tier_wildcard_quota, Some(20));
    assert_eq!(rates.user_discount, Some(d));
    assert_eq!(rates.user_wildcard_discount, None);
    let nobody = s.metering.rates(Uuid::now_v7(), &res(r)).await.unwrap();
    assert_eq!(nobody, Default::default());
    // The consumer look-up: the same user and the same rates, in one call.
    for resource in [res(r), ResourceId::Any, res(Uuid::now_v7())] {
        let (found, rates) = s.metering.consumer(user.id, &resource).await.unwrap();
        assert_eq!(found, s.users.get(user.id).await.unwrap());
        assert_eq!(rates, s.metering.rates(user.id, &resource).await.unwrap());
    }
    assert_eq!(
        err(s.metering.consumer(Uuid::now_v7(), &res(r)).await),
        RepoError::NotFound
    );
}

pub async fn consumption_uses_quota_then_balance_then_refuses(s: Stores) {
    let user = create(&s, new_user()).await;
    let w = only_wallet(&s, user.id).await;
    apply(&s, change(w.id, 15, None)).await;
    let mode = metered(2, CounterKey::Shared);
    let r = res(Uuid::now_v7());
    for used in 1..=2 {
        let out = s
            .metering
            .consume(consumption(user.id, r.clone(), mode, 10))
            .await
            .unwrap();
        assert_eq!(
            (out.source, out.quota_used, out.amount_charged),
            (Source::Quota, used, 0)
        );
    }
    let c = consumption(user.id, r.clone(), mode, 10);
    let entry_id = c.entry_id;
    let out = s.metering.consume(c).await.unwrap();
    assert_eq!(out.source, Source::Balance);
    assert_eq!((out.amount_charged, out.balance_after), (10, Some(5)));
    assert_eq!(out.entry_id, Some(entry_id));
    // 5 left, the call costs 10: refused, nothing changes.
    assert_eq!(
        err(s
            .metering
            .consume(consumption(user.id, r.clone(), mode, 10))
            .await),
        RepoError::Conflict(Conflict::InsufficientFunds)
    );
    let entries = assert_ledger_matches(&s, w.id).await;
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].kind, EntryKind::Usage);
    assert_eq!(entries[0].amount, -10);
    let day = day_of(now());
    assert_eq!(
        s.metering
            .counter(user.id, CounterKey::Shared, day)
            .await
            .unwrap(),
        2
    );
    let page = s.metering.usage(user.id, all(10)).await.unwrap();
    assert_eq!(page.total, 1);
    let item = &page.items[0];
    assert_eq!(
        (
            item.count,
            item.amount,
            item.input_tokens,
            item.output_tokens
        ),
        (3, 10, 9, 12)
    );
    // A zero-cost call past the quota still needs a positive balance.
    apply(&s, change(w.id, -5, None)).await;
    assert_eq!(
        err(s.metering.consume(consumption(user.id, r, mode, 0)).await),
        RepoError::Conflict(Conflict::InsufficientFunds)
    );
}

pub async fn invoiced_consumption_goes_negative_and_free_is_never_charged(s: Stores) {
    let user = create(&s, new_user()).await;
    s.users
        .set_invoicing(user.id, true, false, now(), None)
        .await
        .unwrap();
    let w = only_wallet(&s, user.id).await;
    let r = res(Uuid::now_v7());
    let out = s
        .metering
        .consume(consumption(
            user.id,
            r.clone(),
            ConsumptionMode::Invoice,
            40,
        ))
        .await
        .unwrap();
    assert_eq!(
        (out.source, out.balance_after),
        (Source::Invoice, Some(-40))
    );
    assert_ledger_matches(&s, w.id).await;
    let out = s
        .metering
        .consume(consumption(user.id, r, ConsumptionMode::Free, 40))
        .await
        .unwrap();
    assert_eq!(
        (out.source, out.amount_charged, out.entry_id),
        (Source::Free, 0, None)
    );
    let page = s.metering.usage(user.id, all(10)).await.unwrap();
    assert_eq!((page.items[0].count, page.items[0].amount), (2, 40));
    assert_eq!(
        err(s
            .metering
            .consume(consumption(
                Uuid::now_v7(),
                ResourceId::Any,
                ConsumptionMode::Free,
                0
            ))
            .await),
        RepoError::NotFound
    );
}

pub async fn invoiced_consumption_opens_a_missing_default_wallet(s: Stores) {
    let user = create(&s, new_user()).await;
    s.users
        .set_invoicing(user.id, true, false, now(), None)
        .await
        .unwrap();
    let old = only_wallet(&s, user.id).await;
    s.wallets.delete(old.id, now(), None).await.unwrap();
    let c = consumption(user.id, ResourceId::Any, ConsumptionMode::Invoice, 25);
    let opened = c.new_wallet_id;
    let out = s.metering.consume(c).await.unwrap();
    assert_eq!(
        (out.source, out.amount_charged, out.balance_after),
        (Source::Invoice, 25, Some(-25))
    );
    let wallet = s.wallets.get(opened).await.unwrap();
    assert!(wallet.is_default && wallet.allow_negative);
    assert_eq!(wallet.balance, -25);
    assert_eq!(assert_ledger_matches(&s, opened).await.len(), 1);
    let page = s.metering.usage(user.id, all(10)).await.unwrap();
    assert_eq!((page.items[0].count, page.items[0].amount), (1, 25));
}

pub async fn keyed_consumption_replays_its_first_decision(s: Stores) {
    let payer = create(&s, new_user()).await;
    let caller = create(&s, new_user()).await;
    let mode = metered(1, CounterKey::Shared);
    let keyed = |fingerprint: &str| {
        let mut c = consumption(payer.id, ResourceId::Any, mode, 0);
        c.idempotency = Some(IdempotencyClaim {
            scope: caller.id,
            key: "k-1".into(),
            fingerprint: fingerprint.into(),
        });
        c
    };
    let first = s.metering.consume(keyed("a")).await.unwrap();
    assert!(!first.replayed);
    let again = s.metering.consume(keyed("a")).await.unwrap();
    assert!(again.replayed);
    assert_eq!(
        (again.source, again.quota_used),
        (first.source, first.quota_used)
    );
    assert_eq!(
        err(s.metering.consume(keyed("b")).await),
        RepoError::Conflict(Conflict::IdempotencyMismatch)
    );
    assert_eq!(
        s.metering.usage(payer.id, all(10)).await.unwrap().items[0].count,
        1
    );
}

pub async fn usage_pages_group_and_filter(s: Stores) {
    let user = create(&s, new_user()).await;
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let hour = hour_of(now());
    let earlier = hour - time::Duration::hours(3);
    for (r, bucket) in [(a, hour), (b, hour), (a, earlier)] {
        let mut c = consumption(user.id, res(r), ConsumptionMode::Free, 0);
        c.bucket = bucket;
        s.metering.consume(c).await.unwrap();
    }
    let page = s.metering.usage(user.id, all(10)).await.unwrap();
    assert_eq!(page.total, 3);
    assert_eq!(page.items[2].bucket, earlier);
    let mut grouped = all(1);
    grouped.per_resource = false;
    let page = s.metering.usage(user.id, grouped.clone()).await.unwrap();
    assert_eq!((page.total, page.items.len()), (2, 1));
    assert_eq!(
        (
            page.items[0].bucket,
            page.items[0].count,
            page.items[0].resource.clone()
        ),
        (hour, 2, None)
    );
    grouped.offset = 1;
    let page = s.metering.usage(user.id, grouped).await.unwrap();
    assert_eq!(page.items[0].bucket, earlier);
    let mut filtered = all(10);
    filtered.resource = Some(res(a));
    filtered.start = Some(hour);
    let page = s.metering.usage(user.id, filtered).await.unwrap();
    assert_eq!(
        (page.total, page.items[0].resource.clone()),
        (1, Some(res(a)))
    );
}

pub async fn purge_removes_metering_rows(s: Stores) {
    let user = create(&s, new_user()).await;
    s.metering
        .replace_quotas(user.id, BTreeMap::from([(ResourceId::Any, 1)]), now(), None)
        .await
        .unwrap();
    s.metering
        .consume(consumption(
            user.id,
            ResourceId::Any,
            metered(1, CounterKey::Shared),
            0,
        ))
        .await
        .unwrap();
    s.users.purge(user.id, None).await.unwrap();
    assert!(s.metering.quotas(user.id).await.unwrap().is_empty());
    assert_eq!(s.metering.usage(user.id, all(10)).await.unwrap().total, 0);
    let day = day_of(now());
    assert_eq!(
        s.metering
            .counter(user.id, CounterKey::Shared, day)
            .await
            .unwrap(),
        0
    );
}

pub async fn concurrent_consumption_is_exact(s: Stores) {
    let user = create(&s, new_user()).await;
    let w = only_wallet(&s, user.id).await;
    apply(&s, change(w.id, 20 * 7, None)).await;
    let r = Uuid::now_v7();
    let mode = metered(10, CounterKey::Resource(r));
    let tasks: Vec<_> = (0..60)
        .map(|_| {
            let s = s.clone();
            let c = consumption(user.id, res(r), mode, 7);
            tokio::spawn(async move { s.metering.consume(c).await })
        })
        .collect();
    let (mut quota, mut paid, mut refused) = (0, 0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(out) if out.source == Source::Quota => quota += 1,
            Ok(out) if out.source == Source::Balance => paid += 1,
            Ok(out) => panic!("unexpected {out:?}"),
            Err(e) => {
                assert_eq!(e, RepoError::Conflict(Conflict::InsufficientFunds));
                refused += 1;
            }
        }
    }
    assert_eq!((quota, paid, refused), (10, 20, 30));
    assert_eq!(only_wallet(&s, user.id).await.balance, 0);
    assert_eq!(assert_ledger_matches(&s, w.id).await.len(), 21);
    let day = day_of(now());
    assert_eq!(
        s.metering
            .counter(user.id, CounterKey::Resource(r), day)
            .await
            .unwrap(),
        10
    );
    assert_eq!(
        s.metering.usage(user.id, all(10)).await.unwrap().items[0].count,
        30
    );
}
