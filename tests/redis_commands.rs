//! What the hot path costs Redis, counted by Redis itself: every Reserve, Commit and Release is
//! exactly one command from creditd (an FCALL of its function; counted by `INFO commandstats`, and
//! by `MONITOR`, which tells a client's commands from those a script runs inside Redis), and all
//! the in-flight calls of 64 concurrent callers share at most 2 connections (`CLIENT LIST`).
//! A Redis that loses the function library (a restart without persistence, `FUNCTION FLUSH`)
//! gets it back from the first call that misses it, and no call fails or counts twice.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::creditd::CreditdServer;
use common::grpc::*;
use common::redis_server::RedisServer;
use common::CREDIT;
use creditd::proto;

/// `cmdstat_<name>` → calls, from `INFO commandstats`.
async fn command_calls(conn: &mut redis::aio::MultiplexedConnection) -> BTreeMap<String, u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest.split(',').find_map(|kv| kv.strip_prefix("calls="))?;
            Some((name.to_string(), calls.parse().ok()?))
        })
        .collect()
}

/// Connections to Redis other than ours (the test's own connection is named).
async fn creditd_connections(conn: &mut redis::aio::MultiplexedConnection) -> usize {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(conn)
        .await
        .unwrap();
    list.lines()
        .filter(|l| !l.contains("name=test-probe"))
        .count()
}

/// Counts, per command name, what clients (not scripts) send while it runs: a `MONITOR`
/// connection read on its own thread until `stop`.
fn monitor(port: u16, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<BTreeMap<String, u64>> {
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.write_all(b"CLIENT SETNAME test-probe\r\nMONITOR\r\n")
        .unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_millis(100)))
        .unwrap();
    let mut reader = BufReader::new(conn);
    for _ in 0..2 {
        let mut ok = String::new();
        reader.read_line(&mut ok).unwrap();
        assert!(ok.starts_with("+OK"), "{ok}");
    }
    std::thread::spawn(move || {
        let mut counts = BTreeMap::new();
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) => break,
                Ok(_) => {
                    // +1700000000.123456 [0 127.0.0.1:5555] "fcall" ...   or   [0 lua] "GET" ...
                    let Some((source, rest)) = line.split_once("] ") else {
                        continue;
                    };
                    if source.ends_with(" lua") {
                        continue;
                    }
                    let name = rest.split('"').nth(1).unwrap_or("").to_lowercase();
                    *counts.entry(name).or_insert(0) += 1;
                }
                Err(_) if stop.load(Ordering::Relaxed) => break,
                Err(_) => {}
            }
        }
        counts
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_hot_path_call_is_one_redis_command_over_at_most_two_connections() {
    let redis = RedisServer::start();
    // No reaper passes during the count (its script would add commands of its own).
    let server = CreditdServer::start(Some(&redis.url()), &["--reap-interval-ms", "60000"]).await;
    let client = redis::Client::open(redis.url()).unwrap();
    let mut probe = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg("test-probe")
        .query_async(&mut probe)
        .await
        .unwrap();

    let mut admin = server.admin().await;
    admin
        .create_account(account_req("cmds", false, 0))
        .await
        .unwrap();
    admin
        .create_grant(grant_req(
            "cmds",
            "g",
            proto::GrantKind::Prepaid,
            1_000_000 * CREDIT,
        ))
        .await
        .unwrap();
    let credits = server.credits().await;
    // Warm up: the function library is loaded once ("Function not found", FUNCTION LOAD).
    let mut c = credits.clone();
    c.reserve(reserve_req("cmds", "warm", CREDIT))
        .await
        .unwrap();
    c.commit(commit_req("cmds", "warm", CREDIT)).await.unwrap();
    c.reserve(reserve_req("cmds", "warm-r", CREDIT))
        .await
        .unwrap();
    c.release(release_req("cmds", "warm-r")).await.unwrap();

    let before = command_calls(&mut probe).await;
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = monitor(redis.port(), stop.clone());
    let callers = 64;
    let per_caller = 20;
    let mut tasks = Vec::new();
    for t in 0..callers {
        let mut c = credits.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_caller {
                let id = format!("t{t}-{i}");
                c.reserve(reserve_req("cmds", &id, CREDIT)).await.unwrap();
                if i % 2 == 0 {
                    c.commit(commit_req("cmds", &id, CREDIT)).await.unwrap();
                } else {
                    c.release(release_req("cmds", &id)).await.unwrap();
                }
            }
        }));
    }
    let mut peak = 0;
    while tasks.iter().any(|t| !t.is_finished()) {
        peak = peak.max(creditd_connections(&mut probe).await);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for t in tasks {
        t.await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let sent = watcher.join().unwrap();
    let after = command_calls(&mut probe).await;

    let calls = (callers * per_caller * 2) as u64;
    let delta = |name: &str| after.get(name).unwrap_or(&0) - before.get(name).unwrap_or(&0);
    assert_eq!(delta("fcall"), calls, "one FCALL per call");
    assert_eq!(sent.get("fcall"), Some(&calls), "{sent:?}");
    // Nothing else was sent for the calls: only health pings, and this test's own probes.
    for (name, n) in &sent {
        assert!(
            ["fcall", "ping", "info", "client"].contains(&name.as_str()),
            "{name} was sent {n} times during the calls: {sent:?}"
        );
    }
    assert!(
        (1..=2).contains(&peak),
        "{peak} connections carried the calls"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_lost_the_function_library_gets_it_back_and_no_call_fails() {
    use creditd::store::redis::RedisStore;
    use creditd::store::{ClockMode, Store};
    let redis = RedisServer::start();
    let store = Arc::new(
        RedisStore::new(&redis.url(), 4, ClockMode::Manual(common::T0))
            .await
            .unwrap(),
    );
    let client = redis::Client::open(redis.url()).unwrap();
    let mut probe = client.get_multiplexed_async_connection().await.unwrap();
    let libraries = |mut conn: redis::aio::MultiplexedConnection| async move {
        let list: redis::Value = redis::cmd("FUNCTION")
            .arg("LIST")
            .query_async(&mut conn)
            .await
            .unwrap();
        format!("{list:?}").matches("creditd_").count() > 0
    };
    assert!(
        !libraries(probe.clone()).await,
        "nothing loaded before the first call"
    );
    let account = common::requests::new_account("lib");
    store.create_account(account).await.unwrap();
    let grant = common::requests::new_grant(
        "lib",
        "g",
        creditd::model::GrantKind::Prepaid,
        1_000 * CREDIT,
    );
    store.create_grant(grant).await.unwrap();
    assert!(libraries(probe.clone()).await);

    for round in 0..3 {
        let _: () = redis::cmd("FUNCTION")
            .arg("FLUSH")
            .query_async(&mut probe)
            .await
            .unwrap();
        // 32 calls at once against a Redis without the library: each that misses it loads it
        // (a second load of the same library is not an error) and is made once more.
        let calls = (0..32).map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let id = format!("r{round}-{i}");
                let r = common::requests::new_reserve("lib", &id, CREDIT);
                store.reserve(r).await.unwrap();
                store
                    .commit(common::requests::new_commit("lib", &id, CREDIT / 2))
                    .await
                    .unwrap()
            })
        });
        for call in futures::future::join_all(calls).await {
            let effect = call.unwrap();
            assert!(!effect.replayed);
        }
        assert!(libraries(probe.clone()).await);
    }
    let b = store.get_balance("lib").await.unwrap();
    assert_eq!(b.held, 0);
    assert_eq!(
        b.available,
        1_000 * CREDIT - 3 * 32 * CREDIT / 2,
        "each commit charged once"
    );
    let grants = store.list_grants("lib").await.unwrap();
    assert_eq!(grants[0].spent, 3 * 32 * CREDIT / 2);
}
