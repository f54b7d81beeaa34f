//! Faults of issue 4 §7, against a real redis-server and a real PostgreSQL started by the test:
//! Postgres down under load, a reconciler killed between the commit and the acknowledgement,
//! Redis flushed, and Redis restarted from an older state. Also: accounts loaded from the ledger
//! on first use, and an account failing closed while it is rebuilt.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::ledger::LedgerEnv;
use common::requests::*;
use common::stores::SHARDS;
use common::{eventually, workload, CREDIT, T0, WAIT};
use creditd::error::Error;
use creditd::ledger::drift::{check_accounts, Report, Status};
use creditd::model::GrantKind;
use creditd::store::Store;

fn creditd(env: &LedgerEnv, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_creditd"));
    cmd.args(args)
        .args(["--database-url", &env.pg.url()])
        .args(["--redis-url", &env.redis.url()])
        .args(["--shards", &SHARDS.to_string()])
        .env("RUST_LOG", "warn");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("run creditd")
}

async fn report(env: &LedgerEnv, settle: Duration) -> Report {
    check_accounts(&env.ledger, &env.redis.url(), SHARDS, None, settle)
        .await
        .expect("check")
}

async fn assert_in_sync(env: &LedgerEnv) {
    let r = report(env, Duration::from_secs(10)).await;
    assert!(!r.accounts.is_empty());
    for (account, status) in &r.accounts {
        assert_eq!(*status, Status::InSync, "account {account}");
    }
}

/// Exactly one ledger row per event: for each account, seq 1..=its Redis sequence number.
async fn assert_one_row_per_event(env: &LedgerEnv, accounts: &[&str]) {
    for account in accounts {
        let seq = env
            .store
            .events(account)
            .await
            .ok()
            .and_then(|e| e.last().map(|e| e.seq));
        let rows = env
            .pg()
            .await
            .query_one(
                "SELECT count(*), count(DISTINCT seq), coalesce(max(seq), 0), coalesce(min(seq), 0) \
                 FROM ledger_events WHERE account_id = $1",
                &[account],
            )
            .await
            .unwrap();
        let (n, distinct, max, min): (i64, i64, i64, i64) =
            (rows.get(0), rows.get(1), rows.get(2), rows.get(3));
        assert_eq!((n, distinct, min), (max, max, 1), "account {account}");
        if let Some(seq) = seq {
            assert!(
                max >= seq,
                "account {account}: ledger at #{max}, stream at #{seq}"
            );
        }
    }
    let broken = creditd::ledger::drift::ledger_invariants(&env.ledger)
        .await
        .expect("invariant queries");
    assert!(broken.is_empty(), "{broken:?}");
}

async fn set_clock(env: &LedgerEnv, t: i64) {
    let mut conn = env.store.connection().await.unwrap();
    for shard in 0..SHARDS {
        let _: () = redis::cmd("SET")
            .arg(format!("creditd:{{{shard}}}:clock"))
            .arg(t)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn empty_dir(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            std::fs::remove_dir_all(p).unwrap();
        } else {
            std::fs::remove_file(p).unwrap();
        }
    }
}

/// Retries a store call while Redis comes back after a restart.
async fn when_redis_is_back<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    eventually(WAIT, what, || {
        let fut = f();
        async move { fut.await.ok() }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_under_load_loses_nothing_and_the_ledger_catches_up() {
    let mut env = LedgerEnv::start().await;
    let accounts = ["load-0", "load-1", "load-2", "load-3"];
    for a in accounts {
        env.store().create_account(new_account(a)).await.unwrap();
        env.store()
            .create_grant(new_grant(a, "g", GrantKind::Prepaid, 1_000_000 * CREDIT))
            .await
            .unwrap();
    }
    let mut reconciler = env.reconciler().await;
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move { reconciler.run(stop_rx).await });

    let ops = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(6);
    let mut load = Vec::new();
    for a in accounts {
        let (store, ops, errors) = (env.store.clone(), ops.clone(), errors.clone());
        load.push(tokio::spawn(async move {
            let mut i = 0;
            while Instant::now() < until {
                i += 1;
                let id = format!("r{i}");
                let ok = store.reserve(new_reserve(a, &id, CREDIT)).await.is_ok()
                    && store.commit(new_commit(a, &id, CREDIT / 2)).await.is_ok();
                if ok {
                    ops.fetch_add(1, Ordering::Relaxed);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    tokio::task::block_in_place(|| env.pg.stop());
    let during = ops.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let served_while_down = ops.load(Ordering::Relaxed) - during;
    tokio::task::block_in_place(|| env.pg.restart());
    for l in load {
        l.await.unwrap();
    }
    assert_eq!(errors.load(Ordering::Relaxed), 0, "the hot path failed");
    assert!(
        served_while_down > 0,
        "nothing served while Postgres was down"
    );

    // The ledger catches up with everything.
    eventually(WAIT, "the ledger to catch up", || async {
        let r = report(&env, Duration::ZERO).await;
        r.accounts
            .values()
            .all(|s| *s == Status::InSync)
            .then_some(())
    })
    .await;
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
    assert_one_row_per_event(&env, &accounts).await;
    assert_in_sync(&env).await;
    eprintln!(
        "{} reserve+commit pairs, {served_while_down} while Postgres was down",
        ops.load(Ordering::Relaxed)
    );
}

#[tokio::test]
async fn a_reconciler_killed_between_commit_and_ack_books_each_event_once() {
    let env = LedgerEnv::start().await;
    let accounts = ["crash-a", "crash-b", "crash-c"];
    for a in accounts {
        workload::mixed(env.store(), a).await;
    }
    let args = [
        "reconcile",
        "--once",
        "--batch-size",
        "4",
        "--claim-idle-ms",
        "100",
        "--http-listen",
        "",
    ];
    let mut crashes = 0;
    for _ in 0..15 {
        let out = creditd(
            &env,
            &args,
            &[(creditd::ledger::reconciler::CRASH_BEFORE_ACK_ENV, "1")],
        );
        match out.status.code() {
            Some(86) => crashes += 1,
            Some(0) => break,
            other => panic!("reconcile exited with {other:?}: {out:?}"),
        }
        // Let the dead consumer's entries go idle, so the next run takes them over.
        std::thread::sleep(Duration::from_millis(150));
    }
    assert!(
        crashes >= 10,
        "only {crashes} crashes between commit and ack"
    );
    std::thread::sleep(Duration::from_millis(150));
    let out = creditd(&env, &args, &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains(" 0 already booked"),
        "the re-delivered entries were not recognised: {stdout}"
    );
    assert_one_row_per_event(&env, &accounts).await;
    assert_in_sync(&env).await;
}

#[tokio::test]
async fn a_flushed_redis_is_rebuilt_from_the_ledger() {
    let env = LedgerEnv::start().await;
    workload::mixed(env.store(), "acct-a").await;
    workload::mixed(env.store(), "acct-b").await;
    env.drain().await;
    let now = env.store().now().await.unwrap();
    let before = env.store().get_balance("acct-a").await.unwrap();
    let grants = env.store().list_grants("acct-a").await.unwrap();
    let held = env.store().get_reservation("acct-a", "r6").await.unwrap();
    let r1 = env.store().get_reservation("acct-a", "r1").await.unwrap();

    let mut conn = env.store.connection().await.unwrap();
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
    set_clock(&env, now).await;
    let r = report(&env, Duration::ZERO).await;
    assert!(matches!(
        r.accounts["acct-a"],
        Status::MissingInRedis { .. }
    ));
    let out = creditd(&env, &["check", "--settle-seconds", "0"], &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    let out = creditd(&env, &["rebuild", "--all"], &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 rebuilt, 0 failed"));
    assert_in_sync(&env).await;

    let s = env.store();
    assert_eq!(s.get_balance("acct-a").await.unwrap(), before);
    assert_eq!(s.list_grants("acct-a").await.unwrap(), grants);
    assert_eq!(s.get_reservation("acct-a", "r6").await.unwrap(), held);
    assert_eq!(s.get_reservation("acct-a", "r1").await.unwrap(), r1);
    // Idempotency survives: replaying r1's commit returns the first answer, no second charge.
    let mut c = new_commit("acct-a", "r1", 8 * CREDIT);
    c.cost = 1_500;
    assert!(s.commit(c).await.unwrap().replayed);
    // The account goes on from the ledger's sequence number; the ledger books what follows.
    s.create_grant(new_grant("acct-a", "after", GrantKind::TopUp, 10 * CREDIT))
        .await
        .unwrap();
    s.reserve(new_reserve("acct-a", "after", CREDIT))
        .await
        .unwrap();
    let totals = env.drain().await;
    assert_eq!(totals.dead_letters, 0);
    assert!(totals.events >= 2, "{totals:?}");
    assert_in_sync(&env).await;
    assert_one_row_per_event(&env, &["acct-a", "acct-b"]).await;
}

#[tokio::test]
async fn a_redis_restored_from_an_older_state_is_detected_and_repaired() {
    let mut env = LedgerEnv::start().await;
    workload::mixed(env.store(), "acct-a").await;
    env.drain().await;

    // Keep Redis's state as it is now.
    env.redis.kill();
    let backup = tempfile::tempdir().unwrap();
    copy_dir(env.redis.dir(), backup.path());
    env.redis.restart();

    // Writes Redis will lose: booked by the ledger.
    when_redis_is_back("a reserve after the restart", || {
        env.store()
            .reserve(new_reserve("acct-a", "r10", 5 * CREDIT))
    })
    .await;
    env.store()
        .commit(new_commit("acct-a", "r10", 3 * CREDIT))
        .await
        .unwrap();
    env.drain().await;
    let booked = env.store().get_balance("acct-a").await.unwrap();

    // Redis comes back from the older state.
    env.redis.kill();
    empty_dir(env.redis.dir());
    copy_dir(backup.path(), env.redis.dir());
    env.redis.restart();
    let r = loop {
        if let Ok(r) =
            check_accounts(&env.ledger, &env.redis.url(), SHARDS, None, Duration::ZERO).await
        {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        matches!(r.accounts["acct-a"], Status::Behind { .. }),
        "{:?}",
        r.accounts
    );
    let out = creditd(&env, &["check", "--settle-seconds", "0"], &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("behind the ledger"));

    // A write on the rolled-back Redis reuses sequence numbers the ledger holds: the reconciler
    // refuses to book it over the ledger's history and sets it aside.
    when_redis_is_back("a reserve on the restored Redis", || {
        env.store().reserve(new_reserve("acct-a", "r-lost", CREDIT))
    })
    .await;
    let totals = env.drain().await;
    assert_eq!(totals.dead_letters, 1);
    let reason: String = env
        .pg()
        .await
        .query_one("SELECT reason FROM ledger_dead_letters", &[])
        .await
        .unwrap()
        .get(0);
    assert!(reason.contains("sequence conflict"), "{reason}");
    let out = Command::new(env!("CARGO_BIN_EXE_creditd"))
        .args(["dead-letters", "--database-url", &env.pg.url()])
        .output()
        .expect("creditd dead-letters");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("acct-a #")
            && listed.contains("sequence conflict")
            && listed.contains("1 dead letters"),
        "{listed}"
    );

    // Repair: the account is rebuilt from the ledger.
    let out = creditd(&env, &["rebuild", "--account", "acct-a"], &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_in_sync(&env).await;
    let out = creditd(&env, &["check", "--settle-seconds", "0"], &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let s = env.store();
    assert_eq!(s.get_balance("acct-a").await.unwrap(), booked);
    let r10 = s.get_reservation("acct-a", "r10").await.unwrap();
    assert_eq!(r10.committed, 3 * CREDIT);
    assert_eq!(
        s.get_reservation("acct-a", "r-lost").await.unwrap_err(),
        Error::ReservationNotFound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_missing_from_redis_is_loaded_from_the_ledger_on_first_use() {
    let mut env = LedgerEnv::start().await;
    workload::mixed(env.store(), "acct-a").await;
    env.drain().await;
    let before = env.store().get_balance("acct-a").await.unwrap();
    let account = env.store().get_account("acct-a").await.unwrap();

    let mut conn = env.store.connection().await.unwrap();
    let evict = |conn: &mut redis::aio::ConnectionManager| {
        let keys = env.store.keys("acct-a");
        let mut cmd = redis::cmd("DEL");
        for k in keys.own() {
            cmd.arg(k);
        }
        let mut conn = conn.clone();
        async move {
            let _: i64 = cmd.query_async(&mut conn).await.unwrap();
        }
    };
    evict(&mut conn).await;
    // Without a loader, the account is simply unknown.
    assert_eq!(
        env.store().get_balance("acct-a").await.unwrap_err(),
        Error::AccountNotFound
    );
    env.store
        .set_loader(Arc::new(creditd::ledger::rebuild::LedgerLoader {
            ledger: env.ledger.clone(),
            conn: conn.clone(),
            shards: SHARDS,
        }));
    assert_eq!(env.store().get_balance("acct-a").await.unwrap(), before);

    // Creating it again after an eviction is a replay of the ledger's account, not a new one.
    evict(&mut conn).await;
    let mut again = new_account("acct-a");
    again.plan_id = String::new();
    again.parent_id = "customer-1".into();
    again.overage_enabled = true;
    again.overage_cap = 5 * CREDIT;
    assert_eq!(env.store().create_account(again).await.unwrap(), account);
    assert_eq!(env.store().get_balance("acct-a").await.unwrap(), before);

    // Events the ledger has not booked yet: loading the older state would lose them, so the
    // account fails closed until the reconciler has booked them.
    env.store()
        .create_grant(new_grant(
            "acct-a",
            "unbooked",
            GrantKind::TopUp,
            3 * CREDIT,
        ))
        .await
        .unwrap();
    let newer = env.store().get_balance("acct-a").await.unwrap();
    evict(&mut conn).await;
    let e = env.store().get_balance("acct-a").await.unwrap_err();
    assert!(
        matches!(&e, Error::Unavailable(m) if m.contains("waiting for the reconciler")),
        "{e:?}"
    );
    env.drain().await;
    assert_eq!(env.store().get_balance("acct-a").await.unwrap(), newer);
    let before = newer;

    // An unknown account stays unknown; with the ledger down a missing account fails closed.
    assert_eq!(
        env.store().get_balance("nobody").await.unwrap_err(),
        Error::AccountNotFound
    );
    evict(&mut conn).await;
    tokio::task::block_in_place(|| env.pg.stop());
    assert!(matches!(
        env.store().get_balance("acct-a").await.unwrap_err(),
        Error::Unavailable(_)
    ));
    tokio::task::block_in_place(|| env.pg.restart());
    let balance = when_redis_is_back("the ledger back", || env.store().get_balance("acct-a")).await;
    assert_eq!(balance, before);
    assert_in_sync(&env).await;
}

#[tokio::test]
async fn an_account_fails_closed_while_it_is_rebuilt() {
    let env = LedgerEnv::start().await;
    workload::mixed(env.store(), "acct-a").await;
    env.drain().await;
    let mut conn = env.store.connection().await.unwrap();
    let keys = env.store.keys("acct-a");
    let seq = creditd::store::redis::restore::lock(&mut conn, &keys, false)
        .await
        .unwrap();
    assert!(seq.is_some());
    for result in [
        env.store()
            .reserve(new_reserve("acct-a", "during", CREDIT))
            .await
            .map(|_| ()),
        env.store().get_balance("acct-a").await.map(|_| ()),
        env.store()
            .create_account(new_account("acct-a"))
            .await
            .map(|_| ()),
    ] {
        assert!(matches!(result, Err(Error::Unavailable(_))), "{result:?}");
    }
    // A second rebuild does not take over a running one unless forced.
    assert!(
        creditd::store::redis::restore::lock(&mut conn, &keys, false)
            .await
            .is_err()
    );
    let opts = creditd::ledger::rebuild::Options {
        wait: Duration::from_secs(5),
        force: true,
    };
    creditd::ledger::rebuild::rebuild_account(&env.ledger, &mut conn, SHARDS, "acct-a", &opts)
        .await
        .unwrap();
    env.store()
        .reserve(new_reserve("acct-a", "after", CREDIT))
        .await
        .unwrap();
    env.drain().await;
    assert_in_sync(&env).await;
    let _ = T0;
}
