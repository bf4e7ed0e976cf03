//! `Batch`: the fluent builder users start from, and `BatchParams`, the
//! validated configuration it produces.
//!
//! Every setter with a bound checks it at once and returns a clear error, and
//! `add_job` merges the defaults into the job and validates it against the
//! model's capabilities, so a mistake surfaces before anything is submitted.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::job::{Job, ResponseSchema};
use crate::layout::ResultsFormat;
use crate::providers::ProviderSettings;

mod add;

pub use add::validate_against_model;
pub(crate) use add::AddedIds;

/// `max_tokens` used when neither the job nor the defaults set one.
pub const DEFAULT_MAX_TOKENS: u32 = 1024;
/// Default jobs per provider batch.
pub const DEFAULT_ITEMS_PER_BATCH: usize = 10;
/// Default provider batches in flight at once.
pub const DEFAULT_MAX_PARALLEL_BATCHES: usize = 10;
/// Shortest time limit accepted.
pub const MIN_TIME_LIMIT: Duration = Duration::from_secs(10);
/// Longest time limit accepted (the providers' own batch window).
pub const MAX_TIME_LIMIT: Duration = Duration::from_secs(24 * 3600);

/// Whether a run keeps the providers' raw requests and responses
/// (`results_dir/raw_files`), for debugging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawFiles {
    /// Write them.
    Write,
    /// Do not.
    Skip,
}

/// How much the run logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verbosity {
    /// Everything, including each HTTP call.
    Debug,
    /// Batch-level events.
    Info,
    /// Only what needs attention (the default).
    #[default]
    Warn,
    /// Only errors.
    Error,
}

impl Verbosity {
    /// The matching `tracing` level name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verbosity::Debug => "debug",
            Verbosity::Info => "info",
            Verbosity::Warn => "warn",
            Verbosity::Error => "error",
        }
    }
}

impl std::str::FromStr for Verbosity {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "debug" => Ok(Verbosity::Debug),
            "info" => Ok(Verbosity::Info),
            "warn" | "warning" => Ok(Verbosity::Warn),
            "error" => Ok(Verbosity::Error),
            other => Err(Error::Validation(format!(
                "verbosity '{other}' is not one of debug, info, warn, error"
            ))),
        }
    }
}

/// Parameters every job gets unless it sets its own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DefaultParams {
    /// Default model.
    pub model: Option<String>,
    /// Default temperature (dropped for models that take only their default).
    pub temperature: Option<f64>,
    /// Default output-token limit.
    pub max_tokens: Option<u32>,
    /// Default response schema.
    pub response_schema: Option<ResponseSchema>,
    /// Default citations setting.
    pub enable_citations: Option<bool>,
}

impl DefaultParams {
    /// Empty defaults.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the default model.
    pub fn model(mut self, m: impl Into<String>) -> Self {
        self.model = Some(m.into());
        self
    }
    /// Sets the default temperature.
    pub fn temperature(mut self, t: f64) -> Self {
        self.temperature = Some(t);
        self
    }
    /// Sets the default output-token limit.
    pub fn max_tokens(mut self, n: u32) -> Self {
        self.max_tokens = Some(n);
        self
    }
    /// Sets the default response schema.
    pub fn response_schema(mut self, s: ResponseSchema) -> Self {
        self.response_schema = Some(s);
        self
    }
    /// Sets the default citations setting.
    pub fn citations(mut self, on: bool) -> Self {
        self.enable_citations = Some(on);
        self
    }
}

/// A duration in hours, minutes, seconds and milliseconds, the zero parts
/// left out: `25h`, `9s 500ms`, `0s`.
fn duration_text(d: Duration) -> String {
    let ms = d.as_millis();
    let parts = [
        (ms / 3_600_000, "h"),
        (ms / 60_000 % 60, "m"),
        (ms / 1000 % 60, "s"),
        (ms % 1000, "ms"),
    ];
    let text: Vec<String> = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if text.is_empty() {
        "0s".to_string()
    } else {
        text.join(" ")
    }
}

/// The validated configuration of a batch run.
#[derive(Debug, Clone)]
pub struct BatchParams {
    /// Where results go: `{job_id}.json` files, or `results.jsonl`.
    pub results_dir: PathBuf,
    /// How results are laid out ([`ResultsFormat`]). `None`: as the state
    /// being resumed records, and files for a new run.
    pub results_format: Option<ResultsFormat>,
    /// The crash-safe state file; a temporary one when `None`.
    pub state_file: Option<PathBuf>,
    /// Resume from the state file when it exists (default true).
    pub reuse_state: bool,
    /// Resubmit jobs that failed in an earlier run of this state.
    pub retry_failed: bool,
    /// On resume, run the jobs whose request changed since the state
    /// recorded them (and replace their old results) instead of refusing.
    pub rerun_changed: bool,
    /// With no state file, keep the result files already in `results_dir`
    /// whose job id and fingerprint match a job of this run, instead of
    /// refusing to run over them.
    pub adopt_results: bool,
    /// Provider batches in flight at once.
    pub max_parallel_batches: usize,
    /// Jobs per provider batch (also capped by each provider's limits).
    pub items_per_batch: usize,
    /// Spending cap in USD.
    pub cost_limit_usd: Option<f64>,
    /// Wall-clock cap for the run.
    pub time_limit: Option<Duration>,
    /// Defaults merged into each job.
    pub default_params: DefaultParams,
    /// Write raw request/response files under `results_dir/raw_files`.
    pub raw_files: bool,
    /// How much the application should log: the library only emits
    /// `tracing` events and installs no subscriber; the application's own
    /// subscriber reads this (the CLI and the Python package do).
    pub verbosity: Verbosity,
    /// Expected output as a fraction of `max_tokens`, for the dry run's expected cost.
    pub expected_output_fraction: f64,
    /// How often the progress callback fires.
    pub progress_interval: Duration,
    /// Estimate every batch's worst-case cost before it is submitted, for
    /// progress reports ([`crate::BatchProgress::estimated_cost_usd`]); with
    /// a cost limit it is estimated anyway. Off by default: the estimate
    /// counts every prompt's tokens.
    pub estimate_batch_costs: bool,
    /// Name each batch's jobs on its progress row
    /// ([`crate::BatchProgress::jobs`]).
    pub keep_batch_job_ids: bool,
    /// API keys, base URLs, retries and poll intervals per provider.
    pub providers: ProviderSettings,
}

/// The fluent builder of a batch run.
///
/// ```no_run
/// use batchata::{Batch, DefaultParams, Job};
/// # fn main() -> batchata::Result<()> {
/// let mut batch = Batch::new("results")
///     .default_params(DefaultParams::new().model("claude-haiku-4-5").max_tokens(300))
///     .cost_limit_usd(5.0)
///     .items_per_batch(100);
/// batch.add_job(Job::prompt("Name three rivers in Spain."))?;
/// let run = batch.run_blocking()?;
/// println!("{} completed", run.results()?.completed.len());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Batch {
    pub(crate) params: BatchParams,
    /// The jobs added, on disk until the run streams them into its state.
    pub(crate) jobs: crate::spool::JobSpool,
    /// What tells the jobs' ids apart while they are added.
    pub(crate) ids: AddedIds,
    /// Whether the default response schema has been checked (once, not per job).
    default_schema_checked: bool,
    pub(crate) catalog: Arc<Catalog>,
    /// What preflight learnt about the jobs' files, so each is read once.
    pub(crate) file_checks: crate::preflight::FileChecks,
    models_file_error: Option<String>,
    /// Settings refused by the setters, reported together when the batch
    /// is planned or started (setters return `Self`, so a chain never
    /// stops half-way).
    problems: Vec<String>,
    pub(crate) progress: Option<crate::run::ProgressCallback>,
    pub(crate) handle_ctrl_c: bool,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("params", &self.params)
            .field("jobs", &self.jobs.len())
            .finish()
    }
}

impl Batch {
    /// A batch writing its results into `results_dir`.
    pub fn new(results_dir: impl AsRef<Path>) -> Self {
        let (catalog, err) = match Catalog::load_default() {
            Ok(c) => (c, None),
            Err(e) => (
                Catalog::builtin().clone(),
                Some(format!(
                    "the models file named by {}: {e}",
                    crate::catalog::MODELS_FILE_ENV
                )),
            ),
        };
        Batch {
            params: BatchParams {
                results_dir: results_dir.as_ref().to_path_buf(),
                results_format: None,
                state_file: None,
                reuse_state: true,
                retry_failed: false,
                rerun_changed: false,
                adopt_results: false,
                max_parallel_batches: DEFAULT_MAX_PARALLEL_BATCHES,
                items_per_batch: DEFAULT_ITEMS_PER_BATCH,
                cost_limit_usd: None,
                time_limit: None,
                default_params: DefaultParams::default(),
                raw_files: !results_dir.as_ref().as_os_str().is_empty(),
                verbosity: Verbosity::default(),
                expected_output_fraction: 0.25,
                progress_interval: Duration::from_secs(1),
                estimate_batch_costs: false,
                keep_batch_job_ids: false,
                providers: ProviderSettings::from_env(),
            },
            jobs: crate::spool::JobSpool::new(),
            ids: AddedIds::default(),
            default_schema_checked: false,
            catalog: Arc::new(catalog),
            file_checks: Default::default(),
            problems: err.iter().cloned().collect(),
            models_file_error: err,
            progress: None,
            handle_ctrl_c: false,
        }
    }

    /// Keeps crash-safe state in `path`; a rerun with the same file
    /// resumes from it (see [`Batch::fresh_state`] to start over).
    pub fn state_file(mut self, path: impl AsRef<Path>) -> Self {
        self.params.state_file = Some(path.as_ref().to_path_buf());
        self
    }

    /// Starts over instead of resuming: the state file's earlier run is
    /// replaced (its results stay on disk until this run rewrites them).
    pub fn fresh_state(mut self) -> Self {
        self.params.reuse_state = false;
        self
    }

    /// On resume, resubmit the jobs that failed before (only those).
    pub fn retry_failed(mut self) -> Self {
        self.params.retry_failed = true;
        self
    }

    /// On resume, run again the jobs whose request (prompt, file content,
    /// model, parameters, schema) changed since the state recorded them,
    /// replacing their old results. Without it such a run is refused.
    pub fn rerun_changed(mut self) -> Self {
        self.params.rerun_changed = true;
        self
    }

    /// When the results folder holds result files but the state file is
    /// gone, keep the completed results whose job id and fingerprint match
    /// a job of this run (they are not paid again) and run the rest.
    /// Without it such a run is refused.
    pub fn adopt_results(mut self) -> Self {
        self.params.adopt_results = true;
        self
    }

    /// How results are laid out in the results folder: a `{job_id}.json`
    /// per job ([`ResultsFormat::Files`], batchata's layout and the
    /// default), or one line per job in `results.jsonl`
    /// ([`ResultsFormat::Jsonl`]: one append instead of one file per job,
    /// for runs of hundreds of thousands of jobs and more; a job run again
    /// appends a new line, and its last line wins).
    ///
    /// A run keeps the layout it started with: a resume follows the state
    /// when this is not set, and is refused when it asks for the other one.
    pub fn results_format(mut self, format: ResultsFormat) -> Self {
        self.params.results_format = Some(format);
        self
    }

    /// Parameters for jobs that do not set their own.
    pub fn default_params(mut self, defaults: DefaultParams) -> Self {
        self.params.default_params = defaults;
        self.default_schema_checked = false;
        self
    }

    /// Stops submitting once estimated spend would pass `usd` (> 0).
    pub fn cost_limit_usd(mut self, usd: f64) -> Self {
        if usd.is_finite() && usd > 0.0 {
            self.params.cost_limit_usd = Some(usd);
        } else {
            self.problems.push(format!(
                "cost_limit_usd must be a positive number of dollars, got {usd}"
            ));
        }
        self
    }

    /// Stops the run after `limit` (10 s to 24 h), cancelling what is still running.
    pub fn time_limit(mut self, limit: Duration) -> Self {
        if (MIN_TIME_LIMIT..=MAX_TIME_LIMIT).contains(&limit) {
            self.params.time_limit = Some(limit);
        } else {
            self.problems.push(format!(
                "time_limit must be between 10 seconds and 24 hours, got {}",
                duration_text(limit)
            ));
        }
        self
    }

    /// The time limit from hours, minutes and seconds combined.
    pub fn time_limit_hms(self, hours: u64, minutes: u64, seconds: u64) -> Self {
        let total = hours
            .saturating_mul(3600)
            .saturating_add(minutes.saturating_mul(60))
            .saturating_add(seconds);
        self.time_limit(Duration::from_secs(total))
    }

    /// How much to log, recorded in [`BatchParams::verbosity`] for the
    /// application's `tracing` subscriber: the library emits `tracing`
    /// events and never installs a subscriber itself.
    /// [`Verbosity::as_str`] is the level name an env-filter takes
    /// (`batchata=warn`).
    pub fn verbosity(mut self, v: Verbosity) -> Self {
        self.params.verbosity = v;
        self
    }

    /// Jobs per provider batch (> 0; default 10).
    pub fn items_per_batch(mut self, n: usize) -> Self {
        if n == 0 {
            self.problems
                .push("items_per_batch must be at least 1".into());
        } else {
            self.params.items_per_batch = n;
        }
        self
    }

    /// Provider batches in flight at once (> 0; default 10).
    pub fn max_parallel_batches(mut self, n: usize) -> Self {
        if n == 0 {
            self.problems
                .push("max_parallel_batches must be at least 1".into());
        } else {
            self.params.max_parallel_batches = n;
        }
        self
    }

    /// Whether raw request and response files are written under
    /// `results_dir/raw_files` (default: on whenever a results dir is given).
    pub fn raw_files(mut self, raw: RawFiles) -> Self {
        self.params.raw_files = raw == RawFiles::Write;
        self
    }

    /// Output assumed for the expected cost, as a fraction of `max_tokens` (0 to 1; default 0.25).
    pub fn expected_output_fraction(mut self, f: f64) -> Self {
        if (0.0..=1.0).contains(&f) {
            self.params.expected_output_fraction = f;
        } else {
            self.problems.push(format!(
                "expected_output_fraction must be between 0 and 1, got {f}"
            ));
        }
        self
    }

    /// How often the progress callback fires (default 1 s).
    pub fn progress_interval(mut self, d: Duration) -> Self {
        self.params.progress_interval = d.max(Duration::from_millis(10));
        self
    }

    /// Estimates every batch's worst-case cost before it is submitted and
    /// reports it in its progress
    /// ([`crate::BatchProgress::estimated_cost_usd`]). Default off: the
    /// estimate counts the tokens of every prompt, which a run without a
    /// cost limit does not otherwise need (with a limit it is made anyway).
    pub fn estimate_batch_costs(mut self) -> Self {
        self.params.estimate_batch_costs = true;
        self
    }

    /// Names each batch's jobs on its progress row
    /// ([`crate::BatchProgress::jobs`]) from its submission on. Default
    /// off: a million-job run would hold every id until it ends, for a
    /// reader most applications do not have.
    pub fn keep_batch_job_ids(mut self) -> Self {
        self.params.keep_batch_job_ids = true;
        self
    }

    /// Replaces the provider settings (keys, base URLs, retries, poll intervals).
    pub fn providers(mut self, settings: ProviderSettings) -> Self {
        self.params.providers = settings;
        self
    }

    /// Adds or overrides models from a JSON file shaped like the built-in
    /// catalog. A file that cannot be read or parsed is reported by
    /// [`Batch::check`] (and so by `plan`, `run` and `start`), and jobs
    /// added after it are refused, since their models may be its own.
    pub fn models_file(mut self, path: impl AsRef<Path>) -> Self {
        let mut catalog = (*self.catalog).clone();
        match catalog.merge_file(path.as_ref()) {
            Ok(()) => {
                self.catalog = Arc::new(catalog);
                self.models_file_error = None;
            }
            Err(e) => {
                let problem = format!("models file {}: {e}", path.as_ref().display());
                self.models_file_error = Some(problem.clone());
                self.problems.push(problem);
            }
        }
        self
    }

    /// Every setting refused so far, in one error (`Ok` when there is
    /// none). `plan`, `run` and `start` call it first; calling it after
    /// building a batch reports the same problems sooner.
    pub fn check(&self) -> Result<()> {
        match self.problems.as_slice() {
            [] => Ok(()),
            [one] => Err(Error::Validation(one.clone())),
            many => Err(Error::Validation(format!(
                "{} settings are invalid:\n  - {}",
                many.len(),
                many.join("\n  - ")
            ))),
        }
    }

    /// The validated parameters.
    pub fn params(&self) -> &BatchParams {
        &self.params
    }

    /// The jobs added so far, defaults merged, read back from the spool
    /// (jobs are kept on disk, not in memory, until the run).
    pub fn jobs(&self) -> Vec<Job> {
        match self.jobs.iter() {
            Ok(it) => it.filter_map(|j| j.ok()).collect(),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the job spool");
                Vec::new()
            }
        }
    }

    /// How many jobs were added.
    pub fn job_count(&self) -> usize {
        self.jobs.len()
    }

    /// The catalog this batch resolves models with.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_hours_minutes_seconds_and_milliseconds() {
        let t = |ms: u64| duration_text(Duration::from_millis(ms));
        assert_eq!(t(0), "0s");
        assert_eq!(t(9_500), "9s 500ms");
        assert_eq!(t(90_000), "1m 30s");
        assert_eq!(t(25 * 3_600_000), "25h");
        assert_eq!(t(3_600_000 + 1), "1h 1ms");
    }
}
