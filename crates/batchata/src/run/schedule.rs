//! The schedule stage: what a run has to do, in which order, and how many
//! batches at a time.
//!
//! It owns the list of work for the run — batches of an earlier run to
//! re-attach (their provider id is known), batches whose create may have
//! gone through unrecorded (looked up before anything else, adopted or
//! given up), and the batches planned from the pending jobs — and spawns
//! one task per batch under the run's parallelism bound. Batches already
//! at the provider take their slots first. A batch's own stages (submit,
//! poll, collect, isolate) live in their modules; this stage only starts
//! them, and decides what a batch's failure means for the run.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::task::JoinSet;

use super::engine::{provider_for, stop_for_auth, Shared};
use super::events::RunEvent;
use super::report::{batch_ended, emit};
use super::{lock, StopReason};
use crate::catalog::ProviderKind;
use crate::error::{Error, Result};
use crate::providers::BatchProbe;
use crate::state::{JobId, JobNo, JobRanges, JobStatus};

enum Work {
    New {
        index: usize,
        provider: ProviderKind,
        /// Claimed when the batch gets its slot.
        jobs: JobRanges,
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

pub(super) async fn drive(sh: Arc<Shared>) -> Result<()> {
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
        let open = open_jobs(&sh, b.index, &b.jobs)?;
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
                request_count: b.size,
                intent_at: b.intent_at,
                known_ids: &known,
            })
            .await;
        match found {
            Ok(Some(batch_id)) => {
                tracing::info!(batch = b.index, %batch_id, "adopted a batch created before the crash");
                lock(&sh.state).record_submitted(b.index, &batch_id)?;
                sh.cost.restore(b.reserved_usd);
                let open = open_jobs(&sh, b.index, &b.jobs)?;
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
                for n in b.jobs.iter() {
                    if st.status(n) == JobStatus::in_batch(b.index) {
                        st.reset_no(n)?;
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
        let mut st = lock(&sh.state);
        let planned = super::plan::plan(&mut st, &sh.catalog, sh.params.items_per_batch, |n| {
            sh.absent_pending.contains(n)
        })?;
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
    for w in &work {
        let event = match w {
            Work::New {
                index,
                provider,
                jobs,
            } => RunEvent::Queued {
                index: *index,
                provider: *provider,
                total: jobs.len(),
                // Named from the start only when asked (the Python
                // package's batch_data lists a pending batch's jobs).
                jobs: if sh.params.keep_batch_job_ids {
                    Some(Arc::from(lock(&sh.state).ids_of(jobs.iter())?))
                } else {
                    None
                },
                at_provider: None,
            },
            Work::Attach {
                index,
                provider,
                batch_id,
                jobs,
                intent_at,
                ..
            } => RunEvent::Queued {
                index: *index,
                provider: *provider,
                total: jobs.len(),
                jobs: sh
                    .params
                    .keep_batch_job_ids
                    .then(|| Arc::from(jobs.as_slice())),
                at_provider: Some((batch_id.as_str(), *intent_at)),
            },
        };
        emit(&sh, event);
    }
    // Batches are started as slots free up, not all at once: a million
    // jobs at 1,000 a batch is a thousand batches, and each waiting task
    // would hold its state for the whole run. Batches already at the
    // provider all start now; new ones keep one more task than there are
    // slots, so a freed slot is taken at once.
    let spare = sh.params.max_parallel_batches.max(1) + 1;
    let mut queue = work.into_iter().peekable();
    let mut set = JoinSet::new();
    let mut first_err = None;
    loop {
        while let Some(w) = queue.next_if(|w| matches!(w, Work::Attach { .. }) || set.len() < spare)
        {
            let sh = sh.clone();
            // Batches already at the provider take their slots before any
            // new batch can: a new batch waiting for budget must never hold
            // the slot a re-attached batch needs to settle that budget.
            let permit = match &w {
                Work::Attach { .. } => sh.semaphore.clone().try_acquire_owned().ok(),
                Work::New { .. } => None,
            };
            set.spawn(async move {
                let index = match &w {
                    Work::New { index, .. } | Work::Attach { index, .. } => *index,
                };
                let r = run_work(&sh, w, permit).await;
                batch_ended(&sh, index);
                r.map_err(|e| (index, e))
            });
        }
        let Some(r) = set.join_next().await else {
            break;
        };
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

/// The jobs of batch `index` not yet finished, claimed: in flight again.
pub(super) fn open_jobs(sh: &Shared, index: usize, jobs: &JobRanges) -> Result<Vec<JobId>> {
    let mut st = lock(&sh.state);
    let open: Vec<JobNo> = jobs
        .iter()
        .filter(|&n| st.status(n) == JobStatus::in_batch(index))
        .collect();
    st.claim(open)
}

/// Of a batch's jobs in flight, those it still holds (not ended, not
/// reset or replaced since).
pub(super) fn still_in(sh: &Shared, index: usize, ids: &[JobId]) -> Vec<JobId> {
    let st = lock(&sh.state);
    ids.iter()
        .filter(
            |id| matches!(st.find(id), Ok(Some(n)) if st.status(n) == JobStatus::in_batch(index)),
        )
        .cloned()
        .collect()
}

async fn run_work(
    sh: &Arc<Shared>,
    work: Work,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
) -> Result<()> {
    match work {
        Work::Attach {
            index,
            provider,
            batch_id,
            jobs,
            reserved,
            ..
        } => {
            let provider = provider_for(sh, provider)?;
            emit(sh, RunEvent::ReAttached { index });
            // In flight already: it holds a slot, taken before any new
            // batch could (none when the bound was lowered since).
            let collected =
                super::collect::poll_and_collect(sh, &provider, index, &batch_id, &jobs, reserved)
                    .await?;
            drop(permit);
            match collected {
                super::collect::Collected::Done => Ok(()),
                super::collect::Collected::Rejected(why) => {
                    super::isolate::isolate(sh, index, provider.kind(), jobs, &why).await
                }
            }
        }
        Work::New { index, jobs, .. } => {
            super::submit::submit(sh, index, super::submit::BatchJobs::Planned(jobs)).await
        }
    }
}
