//! The reports of the ledger (usage, profit and loss, ledger entries, audit trail) against a real
//! redis-server and a real PostgreSQL: the store is driven directly, the reconciler books the
//! streams, then the report functions, the gRPC API (with and without tokens) and the CLI are
//! asked, with exact expected numbers.

mod common;

use std::collections::BTreeMap;
use std::time::SystemTime;

use creditd::api::auth::{hash_hex, TokenSet};
use creditd::api::Authorizer;
use creditd::ledger::book::time_of;
use creditd::ledger::reports::{
    self, AuditQuery, EntryQuery, Grouping, ProfitAndLoss, UsageQuery, UsageRow, Window,
};
use creditd::model::*;
use creditd::proto::credit_admin_client::CreditAdminClient;
use creditd::proto::{self, UsageGroupBy};
use creditd::server::{RunningServer, ServerOptions};
use creditd::store::Store;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request};
use tonic_types::StatusExt;

use common::grpc::{assert_status, ts};
use common::ledger::LedgerEnv;
use common::requests::*;
use common::{workload, CREDIT, DAY, T0};

// ---- fixtures -------------------------------------------------------------------------------

/// 1 credit a row, the first 10 rows of each period free.
fn grid(quantity: i64) -> Line {
    Line {
        sku: "grid.row".into(),
        quantity,
        price_num: CREDIT,
        price_den: 1,
        free_per_period: 10,
    }
}

/// 5 credits an image.
fn image(quantity: i64) -> Line {
    Line {
        sku: "image.standard".into(),
        quantity,
        price_num: 5 * CREDIT,
        price_den: 1,
        free_per_period: 0,
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn account(s: &dyn Store, id: &str, parent: &str, overage_cap: Option<Micros>) {
    let mut a = new_account(id);
    a.plan_id = String::new();
    a.parent_id = parent.into();
    if let Some(cap) = overage_cap {
        a.overage_enabled = true;
        a.overage_cap = cap;
    }
    s.create_account(a).await.expect("create account");
}

async fn grant(s: &dyn Store, account: &str, id: &str, amount: Micros, unit_price: Micros) {
    let mut g = new_grant(account, id, GrantKind::Prepaid, amount);
    g.unit_price = unit_price;
    s.create_grant(g).await.expect("create grant");
}

async fn reserve(s: &dyn Store, mut req: Reserve, subject: &str, tags: &[(&str, &str)]) {
    req.subject_id = subject.into();
    req.labels = labels(tags);
    let out = s.reserve(req).await.expect("reserve");
    assert_eq!(out.denial, None, "{out:?}");
}

fn priced(account: &str, id: &str, lines: Vec<Line>) -> Reserve {
    Reserve {
        lines,
        card_version: "test".into(),
        ..new_reserve(account, id, 0)
    }
}

fn items(commit: Commit, sku: &str, quantity: i64) -> Commit {
    Commit {
        lines: vec![ItemCount {
            sku: sku.into(),
            quantity,
        }],
        ..commit
    }
}

async fn commit(s: &dyn Store, req: Commit) -> CommitOutcome {
    s.commit(req).await.expect("commit")
}

fn with_cost(mut c: Commit, cost: Micros) -> Commit {
    c.cost = cost;
    c
}

const USAGE: &str = "acme-u";

/// Day 1 (2026-01-15): alice 25 grid rows (10 free: 15 credits), bob 2 images (10 credits),
/// alice 3 credits without items, a released hold. Day 2: bob 4 grid rows, captured 2 + 2.
async fn usage_fixture(s: &dyn Store) {
    account(s, USAGE, "", None).await;
    grant(s, USAGE, "g1", 1000 * CREDIT, 0).await;
    reserve(
        s,
        priced(USAGE, "r1", vec![grid(25)]),
        "alice",
        &[("feature", "grid")],
    )
    .await;
    commit(s, items(new_commit(USAGE, "r1", 0), "grid.row", 25)).await;
    reserve(
        s,
        priced(USAGE, "r2", vec![image(2)]),
        "bob",
        &[("feature", "image")],
    )
    .await;
    commit(s, items(new_commit(USAGE, "r2", 0), "image.standard", 2)).await;
    reserve(
        s,
        new_reserve(USAGE, "r3", 3 * CREDIT),
        "alice",
        &[("feature", "chat")],
    )
    .await;
    commit(s, new_commit(USAGE, "r3", 3 * CREDIT)).await;
    reserve(s, new_reserve(USAGE, "r5", 5 * CREDIT), "alice", &[]).await;
    s.release(USAGE, "r5").await.expect("release");

    s.advance_clock(DAY).await.unwrap();
    let tags = [("feature", "grid"), ("project", "x")];
    reserve(s, priced(USAGE, "r4", vec![grid(4)]), "bob", &tags).await;
    commit(s, items(new_capture(USAGE, "r4", "c1", 0), "grid.row", 2)).await;
    commit(s, items(new_commit(USAGE, "r4", 0), "grid.row", 2)).await;
}

/// Two accounts of parent cust-1 with different unit prices and provider costs, and one of
/// cust-2. p-a spends past its grant into overage (5) and debt (2); on day 2 a top-up at another
/// price pays the debt and is spent from.
async fn pnl_fixture(s: &dyn Store) {
    account(s, "p-a", "cust-1", Some(5 * CREDIT)).await;
    grant(s, "p-a", "pa-1", 100_000_003, 333_333).await;
    reserve(s, new_reserve("p-a", "r1", 10 * CREDIT), "u", &[]).await;
    commit(s, with_cost(new_commit("p-a", "r1", 10_500_000), 1_500)).await;
    reserve(s, new_reserve("p-a", "r2", 89_500_003), "u", &[]).await;
    let out = commit(s, with_cost(new_commit("p-a", "r2", 96_500_003), 2_000)).await;
    assert_eq!(out.effect.debt, 2 * CREDIT, "{out:?}");

    account(s, "p-b", "cust-1", None).await;
    grant(s, "p-b", "pb-1", 40 * CREDIT, 50_000).await;
    reserve(s, new_reserve("p-b", "r1", 30 * CREDIT), "u", &[]).await;
    commit(s, with_cost(new_commit("p-b", "r1", 30 * CREDIT), 700_000)).await;
    reserve(s, new_reserve("p-b", "r2", 10 * CREDIT), "u", &[]).await;
    commit(
        s,
        with_cost(new_capture("p-b", "r2", "c1", 4 * CREDIT), 100),
    )
    .await;
    commit(s, with_cost(new_commit("p-b", "r2", 6 * CREDIT), 200)).await;

    account(s, "p-c", "cust-2", None).await;
    grant(s, "p-c", "pc-1", 10 * CREDIT, 1_000_000).await;
    reserve(s, new_reserve("p-c", "r1", 5 * CREDIT), "u", &[]).await;
    commit(s, with_cost(new_commit("p-c", "r1", 5 * CREDIT), 9)).await;

    s.advance_clock(DAY).await.unwrap();
    let mut top_up = new_grant("p-a", "pa-2", GrantKind::TopUp, 50 * CREDIT);
    top_up.unit_price = 20_001;
    s.create_grant(top_up).await.expect("top-up");
    reserve(s, new_reserve("p-a", "r3", 3_333_333), "u", &[]).await;
    commit(s, with_cost(new_commit("p-a", "r3", 3_333_333), 250)).await;
}

const AUDITED: &str = "acme-audit";

/// Admin changes by several actors, with charges in between; the grant is voided on day 2.
async fn audit_fixture(s: &dyn Store) {
    account(s, AUDITED, "", None).await;
    let update = |actor: &str| UpdateAccount {
        actor: actor.into(),
        account_id: AUDITED.into(),
        overage_enabled: None,
        overage_cap: None,
        suspended: None,
        parent_id: None,
        thresholds: None,
        allowance_alert_percent: None,
        top_up: None,
    };
    s.update_account(UpdateAccount {
        suspended: Some(true),
        ..update("ops-1")
    })
    .await
    .unwrap();
    s.update_account(UpdateAccount {
        suspended: Some(false),
        overage_enabled: Some(true),
        ..update("ops-1")
    })
    .await
    .unwrap();
    grant(s, AUDITED, "g1", 50 * CREDIT, 7_000).await;
    reserve(s, new_reserve(AUDITED, "r1", CREDIT), "user-1", &[]).await;
    commit(s, new_commit(AUDITED, "r1", CREDIT)).await;
    let closed = SubjectPolicy {
        spending_enabled: false,
        ..SubjectPolicy::open("user-2")
    };
    s.set_subject_policy(AUDITED, closed, "ops-2")
        .await
        .unwrap();
    s.request_spending_access(AUDITED, "user-2", "please")
        .await
        .unwrap();
    s.advance_clock(DAY).await.unwrap();
    s.void_grant(AUDITED, "g1", "ops-3").await.unwrap();
}

// ---- helpers --------------------------------------------------------------------------------

fn at(ms: i64) -> Option<SystemTime> {
    Some(time_of(ms))
}

fn row(
    sku: &str,
    subject: &str,
    label: &str,
    day: &str,
    credits: i64,
    quantity: i64,
    commits: i64,
) -> UsageRow {
    UsageRow {
        sku: sku.into(),
        subject_id: subject.into(),
        label_value: label.into(),
        day: day.into(),
        credits,
        quantity,
        commits,
    }
}

async fn usage_of(
    env: &LedgerEnv,
    group: Grouping,
    window: Window,
    subject: &str,
) -> reports::Usage {
    reports::usage(
        &env.ledger,
        &UsageQuery {
            account_id: USAGE.into(),
            window,
            group,
            subject_id: subject.into(),
        },
    )
    .await
    .expect("usage")
}

#[allow(clippy::too_many_arguments)]
fn pnl(
    account: &str,
    revenue: i64,
    cost: i64,
    spent: i64,
    overage: i64,
    debt: i64,
    debt_paid: i64,
) -> ProfitAndLoss {
    ProfitAndLoss {
        account_id: account.into(),
        revenue,
        cost,
        margin: revenue - cost,
        credits_spent: spent,
        overage,
        debt,
        debt_paid,
    }
}

/// An in-process server on the environment's store and ledger.
async fn serve(env: &LedgerEnv, auth: Authorizer) -> (RunningServer, Channel) {
    let opts = ServerOptions {
        auth,
        ledger: Some(env.ledger.clone()),
        ..ServerOptions::default()
    };
    let server = RunningServer::start(env.store.clone(), opts)
        .await
        .expect("server starts");
    let channel = tonic::transport::Endpoint::from_shared(server.grpc_url())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    (server, channel)
}

fn with_token<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    let value = MetadataValue::try_from(format!("Bearer {token}")).expect("ascii");
    request.metadata_mut().insert("authorization", value);
    request
}

/// The `field` of an INVALID_ARGUMENT status.
fn field_of(status: &tonic::Status) -> String {
    assert_status(status, Code::InvalidArgument, "INVALID_ARGUMENT");
    let info = status.get_details_error_info().expect("ErrorInfo");
    info.metadata.get("field").cloned().unwrap_or_default()
}

// ---- usage ----------------------------------------------------------------------------------

#[tokio::test]
async fn usage_by_sku_subject_label_and_day() {
    let env = LedgerEnv::start().await;
    usage_fixture(env.store()).await;
    env.drain().await;
    let all = Window::default();
    let (d1, d2) = ("2026-01-15", "2026-01-16");

    let by_sku = usage_of(
        &env,
        Grouping {
            sku: true,
            ..Grouping::default()
        },
        all,
        "",
    )
    .await;
    assert_eq!(
        by_sku.rows,
        vec![
            row("", "", "", "", 3 * CREDIT, 0, 1),
            row("grid.row", "", "", "", 19 * CREDIT, 29, 3),
            row("image.standard", "", "", "", 10 * CREDIT, 2, 1),
        ]
    );
    assert_eq!((by_sku.total, by_sku.truncated), (32 * CREDIT, false));

    let by_subject = usage_of(
        &env,
        Grouping {
            subject: true,
            ..Grouping::default()
        },
        all,
        "",
    )
    .await;
    assert_eq!(
        by_subject.rows,
        vec![
            row("", "alice", "", "", 18 * CREDIT, 0, 2),
            row("", "bob", "", "", 14 * CREDIT, 0, 3),
        ]
    );
    assert_eq!(by_subject.total, 32 * CREDIT);

    let feature = Grouping {
        label: Some("feature".into()),
        ..Grouping::default()
    };
    assert_eq!(
        usage_of(&env, feature, all, "").await.rows,
        vec![
            row("", "", "chat", "", 3 * CREDIT, 0, 1),
            row("", "", "grid", "", 19 * CREDIT, 0, 3),
            row("", "", "image", "", 10 * CREDIT, 0, 1),
        ]
    );
    // Reservations without the label are grouped under "".
    let project = Grouping {
        label: Some("project".into()),
        ..Grouping::default()
    };
    assert_eq!(
        usage_of(&env, project, all, "").await.rows,
        vec![
            row("", "", "", "", 28 * CREDIT, 0, 3),
            row("", "", "x", "", 4 * CREDIT, 0, 2),
        ]
    );

    let by_day = usage_of(
        &env,
        Grouping {
            day: true,
            ..Grouping::default()
        },
        all,
        "",
    )
    .await;
    assert_eq!(
        by_day.rows,
        vec![
            row("", "", "", d1, 28 * CREDIT, 0, 3),
            row("", "", "", d2, 4 * CREDIT, 0, 2),
        ]
    );
    let day_and_sku = Grouping {
        day: true,
        sku: true,
        ..Grouping::default()
    };
    assert_eq!(
        usage_of(&env, day_and_sku, all, "").await.rows,
        vec![
            row("", "", "", d1, 3 * CREDIT, 0, 1),
            row("grid.row", "", "", d1, 15 * CREDIT, 25, 1),
            row("image.standard", "", "", d1, 10 * CREDIT, 2, 1),
            row("grid.row", "", "", d2, 4 * CREDIT, 4, 2),
        ]
    );

    // No grouping: one row of totals.
    let total = usage_of(&env, Grouping::default(), all, "").await;
    assert_eq!(total.rows, vec![row("", "", "", "", 32 * CREDIT, 0, 5)]);
    // The usage is what went into `spent`.
    assert_eq!(
        env.count(
            "SELECT sum(amount_micros)::int8 FROM ledger_entries \
             WHERE account_id = 'acme-u' AND bucket = 'spent' AND amount_micros > 0"
        )
        .await,
        32 * CREDIT
    );

    // The time window: start inclusive, end exclusive.
    let day_two = Window {
        start: at(T0 + DAY),
        end: None,
    };
    let day_one = Window {
        start: at(T0),
        end: at(T0 + DAY),
    };
    assert_eq!(
        usage_of(&env, Grouping::default(), day_two, "").await.total,
        4 * CREDIT
    );
    assert_eq!(
        usage_of(&env, Grouping::default(), day_one, "").await.total,
        28 * CREDIT
    );
    let before = Window {
        start: None,
        end: at(T0),
    };
    let nothing = usage_of(&env, Grouping::default(), before, "").await;
    assert_eq!((nothing.rows.len(), nothing.total), (0, 0));

    // One subject.
    let bob = usage_of(
        &env,
        Grouping {
            sku: true,
            ..Grouping::default()
        },
        all,
        "bob",
    )
    .await;
    assert_eq!(
        bob.rows,
        vec![
            row("grid.row", "", "", "", 4 * CREDIT, 4, 2),
            row("image.standard", "", "", "", 10 * CREDIT, 2, 1),
        ]
    );
    assert_eq!(bob.total, 14 * CREDIT);

    // An account the ledger does not know.
    let unknown = reports::usage(
        &env.ledger,
        &UsageQuery {
            account_id: "nobody".into(),
            window: all,
            group: Grouping::default(),
            subject_id: String::new(),
        },
    )
    .await;
    assert!(
        matches!(unknown, Err(reports::ReportError::AccountNotFound(_))),
        "{unknown:?}"
    );
}

// ---- profit and loss ------------------------------------------------------------------------

#[tokio::test]
async fn profit_and_loss_per_account_and_rolled_up_by_parent() {
    let env = LedgerEnv::start().await;
    pnl_fixture(env.store()).await;
    env.drain().await;

    // p-a: revenue = floor((100.000003 credits of pa-1 x 0.333333 + (2 of debt paid + 3.333333
    // spent) of pa-2 x 0.020001)) = floor(33333300.999999 + 106671.993333) = 33439972 micros.
    let pa = pnl(
        "p-a",
        33_439_972,
        3_750,
        110_333_336,
        5 * CREDIT,
        2 * CREDIT,
        2 * CREDIT,
    );
    let pb = pnl("p-b", 2_000_000, 700_300, 40 * CREDIT, 0, 0, 0);
    let cust = reports::accounts_of_parent(&env.ledger, "cust-1")
        .await
        .unwrap();
    assert_eq!(cust, ["p-a", "p-b"]);
    let report = reports::profit_and_loss(&env.ledger, &cust, Window::default())
        .await
        .unwrap();
    assert_eq!(report.accounts, vec![pa.clone(), pb.clone()]);
    assert_eq!(
        report.total,
        pnl(
            "",
            35_439_972,
            704_050,
            150_333_336,
            5 * CREDIT,
            2 * CREDIT,
            2 * CREDIT
        )
    );
    assert_eq!(report.total.margin, 34_735_922);

    // Day 1 only: the overrun into overage and debt, no revenue from the debt yet.
    let day_one = Window {
        start: None,
        end: at(T0 + DAY),
    };
    let one = reports::profit_and_loss(&env.ledger, &["p-a".to_string()], day_one)
        .await
        .unwrap();
    assert_eq!(
        one.accounts,
        vec![pnl(
            "p-a",
            33_333_300,
            3_500,
            107_000_003,
            5 * CREDIT,
            2 * CREDIT,
            0
        )]
    );
    // Day 2: the debt paid by the top-up earns at its price, with what was spent from it.
    let day_two = Window {
        start: at(T0 + DAY),
        end: None,
    };
    let two = reports::profit_and_loss(&env.ledger, &["p-a".to_string()], day_two)
        .await
        .unwrap();
    assert_eq!(
        two.accounts,
        vec![pnl("p-a", 106_671, 250, 3_333_333, 0, 0, 2 * CREDIT)]
    );

    // Through gRPC, with tokens: a token for p-* may roll cust-1 up; one for p-a only may not.
    let tokens = format!(
        "[[token]]\nname = \"p-reader\"\nsha256 = {:?}\nscopes = [\"read\"]\naccounts = [\"p-*\"]\n\n\
         [[token]]\nname = \"pa-reader\"\nsha256 = {:?}\nscopes = [\"read\"]\naccounts = [\"p-a\"]\n",
        hash_hex("tok-p"),
        hash_hex("tok-pa")
    );
    let auth = Authorizer::with_tokens(TokenSet::parse(&tokens).unwrap());
    let (server, channel) = serve(&env, auth).await;
    let mut admin = CreditAdminClient::new(channel);
    let by_parent = proto::GetProfitAndLossRequest {
        parent_id: "cust-1".into(),
        ..Default::default()
    };
    let answer = admin
        .get_profit_and_loss(with_token(by_parent.clone(), "tok-p"))
        .await
        .expect("roll-up")
        .into_inner();
    let ids: Vec<&str> = answer
        .accounts
        .iter()
        .map(|a| a.account_id.as_str())
        .collect();
    assert_eq!(ids, ["p-a", "p-b"]);
    assert_eq!(answer.accounts[0].revenue_micros, 33_439_972);
    assert_eq!(answer.accounts[0].debt_paid_micros, 2 * CREDIT);
    let total = answer.total.expect("total");
    assert_eq!(
        (
            total.account_id.as_str(),
            total.revenue_micros,
            total.cost_micros,
            total.margin_micros
        ),
        ("", 35_439_972, 704_050, 34_735_922)
    );
    assert_eq!(total.credits_spent_micros, 150_333_336);

    let denied = admin
        .get_profit_and_loss(with_token(by_parent, "tok-pa"))
        .await
        .expect_err("p-b is not readable with tok-pa");
    assert_status(&denied, Code::PermissionDenied, "PERMISSION_DENIED");
    assert!(!denied.message().contains("p-b"), "{denied:?}");
    let one_account = |account: &str| proto::GetProfitAndLossRequest {
        account_id: account.into(),
        start_time: Some(ts(T0 + DAY)),
        ..Default::default()
    };
    let mine = admin
        .get_profit_and_loss(with_token(one_account("p-a"), "tok-pa"))
        .await
        .expect("own account")
        .into_inner();
    assert_eq!(mine.accounts.len(), 1);
    assert_eq!(mine.accounts[0].revenue_micros, 106_671);
    assert_eq!(mine.total.unwrap().revenue_micros, 106_671);
    let other = admin
        .get_profit_and_loss(with_token(one_account("p-b"), "tok-pa"))
        .await
        .expect_err("another account");
    assert_status(&other, Code::PermissionDenied, "PERMISSION_DENIED");

    // Bad input names the field; unknown parents and accounts are NOT_FOUND.
    let both = proto::GetProfitAndLossRequest {
        account_id: "p-a".into(),
        parent_id: "cust-1".into(),
        ..Default::default()
    };
    let status = admin
        .get_profit_and_loss(with_token(both, "tok-p"))
        .await
        .unwrap_err();
    assert_eq!(field_of(&status), "parent_id");
    let backwards = proto::GetProfitAndLossRequest {
        start_time: Some(ts(T0 + DAY)),
        end_time: Some(ts(T0)),
        ..one_account("p-a")
    };
    let status = admin
        .get_profit_and_loss(with_token(backwards, "tok-p"))
        .await
        .unwrap_err();
    assert_eq!(field_of(&status), "start_time");
    let nobody = proto::GetProfitAndLossRequest {
        parent_id: "nobody".into(),
        ..Default::default()
    };
    let status = admin
        .get_profit_and_loss(with_token(nobody, "tok-p"))
        .await
        .unwrap_err();
    assert_status(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");
    server.shutdown().await.expect("shutdown");
}

// ---- ledger entries -------------------------------------------------------------------------

type Posting = (i64, i32, String, String, i64, String);

fn posting(e: &proto::LedgerEntry) -> Posting {
    (
        e.seq,
        e.n,
        e.grant_id.clone(),
        e.bucket.clone(),
        e.amount_micros,
        e.reservation_id.clone(),
    )
}

/// Every page of a listing through gRPC, `page_size` at a time.
async fn all_pages(
    admin: &mut CreditAdminClient<Channel>,
    request: proto::ListLedgerEntriesRequest,
    page_size: i32,
) -> (Vec<Posting>, usize) {
    let mut out = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = admin
            .list_ledger_entries(proto::ListLedgerEntriesRequest {
                page_size,
                page_token: token,
                ..request.clone()
            })
            .await
            .expect("page")
            .into_inner();
        pages += 1;
        assert!(page.entries.len() <= page_size as usize);
        out.extend(page.entries.iter().map(posting));
        if page.next_page_token.is_empty() {
            return (out, pages);
        }
        token = page.next_page_token;
    }
}

#[tokio::test]
async fn ledger_entries_page_through_and_filter() {
    let mut env = LedgerEnv::start().await;
    workload::mixed(env.store(), "acct-e").await;
    env.drain().await;

    let query = |after, limit| EntryQuery {
        account_id: "acct-e".into(),
        reservation_id: String::new(),
        grant_id: String::new(),
        window: Window::default(),
        after,
        limit,
    };
    let full = reports::entries(&env.ledger, &query(None, 1000))
        .await
        .unwrap();
    assert!(!full.more);
    let count = env
        .count("SELECT count(*) FROM ledger_entries WHERE account_id = 'acct-e'")
        .await;
    assert_eq!(full.items.len() as i64, count);
    assert!(full
        .items
        .windows(2)
        .all(|w| (w[0].seq, w[0].n) < (w[1].seq, w[1].n)));
    // Each event's postings sum to zero.
    let mut sums: BTreeMap<i64, i64> = BTreeMap::new();
    for e in &full.items {
        *sums.entry(e.seq).or_default() += e.amount;
    }
    assert!(sums.values().all(|s| *s == 0), "{sums:?}");
    // Keyset paging in the functions: after the 10th posting.
    let tenth = &full.items[9];
    let rest = reports::entries(&env.ledger, &query(Some((tenth.seq, tenth.n)), 5))
        .await
        .unwrap();
    assert!(rest.more);
    assert_eq!(rest.items, full.items[10..15].to_vec());

    let as_posting = |e: &reports::Entry| {
        (
            e.seq,
            e.n,
            e.grant_id.clone(),
            e.bucket.clone(),
            e.amount,
            e.reservation_id.clone(),
        )
    };
    let expected: Vec<Posting> = full.items.iter().map(as_posting).collect();

    let (server, channel) = serve(&env, Authorizer::open()).await;
    let mut admin = CreditAdminClient::new(channel);
    let base = proto::ListLedgerEntriesRequest {
        account_id: "acct-e".into(),
        ..Default::default()
    };
    let (paged, pages) = all_pages(&mut admin, base.clone(), 7).await;
    assert_eq!(paged, expected);
    assert_eq!(pages, expected.len().div_ceil(7).max(1));
    // The default page size is 100.
    let first = admin
        .list_ledger_entries(base.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.entries.len(), expected.len().min(100));

    // Filters: a reservation, a grant, the debt, a time window.
    let filtered = |keep: &dyn Fn(&reports::Entry) -> bool| -> Vec<Posting> {
        full.items
            .iter()
            .filter(|e| keep(e))
            .map(as_posting)
            .collect()
    };
    let by_reservation = proto::ListLedgerEntriesRequest {
        reservation_id: "r2".into(),
        ..base.clone()
    };
    let (got, _) = all_pages(&mut admin, by_reservation, 3).await;
    assert!(!got.is_empty() && got.iter().all(|p| p.5 == "r2"));
    assert_eq!(got, filtered(&|e| e.reservation_id == "r2"));
    for grant_id in ["prepaid-1", "@debt", "@overage"] {
        let by_grant = proto::ListLedgerEntriesRequest {
            grant_id: grant_id.into(),
            ..base.clone()
        };
        let (got, _) = all_pages(&mut admin, by_grant, 4).await;
        assert!(!got.is_empty(), "{grant_id}");
        assert_eq!(got, filtered(&|e| e.grant_id == grant_id), "{grant_id}");
    }
    let later = proto::ListLedgerEntriesRequest {
        start_time: Some(ts(T0 + DAY)),
        ..base.clone()
    };
    let (got, _) = all_pages(&mut admin, later, 50).await;
    assert!(!got.is_empty());
    assert_eq!(got, filtered(&|e| e.at >= time_of(T0 + DAY)));
    let entry = admin
        .list_ledger_entries(proto::ListLedgerEntriesRequest {
            reservation_id: "r1".into(),
            page_size: 1,
            ..base.clone()
        })
        .await
        .unwrap()
        .into_inner();
    let e = &entry.entries[0];
    assert_eq!(
        (e.kind.as_str(), e.subject_id.as_str()),
        ("reserved", "user-1")
    );
    assert_eq!(e.at, Some(ts(T0)));

    // Bad input and an unknown account.
    for (request, field) in [
        (
            proto::ListLedgerEntriesRequest {
                page_size: 1001,
                ..base.clone()
            },
            "page_size",
        ),
        (
            proto::ListLedgerEntriesRequest {
                page_size: -1,
                ..base.clone()
            },
            "page_size",
        ),
        (
            proto::ListLedgerEntriesRequest {
                page_token: "not-a-token".into(),
                ..base.clone()
            },
            "page_token",
        ),
        (
            proto::ListLedgerEntriesRequest {
                grant_id: "@nothing".into(),
                ..base.clone()
            },
            "grant_id",
        ),
        (
            proto::ListLedgerEntriesRequest {
                start_time: Some(ts(T0 + 1)),
                end_time: Some(ts(T0)),
                ..base.clone()
            },
            "start_time",
        ),
        (proto::ListLedgerEntriesRequest::default(), "account_id"),
    ] {
        let status = admin.list_ledger_entries(request).await.unwrap_err();
        assert_eq!(field_of(&status), field);
    }
    let status = admin
        .list_ledger_entries(proto::ListLedgerEntriesRequest {
            account_id: "nobody".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_status(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");

    // Postgres down: the reports are UNAVAILABLE, the hot path goes on.
    env.pg.stop();
    let status = admin.list_ledger_entries(base.clone()).await.unwrap_err();
    assert_status(&status, Code::Unavailable, "LEDGER_UNAVAILABLE");
    let status = admin
        .get_usage(proto::GetUsageRequest {
            account_id: "acct-e".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_status(&status, Code::Unavailable, "LEDGER_UNAVAILABLE");
    env.store()
        .get_balance("acct-e")
        .await
        .expect("Redis still answers");
    server.shutdown().await.expect("shutdown");
}

// ---- audit ----------------------------------------------------------------------------------

#[tokio::test]
async fn audit_events_list_every_admin_change_with_actor_before_and_after() {
    let env = LedgerEnv::start().await;
    audit_fixture(env.store()).await;
    env.drain().await;

    let query = |window, after, limit| AuditQuery {
        account_id: AUDITED.into(),
        window,
        after,
        limit,
    };
    let all = reports::audit_events(&env.ledger, &query(Window::default(), None, 100))
        .await
        .unwrap();
    assert!(!all.more);
    let summary: Vec<(&str, &str, &str, &str)> = all
        .items
        .iter()
        .map(|e| {
            (
                e.kind.as_str(),
                e.actor.as_str(),
                e.subject_id.as_str(),
                e.detail.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("account_created", "test-admin", "", ""),
            ("account_updated", "ops-1", "", ""),
            ("account_updated", "ops-1", "", ""),
            ("grant_created", "test-admin", "", "g1"),
            ("policy_set", "ops-2", "user-2", ""),
            ("spending_access_requested", "", "user-2", "please"),
            ("grant_voided", "ops-3", "", "g1"),
        ]
    );
    let field = |v: &Option<serde_json::Value>, key: &str| v.as_ref().map(|v| v[key].clone());
    let created = &all.items[0];
    assert_eq!(created.before, None);
    assert_eq!(field(&created.after, "account_id"), Some(AUDITED.into()));
    let suspended = &all.items[1];
    assert_eq!(field(&suspended.before, "suspended"), Some(false.into()));
    assert_eq!(field(&suspended.after, "suspended"), Some(true.into()));
    let resumed = &all.items[2];
    assert_eq!(
        field(&resumed.before, "overage_enabled"),
        Some(false.into())
    );
    assert_eq!(field(&resumed.after, "overage_enabled"), Some(true.into()));
    assert_eq!(field(&resumed.after, "suspended"), Some(false.into()));
    assert_eq!(field(&all.items[3].after, "unit_price"), Some(7_000.into()));
    let policy = &all.items[4];
    assert_eq!(policy.before, None);
    assert_eq!(field(&policy.after, "spending_enabled"), Some(false.into()));
    let voided = &all.items[6];
    assert_eq!(field(&voided.before, "is_voided"), Some(false.into()));
    assert_eq!(field(&voided.after, "is_voided"), Some(true.into()));
    assert_eq!(voided.at, time_of(T0 + DAY));
    assert!(all.items.windows(2).all(|w| w[0].seq < w[1].seq));

    // Day 2 only, and keyset paging in the function.
    let later = Window {
        start: at(T0 + DAY),
        end: None,
    };
    let two = reports::audit_events(&env.ledger, &query(later, None, 100))
        .await
        .unwrap();
    assert_eq!(two.items.len(), 1);
    assert_eq!(two.items[0].kind, "grant_voided");
    let page = reports::audit_events(
        &env.ledger,
        &query(Window::default(), Some(all.items[1].seq), 2),
    )
    .await
    .unwrap();
    assert!(page.more);
    assert_eq!(page.items, all.items[2..4].to_vec());

    // Through gRPC, two at a time.
    let (server, channel) = serve(&env, Authorizer::open()).await;
    let mut admin = CreditAdminClient::new(channel);
    let mut token = String::new();
    let mut listed = Vec::new();
    loop {
        let page = admin
            .list_audit_events(proto::ListAuditEventsRequest {
                account_id: AUDITED.into(),
                page_size: 2,
                page_token: token,
                ..Default::default()
            })
            .await
            .expect("page")
            .into_inner();
        listed.extend(page.events);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(listed.len(), all.items.len());
    for (got, want) in listed.iter().zip(&all.items) {
        assert_eq!(
            (got.seq, got.kind.as_str(), got.actor.as_str()),
            (want.seq, want.kind.as_str(), want.actor.as_str())
        );
        let json = |text: &str| -> Option<serde_json::Value> {
            (!text.is_empty()).then(|| serde_json::from_str(text).expect("JSON"))
        };
        assert_eq!(json(&got.before), want.before);
        assert_eq!(json(&got.after), want.after);
    }
    assert_eq!(listed[0].at, Some(ts(T0)));
    let status = admin
        .list_audit_events(proto::ListAuditEventsRequest {
            account_id: AUDITED.into(),
            page_token: hex_of("e1:1:0"),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(field_of(&status), "page_token");
    server.shutdown().await.expect("shutdown");
}

fn hex_of(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

// ---- gRPC usage and the CLI -----------------------------------------------------------------

async fn creditd(server: &RunningServer, args: &[&str]) -> String {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_creditd"))
        .args(args)
        .args(["--server", &server.grpc_url()])
        .env_remove("CREDITD_TOKEN")
        .output()
        .await
        .expect("run creditd");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "creditd {args:?}: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test]
async fn usage_over_grpc_and_every_report_in_the_cli() {
    let env = LedgerEnv::start().await;
    usage_fixture(env.store()).await;
    pnl_fixture(env.store()).await;
    audit_fixture(env.store()).await;
    env.drain().await;
    let (server, channel) = serve(&env, Authorizer::open()).await;
    let mut admin = CreditAdminClient::new(channel);

    let by = |groups: &[UsageGroupBy]| groups.iter().map(|g| *g as i32).collect::<Vec<_>>();
    let usage = admin
        .get_usage(proto::GetUsageRequest {
            account_id: USAGE.into(),
            group_by: by(&[UsageGroupBy::Label, UsageGroupBy::Day]),
            label_key: "feature".into(),
            end_time: Some(ts(T0 + DAY)),
            ..Default::default()
        })
        .await
        .expect("usage")
        .into_inner();
    let rows: Vec<(&str, &str, &str, i64, i64)> = usage
        .rows
        .iter()
        .map(|r| {
            (
                r.day.as_str(),
                r.label_key.as_str(),
                r.label_value.as_str(),
                r.credits_micros,
                r.commits,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("2026-01-15", "feature", "chat", 3 * CREDIT, 1),
            ("2026-01-15", "feature", "grid", 15 * CREDIT, 1),
            ("2026-01-15", "feature", "image", 10 * CREDIT, 1),
        ]
    );
    assert_eq!((usage.total_micros, usage.truncated), (28 * CREDIT, false));
    for (request, field) in [
        (
            proto::GetUsageRequest {
                account_id: USAGE.into(),
                group_by: by(&[UsageGroupBy::Label]),
                ..Default::default()
            },
            "label_key",
        ),
        (
            proto::GetUsageRequest {
                account_id: USAGE.into(),
                group_by: by(&[UsageGroupBy::Sku, UsageGroupBy::Sku]),
                ..Default::default()
            },
            "group_by[1]",
        ),
        (
            proto::GetUsageRequest {
                account_id: USAGE.into(),
                start_time: Some(prost_types::Timestamp {
                    seconds: 0,
                    nanos: -5,
                }),
                ..Default::default()
            },
            "start_time",
        ),
    ] {
        let status = admin.get_usage(request).await.unwrap_err();
        assert_eq!(field_of(&status), field);
    }

    // The CLI: tables for people, --json for programs.
    let text = creditd(&server, &["usage", USAGE, "--by", "sku"]).await;
    assert_eq!(
        text,
        "SKU             CREDITS  QUANTITY  COMMITS\n\
         (unpriced)            3         0        1\n\
         grid.row             19        29        3\n\
         image.standard       10         2        1\n\
         total 32 credits\n"
    );
    let json: serde_json::Value = serde_json::from_str(
        &creditd(
            &server,
            &[
                "usage",
                USAGE,
                "--by",
                "day",
                "--by",
                "subject",
                "--json",
                "--from",
                "2026-01-16",
            ],
        )
        .await,
    )
    .expect("JSON");
    assert_eq!(json["total_micros"], 4 * CREDIT);
    assert_eq!(json["rows"][0]["day"], "2026-01-16");
    assert_eq!(json["rows"][0]["subject_id"], "bob");
    assert_eq!(json["rows"][0]["commits"], 2);

    let text = creditd(&server, &["pnl", "--parent", "cust-1"]).await;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].starts_with("ACCOUNT") && lines[0].contains("REVENUE"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("p-a") && lines[1].contains("33.439972"),
        "{text}"
    );
    assert!(
        lines[3].starts_with("TOTAL") && lines[3].contains("35.439972"),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&creditd(&server, &["pnl", "--account", "p-b", "--json"]).await)
            .expect("JSON");
    assert_eq!(json["accounts"][0]["revenue_micros"], 2_000_000);
    assert_eq!(json["total"]["margin_micros"], 1_299_700);

    let json: serde_json::Value = serde_json::from_str(
        &creditd(
            &server,
            &["ledger", "entries", "p-a", "--limit", "3", "--json"],
        )
        .await,
    )
    .expect("JSON");
    assert_eq!(json["entries"].as_array().map(Vec::len), Some(3));
    assert_eq!(json["more"], true);
    let text = creditd(&server, &["ledger", "entries", "p-a", "--grant", "@debt"]).await;
    assert_eq!(text.lines().count(), 3, "{text}"); // the header, then debt -2 and spent +2
    assert!(
        text.contains("@debt") && text.contains("-2") && text.contains("committed"),
        "{text}"
    );

    let text = creditd(&server, &["audit", AUDITED]).await;
    assert!(text.contains("suspended: false -> true"), "{text}");
    assert!(
        text.contains("ops-3") && text.contains("grant_voided"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(
        &creditd(&server, &["audit", AUDITED, "--json", "--limit", "2"]).await,
    )
    .expect("JSON");
    assert_eq!(json["events"][1]["after"]["suspended"], true);
    assert_eq!(json["more"], true);
    server.shutdown().await.expect("shutdown");
}
