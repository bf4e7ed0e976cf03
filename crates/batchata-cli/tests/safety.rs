//! The safety guarantees README states, as a user meets them with the
//! `batchata` binary: two runs on one folder, an edited jobs file, a deleted
//! state file, a refused key. Each checks the exit code `--help` documents,
//! the message, and (through the emulator's counters) that nothing was paid
//! twice.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use batchata_emulator::{Emulator, EmulatorConfig, EmulatorHandle};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_batchata"))
}

fn run_cmd(h: &EmulatorHandle, key: &str, jobs: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = bin();
    c.arg("run")
        .arg(jobs)
        .arg("--results-dir")
        .arg(out)
        .args(["--poll-interval", "20ms", "-q"])
        .args(extra)
        .env("ANTHROPIC_API_KEY", key)
        .env("ANTHROPIC_BASE_URL", h.anthropic_base_url())
        .env("OPENAI_API_KEY", key)
        .env("OPENAI_BASE_URL", h.openai_base_url());
    c
}

fn run(h: &EmulatorHandle, jobs: &Path, out: &Path, extra: &[&str]) -> Output {
    run_cmd(h, "sk-safety-test", jobs, out, extra)
        .output()
        .unwrap()
}

fn jobs_file(dir: &Path, prompts: &[&str]) -> PathBuf {
    let p = dir.join("jobs.jsonl");
    let text: String = prompts
        .iter()
        .map(|p| {
            serde_json::json!({"prompt": p, "model": "claude-haiku-4-5", "max_tokens": 64})
                .to_string()
                + "\n"
        })
        .collect();
    std::fs::write(&p, text).unwrap();
    p
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn result_count(out: &Path) -> usize {
    std::fs::read_dir(out)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_on_the_same_folder_exits_2_naming_the_first() {
    let h = Emulator::start(EmulatorConfig::new().processing_delay(Duration::from_secs(2)))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let jobs = jobs_file(dir.path(), &["one", "two", "three"]);
    let out = dir.path().join("out");
    let mut first = run_cmd(&h, "sk-safety-test", &jobs, &out, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the first run has its batch at the provider.
    while h.stats().batches_created == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = run(&h, &jobs, &out, &[]);
    let e = stderr(&second);
    assert_eq!(second.status.code(), Some(2), "{e}");
    assert!(
        e.contains(&format!("another batchata run (pid {})", first.id())),
        "{e}"
    );
    assert!(first.wait().unwrap().success());
    assert_eq!(h.stats().batches_created, 1, "the second run paid nothing");
    assert_eq!(result_count(&out), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_jobs_file_exits_2_until_rerun_changed_runs_only_the_change() {
    let h = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // Id-less jobs: ids come from the requests.
    let jobs = jobs_file(dir.path(), &["alpha", "beta", "gamma"]);
    assert!(run(&h, &jobs, &out, &[]).status.success());
    // A line inserted and the order changed: only the new line is paid.
    let jobs = jobs_file(dir.path(), &["gamma", "delta", "beta", "alpha"]);
    let o = run(&h, &jobs, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(h.stats().batches_created, 2);
    assert_eq!(h.stats().batches[1].request_count, 1);
    assert_eq!(result_count(&out), 4);

    // An edited job with an explicit id: refused, then rerun alone.
    let p = dir.path().join("ids.jsonl");
    let write = |prompt: &str| {
        let text = [
            serde_json::json!({"id": "a", "prompt": "first", "model": "gpt-4o-mini"}),
            serde_json::json!({"id": "b", "prompt": prompt, "model": "gpt-4o-mini"}),
        ]
        .iter()
        .map(|v| v.to_string() + "\n")
        .collect::<String>();
        std::fs::write(&p, text).unwrap();
    };
    let out2 = dir.path().join("out2");
    write("second");
    assert!(run(&h, &p, &out2, &[]).status.success());
    write("second, edited");
    let o = run(&h, &p, &out2, &[]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("changed") && e.contains(": b;") && e.contains("--rerun-changed"),
        "{e}"
    );
    let created = h.stats().batches_created;
    let o = run(&h, &p, &out2, &["--rerun-changed"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stats = h.stats();
    assert_eq!(stats.batches_created, created + 1);
    assert_eq!(stats.batches.last().unwrap().request_count, 1);
    let b: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out2.join("b.json")).unwrap()).unwrap();
    assert!(
        b["raw_response"]
            .as_str()
            .unwrap()
            .contains("second, edited"),
        "{b}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_state_exits_2_and_adopt_results_pays_nothing_again() {
    let h = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let jobs = jobs_file(dir.path(), &["one", "two"]);
    assert!(run(&h, &jobs, &out, &[]).status.success());
    std::fs::remove_file(out.join(".batchata-state.jsonl")).unwrap();
    let o = run(&h, &jobs, &out, &[]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains(&out.display().to_string())
            && e.contains("--adopt-results")
            && e.contains("--fresh"),
        "{e}"
    );
    let o = run(&h, &jobs, &out, &["--adopt-results"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(h.stats().batches_created, 1, "adopted, not paid again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_exits_2_fails_no_job_and_never_prints_the_key() {
    let h = Emulator::start(EmulatorConfig::new().api_key("the-right-key"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let jobs = jobs_file(dir.path(), &["one", "two"]);
    let key = "sk-ant-wrong-key-0123456789";
    let o = run_cmd(&h, key, &jobs, &out, &[]).output().unwrap();
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("401") && e.contains("no job was marked failed"),
        "{e}"
    );
    assert!(!e.contains(key), "the key leaked: {e}");
    assert_eq!(result_count(&out), 0, "no job was given a result");
    // With the right key the same command finishes the run.
    let o = run_cmd(&h, "the-right-key", &jobs, &out, &[])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(result_count(&out), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_state_exits_2_and_an_unreachable_provider_exits_1_failing_nothing() {
    let h = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let jobs = jobs_file(dir.path(), &["one", "two"]);
    // A state file edited by hand: bad input, said before anything is sent.
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join(".batchata-state.jsonl"),
        "{\"not\": \"a state\"}\n",
    )
    .unwrap();
    let o = run(&h, &jobs, &out, &[]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("line 1 is not a state event") && e.contains("--fresh"),
        "{e}"
    );
    assert_eq!(h.stats().batches_created, 0);

    // No provider at the address: our side's trouble, exit 1, no job failed
    // or given a result; the same command reruns once the provider is back.
    let out = dir.path().join("out2");
    let mut c = bin();
    c.arg("run")
        .arg(&jobs)
        .arg("--results-dir")
        .arg(&out)
        .args(["--emulator-url", "http://127.0.0.1:1", "-q"]);
    let o = c.output().unwrap();
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("rerun"), "{e}");
    assert_eq!(result_count(&out), 0, "no job was given a result");
    let o = run(&h, &jobs, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(result_count(&out), 2);
}
