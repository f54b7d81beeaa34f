//! The ledger against a real redis-server and a real PostgreSQL (both private to each test):
//! booking, double entry, idempotent redelivery, take-over of idle entries, dead letters,
//! trimming, drift and rebuild.

mod common;

use common::ledger::LedgerEnv;
use common::workload;

/// The invariants of the ledger, each as a query that must find nothing.
async fn assert_ledger_invariants(env: &LedgerEnv) {
    // Every event's postings sum to zero.
    let unbalanced = env
        .count(
            "SELECT count(*) FROM (SELECT account_id, seq FROM ledger_entries \
             GROUP BY account_id, seq HAVING sum(amount_micros) <> 0) t",
        )
        .await;
    assert_eq!(unbalanced, 0, "events whose postings do not balance");
    // The running balances are the sums of the postings.
    let wrong = env
        .count(
            "SELECT count(*) FROM ledger_balances b FULL JOIN \
             (SELECT account_id, grant_id, bucket, sum(amount_micros) AS s FROM ledger_entries \
              GROUP BY 1, 2, 3) e USING (account_id, grant_id, bucket) \
             WHERE coalesce(b.balance_micros, 0) <> coalesce(e.s, 0)",
        )
        .await;
    assert_eq!(wrong, 0, "balances that differ from their postings");
    // Every account's events are 1..max_seq, each once.
    let gaps = env
        .count(
            "SELECT count(*) FROM ledger_heads h WHERE h.applied <> h.max_seq OR h.applied <> \
             (SELECT count(*) FROM ledger_events e WHERE e.account_id = h.account_id)",
        )
        .await;
    assert_eq!(gaps, 0, "accounts with gaps or duplicates");
}

async fn assert_in_sync(env: &LedgerEnv) {
    let report = creditd::ledger::drift::check_accounts(
        &env.ledger,
        &env.redis.url(),
        common::stores::SHARDS,
        None,
        std::time::Duration::from_secs(5),
    )
    .await
    .expect("check");
    assert!(!report.accounts.is_empty());
    for (account, status) in &report.accounts {
        assert_eq!(
            *status,
            creditd::ledger::drift::Status::InSync,
            "account {account}"
        );
    }
}

#[tokio::test]
async fn migrate_is_safe_to_run_twice() {
    let env = LedgerEnv::start().await;
    assert!(env.ledger.migrate().await.unwrap().is_empty());
    assert_eq!(env.count("SELECT count(*) FROM ledger_events").await, 0);
}

#[tokio::test]
async fn the_ledger_books_every_event_and_matches_redis() {
    let env = LedgerEnv::start().await;
    workload::mixed(env.store(), "acct-a").await;
    workload::mixed(env.store(), "acct-b").await;
    let events_a = env.store.events("acct-a").await.unwrap();
    let totals = env.drain().await;
    assert!(totals.events > 0);
    assert_eq!(
        env.count("SELECT count(*) FROM ledger_events WHERE account_id = 'acct-a'")
            .await,
        events_a.len() as i64
    );
    assert_eq!(
        env.count("SELECT max_seq FROM ledger_heads WHERE account_id = 'acct-a'")
            .await,
        events_a.last().unwrap().seq
    );
    let moves: usize = events_a.iter().map(|e| e.moves.len()).sum();
    assert_eq!(
        env.count("SELECT count(*) FROM ledger_entries WHERE account_id = 'acct-a'")
            .await,
        2 * moves as i64
    );
    assert_ledger_invariants(&env).await;
    assert_in_sync(&env).await;

    // Booking again books nothing.
    let again = env.drain().await;
    assert_eq!((again.entries, again.events), (0, 0));
}
