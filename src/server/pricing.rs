//! `--pricing FILE`: loaded at start-up (a bad file stops `creditd serve`), reloaded on SIGHUP
//! (a bad file keeps the active card; see [`crate::pricing::reload`]).
//!
//! The card's plans (plan id → allowance) go to the store, which issues the allowances: at
//! start-up ([`plans_of`], from `RunningServer::start`) and after every successful reload
//! ([`PlanSync`]).

use std::sync::{Arc, Mutex};

use anyhow::Result;
use tokio::task::JoinHandle;

use crate::config::ServeArgs;
use crate::model::Plans;
use crate::pricing::{RateCard, RateCardCell, RateCardFile};
use crate::store::Store;

/// The plans of a card as the store takes them; none without a card.
pub fn plans_of(card: Option<&RateCard>) -> Plans {
    card.map(|c| {
        c.plans()
            .iter()
            .map(|p| (p.id.clone(), p.allowance_micros))
            .collect()
    })
    .unwrap_or_default()
}

/// Keeps the store's plans equal to the active card's. The card is read under the lock, so the
/// last update always carries the latest card, whatever the order of reloads and start-up.
pub(super) struct PlanSync {
    cell: RateCardCell,
    store: Mutex<Option<Arc<dyn Store>>>,
}

impl PlanSync {
    pub(super) fn new(cell: RateCardCell) -> Self {
        PlanSync {
            cell,
            store: Mutex::new(None),
        }
    }

    /// From now on the plans go to `store`, starting with the active card's.
    pub(super) fn attach(&self, store: Arc<dyn Store>) {
        let mut slot = self.store.lock().unwrap_or_else(|p| p.into_inner());
        store.set_plans(plans_of(self.cell.current().as_deref()));
        *slot = Some(store);
    }

    /// The card changed: give its plans to the store (if one is attached yet).
    pub(super) fn refresh(&self) {
        let slot = self.store.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(store) = slot.as_ref() {
            let plans = plans_of(self.cell.current().as_deref());
            tracing::info!(
                plans = plans.len(),
                "plans of the reloaded rate card given to the store"
            );
            store.set_plans(plans);
        }
    }
}

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
/// After a good reload, `plans` passes the new card's plans to the store.
pub(super) fn reload_on_sighup(
    file: Option<Arc<RateCardFile>>,
    plans: Arc<PlanSync>,
) -> Result<Reloader> {
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
                if let Ok(Ok(_)) = tokio::task::spawn_blocking(move || file.reload()).await {
                    plans.refresh();
                }
            }
        })))
    }
    #[cfg(not(unix))]
    {
        let _ = (file, plans);
        Ok(Reloader(tokio::spawn(async {})))
    }
}
