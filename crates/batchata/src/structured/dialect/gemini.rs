//! Gemini's dialect: the OpenAPI 3.0 subset `responseSchema` reads.
//!
//! Unlike the JSON Schema dialects it has no `$ref`, no `null` type and no
//! `additionalProperties`, and wants upper-case type names, so the schema is
//! rewritten rather than trimmed: references are inlined, nullability moves
//! into `nullable`, and property order is stated.

use serde_json::{json, Map, Value};

use super::super::{ref_target, resolve};
use super::strict::merge_all_of;
use super::wire_schema;

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
