//! The Message Batches calls: create (the body parsed and every request
//! checked off the async runtime), retrieve, list, cancel and delete, and
//! the batch object as the API shows it, its status computed from the
//! batch's timeline.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::Json;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::validate::parse_params;
use super::{not_found, rfc3339, Batch, BatchData, Item, Outcome, Status};
use crate::error::ApiError;
use crate::ids::{hash_parts, unit};
use crate::lifecycle::count_done;
use crate::page;
use crate::request::{query_get, query_pairs, read_body, BodyError};
use crate::server::{lock, AppState};
use crate::stats::request_digest;

impl Batch {
    pub(super) fn status(&self, now: Instant) -> Status {
        let e = self.timeline.elapsed(now);
        match self.timeline.cancel_end() {
            Some(end) if e >= end => Status::Ended(end),
            Some(_) => Status::Canceling,
            None if e >= self.timeline.delay => Status::Ended(self.timeline.delay),
            None => Status::InProgress,
        }
    }

    /// The threshold deciding which requests are done once ended at `at`.
    pub(super) fn final_threshold(&self, at: std::time::Duration) -> u64 {
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

    let (seq, mut timeline) = state.new_timeline((0.0, 1.0));
    timeline.forget_after = state.config.forget_batches_after;
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
    batch.resubmitted = state.counters.record_batch(&mut store.submitted, digests);
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
    let found = match before {
        Some(b) => page::before(&visible, |b| b.id.as_str(), b, limit),
        None => page::after(&visible, |b| b.id.as_str(), after, limit),
    };
    // An unknown cursor: an empty page.
    let (page, has_more) = found.unwrap_or((&[], false));
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
