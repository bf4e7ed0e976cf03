//! The results of an ended batch: a JSONL stream generated on request, a
//! chunk at a time, with a message (text, JSON or tool use, and citations
//! where the request asked for them) or an error for every request.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::validate::parse_params;
use super::{BatchData, Item, Outcome, Status};
use crate::answers;
use crate::answers::{Block, Conversation, Location, Reply, Stop};
use crate::error::ApiError;
use crate::ids::{base62, hash_parts};
use crate::lifecycle::is_done;
use crate::server::{lock, AppState};

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
