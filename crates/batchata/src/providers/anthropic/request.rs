//! Building Anthropic Message Batches request bodies from jobs.
//!
//! One `{"custom_id", "params"}` entry per job, written straight into the
//! body buffer: system messages are lifted to `system`; a file becomes a
//! `document` (PDF as base64, text-like files and DOCX text as a text
//! source) or an `image` block, placed before the prompt; citations turn on
//! per document with the file name as its title. Structured output uses the
//! model's native `output_config.format` when the catalog says it has one
//! and citations are off (Anthropic refuses the two together); otherwise
//! the schema goes into the system prompt and the reply's JSON is extracted.

use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;

use crate::catalog::ModelInfo;
use crate::error::{Error, Result};
use crate::files::{self, FileKind};
use crate::job::{Job, Message, Role};
use crate::structured;

/// Anthropic needs user and assistant turns to alternate; refuses two in a row.
pub fn check_alternation(job_id: &str, msgs: &[Message]) -> Result<()> {
    let mut last: Option<Role> = None;
    for (i, m) in msgs.iter().enumerate() {
        if m.role == Role::System {
            continue;
        }
        if last == Some(m.role) {
            return Err(Error::job_field(
                job_id,
                &format!("messages[{i}]"),
                format!(
                    "two {} messages in a row; Anthropic needs user and assistant turns to alternate — merge them into one message",
                    m.role.as_str()
                ),
            ));
        }
        last = Some(m.role);
    }
    Ok(())
}

#[derive(Serialize)]
struct Entry<'a> {
    custom_id: &'a str,
    params: Params<'a>,
}

#[derive(Serialize)]
struct Params<'a> {
    model: &'a str,
    max_tokens: u32,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_config: Option<Value>,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: Content<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Content<'a> {
    Text(&'a str),
    Blocks(Vec<Value>),
}

/// Whether a job is sent with native JSON output (else the schema is an instruction).
pub fn uses_native_schema(job: &Job, model: &ModelInfo) -> bool {
    job.response_schema.is_some() && model.capabilities.structured_output && !job.enable_citations
}

/// The document or image block of a file job.
fn file_block(job: &Job, path: &std::path::Path) -> Result<Value> {
    let id = job.id_str();
    let kind = files::file_kind(path).map_err(|e| Error::job_field(id, "file", e))?;
    let title = files::file_name(path);
    let citations = job
        .enable_citations
        .then(|| serde_json::json!({"enabled": true}));
    let b64 = |bytes: Vec<u8>| base64::engine::general_purpose::STANDARD.encode(bytes);
    let read = |p: &std::path::Path| files::read(p).map_err(|e| Error::job_field(id, "file", e));
    let mut block = match kind {
        FileKind::Pdf => serde_json::json!({
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": b64(read(path)?)},
            "title": title,
        }),
        FileKind::Image(media) => {
            return Ok(serde_json::json!({
                "type": "image",
                "source": {"type": "base64", "media_type": media, "data": b64(read(path)?)},
            }))
        }
        FileKind::Text | FileKind::Docx => {
            let text =
                files::document_text(path, kind).map_err(|e| Error::job_field(id, "file", e))?;
            serde_json::json!({
                "type": "document",
                "source": {"type": "text", "media_type": "text/plain", "data": text},
                "title": title,
            })
        }
    };
    if let (Some(c), Some(obj)) = (citations, block.as_object_mut()) {
        obj.insert("citations".into(), c);
    }
    Ok(block)
}

/// Appends one job's request entry to `out`.
pub fn write_entry(job: &Job, model: &ModelInfo, out: &mut Vec<u8>) -> Result<()> {
    let id = job.id_str();
    let mut system_parts: Vec<&str> = Vec::new();
    let mut messages: Vec<WireMessage<'_>> = Vec::new();
    if let Some(msgs) = &job.messages {
        check_alternation(id, msgs)?;
        for m in msgs {
            match m.role {
                Role::System => system_parts.push(&m.content),
                Role::User | Role::Assistant => messages.push(WireMessage {
                    role: m.role.as_str(),
                    content: Content::Text(&m.content),
                }),
            }
        }
    } else if let Some(prompt) = &job.prompt {
        let content = match &job.file {
            Some(path) => Content::Blocks(vec![
                file_block(job, path)?,
                serde_json::json!({"type": "text", "text": prompt}),
            ]),
            None => Content::Text(prompt),
        };
        messages.push(WireMessage {
            role: "user",
            content,
        });
    }
    let mut system: Option<String> = (!system_parts.is_empty()).then(|| system_parts.join("\n\n"));
    let mut output_config = None;
    if let Some(schema) = &job.response_schema {
        if uses_native_schema(job, model) {
            output_config = Some(serde_json::json!({
                "format": {"type": "json_schema", "schema": structured::to_anthropic_schema(schema.as_value())}
            }));
        } else {
            let instruction = structured::schema_instruction(schema.as_value());
            system = Some(match system {
                Some(s) => format!("{s}\n\n{instruction}"),
                None => instruction,
            });
        }
    }
    let entry = Entry {
        custom_id: id,
        params: Params {
            model: &model.name,
            max_tokens: job.max_tokens_or_default(),
            messages,
            system,
            temperature: job.temperature.filter(|_| model.capabilities.temperature),
            output_config,
        },
    };
    serde_json::to_writer(&mut *out, &entry)
        .map_err(|e| Error::job_field(id, "request", format!("cannot encode: {e}")))
}

/// The whole create body `{"requests":[...]}` for `jobs`.
pub fn build_body(
    jobs: &[Job],
    model_of: impl Fn(&Job) -> Result<std::sync::Arc<ModelInfo>>,
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(jobs.len() * 1024 + 16);
    out.extend_from_slice(b"{\"requests\":[");
    for (i, job) in jobs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let model = model_of(job)?;
        write_entry(job, &model, &mut out)?;
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}
