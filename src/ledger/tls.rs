//! How creditd reaches Postgres: plaintext, or TLS when the URL asks for it.
//!
//! `sslmode=require`, `verify-ca` or `verify-full` turn TLS on, and creditd then always verifies
//! the server's certificate and host name (as libpq's `verify-full`) against the system's roots
//! and the PEM file named by `sslrootcert` (for a private CA). Without `sslmode`, or with
//! `disable`, `allow` or `prefer`, the connection is plaintext: ask for TLS explicitly.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tokio_postgres_rustls::MakeRustlsConnect;

/// A parsed database URL: the driver's config, and the TLS connector when TLS is asked for.
pub struct Target {
    pub config: tokio_postgres::Config,
    pub tls: Option<MakeRustlsConnect>,
}

pub fn parse(url: &str) -> Result<Target> {
    let (url, root_file, tls) = split_tls_params(url)?;
    let config: tokio_postgres::Config = url.parse().context("invalid --database-url")?;
    if !tls {
        return Ok(Target { config, tls: None });
    }
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if let Some(file) = &root_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(file)
            .with_context(|| format!("reading sslrootcert {file}"))?
            .collect::<std::result::Result<_, _>>()
            .with_context(|| format!("reading sslrootcert {file}"))?;
        if certs.is_empty() {
            bail!("sslrootcert {file} holds no certificate");
        }
        for cert in certs {
            roots
                .add(cert)
                .with_context(|| format!("a certificate of sslrootcert {file}"))?;
        }
    }
    if roots.is_empty() {
        bail!("TLS to Postgres asked for, but no root certificate was found (set sslrootcert)");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Target {
        config,
        tls: Some(MakeRustlsConnect::new(client)),
    })
}

/// Takes `sslrootcert` out of a `postgres://` URL (the driver does not know it) and says whether
/// `sslmode` asks for TLS; `verify-ca` and `verify-full` become `require` for the driver.
fn split_tls_params(raw: &str) -> Result<(String, Option<String>, bool)> {
    if !(raw.starts_with("postgres://") || raw.starts_with("postgresql://")) {
        // The key=value form: the driver reads sslmode itself; TLS when it says require.
        let tls = raw.split_whitespace().any(|kv| kv == "sslmode=require");
        return Ok((raw.to_string(), None, tls));
    }
    let mut url = url::Url::parse(raw).context("invalid --database-url")?;
    let mut root = None;
    let mut tls = false;
    let mut kept = Vec::new();
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "sslrootcert" => root = Some(v.into_owned()),
            "sslmode" => {
                tls = matches!(v.as_ref(), "require" | "verify-ca" | "verify-full");
                let mode = if tls { "require" } else { v.as_ref() };
                kept.push((k.into_owned(), mode.to_string()));
            }
            _ => kept.push((k.into_owned(), v.into_owned())),
        }
    }
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
    Ok((url.to_string(), root, tls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_params() {
        let (u, root, tls) =
            split_tls_params("postgres://u@h:5/db?sslmode=verify-full&sslrootcert=/ca.pem")
                .unwrap();
        assert_eq!(
            (u.as_str(), root.as_deref(), tls),
            ("postgres://u@h:5/db?sslmode=require", Some("/ca.pem"), true)
        );
        let (u, root, tls) = split_tls_params("postgres://u@h/db").unwrap();
        assert_eq!((u.as_str(), root, tls), ("postgres://u@h/db", None, false));
        let (_, _, tls) = split_tls_params("postgres://u@h/db?sslmode=prefer").unwrap();
        assert!(!tls);
        let (_, _, tls) = split_tls_params("host=h sslmode=require").unwrap();
        assert!(tls);
    }
}
