//! Isolation of requests a provider refuses for what they hold (issue 15,
//! point 7): the provider rejects the whole batch, the engine splits it in
//! halves until each refused request is alone, the good jobs complete and
//! each refused one fails with the provider's words. The real engine runs
//! against the emulator over loopback; a request holding the emulator's
//! reject marker is one the provider refuses, in each provider's shape
//! (Anthropic and Gemini: a 400 answer to the create; OpenAI: the batch
//! fails in validation with the bad lines in `errors`).
//!
//! The numbers asserted, for 10 jobs in one planned batch with the refused
//! one at position 6: the halves are [0-4] [5-9], then [5,6] [7,8,9], then
//! [5] [6] — 7 create calls, within 1 + 2·⌈log2 10⌉ = 9. Anthropic and
//! Gemini create nothing when they refuse, so 3 batches exist; OpenAI
//! creates the 4 batches it then fails, so 7 exist. Every request is in
//! exactly one batch that ran, and a batch refused in validation submits
//! nothing: `requests_resubmitted` is 0 everywhere.

use std::path::Path;
use std::time::Duration;

use batchata::providers::{ProviderConfig, ProviderSettings};
use batchata::{Batch, BatchPhase, DefaultParams, Job, JobResult, ProviderKind, RunStatus};
use batchata_emulator::{Emulator, EmulatorConfig, EmulatorHandle, REJECT_MARKER};

const PROVIDERS: [(&str, &str); 3] = [
    ("claude-haiku-4-5", "anthropic.create"),
    ("gpt-4o-mini", "openai.batches.create"),
    ("gemini-2.5-flash", "gemini.create"),
];

fn settings(h: &EmulatorHandle) -> ProviderSettings {
    let cfg = |url: String| {
        ProviderConfig::default()
            .api_key("sk-test-isolation")
            .base_url(url)
            .poll_interval(Duration::from_millis(30))
    };
    ProviderSettings::default()
        .anthropic(|_| cfg(h.anthropic_base_url()))
        .openai(|_| cfg(h.openai_base_url()))
        .gemini(|_| cfg(h.gemini_base_url()))
}

/// Runs `n` prompt jobs `q000`.. with the marker in those at `bad`; the
/// run's final status.
async fn run(dir: &Path, h: &EmulatorHandle, model: &str, n: usize, bad: &[usize]) -> RunStatus {
    let mut b = Batch::new(dir.join("results"))
        .state_file(dir.join("state.jsonl"))
        .providers(settings(h))
        .handle_interrupts(false)
        .default_params(DefaultParams::new().model(model).max_tokens(64));
    for i in 0..n {
        let p = if bad.contains(&i) {
            format!("question {i}: {REJECT_MARKER}")
        } else {
            format!("question {i}")
        };
        b.add_job(Job::prompt(p).id(format!("q{i:03}"))).unwrap();
    }
    b.run().await.unwrap().wait().await.unwrap()
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

fn creates_bound(n: usize, bad: usize) -> u64 {
    1 + 2 * bad as u64 * (n as f64).log2().ceil() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_refused_request_among_ten_fails_alone() {
    for (model, create) in PROVIDERS {
        let h = Emulator::start(EmulatorConfig::new()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let status = run(dir.path(), &h, model, 10, &[6]).await;
        let res = results(dir.path());
        assert_eq!(res.len(), 10, "{model}");
        // The status rows: every batch of the split under the provider that
        // refused it, each counted finished once; the four refused ones
        // ([10] [5-9] [5,6] [6]) rejected, the three that ran collected.
        let provider = match model {
            m if m.starts_with("claude") => ProviderKind::Anthropic,
            m if m.starts_with("gpt") => ProviderKind::OpenAi,
            _ => ProviderKind::Gemini,
        };
        assert_eq!(status.batches.len(), 7, "{model}");
        assert_eq!(
            (
                status.batches_total,
                status.batches_completed,
                status.batches_pending
            ),
            (7, 7, 0),
            "{model}"
        );
        for b in &status.batches {
            assert_eq!(b.provider, provider, "{model}: {b:?}");
            assert!(b.finished, "{model}: {b:?}");
            match b.phase {
                BatchPhase::Rejected => assert_eq!(b.status, "rejected"),
                BatchPhase::Collected => assert_eq!(b.done, b.total, "{model}: {b:?}"),
                other => panic!("{model}: batch {} ended {other:?}", b.index),
            }
        }
        let rejected: Vec<usize> = status
            .batches
            .iter()
            .filter(|b| b.phase == BatchPhase::Rejected)
            .map(|b| b.total)
            .collect();
        assert_eq!(rejected, [10, 5, 2, 1], "{model}");
        for (i, r) in res.iter().enumerate() {
            if i == 6 {
                let e = r.error.as_deref().unwrap_or_default();
                assert!(r.error.is_some(), "{model}: {r:?}");
                assert!(
                    e.contains("q006") && e.contains("could not be processed"),
                    "{model}: the provider's words: {e}"
                );
            } else {
                assert!(r.is_success(), "{model} {}: {:?}", r.job_id, r.error);
                let text = r.raw_response.as_deref().unwrap_or_default();
                assert!(text.contains(&format!("question {i}")), "{model}: {text}");
            }
        }
        let stats = h.stats();
        let calls = stats.calls_to(create);
        assert_eq!(calls, 7, "{model}: [10] [5] [5] [2] [3] [1] [1]");
        assert!(calls <= creates_bound(10, 1), "{model}");
        let expected_batches = if model.starts_with("gpt") { 7 } else { 3 };
        assert_eq!(stats.batches_created, expected_batches, "{model}");
        assert_eq!(stats.requests_resubmitted, 0, "{model}");
        // The state knows the refused batches as ended: a rerun submits nothing.
        run(dir.path(), &h, model, 10, &[6]).await;
        assert_eq!(
            h.stats().calls_to(create),
            7,
            "{model}: nothing resubmitted"
        );
        h.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_refused_requests_are_both_isolated() {
    for (model, create) in PROVIDERS {
        let h = Emulator::start(EmulatorConfig::new()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        run(dir.path(), &h, model, 10, &[2, 7]).await;
        let res = results(dir.path());
        let failed: Vec<&str> = res
            .iter()
            .filter(|r| r.error.is_some())
            .map(|r| r.job_id.as_str())
            .collect();
        assert_eq!(failed, ["q002", "q007"], "{model}");
        assert_eq!(res.iter().filter(|r| r.is_success()).count(), 8, "{model}");
        let stats = h.stats();
        // [10] → [0-4] [5-9] → [0,1] [2,3,4] / [5,6] [7,8,9] → [2] [3,4] /
        // [7] [8,9]: 11 calls, within 1 + 2·2·⌈log2 10⌉ = 17.
        assert_eq!(stats.calls_to(create), 11, "{model}");
        assert!(stats.calls_to(create) <= creates_bound(10, 2));
        assert_eq!(stats.requests_resubmitted, 0, "{model}");
        h.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_alone_fails_at_once() {
    for (model, create) in PROVIDERS {
        let h = Emulator::start(EmulatorConfig::new()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        run(dir.path(), &h, model, 1, &[0]).await;
        let res = results(dir.path());
        assert_eq!(res.len(), 1);
        assert!(res[0].error.is_some(), "{model}");
        assert!(
            res[0]
                .error
                .as_deref()
                .unwrap_or_default()
                .contains("the provider refused this request"),
            "{model}: {:?}",
            res[0].error
        );
        assert_eq!(h.stats().calls_to(create), 1, "{model}: no split");
        h.shutdown().await;
    }
}
