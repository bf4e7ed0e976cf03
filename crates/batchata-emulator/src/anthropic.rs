//! The Anthropic Message Batches API: create, retrieve, list, cancel, delete
//! and results.
//!
//! A create body is parsed once, off the async runtime, into compact
//! per-request records (the `custom_id`, the raw `params` JSON text, a finish
//! fraction and the validation outcome). Param errors do not fail the create
//! call: as on the real API they come back as `errored` result lines. Status
//! is computed from the batch's [`Timeline`] on every read, and the results
//! JSONL is generated lazily and streamed when a client asks for it, so a
//! 100,000-request batch costs little until its results are read.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use chrono::SecondsFormat;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use crate::answers::{
    self, Block, Conversation, DocBody, Document, Location, Reply, ReplyFormat, Stop,
};
use crate::error::ApiError;
use crate::ids::{base62, hash_parts, unit};
use crate::lifecycle::{count_done, is_done, Timeline};
use crate::pdf;
use crate::server::{lock, query_get, query_pairs, read_body, AppState, BodyError};
use crate::stats::{request_digest, BatchSummary};

/// What became of one request once it is processed.
#[derive(Debug, Clone)]
enum Outcome {
    /// Valid params: the request succeeds.
    Ok,
    /// Invalid params: an `invalid_request_error` with this message.
    Invalid(Box<str>),
    /// Chosen by `error_rate`: an `api_error`.
    Injected,
}

/// One request of a batch, stored compactly.
#[derive(Debug)]
struct Item {
    custom_id: Box<str>,
    params: Box<RawValue>,
    frac: u32,
    outcome: Outcome,
}

/// The immutable part of a batch, shared with result generators.
#[derive(Debug)]
struct BatchData {
    items: Vec<Item>,
    /// Finish fractions of requests that will succeed, ascending.
    ok_sorted: Vec<u32>,
    /// Finish fractions of requests that will error, ascending.
    err_sorted: Vec<u32>,
}

/// One batch.
#[derive(Debug)]
struct Batch {
    id: String,
    seq: u64,
    timeline: Timeline,
    data: Arc<BatchData>,
    deleted: bool,
    /// How many of its requests had been submitted in an earlier batch.
    resubmitted: u64,
}

/// All Anthropic batches of an emulator.
#[derive(Debug, Default)]
pub(crate) struct Store {
    batches: HashMap<String, Batch>,
    /// Ids in creation order.
    order: Vec<String>,
    /// Digests of every request submitted so far (see [`request_digest`]).
    submitted: HashSet<u64>,
}

/// The processing status at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Status {
    InProgress,
    Canceling,
    /// Ended this long after creation.
    Ended(std::time::Duration),
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::InProgress => "in_progress",
            Status::Canceling => "canceling",
            Status::Ended(_) => "ended",
        }
    }
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl Batch {
    fn status(&self, now: Instant) -> Status {
        let e = self.timeline.elapsed(now);
        match self.timeline.cancel_end() {
            Some(end) if e >= end => Status::Ended(end),
            Some(_) => Status::Canceling,
            None if e >= self.timeline.delay => Status::Ended(self.timeline.delay),
            None => Status::InProgress,
        }
    }

    /// The threshold deciding which requests are done once ended at `at`.
    fn final_threshold(&self, at: std::time::Duration) -> u64 {
        self.timeline.threshold(at)
    }

    fn view(&self, now: Instant, status: Status, base_url: &str) -> Value {
        let n = self.data.items.len() as u64;
        let (processing, succeeded, errored, canceled, expired, ended_at, results_url) =
            match status {
                Status::InProgress | Status::Canceling => (n, 0, 0, 0, 0, Value::Null, Value::Null),
                Status::Ended(at) => {
                    let thr = self.final_threshold(at);
                    let ok = count_done(&self.data.ok_sorted, thr) as u64;
                    let err = count_done(&self.data.err_sorted, thr) as u64;
                    let rest = n - ok - err;
                    let (canceled, expired) = if self.timeline.cancel_at.is_some() {
                        (rest, 0)
                    } else {
                        (0, rest)
                    };
                    (
                        0,
                        ok,
                        err,
                        canceled,
                        expired,
                        json!(rfc3339(self.timeline.wall(at))),
                        json!(format!(
                            "{base_url}/v1/messages/batches/{}/results",
                            self.id
                        )),
                    )
                }
            };
        let _ = now;
        json!({
            "id": self.id,
            "type": "message_batch",
            "processing_status": status.as_str(),
            "request_counts": {
                "processing": processing,
                "succeeded": succeeded,
                "errored": errored,
                "canceled": canceled,
                "expired": expired,
            },
            "ended_at": ended_at,
            "created_at": rfc3339(self.timeline.created_wall),
            "expires_at": rfc3339(self.timeline.created_wall + chrono::Duration::hours(24)),
            "archived_at": null,
            "cancel_initiated_at": self.timeline.cancel_at.map(|c| rfc3339(self.timeline.wall(c))),
            "results_url": results_url,
        })
    }
}

impl Batch {
    /// Whether a client can still see the batch at `now` (neither deleted
    /// nor forgotten).
    fn known(&self, now: Instant) -> bool {
        !self.deleted && !self.timeline.is_forgotten(now)
    }
}

impl Store {
    /// The batch `id` if it is known at `now`, else the not-found error.
    fn get(&self, id: &str, now: Instant) -> Result<&Batch, ApiError> {
        self.batches
            .get(id)
            .filter(|b| b.known(now))
            .ok_or_else(|| not_found(id))
    }

    /// Forgets every batch that exists now; returns how many were still known.
    pub(crate) fn forget_all(&mut self, now: Instant) -> usize {
        let mut n = 0;
        for b in self.batches.values_mut() {
            if b.known(now) {
                n += 1;
            }
            b.timeline.forgotten = true;
        }
        n
    }

    /// `(creation sequence, summary)` for every batch.
    pub(crate) fn summaries(&self) -> Vec<(u64, BatchSummary)> {
        let now = Instant::now();
        self.order
            .iter()
            .filter_map(|id| self.batches.get(id))
            .map(|b| {
                let n = b.data.items.len() as u64;
                (
                    b.seq,
                    BatchSummary {
                        provider: "anthropic".into(),
                        id: b.id.clone(),
                        status: b.status(now).as_str().into(),
                        request_count: n,
                        custom_ids: n,
                        created_at: rfc3339(b.timeline.created_wall),
                        metadata: None,
                        deleted: b.deleted,
                        forgotten: b.timeline.is_forgotten(now),
                        resubmitted: b.resubmitted,
                    },
                )
            })
            .collect()
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::anthropic(
        StatusCode::NOT_FOUND,
        "not_found_error",
        format!("Message batch {id} not found"),
    )
}

#[derive(Deserialize)]
struct CreateBody {
    requests: Vec<CreateItem>,
}

#[derive(Deserialize)]
struct CreateItem {
    #[serde(default)]
    custom_id: Option<Value>,
    #[serde(default)]
    params: Option<Box<RawValue>>,
}

fn valid_custom_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Parses and validates a create body into batch data and the digest of
/// each request (CPU-bound; run off the async runtime).
fn build_batch(
    body: &[u8],
    config: &crate::EmulatorConfig,
) -> Result<(BatchData, Vec<u64>), ApiError> {
    let parsed: CreateBody = serde_json::from_slice(body).map_err(|e| {
        ApiError::anthropic_invalid(format!(
            "Request body is not a valid batch create request: {e}"
        ))
    })?;
    let n = parsed.requests.len();
    if n == 0 {
        return Err(ApiError::anthropic_invalid(
            "requests: List should have at least 1 item after validation, not 0",
        ));
    }
    if n > config.anthropic_max_requests {
        return Err(ApiError::anthropic(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            format!(
                "A batch may contain at most {} requests; this one has {n}.",
                config.anthropic_max_requests
            ),
        ));
    }
    let mut seen = HashSet::with_capacity(n);
    let mut items = Vec::with_capacity(n);
    let mut digests = Vec::with_capacity(n);
    for (i, item) in parsed.requests.into_iter().enumerate() {
        let custom_id = match item.custom_id {
            None => {
                return Err(ApiError::anthropic_invalid(format!(
                    "requests.{i}.custom_id: Field required"
                )))
            }
            Some(Value::String(s)) => s,
            Some(_) => {
                return Err(ApiError::anthropic_invalid(format!(
                    "requests.{i}.custom_id: Input should be a valid string"
                )))
            }
        };
        if !valid_custom_id(&custom_id) {
            return Err(ApiError::anthropic_invalid(format!(
                "requests.{i}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
            )));
        }
        if !seen.insert(custom_id.clone()) {
            return Err(ApiError::anthropic_invalid(format!(
                "requests.{i}.custom_id: Duplicate custom_id '{custom_id}'; custom_id must be unique within a batch"
            )));
        }
        let Some(params) = item.params else {
            return Err(ApiError::anthropic_invalid(format!(
                "requests.{i}.params: Field required"
            )));
        };
        let value = serde_json::from_str::<Value>(params.get());
        if let Some(path) = value.as_ref().ok().and_then(crate::reject::find_marker) {
            // A request the provider refuses for what it holds: the whole
            // create is refused, naming it (see `reject`).
            let v = value.as_ref().unwrap_or(&Value::Null);
            let block = crate::reject::at(v, &path);
            let kind = block
                .get("type")
                .and_then(Value::as_str)
                .map(|t| format!(".{t}"))
                .unwrap_or_default();
            return Err(ApiError::anthropic_invalid(format!(
                "requests.{i}.params.{}{kind}: {}",
                path.join("."),
                crate::reject::reason(v, &path)
            )));
        }
        digests.push(request_digest(
            &custom_id,
            value.as_ref().unwrap_or(&Value::Null),
        ));
        let outcome = match value
            .map_err(|e| e.to_string())
            .and_then(|v| parse_params(&v, false, params.get().len()))
        {
            Err(msg) => Outcome::Invalid(msg.into()),
            Ok(_)
                if unit(hash_parts(config.seed, &[b"error", custom_id.as_bytes()]))
                    < config.error_rate =>
            {
                Outcome::Injected
            }
            Ok(_) => Outcome::Ok,
        };
        let frac = (hash_parts(config.seed, &[b"finish", custom_id.as_bytes()]) >> 32) as u32;
        items.push(Item {
            custom_id: custom_id.into_boxed_str(),
            params,
            frac,
            outcome,
        });
    }
    let mut ok_sorted: Vec<u32> = Vec::new();
    let mut err_sorted: Vec<u32> = Vec::new();
    for it in &items {
        match it.outcome {
            Outcome::Ok => ok_sorted.push(it.frac),
            _ => err_sorted.push(it.frac),
        }
    }
    ok_sorted.sort_unstable();
    err_sorted.sort_unstable();
    Ok((
        BatchData {
            items,
            ok_sorted,
            err_sorted,
        },
        digests,
    ))
}

/// `POST /v1/messages/batches`
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let limit = state.config.anthropic_max_bytes;
    let bytes = read_body(&headers, body, limit)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge => ApiError::anthropic(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                format!("Request exceeds the maximum allowed number of bytes ({limit})."),
            ),
            BodyError::Read(msg) => {
                ApiError::anthropic_invalid(format!("Could not read request body: {msg}"))
            }
        })?;
    let st = state.clone();
    let (data, digests) = tokio::task::spawn_blocking(move || build_batch(&bytes, &st.config))
        .await
        .map_err(|e| {
            ApiError::anthropic(
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                e.to_string(),
            )
        })??;

    let seq = state.batch_seq.fetch_add(1, Ordering::SeqCst);
    let config = &state.config;
    let expiring =
        unit(hash_parts(config.seed, &[b"expire", &seq.to_le_bytes()])) < config.expire_rate;
    let mut timeline = Timeline::start(
        config.processing_delay,
        (0.0, 1.0),
        config.cancel_delay,
        expiring,
        config.expire_keep_fraction,
    );
    timeline.forget_after = config.forget_batches_after;
    let mut batch = Batch {
        id: state.ids.anthropic_batch(),
        seq,
        timeline,
        data: Arc::new(data),
        deleted: false,
        resubmitted: 0,
    };
    let view = batch.view(Instant::now(), Status::InProgress, &state.base_url);
    let mut store = lock(&state.anthropic);
    store.submitted.reserve(digests.len());
    batch.resubmitted = digests
        .into_iter()
        .filter(|d| !store.submitted.insert(*d))
        .count() as u64;
    state.counters.record_batch(batch.resubmitted);
    store.order.push(batch.id.clone());
    store.batches.insert(batch.id.clone(), batch);
    Ok(Json(view))
}

/// `GET /v1/messages/batches/{id}`
pub(crate) async fn retrieve(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let now = Instant::now();
    let store = lock(&state.anthropic);
    let b = store.get(&id, now)?;
    Ok(Json(b.view(now, b.status(now), &state.base_url)))
}

/// `GET /v1/messages/batches?limit=&after_id=&before_id=` (newest first).
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let q = query_pairs(uri.query());
    let limit = match query_get(&q, "limit") {
        None => 20,
        Some(l) => match l.parse::<usize>() {
            Ok(l) if (1..=1000).contains(&l) => l,
            _ => {
                return Err(ApiError::anthropic_invalid(
                    "limit: Input should be an integer between 1 and 1000",
                ))
            }
        },
    };
    let after = query_get(&q, "after_id").filter(|s| !s.is_empty());
    let before = query_get(&q, "before_id").filter(|s| !s.is_empty());
    if after.is_some() && before.is_some() {
        return Err(ApiError::anthropic_invalid(
            "Only one of after_id and before_id may be given",
        ));
    }
    let now = Instant::now();
    let store = lock(&state.anthropic);
    let visible: Vec<&Batch> = store
        .order
        .iter()
        .rev()
        .filter_map(|id| store.batches.get(id))
        .filter(|b| b.known(now))
        .collect();
    let position = |id: &str| visible.iter().position(|b| b.id == id);
    let (page, has_more): (&[&Batch], bool) = if let Some(a) = after {
        match position(a) {
            Some(p) => {
                let rest = &visible[p + 1..];
                (&rest[..rest.len().min(limit)], rest.len() > limit)
            }
            None => (&[], false),
        }
    } else if let Some(b) = before {
        match position(b) {
            Some(p) => {
                let rest = &visible[..p];
                let start = rest.len().saturating_sub(limit);
                (&rest[start..], start > 0)
            }
            None => (&[], false),
        }
    } else {
        (&visible[..visible.len().min(limit)], visible.len() > limit)
    };
    let data: Vec<Value> = page
        .iter()
        .map(|b| b.view(now, b.status(now), &state.base_url))
        .collect();
    Ok(Json(json!({
        "data": data,
        "has_more": has_more,
        "first_id": page.first().map(|b| b.id.clone()),
        "last_id": page.last().map(|b| b.id.clone()),
    })))
}

/// `POST /v1/messages/batches/{id}/cancel`
pub(crate) async fn cancel(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let now = Instant::now();
    let mut store = lock(&state.anthropic);
    store.get(&id, now)?;
    let Some(b) = store.batches.get_mut(&id) else {
        return Err(not_found(&id));
    };
    match b.status(now) {
        Status::Ended(_) => Err(ApiError::anthropic_invalid(format!(
            "Message batch {id} has already ended and can no longer be canceled."
        ))),
        Status::Canceling => Ok(Json(b.view(now, Status::Canceling, &state.base_url))),
        Status::InProgress => {
            b.timeline.cancel_at = Some(b.timeline.elapsed(now));
            Ok(Json(b.view(now, Status::Canceling, &state.base_url)))
        }
    }
}

/// `DELETE /v1/messages/batches/{id}`
pub(crate) async fn delete(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let now = Instant::now();
    let mut store = lock(&state.anthropic);
    let status = store.get(&id, now)?.status(now);
    if !matches!(status, Status::Ended(_)) {
        return Err(ApiError::anthropic_invalid(format!(
            "Message batch {id} is still {}; cancel it and wait for it to end before deleting it.",
            status.as_str()
        )));
    }
    if let Some(b) = store.batches.get_mut(&id) {
        b.deleted = true;
    }
    Ok(Json(json!({"id": id, "type": "message_batch_deleted"})))
}

/// Everything a result generator needs, captured when results are requested.
struct ResultPlan {
    data: Arc<BatchData>,
    threshold: u64,
    canceled: bool,
    shuffle: bool,
    batch_id: String,
    seed: u64,
}

/// Bytes per streamed chunk of results.
const CHUNK: usize = 256 * 1024;

/// `GET /v1/messages/batches/{id}/results` — streamed JSONL.
pub(crate) async fn results(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let plan = {
        let now = Instant::now();
        let store = lock(&state.anthropic);
        let b = store.get(&id, now)?;
        let Status::Ended(at) = b.status(now) else {
            return Err(ApiError::anthropic_invalid(format!(
                "Message batch {id} is still processing; results are available once processing_status is 'ended'."
            )));
        };
        ResultPlan {
            data: b.data.clone(),
            threshold: b.final_threshold(at),
            canceled: b.timeline.cancel_at.is_some(),
            shuffle: state.config.shuffle_results,
            batch_id: b.id.clone(),
            seed: state.config.seed,
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    tokio::task::spawn_blocking(move || {
        let items = &plan.data.items;
        let mut order: Vec<usize> = (0..items.len()).collect();
        if plan.shuffle {
            order.sort_by_key(|&i| (items[i].frac, i));
        }
        let mut buf = Vec::with_capacity(CHUNK + 4096);
        for i in order {
            let line = result_line(&plan, &items[i]);
            if serde_json::to_writer(&mut buf, &line).is_err() {
                return;
            }
            buf.push(b'\n');
            if buf.len() >= CHUNK
                && tx
                    .blocking_send(Bytes::from(std::mem::take(&mut buf)))
                    .is_err()
            {
                return; // client went away
            }
        }
        if !buf.is_empty() {
            let _ = tx.blocking_send(Bytes::from(buf));
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<Bytes, std::convert::Infallible>(chunk), rx))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-jsonl")],
        Body::from_stream(stream),
    )
        .into_response())
}

fn errored(kind: &str, message: &str) -> Value {
    json!({
        "type": "errored",
        "error": {"type": "error", "error": {"type": kind, "message": message}},
    })
}

/// One results line.
fn result_line(plan: &ResultPlan, item: &Item) -> Value {
    let result = if !is_done(item.frac, plan.threshold) {
        if plan.canceled {
            json!({"type": "canceled"})
        } else {
            json!({"type": "expired"})
        }
    } else {
        match &item.outcome {
            Outcome::Invalid(msg) => errored("invalid_request_error", msg),
            Outcome::Injected => errored("api_error", "Internal server error"),
            Outcome::Ok => {
                let conv = serde_json::from_str::<Value>(item.params.get())
                    .map_err(|e| e.to_string())
                    .and_then(|v| parse_params(&v, true, item.params.get().len()));
                match conv {
                    Ok(conv) => {
                        let reply = answers::answer(&conv);
                        json!({"type": "succeeded", "message": message_json(plan, item, &conv, &reply)})
                    }
                    Err(msg) => errored("invalid_request_error", &msg),
                }
            }
        }
    };
    json!({"custom_id": &*item.custom_id, "result": result})
}

fn message_json(plan: &ResultPlan, item: &Item, conv: &Conversation, reply: &Reply) -> Value {
    let h = hash_parts(
        plan.seed,
        &[plan.batch_id.as_bytes(), item.custom_id.as_bytes()],
    );
    let content: Vec<Value> = reply
        .blocks
        .iter()
        .enumerate()
        .map(|(i, b)| match b {
            Block::Text { text, citations } if citations.is_empty() => {
                json!({"type": "text", "text": text})
            }
            Block::Text { text, citations } => json!({
                "type": "text",
                "text": text,
                "citations": citations.iter().map(citation_json).collect::<Vec<_>>(),
            }),
            Block::ToolUse { name, input } => json!({
                "type": "tool_use",
                "id": format!("toolu_01{}", base62(h ^ (i as u64 + 1), 22)),
                "name": name,
                "input": input,
            }),
        })
        .collect();
    let stop_reason = match reply.stop {
        Stop::EndTurn => "end_turn",
        Stop::MaxTokens => "max_tokens",
        Stop::ToolUse => "tool_use",
    };
    json!({
        "id": format!("msg_01{}", base62(h, 22)),
        "type": "message",
        "role": "assistant",
        "model": conv.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": {
            "input_tokens": reply.input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": reply.output_tokens,
            "service_tier": "batch",
        },
    })
}

fn citation_json(c: &answers::Citation) -> Value {
    let mut v = Map::new();
    let (kind, a, b, start, end) = match c.location {
        Location::Char { start, end } => (
            "char_location",
            "start_char_index",
            "end_char_index",
            start,
            end,
        ),
        Location::Page { start, end } => (
            "page_location",
            "start_page_number",
            "end_page_number",
            start,
            end,
        ),
        Location::Block { start, end } => (
            "content_block_location",
            "start_block_index",
            "end_block_index",
            start,
            end,
        ),
    };
    v.insert("type".into(), json!(kind));
    v.insert("cited_text".into(), json!(c.cited_text));
    v.insert("document_index".into(), json!(c.document_index));
    v.insert("document_title".into(), json!(c.document_title));
    v.insert(a.into(), json!(start));
    v.insert(b.into(), json!(end));
    v.insert("file_id".into(), Value::Null);
    Value::Object(v)
}

/// Top-level Messages parameters the emulator accepts.
const KNOWN_PARAMS: &[&str] = &[
    "model",
    "max_tokens",
    "messages",
    "system",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "metadata",
    "tools",
    "tool_choice",
    "thinking",
    "output_config",
    "output_format",
    "service_tier",
    "cache_control",
    "stream",
    "container",
    "mcp_servers",
    "context_management",
    "inference_geo",
];

/// Content block types the Messages API knows.
const KNOWN_BLOCKS: &[&str] = &[
    "text",
    "image",
    "document",
    "search_result",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
    "server_tool_use",
    "web_search_tool_result",
    "web_fetch_tool_result",
    "code_execution_tool_result",
    "container_upload",
    "mcp_tool_use",
    "mcp_tool_result",
];

fn text_of_system(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Array(blocks) => {
            let mut out = Vec::new();
            for (i, b) in blocks.iter().enumerate() {
                match (
                    b.get("type").and_then(Value::as_str),
                    b.get("text").and_then(Value::as_str),
                ) {
                    (Some("text"), Some(t)) => out.push(t.to_string()),
                    _ => return Err(format!("system.{i}: Input should be a text block")),
                }
            }
            Ok(out.join("\n"))
        }
        _ => Err("system: Input should be a valid string or a list of text blocks".into()),
    }
}

/// Validates Messages `params` and reduces them to a [`Conversation`].
///
/// With `deep`, PDF documents are text-extracted (needed for answers, not
/// for validation). Error strings follow the API's `field.path: message` style.
pub(crate) fn parse_params(
    params: &Value,
    deep: bool,
    input_bytes: usize,
) -> Result<Conversation, String> {
    let Value::Object(p) = params else {
        return Err("params: Input should be a valid dictionary".into());
    };
    for key in p.keys() {
        if !KNOWN_PARAMS.contains(&key.as_str()) {
            return Err(format!("{key}: Extra inputs are not permitted"));
        }
    }
    let model = match p.get("model") {
        None => return Err("model: Field required".into()),
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(_) => return Err("model: Input should be a valid string".into()),
    };
    let max_tokens = match p.get("max_tokens") {
        None => return Err("max_tokens: Field required".into()),
        Some(v) => match v.as_i64() {
            Some(m) if m >= 1 => m as u64,
            Some(_) => return Err("max_tokens: Input should be greater than or equal to 1".into()),
            None => return Err("max_tokens: Input should be a valid integer".into()),
        },
    };
    if p.get("stream").and_then(Value::as_bool) == Some(true) {
        return Err("stream: Streaming is not supported in the Message Batches API".into());
    }
    if let Some(t) = p.get("temperature") {
        match t.as_f64() {
            Some(t) if (0.0..=1.0).contains(&t) => {}
            Some(_) => return Err("temperature: Input should be between 0 and 1".into()),
            None => return Err("temperature: Input should be a valid number".into()),
        }
    }
    let system = match p.get("system") {
        None | Some(Value::Null) => String::new(),
        Some(v) => text_of_system(v)?,
    };
    let messages = match p.get("messages") {
        None => return Err("messages: Field required".into()),
        Some(Value::Array(m)) => m,
        Some(_) => return Err("messages: Input should be a valid list".into()),
    };
    if messages.is_empty() {
        return Err("messages: at least one message is required".into());
    }

    let mut conv = Conversation {
        model,
        system,
        max_tokens: Some(max_tokens),
        input_bytes,
        ..Default::default()
    };
    let last = messages.len() - 1;
    for (i, m) in messages.iter().enumerate() {
        let role = match m.get("role").and_then(Value::as_str) {
            Some(r @ ("user" | "assistant")) => r,
            Some(_) => {
                return Err(format!(
                    "messages.{i}.role: Input should be 'user' or 'assistant'"
                ))
            }
            None => return Err(format!("messages.{i}.role: Field required")),
        };
        let mut texts = Vec::new();
        match m.get("content") {
            None => return Err(format!("messages.{i}.content: Field required")),
            Some(Value::String(s)) => {
                if s.is_empty() && !(role == "assistant" && i == last) {
                    return Err(format!(
                        "messages.{i}: all messages must have non-empty content except for the optional final assistant message"
                    ));
                }
                texts.push(s.clone());
            }
            Some(Value::Array(blocks)) => {
                if blocks.is_empty() && !(role == "assistant" && i == last) {
                    return Err(format!(
                        "messages.{i}: all messages must have non-empty content except for the optional final assistant message"
                    ));
                }
                for (j, block) in blocks.iter().enumerate() {
                    parse_block(
                        block,
                        &format!("messages.{i}.content.{j}"),
                        deep,
                        role,
                        &mut texts,
                        &mut conv.documents,
                    )?;
                }
            }
            Some(_) => {
                return Err(format!(
                    "messages.{i}.content: Input should be a valid string or list"
                ))
            }
        }
        if role == "user" {
            conv.user_texts.push(texts.join("\n"));
        }
    }
    let cited = conv.documents.iter().filter(|d| d.citations).count();
    if cited != 0 && cited != conv.documents.len() {
        return Err("Citations must be enabled on all documents or on none of them.".into());
    }
    conv.format = reply_format(p)?;
    Ok(conv)
}

/// Validates one content block, collecting its text and documents.
fn parse_block(
    block: &Value,
    path: &str,
    deep: bool,
    role: &str,
    texts: &mut Vec<String>,
    documents: &mut Vec<Document>,
) -> Result<(), String> {
    let Some(kind) = block.get("type").and_then(Value::as_str) else {
        return Err(format!("{path}.type: Field required"));
    };
    if !KNOWN_BLOCKS.contains(&kind) {
        let expected: Vec<String> = KNOWN_BLOCKS.iter().map(|k| format!("'{k}'")).collect();
        return Err(format!(
            "{path}: Input tag '{kind}' found using 'type' does not match any of the expected tags: {}",
            expected.join(", ")
        ));
    }
    match kind {
        "text" => match block.get("text").and_then(Value::as_str) {
            Some(t) => texts.push(t.to_string()),
            None => return Err(format!("{path}.text: Field required")),
        },
        "image" if block.get("source").is_none() => {
            return Err(format!("{path}.source: Field required"));
        }
        "document" => {
            if role != "user" {
                return Err(format!(
                    "{path}: document blocks are only allowed in user messages"
                ));
            }
            documents.push(parse_document(block, path, deep)?);
        }
        "tool_result" => {
            if block.get("tool_use_id").and_then(Value::as_str).is_none() {
                return Err(format!("{path}.tool_use_id: Field required"));
            }
            if let Some(Value::String(s)) = block.get("content") {
                texts.push(s.clone());
            }
        }
        _ => {}
    }
    Ok(())
}

fn parse_document(block: &Value, path: &str, deep: bool) -> Result<Document, String> {
    let Some(source) = block.get("source") else {
        return Err(format!("{path}.source: Field required"));
    };
    let title = block
        .get("title")
        .and_then(Value::as_str)
        .map(str::to_string);
    let citations = block
        .get("citations")
        .and_then(|c| c.get("enabled"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let body = match source.get("type").and_then(Value::as_str) {
        Some("text") => match source.get("data").and_then(Value::as_str) {
            Some(d) => DocBody::Text(d.to_string()),
            None => return Err(format!("{path}.source.data: Field required")),
        },
        Some("base64") => {
            let media = source.get("media_type").and_then(Value::as_str).unwrap_or("");
            let Some(data) = source.get("data").and_then(Value::as_str) else {
                return Err(format!("{path}.source.data: Field required"));
            };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .map_err(|e| format!("{path}.source.data: invalid base64 data: {e}"))?;
            match media {
                "application/pdf" => {
                    if !bytes.starts_with(b"%PDF") {
                        return Err(format!("{path}.source: The PDF specified was not valid."));
                    }
                    DocBody::Pdf(if deep { pdf::extract_pages(&bytes) } else { Vec::new() })
                }
                "text/plain" => DocBody::Text(String::from_utf8_lossy(&bytes).into_owned()),
                other => {
                    return Err(format!(
                        "{path}.source.media_type: Input should be 'application/pdf' or 'text/plain', got '{other}'"
                    ))
                }
            }
        }
        Some("content") => match source.get("content") {
            Some(Value::String(s)) => DocBody::Blocks(vec![s.clone()]),
            Some(Value::Array(items)) => DocBody::Blocks(
                items
                    .iter()
                    .map(|b| b.get("text").and_then(Value::as_str).unwrap_or("").to_string())
                    .collect(),
            ),
            _ => return Err(format!("{path}.source.content: Field required")),
        },
        Some("url") | Some("file") => DocBody::Text(String::new()),
        Some(other) => {
            return Err(format!(
                "{path}.source: Input tag '{other}' found using 'type' does not match any of the expected tags: 'base64', 'content', 'file', 'text', 'url'"
            ))
        }
        None => return Err(format!("{path}.source.type: Field required")),
    };
    Ok(Document {
        title,
        body,
        citations,
    })
}

/// The structured-output request, if any.
fn reply_format(p: &Map<String, Value>) -> Result<Option<ReplyFormat>, String> {
    for key in ["output_config", "output_format"] {
        let format = match (key, p.get(key)) {
            ("output_config", Some(cfg)) => cfg.get("format"),
            ("output_format", Some(f)) => Some(f),
            _ => None,
        };
        let Some(format) = format.filter(|f| !f.is_null()) else {
            continue;
        };
        if format.get("type").and_then(Value::as_str) != Some("json_schema") {
            return Err(format!("{key}.format.type: Input should be 'json_schema'"));
        }
        return match format.get("schema") {
            Some(s @ Value::Object(_)) => Ok(Some(ReplyFormat::JsonSchema(s.clone()))),
            _ => Err(format!("{key}.format.schema: Field required")),
        };
    }
    let tools: &[Value] = p
        .get("tools")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let forced = match p.get("tool_choice") {
        Some(tc) => match tc.get("type").and_then(Value::as_str) {
            Some("tool") => match tc.get("name").and_then(Value::as_str) {
                Some(n) => Some(n.to_string()),
                None => return Err("tool_choice.name: Field required".into()),
            },
            Some("any") if tools.len() == 1 => tools[0]
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_string),
            Some("auto" | "any" | "none") => None,
            _ => {
                return Err(
                    "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'".into(),
                )
            }
        },
        None => None,
    };
    if let Some(name) = forced {
        let tool = tools
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some(name.as_str()))
            .ok_or_else(|| format!("tool_choice: Tool '{name}' not found in tools"))?;
        let schema = tool
            .get("input_schema")
            .cloned()
            .unwrap_or_else(|| json!({"type": "object"}));
        return Ok(Some(ReplyFormat::Tool { name, schema }));
    }
    Ok(None)
}
