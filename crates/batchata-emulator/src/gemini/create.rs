//! `batchGenerateContent`: the create body read (inline requests or an
//! uploaded JSONL file), every request checked off the async runtime, and
//! the batch stored with its timeline.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::Value;

use super::proto::{as_int, as_str, fields, RequestError};
use super::routes::internal;
use super::validate::check_request;
use super::{Batch, BatchData, BatchState, FileSource, Input, Item, Outcome};
use crate::config::EmulatorConfig;
use crate::error::ApiError;
use crate::ids::{hash_parts, unit};
use crate::request::{read_body, BodyError};
use crate::server::{lock, AppState};
use crate::stats::request_digest;

/// A batch create body, read.
struct CreateRequest {
    display_name: Option<String>,
    input: Input,
    /// Inline: `(request, metadata)` pairs.
    inline: Vec<(Value, Option<Value>)>,
}

pub(super) fn payload(e: RequestError) -> ApiError {
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

    let (seq, timeline) = state.new_timeline((0.1, 1.0));
    let mut batch = Batch {
        id: state.ids.gemini_batch(),
        seq,
        model: model.to_string(),
        display_name: req.display_name,
        input: req.input,
        timeline,
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
    batch.resubmitted = state.counters.record_batch(&mut store.submitted, digests);
    store.order.push(batch.id.clone());
    store.batches.insert(batch.id.clone(), batch);
    Ok(Json(view))
}
