//! [`Guarded`] wraps a service and checks every RPC against its [`Rule`] before the service runs.
//!
//! The rules are the tables below, one line per RPC: method, the scopes it accepts, and the
//! request field that names the account (`global` for an RPC that touches no account;
//! `account_or_parent` for the roll-up by parent, whose accounts the service checks). The
//! generated service traits make a new RPC a compile error here until its line is added, so no
//! RPC can be served without a rule.

use tonic::{Request, Response, Status};

use super::{Authorizer, Scope};
use crate::api::{AdminService, CreditsService};
use crate::proto::{self, credit_admin_server::CreditAdmin, credits_server::Credits};

/// What one RPC needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// `Credits` or `CreditAdmin`.
    pub service: &'static str,
    /// The RPC as in the proto (`Reserve`).
    pub method: &'static str,
    /// The method label of the RPC metrics (`reserve`).
    pub metric: &'static str,
    /// Any one of these scopes is enough.
    pub scopes: &'static [Scope],
}

const CHARGE: &[Scope] = &[Scope::Charge];
const CHARGE_OR_READ: &[Scope] = &[Scope::Charge, Scope::Read];
const ADMIN: &[Scope] = &[Scope::Admin];
const READ_OR_ADMIN: &[Scope] = &[Scope::Read, Scope::Admin];
/// A product asking on behalf of its user (`charge`), or an admin.
const CHARGE_OR_ADMIN: &[Scope] = &[Scope::Charge, Scope::Admin];

/// A service behind the authorizer.
pub struct Guarded<S> {
    inner: S,
    auth: Authorizer,
}

impl<S> Guarded<S> {
    pub fn new(inner: S, auth: Authorizer) -> Self {
        Guarded { inner, auth }
    }
}

macro_rules! account_of {
    ($request:expr, global) => {
        None
    };
    // The account named; none for a roll-up by parent (`account_id` empty), whose accounts the
    // service checks one by one against the caller's `AccountAccess`.
    ($request:expr, account_or_parent) => {
        Some($request.get_ref().account_id.as_str()).filter(|a| !a.is_empty())
    };
    ($request:expr, $field:ident) => {
        Some($request.get_ref().$field.as_str())
    };
}

/// What else the service learns of the caller: the accounts it may touch, for the RPCs that
/// reach accounts their request does not name.
macro_rules! grant_access {
    ($auth:expr, $request:expr, $caller:expr, account_or_parent) => {
        let access = $auth.access(&$caller);
        $request.extensions_mut().insert(access);
    };
    ($auth:expr, $request:expr, $caller:expr, $account:ident) => {};
}

macro_rules! guarded {
    ($trait_:ident for $service:ident, $rules:ident = $name:literal {
        $( $method:ident: $rpc:literal ($req:ident) -> $resp:ident, $scopes:ident, $account:ident; )*
    }) => {
        #[doc = concat!("The rules of `", $name, "`, one per RPC.")]
        pub const $rules: &[Rule] = &[
            $( Rule { service: $name, method: $rpc, metric: stringify!($method), scopes: $scopes }, )*
        ];

        #[tonic::async_trait]
        impl $trait_ for Guarded<$service> {
            $(
                async fn $method(
                    &self,
                    mut request: Request<proto::$req>,
                ) -> Result<Response<proto::$resp>, Status> {
                    const RULE: Rule = Rule {
                        service: $name,
                        method: $rpc,
                        metric: stringify!($method),
                        scopes: $scopes,
                    };
                    let caller = self.auth.guard(&request, &RULE, account_of!(request, $account))?;
                    grant_access!(self.auth, request, caller, $account);
                    request.extensions_mut().insert(caller);
                    self.inner.$method(request).await
                }
            )*
        }
    };
}

guarded!(Credits for CreditsService, CREDITS_RULES = "Credits" {
    quote: "Quote" (QuoteRequest) -> QuoteResponse, CHARGE_OR_READ, account_id;
    reserve: "Reserve" (ReserveRequest) -> ReserveResponse, CHARGE, account_id;
    commit: "Commit" (CommitRequest) -> CommitResponse, CHARGE, account_id;
    release: "Release" (ReleaseRequest) -> ReleaseResponse, CHARGE, account_id;
    extend: "Extend" (ExtendRequest) -> ExtendResponse, CHARGE, account_id;
    get_reservation: "GetReservation" (GetReservationRequest) -> Reservation, CHARGE_OR_READ, account_id;
    get_balance: "GetBalance" (GetBalanceRequest) -> Balance, CHARGE_OR_READ, account_id;
});

guarded!(CreditAdmin for AdminService, ADMIN_RULES = "CreditAdmin" {
    create_account: "CreateAccount" (CreateAccountRequest) -> Account, ADMIN, account_id;
    get_account: "GetAccount" (GetAccountRequest) -> Account, READ_OR_ADMIN, account_id;
    update_account: "UpdateAccount" (UpdateAccountRequest) -> Account, ADMIN, account_id;
    create_grant: "CreateGrant" (CreateGrantRequest) -> Grant, ADMIN, account_id;
    list_grants: "ListGrants" (ListGrantsRequest) -> ListGrantsResponse, READ_OR_ADMIN, account_id;
    void_grant: "VoidGrant" (VoidGrantRequest) -> Grant, ADMIN, account_id;
    get_rate_card: "GetRateCard" (GetRateCardRequest) -> RateCard, READ_OR_ADMIN, global;
    set_subject_policy: "SetSubjectPolicy" (SetSubjectPolicyRequest) -> SubjectPolicy, ADMIN, account_id;
    get_subject_policy: "GetSubjectPolicy" (GetSubjectPolicyRequest) -> SubjectPolicy, READ_OR_ADMIN, account_id;
    request_spending_access: "RequestSpendingAccess" (RequestSpendingAccessRequest) -> RequestSpendingAccessResponse, CHARGE_OR_ADMIN, account_id;
    get_usage: "GetUsage" (GetUsageRequest) -> GetUsageResponse, READ_OR_ADMIN, account_id;
    get_profit_and_loss: "GetProfitAndLoss" (GetProfitAndLossRequest) -> GetProfitAndLossResponse, READ_OR_ADMIN, account_or_parent;
    list_ledger_entries: "ListLedgerEntries" (ListLedgerEntriesRequest) -> ListLedgerEntriesResponse, READ_OR_ADMIN, account_id;
    list_audit_events: "ListAuditEvents" (ListAuditEventsRequest) -> ListAuditEventsResponse, READ_OR_ADMIN, account_id;
});

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;
    use prost_types::FileDescriptorSet;

    /// Every RPC of the proto has exactly one rule, and CreditAdmin reads are the only admin
    /// RPCs open to `read`.
    #[test]
    fn every_rpc_has_one_rule() {
        let set = FileDescriptorSet::decode(proto::FILE_DESCRIPTOR_SET).expect("descriptor");
        let mut seen = 0;
        for service in set.file.iter().flat_map(|f| f.service.iter()) {
            let rules = match service.name() {
                "Credits" => CREDITS_RULES,
                "CreditAdmin" => ADMIN_RULES,
                _ => continue,
            };
            assert_eq!(rules.len(), service.method.len(), "{}", service.name());
            for method in &service.method {
                let matching: Vec<_> = rules.iter().filter(|r| r.method == method.name()).collect();
                assert_eq!(matching.len(), 1, "{}/{}", service.name(), method.name());
                seen += 1;
            }
        }
        assert_eq!(seen, CREDITS_RULES.len() + ADMIN_RULES.len());
        for rule in ADMIN_RULES {
            let is_read = rule.method.starts_with("Get") || rule.method.starts_with("List");
            assert_eq!(rule.scopes.contains(&Scope::Read), is_read, "{rule:?}");
            assert!(rule.scopes.contains(&Scope::Admin), "{rule:?}");
        }
    }
}
