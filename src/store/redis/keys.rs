//! The Redis key layout. Every key of an account carries its shard's hash tag `{N}`:
//!
//! | key | type | what |
//! |---|---|---|
//! | `creditd:{N}:a:<account>` | string (msgpack) | settings, counters, sequence number, period |
//! | `creditd:{N}:a:<account>:grants` | hash | grant id → grant (msgpack): the grants still open, or holding credits |
//! | `creditd:{N}:a:<account>:grants:closed` | hash | grant id → grant (msgpack): expired or voided grants that hold nothing, which no call reads again but ListGrants and replays |
//! | `creditd:{N}:a:<account>:res` | hash | reservation id → reservation (msgpack) |
//! | `creditd:{N}:a:<account>:expiry` | zset | held reservation id → expires_at (ms) |
//! | `creditd:{N}:a:<account>:policies` | hash | subject id (or `*`) → policy (msgpack) |
//! | `creditd:{N}:a:<account>:usage` | hash | budget / frequency-cap counter → {window, used} |
//! | `creditd:{N}:due` | zset | account with holds → its earliest expiry (ms), for the reaper |
//! | `creditd:{N}:events` | stream | every change of the shard's accounts, in order |
//! | `creditd:{N}:clock` | string | a frozen clock (ms) for tests; absent in production |
//!
//! Identifiers are validated before they get here (`A–Z a–z 0–9 . _ - ~`), so they can neither
//! break a key nor open a hash tag.

/// The shard of an account: CRC-32 of its id modulo the shard count (fixed per deployment).
pub fn shard_of(account_id: &str, shards: u32) -> u32 {
    crc32fast::hash(account_id.as_bytes()) % shards
}

pub fn due(shard: u32) -> String {
    format!("creditd:{{{shard}}}:due")
}

pub fn events(shard: u32) -> String {
    format!("creditd:{{{shard}}}:events")
}

pub fn clock(shard: u32) -> String {
    format!("creditd:{{{shard}}}:clock")
}

/// The keys of an account and of its shard, as the scripts receive them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountKeys {
    pub shard: u32,
    pub account: String,
    pub grants: String,
    pub reservations: String,
    pub expiry: String,
    pub due: String,
    pub events: String,
    pub clock: String,
    pub policies: String,
    pub usage: String,
    pub closed_grants: String,
}

impl AccountKeys {
    pub fn new(account_id: &str, shards: u32) -> Self {
        let shard = shard_of(account_id, shards);
        let base = format!("creditd:{{{shard}}}:a:{account_id}");
        AccountKeys {
            shard,
            grants: format!("{base}:grants"),
            closed_grants: format!("{base}:grants:closed"),
            reservations: format!("{base}:res"),
            expiry: format!("{base}:expiry"),
            policies: format!("{base}:policies"),
            usage: format!("{base}:usage"),
            account: base,
            due: due(shard),
            events: events(shard),
            clock: clock(shard),
        }
    }

    /// The keys that hold this account's own data (not its shard's due set, stream or clock):
    /// record, grants, reservations, expiry index, policies, usage counters and closed grants.
    pub fn own(&self) -> [&str; 7] {
        [
            &self.account,
            &self.grants,
            &self.reservations,
            &self.expiry,
            &self.policies,
            &self.usage,
            &self.closed_grants,
        ]
    }

    /// The ten keys every account script receives, in the order of `lib.lua`'s header.
    pub fn all(&self) -> [&str; 10] {
        [
            &self.account,
            &self.grants,
            &self.reservations,
            &self.expiry,
            &self.due,
            &self.events,
            &self.clock,
            &self.policies,
            &self.usage,
            &self.closed_grants,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_an_account_shares_one_hash_tag() {
        let keys = AccountKeys::new("acme-prod", 16);
        let tag = format!("{{{}}}", keys.shard);
        for k in keys.all() {
            assert!(k.contains(&tag), "{k} lacks {tag}");
            assert_eq!(k.matches('{').count(), 1, "{k} has one tag only");
        }
        assert!(keys.shard < 16);
        assert_eq!(shard_of("acme-prod", 1), 0);
    }
}
