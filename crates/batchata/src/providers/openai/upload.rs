//! The batch's input file: every line is built once to count its bytes
//! (the 200 MB limit is checked before any upload), then built again while
//! the multipart upload to the Files API streams it a chunk at a time. A
//! retried upload builds the stream again.

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use futures::SinkExt;
use reqwest::multipart::{Form, Part};

use super::request::LineBuilder;
use super::response::FileObject;
use super::{OpenAiProvider, CHUNK_BYTES};
use crate::catalog::ModelInfo;
use crate::error::{Error, Result};
use crate::job::Job;
use crate::providers::http::{Attempts, BodySender};
use crate::providers::Provider;

impl OpenAiProvider {
    /// Builds every line once, counting bytes (and writing them to the raw
    /// request file when asked), and refuses a batch over the byte limit.
    pub(super) fn measure(
        &self,
        jobs: &[Job],
        model: &Arc<ModelInfo>,
        mut raw: Option<&mut dyn Write>,
    ) -> Result<u64> {
        let mut builder = LineBuilder::new(model.clone());
        let mut buf = Vec::new();
        let mut total: u64 = 0;
        for (i, job) in jobs.iter().enumerate() {
            self.validate_job(job, model)?;
            buf.clear();
            builder.write_line(job, &mut buf)?;
            total += buf.len() as u64;
            if total > self.base.limits().max_bytes {
                return Err(self.base.input_too_large(jobs, i));
            }
            if let Some(w) = raw.as_mut() {
                w.write_all(&buf).map_err(|e| Error::Io {
                    context: format!(
                        "could not write job '{}' to the raw request file (raw_files/requests)",
                        job.id_str()
                    ),
                    source: e.into(),
                })?;
            }
        }
        Ok(total)
    }

    /// Uploads the jobs as a JSONL file of `len` bytes, streamed, and returns its id.
    pub(super) async fn upload(
        &self,
        jobs: &[Job],
        model: &Arc<ModelInfo>,
        len: u64,
    ) -> Result<String> {
        const WHAT: &str = "upload the batch input file";
        let url = self.http.url("/files");
        let outcome = self
            .http
            .send_streamed(
                WHAT,
                Attempts::Repeatable,
                |c, body| {
                    let part =
                        Part::stream_with_length(body, len).file_name("batchata_input.jsonl");
                    let form = Form::new().text("purpose", "batch").part("file", part);
                    c.post(&url).multipart(form)
                },
                |tx| produce_body(jobs, model, len, tx),
            )
            .await;
        match outcome {
            Ok(resp) => {
                let file: FileObject = self.http.decode(WHAT, resp).await?;
                if let Some(n) = file.bytes.filter(|&n| n != len) {
                    tracing::warn!(file = %file.id, sent = len, stored = n, "OpenAI stored a different size than was uploaded");
                }
                Ok(file.id)
            }
            Err(e) => Err(e),
        }
    }
}

/// Builds the lines into one upload attempt's body. A line that cannot be
/// built, or a body whose size differs from the first pass (a file changed
/// in between), ends the attempt with that error.
async fn produce_body(
    jobs: &[Job],
    model: &Arc<ModelInfo>,
    expected: u64,
    mut tx: BodySender,
) -> Result<()> {
    let mut builder = LineBuilder::new(model.clone());
    let mut chunk: Vec<u8> = Vec::with_capacity(CHUNK_BYTES * 2);
    let mut sent: u64 = 0;
    let last = jobs.len().saturating_sub(1);
    for (i, job) in jobs.iter().enumerate() {
        builder.write_line(job, &mut chunk)?;
        if chunk.len() < CHUNK_BYTES && i != last {
            continue;
        }
        sent += chunk.len() as u64;
        if sent > expected || (i == last && sent != expected) {
            return Err(Error::Validation(format!(
                "job '{}': the request changed while the batch was being uploaded (was its file modified?); submit the batch again",
                job.id_str()
            )));
        }
        let bytes = Bytes::from(std::mem::replace(
            &mut chunk,
            Vec::with_capacity(CHUNK_BYTES * 2),
        ));
        if tx.send(Ok(bytes)).await.is_err() {
            // The attempt ended (an error reply, a dropped connection).
            return Ok(());
        }
    }
    Ok(())
}
