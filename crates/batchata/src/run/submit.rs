//! Submitting one planned batch: a slot, the cost reservation, the intent
//! in the state, and a create that happens exactly once.
//!
//! A create whose outcome is unknown (the reply was lost after the request
//! was sent, a timeout, a 5xx) is never repeated blindly: the batch is
//! looked up first, the way a restart finds one (OpenAI by run id and batch
//! index in its metadata, Anthropic by creation time and request count),
//! adopted if it is there, and created again only when it is certainly not.
//! A create that certainly failed for a passing reason (a rate limit, a
//! provider that is down) is tried again later in the same run, with
//! backoff, for as long as the run goes on. Only a provider's refusal of
//! the batch itself fails its jobs; a refusal for what some of its
//! requests hold is isolated (`isolate.rs`); a refused key stops the run.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::collect::{end_jobs, fail_jobs, poll_and_collect, stopped_result, Collected, Finisher};
use super::engine::{provider_for, stop_for_auth, stop_reason, Shared};
use super::events::RunEvent;
use super::report::emit;
use super::{lock, StopReason};
use crate::cost::Reservation;
use crate::error::{Error, Result};
use crate::job::Job;
use crate::providers::{BatchProbe, BatchRequest, JobSource, Provider};
use crate::result::COST_LIMIT_EXCEEDED;
use crate::state::{JobId, JobRanges};

/// A batch's jobs as `submit` gets them.
pub(super) enum BatchJobs {
    /// Planned, by number: claimed (read back by id) only once the batch
    /// has its slot, so batches waiting for one hold a few bytes each.
    Planned(JobRanges),
    /// Already in flight (a half of a refused batch).
    Claimed(Vec<JobId>),
}

/// The batch's jobs, in flight from here on.
fn claim(sh: &Shared, index: usize, jobs: BatchJobs) -> Result<Vec<JobId>> {
    let ids = match jobs {
        BatchJobs::Claimed(ids) => ids,
        BatchJobs::Planned(r) => lock(&sh.state).claim(r.iter())?,
    };
    // Rows name their jobs only when asked: ten batches of 10,000 in
    // flight would otherwise hold 100,000 more pointers for no reader.
    if sh.params.keep_batch_job_ids {
        let jobs: Arc<[JobId]> = Arc::from(ids.as_slice());
        emit(sh, RunEvent::Claimed { index, jobs });
    }
    Ok(ids)
}

/// Create attempts that certainly failed before the run gives up on the
/// batch for now (its jobs stay pending for a rerun).
const CREATE_ATTEMPTS: u32 = 6;
/// Longest wait between two create attempts, or two look-ups.
const MAX_CREATE_BACKOFF: Duration = Duration::from_secs(30);

/// The wait before create attempt `attempt` (1, 2, ...): 1 s doubling, capped, with jitter.
fn create_backoff(attempt: u32) -> Duration {
    let base = Duration::from_secs(1u64 << attempt.saturating_sub(1).min(5));
    let d = base.min(MAX_CREATE_BACKOFF);
    d.mul_f64(1.0 - 0.25 * fastrand::f64())
}

/// Waits for `d` unless the run stops first; true when it stopped.
async fn wait_unless_stopped(sh: &Shared, d: Duration) -> bool {
    let mut rx = sh.run.stop.subscribe();
    tokio::select! {
        _ = tokio::time::sleep(d) => stop_reason(sh).is_some(),
        _ = rx.wait_for(|s| s.is_some()) => true,
    }
}

/// Jobs of a batch that will not be submitted because the run stopped: a
/// refused key leaves them pending, silently; any other stop records them
/// not run (they run again on resume).
async fn not_run(sh: &Shared, index: usize, ids: &[JobId], intent_recorded: bool) -> Result<()> {
    let silent = matches!(
        stop_reason(sh),
        Some(StopReason::AuthFailed | StopReason::Failed)
    );
    if intent_recorded {
        let mut st = lock(&sh.state);
        st.record_batch_ended(index, "not_submitted")?;
        if silent {
            for id in ids {
                st.reset_job(id)?;
            }
            st.sync()?;
        }
    }
    emit(sh, RunEvent::NotSubmitted { index });
    if silent {
        return Ok(());
    }
    let reason = stop_reason(sh);
    end_jobs(sh, index, ids, |id| stopped_result(reason, id), true).await
}

/// Whether the stop means: stop waiting on the provider now.
fn hard_stop(r: Option<StopReason>) -> bool {
    matches!(
        r,
        Some(StopReason::Interrupted | StopReason::TimeLimit | StopReason::AuthFailed)
    )
}

/// Removes from `ids` the jobs whose file vanished since they were added,
/// failing each on its own. Only jobs that send a file are read back (and
/// without their prompts).
async fn drop_vanished(sh: &Shared, index: usize, ids: &mut Vec<JobId>) -> Result<()> {
    let with_files: Vec<JobId> = {
        let st = lock(&sh.state);
        ids.iter().filter(|id| st.has_file(id)).cloned().collect()
    };
    if with_files.is_empty() {
        return Ok(());
    }
    let jobs = lock(&sh.state).load_job_records(&with_files)?;
    let present = |j: &Job| j.file.as_ref().is_none_or(|f| f.is_file());
    if jobs.iter().all(present) {
        return Ok(());
    }
    let gone: Vec<Job> = jobs.into_iter().filter(|j| !present(j)).collect();
    let mut finisher = Finisher::new(sh, index);
    for j in &gone {
        let f = j
            .file
            .as_ref()
            .map(|f| f.display().to_string())
            .unwrap_or_default();
        finisher.finish(
            crate::result::JobResult::failed(
                j.id_str(),
                format!(
                    "job '{}': file '{f}' no longer exists; restore it and rerun with retry_failed",
                    j.id_str()
                ),
            ),
            false,
        )?;
    }
    finisher.flush().await?;
    let gone: HashSet<&str> = gone.iter().map(|j| j.id_str()).collect();
    ids.retain(|id| !gone.contains(&**id));
    Ok(())
}

/// The worst-case cost of a batch's jobs, read one at a time.
fn estimate(provider: &Arc<dyn Provider>, jobs: &dyn JobSource) -> Result<f64> {
    let mut total = 0.0;
    for job in jobs.jobs()? {
        let job = job?;
        total += provider
            .estimate_cost(std::slice::from_ref(job.as_ref()))?
            .worst_case_usd;
    }
    Ok(total)
}

/// What came of looking up a batch whose create had an unknown outcome.
enum LookedUp {
    Found(String),
    Absent,
    /// The look-up itself could not be done before the run stopped or
    /// gave up: the batch's fate is left to a rerun's look-up.
    Unknown(Option<Error>),
}

async fn look_up(
    sh: &Shared,
    provider: &Arc<dyn Provider>,
    index: usize,
    request_count: usize,
) -> LookedUp {
    let run_id = lock(&sh.run.run_id).clone();
    let mut stop_rx = sh.run.stop.subscribe();
    for attempt in 1..=CREATE_ATTEMPTS {
        let (known, intent_at) = {
            let st = lock(&sh.state);
            let known: Vec<String> = st
                .batches
                .iter()
                .filter_map(|b| b.batch_id.clone())
                .collect();
            (known, st.batches[index].intent_at)
        };
        let probe = BatchProbe {
            run_id: &run_id,
            batch_index: index,
            request_count,
            intent_at,
            known_ids: &known,
        };
        let found = tokio::select! {
            r = provider.find_batch(probe) => r,
            _ = stop_rx.wait_for(|s| hard_stop(*s)) => return LookedUp::Unknown(None),
        };
        match found {
            Ok(Some(id)) => return LookedUp::Found(id),
            Ok(None) => return LookedUp::Absent,
            Err(e) if e.is_auth() => return LookedUp::Unknown(Some(e)),
            Err(e) => {
                tracing::warn!(batch = index, attempt, error = %e, "looking the batch up failed; trying again");
                if attempt == CREATE_ATTEMPTS
                    || wait_unless_stopped(sh, create_backoff(attempt)).await
                {
                    return LookedUp::Unknown(Some(e));
                }
            }
        }
    }
    LookedUp::Unknown(None)
}

pub(super) async fn submit(sh: &Arc<Shared>, index: usize, jobs: BatchJobs) -> Result<()> {
    // Wait for a slot, unless the run is stopping.
    let mut stop_rx = sh.run.stop.subscribe();
    let permit = tokio::select! {
        p = sh.semaphore.acquire() => Some(p.map_err(|_| Error::Internal("the batch scheduler closed while batches were waiting".into()))?),
        _ = stop_rx.wait_for(|s| s.is_some()) => None,
    };
    let Some(permit) = permit else {
        let ids = claim(sh, index, jobs)?;
        return not_run(sh, index, &ids, false).await;
    };
    let mut ids = claim(sh, index, jobs)?;
    let mut intent_recorded = false;
    let mut failures = 0u32;
    let mut first = true;
    let (provider, batch_id, reserved) = 'attempt: loop {
        if stop_reason(sh).is_some() {
            return not_run(sh, index, &ids, intent_recorded).await;
        }
        // Batches are prepared and created one at a time, and their jobs
        // are read back from the state as the provider needs them: at most
        // one job's prompt and a piece of one request body are in memory,
        // whatever the batch's size and the parallelism (batches still run
        // at the provider in parallel).
        let create_guard = sh.create_lock.lock().await;
        let model = {
            let st = lock(&sh.state);
            let first_model = match ids.first() {
                Some(id) => st.model_of(id)?.to_string(),
                None => String::new(),
            };
            sh.catalog.lookup(&first_model)?
        };
        let provider = provider_for(sh, model.provider)?;
        emit(sh, RunEvent::Submitting { index });
        if first {
            first = false;
            drop_vanished(sh, index, &mut ids).await?;
            if ids.is_empty() {
                return Ok(());
            }
        }
        let jobs = lock(&sh.state).job_source(&ids)?;

        // Reserve the worst case against the limit; while it does not fit
        // but other batches hold reservations, wait for them to settle.
        let estimate = if sh.params.cost_limit_usd.is_some() || sh.params.estimate_batch_costs {
            Some(estimate(&provider, &jobs)?)
        } else {
            None
        };
        emit(
            sh,
            RunEvent::Estimated {
                index,
                cost_usd: estimate,
            },
        );
        let reserved = match sh.params.cost_limit_usd {
            Some(_) => estimate.unwrap_or(0.0),
            None => 0.0,
        };
        let changed = sh.cost.changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        match sh.cost.try_reserve(reserved) {
            Reservation::Reserved => {}
            Reservation::Wait => {
                drop(jobs);
                drop(create_guard);
                emit(sh, RunEvent::WaitingForBudget { index });
                tracing::info!(
                    batch = index,
                    estimate_usd = reserved,
                    "waiting for batches in flight to settle before this one fits the cost limit"
                );
                tokio::select! {
                    _ = changed => {}
                    _ = stop_rx.wait_for(|s| s.is_some()) => {}
                }
                continue 'attempt;
            }
            Reservation::Refused => {
                tracing::warn!(
                    batch = index,
                    estimate_usd = reserved,
                    "batch not submitted: its worst case does not fit in what is left of the cost limit"
                );
                if intent_recorded {
                    lock(&sh.state).record_batch_ended(index, "cost_limit")?;
                }
                emit(sh, RunEvent::CostLimitRefused { index });
                return fail_jobs(sh, index, &ids, COST_LIMIT_EXCEEDED, true).await;
            }
        }
        lock(&sh.state).record_intent(index, provider.kind(), ids.clone(), reserved)?;
        intent_recorded = true;
        let run_id = lock(&sh.run.run_id).clone();
        let request = BatchRequest {
            jobs: &[],
            run_id: &run_id,
            batch_index: index,
            raw_dir: sh.raw_dir.as_deref(),
        };
        // A stop is heard during the call: the create's outcome is then
        // unknown, and a rerun looks the batch up as after a crash.
        let created = tokio::select! {
            r = provider.create_batch_from(&jobs, request) => Some(r),
            _ = stop_rx.wait_for(|s| hard_stop(*s)) => None,
        };
        let error = match created {
            Some(Ok(c)) => break 'attempt (provider, c.batch_id, reserved),
            Some(Err(e)) => e,
            None => {
                tracing::warn!(batch = index, "the run stopped during a create call; a rerun looks the batch up before creating it");
                return left_unresolved(sh, index, &ids);
            }
        };
        if error.is_auth() {
            sh.cost.release(reserved);
            stop_for_auth(sh, &error);
            return not_run(sh, index, &ids, intent_recorded).await;
        }
        let transient = match &error {
            Error::OutcomeUnknown(_) => {
                tracing::warn!(batch = index, error = %error, "create outcome unknown; looking the batch up before anything else");
                emit(sh, RunEvent::LookingUp { index });
                match look_up(sh, &provider, index, ids.len()).await {
                    LookedUp::Found(id) => {
                        tracing::info!(batch = index, batch_id = %id, "the batch was created; adopted");
                        break 'attempt (provider, id, reserved);
                    }
                    LookedUp::Absent => true,
                    LookedUp::Unknown(Some(e)) if e.is_auth() => {
                        stop_for_auth(sh, &e);
                        return left_unresolved(sh, index, &ids);
                    }
                    LookedUp::Unknown(e) => {
                        left_unresolved(sh, index, &ids)?;
                        if stop_reason(sh).is_some() {
                            return Ok(());
                        }
                        return Err(Error::Incomplete(format!(
                            "batch {index}: the create's reply was lost and the batch could not be looked up ({}); rerun later: the rerun looks it up before creating it, so it is not paid twice",
                            e.map(|e| e.to_string()).unwrap_or_default()
                        )));
                    }
                }
            }
            e => e.is_retryable(),
        };
        sh.cost.release(reserved);
        drop(jobs);
        drop(create_guard);
        if !transient {
            if matches!(error, Error::BatchRejected(_)) {
                // Refused for what some of its requests hold: isolate them.
                drop(permit);
                return super::isolate::isolate(
                    sh,
                    index,
                    provider.kind(),
                    ids,
                    &error.to_string(),
                )
                .await;
            }
            // The provider refused the batch itself.
            lock(&sh.state).record_batch_ended(index, "submit_failed")?;
            emit(sh, RunEvent::SubmitFailed { index });
            return fail_jobs(
                sh,
                index,
                &ids,
                &format!("Batch submission failed: {error}"),
                false,
            )
            .await;
        }
        failures += 1;
        if failures >= CREATE_ATTEMPTS {
            let mut st = lock(&sh.state);
            st.record_batch_ended(index, "not_submitted")?;
            for id in &ids {
                st.reset_job(id)?;
            }
            st.sync()?;
            return Err(Error::Incomplete(format!(
                "batch {index}: the provider refused the create {failures} times for a passing reason (last: {error}); its {} jobs were not submitted and stay pending — rerun later",
                ids.len()
            )));
        }
        let wait = create_backoff(failures);
        tracing::warn!(batch = index, error = %error, attempt = failures, retry_in_s = wait.as_secs_f64(), "create failed for a passing reason; its jobs wait and are submitted again");
        emit(sh, RunEvent::Retrying { index });
        wait_unless_stopped(sh, wait).await;
    };
    lock(&sh.state).record_submitted(index, &batch_id)?;
    emit(
        sh,
        RunEvent::Submitted {
            index,
            batch_id: &batch_id,
            at: chrono::Utc::now(),
        },
    );
    tracing::info!(batch = index, %batch_id, jobs = ids.len(), provider = %provider.kind(), "batch submitted");
    let collected = poll_and_collect(sh, &provider, index, &batch_id, &ids, reserved).await;
    drop(permit);
    match collected? {
        Collected::Done => Ok(()),
        Collected::Rejected(why) => {
            super::isolate::isolate(sh, index, provider.kind(), ids, &why).await
        }
    }
}

/// The batch may or may not exist at the provider: its intent stays open
/// in the state, so a rerun looks it up before anything else. Its jobs are
/// neither failed nor pending.
fn left_unresolved(sh: &Shared, index: usize, ids: &[JobId]) -> Result<()> {
    emit(
        sh,
        RunEvent::Unconfirmed {
            index,
            jobs: ids.len(),
        },
    );
    Ok(())
}
