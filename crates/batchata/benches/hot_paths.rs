//! Micro-benchmarks of the stages every job passes through, at the scale of a
//! 100,000-job run: adding and validating jobs, building provider request
//! bodies, parsing result lines, appending state events, writing result files.
//!
//! They exist to catch per-job costs that grow with the run (the Python
//! library's quadratic bookkeeping is the cautionary tale): throughput is
//! declared per job, so criterion reports a per-job time that should stay
//! flat as the run grows. `state_append` shows it directly: the cost of one
//! event with 10k, 100k and 1M events already in the journal.
//!
//! Run: `cargo bench -p batchata --bench hot_paths` (bench/harness.py runs it
//! and copies the medians into bench/RESULTS.md).

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use batchata::catalog::{Catalog, ModelInfo};
// Request building, result parsing and the state journal have no public
// shape: the crate exposes them to this benchmark as hidden internals.
use batchata::internals::{anthropic, openai, StateStore};
use batchata::{Batch, DefaultParams, Job, JobOutcome, JobResult};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const ANTHROPIC_MODEL: &str = "claude-3-5-haiku-20241022";
const OPENAI_MODEL: &str = "gpt-4.1-nano-2025-04-14";
/// Jobs in one provider batch (the run is 10 such batches).
const PER_BATCH: usize = 10_000;
/// Jobs in the run.
const RUN: usize = 100_000;

/// The same kind of prompt the end-to-end harness sends: about 1 KB.
fn prompt(i: usize) -> String {
    const WORDS: &[&str] = &[
        "river", "mountain", "ledger", "invoice", "harbour", "copper", "lantern", "orchard",
        "meadow", "signal", "quarry", "timber", "canal", "beacon", "vessel", "granite",
    ];
    let mut s = format!("Q{i}: Summarise these notes in one sentence.");
    let mut x = (i as u64).wrapping_mul(2654435761).wrapping_add(12345);
    while s.len() < 1000 {
        x = x.wrapping_mul(1103515245).wrapping_add(12345) & 0x7fff_ffff;
        s.push(' ');
        s.push_str(WORDS[(x as usize) % WORDS.len()]);
    }
    s
}

fn jobs(model: &str, n: usize) -> Vec<Job> {
    (0..n)
        .map(|i| {
            Job::prompt(prompt(i))
                .id(format!("j{i:06}"))
                .model(model)
                .max_tokens(256)
                .temperature(0.7)
        })
        .collect()
}

fn model(catalog: &Catalog, name: &str) -> Arc<ModelInfo> {
    catalog.lookup(name).expect("model in the catalog")
}

/// `Batch::add_job` for a whole run: defaults merged, shape, id, model and
/// limits checked, per job.
fn add_jobs(c: &mut Criterion) {
    let mut g = c.benchmark_group("add_job");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Elements(RUN as u64));
    let prompts: Vec<String> = (0..RUN).map(prompt).collect();
    let dir = tempfile::tempdir().unwrap();
    g.bench_function("100k_prompts", |b| {
        b.iter_batched(
            || {
                let batch = Batch::new(dir.path())
                    .default_params(DefaultParams::new().model(ANTHROPIC_MODEL).max_tokens(256));
                (batch, prompts.clone())
            },
            |(mut batch, prompts)| {
                for p in prompts {
                    black_box(batch.add_job(Job::prompt(p)).unwrap());
                }
                batch
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// Request bodies for a 100k run, one provider batch of 10k at a time.
fn request_bodies(c: &mut Criterion) {
    let catalog = Catalog::builtin().clone();
    let mut g = c.benchmark_group("request_body");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Elements(RUN as u64));

    let a_jobs = jobs(ANTHROPIC_MODEL, RUN);
    let a_model = model(&catalog, ANTHROPIC_MODEL);
    g.bench_function("anthropic_100k", |b| {
        b.iter(|| {
            let mut bytes = 0;
            for chunk in a_jobs.chunks(PER_BATCH) {
                let body = anthropic::build_body(chunk, |_| Ok(a_model.clone())).unwrap();
                bytes += body.len();
            }
            black_box(bytes)
        })
    });

    let o_jobs = jobs(OPENAI_MODEL, RUN);
    let o_model = model(&catalog, OPENAI_MODEL);
    g.bench_function("openai_100k", |b| {
        b.iter(|| {
            let mut bytes = 0;
            for chunk in o_jobs.chunks(PER_BATCH) {
                let mut builder = openai::LineBuilder::new(o_model.clone());
                let mut out = Vec::with_capacity(chunk.len() * 1200);
                for job in chunk {
                    builder.write_line(job, &mut out).unwrap();
                }
                bytes += out.len();
            }
            black_box(bytes)
        })
    });
    g.finish();
}

fn anthropic_line(i: usize) -> String {
    format!(
        r#"{{"custom_id":"j{i:06}","result":{{"message":{{"content":[{{"text":"Echo: Q{i} river mountain ledger invoice harbour copper lantern orchard #5ff1bbdd","type":"text"}}],"id":"msg_01jeRYifnzV501JkLVHKOjQG","model":"claude-3-5-haiku-latest","role":"assistant","stop_reason":"end_turn","stop_sequence":null,"type":"message","usage":{{"cache_creation":{{"ephemeral_1h_input_tokens":0,"ephemeral_5m_input_tokens":0}},"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"input_tokens":269,"output_tokens":24,"service_tier":"batch"}}}},"type":"succeeded"}}}}"#
    )
}

fn openai_line(i: usize) -> String {
    format!(
        r#"{{"custom_id":"j{i:06}","error":null,"id":"batch_req_d95cd1d965f7dff2c401a0a1bf0a0b26","response":{{"body":{{"choices":[{{"finish_reason":"stop","index":0,"logprobs":null,"message":{{"annotations":[],"content":"Echo: Q{i} river mountain ledger invoice harbour copper lantern orchard #3251d443","refusal":null,"role":"assistant"}}}}],"created":1795887660,"id":"chatcmpl-HoUF5z3oE8YvvOVb4IqzpwHg5Ej68","model":"gpt-4.1-nano-2025-04-14","object":"chat.completion","service_tier":"default","system_fingerprint":null,"usage":{{"completion_tokens":24,"completion_tokens_details":{{"accepted_prediction_tokens":0,"audio_tokens":0,"reasoning_tokens":0,"rejected_prediction_tokens":0}},"prompt_tokens":269,"prompt_tokens_details":{{"audio_tokens":0,"cached_tokens":0}},"total_tokens":293}}}},"request_id":"d1e5c6e7fae8dd5fd54fc20991713a0c","status_code":200}}}}"#
    )
}

/// Result lines as the emulator serves them, parsed into `JobResult`s.
fn result_lines(c: &mut Criterion) {
    let catalog = Catalog::builtin().clone();
    let mut g = c.benchmark_group("parse_result_line");
    g.sample_size(10).measurement_time(Duration::from_secs(6));
    g.throughput(Throughput::Elements(RUN as u64));

    // Jobs as the engine keeps them while collecting: without their prompts.
    let strip = |mut j: Job| {
        j.prompt = None;
        j
    };
    let a_jobs: Vec<Job> = jobs(ANTHROPIC_MODEL, RUN).into_iter().map(strip).collect();
    let a_model = model(&catalog, ANTHROPIC_MODEL);
    let a_lines: Vec<String> = (0..RUN).map(anthropic_line).collect();
    g.bench_function("anthropic_100k", |b| {
        b.iter(|| {
            let mut cost = 0.0;
            for (line, job) in a_lines.iter().zip(&a_jobs) {
                let parsed: anthropic::ResultLine = serde_json::from_str(line).unwrap();
                let r = anthropic::line_result(parsed.result, job, &a_model, "msgbatch_1");
                cost += r.cost_usd;
            }
            black_box(cost)
        })
    });

    let o_jobs: Vec<Job> = jobs(OPENAI_MODEL, RUN).into_iter().map(strip).collect();
    let o_model = model(&catalog, OPENAI_MODEL);
    let o_lines: Vec<String> = (0..RUN).map(openai_line).collect();
    g.bench_function("openai_100k", |b| {
        b.iter(|| {
            let mut cost = 0.0;
            for (line, job) in o_lines.iter().zip(&o_jobs) {
                let parsed: openai::OutputLine = serde_json::from_str(line).unwrap();
                let r = openai::line_result(parsed, job, &o_model, "batch_1");
                cost += r.cost_usd;
            }
            black_box(cost)
        })
    });
    g.finish();
}

/// A journal holding `existing` jobs, each with its `done` event.
fn journal(dir: &Path, existing: usize) -> StateStore {
    let mut s = StateStore::create(&dir.join("state.jsonl"), "run_bench", dir).unwrap();
    for i in 0..existing {
        s.add_job(
            &Job::prompt("p")
                .id(format!("j{i:07}"))
                .model(ANTHROPIC_MODEL),
        )
        .unwrap();
    }
    for i in 0..existing {
        s.record_done(&format!("j{i:07}"), JobOutcome::Completed, 0.0001, false)
            .unwrap();
    }
    s.sync().unwrap();
    s
}

/// One `done` event appended (and applied to the in-memory state) with 10k,
/// 100k and 1M events already recorded: the per-event cost must not grow.
fn state_append(c: &mut Criterion) {
    let mut g = c.benchmark_group("state_append");
    g.sample_size(20).measurement_time(Duration::from_secs(4));
    const EVENTS: usize = 1000;
    g.throughput(Throughput::Elements(EVENTS as u64));
    for existing in [10_000usize, 100_000, 1_000_000] {
        let dir = tempfile::tempdir().unwrap();
        let mut s = journal(dir.path(), existing);
        let ids: Vec<String> = (0..existing).map(|i| format!("j{i:07}")).collect();
        let mut next = 0usize;
        g.bench_function(format!("done_with_{}k_existing", existing / 1000), |b| {
            b.iter(|| {
                for _ in 0..EVENTS {
                    let id = &ids[next % ids.len()];
                    next += 1;
                    s.record_done(id, JobOutcome::Failed, 0.0, false).unwrap();
                }
                // The engine syncs once per batch of results.
                s.sync().unwrap();
            })
        });
    }
    g.finish();
}

/// `{job_id}.json` result files written the way the engine writes them.
fn result_files(c: &mut Criterion) {
    let mut g = c.benchmark_group("write_result_file");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    const FILES: usize = 10_000;
    g.throughput(Throughput::Elements(FILES as u64));
    let results: Vec<JobResult> = (0..FILES)
        .map(|i| JobResult {
            job_id: format!("j{i:06}"),
            raw_response: Some(format!(
                "Echo: Q{i} river mountain ledger invoice harbour copper lantern orchard #5ff1bbdd"
            )),
            input_tokens: 269,
            output_tokens: 24,
            cost_usd: 0.000156,
            batch_id: Some("msgbatch_01jeRYifnzV501JkLVHKOjQG".into()),
            ..Default::default()
        })
        .collect();
    let root = tempfile::tempdir().unwrap();
    let mut round = 0usize;
    g.bench_function("10k_files", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                // A fresh folder per round, as each run has its own; the
                // folders are kept to the end: deleting 10k files just before
                // creating 10k more slows ext4's inode allocation for ~30 s.
                round += 1;
                let dir = root.path().join(format!("r{round}"));
                std::fs::create_dir(&dir).unwrap();
                let t = Instant::now();
                for r in &results {
                    r.save_to_json(dir.join(format!("{}.json", r.job_id)))
                        .unwrap();
                }
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    add_jobs,
    request_bodies,
    result_lines,
    state_append,
    result_files
);
criterion_main!(benches);
