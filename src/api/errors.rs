//! Model errors as gRPC statuses, per API.md: a status code plus `google.rpc.ErrorInfo` with
//! `domain = "creditd"` and `reason = Error::reason()`. Invalid arguments also carry the field, in
//! the ErrorInfo metadata (`field`) and as a `google.rpc.BadRequest` field violation.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::Error;

pub const DOMAIN: &str = "creditd";

pub fn code(err: &Error) -> Code {
    match err {
        Error::InvalidArgument { .. } => Code::InvalidArgument,
        Error::IdempotencyConflict { .. } => Code::AlreadyExists,
        Error::AccountNotFound | Error::ReservationNotFound | Error::GrantNotFound => {
            Code::NotFound
        }
        Error::ReservationCommitted | Error::ReservationReleased | Error::ReservationExpired => {
            Code::FailedPrecondition
        }
        Error::Unavailable(_) => Code::Unavailable,
        Error::Internal(_) => Code::Internal,
    }
}

pub fn status(err: &Error) -> Status {
    let mut metadata = HashMap::new();
    let mut details = ErrorDetails::new();
    match err {
        Error::InvalidArgument { field, message } => {
            metadata.insert("field".to_string(), field.clone());
            details.add_bad_request_violation(field.clone(), message.clone());
        }
        Error::IdempotencyConflict { what } => {
            metadata.insert("field".to_string(), what.clone());
        }
        _ => {}
    }
    details.set_error_info(err.reason(), DOMAIN, metadata);
    Status::with_error_details(code(err), err.to_string(), details)
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        status(&err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_its_code_and_reason() {
        let table = [
            (
                Error::invalid("amount_micros", "too big"),
                Code::InvalidArgument,
                "INVALID_ARGUMENT",
            ),
            (
                Error::conflict("reservation_id"),
                Code::AlreadyExists,
                "IDEMPOTENCY_CONFLICT",
            ),
            (Error::AccountNotFound, Code::NotFound, "ACCOUNT_NOT_FOUND"),
            (
                Error::ReservationNotFound,
                Code::NotFound,
                "RESERVATION_NOT_FOUND",
            ),
            (Error::GrantNotFound, Code::NotFound, "GRANT_NOT_FOUND"),
            (
                Error::ReservationReleased,
                Code::FailedPrecondition,
                "RESERVATION_RELEASED",
            ),
            (
                Error::ReservationCommitted,
                Code::FailedPrecondition,
                "RESERVATION_COMMITTED",
            ),
            (
                Error::ReservationExpired,
                Code::FailedPrecondition,
                "RESERVATION_EXPIRED",
            ),
            (
                Error::Unavailable("connection refused".into()),
                Code::Unavailable,
                "STORE_UNAVAILABLE",
            ),
            (Error::Internal("bug".into()), Code::Internal, "INTERNAL"),
        ];
        for (err, want_code, want_reason) in table {
            let st = status(&err);
            assert_eq!(st.code(), want_code, "{err:?}");
            assert_eq!(st.message(), err.to_string());
            let info = st.get_details_error_info().expect("ErrorInfo attached");
            assert_eq!(info.reason, want_reason, "{err:?}");
            assert_eq!(info.domain, "creditd");
        }
    }

    #[test]
    fn invalid_arguments_name_the_field() {
        let st = Status::from(Error::invalid("labels", "at most 16 labels"));
        let info = st.get_details_error_info().expect("ErrorInfo");
        assert_eq!(
            info.metadata.get("field").map(String::as_str),
            Some("labels")
        );
        let bad = st.get_details_bad_request().expect("BadRequest");
        assert_eq!(bad.field_violations[0].field, "labels");
        assert_eq!(bad.field_violations[0].description, "at most 16 labels");

        let st = status(&Error::conflict("capture_id"));
        let info = st.get_details_error_info().expect("ErrorInfo");
        assert_eq!(
            info.metadata.get("field").map(String::as_str),
            Some("capture_id")
        );
    }
}
