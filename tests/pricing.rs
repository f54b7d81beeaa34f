//! The rate card in a running server: `GetRateCard` over gRPC with the example card, reloads of
//! a changed and of a broken file, the answer without a card, and the `creditd serve` binary:
//! a bad file stops start-up, SIGHUP reloads.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;
use tonic_types::StatusExt;

use creditd::pricing::RateCardFile;
use creditd::proto::credit_admin_client::CreditAdminClient;
use creditd::proto::{self, GetRateCardRequest};
use creditd::server::{RunningServer, ServerOptions};
use creditd::store::memory::MemoryStore;
use creditd::store::ClockMode;

const EXAMPLE: &str = include_str!("../examples/pricing.yaml");

async fn start(
    opts: ServerOptions,
) -> (RunningServer, CreditAdminClient<tonic::transport::Channel>) {
    let store = Arc::new(MemoryStore::new(ClockMode::System));
    let server = RunningServer::start(store, opts).await.expect("start");
    let client = CreditAdminClient::connect(server.grpc_url())
        .await
        .expect("connect");
    (server, client)
}

async fn rate_card(client: &mut CreditAdminClient<tonic::transport::Channel>) -> proto::RateCard {
    client
        .get_rate_card(GetRateCardRequest {})
        .await
        .expect("GetRateCard")
        .into_inner()
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    conn.write_all(req.as_bytes()).await.expect("write");
    let mut raw = String::new();
    conn.read_to_string(&mut raw).await.expect("read");
    raw
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write the card");
}

#[tokio::test]
async fn get_rate_card_serves_the_card_and_follows_reloads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pricing.yaml");
    write(&path, EXAMPLE);
    let file = RateCardFile::load(&path).expect("the example loads");
    let opts = ServerOptions {
        rate_card: file.cell(),
        ..ServerOptions::default()
    };
    let (server, mut client) = start(opts).await;

    let card = rate_card(&mut client).await;
    assert_eq!(card.version, "2025-06-01");
    assert_eq!(card.currency, "USD");
    assert_eq!(card.top_up_increment_micros, 10_000_000);
    assert_eq!(card.skus.len(), 9);
    let row = &card.skus[0];
    assert_eq!(
        (
            row.sku.as_str(),
            row.unit.as_str(),
            row.price_micros,
            row.free_quantity
        ),
        ("grid.row", "row", 1_000_000, 10)
    );
    assert_eq!(
        (
            row.price.as_str(),
            row.price_micros_numerator,
            row.price_micros_denominator
        ),
        ("1", 1_000_000, 1)
    );
    assert_eq!(
        row.multipliers.get("premium").map(String::as_str),
        Some("2.5")
    );
    assert!(row.description.contains("Grid"));
    let text = card
        .skus
        .iter()
        .find(|s| s.sku == "text.tokens_1k")
        .expect("text");
    assert_eq!((text.price_micros, text.price.as_str()), (200_000, "0.2"));
    let chat = card
        .skus
        .iter()
        .find(|s| s.sku == "chat.message")
        .expect("chat");
    assert_eq!(chat.price_micros, 0);
    let plans: Vec<(&str, i64, &str)> = card
        .plans
        .iter()
        .map(|p| {
            (
                p.plan_id.as_str(),
                p.allowance_micros,
                p.monthly_price.as_str(),
            )
        })
        .collect();
    assert_eq!(
        plans,
        [
            ("creator", 1_000_000_000, "12"),
            ("pro", 5_000_000_000, "45"),
            ("atelier", 25_000_000_000, "180"),
        ]
    );

    // A changed file: a new version with a sub-micro price, swapped in by reload.
    let changed = EXAMPLE
        .replace("version: \"2025-06-01\"", "version: \"2025-07-01\"")
        .replace("price: \"0.2\"", "price: \"0.0000002\"")
        .replace("unit: 1k_tokens", "unit: token");
    write(&path, &changed);
    let active = file.reload().expect("reload");
    assert_eq!(active.version(), "2025-07-01");
    let card = rate_card(&mut client).await;
    assert_eq!(card.version, "2025-07-01");
    let text = card
        .skus
        .iter()
        .find(|s| s.sku == "text.tokens_1k")
        .expect("text");
    assert_eq!(
        (
            text.unit.as_str(),
            text.price.as_str(),
            text.price_micros,
            text.price_micros_numerator,
            text.price_micros_denominator
        ),
        ("token", "0.0000002", 0, 2, 10)
    );

    // A broken file: the error names the field and the active card does not change.
    write(&path, &changed.replace("price: \"50\"", "price: \"5O\""));
    let err = file.reload().expect_err("broken file");
    assert_eq!(err.error.field, "skus[4].price");
    assert!(
        err.to_string()
            .contains("pricing.yaml: skus[4].price: \"5O\" is not a decimal number of credits"),
        "{err}"
    );
    assert_eq!(rate_card(&mut client).await.version, "2025-07-01");

    let metrics = http_get(server.http_addr, "/metrics").await;
    assert!(
        metrics.contains("creditd_rate_card_reload_errors_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"creditd_rate_card_info{version="2025-07-01"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"creditd_rate_card_info{version="2025-06-01"} 0"#),
        "{metrics}"
    );

    server.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn without_a_card_get_rate_card_is_a_failed_precondition() {
    let (server, mut client) = start(ServerOptions::default()).await;
    let status = client
        .get_rate_card(GetRateCardRequest {})
        .await
        .expect_err("no card");
    assert_eq!(status.code(), Code::FailedPrecondition);
    let info = status.get_details_error_info().expect("ErrorInfo");
    assert_eq!(
        (info.reason.as_str(), info.domain.as_str()),
        ("RATE_CARD_NOT_CONFIGURED", "creditd")
    );
    server.shutdown().await.expect("shutdown");
}

// ---- the binary ---------------------------------------------------------------------------

fn creditd() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_creditd"))
}

fn serve_args(pricing: &Path) -> Vec<String> {
    [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
        "--log-format",
        "json",
        "--pricing",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([pricing.display().to_string()])
    .collect()
}

#[test]
fn serve_refuses_to_start_with_a_bad_card_naming_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pricing.yaml");
    write(
        &path,
        &EXAMPLE.replace("    price: \"1\"\n", "    price: \"1.2.3\"\n"),
    );
    let out = creditd()
        .args(serve_args(&path))
        .env_remove("CREDITD_REDIS_URL")
        .output()
        .expect("run creditd");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("skus[0].price: \"1.2.3\" is not a decimal number of credits"),
        "{stderr}"
    );
}

/// Kills the child when the test ends, whatever happens.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(unix)]
#[tokio::test]
async fn sighup_reloads_the_card_of_a_running_server() {
    use std::io::BufRead;

    let dir = tempfile::tempdir().expect("tempdir");
    let path: PathBuf = dir.path().join("pricing.yaml");
    write(&path, EXAMPLE);
    let mut child = Child(
        creditd()
            .args(serve_args(&path))
            .env_remove("CREDITD_REDIS_URL")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn creditd"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let grpc = loop {
        let line = lines_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("creditd logs its listen line");
        if let Some(rest) = line.split("grpc=").nth(1) {
            break rest
                .split_whitespace()
                .next()
                .expect("address")
                .trim_end_matches('"')
                .to_string();
        }
    };
    let mut client = CreditAdminClient::connect(format!("http://{grpc}"))
        .await
        .expect("connect");
    assert_eq!(rate_card(&mut client).await.version, "2025-06-01");

    write(
        &path,
        &EXAMPLE.replace("version: \"2025-06-01\"", "version: \"2025-08-01\""),
    );
    let hup = |pid: u32| {
        let ok = std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .expect("kill -HUP")
            .success();
        assert!(ok, "kill -HUP");
    };
    hup(child.0.id());
    let mut version = String::new();
    for _ in 0..100 {
        version = rate_card(&mut client).await.version;
        if version == "2025-08-01" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(version, "2025-08-01");

    // A broken file on SIGHUP: the server keeps the card and keeps running.
    write(&path, "version: \"2025-09-01\"\nskus: [");
    hup(child.0.id());
    let mut logged = false;
    while let Ok(line) = lines_rx.recv_timeout(Duration::from_secs(10)) {
        if line.contains("NOT reloaded") {
            logged = true;
            break;
        }
    }
    assert!(logged, "the failed reload is logged");
    assert_eq!(rate_card(&mut client).await.version, "2025-08-01");
    assert!(
        child.0.try_wait().expect("try_wait").is_none(),
        "still running"
    );
}
