//! Server TLS and mTLS from PEM files: `--tls-cert` and `--tls-key` turn TLS on;
//! `--tls-client-ca` also requires every client to present a certificate signed by that CA.

use std::fmt;
use std::path::Path;

use anyhow::{Context, Result};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use crate::config::ServeArgs;

/// PEM contents for the gRPC listener's TLS.
#[derive(Clone)]
pub struct TlsSettings {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    /// When set, clients must present a certificate signed by this CA (mTLS).
    pub client_ca_pem: Option<Vec<u8>>,
}

impl TlsSettings {
    /// Reads the files named by the flags; `None` when TLS is off.
    pub fn from_args(args: &ServeArgs) -> Result<Option<TlsSettings>> {
        let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
            return Ok(None);
        };
        Ok(Some(TlsSettings {
            cert_pem: read_pem(cert, "--tls-cert")?,
            key_pem: read_pem(key, "--tls-key")?,
            client_ca_pem: args
                .tls_client_ca
                .as_deref()
                .map(|ca| read_pem(ca, "--tls-client-ca"))
                .transpose()?,
        }))
    }

    pub fn is_mutual(&self) -> bool {
        self.client_ca_pem.is_some()
    }

    pub fn server_config(&self) -> ServerTlsConfig {
        let config =
            ServerTlsConfig::new().identity(Identity::from_pem(&self.cert_pem, &self.key_pem));
        match &self.client_ca_pem {
            Some(ca) => config.client_ca_root(Certificate::from_pem(ca)),
            None => config,
        }
    }
}

/// Never prints the private key.
impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("mutual", &self.is_mutual())
            .finish_non_exhaustive()
    }
}

fn read_pem(path: &Path, flag: &str) -> Result<Vec<u8>> {
    let bytes =
        std::fs::read(path).with_context(|| format!("{flag}: cannot read {}", path.display()))?;
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        anyhow::bail!("{flag}: {} is not a PEM file", path.display());
    }
    Ok(bytes)
}
