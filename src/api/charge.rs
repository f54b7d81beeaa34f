//! `Credits`: Quote, Reserve, Commit, Release, Extend, GetReservation, GetBalance.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::validate::{self, TtlLimits};
use super::{convert, observe, ok};
use crate::pricing::RateCardCell;
use crate::proto::{self, credits_server::Credits};
use crate::store::Store;

pub struct CreditsService {
    store: Arc<dyn Store>,
    ttl: TtlLimits,
    rate_card: RateCardCell,
}

impl CreditsService {
    pub fn new(store: Arc<dyn Store>, ttl: TtlLimits) -> Self {
        CreditsService {
            store,
            ttl,
            rate_card: RateCardCell::empty(),
        }
    }

    /// Prices `items` of Quote, Reserve and Commit with this card (reloads included).
    pub fn with_rate_card(mut self, rate_card: RateCardCell) -> Self {
        self.rate_card = rate_card;
        self
    }
}

#[tonic::async_trait]
impl Credits for CreditsService {
    async fn quote(
        &self,
        request: Request<proto::QuoteRequest>,
    ) -> Result<Response<proto::QuoteResponse>, Status> {
        let req = validate::within_limit(request.into_inner())?;
        let call = async {
            let card = self.rate_card.current();
            let q = validate::quote(&req, card.as_deref())?;
            Ok(convert::quote_response(self.store.quote(q).await?))
        };
        observe("quote", call, |r: &proto::QuoteResponse| {
            if r.affordable {
                "affordable"
            } else {
                "unaffordable"
            }
        })
        .await
    }

    async fn reserve(
        &self,
        request: Request<proto::ReserveRequest>,
    ) -> Result<Response<proto::ReserveResponse>, Status> {
        let req = validate::within_limit(request.into_inner())?;
        let call = async {
            let card = self.rate_card.current();
            let r = validate::reserve(&req, &self.ttl, card.as_deref())?;
            Ok(convert::reserve_response(self.store.reserve(r).await?))
        };
        observe("reserve", call, |r: &proto::ReserveResponse| {
            if r.decision == proto::Decision::Granted as i32 {
                "granted"
            } else {
                "denied"
            }
        })
        .await
    }

    async fn commit(
        &self,
        request: Request<proto::CommitRequest>,
    ) -> Result<Response<proto::CommitResponse>, Status> {
        let req = validate::within_limit(request.into_inner())?;
        let call = async {
            let c = validate::commit(&req)?;
            Ok(convert::commit_response(self.store.commit(c).await?))
        };
        observe("commit", call, ok).await
    }

    async fn release(
        &self,
        request: Request<proto::ReleaseRequest>,
    ) -> Result<Response<proto::ReleaseResponse>, Status> {
        let req = validate::within_limit(request.into_inner())?;
        let call = async {
            let (account, reservation) =
                validate::reservation_ref(&req.account_id, &req.reservation_id)?;
            let out = self.store.release(&account, &reservation).await?;
            Ok(convert::release_response(out))
        };
        observe("release", call, ok).await
    }

    async fn extend(
        &self,
        request: Request<proto::ExtendRequest>,
    ) -> Result<Response<proto::ExtendResponse>, Status> {
        let req = validate::within_limit(request.into_inner())?;
        let call = async {
            let e = validate::extend(&req, &self.ttl)?;
            let reservation = self.store.extend(e).await?;
            Ok(proto::ExtendResponse {
                reservation: Some(convert::reservation(reservation)),
            })
        };
        observe("extend", call, ok).await
    }

    async fn get_reservation(
        &self,
        request: Request<proto::GetReservationRequest>,
    ) -> Result<Response<proto::Reservation>, Status> {
        let req = validate::within_limit(request.into_inner())?;
        let call = async {
            let (account, reservation) =
                validate::reservation_ref(&req.account_id, &req.reservation_id)?;
            let r = self.store.get_reservation(&account, &reservation).await?;
            Ok(convert::reservation(r))
        };
        observe("get_reservation", call, ok).await
    }

    async fn get_balance(
        &self,
        request: Request<proto::GetBalanceRequest>,
    ) -> Result<Response<proto::Balance>, Status> {
        let req = validate::within_limit(request.into_inner())?;
        let call = async {
            let (account, subject) = validate::get_balance(&req)?;
            let balance = if subject.is_empty() {
                self.store.get_balance(&account).await?
            } else {
                self.store.get_subject_balance(&account, &subject).await?
            };
            Ok(convert::balance(balance))
        };
        observe("get_balance", call, ok).await
    }
}
