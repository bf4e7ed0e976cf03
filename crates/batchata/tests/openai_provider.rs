//! The OpenAI provider against the local emulator, over real HTTP on
//! loopback: the streamed Files upload, the batch lifecycle, results from the
//! output and error files, partial results of expired and cancelled batches,
//! a batch that fails validation, retries, limits and key hygiene.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use batchata::catalog::Catalog;
use batchata::providers::openai::{OpenAiProvider, EXPIRED_MESSAGE};
use batchata::providers::{
    BatchLimits, BatchProbe, BatchRequest, BatchState, BatchStatus, Provider, ProviderConfig,
    ResultsContext,
};
use batchata::result::CANCELLED_BY_USER;
use batchata::{Job, JobOutcome, JobResult, Message, ResponseSchema};
use batchata_emulator::{
    Emulator, EmulatorConfig, EmulatorHandle, Endpoint, FaultKind, REJECT_MARKER,
};
use serde_json::{json, Value};

const KEY: &str = "sk-test-SECRET-4f9a1c77e0b2";
const MODEL: &str = "gpt-4o-mini";

/// A 1×1 PNG.
const PNG: [u8; 67] = [
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    0x89, 0x00, 0x00, 0x00, 0x0A, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D, 0xB4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE,
    0x42, 0x60, 0x82,
];

async fn emulator(config: EmulatorConfig) -> EmulatorHandle {
    Emulator::start(config.api_key(KEY)).await.unwrap()
}

fn config(emu: &EmulatorHandle) -> ProviderConfig {
    ProviderConfig::default()
        .api_key(KEY)
        .base_url(emu.openai_base_url())
        .poll_interval(Duration::from_millis(25))
}

fn provider(emu: &EmulatorHandle) -> OpenAiProvider {
    OpenAiProvider::new(&config(emu), Arc::new(Catalog::builtin().clone())).unwrap()
}

fn job(id: &str, prompt: &str) -> Job {
    Job::prompt(prompt).id(id).model(MODEL).max_tokens(400)
}

fn prompt_jobs(n: usize) -> Vec<Job> {
    (0..n)
        .map(|i| {
            job(
                &format!("job-{i:03}"),
                &format!("Question number {i}: what is {i} squared?"),
            )
        })
        .collect()
}

fn request<'a>(jobs: &'a [Job], raw: Option<&'a Path>) -> BatchRequest<'a> {
    BatchRequest {
        jobs,
        run_id: "run-test",
        batch_index: 0,
        raw_dir: raw,
    }
}

async fn wait_terminal(p: &OpenAiProvider, id: &str) -> BatchStatus {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let st = p.get_batch_status(id).await.unwrap();
        if st.state.is_terminal() {
            return st;
        }
        assert!(Instant::now() < deadline, "batch {id} never ended: {st:?}");
        tokio::time::sleep(p.polling_interval()).await;
    }
}

async fn results(p: &OpenAiProvider, id: &str, jobs: &[Job], raw: Option<&Path>) -> Vec<JobResult> {
    let mut out = Vec::new();
    let mut sink = |r: JobResult| -> batchata::Result<()> {
        out.push(r);
        Ok(())
    };
    p.get_batch_results(id, ResultsContext { jobs, raw_dir: raw }, &mut sink)
        .await
        .unwrap();
    // Exactly one result per job.
    let mut ids: Vec<&str> = out.iter().map(|r| r.job_id.as_str()).collect();
    ids.sort();
    let mut want: Vec<&str> = jobs.iter().map(|j| j.id_str()).collect();
    want.sort();
    assert_eq!(ids, want, "one result per job");
    out
}

/// Submits, waits and collects.
async fn run(
    p: &OpenAiProvider,
    jobs: &[Job],
    raw: Option<&Path>,
) -> (String, BatchStatus, Vec<JobResult>) {
    let created = p.create_batch(request(jobs, raw)).await.unwrap();
    let st = wait_terminal(p, &created.batch_id).await;
    let res = results(p, &created.batch_id, jobs, raw).await;
    (created.batch_id, st, res)
}

fn by_id<'a>(res: &'a [JobResult], id: &str) -> &'a JobResult {
    res.iter().find(|r| r.job_id == id).unwrap()
}

fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn invoice_schema() -> ResponseSchema {
    ResponseSchema::from_value(json!({
        "title": "Invoice",
        "type": "object",
        "properties": {
            "invoice_number": {"type": "string"},
            "total": {"type": "number"}
        },
        "required": ["invoice_number", "total"]
    }))
    .unwrap()
}

#[tokio::test]
async fn message_image_pdf_text_and_docx_jobs() {
    let emu = emulator(EmulatorConfig::default()).await;
    let p = provider(&emu);
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw_files");
    let doc = "Invoice number: INV-7\nTotal: 1,234.50";
    let pdf = dir.path().join("invoice.pdf");
    std::fs::write(&pdf, batchata::fixtures::pdf(&[doc, "Thank you"]).unwrap()).unwrap();
    let txt = dir.path().join("invoice.txt");
    std::fs::write(&txt, doc).unwrap();
    let docx = dir.path().join("invoice.docx");
    std::fs::write(
        &docx,
        batchata::fixtures::docx(&["Invoice number: INV-7", "Total: 1,234.50"]).unwrap(),
    )
    .unwrap();
    let png = dir.path().join("dot.png");
    std::fs::write(&png, PNG).unwrap();

    let schema = invoice_schema();
    let jobs = vec![
        Job::messages(vec![
            Message::system("You answer briefly."),
            Message::user("Name a prime number"),
        ])
        .id("chat")
        .model(MODEL)
        .max_tokens(300),
        Job::file(&png, "Describe the picture")
            .id("image")
            .model(MODEL)
            .max_tokens(300),
        Job::file(&pdf, "Extract the invoice")
            .id("pdf")
            .model(MODEL)
            .max_tokens(300)
            .response_schema(schema.clone()),
        Job::file(&txt, "Extract the invoice")
            .id("text")
            .model(MODEL)
            .max_tokens(300)
            .response_schema(schema.clone()),
        Job::file(&docx, "Extract the invoice")
            .id("docx")
            .model(MODEL)
            .max_tokens(300)
            .response_schema(schema),
    ];
    let (batch_id, st, res) = run(&p, &jobs, Some(&raw)).await;
    assert_eq!(st.state, BatchState::Complete);
    assert_eq!(st.counts.total, 5);
    for r in &res {
        assert!(r.is_success(), "{r:?}");
        assert_eq!(r.batch_id.as_deref(), Some(batch_id.as_str()));
        assert!(r.input_tokens > 0 && r.output_tokens > 0, "{r:?}");
        assert!(r.cost_usd > 0.0, "{r:?}");
    }
    assert!(by_id(&res, "chat")
        .raw_response
        .as_deref()
        .unwrap()
        .contains("Name a prime number"));
    // The document reached the model as something it could read: the
    // emulator's answer takes the values from the document's text.
    for id in ["pdf", "text", "docx"] {
        let r = by_id(&res, id);
        assert!(r.validation_errors.is_empty(), "{id}: {r:?}");
        assert_eq!(
            r.parsed_response.as_ref().unwrap(),
            &json!({"invoice_number": "INV-7", "total": 1234.5}),
            "{id}"
        );
    }

    // Raw files: the request file named after the batch, one line per job.
    let req = read_lines(&raw.join(format!("requests/openai_batch_{batch_id}.jsonl")));
    assert_eq!(req.len(), 5);
    let ids: Vec<&str> = req
        .iter()
        .map(|l| l["custom_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["chat", "image", "pdf", "text", "docx"]);
    let pdf_part = &req[2]["body"]["messages"][0]["content"][0];
    assert_eq!(pdf_part["type"], "file");
    assert_eq!(pdf_part["file"]["filename"], "invoice.pdf");
    assert!(pdf_part["file"]["file_data"]
        .as_str()
        .unwrap()
        .starts_with("data:application/pdf;base64,JVBER"));
    assert!(
        req[1]["body"]["messages"][0]["content"][0]["image_url"]["url"]
            .as_str()
            .unwrap()
            .starts_with("data:image/png;base64,iVBORw0KGgo")
    );
    assert_eq!(
        req[2]["body"]["response_format"]["json_schema"]["strict"],
        true
    );
    // No stray temp file next to it.
    let requests: Vec<PathBuf> = all_files(&raw.join("requests"));
    assert_eq!(requests.len(), 1, "{requests:?}");
    let out = read_lines(&raw.join(format!("responses/openai_batch_{batch_id}.jsonl")));
    assert_eq!(out.len(), 5);
    for id in ["chat", "image", "pdf", "text", "docx"] {
        let v: Value = serde_json::from_str(
            &std::fs::read_to_string(raw.join(format!("responses/{id}_raw.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(v["custom_id"], id);
    }
    // The emulator received the upload once, the lines intact.
    let stats = emu.stats();
    assert_eq!(stats.calls_to("openai.files.create"), 1);
    assert_eq!(stats.calls_to("openai.batches.create"), 1);
    let b = stats.batches_for("openai").next().unwrap();
    assert_eq!((b.request_count, b.custom_ids), (5, 5));
    assert_eq!(
        b.metadata.as_ref().unwrap(),
        &json!({"batchata_run_id": "run-test", "batchata_batch_index": "0"})
    );
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema, PartialEq)]
struct Party {
    name: String,
    vat_id: Option<String>,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema, PartialEq)]
struct LineItem {
    sku: String,
    quantity: i64,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema, PartialEq)]
struct Invoice {
    invoice_number: String,
    total: f64,
    vendor: Party,
    notes: Option<String>,
    items: Vec<LineItem>,
}

#[tokio::test]
async fn strict_structured_output_is_parsed_and_validated() {
    let emu = emulator(EmulatorConfig::default()).await;
    let p = provider(&emu);
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw_files");
    let jobs = vec![
        Job::prompt("Invoice number: INV-42\nTotal: 99.5\nName: ACME Ltd")
            .id("inv")
            .model(MODEL)
            .max_tokens(2000)
            .schema::<Invoice>(),
    ];
    let (batch_id, _, res) = run(&p, &jobs, Some(&raw)).await;
    let r = &res[0];
    assert!(r.is_success(), "{r:?}");
    assert!(r.validation_errors.is_empty(), "{:?}", r.validation_errors);
    let inv: Invoice = r.parsed().unwrap();
    assert_eq!(inv.invoice_number, "INV-42");
    assert_eq!(inv.total, 99.5);

    // What went over the wire is strict all the way down.
    let req = read_lines(&raw.join(format!("requests/openai_batch_{batch_id}.jsonl")));
    let rf = &req[0]["body"]["response_format"];
    assert_eq!(rf["type"], "json_schema");
    assert_eq!(rf["json_schema"]["name"], "Invoice");
    assert_eq!(rf["json_schema"]["strict"], true);
    let schema = &rf["json_schema"]["schema"];
    let mut objects = 0;
    check_strict(schema, &mut objects);
    assert!(objects >= 3, "top level, Party and LineItem: {schema}");
}

fn check_strict(s: &Value, objects: &mut usize) {
    match s {
        Value::Object(m) => {
            if let Some(Value::Object(props)) = m.get("properties") {
                *objects += 1;
                assert_eq!(m.get("additionalProperties"), Some(&json!(false)), "{s}");
                let req: Vec<&str> = m["required"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap())
                    .collect();
                for k in props.keys() {
                    assert!(req.contains(&k.as_str()), "{k} not required in {s}");
                }
            }
            for v in m.values() {
                check_strict(v, objects);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| check_strict(v, objects)),
        _ => {}
    }
}

#[tokio::test]
async fn output_and_error_files_are_both_read() {
    let emu = emulator(EmulatorConfig::default().error_rate(0.3).seed(7)).await;
    let p = provider(&emu);
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw_files");
    let jobs = prompt_jobs(40);
    let (batch_id, st, res) = run(&p, &jobs, Some(&raw)).await;
    assert_eq!(st.state, BatchState::Complete);
    let failed: Vec<&JobResult> = res.iter().filter(|r| !r.is_success()).collect();
    let ok = res.len() - failed.len();
    assert!(
        !failed.is_empty() && ok > 0,
        "{} failed of 40",
        failed.len()
    );
    for r in &failed {
        let e = r.error.as_deref().unwrap();
        assert!(e.contains("OpenAI refused the request (HTTP 5"), "{e}");
        assert_eq!(r.outcome(), JobOutcome::Failed);
    }
    assert_eq!(st.counts.errored as usize, failed.len());
    assert_eq!(st.counts.succeeded as usize, ok);
    let errors = read_lines(&raw.join(format!("errors/openai_batch_{batch_id}.jsonl")));
    assert_eq!(errors.len(), failed.len());
    let out = read_lines(&raw.join(format!("responses/openai_batch_{batch_id}.jsonl")));
    assert_eq!(out.len(), ok);
}

#[tokio::test]
async fn output_lines_are_matched_by_custom_id() {
    let emu = emulator(EmulatorConfig::default().shuffle_results(true).seed(3)).await;
    let p = provider(&emu);
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw_files");
    let jobs = prompt_jobs(30);
    let (batch_id, _, res) = run(&p, &jobs, Some(&raw)).await;
    let out = read_lines(&raw.join(format!("responses/openai_batch_{batch_id}.jsonl")));
    let order: Vec<&str> = out
        .iter()
        .map(|l| l["custom_id"].as_str().unwrap())
        .collect();
    let sent: Vec<&str> = jobs.iter().map(|j| j.id_str()).collect();
    assert_ne!(order, sent, "the emulator was asked to shuffle the output");
    for j in &jobs {
        let r = by_id(&res, j.id_str());
        let text = r.raw_response.as_deref().unwrap();
        let prompt = j.prompt.as_deref().unwrap();
        assert!(text.contains(prompt), "{} got {text:?}", j.id_str());
    }
}

#[tokio::test]
async fn expired_batch_keeps_finished_lines() {
    let emu = emulator(
        EmulatorConfig::default()
            .expire_all()
            .expire_keep_fraction(0.5)
            .seed(11),
    )
    .await;
    let p = provider(&emu);
    let jobs = prompt_jobs(30);
    let (_, st, res) = run(&p, &jobs, None).await;
    assert_eq!(st.provider_status, "expired");
    assert_eq!(st.state, BatchState::Failed);
    assert_eq!(st.error.as_deref(), Some("batch expired"));
    let done = res.iter().filter(|r| r.is_success()).count();
    let expired: Vec<&JobResult> = res.iter().filter(|r| !r.is_success()).collect();
    assert!(done > 0 && !expired.is_empty(), "{done} done");
    for r in expired {
        assert_eq!(r.error.as_deref(), Some(EXPIRED_MESSAGE));
    }
}

#[tokio::test]
async fn cancelled_batch_keeps_finished_lines() {
    let emu = emulator(
        EmulatorConfig::default()
            .processing_delay(Duration::from_secs(4))
            .cancel_delay(Duration::from_millis(200)),
    )
    .await;
    let p = provider(&emu);
    let jobs = prompt_jobs(40);
    let created = p.create_batch(request(&jobs, None)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    p.cancel_batch(&created.batch_id).await.unwrap();
    let st = p.get_batch_status(&created.batch_id).await.unwrap();
    assert_eq!(st.provider_status, "cancelling");
    assert_eq!(st.state, BatchState::Running);
    let st = wait_terminal(&p, &created.batch_id).await;
    assert_eq!(st.state, BatchState::Cancelled);
    let res = results(&p, &created.batch_id, &jobs, None).await;
    let done = res.iter().filter(|r| r.is_success()).count();
    let cancelled: Vec<&JobResult> = res.iter().filter(|r| !r.is_success()).collect();
    assert!(done > 0 && !cancelled.is_empty(), "{done} done of 40");
    for r in cancelled {
        assert!(
            r.error.as_deref().unwrap().starts_with(CANCELLED_BY_USER),
            "{r:?}"
        );
        assert_eq!(r.outcome(), JobOutcome::Cancelled);
    }
}

#[tokio::test]
async fn retries_honour_retry_after_and_back_off() {
    let emu = emulator(
        EmulatorConfig::default()
            .fail_first(
                Endpoint::OpenAiFilesCreate,
                2,
                FaultKind::Status429 {
                    retry_after_ms: 300,
                },
            )
            .fail_first(
                Endpoint::OpenAiBatchesCreate,
                1,
                FaultKind::Status429 {
                    retry_after_ms: 400,
                },
            )
            .fail_first(Endpoint::OpenAiBatchesRetrieve, 2, FaultKind::Status503)
            .fail_first(Endpoint::OpenAiFilesContent, 1, FaultKind::DropConnection),
    )
    .await;
    let p = provider(&emu);
    let jobs = prompt_jobs(5);

    let t = Instant::now();
    let created = p.create_batch(request(&jobs, None)).await.unwrap();
    let create_time = t.elapsed();
    // Two 429s on the upload each asking for 300 ms, then a 429 on the
    // create asking for 400 ms: a rate limit means "not created", so even
    // a create is repeated.
    assert!(
        create_time >= Duration::from_millis(600 + 400),
        "{create_time:?}"
    );

    let t = Instant::now();
    let st = wait_terminal(&p, &created.batch_id).await;
    // Two 503s: backoff >= 375 ms + 750 ms.
    assert!(
        t.elapsed() >= Duration::from_millis(1125),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(st.state, BatchState::Complete);
    let res = results(&p, &created.batch_id, &jobs, None).await;
    assert!(res.iter().all(|r| r.is_success()), "{res:?}");

    let stats = emu.stats();
    assert_eq!(stats.calls_to("openai.files.create"), 3);
    assert_eq!(stats.calls_to("openai.batches.create"), 2);
    assert!(stats.calls_to("openai.batches.retrieve") >= 3);
    assert_eq!(stats.calls_to("openai.files.content"), 2);
    assert_eq!(stats.faults_of("429"), 3);
    // The retried upload streamed the whole file again: one batch, all lines.
    let batches: Vec<_> = stats.batches_for("openai").collect();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].request_count, 5);
}

#[tokio::test]
async fn a_create_that_may_have_happened_is_not_repeated() {
    // A 500 or a cut connection after the create was sent: the batch may
    // exist. The provider does not repeat the call; the engine looks it
    // up first (run engine tests). The input file is kept for a retry.
    for fault in [FaultKind::Status500, FaultKind::DropAfter] {
        let emu =
            emulator(EmulatorConfig::default().fail_first(Endpoint::OpenAiBatchesCreate, 1, fault))
                .await;
        let p = provider(&emu);
        let jobs = prompt_jobs(3);
        let e = p.create_batch(request(&jobs, None)).await.unwrap_err();
        assert!(
            matches!(e, batchata::Error::OutcomeUnknown(_)),
            "{fault:?}: {e:?}"
        );
        assert_eq!(emu.stats().calls_to("openai.batches.create"), 1);
        // Created again (the engine found it absent): the kept input file is
        // used, not uploaded a second time.
        let again = p.create_batch(request(&jobs, None)).await;
        let stats = emu.stats();
        assert_eq!(stats.calls_to("openai.files.create"), 1, "{fault:?}");
        if fault == FaultKind::Status500 {
            again.unwrap();
            assert_eq!(stats.batches_for("openai").count(), 1);
        } else {
            // drop-after: the first create did happen; a blind second one
            // would pay twice, which is why the engine looks first.
            again.unwrap();
            assert_eq!(stats.batches_for("openai").count(), 2);
        }
    }
}

#[tokio::test]
async fn a_large_upload_is_streamed_again_after_a_dropped_connection() {
    let emu = emulator(EmulatorConfig::default().fail_first(
        Endpoint::OpenAiFilesCreate,
        1,
        FaultKind::DropConnection,
    ))
    .await;
    let p = provider(&emu);
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw_files");
    // About 1.5 MB: several chunks of the streamed body.
    let filler = "abcdefghij".repeat(50);
    let jobs: Vec<Job> = (0..3_000)
        .map(|i| job(&format!("big-{i:05}"), &format!("Item {i}: {filler}")))
        .collect();
    let (batch_id, st, res) = run(&p, &jobs, Some(&raw)).await;
    assert_eq!(st.state, BatchState::Complete);
    assert!(res.iter().all(|r| r.is_success()));
    let stats = emu.stats();
    assert_eq!(stats.calls_to("openai.files.create"), 2);
    assert_eq!(stats.faults_of("drop"), 1);
    let b = stats.batches_for("openai").next().unwrap();
    assert_eq!((b.request_count, b.custom_ids), (3_000, 3_000));
    let request_file = raw.join(format!("requests/openai_batch_{batch_id}.jsonl"));
    assert!(std::fs::metadata(&request_file).unwrap().len() > 1_500_000);
    for (i, j) in jobs.iter().enumerate().step_by(500) {
        let text = by_id(&res, j.id_str()).raw_response.clone().unwrap();
        assert!(text.contains(&format!("Item {i}: abcdefghij")), "{text}");
    }
}

#[tokio::test]
async fn retries_give_up_after_the_limit_with_a_clear_error() {
    let emu = emulator(EmulatorConfig::default().fail_first(
        Endpoint::OpenAiFilesCreate,
        10,
        FaultKind::Status500,
    ))
    .await;
    let p = OpenAiProvider::new(
        &config(&emu).max_retries(1),
        Arc::new(Catalog::builtin().clone()),
    )
    .unwrap();
    let jobs = prompt_jobs(2);
    let e = p.create_batch(request(&jobs, None)).await.unwrap_err();
    assert!(e.is_retryable());
    let msg = e.to_string();
    assert!(msg.contains("HTTP 500") && msg.contains("upload"), "{msg}");
    assert_eq!(emu.stats().calls_to("openai.files.create"), 2);
    assert_eq!(emu.stats().calls_to("openai.batches.create"), 0);
}

#[tokio::test]
async fn too_many_jobs_are_refused_before_upload() {
    let emu = emulator(EmulatorConfig::default()).await;
    let p = provider(&emu);
    let jobs: Vec<Job> = (0..50_001).map(|i| job(&format!("j{i}"), "hi")).collect();
    let e = p.create_batch(request(&jobs, None)).await.unwrap_err();
    assert!(matches!(e, batchata::Error::BatchSubmission(_)), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("50001") && msg.contains("50000") && msg.contains("items_per_batch"),
        "{msg}"
    );
    assert_eq!(emu.stats().total_calls, 0);
}

#[tokio::test]
async fn oversized_input_is_refused_before_upload() {
    let emu = emulator(EmulatorConfig::default()).await;
    let p = provider(&emu).with_limits(BatchLimits {
        max_requests: 50_000,
        max_bytes: 10_000,
        one_model_per_batch: true,
    });
    let jobs: Vec<Job> = (0..100)
        .map(|i| job(&format!("j{i}"), &"lorem ipsum ".repeat(20)))
        .collect();
    let e = p.create_batch(request(&jobs, None)).await.unwrap_err();
    assert!(matches!(e, batchata::Error::BatchSubmission(_)), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("10000 bytes") && msg.contains("items_per_batch"),
        "{msg}"
    );
    assert_eq!(emu.stats().total_calls, 0);
}

#[tokio::test]
async fn duplicate_ids_are_refused_before_upload() {
    // Results are matched by custom_id: as for the other providers, a batch
    // with an id twice is refused before anything is sent.
    let emu = emulator(EmulatorConfig::default()).await;
    let p = provider(&emu);
    let jobs = vec![job("a", "one"), job("b", "two"), job("a", "three")];
    let e = p.create_batch(request(&jobs, None)).await.unwrap_err();
    assert!(matches!(e, batchata::Error::BatchSubmission(_)), "{e:?}");
    assert!(e.to_string().contains("'a' appears twice"), "{e}");
    assert_eq!(emu.stats().total_calls, 0);
}

#[tokio::test]
async fn mixed_models_are_refused() {
    let emu = emulator(EmulatorConfig::default()).await;
    let p = provider(&emu);
    let jobs = vec![job("a", "hi"), job("b", "hi").model("gpt-4o")];
    let msg = p
        .create_batch(request(&jobs, None))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("one model") && msg.contains("'b'") && msg.contains("gpt-4o"),
        "{msg}"
    );
    assert_eq!(emu.stats().total_calls, 0);
}

#[tokio::test]
async fn batch_that_fails_validation_reports_its_errors_per_line() {
    // The emulator takes at most 3 lines here: OpenAI fails such a batch at validation.
    let emu = emulator(EmulatorConfig::default().openai_limits(3, 200 * 1024 * 1024)).await;
    let p = provider(&emu);
    let jobs = prompt_jobs(5);
    let (_, st, res) = run(&p, &jobs, None).await;
    assert_eq!(st.state, BatchState::Failed);
    assert_eq!(st.provider_status, "failed");
    let batch_error = st.error.clone().unwrap();
    assert!(
        batch_error.starts_with("batch failed validation"),
        "{batch_error}"
    );
    for r in &res {
        let e = r.error.as_deref().unwrap();
        assert!(e.starts_with("OpenAI refused the batch's input"), "{e}");
    }
}

#[tokio::test]
async fn validation_error_on_a_line_goes_to_that_lines_job() {
    // Content the provider refuses fails the batch at validation, naming line 3.
    let emu = emulator(EmulatorConfig::default()).await;
    let p = provider(&emu);
    let jobs = vec![
        job("a", "one"),
        job("b", "two"),
        job("c", &format!("three {REJECT_MARKER}")),
    ];
    let (_, st, res) = run(&p, &jobs, None).await;
    assert_eq!(st.state, BatchState::Failed);
    assert!(st.error.as_deref().unwrap().contains("line 3"), "{st:?}");
    let named: Vec<&JobResult> = res
        .iter()
        .filter(|r| {
            r.error
                .as_deref()
                .unwrap()
                .starts_with("OpenAI refused the batch's input for this request: line 3:")
        })
        .collect();
    assert_eq!(named.len(), 1, "{res:?}");
    assert_eq!(named[0].job_id, "c");
    assert!(named[0]
        .error
        .as_deref()
        .unwrap()
        .contains("Invalid content"));
    let batch_level = res
        .iter()
        .filter(|r| {
            r.error
                .as_deref()
                .unwrap()
                .starts_with("OpenAI refused the batch's input: ")
        })
        .count();
    assert_eq!(batch_level, 2, "{res:?}");
}

fn probe<'a>(
    run_id: &'a str,
    index: usize,
    intent_at: chrono::DateTime<chrono::Utc>,
    known: &'a [String],
) -> BatchProbe<'a> {
    BatchProbe {
        run_id,
        batch_index: index,
        request_count: 2,
        intent_at,
        known_ids: known,
    }
}

#[tokio::test]
async fn find_batch_matches_run_metadata_across_pages() {
    let emu = emulator(EmulatorConfig::default().processing_delay(Duration::from_secs(30))).await;
    let p = provider(&emu);
    let jobs = prompt_jobs(2);
    let intent_at = chrono::Utc::now();
    // 105 batches: the list is newest first, 100 a page, so batch 0 is on page two.
    let mut ids = Vec::new();
    for index in 0..105 {
        let created = p
            .create_batch(BatchRequest {
                jobs: &jobs,
                run_id: "run-find",
                batch_index: index,
                raw_dir: None,
            })
            .await
            .unwrap();
        ids.push(created.batch_id);
    }
    let before = emu.stats().calls_to("openai.batches.list");
    assert_eq!(
        p.find_batch(probe("run-find", 0, intent_at, &[]))
            .await
            .unwrap(),
        Some(ids[0].clone())
    );
    assert_eq!(emu.stats().calls_to("openai.batches.list") - before, 2);
    assert_eq!(
        p.find_batch(probe("run-find", 104, intent_at, &[]))
            .await
            .unwrap(),
        Some(ids[104].clone())
    );
    assert_eq!(
        p.find_batch(probe("run-find", 200, intent_at, &[]))
            .await
            .unwrap(),
        None
    );
    let known = vec![ids[2].clone()];
    assert_eq!(
        p.find_batch(probe("run-find", 2, intent_at, &known))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        p.find_batch(probe("another-run", 1, intent_at, &[]))
            .await
            .unwrap(),
        None
    );
    // Batches made long before the intent are not looked at.
    let later = intent_at + chrono::Duration::hours(2);
    let before = emu.stats().calls_to("openai.batches.list");
    assert_eq!(
        p.find_batch(probe("run-find", 0, later, &[]))
            .await
            .unwrap(),
        None
    );
    assert_eq!(emu.stats().calls_to("openai.batches.list") - before, 1);
}

#[tokio::test]
async fn api_key_never_leaks() {
    let emu = emulator(EmulatorConfig::default().error_rate(0.5).seed(5)).await;
    let p = provider(&emu);
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw_files");
    let jobs = prompt_jobs(10);
    let (_, _, res) = run(&p, &jobs, Some(&raw)).await;
    for r in &res {
        assert!(!r.to_json().unwrap().contains(KEY));
    }
    let files = all_files(&raw);
    assert!(files.len() >= 3, "{files:?}");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(!text.contains(KEY), "{}", f.display());
    }
    assert!(!format!("{p:?}").contains(KEY));

    // A wrong key: the refusal names the variable, never the key sent.
    let wrong = "sk-wrong-SECRET-0000111122223333";
    let bad = OpenAiProvider::new(
        &config(&emu).api_key(wrong),
        Arc::new(Catalog::builtin().clone()),
    )
    .unwrap();
    let e = bad
        .create_batch(request(&jobs, None))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("401") && e.contains("OPENAI_API_KEY"), "{e}");
    assert!(!e.contains(wrong) && !e.contains(KEY), "{e}");
    let e = bad
        .get_batch_status("batch_abc")
        .await
        .unwrap_err()
        .to_string();
    assert!(!e.contains(wrong), "{e}");
}

#[test]
fn missing_key_is_a_clear_error() {
    let e = OpenAiProvider::new(
        &ProviderConfig::default(),
        Arc::new(Catalog::builtin().clone()),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("OPENAI_API_KEY") && e.contains("ProviderConfig::api_key"),
        "{e}"
    );
}

#[test]
fn citations_and_foreign_models_are_refused() {
    let p = OpenAiProvider::new(
        &ProviderConfig::default().api_key(KEY),
        Arc::new(Catalog::builtin().clone()),
    )
    .unwrap();
    let model = Catalog::builtin().get(MODEL).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pdf = dir.path().join("a.pdf");
    std::fs::write(&pdf, batchata::fixtures::pdf(&["text"]).unwrap()).unwrap();
    let j = Job::file(&pdf, "cite").id("c").model(MODEL).citations(true);
    let e = p.validate_job(&j, &model).unwrap_err().to_string();
    assert!(
        e.contains("job 'c'") && e.contains("enable_citations") && e.contains("citations off"),
        "{e}"
    );
    assert!(p.validate_job(&j.clone().citations(false), &model).is_ok());
    let claude = Catalog::builtin()
        .models()
        .find(|m| m.provider == batchata::ProviderKind::Anthropic)
        .unwrap()
        .clone();
    assert!(p.validate_job(&job("x", "hi"), &claude).is_err());
    assert_eq!(p.polling_interval(), Duration::from_secs(5));
}

#[test]
fn add_job_refuses_citations_for_openai_models() {
    let dir = tempfile::tempdir().unwrap();
    let pdf = dir.path().join("a.pdf");
    std::fs::write(&pdf, batchata::fixtures::pdf(&["text"]).unwrap()).unwrap();
    let mut batch = batchata::Batch::new(dir.path().join("out"));
    let e = batch
        .add_job(Job::file(&pdf, "cite").id("c").model(MODEL).citations(true))
        .unwrap_err()
        .to_string();
    assert!(e.contains("citations"), "{e}");
}
