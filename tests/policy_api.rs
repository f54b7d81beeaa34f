//! The policy API end to end over gRPC, on an in-process server with the memory store and the
//! example rate card: spending rights, budgets, frequency caps, alert settings and plan
//! allowances.

use std::sync::Arc;

use creditd::pricing::RateCardFile;
use creditd::proto::credit_admin_client::CreditAdminClient;
use creditd::proto::credits_client::CreditsClient;
use creditd::proto::{self, Decision, DenialReason, GrantKind};
use creditd::server::{RunningServer, ServerOptions};
use creditd::store::memory::MemoryStore;
use creditd::store::ClockMode;
use tonic::transport::Channel;
use tonic::Code;

const CREDIT: i64 = 1_000_000;
/// 2023-11-14T22:13:20Z.
const START: i64 = 1_700_000_000_000;

struct Harness {
    server: RunningServer,
    admin: CreditAdminClient<Channel>,
    credits: CreditsClient<Channel>,
}

async fn start() -> Harness {
    let store = Arc::new(MemoryStore::new(ClockMode::Manual(START)));
    let card = RateCardFile::load(std::path::Path::new("examples/pricing.yaml")).expect("card");
    let opts = ServerOptions {
        rate_card: card.cell(),
        ..ServerOptions::default()
    };
    let server = RunningServer::start(store, opts).await.expect("start");
    let channel = tonic::transport::Endpoint::from_shared(server.grpc_url())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    Harness {
        server,
        admin: CreditAdminClient::new(channel.clone()),
        credits: CreditsClient::new(channel),
    }
}

impl Harness {
    async fn account_with_credits(&mut self, account: &str, credits: i64) {
        self.admin
            .create_account(proto::CreateAccountRequest {
                account_id: account.into(),
                ..Default::default()
            })
            .await
            .expect("create account");
        self.admin
            .create_grant(proto::CreateGrantRequest {
                account_id: account.into(),
                grant_id: "prepaid-1".into(),
                kind: GrantKind::Prepaid as i32,
                amount_micros: credits * CREDIT,
                ..Default::default()
            })
            .await
            .expect("grant");
    }

    async fn set_policy(&mut self, account: &str, policy: proto::SubjectPolicy) {
        let answer = self
            .admin
            .set_subject_policy(proto::SetSubjectPolicyRequest {
                account_id: account.into(),
                policy: Some(policy.clone()),
            })
            .await
            .expect("set policy")
            .into_inner();
        assert_eq!(answer, policy);
    }

    async fn reserve(
        &mut self,
        account: &str,
        id: &str,
        subject: &str,
        credits: i64,
    ) -> proto::ReserveResponse {
        self.credits
            .reserve(proto::ReserveRequest {
                account_id: account.into(),
                reservation_id: id.into(),
                subject_id: subject.into(),
                amount_micros: credits * CREDIT,
                ..Default::default()
            })
            .await
            .expect("reserve")
            .into_inner()
    }
}

fn policy(subject: &str) -> proto::SubjectPolicy {
    proto::SubjectPolicy {
        subject_id: subject.into(),
        spending_enabled: true,
        ..Default::default()
    }
}

#[tokio::test]
async fn spending_disabled_denies_and_access_can_be_requested() {
    let mut h = start().await;
    h.account_with_credits("ws-1", 100).await;
    h.set_policy(
        "ws-1",
        proto::SubjectPolicy {
            spending_enabled: false,
            ..policy("intern")
        },
    )
    .await;
    let r = h.reserve("ws-1", "r1", "intern", 1).await;
    assert_eq!(r.decision(), Decision::Denied);
    assert_eq!(r.denial_reason(), DenialReason::SpendingDisabled);
    assert!(r.retry_at.is_none());
    let ok = h.reserve("ws-1", "r2", "owner", 1).await;
    assert_eq!(
        ok.decision(),
        Decision::Granted,
        "other subjects still spend"
    );

    let before = h.credits.get_balance(balance_req("ws-1")).await.expect("b");
    h.admin
        .request_spending_access(proto::RequestSpendingAccessRequest {
            account_id: "ws-1".into(),
            subject_id: "intern".into(),
            note: "need it for the demo".into(),
        })
        .await
        .expect("request access");
    let after = h.credits.get_balance(balance_req("ws-1")).await.expect("b");
    assert!(
        after.into_inner().sequence > before.into_inner().sequence,
        "the request is an event"
    );
    let err = h
        .admin
        .request_spending_access(proto::RequestSpendingAccessRequest {
            account_id: "ws-1".into(),
            subject_id: "intern".into(),
            note: "x".repeat(257),
        })
        .await
        .expect_err("note too long");
    assert_eq!(err.code(), Code::InvalidArgument);
    h.server.shutdown().await.expect("shutdown");
}

fn balance_req(account: &str) -> proto::GetBalanceRequest {
    proto::GetBalanceRequest {
        account_id: account.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_budget_names_itself_when_it_fires() {
    let mut h = start().await;
    h.account_with_credits("studio-1", 1000).await;
    h.set_policy(
        "studio-1",
        proto::SubjectPolicy {
            budgets: vec![proto::Budget {
                scope: "label:project=film".into(),
                period: proto::BudgetPeriod::BillingPeriod as i32,
                limit_micros: 50 * CREDIT,
            }],
            ..policy("*")
        },
    )
    .await;
    let labelled = |id: &str, credits: i64| proto::ReserveRequest {
        account_id: "studio-1".into(),
        reservation_id: id.into(),
        subject_id: "editor".into(),
        amount_micros: credits * CREDIT,
        labels: [("project".to_string(), "film".to_string())].into(),
        ..Default::default()
    };
    let first = h.credits.reserve(labelled("j1", 40)).await.expect("r");
    assert_eq!(first.into_inner().decision(), Decision::Granted);
    let second = h
        .credits
        .reserve(labelled("j2", 20))
        .await
        .expect("r")
        .into_inner();
    assert_eq!(second.decision(), Decision::Denied);
    assert_eq!(second.denial_reason(), DenialReason::BudgetLimitReached);
    assert!(
        second.denial_detail.contains("label:project=film"),
        "{}",
        second.denial_detail
    );
    let unlabelled = h.reserve("studio-1", "j3", "editor", 20).await;
    assert_eq!(
        unlabelled.decision(),
        Decision::Granted,
        "outside the scope"
    );
    h.server.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_rate_limit_says_when_to_retry() {
    let mut h = start().await;
    h.account_with_credits("org-1", 100).await;
    h.set_policy(
        "org-1",
        proto::SubjectPolicy {
            rate_limits: vec![proto::RateLimit {
                sku: "*".into(),
                max_count: 2,
                window_seconds: 60,
            }],
            ..policy("*")
        },
    )
    .await;
    for id in ["a", "b"] {
        assert_eq!(
            h.reserve("org-1", id, "bot", 1).await.decision(),
            Decision::Granted
        );
    }
    let limited = h.reserve("org-1", "c", "bot", 1).await;
    assert_eq!(limited.decision(), Decision::Denied);
    assert_eq!(limited.denial_reason(), DenialReason::RateLimited);
    let retry = limited.retry_at.expect("retry_at with RATE_LIMITED");
    let retry_ms = retry.seconds * 1000 + i64::from(retry.nanos) / 1_000_000;
    assert!(retry_ms > START && retry_ms <= START + 60_000, "{retry:?}");
    assert_eq!(retry_ms % 60_000, 0, "the end of the fixed window");
    h.server.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn policies_round_trip_and_bad_ones_are_refused() {
    let mut h = start().await;
    h.account_with_credits("rt-1", 10).await;
    let full = proto::SubjectPolicy {
        subject_id: "user-7".into(),
        spending_enabled: true,
        budgets: vec![
            proto::Budget {
                scope: "subject".into(),
                period: proto::BudgetPeriod::Day as i32,
                limit_micros: 5 * CREDIT,
            },
            proto::Budget {
                scope: "sku:video.export".into(),
                period: proto::BudgetPeriod::BillingPeriod as i32,
                limit_micros: 500 * CREDIT,
            },
        ],
        rate_limits: vec![proto::RateLimit {
            sku: "image.standard".into(),
            max_count: 10,
            window_seconds: 3600,
        }],
    };
    h.set_policy("rt-1", full.clone()).await;
    let got = h
        .admin
        .get_subject_policy(proto::GetSubjectPolicyRequest {
            account_id: "rt-1".into(),
            subject_id: "user-7".into(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(got, full);
    let open = h
        .admin
        .get_subject_policy(proto::GetSubjectPolicyRequest {
            account_id: "rt-1".into(),
            subject_id: "*".into(),
        })
        .await
        .expect("get *")
        .into_inner();
    assert_eq!(open, policy("*"), "no policy: open");

    let mut bad = full.clone();
    bad.rate_limits[0].window_seconds = 31 * 86_400 + 1;
    let err = h
        .admin
        .set_subject_policy(proto::SetSubjectPolicyRequest {
            account_id: "rt-1".into(),
            policy: Some(bad),
        })
        .await
        .expect_err("window too long");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("window_seconds"),
        "{}",
        err.message()
    );
    h.server.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn alert_settings_round_trip_through_get_account() {
    let mut h = start().await;
    h.account_with_credits("al-1", 10).await;
    let updated = h
        .admin
        .update_account(proto::UpdateAccountRequest {
            account_id: "al-1".into(),
            set_thresholds: true,
            threshold_micros: vec![0, 500 * CREDIT, 2000 * CREDIT, 500 * CREDIT],
            allowance_alert_percent: Some(80),
            auto_top_up: Some(proto::AutoTopUp {
                threshold_micros: 100 * CREDIT,
                amount_micros: 50 * CREDIT,
            }),
            ..Default::default()
        })
        .await
        .expect("update")
        .into_inner();
    let got = h
        .admin
        .get_account(proto::GetAccountRequest {
            account_id: "al-1".into(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(got, updated);
    assert_eq!(
        got.threshold_micros,
        vec![2000 * CREDIT, 500 * CREDIT, 0],
        "sorted descending, deduplicated"
    );
    assert_eq!(got.allowance_alert_percent, 80);
    assert_eq!(
        got.auto_top_up,
        Some(proto::AutoTopUp {
            threshold_micros: 100 * CREDIT,
            amount_micros: 50 * CREDIT
        })
    );

    // Unchanged when not set; cleared (the defaults) with set_thresholds and an empty list.
    let kept = h
        .admin
        .update_account(proto::UpdateAccountRequest {
            account_id: "al-1".into(),
            suspended: Some(false),
            ..Default::default()
        })
        .await
        .expect("update")
        .into_inner();
    assert_eq!(kept.threshold_micros.len(), 3);
    let cleared = h
        .admin
        .update_account(proto::UpdateAccountRequest {
            account_id: "al-1".into(),
            set_thresholds: true,
            ..Default::default()
        })
        .await
        .expect("update")
        .into_inner();
    assert!(cleared.threshold_micros.is_empty());

    // The example card sells top-ups in blocks of 10 credits.
    let err = h
        .admin
        .update_account(proto::UpdateAccountRequest {
            account_id: "al-1".into(),
            auto_top_up: Some(proto::AutoTopUp {
                threshold_micros: 0,
                amount_micros: 15 * CREDIT,
            }),
            ..Default::default()
        })
        .await
        .expect_err("not a multiple of the increment");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("auto_top_up.amount_micros"),
        "{}",
        err.message()
    );
    h.server.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_plan_account_gets_its_allowance() {
    let mut h = start().await;
    let account = h
        .admin
        .create_account(proto::CreateAccountRequest {
            account_id: "creator-1".into(),
            plan_id: "creator".into(),
            allowance_alert_percent: 90,
            ..Default::default()
        })
        .await
        .expect("create")
        .into_inner();
    assert_eq!(account.allowance_alert_percent, 90, "alert set at creation");
    let grants = h
        .admin
        .list_grants(proto::ListGrantsRequest {
            account_id: "creator-1".into(),
        })
        .await
        .expect("list")
        .into_inner()
        .grants;
    assert_eq!(grants.len(), 1, "{grants:?}");
    let g = &grants[0];
    assert_eq!(g.kind(), GrantKind::Allowance);
    assert_eq!(g.grant_id, "allowance-2023-11-14");
    assert_eq!(
        g.amount_micros,
        1000 * CREDIT,
        "the creator plan's allowance"
    );
    h.server.shutdown().await.expect("shutdown");
}
