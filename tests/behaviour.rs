//! The behavioural suite of issue 2 §2, written once over `&dyn Store` and run against both
//! stores: the memory store (the reference model) and the Redis store (its own `redis-server`
//! per test). Every scenario asserts exact balances, allocations and reasons, and ends with a
//! conservation check of every grant.

mod common;

use std::collections::BTreeMap;

use common::requests::*;
use common::{CREDIT, DAY, SECOND, T0};
use creditd::error::Error;
use creditd::model::*;
use creditd::store::Store;

const A: &str = "acct-1";

common::suite!(
    a_subject_balance_lists_its_budgets_and_their_use,
    accounts_are_idempotent_and_conflict_on_other_params,
    grants_take_default_priorities_by_kind,
    grant_ids_are_idempotent,
    drawdown_goes_by_priority_then_expiry_then_age,
    pending_grants_count_from_effective_at,
    grants_stop_counting_exactly_at_expires_at,
    hold_on_an_expired_grant_returns_to_expired_when_the_hold_expires,
    holds_expire_after_their_ttl_via_reap,
    holds_expire_after_their_ttl_when_the_account_is_touched,
    commit_in_full_returns_the_rest,
    partial_captures_keep_the_hold_open,
    overrun_charge_draws_available_then_overage_then_debt,
    overrun_cap_never_charges_above_the_hold,
    late_commit_after_expiry_still_charges,
    release_and_its_typed_answers,
    extend_moves_the_expiry,
    debt_blocks_reserves_and_the_next_grant_pays_it,
    overage_on_off_and_monthly_cap,
    overage_resets_in_the_next_billing_period,
    suspended_account_is_denied,
    min_amount_accepts_a_smaller_hold,
    reserve_replay_returns_the_first_answer,
    voided_grant_stops_counting,
    quote_has_no_side_effects,
    amounts_near_2_pow_53_are_exact,
);

// ---- helpers ------------------------------------------------------------------------------------

async fn account(s: &dyn Store, req: CreateAccount) -> Account {
    s.create_account(req).await.expect("create_account")
}

async fn grant(s: &dyn Store, req: CreateGrant) -> Grant {
    s.create_grant(req).await.expect("create_grant")
}

async fn balance(s: &dyn Store) -> Balance {
    s.get_balance(A).await.expect("get_balance")
}

async fn grants(s: &dyn Store) -> BTreeMap<String, Grant> {
    s.list_grants(A)
        .await
        .expect("list_grants")
        .into_iter()
        .map(|g| (g.grant_id.clone(), g))
        .collect()
}

/// A granted reservation.
async fn hold(s: &dyn Store, req: Reserve) -> Reservation {
    let out = s.reserve(req.clone()).await.expect("reserve");
    assert_eq!(out.denial, None, "reserve {req:?} was denied: {out:?}");
    assert!(!out.replayed);
    out.reservation
        .expect("a granted reserve has a reservation")
}

/// A denied reserve: checks the reason and that nothing changed.
async fn denied(s: &dyn Store, req: Reserve, reason: DenialReason) {
    let before = balance(s).await;
    let out = s.reserve(req.clone()).await.expect("reserve");
    assert_eq!(out.denial, Some(reason), "reserve {req:?}: {out:?}");
    assert_eq!(out.reservation, None);
    assert!(!out.replayed);
    assert_eq!(out.balance, before, "a denial changed the balance");
    assert_eq!(balance(s).await, before);
    assert_eq!(
        s.get_reservation(A, &req.reservation_id).await,
        Err(Error::ReservationNotFound)
    );
}

fn alloc(grant_id: &str, held: Micros, committed: Micros) -> Allocation {
    Allocation {
        grant_id: grant_id.to_string(),
        held,
        committed,
    }
}

fn effect(charged: Micros, released: Micros, overrun: Micros, debt: Micros) -> CommitEffect {
    CommitEffect {
        charged,
        released,
        overrun,
        debt,
        late: false,
    }
}

/// (remaining, held, spent, expired, voided) of a grant.
fn buckets(g: &Grant) -> (Micros, Micros, Micros, Micros, Micros) {
    (g.remaining, g.held, g.spent, g.expired, g.voided)
}

fn reason_of<T: std::fmt::Debug>(r: Result<T, Error>) -> &'static str {
    r.expect_err("expected an error").reason()
}

/// An account with one 10-credit allowance `g1`.
async fn funded(s: &dyn Store) {
    account(s, new_account(A)).await;
    grant(s, new_grant(A, "g1", GrantKind::Allowance, 10 * CREDIT)).await;
}

// ---- accounts and grants --------------------------------------------------------------------

async fn accounts_are_idempotent_and_conflict_on_other_params(s: &dyn Store) {
    let first = account(s, new_account(A)).await;
    assert_eq!(first.account_id, A);
    assert_eq!(first.plan_id, "pro");
    assert_eq!(first.billing_anchor, T0);
    assert_eq!(first.created_at, T0);
    assert!(!first.overage_enabled && !first.suspended);

    s.advance_clock(5 * SECOND).await.unwrap();
    assert_eq!(account(s, new_account(A)).await, first, "replay");
    let other = CreateAccount {
        plan_id: "team".into(),
        ..new_account(A)
    };
    assert_eq!(
        reason_of(s.create_account(other).await),
        "IDEMPOTENCY_CONFLICT"
    );
    let other = CreateAccount {
        overage_enabled: true,
        ..new_account(A)
    };
    assert_eq!(
        reason_of(s.create_account(other).await),
        "IDEMPOTENCY_CONFLICT"
    );
    assert_eq!(s.get_account(A).await.unwrap(), first);

    assert_eq!(s.get_account("nobody").await, Err(Error::AccountNotFound));
    assert_eq!(s.get_balance("nobody").await, Err(Error::AccountNotFound));
    assert_eq!(s.list_grants("nobody").await, Err(Error::AccountNotFound));
    assert_eq!(
        reason_of(s.reserve(new_reserve("nobody", "r", CREDIT)).await),
        "ACCOUNT_NOT_FOUND"
    );

    let b = balance(s).await;
    assert_eq!(b.account_id, A);
    assert_eq!(
        (b.available, b.held, b.granted_remaining, b.debt),
        (0, 0, 0, 0)
    );
    assert_eq!((b.period_start, b.period_end), (T0, T0 + 31 * DAY));
    assert!(b.grants.is_empty());

    let updated = s
        .update_account(UpdateAccount {
            account_id: A.into(),
            overage_enabled: Some(true),
            overage_cap: Some(7 * CREDIT),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(updated.overage_enabled);
    assert_eq!(updated.overage_cap, 7 * CREDIT);
    assert_eq!(updated.plan_id, "pro");
    assert_eq!(s.get_account(A).await.unwrap(), updated);
    let b = balance(s).await;
    assert_eq!(b.available, 7 * CREDIT, "overage room counts as available");
    assert_eq!(
        (b.overage_enabled, b.overage_cap, b.overage_used),
        (true, 7 * CREDIT, 0)
    );
    assert_eq!(
        reason_of(
            s.update_account(UpdateAccount {
                account_id: "nobody".into(),
                suspended: Some(true),
                ..Default::default()
            })
            .await
        ),
        "ACCOUNT_NOT_FOUND"
    );
}

async fn grants_take_default_priorities_by_kind(s: &dyn Store) {
    account(s, new_account(A)).await;
    // Created in the reverse of the drawdown order they should end up in.
    let top_up = grant(s, new_grant(A, "top-up", GrantKind::TopUp, 4 * CREDIT)).await;
    let prepaid = grant(s, new_grant(A, "prepaid", GrantKind::Prepaid, 3 * CREDIT)).await;
    let promo = grant(s, new_grant(A, "promo", GrantKind::Promo, 2 * CREDIT)).await;
    let allowance = grant(
        s,
        CreateGrant {
            unit_price: 1_500,
            ..new_grant(A, "allowance", GrantKind::Allowance, CREDIT)
        },
    )
    .await;
    assert_eq!(
        [
            allowance.priority,
            promo.priority,
            prepaid.priority,
            top_up.priority
        ],
        [10, 20, 30, 30]
    );
    assert_eq!(allowance.unit_price, 1_500);
    assert_eq!(allowance.kind, GrantKind::Allowance);
    assert_eq!(
        (
            allowance.amount,
            allowance.remaining,
            allowance.effective_at,
            allowance.expires_at
        ),
        (CREDIT, CREDIT, T0, None)
    );
    assert_eq!(allowance.state(T0), GrantState::Active);

    let b = balance(s).await;
    let order: Vec<&str> = b.grants.iter().map(|g| g.grant_id.as_str()).collect();
    // Same priority and no expiry: the older (top-up, created first) goes first.
    assert_eq!(order, ["allowance", "promo", "top-up", "prepaid"]);
    assert_eq!(b.available, 10 * CREDIT);
    assert_eq!(b.granted_remaining, 10 * CREDIT);

    // An explicit priority wins over the kind's default.
    let first = grant(
        s,
        CreateGrant {
            priority: Some(1),
            ..new_grant(A, "vip", GrantKind::Prepaid, CREDIT)
        },
    )
    .await;
    assert_eq!(first.priority, 1);
    assert_eq!(balance(s).await.grants[0].grant_id, "vip");

    // Reserve 3.5 credits: the allowance first, then promo, then the top-up, per grant.
    let r = hold(s, new_reserve(A, "r1", 4_500_000)).await;
    assert_eq!(
        r.allocations,
        [
            alloc("vip", CREDIT, 0),
            alloc("allowance", CREDIT, 0),
            alloc("promo", 2 * CREDIT, 0),
            alloc("top-up", 500_000, 0),
        ]
    );
    let listed = grants(s).await;
    assert_eq!(listed["top-up"].remaining, 3_500_000);
    assert_eq!(listed["top-up"].held, 500_000);
    assert_eq!(listed["prepaid"].remaining, 3 * CREDIT);
    let ids: Vec<String> = s
        .list_grants(A)
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.grant_id)
        .collect();
    assert_eq!(
        ids,
        ["top-up", "prepaid", "promo", "allowance", "vip"],
        "creation order"
    );
    assert_conserved(s, A).await;
}

async fn grant_ids_are_idempotent(s: &dyn Store) {
    account(s, new_account(A)).await;
    let req = CreateGrant {
        expires_at: Some(T0 + 30 * DAY),
        unit_price: 2_000,
        ..new_grant(A, "inv-1", GrantKind::Prepaid, 5 * CREDIT)
    };
    let first = grant(s, req.clone()).await;
    s.advance_clock(SECOND).await.unwrap();
    assert_eq!(grant(s, req.clone()).await, first, "replay");
    assert_eq!(balance(s).await.available, 5 * CREDIT, "no second effect");
    for other in [
        CreateGrant {
            amount: 6 * CREDIT,
            ..req.clone()
        },
        CreateGrant {
            kind: GrantKind::TopUp,
            ..req.clone()
        },
        CreateGrant {
            priority: Some(5),
            ..req.clone()
        },
        CreateGrant {
            expires_at: None,
            ..req.clone()
        },
        CreateGrant {
            unit_price: 1,
            ..req.clone()
        },
    ] {
        assert_eq!(
            reason_of(s.create_grant(other.clone()).await),
            "IDEMPOTENCY_CONFLICT",
            "{other:?}"
        );
    }
    assert_eq!(
        reason_of(
            s.create_grant(new_grant("nobody", "g", GrantKind::Promo, CREDIT))
                .await
        ),
        "ACCOUNT_NOT_FOUND"
    );
    assert_eq!(
        s.void_grant(A, "nope", "test-admin").await,
        Err(Error::GrantNotFound)
    );
    assert_eq!(balance(s).await.available, 5 * CREDIT);
    assert_conserved(s, A).await;
}

async fn drawdown_goes_by_priority_then_expiry_then_age(s: &dyn Store) {
    account(s, new_account(A)).await;
    let prepaid = |id: &str, expires: Option<i64>| CreateGrant {
        expires_at: expires,
        ..new_grant(A, id, GrantKind::Prepaid, 10 * CREDIT)
    };
    grant(s, prepaid("old", None)).await;
    grant(s, prepaid("late", Some(T0 + 20 * DAY))).await;
    grant(s, prepaid("soon", Some(T0 + 10 * DAY))).await;
    grant(s, prepaid("young", None)).await;
    grant(s, new_grant(A, "promo", GrantKind::Promo, 10 * CREDIT)).await;
    grant(
        s,
        CreateGrant {
            priority: Some(5),
            ..new_grant(A, "first", GrantKind::TopUp, 10 * CREDIT)
        },
    )
    .await;

    let r = hold(s, new_reserve(A, "r1", 45 * CREDIT)).await;
    assert_eq!(
        r.allocations,
        [
            alloc("first", 10 * CREDIT, 0),
            alloc("promo", 10 * CREDIT, 0),
            alloc("soon", 10 * CREDIT, 0),
            alloc("late", 10 * CREDIT, 0),
            alloc("old", 5 * CREDIT, 0),
        ]
    );
    assert_eq!(
        (r.held, r.committed, r.granted),
        (45 * CREDIT, 0, 45 * CREDIT)
    );
    let r2 = hold(s, new_reserve(A, "r2", 10 * CREDIT)).await;
    assert_eq!(
        r2.allocations,
        [alloc("old", 5 * CREDIT, 0), alloc("young", 5 * CREDIT, 0)]
    );
    let b = balance(s).await;
    assert_eq!(b.available, 5 * CREDIT);
    assert_eq!(b.held, 55 * CREDIT);
    assert_eq!(b.granted_remaining, 60 * CREDIT);
    let held: Vec<(&str, Micros, Micros)> = b
        .grants
        .iter()
        .map(|g| (g.grant_id.as_str(), g.remaining, g.held))
        .collect();
    assert_eq!(
        held,
        [
            ("first", 0, 10 * CREDIT),
            ("promo", 0, 10 * CREDIT),
            ("soon", 0, 10 * CREDIT),
            ("late", 0, 10 * CREDIT),
            ("old", 0, 10 * CREDIT),
            ("young", 5 * CREDIT, 5 * CREDIT),
        ]
    );
    assert_conserved(s, A).await;
}

async fn pending_grants_count_from_effective_at(s: &dyn Store) {
    account(s, new_account(A)).await;
    let g = grant(
        s,
        CreateGrant {
            effective_at: Some(T0 + 3_600 * SECOND),
            ..new_grant(A, "next", GrantKind::Allowance, 10 * CREDIT)
        },
    )
    .await;
    assert_eq!(g.effective_at, T0 + 3_600 * SECOND);
    assert_eq!(g.state(T0), GrantState::Pending);
    let b = balance(s).await;
    assert_eq!((b.available, b.granted_remaining), (0, 0));
    assert!(b.grants.is_empty(), "pending grants are not live");
    denied(
        s,
        new_reserve(A, "r1", CREDIT),
        DenialReason::InsufficientCredits,
    )
    .await;
    let q = s
        .quote(Quote {
            lines: Vec::new(),
            account_id: A.into(),
            subject_id: "user-1".into(),
            amount: CREDIT,
        })
        .await
        .unwrap();
    assert_eq!(
        (q.affordable, q.denial),
        (false, Some(DenialReason::InsufficientCredits))
    );

    s.advance_clock(3_600 * SECOND - 1).await.unwrap();
    assert_eq!(balance(s).await.available, 0, "one millisecond early");
    s.advance_clock(1).await.unwrap();
    assert_eq!(
        balance(s).await.available,
        10 * CREDIT,
        "exactly at effective_at"
    );
    let r = hold(s, new_reserve(A, "r1", CREDIT)).await;
    assert_eq!(r.allocations, [alloc("next", CREDIT, 0)]);
    assert_conserved(s, A).await;
}

async fn grants_stop_counting_exactly_at_expires_at(s: &dyn Store) {
    account(s, new_account(A)).await;
    grant(
        s,
        CreateGrant {
            expires_at: Some(T0 + 1_000),
            ..new_grant(A, "short", GrantKind::Allowance, 10 * CREDIT)
        },
    )
    .await;
    grant(s, new_grant(A, "long", GrantKind::Prepaid, 5 * CREDIT)).await;
    let r = hold(
        s,
        Reserve {
            ttl_seconds: 600,
            ..new_reserve(A, "r1", 4 * CREDIT)
        },
    )
    .await;
    assert_eq!(r.allocations, [alloc("short", 4 * CREDIT, 0)]);

    s.advance_clock(999).await.unwrap();
    assert_eq!(
        balance(s).await.available,
        11 * CREDIT,
        "1 ms before expires_at"
    );
    s.advance_clock(1).await.unwrap();
    let b = balance(s).await;
    assert_eq!(
        b.available,
        5 * CREDIT,
        "at expires_at the grant stops counting"
    );
    assert_eq!(b.granted_remaining, 5 * CREDIT);
    assert_eq!(b.held, 4 * CREDIT, "the hold on the expired grant stays");
    assert_eq!(
        b.grants
            .iter()
            .map(|g| g.grant_id.as_str())
            .collect::<Vec<_>>(),
        ["long"]
    );
    let short = &grants(s).await["short"];
    assert_eq!(buckets(short), (0, 4 * CREDIT, 0, 6 * CREDIT, 0));
    assert!(short.closed);
    assert_eq!(short.state(T0 + 1_000), GrantState::Expired);
    let r = s.get_reservation(A, "r1").await.unwrap();
    assert_eq!((r.state, r.held), (ReservationState::Held, 4 * CREDIT));

    // New holds come from the live grant only.
    let r2 = hold(s, new_reserve(A, "r2", 2 * CREDIT)).await;
    assert_eq!(r2.allocations, [alloc("long", 2 * CREDIT, 0)]);

    // The hold on the expired grant is still spendable; what it returns becomes expired.
    let out = s.commit(new_commit(A, "r1", 3 * CREDIT)).await.unwrap();
    assert_eq!(out.effect, effect(3 * CREDIT, CREDIT, 0, 0));
    assert_eq!(out.reservation.allocations, [alloc("short", 0, 3 * CREDIT)]);
    assert_eq!(
        buckets(&grants(s).await["short"]),
        (0, 0, 3 * CREDIT, 7 * CREDIT, 0)
    );
    let b = balance(s).await;
    assert_eq!((b.available, b.held), (3 * CREDIT, 2 * CREDIT));

    // A grant cannot be created already expired, nor expire before it starts.
    let bad = CreateGrant {
        expires_at: Some(T0 + 1_000),
        ..new_grant(A, "stale", GrantKind::Promo, CREDIT)
    };
    assert_eq!(
        error_key(&s.create_grant(bad).await.unwrap_err()),
        ("INVALID_ARGUMENT".into(), "expires_at".into())
    );
    let bad = CreateGrant {
        effective_at: Some(T0 + 10 * DAY),
        expires_at: Some(T0 + 5 * DAY),
        ..new_grant(A, "inverted", GrantKind::Promo, CREDIT)
    };
    assert_eq!(
        error_key(&s.create_grant(bad).await.unwrap_err()),
        ("INVALID_ARGUMENT".into(), "expires_at".into())
    );
    assert_eq!(grants(s).await.len(), 2, "refused grants are not created");
    assert_conserved(s, A).await;
}

async fn hold_on_an_expired_grant_returns_to_expired_when_the_hold_expires(s: &dyn Store) {
    account(s, new_account(A)).await;
    grant(
        s,
        CreateGrant {
            expires_at: Some(T0 + 10 * SECOND),
            ..new_grant(A, "g1", GrantKind::Promo, 6 * CREDIT)
        },
    )
    .await;
    hold(s, new_reserve(A, "r1", 4 * CREDIT)).await; // ttl 60 s
    s.advance_clock(60 * SECOND).await.unwrap();
    assert_eq!(s.reap().await.unwrap(), 1);
    let r = s.get_reservation(A, "r1").await.unwrap();
    assert_eq!((r.state, r.held), (ReservationState::Expired, 0));
    assert_eq!(r.allocations, [alloc("g1", 0, 0)]);
    assert_eq!(buckets(&grants(s).await["g1"]), (0, 0, 0, 6 * CREDIT, 0));
    let b = balance(s).await;
    assert_eq!((b.available, b.held), (0, 0));
    assert_conserved(s, A).await;
}

// ---- holds and TTL --------------------------------------------------------------------------

async fn holds_expire_after_their_ttl_via_reap(s: &dyn Store) {
    funded(s).await;
    let r = hold(s, new_reserve(A, "r1", 4 * CREDIT)).await;
    assert_eq!(r.expires_at, T0 + 60 * SECOND);
    assert_eq!(r.state, ReservationState::Held);
    assert_eq!(r.created_at, T0);
    assert_eq!(r.subject_id, "user-1");
    assert_eq!(r.labels["feature"], "grid");

    s.advance_clock(60 * SECOND - 1).await.unwrap();
    assert_eq!(s.reap().await.unwrap(), 0, "not due yet");
    s.advance_clock(1).await.unwrap();
    assert_eq!(s.reap().await.unwrap(), 1, "one account settled");
    assert_eq!(s.reap().await.unwrap(), 0, "nothing left to settle");
    let r = s.get_reservation(A, "r1").await.unwrap();
    assert_eq!(
        (r.state, r.held, r.committed),
        (ReservationState::Expired, 0, 0)
    );
    assert_eq!(r.allocations, [alloc("g1", 0, 0)]);
    let b = balance(s).await;
    assert_eq!((b.available, b.held), (10 * CREDIT, 0));
    assert_eq!(buckets(&grants(s).await["g1"]), (10 * CREDIT, 0, 0, 0, 0));
    assert_conserved(s, A).await;
}

async fn holds_expire_after_their_ttl_when_the_account_is_touched(s: &dyn Store) {
    funded(s).await;
    hold(
        s,
        Reserve {
            ttl_seconds: 30,
            ..new_reserve(A, "r1", 4 * CREDIT)
        },
    )
    .await;
    hold(s, new_reserve(A, "r2", 5 * CREDIT)).await;
    s.advance_clock(30 * SECOND).await.unwrap();
    // Any call on the account settles its due holds first.
    let b = balance(s).await;
    assert_eq!((b.available, b.held), (5 * CREDIT, 5 * CREDIT));
    assert_eq!(
        s.get_reservation(A, "r1").await.unwrap().state,
        ReservationState::Expired
    );
    assert_eq!(s.reap().await.unwrap(), 0, "already settled by the touch");
    let r3 = hold(s, new_reserve(A, "r3", 5 * CREDIT)).await;
    assert_eq!(r3.allocations, [alloc("g1", 5 * CREDIT, 0)]);
    assert_eq!(balance(s).await.available, 0);
    assert_conserved(s, A).await;
}

// ---- commit ---------------------------------------------------------------------------------

async fn commit_in_full_returns_the_rest(s: &dyn Store) {
    funded(s).await;
    hold(s, new_reserve(A, "r1", 6 * CREDIT)).await;
    let out = s
        .commit(Commit {
            cost: 1_234,
            ..new_commit(A, "r1", 4 * CREDIT)
        })
        .await
        .unwrap();
    assert!(!out.replayed);
    assert_eq!(out.effect, effect(4 * CREDIT, 2 * CREDIT, 0, 0));
    let r = &out.reservation;
    assert_eq!(r.state, ReservationState::Committed);
    assert_eq!((r.held, r.committed, r.late), (0, 4 * CREDIT, false));
    assert_eq!(r.allocations, [alloc("g1", 0, 4 * CREDIT)]);
    assert_eq!(out.balance.available, 6 * CREDIT);
    assert_eq!(out.balance.held, 0);
    assert_eq!(out.balance, balance(s).await);
    assert_eq!(
        buckets(&grants(s).await["g1"]),
        (6 * CREDIT, 0, 4 * CREDIT, 0, 0)
    );

    // The replay answers the same, with no second charge.
    let again = s
        .commit(Commit {
            cost: 1_234,
            ..new_commit(A, "r1", 4 * CREDIT)
        })
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.effect, out.effect);
    assert_eq!(again.reservation, out.reservation);
    assert_eq!(again.balance, out.balance);
    assert_eq!(
        reason_of(s.commit(new_commit(A, "r1", 5 * CREDIT)).await),
        "IDEMPOTENCY_CONFLICT"
    );
    assert_eq!(
        s.commit(new_commit(A, "nope", CREDIT)).await,
        Err(Error::ReservationNotFound)
    );
    // A zero commit charges nothing and returns the whole hold.
    hold(s, new_reserve(A, "r2", 2 * CREDIT)).await;
    let zero = s.commit(new_commit(A, "r2", 0)).await.unwrap();
    assert_eq!(zero.effect, effect(0, 2 * CREDIT, 0, 0));
    assert_eq!(zero.reservation.state, ReservationState::Committed);
    assert_eq!(balance(s).await.available, 6 * CREDIT);
    assert_conserved(s, A).await;
}

async fn partial_captures_keep_the_hold_open(s: &dyn Store) {
    account(s, new_account(A)).await;
    grant(s, new_grant(A, "a", GrantKind::Allowance, 6 * CREDIT)).await;
    grant(s, new_grant(A, "b", GrantKind::Prepaid, 10 * CREDIT)).await;
    let r = hold(s, new_reserve(A, "r1", 10 * CREDIT)).await;
    assert_eq!(
        r.allocations,
        [alloc("a", 6 * CREDIT, 0), alloc("b", 4 * CREDIT, 0)]
    );

    let c1 = s
        .commit(new_capture(A, "r1", "c1", 3 * CREDIT))
        .await
        .unwrap();
    assert_eq!(c1.effect, effect(3 * CREDIT, 0, 0, 0));
    assert_eq!(c1.reservation.state, ReservationState::Held);
    assert_eq!(
        (c1.reservation.held, c1.reservation.committed),
        (7 * CREDIT, 3 * CREDIT)
    );
    assert_eq!(
        c1.reservation.allocations,
        [
            alloc("a", 3 * CREDIT, 3 * CREDIT),
            alloc("b", 4 * CREDIT, 0)
        ]
    );
    assert_eq!(c1.balance.available, 6 * CREDIT);
    assert_eq!(c1.balance.held, 7 * CREDIT);

    // Replay of a capture: same answer, nothing charged twice.
    let replay = s
        .commit(new_capture(A, "r1", "c1", 3 * CREDIT))
        .await
        .unwrap();
    assert!(replay.replayed);
    assert_eq!(replay.effect, c1.effect);
    assert_eq!(replay.reservation, c1.reservation);
    assert_eq!(balance(s).await, c1.balance);
    // The same capture id with another amount is a conflict.
    assert_eq!(
        reason_of(s.commit(new_capture(A, "r1", "c1", 4 * CREDIT)).await),
        "IDEMPOTENCY_CONFLICT"
    );

    let c2 = s
        .commit(new_capture(A, "r1", "c2", 5 * CREDIT))
        .await
        .unwrap();
    assert_eq!(c2.effect, effect(5 * CREDIT, 0, 0, 0));
    assert_eq!(
        c2.reservation.allocations,
        [
            alloc("a", 0, 6 * CREDIT),
            alloc("b", 2 * CREDIT, 2 * CREDIT)
        ]
    );
    assert_eq!(
        (c2.reservation.held, c2.reservation.committed),
        (2 * CREDIT, 8 * CREDIT)
    );
    // Extend keeps working between captures.
    s.advance_clock(10 * SECOND).await.unwrap();
    let ext = s.extend(new_extend(A, "r1", 300)).await.unwrap();
    assert_eq!(ext.expires_at, T0 + 310 * SECOND);
    assert_eq!(ext.held, 2 * CREDIT);

    // The final commit settles and releases what is left.
    let fin = s.commit(new_commit(A, "r1", CREDIT)).await.unwrap();
    assert_eq!(fin.effect, effect(CREDIT, CREDIT, 0, 0));
    assert_eq!(fin.reservation.state, ReservationState::Committed);
    assert_eq!(
        (fin.reservation.held, fin.reservation.committed),
        (0, 9 * CREDIT)
    );
    assert_eq!(
        fin.reservation.allocations,
        [alloc("a", 0, 6 * CREDIT), alloc("b", 0, 3 * CREDIT)]
    );
    let g = grants(s).await;
    assert_eq!(buckets(&g["a"]), (0, 0, 6 * CREDIT, 0, 0));
    assert_eq!(buckets(&g["b"]), (7 * CREDIT, 0, 3 * CREDIT, 0, 0));
    assert_eq!(balance(s).await.available, 7 * CREDIT);

    // After the final commit: capture replays still answer, new captures are refused.
    let replay = s
        .commit(new_capture(A, "r1", "c2", 5 * CREDIT))
        .await
        .unwrap();
    assert!(replay.replayed);
    assert_eq!(replay.effect, c2.effect);
    assert_eq!(
        s.commit(new_capture(A, "r1", "c3", CREDIT)).await,
        Err(Error::ReservationCommitted)
    );
    assert_eq!(s.release(A, "r1").await, Err(Error::ReservationCommitted));
    assert_eq!(
        s.extend(new_extend(A, "r1", 60)).await,
        Err(Error::ReservationCommitted)
    );
    assert_eq!(balance(s).await.available, 7 * CREDIT);
    assert_conserved(s, A).await;
}

async fn overrun_charge_draws_available_then_overage_then_debt(s: &dyn Store) {
    account(
        s,
        CreateAccount {
            overage_enabled: true,
            overage_cap: 5 * CREDIT,
            ..new_account(A)
        },
    )
    .await;
    grant(s, new_grant(A, "g1", GrantKind::Allowance, 10 * CREDIT)).await;
    hold(s, new_reserve(A, "r1", 8 * CREDIT)).await;

    // 16 = 8 from the hold + 2 available + 5 overage (the cap) + 1 debt.
    let out = s.commit(new_commit(A, "r1", 16 * CREDIT)).await.unwrap();
    assert_eq!(out.effect, effect(16 * CREDIT, 0, 8 * CREDIT, CREDIT));
    let r = &out.reservation;
    assert_eq!(
        (r.state, r.held, r.committed),
        (ReservationState::Committed, 0, 16 * CREDIT)
    );
    assert_eq!(
        r.allocations,
        [
            alloc("g1", 0, 10 * CREDIT),
            alloc(OVERAGE_ID, 0, 5 * CREDIT),
            alloc(DEBT_ID, 0, CREDIT),
        ]
    );
    let b = balance(s).await;
    assert_eq!(out.balance, b);
    assert_eq!(b.debt, CREDIT);
    assert_eq!(b.available, -CREDIT, "negative while in debt");
    assert_eq!(
        (b.overage_used, b.overage_spent_total),
        (5 * CREDIT, 5 * CREDIT)
    );
    assert_eq!((b.held, b.overage_held, b.granted_remaining), (0, 0, 0));
    assert_eq!(buckets(&grants(s).await["g1"]), (0, 0, 10 * CREDIT, 0, 0));
    assert_conserved(s, A).await;
}

async fn overrun_cap_never_charges_above_the_hold(s: &dyn Store) {
    funded(s).await;
    hold(s, new_reserve(A, "r1", 4 * CREDIT)).await;
    let out = s
        .commit(Commit {
            overrun: Overrun::Cap,
            ..new_commit(A, "r1", 6 * CREDIT)
        })
        .await
        .unwrap();
    assert_eq!(out.effect, effect(4 * CREDIT, 0, 2 * CREDIT, 0));
    assert_eq!(out.reservation.committed, 4 * CREDIT);
    assert_eq!(out.reservation.allocations, [alloc("g1", 0, 4 * CREDIT)]);
    assert_eq!(balance(s).await.available, 6 * CREDIT);

    // Under the hold, CAP is a plain commit.
    hold(s, new_reserve(A, "r2", 4 * CREDIT)).await;
    let out = s
        .commit(Commit {
            overrun: Overrun::Cap,
            ..new_commit(A, "r2", 3 * CREDIT)
        })
        .await
        .unwrap();
    assert_eq!(out.effect, effect(3 * CREDIT, CREDIT, 0, 0));
    assert_eq!(balance(s).await.available, 3 * CREDIT);

    // Captures count against the cap: 1.5 of a 2-credit hold captured, then at most 0.5 more.
    hold(s, new_reserve(A, "r3", 2 * CREDIT)).await;
    let c = s
        .commit(new_capture(A, "r3", "c1", 1_500_000))
        .await
        .unwrap();
    assert_eq!(c.effect, effect(1_500_000, 0, 0, 0));
    let out = s
        .commit(Commit {
            overrun: Overrun::Cap,
            ..new_commit(A, "r3", 2 * CREDIT)
        })
        .await
        .unwrap();
    assert_eq!(out.effect, effect(500_000, 0, 1_500_000, 0));
    assert_eq!(out.reservation.committed, 2 * CREDIT);
    assert_eq!(balance(s).await.available, CREDIT);
    assert_eq!(balance(s).await.debt, 0);
    assert_conserved(s, A).await;
}

async fn late_commit_after_expiry_still_charges(s: &dyn Store) {
    account(
        s,
        CreateAccount {
            overage_enabled: true,
            overage_cap: 2 * CREDIT,
            ..new_account(A)
        },
    )
    .await;
    grant(s, new_grant(A, "g1", GrantKind::Allowance, 5 * CREDIT)).await;
    hold(
        s,
        Reserve {
            ttl_seconds: 10,
            ..new_reserve(A, "r1", 4 * CREDIT)
        },
    )
    .await;
    s.advance_clock(10 * SECOND).await.unwrap();
    assert_eq!(
        s.extend(new_extend(A, "r1", 60)).await,
        Err(Error::ReservationExpired)
    );
    // Releasing an expired hold returns nothing and changes nothing.
    let rel = s.release(A, "r1").await.unwrap();
    assert_eq!((rel.released, rel.replayed), (0, false));
    assert_eq!(rel.reservation.state, ReservationState::Expired);
    assert_eq!(rel.balance.available, 7 * CREDIT);

    // 8 = 5 available + 2 overage + 1 debt; the whole amount is above the (expired) hold.
    let out = s.commit(new_commit(A, "r1", 8 * CREDIT)).await.unwrap();
    assert_eq!(
        out.effect,
        CommitEffect {
            charged: 8 * CREDIT,
            released: 0,
            overrun: 8 * CREDIT,
            debt: CREDIT,
            late: true,
        }
    );
    let r = &out.reservation;
    assert_eq!(r.state, ReservationState::Committed);
    assert!(r.late);
    assert_eq!((r.held, r.committed), (0, 8 * CREDIT));
    assert_eq!(
        r.allocations,
        [
            alloc("g1", 0, 5 * CREDIT),
            alloc(OVERAGE_ID, 0, 2 * CREDIT),
            alloc(DEBT_ID, 0, CREDIT),
        ]
    );
    let b = balance(s).await;
    assert_eq!(
        (b.available, b.debt, b.overage_used),
        (-CREDIT, CREDIT, 2 * CREDIT)
    );
    // The late commit replays like any other.
    let again = s.commit(new_commit(A, "r1", 8 * CREDIT)).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.effect, out.effect);
    assert_eq!(balance(s).await, b);
    assert_conserved(s, A).await;
}

// ---- release and extend ---------------------------------------------------------------------

async fn release_and_its_typed_answers(s: &dyn Store) {
    funded(s).await;
    let r = hold(s, new_reserve(A, "r1", 4 * CREDIT)).await;
    assert_eq!(balance(s).await.available, 6 * CREDIT);
    let rel = s.release(A, "r1").await.unwrap();
    assert_eq!((rel.released, rel.replayed), (4 * CREDIT, false));
    assert_eq!(rel.reservation.state, ReservationState::Released);
    assert_eq!((rel.reservation.held, rel.reservation.committed), (0, 0));
    assert_eq!(rel.reservation.allocations, [alloc("g1", 0, 0)]);
    assert_eq!((rel.balance.available, rel.balance.held), (10 * CREDIT, 0));

    let again = s.release(A, "r1").await.unwrap();
    assert_eq!((again.released, again.replayed), (4 * CREDIT, true));
    assert_eq!(again.reservation, rel.reservation);
    assert_eq!(again.balance, rel.balance);

    assert_eq!(
        s.commit(new_commit(A, "r1", CREDIT)).await,
        Err(Error::ReservationReleased)
    );
    assert_eq!(
        s.commit(new_capture(A, "r1", "c1", CREDIT)).await,
        Err(Error::ReservationReleased)
    );
    assert_eq!(
        s.extend(new_extend(A, "r1", 60)).await,
        Err(Error::ReservationReleased)
    );
    // Replaying the reserve does not hold again.
    let replay = s.reserve(new_reserve(A, "r1", 4 * CREDIT)).await.unwrap();
    assert!(replay.replayed);
    assert_eq!(
        replay.reservation.as_ref().map(|r| r.state),
        Some(ReservationState::Released)
    );
    assert_eq!(replay.reservation.map(|x| x.created_at), Some(r.created_at));
    assert_eq!(s.release(A, "nope").await, Err(Error::ReservationNotFound));
    assert_eq!(
        s.get_reservation(A, "nope").await,
        Err(Error::ReservationNotFound)
    );
    assert_eq!(balance(s).await.available, 10 * CREDIT);
    assert_eq!(buckets(&grants(s).await["g1"]), (10 * CREDIT, 0, 0, 0, 0));
    assert_conserved(s, A).await;
}

async fn extend_moves_the_expiry(s: &dyn Store) {
    funded(s).await;
    hold(s, new_reserve(A, "r1", 4 * CREDIT)).await; // expires at T0 + 60 s
    s.advance_clock(30 * SECOND).await.unwrap();
    let r = s.extend(new_extend(A, "r1", 120)).await.unwrap();
    assert_eq!(r.expires_at, T0 + 150 * SECOND);
    assert_eq!((r.state, r.held), (ReservationState::Held, 4 * CREDIT));
    assert_eq!(
        s.get_reservation(A, "r1").await.unwrap().expires_at,
        T0 + 150 * SECOND
    );
    s.advance_clock(120 * SECOND - 1).await.unwrap();
    assert_eq!(s.reap().await.unwrap(), 0);
    assert_eq!(balance(s).await.held, 4 * CREDIT, "still held 1 ms before");
    s.advance_clock(1).await.unwrap();
    assert_eq!(s.reap().await.unwrap(), 1);
    assert_eq!(
        s.get_reservation(A, "r1").await.unwrap().state,
        ReservationState::Expired
    );
    assert_eq!(balance(s).await.available, 10 * CREDIT);
    assert_eq!(
        s.extend(new_extend(A, "nope", 60)).await,
        Err(Error::ReservationNotFound)
    );
    assert_conserved(s, A).await;
}

// ---- debt, overage, policy ------------------------------------------------------------------

async fn debt_blocks_reserves_and_the_next_grant_pays_it(s: &dyn Store) {
    funded(s).await;
    hold(s, new_reserve(A, "r1", 10 * CREDIT)).await;
    let out = s.commit(new_commit(A, "r1", 13 * CREDIT)).await.unwrap();
    assert_eq!(out.effect, effect(13 * CREDIT, 0, 3 * CREDIT, 3 * CREDIT));
    assert_eq!(
        out.reservation.allocations,
        [alloc("g1", 0, 10 * CREDIT), alloc(DEBT_ID, 0, 3 * CREDIT)]
    );
    assert_eq!(balance(s).await.available, -3 * CREDIT);

    denied(
        s,
        new_reserve(A, "r2", CREDIT),
        DenialReason::DebtOutstanding,
    )
    .await;

    // A 2-credit grant pays 2 of the 3 owed and is used up.
    let g2 = grant(s, new_grant(A, "g2", GrantKind::TopUp, 2 * CREDIT)).await;
    assert_eq!(buckets(&g2), (0, 0, 2 * CREDIT, 0, 0));
    let b = balance(s).await;
    assert_eq!((b.debt, b.available), (CREDIT, -CREDIT));
    denied(
        s,
        new_reserve(A, "r2", CREDIT),
        DenialReason::DebtOutstanding,
    )
    .await;

    // The next one pays the rest; its remaining is reduced by what it paid.
    let g3 = grant(s, new_grant(A, "g3", GrantKind::Prepaid, 5 * CREDIT)).await;
    assert_eq!(buckets(&g3), (4 * CREDIT, 0, CREDIT, 0, 0));
    let b = balance(s).await;
    assert_eq!((b.debt, b.available), (0, 4 * CREDIT));
    let r2 = hold(s, new_reserve(A, "r2", CREDIT)).await;
    assert_eq!(r2.allocations, [alloc("g3", CREDIT, 0)]);
    assert_conserved(s, A).await;
}

async fn overage_on_off_and_monthly_cap(s: &dyn Store) {
    account(s, new_account(A)).await;
    grant(s, new_grant(A, "g1", GrantKind::Allowance, 5 * CREDIT)).await;
    denied(
        s,
        new_reserve(A, "r1", 6 * CREDIT),
        DenialReason::InsufficientCredits,
    )
    .await;

    s.update_account(UpdateAccount {
        account_id: A.into(),
        overage_enabled: Some(true),
        overage_cap: Some(3 * CREDIT),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(balance(s).await.available, 8 * CREDIT);
    let r1 = hold(s, new_reserve(A, "r1", 7 * CREDIT)).await;
    assert_eq!(
        r1.allocations,
        [alloc("g1", 5 * CREDIT, 0), alloc(OVERAGE_ID, 2 * CREDIT, 0)]
    );
    let b = balance(s).await;
    assert_eq!(
        (b.available, b.held, b.overage_held),
        (CREDIT, 7 * CREDIT, 2 * CREDIT)
    );
    denied(
        s,
        new_reserve(A, "r2", 2 * CREDIT),
        DenialReason::OverageCapReached,
    )
    .await;

    let out = s.commit(new_commit(A, "r1", 7 * CREDIT)).await.unwrap();
    assert_eq!(
        out.reservation.allocations,
        [alloc("g1", 0, 5 * CREDIT), alloc(OVERAGE_ID, 0, 2 * CREDIT)]
    );
    let b = balance(s).await;
    assert_eq!(
        (b.overage_used, b.overage_held, b.available),
        (2 * CREDIT, 0, CREDIT)
    );

    let r2 = hold(s, new_reserve(A, "r2", CREDIT)).await;
    assert_eq!(r2.allocations, [alloc(OVERAGE_ID, CREDIT, 0)]);
    s.commit(new_commit(A, "r2", CREDIT)).await.unwrap();
    let b = balance(s).await;
    assert_eq!(
        (b.overage_used, b.overage_spent_total, b.available),
        (3 * CREDIT, 3 * CREDIT, 0)
    );
    denied(s, new_reserve(A, "r3", 1), DenialReason::OverageCapReached).await;

    // A higher cap gives room again; no cap means as much as the 2^53 bound allows.
    s.update_account(UpdateAccount {
        account_id: A.into(),
        overage_cap: Some(0),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(balance(s).await.available, MAX_MICROS - 3 * CREDIT);
    let r3 = hold(s, new_reserve(A, "r3", 100 * CREDIT)).await;
    assert_eq!(r3.allocations, [alloc(OVERAGE_ID, 100 * CREDIT, 0)]);
    s.release(A, "r3").await.unwrap();

    // Overage off: only grants count.
    s.update_account(UpdateAccount {
        account_id: A.into(),
        overage_enabled: Some(false),
        ..Default::default()
    })
    .await
    .unwrap();
    let b = balance(s).await;
    assert_eq!(
        (b.available, b.overage_enabled, b.overage_used),
        (0, false, 3 * CREDIT)
    );
    denied(
        s,
        new_reserve(A, "r4", 1),
        DenialReason::InsufficientCredits,
    )
    .await;
    assert_conserved(s, A).await;
}

async fn overage_resets_in_the_next_billing_period(s: &dyn Store) {
    account(
        s,
        CreateAccount {
            overage_enabled: true,
            overage_cap: 2 * CREDIT,
            ..new_account(A)
        },
    )
    .await;
    hold(s, new_reserve(A, "r1", 2 * CREDIT)).await;
    s.commit(new_commit(A, "r1", 2 * CREDIT)).await.unwrap();
    denied(s, new_reserve(A, "r2", 1), DenialReason::OverageCapReached).await;
    let b = balance(s).await;
    assert_eq!((b.period_start, b.period_end), (T0, T0 + 31 * DAY));

    // 2026-02-15T00:00:00Z is the next period's first millisecond.
    s.advance_clock(31 * DAY - 1).await.unwrap();
    assert_eq!(balance(s).await.overage_used, 2 * CREDIT);
    s.advance_clock(1).await.unwrap();
    let b = balance(s).await;
    assert_eq!(
        (b.period_start, b.period_end),
        (T0 + 31 * DAY, T0 + 59 * DAY)
    );
    assert_eq!((b.overage_used, b.overage_spent_total), (0, 2 * CREDIT));
    assert_eq!(b.available, 2 * CREDIT);
    let r2 = hold(s, new_reserve(A, "r2", 2 * CREDIT)).await;
    assert_eq!(r2.allocations, [alloc(OVERAGE_ID, 2 * CREDIT, 0)]);
    assert_conserved(s, A).await;
}

async fn suspended_account_is_denied(s: &dyn Store) {
    funded(s).await;
    let suspend = |on: bool| UpdateAccount {
        account_id: A.into(),
        suspended: Some(on),
        ..Default::default()
    };
    assert!(s.update_account(suspend(true)).await.unwrap().suspended);
    denied(
        s,
        new_reserve(A, "r1", CREDIT),
        DenialReason::AccountSuspended,
    )
    .await;
    let q = s
        .quote(Quote {
            lines: Vec::new(),
            account_id: A.into(),
            subject_id: "user-1".into(),
            amount: CREDIT,
        })
        .await
        .unwrap();
    assert_eq!(
        (q.affordable, q.denial),
        (false, Some(DenialReason::AccountSuspended))
    );
    assert!(!s.update_account(suspend(false)).await.unwrap().suspended);
    let r = hold(s, new_reserve(A, "r1", CREDIT)).await;
    assert_eq!(r.held, CREDIT);
    assert_conserved(s, A).await;
}

async fn min_amount_accepts_a_smaller_hold(s: &dyn Store) {
    account(s, new_account(A)).await;
    grant(s, new_grant(A, "g1", GrantKind::Allowance, 6 * CREDIT)).await;
    let r = hold(
        s,
        Reserve {
            min_amount: 4 * CREDIT,
            ..new_reserve(A, "r1", 10 * CREDIT)
        },
    )
    .await;
    assert_eq!(
        (r.requested, r.granted, r.held, r.min_amount),
        (10 * CREDIT, 6 * CREDIT, 6 * CREDIT, 4 * CREDIT)
    );
    assert_eq!(r.allocations, [alloc("g1", 6 * CREDIT, 0)]);
    grant(s, new_grant(A, "g2", GrantKind::TopUp, 2 * CREDIT)).await;
    denied(
        s,
        Reserve {
            min_amount: 3 * CREDIT,
            ..new_reserve(A, "r2", 5 * CREDIT)
        },
        DenialReason::InsufficientCredits,
    )
    .await;
    // When the whole amount fits, min_amount changes nothing.
    let r3 = hold(
        s,
        Reserve {
            min_amount: CREDIT,
            ..new_reserve(A, "r3", 1_500_000)
        },
    )
    .await;
    assert_eq!((r3.granted, r3.held), (1_500_000, 1_500_000));
    // A capped commit of a partial hold charges at most what was granted.
    let out = s
        .commit(Commit {
            overrun: Overrun::Cap,
            ..new_commit(A, "r1", 10 * CREDIT)
        })
        .await
        .unwrap();
    assert_eq!(out.effect, effect(6 * CREDIT, 0, 4 * CREDIT, 0));
    assert_eq!(balance(s).await.available, 500_000);
    assert_conserved(s, A).await;
}

async fn reserve_replay_returns_the_first_answer(s: &dyn Store) {
    funded(s).await;
    let req = new_reserve(A, "r1", 4 * CREDIT);
    let first = s.reserve(req.clone()).await.unwrap();
    assert!(!first.replayed);
    s.advance_clock(SECOND).await.unwrap();
    let again = s.reserve(req.clone()).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.denial, None);
    assert_eq!(again.reservation, first.reservation);
    assert_eq!(again.balance, first.balance, "no second hold");
    assert_eq!(balance(s).await.available, 6 * CREDIT);

    let labels = BTreeMap::from([("feature".to_string(), "agent".to_string())]);
    for other in [
        Reserve {
            amount: 5 * CREDIT,
            ..req.clone()
        },
        Reserve {
            min_amount: CREDIT,
            ..req.clone()
        },
        Reserve {
            ttl_seconds: 61,
            ..req.clone()
        },
        Reserve {
            subject_id: "user-2".into(),
            ..req.clone()
        },
        Reserve {
            labels,
            ..req.clone()
        },
    ] {
        assert_eq!(
            s.reserve(other.clone()).await,
            Err(Error::conflict("reservation_id")),
            "{other:?}"
        );
    }
    assert_eq!(balance(s).await.available, 6 * CREDIT);
    assert_eq!(balance(s).await.held, 4 * CREDIT);
    assert_conserved(s, A).await;
}

async fn voided_grant_stops_counting(s: &dyn Store) {
    funded(s).await;
    grant(s, new_grant(A, "g2", GrantKind::Prepaid, 5 * CREDIT)).await;
    hold(s, new_reserve(A, "r1", 12 * CREDIT)).await; // g1 10, g2 2
    let v = s.void_grant(A, "g2", "test-admin").await.unwrap();
    assert!(v.is_voided);
    assert_eq!(buckets(&v), (0, 2 * CREDIT, 0, 0, 3 * CREDIT));
    assert_eq!(
        s.void_grant(A, "g2", "test-admin").await.unwrap(),
        v,
        "void replay"
    );
    let b = balance(s).await;
    assert_eq!((b.available, b.held), (0, 12 * CREDIT));
    assert_eq!(b.grants.len(), 1);
    // The hold on the voided grant is released into voided.
    let rel = s.release(A, "r1").await.unwrap();
    assert_eq!(rel.released, 12 * CREDIT);
    let g = grants(s).await;
    assert_eq!(buckets(&g["g2"]), (0, 0, 0, 0, 5 * CREDIT));
    assert_eq!(buckets(&g["g1"]), (10 * CREDIT, 0, 0, 0, 0));
    assert_eq!(balance(s).await.available, 10 * CREDIT);
    assert_conserved(s, A).await;
}

async fn quote_has_no_side_effects(s: &dyn Store) {
    funded(s).await;
    let before = balance(s).await;
    let q = s
        .quote(Quote {
            lines: Vec::new(),
            account_id: A.into(),
            subject_id: "user-1".into(),
            amount: 10 * CREDIT,
        })
        .await
        .unwrap();
    assert_eq!(
        (q.amount, q.affordable, q.denial),
        (10 * CREDIT, true, None)
    );
    assert_eq!(q.balance, before);
    let q = s
        .quote(Quote {
            lines: Vec::new(),
            account_id: A.into(),
            subject_id: "user-1".into(),
            amount: 10 * CREDIT + 1,
        })
        .await
        .unwrap();
    assert_eq!(
        (q.affordable, q.denial),
        (false, Some(DenialReason::InsufficientCredits))
    );
    assert_eq!(balance(s).await, before, "not even the sequence moved");
    assert_conserved(s, A).await;
}

async fn amounts_near_2_pow_53_are_exact(s: &dyn Store) {
    account(s, new_account(A)).await;
    let g = grant(s, new_grant(A, "big", GrantKind::Prepaid, MAX_MICROS)).await;
    assert_eq!(g.amount, 9_007_199_254_740_991);
    // The account total may not pass 2^53 - 1.
    assert_eq!(
        error_key(
            &s.create_grant(new_grant(A, "one-more", GrantKind::Promo, 1))
                .await
                .unwrap_err()
        ),
        ("INVALID_ARGUMENT".into(), "amount_micros".into())
    );
    assert_eq!(balance(s).await.available, MAX_MICROS);

    let r = hold(s, new_reserve(A, "r1", MAX_MICROS)).await;
    assert_eq!(r.allocations, [alloc("big", MAX_MICROS, 0)]);
    let b = balance(s).await;
    assert_eq!(
        (b.available, b.held, b.granted_remaining),
        (0, MAX_MICROS, MAX_MICROS)
    );

    let c = s
        .commit(new_capture(A, "r1", "c1", MAX_MICROS - 2))
        .await
        .unwrap();
    assert_eq!(c.effect, effect(MAX_MICROS - 2, 0, 0, 0));
    assert_eq!(c.reservation.held, 2);
    let out = s.commit(new_commit(A, "r1", 1)).await.unwrap();
    assert_eq!(out.effect, effect(1, 1, 0, 0));
    assert_eq!(out.reservation.committed, MAX_MICROS - 1);
    assert_eq!(
        buckets(&grants(s).await["big"]),
        (1, 0, MAX_MICROS - 1, 0, 0)
    );
    let b = balance(s).await;
    assert_eq!((b.available, b.held, b.granted_remaining), (1, 0, 1));

    // Now the open total is 1, so a grant of 2^53 - 2 fits exactly and one of 2^53 - 1 does not.
    assert_eq!(
        error_key(
            &s.create_grant(new_grant(A, "too-big", GrantKind::Promo, MAX_MICROS))
                .await
                .unwrap_err()
        ),
        ("INVALID_ARGUMENT".into(), "amount_micros".into())
    );
    grant(s, new_grant(A, "fits", GrantKind::Promo, MAX_MICROS - 1)).await;
    assert_eq!(balance(s).await.available, MAX_MICROS);
    assert_conserved(s, A).await;
}

async fn a_subject_balance_lists_its_budgets_and_their_use(s: &dyn Store) {
    funded(s).await;
    let own = Budget {
        scope: "subject".into(),
        period: BudgetPeriod::Day,
        limit: 4 * CREDIT,
    };
    let shared = Budget {
        scope: "label:feature=grid".into(),
        period: BudgetPeriod::BillingPeriod,
        limit: 6 * CREDIT,
    };
    for (subject, budget) in [("user-1", own.clone()), ("*", shared.clone())] {
        s.set_subject_policy(
            A,
            SubjectPolicy {
                budgets: vec![budget],
                ..SubjectPolicy::open(subject)
            },
            "test-admin",
        )
        .await
        .unwrap();
    }
    // new_reserve holds for user-1 with feature=grid: both budgets count it.
    let out = s.reserve(new_reserve(A, "r1", 3 * CREDIT)).await.unwrap();
    assert_eq!(out.denial, None);
    let b = s.get_subject_balance(A, "user-1").await.unwrap();
    let view: Vec<(String, String, Micros, Micros)> = b
        .budgets
        .iter()
        .map(|u| (u.owner.clone(), u.scope.clone(), u.limit, u.used))
        .collect();
    assert_eq!(
        view,
        [
            ("user-1".into(), "subject".into(), 4 * CREDIT, 3 * CREDIT),
            (
                "*".into(),
                "label:feature=grid".into(),
                6 * CREDIT,
                3 * CREDIT
            ),
        ]
    );
    // Another subject sees only the account's budgets; the plain balance lists none.
    let other = s.get_subject_balance(A, "user-2").await.unwrap();
    assert_eq!(other.budgets.len(), 1);
    assert_eq!(other.budgets[0].owner, "*");
    assert!(s.get_balance(A).await.unwrap().budgets.is_empty());
    // A release gives the room back.
    s.release(A, "r1").await.unwrap();
    let b = s.get_subject_balance(A, "user-1").await.unwrap();
    assert_eq!((b.budgets[0].used, b.budgets[1].used), (0, 0));
}
