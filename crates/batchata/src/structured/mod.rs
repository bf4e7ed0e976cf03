//! Structured answers: preparing a job's JSON Schema for each provider,
//! finding the JSON in a model's reply, and checking it against the schema.
//!
//! # Asking for JSON
//!
//! A job's schema comes from a Rust type (`Job::schema::<T>()`, via
//! `schemars`) or a raw JSON Schema, and is kept as written. Each provider
//! gets its own dialect of it at request time:
//!
//! * **OpenAI** — [`to_openai_strict`]: strict `json_schema` response format
//!   (every object closed and fully required, optional fields made nullable,
//!   keywords strict mode rejects moved into descriptions).
//! * **Anthropic** — [`anthropic_output`] picks one of three ways, the most
//!   reliable the model and the job allow:
//!   1. *native JSON output* (`output_config.format` with
//!      [`to_anthropic_schema`]) where the catalog says `structured_output:
//!      true`: constrained decoding, so the reply always parses and follows
//!      the schema;
//!   2. *a forced tool* ([`anthropic_tool`] with `tool_choice: {"type":
//!      "tool"}`) for older models without native output: the reply arrives
//!      as the tool's `input`, always well-formed JSON shaped by the schema —
//!      far more dependable than asking in words;
//!   3. *the schema as a system instruction* ([`schema_instruction`]) when the
//!      job asks for citations, on every model. Anthropic refuses native JSON
//!      output together with citations (HTTP 400: a cited answer is made of
//!      interleaved text blocks, which constrained decoding cannot produce),
//!      and a forced tool returns only a `tool_use` block, which carries no
//!      citations at all. Only a text answer keeps both the JSON and the
//!      citations, so the reply is parsed from the text and validated here.
//! * **Gemini** — [`to_gemini_schema`]: the OpenAPI subset of
//!   `responseSchema` (upper-case types, `$ref`s inlined, `nullable`).
//!
//! # Reading the reply
//!
//! A reply may be bare JSON, JSON in a fenced ```json block, or JSON inside
//! prose ([`extract_json`]); [`parse`] takes the first candidate that fits
//! the schema. JSON that parses but breaks the schema is kept, with the
//! violations listed, so nothing the model produced is thrown away; a reply
//! with no JSON at all fails with a parse error that quotes its start.
//!
//! # Where things are
//!
//! * `dialect/` — the schema as each provider wants it on the wire (the
//!   wrapping of non-object roots, the Anthropic ways of asking, the OpenAI
//!   and Anthropic strict subsets in `strict.rs`, Gemini's in `gemini.rs`);
//! * `extract.rs` — finding the JSON in a reply's text;
//! * `validate.rs` — checking a value against the job's schema;
//! * this file — the [`Parsed`] answer and the schema helpers the others
//!   share (following local `$ref`s, reading what a root or node accepts).

mod dialect;
mod extract;
mod validate;

use serde_json::Value;

pub use dialect::{
    anthropic_output, anthropic_tool, from_anthropic_tool_input, openai_strict_problems,
    schema_instruction, to_anthropic_schema, to_gemini_schema, to_openai_strict, wire_schema,
    AnthropicOutput, ANTHROPIC_TOOL_NAME,
};
#[cfg(test)]
pub use extract::{extract_json, json_candidates};
pub use validate::{parse, validate};

/// A parsed structured answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The JSON value found.
    pub value: Value,
    /// Schema violations ("/path: message"); empty when valid.
    pub validation_errors: Vec<String>,
}

/// Depth past which schema walks stop (recursive `$ref`s).
const MAX_DEPTH: usize = 48;

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push('…');
    out
}

/// The JSON types the schema's root allows (empty: any).
fn top_level_types(schema: &Value) -> Vec<String> {
    match schema.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect(),
        _ if schema.get("properties").is_some() => vec!["object".into()],
        _ => Vec::new(),
    }
}

/// Follows a local `$ref` (`#/$defs/X`, `#/definitions/X`) to its target.
fn resolve<'a>(schema: &'a Value, root: &'a Value, depth: usize) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) if depth < MAX_DEPTH => match ref_target(root, r) {
            Some(target) => resolve(target, root, depth + 1),
            None => schema,
        },
        _ => schema,
    }
}

fn ref_target<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    if pointer.is_empty() {
        return Some(root);
    }
    root.pointer(pointer)
}

/// Whether `schema` accepts `null` (structurally; unconstrained schemas do).
fn accepts_null(schema: &Value, root: &Value, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return true;
    }
    let map = match schema {
        Value::Bool(b) => return *b,
        Value::Object(m) => m,
        _ => return true,
    };
    if let Some(r) = map.get("$ref").and_then(Value::as_str) {
        return ref_target(root, r).is_none_or(|t| accepts_null(t, root, depth + 1));
    }
    if let Some(t) = map.get("type") {
        return match t {
            Value::String(s) => s == "null",
            Value::Array(a) => a.iter().any(|x| x == "null"),
            _ => true,
        };
    }
    if let Some(c) = map.get("const") {
        return c.is_null();
    }
    if let Some(Value::Array(e)) = map.get("enum") {
        return e.contains(&Value::Null);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(alts)) = map.get(key) {
            return alts.iter().any(|s| accepts_null(s, root, depth + 1));
        }
    }
    if let Some(Value::Array(all)) = map.get("allOf") {
        return all.iter().all(|s| accepts_null(s, root, depth + 1));
    }
    true
}

/// Whether the schema's root (after a `$ref`) describes only objects.
pub fn is_object_root(schema: &Value) -> bool {
    let root = resolve(schema, schema, 0);
    top_level_types(root) == ["object"]
}
