//! Property test: random operation sequences against the reference model (the memory store)
//! and the Redis store, both on a manual clock at the same instant and advanced together. After
//! every step the answers must be identical (Ok values equal, errors with the same reason and
//! field), and so must the balance, `list_grants` and every reservation of the case; at the end
//! of each case, so must the account's events.
//!
//! Then the ledger: a reconciler books the case into a private PostgreSQL, `check` must find the
//! account in sync (same sequence number, same balances grant by grant), and after a rebuild of the
//! account from the ledger the model must still agree with Redis on everything above. At the end,
//! the ledger's invariants must hold.
//!
//! 1,000 cases of up to 25 operations by default (CI runs 2,000). Run more with e.g.
//! `PROPTEST_CASES=5000 cargo test --test model_vs_redis`.

mod common;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::postgres::PostgresServer;
use common::redis_server::RedisServer;
use common::requests::*;
use common::stores::SHARDS;
use common::{CREDIT, DAY, SECOND, T0};
use creditd::error::Error;
use creditd::ledger::drift::{check_accounts, ledger_invariants, Status};
use creditd::ledger::rebuild::{rebuild_account, Options};
use creditd::ledger::reconciler::Reconciler;
use creditd::ledger::Ledger;
use creditd::model::*;
use creditd::store::memory::MemoryStore;
use creditd::store::redis::RedisStore;
use creditd::store::{ClockMode, Store};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

const DEFAULT_CASES: u32 = 1000;
/// Each case runs at its own base time, a year after the previous case's, so the holds that
/// earlier cases left in Redis are all due and reaped before the case starts.
const CASE_SPACING: i64 = 366 * DAY;
/// Clock advances stop once a case has moved this far (well under `CASE_SPACING`).
const MAX_CASE_SPAN: i64 = 250 * DAY;

/// Reserve draws its id from this many; commit, release and extend pick among the ids reserved
/// so far in the case.
const RESERVATIONS: usize = 8;
const GRANTS: usize = 5;
const CAPTURES: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    Grant {
        id: usize,
        kind: GrantKind,
        amount: Micros,
        priority: Option<i32>,
        effective_in: Option<i64>,
        expires_in: Option<i64>,
        unit_price: Micros,
    },
    Void {
        id: usize,
    },
    Update {
        overage_enabled: Option<bool>,
        overage_cap: Option<Micros>,
        suspended: Option<bool>,
        thresholds: Option<Vec<Micros>>,
        allowance_alert_percent: Option<i64>,
        top_up: Option<(Micros, Micros)>,
    },
    /// Sets the policy of subject `owner` (see `subject`): spending right, a budget, a cap.
    Policy {
        owner: usize,
        spending_enabled: bool,
        budget: Option<(usize, bool, Micros)>,
        rate: Option<(i64, i64)>,
    },
    RequestAccess {
        owner: usize,
    },
    Reserve {
        subject: usize,
        id: usize,
        amount: Micros,
        min_amount: Micros,
        ttl_seconds: i64,
        labels: usize,
        items: Option<(usize, i64)>,
    },
    Commit {
        id: usize,
        amount: Micros,
        capture: Option<usize>,
        cap: bool,
        cost: Micros,
        /// Items instead of the amount: (item set, quantity).
        items: Option<(usize, i64)>,
    },
    Release {
        id: usize,
    },
    Extend {
        id: usize,
        ttl_seconds: i64,
    },
    Quote {
        amount: Micros,
        items: Option<(usize, i64)>,
    },
    Advance {
        millis: i64,
    },
    Reap,
    /// Runs again the n-th earlier operation (modulo how many there were).
    Replay {
        nth: usize,
    },
}

#[derive(Debug, Clone)]
struct Case {
    /// On the "pro" plan, whose allowance comes at creation and at each new period.
    on_plan: bool,
    overage_enabled: bool,
    overage_cap: Micros,
    anchor_days_ago: Option<i64>,
    ops: Vec<Op>,
}

fn amount() -> impl Strategy<Value = Micros> {
    prop_oneof![
        8 => 1..=25 * CREDIT,
        4 => (1..=25i64).prop_map(|c| c * CREDIT),
        1 => Just(MAX_MICROS),
        1 => (1..=1_000i64).prop_map(|d| MAX_MICROS - d),
    ]
}

fn kind() -> impl Strategy<Value = GrantKind> {
    prop_oneof![
        Just(GrantKind::Allowance),
        Just(GrantKind::Prepaid),
        Just(GrantKind::TopUp),
        Just(GrantKind::Promo),
    ]
}

fn ttl() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(1i64),
        Just(5),
        Just(30),
        Just(60),
        Just(120),
        1..=600i64
    ]
}

fn advance() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => 1..=5_000i64,
        3 => prop_oneof![Just(SECOND), Just(5 * SECOND), Just(30 * SECOND), Just(60 * SECOND)],
        2 => 1..=700 * SECOND,
        1 => 1..=35 * DAY,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let grant = (
        0..GRANTS,
        kind(),
        amount(),
        prop::option::of(prop_oneof![Just(1i32), Just(10), Just(20), Just(30)]),
        prop::option::of(prop_oneof![
            Just(0i64),
            Just(10 * SECOND),
            Just(60 * SECOND)
        ]),
        prop::option::of(prop_oneof![
            Just(SECOND),
            Just(30 * SECOND),
            Just(60 * SECOND),
            Just(DAY),
            Just(40 * DAY),
            1..=100 * SECOND,
        ]),
        prop_oneof![Just(0i64), Just(1_500)],
    )
        .prop_map(
            |(id, kind, amount, priority, effective_in, expires_in, unit_price)| Op::Grant {
                id,
                kind,
                amount,
                priority,
                effective_in,
                expires_in,
                unit_price,
            },
        );
    let reserve = (
        0..RESERVATIONS,
        prop_oneof![3 => 1..=10 * CREDIT, 1 => 1..=40 * CREDIT],
        0..4u8,
        ttl(),
        0..3usize,
    )
        .prop_flat_map(|t| {
            (
                Just(t),
                0..3usize,
                prop::option::weighted(0.35, (0..ITEM_SETS, 1..=30i64)),
            )
        })
        .prop_map(
            |((id, amount, min_pick, ttl_seconds, labels), subject, items)| {
                let min_amount = match min_pick {
                    0 | 1 => 0,
                    2 => amount / 2,
                    _ => amount,
                };
                Op::Reserve {
                    subject,
                    id,
                    amount,
                    min_amount,
                    ttl_seconds,
                    labels,
                    items,
                }
            },
        );
    let commit = (
        0..RESERVATIONS,
        prop_oneof![
            1 => Just(0i64),
            4 => 1..=12 * CREDIT,
            2 => (1..=30i64).prop_map(|c| c * CREDIT),
        ],
        prop::option::of(0..CAPTURES),
        any::<bool>(),
        prop_oneof![Just(0i64), Just(100)],
    )
        .prop_flat_map(|t| {
            (
                Just(t),
                prop::option::weighted(0.3, (0..ITEM_SETS, 1..=30i64)),
            )
        })
        .prop_map(|((id, amount, capture, cap, cost), items)| Op::Commit {
            id,
            amount,
            capture,
            cap,
            cost,
            items,
        });
    let update = (
        prop::option::of(any::<bool>()),
        prop::option::of(prop_oneof![Just(0i64), Just(5 * CREDIT), Just(20 * CREDIT)]),
        prop::option::of(prop::bool::weighted(0.3)),
        prop::option::of(prop_oneof![
            Just(vec![20 * CREDIT, 5 * CREDIT, 0]),
            Just(vec![3 * CREDIT])
        ]),
        prop::option::of(prop_oneof![Just(50i64), Just(75)]),
        prop::option::of(prop_oneof![
            Just((0i64, 0i64)),
            Just((5 * CREDIT, 10 * CREDIT))
        ]),
    )
        .prop_map(
            |(
                overage_enabled,
                overage_cap,
                suspended,
                thresholds,
                allowance_alert_percent,
                top_up,
            )| {
                Op::Update {
                    overage_enabled,
                    overage_cap,
                    suspended,
                    thresholds,
                    allowance_alert_percent,
                    top_up,
                }
            },
        );
    let policy = (
        0..3usize,
        prop::bool::weighted(0.8),
        prop::option::of((0..3usize, any::<bool>(), 1..=30 * CREDIT)),
        prop::option::of((1..=4i64, prop_oneof![Just(1i64), Just(60), Just(3_600)])),
    )
        .prop_map(|(owner, spending_enabled, budget, rate)| Op::Policy {
            owner,
            spending_enabled,
            budget,
            rate,
        });
    prop_oneof![
        3 => grant,
        1 => (0..GRANTS).prop_map(|id| Op::Void { id }),
        2 => update,
        2 => policy,
        1 => (0..3usize).prop_map(|owner| Op::RequestAccess { owner }),
        10 => reserve,
        8 => commit,
        3 => (0..RESERVATIONS).prop_map(|id| Op::Release { id }),
        2 => (0..RESERVATIONS, ttl()).prop_map(|(id, ttl_seconds)| Op::Extend { id, ttl_seconds }),
        1 => (amount(), prop::option::weighted(0.5, (0..ITEM_SETS, 1..=30i64)))
            .prop_map(|(amount, items)| Op::Quote { amount, items }),
        5 => advance().prop_map(|millis| Op::Advance { millis }),
        1 => Just(Op::Reap),
        2 => any::<usize>().prop_map(|nth| Op::Replay { nth }),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        any::<bool>(),
        prop_oneof![Just(0i64), Just(5 * CREDIT), Just(20 * CREDIT)],
        prop::option::of(0..=30i64),
        (kind(), 1..=60 * CREDIT),
        prop::collection::vec(op(), 1..=24),
        any::<bool>(),
    )
        .prop_map(
            |(overage_enabled, overage_cap, anchor_days_ago, (kind, amount), mut ops, on_plan)| {
                // Start funded, so that most reserves are granted.
                ops.insert(
                    0,
                    Op::Grant {
                        id: 0,
                        kind,
                        amount,
                        priority: None,
                        effective_in: None,
                        expires_in: None,
                        unit_price: 0,
                    },
                );
                Case {
                    on_plan,
                    overage_enabled,
                    overage_cap,
                    anchor_days_ago,
                    ops,
                }
            },
        )
}

/// One case: the two stores, the case's account and its clock.
struct Pair {
    model: Arc<MemoryStore>,
    redis: Arc<RedisStore>,
    account: String,
    now: i64,
    span: i64,
    /// Reservation ids a Reserve was sent for, in first-seen order.
    reserved: Vec<String>,
}

/// How many item sets `priced` knows.
const ITEM_SETS: usize = 4;

/// Priced lines as the rate card would give them: Grid rows (1 credit, 10 free per period),
/// tokens (0.2 credits per 1k) with an image (5 credits), chat (free, unlimited), video seconds
/// (0.0123456 credits, so the unit price is a fraction of a micro-credit).
fn priced(set: usize, q: i64) -> Vec<Line> {
    let line = |sku: &str, quantity: i64, num: i64, den: i64, free: i64| Line {
        sku: sku.to_string(),
        quantity,
        price_num: num,
        price_den: den,
        free_per_period: free,
    };
    match set {
        0 => vec![line("grid.row", q, CREDIT, 1, 10)],
        1 => vec![
            line("text.tokens_1k", q, 200_000, 1, 0),
            line("image.standard", 1, 5 * CREDIT, 1, 0),
        ],
        2 => vec![line("chat.message", q, 0, 1, 0)],
        _ => vec![
            line("video.second", q, 123_456, 10, 0),
            line("grid.row", q, CREDIT, 1, 10),
        ],
    }
}

/// A commit's items for a set: the set's SKUs with quantity q.
fn item_counts(set: usize, q: i64) -> Vec<ItemCount> {
    priced(set, q)
        .into_iter()
        .map(|l| ItemCount {
            sku: l.sku,
            quantity: l.quantity,
        })
        .collect()
}

/// Subjects of a case: two users and, for policies, the whole account.
fn subject(i: usize, for_policy: bool) -> String {
    match i {
        0 => "u0".to_string(),
        1 => "u1".to_string(),
        _ if for_policy => "*".to_string(),
        _ => String::new(),
    }
}

fn rid(i: usize) -> String {
    format!("r{i}")
}

fn labels(n: usize) -> BTreeMap<String, String> {
    [("feature", "grid"), ("project", "p-1")]
        .iter()
        .take(n)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Compares two answers: equal Ok values, or errors with the same reason and field.
fn same<T: PartialEq + Debug>(
    what: &str,
    model: Result<T, Error>,
    redis: Result<T, Error>,
) -> Result<(), TestCaseError> {
    match (&model, &redis) {
        (Ok(a), Ok(b)) if a == b => Ok(()),
        (Err(a), Err(b)) if error_key(a) == error_key(b) => {
            if matches!(a, Error::Internal(_) | Error::Unavailable(_)) {
                return Err(TestCaseError::fail(format!("{what}: both failed: {a:?}")));
            }
            Ok(())
        }
        _ => Err(TestCaseError::fail(format!(
            "{what}: the stores disagree\n model: {model:?}\n redis: {redis:?}"
        ))),
    }
}

impl Pair {
    /// The reservation a commit, release or extend acts on: one reserved earlier in the case
    /// when there is one.
    fn target(&self, i: usize) -> String {
        if self.reserved.is_empty() {
            rid(i)
        } else {
            self.reserved[i % self.reserved.len()].clone()
        }
    }

    async fn run(&mut self, op: &Op, step: usize) -> Result<(), TestCaseError> {
        let a = self.account.as_str();
        let what = format!("step {step} {op:?}");
        match op {
            Op::Grant {
                id,
                kind,
                amount,
                priority,
                effective_in,
                expires_in,
                unit_price,
            } => {
                let req = CreateGrant {
                    priority: *priority,
                    effective_at: effective_in.map(|d| self.now + d),
                    expires_at: expires_in.map(|d| self.now + d),
                    unit_price: *unit_price,
                    ..new_grant(a, &format!("g{id}"), *kind, *amount)
                };
                let m = self.model.create_grant(req.clone()).await;
                let r = self.redis.create_grant(req).await;
                same(&what, m, r)
            }
            Op::Void { id } => {
                let g = format!("g{id}");
                let m = self.model.void_grant(a, &g, "admin-1").await;
                let r = self.redis.void_grant(a, &g, "admin-1").await;
                same(&what, m, r)
            }
            Op::Update {
                overage_enabled,
                overage_cap,
                suspended,
                thresholds,
                allowance_alert_percent,
                top_up,
            } => {
                let req = UpdateAccount {
                    actor: "admin-1".to_string(),
                    account_id: a.to_string(),
                    overage_enabled: *overage_enabled,
                    overage_cap: *overage_cap,
                    suspended: *suspended,
                    parent_id: None,
                    thresholds: thresholds.clone(),
                    allowance_alert_percent: *allowance_alert_percent,
                    top_up: *top_up,
                };
                let m = self.model.update_account(req.clone()).await;
                let r = self.redis.update_account(req).await;
                same(&what, m, r)
            }
            Op::Policy {
                owner,
                spending_enabled,
                budget,
                rate,
            } => {
                let scopes = ["subject", "label:project=p-1", "label:feature=grid"];
                let policy = SubjectPolicy {
                    subject_id: subject(*owner, true),
                    spending_enabled: *spending_enabled,
                    budgets: budget
                        .iter()
                        .map(|(scope, day, limit)| Budget {
                            scope: scopes[*scope].to_string(),
                            period: if *day {
                                BudgetPeriod::Day
                            } else {
                                BudgetPeriod::BillingPeriod
                            },
                            limit: *limit,
                        })
                        .collect(),
                    rate_limits: rate
                        .iter()
                        .map(|(max_count, window_seconds)| RateLimit {
                            sku: "*".to_string(),
                            max_count: *max_count,
                            window_seconds: *window_seconds,
                        })
                        .collect(),
                };
                let m = self
                    .model
                    .set_subject_policy(a, policy.clone(), "admin-1")
                    .await;
                let r = self
                    .redis
                    .set_subject_policy(a, policy.clone(), "admin-1")
                    .await;
                same(&what, m, r)?;
                let m = self.model.get_subject_policy(a, &policy.subject_id).await;
                let r = self.redis.get_subject_policy(a, &policy.subject_id).await;
                same(&what, m, r)
            }
            Op::RequestAccess { owner } => {
                let who = subject(*owner, false);
                let m = self.model.request_spending_access(a, &who, "please").await;
                let r = self.redis.request_spending_access(a, &who, "please").await;
                same(&what, m, r)
            }
            Op::Reserve {
                subject: who,
                id,
                amount,
                min_amount,
                ttl_seconds,
                labels: n,
                items,
            } => {
                let (amount, min_amount, lines) = match items {
                    Some((set, q)) => (0, 0, priced(*set, *q)),
                    None => (*amount, *min_amount, Vec::new()),
                };
                let req = Reserve {
                    lines,
                    card_version: "v1".to_string(),
                    subject_id: subject(*who, false),
                    min_amount,
                    ttl_seconds: *ttl_seconds,
                    labels: labels(*n),
                    ..new_reserve(a, &rid(*id), amount)
                };
                if !self.reserved.contains(&req.reservation_id) {
                    self.reserved.push(req.reservation_id.clone());
                }
                let m = self.model.reserve(req.clone()).await;
                let r = self.redis.reserve(req).await;
                same(&what, m, r)
            }
            Op::Commit {
                id,
                amount,
                capture,
                cap,
                cost,
                items,
            } => {
                let (amount, lines) = match items {
                    Some((set, q)) => (0, item_counts(*set, *q)),
                    None => (*amount, Vec::new()),
                };
                let req = Commit {
                    capture_id: capture.map(|c| format!("c{c}")),
                    overrun: if *cap { Overrun::Cap } else { Overrun::Charge },
                    cost: *cost,
                    lines,
                    ..new_commit(a, &self.target(*id), amount)
                };
                let m = self.model.commit(req.clone()).await;
                let r = self.redis.commit(req).await;
                same(&what, m, r)
            }
            Op::Release { id } => {
                let target = self.target(*id);
                let m = self.model.release(a, &target).await;
                let r = self.redis.release(a, &target).await;
                same(&what, m, r)
            }
            Op::Extend { id, ttl_seconds } => {
                let req = new_extend(a, &self.target(*id), *ttl_seconds);
                let m = self.model.extend(req.clone()).await;
                let r = self.redis.extend(req).await;
                same(&what, m, r)
            }
            Op::Quote { amount, items } => {
                let req = Quote {
                    lines: items.map(|(set, q)| priced(set, q)).unwrap_or_default(),
                    account_id: a.to_string(),
                    subject_id: "user-1".to_string(),
                    amount: if items.is_some() { 0 } else { *amount },
                };
                let m = self.model.quote(req.clone()).await;
                let r = self.redis.quote(req).await;
                same(&what, m, r)
            }
            Op::Advance { millis } => {
                if self.span + millis > MAX_CASE_SPAN {
                    return Ok(());
                }
                self.span += millis;
                self.now += millis;
                let m = self.model.advance_clock(*millis).await;
                let r = self.redis.advance_clock(*millis).await;
                same(&what, m, r)?;
                same(&what, Ok(self.now), self.redis.now().await)
            }
            Op::Reap => {
                let m = self.model.reap().await;
                let r = self.redis.reap().await;
                same(&what, m, r)
            }
            Op::Replay { .. } => Ok(()),
        }
    }

    /// Both stores must show the same account after every step.
    async fn compare_state(&self, step: usize) -> Result<(), TestCaseError> {
        let a = self.account.as_str();
        same(
            &format!("after step {step}: balance"),
            self.model.get_balance(a).await,
            self.redis.get_balance(a).await,
        )?;
        same(
            &format!("after step {step}: balance of subject u0"),
            self.model.get_subject_balance(a, "u0").await,
            self.redis.get_subject_balance(a, "u0").await,
        )?;
        same(
            &format!("after step {step}: list_grants"),
            self.model.list_grants(a).await,
            self.redis.list_grants(a).await,
        )?;
        for id in self
            .reserved
            .iter()
            .map(String::as_str)
            .chain(["never-reserved"])
        {
            same(
                &format!("after step {step}: reservation {id}"),
                self.model.get_reservation(a, id).await,
                self.redis.get_reservation(a, id).await,
            )?;
        }
        let grants = self.model.list_grants(a).await.map_err(fail)?;
        for g in grants {
            prop_assert_eq!(
                g.amount,
                g.remaining + g.held + g.spent + g.expired + g.voided,
                "conservation of {:?}",
                g
            );
        }
        Ok(())
    }
}

fn fail(e: Error) -> TestCaseError {
    TestCaseError::fail(format!("{e:?}"))
}

fn fail_any(e: anyhow::Error) -> TestCaseError {
    TestCaseError::fail(format!("{e:#}"))
}

struct Books<'a> {
    ledger: &'a Ledger,
    reconciler: &'a tokio::sync::Mutex<Reconciler>,
}

async fn run_case(
    url: &str,
    books: &Books<'_>,
    base: i64,
    n: u64,
    case: &Case,
) -> Result<(), TestCaseError> {
    let model = Arc::new(MemoryStore::new(ClockMode::Manual(base)));
    let redis = Arc::new(
        RedisStore::new(url, SHARDS, ClockMode::Manual(base))
            .await
            .map_err(fail)?,
    );
    let plans: Plans = [("pro".to_string(), 40 * CREDIT)].into();
    model.set_plans(plans.clone());
    redis.set_plans(plans);
    // Settle whatever earlier cases left due, so that reap counts only this case's account.
    while redis.reap().await.map_err(fail)? > 0 {}
    let account = format!("prop-{n}");
    let req = CreateAccount {
        plan_id: if case.on_plan {
            "pro".to_string()
        } else {
            String::new()
        },
        overage_enabled: case.overage_enabled,
        overage_cap: case.overage_cap,
        billing_anchor: case
            .anchor_days_ago
            .map(|d| base - d * DAY - 3_600 * SECOND),
        ..new_account(&account)
    };
    same(
        "create_account",
        model.create_account(req.clone()).await,
        redis.create_account(req).await,
    )?;
    let mut pair = Pair {
        model,
        redis,
        account,
        now: base,
        span: 0,
        reserved: Vec::new(),
    };
    let mut done: Vec<&Op> = Vec::new();
    for (step, op) in case.ops.iter().enumerate() {
        let op = match op {
            Op::Replay { nth } if !done.is_empty() => done[nth % done.len()],
            other => other,
        };
        pair.run(op, step).await?;
        pair.compare_state(step).await?;
        done.push(op);
    }
    // The same events, in the same order, with the same moves: what the ledger will book.
    let a = pair.account.as_str();
    same(
        "events",
        Ok(pair.model.events(a)),
        pair.redis.events(a).await,
    )?;

    // The ledger books them and agrees with Redis; Redis rebuilt from the ledger agrees with the
    // model on everything compared above.
    books
        .reconciler
        .lock()
        .await
        .drain()
        .await
        .map_err(fail_any)?;
    let only = [pair.account.clone()];
    let report = check_accounts(books.ledger, url, SHARDS, Some(&only), Duration::ZERO)
        .await
        .map_err(fail_any)?;
    if report.accounts.get(a) != Some(&Status::InSync) {
        return Err(TestCaseError::fail(format!(
            "ledger and Redis differ: {:?}",
            report.accounts.get(a)
        )));
    }
    let mut conn = pair.redis.connection().await.map_err(fail)?;
    let opts = Options {
        wait: Duration::from_secs(5),
        force: false,
    };
    rebuild_account(books.ledger, &mut conn, SHARDS, a, &opts)
        .await
        .map_err(fail_any)?;
    pair.compare_state(case.ops.len()).await
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

#[test]
fn model_and_redis_agree_on_random_operation_sequences() {
    let redis = RedisServer::start();
    let url = redis.url();
    let pg = PostgresServer::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let ledger = Ledger::connect(&pg.url(), 3).expect("ledger pool");
    rt.block_on(ledger.migrate()).expect("migrate");
    let mut cfg = creditd::ledger::reconciler::Config::new(&url, SHARDS);
    cfg.drift_interval = None;
    let reconciler = tokio::sync::Mutex::new(
        rt.block_on(Reconciler::new(cfg, ledger.clone()))
            .expect("reconciler"),
    );
    let books = Books {
        ledger: &ledger,
        reconciler: &reconciler,
    };
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        max_shrink_time: 120_000,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let counter = AtomicU64::new(0);
    let result = runner.run(&case(), |case| {
        let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
        let base = T0 + n as i64 * CASE_SPACING;
        rt.block_on(run_case(&url, &books, base, n, &case))
    });
    match result {
        Ok(()) => {
            let broken = rt
                .block_on(ledger_invariants(&ledger))
                .expect("invariant queries");
            assert!(broken.is_empty(), "ledger invariants: {broken:?}");
        }
        Err(TestError::Fail(why, case)) => {
            panic!("model and Redis disagree: {why}\nminimal case: {case:#?}")
        }
        Err(e) => panic!("{e}"),
    }
}
