//! Progress as typed events, and the one reducer that applies them.
//!
//! The stages say what happened to a batch or a job ("batch 3 was created
//! as `msgbatch_x`", "a job of batch 3 failed"), as a [`RunEvent`]; only
//! [`Progress::apply`] knows how that moves the run's status rows and
//! counters. So every counter moves in one place, a batch row's state is a
//! [`BatchPhase`] rather than a string set from many places, and a batch is
//! counted finished once however many times its end is reported.
//!
//! [`BatchPhase`] is public on [`BatchProgress::phase`]; the row's
//! `status` string is its display text, derived here: the phase's label,
//! or the provider's own word while the batch is at the provider and once
//! it ended there.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{BatchProgress, RunStatus, StopReason};
use crate::catalog::ProviderKind;
use crate::providers::RequestCounts;
use crate::result::JobOutcome;
use crate::state::JobId;

/// Where one batch of a run is. [`BatchProgress::status`] is its display
/// text; for [`BatchPhase::Running`] and [`BatchPhase::Collected`] that
/// text is the provider's own status word.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchPhase {
    /// Planned, or re-attached from an earlier run and not polled yet:
    /// waiting for a slot.
    #[default]
    Queued,
    /// Being prepared and created at the provider.
    Submitting,
    /// Its worst-case cost does not fit beside the batches in flight: it
    /// waits for them to settle.
    WaitingForBudget,
    /// A create's reply was lost: the batch is looked up before anything
    /// else is done.
    LookingUp,
    /// A create failed for a passing reason; it is tried again after a pause.
    Retrying,
    /// Created at the provider, not polled yet.
    Submitted,
    /// A batch of an earlier run, re-attached, not polled yet.
    ReAttached,
    /// At the provider; `status` is the provider's word (`in_progress`, ...).
    Running,
    /// The run stopped: the provider was asked to cancel the batch.
    Cancelling,
    /// Ended at the provider; its results are being downloaded.
    Collecting,
    /// Ended at the provider and collected; `status` is the provider's
    /// final word (`ended`, `completed`, `expired`, ...).
    Collected,
    /// Not submitted: its worst case did not fit in what was left of the
    /// cost limit. Its jobs failed.
    CostLimit,
    /// The provider refused the batch itself. Its jobs failed.
    SubmitFailed,
    /// The provider refused the batch for what some of its requests hold:
    /// its jobs went on in two smaller batches.
    Rejected,
    /// Not submitted because the run stopped.
    NotSubmitted,
    /// The run stopped during its create: whether the provider has it is
    /// for a rerun to find out (it looks the batch up first).
    Unconfirmed,
    /// Left running at the provider, or its results kept there, for a
    /// rerun to collect.
    LeftAtProvider,
    /// The provider no longer knows the batch. Its jobs failed.
    Lost,
}

impl BatchPhase {
    /// The phase in words, as `status` shows it (the provider's own word
    /// takes its place for `Running` and `Collected`).
    pub fn label(self) -> &'static str {
        match self {
            BatchPhase::Queued => "queued",
            BatchPhase::Submitting => "submitting",
            BatchPhase::WaitingForBudget => "waiting for budget",
            BatchPhase::LookingUp => "looking up",
            BatchPhase::Retrying => "retrying",
            BatchPhase::Submitted => "submitted",
            BatchPhase::ReAttached => "re-attached",
            BatchPhase::Running => "running",
            BatchPhase::Cancelling => "cancelling",
            BatchPhase::Collecting => "collecting",
            BatchPhase::Collected => "collected",
            BatchPhase::CostLimit => "cost limit",
            BatchPhase::SubmitFailed => "submit failed",
            BatchPhase::Rejected => "rejected",
            BatchPhase::NotSubmitted => "not submitted",
            BatchPhase::Unconfirmed => "unconfirmed",
            BatchPhase::LeftAtProvider => "left at provider",
            BatchPhase::Lost => "lost",
        }
    }
}

impl std::fmt::Display for BatchPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// A recoverable trouble, counted for the display's folded warning line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trouble {
    /// A status poll failed and will be tried again; `rate_limited` when
    /// the provider answered 429.
    Poll { rate_limited: bool },
    /// A download (or a cancel call) failed.
    Download,
}

/// Something that happened in a run, as the stages report it. Borrowed
/// text, so reporting costs no copy unless the reducer keeps it.
#[derive(Debug, Clone)]
pub(crate) enum RunEvent<'a> {
    /// A batch of `total` jobs joins the run: planned, split off a refused
    /// batch, or (with `at_provider`: its id and when its create was
    /// recorded) a batch of an earlier run to re-attach, whose `jobs` are
    /// named at once (a planned batch's are named when it claims them).
    Queued {
        index: usize,
        provider: ProviderKind,
        total: usize,
        jobs: Option<Arc<[JobId]>>,
        at_provider: Option<(&'a str, DateTime<Utc>)>,
    },
    /// The batch has its slot and has claimed its jobs: the row names them.
    Claimed {
        index: usize,
        jobs: Arc<[JobId]>,
    },
    Submitting {
        index: usize,
    },
    /// The batch's worst-case cost, when one was made.
    Estimated {
        index: usize,
        cost_usd: Option<f64>,
    },
    WaitingForBudget {
        index: usize,
    },
    /// Refused by the cost limit before submitting.
    CostLimitRefused {
        index: usize,
    },
    LookingUp {
        index: usize,
    },
    Retrying {
        index: usize,
    },
    SubmitFailed {
        index: usize,
    },
    Submitted {
        index: usize,
        batch_id: &'a str,
        at: DateTime<Utc>,
    },
    ReAttached {
        index: usize,
    },
    /// A status poll answered.
    Polled {
        index: usize,
        provider_status: &'a str,
        counts: RequestCounts,
    },
    Cancelling {
        index: usize,
    },
    Collecting {
        index: usize,
    },
    /// Its results are recorded; the provider's final word.
    Collected {
        index: usize,
        final_status: &'a str,
    },
    Rejected {
        index: usize,
    },
    NotSubmitted {
        index: usize,
    },
    /// Stopped during the create: its `jobs` are neither failed nor pending.
    Unconfirmed {
        index: usize,
        jobs: usize,
    },
    /// Its `jobs` stay at the provider for a rerun; counted cancelled when
    /// the run was stopped by the user or the time limit (`cancelled`).
    LeftAtProvider {
        index: usize,
        jobs: usize,
        cancelled: bool,
    },
    Lost {
        index: usize,
    },
    /// One job's result is recorded.
    JobFinished {
        index: usize,
        outcome: JobOutcome,
        cost_usd: f64,
        error: Option<&'a str>,
    },
    /// A recoverable trouble with batch `index`, in one line.
    Trouble {
        index: usize,
        kind: Trouble,
        message: &'a str,
    },
    /// The batch needs nothing more (reported again is a no-op). Its row
    /// lets go of its job ids unless the run keeps them.
    Ended {
        index: usize,
        at: DateTime<Utc>,
    },
    /// The run ended.
    RunEnded {
        cost_used_usd: f64,
        cost_reserved_usd: f64,
        stop_reason: Option<StopReason>,
    },
}

/// A run's status and where each batch's row is in it: the state the
/// events fold into.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    pub(crate) status: RunStatus,
    /// Batch index → position in `status.batches`.
    rows: HashMap<usize, usize>,
    /// Whether an ended batch's row keeps its job ids
    /// ([`crate::Batch::keep_batch_job_ids`]).
    keep_job_ids: bool,
}

impl Progress {
    /// Starts from the counts a run opens with.
    pub(crate) fn new(status: RunStatus, keep_job_ids: bool) -> Progress {
        Progress {
            status,
            rows: HashMap::new(),
            keep_job_ids,
        }
    }

    fn row(&mut self, index: usize) -> Option<&mut BatchProgress> {
        let pos = *self.rows.get(&index)?;
        self.status.batches.get_mut(pos)
    }

    fn enter(&mut self, index: usize, phase: BatchPhase) {
        if let Some(b) = self.row(index) {
            set_phase(b, phase, None);
        }
    }

    /// Applies one event: the only place a run's status changes while it runs.
    pub(crate) fn apply(&mut self, event: RunEvent<'_>) {
        use RunEvent as E;
        match event {
            E::Queued {
                index,
                provider,
                total,
                jobs,
                at_provider,
            } => {
                if self.rows.contains_key(&index) {
                    return;
                }
                let s = &mut self.status;
                self.rows.insert(index, s.batches.len());
                s.batches.push(BatchProgress {
                    index,
                    provider,
                    batch_id: at_provider.map(|(id, _)| id.to_owned()),
                    submitted_at: at_provider.map(|(_, at)| at),
                    phase: BatchPhase::Queued,
                    status: BatchPhase::Queued.label().to_owned(),
                    total,
                    jobs: jobs.unwrap_or_else(|| Arc::from(Vec::new())),
                    ..Default::default()
                });
                s.batches_total += 1;
                s.batches_pending += 1;
            }
            E::Claimed { index, jobs } => {
                if let Some(b) = self.row(index) {
                    b.jobs = jobs;
                }
            }
            E::Submitting { index } => self.enter(index, BatchPhase::Submitting),
            E::Estimated { index, cost_usd } => {
                if let Some(b) = self.row(index) {
                    b.estimated_cost_usd = cost_usd;
                }
            }
            E::WaitingForBudget { index } => self.enter(index, BatchPhase::WaitingForBudget),
            E::CostLimitRefused { index } => self.enter(index, BatchPhase::CostLimit),
            E::LookingUp { index } => self.enter(index, BatchPhase::LookingUp),
            E::Retrying { index } => self.enter(index, BatchPhase::Retrying),
            E::SubmitFailed { index } => self.enter(index, BatchPhase::SubmitFailed),
            E::Submitted {
                index,
                batch_id,
                at,
            } => {
                if let Some(b) = self.row(index) {
                    b.batch_id = Some(batch_id.to_owned());
                    b.submitted_at = Some(at);
                    set_phase(b, BatchPhase::Submitted, None);
                }
            }
            E::ReAttached { index } => self.enter(index, BatchPhase::ReAttached),
            E::Polled {
                index,
                provider_status,
                counts,
            } => {
                if let Some(b) = self.row(index) {
                    b.counts = counts;
                    set_phase(b, BatchPhase::Running, Some(provider_status));
                }
            }
            E::Cancelling { index } => self.enter(index, BatchPhase::Cancelling),
            E::Collecting { index } => self.enter(index, BatchPhase::Collecting),
            E::Collected {
                index,
                final_status,
            } => {
                if let Some(b) = self.row(index) {
                    set_phase(b, BatchPhase::Collected, Some(final_status));
                }
            }
            E::Rejected { index } => self.enter(index, BatchPhase::Rejected),
            E::NotSubmitted { index } => self.enter(index, BatchPhase::NotSubmitted),
            E::Unconfirmed { index, jobs } => {
                self.status.pending = self.status.pending.saturating_sub(jobs);
                self.enter(index, BatchPhase::Unconfirmed);
            }
            E::LeftAtProvider {
                index,
                jobs,
                cancelled,
            } => {
                let s = &mut self.status;
                s.pending = s.pending.saturating_sub(jobs);
                if cancelled {
                    s.cancelled += jobs;
                }
                self.enter(index, BatchPhase::LeftAtProvider);
            }
            E::Lost { index } => self.enter(index, BatchPhase::Lost),
            E::JobFinished {
                index,
                outcome,
                cost_usd,
                error,
            } => {
                let s = &mut self.status;
                s.pending = s.pending.saturating_sub(1);
                match outcome {
                    JobOutcome::Completed => s.completed += 1,
                    JobOutcome::Failed => s.failed += 1,
                    JobOutcome::Cancelled => s.cancelled += 1,
                }
                s.cost_used_usd += cost_usd;
                if let Some(b) = self.row(index) {
                    b.done += 1;
                    b.cost_usd += cost_usd;
                    match outcome {
                        JobOutcome::Completed => {}
                        JobOutcome::Failed => b.failed += 1,
                        JobOutcome::Cancelled => b.cancelled += 1,
                    }
                    if b.error.is_none() {
                        b.error = error.map(str::to_owned);
                    }
                }
            }
            E::Trouble {
                index,
                kind,
                message,
            } => {
                let s = &mut self.status;
                match kind {
                    Trouble::Poll { rate_limited } => {
                        s.poll_failures += 1;
                        if rate_limited {
                            s.polls_rate_limited += 1;
                        }
                    }
                    Trouble::Download => s.download_retries += 1,
                }
                let line = message.replace(['\n', '\r'], " ");
                s.last_warning = Some(format!("batch {index}: {line}"));
            }
            E::Ended { index, at } => {
                let Some(pos) = self.rows.get(&index).copied() else {
                    return;
                };
                let s = &mut self.status;
                if let Some(b) = s.batches.get_mut(pos) {
                    if !b.finished {
                        b.finished = true;
                        b.finished_at = Some(at);
                        if !self.keep_job_ids {
                            b.jobs = Arc::from(Vec::new());
                        }
                        s.batches_completed += 1;
                        s.batches_pending = s.batches_pending.saturating_sub(1);
                    }
                }
            }
            E::RunEnded {
                cost_used_usd,
                cost_reserved_usd,
                stop_reason,
            } => {
                let s = &mut self.status;
                s.is_complete = true;
                s.cost_used_usd = cost_used_usd;
                s.cost_reserved_usd = cost_reserved_usd;
                s.stop_reason = stop_reason;
            }
        }
    }
}

/// Moves a row to `phase`, its `status` text following: the provider's
/// word when there is one, else the phase's label.
fn set_phase(b: &mut BatchProgress, phase: BatchPhase, provider_word: Option<&str>) {
    b.phase = phase;
    let text = provider_word.unwrap_or(phase.label());
    if b.status != text {
        b.status = text.to_owned();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn ids(n: usize) -> Arc<[JobId]> {
        (0..n)
            .map(|i| JobId::from(format!("q{i}").as_str()))
            .collect()
    }

    /// A run that opened with 10 jobs pending, 2 completed earlier.
    fn opened() -> Progress {
        Progress::new(
            RunStatus {
                total: 12,
                pending: 10,
                completed: 2,
                ..Default::default()
            },
            false,
        )
    }

    fn queued(p: &mut Progress, index: usize, provider: ProviderKind, total: usize) {
        p.apply(RunEvent::Queued {
            index,
            provider,
            total,
            jobs: None,
            at_provider: None,
        });
    }

    #[test]
    fn a_batch_moves_through_its_phases_and_its_jobs_move_the_counters() {
        let mut p = opened();
        queued(&mut p, 4, ProviderKind::OpenAi, 3);
        queued(&mut p, 5, ProviderKind::Gemini, 7);
        let s = &p.status;
        assert_eq!((s.batches_total, s.batches_pending), (2, 2));
        let b = &s.batches[0];
        assert_eq!((b.index, b.provider, b.total), (4, ProviderKind::OpenAi, 3));
        assert_eq!((b.phase, b.status.as_str()), (BatchPhase::Queued, "queued"));
        assert_eq!(s.batches[1].provider, ProviderKind::Gemini);

        assert!(p.status.batches[0].jobs.is_empty(), "named once claimed");
        p.apply(RunEvent::Claimed {
            index: 4,
            jobs: ids(3),
        });
        assert_eq!(p.status.batches[0].jobs.len(), 3);
        p.apply(RunEvent::Submitting { index: 4 });
        assert_eq!(p.status.batches[0].status, "submitting");
        p.apply(RunEvent::Estimated {
            index: 4,
            cost_usd: Some(0.25),
        });
        p.apply(RunEvent::Submitted {
            index: 4,
            batch_id: "batch_abc",
            at: at(1),
        });
        let b = &p.status.batches[0];
        assert_eq!(b.estimated_cost_usd, Some(0.25));
        assert_eq!(b.batch_id.as_deref(), Some("batch_abc"));
        assert_eq!(b.submitted_at, Some(at(1)));
        assert_eq!(
            (b.phase, b.status.as_str()),
            (BatchPhase::Submitted, "submitted")
        );

        let counts = RequestCounts {
            total: 3,
            processing: 1,
            succeeded: 2,
            ..Default::default()
        };
        p.apply(RunEvent::Polled {
            index: 4,
            provider_status: "in_progress",
            counts,
        });
        let b = &p.status.batches[0];
        assert_eq!(
            (b.phase, b.status.as_str()),
            (BatchPhase::Running, "in_progress")
        );
        assert_eq!(b.counts, counts);
        p.apply(RunEvent::Collecting { index: 4 });
        assert_eq!(p.status.batches[0].phase, BatchPhase::Collecting);

        p.apply(RunEvent::JobFinished {
            index: 4,
            outcome: JobOutcome::Completed,
            cost_usd: 0.5,
            error: None,
        });
        p.apply(RunEvent::JobFinished {
            index: 4,
            outcome: JobOutcome::Failed,
            cost_usd: 0.25,
            error: Some("first error"),
        });
        p.apply(RunEvent::JobFinished {
            index: 4,
            outcome: JobOutcome::Cancelled,
            cost_usd: 0.0,
            error: Some("second error"),
        });
        let s = &p.status;
        assert_eq!(
            (s.pending, s.completed, s.failed, s.cancelled),
            (7, 3, 1, 1)
        );
        assert_eq!(s.cost_used_usd, 0.75);
        let b = &s.batches[0];
        assert_eq!((b.done, b.failed, b.cancelled), (3, 1, 1));
        assert_eq!(b.cost_usd, 0.75);
        assert_eq!(
            b.error.as_deref(),
            Some("first error"),
            "the first error stays"
        );
        // The other batch is untouched.
        assert_eq!(s.batches[1].done, 0);

        p.apply(RunEvent::Collected {
            index: 4,
            final_status: "completed",
        });
        let b = &p.status.batches[0];
        assert_eq!(
            (b.phase, b.status.as_str()),
            (BatchPhase::Collected, "completed")
        );
        assert!(
            !b.finished,
            "collected is a phase; the end is its own event"
        );
        p.apply(RunEvent::Ended {
            index: 4,
            at: at(2),
        });
        let b = &p.status.batches[0];
        assert!(
            b.finished && b.jobs.is_empty(),
            "an ended row lets its ids go"
        );
    }

    #[test]
    fn a_finished_batch_is_counted_once_however_often_its_end_is_reported() {
        let mut p = opened();
        queued(&mut p, 0, ProviderKind::Anthropic, 4);
        queued(&mut p, 1, ProviderKind::Anthropic, 6);
        p.apply(RunEvent::Rejected { index: 0 });
        p.apply(RunEvent::Ended {
            index: 0,
            at: at(5),
        });
        // The scheduler reports the end of every batch it ran, this one too.
        p.apply(RunEvent::Ended {
            index: 0,
            at: at(9),
        });
        let s = &p.status;
        assert_eq!((s.batches_completed, s.batches_pending), (1, 1));
        let b = &s.batches[0];
        assert!(b.finished);
        assert_eq!(b.finished_at, Some(at(5)), "the first end is kept");
        assert_eq!(
            (b.phase, b.status.as_str()),
            (BatchPhase::Rejected, "rejected")
        );
        // An end for a batch the run never queued changes nothing.
        p.apply(RunEvent::Ended {
            index: 7,
            at: at(9),
        });
        assert_eq!(
            (p.status.batches_completed, p.status.batches_pending),
            (1, 1)
        );
        // Queued twice: one row.
        queued(&mut p, 1, ProviderKind::OpenAi, 6);
        assert_eq!(p.status.batches.len(), 2);
        assert_eq!(p.status.batches_total, 2);
        assert_eq!(p.status.batches[1].provider, ProviderKind::Anthropic);
    }

    #[test]
    fn jobs_left_with_the_provider_leave_pending_and_count_as_the_stop_says() {
        let mut p = opened();
        for i in 0..3 {
            queued(&mut p, i, ProviderKind::OpenAi, 3);
        }
        // Interrupted: the jobs left running are counted cancelled.
        p.apply(RunEvent::LeftAtProvider {
            index: 0,
            jobs: 3,
            cancelled: true,
        });
        assert_eq!((p.status.pending, p.status.cancelled), (7, 3));
        // A refused key (or results kept for a rerun): not cancelled.
        p.apply(RunEvent::LeftAtProvider {
            index: 1,
            jobs: 3,
            cancelled: false,
        });
        assert_eq!((p.status.pending, p.status.cancelled), (4, 3));
        p.apply(RunEvent::Unconfirmed { index: 2, jobs: 3 });
        assert_eq!(p.status.pending, 1);
        let phases: Vec<BatchPhase> = p.status.batches.iter().map(|b| b.phase).collect();
        assert_eq!(
            phases,
            [
                BatchPhase::LeftAtProvider,
                BatchPhase::LeftAtProvider,
                BatchPhase::Unconfirmed
            ]
        );
        assert_eq!(p.status.batches[2].status, "unconfirmed");
        // Never below zero, whatever is reported.
        p.apply(RunEvent::Unconfirmed { index: 2, jobs: 30 });
        assert_eq!(p.status.pending, 0);
    }

    #[test]
    fn each_phase_event_sets_its_phase_and_text() {
        let index = 3;
        let cases = [
            (
                RunEvent::WaitingForBudget { index },
                BatchPhase::WaitingForBudget,
                "waiting for budget",
            ),
            (
                RunEvent::CostLimitRefused { index },
                BatchPhase::CostLimit,
                "cost limit",
            ),
            (
                RunEvent::LookingUp { index },
                BatchPhase::LookingUp,
                "looking up",
            ),
            (
                RunEvent::Retrying { index },
                BatchPhase::Retrying,
                "retrying",
            ),
            (
                RunEvent::SubmitFailed { index },
                BatchPhase::SubmitFailed,
                "submit failed",
            ),
            (
                RunEvent::ReAttached { index },
                BatchPhase::ReAttached,
                "re-attached",
            ),
            (
                RunEvent::Cancelling { index },
                BatchPhase::Cancelling,
                "cancelling",
            ),
            (
                RunEvent::NotSubmitted { index },
                BatchPhase::NotSubmitted,
                "not submitted",
            ),
            (RunEvent::Lost { index }, BatchPhase::Lost, "lost"),
        ];
        for (event, phase, text) in cases {
            let mut p = opened();
            queued(&mut p, 3, ProviderKind::Gemini, 2);
            let before = p.status.clone();
            p.apply(event);
            let b = &p.status.batches[0];
            assert_eq!((b.phase, b.status.as_str()), (phase, text));
            assert_eq!(phase.to_string(), text);
            // Only the row's phase moved: no counter did.
            let mut after = p.status.clone();
            after.batches[0].phase = BatchPhase::Queued;
            after.batches[0].status = "queued".into();
            assert_eq!(after, before, "{phase:?}");
        }
    }

    #[test]
    fn troubles_are_counted_and_the_latest_kept_in_one_line() {
        let mut p = opened();
        p.apply(RunEvent::Trouble {
            index: 2,
            kind: Trouble::Poll { rate_limited: true },
            message: "HTTP 429\nslow down",
        });
        p.apply(RunEvent::Trouble {
            index: 3,
            kind: Trouble::Poll {
                rate_limited: false,
            },
            message: "connection reset",
        });
        p.apply(RunEvent::Trouble {
            index: 3,
            kind: Trouble::Download,
            message: "download cut\r\nshort",
        });
        let s = &p.status;
        assert_eq!(
            (s.poll_failures, s.polls_rate_limited, s.download_retries),
            (2, 1, 1)
        );
        assert_eq!(
            s.last_warning.as_deref(),
            Some("batch 3: download cut  short")
        );
    }

    #[test]
    fn the_run_end_settles_the_totals_and_a_reattached_batch_keeps_its_id_and_jobs() {
        // A run that keeps its rows' job ids (the Python package's does).
        let mut p = Progress::new(opened().status, true);
        p.apply(RunEvent::Queued {
            index: 0,
            provider: ProviderKind::Anthropic,
            total: 5,
            jobs: Some(ids(5)),
            at_provider: Some(("msgbatch_1", at(-60))),
        });
        let b = &p.status.batches[0];
        assert_eq!((b.total, b.jobs.len()), (5, 5));
        assert_eq!(b.batch_id.as_deref(), Some("msgbatch_1"));
        assert_eq!(b.submitted_at, Some(at(-60)));
        assert_eq!(b.phase, BatchPhase::Queued);
        p.apply(RunEvent::Ended {
            index: 0,
            at: at(1),
        });
        assert_eq!(p.status.batches[0].jobs.len(), 5, "kept");
        p.apply(RunEvent::RunEnded {
            cost_used_usd: 1.5,
            cost_reserved_usd: 0.25,
            stop_reason: Some(StopReason::Drain),
        });
        let s = &p.status;
        assert!(s.is_complete);
        assert_eq!((s.cost_used_usd, s.cost_reserved_usd), (1.5, 0.25));
        assert_eq!(s.stop_reason, Some(StopReason::Drain));
    }

    #[test]
    fn the_phase_reads_and_writes_as_snake_case() {
        let v = serde_json::to_value(BatchPhase::LeftAtProvider).unwrap();
        assert_eq!(v, "left_at_provider");
        let back: BatchPhase = serde_json::from_value("waiting_for_budget".into()).unwrap();
        assert_eq!(back, BatchPhase::WaitingForBudget);
        // A row written before the phase existed reads as queued.
        let row = BatchProgress::default();
        let mut v = serde_json::to_value(&row).unwrap();
        v.as_object_mut().map(|o| o.remove("phase"));
        let back: BatchProgress = serde_json::from_value(v).unwrap();
        assert_eq!(back.phase, BatchPhase::Queued);
    }
}
