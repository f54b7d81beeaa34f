//! In-process checks of the whole server over real sockets: the services, error details, the
//! message size limit, health, reflection, the HTTP probes, and the graceful drain.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_types::StatusExt;

use super::{RunningServer, ServerOptions};
use crate::error::{Error, Result};
use crate::model::*;
use crate::net::ListenAddr;
use crate::proto::credit_admin_client::CreditAdminClient;
use crate::proto::credits_client::CreditsClient;
use crate::proto::{self};
use crate::store::memory::MemoryStore;
use crate::store::{ClockMode, Store};

/// The memory store, with a switch that makes every call fail as if Redis were down, and an
/// optional delay on reserve (to hold a call in flight).
struct TestStore {
    inner: MemoryStore,
    down: AtomicBool,
    reserve_delay_ms: AtomicU64,
}

impl TestStore {
    fn new() -> Arc<Self> {
        Arc::new(TestStore {
            inner: MemoryStore::new(ClockMode::System),
            down: AtomicBool::new(false),
            reserve_delay_ms: AtomicU64::new(0),
        })
    }

    fn check(&self) -> Result<()> {
        if self.down.load(Ordering::SeqCst) {
            Err(Error::Unavailable("connection refused".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Store for TestStore {
    async fn create_account(&self, req: CreateAccount) -> Result<Account> {
        self.check()?;
        self.inner.create_account(req).await
    }
    async fn get_account(&self, a: &str) -> Result<Account> {
        self.check()?;
        self.inner.get_account(a).await
    }
    async fn update_account(&self, req: UpdateAccount) -> Result<Account> {
        self.check()?;
        self.inner.update_account(req).await
    }
    async fn create_grant(&self, req: CreateGrant) -> Result<Grant> {
        self.check()?;
        self.inner.create_grant(req).await
    }
    async fn list_grants(&self, a: &str) -> Result<Vec<Grant>> {
        self.check()?;
        self.inner.list_grants(a).await
    }
    async fn void_grant(&self, a: &str, g: &str, actor: &str) -> Result<Grant> {
        self.check()?;
        self.inner.void_grant(a, g, actor).await
    }
    async fn quote(&self, req: Quote) -> Result<QuoteOutcome> {
        self.check()?;
        self.inner.quote(req).await
    }
    async fn reserve(&self, req: Reserve) -> Result<ReserveOutcome> {
        let delay = self.reserve_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        self.check()?;
        self.inner.reserve(req).await
    }
    async fn commit(&self, req: Commit) -> Result<CommitOutcome> {
        self.check()?;
        self.inner.commit(req).await
    }
    async fn release(&self, a: &str, r: &str) -> Result<ReleaseOutcome> {
        self.check()?;
        self.inner.release(a, r).await
    }
    async fn extend(&self, req: Extend) -> Result<Reservation> {
        self.check()?;
        self.inner.extend(req).await
    }
    async fn get_reservation(&self, a: &str, r: &str) -> Result<Reservation> {
        self.check()?;
        self.inner.get_reservation(a, r).await
    }
    async fn get_subject_balance(&self, a: &str, s: &str) -> Result<Balance> {
        self.check()?;
        self.inner.get_subject_balance(a, s).await
    }
    async fn get_balance(&self, a: &str) -> Result<Balance> {
        self.check()?;
        self.inner.get_balance(a).await
    }
    async fn set_subject_policy(
        &self,
        a: &str,
        p: SubjectPolicy,
        actor: &str,
    ) -> Result<SubjectPolicy> {
        self.check()?;
        self.inner.set_subject_policy(a, p, actor).await
    }
    async fn get_subject_policy(&self, a: &str, s: &str) -> Result<SubjectPolicy> {
        self.check()?;
        self.inner.get_subject_policy(a, s).await
    }
    async fn request_spending_access(&self, a: &str, s: &str, note: &str) -> Result<()> {
        self.check()?;
        self.inner.request_spending_access(a, s, note).await
    }
    fn set_plans(&self, plans: Plans) {
        self.inner.set_plans(plans)
    }
    async fn reap(&self) -> Result<usize> {
        self.check()?;
        self.inner.reap().await
    }
    async fn ping(&self) -> Result<()> {
        self.check()
    }
    async fn now(&self) -> Result<Millis> {
        self.check()?;
        self.inner.now().await
    }
    async fn advance_clock(&self, m: i64) -> Result<()> {
        self.inner.advance_clock(m).await
    }
    fn kind(&self) -> &'static str {
        "test"
    }
}

fn fast_options() -> ServerOptions {
    ServerOptions {
        ping_interval: Duration::from_millis(20),
        reap_interval: Duration::from_millis(20),
        shutdown_grace: Duration::from_secs(5),
        ..ServerOptions::default()
    }
}

async fn start(store: Arc<TestStore>) -> RunningServer {
    RunningServer::start(store, fast_options())
        .await
        .expect("server starts")
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    conn.write_all(req.as_bytes()).await.expect("write");
    let mut raw = String::new();
    conn.read_to_string(&mut raw).await.expect("read");
    let code = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (code, body.to_string())
}

async fn channel(server: &RunningServer) -> tonic::transport::Channel {
    let target = server.grpc_url();
    let endpoint = crate::net::endpoint(&target).expect("url");
    crate::net::connect(endpoint, &target)
        .await
        .expect("connect")
}

async fn health_status(server: &RunningServer, service: &str) -> ServingStatus {
    let mut client = HealthClient::new(channel(server).await);
    let resp = client
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .expect("health check");
    resp.into_inner().status()
}

/// Polls until health reaches `want` (the pinger runs every 20 ms here).
async fn wait_health(server: &RunningServer, want: ServingStatus) {
    for _ in 0..200 {
        if health_status(server, "creditd.v1.Credits").await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("health never became {want:?}");
}

fn reason(status: &tonic::Status) -> String {
    status
        .get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_default()
}

#[tokio::test]
async fn serves_the_hot_path_end_to_end() {
    let server = start(TestStore::new()).await;
    hot_path(&server).await;
    server.shutdown().await.expect("clean shutdown");
}

/// Health, an account, a grant, reserve, replay, commit, a refusal, typed errors and the
/// metrics they leave, through `server` (over TCP or its Unix socket).
async fn hot_path(server: &RunningServer) {
    wait_health(server, ServingStatus::Serving).await;
    assert_eq!(health_status(server, "").await, ServingStatus::Serving);

    let mut admin = CreditAdminClient::new(channel(server).await);
    let mut credits = CreditsClient::new(channel(server).await);
    let account = admin
        .create_account(proto::CreateAccountRequest {
            account_id: "org-1".into(),
            ..Default::default()
        })
        .await
        .expect("create account")
        .into_inner();
    assert_eq!(account.account_id, "org-1");
    let grant = admin
        .create_grant(proto::CreateGrantRequest {
            account_id: "org-1".into(),
            grant_id: "inv-1".into(),
            kind: proto::GrantKind::Prepaid as i32,
            amount_micros: 10_000_000,
            ..Default::default()
        })
        .await
        .expect("grant")
        .into_inner();
    assert_eq!(grant.state, proto::GrantState::GrantActive as i32);
    assert_eq!(grant.remaining_micros, 10_000_000);

    let reserve = proto::ReserveRequest {
        account_id: "org-1".into(),
        reservation_id: "run-1".into(),
        amount_micros: 4_000_000,
        ..Default::default()
    };
    let r = credits
        .reserve(reserve.clone())
        .await
        .expect("reserve")
        .into_inner();
    assert_eq!(r.decision, proto::Decision::Granted as i32);
    assert!(!r.replayed);
    let held = r.reservation.expect("reservation");
    assert_eq!(held.held_micros, 4_000_000);
    let ttl_ms = crate::api::convert::millis(&held.expires_at.expect("expires_at"))
        - crate::api::convert::millis(&held.created_at.expect("created_at"));
    assert_eq!(ttl_ms, 300_000, "ttl 0 resolves to the default");
    assert_eq!(r.balance.expect("balance").available_micros, 6_000_000);
    let replay = credits.reserve(reserve).await.expect("replay").into_inner();
    assert!(replay.replayed);

    let c = credits
        .commit(proto::CommitRequest {
            account_id: "org-1".into(),
            reservation_id: "run-1".into(),
            amount_micros: 2_500_000,
            ..Default::default()
        })
        .await
        .expect("commit")
        .into_inner();
    assert_eq!(
        (c.charged_micros, c.released_micros),
        (2_500_000, 1_500_000)
    );
    let b = credits
        .get_balance(proto::GetBalanceRequest {
            account_id: "org-1".into(),
            subject_id: String::new(),
        })
        .await
        .expect("balance")
        .into_inner();
    assert_eq!((b.available_micros, b.held_micros), (7_500_000, 0));

    let denied = credits
        .reserve(proto::ReserveRequest {
            account_id: "org-1".into(),
            reservation_id: "run-2".into(),
            amount_micros: 8_000_000,
            ..Default::default()
        })
        .await
        .expect("a refusal is a successful call")
        .into_inner();
    assert_eq!(denied.decision, proto::Decision::Denied as i32);
    assert_eq!(
        denied.denial_reason,
        proto::DenialReason::InsufficientCredits as i32
    );

    let err = credits
        .release(proto::ReleaseRequest {
            account_id: "org-1".into(),
            reservation_id: "run-1".into(),
        })
        .await
        .expect_err("release after commit");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "RESERVATION_COMMITTED");

    let err = credits
        .get_balance(proto::GetBalanceRequest {
            account_id: "nobody".into(),
            subject_id: String::new(),
        })
        .await
        .expect_err("unknown account");
    assert_eq!(
        (err.code(), reason(&err)),
        (Code::NotFound, "ACCOUNT_NOT_FOUND".into())
    );

    let (code, body) = http_get(server.http_addr, "/metrics").await;
    assert_eq!(code, 200);
    assert!(
        body.contains(r#"creditd_reserve_duration_seconds_count{outcome="granted"}"#),
        "{body}"
    );
    assert!(body.contains(r#"creditd_commit_duration_seconds_count{outcome="ok"}"#));
    assert!(!body.contains("org-1"), "no ids in metric labels");
}

#[tokio::test]
async fn refuses_bad_input_and_oversized_requests() {
    let store = TestStore::new();
    let server = start(store.clone()).await;
    let mut credits = CreditsClient::connect(server.grpc_url())
        .await
        .expect("connect");
    let err = credits
        .reserve(proto::ReserveRequest {
            account_id: "org:1".into(),
            reservation_id: "r".into(),
            amount_micros: 1,
            ..Default::default()
        })
        .await
        .expect_err("bad id");
    assert_eq!(err.code(), Code::InvalidArgument);
    let info = err.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "INVALID_ARGUMENT");
    assert_eq!(info.domain, "creditd");
    assert_eq!(info.metadata["field"], "account_id");

    let mut huge = proto::ReserveRequest {
        account_id: "org-1".into(),
        reservation_id: "r".into(),
        amount_micros: 1,
        ..Default::default()
    };
    huge.labels.insert("blob".into(), "x".repeat(70 * 1024));
    let err = credits.reserve(huge).await.expect_err("over 64 KiB");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let info = err.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.metadata["field"], "request");
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn health_follows_the_store_and_the_shutdown() {
    let store = TestStore::new();
    store.down.store(true, Ordering::SeqCst);
    let server = start(store.clone()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        health_status(&server, "").await,
        ServingStatus::NotServing,
        "not serving before the first successful ping"
    );
    let (code, body) = http_get(server.http_addr, "/readyz").await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains(r#""store_reachable":false"#), "{body}");
    assert_eq!(http_get(server.http_addr, "/healthz").await.0, 200);

    let mut credits = CreditsClient::connect(server.grpc_url())
        .await
        .expect("connect");
    let err = credits
        .get_balance(proto::GetBalanceRequest {
            account_id: "org-1".into(),
            subject_id: String::new(),
        })
        .await
        .expect_err("store down");
    assert_eq!(
        (err.code(), reason(&err)),
        (Code::Unavailable, "STORE_UNAVAILABLE".into())
    );

    store.down.store(false, Ordering::SeqCst);
    wait_health(&server, ServingStatus::Serving).await;
    assert_eq!(http_get(server.http_addr, "/readyz").await.0, 200);
    store.down.store(true, Ordering::SeqCst);
    wait_health(&server, ServingStatus::NotServing).await;
    store.down.store(false, Ordering::SeqCst);
    wait_health(&server, ServingStatus::Serving).await;

    let (_, metrics) = http_get(server.http_addr, "/metrics").await;
    assert!(
        metrics.contains(r#"creditd_store_errors_total{kind="unavailable",op="ping"}"#),
        "{metrics}"
    );

    // Shutdown: NOT_SERVING first, and it stays so even though the store answers.
    let health = server.health().clone();
    server.trigger_shutdown();
    for _ in 0..100 {
        if health.state().shutting_down {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(health.state().shutting_down);
    assert!(!health.is_serving());
}

#[tokio::test]
async fn shutdown_drains_in_flight_calls() {
    let store = TestStore::new();
    let mut server = start(store.clone()).await;
    wait_health(&server, ServingStatus::Serving).await;
    let mut admin = CreditAdminClient::connect(server.grpc_url())
        .await
        .expect("admin");
    admin
        .create_account(proto::CreateAccountRequest {
            account_id: "org-1".into(),
            ..Default::default()
        })
        .await
        .expect("account");
    store.reserve_delay_ms.store(300, Ordering::SeqCst);
    let mut credits = CreditsClient::connect(server.grpc_url())
        .await
        .expect("connect");
    let in_flight = tokio::spawn(async move {
        credits
            .reserve(proto::ReserveRequest {
                account_id: "org-1".into(),
                reservation_id: "slow".into(),
                amount_micros: 1,
                ..Default::default()
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.trigger_shutdown();
    let answer = in_flight
        .await
        .expect("join")
        .expect("the in-flight call completes");
    assert_eq!(
        answer.into_inner().decision,
        proto::Decision::Denied as i32,
        "answered by the store (no credits granted)"
    );
    tokio::time::timeout(Duration::from_secs(5), server.wait())
        .await
        .expect("stops within the grace period")
        .expect("clean stop");
    assert!(
        tokio::net::TcpStream::connect(server.grpc_addr.to_string())
            .await
            .is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn serves_on_a_unix_socket_and_removes_it_on_shutdown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("grpc.sock");
    let on_socket = || ServerOptions {
        grpc_addr: ListenAddr::Unix(path.clone()),
        ..fast_options()
    };
    let mut server = RunningServer::start(TestStore::new(), on_socket())
        .await
        .expect("server starts");
    assert_eq!(server.grpc_url(), format!("unix:{}", path.display()));
    hot_path(&server).await;

    let refused = RunningServer::start(TestStore::new(), on_socket()).await;
    let err = match refused {
        Ok(_) => panic!("a second server took a live socket"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("another server is listening"), "{err}");
    assert_eq!(health_status(&server, "").await, ServingStatus::Serving);

    server.trigger_shutdown();
    tokio::time::timeout(Duration::from_secs(5), server.wait())
        .await
        .expect("stops within the grace period")
        .expect("clean stop");
    assert!(!path.exists(), "the socket file is removed on shutdown");
}

#[tokio::test]
async fn reflection_lists_the_services() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let server = start(TestStore::new()).await;
    let mut client = ServerReflectionClient::new(channel(&server).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let reply = stream.message().await.expect("reply").expect("one message");
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("unexpected reflection reply {reply:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"creditd.v1.Credits".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"creditd.v1.CreditAdmin".to_string()),
        "{names:?}"
    );
    server.shutdown().await.expect("clean shutdown");
}
