//! How the client proves who it is: the bearer token (`--token`, `CREDITD_TOKEN`) sent on every
//! call, and TLS to an `https://` server (`--ca-cert`, with `--client-cert`/`--client-key` for
//! mTLS).

use std::fmt;
use std::path::Path;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};
use tonic::{Request, Status};

use super::commands::Connection;

/// A bearer token; never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(MetadataValue<Ascii>);

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(****)")
    }
}

/// The clap parser of `--token`.
pub fn parse_token(text: &str) -> Result<BearerToken, String> {
    let token = text.trim();
    if token.is_empty() {
        return Err("the token is empty".into());
    }
    if token.chars().any(|c| !c.is_ascii_graphic()) {
        return Err("a token is printable ASCII without spaces".into());
    }
    MetadataValue::try_from(format!("Bearer {token}"))
        .map(|mut value| {
            value.set_sensitive(true);
            BearerToken(value)
        })
        .map_err(|e| format!("invalid token: {e}"))
}

/// Adds `authorization: Bearer <token>` to every call when a token was given.
#[derive(Debug, Clone, Default)]
pub struct BearerAuth(Option<BearerToken>);

impl BearerAuth {
    pub fn new(token: Option<BearerToken>) -> Self {
        BearerAuth(token)
    }
}

impl Interceptor for BearerAuth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(BearerToken(value)) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// The TLS settings for the connection, or `None` for plaintext `http://`. The error is one line
/// naming the flag.
pub fn tls_config(connection: &Connection) -> Result<Option<ClientTlsConfig>, String> {
    let https = connection.server.starts_with("https://");
    let Some(ca_path) = &connection.ca_cert else {
        if https {
            return Err(format!(
                "{} is https: give the CA certificate that signed the server's certificate \
                 with --ca-cert (or CREDITD_CA_CERT)",
                connection.server
            ));
        }
        if connection.client_cert.is_some() {
            return Err("--client-cert needs an https:// --server and --ca-cert".into());
        }
        return Ok(None);
    };
    if !https {
        return Err(format!(
            "--ca-cert is for TLS: use --server https://… instead of {}",
            connection.server
        ));
    }
    let mut config =
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca_path, "--ca-cert")?));
    if let (Some(cert), Some(key)) = (&connection.client_cert, &connection.client_key) {
        config = config.identity(Identity::from_pem(
            read(cert, "--client-cert")?,
            read(key, "--client-key")?,
        ));
    }
    Ok(Some(config))
}

fn read(path: &Path, flag: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{flag}: cannot read {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_and_hidden() {
        let token = parse_token(" cdt_abc ").expect("valid");
        assert_eq!(format!("{token:?}"), "BearerToken(****)");
        let mut auth = BearerAuth::new(Some(token));
        let request = auth.call(Request::new(())).expect("intercepted");
        assert_eq!(
            request
                .metadata()
                .get("authorization")
                .map(|v| v.to_str().ok()),
            Some(Some("Bearer cdt_abc"))
        );
        assert!(parse_token("").is_err());
        assert!(parse_token("a b").is_err());
        assert!(parse_token("é").is_err());
        let request = BearerAuth::default().call(Request::new(())).expect("ok");
        assert!(request.metadata().get("authorization").is_none());
    }
}
