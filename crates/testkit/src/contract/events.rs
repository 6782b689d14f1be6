//! Contract cases of the event outbox ([`EventRepository`](tessera_domain::ports::EventRepository))
//! and the webhook queue ([`WebhookRepository`](tessera_domain::ports::WebhookRepository)):
//! events written with their change and never without it, ledger and threshold events, the
//! once-a-day quota event, a feed a stored cursor reads exactly once while writers run, fan-out
//! by subscription, exclusive claims, leases, stale records and disabling.

use std::collections::{BTreeMap, HashSet};

use tessera_domain::model::{
    Attempt, AttemptRecord, AuditAction, AuditEvent, ClaimedDelivery, ConsumptionMode, CounterKey,
    DeliveryQuery, DeliveryStatus, EndpointPayload, Event, EventPayload, EventType, FeedCursor,
    FeedEvent, FeedQuery, NewEndpoint, NextStep, QuotaOrigin, QuotaPayload, Recorded, Redelivery,
    ResolvedQuota, ResourceId, SealedSecret, ThresholdOwner, WebhookEndpoint,
};
use tessera_domain::ports::RepoError;
use tessera_domain::Conflict;
use time::Duration;
use uuid::Uuid;

use super::metering::consumption;
use super::tiers::new_tier;
use super::{apply, change, keyed, money_event, only_wallet, transfer};
use super::{create, err, new_user, now, Stores, UserBuilder};

// ---------------------------------------------------------------------------------------------
// Helpers

/// The whole feed from the start, read in pages of `page` events.
pub async fn feed_from(s: &Stores, after: FeedCursor, page: u32) -> (Vec<FeedEvent>, FeedCursor) {
    let mut out = Vec::new();
    let mut cursor = after;
    loop {
        let read = s
            .events
            .feed(FeedQuery {
                after: cursor,
                types: vec![],
                subject: None,
                limit: page,
            })
            .await
            .expect("read the feed");
        let done = read.events.is_empty() && read.next == cursor;
        for e in &read.events {
            assert!(
                e.cursor > cursor,
                "cursors grow: {:?} after {cursor:?}",
                e.cursor
            );
        }
        cursor = read.next;
        out.extend(read.events);
        if done {
            return (out, cursor);
        }
    }
}

/// The change a feed marker records.
const MARKER: &str = "feed_marker";

/// Every event in the feed, in feed order, once everything written before the call is
/// readable. PostgreSQL hands out an event only when every transaction that started writing
/// before it has finished — on the whole cluster, so other tests' transactions delay it — so
/// this writes a marker event and reads until the marker appears: the feed is in commit order,
/// so everything committed before is there too. Markers are left out of the answer.
pub async fn all_events(s: &Stores) -> Vec<Event> {
    let mut marked = new_user();
    let marker = AuditEvent {
        id: Uuid::now_v7(),
        at: now(),
        actor_id: None,
        target_id: Some(marked.id),
        action: AuditAction::UserCreated,
        changes: BTreeMap::from([(
            MARKER.to_owned(),
            tessera_domain::model::FieldChange {
                before: None,
                after: Some("1".into()),
            },
        )]),
    };
    marked.audit = Some(marker.clone());
    create(s, marked).await;
    for _ in 0..600 {
        let events: Vec<Event> = feed_from(s, FeedCursor::START, 7)
            .await
            .0
            .into_iter()
            .map(|e| e.event)
            .collect();
        if events.iter().any(|e| e.id == marker.id) {
            return events.into_iter().filter(|e| !is_marker(e)).collect();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the feed never showed the marker event");
}

fn is_marker(e: &Event) -> bool {
    matches!(&e.payload, EventPayload::Changes(c) if c.changes.contains_key(MARKER))
}

/// Fans out until `n` events were consumed (they become readable as concurrent transactions
/// end); returns how many were.
async fn fan_out_at_least(s: &Stores, n: u64) -> u64 {
    let mut total = 0;
    for _ in 0..600 {
        total += fan_out_all(s).await;
        if total >= n {
            return total;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    total
}

fn of_type(events: &[Event], t: EventType) -> Vec<&Event> {
    events.iter().filter(|e| e.event_type == t).collect()
}

fn ledger(e: &Event) -> &tessera_domain::model::LedgerPayload {
    match &e.payload {
        EventPayload::Ledger(l) => l,
        other => panic!("not a ledger payload: {other:?}"),
    }
}

fn quota_event(user: Uuid, resource: &ResourceId, limit: u64) -> Event {
    Event {
        id: Uuid::now_v7(),
        event_type: EventType::QuotaExhausted,
        occurred_at: now(),
        subject_id: Some(user),
        actor_id: Some(user),
        payload: EventPayload::Quota(QuotaPayload {
            resource_id: resource.to_string(),
            counter: "*".into(),
            day: now().date().to_string(),
            quota: limit,
        }),
    }
}

fn metered(limit: u64, counter: CounterKey) -> ConsumptionMode {
    ConsumptionMode::Metered(ResolvedQuota {
        limit,
        counter,
        origin: QuotaOrigin::UserWildcard,
    })
}

/// An endpoint subscribed to `types` (empty: all).
pub fn new_endpoint(types: &[EventType], enabled: bool) -> NewEndpoint {
    let t = now();
    NewEndpoint {
        endpoint: WebhookEndpoint {
            id: Uuid::now_v7(),
            url: format!("https://hooks.example.com/{}", Uuid::new_v4().simple()),
            description: "contract".into(),
            event_types: types.to_vec(),
            enabled,
            disabled_reason: None,
            failing_since: None,
            previous_secret_expires_at: None,
            created_at: t,
            updated_at: t,
        },
        secret: SealedSecret(b"sealed secret bytes".to_vec()),
    }
}

/// Fans out until nothing is left; returns how many events were consumed.
async fn fan_out_all(s: &Stores) -> u64 {
    let mut total = 0;
    loop {
        let n = s.webhooks.fan_out(50, now()).await.expect("fan out");
        if n == 0 {
            return total;
        }
        total += n;
    }
}

fn record(claimed: &ClaimedDelivery, status: Option<u16>, next: NextStep) -> AttemptRecord {
    AttemptRecord {
        delivery_id: claimed.delivery_id,
        claim: claimed.claim,
        endpoint_id: claimed.endpoint_id,
        attempt: Attempt {
            id: Uuid::now_v7(),
            delivery_id: claimed.delivery_id,
            attempted_at: now(),
            duration_ms: 12,
            status_code: status,
            error: status
                .filter(|c| *c >= 300)
                .map(|c| format!("the endpoint answered {c}")),
            response_excerpt: Some("ok".into()),
        },
        next,
        disable: None,
        failing_since: claimed.failing_since,
    }
}

fn user_event(actor: Uuid, target: Uuid, action: AuditAction) -> AuditEvent {
    money_event(Some(actor), target, action)
}

// ---------------------------------------------------------------------------------------------
// Cases

/// An audited change writes its event with it — same id, time, subject and actor as the audit
/// record — and a change that fails, is refused or is replayed writes none.
pub async fn changes_write_their_events_and_failed_changes_none(s: Stores) {
    let admin = create(&s, new_user()).await;
    assert_eq!(all_events(&s).await, vec![]);

    let mut fresh = new_user();
    let created = user_event(admin.id, fresh.id, AuditAction::UserCreated);
    fresh.audit = Some(created.clone());
    let taken = fresh.username.clone();
    let user = create(&s, fresh).await;
    let events = all_events(&s).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e.id, created.id);
    assert_eq!(e.event_type, EventType::UserCreated);
    assert_eq!(e.subject_id, Some(user.id));
    assert_eq!(e.actor_id, Some(admin.id));
    assert_eq!(e.occurred_at, created.at);
    match &e.payload {
        EventPayload::Changes(c) => assert_eq!(c.changes, created.changes),
        other => panic!("{other:?}"),
    }

    // A duplicate name: refused, no event.
    let mut dup = new_user().username(taken);
    dup.audit = Some(user_event(admin.id, dup.id, AuditAction::UserCreated));
    assert!(matches!(
        err(s.users.create(dup).await),
        RepoError::Conflict(_)
    ));
    // A debit the balance does not cover: refused, no event.
    let w = only_wallet(&s, user.id).await;
    let refused = user_event(admin.id, user.id, AuditAction::WalletAdjusted);
    let mut debit = change(w.id, -100, Some(admin.id));
    debit.audit = Some(refused);
    assert_eq!(
        err(s.wallets.apply(debit).await),
        RepoError::Conflict(Conflict::InsufficientFunds)
    );
    assert_eq!(all_events(&s).await.len(), 1);

    // A keyed credit replayed: one entry, one event.
    let credit = keyed(change(w.id, 250, Some(admin.id)), admin.id, "credit-1");
    apply(&s, credit.clone()).await;
    apply(&s, credit).await;
    let events = all_events(&s).await;
    assert_eq!(of_type(&events, EventType::WalletCredited).len(), 1);
    assert_eq!(events.len(), 2, "{events:?}");
}

/// Every ledger entry writes `wallet.credited` or `wallet.debited` about the wallet's owner,
/// with the entry, the amount and the balance after; a transfer writes one of each.
pub async fn ledger_entries_write_wallet_events_with_the_balance(s: Stores) {
    let admin = create(&s, new_user()).await;
    let ada = create(&s, new_user()).await;
    let bob = create(&s, new_user()).await;
    let wa = only_wallet(&s, ada.id).await;
    let wb = only_wallet(&s, bob.id).await;

    let posted = apply(&s, change(wa.id, 700, Some(admin.id))).await;
    let events = all_events(&s).await;
    let credited = of_type(&events, EventType::WalletCredited);
    assert_eq!(credited.len(), 1);
    let c = credited[0];
    assert_eq!(c.subject_id, Some(ada.id));
    assert_eq!(c.actor_id, Some(admin.id));
    let l = ledger(c);
    assert_eq!(l.entry_id, posted.entry.id);
    assert_eq!(l.wallet_id, wa.id);
    assert_eq!((l.amount, l.balance_after), (700, 700));
    assert_eq!(l.currency, "usd");
    assert_eq!(l.kind, "adjustment");
    assert_eq!(l.transfer_id, None);

    let t = transfer(wa.id, wb.id, 200, Some(ada.id));
    s.wallets.transfer(t.clone()).await.expect("transfer");
    let events = all_events(&s).await;
    let debited = of_type(&events, EventType::WalletDebited);
    assert_eq!(debited.len(), 1);
    let d = ledger(debited[0]);
    assert_eq!(debited[0].subject_id, Some(ada.id));
    assert_eq!((d.amount, d.balance_after), (-200, 500));
    assert_eq!(d.transfer_id, Some(t.transfer_id));
    assert_eq!(d.entry_id, t.debit_entry_id);
    let credited = of_type(&events, EventType::WalletCredited);
    assert_eq!(credited.len(), 2);
    let to_bob = credited
        .iter()
        .find(|e| e.subject_id == Some(bob.id))
        .expect("bob's credit");
    assert_eq!(ledger(to_bob).balance_after, 200);
    assert_eq!(ledger(to_bob).entry_id, t.credit_entry_id);
}

/// `balance.below_threshold` fires when a debit takes the balance from at or above a threshold
/// to below it: once per crossing, again only after the balance rose back. A user's own
/// thresholds override the tier's; the tier's apply to its members without their own.
pub async fn balance_thresholds_fire_once_per_crossing(s: Stores) {
    let gold = new_tier(&s, "gold-thresholds").await;
    let ada = create(&s, new_user().tier_id(gold.id)).await;
    let bob = create(&s, new_user().tier_id(gold.id)).await;
    s.metering
        .replace_balance_thresholds(
            ThresholdOwner::Tier(gold.id),
            BTreeMap::from([("usd".to_owned(), 500)]),
            None,
        )
        .await
        .unwrap();
    s.metering
        .replace_balance_thresholds(
            ThresholdOwner::User(ada.id),
            BTreeMap::from([("usd".to_owned(), 1000)]),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        s.metering
            .balance_thresholds(ThresholdOwner::User(ada.id))
            .await
            .unwrap(),
        BTreeMap::from([("usd".to_owned(), 1000)])
    );
    let wa = only_wallet(&s, ada.id).await;
    for amount in [2000, -500, -600, -100, 500, -400] {
        // 2000, 1500, 900 (crosses 1000), 800, 1300, 900 (crosses again)
        apply(&s, change(wa.id, amount, None)).await;
    }
    let events = all_events(&s).await;
    let below: Vec<_> = of_type(&events, EventType::BalanceBelowThreshold)
        .into_iter()
        .filter(|e| e.subject_id == Some(ada.id))
        .collect();
    assert_eq!(below.len(), 2, "{below:?}");
    for e in &below {
        match &e.payload {
            EventPayload::Balance(b) => {
                assert_eq!((b.threshold, b.balance), (1000, 900));
                assert_eq!(b.wallet_id, wa.id);
            }
            other => panic!("{other:?}"),
        }
    }

    // Bob has no thresholds of his own: the tier's 500 applies.
    let wb = only_wallet(&s, bob.id).await;
    apply(&s, change(wb.id, 800, None)).await;
    apply(&s, change(wb.id, -200, None)).await; // 600: above
    apply(&s, change(wb.id, -200, None)).await; // 400: crosses 500
    let events = all_events(&s).await;
    let below: Vec<_> = of_type(&events, EventType::BalanceBelowThreshold)
        .into_iter()
        .filter(|e| e.subject_id == Some(bob.id))
        .collect();
    assert_eq!(below.len(), 1, "{below:?}");

    // Clearing the user's own thresholds: the tier's apply again.
    s.metering
        .replace_balance_thresholds(ThresholdOwner::User(ada.id), BTreeMap::new(), None)
        .await
        .unwrap();
    apply(&s, change(wa.id, -500, None)).await; // 400: crosses the tier's 500
    let events = all_events(&s).await;
    let last = of_type(&events, EventType::BalanceBelowThreshold)
        .into_iter()
        .rfind(|e| e.subject_id == Some(ada.id))
        .expect("a crossing");
    match &last.payload {
        EventPayload::Balance(b) => assert_eq!((b.threshold, b.balance), (500, 400)),
        other => panic!("{other:?}"),
    }

    // Unknown owners are not found.
    assert_eq!(
        err(s
            .metering
            .replace_balance_thresholds(ThresholdOwner::User(Uuid::now_v7()), BTreeMap::new(), None)
            .await),
        RepoError::NotFound
    );
}

/// `quota.exhausted` is written by the first call of a day the quota does not cover — also
/// when the balance then refuses it — and only once per user, counter and day.
pub async fn quota_exhaustion_is_written_once_per_counter_and_day(s: Stores) {
    let ada = create(&s, new_user()).await;
    let r = ResourceId::Id(Uuid::now_v7());
    let mode = metered(1, CounterKey::Shared);
    let call = |charge| {
        let mut c = consumption(ada.id, r.clone(), mode, charge);
        c.exhaustion = Some(quota_event(ada.id, &r, 1));
        c
    };
    // Within the quota: nothing.
    s.metering.consume(call(10)).await.expect("within quota");
    assert_eq!(
        of_type(&all_events(&s).await, EventType::QuotaExhausted).len(),
        0
    );
    // Past it with an empty wallet: refused, and the quota is reported spent.
    let first = call(10);
    let first_id = first.exhaustion.as_ref().map(|e| e.id);
    assert_eq!(
        err(s.metering.consume(first).await),
        RepoError::Conflict(Conflict::InsufficientFunds)
    );
    // Refused again, then paid from the balance: still one event.
    assert!(s.metering.consume(call(10)).await.is_err());
    let w = only_wallet(&s, ada.id).await;
    apply(&s, change(w.id, 100, None)).await;
    s.metering.consume(call(10)).await.expect("paid");
    let events = all_events(&s).await;
    let exhausted = of_type(&events, EventType::QuotaExhausted);
    assert_eq!(exhausted.len(), 1, "{exhausted:?}");
    assert_eq!(Some(exhausted[0].id), first_id);
    assert_eq!(exhausted[0].subject_id, Some(ada.id));

    // Another counter runs out on its own.
    let own = metered(0, CounterKey::Resource(Uuid::now_v7()));
    let mut c = consumption(ada.id, r.clone(), own, 10);
    c.exhaustion = Some(quota_event(ada.id, &r, 1));
    s.metering.consume(c).await.expect("paid");
    assert_eq!(
        of_type(&all_events(&s).await, EventType::QuotaExhausted).len(),
        2
    );
}

/// A consumer that stores its cursor sees every event exactly once and in feed order, even
/// while writers commit concurrently; filters by type and subject keep that order; pruning
/// removes old events only.
pub async fn a_stored_cursor_reads_every_event_once_while_writers_run(s: Stores) {
    const WRITERS: usize = 6;
    const EACH: usize = 20;
    let mut wallets = Vec::new();
    for _ in 0..WRITERS {
        let u = create(&s, new_user()).await;
        wallets.push((u.id, only_wallet(&s, u.id).await.id));
    }
    let writers: Vec<_> = wallets
        .iter()
        .map(|&(_, w)| {
            let s = s.clone();
            tokio::spawn(async move {
                for _ in 0..EACH {
                    apply(&s, change(w, 1, None)).await;
                }
            })
        })
        .collect();
    // The consumer reads while they write, continuing from where it stopped.
    let mut seen: Vec<FeedEvent> = Vec::new();
    let mut cursor = FeedCursor::START;
    while !writers.iter().all(|w| w.is_finished()) {
        let (page, next) = feed_from(&s, cursor, 5).await;
        seen.extend(page);
        cursor = next;
        tokio::task::yield_now().await;
    }
    for w in writers {
        w.await.unwrap();
    }
    for _ in 0..600 {
        let (rest, next) = feed_from(&s, cursor, 5).await;
        seen.extend(rest);
        cursor = next;
        if seen.len() >= WRITERS * EACH {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let ids: Vec<Uuid> = seen.iter().map(|e| e.event.id).collect();
    let unique: HashSet<Uuid> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "an event was read twice");
    assert_eq!(ids.len(), WRITERS * EACH);
    // The same order as one read of the whole feed afterwards.
    let whole: Vec<Uuid> = all_events(&s).await.iter().map(|e| e.id).collect();
    assert_eq!(ids, whole);

    // Filters keep the order.
    let (ada, _) = wallets[0];
    let filtered = s
        .events
        .feed(FeedQuery {
            after: FeedCursor::START,
            types: vec![EventType::WalletCredited],
            subject: Some(ada),
            limit: 1000,
        })
        .await
        .unwrap();
    let expected: Vec<Uuid> = seen
        .iter()
        .filter(|e| e.event.subject_id == Some(ada))
        .map(|e| e.event.id)
        .collect();
    assert_eq!(
        filtered
            .events
            .iter()
            .map(|e| e.event.id)
            .collect::<Vec<_>>(),
        expected
    );
    assert_eq!(expected.len(), EACH);
    let none = s
        .events
        .feed(FeedQuery {
            after: FeedCursor::START,
            types: vec![EventType::UserPurged],
            subject: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert!(none.events.is_empty());

    // Pruning: nothing is older than an hour ago; everything is older than a minute ahead.
    assert_eq!(
        s.events
            .prune_events(now() - Duration::hours(1), 1000)
            .await
            .unwrap(),
        0
    );
    let mut pruned = 0;
    loop {
        let n = s
            .events
            .prune_events(now() + Duration::minutes(1), 50)
            .await
            .unwrap();
        assert!(n <= 50);
        pruned += n;
        if n == 0 {
            break;
        }
    }
    // The writers' events and the marker `all_events` wrote.
    assert_eq!(pruned, (WRITERS * EACH) as u64 + 1);
    assert_eq!(all_events(&s).await, vec![]);
}

/// Fan-out makes one delivery per event and enabled endpoint that subscribes to its type and
/// was registered before the event occurred, once even when several workers fan out at once; concurrent claims never hand out the same
/// delivery twice.
pub async fn fan_out_follows_subscriptions_and_claims_are_exclusive(s: Stores) {
    // What happened before an endpoint was registered is not sent to it.
    let early = create(&s, new_user()).await;
    let early_wallet = only_wallet(&s, early.id).await;
    apply(&s, change(early_wallet.id, 1, None)).await;
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    let credits = s
        .webhooks
        .create_endpoint(new_endpoint(&[EventType::WalletCredited], true), None)
        .await
        .unwrap();
    let all = s
        .webhooks
        .create_endpoint(new_endpoint(&[], true), None)
        .await
        .unwrap();
    let off = s
        .webhooks
        .create_endpoint(new_endpoint(&[], false), None)
        .await
        .unwrap();
    assert_eq!(s.webhooks.count_endpoints().await.unwrap(), 3);
    assert_eq!(
        s.webhooks
            .endpoints()
            .await
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect::<Vec<_>>(),
        vec![credits.id, all.id, off.id]
    );

    let ada = create(&s, new_user()).await;
    let w = only_wallet(&s, ada.id).await;
    for _ in 0..15 {
        apply(&s, change(w.id, 2, None)).await;
    }
    for _ in 0..5 {
        apply(&s, change(w.id, -1, None)).await;
    }
    // Three workers fan out at once.
    let fanning: Vec<_> = (0..3)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { fan_out_all(&s).await })
        })
        .collect();
    let mut consumed = 0;
    for f in fanning {
        consumed += f.await.unwrap();
    }
    if consumed < 21 {
        consumed += fan_out_at_least(&s, 21 - consumed).await;
    }
    assert_eq!(consumed, 21);
    assert_eq!(fan_out_all(&s).await, 0);

    let count = |endpoint_id| {
        let s = s.clone();
        async move {
            s.webhooks
                .deliveries(DeliveryQuery {
                    endpoint_id,
                    status: Some(DeliveryStatus::Pending),
                    event_id: None,
                    before: None,
                    limit: 1000,
                })
                .await
                .unwrap()
                .len()
        }
    };
    assert_eq!(count(credits.id).await, 15);
    assert_eq!(count(all.id).await, 20);
    assert_eq!(count(off.id).await, 0);
    assert_eq!(s.webhooks.stats(now()).await.unwrap().pending, 35);

    // Four workers claim at once, in small batches, until nothing is due.
    let lease = now() + Duration::seconds(60);
    let claimers: Vec<_> = (0..4)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let batch = s.webhooks.claim(4, now(), lease).await.unwrap();
                    if batch.is_empty() {
                        return got;
                    }
                    got.extend(batch);
                }
            })
        })
        .collect();
    let mut claimed = Vec::new();
    for c in claimers {
        claimed.extend(c.await.unwrap());
    }
    let ids: HashSet<Uuid> = claimed.iter().map(|c| c.delivery_id).collect();
    assert_eq!(ids.len(), claimed.len(), "a delivery was claimed twice");
    assert_eq!(claimed.len(), 35);
    for c in &claimed {
        assert_eq!(c.attempt, 1);
        assert_eq!(
            c.secrets,
            vec![SealedSecret(b"sealed secret bytes".to_vec())]
        );
        assert!(c.endpoint_id == credits.id || c.endpoint_id == all.id);
        if c.endpoint_id == credits.id {
            assert_eq!(c.event.event_type, EventType::WalletCredited);
            assert_eq!(c.url, credits.url);
        }
    }
}

/// A claim is a lease: while it runs nobody else gets the delivery, after it ends another
/// worker does, and then the first worker's record is ignored. A failure schedules the retry;
/// a success ends the delivery; a failure that disables the endpoint writes its event and stops
/// its deliveries (pending ones fail with it) — once, however many workers decide it;
/// redelivery queues an event again.
pub async fn leases_stale_records_retries_and_disabling(s: Stores) {
    let ep = s
        .webhooks
        .create_endpoint(new_endpoint(&[EventType::WalletCredited], true), None)
        .await
        .unwrap();
    let ada = create(&s, new_user()).await;
    let w = only_wallet(&s, ada.id).await;
    apply(&s, change(w.id, 5, None)).await;
    assert_eq!(fan_out_at_least(&s, 1).await, 1);

    let t0 = now();
    let first = s
        .webhooks
        .claim(10, t0, t0 + Duration::seconds(30))
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    let first = first.into_iter().next().unwrap();
    // Leased: nobody else gets it.
    assert!(s
        .webhooks
        .claim(10, t0 + Duration::seconds(1), t0 + Duration::seconds(31))
        .await
        .unwrap()
        .is_empty());
    // The lease ran out (the worker died): another worker takes it over.
    let later = t0 + Duration::seconds(31);
    let second = s
        .webhooks
        .claim(10, later, later + Duration::seconds(30))
        .await
        .unwrap();
    assert_eq!(second.len(), 1);
    let second = second.into_iter().next().unwrap();
    assert_eq!(second.delivery_id, first.delivery_id);
    assert_ne!(second.claim, first.claim);
    assert_eq!(second.event.id, first.event.id);
    // The first worker's late record is ignored; the second one's counts.
    assert!(
        !s.webhooks
            .record_attempt(record(&first, Some(200), NextStep::Delivered))
            .await
            .unwrap()
            .applied
    );
    let retry_at = later + Duration::seconds(5);
    assert!(
        s.webhooks
            .record_attempt(record(&second, Some(503), NextStep::RetryAt(retry_at)))
            .await
            .unwrap()
            .applied
    );
    let (d, attempts) = s.webhooks.delivery(ep.id, first.delivery_id).await.unwrap();
    assert_eq!(d.status, DeliveryStatus::Pending);
    assert_eq!(d.next_attempt_at, Some(retry_at));
    assert_eq!(d.last_status_code, Some(503));
    assert_eq!(attempts.len(), 1);
    assert!(s
        .webhooks
        .endpoint(ep.id)
        .await
        .unwrap()
        .failing_since
        .is_some());
    // Not due before the retry time; due after it.
    assert!(s
        .webhooks
        .claim(
            10,
            later + Duration::seconds(1),
            later + Duration::seconds(60)
        )
        .await
        .unwrap()
        .is_empty());
    let third = s
        .webhooks
        .claim(10, retry_at, retry_at + Duration::seconds(30))
        .await
        .unwrap()
        .into_iter()
        .next()
        .expect("due again");
    assert!(third.attempt >= 2);
    assert!(
        s.webhooks
            .record_attempt(record(&third, Some(204), NextStep::Delivered))
            .await
            .unwrap()
            .applied
    );
    let (d, attempts) = s.webhooks.delivery(ep.id, first.delivery_id).await.unwrap();
    assert_eq!(d.status, DeliveryStatus::Delivered);
    assert!(d.delivered_at.is_some());
    assert_eq!(attempts.len(), 2);
    assert_eq!(
        s.webhooks.endpoint(ep.id).await.unwrap().failing_since,
        None
    );

    // Redelivery of that event queues it again.
    let queued = s
        .webhooks
        .redeliver(ep.id, Redelivery::Event(first.event.id), 10, now())
        .await
        .unwrap();
    assert_eq!(queued.queued, 1);
    assert_eq!(
        err(s
            .webhooks
            .redeliver(ep.id, Redelivery::Event(Uuid::now_v7()), 10, now())
            .await),
        RepoError::NotFound
    );
    let again = s
        .webhooks
        .claim(
            10,
            now() + Duration::seconds(1),
            now() + Duration::seconds(60),
        )
        .await
        .unwrap()
        .into_iter()
        .next()
        .expect("queued again");
    assert_eq!(again.event.id, first.event.id);
    // It fails: the endpoint is failing from then on.
    let retry = now() + Duration::seconds(2);
    let recorded = s
        .webhooks
        .record_attempt(record(&again, Some(500), NextStep::RetryAt(retry)))
        .await
        .unwrap();
    assert_eq!(
        recorded,
        Recorded {
            applied: true,
            disabled: false
        }
    );
    let since = s
        .webhooks
        .endpoint(ep.id)
        .await
        .unwrap()
        .failing_since
        .expect("failing");
    // Two more deliveries; three workers each fail one and decide to disable the endpoint:
    // it is disabled once, with one event, and the other pending deliveries fail with it.
    apply(&s, change(w.id, 5, None)).await;
    apply(&s, change(w.id, 5, None)).await;
    assert_eq!(fan_out_at_least(&s, 2).await, 2);
    let t = now() + Duration::seconds(10);
    let claimed = s
        .webhooks
        .claim(10, t, t + Duration::seconds(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3);
    let disabled_event = |c: &ClaimedDelivery| Event {
        id: Uuid::now_v7(),
        event_type: EventType::WebhookEndpointDisabled,
        occurred_at: now(),
        subject_id: Some(ep.id),
        actor_id: None,
        payload: EventPayload::Endpoint(EndpointPayload {
            endpoint_id: ep.id,
            url: ep.url.clone(),
            failing_since: None,
            reason: format!("every delivery failed ({})", c.delivery_id),
        }),
    };
    let mut outcomes = Vec::new();
    let mut written = Vec::new();
    for c in &claimed {
        assert_eq!(c.failing_since, Some(since));
        let mut failed = record(c, None, NextStep::GiveUp);
        let event = disabled_event(c);
        written.push(event.clone());
        failed.disable = Some(event);
        outcomes.push(s.webhooks.record_attempt(failed).await.unwrap());
    }
    assert_eq!(
        outcomes.iter().filter(|r| r.disabled).count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes[0],
        Recorded {
            applied: true,
            disabled: true
        }
    );
    let ep_now = s.webhooks.endpoint(ep.id).await.unwrap();
    assert!(!ep_now.enabled);
    assert!(ep_now.disabled_reason.is_some());
    let events = all_events(&s).await;
    assert_eq!(
        of_type(&events, EventType::WebhookEndpointDisabled),
        vec![&written[0]]
    );
    let pending = s
        .webhooks
        .deliveries(DeliveryQuery {
            endpoint_id: ep.id,
            status: Some(DeliveryStatus::Pending),
            event_id: None,
            before: None,
            limit: 100,
        })
        .await
        .unwrap();
    assert!(pending.is_empty(), "{pending:?}");
    // A disabled endpoint gets no new deliveries and none are claimed for it.
    apply(&s, change(w.id, 5, None)).await;
    // The disabling event, the marker `all_events` wrote, and this credit.
    assert_eq!(fan_out_at_least(&s, 3).await, 3);
    assert_eq!(
        s.webhooks
            .deliveries(DeliveryQuery {
                endpoint_id: ep.id,
                status: Some(DeliveryStatus::Pending),
                event_id: None,
                before: None,
                limit: 100,
            })
            .await
            .unwrap(),
        vec![]
    );
    assert!(s
        .webhooks
        .claim(
            10,
            now() + Duration::seconds(120),
            now() + Duration::seconds(180)
        )
        .await
        .unwrap()
        .is_empty());
    // Deleting the endpoint removes it with its deliveries.
    s.webhooks.delete_endpoint(ep.id, None).await.unwrap();
    assert_eq!(err(s.webhooks.endpoint(ep.id).await), RepoError::NotFound);
}
