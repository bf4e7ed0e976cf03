//! Checking one request's `params` as the Messages API does: known
//! top-level parameters and content blocks, roles, documents (text, base64
//! PDF, with or without citations), and how the answer is asked for (plain
//! text, native JSON output or a forced tool). A request that fails comes
//! back as an `errored` result line, not as a failed create.

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::answers::{Conversation, DocBody, Document, ReplyFormat};
use crate::pdf;

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
