//! The health component map: SERVING means the store is reachable and no shutdown has begun.
//!
//! Components are written by the pinger (store reachable) and the signal handler (shutting down);
//! readers (gRPC health, `/readyz`) watch one channel, so every change reaches them in order.

use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct HealthState {
    /// The last store ping succeeded. False until the first one does.
    pub store_reachable: bool,
    /// SIGTERM/SIGINT arrived (or shutdown was asked for): load balancers must drain.
    pub shutting_down: bool,
}

impl HealthState {
    pub fn serving(&self) -> bool {
        self.store_reachable && !self.shutting_down
    }
}

/// A cheap, cloneable handle on the component map.
#[derive(Debug, Clone)]
pub struct Health {
    tx: watch::Sender<HealthState>,
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    /// Starts NOT_SERVING: the store has not answered yet.
    pub fn new() -> Self {
        let (tx, _rx) = watch::channel(HealthState::default());
        Health { tx }
    }

    /// Records a ping result; returns true if it changed the component.
    pub fn set_store_reachable(&self, reachable: bool) -> bool {
        self.tx.send_if_modified(|s| {
            let changed = s.store_reachable != reachable;
            s.store_reachable = reachable;
            changed
        })
    }

    /// From now on the service reports NOT_SERVING, whatever the store does.
    pub fn set_shutting_down(&self) {
        self.tx.send_if_modified(|s| {
            let changed = !s.shutting_down;
            s.shutting_down = true;
            changed
        });
    }

    pub fn state(&self) -> HealthState {
        *self.tx.borrow()
    }

    pub fn is_serving(&self) -> bool {
        self.state().serving()
    }

    /// A receiver that sees every later change.
    pub fn subscribe(&self) -> watch::Receiver<HealthState> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serving_needs_the_store_and_no_shutdown() {
        let h = Health::new();
        assert!(!h.is_serving(), "not serving before the first ping");
        assert!(h.set_store_reachable(true));
        assert!(!h.set_store_reachable(true), "no change, no notification");
        assert!(h.is_serving());
        h.set_store_reachable(false);
        assert!(!h.is_serving());
        h.set_store_reachable(true);
        h.set_shutting_down();
        assert!(!h.is_serving());
        h.set_store_reachable(true);
        assert_eq!(
            h.state(),
            HealthState {
                store_reachable: true,
                shutting_down: true
            }
        );
        assert!(!h.is_serving(), "shutdown is final");
    }

    #[tokio::test]
    async fn subscribers_see_changes() {
        let h = Health::new();
        let mut rx = h.subscribe();
        h.set_store_reachable(true);
        rx.changed().await.expect("sender alive");
        assert!(rx.borrow_and_update().serving());
    }
}
