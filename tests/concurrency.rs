//! 64 concurrent callers on ONE account over gRPC, against `creditd serve` on a real
//! `redis-server`, for a bounded few seconds per phase: reserving, committing (in full, in
//! partial captures, above the hold), releasing, and sometimes sending the same call twice at
//! once. A treasurer adds grants meanwhile, so the account keeps swinging between funded and
//! exhausted.
//!
//! Phase 1: overage off, overruns capped: no balance ever goes below zero and no debt appears.
//! Phase 2: overage on with a cap, overruns charged: debt appears only once grants and overage
//! room are exhausted.
//!
//! Afterwards: every grant adds up exactly, every reservation had exactly one effect (its
//! committed amount is what its caller committed once, even when calls were doubled), and what
//! was committed equals what the grants spent plus overage plus debt.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::creditd::CreditdServer;
use common::grpc::*;
use common::redis_server::RedisServer;
use common::CREDIT;
use creditd::proto::credit_admin_client::CreditAdminClient;
use creditd::proto::credits_client::CreditsClient;
use creditd::proto::{self, Balance, DenialReason, GrantKind, Overrun, ReservationState};
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Mutex;
use tonic::transport::Channel;

const CALLERS: u64 = 64;
const PHASE: Duration = Duration::from_millis(2_500);
/// A phase goes on past `PHASE` (up to `PHASE_LIMIT`) until this many holds were granted, so that
/// a slow, loaded machine still exercises enough.
const MIN_HOLDS: usize = 150;
const PHASE_LIMIT: Duration = Duration::from_secs(30);
const OVERAGE_CAP: i64 = 150 * CREDIT;

#[derive(Clone, Copy, PartialEq)]
enum Phase {
    /// Overage off, overruns capped.
    Capped,
    /// Overage on with a cap, overruns charged.
    Charged,
}

/// What the callers did to one reservation.
#[derive(Debug, Default, Clone)]
struct Expected {
    /// Sum of `charged_micros` of the distinct commits (each counted once).
    committed: i64,
    state: Option<ReservationState>,
}

#[derive(Default)]
struct Ledger {
    reservations: BTreeMap<String, Expected>,
    /// Debt paid by the grants the treasurer created (their `spent` at creation).
    debt_paid_by_grants: i64,
    granted: i64,
    denials: BTreeMap<String, u64>,
    doubled_calls: u64,
    balances_checked: u64,
}

struct Ctx {
    account: String,
    phase: Phase,
    started: Instant,
    holds: AtomicUsize,
    credits: CreditsClient<Channel>,
    ledger: Mutex<Ledger>,
}

impl Ctx {
    fn running(&self) -> bool {
        let elapsed = self.started.elapsed();
        elapsed < PHASE || (elapsed < PHASE_LIMIT && self.holds.load(Ordering::Relaxed) < MIN_HOLDS)
    }

    /// Every balance a response carries must respect the phase's floor.
    async fn check_balance(&self, b: Option<&Balance>, what: &str) {
        let b = b.unwrap_or_else(|| panic!("{what}: response without a balance"));
        assert!(b.debt_micros >= 0, "{what}: {b:?}");
        assert_eq!(b.available_micros, balance_available(b), "{what}: {b:?}");
        for g in &b.grants {
            assert!(
                g.remaining_micros >= 0 && g.held_micros >= 0,
                "{what}: {g:?}"
            );
        }
        match self.phase {
            Phase::Capped => {
                assert_eq!(
                    b.debt_micros, 0,
                    "{what}: debt without overruns charged: {b:?}"
                );
                assert!(b.available_micros >= 0, "{what}: below zero: {b:?}");
                assert_eq!((b.overage_used_micros, b.overage_held_micros), (0, 0));
            }
            Phase::Charged => {
                assert!(
                    b.overage_used_micros + b.overage_held_micros <= OVERAGE_CAP,
                    "{what}: overage above its cap: {b:?}"
                );
                assert!(b.available_micros >= -b.debt_micros, "{what}: {b:?}");
            }
        }
        self.ledger.lock().await.balances_checked += 1;
    }

    async fn record(&self, rid: &str, charged: i64, state: Option<ReservationState>) {
        let mut l = self.ledger.lock().await;
        let e = l.reservations.entry(rid.to_string()).or_default();
        e.committed += charged;
        if state.is_some() {
            e.state = state;
        }
    }
}

/// Available as the server defines it: free grant credits plus overage room, minus debt.
fn balance_available(b: &Balance) -> i64 {
    let free: i64 = b.grants.iter().map(|g| g.remaining_micros).sum();
    let room = if b.overage_enabled {
        let limit = if b.overage_cap_micros > 0 {
            b.overage_cap_micros
        } else {
            (1 << 53) - 1
        };
        (limit - b.overage_used_micros - b.overage_held_micros).max(0)
    } else {
        0
    };
    (free + room).min((1 << 53) - 1) - b.debt_micros
}

/// Sends `req` once, or twice at once; returns both answers (the second when doubled).
macro_rules! call {
    ($ctx:expr, $twice:expr, $method:ident, $req:expr) => {{
        let mut c1 = $ctx.credits.clone();
        let mut c2 = $ctx.credits.clone();
        let req = $req;
        if $twice {
            $ctx.ledger.lock().await.doubled_calls += 1;
            let (a, b) = tokio::join!(c1.$method(req.clone()), c2.$method(req));
            let a = a.unwrap_or_else(|s| panic!("{}: {s:?}", stringify!($method)));
            let b = b.unwrap_or_else(|s| panic!("{}: {s:?}", stringify!($method)));
            (a.into_inner(), Some(b.into_inner()))
        } else {
            let a = c1
                .$method(req)
                .await
                .unwrap_or_else(|s| panic!("{}: {s:?}", stringify!($method)));
            (a.into_inner(), None)
        }
    }};
}

/// One caller: reserve, then commit, capture or release, until the phase ends.
async fn caller(ctx: Arc<Ctx>, id: u64) {
    let mut rng = StdRng::seed_from_u64(id * 7_919 + ctx.phase as u64);
    let a = ctx.account.clone();
    let mut n = 0;
    while ctx.running() {
        n += 1;
        let rid = format!("c{id}-{n}");
        let amount = rng.random_range(1..=5 * CREDIT);
        let mut req = reserve_req(&a, &rid, amount);
        if rng.random_bool(0.2) {
            req.min_amount_micros = amount / 2;
        }
        let (mut r1, mut r2) = call!(ctx, rng.random_bool(0.15), reserve, req);
        let granted_answer =
            |r: &proto::ReserveResponse| r.decision == proto::Decision::Granted as i32;
        if let Some(second) = r2.as_mut() {
            // A denial changes nothing and is not remembered, so the twin may be granted when
            // a grant arrived in between: then the granted answer is the one that counts.
            if !granted_answer(&r1) && granted_answer(second) {
                std::mem::swap(&mut r1, second);
            }
        }
        ctx.check_balance(r1.balance.as_ref(), "reserve").await;
        if let Some(r2) = &r2 {
            ctx.check_balance(r2.balance.as_ref(), "reserve twice")
                .await;
            if granted_answer(&r1) && granted_answer(r2) {
                assert_eq!(
                    [r1.replayed, r2.replayed].iter().filter(|r| !**r).count(),
                    1,
                    "exactly one of two identical reserves takes effect: {r1:?} {r2:?}"
                );
                let (h1, h2) = (r1.reservation.as_ref(), r2.reservation.as_ref());
                assert_eq!(h1.map(|r| r.granted_micros), h2.map(|r| r.granted_micros));
            }
        }
        if r1.decision != proto::Decision::Granted as i32 {
            let reason = DenialReason::try_from(r1.denial_reason).expect("known reason");
            let allowed: &[DenialReason] = match ctx.phase {
                Phase::Capped => &[DenialReason::InsufficientCredits],
                Phase::Charged => &[
                    DenialReason::OverageCapReached,
                    DenialReason::DebtOutstanding,
                ],
            };
            assert!(allowed.contains(&reason), "unexpected denial {r1:?}");
            *ctx.ledger
                .lock()
                .await
                .denials
                .entry(reason.as_str_name().to_string())
                .or_default() += 1;
            tokio::task::yield_now().await;
            continue;
        }
        let res = r1.reservation.expect("granted reservation");
        let granted = res.granted_micros;
        assert!(
            granted == amount || (req_min_ok(granted, amount)),
            "{res:?}"
        );
        ctx.record(&rid, 0, Some(ReservationState::Held)).await;
        ctx.holds.fetch_add(1, Ordering::Relaxed);

        match rng.random_range(0..4) {
            // Release the whole hold.
            0 => {
                let (x, y) = call!(ctx, rng.random_bool(0.2), release, release_req(&a, &rid));
                ctx.check_balance(x.balance.as_ref(), "release").await;
                assert_eq!(x.released_micros, granted, "{x:?}");
                if let Some(y) = y {
                    assert_eq!(y.released_micros, granted);
                    assert!(
                        x.replayed != y.replayed,
                        "one release takes effect: {x:?} {y:?}"
                    );
                }
                ctx.record(&rid, 0, Some(ReservationState::Released)).await;
            }
            // Partial captures, then a final commit.
            1 => {
                let mut committed = 0;
                for cid in ["p1", "p2"] {
                    let c = rng.random_range(0..=granted / 3);
                    let mut req = commit_req(&a, &rid, c);
                    req.keep_open = true;
                    req.capture_id = cid.to_string();
                    let (x, y) = call!(ctx, rng.random_bool(0.2), commit, req);
                    ctx.check_balance(x.balance.as_ref(), "capture").await;
                    assert_eq!((x.charged_micros, x.released_micros), (c, 0), "{x:?}");
                    if let Some(y) = y {
                        assert_eq!(y.charged_micros, c);
                        assert!(x.replayed != y.replayed, "one capture takes effect");
                    }
                    committed += c;
                    ctx.record(&rid, c, None).await;
                }
                let last = rng.random_range(0..=granted - committed);
                let (x, y) = call!(
                    ctx,
                    rng.random_bool(0.2),
                    commit,
                    commit_req(&a, &rid, last)
                );
                ctx.check_balance(x.balance.as_ref(), "final commit").await;
                assert_eq!(x.charged_micros, last);
                assert_eq!(x.released_micros, granted - committed - last, "{x:?}");
                if let Some(y) = y {
                    assert_eq!(
                        (y.charged_micros, y.released_micros),
                        (x.charged_micros, x.released_micros)
                    );
                    assert!(x.replayed != y.replayed, "one final commit takes effect");
                }
                ctx.record(&rid, last, Some(ReservationState::Committed))
                    .await;
            }
            // Above the hold: capped in phase 1, charged in phase 2.
            2 => {
                let over = rng.random_range(1..=3 * CREDIT);
                let mut req = commit_req(&a, &rid, granted + over);
                let charged = match ctx.phase {
                    Phase::Capped => {
                        req.overrun = Overrun::Cap as i32;
                        granted
                    }
                    Phase::Charged => granted + over,
                };
                let (x, y) = call!(ctx, rng.random_bool(0.2), commit, req);
                ctx.check_balance(x.balance.as_ref(), "overrun").await;
                assert_eq!(
                    (x.charged_micros, x.overrun_micros),
                    (charged, over),
                    "{x:?}"
                );
                // The answer that took effect (a replay carries the first effect but the
                // balance of its own time).
                let first = match &y {
                    Some(y) if x.replayed => y,
                    _ => &x,
                };
                if first.debt_micros > 0 {
                    // Debt only once grants and overage room are exhausted.
                    let b = first.balance.as_ref().expect("balance");
                    assert!(b.grants.iter().all(|g| g.remaining_micros == 0), "{b:?}");
                    assert_eq!(
                        b.overage_used_micros + b.overage_held_micros,
                        OVERAGE_CAP,
                        "{b:?}"
                    );
                }
                if let Some(y) = y {
                    assert_eq!(
                        (y.charged_micros, y.debt_micros),
                        (x.charged_micros, x.debt_micros)
                    );
                    assert!(x.replayed != y.replayed, "one overrun commit takes effect");
                }
                ctx.record(&rid, charged, Some(ReservationState::Committed))
                    .await;
            }
            // A plain commit at or under the hold.
            _ => {
                let c = rng.random_range(0..=granted);
                let (x, y) = call!(ctx, rng.random_bool(0.2), commit, commit_req(&a, &rid, c));
                ctx.check_balance(x.balance.as_ref(), "commit").await;
                assert_eq!(
                    (x.charged_micros, x.released_micros),
                    (c, granted - c),
                    "{x:?}"
                );
                if let Some(y) = y {
                    assert_eq!(y.charged_micros, c);
                    assert!(x.replayed != y.replayed, "one commit takes effect");
                }
                ctx.record(&rid, c, Some(ReservationState::Committed)).await;
            }
        }
    }
}

fn req_min_ok(granted: i64, amount: i64) -> bool {
    granted >= amount / 2 && granted < amount
}

/// Adds a 20-credit top-up every 50 ms until the phase ends.
async fn treasurer(ctx: Arc<Ctx>, mut admin: CreditAdminClient<Channel>) {
    let mut n = 0;
    while ctx.running() {
        n += 1;
        let g = admin
            .create_grant(grant_req(
                &ctx.account,
                &format!("top-{n}"),
                GrantKind::TopUp,
                20 * CREDIT,
            ))
            .await
            .expect("create_grant")
            .into_inner();
        assert_eq!(g.amount_micros, 20 * CREDIT);
        assert_eq!(g.remaining_micros + g.spent_micros, 20 * CREDIT, "{g:?}");
        let mut l = ctx.ledger.lock().await;
        l.debt_paid_by_grants += g.spent_micros;
        l.granted += g.amount_micros;
        drop(l);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn run_phase(server: &CreditdServer, account: &str, phase: Phase) {
    let channel = server.channel().await;
    let mut admin = CreditAdminClient::new(channel.clone());
    let (overage, cap) = match phase {
        Phase::Capped => (false, 0),
        Phase::Charged => (true, OVERAGE_CAP),
    };
    admin
        .create_account(account_req(account, overage, cap))
        .await
        .expect("create_account");
    let mut granted = 0;
    for (id, kind, amount) in [
        ("allowance", GrantKind::Allowance, 100 * CREDIT),
        ("promo", GrantKind::Promo, 50 * CREDIT),
        ("prepaid", GrantKind::Prepaid, 150 * CREDIT),
    ] {
        admin
            .create_grant(grant_req(account, id, kind, amount))
            .await
            .expect("create_grant");
        granted += amount;
    }
    let ctx = Arc::new(Ctx {
        account: account.to_string(),
        phase,
        started: Instant::now(),
        holds: AtomicUsize::new(0),
        credits: CreditsClient::new(channel),
        ledger: Mutex::new(Ledger {
            granted,
            ..Default::default()
        }),
    });

    let mut tasks = Vec::new();
    for id in 0..CALLERS {
        tasks.push(tokio::spawn(caller(ctx.clone(), id)));
    }
    tasks.push(tokio::spawn(treasurer(ctx.clone(), admin.clone())));
    for t in tasks {
        t.await.expect("a caller failed");
    }
    verify(&ctx, &mut admin).await;
}

/// The books after a phase.
async fn verify(ctx: &Ctx, admin: &mut CreditAdminClient<Channel>) {
    let a = ctx.account.as_str();
    let ledger = ctx.ledger.lock().await;
    let mut credits = ctx.credits.clone();

    // Every reservation had exactly one effect.
    let ids: Vec<(String, Expected)> = ledger
        .reservations
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let seen: Vec<proto::Reservation> = futures::stream::iter(ids.iter().map(|(rid, _)| {
        let mut c = credits.clone();
        let req = proto::GetReservationRequest {
            account_id: a.to_string(),
            reservation_id: rid.clone(),
        };
        async move {
            c.get_reservation(req)
                .await
                .expect("get_reservation")
                .into_inner()
        }
    }))
    .buffered(16)
    .collect()
    .await;
    let mut committed_total = 0;
    for ((rid, want), got) in ids.iter().zip(&seen) {
        assert_eq!(&got.reservation_id, rid);
        assert_eq!(
            got.committed_micros, want.committed,
            "committed of {rid}: {got:?}"
        );
        assert_eq!(got.held_micros, 0, "{rid} still holds: {got:?}");
        assert_eq!(
            Some(ReservationState::try_from(got.state).expect("state")),
            want.state,
            "state of {rid}"
        );
        let by_alloc: i64 = got.allocations.iter().map(|x| x.committed_micros).sum();
        assert_eq!(by_alloc, got.committed_micros, "allocations of {rid}");
        committed_total += got.committed_micros;
    }

    // Every micro-credit granted is available, held, spent, expired or voided.
    let grants = admin
        .list_grants(proto::ListGrantsRequest {
            account_id: a.to_string(),
        })
        .await
        .expect("list_grants")
        .into_inner()
        .grants;
    let mut spent = 0;
    let mut amount = 0;
    for g in &grants {
        assert_eq!(
            g.amount_micros,
            g.remaining_micros
                + g.held_micros
                + g.spent_micros
                + g.expired_micros
                + g.voided_micros,
            "grant {g:?}"
        );
        assert_eq!(
            (g.held_micros, g.expired_micros, g.voided_micros),
            (0, 0, 0),
            "{g:?}"
        );
        spent += g.spent_micros;
        amount += g.amount_micros;
    }
    assert_eq!(amount, ledger.granted, "every grant is listed");
    let b = credits
        .get_balance(proto::GetBalanceRequest {
            account_id: a.to_string(),
            subject_id: String::new(),
        })
        .await
        .expect("get_balance")
        .into_inner();
    assert_eq!((b.held_micros, b.overage_held_micros), (0, 0), "{b:?}");
    let remaining: i64 = grants.iter().map(|g| g.remaining_micros).sum();
    assert_eq!(b.granted_remaining_micros, remaining);

    // Spending beyond the grants is exactly overage plus debt. Debt that later grants paid off
    // is in their `spent`, and was debt when it was committed:
    //   committed = (spent - paid) + overage_spent_total + (debt + paid).
    let paid = ledger.debt_paid_by_grants;
    assert_eq!(
        committed_total,
        (spent - paid) + b.overage_spent_total_micros + (b.debt_micros + paid),
        "conservation: committed {committed_total}, grants spent {spent} (of which debt paid \
         {paid}), overage {}, debt {}",
        b.overage_spent_total_micros,
        b.debt_micros
    );
    assert_eq!(
        amount - spent,
        remaining,
        "nothing held, expired or voided is left"
    );
    match ctx.phase {
        Phase::Capped => {
            assert_eq!(
                (b.debt_micros, b.overage_spent_total_micros, paid),
                (0, 0, 0)
            );
            assert!(b.available_micros >= 0);
        }
        Phase::Charged => {
            assert!(b.overage_spent_total_micros <= OVERAGE_CAP);
        }
    }

    // The run exercised what it claims to.
    let commits = ids
        .iter()
        .filter(|(_, e)| e.state == Some(ReservationState::Committed))
        .count();
    let releases = ids
        .iter()
        .filter(|(_, e)| e.state == Some(ReservationState::Released))
        .count();
    assert!(
        commits >= 20 && releases >= 5,
        "too little happened: {commits} commits, {releases} releases"
    );
    assert!(
        ledger.doubled_calls >= 10,
        "too few doubled calls: {}",
        ledger.doubled_calls
    );
    eprintln!(
        "phase {}: {} reservations ({commits} committed, {releases} released), {} doubled calls, \
         denials {:?}, {} balances checked, committed {committed_total}, overage {}, debt {}, \
         debt paid by grants {paid}",
        a,
        ids.len(),
        ledger.doubled_calls,
        ledger.denials,
        ledger.balances_checked,
        b.overage_spent_total_micros,
        b.debt_micros
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_callers_on_one_account_conserve_every_credit() {
    let redis = RedisServer::start();
    let server = CreditdServer::start(Some(&redis.url()), &["--shards", "4"]).await;
    run_phase(&server, "conc-capped", Phase::Capped).await;
    run_phase(&server, "conc-charged", Phase::Charged).await;
}
