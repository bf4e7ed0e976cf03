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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::config::{EmulatorConfig, Endpoint, FaultKind, KeyRejection};
use crate::conn::ConnHandle;
use crate::error::{ApiError, Provider};
use crate::ids::{hash_parts, unit, IdGen};
use crate::stats::{Counters, EmulatorStats};
use crate::{anthropic, gemini, openai};

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
    /// Creation sequence shared by both providers (orders the stats list).
    pub(crate) batch_seq: AtomicU64,
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

/// Decides which calls fail.
#[derive(Debug)]
struct FaultPlan {
    /// How many calls each `fail_first` rule has failed so far.
    used: Mutex<Vec<u32>>,
    /// Index of the next call for the random rates.
    calls: AtomicU64,
}

impl FaultPlan {
    fn new(config: &EmulatorConfig) -> Self {
        Self {
            used: Mutex::new(vec![0; config.fail_first.len()]),
            calls: AtomicU64::new(0),
        }
    }

    fn reset(&self) {
        lock(&self.used).iter_mut().for_each(|u| *u = 0);
        self.calls.store(0, Ordering::SeqCst);
    }

    fn decide(&self, config: &EmulatorConfig, endpoint: Endpoint) -> Option<FaultKind> {
        {
            let mut used = lock(&self.used);
            for (i, rule) in config.fail_first.iter().enumerate() {
                if rule.endpoint.is_none_or(|e| e == endpoint) && used[i] < rule.count {
                    used[i] += 1;
                    return Some(rule.fault);
                }
            }
        }
        let total = config.rate_limit_rate
            + config.server_error_rate
            + config.unavailable_rate
            + config.overloaded_rate
            + config.drop_rate;
        if total <= 0.0 {
            return None;
        }
        let k = self.calls.fetch_add(1, Ordering::SeqCst);
        let u = unit(hash_parts(config.seed, &[b"fault", &k.to_le_bytes()]));
        let retry_after_ms = config.retry_after.as_millis() as u64;
        let table = [
            (
                config.rate_limit_rate,
                FaultKind::Status429 { retry_after_ms },
            ),
            (config.server_error_rate, FaultKind::Status500),
            (config.unavailable_rate, FaultKind::Status503),
            (config.overloaded_rate, FaultKind::Status529),
            (config.drop_rate, FaultKind::DropConnection),
        ];
        let mut acc = 0.0;
        for (rate, kind) in table {
            acc += rate;
            if u < acc {
                return Some(kind);
            }
        }
        None
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

/// The error answer for an injected fault.
fn fault_error(config: &EmulatorConfig, provider: Provider, fault: FaultKind) -> ApiError {
    let err = match (provider, fault) {
        (Provider::Gemini, fault) => gemini::fault_error(fault),
        (Provider::Anthropic, FaultKind::Status429 { retry_after_ms }) => ApiError::anthropic(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "Number of requests has exceeded your rate limit (emulated). Please try again later.",
        )
        .with_retry_after(retry_after_ms),
        (Provider::OpenAi, FaultKind::Status429 { retry_after_ms }) => ApiError::openai(
            StatusCode::TOO_MANY_REQUESTS,
            "requests",
            "Rate limit reached for requests (emulated). Please try again later.",
            None,
            Some("rate_limit_exceeded"),
        )
        .with_retry_after(retry_after_ms),
        (Provider::Anthropic, FaultKind::Status500) => ApiError::anthropic(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "Internal server error",
        ),
        (Provider::OpenAi, FaultKind::Status500) => ApiError::openai(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "The server had an error while processing your request. Sorry about that!",
            None,
            None,
        ),
        (Provider::Anthropic, FaultKind::Status503) => ApiError::anthropic(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            "Service unavailable",
        ),
        (Provider::Anthropic, FaultKind::Status529) => ApiError::anthropic(
            // 529 is not a registered code, but it is a valid one.
            StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            "overloaded_error",
            "Overloaded",
        ),
        (Provider::OpenAi, FaultKind::Status503 | FaultKind::Status529) => ApiError::openai(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "The engine is currently overloaded, please try again later.",
            None,
            None,
        ),
        // Never rendered: the front door cuts the connection instead.
        (_, FaultKind::DropConnection | FaultKind::DropAfter) => {
            ApiError::anthropic(StatusCode::INTERNAL_SERVER_ERROR, "api_error", "dropped")
        }
    };
    match config.should_retry_header {
        Some(v) => err.with_header(HeaderName::from_static("x-should-retry"), v.to_string()),
        None => err,
    }
}

impl ApiError {
    fn with_retry_after(self, ms: u64) -> Self {
        self.with_header(
            HeaderName::from_static("retry-after"),
            ms.div_ceil(1000).to_string(),
        )
        .with_header(HeaderName::from_static("retry-after-ms"), ms.to_string())
    }
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    header_str(headers, "authorization")
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Whether an `anthropic-version` value is a plausible API version
/// (`YYYY-MM-DD`): the SDKs move to newer dates over time, so any date is
/// accepted; only missing or malformed values are refused.
fn plausible_version(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
}

/// An API key as the OpenAI API echoes it in a 401: the first and last few
/// characters around a run of `*` (`sk-proj-****...****MxYA`). Never the
/// whole key: at most a third of it in front and a quarter of it behind.
fn masked_key(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    let n = chars.len();
    let head = (n / 3).min(8);
    let tail = (n / 4).min(4);
    let mut out: String = chars[..head].iter().collect();
    out.extend(std::iter::repeat_n('*', n - head - tail));
    out.extend(&chars[n - tail..]);
    out
}

/// The provider's answer to a key it does not accept.
fn key_refused(provider: Provider, rejection: KeyRejection, key: &str) -> ApiError {
    match (provider, rejection) {
        // Gemini's own check (gemini::check_auth) answers for it.
        (Provider::Gemini, _) => ApiError::gemini(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.",
        ),
        (Provider::Anthropic, KeyRejection::Unauthorized) => ApiError::anthropic(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid x-api-key",
        ),
        (Provider::Anthropic, KeyRejection::Forbidden) => ApiError::anthropic(
            StatusCode::FORBIDDEN,
            "permission_error",
            "Your API key does not have permission to use the specified resource.",
        ),
        (Provider::OpenAi, KeyRejection::Unauthorized) => ApiError::openai(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            format!(
                "Incorrect API key provided: {}. You can find your API key at https://platform.openai.com/account/api-keys.",
                masked_key(key)
            ),
            None,
            Some("invalid_api_key"),
        ),
        (Provider::OpenAi, KeyRejection::Forbidden) => ApiError::openai(
            StatusCode::FORBIDDEN,
            "request_forbidden",
            "Country, region, or territory not supported",
            None,
            Some("unsupported_country_region_territory"),
        ),
    }
}

/// Checks the auth (and, for Anthropic, version) headers. A missing key is
/// always a 401; a present key is refused while keys are revoked
/// (`rejection`) or when it is not the configured one.
fn check_auth(
    config: &EmulatorConfig,
    rejection: Option<KeyRejection>,
    provider: Provider,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let refusal = |key: &str| {
        rejection.or_else(|| {
            config
                .api_key
                .as_deref()
                .is_some_and(|k| k != key)
                .then_some(KeyRejection::Unauthorized)
        })
    };
    match provider {
        Provider::Anthropic => {
            let key = header_str(headers, "x-api-key").or_else(|| bearer(headers));
            let Some(key) = key else {
                return Err(ApiError::anthropic(
                    StatusCode::UNAUTHORIZED,
                    "authentication_error",
                    "x-api-key header is required",
                ));
            };
            if let Some(r) = refusal(key) {
                return Err(key_refused(provider, r, key));
            }
            match header_str(headers, "anthropic-version") {
                None => Err(ApiError::anthropic_invalid(
                    "anthropic-version: header is required",
                )),
                Some(v) if !plausible_version(v) => Err(ApiError::anthropic_invalid(format!(
                    "anthropic-version: invalid version '{v}'; expected a date such as 2023-06-01"
                ))),
                Some(_) => Ok(()),
            }
        }
        Provider::OpenAi => {
            let Some(key) = bearer(headers) else {
                return Err(ApiError::openai(
                    StatusCode::UNAUTHORIZED,
                    "invalid_request_error",
                    "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                    None,
                    Some("invalid_api_key"),
                ));
            };
            match refusal(key) {
                Some(r) => Err(key_refused(provider, r, key)),
                None => Ok(()),
            }
        }
        // Needs the query too (`?key=`): see `gemini::check_auth`.
        Provider::Gemini => Ok(()),
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
                    _ => break 'answer fault_error(&state.config, provider, fault).into_response(),
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

/// Cuts the connection so that not a byte of the returned response is sent.
fn cut(conn: Option<&ConnHandle>) -> Response {
    if let Some(conn) = conn {
        conn.kill();
    }
    // Never written: the connection fails on the first write.
    StatusCode::INTERNAL_SERVER_ERROR.into_response()
}

/// Why a request body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// Larger than the allowed number of bytes.
    TooLarge,
    /// The transport failed.
    Read(String),
}

/// Reads a whole body, refusing more than `limit` bytes (checked against
/// `content-length` first, then while reading).
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, BodyError> {
    use futures::StreamExt;
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(BodyError::TooLarge);
    }
    let mut buf = bytes::BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| BodyError::Read(e.to_string()))?;
        if buf.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Parses a query string into pairs (percent-decoding `%XX` and `+`).
pub(crate) fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = |c: u8| (c as char).to_digit(16);
                    match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                        (Some(h), Some(l)) => {
                            out.push((h * 16 + l) as u8);
                            i += 2;
                        }
                        _ => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// The value of query parameter `name`, if present.
pub(crate) fn query_get<'q>(pairs: &'q [(String, String)], name: &str) -> Option<&'q str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
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

    #[test]
    fn masked_keys_never_show_the_whole_key() {
        let long = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789MxYA";
        let m = masked_key(long);
        assert!(m.starts_with("sk-proj-*") && m.ends_with("*MxYA"), "{m}");
        assert_eq!(m.chars().count(), long.chars().count());
        assert_eq!(masked_key("test-key"), "te****ey");
        for key in ["a", "ab", "abc", "abcd", "abcdefgh", "ü-key-ü"] {
            let m = masked_key(key);
            assert_ne!(m, key);
            assert!(m.contains('*'), "{m}");
        }
    }

    #[test]
    fn parses_queries() {
        let q = query_pairs(Some("limit=5&after_id=a%5Fb&x"));
        assert_eq!(query_get(&q, "limit"), Some("5"));
        assert_eq!(query_get(&q, "after_id"), Some("a_b"));
        assert_eq!(query_get(&q, "x"), Some(""));
        assert_eq!(query_get(&q, "y"), None);
    }

    #[test]
    fn fail_first_then_rates() {
        let config = EmulatorConfig::new()
            .fail_first(Endpoint::AnthropicCreate, 2, FaultKind::Status500)
            .seed(3);
        let plan = FaultPlan::new(&config);
        assert_eq!(plan.decide(&config, Endpoint::AnthropicList), None);
        assert_eq!(
            plan.decide(&config, Endpoint::AnthropicCreate),
            Some(FaultKind::Status500)
        );
        assert_eq!(
            plan.decide(&config, Endpoint::AnthropicCreate),
            Some(FaultKind::Status500)
        );
        assert_eq!(plan.decide(&config, Endpoint::AnthropicCreate), None);
        let all = EmulatorConfig::new().drop_rate(1.0);
        let plan = FaultPlan::new(&all);
        assert_eq!(
            plan.decide(&all, Endpoint::OpenAiFilesCreate),
            Some(FaultKind::DropConnection)
        );
    }
}
