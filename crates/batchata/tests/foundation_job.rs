//! Foundation tests of `Job`: the shape rules (messages, or a file with a
//! prompt, or a prompt alone), the id rules, and response schemas built from
//! Rust types or raw JSON Schema that survive a JSON round trip.

use std::path::PathBuf;

use batchata::job::check_id;
use batchata::{Batch, DefaultParams, Error, Job, Message, ResponseSchema, Role};
use serde_json::json;

fn batch() -> Batch {
    Batch::new("unused-results").default_params(DefaultParams::new().model("claude-haiku-4-5"))
}

fn shape_err(job: Job) -> String {
    let e = job.check_shape().expect_err("expected a shape error");
    assert!(matches!(e, Error::Validation(_)), "{e:?}");
    e.to_string()
}

#[test]
fn a_job_is_messages_or_a_file_with_a_prompt_or_a_prompt() {
    Job::prompt("Hi").check_shape().unwrap();
    Job::file("a.pdf", "Summarise").check_shape().unwrap();
    Job::messages(vec![Message::user("Hi")])
        .check_shape()
        .unwrap();

    // Messages together with a prompt or a file.
    let e = shape_err(Job {
        prompt: Some("Hi".into()),
        ..Job::messages(vec![Message::user("Hi")]).id("j1")
    });
    assert!(e.contains("'j1'") && e.contains("not both"), "{e}");
    let e = shape_err(Job {
        file: Some(PathBuf::from("a.pdf")),
        ..Job::messages(vec![Message::user("Hi")]).id("j2")
    });
    assert!(e.contains("'j2'") && e.contains("not both"), "{e}");

    // A file always needs a prompt.
    let e = shape_err(Job {
        id: Some("j3".into()),
        file: Some(PathBuf::from("a.pdf")),
        ..Job::default()
    });
    assert!(
        e.contains("'j3'") && e.contains("'prompt'") && e.contains("file"),
        "{e}"
    );

    // Nothing to ask.
    let e = shape_err(Job::default().id("j4"));
    assert!(e.contains("'j4'") && e.contains("nothing to ask"), "{e}");

    // An empty prompt.
    let e = shape_err(Job::prompt("  \n").id("j5"));
    assert!(
        e.contains("'j5'") && e.contains("'prompt'") && e.contains("empty"),
        "{e}"
    );

    // The same rules apply at add_job, before anything else.
    let mut b = batch();
    assert!(b
        .add_job(Job {
            prompt: Some("Hi".into()),
            ..Job::messages(vec![Message::user("Hi")])
        })
        .is_err());
    assert!(b.jobs().is_empty());
}

#[test]
fn job_builders_set_every_field() {
    #[derive(schemars::JsonSchema)]
    #[allow(dead_code)]
    struct Answer {
        city: String,
    }
    let j = Job::file("doc.pdf", "Where?")
        .id("a-1")
        .model("claude-sonnet-4-5")
        .temperature(0.2)
        .max_tokens(64)
        .schema::<Answer>()
        .citations(true);
    assert_eq!(j.id.as_deref(), Some("a-1"));
    assert_eq!(j.id_str(), "a-1");
    assert_eq!(j.model_name(), "claude-sonnet-4-5");
    assert_eq!(j.file, Some(PathBuf::from("doc.pdf")));
    assert_eq!(j.prompt.as_deref(), Some("Where?"));
    assert_eq!(j.temperature, Some(0.2));
    assert_eq!(j.max_tokens, Some(64));
    assert_eq!(j.max_tokens_or_default(), 64);
    assert_eq!(j.response_schema, Some(ResponseSchema::of::<Answer>()));
    assert!(j.enable_citations);
    assert_eq!(Job::prompt("x").id_str(), "");
    assert_eq!(Job::prompt("x").max_tokens_or_default(), 1024);

    let m = [
        Message::system("s"),
        Message::user("u"),
        Message::assistant("a"),
    ];
    let roles: Vec<&str> = m.iter().map(|m| m.role.as_str()).collect();
    assert_eq!(roles, ["system", "user", "assistant"]);
    assert_eq!(m[1].role, Role::User);
}

#[test]
fn user_ids_follow_the_pattern() {
    let max = "a".repeat(64);
    for good in ["a", "Z", "0", "job_1", "job-1", "A-b_C-9", max.as_str()] {
        check_id(good).unwrap_or_else(|e| panic!("{good:?}: {e}"));
        let mut b = batch();
        assert_eq!(b.add_job(Job::prompt("Hi").id(good)).unwrap(), good);
    }
    let too_long = "a".repeat(65);
    for bad in [
        "",
        too_long.as_str(),
        "has space",
        "dot.ted",
        "slash/ed",
        "back\\slash",
        "tab\there",
        "new\nline",
        "ünïcode",
        "emoji🚀",
        "../escape",
        "colon:",
    ] {
        let e = check_id(bad).expect_err(bad).to_string();
        assert!(e.contains("job id"), "{bad:?}: {e}");
        let mut b = batch();
        let e = b.add_job(Job::prompt("Hi").id(bad)).unwrap_err();
        assert!(matches!(e, Error::Validation(_)), "{bad:?}: {e:?}");
        assert!(b.jobs().is_empty());
    }
    // The message names the offending character and the allowed set.
    let e = check_id("a.b").unwrap_err().to_string();
    assert!(e.contains("'.'") && e.contains("letters, digits"), "{e}");
    let e = check_id(&too_long).unwrap_err().to_string();
    assert!(e.contains("1 to 64"), "{e}");
}

#[derive(schemars::JsonSchema, serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct LineItem {
    description: String,
    amount: f64,
}

#[derive(schemars::JsonSchema, serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct Invoice {
    number: String,
    total: f64,
    paid: Option<bool>,
    items: Vec<LineItem>,
}

#[test]
fn response_schema_from_a_rust_type_is_plain_json_schema() {
    let s = ResponseSchema::of::<Invoice>();
    let v = s.as_value();
    assert_eq!(v["type"], "object");
    assert_eq!(v["title"], "Invoice");
    assert_eq!(s.name(), "Invoice");
    let required: Vec<&str> = v["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    for f in ["number", "total", "items"] {
        assert!(required.contains(&f), "{required:?}");
    }
    assert!(
        !required.contains(&"paid"),
        "Option fields are not required"
    );
    assert!(v["properties"]["items"].is_object());
    s.check().unwrap();

    // It validates real instances of the type and refuses wrong ones.
    let validator = jsonschema::validator_for(v).unwrap();
    let good = serde_json::to_value(Invoice {
        number: "INV-1".into(),
        total: 12.5,
        paid: None,
        items: vec![LineItem {
            description: "Tea".into(),
            amount: 12.5,
        }],
    })
    .unwrap();
    assert!(validator.is_valid(&good));
    assert!(!validator.is_valid(&json!({"number": 1, "total": "x", "items": []})));

    // Stored as JSON: a job with a schema survives a round trip unchanged.
    let job = Job::prompt("Extract").id("inv-1").schema::<Invoice>();
    let text = serde_json::to_string(&job).unwrap();
    let back: Job = serde_json::from_str(&text).unwrap();
    assert_eq!(back, job);
    assert_eq!(back.response_schema.unwrap().as_value(), v);
}

#[test]
fn response_schema_from_a_raw_value() {
    let raw = json!({
        "title": "city answer!",
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"]
    });
    let s = ResponseSchema::from_value(raw.clone()).unwrap();
    assert_eq!(s.as_value(), &raw);
    assert_eq!(s.name(), "city_answer_", "name is made wire-safe");
    assert_eq!(
        ResponseSchema::from_value(json!({"type": "object"}))
            .unwrap()
            .name(),
        "response"
    );
    // Persisted as the schema itself, nothing around it.
    assert_eq!(serde_json::to_value(&s).unwrap(), raw);

    for bad in [json!(5), json!("object"), json!([1, 2]), json!(null)] {
        let e = ResponseSchema::from_value(bad.clone()).unwrap_err();
        assert!(e.to_string().contains("JSON object"), "{bad}: {e}");
    }
    let e = ResponseSchema::from_value(json!({"type": 12})).unwrap_err();
    assert!(e.to_string().contains("not a valid JSON Schema"), "{e}");

    // A broken schema read back from JSON is refused at add_job, naming the field.
    let job: Job = serde_json::from_value(json!({
        "id": "s1", "prompt": "Hi", "response_schema": {"type": "nonsense"}
    }))
    .unwrap();
    let e = batch().add_job(job).unwrap_err().to_string();
    assert!(e.contains("'s1'") && e.contains("'response_schema'"), "{e}");
}

#[test]
fn a_job_reads_from_the_json_a_jobs_file_would_hold() {
    let job: Job = serde_json::from_value(json!({
        "id": "r1",
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "temperature": 0.5,
        "max_tokens": 100
    }))
    .unwrap();
    assert_eq!(job.messages.as_ref().unwrap()[0].role, Role::System);
    assert!(!job.enable_citations);
    let mut b = batch();
    assert_eq!(b.add_job(job.clone()).unwrap(), "r1");
    // Fields left out are left out when written back.
    let v = serde_json::to_value(&job).unwrap();
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["id", "max_tokens", "messages", "model", "temperature"]
    );
    // Unknown roles are refused.
    assert!(serde_json::from_value::<Job>(json!({
        "messages": [{"role": "tool", "content": "x"}]
    }))
    .is_err());
}
