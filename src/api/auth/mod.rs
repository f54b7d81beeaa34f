//! Authorization of every Credits and CreditAdmin call: bearer tokens from the tokens file
//! ([`tokens`]), one rule per RPC ([`guard`]), deny by default.
//!
//! A call must carry `authorization: Bearer <token>`. The token is hashed and looked up in the
//! tokens file; the RPC's rule names the scopes it accepts; the request's `account_id` must be one
//! the token may touch. All of this happens before the service (and so the store) sees the call.
//! The failures are `UNAUTHENTICATED` (no token, malformed header, unknown token) and
//! `PERMISSION_DENIED` (scope or account), each with a `google.rpc.ErrorInfo` of that reason.
//!
//! Without a tokens file the [`Authorizer`] is open: every call is allowed (the server refuses a
//! non-loopback address in that case unless told `--insecure-no-auth`, see `config`).
//!
//! A granted call carries its [`Caller`] in the request extensions, for audit.

pub mod guard;
pub mod tokens;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tonic::metadata::MetadataMap;
use tonic::{Code, Request, Status};
use tonic_types::{ErrorDetails, StatusExt};

pub use guard::{Guarded, Rule, ADMIN_RULES, CREDITS_RULES};
pub use tokens::{hash_hex, AccountPattern, Scope, TokenEntry, TokenSet};

use super::errors::DOMAIN;
use crate::telemetry::metrics;

/// Who made a granted call; in the request extensions of every call a service receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The named entry of the tokens file.
    Token(Arc<str>),
    /// Authorization is off (no tokens file).
    Open,
}

impl Caller {
    /// The token's name, or `-` when authorization is off.
    pub fn name(&self) -> &str {
        match self {
            Caller::Token(name) => name,
            Caller::Open => "-",
        }
    }

    /// The caller of a request that went through the guard.
    pub fn of<T>(request: &Request<T>) -> Option<&Caller> {
        request.extensions().get::<Caller>()
    }
}

/// The accounts a granted call may touch, for an RPC that reaches accounts its request does not
/// name: the profit-and-loss roll-up by parent, whose accounts only the ledger knows. The guard
/// of such an RPC puts it in the request extensions; the service checks every account it reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountAccess {
    /// Authorization is off.
    All,
    /// The token's `accounts` patterns.
    Only(Vec<AccountPattern>),
}

impl AccountAccess {
    pub fn allows(&self, account_id: &str) -> bool {
        match self {
            AccountAccess::All => true,
            AccountAccess::Only(patterns) => patterns.iter().any(|p| p.matches(account_id)),
        }
    }

    /// The access of a request that went through the guard of such an RPC.
    pub fn of<T>(request: &Request<T>) -> Option<&AccountAccess> {
        request.extensions().get::<AccountAccess>()
    }
}

/// Decides every call; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Authorizer {
    tokens: Option<Arc<TokenSet>>,
}

impl Authorizer {
    /// Every call allowed (no tokens file).
    pub fn open() -> Self {
        Authorizer { tokens: None }
    }

    /// Calls need a token of `tokens`.
    pub fn with_tokens(tokens: TokenSet) -> Self {
        Authorizer {
            tokens: Some(Arc::new(tokens)),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.tokens.is_some()
    }

    pub fn tokens(&self) -> Option<&TokenSet> {
        self.tokens.as_deref()
    }

    /// Checks a call against its rule: who is calling, or why the call is refused.
    pub fn authorize<T>(
        &self,
        request: &Request<T>,
        rule: &Rule,
        account_id: Option<&str>,
    ) -> Result<Caller, Status> {
        match &self.tokens {
            None => Ok(Caller::Open),
            Some(tokens) => {
                let entry = check(tokens, request.metadata(), rule, account_id)?;
                Ok(Caller::Token(Arc::from(entry.name.as_str())))
            }
        }
    }

    /// The accounts `caller` (granted by this authorizer) may touch.
    pub fn access(&self, caller: &Caller) -> AccountAccess {
        match (&self.tokens, caller) {
            (Some(tokens), Caller::Token(name)) => AccountAccess::Only(
                tokens
                    .entries()
                    .iter()
                    .find(|e| e.name.as_str() == &**name)
                    .map(|e| e.accounts.clone())
                    .unwrap_or_default(),
            ),
            (Some(_), Caller::Open) => AccountAccess::Only(Vec::new()),
            (None, _) => AccountAccess::All,
        }
    }

    /// [`Authorizer::authorize`], recording a refusal in the logs and the RPC metrics.
    pub(crate) fn guard<T>(
        &self,
        request: &Request<T>,
        rule: &Rule,
        account_id: Option<&str>,
    ) -> Result<Caller, Status> {
        let started = Instant::now();
        self.authorize(request, rule, account_id)
            .inspect_err(|status| {
                let outcome = match status.code() {
                    Code::Unauthenticated => "unauthenticated",
                    _ => "permission_denied",
                };
                tracing::info!(
                    method = rule.method,
                    outcome,
                    "refused: {}",
                    status.message()
                );
                metrics::record_rpc(rule.metric, outcome, started.elapsed());
            })
    }
}

fn check<'a>(
    tokens: &'a TokenSet,
    metadata: &MetadataMap,
    rule: &Rule,
    account_id: Option<&str>,
) -> Result<&'a TokenEntry, Status> {
    let token = bearer_token(metadata)?;
    let entry = tokens
        .find(token)
        .ok_or_else(|| unauthenticated(rule, "unknown bearer token".to_string()))?;
    if !entry.has_any_scope(rule.scopes) {
        let wanted: Vec<&str> = rule.scopes.iter().map(|s| s.as_str()).collect();
        return Err(permission_denied(
            rule,
            format!(
                "token {:?} may not call {}: it needs scope {}",
                entry.name,
                rule.method,
                wanted.join(" or ")
            ),
        ));
    }
    if let Some(account) = account_id {
        if !entry.allows_account(account) {
            return Err(permission_denied(
                rule,
                format!("token {:?} may not use account {account:?}", entry.name),
            ));
        }
    }
    Ok(entry)
}

/// The token of `authorization: Bearer <token>`.
fn bearer_token(metadata: &MetadataMap) -> Result<&str, Status> {
    let missing = |why: &str| Status::from(Denial::unauthenticated(why));
    let value = metadata
        .get("authorization")
        .ok_or_else(|| missing("missing `authorization: Bearer <token>` metadata"))?;
    let text = value
        .to_str()
        .map_err(|_| missing("the authorization metadata is not ASCII"))?;
    let (scheme, token) = text
        .trim()
        .split_once(' ')
        .ok_or_else(|| missing("the authorization metadata must be `Bearer <token>`"))?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(missing(
            "the authorization metadata must be `Bearer <token>`",
        ));
    }
    Ok(token)
}

/// A refusal before any RPC-specific detail is known.
struct Denial {
    code: Code,
    reason: &'static str,
    message: String,
    method: Option<&'static str>,
}

impl Denial {
    fn unauthenticated(message: &str) -> Self {
        Denial {
            code: Code::Unauthenticated,
            reason: "UNAUTHENTICATED",
            message: message.to_string(),
            method: None,
        }
    }
}

impl From<Denial> for Status {
    fn from(d: Denial) -> Status {
        let mut metadata = HashMap::new();
        if let Some(method) = d.method {
            metadata.insert("method".to_string(), method.to_string());
        }
        let mut details = ErrorDetails::new();
        details.set_error_info(d.reason, DOMAIN, metadata);
        Status::with_error_details(d.code, d.message, details)
    }
}

fn unauthenticated(rule: &Rule, message: String) -> Status {
    Denial {
        code: Code::Unauthenticated,
        reason: "UNAUTHENTICATED",
        message,
        method: Some(rule.method),
    }
    .into()
}

fn permission_denied(rule: &Rule, message: String) -> Status {
    Denial {
        code: Code::PermissionDenied,
        reason: "PERMISSION_DENIED",
        message,
        method: Some(rule.method),
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::metadata::MetadataValue;

    const RESERVE: Rule = Rule {
        service: "Credits",
        method: "Reserve",
        metric: "reserve",
        scopes: &[Scope::Charge],
    };

    fn authorizer() -> Authorizer {
        let text = format!(
            "[[token]]\nname = \"backend\"\nsha256 = \"{}\"\nscopes = [\"charge\"]\naccounts = [\"acme-*\"]\n\
             [[token]]\nname = \"viewer\"\nsha256 = \"{}\"\nscopes = [\"read\"]\naccounts = [\"*\"]\n",
            hash_hex("secret-1"),
            hash_hex("secret-2")
        );
        Authorizer::with_tokens(TokenSet::parse(&text).expect("valid"))
    }

    fn request(auth: Option<&str>) -> Request<()> {
        let mut r = Request::new(());
        if let Some(value) = auth {
            r.metadata_mut().insert(
                "authorization",
                MetadataValue::try_from(value).expect("ascii"),
            );
        }
        r
    }

    fn reason(status: &Status) -> String {
        status.get_details_error_info().expect("ErrorInfo").reason
    }

    #[test]
    fn decisions() {
        let auth = authorizer();
        let cases: &[(Option<&str>, &str, Code)] = &[
            (None, "acme-1", Code::Unauthenticated),
            (Some("secret-1"), "acme-1", Code::Unauthenticated),
            (Some("Basic secret-1"), "acme-1", Code::Unauthenticated),
            (Some("Bearer "), "acme-1", Code::Unauthenticated),
            (Some("Bearer nope"), "acme-1", Code::Unauthenticated),
            (Some("Bearer secret-2"), "acme-1", Code::PermissionDenied),
            (Some("Bearer secret-1"), "globex-1", Code::PermissionDenied),
            (Some("Bearer secret-1"), "acme-1", Code::Ok),
            (Some("bearer  secret-1 "), "acme-1", Code::Ok),
        ];
        for (header, account, want) in cases {
            let req = request(*header);
            match auth.authorize(&req, &RESERVE, Some(account)) {
                Ok(caller) => {
                    assert_eq!(*want, Code::Ok, "{header:?} {account}");
                    assert_eq!(caller, Caller::Token("backend".into()));
                }
                Err(status) => {
                    assert_eq!(status.code(), *want, "{header:?} {account}: {status:?}");
                    let want_reason = match want {
                        Code::Unauthenticated => "UNAUTHENTICATED",
                        _ => "PERMISSION_DENIED",
                    };
                    assert_eq!(reason(&status), want_reason);
                }
            }
        }
    }

    #[test]
    fn open_authorizer_allows_everyone() {
        let caller = Authorizer::open()
            .authorize(&request(None), &RESERVE, Some("anything"))
            .expect("open");
        assert_eq!(caller.name(), "-");
    }
}
