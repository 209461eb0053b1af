//! The gateway's one error type and its one mapping to HTTP.
//!
//! Every REST handler returns [`ApiError`]; gRPC statuses from the core are converted in
//! [`From<tonic::Status>`], the single place where gRPC codes become HTTP statuses. The body is
//! always `{"error": {"code": "...", "message": "..."}}`. Client mistakes (4xx) carry the core's
//! message, which describes the caller's input; server faults (5xx) carry a fixed message and
//! the details go to the log only.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use tonic::Code;

/// An error answered to a REST client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request body is not valid JSON (400 `invalid_json`).
    #[error("{0}")]
    InvalidJson(String),
    /// The body is JSON but not the expected shape, or a parameter is invalid (422 `invalid_argument`).
    #[error("{0}")]
    InvalidArgument(String),
    /// The body is not JSON (415 `unsupported_media_type`).
    #[error("content-type must be application/json")]
    UnsupportedMediaType,
    /// The body is larger than the gateway's limit, or the message made of it is larger than
    /// the core's (413 `payload_too_large`).
    #[error("{0}")]
    PayloadTooLarge(String),
    /// No such job, or no such route (404 `not_found`).
    #[error("{0}")]
    NotFound(String),
    /// The job is not in a state that allows the operation (409 `failed_precondition`).
    #[error("{0}")]
    Conflict(String),
    /// The core refused for lack of capacity (429 `resource_exhausted`).
    #[error("{0}")]
    TooManyRequests(String),
    /// The core wants credentials (401 `unauthenticated`).
    #[error("{0}")]
    Unauthenticated(String),
    /// The credentials do not allow this (403 `permission_denied`).
    #[error("{0}")]
    PermissionDenied(String),
    /// The core cannot be reached or is draining (503 `unavailable`).
    #[error("a pfc service behind the gateway is unavailable, retry later")]
    Unavailable,
    /// The core did not answer in time (504 `deadline_exceeded`).
    #[error("a pfc service behind the gateway did not answer in time")]
    Timeout,
    /// Anything else: a bug or an unexpected core answer (500 `internal`). Logged, never shown.
    #[error("internal error")]
    Internal(String),
}

/// The JSON error body: `{"error": {"code", "message"}}`.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `not_found`, `invalid_argument`, `invalid_json`.
    #[schema(example = "not_found")]
    pub code: String,
    /// Human-readable explanation.
    #[schema(example = "job 01JABCDEFGHJKMNPQRSTVWXYZ0 not found")]
    pub message: String,
}

impl ApiError {
    /// HTTP status and stable code of this error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::InvalidJson(_) => (StatusCode::BAD_REQUEST, "invalid_json"),
            ApiError::InvalidArgument(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_argument"),
            ApiError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "failed_precondition"),
            ApiError::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "resource_exhausted"),
            ApiError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            ApiError::PermissionDenied(_) => (StatusCode::FORBIDDEN, "permission_denied"),
            ApiError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Timeout => (StatusCode::GATEWAY_TIMEOUT, "deadline_exceeded"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// For lookups by id: an id the core rejects as malformed names no job, so it is a 404
    /// like any unknown id (what the origin API answered).
    pub fn lookup(status: tonic::Status, job_id: &str) -> Self {
        match status.code() {
            Code::InvalidArgument | Code::NotFound => {
                ApiError::NotFound(format!("job {job_id} not found"))
            }
            _ => status.into(),
        }
    }
}

/// How the jobs core's message for a payload over its limit starts (`RESOURCE_EXHAUSTED`
/// "payload too large: N bytes, the limit is M bytes", `pfc_jobs::JobError::PayloadTooLarge`).
pub const PAYLOAD_TOO_LARGE: &str = "payload too large";

/// The one gRPC → HTTP mapping.
impl From<tonic::Status> for ApiError {
    fn from(s: tonic::Status) -> Self {
        let msg = s.message().to_string();
        match s.code() {
            Code::InvalidArgument | Code::OutOfRange => ApiError::InvalidArgument(msg),
            Code::NotFound => ApiError::NotFound(msg),
            Code::AlreadyExists | Code::FailedPrecondition | Code::Aborted => {
                ApiError::Conflict(msg)
            }
            // a request message or payload over the server's size limit is the caller's
            // size, not load
            Code::ResourceExhausted
                if pfc_runtime::message_limit::is_message_too_large(&s)
                    || msg.starts_with(PAYLOAD_TOO_LARGE) =>
            {
                ApiError::PayloadTooLarge(msg)
            }
            Code::ResourceExhausted => ApiError::TooManyRequests(msg),
            Code::Unauthenticated => ApiError::Unauthenticated(msg),
            Code::PermissionDenied => ApiError::PermissionDenied(msg),
            Code::Unavailable | Code::Cancelled => ApiError::Unavailable,
            Code::DeadlineExceeded => ApiError::Timeout,
            Code::Ok | Code::Unknown | Code::Unimplemented | Code::Internal | Code::DataLoss => {
                ApiError::Internal(format!("core answered {:?}: {msg}", s.code()))
            }
        }
    }
}

impl ApiError {
    /// The JSON body of this error (also one item's error in a batch answer). 5xx are logged
    /// here, and their body says only what kind of fault it was.
    pub fn body(&self) -> ErrorBody {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::warn!(error = ?self, %status, "request failed");
        }
        ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message: self.to_string(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body();
        (self.status_and_code().0, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each gRPC code lands on the HTTP status the API documents, and 5xx hide the details.
    #[test]
    fn grpc_codes_map_to_http() {
        let cases = [
            (Code::InvalidArgument, 422),
            (Code::OutOfRange, 422),
            (Code::NotFound, 404),
            (Code::FailedPrecondition, 409),
            (Code::ResourceExhausted, 429),
            (Code::Unauthenticated, 401),
            (Code::PermissionDenied, 403),
            (Code::Unavailable, 503),
            (Code::DeadlineExceeded, 504),
            (Code::Internal, 500),
        ];
        for (code, http) in cases {
            let err = ApiError::from(tonic::Status::new(code, "secret detail"));
            assert_eq!(err.status_and_code().0.as_u16(), http, "{code:?}");
            if http >= 500 {
                assert!(!err.to_string().contains("secret"), "{code:?} leaks: {err}");
            }
        }
    }

    /// A request message or a payload over the core's size limit is a 413 naming the limit,
    /// while other RESOURCE_EXHAUSTED answers (a full queue, a rate limit) stay 429s.
    #[test]
    fn message_too_large_is_413() {
        let err = ApiError::from(pfc_runtime::message_limit::too_large(5 << 20, 4 << 20));
        assert_eq!(
            err.status_and_code(),
            (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
        );
        assert!(err.to_string().contains("4194304"), "{err}");
        let err = ApiError::from(tonic::Status::resource_exhausted(
            "payload too large: 2000000 bytes, the limit is 1048576 bytes",
        ));
        assert_eq!(err.status_and_code().0, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(err.to_string().contains("1048576"), "{err}");
        let err = ApiError::from(tonic::Status::resource_exhausted("queue full"));
        assert_eq!(err.status_and_code().0, StatusCode::TOO_MANY_REQUESTS);
    }

    /// A malformed id is a 404 for lookups, like an unknown one.
    #[test]
    fn malformed_id_is_not_found() {
        let err = ApiError::lookup(tonic::Status::invalid_argument("bad ulid"), "x");
        assert_eq!(err.status_and_code().0, StatusCode::NOT_FOUND);
    }
}
