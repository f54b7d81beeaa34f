//! The reference model of creditd's credit semantics: pure Rust, no I/O.
//!
//! `Model` holds every account; each operation takes the time from the one shared clock, first
//! settles the account (new period, expired grants, expired holds) and appends an [`Event`] for
//! every change.

mod account;
mod event;
pub mod period;
mod types;

use std::collections::BTreeMap;

pub use account::AccountState;
pub use event::{Event, Move};
pub use types::*;

use crate::error::{Error, Result};

#[derive(Debug, Default, Clone)]
pub struct Model {
    accounts: BTreeMap<String, AccountState>,
}

impl Model {
    pub fn new() -> Self {
        Self::default()
    }

    /// The account, settled up to `now`.
    fn account(
        &mut self,
        id: &str,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> Result<&mut AccountState> {
        let state = self.accounts.get_mut(id).ok_or(Error::AccountNotFound)?;
        state.settle(now, events);
        Ok(state)
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
            let state = self.account(&req.account_id, now, events)?;
            return if state.matches(req) {
                Ok(state.account.clone())
            } else {
                Err(Error::conflict("account_id"))
            };
        }
        let state = AccountState::create(req, now, events);
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
        Ok(self.account(id, now, events)?.account.clone())
    }

    pub fn update_account(
        &mut self,
        req: &UpdateAccount,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> Result<Account> {
        let state = self.account(&req.account_id, now, events)?;
        state.update(req, now, events);
        Ok(state.account.clone())
    }

    pub fn create_grant(
        &mut self,
        req: &CreateGrant,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> Result<Grant> {
        self.account(&req.account_id, now, events)?
            .create_grant(req, now, events)
    }

    /// Every grant of the account, in creation order.
    pub fn list_grants(
        &mut self,
        id: &str,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> Result<Vec<Grant>> {
        let state = self.account(id, now, events)?;
        let mut grants: Vec<Grant> = state.grants.values().cloned().collect();
        grants.sort_by_key(|g| g.created_seq);
        Ok(grants)
    }

    pub fn void_grant(
        &mut self,
        account_id: &str,
        grant_id: &str,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> Result<Grant> {
        self.account(account_id, now, events)?
            .void_grant(grant_id, now, events)
    }

    pub fn quote(
        &mut self,
        req: &Quote,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> Result<QuoteOutcome> {
        Ok(self.account(&req.account_id, now, events)?.quote(req, now))
    }

    pub fn reserve(
        &mut self,
        req: &Reserve,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> Result<ReserveOutcome> {
        self.account(&req.account_id, now, events)?
            .reserve(req, now, events)
    }

    pub fn commit(
        &mut self,
        req: &Commit,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> Result<CommitOutcome> {
        self.account(&req.account_id, now, events)?
            .commit(req, now, events)
    }

    pub fn release(
        &mut self,
        account_id: &str,
        reservation_id: &str,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> Result<ReleaseOutcome> {
        self.account(account_id, now, events)?
            .release(reservation_id, now, events)
    }

    pub fn extend(
        &mut self,
        req: &Extend,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> Result<Reservation> {
        self.account(&req.account_id, now, events)?
            .extend(req, now, events)
    }

    pub fn get_reservation(
        &mut self,
        account_id: &str,
        reservation_id: &str,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> Result<Reservation> {
        let state = self.account(account_id, now, events)?;
        state
            .reservations
            .get(reservation_id)
            .cloned()
            .ok_or(Error::ReservationNotFound)
    }

    pub fn get_balance(
        &mut self,
        id: &str,
        now: Millis,
        events: &mut Vec<Event>,
    ) -> Result<Balance> {
        Ok(self.account(id, now, events)?.balance(now))
    }

    /// Settles every account that has a hold due at `now`; returns how many accounts it settled.
    pub fn reap(&mut self, now: Millis, events: &mut Vec<Event>) -> usize {
        let mut settled = 0;
        for state in self.accounts.values_mut() {
            if state.next_hold_expiry().is_some_and(|t| t <= now) {
                state.settle(now, events);
                settled += 1;
            }
        }
        settled
    }
}
