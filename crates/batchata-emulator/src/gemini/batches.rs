//! A batch as the API shows it — a `google.longrunning.Operation` whose
//! state is computed from the batch's timeline — and the get, list, cancel
//! and delete calls.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode, Uri};
use axum::Json;
use serde_json::{json, Map, Value};

use super::render::render;
use super::routes::unknown_path;
use super::{rfc3339, Batch, BatchState, Input, Output, BATCH_PAGE, BATCH_TYPE, OUTPUT_TYPE};
use crate::error::ApiError;
use crate::lifecycle::count_done;
use crate::page;
use crate::request::{query_get, query_pairs};
use crate::server::{lock, AppState};

impl Batch {
    fn pending_end(&self) -> Duration {
        self.timeline.at_fraction(0.1)
    }

    pub(super) fn state(&self, now: Instant) -> BatchState {
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
    pub(super) fn view(&self, now: Instant, state: BatchState) -> Value {
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

/// `GET /v1beta/batches/{id}`
pub(crate) async fn retrieve(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let mut views = render(&state, std::slice::from_ref(&name), Instant::now()).await?;
    Ok(Json(views.pop().unwrap_or(Value::Null)))
}

pub(super) fn page_size(
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
pub(super) fn cursor_page(
    ids: &[String],
    pairs: &[(String, String)],
    size: usize,
) -> Result<(Vec<String>, Option<String>), ApiError> {
    let token = query_get(pairs, "pageToken").or_else(|| query_get(pairs, "page_token"));
    let (chosen, more) = page::after(ids, String::as_str, token, size)
        .ok_or_else(|| ApiError::gemini_invalid("Invalid page token."))?;
    let next = more.then(|| chosen.last().cloned()).flatten();
    Ok((chosen.to_vec(), next))
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
