//! TLS and mTLS end to end, with certificates made in the test by rcgen: a call over TLS works;
//! with mTLS a client without a certificate (or with one from another CA) is refused.

mod common;

use std::sync::Arc;

use common::certs::{Ca, Leaf};
use creditd::proto::credit_admin_client::CreditAdminClient;
use creditd::proto::{self};
use creditd::server::{RunningServer, ServerOptions, TlsSettings};
use creditd::store::memory::MemoryStore;
use creditd::store::ClockMode;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

async fn start(tls: TlsSettings) -> RunningServer {
    let store = Arc::new(MemoryStore::new(ClockMode::Manual(1_700_000_000_000)));
    let opts = ServerOptions {
        tls: Some(tls),
        ..ServerOptions::default()
    };
    RunningServer::start(store, opts)
        .await
        .expect("server starts")
}

fn server_tls(ca: &Ca, client_ca: Option<&Ca>) -> TlsSettings {
    let leaf = ca.sign(&["localhost"]);
    TlsSettings {
        cert_pem: leaf.cert_pem.into_bytes(),
        key_pem: leaf.key_pem.into_bytes(),
        client_ca_pem: client_ca.map(|c| c.pem().into_bytes()),
    }
}

/// Connects over TLS to `localhost` at the server's port, trusting `ca`, with an optional
/// client certificate; then makes one call (the account does not exist: NOT_FOUND is an answer).
async fn call(
    server: &RunningServer,
    ca: &Ca,
    client: Option<&Leaf>,
) -> Result<tonic::Code, String> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca.pem()))
        .domain_name("localhost");
    if let Some(leaf) = client {
        tls = tls.identity(Identity::from_pem(&leaf.cert_pem, &leaf.key_pem));
    }
    assert!(server.grpc_url().starts_with("https://"));
    let channel: Channel = Endpoint::from_shared(server.grpc_url())
        .expect("url")
        .tls_config(tls)
        .expect("tls config")
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    let answer = CreditAdminClient::new(channel)
        .get_account(proto::GetAccountRequest {
            account_id: "nobody".into(),
        })
        .await;
    match answer {
        Ok(_) => Ok(tonic::Code::Ok),
        Err(status) if status.code() == tonic::Code::NotFound => Ok(tonic::Code::NotFound),
        Err(status) => Err(format!("call: {status:?}")),
    }
}

#[tokio::test]
async fn a_call_over_tls_works_and_plaintext_does_not() {
    let ca = Ca::new("test CA");
    let server = start(server_tls(&ca, None)).await;
    assert_eq!(call(&server, &ca, None).await, Ok(tonic::Code::NotFound));

    let other = Ca::new("another CA");
    assert!(
        call(&server, &other, None).await.is_err(),
        "untrusted server certificate"
    );

    let plaintext = format!("http://{}", server.grpc_addr);
    let channel = Endpoint::from_shared(plaintext)
        .expect("url")
        .connect()
        .await;
    if let Ok(channel) = channel {
        let answer = CreditAdminClient::new(channel)
            .get_account(proto::GetAccountRequest {
                account_id: "nobody".into(),
            })
            .await;
        assert!(answer.is_err_and(|s| s.code() != tonic::Code::NotFound));
    }
    server.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn mtls_refuses_a_client_without_a_certificate() {
    let ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let server = start(server_tls(&ca, Some(&client_ca))).await;

    let good = client_ca.sign(&["billing-worker"]);
    assert_eq!(
        call(&server, &ca, Some(&good)).await,
        Ok(tonic::Code::NotFound)
    );

    assert!(
        call(&server, &ca, None).await.is_err(),
        "no client certificate"
    );
    let stranger = Ca::new("stranger CA").sign(&["intruder"]);
    assert!(
        call(&server, &ca, Some(&stranger)).await.is_err(),
        "a client certificate from another CA"
    );
    server.shutdown().await.expect("shutdown");
}
