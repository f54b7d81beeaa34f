//! Booking: what a stream entry becomes in the ledger. Pure functions, no I/O: the rows of the
//! events, their postings (two per move, of opposite sign, so every event sums to zero), the
//! charges by SKU, the grants' terms, the account heads, the records for a rebuild and the changes
//! of the running balances.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::model::{Audit, Event};
use crate::store::redis::stream::State;

/// The ledger account of a posting: (account, grant, bucket).
pub type LedgerAccount = (String, String, String);

#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub account_id: String,
    pub seq: i64,
    pub kind: String,
    pub at: SystemTime,
    pub reservation_id: String,
    pub subject_id: String,
    pub labels: serde_json::Value,
    pub detail: String,
    pub actor: String,
    pub cost: i64,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    /// SHA-256 of the event's canonical encoding: equal for two deliveries of the same event.
    pub digest: Vec<u8>,
    pub stream_entry: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    pub account_id: String,
    pub seq: i64,
    pub n: i32,
    pub grant_id: String,
    pub bucket: String,
    pub amount: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRow {
    pub account_id: String,
    pub seq: i64,
    pub n: i32,
    pub sku: String,
    pub quantity: i64,
    pub amount: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow {
    pub account_id: String,
    pub grant_id: String,
    pub kind: String,
    pub amount: i64,
    pub unit_price: i64,
    pub created_at: SystemTime,
    pub expires_at: Option<SystemTime>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRow {
    pub account_id: String,
    /// `a` account, `g` grant, `r` reservation, `u` usage counter, `p` subject policy.
    pub kind: u8,
    pub key: String,
    pub seq: i64,
    pub value: Vec<u8>,
}

/// Per account: the highest sequence number in the batch, how many events, and the parent named by
/// the latest account event (with its sequence number).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Head {
    pub max_seq: i64,
    pub applied: i64,
    pub parent: Option<(String, i64)>,
}

/// Everything a batch of new entries adds to the ledger.
#[derive(Debug, Default)]
pub struct Booking {
    pub events: Vec<EventRow>,
    pub postings: Vec<Posting>,
    pub items: Vec<ItemRow>,
    pub grants: Vec<GrantRow>,
    /// The latest version of each record (one per key: a statement may not touch a row twice).
    pub records: BTreeMap<(String, u8, String), RecordRow>,
    pub heads: BTreeMap<String, Head>,
    /// Net change of each ledger account, in key order (a fixed lock order across replicas).
    pub balances: BTreeMap<LedgerAccount, i64>,
}

pub fn time_of(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

pub fn millis_of(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// The canonical encoding of an event (the same event always encodes to the same bytes).
pub fn canonical(ev: &Event) -> Vec<u8> {
    rmp_serde::to_vec_named(ev).expect("an event always encodes")
}

/// SHA-256 of the canonical encoding: what the ledger keeps to recognise an event.
pub fn digest(ev: &Event) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(canonical(ev)).to_vec()
}

impl Booking {
    /// Books one entry's events and the records it wrote. `stream_entry` names where it came from.
    pub fn add(&mut self, events: &[Event], state: &State, stream_entry: &str) {
        let mut last_seq = 0;
        for ev in events {
            self.add_event(ev, stream_entry);
            last_seq = last_seq.max(ev.seq);
        }
        let Some(account_id) = events.first().map(|e| e.account_id.clone()) else {
            return;
        };
        let mut record = |kind: u8, key: &str, value: &[u8]| {
            let row = RecordRow {
                account_id: account_id.clone(),
                kind,
                key: key.to_string(),
                seq: last_seq,
                value: value.to_vec(),
            };
            let slot = (account_id.clone(), kind, key.to_string());
            match self.records.get(&slot) {
                Some(existing) if existing.seq >= last_seq => {}
                _ => {
                    self.records.insert(slot, row);
                }
            }
        };
        record(b'a', "", &state.account);
        for (kind, list) in [
            (b'g', &state.grants),
            (b'r', &state.reservations),
            (b'u', &state.usage),
            (b'p', &state.policies),
        ] {
            for (key, value) in list {
                record(kind, key, value);
            }
        }
    }

    fn add_event(&mut self, ev: &Event, stream_entry: &str) {
        let json = |a: &Option<Audit>| a.as_ref().and_then(|a| serde_json::to_value(a).ok());
        self.events.push(EventRow {
            account_id: ev.account_id.clone(),
            seq: ev.seq,
            kind: ev.kind.clone(),
            at: time_of(ev.at),
            reservation_id: ev.reservation_id.clone(),
            subject_id: ev.subject_id.clone(),
            labels: serde_json::to_value(&ev.labels).unwrap_or_default(),
            detail: ev.detail.clone(),
            actor: ev.actor.clone(),
            cost: ev.cost,
            before: json(&ev.before),
            after: json(&ev.after),
            digest: digest(ev),
            stream_entry: stream_entry.to_string(),
        });

        let mut n = 0;
        for m in &ev.moves {
            for (bucket, amount) in [(&m.from, -m.amount), (&m.to, m.amount)] {
                self.postings.push(Posting {
                    account_id: ev.account_id.clone(),
                    seq: ev.seq,
                    n,
                    grant_id: m.grant_id.clone(),
                    bucket: bucket.clone(),
                    amount,
                });
                n += 1;
                *self
                    .balances
                    .entry((ev.account_id.clone(), m.grant_id.clone(), bucket.clone()))
                    .or_default() += amount;
            }
        }

        if ev.kind == "committed" || ev.kind == "captured" {
            self.add_items(ev);
        }

        let head = self.heads.entry(ev.account_id.clone()).or_default();
        head.max_seq = head.max_seq.max(ev.seq);
        head.applied += 1;
        match &ev.after {
            Some(Audit::Account(a)) if head.parent.as_ref().is_none_or(|(_, s)| *s < ev.seq) => {
                head.parent = Some((a.parent_id.clone(), ev.seq));
            }
            Some(Audit::Grant(g)) if ev.kind == "grant_created" => {
                self.grants.push(GrantRow {
                    account_id: ev.account_id.clone(),
                    grant_id: g.grant_id.clone(),
                    kind: g.kind.as_str().to_string(),
                    amount: g.amount,
                    unit_price: g.unit_price,
                    created_at: time_of(g.created_at),
                    expires_at: g.expires_at.map(time_of),
                });
            }
            _ => {}
        }
    }

    /// A commit's charge by SKU: its priced items in order, each capped at what is left of the
    /// charge (an OVERRUN_CAP commit charges less than its items cost); the rest under sku "".
    fn add_items(&mut self, ev: &Event) {
        let charged: i64 = ev
            .moves
            .iter()
            .filter(|m| m.to == "spent")
            .map(|m| m.amount)
            .sum();
        let mut left = charged;
        let mut n = 0;
        for item in &ev.items {
            let amount = item.amount.min(left);
            left -= amount;
            self.items.push(ItemRow {
                account_id: ev.account_id.clone(),
                seq: ev.seq,
                n,
                sku: item.sku.clone(),
                quantity: item.quantity,
                amount,
            });
            n += 1;
        }
        if left > 0 {
            self.items.push(ItemRow {
                account_id: ev.account_id.clone(),
                seq: ev.seq,
                n,
                sku: String::new(),
                quantity: 0,
                amount: left,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ItemCharge, Move};

    fn commit_event(items: Vec<ItemCharge>, spent: &[i64]) -> Event {
        let mut ev = Event::new("acct", 3, "committed", 1_000);
        for (i, amount) in spent.iter().enumerate() {
            ev.moves.push(Move {
                grant_id: format!("g{i}"),
                from: "held".into(),
                to: "spent".into(),
                amount: *amount,
            });
        }
        ev.moves.push(Move {
            grant_id: "g0".into(),
            from: "held".into(),
            to: "available".into(),
            amount: 7,
        });
        ev.items = items;
        ev
    }

    fn item(sku: &str, quantity: i64, amount: i64) -> ItemCharge {
        ItemCharge {
            sku: sku.into(),
            quantity,
            amount,
        }
    }

    fn state() -> State {
        State {
            account: b"acct-record".to_vec(),
            ..State::default()
        }
    }

    #[test]
    fn every_event_books_postings_that_sum_to_zero() {
        let mut b = Booking::default();
        b.add(&[commit_event(vec![], &[5, 6])], &state(), "s:1-0");
        assert_eq!(b.postings.len(), 6);
        assert_eq!(b.postings.iter().map(|p| p.amount).sum::<i64>(), 0);
        assert_eq!(
            b.balances[&("acct".into(), "g0".into(), "held".into())],
            -12
        );
        assert_eq!(b.balances[&("acct".into(), "g0".into(), "spent".into())], 5);
        assert_eq!(
            b.balances[&("acct".into(), "g0".into(), "available".into())],
            7
        );
        assert_eq!(b.heads["acct"].max_seq, 3);
        assert_eq!(b.heads["acct"].applied, 1);
    }

    #[test]
    fn items_are_capped_at_the_charge_and_the_rest_is_unattributed() {
        let mut b = Booking::default();
        // Items cost 10 + 8 but the commit charged 12 (capped): 10, then 2.
        b.add(
            &[commit_event(
                vec![item("grid.row", 10, 10), item("image", 1, 8)],
                &[12],
            )],
            &state(),
            "s:1-0",
        );
        let got: Vec<(String, i64)> = b.items.iter().map(|i| (i.sku.clone(), i.amount)).collect();
        assert_eq!(got, vec![("grid.row".into(), 10), ("image".into(), 2)]);

        let mut b = Booking::default();
        b.add(
            &[commit_event(vec![item("grid.row", 3, 3)], &[9])],
            &state(),
            "s:1-0",
        );
        let got: Vec<(String, i64)> = b.items.iter().map(|i| (i.sku.clone(), i.amount)).collect();
        assert_eq!(got, vec![("grid.row".into(), 3), (String::new(), 6)]);
    }

    #[test]
    fn a_record_keeps_its_latest_version() {
        let mut b = Booking::default();
        let mut later = state();
        later.account = b"newer".to_vec();
        let mut ev = Event::new("acct", 9, "extended", 0);
        b.add(std::slice::from_ref(&ev), &later, "s:2-0");
        ev.seq = 4;
        b.add(&[ev], &state(), "s:1-0");
        let rec = &b.records[&("acct".to_string(), b'a', String::new())];
        assert_eq!((rec.seq, rec.value.as_slice()), (9, b"newer".as_slice()));
        assert_eq!(b.heads["acct"].applied, 2);
    }

    #[test]
    fn the_canonical_digest_is_stable() {
        let ev = commit_event(vec![item("x", 1, 1)], &[1]);
        assert_eq!(digest(&ev), digest(&ev.clone()));
        let mut other = ev.clone();
        other.moves[0].amount = 2;
        assert_ne!(digest(&ev), digest(&other));
    }

    #[test]
    fn times_round_trip() {
        for ms in [0, 1_768_435_200_000, -5_000] {
            assert_eq!(millis_of(time_of(ms)), ms);
        }
    }
}
