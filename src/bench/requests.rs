//! The store requests the benches make straight on Redis (`RedisStore`): a plain account, a
//! prepaid grant, a hold, a final commit. One place, so every bench measures the same calls.

use crate::model::{Commit, CreateAccount, CreateGrant, GrantKind, Overrun, Reserve};

const ACTOR: &str = "bench";

/// An account with no plan, no overage, not suspended.
pub fn account(account_id: &str) -> CreateAccount {
    CreateAccount {
        actor: ACTOR.into(),
        account_id: account_id.to_string(),
        parent_id: String::new(),
        plan_id: String::new(),
        billing_anchor: None,
        overage_enabled: false,
        overage_cap: 0,
        suspended: false,
    }
}

/// A prepaid grant with no expiry, at the default priority.
pub fn prepaid(account_id: &str, grant_id: &str, amount: i64, unit_price: i64) -> CreateGrant {
    CreateGrant {
        actor: ACTOR.into(),
        account_id: account_id.to_string(),
        grant_id: grant_id.to_string(),
        kind: GrantKind::Prepaid,
        amount,
        priority: None,
        effective_at: None,
        expires_at: None,
        unit_price,
    }
}

/// A hold of `amount` for `ttl_seconds`, all or nothing, without items.
pub fn reserve(
    account_id: &str,
    reservation_id: &str,
    subject_id: &str,
    amount: i64,
    ttl_seconds: i64,
) -> Reserve {
    Reserve {
        lines: Vec::new(),
        card_version: String::new(),
        account_id: account_id.to_string(),
        reservation_id: reservation_id.to_string(),
        subject_id: subject_id.to_string(),
        amount,
        min_amount: 0,
        ttl_seconds,
        labels: Default::default(),
    }
}

/// A final commit of `amount` (overruns charged), without items or provider cost.
pub fn commit(account_id: &str, reservation_id: &str, amount: i64) -> Commit {
    Commit {
        lines: Vec::new(),
        account_id: account_id.to_string(),
        reservation_id: reservation_id.to_string(),
        amount,
        capture_id: None,
        overrun: Overrun::Charge,
        cost: 0,
    }
}
