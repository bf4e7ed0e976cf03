//! The Anthropic provider: Message Batches over the shared HTTP layer.
//!
//! `request.rs` builds the create body, `response.rs` parses what comes
//! back; this file is the client: create (limits checked before sending),
//! poll, stream results from `results_url` line by line, cancel, and find a
//! batch again after a crash (Anthropic batches carry no metadata, so by
//! creation time and size). It knows nothing of cost limits, run state or
//! progress.

pub(crate) mod request;
pub(crate) mod response;

pub use response::{CANCELED_BY_PROVIDER_MESSAGE, EXPIRED_MESSAGE, NO_RESULT_MESSAGE};

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;

use crate::catalog::{Catalog, ModelInfo, ProviderKind};
use crate::error::{Error, Result};
use crate::job::Job;
use crate::providers::body::{BodySpool, SpooledBody};
use crate::providers::common::{build_checked, is_wire_id, submission_error};
use crate::providers::http::{
    Attempts, AuthStyle, HttpClient, HttpClientConfig, DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT,
};
use crate::providers::raw::RawFiles;
use crate::providers::{
    BatchLimits, BatchProbe, BatchRequest, BatchStatus, CreatedBatch, JobSource, Provider,
    ProviderBase, ProviderConfig, ResultSink, ResultsContext,
};
use crate::result::JobResult;

use request::FileUses;
use response::{BatchPage, LineContext, LineId, LineSplitter, MessageBatch, ResultLine};

/// Default base URL (paths carry `/v1`).
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// Default poll interval.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// The API version sent with every request.
pub const API_VERSION: &str = "2023-06-01";
/// Clock skew allowed when matching a lost batch by creation time.
const FIND_SKEW: chrono::Duration = chrono::Duration::seconds(10);
/// Batches listed per page when looking for a lost batch.
const FIND_PAGE_SIZE: usize = 100;
/// Pages looked at, at most, when looking for a lost batch.
const FIND_MAX_PAGES: usize = 50;
/// Longest a results download may take in total; a stalled one is cut
/// sooner by the per-read timeout.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

/// The Anthropic provider.
pub struct AnthropicProvider {
    http: HttpClient,
    base: ProviderBase,
}

impl std::fmt::Debug for AnthropicProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnthropicProvider")
            .field("http", &self.http)
            .field("poll_interval", &self.base.poll_interval())
            .field("limits", &self.base.limits())
            .finish()
    }
}

impl AnthropicProvider {
    /// Builds the client from its settings. The key is required
    /// ([`crate::providers::ProviderSettings::from_env`] reads
    /// `ANTHROPIC_API_KEY`); the base URL defaults to
    /// `https://api.anthropic.com`, retries to 2, the per-call timeout to
    /// 600 s and the poll interval to 1 s.
    pub fn new(config: &ProviderConfig, catalog: Arc<Catalog>) -> Result<Self> {
        let key = config
            .api_key
            .clone()
            .filter(|k| !k.expose().trim().is_empty())
            .ok_or_else(|| {
                Error::Validation(
                    "no Anthropic API key: set ANTHROPIC_API_KEY (or pass a key with ProviderConfig::api_key)"
                        .into(),
                )
            })?;
        let http = HttpClient::new(HttpClientConfig {
            kind: ProviderKind::Anthropic,
            base_url: config
                .base_url
                .clone()
                .filter(|u| !u.trim().is_empty())
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
            base: ProviderBase::new(
                ProviderKind::Anthropic,
                config,
                catalog,
                DEFAULT_POLL_INTERVAL,
            ),
        })
    }

    /// Lowers the per-batch limits (for smaller quotas, and tests).
    pub fn with_limits(mut self, limits: BatchLimits) -> Self {
        self.base.set_limits(limits);
        self
    }

    /// The create body, built in one pass over the jobs into a temporary
    /// file: the batch passes the checks every provider makes
    /// ([`ProviderBase::batch_checks`], a job at a time), each job is
    /// checked, and the body is checked against the size limit as it grows,
    /// a piece at a time, each piece written out and dropped.
    fn build_body(&self, jobs: &dyn JobSource, index: usize) -> Result<SpooledBody> {
        let total = jobs.len();
        let mut body = BodySpool::new()?;
        let mut w = request::BodyWriter::streaming_with(FileUses::Unknown);
        build_checked(self, jobs, index, |i, job, model| {
            w.push(job, model)?;
            request::check_within(&w, i + 1, total, self.base.limits().max_bytes).map_err(|e| {
                match e {
                    Error::BatchSubmission(m) => {
                        Error::BatchSubmission(format!("batch {index}: {m}"))
                    }
                    other => other,
                }
            })?;
            if w.buffered() >= request::CHUNK_BYTES {
                body.write(&w.take())?;
            }
            Ok(())
        })?;
        body.write(&w.finish())?;
        body.finish()
    }

    fn model(&self, job: &Job) -> Result<Arc<ModelInfo>> {
        self.base.model(job)
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

    /// Where to download results: `results_url` when it is on the configured
    /// base URL; otherwise its path on the base URL (a proxy in between), so
    /// the key is never sent to another host.
    fn results_location(&self, batch_id: &str, results_url: &str) -> String {
        let base = self.http.base_url();
        if results_url
            .strip_prefix(base)
            .is_some_and(|rest| rest.starts_with('/'))
        {
            return results_url.to_string();
        }
        let path = reqwest::Url::parse(results_url)
            .ok()
            .filter(|u| u.path().starts_with("/v1/"))
            .map(|u| match u.query() {
                Some(q) => format!("{}?{q}", u.path()),
                None => u.path().to_string(),
            })
            .unwrap_or_else(|| format!("/v1/messages/batches/{batch_id}/results"));
        tracing::debug!(
            batch_id,
            "results_url is on another host; fetching its path from the base URL"
        );
        self.http.url(&path)
    }
}

fn check_id(id: &str) -> Result<()> {
    if id.len() > 128 || !is_wire_id(id) {
        return Err(Error::Validation(format!(
            "'{id}' is not an Anthropic batch id (expected msgbatch_...)"
        )));
    }
    Ok(())
}

#[async_trait]
impl Provider for AnthropicProvider {
    fn base(&self) -> &ProviderBase {
        &self.base
    }

    fn validate_job(&self, job: &Job, model: &ModelInfo) -> Result<()> {
        self.base.check_serves(job, model)?;
        if let Some(msgs) = &job.messages {
            request::check_alternation(job.id_str(), msgs)?;
        }
        Ok(())
    }

    async fn create_batch_from(
        &self,
        jobs: &dyn JobSource,
        req: BatchRequest<'_>,
    ) -> Result<CreatedBatch> {
        // The body is built once, from the jobs as they are read, into a
        // temporary file, and each attempt streams it from there: a
        // 10,000-job body is tens of megabytes, and neither it nor the
        // batch's prompts are held whole.
        let body = self.build_body(jobs, req.batch_index)?;
        let url = self.http.url("/v1/messages/batches");
        let resp = self
            .http
            .send_streamed(
                "create batch",
                Attempts::Create,
                |c, stream| {
                    c.post(&url)
                        .header("content-type", "application/json")
                        .header("content-length", body.len())
                        .body(stream)
                },
                |tx| body.send(tx, request::CHUNK_BYTES),
            )
            .await
            .map_err(submission_error)?;
        let batch: MessageBatch = self.http.decode("create batch", resp).await.map_err(|e| {
            Error::OutcomeUnknown(format!(
                "create batch: Anthropic accepted the batch but its reply could not be read ({e})"
            ))
        })?;
        if let Some(dir) = req.raw_dir {
            let raw = RawFiles::new(dir);
            let path = raw.request_path("anthropic", &batch.id, "json");
            let written = raw.create(&path).and_then(|mut f| {
                body.copy_to(&mut f)?;
                f.flush()
                    .map_err(|e| Error::io("write the raw request file", &path, e))
            });
            if let Err(e) = written {
                tracing::warn!(error = %e, "could not write the raw request file");
            }
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
        let Some(given_url) = batch.results_url.as_deref() else {
            if batch.archived_at.is_some() {
                return Err(Error::Http {
                    status: None,
                    message: format!(
                        "anthropic batch {batch_id} is archived; its results can no longer be downloaded (Anthropic keeps them 29 days)"
                    ),
                    retryable: false,
                });
            }
            return Err(Error::Http {
                status: None,
                message: format!(
                    "anthropic batch {batch_id} has no results yet (status {}); it is tried again",
                    batch.processing_status
                ),
                retryable: true,
            });
        };
        let url = self.results_location(batch_id, given_url);
        let line_ctx = LineContext {
            batch_id,
            cancel_requested: batch.cancel_initiated_at.is_some(),
        };
        let jobs: ahash::AHashMap<&str, &Job> = ctx.jobs.iter().map(|j| (j.id_str(), j)).collect();
        let mut pending: ahash::AHashSet<&str> = jobs.keys().copied().collect();
        let raw = ctx.raw_dir.map(RawFiles::new);
        let resp = self
            .http
            .send("download batch results", |c| {
                c.get(&url)
                    .header("accept", "application/binary")
                    .timeout(DOWNLOAD_TIMEOUT)
            })
            .await?;
        let mut raw_out = match &raw {
            Some(r) => Some(r.create(&r.response_path("anthropic", batch_id, "jsonl"))?),
            None => None,
        };
        let mut handle_line = |line: &[u8]| -> Result<()> {
            if let Some(out) = raw_out.as_mut() {
                if let Err(e) = out.write_all(line).and_then(|_| out.write_all(b"\n")) {
                    // Debug output only: the results themselves still count.
                    tracing::warn!(batch_id, error = %e, "could not write the raw response file; raw lines stop here");
                    raw_out = None;
                }
            }
            let (job, result) = match serde_json::from_slice::<ResultLine>(line) {
                Ok(parsed) => {
                    let Some(job) = jobs.get(parsed.custom_id.as_str()).copied() else {
                        tracing::warn!(custom_id = %parsed.custom_id, batch_id, "result for an unknown custom_id skipped");
                        return Ok(());
                    };
                    (job, Ok(parsed.result))
                }
                Err(e) => match serde_json::from_slice::<LineId>(line) {
                    Ok(LineId { custom_id }) if jobs.contains_key(custom_id.as_str()) => {
                        (jobs[custom_id.as_str()], Err(e))
                    }
                    _ => {
                        tracing::warn!(batch_id, error = %e, "unreadable result line skipped");
                        return Ok(());
                    }
                },
            };
            if !pending.remove(job.id_str()) {
                tracing::warn!(
                    custom_id = job.id_str(),
                    batch_id,
                    "second result for the same custom_id skipped"
                );
                return Ok(());
            }
            if let Some(r) = &raw {
                let written = match serde_json::from_slice::<serde_json::Value>(line) {
                    Ok(v) => r.write_job(job.id_str(), &v),
                    Err(_) => r.write(&r.job_path(job.id_str()), line),
                };
                if let Err(e) = written {
                    tracing::warn!(error = %e, "could not write a raw job file");
                }
            }
            let result = match result {
                Ok(line_result) => {
                    let model = self.model(job)?;
                    response::line_result_in(line_result, job, &model, line_ctx)
                }
                Err(e) => JobResult {
                    batch_id: Some(batch_id.to_string()),
                    ..JobResult::failed(
                        job.id_str(),
                        format!("Anthropic returned a result line that could not be read: {e}"),
                    )
                },
            };
            sink(result)
        };
        let mut lines = LineSplitter::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| Error::Http {
                status: None,
                message: self.http.redact(&format!(
                    "anthropic download of batch {batch_id} results broke off: {e}; it is tried again"
                )),
                retryable: true,
            })?;
            lines.push(&chunk, &mut handle_line)?;
        }
        lines.finish(&mut handle_line)?;
        if let Some(mut out) = raw_out {
            if let Err(e) = out.flush() {
                tracing::warn!(error = %e, "could not finish the raw response file");
            }
        }
        for id in pending {
            sink(JobResult {
                batch_id: Some(batch_id.to_string()),
                ..JobResult::failed(id, response::NO_RESULT_MESSAGE)
            })?;
        }
        Ok(())
    }

    async fn cancel_batch(&self, batch_id: &str) -> Result<()> {
        check_id(batch_id)?;
        let url = self
            .http
            .url(&format!("/v1/messages/batches/{batch_id}/cancel"));
        let resp = self.http.send("cancel batch", |c| c.post(&url)).await?;
        let batch: MessageBatch = self.http.decode("cancel batch", resp).await?;
        tracing::debug!(batch_id, status = %batch.processing_status, "cancel requested");
        Ok(())
    }

    async fn find_batch(&self, probe: BatchProbe<'_>) -> Result<Option<String>> {
        let since = probe.intent_at - FIND_SKEW;
        let mut after: Option<String> = None;
        let mut best: Option<(chrono::DateTime<chrono::Utc>, String)> = None;
        for _ in 0..FIND_MAX_PAGES {
            let path = match &after {
                Some(a) => {
                    check_id(a)?;
                    format!("/v1/messages/batches?limit={FIND_PAGE_SIZE}&after_id={a}")
                }
                None => format!("/v1/messages/batches?limit={FIND_PAGE_SIZE}"),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(base: &str) -> AnthropicProvider {
        AnthropicProvider::new(
            &ProviderConfig::default().api_key("k-123456").base_url(base),
            Arc::new(Catalog::builtin().clone()),
        )
        .unwrap()
    }

    #[test]
    fn settings_and_defaults() {
        let p = AnthropicProvider::new(
            &ProviderConfig::default().api_key("k-123456"),
            Arc::new(Catalog::builtin().clone()),
        )
        .unwrap();
        assert_eq!(p.http.base_url(), DEFAULT_BASE_URL);
        assert_eq!(p.polling_interval(), Duration::from_secs(1));
        assert_eq!(p.limits().max_requests, 100_000);
        assert_eq!(p.limits().max_bytes, 256_000_000);
        assert!(!format!("{p:?}").contains("k-123456"));
        for blank in [
            ProviderConfig::default(),
            ProviderConfig::default().api_key("  "),
        ] {
            let e = AnthropicProvider::new(&blank, Arc::new(Catalog::builtin().clone()))
                .err()
                .unwrap();
            assert!(matches!(e, Error::Validation(_)));
            assert!(
                e.to_string()
                    .contains("set ANTHROPIC_API_KEY (or pass a key with ProviderConfig::api_key)"),
                "{e}"
            );
        }
    }

    #[test]
    fn results_are_fetched_only_from_the_base_url() {
        let p = provider("http://127.0.0.1:9/");
        assert_eq!(
            p.results_location(
                "msgbatch_1",
                "http://127.0.0.1:9/v1/messages/batches/msgbatch_1/results"
            ),
            "http://127.0.0.1:9/v1/messages/batches/msgbatch_1/results"
        );
        assert_eq!(
            p.results_location(
                "msgbatch_1",
                "https://api.anthropic.com/v1/messages/batches/msgbatch_1/results?x=1"
            ),
            "http://127.0.0.1:9/v1/messages/batches/msgbatch_1/results?x=1"
        );
        // A look-alike host that merely starts with the base URL is foreign.
        assert_eq!(
            p.results_location("msgbatch_1", "http://127.0.0.1:90/elsewhere"),
            "http://127.0.0.1:9/v1/messages/batches/msgbatch_1/results"
        );
    }

    #[test]
    fn batch_ids_are_checked_before_they_reach_a_url() {
        assert!(check_id("msgbatch_013Zva2CMHLNnXjNJJKqJ2EF").is_ok());
        for bad in ["", "../x", "a/b", "id?x=1", "a b"] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
    }
}
