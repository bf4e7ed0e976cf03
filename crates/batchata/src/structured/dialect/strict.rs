//! OpenAI's strict structured-output mode and Anthropic's native JSON
//! output: two closed-object subsets of JSON Schema, produced by one walk
//! over the schema with a keyword table per provider.
//!
//! Both want every object closed (`additionalProperties: false`), `oneOf`
//! as `anyOf`, `allOf` merged and no keywords beside a `$ref`; they differ in
//! which constraints they take and whether every property must be required.
//! A constraint a provider cannot take is written into the description, so
//! the model still reads it, and the answer is validated against the
//! original schema anyway.

use serde_json::{json, Map, Value};

use super::super::{accepts_null, ref_target, resolve, MAX_DEPTH};
use super::wire_schema;

/// Keyword rules of one provider's schema dialect.
struct Dialect {
    /// Keywords kept as they are, besides [`KEEP_ALWAYS`].
    keep: &'static [&'static str],
    /// String formats kept, besides [`FORMATS_ALWAYS`].
    formats: &'static [&'static str],
    /// Every property required (optional ones made nullable).
    all_required: bool,
    /// Largest `minItems` kept.
    max_min_items: Option<u64>,
}

impl Dialect {
    fn keeps(&self, key: &str) -> bool {
        KEEP_ALWAYS.contains(&key) || self.keep.contains(&key)
    }

    fn keeps_format(&self, format: &str) -> bool {
        FORMATS_ALWAYS.contains(&format) || self.formats.contains(&format)
    }
}

/// Keywords both dialects keep.
const KEEP_ALWAYS: &[&str] = &[
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
    "format",
    "minItems",
];

/// String formats both dialects keep.
const FORMATS_ALWAYS: &[&str] = &[
    "date-time",
    "time",
    "date",
    "duration",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "uuid",
];

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
        "pattern",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "maxItems",
    ],
    formats: &[],
    all_required: true,
    max_min_items: None,
};

const ANTHROPIC: Dialect = Dialect {
    keep: &["default"],
    formats: &["uri"],
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
    // The walk is the one `prepare` makes, which changes what it walks; it
    // runs on a copy.
    let mut out = Vec::new();
    find_maps(&mut schema.clone(), "#", &mut out, 0);
    out
}

fn find_maps(schema: &mut Value, path: &str, out: &mut Vec<String>, depth: usize) {
    let Some(map) = schema.as_object_mut() else {
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
    for_each_subschema(map, |at, child| {
        find_maps(child, &format!("{path}/{at}"), out, depth + 1)
    });
}

/// Calls `f` with each subschema of `map` and its path below `map`: the
/// entries of `properties`, `$defs` and `definitions`, the branches of
/// `anyOf`, `oneOf` and `allOf`, and `items` (one schema, or a tuple's).
/// Preparing a schema and looking for what strict mode cannot express
/// walk the same subschemas through it.
fn for_each_subschema(map: &mut Map<String, Value>, mut f: impl FnMut(String, &mut Value)) {
    for (key, child) in map.iter_mut() {
        match (key.as_str(), child) {
            ("properties" | "$defs" | "definitions", Value::Object(children)) => {
                for (name, c) in children.iter_mut() {
                    f(format!("{key}/{name}"), c);
                }
            }
            ("anyOf" | "oneOf" | "allOf" | "items", Value::Array(children)) => {
                for (i, c) in children.iter_mut().enumerate() {
                    f(format!("{key}/{i}"), c);
                }
            }
            ("items", c) => f("items".into(), c),
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
        let keep = dialect.keeps(&key)
            && match key.as_str() {
                "format" => {
                    is_string
                        && map
                            .get("format")
                            .and_then(Value::as_str)
                            .is_some_and(|f| dialect.keeps_format(f))
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
    // Recurse (`oneOf` and `allOf` are gone by now).
    for_each_subschema(map, |_, child| {
        prepare_node(child, root, dialect, depth + 1)
    });
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
pub(super) fn merge_all_of(map: &mut Map<String, Value>, all: Vec<Value>, root: &Value) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_sees_every_subschema_the_preparation_closes() {
        // A map in a tuple's items: strict output closes it, so the check
        // must report it.
        let schema = json!({
            "type": "object",
            "properties": {
                "pair": {
                    "type": "array",
                    "items": [
                        {"type": "object", "additionalProperties": {"type": "string"}},
                        {"type": "string"}
                    ]
                }
            }
        });
        let problems = openai_strict_problems(&schema);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("#/properties/pair/items/0 "),
            "{problems:?}"
        );
        let strict = to_openai_strict(&schema);
        assert_eq!(
            strict["properties"]["pair"]["items"][0]["additionalProperties"],
            json!(false)
        );
    }

    #[test]
    fn each_dialect_keeps_its_own_keywords() {
        for key in ["pattern", "minimum", "maxItems"] {
            assert!(OPENAI.keeps(key) && !ANTHROPIC.keeps(key), "{key}");
        }
        assert!(ANTHROPIC.keeps("default") && !OPENAI.keeps("default"));
        assert!(ANTHROPIC.keeps_format("uri") && !OPENAI.keeps_format("uri"));
        for key in ["type", "anyOf", "$ref", "format", "minItems"] {
            assert!(OPENAI.keeps(key) && ANTHROPIC.keeps(key), "{key}");
        }
        assert!(!OPENAI.keeps("minLength") && !ANTHROPIC.keeps("minLength"));
    }
}
