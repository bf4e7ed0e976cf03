//! The output and error files of a finished batch, built once the first
//! time anyone sees the batch in a terminal state (so their ids and sizes
//! never change), with a chat completion generated for each answered line.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use serde::Serialize;
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
                    let body =
                        serde_json::from_slice::<Value>(&plan.data.file[line.start..line.end])
                            .ok()
                            .and_then(|mut v| v.get_mut("body").map(Value::take))
                            .unwrap_or(Value::Null);
                    match parse_chat(&body, true, json_len(&body)) {
                        Ok(conv) => {
                            let (completion, usage) = chat_completion(&conv, h, plan.created);
                            input_tokens += usage.0;
                            output_tokens += usage.1;
                            let answered = OutputLine {
                                custom_id: &line.custom_id,
                                error: (),
                                id: &id,
                                response: Answered {
                                    body: completion,
                                    request_id: &request_id,
                                    status_code: 200,
                                },
                            };
                            if serde_json::to_writer(&mut out, &answered).is_ok() {
                                out.push(b'\n');
                            }
                            continue;
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

/// The length of `v` written as compact JSON, without writing it.
fn json_len(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

// An answered line of the output file, written straight from these
// structs rather than through a `Value` built per line (a third of the
// time of rendering 10,000 lines). Fields are in sorted order, as a
// `Value` object writes its keys; `()` is written as null.

#[derive(Serialize)]
struct OutputLine<'a> {
    custom_id: &'a str,
    error: (),
    id: &'a str,
    response: Answered<'a>,
}

#[derive(Serialize)]
struct Answered<'a> {
    body: Completion<'a>,
    request_id: &'a str,
    status_code: u16,
}

#[derive(Serialize)]
struct Completion<'a> {
    choices: [Choice; 1],
    created: i64,
    id: String,
    model: &'a str,
    object: &'static str,
    service_tier: &'static str,
    system_fingerprint: (),
    usage: Usage,
}

#[derive(Serialize)]
struct Choice {
    finish_reason: &'static str,
    index: u32,
    logprobs: (),
    message: AssistantMessage,
}

#[derive(Serialize)]
struct AssistantMessage {
    annotations: [(); 0],
    content: String,
    refusal: (),
    role: &'static str,
}

#[derive(Serialize)]
struct Usage {
    completion_tokens: u64,
    completion_tokens_details: CompletionDetails,
    prompt_tokens: u64,
    prompt_tokens_details: PromptDetails,
    total_tokens: u64,
}

#[derive(Serialize)]
struct CompletionDetails {
    accepted_prediction_tokens: u64,
    audio_tokens: u64,
    reasoning_tokens: u64,
    rejected_prediction_tokens: u64,
}

#[derive(Serialize)]
struct PromptDetails {
    audio_tokens: u64,
    cached_tokens: u64,
}

/// A chat completion body and its `(prompt, completion)` token counts.
fn chat_completion(conv: &Conversation, h: u64, created: i64) -> (Completion<'_>, (u64, u64)) {
    let reply = answers::answer(conv);
    let finish_reason = match reply.stop {
        Stop::MaxTokens => "length",
        _ => "stop",
    };
    let body = Completion {
        choices: [Choice {
            finish_reason,
            index: 0,
            logprobs: (),
            message: AssistantMessage {
                annotations: [],
                content: reply.joined_text(),
                refusal: (),
                role: "assistant",
            },
        }],
        created,
        id: format!("chatcmpl-{}", base62(h, 29)),
        model: &conv.model,
        object: "chat.completion",
        service_tier: "default",
        system_fingerprint: (),
        usage: Usage {
            completion_tokens: reply.output_tokens,
            completion_tokens_details: CompletionDetails {
                accepted_prediction_tokens: 0,
                audio_tokens: 0,
                reasoning_tokens: 0,
                rejected_prediction_tokens: 0,
            },
            prompt_tokens: reply.input_tokens,
            prompt_tokens_details: PromptDetails {
                audio_tokens: 0,
                cached_tokens: 0,
            },
            total_tokens: reply.input_tokens + reply.output_tokens,
        },
    };
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
