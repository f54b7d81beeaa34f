//! The embedded store: the reference model behind a lock. Balances live in the process and are
//! lost when it exits.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use super::{ClockMode, Store};
use crate::error::{Error, Result};
use crate::model::*;

/// How many recent events the memory store keeps for inspection.
const EVENT_HISTORY: usize = 100_000;

pub struct MemoryStore {
    inner: Mutex<Inner>,
}

struct Inner {
    model: Model,
    clock: ClockMode,
    events: VecDeque<Event>,
}

impl MemoryStore {
    pub fn new(clock: ClockMode) -> Self {
        MemoryStore {
            inner: Mutex::new(Inner {
                model: Model::new(),
                clock,
                events: VecDeque::new(),
            }),
        }
    }

    /// Runs `op` on the model at the current time and keeps the events it produced.
    fn run<T>(
        &self,
        op: impl FnOnce(&mut Model, Millis, &mut Vec<Event>) -> Result<T>,
    ) -> Result<T> {
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| Error::Internal("memory store lock poisoned".into()))?;
        let now = inner.now();
        let mut events = Vec::new();
        let out = op(&mut inner.model, now, &mut events);
        for ev in events {
            if inner.events.len() == EVENT_HISTORY {
                inner.events.pop_front();
            }
            inner.events.push_back(ev);
        }
        out
    }

    /// The most recent events of an account, oldest first (at most 100,000 events are kept).
    pub fn events(&self, account_id: &str) -> Vec<Event> {
        self.inner
            .lock()
            .map(|i| {
                i.events
                    .iter()
                    .filter(|e| e.account_id == account_id)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Inner {
    fn now(&self) -> Millis {
        match self.clock {
            ClockMode::Manual(t) => t,
            ClockMode::System => system_now(),
        }
    }
}

pub fn system_now() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

#[async_trait]
impl Store for MemoryStore {
    async fn create_account(&self, req: CreateAccount) -> Result<Account> {
        self.run(|m, now, ev| m.create_account(&req, now, ev))
    }
    async fn get_account(&self, account_id: &str) -> Result<Account> {
        self.run(|m, now, ev| m.get_account(account_id, now, ev))
    }
    async fn update_account(&self, req: UpdateAccount) -> Result<Account> {
        self.run(|m, now, ev| m.update_account(&req, now, ev))
    }
    async fn create_grant(&self, req: CreateGrant) -> Result<Grant> {
        self.run(|m, now, ev| m.create_grant(&req, now, ev))
    }
    async fn list_grants(&self, account_id: &str) -> Result<Vec<Grant>> {
        self.run(|m, now, ev| m.list_grants(account_id, now, ev))
    }
    async fn void_grant(&self, account_id: &str, grant_id: &str, actor: &str) -> Result<Grant> {
        self.run(|m, now, ev| m.void_grant(account_id, grant_id, actor, now, ev))
    }
    async fn quote(&self, req: Quote) -> Result<QuoteOutcome> {
        self.run(|m, now, ev| m.quote(&req, now, ev))
    }
    async fn reserve(&self, req: Reserve) -> Result<ReserveOutcome> {
        self.run(|m, now, ev| m.reserve(&req, now, ev))
    }
    async fn commit(&self, req: Commit) -> Result<CommitOutcome> {
        self.run(|m, now, ev| m.commit(&req, now, ev))
    }
    async fn release(&self, account_id: &str, reservation_id: &str) -> Result<ReleaseOutcome> {
        self.run(|m, now, ev| m.release(account_id, reservation_id, now, ev))
    }
    async fn extend(&self, req: Extend) -> Result<Reservation> {
        self.run(|m, now, ev| m.extend(&req, now, ev))
    }
    async fn get_reservation(&self, account_id: &str, reservation_id: &str) -> Result<Reservation> {
        self.run(|m, now, ev| m.get_reservation(account_id, reservation_id, now, ev))
    }
    async fn get_subject_balance(&self, account_id: &str, subject_id: &str) -> Result<Balance> {
        self.run(|m, now, ev| m.get_subject_balance(account_id, subject_id, now, ev))
    }
    async fn get_balance(&self, account_id: &str) -> Result<Balance> {
        self.run(|m, now, ev| m.get_balance(account_id, now, ev))
    }
    async fn set_subject_policy(
        &self,
        account_id: &str,
        policy: SubjectPolicy,
        actor: &str,
    ) -> Result<SubjectPolicy> {
        self.run(|m, now, ev| m.set_subject_policy(account_id, &policy, actor, now, ev))
    }
    async fn get_subject_policy(
        &self,
        account_id: &str,
        subject_id: &str,
    ) -> Result<SubjectPolicy> {
        self.run(|m, now, ev| m.get_subject_policy(account_id, subject_id, now, ev))
    }
    async fn request_spending_access(
        &self,
        account_id: &str,
        subject_id: &str,
        note: &str,
    ) -> Result<()> {
        self.run(|m, now, ev| m.request_spending_access(account_id, subject_id, note, now, ev))
    }
    fn set_plans(&self, plans: Plans) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.model.set_plans(plans);
        }
    }
    async fn reap(&self) -> Result<usize> {
        self.run(|m, now, ev| Ok(m.reap(now, ev)))
    }
    async fn ping(&self) -> Result<()> {
        Ok(())
    }
    async fn now(&self) -> Result<Millis> {
        self.run(|_, now, _| Ok(now))
    }
    async fn advance_clock(&self, millis: i64) -> Result<()> {
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| Error::Internal("memory store lock poisoned".into()))?;
        match &mut inner.clock {
            ClockMode::Manual(t) => {
                *t += millis;
                Ok(())
            }
            ClockMode::System => Err(Error::invalid(
                "clock",
                "the store runs on the system clock",
            )),
        }
    }
    fn kind(&self) -> &'static str {
        "memory"
    }
}
