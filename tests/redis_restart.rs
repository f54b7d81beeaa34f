//! Redis (append-only file, fsync always) killed with SIGKILL in the middle of a test and
//! restarted on the same port and dir: calls fail with UNAVAILABLE / STORE_UNAVAILABLE, gRPC
//! health goes NOT_SERVING and back to SERVING, holds made before the kill are all still there,
//! and operations work again. Also: SIGTERM makes `creditd serve` exit 0.

mod common;

use common::creditd::CreditdServer;
use common::grpc::*;
use common::redis_server::RedisServer;
use common::{eventually, CREDIT, WAIT};
use creditd::proto::{self, Decision, GrantKind, ReservationState};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

const A: &str = "restart-1";

fn get_res(id: &str) -> proto::GetReservationRequest {
    proto::GetReservationRequest {
        account_id: A.to_string(),
        reservation_id: id.to_string(),
    }
}

fn get_balance() -> proto::GetBalanceRequest {
    proto::GetBalanceRequest {
        account_id: A.to_string(),
        subject_id: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_loses_no_hold() {
    let mut redis = RedisServer::start();
    let server = CreditdServer::start(Some(&redis.url()), &["--shards", "4"]).await;
    let mut admin = server.admin().await;
    let mut credits = server.credits().await;

    admin
        .create_account(account_req(A, false, 0))
        .await
        .expect("create_account");
    admin
        .create_grant(grant_req(A, "g1", GrantKind::Allowance, 10 * CREDIT))
        .await
        .expect("create_grant");
    admin
        .create_grant(grant_req(A, "g2", GrantKind::Prepaid, 5 * CREDIT))
        .await
        .expect("create_grant");
    let mut holds = Vec::new();
    for (id, amount) in [("r1", 4 * CREDIT), ("r2", 7 * CREDIT), ("r3", 2 * CREDIT)] {
        let mut req = reserve_req(A, id, amount);
        req.ttl_seconds = 3_600;
        let out = credits.reserve(req).await.expect("reserve").into_inner();
        assert_eq!(out.decision, Decision::Granted as i32, "{out:?}");
        holds.push(id);
    }
    // A partial capture on r2, so the state to survive is not only fresh holds.
    let mut cap = commit_req(A, "r2", 3 * CREDIT);
    cap.keep_open = true;
    cap.capture_id = "part-1".into();
    credits.commit(cap.clone()).await.expect("capture");

    let mut before = Vec::new();
    for id in &holds {
        before.push(
            credits
                .get_reservation(get_res(id))
                .await
                .unwrap()
                .into_inner(),
        );
    }
    assert_eq!(before[1].held_micros, 4 * CREDIT);
    assert_eq!(before[1].committed_micros, 3 * CREDIT);
    let balance_before = credits
        .get_balance(get_balance())
        .await
        .unwrap()
        .into_inner();
    // 15 granted - 13 reserved (3 of them captured).
    assert_eq!(balance_before.available_micros, 2 * CREDIT);
    assert_eq!(balance_before.held_micros, 10 * CREDIT);

    assert_eq!(server.http_get("/readyz").await.map(|r| r.0), Some(200));
    assert_eq!(server.http_get("/healthz").await.map(|r| r.0), Some(200));
    let (code, metrics) = server.http_get("/metrics").await.expect("GET /metrics");
    assert_eq!(code, 200);
    for name in [
        "creditd_reserve_duration_seconds_bucket",
        "creditd_commit_duration_seconds_bucket",
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}:\n{metrics}");
    }

    redis.kill();

    // Every call that needs the store fails closed, with the reason.
    let err = credits.get_balance(get_balance()).await.unwrap_err();
    assert_status(&err, Code::Unavailable, "STORE_UNAVAILABLE");
    let err = credits
        .reserve(reserve_req(A, "r4", CREDIT))
        .await
        .unwrap_err();
    assert_status(&err, Code::Unavailable, "STORE_UNAVAILABLE");
    let err = credits
        .commit(commit_req(A, "r1", CREDIT))
        .await
        .unwrap_err();
    assert_status(&err, Code::Unavailable, "STORE_UNAVAILABLE");
    let err = credits.release(release_req(A, "r3")).await.unwrap_err();
    assert_status(&err, Code::Unavailable, "STORE_UNAVAILABLE");
    let err = admin
        .create_grant(grant_req(A, "g3", GrantKind::Promo, CREDIT))
        .await
        .unwrap_err();
    assert_status(&err, Code::Unavailable, "STORE_UNAVAILABLE");
    server.wait_health(ServingStatus::NotServing).await;
    // Not ready while the store is unreachable, but alive (no restart by the orchestrator).
    assert_eq!(server.http_get("/readyz").await.map(|r| r.0), Some(503));
    assert_eq!(server.http_get("/healthz").await.map(|r| r.0), Some(200));

    redis.restart();
    server.wait_health(ServingStatus::Serving).await;
    assert_eq!(server.http_get("/readyz").await.map(|r| r.0), Some(200));

    // The store answers again (the connection may need a moment to be remade).
    let balance_after = eventually(WAIT, "GetBalance after the restart", || {
        let mut c = credits.clone();
        async move {
            c.get_balance(get_balance())
                .await
                .ok()
                .map(|r| r.into_inner())
        }
    })
    .await;
    for (id, b) in holds.iter().zip(&before) {
        let after = credits
            .get_reservation(get_res(id))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(&after, b, "reservation {id} after the restart");
        assert_eq!(after.state, ReservationState::Held as i32);
    }
    assert_eq!(
        balance_after.available_micros,
        balance_before.available_micros
    );
    assert_eq!(balance_after.held_micros, balance_before.held_micros);
    assert_eq!(balance_after.grants, balance_before.grants);
    assert_eq!(
        balance_after.sequence, balance_before.sequence,
        "nothing happened while down"
    );

    // Operations work again, and the calls refused during the outage had no effect.
    let out = credits
        .commit(commit_req(A, "r1", CREDIT))
        .await
        .expect("commit after restart")
        .into_inner();
    assert!(!out.replayed);
    assert_eq!(
        (out.charged_micros, out.released_micros),
        (CREDIT, 3 * CREDIT)
    );
    let rel = credits
        .release(release_req(A, "r3"))
        .await
        .expect("release")
        .into_inner();
    assert_eq!((rel.released_micros, rel.replayed), (2 * CREDIT, false));
    let replay = credits
        .commit(cap)
        .await
        .expect("capture replay")
        .into_inner();
    assert!(replay.replayed);
    assert_eq!(replay.charged_micros, 3 * CREDIT);
    let out = credits
        .reserve(reserve_req(A, "r4", CREDIT))
        .await
        .expect("reserve")
        .into_inner();
    assert_eq!(out.decision, Decision::Granted as i32);
    let b = credits
        .get_balance(get_balance())
        .await
        .unwrap()
        .into_inner();
    // 15 granted - 1 (r1) - 3 (r2 captured) - 4 (r2 still held) - 1 (r4 held).
    assert_eq!(b.available_micros, 6 * CREDIT);
    assert_eq!(b.held_micros, 5 * CREDIT);
    let (_, metrics) = server.http_get("/metrics").await.expect("GET /metrics");
    assert!(
        metrics.contains("creditd_store_errors_total"),
        "the outage is counted:\n{metrics}"
    );
}

#[tokio::test]
async fn the_redis_store_reports_an_unreachable_redis_as_unavailable() {
    let mut redis = RedisServer::start();
    let store = common::stores::redis_store(&redis.url()).await;
    store
        .create_account(common::requests::new_account(A))
        .await
        .expect("create_account");
    redis.kill();
    let err = store.get_balance(A).await.unwrap_err();
    assert!(
        matches!(err, creditd::error::Error::Unavailable(_)),
        "{err:?}"
    );
    assert_eq!(err.reason(), "STORE_UNAVAILABLE");
    assert!(store.ping().await.is_err());
    redis.restart();
    let b = eventually(WAIT, "the store after the restart", || {
        let s = store.clone();
        async move { s.get_balance(A).await.ok() }
    })
    .await;
    assert_eq!(b.account_id, A);
    assert_eq!(b.sequence, 1, "the account survived in the AOF");
}

#[tokio::test]
async fn sigterm_drains_and_exits_zero() {
    let redis = RedisServer::start();
    let mut server = CreditdServer::start(Some(&redis.url()), &[]).await;
    let mut admin = server.admin().await;
    admin
        .create_account(account_req(A, false, 0))
        .await
        .expect("create_account");
    server.sigterm();
    let status = server.wait_exit().await;
    assert_eq!(
        status.code(),
        Some(0),
        "exit status {status:?}\n{}",
        server.logs()
    );
}

#[tokio::test]
async fn sigterm_exits_zero_with_the_memory_store() {
    let mut server = CreditdServer::start(None, &[]).await;
    server.sigterm();
    let status = server.wait_exit().await;
    assert_eq!(
        status.code(),
        Some(0),
        "exit status {status:?}\n{}",
        server.logs()
    );
}
