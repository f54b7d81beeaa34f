//! `CreditAdmin`: accounts and grants, subject policies, the rate card, and the reports from
//! the ledger (in [`super::reports`]).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::auth::Caller;
use super::validate;
use super::{convert, observe, ok, rate_card, reports};
use crate::ledger::Ledger;
use crate::model::Millis;
use crate::pricing::RateCardCell;
use crate::proto::{self, credit_admin_server::CreditAdmin};
use crate::store::memory::system_now;
use crate::store::Store;

pub struct AdminService {
    store: Arc<dyn Store>,
    rate_card: RateCardCell,
    ledger: Option<Ledger>,
}

impl AdminService {
    /// Without a rate card (`GetRateCard` answers `RATE_CARD_NOT_CONFIGURED`).
    pub fn new(store: Arc<dyn Store>) -> Self {
        AdminService {
            store,
            rate_card: RateCardCell::empty(),
            ledger: None,
        }
    }

    /// Reads the reports from this ledger (`None`: they answer `LEDGER_NOT_CONFIGURED`).
    pub fn with_ledger(mut self, ledger: Option<Ledger>) -> Self {
        self.ledger = ledger;
        self
    }

    /// Serves this rate card (swapped in place on reload).
    pub fn with_rate_card(mut self, rate_card: RateCardCell) -> Self {
        self.rate_card = rate_card;
        self
    }

    /// The active card's top-up increment (0 without a card or without an increment).
    fn top_up_increment(&self) -> i64 {
        self.rate_card
            .current()
            .map_or(0, |card| card.top_up_increment_micros())
    }

    /// The store's clock, which decides a grant's state (pending, active, expired). The operation
    /// has already happened when this is asked, so a failure falls back to the local clock
    /// rather than reporting an error for a change that was made.
    async fn now(&self) -> Millis {
        match self.store.now().await {
            Ok(now) => now,
            Err(e) => {
                tracing::warn!("store clock unavailable, grant states use the local clock: {e}");
                system_now()
            }
        }
    }
}

/// Who makes an admin change, for the audit trail: the token's name (`-` without auth).
fn actor<T>(request: &Request<T>) -> String {
    Caller::of(request).map_or("-", Caller::name).to_string()
}

#[tonic::async_trait]
impl CreditAdmin for AdminService {
    async fn create_account(
        &self,
        request: Request<proto::CreateAccountRequest>,
    ) -> Result<Response<proto::Account>, Status> {
        let actor = actor(&request);
        let req = validate::within_limit(request.into_inner())?;
        let call = async {
            let mut a = validate::create_account(&req)?;
            a.actor = actor.clone();
            let alerts = validate::create_account_alerts(&req, self.top_up_increment())?;
            let account = self.store.create_account(a).await?;
            // The alert settings are applied as an UpdateAccount right after the creation (the
            // same values again on a replay, which changes nothing).
            match alerts {
                Some(mut u) => {
                    u.actor = actor;
                    Ok(convert::account(self.store.update_account(u).await?))
                }
                None => Ok(convert::account(account)),
            }
        };
        observe("create_account", call, ok).await
    }

    async fn get_account(
        &self,
        request: Request<proto::GetAccountRequest>,
    ) -> Result<Response<proto::Account>, Status> {
        let req = validate::within_limit(request.into_inner())?;
        let call = async {
            let account = validate::id("account_id", &req.account_id)?;
            Ok(convert::account(self.store.get_account(&account).await?))
        };
        observe("get_account", call, ok).await
    }

    async fn update_account(
        &self,
        request: Request<proto::UpdateAccountRequest>,
    ) -> Result<Response<proto::Account>, Status> {
        let actor = actor(&request);
        let req = validate::within_limit(request.into_inner())?;
        let call = async {
            let mut u = validate::update_account(&req, self.top_up_increment())?;
            u.actor = actor;
            Ok(convert::account(self.store.update_account(u).await?))
        };
        observe("update_account", call, ok).await
    }

    async fn create_grant(
        &self,
        request: Request<proto::CreateGrantRequest>,
    ) -> Result<Response<proto::Grant>, Status> {
        let actor = actor(&request);
        let req = validate::within_limit(request.into_inner())?;
        let call = async {
            let mut g = validate::create_grant(&req)?;
            g.actor = actor;
            let account = g.account_id.clone();
            let grant = self.store.create_grant(g).await?;
            Ok(convert::grant(grant, &account, self.now().await))
        };
        observe("create_grant", call, ok).await
    }

    async fn list_grants(
        &self,
        request: Request<proto::ListGrantsRequest>,
    ) -> Result<Response<proto::ListGrantsResponse>, Status> {
        let req = validate::within_limit(request.into_inner())?;
        let call = async {
            let account = validate::id("account_id", &req.account_id)?;
            let grants = self.store.list_grants(&account).await?;
            let now = self.now().await;
            Ok(proto::ListGrantsResponse {
                grants: grants
                    .into_iter()
                    .map(|g| convert::grant(g, &account, now))
                    .collect(),
            })
        };
        observe("list_grants", call, ok).await
    }

    async fn void_grant(
        &self,
        request: Request<proto::VoidGrantRequest>,
    ) -> Result<Response<proto::Grant>, Status> {
        let actor = actor(&request);
        let req = validate::within_limit(request.into_inner())?;
        let call = async {
            let (account, grant_id) = validate::grant_ref(&req.account_id, &req.grant_id)?;
            let grant = self.store.void_grant(&account, &grant_id, &actor).await?;
            Ok(convert::grant(grant, &account, self.now().await))
        };
        observe("void_grant", call, ok).await
    }

    async fn get_rate_card(
        &self,
        _request: Request<proto::GetRateCardRequest>,
    ) -> Result<Response<proto::RateCard>, Status> {
        rate_card::get(&self.rate_card)
    }

    async fn set_subject_policy(
        &self,
        request: Request<proto::SetSubjectPolicyRequest>,
    ) -> Result<Response<proto::SubjectPolicy>, Status> {
        let actor = actor(&request);
        let req = validate::within_limit(request.into_inner())?;
        let call = async {
            let (account, policy) = validate::set_subject_policy(&req)?;
            let policy = self
                .store
                .set_subject_policy(&account, policy, &actor)
                .await?;
            Ok(convert::subject_policy(policy))
        };
        observe("set_subject_policy", call, ok).await
    }

    async fn get_subject_policy(
        &self,
        request: Request<proto::GetSubjectPolicyRequest>,
    ) -> Result<Response<proto::SubjectPolicy>, Status> {
        let req = validate::within_limit(request.into_inner())?;
        let call = async {
            let (account, subject) = validate::get_subject_policy(&req)?;
            let policy = self.store.get_subject_policy(&account, &subject).await?;
            Ok(convert::subject_policy(policy))
        };
        observe("get_subject_policy", call, ok).await
    }

    async fn request_spending_access(
        &self,
        request: Request<proto::RequestSpendingAccessRequest>,
    ) -> Result<Response<proto::RequestSpendingAccessResponse>, Status> {
        let req = validate::within_limit(request.into_inner())?;
        let call = async {
            let (account, subject, note) = validate::request_spending_access(&req)?;
            self.store
                .request_spending_access(&account, &subject, &note)
                .await?;
            Ok(proto::RequestSpendingAccessResponse {})
        };
        observe("request_spending_access", call, ok).await
    }

    async fn get_usage(
        &self,
        request: Request<proto::GetUsageRequest>,
    ) -> Result<Response<proto::GetUsageResponse>, Status> {
        reports::get_usage(self.ledger.as_ref(), request).await
    }

    async fn get_profit_and_loss(
        &self,
        request: Request<proto::GetProfitAndLossRequest>,
    ) -> Result<Response<proto::GetProfitAndLossResponse>, Status> {
        reports::get_profit_and_loss(self.ledger.as_ref(), request).await
    }

    async fn list_ledger_entries(
        &self,
        request: Request<proto::ListLedgerEntriesRequest>,
    ) -> Result<Response<proto::ListLedgerEntriesResponse>, Status> {
        reports::list_ledger_entries(self.ledger.as_ref(), request).await
    }

    async fn list_audit_events(
        &self,
        request: Request<proto::ListAuditEventsRequest>,
    ) -> Result<Response<proto::ListAuditEventsResponse>, Status> {
        reports::list_audit_events(self.ledger.as_ref(), request).await
    }
}
