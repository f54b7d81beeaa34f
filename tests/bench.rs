//! `creditd bench` end to end: a private redis-server, a real `creditd serve` on it, and the real
//! binary running each scenario through the server and then straight on Redis. Asserts the
//! report's shape and that every credit was conserved; never a timing (those are in
//! BENCHMARKS.md).

mod common;

use common::creditd::CreditdServer;
use common::redis_server::RedisServer;

const SHARDS: &str = "8";

/// A private redis-server and a `creditd serve` on it, with any extra serve flags.
async fn servers(extra: &[&str]) -> (RedisServer, CreditdServer) {
    let redis = RedisServer::start();
    let args: Vec<&str> = ["--shards", SHARDS].iter().chain(extra).copied().collect();
    let server = CreditdServer::start(Some(&redis.url()), &args).await;
    (redis, server)
}

async fn bench(server: &CreditdServer, redis: &RedisServer, scenario: &str) -> serde_json::Value {
    bench_with(server, redis, scenario, &[]).await
}

async fn bench_with(
    server: &CreditdServer,
    redis: &RedisServer,
    scenario: &str,
    extra: &[&str],
) -> serde_json::Value {
    // The defaults, unless `extra` sets the same flag.
    let defaults = [
        ("--concurrency", "4"),
        ("--duration", "2"),
        ("--warmup", "0.2"),
        ("--accounts", "8"),
    ];
    let defaults = defaults
        .iter()
        .filter(|(flag, _)| !extra.contains(flag))
        .flat_map(|(flag, value)| [*flag, *value]);
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_creditd"))
        .arg("bench")
        .args(["--target", &server.url()])
        .args(["--redis-url", &redis.url()])
        .args(["--scenario", scenario, "--shards", SHARDS])
        .args(defaults)
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
    assert!(report["transport"].is_string(), "{report}");
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
    // And the time it spent in them: a script runs tens of µs, never nothing (or a whole second).
    let us = num("redis_us_per_script");
    assert!(us > 1.0 && us < 1e6, "{report}");
    assert_eq!(
        report["server"]["redis"]["script_us_per_call"], us,
        "{report}"
    );
    // The server's one multiplexed connection carries every call (the goal: at most 2).
    assert!((1.0..=2.0).contains(&num("redis_clients")), "{report}");
    // The machine's wake-up round trip, taken before the load.
    assert!(num("wake_rtt_p50_us") > 0.0, "{report}");
    assert!(num("wake_rtt_p99_us") >= num("wake_rtt_p50_us"), "{report}");
    let per_call = num("baseline_redis_scripts_per_call");
    assert!((1.0..1.5).contains(&per_call), "{report}");
    check_calls(report, scenario);
}

/// The per-call figures: one or two calls per op, timed one by one, and the rounds.
fn check_calls(report: &serde_json::Value, scenario: &str) {
    let calls_per_op = if scenario == "quote" { 1 } else { 2 };
    for phase in ["server", "baseline"] {
        let p = &report[phase];
        let n = |k: &str| {
            p[k].as_u64()
                .unwrap_or_else(|| panic!("{phase}.{k} in {report}"))
        };
        assert_eq!(n("calls"), calls_per_op * n("ops"), "{phase}: {report}");
        assert!(
            n("rpc_p50_us") >= 1 && n("rpc_p50_us") <= n("rpc_p99_us"),
            "{report}"
        );
        // An op is its calls back to back: its median is no shorter than one call's.
        assert!(n("p50_us") >= n("rpc_p50_us"), "{phase}: {report}");
    }
    let overhead = report["rpc_overhead_p50_us"].as_i64().expect("overhead");
    assert_eq!(
        overhead,
        report["rpc_p50_us"].as_i64().unwrap() - report["baseline_rpc_p50_us"].as_i64().unwrap()
    );
    // Five rounds by default, server then baseline in turn, each with its ratio.
    assert_eq!(report["rounds"], 5, "{report}");
    let ratios = report["round_ratios"].as_array().expect("round ratios");
    assert_eq!(ratios.len(), 5, "{report}");
    assert!(ratios.iter().all(|r| r.as_f64().unwrap() > 0.0), "{report}");
    assert_eq!(report["client_threads"], 1, "{report}");
}

#[tokio::test]
async fn every_scenario_runs_through_the_server_and_straight_on_redis() {
    let (redis, server) = servers(&[]).await;
    for scenario in ["reserve-commit", "reserve-release", "quote"] {
        let report = bench(&server, &redis, scenario).await;
        check(&report, scenario);
    }
}

#[tokio::test]
async fn scale_flags_spread_the_grant_and_keep_outstanding_holds() {
    let (redis, server) = servers(&[]).await;
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
async fn the_open_loop_starts_every_due_op_and_measures_how_late() {
    let (redis, server) = servers(&[]).await;
    // 200 ops/s over 2 s cut into 2 rounds: 400 ops are due in each phase.
    let report = bench_with(
        &server,
        &redis,
        "reserve-commit",
        &["--rate", "200", "--rounds", "2", "--concurrency", "64"],
    )
    .await;
    assert_eq!(report["mode"], "open", "{report}");
    assert_eq!(report["round_ratios"].as_array().map(Vec::len), Some(2));
    for phase in ["server", "baseline"] {
        let p = &report[phase];
        let dropped = p["errors_by_status"]["DROPPED"].as_u64().unwrap_or(0);
        let failed = p["errors"].as_u64().expect("errors");
        assert_eq!(failed, dropped, "only drops may fail: {report}");
        assert_eq!(
            p["ops"].as_u64().unwrap() + dropped,
            400,
            "{phase}: {report}"
        );
        let lag = |k: &str| {
            p[k].as_u64()
                .unwrap_or_else(|| panic!("{phase}.{k}: {report}"))
        };
        assert!(
            lag("start_lag_p50_us") <= lag("start_lag_p99_us"),
            "{report}"
        );
        // Latency counts from the intended start, so it includes how late the op began.
        assert!(
            p["max_us"].as_u64().unwrap() >= lag("start_lag_p50_us"),
            "{report}"
        );
    }
    assert_eq!(report["conserved"], true, "{report}");
}

#[tokio::test]
async fn the_bench_runs_on_tonics_channel_too() {
    let (redis, server) = servers(&[]).await;
    let report = bench_with(
        &server,
        &redis,
        "reserve-commit",
        &["--transport", "channel"],
    )
    .await;
    assert_eq!(report["transport"], "channel", "{report}");
    check(&report, "reserve-commit");
}

#[tokio::test]
async fn a_server_on_a_connection_pool_keeps_every_credit() {
    let (redis, server) = servers(&["--redis-pool-size", "3"]).await;
    let report = bench_with(
        &server,
        &redis,
        "reserve-commit",
        &["--concurrency", "8", "--baseline-pool-size", "3"],
    )
    .await;
    assert_eq!(report["errors"], 0, "{report}");
    assert_eq!(report["conserved"], true, "{report}");
    check_calls(&report, "reserve-commit");
    assert_eq!(report["baseline_pool_size"], 3, "{report}");
    // Eight callers share the pool's three connections (made on demand), beside the one
    // multiplexed connection the reaper and the health pings use.
    let clients = report["redis_clients"].as_u64().expect("clients");
    assert!((2..=4).contains(&clients), "{report}");
}

#[tokio::test]
async fn a_server_on_a_unix_socket_serves_the_bench() {
    let redis = RedisServer::start();
    let server =
        CreditdServer::start_on_unix_socket(Some(&redis.url()), &["--shards", SHARDS]).await;
    assert!(server.url().starts_with("unix:/"), "{}", server.url());
    let report = bench(&server, &redis, "reserve-commit").await;
    check(&report, "reserve-commit");
    check_calls(&report, "reserve-commit");
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

/// The bench's two HTTP/2 transports under the same tonic client: the same answers, and the
/// same typed errors (a status sent in the trailers, or alone in the headers).
#[tokio::test]
async fn both_transports_give_the_same_answers_and_typed_errors() {
    use creditd::bench::args::TransportKind;
    use creditd::bench::transport::Transport;
    use creditd::proto::credit_admin_client::CreditAdminClient;
    use creditd::proto::credits_client::CreditsClient;
    use creditd::proto::{
        CreateAccountRequest, CreateGrantRequest, Decision, GetBalanceRequest, GrantKind,
        ReserveRequest,
    };
    use std::time::Duration;
    use tonic_types::StatusExt;

    let (_redis, server) = servers(&[]).await;
    let origin = || http::Uri::from_static("http://localhost");
    for (n, kind) in [TransportKind::H2, TransportKind::Channel]
        .into_iter()
        .enumerate()
    {
        let transport = Transport::connect(
            kind,
            &server.url(),
            Duration::from_secs(5),
            Duration::from_secs(10),
        )
        .await
        .expect("connect");
        let mut admin = CreditAdminClient::with_origin(transport.clone(), origin());
        let mut credits = CreditsClient::with_origin(transport, origin());
        let account = format!("transport-{n}");
        admin
            .create_account(CreateAccountRequest {
                account_id: account.clone(),
                ..Default::default()
            })
            .await
            .expect("create account");
        admin
            .create_grant(CreateGrantRequest {
                account_id: account.clone(),
                grant_id: "g".into(),
                kind: GrantKind::Prepaid as i32,
                amount_micros: 5_000_000,
                ..Default::default()
            })
            .await
            .expect("grant");
        let reserve = |id: &str, amount_micros: i64| ReserveRequest {
            account_id: account.clone(),
            reservation_id: id.into(),
            subject_id: "s".into(),
            amount_micros,
            ttl_seconds: 60,
            ..Default::default()
        };
        let answer = credits
            .reserve(reserve("r1", 2_000_000))
            .await
            .expect("reserve")
            .into_inner();
        assert_eq!(answer.decision, Decision::Granted as i32, "{kind:?}");
        let held = answer.reservation.expect("reservation").held_micros;
        assert_eq!(held, 2_000_000, "{kind:?}");
        assert_eq!(answer.balance.expect("balance").available_micros, 3_000_000);

        // Bad input: INVALID_ARGUMENT with its reason, whichever transport carried it.
        let bad = credits
            .reserve(reserve("r2", -1))
            .await
            .expect_err("a negative amount");
        assert_eq!(
            bad.code(),
            tonic::Code::InvalidArgument,
            "{kind:?}: {bad:?}"
        );
        let reason = bad
            .get_error_details()
            .error_info()
            .map(|i| i.reason.clone());
        assert!(reason.is_some_and(|r| !r.is_empty()), "{kind:?}: {bad:?}");

        // An unknown account: NOT_FOUND.
        let missing = credits
            .get_balance(GetBalanceRequest {
                account_id: format!("{account}-nobody"),
                ..Default::default()
            })
            .await
            .expect_err("no such account");
        assert_eq!(
            missing.code(),
            tonic::Code::NotFound,
            "{kind:?}: {missing:?}"
        );
    }
}
