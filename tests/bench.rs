//! `creditd bench` end to end: a private redis-server, a real `creditd serve` on it, and the real
//! binary running each scenario through the server and then straight on Redis. Asserts the
//! report's shape and that every credit was conserved; never a timing (those are in
//! BENCHMARKS.md).

mod common;

use common::creditd::CreditdServer;
use common::redis_server::RedisServer;

const SHARDS: &str = "8";

async fn bench(server: &CreditdServer, redis: &RedisServer, scenario: &str) -> serde_json::Value {
    bench_with(server, redis, scenario, &[]).await
}

async fn bench_with(
    server: &CreditdServer,
    redis: &RedisServer,
    scenario: &str,
    extra: &[&str],
) -> serde_json::Value {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_creditd"))
        .arg("bench")
        .args(["--target", &format!("127.0.0.1:{}", server.grpc_port)])
        .args(["--redis-url", &redis.url()])
        .args(["--scenario", scenario])
        .args(["--concurrency", "4", "--duration", "2", "--warmup", "0.2"])
        .args(["--accounts", "8", "--shards", SHARDS])
        .args(["--baseline-redis", "--json"])
        .args(extra)
        .env_remove("CREDITD_TOKEN")
        .output()
        .await
        .expect("run creditd bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "creditd bench {scenario} failed: {}\n{stdout}\n{stderr}\n{}",
        output.status,
        server.logs()
    );
    let last = stdout.lines().last().expect("a last line");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("not JSON ({e}): {last}\n{stderr}"))
}

fn check(report: &serde_json::Value, scenario: &str) {
    let num = |k: &str| {
        report[k]
            .as_f64()
            .unwrap_or_else(|| panic!("{k} missing in {report}"))
    };
    assert_eq!(report["scenario"], scenario);
    assert_eq!(report["concurrency"], 4);
    assert_eq!(num("duration_s"), 2.0);
    assert!(num("ops_per_s") > 0.0, "{report}");
    for k in [
        "p50_us",
        "p90_us",
        "p99_us",
        "p999_us",
        "client_cpu_s",
        "baseline_p50_us",
        "baseline_p99_us",
    ] {
        num(k);
    }
    assert!(num("p50_us") <= num("p99_us") && num("p99_us") <= num("p999_us"));
    assert_eq!(report["errors"], 0, "{report}");
    assert!(report["errors_by_status"].is_object(), "{report}");
    assert_eq!(report["conserved"], true, "{report}");
    assert!(num("baseline_ops_per_s") > 0.0, "{report}");
    assert!(num("ratio") > 0.0, "{report}");
    let spent = report["server"]["conservation"]["spent_micros"]
        .as_i64()
        .expect("spent");
    match scenario {
        // Every op charged exactly the commit amount (warm-up ops included, so at least ops×1).
        "reserve-commit" => assert!(
            spent >= report["ops"].as_i64().expect("ops") * 1_000_000,
            "{report}"
        ),
        _ => assert_eq!(spent, 0, "{report}"),
    }
    assert_eq!(report["server"]["conservation"]["held_micros"], 0);
    // What Redis counted: one script per call, plus the server's reaper now and then.
    let per_rpc = num("redis_scripts_per_rpc");
    assert!((1.0..1.5).contains(&per_rpc), "{report}");
    assert!(num("redis_clients") >= 1.0, "{report}");
    let per_call = num("baseline_redis_scripts_per_call");
    assert!((1.0..1.5).contains(&per_call), "{report}");
}

#[tokio::test]
async fn every_scenario_runs_through_the_server_and_straight_on_redis() {
    let redis = RedisServer::start();
    let server = CreditdServer::start(Some(&redis.url()), &["--shards", SHARDS]).await;
    for scenario in ["reserve-commit", "reserve-release", "quote"] {
        let report = bench(&server, &redis, scenario).await;
        check(&report, scenario);
    }
}

#[tokio::test]
async fn scale_flags_spread_the_grant_and_keep_outstanding_holds() {
    let redis = RedisServer::start();
    let server = CreditdServer::start(Some(&redis.url()), &["--shards", SHARDS]).await;
    let report = bench_with(
        &server,
        &redis,
        "reserve-commit",
        &["--grants", "5", "--holds", "40"],
    )
    .await;
    assert_eq!(
        (report["grants"].as_u64(), report["holds"].as_u64()),
        (Some(5), Some(40))
    );
    assert_eq!(report["conserved"], true, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    // The outstanding holds (1 micro-credit each) are still held when the load ends, in both
    // phases; the grants together are still the one bench grant's amount.
    for phase in ["server", "baseline"] {
        let c = &report[phase]["conservation"];
        assert_eq!(c["held_micros"], 40, "{report}");
        assert_eq!(c["granted_micros"], 8 * (1_i64 << 52), "{report}");
    }
}

#[tokio::test]
async fn an_unreachable_server_is_an_error_not_a_report() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_creditd"))
        .args(["bench", "--target", "127.0.0.1:1", "--duration", "1"])
        .output()
        .await
        .expect("run creditd bench");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot connect"), "{stderr}");
}

#[tokio::test]
async fn bench_memory_measures_bytes_per_account_and_per_reservation() {
    let redis = RedisServer::start();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_creditd"))
        .args(["bench-memory", "--redis-url", &redis.url()])
        .args(["--accounts", "20", "--reservations", "50", "--json"])
        .output()
        .expect("creditd bench-memory");
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a JSON line")).expect("JSON");
    let bytes = |k: &str| {
        report[k]
            .as_f64()
            .unwrap_or_else(|| panic!("{k} in {report}"))
    };
    // Each figure is a real measurement: positive, and the parts add up to the whole.
    assert!(bytes("account_record_bytes") > 0.0 && bytes("grants_hash_bytes") > 0.0);
    assert!(
        bytes("bytes_per_idle_account")
            >= bytes("account_record_bytes") + bytes("grants_hash_bytes")
    );
    assert!(bytes("bytes_per_resolved_reservation") > 0.0);
    assert!(bytes("stream_bytes_per_entry") > 0.0);
    assert_eq!(report["accounts"], 20);
}
