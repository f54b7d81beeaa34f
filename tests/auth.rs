//! Authorization over every RPC of Credits and CreditAdmin, against an in-process server with a
//! tokens file: no token → UNAUTHENTICATED; a wrong scope or another tenant's account →
//! PERMISSION_DENIED; nothing changes on any refusal; the right scope works.

use std::sync::Arc;

use creditd::api::auth::{hash_hex, TokenSet};
use creditd::api::Authorizer;
use creditd::config::ServeArgs;
use creditd::pricing::RateCardFile;
use creditd::proto::credit_admin_client::CreditAdminClient;
use creditd::proto::credits_client::CreditsClient;
use creditd::proto::{self, GrantKind};
use creditd::server::{RunningServer, ServerOptions};
use creditd::store::memory::MemoryStore;
use creditd::store::ClockMode;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

/// All scopes on every account: sets up fixtures and takes snapshots.
const ROOT: &str = "tok-root";
const ACME_CHARGE: &str = "tok-acme-charge";
const ACME_READ: &str = "tok-acme-read";
const ACME_ADMIN: &str = "tok-acme-admin";
/// Every scope, but only on globex-* accounts.
const GLOBEX_ALL: &str = "tok-globex-all";
/// Every scope, but only on the exact account "acme" (not acme-*).
const ACME_EXACT: &str = "tok-acme-exact";

fn tokens_toml() -> String {
    let entries = [
        ("root", ROOT, r#"["charge", "read", "admin"]"#, r#"["*"]"#),
        ("acme-charge", ACME_CHARGE, r#"["charge"]"#, r#"["acme-*"]"#),
        ("acme-read", ACME_READ, r#"["read"]"#, r#"["acme-*"]"#),
        ("acme-admin", ACME_ADMIN, r#"["admin"]"#, r#"["acme-*"]"#),
        (
            "globex",
            GLOBEX_ALL,
            r#"["charge", "read", "admin"]"#,
            r#"["globex-*"]"#,
        ),
        (
            "acme-exact",
            ACME_EXACT,
            r#"["charge", "read", "admin"]"#,
            r#"["acme"]"#,
        ),
    ];
    entries
        .iter()
        .map(|(name, token, scopes, accounts)| {
            format!(
                "[[token]]\nname = {name:?}\nsha256 = {:?}\nscopes = {scopes}\naccounts = {accounts}\n\n",
                hash_hex(token)
            )
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rpc {
    Quote,
    Reserve,
    Commit,
    Release,
    Extend,
    GetReservation,
    GetBalance,
    CreateAccount,
    GetAccount,
    UpdateAccount,
    CreateGrant,
    ListGrants,
    VoidGrant,
    GetRateCard,
    SetSubjectPolicy,
    GetSubjectPolicy,
    RequestSpendingAccess,
    GetUsage,
    GetProfitAndLoss,
    ListLedgerEntries,
    ListAuditEvents,
}

impl Rpc {
    /// RPCs that act on no account: a token of any tenant with the scope may call them.
    fn is_global(self) -> bool {
        matches!(self, Rpc::GetRateCard)
    }

    /// The reports read the Postgres ledger, which this harness does not configure: a call the
    /// guard lets through reaches the service and answers `LEDGER_NOT_CONFIGURED` (the reports
    /// themselves, and the roll-up by parent against token patterns, are in tests/reports.rs).
    fn needs_ledger(self) -> bool {
        matches!(
            self,
            Rpc::GetUsage | Rpc::GetProfitAndLoss | Rpc::ListLedgerEntries | Rpc::ListAuditEvents
        )
    }
}

/// Panics unless the call was let through: it succeeded or, for a report, reached the service
/// and was answered `FAILED_PRECONDITION` / `LEDGER_NOT_CONFIGURED`.
fn assert_allowed(rpc: Rpc, result: Result<(), Status>, what: &str) {
    match result {
        Ok(()) => assert!(
            !rpc.needs_ledger(),
            "{what}: a report answered without a ledger"
        ),
        Err(status) if rpc.needs_ledger() => {
            assert_eq!(
                status.code(),
                Code::FailedPrecondition,
                "{what}: {status:?}"
            );
            let info = status.get_details_error_info().expect("ErrorInfo");
            assert_eq!(info.reason, "LEDGER_NOT_CONFIGURED", "{what}");
        }
        Err(status) => panic!("{what}: {status:?}"),
    }
}

/// The specification: every RPC and the acme tokens (one per scope) that may call it.
const TABLE: &[(Rpc, &[&str])] = &[
    (Rpc::Quote, &[ACME_CHARGE, ACME_READ]),
    (Rpc::Reserve, &[ACME_CHARGE]),
    (Rpc::Commit, &[ACME_CHARGE]),
    (Rpc::Release, &[ACME_CHARGE]),
    (Rpc::Extend, &[ACME_CHARGE]),
    (Rpc::GetReservation, &[ACME_CHARGE, ACME_READ]),
    (Rpc::GetBalance, &[ACME_CHARGE, ACME_READ]),
    (Rpc::CreateAccount, &[ACME_ADMIN]),
    (Rpc::GetAccount, &[ACME_READ, ACME_ADMIN]),
    (Rpc::UpdateAccount, &[ACME_ADMIN]),
    (Rpc::CreateGrant, &[ACME_ADMIN]),
    (Rpc::ListGrants, &[ACME_READ, ACME_ADMIN]),
    (Rpc::VoidGrant, &[ACME_ADMIN]),
    (Rpc::GetRateCard, &[ACME_READ, ACME_ADMIN]),
    (Rpc::SetSubjectPolicy, &[ACME_ADMIN]),
    (Rpc::GetSubjectPolicy, &[ACME_READ, ACME_ADMIN]),
    (Rpc::RequestSpendingAccess, &[ACME_CHARGE, ACME_ADMIN]),
    (Rpc::GetUsage, &[ACME_READ, ACME_ADMIN]),
    (Rpc::GetProfitAndLoss, &[ACME_READ, ACME_ADMIN]),
    (Rpc::ListLedgerEntries, &[ACME_READ, ACME_ADMIN]),
    (Rpc::ListAuditEvents, &[ACME_READ, ACME_ADMIN]),
];

/// The subject whose policy the policy RPCs touch.
const SUBJECT: &str = "user-1";

const ACME_SCOPED: [&str; 3] = [ACME_CHARGE, ACME_READ, ACME_ADMIN];

/// An account with a grant and an open hold, and ids that do not exist yet.
struct Fixture {
    account: String,
    hold: String,
    grant: String,
    new_account: String,
    new_reservation: String,
    new_grant: String,
}

impl Fixture {
    fn named(account: &str) -> Self {
        Fixture {
            account: account.to_string(),
            hold: "hold-open".into(),
            grant: "grant-1".into(),
            new_account: format!("{account}-new"),
            new_reservation: "r-new".into(),
            new_grant: "grant-new".into(),
        }
    }
}

struct Harness {
    server: RunningServer,
    channel: Channel,
    store: Arc<MemoryStore>,
}

impl Harness {
    async fn start(auth: Authorizer) -> Self {
        let store = Arc::new(MemoryStore::new(ClockMode::Manual(1_700_000_000_000)));
        let card = RateCardFile::load(std::path::Path::new("examples/pricing.yaml"))
            .expect("example rate card");
        let opts = ServerOptions {
            auth,
            rate_card: card.cell(),
            ..ServerOptions::default()
        };
        let server = RunningServer::start(store.clone(), opts)
            .await
            .expect("server starts");
        let channel = tonic::transport::Endpoint::from_shared(server.grpc_url())
            .expect("url")
            .connect()
            .await
            .expect("connect");
        Harness {
            server,
            channel,
            store,
        }
    }

    async fn with_tokens() -> Self {
        Harness::start(Authorizer::with_tokens(
            TokenSet::parse(&tokens_toml()).expect("tokens"),
        ))
        .await
    }

    /// Creates the fixture's account, grant and open hold with the root token.
    async fn seed(&self, f: &Fixture) {
        let mut admin = CreditAdminClient::new(self.channel.clone());
        let mut credits = CreditsClient::new(self.channel.clone());
        admin
            .create_account(with_token(
                proto::CreateAccountRequest {
                    account_id: f.account.clone(),
                    ..Default::default()
                },
                Some(ROOT),
            ))
            .await
            .expect("create account");
        admin
            .create_grant(with_token(
                proto::CreateGrantRequest {
                    account_id: f.account.clone(),
                    grant_id: f.grant.clone(),
                    kind: GrantKind::Prepaid as i32,
                    amount_micros: 100_000_000,
                    ..Default::default()
                },
                Some(ROOT),
            ))
            .await
            .expect("create grant");
        let reserved = credits
            .reserve(with_token(
                proto::ReserveRequest {
                    account_id: f.account.clone(),
                    reservation_id: f.hold.clone(),
                    amount_micros: 5_000_000,
                    ..Default::default()
                },
                Some(ROOT),
            ))
            .await
            .expect("reserve")
            .into_inner();
        assert_eq!(reserved.decision, proto::Decision::Granted as i32);
    }

    /// Everything a refused call could have changed, read with the root token.
    async fn snapshot(&self, f: &Fixture) -> String {
        let mut admin = CreditAdminClient::new(self.channel.clone());
        let mut credits = CreditsClient::new(self.channel.clone());
        let balance = credits
            .get_balance(with_token(
                proto::GetBalanceRequest {
                    account_id: f.account.clone(),
                    ..Default::default()
                },
                Some(ROOT),
            ))
            .await
            .map(|r| r.into_inner());
        let grants = admin
            .list_grants(with_token(
                proto::ListGrantsRequest {
                    account_id: f.account.clone(),
                },
                Some(ROOT),
            ))
            .await
            .map(|r| r.into_inner());
        let account = admin
            .get_account(with_token(
                proto::GetAccountRequest {
                    account_id: f.account.clone(),
                },
                Some(ROOT),
            ))
            .await
            .map(|r| r.into_inner());
        let new_account = admin
            .get_account(with_token(
                proto::GetAccountRequest {
                    account_id: f.new_account.clone(),
                },
                Some(ROOT),
            ))
            .await
            .map(|r| r.into_inner());
        let mut holds = Vec::new();
        for id in [&f.hold, &f.new_reservation] {
            holds.push(
                credits
                    .get_reservation(with_token(
                        proto::GetReservationRequest {
                            account_id: f.account.clone(),
                            reservation_id: id.clone(),
                        },
                        Some(ROOT),
                    ))
                    .await
                    .map(|r| r.into_inner()),
            );
        }
        let policy = admin
            .get_subject_policy(with_token(
                proto::GetSubjectPolicyRequest {
                    account_id: f.account.clone(),
                    subject_id: SUBJECT.into(),
                },
                Some(ROOT),
            ))
            .await
            .map(|r| r.into_inner());
        assert!(balance.is_ok() && grants.is_ok() && account.is_ok() && policy.is_ok());
        format!(
            "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
            balance.map_err(|s| s.code()),
            grants.map_err(|s| s.code()),
            account.map_err(|s| s.code()),
            new_account.map_err(|s| s.code()),
            holds
                .into_iter()
                .map(|h| h.map_err(|s| s.code()))
                .collect::<Vec<_>>(),
            policy.map_err(|s| s.code()),
        )
    }

    /// Calls `rpc` on the fixture with `token`; a successful call's answer is dropped.
    async fn call(&self, rpc: Rpc, token: Option<&str>, f: &Fixture) -> Result<(), Status> {
        let mut admin = CreditAdminClient::new(self.channel.clone());
        let mut credits = CreditsClient::new(self.channel.clone());
        let account_id = f.account.clone();
        match rpc {
            Rpc::Quote => {
                let req = proto::QuoteRequest {
                    account_id,
                    amount_micros: 1_000_000,
                    ..Default::default()
                };
                credits.quote(with_token(req, token)).await.map(drop)
            }
            Rpc::Reserve => {
                let req = proto::ReserveRequest {
                    account_id,
                    reservation_id: f.new_reservation.clone(),
                    amount_micros: 1_000_000,
                    ..Default::default()
                };
                let r = credits.reserve(with_token(req, token)).await?.into_inner();
                assert_eq!(r.decision, proto::Decision::Granted as i32);
                Ok(())
            }
            Rpc::Commit => {
                let req = proto::CommitRequest {
                    account_id,
                    reservation_id: f.hold.clone(),
                    amount_micros: 2_000_000,
                    ..Default::default()
                };
                credits.commit(with_token(req, token)).await.map(drop)
            }
            Rpc::Release => {
                let req = proto::ReleaseRequest {
                    account_id,
                    reservation_id: f.hold.clone(),
                };
                credits.release(with_token(req, token)).await.map(drop)
            }
            Rpc::Extend => {
                let req = proto::ExtendRequest {
                    account_id,
                    reservation_id: f.hold.clone(),
                    ttl_seconds: 900,
                };
                credits.extend(with_token(req, token)).await.map(drop)
            }
            Rpc::GetReservation => {
                let req = proto::GetReservationRequest {
                    account_id,
                    reservation_id: f.hold.clone(),
                };
                credits
                    .get_reservation(with_token(req, token))
                    .await
                    .map(drop)
            }
            Rpc::GetBalance => {
                let req = proto::GetBalanceRequest {
                    account_id,
                    ..Default::default()
                };
                credits.get_balance(with_token(req, token)).await.map(drop)
            }
            Rpc::CreateAccount => {
                let req = proto::CreateAccountRequest {
                    account_id: f.new_account.clone(),
                    ..Default::default()
                };
                admin.create_account(with_token(req, token)).await.map(drop)
            }
            Rpc::GetAccount => {
                let req = proto::GetAccountRequest { account_id };
                admin.get_account(with_token(req, token)).await.map(drop)
            }
            Rpc::UpdateAccount => {
                let req = proto::UpdateAccountRequest {
                    account_id,
                    suspended: Some(true),
                    ..Default::default()
                };
                admin.update_account(with_token(req, token)).await.map(drop)
            }
            Rpc::CreateGrant => {
                let req = proto::CreateGrantRequest {
                    account_id,
                    grant_id: f.new_grant.clone(),
                    kind: GrantKind::Promo as i32,
                    amount_micros: 7_000_000,
                    ..Default::default()
                };
                admin.create_grant(with_token(req, token)).await.map(drop)
            }
            Rpc::ListGrants => {
                let req = proto::ListGrantsRequest { account_id };
                admin.list_grants(with_token(req, token)).await.map(drop)
            }
            Rpc::GetRateCard => {
                let req = proto::GetRateCardRequest::default();
                admin.get_rate_card(with_token(req, token)).await.map(drop)
            }
            Rpc::SetSubjectPolicy => {
                let req = proto::SetSubjectPolicyRequest {
                    account_id,
                    policy: Some(proto::SubjectPolicy {
                        subject_id: SUBJECT.into(),
                        spending_enabled: false,
                        ..Default::default()
                    }),
                };
                admin
                    .set_subject_policy(with_token(req, token))
                    .await
                    .map(drop)
            }
            Rpc::GetSubjectPolicy => {
                let req = proto::GetSubjectPolicyRequest {
                    account_id,
                    subject_id: SUBJECT.into(),
                };
                admin
                    .get_subject_policy(with_token(req, token))
                    .await
                    .map(drop)
            }
            Rpc::RequestSpendingAccess => {
                let req = proto::RequestSpendingAccessRequest {
                    account_id,
                    subject_id: SUBJECT.into(),
                    note: "please".into(),
                };
                admin
                    .request_spending_access(with_token(req, token))
                    .await
                    .map(drop)
            }
            Rpc::VoidGrant => {
                let req = proto::VoidGrantRequest {
                    account_id,
                    grant_id: f.grant.clone(),
                };
                admin.void_grant(with_token(req, token)).await.map(drop)
            }
            Rpc::GetUsage => {
                let req = proto::GetUsageRequest {
                    account_id,
                    ..Default::default()
                };
                admin.get_usage(with_token(req, token)).await.map(drop)
            }
            Rpc::GetProfitAndLoss => {
                let req = proto::GetProfitAndLossRequest {
                    account_id,
                    ..Default::default()
                };
                admin
                    .get_profit_and_loss(with_token(req, token))
                    .await
                    .map(drop)
            }
            Rpc::ListLedgerEntries => {
                let req = proto::ListLedgerEntriesRequest {
                    account_id,
                    ..Default::default()
                };
                admin
                    .list_ledger_entries(with_token(req, token))
                    .await
                    .map(drop)
            }
            Rpc::ListAuditEvents => {
                let req = proto::ListAuditEventsRequest {
                    account_id,
                    ..Default::default()
                };
                admin
                    .list_audit_events(with_token(req, token))
                    .await
                    .map(drop)
            }
        }
    }
}

fn with_token<T>(message: T, token: Option<&str>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(token) = token {
        let value = MetadataValue::try_from(format!("Bearer {token}")).expect("ascii");
        request.metadata_mut().insert("authorization", value);
    }
    request
}

fn assert_refused(result: Result<(), Status>, code: Code, what: &str) {
    let status = result.expect_err(what);
    assert_eq!(status.code(), code, "{what}: {status:?}");
    let info = status.get_details_error_info().expect("ErrorInfo");
    let want = match code {
        Code::Unauthenticated => "UNAUTHENTICATED",
        _ => "PERMISSION_DENIED",
    };
    assert_eq!(info.reason, want, "{what}");
    assert_eq!(info.domain, "creditd", "{what}");
}

#[test]
fn the_table_covers_every_rpc_of_both_services() {
    let served: Vec<&str> = creditd::api::auth::CREDITS_RULES
        .iter()
        .chain(creditd::api::auth::ADMIN_RULES)
        .map(|r| r.method)
        .collect();
    let tested: Vec<String> = TABLE.iter().map(|(rpc, _)| format!("{rpc:?}")).collect();
    assert_eq!(served, tested);
}

#[tokio::test]
async fn refusals_change_nothing() {
    let h = Harness::with_tokens().await;
    let acme = Fixture::named("acme-1");
    h.seed(&acme).await;
    let before = h.snapshot(&acme).await;

    for &(rpc, allowed) in TABLE {
        for token in [None, Some("not-a-token"), Some("")] {
            assert_refused(
                h.call(rpc, token, &acme).await,
                Code::Unauthenticated,
                &format!("{rpc:?} with token {token:?}"),
            );
        }
        for token in ACME_SCOPED.iter().filter(|t| !allowed.contains(t)) {
            assert_refused(
                h.call(rpc, Some(token), &acme).await,
                Code::PermissionDenied,
                &format!("{rpc:?} with {token} (wrong scope)"),
            );
        }
        for token in [GLOBEX_ALL, ACME_EXACT]
            .into_iter()
            .filter(|_| !rpc.is_global())
        {
            assert_refused(
                h.call(rpc, Some(token), &acme).await,
                Code::PermissionDenied,
                &format!("{rpc:?} with {token} (another tenant)"),
            );
        }
        assert_eq!(h.snapshot(&acme).await, before, "{rpc:?} changed something");
    }
    h.server.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn the_right_scope_works_on_every_rpc() {
    let h = Harness::with_tokens().await;
    let mut n = 0;
    for &(rpc, allowed) in TABLE {
        for token in allowed {
            n += 1;
            let f = Fixture::named(&format!("acme-p{n}"));
            h.seed(&f).await;
            let before = h.snapshot(&f).await;
            assert_allowed(
                rpc,
                h.call(rpc, Some(token), &f).await,
                &format!("{rpc:?} with {token}"),
            );
            let after = h.snapshot(&f).await;
            let is_read = rpc.needs_ledger()
                || matches!(
                    rpc,
                    Rpc::Quote
                        | Rpc::GetReservation
                        | Rpc::GetBalance
                        | Rpc::GetAccount
                        | Rpc::ListGrants
                        | Rpc::GetRateCard
                        | Rpc::GetSubjectPolicy
                );
            assert_eq!(
                before == after,
                is_read,
                "{rpc:?}: a read changes nothing, a write does"
            );
        }
    }
    // An exact account entry allows that account only.
    let exact = Fixture::named("acme");
    h.seed(&exact).await;
    h.call(Rpc::GetBalance, Some(ACME_EXACT), &exact)
        .await
        .expect("exact account");
    h.server.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn health_and_reflection_stay_open() {
    use tokio_stream::StreamExt as _;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let h = Harness::with_tokens().await;
    HealthClient::new(h.channel.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health without a token");
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = ServerReflectionClient::new(h.channel.clone())
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection without a token")
        .into_inner();
    let first = answers.next().await.expect("one answer").expect("ok");
    assert!(format!("{first:?}").contains("creditd.v1.Credits"));
    h.server.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn without_a_tokens_file_every_call_is_allowed() {
    let h = Harness::start(Authorizer::open()).await;
    for (n, &(rpc, _)) in TABLE.iter().enumerate() {
        let f = Fixture::named(&format!("open-{n}"));
        h.seed(&f).await;
        assert_allowed(
            rpc,
            h.call(rpc, None, &f).await,
            &format!("{rpc:?} without auth"),
        );
    }
    h.server.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn an_exposed_address_needs_tokens_or_insecure_no_auth() {
    let exposed = ServeArgs {
        listen: "0.0.0.0:0".parse().expect("addr"),
        ..ServeArgs::default()
    };
    let err = exposed.validate().expect_err("refused");
    assert!(err.to_string().contains("--insecure-no-auth"), "{err}");
    let err = creditd::server::run(exposed.clone())
        .await
        .expect_err("serve refuses to start");
    assert!(err.to_string().contains("0.0.0.0:0"), "{err}");

    let insecure = ServeArgs {
        insecure_no_auth: true,
        ..exposed.clone()
    };
    insecure
        .validate()
        .expect("allowed with --insecure-no-auth");

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tokens.toml");
    std::fs::write(&path, tokens_toml()).expect("write");
    let with_tokens = ServeArgs {
        tokens: Some(path.clone()),
        ..exposed
    };
    with_tokens.validate().expect("allowed with a tokens file");
    let opts = ServerOptions::load(&with_tokens).expect("tokens load");
    assert!(opts.auth.is_enabled());

    std::fs::write(
        &path,
        tokens_toml().replace(r#"["read"]"#, r#"["read", "owner"]"#),
    )
    .expect("write");
    let err = ServerOptions::load(&with_tokens).expect_err("bad tokens file");
    let message = format!("{err:#}");
    assert!(
        message.contains("#3 (\"acme-read\")") && message.contains("field `scopes`"),
        "{message}"
    );
}

#[test]
fn the_example_tokens_file_loads() {
    let set = TokenSet::load(std::path::Path::new("examples/tokens.toml")).expect("example");
    assert_eq!(set.entries().len(), 4);
}

#[tokio::test]
async fn admin_changes_are_audited_with_the_token_before_and_after() {
    use creditd::model::Audit;
    let h = Harness::with_tokens().await;
    let f = Fixture::named("acme-audit");
    h.seed(&f).await;
    let mut admin = CreditAdminClient::new(h.channel.clone());
    admin
        .update_account(with_token(
            proto::UpdateAccountRequest {
                account_id: f.account.clone(),
                suspended: Some(true),
                ..Default::default()
            },
            Some(ACME_ADMIN),
        ))
        .await
        .expect("update");
    admin
        .void_grant(with_token(
            proto::VoidGrantRequest {
                account_id: f.account.clone(),
                grant_id: f.grant.clone(),
            },
            Some(ACME_ADMIN),
        ))
        .await
        .expect("void");

    let events = h.store.events(&f.account);
    let created = events
        .iter()
        .find(|e| e.kind == "account_created")
        .expect("created");
    assert_eq!(created.actor, "root");
    assert!(matches!(&created.after, Some(Audit::Account(a)) if a.account_id == f.account));
    let granted = events
        .iter()
        .find(|e| e.kind == "grant_created")
        .expect("granted");
    assert_eq!(granted.actor, "root");
    assert!(matches!(&granted.after, Some(Audit::Grant(g)) if g.amount == 100_000_000));
    let updated = events
        .iter()
        .find(|e| e.kind == "account_updated")
        .expect("updated");
    assert_eq!(updated.actor, "acme-admin");
    match (&updated.before, &updated.after) {
        (Some(Audit::Account(before)), Some(Audit::Account(after))) => {
            assert!(!before.suspended);
            assert!(after.suspended);
        }
        other => panic!("account_updated without before/after: {other:?}"),
    }
    let voided = events
        .iter()
        .find(|e| e.kind == "grant_voided")
        .expect("voided");
    assert_eq!(voided.actor, "acme-admin");
    match (&voided.before, &voided.after) {
        (Some(Audit::Grant(before)), Some(Audit::Grant(after))) => {
            assert!(!before.is_voided);
            assert!(after.is_voided);
            assert_eq!(after.voided, before.remaining);
        }
        other => panic!("grant_voided without before/after: {other:?}"),
    }
    h.server.shutdown().await.expect("shutdown");
}
