//! The reference model of creditd's credit semantics: pure Rust, no I/O.
//!
//! `Model` holds every account; each operation takes the time from the one shared clock, first
//! settles the account (new period, expired grants, expired holds) and appends an [`Event`] for
//! every change.

mod account;
mod enforce;
mod event;
pub mod period;
pub mod policy;
mod types;

use std::collections::BTreeMap;

pub use account::{AccountState, Plans};
pub use event::{Audit, Event, ItemCharge, Move};
pub use policy::{Budget, BudgetPeriod, RateLimit, SubjectPolicy};
pub use types::*;

use crate::error::{Error, Result};

/// An answer that shows a balance, brought up to date after the alerts of a call.
trait Answer {
    fn refresh(&mut self, _state: &AccountState, _now: Millis) {}
}

macro_rules! answers_with_balance {
    ($($t:ty),*) => {$(
        impl Answer for $t {
            fn refresh(&mut self, state: &AccountState, now: Millis) {
                self.balance = state.balance(now);
            }
        }
    )*};
}
answers_with_balance!(QuoteOutcome, ReserveOutcome, CommitOutcome, ReleaseOutcome);

impl Answer for Balance {
    fn refresh(&mut self, state: &AccountState, now: Millis) {
        let budgets = std::mem::take(&mut self.budgets);
        *self = state.balance(now);
        self.budgets = budgets;
    }
}
impl Answer for () {}
impl Answer for Account {}
impl Answer for Grant {}
impl Answer for Vec<Grant> {}
impl Answer for Reservation {}
impl Answer for SubjectPolicy {}

#[derive(Debug, Default, Clone)]
pub struct Model {
    accounts: BTreeMap<String, AccountState>,
    plans: Plans,
}

impl Model {
    pub fn new() -> Self {
        Self::default()
    }

    /// The plans of the active rate card: plan id → allowance per billing period.
    pub fn set_plans(&mut self, plans: Plans) {
        self.plans = plans;
    }

    /// Runs `op` on the account settled up to `now`, then fires the alerts its changes crossed
    /// (and shows them in the answer's balance).
    fn with<T: Answer>(
        &mut self,
        id: &str,
        now: Millis,
        events: &mut Vec<Event>,
        op: impl FnOnce(&mut AccountState, &mut Vec<Event>) -> Result<T>,
    ) -> Result<T> {
        let state = self.accounts.get_mut(id).ok_or(Error::AccountNotFound)?;
        let before = events.len();
        state.settle(&self.plans, now, events);
        let mut out = op(state, events);
        if events.len() > before {
            let fired = events.len();
            state.check_alerts(now, events);
            if events.len() > fired {
                if let Ok(answer) = &mut out {
                    answer.refresh(state, now);
                }
            }
        }
        out
    }

    pub fn state(&self, id: &str) -> Option<&AccountState> {
        self.accounts.get(id)
    }

    pub fn create_account(
        &mut self,
        req: &CreateAccount,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> Result<Account> {
        if self.accounts.contains_key(&req.account_id) {
            return self.with(&req.account_id, now, events, |state, _| {
                if state.matches(req) {
                    Ok(state.account.clone())
                } else {
                    Err(Error::conflict("account_id"))
                }
            });
        }
        let mut state = AccountState::create(req, &self.plans, now, events);
        state.check_alerts(now, events);
        let account = state.account.clone();
        self.accounts.insert(req.account_id.clone(), state);
        Ok(account)
    }

    pub fn get_account(
        &mut self,
        id: &str,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> Result<Account> {
        self.with(id, now, events, |state, _| Ok(state.account.clone()))
    }

    pub fn update_account(
        &mut self,
        req: &UpdateAccount,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> Result<Account> {
        self.with(&req.account_id, now, events, |state, events| {
            state.update(req, now, events);
            Ok(state.account.clone())
        })
    }

    pub fn create_grant(
        &mut self,
        req: &CreateGrant,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> Result<Grant> {
        self.with(&req.account_id, now, events, |state, events| {
            state.create_grant(req, now, events)
        })
    }

    /// Every grant of the account, in creation order.
    pub fn list_grants(
        &mut self,
        id: &str,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> Result<Vec<Grant>> {
        self.with(id, now, events, |state, _| {
            let mut grants: Vec<Grant> = state.grants.values().cloned().collect();
            grants.sort_by_key(|g| g.created_seq);
            Ok(grants)
        })
    }

    pub fn void_grant(
        &mut self,
        account_id: &str,
        grant_id: &str,
        actor: &str,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> Result<Grant> {
        self.with(account_id, now, events, |state, events| {
            state.void_grant(grant_id, actor, now, events)
        })
    }

    pub fn quote(
        &mut self,
        req: &Quote,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> Result<QuoteOutcome> {
        self.with(&req.account_id, now, events, |state, _| {
            Ok(state.quote(req, now))
        })
    }

    pub fn reserve(
        &mut self,
        req: &Reserve,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> Result<ReserveOutcome> {
        self.with(&req.account_id, now, events, |state, events| {
            state.reserve(req, now, events)
        })
    }

    pub fn commit(
        &mut self,
        req: &Commit,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> Result<CommitOutcome> {
        self.with(&req.account_id, now, events, |state, events| {
            state.commit(req, now, events)
        })
    }

    pub fn release(
        &mut self,
        account_id: &str,
        reservation_id: &str,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> Result<ReleaseOutcome> {
        self.with(account_id, now, events, |state, events| {
            state.release(reservation_id, now, events)
        })
    }

    pub fn extend(
        &mut self,
        req: &Extend,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> Result<Reservation> {
        self.with(&req.account_id, now, events, |state, events| {
            state.extend(req, now, events)
        })
    }

    pub fn get_reservation(
        &mut self,
        account_id: &str,
        reservation_id: &str,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> Result<Reservation> {
        self.with(account_id, now, events, |state, _| {
            state
                .reservations
                .get(reservation_id)
                .cloned()
                .ok_or(Error::ReservationNotFound)
        })
    }

    pub fn get_balance(
        &mut self,
        id: &str,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> Result<Balance> {
        self.with(id, now, events, |state, _| Ok(state.balance(now)))
    }

    /// The balance with the budgets that apply to `subject_id`.
    pub fn get_subject_balance(
        &mut self,
        id: &str,
        subject_id: &str,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> Result<Balance> {
        self.with(id, now, events, |state, _| {
            let mut b = state.balance(now);
            b.budgets = state.subject_budgets(subject_id, now);
            Ok(b)
        })
    }

    pub fn set_subject_policy(
        &mut self,
        account_id: &str,
        policy: &SubjectPolicy,
        actor: &str,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> Result<SubjectPolicy> {
        self.with(account_id, now, events, |state, events| {
            Ok(state.set_policy(policy, actor, now, events))
        })
    }

    pub fn get_subject_policy(
        &mut self,
        account_id: &str,
        subject_id: &str,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> Result<SubjectPolicy> {
        self.with(account_id, now, events, |state, _| {
            Ok(state.policy(subject_id))
        })
    }

    pub fn request_spending_access(
        &mut self,
        account_id: &str,
        subject_id: &str,
        note: &str,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> Result<()> {
        self.with(account_id, now, events, |state, events| {
            state.request_access(subject_id, note, now, events);
            Ok(())
        })
    }

    /// Settles every account that has a hold due at `now`; returns how many accounts it settled.
    pub fn reap(&mut self, now: Millis, events: &mut Vec<Event>) -> usize {
        let due: Vec<String> = self
            .accounts
            .iter()
            .filter(|(_, s)| s.next_hold_expiry().is_some_and(|t| t <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &due {
            let _ = self.with(id, now, events, |_, _| Ok(()));
        }
        due.len()
    }
}
