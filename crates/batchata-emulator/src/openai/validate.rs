//! Checking a batch's input file as the real API does: every JSONL line
//! parsed, its `custom_id`, `method`, `url` and `body` checked, and the
//! chat completion body read into a conversation for the answer generator.
//! Problems with the file as a whole fail the batch (`errors`); problems
//! in one request's body become that line's 400 in the error file.

use std::collections::HashSet;

use axum::body::Bytes;
use base64::Engine;
use serde_json::{json, Value};

use super::{BatchData, Line, LineError, Outcome, MAX_ERRORS};
use crate::answers::{Conversation, DocBody, Document, ReplyFormat};
use crate::ids::{hash_parts, unit};
use crate::pdf;
use crate::stats::request_digest;

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
pub(super) fn build_batch(
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
