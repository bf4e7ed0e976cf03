//! The output and error files of a finished batch, built once the first
//! time anyone sees the batch in a terminal state (so their ids and sizes
//! never change), with a chat completion generated for each answered line.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use serde_json::{json, Value};

use super::validate::parse_chat;
use super::{internal, BatchData, File, Outcome, Outputs, Status, FILE_TTL_SECS};
use crate::answers;
use crate::answers::{Conversation, Stop};
use crate::error::ApiError;
use crate::ids::{base62, hash_parts, hex};
use crate::lifecycle::is_done;
use crate::server::{lock, AppState};

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
            .map_err(internal)?;
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
pub(super) async fn render(
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
