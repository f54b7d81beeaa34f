//! An account's money as Redis holds it, in the ledger's terms, so the two can be compared.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use redis::aio::ConnectionManager;
use rmpv::Value;

use crate::model::{DEBT_ID, OVERAGE_ID};
use crate::store::redis::AccountKeys;

/// What the ledger and Redis must agree on, per grant (and `@overage`, `@debt`): credits issued,
/// available, held, spent (including debt paid), expired and voided.
pub type Totals = BTreeMap<String, GrantTotals>;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GrantTotals {
    pub issued: i64,
    pub available: i64,
    pub held: i64,
    pub spent: i64,
    pub expired: i64,
    pub voided: i64,
}

/// An account as read from Redis (atomically).
#[derive(Debug, Clone, Default)]
pub struct RedisAccount {
    pub exists: bool,
    pub rebuilding: bool,
    pub seq: i64,
    pub totals: Totals,
}

/// Reads the account's record and grants (open and closed) in one MULTI, so no script runs in
/// between.
pub async fn read(conn: &mut ConnectionManager, keys: &AccountKeys) -> Result<RedisAccount> {
    type Grants = Vec<(String, Vec<u8>)>;
    type Raw = (Option<Vec<u8>>, Grants, Grants);
    let (raw, mut grants, closed): Raw = redis::pipe()
        .atomic()
        .get(&keys.account)
        .hgetall(&keys.grants)
        .hgetall(&keys.closed_grants)
        .query_async(conn)
        .await
        .context("reading the account from Redis")?;
    grants.extend(closed);
    match raw {
        Some(raw) => account_of(&raw, &grants),
        None => Ok(RedisAccount::default()),
    }
}

/// The figures of an account record and its grant records (as Redis or the ledger holds them).
pub fn account_of(raw: &[u8], grants: &[(String, Vec<u8>)]) -> Result<RedisAccount> {
    let account = decode(raw)?;
    let mut out = RedisAccount {
        exists: true,
        rebuilding: field(&account, "rebuilding").and_then(Value::as_bool) == Some(true),
        seq: int(&account, "seq"),
        totals: Totals::new(),
    };
    if out.rebuilding && field(&account, "seq").is_none() {
        out.exists = false;
        return Ok(out);
    }
    for (id, raw) in grants {
        let g = decode(raw)?;
        out.totals.insert(
            id.clone(),
            GrantTotals {
                issued: int(&g, "amount"),
                available: int(&g, "remaining"),
                held: int(&g, "held"),
                spent: int(&g, "spent"),
                expired: int(&g, "expired"),
                voided: int(&g, "voided"),
            },
        );
    }
    let overage_held = int(&account, "overage_held");
    let overage_total = int(&account, "overage_total");
    if overage_held != 0 || overage_total != 0 {
        out.totals.insert(
            OVERAGE_ID.to_string(),
            GrantTotals {
                held: overage_held,
                spent: overage_total,
                ..GrantTotals::default()
            },
        );
    }
    // The ledger books debt as @debt's `spent` less the grants' `debt_paid`: the outstanding debt.
    let debt = int(&account, "debt");
    if debt != 0 {
        out.totals.insert(
            DEBT_ID.to_string(),
            GrantTotals {
                spent: debt,
                ..GrantTotals::default()
            },
        );
    }
    out.totals.retain(|_, t| *t != GrantTotals::default());
    Ok(out)
}

/// The same figures from the ledger's balances ((grant, bucket) → balance).
pub fn from_ledger(balances: &BTreeMap<(String, String), i64>) -> Totals {
    let mut out = Totals::new();
    let mut debt_paid = 0;
    for ((grant, bucket), v) in balances {
        let t = out.entry(grant.clone()).or_default();
        match bucket.as_str() {
            "issued" => t.issued -= v,
            "available" => t.available += v,
            "held" => t.held += v,
            "spent" => t.spent += v,
            "debt_paid" => {
                t.spent += v;
                debt_paid += v;
            }
            "expired" => t.expired += v,
            "voided" => t.voided += v,
            _ => {} // overage room and debt: the other side of @overage's and @debt's moves
        }
    }
    if let Some(d) = out.get_mut(DEBT_ID) {
        d.spent -= debt_paid;
    } else if debt_paid != 0 {
        out.entry(DEBT_ID.to_string()).or_default().spent -= debt_paid;
    }
    out.retain(|_, t| *t != GrantTotals::default());
    out
}

pub fn decode(raw: &[u8]) -> Result<Value> {
    rmpv::decode::read_value(&mut &raw[..]).context("undecodable record")
}

pub fn field<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v.as_map()?
        .iter()
        .find(|(k, _)| k.as_str() == Some(name))
        .map(|(_, v)| v)
}

/// An integer field (Lua numbers may come back as floats when they are whole).
pub fn int(v: &Value, name: &str) -> i64 {
    match field(v, name) {
        Some(Value::Integer(i)) => i.as_i64().unwrap_or(0),
        Some(Value::F64(f)) => *f as i64,
        Some(Value::F32(f)) => *f as i64,
        _ => 0,
    }
}
