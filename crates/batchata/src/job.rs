//! `Job`: one request to a model, and the pieces it is made of.
//!
//! A job is either a chat (`messages`), a file plus a prompt, or a prompt
//! alone. Fields left empty are filled from the batch's default parameters
//! when the job is added; the merged job is what gets validated, persisted in
//! the state file and sent to the provider.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Who speaks in a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions for the model; lifted to the provider's system field where it has one.
    System,
    /// The person asking.
    User,
    /// The model's earlier turns.
    Assistant,
}

impl Role {
    /// The role's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who speaks.
    pub role: Role,
    /// What is said.
    pub content: String,
}

impl Message {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Message {
            role: Role::System,
            content: content.into(),
        }
    }
    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Message {
            role: Role::User,
            content: content.into(),
        }
    }
    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Message {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// A JSON Schema the model's answer must follow.
///
/// Built from a Rust type (`ResponseSchema::of::<T>()`, where `T` derives
/// `schemars::JsonSchema`) or from a raw JSON Schema value. It is stored as
/// plain JSON Schema so it survives the state file and a resume. Cloning
/// one is cheap: the jobs that use the same schema share one copy, and with
/// it the validator compiled the first time an answer is checked.
#[derive(Clone)]
pub struct ResponseSchema(Arc<SchemaData>);

/// A schema and, once an answer has been checked against it, its compiled
/// validator. The validator lives with the schema rather than in a global
/// cache: compiling costs far more than validating, and every job sharing
/// the schema (a batch's jobs read back from the state share one copy, see
/// [`SchemaInterner`]) reuses it, while nothing outlives the jobs.
struct SchemaData {
    value: serde_json::Value,
    validator: OnceLock<jsonschema::Validator>,
}

impl PartialEq for ResponseSchema {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.value == other.0.value
    }
}

impl std::fmt::Debug for ResponseSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ResponseSchema")
            .field(&self.0.value)
            .finish()
    }
}

impl Serialize for ResponseSchema {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.value.serialize(s)
    }
}

impl<'de> Deserialize<'de> for ResponseSchema {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        serde_json::Value::deserialize(d).map(ResponseSchema::new)
    }
}

/// Makes the jobs read back from the state file that carry equal schemas
/// share one copy: each job line holds its own, and a 10,000-job batch would
/// otherwise hold 10,000 parsed copies of the same schema. Keeps the last
/// few distinct schemas (jobs almost always share one or a handful).
#[derive(Debug, Default)]
pub(crate) struct SchemaInterner {
    seen: Vec<ResponseSchema>,
}

impl SchemaInterner {
    const KEEP: usize = 8;

    /// The shared copy of `schema`'s value, if one was seen; else `schema`,
    /// which is kept for the next ones.
    pub(crate) fn intern(&mut self, schema: ResponseSchema) -> ResponseSchema {
        if let Some(s) = self.seen.iter().find(|s| **s == schema) {
            return s.clone();
        }
        if self.seen.len() >= Self::KEEP {
            self.seen.remove(0);
        }
        self.seen.push(schema.clone());
        schema
    }

    /// Applies [`SchemaInterner::intern`] to a job's schema, if it has one.
    pub(crate) fn share(&mut self, job: &mut Job) {
        if let Some(s) = job.response_schema.take() {
            job.response_schema = Some(self.intern(s));
        }
    }
}

impl ResponseSchema {
    /// The schema of a Rust type.
    pub fn of<T: schemars::JsonSchema>() -> Self {
        let schema = schemars::schema_for!(T);
        ResponseSchema::new(schema.to_value())
    }

    /// A raw JSON Schema; it must be an object whose `type` (if any) is `object`
    /// or `array`, and it must compile as a JSON Schema.
    pub fn from_value(value: serde_json::Value) -> Result<Self> {
        let schema = ResponseSchema::new(value);
        schema.check()?;
        Ok(schema)
    }

    fn new(value: serde_json::Value) -> Self {
        ResponseSchema(Arc::new(SchemaData {
            value,
            validator: OnceLock::new(),
        }))
    }

    /// Checks that the schema is a usable JSON Schema for a structured answer.
    pub fn check(&self) -> Result<()> {
        if !self.0.value.is_object() {
            return Err(Error::Validation(
                "response_schema must be a JSON object (a JSON Schema such as {\"type\":\"object\",\"properties\":{...}})".into(),
            ));
        }
        self.validator().map_err(|e| {
            Error::Validation(format!(
                "response_schema is not a valid JSON Schema: {e}; fix the schema or generate it from a type with schemars"
            ))
        })?;
        Ok(())
    }

    /// The schema's compiled validator, compiled on first use and kept with
    /// the schema (so with every job sharing it); the compiler's complaint
    /// when it does not compile.
    pub(crate) fn validator(&self) -> std::result::Result<&jsonschema::Validator, String> {
        if let Some(v) = self.0.validator.get() {
            return Ok(v);
        }
        let compiled = jsonschema::validator_for(&self.0.value).map_err(|e| e.to_string())?;
        Ok(self.0.validator.get_or_init(|| compiled))
    }

    /// The schema as JSON.
    pub fn as_value(&self) -> &serde_json::Value {
        &self.0.value
    }

    /// A short name for the schema: its `title`, or "response".
    pub fn name(&self) -> String {
        let title = self
            .0
            .value
            .get("title")
            .and_then(|t| t.as_str())
            .unwrap_or("response");
        let clean: String = title
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect();
        if clean.is_empty() {
            "response".into()
        } else {
            clean
        }
    }
}

/// One request: what to ask, of which model, with which settings.
///
/// Build one with [`Job::prompt`], [`Job::messages`] or [`Job::file`], then
/// chain setters:
///
/// ```
/// use batchata::Job;
/// let job = Job::prompt("Summarise the French revolution in one line.")
///     .id("rev-1")
///     .model("claude-haiku-4-5")
///     .max_tokens(200);
/// assert_eq!(job.id.as_deref(), Some("rev-1"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The job's id; generated when absent. Must match `^[A-Za-z0-9_-]{1,64}$`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The model; from the defaults when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// A chat; exclusive with `file` and `prompt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<Message>>,
    /// A file to send with the prompt (PDF, text, image, DOCX).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// The prompt; required with a file, or alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Sampling temperature; only sent to models that take it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Most tokens to generate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// A JSON Schema the answer must follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_schema: Option<ResponseSchema>,
    /// Ask for citations into the file (Anthropic models).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enable_citations: bool,
    /// A hash of the resolved request (SHA-256 of the model, messages or
    /// prompt, the file's name and content, the parameters, the schema and
    /// citations), set by `Batch::add_job`; a value given here is replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

impl Job {
    /// A job that is a single prompt.
    pub fn prompt(prompt: impl Into<String>) -> Self {
        Job {
            prompt: Some(prompt.into()),
            ..Default::default()
        }
    }

    /// A job that is a chat.
    pub fn messages(messages: Vec<Message>) -> Self {
        Job {
            messages: Some(messages),
            ..Default::default()
        }
    }

    /// A job that sends a file with a prompt.
    pub fn file(path: impl AsRef<Path>, prompt: impl Into<String>) -> Self {
        Job {
            file: Some(path.as_ref().to_path_buf()),
            prompt: Some(prompt.into()),
            ..Default::default()
        }
    }

    /// Sets the id.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }
    /// Sets the model.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }
    /// Sets the temperature.
    pub fn temperature(mut self, t: f64) -> Self {
        self.temperature = Some(t);
        self
    }
    /// Sets the most tokens to generate.
    pub fn max_tokens(mut self, n: u32) -> Self {
        self.max_tokens = Some(n);
        self
    }
    /// Asks for an answer shaped like `T`.
    pub fn schema<T: schemars::JsonSchema>(mut self) -> Self {
        self.response_schema = Some(ResponseSchema::of::<T>());
        self
    }
    /// Asks for an answer following a schema.
    pub fn response_schema(mut self, schema: ResponseSchema) -> Self {
        self.response_schema = Some(schema);
        self
    }
    /// Turns citations on or off.
    pub fn citations(mut self, on: bool) -> Self {
        self.enable_citations = on;
        self
    }

    /// The job's id, or "" before one is assigned.
    pub fn id_str(&self) -> &str {
        self.id.as_deref().unwrap_or("")
    }

    /// How messages name the job: its id, or `(no id)` before one is given.
    pub fn label(&self) -> &str {
        self.id.as_deref().unwrap_or("(no id)")
    }

    /// The job's model, or "" before defaults are merged.
    pub fn model_name(&self) -> &str {
        self.model.as_deref().unwrap_or("")
    }

    /// The most tokens the job may generate (after defaults are merged).
    pub fn max_tokens_or_default(&self) -> u32 {
        self.max_tokens.unwrap_or(crate::batch::DEFAULT_MAX_TOKENS)
    }

    /// Appends the job's JSON, the bytes `serde_json::to_writer` writes for
    /// it (tested), with its strings escaped faster: the form a spool and a
    /// state journal keep a job in.
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        use crate::json_out::{key, write_str, write_value};
        // Every field named, so a new one cannot be left out unnoticed.
        let Job {
            id,
            model,
            messages,
            file,
            prompt,
            temperature,
            max_tokens,
            response_schema,
            enable_citations,
            fingerprint,
        } = self;
        let first = &mut true;
        out.push(b'{');
        if let Some(id) = id {
            key(out, first, "id");
            write_str(out, id);
        }
        if let Some(model) = model {
            key(out, first, "model");
            write_str(out, model);
        }
        if let Some(messages) = messages {
            key(out, first, "messages");
            write_messages(out, messages);
        }
        if let Some(file) = file {
            key(out, first, "file");
            write_value(out, file)?;
        }
        if let Some(prompt) = prompt {
            key(out, first, "prompt");
            write_str(out, prompt);
        }
        if let Some(t) = temperature {
            key(out, first, "temperature");
            write_value(out, t)?;
        }
        if let Some(n) = max_tokens {
            key(out, first, "max_tokens");
            write_value(out, n)?;
        }
        if let Some(schema) = response_schema {
            key(out, first, "response_schema");
            write_value(out, schema)?;
        }
        if *enable_citations {
            key(out, first, "enable_citations");
            out.extend_from_slice(b"true");
        }
        if let Some(f) = fingerprint {
            key(out, first, "fingerprint");
            write_str(out, f);
        }
        out.push(b'}');
        Ok(())
    }

    /// Checks the job's shape: exactly one of messages / file+prompt / prompt,
    /// well-formed messages, a valid id and a usable schema.
    pub fn check_shape(&self) -> Result<()> {
        let id = self.label();
        if let Some(id) = &self.id {
            check_id(id)?;
        }
        let has_msgs = self.messages.is_some();
        let has_file = self.file.is_some();
        let has_prompt = self.prompt.is_some();
        if has_msgs && (has_file || has_prompt) {
            return Err(Error::job_field(
                id,
                "messages",
                "give either messages, or a prompt (optionally with a file), not both",
            ));
        }
        if has_file && !has_prompt {
            return Err(Error::job_field(
                id,
                "prompt",
                "a file job needs a prompt saying what to do with the file",
            ));
        }
        if !has_msgs && !has_prompt {
            return Err(Error::job_field(
                id,
                "messages",
                "the job has nothing to ask: set messages, or a prompt (optionally with a file)",
            ));
        }
        if let Some(p) = &self.prompt {
            if p.trim().is_empty() {
                return Err(Error::job_field(id, "prompt", "the prompt is empty"));
            }
        }
        if let Some(msgs) = &self.messages {
            check_messages(id, msgs)?;
        }
        if let Some(s) = &self.response_schema {
            s.check()
                .map_err(|e| Error::job_field(id, "response_schema", e))?;
        }
        if let Some(t) = self.temperature {
            if !t.is_finite() || t < 0.0 {
                return Err(Error::job_field(
                    id,
                    "temperature",
                    format!("{t} is not a valid temperature; use a number from 0 upwards"),
                ));
            }
        }
        if self.max_tokens == Some(0) {
            return Err(Error::job_field(id, "max_tokens", "must be at least 1"));
        }
        if self.enable_citations && !has_file {
            return Err(Error::job_field(
                id,
                "enable_citations",
                "citations need a file to cite; add a file or turn citations off",
            ));
        }
        Ok(())
    }
}

fn check_messages(id: &str, msgs: &[Message]) -> Result<()> {
    if msgs.is_empty() {
        return Err(Error::job_field(
            id,
            "messages",
            "the list is empty; add at least one user message",
        ));
    }
    for (i, m) in msgs.iter().enumerate() {
        if m.content.trim().is_empty() {
            return Err(Error::job_field(
                id,
                &format!("messages[{i}].content"),
                "is empty; every message needs text",
            ));
        }
    }
    if !msgs.iter().any(|m| m.role == Role::User) {
        return Err(Error::job_field(
            id,
            "messages",
            "there is no user message; add one",
        ));
    }
    Ok(())
}

/// Checks a user-given job id against `^[A-Za-z0-9_-]{1,64}$`.
pub fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 64 {
        return Err(Error::Validation(format!(
            "job id '{id}' must be 1 to 64 characters long"
        )));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(Error::Validation(format!(
            "job id '{id}' contains '{c}'; use only letters, digits, '_' and '-' (ids become file names and provider custom_ids)"
        )));
    }
    Ok(())
}

/// Appends messages as the JSON array serde writes for them.
pub(crate) fn write_messages(out: &mut Vec<u8>, messages: &[Message]) {
    use crate::json_out::write_str;
    out.push(b'[');
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"role\":");
        write_str(out, m.role.as_str());
        out.extend_from_slice(b",\"content\":");
        write_str(out, &m.content);
        out.push(b'}');
    }
    out.push(b']');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_s_hand_written_json_is_serde_s_byte_for_byte() {
        let schema = ResponseSchema::from_value(serde_json::json!({
            "type": "object",
            "properties": {"a": {"type": "string"}}
        }))
        .unwrap();
        let jobs = [
            Job::default(),
            Job::prompt("say \"hi\"\n\tand \u{1} é \u{1F600}").id("j1"),
            Job::messages(vec![
                Message::system("be brief"),
                Message::user("q \\ \r"),
                Message::assistant("a"),
            ])
            .model("m")
            .temperature(0.7)
            .max_tokens(5),
            Job {
                fingerprint: Some("0123456789abcdef0123456789abcdef".into()),
                enable_citations: true,
                response_schema: Some(schema),
                temperature: Some(f64::NAN),
                ..Job::file("dir/a \"b\".pdf", "summarise").id("f")
            },
        ];
        for job in jobs {
            let mut ours = Vec::new();
            job.write_json(&mut ours).unwrap();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(&job).unwrap()
            );
        }
    }
}
