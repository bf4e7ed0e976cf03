//! Isolating the requests a provider refuses, so their batch-mates still run.
//!
//! Preflight checks what a client can know; a provider still refuses some
//! requests for what they hold (an encrypted or malformed document, content
//! its policy refuses) — and it refuses them for the whole batch: Anthropic
//! and Gemini answer the create with a 400, OpenAI fails the batch in
//! validation. Such a batch is split in two halves, each submitted as a
//! batch of its own, recursively, until every refused request is alone in
//! a batch: only then does a job fail, with the provider's words. The good
//! jobs run; one bad request among `n` costs at most 2·⌈log2 n⌉ more
//! creates, each one logged.
//!
//! A half is an ordinary batch: a fresh index, its own cost reservation
//! and intent in the state before its create, the run's slots, stop and
//! time limit. The refused batch is recorded ended (`rejected`) first, so a
//! crash in between leaves its jobs to be planned again by the rerun.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::collect::Finisher;
use super::engine::Shared;
use super::events::RunEvent;
use super::lock;
use super::report::{batch_ended, emit};
use crate::catalog::ProviderKind;
use crate::error::Result;
use crate::result::JobResult;
use crate::state::JobId;

/// `provider` refused batch `index` (holding `ids`) for what some of its
/// requests hold, saying `why`: fail its one job, or submit it in halves.
pub(super) async fn isolate(
    sh: &Arc<Shared>,
    index: usize,
    provider: ProviderKind,
    mut ids: Vec<JobId>,
    why: &str,
) -> Result<()> {
    lock(&sh.state).record_batch_ended(index, "rejected")?;
    emit(sh, RunEvent::Rejected { index });
    batch_ended(sh, index);
    if ids.len() <= 1 {
        // Alone in its batch: the provider refuses this request.
        let jobs = lock(&sh.state).load_job_records(&ids)?;
        let mut finisher = Finisher::new(sh, index);
        for job in &jobs {
            let file = job
                .file
                .as_ref()
                .map(|f| format!(" (file '{}')", f.display()))
                .unwrap_or_default();
            tracing::warn!(batch = index, job = job.id_str(), reason = %why, "the provider refuses this request; it fails on its own");
            finisher.finish(
                JobResult::failed(
                    job.id_str(),
                    format!(
                        "job '{}'{file}: the provider refused this request: {why}",
                        job.id_str()
                    ),
                ),
                false,
            )?;
        }
        return finisher.flush().await;
    }
    let right = ids.split_off(ids.len() / 2);
    let left = ids;
    let first = sh.next_index.fetch_add(2, Ordering::SeqCst);
    tracing::warn!(
        batch = index,
        jobs = left.len() + right.len(),
        halves = ?[first, first + 1],
        reason = %why,
        "the provider refused the whole batch for some of its requests; submitting it again in two halves to isolate them (2 more creates)"
    );
    for (i, jobs) in [(first, &left), (first + 1, &right)] {
        emit(
            sh,
            RunEvent::Queued {
                index: i,
                provider,
                total: jobs.len(),
                jobs: sh
                    .params
                    .keep_batch_job_ids
                    .then(|| Arc::from(jobs.as_slice())),
                at_provider: None,
            },
        );
    }
    let (a, b) = tokio::join!(
        half(sh.clone(), first, left),
        half(sh.clone(), first + 1, right)
    );
    a.and(b)
}

/// One half, submitted like any planned batch (boxed: a half may split again).
fn half(
    sh: Arc<Shared>,
    index: usize,
    ids: Vec<JobId>,
) -> Pin<Box<dyn Future<Output = Result<()>> + Send>> {
    Box::pin(async move {
        let r = super::submit::submit(&sh, index, super::submit::BatchJobs::Claimed(ids)).await;
        batch_ended(&sh, index);
        r
    })
}
