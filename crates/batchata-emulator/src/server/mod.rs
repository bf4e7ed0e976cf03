//! The HTTP front: routes, the front-door middleware, and the control endpoints.
//!
//! Every provider call passes through [`front_door`], which in order: names
//! the endpoint and counts the call, adds the configured latency, injects a
//! fault if the plan says so (`fail_first` rules first, then the seeded
//! random rates), checks auth headers, runs the handler, and finally renders
//! error envelopes with the request id and sets the `request-id` /
//! `x-request-id` header. A `drop` fault cuts the connection before the
//! handler runs; a `drop-after` fault lets the handler commit its work and
//! cuts the connection instead of sending the answer. Revoked keys
//! (`/_emulator/revoke-keys`) are refused at the auth check.
//! `/_emulator/*` bypasses all of that: control endpoints are never
//! faulted, delayed or counted.
//!
//! `faults.rs` decides which calls fail and renders their errors, `auth.rs`
//! checks the key headers; reading bodies and queries is `crate::request`'s.

mod auth;
mod faults;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::config::{EmulatorConfig, Endpoint, FaultKind, KeyRejection};
use crate::conn::ConnHandle;
use crate::error::{ApiError, Provider};
use crate::ids::{hash_parts, unit, IdGen};
use crate::lifecycle::Timeline;
use crate::request::{query_get, query_pairs};
use crate::stats::{Counters, EmulatorStats};
use crate::{anthropic, gemini, openai};

use auth::check_auth;
use faults::{fault_error, FaultPlan};

/// Shared state of one emulator instance.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) config: EmulatorConfig,
    /// `http://127.0.0.1:PORT`, used for absolute `results_url`s.
    pub(crate) base_url: String,
    pub(crate) ids: IdGen,
    pub(crate) counters: Counters,
    faults: FaultPlan,
    pub(crate) anthropic: Mutex<anthropic::Store>,
    pub(crate) openai: Mutex<openai::Store>,
    pub(crate) gemini: Mutex<gemini::Store>,
    /// Creation sequence shared by the providers (orders the stats list).
    batch_seq: AtomicU64,
    /// Set while keys are revoked (`/_emulator/revoke-keys`).
    key_rejection: Mutex<Option<KeyRejection>>,
}

/// Locks a mutex, ignoring poisoning (state stays consistent per operation).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl AppState {
    /// Fresh state for `config`, served at `base_url`.
    pub(crate) fn new(config: EmulatorConfig, base_url: String) -> Self {
        let faults = FaultPlan::new(&config);
        Self {
            ids: IdGen::new(config.seed),
            config,
            base_url,
            counters: Counters::default(),
            faults,
            anthropic: Mutex::new(anthropic::Store::default()),
            openai: Mutex::new(openai::Store::default()),
            gemini: Mutex::new(gemini::Store::default()),
            batch_seq: AtomicU64::new(0),
            key_rejection: Mutex::new(None),
        }
    }

    /// Counters plus every batch, oldest first.
    pub(crate) fn stats(&self) -> EmulatorStats {
        let mut stats = self.counters.snapshot();
        let mut batches = lock(&self.anthropic).summaries();
        batches.extend(lock(&self.openai).summaries());
        batches.extend(lock(&self.gemini).summaries());
        batches.sort_by_key(|(seq, _)| *seq);
        stats.batches = batches.into_iter().map(|(_, b)| b).collect();
        stats
    }

    /// The creation sequence number and timeline of a batch being created.
    /// Whether it expires is drawn from the seed and `expire_rate`; its
    /// requests finish within `window` (fractions of the processing delay).
    pub(crate) fn new_timeline(&self, window: (f64, f64)) -> (u64, Timeline) {
        let config = &self.config;
        let seq = self.batch_seq.fetch_add(1, Ordering::SeqCst);
        let expiring =
            unit(hash_parts(config.seed, &[b"expire", &seq.to_le_bytes()])) < config.expire_rate;
        let timeline = Timeline::start(
            config.processing_delay,
            window,
            config.cancel_delay,
            expiring,
            config.expire_keep_fraction,
        );
        (seq, timeline)
    }

    /// Makes every batch that exists now unknown to its provider; returns
    /// how many were still known.
    pub(crate) fn forget_batches(&self) -> usize {
        let now = std::time::Instant::now();
        lock(&self.anthropic).forget_all(now) + lock(&self.openai).forget_all(now)
    }

    /// Revokes every key (`Some`) or accepts keys again (`None`).
    pub(crate) fn set_key_rejection(&self, rejection: Option<KeyRejection>) {
        *lock(&self.key_rejection) = rejection;
    }

    /// Forgets all batches, files, counters and fault progress, and accepts
    /// keys again.
    pub(crate) fn reset(&self) {
        self.set_key_rejection(None);
        *lock(&self.anthropic) = anthropic::Store::default();
        *lock(&self.openai) = openai::Store::default();
        *lock(&self.gemini) = gemini::Store::default();
        self.counters.reset();
        self.faults.reset();
    }
}

/// Names the endpoint a method and path address.
pub(crate) fn classify(method: &Method, path: &str) -> Endpoint {
    let segs: Vec<&str> = path.split('/').skip(1).collect();
    let m = method.clone();
    match (m, segs.as_slice()) {
        (Method::POST, ["v1", "messages", "batches"]) => Endpoint::AnthropicCreate,
        (Method::GET, ["v1", "messages", "batches"]) => Endpoint::AnthropicList,
        (Method::GET, ["v1", "messages", "batches", _]) => Endpoint::AnthropicRetrieve,
        (Method::DELETE, ["v1", "messages", "batches", _]) => Endpoint::AnthropicDelete,
        (Method::POST, ["v1", "messages", "batches", _, "cancel"]) => Endpoint::AnthropicCancel,
        (Method::GET, ["v1", "messages", "batches", _, "results"]) => Endpoint::AnthropicResults,
        (Method::POST, ["v1", "files"]) => Endpoint::OpenAiFilesCreate,
        (Method::GET, ["v1", "files"]) => Endpoint::OpenAiFilesList,
        (Method::GET, ["v1", "files", _]) => Endpoint::OpenAiFilesRetrieve,
        (Method::DELETE, ["v1", "files", _]) => Endpoint::OpenAiFilesDelete,
        (Method::GET, ["v1", "files", _, "content"]) => Endpoint::OpenAiFilesContent,
        (Method::POST, ["v1", "batches"]) => Endpoint::OpenAiBatchesCreate,
        (Method::GET, ["v1", "batches"]) => Endpoint::OpenAiBatchesList,
        (Method::GET, ["v1", "batches", _]) => Endpoint::OpenAiBatchesRetrieve,
        (Method::POST, ["v1", "batches", _, "cancel"]) => Endpoint::OpenAiBatchesCancel,
        _ => Endpoint::Unknown,
    }
}

/// Builds the router for `state`.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    let routes = Router::new()
        .route(
            "/v1/messages/batches",
            post(anthropic::create).get(anthropic::list),
        )
        .route(
            "/v1/messages/batches/{id}",
            get(anthropic::retrieve).delete(anthropic::delete),
        )
        .route("/v1/messages/batches/{id}/cancel", post(anthropic::cancel))
        .route("/v1/messages/batches/{id}/results", get(anthropic::results))
        .route(
            "/v1/files",
            post(openai::upload_file).get(openai::list_files),
        )
        .route(
            "/v1/files/{id}",
            get(openai::retrieve_file).delete(openai::delete_file),
        )
        .route("/v1/files/{id}/content", get(openai::file_content))
        .route(
            "/v1/batches",
            post(openai::create_batch).get(openai::list_batches),
        )
        .route("/v1/batches/{id}", get(openai::retrieve_batch))
        .route("/v1/batches/{id}/cancel", post(openai::cancel_batch))
        .merge(gemini::router())
        .route("/_emulator/stats", get(stats_handler))
        .route("/_emulator/reset", post(reset_handler))
        .route("/_emulator/forget", post(forget_handler))
        .route("/_emulator/revoke-keys", post(revoke_keys_handler))
        .route("/_emulator/restore-keys", post(restore_keys_handler))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Bodies are size-checked by the handlers against the configured limits.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(state.clone(), front_door))
        .with_state(state);
    // Runs before the routes above are chosen: Gemini's `/v1` paths that
    // OpenAI's routes share are moved to `/v1beta` first.
    Router::new()
        .fallback_service(routes)
        .layer(middleware::from_fn(gemini_v1))
}

async fn gemini_v1(mut req: Request, next: Next) -> Response {
    let rewritten = gemini::rewrite_v1(req.uri().path(), req.uri().query(), req.headers());
    if let Some(uri) = rewritten.and_then(|u| u.parse().ok()) {
        *req.uri_mut() = uri;
    }
    next.run(req).await
}

async fn stats_handler(State(state): State<Arc<AppState>>) -> Json<EmulatorStats> {
    Json(state.stats())
}

async fn reset_handler(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    state.reset();
    Json(serde_json::json!({"reset": true}))
}

async fn forget_handler(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let n = state.forget_batches();
    Json(serde_json::json!({"forgotten": n}))
}

/// `POST /_emulator/revoke-keys[?status=401|403]`
async fn revoke_keys_handler(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let q = query_pairs(req.uri().query());
    let rejection = match query_get(&q, "status") {
        None => KeyRejection::Unauthorized,
        Some(s) => match s.parse::<KeyRejection>() {
            Ok(r) => r,
            Err(e) => {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(serde_json::json!({"error": e})),
                )
                    .into_response()
            }
        },
    };
    state.set_key_rejection(Some(rejection));
    Json(serde_json::json!({"keys": "revoked", "status": rejection.status()})).into_response()
}

/// `POST /_emulator/restore-keys`
async fn restore_keys_handler(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    state.set_key_rejection(None);
    Json(serde_json::json!({"keys": "restored"}))
}

async fn not_found(req: Request) -> ApiError {
    let path = req.uri().path().to_string();
    match Provider::for_path(&path) {
        Provider::Anthropic => {
            ApiError::anthropic(StatusCode::NOT_FOUND, "not_found_error", "Not Found")
        }
        Provider::OpenAi => ApiError::openai(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("Invalid URL ({} {path})", req.method()),
            None,
            None,
        ),
        Provider::Gemini => gemini::unknown_path(req.method(), &path),
    }
}

async fn method_not_allowed(req: Request) -> ApiError {
    let path = req.uri().path().to_string();
    let message = format!("Method {} not allowed on {path}", req.method());
    match Provider::for_path(&path) {
        Provider::Anthropic => ApiError::anthropic(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            message,
        ),
        Provider::OpenAi => ApiError::openai(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            message,
            None,
            None,
        ),
        Provider::Gemini => {
            ApiError::gemini(StatusCode::METHOD_NOT_ALLOWED, "UNIMPLEMENTED", message)
        }
    }
}

/// The middleware every request passes through (see the module docs).
async fn front_door(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if path.starts_with("/_emulator/") {
        return next.run(req).await;
    }
    let provider = Provider::for_path(&path);
    let endpoint = match provider {
        Provider::Gemini => {
            gemini::classify(req.method(), &path, req.uri().query()).unwrap_or(Endpoint::Unknown)
        }
        _ => classify(req.method(), &path),
    };
    let request_id = match provider {
        Provider::Anthropic => state.ids.anthropic_request(),
        Provider::OpenAi => state.ids.openai_request(),
        Provider::Gemini => String::new(),
    };
    state.counters.record_call(endpoint);
    if !state.config.latency.is_zero() {
        tokio::time::sleep(state.config.latency).await;
    }

    let conn = req
        .extensions()
        .get::<ConnectInfo<ConnHandle>>()
        .map(|ConnectInfo(c)| c.clone());
    let mut drop_after = false;
    let mut resp = 'answer: {
        if endpoint != Endpoint::Unknown {
            if let Some(fault) = state.faults.decide(&state.config, endpoint) {
                state.counters.record_fault(endpoint, fault);
                match fault {
                    FaultKind::DropConnection => return cut(conn.as_ref()),
                    FaultKind::DropAfter => drop_after = true,
                    _ => {
                        drain(req).await;
                        break 'answer fault_error(&state.config, provider, fault).into_response();
                    }
                }
            }
            let rejection = *lock(&state.key_rejection);
            let auth = match provider {
                Provider::Gemini => {
                    gemini::check_auth(&state.config, rejection, endpoint, req.uri(), req.headers())
                }
                _ => check_auth(&state.config, rejection, provider, req.headers()),
            };
            if let Err(err) = auth {
                drain(req).await;
                break 'answer err.into_response();
            }
        }
        next.run(req).await
    };
    if drop_after {
        // The handler has run to completion (the batch or file is stored);
        // now the answer is lost on the way back.
        return cut(conn.as_ref());
    }

    if let Some(err) = resp.extensions_mut().remove::<ApiError>() {
        resp = err.render(Some(&request_id));
    }
    if let (Some(name), Ok(v)) = (
        provider.request_id_header(),
        HeaderValue::from_str(&request_id),
    ) {
        resp.headers_mut().insert(HeaderName::from_static(name), v);
    }
    resp
}

/// Reads a request's body to its end and drops it, as the providers' front
/// doors do before they refuse a call: the error answers a request received
/// whole, and a client still sending a large body gets the answer, not a
/// broken pipe.
async fn drain(req: Request) {
    use futures::StreamExt;
    let mut body = req.into_body().into_data_stream();
    while let Some(Ok(_)) = body.next().await {}
}

/// Cuts the connection so that not a byte of the returned response is sent.
fn cut(conn: Option<&ConnHandle>) -> Response {
    if let Some(conn) = conn {
        conn.kill();
    }
    // Never written: the connection fails on the first write.
    StatusCode::INTERNAL_SERVER_ERROR.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_paths() {
        assert_eq!(
            classify(&Method::POST, "/v1/messages/batches"),
            Endpoint::AnthropicCreate
        );
        assert_eq!(
            classify(&Method::GET, "/v1/messages/batches/msgbatch_1/results"),
            Endpoint::AnthropicResults
        );
        assert_eq!(
            classify(&Method::GET, "/v1/files/f/content"),
            Endpoint::OpenAiFilesContent
        );
        assert_eq!(
            classify(&Method::POST, "/v1/batches/b/cancel"),
            Endpoint::OpenAiBatchesCancel
        );
        assert_eq!(classify(&Method::PUT, "/v1/batches"), Endpoint::Unknown);
    }
}
