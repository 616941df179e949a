//! The API's errors: a JSON body `{"code": ..., "message": ...}` with a stable code from the
//! catalog below and a 4xx status for anything the caller got wrong; 5xx only for the keeper's
//! own trouble (never for bad input).

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::requests::RequestError;

/// One offending field of a metadata document.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldErrorBody {
    /// JSON pointer to the field.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// The offending fields.
pub type FieldErrors = Vec<FieldErrorBody>;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable code (see docs/keeper.md, "Error catalog").
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
    /// The offending fields, for `invalid_metadata`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<FieldErrors>,
}

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                code,
                message: message.into(),
                fields: None,
            },
            retry_after: None,
        }
    }

    /// Adds a `Retry-After` header: the request may succeed if sent again after `seconds`.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// A malformed request (400).
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed", message)
    }

    /// An invalid metadata document (422) with its fields.
    pub fn invalid_metadata(message: impl Into<String>, fields: FieldErrors) -> Self {
        let mut error = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_metadata",
            message,
        );
        error.body.fields = Some(fields);
        error
    }

    /// The keeper's own failure (500); the details are logged, not returned.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the keeper failed; the request may be retried",
        )
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.body.code
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<RequestError> for ApiError {
    fn from(error: RequestError) -> Self {
        let status = match &error {
            RequestError::Store(store) => return Self::internal(store),
            RequestError::WrongCommand { .. } | RequestError::DeadlineTooFar { .. } => {
                StatusCode::BAD_REQUEST
            }
            RequestError::Expired { .. } | RequestError::Forged { .. } => StatusCode::UNAUTHORIZED,
            RequestError::UnknownAgreement(_) => StatusCode::NOT_FOUND,
            RequestError::WrongTemplate { .. }
            | RequestError::WrongAsset { .. }
            | RequestError::WrongConsumer { .. } => StatusCode::FORBIDDEN,
            RequestError::Unpaid(_) => StatusCode::PAYMENT_REQUIRED,
            RequestError::Ended(_) => StatusCode::GONE,
            RequestError::Replayed { .. } => StatusCode::CONFLICT,
        };
        Self::new(status, error.code(), error.to_string())
    }
}
