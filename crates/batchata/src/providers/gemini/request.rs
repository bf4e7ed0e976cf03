//! Building Gemini batch requests from jobs.
//!
//! Each job becomes one `GenerateContentRequest`: system messages go to
//! `systemInstruction`, user and assistant turns to `contents` (roles `user`
//! and `model`), a file goes before the prompt as a part — PDFs and images as
//! `inlineData` (base64), text-like files and DOCX as a text part — and the
//! settings to `generationConfig` (`maxOutputTokens`, `temperature` where the
//! model takes one). A schema asks for `responseMimeType: application/json`
//! with the JSON Schema as written (`responseJsonSchema`), or, for the models
//! older than Gemini 2.5 that only read the OpenAPI subset, as
//! `responseSchema` ([`crate::structured::to_gemini_schema`]).
//!
//! The request is keyed by the job id, either way it travels: inline as
//! `{"request": ..., "metadata": {"key": id}}` inside the create body, or in
//! an uploaded JSONL file as `{"key": id, "request": ...}`. Results are
//! matched back by that key, never by position.
//!
//! Requests are written one at a time into a caller's buffer, so a batch is
//! never held whole: the client writes each once, into the temporary files
//! its attempts stream from (`create.rs`).

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;

use crate::catalog::ModelInfo;
use crate::error::{Error, Result};
use crate::files::{self, FileKind};
use crate::job::{Job, ResponseSchema, Role};

/// The API version the paths carry unless the base URL names another.
pub const DEFAULT_API_VERSION: &str = "v1beta";
/// MIME type of an input file.
pub const JSONL_MIME: &str = "application/jsonl";
/// Image types Gemini reads inline.
pub const IMAGE_TYPES: &[&str] = &["image/png", "image/jpeg", "image/webp"];

// ---------------------------------------------------------------------------
// Wire types
// ---------------------------------------------------------------------------

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerateContentRequest<'a> {
    contents: Vec<Content<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<Content<'a>>,
    generation_config: GenerationConfig<'a>,
}

#[derive(Serialize)]
struct Content<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    parts: Vec<Part<'a>>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Part<'a> {
    Text {
        text: Cow<'a, str>,
    },
    #[serde(rename_all = "camelCase")]
    Inline {
        inline_data: Blob<'a>,
    },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Blob<'a> {
    mime_type: &'static str,
    data: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig<'a> {
    max_output_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_mime_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_schema: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_json_schema: Option<&'a Value>,
}

/// The body of a create call whose requests are in an uploaded file.
#[derive(Debug, Serialize)]
pub struct FileCreateBody<'a> {
    /// The batch.
    pub batch: FileBatch<'a>,
}

/// `batch` of a [`FileCreateBody`].
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileBatch<'a> {
    /// Carries the run id and batch index (see `find_batch`).
    pub display_name: &'a str,
    /// `{"fileName": "files/..."}`.
    pub input_config: FileInput<'a>,
}

/// `inputConfig` naming an uploaded file.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileInput<'a> {
    /// `files/{id}`.
    pub file_name: &'a str,
}

/// The start of an inline create body, up to the first request entry.
pub fn inline_body_prefix(display_name: &str) -> Vec<u8> {
    let name = serde_json::to_string(display_name).unwrap_or_else(|_| "\"batchata\"".into());
    format!("{{\"batch\":{{\"displayName\":{name},\"inputConfig\":{{\"requests\":{{\"requests\":[")
        .into_bytes()
}

/// The end of an inline create body, after the last entry.
pub const INLINE_BODY_SUFFIX: &[u8] = b"]}}}}";

// ---------------------------------------------------------------------------
// Schemas
// ---------------------------------------------------------------------------

/// Whether a model reads only the OpenAPI subset (`responseSchema`): the
/// models before Gemini 2.5. Later ones take JSON Schema
/// (`responseJsonSchema`).
pub fn needs_openapi_schema(model: &ModelInfo) -> bool {
    let n = model.name.as_str();
    n.starts_with("gemini-1") || n.starts_with("gemini-2.0")
}

/// How a schema is sent.
#[derive(Debug, Clone)]
enum SchemaForm {
    /// `responseJsonSchema`.
    Json(Value),
    /// `responseSchema` (OpenAPI subset).
    OpenApi(Value),
    /// No native structured output: a system instruction.
    Instruction(String),
}

fn prepare_schema(schema: &ResponseSchema, model: &ModelInfo) -> SchemaForm {
    if !model.capabilities.structured_output {
        return SchemaForm::Instruction(crate::structured::schema_instruction(schema.as_value()));
    }
    if needs_openapi_schema(model) {
        return SchemaForm::OpenApi(crate::structured::to_gemini_schema(schema.as_value()));
    }
    let mut v = crate::structured::wire_schema(schema.as_value()).into_owned();
    if let Some(m) = v.as_object_mut() {
        m.remove("$schema");
    }
    SchemaForm::Json(v)
}

// ---------------------------------------------------------------------------
// Building
// ---------------------------------------------------------------------------

/// A file's contribution: base64 bytes (PDF, image) or text.
#[derive(Debug, Clone)]
struct FileData {
    kind: FileKind,
    data: Arc<str>,
}

fn load_file(job_id: &str, path: &Path) -> Result<FileData> {
    let field = |e: Error| Error::job_field(job_id, "file", e);
    let kind = files::file_kind(path).map_err(field)?;
    let data: String = match kind {
        FileKind::Pdf | FileKind::Image(_) => {
            base64::engine::general_purpose::STANDARD.encode(files::read(path).map_err(field)?)
        }
        FileKind::Text | FileKind::Docx => {
            let text = files::document_text(path, kind).map_err(field)?;
            format!("Document: {}\n\n{text}", files::file_name(path))
        }
    };
    Ok(FileData {
        kind,
        data: Arc::from(data),
    })
}

/// Writes the requests of one model's jobs. It keeps the prepared form of
/// the last schema and the encoded last file it saw, so jobs sharing them
/// (the usual case: batch defaults, many questions about one document) do
/// the work once.
#[derive(Debug)]
pub struct RequestWriter {
    model: Arc<ModelInfo>,
    schema: Option<(ResponseSchema, SchemaForm)>,
    file: Option<(PathBuf, FileData)>,
}

impl RequestWriter {
    /// The model the writer writes requests for.
    pub fn model(&self) -> &Arc<ModelInfo> {
        &self.model
    }

    /// A writer for jobs of `model`.
    pub fn new(model: Arc<ModelInfo>) -> Self {
        RequestWriter {
            model,
            schema: None,
            file: None,
        }
    }

    fn file_data(&mut self, job_id: &str, path: &Path) -> Result<FileData> {
        if let Some((p, d)) = &self.file {
            if p == path {
                return Ok(d.clone());
            }
        }
        let d = load_file(job_id, path)?;
        self.file = Some((path.to_path_buf(), d.clone()));
        Ok(d)
    }

    /// Appends the job's `GenerateContentRequest` to `out`.
    pub fn write_request(&mut self, job: &Job, out: &mut Vec<u8>) -> Result<()> {
        let id = job.id_str();
        if let Some(schema) = &job.response_schema {
            if self.schema.as_ref().map(|(s, _)| s) != Some(schema) {
                let form = prepare_schema(schema, &self.model);
                self.schema = Some((schema.clone(), form));
            }
        }
        let file = match &job.file {
            Some(path) => Some(self.file_data(id, path)?),
            None => None,
        };
        let model = &*self.model;
        let form = job
            .response_schema
            .as_ref()
            .and(self.schema.as_ref().map(|(_, f)| f));

        let mut system: Vec<&str> = Vec::new();
        if let Some(SchemaForm::Instruction(text)) = form {
            system.push(text);
        }
        let mut contents: Vec<Content<'_>> = Vec::new();
        if let Some(msgs) = &job.messages {
            for m in msgs {
                let role = match m.role {
                    Role::System => {
                        system.push(&m.content);
                        continue;
                    }
                    Role::User => "user",
                    Role::Assistant => "model",
                };
                contents.push(Content {
                    role: Some(role),
                    parts: vec![Part::Text {
                        text: Cow::Borrowed(&m.content),
                    }],
                });
            }
        } else if let Some(prompt) = &job.prompt {
            let mut parts = Vec::with_capacity(2);
            if let Some(f) = &file {
                parts.push(match f.kind {
                    FileKind::Pdf => Part::Inline {
                        inline_data: Blob {
                            mime_type: "application/pdf",
                            data: &f.data,
                        },
                    },
                    FileKind::Image(media_type) => {
                        if !IMAGE_TYPES.contains(&media_type) {
                            return Err(Error::job_field(
                                id,
                                "file",
                                format!("Gemini reads PNG, JPEG and WebP images, not {media_type}; convert the image"),
                            ));
                        }
                        Part::Inline {
                            inline_data: Blob {
                                mime_type: media_type,
                                data: &f.data,
                            },
                        }
                    }
                    FileKind::Text | FileKind::Docx => Part::Text {
                        text: Cow::Borrowed(&f.data),
                    },
                });
            }
            parts.push(Part::Text {
                text: Cow::Borrowed(prompt),
            });
            contents.push(Content {
                role: Some("user"),
                parts,
            });
        }
        if contents.is_empty() {
            return Err(Error::job_field(
                id,
                "messages",
                "nothing to send: add a user message or a prompt",
            ));
        }
        let (response_schema, response_json_schema) = match form {
            Some(SchemaForm::OpenApi(s)) => (Some(s), None),
            Some(SchemaForm::Json(s)) => (None, Some(s)),
            _ => (None, None),
        };
        let request = GenerateContentRequest {
            contents,
            system_instruction: (!system.is_empty()).then(|| Content {
                role: None,
                parts: vec![Part::Text {
                    text: Cow::Owned(system.join("\n\n")),
                }],
            }),
            generation_config: GenerationConfig {
                max_output_tokens: job.max_tokens_or_default(),
                temperature: job.temperature.filter(|_| model.capabilities.temperature),
                response_mime_type: (response_schema.is_some() || response_json_schema.is_some())
                    .then_some("application/json"),
                response_schema,
                response_json_schema,
            },
        };
        serde_json::to_writer(&mut *out, &request)
            .map_err(|e| Error::job_field(id, "request", format!("cannot encode: {e}")))
    }

    /// Appends the job's inline entry `{"request":...,"metadata":{"key":id}}`.
    pub fn write_inline_entry(&mut self, job: &Job, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(b"{\"request\":");
        self.write_request(job, out)?;
        out.extend_from_slice(b",\"metadata\":{\"key\":");
        write_key(job, out)?;
        out.extend_from_slice(b"}}");
        Ok(())
    }

    /// Appends the job's input-file line `{"key":id,"request":...}\n`.
    pub fn write_file_line(&mut self, job: &Job, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(b"{\"key\":");
        write_key(job, out)?;
        out.extend_from_slice(b",\"request\":");
        self.write_request(job, out)?;
        out.extend_from_slice(b"}\n");
        Ok(())
    }
}

fn write_key(job: &Job, out: &mut Vec<u8>) -> Result<()> {
    serde_json::to_writer(&mut *out, job.id_str())
        .map_err(|e| Error::job_field(job.id_str(), "id", format!("cannot encode: {e}")))
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

    fn request(job: &Job, m: &str) -> Value {
        let mut w = RequestWriter::new(model(m));
        let mut out = Vec::new();
        w.write_request(job, &mut out).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn chat_roles_and_settings() {
        let job = Job::messages(vec![
            Message::system("Be brief."),
            Message::user("Hi"),
            Message::assistant("Hello"),
            Message::user("Bye"),
        ])
        .id("c1")
        .model("gemini-2.5-flash")
        .temperature(0.3)
        .max_tokens(77);
        let v = request(&job, "gemini-2.5-flash");
        assert_eq!(
            v,
            json!({
                "contents": [
                    {"role": "user", "parts": [{"text": "Hi"}]},
                    {"role": "model", "parts": [{"text": "Hello"}]},
                    {"role": "user", "parts": [{"text": "Bye"}]},
                ],
                "systemInstruction": {"parts": [{"text": "Be brief."}]},
                "generationConfig": {"maxOutputTokens": 77, "temperature": 0.3},
            })
        );
    }

    #[test]
    fn entries_and_lines_are_keyed() {
        let job = Job::prompt("Hi").id("k-1").model("gemini-2.5-flash");
        let mut w = RequestWriter::new(model("gemini-2.5-flash"));
        let mut inline = Vec::new();
        w.write_inline_entry(&job, &mut inline).unwrap();
        let v: Value = serde_json::from_slice(&inline).unwrap();
        assert_eq!(v["metadata"], json!({"key": "k-1"}));
        assert_eq!(v["request"]["contents"][0]["parts"][0]["text"], "Hi");
        let mut line = Vec::new();
        w.write_file_line(&job, &mut line).unwrap();
        assert_eq!(line.last(), Some(&b'\n'));
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["key"], "k-1");
        assert_eq!(v["request"]["generationConfig"]["maxOutputTokens"], 1024);
        let mut body = inline_body_prefix("batchata-run_1-b0");
        body.extend_from_slice(&inline);
        body.extend_from_slice(INLINE_BODY_SUFFIX);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["batch"]["displayName"], "batchata-run_1-b0");
        assert_eq!(
            v["batch"]["inputConfig"]["requests"]["requests"][0]["metadata"]["key"],
            "k-1"
        );
    }

    #[test]
    fn schema_forms_follow_the_model() {
        let schema = ResponseSchema::from_value(json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {"total": {"type": ["number", "null"]}},
            "required": ["total"]
        }))
        .unwrap();
        let job = Job::prompt("x").id("s").response_schema(schema);
        let v = request(&job, "gemini-2.5-flash");
        let g = &v["generationConfig"];
        assert_eq!(g["responseMimeType"], "application/json");
        assert!(g.get("responseSchema").is_none());
        assert_eq!(
            g["responseJsonSchema"],
            json!({"type": "object", "properties": {"total": {"type": ["number", "null"]}}, "required": ["total"]})
        );
        let v = request(&job, "gemini-2.0-flash");
        let g = &v["generationConfig"];
        assert!(g.get("responseJsonSchema").is_none());
        assert_eq!(g["responseSchema"]["type"], "OBJECT");
        assert_eq!(g["responseSchema"]["properties"]["total"]["type"], "NUMBER");
        assert_eq!(g["responseSchema"]["properties"]["total"]["nullable"], true);
    }

    #[test]
    fn files_become_parts() {
        let dir = tempfile::tempdir().unwrap();
        let pdf = dir.path().join("a.pdf");
        std::fs::write(&pdf, crate::fixtures::pdf(&["Total 9"]).unwrap()).unwrap();
        let png = dir.path().join("a.png");
        std::fs::write(&png, [0x89, b'P', b'N', b'G']).unwrap();
        let gif = dir.path().join("a.gif");
        std::fs::write(&gif, b"GIF89a").unwrap();
        let txt = dir.path().join("n.md");
        std::fs::write(&txt, "# Note").unwrap();
        let b64 =
            |p: &Path| base64::engine::general_purpose::STANDARD.encode(std::fs::read(p).unwrap());

        let v = request(&Job::file(&pdf, "Total?").id("p"), "gemini-2.5-flash");
        assert_eq!(
            v["contents"][0]["parts"],
            json!([{"inlineData": {"mimeType": "application/pdf", "data": b64(&pdf)}}, {"text": "Total?"}])
        );
        let v = request(&Job::file(&png, "What?").id("i"), "gemini-2.5-flash");
        assert_eq!(
            v["contents"][0]["parts"][0]["inlineData"]["mimeType"],
            "image/png"
        );
        let v = request(&Job::file(&txt, "Sum").id("t"), "gemini-2.5-flash");
        assert_eq!(
            v["contents"][0]["parts"][0]["text"],
            "Document: n.md\n\n# Note"
        );
        let mut w = RequestWriter::new(model("gemini-2.5-flash"));
        let e = w
            .write_request(&Job::file(&gif, "x").id("g"), &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("job 'g'") && e.contains("image/gif"), "{e}");
    }
}
