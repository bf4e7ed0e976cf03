//! Collecting a finished Gemini batch's results: inline responses or the
//! lines of a results file streamed as they arrive, matched to jobs by key
//! (never by position), with raw copies written on the way. Every job ends
//! with exactly one result.

use std::collections::HashMap;

use futures::StreamExt;

use super::response::{self, answer_result, FileLine, InlinedResponse, LineKey};
use super::{file_name, GeminiProvider, DOWNLOAD_TIMEOUT};
use crate::error::{Error, Result};
use crate::job::Job;
use crate::providers::common::ResultModels;
use crate::providers::raw::{RawResults, RawStream};
use crate::providers::{BatchStatus, ResultSink};
use crate::result::JobResult;

impl GeminiProvider {
    /// Streams a results file's lines into `collector`.
    pub(super) async fn stream_file(
        &self,
        file: &str,
        collector: &mut Collector<'_, '_>,
    ) -> Result<()> {
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

/// Which form a result came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Form {
    /// An entry of `inlinedResponses` (`metadata.key`).
    Inline,
    /// A results-file line (`key`).
    File,
}

/// Turns results into `JobResult`s for the sink, one per job, by key.
pub(super) struct Collector<'a, 's> {
    pub(super) index: HashMap<&'a str, &'a Job>,
    pub(super) seen: ahash::AHashSet<&'a str>,
    pub(super) models: ResultModels<'a>,
    pub(super) batch_id: &'a str,
    pub(super) raw: Option<RawResults>,
    pub(super) sink: &'a mut ResultSink<'s>,
}

impl<'a> Collector<'a, '_> {
    pub(super) fn item(&mut self, line: &[u8], form: Form) -> Result<()> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        if let Some(raw) = self.raw.as_mut() {
            raw.line(RawStream::Responses, line);
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
                let model = self.models.get(job)?;
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
    pub(super) fn finish(&mut self, status: &BatchStatus, jobs: &'a [Job]) -> Result<()> {
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
