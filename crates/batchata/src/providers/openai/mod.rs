//! The OpenAI provider: jobs go out as a JSONL file through the Files API
//! and run as one Batch API batch; results come back as an output file and
//! an error file, both read.
//!
//! The input file is never materialised. Its lines are built from the jobs
//! twice: once to count its bytes (and check the 200 MB limit before any
//! upload), once while the multipart upload streams them, a chunk at a time,
//! through a small bounded channel. A retried upload builds the stream again.
//! Results are streamed too, split into lines as bytes arrive, and matched to
//! jobs by `custom_id`. Every job ends with exactly one result: a line of
//! either file, or a failure that says why there was none (expired,
//! cancelled, failed validation).
//!
//! Layout: `request.rs` builds lines, `response.rs` parses what comes back,
//! `upload.rs` measures and uploads the input file, `collect.rs` reads the
//! results files into one result per job; this module holds the client and
//! its [`Provider`] methods.

mod collect;
pub(crate) mod request;
pub(crate) mod response;
mod upload;

pub use response::EXPIRED_MESSAGE;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::catalog::{Catalog, ModelInfo, ProviderKind};
use crate::error::{Error, Result};
use crate::files::{self, FileKind};
use crate::job::Job;
use crate::providers::common::{is_wire_id, ResultModels};
use crate::providers::http::{
    Attempts, AuthStyle, HttpClientConfig, DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT,
};
use crate::providers::raw::{PendingRequest, RawResults, RawStream};
use crate::providers::*;

use collect::Collector;
use request::{CreateBatch, CHAT_COMPLETIONS_URL};
use response::{BatchList, BatchObject};

/// The API's address when neither the settings nor `OPENAI_BASE_URL` give one.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// How often a batch is polled by default: faster polling was seen to run
/// into rate limits.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);
/// Metadata key holding the run id.
pub const RUN_ID_KEY: &str = "batchata_run_id";
/// Metadata key holding the batch's index in the run.
pub const BATCH_INDEX_KEY: &str = "batchata_batch_index";

/// Size of the chunks the upload is streamed in.
const CHUNK_BYTES: usize = 256 * 1024;
/// Batches created this long before the intent are not looked at by `find_batch`
/// (clock skew between us and the provider).
const FIND_SKEW_SECS: i64 = 600;

/// The OpenAI Files + Batch API client.
#[derive(Debug)]
pub struct OpenAiProvider {
    http: HttpClient,
    base: ProviderBase,
    /// Input files uploaded for a batch whose create had an unknown
    /// outcome, by (run id, batch index): if the batch turns out not to
    /// exist, the next create of that batch uses the file instead of
    /// uploading it again.
    unclaimed_inputs: std::sync::Mutex<std::collections::HashMap<(String, usize), String>>,
}

impl OpenAiProvider {
    /// Builds the client: key from `config.api_key` (set from
    /// `OPENAI_API_KEY` by [`ProviderSettings::from_env`]), base URL from
    /// `config.base_url` (which, like `OPENAI_BASE_URL`, includes `/v1`) or
    /// [`DEFAULT_BASE_URL`], Bearer auth, and the SDKs' retries and timeout
    /// unless the settings say otherwise.
    pub fn new(config: &ProviderConfig, catalog: Arc<Catalog>) -> Result<Self> {
        let key = config
            .api_key
            .clone()
            .filter(|k| !k.expose().trim().is_empty())
            .ok_or_else(|| {
                Error::Validation(
                    "no OpenAI API key: set OPENAI_API_KEY (or ProviderConfig::api_key)".into(),
                )
            })?;
        let base_url = config
            .base_url
            .clone()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(Error::Validation(format!(
                "OpenAI base URL '{base_url}' must start with http:// or https:// (e.g. {DEFAULT_BASE_URL}); check OPENAI_BASE_URL"
            )));
        }
        let http = HttpClient::new(HttpClientConfig {
            kind: ProviderKind::OpenAi,
            base_url,
            key,
            auth: AuthStyle::Bearer,
            max_retries: config.max_retries.unwrap_or(DEFAULT_MAX_RETRIES),
            timeout: config.timeout.unwrap_or(DEFAULT_TIMEOUT),
            headers: Vec::new(),
            key_env: "OPENAI_API_KEY",
        })?;
        Ok(OpenAiProvider {
            http,
            base: ProviderBase::new(ProviderKind::OpenAi, config, catalog, DEFAULT_POLL_INTERVAL),
            unclaimed_inputs: Default::default(),
        })
    }

    /// Replaces the per-batch limits (an organisation with a lower quota, or
    /// tests of the limit checks with small sizes).
    pub fn with_limits(mut self, limits: BatchLimits) -> Self {
        self.base.set_limits(limits);
        self
    }

    /// The one model of a batch's jobs (one per batch: [`ProviderBase::batch_checks`]).
    async fn retrieve(&self, batch_id: &str) -> Result<BatchObject> {
        check_wire_id("batch", batch_id)?;
        self.http
            .get_json("get batch", &format!("/batches/{batch_id}"))
            .await
    }
}

/// Provider ids go into URL paths: only the characters they are made of.
fn check_wire_id(what: &str, id: &str) -> Result<()> {
    if !is_wire_id(id) {
        return Err(Error::Validation(format!(
            "'{id}' is not an OpenAI {what} id (expected letters, digits, '_' and '-')"
        )));
    }
    Ok(())
}

#[async_trait]
impl Provider for OpenAiProvider {
    fn base(&self) -> &ProviderBase {
        &self.base
    }

    fn validate_job(&self, job: &Job, model: &ModelInfo) -> Result<()> {
        let id = job.id_str();
        self.base.check_serves(job, model)?;
        if job.enable_citations {
            return Err(Error::ModelNotSupported(format!(
                "job '{id}': field 'enable_citations': OpenAI models do not return citations; turn citations off for this job or use an Anthropic Claude model"
            )));
        }
        if let Some(path) = &job.file {
            let kind = files::file_kind(path).map_err(|e| Error::job_field(id, "file", e))?;
            let ok = match kind {
                FileKind::Image(_) => model.capabilities.images,
                FileKind::Pdf | FileKind::Text | FileKind::Docx => model.capabilities.files,
            };
            if !ok {
                return Err(Error::ModelNotSupported(format!(
                    "job '{id}': field 'file': model '{}' does not take {} files; choose a model that does, or send text",
                    model.name,
                    files::extension(path)
                )));
            }
        }
        Ok(())
    }

    async fn create_batch_from(
        &self,
        jobs: &dyn JobSource,
        request: BatchRequest<'_>,
    ) -> Result<CreatedBatch> {
        let index = request.batch_index;
        // The input file is built once, from the jobs as they are read,
        // into a temporary file; each upload attempt streams it from there.
        let body = self.build_input(jobs, index)?;
        // The raw request file, named once the id is known.
        let mut raw = request
            .raw_dir
            .map(|dir| PendingRequest::start(dir, "openai"))
            .transpose()?;
        if let Some(raw) = raw.as_mut() {
            raw.write(|w| body.copy_to(w))?;
        }

        let key = (request.run_id.to_string(), index);
        let unclaimed = self
            .unclaimed_inputs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        let file_id = match unclaimed {
            Some(f) => f,
            None => {
                let f = self.upload(&body).await?;
                tracing::debug!(file = %f, bytes = body.len(), jobs = jobs.len(), "batch input uploaded");
                f
            }
        };

        let mut metadata = BTreeMap::new();
        metadata.insert(RUN_ID_KEY, request.run_id.to_string());
        metadata.insert(BATCH_INDEX_KEY, index.to_string());
        let body = CreateBatch {
            input_file_id: &file_id,
            endpoint: CHAT_COMPLETIONS_URL,
            completion_window: "24h",
            metadata,
        };
        let created: Result<BatchObject> = self
            .http
            .post_json_as("create batch", Attempts::Create, "/batches", &body)
            .await;
        let batch = match created {
            Ok(b) => b,
            Err(e @ Error::OutcomeUnknown(_)) => {
                // The batch may exist and use the file; keep it for the
                // next create of this batch should it not.
                self.unclaimed_inputs
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key, file_id);
                return Err(e);
            }
            Err(e) => {
                // Certainly not created: the input file serves nothing.
                let url = self.http.url(&format!("/files/{file_id}"));
                if let Err(d) = self.http.send("delete file", |c| c.delete(&url)).await {
                    tracing::warn!(file = %file_id, error = %d, "could not delete the input file of a batch that was not created");
                }
                return Err(e);
            }
        };

        if let Some(raw) = raw {
            raw.keep(&batch.id);
        }
        Ok(CreatedBatch { batch_id: batch.id })
    }

    async fn get_batch_status(&self, batch_id: &str) -> Result<BatchStatus> {
        Ok(self.retrieve(batch_id).await?.status())
    }

    async fn get_batch_results(
        &self,
        batch_id: &str,
        ctx: ResultsContext<'_>,
        sink: &mut ResultSink<'_>,
    ) -> Result<()> {
        let batch = self.retrieve(batch_id).await?;
        let status = batch.status();
        if !status.state.is_terminal() {
            return Err(Error::Validation(format!(
                "batch {batch_id} is still {}; its results can be collected once it ends",
                batch.status
            )));
        }
        let index: ahash::AHashMap<&str, usize> = ctx
            .jobs
            .iter()
            .enumerate()
            .map(|(i, j)| (j.id_str(), i))
            .collect();
        let mut collector = Collector {
            jobs: ctx.jobs,
            index,
            seen: vec![false; ctx.jobs.len()],
            models: ResultModels::new(self.base.catalog(), batch_id),
            batch_id,
            raw: ctx
                .raw_dir
                .map(|dir| RawResults::new(dir, "openai", batch_id)),
            sink,
        };
        if let Some(id) = &batch.output_file_id {
            self.stream_file(id, RawStream::Responses, &mut collector)
                .await?;
        }
        if let Some(id) = &batch.error_file_id {
            self.stream_file(id, RawStream::Errors, &mut collector)
                .await?;
        }
        collector.finish(&batch)
    }

    async fn cancel_batch(&self, batch_id: &str) -> Result<()> {
        check_wire_id("batch", batch_id)?;
        let url = self.http.url(&format!("/batches/{batch_id}/cancel"));
        self.http.send("cancel batch", |c| c.post(&url)).await?;
        Ok(())
    }

    async fn find_batch(&self, probe: BatchProbe<'_>) -> Result<Option<String>> {
        let url = self.http.url("/batches");
        let index = probe.batch_index.to_string();
        let cutoff = probe.intent_at.timestamp() - FIND_SKEW_SECS;
        let mut after: Option<String> = None;
        loop {
            let resp = self
                .http
                .send("list batches", |c| {
                    let rb = c.get(&url).query(&[("limit", "100")]);
                    match &after {
                        Some(a) => rb.query(&[("after", a.as_str())]),
                        None => rb,
                    }
                })
                .await?;
            let page: BatchList = self.http.decode("list batches", resp).await?;
            for b in &page.data {
                if b.metadata_str(RUN_ID_KEY) == Some(probe.run_id)
                    && b.metadata_str(BATCH_INDEX_KEY) == Some(index.as_str())
                    && !probe.known_ids.contains(&b.id)
                {
                    // Its input file is claimed.
                    self.unclaimed_inputs
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&(probe.run_id.to_string(), probe.batch_index));
                    return Ok(Some(b.id.clone()));
                }
            }
            // Newest first: once a page reaches batches older than the
            // intent, no later page can hold ours.
            let older = page
                .data
                .last()
                .and_then(|b| b.created_at)
                .is_some_and(|t| t < cutoff);
            let next = page
                .last_id
                .clone()
                .or_else(|| page.data.last().map(|b| b.id.clone()));
            if !page.has_more || older || page.data.is_empty() || next == after {
                return Ok(None);
            }
            after = next;
        }
    }
}
