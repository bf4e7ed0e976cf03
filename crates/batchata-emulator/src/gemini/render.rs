//! Answering: a `GenerateContentResponse` for each request, the result of
//! each item (an answer, or the error it was refused with), and the output
//! of a finished batch — inline responses or a generated results file —
//! built once, the first time the finished batch is looked at.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use chrono::Utc;
use serde_json::{json, Map, Value};

use super::proto::RequestError;
use super::routes::internal;
use super::validate::{check_request, thinks};
use super::{BatchData, BatchState, File, FileSource, Input, Item, Outcome, Output};
use crate::answers;
use crate::answers::{Conversation, Stop};
use crate::error::ApiError;
use crate::ids::{base62, hash_parts};
use crate::server::{lock, AppState};

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
pub(super) async fn render(
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
