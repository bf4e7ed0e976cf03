//! Checking one `GenerateContentRequest` as the API does — contents and
//! their parts, inline data types, system instruction, generation config,
//! thinking, response MIME type and schema — and reducing it to the
//! conversation the answer generator reads.

use base64::Engine;
use serde_json::{json, Map, Value};

use super::proto::{as_int, as_number, as_str, fields, RequestError};
use crate::answers::{Conversation, DocBody, Document, ReplyFormat};
use crate::pdf;

const REQUEST_FIELDS: &[&str] = &[
    "model",
    "contents",
    "systemInstruction",
    "generationConfig",
    "tools",
    "toolConfig",
    "safetySettings",
    "cachedContent",
];
const CONTENT_FIELDS: &[&str] = &["role", "parts"];
const PART_FIELDS: &[&str] = &[
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
    "thought",
    "thoughtSignature",
    "videoMetadata",
    "mediaResolution",
];
const PART_DATA: &[&str] = &[
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
];
const BLOB_FIELDS: &[&str] = &["mimeType", "data"];
const FILE_DATA_FIELDS: &[&str] = &["mimeType", "fileUri"];
const GENERATION_FIELDS: &[&str] = &[
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "responseModalities",
    "candidateCount",
    "maxOutputTokens",
    "temperature",
    "topP",
    "topK",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseLogprobs",
    "logprobs",
    "enableEnhancedCivicAnswers",
    "speechConfig",
    "thinkingConfig",
    "imageConfig",
    "mediaResolution",
];
const THINKING_FIELDS: &[&str] = &["includeThoughts", "thinkingBudget", "thinkingLevel"];
/// `inlineData` MIME types the models take.
const INLINE_TYPES: &[&str] = &[
    "application/pdf",
    "image/png",
    "image/jpeg",
    "image/webp",
    "image/heic",
    "image/heif",
    "text/plain",
    "text/html",
    "text/css",
    "text/csv",
    "text/xml",
    "text/markdown",
    "text/rtf",
    "application/json",
    "application/x-javascript",
    "text/javascript",
    "application/x-python",
    "text/x-python",
    "audio/wav",
    "audio/mp3",
    "audio/mpeg",
    "audio/aac",
    "audio/ogg",
    "audio/flac",
    "video/mp4",
    "video/mpeg",
    "video/webm",
];
const RESPONSE_MIME_TYPES: &[&str] = &["text/plain", "application/json", "text/x.enum"];

/// Whether a model thinks by default (and so reports `thoughtsTokenCount`).
pub(super) fn thinks(model: &str) -> bool {
    (model.starts_with("gemini-2.5") && !model.contains("lite")) || model.starts_with("gemini-3")
}

/// Texts of a `Content` (a system instruction), checking its parts.
fn content_texts(
    content: &Value,
    at: &str,
    deep: bool,
    docs: &mut Vec<Document>,
) -> Result<(Option<String>, Vec<String>), RequestError> {
    let f = fields(content, at, CONTENT_FIELDS)?;
    let role = match f.get("role") {
        Some(r) => Some(as_str(r, &format!("{at}.role"))?.to_string()),
        None => None,
    };
    let parts = match f.get("parts") {
        Some(Value::Array(p)) => p,
        Some(other) => {
            return Err(RequestError::Payload(format!(
                "Invalid JSON payload received. Invalid value at '{at}.parts' ({other}): expected a list."
            )))
        }
        None => &Vec::new(),
    };
    if parts.is_empty() {
        return Err(RequestError::Invalid(format!(
            "* GenerateContentRequest.{at}.parts: contents.parts must not be empty.\n"
        )));
    }
    let mut texts = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        let pat = format!("{at}.parts[{j}]");
        let pf = fields(part, &pat, PART_FIELDS)?;
        let data: Vec<&str> = PART_DATA
            .iter()
            .copied()
            .filter(|k| pf.contains_key(*k))
            .collect();
        if data.len() != 1 {
            return Err(RequestError::Invalid(format!(
                "* GenerateContentRequest.{pat}.data: required oneof field 'data' must have one initialized field\n"
            )));
        }
        if let Some(t) = pf.get("text") {
            texts.push(as_str(t, &format!("{pat}.text"))?.to_string());
        }
        if let Some(blob) = pf.get("inlineData") {
            let bat = format!("{pat}.inline_data");
            let bf = fields(blob, &bat, BLOB_FIELDS)?;
            let mime = match bf.get("mimeType") {
                Some(m) => as_str(m, &format!("{bat}.mime_type"))?,
                None => "",
            };
            if !INLINE_TYPES.contains(&mime) {
                return Err(RequestError::Invalid(format!(
                    "Unsupported MIME type: {mime}"
                )));
            }
            let data = match bf.get("data") {
                Some(d) => as_str(d, &format!("{bat}.data"))?,
                None => "",
            };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(data.trim()))
                .map_err(|_| {
                    RequestError::Payload(format!(
                        "Invalid value at '{bat}.data' (TYPE_BYTES), Base64 decoding failed for \"{}\"",
                        data.chars().take(20).collect::<String>()
                    ))
                })?;
            if bytes.is_empty() {
                return Err(RequestError::Invalid(format!(
                    "* GenerateContentRequest.{bat}.data: inline data must not be empty\n"
                )));
            }
            if mime == "application/pdf" {
                docs.push(Document {
                    title: None,
                    body: DocBody::Pdf(if deep {
                        pdf::extract_pages(&bytes)
                    } else {
                        Vec::new()
                    }),
                    citations: false,
                });
            } else if mime.starts_with("text/") || mime == "application/json" {
                docs.push(Document {
                    title: None,
                    body: DocBody::Text(String::from_utf8_lossy(&bytes).into_owned()),
                    citations: false,
                });
            }
        }
        if let Some(fd) = pf.get("fileData") {
            let fat = format!("{pat}.file_data");
            let ff = fields(fd, &fat, FILE_DATA_FIELDS)?;
            match ff.get("fileUri") {
                Some(u) if !as_str(u, &format!("{fat}.file_uri"))?.is_empty() => {}
                _ => {
                    return Err(RequestError::Invalid(format!(
                        "* GenerateContentRequest.{fat}.file_uri: a file URI is required\n"
                    )))
                }
            }
        }
    }
    Ok((role, texts))
}

/// Converts a `responseSchema` (the OpenAPI subset: upper-case types,
/// `nullable`) into the JSON Schema the answer generator reads.
fn openapi_to_json_schema(s: &Value) -> Value {
    let Value::Object(src) = s else {
        return json!({});
    };
    let mut out = Map::new();
    let nullable = src.get("nullable").and_then(Value::as_bool) == Some(true);
    if let Some(t) = src.get("type").and_then(Value::as_str) {
        let t = t.to_ascii_lowercase();
        if nullable {
            out.insert("type".into(), json!([t, "null"]));
        } else {
            out.insert("type".into(), json!(t));
        }
    }
    if let Some(Value::Object(props)) = src.get("properties") {
        let conv: Map<String, Value> = props
            .iter()
            .map(|(k, v)| (k.clone(), openapi_to_json_schema(v)))
            .collect();
        out.insert("properties".into(), Value::Object(conv));
    }
    if let Some(items) = src.get("items") {
        out.insert("items".into(), openapi_to_json_schema(items));
    }
    if let Some(Value::Array(alts)) = src.get("anyOf") {
        out.insert(
            "anyOf".into(),
            Value::Array(alts.iter().map(openapi_to_json_schema).collect()),
        );
    }
    for k in [
        "required",
        "enum",
        "description",
        "minItems",
        "maxItems",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "pattern",
    ] {
        if let Some(v) = src.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    Value::Object(out)
}

/// Checks a `GenerateContentRequest` (at `at` in the create body) and reduces
/// it to a [`Conversation`] for `model`. `deep` extracts PDF text.
pub(super) fn check_request(
    model: &str,
    req: &Value,
    at: &str,
    deep: bool,
    bytes: usize,
) -> Result<Conversation, RequestError> {
    let f = fields(req, at, REQUEST_FIELDS)?;
    let mut conv = Conversation {
        model: model.to_string(),
        input_bytes: bytes,
        ..Default::default()
    };
    if let Some(m) = f.get("model") {
        let m = as_str(m, &format!("{at}.model"))?;
        if m.trim_start_matches("models/") != model {
            return Err(RequestError::Invalid(format!(
                "The model of a request ({m}) must be the batch's model (models/{model})."
            )));
        }
    }
    let contents = match f.get("contents") {
        Some(Value::Array(c)) => c.as_slice(),
        Some(other) => {
            return Err(RequestError::Payload(format!(
                "Invalid JSON payload received. Invalid value at '{at}.contents' ({other}): expected a list."
            )))
        }
        None => &[],
    };
    if contents.is_empty() {
        return Err(RequestError::Invalid(
            "* GenerateContentRequest.contents: contents is not specified\n".into(),
        ));
    }
    let mut docs = Vec::new();
    for (i, c) in contents.iter().enumerate() {
        let (role, texts) = content_texts(c, &format!("contents[{i}]"), deep, &mut docs)?;
        match role.as_deref() {
            None | Some("user") => conv.user_texts.push(texts.join("\n")),
            Some("model") => {}
            Some(_) => {
                return Err(RequestError::Invalid(
                    "Please use a valid role: user, model.".into(),
                ))
            }
        }
    }
    conv.documents = docs;
    if let Some(si) = f.get("systemInstruction") {
        let mut ignored = Vec::new();
        let (_, texts) = content_texts(si, "system_instruction", false, &mut ignored)?;
        conv.system = texts.join("\n");
    }
    if let Some(gc) = f.get("generationConfig") {
        let gat = format!("{at}.generation_config");
        let g = fields(gc, &gat, GENERATION_FIELDS)?;
        if let Some(t) = g.get("temperature") {
            let t = as_number(t, &format!("{gat}.temperature"))?;
            if !(0.0..=2.0).contains(&t) {
                return Err(RequestError::Invalid(format!(
                    "* GenerateContentRequest.generation_config.temperature: temperature must be between 0 and 2, got {t}\n"
                )));
            }
        }
        if let Some(m) = g.get("maxOutputTokens") {
            let m = as_int(m, &format!("{gat}.max_output_tokens"))?;
            if m < 1 {
                return Err(RequestError::Invalid(format!(
                    "* GenerateContentRequest.generation_config.max_output_tokens: max_output_tokens must be positive, got {m}\n"
                )));
            }
            conv.max_tokens = Some(m as u64);
        }
        if let Some(tc) = g.get("thinkingConfig") {
            let t = fields(tc, &format!("{gat}.thinking_config"), THINKING_FIELDS)?;
            if let Some(b) = t.get("thinkingBudget") {
                let b = as_int(b, &format!("{gat}.thinking_config.thinking_budget"))?;
                if b == 0 && model.contains("pro") {
                    return Err(RequestError::Invalid(
                        "Budget 0 is invalid. This model only works in thinking mode.".into(),
                    ));
                }
            }
        }
        let mime = match g.get("responseMimeType") {
            Some(m) => Some(as_str(m, &format!("{gat}.response_mime_type"))?),
            None => None,
        };
        if let Some(m) = mime {
            if !RESPONSE_MIME_TYPES.contains(&m) {
                return Err(RequestError::Invalid(format!(
                    "* GenerateContentRequest.generation_config.response_mime_type: allowed mimetypes are `text/plain`, `application/json`, `application/xml`, `application/yaml` and `text/x.enum`, got {m}\n"
                )));
            }
        }
        let schema = g.get("responseSchema");
        let json_schema = g.get("responseJsonSchema");
        if schema.is_some() && json_schema.is_some() {
            return Err(RequestError::Invalid(
                "* GenerateContentRequest.generation_config: response_schema and response_json_schema cannot both be set\n".into(),
            ));
        }
        if (schema.is_some() || json_schema.is_some())
            && !matches!(mime, Some("application/json" | "text/x.enum"))
        {
            return Err(RequestError::Invalid(
                "* GenerateContentRequest.generation_config.response_mime_type: a response schema needs response_mime_type application/json\n".into(),
            ));
        }
        for s in [schema, json_schema].into_iter().flatten() {
            if !s.is_object() {
                return Err(RequestError::Payload(format!(
                    "Invalid JSON payload received. Invalid value at '{gat}': the response schema must be an object."
                )));
            }
        }
        conv.format = match (schema, json_schema, mime) {
            (Some(s), _, _) => Some(ReplyFormat::JsonSchema(openapi_to_json_schema(s))),
            (_, Some(s), _) => Some(ReplyFormat::JsonSchema((*s).clone())),
            (_, _, Some("application/json")) => Some(ReplyFormat::JsonObject),
            _ => None,
        };
    }
    Ok(conv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_schema_becomes_json_schema() {
        let s = openapi_to_json_schema(&json!({
            "type": "OBJECT",
            "properties": {"a": {"type": "STRING", "nullable": true}, "b": {"type": "ARRAY", "items": {"type": "INTEGER"}}},
            "required": ["a"],
            "propertyOrdering": ["a", "b"],
        }));
        assert_eq!(
            s,
            json!({"type": "object", "properties": {"a": {"type": ["string", "null"]}, "b": {"type": "array", "items": {"type": "integer"}}}, "required": ["a"]})
        );
    }
}
