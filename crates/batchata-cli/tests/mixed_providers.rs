//! Anthropic, OpenAI and Gemini jobs in one jobs file, through the `batchata`
//! binary and the emulator: every job completes, costs are tokens × batch
//! price, every catalog model runs, a Gemini batch can be cancelled from
//! another process, and faults on the Gemini routes are ridden out.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use batchata::Catalog;
use batchata_emulator::{Emulator, EmulatorConfig, EmulatorHandle, Endpoint, FaultKind};
use serde_json::{json, Value};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_batchata"))
}

fn with_emulator<'a>(cmd: &'a mut Command, h: &EmulatorHandle) -> &'a mut Command {
    cmd.env("ANTHROPIC_API_KEY", "sk-ant-mixed-test")
        .env("ANTHROPIC_BASE_URL", h.anthropic_base_url())
        .env("OPENAI_API_KEY", "sk-mixed-test")
        .env("OPENAI_BASE_URL", h.openai_base_url())
        .env("GOOGLE_API_KEY", "AIza-mixed-test")
        .env_remove("GEMINI_API_KEY")
        .env("GOOGLE_GEMINI_BASE_URL", h.gemini_base_url())
}

fn jobs_file(dir: &Path, lines: &[Value]) -> PathBuf {
    let p = dir.join("jobs.jsonl");
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&p, text).unwrap();
    p
}

fn run_cmd(h: &EmulatorHandle, jobs: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut c = bin();
    c.arg("run")
        .arg(jobs)
        .arg("--results-dir")
        .arg(out)
        .args(["--poll-interval", "20ms"])
        .args(extra);
    with_emulator(&mut c, h).output().unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn result(out: &Path, id: &str) -> Value {
    serde_json::from_slice(&std::fs::read(out.join(format!("{id}.json"))).unwrap())
        .unwrap_or_else(|e| panic!("{id}: {e}"))
}

fn example(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_jobs_file_runs_to_completion_at_batch_prices() {
    let h = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let invoice = example("files/invoice.pdf");
    let contract = example("files/contract.txt");
    let schema = json!({"type": "object",
        "properties": {"invoice_number": {"type": "string"}, "total": {"type": "number"}},
        "required": ["invoice_number", "total"]});
    let chat = json!([{"role": "system", "content": "Answer in one sentence."},
        {"role": "user", "content": "Why are batch APIs cheaper?"}]);
    let lines = vec![
        json!({"id": "a-prompt", "model": "claude-haiku-4-5", "prompt": "Capital of France?"}),
        json!({"id": "a-chat", "model": "claude-haiku-4-5", "messages": chat}),
        json!({"id": "a-pdf", "model": "claude-sonnet-4-5", "file": invoice, "prompt": "Extract the invoice.", "response_schema": schema, "enable_citations": true}),
        json!({"id": "o-prompt", "model": "gpt-4o-mini", "prompt": "A haiku about queues.", "max_tokens": 100}),
        json!({"id": "o-chat", "model": "gpt-4o-mini", "messages": chat}),
        json!({"id": "o-txt", "model": "gpt-4o-mini", "file": contract, "prompt": "Who is the party?", "response_schema": example("schemas/contract.json")}),
        json!({"id": "g-prompt", "model": "gemini-2.5-flash", "prompt": "Name a prime number."}),
        json!({"id": "g-chat", "model": "gemini-2.5-flash", "messages": chat}),
        json!({"id": "g-pdf", "model": "gemini-2.5-flash", "file": invoice, "prompt": "Extract the invoice.", "response_schema": schema}),
        json!({"id": "g-txt", "model": "gemini-3.5-flash", "file": contract, "prompt": "Who is the party and what is the term?", "response_schema": example("schemas/contract.json")}),
        json!({"id": "g-old", "model": "gemini-2.0-flash", "prompt": "Invoice number: INV-9\nTotal: 3", "response_schema": schema}),
    ];
    let jobs = jobs_file(dir.path(), &lines);
    let out = dir.path().join("out");
    let state = dir.path().join("state.jsonl");
    let o = run_cmd(&h, &jobs, &out, &["--state", state.to_str().unwrap(), "-v"]);
    let (s, e) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{s}\n{e}");
    // Plain progress lines name each provider's batches.
    assert!(e.contains(" gemini ") && e.contains("batches/"), "{e}");

    let catalog = Catalog::builtin();
    for l in &lines {
        let id = l["id"].as_str().unwrap();
        let r = result(&out, id);
        assert!(r["error"].is_null(), "{id}: {r}");
        let m = catalog.get(l["model"].as_str().unwrap()).unwrap();
        let (i, o) = (
            r["input_tokens"].as_u64().unwrap(),
            r["output_tokens"].as_u64().unwrap(),
        );
        assert!(i > 0 && o > 0, "{id}: {r}");
        let want = i as f64 * m.batch_input_price() / 1e6 + o as f64 * m.batch_output_price() / 1e6;
        let got = r["cost_usd"].as_f64().unwrap();
        assert!((got - want).abs() < 1e-12, "{id}: cost {got} != {want}");
        if id.starts_with("g-") {
            assert!(
                r["batch_id"].as_str().unwrap().starts_with("batches/"),
                "{r}"
            );
        }
    }
    let invoice_fields = json!({"invoice_number": "INV-2041", "total": 1234.5});
    assert_eq!(result(&out, "g-pdf")["parsed_response"], invoice_fields);
    assert_eq!(result(&out, "a-pdf")["parsed_response"], invoice_fields);
    assert_eq!(
        result(&out, "g-txt")["parsed_response"]["party"],
        "Northwind Traders"
    );
    assert_eq!(
        result(&out, "g-old")["parsed_response"],
        json!({"invoice_number": "INV-9", "total": 3})
    );
    assert!(result(&out, "g-chat")["raw_response"]
        .as_str()
        .unwrap()
        .contains("Why are batch APIs cheaper?"));

    // One Gemini batch per model; raw files under the Python library's names.
    let stats = h.stats();
    assert_eq!(stats.calls_to("gemini.create"), 3);
    assert_eq!(stats.batches_for("gemini").count(), 3);
    let raw = out.join("raw_files");
    let names: Vec<String> = std::fs::read_dir(raw.join("requests"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names
            .iter()
            .filter(|n| n.starts_with("gemini_batch_") && n.ends_with(".jsonl"))
            .count(),
        3,
        "{names:?}"
    );
    assert!(raw.join("responses/g-pdf_raw.json").is_file());

    // status and results see the Gemini batches too.
    let o = bin()
        .args(["status", "--state"])
        .arg(&state)
        .output()
        .unwrap();
    let (s, _) = text(&o);
    assert!(o.status.success());
    assert!(s.contains("11 completed") && s.contains("batches/"), "{s}");
    let o = bin().arg("results").arg(&out).output().unwrap();
    let (t, _) = text(&o);
    assert!(
        t.contains("g-pdf") && t.contains("11 jobs: 11 completed"),
        "{t}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_model_batchata_models_lists_runs() {
    let o = bin().args(["models", "--json"]).output().unwrap();
    assert!(o.status.success());
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let models: Vec<String> = v["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect();
    assert!(models.iter().any(|m| m.starts_with("gemini-")));
    let o = bin().arg("models").output().unwrap();
    let table = String::from_utf8_lossy(&o.stdout);
    for m in &models {
        assert!(table.contains(m.as_str()), "{m} missing from the table");
    }
    let h = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<Value> = models
        .iter()
        .enumerate()
        .map(|(i, m)| json!({"id": format!("m{i:02}"), "model": m, "prompt": format!("Hello from {m}"), "max_tokens": 200}))
        .collect();
    let jobs = jobs_file(dir.path(), &lines);
    let out = dir.path().join("out");
    let o = run_cmd(&h, &jobs, &out, &["-q", "--max-parallel", "16"]);
    let (s, e) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{s}\n{e}");
    for (i, m) in models.iter().enumerate() {
        let r = result(&out, &format!("m{i:02}"));
        assert!(r["error"].is_null(), "{m}: {r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gemini_batch_is_cancelled_from_another_process() {
    let h = Emulator::start(EmulatorConfig::new().processing_delay(Duration::from_secs(300)))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<Value> = (0..6)
        .map(|i| json!({"id": format!("g{i}"), "model": "gemini-2.5-flash-lite", "prompt": format!("Question {i}")}))
        .collect();
    let jobs = jobs_file(dir.path(), &lines);
    let out = dir.path().join("out");
    let state = dir.path().join("state.jsonl");
    let mut c = bin();
    c.arg("run")
        .arg(&jobs)
        .arg("--results-dir")
        .arg(&out)
        .arg("--state")
        .arg(&state)
        .args(["--poll-interval", "50ms", "--items-per-batch", "3", "-q"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = with_emulator(&mut c, &h).spawn().unwrap();
    let started = Instant::now();
    while h.stats().calls_to("gemini.create") < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "never submitted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut c = bin();
    c.args(["cancel", "--state"]).arg(&state);
    let o = with_emulator(&mut c, &h).output().unwrap();
    let (s, e) = text(&o);
    assert!(o.status.success(), "{e}");
    // The running process hears the stop and cancels its own batches.
    assert!(s.contains("the running `run` stopped submitting"), "{s}");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3), "cancelled jobs → exit 3");
    assert!(started.elapsed() < Duration::from_secs(120));
    assert_eq!(h.stats().calls_to("gemini.cancel"), 2);
    for l in &lines {
        let r = result(&out, l["id"].as_str().unwrap());
        assert!(
            r["error"]
                .as_str()
                .unwrap()
                .starts_with("Cancelled by user"),
            "{r}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_faults_are_ridden_out_and_nothing_is_submitted_twice() {
    let h = Emulator::start(
        EmulatorConfig::new()
            .fail_first(
                Endpoint::GeminiCreate,
                2,
                FaultKind::Status429 { retry_after_ms: 50 },
            )
            .fail_first(Endpoint::GeminiGet, 1, FaultKind::Status500)
            .fail_first(Endpoint::GeminiGet, 1, FaultKind::DropConnection)
            .error_rate(0.2)
            .seed(4),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<Value> = (0..12)
        .map(|i| json!({"id": format!("g{i:02}"), "model": "gemini-2.5-flash", "prompt": format!("Question {i}")}))
        .collect();
    let jobs = jobs_file(dir.path(), &lines);
    let out = dir.path().join("out");
    let o = run_cmd(&h, &jobs, &out, &["-q", "--items-per-batch", "6"]);
    let (s, e) = text(&o);
    // Errored requests fail alone (exit 3); the rest complete.
    assert_eq!(o.status.code(), Some(3), "{s}\n{e}");
    let stats = h.stats();
    assert_eq!(stats.faults_of("429"), 2);
    assert_eq!(stats.faults_of("500"), 1);
    assert_eq!(stats.faults_of("drop"), 1);
    assert_eq!(
        stats.batches_for("gemini").count(),
        2,
        "each batch created once"
    );
    let mut failed = 0;
    for l in &lines {
        let r = result(&out, l["id"].as_str().unwrap());
        match r["error"].as_str() {
            None => assert!(r["cost_usd"].as_f64().unwrap() > 0.0),
            Some(err) => {
                assert!(err.contains("INTERNAL"), "{err}");
                failed += 1;
            }
        }
    }
    assert!(failed > 0 && failed < 12, "{failed}");
}
