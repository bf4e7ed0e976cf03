//! The run engine end to end: real providers over HTTP against the emulator,
//! result files and state on disk.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use batchata::run::StateReport;
use batchata::ProviderSettings;
use batchata::{Batch, BatchPhase, DefaultParams, Job, JobOutcome, JobResult, ProviderKind};
use batchata_emulator::{Emulator, EmulatorConfig, EmulatorHandle};

const MODEL: &str = "gpt-4o-mini";

fn settings(h: &EmulatorHandle) -> ProviderSettings {
    ProviderSettings::default()
        .anthropic(|c| {
            c.api_key("sk-ant-test-engine")
                .base_url(h.anthropic_base_url())
                .poll_interval(Duration::from_millis(50))
        })
        .openai(|c| {
            c.api_key("sk-test-engine")
                .base_url(h.openai_base_url())
                .poll_interval(Duration::from_millis(50))
        })
}

fn batch(dir: &std::path::Path, h: &EmulatorHandle, model: &str, n: usize) -> Batch {
    let mut b = Batch::new(dir.join("results"))
        .state_file(dir.join("state.jsonl"))
        .providers(settings(h))
        .handle_interrupts(false)
        .default_params(DefaultParams::new().model(model).max_tokens(100));
    for i in 0..n {
        b.add_job(
            Job::prompt(format!("Question number {i}: what is {i} + {i}?")).id(format!("q{i:03}")),
        )
        .unwrap();
    }
    b
}

fn result_files(dir: &std::path::Path) -> Vec<JobResult> {
    let mut out: Vec<JobResult> = std::fs::read_dir(dir.join("results"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| JobResult::load_from_json(&p).unwrap())
        .collect();
    out.sort_by(|a, b| a.job_id.cmp(&b.job_id));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_batches_in_parallel_within_the_bound() {
    let h = Emulator::start(EmulatorConfig::new().processing_delay(Duration::from_millis(300)))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let peak = Arc::new(Mutex::new(0usize));
    let p = peak.clone();
    // Every phase a batch row was seen in, and any row whose phase and
    // other fields disagree.
    let seen = Arc::new(Mutex::new((HashSet::new(), Vec::new())));
    let sn = seen.clone();
    let b = batch(dir.path(), &h, MODEL, 40)
        .items_per_batch(4)
        .max_parallel_batches(3)
        .progress_interval(Duration::from_millis(10))
        .on_progress(move |s, _| {
            let active = s
                .batches
                .iter()
                .filter(|b| b.batch_id.is_some() && !b.finished)
                .count();
            let mut m = p.lock().unwrap();
            *m = (*m).max(active);
            let mut seen = sn.lock().unwrap();
            for b in &s.batches {
                seen.0.insert(b.phase);
                let created = b.batch_id.is_some();
                let consistent = match b.phase {
                    BatchPhase::Queued | BatchPhase::Submitting => !created && !b.finished,
                    BatchPhase::Submitted | BatchPhase::Running | BatchPhase::Collecting => {
                        created && !b.finished
                    }
                    BatchPhase::Collected => created,
                    _ => false,
                };
                if !consistent || b.provider != ProviderKind::OpenAi {
                    seen.1.push(format!("{b:?}"));
                }
            }
        });
    let run = b.run().await.unwrap();
    let status = run.status();
    assert!(status.is_complete);
    assert_eq!(
        (status.completed, status.failed, status.cancelled),
        (40, 0, 0)
    );
    assert_eq!(status.batches_total, 10);
    let peak = *peak.lock().unwrap();
    assert!(peak <= 3, "at most 3 batches in flight, saw {peak}");
    assert!(peak >= 2, "batches should overlap, saw {peak}");
    // Seen as they went: waiting for a slot, then at the provider under its
    // own word; at the end each collected under its final word, once.
    let (phases, wrong) = std::mem::take(&mut *seen.lock().unwrap());
    assert!(wrong.is_empty(), "rows out of step: {wrong:#?}");
    assert!(phases.contains(&BatchPhase::Queued), "{phases:?}");
    assert!(phases.contains(&BatchPhase::Running), "{phases:?}");
    assert_eq!((status.batches_completed, status.batches_pending), (10, 0));
    for b in &status.batches {
        assert!(b.finished, "{b:?}");
        assert_eq!(b.phase, BatchPhase::Collected, "{b:?}");
        assert_eq!(b.status, "completed", "OpenAI's final word: {b:?}");
        assert_eq!((b.done, b.total), (4, 4), "{b:?}");
        assert!(b.submitted_at.is_some() && b.finished_at.is_some(), "{b:?}");
    }
    let stats = h.stats();
    assert_eq!(
        stats.calls_to("openai.batches.create"),
        10,
        "each batch created exactly once"
    );
    let results = result_files(dir.path());
    assert_eq!(results.len(), 40);
    assert!(results.iter().all(|r| r.is_success() && r.cost_usd > 0.0));
    let summed: f64 = results.iter().map(|r| r.cost_usd).sum();
    assert!((status.cost_used_usd - summed).abs() < 1e-9);
    let all = run.results().unwrap();
    assert_eq!(all.completed.len(), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cost_limit_stops_submissions_and_follows_actual_cost() {
    let h = Emulator::start(EmulatorConfig::new()).await.unwrap();
    // Worst case of one 5-job batch: input estimate + 5 × 100 output tokens.
    let probe_dir = tempfile::tempdir().unwrap();
    let probe = batch(probe_dir.path(), &h, MODEL, 5);
    let per_batch = probe.plan().unwrap().worst_case_usd;
    assert!(per_batch > 0.0);

    // Below one batch's worst case: nothing is submitted.
    let dir = tempfile::tempdir().unwrap();
    let run = batch(dir.path(), &h, MODEL, 10)
        .items_per_batch(5)
        .cost_limit_usd(per_batch * 0.9)
        .run()
        .await
        .unwrap();
    let s = run.status();
    assert_eq!((s.completed, s.failed), (0, 10));
    assert_eq!(h.stats().calls_to("openai.batches.create"), 0);
    assert!(result_files(dir.path())
        .iter()
        .all(|r| r.error.as_deref() == Some("Cost limit exceeded")));

    // Room for ~1.5 batches at worst case, run one at a time: as each batch's
    // reservation is replaced by its (much smaller) actual cost, later batches fit.
    let dir = tempfile::tempdir().unwrap();
    let run = batch(dir.path(), &h, MODEL, 20)
        .items_per_batch(5)
        .max_parallel_batches(1)
        .cost_limit_usd(per_batch * 1.5)
        .run()
        .await
        .unwrap();
    let s = run.status();
    let actual_per_batch = s.cost_used_usd / (s.completed as f64 / 5.0);
    assert!(
        actual_per_batch * 3.0 < per_batch,
        "actual cost should be well under the worst case"
    );
    // Batch k+1 is submitted while used + worst case still fits.
    let fits = ((per_batch * 1.5 - per_batch) / actual_per_batch).floor() as usize + 1;
    assert_eq!(s.completed, 5 * fits.min(4), "{s:?}");
    assert_eq!(s.failed, 20 - s.completed);
    assert!(s.cost_used_usd <= per_batch * 1.5);
    assert_eq!(s.cost_reserved_usd, 0.0);

    // Parallel batches: the second does not fit beside the first's
    // reservation, so it waits for that one to settle instead of failing.
    let before = h.stats().calls_to("openai.batches.create");
    let dir = tempfile::tempdir().unwrap();
    let h2 = Emulator::start(EmulatorConfig::new().processing_delay(Duration::from_millis(400)))
        .await
        .unwrap();
    let run = batch(dir.path(), &h2, MODEL, 10)
        .items_per_batch(5)
        .max_parallel_batches(2)
        .cost_limit_usd(per_batch * 1.5)
        .run()
        .await
        .unwrap();
    let s = run.status();
    assert_eq!((s.completed, s.failed), (10, 0), "{s:?}");
    assert_eq!(h2.stats().calls_to("openai.batches.create"), 2);
    assert_eq!(h.stats().calls_to("openai.batches.create"), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_submits_nothing() {
    let h = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let b = batch(dir.path(), &h, MODEL, 25)
        .items_per_batch(10)
        .cost_limit_usd(0.001);
    let report = b.plan().unwrap();
    assert_eq!(report.batches.len(), 3);
    assert_eq!(report.batches.iter().map(|b| b.jobs).sum::<usize>(), 25);
    assert!(report.expected_usd < report.worst_case_usd);
    let text = report.to_string();
    assert!(
        text.contains("worst case") && text.contains("expected") && text.contains("cost limit"),
        "{text}"
    );
    let stats = h.stats();
    assert_eq!(stats.total_calls, 0, "a dry run makes no provider call");
    assert!(!dir.path().join("state.jsonl").exists());

    // Anthropic mixes models in one batch: the plan names every one.
    let mut b = batch(dir.path(), &h, "claude-haiku-4-5", 2);
    b.add_job(Job::prompt("Another model.").model("claude-sonnet-4-5"))
        .unwrap();
    let report = b.plan().unwrap();
    assert_eq!(report.batches.len(), 1);
    assert_eq!(
        report.batches[0].model,
        "claude-haiku-4-5, claude-sonnet-4-5"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_cancels_keeps_state_and_resume_finishes_without_resubmitting() {
    let h = Emulator::start(EmulatorConfig::new().processing_delay(Duration::from_secs(3)))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let b = batch(dir.path(), &h, MODEL, 12)
        .items_per_batch(4)
        .max_parallel_batches(2);
    let run = b.start().await.unwrap();
    // Wait until two batches are at the provider, then interrupt.
    for _ in 0..200 {
        if run
            .status()
            .batches
            .iter()
            .filter(|b| b.batch_id.is_some())
            .count()
            == 2
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The application hears of the stop at once, to say so while the run
    // winds down (the library itself prints nothing).
    assert_eq!(run.stop_reason(), None);
    let heard = tokio::spawn({
        let run = run.clone();
        async move { run.stop_requested().await }
    });
    run.shutdown();
    assert_eq!(
        heard.await.unwrap(),
        Some(batchata::StopReason::Interrupted)
    );
    assert_eq!(run.stop_reason(), Some(batchata::StopReason::Interrupted));
    let s = run.wait().await.unwrap();
    assert_eq!(s.stop_reason, Some(batchata::StopReason::Interrupted));
    let stats = h.stats();
    assert_eq!(
        stats.calls_to("openai.batches.create"),
        2,
        "no new batch after the interrupt"
    );
    assert_eq!(
        stats.calls_to("openai.batches.cancel"),
        2,
        "active batches cancelled"
    );
    assert_eq!(s.completed + s.cancelled + s.failed, 12, "{s:?}");
    assert!(
        s.cancelled >= 4,
        "the never-submitted batch is cancelled: {s:?}"
    );
    let files = result_files(dir.path());
    assert_eq!(files.len(), 12);
    assert!(files
        .iter()
        .filter(|r| !r.is_success())
        .all(|r| r.outcome() == JobOutcome::Cancelled));
    // Each file says how its job ended in a field of its own, whatever its
    // error text: the never-submitted batch's and the cancelled batches'.
    for r in &files {
        let want = if r.is_success() {
            JobOutcome::Completed
        } else {
            JobOutcome::Cancelled
        };
        assert_eq!(r.outcome, Some(want), "{r:?}");
        let mut legacy = r.clone();
        legacy.outcome = None;
        legacy.error = legacy.error.map(|e| format!("Stopped: {e}"));
        if !r.is_success() {
            assert_eq!(
                legacy.outcome(),
                JobOutcome::Failed,
                "without the field, the text decides"
            );
        }
    }
    let report = StateReport::load(&dir.path().join("state.jsonl")).unwrap();
    assert!(
        report.batches.iter().all(|b| b.ended.is_some()),
        "{report:?}"
    );

    // Rerun on the same state: cancelled jobs run, completed ones do not.
    let completed_before = s.completed;
    let h_calls_before = stats.calls_to("openai.batches.create");
    let run = batch(dir.path(), &h, MODEL, 12)
        .items_per_batch(4)
        .run()
        .await
        .unwrap();
    let s2 = run.status();
    assert_eq!(s2.completed, 12, "{s2:?}");
    assert_eq!(run.stop_requested().await, None, "it ran to the end");
    assert_eq!(run.stop_reason(), None);
    let created = h.stats().calls_to("openai.batches.create") - h_calls_before;
    let rerun_jobs = 12 - completed_before;
    assert_eq!(
        created as usize,
        rerun_jobs.div_ceil(4),
        "only the unfinished jobs are resubmitted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_limit_cancels_and_keeps_partial_results() {
    let h = Emulator::start(EmulatorConfig::new().processing_delay(Duration::from_secs(30)))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let run = batch(dir.path(), &h, MODEL, 30)
        .items_per_batch(10)
        .max_parallel_batches(2)
        .time_limit(Duration::from_secs(10))
        .run()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(25),
        "returned after {elapsed:?}"
    );
    let s = run.status();
    assert_eq!(s.stop_reason, Some(batchata::StopReason::TimeLimit));
    let stats = h.stats();
    assert_eq!(
        stats.calls_to("openai.batches.create"),
        2,
        "the third batch is never submitted"
    );
    assert_eq!(stats.calls_to("openai.batches.cancel"), 2);
    let files = result_files(dir.path());
    assert_eq!(files.len(), 30);
    let done = files.iter().filter(|r| r.is_success()).count();
    let limited = files
        .iter()
        .filter(|r| r.error.as_deref() == Some("Time limit exceeded"))
        .count();
    assert_eq!(done + limited, 30);
    assert!(done > 0, "requests finished before the limit are kept");
    assert!(limited >= 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_polls_and_downloads_are_tried_again_not_fatal() {
    use batchata_emulator::{Endpoint, FaultKind};
    // Each call retries twice; five failures in a row outlast one poll's
    // retries and one download's retries, so the engine must try again later.
    let h = Emulator::start(
        EmulatorConfig::new()
            .fail_first(Endpoint::AnthropicRetrieve, 5, FaultKind::Status500)
            .fail_first(Endpoint::AnthropicResults, 5, FaultKind::Status503),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(&h).anthropic(|c| c.max_retries(1));
    let run = batch(dir.path(), &h, "claude-haiku-4-5", 6)
        .providers(settings)
        .run()
        .await
        .unwrap();
    let s = run.status();
    assert_eq!(s.completed, 6, "{s:?}");
    let stats = h.stats();
    assert_eq!(stats.calls_to("anthropic.create"), 1);
    assert!(stats.faults_of("500") == 5 && stats.faults_of("503") == 5);
    assert_eq!(result_files(dir.path()).len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_run_removes_only_what_it_wrote_and_temp_state_is_cleaned_up() {
    let h = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    std::fs::create_dir_all(&results).unwrap();
    std::fs::write(results.join("notes.json"), "{\"mine\": true}").unwrap();
    std::fs::write(results.join("keep.txt"), "user file").unwrap();
    batch(dir.path(), &h, MODEL, 4).run().await.unwrap();
    assert!(results.join("q003.json").exists());
    // A fresh run with fewer jobs: the old results of this state go, the user's files stay.
    let mut b = Batch::new(&results)
        .state_file(dir.path().join("state.jsonl"))
        .fresh_state()
        .providers(settings(&h))
        .handle_interrupts(false)
        .default_params(DefaultParams::new().model(MODEL));
    b.add_job(Job::prompt("only one").id("solo")).unwrap();
    b.run().await.unwrap();
    assert!(
        !results.join("q003.json").exists(),
        "the previous run's result is removed"
    );
    assert!(results.join("solo.json").exists());
    assert_eq!(
        std::fs::read_to_string(results.join("keep.txt")).unwrap(),
        "user file"
    );
    assert!(results.join("notes.json").exists());

    // No state file given: a temporary one, gone when the run ends.
    let mut b = Batch::new(dir.path().join("other"))
        .providers(settings(&h))
        .handle_interrupts(false)
        .default_params(DefaultParams::new().model(MODEL));
    b.add_job(Job::prompt("temp state").id("t1")).unwrap();
    let run = b.run().await.unwrap();
    assert_eq!(run.results().unwrap().completed.len(), 1);
    let run_id = run.run_id();
    let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("batchata-state-")
        })
        .filter(|e| std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains(&run_id)))
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "temporary state left behind: {left:?}");
}
