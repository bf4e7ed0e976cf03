//! The run engine: submits planned batches within the concurrency and cost
//! limits, polls them, collects their results into files and state, and
//! stops cleanly on an interrupt or the time limit.
//!
//! Durability points, in order, for every batch: the intent (jobs, run id,
//! index) is fsynced before the create call; the provider batch id is
//! fsynced the moment it is known; result files are written (atomically)
//! before the job's `done` line, and the lines are fsynced when the batch
//! ends. A crash anywhere leaves a state from which a rerun re-attaches to
//! every batch the provider accepted — it never submits one twice.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::{lock, BatchProgress, BatchRun, ProgressCallback, RunInner, RunStatus, StopReason};
use crate::batch::{Batch, BatchParams};
use crate::catalog::{Catalog, ProviderKind};
use crate::cost::CostTracker;
use crate::error::{Error, Result};
use crate::job::Job;
use crate::providers::{
    create_provider, BatchProbe, BatchRequest, Provider, ProviderSettings, ResultsContext,
};
use crate::result::{
    JobOutcome, JobResult, CANCELLED_BY_USER, COST_LIMIT_EXCEEDED, TIME_LIMIT_EXCEEDED,
};
use crate::state::{JobId, JobStatus, StateStore};

/// How long to keep polling a batch after asking the provider to cancel it.
const CANCEL_GRACE: Duration = Duration::from_secs(120);
/// Attempts to download a finished batch's results before leaving them to a rerun.
const COLLECT_ATTEMPTS: u32 = 5;

struct Shared {
    params: BatchParams,
    catalog: Arc<Catalog>,
    state: Mutex<StateStore>,
    cost: Arc<CostTracker>,
    run: Arc<RunInner>,
    raw_dir: Option<PathBuf>,
    providers: HashMap<ProviderKind, Arc<dyn Provider>>,
    semaphore: Semaphore,
    /// Held from a batch's intent until its provider id is recorded, so at
    /// most one create call is ever unaccounted for after a crash: finding
    /// it again by time and size (Anthropic has no batch metadata) is then
    /// unambiguous.
    create_lock: tokio::sync::Mutex<()>,
    /// Held while a batch's results are collected. Collecting is CPU and
    /// disk work (parse, write a file per job) that gains nothing from
    /// overlapping on a small machine, and each collection holds its
    /// batch's job records: one at a time keeps memory flat however many
    /// batches end together (all of them, against the emulator).
    collect_lock: tokio::sync::Mutex<()>,
    batch_pos: Mutex<HashMap<usize, usize>>,
}

enum Work {
    New {
        index: usize,
        jobs: Vec<JobId>,
    },
    Attach {
        index: usize,
        batch_id: String,
        jobs: Vec<JobId>,
    },
}

pub(super) async fn start(batch: Batch) -> Result<BatchRun> {
    let Batch {
        params,
        jobs,
        catalog,
        progress,
        handle_ctrl_c,
        user_ids,
        ..
    } = batch;
    // The ids are in the spool and soon in the state; this set was only for
    // refusing duplicates while jobs were added.
    drop(user_ids);
    init_logging(params.verbosity);
    let results_dir = params.results_dir.clone();
    std::fs::create_dir_all(&results_dir)
        .map_err(|e| Error::io("create the results folder", &results_dir, e))?;
    let raw_dir = params.raw_files.then(|| results_dir.join("raw_files"));
    remove_stale_temp_files(&results_dir);

    // The state: the user's file, or a temporary one removed when the run ends.
    let (state_path, temp_state) = match &params.state_file {
        Some(p) => (p.clone(), None),
        None => {
            let tmp = tempfile::Builder::new()
                .prefix("batchata-state-")
                .suffix(".jsonl")
                .tempfile()
                .map_err(|e| Error::State(format!("cannot create a temporary state file: {e}")))?
                .into_temp_path();
            (tmp.to_path_buf(), Some(tmp))
        }
    };
    let resume = temp_state.is_none() && params.reuse_state && state_path.exists();
    let mut store = if resume {
        let s = StateStore::open(&state_path)?;
        tracing::info!(run_id = %s.run_id, state = %state_path.display(), "resuming");
        s
    } else {
        if temp_state.is_none() && state_path.exists() {
            remove_previous_outputs(&state_path, &results_dir);
        }
        StateStore::create(&state_path, &new_run_id(), &results_dir)?
    };
    let mut added = 0usize;
    store.reserve_jobs(jobs.len().saturating_sub(store.jobs.len()));
    for job in jobs.iter()? {
        let job = job?;
        if !store.jobs.contains_key(job.id_str()) {
            store.add_job(&job)?;
            added += 1;
        }
    }
    drop(jobs);
    if resume && added > 0 {
        tracing::info!(added, "jobs not in the state were added to it");
    }
    // Jobs that never ran (cancelled, time or cost limit) run again; failed
    // ones only when asked.
    let to_reset: Vec<JobId> = store
        .order
        .iter()
        .filter(|id| {
            store.jobs.get(*id).is_some_and(|j| match j.status {
                JobStatus::Done(JobOutcome::Failed) => j.rerun || params.retry_failed,
                JobStatus::Done(JobOutcome::Cancelled) => true,
                JobStatus::InBatch(b) => store
                    .batches
                    .get(b as usize)
                    .is_some_and(|r| r.ended.is_some()),
                _ => false,
            })
        })
        .cloned()
        .collect();
    for id in &to_reset {
        store.reset_job(id)?;
    }
    store.sync()?;

    // Clients for every provider the run needs, before anything is submitted.
    let mut kinds: HashSet<ProviderKind> = store
        .batches
        .iter()
        .filter(|b| b.ended.is_none())
        .map(|b| b.provider)
        .collect();
    let mut seen_models: HashSet<&str> = HashSet::new();
    for e in store.jobs.values() {
        if e.status == JobStatus::Pending && seen_models.insert(store.model_of(e)) {
            let m = catalog.lookup(store.model_of(e))?;
            kinds.insert(m.provider);
        }
    }
    let mut providers: HashMap<ProviderKind, Arc<dyn Provider>> = HashMap::new();
    for kind in kinds {
        providers.insert(
            kind,
            create_provider(kind, params.providers.get(kind), catalog.clone())?,
        );
    }

    let counts = store.counts();
    let cost = Arc::new(CostTracker::new(params.cost_limit_usd, store.cost_used()));
    let (stop_tx, _) = watch::channel(None);
    let (done_tx, _) = watch::channel(None);
    let inner = Arc::new(RunInner {
        status: Mutex::new(RunStatus {
            total: counts.total,
            pending: counts.pending + counts.running,
            completed: counts.completed,
            failed: counts.failed,
            cancelled: counts.cancelled,
            cost_used_usd: store.cost_used(),
            cost_limit_usd: params.cost_limit_usd,
            ..Default::default()
        }),
        stop: stop_tx,
        done: done_tx,
        results_dir: results_dir.clone(),
        state_file: Mutex::new(params.state_file.clone()),
        run_id: Mutex::new(store.run_id.clone()),
        started: Instant::now(),
        cost: cost.clone(),
    });
    let shared = Arc::new(Shared {
        semaphore: Semaphore::new(params.max_parallel_batches),
        create_lock: tokio::sync::Mutex::new(()),
        collect_lock: tokio::sync::Mutex::new(()),
        params,
        catalog,
        state: Mutex::new(store),
        cost,
        run: inner.clone(),
        raw_dir,
        providers,
        batch_pos: Mutex::new(HashMap::new()),
    });
    let run = BatchRun { inner };

    if handle_ctrl_c {
        let r = run.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\nInterrupted: submitting nothing new and cancelling active batches (press Ctrl+C again to exit at once; state is saved).");
                r.shutdown(false);
                if tokio::signal::ctrl_c().await.is_ok() {
                    eprintln!("Exiting now. Rerun with the same state file to re-attach to batches still at the provider.");
                    std::process::exit(130);
                }
            }
        });
    }
    if let Some(limit) = shared.params.time_limit {
        let r = run.clone();
        tokio::spawn(async move {
            tokio::time::sleep(limit).await;
            r.inner.stop.send_if_modified(|cur| {
                if matches!(cur, None | Some(StopReason::Drain)) {
                    *cur = Some(StopReason::TimeLimit);
                    true
                } else {
                    false
                }
            });
        });
    }
    if let Some(cb) = progress {
        spawn_progress(run.clone(), cb, shared.params.progress_interval);
    }

    let sh = shared.clone();
    tokio::spawn(async move {
        let outcome = drive(sh.clone()).await;
        if let Err(e) = &outcome {
            tracing::error!(error = %e, "run failed");
        }
        {
            let mut st = lock(&sh.state);
            if let Err(e) = st.sync() {
                tracing::error!(error = %e, "final state sync failed");
            }
        }
        {
            let mut s = lock(&sh.run.status);
            s.is_complete = true;
            s.cost_used_usd = sh.cost.used();
            s.cost_reserved_usd = sh.cost.reserved();
            s.stop_reason = *sh.run.stop.borrow();
        }
        if temp_state.is_some() {
            *lock(&sh.run.state_file) = None;
        }
        drop(temp_state);
        sh.run
            .done
            .send_replace(Some(outcome.map_err(|e| e.to_string())));
    });
    Ok(run)
}

/// A process killed mid-write leaves its temp file behind (results are
/// written to a temp file, then renamed); only ours are removed.
fn remove_stale_temp_files(results_dir: &Path) {
    let dirs = [
        results_dir.to_path_buf(),
        results_dir.join("raw_files").join("responses"),
        results_dir.join("raw_files").join("requests"),
    ];
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(".batchata-") && name.ends_with(".tmp") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Logs go to stderr at the run's verbosity — unless the application has
/// installed its own `tracing` subscriber, which then decides.
fn init_logging(v: crate::batch::Verbosity) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BATCHATA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("batchata={}", v.as_str())));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn spawn_progress(run: BatchRun, cb: ProgressCallback, every: Duration) {
    tokio::spawn(async move {
        let mut done = run.inner.done.subscribe();
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => cb(&run.status(), run.elapsed()),
                _ = done.changed() => {
                    cb(&run.status(), run.elapsed());
                    return;
                }
            }
        }
    });
}

fn new_run_id() -> String {
    format!(
        "run_{}_{:08x}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S"),
        fastrand::u32(..)
    )
}

/// A fresh run over an old state removes what that run wrote — its result
/// and raw files — and nothing else.
fn remove_previous_outputs(state_path: &Path, results_dir: &Path) {
    let Ok(old) = StateStore::inspect(state_path) else {
        tracing::warn!(state = %state_path.display(), "previous state unreadable; its outputs are left in place");
        return;
    };
    let raw = results_dir.join("raw_files");
    for id in &old.order {
        let _ = std::fs::remove_file(results_dir.join(format!("{id}.json")));
        let _ = std::fs::remove_file(raw.join("responses").join(format!("{id}_raw.json")));
    }
    for b in &old.batches {
        if let Some(bid) = &b.batch_id {
            for sub in ["requests", "responses", "errors"] {
                for ext in ["json", "jsonl"] {
                    let _ = std::fs::remove_file(
                        raw.join(sub)
                            .join(format!("{}_batch_{bid}.{ext}", b.provider)),
                    );
                }
            }
        }
    }
}

fn stop_reason(sh: &Shared) -> Option<StopReason> {
    *sh.run.stop.borrow()
}

async fn drive(sh: Arc<Shared>) -> Result<()> {
    // Batches the journal knows: re-attach those the provider accepted, look
    // for those whose create call may have gone through unrecorded.
    let (inflight, orphans, run_id) = {
        let st = lock(&sh.state);
        let inflight: Vec<_> = st
            .batches
            .iter()
            .filter(|b| b.ended.is_none() && b.batch_id.is_some())
            .cloned()
            .collect();
        let orphans: Vec<_> = st
            .batches
            .iter()
            .filter(|b| b.ended.is_none() && b.batch_id.is_none())
            .cloned()
            .collect();
        (inflight, orphans, st.run_id.clone())
    };
    let mut work: Vec<Work> = Vec::new();
    for b in inflight {
        let open: Vec<JobId> = {
            let st = lock(&sh.state);
            b.jobs
                .iter()
                .filter(|j| {
                    st.jobs
                        .get(*j)
                        .is_some_and(|e| e.status == JobStatus::in_batch(b.index))
                })
                .cloned()
                .collect()
        };
        work.push(Work::Attach {
            index: b.index,
            batch_id: b.batch_id.clone().unwrap_or_default(),
            jobs: open,
        });
    }
    for b in orphans {
        let provider = provider_for(&sh, b.provider)?;
        let known: Vec<String> = lock(&sh.state)
            .batches
            .iter()
            .filter_map(|x| x.batch_id.clone())
            .collect();
        let found = provider
            .find_batch(BatchProbe {
                run_id: &run_id,
                batch_index: b.index,
                request_count: b.jobs.len(),
                intent_at: b.intent_at,
                known_ids: &known,
            })
            .await;
        match found {
            Ok(Some(batch_id)) => {
                tracing::info!(batch = b.index, %batch_id, "adopted a batch created before the crash");
                lock(&sh.state).record_submitted(b.index, &batch_id)?;
                work.push(Work::Attach { index: b.index, batch_id, jobs: b.jobs.clone() });
            }
            Ok(None) => {
                let mut st = lock(&sh.state);
                st.record_batch_ended(b.index, "absent")?;
                for id in &b.jobs {
                    st.reset_job(id)?;
                }
                st.sync()?;
            }
            Err(e) => {
                return Err(Error::State(format!(
                    "batch {} of the previous run may exist at {} but could not be looked up ({e}); rerun later so it is not submitted twice",
                    b.index, b.provider
                )))
            }
        }
    }
    let (planned, first_index) = {
        let st = lock(&sh.state);
        (
            super::plan::plan(&st, &sh.catalog, sh.params.items_per_batch)?,
            st.batches.len(),
        )
    };
    for (i, p) in planned.into_iter().enumerate() {
        work.push(Work::New {
            index: first_index + i,
            jobs: p.jobs,
        });
    }
    {
        let mut s = lock(&sh.run.status);
        let mut pos = lock(&sh.batch_pos);
        for w in &work {
            let (index, n, bid) = match w {
                Work::New { index, jobs } => (*index, jobs.len(), None),
                Work::Attach {
                    index,
                    batch_id,
                    jobs,
                    ..
                } => (*index, jobs.len(), Some(batch_id.clone())),
            };
            pos.insert(index, s.batches.len());
            s.batches.push(BatchProgress {
                index,
                provider: ProviderKind::Anthropic,
                batch_id: bid,
                status: "queued".into(),
                total: n,
                done: 0,
                cost_usd: 0.0,
                finished: false,
            });
        }
        s.batches_total = work.len();
        s.batches_pending = work.len();
    }
    let mut set = JoinSet::new();
    for w in work {
        let sh = sh.clone();
        set.spawn(async move {
            let index = match &w {
                Work::New { index, .. } | Work::Attach { index, .. } => *index,
            };
            if let Err(e) = run_work(&sh, w).await {
                tracing::error!(batch = index, error = %e, "batch failed");
            }
            finish_batch_progress(&sh, index);
        });
    }
    while let Some(r) = set.join_next().await {
        if let Err(e) = r {
            tracing::error!(error = %e, "a batch task panicked");
        }
    }
    Ok(())
}

fn provider_for(sh: &Shared, kind: ProviderKind) -> Result<Arc<dyn Provider>> {
    sh.providers
        .get(&kind)
        .cloned()
        .ok_or_else(|| Error::ProviderNotFound(format!("no client for {kind}")))
}

fn set_batch(sh: &Shared, index: usize, f: impl FnOnce(&mut BatchProgress)) {
    let pos = lock(&sh.batch_pos).get(&index).copied();
    if let Some(p) = pos {
        let mut s = lock(&sh.run.status);
        if let Some(b) = s.batches.get_mut(p) {
            f(b);
        }
    }
}

fn finish_batch_progress(sh: &Shared, index: usize) {
    let pos = lock(&sh.batch_pos).get(&index).copied();
    let mut s = lock(&sh.run.status);
    if let Some(b) = pos.and_then(|p| s.batches.get_mut(p)) {
        if !b.finished {
            b.finished = true;
            s.batches_completed += 1;
            s.batches_pending = s.batches_pending.saturating_sub(1);
        }
    }
}

/// Records a job's end: result file first, then the journal line, then the counters.
fn finish_job(sh: &Shared, index: usize, mut result: JobResult, rerun: bool) -> Result<()> {
    let path = sh
        .params
        .results_dir
        .join(format!("{}.json", result.job_id));
    if result.batch_id.is_none() {
        result.batch_id = lock(&sh.state)
            .batches
            .get(index)
            .and_then(|b| b.batch_id.clone());
    }
    result.save_to_json(&path)?;
    let outcome = result.outcome();
    lock(&sh.state).record_done(&result.job_id, outcome, result.cost_usd, rerun)?;
    let mut s = lock(&sh.run.status);
    s.pending = s.pending.saturating_sub(1);
    match outcome {
        JobOutcome::Completed => s.completed += 1,
        JobOutcome::Failed => s.failed += 1,
        JobOutcome::Cancelled => s.cancelled += 1,
    }
    s.cost_used_usd += result.cost_usd;
    if let Some(p) = lock(&sh.batch_pos).get(&index).copied() {
        if let Some(b) = s.batches.get_mut(p) {
            b.done += 1;
            b.cost_usd += result.cost_usd;
        }
    }
    Ok(())
}

/// The error text for jobs that never ran because the run stopped.
fn not_run_error(reason: Option<StopReason>) -> &'static str {
    match reason {
        Some(StopReason::TimeLimit) => TIME_LIMIT_EXCEEDED,
        _ => CANCELLED_BY_USER,
    }
}

fn fail_jobs(sh: &Shared, index: usize, ids: &[JobId], error: &str, rerun: bool) -> Result<()> {
    for id in ids {
        finish_job(sh, index, JobResult::failed(id.to_string(), error), rerun)?;
    }
    Ok(())
}

async fn run_work(sh: &Arc<Shared>, work: Work) -> Result<()> {
    match work {
        Work::Attach {
            index,
            batch_id,
            jobs,
        } => {
            let provider = provider_for(sh, lock(&sh.state).batches[index].provider)?;
            set_batch(sh, index, |b| {
                b.provider = provider.kind();
                b.status = "re-attached".into();
            });
            // In flight already: it takes a slot like any other batch. Its
            // reservation died with the previous process; its actual cost is
            // added when it ends.
            let _permit = sh
                .semaphore
                .acquire()
                .await
                .map_err(|_| Error::State("scheduler closed".into()))?;
            poll_and_collect(sh, &provider, index, &batch_id, &jobs, 0.0).await
        }
        Work::New { index, jobs } => submit(sh, index, jobs).await,
    }
}

async fn submit(sh: &Arc<Shared>, index: usize, ids: Vec<JobId>) -> Result<()> {
    // Wait for a slot, unless the run is stopping.
    let mut stop_rx = sh.run.stop.subscribe();
    let permit = tokio::select! {
        p = sh.semaphore.acquire() => p.map_err(|_| Error::State("scheduler closed".into()))?,
        _ = stop_rx.wait_for(|s| s.is_some()) => {
            return fail_jobs(sh, index, &ids, not_run_error(stop_reason(sh)), true);
        }
    };
    if let Some(r) = stop_reason(sh) {
        drop(permit);
        return fail_jobs(sh, index, &ids, not_run_error(Some(r)), true);
    }
    // Batches are prepared and created one at a time: only one batch's
    // prompts and request body are in memory at once, whatever the
    // parallelism (batches still run at the provider in parallel).
    let create_guard = sh.create_lock.lock().await;
    let jobs = lock(&sh.state).load_jobs(&ids)?;
    let model = sh
        .catalog
        .lookup(jobs.first().map(|j| j.model_name()).unwrap_or(""))?;
    let provider = provider_for(sh, model.provider)?;
    set_batch(sh, index, |b| {
        b.provider = provider.kind();
        b.status = "submitting".into();
    });

    // Files that vanished since the jobs were added fail on their own.
    let present = |j: &Job| j.file.as_ref().is_none_or(|f| f.is_file());
    let (jobs, gone): (Vec<Job>, Vec<Job>) = if jobs.iter().all(present) {
        (jobs, Vec::new())
    } else {
        jobs.into_iter().partition(present)
    };
    for j in &gone {
        let f = j
            .file
            .as_ref()
            .map(|f| f.display().to_string())
            .unwrap_or_default();
        finish_job(
            sh,
            index,
            JobResult::failed(
                j.id_str(),
                format!(
                    "job '{}': file '{f}' no longer exists; restore it and rerun with retry_failed",
                    j.id_str()
                ),
            ),
            false,
        )?;
    }
    if jobs.is_empty() {
        return Ok(());
    }
    let ids: Vec<JobId> = if gone.is_empty() {
        ids
    } else {
        let gone: HashSet<&str> = gone.iter().map(|j| j.id_str()).collect();
        ids.into_iter().filter(|id| !gone.contains(&**id)).collect()
    };

    // Reserve the worst case against the limit.
    let reserved = if sh.params.cost_limit_usd.is_some() {
        provider.estimate_cost(&jobs)?.worst_case_usd
    } else {
        0.0
    };
    if !sh.cost.reserve(reserved) {
        tracing::warn!(
            batch = index,
            estimate_usd = reserved,
            "batch not submitted: it would pass the cost limit"
        );
        set_batch(sh, index, |b| b.status = "cost limit".into());
        return fail_jobs(sh, index, &ids, COST_LIMIT_EXCEEDED, true);
    }
    lock(&sh.state).record_intent(index, provider.kind(), ids.clone(), reserved)?;
    if let Some(r) = stop_reason(sh) {
        sh.cost.release(reserved);
        lock(&sh.state).record_batch_ended(index, "not_submitted")?;
        return fail_jobs(sh, index, &ids, not_run_error(Some(r)), true);
    }
    let run_id = lock(&sh.run.run_id).clone();
    let request = BatchRequest {
        jobs: &jobs,
        run_id: &run_id,
        batch_index: index,
        raw_dir: sh.raw_dir.as_deref(),
    };
    let batch_id = match provider.create_batch(request).await {
        Ok(created) => created.batch_id,
        Err(e) => {
            // The create call may have reached the provider before failing.
            let mut adopted = None;
            if matches!(
                e,
                Error::Http { status: None, .. }
                    | Error::Http {
                        status: Some(500..),
                        ..
                    }
            ) {
                let known: Vec<String> = lock(&sh.state)
                    .batches
                    .iter()
                    .filter_map(|b| b.batch_id.clone())
                    .collect();
                let intent_at = lock(&sh.state).batches[index].intent_at;
                adopted = provider
                    .find_batch(BatchProbe {
                        run_id: &run_id,
                        batch_index: index,
                        request_count: jobs.len(),
                        intent_at,
                        known_ids: &known,
                    })
                    .await
                    .ok()
                    .flatten();
            }
            match adopted {
                Some(id) => id,
                None => {
                    sh.cost.release(reserved);
                    lock(&sh.state).record_batch_ended(index, "submit_failed")?;
                    set_batch(sh, index, |b| b.status = "submit failed".into());
                    let rerun = e.is_retryable();
                    return fail_jobs(
                        sh,
                        index,
                        &ids,
                        &format!("Batch submission failed: {e}"),
                        rerun,
                    );
                }
            }
        }
    };
    lock(&sh.state).record_submitted(index, &batch_id)?;
    drop(create_guard);
    set_batch(sh, index, |b| {
        b.batch_id = Some(batch_id.clone());
        b.status = "submitted".into();
    });
    tracing::info!(batch = index, %batch_id, jobs = ids.len(), provider = %provider.kind(), "batch submitted");
    // The prompts are at the provider now; only small records stay in memory.
    drop(jobs);
    let r = poll_and_collect(sh, &provider, index, &batch_id, &ids, reserved).await;
    drop(permit);
    r
}

async fn poll_and_collect(
    sh: &Arc<Shared>,
    provider: &Arc<dyn Provider>,
    index: usize,
    batch_id: &str,
    ids: &[JobId],
    reserved: f64,
) -> Result<()> {
    let interval = provider.polling_interval();
    let mut stop_rx = sh.run.stop.subscribe();
    let mut cancel_deadline: Option<Instant> = None;
    let mut first = true;
    let mut poll_failures = 0u32;
    let status = loop {
        if !first {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop_rx.changed(), if cancel_deadline.is_none() => {}
            }
        }
        first = false;
        let reason = stop_reason(sh);
        if matches!(
            reason,
            Some(StopReason::Interrupted | StopReason::TimeLimit)
        ) && cancel_deadline.is_none()
        {
            tracing::info!(batch = index, %batch_id, "cancelling");
            set_batch(sh, index, |b| b.status = "cancelling".into());
            if let Err(e) = provider.cancel_batch(batch_id).await {
                tracing::warn!(batch = index, error = %e, "cancel request failed; will still collect what finished");
            }
            cancel_deadline = Some(Instant::now() + CANCEL_GRACE);
        }
        match provider.get_batch_status(batch_id).await {
            Ok(st) => {
                poll_failures = 0;
                set_batch(sh, index, |b| b.status = st.provider_status.clone());
                if st.state.is_terminal() {
                    break st;
                }
            }
            Err(e) => {
                // A poll that fails after its retries is tried again next interval.
                poll_failures += 1;
                tracing::warn!(batch = index, %batch_id, failures = poll_failures, error = %e, "status poll failed; trying again next interval");
            }
        }
        if cancel_deadline.is_some_and(|d| Instant::now() > d) {
            // Leave the batch to a rerun, which re-attaches to it.
            tracing::warn!(batch = index, %batch_id, "batch did not end after cancel; rerun with the same state to collect it");
            let mut s = lock(&sh.run.status);
            s.pending = s.pending.saturating_sub(ids.len());
            s.cancelled += ids.len();
            return Ok(());
        }
    };
    let _collecting = sh.collect_lock.lock().await;
    set_batch(sh, index, |b| b.status = "collecting".into());
    let reason = stop_reason(sh);
    // Parsing results needs each job's model, schema and file name, not its
    // prompt: the content is dropped as the jobs are read back.
    let jobs: Vec<Job> = lock(&sh.state).load_job_records(ids)?;
    let mut seen: HashSet<String> = HashSet::with_capacity(ids.len());
    let mut actual = 0.0;
    let mut last_err = None;
    for attempt in 0..COLLECT_ATTEMPTS {
        let ctx = ResultsContext {
            jobs: &jobs,
            raw_dir: sh.raw_dir.as_deref(),
        };
        let mut sink = |mut r: JobResult| -> Result<()> {
            if !seen.insert(r.job_id.clone()) {
                return Ok(());
            }
            let mut rerun = false;
            if r.outcome() == JobOutcome::Cancelled {
                rerun = true;
                if reason == Some(StopReason::TimeLimit) {
                    r.error = Some(TIME_LIMIT_EXCEEDED.to_string());
                }
            }
            if r.batch_id.is_none() {
                r.batch_id = Some(batch_id.to_string());
            }
            actual += r.cost_usd;
            finish_job(sh, index, r, rerun)
        };
        match provider.get_batch_results(batch_id, ctx, &mut sink).await {
            Ok(()) => {
                last_err = None;
                break;
            }
            Err(e) => {
                tracing::warn!(batch = index, attempt, error = %e, "downloading results failed; retrying");
                last_err = Some(e);
                tokio::time::sleep(crate::providers::http::backoff(attempt + 1)).await;
            }
        }
    }
    sh.cost.settle(reserved, actual);
    if let Some(e) = last_err {
        // The provider has the results; a rerun re-attaches and collects them.
        let mut s = lock(&sh.run.status);
        let missing = ids.len() - seen.len();
        s.pending = s.pending.saturating_sub(missing);
        s.failed += missing;
        drop(s);
        lock(&sh.state).sync()?;
        return Err(Error::State(format!(
            "results of batch {batch_id} could not be downloaded ({e}); rerun with the same state file to collect them"
        )));
    }
    let missing: Vec<JobId> = ids
        .iter()
        .filter(|id| !seen.contains(&***id))
        .cloned()
        .collect();
    fail_jobs(
        sh,
        index,
        &missing,
        "no result returned by the provider",
        false,
    )?;
    let final_status = status.provider_status.clone();
    lock(&sh.state).record_batch_ended(index, &final_status)?;
    set_batch(sh, index, |b| b.status = final_status);
    Ok(())
}

/// What a state file says about its run (for `batchata status`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateReport {
    /// Run id.
    pub run_id: String,
    /// When the run started.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Results folder.
    pub results_dir: PathBuf,
    /// Job counts.
    pub counts: crate::state::StateCounts,
    /// Cost billed.
    pub cost_used_usd: f64,
    /// Batches: (index, provider, provider batch id, final status or None while in flight, jobs).
    pub batches: Vec<StateBatch>,
}

/// One batch of a state report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateBatch {
    /// Index.
    pub index: usize,
    /// Provider.
    pub provider: ProviderKind,
    /// Provider batch id.
    pub batch_id: Option<String>,
    /// Final status; `None` while in flight.
    pub ended: Option<String>,
    /// Jobs.
    pub jobs: usize,
}

impl StateReport {
    /// Reads a state file without writing to it.
    pub fn load(path: &Path) -> Result<StateReport> {
        let st = StateStore::inspect(path)?;
        Ok(StateReport {
            run_id: st.run_id.clone(),
            created_at: st.created_at,
            results_dir: st.results_dir.clone(),
            counts: st.counts(),
            cost_used_usd: st.cost_used(),
            batches: st
                .batches
                .iter()
                .map(|b| StateBatch {
                    index: b.index,
                    provider: b.provider,
                    batch_id: b.batch_id.clone(),
                    ended: b.ended.clone(),
                    jobs: b.jobs.len(),
                })
                .collect(),
        })
    }
}

/// Cancels at the provider every batch of a state that is still in flight;
/// returns the ids cancelled. Reads the state without writing to it, so it is
/// safe while the run itself is still going (that run then collects what the
/// batches finished).
pub async fn cancel_from_state(
    path: &Path,
    settings: &ProviderSettings,
    catalog: Arc<Catalog>,
) -> Result<Vec<String>> {
    let st = StateStore::inspect(path)?;
    let mut out = Vec::new();
    let mut clients: HashMap<ProviderKind, Arc<dyn Provider>> = HashMap::new();
    for b in st.batches.iter().filter(|b| b.ended.is_none()) {
        let Some(id) = &b.batch_id else { continue };
        let client = match clients.get(&b.provider) {
            Some(c) => c.clone(),
            None => {
                let c = create_provider(b.provider, settings.get(b.provider), catalog.clone())?;
                clients.insert(b.provider, c.clone());
                c
            }
        };
        client.cancel_batch(id).await?;
        out.push(id.clone());
    }
    Ok(out)
}
