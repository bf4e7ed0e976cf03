//! The Anthropic provider: Message Batches over the shared HTTP layer.
//!
//! `request.rs` builds the create body, `response.rs` parses what comes
//! back; this file is the client: create, poll, stream results from
//! `results_url` line by line, cancel, and find a batch again after a crash
//! (Anthropic batches carry no metadata, so by creation time and size).

pub mod request;
pub mod response;

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;

use crate::catalog::{Catalog, ModelInfo, ProviderKind};
use crate::error::{Error, Result};
use crate::job::Job;
use crate::providers::http::{
    AuthStyle, HttpClient, HttpClientConfig, DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT,
};
use crate::providers::raw::RawFiles;
use crate::providers::{
    default_limits, estimate_jobs_cost, BatchLimits, BatchProbe, BatchRequest, BatchStatus,
    CostEstimate, CreatedBatch, Provider, ProviderConfig, ResultSink, ResultsContext,
};
use crate::result::JobResult;

use response::{BatchPage, MessageBatch, ResultLine};

/// Default base URL (paths carry `/v1`).
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// Default poll interval.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// The API version sent with every request.
pub const API_VERSION: &str = "2023-06-01";
/// Clock skew allowed when matching a lost batch by creation time.
const FIND_SKEW: chrono::Duration = chrono::Duration::seconds(10);

/// The Anthropic provider.
pub struct AnthropicProvider {
    http: HttpClient,
    catalog: Arc<Catalog>,
    poll_interval: Duration,
    limits: BatchLimits,
}

impl AnthropicProvider {
    /// Builds the client from its settings; the key is required.
    pub fn new(config: &ProviderConfig, catalog: Arc<Catalog>) -> Result<Self> {
        let key = config.api_key.clone().ok_or_else(|| {
            Error::Validation(
                "no Anthropic API key: set ANTHROPIC_API_KEY (or pass one with ProviderConfig::api_key)".into(),
            )
        })?;
        let http = HttpClient::new(HttpClientConfig {
            kind: ProviderKind::Anthropic,
            base_url: config
                .base_url
                .clone()
                .unwrap_or_else(|| DEFAULT_BASE_URL.to_string()),
            key,
            auth: AuthStyle::XApiKey,
            max_retries: config.max_retries.unwrap_or(DEFAULT_MAX_RETRIES),
            timeout: config.timeout.unwrap_or(DEFAULT_TIMEOUT),
            headers: vec![("anthropic-version", API_VERSION.to_string())],
            key_env: "ANTHROPIC_API_KEY",
        })?;
        Ok(AnthropicProvider {
            http,
            catalog,
            poll_interval: config.poll_interval.unwrap_or(DEFAULT_POLL_INTERVAL),
            limits: default_limits(ProviderKind::Anthropic),
        })
    }

    /// Lowers the per-batch limits (for smaller quotas, and tests).
    pub fn with_limits(mut self, limits: BatchLimits) -> Self {
        self.limits = limits;
        self
    }

    fn model(&self, job: &Job) -> Result<Arc<ModelInfo>> {
        let m = self
            .catalog
            .lookup(job.model_name())
            .map_err(|e| Error::ModelNotSupported(format!("job '{}': {e}", job.id_str())))?;
        if m.provider != ProviderKind::Anthropic {
            return Err(Error::ProviderNotFound(format!(
                "job '{}': model '{}' is served by {}, not Anthropic",
                job.id_str(),
                m.name,
                m.provider
            )));
        }
        Ok(m)
    }

    async fn retrieve(&self, batch_id: &str) -> Result<MessageBatch> {
        check_id(batch_id)?;
        self.http
            .get_json(
                "retrieve batch",
                &format!("/v1/messages/batches/{batch_id}"),
            )
            .await
    }
}

fn check_id(id: &str) -> Result<()> {
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(Error::Validation(format!(
            "'{id}' is not an Anthropic batch id"
        )));
    }
    Ok(())
}

#[async_trait]
impl Provider for AnthropicProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Anthropic
    }

    fn validate_job(&self, job: &Job, model: &ModelInfo) -> Result<()> {
        if model.provider != ProviderKind::Anthropic {
            return Err(Error::ProviderNotFound(format!(
                "job '{}': model '{}' is not an Anthropic model",
                job.id_str(),
                model.name
            )));
        }
        if let Some(msgs) = &job.messages {
            request::check_alternation(job.id_str(), msgs)?;
        }
        Ok(())
    }

    fn limits(&self) -> BatchLimits {
        self.limits
    }

    fn polling_interval(&self) -> Duration {
        self.poll_interval
    }

    fn estimate_cost(&self, jobs: &[Job]) -> Result<CostEstimate> {
        estimate_jobs_cost(&self.catalog, jobs)
    }

    async fn create_batch(&self, req: BatchRequest<'_>) -> Result<CreatedBatch> {
        if req.jobs.is_empty() {
            return Err(Error::BatchSubmission(
                "a batch needs at least one job".into(),
            ));
        }
        if req.jobs.len() > self.limits.max_requests {
            return Err(Error::BatchSubmission(format!(
                "batch {} has {} requests; Anthropic takes at most {} per batch — lower items_per_batch",
                req.batch_index,
                req.jobs.len(),
                self.limits.max_requests
            )));
        }
        for job in req.jobs {
            let model = self.model(job)?;
            self.validate_job(job, &model)?;
        }
        let body = request::build_body(req.jobs, |j| self.model(j))?;
        if body.len() as u64 > self.limits.max_bytes {
            return Err(Error::BatchSubmission(format!(
                "batch {} is {} MB; Anthropic takes at most {} MB per batch — lower items_per_batch or use smaller files",
                req.batch_index,
                body.len() / 1_000_000,
                self.limits.max_bytes / 1_000_000
            )));
        }
        let body = bytes::Bytes::from(body);
        let url = self.http.url("/v1/messages/batches");
        let resp = self
            .http
            .send("create batch", |c| {
                c.post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
            })
            .await
            .map_err(|e| match e {
                Error::Http {
                    status: Some(s),
                    message,
                    ..
                } if (400..500).contains(&s) => Error::BatchSubmission(message),
                other => other,
            })?;
        let batch: MessageBatch = self.http.decode("create batch", resp).await?;
        if let Some(dir) = req.raw_dir {
            let raw = RawFiles::new(dir);
            let path = raw.request_path("anthropic", &batch.id, "json");
            if let Err(e) = raw.write(&path, &body) {
                tracing::warn!(error = %e, "could not write the raw request file");
            }
        }
        Ok(CreatedBatch {
            job_mapping: req
                .jobs
                .iter()
                .map(|j| (j.id_str().to_string(), j.id_str().to_string()))
                .collect(),
            batch_id: batch.id,
        })
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
        let url = batch.results_url.clone().ok_or_else(|| Error::Http {
            status: None,
            message: format!(
                "anthropic batch {batch_id} has no results yet (status {}); it is tried again",
                batch.processing_status
            ),
            retryable: true,
        })?;
        let jobs: HashMap<&str, &Job> = ctx.jobs.iter().map(|j| (j.id_str(), j)).collect();
        let mut pending: std::collections::HashSet<&str> = jobs.keys().copied().collect();
        let raw = ctx.raw_dir.map(RawFiles::new);
        let mut raw_out = match &raw {
            Some(r) => Some(r.create(&r.response_path("anthropic", batch_id, "jsonl"))?),
            None => None,
        };
        let resp = self
            .http
            .send("download batch results", |c| {
                c.get(&url).header("accept", "application/binary")
            })
            .await?;
        let mut stream = resp.bytes_stream();
        let mut buf: Vec<u8> = Vec::new();
        let mut handle_line = |line: &[u8]| -> Result<()> {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().all(|b| b.is_ascii_whitespace()) {
                return Ok(());
            }
            if let Some(out) = raw_out.as_mut() {
                out.write_all(line)
                    .and_then(|_| out.write_all(b"\n"))
                    .map_err(|e| Error::io("write the raw response file", batch_id, e))?;
            }
            let parsed: ResultLine = serde_json::from_slice(line).map_err(|e| {
                Error::Parse(format!(
                    "anthropic batch {batch_id}: unreadable result line ({e}): {}",
                    String::from_utf8_lossy(&line[..line.len().min(200)])
                ))
            })?;
            let Some(job) = jobs.get(parsed.custom_id.as_str()).copied() else {
                tracing::warn!(custom_id = %parsed.custom_id, batch_id, "result for an unknown custom_id skipped");
                return Ok(());
            };
            if !pending.remove(job.id_str()) {
                return Ok(());
            }
            if let Some(r) = &raw {
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) {
                    if let Err(e) = r.write_job(job.id_str(), &v) {
                        tracing::warn!(error = %e, "could not write a raw job file");
                    }
                }
            }
            let model = self.model(job)?;
            sink(response::line_result(parsed.result, job, &model, batch_id))
        };
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| Error::Http {
                status: None,
                message: self.http.redact(&format!(
                    "anthropic download of batch {batch_id} results broke off: {e}; it is tried again"
                )),
                retryable: true,
            })?;
            let mut rest: &[u8] = &chunk;
            while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
                if buf.is_empty() {
                    handle_line(&rest[..pos])?;
                } else {
                    buf.extend_from_slice(&rest[..pos]);
                    let line = std::mem::take(&mut buf);
                    handle_line(&line)?;
                }
                rest = &rest[pos + 1..];
            }
            buf.extend_from_slice(rest);
        }
        if !buf.is_empty() {
            let line = std::mem::take(&mut buf);
            handle_line(&line)?;
        }
        if let Some(mut out) = raw_out {
            let _ = out.flush();
        }
        for id in pending {
            sink(JobResult {
                batch_id: Some(batch_id.to_string()),
                ..JobResult::failed(id, "no result returned by the provider for this request")
            })?;
        }
        Ok(())
    }

    async fn cancel_batch(&self, batch_id: &str) -> Result<()> {
        check_id(batch_id)?;
        let _: MessageBatch = self
            .http
            .post_json(
                "cancel batch",
                &format!("/v1/messages/batches/{batch_id}/cancel"),
                &serde_json::json!({}),
            )
            .await?;
        Ok(())
    }

    async fn find_batch(&self, probe: BatchProbe<'_>) -> Result<Option<String>> {
        let since = probe.intent_at - FIND_SKEW;
        let mut after: Option<String> = None;
        let mut best: Option<(chrono::DateTime<chrono::Utc>, String)> = None;
        loop {
            let path = match &after {
                Some(a) => format!("/v1/messages/batches?limit=100&after_id={a}"),
                None => "/v1/messages/batches?limit=100".to_string(),
            };
            let page: BatchPage = self.http.get_json("list batches", &path).await?;
            let mut older = false;
            for b in &page.data {
                let Some(created) = b.created() else { continue };
                if created < since {
                    older = true;
                    continue;
                }
                if b.request_counts.total() == probe.request_count as u64
                    && !probe.known_ids.contains(&b.id)
                    && best.as_ref().is_none_or(|(t, _)| created < *t)
                {
                    best = Some((created, b.id.clone()));
                }
            }
            let next = page
                .last_id
                .clone()
                .or_else(|| page.data.last().map(|b| b.id.clone()));
            if !page.has_more || older || page.data.is_empty() || next == after {
                break;
            }
            after = next;
        }
        Ok(best.map(|(_, id)| id))
    }
}
