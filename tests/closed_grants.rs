//! Closed grants leave the hash that every call reads. A grant that has expired or been voided
//! and holds nothing can never change again; the scripts move it to the account's closed-grants
//! hash, so that a call's cost does not grow with the account's history of monthly allowances
//! and spent packs. These tests pin what must not change with that: ListGrants, replays and
//! voids of closed grants answer as the reference model does, the held credits of an expired
//! grant stay where the hold can return them, an account written before the move heals at its
//! next change, and the ledger agrees with Redis and rebuilds the same layout.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::ledger::LedgerEnv;
use common::redis_server::RedisServer;
use common::requests::*;
use common::stores::{memory_store, SHARDS};
use common::{CREDIT, SECOND, T0};
use creditd::error::Error;
use creditd::ledger::drift::Status;
use creditd::model::*;
use creditd::store::redis::{AccountKeys, RedisStore};
use creditd::store::{ClockMode, Store};

const HOUR: i64 = 3_600 * SECOND;
const ACCOUNT: &str = "acct-history";

async fn hash_fields(conn: &mut redis::aio::ConnectionManager, key: &str) -> BTreeSet<String> {
    redis::cmd("HKEYS")
        .arg(key)
        .query_async(conn)
        .await
        .unwrap()
}

/// Open grants and closed grants as Redis holds them.
async fn layout(
    conn: &mut redis::aio::ConnectionManager,
    keys: &AccountKeys,
) -> (BTreeSet<String>, BTreeSet<String>) {
    (
        hash_fields(conn, &keys.grants).await,
        hash_fields(conn, &keys.closed_grants).await,
    )
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

fn expiring(id: &str, kind: GrantKind, amount: Micros, priority: i32) -> CreateGrant {
    CreateGrant {
        priority: Some(priority),
        expires_at: Some(T0 + HOUR),
        ..new_grant(ACCOUNT, id, kind, amount)
    }
}

/// The steps of the history, applied to one store: a live pack, a promo that expires unused, a
/// pack voided at once, and a promo that expires while a hold is on it.
async fn history(s: &dyn Store) -> Vec<Grant> {
    s.create_account(new_account(ACCOUNT)).await.unwrap();
    s.create_grant(new_grant(ACCOUNT, "live", GrantKind::Prepaid, 100 * CREDIT))
        .await
        .unwrap();
    s.create_grant(expiring("short", GrantKind::Promo, 7 * CREDIT, 20))
        .await
        .unwrap();
    s.create_grant(new_grant(
        ACCOUNT,
        "void-me",
        GrantKind::Prepaid,
        3 * CREDIT,
    ))
    .await
    .unwrap();
    s.void_grant(ACCOUNT, "void-me", "test-admin")
        .await
        .unwrap();
    s.create_grant(expiring("held-on", GrantKind::Promo, 5 * CREDIT, 1))
        .await
        .unwrap();
    let hold = Reserve {
        ttl_seconds: 3 * 3_600,
        ..new_reserve(ACCOUNT, "long-job", 5 * CREDIT)
    };
    let r = s.reserve(hold).await.unwrap();
    assert_eq!(r.denial, None, "{r:?}");
    s.list_grants(ACCOUNT).await.unwrap()
}

/// A Redis store on its own `redis-server` (kept alive beside it), on the manual clock at T0.
async fn redis_store() -> (RedisServer, RedisStore) {
    let server = RedisServer::start();
    let store = RedisStore::new(&server.url(), SHARDS, ClockMode::Manual(T0))
        .await
        .unwrap();
    (server, store)
}

#[tokio::test]
async fn closed_grants_move_out_of_the_hot_hash_and_answer_as_the_model_does() {
    let (_server, store) = redis_store().await;
    let model = memory_store();
    let keys = store.keys(ACCOUNT);
    let mut conn = store.connection().await.unwrap();

    assert_eq!(history(&store).await, history(model.as_ref()).await);
    // Voided and holding nothing: closed at once. The hold drew on "held-on" first (priority 1).
    assert_eq!(
        layout(&mut conn, &keys).await,
        (set(&["live", "short", "held-on"]), set(&["void-me"]))
    );

    // Two hours later "short" and "held-on" have expired; "held-on" still holds the 5 credits.
    for s in [&store as &dyn Store, model.as_ref()] {
        s.advance_clock(2 * HOUR).await.unwrap();
    }
    let (b, mb) = (
        store.get_balance(ACCOUNT).await.unwrap(),
        model.get_balance(ACCOUNT).await.unwrap(),
    );
    assert_eq!(b, mb);
    assert_eq!(b.held, 5 * CREDIT);
    assert_eq!(b.available, 100 * CREDIT);
    // get_balance changed something (the expiry of two grants), so it wrote: "short" moved.
    assert_eq!(
        layout(&mut conn, &keys).await,
        (set(&["live", "held-on"]), set(&["short", "void-me"]))
    );

    // Releasing the hold books its credits as expired on "held-on", which then closes too.
    let (rel, mrel) = (
        store.release(ACCOUNT, "long-job").await.unwrap(),
        model.release(ACCOUNT, "long-job").await.unwrap(),
    );
    assert_eq!(rel, mrel);
    assert_eq!(rel.released, 5 * CREDIT);
    assert_eq!(
        layout(&mut conn, &keys).await,
        (set(&["live"]), set(&["short", "void-me", "held-on"]))
    );

    // ListGrants still lists all four, in creation order, exactly as the model does.
    let grants = store.list_grants(ACCOUNT).await.unwrap();
    assert_eq!(grants, model.list_grants(ACCOUNT).await.unwrap());
    let ids: Vec<&str> = grants.iter().map(|g| g.grant_id.as_str()).collect();
    assert_eq!(ids, ["live", "short", "void-me", "held-on"]);
    let held_on = &grants[3];
    assert_eq!(
        (held_on.expired, held_on.held, held_on.remaining),
        (5 * CREDIT, 0, 0)
    );
    for s in [&store as &dyn Store, model.as_ref()] {
        assert_conserved(s, ACCOUNT).await;
    }

    // Replays of a closed grant: the same parameters return it, others conflict, a void is a
    // no-op that records nothing.
    let seq = store.get_balance(ACCOUNT).await.unwrap().sequence;
    let again = store
        .create_grant(expiring("short", GrantKind::Promo, 7 * CREDIT, 20))
        .await
        .unwrap();
    assert_eq!(again, grants[1]);
    let conflict = store
        .create_grant(expiring("short", GrantKind::Promo, 8 * CREDIT, 20))
        .await
        .unwrap_err();
    assert!(
        matches!(conflict, Error::IdempotencyConflict { .. }),
        "{conflict:?}"
    );
    assert_eq!(
        store
            .void_grant(ACCOUNT, "void-me", "test-admin")
            .await
            .unwrap(),
        grants[2]
    );
    assert_eq!(
        store
            .void_grant(ACCOUNT, "short", "test-admin")
            .await
            .unwrap(),
        model
            .void_grant(ACCOUNT, "short", "test-admin")
            .await
            .unwrap()
    );
    assert_eq!(store.get_balance(ACCOUNT).await.unwrap().sequence, seq);
    assert_eq!(
        store
            .void_grant(ACCOUNT, "never-made", "test-admin")
            .await
            .unwrap_err(),
        Error::GrantNotFound
    );
}

#[tokio::test]
async fn an_account_written_before_the_move_heals_at_its_next_change() {
    let (_server, store) = redis_store().await;
    let keys = store.keys(ACCOUNT);
    let mut conn = store.connection().await.unwrap();
    history(&store).await;
    store.release(ACCOUNT, "long-job").await.unwrap();
    store.void_grant(ACCOUNT, "short", "t").await.unwrap();
    let before = store.list_grants(ACCOUNT).await.unwrap();
    let (_, closed) = layout(&mut conn, &keys).await;
    assert_eq!(closed, set(&["short", "void-me"]));

    // The layout of earlier versions: every grant in one hash.
    let records: Vec<(String, Vec<u8>)> = redis::cmd("HGETALL")
        .arg(&keys.closed_grants)
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut pipe = redis::pipe();
    pipe.atomic().del(&keys.closed_grants);
    for (id, raw) in &records {
        pipe.hset(&keys.grants, id, raw.as_slice());
    }
    pipe.query_async::<()>(&mut conn).await.unwrap();
    assert_eq!(store.list_grants(ACCOUNT).await.unwrap(), before);

    // A call that changes nothing writes nothing; the next change moves them.
    store.get_balance(ACCOUNT).await.unwrap();
    assert_eq!(layout(&mut conn, &keys).await.1, BTreeSet::new());
    store
        .reserve(new_reserve(ACCOUNT, "next-job", CREDIT))
        .await
        .unwrap();
    assert_eq!(
        layout(&mut conn, &keys).await,
        (set(&["live", "held-on"]), set(&["short", "void-me"]))
    );
    let after = store.list_grants(ACCOUNT).await.unwrap();
    let closed = |grants: &[Grant]| -> Vec<Grant> {
        grants
            .iter()
            .filter(|g| g.is_voided || g.closed)
            .cloned()
            .collect()
    };
    assert_eq!(closed(&after), closed(&before));
    assert_eq!(closed(&after).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_agrees_with_closed_grants_and_rebuilds_them_closed() {
    let env = LedgerEnv::start().await;
    let keys = env.store.keys(ACCOUNT);
    let mut conn = env.store.connection().await.unwrap();
    history(env.store()).await;
    env.store().advance_clock(2 * HOUR).await.unwrap();
    env.store().release(ACCOUNT, "long-job").await.unwrap();
    let grants = env.store().list_grants(ACCOUNT).await.unwrap();
    let balance = env.store().get_balance(ACCOUNT).await.unwrap();
    let expected = (set(&["live"]), set(&["short", "void-me", "held-on"]));
    assert_eq!(layout(&mut conn, &keys).await, expected);

    env.drain().await;
    let report = env.check(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        report.accounts.get(ACCOUNT),
        Some(&Status::InSync),
        "{report:?}"
    );

    // Redis loses the account (its shard's clock, stream and due set stay).
    let mut del = redis::cmd("DEL");
    for k in keys.own() {
        del.arg(k);
    }
    let _: i64 = del.query_async(&mut conn).await.unwrap();
    assert_eq!(layout(&mut conn, &keys).await, (set(&[]), set(&[])));
    let opts = creditd::ledger::rebuild::Options {
        wait: Duration::from_secs(5),
        force: false,
    };
    creditd::ledger::rebuild::rebuild_account(&env.ledger, &mut conn, SHARDS, ACCOUNT, &opts)
        .await
        .unwrap();
    assert_eq!(layout(&mut conn, &keys).await, expected);
    assert_eq!(env.store().list_grants(ACCOUNT).await.unwrap(), grants);
    assert_eq!(env.store().get_balance(ACCOUNT).await.unwrap(), balance);
}
