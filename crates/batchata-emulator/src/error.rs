//! HTTP error answers in each provider's own envelope.
//!
//! Anthropic wraps errors as `{"type":"error","error":{"type","message"},"request_id"}`,
//! OpenAI as `{"error":{"message","type","param","code"}}`, Gemini (Google's
//! `google.rpc.Status` over HTTP) as `{"error":{"code","message","status","details"}}`.
//! Handlers build an
//! [`ApiError`] in their provider's vocabulary; the front-door middleware
//! renders it again once it knows the request id, so the body's
//! `request_id` matches the `request-id` header.

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Which API family a request belongs to (decides envelopes and headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Provider {
    /// The Anthropic Message Batches API.
    Anthropic,
    /// The OpenAI Files and Batch APIs.
    OpenAi,
    /// The Gemini API batch mode and Files API.
    Gemini,
}

impl Provider {
    /// The provider a path belongs to: `/v1/messages...` is Anthropic,
    /// `/v1beta/...`, `/upload/...` and `/download/...` are Gemini,
    /// everything else is answered OpenAI-style.
    pub(crate) fn for_path(path: &str) -> Provider {
        if path.starts_with("/v1/messages") {
            Provider::Anthropic
        } else if crate::gemini::owns_path(path) {
            Provider::Gemini
        } else {
            Provider::OpenAi
        }
    }

    /// The response header carrying the request id (Google's API sends none).
    pub(crate) fn request_id_header(self) -> Option<&'static str> {
        match self {
            Provider::Anthropic => Some("request-id"),
            Provider::OpenAi => Some("x-request-id"),
            Provider::Gemini => None,
        }
    }
}

/// An error answer, not yet rendered.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) provider: Provider,
    pub(crate) status: StatusCode,
    /// Anthropic `error.type`, OpenAI `error.type` or Gemini `error.status`.
    pub(crate) kind: &'static str,
    pub(crate) message: Box<str>,
    /// OpenAI only.
    pub(crate) param: Option<String>,
    /// OpenAI only.
    pub(crate) code: Option<String>,
    /// Gemini only: `error.details` (`google.rpc` messages such as `ErrorInfo`).
    /// (A JSON array, boxed: an error stays small enough to return by value.)
    pub(crate) details: Option<Box<serde_json::Value>>,
    pub(crate) headers: Vec<(HeaderName, String)>,
}

impl ApiError {
    /// An Anthropic error.
    pub(crate) fn anthropic(
        status: StatusCode,
        kind: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            provider: Provider::Anthropic,
            status,
            kind,
            message: message.into().into_boxed_str(),
            param: None,
            code: None,
            details: None,
            headers: Vec::new(),
        }
    }

    /// A Gemini error: `status` is the canonical code name (`INVALID_ARGUMENT`, ...).
    pub(crate) fn gemini(
        status: StatusCode,
        kind: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            provider: Provider::Gemini,
            status,
            kind,
            message: message.into().into_boxed_str(),
            param: None,
            code: None,
            details: None,
            headers: Vec::new(),
        }
    }

    /// Gemini 400 `INVALID_ARGUMENT`.
    pub(crate) fn gemini_invalid(message: impl Into<String>) -> Self {
        Self::gemini(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", message)
    }

    /// Adds a `google.rpc` detail message (Gemini).
    pub(crate) fn with_detail(mut self, detail: serde_json::Value) -> Self {
        let list = self
            .details
            .get_or_insert_with(|| Box::new(serde_json::Value::Array(Vec::new())));
        if let serde_json::Value::Array(items) = list.as_mut() {
            items.push(detail);
        }
        self
    }

    /// An OpenAI error.
    pub(crate) fn openai(
        status: StatusCode,
        kind: &'static str,
        message: impl Into<String>,
        param: Option<&str>,
        code: Option<&str>,
    ) -> Self {
        Self {
            provider: Provider::OpenAi,
            status,
            kind,
            message: message.into().into_boxed_str(),
            param: param.map(str::to_string),
            code: code.map(str::to_string),
            details: None,
            headers: Vec::new(),
        }
    }

    /// Anthropic 400 `invalid_request_error`.
    pub(crate) fn anthropic_invalid(message: impl Into<String>) -> Self {
        Self::anthropic(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// OpenAI 400 `invalid_request_error`.
    pub(crate) fn openai_invalid(message: impl Into<String>, param: Option<&str>) -> Self {
        Self::openai(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            message,
            param,
            None,
        )
    }

    /// Adds a response header.
    pub(crate) fn with_header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The JSON body for this error.
    pub(crate) fn body(&self, request_id: Option<&str>) -> serde_json::Value {
        match self.provider {
            Provider::Anthropic => json!({
                "type": "error",
                "error": {"type": self.kind, "message": self.message},
                "request_id": request_id,
            }),
            Provider::OpenAi => json!({
                "error": {
                    "message": self.message,
                    "type": self.kind,
                    "param": self.param,
                    "code": self.code,
                }
            }),
            Provider::Gemini if self.details.is_none() => json!({
                "error": {"code": self.status.as_u16(), "message": self.message, "status": self.kind}
            }),
            Provider::Gemini => json!({
                "error": {
                    "code": self.status.as_u16(),
                    "message": self.message,
                    "status": self.kind,
                    "details": self.details,
                }
            }),
        }
    }

    /// The full response, with `request_id` in the body where the provider puts it.
    pub(crate) fn render(&self, request_id: Option<&str>) -> Response {
        let mut resp = (self.status, self.body(request_id).to_string()).into_response();
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (name, value) in &self.headers {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.insert(name.clone(), v);
            }
        }
        resp
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = self.render(None);
        resp.extensions_mut().insert(self);
        resp
    }
}
