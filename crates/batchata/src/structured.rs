//! Structured answers: finding the JSON in a model's reply and checking it
//! against the job's schema.
//!
//! A reply may be bare JSON, JSON in a fenced ```json block, or JSON inside
//! prose; we take the first that parses. JSON that parses but breaks the
//! schema is kept, with the violations listed, so nothing the model produced
//! is thrown away; a reply with no JSON at all fails with a parse error that
//! quotes its start.

use serde_json::Value;

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

/// Finds the JSON in `text` and validates it against `schema`.
pub fn parse(text: &str, schema: &ResponseSchema) -> Result<Parsed> {
    let value = extract_json(text).ok_or_else(|| {
        let start: String = text.chars().take(120).collect();
        Error::Parse(format!(
            "the reply holds no JSON to parse against the response schema; it starts: {start:?}"
        ))
    })?;
    validate(value, schema)
}

/// Validates a JSON value against `schema`.
pub fn validate(value: Value, schema: &ResponseSchema) -> Result<Parsed> {
    let validator = jsonschema::validator_for(schema.as_value())
        .map_err(|e| Error::Validation(format!("response_schema does not compile: {e}")))?;
    let validation_errors = validator
        .iter_errors(&value)
        .map(|e| {
            let path = e.instance_path.to_string();
            format!("{}: {e}", if path.is_empty() { "/" } else { &path })
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
    let trimmed = text.trim();
    if let Ok(v) = serde_json::from_str::<Value>(trimmed) {
        if v.is_object() || v.is_array() {
            return Some(v);
        }
    }
    if let Some(v) = fenced_blocks(text).find_map(|b| serde_json::from_str::<Value>(b.trim()).ok())
    {
        return Some(v);
    }
    let bytes = text.as_bytes();
    for (start, &b) in bytes.iter().enumerate() {
        if b != b'{' && b != b'[' {
            continue;
        }
        if let Some(end) = balanced_end(&bytes[start..]) {
            if let Ok(v) = serde_json::from_str::<Value>(&text[start..start + end]) {
                return Some(v);
            }
        }
    }
    None
}

fn fenced_blocks(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        let open = rest.find("```")?;
        let after = &rest[open + 3..];
        let body_start = after.find('\n').map(|i| i + 1).unwrap_or(0);
        let body = &after[body_start..];
        let close = body.find("```")?;
        rest = &body[close + 3..];
        Some(&body[..close])
    })
}

/// Length of the balanced JSON-looking span at the start of `s`, honouring strings.
fn balanced_end(s: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
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
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

// minimal; structured-output work replaces this
// (placed before the test module so clippy's items_after_test_module stays quiet)
/// A copy of `schema` that OpenAI's strict structured-output mode accepts:
/// every object gets `additionalProperties: false` and lists all its
/// properties as required, optional ones made nullable, through
/// `properties`, `items`, `$defs` / `definitions` and `anyOf` / `oneOf` / `allOf`.
pub fn to_openai_strict(schema: &Value) -> Value {
    let mut out = schema.clone();
    if let Some(map) = out.as_object_mut() {
        map.remove("$schema");
    }
    strictify(&mut out);
    out
}

fn strictify(schema: &mut Value) {
    let Some(map) = schema.as_object_mut() else {
        return;
    };
    for key in ["$defs", "definitions", "properties"] {
        if let Some(Value::Object(children)) = map.get_mut(key) {
            for child in children.values_mut() {
                strictify(child);
            }
        }
    }
    for key in ["anyOf", "oneOf", "allOf", "prefixItems"] {
        if let Some(Value::Array(children)) = map.get_mut(key) {
            for child in children {
                strictify(child);
            }
        }
    }
    if let Some(items) = map.get_mut("items") {
        strictify(items);
    }
    let is_object = map.get("type").is_some_and(|t| {
        t == "object" || t.as_array().is_some_and(|a| a.iter().any(|x| x == "object"))
    }) || map.contains_key("properties");
    if !is_object {
        return;
    }
    map.insert("additionalProperties".into(), Value::Bool(false));
    let required: Vec<String> = map
        .get("required")
        .and_then(|r| r.as_array())
        .map(|r| r.iter().filter_map(|s| s.as_str().map(String::from)).collect())
        .unwrap_or_default();
    let mut all = Vec::new();
    if let Some(Value::Object(props)) = map.get_mut("properties") {
        for (name, prop) in props.iter_mut() {
            if !required.contains(name) {
                make_nullable(prop);
            }
            all.push(Value::String(name.clone()));
        }
    }
    map.insert("required".into(), Value::Array(all));
}

fn make_nullable(schema: &mut Value) {
    let null = Value::String("null".into());
    if let Some(map) = schema.as_object_mut() {
        match map.get_mut("type") {
            Some(Value::String(t)) => {
                let t = Value::String(t.clone());
                map.insert("type".into(), Value::Array(vec![t, null.clone()]));
            }
            Some(Value::Array(types)) => {
                if !types.contains(&null) {
                    types.push(null.clone());
                }
            }
            _ => {
                let inner = Value::Object(std::mem::take(map));
                map.insert(
                    "anyOf".into(),
                    Value::Array(vec![inner, serde_json::json!({"type": "null"})]),
                );
                return;
            }
        }
        if let Some(Value::Array(values)) = map.get_mut("enum") {
            if !values.contains(&Value::Null) {
                values.push(Value::Null);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
    }
}
