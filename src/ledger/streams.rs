//! The shard streams as the ledger sees them: the consumer group, where each stream stands (what
//! is pending, undelivered, safe to trim), and the stream ids' arithmetic.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use redis::aio::ConnectionManager;
use redis::streams::{StreamId, StreamPendingReply, StreamRangeReply};
use redis::Value;

use crate::store::redis::events_key;

/// The consumer group every reconciler replica joins.
pub const GROUP: &str = "creditd-ledger";

/// XAUTOCLAIM's reply: the cursor and the claimed entries (deleted ones are left out).
pub(super) fn parse_autoclaim(reply: Value) -> Result<(String, Vec<StreamId>)> {
    let Value::Array(mut parts) = reply else {
        anyhow::bail!("unexpected XAUTOCLAIM reply");
    };
    if parts.len() < 2 {
        anyhow::bail!("short XAUTOCLAIM reply");
    }
    let entries = parts.remove(1);
    let next: String = redis::from_redis_value(&parts[0]).context("XAUTOCLAIM cursor")?;
    let Value::Array(items) = entries else {
        anyhow::bail!("unexpected XAUTOCLAIM entries");
    };
    let items: Vec<Value> = items.into_iter().filter(|v| *v != Value::Nil).collect();
    let range: StreamRangeReply =
        redis::from_redis_value(&Value::Array(items)).context("XAUTOCLAIM entries")?;
    Ok((next, range.ids))
}

/// Creates the consumer group on every shard stream (from its first entry), once.
pub async fn ensure_groups(conn: &mut ConnectionManager, shards: u32) -> Result<()> {
    for shard in 0..shards {
        let r: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(events_key(shard))
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(conn)
            .await;
        match r {
            Ok(()) => {}
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            Err(e) => return Err(e).context("XGROUP CREATE"),
        }
    }
    Ok(())
}

/// Where a stream stands for the ledger.
#[derive(Debug, Clone, Default)]
pub struct StreamStatus {
    pub length: u64,
    pub pending: u64,
    pub undelivered: u64,
    pub oldest_age_seconds: f64,
    /// The id below which every entry is acknowledged (None: the group does not exist).
    pub keep_from: Option<String>,
}

/// Reads the group's last delivered id first, then its pending entries: an entry delivered in
/// between has a larger id than the one read first, so it is never below `keep_from`.
pub async fn stream_status(conn: &mut ConnectionManager, key: &str) -> Result<StreamStatus> {
    let length: u64 = redis::cmd("XLEN").arg(key).query_async(conn).await?;
    let groups: redis::RedisResult<redis::streams::StreamInfoGroupsReply> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(key)
        .query_async(conn)
        .await;
    let Some(group) = groups
        .ok()
        .and_then(|g| g.groups.into_iter().find(|g| g.name == GROUP))
    else {
        return Ok(StreamStatus {
            length,
            undelivered: length,
            ..StreamStatus::default()
        });
    };
    let pending: StreamPendingReply = redis::cmd("XPENDING")
        .arg(key)
        .arg(GROUP)
        .query_async(conn)
        .await
        .context("XPENDING")?;
    let after_delivered = next_id(&group.last_delivered_id);
    let (pending_count, oldest_pending) = match &pending {
        StreamPendingReply::Data(d) => (d.count as u64, Some(d.start_id.clone())),
        StreamPendingReply::Empty => (0, None),
    };
    let first_undelivered: StreamRangeReply = redis::cmd("XRANGE")
        .arg(key)
        .arg(&after_delivered)
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .query_async(conn)
        .await?;
    let undelivered = group
        .lag
        .map(|l| l as u64)
        .unwrap_or(first_undelivered.ids.len() as u64);
    let oldest = oldest_pending
        .iter()
        .chain(first_undelivered.ids.first().map(|e| &e.id))
        .filter_map(|id| id_millis(id))
        .min();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let keep_from = match oldest_pending {
        Some(p) if id_less(&p, &after_delivered) => p,
        _ => after_delivered,
    };
    Ok(StreamStatus {
        length,
        pending: pending_count,
        undelivered,
        oldest_age_seconds: oldest
            .map(|t| (now - t).max(0) as f64 / 1000.0)
            .unwrap_or(0.0),
        keep_from: Some(keep_from),
    })
}

/// The highest sequence number of `account_id`'s entries that the ledger may not hold yet: those
/// at or after the group's oldest unacknowledged or undelivered entry (the whole stream when the
/// group does not exist). None when there are none. Costs a read of the stream's unbooked tail.
pub async fn unbooked_seq(
    conn: &mut ConnectionManager,
    key: &str,
    account_id: &str,
) -> Result<Option<i64>> {
    let status = stream_status(conn, key).await?;
    let mut start = status.keep_from.unwrap_or_else(|| "-".to_string());
    let mut highest = None;
    loop {
        let reply: StreamRangeReply = redis::cmd("XRANGE")
            .arg(key)
            .arg(&start)
            .arg("+")
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .context("XRANGE")?;
        let Some(last) = reply.ids.last() else {
            return Ok(highest);
        };
        for id in &reply.ids {
            if id.get::<String>("account").as_deref() == Some(account_id) {
                let seq = id.get::<String>("seq").and_then(|s| s.parse::<i64>().ok());
                highest = highest.max(seq);
            }
        }
        start = next_id(&last.id);
    }
}

fn parse_id(id: &str) -> (u64, u64) {
    let (ms, n) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), n.parse().unwrap_or(0))
}

fn id_millis(id: &str) -> Option<i64> {
    Some(parse_id(id).0 as i64)
}

fn id_less(a: &str, b: &str) -> bool {
    parse_id(a) < parse_id(b)
}

/// The smallest stream id after `id`.
fn next_id(id: &str) -> String {
    let (ms, n) = parse_id(id);
    match n.checked_add(1) {
        Some(n) => format!("{ms}-{n}"),
        None => format!("{}-0", ms + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_order_and_follow() {
        assert_eq!(next_id("0-0"), "0-1");
        assert_eq!(next_id("1700000000000-5"), "1700000000000-6");
        assert_eq!(next_id(&format!("5-{}", u64::MAX)), "6-0");
        assert!(id_less("9-1", "10-0"));
        assert!(id_less("10-1", "10-2"));
        assert!(!id_less("10-2", "10-2"));
    }
}
