//! The OpenAI Files and Batch APIs: upload, retrieve, list, delete and
//! download files; create, retrieve, list and cancel batches.
//!
//! Input files are kept as shared bytes. Creating a batch validates every
//! JSONL line at once (off the async runtime) and keeps only compact line
//! records (custom id, byte range, finish fraction, outcome); the validation
//! verdict is revealed when the batch leaves `validating`. Status is computed
//! from the batch's [`Timeline`] on each read. The output and error files are
//! built once, the first time anyone observes the batch in a terminal state
//! (`completed`, `expired`, `cancelled`), so their ids and sizes are stable.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde_json::{json, Map, Value};

use crate::answers::{self, Conversation, DocBody, Document, ReplyFormat, Stop};
use crate::error::ApiError;
use crate::ids::{base62, hash_parts, hex, unit};
use crate::lifecycle::{count_done, is_done, Timeline};
use crate::pdf;
use crate::server::{lock, query_get, query_pairs, read_body, AppState, BodyError};
use crate::stats::{request_digest, BatchSummary};

/// The one endpoint whose requests the emulator can answer.
const CHAT_ENDPOINT: &str = "/v1/chat/completions";
/// Endpoints the real Batch API accepts.
const BATCH_ENDPOINTS: &[&str] = &[
    "/v1/responses",
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/completions",
    "/v1/moderations",
    "/v1/images/generations",
    "/v1/images/edits",
    "/v1/videos",
];
const FILE_PURPOSES: &[&str] = &[
    "assistants",
    "batch",
    "fine-tune",
    "vision",
    "user_data",
    "evals",
];
/// Files expire 30 days after upload by default.
const FILE_TTL_SECS: i64 = 30 * 24 * 3600;
/// The most validation errors reported for one input file.
const MAX_ERRORS: usize = 1000;

/// A stored file.
#[derive(Debug)]
struct File {
    id: String,
    filename: String,
    purpose: String,
    created_at: i64,
    expires_at: Option<i64>,
    content: Bytes,
    deleted: bool,
    /// The batch whose output or error file this is (`None` for uploads):
    /// when the provider forgets that batch, the file goes with it.
    batch_id: Option<String>,
}

impl File {
    fn view(&self) -> Value {
        json!({
            "id": self.id,
            "object": "file",
            "bytes": self.content.len(),
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": null,
        })
    }
}

/// A per-request error found in a line's body (goes to the error file as a 400).
#[derive(Debug, Clone)]
pub(crate) struct LineError {
    message: String,
    param: Option<String>,
    code: Option<&'static str>,
}

impl LineError {
    fn new(message: impl Into<String>, param: Option<&str>, code: Option<&'static str>) -> Self {
        Self {
            message: message.into(),
            param: param.map(str::to_string),
            code,
        }
    }
}

#[derive(Debug)]
enum Outcome {
    Ok,
    Invalid(Box<LineError>),
    Injected,
}

/// One valid input line.
#[derive(Debug)]
struct Line {
    custom_id: Box<str>,
    /// Byte range of the whole line in the input file.
    start: usize,
    end: usize,
    frac: u32,
    outcome: Outcome,
}

/// The immutable result of validating an input file.
#[derive(Debug)]
struct BatchData {
    file: Bytes,
    lines: Vec<Line>,
    /// Validation errors; non-empty means the batch fails.
    errors: Vec<Value>,
    ok_sorted: Vec<u32>,
    err_sorted: Vec<u32>,
    model: Option<String>,
    line_count: usize,
    distinct_ids: usize,
}

/// Output and error files of a finished batch.
#[derive(Debug, Clone)]
struct Outputs {
    output_file_id: Option<String>,
    error_file_id: Option<String>,
    usage: Value,
}

#[derive(Debug)]
struct Batch {
    id: String,
    seq: u64,
    endpoint: String,
    input_file_id: String,
    completion_window: String,
    metadata: Option<Value>,
    timeline: Timeline,
    data: Arc<BatchData>,
    outputs: Arc<tokio::sync::OnceCell<Outputs>>,
    /// How many of its requests had been submitted in an earlier batch.
    resubmitted: u64,
}

/// All OpenAI files and batches of an emulator.
#[derive(Debug, Default)]
pub(crate) struct Store {
    files: HashMap<String, File>,
    file_order: Vec<String>,
    batches: HashMap<String, Batch>,
    batch_order: Vec<String>,
    /// Digests of every request submitted so far (see [`request_digest`]).
    submitted: HashSet<u64>,
}

/// A batch status at one moment (durations are since creation).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Status {
    Validating,
    Failed(Duration),
    InProgress,
    Finalizing,
    Completed(Duration),
    Expired(Duration),
    Cancelling,
    Cancelled(Duration),
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Validating => "validating",
            Status::Failed(_) => "failed",
            Status::InProgress => "in_progress",
            Status::Finalizing => "finalizing",
            Status::Completed(_) => "completed",
            Status::Expired(_) => "expired",
            Status::Cancelling => "cancelling",
            Status::Cancelled(_) => "cancelled",
        }
    }

    /// When a terminal status with output files was reached.
    fn output_time(self) -> Option<Duration> {
        match self {
            Status::Completed(t) | Status::Expired(t) | Status::Cancelled(t) => Some(t),
            _ => None,
        }
    }
}

fn file_not_found(id: &str) -> ApiError {
    ApiError::openai(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        format!("No such File object: {id}"),
        Some("id"),
        None,
    )
}

fn batch_not_found(id: &str) -> ApiError {
    ApiError::openai(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        format!("No batch found with id '{id}'."),
        None,
        None,
    )
}

impl Batch {
    fn validation_end(&self) -> Duration {
        self.timeline.at_fraction(0.1)
    }

    fn status(&self, now: Instant) -> Status {
        let t = &self.timeline;
        let e = t.elapsed(now);
        if let Some(end) = t.cancel_end() {
            return if e >= end {
                Status::Cancelled(end)
            } else {
                Status::Cancelling
            };
        }
        let v = self.validation_end();
        if e < v {
            return Status::Validating;
        }
        if !self.data.errors.is_empty() {
            return Status::Failed(v);
        }
        let p = t.at_fraction(0.9);
        if t.expiring {
            return if e >= p {
                Status::Expired(p)
            } else {
                Status::InProgress
            };
        }
        if e < p {
            Status::InProgress
        } else if e < t.delay {
            Status::Finalizing
        } else {
            Status::Completed(t.delay)
        }
    }

    fn view(&self, now: Instant, status: Status) -> Value {
        let t = &self.timeline;
        let ts = |d: Duration| t.wall(d).timestamp();
        let e = t.elapsed(now);
        let v = self.validation_end();
        let failed = !self.data.errors.is_empty();
        let validated =
            e >= v && t.cancel_at.is_none_or(|c| c >= v) && !matches!(status, Status::Validating);
        let in_progress_at = (validated && !failed).then(|| ts(v));
        let (total, completed, failed_count) = if in_progress_at.is_some() {
            let at = match status {
                Status::Completed(d) | Status::Expired(d) | Status::Cancelled(d) => d,
                _ => e,
            };
            let thr = t.threshold(at);
            (
                self.data.lines.len(),
                count_done(&self.data.ok_sorted, thr),
                count_done(&self.data.err_sorted, thr),
            )
        } else {
            (0, 0, 0)
        };
        let outputs = self
            .outputs
            .get()
            .filter(|_| status.output_time().is_some());
        let finalizing_at = match status {
            Status::Finalizing | Status::Completed(_) => Some(ts(t.at_fraction(0.9))),
            _ => None,
        };
        json!({
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": if failed && !matches!(status, Status::Validating) {
                json!({"object": "list", "data": self.data.errors})
            } else {
                Value::Null
            },
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": status.as_str(),
            "output_file_id": outputs.and_then(|o| o.output_file_id.clone()),
            "error_file_id": outputs.and_then(|o| o.error_file_id.clone()),
            "created_at": t.created_wall.timestamp(),
            "in_progress_at": in_progress_at,
            "expires_at": (!matches!(status, Status::Validating)).then(|| ts(Duration::from_secs(24 * 3600))),
            "finalizing_at": finalizing_at,
            "completed_at": match status { Status::Completed(d) => Some(ts(d)), _ => None },
            "failed_at": match status { Status::Failed(d) => Some(ts(d)), _ => None },
            "expired_at": match status { Status::Expired(d) => Some(ts(d)), _ => None },
            "cancelling_at": t.cancel_at.map(ts),
            "cancelled_at": match status { Status::Cancelled(d) => Some(ts(d)), _ => None },
            "request_counts": {"total": total, "completed": completed, "failed": failed_count},
            "metadata": self.metadata,
            "model": self.data.model,
            "usage": outputs.map(|o| o.usage.clone()),
        })
    }
}

impl Store {
    /// The batch `id` if the provider still knows it at `now`.
    fn batch(&self, id: &str, now: Instant) -> Result<&Batch, ApiError> {
        self.batches
            .get(id)
            .filter(|b| !b.timeline.is_forgotten(now))
            .ok_or_else(|| batch_not_found(id))
    }

    /// Whether a client can see file `f` at `now`: not deleted, and not the
    /// output of a forgotten batch.
    fn file_known(&self, f: &File, now: Instant) -> bool {
        !f.deleted
            && f.batch_id.as_ref().is_none_or(|b| {
                self.batches
                    .get(b)
                    .is_some_and(|b| !b.timeline.is_forgotten(now))
            })
    }

    /// The file `id` if it is visible at `now`.
    fn file(&self, id: &str, now: Instant) -> Result<&File, ApiError> {
        self.files
            .get(id)
            .filter(|f| self.file_known(f, now))
            .ok_or_else(|| file_not_found(id))
    }

    /// Forgets every batch that exists now; returns how many were still known.
    pub(crate) fn forget_all(&mut self, now: Instant) -> usize {
        let mut n = 0;
        for b in self.batches.values_mut() {
            if !b.timeline.is_forgotten(now) {
                n += 1;
            }
            b.timeline.forgotten = true;
        }
        n
    }

    fn add_file(&mut self, file: File) -> Value {
        let view = file.view();
        self.file_order.push(file.id.clone());
        self.files.insert(file.id.clone(), file);
        view
    }

    /// `(creation sequence, summary)` for every batch.
    pub(crate) fn summaries(&self) -> Vec<(u64, BatchSummary)> {
        let now = Instant::now();
        self.batch_order
            .iter()
            .filter_map(|id| self.batches.get(id))
            .map(|b| {
                (
                    b.seq,
                    BatchSummary {
                        provider: "openai".into(),
                        id: b.id.clone(),
                        status: b.status(now).as_str().into(),
                        request_count: b.data.line_count as u64,
                        custom_ids: b.data.distinct_ids as u64,
                        created_at: b
                            .timeline
                            .created_wall
                            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                        metadata: b.metadata.clone(),
                        deleted: false,
                        forgotten: b.timeline.is_forgotten(now),
                        resubmitted: b.resubmitted,
                    },
                )
            })
            .collect()
    }
}

// ---------------------------------------------------------------- files

/// `POST /v1/files` (multipart: `file`, `purpose`, optional `expires_after[...]`).
pub(crate) async fn upload_file(
    State(state): State<Arc<AppState>>,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let limit = state.config.openai_max_file_bytes;
    let too_large = || {
        ApiError::openai(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("File is too large; the maximum size is {limit} bytes."),
            Some("file"),
            None,
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit.saturating_add(64 * 1024)) {
        return Err(too_large());
    }
    let mut multipart = Multipart::from_request(req, &()).await.map_err(|e| {
        ApiError::openai_invalid(
            format!("Expected a multipart/form-data body: {}", e.body_text()),
            None,
        )
    })?;
    let mut file: Option<(String, Bytes)> = None;
    let mut purpose: Option<String> = None;
    let mut expires_secs: Option<i64> = None;
    let bad_form = |e: axum::extract::multipart::MultipartError| {
        ApiError::openai_invalid(
            format!("Could not read the multipart body: {}", e.body_text()),
            None,
        )
    };
    while let Some(mut field) = multipart.next_field().await.map_err(bad_form)? {
        let name = field.name().unwrap_or("").to_string();
        match name.as_str() {
            "file" => {
                let filename = field.file_name().unwrap_or("upload.jsonl").to_string();
                let mut buf = bytes::BytesMut::new();
                while let Some(chunk) = field.chunk().await.map_err(bad_form)? {
                    if buf.len() + chunk.len() > limit {
                        return Err(too_large());
                    }
                    buf.extend_from_slice(&chunk);
                }
                file = Some((filename, buf.freeze()));
            }
            "purpose" => purpose = Some(field.text().await.map_err(bad_form)?.trim().to_string()),
            "expires_after[seconds]" => {
                let text = field.text().await.map_err(bad_form)?;
                match text.trim().parse::<i64>() {
                    Ok(s) if (3600..=2_592_000).contains(&s) => expires_secs = Some(s),
                    _ => {
                        return Err(ApiError::openai_invalid(
                            "Invalid 'expires_after.seconds': expected an integer between 3600 and 2592000.",
                            Some("expires_after.seconds"),
                        ))
                    }
                }
            }
            _ => {
                // Unknown fields (e.g. expires_after[anchor]) are read and ignored.
                let _ = field.bytes().await.map_err(bad_form)?;
            }
        }
    }
    let Some((filename, content)) = file else {
        return Err(ApiError::openai_invalid(
            "Missing required parameter: 'file'.",
            Some("file"),
        ));
    };
    let Some(purpose) = purpose else {
        return Err(ApiError::openai_invalid(
            "Missing required parameter: 'purpose'.",
            Some("purpose"),
        ));
    };
    if !FILE_PURPOSES.contains(&purpose.as_str()) {
        return Err(ApiError::openai_invalid(
            format!("Invalid value for 'purpose': '{purpose}'."),
            Some("purpose"),
        ));
    }
    let created_at = chrono::Utc::now().timestamp();
    let ttl = expires_secs.or((purpose == "batch").then_some(FILE_TTL_SECS));
    let file = File {
        id: state.ids.openai_file(),
        filename,
        purpose,
        created_at,
        expires_at: ttl.map(|s| created_at + s),
        content,
        deleted: false,
        batch_id: None,
    };
    Ok(Json(lock(&state.openai).add_file(file)))
}

/// `GET /v1/files/{id}`
pub(crate) async fn retrieve_file(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(lock(&state.openai).file(&id, Instant::now())?.view()))
}

/// `DELETE /v1/files/{id}`
pub(crate) async fn delete_file(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let mut store = lock(&state.openai);
    store.file(&id, Instant::now())?;
    if let Some(f) = store.files.get_mut(&id) {
        f.deleted = true;
        f.content = Bytes::new();
    }
    Ok(Json(json!({"id": id, "object": "file", "deleted": true})))
}

/// `GET /v1/files/{id}/content` — the raw bytes.
pub(crate) async fn file_content(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let content = lock(&state.openai)
        .file(&id, Instant::now())?
        .content
        .clone();
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        content,
    )
        .into_response())
}

/// `GET /v1/files?purpose=&limit=&after=&order=`
pub(crate) async fn list_files(
    State(state): State<Arc<AppState>>,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let q = query_pairs(uri.query());
    let limit = parse_limit(query_get(&q, "limit"), 10_000, 10_000)?;
    let purpose = query_get(&q, "purpose").filter(|p| !p.is_empty());
    let ascending = match query_get(&q, "order") {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(other) => {
            return Err(ApiError::openai_invalid(
                format!(
                    "Invalid value for 'order': '{other}'. Supported values are: 'asc' and 'desc'."
                ),
                Some("order"),
            ))
        }
    };
    let now = Instant::now();
    let store = lock(&state.openai);
    let mut files: Vec<&File> = store
        .file_order
        .iter()
        .filter_map(|id| store.files.get(id))
        .filter(|f| store.file_known(f, now) && purpose.is_none_or(|p| f.purpose == p))
        .collect();
    if !ascending {
        files.reverse();
    }
    let views: Vec<(String, Value)> = files.iter().map(|f| (f.id.clone(), f.view())).collect();
    Ok(Json(page(views, query_get(&q, "after"), limit)))
}

fn parse_limit(raw: Option<&str>, default: usize, max: usize) -> Result<usize, ApiError> {
    match raw {
        None => Ok(default),
        Some(l) => match l.parse::<usize>() {
            Ok(l) if (1..=max).contains(&l) => Ok(l),
            _ => Err(ApiError::openai_invalid(
                format!("Invalid 'limit': expected an integer between 1 and {max}."),
                Some("limit"),
            )),
        },
    }
}

/// A cursor page over `(id, object)` pairs already in list order.
fn page(items: Vec<(String, Value)>, after: Option<&str>, limit: usize) -> Value {
    let start = match after.filter(|a| !a.is_empty()) {
        Some(a) => match items.iter().position(|(id, _)| id == a) {
            Some(p) => p + 1,
            None => items.len(),
        },
        None => 0,
    };
    let rest = &items[start..];
    let data = &rest[..rest.len().min(limit)];
    json!({
        "object": "list",
        "data": data.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>(),
        "first_id": data.first().map(|(id, _)| id.clone()),
        "last_id": data.last().map(|(id, _)| id.clone()),
        "has_more": rest.len() > limit,
    })
}

// -------------------------------------------------------------- batches

fn err_entry(
    code: &str,
    message: impl Into<String>,
    line: Option<usize>,
    param: Option<&str>,
) -> Value {
    json!({"code": code, "message": message.into(), "param": param, "line": line})
}

/// Validates every line of an input file (CPU-bound; run off the runtime).
/// Also returns the digest of each request when the input is valid (a batch
/// that fails validation submits nothing).
fn build_batch(
    file: Bytes,
    endpoint: &str,
    config: &crate::EmulatorConfig,
) -> (BatchData, Vec<u64>) {
    let mut spans = Vec::new();
    let mut offset = 0;
    for (i, raw) in file.split(|b| *b == b'\n').enumerate() {
        let start = offset;
        offset += raw.len() + 1;
        let mut end = start + raw.len();
        if end > start && file[end - 1] == b'\r' {
            end -= 1;
        }
        if file[start..end].iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        spans.push((i + 1, start, end));
    }
    let mut data = BatchData {
        file: file.clone(),
        lines: Vec::new(),
        errors: Vec::new(),
        ok_sorted: Vec::new(),
        err_sorted: Vec::new(),
        model: None,
        line_count: spans.len(),
        distinct_ids: 0,
    };
    if spans.is_empty() {
        data.errors.push(err_entry(
            "empty_file",
            "The batch input file is empty.",
            None,
            None,
        ));
        return (data, Vec::new());
    }
    if spans.len() > config.openai_max_requests {
        data.errors.push(err_entry(
            "too_many_tasks",
            format!(
                "The batch input file has {} requests; a batch may contain at most {}.",
                spans.len(),
                config.openai_max_requests
            ),
            None,
            None,
        ));
        return (data, Vec::new());
    }
    let mut seen: HashSet<String> = HashSet::with_capacity(spans.len());
    let mut errors = Vec::new();
    let mut lines = Vec::with_capacity(spans.len());
    let mut digests = Vec::with_capacity(spans.len());
    for (line_no, start, end) in spans {
        if errors.len() >= MAX_ERRORS {
            break;
        }
        let mut fail = |code: &str, message: String, param: Option<&str>| {
            errors.push(err_entry(code, message, Some(line_no), param));
        };
        let value: Value = match serde_json::from_slice(&file[start..end]) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                fail(
                    "invalid_json_line",
                    "This line is not parseable as valid JSON.".into(),
                    None,
                );
                continue;
            }
        };
        let custom_id = match value.get("custom_id") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => {
                fail(
                    "missing_required_parameter",
                    "Missing required parameter: 'custom_id'.".into(),
                    Some("custom_id"),
                );
                continue;
            }
        };
        if !seen.insert(custom_id.clone()) {
            fail(
                "duplicate_custom_id",
                "The custom_id for this request is a duplicate of another request. The custom_id parameter must be unique for each request in a batch.".into(),
                Some("custom_id"),
            );
            continue;
        }
        match value.get("method").and_then(Value::as_str) {
            None => {
                fail(
                    "missing_required_parameter",
                    "Missing required parameter: 'method'.".into(),
                    Some("method"),
                );
                continue;
            }
            Some("POST") => {}
            Some(m) => {
                fail(
                    "invalid_value",
                    format!("Invalid value: '{m}'. Supported values are: 'POST'."),
                    Some("method"),
                );
                continue;
            }
        }
        match value.get("url").and_then(Value::as_str) {
            None => {
                fail(
                    "missing_required_parameter",
                    "Missing required parameter: 'url'.".into(),
                    Some("url"),
                );
                continue;
            }
            Some(u) if u != endpoint => {
                fail(
                    "url_mismatch",
                    format!("The provided URL '{u}' does not match the endpoint '{endpoint}' of the batch."),
                    Some("url"),
                );
                continue;
            }
            Some(_) => {}
        }
        let Some(body) = value.get("body").filter(|b| b.is_object()) else {
            fail(
                "missing_required_parameter",
                "Missing required parameter: 'body'.".into(),
                Some("body"),
            );
            continue;
        };
        if let Some(model) = body.get("model").and_then(Value::as_str) {
            match &data.model {
                None => data.model = Some(model.to_string()),
                Some(first) if first != model => {
                    fail(
                        "model_mismatch",
                        format!("The model '{model}' does not match the model '{first}' used by the other requests in this batch."),
                        Some("body.model"),
                    );
                    continue;
                }
                Some(_) => {}
            }
        }
        if let Some(path) = crate::reject::find_marker(body) {
            // A request the provider refuses for what it holds: the batch
            // fails validation with this line named (see `reject`).
            let param = format!("body.{}", path.join("."));
            fail(
                "invalid_request",
                format!(
                    "Invalid content in '{param}': {}",
                    crate::reject::reason(body, &path)
                ),
                Some(&param),
            );
            continue;
        }
        let outcome = match parse_chat(body, false, 0) {
            Err(e) => Outcome::Invalid(Box::new(e)),
            Ok(_)
                if unit(hash_parts(config.seed, &[b"error", custom_id.as_bytes()]))
                    < config.error_rate =>
            {
                Outcome::Injected
            }
            Ok(_) => Outcome::Ok,
        };
        digests.push(request_digest(&custom_id, body));
        let frac = (hash_parts(config.seed, &[b"finish", custom_id.as_bytes()]) >> 32) as u32;
        lines.push(Line {
            custom_id: custom_id.into_boxed_str(),
            start,
            end,
            frac,
            outcome,
        });
    }
    data.distinct_ids = seen.len();
    if !errors.is_empty() {
        data.errors = errors;
        return (data, Vec::new());
    }
    for l in &lines {
        match l.outcome {
            Outcome::Ok => data.ok_sorted.push(l.frac),
            _ => data.err_sorted.push(l.frac),
        }
    }
    data.ok_sorted.sort_unstable();
    data.err_sorted.sort_unstable();
    data.lines = lines;
    (data, digests)
}

/// `POST /v1/batches`
pub(crate) async fn create_batch(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let bytes = read_body(&headers, body, 1024 * 1024)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge => ApiError::openai(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "Request body too large.",
                None,
                None,
            ),
            BodyError::Read(m) => {
                ApiError::openai_invalid(format!("Could not read request body: {m}"), None)
            }
        })?;
    let req: Map<String, Value> =
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(m)) => m,
            _ => return Err(ApiError::openai_invalid(
                "We could not parse the JSON body of your request. The body must be a JSON object.",
                None,
            )),
        };
    let required = |key: &str| -> Result<String, ApiError> {
        match req.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            None | Some(Value::Null) => Err(ApiError::openai(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                format!("Missing required parameter: '{key}'."),
                Some(key),
                Some("missing_required_parameter"),
            )),
            Some(_) => Err(ApiError::openai(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                format!("Invalid type for '{key}': expected a string."),
                Some(key),
                Some("invalid_type"),
            )),
        }
    };
    let input_file_id = required("input_file_id")?;
    let endpoint = required("endpoint")?;
    let completion_window = required("completion_window")?;
    if !BATCH_ENDPOINTS.contains(&endpoint.as_str()) {
        return Err(ApiError::openai(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            format!(
                "Invalid value: '{endpoint}'. Supported values are: {}.",
                BATCH_ENDPOINTS.join(", ")
            ),
            Some("endpoint"),
            Some("invalid_value"),
        ));
    }
    if endpoint != CHAT_ENDPOINT {
        return Err(ApiError::openai_invalid(
            format!("The emulator only answers '{CHAT_ENDPOINT}' batches, not '{endpoint}'."),
            Some("endpoint"),
        ));
    }
    if completion_window != "24h" {
        return Err(ApiError::openai(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            format!("Invalid value: '{completion_window}'. Supported values are: '24h'."),
            Some("completion_window"),
            Some("invalid_value"),
        ));
    }
    let metadata = match req.get("metadata") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => {
            let ok = m.len() <= 16
                && m.iter().all(|(k, v)| {
                    k.chars().count() <= 64 && v.as_str().is_some_and(|s| s.chars().count() <= 512)
                });
            if !ok {
                return Err(ApiError::openai_invalid(
                    "Invalid 'metadata': at most 16 pairs, keys up to 64 characters and string values up to 512 characters.",
                    Some("metadata"),
                ));
            }
            Some(Value::Object(m.clone()))
        }
        Some(_) => {
            return Err(ApiError::openai_invalid(
                "Invalid type for 'metadata': expected an object.",
                Some("metadata"),
            ))
        }
    };
    let content = {
        let store = lock(&state.openai);
        let file = store
            .files
            .get(&input_file_id)
            .filter(|f| !f.deleted)
            .ok_or_else(|| {
                ApiError::openai(
                    StatusCode::NOT_FOUND,
                    "invalid_request_error",
                    format!("No such File object: {input_file_id}"),
                    Some("input_file_id"),
                    None,
                )
            })?;
        if file.purpose != "batch" {
            return Err(ApiError::openai_invalid(
                format!(
                    "Invalid 'input_file_id': file {input_file_id} has purpose '{}', expected 'batch'.",
                    file.purpose
                ),
                Some("input_file_id"),
            ));
        }
        file.content.clone()
    };
    let st = state.clone();
    let ep = endpoint.clone();
    let (data, digests) =
        tokio::task::spawn_blocking(move || build_batch(content, &ep, &st.config))
            .await
            .map_err(|e| {
                ApiError::openai(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    e.to_string(),
                    None,
                    None,
                )
            })?;

    let config = &state.config;
    let seq = state.batch_seq.fetch_add(1, Ordering::SeqCst);
    let expiring =
        unit(hash_parts(config.seed, &[b"expire", &seq.to_le_bytes()])) < config.expire_rate;
    let mut timeline = Timeline::start(
        config.processing_delay,
        (0.1, 0.9),
        config.cancel_delay,
        expiring,
        config.expire_keep_fraction,
    );
    timeline.forget_after = config.forget_batches_after;
    let mut batch = Batch {
        id: state.ids.openai_batch(),
        seq,
        endpoint,
        input_file_id,
        completion_window,
        metadata,
        timeline,
        data: Arc::new(data),
        outputs: Arc::new(tokio::sync::OnceCell::new()),
        resubmitted: 0,
    };
    let view = batch.view(Instant::now(), Status::Validating);
    let mut store = lock(&state.openai);
    store.submitted.reserve(digests.len());
    batch.resubmitted = digests
        .into_iter()
        .filter(|d| !store.submitted.insert(*d))
        .count() as u64;
    state.counters.record_batch(batch.resubmitted);
    store.batch_order.push(batch.id.clone());
    store.batches.insert(batch.id.clone(), batch);
    Ok(Json(view))
}

/// Everything needed to build a batch's output files.
struct OutputPlan {
    data: Arc<BatchData>,
    threshold: u64,
    cancelled: bool,
    shuffle: bool,
    batch_id: String,
    seed: u64,
    created: i64,
}

/// The contents of the output and error files, and the usage totals.
fn build_outputs(plan: &OutputPlan) -> (Vec<u8>, Vec<u8>, Value) {
    let lines = &plan.data.lines;
    let mut order: Vec<usize> = (0..lines.len()).collect();
    if plan.shuffle {
        order.sort_by_key(|&i| (lines[i].frac, i));
    }
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let (mut input_tokens, mut output_tokens) = (0u64, 0u64);
    for i in order {
        let line = &lines[i];
        let h = hash_parts(
            plan.seed,
            &[plan.batch_id.as_bytes(), line.custom_id.as_bytes()],
        );
        let id = format!("batch_req_{}", hex(h, 32));
        let request_id = hex(h ^ 0x5bd1_e995, 32);
        let error_line = |status: u16, error: Value| {
            json!({
                "id": id,
                "custom_id": &*line.custom_id,
                "response": {"status_code": status, "request_id": request_id, "body": {"error": error}},
                "error": null,
            })
        };
        let (target, value) = if !is_done(line.frac, plan.threshold) {
            let (code, message) = if plan.cancelled {
                (
                    "batch_cancelled",
                    "This request was not executed because the batch was cancelled.",
                )
            } else {
                (
                    "batch_expired",
                    "This request could not be executed before the completion window expired.",
                )
            };
            (
                &mut err,
                json!({"id": id, "custom_id": &*line.custom_id, "response": null, "error": {"code": code, "message": message}}),
            )
        } else {
            match &line.outcome {
                Outcome::Invalid(e) => (
                    &mut err,
                    error_line(
                        400,
                        json!({"message": e.message, "type": "invalid_request_error", "param": e.param, "code": e.code}),
                    ),
                ),
                Outcome::Injected => (
                    &mut err,
                    error_line(
                        500,
                        json!({"message": "The server had an error while processing your request. Sorry about that!", "type": "server_error", "param": null, "code": null}),
                    ),
                ),
                Outcome::Ok => {
                    let parsed: Result<Value, _> =
                        serde_json::from_slice(&plan.data.file[line.start..line.end]);
                    let body = parsed
                        .ok()
                        .and_then(|v| v.get("body").cloned())
                        .unwrap_or(Value::Null);
                    match parse_chat(&body, true, body.to_string().len()) {
                        Ok(conv) => {
                            let (completion, usage) = chat_completion(&conv, h, plan.created);
                            input_tokens += usage.0;
                            output_tokens += usage.1;
                            (
                                &mut out,
                                json!({
                                    "id": id,
                                    "custom_id": &*line.custom_id,
                                    "response": {"status_code": 200, "request_id": request_id, "body": completion},
                                    "error": null,
                                }),
                            )
                        }
                        Err(e) => (
                            &mut err,
                            error_line(
                                400,
                                json!({"message": e.message, "type": "invalid_request_error", "param": e.param, "code": e.code}),
                            ),
                        ),
                    }
                }
            }
        };
        if serde_json::to_writer(&mut *target, &value).is_ok() {
            target.push(b'\n');
        }
    }
    let usage = json!({
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    });
    (out, err, usage)
}

/// A chat completion body and its `(prompt, completion)` token counts.
fn chat_completion(conv: &Conversation, h: u64, created: i64) -> (Value, (u64, u64)) {
    let reply = answers::answer(conv);
    let finish_reason = match reply.stop {
        Stop::MaxTokens => "length",
        _ => "stop",
    };
    let body = json!({
        "id": format!("chatcmpl-{}", base62(h, 29)),
        "object": "chat.completion",
        "created": created,
        "model": conv.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": reply.joined_text(), "refusal": null, "annotations": []},
            "logprobs": null,
            "finish_reason": finish_reason,
        }],
        "usage": {
            "prompt_tokens": reply.input_tokens,
            "completion_tokens": reply.output_tokens,
            "total_tokens": reply.input_tokens + reply.output_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": null,
    });
    (body, (reply.input_tokens, reply.output_tokens))
}

/// Makes sure the output files of a terminal batch exist.
async fn ensure_outputs(
    state: &Arc<AppState>,
    cell: Arc<tokio::sync::OnceCell<Outputs>>,
    plan: OutputPlan,
) -> Result<(), ApiError> {
    cell.get_or_try_init(|| async {
        let batch_id = plan.batch_id.clone();
        let (out, err, usage) = tokio::task::spawn_blocking(move || build_outputs(&plan))
            .await
            .map_err(|e| {
                ApiError::openai(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    e.to_string(),
                    None,
                    None,
                )
            })?;
        let created_at = chrono::Utc::now().timestamp();
        let mut store = lock(&state.openai);
        let mut add = |content: Vec<u8>, kind: &str| -> Option<String> {
            if content.is_empty() {
                return None;
            }
            let id = state.ids.openai_file();
            store.add_file(File {
                id: id.clone(),
                filename: format!("{batch_id}_{kind}.jsonl"),
                purpose: "batch_output".into(),
                created_at,
                expires_at: Some(created_at + FILE_TTL_SECS),
                content: Bytes::from(content),
                deleted: false,
                batch_id: Some(batch_id.clone()),
            });
            Some(id)
        };
        let output_file_id = add(out, "output");
        let error_file_id = add(err, "error");
        Ok::<_, ApiError>(Outputs {
            output_file_id,
            error_file_id,
            usage,
        })
    })
    .await?;
    Ok(())
}

/// Renders the batches `ids` at `now`, building output files where needed.
async fn render(
    state: &Arc<AppState>,
    ids: &[String],
    now: Instant,
    forced: Option<Status>,
) -> Result<Vec<Value>, ApiError> {
    let pending: Vec<(Arc<tokio::sync::OnceCell<Outputs>>, OutputPlan)> = {
        let store = lock(&state.openai);
        let mut pending = Vec::new();
        for id in ids {
            let b = store.batch(id, now)?;
            let status = forced.unwrap_or_else(|| b.status(now));
            if let Some(at) = status.output_time() {
                if b.outputs.get().is_none() {
                    pending.push((
                        b.outputs.clone(),
                        OutputPlan {
                            data: b.data.clone(),
                            threshold: b.timeline.threshold(at),
                            cancelled: b.timeline.cancel_at.is_some(),
                            shuffle: state.config.shuffle_results,
                            batch_id: b.id.clone(),
                            seed: state.config.seed,
                            created: b.timeline.wall(b.timeline.at_fraction(0.1)).timestamp(),
                        },
                    ));
                }
            }
        }
        pending
    };
    for (cell, plan) in pending {
        ensure_outputs(state, cell, plan).await?;
    }
    let store = lock(&state.openai);
    ids.iter()
        .map(|id| {
            let b = store.batch(id, now)?;
            Ok(b.view(now, forced.unwrap_or_else(|| b.status(now))))
        })
        .collect()
}

/// `GET /v1/batches/{id}`
pub(crate) async fn retrieve_batch(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let mut views = render(&state, std::slice::from_ref(&id), Instant::now(), None).await?;
    Ok(Json(views.pop().unwrap_or(Value::Null)))
}

/// `GET /v1/batches?after=&limit=` (newest first).
pub(crate) async fn list_batches(
    State(state): State<Arc<AppState>>,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let q = query_pairs(uri.query());
    let limit = parse_limit(query_get(&q, "limit"), 20, 100)?;
    let now = Instant::now();
    let ids: Vec<String> = {
        let store = lock(&state.openai);
        store
            .batch_order
            .iter()
            .rev()
            .filter(|id| store.batch(id, now).is_ok())
            .cloned()
            .collect()
    };
    let start = match query_get(&q, "after").filter(|a| !a.is_empty()) {
        Some(a) => ids
            .iter()
            .position(|id| id == a)
            .map_or(ids.len(), |p| p + 1),
        None => 0,
    };
    let rest = &ids[start..];
    let chosen = &rest[..rest.len().min(limit)];
    let views = render(&state, chosen, now, None).await?;
    Ok(Json(json!({
        "object": "list",
        "data": views,
        "first_id": chosen.first(),
        "last_id": chosen.last(),
        "has_more": rest.len() > limit,
    })))
}

/// `POST /v1/batches/{id}/cancel`
pub(crate) async fn cancel_batch(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let now = Instant::now();
    {
        let mut store = lock(&state.openai);
        store.batch(&id, now)?;
        let Some(b) = store.batches.get_mut(&id) else {
            return Err(batch_not_found(&id));
        };
        match b.status(now) {
            Status::Cancelling => {}
            Status::Validating | Status::InProgress | Status::Finalizing => {
                b.timeline.cancel_at = Some(b.timeline.elapsed(now));
            }
            other => {
                return Err(ApiError::openai_invalid(
                    format!("Cannot cancel a batch with status '{}'.", other.as_str()),
                    None,
                ))
            }
        }
    }
    let mut views = render(
        &state,
        std::slice::from_ref(&id),
        now,
        Some(Status::Cancelling),
    )
    .await?;
    Ok(Json(views.pop().unwrap_or(Value::Null)))
}

// ------------------------------------------------------ request bodies

const ROLES: &[&str] = &[
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];
const PART_TYPES: &[&str] = &["text", "image_url", "input_audio", "refusal", "file"];

/// Text of a message's `content` (string or parts); documents are collected.
fn content_text(
    content: &Value,
    i: usize,
    deep: bool,
    documents: &mut Vec<Document>,
) -> Result<String, LineError> {
    match content {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => {
            let mut texts = Vec::new();
            for (j, part) in parts.iter().enumerate() {
                let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
                if !PART_TYPES.contains(&kind) {
                    return Err(LineError::new(
                        format!("Invalid value: '{kind}'. Supported values are: 'text', 'image_url', 'input_audio', 'refusal', and 'file'."),
                        Some(&format!("messages[{i}].content[{j}].type")),
                        Some("invalid_value"),
                    ));
                }
                match kind {
                    "text" => match part.get("text").and_then(Value::as_str) {
                        Some(t) => texts.push(t.to_string()),
                        None => {
                            return Err(LineError::new(
                                format!("Missing required parameter: 'messages[{i}].content[{j}].text'."),
                                Some(&format!("messages[{i}].content[{j}].text")),
                                Some("missing_required_parameter"),
                            ))
                        }
                    },
                    "file" => {
                        let data = part
                            .get("file")
                            .and_then(|f| f.get("file_data"))
                            .and_then(Value::as_str);
                        if let Some(data) = data {
                            let b64 = data.split_once("base64,").map_or(data, |(_, b)| b);
                            let bytes = base64::engine::general_purpose::STANDARD
                                .decode(b64.trim())
                                .map_err(|_| {
                                    LineError::new(
                                        "Invalid 'file_data': expected base64-encoded file contents.",
                                        Some(&format!("messages[{i}].content[{j}].file.file_data")),
                                        Some("invalid_value"),
                                    )
                                })?;
                            let pages = if deep { pdf::extract_pages(&bytes) } else { Vec::new() };
                            documents.push(Document {
                                title: part
                                    .get("file")
                                    .and_then(|f| f.get("filename"))
                                    .and_then(Value::as_str)
                                    .map(str::to_string),
                                body: DocBody::Pdf(pages),
                                citations: false,
                            });
                        }
                    }
                    _ => {}
                }
            }
            Ok(texts.join("\n"))
        }
        _ => Err(LineError::new(
            format!("Invalid type for 'messages[{i}].content': expected a string or an array of content parts."),
            Some(&format!("messages[{i}].content")),
            Some("invalid_type"),
        )),
    }
}

/// Validates a Chat Completions body and reduces it to a [`Conversation`].
pub(crate) fn parse_chat(
    body: &Value,
    deep: bool,
    input_bytes: usize,
) -> Result<Conversation, LineError> {
    let Value::Object(b) = body else {
        return Err(LineError::new(
            "The request body must be a JSON object.",
            Some("body"),
            None,
        ));
    };
    let model = match b.get("model").and_then(Value::as_str) {
        Some(m) if !m.is_empty() => m.to_string(),
        _ => {
            return Err(LineError::new(
                "you must provide a model parameter",
                None,
                None,
            ))
        }
    };
    let messages = match b.get("messages") {
        Some(Value::Array(m)) => m,
        None => {
            return Err(LineError::new(
                "Missing required parameter: 'messages'.",
                Some("messages"),
                Some("missing_required_parameter"),
            ))
        }
        Some(_) => {
            return Err(LineError::new(
                "Invalid type for 'messages': expected an array of objects.",
                Some("messages"),
                Some("invalid_type"),
            ))
        }
    };
    if messages.is_empty() {
        return Err(LineError::new(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            Some("messages"),
            Some("empty_array"),
        ));
    }
    let mut conv = Conversation {
        model,
        input_bytes,
        ..Default::default()
    };
    let mut system = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        if !ROLES.contains(&role) {
            return Err(LineError::new(
                format!("Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'."),
                Some(&format!("messages[{i}].role")),
                Some("invalid_value"),
            ));
        }
        let text = content_text(
            m.get("content").unwrap_or(&Value::Null),
            i,
            deep,
            &mut conv.documents,
        )?;
        match role {
            "system" | "developer" => system.push(text),
            "user" => conv.user_texts.push(text),
            _ => {}
        }
    }
    conv.system = system.join("\n");
    for key in ["max_completion_tokens", "max_tokens"] {
        if let Some(v) = b.get(key).filter(|v| !v.is_null()) {
            match v.as_i64() {
                Some(n) if n >= 1 => {
                    conv.max_tokens = Some(n as u64);
                    break;
                }
                Some(n) => {
                    return Err(LineError::new(
                        format!("Invalid '{key}': integer below minimum value. Expected a value >= 1, but got {n} instead."),
                        Some(key),
                        Some("integer_below_min_value"),
                    ))
                }
                None => {
                    return Err(LineError::new(
                        format!("Invalid type for '{key}': expected an integer."),
                        Some(key),
                        Some("invalid_type"),
                    ))
                }
            }
        }
    }
    if let Some(rf) = b.get("response_format").filter(|v| !v.is_null()) {
        conv.format = Some(match rf.get("type").and_then(Value::as_str) {
            Some("text") => ReplyFormat::Text,
            Some("json_object") => ReplyFormat::JsonObject,
            Some("json_schema") => {
                let js = rf.get("json_schema").ok_or_else(|| {
                    LineError::new(
                        "Missing required parameter: 'response_format.json_schema'.",
                        Some("response_format.json_schema"),
                        Some("missing_required_parameter"),
                    )
                })?;
                match js.get("name").and_then(Value::as_str) {
                    Some(n) if !n.is_empty() && n.len() <= 64 => {}
                    _ => {
                        return Err(LineError::new(
                            "Missing required parameter: 'response_format.json_schema.name'.",
                            Some("response_format.json_schema.name"),
                            Some("missing_required_parameter"),
                        ))
                    }
                }
                ReplyFormat::JsonSchema(js.get("schema").cloned().unwrap_or_else(|| json!({})))
            }
            other => {
                return Err(LineError::new(
                    format!(
                        "Invalid value: '{}'. Supported values are: 'json_object', 'json_schema', and 'text'.",
                        other.unwrap_or("")
                    ),
                    Some("response_format.type"),
                    Some("invalid_value"),
                ))
            }
        });
    }
    Ok(conv)
}
