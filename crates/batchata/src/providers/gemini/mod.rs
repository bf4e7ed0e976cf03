//! The Gemini provider: the Gemini API's batch mode over the shared HTTP
//! layer.
//!
//! `request.rs` builds the requests, `response.rs` parses what comes back,
//! `create.rs` builds and sends the create body, `upload.rs` uploads the
//! input file, `collect.rs` turns results into one result per job; this
//! file is the client itself and its [`Provider`] methods. A batch runs one model
//! (`models/{model}:batchGenerateContent`). Its requests go inline in the
//! create body while that body stays under 20 MB, and otherwise as a JSONL
//! file sent with the Files API's resumable upload first. Either way the
//! body is built once, from the jobs as they are read, into a temporary
//! file (limits checked as it grows, before anything is sent), and each
//! attempt streams it a piece at a time, so it is never held whole.
//!
//! Every request carries its job id as its key, and results — inline in the
//! finished batch, or in a results file streamed line by line — are matched
//! back by key, never by position: inline results can come back out of
//! order. Every job ends with exactly one result: its answer, or a failure
//! that says why there was none (cancelled, expired, the batch failed).
//!
//! The batch's `displayName` carries the run id and batch index
//! ([`display_name`]), which is how [`Provider::find_batch`] finds a batch
//! whose create call may have reached Google before the process died.

mod collect;
mod create;
pub(crate) mod request;
pub(crate) mod response;
mod upload;

pub use response::EXPIRED_MESSAGE;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::catalog::{Catalog, ModelInfo, ProviderKind};
use crate::error::{Error, Result};
use crate::files::{self, FileKind};
use crate::job::Job;
use crate::providers::common::{is_wire_id, ResultModels};
use crate::providers::http::{AuthStyle, HttpClientConfig, DEFAULT_TIMEOUT};
use crate::providers::raw::{PendingRequest, RawResults};
use crate::providers::*;

use collect::{Collector, Form};
use request::DEFAULT_API_VERSION;
use response::{BatchResults, Operation, OperationList};

/// The API's address when neither the settings nor `GOOGLE_GEMINI_BASE_URL`
/// give one; paths carry the API version.
pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com";
/// How often a batch is polled by default.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(2);
/// Retries per call by default: the google-genai SDK, retries on, makes 5
/// attempts.
pub const DEFAULT_MAX_RETRIES: u32 = 4;
/// An inline create body must stay under this many bytes (20 MB); larger
/// batches go through an uploaded file.
pub const INLINE_LIMIT: u64 = 20_000_000;
/// Where the key comes from, for messages.
const KEY_ENV: &str = "GOOGLE_API_KEY (or GEMINI_API_KEY)";
/// Size of the pieces a body is streamed in.
const CHUNK_BYTES: usize = 256 * 1024;
/// Batches created this long before the intent are not adopted by `find_batch`.
const FIND_SKEW: chrono::Duration = chrono::Duration::seconds(600);
/// Batches listed per page when looking for a lost batch.
const FIND_PAGE_SIZE: usize = 100;
/// Pages looked at, at most, when looking for a lost batch.
const FIND_MAX_PAGES: usize = 50;
/// Longest a results download may take in total.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

/// The `displayName` of a run's batch: `batchata-{run_id}-b{index}`.
pub fn display_name(run_id: &str, batch_index: usize) -> String {
    format!("batchata-{run_id}-b{batch_index}")
}

/// The Gemini API batch-mode client.
pub struct GeminiProvider {
    http: HttpClient,
    base: ProviderBase,
    inline_limit: u64,
    version: String,
}

impl std::fmt::Debug for GeminiProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeminiProvider")
            .field("http", &self.http)
            .field("version", &self.version)
            .field("poll_interval", &self.base.poll_interval())
            .field("limits", &self.base.limits())
            .field("inline_limit", &self.inline_limit)
            .finish()
    }
}

/// `(root, version)` of a base URL: a trailing `/v1beta` or `/v1` names
/// the API version; otherwise it is [`DEFAULT_API_VERSION`].
fn split_base_url(base: &str) -> (String, String) {
    let base = base.trim().trim_end_matches('/');
    for v in ["v1beta", "v1alpha", "v1"] {
        if let Some(root) = base.strip_suffix(&format!("/{v}")) {
            return (root.to_string(), v.to_string());
        }
    }
    (base.to_string(), DEFAULT_API_VERSION.to_string())
}

/// `batches/{id}` for a batch id given with or without its prefix.
fn batch_name(id: &str) -> Result<String> {
    resource_name("batches", "batch id", id)
}

/// `files/{id}` for a file name given with or without its prefix.
fn file_name(id: &str) -> Result<String> {
    resource_name("files", "file name", id)
}

/// `{collection}/{id}` for an id given with or without that prefix; ids
/// go into URL paths, so only the characters they are made of are
/// accepted. `what` names the id in the error.
fn resource_name(collection: &str, what: &str, id: &str) -> Result<String> {
    let short = id
        .strip_prefix(collection)
        .and_then(|rest| rest.strip_prefix('/'))
        .unwrap_or(id);
    if short.len() > 128 || !is_wire_id(short) {
        return Err(Error::Validation(format!(
            "'{id}' is not a Gemini {what} (expected {collection}/ and letters, digits, '_' or '-')"
        )));
    }
    Ok(format!("{collection}/{short}"))
}

/// The id after `batches/`, for file names.
fn short_id(name: &str) -> &str {
    name.strip_prefix("batches/").unwrap_or(name)
}

impl GeminiProvider {
    /// Builds the client: key from `config.api_key` (set from
    /// `GOOGLE_API_KEY`, else `GEMINI_API_KEY`, by
    /// [`ProviderSettings::from_env`]), sent as `x-goog-api-key`; base URL
    /// from `config.base_url` (like `GOOGLE_GEMINI_BASE_URL`, the root; a
    /// trailing `/v1beta` or `/v1` picks the API version, `v1beta` otherwise)
    /// or [`DEFAULT_BASE_URL`]; 4 retries, 600 s per call and a 2 s poll
    /// unless the settings say otherwise.
    pub fn new(config: &ProviderConfig, catalog: Arc<Catalog>) -> Result<Self> {
        let key = config
            .api_key
            .clone()
            .filter(|k| !k.expose().trim().is_empty())
            .ok_or_else(|| {
                Error::Validation(
                    "no Gemini API key: set GOOGLE_API_KEY or GEMINI_API_KEY (or ProviderConfig::api_key)"
                        .into(),
                )
            })?;
        let base = config
            .base_url
            .clone()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::Validation(format!(
                "Gemini base URL '{base}' must start with http:// or https:// (e.g. {DEFAULT_BASE_URL}); check GOOGLE_GEMINI_BASE_URL"
            )));
        }
        let (root, version) = split_base_url(&base);
        let http = HttpClient::new(HttpClientConfig {
            kind: ProviderKind::Gemini,
            base_url: root,
            key,
            auth: AuthStyle::GoogApiKey,
            max_retries: config.max_retries.unwrap_or(DEFAULT_MAX_RETRIES),
            timeout: config.timeout.unwrap_or(DEFAULT_TIMEOUT),
            headers: Vec::new(),
            key_env: KEY_ENV,
        })?;
        Ok(GeminiProvider {
            http,
            base: ProviderBase::new(ProviderKind::Gemini, config, catalog, DEFAULT_POLL_INTERVAL),
            inline_limit: INLINE_LIMIT,
            version,
        })
    }

    /// Replaces the per-batch limits (smaller quotas, and tests).
    pub fn with_limits(mut self, limits: BatchLimits) -> Self {
        self.base.set_limits(limits);
        self
    }

    /// Sets the size under which requests go inline (tests of the upload path).
    pub fn with_inline_limit(mut self, bytes: u64) -> Self {
        self.inline_limit = bytes;
        self
    }

    /// The API version in the paths (`v1beta` unless the base URL said otherwise).
    pub fn api_version(&self) -> &str {
        &self.version
    }

    /// `/{version}/{rest}` on the base URL.
    fn url(&self, rest: &str) -> String {
        self.http.url(&format!("/{}/{rest}", self.version))
    }

    /// Deletes a finished batch at Google (its results go with it).
    pub async fn delete_batch(&self, batch_id: &str) -> Result<()> {
        let url = self.url(&batch_name(batch_id)?);
        self.http.send("delete batch", |c| c.delete(&url)).await?;
        Ok(())
    }

    async fn retrieve(&self, batch_id: &str) -> Result<Operation> {
        let url = self.url(&batch_name(batch_id)?);
        let resp = self.http.send("get batch", |c| c.get(&url)).await?;
        self.http.decode("get batch", resp).await
    }
}

#[async_trait]
impl Provider for GeminiProvider {
    fn base(&self) -> &ProviderBase {
        &self.base
    }

    fn validate_job(&self, job: &Job, model: &ModelInfo) -> Result<()> {
        let id = job.id_str();
        self.base.check_serves(job, model)?;
        if job.enable_citations {
            return Err(citations_refused(id, &model.name));
        }
        if let Some(path) = &job.file {
            let kind = files::file_kind(path).map_err(|e| Error::job_field(id, "file", e))?;
            let ok = match kind {
                FileKind::Image(t) => {
                    model.capabilities.images && request::IMAGE_TYPES.contains(&t)
                }
                FileKind::Pdf | FileKind::Text | FileKind::Docx => model.capabilities.files,
            };
            if !ok {
                return Err(Error::ModelNotSupported(format!(
                    "job '{id}': field 'file': model '{}' does not take .{} files; Gemini reads PDF, PNG, JPEG, WebP and text",
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
        req: BatchRequest<'_>,
    ) -> Result<CreatedBatch> {
        let display = display_name(req.run_id, req.batch_index);
        let prefix = request::inline_body_prefix(&display);
        // Built once, into temporary files; each attempt streams them.
        let built = self.build(jobs, req.batch_index, &prefix)?;
        // The raw request file (the input file's lines), named once the id
        // is known.
        let mut raw = req
            .raw_dir
            .map(|dir| PendingRequest::start(dir, "gemini"))
            .transpose()?;
        if let Some(raw) = raw.as_mut() {
            raw.write(|w| built.file.copy_to(w))?;
        }
        let op = match &built.inline {
            Some(body) => self.create_inline(body, &built.model).await?,
            None => {
                tracing::debug!(
                    bytes = built.file.len(),
                    jobs = jobs.len(),
                    "batch too large to send inline; uploading it as a file"
                );
                let file = self.upload(&built.file, &display).await?;
                tracing::debug!(%file, bytes = built.file.len(), "batch input uploaded");
                self.create_from_file(&built.model, &display, &file).await?
            }
        };
        let batch_id = batch_name(&op.name)?;
        if let Some(raw) = raw {
            raw.keep(short_id(&batch_id));
        }
        Ok(CreatedBatch { batch_id })
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
        const WHAT: &str = "get batch results";
        let url = self.url(&batch_name(batch_id)?);
        let resp = self
            .http
            .send(WHAT, |c| c.get(&url).timeout(DOWNLOAD_TIMEOUT))
            .await?;
        let body = resp.bytes().await.map_err(|e| Error::Http {
            status: None,
            message: self.http.redact(&format!(
                "gemini {WHAT}: reading batch {batch_id} broke off: {e}; it is tried again"
            )),
            retryable: true,
        })?;
        let mut batch: BatchResults = serde_json::from_slice(&body).map_err(|e| {
            Error::Parse(format!(
                "gemini {WHAT}: unexpected answer for batch {batch_id} ({e})"
            ))
        })?;
        drop(body);
        let status = batch.status();
        if !status.state.is_terminal() {
            return Err(Error::Validation(format!(
                "batch {batch_id} is still {}; its results can be collected once it ends",
                status.provider_status
            )));
        }
        let output = batch.take_output();
        drop(batch);
        let mut collector = Collector {
            index: ctx.jobs.iter().map(|j| (j.id_str(), j)).collect(),
            seen: ahash::AHashSet::with_capacity(ctx.jobs.len()),
            models: ResultModels::new(self.base.catalog(), batch_id),
            batch_id,
            raw: ctx
                .raw_dir
                .map(|dir| RawResults::new(dir, "gemini", short_id(batch_id))),
            sink,
        };
        if let Some(inlined) = output.inlined_responses {
            for item in inlined.inlined_responses {
                collector.item(item.get().as_bytes(), Form::Inline)?;
            }
        }
        if let Some(file) = &output.responses_file {
            self.stream_file(file, &mut collector).await?;
        }
        collector.finish(&status, ctx.jobs)
    }

    async fn cancel_batch(&self, batch_id: &str) -> Result<()> {
        let url = self.url(&format!("{}:cancel", batch_name(batch_id)?));
        self.http
            .send("cancel batch", |c| {
                c.post(&url)
                    .header("content-type", "application/json")
                    .body("{}")
            })
            .await?;
        Ok(())
    }

    async fn find_batch(&self, probe: BatchProbe<'_>) -> Result<Option<String>> {
        let want = display_name(probe.run_id, probe.batch_index);
        let since = probe.intent_at - FIND_SKEW;
        let url = self.url("batches");
        let mut token: Option<String> = None;
        let mut best: Option<(Option<chrono::DateTime<chrono::Utc>>, String)> = None;
        for _ in 0..FIND_MAX_PAGES {
            let size = FIND_PAGE_SIZE.to_string();
            let resp = self
                .http
                .send("list batches", |c| {
                    let rb = c.get(&url).query(&[("pageSize", size.as_str())]);
                    match &token {
                        Some(t) => rb.query(&[("pageToken", t.as_str())]),
                        None => rb,
                    }
                })
                .await?;
            let page: OperationList = self.http.decode("list batches", resp).await?;
            for op in &page.operations {
                if op.metadata.display_name.as_deref() != Some(want.as_str())
                    || probe.known_ids.contains(&op.name)
                {
                    continue;
                }
                let created = op.metadata.created();
                if created.is_some_and(|t| t < since) {
                    continue;
                }
                // Several (a create repeated): the first one made.
                let earlier = match (&best, created) {
                    (None, _) => true,
                    (Some((Some(b), _)), Some(c)) => c < *b,
                    _ => false,
                };
                if earlier {
                    best = Some((created, op.name.clone()));
                }
            }
            // Newest first (as far as the page shows): once a page ends
            // before the intent, no later page can hold the batch.
            let times: Vec<_> = page
                .operations
                .iter()
                .filter_map(|o| o.metadata.created())
                .collect();
            let newest_first = times.windows(2).all(|w| w[0] >= w[1]);
            let past = times.last().is_some_and(|t| *t < since);
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) if !(newest_first && past) && Some(&t) != token.as_ref() => token = Some(t),
                _ => break,
            }
        }
        Ok(best.map(|(_, name)| name))
    }
}

/// The refusal of a Gemini job that asks for citations.
pub(crate) fn citations_refused(job_id: &str, model: &str) -> Error {
    Error::ModelNotSupported(format!(
        "job '{job_id}': field 'enable_citations': Gemini models (here '{model}') return no citations batchata can map to the document; turn citations off for this job, or use an Anthropic Claude model to get them"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Arc<Catalog> {
        Arc::new(Catalog::builtin().clone())
    }

    #[test]
    fn settings_and_defaults() {
        let p =
            GeminiProvider::new(&ProviderConfig::default().api_key("g-123456"), catalog()).unwrap();
        assert_eq!(p.http.base_url(), DEFAULT_BASE_URL);
        assert_eq!(p.api_version(), "v1beta");
        assert_eq!(p.polling_interval(), Duration::from_secs(2));
        assert!(p.limits().one_model_per_batch);
        assert!(!format!("{p:?}").contains("g-123456"));
        let p = GeminiProvider::new(
            &ProviderConfig::default()
                .api_key("g-123456")
                .base_url("http://127.0.0.1:9/v1/"),
            catalog(),
        )
        .unwrap();
        assert_eq!(
            (p.http.base_url(), p.api_version()),
            ("http://127.0.0.1:9", "v1")
        );
        for blank in [
            ProviderConfig::default(),
            ProviderConfig::default().api_key(" "),
        ] {
            let e = GeminiProvider::new(&blank, catalog())
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains("GOOGLE_API_KEY or GEMINI_API_KEY"), "{e}");
        }
        let e = GeminiProvider::new(
            &ProviderConfig::default()
                .api_key("k-1234")
                .base_url("localhost:9"),
            catalog(),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("GOOGLE_GEMINI_BASE_URL"), "{e}");
    }

    #[test]
    fn ids_are_checked_before_they_reach_a_url() {
        assert_eq!(batch_name("batches/abc-1").unwrap(), "batches/abc-1");
        assert_eq!(batch_name("abc").unwrap(), "batches/abc");
        for bad in ["", "batches/", "batches/../x", "a/b", "x?y", "x:cancel"] {
            assert!(batch_name(bad).is_err(), "{bad}");
        }
        assert_eq!(file_name("files/batch-x").unwrap(), "files/batch-x");
        assert!(file_name("files/a/b").is_err());
        assert_eq!(short_id("batches/xyz"), "xyz");
        assert_eq!(display_name("run_1", 3), "batchata-run_1-b3");
    }

    #[test]
    fn upload_urls_stay_on_the_base_url() {
        let p = GeminiProvider::new(
            &ProviderConfig::default()
                .api_key("g-123456")
                .base_url("http://127.0.0.1:9"),
            catalog(),
        )
        .unwrap();
        assert_eq!(
            p.on_base_url("https://upload.example.com/upload/v1beta/files?upload_id=A&upload_protocol=resumable")
                .unwrap(),
            "http://127.0.0.1:9/upload/v1beta/files?upload_id=A&upload_protocol=resumable"
        );
    }

    #[test]
    fn citations_and_gif_are_refused() {
        let p =
            GeminiProvider::new(&ProviderConfig::default().api_key("g-123456"), catalog()).unwrap();
        let m = Catalog::builtin().get("gemini-2.5-flash").unwrap();
        let mut job = Job::prompt("x").id("c").model("gemini-2.5-flash");
        job.enable_citations = true;
        let e = p.validate_job(&job, &m).unwrap_err().to_string();
        assert!(
            e.contains("'enable_citations'") && e.contains("Anthropic"),
            "{e}"
        );
        let job = Job::file("a.gif", "x").id("g").model("gemini-2.5-flash");
        let e = p.validate_job(&job, &m).unwrap_err().to_string();
        assert!(e.contains(".gif"), "{e}");
    }
}
