//! Drift: Redis against the ledger, account by account.
//!
//! For each account known to either side, Redis's sequence number is compared with the last one
//! the ledger applied (with no gap), and at the same sequence number the balances are compared
//! grant by grant. Redis ahead of the ledger is lag (the reconciler has not booked it yet), not
//! drift; the check waits up to `settle` for lagging accounts to catch up.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use redis::aio::ConnectionManager;

use super::redis_state::{self, Totals};
use super::Ledger;
use crate::store::redis::AccountKeys;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Same sequence number, same balances.
    InSync,
    /// Redis is ahead: events the ledger has not booked yet.
    Lagging { redis_seq: i64, ledger_seq: i64 },
    /// Redis is behind the ledger (lost writes, e.g. a restore from an older state).
    Behind { redis_seq: i64, ledger_seq: i64 },
    /// The ledger has the account and Redis does not (evicted, flushed, a new Redis).
    MissingInRedis { ledger_seq: i64 },
    /// The ledger has a gap below its highest sequence number (an event not booked).
    LedgerGap { ledger_seq: i64, applied: i64 },
    /// Same sequence number, different balances.
    Mismatch { seq: i64, differences: Vec<String> },
    /// A rebuild is under way.
    Rebuilding,
}

impl Status {
    pub fn is_drift(&self) -> bool {
        matches!(
            self,
            Status::Behind { .. }
                | Status::MissingInRedis { .. }
                | Status::Mismatch { .. }
                | Status::LedgerGap { .. }
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::InSync => write!(f, "in sync"),
            Status::Lagging {
                redis_seq,
                ledger_seq,
            } => write!(
                f,
                "lagging: Redis at #{redis_seq}, ledger at #{ledger_seq} (not booked yet)"
            ),
            Status::Behind {
                redis_seq,
                ledger_seq,
            } => write!(
                f,
                "DRIFT: Redis at #{redis_seq} is behind the ledger at #{ledger_seq} (lost writes)"
            ),
            Status::MissingInRedis { ledger_seq } => {
                write!(f, "DRIFT: missing from Redis (ledger at #{ledger_seq})")
            }
            Status::LedgerGap {
                ledger_seq,
                applied,
            } => write!(
                f,
                "DRIFT: the ledger holds {applied} events up to #{ledger_seq} (a gap)"
            ),
            Status::Mismatch { seq, differences } => write!(
                f,
                "DRIFT: balances differ at #{seq}: {}",
                differences.join("; ")
            ),
            Status::Rebuilding => write!(f, "being rebuilt"),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub accounts: BTreeMap<String, Status>,
}

impl Report {
    pub fn drifting(&self) -> impl Iterator<Item = (&String, &Status)> {
        self.accounts.iter().filter(|(_, s)| s.is_drift())
    }
}

/// The ledger's side of an account, read in one snapshot.
#[derive(Debug, Clone, Default)]
pub struct LedgerAccount {
    pub max_seq: i64,
    pub applied: i64,
    pub balances: BTreeMap<(String, String), i64>,
}

/// Every account's head and balances, in one repeatable-read snapshot (or only `only`).
pub async fn ledger_accounts(
    ledger: &Ledger,
    only: Option<&[String]>,
) -> Result<BTreeMap<String, LedgerAccount>> {
    let mut client = ledger.client().await?;
    let tx = snapshot(&mut client).await?;
    let out = accounts_in(&tx, only).await?;
    tx.commit().await?;
    Ok(out)
}

/// A read-only, repeatable-read transaction: every query in it sees the same ledger.
pub async fn snapshot(
    client: &mut deadpool_postgres::Object,
) -> Result<deadpool_postgres::Transaction<'_>> {
    client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .context("starting a snapshot of the ledger")
}

/// The heads and balances of every account (or only `only`), inside `tx`.
pub async fn accounts_in(
    tx: &tokio_postgres::Transaction<'_>,
    only: Option<&[String]>,
) -> Result<BTreeMap<String, LedgerAccount>> {
    let filter: Option<Vec<String>> = only.map(|o| o.to_vec());
    let heads = tx
        .query(
            "SELECT account_id, max_seq, applied FROM ledger_heads \
             WHERE $1::text[] IS NULL OR account_id = ANY($1)",
            &[&filter],
        )
        .await
        .context("reading ledger heads")?;
    let mut out: BTreeMap<String, LedgerAccount> = heads
        .into_iter()
        .map(|r| {
            (
                r.get::<_, String>(0),
                LedgerAccount {
                    max_seq: r.get(1),
                    applied: r.get(2),
                    balances: BTreeMap::new(),
                },
            )
        })
        .collect();
    let rows = tx
        .query(
            "SELECT account_id, grant_id, bucket, balance_micros FROM ledger_balances \
             WHERE $1::text[] IS NULL OR account_id = ANY($1)",
            &[&filter],
        )
        .await
        .context("reading ledger balances")?;
    for r in rows {
        if let Some(a) = out.get_mut(&r.get::<_, String>(0)) {
            a.balances.insert((r.get(1), r.get(2)), r.get(3));
        }
    }
    Ok(out)
}

/// Every account id Redis holds (SCAN over the account records of every shard).
pub async fn redis_accounts(conn: &mut ConnectionManager) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg("creditd:{*}:a:*")
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .context("SCAN")?;
        for key in keys {
            // creditd:{N}:a:<account>; the account's other keys have one more ':' part.
            let parts: Vec<&str> = key.splitn(4, ':').collect();
            if parts.len() == 4 && !parts[3].contains(':') {
                out.insert(parts[3].to_string());
            }
        }
        if next == 0 {
            return Ok(out);
        }
        cursor = next;
    }
}

/// Compares one account.
pub fn compare(redis: &redis_state::RedisAccount, ledger: Option<&LedgerAccount>) -> Status {
    if redis.rebuilding {
        return Status::Rebuilding;
    }
    let Some(l) = ledger else {
        return if redis.exists {
            Status::Lagging {
                redis_seq: redis.seq,
                ledger_seq: 0,
            }
        } else {
            Status::InSync
        };
    };
    if l.applied != l.max_seq {
        return Status::LedgerGap {
            ledger_seq: l.max_seq,
            applied: l.applied,
        };
    }
    if !redis.exists {
        return Status::MissingInRedis {
            ledger_seq: l.max_seq,
        };
    }
    if redis.seq > l.max_seq {
        return Status::Lagging {
            redis_seq: redis.seq,
            ledger_seq: l.max_seq,
        };
    }
    if redis.seq < l.max_seq {
        return Status::Behind {
            redis_seq: redis.seq,
            ledger_seq: l.max_seq,
        };
    }
    let differences = differences(&redis.totals, &redis_state::from_ledger(&l.balances));
    if differences.is_empty() {
        Status::InSync
    } else {
        Status::Mismatch {
            seq: redis.seq,
            differences,
        }
    }
}

pub fn differences(redis: &Totals, ledger: &Totals) -> Vec<String> {
    let ids: BTreeSet<&String> = redis.keys().chain(ledger.keys()).collect();
    let mut out = Vec::new();
    for id in ids {
        let r = redis.get(id).copied().unwrap_or_default();
        let l = ledger.get(id).copied().unwrap_or_default();
        for (name, a, b) in [
            ("issued", r.issued, l.issued),
            ("available", r.available, l.available),
            ("held", r.held, l.held),
            ("spent", r.spent, l.spent),
            ("expired", r.expired, l.expired),
            ("voided", r.voided, l.voided),
        ] {
            if a != b {
                out.push(format!("{id} {name}: Redis {a}, ledger {b}"));
            }
        }
    }
    out
}

/// Checks every account (or only `only`). Lagging accounts are checked again until they catch up
/// or `settle` has passed.
pub async fn check_accounts(
    ledger: &Ledger,
    redis_url: &str,
    shards: u32,
    only: Option<&[String]>,
    settle: Duration,
) -> Result<Report> {
    let client = redis::Client::open(redis_url).context("invalid Redis URL")?;
    let mut conn = ConnectionManager::new(client)
        .await
        .context("connecting to Redis")?;
    let started = Instant::now();
    let mut todo: Option<Vec<String>> = only.map(|o| o.to_vec());
    let mut report = Report::default();
    loop {
        let ledger_side = ledger_accounts(ledger, todo.as_deref()).await?;
        let mut names: BTreeSet<String> = match &todo {
            Some(list) => list.iter().cloned().collect(),
            None => redis_accounts(&mut conn).await?,
        };
        names.extend(ledger_side.keys().cloned());
        for name in names {
            let redis = redis_state::read(&mut conn, &AccountKeys::new(&name, shards)).await?;
            let status = compare(&redis, ledger_side.get(&name));
            report.accounts.insert(name, status);
        }
        let lagging: Vec<String> = report
            .accounts
            .iter()
            .filter(|(_, s)| matches!(s, Status::Lagging { .. }))
            .map(|(a, _)| a.clone())
            .collect();
        if lagging.is_empty() || started.elapsed() >= settle {
            return Ok(report);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        todo = Some(lagging);
    }
}

/// The ledger's own invariants, each a query that must find nothing: every event's postings sum to
/// zero, every running balance is the sum of its postings, and every account's events are
/// 1..max_seq, each once. Returns what is wrong (empty: nothing). Scans the whole ledger.
pub async fn ledger_invariants(ledger: &Ledger) -> Result<Vec<String>> {
    let client = ledger.client().await?;
    let checks = [
        (
            "events whose postings do not sum to zero",
            "SELECT count(*) FROM (SELECT account_id, seq FROM ledger_entries \
             GROUP BY account_id, seq HAVING sum(amount_micros) <> 0) t",
        ),
        (
            "running balances that differ from the sum of their postings",
            "SELECT count(*) FROM ledger_balances b FULL JOIN \
             (SELECT account_id, grant_id, bucket, sum(amount_micros) AS s FROM ledger_entries \
              GROUP BY 1, 2, 3) e USING (account_id, grant_id, bucket) \
             WHERE coalesce(b.balance_micros, 0) <> coalesce(e.s, 0)",
        ),
        (
            "accounts whose head disagrees with their events",
            "SELECT count(*) FROM ledger_heads h LEFT JOIN \
             (SELECT account_id, count(*) AS n, max(seq) AS m FROM ledger_events GROUP BY 1) e \
             USING (account_id) WHERE h.applied <> coalesce(e.n, 0) OR h.max_seq <> coalesce(e.m, 0)",
        ),
    ];
    let mut out = Vec::new();
    for (what, sql) in checks {
        let n: i64 = client
            .query_one(sql, &[])
            .await
            .with_context(|| format!("checking {what}"))?
            .get(0);
        if n != 0 {
            out.push(format!("{n} {what}"));
        }
    }
    Ok(out)
}

/// Checks every account once, without waiting for lag (the reconciler's periodic gauge).
pub async fn check(ledger: &Ledger, redis_url: &str, shards: u32) -> Result<Report> {
    check_accounts(ledger, redis_url, shards, None, Duration::ZERO).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::redis_state::{GrantTotals, RedisAccount};

    fn redis_with(seq: i64, available: i64) -> RedisAccount {
        let mut totals = Totals::new();
        totals.insert(
            "g1".into(),
            GrantTotals {
                issued: 10,
                available,
                spent: 10 - available,
                ..GrantTotals::default()
            },
        );
        RedisAccount {
            exists: true,
            rebuilding: false,
            seq,
            totals,
        }
    }

    fn ledger_with(seq: i64, spent: i64) -> LedgerAccount {
        let mut balances = BTreeMap::new();
        balances.insert(("g1".into(), "issued".into()), -10);
        balances.insert(("g1".into(), "available".into()), 10 - spent);
        if spent > 0 {
            balances.insert(("g1".into(), "spent".into()), spent);
        }
        LedgerAccount {
            max_seq: seq,
            applied: seq,
            balances,
        }
    }

    #[test]
    fn statuses() {
        assert_eq!(
            compare(&redis_with(3, 7), Some(&ledger_with(3, 3))),
            Status::InSync
        );
        assert!(matches!(
            compare(&redis_with(4, 6), Some(&ledger_with(3, 3))),
            Status::Lagging { .. }
        ));
        let behind = compare(&redis_with(2, 8), Some(&ledger_with(3, 3)));
        assert!(matches!(behind, Status::Behind { .. }) && behind.is_drift());
        let mismatch = compare(&redis_with(3, 8), Some(&ledger_with(3, 3)));
        assert!(matches!(mismatch, Status::Mismatch { .. }) && mismatch.is_drift());
        assert!(compare(&RedisAccount::default(), Some(&ledger_with(3, 3))).is_drift());
        let mut gap = ledger_with(3, 3);
        gap.applied = 2;
        assert!(compare(&redis_with(3, 7), Some(&gap)).is_drift());
    }
}
