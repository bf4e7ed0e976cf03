//! The `Provider` trait, the settings each provider is built from, the
//! normalized batch status, and the registry that turns a model's provider
//! kind into a client.
//!
//! A provider knows its wire format and nothing else: cost limits, state,
//! scheduling and progress belong to the run engine. Jobs are sent with
//! `custom_id` = job id (ids are already restricted to what every provider
//! accepts), and results are matched back by that id, never by position.

pub mod anthropic;
pub(crate) mod body;
mod common;
pub mod gemini;
pub(crate) mod http;
pub(crate) mod lines;
pub mod openai;
pub(crate) mod raw;

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, ModelInfo, ProviderKind, Usage};
use crate::citations;
use crate::error::{Error, Result};
use crate::job::Job;
use crate::result::{Citation, JobResult};
use crate::structured;

pub use common::ProviderBase;
pub(crate) use http::HttpClient;
pub use http::Secret;

/// Connection settings of one provider.
#[derive(Clone, Default)]
pub struct ProviderConfig {
    /// API key; from the provider's usual environment variable when not set.
    pub(crate) api_key: Option<Secret>,
    /// Base URL, as the official SDK's `*_BASE_URL` variable has it.
    pub(crate) base_url: Option<String>,
    /// Retries per HTTP call after the first attempt (default 2 as the
    /// Anthropic and OpenAI SDKs; 4 for Gemini, as google-genai with retries on).
    pub(crate) max_retries: Option<u32>,
    /// How often to poll a batch (Anthropic 1 s, OpenAI 5 s, Gemini 2 s by default).
    pub(crate) poll_interval: Option<Duration>,
    /// Timeout of one HTTP call (default 600 s).
    pub(crate) timeout: Option<Duration>,
}

impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("base_url", &self.base_url)
            .field("max_retries", &self.max_retries)
            .field("poll_interval", &self.poll_interval)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl ProviderConfig {
    /// Whether a key is set (the key itself never leaves the library but
    /// in the provider's auth header).
    pub fn has_api_key(&self) -> bool {
        self.api_key.is_some()
    }
    /// Sets the API key.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(Secret::new(key));
        self
    }
    /// Sets the base URL.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }
    /// Sets the retries per call.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = Some(n);
        self
    }
    /// Sets the poll interval.
    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.poll_interval = Some(d);
        self
    }
    /// Sets the per-call timeout.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }
}

/// Settings for every provider, built the same way as one provider's:
///
/// ```
/// use batchata::ProviderSettings;
/// use std::time::Duration;
/// let settings = ProviderSettings::from_env()
///     .anthropic(|c| c.base_url("http://127.0.0.1:8765").api_key("test"))
///     .each(|c| c.poll_interval(Duration::from_millis(200)));
/// # let _ = settings;
/// ```
#[derive(Debug, Clone, Default)]
pub struct ProviderSettings {
    anthropic: ProviderConfig,
    openai: ProviderConfig,
    gemini: ProviderConfig,
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl ProviderSettings {
    /// Keys and base URLs from the official SDKs' environment variables:
    /// `ANTHROPIC_API_KEY` / `ANTHROPIC_BASE_URL`, `OPENAI_API_KEY` /
    /// `OPENAI_BASE_URL`, `GOOGLE_API_KEY` (wins) or `GEMINI_API_KEY` /
    /// `GOOGLE_GEMINI_BASE_URL`.
    pub fn from_env() -> Self {
        ProviderSettings {
            anthropic: ProviderConfig {
                api_key: env_nonempty("ANTHROPIC_API_KEY").map(Secret::new),
                base_url: env_nonempty("ANTHROPIC_BASE_URL"),
                ..Default::default()
            },
            openai: ProviderConfig {
                api_key: env_nonempty("OPENAI_API_KEY").map(Secret::new),
                base_url: env_nonempty("OPENAI_BASE_URL"),
                ..Default::default()
            },
            gemini: ProviderConfig {
                api_key: env_nonempty("GOOGLE_API_KEY")
                    .or_else(|| env_nonempty("GEMINI_API_KEY"))
                    .map(Secret::new),
                base_url: env_nonempty("GOOGLE_GEMINI_BASE_URL"),
                ..Default::default()
            },
        }
    }

    /// The settings of one provider.
    pub fn get(&self, kind: ProviderKind) -> &ProviderConfig {
        match kind {
            ProviderKind::Anthropic => &self.anthropic,
            ProviderKind::OpenAi => &self.openai,
            ProviderKind::Gemini => &self.gemini,
        }
    }

    /// Changes one provider's settings: `.with(kind, |c| c.max_retries(1))`.
    pub fn with(
        mut self,
        kind: ProviderKind,
        f: impl FnOnce(ProviderConfig) -> ProviderConfig,
    ) -> Self {
        let slot = match kind {
            ProviderKind::Anthropic => &mut self.anthropic,
            ProviderKind::OpenAi => &mut self.openai,
            ProviderKind::Gemini => &mut self.gemini,
        };
        *slot = f(std::mem::take(slot));
        self
    }

    /// Changes Anthropic's settings.
    pub fn anthropic(self, f: impl FnOnce(ProviderConfig) -> ProviderConfig) -> Self {
        self.with(ProviderKind::Anthropic, f)
    }

    /// Changes OpenAI's settings.
    pub fn openai(self, f: impl FnOnce(ProviderConfig) -> ProviderConfig) -> Self {
        self.with(ProviderKind::OpenAi, f)
    }

    /// Changes Gemini's settings.
    pub fn gemini(self, f: impl FnOnce(ProviderConfig) -> ProviderConfig) -> Self {
        self.with(ProviderKind::Gemini, f)
    }

    /// Changes every provider's settings the same way.
    pub fn each(self, f: impl Fn(ProviderConfig) -> ProviderConfig) -> Self {
        self.anthropic(&f).openai(&f).gemini(&f)
    }
}

/// A provider's hard limits on one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most requests in one batch.
    pub max_requests: usize,
    /// Most bytes of request data in one batch.
    pub max_bytes: u64,
    /// Whether every request of a batch must use the same model.
    pub one_model_per_batch: bool,
}

/// A provider batch's state, the same words for every provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchState {
    /// Accepted, not yet running (OpenAI `validating`).
    Pending,
    /// Running, or finalizing, or cancelling.
    Running,
    /// Ended; results can be collected.
    Complete,
    /// Ended without running, or expired; any finished lines can still be collected.
    Failed,
    /// Ended after a cancel; any finished lines can still be collected.
    Cancelled,
}

impl BatchState {
    /// True once the provider will not change the batch any more.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            BatchState::Complete | BatchState::Failed | BatchState::Cancelled
        )
    }
}

/// Request counts as the provider reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    /// Requests in the batch.
    pub total: u64,
    /// Still running.
    pub processing: u64,
    /// Finished with an answer.
    pub succeeded: u64,
    /// Finished with an error.
    pub errored: u64,
    /// Cancelled before running.
    pub cancelled: u64,
    /// Not run before the batch expired.
    pub expired: u64,
}

/// A batch's status: the normalized state plus the provider's own words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchStatus {
    /// Normalized state.
    pub state: BatchState,
    /// The provider's status string (`in_progress`, `finalizing`, ...).
    pub provider_status: String,
    /// Request counts.
    pub counts: RequestCounts,
    /// Why the batch failed, when it did.
    pub error: Option<String>,
    /// The provider refused the batch's input without running any of it
    /// (OpenAI: `validating` → `failed`, the bad lines in `errors`): the
    /// run splits it to isolate the requests at fault.
    #[serde(default)]
    pub rejected: bool,
}

/// What `create_batch` needs.
#[derive(Debug, Clone, Copy)]
pub struct BatchRequest<'a> {
    /// The jobs, defaults merged and validated.
    pub jobs: &'a [Job],
    /// The run's id, stored in the batch's metadata where the provider has it.
    pub run_id: &'a str,
    /// The batch's index in the run.
    pub batch_index: usize,
    /// `results_dir/raw_files` when raw files are on.
    pub raw_dir: Option<&'a Path>,
}

/// The jobs of a batch being created, read in order as many times as a
/// provider needs them (checked and measured, then once per attempt at
/// sending the body). The run reads them back one at a time from its state
/// file (the state's `JournalJobs`), so a provider that streams its
/// request body never holds a batch's prompts at once; [`JobSlice`] serves
/// jobs already in memory.
pub trait JobSource: Send + Sync {
    /// How many jobs.
    fn len(&self) -> usize;
    /// True when there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The jobs in order, each read as the iterator reaches it.
    fn jobs(&self) -> Result<JobIter<'_>>;
}

/// The jobs of a [`JobSource`], borrowed or read.
pub type JobIter<'a> = Box<dyn Iterator<Item = Result<Cow<'a, Job>>> + Send + 'a>;

/// Jobs in memory as a [`JobSource`].
#[derive(Debug, Clone, Copy)]
pub struct JobSlice<'a>(pub &'a [Job]);

impl JobSource for JobSlice<'_> {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn jobs(&self) -> Result<JobIter<'_>> {
        Ok(Box::new(self.0.iter().map(|j| Ok(Cow::Borrowed(j)))))
    }
}

/// What `create_batch` returns.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedBatch {
    /// The provider's batch id. Results are matched to jobs by id
    /// (`custom_id` / `key` = job id), never by position.
    pub batch_id: String,
}

/// What `get_batch_results` needs to turn provider lines into `JobResult`s.
#[derive(Debug, Clone, Copy)]
pub struct ResultsContext<'a> {
    /// The batch's jobs (for schemas, citations, models, and the ones with no line).
    pub jobs: &'a [Job],
    /// `results_dir/raw_files` when raw files are on.
    pub raw_dir: Option<&'a Path>,
}

/// How the run looks for a batch whose create call may have reached the
/// provider before the process died.
#[derive(Debug, Clone, Copy)]
pub struct BatchProbe<'a> {
    /// The run's id (OpenAI metadata).
    pub run_id: &'a str,
    /// The batch's index (OpenAI metadata).
    pub batch_index: usize,
    /// How many requests it had (Anthropic match).
    pub request_count: usize,
    /// When the create call was about to be made (Anthropic match: created at or after).
    pub intent_at: chrono::DateTime<chrono::Utc>,
    /// Provider batch ids already known to the run, never adopted twice.
    pub known_ids: &'a [String],
}

/// Receives results one at a time, so no batch's results sit in memory together.
pub type ResultSink<'a> = dyn FnMut(JobResult) -> Result<()> + Send + 'a;

/// One provider's batch API.
#[async_trait]
pub trait Provider: Send + Sync {
    /// The settings every provider keeps (catalog, poll interval, limits);
    /// the defaults of `kind`, `limits`, `polling_interval` and
    /// `estimate_cost` read them.
    fn base(&self) -> &ProviderBase;

    /// Which provider this is.
    fn kind(&self) -> ProviderKind {
        self.base().kind()
    }

    /// Provider-specific checks of a merged job, beyond the catalog's.
    fn validate_job(&self, job: &Job, model: &ModelInfo) -> Result<()>;

    /// The provider's per-batch limits.
    fn limits(&self) -> BatchLimits {
        self.base().limits()
    }

    /// How often to poll a batch.
    fn polling_interval(&self) -> Duration {
        self.base().poll_interval()
    }

    /// Estimated (input tokens, worst-case cost in USD) of jobs at batch prices:
    /// input estimate plus full `max_tokens` of output.
    fn estimate_cost(&self, jobs: &[Job]) -> Result<CostEstimate> {
        estimate_jobs_cost(self.base().catalog(), jobs)
    }

    /// Builds the wire requests and creates the batch. A batch that fails
    /// the checks every provider makes (see [`ProviderBase`]) is refused
    /// before anything is sent. This is
    /// [`Provider::create_batch_from`] over jobs in memory.
    async fn create_batch(&self, request: BatchRequest<'_>) -> Result<CreatedBatch> {
        self.create_batch_from(&JobSlice(request.jobs), request)
            .await
    }

    /// [`Provider::create_batch`] with the jobs read from `jobs` as they are
    /// needed (`request.jobs` is not used). The run creates batches this
    /// way: each provider builds its body (or input file) once, from the
    /// jobs as they are read, into a temporary file that each attempt
    /// streams, so neither the body nor the batch's prompts are held whole.
    async fn create_batch_from(
        &self,
        jobs: &dyn JobSource,
        request: BatchRequest<'_>,
    ) -> Result<CreatedBatch>;

    /// The batch's current status.
    async fn get_batch_status(&self, batch_id: &str) -> Result<BatchStatus>;

    /// Streams the batch's results into `sink`, one `JobResult` per job of
    /// `ctx.jobs`: jobs with no line in the provider's output come back failed
    /// with the reason.
    async fn get_batch_results(
        &self,
        batch_id: &str,
        ctx: ResultsContext<'_>,
        sink: &mut ResultSink<'_>,
    ) -> Result<()>;

    /// Asks the provider to cancel the batch.
    async fn cancel_batch(&self, batch_id: &str) -> Result<()>;

    /// Finds a batch created for `probe` whose id was never recorded.
    async fn find_batch(&self, probe: BatchProbe<'_>) -> Result<Option<String>>;
}

/// Estimated cost of some jobs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CostEstimate {
    /// Estimated input tokens.
    pub input_tokens: u64,
    /// Output tokens at full `max_tokens`.
    pub max_output_tokens: u64,
    /// Worst case in USD: input plus full `max_tokens` of output.
    pub worst_case_usd: f64,
    /// Input plus output at full `max_tokens` priced separately, for the expected cost.
    pub output_usd_at_max: f64,
}

impl CostEstimate {
    /// Adds another estimate.
    pub fn add(&mut self, other: &CostEstimate) {
        self.input_tokens += other.input_tokens;
        self.max_output_tokens += other.max_output_tokens;
        self.worst_case_usd += other.worst_case_usd;
        self.output_usd_at_max += other.output_usd_at_max;
    }

    /// Expected cost with output at `fraction` of `max_tokens`.
    pub fn expected_usd(&self, fraction: f64) -> f64 {
        (self.worst_case_usd - self.output_usd_at_max) + self.output_usd_at_max * fraction
    }
}

/// Worst-case cost of jobs from the catalog and the token estimator; shared
/// by every provider's `estimate_cost`.
pub(crate) fn estimate_jobs_cost(catalog: &Catalog, jobs: &[Job]) -> Result<CostEstimate> {
    let mut total = CostEstimate::default();
    for job in jobs {
        let model = catalog.lookup(job.model_name())?;
        let input = crate::tokens::estimate_job_input(&model, job)
            .map_err(|e| Error::Validation(format!("job '{}': {e}", job.id_str())))?;
        let output = job.max_tokens_or_default() as u64;
        let output_usd = model.batch_cost(&Usage {
            output_tokens: output,
            ..Default::default()
        });
        let input_usd = model.batch_cost(&Usage {
            input_tokens: input,
            ..Default::default()
        });
        total.add(&CostEstimate {
            input_tokens: input,
            max_output_tokens: output,
            worst_case_usd: input_usd + output_usd,
            output_usd_at_max: output_usd,
        });
    }
    Ok(total)
}

/// The parts of a successful answer, provider-neutral.
#[derive(Debug, Clone, Default)]
pub(crate) struct Answer {
    /// All text blocks joined.
    pub text: String,
    /// A structured answer delivered as data (a forced tool's input), if any.
    pub structured: Option<serde_json::Value>,
    /// Citations from the answer.
    pub citations: Vec<Citation>,
    /// Tokens billed.
    pub usage: Usage,
}

/// Turns an answer into a `JobResult`: cost at batch prices, the structured
/// answer parsed and validated, citations mapped to fields.
pub(crate) fn build_result(
    job: &Job,
    model: &ModelInfo,
    batch_id: &str,
    answer: Answer,
) -> JobResult {
    let mut result = JobResult {
        job_id: job.id_str().to_string(),
        raw_response: Some(answer.text.clone()),
        input_tokens: answer.usage.total_input(),
        output_tokens: answer.usage.output_tokens,
        cost_usd: model.batch_cost(&answer.usage),
        batch_id: Some(batch_id.to_string()),
        fingerprint: job.fingerprint.clone(),
        ..Default::default()
    };
    if !answer.citations.is_empty() {
        result.citations = Some(answer.citations.clone());
    }
    if let Some(schema) = &job.response_schema {
        let parsed = match answer.structured {
            Some(v) => structured::validate(v, schema),
            None => structured::parse(&answer.text, schema),
        };
        match parsed {
            Ok(p) => {
                if !answer.citations.is_empty() {
                    let mapping = citations::map_fields(&p.value, &answer.citations);
                    if let Some(all) = result.citations.as_mut() {
                        mapping.mark_best_confidence(all);
                    }
                    result.warnings.extend(mapping.warnings);
                    result.citation_mappings = Some(mapping.fields);
                }
                result.parsed_response = Some(p.value);
                result.validation_errors = p.validation_errors;
            }
            Err(e) => result.error = Some(e.to_string()),
        }
    }
    result
}

/// Builds the client of one provider.
pub fn create_provider(
    kind: ProviderKind,
    config: &ProviderConfig,
    catalog: Arc<Catalog>,
) -> Result<Arc<dyn Provider>> {
    match kind {
        ProviderKind::Anthropic => Ok(Arc::new(anthropic::AnthropicProvider::new(
            config, catalog,
        )?)),
        ProviderKind::OpenAi => Ok(Arc::new(openai::OpenAiProvider::new(config, catalog)?)),
        ProviderKind::Gemini => Ok(Arc::new(gemini::GeminiProvider::new(config, catalog)?)),
    }
}

/// Each provider's per-batch limits, known without a client (for planning
/// and the dry run): Anthropic 100,000 requests or 256 MB; OpenAI 50,000
/// requests or 200 MB, one model per batch; Gemini one model per batch and
/// a 2 GB input file (it states no request count; 100,000 is ours).
pub(crate) fn default_limits(kind: ProviderKind) -> BatchLimits {
    match kind {
        ProviderKind::Anthropic => BatchLimits {
            max_requests: 100_000,
            max_bytes: 256_000_000,
            one_model_per_batch: false,
        },
        ProviderKind::OpenAi => BatchLimits {
            max_requests: 50_000,
            max_bytes: 200_000_000,
            one_model_per_batch: true,
        },
        ProviderKind::Gemini => BatchLimits {
            max_requests: 100_000,
            max_bytes: 2_000_000_000,
            one_model_per_batch: true,
        },
    }
}
