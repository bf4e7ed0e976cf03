//! The OpenAI Batch API's calls: create (the whole input file validated off
//! the async runtime), retrieve, list and cancel, and the batch object as
//! the API shows it, its status computed from the batch's timeline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::Json;
use serde_json::{json, Map, Value};

use super::files::parse_limit;
use super::render::render;
use super::validate::build_batch;
use super::{batch_not_found, internal, Batch, Status, BATCH_ENDPOINTS, CHAT_ENDPOINT};
use crate::error::ApiError;
use crate::lifecycle::count_done;
use crate::page;
use crate::request::{query_get, query_pairs, read_body, BodyError};
use crate::server::{lock, AppState};

impl Batch {
    fn validation_end(&self) -> Duration {
        self.timeline.at_fraction(0.1)
    }

    pub(super) fn status(&self, now: Instant) -> Status {
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

    pub(super) fn view(&self, now: Instant, status: Status) -> Value {
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
            .map_err(internal)?;

    let (seq, mut timeline) = state.new_timeline((0.1, 0.9));
    timeline.forget_after = state.config.forget_batches_after;
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
    batch.resubmitted = state.counters.record_batch(&mut store.submitted, digests);
    store.batch_order.push(batch.id.clone());
    store.batches.insert(batch.id.clone(), batch);
    Ok(Json(view))
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
    // An unknown cursor: an empty page.
    let (chosen, has_more) =
        page::after(&ids, String::as_str, query_get(&q, "after"), limit).unwrap_or((&[], false));
    let views = render(&state, chosen, now, None).await?;
    Ok(Json(json!({
        "object": "list",
        "data": views,
        "first_id": chosen.first(),
        "last_id": chosen.last(),
        "has_more": has_more,
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
