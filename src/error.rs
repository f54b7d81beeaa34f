//! The one error type of creditd's operations, shared by the model, the stores and the API.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Error {
    #[error("invalid {field}: {message}")]
    InvalidArgument { field: String, message: String },
    #[error("account not found")]
    AccountNotFound,
    #[error("reservation not found")]
    ReservationNotFound,
    #[error("grant not found")]
    GrantNotFound,
    #[error("{what} was already used with different parameters")]
    IdempotencyConflict { what: String },
    #[error("the reservation is already committed")]
    ReservationCommitted,
    #[error("the reservation was released")]
    ReservationReleased,
    #[error("the reservation has expired")]
    ReservationExpired,
    /// A transient store failure (Redis unreachable, timeout, rebuild in progress).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field: field.to_string(),
            message: message.into(),
        }
    }

    pub fn conflict(what: impl Into<String>) -> Self {
        Error::IdempotencyConflict { what: what.into() }
    }

    /// The machine-readable reason of API.md (`google.rpc.ErrorInfo.reason`).
    pub fn reason(&self) -> &'static str {
        match self {
            Error::InvalidArgument { .. } => "INVALID_ARGUMENT",
            Error::AccountNotFound => "ACCOUNT_NOT_FOUND",
            Error::ReservationNotFound => "RESERVATION_NOT_FOUND",
            Error::GrantNotFound => "GRANT_NOT_FOUND",
            Error::IdempotencyConflict { .. } => "IDEMPOTENCY_CONFLICT",
            Error::ReservationCommitted => "RESERVATION_COMMITTED",
            Error::ReservationReleased => "RESERVATION_RELEASED",
            Error::ReservationExpired => "RESERVATION_EXPIRED",
            Error::Unavailable(_) => "STORE_UNAVAILABLE",
            Error::Internal(_) => "INTERNAL",
        }
    }

    /// Rebuild an error from the reason a Lua script returned.
    pub fn from_reason(reason: &str, field: &str, detail: &str) -> Self {
        match reason {
            "INVALID_ARGUMENT" => Error::invalid(field, detail),
            "ACCOUNT_NOT_FOUND" => Error::AccountNotFound,
            "RESERVATION_NOT_FOUND" => Error::ReservationNotFound,
            "GRANT_NOT_FOUND" => Error::GrantNotFound,
            "IDEMPOTENCY_CONFLICT" => Error::conflict(detail),
            "RESERVATION_COMMITTED" => Error::ReservationCommitted,
            "RESERVATION_RELEASED" => Error::ReservationReleased,
            "RESERVATION_EXPIRED" => Error::ReservationExpired,
            other => Error::Internal(format!("unknown reason {other}: {detail}")),
        }
    }
}
