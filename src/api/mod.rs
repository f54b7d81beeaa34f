//! The gRPC services: [`charge::CreditsService`] (the hot path) and [`admin::AdminService`]
//! (accounts and grants), both over an `Arc<dyn Store>`; the admin service's [`reports`] read
//! the Postgres ledger.
//!
//! Every call is first authorized by [`auth`] (token, scope, account), then checked by
//! [`validate`] before it reaches the store; answers are built by
//! [`convert`]; model errors become statuses with `google.rpc.ErrorInfo` in [`errors`].

pub mod admin;
pub mod auth;
pub mod charge;
pub mod convert;
pub mod errors;
pub mod rate_card;
pub mod reports;
pub mod validate;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use tonic::{Response, Status};

pub use admin::AdminService;
pub use auth::Authorizer;
pub use charge::CreditsService;
pub use validate::TtlLimits;

use crate::error::Error;
use crate::ledger::Ledger;
use crate::pricing::RateCardCell;
use crate::proto::credit_admin_server::CreditAdminServer;
use crate::proto::credits_server::CreditsServer;
use crate::store::Store;
use crate::telemetry::metrics;
use auth::Guarded;

/// Largest request accepted by every service, in bytes: a larger one is INVALID_ARGUMENT.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// What the transport decodes at most before refusing outright (OUT_OF_RANGE, no ErrorInfo):
/// a bound on memory, above the request limit so that creditd's own check gives the typed error.
pub const MAX_DECODE_BYTES: usize = 1024 * 1024;

/// The `Credits` service behind `auth`, ready for `tonic::transport::Server::add_service`.
pub fn credits_server(
    store: Arc<dyn Store>,
    ttl: TtlLimits,
    rate_card: RateCardCell,
    auth: Authorizer,
) -> CreditsServer<Guarded<CreditsService>> {
    CreditsServer::new(Guarded::new(
        CreditsService::new(store, ttl).with_rate_card(rate_card),
        auth,
    ))
    .max_decoding_message_size(MAX_DECODE_BYTES)
}

/// The `CreditAdmin` service behind `auth`, ready for `tonic::transport::Server::add_service`.
/// Without a ledger, the reports answer `LEDGER_NOT_CONFIGURED`.
pub fn admin_server(
    store: Arc<dyn Store>,
    rate_card: RateCardCell,
    ledger: Option<Ledger>,
    auth: Authorizer,
) -> CreditAdminServer<Guarded<AdminService>> {
    CreditAdminServer::new(Guarded::new(
        AdminService::new(store)
            .with_rate_card(rate_card)
            .with_ledger(ledger),
        auth,
    ))
    .max_decoding_message_size(MAX_DECODE_BYTES)
}

/// Runs one call: times it, records its outcome and store failures, maps errors to statuses.
async fn observe<T>(
    method: &'static str,
    call: impl Future<Output = Result<T, Error>>,
    ok_outcome: impl FnOnce(&T) -> &'static str,
) -> Result<Response<T>, Status> {
    let started = Instant::now();
    let result = call.await;
    let outcome = match &result {
        Ok(answer) => ok_outcome(answer),
        Err(err) => {
            metrics::record_store_error(method, err);
            match err {
                Error::Internal(_) => tracing::error!(method, "internal error: {err}"),
                Error::Unavailable(_) => tracing::warn!(method, "store unavailable: {err}"),
                _ => tracing::debug!(method, reason = err.reason(), "refused: {err}"),
            }
            metrics::error_outcome(err)
        }
    };
    metrics::record_rpc(method, outcome, started.elapsed());
    result.map(Response::new).map_err(|e| errors::status(&e))
}

fn ok<T>(_: &T) -> &'static str {
    "ok"
}
