//! The run engine's promises under the faults every long run meets: a reply
//! lost after the provider acted, two runs on one folder, an edited input,
//! a deleted state, a batch the provider forgot, a provider that is down,
//! a tight cost limit, rate limits on create, a refused key, a rerun from
//! another folder, a results folder that cannot be written. Each test is
//! one finding of the exactly-once issue; all run the real engine against
//! the emulator over loopback, with files on disk.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use batchata::run::StateReport;
use batchata::ProviderSettings;
use batchata::{Batch, DefaultParams, Error, Job, JobOutcome, JobResult};
use batchata_emulator::{Emulator, EmulatorConfig, EmulatorHandle, Endpoint, FaultKind};

fn settings(h: &EmulatorHandle, key: &str) -> ProviderSettings {
    ProviderSettings::default()
        .anthropic(|c| {
            c.api_key(key)
                .base_url(h.anthropic_base_url())
                .poll_interval(Duration::from_millis(40))
        })
        .openai(|c| {
            c.api_key(key)
                .base_url(h.openai_base_url())
                .poll_interval(Duration::from_millis(40))
        })
}

fn new_batch(dir: &Path, h: &EmulatorHandle, model: &str) -> Batch {
    Batch::new(dir.join("results"))
        .state_file(dir.join("state.jsonl"))
        .providers(settings(h, "sk-test-faults"))
        .handle_interrupts(false)
        .default_params(DefaultParams::new().model(model).max_tokens(64))
}

fn with_prompts(mut b: Batch, prompts: &[String], ids: bool) -> Batch {
    for (i, p) in prompts.iter().enumerate() {
        let j = Job::prompt(p.clone());
        b.add_job(if ids { j.id(format!("q{i:03}")) } else { j })
            .unwrap();
    }
    b
}

fn prompts(n: usize, tag: &str) -> Vec<String> {
    (0..n).map(|i| format!("{tag} question {i}")).collect()
}

fn results(dir: &Path) -> Vec<JobResult> {
    let mut out: Vec<JobResult> = std::fs::read_dir(dir.join("results"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| JobResult::load_from_json(&p).unwrap())
        .collect();
    out.sort_by(|a, b| a.job_id.cmp(&b.job_id));
    out
}

/// The emulator echoes the start of the prompt: an answer is its own prompt's.
fn answers_its_own_prompt(r: &JobResult, prompt: &str) -> bool {
    r.raw_response
        .as_deref()
        .is_some_and(|t| t.contains(prompt))
}

// 1. A lost create reply pays once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_reply_was_lost_is_adopted_not_repeated() {
    for (model, endpoint) in [
        ("claude-haiku-4-5", Endpoint::AnthropicCreate),
        ("gpt-4o-mini", Endpoint::OpenAiBatchesCreate),
    ] {
        for fault in [FaultKind::DropAfter, FaultKind::Status500] {
            let h = Emulator::start(EmulatorConfig::new().fail_first(endpoint, 1, fault))
                .await
                .unwrap();
            let dir = tempfile::tempdir().unwrap();
            let ps = prompts(10, "lost-reply");
            let run = with_prompts(new_batch(dir.path(), &h, model), &ps, true)
                .run()
                .await
                .unwrap();
            let s = run.status();
            assert_eq!(s.completed, 10, "{model} {fault:?}: {s:?}");
            let stats = h.stats();
            assert_eq!(stats.batches_created, 1, "{model} {fault:?}: paid once");
            assert_eq!(stats.requests_resubmitted, 0, "{model} {fault:?}");
            if fault == FaultKind::DropAfter {
                // The batch was there: adopted, never created again.
                assert_eq!(stats.calls_to(endpoint.as_str()), 1, "{model}");
            }
            for (i, r) in results(dir.path()).iter().enumerate() {
                assert!(answers_its_own_prompt(r, &ps[i]), "{r:?}");
            }
            // The state knows the one batch, so status and cancel see it.
            let report = batchata::run::StateReport::load(&dir.path().join("state.jsonl")).unwrap();
            let ids: Vec<_> = report
                .batches
                .iter()
                .filter_map(|b| b.batch_id.clone())
                .collect();
            assert_eq!(ids.len(), 1);
            assert_eq!(ids[0], stats.batches[0].id);
        }
    }
}

// 2. Two runs on one results folder: the second is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_on_the_same_folder_is_refused_while_the_first_holds_it() {
    let h = Emulator::start(EmulatorConfig::new().processing_delay(Duration::from_millis(800)))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ps = prompts(6, "two-runs");
    let first = with_prompts(new_batch(dir.path(), &h, "claude-haiku-4-5"), &ps, true)
        .start()
        .await
        .unwrap();
    let e = with_prompts(new_batch(dir.path(), &h, "claude-haiku-4-5"), &ps, true)
        .start()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InUse(_)), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("pid {}", std::process::id())) && msg.contains("results"),
        "{msg}"
    );
    // Another state file over the same folder is refused too.
    let e = with_prompts(
        new_batch(dir.path(), &h, "claude-haiku-4-5").state_file(dir.path().join("other.jsonl")),
        &ps,
        true,
    )
    .start()
    .await
    .unwrap_err();
    assert!(matches!(e, Error::InUse(_)), "{e:?}");
    // Reading the state (what `status` and `cancel` do) needs no lock.
    let report = batchata::run::StateReport::load(&dir.path().join("state.jsonl")).unwrap();
    assert_eq!(report.counts.total, 6);
    first.wait().await.unwrap();
    assert_eq!(h.stats().batches_created, 1);
    // Once the first has ended the folder is free: the rerun has nothing to pay.
    let again = with_prompts(new_batch(dir.path(), &h, "claude-haiku-4-5"), &ps, true)
        .run()
        .await
        .unwrap();
    assert_eq!(again.status().completed, 6);
    assert_eq!(h.stats().batches_created, 1);
}

// 3a. An edited job is refused, then rerun alone when asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_job_is_never_answered_from_its_old_result() {
    let h = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut ps = prompts(5, "edit");
    with_prompts(new_batch(dir.path(), &h, "claude-haiku-4-5"), &ps, true)
        .run()
        .await
        .unwrap();
    ps[2] = "a different question entirely".into();
    let e = with_prompts(new_batch(dir.path(), &h, "claude-haiku-4-5"), &ps, true)
        .run()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Validation(_)), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("q002") && msg.contains("--rerun-changed") && msg.contains("--fresh"),
        "{msg}"
    );
    assert_eq!(h.stats().batches_created, 1, "nothing submitted");
    // The old answer is still there, still the old prompt's.
    assert!(answers_its_own_prompt(
        &results(dir.path())[2],
        "edit question 2"
    ));

    let run = with_prompts(new_batch(dir.path(), &h, "claude-haiku-4-5"), &ps, true)
        .rerun_changed()
        .run()
        .await
        .unwrap();
    assert_eq!(run.status().completed, 5);
    let stats = h.stats();
    assert_eq!(stats.batches_created, 2);
    assert_eq!(
        stats.batches[1].request_count, 1,
        "only the changed job ran"
    );
    let rs = results(dir.path());
    for (i, r) in rs.iter().enumerate() {
        assert!(answers_its_own_prompt(r, &ps[i]), "{i}: {r:?}");
    }
}

// 3b. Id-less jobs keep their ids when lines are inserted or reordered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_less_jobs_survive_an_inserted_line_and_a_new_order() {
    let h = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ps = prompts(6, "no-id");
    with_prompts(new_batch(dir.path(), &h, "gpt-4o-mini"), &ps, false)
        .run()
        .await
        .unwrap();
    let mut edited = ps.clone();
    edited.insert(2, "an inserted question".into());
    edited.reverse();
    let run = with_prompts(new_batch(dir.path(), &h, "gpt-4o-mini"), &edited, false)
        .run()
        .await
        .unwrap();
    assert_eq!(run.status().completed, 7);
    let stats = h.stats();
    assert_eq!(stats.batches_created, 2);
    assert_eq!(
        stats.batches[1].request_count, 1,
        "only the new line is paid"
    );
    assert_eq!(stats.requests_resubmitted, 0);
    // Every result file answers the prompt its id stands for.
    let rs = results(dir.path());
    assert_eq!(rs.len(), 7);
    for r in &rs {
        assert!(edited.iter().any(|p| answers_its_own_prompt(r, p)), "{r:?}");
    }
}

// 4. A results folder whose state was deleted is not rerun silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_state_refuses_the_run_or_adopts_matching_results() {
    let h = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ps = prompts(4, "deleted-state");
    with_prompts(new_batch(dir.path(), &h, "claude-haiku-4-5"), &ps, true)
        .run()
        .await
        .unwrap();
    std::fs::remove_file(dir.path().join("state.jsonl")).unwrap();
    let before: Vec<String> = results(dir.path())
        .iter()
        .map(|r| r.to_json().unwrap())
        .collect();
    let e = with_prompts(new_batch(dir.path(), &h, "claude-haiku-4-5"), &ps, true)
        .run()
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Validation(_)), "{e:?}");
    assert!(
        msg.contains("results") && msg.contains("--adopt-results") && msg.contains("--fresh"),
        "{msg}"
    );
    assert!(
        !dir.path().join("state.jsonl").exists(),
        "a refused run leaves no state"
    );
    assert_eq!(h.stats().batches_created, 1);

    // Adopt: the unchanged jobs' answers are kept; one edited job runs.
    let mut edited = ps.clone();
    edited[3] = "a changed question".into();
    let run = with_prompts(new_batch(dir.path(), &h, "claude-haiku-4-5"), &edited, true)
        .adopt_results()
        .run()
        .await
        .unwrap();
    assert_eq!(run.status().completed, 4);
    let stats = h.stats();
    assert_eq!(stats.batches_created, 2);
    assert_eq!(stats.batches[1].request_count, 1);
    let after: Vec<String> = results(dir.path())
        .iter()
        .map(|r| r.to_json().unwrap())
        .collect();
    assert_eq!(before[..3], after[..3], "adopted results untouched");
    assert!(answers_its_own_prompt(
        &results(dir.path())[3],
        "a changed question"
    ));
}

// 5a. A batch the provider forgot fails its jobs instead of hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_batch_fails_its_jobs_and_retry_failed_runs_them() {
    let h = Emulator::start(
        EmulatorConfig::new()
            .processing_delay(Duration::from_secs(5))
            .forget_batches_after(Duration::from_millis(200)),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ps = prompts(3, "forgotten");
    let run = with_prompts(new_batch(dir.path(), &h, "claude-haiku-4-5"), &ps, true)
        .run()
        .await
        .unwrap();
    let s = run.status();
    assert_eq!((s.completed, s.failed), (0, 3), "{s:?}");
    let id = &h.stats().batches[0].id;
    for r in results(dir.path()) {
        let e = r.error.unwrap_or_default();
        assert!(
            e.contains(&format!("batch {id} no longer exists at anthropic")),
            "{e}"
        );
    }
    // retry_failed submits them again (to an emulator that keeps them).
    let h2 = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let run = with_prompts(new_batch(dir.path(), &h2, "claude-haiku-4-5"), &ps, true)
        .retry_failed()
        .run()
        .await
        .unwrap();
    assert_eq!(run.status().completed, 3);
}

// 5b. A provider that stops answering: the time limit and shutdown end the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_provider_never_holds_the_run_past_its_stop() {
    for how in ["time limit", "shutdown"] {
        let h = Emulator::start(EmulatorConfig::new().processing_delay(Duration::from_secs(3600)))
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ps = prompts(4, "down");
        let mut b = with_prompts(new_batch(dir.path(), &h, "claude-haiku-4-5"), &ps, true);
        if how == "time limit" {
            b = b.time_limit(Duration::from_secs(10));
        }
        let run = b.start().await.unwrap();
        // Wait for the batch to be at the provider, then take the provider away.
        while run.status().batches.iter().all(|b| b.batch_id.is_none()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        h.shutdown().await;
        if how == "shutdown" {
            run.shutdown();
        }
        let ended = run.wait_timeout(Duration::from_secs(60)).await.unwrap();
        let s = ended.unwrap_or_else(|| panic!("{how}: the run did not end"));
        assert!(s.is_complete);
        // Nothing was marked failed: the batch is left for a rerun.
        assert_eq!(s.failed, 0, "{how}: {s:?}");
        let report = batchata::run::StateReport::load(&dir.path().join("state.jsonl")).unwrap();
        assert!(
            report
                .batches
                .iter()
                .all(|b| b.ended.is_none() && b.batch_id.is_some()),
            "{report:?}"
        );
    }
}

// 6. The cost limit waits for batches in flight instead of failing jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tight_cost_limit_spends_close_to_it_without_passing_it() {
    let h = Emulator::start(EmulatorConfig::new().processing_delay(Duration::from_millis(150)))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ps = prompts(200, "budget");
    let make = |d: &Path, h: &EmulatorHandle| {
        with_prompts(
            new_batch(d, h, "gpt-4o-mini")
                .default_params(DefaultParams::new().model("gpt-4o-mini").max_tokens(24)),
            &ps,
            true,
        )
        .items_per_batch(10)
        .max_parallel_batches(4)
    };
    let worst_batch = make(dir.path(), &h).plan().unwrap().batches[0].worst_case_usd;
    // A probe run without a limit gives one batch's actual cost.
    let probe_dir = tempfile::tempdir().unwrap();
    let probe = make(probe_dir.path(), &h).run().await.unwrap().status();
    let actual_batch = probe.cost_used_usd / 20.0;
    assert!(actual_batch < worst_batch);
    let limit = (10.0 * actual_batch).max(worst_batch * 1.2);
    assert!(
        limit < 20.0 * worst_batch,
        "the limit is below the total worst case"
    );

    let run = make(dir.path(), &h)
        .cost_limit_usd(limit)
        .run()
        .await
        .unwrap();
    let s = run.status();
    assert!(
        s.cost_used_usd <= limit + 1e-12,
        "{} > {limit}",
        s.cost_used_usd
    );
    assert!(
        s.cost_used_usd >= limit - worst_batch,
        "spent {} of {limit}: it stopped more than one batch's worst case ({worst_batch}) short",
        s.cost_used_usd
    );
    assert_eq!(s.completed + s.failed, 200);
    assert!(s.completed >= 10);
    // Only jobs that could never fit failed, and they say why.
    for r in results(dir.path()).iter().filter(|r| !r.is_success()) {
        assert_eq!(r.error.as_deref(), Some("Cost limit exceeded"));
    }
}

// 6b. A resumed run takes its batches' reservations back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_batch_keeps_its_reservation() {
    let h = Emulator::start(EmulatorConfig::new().processing_delay(Duration::from_millis(1500)))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ps = prompts(10, "reserve");
    let make = |h: &EmulatorHandle| {
        with_prompts(new_batch(dir.path(), h, "claude-haiku-4-5"), &ps, true)
            .items_per_batch(5)
            .max_parallel_batches(1)
    };
    let worst = make(&h).plan().unwrap().batches[0].worst_case_usd;
    // Stop the first run with its first batch at the provider: a refused
    // key stops it without cancelling anything.
    let run = make(&h).cost_limit_usd(worst * 1.5).start().await.unwrap();
    while run.status().batches.iter().all(|b| b.batch_id.is_none()) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    h.revoke_keys();
    assert!(matches!(run.wait().await, Err(Error::Auth(_))));
    h.restore_keys();
    let peak = Arc::new(Mutex::new(0.0f64));
    let p = peak.clone();
    let run = make(&h)
        .cost_limit_usd(worst * 1.5)
        .progress_interval(Duration::from_millis(5))
        .on_progress(move |s, _| {
            let mut m = p.lock().unwrap();
            *m = m.max(s.cost_reserved_usd);
        })
        .run()
        .await
        .unwrap();
    assert_eq!(run.status().completed, 10);
    assert!(
        *peak.lock().unwrap() > worst * 0.99,
        "the re-attached batch held its reservation"
    );
    // Never two worst cases at once under a limit of 1.5.
    assert!(*peak.lock().unwrap() < worst * 1.5);
    assert_eq!(h.stats().batches_created, 2);
}

// 7. Rate limits on create are retried in the same run, not failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_refused_for_a_passing_reason_is_tried_again() {
    let h = Emulator::start(EmulatorConfig::new().fail_first(
        Endpoint::AnthropicCreate,
        4,
        FaultKind::Status429 { retry_after_ms: 20 },
    ))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ps = prompts(5, "rate-limited");
    let run = with_prompts(new_batch(dir.path(), &h, "claude-haiku-4-5"), &ps, true)
        .run()
        .await
        .unwrap();
    let s = run.status();
    assert_eq!((s.completed, s.failed), (5, 0), "{s:?}");
    let stats = h.stats();
    assert_eq!(
        stats.calls_to("anthropic.create"),
        5,
        "3 in the first call, then 2"
    );
    assert_eq!(stats.batches_created, 1);
}

// 8. A refused key stops the run cleanly, fails no job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_stops_the_run_without_failing_a_job() {
    // At the first create.
    let h = Emulator::start(EmulatorConfig::new().api_key("the-right-key"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ps = prompts(4, "bad-key");
    let e = with_prompts(new_batch(dir.path(), &h, "claude-haiku-4-5"), &ps, true)
        .run()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Auth(_)), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("401") && !msg.contains("sk-test-faults"),
        "{msg}"
    );
    assert!(
        msg.contains("no job was marked failed") && msg.contains("No batch is in flight"),
        "{msg}"
    );
    assert!(results(dir.path()).is_empty());
    let st = StateReport::load(&dir.path().join("state.jsonl")).unwrap();
    assert_eq!(st.counts.pending, 4);

    // Mid-run, with batches in flight: they are named, and nothing more is submitted.
    let h = Emulator::start(EmulatorConfig::new().processing_delay(Duration::from_millis(600)))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ps = prompts(20, "revoked");
    let run = with_prompts(new_batch(dir.path(), &h, "gpt-4o-mini"), &ps, true)
        .items_per_batch(5)
        .max_parallel_batches(2)
        .start()
        .await
        .unwrap();
    while run
        .status()
        .batches
        .iter()
        .filter(|b| b.batch_id.is_some())
        .count()
        < 2
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    h.revoke_keys();
    let e = run.wait().await.unwrap_err();
    assert!(matches!(e, Error::Auth(_)), "{e:?}");
    let msg = e.to_string();
    let stats = h.stats();
    for b in &stats.batches {
        assert!(msg.contains(&b.id), "{msg} should name {}", b.id);
    }
    assert!(msg.contains("continue at the provider"), "{msg}");
    assert!(
        stats.batches_created <= 3,
        "nothing more submitted: {}",
        stats.batches_created
    );
    assert!(results(dir.path())
        .iter()
        .all(|r| r.outcome() != JobOutcome::Failed));
    // With the key back, a plain rerun collects everything without paying twice.
    h.restore_keys();
    let run = with_prompts(new_batch(dir.path(), &h, "gpt-4o-mini"), &ps, true)
        .items_per_batch(5)
        .run()
        .await
        .unwrap();
    assert_eq!(run.status().completed, 20);
    assert_eq!(h.stats().batches_created, 4);
    assert_eq!(h.stats().requests_resubmitted, 0);
}

// 9. File paths are stored absolute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_paths_are_stored_absolute() {
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("doc.txt");
    std::fs::write(&doc, "The sky is blue.").unwrap();
    // The same file by a path relative to this process's folder.
    let cwd = std::env::current_dir().unwrap();
    let depth = cwd.components().count() - 1;
    let relative: std::path::PathBuf = std::iter::repeat_n("..", depth)
        .collect::<std::path::PathBuf>()
        .join(doc.strip_prefix("/").unwrap());
    assert!(relative.is_relative() && relative.is_file());
    let h = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let mut b = new_batch(dir.path(), &h, "claude-haiku-4-5");
    b.add_job(Job::file(&relative, "What colour is the sky?").id("f1"))
        .unwrap();
    let run = b.run().await.unwrap();
    assert_eq!(run.status().completed, 1);
    // The job as the state recorded it: no public shape, so the hidden internals.
    let mut st = batchata::internals::StateStore::inspect(&dir.path().join("state.jsonl")).unwrap();
    let jobs = st.load_jobs(&["f1".into()]).unwrap();
    let stored = jobs[0].file.clone().unwrap();
    assert!(stored.is_absolute(), "{}", stored.display());
    assert_eq!(stored, std::fs::canonicalize(&doc).unwrap());
}

// 10. A result that cannot be written is never journaled done; a rerun collects it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_result_stops_the_run_and_a_rerun_collects_it_unpaid() {
    unwritable_results_are_collected_by_a_rerun(3, &["q001"]).await;
}

// The same with groups large enough to be split between the writer and its
// helper thread: q040 falls in the writer's half of the first group of 128
// results, q100 in the helper's. Neither side's failure is lost, alone or
// together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwritable_results_on_either_writing_thread_stop_the_run_and_a_rerun_collects_them() {
    for blocked in [&["q040"][..], &["q100"], &["q040", "q100"]] {
        unwritable_results_are_collected_by_a_rerun(300, blocked).await;
    }
}

async fn unwritable_results_are_collected_by_a_rerun(n: usize, blocked: &[&str]) {
    let h = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ps = prompts(n, "unwritable");
    // Folders where result files must go.
    for id in blocked {
        std::fs::create_dir_all(dir.path().join("results").join(format!("{id}.json"))).unwrap();
    }
    // One provider batch: its results come in groups of 128.
    let batch = |dir: &Path| {
        with_prompts(new_batch(dir, &h, "claude-haiku-4-5"), &ps, true).items_per_batch(n)
    };
    let run = batch(dir.path()).start().await.unwrap();
    // Every waiter gets the error itself: our trouble, not the provider's.
    let other = run.clone();
    let (a, b) = tokio::join!(run.wait(), other.wait());
    for e in [a.unwrap_err(), b.unwrap_err()] {
        assert!(matches!(e, Error::Incomplete(_)), "{e:?}");
        assert!(e.to_string().contains("rerun"), "{e}");
    }
    let st = StateReport::load(&dir.path().join("state.jsonl")).unwrap();
    assert_eq!(st.counts.failed, 0);
    assert!(st.counts.completed < n);
    for id in blocked {
        let p = dir.path().join("results").join(format!("{id}.json"));
        assert!(p.is_dir(), "{id}: left as it was");
        std::fs::remove_dir(p).unwrap();
    }
    // Every job the state holds done has its result on disk.
    let on_disk = results(dir.path()).len();
    assert!(
        on_disk >= st.counts.completed,
        "{on_disk} files, {} done",
        st.counts.completed
    );
    let run = batch(dir.path()).run().await.unwrap();
    assert_eq!(run.status().completed, n);
    assert_eq!(h.stats().batches_created, 1, "collected, not paid again");
    let rs = results(dir.path());
    assert_eq!(rs.len(), n);
    for (i, r) in rs.iter().enumerate() {
        assert!(answers_its_own_prompt(r, &ps[i]));
    }
}

// The library behaves as a library: no signal handler or logger unless
// asked, and run_blocking inside a runtime is an error, not a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_blocking_inside_a_runtime_is_an_error_and_defaults_install_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Batch::new(dir.path().join("results"))
        .default_params(DefaultParams::new().model("claude-haiku-4-5"));
    b.add_job(Job::prompt("hi")).unwrap();
    let e = b.run_blocking().unwrap_err();
    assert!(
        matches!(e, Error::Validation(_)) && e.to_string().contains("run().await"),
        "{e}"
    );
    assert!(!dir.path().join("results").exists(), "nothing was started");
    // The library emits `tracing` events and installs no subscriber of
    // its own: no global one exists in a process that only uses it.
    assert!(!tracing::dispatcher::has_been_set());
}
