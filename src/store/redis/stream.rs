//! The shard event streams, as the account scripts write them (see `lib.lua`'s header): one entry
//! per call that changed anything, carrying the call's events and the records it wrote.

use redis::streams::StreamId;
use rmpv::Value;

use crate::error::{Error, Result};
use crate::model::Event;

/// One stream entry: everything one script call changed on one account.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The stream entry id (`<ms>-<n>`).
    pub id: String,
    pub account_id: String,
    /// The account's sequence number after the call (that of its last event).
    pub seq: i64,
    /// The events, msgpack (an array of event maps).
    pub events_raw: Vec<u8>,
    /// The records written, msgpack (see [`State`]).
    pub state_raw: Vec<u8>,
}

/// The records a call wrote, each as the msgpack value stored in Redis.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// The account's own record (settings, counters, sequence number, period).
    pub account: Vec<u8>,
    pub grants: Vec<(String, Vec<u8>)>,
    pub reservations: Vec<(String, Vec<u8>)>,
    pub usage: Vec<(String, Vec<u8>)>,
    pub policies: Vec<(String, Vec<u8>)>,
}

impl Entry {
    pub fn decode(entry: &StreamId) -> std::result::Result<Entry, String> {
        let text = |field: &str| -> std::result::Result<String, String> {
            entry
                .get::<String>(field)
                .ok_or_else(|| format!("stream entry {} has no {field}", entry.id))
        };
        let bytes = |field: &str| -> std::result::Result<Vec<u8>, String> {
            entry
                .get::<Vec<u8>>(field)
                .ok_or_else(|| format!("stream entry {} has no {field}", entry.id))
        };
        let seq = text("seq")?;
        Ok(Entry {
            id: entry.id.clone(),
            account_id: text("account")?,
            seq: seq
                .parse()
                .map_err(|_| format!("stream entry {}: bad seq {seq:?}", entry.id))?,
            events_raw: bytes("events")?,
            state_raw: bytes("state")?,
        })
    }

    /// The call's events, in order.
    pub fn events(&self) -> Result<Vec<Event>> {
        rmp_serde::from_slice(&self.events_raw)
            .map_err(|e| Error::Internal(format!("undecodable events in entry {}: {e}", self.id)))
    }

    /// The records the call wrote.
    pub fn state(&self) -> Result<State> {
        let bad = |what: &str| Error::Internal(format!("entry {}: {what}", self.id));
        let value = rmpv::decode::read_value(&mut self.state_raw.as_slice())
            .map_err(|e| bad(&format!("undecodable state: {e}")))?;
        let mut state = State::default();
        for (k, v) in map_of(&value).ok_or_else(|| bad("state is not a map"))? {
            let key = k.as_str().unwrap_or_default();
            if key == "a" {
                state.account = raw_of(v).ok_or_else(|| bad("account record is not a string"))?;
                continue;
            }
            let list = match key {
                "g" => &mut state.grants,
                "r" => &mut state.reservations,
                "u" => &mut state.usage,
                "p" => &mut state.policies,
                _ => continue,
            };
            for (field, record) in map_of(v).ok_or_else(|| bad("records are not a map"))? {
                let field = raw_of(field).ok_or_else(|| bad("record key is not a string"))?;
                let field = String::from_utf8(field).map_err(|_| bad("record key is not UTF-8"))?;
                list.push((
                    field,
                    raw_of(record).ok_or_else(|| bad("record is not a string"))?,
                ));
            }
        }
        if state.account.is_empty() {
            return Err(bad("state has no account record"));
        }
        Ok(state)
    }
}

/// A msgpack map as pairs; an empty array counts as an empty map (Lua cannot tell them apart).
fn map_of(v: &Value) -> Option<Vec<(&Value, &Value)>> {
    match v {
        Value::Map(pairs) => Some(pairs.iter().map(|(k, v)| (k, v)).collect()),
        Value::Array(items) if items.is_empty() => Some(Vec::new()),
        _ => None,
    }
}

/// The bytes of a msgpack string or binary (Lua strings are bytes, not always UTF-8).
fn raw_of(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Binary(b) => Some(b.clone()),
        _ => None,
    }
}
