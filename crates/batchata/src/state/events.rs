//! What the journal records: its events, a job's status and a batch's
//! record, as the replay rebuilds them.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{JobId, JobRanges};
use crate::catalog::ProviderKind;
use crate::job::Job;
use crate::layout::ResultsFormat;
use crate::result::JobOutcome;

/// One line of the journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Event {
    /// First line: the run's identity.
    Run {
        /// Format version.
        version: u32,
        /// The run's id (also in provider batch metadata).
        run_id: String,
        /// When the run was first started.
        created_at: DateTime<Utc>,
        /// Where results go.
        results_dir: PathBuf,
        /// How results are laid out in `results_dir`; absent (files) in
        /// journals from before the option, and for files.
        #[serde(default, skip_serializing_if = "ResultsFormat::is_files")]
        results_format: ResultsFormat,
    },
    /// A job of the run (written once).
    Job {
        /// The job, defaults merged.
        job: Job,
    },
    /// A batch is about to be created with these jobs.
    Intent {
        /// Batch index in the run.
        batch: usize,
        /// Provider.
        provider: ProviderKind,
        /// Job ids.
        jobs: Vec<JobId>,
        /// When.
        at: DateTime<Utc>,
        /// Cost reserved for it.
        reserved_usd: f64,
    },
    /// The provider accepted the batch.
    Submitted {
        /// Batch index.
        batch: usize,
        /// Provider batch id.
        batch_id: String,
    },
    /// A job ended.
    Done {
        /// Job id.
        job: String,
        /// How.
        outcome: JobOutcome,
        /// Cost billed.
        cost_usd: f64,
        /// True when the job never ran (cancelled, time or cost limit): a resume runs it again.
        #[serde(default)]
        rerun: bool,
    },
    /// A batch needs nothing more from the provider.
    BatchEnded {
        /// Batch index.
        batch: usize,
        /// Final provider status.
        status: String,
    },
    /// A failed job is queued again (`retry_failed`).
    Reset {
        /// Job id.
        job: String,
    },
    /// `results.jsonl` (the jsonl layout) was synced at this length, and
    /// the done lines before this event cover every result line in it:
    /// lines past it answer jobs not yet journaled done.
    ResultsSynced {
        /// The file's length in bytes.
        len: u64,
    },
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    /// Not yet in a live batch.
    Pending,
    /// In batch `n`, not finished.
    InBatch(u32),
    /// Finished.
    Done(JobOutcome),
}

impl JobStatus {
    /// `InBatch` for a batch index (a run never has 4 billion batches).
    pub fn in_batch(index: usize) -> JobStatus {
        JobStatus::InBatch(u32::try_from(index).unwrap_or(u32::MAX))
    }
}

/// A batch as the journal knows it.
#[derive(Debug, Clone)]
pub struct BatchRecord {
    /// Index in the run.
    pub index: usize,
    /// Provider.
    pub provider: ProviderKind,
    /// Its jobs, while it has not ended (cleared when it ends: a million
    /// jobs' batches must not all be held).
    pub jobs: JobRanges,
    /// Jobs it was created with.
    pub size: usize,
    /// When the create call was about to be made.
    pub intent_at: DateTime<Utc>,
    /// Cost reserved.
    pub reserved_usd: f64,
    /// Provider batch id once known.
    pub batch_id: Option<String>,
    /// Final status once ended.
    pub ended: Option<String>,
}

/// Puts a batch record at its index. Batches reach the create call in any
/// order (batch 1 may record its intent before batch 0), so a gap is filled
/// with an ended placeholder that the missing batch's own intent replaces.
pub(super) fn put_batch(batches: &mut Vec<BatchRecord>, rec: BatchRecord) {
    let index = rec.index;
    while batches.len() < index {
        let i = batches.len();
        batches.push(BatchRecord {
            index: i,
            provider: rec.provider,
            jobs: JobRanges::default(),
            size: 0,
            intent_at: rec.intent_at,
            reserved_usd: 0.0,
            batch_id: None,
            ended: Some("missing".into()),
        });
    }
    if index < batches.len() {
        batches[index] = rec;
    } else {
        batches.push(rec);
    }
}
