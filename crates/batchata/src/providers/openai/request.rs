//! Building OpenAI Batch input lines from jobs.
//!
//! One line per job: `{"custom_id", "method":"POST", "url":"/v1/chat/completions",
//! "body": <chat completion request>}`. Lines are built one at a time into a
//! caller's buffer, so a batch is never held in memory as a whole: the client
//! builds them lazily while it streams the upload, and again (from the same
//! jobs, byte for byte) for the raw request file.
//!
//! What goes into a body follows the model's catalog entry: `max_tokens` or
//! `max_completion_tokens` as the model takes it, `temperature` only where the
//! model accepts one, and a strict `json_schema` response format made
//! strict-compatible first. Files go as the Chat Completions API reads them:
//! images as `image_url` data URLs, PDFs as a `file` part with `filename` and
//! a `data:application/pdf;base64,` payload, text-like files and DOCX (its
//! extracted text) as text.

use std::borrow::Cow;
use std::sync::Arc;

use base64::Engine;
use serde::Serialize;
use serde_json::Value;

use crate::catalog::{MaxTokensParam, ModelInfo};
use crate::error::{Error, Result};
use crate::files::{self, FileKind};
use crate::job::{Job, ResponseSchema};

/// The endpoint every line of a batch targets.
pub const CHAT_COMPLETIONS_URL: &str = "/v1/chat/completions";

/// One line of the batch input file.
#[derive(Debug, Serialize)]
pub struct BatchLine<'a> {
    /// The job id; results are matched back by it.
    pub custom_id: &'a str,
    /// Always `POST`.
    pub method: &'static str,
    /// Always [`CHAT_COMPLETIONS_URL`].
    pub url: &'static str,
    /// The chat completion request.
    pub body: ChatRequest<'a>,
}

/// A Chat Completions request body.
#[derive(Debug, Serialize)]
pub struct ChatRequest<'a> {
    /// The model id as the job names it.
    pub model: &'a str,
    /// The conversation.
    pub messages: Vec<ChatMessage<'a>>,
    /// Output limit for models that take `max_completion_tokens`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    /// Output limit for models that take `max_tokens`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling temperature, only for models that accept one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Structured output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat<'a>>,
}

/// One chat message.
#[derive(Debug, Serialize)]
pub struct ChatMessage<'a> {
    /// `system`, `user` or `assistant`.
    pub role: &'static str,
    /// Plain text or content parts.
    pub content: Content<'a>,
}

/// A message's content.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Content<'a> {
    /// Plain text.
    Text(Cow<'a, str>),
    /// Typed parts (text, image, file).
    Parts(Vec<ContentPart<'a>>),
}

/// One content part.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart<'a> {
    /// `{"type":"text","text":...}`.
    Text {
        /// The text.
        text: Cow<'a, str>,
    },
    /// `{"type":"image_url","image_url":{"url":"data:image/png;base64,..."}}`.
    ImageUrl {
        /// The image.
        image_url: ImageUrl,
    },
    /// `{"type":"file","file":{"filename":...,"file_data":"data:application/pdf;base64,..."}}`.
    File {
        /// The file.
        file: FileData,
    },
}

/// An image reference.
#[derive(Debug, Serialize)]
pub struct ImageUrl {
    /// A data URL.
    pub url: String,
}

/// An inline file.
#[derive(Debug, Serialize)]
pub struct FileData {
    /// The file's name.
    pub filename: String,
    /// A data URL of the file's bytes.
    pub file_data: String,
}

/// `response_format`.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat<'a> {
    /// `{"type":"json_schema","json_schema":{...}}`.
    JsonSchema {
        /// The schema and its options.
        json_schema: JsonSchemaFormat<'a>,
    },
}

/// The `json_schema` member of `response_format`.
#[derive(Debug, Serialize)]
pub struct JsonSchemaFormat<'a> {
    /// `[A-Za-z0-9_-]{1,64}`.
    pub name: String,
    /// Always true: the answer must follow the schema.
    pub strict: bool,
    /// The strict-compatible schema.
    pub schema: &'a Value,
}

/// The body of `POST /batches`.
#[derive(Debug, Serialize)]
pub struct CreateBatch<'a> {
    /// The uploaded input file.
    pub input_file_id: &'a str,
    /// Always [`CHAT_COMPLETIONS_URL`].
    pub endpoint: &'static str,
    /// Always `24h`, the only window OpenAI offers.
    pub completion_window: &'static str,
    /// `batchata_run_id` and `batchata_batch_index`, so a run can find the
    /// batch again after a crash.
    pub metadata: std::collections::BTreeMap<&'static str, String>,
}

/// A data URL of some bytes.
pub fn data_url(media_type: &str, bytes: &[u8]) -> String {
    let engine = &base64::engine::general_purpose::STANDARD;
    let prefix = format!("data:{media_type};base64,");
    let mut out = String::with_capacity(prefix.len() + bytes.len().div_ceil(3) * 4);
    out.push_str(&prefix);
    engine.encode_string(bytes, &mut out);
    out
}

/// Builds the input lines of one model's jobs. It keeps the strict form of
/// the last schema it saw, so jobs sharing a schema (the usual case, from the
/// batch defaults) transform it once.
#[derive(Debug)]
pub struct LineBuilder {
    model: Arc<ModelInfo>,
    strict: Option<(ResponseSchema, Value)>,
}

impl LineBuilder {
    /// A builder for jobs of `model`.
    pub fn new(model: Arc<ModelInfo>) -> Self {
        LineBuilder {
            model,
            strict: None,
        }
    }

    /// The model the lines are built for.
    pub fn model(&self) -> &ModelInfo {
        &self.model
    }

    /// Appends the job's line, newline included, to `out`. Errors name the
    /// job and the field at fault.
    pub fn write_line(&mut self, job: &Job, out: &mut Vec<u8>) -> Result<()> {
        let id = job.id_str();
        if let Some(schema) = &job.response_schema {
            if self.model.capabilities.structured_output
                && self.strict.as_ref().map(|(s, _)| s) != Some(schema)
            {
                let strict = crate::structured::to_openai_strict(schema.as_value());
                self.strict = Some((schema.clone(), strict));
            }
        }
        let model = &*self.model;
        let messages = messages(job, model)?;
        let (max_completion_tokens, max_tokens) = match model.capabilities.max_tokens_param {
            MaxTokensParam::MaxTokens => (None, Some(job.max_tokens_or_default())),
            MaxTokensParam::MaxCompletionTokens | MaxTokensParam::MaxOutputTokens => {
                (Some(job.max_tokens_or_default()), None)
            }
        };
        let temperature = job.temperature.filter(|_| model.capabilities.temperature);
        let response_format = match (&job.response_schema, &self.strict) {
            (Some(schema), Some((_, strict))) if model.capabilities.structured_output => {
                Some(ResponseFormat::JsonSchema {
                    json_schema: JsonSchemaFormat {
                        name: schema.name(),
                        strict: true,
                        schema: strict,
                    },
                })
            }
            _ => None,
        };
        let line = BatchLine {
            custom_id: id,
            method: "POST",
            url: CHAT_COMPLETIONS_URL,
            body: ChatRequest {
                model: job.model_name(),
                messages,
                max_completion_tokens,
                max_tokens,
                temperature,
                response_format,
            },
        };
        serde_json::to_writer(&mut *out, &line)
            .map_err(|e| Error::Parse(format!("job '{id}': cannot encode the request: {e}")))?;
        out.push(b'\n');
        Ok(())
    }
}

/// The chat messages of a job.
fn messages<'a>(job: &'a Job, model: &ModelInfo) -> Result<Vec<ChatMessage<'a>>> {
    let id = job.id_str();
    let mut out = Vec::with_capacity(job.messages.as_ref().map_or(2, |m| m.len() + 1));
    if let Some(schema) = &job.response_schema {
        if !model.capabilities.structured_output {
            // No native structured output: ask for the JSON in words; the
            // answer is then found in the text and validated.
            out.push(ChatMessage {
                role: "system",
                content: Content::Text(Cow::Owned(format!(
                    "Answer with a single JSON value, and nothing else, that follows this JSON Schema:\n{}",
                    schema.as_value()
                ))),
            });
        }
    }
    if let Some(msgs) = &job.messages {
        for m in msgs {
            out.push(ChatMessage {
                role: m.role.as_str(),
                content: Content::Text(Cow::Borrowed(&m.content)),
            });
        }
        return Ok(out);
    }
    let prompt = job.prompt.as_deref().ok_or_else(|| {
        Error::job_field(
            id,
            "prompt",
            "the job has neither messages nor a prompt; give one",
        )
    })?;
    let Some(path) = &job.file else {
        out.push(ChatMessage {
            role: "user",
            content: Content::Text(Cow::Borrowed(prompt)),
        });
        return Ok(out);
    };
    // The kind (and an image's media type) comes from the bytes.
    let file = files::load(path).map_err(|e| Error::job_field(id, "file", e))?;
    let name = files::file_name(path);
    let file_part = match file.kind {
        FileKind::Pdf => ContentPart::File {
            file: FileData {
                filename: name,
                file_data: data_url("application/pdf", &file.bytes),
            },
        },
        FileKind::Image(media_type) => ContentPart::ImageUrl {
            image_url: ImageUrl {
                url: data_url(media_type, &file.bytes),
            },
        },
        FileKind::Text | FileKind::Docx => {
            let text = file
                .text(path)
                .map_err(|e| Error::job_field(id, "file", e))?;
            ContentPart::Text {
                text: Cow::Owned(format!("Document: {name}\n\n{text}")),
            }
        }
    };
    out.push(ChatMessage {
        role: "user",
        content: Content::Parts(vec![
            file_part,
            ContentPart::Text {
                text: Cow::Borrowed(prompt),
            },
        ]),
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::job::Message;
    use serde_json::json;

    fn model(name: &str) -> Arc<ModelInfo> {
        Catalog::builtin().get(name).unwrap()
    }

    fn line(job: &Job, model_name: &str) -> Value {
        let mut b = LineBuilder::new(model(model_name));
        let mut out = Vec::new();
        b.write_line(job, &mut out).unwrap();
        assert_eq!(out.last(), Some(&b'\n'));
        assert_eq!(out.iter().filter(|&&c| c == b'\n').count(), 1);
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn chat_job_line_shape() {
        let job = Job::messages(vec![Message::system("Be brief."), Message::user("Hi")])
            .id("j1")
            .model("gpt-4o-mini")
            .temperature(0.2)
            .max_tokens(50);
        let v = line(&job, "gpt-4o-mini");
        assert_eq!(v["custom_id"], "j1");
        assert_eq!(v["method"], "POST");
        assert_eq!(v["url"], "/v1/chat/completions");
        assert_eq!(v["body"]["model"], "gpt-4o-mini");
        assert_eq!(
            v["body"]["messages"],
            json!([{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}])
        );
        let mc = model("gpt-4o-mini");
        match mc.capabilities.max_tokens_param {
            MaxTokensParam::MaxTokens => assert_eq!(v["body"]["max_tokens"], 50),
            _ => assert_eq!(v["body"]["max_completion_tokens"], 50),
        }
        if mc.capabilities.temperature {
            assert_eq!(v["body"]["temperature"], 0.2);
        }
        assert!(v["body"].get("response_format").is_none());
    }

    #[test]
    fn reasoning_model_gets_max_completion_tokens_and_no_temperature() {
        let m = model("o3");
        assert!(!m.capabilities.temperature);
        let job = Job::prompt("Think")
            .id("r")
            .model("o3")
            .temperature(0.7)
            .max_tokens(900);
        let v = line(&job, "o3");
        assert_eq!(v["body"]["max_completion_tokens"], 900);
        assert!(v["body"].get("max_tokens").is_none(), "{v}");
        assert!(v["body"].get("temperature").is_none(), "{v}");
        assert_eq!(
            v["body"]["messages"],
            json!([{"role":"user","content":"Think"}])
        );
    }

    #[test]
    fn file_parts() {
        let dir = tempfile::tempdir().unwrap();
        let pdf = dir.path().join("report.pdf");
        std::fs::write(&pdf, crate::fixtures::pdf(&["Total 12"]).unwrap()).unwrap();
        let png = dir.path().join("dot.png");
        std::fs::write(&png, [0x89, b'P', b'N', b'G', 1, 2, 3]).unwrap();
        let txt = dir.path().join("note.md");
        std::fs::write(&txt, "# Note\nhello").unwrap();
        let docx = dir.path().join("memo.docx");
        std::fs::write(
            &docx,
            crate::fixtures::docx(&["Para one", "Para two"]).unwrap(),
        )
        .unwrap();

        let v = line(&Job::file(&pdf, "Total?").id("p").model("gpt-4o"), "gpt-4o");
        let parts = &v["body"]["messages"][0]["content"];
        assert_eq!(parts[0]["type"], "file");
        assert_eq!(parts[0]["file"]["filename"], "report.pdf");
        let data = parts[0]["file"]["file_data"].as_str().unwrap();
        let b64 = data.strip_prefix("data:application/pdf;base64,").unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(decoded, std::fs::read(&pdf).unwrap());
        assert_eq!(parts[1], json!({"type":"text","text":"Total?"}));

        let v = line(&Job::file(&png, "What?").id("i").model("gpt-4o"), "gpt-4o");
        let parts = &v["body"]["messages"][0]["content"];
        assert_eq!(parts[0]["type"], "image_url");
        assert_eq!(
            parts[0]["image_url"]["url"],
            format!(
                "data:image/png;base64,{}",
                base64::engine::general_purpose::STANDARD.encode([0x89, b'P', b'N', b'G', 1, 2, 3])
            )
        );

        let v = line(&Job::file(&txt, "Sum").id("t").model("gpt-4o"), "gpt-4o");
        let parts = &v["body"]["messages"][0]["content"];
        assert_eq!(parts[0]["type"], "text");
        assert!(parts[0]["text"]
            .as_str()
            .unwrap()
            .contains("note.md\n\n# Note\nhello"));

        let v = line(&Job::file(&docx, "Sum").id("d").model("gpt-4o"), "gpt-4o");
        let text = v["body"]["messages"][0]["content"][0]["text"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(text.contains("Para one\nPara two"), "{text}");
        assert!(!text.contains("w:t"), "{text}");
    }

    #[test]
    fn missing_file_names_job_and_field() {
        let job = Job::file("/nonexistent/x.pdf", "Read")
            .id("gone")
            .model("gpt-4o");
        let mut b = LineBuilder::new(model("gpt-4o"));
        let e = b.write_line(&job, &mut Vec::new()).unwrap_err().to_string();
        assert!(e.contains("job 'gone'") && e.contains("'file'"), "{e}");
        assert!(e.contains("/nonexistent/x.pdf"), "{e}");
    }

    #[test]
    fn structured_output_is_strict() {
        let schema = ResponseSchema::from_value(json!({
            "title": "Invoice",
            "type": "object",
            "properties": {
                "total": {"type": "number"},
                "note": {"type": "string"},
                "lines": {"type": "array", "items": {
                    "type": "object",
                    "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}},
                    "required": ["sku"]
                }}
            },
            "required": ["total", "lines"]
        }))
        .unwrap();
        let job = Job::prompt("Extract")
            .id("s")
            .model("gpt-4o")
            .response_schema(schema);
        let v = line(&job, "gpt-4o");
        let rf = &v["body"]["response_format"];
        assert_eq!(rf["type"], "json_schema");
        assert_eq!(rf["json_schema"]["name"], "Invoice");
        assert_eq!(rf["json_schema"]["strict"], true);
        let s = &rf["json_schema"]["schema"];
        assert_eq!(s["additionalProperties"], false);
        let mut req: Vec<&str> = s["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        req.sort();
        assert_eq!(req, ["lines", "note", "total"]);
        let item = &s["properties"]["lines"]["items"];
        assert_eq!(item["additionalProperties"], false);
        assert_eq!(item["required"].as_array().unwrap().len(), 2);
        // An optional property becomes nullable.
        let note = &s["properties"]["note"];
        let nullable = note["type"]
            .as_array()
            .is_some_and(|t| t.contains(&json!("null")))
            || note["anyOf"]
                .as_array()
                .is_some_and(|a| a.iter().any(|b| b["type"] == "null"));
        assert!(nullable, "{note}");
    }

    #[test]
    fn shared_schema_transformed_once_and_lines_identical() {
        let schema = ResponseSchema::from_value(json!({
            "type":"object","properties":{"a":{"type":"string"}}
        }))
        .unwrap();
        let mut b = LineBuilder::new(model("gpt-4o"));
        let mut first = Vec::new();
        let mut second = Vec::new();
        let job = Job::prompt("x")
            .id("a")
            .model("gpt-4o")
            .response_schema(schema);
        b.write_line(&job, &mut first).unwrap();
        b.write_line(&job, &mut second).unwrap();
        assert_eq!(first, second);
    }
}
