//! The run engine: opens the run (locks, state, inputs, provider clients),
//! then drives its batches — re-attached, adopted or new — to their end.
//! Opening lives in `open.rs`, the order of the work in `schedule.rs`,
//! submitting in `submit.rs`, polling and collecting in `collect.rs`, the
//! status rows in `report.rs`.
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

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{watch, Semaphore};

use super::events::{Progress, RunEvent};
use super::lock::RunLocks;
use super::open::Opened;
use super::report::{emit, spawn_progress};
use super::schedule::drive;
use super::{lock, BatchRun, RunInner, RunStatus, StopReason};
use crate::batch::{Batch, BatchParams};
use crate::catalog::{Catalog, ProviderKind};
use crate::cost::CostTracker;
use crate::error::{Error, Result};
use crate::providers::Provider;
use crate::state::{JobBits, StateStore};

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
    /// The next free batch index: batches split to isolate refused requests
    /// take theirs from here, after every planned one.
    pub(super) next_index: AtomicUsize,
    /// The first refused key (401/403): it stops the run, and `wait`
    /// returns it.
    pub(super) fatal: Mutex<Option<String>>,
    /// Pending jobs the input no longer has: kept, not submitted.
    pub(super) absent_pending: JobBits,
    /// The run's locks on its folder and state; released when it ends.
    locks: Mutex<Option<RunLocks>>,
}

pub(super) async fn start(batch: Batch) -> Result<BatchRun> {
    let Batch {
        params,
        jobs,
        catalog,
        progress,
        handle_ctrl_c,
        ids,
        ..
    } = batch;
    // The ids are in the spool and soon in the state; this table was only
    // for refusing duplicates while jobs were added.
    drop(ids);
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
        status: Mutex::new(Progress::new(
            RunStatus {
                total: counts.total,
                pending: counts.pending + counts.running,
                completed: counts.completed,
                failed: counts.failed,
                cancelled: counts.cancelled,
                cost_used_usd: store.cost_used(),
                cost_limit_usd: params.cost_limit_usd,
                ..Default::default()
            },
            params.keep_batch_job_ids,
        )),
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
        emit(
            &sh,
            RunEvent::RunEnded {
                cost_used_usd: sh.cost.used(),
                cost_reserved_usd: sh.cost.reserved(),
                stop_reason: stop_reason(&sh),
            },
        );
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

pub(super) fn provider_for(sh: &Shared, kind: ProviderKind) -> Result<Arc<dyn Provider>> {
    sh.providers
        .get(&kind)
        .cloned()
        .ok_or_else(|| Error::ProviderNotFound(format!("no client for {kind}")))
}
