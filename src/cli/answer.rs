//! What the server answered, with what the printers need from the request, and the exit code
//! it means.

use crate::proto::{
    Account, Balance, CommitResponse, Decision, ExtendResponse, Grant, QuoteResponse, RateCard,
    ReleaseResponse, Reservation, ReserveResponse, SubjectPolicy,
};

use super::reports::{AuditTrail, Entries, ProfitAndLoss, UsageReport};

/// Exit code of a successful call whose answer is "no" (a reserve denied, a quote not affordable):
/// distinct from errors (1) and bad command-line input (2), so scripts can branch on it.
pub const EXIT_DENIED: u8 = 3;

#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Account(Account),
    Grant(Grant),
    Grants(Vec<Grant>),
    Reserve(ReserveResponse),
    Commit {
        response: CommitResponse,
        /// The partial capture's id, when the hold was kept open.
        capture: Option<String>,
        /// Whether the excess over the hold was left uncharged (`OVERRUN_CAP`).
        cap_overrun: bool,
    },
    Release(ReleaseResponse),
    Extend(ExtendResponse),
    Reservation(Reservation),
    Balance(Balance),
    Quote(QuoteResponse),
    /// A subject's policy, with the account it belongs to.
    Policy {
        account: String,
        policy: SubjectPolicy,
    },
    /// A spending access request was recorded.
    AccessRequested {
        account: String,
        subject: String,
    },
    RateCard(RateCard),
    Usage(UsageReport),
    ProfitAndLoss(ProfitAndLoss),
    Entries(Entries),
    Audit(AuditTrail),
}

impl Answer {
    /// 0, or [`EXIT_DENIED`] when the answer is a refusal.
    pub fn exit_code(&self) -> u8 {
        match self {
            Answer::Reserve(response) if response.decision() != Decision::Granted => EXIT_DENIED,
            Answer::Quote(response) if !response.affordable => EXIT_DENIED,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_exit_with_three() {
        let granted = ReserveResponse {
            decision: Decision::Granted as i32,
            ..Default::default()
        };
        let denied = ReserveResponse {
            decision: Decision::Denied as i32,
            ..Default::default()
        };
        assert_eq!(Answer::Reserve(granted).exit_code(), 0);
        assert_eq!(Answer::Reserve(denied).exit_code(), EXIT_DENIED);
        let affordable = QuoteResponse {
            affordable: true,
            ..Default::default()
        };
        assert_eq!(Answer::Quote(affordable).exit_code(), 0);
        assert_eq!(
            Answer::Quote(QuoteResponse::default()).exit_code(),
            EXIT_DENIED
        );
        assert_eq!(Answer::Balance(Balance::default()).exit_code(), 0);
    }
}
