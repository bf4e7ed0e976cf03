//! `BatchRun`: a running (or finished) execution of a [`Batch`], and the
//! ways to start one.
//!
//! [`Batch::run`] runs to the end; [`Batch::start`] returns a handle at once
//! whose [`BatchRun::status`], [`BatchRun::wait`] and [`BatchRun::shutdown`]
//! work while the run goes on; [`Batch::plan`] plans and prices without
//! submitting anything. The engine itself lives in `engine.rs`, planning in
//! `plan.rs`, the dry run in `dry_run.rs`, reading results back in
//! `results.rs`; progress is reported as typed events (`events.rs`) that
//! one reducer folds into [`RunStatus`].

mod collect;
mod dry_run;
mod engine;
mod events;
mod inputs;
mod inspect;
mod isolate;
pub(crate) mod lock;
mod open;
pub(crate) mod plan;
mod report;
mod results;
mod schedule;
mod submit;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::batch::Batch;
use crate::catalog::ProviderKind;
use crate::error::{Error, Result};
use crate::result::JobResult;
use crate::state::JobId;

pub use crate::state::StateCounts;
pub use dry_run::{DryRunBatch, DryRunReport};
pub use events::BatchPhase;
pub use inspect::{cancel_from_state, StateBatch, StateReport};
pub use results::{for_each_result, read_results, ResultFiles, RunResults};

/// Why a run stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Ctrl+C or `shutdown()`: cancel active batches.
    Interrupted,
    /// `drain()`: submit nothing new, let active batches finish.
    Drain,
    /// The time limit passed.
    TimeLimit,
    /// A provider refused the key (401/403): nothing more is submitted,
    /// batches in flight are left running at the provider.
    AuthFailed,
    /// Trouble on our side (results that could not be downloaded or
    /// recorded, a provider that stayed unreachable): nothing more is
    /// submitted, batches in flight are let finish and collected.
    Failed,
}

/// One provider batch as the progress display sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchProgress {
    /// Index in the run.
    pub index: usize,
    /// Provider.
    pub provider: ProviderKind,
    /// Provider batch id once created.
    pub batch_id: Option<String>,
    /// Where the batch is, typed: branch on this, not on `status`.
    #[serde(default)]
    pub phase: BatchPhase,
    /// [`BatchProgress::phase`] in words (`queued`, `submitting`,
    /// `collecting`, ...), or the provider's own status word while the
    /// batch is at the provider and once it ended there: for display.
    pub status: String,
    /// Jobs in the batch.
    pub total: usize,
    /// Jobs finished.
    pub done: usize,
    /// Cost billed so far.
    pub cost_usd: f64,
    /// True once the batch needs nothing more.
    pub finished: bool,
    /// The provider's request counts at the last poll (succeeded, errored,
    /// cancelled, expired, processing): progress inside a batch before its
    /// results are downloaded. All zero until the first poll answers.
    #[serde(default)]
    pub counts: crate::providers::RequestCounts,
    /// Of the jobs finished, those that failed.
    #[serde(default)]
    pub failed: usize,
    /// Of the jobs finished, those cancelled.
    #[serde(default)]
    pub cancelled: usize,
    /// The error of the first job that failed or was cancelled.
    #[serde(default)]
    pub error: Option<String>,
    /// When the provider accepted the batch (for a batch of an earlier run
    /// re-attached, when its create was recorded).
    #[serde(default)]
    pub submitted_at: Option<DateTime<Utc>>,
    /// When the batch needed nothing more.
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
    /// The worst-case cost estimated for the batch before it was submitted
    /// (input plus every job's full `max_tokens`): made when the run has a
    /// cost limit, or when asked ([`Batch::estimate_batch_costs`]).
    #[serde(default)]
    pub estimated_cost_usd: Option<f64>,
    /// The batch's jobs, in order, from its submission on, when the batch
    /// was built with [`crate::Batch::keep_batch_job_ids`]; empty otherwise
    /// (shared, so a status snapshot does not copy them; not serialized).
    #[serde(skip)]
    pub jobs: Arc<[JobId]>,
}

impl Default for BatchProgress {
    fn default() -> Self {
        BatchProgress {
            index: 0,
            provider: ProviderKind::Anthropic,
            batch_id: None,
            phase: BatchPhase::Queued,
            status: BatchPhase::Queued.label().to_owned(),
            total: 0,
            done: 0,
            cost_usd: 0.0,
            finished: false,
            counts: Default::default(),
            failed: 0,
            cancelled: 0,
            error: None,
            submitted_at: None,
            finished_at: None,
            estimated_cost_usd: None,
            jobs: Arc::from(Vec::new()),
        }
    }
}

/// A snapshot of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunStatus {
    /// All jobs.
    pub total: usize,
    /// Not finished yet.
    pub pending: usize,
    /// Completed.
    pub completed: usize,
    /// Failed.
    pub failed: usize,
    /// Cancelled.
    pub cancelled: usize,
    /// Cost billed so far (USD).
    pub cost_used_usd: f64,
    /// Cost reserved for batches in flight (USD).
    pub cost_reserved_usd: f64,
    /// The limit, if any.
    pub cost_limit_usd: Option<f64>,
    /// Provider batches planned or in flight this run.
    pub batches_total: usize,
    /// Batches finished.
    pub batches_completed: usize,
    /// Batches not finished.
    pub batches_pending: usize,
    /// True when the run has ended.
    pub is_complete: bool,
    /// Why it stopped early, if it did.
    pub stop_reason: Option<StopReason>,
    /// Per-batch detail.
    pub batches: Vec<BatchProgress>,
    /// Status polls that failed and were tried again (all causes).
    #[serde(default)]
    pub poll_failures: usize,
    /// Of those, the ones the provider rate-limited (HTTP 429).
    #[serde(default)]
    pub polls_rate_limited: usize,
    /// Result downloads that failed and were tried again, and cancel
    /// requests that failed.
    #[serde(default)]
    pub download_retries: usize,
    /// The latest recoverable warning, in one line: a display folds the
    /// warnings into one status line; the logs have each in full.
    #[serde(default)]
    pub last_warning: Option<String>,
}

/// A progress callback: the run's status and the time since it started.
pub type ProgressCallback = Arc<dyn Fn(&RunStatus, Duration) + Send + Sync>;

/// Handle to a run. Cheap to clone; all clones see the same run.
#[derive(Clone)]
pub struct BatchRun {
    inner: Arc<RunInner>,
}

pub(crate) struct RunInner {
    pub(crate) status: Mutex<events::Progress>,
    pub(crate) stop: watch::Sender<Option<StopReason>>,
    pub(crate) done: watch::Sender<Option<std::result::Result<(), Error>>>,
    pub(crate) results_dir: PathBuf,
    pub(crate) state_file: Mutex<Option<PathBuf>>,
    pub(crate) run_id: Mutex<String>,
    pub(crate) started: std::time::Instant,
    pub(crate) cost: Arc<crate::cost::CostTracker>,
    /// How the run lays its results out (read back without a state too).
    pub(crate) results_format: crate::layout::ResultsFormat,
}

impl std::fmt::Debug for BatchRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchRun")
            .field("results_dir", &self.inner.results_dir)
            .field("status", &self.status())
            .finish()
    }
}

impl BatchRun {
    /// A snapshot of the run's progress.
    pub fn status(&self) -> RunStatus {
        let mut s = lock(&self.inner.status).status.clone();
        s.cost_used_usd = self.inner.cost.used();
        s.cost_reserved_usd = self.inner.cost.reserved();
        s
    }

    /// The run's id (recorded in the state and in provider batch metadata).
    pub fn run_id(&self) -> String {
        lock(&self.inner.run_id).clone()
    }

    /// Where result files are written.
    pub fn results_dir(&self) -> &Path {
        &self.inner.results_dir
    }

    /// Time since the run started.
    pub fn elapsed(&self) -> Duration {
        self.inner.started.elapsed()
    }

    /// Waits until the run ends.
    pub async fn wait(&self) -> Result<RunStatus> {
        let mut rx = self.inner.done.subscribe();
        loop {
            if let Some(outcome) = rx.borrow_and_update().clone() {
                return outcome.map(|_| self.status());
            }
            if rx.changed().await.is_err() {
                return Err(Error::Internal(
                    "the run's task ended without reporting".into(),
                ));
            }
        }
    }

    /// Waits at most `d`; `None` when the run is still going.
    pub async fn wait_timeout(&self, d: Duration) -> Result<Option<RunStatus>> {
        match tokio::time::timeout(d, self.wait()).await {
            Ok(r) => r.map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Stops the run as a Ctrl+C does: nothing new is submitted, the
    /// batches at the provider are cancelled, and whatever they finished
    /// is collected. [`BatchRun::wait`] returns once that is done.
    pub fn shutdown(&self) {
        self.stop(StopReason::Interrupted);
    }

    /// Stops submitting, but lets the batches already at the provider
    /// finish and collects them. A later [`BatchRun::shutdown`] still
    /// cancels them.
    pub fn drain(&self) {
        self.stop(StopReason::Drain);
    }

    fn stop(&self, reason: StopReason) {
        self.inner.stop.send_if_modified(|cur| {
            // An interrupt may upgrade a drain, never the other way round.
            match cur {
                None => {
                    *cur = Some(reason);
                    true
                }
                Some(StopReason::Drain) if reason == StopReason::Interrupted => {
                    *cur = Some(reason);
                    true
                }
                _ => false,
            }
        });
    }

    /// Why the run was asked to stop, if it was: by [`BatchRun::shutdown`],
    /// an interrupt (see [`Batch::handle_interrupts`]), the time limit, a
    /// refused key or trouble on our side. Set at once, while the run
    /// still winds down; [`RunStatus::stop_reason`] has it at the end.
    pub fn stop_reason(&self) -> Option<StopReason> {
        *self.inner.stop.borrow()
    }

    /// Waits until the run is asked to stop (see [`BatchRun::stop_reason`])
    /// and returns why; `None` when the run ended without being asked. An
    /// application prints its notice here ("Interrupted: cancelling the
    /// active batches...") while the run winds down.
    pub async fn stop_requested(&self) -> Option<StopReason> {
        let mut stop = self.inner.stop.subscribe();
        let mut done = self.inner.done.subscribe();
        loop {
            if let Some(reason) = *stop.borrow_and_update() {
                return Some(reason);
            }
            if done.borrow_and_update().is_some() {
                return None;
            }
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() {
                        return *stop.borrow();
                    }
                }
                changed = done.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
            }
        }
    }

    /// Every finished job's result, read from the result files (or
    /// `results.jsonl`, a job's last line).
    pub fn results(&self) -> Result<RunResults> {
        let mut out = RunResults::default();
        self.for_each_result(|r| {
            out.push(r);
            Ok(())
        })?;
        Ok(out)
    }

    /// Where [`BatchRun::results`] reads from, to read the files yourself.
    pub fn result_files(&self) -> Result<ResultFiles> {
        let state = lock(&self.inner.state_file).clone();
        ResultFiles::list_in(
            &self.inner.results_dir,
            state.as_deref(),
            self.inner.results_format,
        )
    }

    /// [`BatchRun::results`] one result at a time, in the same order, so a
    /// caller that converts them (the Python package) never holds them all
    /// twice.
    pub fn for_each_result(&self, f: impl FnMut(JobResult) -> Result<()>) -> Result<()> {
        self.result_files()?.for_each(f)
    }

    /// How the run lays its results out.
    pub fn results_format(&self) -> crate::layout::ResultsFormat {
        self.inner.results_format
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Batch {
    /// Calls `f` with the run's status every `progress_interval` (default 1 s).
    pub fn on_progress(mut self, f: impl Fn(&RunStatus, Duration) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }

    /// Whether the run listens for Ctrl+C itself (default off: a library
    /// installs no signal handler unless asked). When on, an interrupt
    /// does what [`BatchRun::shutdown`] does: nothing new is
    /// submitted, the active batches are cancelled, what they finished is
    /// collected and the state saved. The library prints nothing and never
    /// exits the process; [`BatchRun::stop_requested`] tells the
    /// application when to say so.
    ///
    /// Once a Ctrl+C handler is installed the process no longer ends on
    /// Ctrl+C (tokio keeps the handler for the life of the process), so
    /// further presses do nothing more. An application that wants a second
    /// press to exit at once listens for Ctrl+C itself and calls
    /// [`BatchRun::shutdown`], as the `batchata` CLI does.
    pub fn handle_interrupts(mut self, on: bool) -> Self {
        self.handle_ctrl_c = on;
        self
    }

    /// Starts the run in the background and returns its handle. The jobs'
    /// files are checked again first (one may have changed since its job
    /// was added): every problem is reported and nothing is sent.
    pub async fn start(mut self) -> Result<BatchRun> {
        self.check()?;
        let mut checks = std::mem::take(&mut self.file_checks);
        self.recheck_files(&mut checks)?;
        engine::start(self).await
    }

    /// Runs to the end and returns the finished run.
    pub async fn run(self) -> Result<BatchRun> {
        let run = self.start().await?;
        run.wait().await?;
        Ok(run)
    }

    /// [`Batch::run`] for callers without an async runtime. It starts one
    /// of its own, so it cannot be called from inside a tokio runtime
    /// (an async function, a `#[tokio::main]`): there, use
    /// `run().await`. Called there anyway, it returns an error rather than
    /// panicking.
    pub fn run_blocking(self) -> Result<BatchRun> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::Validation(
                "run_blocking was called inside an async runtime, where it cannot block; call run().await instead".into(),
            ));
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))?;
        rt.block_on(self.run())
    }

    /// Plans and prices the run without submitting anything (the dry run):
    /// per-provider batches, their jobs and estimated cost, the totals
    /// against the cost limit. Nothing is printed; the report's `Display`
    /// is the text the CLI prints for `--dry-run`. Like a run, it first
    /// checks the jobs' files again and reports every problem.
    pub fn plan(&self) -> Result<DryRunReport> {
        self.check()?;
        self.recheck_files(&mut self.file_checks.clone())?;
        dry_run::dry_run(self)
    }
}
