//! Events: every change to an account, in order, with what the ledger needs to book it.
//!
//! Each event carries the account's sequence number and a list of moves. A move is a transfer
//! of `amount` micro-credits of one grant (or of `@overage` / `@debt`) from one bucket to another,
//! so a double-entry ledger can book it directly. Buckets:
//! `issued` (outside the account), `available`, `held`, `spent`, `expired`, `voided`,
//! `overage` (the pay-as-you-go room), `debt` (credits owed) and `debt_paid`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::policy::SubjectPolicy;
use super::types::{Account, Grant, Micros, Millis};

/// What an admin change touched, before or after it: for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audit {
    Account(Account),
    Grant(Grant),
    Policy(SubjectPolicy),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    pub grant_id: String,
    pub from: String,
    pub to: String,
    pub amount: Micros,
}

/// One priced item of a commit: what its units cost at the hold's prices, after free units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemCharge {
    pub sku: String,
    pub quantity: i64,
    pub amount: Micros,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub account_id: String,
    pub seq: i64,
    /// `account_created`, `account_updated`, `grant_created`, `grant_expired`, `grant_voided`,
    /// `period_started`, `reserved`, `captured`, `committed`, `released`, `hold_expired`, `extended`.
    pub kind: String,
    pub at: Millis,
    #[serde(default)]
    pub reservation_id: String,
    #[serde(default)]
    pub subject_id: String,
    #[serde(default, with = "super::types::pairs")]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub moves: Vec<Move>,
    /// Provider cost of a commit (money micros), for P&L.
    #[serde(default)]
    pub cost: Micros,
    /// The capture id of a partial capture, the grant id of a grant event.
    #[serde(default)]
    pub detail: String,
    /// Who made an admin change: the token's name ("" for creditd itself, e.g. a plan allowance).
    #[serde(default)]
    pub actor: String,
    #[serde(default)]
    pub before: Option<Audit>,
    #[serde(default)]
    pub after: Option<Audit>,
    /// The priced items of a commit or capture made with items (what each line cost).
    #[serde(default)]
    pub items: Vec<ItemCharge>,
}

impl Event {
    pub fn new(account_id: &str, seq: i64, kind: &str, at: Millis) -> Self {
        Event {
            account_id: account_id.to_string(),
            seq,
            kind: kind.to_string(),
            at,
            reservation_id: String::new(),
            subject_id: String::new(),
            labels: BTreeMap::new(),
            moves: Vec::new(),
            cost: 0,
            detail: String::new(),
            actor: String::new(),
            before: None,
            after: None,
            items: Vec::new(),
        }
    }

    pub fn push(&mut self, grant_id: &str, from: &str, to: &str, amount: Micros) {
        if amount > 0 {
            self.moves.push(Move {
                grant_id: grant_id.to_string(),
                from: from.to_string(),
                to: to.to_string(),
                amount,
            });
        }
    }
}
