//! Scenario tests of issue 3 §9: stories modelled on real credit-priced products, written once
//! over a store and run against both stores (memory, the reference model; Redis, its own
//! `redis-server` per test), on a manual clock. Each asserts exact balances, allocations, denial
//! reasons and details, and the exact alert events (kind, subject, detail) in order, and ends
//! with a conservation check of every grant.
//!
//! - `shared_workspace`: admins toggle spending per user, spending-access requests, the
//!   10k/5k/1k/0 credit alerts (once per crossing, re-armed by a top-up), premium actions that
//!   pause at zero, pay-as-you-go overage with a cap.
//! - `creator_studio`: a plan's allowance issued at creation and at each period, the 75 %
//!   allowance warning, top-ups drawn after the allowance, a production budget that rejects a job
//!   up front, auto top-up requests once per crossing.
//! - `organization_caps`: frequency caps per subject and account-wide, retry times, a daily budget.
//!
//! Roles (only the owner changes billing, other roles read) are covered through gRPC by
//! `tests/auth.rs`.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use common::redis_server::RedisServer;
use common::requests::*;
use common::stores::SHARDS;
use common::{CREDIT, DAY, SECOND, T0};
use creditd::error::Error;
use creditd::model::*;
use creditd::store::memory::MemoryStore;
use creditd::store::redis::RedisStore;
use creditd::store::{ClockMode, Store};

const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;

/// Runs every scenario against each store.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    let env = crate::Env::memory();
                    super::$name(&env).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $name() {
                    let env = crate::Env::redis().await;
                    super::$name(&env).await;
                }
            )*
        }
    };
}

suite!(
    shared_workspace,
    creator_studio,
    studio_rollover_announces_no_level_the_balance_did_not_cross,
    organization_caps,
);

// ---- the environment: a store and its events ----------------------------------------------------

enum Backend {
    Memory(Arc<MemoryStore>),
    Redis(Arc<RedisStore>),
}

/// A store under test on a manual clock at [`T0`], with access to the events it appended.
struct Env {
    backend: Backend,
    /// The private `redis-server` behind a Redis store, alive as long as the store.
    _server: Option<RedisServer>,
    /// How many alert events of each account earlier checks have already looked at.
    seen: Mutex<BTreeMap<String, usize>>,
}

impl Env {
    fn memory() -> Self {
        let store = Arc::new(MemoryStore::new(ClockMode::Manual(T0)));
        Env {
            backend: Backend::Memory(store),
            _server: None,
            seen: Mutex::default(),
        }
    }

    async fn redis() -> Self {
        let server = RedisServer::start();
        let store = RedisStore::new(&server.url(), SHARDS, ClockMode::Manual(T0))
            .await
            .expect("RedisStore::new");
        Env {
            backend: Backend::Redis(Arc::new(store)),
            _server: Some(server),
            seen: Mutex::default(),
        }
    }

    fn store(&self) -> &dyn Store {
        match &self.backend {
            Backend::Memory(s) => s.as_ref(),
            Backend::Redis(s) => s.as_ref(),
        }
    }

    async fn events(&self, account: &str) -> Vec<Event> {
        match &self.backend {
            Backend::Memory(s) => s.events(account),
            Backend::Redis(s) => s.events(account).await.expect("events"),
        }
    }

    /// Panics unless the alert events appended since the previous call are exactly `want`.
    async fn expect_alerts(&self, account: &str, want: &[Alert]) {
        let all = alerts(&self.events(account).await);
        let mut seen = self.seen.lock().expect("seen lock");
        let from = seen.get(account).copied().unwrap_or(0);
        assert_eq!(&all[from..], want, "new alerts of {account}");
        seen.insert(account.to_string(), all.len());
    }

    async fn advance(&self, millis: i64) {
        self.store()
            .advance_clock(millis)
            .await
            .expect("advance_clock");
    }

    async fn now(&self) -> Millis {
        self.store().now().await.expect("now")
    }
}

// ---- alerts -------------------------------------------------------------------------------------

/// The event kinds meant for people: admins, owners, the billing system.
const ALERT_KINDS: [&str; 6] = [
    "threshold_crossed",
    "allowance_used",
    "overage_cap_reached",
    "debt_incurred",
    "top_up_requested",
    "spending_access_requested",
];

#[derive(Debug, Clone, PartialEq, Eq)]
struct Alert {
    kind: String,
    subject: String,
    detail: String,
}

fn alerts(events: &[Event]) -> Vec<Alert> {
    events
        .iter()
        .filter(|e| ALERT_KINDS.contains(&e.kind.as_str()))
        .map(|e| Alert {
            kind: e.kind.clone(),
            subject: e.subject_id.clone(),
            detail: e.detail.clone(),
        })
        .collect()
}

fn alert(kind: &str, detail: impl ToString) -> Alert {
    Alert {
        kind: kind.to_string(),
        subject: String::new(),
        detail: detail.to_string(),
    }
}

/// Available credits fell to `credits` or below (the detail is the level in micros).
fn level(credits: i64) -> Alert {
    alert("threshold_crossed", credits * CREDIT)
}

fn access_requested(subject: &str, note: &str) -> Alert {
    Alert {
        kind: "spending_access_requested".to_string(),
        subject: subject.to_string(),
        detail: note.to_string(),
    }
}

// ---- requests and checks ------------------------------------------------------------------------

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A reserve of `amount` by `subject` with `labels`.
fn job(account: &str, id: &str, subject: &str, amount: Micros, tags: &[(&str, &str)]) -> Reserve {
    Reserve {
        subject_id: subject.to_string(),
        labels: labels(tags),
        ..new_reserve(account, id, amount)
    }
}

async fn balance(env: &Env, account: &str) -> Balance {
    env.store().get_balance(account).await.expect("get_balance")
}

async fn grants(env: &Env, account: &str) -> BTreeMap<String, Grant> {
    env.store()
        .list_grants(account)
        .await
        .expect("list_grants")
        .into_iter()
        .map(|g| (g.grant_id.clone(), g))
        .collect()
}

/// (amount, remaining, held, spent, expired, voided) of a grant.
fn buckets(g: &Grant) -> (Micros, Micros, Micros, Micros, Micros, Micros) {
    (g.amount, g.remaining, g.held, g.spent, g.expired, g.voided)
}

fn alloc(grant_id: &str, held: Micros, committed: Micros) -> Allocation {
    Allocation {
        grant_id: grant_id.to_string(),
        held,
        committed,
    }
}

async fn add_grant(env: &Env, req: CreateGrant) -> Grant {
    env.store().create_grant(req).await.expect("create_grant")
}

async fn set_policy(env: &Env, account: &str, policy: SubjectPolicy) {
    let stored = env
        .store()
        .set_subject_policy(account, policy.clone(), "owner")
        .await
        .expect("set_subject_policy");
    assert_eq!(stored, policy);
    let read = env
        .store()
        .get_subject_policy(account, &policy.subject_id)
        .await
        .expect("get_subject_policy");
    assert_eq!(read, policy);
}

async fn update(env: &Env, req: UpdateAccount) -> Account {
    env.store()
        .update_account(req)
        .await
        .expect("update_account")
}

/// A granted reserve; returns the reservation.
async fn granted(env: &Env, req: Reserve) -> Reservation {
    let out = env.store().reserve(req.clone()).await.expect("reserve");
    assert_eq!(out.denial, None, "reserve {req:?} was denied: {out:?}");
    assert_eq!(out.retry_at, None);
    assert!(!out.replayed);
    let r = out
        .reservation
        .expect("a granted reserve has a reservation");
    // Priced items: the store prices them; the hold is their total after free units.
    let want = if req.lines.is_empty() {
        req.amount
    } else {
        r.lines.iter().map(|l| l.amount).sum()
    };
    assert_eq!((r.held, r.granted, r.requested), (want, want, want));
    r
}

/// A refused reserve: checks the reason and detail, and that nothing changed (balance, events,
/// no reservation). Returns when to retry.
async fn refused(env: &Env, req: Reserve, reason: DenialReason, detail: &str) -> Option<Millis> {
    let account = req.account_id.clone();
    let before = balance(env, &account).await;
    let events = env.events(&account).await.len();
    let out = env.store().reserve(req.clone()).await.expect("reserve");
    assert_eq!(out.denial, Some(reason), "reserve {req:?}: {out:?}");
    assert_eq!(out.denial_detail, detail, "denial detail of {req:?}");
    assert_eq!(out.reservation, None);
    assert!(!out.replayed);
    assert_eq!(out.balance, before, "a refusal changed the balance");
    assert_eq!(balance(env, &account).await, before);
    assert_eq!(
        env.events(&account).await.len(),
        events,
        "a refusal appended events"
    );
    assert_eq!(
        env.store()
            .get_reservation(&account, &req.reservation_id)
            .await,
        Err(Error::ReservationNotFound),
        "a refusal left a reservation"
    );
    out.retry_at
}

/// Commits exactly what `req` held and checks the effect.
async fn commit_all(env: &Env, r: &Reservation) {
    let out = env
        .store()
        .commit(new_commit(&r.account_id, &r.reservation_id, r.held))
        .await
        .expect("commit");
    assert_eq!(
        out.effect,
        CommitEffect {
            charged: r.held,
            ..Default::default()
        }
    );
    assert_eq!(out.reservation.state, ReservationState::Committed);
}

/// A job that runs in full: reserved, then committed at its reserved amount.
async fn spend(env: &Env, req: Reserve) -> Reservation {
    let r = granted(env, req).await;
    commit_all(env, &r).await;
    r
}

// ---- 1. a shared workspace ----------------------------------------------------------------------

/// A team workspace on prepaid credits (modelled on shared AI workspaces such as Grid-style
/// spreadsheets): admins switch spending off and on per member, members ask for spending rights,
/// the workspace is warned at 10,000 / 5,000 / 1,000 / 0 credits, premium actions stop at zero,
/// and pay-as-you-go overage runs up to a monthly cap.
async fn shared_workspace(env: &Env) {
    const W: &str = "workspace";
    let s = env.store();
    s.create_account(CreateAccount {
        plan_id: "payg".into(),
        ..new_account(W)
    })
    .await
    .expect("create_account");
    add_grant(
        env,
        new_grant(W, "inv-ws-1", GrantKind::Prepaid, 12_000 * CREDIT),
    )
    .await;
    assert_eq!(balance(env, W).await.available, 12_000 * CREDIT);
    env.expect_alerts(W, &[]).await;

    // An admin switches bob's spending off; alice has no policy of her own and goes on.
    let off = SubjectPolicy {
        spending_enabled: false,
        ..SubjectPolicy::open("bob")
    };
    set_policy(env, W, off).await;
    assert_eq!(
        s.get_subject_policy(W, "alice").await.unwrap(),
        SubjectPolicy::open("alice"),
        "a subject without a policy is open"
    );
    refused(
        env,
        job(W, "b-1", "bob", 50 * CREDIT, &[("feature", "grid")]),
        DenialReason::SpendingDisabled,
        "spending is disabled for subject 'bob'",
    )
    .await;
    let q = s
        .quote(Quote {
            lines: Vec::new(),
            account_id: W.into(),
            subject_id: "bob".into(),
            amount: 50 * CREDIT,
        })
        .await
        .unwrap();
    assert_eq!(
        (q.affordable, q.denial),
        (false, Some(DenialReason::SpendingDisabled))
    );

    // Plain amounts from here on; the priced part of the story (free Grid testing rows, chat at
    // price zero) ends the scenario, so the balances below stay round.
    let r = spend(
        env,
        job(W, "a-1", "alice", 2_500 * CREDIT, &[("feature", "grid")]),
    )
    .await;
    assert_eq!(r.allocations, [alloc("inv-ws-1", 2_500 * CREDIT, 0)]);
    assert_eq!(balance(env, W).await.available, 9_500 * CREDIT);
    env.expect_alerts(W, &[level(10_000)]).await;

    // Bob asks for spending rights: an event for the workspace's admins.
    s.request_spending_access(W, "bob", "need credits for the launch video")
        .await
        .expect("request_spending_access");
    env.expect_alerts(
        W,
        &[access_requested("bob", "need credits for the launch video")],
    )
    .await;

    // The admin gives them back.
    set_policy(env, W, SubjectPolicy::open("bob")).await;
    spend(env, job(W, "b-2", "bob", 4_000 * CREDIT, &[])).await;
    assert_eq!(balance(env, W).await.available, 5_500 * CREDIT);
    env.expect_alerts(W, &[]).await;

    // Spending down: each level fires once, on the reserve that crosses it ("at or below").
    spend(env, job(W, "a-2", "alice", 600 * CREDIT, &[])).await;
    env.expect_alerts(W, &[level(5_000)]).await;
    spend(env, job(W, "b-3", "bob", 3_900 * CREDIT, &[])).await;
    assert_eq!(balance(env, W).await.available, 1_000 * CREDIT);
    env.expect_alerts(W, &[level(1_000)]).await;

    // A top-up raises the balance above 5,000 and 1,000: those two re-arm, 10,000 does not.
    add_grant(
        env,
        new_grant(W, "inv-ws-2", GrantKind::TopUp, 5_000 * CREDIT),
    )
    .await;
    assert_eq!(balance(env, W).await.available, 6_000 * CREDIT);
    env.expect_alerts(W, &[]).await;
    let r = spend(env, job(W, "a-3", "alice", 1_500 * CREDIT, &[])).await;
    assert_eq!(
        r.allocations,
        [
            alloc("inv-ws-1", 1_000 * CREDIT, 0),
            alloc("inv-ws-2", 500 * CREDIT, 0)
        ],
        "same priority, no expiry: the older grant first"
    );
    env.expect_alerts(W, &[level(5_000)]).await;
    spend(env, job(W, "b-4", "bob", 3_500 * CREDIT, &[])).await;
    env.expect_alerts(W, &[level(1_000)]).await;
    spend(env, job(W, "a-4", "alice", 1_000 * CREDIT, &[])).await;
    assert_eq!(balance(env, W).await.available, 0);
    env.expect_alerts(W, &[level(0)]).await;

    // Premium actions pause at zero.
    // (Zero-price features going on at zero: see the end of the story.)
    refused(
        env,
        job(W, "a-5", "alice", 5 * CREDIT, &[("feature", "video")]),
        DenialReason::InsufficientCredits,
        "needs 5 credits, 0 available",
    )
    .await;

    // Pay-as-you-go, capped at 100 credits this period: the room counts as available and re-arms
    // the 0 level.
    update(
        env,
        UpdateAccount {
            account_id: W.into(),
            overage_enabled: Some(true),
            overage_cap: Some(100 * CREDIT),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(balance(env, W).await.available, 100 * CREDIT);
    let r = granted(env, job(W, "a-6", "alice", 60 * CREDIT, &[])).await;
    assert_eq!(r.allocations, [alloc(OVERAGE_ID, 60 * CREDIT, 0)]);
    commit_all(env, &r).await;
    env.expect_alerts(W, &[]).await;
    refused(
        env,
        job(W, "b-5", "bob", 50 * CREDIT, &[]),
        DenialReason::OverageCapReached,
        "needs 50 credits, 40 available",
    )
    .await;
    spend(env, job(W, "b-6", "bob", 40 * CREDIT, &[])).await;
    env.expect_alerts(W, &[level(0), alert("overage_cap_reached", "")])
        .await;
    refused(
        env,
        job(W, "a-7", "alice", CREDIT, &[]),
        DenialReason::OverageCapReached,
        "needs 1 credits, 0 available",
    )
    .await;
    env.expect_alerts(W, &[]).await;

    let b = balance(env, W).await;
    assert_eq!(
        (b.available, b.held, b.debt),
        (0, 0, 0),
        "balance at the end: {b:?}"
    );
    assert_eq!(
        (b.overage_used, b.overage_held, b.overage_spent_total),
        (100 * CREDIT, 0, 100 * CREDIT)
    );
    let g = grants(env, W).await;
    assert_eq!(
        buckets(&g["inv-ws-1"]),
        (12_000 * CREDIT, 0, 0, 12_000 * CREDIT, 0, 0)
    );
    assert_eq!(
        buckets(&g["inv-ws-2"]),
        (5_000 * CREDIT, 0, 0, 5_000 * CREDIT, 0, 0)
    );
    assert_eq!(
        alerts(&env.events(W).await),
        [
            level(10_000),
            access_requested("bob", "need credits for the launch video"),
            level(5_000),
            level(1_000),
            level(5_000),
            level(1_000),
            level(0),
            level(0),
            alert("overage_cap_reached", ""),
        ],
        "every alert of the story, in order"
    );
    assert_conserved(s, W).await;

    // Priced by the rate card: premium work stays paused at the cap, while chat (price zero,
    // unlimited) goes on and is still recorded, and the Grid's first 10 rows of the period are
    // free testing rows that need no credits at all.
    let premium = Reserve {
        lines: vec![priced_line("video.export", 1, 50 * CREDIT, 0)],
        ..job(W, "a-8", "alice", 0, &[("feature", "video")])
    };
    let out = s.reserve(premium).await.expect("reserve");
    assert_eq!(out.denial, Some(DenialReason::OverageCapReached));
    let chat = Reserve {
        lines: vec![priced_line("chat.message", 25, 0, 0)],
        ..job(W, "chat-1", "alice", 0, &[("feature", "chat")])
    };
    let held = granted(env, chat).await;
    assert_eq!((held.requested, held.held), (0, 0));
    assert_eq!(held.lines[0].quantity, 25);
    let rows = Reserve {
        lines: vec![priced_line("grid.row", 10, CREDIT, 10)],
        ..job(W, "grid-test", "bob", 0, &[("feature", "grid")])
    };
    let held = granted(env, rows).await;
    assert_eq!((held.requested, held.lines[0].free_applied), (0, 10));
    let eleventh = Reserve {
        lines: vec![priced_line("grid.row", 1, CREDIT, 10)],
        ..job(W, "grid-11", "bob", 0, &[("feature", "grid")])
    };
    let out = s.reserve(eleventh).await.expect("reserve");
    assert_eq!(
        out.denial,
        Some(DenialReason::OverageCapReached),
        "the 11th row costs"
    );
    assert_conserved(s, W).await;
}

/// A line as the rate card prices it: whole micro-credits per unit, free units per period.
fn priced_line(sku: &str, quantity: i64, unit_price: Micros, free: i64) -> Line {
    Line {
        sku: sku.to_string(),
        quantity,
        price_num: unit_price,
        price_den: 1,
        free_per_period: free,
    }
}

// ---- 2. a tiered creator studio -----------------------------------------------------------------

const STUDIO: &str = "studio";
/// The studio's first billing period: 2026-01-15 to 2026-02-15; the second ends 2026-03-15.
const PERIOD_1_END: Millis = T0 + 31 * DAY;
const PERIOD_2_END: Millis = PERIOD_1_END + 28 * DAY;

fn creator_plans() -> Plans {
    Plans::from([
        ("creator".to_string(), 500 * CREDIT),
        ("pro".to_string(), 2_000 * CREDIT),
    ])
}

async fn creator_account(env: &Env) {
    env.store().set_plans(creator_plans());
    let a = env
        .store()
        .create_account(CreateAccount {
            plan_id: "creator".into(),
            ..new_account(STUDIO)
        })
        .await
        .expect("create_account");
    assert_eq!((a.plan_id.as_str(), a.billing_anchor), ("creator", T0));
}

/// A creator studio on a monthly plan (modelled on tiered creative AI studios): the plan's
/// allowance comes first each period, top-ups bought in blocks after it, a warning at 75 % of the
/// allowance, a production budget that refuses a job up front rather than run part of it, and
/// auto top-up requests to the billing system.
async fn creator_studio(env: &Env) {
    const A1: &str = "allowance-2026-01-15";
    const A2: &str = "allowance-2026-02-15";
    const MAYA: &str = "maya";
    let prod = [("project", "production")];
    let sandbox = [("project", "sandbox")];
    let s = env.store();

    // Creating the account on the plan issues the first period's allowance.
    creator_account(env).await;
    let g = grants(env, STUDIO).await;
    assert_eq!(g.len(), 1);
    let a1 = &g[A1];
    assert_eq!(a1.kind, GrantKind::Allowance);
    assert_eq!(buckets(a1), (500 * CREDIT, 500 * CREDIT, 0, 0, 0, 0));
    assert_eq!(
        (a1.priority, a1.effective_at, a1.expires_at),
        (10, T0, Some(PERIOD_1_END))
    );
    let kinds: Vec<String> = env
        .events(STUDIO)
        .await
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["account_created", "grant_created"]);
    let b = balance(env, STUDIO).await;
    assert_eq!((b.period_start, b.period_end), (T0, PERIOD_1_END));

    // The owner's settings: a low-balance alert at 100 credits (and 0), auto top-up of 100
    // credits when the balance falls to 50; then a first top-up block of 100 credits.
    update(
        env,
        UpdateAccount {
            account_id: STUDIO.into(),
            thresholds: Some(vec![100 * CREDIT, 0]),
            top_up: Some((50 * CREDIT, 100 * CREDIT)),
            ..Default::default()
        },
    )
    .await;
    add_grant(
        env,
        new_grant(STUDIO, "inv-1001", GrantKind::TopUp, 100 * CREDIT),
    )
    .await;
    assert_eq!(balance(env, STUDIO).await.available, 600 * CREDIT);

    // A production budget of 200 credits per period for the whole account.
    set_policy(
        env,
        STUDIO,
        SubjectPolicy {
            budgets: vec![Budget {
                scope: "label:project=production".into(),
                period: BudgetPeriod::BillingPeriod,
                limit: 200 * CREDIT,
            }],
            ..SubjectPolicy::open("*")
        },
    )
    .await;
    const BUDGET: &str = "budget b|*|label:project=production|period of the account";

    let a = granted(env, job(STUDIO, "p-a", MAYA, 150 * CREDIT, &prod)).await;
    assert_eq!(a.allocations, [alloc(A1, 150 * CREDIT, 0)]);
    // The second production job does not fit: refused up front, nothing held.
    refused(
        env,
        job(STUDIO, "p-b", MAYA, 100 * CREDIT, &prod),
        DenialReason::BudgetLimitReached,
        &format!("{BUDGET}: 50 of 200 credits left"),
    )
    .await;
    // Not even part of it: a job that would accept a smaller hold is refused all the same.
    refused(
        env,
        Reserve {
            min_amount: 10 * CREDIT,
            ..job(STUDIO, "p-b", MAYA, 100 * CREDIT, &prod)
        },
        DenialReason::BudgetLimitReached,
        &format!("{BUDGET}: 50 of 200 credits left"),
    )
    .await;
    // A job outside production goes on.
    spend(env, job(STUDIO, "s-c", MAYA, 100 * CREDIT, &sandbox)).await;

    // Commit below the hold: the budget counts what was charged.
    let out = s
        .commit(new_commit(STUDIO, "p-a", 120 * CREDIT))
        .await
        .unwrap();
    assert_eq!(
        out.effect,
        CommitEffect {
            charged: 120 * CREDIT,
            released: 30 * CREDIT,
            ..Default::default()
        }
    );
    // 80 credits fit exactly; releasing the job gives the room back.
    granted(env, job(STUDIO, "p-d", MAYA, 80 * CREDIT, &prod)).await;
    let out = s.release(STUDIO, "p-d").await.unwrap();
    assert_eq!(out.released, 80 * CREDIT);
    // An overrun commit counts in full.
    granted(env, job(STUDIO, "p-e", MAYA, 60 * CREDIT, &prod)).await;
    let out = s
        .commit(new_commit(STUDIO, "p-e", 70 * CREDIT))
        .await
        .unwrap();
    assert_eq!(
        out.effect,
        CommitEffect {
            charged: 70 * CREDIT,
            overrun: 10 * CREDIT,
            ..Default::default()
        }
    );
    assert_eq!(out.reservation.allocations, [alloc(A1, 0, 70 * CREDIT)]);
    refused(
        env,
        job(STUDIO, "p-f", MAYA, 11 * CREDIT, &prod),
        DenialReason::BudgetLimitReached,
        &format!("{BUDGET}: 10 of 200 credits left"),
    )
    .await;
    let b = balance(env, STUDIO).await;
    assert_eq!((b.available, b.held), (310 * CREDIT, 0));
    env.expect_alerts(STUDIO, &[]).await;

    // 380 of the 500-credit allowance used: the 75 % warning, once.
    spend(env, job(STUDIO, "s-g", MAYA, 90 * CREDIT, &sandbox)).await;
    env.expect_alerts(STUDIO, &[alert("allowance_used", "75")])
        .await;
    spend(env, job(STUDIO, "s-h", MAYA, 10 * CREDIT, &sandbox)).await;
    env.expect_alerts(STUDIO, &[]).await;
    assert_eq!(balance(env, STUDIO).await.available, 210 * CREDIT);

    // The period ends: the allowance's last 110 credits expire, a new allowance is issued, the
    // budget restarts and the alerts re-arm.
    env.advance(PERIOD_1_END - env.now().await).await;
    let before = env.events(STUDIO).await.len();
    let b = balance(env, STUDIO).await;
    let new: Vec<(String, String)> = env.events(STUDIO).await[before..]
        .iter()
        .map(|e| (e.kind.clone(), e.detail.clone()))
        .collect();
    assert_eq!(
        new,
        [
            ("grant_expired".to_string(), A1.to_string()),
            ("period_started".to_string(), String::new()),
            ("grant_created".to_string(), A2.to_string()),
        ]
    );
    assert_eq!((b.period_start, b.period_end), (PERIOD_1_END, PERIOD_2_END));
    assert_eq!(b.available, 600 * CREDIT);
    let order: Vec<&str> = b.grants.iter().map(|g| g.grant_id.as_str()).collect();
    assert_eq!(order, [A2, "inv-1001"]);
    let g = grants(env, STUDIO).await;
    assert_eq!(
        buckets(&g[A1]),
        (500 * CREDIT, 0, 0, 390 * CREDIT, 110 * CREDIT, 0)
    );
    assert_eq!(g[A2].kind, GrantKind::Allowance);
    assert_eq!(buckets(&g[A2]), (500 * CREDIT, 500 * CREDIT, 0, 0, 0, 0));
    assert_eq!(
        (g[A2].effective_at, g[A2].expires_at),
        (PERIOD_1_END, Some(PERIOD_2_END))
    );
    env.expect_alerts(STUDIO, &[]).await;

    // Period 2: the production budget is whole again; a production hold left to expire gives
    // its room back.
    env.advance(DAY).await;
    granted(env, job(STUDIO, "p-x", MAYA, 50 * CREDIT, &prod)).await;
    refused(
        env,
        job(STUDIO, "p-y", MAYA, 200 * CREDIT, &prod),
        DenialReason::BudgetLimitReached,
        &format!("{BUDGET}: 150 of 200 credits left"),
    )
    .await;
    env.advance(61 * SECOND).await;
    spend(env, job(STUDIO, "p-i", MAYA, 200 * CREDIT, &prod)).await;
    refused(
        env,
        job(STUDIO, "p-j", MAYA, CREDIT, &prod),
        DenialReason::BudgetLimitReached,
        &format!("{BUDGET}: 0 of 200 credits left"),
    )
    .await;
    // A big job takes the rest of the allowance, then the top-up: the balance falls to 50
    // credits, under the 100-credit alert, past 75 % of the allowance, and to the auto top-up
    // threshold.
    let r = spend(env, job(STUDIO, "s-k", MAYA, 350 * CREDIT, &sandbox)).await;
    assert_eq!(
        r.allocations,
        [
            alloc(A2, 300 * CREDIT, 0),
            alloc("inv-1001", 50 * CREDIT, 0)
        ]
    );
    env.expect_alerts(
        STUDIO,
        &[
            level(100),
            alert("allowance_used", "75"),
            alert("top_up_requested", 100 * CREDIT),
        ],
    )
    .await;

    // The billing system takes payment and grants the block under its invoice id.
    add_grant(
        env,
        new_grant(STUDIO, "inv-1002", GrantKind::TopUp, 100 * CREDIT),
    )
    .await;
    assert_eq!(balance(env, STUDIO).await.available, 150 * CREDIT);
    env.expect_alerts(STUDIO, &[]).await;
    let r = spend(env, job(STUDIO, "s-l", MAYA, 60 * CREDIT, &sandbox)).await;
    assert_eq!(
        r.allocations,
        [
            alloc("inv-1001", 50 * CREDIT, 0),
            alloc("inv-1002", 10 * CREDIT, 0)
        ]
    );
    env.expect_alerts(STUDIO, &[level(100)]).await;
    spend(env, job(STUDIO, "s-m", MAYA, 45 * CREDIT, &sandbox)).await;
    env.expect_alerts(STUDIO, &[alert("top_up_requested", 100 * CREDIT)])
        .await;
    spend(env, job(STUDIO, "s-n", MAYA, 5 * CREDIT, &sandbox)).await;
    env.expect_alerts(STUDIO, &[]).await;

    let b = balance(env, STUDIO).await;
    assert_eq!((b.available, b.held, b.debt), (40 * CREDIT, 0, 0));
    let g = grants(env, STUDIO).await;
    assert_eq!(buckets(&g[A2]), (500 * CREDIT, 0, 0, 500 * CREDIT, 0, 0));
    assert_eq!(
        buckets(&g["inv-1001"]),
        (100 * CREDIT, 0, 0, 100 * CREDIT, 0, 0)
    );
    assert_eq!(
        buckets(&g["inv-1002"]),
        (100 * CREDIT, 40 * CREDIT, 0, 60 * CREDIT, 0, 0)
    );
    assert_eq!(
        alerts(&env.events(STUDIO).await),
        [
            alert("allowance_used", "75"),
            level(100),
            alert("allowance_used", "75"),
            alert("top_up_requested", 100 * CREDIT),
            level(100),
            alert("top_up_requested", 100 * CREDIT),
        ],
        "every alert of the story, in order"
    );
    assert_conserved(s, STUDIO).await;
}

/// A small plan with the default levels (10,000 / 5,000 / 1,000 / 0 credits): its balance starts
/// below the top three, which creation does not announce. The period rollover raises the balance
/// (a new allowance), which crosses no level downwards, so it must not announce them either.
async fn studio_rollover_announces_no_level_the_balance_did_not_cross(env: &Env) {
    creator_account(env).await;
    spend(
        env,
        job(STUDIO, "s-1", "maya", 100 * CREDIT, &[("project", "x")]),
    )
    .await;
    env.expect_alerts(STUDIO, &[]).await;

    env.advance(PERIOD_1_END - T0).await;
    let b = balance(env, STUDIO).await;
    assert_eq!(b.available, 500 * CREDIT);
    assert_eq!(b.period_start, PERIOD_1_END);
    env.expect_alerts(STUDIO, &[]).await;

    // A real crossing in the new period is still announced, once.
    spend(
        env,
        job(STUDIO, "s-2", "maya", 500 * CREDIT, &[("project", "x")]),
    )
    .await;
    env.expect_alerts(STUDIO, &[level(0), alert("allowance_used", "75")])
        .await;
    assert_conserved(env.store(), STUDIO).await;
}

// ---- 3. an organization with frequency caps -----------------------------------------------------

/// An organization whose tools have frequency caps (modelled on agent platforms that limit runs
/// per hour): a cap on one API key, an account-wide cap shared by every member, and a daily
/// budget for one member that restarts at the next UTC day.
async fn organization_caps(env: &Env) {
    const O: &str = "org";
    const BOT: &str = "agent-bot";
    let s = env.store();
    s.create_account(CreateAccount {
        plan_id: "team".into(),
        ..new_account(O)
    })
    .await
    .expect("create_account");
    add_grant(
        env,
        new_grant(O, "po-1", GrantKind::Prepaid, 1_000 * CREDIT),
    )
    .await;

    // Caps on sku "*" count every reserve; a cap per SKU (counted in items) ends the story.
    set_policy(
        env,
        O,
        SubjectPolicy {
            rate_limits: vec![RateLimit {
                sku: "*".into(),
                max_count: 3,
                window_seconds: 3600,
            }],
            ..SubjectPolicy::open(BOT)
        },
    )
    .await;

    // Hour 0: three agent runs, the fourth is refused until the hour ends.
    let mut n = 0;
    let mut run = |subject: &str| {
        n += 1;
        job(
            O,
            &format!("run-{n}"),
            subject,
            CREDIT,
            &[("tool", "agent")],
        )
    };
    env.advance(10 * MINUTE).await;
    for _ in 0..3 {
        spend(env, run(BOT)).await;
        env.advance(5 * MINUTE).await;
    }
    assert_eq!(env.now().await, T0 + 25 * MINUTE);
    let retry = refused(
        env,
        run(BOT),
        DenialReason::RateLimited,
        "subject agent-bot may use 3 * per 3600 s; retry in 2100 s",
    )
    .await;
    assert_eq!(retry, Some(T0 + HOUR), "retry at the window's end");
    let q = s
        .quote(Quote {
            lines: Vec::new(),
            account_id: O.into(),
            subject_id: BOT.into(),
            amount: CREDIT,
        })
        .await
        .unwrap();
    assert_eq!(
        (q.affordable, q.denial),
        (false, Some(DenialReason::RateLimited))
    );
    // Another member is not capped.
    spend(env, run("dana")).await;

    // Just before the window ends: still refused; at its end: granted.
    env.advance(T0 + HOUR - SECOND - env.now().await).await;
    let retry = refused(
        env,
        run(BOT),
        DenialReason::RateLimited,
        "subject agent-bot may use 3 * per 3600 s; retry in 1 s",
    )
    .await;
    assert_eq!(retry, Some(T0 + HOUR));
    env.advance(SECOND).await;
    spend(env, run(BOT)).await;

    // An account-wide cap of 5 runs per hour, shared by every member (and on top of the bot's own).
    set_policy(
        env,
        O,
        SubjectPolicy {
            rate_limits: vec![RateLimit {
                sku: "*".into(),
                max_count: 5,
                window_seconds: 3600,
            }],
            ..SubjectPolicy::open("*")
        },
    )
    .await;
    env.advance(15 * MINUTE).await;
    spend(env, run(BOT)).await;
    spend(env, run(BOT)).await;
    // The bot's own cap is checked first.
    let retry = refused(
        env,
        run(BOT),
        DenialReason::RateLimited,
        "subject agent-bot may use 3 * per 3600 s; retry in 2700 s",
    )
    .await;
    assert_eq!(retry, Some(T0 + 2 * HOUR));
    for _ in 0..3 {
        spend(env, run("dana")).await;
    }
    let retry = refused(
        env,
        run("erin"),
        DenialReason::RateLimited,
        "the account may use 5 * per 3600 s; retry in 2700 s",
    )
    .await;
    assert_eq!(retry, Some(T0 + 2 * HOUR));

    // Hour 2: dana gets a daily budget of 10 credits (the account-wide cap still applies).
    env.advance(T0 + 2 * HOUR - env.now().await).await;
    set_policy(
        env,
        O,
        SubjectPolicy {
            budgets: vec![Budget {
                scope: "subject".into(),
                period: BudgetPeriod::Day,
                limit: 10 * CREDIT,
            }],
            ..SubjectPolicy::open("dana")
        },
    )
    .await;
    const DAY_BUDGET: &str = "budget b|dana|subject|day of subject dana";
    spend(env, job(O, "d-1", "dana", 6 * CREDIT, &[])).await;
    let retry = refused(
        env,
        job(O, "d-2", "dana", 5 * CREDIT, &[]),
        DenialReason::BudgetLimitReached,
        &format!("{DAY_BUDGET}: 4 of 10 credits left"),
    )
    .await;
    assert_eq!(retry, None, "a budget gives no retry time");
    spend(env, job(O, "d-3", "dana", 4 * CREDIT, &[])).await;
    refused(
        env,
        job(O, "d-4", "dana", CREDIT, &[]),
        DenialReason::BudgetLimitReached,
        &format!("{DAY_BUDGET}: 0 of 10 credits left"),
    )
    .await;
    // Other members are not bound by dana's budget.
    spend(env, job(O, "e-1", "erin", 20 * CREDIT, &[])).await;

    // The next UTC day (T0 is midnight): the day budget restarts.
    env.advance(T0 + DAY + 9 * HOUR - env.now().await).await;
    spend(env, job(O, "d-5", "dana", 10 * CREDIT, &[])).await;
    refused(
        env,
        job(O, "d-6", "dana", CREDIT, &[]),
        DenialReason::BudgetLimitReached,
        &format!("{DAY_BUDGET}: 0 of 10 credits left"),
    )
    .await;

    // 4 runs in hour 0, 6 in hour 1, 10 + 20 credits on day 1, 10 on day 2.
    let b = balance(env, O).await;
    assert_eq!((b.available, b.held, b.debt), (950 * CREDIT, 0, 0));
    assert_eq!(
        buckets(&grants(env, O).await["po-1"]),
        (1_000 * CREDIT, 950 * CREDIT, 0, 50 * CREDIT, 0, 0)
    );
    env.expect_alerts(O, &[]).await;
    assert_conserved(s, O).await;

    // A cap per SKU counts units of that SKU only: at most 2 research-agent runs an hour for
    // frank, while his image renders are not capped.
    set_policy(
        env,
        O,
        SubjectPolicy {
            rate_limits: vec![RateLimit {
                sku: "agent.run".into(),
                max_count: 2,
                window_seconds: 3_600,
            }],
            ..SubjectPolicy::open("frank")
        },
    )
    .await;
    let run = |id: &str, q: i64| Reserve {
        lines: vec![priced_line("agent.run", q, 3 * CREDIT, 0)],
        ..job(O, id, "frank", 0, &[])
    };
    granted(env, run("f-1", 2)).await;
    let out = s.reserve(run("f-2", 1)).await.expect("reserve");
    assert_eq!(out.denial, Some(DenialReason::RateLimited));
    assert!(out.retry_at.is_some());
    let image = Reserve {
        lines: vec![priced_line("image.standard", 4, 5 * CREDIT, 0)],
        ..job(O, "f-3", "frank", 0, &[])
    };
    assert_eq!(granted(env, image).await.requested, 20 * CREDIT);
    assert_conserved(s, O).await;
}
