//! A table of bad inputs for every field of every RPC: each is refused with INVALID_ARGUMENT and
//! `ErrorInfo{domain "creditd", reason "INVALID_ARGUMENT"}` naming the field, and nothing
//! changed (the account's balance, its grants and its open hold are identical before and after).
//! The server runs against a real `redis-server`, so a bad input that slipped through would
//! leave a trace there.

mod common;

use common::creditd::CreditdServer;
use common::grpc::*;
use common::redis_server::RedisServer;
use common::CREDIT;
use creditd::proto::credit_admin_client::CreditAdminClient;
use creditd::proto::credits_client::CreditsClient;
use creditd::proto::{self, Decision, GrantKind};
use tonic::transport::Channel;
use tonic::{Code, Status};

const A: &str = "bad-1";
const MAX_TTL: i64 = 3_600;
const TWO_POW_53: i64 = 1 << 53;

enum Call {
    Quote(proto::QuoteRequest),
    Reserve(proto::ReserveRequest),
    Commit(proto::CommitRequest),
    Release(proto::ReleaseRequest),
    Extend(proto::ExtendRequest),
    GetReservation(proto::GetReservationRequest),
    GetBalance(proto::GetBalanceRequest),
    CreateAccount(proto::CreateAccountRequest),
    GetAccount(proto::GetAccountRequest),
    UpdateAccount(proto::UpdateAccountRequest),
    CreateGrant(proto::CreateGrantRequest),
    ListGrants(proto::ListGrantsRequest),
    VoidGrant(proto::VoidGrantRequest),
}

struct Clients {
    credits: CreditsClient<Channel>,
    admin: CreditAdminClient<Channel>,
}

impl Clients {
    /// Sends the call; Ok(()) when the server accepted it.
    async fn send(&mut self, call: Call) -> Result<(), Status> {
        let (c, a) = (&mut self.credits, &mut self.admin);
        match call {
            Call::Quote(r) => c.quote(r).await.map(drop),
            Call::Reserve(r) => c.reserve(r).await.map(drop),
            Call::Commit(r) => c.commit(r).await.map(drop),
            Call::Release(r) => c.release(r).await.map(drop),
            Call::Extend(r) => c.extend(r).await.map(drop),
            Call::GetReservation(r) => c.get_reservation(r).await.map(drop),
            Call::GetBalance(r) => c.get_balance(r).await.map(drop),
            Call::CreateAccount(r) => a.create_account(r).await.map(drop),
            Call::GetAccount(r) => a.get_account(r).await.map(drop),
            Call::UpdateAccount(r) => a.update_account(r).await.map(drop),
            Call::CreateGrant(r) => a.create_grant(r).await.map(drop),
            Call::ListGrants(r) => a.list_grants(r).await.map(drop),
            Call::VoidGrant(r) => a.void_grant(r).await.map(drop),
        }
    }

    /// Everything the bad calls could have changed.
    async fn snapshot(&mut self) -> (proto::Balance, Vec<proto::Grant>, proto::Reservation) {
        let b = self
            .credits
            .get_balance(proto::GetBalanceRequest {
                account_id: A.into(),
                subject_id: String::new(),
            })
            .await
            .expect("get_balance")
            .into_inner();
        let g = self
            .admin
            .list_grants(proto::ListGrantsRequest {
                account_id: A.into(),
            })
            .await
            .expect("list_grants")
            .into_inner()
            .grants;
        let r = self
            .credits
            .get_reservation(res_ref("r1"))
            .await
            .expect("get_reservation")
            .into_inner();
        (b, g, r)
    }
}

fn res_ref(id: &str) -> proto::GetReservationRequest {
    proto::GetReservationRequest {
        account_id: A.into(),
        reservation_id: id.into(),
    }
}

fn long_id() -> String {
    "a".repeat(129)
}

/// Ids that must be refused wherever an id goes.
fn bad_ids() -> Vec<(&'static str, String)> {
    vec![
        ("129 characters", long_id()),
        ("a space", "a b".into()),
        ("a hash tag", "{a}".into()),
        ("a colon", "a:b".into()),
        ("a slash", "a/b".into()),
        ("non-ASCII", "caf\u{e9}".into()),
        ("a newline", "a\nb".into()),
    ]
}

fn reserve() -> proto::ReserveRequest {
    reserve_req(A, "new-r", CREDIT)
}

fn commit() -> proto::CommitRequest {
    commit_req(A, "r1", CREDIT)
}

fn grant() -> proto::CreateGrantRequest {
    grant_req(A, "new-g", GrantKind::Promo, CREDIT)
}

fn labels(n: usize, key_len: usize, value_len: usize) -> std::collections::HashMap<String, String> {
    (0..n)
        .map(|i| {
            (
                format!("{i:0>width$}", width = key_len),
                "v".repeat(value_len),
            )
        })
        .collect()
}

fn ts(seconds: i64, nanos: i32) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos })
}

/// (what, the field that must be named, the call).
fn table() -> Vec<(String, &'static str, Call)> {
    let mut t: Vec<(String, &'static str, Call)> = Vec::new();
    let mut add =
        |what: &str, field: &'static str, call: Call| t.push((what.to_string(), field, call));

    // Ids, for every RPC and every id field.
    let mut ids: Vec<(&str, String)> = vec![("empty", String::new())];
    ids.extend(bad_ids());
    for (how, id) in &ids {
        let id = id.clone();
        let w = |rpc: &str, field: &str| format!("{rpc} {field} {how}");
        add(
            &w("Quote", "account_id"),
            "account_id",
            Call::Quote(proto::QuoteRequest {
                account_id: id.clone(),
                amount_micros: CREDIT,
                ..Default::default()
            }),
        );
        add(
            &w("Reserve", "account_id"),
            "account_id",
            Call::Reserve(proto::ReserveRequest {
                account_id: id.clone(),
                ..reserve()
            }),
        );
        add(
            &w("Reserve", "reservation_id"),
            "reservation_id",
            Call::Reserve(proto::ReserveRequest {
                reservation_id: id.clone(),
                ..reserve()
            }),
        );
        add(
            &w("Commit", "account_id"),
            "account_id",
            Call::Commit(proto::CommitRequest {
                account_id: id.clone(),
                ..commit()
            }),
        );
        add(
            &w("Commit", "reservation_id"),
            "reservation_id",
            Call::Commit(proto::CommitRequest {
                reservation_id: id.clone(),
                ..commit()
            }),
        );
        add(
            &w("Release", "account_id"),
            "account_id",
            Call::Release(release_req(&id, "r1")),
        );
        add(
            &w("Release", "reservation_id"),
            "reservation_id",
            Call::Release(release_req(A, &id)),
        );
        add(
            &w("Extend", "account_id"),
            "account_id",
            Call::Extend(proto::ExtendRequest {
                account_id: id.clone(),
                reservation_id: "r1".into(),
                ttl_seconds: 60,
            }),
        );
        add(
            &w("Extend", "reservation_id"),
            "reservation_id",
            Call::Extend(proto::ExtendRequest {
                account_id: A.into(),
                reservation_id: id.clone(),
                ttl_seconds: 60,
            }),
        );
        add(
            &w("GetReservation", "account_id"),
            "account_id",
            Call::GetReservation(proto::GetReservationRequest {
                account_id: id.clone(),
                reservation_id: "r1".into(),
            }),
        );
        add(
            &w("GetReservation", "reservation_id"),
            "reservation_id",
            Call::GetReservation(res_ref(&id)),
        );
        add(
            &w("GetBalance", "account_id"),
            "account_id",
            Call::GetBalance(proto::GetBalanceRequest {
                account_id: id.clone(),
                subject_id: String::new(),
            }),
        );
        add(
            &w("CreateAccount", "account_id"),
            "account_id",
            Call::CreateAccount(account_req(&id, false, 0)),
        );
        add(
            &w("GetAccount", "account_id"),
            "account_id",
            Call::GetAccount(proto::GetAccountRequest {
                account_id: id.clone(),
            }),
        );
        add(
            &w("UpdateAccount", "account_id"),
            "account_id",
            Call::UpdateAccount(proto::UpdateAccountRequest {
                account_id: id.clone(),
                suspended: Some(true),
                ..Default::default()
            }),
        );
        add(
            &w("CreateGrant", "account_id"),
            "account_id",
            Call::CreateGrant(proto::CreateGrantRequest {
                account_id: id.clone(),
                ..grant()
            }),
        );
        add(
            &w("CreateGrant", "grant_id"),
            "grant_id",
            Call::CreateGrant(proto::CreateGrantRequest {
                grant_id: id.clone(),
                ..grant()
            }),
        );
        add(
            &w("ListGrants", "account_id"),
            "account_id",
            Call::ListGrants(proto::ListGrantsRequest {
                account_id: id.clone(),
            }),
        );
        add(
            &w("VoidGrant", "account_id"),
            "account_id",
            Call::VoidGrant(proto::VoidGrantRequest {
                account_id: id.clone(),
                grant_id: "g1".into(),
            }),
        );
        add(
            &w("VoidGrant", "grant_id"),
            "grant_id",
            Call::VoidGrant(proto::VoidGrantRequest {
                account_id: A.into(),
                grant_id: id.clone(),
            }),
        );
    }
    // Optional ids may be empty, but not malformed.
    for (how, id) in bad_ids() {
        let w = |rpc: &str, field: &str| format!("{rpc} {field} {how}");
        add(
            &w("Reserve", "subject_id"),
            "subject_id",
            Call::Reserve(proto::ReserveRequest {
                subject_id: id.clone(),
                ..reserve()
            }),
        );
        add(
            &w("Quote", "subject_id"),
            "subject_id",
            Call::Quote(proto::QuoteRequest {
                account_id: A.into(),
                subject_id: id.clone(),
                amount_micros: CREDIT,
                ..Default::default()
            }),
        );
        add(
            &w("GetBalance", "subject_id"),
            "subject_id",
            Call::GetBalance(proto::GetBalanceRequest {
                account_id: A.into(),
                subject_id: id.clone(),
            }),
        );
        let mut keep = commit();
        keep.keep_open = true;
        keep.capture_id = id.clone();
        add(&w("Commit", "capture_id"), "capture_id", Call::Commit(keep));
        add(
            &w("CreateAccount", "parent_id"),
            "parent_id",
            Call::CreateAccount(proto::CreateAccountRequest {
                parent_id: id.clone(),
                ..account_req("new-acct", false, 0)
            }),
        );
        add(
            &w("CreateAccount", "plan_id"),
            "plan_id",
            Call::CreateAccount(proto::CreateAccountRequest {
                plan_id: id.clone(),
                ..account_req("new-acct", false, 0)
            }),
        );
        add(
            &w("UpdateAccount", "parent_id"),
            "parent_id",
            Call::UpdateAccount(proto::UpdateAccountRequest {
                account_id: A.into(),
                parent_id: Some(id.clone()),
                suspended: Some(true),
                ..Default::default()
            }),
        );
    }

    // Amounts: 1 <= x < 2^53 (a commit may charge 0).
    for (how, v) in [
        ("0", 0),
        ("negative", -1),
        ("2^53", TWO_POW_53),
        ("i64::MAX", i64::MAX),
        ("i64::MIN", i64::MIN),
    ] {
        let w = |rpc: &str| format!("{rpc} amount_micros {how}");
        add(
            &w("Reserve"),
            "amount_micros",
            Call::Reserve(proto::ReserveRequest {
                amount_micros: v,
                ..reserve()
            }),
        );
        add(
            &w("Quote"),
            "amount_micros",
            Call::Quote(proto::QuoteRequest {
                account_id: A.into(),
                amount_micros: v,
                ..Default::default()
            }),
        );
        add(
            &w("CreateGrant"),
            "amount_micros",
            Call::CreateGrant(proto::CreateGrantRequest {
                amount_micros: v,
                ..grant()
            }),
        );
        if v != 0 {
            add(
                &w("Commit"),
                "amount_micros",
                Call::Commit(proto::CommitRequest {
                    amount_micros: v,
                    ..commit()
                }),
            );
        }
    }
    for (how, v) in [("negative", -1), ("2^53", TWO_POW_53)] {
        add(
            &format!("Reserve min_amount_micros {how}"),
            "min_amount_micros",
            Call::Reserve(proto::ReserveRequest {
                min_amount_micros: v,
                ..reserve()
            }),
        );
        add(
            &format!("Commit cost_micros {how}"),
            "cost_micros",
            Call::Commit(proto::CommitRequest {
                cost_micros: v,
                ..commit()
            }),
        );
        add(
            &format!("CreateGrant unit_price_micros {how}"),
            "unit_price_micros",
            Call::CreateGrant(proto::CreateGrantRequest {
                unit_price_micros: v,
                ..grant()
            }),
        );
        add(
            &format!("CreateAccount overage.cap_micros {how}"),
            "cap_micros",
            Call::CreateAccount(account_req("new-acct", true, v)),
        );
        add(
            &format!("UpdateAccount overage_cap_micros {how}"),
            "overage_cap_micros",
            Call::UpdateAccount(proto::UpdateAccountRequest {
                account_id: A.into(),
                overage_cap_micros: Some(v),
                ..Default::default()
            }),
        );
    }
    add(
        "Reserve min_amount_micros above amount_micros",
        "min_amount_micros",
        Call::Reserve(proto::ReserveRequest {
            min_amount_micros: CREDIT + 1,
            ..reserve()
        }),
    );

    // TTLs within the configured bounds.
    for (how, v) in [
        ("over the max", MAX_TTL + 1),
        ("negative", -1),
        ("i64::MAX", i64::MAX),
    ] {
        add(
            &format!("Reserve ttl_seconds {how}"),
            "ttl_seconds",
            Call::Reserve(proto::ReserveRequest {
                ttl_seconds: v,
                ..reserve()
            }),
        );
        add(
            &format!("Extend ttl_seconds {how}"),
            "ttl_seconds",
            Call::Extend(proto::ExtendRequest {
                account_id: A.into(),
                reservation_id: "r1".into(),
                ttl_seconds: v,
            }),
        );
    }

    // Labels: at most 16, keys up to 64 characters, values up to 256.
    add(
        "Reserve 17 labels",
        "labels",
        Call::Reserve(proto::ReserveRequest {
            labels: labels(17, 4, 1),
            ..reserve()
        }),
    );
    add(
        "Reserve label key of 65 characters",
        "labels",
        Call::Reserve(proto::ReserveRequest {
            labels: labels(1, 65, 1),
            ..reserve()
        }),
    );
    add(
        "Reserve label value of 257 characters",
        "labels",
        Call::Reserve(proto::ReserveRequest {
            labels: labels(1, 4, 257),
            ..reserve()
        }),
    );

    // Partial captures need their idempotency key.
    add(
        "Commit keep_open without capture_id",
        "capture_id",
        Call::Commit(proto::CommitRequest {
            keep_open: true,
            ..commit()
        }),
    );
    add(
        "Commit unknown overrun",
        "overrun",
        Call::Commit(proto::CommitRequest {
            overrun: 9,
            ..commit()
        }),
    );

    // Grants: a known kind, sane times.
    add(
        "CreateGrant kind unspecified",
        "kind",
        Call::CreateGrant(proto::CreateGrantRequest { kind: 0, ..grant() }),
    );
    add(
        "CreateGrant unknown kind",
        "kind",
        Call::CreateGrant(proto::CreateGrantRequest {
            kind: 42,
            ..grant()
        }),
    );
    add(
        "CreateGrant effective_at bad nanos",
        "effective_at",
        Call::CreateGrant(proto::CreateGrantRequest {
            effective_at: ts(1_800_000_000, -1),
            ..grant()
        }),
    );
    add(
        "CreateGrant expires_at bad nanos",
        "expires_at",
        Call::CreateGrant(proto::CreateGrantRequest {
            expires_at: ts(1_800_000_000, 1_000_000_000),
            ..grant()
        }),
    );
    add(
        "CreateGrant expires_at before effective_at",
        "expires_at",
        Call::CreateGrant(proto::CreateGrantRequest {
            effective_at: ts(1_900_000_000, 0),
            expires_at: ts(1_800_000_000, 0),
            ..grant()
        }),
    );
    add(
        "CreateGrant expires_at in the past",
        "expires_at",
        Call::CreateGrant(proto::CreateGrantRequest {
            expires_at: ts(1_000_000_000, 0),
            ..grant()
        }),
    );
    add(
        "CreateAccount billing_anchor bad nanos",
        "billing_anchor",
        Call::CreateAccount(proto::CreateAccountRequest {
            billing_anchor: ts(1_800_000_000, -5),
            ..account_req("new-acct", false, 0)
        }),
    );
    t
}

async fn setup() -> (RedisServer, CreditdServer, Clients) {
    let redis = RedisServer::start();
    let max_ttl = MAX_TTL.to_string();
    let server = CreditdServer::start(
        Some(&redis.url()),
        &["--max-ttl-seconds", &max_ttl, "--default-ttl-seconds", "60"],
    )
    .await;
    let channel = server.channel().await;
    let mut clients = Clients {
        credits: CreditsClient::new(channel.clone()),
        admin: CreditAdminClient::new(channel),
    };
    clients
        .admin
        .create_account(account_req(A, true, 5 * CREDIT))
        .await
        .expect("create_account");
    clients
        .admin
        .create_grant(grant_req(A, "g1", GrantKind::Allowance, 10 * CREDIT))
        .await
        .expect("create_grant");
    let out = clients
        .credits
        .reserve(reserve_req(A, "r1", 2 * CREDIT))
        .await
        .expect("reserve")
        .into_inner();
    assert_eq!(out.decision, Decision::Granted as i32);
    (redis, server, clients)
}

#[tokio::test]
async fn every_bad_field_is_refused_and_changes_nothing() {
    let (_redis, _server, mut clients) = setup().await;
    let before = clients.snapshot().await;
    let table = table();
    assert!(table.len() > 200, "the table has {} rows", table.len());
    let mut failures = Vec::new();
    for (what, field, call) in table {
        match clients.send(call).await {
            Ok(()) => failures.push(format!("{what}: accepted")),
            Err(status) => {
                let reason = reason(&status);
                let text = field_text(&status);
                if status.code() != Code::InvalidArgument
                    || reason.as_deref() != Some("INVALID_ARGUMENT")
                    || !text.contains(field)
                {
                    failures.push(format!(
                        "{what}: {:?} reason {reason:?}, field {field:?} not named in {text:?}",
                        status.code()
                    ));
                }
            }
        }
        let after = clients.snapshot().await;
        assert_eq!(after, before, "{what} changed the account");
    }
    assert!(
        failures.is_empty(),
        "{} bad inputs were mishandled:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // No account was created by a refused CreateAccount.
    let err = clients
        .admin
        .get_account(proto::GetAccountRequest {
            account_id: "new-acct".into(),
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::NotFound, "ACCOUNT_NOT_FOUND");
}

#[tokio::test]
async fn a_request_over_64_kib_is_refused_and_changes_nothing() {
    let (_redis, _server, mut clients) = setup().await;
    let before = clients.snapshot().await;
    // 65 KiB in one label value: over the request limit, whatever the label rules.
    let mut req = reserve();
    req.labels = [("note".to_string(), "x".repeat(65 * 1024))].into();
    let status = clients.send(Call::Reserve(req)).await.unwrap_err();
    assert_status(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(clients.snapshot().await, before);
    // A request just under the limit is judged on its fields as usual.
    let mut req = reserve();
    req.subject_id = "s".repeat(60 * 1024);
    let status = clients.send(Call::Reserve(req)).await.unwrap_err();
    assert_status(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert!(field_text(&status).contains("subject_id"), "{status:?}");
    assert_eq!(clients.snapshot().await, before);
    // And the server still serves.
    let out = clients
        .credits
        .reserve(reserve())
        .await
        .expect("reserve")
        .into_inner();
    assert_eq!(out.decision, Decision::Granted as i32);
}
