//! The Gemini provider: the Gemini API's batch mode over the shared HTTP
//! layer.
//!
//! `request.rs` builds the requests, `response.rs` parses what comes back;
//! this file is the client. A batch runs one model
//! (`models/{model}:batchGenerateContent`). Its requests go inline in the
//! create body while that body stays under 20 MB, and otherwise as a JSONL
//! file sent with the Files API's resumable upload first. Either way the
//! body is measured first (limits checked before anything is sent), then
//! built again and streamed a piece at a time, so it is never held whole.
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

pub(crate) mod request;
pub(crate) mod response;

pub use response::EXPIRED_MESSAGE;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};

use crate::catalog::{Catalog, ModelInfo, ProviderKind};
use crate::error::{Error, Result};
use crate::files::{self, FileKind};
use crate::job::Job;
use crate::providers::http::{Attempts, AuthStyle, BodySender, HttpClientConfig, DEFAULT_TIMEOUT};
use crate::providers::raw::RawFiles;
use crate::providers::*;
use crate::result::JobResult;

use request::{RequestWriter, DEFAULT_API_VERSION, INLINE_BODY_SUFFIX, JSONL_MIME};
use response::{
    answer_result, BatchResults, FileLine, InlinedResponse, LineKey, Operation, OperationList,
    UploadedFile,
};

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

/// `batches/{id}` for a batch id given with or without its prefix; ids go
/// into URL paths, so only the characters they are made of are accepted.
fn batch_name(id: &str) -> Result<String> {
    let short = id.strip_prefix("batches/").unwrap_or(id);
    if short.is_empty()
        || short.len() > 128
        || !short
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(Error::Validation(format!(
            "'{id}' is not a Gemini batch id (expected batches/ and letters, digits, '_' or '-')"
        )));
    }
    Ok(format!("batches/{short}"))
}

/// `files/{id}`, checked the same way.
fn file_name(id: &str) -> Result<String> {
    let short = id.strip_prefix("files/").unwrap_or(id);
    if short.is_empty()
        || short.len() > 128
        || !short
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(Error::Validation(format!(
            "'{id}' is not a Gemini file name (expected files/ and letters, digits, '_' or '-')"
        )));
    }
    Ok(format!("files/{short}"))
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

    /// The one model of a batch's jobs (one per batch: [`ProviderBase::check_batch`]).
    fn batch_model(&self, jobs: &[Job], index: usize) -> Result<Arc<ModelInfo>> {
        let first = jobs.first().ok_or_else(|| {
            Error::BatchSubmission(format!(
                "batch {index} has no jobs; a batch needs at least one"
            ))
        })?;
        self.base.model(first)
    }

    /// Builds every request once: checks each job, and returns the sizes of
    /// the inline create body and of the input file (writing the file's
    /// lines to `raw` when asked).
    fn measure(
        &self,
        jobs: &[Job],
        model: &Arc<ModelInfo>,
        prefix_len: usize,
        mut raw: Option<&mut dyn Write>,
    ) -> Result<(u64, u64)> {
        let mut w = RequestWriter::new(model.clone());
        let mut buf = Vec::new();
        let mut inline = (prefix_len + INLINE_BODY_SUFFIX.len()) as u64;
        let mut file: u64 = 0;
        for (i, job) in jobs.iter().enumerate() {
            self.validate_job(job, model)?;
            buf.clear();
            w.write_inline_entry(job, &mut buf)?;
            inline += buf.len() as u64 + u64::from(i > 0);
            buf.clear();
            w.write_file_line(job, &mut buf)?;
            file += buf.len() as u64;
            if file > self.base.limits().max_bytes {
                return Err(self.base.input_too_large(jobs, i));
            }
            if let Some(out) = raw.as_mut() {
                out.write_all(&buf).map_err(|e| Error::Io {
                    context: format!(
                        "could not write job '{}' to the raw request file (raw_files/requests)",
                        job.id_str()
                    ),
                    source: e.into(),
                })?;
            }
        }
        Ok((inline, file))
    }

    /// Creates the batch with its requests in the body.
    async fn create_inline(
        &self,
        jobs: &[Job],
        model: &Arc<ModelInfo>,
        prefix: &[u8],
        len: u64,
    ) -> Result<Operation> {
        const WHAT: &str = "create batch";
        let url = self.url(&format!("models/{}:batchGenerateContent", model.name));
        let resp = self
            .http
            .send_streamed(
                WHAT,
                Attempts::Create,
                |c, body| {
                    c.post(&url)
                        .header("content-type", "application/json")
                        .header("content-length", len)
                        .body(body)
                },
                |tx| produce(jobs, model, Some(prefix), len, tx),
            )
            .await
            .map_err(submission_error)?;
        self.http.decode(WHAT, resp).await.map_err(|e| {
            Error::OutcomeUnknown(format!(
                "{WHAT}: Gemini accepted the batch but its reply could not be read ({e})"
            ))
        })
    }

    /// Creates the batch from an uploaded input file.
    async fn create_from_file(
        &self,
        model: &ModelInfo,
        display: &str,
        file: &str,
    ) -> Result<Operation> {
        let body = request::FileCreateBody {
            batch: request::FileBatch {
                display_name: display,
                input_config: request::FileInput { file_name: file },
            },
        };
        let path = format!(
            "/{}/models/{}:batchGenerateContent",
            self.version, model.name
        );
        self.http
            .post_json_as("create batch", Attempts::Create, &path, &body)
            .await
            .map_err(submission_error)
    }

    /// Uploads the input file with the resumable protocol; returns its name.
    /// A transfer that fails after its retries starts over once, in a new
    /// upload session.
    async fn upload(
        &self,
        jobs: &[Job],
        model: &Arc<ModelInfo>,
        display: &str,
        len: u64,
    ) -> Result<String> {
        let mut attempt = 0;
        loop {
            match self.upload_once(jobs, model, display, len).await {
                Err(e) if attempt == 0 && e.is_retryable() => {
                    tracing::warn!(error = %e, "upload of the batch input file failed; starting a new upload");
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn upload_once(
        &self,
        jobs: &[Job],
        model: &Arc<ModelInfo>,
        display: &str,
        len: u64,
    ) -> Result<String> {
        let start_url = self.http.url(&format!("/upload/{}/files", self.version));
        let meta = serde_json::to_vec(&serde_json::json!({
            "file": {"displayName": format!("{display}-input"), "mimeType": JSONL_MIME}
        }))
        .map_err(|e| Error::Parse(format!("upload metadata: {e}")))?;
        let meta = Bytes::from(meta);
        let resp = self
            .http
            .send("start the input file upload", |c| {
                c.post(&start_url)
                    .header("content-type", "application/json")
                    .header("X-Goog-Upload-Protocol", "resumable")
                    .header("X-Goog-Upload-Command", "start")
                    .header("X-Goog-Upload-Header-Content-Length", len)
                    .header("X-Goog-Upload-Header-Content-Type", JSONL_MIME)
                    .body(meta.clone())
            })
            .await?;
        let given = resp
            .headers()
            .get("x-goog-upload-url")
            .and_then(|v| v.to_str().ok())
            .map(String::from)
            .ok_or_else(|| Error::Http {
                status: None,
                message:
                    "gemini start the input file upload: the answer has no x-goog-upload-url header"
                        .into(),
                retryable: true,
            })?;
        let upload_url = self.on_base_url(&given)?;
        const WHAT: &str = "upload the batch input file";
        let resp = self
            .http
            .send_streamed(
                WHAT,
                Attempts::Repeatable,
                |c, body| {
                    c.post(&upload_url)
                        .header("X-Goog-Upload-Command", "upload, finalize")
                        .header("X-Goog-Upload-Offset", "0")
                        .header("content-length", len)
                        .body(body)
                },
                |tx| produce(jobs, model, None, len, tx),
            )
            .await?;
        let status = resp
            .headers()
            .get("x-goog-upload-status")
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase);
        if status.as_deref() != Some("final") {
            return Err(Error::Http {
                status: None,
                message: format!(
                    "gemini {WHAT}: the upload did not finish (x-goog-upload-status: {})",
                    status.as_deref().unwrap_or("absent")
                ),
                retryable: true,
            });
        }
        let file: UploadedFile = self.http.decode(WHAT, resp).await?;
        if file.file.size_bytes != 0 && file.file.size_bytes != len {
            tracing::warn!(file = %file.file.name, sent = len, stored = file.file.size_bytes, "Gemini stored a different size than was uploaded");
        }
        Ok(file.file.name)
    }

    /// An upload URL moved onto the configured base URL's scheme and host
    /// (as the SDK does), so the key never goes to another host.
    fn on_base_url(&self, given: &str) -> Result<String> {
        let bad = |why: String| Error::Http {
            status: None,
            message: format!("gemini: unusable upload URL '{given}': {why}"),
            retryable: false,
        };
        let mut url = reqwest::Url::parse(given).map_err(|e| bad(e.to_string()))?;
        let base = reqwest::Url::parse(self.http.base_url()).map_err(|e| bad(e.to_string()))?;
        url.set_scheme(base.scheme())
            .map_err(|_| bad("scheme".into()))?;
        url.set_host(base.host_str())
            .map_err(|e| bad(e.to_string()))?;
        url.set_port(base.port()).map_err(|_| bad("port".into()))?;
        Ok(url.to_string())
    }

    async fn retrieve(&self, batch_id: &str) -> Result<Operation> {
        let url = self.url(&batch_name(batch_id)?);
        let resp = self.http.send("get batch", |c| c.get(&url)).await?;
        self.http.decode("get batch", resp).await
    }

    /// Streams a results file's lines into `collector`.
    async fn stream_file(&self, file: &str, collector: &mut Collector<'_, '_>) -> Result<()> {
        let name = file_name(file)?;
        let url = self.url(&format!("{name}:download?alt=media"));
        let resp = self
            .http
            .send("download batch results", |c| {
                c.get(&url).timeout(DOWNLOAD_TIMEOUT)
            })
            .await?;
        let mut stream = resp.bytes_stream();
        let mut lines = crate::providers::lines::LineSplitter::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| Error::Http {
                status: None,
                message: self.http.redact(&format!(
                    "gemini download of results file {name} broke off: {e}; it is tried again"
                )),
                retryable: true,
            })?;
            lines.push(&chunk, |line| collector.item(line, Form::File))?;
        }
        lines.finish(|line| collector.item(line, Form::File))
    }
}

/// A create refused for good (bad request, key, size) is a submission
/// error; rate limits and outages stay retryable HTTP errors.
fn submission_error(e: Error) -> Error {
    match e {
        // A refused key (401/403) stays an HTTP error: it stops the run,
        // it does not fail the jobs.
        Error::Http {
            status: Some(400 | 413 | 422),
            message,
            retryable: false,
        } => Error::BatchRejected(message),
        Error::Http {
            status: Some(s),
            message,
            retryable: false,
        } if (400..500).contains(&s) && s != 401 && s != 403 => Error::BatchSubmission(message),
        other => other,
    }
}

/// Builds one attempt's body into `tx` a piece at a time: the inline create
/// body when `prefix` is given, else the input file. A body whose size
/// differs from the measured `expected` (a file changed in between) ends the
/// attempt with an error.
async fn produce(
    jobs: &[Job],
    model: &Arc<ModelInfo>,
    prefix: Option<&[u8]>,
    expected: u64,
    mut tx: BodySender,
) -> Result<()> {
    let changed = |job: &Job| {
        Error::Validation(format!(
            "job '{}': the request changed while the batch was being sent (was its file modified?); submit the batch again",
            job.id_str()
        ))
    };
    let mut w = RequestWriter::new(model.clone());
    let mut chunk: Vec<u8> = Vec::with_capacity(CHUNK_BYTES * 2);
    if let Some(p) = prefix {
        chunk.extend_from_slice(p);
    }
    let mut sent: u64 = 0;
    for (i, job) in jobs.iter().enumerate() {
        match prefix {
            Some(_) => {
                if i > 0 {
                    chunk.push(b',');
                }
                w.write_inline_entry(job, &mut chunk)?;
            }
            None => w.write_file_line(job, &mut chunk)?,
        }
        if sent + chunk.len() as u64 > expected {
            return Err(changed(job));
        }
        if chunk.len() >= CHUNK_BYTES {
            sent += chunk.len() as u64;
            let bytes = Bytes::from(std::mem::replace(
                &mut chunk,
                Vec::with_capacity(CHUNK_BYTES * 2),
            ));
            if tx.send(Ok(bytes)).await.is_err() {
                // The attempt ended (an error reply, a dropped connection).
                return Ok(());
            }
        }
    }
    if prefix.is_some() {
        chunk.extend_from_slice(INLINE_BODY_SUFFIX);
    }
    if sent + chunk.len() as u64 != expected {
        if let Some(job) = jobs.last() {
            return Err(changed(job));
        }
    }
    let _ = tx.send(Ok(Bytes::from(chunk))).await;
    Ok(())
}

/// Which form a result came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// An entry of `inlinedResponses` (`metadata.key`).
    Inline,
    /// A results-file line (`key`).
    File,
}

/// Raw copies of the results, written as they go by. A write failure is
/// logged once and turns raw files off for the rest of the batch: they are
/// a debugging aid, never a reason to lose results.
struct RawResults {
    files: RawFiles,
    batch: String,
    out: Option<std::io::BufWriter<std::fs::File>>,
    broken: bool,
}

impl RawResults {
    fn try_line(&mut self, line: &[u8]) -> Result<()> {
        if self.out.is_none() {
            let path = self.files.response_path("gemini", &self.batch, "jsonl");
            self.out = Some(self.files.create(&path)?);
        }
        if let Some(w) = self.out.as_mut() {
            w.write_all(line)
                .and_then(|_| w.write_all(b"\n"))
                .map_err(|e| Error::io("write the raw results file of", &self.batch, e))?;
        }
        Ok(())
    }

    fn line(&mut self, line: &[u8]) {
        if self.broken {
            return;
        }
        if let Err(e) = self.try_line(line) {
            tracing::warn!(error = %e, "raw results files turned off for this batch");
            self.broken = true;
        }
    }

    fn job(&mut self, job_id: &str, line: &[u8]) {
        if self.broken {
            return;
        }
        let written = serde_json::from_slice::<serde_json::Value>(line)
            .map_err(|e| Error::Parse(format!("job '{job_id}': raw result: {e}")))
            .and_then(|v| self.files.write_job(job_id, &v));
        if let Err(e) = written {
            tracing::warn!(error = %e, "raw results files turned off for this batch");
            self.broken = true;
        }
    }

    fn finish(&mut self) {
        if let Some(w) = self.out.as_mut() {
            if let Err(e) = w.flush() {
                tracing::warn!(error = %e, batch = %self.batch, "could not finish the raw results file");
            }
        }
    }
}

/// Turns results into `JobResult`s for the sink, one per job, by key.
struct Collector<'a, 's> {
    index: HashMap<&'a str, &'a Job>,
    seen: HashSet<&'a str>,
    models: HashMap<String, Arc<ModelInfo>>,
    catalog: &'a Catalog,
    batch_id: &'a str,
    raw: Option<RawResults>,
    sink: &'a mut ResultSink<'s>,
}

impl<'a> Collector<'a, '_> {
    fn model(&mut self, job: &Job) -> Result<Arc<ModelInfo>> {
        let name = job.model_name();
        if let Some(m) = self.models.get(name) {
            return Ok(m.clone());
        }
        let m = self.catalog.lookup(name).map_err(|e| {
            Error::ModelNotSupported(format!(
                "job '{}': cannot price its result: {e}; add the model back (BATCHATA_MODELS_FILE) and rerun with the same state file to collect batch {}",
                job.id_str(),
                self.batch_id
            ))
        })?;
        self.models.insert(name.to_string(), m.clone());
        Ok(m)
    }

    fn item(&mut self, line: &[u8], form: Form) -> Result<()> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        if let Some(raw) = self.raw.as_mut() {
            raw.line(line);
        }
        let parsed = match form {
            Form::Inline => serde_json::from_slice::<InlinedResponse>(line)
                .map(|r| (r.key().map(String::from), r.response, r.error)),
            Form::File => serde_json::from_slice::<FileLine>(line)
                .map(|l| (l.key, l.response, l.error.or(l.status))),
        };
        let (key, outcome) = match parsed {
            Ok((key, response, error)) => (key, Ok((response, error))),
            Err(e) => {
                let key = serde_json::from_slice::<LineKey>(line)
                    .ok()
                    .and_then(|k| k.get().map(String::from));
                (key, Err(e))
            }
        };
        let Some(key) = key else {
            let start = String::from_utf8_lossy(&line[..line.len().min(120)]);
            tracing::warn!(batch = %self.batch_id, result = %start, "result without a key skipped (results are matched by key, never by position)");
            return Ok(());
        };
        let Some(&job) = self.index.get(key.as_str()) else {
            tracing::warn!(batch = %self.batch_id, key = %key, "result for a request this batch did not send; skipped");
            return Ok(());
        };
        if !self.seen.insert(job.id_str()) {
            tracing::warn!(batch = %self.batch_id, key = %key, "second result for one request; the first is kept");
            return Ok(());
        }
        if let Some(raw) = self.raw.as_mut() {
            raw.job(job.id_str(), line);
        }
        let result = match outcome {
            Ok((response, error)) => {
                let model = self.model(job)?;
                answer_result(response, error, job, &model, self.batch_id)
            }
            Err(e) => JobResult {
                batch_id: Some(self.batch_id.to_string()),
                ..JobResult::failed(
                    job.id_str(),
                    format!("Gemini sent a result that could not be read: {e}"),
                )
            },
        };
        (self.sink)(result)
    }

    /// Fails every job that had no result, saying why.
    fn finish(&mut self, status: &BatchStatus, jobs: &'a [Job]) -> Result<()> {
        if let Some(raw) = self.raw.as_mut() {
            raw.finish();
        }
        let why = response::missing_message(status, self.batch_id);
        for job in jobs {
            if self.seen.contains(job.id_str()) {
                continue;
            }
            (self.sink)(JobResult {
                batch_id: Some(self.batch_id.to_string()),
                ..JobResult::failed(job.id_str(), why.clone())
            })?;
        }
        Ok(())
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

    async fn create_batch(&self, req: BatchRequest<'_>) -> Result<CreatedBatch> {
        let jobs = req.jobs;
        let index = req.batch_index;
        self.base.check_batch(&req)?;
        let model = self.batch_model(jobs, index)?;
        let display = display_name(req.run_id, index);
        let prefix = request::inline_body_prefix(&display);

        // First pass: sizes (and the raw request file, named once the id is known).
        let mut raw_tmp = match req.raw_dir {
            Some(dir) => {
                let folder = dir.join("requests");
                std::fs::create_dir_all(&folder)
                    .map_err(|e| Error::io("create folder", &folder, e))?;
                Some(
                    tempfile::Builder::new()
                        .prefix(".gemini_batch_pending_")
                        .suffix(".jsonl")
                        .tempfile_in(&folder)
                        .map_err(|e| Error::io("create a temp file in", &folder, e))?,
                )
            }
            None => None,
        };
        let (inline_len, file_len) = match raw_tmp.as_mut() {
            Some(tmp) => {
                let path = tmp.path().to_path_buf();
                let mut w = std::io::BufWriter::new(tmp.as_file_mut());
                let sizes = self.measure(jobs, &model, prefix.len(), Some(&mut w))?;
                w.flush()
                    .map_err(|e| Error::io("write the raw request file", &path, e))?;
                sizes
            }
            None => self.measure(jobs, &model, prefix.len(), None)?,
        };

        let op = if inline_len < self.inline_limit {
            self.create_inline(jobs, &model, &prefix, inline_len)
                .await?
        } else {
            tracing::debug!(
                bytes = file_len,
                jobs = jobs.len(),
                "batch too large to send inline; uploading it as a file"
            );
            let file = self.upload(jobs, &model, &display, file_len).await?;
            tracing::debug!(%file, bytes = file_len, "batch input uploaded");
            self.create_from_file(&model, &display, &file).await?
        };
        let batch_id = batch_name(&op.name)?;
        if let (Some(tmp), Some(dir)) = (raw_tmp, req.raw_dir) {
            let path = RawFiles::new(dir).request_path("gemini", short_id(&batch_id), "jsonl");
            if let Err(e) = tmp.persist(&path) {
                tracing::warn!(path = %path.display(), error = %e.error, "could not keep the raw request file");
            }
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
            seen: HashSet::with_capacity(ctx.jobs.len()),
            models: HashMap::new(),
            catalog: self.base.catalog(),
            batch_id,
            raw: ctx.raw_dir.map(|dir| RawResults {
                files: RawFiles::new(dir),
                batch: short_id(batch_id).to_string(),
                out: None,
                broken: false,
            }),
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
