//! The ledger against a real redis-server and a real PostgreSQL (both private to each test):
//! booking, double entry, idempotent redelivery, take-over of idle entries, dead letters,
//! trimming, drift and rebuild.

mod common;

use common::ledger::LedgerEnv;
use common::workload;

/// The ledger's invariants (balanced postings, balances equal to their postings, gap-free
/// events), as `creditd check` runs them; the tampering test below shows each query catches a break.
async fn assert_ledger_invariants(env: &LedgerEnv) {
    let broken = creditd::ledger::drift::ledger_invariants(&env.ledger)
        .await
        .expect("invariant queries");
    assert!(broken.is_empty(), "{broken:?}");
}

async fn assert_in_sync(env: &LedgerEnv) {
    let report = env
        .check(std::time::Duration::from_secs(5))
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

    // Booking again books nothing, and the streams were trimmed of everything booked.
    let again = env.drain().await;
    assert_eq!((again.entries, again.events), (0, 0));
    let mut conn = env.store.connection().await.unwrap();
    for shard in 0..common::stores::SHARDS {
        let key = creditd::store::redis::events_key(shard);
        let len: u64 = redis::cmd("XLEN")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(len, 0, "{key}");
    }
}

/// Every entry of every shard stream, as the group would deliver it for the first time.
async fn stream_entries(env: &LedgerEnv) -> Vec<creditd::ledger::apply::Delivered> {
    let mut conn = env.store.connection().await.unwrap();
    let mut out = Vec::new();
    for shard in 0..common::stores::SHARDS {
        let key = creditd::store::redis::events_key(shard);
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(&key)
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
        for id in &reply.ids {
            out.push(creditd::ledger::apply::Delivered {
                stream: key.clone(),
                id: id.id.clone(),
                deliveries: 1,
                entry: creditd::store::redis::stream::Entry::decode(id),
            });
        }
    }
    out
}

#[tokio::test]
async fn a_second_delivery_books_nothing() {
    let env = LedgerEnv::start().await;
    workload::mixed(env.store(), "acct-a").await;
    let entries = stream_entries(&env).await;
    let first = creditd::ledger::apply::apply(&env.ledger, &entries, 3)
        .await
        .unwrap();
    assert_eq!(first.entries_applied, entries.len() as u64);
    let rows = env.count("SELECT count(*) FROM ledger_entries").await;
    let balances = env
        .count("SELECT sum(abs(balance_micros))::bigint FROM ledger_balances")
        .await;

    // The same entries again, all at once and one by one: nothing more is booked.
    let again = creditd::ledger::apply::apply(&env.ledger, &entries, 3)
        .await
        .unwrap();
    assert_eq!(
        (again.entries_applied, again.duplicates),
        (0, entries.len() as u64)
    );
    for one in entries.chunks(1) {
        let o = creditd::ledger::apply::apply(&env.ledger, one, 3)
            .await
            .unwrap();
        assert_eq!((o.entries_applied, o.duplicates), (0, 1));
    }
    assert_eq!(env.count("SELECT count(*) FROM ledger_entries").await, rows);
    assert_eq!(
        env.count("SELECT sum(abs(balance_micros))::bigint FROM ledger_balances")
            .await,
        balances
    );
    assert_ledger_invariants(&env).await;
    assert_in_sync(&env).await;
}

/// A connection, and acct-a's shard stream with the reconcilers' group created on it.
async fn acct_a_stream(env: &LedgerEnv) -> (redis::aio::ConnectionManager, String) {
    let mut conn = env.store.connection().await.unwrap();
    creditd::ledger::reconciler::ensure_groups(&mut conn, common::stores::SHARDS)
        .await
        .unwrap();
    let shard = creditd::store::redis::shard_of("acct-a", common::stores::SHARDS);
    (conn, creditd::store::redis::events_key(shard))
}

/// A reconciler `consumer` reads `count` entries of `key` and dies before acknowledging them.
async fn read_and_die(
    conn: &mut redis::aio::ConnectionManager,
    key: &str,
    consumer: &str,
    count: usize,
) {
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(creditd::ledger::reconciler::GROUP)
        .arg(consumer)
        .arg("COUNT")
        .arg(count)
        .arg("STREAMS")
        .arg(key)
        .arg(">")
        .query_async(conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn entries_of_a_dead_reconciler_are_taken_over_and_the_stream_is_trimmed_only_below_them() {
    let env = LedgerEnv::start().await;
    workload::mixed(env.store(), "acct-a").await;
    let (mut conn, key) = acct_a_stream(&env).await;
    let total: u64 = redis::cmd("XLEN")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    // A reconciler reads three entries and dies before acknowledging them.
    read_and_die(&mut conn, &key, "dead-one", 3).await;

    // Before they are idle long enough, another replica books the rest; the trim keeps the three.
    let mut cfg = env.config();
    cfg.claim_idle = std::time::Duration::from_secs(3600);
    let mut r = creditd::ledger::reconciler::Reconciler::new(cfg, env.ledger.clone())
        .await
        .unwrap();
    r.drain().await.unwrap();
    let left: u64 = redis::cmd("XLEN")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    // The three unacknowledged entries are the oldest: nothing below them, nothing trimmed.
    assert_eq!(left, total, "kept {left} of {total} entries");
    let status = creditd::ledger::reconciler::stream_status(&mut conn, &key)
        .await
        .unwrap();
    assert_eq!(status.pending, 3);
    let report = env.check(std::time::Duration::ZERO).await.unwrap();
    assert!(matches!(
        report.accounts["acct-a"],
        creditd::ledger::drift::Status::LedgerGap { .. }
    ));

    // Once idle, they are taken over, booked, acknowledged and trimmed.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let totals = env.drain().await;
    assert_eq!(totals.entries, 3);
    let status = creditd::ledger::reconciler::stream_status(&mut conn, &key)
        .await
        .unwrap();
    assert_eq!((status.pending, status.length), (0, 0));
    assert_ledger_invariants(&env).await;
    assert_in_sync(&env).await;
}

#[tokio::test]
async fn consumers_that_hold_nothing_and_stay_silent_are_forgotten() {
    let env = LedgerEnv::start().await;
    workload::mixed(env.store(), "acct-a").await;
    let (mut conn, key) = acct_a_stream(&env).await;
    let group = creditd::ledger::reconciler::GROUP;
    // One replica that stopped cleanly (nothing pending), one that died holding an entry.
    let _: i64 = redis::cmd("XGROUP")
        .arg("CREATECONSUMER")
        .arg(&key)
        .arg(group)
        .arg("stopped")
        .query_async(&mut conn)
        .await
        .unwrap();
    read_and_die(&mut conn, &key, "died", 1).await;
    let mut cfg = env.config();
    cfg.consumer = "survivor".into();
    cfg.claim_idle = std::time::Duration::from_secs(3600);
    cfg.consumer_retention = std::time::Duration::ZERO;
    let mut r = creditd::ledger::reconciler::Reconciler::new(cfg, env.ledger.clone())
        .await
        .unwrap();
    r.drain().await.unwrap();
    let info: redis::streams::StreamInfoConsumersReply = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(&key)
        .arg(group)
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut names: Vec<String> = info.consumers.into_iter().map(|c| c.name).collect();
    names.sort();
    // The one holding an entry stays until the entry is taken over; the silent one is gone.
    assert_eq!(names, vec!["died".to_string(), "survivor".to_string()]);
}

#[tokio::test]
async fn an_entry_that_keeps_failing_goes_to_the_dead_letters() {
    let env = LedgerEnv::start().await;
    workload::mixed(env.store(), "acct-a").await;
    let mut conn = env.store.connection().await.unwrap();
    let key = creditd::store::redis::events_key(0);
    let _: String = redis::cmd("XADD")
        .arg(&key)
        .arg("*")
        .arg("account")
        .arg("acct-x")
        .arg("seq")
        .arg("1")
        .arg("events")
        .arg("not msgpack")
        .arg("state")
        .arg("")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut dead = 0;
    for _ in 0..20 {
        env.drain().await;
        dead = env.count("SELECT count(*) FROM ledger_dead_letters").await;
        if dead > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_eq!(dead, 1);
    let deliveries = env
        .count("SELECT deliveries::bigint FROM ledger_dead_letters")
        .await;
    assert_eq!(deliveries, 3, "max_deliveries of the test config");
    // Everything else was booked, and nothing is left pending.
    let status = creditd::ledger::reconciler::stream_status(&mut conn, &key)
        .await
        .unwrap();
    assert_eq!(status.pending, 0);
    assert_ledger_invariants(&env).await;
    assert_in_sync(&env).await;
}

#[tokio::test]
async fn a_ledger_that_disagrees_with_redis_is_reported_and_check_exits_1() {
    let env = LedgerEnv::start().await;
    workload::mixed(env.store(), "acct-a").await;
    workload::mixed(env.store(), "acct-b").await;
    env.drain().await;
    let check = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_creditd"))
            .args(["check", "--settle-seconds", "2"])
            .args(["--database-url", &env.pg.url()])
            .args(["--redis-url", &env.redis.url()])
            .args(["--shards", &common::stores::SHARDS.to_string()])
            .output()
            .expect("creditd check")
    };
    let out = check();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("2 accounts checked, 0 drifting"),
        "{stdout}"
    );
    assert!(stdout.contains("ledger invariants hold"), "{stdout}");

    env.pg()
        .await
        .execute(
            "UPDATE ledger_balances SET balance_micros = balance_micros + 1 \
             WHERE account_id = 'acct-b' AND grant_id = 'prepaid-1' AND bucket = 'spent'",
            &[],
        )
        .await
        .unwrap();
    let out = check();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("acct-b: DRIFT: balances differ") && stdout.contains("prepaid-1 spent"),
        "{stdout}"
    );
    assert!(!stdout.contains("acct-a:"), "{stdout}");
    // The tampered balance no longer equals the sum of its postings: the ledger's own check says so.
    assert!(
        stdout.contains("LEDGER: 1 running balances that differ from the sum of their postings"),
        "{stdout}"
    );
    // A posting that breaks the double entry is caught too.
    env.pg()
        .await
        .execute(
            "UPDATE ledger_entries SET amount_micros = amount_micros + 1 \
             WHERE account_id = 'acct-a' AND seq = 3 AND n = 0",
            &[],
        )
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&check().stdout).to_string();
    assert!(
        stdout.contains("LEDGER: 1 events whose postings do not sum to zero"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_reconcilers_share_the_streams_and_book_each_event_once() {
    let env = LedgerEnv::start().await;
    let accounts: Vec<String> = (0..6).map(|i| format!("multi-{i}")).collect();
    for a in &accounts {
        workload::mixed(env.store(), a).await;
    }
    let mut tasks = Vec::new();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    for i in 0..3 {
        let mut cfg = env.config();
        cfg.consumer = format!("replica-{i}");
        cfg.batch_size = 8;
        let mut r = creditd::ledger::reconciler::Reconciler::new(cfg, env.ledger.clone())
            .await
            .unwrap();
        let rx = stop_rx.clone();
        tasks.push(tokio::spawn(async move { r.run(rx).await }));
    }
    // More traffic while they run.
    for a in &accounts {
        for i in 0..5 {
            let id = format!("late-{i}");
            env.store()
                .create_grant(common::requests::new_grant(
                    a,
                    &id,
                    creditd::model::GrantKind::TopUp,
                    common::CREDIT,
                ))
                .await
                .unwrap();
        }
    }
    common::eventually(common::WAIT, "the replicas to book everything", || async {
        let r = env.check(std::time::Duration::ZERO).await.ok()?;
        (r.accounts.len() == accounts.len()
            && r.accounts
                .values()
                .all(|s| *s == creditd::ledger::drift::Status::InSync))
        .then_some(())
    })
    .await;
    stop.send(true).unwrap();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_ledger_invariants(&env).await;
}

#[tokio::test]
async fn serve_with_reconcile_books_the_calls_it_serves_and_exports_stream_metrics() {
    use common::grpc::*;
    use creditd::proto;
    let env = LedgerEnv::start().await;
    let shards = common::stores::SHARDS.to_string();
    let server = common::creditd::CreditdServer::start(
        Some(&env.redis.url()),
        &[
            "--database-url",
            &env.pg.url(),
            "--reconcile",
            "--drift-check-seconds",
            "1",
            "--shards",
            &shards,
        ],
    )
    .await;
    let mut admin = server.admin().await;
    let mut credits = server.credits().await;
    admin
        .create_account(account_req("served", false, 0))
        .await
        .unwrap();
    admin
        .create_grant(grant_req(
            "served",
            "g1",
            proto::GrantKind::Prepaid,
            50 * common::CREDIT,
        ))
        .await
        .unwrap();
    for i in 0..10 {
        let id = format!("r{i}");
        credits
            .reserve(reserve_req("served", &id, 2 * common::CREDIT))
            .await
            .unwrap();
        credits
            .commit(commit_req("served", &id, common::CREDIT))
            .await
            .unwrap();
    }
    let booked = common::eventually(common::WAIT, "the ledger to book the calls", || async {
        let n = env
            .count("SELECT coalesce(max(seq), 0) FROM ledger_events WHERE account_id = 'served'")
            .await;
        (n >= 22).then_some(n)
    })
    .await;
    assert!(booked >= 22);
    let spent = env
        .count(
            "SELECT balance_micros FROM ledger_balances \
             WHERE account_id = 'served' AND grant_id = 'g1' AND bucket = 'spent'",
        )
        .await;
    assert_eq!(spent, 10 * common::CREDIT);
    let (code, metrics) = common::eventually(common::WAIT, "stream and drift metrics", || async {
        server.http_get("/metrics").await.filter(|(_, body)| {
            body.contains("creditd_stream_length")
                && body.contains("creditd_ledger_drifting_accounts 0")
        })
    })
    .await;
    assert_eq!(code, 200);
    for name in [
        "creditd_ledger_events_applied_total",
        "creditd_stream_pending",
        "creditd_stream_oldest_unacked_age_seconds",
        "creditd_ledger_batch_duration_seconds",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
}
