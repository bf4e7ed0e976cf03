//! JSON values that validate against a JSON Schema, filled from the input.
//!
//! When a request asks for structured output the emulator must answer with
//! JSON that validates against the requested schema, or clients cannot test
//! their parsing. This module walks a schema (types, `enum`/`const`, nested
//! objects, arrays, `$ref` into `$defs`/`definitions`, `allOf`, `anyOf`/
//! `oneOf`, nullable type arrays, numeric bounds, string lengths and common
//! formats) and builds a value, taking each property's value from the input
//! text when a "label: value" for the property name appears there (see
//! [`crate::text`]). Properties not found get a placeholder (`"unknown"`,
//! `0`, `false`), or `null` where the schema allows it. `pattern` is not
//! honoured.

use serde_json::{Map, Value};

use crate::text::{Corpus, Found};

/// The generated value plus where each found field value came from.
#[derive(Debug, Clone)]
pub(crate) struct Generated {
    pub(crate) value: Value,
    pub(crate) found: Vec<Found>,
}

/// Placeholder for strings whose value is not in the input.
pub(crate) const UNKNOWN: &str = "unknown";

/// Past this depth only required properties and minimum items are generated.
const SHALLOW_DEPTH: usize = 8;
/// Past this depth generation stops (recursive schemas).
const MAX_DEPTH: usize = 40;
/// Upper bound on generated array items (a schema may ask for absurd minimums).
const MAX_ITEMS: usize = 1000;
/// Upper bound on padding for `minLength`.
const MAX_STRING: usize = 10_000;
/// Upper bound on generated nodes.
const MAX_STEPS: usize = 20_000;

/// Builds a value for `schema` from the texts in `corpus`. `fallback` is used
/// for a top-level string schema.
pub(crate) fn generate(schema: &Value, corpus: &Corpus, fallback: &str) -> Generated {
    let mut g = Gen {
        root: schema,
        corpus,
        fallback,
        found: Vec::new(),
        steps: 0,
    };
    let value = g.value(schema, None, 0, false);
    Generated {
        value,
        found: g.found,
    }
}

struct Gen<'a> {
    root: &'a Value,
    corpus: &'a Corpus,
    fallback: &'a str,
    found: Vec<Found>,
    steps: usize,
}

fn empty_schema() -> &'static Value {
    static EMPTY: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| Value::Object(Map::new()))
}

/// Whether a schema only admits `null`.
fn is_null_schema(s: &Value) -> bool {
    s.get("type").and_then(Value::as_str) == Some("null")
        || s.get("const").is_some_and(Value::is_null)
        || s.get("enum")
            .and_then(Value::as_array)
            .is_some_and(|e| !e.is_empty() && e.iter().all(Value::is_null))
}

impl<'a> Gen<'a> {
    fn resolve(&self, reference: &str) -> Option<&'a Value> {
        if reference == "#" {
            return Some(self.root);
        }
        let pointer = reference.strip_prefix('#')?;
        self.root.pointer(pointer)
    }

    fn record(&mut self, field: Option<&str>, span: (usize, usize, usize)) {
        if let Some(field) = field {
            self.found.push(Found {
                field: field.to_string(),
                source: span.0,
                start: span.1,
                end: span.2,
            });
        }
    }

    /// The main walk. `nullable` says whether `null` is acceptable here.
    fn value(&mut self, schema: &Value, name: Option<&str>, depth: usize, nullable: bool) -> Value {
        self.steps += 1;
        let schema = match schema {
            Value::Bool(true) => empty_schema(),
            Value::Object(_) => schema,
            _ => return Value::Null,
        };
        if depth > MAX_DEPTH || self.steps > MAX_STEPS {
            return Value::Null;
        }
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            let target = self.resolve(r).unwrap_or_else(|| empty_schema());
            return self.value(target, name, depth + 1, nullable);
        }
        if let Some(c) = schema.get("const") {
            return c.clone();
        }
        if let Some(options) = schema.get("enum").and_then(Value::as_array) {
            return self.pick_enum(options, name);
        }
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            let merged = self.merge_all(schema, all);
            return self.value(&merged, name, depth + 1, nullable);
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(branches) = schema.get(key).and_then(Value::as_array) {
                let resolved: Vec<&Value> = branches.iter().map(|b| self.deref(b)).collect();
                let non_null: Vec<&Value> = resolved
                    .iter()
                    .copied()
                    .filter(|b| !is_null_schema(b))
                    .collect();
                let Some(first) = non_null.first() else {
                    return Value::Null;
                };
                let has_null = non_null.len() < resolved.len();
                return self.value(first, name, depth + 1, nullable || has_null);
            }
        }

        let (ty, type_nullable) = primary_type(schema);
        let nullable = nullable || type_nullable;
        match ty {
            "object" => self.object(schema, depth),
            "array" => self.array(schema, name, depth, nullable),
            "string" => self.string(schema, name, nullable),
            "integer" => self.number(schema, name, true, nullable),
            "number" => self.number(schema, name, false, nullable),
            "boolean" => self.boolean(name, nullable),
            "null" => Value::Null,
            _ => self.string(schema, name, nullable),
        }
    }

    fn deref<'s>(&self, schema: &'s Value) -> &'s Value
    where
        'a: 's,
    {
        let mut cur = schema;
        for _ in 0..16 {
            match cur.get("$ref").and_then(Value::as_str) {
                Some(r) => cur = self.resolve(r).unwrap_or_else(|| empty_schema()),
                None => break,
            }
        }
        cur
    }

    fn merge_all(&self, schema: &Value, all: &[Value]) -> Value {
        let mut merged = Map::new();
        if let Value::Object(own) = schema {
            for (k, v) in own {
                if k != "allOf" {
                    merged.insert(k.clone(), v.clone());
                }
            }
        }
        for sub in all {
            let sub = self.deref(sub);
            let Value::Object(sub) = sub else { continue };
            for (k, v) in sub {
                match (k.as_str(), merged.get_mut(k)) {
                    ("properties", Some(Value::Object(existing))) => {
                        if let Value::Object(more) = v {
                            for (pk, pv) in more {
                                existing.entry(pk.clone()).or_insert_with(|| pv.clone());
                            }
                        }
                    }
                    ("required", Some(Value::Array(existing))) => {
                        if let Value::Array(more) = v {
                            for r in more {
                                if !existing.contains(r) {
                                    existing.push(r.clone());
                                }
                            }
                        }
                    }
                    (_, Some(_)) => {}
                    (_, None) => {
                        merged.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        Value::Object(merged)
    }

    fn pick_enum(&mut self, options: &[Value], name: Option<&str>) -> Value {
        if let Some(span) = name.and_then(|n| self.corpus.find_text(n)) {
            let said = self.corpus.slice(span).to_ascii_lowercase();
            let hit = options
                .iter()
                .find(|o| o.as_str().is_some_and(|s| s.to_ascii_lowercase() == said))
                .or_else(|| {
                    options.iter().find(|o| {
                        o.as_str().is_some_and(|s| {
                            !s.is_empty() && said.contains(&s.to_ascii_lowercase())
                        })
                    })
                });
            if let Some(hit) = hit {
                self.record(name, span);
                return hit.clone();
            }
        }
        options.first().cloned().unwrap_or(Value::Null)
    }

    fn object(&mut self, schema: &Value, depth: usize) -> Value {
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut out = Map::new();
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (key, sub) in props {
                if depth > SHALLOW_DEPTH && !required.contains(&key.as_str()) {
                    continue;
                }
                let v = self.value(sub, Some(key), depth + 1, false);
                out.insert(key.clone(), v);
            }
        }
        for key in required {
            if out.contains_key(key) {
                continue;
            }
            let sub = match schema.get("additionalProperties") {
                Some(s @ Value::Object(_)) => s,
                _ => empty_schema(),
            };
            let v = self.value(sub, Some(key), depth + 1, false);
            out.insert(key.to_string(), v);
        }
        Value::Object(out)
    }

    fn array(&mut self, schema: &Value, name: Option<&str>, depth: usize, nullable: bool) -> Value {
        let min = schema.get("minItems").and_then(Value::as_u64).unwrap_or(0) as usize;
        let max = schema
            .get("maxItems")
            .and_then(Value::as_u64)
            .map(|m| m as usize)
            .unwrap_or(usize::MAX);
        let items = match schema.get("items") {
            Some(s @ (Value::Object(_) | Value::Bool(true))) => s,
            _ => empty_schema(),
        };
        let prefix: &[Value] = schema
            .get("prefixItems")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let wanted = if depth > SHALLOW_DEPTH {
            min
        } else {
            min.max(1)
        }
        .min(max);
        let wanted = wanted.max(prefix.len().min(max)).min(MAX_ITEMS);

        // A list of strings can come from "Tags: a, b, c".
        let item_schema = self.deref(items);
        if prefix.is_empty()
            && primary_type(item_schema).0 == "string"
            && item_schema.get("enum").is_none()
        {
            if let Some(span) = name.and_then(|n| self.corpus.find_text(n)) {
                let parts: Vec<String> = self
                    .corpus
                    .slice(span)
                    .split(',')
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty())
                    .collect();
                if !parts.is_empty() {
                    self.record(name, span);
                    let mut values: Vec<Value> =
                        parts.into_iter().take(max).map(Value::String).collect();
                    while values.len() < min.min(MAX_ITEMS) {
                        values.push(Value::String(format!("{UNKNOWN} {}", values.len() + 1)));
                    }
                    return self.make_unique(schema, values);
                }
            }
        } else if nullable && wanted == 0 {
            return Value::Null;
        }

        let mut values = Vec::with_capacity(wanted);
        for i in 0..wanted {
            let sub = prefix.get(i).unwrap_or(items);
            values.push(self.value(sub, name, depth + 1, false));
        }
        self.make_unique(schema, values)
    }

    fn make_unique(&self, schema: &Value, mut values: Vec<Value>) -> Value {
        if schema.get("uniqueItems").and_then(Value::as_bool) == Some(true) {
            for i in 1..values.len() {
                let mut bump = 1;
                while values[..i].contains(&values[i]) && bump < 1000 {
                    values[i] = match &values[i] {
                        Value::String(s) => Value::String(format!("{s} ({})", bump + 1)),
                        Value::Number(n) => match n.as_i64() {
                            Some(k) => Value::from(k.saturating_add(1)),
                            None => Value::from(n.as_f64().unwrap_or(0.0) + 1.0),
                        },
                        other => other.clone(),
                    };
                    bump += 1;
                }
            }
        }
        Value::Array(values)
    }

    fn string(&mut self, schema: &Value, name: Option<&str>, nullable: bool) -> Value {
        let span = name.and_then(|n| self.corpus.find_text(n));
        let format = schema.get("format").and_then(Value::as_str);
        let mut text = match span {
            Some(span) => {
                let s = self.corpus.slice(span).to_string();
                if format.is_none_or(|f| satisfies_format(f, &s)) {
                    self.record(name, span);
                    Some(s)
                } else {
                    None
                }
            }
            None => None,
        };
        if text.is_none() {
            if nullable {
                return Value::Null;
            }
            text = Some(match format.and_then(format_default) {
                Some(d) => d.to_string(),
                None if name.is_none() => self.fallback.to_string(),
                None => UNKNOWN.to_string(),
            });
        }
        let mut s = text.unwrap_or_default();
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
            if s.chars().count() > max as usize {
                s = s.chars().take(max as usize).collect();
            }
        }
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
            let have = s.chars().count();
            let want = (min as usize).min(MAX_STRING);
            if have < want {
                s.extend(std::iter::repeat_n('x', want - have));
            }
        }
        Value::String(s)
    }

    fn number(
        &mut self,
        schema: &Value,
        name: Option<&str>,
        integer: bool,
        nullable: bool,
    ) -> Value {
        let found = name.and_then(|n| self.corpus.find_number(n));
        let mut v = match found {
            Some((span, v)) => {
                self.record(name, span);
                v
            }
            None if nullable => return Value::Null,
            None => 0.0,
        };
        if integer {
            v = v.trunc();
        }
        let step = if integer { 1.0 } else { 0.5 };
        let get = |k: &str| schema.get(k).and_then(Value::as_f64);
        if let Some(m) = get("minimum") {
            if v < m {
                v = if integer { m.ceil() } else { m };
            }
        }
        if let Some(m) = get("exclusiveMinimum") {
            if v <= m {
                v = if integer { m.floor() + 1.0 } else { m + step };
            }
        }
        if let Some(m) = get("maximum") {
            if v > m {
                v = if integer { m.floor() } else { m };
            }
        }
        if let Some(m) = get("exclusiveMaximum") {
            if v >= m {
                v = if integer { m.ceil() - 1.0 } else { m - step };
            }
        }
        if let Some(m) = get("multipleOf").filter(|m| *m > 0.0) {
            let k = (v / m).round();
            v = k * m;
            if get("minimum").is_some_and(|lo| v < lo)
                || get("exclusiveMinimum").is_some_and(|lo| v <= lo)
            {
                v += m;
            }
            if get("maximum").is_some_and(|hi| v > hi)
                || get("exclusiveMaximum").is_some_and(|hi| v >= hi)
            {
                v -= m;
            }
        }
        if (integer || v.fract() == 0.0) && v.abs() < 9.0e15 {
            Value::from(v as i64)
        } else {
            serde_json::Number::from_f64(v).map_or(Value::from(0), Value::Number)
        }
    }

    fn boolean(&mut self, name: Option<&str>, nullable: bool) -> Value {
        match name.and_then(|n| self.corpus.find_bool(n)) {
            Some((span, b)) => {
                self.record(name, span);
                Value::Bool(b)
            }
            None if nullable => Value::Null,
            None => Value::Bool(false),
        }
    }
}

/// The type to generate and whether `null` is allowed by the `type` keyword.
fn primary_type(schema: &Value) -> (&str, bool) {
    match schema.get("type") {
        Some(Value::String(t)) => (t.as_str(), false),
        Some(Value::Array(types)) => {
            let names: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
            let nullable = names.contains(&"null");
            let first = names
                .iter()
                .copied()
                .find(|t| *t != "null")
                .unwrap_or("null");
            (first, nullable)
        }
        _ => {
            if schema.get("properties").is_some()
                || schema.get("required").is_some()
                || schema.get("additionalProperties").is_some()
            {
                ("object", false)
            } else if schema.get("items").is_some() || schema.get("prefixItems").is_some() {
                ("array", false)
            } else if schema.get("minimum").is_some() || schema.get("maximum").is_some() {
                ("number", false)
            } else {
                ("string", false)
            }
        }
    }
}

fn satisfies_format(format: &str, s: &str) -> bool {
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    match format {
        "date" => {
            let parts: Vec<&str> = s.split('-').collect();
            parts.len() == 3
                && parts[0].len() == 4
                && parts[1].len() == 2
                && parts[2].len() == 2
                && parts.iter().all(|p| digits(p))
                && (1..=12).contains(&parts[1].parse::<u32>().unwrap_or(0))
                && (1..=28).contains(&parts[2].parse::<u32>().unwrap_or(0))
        }
        "date-time" => chrono::DateTime::parse_from_rfc3339(s).is_ok(),
        "email" => {
            let mut it = s.split('@');
            matches!((it.next(), it.next(), it.next()), (Some(a), Some(b), None) if !a.is_empty() && b.contains('.') && !s.contains(' '))
        }
        "uri" | "url" => {
            (s.starts_with("http://") || s.starts_with("https://")) && !s.contains(' ')
        }
        "time" | "uuid" | "ipv4" | "ipv6" | "hostname" => false,
        _ => true,
    }
}

fn format_default(format: &str) -> Option<&'static str> {
    Some(match format {
        "date" => "2024-01-01",
        "date-time" => "2024-01-01T00:00:00Z",
        "time" => "00:00:00Z",
        "email" => "unknown@example.com",
        "uri" | "url" => "https://example.com/",
        "uuid" => "00000000-0000-4000-8000-000000000000",
        "ipv4" => "127.0.0.1",
        "ipv6" => "::1",
        "hostname" => "example.com",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::Origin;
    use serde_json::json;

    fn corpus(text: &str) -> Corpus {
        let mut c = Corpus::default();
        c.push(text.to_string(), Origin::Document { index: 0, part: 0 });
        c
    }

    #[test]
    fn fills_fields_from_text() {
        let schema = json!({
            "type": "object",
            "properties": {
                "invoice_number": {"type": "string"},
                "total": {"type": "number"},
                "items": {"type": "integer", "minimum": 1},
                "paid": {"type": "boolean"},
                "note": {"type": ["string", "null"]}
            },
            "required": ["invoice_number", "total"],
            "additionalProperties": false
        });
        let g = generate(
            &schema,
            &corpus("Invoice number: INV-001\nTotal: 42.50\nPaid: yes"),
            "x",
        );
        assert_eq!(
            g.value,
            json!({"invoice_number": "INV-001", "total": 42.5, "items": 1, "paid": true, "note": null})
        );
        assert_eq!(g.found.len(), 3);
    }

    #[test]
    fn refs_enums_and_arrays() {
        let schema = json!({
            "$defs": {"line": {"type": "object", "properties": {"sku": {"type": "string"}}, "required": ["sku"]}},
            "type": "object",
            "properties": {
                "lines": {"type": "array", "items": {"$ref": "#/$defs/line"}, "minItems": 2},
                "status": {"enum": ["open", "closed"]},
                "tags": {"type": "array", "items": {"type": "string"}},
                "maybe": {"anyOf": [{"$ref": "#/$defs/line"}, {"type": "null"}]}
            }
        });
        let g = generate(
            &schema,
            &corpus("Status: closed\nTags: red, blue\nSKU: A-1"),
            "x",
        );
        assert_eq!(g.value["status"], "closed");
        assert_eq!(g.value["tags"], json!(["red", "blue"]));
        assert_eq!(g.value["lines"].as_array().unwrap().len(), 2);
        assert_eq!(g.value["lines"][0]["sku"], "A-1");
        assert_eq!(g.value["maybe"]["sku"], "A-1");
    }

    #[test]
    fn recursive_schemas_terminate() {
        let schema = json!({
            "type": "object",
            "properties": {"name": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#"}}},
            "required": ["name", "children"]
        });
        let g = generate(&schema, &corpus(""), "x");
        assert!(g.value["children"].is_array());
    }

    #[test]
    fn absurd_minimums_are_bounded() {
        let schema = json!({"type": "array", "minItems": 1_000_000_000u64,
                            "items": {"type": "string", "minLength": 1_000_000_000_000u64}});
        let g = generate(&schema, &corpus(""), "x");
        let items = g.value.as_array().unwrap();
        assert_eq!(items.len(), MAX_ITEMS);
        assert_eq!(items[0].as_str().unwrap().len(), MAX_STRING);
    }

    #[test]
    fn all_of_merges() {
        let schema = json!({"allOf": [
            {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
            {"properties": {"b": {"type": "string", "format": "date"}}, "required": ["b"]}
        ]});
        let g = generate(&schema, &corpus("A: 7"), "x");
        assert_eq!(g.value, json!({"a": 7, "b": "2024-01-01"}));
    }
}
