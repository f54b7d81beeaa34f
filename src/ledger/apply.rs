//! One batch of stream entries in one Postgres transaction.
//!
//! Each entry is a unit: all of its events are booked, or none. An entry whose events the ledger
//! already holds with the same content is a second delivery and is only acknowledged. An entry
//! whose sequence numbers the ledger holds with different content is a different history (Redis
//! rolled back behind the ledger): it goes to the dead letters and its account drifts. An entry
//! that cannot be decoded stays pending until it has been delivered `max_deliveries` times, then
//! goes to the dead letters too. The caller acknowledges what [`Outcome::ack`] lists, and only
//! after this function returned (so after the commit).

use std::collections::{HashMap, HashSet};

use anyhow::{bail, Context, Result};
use tokio_postgres::Transaction;

use super::book::{digest, Booking};
use super::Ledger;
use crate::model::Event;
use crate::store::redis::stream::{Entry, State};

/// A stream entry as the consumer group delivered it.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// The stream's key.
    pub stream: String,
    pub id: String,
    /// How many times the group has delivered it (1 on first delivery).
    pub deliveries: u64,
    pub entry: std::result::Result<Entry, String>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// (stream, entry id) to acknowledge.
    pub ack: Vec<(String, String)>,
    pub entries_applied: u64,
    pub events_applied: u64,
    pub duplicates: u64,
    pub dead_letters: u64,
    /// Accounts whose stream history differs from the ledger's.
    pub conflicts: Vec<String>,
    /// Entries left pending (undecodable, not yet delivered `max_deliveries` times).
    pub left_pending: u64,
}

struct Decoded<'a> {
    d: &'a Delivered,
    events: Vec<Event>,
    state: State,
}

enum Verdict {
    New,
    Duplicate,
    Conflict(String),
}

pub async fn apply(ledger: &Ledger, batch: &[Delivered], max_deliveries: u64) -> Result<Outcome> {
    let mut out = Outcome::default();
    let mut decoded = Vec::new();
    let mut poison = Vec::new();
    let mut seen = HashSet::new();
    for d in batch {
        if !seen.insert((&d.stream, &d.id)) {
            continue;
        }
        let parsed = d.entry.as_ref().map_err(Clone::clone).and_then(|e| {
            let events = e.events().map_err(|e| e.to_string())?;
            let state = e.state().map_err(|e| e.to_string())?;
            if events.iter().any(|ev| ev.account_id != e.account_id) || events.is_empty() {
                return Err(format!("entry {} mixes accounts or has no events", e.id));
            }
            Ok((events, state))
        });
        match parsed {
            Ok((events, state)) => decoded.push(Decoded { d, events, state }),
            Err(reason) => poison.push((d, reason)),
        }
    }

    let mut client = ledger.client().await?;

    // Fast path: every entry is new (the rule; a second delivery follows only a crash). The
    // events' insert says whether that held; if not, start over and look first.
    let tx = client.transaction().await.context("BEGIN")?;
    let mut booking = Booking::default();
    for item in &decoded {
        booking.add(
            &item.events,
            &item.state,
            &format!("{}:{}", item.d.stream, item.d.id),
        );
    }
    if insert_events(&tx, &booking).await? == booking.events.len() as u64 {
        for item in &decoded {
            out.entries_applied += 1;
            out.events_applied += item.events.len() as u64;
            out.ack.push((item.d.stream.clone(), item.d.id.clone()));
        }
        let dead = dead_poison(poison, max_deliveries, &mut out);
        write_rest(&tx, &booking).await?;
        write_dead_letters(&tx, &dead, &mut out).await?;
        tx.commit().await.context("COMMIT")?;
        return Ok(out);
    }
    tx.rollback().await.context("ROLLBACK")?;

    let tx = client.transaction().await.context("BEGIN")?;
    let existing = existing_digests(&tx, &decoded).await?;

    let mut booking = Booking::default();
    let mut booked: HashMap<(String, i64), Vec<u8>> = HashMap::new();
    let mut dead: Vec<(&Delivered, String)> = Vec::new();
    for item in &decoded {
        let mut verdict = None;
        for ev in &item.events {
            let key = (ev.account_id.clone(), ev.seq);
            let body = digest(ev);
            let this = match existing.get(&key).or_else(|| booked.get(&key)) {
                None => Verdict::New,
                Some(b) if *b == body => Verdict::Duplicate,
                Some(_) => Verdict::Conflict(format!(
                    "sequence conflict: the ledger holds a different event {} #{} \
                     (Redis is behind the ledger; rebuild the account)",
                    ev.account_id, ev.seq
                )),
            };
            verdict = Some(match (verdict, this) {
                (None, v) => v,
                (Some(Verdict::Conflict(r)), _) | (_, Verdict::Conflict(r)) => Verdict::Conflict(r),
                (Some(Verdict::New), Verdict::New) => Verdict::New,
                (Some(Verdict::Duplicate), Verdict::Duplicate) => Verdict::Duplicate,
                _ => Verdict::Conflict(format!(
                    "entry {} is partly in the ledger already",
                    item.d.id
                )),
            });
        }
        match verdict.expect("entries have events") {
            Verdict::New => {
                for ev in &item.events {
                    booked.insert((ev.account_id.clone(), ev.seq), digest(ev));
                }
                booking.add(
                    &item.events,
                    &item.state,
                    &format!("{}:{}", item.d.stream, item.d.id),
                );
                out.entries_applied += 1;
                out.events_applied += item.events.len() as u64;
                out.ack.push((item.d.stream.clone(), item.d.id.clone()));
            }
            Verdict::Duplicate => {
                out.duplicates += 1;
                out.ack.push((item.d.stream.clone(), item.d.id.clone()));
            }
            Verdict::Conflict(reason) => {
                out.conflicts.push(item.events[0].account_id.clone());
                dead.push((item.d, reason));
            }
        }
    }
    dead.extend(dead_poison(poison, max_deliveries, &mut out));

    if insert_events(&tx, &booking).await? != booking.events.len() as u64 {
        // Another replica booked some of these events since we looked: roll back and let the
        // retry see them as second deliveries (never book a balance twice).
        bail!(RaceLost);
    }
    write_rest(&tx, &booking).await?;
    write_dead_letters(&tx, &dead, &mut out).await?;
    tx.commit().await.context("COMMIT")?;
    Ok(out)
}

/// Undecodable entries: dead letters once delivered `max_deliveries` times, else left pending.
fn dead_poison<'a>(
    poison: Vec<(&'a Delivered, String)>,
    max_deliveries: u64,
    out: &mut Outcome,
) -> Vec<(&'a Delivered, String)> {
    let mut dead = Vec::new();
    for (d, reason) in poison {
        if d.deliveries >= max_deliveries {
            dead.push((d, format!("undecodable: {reason}")));
        } else {
            tracing::warn!(stream = %d.stream, id = %d.id, deliveries = d.deliveries, "entry not applied: {reason}");
            out.left_pending += 1;
        }
    }
    dead
}

async fn write_dead_letters(
    tx: &Transaction<'_>,
    dead: &[(&Delivered, String)],
    out: &mut Outcome,
) -> Result<()> {
    for (d, reason) in dead {
        write_dead_letter(tx, d, reason).await?;
        out.dead_letters += 1;
        out.ack.push((d.stream.clone(), d.id.clone()));
    }
    Ok(())
}

/// The stored digests of the batch's events that the ledger already holds.
async fn existing_digests(
    tx: &Transaction<'_>,
    decoded: &[Decoded<'_>],
) -> Result<HashMap<(String, i64), Vec<u8>>> {
    let (accounts, seqs): (Vec<String>, Vec<i64>) = decoded
        .iter()
        .flat_map(|d| d.events.iter().map(|e| (e.account_id.clone(), e.seq)))
        .unzip();
    if accounts.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = tx
        .query(
            "SELECT e.account_id, e.seq, e.digest FROM ledger_events e \
             JOIN unnest($1::text[], $2::int8[]) AS t(a, s) ON e.account_id = t.a AND e.seq = t.s",
            &[&accounts, &seqs],
        )
        .await
        .context("reading the events already booked")?;
    Ok(rows
        .into_iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect())
}

/// Inserts the events; returns how many were new (fewer than given: some were booked already).
async fn insert_events(tx: &Transaction<'_>, b: &Booking) -> Result<u64> {
    if b.events.is_empty() {
        return Ok(0);
    }
    let ev = &b.events;
    tx.execute(
        "INSERT INTO ledger_events (account_id, seq, kind, at, reservation_id, subject_id, \
             labels, detail, actor, cost_micros, before, after, digest, stream_entry) \
             SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::timestamptz[], \
             $5::text[], $6::text[], $7::jsonb[], $8::text[], $9::text[], $10::int8[], \
             $11::jsonb[], $12::jsonb[], $13::bytea[], $14::text[]) \
             ON CONFLICT DO NOTHING",
        &[
            &ev.iter().map(|e| e.account_id.as_str()).collect::<Vec<_>>(),
            &ev.iter().map(|e| e.seq).collect::<Vec<_>>(),
            &ev.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
            &ev.iter().map(|e| e.at).collect::<Vec<_>>(),
            &ev.iter()
                .map(|e| e.reservation_id.as_str())
                .collect::<Vec<_>>(),
            &ev.iter().map(|e| e.subject_id.as_str()).collect::<Vec<_>>(),
            &ev.iter().map(|e| e.labels.clone()).collect::<Vec<_>>(),
            &ev.iter().map(|e| e.detail.as_str()).collect::<Vec<_>>(),
            &ev.iter().map(|e| e.actor.as_str()).collect::<Vec<_>>(),
            &ev.iter().map(|e| e.cost).collect::<Vec<_>>(),
            &ev.iter().map(|e| e.before.clone()).collect::<Vec<_>>(),
            &ev.iter().map(|e| e.after.clone()).collect::<Vec<_>>(),
            &ev.iter().map(|e| e.digest.as_slice()).collect::<Vec<_>>(),
            &ev.iter()
                .map(|e| e.stream_entry.as_str())
                .collect::<Vec<_>>(),
        ],
    )
    .await
    .context("inserting events")
}

/// Everything but the events: postings, charges by SKU, grants, heads, balances, records.
async fn write_rest(tx: &Transaction<'_>, b: &Booking) -> Result<()> {
    if b.events.is_empty() {
        return Ok(());
    }
    let p = &b.postings;
    tx.execute(
        "INSERT INTO ledger_entries (account_id, seq, n, grant_id, bucket, amount_micros) \
         SELECT * FROM unnest($1::text[], $2::int8[], $3::int4[], $4::text[], $5::text[], $6::int8[])",
        &[
            &p.iter().map(|x| x.account_id.as_str()).collect::<Vec<_>>(),
            &p.iter().map(|x| x.seq).collect::<Vec<_>>(),
            &p.iter().map(|x| x.n).collect::<Vec<_>>(),
            &p.iter().map(|x| x.grant_id.as_str()).collect::<Vec<_>>(),
            &p.iter().map(|x| x.bucket.as_str()).collect::<Vec<_>>(),
            &p.iter().map(|x| x.amount).collect::<Vec<_>>(),
        ],
    )
    .await
    .context("inserting postings")?;

    let it = &b.items;
    if !it.is_empty() {
        tx.execute(
            "INSERT INTO ledger_item_charges (account_id, seq, n, sku, quantity, amount_micros) \
             SELECT * FROM unnest($1::text[], $2::int8[], $3::int4[], $4::text[], $5::int8[], $6::int8[])",
            &[
                &it.iter().map(|x| x.account_id.as_str()).collect::<Vec<_>>(),
                &it.iter().map(|x| x.seq).collect::<Vec<_>>(),
                &it.iter().map(|x| x.n).collect::<Vec<_>>(),
                &it.iter().map(|x| x.sku.as_str()).collect::<Vec<_>>(),
                &it.iter().map(|x| x.quantity).collect::<Vec<_>>(),
                &it.iter().map(|x| x.amount).collect::<Vec<_>>(),
            ],
        )
        .await
        .context("inserting charges by SKU")?;
    }

    let g = &b.grants;
    if !g.is_empty() {
        tx.execute(
            "INSERT INTO ledger_grants (account_id, grant_id, kind, amount_micros, \
             unit_price_micros, created_at, expires_at) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], \
             $6::timestamptz[], $7::timestamptz[]) ON CONFLICT DO NOTHING",
            &[
                &g.iter().map(|x| x.account_id.as_str()).collect::<Vec<_>>(),
                &g.iter().map(|x| x.grant_id.as_str()).collect::<Vec<_>>(),
                &g.iter().map(|x| x.kind.as_str()).collect::<Vec<_>>(),
                &g.iter().map(|x| x.amount).collect::<Vec<_>>(),
                &g.iter().map(|x| x.unit_price).collect::<Vec<_>>(),
                &g.iter().map(|x| x.created_at).collect::<Vec<_>>(),
                &g.iter().map(|x| x.expires_at).collect::<Vec<_>>(),
            ],
        )
        .await
        .context("inserting grants")?;
    }

    let heads: Vec<_> = b.heads.iter().collect();
    tx.execute(
        "INSERT INTO ledger_heads (account_id, max_seq, applied, parent_id, parent_seq) \
         SELECT a, m, c, COALESCE(p, ''), COALESCE(ps, 0) \
         FROM unnest($1::text[], $2::int8[], $3::int8[], $4::text[], $5::int8[]) AS t(a, m, c, p, ps) \
         ON CONFLICT (account_id) DO UPDATE SET \
           max_seq = GREATEST(ledger_heads.max_seq, excluded.max_seq), \
           applied = ledger_heads.applied + excluded.applied, \
           parent_id = CASE WHEN excluded.parent_seq > ledger_heads.parent_seq \
                            THEN excluded.parent_id ELSE ledger_heads.parent_id END, \
           parent_seq = GREATEST(ledger_heads.parent_seq, excluded.parent_seq), \
           updated_at = now()",
        &[
            &heads.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(),
            &heads.iter().map(|(_, h)| h.max_seq).collect::<Vec<_>>(),
            &heads.iter().map(|(_, h)| h.applied).collect::<Vec<_>>(),
            &heads
                .iter()
                .map(|(_, h)| h.parent.as_ref().map(|(p, _)| p.as_str()))
                .collect::<Vec<_>>(),
            &heads
                .iter()
                .map(|(_, h)| h.parent.as_ref().map(|(_, s)| *s))
                .collect::<Vec<_>>(),
        ],
    )
    .await
    .context("updating account heads")?;

    let bal: Vec<_> = b.balances.iter().filter(|(_, v)| **v != 0).collect();
    if !bal.is_empty() {
        tx.execute(
            "INSERT INTO ledger_balances (account_id, grant_id, bucket, balance_micros) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[]) \
             ON CONFLICT (account_id, grant_id, bucket) DO UPDATE SET \
               balance_micros = ledger_balances.balance_micros + excluded.balance_micros",
            &[
                &bal.iter()
                    .map(|((a, _, _), _)| a.as_str())
                    .collect::<Vec<_>>(),
                &bal.iter()
                    .map(|((_, g, _), _)| g.as_str())
                    .collect::<Vec<_>>(),
                &bal.iter()
                    .map(|((_, _, k), _)| k.as_str())
                    .collect::<Vec<_>>(),
                &bal.iter().map(|(_, v)| **v).collect::<Vec<_>>(),
            ],
        )
        .await
        .context("updating balances")?;
    }

    let rec: Vec<_> = b.records.values().collect();
    tx.execute(
        "INSERT INTO ledger_records (account_id, kind, key, seq, value) \
         SELECT * FROM unnest($1::text[], $2::\"char\"[], $3::text[], $4::int8[], $5::bytea[]) \
         ON CONFLICT (account_id, kind, key) DO UPDATE SET seq = excluded.seq, value = excluded.value \
         WHERE excluded.seq > ledger_records.seq",
        &[
            &rec.iter().map(|r| r.account_id.as_str()).collect::<Vec<_>>(),
            &rec.iter().map(|r| r.kind as i8).collect::<Vec<_>>(),
            &rec.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
            &rec.iter().map(|r| r.seq).collect::<Vec<_>>(),
            &rec.iter().map(|r| r.value.as_slice()).collect::<Vec<_>>(),
        ],
    )
    .await
    .context("updating records")?;
    Ok(())
}

async fn write_dead_letter(tx: &Transaction<'_>, d: &Delivered, reason: &str) -> Result<()> {
    let (account, seq, events, state) = match &d.entry {
        Ok(e) => (
            e.account_id.as_str(),
            e.seq,
            Some(e.events_raw.as_slice()),
            Some(e.state_raw.as_slice()),
        ),
        Err(_) => ("", 0, None, None),
    };
    tx.execute(
        "INSERT INTO ledger_dead_letters (stream, entry_id, account_id, seq, reason, deliveries, \
         events, state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        &[
            &d.stream,
            &d.id,
            &account,
            &seq,
            &reason,
            &(d.deliveries.min(i32::MAX as u64) as i32),
            &events,
            &state,
        ],
    )
    .await
    .context("writing a dead letter")?;
    Ok(())
}

/// Another replica booked part of the batch first; the batch is retried.
#[derive(Debug, thiserror::Error)]
#[error("another reconciler booked part of this batch first")]
pub struct RaceLost;
