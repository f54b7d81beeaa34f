//! The private PostgreSQL harness itself: start, query, fast stop and restart, SIGKILL and
//! restart (crash recovery), and two servers side by side.

mod common;

use std::time::{Duration, Instant};

use common::postgres::PostgresServer;
use tokio_postgres::NoTls;

/// Every `n` of table `t`, in order.
async fn rows(client: &tokio_postgres::Client) -> Vec<i64> {
    client
        .query("SELECT n FROM t ORDER BY n", &[])
        .await
        .expect("select")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// True when something accepts TCP connections on `port`.
fn accepts(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

#[tokio::test]
async fn rows_survive_stop_and_restart() {
    let started = Instant::now();
    let mut pg = PostgresServer::start();
    eprintln!(
        "postgres started in {:?} on {}",
        started.elapsed(),
        pg.url()
    );
    assert!(pg.url().ends_with(&format!(":{}/creditd", pg.port())));
    assert_ne!(pg.port(), 5432);

    let (client, conn) = tokio_postgres::connect(&pg.url(), NoTls)
        .await
        .expect("connect");
    let conn = tokio::spawn(conn);
    let db: String = client
        .query_one("SELECT current_database()", &[])
        .await
        .expect("current_database")
        .get(0);
    assert_eq!(db, "creditd");
    client
        .batch_execute("CREATE TABLE t (n bigint PRIMARY KEY); INSERT INTO t VALUES (1), (2)")
        .await
        .expect("create and insert");
    assert_eq!(rows(&client).await, [1, 2]);

    let port = pg.port();
    let stopped = Instant::now();
    pg.stop();
    eprintln!("postgres stopped in {:?}", stopped.elapsed());
    assert!(!pg.is_running());
    assert!(!accepts(port), "port {port} still open after stop");
    // The server closed our connection.
    assert!(client.query("SELECT 1", &[]).await.is_err());
    let _ = conn.await;

    let restarted = Instant::now();
    pg.restart();
    eprintln!("postgres restarted in {:?}", restarted.elapsed());
    assert!(pg.is_running());
    assert_eq!(pg.port(), port);
    let client = pg.connect().await;
    assert_eq!(rows(&client).await, [1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_then_restart_recovers_committed_rows_only() {
    let mut pg = PostgresServer::start();
    let client = pg.connect().await;
    client
        .batch_execute("CREATE TABLE t (n bigint PRIMARY KEY); INSERT INTO t VALUES (1)")
        .await
        .expect("create and insert");
    // Committed just before the kill: must survive it.
    client
        .execute("INSERT INTO t VALUES (2)", &[])
        .await
        .expect("insert 2");
    // Still open at the kill: must not.
    let mut other = pg.connect().await;
    let tx = other.transaction().await.expect("begin");
    tx.execute("INSERT INTO t VALUES (3)", &[])
        .await
        .expect("insert 3");

    let port = pg.port();
    let killed = Instant::now();
    pg.kill();
    eprintln!("postgres killed in {:?}", killed.elapsed());
    assert!(!pg.is_running());
    assert!(!accepts(port), "port {port} still open after kill");
    // No backend survived the postmaster: the open transaction cannot commit.
    assert!(tx.commit().await.is_err());
    assert!(client.query("SELECT 1", &[]).await.is_err());

    let restarted = Instant::now();
    pg.restart();
    eprintln!("postgres recovered in {:?}", restarted.elapsed());
    assert!(pg.is_running());
    assert_eq!(pg.port(), port);
    let client = pg.connect().await;
    assert_eq!(rows(&client).await, [1, 2]);
    client
        .execute("INSERT INTO t VALUES (3)", &[])
        .await
        .expect("insert after recovery");
    assert_eq!(rows(&client).await, [1, 2, 3]);

    // Killing and restarting again works as well, and restart on a running server is a
    // fast stop and start.
    pg.kill();
    pg.restart();
    pg.restart();
    assert_eq!(rows(&pg.connect().await).await, [1, 2, 3]);
    assert!(pg.log().contains("database system was interrupted"));
}

/// Plain sync test: the harness needs no runtime of its own.
#[test]
fn two_servers_are_independent() {
    let mut a = PostgresServer::start();
    let b = PostgresServer::start();
    assert_ne!(a.port(), b.port());
    assert_ne!(a.url(), b.url());

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let ca = a.connect().await;
        let cb = b.connect().await;
        ca.batch_execute("CREATE TABLE t (n bigint); INSERT INTO t VALUES (7)")
            .await
            .expect("create on a");
        assert_eq!(rows(&ca).await, [7]);
        // The table exists only on `a`.
        assert!(cb.query("SELECT n FROM t", &[]).await.is_err());
    });

    a.stop();
    assert!(!a.is_running());
    assert!(accepts(b.port()), "stopping a must not stop b");
}
