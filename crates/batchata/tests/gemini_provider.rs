//! The Gemini provider against the local emulator, over real HTTP on
//! loopback: inline and uploaded-file batches, results matched by key,
//! every terminal state, retries by the google-genai rules, finding a lost
//! batch by its display name, and key hygiene.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use batchata::catalog::{Catalog, Usage};
use batchata::providers::gemini::{display_name, GeminiProvider, EXPIRED_MESSAGE};
use batchata::providers::{
    BatchProbe, BatchRequest, BatchState, BatchStatus, Provider, ProviderConfig, ResultsContext,
};
use batchata::{Batch, DefaultParams, Job, JobOutcome, JobResult, Message, ResponseSchema};
use batchata_emulator::{Emulator, EmulatorConfig, EmulatorHandle, Endpoint, FaultKind};
use serde_json::{json, Value};

const KEY: &str = "AIza-test-SECRET-4f9a1c77e0b2";
const MODEL: &str = "gemini-2.5-flash";

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
        .base_url(emu.gemini_base_url())
        .poll_interval(Duration::from_millis(25))
}

fn provider(emu: &EmulatorHandle) -> GeminiProvider {
    GeminiProvider::new(&config(emu), Arc::new(Catalog::builtin().clone())).unwrap()
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

async fn wait_terminal(p: &GeminiProvider, id: &str) -> BatchStatus {
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

async fn results(p: &GeminiProvider, id: &str, jobs: &[Job], raw: Option<&Path>) -> Vec<JobResult> {
    let mut out = Vec::new();
    let mut sink = |r: JobResult| -> batchata::Result<()> {
        out.push(r);
        Ok(())
    };
    p.get_batch_results(id, ResultsContext { jobs, raw_dir: raw }, &mut sink)
        .await
        .unwrap();
    let mut ids: Vec<&str> = out.iter().map(|r| r.job_id.as_str()).collect();
    ids.sort();
    let mut want: Vec<&str> = jobs.iter().map(|j| j.id_str()).collect();
    want.sort();
    assert_eq!(ids, want, "one result per job");
    out
}

async fn run(
    p: &GeminiProvider,
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
        "type": "object",
        "properties": {"invoice_number": {"type": "string"}, "total": {"type": "number"}},
        "required": ["invoice_number", "total"]
    }))
    .unwrap()
}

/// The raw answer of a job, as the raw-files folder keeps it.
fn raw_answer(raw: &Path, id: &str) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(raw.join(format!("responses/{id}_raw.json"))).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn chat_image_pdf_text_and_docx_jobs_inline() {
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
    assert!(batch_id.starts_with("batches/"), "{batch_id}");
    assert_eq!(st.state, BatchState::Complete);
    assert_eq!(st.provider_status, "succeeded");
    assert_eq!((st.counts.total, st.counts.succeeded), (5, 5));
    let m = Catalog::builtin().get(MODEL).unwrap();
    for r in &res {
        assert!(r.is_success(), "{r:?}");
        assert_eq!(r.batch_id.as_deref(), Some(batch_id.as_str()));
        // Cost = tokens × batch price, thinking tokens billed as output.
        let usage = &raw_answer(&raw, &r.job_id)["response"]["usageMetadata"];
        let thoughts = usage["thoughtsTokenCount"].as_u64().unwrap();
        assert!(thoughts > 0, "{usage}");
        assert_eq!(r.input_tokens, usage["promptTokenCount"].as_u64().unwrap());
        assert_eq!(
            r.output_tokens,
            usage["candidatesTokenCount"].as_u64().unwrap() + thoughts
        );
        let want = r.input_tokens as f64 * m.batch_input_price() / 1e6
            + r.output_tokens as f64 * m.batch_output_price() / 1e6;
        assert!(
            (r.cost_usd - want).abs() < 1e-12,
            "{} vs {want}",
            r.cost_usd
        );
    }
    assert!(by_id(&res, "chat")
        .raw_response
        .as_deref()
        .unwrap()
        .contains("Name a prime number"));
    for id in ["pdf", "text", "docx"] {
        let r = by_id(&res, id);
        assert!(r.validation_errors.is_empty(), "{id}: {r:?}");
        assert_eq!(
            r.parsed_response.as_ref().unwrap(),
            &json!({"invoice_number": "INV-7", "total": 1234.5}),
            "{id}"
        );
    }

    // Raw files: the requests as JSONL, keyed; the responses; one per job.
    let short = batch_id.trim_start_matches("batches/");
    let req = read_lines(&raw.join(format!("requests/gemini_batch_{short}.jsonl")));
    let keys: Vec<&str> = req.iter().map(|l| l["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["chat", "image", "pdf", "text", "docx"]);
    assert_eq!(
        req[0]["request"]["systemInstruction"],
        json!({"parts": [{"text": "You answer briefly."}]})
    );
    let part = &req[2]["request"]["contents"][0]["parts"][0]["inlineData"];
    assert_eq!(part["mimeType"], "application/pdf");
    assert!(part["data"].as_str().unwrap().starts_with("JVBER"));
    assert_eq!(
        req[1]["request"]["contents"][0]["parts"][0]["inlineData"]["mimeType"],
        "image/png"
    );
    let gc = &req[2]["request"]["generationConfig"];
    assert_eq!(gc["responseMimeType"], "application/json");
    assert_eq!(
        gc["responseJsonSchema"]["required"],
        json!(["invoice_number", "total"])
    );
    assert_eq!(all_files(&raw.join("requests")).len(), 1);
    let out = read_lines(&raw.join(format!("responses/gemini_batch_{short}.jsonl")));
    assert_eq!(out.len(), 5);
    for id in ["chat", "image", "pdf", "text", "docx"] {
        assert_eq!(raw_answer(&raw, id)["metadata"]["key"], id);
    }
    let stats = emu.stats();
    assert_eq!(stats.calls_to("gemini.create"), 1);
    assert_eq!(
        stats.calls_to("gemini.files.start"),
        0,
        "small batches go inline"
    );
    let b = stats.batches_for("gemini").next().unwrap();
    assert_eq!((b.request_count, b.custom_ids), (5, 5));
    assert_eq!(
        b.metadata.as_ref().unwrap(),
        &json!({"displayName": display_name("run-test", 0)})
    );
}

#[tokio::test]
async fn results_are_matched_by_key_though_they_come_back_shuffled() {
    let emu = emulator(EmulatorConfig::default().seed(11)).await;
    let p = provider(&emu);
    let jobs = prompt_jobs(40);
    let (_, _, res) = run(&p, &jobs, None).await;
    // The emulator returned them out of order (the sink saw that order).
    let order: Vec<&str> = res.iter().map(|r| r.job_id.as_str()).collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_ne!(order, sorted);
    for (i, j) in jobs.iter().enumerate() {
        let text = by_id(&res, j.id_str()).raw_response.clone().unwrap();
        assert!(text.contains(&format!("Question number {i}:")), "{text}");
    }
}

#[tokio::test]
async fn a_batch_over_the_inline_limit_goes_through_an_uploaded_file() {
    let emu = emulator(EmulatorConfig::default()).await;
    let p = provider(&emu).with_inline_limit(10_000);
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw_files");
    // About 1.5 MB: several chunks of the streamed upload.
    let filler = "abcdefghij".repeat(50);
    let jobs: Vec<Job> = (0..3_000)
        .map(|i| job(&format!("big-{i:05}"), &format!("Item {i}: {filler}")))
        .collect();
    let (batch_id, st, res) = run(&p, &jobs, Some(&raw)).await;
    assert_eq!(st.state, BatchState::Complete);
    assert!(res.iter().all(|r| r.is_success()));
    for (i, j) in jobs.iter().enumerate().step_by(500) {
        let text = by_id(&res, j.id_str()).raw_response.clone().unwrap();
        assert!(text.contains(&format!("Item {i}: abcdefghij")), "{text}");
    }
    let stats = emu.stats();
    assert_eq!(stats.calls_to("gemini.files.start"), 1);
    assert_eq!(stats.calls_to("gemini.files.upload"), 1);
    assert_eq!(stats.calls_to("gemini.create"), 1);
    assert_eq!(stats.calls_to("gemini.files.download"), 1);
    let b = stats.batches_for("gemini").next().unwrap();
    assert_eq!((b.request_count, b.custom_ids), (3_000, 3_000));
    let short = batch_id.trim_start_matches("batches/");
    let request_file = raw.join(format!("requests/gemini_batch_{short}.jsonl"));
    assert!(std::fs::metadata(&request_file).unwrap().len() > 1_500_000);
    assert_eq!(raw_answer(&raw, "big-00007")["key"], "big-00007");
}

#[tokio::test]
async fn an_input_file_over_the_byte_limit_is_refused_before_anything_is_sent() {
    let emu = emulator(EmulatorConfig::default()).await;
    let fresh = provider(&emu);
    // Room for about 40 of these 200-byte prompts' lines, and too much
    // to send inline: the limit is met while the file is built.
    let p = provider(&emu)
        .with_inline_limit(1)
        .with_limits(batchata::providers::BatchLimits {
            max_bytes: 40 * 300,
            ..fresh.limits()
        });
    let jobs: Vec<Job> = (0..100)
        .map(|i| job(&format!("j-{i:03}"), &format!("{i}: {}", "x".repeat(200))))
        .collect();
    let e = p.create_batch(request(&jobs, None)).await.unwrap_err();
    assert!(matches!(e, batchata::Error::BatchSubmission(_)), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("of 100 jobs") && msg.contains("lower items_per_batch"),
        "{msg}"
    );
    assert_eq!(emu.stats().total_calls, 0, "nothing is sent");
    // Under the limit, the same provider sends it through a file.
    let created = p.create_batch(request(&jobs[..10], None)).await.unwrap();
    assert_eq!(emu.stats().calls_to("gemini.files.upload"), 1);
    let st = wait_terminal(&p, &created.batch_id).await;
    assert_eq!(st.state, BatchState::Complete);
}

#[tokio::test]
async fn cancelled_and_expired_batches_say_why_each_job_has_no_answer() {
    let emu = emulator(
        EmulatorConfig::default()
            .processing_delay(Duration::from_secs(30))
            .cancel_delay(Duration::from_millis(50)),
    )
    .await;
    let p = provider(&emu);
    let jobs = prompt_jobs(4);
    let created = p.create_batch(request(&jobs, None)).await.unwrap();
    p.cancel_batch(&created.batch_id).await.unwrap();
    let st = wait_terminal(&p, &created.batch_id).await;
    assert_eq!(
        (st.state, st.provider_status.as_str()),
        (BatchState::Cancelled, "cancelled")
    );
    let res = results(&p, &created.batch_id, &jobs, None).await;
    assert!(
        res.iter().all(|r| r.outcome() == JobOutcome::Cancelled),
        "{res:?}"
    );
    assert_eq!(emu.stats().calls_to("gemini.cancel"), 1);

    let emu = emulator(EmulatorConfig::default().expire_all()).await;
    let p = provider(&emu);
    let (_, st, res) = run(&p, &jobs, None).await;
    assert_eq!(
        (st.state, st.provider_status.as_str()),
        (BatchState::Failed, "expired")
    );
    assert!(st.error.unwrap().contains("expired"));
    for r in &res {
        assert_eq!(r.error.as_deref(), Some(EXPIRED_MESSAGE));
    }
}

#[tokio::test]
async fn failed_requests_fail_alone_with_the_reason() {
    let emu = emulator(EmulatorConfig::default().error_rate(0.5).seed(3)).await;
    let p = provider(&emu);
    let jobs = prompt_jobs(20);
    let (_, st, res) = run(&p, &jobs, None).await;
    assert_eq!(st.state, BatchState::Complete);
    let failed: Vec<&JobResult> = res.iter().filter(|r| !r.is_success()).collect();
    assert!(!failed.is_empty() && failed.len() < 20, "{}", failed.len());
    assert_eq!(st.counts.errored as usize, failed.len());
    for r in failed {
        let e = r.error.as_deref().unwrap();
        assert!(
            e.contains("INTERNAL") && e.contains("Internal error encountered"),
            "{e}"
        );
    }
}

#[tokio::test]
async fn retries_follow_the_google_rules() {
    let emu = emulator(
        EmulatorConfig::default()
            .fail_first(
                Endpoint::GeminiCreate,
                2,
                FaultKind::Status429 {
                    retry_after_ms: 300,
                },
            )
            .fail_first(Endpoint::GeminiGet, 1, FaultKind::Status503)
            .fail_first(Endpoint::GeminiDownload, 1, FaultKind::DropConnection),
    )
    .await;
    let p = provider(&emu).with_inline_limit(1);
    let jobs = prompt_jobs(5);
    let t = Instant::now();
    let created = p.create_batch(request(&jobs, None)).await.unwrap();
    // Two 429s whose RetryInfo asks for 300 ms each (not the 1 s backoff).
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_millis(1900),
        "{took:?}"
    );
    let t = Instant::now();
    let st = wait_terminal(&p, &created.batch_id).await;
    // A 503 backs off 1-2 s.
    assert!(t.elapsed() >= Duration::from_secs(1), "{:?}", t.elapsed());
    assert_eq!(st.state, BatchState::Complete);
    // The dropped download is tried again.
    let res = results(&p, &created.batch_id, &jobs, None).await;
    assert!(res.iter().all(|r| r.is_success()), "{res:?}");
    let stats = emu.stats();
    assert_eq!(stats.calls_to("gemini.create"), 3);
    assert_eq!(stats.calls_to("gemini.files.download"), 2);
    assert_eq!(stats.batches_for("gemini").count(), 1, "created once");

    // 400 and 404 are not retried.
    let before = emu.stats().calls_to("gemini.get");
    let e = p.get_batch_status("batches/nope").await.unwrap_err();
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("404"), "{e}");
    assert_eq!(emu.stats().calls_to("gemini.get") - before, 1);
}

#[tokio::test]
async fn a_dropped_upload_is_streamed_again() {
    let emu = emulator(EmulatorConfig::default().fail_first(
        Endpoint::GeminiUpload,
        1,
        FaultKind::DropConnection,
    ))
    .await;
    let p = provider(&emu).with_inline_limit(1);
    let jobs = prompt_jobs(200);
    let (_, st, res) = run(&p, &jobs, None).await;
    assert_eq!(st.state, BatchState::Complete);
    assert!(res.iter().all(|r| r.is_success()));
    let stats = emu.stats();
    assert_eq!(stats.faults_of("drop"), 1);
    assert_eq!(stats.calls_to("gemini.files.upload"), 2);
    let b = stats.batches_for("gemini").next().unwrap();
    assert_eq!(b.request_count, 200);
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
async fn find_batch_matches_the_display_name_across_pages() {
    let emu = emulator(EmulatorConfig::default().processing_delay(Duration::from_secs(30))).await;
    let p = provider(&emu);
    let jobs = prompt_jobs(2);
    let intent_at = chrono::Utc::now();
    // 105 batches, 100 a page newest first: batch 0 is on page two.
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
    let before = emu.stats().calls_to("gemini.list");
    assert_eq!(
        p.find_batch(probe("run-find", 0, intent_at, &[]))
            .await
            .unwrap(),
        Some(ids[0].clone())
    );
    assert_eq!(emu.stats().calls_to("gemini.list") - before, 2);
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
    // Batches made long before the intent are not adopted, and the search
    // stops at the first page that reaches past it.
    let later = intent_at + chrono::Duration::hours(2);
    let before = emu.stats().calls_to("gemini.list");
    assert_eq!(
        p.find_batch(probe("run-find", 0, later, &[]))
            .await
            .unwrap(),
        None
    );
    assert_eq!(emu.stats().calls_to("gemini.list") - before, 1);

    // Delete: gone from the provider.
    p.delete_batch(&ids[0]).await.unwrap();
    let e = p.get_batch_status(&ids[0]).await.unwrap_err();
    assert!(e.to_string().contains("404"), "{e}");
}

#[tokio::test]
async fn the_v1_api_version_works_too() {
    let emu = emulator(EmulatorConfig::default()).await;
    let p = GeminiProvider::new(
        &config(&emu).base_url(format!("{}/v1", emu.gemini_base_url())),
        Arc::new(Catalog::builtin().clone()),
    )
    .unwrap()
    .with_inline_limit(1);
    assert_eq!(p.api_version(), "v1");
    let jobs = prompt_jobs(3);
    let (_, st, res) = run(&p, &jobs, None).await;
    assert_eq!(st.state, BatchState::Complete);
    assert!(res.iter().all(|r| r.is_success()));
}

#[tokio::test]
async fn api_key_never_leaks_and_a_bad_one_is_named() {
    let emu = emulator(EmulatorConfig::default().error_rate(0.5).seed(5)).await;
    let p = provider(&emu);
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw_files");
    let jobs = prompt_jobs(10);
    let (_, _, res) = run(&p, &jobs, Some(&raw)).await;
    for r in &res {
        assert!(!r.to_json().unwrap().contains(KEY));
    }
    for f in all_files(&raw) {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(!text.contains(KEY), "{}", f.display());
    }
    assert!(!format!("{p:?}").contains(KEY));

    // Google answers a wrong key with 400 API_KEY_INVALID: refused for good,
    // and reported as a refused key (401), which stops a run without
    // failing its jobs.
    let wrong = "AIza-wrong-SECRET-0000111122223333";
    let bad = GeminiProvider::new(
        &config(&emu).api_key(wrong),
        Arc::new(Catalog::builtin().clone()),
    )
    .unwrap();
    let before = emu.stats().calls_to("gemini.create");
    let e = bad.create_batch(request(&jobs, None)).await.unwrap_err();
    assert!(e.is_auth(), "{e:?}");
    let e = e.to_string();
    assert!(e.contains("400") && e.contains("GOOGLE_API_KEY"), "{e}");
    assert!(!e.contains(wrong) && !e.contains(KEY), "{e}");
    assert_eq!(
        emu.stats().calls_to("gemini.create") - before,
        1,
        "not retried"
    );
}

#[test]
fn usage_with_cache_reads_is_priced_at_batch_rates() {
    let m = Catalog::builtin().get(MODEL).unwrap();
    let u = Usage {
        input_tokens: 100,
        cache_read_tokens: 0,
        output_tokens: 50,
        cache_write_tokens: 0,
    };
    let want = (100.0 * 0.15 + 50.0 * 1.25) / 1e6;
    assert!((m.batch_cost(&u) - want).abs() < 1e-15);
}

#[tokio::test]
async fn mixed_models_are_refused() {
    let emu = emulator(EmulatorConfig::default()).await;
    let p = provider(&emu);
    let jobs = vec![job("a", "x"), job("b", "y").model("gemini-2.5-pro")];
    let e = p
        .create_batch(request(&jobs, None))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("one model") && e.contains("gemini-2.5-pro"),
        "{e}"
    );
    assert_eq!(emu.stats().total_calls, 0);
}

#[test]
fn add_job_refuses_citations_and_gif_for_gemini() {
    let dir = tempfile::tempdir().unwrap();
    let pdf = dir.path().join("a.pdf");
    std::fs::write(&pdf, batchata::fixtures::pdf(&["Some text here."]).unwrap()).unwrap();
    let gif = dir.path().join("a.gif");
    std::fs::write(&gif, b"GIF89a").unwrap();
    let mut b =
        Batch::new(dir.path().join("out")).default_params(DefaultParams::new().model(MODEL));
    let e = b
        .add_job(Job::file(&pdf, "Cite it").id("c1").citations(true))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("'c1'") && e.contains("enable_citations") && e.contains("Gemini"),
        "{e}"
    );
    let e = b
        .add_job(Job::file(&gif, "What?").id("g1"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("'g1'") && e.contains("gif"), "{e}");
    // Without citations the same job is fine.
    b.add_job(Job::file(&pdf, "Read it").id("ok")).unwrap();
}
