//! Deterministic replies: structured output validated with `jsonschema`,
//! citations checked against the documents, token accounting.

mod common;

use base64::Engine;
use batchata_emulator::EmulatorConfig;
use common::*;
use serde_json::{json, Value};

fn invoice_schema() -> Value {
    json!({
        "type": "object",
        "$defs": {
            "line": {
                "type": "object",
                "properties": {
                    "sku": {"type": "string"},
                    "quantity": {"type": "integer", "minimum": 1}
                },
                "required": ["sku", "quantity"],
                "additionalProperties": false
            }
        },
        "properties": {
            "invoice_number": {"type": "string"},
            "total": {"type": "number"},
            "paid": {"type": "boolean"},
            "currency": {"enum": ["USD", "EUR", "GBP"]},
            "customer": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "email": {"type": ["string", "null"]}},
                "required": ["name", "email"],
                "additionalProperties": false
            },
            "lines": {"type": "array", "items": {"$ref": "#/$defs/line"}, "minItems": 1},
            "notes": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "discount": {"type": ["number", "null"]}
        },
        "required": ["invoice_number", "total", "paid", "currency", "customer", "lines", "notes", "discount"],
        "additionalProperties": false
    })
}

const INVOICE_TEXT: &str = "ACME Supplies\nInvoice number: INV-001\nCustomer name: Jane Roe\nCurrency: EUR\nTotal: 1,234.50\nPaid: yes\nSKU: W-7\nQuantity: 3\n";

fn assert_valid(schema: &Value, value: &Value) {
    let validator = jsonschema::validator_for(schema).expect("schema compiles");
    if let Err(e) = validator.validate(value) {
        panic!("{value} does not validate: {e}");
    }
}

fn check_invoice(v: &Value) {
    assert_valid(&invoice_schema(), v);
    assert_eq!(v["invoice_number"], "INV-001");
    assert_eq!(v["total"], 1234.5);
    assert_eq!(v["paid"], true);
    assert_eq!(v["currency"], "EUR");
    assert_eq!(v["customer"]["name"], "Jane Roe");
    assert!(v["customer"]["email"].is_null());
    assert_eq!(v["lines"][0], json!({"sku": "W-7", "quantity": 3}));
    assert!(v["notes"].is_null() && v["discount"].is_null());
}

#[tokio::test]
async fn openai_json_schema_replies_validate_and_use_the_input() {
    let emu = start(EmulatorConfig::default()).await;
    let c = client();
    let mut line = chat_line("inv", INVOICE_TEXT);
    line["body"]["response_format"] = json!({
        "type": "json_schema",
        "json_schema": {"name": "invoice", "strict": true, "schema": invoice_schema()}
    });
    let b = create_openai(&c, &emu, &[line]).await;
    let done = wait_terminal(&c, &emu, b["id"].as_str().unwrap()).await;
    let out = file_lines(&c, &emu, &done["output_file_id"]).await;
    let content = out[0]["response"]["body"]["choices"][0]["message"]["content"]
        .as_str()
        .unwrap();
    check_invoice(&serde_json::from_str(content).unwrap());
}

#[tokio::test]
async fn anthropic_output_config_tool_and_system_schema() {
    let emu = start(EmulatorConfig::default()).await;
    let c = client();

    let mut p = params(INVOICE_TEXT);
    p["output_config"] = json!({"format": {"type": "json_schema", "schema": invoice_schema()}});
    let r = run_one(&c, &emu, p).await;
    assert_eq!(r["type"], "succeeded");
    let text = r["message"]["content"][0]["text"].as_str().unwrap();
    check_invoice(&serde_json::from_str(text).unwrap());

    let mut p = params(INVOICE_TEXT);
    p["tools"] = json!([{"name": "record_invoice", "description": "Save it", "input_schema": invoice_schema()}]);
    p["tool_choice"] = json!({"type": "tool", "name": "record_invoice"});
    let r = run_one(&c, &emu, p).await;
    let msg = &r["message"];
    assert_eq!(msg["stop_reason"], "tool_use");
    let block = msg["content"].as_array().unwrap().last().unwrap();
    assert_eq!(block["type"], "tool_use");
    assert_eq!(block["name"], "record_invoice");
    assert!(block["id"].as_str().unwrap().starts_with("toolu_"));
    check_invoice(&block["input"]);

    let mut p = params(INVOICE_TEXT);
    p["system"] = json!(format!(
        "Extract the invoice. Reply with JSON matching this schema: {}",
        invoice_schema()
    ));
    let r = run_one(&c, &emu, p).await;
    let text = r["message"]["content"][0]["text"].as_str().unwrap();
    check_invoice(&serde_json::from_str(text).unwrap());
}

#[tokio::test]
async fn tool_choice_naming_a_missing_tool_is_an_errored_result() {
    let emu = start(EmulatorConfig::default()).await;
    let c = client();
    let mut p = params("x");
    p["tool_choice"] = json!({"type": "tool", "name": "nope"});
    let r = run_one(&c, &emu, p).await;
    assert_eq!(r["type"], "errored");
    assert!(r["error"]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("nope"));
}

fn doc_params(document: Value, question: &str) -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 2048,
        "messages": [{"role": "user", "content": [document, {"type": "text", "text": question}]}],
    })
}

fn citations_of(message: &Value) -> Vec<Value> {
    message["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b.get("citations").and_then(Value::as_array))
        .flatten()
        .cloned()
        .collect()
}

#[tokio::test]
async fn plain_text_citations_use_char_locations() {
    let emu = start(EmulatorConfig::default()).await;
    let c = client();
    let doc = "The company was founded in 1990. Revenue grew 12% in the third quarter. Héllo wörld ends here.";
    let r = run_one(
        &c,
        &emu,
        doc_params(
            json!({"type": "document", "title": "Report", "citations": {"enabled": true},
                   "source": {"type": "text", "media_type": "text/plain", "data": doc}}),
            "How did revenue change in the third quarter?",
        ),
    )
    .await;
    let cits = citations_of(&r["message"]);
    assert!(!cits.is_empty());
    let chars: Vec<char> = doc.chars().collect();
    for cit in &cits {
        assert_eq!(cit["type"], "char_location");
        assert_eq!(cit["document_index"], 0);
        assert_eq!(cit["document_title"], "Report");
        assert!(cit["file_id"].is_null());
        let s = cit["start_char_index"].as_u64().unwrap() as usize;
        let e = cit["end_char_index"].as_u64().unwrap() as usize;
        let slice: String = chars[s..e].iter().collect();
        assert_eq!(slice, cit["cited_text"].as_str().unwrap());
    }
    assert!(cits[0]["cited_text"]
        .as_str()
        .unwrap()
        .contains("third quarter"));
}

#[tokio::test]
async fn pdf_citations_use_page_locations() {
    let emu = start(EmulatorConfig::default()).await;
    let c = client();
    let pages: [&[&str]; 3] = [
        &["Quarterly report", "Prepared by finance."],
        &["Invoice number: INV-777", "Total: 99.95"],
        &["Revenue grew 12% year over year in Q3."],
    ];
    let pdf = build_pdf(&pages);
    let data = base64::engine::general_purpose::STANDARD.encode(&pdf);
    let doc = json!({"type": "document", "citations": {"enabled": true},
                     "source": {"type": "base64", "media_type": "application/pdf", "data": data}});
    let mut p = doc_params(doc, "What is the invoice number and total?");
    let schema = json!({"type": "object", "properties": {"invoice_number": {"type": "string"}, "total": {"type": "number"}},
                        "required": ["invoice_number", "total"], "additionalProperties": false});
    p["output_config"] = json!({"format": {"type": "json_schema", "schema": schema}});
    let r = run_one(&c, &emu, p).await;
    let msg = &r["message"];
    let v: Value = serde_json::from_str(msg["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_valid(&schema, &v);
    assert_eq!(v, json!({"invoice_number": "INV-777", "total": 99.95}));
    let cits = citations_of(msg);
    assert_eq!(cits.len(), 2, "{msg}");
    for cit in &cits {
        assert_eq!(cit["type"], "page_location");
        let start = cit["start_page_number"].as_u64().unwrap() as usize;
        assert_eq!(cit["end_page_number"].as_u64().unwrap() as usize, start + 1);
        let page_lines = pages[start - 1];
        let cited = cit["cited_text"].as_str().unwrap();
        for line in cited.lines().filter(|l| !l.trim().is_empty()) {
            assert!(
                page_lines.contains(&line.trim()),
                "'{line}' not on page {start}"
            );
        }
    }
    let all: String = cits
        .iter()
        .map(|c| c["cited_text"].as_str().unwrap())
        .collect();
    assert!(all.contains("INV-777") && all.contains("99.95"));
}

#[tokio::test]
async fn content_documents_use_block_locations_and_schema_fields_map_to_citations() {
    let emu = start(EmulatorConfig::default()).await;
    let c = client();
    let blocks = [
        "Customer: Jane Roe",
        "Order id: ORD-42",
        "Shipping: express",
    ];
    let doc = json!({"type": "document", "title": "Order", "citations": {"enabled": true},
        "source": {"type": "content", "content": blocks.iter().map(|t| json!({"type": "text", "text": t})).collect::<Vec<_>>()}});
    let mut p = doc_params(doc, "Extract the order id");
    let schema = json!({"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]});
    p["output_config"] = json!({"format": {"type": "json_schema", "schema": schema}});
    let r = run_one(&c, &emu, p).await;
    let msg = &r["message"];
    let v: Value = serde_json::from_str(msg["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(v["order_id"], "ORD-42");
    let cits = citations_of(msg);
    assert_eq!(cits.len(), 1);
    assert_eq!(cits[0]["type"], "content_block_location");
    assert_eq!(cits[0]["start_block_index"], 1);
    assert_eq!(cits[0]["end_block_index"], 2);
    assert_eq!(cits[0]["cited_text"], blocks[1]);
    assert!(cits[0]["cited_text"]
        .as_str()
        .unwrap()
        .contains(v["order_id"].as_str().unwrap()));
}

#[tokio::test]
async fn mixed_citation_settings_are_rejected_per_request() {
    let emu = start(EmulatorConfig::default()).await;
    let c = client();
    let d = |on: bool| {
        json!({"type": "document", "citations": {"enabled": on},
                              "source": {"type": "text", "media_type": "text/plain", "data": "x."}})
    };
    let p = json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": [d(true), d(false), {"type": "text", "text": "q"}]}]});
    let r = run_one(&c, &emu, p).await;
    assert_eq!(r["type"], "errored");
}

#[tokio::test]
async fn max_tokens_truncates_on_both_providers() {
    let emu = start(EmulatorConfig::default()).await;
    let c = client();
    let mut p = params("A question long enough that the echo will not fit in three tokens");
    p["max_tokens"] = json!(3);
    let r = run_one(&c, &emu, p).await;
    let msg = &r["message"];
    assert_eq!(msg["stop_reason"], "max_tokens");
    assert!(msg["usage"]["output_tokens"].as_u64().unwrap() <= 3);
    assert_eq!(msg["content"][0]["text"], "Echo: A ques");

    let mut line = chat_line("t", "A question long enough that the echo will not fit");
    line["body"]["max_completion_tokens"] = json!(2);
    let b = create_openai(&c, &emu, &[line]).await;
    let done = wait_terminal(&c, &emu, b["id"].as_str().unwrap()).await;
    let out = file_lines(&c, &emu, &done["output_file_id"]).await;
    let body = &out[0]["response"]["body"];
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert!(body["usage"]["completion_tokens"].as_u64().unwrap() <= 2);
}

#[tokio::test]
async fn replies_are_a_function_of_the_request() {
    let c = client();
    let mut texts = Vec::new();
    for _ in 0..2 {
        let emu = start(EmulatorConfig::default()).await;
        let r = run_one(&c, &emu, params("same question")).await;
        texts.push(
            r["message"]["content"][0]["text"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        let other = run_one(&c, &emu, params("another question")).await;
        assert_ne!(
            other["message"]["content"][0]["text"].as_str().unwrap(),
            texts[0]
        );
    }
    assert_eq!(texts[0], texts[1]);
}

#[tokio::test]
async fn plain_answers_end_with_the_recomputable_content_tag() {
    let emu = start(EmulatorConfig::default()).await;
    let c = client();
    let mut p = params("What is 2+2?");
    p["system"] = json!("Be brief.");
    let result = run_one(&c, &emu, p).await;
    let text = result["message"]["content"][0]["text"].as_str().unwrap();
    let tag =
        batchata_emulator::answer_tag("claude-sonnet-4-5", "Be brief.", &["What is 2+2?"], &[]);
    assert_eq!(text, format!("Echo: What is 2+2? #{tag}"));

    // OpenAI: system and user messages, the same recipe.
    let b = create_openai(&c, &emu, &[chat_line("o", "What is 2+2?")]).await;
    let b = wait_terminal(&c, &emu, b["id"].as_str().unwrap()).await;
    let lines = file_lines(&c, &emu, &b["output_file_id"]).await;
    let content = lines[0]["response"]["body"]["choices"][0]["message"]["content"]
        .as_str()
        .unwrap();
    let tag = batchata_emulator::answer_tag("gpt-5-mini", "Be brief.", &["What is 2+2?"], &[]);
    assert!(content.ends_with(&format!("#{tag}")), "{content}");
    // An edited question gets another tag.
    assert_ne!(
        tag,
        batchata_emulator::answer_tag("gpt-5-mini", "Be brief.", &["What is 2+3?"], &[])
    );
}
