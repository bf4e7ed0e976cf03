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

use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{json, Map, Value};

use crate::catalog::ModelInfo;
use crate::error::{Error, Result};
use crate::job::ResponseSchema;

/// A parsed structured answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The JSON value found.
    pub value: Value,
    /// Schema violations ("/path: message"); empty when valid.
    pub validation_errors: Vec<String>,
}

/// Most validation errors recorded for one answer.
const MAX_VALIDATION_ERRORS: usize = 20;
/// Longest validation message kept (they can quote the whole instance).
const MAX_MESSAGE_CHARS: usize = 240;
/// How much of a reply a parse error quotes.
const QUOTE_CHARS: usize = 160;
/// Most JSON candidates tried in one reply (bounds the work on long prose).
const MAX_CANDIDATES: usize = 64;
/// Most `{` / `[` positions scanned for an embedded JSON value.
const MAX_SCAN_STARTS: usize = 2_000;
/// Depth past which schema walks stop (recursive `$ref`s).
const MAX_DEPTH: usize = 48;

// ---------------------------------------------------------------------------
// Reading replies
// ---------------------------------------------------------------------------

/// Finds the JSON in `text` and validates it against `schema`.
///
/// Candidates are tried in order (the whole reply, fenced blocks, then
/// balanced `{...}` / `[...]` spans in the prose); the first that validates
/// wins, else the first whose top-level type fits the schema, else the first
/// that parses. When nothing parses the error quotes the reply's start, and
/// says so when the JSON looks cut off (the answer hit `max_tokens`).
pub fn parse(text: &str, schema: &ResponseSchema) -> Result<Parsed> {
    let candidates = json_candidates(text);
    if candidates.is_empty() {
        return Err(no_json_error(text));
    }
    let want = top_level_types(schema.as_value());
    let mut first_fit: Option<Parsed> = None;
    let mut first_any: Option<Parsed> = None;
    for value in candidates {
        let value = unwrap_answer(value, schema.as_value());
        let fits = want.is_empty() || want.iter().any(|t| type_matches(t, &value));
        let parsed = validate(value, schema)?;
        if parsed.validation_errors.is_empty() {
            return Ok(parsed);
        }
        if fits && first_fit.is_none() {
            first_fit = Some(parsed);
        } else if first_any.is_none() {
            first_any = Some(parsed);
        }
    }
    first_fit.or(first_any).ok_or_else(|| no_json_error(text))
}

/// Validates a JSON value against `schema`.
///
/// Before validating, `null`s the model wrote for optional properties that
/// do not allow `null` are removed: strict provider modes make every property
/// required and nullable, and "absent" then arrives as `null`.
pub fn validate(value: Value, schema: &ResponseSchema) -> Result<Parsed> {
    let root = schema.as_value();
    let mut value = unwrap_answer(value, root);
    drop_absent_nulls(&mut value, root, root, 0);
    let validator = cached_validator(root)?;
    let validation_errors = validator
        .iter_errors(&value)
        .take(MAX_VALIDATION_ERRORS)
        .map(|e| {
            let path = e.instance_path.to_string();
            let message = shorten(&e.to_string(), MAX_MESSAGE_CHARS);
            format!("{}: {message}", if path.is_empty() { "/" } else { &path })
        })
        .collect();
    Ok(Parsed {
        value,
        validation_errors,
    })
}

/// The first JSON object or array in `text`: the whole text, a fenced code
/// block, or the first balanced `{...}` / `[...]` that parses.
pub fn extract_json(text: &str) -> Option<Value> {
    json_candidates(text).into_iter().next()
}

/// Every JSON object or array found in `text`, most likely first: the whole
/// text, fenced code blocks (```json ones first), then balanced spans in the
/// prose, left to right. At most 64.
pub fn json_candidates(text: &str) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let push = |v: Value, out: &mut Vec<Value>| {
        if (v.is_object() || v.is_array()) && !out.contains(&v) && out.len() < MAX_CANDIDATES {
            out.push(v);
        }
    };
    let trimmed = text.trim().trim_start_matches('\u{feff}');
    if let Ok(v) = serde_json::from_str::<Value>(trimmed) {
        push(v, &mut out);
        return out;
    }
    let blocks = fenced_blocks(text);
    for json_tagged in [true, false] {
        for (tag, body) in &blocks {
            let is_json = tag.is_empty() || tag.eq_ignore_ascii_case("json");
            if is_json != json_tagged {
                continue;
            }
            let body = body.trim();
            match serde_json::from_str::<Value>(body) {
                Ok(v) => push(v, &mut out),
                Err(_) => {
                    for v in embedded_values(body) {
                        push(v, &mut out);
                    }
                }
            }
        }
    }
    for v in embedded_values(text) {
        push(v, &mut out);
    }
    out
}

/// Balanced `{...}` / `[...]` spans of `text` that parse, left to right;
/// after a span parses, scanning resumes behind it.
fn embedded_values(text: &str) -> Vec<Value> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut starts = 0;
    while i < bytes.len() && starts < MAX_SCAN_STARTS && out.len() < MAX_CANDIDATES {
        let b = bytes[i];
        if b != b'{' && b != b'[' {
            i += 1;
            continue;
        }
        starts += 1;
        let Some(len) = balanced_len(&bytes[i..]) else {
            if opens_json(&bytes[i..]) {
                // JSON that never closes (the answer was cut off): objects
                // nested in it are fragments, not answers.
                break;
            }
            i += 1;
            continue;
        };
        {
            if let Ok(v) = serde_json::from_str::<Value>(&text[i..i + len]) {
                let scalar_array = v
                    .as_array()
                    .is_some_and(|a| a.iter().all(|x| !x.is_object() && !x.is_array()));
                // `[1]`-style footnote markers in prose are not answers.
                if !(scalar_array && len < 8) {
                    out.push(v);
                    i += len;
                    continue;
                }
            }
        }
        i += 1;
    }
    out
}

/// Whether `s` starts like a JSON object with a key (`{"`) or an array of
/// objects or strings (`[{`, `["`), rather than a stray bracket in prose.
fn opens_json(s: &[u8]) -> bool {
    let next = s[1..].iter().find(|b| !b.is_ascii_whitespace());
    matches!(
        (s.first(), next),
        (Some(b'{'), Some(b'"')) | (Some(b'['), Some(b'{' | b'"'))
    )
}

/// `(info string, body)` of each fenced code block (``` or ~~~).
fn fenced_blocks(text: &str) -> Vec<(String, &str)> {
    let mut out = Vec::new();
    let mut rest = text;
    loop {
        let open = match (rest.find("```"), rest.find("~~~")) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => break,
        };
        let fence = &rest[open..open + 3];
        let after = &rest[open + 3..];
        let line_end = after.find('\n').unwrap_or(after.len());
        let tag = after[..line_end].trim().to_string();
        let body = after.get(line_end + 1..).unwrap_or("");
        match body.find(fence) {
            Some(close) => {
                out.push((tag, &body[..close]));
                rest = &body[close + 3..];
            }
            None => {
                // An unclosed fence (the answer was cut off): the rest is the body.
                out.push((tag, body));
                break;
            }
        }
    }
    out
}

/// Length of the balanced JSON-looking span at the start of `s`, honouring
/// strings; `None` if it never closes.
fn balanced_len(s: &[u8]) -> Option<usize> {
    let mut stack: Vec<u8> = Vec::new();
    let mut in_str = false;
    let mut escaped = false;
    for (i, &c) in s.iter().enumerate() {
        if in_str {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => in_str = true,
            b'{' => stack.push(b'}'),
            b'[' => stack.push(b']'),
            b'}' | b']' => {
                if stack.pop() != Some(c) {
                    return None;
                }
                if stack.is_empty() {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

fn no_json_error(text: &str) -> Error {
    let start = shorten(text.trim(), QUOTE_CHARS);
    if text.trim().is_empty() {
        return Error::Parse(
            "the reply is empty, so there is no JSON to check against the response schema; \
             the model may have refused or run out of max_tokens"
                .into(),
        );
    }
    let cut_off = text
        .find(['{', '['])
        .is_some_and(|at| balanced_len(&text.as_bytes()[at..]).is_none());
    let hint = if cut_off {
        "; the JSON in it never closes — the answer was probably cut off by max_tokens, raise it"
    } else {
        "; ask for JSON more plainly in the prompt, or use a model with native structured output"
    };
    Error::Parse(format!(
        "the reply holds no JSON to check against the response schema{hint}; it starts: {start:?}"
    ))
}

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

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        _ => false,
    }
}

/// Recently used schemas with their compiled validators.
type ValidatorCache = Mutex<Vec<(Value, Arc<jsonschema::Validator>)>>;

/// Compiled validators of recently used schemas (jobs usually share one).
fn cached_validator(schema: &Value) -> Result<Arc<jsonschema::Validator>> {
    static CACHE: OnceLock<ValidatorCache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(Vec::new()));
    if let Ok(entries) = cache.lock() {
        if let Some((_, v)) = entries.iter().find(|(s, _)| s == schema) {
            return Ok(Arc::clone(v));
        }
    }
    let validator = Arc::new(jsonschema::validator_for(schema).map_err(|e| {
        Error::Validation(format!(
            "response_schema does not compile as a JSON Schema: {e}; fix the schema or generate it from a type with schemars"
        ))
    })?);
    if let Ok(mut entries) = cache.lock() {
        if entries.len() >= 8 {
            entries.remove(0);
        }
        entries.push((schema.clone(), Arc::clone(&validator)));
    }
    Ok(validator)
}

/// Removes `"key": null` from objects where `key` is optional and its schema
/// does not allow `null`, following `properties`, `items` and local `$ref`s.
fn drop_absent_nulls(value: &mut Value, schema: &Value, root: &Value, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    let schema = resolve(schema, root, 0);
    match value {
        Value::Object(map) => {
            let Some(props) = schema.get("properties").and_then(Value::as_object) else {
                return;
            };
            let required: Vec<&str> = schema
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            map.retain(|k, v| {
                !(v.is_null()
                    && !required.contains(&k.as_str())
                    && props.get(k).is_some_and(|p| !accepts_null(p, root, 0)))
            });
            for (k, v) in map.iter_mut() {
                if let Some(p) = props.get(k) {
                    drop_absent_nulls(v, p, root, depth + 1);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items").filter(|s| s.is_object()) {
                for v in items {
                    drop_absent_nulls(v, item_schema, root, depth + 1);
                }
            }
        }
        _ => {}
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

// ---------------------------------------------------------------------------
// Preparing schemas per provider
// ---------------------------------------------------------------------------

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

/// Whether the schema's root (after a `$ref`) describes only objects.
pub fn is_object_root(schema: &Value) -> bool {
    let root = resolve(schema, schema, 0);
    top_level_types(root) == ["object"]
}

/// The key a non-object schema is wrapped under on the wire.
pub const WRAPPER_KEY: &str = "value";

/// The schema as it is sent to any provider. Providers' structured output
/// wants an object at the root (OpenAI strict mode, Anthropic's native
/// output and tools), so a schema whose root is anything else (an array, a
/// string, `{}`) is sent wrapped as `{"value": <schema>}` — its `$defs` /
/// `definitions` lifted to the new root so `#/$defs/...` references still
/// resolve — and the answer is unwrapped again by [`parse`] and
/// [`validate`]: `parsed_response` is what the user's schema describes.
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
fn unwrap_answer(value: Value, schema: &Value) -> Value {
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

/// Keyword rules of one provider's schema dialect.
struct Dialect {
    /// Keywords kept as they are.
    keep: &'static [&'static str],
    /// String formats kept.
    formats: &'static [&'static str],
    /// Every property required (optional ones made nullable).
    all_required: bool,
    /// Largest `minItems` kept.
    max_min_items: Option<u64>,
}

/// Keywords moved into the description rather than dropped: the model still
/// reads them, and the answer is validated against the original schema.
const HINT_KEYWORDS: &[&str] = &[
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "minContains",
    "maxContains",
];

const OPENAI: Dialect = Dialect {
    keep: &[
        "type",
        "properties",
        "required",
        "items",
        "enum",
        "const",
        "anyOf",
        "$ref",
        "$defs",
        "definitions",
        "description",
        "title",
        "pattern",
        "format",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minItems",
        "maxItems",
    ],
    formats: &[
        "date-time",
        "time",
        "date",
        "duration",
        "email",
        "hostname",
        "ipv4",
        "ipv6",
        "uuid",
    ],
    all_required: true,
    max_min_items: None,
};

const ANTHROPIC: Dialect = Dialect {
    keep: &[
        "type",
        "properties",
        "required",
        "items",
        "enum",
        "const",
        "anyOf",
        "$ref",
        "$defs",
        "definitions",
        "description",
        "title",
        "default",
        "format",
        "minItems",
    ],
    formats: &[
        "date-time",
        "time",
        "date",
        "duration",
        "email",
        "hostname",
        "uri",
        "ipv4",
        "ipv6",
        "uuid",
    ],
    all_required: false,
    max_min_items: Some(1),
};

/// A copy of `schema` that OpenAI's strict structured-output mode accepts.
///
/// Recursively, through `properties`, `items`, `$defs` / `definitions` and
/// `anyOf`: every object gets `additionalProperties: false` and lists all
/// its properties as required, the optional ones made nullable; `oneOf`
/// becomes `anyOf` and `allOf` is merged; a `$ref` with sibling keywords is
/// inlined (strict mode refuses the siblings); `default`, `examples` and
/// other keywords strict mode rejects (`minLength`, `maxLength`,
/// `uniqueItems`, number formats, ...) are removed, the constraints written
/// into the description so the model still sees them. `$schema` is dropped.
/// Maps (`additionalProperties` with a schema) cannot be expressed and
/// become closed objects: check [`openai_strict_problems`] first.
pub fn to_openai_strict(schema: &Value) -> Value {
    prepare(&wire_schema(schema), &OPENAI)
}

/// A copy of `schema` that Anthropic's native JSON output accepts: every
/// object closed with `additionalProperties: false` (required by the API),
/// `oneOf` turned into `anyOf`, `allOf` merged, and the constraints it does
/// not support (`minimum`, `maximum`, `multipleOf`, `minLength`,
/// `maxLength`, `pattern`, `minItems` above 1, `maxItems`, unknown formats,
/// ...) moved into the description, as Anthropic's own SDKs do. `required`
/// is kept as written (optional properties are allowed).
pub fn to_anthropic_schema(schema: &Value) -> Value {
    prepare(&wire_schema(schema), &ANTHROPIC)
}

/// What strict OpenAI output cannot express in `schema`; empty when
/// [`to_openai_strict`] keeps its full meaning. Each entry names the path.
pub fn openai_strict_problems(schema: &Value) -> Vec<String> {
    // A root that is not an object is wrapped on the wire (wire_schema).
    let mut out = Vec::new();
    find_maps(schema, "#", &mut out, 0);
    out
}

fn find_maps(schema: &Value, path: &str, out: &mut Vec<String>, depth: usize) {
    let Some(map) = schema.as_object() else {
        return;
    };
    if depth > MAX_DEPTH {
        return;
    }
    if map
        .get("additionalProperties")
        .is_some_and(Value::is_object)
        || map.contains_key("patternProperties")
    {
        out.push(format!(
            "{path} is a map with free-form keys; strict mode only allows fixed properties"
        ));
    }
    for (key, child) in map {
        match child {
            Value::Object(children)
                if matches!(key.as_str(), "properties" | "$defs" | "definitions") =>
            {
                for (name, c) in children {
                    find_maps(c, &format!("{path}/{key}/{name}"), out, depth + 1);
                }
            }
            Value::Array(children) if matches!(key.as_str(), "anyOf" | "oneOf" | "allOf") => {
                for (i, c) in children.iter().enumerate() {
                    find_maps(c, &format!("{path}/{key}/{i}"), out, depth + 1);
                }
            }
            Value::Object(_) if key == "items" => {
                find_maps(child, &format!("{path}/items"), out, depth + 1)
            }
            _ => {}
        }
    }
}

fn prepare(schema: &Value, dialect: &Dialect) -> Value {
    let mut out = schema.clone();
    prepare_node(&mut out, schema, dialect, 0);
    out
}

fn prepare_node(node: &mut Value, root: &Value, dialect: &Dialect, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    let Some(map) = node.as_object_mut() else {
        return;
    };
    // A `$ref` with siblings: inline the target (both dialects refuse or
    // mishandle sibling keywords next to `$ref`).
    if map.len() > 1 && map.contains_key("$ref") {
        if let Some(target) = map
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| ref_target(root, r))
            .and_then(Value::as_object)
            .cloned()
        {
            map.remove("$ref");
            for (k, v) in target {
                if k != "$defs" && k != "definitions" {
                    map.entry(k).or_insert(v);
                }
            }
        }
    }
    if let Some(one_of) = map.remove("oneOf") {
        map.insert("anyOf".into(), one_of);
    }
    if let Some(Value::Array(all)) = map.remove("allOf") {
        merge_all_of(map, all, root);
    }
    // Constraints the dialect cannot carry go into the description.
    let mut hints: Vec<String> = Vec::new();
    let is_string = has_type(map, "string");
    let keys: Vec<String> = map.keys().cloned().collect();
    for key in keys {
        if key == "additionalProperties" {
            continue;
        }
        let keep = dialect.keep.contains(&key.as_str())
            && match key.as_str() {
                "format" => {
                    is_string
                        && map
                            .get("format")
                            .and_then(Value::as_str)
                            .is_some_and(|f| dialect.formats.contains(&f))
                }
                "minItems" => match (dialect.max_min_items, map.get("minItems")) {
                    (Some(max), Some(v)) => v.as_u64().is_some_and(|n| n <= max),
                    _ => true,
                },
                _ => true,
            };
        if keep {
            continue;
        }
        if let Some(v) = map.remove(&key) {
            let number_format = key == "format" && !is_string;
            if HINT_KEYWORDS.contains(&key.as_str()) && !number_format {
                hints.push(format!("{key}: {v}"));
            }
        }
    }
    if !hints.is_empty() {
        let hint = format!("{{{}}}", hints.join(", "));
        let description = match map.get("description").and_then(Value::as_str) {
            Some(d) if !d.is_empty() => format!("{d}\n\n{hint}"),
            _ => hint,
        };
        map.insert("description".into(), Value::String(description));
    }
    // Recurse.
    for key in ["properties", "$defs", "definitions"] {
        if let Some(Value::Object(children)) = map.get_mut(key) {
            for child in children.values_mut() {
                prepare_node(child, root, dialect, depth + 1);
            }
        }
    }
    if let Some(Value::Array(children)) = map.get_mut("anyOf") {
        for child in children {
            prepare_node(child, root, dialect, depth + 1);
        }
    }
    match map.get_mut("items") {
        Some(Value::Array(children)) => {
            for child in children {
                prepare_node(child, root, dialect, depth + 1);
            }
        }
        Some(child) => prepare_node(child, root, dialect, depth + 1),
        None => {}
    }
    // Close objects.
    let is_object = has_type(map, "object") || map.contains_key("properties");
    if !is_object {
        map.remove("additionalProperties");
        return;
    }
    map.insert("additionalProperties".into(), Value::Bool(false));
    if !map.contains_key("properties") {
        map.insert("properties".into(), Value::Object(Map::new()));
    }
    if !dialect.all_required {
        return;
    }
    let required: Vec<String> = map
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let mut all = Vec::new();
    if let Some(Value::Object(props)) = map.get_mut("properties") {
        for (name, prop) in props.iter_mut() {
            if !required.contains(name) && !accepts_null(prop, root, 0) {
                make_nullable(prop);
            }
            all.push(Value::String(name.clone()));
        }
    }
    map.insert("required".into(), Value::Array(all));
}

/// Merges `allOf` members (following `$ref`s) into `map`: properties and
/// required lists are joined, other keywords taken where `map` has none.
fn merge_all_of(map: &mut Map<String, Value>, all: Vec<Value>, root: &Value) {
    for member in all {
        let member = resolve(&member, root, 0).clone();
        let Value::Object(member) = member else {
            continue;
        };
        for (k, v) in member {
            match (k.as_str(), v) {
                ("properties", Value::Object(props)) => {
                    let entry = map
                        .entry("properties")
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let Value::Object(existing) = entry {
                        for (pk, pv) in props {
                            existing.entry(pk).or_insert(pv);
                        }
                    }
                }
                ("required", Value::Array(req)) => {
                    let entry = map
                        .entry("required")
                        .or_insert_with(|| Value::Array(Vec::new()));
                    if let Value::Array(existing) = entry {
                        for r in req {
                            if !existing.contains(&r) {
                                existing.push(r);
                            }
                        }
                    }
                }
                ("$defs" | "definitions", _) => {}
                (_, v) => {
                    map.entry(k).or_insert(v);
                }
            }
        }
    }
}

fn has_type(map: &Map<String, Value>, t: &str) -> bool {
    match map.get("type") {
        Some(Value::String(s)) => s == t,
        Some(Value::Array(a)) => a.iter().any(|x| x == t),
        _ => false,
    }
}

/// Lets `schema` also accept `null`, keeping its description outside.
fn make_nullable(schema: &mut Value) {
    let null = Value::String("null".into());
    let Some(map) = schema.as_object_mut() else {
        return;
    };
    if let Some(Value::Array(alts)) = map.get_mut("anyOf") {
        alts.push(json!({"type": "null"}));
        return;
    }
    let simple = !map.contains_key("$ref") && !map.contains_key("const");
    match map.get_mut("type") {
        Some(Value::String(t)) if simple => {
            let t = Value::String(t.clone());
            map.insert("type".into(), Value::Array(vec![t, null]));
        }
        Some(Value::Array(types)) if simple => {
            if !types.contains(&null) {
                types.push(null);
            }
        }
        _ => {
            let mut outer = Map::new();
            for k in ["description", "title"] {
                if let Some(v) = map.remove(k) {
                    outer.insert(k.into(), v);
                }
            }
            let inner = Value::Object(std::mem::take(map));
            outer.insert(
                "anyOf".into(),
                Value::Array(vec![inner, json!({"type": "null"})]),
            );
            *map = outer;
            return;
        }
    }
    if let Some(Value::Array(values)) = map.get_mut("enum") {
        if !values.contains(&Value::Null) {
            values.push(Value::Null);
        }
    }
}

/// The schema in Gemini's `responseSchema` dialect (an OpenAPI 3.0 subset):
/// upper-case `type`s, `$ref`s inlined (recursion cut off after a few
/// levels), `["T", "null"]` and `anyOf [.., {"type": "null"}]` turned into
/// `nullable: true`, `const` into a one-value `enum`, `propertyOrdering` set
/// to the schema's property order, and keywords the subset lacks
/// (`additionalProperties`, `$schema`, `$defs`, `default`, `examples`, ...)
/// removed. `enum` values are written as strings, as the subset requires.
pub fn to_gemini_schema(schema: &Value) -> Value {
    let schema = wire_schema(schema);
    gemini_node(&schema, &schema, 0)
}

/// How deep Gemini schemas inline a recursive `$ref` before cutting it off.
const GEMINI_MAX_DEPTH: usize = 12;

fn gemini_node(schema: &Value, root: &Value, depth: usize) -> Value {
    let Some(src) = schema.as_object() else {
        return json!({});
    };
    if depth > GEMINI_MAX_DEPTH {
        return json!({"type": "OBJECT", "nullable": true});
    }
    // Inline a `$ref`, letting sibling keywords win.
    let mut map = src.clone();
    if let Some(target) = map
        .remove("$ref")
        .as_ref()
        .and_then(Value::as_str)
        .and_then(|r| ref_target(root, r))
        .and_then(Value::as_object)
    {
        for (k, v) in target {
            map.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    if let Some(Value::Array(all)) = map.remove("allOf") {
        merge_all_of(&mut map, all, root);
    }
    if let Some(one_of) = map.remove("oneOf") {
        map.insert("anyOf".into(), one_of);
    }
    let mut out = Map::new();
    let mut nullable = false;
    // Types.
    match map.get("type") {
        Some(Value::String(t)) if t == "null" => nullable = true,
        Some(Value::String(t)) => {
            out.insert("type".into(), Value::String(t.to_uppercase()));
        }
        Some(Value::Array(ts)) => {
            let non_null: Vec<&str> = ts
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .collect();
            nullable = non_null.len() < ts.len();
            match non_null.as_slice() {
                [one] => {
                    out.insert("type".into(), Value::String(one.to_uppercase()));
                }
                [] => {}
                many => {
                    let alts: Vec<Value> = many
                        .iter()
                        .map(|t| json!({"type": t.to_uppercase()}))
                        .collect();
                    out.insert("anyOf".into(), Value::Array(alts));
                }
            }
        }
        _ => {}
    }
    // Unions.
    if let Some(Value::Array(alts)) = map.get("anyOf") {
        let mut kept: Vec<Value> = Vec::new();
        for alt in alts {
            let alt_resolved = resolve(alt, root, 0);
            if alt_resolved.get("type").and_then(Value::as_str) == Some("null") {
                nullable = true;
                continue;
            }
            kept.push(gemini_node(alt, root, depth + 1));
        }
        if kept.len() == 1 {
            if let Some(Value::Object(single)) = kept.pop() {
                for (k, v) in single {
                    out.entry(k).or_insert(v);
                }
            }
        } else if !kept.is_empty() {
            out.insert("anyOf".into(), Value::Array(kept));
        }
    }
    if let Some(c) = map.get("const") {
        if c.is_null() {
            nullable = true;
        } else {
            out.insert("enum".into(), json!([enum_string(c)]));
            out.entry("type").or_insert_with(|| json!("STRING"));
        }
    }
    if let Some(Value::Array(values)) = map.get("enum") {
        if values.contains(&Value::Null) {
            nullable = true;
        }
        let strings: Vec<Value> = values
            .iter()
            .filter(|v| !v.is_null())
            .map(|v| Value::String(enum_string(v)))
            .collect();
        out.insert("enum".into(), Value::Array(strings));
        out.insert("type".into(), json!("STRING"));
        out.insert("format".into(), json!("enum"));
    }
    // Objects.
    if let Some(Value::Object(props)) = map.get("properties") {
        let mut converted = Map::new();
        let mut order = Vec::new();
        for (name, prop) in props {
            converted.insert(name.clone(), gemini_node(prop, root, depth + 1));
            order.push(Value::String(name.clone()));
        }
        out.insert("properties".into(), Value::Object(converted));
        out.insert("propertyOrdering".into(), Value::Array(order));
        out.entry("type").or_insert_with(|| json!("OBJECT"));
        if let Some(Value::Array(req)) = map.get("required") {
            out.insert("required".into(), Value::Array(req.clone()));
        }
    }
    // Arrays.
    if let Some(items) = map.get("items").filter(|i| i.is_object()) {
        out.insert("items".into(), gemini_node(items, root, depth + 1));
        out.entry("type").or_insert_with(|| json!("ARRAY"));
    }
    for key in [
        "description",
        "title",
        "minItems",
        "maxItems",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "pattern",
        "minProperties",
        "maxProperties",
    ] {
        if let Some(v) = map.get(key) {
            out.entry(key).or_insert_with(|| v.clone());
        }
    }
    if let Some(f) = map.get("format").and_then(Value::as_str) {
        if matches!(
            f,
            "date-time" | "date" | "time" | "int32" | "int64" | "float" | "double"
        ) {
            out.entry("format").or_insert_with(|| json!(f));
        }
    }
    if nullable {
        out.insert("nullable".into(), Value::Bool(true));
    }
    Value::Object(out)
}

fn enum_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> ResponseSchema {
        ResponseSchema::from_value(json!({
            "type":"object","properties":{"total":{"type":"number"},"vendor":{"type":"string"}},
            "required":["total","vendor"]
        }))
        .unwrap()
    }

    #[test]
    fn reply_forms() {
        let s = schema();
        for text in [
            r#"{"total": 12.5, "vendor": "ACME"}"#,
            "Here you go:\n```json\n{\"total\": 12.5, \"vendor\": \"ACME\"}\n```\nThanks",
            "The answer is {\"total\": 12.5, \"vendor\": \"ACME {inc}\"} as requested.",
        ] {
            let p = parse(text, &s).unwrap();
            assert_eq!(p.value["total"], json!(12.5), "{text}");
            assert!(p.validation_errors.is_empty());
        }
    }

    #[test]
    fn schema_violations_are_kept_and_listed() {
        let p = parse(r#"{"total": "twelve"}"#, &schema()).unwrap();
        assert_eq!(p.value["total"], json!("twelve"));
        assert_eq!(p.validation_errors.len(), 2, "{:?}", p.validation_errors);
    }

    #[test]
    fn no_json_quotes_the_reply() {
        let e = parse("I cannot help with that { unbalanced", &schema()).unwrap_err();
        assert!(e.to_string().contains("I cannot help"), "{e}");
        assert!(e.to_string().contains("max_tokens"), "{e}");
    }

    #[test]
    fn balanced_len_needs_matching_brackets() {
        assert_eq!(balanced_len(br#"{"a": [1, "]"]} tail"#), Some(15));
        assert_eq!(balanced_len(b"{ ] }"), None);
        assert_eq!(balanced_len(b"{ \"open"), None);
    }
}
