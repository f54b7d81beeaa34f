//! Helpers for gRPC answers: the `google.rpc.ErrorInfo` of a status, and timestamps.

use tonic::{Code, Status};
use tonic_types::StatusExt;

/// The `ErrorInfo.reason` of a status, checking that its domain is `creditd`.
pub fn reason(status: &Status) -> Option<String> {
    let details = status.get_error_details();
    let info = details.error_info()?;
    assert_eq!(info.domain, "creditd", "ErrorInfo domain of {status:?}");
    Some(info.reason.clone())
}

/// Panics unless `status` has this code and this `ErrorInfo` reason.
pub fn assert_status(status: &Status, code: Code, expected_reason: &str) {
    assert_eq!(status.code(), code, "code of {status:?}");
    assert_eq!(
        reason(status).as_deref(),
        Some(expected_reason),
        "ErrorInfo reason of {status:?}"
    );
}

/// Everything a status says about which field was wrong: the message, the ErrorInfo metadata
/// values and the BadRequest field violations, joined.
pub fn field_text(status: &Status) -> String {
    let details = status.get_error_details();
    let mut text = status.message().to_string();
    if let Some(info) = details.error_info() {
        for (k, v) in &info.metadata {
            text.push_str(&format!(" {k}={v}"));
        }
    }
    if let Some(bad) = details.bad_request() {
        for v in &bad.field_violations {
            text.push_str(&format!(" {}: {}", v.field, v.description));
        }
    }
    text
}

pub fn ts(millis: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: millis.div_euclid(1000),
        nanos: (millis.rem_euclid(1000) * 1_000_000) as i32,
    }
}

pub fn millis(ts: &prost_types::Timestamp) -> i64 {
    ts.seconds * 1000 + i64::from(ts.nanos) / 1_000_000
}

// ---- request builders -----------------------------------------------------------------------

use creditd::proto;

pub fn account_req(id: &str, overage: bool, cap: i64) -> proto::CreateAccountRequest {
    proto::CreateAccountRequest {
        account_id: id.to_string(),
        plan_id: "pro".to_string(),
        overage: Some(proto::Overage {
            enabled: overage,
            cap_micros: cap,
        }),
        ..Default::default()
    }
}

pub fn grant_req(
    account: &str,
    id: &str,
    kind: proto::GrantKind,
    amount: i64,
) -> proto::CreateGrantRequest {
    proto::CreateGrantRequest {
        account_id: account.to_string(),
        grant_id: id.to_string(),
        kind: kind as i32,
        amount_micros: amount,
        ..Default::default()
    }
}

pub fn reserve_req(account: &str, id: &str, amount: i64) -> proto::ReserveRequest {
    proto::ReserveRequest {
        account_id: account.to_string(),
        reservation_id: id.to_string(),
        subject_id: "user-1".to_string(),
        amount_micros: amount,
        ttl_seconds: 120,
        labels: [("feature".to_string(), "grid".to_string())].into(),
        ..Default::default()
    }
}

pub fn commit_req(account: &str, id: &str, amount: i64) -> proto::CommitRequest {
    proto::CommitRequest {
        account_id: account.to_string(),
        reservation_id: id.to_string(),
        amount_micros: amount,
        ..Default::default()
    }
}

pub fn release_req(account: &str, id: &str) -> proto::ReleaseRequest {
    proto::ReleaseRequest {
        account_id: account.to_string(),
        reservation_id: id.to_string(),
    }
}
