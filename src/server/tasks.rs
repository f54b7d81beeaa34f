//! Background tasks of the server: the store pinger (health), the health publisher (gRPC health
//! follows the component map) and the reaper (expired holds); beside them runs the metrics upkeep
//! (`telemetry::metrics::keep_up`). None of them panics or exits on a store error; each stops when
//! the stop channel turns true.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Mutex};
use tokio::time::MissedTickBehavior;
use tonic::server::NamedService;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use crate::error::Error;
use crate::proto::credit_admin_server::CreditAdminServer;
use crate::proto::credits_server::CreditsServer;
use crate::store::Store;
use crate::telemetry::{metrics, Health};

/// Longest a reap pass may take before it counts as a store failure.
const REAP_TIMEOUT: Duration = Duration::from_secs(30);

/// Resolves once the stop channel says true (or its sender is gone).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// gRPC services whose health follows the component map ("" is the whole server).
pub fn health_service_names() -> [&'static str; 3] {
    [
        "",
        <CreditsServer<crate::api::CreditsService> as NamedService>::NAME,
        <CreditAdminServer<crate::api::AdminService> as NamedService>::NAME,
    ]
}

/// Writes the component map into gRPC health. Publications are serialised and always read the
/// current state, so a slow publisher cannot overwrite NOT_SERVING with a stale SERVING.
#[derive(Clone)]
pub struct HealthPublisher {
    health: Health,
    reporter: HealthReporter,
    lock: Arc<Mutex<()>>,
}

impl HealthPublisher {
    pub fn new(health: Health, reporter: HealthReporter) -> Self {
        HealthPublisher {
            health,
            reporter,
            lock: Arc::new(Mutex::new(())),
        }
    }

    pub async fn publish(&self) {
        let _guard = self.lock.lock().await;
        let serving = self.health.is_serving();
        let status = if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        for name in health_service_names() {
            self.reporter.set_service_status(name, status).await;
        }
        metrics::set_serving(serving);
    }

    /// Publishes every change of the component map until stopped.
    pub async fn follow(self, mut stop: watch::Receiver<bool>) {
        let mut changes = self.health.subscribe();
        loop {
            // Mark the change seen before reading the state, so no change is missed.
            changes.borrow_and_update();
            self.publish().await;
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return },
                _ = stopped(&mut stop) => return,
            }
        }
    }
}

/// Pings the store every `interval` (each ping bounded by `timeout`) and records the result in
/// the `store_reachable` component.
pub async fn pinger(
    store: Arc<dyn Store>,
    health: Health,
    interval: Duration,
    timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut reported_down = false;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stopped(&mut stop) => return,
        }
        let result = tokio::select! {
            r = tokio::time::timeout(timeout, store.ping()) => r
                .unwrap_or_else(|_| Err(Error::Unavailable(format!("ping timed out after {timeout:?}")))),
            _ = stopped(&mut stop) => return,
        };
        match result {
            Ok(()) => {
                if health.set_store_reachable(true) {
                    tracing::info!(store = store.kind(), "store reachable: SERVING");
                }
                reported_down = false;
                metrics::set_store_reachable(true);
            }
            Err(e) => {
                metrics::record_store_error("ping", &e);
                metrics::set_store_reachable(false);
                if health.set_store_reachable(false) || !reported_down {
                    tracing::warn!(store = store.kind(), "store unreachable, NOT_SERVING: {e}");
                    reported_down = true;
                }
            }
        }
    }
}

/// Settles due holds every `interval`. Failures are counted and logged once per outage; the
/// task keeps going while the store is down.
pub async fn reaper(store: Arc<dyn Store>, interval: Duration, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stopped(&mut stop) => return,
        }
        let result = tokio::select! {
            r = tokio::time::timeout(REAP_TIMEOUT, store.reap()) => r
                .unwrap_or_else(|_| Err(Error::Unavailable("reap timed out".into()))),
            _ = stopped(&mut stop) => return,
        };
        match result {
            Ok(settled) => {
                if settled > 0 {
                    metrics::record_reaped(settled);
                    tracing::debug!(accounts = settled, "reaper settled expired holds");
                }
                if failing {
                    tracing::info!("reaper recovered");
                    failing = false;
                }
            }
            Err(e) => {
                metrics::record_store_error("reap", &e);
                if failing {
                    tracing::debug!("reaper still failing: {e}");
                } else {
                    tracing::warn!("reaper failed (will retry every {interval:?}): {e}");
                    failing = true;
                }
            }
        }
    }
}
