//! Checking a structured answer against the job's schema.
//!
//! [`parse`] takes a reply's text, tries the JSON candidates
//! [`super::extract`] finds, and keeps the first that fits; [`validate`]
//! checks a value that arrived as data (a forced tool's input). Both first
//! undo the wire wrapping of a non-object schema and remove the `null`s a
//! strict provider mode makes the model write for fields it would have left
//! out, then list every schema violation (a value that breaks the schema is
//! kept, with its violations, not thrown away). The compiled validator is
//! kept with the schema ([`ResponseSchema`]), so the jobs sharing a schema
//! compile it once.

use serde_json::Value;

use super::dialect::unwrap_answer;
use super::extract::{json_candidates, no_json_error};
use super::{accepts_null, resolve, shorten, top_level_types, Parsed, MAX_DEPTH};
use crate::error::{Error, Result};
use crate::job::ResponseSchema;

/// Most validation errors recorded for one answer.
const MAX_VALIDATION_ERRORS: usize = 20;
/// Longest validation message kept (they can quote the whole instance).
const MAX_MESSAGE_CHARS: usize = 240;

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
    let validator = schema.validator().map_err(|e| {
        Error::Validation(format!(
            "response_schema does not compile as a JSON Schema: {e}; fix the schema or generate it from a type with schemars"
        ))
    })?;
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

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        _ => false,
    }
}

/// Removes the `null`s a model wrote for what it would have left out.
///
/// Strict provider modes (OpenAI's, and any schema the model is told to
/// fill in whole) make every property required and the optional ones
/// nullable, so an absent value arrives as `"key": null`, which the job's
/// own schema may refuse. Such a `null` is removed when `key` is optional
/// and its schema does not accept `null`. A `null` the schema accepts is
/// the model's answer and stays, whichever provider wrote it; a `null` for
/// a required key stays too, for validation to report.
///
/// The walk follows `properties`, `items`, local `$ref`s, every `allOf`
/// member, and the one non-null branch of an `anyOf` / `oneOf` (an optional
/// value: `anyOf: [X, {"type": "null"}]`, as schemars writes `Option<T>`).
fn drop_absent_nulls(value: &mut Value, schema: &Value, root: &Value, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    let schema = resolve(schema, root, 0);
    for key in ["anyOf", "oneOf"] {
        if let Some(branches) = schema.get(key).and_then(Value::as_array) {
            let mut non_null = branches.iter().filter(|b| {
                resolve(b, root, 0).get("type").and_then(Value::as_str) != Some("null")
            });
            if let (Some(only), None) = (non_null.next(), non_null.next()) {
                drop_absent_nulls(value, only, root, depth + 1);
            }
        }
    }
    if let Some(members) = schema.get("allOf").and_then(Value::as_array) {
        for member in members {
            drop_absent_nulls(value, member, root, depth + 1);
        }
    }
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
        assert!(e.to_string().contains("max_tokens"), "{e}");
    }

    #[test]
    fn only_nulls_the_schema_refuses_are_dropped() {
        let s = ResponseSchema::from_value(json!({
            "type": "object",
            "properties": {
                "note": {"type": "string"},
                "city": {"type": ["string", "null"]},
                "total": {"type": "number"},
                "vendor": {"anyOf": [{"$ref": "#/$defs/Vendor"}, {"type": "null"}]},
                "lines": {"type": "array", "items": {"allOf": [{"$ref": "#/$defs/Line"}]}}
            },
            "required": ["total"],
            "$defs": {
                "Vendor": {"type": "object", "properties": {"vat": {"type": "string"}}},
                "Line": {"type": "object", "properties": {"qty": {"type": "integer"}}}
            }
        }))
        .unwrap();
        let p = validate(
            json!({"note": null, "city": null, "total": null,
                   "vendor": {"vat": null}, "lines": [{"qty": null}, {"qty": 2}]}),
            &s,
        )
        .unwrap();
        // Optional and not nullable: absent. Nullable: the model's answer.
        // Required: kept, and reported.
        assert_eq!(
            p.value,
            json!({"city": null, "total": null, "vendor": {}, "lines": [{}, {"qty": 2}]})
        );
        assert_eq!(p.validation_errors.len(), 1, "{:?}", p.validation_errors);
        assert!(p.validation_errors[0].starts_with("/total"));
    }
}
