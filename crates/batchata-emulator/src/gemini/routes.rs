//! Which requests are Gemini's and how they reach a handler: the routes,
//! the `v1` paths rewritten onto `v1beta`, endpoint classification for
//! stats and faults, the API-key check (header or `?key=`, a wrong key
//! answered as Google does), and the error envelopes of injected faults and
//! unknown paths.

use std::sync::Arc;

use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

use super::batches::{action, delete, list, retrieve};
use super::create::create;
use super::files::{delete_file, download, get_file_or_download, list_files, upload};
use super::VERSIONS;
use crate::config::{EmulatorConfig, Endpoint, FaultKind};
use crate::error::ApiError;
use crate::request::{query_get, query_pairs};
use crate::server::AppState;

/// The Gemini routes, for merging into the emulator's router.
pub(crate) fn router() -> Router<Arc<AppState>> {
    let mut r = Router::new();
    for v in VERSIONS {
        r = r.route(&format!("/{v}/models/{{action}}"), post(create));
    }
    // Under `/v1` only the model route is free: `/v1/batches` and `/v1/files`
    // are OpenAI's in this emulator (see [`rewrite_v1`]).
    r.route("/v1beta/batches", get(list))
        .route(
            "/v1beta/batches/{name}",
            get(retrieve).delete(delete).post(action),
        )
        .route("/upload/v1beta/files", post(upload))
        .route("/upload/v1/files", post(upload))
        .route("/v1beta/files", get(list_files))
        .route(
            "/v1beta/files/{name}",
            get(get_file_or_download).delete(delete_file),
        )
        .route("/download/v1beta/files/{name}", get(download))
        .route("/download/v1/files/{name}", get(download))
}

/// A Gemini call on `/v1/...` (the SDK's other API version) shares its path
/// with OpenAI's routes; one that carries a Google API key (and no bearer
/// token) is answered as `/v1beta/...`. Returns the new path and query.
pub(crate) fn rewrite_v1(path: &str, query: Option<&str>, headers: &HeaderMap) -> Option<String> {
    let rest = path.strip_prefix("/v1/")?;
    if !(rest.starts_with("batches") || rest.starts_with("files")) {
        return None;
    }
    let goog = headers.contains_key("x-goog-api-key")
        || query_pairs(query).iter().any(|(k, _)| k == "key");
    if !goog || headers.contains_key(header::AUTHORIZATION) {
        return None;
    }
    Some(match query {
        Some(q) => format!("/v1beta/{rest}?{q}"),
        None => format!("/v1beta/{rest}"),
    })
}

/// Names the endpoint of a Gemini path (`None` if it is not one).
pub(crate) fn classify(method: &Method, path: &str, query: Option<&str>) -> Option<Endpoint> {
    let segs: Vec<&str> = path.split('/').skip(1).collect();
    let e = match (method.clone(), segs.as_slice()) {
        (Method::POST, [v, "models", action])
            if VERSIONS.contains(v) && action.ends_with(":batchGenerateContent") =>
        {
            Endpoint::GeminiCreate
        }
        (Method::GET, ["v1beta", "batches"]) => Endpoint::GeminiList,
        (Method::GET, ["v1beta", "batches", name]) if !name.contains(':') => Endpoint::GeminiGet,
        (Method::DELETE, ["v1beta", "batches", name]) if !name.contains(':') => {
            Endpoint::GeminiDelete
        }
        (Method::POST, ["v1beta", "batches", name]) if name.ends_with(":cancel") => {
            Endpoint::GeminiCancel
        }
        (Method::POST, ["upload", v, "files"]) if VERSIONS.contains(v) => {
            if query_pairs(query).iter().any(|(k, _)| k == "upload_id") {
                Endpoint::GeminiUpload
            } else {
                Endpoint::GeminiUploadStart
            }
        }
        (Method::GET, ["v1beta", "files"]) => Endpoint::GeminiFilesList,
        (Method::GET, ["v1beta", "files", name]) if name.ends_with(":download") => {
            Endpoint::GeminiDownload
        }
        (Method::GET, ["download", v, "files", name])
            if VERSIONS.contains(v) && name.ends_with(":download") =>
        {
            Endpoint::GeminiDownload
        }
        (Method::GET, ["v1beta", "files", name]) if !name.contains(':') => Endpoint::GeminiFilesGet,
        (Method::DELETE, ["v1beta", "files", name]) if !name.contains(':') => {
            Endpoint::GeminiFilesDelete
        }
        _ => return None,
    };
    Some(e)
}

pub(super) fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The key a call carries: `x-goog-api-key`, else the `key` query parameter.
fn api_key<'a>(headers: &'a HeaderMap, pairs: &'a [(String, String)]) -> Option<&'a str> {
    header_str(headers, "x-goog-api-key").or_else(|| {
        query_get(pairs, "key")
            .map(str::trim)
            .filter(|k| !k.is_empty())
    })
}

/// Checks the API key as Google does: none at all is a 403 (an unregistered
/// caller), a wrong one a 400 `INVALID_ARGUMENT` with reason
/// `API_KEY_INVALID`. The bytes of a resumable upload are authorised by the
/// session in their URL, so they need no key.
pub(crate) fn check_auth(
    config: &EmulatorConfig,
    rejection: Option<crate::KeyRejection>,
    endpoint: Endpoint,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    if endpoint == Endpoint::GeminiUpload {
        return Ok(());
    }
    if rejection == Some(crate::KeyRejection::Forbidden) {
        return Err(ApiError::gemini(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "The caller does not have permission",
        ));
    }
    let pairs = query_pairs(uri.query());
    let Some(key) = api_key(headers, &pairs) else {
        return Err(ApiError::gemini(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
        ));
    };
    // A revoked key is answered as Google answers any invalid key.
    if rejection.is_some() || config.api_key.as_deref().is_some_and(|k| k != key) {
        let message = "API key not valid. Please pass a valid API key.";
        return Err(ApiError::gemini_invalid(message)
            .with_detail(json!({
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }))
            .with_detail(json!({
                "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                "locale": "en-US",
                "message": message,
            })));
    }
    Ok(())
}

/// `"1.500s"`: a `google.protobuf.Duration` in JSON.
fn duration_json(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{}.{:03}s", ms / 1000, ms % 1000)
    }
}

/// The error answer for an injected fault. A 429 says when to retry in a
/// `google.rpc.RetryInfo` detail, not in headers; there is no 529.
pub(crate) fn fault_error(fault: FaultKind) -> ApiError {
    match fault {
        FaultKind::Status429 { retry_after_ms } => ApiError::gemini(
            StatusCode::TOO_MANY_REQUESTS,
            "RESOURCE_EXHAUSTED",
            "Resource has been exhausted (e.g. check quota).",
        )
        .with_detail(json!({
            "@type": "type.googleapis.com/google.rpc.RetryInfo",
            "retryDelay": duration_json(retry_after_ms),
        })),
        FaultKind::Status500 | FaultKind::DropConnection | FaultKind::DropAfter => ApiError::gemini(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
        ),
        FaultKind::Status503 | FaultKind::Status529 => ApiError::gemini(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            "The model is overloaded. Please try again later.",
        ),
    }
}

/// 404 for a path no route matched.
pub(crate) fn unknown_path(method: &Method, path: &str) -> ApiError {
    ApiError::gemini(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        format!("The requested URL {path} ({method}) was not found on this server."),
    )
}

pub(super) fn not_found(what: &str, name: &str) -> ApiError {
    ApiError::gemini(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        format!("Requested entity was not found. ({what} {name})"),
    )
}

pub(super) fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::gemini(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_proto_json() {
        assert_eq!(duration_json(1500), "1.500s");
        assert_eq!(duration_json(2000), "2s");
    }

    #[test]
    fn classifies_gemini_paths() {
        let c = |m: Method, p: &str, q: Option<&str>| classify(&m, p, q);
        assert_eq!(
            c(
                Method::POST,
                "/v1beta/models/gemini-2.5-flash:batchGenerateContent",
                None
            ),
            Some(Endpoint::GeminiCreate)
        );
        assert_eq!(
            c(Method::GET, "/v1beta/batches/abc", None),
            Some(Endpoint::GeminiGet)
        );
        assert_eq!(
            c(Method::POST, "/v1beta/batches/abc:cancel", None),
            Some(Endpoint::GeminiCancel)
        );
        assert_eq!(
            c(Method::POST, "/upload/v1beta/files", None),
            Some(Endpoint::GeminiUploadStart)
        );
        assert_eq!(
            c(Method::POST, "/upload/v1beta/files", Some("upload_id=x")),
            Some(Endpoint::GeminiUpload)
        );
        assert_eq!(
            c(
                Method::GET,
                "/download/v1beta/files/batch-x:download",
                Some("alt=media")
            ),
            Some(Endpoint::GeminiDownload)
        );
        assert_eq!(c(Method::GET, "/v1/batches/x", None), None);
    }
}
