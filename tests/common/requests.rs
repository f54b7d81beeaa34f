//! Builders for the store requests, with the defaults a scenario usually wants.

use std::collections::BTreeMap;

use creditd::error::Error;
use creditd::model::*;
use creditd::store::Store;

pub fn new_account(id: &str) -> CreateAccount {
    CreateAccount {
        actor: "test-admin".to_string(),
        account_id: id.to_string(),
        parent_id: String::new(),
        plan_id: "pro".to_string(),
        billing_anchor: None,
        overage_enabled: false,
        overage_cap: 0,
        suspended: false,
    }
}

pub fn new_grant(account: &str, id: &str, kind: GrantKind, amount: Micros) -> CreateGrant {
    CreateGrant {
        actor: "test-admin".to_string(),
        account_id: account.to_string(),
        grant_id: id.to_string(),
        kind,
        amount,
        priority: None,
        effective_at: None,
        expires_at: None,
        unit_price: 0,
    }
}

pub fn new_reserve(account: &str, id: &str, amount: Micros) -> Reserve {
    Reserve {
        lines: Vec::new(),
        card_version: String::new(),
        account_id: account.to_string(),
        reservation_id: id.to_string(),
        subject_id: "user-1".to_string(),
        amount,
        min_amount: 0,
        ttl_seconds: 60,
        labels: BTreeMap::from([("feature".to_string(), "grid".to_string())]),
    }
}

/// A final commit with `OVERRUN_CHARGE`.
pub fn new_commit(account: &str, id: &str, amount: Micros) -> Commit {
    Commit {
        lines: Vec::new(),
        account_id: account.to_string(),
        reservation_id: id.to_string(),
        amount,
        capture_id: None,
        overrun: Overrun::Charge,
        cost: 0,
    }
}

/// A partial capture that keeps the hold open.
pub fn new_capture(account: &str, id: &str, capture: &str, amount: Micros) -> Commit {
    Commit {
        capture_id: Some(capture.to_string()),
        ..new_commit(account, id, amount)
    }
}

pub fn new_extend(account: &str, id: &str, ttl_seconds: i64) -> Extend {
    Extend {
        account_id: account.to_string(),
        reservation_id: id.to_string(),
        ttl_seconds,
    }
}

/// An error reduced to what every store must agree on: the reason, and the field of an
/// invalid argument. Messages may be worded differently by the Lua scripts.
pub fn error_key(e: &Error) -> (String, String) {
    let field = match e {
        Error::InvalidArgument { field, .. } => field.clone(),
        _ => String::new(),
    };
    (e.reason().to_string(), field)
}

/// Panics unless the account's books balance: every grant's amount is exactly its remaining,
/// held, spent, expired and voided credits, and the balance's holds are the grants' holds plus
/// the overage holds.
pub async fn assert_conserved(s: &dyn Store, account: &str) {
    let grants = s.list_grants(account).await.expect("list_grants");
    for g in &grants {
        assert_eq!(
            g.amount,
            g.remaining + g.held + g.spent + g.expired + g.voided,
            "grant {} does not add up: {g:?}",
            g.grant_id
        );
        assert!(
            g.remaining >= 0 && g.held >= 0 && g.spent >= 0 && g.expired >= 0 && g.voided >= 0,
            "grant {} has a negative bucket: {g:?}",
            g.grant_id
        );
    }
    let b = s.get_balance(account).await.expect("get_balance");
    let grant_holds: Micros = grants.iter().map(|g| g.held).sum();
    assert_eq!(b.held, grant_holds + b.overage_held, "holds do not add up");
    assert!(b.debt >= 0 && b.overage_used >= 0 && b.overage_held >= 0);
}
