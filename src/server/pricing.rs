//! `--pricing FILE`: loaded at start-up (a bad file stops `creditd serve`), reloaded on SIGHUP
//! (a bad file keeps the active card; see [`crate::pricing::reload`]).

use std::sync::Arc;

use anyhow::Result;
use tokio::task::JoinHandle;

use crate::config::ServeArgs;
use crate::pricing::RateCardFile;

/// The rate card file named by `--pricing`, if any, read and validated.
pub(super) fn load(args: &ServeArgs) -> Result<Option<Arc<RateCardFile>>> {
    match &args.pricing {
        None => {
            tracing::info!("no --pricing file: priced calls and GetRateCard are unavailable");
            Ok(None)
        }
        Some(path) => Ok(Some(Arc::new(RateCardFile::load(path)?))),
    }
}

/// Stops the SIGHUP listener when `run` returns.
pub(super) struct Reloader(JoinHandle<()>);

impl Drop for Reloader {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reloads the file on every SIGHUP. Installed even without a file, so that a SIGHUP is logged
/// instead of ending the process (its default action).
pub(super) fn reload_on_sighup(file: Option<Arc<RateCardFile>>) -> Result<Reloader> {
    #[cfg(unix)]
    {
        use anyhow::Context;
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
        Ok(Reloader(tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                let Some(file) = file.clone() else {
                    tracing::warn!("SIGHUP received, but there is no --pricing file to reload");
                    continue;
                };
                tracing::info!("SIGHUP received: reloading {}", file.path().display());
                // Errors are logged and counted by reload(); the old card stays active.
                let _ = tokio::task::spawn_blocking(move || file.reload()).await;
            }
        })))
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        Ok(Reloader(tokio::spawn(async {})))
    }
}
