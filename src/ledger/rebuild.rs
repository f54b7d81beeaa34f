//! Rebuilding Redis from the ledger.
//!
//! The ledger keeps, besides the postings, the latest version of every record the account scripts
//! wrote (`ledger_records`), so an account can be written back exactly as Redis held it at the
//! ledger's last sequence number: settings, grants, holds with their allocations, idempotency
//! records, budget and frequency counters, policies. Before writing, the records are checked
//! against the double-entry balances (they must agree grant by grant).
//!
//! A rebuild marks the account first, so every call on it answers UNAVAILABLE (fails closed),
//! waits until the ledger has booked everything Redis had, then writes the records in one script.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use redis::aio::ConnectionManager;

use super::drift::{accounts_in, differences, ledger_accounts, snapshot, LedgerAccount};
use super::reconciler::unbooked_seq;
use super::redis_state::{account_of, from_ledger};
use super::Ledger;
use crate::store::redis::restore::{self, LoadMode};
use crate::store::redis::stream::State;
use crate::store::redis::AccountKeys;

#[derive(Debug, Clone)]
pub struct Options {
    /// How long to wait for the ledger to book what Redis holds beyond it.
    pub wait: Duration,
    /// Rebuild even if the ledger is still behind Redis after `wait` (what Redis holds beyond the
    /// ledger is then lost), and take over the mark of a rebuild that died.
    pub force: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            wait: Duration::from_secs(30),
            force: false,
        }
    }
}

/// The account's records at the ledger's sequence number, checked against its balances.
pub async fn records(ledger: &Ledger, account_id: &str) -> Result<Option<(i64, State)>> {
    let mut client = ledger.client().await?;
    let tx = snapshot(&mut client).await?;
    let rows = tx
        .query(
            "SELECT kind, key, seq, value FROM ledger_records WHERE account_id = $1 ORDER BY kind, key",
            &[&account_id],
        )
        .await
        .context("reading the account's records")?;
    let only = [account_id.to_string()];
    let head = accounts_in(&tx, Some(&only)).await?.remove(account_id);
    tx.commit().await?;
    let Some(LedgerAccount {
        max_seq,
        applied,
        balances,
    }) = head
    else {
        return Ok(None);
    };
    if applied != max_seq {
        bail!("the ledger has a gap for {account_id}: {applied} events up to #{max_seq}");
    }
    let mut state = State::default();
    let mut account_seq = 0;
    for r in rows {
        let kind: i8 = r.get(0);
        let key: String = r.get(1);
        let value: Vec<u8> = r.get(3);
        match kind as u8 {
            b'a' => {
                account_seq = r.get(2);
                state.account = value;
            }
            b'g' => state.grants.push((key, value)),
            b'r' => state.reservations.push((key, value)),
            b'u' => state.usage.push((key, value)),
            b'p' => state.policies.push((key, value)),
            other => bail!("unknown record kind {other} for {account_id}"),
        }
    }
    if state.account.is_empty() || account_seq != max_seq {
        bail!(
            "the ledger's records of {account_id} stop at #{account_seq}, its events at #{max_seq}"
        );
    }
    let from_records = account_of(&state.account, &state.grants)?;
    if from_records.seq != max_seq {
        bail!(
            "the account record of {account_id} says #{}, the ledger #{max_seq}",
            from_records.seq
        );
    }
    let diff = differences(&from_records.totals, &from_ledger(&balances));
    if !diff.is_empty() {
        bail!(
            "the records of {account_id} disagree with its postings: {}",
            diff.join("; ")
        );
    }
    Ok(Some((max_seq, state)))
}

/// Rebuilds one account from the ledger. Returns the sequence number it was rebuilt at.
pub async fn rebuild_account(
    ledger: &Ledger,
    conn: &mut ConnectionManager,
    shards: u32,
    account_id: &str,
    opts: &Options,
) -> Result<i64> {
    let keys = AccountKeys::new(account_id, shards);
    let redis_seq = restore::lock(conn, &keys, opts.force)
        .await
        .context("marking the account for the rebuild")?;
    let result = async {
        let deadline = Instant::now() + opts.wait;
        loop {
            let head = ledger_accounts(ledger, Some(&[account_id.to_string()])).await?;
            let Some(head) = head.get(account_id) else {
                bail!("the ledger has no account {account_id}");
            };
            // Redis's own number, or (when Redis lost the account) what its stream still holds.
            let unbooked = unbooked_seq(conn, &keys.events, account_id).await?;
            let caught_up = head.applied == head.max_seq
                && redis_seq.is_none_or(|s| head.max_seq >= s)
                && unbooked.is_none_or(|s| head.max_seq >= s);
            if caught_up {
                break;
            }
            if Instant::now() >= deadline {
                if opts.force && head.applied == head.max_seq {
                    tracing::warn!(
                        account = account_id,
                        "rebuilding at #{} although Redis was at #{:?}: the difference is lost",
                        head.max_seq,
                        redis_seq
                    );
                    break;
                }
                bail!(
                    "the ledger is at #{} ({} events) and Redis at #{:?}: run the reconciler, \
                     or rebuild with --force to drop what the ledger does not hold",
                    head.max_seq,
                    head.applied,
                    redis_seq
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let Some((seq, state)) = records(ledger, account_id).await? else {
            bail!("the ledger has no account {account_id}");
        };
        let written = restore::load(conn, &keys, account_id, LoadMode::Locked, &state)
            .await
            .context("writing the account into Redis")?;
        if !written {
            bail!("the rebuild mark of {account_id} disappeared during the rebuild");
        }
        Ok(seq)
    }
    .await;
    if result.is_err() {
        if let Err(e) = restore::unlock(conn, &keys).await {
            tracing::error!(
                account = account_id,
                "could not remove the rebuild mark: {e}"
            );
        }
    }
    result
}

/// Every account the ledger holds.
pub async fn ledger_account_ids(ledger: &Ledger) -> Result<Vec<String>> {
    let client = ledger.client().await?;
    let rows = client
        .query(
            "SELECT account_id FROM ledger_heads ORDER BY account_id",
            &[],
        )
        .await?;
    Ok(rows.into_iter().map(|r| r.get(0)).collect())
}

/// Writes an account that Redis does not hold from the ledger (first use after Redis lost it).
/// Returns false when the ledger does not have it either, or Redis got it meanwhile.
pub async fn load_if_absent(
    ledger: &Ledger,
    conn: &mut ConnectionManager,
    shards: u32,
    account_id: &str,
) -> Result<bool> {
    let Some((seq, state)) = records(ledger, account_id).await? else {
        return Ok(false);
    };
    let keys = AccountKeys::new(account_id, shards);
    // Events of the account still waiting in its stream: the ledger's state is older than what
    // Redis had, and loading it would lose them. Fail closed until the reconciler booked them.
    if let Some(pending) = unbooked_seq(conn, &keys.events, account_id).await? {
        if pending > seq {
            bail!(
                "the ledger holds {account_id} up to #{seq} and its stream up to #{pending}: \
                 waiting for the reconciler"
            );
        }
    }
    let written = restore::load(conn, &keys, account_id, LoadMode::Absent, &state).await?;
    if written {
        tracing::warn!(
            account = account_id,
            seq,
            "account missing from Redis: loaded from the ledger"
        );
    }
    Ok(written)
}

/// The Redis store's [`AccountLoader`]: accounts missing from Redis are loaded from the ledger on
/// first use. A ledger that cannot be reached makes the call fail closed (UNAVAILABLE): Redis
/// alone cannot tell a new account from a lost one.
pub struct LedgerLoader {
    pub ledger: Ledger,
    pub conn: ConnectionManager,
    pub shards: u32,
}

#[async_trait::async_trait]
impl crate::store::redis::AccountLoader for LedgerLoader {
    async fn load_missing(&self, account_id: &str) -> crate::error::Result<bool> {
        load_if_absent(
            &self.ledger,
            &mut self.conn.clone(),
            self.shards,
            account_id,
        )
        .await
        .map_err(|e| crate::error::Error::Unavailable(format!("cannot read the ledger: {e:#}")))
    }
}
