//! One clear line for every failure: a gRPC status with the reason from its
//! `google.rpc.ErrorInfo`, or the reason the server could not be reached.

use tonic::{Code, Status};
use tonic_types::StatusExt;

/// "NOT_FOUND ACCOUNT_NOT_FOUND: account not found"; the code alone when the reason repeats it.
/// A transport failure (UNAVAILABLE without creditd's ErrorInfo) reads as an unreachable server.
pub fn describe_status(status: &Status, server: &str) -> String {
    let details = status.get_error_details();
    let reason = details
        .error_info()
        .map(|info| info.reason.as_str())
        .filter(|reason| !reason.is_empty());
    let mut message = one_line(status.message());
    if message.is_empty() {
        message = status.code().description().to_string();
    }
    if let Some(bad_request) = details.bad_request() {
        for violation in &bad_request.field_violations {
            if !violation.field.is_empty() && !message.contains(&violation.field) {
                message.push_str(&format!(" (field {})", violation.field));
            }
        }
    }
    if status.code() == Code::Unavailable && reason.is_none() {
        return format!("cannot reach the server at {server}: {message}");
    }
    let code = code_name(status.code());
    match reason {
        Some(reason) if reason != code => format!("{code} {reason}: {message}"),
        _ => format!("{code}: {message}"),
    }
}

/// "cannot reach the server at URL: tcp connect error: Connection refused (os error 111)".
pub fn describe_connect_error(error: &(dyn std::error::Error + 'static), server: &str) -> String {
    format!(
        "cannot reach the server at {server}: {}",
        error_chain(error)
    )
}

/// An error and its sources joined with ": ", skipping a source that repeats its parent and
/// tonic's uninformative outer "transport error".
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(err) = current {
        let text = one_line(&err.to_string());
        let repeated = parts.last().is_some_and(|last| last.contains(&text));
        if !text.is_empty() && !repeated {
            parts.push(text);
        }
        current = err.source();
    }
    if parts.len() > 1 && parts[0] == "transport error" {
        parts.remove(0);
    }
    parts.join(": ")
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The canonical gRPC code name, as in API.md ("NOT_FOUND").
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use tonic_types::{ErrorDetails, FieldViolation};

    use super::*;

    const SERVER: &str = "http://127.0.0.1:50051";

    fn with_reason(code: Code, message: &str, reason: &str) -> Status {
        let details =
            ErrorDetails::with_error_info(reason, "creditd", std::collections::HashMap::new());
        Status::with_error_details(code, message, details)
    }

    #[test]
    fn prints_code_reason_and_message() {
        let status = with_reason(Code::NotFound, "account not found", "ACCOUNT_NOT_FOUND");
        assert_eq!(
            describe_status(&status, SERVER),
            "NOT_FOUND ACCOUNT_NOT_FOUND: account not found"
        );
        let status = with_reason(
            Code::AlreadyExists,
            "reservation r1 was already used with different parameters",
            "IDEMPOTENCY_CONFLICT",
        );
        assert_eq!(
            describe_status(&status, SERVER),
            "ALREADY_EXISTS IDEMPOTENCY_CONFLICT: reservation r1 was already used with different parameters"
        );
    }

    #[test]
    fn does_not_repeat_a_reason_equal_to_the_code() {
        let status = with_reason(
            Code::InvalidArgument,
            "invalid amount_micros: must be at least 1",
            "INVALID_ARGUMENT",
        );
        assert_eq!(
            describe_status(&status, SERVER),
            "INVALID_ARGUMENT: invalid amount_micros: must be at least 1"
        );
    }

    #[test]
    fn names_a_bad_field_the_message_does_not() {
        let mut details = ErrorDetails::with_error_info(
            "INVALID_ARGUMENT",
            "creditd",
            std::collections::HashMap::new(),
        );
        details.set_bad_request(vec![FieldViolation::new("ttl_seconds", "too long")]);
        let status = Status::with_error_details(Code::InvalidArgument, "too long", details);
        assert_eq!(
            describe_status(&status, SERVER),
            "INVALID_ARGUMENT: too long (field ttl_seconds)"
        );
    }

    #[test]
    fn store_unavailable_is_not_a_connection_failure() {
        let status = with_reason(
            Code::Unavailable,
            "store unavailable: timeout",
            "STORE_UNAVAILABLE",
        );
        assert_eq!(
            describe_status(&status, SERVER),
            "UNAVAILABLE STORE_UNAVAILABLE: store unavailable: timeout"
        );
    }

    #[test]
    fn a_transport_failure_reads_as_an_unreachable_server() {
        let status = Status::unavailable("error trying to connect: Connection refused");
        assert_eq!(
            describe_status(&status, SERVER),
            "cannot reach the server at http://127.0.0.1:50051: error trying to connect: Connection refused"
        );
    }

    #[test]
    fn a_status_without_details_or_message_still_makes_one_line() {
        let status = Status::new(Code::Internal, "");
        let line = describe_status(&status, SERVER);
        assert!(line.starts_with("INTERNAL: "), "{line}");
        assert!(!line.contains('\n'));
        let status = Status::new(Code::Unimplemented, "no such\nmethod");
        assert_eq!(
            describe_status(&status, SERVER),
            "UNIMPLEMENTED: no such method"
        );
    }

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|layer| layer as _)
        }
    }

    #[test]
    fn a_connect_error_shows_its_causes() {
        let error = Layer(
            "transport error",
            Some(Box::new(Layer(
                "tcp connect error",
                Some(Box::new(Layer("Connection refused (os error 111)", None))),
            ))),
        );
        assert_eq!(
            describe_connect_error(&error, SERVER),
            "cannot reach the server at http://127.0.0.1:50051: tcp connect error: Connection refused (os error 111)"
        );
    }
}
