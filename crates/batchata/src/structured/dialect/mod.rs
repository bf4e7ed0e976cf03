//! Each provider's dialect of a job's schema, and the wrapping they share.
//!
//! Providers' structured output wants an object at the schema's root, so a
//! schema whose root is anything else travels wrapped ([`wire_schema`]) and
//! its answer is unwrapped again before validation. Beyond that each
//! provider reads a different subset of JSON Schema:
//!
//! * `strict.rs` — OpenAI's strict mode and Anthropic's native JSON output,
//!   both closed-object subsets produced by one keyword walk with a table
//!   per provider;
//! * `gemini.rs` — Gemini's OpenAPI 3.0 `responseSchema` subset;
//! * this file — how an Anthropic request asks for JSON at all (native
//!   output, a forced tool, or an instruction) and the pieces each way needs.

mod gemini;
mod strict;

use serde_json::{json, Map, Value};

use super::is_object_root;
use crate::catalog::ModelInfo;

pub use gemini::to_gemini_schema;
pub use strict::{openai_strict_problems, to_anthropic_schema, to_openai_strict};

/// How an Anthropic request asks for a structured answer; see the module
/// documentation for why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnthropicOutput {
    /// `output_config: {"format": {"type": "json_schema", "schema":
    /// to_anthropic_schema(..)}}`; the answer is JSON in a text block.
    Native,
    /// `tools: [anthropic_tool(..)]`, `tool_choice: {"type": "tool", "name":
    /// ANTHROPIC_TOOL_NAME}`; the answer is the `tool_use` block's `input`
    /// (pass it through [`from_anthropic_tool_input`]).
    ForcedTool,
    /// `system: schema_instruction(..)` (before any system text of the job);
    /// the answer is JSON in the text, with its citations.
    Instruction,
}

/// Picks how to ask `model` for a structured answer: native JSON output where
/// the model has it, a forced tool where it does not, and the schema as an
/// instruction whenever the job wants citations (the only form Anthropic
/// answers with both JSON and citations).
pub fn anthropic_output(model: &ModelInfo, citations: bool) -> AnthropicOutput {
    if citations {
        AnthropicOutput::Instruction
    } else if model.capabilities.structured_output {
        AnthropicOutput::Native
    } else {
        AnthropicOutput::ForcedTool
    }
}

/// Name of the tool a forced-tool request defines.
pub const ANTHROPIC_TOOL_NAME: &str = "respond_with_json";

/// The tool definition for [`AnthropicOutput::ForcedTool`]. A tool's
/// `input_schema` must describe an object, so a schema whose root is not an
/// object is wrapped as `{"value": <schema>}` (undone by
/// [`from_anthropic_tool_input`]).
pub fn anthropic_tool(schema: &Value) -> Value {
    let mut input_schema = wire_schema(schema).into_owned();
    if let Some(m) = input_schema.as_object_mut() {
        m.remove("$schema");
    }
    json!({
        "name": ANTHROPIC_TOOL_NAME,
        "description": "Give the answer as this tool's input; it must follow the input schema exactly.",
        "input_schema": input_schema,
    })
}

/// The structured answer in a forced tool's `input`, unwrapped again when
/// [`anthropic_tool`] had to wrap a non-object schema.
pub fn from_anthropic_tool_input(input: Value, schema: &Value) -> Value {
    if is_object_root(schema) {
        return input;
    }
    match input {
        Value::Object(mut m) if m.len() == 1 && m.contains_key("value") => {
            m.remove("value").unwrap_or(Value::Null)
        }
        other => other,
    }
}

/// The key a non-object schema is wrapped under on the wire.
pub const WRAPPER_KEY: &str = "value";

/// The schema as it is sent to any provider. Providers' structured output
/// wants an object at the root (OpenAI strict mode, Anthropic's native
/// output and tools), so a schema whose root is anything else (an array, a
/// string, `{}`) is sent wrapped as `{"value": <schema>}` — its `$defs` /
/// `definitions` lifted to the new root so `#/$defs/...` references still
/// resolve — and the answer is unwrapped again by [`parse`](super::parse) and
/// [`validate`](super::validate): `parsed_response` is what the user's schema describes.
pub fn wire_schema(schema: &Value) -> std::borrow::Cow<'_, Value> {
    if is_object_root(schema) {
        return std::borrow::Cow::Borrowed(schema);
    }
    let mut inner = schema.clone();
    let mut lifted = Map::new();
    if let Some(m) = inner.as_object_mut() {
        m.remove("$schema");
        for key in ["$defs", "definitions"] {
            if let Some(d) = m.remove(key).filter(Value::is_object) {
                lifted.insert(key.to_string(), d);
            }
        }
    }
    let mut wrapped = json!({
        "type": "object",
        "properties": {WRAPPER_KEY: inner},
        "required": [WRAPPER_KEY],
        "additionalProperties": false,
    });
    if let Some(m) = wrapped.as_object_mut() {
        m.extend(lifted);
    }
    std::borrow::Cow::Owned(wrapped)
}

/// An answer to a wrapped schema ([`wire_schema`]), unwrapped; anything
/// else as it is.
pub(super) fn unwrap_answer(value: Value, schema: &Value) -> Value {
    if is_object_root(schema) {
        return value;
    }
    match value {
        Value::Object(mut m) if m.len() == 1 && m.contains_key(WRAPPER_KEY) => {
            m.remove(WRAPPER_KEY).unwrap_or(Value::Null)
        }
        other => other,
    }
}

/// The system-prompt text used when a model has no native JSON output (or
/// the job wants citations): the schema itself, and the rule to answer with
/// nothing but the JSON.
pub fn schema_instruction(schema: &Value) -> String {
    let mut schema = wire_schema(schema).into_owned();
    if let Some(m) = schema.as_object_mut() {
        m.remove("$schema");
    }
    let what = if is_object_root(&schema) {
        "a JSON object"
    } else {
        "a JSON value"
    };
    format!(
        "Respond with only {what} that validates against this JSON Schema: {schema}\n\
         Write the JSON directly, with no Markdown fence and no text before or after it. \
         Use null for a field the input does not give, where the schema allows null."
    )
}
