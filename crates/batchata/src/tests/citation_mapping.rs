//! Citation-to-field mapping on realistic answers: an invoice (PDF, page
//! citations), a contract (plain text, character citations) and a research
//! abstract (custom content, block citations), each a full Anthropic result
//! line read by the Anthropic provider's own result parser — then every
//! value variant, nested and array paths, the three confidence levels and
//! the unmapped-field warning, case by case.

use std::collections::BTreeMap;
use std::path::Path;

use crate::citations::{self, Confidence};
use crate::providers::anthropic::response::{line_result, ResultLine};
use crate::{Catalog, Citation, Job, JobResult};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs a stored result line through the Anthropic provider's parser, as a
/// batch download would.
fn result_of(line_file: &str, job: Job) -> JobResult {
    let line: ResultLine = serde_json::from_str(&fixture(line_file)).unwrap();
    assert_eq!(line.custom_id, job.id_str());
    let model = Catalog::builtin().lookup("claude-sonnet-4-5").unwrap();
    line_result(line.result, &job, &model, "msgbatch_fixture")
}

fn mapping(r: &JobResult) -> &BTreeMap<String, Vec<Citation>> {
    r.citation_mappings
        .as_ref()
        .unwrap_or_else(|| panic!("no mappings: {r:#?}"))
}

fn confidence(m: &BTreeMap<String, Vec<Citation>>, path: &str) -> String {
    let cits = m.get(path).unwrap_or_else(|| {
        panic!(
            "{path} not mapped; mapped: {:?}",
            m.keys().collect::<Vec<_>>()
        )
    });
    cits[0].confidence.unwrap().to_string()
}

// ---------------------------------------------------------------------------
// Invoice: PDF with page citations, JSON written value by value
// ---------------------------------------------------------------------------

#[derive(Debug, Deserialize, JsonSchema)]
#[allow(dead_code)]
struct Invoice {
    invoice_number: String,
    invoice_date: String,
    vendor: Vendor,
    customer: String,
    line_items: Vec<LineItem>,
    subtotal: f64,
    vat_rate: f64,
    total: f64,
    currency: String,
    paid: bool,
    payment_terms: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[allow(dead_code)]
struct Vendor {
    name: String,
    city: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[allow(dead_code)]
struct LineItem {
    description: String,
    quantity: u32,
    unit_price: f64,
    amount: f64,
}

fn invoice_result() -> JobResult {
    let job = Job::file("invoice-0042.pdf", "Extract the invoice.")
        .id("invoice-0042")
        .model("claude-sonnet-4-5")
        .schema::<Invoice>()
        .citations(true);
    result_of("invoice_cited.json", job)
}

#[test]
fn fixture_citations_point_at_their_real_pages() {
    let pages: Vec<String> = fixture("invoice_pages.txt")
        .split('\u{c}')
        .map(|p| p.trim_matches('\n').to_string())
        .collect();
    let r = invoice_result();
    let cits = r.citations.as_ref().unwrap();
    assert_eq!(cits.len(), 10);
    for c in cits {
        let page = c.page.unwrap() as usize;
        assert!(pages[page - 1].contains(c.text.trim_end()), "{c:?}");
    }
}

#[test]
fn invoice_fields_map_to_their_pages_with_confidence() {
    let r = invoice_result();
    assert!(r.is_success(), "{:?}", r.error);
    assert!(r.validation_errors.is_empty(), "{:?}", r.validation_errors);
    let inv: Invoice = r.parsed().unwrap();
    assert_eq!(inv.line_items.len(), 2);
    let m = mapping(&r);
    let expect = [
        ("invoice_number", 1, "high"),
        ("invoice_date", 1, "high"), // ISO in the answer, "March 15, 2024" on the page
        ("vendor.name", 1, "medium"), // value cited, "name" not written near it
        ("vendor.city", 1, "medium"),
        ("customer", 1, "medium"),
        ("line_items[0].description", 2, "high"),
        ("line_items[0].quantity", 2, "high"),
        ("line_items[0].unit_price", 2, "high"), // 120.0 ~ "$120.00"
        ("line_items[0].amount", 2, "high"),
        ("line_items[1].quantity", 2, "high"),
        ("line_items[1].unit_price", 2, "high"), // 1250.0 ~ "$1,250.00"
        ("line_items[1].amount", 2, "high"),
        ("subtotal", 2, "high"),
        ("vat_rate", 2, "medium"), // 0.2 ~ "20%"
        ("total", 2, "high"),      // 1932.0 ~ "$1,932.00"
        ("payment_terms", 2, "high"),
    ];
    for (path, page, conf) in expect {
        let cits = &m[path];
        assert_eq!(cits[0].page, Some(page), "{path}: {cits:#?}");
        assert_eq!(confidence(m, path), conf, "{path}: {cits:#?}");
        assert!(
            cits[0].match_reason.as_deref().unwrap().contains("value"),
            "{path}"
        );
    }
    // Line item 0's numbers come from its own row, not the other's.
    assert!(m["line_items[0].amount"]
        .iter()
        .all(|c| c.text.contains("Steel")));
    assert!(m["line_items[1].amount"]
        .iter()
        .all(|c| c.text.contains("Welding")));
    // USD is not in the document; booleans are not looked up.
    assert!(!m.contains_key("currency"));
    assert!(!m.contains_key("paid"));
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    // The mapped citation is the provider's citation in full.
    let total = &m["total"][0];
    let meta = total.metadata.as_ref().unwrap();
    assert_eq!(meta["type"], "page_location");
    assert_eq!(meta["start_page_number"], 2);
    assert_eq!(meta["end_page_number"], 3);
    assert_eq!(meta["document_index"], 0);
    assert_eq!(total.source, "invoice-0042.pdf");
    assert_eq!(total.text, "Total due: $1,932.00\n");
    let reason = total.match_reason.as_deref().unwrap();
    assert!(
        reason.contains("1932.0") && reason.contains("1,932.00"),
        "{reason}"
    );
}

#[test]
fn mappings_survive_the_result_file() {
    let r = invoice_result();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("invoice-0042.json");
    r.save_to_json(&path).unwrap();
    let back = JobResult::load_from_json(&path).unwrap();
    assert_eq!(back.citation_mappings, r.citation_mappings);
    let raw: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        raw["citation_mappings"]["line_items[1].unit_price"][0]["confidence"],
        "high"
    );
}

// ---------------------------------------------------------------------------
// Contract: plain text with character citations, prose then a JSON block
// ---------------------------------------------------------------------------

#[derive(Debug, Deserialize, JsonSchema)]
#[allow(dead_code)]
struct Contract {
    parties: Vec<Party>,
    effective_date: String,
    term_months: u32,
    monthly_fee: f64,
    currency: String,
    payment_due_days: u32,
    termination_notice_days: u32,
    governing_law: String,
    auto_renewal: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[allow(dead_code)]
struct Party {
    name: String,
    role: String,
}

#[test]
fn contract_fields_map_through_prose_and_character_ranges() {
    let job = Job::file("contract.txt", "Extract the contract terms.")
        .id("contract-7")
        .model("claude-sonnet-4-5")
        .schema::<Contract>()
        .citations(true);
    let r = result_of("contract_cited.json", job);
    assert!(r.is_success(), "{:?}", r.error);
    let c: Contract = r.parsed().unwrap();
    assert_eq!(c.parties[1].name, "Initech LLC");
    let m = mapping(&r);
    let doc: Vec<char> = fixture("contract.txt").chars().collect();
    // Every mapped citation's character range really holds its cited text.
    for cits in m.values() {
        for cit in cits {
            let meta = cit.metadata.as_ref().unwrap();
            assert_eq!(meta["type"], "char_location");
            let s = meta["start_char_index"].as_u64().unwrap() as usize;
            let e = meta["end_char_index"].as_u64().unwrap() as usize;
            assert_eq!(doc[s..e].iter().collect::<String>(), cit.text);
            assert!(meta["answer_text"].is_string());
        }
    }
    let expect = [
        ("term_months", "high", "Term"),
        ("monthly_fee", "high", "4.500,00"), // 4500 ~ "EUR 4.500,00"
        ("termination_notice_days", "high", "Termination"),
        ("governing_law", "high", "New York"),
        ("effective_date", "medium", "1 July 2023"), // 2023-07-01 ~ "1 July 2023"
        ("parties[0].name", "medium", "Globex"),
        ("parties[1].name", "medium", "Initech"),
        ("currency", "medium", "EUR"),
        ("payment_due_days", "medium", "30 days"),
    ];
    for (path, conf, in_text) in expect {
        assert_eq!(confidence(m, path), conf, "{path}: {:#?}", m[path]);
        assert!(m[path][0].text.contains(in_text), "{path}: {:#?}", m[path]);
    }
    // "client" is named in two passages: both are kept, at the same level.
    let client = &m["parties[1].role"];
    assert!(client.len() >= 2, "{client:#?}");
    assert!(client.iter().all(|c| c.confidence == client[0].confidence));
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

// ---------------------------------------------------------------------------
// Abstract: custom content, few citations → warning
// ---------------------------------------------------------------------------

#[derive(Debug, Deserialize, JsonSchema)]
#[allow(dead_code)]
struct Abstract {
    title: String,
    authors: Vec<String>,
    sample_size: u32,
    sites: u32,
    hazard_ratio: f64,
    relative_reduction: f64,
    p_value: f64,
    conclusion: String,
}

#[test]
fn abstract_with_few_citations_warns_about_unmapped_fields() {
    let blocks: Vec<String> = serde_json::from_str(&fixture("abstract_blocks.json")).unwrap();
    let job = Job::file("abstract.txt", "Summarise the study.")
        .id("abstract-3")
        .model("claude-sonnet-4-5")
        .schema::<Abstract>()
        .citations(true);
    let r = result_of("abstract_cited.json", job);
    assert!(r.is_success(), "{:?}", r.error);
    let a: Abstract = r.parsed().unwrap();
    assert_eq!(a.authors.len(), 3);
    let m = mapping(&r);
    for (path, block) in [
        ("title", 0),
        ("hazard_ratio", 3),
        ("relative_reduction", 3), // 0.23 ~ "23%"
        ("p_value", 3),
    ] {
        let cit = &m[path][0];
        let meta = cit.metadata.as_ref().unwrap();
        assert_eq!(meta["type"], "content_block_location");
        assert_eq!(meta["start_block_index"], block, "{path}");
        assert_eq!(meta["end_block_index"], block + 1, "{path}");
        assert_eq!(cit.text, blocks[block]);
    }
    assert_eq!(confidence(m, "title"), "high");
    assert_eq!(confidence(m, "hazard_ratio"), "high");
    for unmapped in [
        "authors[0]",
        "authors[2]",
        "sample_size",
        "sites",
        "conclusion",
    ] {
        assert!(!m.contains_key(unmapped), "{unmapped}");
    }
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    let w = &r.warnings[0];
    assert!(w.contains("6 of 10 fields"), "{w}");
    assert!(w.contains("authors[1]") && w.contains("sample_size"), "{w}");
}

// ---------------------------------------------------------------------------
// Value variants, one by one
// ---------------------------------------------------------------------------

fn cited(text: &str) -> Citation {
    Citation {
        text: text.into(),
        source: "doc.pdf".into(),
        page: Some(1),
        metadata: Some(
            json!({"type": "page_location", "start_page_number": 1, "end_page_number": 2}),
        ),
        confidence: None,
        match_reason: None,
    }
}

fn cited_with_answer(text: &str, answer: &str) -> Citation {
    let mut c = cited(text);
    c.metadata.as_mut().unwrap()["answer_text"] = json!(answer);
    c
}

/// Whether `value` (a field named `field`) maps to a citation of `text`.
fn maps(field: &str, value: Value, text: &str) -> bool {
    let m = citations::map_fields(&json!({ field: value }), &[cited(text)]);
    m.fields.contains_key(field)
}

#[test]
fn numbers_match_with_and_without_currency_separators_and_decimals() {
    for text in [
        "Total due: $1,932.00",
        "Total: USD 1932",
        "Gesamtbetrag: 1.932,00 €",
        "Total CHF 1'932.00",
        "TOTAL 1932.0",
        "Total (EUR): 1 932,00", // not a single token: must not match...
    ] {
        let expected = !text.contains("1 932");
        assert_eq!(maps("total", json!(1932.0), text), expected, "{text}");
    }
    // ...and integers vs. decimals, both directions.
    assert!(maps("total", json!(1932), "Total: $1,932.00"));
    assert!(maps("total", json!(12.5), "Total: 12,50 EUR"));
    // The value as a string with its currency.
    assert!(maps("total", json!("$1,932.00"), "Amount due 1932.00 USD"));
    assert!(maps("total", json!("EUR 1.932,00"), "Total €1,932"));
    // Percentages both ways.
    assert!(maps("vat_rate", json!(0.2), "VAT (20%): $322.00"));
    assert!(maps("vat_rate", json!("20%"), "VAT rate 20 %"));
    assert!(maps("vat_rate", json!(20), "VAT rate 20%"));
    // Different numbers do not match, nor digits inside identifiers.
    assert!(!maps("total", json!(1932.5), "Total due: $1,932.00"));
    assert!(!maps("total", json!(193), "Total due: $1,932.00"));
    assert!(!maps("pages", json!(4), "Form A4 only"));
}

#[test]
fn dates_match_in_iso_long_short_and_numeric_orders() {
    for text in [
        "Date: 2024-03-15",
        "Date: March 15, 2024",
        "Date: 15 March 2024",
        "Dated the 15th of March, 2024",
        "Date: Mar. 15, 2024",
        "Date: 15-Mar-24",
        "Date: 03/15/2024",
        "Datum: 15.03.2024",
        "Date: 2024/03/15",
    ] {
        assert!(maps("invoice_date", json!("2024-03-15"), text), "{text}");
    }
    // The value itself in any of those forms.
    assert!(maps("date", json!("March 15, 2024"), "issued 15/03/2024"));
    assert!(maps("date", json!("15.03.2024"), "on 2024-03-15"));
    assert!(maps(
        "date",
        json!("Friday, 15 March 2024"),
        "on 2024-03-15"
    ));
    // Ambiguous numeric dates match either reading; other days do not.
    assert!(maps("date", json!("2024-04-03"), "on 03/04/2024"));
    assert!(maps("date", json!("2024-03-04"), "on 03/04/2024"));
    assert!(!maps("date", json!("2024-03-16"), "Date: March 15, 2024"));
    assert!(!maps("date", json!("2023-03-15"), "Date: March 15, 2024"));
}

#[test]
fn strings_match_case_insensitively_quoted_and_at_word_boundaries() {
    assert!(maps(
        "vendor",
        json!("ACME Corp"),
        "Supplier: Acme corp, Leeds"
    ));
    assert!(maps("vendor", json!("Acme  Corp"), "Supplier: ACME\nCORP."));
    assert!(maps(
        "terms",
        json!("\"Net 30\""),
        "Payment terms: \u{201c}Net 30\u{201d}"
    ));
    assert!(maps("terms", json!("Net 30"), "Payment terms: 'Net 30'"));
    assert!(maps(
        "name",
        json!("O\u{2019}Brien & Sons"),
        "Sold by O'Brien & Sons Ltd"
    ));
    assert!(!maps("vendor", json!("Acme"), "Acmeville Hardware"));
    assert!(!maps("code", json!("A"), "Appendix B"));
    // Multi-word values also match by their words, weakly.
    let m = citations::map_fields(
        &json!({"vendor": "Acme Corporation"}),
        &[cited("Supplier: ACME Corp., Leeds")],
    );
    let c = &m.fields["vendor"][0];
    assert_eq!(c.confidence, Some(Confidence::Low), "{c:#?}");
    assert!(c
        .match_reason
        .as_deref()
        .unwrap()
        .contains("2 of its 2 words"));
}

#[test]
fn confidence_levels_follow_value_place_and_field_name() {
    let cases = [
        // Value in the cited text, field name next to it.
        (
            "invoice_number",
            json!("INV-7"),
            cited("Invoice number: INV-7"),
            Confidence::High,
        ),
        // Partial name words ("No." for number) still count.
        (
            "invoice_number",
            json!("INV-7"),
            cited("Invoice No. INV-7"),
            Confidence::High,
        ),
        // A misspelt label: close spelling is a weaker name match.
        (
            "invoice_number",
            json!("INV-7"),
            cited("Invioce nmber: INV-7"),
            Confidence::Medium,
        ),
        // Value cited, name nowhere.
        (
            "invoice_number",
            json!("INV-7"),
            cited("Reference INV-7 applies"),
            Confidence::Medium,
        ),
        // Value only in the answer text, name there too.
        (
            "total",
            json!(40),
            cited_with_answer("Amount payable within 30 days", "the total is 40 EUR"),
            Confidence::Medium,
        ),
        // Value only in the answer text, no name.
        (
            "total",
            json!(40),
            cited_with_answer("Payable within 30 days", "40 EUR are due"),
            Confidence::Low,
        ),
        // A short number cited with no name proves little.
        ("quantity", json!(3), cited("Page 3 of 4"), Confidence::Low),
        ("quantity", json!(3), cited("Quantity: 3"), Confidence::High),
    ];
    for (field, value, cit, want) in cases {
        let m = citations::map_fields(&json!({ field: value }), std::slice::from_ref(&cit));
        let got = m.fields.get(field).map(|c| c[0].confidence.unwrap());
        assert_eq!(
            got,
            Some(want),
            "{field}={value} in {:?}: {:#?}",
            cit.text,
            m.fields
        );
    }
}

#[test]
fn best_level_is_kept_best_first() {
    let cits = [
        cited("Reference INV-7 applies"),
        cited("Invoice number: INV-7"),
        cited("Invoice No. INV-7 (copy)"),
        cited("Nothing here"),
    ];
    let m = citations::map_fields(&json!({"invoice_number": "INV-7"}), &cits);
    let got = &m.fields["invoice_number"];
    assert_eq!(got.len(), 2, "{got:#?}");
    assert!(got.iter().all(|c| c.confidence == Some(Confidence::High)));
    assert_eq!(got[0].text, "Invoice number: INV-7", "exact name first");
}

#[test]
fn nested_and_array_paths() {
    let value = json!({
        "vendor": {"name": "Globex", "address": {"city": "Springfield"}},
        "line_items": [
            {"sku": "A-1", "amount": 10.5},
            {"sku": "B-2", "amount": 20},
            {"sku": "C-3", "amount": 30.25}
        ],
        "tags": ["urgent", "paper"],
        "totals": {"net.eur": 60.75},
        "matrix": [[1, 2]],
        "missing": null,
        "flag": true
    });
    let paths: Vec<String> = citations::leaves(&value)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    for p in [
        "vendor.name",
        "vendor.address.city",
        "line_items[2].amount",
        "line_items[0].sku",
        "tags[1]",
        r#"totals["net.eur"]"#,
        "matrix[0][1]",
        "flag",
    ] {
        assert!(paths.contains(&p.to_string()), "{p} not in {paths:?}");
    }
    assert!(!paths.iter().any(|p| p == "missing"));
    let cits = [
        cited("Line 3: C-3 amount 30.25"),
        cited("Line 1: A-1 amount 10.50"),
        cited("Vendor: Globex, Springfield"),
        cited("Tags: urgent"),
        cited("Net (EUR): 60.75"),
    ];
    let m = citations::map_fields(&value, &cits);
    assert_eq!(
        m.fields["line_items[2].amount"][0].text,
        "Line 3: C-3 amount 30.25"
    );
    assert_eq!(
        m.fields["line_items[0].amount"][0].text,
        "Line 1: A-1 amount 10.50"
    );
    assert_eq!(
        m.fields["line_items[0].sku"][0].text,
        "Line 1: A-1 amount 10.50"
    );
    assert!(!m.fields.contains_key("line_items[1].amount"));
    assert_eq!(
        m.fields["vendor.address.city"][0].text,
        "Vendor: Globex, Springfield"
    );
    // The parent's name ("vendor") backs a generic key ("name").
    let reason = m.fields["vendor.name"][0].match_reason.clone().unwrap();
    assert!(reason.contains("within 'vendor'"), "{reason}");
    assert_eq!(m.fields["tags[0]"][0].text, "Tags: urgent");
    assert_eq!(m.fields[r#"totals["net.eur"]"#][0].text, "Net (EUR): 60.75");
    assert!(m.unmapped.contains(&"line_items[1].sku".to_string()));
    assert!(
        !m.unmapped.contains(&"flag".to_string()),
        "booleans are not looked up"
    );
}

#[test]
fn warning_only_when_more_than_half_unmapped() {
    let cits = [cited("Invoice number: INV-7, total 40")];
    // 2 of 4 unmapped: exactly half, no warning.
    let half = citations::map_fields(
        &json!({"invoice_number": "INV-7", "total": 40, "vendor": "Globex", "city": "Paris"}),
        &cits,
    );
    assert_eq!(half.unmapped.len(), 2);
    assert!(half.warnings.is_empty(), "{:?}", half.warnings);
    // 3 of 5 unmapped: warning naming them.
    let most = citations::map_fields(
        &json!({"invoice_number": "INV-7", "total": 40, "vendor": "Globex", "city": "Paris", "zip": "75001"}),
        &cits,
    );
    assert_eq!(most.warnings.len(), 1);
    let w = &most.warnings[0];
    assert!(
        w.contains("3 of 5") && w.contains("vendor") && w.contains("zip"),
        "{w}"
    );
    // No citable fields at all (only booleans): nothing to warn about.
    let none = citations::map_fields(&json!({"paid": true}), &cits);
    assert!(none.fields.is_empty() && none.warnings.is_empty());
}

#[test]
fn citations_without_answer_text_or_metadata_still_map() {
    let bare = Citation {
        text: "Total due: $40.00".into(),
        source: "a.txt".into(),
        page: None,
        metadata: None,
        confidence: None,
        match_reason: None,
    };
    let m = citations::map_fields(&json!({"total": 40}), std::slice::from_ref(&bare));
    let c = &m.fields["total"][0];
    assert_eq!(c.confidence, Some(Confidence::High));
    assert_eq!(c.text, bare.text);
    assert_eq!(c.metadata, None);
    // The same passage cited twice for two pieces of the answer is one
    // citation, kept as the provider gave it; the answer texts of both count.
    let twice = [
        cited_with_answer("Amount: $40.00", "40 EUR"),
        cited_with_answer("Amount: $40.00", "the total"),
    ];
    let m = citations::map_fields(&json!({"total": 40}), &twice);
    let got = &m.fields["total"];
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].metadata, twice[0].metadata);
    assert_eq!(got[0].confidence, Some(Confidence::High), "{got:#?}");
}
