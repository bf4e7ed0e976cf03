//! Structured output: schemas from Rust types prepared for each provider
//! (OpenAI strict, Anthropic native / forced tool / instruction, Gemini
//! responseSchema), and replies read in every form a model writes them —
//! bare JSON, fenced blocks, JSON in prose, JSON followed by cited passages —
//! including cut-off, JSON-free and schema-violating replies, through to
//! `JobResult::parsed::<T>()`.

use crate::providers::{build_result, Answer};
use crate::structured::{self, AnthropicOutput};
use crate::{Catalog, Job, JobResult, ResponseSchema, Usage};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

/// An invoice as a user would type it.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
struct Invoice {
    /// The invoice number as printed.
    invoice_number: String,
    /// Issue date, ISO 8601.
    invoice_date: String,
    /// Who sent the invoice.
    vendor: Party,
    line_items: Vec<LineItem>,
    total: f64,
    /// VAT rate as a fraction.
    vat_rate: Option<f64>,
    #[serde(default)]
    notes: Vec<String>,
    status: Status,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
struct Party {
    name: String,
    city: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
struct LineItem {
    description: String,
    quantity: u32,
    #[schemars(range(min = 0.0))]
    amount: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Status {
    Paid,
    Open,
}

fn invoice_schema() -> Value {
    ResponseSchema::of::<Invoice>().as_value().clone()
}

/// Every object node of a schema (through properties, items, anyOf, $defs).
fn objects(schema: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    fn walk<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
        match v {
            Value::Object(m) => {
                let t = m.get("type");
                if t == Some(&json!("object"))
                    || t.and_then(Value::as_array)
                        .is_some_and(|a| a.contains(&json!("object")))
                    || m.contains_key("properties")
                {
                    out.push(v);
                }
                for x in m.values() {
                    walk(x, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(schema, &mut out);
    out
}

fn has_key_anywhere(schema: &Value, key: &str) -> bool {
    match schema {
        Value::Object(m) => m.contains_key(key) || m.values().any(|v| has_key_anywhere(v, key)),
        Value::Array(a) => a.iter().any(|v| has_key_anywhere(v, key)),
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// Schema preparation
// ---------------------------------------------------------------------------

#[test]
fn openai_strict_closes_and_requires_every_object_including_defs() {
    let original = invoice_schema();
    let strict = structured::to_openai_strict(&original);
    let objs = objects(&strict);
    // Invoice, Party (in $defs), LineItem (in $defs).
    assert!(objs.len() >= 3, "{strict:#}");
    for o in &objs {
        assert_eq!(o["additionalProperties"], json!(false), "{o:#}");
        let props: Vec<&String> = o["properties"].as_object().unwrap().keys().collect();
        let required: Vec<&str> = o["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(
            props.len(),
            required.len(),
            "every property required: {o:#}"
        );
    }
    assert!(strict.get("$schema").is_none());
    // schemars writes `default` for #[serde(default)], and number formats:
    // strict mode refuses both.
    assert!(has_key_anywhere(&original, "default"), "{original:#}");
    assert!(!has_key_anywhere(&strict, "default"), "{strict:#}");
    let formats_ok = |v: &Value| -> bool {
        fn walk(v: &Value) -> bool {
            match v {
                Value::Object(m) => {
                    m.get("format").is_none_or(|f| {
                        [
                            "date-time",
                            "date",
                            "time",
                            "email",
                            "uuid",
                            "duration",
                            "hostname",
                            "ipv4",
                            "ipv6",
                        ]
                        .contains(&f.as_str().unwrap_or(""))
                    }) && m.values().all(walk)
                }
                Value::Array(a) => a.iter().all(walk),
                _ => true,
            }
        }
        walk(v)
    };
    assert!(has_key_anywhere(&original, "format"));
    assert!(formats_ok(&strict), "{strict:#}");
    // Optional `notes` (serde default) became nullable; required ones did not.
    let notes = &strict["properties"]["notes"];
    assert!(
        notes["type"]
            .as_array()
            .is_some_and(|t| t.contains(&json!("null")))
            || notes["anyOf"]
                .as_array()
                .is_some_and(|a| a.contains(&json!({"type": "null"}))),
        "{notes:#}"
    );
    assert_eq!(strict["properties"]["total"]["type"], json!("number"));
    // The strict schema is still a valid JSON Schema, and accepts a full answer
    // with nulls where the model has nothing to say.
    let answer = json!({
        "invoice_number": "INV-1", "invoice_date": "2024-03-15",
        "vendor": {"name": "ACME", "city": null},
        "line_items": [{"description": "Bolts", "quantity": 3, "amount": 9.5}],
        "total": 9.5, "vat_rate": null, "notes": null, "status": "open"
    });
    let v = jsonschema::validator_for(&strict).unwrap();
    assert!(
        v.is_valid(&answer),
        "{:?}",
        v.iter_errors(&answer)
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
    );
}

#[test]
fn openai_strict_nulls_for_absent_fields_validate_and_deserialize() {
    // What a strict model writes for an absent optional field is `null`; the
    // original schema says `notes` is an array. The null is dropped before
    // validation, so the answer validates and deserializes.
    let schema = ResponseSchema::of::<Invoice>();
    let reply = r#"{"invoice_number":"INV-1","invoice_date":"2024-03-15","vendor":{"name":"ACME","city":null},
        "line_items":[],"total":0,"vat_rate":null,"notes":null,"status":"paid"}"#;
    let parsed = structured::parse(reply, &schema).unwrap();
    assert!(
        parsed.validation_errors.is_empty(),
        "{:?}",
        parsed.validation_errors
    );
    assert!(parsed.value.get("notes").is_none());
    let result = JobResult {
        job_id: "j".into(),
        parsed_response: Some(parsed.value),
        ..Default::default()
    };
    let inv: Invoice = result.parsed().unwrap();
    assert_eq!(inv.notes, Vec::<String>::new());
    assert_eq!(inv.status, Status::Paid);
    assert_eq!(inv.vendor.city, None);
}

#[test]
fn openai_strict_handles_ref_siblings_one_of_and_maps() {
    let schema = json!({
        "type": "object",
        "properties": {
            "billing": {"$ref": "#/$defs/Address", "description": "Where the bill goes"},
            "shipping": {"$ref": "#/$defs/Address"},
            "payment": {"oneOf": [
                {"type": "object", "properties": {"iban": {"type": "string", "minLength": 15}}, "required": ["iban"]},
                {"type": "object", "properties": {"card": {"type": "string", "pattern": "^[0-9]{16}$"}}, "required": ["card"]}
            ]},
            "extra": {"type": "object", "additionalProperties": {"type": "string"}}
        },
        "required": ["billing"],
        "$defs": {"Address": {"type": "object", "properties": {"street": {"type": "string"}}, "required": ["street"]}}
    });
    let strict = structured::to_openai_strict(&schema);
    // $ref with a sibling is inlined; a bare $ref stays (optional → nullable wrapper).
    let billing = &strict["properties"]["billing"];
    assert!(billing.get("$ref").is_none(), "{billing:#}");
    assert_eq!(billing["description"], "Where the bill goes");
    assert_eq!(billing["additionalProperties"], json!(false));
    let shipping = &strict["properties"]["shipping"];
    assert_eq!(
        shipping["anyOf"][0]["$ref"], "#/$defs/Address",
        "{shipping:#}"
    );
    assert_eq!(shipping["anyOf"][1], json!({"type": "null"}));
    // oneOf → anyOf, and each branch strict; minLength moved into the description.
    let payment = &strict["properties"]["payment"];
    assert!(payment.get("oneOf").is_none());
    let iban = &payment["anyOf"][0]["properties"]["iban"];
    assert!(iban.get("minLength").is_none(), "{iban:#}");
    assert!(iban["description"]
        .as_str()
        .unwrap()
        .contains("minLength: 15"));
    assert_eq!(
        payment["anyOf"][1]["properties"]["card"]["pattern"],
        "^[0-9]{16}$"
    );
    // The free-form map cannot be strict: reported up front.
    let problems = structured::openai_strict_problems(&schema);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("extra"), "{problems:?}");
    assert!(structured::openai_strict_problems(&invoice_schema()).is_empty());
    // A list at the root is no problem: it is sent wrapped.
    let list = json!({"type": "array", "items": {"type": "string"}});
    assert!(structured::openai_strict_problems(&list).is_empty());
    let strict = structured::to_openai_strict(&list);
    assert_eq!(strict["type"], "object");
    assert_eq!(strict["properties"]["value"]["type"], "array");
    assert_eq!(strict["required"], json!(["value"]));
    assert_eq!(strict["additionalProperties"], false);
    // ...and the answer unwrapped again.
    let s = crate::ResponseSchema::from_value(list).unwrap();
    let p = structured::parse("{\"value\": [\"Ebro\", \"Tajo\"]}", &s).unwrap();
    assert_eq!(p.value, json!(["Ebro", "Tajo"]));
    assert!(p.validation_errors.is_empty());
}

#[test]
fn anthropic_schema_closes_objects_and_moves_unsupported_constraints() {
    let original = invoice_schema();
    let prepared = structured::to_anthropic_schema(&original);
    for o in objects(&prepared) {
        assert_eq!(o["additionalProperties"], json!(false), "{o:#}");
    }
    // `required` is kept as written: optional fields stay optional.
    assert_eq!(prepared["required"], original["required"]);
    // schemars writes minimum: 0 for u32 and the range attribute; Anthropic
    // refuses numeric bounds, so they move into the description.
    assert!(has_key_anywhere(&original, "minimum"));
    assert!(!has_key_anywhere(&prepared, "minimum"), "{prepared:#}");
    let line_item = &prepared["$defs"]["LineItem"]["properties"];
    assert!(line_item["amount"]["description"]
        .as_str()
        .unwrap()
        .contains("minimum: 0"));
    let s = json!({"type": "object", "properties": {
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 20}, "minItems": 2},
        "when": {"type": "string", "format": "date"},
        "kind": {"oneOf": [{"const": "a"}, {"const": "b"}]}
    }});
    let p = structured::to_anthropic_schema(&s);
    assert!(p["properties"]["tags"].get("minItems").is_none());
    assert!(p["properties"]["tags"]["description"]
        .as_str()
        .unwrap()
        .contains("minItems: 2"));
    assert_eq!(p["properties"]["when"]["format"], "date");
    assert!(p["properties"]["kind"].get("anyOf").is_some());
}

#[test]
fn anthropic_picks_native_forced_tool_or_instruction() {
    let cat = Catalog::builtin();
    let native = cat.lookup("claude-sonnet-4-5").unwrap();
    let old = cat.lookup("claude-3-5-haiku-latest").unwrap();
    assert!(native.capabilities.structured_output && !old.capabilities.structured_output);
    assert_eq!(
        structured::anthropic_output(&native, false),
        AnthropicOutput::Native
    );
    assert_eq!(
        structured::anthropic_output(&old, false),
        AnthropicOutput::ForcedTool
    );
    // Citations need a text answer, on every model.
    assert_eq!(
        structured::anthropic_output(&native, true),
        AnthropicOutput::Instruction
    );
    assert_eq!(
        structured::anthropic_output(&old, true),
        AnthropicOutput::Instruction
    );
}

#[test]
fn anthropic_tool_wraps_non_object_roots_and_unwraps_answers() {
    let object = invoice_schema();
    let tool = structured::anthropic_tool(&object);
    assert_eq!(tool["name"], structured::ANTHROPIC_TOOL_NAME);
    assert_eq!(tool["input_schema"]["type"], "object");
    assert!(tool["input_schema"].get("$schema").is_none());
    let input = json!({"total": 1});
    assert_eq!(
        structured::from_anthropic_tool_input(input.clone(), &object),
        input
    );

    let list = json!({"type": "array", "items": {"$ref": "#/$defs/Item"},
        "$defs": {"Item": {"type": "object", "properties": {"n": {"type": "integer"}}}}});
    let tool = structured::anthropic_tool(&list);
    let input_schema = &tool["input_schema"];
    assert_eq!(input_schema["type"], "object");
    assert_eq!(input_schema["required"], json!(["value"]));
    // The $defs moved to the new root so the $ref still resolves.
    let v = jsonschema::validator_for(input_schema).unwrap();
    assert!(v.is_valid(&json!({"value": [{"n": 1}]})));
    assert!(!v.is_valid(&json!({"value": [{"n": "x"}]})));
    assert_eq!(
        structured::from_anthropic_tool_input(json!({"value": [{"n": 1}]}), &list),
        json!([{"n": 1}])
    );
}

#[test]
fn schema_instruction_carries_the_schema() {
    let schema = invoice_schema();
    let text = structured::schema_instruction(&schema);
    assert!(text
        .starts_with("Respond with only a JSON object that validates against this JSON Schema: "));
    let at = text.find('{').unwrap();
    let embedded = structured::extract_json(&text[at..]).unwrap();
    assert_eq!(embedded["properties"], schema["properties"]);
    assert!(embedded.get("$schema").is_none());
    // A list is asked for wrapped, as every provider path sends it.
    let list = structured::schema_instruction(&json!({"type": "array"}));
    assert!(
        list.contains("only a JSON object") && list.contains("\"value\""),
        "{list}"
    );
}

#[test]
fn gemini_schema_is_the_openapi_subset() {
    let g = structured::to_gemini_schema(&invoice_schema());
    assert_eq!(g["type"], "OBJECT");
    assert!(!has_key_anywhere(&g, "$ref"), "{g:#}");
    assert!(!has_key_anywhere(&g, "$defs"));
    assert!(!has_key_anywhere(&g, "additionalProperties"));
    assert!(!has_key_anywhere(&g, "$schema"));
    // Inlined definitions, upper-case types, nullable options, enums as strings.
    assert_eq!(g["properties"]["vendor"]["type"], "OBJECT");
    assert_eq!(
        g["properties"]["vendor"]["properties"]["name"]["type"],
        "STRING"
    );
    let city = &g["properties"]["vendor"]["properties"]["city"];
    assert_eq!(city["type"], "STRING");
    assert_eq!(city["nullable"], true);
    assert_eq!(g["properties"]["vat_rate"]["type"], "NUMBER");
    assert_eq!(g["properties"]["vat_rate"]["nullable"], true);
    assert_eq!(g["properties"]["line_items"]["type"], "ARRAY");
    assert_eq!(
        g["properties"]["line_items"]["items"]["properties"]["quantity"]["type"],
        "INTEGER"
    );
    assert_eq!(g["properties"]["status"]["enum"], json!(["paid", "open"]));
    let order = g["propertyOrdering"].as_array().unwrap();
    assert_eq!(order.len(), g["properties"].as_object().unwrap().len());
    // A recursive schema is cut off instead of looping.
    let tree = json!({"$ref": "#/$defs/Node", "$defs": {"Node": {"type": "object",
        "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}}});
    let g = structured::to_gemini_schema(&tree);
    assert_eq!(g["type"], "OBJECT");
    assert!(g.to_string().len() < 20_000);
}

// ---------------------------------------------------------------------------
// Reading replies
// ---------------------------------------------------------------------------

const INVOICE_JSON: &str = r#"{
  "invoice_number": "INV-2024-0042",
  "invoice_date": "2024-03-15",
  "vendor": {"name": "ACME Industrial Supplies Ltd.", "city": "Leeds"},
  "line_items": [
    {"description": "Steel brackets {M8}", "quantity": 3, "amount": 360.0},
    {"description": "Welding service", "quantity": 1, "amount": 1250.0}
  ],
  "total": 1932.0,
  "vat_rate": 0.2,
  "notes": ["Payment within 30 days"],
  "status": "open"
}"#;

fn expected_invoice() -> Invoice {
    serde_json::from_str(INVOICE_JSON).unwrap()
}

#[test]
fn every_reply_form_parses_to_the_typed_invoice() {
    let schema = ResponseSchema::of::<Invoice>();
    let forms = [
        ("bare", INVOICE_JSON.to_string()),
        ("bare with BOM and spaces", format!("\u{feff}\n  {INVOICE_JSON}\n\n")),
        (
            "fenced json",
            format!("Here is the extracted invoice:\n\n```json\n{INVOICE_JSON}\n```\n\nLet me know if you need more."),
        ),
        ("fenced untagged", format!("```\n{INVOICE_JSON}\n```")),
        ("tilde fence", format!("~~~json\n{INVOICE_JSON}\n~~~")),
        (
            "prose",
            format!("Sure [1]. Based on the document, the invoice is {INVOICE_JSON} — note the VAT {{20%}}."),
        ),
        (
            // How a cited answer reads once its text blocks are joined: the
            // JSON, then cited passages.
            "json then cited passages",
            format!("{INVOICE_JSON}invoice_number: INV-2024-0042total: $1,932.00"),
        ),
        (
            "a wrong-shaped object first",
            format!("Schema noted: {{\"type\": \"object\"}}. Answer:\n{INVOICE_JSON}"),
        ),
        (
            "an unclosed fence (cut after the JSON)",
            format!("```json\n{INVOICE_JSON}\n"),
        ),
    ];
    for (name, text) in forms {
        let parsed = structured::parse(&text, &schema).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            parsed.validation_errors.is_empty(),
            "{name}: {:?}",
            parsed.validation_errors
        );
        let inv: Invoice = serde_json::from_value(parsed.value).unwrap();
        assert_eq!(inv, expected_invoice(), "{name}");
    }
}

#[test]
fn extract_json_prefers_whole_text_then_fences_then_prose() {
    assert_eq!(structured::extract_json(r#"[1, 2]"#), Some(json!([1, 2])));
    let text = "Compare {\"a\": 1} with\n```json\n{\"b\": 2}\n```";
    assert_eq!(structured::extract_json(text), Some(json!({"b": 2})));
    let cands = structured::json_candidates(text);
    assert_eq!(cands, vec![json!({"b": 2}), json!({"a": 1})]);
    // Braces inside strings, escaped quotes, nested arrays.
    let tricky = r#"Result: {"q": "say \"}\" now", "xs": [[1], {"y": "]"}]} end"#;
    assert_eq!(
        structured::extract_json(tricky),
        Some(json!({"q": "say \"}\" now", "xs": [[1], {"y": "]"}]}))
    );
    // Footnote markers and scalars are not answers.
    assert_eq!(
        structured::extract_json("See [1] and [2]. The total is 42."),
        None
    );
    assert_eq!(structured::extract_json("\"just a string\""), None);
}

#[test]
fn schema_violating_json_is_kept_with_its_errors() {
    let schema = ResponseSchema::of::<Invoice>();
    let reply = r#"```json
{"invoice_number": 42, "invoice_date": "2024-03-15",
 "vendor": {"name": "ACME"},
 "line_items": [{"description": "Bolts", "quantity": -3, "amount": 1.0}],
 "total": "1,932.00", "status": "overdue"}
```"#;
    let parsed = structured::parse(reply, &schema).unwrap();
    // The JSON is kept as the model wrote it...
    assert_eq!(parsed.value["total"], json!("1,932.00"));
    assert_eq!(parsed.value["invoice_number"], json!(42));
    // ...and every violation is named by its path.
    let errs = parsed.validation_errors.join("\n");
    for path in [
        "/invoice_number",
        "/total",
        "/status",
        "/line_items/0/quantity",
    ] {
        assert!(errs.contains(path), "missing {path} in:\n{errs}");
    }
}

#[test]
fn replies_without_json_fail_quoting_their_start() {
    let schema = ResponseSchema::of::<Invoice>();
    let refusal = "I'm sorry, but I can't read the attached scan: the image is too blurry to extract an invoice number.";
    let e = structured::parse(refusal, &schema).unwrap_err().to_string();
    assert!(e.contains("I'm sorry, but I can't read"), "{e}");
    assert!(e.contains("no JSON"), "{e}");

    // Cut off by max_tokens: the error says so.
    let cut = &INVOICE_JSON[..INVOICE_JSON.len() / 2];
    let e = structured::parse(&format!("```json\n{cut}"), &schema)
        .unwrap_err()
        .to_string();
    assert!(e.contains("max_tokens"), "{e}");
    assert!(e.contains("invoice_number"), "{e}");

    // Malformed JSON (single quotes, trailing comma) is not guessed at.
    let e = structured::parse("{'total': 12,}", &schema)
        .unwrap_err()
        .to_string();
    assert!(e.contains("{'total': 12,}"), "{e}");

    let e = structured::parse("   ", &schema).unwrap_err().to_string();
    assert!(e.contains("empty"), "{e}");

    // A very long reply is quoted only at its start.
    let long = format!("No JSON here. {}", "blah ".repeat(10_000));
    let e = structured::parse(&long, &schema).unwrap_err().to_string();
    assert!(e.len() < 600, "{}", e.len());
}

#[test]
fn array_root_schemas_read_arrays() {
    let schema = ResponseSchema::of::<Vec<LineItem>>();
    let reply = "Items: [1]\n[{\"description\": \"Bolts\", \"quantity\": 3, \"amount\": 9.5}]";
    let parsed = structured::parse(reply, &schema).unwrap();
    assert!(
        parsed.validation_errors.is_empty(),
        "{:?}",
        parsed.validation_errors
    );
    assert_eq!(parsed.value[0]["description"], "Bolts");
}

// ---------------------------------------------------------------------------
// Through JobResult
// ---------------------------------------------------------------------------

fn job() -> Job {
    Job::prompt("Extract the invoice.")
        .id("inv-1")
        .model("claude-sonnet-4-5")
        .schema::<Invoice>()
}

fn answer(text: &str) -> Answer {
    Answer {
        text: text.into(),
        usage: Usage {
            input_tokens: 1000,
            output_tokens: 200,
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn job_results_carry_parsed_values_errors_and_failures() {
    let model = Catalog::builtin().lookup("claude-sonnet-4-5").unwrap();
    let job = job();

    let ok = build_result(
        &job,
        &model,
        "msgbatch_1",
        answer(&format!("```json\n{INVOICE_JSON}\n```")),
    );
    assert!(ok.is_success());
    assert!(ok.validation_errors.is_empty());
    assert_eq!(ok.parsed::<Invoice>().unwrap(), expected_invoice());

    let bad = build_result(
        &job,
        &model,
        "msgbatch_1",
        answer(r#"{"invoice_number": "X", "total": "lots"}"#),
    );
    assert!(bad.is_success(), "schema violations do not fail the job");
    assert_eq!(bad.parsed_response.as_ref().unwrap()["total"], "lots");
    assert!(!bad.validation_errors.is_empty());
    let e = bad.parsed::<Invoice>().unwrap_err().to_string();
    assert!(e.contains("inv-1"), "{e}");
    // The result file round-trips the errors.
    let back = JobResult::from_json(&bad.to_json().unwrap()).unwrap();
    assert_eq!(back.validation_errors, bad.validation_errors);

    let none = build_result(
        &job,
        &model,
        "msgbatch_1",
        answer("The document is not an invoice."),
    );
    assert!(!none.is_success());
    assert!(none
        .error
        .as_deref()
        .unwrap()
        .contains("The document is not an invoice."));
    assert_eq!(none.parsed_response, None);
    assert_eq!(
        none.raw_response.as_deref(),
        Some("The document is not an invoice.")
    );

    // A forced tool's input is validated as data, without text parsing.
    let mut tool = answer("");
    tool.structured = Some(serde_json::from_str(INVOICE_JSON).unwrap());
    let r = build_result(&job, &model, "msgbatch_1", tool);
    assert_eq!(r.parsed::<Invoice>().unwrap(), expected_invoice());
}
