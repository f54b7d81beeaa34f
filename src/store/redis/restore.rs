//! Writing an account back into Redis from the ledger's records (see `src/ledger/rebuild.rs`),
//! and the mark that makes an account fail closed meanwhile.

use std::sync::LazyLock;

use redis::aio::ConnectionManager;
use redis::Script;

use super::keys::AccountKeys;
use super::stream::State;

static LOCK: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lock_account.lua")));
static UNLOCK: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("unlock_account.lua")));
static LOAD: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("load_account.lua")));

/// Marks the account as being rebuilt: its calls answer UNAVAILABLE until [`load`] or
/// [`unlock`]. Returns its sequence number in Redis, or None when Redis does not hold it.
pub async fn lock(
    conn: &mut ConnectionManager,
    keys: &AccountKeys,
    take_over: bool,
) -> redis::RedisResult<Option<i64>> {
    let seq: i64 = LOCK
        .key(&keys.account)
        .arg(if take_over { "1" } else { "0" })
        .invoke_async(conn)
        .await?;
    Ok((seq >= 0).then_some(seq))
}

/// Removes the rebuild mark, leaving the account as it was.
pub async fn unlock(conn: &mut ConnectionManager, keys: &AccountKeys) -> redis::RedisResult<()> {
    let _: i64 = UNLOCK.key(&keys.account).invoke_async(conn).await?;
    Ok(())
}

/// How [`load`] may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadMode {
    /// Replace the account, which must carry the rebuild mark.
    Locked,
    /// Only when Redis does not hold the account at all.
    Absent,
}

/// Writes the account's records in one atomic script. Returns false when the mode's condition
/// did not hold (nothing written).
pub async fn load(
    conn: &mut ConnectionManager,
    keys: &AccountKeys,
    account_id: &str,
    mode: LoadMode,
    records: &State,
) -> redis::RedisResult<bool> {
    let mut inv = LOAD.prepare_invoke();
    for k in keys.all() {
        inv.key(k);
    }
    inv.arg(account_id)
        .arg(match mode {
            LoadMode::Locked => "locked",
            LoadMode::Absent => "absent",
        })
        .arg(records.account.as_slice());
    for list in [
        &records.grants,
        &records.reservations,
        &records.usage,
        &records.policies,
    ] {
        inv.arg(list.len());
        for (key, value) in list {
            inv.arg(key.as_str()).arg(value.as_slice());
        }
    }
    let written: i64 = inv.invoke_async(conn).await?;
    Ok(written == 1)
}
