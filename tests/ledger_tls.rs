//! The ledger over TLS: a private PostgreSQL with a certificate from a CA made by the test.
//! `sslmode=verify-full&sslrootcert=CA` connects over TLS (the server's `pg_stat_ssl` says so);
//! without the CA the certificate is refused; without `sslmode` the connection is plaintext.

mod common;

use common::certs::Ca;
use common::postgres::PostgresServer;
use creditd::ledger::Ledger;

async fn ssl_in_use(ledger: &Ledger) -> bool {
    ledger
        .client()
        .await
        .expect("connect")
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_connects_over_verified_tls_when_the_url_asks() {
    let mut pg = tokio::task::block_in_place(PostgresServer::start);
    let ca = Ca::new("creditd test CA");
    let leaf = ca.sign(&["localhost"]);
    tokio::task::block_in_place(|| pg.enable_tls(&leaf.cert_pem, &leaf.key_pem));
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let base = format!("postgres://creditd@localhost:{}/creditd", pg.port());

    let tls = Ledger::connect(
        &format!(
            "{base}?sslmode=verify-full&sslrootcert={}",
            ca_file.display()
        ),
        1,
    )
    .unwrap();
    tls.migrate().await.expect("migrate over TLS");
    assert!(ssl_in_use(&tls).await);

    // The system's roots do not know the test CA: the certificate is refused.
    let untrusted = Ledger::connect(&format!("{base}?sslmode=require"), 1).unwrap();
    let Err(err) = untrusted.client().await else {
        panic!("a certificate from an unknown CA was accepted");
    };
    assert!(
        format!("{err:#}").to_lowercase().contains("certificate"),
        "{err:#}"
    );

    let plain = Ledger::connect(&base, 1).unwrap();
    assert!(!ssl_in_use(&plain).await);

    // A missing CA file is a clear error at start.
    let missing = Ledger::connect(
        &format!("{base}?sslmode=require&sslrootcert=/nonexistent.pem"),
        1,
    );
    assert!(format!("{:#}", missing.err().unwrap()).contains("sslrootcert"));
}
