//! The run engine: opens the run (locks, state, inputs, provider clients),
//! then drives its batches — re-attached, adopted or new — to their end.
//! Opening lives in `open.rs`, submitting in `submit.rs`, polling and
//! collecting in `collect.rs`, the status rows in `report.rs`.
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
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::lock::RunLocks;
use super::open::Opened;
use super::report::{finish_batch_progress, set_batch, spawn_progress};
use super::{lock, BatchProgress, BatchRun, RunInner, RunStatus, StopReason};
use crate::batch::{Batch, BatchParams};
use crate::catalog::{Catalog, ProviderKind};
use crate::cost::CostTracker;
use crate::error::{Error, Result};
use crate::providers::{BatchProbe, Provider};
use crate::state::{JobId, JobStatus, StateStore};

pub(super) struct Shared {
    pub(super) params: BatchParams,
    pub(super) catalog: Arc<Catalog>,
    /// Shared with the result writer, which journals jobs done.
    pub(super) state: Arc<Mutex<StateStore>>,
    /// Where finished results go to be written ([`super::writer`]).
    pub(super) writer: super::writer::ResultWriter,
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
        provider: ProviderKind,
        jobs: Vec<JobId>,
    },
    Attach {
        index: usize,
        provider: ProviderKind,
        batch_id: String,
        jobs: Vec<JobId>,
        reserved: f64,
        intent_at: chrono::DateTime<chrono::Utc>,
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
    let Opened {
        store,
        absent_pending,
        locks,
        raw_dir,
        temp_state,
        providers,
    } = super::open::open(&params, jobs, &catalog)?;
    let results_dir = params.results_dir.clone();
    let results_format = store.results_format;
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
        results_format,
    });
    let state = Arc::new(Mutex::new(store));
    let writer = super::writer::ResultWriter::start(results_format, &results_dir, state.clone())?;
    let shared = Arc::new(Shared {
        semaphore: Arc::new(Semaphore::new(params.max_parallel_batches)),
        create_lock: tokio::sync::Mutex::new(()),
        collect_lock: tokio::sync::Mutex::new(()),
        params,
        catalog,
        state,
        writer,
        cost,
        run: inner.clone(),
        raw_dir,
        providers,
        batch_pos: Mutex::new(HashMap::new()),
        next_index: AtomicUsize::new(0),
        fatal: Mutex::new(None),
        absent_pending,
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
        // The last results handed over are made durable and journaled.
        if let Err(e) = sh.writer.close().await {
            if outcome.is_ok() {
                outcome = Err(e);
            }
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
            provider: b.provider,
            batch_id: b.batch_id.clone().unwrap_or_default(),
            jobs: open,
            reserved: b.reserved_usd,
            intent_at: b.intent_at,
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
                    provider: b.provider,
                    batch_id,
                    jobs: open,
                    reserved: b.reserved_usd,
                    intent_at: b.intent_at,
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
            provider: p.provider,
            jobs: p.jobs,
        });
    }
    {
        let mut s = lock(&sh.run.status);
        let mut pos = lock(&sh.batch_pos);
        for w in &work {
            let b = match w {
                Work::New {
                    index,
                    provider,
                    jobs,
                } => BatchProgress {
                    index: *index,
                    provider: *provider,
                    status: "queued".into(),
                    total: jobs.len(),
                    jobs: Arc::from(jobs.as_slice()),
                    ..Default::default()
                },
                Work::Attach {
                    index,
                    provider,
                    batch_id,
                    jobs,
                    intent_at,
                    ..
                } => BatchProgress {
                    index: *index,
                    provider: *provider,
                    batch_id: Some(batch_id.clone()),
                    status: "queued".into(),
                    total: jobs.len(),
                    submitted_at: Some(*intent_at),
                    jobs: Arc::from(jobs.as_slice()),
                    ..Default::default()
                },
            };
            pos.insert(b.index, s.batches.len());
            s.batches.push(b);
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
            ..
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
        Work::New { index, jobs, .. } => super::submit::submit(sh, index, jobs).await,
    }
}
