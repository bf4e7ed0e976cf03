//! The Anthropic provider over real HTTP against the emulator: request
//! building for every kind of job, result parsing, citations, structured
//! output, every result type, retries and key hygiene.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use batchata::providers::anthropic::AnthropicProvider;
use batchata::providers::{BatchRequest, BatchState, Provider, ProviderConfig, ResultsContext};
use batchata::{Batch, Catalog, DefaultParams, Job, JobOutcome, JobResult, Message};
use batchata_emulator::{Emulator, EmulatorConfig, EmulatorHandle, Endpoint, FaultKind};
use serde::Deserialize;

const KEY: &str = "sk-ant-api03-secret-test-key-XYZ";
const MODEL: &str = "claude-sonnet-4-5";

fn provider(h: &EmulatorHandle) -> AnthropicProvider {
    AnthropicProvider::new(
        &ProviderConfig::default()
            .api_key(KEY)
            .base_url(h.anthropic_base_url())
            .poll_interval(Duration::from_millis(30)),
        Arc::new(Catalog::builtin().clone()),
    )
    .unwrap()
}

/// Jobs with defaults merged and validated, as the engine gets them.
fn prepare(dir: &Path, jobs: Vec<Job>) -> Vec<Job> {
    let mut b = Batch::new(dir.join("results"))
        .default_params(DefaultParams::new().model(MODEL).max_tokens(500));
    for j in jobs {
        b.add_job(j).unwrap();
    }
    b.jobs().to_vec()
}

async fn run(
    p: &AnthropicProvider,
    jobs: &[Job],
    raw: Option<&Path>,
) -> (String, BatchState, Vec<JobResult>) {
    let created = p
        .create_batch(BatchRequest {
            jobs,
            run_id: "run-a",
            batch_index: 0,
            raw_dir: raw,
        })
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let state = loop {
        let st = p.get_batch_status(&created.batch_id).await.unwrap();
        if st.state.is_terminal() {
            break st.state;
        }
        assert!(Instant::now() < deadline, "batch never ended");
        tokio::time::sleep(p.polling_interval()).await;
    };
    let mut out = Vec::new();
    let mut sink = |r: JobResult| -> batchata::Result<()> {
        out.push(r);
        Ok(())
    };
    p.get_batch_results(
        &created.batch_id,
        ResultsContext { jobs, raw_dir: raw },
        &mut sink,
    )
    .await
    .unwrap();
    let mut ids: Vec<_> = out.iter().map(|r| r.job_id.clone()).collect();
    ids.sort();
    let mut want: Vec<_> = jobs.iter().map(|j| j.id_str().to_string()).collect();
    want.sort();
    assert_eq!(ids, want, "exactly one result per job");
    (created.batch_id, state, out)
}

fn by_id<'a>(rs: &'a [JobResult], id: &str) -> &'a JobResult {
    rs.iter().find(|r| r.job_id == id).unwrap()
}

// A 1×1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    0x89, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D, 0xB4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE,
    0x42, 0x60, 0x82,
];

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct Invoice {
    invoice_number: String,
    total: f64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_jobs_end_to_end_with_citations_and_structured_output() {
    let h = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The report's pages, as written into its PDF.
    let report_pages = ["Intro page.", "Invoice number: INV-7\nTotal: 1234.5"];
    std::fs::write(
        d.join("report.pdf"),
        batchata::fixtures::pdf(&report_pages).unwrap(),
    )
    .unwrap();
    std::fs::write(
        d.join("notes.txt"),
        "Invoice number: INV-9. Total: 99.5. Paid in full.",
    )
    .unwrap();
    std::fs::write(
        d.join("memo.docx"),
        batchata::fixtures::docx(&["Invoice number: INV-3", "Total: 12.25"]).unwrap(),
    )
    .unwrap();
    std::fs::write(d.join("dot.png"), PNG).unwrap();
    let jobs = prepare(
        d,
        vec![
            Job::messages(vec![
                Message::system("Be brief."),
                Message::user("Hi there"),
                Message::assistant("Hello."),
                Message::user("Name a colour"),
            ])
            .id("chat"),
            Job::file(d.join("report.pdf"), "Where is the invoice number?")
                .id("pdf")
                .citations(true),
            Job::file(d.join("notes.txt"), "Extract the invoice.")
                .id("txt")
                .schema::<Invoice>(),
            Job::file(d.join("memo.docx"), "Extract the invoice.")
                .id("docx")
                .schema::<Invoice>(),
            Job::file(d.join("dot.png"), "Describe the image.").id("img"),
            Job::file(d.join("report.pdf"), "Extract the invoice.")
                .id("pdf_schema")
                .schema::<Invoice>()
                .citations(true),
        ],
    );
    let p = provider(&h);
    let raw = d.join("results/raw_files");
    let (batch_id, state, rs) = run(&p, &jobs, Some(&raw)).await;
    assert_eq!(state, BatchState::Complete);
    for r in &rs {
        assert!(r.is_success(), "{r:?}");
        assert!(
            r.input_tokens > 0 && r.output_tokens > 0 && r.cost_usd > 0.0,
            "{r:?}"
        );
        assert_eq!(r.batch_id.as_deref(), Some(batch_id.as_str()));
    }
    assert!(by_id(&rs, "chat")
        .raw_response
        .as_deref()
        .unwrap()
        .contains("Name a colour"));
    // Citations with pages: the cited text is really on that page of the PDF.
    let cits = by_id(&rs, "pdf").citations.clone().expect("citations");
    assert!(!cits.is_empty());
    for c in &cits {
        assert_eq!(c.source, "report.pdf");
        let page = c.page.expect("PDF citations carry a page") as usize;
        let norm = |s: &str| s.split_whitespace().collect::<String>();
        assert!(
            norm(report_pages[page - 1]).contains(&norm(&c.text)),
            "{c:?} not on page {page}"
        );
        let meta = c.metadata.as_ref().unwrap();
        assert_eq!(meta["type"], "page_location");
        assert!(meta["end_page_number"].as_u64().unwrap() > page as u64);
    }
    // Structured output from text and DOCX documents, parsed and typed.
    let inv: Invoice = by_id(&rs, "txt").parsed().unwrap();
    assert!(inv.invoice_number.starts_with("INV-9"), "{inv:?}");
    assert_eq!(inv.total, 99.5);
    let inv: Invoice = by_id(&rs, "docx").parsed().unwrap();
    assert_eq!(inv.invoice_number, "INV-3");
    assert_eq!(inv.total, 12.25);
    let both = by_id(&rs, "pdf_schema");
    let inv: Invoice = both.parsed().unwrap();
    assert_eq!(inv.invoice_number, "INV-7");
    assert!(
        both.validation_errors.is_empty(),
        "{:?}",
        both.validation_errors
    );
    assert!(both.citations.as_ref().is_some_and(|c| !c.is_empty()));
    // Raw files: request body, response lines, one file per job.
    let req =
        std::fs::read_to_string(raw.join(format!("requests/anthropic_batch_{batch_id}.json")))
            .unwrap();
    let body: serde_json::Value = serde_json::from_str(&req).unwrap();
    let requests = body["requests"].as_array().unwrap();
    let find = |id: &str| requests.iter().find(|r| r["custom_id"] == id).unwrap()["params"].clone();
    assert_eq!(find("chat")["system"], "Be brief.");
    assert_eq!(find("chat")["messages"].as_array().unwrap().len(), 3);
    let pdf = &find("pdf")["messages"][0]["content"];
    assert_eq!(pdf[0]["type"], "document");
    assert_eq!(pdf[0]["source"]["media_type"], "application/pdf");
    assert_eq!(pdf[0]["title"], "report.pdf");
    assert_eq!(pdf[0]["citations"]["enabled"], true);
    assert_eq!(
        pdf[1]["type"], "text",
        "the prompt comes after the document"
    );
    assert_eq!(
        find("docx")["messages"][0]["content"][0]["source"]["type"],
        "text"
    );
    assert_eq!(find("img")["messages"][0]["content"][0]["type"], "image");
    assert!(
        find("txt")["output_config"]["format"]["schema"].is_object(),
        "native JSON output for a 4.5 model"
    );
    assert!(
        find("pdf_schema").get("output_config").is_none(),
        "no native output with citations"
    );
    assert!(find("pdf_schema")["system"]
        .as_str()
        .unwrap()
        .contains("JSON Schema"));
    let lines =
        std::fs::read_to_string(raw.join(format!("responses/anthropic_batch_{batch_id}.jsonl")))
            .unwrap();
    assert_eq!(lines.lines().count(), jobs.len());
    for j in &jobs {
        assert!(raw
            .join(format!("responses/{}_raw.json", j.id_str()))
            .exists());
    }
    // The key appears in no file.
    for entry in walk(d) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(KEY),
            "key leaked into {}",
            entry.display()
        );
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errored_canceled_and_expired_lines() {
    let dir = tempfile::tempdir().unwrap();
    let jobs = prepare(
        dir.path(),
        (0..20)
            .map(|i| Job::prompt(format!("Question {i}")).id(format!("q{i:02}")))
            .collect(),
    );

    let h = Emulator::start(EmulatorConfig::new().error_rate(0.5).seed(7))
        .await
        .unwrap();
    let (_, _, rs) = run(&provider(&h), &jobs, None).await;
    let errored: Vec<_> = rs.iter().filter(|r| !r.is_success()).collect();
    assert!(!errored.is_empty() && errored.len() < 20);
    assert!(
        errored
            .iter()
            .all(|r| r.error.as_deref().unwrap() == "Anthropic api_error: Internal server error"),
        "{errored:?}"
    );

    let h = Emulator::start(
        EmulatorConfig::new()
            .expire_all()
            .processing_delay(Duration::from_millis(400)),
    )
    .await
    .unwrap();
    let (_, _, rs) = run(&provider(&h), &jobs, None).await;
    let expired = rs
        .iter()
        .filter(|r| r.error.as_deref() == Some(batchata::providers::anthropic::EXPIRED_MESSAGE))
        .count();
    assert!(expired > 0, "{rs:?}");
    assert!(rs.iter().all(|r| r.is_success() || r.error.is_some()));

    let h = Emulator::start(EmulatorConfig::new().processing_delay(Duration::from_secs(5)))
        .await
        .unwrap();
    let p = provider(&h);
    let created = p
        .create_batch(BatchRequest {
            jobs: &jobs,
            run_id: "r",
            batch_index: 0,
            raw_dir: None,
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    p.cancel_batch(&created.batch_id).await.unwrap();
    let st = loop {
        let st = p.get_batch_status(&created.batch_id).await.unwrap();
        if st.state.is_terminal() {
            break st;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    };
    assert_eq!(st.state, BatchState::Cancelled);
    let mut rs = Vec::new();
    p.get_batch_results(
        &created.batch_id,
        ResultsContext {
            jobs: &jobs,
            raw_dir: None,
        },
        &mut |r| {
            rs.push(r);
            Ok(())
        },
    )
    .await
    .unwrap();
    assert_eq!(rs.len(), 20);
    let cancelled = rs
        .iter()
        .filter(|r| r.outcome() == JobOutcome::Cancelled)
        .count();
    assert!(cancelled > 0, "{rs:?}");
    for r in &rs {
        assert!(
            r.is_success()
                || r.error.as_deref()
                    == Some("Cancelled by user: the batch was cancelled before this request ran"),
            "finished before the cancel, or cancelled: {r:?}"
        );
    }
    assert_eq!(st.counts.cancelled as usize, cancelled);
    assert_eq!(
        st.counts.succeeded as usize + cancelled,
        20,
        "{:?}",
        st.counts
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_create_body_is_streamed_and_sent_again_whole_for_a_retry() {
    // ~700 KB of prompts: the body goes out in several pieces, and the first
    // attempt is refused, so it is sent twice (from the file it was built
    // into once).
    let h = Emulator::start(EmulatorConfig::new().fail_first(
        Endpoint::AnthropicCreate,
        1,
        FaultKind::Status429 { retry_after_ms: 50 },
    ))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let jobs = prepare(
        dir.path(),
        (0..200)
            .map(|i| {
                Job::prompt(format!("Q{i}: {}", "lorem ipsum ".repeat(250 + i))).id(format!("j{i}"))
            })
            .collect(),
    );
    let raw = dir.path().join("raw");
    let (batch_id, state, rs) = run(&provider(&h), &jobs, Some(&raw)).await;
    assert_eq!(state, BatchState::Complete);
    assert!(
        rs.iter().all(|r| r.is_success()),
        "every request arrived whole"
    );
    let stats = h.stats();
    assert_eq!(stats.calls_to("anthropic.create"), 2);
    assert_eq!(stats.batches.len(), 1);
    // The debug copy of the body is the body that was streamed.
    let body: serde_json::Value = serde_json::from_slice(
        &std::fs::read(raw.join(format!("requests/anthropic_batch_{batch_id}.json"))).unwrap(),
    )
    .unwrap();
    let requests = body["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 200);
    assert_eq!(requests[199]["custom_id"], "j199");
    let text = requests[7]["params"]["messages"][0]["content"]
        .as_str()
        .unwrap();
    assert!(text.starts_with("Q7: lorem ipsum"), "{text:.40}");
    assert_eq!(text.len(), "Q7: ".len() + 12 * 257);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_and_overload_storms_are_retried_with_the_advertised_delays() {
    let h = Emulator::start(
        EmulatorConfig::new()
            .fail_first(
                Endpoint::AnthropicCreate,
                2,
                FaultKind::Status429 {
                    retry_after_ms: 300,
                },
            )
            .fail_first(Endpoint::AnthropicRetrieve, 2, FaultKind::Status529),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let jobs = prepare(dir.path(), vec![Job::prompt("hello").id("a")]);
    let p = provider(&h);
    let started = Instant::now();
    let created = p
        .create_batch(BatchRequest {
            jobs: &jobs,
            run_id: "r",
            batch_index: 0,
            raw_dir: None,
        })
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "two 300 ms waits, took {:?}",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let t = Instant::now();
    let st = p.get_batch_status(&created.batch_id).await.unwrap();
    // 529 without a delay header: backoff 0.5 s then 1 s, less up to 25% jitter.
    assert!(
        t.elapsed() >= Duration::from_millis(1100),
        "backoff took {:?}",
        t.elapsed()
    );
    assert!(st.state.is_terminal());
    let stats = h.stats();
    assert_eq!(stats.calls_to("anthropic.create"), 3);
    assert_eq!(stats.calls_to("anthropic.retrieve"), 3);
    assert_eq!(stats.faults_of("429"), 2);
    assert_eq!(stats.faults_of("529"), 2);
    assert_eq!(
        stats.batches.len(),
        1,
        "retries never create a second batch"
    );

    // A 429 storm longer than the retry budget fails with the provider's words.
    let h = Emulator::start(EmulatorConfig::new().fail_first(
        Endpoint::AnthropicCreate,
        5,
        FaultKind::Status429 { retry_after_ms: 50 },
    ))
    .await
    .unwrap();
    let e = provider(&h)
        .create_batch(BatchRequest {
            jobs: &jobs,
            run_id: "r",
            batch_index: 0,
            raw_dir: None,
        })
        .await
        .unwrap_err();
    assert!(e.to_string().contains("429") && e.is_retryable(), "{e}");
    assert_eq!(
        h.stats().calls_to("anthropic.create"),
        3,
        "first try + 2 retries"
    );

    // A 529 on a create may come after the batch was made: the outcome is
    // unknown and the call is not repeated (the engine looks it up).
    let h = Emulator::start(EmulatorConfig::new().fail_first(
        Endpoint::AnthropicCreate,
        5,
        FaultKind::Status529,
    ))
    .await
    .unwrap();
    let e = provider(&h)
        .create_batch(BatchRequest {
            jobs: &jobs,
            run_id: "r",
            batch_index: 0,
            raw_dir: None,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(e, batchata::Error::OutcomeUnknown(_)) && e.to_string().contains("529"),
        "{e}"
    );
    assert_eq!(h.stats().calls_to("anthropic.create"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthorized_fails_fast_without_leaking_the_key() {
    let h = Emulator::start(EmulatorConfig::new().api_key("the-right-key"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let jobs = prepare(dir.path(), vec![Job::prompt("hello").id("a")]);
    let e = provider(&h)
        .create_batch(BatchRequest {
            jobs: &jobs,
            run_id: "r",
            batch_index: 0,
            raw_dir: None,
        })
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("401") && msg.contains("ANTHROPIC_API_KEY"),
        "{msg}"
    );
    assert!(!msg.contains(KEY));
    assert!(!format!("{e:?}").contains(KEY));
    assert_eq!(h.stats().calls_to("anthropic.create"), 1, "no retry on 401");
    let missing = AnthropicProvider::new(
        &ProviderConfig::default(),
        Arc::new(Catalog::builtin().clone()),
    );
    assert!(missing
        .err()
        .unwrap()
        .to_string()
        .contains("ANTHROPIC_API_KEY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shuffled_results_are_matched_by_id_and_oversize_batches_refused() {
    let h = Emulator::start(EmulatorConfig::new().shuffle_results(true))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let jobs = prepare(
        dir.path(),
        (0..400)
            .map(|i| Job::prompt(format!("Tell me about item <{i}>")).id(format!("item-{i}")))
            .collect(),
    );
    let (batch_id, _, rs) = run(&provider(&h), &jobs, None).await;
    for r in &rs {
        let n = r.job_id.trim_start_matches("item-");
        assert!(
            r.raw_response
                .as_deref()
                .unwrap()
                .contains(&format!("item <{n}>")),
            "{r:?}"
        );
    }
    // The emulator really sent them out of order.
    let url = format!(
        "{}/v1/messages/batches/{batch_id}/results",
        h.anthropic_base_url()
    );
    let text = reqwest::Client::new()
        .get(url)
        .header("x-api-key", "k")
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let order: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["custom_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let sorted: Vec<String> = jobs.iter().map(|j| j.id_str().to_string()).collect();
    assert_ne!(order, sorted);

    let small = provider(&h).with_limits(batchata::providers::BatchLimits {
        max_requests: 10,
        max_bytes: 1_000_000,
        one_model_per_batch: false,
    });
    let before = h.stats().calls_to("anthropic.create");
    let e = small
        .create_batch(BatchRequest {
            jobs: &jobs,
            run_id: "r",
            batch_index: 3,
            raw_dir: None,
        })
        .await
        .unwrap_err();
    assert!(e.to_string().contains("items_per_batch"), "{e}");
    assert_eq!(
        h.stats().calls_to("anthropic.create"),
        before,
        "refused before sending"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_tool_structured_output_on_a_model_without_native_json() {
    let h = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("bill.md"),
        "# Bill\nInvoice number: INV-42\nTotal: 77.5\n",
    )
    .unwrap();
    let jobs = prepare(
        d,
        vec![Job::file(d.join("bill.md"), "Extract the invoice.")
            .id("old")
            .model("claude-sonnet-4-0")
            .schema::<Invoice>()],
    );
    let raw = d.join("raw");
    let (batch_id, _, rs) = run(&provider(&h), &jobs, Some(&raw)).await;
    let r = by_id(&rs, "old");
    assert!(r.is_success(), "{r:?}");
    let inv: Invoice = r.parsed().unwrap();
    assert_eq!(inv.invoice_number, "INV-42");
    assert_eq!(inv.total, 77.5);
    assert!(r.validation_errors.is_empty(), "{:?}", r.validation_errors);
    // The reply text is the tool input, readable in the result file.
    let text: serde_json::Value = serde_json::from_str(r.raw_response.as_deref().unwrap()).unwrap();
    assert_eq!(text["invoice_number"], "INV-42");
    let body: serde_json::Value = serde_json::from_slice(
        &std::fs::read(raw.join(format!("requests/anthropic_batch_{batch_id}.json"))).unwrap(),
    )
    .unwrap();
    let params = &body["requests"][0]["params"];
    assert_eq!(params["model"], "claude-sonnet-4-0");
    assert!(params.get("output_config").is_none());
    assert_eq!(params["tool_choice"]["type"], "tool");
    assert_eq!(params["tools"][0]["name"], params["tool_choice"]["name"]);
    assert_eq!(
        params["messages"][0]["content"][0]["source"]["type"],
        "text"
    );
}

fn probe<'a>(
    count: usize,
    intent_at: chrono::DateTime<chrono::Utc>,
    known: &'a [String],
) -> batchata::providers::BatchProbe<'a> {
    batchata::providers::BatchProbe {
        run_id: "run-a",
        batch_index: 0,
        request_count: count,
        intent_at,
        known_ids: known,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_batch_adopts_a_lost_batch_by_time_and_size_across_pages() {
    let h = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let three = prepare(
        dir.path(),
        (0..3)
            .map(|i| Job::prompt("q").id(format!("t{i}")))
            .collect(),
    );
    let one = prepare(dir.path(), vec![Job::prompt("q").id("o")]);
    let p = provider(&h);
    let create = |jobs: &'static [Job]| {
        let p = &p;
        async move {
            p.create_batch(BatchRequest {
                jobs,
                run_id: "run-a",
                batch_index: 0,
                raw_dir: None,
            })
            .await
            .unwrap()
            .batch_id
        }
    };
    let three: &'static [Job] = Box::leak(three.into_boxed_slice());
    let one: &'static [Job] = Box::leak(one.into_boxed_slice());
    let intent_at = chrono::Utc::now();
    let lost = create(three).await;
    for _ in 0..104 {
        create(one).await;
    }
    let newer = create(three).await;

    let before = h.stats().calls_to("anthropic.list");
    assert_eq!(
        p.find_batch(probe(3, intent_at, &[])).await.unwrap(),
        Some(lost.clone()),
        "the earliest batch of the right size created since the intent"
    );
    assert_eq!(
        h.stats().calls_to("anthropic.list") - before,
        2,
        "the lost batch is on the second page"
    );
    let known = vec![lost.clone()];
    assert_eq!(
        p.find_batch(probe(3, intent_at, &known)).await.unwrap(),
        Some(newer.clone()),
        "known ids are never adopted"
    );
    let known = vec![lost, newer];
    assert_eq!(
        p.find_batch(probe(3, intent_at, &known)).await.unwrap(),
        None
    );
    assert_eq!(
        p.find_batch(probe(2, intent_at, &[])).await.unwrap(),
        None,
        "no batch of that size"
    );
    // Every batch is older than an intent well in the future: one page is enough.
    let before = h.stats().calls_to("anthropic.list");
    let later = chrono::Utc::now() + chrono::Duration::seconds(60);
    assert_eq!(p.find_batch(probe(1, later, &[])).await.unwrap(), None);
    assert_eq!(h.stats().calls_to("anthropic.list") - before, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_for_unknown_ids_are_skipped_and_jobs_without_a_line_fail() {
    let h = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sent = prepare(
        dir.path(),
        ["a", "b", "c"]
            .iter()
            .map(|id| Job::prompt(format!("About {id}")).id(*id))
            .collect(),
    );
    let p = provider(&h);
    let created = p
        .create_batch(BatchRequest {
            jobs: &sent,
            run_id: "r",
            batch_index: 0,
            raw_dir: None,
        })
        .await
        .unwrap();
    let mut asked = prepare(dir.path(), vec![Job::prompt("never sent").id("z")]);
    asked.extend(sent[..2].iter().cloned());
    let mut rs = Vec::new();
    p.get_batch_results(
        &created.batch_id,
        ResultsContext {
            jobs: &asked,
            raw_dir: None,
        },
        &mut |r| {
            rs.push(r);
            Ok(())
        },
    )
    .await
    .unwrap();
    let mut ids: Vec<&str> = rs.iter().map(|r| r.job_id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["a", "b", "z"], "c is not ours: skipped");
    assert!(by_id(&rs, "a").is_success() && by_id(&rs, "b").is_success());
    let z = by_id(&rs, "z");
    assert_eq!(
        z.error.as_deref(),
        Some(batchata::providers::anthropic::NO_RESULT_MESSAGE)
    );
    assert_eq!(z.outcome(), JobOutcome::Failed);
    assert_eq!(z.batch_id.as_deref(), Some(created.batch_id.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_are_retried_and_should_retry_false_is_obeyed() {
    let h = Emulator::start(
        EmulatorConfig::new()
            .fail_first(Endpoint::AnthropicResults, 1, FaultKind::DropConnection)
            .fail_first(
                Endpoint::AnthropicCreate,
                1,
                FaultKind::Status429 { retry_after_ms: 50 },
            ),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let jobs = prepare(
        dir.path(),
        (0..5)
            .map(|i| Job::prompt("q").id(format!("d{i}")))
            .collect(),
    );
    let raw = dir.path().join("raw");
    let (batch_id, _, rs) = run(&provider(&h), &jobs, Some(&raw)).await;
    assert!(rs.iter().all(JobResult::is_success), "{rs:?}");
    let stats = h.stats();
    assert_eq!(stats.calls_to("anthropic.create"), 2);
    assert_eq!(stats.calls_to("anthropic.results"), 2);
    assert_eq!(stats.batches.len(), 1);
    let lines =
        std::fs::read_to_string(raw.join(format!("responses/anthropic_batch_{batch_id}.jsonl")))
            .unwrap();
    assert_eq!(lines.lines().count(), 5, "each line written once");

    let h = Emulator::start(
        EmulatorConfig::new()
            .overloaded_rate(1.0)
            .should_retry_header(Some(false)),
    )
    .await
    .unwrap();
    let e = provider(&h)
        .get_batch_status("msgbatch_anything")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("529"), "{e}");
    assert!(!e.is_retryable());
    assert_eq!(h.stats().calls_to("anthropic.retrieve"), 1);

    // A cut connection on a create is an unknown outcome: not repeated.
    let h = Emulator::start(EmulatorConfig::new().fail_first(
        Endpoint::AnthropicCreate,
        1,
        FaultKind::DropConnection,
    ))
    .await
    .unwrap();
    let e = provider(&h)
        .create_batch(BatchRequest {
            jobs: &jobs,
            run_id: "r",
            batch_index: 0,
            raw_dir: None,
        })
        .await
        .unwrap_err();
    assert!(matches!(e, batchata::Error::OutcomeUnknown(_)), "{e:?}");
    assert_eq!(h.stats().calls_to("anthropic.create"), 1);
}
