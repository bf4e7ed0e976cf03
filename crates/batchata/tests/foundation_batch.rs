//! Foundation tests of the `Batch` builder: every bound of every setter, how
//! `add_job` merges the default parameters, how it validates a job against
//! its model (files on disk, citations, temperature, max_tokens, messages),
//! and that generated job ids stay unique at a million jobs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use batchata::batch::{DEFAULT_ITEMS_PER_BATCH, DEFAULT_MAX_PARALLEL_BATCHES, DEFAULT_MAX_TOKENS};
use batchata::{Batch, DefaultParams, Error, Job, Message, RawFiles, ResponseSchema, Verbosity};
use serde_json::json;

const HAIKU: &str = "claude-haiku-4-5";

fn batch() -> Batch {
    Batch::new("unused-results")
}

fn with_model(model: &str) -> Batch {
    batch().default_params(DefaultParams::new().model(model))
}

fn err_text<T: std::fmt::Debug>(r: batchata::Result<T>) -> String {
    r.expect_err("expected an error").to_string()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// The smallest valid PNG: 1x1, one grey pixel.
const PNG_1X1: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x00, 0x00, 0x00, 0x3A, 0x7E, 0x9B,
    0x55, 0x00, 0x00, 0x00, 0x0A, 0x49, 0x44, 0x41, 0x54, 0x08, 0x1D, 0x63, 0x60, 0x00, 0x00, 0x00,
    0x02, 0x00, 0x01, 0xCF, 0xC8, 0x35, 0xE5, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE,
    0x42, 0x60, 0x82,
];

// ---------------------------------------------------------------- builder bounds

#[test]
fn defaults_follow_the_python_library() {
    let b = Batch::new("out");
    let p = b.params();
    assert_eq!(p.results_dir, PathBuf::from("out"));
    assert_eq!(p.items_per_batch, DEFAULT_ITEMS_PER_BATCH);
    assert_eq!(DEFAULT_ITEMS_PER_BATCH, 10);
    assert_eq!(p.max_parallel_batches, DEFAULT_MAX_PARALLEL_BATCHES);
    assert_eq!(DEFAULT_MAX_PARALLEL_BATCHES, 10);
    assert!(
        p.raw_files,
        "raw files default on when a results dir is set"
    );
    assert!(p.reuse_state);
    assert_eq!(p.state_file, None);
    assert_eq!(p.cost_limit_usd, None);
    assert_eq!(p.time_limit, None);
    assert_eq!(p.verbosity, Verbosity::Warn, "quiet by default");
    assert_eq!(p.default_params, DefaultParams::default());
    assert!(b.jobs().is_empty());

    assert!(
        !Batch::new("").params().raw_files,
        "no results dir, no raw files by default"
    );
}

#[test]
fn cost_limit_must_be_a_positive_number_of_dollars() {
    for bad in [0.0, -0.01, -5.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let e = batch().cost_limit_usd(bad).check().unwrap_err();
        assert!(matches!(e, Error::Validation(_)), "{bad}: {e:?}");
        assert!(e.to_string().contains("cost_limit_usd"), "{e}");
    }
    let b = batch().cost_limit_usd(0.01);
    assert_eq!(b.params().cost_limit_usd, Some(0.01));
    let b = batch().cost_limit_usd(2500.0);
    assert_eq!(b.params().cost_limit_usd, Some(2500.0));
}

#[test]
fn time_limit_is_between_10_seconds_and_24_hours() {
    let ok = |d: Duration| batch().time_limit(d).params().time_limit;
    assert_eq!(ok(Duration::from_secs(10)), Some(Duration::from_secs(10)));
    assert_eq!(
        ok(Duration::from_secs(86_400)),
        Some(Duration::from_secs(86_400))
    );
    assert_eq!(
        ok(Duration::from_millis(10_500)),
        Some(Duration::from_millis(10_500))
    );
    for bad in [
        Duration::ZERO,
        Duration::from_millis(9_999),
        Duration::from_secs(9),
        Duration::from_secs(86_401),
        Duration::from_millis(86_400_001),
        Duration::from_secs(7 * 86_400),
    ] {
        let e = batch().time_limit(bad).check().unwrap_err();
        assert!(matches!(e, Error::Validation(_)), "{bad:?}: {e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains("time_limit") && msg.contains("10 seconds") && msg.contains("24 hours"),
            "{msg}"
        );
    }
}

#[test]
fn time_limit_combines_hours_minutes_and_seconds() {
    let hms = |h, m, s| {
        let b = batch().time_limit_hms(h, m, s);
        b.check().map(|()| b.params().time_limit)
    };
    assert_eq!(hms(0, 0, 30).unwrap(), Some(Duration::from_secs(30)));
    assert_eq!(hms(0, 5, 0).unwrap(), Some(Duration::from_secs(300)));
    assert_eq!(hms(2, 0, 0).unwrap(), Some(Duration::from_secs(7_200)));
    // The Python docs' example: hours=1, minutes=30, seconds=15 is 5415 s.
    assert_eq!(hms(1, 30, 15).unwrap(), Some(Duration::from_secs(5_415)));
    assert_eq!(hms(0, 0, 10).unwrap(), Some(Duration::from_secs(10)));
    assert_eq!(hms(24, 0, 0).unwrap(), Some(Duration::from_secs(86_400)));
    assert_eq!(hms(23, 59, 60).unwrap(), Some(Duration::from_secs(86_400)));
    assert_eq!(hms(0, 1440, 0).unwrap(), Some(Duration::from_secs(86_400)));
    for (h, m, s) in [
        (0, 0, 0),
        (0, 0, 9),
        (24, 0, 1),
        (0, 1440, 1),
        (25, 0, 0),
        (u64::MAX, u64::MAX, u64::MAX),
    ] {
        let e = hms(h, m, s).unwrap_err();
        assert!(matches!(e, Error::Validation(_)), "{h}h{m}m{s}s: {e:?}");
    }
}

#[test]
fn items_per_batch_and_parallel_batches_must_be_positive() {
    let e = batch().items_per_batch(0).check().unwrap_err();
    assert!(e.to_string().contains("items_per_batch"), "{e}");
    let e = batch().max_parallel_batches(0).check().unwrap_err();
    assert!(e.to_string().contains("max_parallel_batches"), "{e}");
    let b = batch().items_per_batch(1).max_parallel_batches(1);
    b.check().unwrap();
    assert_eq!(b.params().items_per_batch, 1);
    assert_eq!(b.params().max_parallel_batches, 1);
    let b = batch().items_per_batch(100_000).max_parallel_batches(64);
    assert_eq!(b.params().items_per_batch, 100_000);
    assert_eq!(b.params().max_parallel_batches, 64);
}

#[test]
fn refused_settings_are_reported_together_when_the_batch_is_planned_or_run() {
    let mut b = batch()
        .cost_limit_usd(-1.0)
        .items_per_batch(0)
        .time_limit(Duration::from_secs(1))
        .max_parallel_batches(3);
    // The chain went on: the valid setting after the refused ones took.
    assert_eq!(b.params().max_parallel_batches, 3);
    assert_eq!(
        b.params().cost_limit_usd,
        None,
        "a refused value is not kept"
    );
    b.add_job(Job::prompt("Hi").model("claude-haiku-4-5"))
        .unwrap();
    let msg = b.check().unwrap_err().to_string();
    for part in [
        "3 settings are invalid",
        "cost_limit_usd",
        "items_per_batch",
        "time_limit",
    ] {
        assert!(msg.contains(part), "{part}: {msg}");
    }
    let e = b.plan().unwrap_err().to_string();
    assert_eq!(e, msg, "plan reports the same problems");
    let e = b.run_blocking().unwrap_err().to_string();
    assert_eq!(e, msg, "and so does a run, before anything is sent");
}

#[test]
fn expected_output_fraction_is_between_0_and_1() {
    for bad in [-0.1, 1.01, f64::NAN] {
        assert!(
            batch().expected_output_fraction(bad).check().is_err(),
            "{bad}"
        );
    }
    for good in [0.0, 0.5, 1.0] {
        let b = batch().expected_output_fraction(good);
        assert_eq!(b.params().expected_output_fraction, good);
    }
}

#[test]
fn verbosity_state_file_and_raw_files_are_stored() {
    for (text, v) in [
        ("debug", Verbosity::Debug),
        ("INFO", Verbosity::Info),
        ("warn", Verbosity::Warn),
        ("Warning", Verbosity::Warn),
        ("error", Verbosity::Error),
    ] {
        assert_eq!(text.parse::<Verbosity>().unwrap(), v, "{text}");
        assert_eq!(v.as_str().parse::<Verbosity>().unwrap(), v);
    }
    let e = "loud".parse::<Verbosity>().unwrap_err().to_string();
    assert!(e.contains("loud") && e.contains("debug"), "{e}");

    let b = batch()
        .verbosity(Verbosity::Debug)
        .state_file("state/run.json")
        .fresh_state()
        .raw_files(RawFiles::Skip);
    assert_eq!(b.params().verbosity, Verbosity::Debug);
    assert_eq!(b.params().state_file, Some(PathBuf::from("state/run.json")));
    assert!(!b.params().reuse_state);
    assert!(!b.params().raw_files);
    let b = batch().state_file("s.json");
    assert!(b.params().reuse_state);
}

// ---------------------------------------------------------------- defaults merge

#[derive(schemars::JsonSchema, serde::Deserialize)]
#[allow(dead_code)]
struct Invoice {
    number: String,
    total: f64,
}

#[test]
fn add_job_merges_default_params_and_the_job_wins() {
    let dir = tempfile::tempdir().unwrap();
    let pdf = write(
        dir.path(),
        "doc.pdf",
        &batchata::fixtures::pdf(&["Invoice INV-1 for ACME Corporation, total due 120.00 dollars, payable within thirty days of the invoice date by bank transfer."]).unwrap(),
    );
    let schema = ResponseSchema::of::<Invoice>();
    let mut b = batch().default_params(
        DefaultParams::new()
            .model(HAIKU)
            .temperature(0.3)
            .max_tokens(700)
            .response_schema(schema.clone())
            .citations(true),
    );
    // Everything from the defaults.
    let id = b.add_job(Job::file(&pdf, "Extract the invoice")).unwrap();
    let j = &b.jobs()[0];
    assert_eq!(j.id.as_deref(), Some(id.as_str()));
    assert_eq!(j.model.as_deref(), Some(HAIKU));
    assert_eq!(j.temperature, Some(0.3));
    assert_eq!(j.max_tokens, Some(700));
    assert_eq!(j.response_schema.as_ref(), Some(&schema));
    assert!(j.enable_citations, "citations default applies to file jobs");

    // Default citations do not apply to jobs without a file (nothing to cite).
    b.add_job(Job::prompt("Hi")).unwrap();
    assert!(!b.jobs()[1].enable_citations);

    // The job's own values win.
    b.add_job(
        Job::prompt("Hi")
            .model("claude-sonnet-4-5")
            .temperature(0.9)
            .max_tokens(50),
    )
    .unwrap();
    let j = &b.jobs()[2];
    assert_eq!(j.model.as_deref(), Some("claude-sonnet-4-5"));
    assert_eq!(j.temperature, Some(0.9));
    assert_eq!(j.max_tokens, Some(50));

    // Without any max_tokens the library default is used.
    let mut b = with_model(HAIKU);
    b.add_job(Job::prompt("Hi")).unwrap();
    assert_eq!(b.jobs()[0].max_tokens, Some(DEFAULT_MAX_TOKENS));
    assert_eq!(b.jobs()[0].temperature, None);
}

#[test]
fn default_params_are_held_to_the_same_rules_as_jobs() {
    // Values that a job could not carry are refused when they come from the defaults too.
    let cases: Vec<(DefaultParams, &str)> = vec![
        (DefaultParams::new().temperature(-0.5), "temperature"),
        (DefaultParams::new().temperature(f64::NAN), "temperature"),
        (DefaultParams::new().max_tokens(0), "max_tokens"),
        (
            DefaultParams {
                response_schema: Some(serde_json::from_value(json!({"type": "nonsense"})).unwrap()),
                ..DefaultParams::default()
            },
            "response_schema",
        ),
    ];
    for (defaults, field) in cases {
        let mut b = batch().default_params(DefaultParams {
            model: Some(HAIKU.into()),
            ..defaults
        });
        let e = err_text(b.add_job(Job::prompt("Hi").id("d1")));
        assert!(
            e.contains("'d1'") && e.contains(&format!("'{field}'")),
            "{field}: {e}"
        );
        assert!(b.jobs().is_empty());
        // The job's own value, when valid, is used instead of the bad default.
        let own = match field {
            "temperature" => Job::prompt("Hi").temperature(0.5),
            "max_tokens" => Job::prompt("Hi").max_tokens(10),
            _ => Job::prompt("Hi")
                .response_schema(ResponseSchema::from_value(json!({"type": "object"})).unwrap()),
        };
        b.add_job(own).unwrap();
    }
}

#[test]
fn a_job_needs_a_model_from_itself_or_the_defaults() {
    let e = err_text(batch().add_job(Job::prompt("Hi").id("q1")));
    assert!(
        e.contains("'q1'") && e.contains("'model'") && e.contains("default_params"),
        "{e}"
    );
}

#[test]
fn unknown_model_names_the_job_and_suggests_close_names() {
    let mut b = batch();
    let e = b
        .add_job(Job::prompt("Hi").id("q1").model("claude-haiku-4.5"))
        .unwrap_err();
    assert!(matches!(e, Error::ModelNotSupported(_)), "{e:?}");
    let e = e.to_string();
    assert!(e.contains("'q1'") && e.contains("claude-haiku-4.5"), "{e}");
    assert!(
        e.contains("'claude-haiku-4-5'"),
        "suggests the real id: {e}"
    );
    assert!(b.jobs().is_empty(), "a refused job is not added");
}

#[test]
fn every_catalog_model_has_a_provider_that_takes_its_jobs() {
    for m in batchata::Catalog::builtin().models() {
        let mut b = with_model(&m.name);
        b.add_job(Job::prompt("Hi").id("g1"))
            .unwrap_or_else(|e| panic!("{}: {e}", m.name));
    }
}

// ---------------------------------------------------------------- model limits

#[test]
fn temperature_must_be_in_the_models_range() {
    // Anthropic: 0 to 1.
    let mut b = with_model(HAIKU);
    b.add_job(Job::prompt("Hi").temperature(0.0)).unwrap();
    b.add_job(Job::prompt("Hi").temperature(1.0)).unwrap();
    let e = err_text(b.add_job(Job::prompt("Hi").id("t1").temperature(1.1)));
    assert!(
        e.contains("'t1'") && e.contains("'temperature'") && e.contains("1.1"),
        "{e}"
    );
    for bad in [-0.1, f64::NAN, f64::INFINITY] {
        let e = err_text(b.add_job(Job::prompt("Hi").id("t2").temperature(bad)));
        assert!(e.contains("'temperature'"), "{bad}: {e}");
    }
    // OpenAI chat models: 0 to 2.
    let mut b = with_model("gpt-4o-mini");
    b.add_job(Job::prompt("Hi").temperature(2.0)).unwrap();
    assert!(b.add_job(Job::prompt("Hi").temperature(2.01)).is_err());
    // A default temperature above the model's range is refused too.
    let mut b = batch().default_params(DefaultParams::new().model(HAIKU).temperature(1.5));
    assert!(b.add_job(Job::prompt("Hi")).is_err());
}

#[test]
fn models_that_take_only_their_default_temperature() {
    // Set on the job: refused, with the fix.
    let mut b = with_model("gpt-5");
    let e = err_text(b.add_job(Job::prompt("Hi").id("r1").temperature(0.2)));
    assert!(
        e.contains("'r1'") && e.contains("gpt-5") && e.contains("remove temperature"),
        "{e}"
    );
    // Set in the defaults (shared with other models): dropped for this job.
    let mut b = batch().default_params(DefaultParams::new().model("gpt-5").temperature(0.2));
    b.add_job(Job::prompt("Hi")).unwrap();
    assert_eq!(b.jobs()[0].temperature, None);
    b.add_job(Job::prompt("Hi").model(HAIKU)).unwrap();
    assert_eq!(b.jobs()[1].temperature, Some(0.2));
}

#[test]
fn max_tokens_must_be_within_the_models_limit() {
    let mut b = with_model("claude-3-haiku-20240307");
    b.add_job(Job::prompt("Hi").max_tokens(4096)).unwrap();
    b.add_job(Job::prompt("Hi").max_tokens(1)).unwrap();
    let e = err_text(b.add_job(Job::prompt("Hi").id("m1").max_tokens(4097)));
    assert!(
        e.contains("'m1'")
            && e.contains("'max_tokens'")
            && e.contains("4097")
            && e.contains("4096"),
        "{e}"
    );
    let e = err_text(b.add_job(Job::prompt("Hi").id("m2").max_tokens(0)));
    assert!(e.contains("'m2'") && e.contains("'max_tokens'"), "{e}");
    let mut b = with_model("gpt-4o-mini");
    b.add_job(Job::prompt("Hi").max_tokens(16_384)).unwrap();
    assert!(b.add_job(Job::prompt("Hi").max_tokens(16_385)).is_err());
    // A default above the limit is refused at add_job as well.
    let mut b =
        batch().default_params(DefaultParams::new().model("gpt-4o-mini").max_tokens(20_000));
    assert!(b.add_job(Job::prompt("Hi")).is_err());
}

// ---------------------------------------------------------------- files

#[test]
fn a_file_must_exist_and_be_a_supported_type() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = with_model(HAIKU);

    let missing = dir.path().join("nope.pdf");
    let e = err_text(b.add_job(Job::file(&missing, "Summarise").id("f1")));
    assert!(
        e.contains("'f1'") && e.contains("'file'") && e.contains("nope.pdf"),
        "{e}"
    );

    let exe = write(dir.path(), "tool.exe", b"MZ");
    let e = err_text(b.add_job(Job::file(&exe, "Summarise").id("f2")));
    assert!(
        e.contains("'f2'") && e.contains(".exe") && e.contains(".pdf"),
        "{e}"
    );

    // A directory is not a file.
    let sub = dir.path().join("folder.txt");
    std::fs::create_dir(&sub).unwrap();
    assert!(b.add_job(Job::file(&sub, "Summarise")).is_err());

    // Every supported kind is accepted by a model that takes it.
    let pdf = write(
        dir.path(),
        "a.pdf",
        &batchata::fixtures::pdf(&["Some text"]).unwrap(),
    );
    let txt = write(dir.path(), "a.txt", b"plain text");
    let md = write(dir.path(), "a.MD", b"# upper-case extension");
    let docx = write(
        dir.path(),
        "a.docx",
        &batchata::fixtures::docx(&["Para"]).unwrap(),
    );
    let png = write(dir.path(), "a.png", PNG_1X1);
    for f in [&pdf, &txt, &md, &docx, &png] {
        b.add_job(Job::file(f, "Describe"))
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
    assert_eq!(b.jobs().len(), 5);
}

#[test]
fn a_file_type_the_model_does_not_take_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pdf = write(
        dir.path(),
        "a.pdf",
        &batchata::fixtures::pdf(&["Some text"]).unwrap(),
    );
    // Claude 3 Haiku never took PDFs.
    let e = with_model("claude-3-haiku-20240307")
        .add_job(Job::file(&pdf, "Summarise").id("p1"))
        .unwrap_err();
    assert!(matches!(e, Error::ModelNotSupported(_)), "{e:?}");
    let e = e.to_string();
    assert!(
        e.contains("'p1'") && e.contains(".pdf") && e.contains("claude-3-haiku-20240307"),
        "{e}"
    );
    // But it takes text.
    let txt = write(dir.path(), "a.txt", b"plain text");
    with_model("claude-3-haiku-20240307")
        .add_job(Job::file(&txt, "Summarise"))
        .unwrap();
}

// ---------------------------------------------------------------- citations

/// Collects the events logged while it is the current subscriber.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Fields(String);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                self.0.push_str(&format!("{}={v:?} ", f.name()));
            }
        }
        let mut line = Fields(format!("{} ", event.metadata().level()));
        event.record(&mut line);
        self.0.lock().unwrap().push(line.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn add_logged(b: &mut Batch, job: Job) -> (batchata::Result<String>, Vec<String>) {
    let capture = Capture::default();
    let r = tracing::subscriber::with_default(capture.clone(), || b.add_job(job));
    let lines = capture.0.lock().unwrap().clone();
    (r, lines)
}

#[test]
fn citations_need_a_model_and_a_document_that_support_them() {
    let dir = tempfile::tempdir().unwrap();
    let long = "The supplier ACME Corporation issued invoice INV-2024-001 on 3 March 2024 for consulting services, with a total amount due of 1,234.50 US dollars.";
    let good = write(
        dir.path(),
        "good.pdf",
        &batchata::fixtures::pdf(&[long]).unwrap(),
    );

    // OpenAI models cannot cite.
    let e = with_model("gpt-4o-mini")
        .add_job(Job::file(&good, "Extract").id("c1").citations(true))
        .unwrap_err();
    assert!(matches!(e, Error::ModelNotSupported(_)), "{e:?}");
    assert!(
        e.to_string().contains("'c1'") && e.to_string().contains("citations"),
        "{e}"
    );

    // Nothing to cite without a file.
    let e = err_text(with_model(HAIKU).add_job(Job::prompt("Hi").id("c2").citations(true)));
    assert!(e.contains("'c2'") && e.contains("enable_citations"), "{e}");

    // Images cannot be cited.
    let png = write(dir.path(), "a.png", PNG_1X1);
    let e =
        err_text(with_model(HAIKU).add_job(Job::file(&png, "Describe").id("c3").citations(true)));
    assert!(e.contains("'c3'") && e.contains("images"), "{e}");

    // A PDF with plenty of text: accepted, no warning.
    let mut b = with_model(HAIKU);
    let (r, logs) = add_logged(&mut b, Job::file(&good, "Extract").citations(true));
    r.unwrap();
    assert!(logs.iter().all(|l| !l.starts_with("WARN")), "{logs:?}");

    // Text files can be cited.
    let txt = write(dir.path(), "notes.txt", long.as_bytes());
    b.add_job(Job::file(&txt, "Extract").citations(true))
        .unwrap();
}

#[test]
fn citations_on_a_pdf_without_text_are_refused_and_low_text_is_warned() {
    let dir = tempfile::tempdir().unwrap();
    // Two blank pages: what a scan without OCR looks like to a text extractor.
    let blank = write(
        dir.path(),
        "scan.pdf",
        &batchata::fixtures::pdf(&["", ""]).unwrap(),
    );
    let e =
        err_text(with_model(HAIKU).add_job(Job::file(&blank, "Extract").id("s1").citations(true)));
    assert!(
        e.contains("'s1'")
            && e.contains("scan.pdf")
            && e.contains("no extractable text")
            && e.contains("OCR"),
        "{e}"
    );
    // Without citations the same file is fine: the model still sees the page images.
    with_model(HAIKU)
        .add_job(Job::file(&blank, "Describe"))
        .unwrap();

    // Three pages with a few words between them: accepted, with a warning naming the job.
    let sparse = write(
        dir.path(),
        "sparse.pdf",
        &batchata::fixtures::pdf(&["Total: 5", "", "Signed"]).unwrap(),
    );
    let mut b = with_model(HAIKU);
    let (r, logs) = add_logged(
        &mut b,
        Job::file(&sparse, "Extract").id("s2").citations(true),
    );
    r.unwrap();
    let warn: Vec<_> = logs.iter().filter(|l| l.starts_with("WARN")).collect();
    assert_eq!(warn.len(), 1, "{logs:?}");
    assert!(
        warn[0].contains("s2") && warn[0].contains("sparse.pdf"),
        "{warn:?}"
    );
}

// ---------------------------------------------------------------- messages

#[test]
fn messages_must_be_well_formed() {
    let mut b = with_model(HAIKU);
    b.add_job(Job::messages(vec![
        Message::system("Be brief."),
        Message::user("Hi"),
        Message::assistant("Hello!"),
        Message::user("Name a river."),
    ]))
    .unwrap();

    let e = err_text(b.add_job(Job::messages(vec![]).id("w1")));
    assert!(
        e.contains("'w1'") && e.contains("'messages'") && e.contains("empty"),
        "{e}"
    );

    let e = err_text(
        b.add_job(Job::messages(vec![Message::user("Hi"), Message::assistant("  ")]).id("w2")),
    );
    assert!(
        e.contains("'w2'") && e.contains("messages[1].content"),
        "{e}"
    );

    let e = err_text(b.add_job(Job::messages(vec![Message::system("Be brief.")]).id("w3")));
    assert!(e.contains("'w3'") && e.contains("no user message"), "{e}");

    // Anthropic needs user and assistant to alternate.
    let e = err_text(
        b.add_job(Job::messages(vec![Message::user("Hi"), Message::user("Again")]).id("w4")),
    );
    assert!(
        e.contains("'w4'") && e.contains("messages[1]") && e.contains("alternate"),
        "{e}"
    );
    // OpenAI accepts consecutive user messages.
    with_model("gpt-4o-mini")
        .add_job(Job::messages(vec![
            Message::user("Hi"),
            Message::user("Again"),
        ]))
        .unwrap();

    // A message list with a wrong role is refused when read from JSON.
    let bad: Result<Job, _> = serde_json::from_value(json!({
        "messages": [{"role": "robot", "content": "Hi"}]
    }));
    assert!(bad.is_err());
    assert_eq!(b.jobs().len(), 1, "only the valid job was added");
}

// ---------------------------------------------------------------- ids

#[test]
fn user_ids_must_be_unique_and_generated_ids_avoid_them() {
    let mut b = with_model(HAIKU);
    assert_eq!(b.add_job(Job::prompt("a").id("x")).unwrap(), "x");
    let e = err_text(b.add_job(Job::prompt("b").id("x")));
    assert!(e.contains("'x'") && e.contains("twice"), "{e}");

    // Generated ids come from the request's fingerprint: the same request
    // gets the same id in any batch and at any position, identical
    // requests are numbered, and an inserted job shifts nothing.
    let mut b2 = with_model(HAIKU);
    let a = b2.add_job(Job::prompt("alpha")).unwrap();
    let b_id = b2.add_job(Job::prompt("beta")).unwrap();
    let a2 = b2.add_job(Job::prompt("alpha")).unwrap();
    // The generated form: "job-" and 16 lowercase hex digits of the fingerprint.
    let hex = a.strip_prefix("job-").unwrap_or_default();
    assert!(
        hex.len() == 16 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "{a}"
    );
    assert_eq!(a2, format!("{a}-2"));
    let mut b3 = with_model(HAIKU);
    b3.add_job(Job::prompt("inserted first")).unwrap();
    assert_eq!(b3.add_job(Job::prompt("beta")).unwrap(), b_id);
    assert_eq!(b3.add_job(Job::prompt("alpha")).unwrap(), a);
    assert_ne!(
        b3.add_job(Job::prompt("alpha").max_tokens(7)).unwrap(),
        a,
        "another request, another id"
    );

    // Explicit ids can never collide with generated ones: the generated
    // form is refused for explicit ids, and anything else is free to use.
    let e = err_text(b2.add_job(Job::prompt("dup").id(&a)));
    assert!(e.contains("generated id"), "{e}");
    let mut b = with_model(HAIKU);
    for id in ["job-000000", "job-000001", "job-0", "JOB-000000", "job-abc"] {
        b.add_job(Job::prompt("d").id(id))
            .unwrap_or_else(|e| panic!("{id}: {e}"));
    }
    let generated = b.add_job(Job::prompt("d")).unwrap();
    assert!(
        generated.starts_with("job-") && generated.len() == 20,
        "{generated}"
    );
    for id in ["job-000000", "job-abc"] {
        let e = err_text(b.add_job(Job::prompt("e").id(id)));
        assert!(e.contains("twice"), "{id}: {e}");
    }

    // A job refused for another reason does not reserve its id.
    let mut b = with_model(HAIKU);
    assert!(b
        .add_job(Job::prompt("x").id("keep").max_tokens(1_000_000))
        .is_err());
    b.add_job(Job::prompt("x").id("keep")).unwrap();
}

// Preflight reads a job's file once per change, and the fingerprint takes
// its hash from that read: jobs on one unchanged file share it, and a file
// changed between two jobs gives the second another id, by relative and
// absolute path alike.
#[test]
fn a_file_changed_between_two_jobs_gives_them_different_ids() {
    let dir = tempfile::tempdir().unwrap();
    let doc = write(dir.path(), "doc.txt", b"The sky is blue.");
    let cwd = std::env::current_dir().unwrap();
    let depth = cwd.components().count() - 1;
    let relative: PathBuf = std::iter::repeat_n("..", depth)
        .collect::<PathBuf>()
        .join(doc.strip_prefix("/").unwrap());
    let mut b = with_model(HAIKU);
    let first = b.add_job(Job::file(&doc, "Colour?")).unwrap();
    assert_eq!(
        b.add_job(Job::file(&relative, "Colour?")).unwrap(),
        format!("{first}-2")
    );
    std::fs::write(&doc, "The sky is grey today.").unwrap();
    let changed = b.add_job(Job::file(&relative, "Colour?")).unwrap();
    assert!(!changed.starts_with(&first), "{first} / {changed}");
    assert_eq!(
        b.add_job(Job::file(&doc, "Colour?")).unwrap(),
        format!("{changed}-2")
    );
    // The same as a batch that never saw the first version.
    let mut fresh = with_model(HAIKU);
    assert_eq!(fresh.add_job(Job::file(&doc, "Colour?")).unwrap(), changed);
}

/// A link moved to another file between two jobs: each job sends the file
/// the link led to when it was added, the one its id was made from.
#[cfg(unix)]
#[test]
fn a_link_moved_between_two_jobs_sends_each_the_file_it_led_to() {
    let dir = tempfile::tempdir().unwrap();
    let blue = write(dir.path(), "blue.txt", b"The sky is blue.");
    let grey = write(dir.path(), "grey.txt", b"The sky is grey today.");
    let link = dir.path().join("doc.txt");
    std::os::unix::fs::symlink(&blue, &link).unwrap();
    let mut b = with_model(HAIKU);
    let first = b.add_job(Job::file(&link, "Colour?")).unwrap();
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&grey, &link).unwrap();
    let second = b.add_job(Job::file(&link, "Colour?")).unwrap();
    assert!(!second.starts_with(&first), "{first} / {second}");
    let files: Vec<PathBuf> = b.jobs().into_iter().filter_map(|j| j.file).collect();
    let canonical = |p: &PathBuf| std::fs::canonicalize(p).unwrap();
    assert_eq!(files, vec![canonical(&blue), canonical(&grey)]);
}

#[test]
fn a_million_generated_ids_are_unique() {
    let mut b = with_model(HAIKU);
    let n = 1_000_000;
    let started = std::time::Instant::now();
    for _ in 0..n {
        b.add_job(Job::prompt("Say hi")).unwrap();
    }
    let elapsed = started.elapsed();
    assert_eq!(b.job_count(), n);
    let jobs = b.jobs();
    assert_eq!(jobs.len(), n);
    let ids: std::collections::HashSet<&str> = jobs.iter().map(|j| j.id_str()).collect();
    assert_eq!(ids.len(), n, "duplicate generated ids");
    for id in ids {
        batchata::job::check_id(id).unwrap();
    }
    eprintln!("added {n} jobs in {elapsed:?}");
}
