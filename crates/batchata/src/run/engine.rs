//! The run engine: opens the run (locks, state, inputs, provider clients),
//! then drives its batches — re-attached, adopted or new — to their end.
//! Submitting lives in `submit.rs`, polling and collecting in `collect.rs`.
//!
//! Durability points, in order, for every batch: the intent (jobs, run id,
//! index) is fsynced before the create call; the provider batch id is
//! fsynced the moment it is known; result files are made durable before
//! the journal records their jobs done. A crash anywhere leaves a state
//! from which a rerun re-attaches to every batch the provider accepted — it
//! never submits one twice.
//!
//! Whose fault a failure is decides what happens to a job: it fails only
//! when the provider says so (an errored request, a rejected batch, a batch
//! the provider no longer knows). Our own trouble — a cut connection, a
//! provider that is down, a download that fails, a refused key — stops or
//! retries the run and leaves every job collectable by a plain rerun.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::lock::RunLocks;
use super::{lock, BatchProgress, BatchRun, ProgressCallback, RunInner, RunStatus, StopReason};
use crate::batch::{Batch, BatchParams};
use crate::catalog::{Catalog, ProviderKind};
use crate::cost::CostTracker;
use crate::error::{Error, Result};
use crate::providers::{create_provider, BatchProbe, Provider};
use crate::result::JobOutcome;
use crate::state::{JobId, JobStatus, StateStore};

pub(super) struct Shared {
    pub(super) params: BatchParams,
    pub(super) catalog: Arc<Catalog>,
    pub(super) state: Mutex<StateStore>,
    pub(super) cost: Arc<CostTracker>,
    pub(super) run: Arc<RunInner>,
    pub(super) raw_dir: Option<PathBuf>,
    pub(super) providers: HashMap<ProviderKind, Arc<dyn Provider>>,
    pub(super) semaphore: Arc<Semaphore>,
    /// Held from a batch's intent until its provider id is recorded (or it
    /// is known not to exist), so at most one create call is ever
    /// unaccounted for: finding it again by time and size (Anthropic has no
    /// batch metadata) is then unambiguous.
    pub(super) create_lock: tokio::sync::Mutex<()>,
    /// Held while a batch's results are collected. Collecting is CPU and
    /// disk work (parse, write a file per job) that gains nothing from
    /// overlapping on a small machine, and each collection holds its
    /// batch's job records: one at a time keeps memory flat however many
    /// batches end together.
    pub(super) collect_lock: tokio::sync::Mutex<()>,
    pub(super) batch_pos: Mutex<HashMap<usize, usize>>,
    /// The next free batch index: batches split to isolate refused requests
    /// take theirs from here, after every planned one.
    pub(super) next_index: AtomicUsize,
    /// The first refused key (401/403): it stops the run, and `wait`
    /// returns it.
    pub(super) fatal: Mutex<Option<String>>,
    /// Pending jobs the input no longer has: kept, not submitted.
    absent_pending: HashSet<JobId>,
    /// The run's locks on its folder and state; released when it ends.
    locks: Mutex<Option<RunLocks>>,
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
        reserved: f64,
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
    let results_dir = params.results_dir.clone();
    if results_dir.exists() && !results_dir.is_dir() {
        return Err(Error::Validation(format!(
            "results folder {} is a file; give a folder (it is created if missing)",
            results_dir.display()
        )));
    }
    std::fs::create_dir_all(&results_dir)
        .map_err(|e| Error::io("create the results folder", &results_dir, e))?;
    // Before anything in the folder or the state is read or written, this
    // run owns them.
    let locks = RunLocks::acquire(&results_dir, params.state_file.as_deref())?;
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
                .map_err(|e| {
                    Error::io("create a temporary state file in", std::env::temp_dir(), e)
                })?
                .into_temp_path();
            (tmp.to_path_buf(), Some(tmp))
        }
    };
    let resume = temp_state.is_none() && params.reuse_state && state_path.exists();
    let (mut store, reconciled) = if resume {
        let mut s = StateStore::open(&state_path)?;
        tracing::info!(run_id = %s.run_id, state = %state_path.display(), "resuming");
        let r = super::inputs::into_existing_state(&mut s, &jobs, &params)?;
        (s, r)
    } else {
        if params.reuse_state {
            // No state to say what the folder's results answer.
            super::inputs::check_orphan_results(&jobs, &params)?;
        }
        if temp_state.is_none() && state_path.exists() {
            remove_previous_outputs(&state_path, &results_dir);
        }
        let mut s = StateStore::create(&state_path, &new_run_id(), &results_dir)?;
        let r = super::inputs::into_new_state(&mut s, &jobs, &params)?;
        (s, r)
    };
    drop(jobs);
    if resume && reconciled.added + reconciled.rerun > 0 {
        tracing::info!(
            added = reconciled.added,
            changed = reconciled.rerun,
            "jobs new to the state (or changed) were added to it"
        );
    }
    if reconciled.adopted > 0 {
        tracing::info!(
            adopted = reconciled.adopted,
            "completed results already in the folder were kept"
        );
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
        semaphore: Arc::new(Semaphore::new(params.max_parallel_batches)),
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
        next_index: AtomicUsize::new(0),
        fatal: Mutex::new(None),
        absent_pending: reconciled.absent_pending,
        locks: Mutex::new(Some(locks)),
    });
    let run = BatchRun { inner };

    if handle_ctrl_c {
        // Asked for by the application (`Batch::handle_interrupts`): an
        // interrupt stops the run as `shutdown()` does. Nothing is
        // printed and the process is never ended from here; the
        // application hears of it through `BatchRun::stop_requested`.
        let r = run.clone();
        let mut done = run.inner.done.subscribe();
        tokio::spawn(async move {
            tokio::select! {
                signal = tokio::signal::ctrl_c() => {
                    if signal.is_ok() {
                        tracing::info!("interrupted: submitting nothing new, cancelling the active batches");
                        r.shutdown();
                    }
                }
                _ = done.changed() => {}
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
        let mut outcome = drive(sh.clone()).await;
        if let Err(e) = &outcome {
            tracing::error!(error = %e, "run failed");
        }
        {
            let mut st = lock(&sh.state);
            if let Err(e) = st.sync() {
                tracing::error!(error = %e, "final state sync failed");
                if outcome.is_ok() {
                    outcome = Err(e);
                }
            }
        }
        if outcome.is_ok() {
            if let Some(msg) = lock(&sh.fatal).take() {
                outcome = Err(Error::Auth(auth_message(&sh, &msg)));
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
        // Released before the end is announced: a caller that starts the
        // next run as soon as this one ends finds the folder free.
        drop(lock(&sh.locks).take());
        sh.run.done.send_replace(Some(outcome));
    });
    Ok(run)
}

/// The message of a run stopped by a refused key: the provider's words,
/// what was not done, and where the batches in flight are.
fn auth_message(sh: &Shared, provider_msg: &str) -> String {
    let st = lock(&sh.state);
    let live: Vec<String> = st
        .batches
        .iter()
        .filter(|b| b.ended.is_none())
        .map(|b| match &b.batch_id {
            Some(id) => format!("{} {id}", b.provider),
            None => format!("{} batch {} (create not confirmed)", b.provider, b.index),
        })
        .collect();
    let live = if live.is_empty() {
        "No batch is in flight.".to_string()
    } else {
        format!(
            "{} batch(es) continue at the provider: {}; a rerun with a working key re-attaches to them and collects their results.",
            live.len(),
            live.join(", ")
        )
    };
    format!(
        "{provider_msg}. The run stopped: nothing more was submitted and no job was marked failed. {live} Fix the key (or its permissions) and rerun the same command."
    )
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

pub(super) fn stop_reason(sh: &Shared) -> Option<StopReason> {
    *sh.run.stop.borrow()
}

/// Records a refused key and stops the run: nothing more is submitted,
/// nothing is cancelled (the key would be refused again), no job fails.
pub(super) fn stop_for_auth(sh: &Shared, e: &Error) {
    {
        let mut f = lock(&sh.fatal);
        if f.is_none() {
            *f = Some(e.to_string());
        }
    }
    sh.run.stop.send_if_modified(|cur| {
        if *cur == Some(StopReason::AuthFailed) {
            false
        } else {
            *cur = Some(StopReason::AuthFailed);
            true
        }
    });
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
        let open = open_jobs(&sh, b.index, &b.jobs);
        // The reservation survives the restart: the batch still counts
        // against the limit until it settles to its actual cost.
        sh.cost.restore(b.reserved_usd);
        work.push(Work::Attach {
            index: b.index,
            batch_id: b.batch_id.clone().unwrap_or_default(),
            jobs: open,
            reserved: b.reserved_usd,
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
                sh.cost.restore(b.reserved_usd);
                let open = open_jobs(&sh, b.index, &b.jobs);
                work.push(Work::Attach {
                    index: b.index,
                    batch_id,
                    jobs: open,
                    reserved: b.reserved_usd,
                });
            }
            Ok(None) => {
                let mut st = lock(&sh.state);
                st.record_batch_ended(b.index, "absent")?;
                for id in &b.jobs {
                    if st.jobs.get(id).map(|e| e.status) == Some(JobStatus::in_batch(b.index)) {
                        st.reset_job(id)?;
                    }
                }
                st.sync()?;
            }
            Err(e) if e.is_auth() => {
                stop_for_auth(&sh, &e);
                return Ok(());
            }
            Err(e) => {
                return Err(Error::Incomplete(format!(
                    "batch {} of the previous run may exist at {} but could not be looked up ({e}); rerun later so it is not submitted twice",
                    b.index, b.provider
                )))
            }
        }
    }
    let (planned, first_index) = {
        let st = lock(&sh.state);
        let mut planned = super::plan::plan(&st, &sh.catalog, sh.params.items_per_batch)?;
        if !sh.absent_pending.is_empty() {
            for p in &mut planned {
                p.jobs.retain(|id| !sh.absent_pending.contains(id));
            }
            planned.retain(|p| !p.jobs.is_empty());
        }
        (planned, st.batches.len())
    };
    sh.next_index
        .store(first_index + planned.len(), Ordering::SeqCst);
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
                counts: Default::default(),
            });
        }
        s.batches_total = work.len();
        s.batches_pending = work.len();
    }
    let mut set = JoinSet::new();
    for w in work {
        let sh = sh.clone();
        // Batches already at the provider take their slots before any new
        // batch can: a new batch waiting for budget must never hold the slot
        // a re-attached batch needs to settle that budget.
        let permit = match &w {
            Work::Attach { .. } => sh.semaphore.clone().try_acquire_owned().ok(),
            Work::New { .. } => None,
        };
        set.spawn(async move {
            let index = match &w {
                Work::New { index, .. } | Work::Attach { index, .. } => *index,
            };
            let r = run_work(&sh, w, permit).await;
            finish_batch_progress(&sh, index);
            r.map_err(|e| (index, e))
        });
    }
    let mut first_err = None;
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(())) => {}
            Ok(Err((index, e))) => {
                tracing::error!(batch = index, error = %e, "batch stopped");
                if e.is_auth() {
                    stop_for_auth(&sh, &e);
                } else {
                    // Our trouble: submit nothing more, let the batches in
                    // flight finish.
                    sh.run.stop.send_if_modified(|cur| {
                        if matches!(cur, None | Some(StopReason::Drain)) {
                            *cur = Some(StopReason::Failed);
                            true
                        } else {
                            false
                        }
                    });
                    if first_err.is_none() {
                        first_err = Some(e);
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "a batch task panicked"),
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The jobs of batch `index` not yet finished.
pub(super) fn open_jobs(sh: &Shared, index: usize, jobs: &[JobId]) -> Vec<JobId> {
    let st = lock(&sh.state);
    jobs.iter()
        .filter(|j| {
            st.jobs
                .get(*j)
                .is_some_and(|e| e.status == JobStatus::in_batch(index))
        })
        .cloned()
        .collect()
}

pub(super) fn provider_for(sh: &Shared, kind: ProviderKind) -> Result<Arc<dyn Provider>> {
    sh.providers
        .get(&kind)
        .cloned()
        .ok_or_else(|| Error::ProviderNotFound(format!("no client for {kind}")))
}

pub(super) fn set_batch(sh: &Shared, index: usize, f: impl FnOnce(&mut BatchProgress)) {
    let pos = lock(&sh.batch_pos).get(&index).copied();
    if let Some(p) = pos {
        let mut s = lock(&sh.run.status);
        if let Some(b) = s.batches.get_mut(p) {
            f(b);
        }
    }
}

pub(super) fn finish_batch_progress(sh: &Shared, index: usize) {
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

async fn run_work(
    sh: &Arc<Shared>,
    work: Work,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
) -> Result<()> {
    match work {
        Work::Attach {
            index,
            batch_id,
            jobs,
            reserved,
        } => {
            let provider = provider_for(sh, lock(&sh.state).batches[index].provider)?;
            set_batch(sh, index, |b| {
                b.provider = provider.kind();
                b.status = "re-attached".into();
            });
            // In flight already: it holds a slot, taken before any new
            // batch could (none when the bound was lowered since).
            let collected =
                super::collect::poll_and_collect(sh, &provider, index, &batch_id, &jobs, reserved)
                    .await?;
            drop(permit);
            match collected {
                super::collect::Collected::Done => Ok(()),
                super::collect::Collected::Rejected(why) => {
                    super::isolate::isolate(sh, index, jobs, &why).await
                }
            }
        }
        Work::New { index, jobs } => super::submit::submit(sh, index, jobs).await,
    }
}
