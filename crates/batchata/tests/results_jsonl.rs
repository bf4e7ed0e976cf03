//! The jsonl results layout end to end: runs against the emulator over
//! loopback, `results.jsonl` and the state on disk, read back by the
//! library's readers.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use batchata::run::{read_results, ResultFiles};
use batchata::{Batch, DefaultParams, Job, JobOutcome, JobResult, ResultsFormat, RESULTS_JSONL};
use batchata_emulator::{Emulator, EmulatorConfig, EmulatorHandle};

const MODEL: &str = "claude-haiku-4-5";

fn batch(results: &Path, state: &Path, h: &EmulatorHandle, n: usize) -> Batch {
    let settings = batchata::ProviderSettings::default().anthropic(|c| {
        c.api_key("sk-ant-test-jsonl")
            .base_url(h.anthropic_base_url())
            .poll_interval(Duration::from_millis(20))
    });
    let mut b = Batch::new(results)
        .state_file(state)
        .providers(settings)
        .items_per_batch(7)
        .raw_files(batchata::RawFiles::Skip)
        .default_params(DefaultParams::new().model(MODEL).max_tokens(64));
    for i in 0..n {
        b.add_job(Job::prompt(format!("Tell me about {i}")).id(format!("j{i:02}")))
            .unwrap();
    }
    b
}

/// Every line of a results.jsonl, parsed (a torn or bad line fails the test).
fn lines(dir: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join(RESULTS_JSONL)).unwrap();
    assert!(text.is_empty() || text.ends_with('\n'), "a torn last line");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// A result without what differs from run to run (the provider batch id).
fn comparable(mut v: serde_json::Value) -> serde_json::Value {
    v.as_object_mut().unwrap().remove("batch_id");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jsonl_run_writes_each_result_as_one_line_in_the_files_shape() {
    let h = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (files, jsonl) = (dir.path().join("files"), dir.path().join("jsonl"));
    batch(&files, &dir.path().join("f.state"), &h, 20)
        .run()
        .await
        .unwrap();
    let run = batch(&jsonl, &dir.path().join("j.state"), &h, 20)
        .results_format(ResultsFormat::Jsonl)
        .run()
        .await
        .unwrap();
    assert_eq!(run.results_format(), ResultsFormat::Jsonl);
    assert_eq!(run.status().completed, 20);

    // One line per job and no result files; the same JSON as each file.
    let got = lines(&jsonl);
    assert_eq!(got.len(), 20);
    let names: Vec<String> = std::fs::read_dir(&jsonl)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(names, vec![RESULTS_JSONL.to_string()]);
    let by_id: BTreeMap<String, serde_json::Value> = got
        .into_iter()
        .map(|v| (v["job_id"].as_str().unwrap().to_string(), comparable(v)))
        .collect();
    for (id, line) in &by_id {
        let file: serde_json::Value =
            serde_json::from_slice(&std::fs::read(files.join(format!("{id}.json"))).unwrap())
                .unwrap();
        assert_eq!(&comparable(file), line, "{id}");
    }

    // Every reader: the run, the folder with its state, the folder alone.
    let from_run = run.results().unwrap();
    assert_eq!(from_run.completed.len(), 20);
    let from_state = read_results(&jsonl, Some(&dir.path().join("j.state"))).unwrap();
    let alone = read_results(&jsonl, None).unwrap();
    for r in [&from_state, &alone] {
        let ids: Vec<&str> = r.completed.iter().map(|r| r.job_id.as_str()).collect();
        let want: Vec<&str> = from_run
            .completed
            .iter()
            .map(|r| r.job_id.as_str())
            .collect();
        assert_eq!(ids, want);
    }
    let listed = run.result_files().unwrap();
    assert_eq!(listed.len(), 20);
    let first = listed.read(0).unwrap().unwrap();
    assert_eq!(first, from_run.completed[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_keeps_its_layout_and_a_job_run_again_has_its_last_line_read() {
    let bad = Emulator::start(EmulatorConfig::new().error_rate(0.5).seed(3))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (results, state) = (dir.path().join("out"), dir.path().join("state"));
    let run = batch(&results, &state, &bad, 14)
        .results_format(ResultsFormat::Jsonl)
        .run()
        .await
        .unwrap();
    let failed = run.status().failed;
    assert!(failed > 0 && failed < 14, "{failed}");
    assert_eq!(lines(&results).len(), 14);

    // The other layout is refused, naming both and the way out; nothing is written.
    let before = std::fs::read(&state).unwrap();
    let good = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let e = batch(&results, &state, &good, 14)
        .results_format(ResultsFormat::Files)
        .retry_failed()
        .run()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("jsonl")
            && e.contains("asks for files")
            && e.contains("--results-format jsonl")
            && e.contains("--fresh"),
        "{e}"
    );
    assert_eq!(std::fs::read(&state).unwrap(), before);
    assert_eq!(good.stats().batches.len(), 0);

    // Without the option the resume follows the state; the failed jobs run
    // again and get a new line each, which every reader takes.
    let run = batch(&results, &state, &good, 14)
        .retry_failed()
        .run()
        .await
        .unwrap();
    assert_eq!(run.results_format(), ResultsFormat::Jsonl);
    let all = lines(&results);
    assert_eq!(all.len(), 14 + failed);
    assert!(!results.join("j00.json").exists());
    for r in [
        run.results().unwrap(),
        read_results(&results, Some(&state)).unwrap(),
        read_results(&results, None).unwrap(),
    ] {
        assert_eq!(
            (r.completed.len(), r.failed.len(), r.cancelled.len()),
            (14, 0, 0)
        );
    }
    // The earlier lines are still there: the last one is the answer.
    let ids: Vec<&str> = all.iter().map(|v| v["job_id"].as_str().unwrap()).collect();
    let twice: Vec<&&str> = ids
        .iter()
        .filter(|id| ids.iter().filter(|x| x == id).count() == 2)
        .collect();
    assert_eq!(twice.len(), 2 * failed);
    let listed = ResultFiles::list(&results, None).unwrap();
    assert_eq!(listed.len(), 14);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_state_refuses_the_run_or_adopts_the_jsonl_results() {
    let h = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (results, state) = (dir.path().join("out"), dir.path().join("state"));
    batch(&results, &state, &h, 10)
        .results_format(ResultsFormat::Jsonl)
        .run()
        .await
        .unwrap();
    std::fs::remove_file(&state).unwrap();
    let created = h.stats().batches.len();

    let e = batch(&results, &state, &h, 12)
        .results_format(ResultsFormat::Jsonl)
        .run()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("10 of these jobs") && e.contains("--adopt-results"),
        "{e}"
    );

    let run = batch(&results, &state, &h, 12)
        .results_format(ResultsFormat::Jsonl)
        .adopt_results()
        .run()
        .await
        .unwrap();
    let stats = h.stats();
    let sent: u64 = stats.batches[created..]
        .iter()
        .map(|b| b.request_count)
        .sum();
    assert_eq!(sent, 2, "only the two new jobs are paid for");
    assert_eq!(lines(&results).len(), 12);
    let r = run.results().unwrap();
    assert_eq!(r.completed.len(), 12);
    assert!(r
        .completed
        .iter()
        .all(|r| r.outcome() == JobOutcome::Completed));
    let parsed: Vec<JobResult> = lines(&results)
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
    assert!(parsed.iter().all(|r| r.fingerprint.is_some()));
}
