//! Errors as values: [`ApiError`] is what a client sees (an HTTP status and the OpenAI
//! error object `{"error": {"message", "type", "param", "code"}}`), [`ServerError`] is what
//! stops the server from starting or running.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A JSON response with `status`.
pub fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// One error answer in OpenAI's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// `invalid_request_error`, `rate_limit_error`, `server_error`, …
    pub kind: &'static str,
    /// The request field at fault, if one is.
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

impl ApiError {
    /// 400 naming the field at fault.
    pub fn invalid(param: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: Some(param.to_owned()),
            code: Some("invalid_value"),
        }
    }

    /// 400 about the request as a whole (e.g. malformed JSON).
    pub fn bad_request(message: impl Into<String>, code: &'static str) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: None,
            code: Some(code),
        }
    }

    pub fn with_status(
        status: StatusCode,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError { status, message: message.into(), kind, param: None, code: Some(code) }
    }

    /// 429: the queue is full.
    pub fn queue_full(capacity: usize) -> ApiError {
        Self::with_status(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "queue_full",
            format!("the server's queue of {capacity} waiting requests is full; retry later"),
        )
    }

    /// 429: the request's KV caches need more than the server's whole cache budget.
    pub fn cache_budget(needed: usize, budget: usize) -> ApiError {
        Self::with_status(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "cache_budget_exceeded",
            format!(
                "this request's KV caches need {} MiB, more than the server's whole cache budget of {} MiB \
                 (--kv-cache-budget-mb); ask for fewer tokens or choices, or cache none",
                needed.div_ceil(1 << 20),
                budget >> 20
            ),
        )
    }

    /// 503: the server is shutting down or its scheduler has stopped.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        Self::with_status(StatusCode::SERVICE_UNAVAILABLE, "server_error", "unavailable", message)
    }

    /// 401: no API key, or not one the server knows. The message never repeats what was sent.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        Self::with_status(StatusCode::UNAUTHORIZED, "invalid_request_error", "invalid_api_key", message)
    }

    /// 500: generation failed inside the model.
    pub fn internal(message: impl Into<String>) -> ApiError {
        Self::with_status(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "internal_error", message)
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = json_response(self.status, &self.body());
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

/// Why the server could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("server failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("{path}: {message}")]
    Template { path: std::path::PathBuf, message: String },
    #[error("invalid server configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Data(#[from] dlm_data::DataError),
    #[error(transparent)]
    Diffusion(#[from] dlm_diffusion::DiffusionError),
}
