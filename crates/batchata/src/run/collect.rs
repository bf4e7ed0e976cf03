//! Polling a batch to its end and collecting its results into files and
//! state, and the one way a job is recorded finished ([`Finisher`]).
//!
//! A poll that fails is tried again with a capped backoff, for as long as
//! the run goes on; the run's stop (Ctrl+C, `shutdown`, the time limit, a
//! refused key) is heard even in the middle of an HTTP call. A batch the
//! provider says it does not know is lost: its jobs fail with that reason
//! (and `retry_failed` runs them again). A download that keeps failing
//! stops the run with its results still at the provider, collected by a
//! rerun — never marked failed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::engine::{stop_for_auth, stop_reason, Shared};
use super::events::{RunEvent, Trouble};
use super::report::emit;
use super::writer::{Finished, HAND_OVER};
use super::{lock, StopReason};
use crate::error::{Error, Result};
use crate::job::Job;
use crate::providers::{BatchStatus, Provider, ResultsContext};
use crate::result::{JobOutcome, JobResult, TIME_LIMIT_EXCEEDED};
use crate::state::JobId;

/// How long to keep polling a batch after asking the provider to cancel it,
/// for the requests it finished before the cancel; what is still running
/// after that is collected by a rerun.
const CANCEL_GRACE: Duration = Duration::from_secs(20);
/// Most time one cancel call may take once the run is stopping.
const CANCEL_CALL_LIMIT: Duration = Duration::from_secs(10);
/// Attempts to download a finished batch's results before leaving them to a rerun.
const COLLECT_ATTEMPTS: u32 = 5;
/// Longest wait between polls of a provider that keeps failing.
const MAX_POLL_BACKOFF: Duration = Duration::from_secs(60);
/// Consecutive "not found" answers after which a batch is taken as lost
/// (one could be a proxy's mistake).
const LOST_AFTER: u32 = 2;

/// The result of a job that never ran because the run stopped: cancelled
/// by the user, or failed by the time limit (as the Python library has it).
pub(super) fn stopped_result(reason: Option<StopReason>, id: &str) -> JobResult {
    match reason {
        Some(StopReason::TimeLimit) => JobResult::failed(id, TIME_LIMIT_EXCEEDED),
        _ => JobResult::cancelled(id, ""),
    }
}

/// Records jobs finished: each result goes to the run's writer
/// ([`super::writer`]), which writes it and — once a group is durable —
/// journals its job done, so the state never says done for a result a
/// power loss could take away. Counters move at once; [`Finisher::flush`]
/// returns when everything given is durable and journaled.
pub(super) struct Finisher<'a> {
    sh: &'a Shared,
    index: usize,
    /// Results not yet handed over (a group at a time).
    group: Vec<Finished>,
    sent: usize,
}

impl<'a> Finisher<'a> {
    pub(super) fn new(sh: &'a Shared, index: usize) -> Self {
        Finisher {
            sh,
            index,
            group: Vec::new(),
            sent: 0,
        }
    }

    /// Hands one job's result to the writer (a failure of an earlier write
    /// is returned here, and the result is not taken).
    pub(super) fn finish(&mut self, mut result: JobResult, rerun: bool) -> Result<()> {
        let sh = self.sh;
        if let Some(e) = sh.writer.failure() {
            return Err(e);
        }
        if result.batch_id.is_none() {
            result.batch_id = lock(&sh.state)
                .batches
                .get(self.index)
                .and_then(|b| b.batch_id.clone());
        }
        // Settled here, once, so every file carries it: providers mark the
        // requests a cancelled batch never ran with Python's words.
        let outcome = result.outcome();
        result.outcome = Some(outcome);
        emit(
            sh,
            RunEvent::JobFinished {
                index: self.index,
                outcome,
                cost_usd: result.cost_usd,
                error: result.error.as_deref(),
            },
        );
        self.group.push((result, rerun));
        self.sent += 1;
        if self.group.len() >= HAND_OVER {
            sh.writer.write(std::mem::replace(
                &mut self.group,
                Vec::with_capacity(HAND_OVER),
            ))?;
        }
        Ok(())
    }

    /// Returns once the results given are durable and their jobs journaled
    /// done.
    pub(super) async fn flush(&mut self) -> Result<()> {
        if self.sent == 0 {
            return Ok(());
        }
        self.sent = 0;
        self.sh.writer.write(std::mem::take(&mut self.group))?;
        self.sh.writer.checkpoint().await
    }

    /// Ends jobs that got no answer, each with the result `ended` makes.
    pub(super) fn end(
        &mut self,
        ids: &[JobId],
        ended: impl Fn(&str) -> JobResult,
        rerun: bool,
    ) -> Result<()> {
        for id in ids {
            self.finish(ended(id), rerun)?;
        }
        Ok(())
    }
}

impl Drop for Finisher<'_> {
    /// Results given are written even when their task ends without a
    /// flush (an error on the way), as they were when written at once.
    fn drop(&mut self) {
        if !self.group.is_empty() {
            let _ = self.sh.writer.write(std::mem::take(&mut self.group));
        }
    }
}

/// Fails jobs with one reason, durably.
pub(super) async fn fail_jobs(
    sh: &Shared,
    index: usize,
    ids: &[JobId],
    error: &str,
    rerun: bool,
) -> Result<()> {
    end_jobs(sh, index, ids, |id| JobResult::failed(id, error), rerun).await
}

/// Ends jobs that got no answer, durably, each with the result `ended` makes.
pub(super) async fn end_jobs(
    sh: &Shared,
    index: usize,
    ids: &[JobId],
    ended: impl Fn(&str) -> JobResult,
    rerun: bool,
) -> Result<()> {
    let mut f = Finisher::new(sh, index);
    f.end(ids, ended, rerun)?;
    f.flush().await
}

/// Reports a recoverable trouble: counted in the run's status, its message
/// kept (in one line) as the latest; the full story goes to the logs.
fn note_warning(sh: &Shared, kind: Trouble, index: usize, e: &Error) {
    emit(
        sh,
        RunEvent::Trouble {
            index,
            kind,
            message: &e.to_string(),
        },
    );
}

/// How a batch's polling ended.
enum Polled {
    /// The batch ended at the provider; collect it.
    Ended(BatchStatus),
    /// The provider does not know the batch.
    Lost,
    /// The run stopped while the batch runs on at the provider: a rerun
    /// re-attaches to it.
    LeftRunning,
}

/// Waits for `d`, or for the run's stop to change; true when it changed.
async fn sleep_or_stop(
    stop_rx: &mut tokio::sync::watch::Receiver<Option<StopReason>>,
    d: Duration,
) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        r = stop_rx.changed() => r.is_ok(),
    }
}

async fn poll_to_end(
    sh: &Arc<Shared>,
    provider: &Arc<dyn Provider>,
    index: usize,
    batch_id: &str,
) -> Polled {
    let interval = provider.polling_interval();
    let mut stop_rx = sh.run.stop.subscribe();
    let mut cancel_deadline: Option<Instant> = None;
    let mut failures = 0u32;
    let mut not_found = 0u32;
    let mut wait = Duration::ZERO;
    loop {
        if !wait.is_zero() {
            // Once cancelling, stop changes no longer matter.
            if cancel_deadline.is_some() {
                tokio::time::sleep(wait).await;
            } else {
                sleep_or_stop(&mut stop_rx, wait).await;
            }
        }
        wait = interval;
        match stop_reason(sh) {
            Some(StopReason::AuthFailed) => return Polled::LeftRunning,
            Some(StopReason::Interrupted | StopReason::TimeLimit) if cancel_deadline.is_none() => {
                tracing::info!(batch = index, %batch_id, "cancelling");
                emit(sh, RunEvent::Cancelling { index });
                match tokio::time::timeout(CANCEL_CALL_LIMIT, provider.cancel_batch(batch_id)).await
                {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) if e.is_auth() => {
                        stop_for_auth(sh, &e);
                        return Polled::LeftRunning;
                    }
                    Ok(Err(e)) if e.is_not_found() => return Polled::Lost,
                    Ok(Err(e)) => {
                        note_warning(sh, Trouble::Download, index, &e);
                        tracing::warn!(batch = index, %batch_id, error = %e, "cancel request failed; the batch is left at the provider for a rerun to collect");
                        return Polled::LeftRunning;
                    }
                    Err(_) => {
                        tracing::warn!(batch = index, %batch_id, "cancel request timed out; the batch is left at the provider for a rerun to collect");
                        return Polled::LeftRunning;
                    }
                }
                cancel_deadline = Some(Instant::now() + CANCEL_GRACE);
            }
            _ => {}
        }
        // The stop is heard during the call too: a provider that hangs
        // does not hold the run.
        let polled = if cancel_deadline.is_some() {
            Some(provider.get_batch_status(batch_id).await)
        } else {
            tokio::select! {
                r = provider.get_batch_status(batch_id) => Some(r),
                _ = stop_rx.changed() => None,
            }
        };
        let Some(polled) = polled else {
            wait = Duration::ZERO;
            continue;
        };
        match polled {
            Ok(st) => {
                failures = 0;
                not_found = 0;
                emit(
                    sh,
                    RunEvent::Polled {
                        index,
                        provider_status: &st.provider_status,
                        counts: st.counts,
                    },
                );
                if st.state.is_terminal() {
                    return Polled::Ended(st);
                }
            }
            Err(e) if e.is_auth() => {
                stop_for_auth(sh, &e);
                return Polled::LeftRunning;
            }
            Err(e) if e.is_not_found() => {
                not_found += 1;
                if not_found >= LOST_AFTER {
                    return Polled::Lost;
                }
            }
            Err(e) => {
                failures += 1;
                not_found = 0;
                if cancel_deadline.is_some() {
                    // Stopping, and the provider does not answer: leave it.
                    return Polled::LeftRunning;
                }
                wait = (interval * 2u32.saturating_pow(failures.min(16))).min(MAX_POLL_BACKOFF);
                let rate_limited = matches!(
                    e,
                    Error::Http {
                        status: Some(429),
                        ..
                    }
                );
                note_warning(sh, Trouble::Poll { rate_limited }, index, &e);
                tracing::warn!(batch = index, %batch_id, failures, error = %e, next_poll_s = wait.as_secs_f64(), "status poll failed; trying again");
            }
        }
        if cancel_deadline.is_some_and(|d| Instant::now() > d) {
            tracing::warn!(batch = index, %batch_id, "batch did not end after cancel; rerun with the same state to collect it");
            return Polled::LeftRunning;
        }
    }
}

/// What came of a batch polled to its end.
pub(super) enum Collected {
    /// Its results (or why it stopped) are recorded.
    Done,
    /// The provider refused its input without running any of it, for this
    /// reason: nothing was collected, its reservation is released, and its
    /// jobs are for the caller to isolate.
    Rejected(String),
}

pub(super) async fn poll_and_collect(
    sh: &Arc<Shared>,
    provider: &Arc<dyn Provider>,
    index: usize,
    batch_id: &str,
    ids: &[JobId],
    reserved: f64,
) -> Result<Collected> {
    let status = match poll_to_end(sh, provider, index, batch_id).await {
        Polled::Ended(st) if st.rejected => {
            sh.cost.release(reserved);
            let why = st
                .error
                .unwrap_or_else(|| format!("batch {batch_id} was refused"));
            return Ok(Collected::Rejected(why));
        }
        Polled::Ended(st) => st,
        Polled::Lost => {
            lost(sh, provider, index, batch_id, ids, reserved).await?;
            return Ok(Collected::Done);
        }
        Polled::LeftRunning => {
            // The jobs stay in the batch in the state; the reservation is
            // still owed, so it is not released.
            emit(
                sh,
                RunEvent::LeftAtProvider {
                    index,
                    jobs: ids.len(),
                    cancelled: stop_reason(sh) != Some(StopReason::AuthFailed),
                },
            );
            return Ok(Collected::Done);
        }
    };
    let _collecting = sh.collect_lock.lock().await;
    emit(sh, RunEvent::Collecting { index });
    let reason = stop_reason(sh);
    // Parsing results needs each job's model, schema and file name, not its
    // prompt: the content is dropped as the jobs are read back.
    let jobs: Vec<Job> = lock(&sh.state).load_job_records(ids)?;
    let mut seen: ahash::AHashSet<String> = ahash::AHashSet::with_capacity(ids.len());
    let mut actual = 0.0;
    let mut last_err = None;
    let mut finisher = Finisher::new(sh, index);
    // Our own failure to record a result (a full disk, a folder we cannot
    // write) is not the download's: it is not retried, and it stops the run
    // with the batch still open, so a rerun collects what was not recorded.
    let mut local_failure: Option<Error> = None;
    for attempt in 0..COLLECT_ATTEMPTS {
        let ctx = ResultsContext {
            jobs: &jobs,
            raw_dir: sh.raw_dir.as_deref(),
        };
        let mut sink = |mut r: JobResult| -> Result<()> {
            if seen.contains(&r.job_id) {
                return Ok(());
            }
            let id = r.job_id.clone();
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
            let cost = r.cost_usd;
            match finisher.finish(r, rerun) {
                Ok(()) => {
                    actual += cost;
                    seen.insert(id);
                    Ok(())
                }
                Err(e) => {
                    let msg = e.to_string();
                    local_failure = Some(e);
                    Err(Error::Incomplete(msg))
                }
            }
        };
        match provider.get_batch_results(batch_id, ctx, &mut sink).await {
            Ok(()) => {
                last_err = None;
                break;
            }
            Err(e) if e.is_auth() => {
                finisher.flush().await?;
                stop_for_auth(sh, &e);
                return Ok(Collected::Done);
            }
            Err(e) if e.is_not_found() && seen.is_empty() => {
                finisher.flush().await?;
                drop(_collecting);
                lost(sh, provider, index, batch_id, ids, reserved).await?;
                return Ok(Collected::Done);
            }
            Err(_) if local_failure.is_some() => break,
            Err(e) => {
                tracing::warn!(batch = index, attempt, error = %e, "downloading results failed; retrying");
                note_warning(sh, Trouble::Download, index, &e);
                last_err = Some(e);
                tokio::time::sleep(crate::providers::http::backoff(attempt + 1)).await;
            }
        }
    }
    // A write that failed shows here at the latest (the writer keeps it).
    if let Err(e) = finisher.flush().await {
        local_failure.get_or_insert(e);
    }
    if let Some(e) = local_failure {
        sh.cost.settle(0.0, actual);
        return Err(Error::Incomplete(format!(
            "a result of batch {batch_id} could not be recorded ({e}); nothing is lost: the batch stays open in the state, fix the cause and rerun with the same state file to collect the rest without paying again"
        )));
    }
    if let Some(e) = last_err {
        // The provider has the results; a rerun re-attaches and collects
        // them. Nothing is marked failed, and the reservation stays owed.
        emit(
            sh,
            RunEvent::LeftAtProvider {
                index,
                jobs: ids.len() - seen.len(),
                cancelled: false,
            },
        );
        sh.cost.settle(0.0, actual);
        return Err(Error::Incomplete(format!(
            "results of batch {batch_id} could not be downloaded ({e}); they are kept at the provider: rerun with the same state file to collect them"
        )));
    }
    sh.cost.settle(reserved, actual);
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
    )
    .await?;
    let final_status = &status.provider_status;
    lock(&sh.state).record_batch_ended(index, final_status)?;
    emit(
        sh,
        RunEvent::Collected {
            index,
            final_status,
        },
    );
    Ok(Collected::Done)
}

/// The provider no longer knows the batch: its unfinished jobs fail with
/// that reason (`retry_failed` runs them again) and its reservation goes.
async fn lost(
    sh: &Shared,
    provider: &Arc<dyn Provider>,
    index: usize,
    batch_id: &str,
    ids: &[JobId],
    reserved: f64,
) -> Result<()> {
    let kind = provider.kind();
    tracing::warn!(batch = index, %batch_id, provider = %kind, "the provider no longer knows this batch; its jobs fail (retry_failed runs them again)");
    let open = super::schedule::still_in(sh, index, ids);
    fail_jobs(
        sh,
        index,
        &open,
        &format!("batch {batch_id} no longer exists at {kind}; rerun with retry_failed (CLI: --retry-failed) to submit these jobs again"),
        false,
    )
    .await?;
    sh.cost.release(reserved);
    lock(&sh.state).record_batch_ended(index, "lost")?;
    emit(sh, RunEvent::Lost { index });
    Ok(())
}
