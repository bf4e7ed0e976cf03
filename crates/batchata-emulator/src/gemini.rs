//! The Gemini API batch mode (Developer API) and the part of the Files API it
//! needs: create a batch from inline requests or from an uploaded JSONL file,
//! get, list, cancel and delete it; upload files with the resumable protocol,
//! get, list, delete and download them.
//!
//! Written from the wire reference alone, like the other provider modules.
//! The facts it keeps to:
//!
//! * a batch is a `google.longrunning.Operation` named `batches/{id}`; the
//!   batch itself sits in `metadata` (`@type` `GenerateContentBatch`), its
//!   state is `BATCH_STATE_*`, `done` is present (true) only once it ended,
//!   and its output is in both `metadata.output` and `response`;
//! * JSON is proto3 JSON: int64 counts are strings, default values (`false`,
//!   zero counts) are left out, timestamps are RFC 3339 in UTC with `Z`;
//! * requests may spell fields in camelCase or snake_case; answers use
//!   camelCase. A field the API does not know fails the call, as a proto
//!   parser would;
//! * inline results are doubly nested (`inlinedResponses.inlinedResponses`)
//!   and echo each request's `metadata`; file results are a generated JSONL
//!   file (`files/batch-{id}`) whose lines echo each request's `key`;
//! * an expired batch has no results; a file batch whose input cannot be
//!   read fails as a whole, with the reason in the top-level `error`;
//! * errors are `{"error":{"code","message","status","details"}}`, and a bad
//!   API key is a 400 `INVALID_ARGUMENT` with reason `API_KEY_INVALID`.
//!
//! Status is computed from the batch's [`Timeline`] on every read (pending for
//! the first tenth of the processing delay, then running); results are built
//! once, the first time a finished batch is looked at, so they are stable.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use crate::answers::{self, Conversation, DocBody, Document, ReplyFormat, Stop};
use crate::config::{EmulatorConfig, Endpoint, FaultKind};
use crate::error::ApiError;
use crate::ids::{base62, hash_parts, unit};
use crate::lifecycle::{count_done, Timeline};
use crate::pdf;
use crate::server::{lock, query_get, query_pairs, read_body, AppState, BodyError};
use crate::stats::{request_digest, BatchSummary};

/// `@type` of a batch in an Operation's `metadata`.
const BATCH_TYPE: &str =
    "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatch";
/// `@type` of a finished batch's output in an Operation's `response`.
const OUTPUT_TYPE: &str =
    "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatchOutput";
/// Uploaded files are kept 48 hours.
const FILE_TTL: chrono::Duration = chrono::Duration::hours(48);
/// Batch pages: default and largest `pageSize`.
const BATCH_PAGE: (usize, usize) = (50, 1000);
/// File pages: default and largest `pageSize`.
const FILE_PAGE: (usize, usize) = (10, 100);
/// Resumable upload chunk granularity advertised (8 MiB, as Google's).
const CHUNK_GRANULARITY: &str = "8388608";

/// The API versions served (the docs' `v1beta`; the SDK can be told `v1`).
pub(crate) const VERSIONS: [&str; 2] = ["v1beta", "v1"];

/// Whether a path is answered by this module (decides envelopes and auth).
pub(crate) fn owns_path(path: &str) -> bool {
    path.starts_with("/v1beta/")
        || path == "/v1beta"
        || path.starts_with("/upload/")
        || path.starts_with("/download/")
        || path.starts_with("/v1/models/")
}

// ------------------------------------------------------------------ routes

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

// -------------------------------------------------------------- auth, faults

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
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

fn not_found(what: &str, name: &str) -> ApiError {
    ApiError::gemini(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        format!("Requested entity was not found. ({what} {name})"),
    )
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::gemini(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", e.to_string())
}

// ------------------------------------------------------------------ model

/// What became of one request once processed.
#[derive(Debug, Clone)]
enum Outcome {
    /// A valid request: it gets an answer.
    Ok,
    /// Refused with `INVALID_ARGUMENT` (gRPC code 3) and this message.
    Invalid(Box<str>),
    /// Chosen by `error_rate`: `INTERNAL` (gRPC code 13).
    Injected,
}

/// One request of a batch.
#[derive(Debug)]
struct Item {
    /// The file line's `key`, or the inline request's `metadata.key`.
    key: Option<Box<str>>,
    /// Inline only: the `metadata` object, echoed on the response.
    metadata: Option<Value>,
    /// The `GenerateContentRequest`.
    request: Value,
    /// Size of the request in bytes (for input tokens).
    bytes: usize,
    frac: u32,
    outcome: Outcome,
}

/// The immutable part of a batch.
#[derive(Debug, Default)]
struct BatchData {
    items: Vec<Item>,
    ok_sorted: Vec<u32>,
    err_sorted: Vec<u32>,
    distinct_keys: usize,
    /// Why a file batch fails as a whole (its input could not be read).
    failure: Option<String>,
}

/// Where a batch's requests came from.
#[derive(Debug, Clone)]
enum Input {
    Inline,
    /// `files/{id}`.
    File(String),
}

/// A finished batch's output.
#[derive(Debug, Clone)]
enum Output {
    /// `{"inlinedResponses": {"inlinedResponses": [...]}}`.
    Inline(Arc<Value>),
    /// `files/batch-{id}`.
    File(String),
}

#[derive(Debug)]
struct Batch {
    /// The id after `batches/`.
    id: String,
    seq: u64,
    /// Without `models/`.
    model: String,
    display_name: Option<String>,
    input: Input,
    timeline: Timeline,
    data: Arc<BatchData>,
    output: Arc<tokio::sync::OnceCell<Option<Output>>>,
    deleted: bool,
    /// How many of its requests had been submitted before.
    resubmitted: u64,
}

/// A batch state at one moment; durations are since creation.
#[derive(Debug, Clone, Copy, PartialEq)]
enum BatchState {
    Pending,
    Running,
    Succeeded(Duration),
    Failed(Duration),
    Cancelled(Duration),
    Expired(Duration),
}

impl BatchState {
    fn wire(self) -> &'static str {
        match self {
            BatchState::Pending => "BATCH_STATE_PENDING",
            BatchState::Running => "BATCH_STATE_RUNNING",
            BatchState::Succeeded(_) => "BATCH_STATE_SUCCEEDED",
            BatchState::Failed(_) => "BATCH_STATE_FAILED",
            BatchState::Cancelled(_) => "BATCH_STATE_CANCELLED",
            BatchState::Expired(_) => "BATCH_STATE_EXPIRED",
        }
    }

    fn end(self) -> Option<Duration> {
        match self {
            BatchState::Pending | BatchState::Running => None,
            BatchState::Succeeded(d)
            | BatchState::Failed(d)
            | BatchState::Cancelled(d)
            | BatchState::Expired(d) => Some(d),
        }
    }
}

/// Whether a file is an upload or a batch's results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileSource {
    Uploaded,
    Generated,
}

#[derive(Debug)]
struct File {
    /// The id after `files/`.
    id: String,
    display_name: Option<String>,
    mime_type: String,
    content: Bytes,
    created: DateTime<Utc>,
    source: FileSource,
}

/// A resumable upload in progress.
#[derive(Debug)]
struct Upload {
    declared: Option<usize>,
    mime_type: String,
    display_name: Option<String>,
    name: Option<String>,
    buf: bytes::BytesMut,
}

/// All Gemini batches and files of an emulator.
#[derive(Debug, Default)]
pub(crate) struct Store {
    batches: HashMap<String, Batch>,
    order: Vec<String>,
    /// Digests of every request submitted so far (see [`request_digest`]).
    submitted: std::collections::HashSet<u64>,
    files: HashMap<String, File>,
    file_order: Vec<String>,
    uploads: HashMap<String, Upload>,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

impl Batch {
    fn pending_end(&self) -> Duration {
        self.timeline.at_fraction(0.1)
    }

    fn state(&self, now: Instant) -> BatchState {
        let t = &self.timeline;
        let e = t.elapsed(now);
        let p = self.pending_end();
        if let Some(end) = t.cancel_end() {
            return if e >= end {
                BatchState::Cancelled(end)
            } else if e < p {
                BatchState::Pending
            } else {
                BatchState::Running
            };
        }
        if e < p {
            return BatchState::Pending;
        }
        if self.data.failure.is_some() {
            return BatchState::Failed(p);
        }
        if e < t.delay {
            return BatchState::Running;
        }
        if t.expiring {
            BatchState::Expired(t.delay)
        } else {
            BatchState::Succeeded(t.delay)
        }
    }

    /// `batchStats`, int64s as strings, zeros left out.
    fn stats(&self, now: Instant, state: BatchState) -> Value {
        let n = self.data.items.len();
        let mut stats = Map::new();
        if n > 0 {
            stats.insert("requestCount".into(), json!(n.to_string()));
        }
        let (ok, err) = match state {
            BatchState::Pending | BatchState::Failed(_) => (0, 0),
            _ => {
                let at = state.end().unwrap_or_else(|| self.timeline.elapsed(now));
                let thr = self.timeline.threshold(at);
                (
                    count_done(&self.data.ok_sorted, thr),
                    count_done(&self.data.err_sorted, thr),
                )
            }
        };
        let pending = match state {
            BatchState::Failed(_) => 0,
            _ => n - ok - err,
        };
        for (key, v) in [
            ("successfulRequestCount", ok),
            ("failedRequestCount", err),
            ("pendingRequestCount", pending),
        ] {
            if v > 0 {
                stats.insert(key.into(), json!(v.to_string()));
            }
        }
        Value::Object(stats)
    }

    /// The Operation a client sees.
    fn view(&self, now: Instant, state: BatchState) -> Value {
        let t = &self.timeline;
        let name = format!("batches/{}", self.id);
        let output = self.output.get().cloned().flatten();
        let updated = match state {
            BatchState::Pending => Duration::ZERO,
            BatchState::Running => t.cancel_at.unwrap_or(self.pending_end()),
            other => other.end().unwrap_or_default(),
        };
        let mut meta = Map::new();
        meta.insert("@type".into(), json!(BATCH_TYPE));
        meta.insert("model".into(), json!(format!("models/{}", self.model)));
        if let Some(d) = &self.display_name {
            meta.insert("displayName".into(), json!(d));
        }
        if let Input::File(f) = &self.input {
            meta.insert("inputConfig".into(), json!({"fileName": f}));
        }
        meta.insert("createTime".into(), json!(rfc3339(t.created_wall)));
        meta.insert("updateTime".into(), json!(rfc3339(t.wall(updated))));
        if let Some(end) = state.end() {
            meta.insert("endTime".into(), json!(rfc3339(t.wall(end))));
        }
        meta.insert("batchStats".into(), self.stats(now, state));
        meta.insert("state".into(), json!(state.wire()));
        meta.insert("name".into(), json!(name));
        let output_json = match (&output, state) {
            (Some(Output::Inline(v)), BatchState::Succeeded(_)) => Some((**v).clone()),
            (Some(Output::File(f)), BatchState::Succeeded(_)) => {
                Some(json!({"responsesFile": format!("files/{f}")}))
            }
            _ => None,
        };
        if let Some(o) = &output_json {
            meta.insert("output".into(), o.clone());
        }
        let mut op = Map::new();
        op.insert("name".into(), json!(name));
        op.insert("metadata".into(), Value::Object(meta));
        if state.end().is_some() {
            op.insert("done".into(), json!(true));
        }
        if let Some(Value::Object(o)) = output_json {
            let mut resp = Map::new();
            resp.insert("@type".into(), json!(OUTPUT_TYPE));
            resp.extend(o);
            op.insert("response".into(), Value::Object(resp));
        }
        match state {
            BatchState::Failed(_) => {
                let msg = self
                    .data
                    .failure
                    .clone()
                    .unwrap_or_else(|| "The batch failed.".into());
                op.insert("error".into(), json!({"code": 3, "message": msg}));
            }
            BatchState::Cancelled(_) => {
                op.insert(
                    "error".into(),
                    json!({"code": 1, "message": "The batch was cancelled."}),
                );
            }
            _ => {}
        }
        Value::Object(op)
    }
}

impl File {
    fn view(&self, base_url: &str) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), json!(format!("files/{}", self.id)));
        if let Some(d) = &self.display_name {
            m.insert("displayName".into(), json!(d));
        }
        m.insert("mimeType".into(), json!(self.mime_type));
        m.insert("sizeBytes".into(), json!(self.content.len().to_string()));
        m.insert("createTime".into(), json!(rfc3339(self.created)));
        m.insert("updateTime".into(), json!(rfc3339(self.created)));
        m.insert(
            "expirationTime".into(),
            json!(rfc3339(self.created + FILE_TTL)),
        );
        m.insert(
            "uri".into(),
            json!(format!("{base_url}/v1beta/files/{}", self.id)),
        );
        if self.source == FileSource::Generated {
            m.insert(
                "downloadUri".into(),
                json!(format!(
                    "{base_url}/download/v1beta/files/{}:download?alt=media",
                    self.id
                )),
            );
        }
        m.insert("state".into(), json!("ACTIVE"));
        m.insert(
            "source".into(),
            json!(match self.source {
                FileSource::Uploaded => "UPLOADED",
                FileSource::Generated => "GENERATED",
            }),
        );
        Value::Object(m)
    }
}

impl Store {
    fn batch(&self, id: &str) -> Result<&Batch, ApiError> {
        self.batches
            .get(id)
            .filter(|b| !b.deleted)
            .ok_or_else(|| not_found("batch", &format!("batches/{id}")))
    }

    fn file(&self, id: &str) -> Result<&File, ApiError> {
        self.files
            .get(id)
            .ok_or_else(|| not_found("file", &format!("files/{id}")))
    }

    fn add_file(&mut self, file: File) {
        self.file_order.push(file.id.clone());
        self.files.insert(file.id.clone(), file);
    }

    /// `(creation sequence, summary)` for every batch.
    pub(crate) fn summaries(&self) -> Vec<(u64, BatchSummary)> {
        let now = Instant::now();
        self.order
            .iter()
            .filter_map(|id| self.batches.get(id))
            .map(|b| {
                (
                    b.seq,
                    BatchSummary {
                        provider: "gemini".into(),
                        id: format!("batches/{}", b.id),
                        status: b.state(now).wire().into(),
                        request_count: b.data.items.len() as u64,
                        custom_ids: b.data.distinct_keys as u64,
                        created_at: rfc3339(b.timeline.created_wall),
                        metadata: b.display_name.as_ref().map(|d| json!({"displayName": d})),
                        deleted: b.deleted,
                        // Gemini batches are not forgotten by the emulator's
                        // forget controls (yet).
                        forgotten: false,
                        resubmitted: b.resubmitted,
                    },
                )
            })
            .collect()
    }
}

// ------------------------------------------------------- request checking

/// Why a request is refused.
#[derive(Debug)]
enum RequestError {
    /// It does not parse as the proto (unknown field, wrong JSON type): an
    /// inline create is refused whole, with this message.
    Payload(String),
    /// It parses but is not valid: the request gets an `INVALID_ARGUMENT`
    /// result.
    Invalid(String),
}

/// `max_output_tokens` → `maxOutputTokens`.
fn camel(key: &str) -> Cow<'_, str> {
    if !key.contains('_') {
        return Cow::Borrowed(key);
    }
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// An object's fields under their camelCase names; unknown names refused.
fn fields<'v>(
    v: &'v Value,
    at: &str,
    known: &[&str],
) -> Result<HashMap<String, &'v Value>, RequestError> {
    let Value::Object(map) = v else {
        return Err(RequestError::Payload(format!(
            "Invalid JSON payload received. Invalid value at '{at}': expected an object."
        )));
    };
    let mut out = HashMap::with_capacity(map.len());
    for (k, val) in map {
        let name = camel(k);
        if !known.contains(&name.as_ref()) {
            return Err(RequestError::Payload(format!(
                "Invalid JSON payload received. Unknown name \"{k}\" at '{at}': Cannot find field."
            )));
        }
        out.insert(name.into_owned(), val);
    }
    Ok(out)
}

const REQUEST_FIELDS: &[&str] = &[
    "model",
    "contents",
    "systemInstruction",
    "generationConfig",
    "tools",
    "toolConfig",
    "safetySettings",
    "cachedContent",
];
const CONTENT_FIELDS: &[&str] = &["role", "parts"];
const PART_FIELDS: &[&str] = &[
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
    "thought",
    "thoughtSignature",
    "videoMetadata",
    "mediaResolution",
];
const PART_DATA: &[&str] = &[
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
];
const BLOB_FIELDS: &[&str] = &["mimeType", "data"];
const FILE_DATA_FIELDS: &[&str] = &["mimeType", "fileUri"];
const GENERATION_FIELDS: &[&str] = &[
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "responseModalities",
    "candidateCount",
    "maxOutputTokens",
    "temperature",
    "topP",
    "topK",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseLogprobs",
    "logprobs",
    "enableEnhancedCivicAnswers",
    "speechConfig",
    "thinkingConfig",
    "imageConfig",
    "mediaResolution",
];
const THINKING_FIELDS: &[&str] = &["includeThoughts", "thinkingBudget", "thinkingLevel"];
/// `inlineData` MIME types the models take.
const INLINE_TYPES: &[&str] = &[
    "application/pdf",
    "image/png",
    "image/jpeg",
    "image/webp",
    "image/heic",
    "image/heif",
    "text/plain",
    "text/html",
    "text/css",
    "text/csv",
    "text/xml",
    "text/markdown",
    "text/rtf",
    "application/json",
    "application/x-javascript",
    "text/javascript",
    "application/x-python",
    "text/x-python",
    "audio/wav",
    "audio/mp3",
    "audio/mpeg",
    "audio/aac",
    "audio/ogg",
    "audio/flac",
    "video/mp4",
    "video/mpeg",
    "video/webm",
];
const RESPONSE_MIME_TYPES: &[&str] = &["text/plain", "application/json", "text/x.enum"];

/// Whether a model thinks by default (and so reports `thoughtsTokenCount`).
fn thinks(model: &str) -> bool {
    (model.starts_with("gemini-2.5") && !model.contains("lite")) || model.starts_with("gemini-3")
}

fn as_str<'v>(v: &'v Value, at: &str) -> Result<&'v str, RequestError> {
    v.as_str().ok_or_else(|| {
        RequestError::Payload(format!(
            "Invalid JSON payload received. Invalid value at '{at}' ({v}): expected a string."
        ))
    })
}

fn as_number(v: &Value, at: &str) -> Result<f64, RequestError> {
    v.as_f64().ok_or_else(|| {
        RequestError::Payload(format!(
            "Invalid JSON payload received. Invalid value at '{at}' ({v}): expected a number."
        ))
    })
}

fn as_int(v: &Value, at: &str) -> Result<i64, RequestError> {
    match v {
        Value::Number(n) if n.is_i64() => Ok(n.as_i64().unwrap_or_default()),
        Value::String(s) => s.parse().map_err(|_| {
            RequestError::Payload(format!(
                "Invalid JSON payload received. Invalid value at '{at}' ({v}): expected an integer."
            ))
        }),
        _ => Err(RequestError::Payload(format!(
            "Invalid JSON payload received. Invalid value at '{at}' ({v}): expected an integer."
        ))),
    }
}

/// Texts of a `Content` (a system instruction), checking its parts.
fn content_texts(
    content: &Value,
    at: &str,
    deep: bool,
    docs: &mut Vec<Document>,
) -> Result<(Option<String>, Vec<String>), RequestError> {
    let f = fields(content, at, CONTENT_FIELDS)?;
    let role = match f.get("role") {
        Some(r) => Some(as_str(r, &format!("{at}.role"))?.to_string()),
        None => None,
    };
    let parts = match f.get("parts") {
        Some(Value::Array(p)) => p,
        Some(other) => {
            return Err(RequestError::Payload(format!(
                "Invalid JSON payload received. Invalid value at '{at}.parts' ({other}): expected a list."
            )))
        }
        None => &Vec::new(),
    };
    if parts.is_empty() {
        return Err(RequestError::Invalid(format!(
            "* GenerateContentRequest.{at}.parts: contents.parts must not be empty.\n"
        )));
    }
    let mut texts = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        let pat = format!("{at}.parts[{j}]");
        let pf = fields(part, &pat, PART_FIELDS)?;
        let data: Vec<&str> = PART_DATA
            .iter()
            .copied()
            .filter(|k| pf.contains_key(*k))
            .collect();
        if data.len() != 1 {
            return Err(RequestError::Invalid(format!(
                "* GenerateContentRequest.{pat}.data: required oneof field 'data' must have one initialized field\n"
            )));
        }
        if let Some(t) = pf.get("text") {
            texts.push(as_str(t, &format!("{pat}.text"))?.to_string());
        }
        if let Some(blob) = pf.get("inlineData") {
            let bat = format!("{pat}.inline_data");
            let bf = fields(blob, &bat, BLOB_FIELDS)?;
            let mime = match bf.get("mimeType") {
                Some(m) => as_str(m, &format!("{bat}.mime_type"))?,
                None => "",
            };
            if !INLINE_TYPES.contains(&mime) {
                return Err(RequestError::Invalid(format!(
                    "Unsupported MIME type: {mime}"
                )));
            }
            let data = match bf.get("data") {
                Some(d) => as_str(d, &format!("{bat}.data"))?,
                None => "",
            };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(data.trim()))
                .map_err(|_| {
                    RequestError::Payload(format!(
                        "Invalid value at '{bat}.data' (TYPE_BYTES), Base64 decoding failed for \"{}\"",
                        data.chars().take(20).collect::<String>()
                    ))
                })?;
            if bytes.is_empty() {
                return Err(RequestError::Invalid(format!(
                    "* GenerateContentRequest.{bat}.data: inline data must not be empty\n"
                )));
            }
            if mime == "application/pdf" {
                docs.push(Document {
                    title: None,
                    body: DocBody::Pdf(if deep {
                        pdf::extract_pages(&bytes)
                    } else {
                        Vec::new()
                    }),
                    citations: false,
                });
            } else if mime.starts_with("text/") || mime == "application/json" {
                docs.push(Document {
                    title: None,
                    body: DocBody::Text(String::from_utf8_lossy(&bytes).into_owned()),
                    citations: false,
                });
            }
        }
        if let Some(fd) = pf.get("fileData") {
            let fat = format!("{pat}.file_data");
            let ff = fields(fd, &fat, FILE_DATA_FIELDS)?;
            match ff.get("fileUri") {
                Some(u) if !as_str(u, &format!("{fat}.file_uri"))?.is_empty() => {}
                _ => {
                    return Err(RequestError::Invalid(format!(
                        "* GenerateContentRequest.{fat}.file_uri: a file URI is required\n"
                    )))
                }
            }
        }
    }
    Ok((role, texts))
}

/// Converts a `responseSchema` (the OpenAPI subset: upper-case types,
/// `nullable`) into the JSON Schema the answer generator reads.
fn openapi_to_json_schema(s: &Value) -> Value {
    let Value::Object(src) = s else {
        return json!({});
    };
    let mut out = Map::new();
    let nullable = src.get("nullable").and_then(Value::as_bool) == Some(true);
    if let Some(t) = src.get("type").and_then(Value::as_str) {
        let t = t.to_ascii_lowercase();
        if nullable {
            out.insert("type".into(), json!([t, "null"]));
        } else {
            out.insert("type".into(), json!(t));
        }
    }
    if let Some(Value::Object(props)) = src.get("properties") {
        let conv: Map<String, Value> = props
            .iter()
            .map(|(k, v)| (k.clone(), openapi_to_json_schema(v)))
            .collect();
        out.insert("properties".into(), Value::Object(conv));
    }
    if let Some(items) = src.get("items") {
        out.insert("items".into(), openapi_to_json_schema(items));
    }
    if let Some(Value::Array(alts)) = src.get("anyOf") {
        out.insert(
            "anyOf".into(),
            Value::Array(alts.iter().map(openapi_to_json_schema).collect()),
        );
    }
    for k in [
        "required",
        "enum",
        "description",
        "minItems",
        "maxItems",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "pattern",
    ] {
        if let Some(v) = src.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    Value::Object(out)
}

/// Checks a `GenerateContentRequest` (at `at` in the create body) and reduces
/// it to a [`Conversation`] for `model`. `deep` extracts PDF text.
fn check_request(
    model: &str,
    req: &Value,
    at: &str,
    deep: bool,
    bytes: usize,
) -> Result<Conversation, RequestError> {
    let f = fields(req, at, REQUEST_FIELDS)?;
    let mut conv = Conversation {
        model: model.to_string(),
        input_bytes: bytes,
        ..Default::default()
    };
    if let Some(m) = f.get("model") {
        let m = as_str(m, &format!("{at}.model"))?;
        if m.trim_start_matches("models/") != model {
            return Err(RequestError::Invalid(format!(
                "The model of a request ({m}) must be the batch's model (models/{model})."
            )));
        }
    }
    let contents = match f.get("contents") {
        Some(Value::Array(c)) => c.as_slice(),
        Some(other) => {
            return Err(RequestError::Payload(format!(
                "Invalid JSON payload received. Invalid value at '{at}.contents' ({other}): expected a list."
            )))
        }
        None => &[],
    };
    if contents.is_empty() {
        return Err(RequestError::Invalid(
            "* GenerateContentRequest.contents: contents is not specified\n".into(),
        ));
    }
    let mut docs = Vec::new();
    for (i, c) in contents.iter().enumerate() {
        let (role, texts) = content_texts(c, &format!("contents[{i}]"), deep, &mut docs)?;
        match role.as_deref() {
            None | Some("user") => conv.user_texts.push(texts.join("\n")),
            Some("model") => {}
            Some(_) => {
                return Err(RequestError::Invalid(
                    "Please use a valid role: user, model.".into(),
                ))
            }
        }
    }
    conv.documents = docs;
    if let Some(si) = f.get("systemInstruction") {
        let mut ignored = Vec::new();
        let (_, texts) = content_texts(si, "system_instruction", false, &mut ignored)?;
        conv.system = texts.join("\n");
    }
    if let Some(gc) = f.get("generationConfig") {
        let gat = format!("{at}.generation_config");
        let g = fields(gc, &gat, GENERATION_FIELDS)?;
        if let Some(t) = g.get("temperature") {
            let t = as_number(t, &format!("{gat}.temperature"))?;
            if !(0.0..=2.0).contains(&t) {
                return Err(RequestError::Invalid(format!(
                    "* GenerateContentRequest.generation_config.temperature: temperature must be between 0 and 2, got {t}\n"
                )));
            }
        }
        if let Some(m) = g.get("maxOutputTokens") {
            let m = as_int(m, &format!("{gat}.max_output_tokens"))?;
            if m < 1 {
                return Err(RequestError::Invalid(format!(
                    "* GenerateContentRequest.generation_config.max_output_tokens: max_output_tokens must be positive, got {m}\n"
                )));
            }
            conv.max_tokens = Some(m as u64);
        }
        if let Some(tc) = g.get("thinkingConfig") {
            let t = fields(tc, &format!("{gat}.thinking_config"), THINKING_FIELDS)?;
            if let Some(b) = t.get("thinkingBudget") {
                let b = as_int(b, &format!("{gat}.thinking_config.thinking_budget"))?;
                if b == 0 && model.contains("pro") {
                    return Err(RequestError::Invalid(
                        "Budget 0 is invalid. This model only works in thinking mode.".into(),
                    ));
                }
            }
        }
        let mime = match g.get("responseMimeType") {
            Some(m) => Some(as_str(m, &format!("{gat}.response_mime_type"))?),
            None => None,
        };
        if let Some(m) = mime {
            if !RESPONSE_MIME_TYPES.contains(&m) {
                return Err(RequestError::Invalid(format!(
                    "* GenerateContentRequest.generation_config.response_mime_type: allowed mimetypes are `text/plain`, `application/json`, `application/xml`, `application/yaml` and `text/x.enum`, got {m}\n"
                )));
            }
        }
        let schema = g.get("responseSchema");
        let json_schema = g.get("responseJsonSchema");
        if schema.is_some() && json_schema.is_some() {
            return Err(RequestError::Invalid(
                "* GenerateContentRequest.generation_config: response_schema and response_json_schema cannot both be set\n".into(),
            ));
        }
        if (schema.is_some() || json_schema.is_some())
            && !matches!(mime, Some("application/json" | "text/x.enum"))
        {
            return Err(RequestError::Invalid(
                "* GenerateContentRequest.generation_config.response_mime_type: a response schema needs response_mime_type application/json\n".into(),
            ));
        }
        for s in [schema, json_schema].into_iter().flatten() {
            if !s.is_object() {
                return Err(RequestError::Payload(format!(
                    "Invalid JSON payload received. Invalid value at '{gat}': the response schema must be an object."
                )));
            }
        }
        conv.format = match (schema, json_schema, mime) {
            (Some(s), _, _) => Some(ReplyFormat::JsonSchema(openapi_to_json_schema(s))),
            (_, Some(s), _) => Some(ReplyFormat::JsonSchema((*s).clone())),
            (_, _, Some("application/json")) => Some(ReplyFormat::JsonObject),
            _ => None,
        };
    }
    Ok(conv)
}

// ------------------------------------------------------------- answering

/// One `GenerateContentResponse`. `content_hash` (of the request alone)
/// decides how long the model thinks, so the same request costs the same in
/// any batch; `id_hash` names the response.
fn generate(conv: &Conversation, content_hash: u64, id_hash: u64) -> Value {
    let mut conv = conv.clone();
    // Thinking models spend part of `maxOutputTokens` thinking.
    let mut thoughts = if thinks(&conv.model) {
        24 + content_hash % 40
    } else {
        0
    };
    if let Some(max) = conv.max_tokens {
        thoughts = thoughts.min(max / 2);
        conv.max_tokens = Some(max - thoughts);
    }
    let empty_budget = conv.max_tokens == Some(0);
    let reply = if empty_budget {
        None
    } else {
        Some(answers::answer(&conv))
    };
    let input_tokens = answers::tokens_for(conv.input_bytes);
    let (text, candidates_tokens, finish) = match &reply {
        None => (String::new(), 0, "MAX_TOKENS"),
        Some(r) => (
            r.joined_text(),
            r.output_tokens,
            match r.stop {
                Stop::MaxTokens => "MAX_TOKENS",
                _ => "STOP",
            },
        ),
    };
    let content = if text.is_empty() {
        json!({"role": "model"})
    } else {
        json!({"parts": [{"text": text}], "role": "model"})
    };
    let mut usage = Map::new();
    usage.insert("promptTokenCount".into(), json!(input_tokens));
    if candidates_tokens > 0 {
        usage.insert("candidatesTokenCount".into(), json!(candidates_tokens));
    }
    usage.insert(
        "totalTokenCount".into(),
        json!(input_tokens + candidates_tokens + thoughts),
    );
    usage.insert(
        "promptTokensDetails".into(),
        json!([{"modality": "TEXT", "tokenCount": input_tokens}]),
    );
    if thoughts > 0 {
        usage.insert("thoughtsTokenCount".into(), json!(thoughts));
    }
    json!({
        "candidates": [{"content": content, "finishReason": finish, "index": 0}],
        "usageMetadata": Value::Object(usage),
        "modelVersion": conv.model,
        "responseId": base62(id_hash, 22),
    })
}

/// The answer (or error) of one request, as `{"response"}` / `{"error"}`.
fn result_of(item: &Item, model: &str, seed: u64, batch_id: &str) -> (&'static str, Value) {
    match &item.outcome {
        Outcome::Invalid(msg) => ("error", json!({"code": 3, "message": &**msg})),
        Outcome::Injected => (
            "error",
            json!({"code": 13, "message": "Internal error encountered."}),
        ),
        Outcome::Ok => match check_request(model, &item.request, "request", true, item.bytes) {
            Ok(conv) => {
                let key = item.key.as_deref().unwrap_or("");
                let content = hash_parts(
                    seed,
                    &[model.as_bytes(), item.request.to_string().as_bytes()],
                );
                let id = hash_parts(seed, &[batch_id.as_bytes(), key.as_bytes()]);
                ("response", generate(&conv, content, id))
            }
            Err(RequestError::Payload(m) | RequestError::Invalid(m)) => {
                ("error", json!({"code": 3, "message": m}))
            }
        },
    }
}

/// What building a batch's output needs.
struct OutputPlan {
    data: Arc<BatchData>,
    model: String,
    batch_id: String,
    seed: u64,
    shuffle: bool,
    inline: bool,
}

/// The inline output value, or the JSONL of a results file.
fn build_output(plan: &OutputPlan) -> Result<Value, Vec<u8>> {
    let items = &plan.data.items;
    let mut order: Vec<usize> = (0..items.len()).collect();
    if plan.shuffle {
        order.sort_by_key(|&i| (items[i].frac, i));
    }
    if plan.inline {
        let mut responses = Vec::with_capacity(items.len());
        for i in order {
            let it = &items[i];
            let (kind, v) = result_of(it, &plan.model, plan.seed, &plan.batch_id);
            let mut m = Map::new();
            m.insert(kind.into(), v);
            if let Some(meta) = &it.metadata {
                m.insert("metadata".into(), meta.clone());
            }
            responses.push(Value::Object(m));
        }
        return Ok(json!({"inlinedResponses": {"inlinedResponses": responses}}));
    }
    let mut out = Vec::new();
    for i in order {
        let it = &items[i];
        let (kind, v) = result_of(it, &plan.model, plan.seed, &plan.batch_id);
        let mut m = Map::new();
        if let Some(k) = &it.key {
            m.insert("key".into(), json!(&**k));
        }
        m.insert(kind.into(), v);
        if serde_json::to_writer(&mut out, &Value::Object(m)).is_ok() {
            out.push(b'\n');
        }
    }
    Err(out)
}

/// Builds the output of batches that succeeded and have none yet, then
/// renders `ids` at `now`.
async fn render(
    state: &Arc<AppState>,
    ids: &[String],
    now: Instant,
) -> Result<Vec<Value>, ApiError> {
    let pending: Vec<(Arc<tokio::sync::OnceCell<Option<Output>>>, OutputPlan)> = {
        let store = lock(&state.gemini);
        let mut v = Vec::new();
        for id in ids {
            let b = store.batch(id)?;
            if matches!(b.state(now), BatchState::Succeeded(_)) && b.output.get().is_none() {
                v.push((
                    b.output.clone(),
                    OutputPlan {
                        data: b.data.clone(),
                        model: b.model.clone(),
                        batch_id: b.id.clone(),
                        seed: state.config.seed,
                        shuffle: state.config.shuffle_results,
                        inline: matches!(b.input, Input::Inline),
                    },
                ));
            }
        }
        v
    };
    for (cell, plan) in pending {
        cell.get_or_try_init(|| async {
            let batch_id = plan.batch_id.clone();
            let built = tokio::task::spawn_blocking(move || build_output(&plan))
                .await
                .map_err(internal)?;
            Ok::<_, ApiError>(Some(match built {
                Ok(v) => Output::Inline(Arc::new(v)),
                Err(bytes) => {
                    let id = format!("batch-{batch_id}");
                    lock(&state.gemini).add_file(File {
                        id: id.clone(),
                        display_name: Some(format!("batch-{batch_id}")),
                        mime_type: "application/jsonl".into(),
                        content: Bytes::from(bytes),
                        created: Utc::now(),
                        source: FileSource::Generated,
                    });
                    Output::File(id)
                }
            }))
        })
        .await?;
    }
    let store = lock(&state.gemini);
    ids.iter()
        .map(|id| {
            let b = store.batch(id)?;
            Ok(b.view(now, b.state(now)))
        })
        .collect()
}

// ---------------------------------------------------------------- batches

/// A batch create body, read.
struct CreateRequest {
    display_name: Option<String>,
    input: Input,
    /// Inline: `(request, metadata)` pairs.
    inline: Vec<(Value, Option<Value>)>,
}

fn payload(e: RequestError) -> ApiError {
    match e {
        RequestError::Payload(m) | RequestError::Invalid(m) => ApiError::gemini_invalid(m),
    }
}

/// Reads `{"batch": {...}}` (camelCase or snake_case).
fn read_create(body: &[u8]) -> Result<CreateRequest, ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::gemini_invalid(format!(
            "Invalid JSON payload received. Unexpected token: {e}"
        ))
    })?;
    let top = fields(&v, "", &["batch"]).map_err(payload)?;
    let Some(batch) = top.get("batch") else {
        return Err(ApiError::gemini_invalid(
            "* BatchGenerateContentRequest.batch: batch is required\n",
        ));
    };
    let b = fields(
        batch,
        "batch",
        &[
            "model",
            "name",
            "displayName",
            "inputConfig",
            "webhookConfig",
            "priority",
        ],
    )
    .map_err(payload)?;
    let display_name = match b.get("displayName") {
        Some(d) => Some(
            as_str(d, "batch.display_name")
                .map_err(payload)?
                .to_string(),
        ),
        None => None,
    };
    if let Some(p) = b.get("priority") {
        as_int(p, "batch.priority").map_err(payload)?;
    }
    let Some(ic) = b.get("inputConfig") else {
        return Err(ApiError::gemini_invalid(
            "* BatchGenerateContentRequest.batch.input_config: input_config is required\n",
        ));
    };
    let c = fields(ic, "batch.input_config", &["requests", "fileName"]).map_err(payload)?;
    match (c.get("requests"), c.get("fileName")) {
        (Some(_), Some(_)) | (None, None) => Err(ApiError::gemini_invalid(
            "* BatchGenerateContentRequest.batch.input_config.source: exactly one of requests or file_name must be set\n",
        )),
        (None, Some(f)) => {
            let f = as_str(f, "batch.input_config.file_name").map_err(payload)?;
            Ok(CreateRequest {
                display_name,
                input: Input::File(f.to_string()),
                inline: Vec::new(),
            })
        }
        (Some(r), None) => {
            let at = "batch.input_config.requests";
            let rf = fields(r, at, &["requests"]).map_err(payload)?;
            let list = match rf.get("requests") {
                Some(Value::Array(l)) => l,
                Some(other) => {
                    return Err(ApiError::gemini_invalid(format!(
                        "Invalid JSON payload received. Invalid value at '{at}.requests' ({other}): expected a list."
                    )))
                }
                None => &Vec::new(),
            };
            let mut inline = Vec::with_capacity(list.len());
            for (i, item) in list.iter().enumerate() {
                let iat = format!("{at}.requests[{i}]");
                let f = fields(item, &iat, &["request", "metadata"]).map_err(payload)?;
                let Some(req) = f.get("request") else {
                    return Err(ApiError::gemini_invalid(format!(
                        "* BatchGenerateContentRequest.{iat}.request: request is required\n"
                    )));
                };
                let meta = match f.get("metadata") {
                    None => None,
                    Some(m @ Value::Object(_)) => Some((*m).clone()),
                    Some(other) => {
                        return Err(ApiError::gemini_invalid(format!(
                            "Invalid JSON payload received. Invalid value at '{iat}.metadata' ({other}): expected an object."
                        )))
                    }
                };
                inline.push(((*req).clone(), meta));
            }
            if inline.is_empty() {
                return Err(ApiError::gemini_invalid(
                    "* BatchGenerateContentRequest.batch.input_config.requests.requests: at least one request is required\n",
                ));
            }
            Ok(CreateRequest {
                display_name,
                input: Input::Inline,
                inline,
            })
        }
    }
}

fn item(
    config: &EmulatorConfig,
    key: Option<String>,
    metadata: Option<Value>,
    request: Value,
    outcome: Result<(), String>,
) -> Item {
    let id = key.clone().unwrap_or_default();
    let outcome = match outcome {
        Err(m) => Outcome::Invalid(m.into()),
        Ok(()) if unit(hash_parts(config.seed, &[b"error", id.as_bytes()])) < config.error_rate => {
            Outcome::Injected
        }
        Ok(()) => Outcome::Ok,
    };
    let bytes = request.to_string().len();
    Item {
        frac: (hash_parts(config.seed, &[b"finish", id.as_bytes()]) >> 32) as u32,
        key: key.map(String::into_boxed_str),
        metadata,
        request,
        bytes,
        outcome,
    }
}

fn finish_data(mut data: BatchData) -> BatchData {
    let mut keys = HashSet::new();
    for it in &data.items {
        if let Some(k) = &it.key {
            keys.insert(&**k);
        }
        match it.outcome {
            Outcome::Ok => data.ok_sorted.push(it.frac),
            _ => data.err_sorted.push(it.frac),
        }
    }
    data.distinct_keys = keys.len();
    data.ok_sorted.sort_unstable();
    data.err_sorted.sort_unstable();
    data
}

/// Inline requests: a payload error refuses the create call.
fn build_inline(
    config: &EmulatorConfig,
    model: &str,
    requests: Vec<(Value, Option<Value>)>,
) -> Result<BatchData, ApiError> {
    let mut data = BatchData::default();
    for (i, (req, meta)) in requests.into_iter().enumerate() {
        let at = format!("batch.input_config.requests.requests[{i}].request");
        if let Some(path) = crate::reject::find_marker(&req) {
            // A request the provider refuses for what it holds: the inline
            // create is refused, naming it (see `reject`).
            return Err(ApiError::gemini_invalid(format!(
                "* BatchGenerateContentRequest.{at}.{}: {}\n",
                path.join("."),
                crate::reject::reason(&req, &path)
            )));
        }
        let outcome = match check_request(model, &req, &at, false, 0) {
            Ok(_) => Ok(()),
            Err(RequestError::Payload(m)) => return Err(ApiError::gemini_invalid(m)),
            Err(RequestError::Invalid(m)) => Err(m),
        };
        let key = meta
            .as_ref()
            .and_then(|m| m.get("key"))
            .and_then(Value::as_str)
            .map(str::to_string);
        data.items.push(item(config, key, meta, req, outcome));
    }
    Ok(finish_data(data))
}

/// A JSONL input file: a line that is not a request fails the batch.
fn build_file(config: &EmulatorConfig, model: &str, content: &[u8]) -> BatchData {
    let mut data = BatchData::default();
    let fail = |data: &mut BatchData, line: usize, why: String| {
        data.failure = Some(format!("Invalid input file: line {line}: {why}"));
    };
    for (n, raw) in content.split(|b| *b == b'\n').enumerate() {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let v: Value = match serde_json::from_slice(line) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                fail(&mut data, n + 1, "not a JSON object".into());
                break;
            }
        };
        let f = match fields(&v, "", &["key", "request", "metadata"]) {
            Ok(f) => f,
            Err(RequestError::Payload(m) | RequestError::Invalid(m)) => {
                fail(&mut data, n + 1, m);
                break;
            }
        };
        let key = match f.get("key") {
            None => None,
            Some(Value::String(k)) => Some(k.clone()),
            Some(_) => {
                fail(&mut data, n + 1, "'key' must be a string".into());
                break;
            }
        };
        let Some(req) = f.get("request") else {
            fail(&mut data, n + 1, "'request' is required".into());
            break;
        };
        if let Some(path) = crate::reject::find_marker(req) {
            // Refused for what it holds: the file batch fails (see `reject`).
            let why = crate::reject::reason(req, &path);
            fail(
                &mut data,
                n + 1,
                format!("request.{}: {why}", path.join(".")),
            );
            break;
        }
        let outcome = check_request(model, req, "request", false, 0)
            .map(|_| ())
            .map_err(|e| match e {
                RequestError::Payload(m) | RequestError::Invalid(m) => m,
            });
        data.items
            .push(item(config, key, None, (*req).clone(), outcome));
    }
    if data.items.is_empty() && data.failure.is_none() {
        data.failure = Some("Invalid input file: it holds no requests".into());
    }
    if data.failure.is_some() {
        data.items.clear();
    }
    finish_data(data)
}

/// `POST /v1beta/models/{model}:batchGenerateContent`
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    Path(action): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let Some(model) = action.strip_suffix(":batchGenerateContent") else {
        return Err(ApiError::gemini(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!(
                "Method {action} is not supported by the emulator; only :batchGenerateContent is."
            ),
        ));
    };
    if !model.starts_with("gemini-") {
        return Err(ApiError::gemini(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("models/{model} is not found for API version v1beta, or is not supported for batchGenerateContent. Call ListModels to see the list of available models and their supported methods."),
        ));
    }
    let limit = state.config.gemini_max_inline_bytes;
    let bytes = read_body(&headers, body, limit)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge => ApiError::gemini_invalid(format!(
                "Request payload size exceeds the limit: {limit} bytes."
            )),
            BodyError::Read(m) => {
                ApiError::gemini_invalid(format!("Could not read the request: {m}"))
            }
        })?;
    let req = read_create(&bytes)?;
    let content = match &req.input {
        Input::Inline => None,
        Input::File(name) => {
            let id = name.strip_prefix("files/").unwrap_or(name);
            let store = lock(&state.gemini);
            let f = store.file(id)?;
            if f.source != FileSource::Uploaded {
                return Err(ApiError::gemini_invalid(format!(
                    "{name} is not an uploaded file; a batch reads its requests from an uploaded JSONL file."
                )));
            }
            Some(f.content.clone())
        }
    };
    let st = state.clone();
    let m = model.to_string();
    let inline = req.inline;
    let data = tokio::task::spawn_blocking(move || match content {
        Some(c) => Ok(build_file(&st.config, &m, &c)),
        None => build_inline(&st.config, &m, inline),
    })
    .await
    .map_err(internal)??;

    let config = &state.config;
    let seq = state.batch_seq.fetch_add(1, Ordering::SeqCst);
    let expiring =
        unit(hash_parts(config.seed, &[b"expire", &seq.to_le_bytes()])) < config.expire_rate;
    let mut batch = Batch {
        id: state.ids.gemini_batch(),
        seq,
        model: model.to_string(),
        display_name: req.display_name,
        input: req.input,
        timeline: Timeline::start(
            config.processing_delay,
            (0.1, 1.0),
            config.cancel_delay,
            expiring,
            config.expire_keep_fraction,
        ),
        data: Arc::new(data),
        output: Arc::new(tokio::sync::OnceCell::new()),
        deleted: false,
        resubmitted: 0,
    };
    let view = batch.view(Instant::now(), BatchState::Pending);
    let digests: Vec<u64> = batch
        .data
        .items
        .iter()
        .map(|i| request_digest(i.key.as_deref().unwrap_or(""), &i.request))
        .collect();
    let mut store = lock(&state.gemini);
    batch.resubmitted = digests
        .into_iter()
        .filter(|d| !store.submitted.insert(*d))
        .count() as u64;
    state.counters.record_batch(batch.resubmitted);
    store.order.push(batch.id.clone());
    store.batches.insert(batch.id.clone(), batch);
    Ok(Json(view))
}

/// `GET /v1beta/batches/{id}`
pub(crate) async fn retrieve(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let mut views = render(&state, std::slice::from_ref(&name), Instant::now()).await?;
    Ok(Json(views.pop().unwrap_or(Value::Null)))
}

fn page_size(
    pairs: &[(String, String)],
    (default, max): (usize, usize),
) -> Result<usize, ApiError> {
    match query_get(pairs, "pageSize").or_else(|| query_get(pairs, "page_size")) {
        None | Some("") => Ok(default),
        Some(s) => match s.parse::<i64>() {
            Ok(n) if n < 0 => Err(ApiError::gemini_invalid("page_size must not be negative")),
            Ok(0) => Ok(default),
            Ok(n) => Ok((n as usize).min(max)),
            Err(_) => Err(ApiError::gemini_invalid(format!(
                "Invalid value at 'page_size' ({s}), expected an integer."
            ))),
        },
    }
}

/// The page of `ids` (in list order) after the `pageToken` (the last id of
/// the page before), and the next token.
fn cursor_page(
    ids: &[String],
    pairs: &[(String, String)],
    size: usize,
) -> Result<(Vec<String>, Option<String>), ApiError> {
    let start = match query_get(pairs, "pageToken").or_else(|| query_get(pairs, "page_token")) {
        None | Some("") => 0,
        Some(tok) => match ids.iter().position(|id| id == tok) {
            Some(p) => p + 1,
            None => return Err(ApiError::gemini_invalid("Invalid page token.")),
        },
    };
    let rest = &ids[start..];
    let page: Vec<String> = rest[..rest.len().min(size)].to_vec();
    let next = (rest.len() > size).then(|| page.last().cloned()).flatten();
    Ok((page, next))
}

/// `GET /v1beta/batches?pageSize=&pageToken=` (newest first).
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let pairs = query_pairs(uri.query());
    let size = page_size(&pairs, BATCH_PAGE)?;
    let ids: Vec<String> = {
        let store = lock(&state.gemini);
        store
            .order
            .iter()
            .rev()
            .filter(|id| store.batches.get(*id).is_some_and(|b| !b.deleted))
            .cloned()
            .collect()
    };
    let (page, next) = cursor_page(&ids, &pairs, size)?;
    let views = render(&state, &page, Instant::now()).await?;
    let mut out = Map::new();
    if !views.is_empty() {
        out.insert("operations".into(), Value::Array(views));
    }
    if let Some(n) = next {
        out.insert("nextPageToken".into(), json!(n));
    }
    Ok(Json(Value::Object(out)))
}

/// `POST /v1beta/batches/{id}:cancel`
pub(crate) async fn action(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let Some(id) = name.strip_suffix(":cancel") else {
        return Err(unknown_path(
            &Method::POST,
            &format!("/v1beta/batches/{name}"),
        ));
    };
    let now = Instant::now();
    let mut store = lock(&state.gemini);
    let st = store.batch(id)?.state(now);
    if st.end().is_some() {
        return Err(ApiError::gemini(
            StatusCode::BAD_REQUEST,
            "FAILED_PRECONDITION",
            format!(
                "Batch batches/{id} has already ended ({}); it cannot be cancelled.",
                st.wire()
            ),
        ));
    }
    if let Some(b) = store.batches.get_mut(id) {
        if b.timeline.cancel_at.is_none() {
            b.timeline.cancel_at = Some(b.timeline.elapsed(now));
        }
    }
    Ok(Json(json!({})))
}

/// `DELETE /v1beta/batches/{id}`: the batch is forgotten (a running one is
/// not cancelled by this, as for any long-running operation).
pub(crate) async fn delete(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let mut store = lock(&state.gemini);
    store.batch(&name)?;
    if let Some(b) = store.batches.get_mut(&name) {
        b.deleted = true;
    }
    Ok(Json(json!({})))
}

// ------------------------------------------------------------------ files

fn upload_header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    header_str(headers, name)
}

fn with_upload_headers(mut resp: Response, pairs: &[(&'static str, String)]) -> Response {
    for (name, value) in pairs {
        if let Ok(v) = value.parse() {
            resp.headers_mut().insert(HeaderName::from_static(name), v);
        }
    }
    resp
}

/// `POST /upload/v1beta/files`: starts a resumable upload, or (with
/// `upload_id`) takes its bytes.
pub(crate) async fn upload(
    State(state): State<Arc<AppState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(uri.query());
    match query_get(&pairs, "upload_id") {
        None => upload_start(&state, uri.path(), &headers, body).await,
        Some(id) => upload_bytes(&state, id.to_string(), &headers, body).await,
    }
}

async fn upload_start(
    state: &Arc<AppState>,
    path: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    match upload_header(headers, "x-goog-upload-protocol") {
        Some(p) if p.eq_ignore_ascii_case("resumable") => {}
        Some(p) => {
            return Err(ApiError::gemini_invalid(format!(
                "Upload protocol '{p}' is not supported by the emulator; use X-Goog-Upload-Protocol: resumable."
            )))
        }
        None => {
            return Err(ApiError::gemini_invalid(
                "Media upload requires X-Goog-Upload-Protocol (resumable).",
            ))
        }
    }
    if !upload_header(headers, "x-goog-upload-command")
        .is_some_and(|c| c.eq_ignore_ascii_case("start"))
    {
        return Err(ApiError::gemini_invalid(
            "A resumable upload starts with X-Goog-Upload-Command: start.",
        ));
    }
    let declared = match upload_header(headers, "x-goog-upload-header-content-length") {
        None => None,
        Some(n) => Some(n.parse::<usize>().map_err(|_| {
            ApiError::gemini_invalid(format!(
                "X-Goog-Upload-Header-Content-Length '{n}' is not a byte count."
            ))
        })?),
    };
    let limit = state.config.gemini_max_file_bytes;
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::gemini_invalid(format!(
            "File size exceeds the limit: {limit} bytes."
        )));
    }
    let meta_bytes = read_body(headers, body, 64 * 1024)
        .await
        .map_err(|_| ApiError::gemini_invalid("The upload metadata is too large."))?;
    let mut mime = upload_header(headers, "x-goog-upload-header-content-type").map(str::to_string);
    let mut display_name = None;
    let mut name = None;
    if !meta_bytes.iter().all(u8::is_ascii_whitespace) {
        let v: Value = serde_json::from_slice(&meta_bytes)
            .map_err(|e| ApiError::gemini_invalid(format!("Invalid JSON payload received. {e}")))?;
        let top = fields(&v, "", &["file"]).map_err(payload)?;
        if let Some(file) = top.get("file") {
            let f = fields(
                file,
                "file",
                &["name", "displayName", "mimeType", "sizeBytes"],
            )
            .map_err(payload)?;
            if let Some(d) = f.get("displayName") {
                display_name = Some(as_str(d, "file.display_name").map_err(payload)?.to_string());
            }
            if let Some(m) = f.get("mimeType") {
                mime.get_or_insert(as_str(m, "file.mime_type").map_err(payload)?.to_string());
            }
            if let Some(n) = f.get("name") {
                let n = as_str(n, "file.name").map_err(payload)?;
                let id = n.strip_prefix("files/").unwrap_or(n);
                if id.is_empty()
                    || id.len() > 40
                    || !id
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                {
                    return Err(ApiError::gemini_invalid(format!(
                        "Invalid file name '{n}': lowercase letters, digits and dashes, at most 40."
                    )));
                }
                name = Some(id.to_string());
            }
        }
    }
    let id = state.ids.gemini_upload();
    lock(&state.gemini).uploads.insert(
        id.clone(),
        Upload {
            declared,
            mime_type: mime.unwrap_or_else(|| "application/octet-stream".into()),
            display_name,
            name,
            buf: bytes::BytesMut::new(),
        },
    );
    let url = format!(
        "{}{path}?upload_id={id}&upload_protocol=resumable",
        state.base_url
    );
    Ok(with_upload_headers(
        StatusCode::OK.into_response(),
        &[
            ("x-goog-upload-url", url.clone()),
            ("x-goog-upload-control-url", url),
            ("x-goog-upload-status", "active".into()),
            ("x-goog-upload-chunk-granularity", CHUNK_GRANULARITY.into()),
        ],
    ))
}

async fn upload_bytes(
    state: &Arc<AppState>,
    id: String,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let command = upload_header(headers, "x-goog-upload-command")
        .unwrap_or("")
        .to_ascii_lowercase();
    let words: Vec<&str> = command.split(',').map(str::trim).collect();
    let (upload, finalize, query) = (
        words.contains(&"upload"),
        words.contains(&"finalize"),
        words.contains(&"query"),
    );
    if !upload && !finalize && !query {
        return Err(ApiError::gemini_invalid(
            "X-Goog-Upload-Command must be upload, finalize, 'upload, finalize' or query.",
        ));
    }
    let limit = state.config.gemini_max_file_bytes;
    let chunk = if upload {
        read_body(headers, body, limit).await.map_err(|e| match e {
            BodyError::TooLarge => {
                ApiError::gemini_invalid(format!("File size exceeds the limit: {limit} bytes."))
            }
            BodyError::Read(m) => {
                ApiError::gemini_invalid(format!("Could not read the upload: {m}"))
            }
        })?
    } else {
        Bytes::new()
    };
    let mut store = lock(&state.gemini);
    let Some(up) = store.uploads.get_mut(&id) else {
        return Err(ApiError::gemini(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "No upload session with this upload_id (it was finalized, or never started).",
        ));
    };
    if query {
        let received = up.buf.len().to_string();
        return Ok(with_upload_headers(
            StatusCode::OK.into_response(),
            &[
                ("x-goog-upload-status", "active".into()),
                ("x-goog-upload-size-received", received),
            ],
        ));
    }
    if upload {
        let offset =
            upload_header(headers, "x-goog-upload-offset").and_then(|o| o.parse::<usize>().ok());
        if offset != Some(up.buf.len()) {
            let received = up.buf.len().to_string();
            let err = ApiError::gemini_invalid(format!(
                "X-Goog-Upload-Offset must be the bytes received so far ({received})."
            ));
            return Err(err
                .with_header(HeaderName::from_static("x-goog-upload-status"), "active")
                .with_header(
                    HeaderName::from_static("x-goog-upload-size-received"),
                    received,
                ));
        }
        if up.buf.len() + chunk.len() > limit {
            return Err(ApiError::gemini_invalid(format!(
                "File size exceeds the limit: {limit} bytes."
            )));
        }
        up.buf.extend_from_slice(&chunk);
    }
    if !finalize {
        let received = up.buf.len().to_string();
        return Ok(with_upload_headers(
            StatusCode::OK.into_response(),
            &[
                ("x-goog-upload-status", "active".into()),
                ("x-goog-upload-size-received", received),
            ],
        ));
    }
    if let Some(n) = up.declared.filter(|&n| n != up.buf.len()) {
        return Err(ApiError::gemini_invalid(format!(
            "The upload was finalized with {} bytes, but X-Goog-Upload-Header-Content-Length said {n}.",
            up.buf.len()
        )));
    }
    let Some(up) = store.uploads.remove(&id) else {
        return Err(internal("upload vanished"));
    };
    let file_id = match up.name {
        Some(n) if store.files.contains_key(&n) => {
            return Err(ApiError::gemini(
                StatusCode::CONFLICT,
                "ALREADY_EXISTS",
                format!("A file named files/{n} already exists."),
            ))
        }
        Some(n) => n,
        None => state.ids.gemini_file(),
    };
    let file = File {
        id: file_id.clone(),
        display_name: up.display_name,
        mime_type: up.mime_type,
        content: up.buf.freeze(),
        created: Utc::now(),
        source: FileSource::Uploaded,
    };
    let view = file.view(&state.base_url);
    store.add_file(file);
    let resp = Json(json!({"file": view})).into_response();
    Ok(with_upload_headers(
        resp,
        &[("x-goog-upload-status", "final".into())],
    ))
}

/// `GET /v1beta/files/{id}`, or `GET /v1beta/files/{id}:download?alt=media`.
pub(crate) async fn get_file_or_download(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    if name.contains(':') {
        return download_file(&state, &name, &uri);
    }
    let store = lock(&state.gemini);
    Ok(Json(store.file(&name)?.view(&state.base_url)).into_response())
}

/// `GET /download/v1beta/files/{id}:download?alt=media`
pub(crate) async fn download(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    download_file(&state, &name, &uri)
}

fn download_file(state: &Arc<AppState>, name: &str, uri: &Uri) -> Result<Response, ApiError> {
    let Some(id) = name.strip_suffix(":download") else {
        return Err(unknown_path(&Method::GET, uri.path()));
    };
    let pairs = query_pairs(uri.query());
    if query_get(&pairs, "alt") != Some("media") {
        return Err(ApiError::gemini_invalid(
            "Downloading a file needs ?alt=media.",
        ));
    }
    let store = lock(&state.gemini);
    let f = store.file(id)?;
    if f.source != FileSource::Generated {
        return Err(ApiError::gemini_invalid(format!(
            "files/{id} cannot be downloaded: only generated files (such as batch results) can be."
        )));
    }
    Ok((
        [(header::CONTENT_TYPE, f.mime_type.clone())],
        f.content.clone(),
    )
        .into_response())
}

/// `DELETE /v1beta/files/{id}`
pub(crate) async fn delete_file(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let mut store = lock(&state.gemini);
    store.file(&name)?;
    store.files.remove(&name);
    store.file_order.retain(|id| id != &name);
    Ok(Json(json!({})))
}

/// `GET /v1beta/files?pageSize=&pageToken=` (newest first).
pub(crate) async fn list_files(
    State(state): State<Arc<AppState>>,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let pairs = query_pairs(uri.query());
    let size = page_size(&pairs, FILE_PAGE)?;
    let store = lock(&state.gemini);
    let ids: Vec<String> = store.file_order.iter().rev().cloned().collect();
    let (page, next) = cursor_page(&ids, &pairs, size)?;
    let files: Vec<Value> = page
        .iter()
        .filter_map(|id| store.files.get(id))
        .map(|f| f.view(&state.base_url))
        .collect();
    let mut out = Map::new();
    if !files.is_empty() {
        out.insert("files".into(), Value::Array(files));
    }
    if let Some(n) = next {
        out.insert("nextPageToken".into(), json!(n));
    }
    Ok(Json(Value::Object(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_cases() {
        assert_eq!(camel("max_output_tokens"), "maxOutputTokens");
        assert_eq!(camel("maxOutputTokens"), "maxOutputTokens");
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

    #[test]
    fn openapi_schema_becomes_json_schema() {
        let s = openapi_to_json_schema(&json!({
            "type": "OBJECT",
            "properties": {"a": {"type": "STRING", "nullable": true}, "b": {"type": "ARRAY", "items": {"type": "INTEGER"}}},
            "required": ["a"],
            "propertyOrdering": ["a", "b"],
        }));
        assert_eq!(
            s,
            json!({"type": "object", "properties": {"a": {"type": ["string", "null"]}, "b": {"type": "array", "items": {"type": "integer"}}}, "required": ["a"]})
        );
    }
}
