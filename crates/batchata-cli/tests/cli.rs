//! The `batchata` binary as a user runs it: a process, a jobs file on disk,
//! an emulator on loopback, exit codes and output checked.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use batchata_emulator::{Emulator, EmulatorConfig, EmulatorHandle};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_batchata"))
}

fn with_emulator<'a>(cmd: &'a mut Command, h: &EmulatorHandle) -> &'a mut Command {
    cmd.env("ANTHROPIC_API_KEY", "sk-ant-cli-test")
        .env("ANTHROPIC_BASE_URL", h.anthropic_base_url())
        .env("OPENAI_API_KEY", "sk-cli-test")
        .env("OPENAI_BASE_URL", h.openai_base_url())
}

fn jobs_file(dir: &Path, lines: &[String]) -> PathBuf {
    let p = dir.join("jobs.jsonl");
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    p
}

fn prompts(n: usize, model: Option<&str>) -> Vec<String> {
    (0..n)
        .map(|i| {
            let mut v = serde_json::json!({"id": format!("p{i:02}"), "prompt": format!("Tell me about {i}")});
            if let Some(m) = model {
                v["model"] = m.into();
            }
            v.to_string()
        })
        .collect()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A number from the run summary ("  completed  7").
fn summary_count(stdout: &str, what: &str) -> usize {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix(what))
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or_else(|| panic!("no '{what}' row in the summary: {stdout}"))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_every_flag_then_status_and_results_in_three_formats() {
    let h = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut lines = prompts(6, None);
    lines.push(serde_json::json!({"id": "oa", "model": "gpt-4o-mini", "prompt": "Say, \"hi\"", "max_tokens": 50}).to_string());
    let jobs = jobs_file(dir.path(), &lines);
    let out = dir.path().join("out");
    let state = dir.path().join("s.jsonl");
    let o = run_cmd(
        &h,
        &jobs,
        &out,
        &[
            "--state",
            state.to_str().unwrap(),
            "--model",
            "claude-haiku-4-5",
            "--temperature",
            "0.2",
            "--max-tokens",
            "64",
            "--items-per-batch",
            "2",
            "--max-parallel",
            "2",
            "--cost-limit",
            "10",
            "--time-limit",
            "10m",
            "--no-raw-files",
            "-v",
        ],
    );
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(summary_count(&stdout, "completed"), 7, "{stdout}");
    assert_eq!(summary_count(&stdout, "failed"), 0, "{stdout}");
    assert!(
        stdout.contains(&format!("results    {}", out.display())),
        "{stdout}"
    );
    // Off a terminal: plain progress lines, one per batch state, no escape codes.
    assert!(!stderr.contains('\u{1b}'), "no escape codes off a terminal");
    assert!(
        stderr.contains("batch #0   anthropic")
            && stderr.contains("  msgbatch_")
            && stderr.contains("7/7 jobs"),
        "{stderr}"
    );
    assert!(!out.join("raw_files").exists(), "--no-raw-files");
    let stats = h.stats();
    assert_eq!(stats.calls_to("anthropic.create"), 3, "6 jobs, 2 per batch");
    assert_eq!(stats.calls_to("openai.batches.create"), 1);
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("p00.json")).unwrap()).unwrap();
    assert!(
        r["error"].is_null() && r["output_tokens"].as_u64().unwrap() <= 64,
        "{r}"
    );

    // status
    let o = bin()
        .args(["status", "--state"])
        .arg(&state)
        .output()
        .unwrap();
    let (s, _) = text(&o);
    assert!(o.status.success());
    assert!(
        s.contains("7 completed") && s.contains("msgbatch_") && s.contains("batch_"),
        "{s}"
    );
    // Anthropic's end word is "ended": said once; OpenAI's "completed" is added.
    let row = |p: &str| s.lines().find(|l| l.contains(p)).unwrap_or_default();
    assert!(row("msgbatch_").trim_end().ends_with("jobs  ended"), "{s}");
    assert!(
        row(" batch_").trim_end().ends_with("ended (completed)"),
        "{s}"
    );
    let o = bin()
        .args(["status", "--json", "--state"])
        .arg(&state)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["counts"]["completed"], 7);
    assert_eq!(v["batches"].as_array().unwrap().len(), 4);
    for b in v["batches"].as_array().unwrap() {
        assert_eq!(b["state"], "ended", "{b}");
        // The provider's own last word: `ended` (Anthropic), `completed` (OpenAI).
        assert!(
            ["ended", "completed"].contains(&b["final_status"].as_str().unwrap()),
            "{b}"
        );
    }
    let cost = v["cost_used_usd"].as_f64().unwrap();
    assert_eq!(
        cost,
        (cost * 1e6).round() / 1e6,
        "money rounded to 1e-6: {v}"
    );

    // results, three ways
    let o = bin().arg("results").arg(&out).output().unwrap();
    let (t, _) = text(&o);
    assert!(
        t.contains("p05") && t.contains("oa") && t.contains("7 jobs: 7 completed"),
        "{t}"
    );
    let o = bin()
        .arg("results")
        .arg(&out)
        .args(["--format", "jsonl"])
        .output()
        .unwrap();
    let rows: Vec<serde_json::Value> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 7);
    assert!(rows
        .iter()
        .all(|r| r["job_id"].is_string() && r["cost_usd"].as_f64().unwrap() > 0.0));
    let o = bin()
        .arg("results")
        .arg(&out)
        .args(["--format", "csv"])
        .output()
        .unwrap();
    let csv = String::from_utf8(o.stdout).unwrap();
    let mut it = csv.lines();
    assert_eq!(
        it.next().unwrap(),
        "job_id,status,input_tokens,output_tokens,cost_usd,error,response"
    );
    assert_eq!(csv.lines().count(), 8);
    let oa = csv.lines().find(|l| l.starts_with("oa,")).unwrap();
    assert!(
        oa.contains("\"Echo: Say, \"\"hi\"\""),
        "quoted CSV field: {oa}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_prints_the_plan_and_submits_nothing() {
    let h = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let jobs = jobs_file(dir.path(), &prompts(25, Some("claude-haiku-4-5")));
    let o = run_cmd(
        &h,
        &jobs,
        &dir.path().join("out"),
        &["--dry-run", "--items-per-batch", "10", "--cost-limit", "1"],
    );
    let (s, e) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{e}");
    assert!(
        s.contains("25 jobs in 3 provider batches")
            && s.contains("worst case")
            && s.contains("expected"),
        "{s}"
    );
    assert_eq!(h.stats().total_calls, 0);
}

#[test]
fn bad_jobs_files_name_the_line_and_submit_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(Vec<String>, &str, &str)> = vec![
        (
            vec![
                prompts(1, Some("claude-haiku-4-5"))[0].clone(),
                r#"{"promt": "hi", "model": "claude-haiku-4-5"}"#.into(),
            ],
            ":2:",
            "did you mean 'prompt'",
        ),
        (vec!["{not json".into()], ":1:", "not valid JSON"),
        (
            vec![r#"{"prompt": "x", "model": "claude-haiku-4-5", "file": "missing.pdf"}"#.into()],
            ":1:",
            "missing.pdf",
        ),
        (
            vec![r#"{"prompt": "x", "model": "claude-haiku-45"}"#.into()],
            ":1:",
            "did you mean",
        ),
        (
            vec![r#"{"prompt": "x", "model": "gpt-4o-mini", "max_tokens": "many"}"#.into()],
            ":1:",
            "field 'max_tokens': invalid type",
        ),
        (
            vec![
                prompts(2, Some("gpt-4o-mini"))[1].clone(),
                prompts(2, Some("gpt-4o-mini"))[0].clone(),
                String::new(),
                r#"{"model": "gpt-4o-mini", "messages": [{"role": "user", "contnet": "hi"}]}"#
                    .into(),
            ],
            ":4:",
            "did you mean 'content'",
        ),
        (
            vec![
                prompts(1, Some("gpt-4o-mini"))[0].clone(),
                prompts(1, Some("gpt-4o-mini"))[0].clone(),
            ],
            ":2:",
            "p00",
        ),
        (
            vec![r#"{"prompt": "x", "model": "gpt-4o-mini", "enable_citations": true}"#.into()],
            ":1:",
            "citations",
        ),
        (
            vec![
                r#"{"prompt": "x", "model": "gpt-4o-mini", "response_schema": "nope.json"}"#.into(),
            ],
            ":1:",
            "nope.json",
        ),
    ];
    for (lines, at, says) in cases {
        let jobs = jobs_file(dir.path(), &lines);
        // No emulator is running at this address: any submission would fail differently.
        let o = bin()
            .arg("run")
            .arg(&jobs)
            .arg("--results-dir")
            .arg(dir.path().join("out"))
            .env("ANTHROPIC_API_KEY", "k")
            .env("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
            .env("OPENAI_API_KEY", "k")
            .env("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
            .output()
            .unwrap();
        let (_, e) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{e}");
        assert!(
            e.contains(&format!("jobs.jsonl{at}")) && e.contains(says),
            "{e}"
        );
        assert!(
            !dir.path().join("out").exists(),
            "nothing written for a bad file"
        );
    }
}

/// `batchata run` on a jobs file that no emulator will ever see.
fn run_offline(jobs: &Path, out: &Path, extra: &[&str]) -> Output {
    bin()
        .arg("run")
        .arg(jobs)
        .arg("--results-dir")
        .arg(out)
        .args(extra)
        .env("ANTHROPIC_API_KEY", "k")
        .env("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
        .env("OPENAI_API_KEY", "k")
        .env("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
        .output()
        .unwrap()
}

#[test]
fn every_problem_of_a_jobs_file_is_listed_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("x.pdf"), "plain notes, not a PDF").unwrap();
    std::fs::write(d.join("latin.txt"), b"Caf\xe9").unwrap();
    let m = "claude-haiku-4-5";
    let lines: Vec<String> = vec![
        prompts(1, Some(m))[0].clone(),
        format!(r#"{{"promt": "hi", "max_tokens": "many", "model": "{m}"}}"#),
        format!(r#"{{"id": "pdf", "prompt": "x", "model": "{m}", "file": "x.pdf"}}"#),
        format!(r#"{{"id": "latin", "prompt": "x", "model": "{m}", "file": "latin.txt"}}"#),
        "{not json".into(),
        r#"{"id": "map", "prompt": "x", "model": "gpt-5-mini", "response_schema": {"type": "object", "properties": {"n": {"type": "object", "additionalProperties": {"type": "integer"}}}}}"#.into(),
    ];
    // With a byte-order mark in front, as some editors save it.
    let jobs = d.join("jobs.jsonl");
    std::fs::write(&jobs, format!("\u{feff}{}\n", lines.join("\n"))).unwrap();
    for extra in [&["--dry-run"][..], &[][..]] {
        let o = run_offline(&jobs, &d.join("out"), extra);
        let (out, e) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {e}");
        assert!(e.contains("6 problems; nothing was submitted"), "{e}");
        for (at, says) in [
            (":2:", "unknown field 'promt'"),
            (":2:", "field 'max_tokens'"),
            (
                ":3:",
                "x.pdf' is named as a PDF document (.pdf) but it is UTF-8 text",
            ),
            (":4:", "latin.txt' is not UTF-8 text: byte offset 3 (0xE9)"),
            (":5:", "not valid JSON"),
            (":6:", "field 'response_schema'"),
            (":6:", "#/properties/n is a map"),
        ] {
            assert!(
                e.lines()
                    .any(|l| l.contains(&format!("jobs.jsonl{at}")) && l.contains(says)),
                "{at} {says}: {e}"
            );
        }
        assert!(
            !e.contains("jobs.jsonl:1:"),
            "the BOM line is read normally: {e}"
        );
        assert!(!out.contains("Dry run"), "{out}");
        assert!(!d.join("out").exists(), "nothing written");
    }

    // Past 50 problems, the rest are counted.
    let bad: Vec<String> = (0..60)
        .map(|i| format!(r#"{{"prompt": "x", "max_tokens": {i}, "modle": "m"}}"#))
        .collect();
    let jobs = jobs_file(d, &bad);
    let o = run_offline(&jobs, &d.join("out"), &["--dry-run"]);
    let (_, e) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("60 problems") && e.contains("… and 10 more"),
        "{e}"
    );
    assert_eq!(
        e.lines()
            .filter(|l| l.contains("did you mean 'model'"))
            .count(),
        50,
        "{e}"
    );

    // A good file with a byte-order mark runs.
    let jobs = d.join("bom.jsonl");
    std::fs::write(
        &jobs,
        format!("\u{feff}{}\n", prompts(2, Some(m)).join("\n")),
    )
    .unwrap();
    let o = run_offline(&jobs, &d.join("out"), &["--dry-run"]);
    let (out, e) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{e}");
    assert!(out.contains("2 jobs in 1 provider batches"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_jobs_exit_3_and_retry_failed_reruns_only_those() {
    let bad = Emulator::start(EmulatorConfig::new().error_rate(0.5).seed(3))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let jobs = jobs_file(dir.path(), &prompts(10, Some("claude-haiku-4-5")));
    let out = dir.path().join("out");
    let o = run_cmd(&bad, &jobs, &out, &["-q"]);
    assert_eq!(o.status.code(), Some(3));
    let failed = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter(|e| {
            !serde_json::from_slice::<serde_json::Value>(&std::fs::read(e.path()).unwrap()).unwrap()
                ["error"]
                .is_null()
        })
        .count();
    assert!(failed > 0 && failed < 10);

    let good = Emulator::start(EmulatorConfig::new()).await.unwrap();
    // A plain rerun keeps failed jobs failed.
    let o = run_cmd(&good, &jobs, &out, &["-q"]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(good.stats().calls_to("anthropic.create"), 0);
    let o = run_cmd(
        &good,
        &jobs,
        &out,
        &["-q", "--retry-failed", "--items-per-batch", "100"],
    );
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    let b = &good.stats().batches;
    assert_eq!(b.len(), 1);
    assert_eq!(
        b[0].request_count as usize, failed,
        "only the failed jobs are resubmitted"
    );
    // --fresh starts over and runs everything again.
    let o = run_cmd(
        &good,
        &jobs,
        &out,
        &["-q", "--fresh", "--items-per-batch", "100"],
    );
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(good.stats().batches.last().unwrap().request_count, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_mid_run_from_another_process() {
    let h = Emulator::start(EmulatorConfig::new().processing_delay(Duration::from_secs(300)))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let jobs = jobs_file(dir.path(), &prompts(8, Some("claude-haiku-4-5")));
    let out = dir.path().join("out");
    let state = dir.path().join("state.jsonl");
    let mut c = bin();
    c.arg("run")
        .arg(&jobs)
        .arg("--results-dir")
        .arg(&out)
        .arg("--state")
        .arg(&state)
        .args(["--poll-interval", "50ms", "--items-per-batch", "2"])
        .args(["--max-parallel", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = with_emulator(&mut c, &h).spawn().unwrap();
    let started = Instant::now();
    while h.stats().calls_to("anthropic.create") < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "batches never submitted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut c = bin();
    c.args(["cancel", "--state"]).arg(&state);
    let o = with_emulator(&mut c, &h).output().unwrap();
    let (s, e) = text(&o);
    assert!(o.status.success(), "{e}");
    let created = h.stats().calls_to("anthropic.create");
    // The run heard the stop and cancelled its batches itself (what is left
    // in flight, if anything, the command cancels).
    assert!(s.contains("the running `run` stopped submitting"), "{s}");
    let o = child.wait_with_output().unwrap();
    let (rs, re) = text(&o);
    assert_eq!(
        o.status.code(),
        Some(3),
        "cancelled jobs → exit 3: {rs}{re}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "the run ended after the cancel, not after the delay"
    );
    // The run stopped as on Ctrl+C: no batch went out after the cancel.
    assert_eq!(h.stats().calls_to("anthropic.create"), created, "{re}");
    assert!(re.contains("Cancel requested"), "{re}");
    assert_eq!(summary_count(&rs, "cancelled"), 8, "{rs}");
    assert!(rs.contains("stopped    interrupted"), "{rs}");
    assert!(h.stats().calls_to("anthropic.cancel") >= 2);
    assert!(
        !stop_file_of(&state).exists(),
        "the stop request is consumed"
    );
    let o = bin().arg("results").arg(&out).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("cancelled"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_takes_the_results_dir_and_refresh_asks_the_provider() {
    let h = Emulator::start(EmulatorConfig::new().processing_delay(Duration::from_secs(20)))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let jobs = jobs_file(dir.path(), &prompts(4, Some("claude-haiku-4-5")));
    let out = dir.path().join("out");
    let mut c = bin();
    c.arg("run")
        .arg(&jobs)
        .arg("--results-dir")
        .arg(&out)
        .args(["--poll-interval", "50ms", "-q"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = with_emulator(&mut c, &h).spawn().unwrap();
    wait_calls(&h, "anthropic.create", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The results folder as a positional, and as --state (a folder).
    for args in [
        vec!["status".to_string(), out.display().to_string()],
        vec![
            "status".to_string(),
            "--state".to_string(),
            out.display().to_string(),
        ],
    ] {
        let o = bin().args(&args).output().unwrap();
        let (s, e) = text(&o);
        assert!(o.status.success(), "{args:?}: {e}");
        assert!(s.contains("1 in flight") && s.contains("--refresh"), "{s}");
    }
    let mut c = bin();
    c.arg("status").arg(&out).args(["--refresh", "--json"]);
    let o = with_emulator(&mut c, &h).output().unwrap();
    let (s, e) = text(&o);
    assert!(o.status.success(), "{e}");
    let v: serde_json::Value = serde_json::from_str(&s).unwrap();
    let b = &v["batches"][0];
    assert_eq!(b["state"], "in_flight", "{v}");
    assert_eq!(b["final_status"], serde_json::Value::Null, "{v}");
    assert_eq!(b["provider_status"], "in_progress", "{v}");
    assert_eq!(b["provider_counts"]["total"], 4, "{v}");
    child.kill().unwrap();
    let _ = child.wait();
}

fn stop_file_of(state: &Path) -> PathBuf {
    let mut name = state.file_name().unwrap().to_os_string();
    name.push(".stop");
    state.with_file_name(name)
}

#[test]
fn models_lists_the_catalog() {
    let o = bin().arg("models").output().unwrap();
    let s = String::from_utf8(o.stdout).unwrap();
    assert!(o.status.success());
    for m in [
        "claude-haiku-4-5",
        "gpt-4o-mini",
        "claude-sonnet-4-5",
        "gemini-2.5-flash",
    ] {
        assert!(s.contains(m), "{m} missing");
    }
    let line = s
        .lines()
        .find(|l| l.starts_with("claude-haiku-4-5 "))
        .unwrap();
    assert!(
        line.contains("0.500") && line.contains("2.500") && line.contains("citations"),
        "batch prices: {line}"
    );
    let o = bin().args(["models", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["models"].as_array().unwrap().len() > 20);
}

#[test]
fn help_teaches_and_bad_flags_exit_2() {
    let o = bin().arg("--help").output().unwrap();
    let s = String::from_utf8(o.stdout).unwrap();
    assert!(
        s.contains("Exit status") && s.contains("3  the run finished"),
        "{s}"
    );
    let o = bin().args(["run", "--help"]).output().unwrap();
    let s = String::from_utf8(o.stdout).unwrap();
    for taught in [
        "batchata run examples/quickstart.jsonl --results-dir out --emulator",
        "DIR/.batchata-state.jsonl",
        "resumes",
        "--retry-failed",
        "ANTHROPIC_API_KEY",
        "Relative paths resolve against the jobs file's folder",
    ] {
        assert!(s.contains(taught), "run --help lacks {taught:?}: {s}");
    }

    let dir = tempfile::tempdir().unwrap();
    let jobs = jobs_file(dir.path(), &prompts(2, Some("claude-haiku-4-5")));
    let out = dir.path().join("out");
    let bad: [(&[&str], &str); 4] = [
        (&["--time-limit", "soon"], "--time-limit"),
        (&["--cost-limit=-1"], "--cost-limit"),
        (&["--items-per-batch", "0"], "--items-per-batch"),
        (&["--emulator-url", "127.0.0.1:8765"], "http://"),
    ];
    for (flags, says) in bad {
        let o = bin()
            .arg("run")
            .arg(&jobs)
            .arg("--results-dir")
            .arg(&out)
            .args(flags)
            .output()
            .unwrap();
        let (_, e) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{flags:?}: {e}");
        assert!(e.contains(says), "{flags:?}: {e}");
        assert!(!out.exists(), "{flags:?} wrote something");
    }
    // A missing key is a configuration error, found before anything is sent.
    let o = bin()
        .arg("run")
        .arg(&jobs)
        .arg("--results-dir")
        .arg(&out)
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap();
    let (_, e) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("ANTHROPIC_API_KEY"), "{e}");
}

#[test]
fn other_failures_exit_1_and_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let jobs = jobs_file(dir.path(), &prompts(2, Some("claude-haiku-4-5")));
    // The results folder is a file: nothing can be written there.
    let blocker = dir.path().join("taken");
    std::fs::write(&blocker, "not a folder").unwrap();
    let o = bin()
        .arg("run")
        .arg(&jobs)
        .arg("--results-dir")
        .arg(&blocker)
        .arg("--emulator")
        .output()
        .unwrap();
    let (_, e) = text(&o);
    // A folder that is a file is bad input, told before anything is sent.
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("taken") && e.contains("is a file"), "{e}");
    // results of a folder that is not there: the error and nothing else.
    let o = bin()
        .arg("results")
        .arg(dir.path().join("nope"))
        .output()
        .unwrap();
    let (s, e) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(s.is_empty(), "no header before the error: {s}");
    // status of a folder with no state.
    let o = bin().args(["status"]).arg(dir.path()).output().unwrap();
    let (_, e) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("no state file at") && e.contains("--state"),
        "{e}"
    );
    // status of a file that is not a state.
    let o = bin()
        .args(["status", "--state"])
        .arg(&blocker)
        .output()
        .unwrap();
    let (_, e) = text(&o);
    assert_ne!(o.status.code(), Some(0), "{e}");
    assert!(e.contains("taken"), "{e}");
}

/// `batchata emulate` as its own process on a free port: the address it
/// prints first, its stats over HTTP.
struct EmulateProcess {
    child: std::process::Child,
    url: String,
    _stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl EmulateProcess {
    fn spawn(flags: &[&str]) -> EmulateProcess {
        use std::io::BufRead;
        let mut child = bin()
            .args(["emulate", "--port", "0"])
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut first = String::new();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut first).unwrap();
        let url = first
            .trim()
            .strip_prefix("batchata emulator listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {first}"))
            .to_string();
        EmulateProcess {
            child,
            url,
            _stdout: stdout,
        }
    }

    async fn stats(&self) -> batchata_emulator::EmulatorStats {
        reqwest::get(format!("{}/_emulator/stats", self.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for EmulateProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulate_serves_faults_a_dry_run_never_reaches_it_and_a_run_rides_them_out() {
    let emu = EmulateProcess::spawn(&[
        "--error-rate",
        "0.3",
        "--seed",
        "7",
        "--fail-first",
        "2:429:20@anthropic.create",
        "--fail-first",
        "1:500@openai.files.create",
        "--processing-delay",
        "200ms",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let mut lines = prompts(10, Some("claude-haiku-4-5"));
    lines.extend((0..4).map(|i| {
        serde_json::json!({"id": format!("o{i}"), "model": "gpt-4o-mini", "prompt": "hi"})
            .to_string()
    }));
    let jobs = jobs_file(dir.path(), &lines);
    let out = dir.path().join("out");
    let run = |extra: &[&str]| {
        bin()
            .arg("run")
            .arg(&jobs)
            .arg("--results-dir")
            .arg(&out)
            .args(["--emulator-url", &emu.url, "--items-per-batch", "5"])
            .args(extra)
            .env_remove("ANTHROPIC_API_KEY")
            .env_remove("OPENAI_API_KEY")
            .output()
            .unwrap()
    };

    let o = run(&["--dry-run"]);
    let (s, e) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{e}");
    assert!(s.contains("14 jobs in 3 provider batches"), "{s}");
    assert_eq!(emu.stats().await.total_calls, 0, "a dry run sends nothing");
    assert!(!out.join(".batchata-state.jsonl").exists());

    let o = run(&["-q"]);
    let (s, e) = text(&o);
    assert_eq!(o.status.code(), Some(3), "some requests errored: {s}{e}");
    assert!(s.is_empty(), "-q prints no summary: {s}");
    let stats = emu.stats().await;
    assert_eq!(stats.faults_of("429"), 2);
    assert_eq!(stats.faults_of("500"), 1);
    assert_eq!(
        stats.calls_to("anthropic.create"),
        4,
        "two batches, two 429s retried"
    );
    assert_eq!(stats.batches.len(), 3, "each batch created once");
    let o = bin().arg("results").arg(&out).output().unwrap();
    let t = String::from_utf8_lossy(&o.stdout);
    let failed = t.lines().filter(|l| l.contains(" failed ")).count();
    assert!(failed > 0 && failed < 14, "{t}");
    assert!(
        t.contains(&format!(
            "14 jobs: {} completed, {failed} failed",
            14 - failed
        )),
        "{t}"
    );

    // Bad fault flags are refused with the fix.
    let o = bin()
        .args(["emulate", "--port", "0", "--error-rate", "30"])
        .output()
        .unwrap();
    let (_, e) = text(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(e.contains("between 0 and 1"), "{e}");
    let o = bin()
        .args(["emulate", "--port", "0", "--fail-first", "3:418"])
        .output()
        .unwrap();
    let (_, e) = text(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(e.contains("unknown fault '418'"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulate_loses_answers_forgets_batches_and_lists_its_controls() {
    let o = bin().args(["emulate", "--help"]).output().unwrap();
    let (help, e) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{e}");
    for needle in [
        "--forget-batches-after",
        "--api-key",
        "drop-after",
        "/_emulator/forget",
        "/_emulator/revoke-keys",
        "/_emulator/restore-keys",
    ] {
        assert!(help.contains(needle), "{needle} missing from: {help}");
    }

    let emu = EmulateProcess::spawn(&[
        "--forget-batches-after",
        "1s",
        "--fail-first",
        "1:drop-after@anthropic.create",
    ]);
    let c = reqwest::Client::new();
    let anthropic = |method: reqwest::Method, path: String| {
        c.request(method, format!("{}{path}", emu.url))
            .header("x-api-key", "sk-ant-cli-test")
            .header("anthropic-version", "2023-06-01")
    };
    let body = serde_json::json!({"requests": [{"custom_id": "a", "params": {
        "model": "claude-haiku-4-5", "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}]}}]});
    let lost = anthropic(reqwest::Method::POST, "/v1/messages/batches".into())
        .json(&body)
        .send()
        .await;
    assert!(lost.is_err(), "the answer to the create is lost: {lost:?}");
    let stats = emu.stats().await;
    assert_eq!(stats.faults_of("drop-after"), 1);
    assert_eq!(stats.batches_created, 1, "yet the batch was created");
    let id = stats.batches[0].id.clone();
    let path = format!("/v1/messages/batches/{id}");
    let r = anthropic(reqwest::Method::GET, path.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = anthropic(reqwest::Method::GET, path).send().await.unwrap();
    assert_eq!(r.status(), 404, "forgotten a second after creation");
    assert!(emu.stats().await.batches[0].forgotten);

    let o = bin()
        .args(["emulate", "--port", "0", "--forget-batches-after", "soon"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o).1);
}

/// The first command of the README's quick start, as written: `cargo run
/// ... -- ARGS`. The test runs ARGS with this build's binary.
fn readme_quickstart_args(root: &Path) -> Vec<String> {
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let quick = readme
        .split("\n## Quick start")
        .nth(1)
        .expect("README.md has a '## Quick start' section");
    let block = quick
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the quick start opens with a ```sh block");
    let command = block.trim();
    assert_eq!(command.lines().count(), 1, "one command: {command}");
    let (cargo, args) = command
        .split_once(" -- ")
        .unwrap_or_else(|| panic!("not a `cargo run ... -- ARGS` command: {command}"));
    assert!(
        cargo.starts_with("cargo run") && cargo.contains("-p batchata-cli"),
        "{cargo}"
    );
    args.split_whitespace().map(String::from).collect()
}

#[test]
fn quickstart_runs_on_the_built_in_emulator_as_the_readme_writes_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut args = readme_quickstart_args(&root);
    assert_eq!(
        args,
        [
            "run",
            "examples/quickstart.jsonl",
            "--results-dir",
            "out",
            "--emulator"
        ]
    );
    // Same command, with the results in a scratch folder instead of ./out.
    let at = args.iter().position(|a| a == "--results-dir").unwrap();
    args[at + 1] = dir.path().to_string_lossy().into_owned();
    let o = bin()
        .current_dir(&root)
        .args(&args)
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("OPENAI_API_KEY")
        .env_remove("ANTHROPIC_BASE_URL")
        .env_remove("OPENAI_BASE_URL")
        .output()
        .unwrap();
    let (s, e) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{s}\n{e}");
    let jobs = std::fs::read_to_string(root.join("examples/quickstart.jsonl")).unwrap();
    let n = jobs.lines().filter(|l| !l.trim().is_empty()).count();
    assert_eq!(summary_count(&s, "completed"), n, "{s}");
    assert!(e.contains("built-in emulator"), "{e}");
    let inv: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("invoice.json")).unwrap()).unwrap();
    assert_eq!(inv["parsed_response"]["invoice_number"], "INV-2041");
    assert!(
        inv["citation_mappings"]["invoice_number"][0]["page"] == 1,
        "{inv}"
    );
    let contract: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("contract.json")).unwrap()).unwrap();
    assert_eq!(contract["parsed_response"]["party"], "Northwind Traders");

    // Structured answers: their fields in the table, and as CSV columns.
    // (At 120 columns: in a pipe the table is 80 wide and the answers shorter.)
    let o = bin()
        .arg("results")
        .arg(dir.path())
        .env("COLUMNS", "120")
        .output()
        .unwrap();
    let t = String::from_utf8_lossy(&o.stdout);
    let row = t.lines().find(|l| l.starts_with("invoice ")).unwrap();
    assert!(row.contains("invoice_number=INV-2041 total=1234.5"), "{t}");
    let o = bin()
        .arg("results")
        .arg(dir.path())
        .args(["--format", "csv"])
        .output()
        .unwrap();
    let csv = String::from_utf8_lossy(&o.stdout);
    let rows = csv_rows(&csv);
    let col = |name: &str| {
        rows[0]
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no {name} column: {:?}", rows[0]))
    };
    let row = |id: &str| rows.iter().find(|r| r[0] == id).unwrap();
    assert!(rows.iter().all(|r| r.len() == rows[0].len()), "{csv}");
    assert_eq!(row("invoice")[col("invoice_number")], "INV-2041");
    assert_eq!(row("invoice")[col("total")], "1234.5");
    assert_eq!(row("contract")[col("party")], "Northwind Traders");
    assert_eq!(row("contract")[col("invoice_number")], "");
    assert!(row("invoice")[col("response")].starts_with("{\"invoice_number\""));
    // An answer of several text blocks keeps its paragraphs apart.
    let summary = &row("summary")[col("response")];
    let (echo, quote) = summary.split_once('\n').unwrap_or_else(|| panic!("{csv}"));
    assert!(echo.starts_with("Echo: Summarise"), "{csv}");
    assert!(quote.starts_with("Service agreement"), "{csv}");
}

/// CSV text into rows of cells (quoted cells may hold commas, doubled quotes
/// and line breaks: an answer of several paragraphs is one cell).
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let mut rows = vec![vec![String::new()]];
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let row = rows.last_mut().unwrap();
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                row.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => row.push(String::new()),
            ('\n', false) => rows.push(vec![String::new()]),
            (c, _) => row.last_mut().unwrap().push(c),
        }
    }
    if rows.last().is_some_and(|r| r.len() == 1 && r[0].is_empty()) {
        rows.pop();
    }
    rows
}

fn interrupt(child: &std::process::Child) {
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -INT failed");
}

/// Waits until the emulator has seen `n` calls to `endpoint`.
async fn wait_calls(h: &EmulatorHandle, endpoint: &str, n: u64) {
    let started = Instant::now();
    while h.stats().calls_to(endpoint) < n {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "never saw {n} calls to {endpoint}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn spawn_slow_run(h: &EmulatorHandle, jobs: &Path, out: &Path) -> std::process::Child {
    let mut c = bin();
    c.arg("run")
        .arg(jobs)
        .arg("--results-dir")
        .arg(out)
        .args(["--poll-interval", "30ms", "--items-per-batch", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    with_emulator(&mut c, h).spawn().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_cancels_active_batches_and_a_second_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let jobs = jobs_file(dir.path(), &prompts(6, Some("claude-haiku-4-5")));

    // Once: nothing new submitted, the active batches cancelled and collected, exit 3.
    let h = Emulator::start(EmulatorConfig::new().processing_delay(Duration::from_secs(300)))
        .await
        .unwrap();
    let child = spawn_slow_run(&h, &jobs, &dir.path().join("once"));
    wait_calls(&h, "anthropic.create", 2).await;
    let started = Instant::now();
    interrupt(&child);
    let o = child.wait_with_output().unwrap();
    let (s, e) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{s}{e}");
    assert!(started.elapsed() < Duration::from_secs(120));
    assert!(e.contains("Interrupted:"), "{e}");
    assert_eq!(summary_count(&s, "cancelled"), 6, "{s}");
    assert!(s.contains("stopped    interrupted"), "{s}");
    assert_eq!(h.stats().calls_to("anthropic.cancel"), 2);

    // Twice, while the cancels take long: out at once with 130.
    let h = Emulator::start(
        EmulatorConfig::new()
            .processing_delay(Duration::from_secs(300))
            .cancel_delay(Duration::from_secs(30)),
    )
    .await
    .unwrap();
    let child = spawn_slow_run(&h, &jobs, &dir.path().join("twice"));
    wait_calls(&h, "anthropic.create", 2).await;
    let started = Instant::now();
    interrupt(&child);
    wait_calls(&h, "anthropic.cancel", 2).await;
    interrupt(&child);
    let o = child.wait_with_output().unwrap();
    let (_, e) = text(&o);
    assert_eq!(o.status.code(), Some(130), "{e}");
    assert!(
        e.contains("Interrupted:") && e.contains("Exiting now"),
        "{e}"
    );
    assert!(started.elapsed() < Duration::from_secs(120));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_the_provider_refuses_fails_alone_and_the_rest_completes() {
    // The provider refuses the whole batch for one document it cannot take
    // (the emulator's reject marker stands for a PDF no client can check);
    // the run isolates it: 9 results, 1 failure naming the file, exit 3.
    let h = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let docs = d.join("docs");
    std::fs::create_dir(&docs).unwrap();
    // Ten PDFs that every local check accepts; the provider cannot process
    // one of them.
    let lines: Vec<String> = (0..10)
        .map(|i| {
            let body = if i == 4 {
                format!("Notes {i}. {}", batchata_emulator::REJECT_MARKER)
            } else {
                format!("Notes {i}.")
            };
            std::fs::write(
                docs.join(format!("notes-{i}.pdf")),
                batchata::fixtures::pdf(&[&body]).unwrap(),
            )
            .unwrap();
            serde_json::json!({"id": format!("f{i}"), "model": "claude-haiku-4-5",
                "file": format!("docs/notes-{i}.pdf"), "prompt": "Summarise."})
            .to_string()
        })
        .collect();
    let jobs = jobs_file(d, &lines);
    let out = d.join("out");
    let o = run_cmd(&h, &jobs, &out, &["-q"]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{stdout}\n{stderr}");
    let mut completed = 0;
    let mut failures = Vec::new();
    for i in 0..10 {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join(format!("f{i}.json"))).unwrap())
                .unwrap();
        match v["error"].as_str() {
            None => completed += 1,
            Some(e) => failures.push((i, e.to_string())),
        }
    }
    assert_eq!(completed, 9, "{failures:?}");
    assert_eq!(failures.len(), 1);
    let (i, e) = &failures[0];
    assert_eq!(*i, 4);
    assert!(
        e.contains("notes-4.pdf") && e.contains("invalid_request_error"),
        "{e}"
    );
    let stats = h.stats();
    // [0-9] → [0-4] [5-9 ok] → [0,1 ok] [2,3,4] → [2 ok] [3,4] → [3 ok]
    // [4 refused]: 9 calls, the bound 1 + 2·⌈log2 10⌉; 4 batches exist.
    assert_eq!(stats.calls_to("anthropic.create"), 9);
    assert_eq!(stats.batches_created, 4);
    assert_eq!(stats.requests_resubmitted, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_shows_one_job_filters_by_status_and_fits_the_width() {
    let bad = Emulator::start(EmulatorConfig::new().error_rate(0.5).seed(3))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut lines = prompts(10, Some("claude-haiku-4-5"));
    lines.push(
        serde_json::json!({"id": "a-job-id-that-is-far-too-long-for-any-table-column", "model": "claude-haiku-4-5", "prompt": "x"})
            .to_string(),
    );
    let jobs = jobs_file(dir.path(), &lines);
    let out = dir.path().join("out");
    let o = run_cmd(&bad, &jobs, &out, &["-q"]);
    assert_eq!(o.status.code(), Some(3));
    let results = |args: &[&str], columns: Option<&str>| {
        let mut c = bin();
        c.arg("results").arg(&out).args(args).env_remove("COLUMNS");
        if let Some(n) = columns {
            c.env("COLUMNS", n);
        }
        c.output().unwrap()
    };
    // Not a terminal and no COLUMNS: 80 columns; COLUMNS wins when set.
    for (columns, width) in [(None, 80), (Some("60"), 60), (Some("120"), 120)] {
        let o = results(&[], columns);
        let (table, e) = text(&o);
        assert_eq!(o.status.code(), Some(0), "{e}");
        for line in table.lines() {
            assert!(
                line.chars().count() <= width,
                "wider than {width}: {line:?}"
            );
        }
        assert!(!table.contains('\u{1b}'), "no colour in a pipe: {table}");
    }
    // --status keeps one kind.
    let (failed, _) = text(&results(&["--status", "failed"], None));
    let (completed, _) = text(&results(&["--status", "completed"], None));
    let rows = |t: &str, what: &str| t.lines().filter(|l| l.contains(what)).count();
    let nf = rows(&failed, " failed ");
    let nc = rows(&completed, " completed ");
    assert!(nf > 0 && nc > 0, "{failed}\n{completed}");
    assert_eq!(nf + nc, 11);
    assert_eq!(rows(&failed, " completed "), 0, "{failed}");
    assert!(
        failed.contains(&format!("{nf} jobs: 0 completed, {nf} failed")),
        "{failed}"
    );
    let (cancelled, _) = text(&results(&["--status", "cancelled"], None));
    assert!(cancelled.contains("0 jobs:"), "{cancelled}");
    // --job shows one result in full; an unknown id is an input error before any output.
    let id = completed
        .lines()
        .find(|l| l.starts_with('p') && l.contains(" completed "))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let o = results(&["--job", &id], Some("40"));
    let (one, e) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{e}");
    assert!(
        one.starts_with(&format!("job      {id}\nstatus   completed\n")),
        "{one}"
    );
    let answer = serde_json::from_slice::<serde_json::Value>(
        &std::fs::read(out.join(format!("{id}.json"))).unwrap(),
    )
    .unwrap()["raw_response"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(one.contains(&answer), "the answer in full: {one}");
    let o = results(&["--job", "nope"], None);
    let (so, e) = text(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        so.is_empty() && e.contains("no result for job 'nope'"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_on_run_dry_run_and_models_is_one_documented_object() {
    let h = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let jobs = jobs_file(dir.path(), &prompts(25, Some("claude-haiku-4-5")));
    let out = dir.path().join("out");
    // The dry run's plan.
    let o = run_cmd(
        &h,
        &jobs,
        &out,
        &[
            "--dry-run",
            "--json",
            "--items-per-batch",
            "10",
            "--cost-limit",
            "1",
        ],
    );
    let (s, e) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{e}");
    let plan: serde_json::Value = serde_json::from_str(s.trim()).expect(&s);
    assert_eq!(s.trim().lines().count(), 1, "{s}");
    assert_eq!(plan["total_jobs"], 25);
    assert_eq!(plan["batches"].as_array().unwrap().len(), 3);
    assert_eq!(plan["batches"][0]["provider"], "anthropic");
    assert_eq!(plan["cost_limit_usd"], 1.0);
    assert!(plan["worst_case_usd"].as_f64().unwrap() > 0.0);
    assert_eq!(h.stats().total_calls, 0);
    // The run's final summary, and nothing else on stdout.
    let o = run_cmd(&h, &jobs, &out, &["--json"]);
    let (s, e) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{e}");
    assert_eq!(s.trim().lines().count(), 1, "{s}");
    let sum: serde_json::Value = serde_json::from_str(s.trim()).expect(&s);
    assert_eq!(sum["total"], 25);
    assert_eq!(sum["completed"], 25);
    assert_eq!(sum["failed"], 0);
    assert_eq!(sum["exit_code"], 0);
    assert!(sum["stop_reason"].is_null());
    let cost = sum["cost_usd"].as_f64().unwrap();
    assert_eq!(cost, (cost * 1e6).round() / 1e6, "money rounded to 1e-6");
    // Each schema is in the help.
    let help = String::from_utf8(bin().args(["run", "--help"]).output().unwrap().stdout).unwrap();
    assert!(
        help.contains("JSON (--json") && help.contains("batches_within_limit"),
        "{help}"
    );
    let help =
        String::from_utf8(bin().args(["models", "--help"]).output().unwrap().stdout).unwrap();
    assert!(
        help.contains("Examples:") && help.contains("--json prints"),
        "{help}"
    );
}

#[test]
fn models_fits_100_columns_and_wide_shows_the_rest() {
    let narrow = String::from_utf8(bin().arg("models").output().unwrap().stdout).unwrap();
    for line in narrow.lines() {
        assert!(line.chars().count() <= 100, "{line}");
        assert!(!line.contains('…'), "nothing cut: {line}");
    }
    let wide =
        String::from_utf8(bin().args(["models", "--wide"]).output().unwrap().stdout).unwrap();
    assert!(
        wide.lines().any(|l| l.chars().count() > 100),
        "--wide shows the notes in full"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_dash_reads_jobs_from_stdin_with_paths_from_the_current_folder() {
    use std::io::Write;
    let h = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("docs")).unwrap();
    std::fs::write(dir.path().join("docs/a.txt"), "A short note about cats.").unwrap();
    let mut lines = prompts(3, Some("claude-haiku-4-5"));
    lines.push(
        serde_json::json!({"id": "f1", "model": "claude-haiku-4-5", "file": "docs/a.txt", "prompt": "Summarise"})
            .to_string(),
    );
    let mut c = bin();
    c.current_dir(dir.path())
        .args([
            "run",
            "-",
            "--results-dir",
            "out",
            "--poll-interval",
            "20ms",
            "--json",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = with_emulator(&mut c, &h).spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all((lines.join("\n") + "\n").as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let (s, e) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{s}{e}");
    let sum: serde_json::Value = serde_json::from_str(s.trim()).expect(&s);
    assert_eq!(sum["completed"], 4);
    assert!(dir.path().join("out/f1.json").is_file());
    // A bad line on stdin is named as such.
    let mut c = bin();
    c.current_dir(dir.path())
        .args(["run", "-", "--results-dir", "out2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{not json\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("<stdin>:1:"), "{:?}", text(&o));
}

#[test]
fn completions_for_bash_zsh_and_fish_name_the_commands_and_flags() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef batchata"),
        ("fish", "complete -c batchata"),
    ] {
        let o = bin().args(["completions", shell]).output().unwrap();
        let s = String::from_utf8(o.stdout).unwrap();
        assert_eq!(o.status.code(), Some(0), "{shell}");
        assert!(s.contains(marker), "{shell}: {s}");
        for word in ["results-dir", "cost-limit", "emulate", "status"] {
            assert!(s.contains(word), "{shell} completes {word}");
        }
    }
    let o = bin().args(["completions", "powershell"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let help = bin().args(["completions", "--help"]).output().unwrap();
    assert!(String::from_utf8(help.stdout)
        .unwrap()
        .contains("Examples:"));
}

#[test]
fn every_run_option_comes_from_the_environment_and_a_flag_wins() {
    let dir = tempfile::tempdir().unwrap();
    let jobs = jobs_file(dir.path(), &prompts(25, None));
    let plan = |extra: &[&str]| {
        let o = bin()
            .arg("run")
            .arg(&jobs)
            .args(extra)
            .env("BATCHATA_RESULTS_DIR", dir.path().join("out"))
            .env("BATCHATA_MODEL", "claude-haiku-4-5")
            .env("BATCHATA_ITEMS_PER_BATCH", "10")
            .env("BATCHATA_MAX_PARALLEL", "2")
            .env("BATCHATA_COST_LIMIT", "1")
            .env("BATCHATA_TIME_LIMIT", "2h")
            .env("BATCHATA_DRY_RUN", "1")
            .env("BATCHATA_JSON", "true")
            .output()
            .unwrap();
        let (s, e) = text(&o);
        assert_eq!(o.status.code(), Some(0), "{e}");
        serde_json::from_str::<serde_json::Value>(s.trim()).expect(&s)
    };
    let p = plan(&[]);
    assert_eq!(p["batches"].as_array().unwrap().len(), 3, "{p}");
    assert_eq!(p["cost_limit_usd"], 1.0);
    assert_eq!(p["max_parallel"], 2);
    assert_eq!(p["batches"][0]["model"], "claude-haiku-4-5");
    let p = plan(&["--items-per-batch", "5"]);
    assert_eq!(
        p["batches"].as_array().unwrap().len(),
        5,
        "the flag wins: {p}"
    );
    // A bad value from the environment is named like a bad flag.
    let o = bin()
        .arg("run")
        .arg(&jobs)
        .env("BATCHATA_RESULTS_DIR", dir.path().join("out"))
        .env("BATCHATA_TIME_LIMIT", "soon")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    // --help shows each variable.
    let help = String::from_utf8(bin().args(["run", "--help"]).output().unwrap().stdout).unwrap();
    for v in [
        "BATCHATA_COST_LIMIT",
        "BATCHATA_TIME_LIMIT",
        "BATCHATA_ITEMS_PER_BATCH",
        "BATCHATA_MAX_PARALLEL",
        "BATCHATA_MODEL",
        "BATCHATA_RESULTS_DIR",
        "BATCHATA_EMULATOR_URL",
    ] {
        assert!(help.contains(&format!("[env: {v}")), "{v} in --help");
    }
}

#[test]
fn readme_installs_shows_the_whole_quickstart_file_and_a_live_demo() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let quick = readme.find("\n## Quick start").unwrap();
    let install = readme.find("\n## Install").expect("an install section");
    let next = readme[quick + 1..].find("\n## ").unwrap() + quick + 1;
    assert_eq!(next, install, "Install comes right after the quick start");
    assert!(readme.contains("cargo install --path crates/batchata-cli"));
    for line in std::fs::read_to_string(root.join("examples/quickstart.jsonl"))
        .unwrap()
        .lines()
    {
        assert!(readme.contains(line), "README lacks the jobs line {line}");
    }
    assert!(readme.contains("batchata emulate --port 8765 --processing-delay 20s\n"));
    assert!(readme.contains("--emulator-url http://127.0.0.1:8765"));
    // Examples in every command's --help.
    for cmd in [
        "run",
        "status",
        "results",
        "cancel",
        "models",
        "emulate",
        "completions",
    ] {
        let o = bin().args([cmd, "--help"]).output().unwrap();
        let help = String::from_utf8(o.stdout).unwrap();
        assert!(help.contains("Examples:"), "{cmd} --help has no examples");
    }
}
