//! Collecting a finished OpenAI batch's results: the output file and the
//! error file streamed line by line as bytes arrive, matched to jobs by
//! `custom_id`, with raw copies written on the way. Every job ends with
//! exactly one result: a line of either file, or a failure that says why
//! there was none.

use std::collections::HashMap;

use futures::StreamExt;

use super::response::{self, BatchObject, OutputLine, EXPIRED_MESSAGE};
use super::{check_wire_id, OpenAiProvider};
use crate::error::{Error, Result};
use crate::job::Job;
use crate::providers::common::ResultModels;
use crate::providers::raw::{RawResults, RawStream};
use crate::providers::ResultSink;
use crate::result::{JobResult, CANCELLED_BY_USER};

impl OpenAiProvider {
    /// Streams a file's content, handing each line to `collector`.
    pub(super) async fn stream_file(
        &self,
        file_id: &str,
        source: RawStream,
        collector: &mut Collector<'_, '_>,
    ) -> Result<()> {
        check_wire_id("file", file_id)?;
        let url = self.http.url(&format!("/files/{file_id}/content"));
        let resp = self
            .http
            .send("download batch results", |c| {
                c.get(&url).header("accept", "application/binary")
            })
            .await?;
        let mut stream = resp.bytes_stream();
        let mut lines = crate::providers::lines::LineSplitter::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| Error::Http {
                status: None,
                message: self.http.redact(&format!(
                    "openai download of results file {file_id} broke off: {e}; it is tried again"
                )),
                retryable: true,
            })?;
            lines.push(&chunk, |line| collector.line(line, source))?;
        }
        lines.finish(|line| collector.line(line, source))?;
        Ok(())
    }
}

/// Turns result lines into `JobResult`s for the sink, one per job.
pub(super) struct Collector<'a, 's> {
    pub(super) jobs: &'a [Job],
    pub(super) index: ahash::AHashMap<&'a str, usize>,
    pub(super) seen: Vec<bool>,
    pub(super) models: ResultModels<'a>,
    pub(super) batch_id: &'a str,
    pub(super) raw: Option<RawResults>,
    pub(super) sink: &'a mut ResultSink<'s>,
}

impl Collector<'_, '_> {
    fn line(&mut self, line: &[u8], source: RawStream) -> Result<()> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(());
        }
        if let Some(raw) = self.raw.as_mut() {
            raw.line(source, line);
        }
        let parsed: std::result::Result<OutputLine, _> = serde_json::from_slice(line);
        let (custom_id, parsed) = match parsed {
            Ok(p) => (p.custom_id.clone(), Ok(p)),
            Err(e) => {
                // Find out whose line it is, if anything can be read.
                let id = serde_json::from_slice::<serde_json::Value>(line)
                    .ok()
                    .and_then(|v| v.get("custom_id")?.as_str().map(String::from));
                match id {
                    Some(id) => (id, Err(e)),
                    None => {
                        let start = String::from_utf8_lossy(&line[..line.len().min(120)]);
                        tracing::warn!(batch = %self.batch_id, error = %e, line = %start, "unreadable results line skipped");
                        return Ok(());
                    }
                }
            }
        };
        let Some(&i) = self.index.get(custom_id.as_str()) else {
            tracing::warn!(batch = %self.batch_id, custom_id = %custom_id, "results line for a request this batch did not send; skipped");
            return Ok(());
        };
        if self.seen[i] {
            tracing::warn!(batch = %self.batch_id, custom_id = %custom_id, "second results line for one request; the first is kept");
            return Ok(());
        }
        self.seen[i] = true;
        let job = &self.jobs[i];
        if let Some(raw) = self.raw.as_mut() {
            raw.job(job.id_str(), line);
        }
        let result = match parsed {
            Ok(p) => {
                let model = self.models.get(job)?;
                response::line_result(p, job, &model, self.batch_id)
            }
            Err(e) => {
                let mut r = JobResult::failed(
                    job.id_str(),
                    format!("OpenAI sent a results line that could not be read: {e}"),
                );
                r.batch_id = Some(self.batch_id.to_string());
                r
            }
        };
        (self.sink)(result)
    }

    /// Fails every job that had no line, saying why.
    pub(super) fn finish(&mut self, batch: &BatchObject) -> Result<()> {
        if let Some(raw) = self.raw.as_mut() {
            raw.finish();
        }
        let mut by_line: HashMap<usize, Vec<String>> = HashMap::new();
        if let Some(errors) = &batch.errors {
            for e in &errors.data {
                if let Some(n) = e.line.and_then(|n| usize::try_from(n).ok()) {
                    by_line.entry(n).or_default().push(e.describe());
                }
            }
        }
        let batch_errors = batch.errors_text();
        for (i, job) in self.jobs.iter().enumerate() {
            if self.seen[i] {
                continue;
            }
            let error = match batch.status.as_str() {
                "cancelled" | "cancelling" => {
                    format!("{CANCELLED_BY_USER}: the batch was cancelled before this request ran")
                }
                "expired" => EXPIRED_MESSAGE.to_string(),
                "failed" => match by_line.get(&(i + 1)) {
                    Some(msgs) => format!(
                        "OpenAI refused the batch's input for this request: {}",
                        msgs.join("; ")
                    ),
                    None => format!(
                        "OpenAI refused the batch's input: {}",
                        batch_errors
                            .as_deref()
                            .unwrap_or("the batch failed without details")
                    ),
                },
                other => format!(
                    "OpenAI returned no result for this request (batch {} is {other})",
                    self.batch_id
                ),
            };
            let mut r = JobResult::failed(job.id_str(), error);
            r.batch_id = Some(self.batch_id.to_string());
            (self.sink)(r)?;
        }
        Ok(())
    }
}
