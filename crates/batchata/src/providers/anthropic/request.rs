//! Building Anthropic Message Batches create bodies from jobs.
//!
//! One `{"custom_id", "params"}` entry per job, serialized from typed wire
//! structs straight into the body buffer — no JSON tree per job. System
//! messages are lifted to `system`; a file becomes a `document` (PDF as
//! base64, text-like files and DOCX text as a text source) or an `image`
//! block, placed before the prompt; citations turn on per document with the
//! file name as its title.
//!
//! Structured output follows [`structured::anthropic_output`]: the model's
//! native `output_config.format` where the catalog says it has one, a forced
//! tool for older models, and the schema as a system instruction whenever
//! the job wants citations (Anthropic answers with both JSON and citations
//! only in plain text).
//!
//! A batch often repeats the same file (many questions about one PDF) and
//! the same schema: each distinct file is read and base64-encoded once per
//! body, and each distinct schema prepared once, so building 100,000 entries
//! costs little beyond writing them. Encoded files are kept only while later
//! jobs still need them. The writer borrows no job beyond the one it is
//! writing, so jobs can be read one at a time ([`crate::providers::JobSource`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;

use crate::catalog::ModelInfo;
use crate::error::{Error, Result};
use crate::files::{self, FileKind};
use crate::job::{Job, Message, ResponseSchema, Role};
use crate::structured::{self, AnthropicOutput};

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

// ---------------------------------------------------------------------------
// Wire types of one create-body entry
// ---------------------------------------------------------------------------

/// One entry, as serde would write it: what [`write_entry`] writes by hand.
#[cfg(test)]
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
    #[serde(flatten)]
    rest: Rest<'a>,
}

/// The optional parameters, after the messages.
#[derive(Serialize)]
struct Rest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_config: Option<OutputConfig<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<[&'a Value; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ToolChoice>,
}

#[derive(Serialize)]
struct OutputConfig<'a> {
    format: OutputFormat<'a>,
}

#[derive(Serialize)]
struct OutputFormat<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    schema: &'a Value,
}

#[derive(Serialize)]
struct ToolChoice {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'static str,
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
    Blocks(Vec<Block<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Text {
        text: &'a str,
    },
    Document {
        source: Source<'a>,
        title: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        citations: Option<CitationsFlag>,
    },
    Image {
        source: Source<'a>,
    },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Source<'a> {
    Base64 {
        media_type: &'static str,
        data: &'a str,
    },
    Text {
        media_type: &'static str,
        data: &'a str,
    },
}

#[derive(Serialize)]
struct CitationsFlag {
    enabled: bool,
}

// ---------------------------------------------------------------------------
// Per-body caches
// ---------------------------------------------------------------------------

/// A file's contribution to a request: base64 bytes or extracted text.
#[derive(Clone)]
struct FileData {
    kind: FileKind,
    /// Base64 for PDFs and images, plain text for text-like files and DOCX.
    data: Arc<str>,
}

/// Most bytes of files a writer that does not know the body's file uses
/// ([`FileUses::Unknown`]) keeps loaded.
const UNKNOWN_USES_CACHE_BYTES: usize = 64 << 20;

/// How many jobs of a body use each file, when known.
#[derive(Debug, Clone, Default)]
pub enum FileUses {
    /// Counted before writing: each file used more than once is kept exactly
    /// until its last use.
    Counted(HashMap<PathBuf, usize>),
    /// Not counted (the jobs are read once, as they are written): every file
    /// loaded is kept, up to 64 MB of them.
    #[default]
    Unknown,
}

impl FileUses {
    /// Counts the file uses of `jobs`.
    pub fn of<'j>(jobs: impl IntoIterator<Item = &'j Job>) -> Self {
        let mut uses = FileUses::Counted(HashMap::new());
        for job in jobs {
            uses.count(job);
        }
        uses
    }

    /// Counts one more job's file (a no-op for [`FileUses::Unknown`]).
    pub fn count(&mut self, job: &Job) {
        if let (FileUses::Counted(m), Some(p)) = (self, &job.file) {
            *m.entry(p.clone()).or_default() += 1;
        }
    }
}

/// Reads each file once; keeps it while later jobs of the body still use it.
#[derive(Default)]
struct FileCache {
    /// Uses not yet written, for files used more than once.
    remaining: HashMap<PathBuf, usize>,
    loaded: HashMap<PathBuf, FileData>,
    /// Uses were not counted: keep what is loaded, within a byte budget.
    uncounted: bool,
    loaded_bytes: usize,
}

impl FileCache {
    fn new(uses: FileUses) -> Self {
        match uses {
            FileUses::Counted(mut remaining) => {
                remaining.retain(|_, n| *n > 1);
                FileCache {
                    remaining,
                    ..Default::default()
                }
            }
            FileUses::Unknown => FileCache {
                uncounted: true,
                ..Default::default()
            },
        }
    }

    fn get(&mut self, job_id: &str, path: &Path) -> Result<FileData> {
        if self.uncounted {
            if let Some(d) = self.loaded.get(path) {
                return Ok(d.clone());
            }
            let d = load_file(job_id, path)?;
            if self.loaded_bytes + d.data.len() <= UNKNOWN_USES_CACHE_BYTES {
                self.loaded_bytes += d.data.len();
                self.loaded.insert(path.to_path_buf(), d.clone());
            }
            return Ok(d);
        }
        let Some(left) = self.remaining.get_mut(path) else {
            return load_file(job_id, path);
        };
        *left -= 1;
        let last_use = *left == 0;
        let data = match self.loaded.get(path) {
            Some(d) => d.clone(),
            None => {
                let d = load_file(job_id, path)?;
                self.loaded.insert(path.to_path_buf(), d.clone());
                d
            }
        };
        if last_use {
            self.remaining.remove(path);
            self.loaded.remove(path);
        }
        Ok(data)
    }
}

fn load_file(job_id: &str, path: &Path) -> Result<FileData> {
    let field = |e: Error| Error::job_field(job_id, "file", e);
    // The kind (and an image's media type) comes from the bytes.
    let file = files::load(path).map_err(field)?;
    let data: String = match file.kind {
        FileKind::Pdf | FileKind::Image(_) => {
            base64::engine::general_purpose::STANDARD.encode(&file.bytes)
        }
        FileKind::Text | FileKind::Docx => file.text(path).map_err(field)?,
    };
    Ok(FileData {
        kind: file.kind,
        data: Arc::from(data),
    })
}

/// A schema in the form one output mode sends it.
enum Prepared {
    /// `output_config.format.schema`.
    Native(Value),
    /// The forced tool's definition.
    Tool(Value),
    /// The system instruction.
    Instruction(String),
}

/// Prepares each distinct (schema, mode) once per body.
#[derive(Default)]
struct SchemaCache {
    entries: Vec<(ResponseSchema, AnthropicOutput, Arc<Prepared>)>,
}

/// Distinct schemas remembered per body; past this the oldest is forgotten.
const SCHEMA_CACHE_SIZE: usize = 16;

impl SchemaCache {
    fn get(&mut self, schema: &ResponseSchema, mode: AnthropicOutput) -> Arc<Prepared> {
        if let Some((_, _, p)) = self
            .entries
            .iter()
            .find(|(s, m, _)| *m == mode && s == schema)
        {
            return Arc::clone(p);
        }
        let schema_value = schema.as_value();
        let prepared = Arc::new(match mode {
            AnthropicOutput::Native => {
                Prepared::Native(structured::to_anthropic_schema(schema_value))
            }
            AnthropicOutput::ForcedTool => Prepared::Tool(structured::anthropic_tool(schema_value)),
            AnthropicOutput::Instruction => {
                Prepared::Instruction(structured::schema_instruction(schema_value))
            }
        });
        if self.entries.len() >= SCHEMA_CACHE_SIZE {
            self.entries.remove(0);
        }
        self.entries
            .push((schema.clone(), mode, Arc::clone(&prepared)));
        prepared
    }
}

// ---------------------------------------------------------------------------
// Building
// ---------------------------------------------------------------------------

/// How a job asks for a structured answer, if it has a schema.
pub fn output_mode(job: &Job, model: &ModelInfo) -> Option<AnthropicOutput> {
    job.response_schema
        .as_ref()
        .map(|_| structured::anthropic_output(model, job.enable_citations))
}

/// The model id a request carries: the job's own, as written.
fn wire_model<'a>(job: &'a Job, model: &'a ModelInfo) -> &'a str {
    match job.model.as_deref() {
        Some(m) if !m.is_empty() => m,
        _ => &model.name,
    }
}

/// Size of the pieces a streamed create body is sent in.
pub const CHUNK_BYTES: usize = 256 * 1024;

/// Writes create bodies (`{"requests":[...]}`) for a batch of jobs, whole
/// or in pieces ([`BodyWriter::take`]).
pub struct BodyWriter {
    out: Vec<u8>,
    taken: u64,
    requests: usize,
    files: FileCache,
    schemas: SchemaCache,
}

impl BodyWriter {
    /// A writer for `jobs` (scanned once to find files used more than once)
    /// that keeps the whole body.
    pub fn new(jobs: &[Job]) -> Self {
        // Sized from the prompts so a 10k-job body is allocated once rather
        // than doubled (and copied) on the way.
        let text: usize = jobs
            .iter()
            .map(|j| {
                j.prompt.as_ref().map_or(0, |p| p.len())
                    + j.messages
                        .as_ref()
                        .map_or(0, |m| m.iter().map(|m| m.content.len() + 32).sum())
            })
            .sum();
        let estimate = text.saturating_add(jobs.len().saturating_mul(512));
        Self::with_capacity(FileUses::of(jobs), estimate.min(256 << 20) + 16)
    }

    /// A writer whose bytes are taken out as they are written
    /// ([`BodyWriter::take`]), a piece at a time in memory, for jobs that
    /// come one at a time, given how many of them use each file (or that it
    /// is not known).
    pub fn streaming_with(uses: FileUses) -> Self {
        Self::with_capacity(uses, CHUNK_BYTES * 2)
    }

    fn with_capacity(uses: FileUses, capacity: usize) -> Self {
        let mut out = Vec::with_capacity(capacity);
        out.extend_from_slice(b"{\"requests\":[");
        BodyWriter {
            out,
            taken: 0,
            requests: 0,
            files: FileCache::new(uses),
            schemas: SchemaCache::default(),
        }
    }

    /// Bytes written so far (taken or not).
    pub fn len(&self) -> usize {
        self.taken as usize + self.out.len()
    }

    /// Bytes written and not yet taken.
    pub fn buffered(&self) -> usize {
        self.out.len()
    }

    /// Takes the bytes written since the last take.
    pub fn take(&mut self) -> Vec<u8> {
        self.taken += self.out.len() as u64;
        std::mem::replace(&mut self.out, Vec::with_capacity(CHUNK_BYTES * 2))
    }

    /// Appends the entry of one job (one of the jobs the writer's file uses
    /// were counted from).
    pub fn push(&mut self, job: &Job, model: &ModelInfo) -> Result<()> {
        if self.requests > 0 {
            self.out.push(b',');
        }
        self.requests += 1;
        let id = job.id_str();
        let mut system_parts: Vec<&str> = Vec::new();
        let mut messages: Vec<WireMessage<'_>> = Vec::new();
        let file: Option<FileData> = match &job.file {
            Some(path) => Some(self.files.get(id, path)?),
            None => None,
        };
        let title = job.file.as_deref().map(files::file_name);
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
            let content = match &file {
                Some(f) => {
                    let citations = job
                        .enable_citations
                        .then_some(CitationsFlag { enabled: true });
                    let title = title.as_deref().unwrap_or_default();
                    let block = match f.kind {
                        FileKind::Pdf => Block::Document {
                            source: Source::Base64 {
                                media_type: "application/pdf",
                                data: &f.data,
                            },
                            title,
                            citations,
                        },
                        FileKind::Text | FileKind::Docx => Block::Document {
                            source: Source::Text {
                                media_type: "text/plain",
                                data: &f.data,
                            },
                            title,
                            citations,
                        },
                        FileKind::Image(media_type) => Block::Image {
                            source: Source::Base64 {
                                media_type,
                                data: &f.data,
                            },
                        },
                    };
                    Content::Blocks(vec![block, Block::Text { text: prompt }])
                }
                None => Content::Text(prompt),
            };
            messages.push(WireMessage {
                role: "user",
                content,
            });
        }
        if messages.is_empty() {
            return Err(Error::job_field(
                id,
                "messages",
                "nothing to send: add a user message or a prompt",
            ));
        }

        let prepared = match (&job.response_schema, output_mode(job, model)) {
            (Some(schema), Some(mode)) => Some(self.schemas.get(schema, mode)),
            _ => None,
        };
        let mut output_config = None;
        let mut tools = None;
        let mut tool_choice = None;
        let mut instruction: Option<&str> = None;
        match prepared.as_deref() {
            Some(Prepared::Native(schema)) => {
                output_config = Some(OutputConfig {
                    format: OutputFormat {
                        kind: "json_schema",
                        schema,
                    },
                })
            }
            Some(Prepared::Tool(tool)) => {
                tools = Some([tool]);
                tool_choice = Some(ToolChoice {
                    kind: "tool",
                    name: structured::ANTHROPIC_TOOL_NAME,
                });
            }
            Some(Prepared::Instruction(text)) => instruction = Some(text),
            None => {}
        }
        // The schema instruction comes first, then the job's own system text.
        let system = match (instruction, system_parts.is_empty()) {
            (None, true) => None,
            (None, false) => Some(system_parts.join("\n\n")),
            (Some(i), true) => Some(i.to_string()),
            (Some(i), false) => Some(format!("{i}\n\n{}", system_parts.join("\n\n"))),
        };

        let params = Params {
            // Exactly the id the user wrote: an alias (a dated snapshot)
            // is only for catalog look-ups, never rewritten on the wire.
            model: wire_model(job, model),
            max_tokens: job.max_tokens_or_default(),
            messages,
            rest: Rest {
                system,
                temperature: job.temperature.filter(|_| model.capabilities.temperature),
                output_config,
                tools,
                tool_choice,
            },
        };
        write_entry(&mut self.out, id, &params)
            .map_err(|e| Error::job_field(id, "request", format!("cannot encode: {e}")))
    }

    /// Closes the body and returns it.
    pub fn finish(mut self) -> Vec<u8> {
        self.out.extend_from_slice(b"]}");
        self.out
    }
}

/// Appends one entry `{"custom_id":..,"params":{..}}`, the bytes serde
/// writes for it (tested), with the prompts' text escaped faster: the
/// model, `max_tokens` and messages by hand, the optional rest by serde.
fn write_entry(out: &mut Vec<u8>, custom_id: &str, p: &Params<'_>) -> serde_json::Result<()> {
    use crate::json_out::{write_str, write_value};
    out.extend_from_slice(b"{\"custom_id\":");
    write_str(out, custom_id);
    out.extend_from_slice(b",\"params\":{\"model\":");
    write_str(out, p.model);
    out.extend_from_slice(b",\"max_tokens\":");
    write_value(out, &p.max_tokens)?;
    out.extend_from_slice(b",\"messages\":[");
    for (i, m) in p.messages.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"role\":");
        write_str(out, m.role);
        out.extend_from_slice(b",\"content\":");
        match &m.content {
            Content::Text(text) => write_str(out, text),
            Content::Blocks(blocks) => write_value(out, blocks)?,
        }
        out.push(b'}');
    }
    out.push(b']');
    // `{"system":..,..}` joins the object as `,"system":..,..`; `{}` adds nothing.
    let rest = out.len();
    write_value(out, &p.rest)?;
    if out.len() - rest > 2 {
        out[rest] = b',';
        out.pop();
    } else {
        out.truncate(rest);
    }
    out.extend_from_slice(b"}}");
    Ok(())
}

/// The whole create body `{"requests":[...]}` for `jobs`, with no size limit.
pub fn build_body(
    jobs: &[Job],
    model_of: impl Fn(&Job) -> Result<Arc<ModelInfo>>,
) -> Result<Vec<u8>> {
    build_body_within(jobs, model_of, u64::MAX)
}

/// The whole create body `{"requests":[...]}` for `jobs`, refused with
/// [`Error::BatchSubmission`] as soon as it grows past `max_bytes`.
pub fn build_body_within(
    jobs: &[Job],
    model_of: impl Fn(&Job) -> Result<Arc<ModelInfo>>,
    max_bytes: u64,
) -> Result<Vec<u8>> {
    let mut w = BodyWriter::new(jobs);
    write_entries(&mut w, jobs, model_of, max_bytes, |_| {})?;
    Ok(w.finish())
}

fn write_entries(
    w: &mut BodyWriter,
    jobs: &[Job],
    model_of: impl Fn(&Job) -> Result<Arc<ModelInfo>>,
    max_bytes: u64,
    mut after_each: impl FnMut(&mut BodyWriter),
) -> Result<()> {
    for (i, job) in jobs.iter().enumerate() {
        let model = model_of(job)?;
        w.push(job, &model)?;
        check_within(w, i + 1, jobs.len(), max_bytes)?;
        after_each(w);
    }
    Ok(())
}

/// Refuses a body that, after `written` of its `total` requests, would pass
/// `max_bytes` once closed.
pub fn check_within(w: &BodyWriter, written: usize, total: usize, max_bytes: u64) -> Result<()> {
    if w.len() as u64 + 2 > max_bytes {
        return Err(Error::BatchSubmission(format!(
            "the request body passes {} after {} of its {} requests; Anthropic takes at most {} per batch — lower items_per_batch (or send smaller files)",
            human_bytes(w.len() as u64),
            written,
            total,
            human_bytes(max_bytes),
        )));
    }
    Ok(())
}

/// `256 MB`, `1.5 MB`, `900 KB`, `12 bytes`.
pub(crate) fn human_bytes(n: u64) -> String {
    if n >= 1_000_000 {
        let mb = n as f64 / 1_000_000.0;
        if mb.fract() == 0.0 || mb >= 100.0 {
            format!("{mb:.0} MB")
        } else {
            format!("{mb:.1} MB")
        }
    } else if n >= 1_000 {
        format!("{} KB", n / 1_000)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::job::ResponseSchema;
    use serde_json::json;

    fn model(name: &str) -> Arc<ModelInfo> {
        Catalog::builtin().lookup(name).unwrap()
    }

    #[test]
    fn an_entry_written_by_hand_is_serde_s_byte_for_byte() {
        let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}}});
        let text = |role, t| WireMessage {
            role,
            content: Content::Text(t),
        };
        let cases = [
            Params {
                model: "claude-haiku-4-5",
                max_tokens: 256,
                messages: vec![text("user", "say \"hi\"\n\u{1} é")],
                rest: Rest {
                    system: None,
                    temperature: None,
                    output_config: None,
                    tools: None,
                    tool_choice: None,
                },
            },
            Params {
                model: "m",
                max_tokens: 1,
                messages: vec![
                    text("user", "q"),
                    text("assistant", "a"),
                    text("user", "b\\"),
                ],
                rest: Rest {
                    system: Some("be \"brief\"".into()),
                    temperature: Some(0.7),
                    output_config: Some(OutputConfig {
                        format: OutputFormat {
                            kind: "json_schema",
                            schema: &schema,
                        },
                    }),
                    tools: Some([&schema]),
                    tool_choice: Some(ToolChoice {
                        kind: "tool",
                        name: "x",
                    }),
                },
            },
            Params {
                model: "m",
                max_tokens: 9,
                messages: vec![WireMessage {
                    role: "user",
                    content: Content::Blocks(vec![
                        Block::Document {
                            source: Source::Text {
                                media_type: "text/plain",
                                data: "doc \"text\"",
                            },
                            title: "a.txt",
                            citations: Some(CitationsFlag { enabled: true }),
                        },
                        Block::Text { text: "summarise" },
                    ]),
                }],
                rest: Rest {
                    system: None,
                    temperature: Some(f64::NAN),
                    output_config: None,
                    tools: None,
                    tool_choice: None,
                },
            },
        ];
        for params in cases {
            let mut ours = Vec::new();
            write_entry(&mut ours, "id-1", &params).unwrap();
            let serde = serde_json::to_vec(&Entry {
                custom_id: "id-1",
                params,
            })
            .unwrap();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                String::from_utf8(serde).unwrap()
            );
        }
    }

    fn body(jobs: &[Job], model_name: &str) -> Value {
        let m = model(model_name);
        let bytes = build_body(jobs, |_| Ok(m.clone())).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn schema() -> ResponseSchema {
        ResponseSchema::from_value(json!({
            "type": "object",
            "properties": {"n": {"type": "integer"}},
            "required": ["n"]
        }))
        .unwrap()
    }

    #[test]
    fn system_messages_are_lifted_and_joined() {
        let job = Job::messages(vec![
            Message::system("Be brief."),
            Message::user("Hi"),
            Message::assistant("Hello."),
            Message::system("Be kind."),
            Message::user("Bye"),
        ])
        .id("c");
        let b = body(&[job], "claude-sonnet-4-5");
        let p = &b["requests"][0]["params"];
        assert_eq!(b["requests"][0]["custom_id"], "c");
        assert_eq!(p["system"], "Be brief.\n\nBe kind.");
        let roles: Vec<&str> = p["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(roles, ["user", "assistant", "user"]);
        assert!(p.get("output_config").is_none() && p.get("tools").is_none());
    }

    #[test]
    fn alternation_is_enforced_with_the_field_named() {
        let job = Job::messages(vec![Message::user("a"), Message::user("b")]).id("twice");
        let m = model("claude-sonnet-4-5");
        let e = build_body(&[job], |_| Ok(m.clone())).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("'twice'") && msg.contains("messages[1]") && msg.contains("merge"),
            "{msg}"
        );
    }

    #[test]
    fn schema_modes_follow_the_catalog_and_citations() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.txt");
        std::fs::write(&f, "n is 3.").unwrap();
        let native = Job::prompt("n?").id("n").response_schema(schema());
        let b = body(std::slice::from_ref(&native), "claude-sonnet-4-5");
        let p = &b["requests"][0]["params"];
        assert_eq!(p["output_config"]["format"]["type"], "json_schema");
        assert_eq!(
            p["output_config"]["format"]["schema"]["additionalProperties"],
            false
        );
        assert!(p.get("system").is_none() && p.get("tools").is_none());

        let b = body(&[native], "claude-sonnet-4-0");
        let p = &b["requests"][0]["params"];
        assert!(p.get("output_config").is_none());
        assert_eq!(p["tools"][0]["name"], structured::ANTHROPIC_TOOL_NAME);
        assert_eq!(
            p["tool_choice"],
            json!({"type": "tool", "name": structured::ANTHROPIC_TOOL_NAME})
        );

        let cited = Job::messages(vec![Message::system("Be exact."), Message::user("n?")])
            .id("m")
            .response_schema(schema());
        let cited = Job {
            enable_citations: true,
            ..cited
        };
        let b = body(&[cited], "claude-sonnet-4-5");
        let p = &b["requests"][0]["params"];
        assert!(p.get("output_config").is_none() && p.get("tools").is_none());
        let system = p["system"].as_str().unwrap();
        assert!(system.contains("JSON Schema"), "{system}");
        assert!(
            system.ends_with("\n\nBe exact."),
            "instruction first: {system}"
        );
    }

    #[test]
    fn temperature_only_where_the_model_takes_it() {
        let job = Job::prompt("hi").id("t").temperature(0.3).max_tokens(77);
        let b = body(std::slice::from_ref(&job), "claude-sonnet-4-5");
        assert_eq!(b["requests"][0]["params"]["temperature"], 0.3);
        assert_eq!(b["requests"][0]["params"]["max_tokens"], 77);
        let mut m = (*model("claude-sonnet-4-5")).clone();
        m.capabilities.temperature = false;
        let m = Arc::new(m);
        let bytes = build_body(&[job], |_| Ok(m.clone())).unwrap();
        let b: Value = serde_json::from_slice(&bytes).unwrap();
        assert!(b["requests"][0]["params"].get("temperature").is_none());
    }

    #[test]
    fn files_become_blocks_before_the_prompt_and_repeats_are_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let pdf = dir.path().join("r.pdf");
        std::fs::write(&pdf, crate::fixtures::pdf(&["Page one."]).unwrap()).unwrap();
        let png = dir.path().join("p.png");
        std::fs::write(&png, [0x89, b'P', b'N', b'G']).unwrap();
        let md = dir.path().join("n.md");
        std::fs::write(&md, "# Notes\nquote \"x\"").unwrap();
        let mut jobs: Vec<Job> = (0..3)
            .map(|i| {
                Job::file(&pdf, format!("Q{i}"))
                    .id(format!("p{i}"))
                    .citations(true)
            })
            .collect();
        jobs.push(Job::file(&png, "What?").id("img"));
        jobs.push(Job::file(&md, "Sum up").id("md"));
        let m = model("claude-sonnet-4-5");
        // The cache holds the PDF for its three uses, then lets it go.
        let mut w = BodyWriter::new(&jobs);
        for j in &jobs[..2] {
            w.push(j, &m).unwrap();
        }
        assert_eq!(w.files.loaded.len(), 1);
        // A file removed after its first read is still sent from the cache.
        std::fs::remove_file(&pdf).unwrap();
        for j in &jobs[2..] {
            w.push(j, &m).unwrap();
        }
        assert!(w.files.loaded.is_empty() && w.files.remaining.is_empty());
        let b: Value = serde_json::from_slice(&w.finish()).unwrap();
        let reqs = b["requests"].as_array().unwrap();
        assert_eq!(reqs.len(), 5);
        let expected_pdf = base64::engine::general_purpose::STANDARD
            .encode(crate::fixtures::pdf(&["Page one."]).unwrap());
        for r in &reqs[..3] {
            let c = &r["params"]["messages"][0]["content"];
            assert_eq!(
                c[0],
                json!({"type": "document",
                       "source": {"type": "base64", "media_type": "application/pdf", "data": expected_pdf},
                       "title": "r.pdf", "citations": {"enabled": true}})
            );
            assert_eq!(c[1]["type"], "text");
        }
        let img = &reqs[3]["params"]["messages"][0]["content"];
        assert_eq!(
            img[0],
            json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw=="}})
        );
        assert_eq!(img[1], json!({"type": "text", "text": "What?"}));
        let doc = &reqs[4]["params"]["messages"][0]["content"][0];
        assert_eq!(
            doc["source"],
            json!({"type": "text", "media_type": "text/plain", "data": "# Notes\nquote \"x\""})
        );
        assert!(doc.get("citations").is_none());
    }

    #[test]
    fn a_missing_file_names_the_job_and_field() {
        let job = Job::file("/nonexistent/dir/x.pdf", "Q").id("gone");
        let m = model("claude-sonnet-4-5");
        let e = build_body(&[job], |_| Ok(m.clone())).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("'gone'") && msg.contains("'file'") && msg.contains("x.pdf"),
            "{msg}"
        );
    }

    #[test]
    fn oversize_bodies_stop_early_with_advice() {
        let jobs: Vec<Job> = (0..50)
            .map(|i| Job::prompt("x".repeat(100)).id(format!("j{i}")))
            .collect();
        let m = model("claude-sonnet-4-5");
        let e = build_body_within(&jobs, |_| Ok(m.clone()), 1_000).unwrap_err();
        assert!(matches!(e, Error::BatchSubmission(_)));
        let msg = e.to_string();
        assert!(
            msg.contains("of its 50 requests") && msg.contains("items_per_batch"),
            "{msg}"
        );
        assert!(build_body_within(&jobs, |_| Ok(m.clone()), 100_000).is_ok());
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(256_000_000), "256 MB");
        assert_eq!(human_bytes(1_500_000), "1.5 MB");
        assert_eq!(human_bytes(900_000), "900 KB");
        assert_eq!(human_bytes(12), "12 bytes");
    }
}
