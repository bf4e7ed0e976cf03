//! Foundation tests of `JobResult` and `Citation`: the JSON field names the
//! Python library writes, round trips through text and through files on
//! disk, typed access to structured answers, and the small accessors.

use std::collections::{BTreeMap, BTreeSet};

use batchata::result::{Confidence, CANCELLED_BY_USER, COST_LIMIT_EXCEEDED};
use batchata::{Citation, Error, JobOutcome, JobResult};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Invoice {
    number: String,
    total: f64,
    vendor: Vendor,
    lines: Vec<String>,
    paid: Option<bool>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Vendor {
    name: String,
}

fn citation(text: &str, page: Option<u32>) -> Citation {
    Citation {
        text: text.into(),
        source: "invoice.pdf".into(),
        page,
        metadata: Some(
            json!({"type": "page_location", "start_page_number": 1, "end_page_number": 2}),
        ),
        confidence: None,
        match_reason: None,
    }
}

fn full_result() -> JobResult {
    let invoice = Invoice {
        number: "INV-7".into(),
        total: 1234.5,
        vendor: Vendor {
            name: "ACME — Straße 5 東京".into(),
        },
        lines: vec!["Tea".into(), "Cake".into()],
        paid: None,
    };
    let mut mapped = citation("Total: $1,234.50", Some(1));
    mapped.confidence = Some(Confidence::High);
    mapped.match_reason = Some("value '1234.5' found in cited text".into());
    JobResult {
        job_id: "inv-7".into(),
        raw_response: Some("{\"number\":\"INV-7\"} ✓\nline two".into()),
        parsed_response: Some(serde_json::to_value(&invoice).unwrap()),
        citations: Some(vec![
            citation("Total: $1,234.50", Some(1)),
            citation("ACME", None),
        ]),
        citation_mappings: Some(BTreeMap::from([("total".to_string(), vec![mapped])])),
        input_tokens: 3_015,
        output_tokens: 87,
        cost_usd: 0.000_251_325,
        error: None,
        batch_id: Some("msgbatch_01ABC".into()),
        validation_errors: vec![],
        warnings: vec![],
        fingerprint: Some("0123456789abcdef0123456789abcdef".into()),
        outcome: Some(JobOutcome::Completed),
    }
}

const PYTHON_FIELDS: [&str; 10] = [
    "job_id",
    "raw_response",
    "parsed_response",
    "citations",
    "citation_mappings",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "error",
    "batch_id",
];

#[test]
fn json_uses_exactly_the_python_field_names() {
    let v: Value = serde_json::from_str(&full_result().to_json().unwrap()).unwrap();
    let mut keys: BTreeSet<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    // Ours, beside Python's (its from_dict ignores extra fields).
    assert!(
        keys.remove("fingerprint"),
        "the request's fingerprint is kept"
    );
    assert!(keys.remove("outcome"), "how the job ended, in a field");
    assert_eq!(v["outcome"], "completed");
    assert_eq!(keys, PYTHON_FIELDS.into_iter().collect());
    assert_eq!(
        v["error"],
        Value::Null,
        "absent values are written as null, as Python does"
    );
    let c = &v["citations"][0];
    let ckeys: BTreeSet<&str> = c.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    assert_eq!(
        ckeys,
        [
            "text",
            "source",
            "page",
            "metadata",
            "confidence",
            "match_reason"
        ]
        .into_iter()
        .collect()
    );
    assert_eq!(v["citations"][1]["page"], Value::Null);
    assert_eq!(v["citation_mappings"]["total"][0]["confidence"], "high");
    assert_eq!(v["input_tokens"], 3_015);
    assert_eq!(v["cost_usd"], 0.000_251_325);

    // A failed result: every field still there.
    let failed = JobResult::failed("j2", "Cost limit exceeded");
    let v = serde_json::to_value(&failed).unwrap();
    let keys: BTreeSet<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    assert_eq!(keys, PYTHON_FIELDS.into_iter().collect());
    assert_eq!(v["raw_response"], Value::Null);
    assert_eq!(v["input_tokens"], 0);

    // Our extra fields appear only when they say something.
    let mut r = full_result();
    r.validation_errors = vec!["/total: \"x\" is not of type \"number\"".into()];
    r.warnings = vec!["3 of 5 fields found no citation".into()];
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(
        v.as_object().unwrap().len(),
        14,
        "10 + validation_errors, warnings, fingerprint, outcome"
    );
    assert_eq!(JobResult::from_json(&r.to_json().unwrap()).unwrap(), r);
}

#[test]
fn json_round_trip_is_lossless() {
    let r = full_result();
    let text = r.to_json().unwrap();
    assert!(
        text.contains("\n  \"job_id\": \"inv-7\""),
        "pretty, 2-space indent:\n{text}"
    );
    let back = JobResult::from_json(&text).unwrap();
    assert_eq!(back, r);
    assert_eq!(
        back.cost_usd.to_bits(),
        r.cost_usd.to_bits(),
        "floats round-trip exactly"
    );
    // Through serde directly as well.
    let back: JobResult = serde_json::from_value(serde_json::to_value(&r).unwrap()).unwrap();
    assert_eq!(back, r);
}

#[test]
fn results_written_by_the_python_library_load() {
    // The shape of Python batchata 0.4.7's JobResult.to_dict(), as save_to_json writes it.
    let python = r#"{
  "job_id": "job-1a2b3c4d",
  "raw_response": "The total is 12.50",
  "parsed_response": {"total": 12.5, "vendor": "ACME"},
  "citations": [
    {"text": "Total 12.50", "source": "Document 1", "page": 2, "metadata": {"type": "page_location"},
     "confidence": null, "match_reason": null}
  ],
  "citation_mappings": {
    "total": [{"text": "Total 12.50", "source": "Document 1", "page": 2, "metadata": null,
               "confidence": "high", "match_reason": "exact value match"}]
  },
  "input_tokens": 1520,
  "output_tokens": 40,
  "cost_usd": 0.00086,
  "error": null,
  "batch_id": "msgbatch_013Zva2CMHLNnXjNJJKqJ2EF"
}"#;
    let r = JobResult::from_json(python).unwrap();
    assert_eq!(r.job_id, "job-1a2b3c4d");
    assert!(r.is_success());
    assert_eq!(r.total_tokens(), 1_560);
    assert_eq!(r.citations.as_ref().unwrap()[0].page, Some(2));
    assert_eq!(
        r.citation_mappings.as_ref().unwrap()["total"][0].confidence,
        Some(Confidence::High)
    );
    #[derive(Deserialize, Debug, PartialEq)]
    struct Small {
        total: f64,
        vendor: String,
    }
    assert_eq!(
        r.parsed::<Small>().unwrap(),
        Small {
            total: 12.5,
            vendor: "ACME".into()
        }
    );

    // A failed Python result, with the fields it leaves out of older files.
    let r = JobResult::from_json(
        r#"{"job_id": "job-9", "raw_response": null, "error": "Batch failed: expired"}"#,
    )
    .unwrap();
    assert!(!r.is_success());
    assert_eq!((r.input_tokens, r.output_tokens, r.cost_usd), (0, 0, 0.0));
    assert_eq!(r.citations, None);

    // Not a result at all.
    let e = JobResult::from_json(r#"{"raw_response": "no id"}"#).unwrap_err();
    assert!(matches!(e, Error::Parse(_)), "{e:?}");
    assert!(e.to_string().contains("job_id"), "{e}");
}

#[test]
fn parsed_gives_the_typed_answer() {
    let r = full_result();
    let inv: Invoice = r.parsed().unwrap();
    assert_eq!(inv.number, "INV-7");
    assert_eq!(inv.total, 1234.5);
    assert_eq!(inv.vendor.name, "ACME — Straße 5 東京");
    assert_eq!(inv.lines, ["Tea", "Cake"]);
    assert_eq!(inv.paid, None);
    // The same after a trip through a file's text.
    let back = JobResult::from_json(&r.to_json().unwrap()).unwrap();
    assert_eq!(back.parsed::<Invoice>().unwrap(), inv);
    // As a generic value too.
    assert_eq!(
        r.parsed::<Value>().unwrap()["vendor"]["name"],
        inv.vendor.name.as_str()
    );

    // A type that does not fit: an error naming the job and the mismatch.
    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Wrong {
        total: String,
    }
    let e = r.parsed::<Wrong>().unwrap_err();
    assert!(matches!(e, Error::Parse(_)), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("'inv-7'") && msg.contains("invalid type"),
        "{msg}"
    );

    // No structured answer: an error that says why there might be none.
    let e = JobResult::failed("j3", "boom")
        .parsed::<Invoice>()
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("'j3'") && msg.contains("no parsed response"),
        "{msg}"
    );
}

#[test]
fn accessors() {
    let r = full_result();
    assert!(r.is_success());
    assert_eq!(r.total_tokens(), 3_102);
    assert_eq!(r.outcome(), JobOutcome::Completed);
    let f = JobResult::failed("a", COST_LIMIT_EXCEEDED);
    assert!(!f.is_success());
    assert_eq!(f.error.as_deref(), Some("Cost limit exceeded"));
    assert_eq!(f.outcome(), JobOutcome::Failed);
    assert_eq!(f.total_tokens(), 0);
    let c = JobResult::failed("b", format!("{CANCELLED_BY_USER} (Ctrl+C)"));
    assert_eq!(c.outcome(), JobOutcome::Cancelled);
    // An empty answer is still a success: success means "no error".
    let empty = JobResult {
        job_id: "e".into(),
        raw_response: Some(String::new()),
        ..Default::default()
    };
    assert!(empty.is_success());
}

#[test]
fn save_to_json_writes_a_file_that_loads_back() {
    let dir = tempfile::tempdir().unwrap();
    let r = full_result();
    // Folders are created as needed, as the Python method does.
    let path = dir.path().join("nested/deeper/inv-7.json");
    r.save_to_json(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["job_id"], "inv-7");
    assert_eq!(JobResult::load_from_json(&path).unwrap(), r);

    // Overwriting replaces the file whole, and leaves no temp files behind.
    let f = JobResult::failed("inv-7", "Time limit exceeded");
    f.save_to_json(&path).unwrap();
    assert_eq!(JobResult::load_from_json(&path).unwrap(), f);
    let names: Vec<String> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["inv-7.json"]);

    // Errors name the path.
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "{ not json").unwrap();
    let e = JobResult::load_from_json(&garbage).unwrap_err();
    assert!(matches!(e, Error::Parse(_)), "{e:?}");
    assert!(e.to_string().contains("garbage.json"), "{e}");
    let e = JobResult::load_from_json(dir.path().join("absent.json")).unwrap_err();
    assert!(e.to_string().contains("absent.json"), "{e}");
    // A folder where the file should go.
    let blocked = dir.path().join("blocked.json");
    std::fs::create_dir(&blocked).unwrap();
    let e = r.save_to_json(&blocked).unwrap_err();
    assert!(e.to_string().contains("blocked.json"), "{e}");
}
