//! `CreditAdmin`: accounts and grants.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::validate;
use super::{convert, observe, ok, rate_card};
use crate::model::Millis;
use crate::pricing::RateCardCell;
use crate::proto::{self, credit_admin_server::CreditAdmin};
use crate::store::memory::system_now;
use crate::store::Store;

pub struct AdminService {
    store: Arc<dyn Store>,
    rate_card: RateCardCell,
}

impl AdminService {
    /// Without a rate card (`GetRateCard` answers `RATE_CARD_NOT_CONFIGURED`).
    pub fn new(store: Arc<dyn Store>) -> Self {
        AdminService {
            store,
            rate_card: RateCardCell::empty(),
        }
    }

    /// Serves this rate card (swapped in place on reload).
    pub fn with_rate_card(mut self, rate_card: RateCardCell) -> Self {
        self.rate_card = rate_card;
        self
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

#[tonic::async_trait]
impl CreditAdmin for AdminService {
    async fn create_account(
        &self,
        request: Request<proto::CreateAccountRequest>,
    ) -> Result<Response<proto::Account>, Status> {
        let req = validate::within_limit(request.into_inner())?;
        let call = async {
            let a = validate::create_account(&req)?;
            Ok(convert::account(self.store.create_account(a).await?))
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
        let req = validate::within_limit(request.into_inner())?;
        let call = async {
            let u = validate::update_account(&req)?;
            Ok(convert::account(self.store.update_account(u).await?))
        };
        observe("update_account", call, ok).await
    }

    async fn create_grant(
        &self,
        request: Request<proto::CreateGrantRequest>,
    ) -> Result<Response<proto::Grant>, Status> {
        let req = validate::within_limit(request.into_inner())?;
        let call = async {
            let g = validate::create_grant(&req)?;
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
        let req = validate::within_limit(request.into_inner())?;
        let call = async {
            let (account, grant_id) = validate::grant_ref(&req.account_id, &req.grant_id)?;
            let grant = self.store.void_grant(&account, &grant_id).await?;
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
}
