//! Sending a Gemini batch: every request is built once to measure the
//! create body and the input file (limits checked before anything is
//! sent), then built again into the body as it is streamed. Small batches
//! go inline in the create call; larger ones are uploaded first
//! (`upload.rs`) and created from the file.

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use futures::SinkExt;

use super::request::{self, RequestWriter, INLINE_BODY_SUFFIX};
use super::response::Operation;
use super::{GeminiProvider, CHUNK_BYTES};
use crate::catalog::ModelInfo;
use crate::error::{Error, Result};
use crate::job::Job;
use crate::providers::common::submission_error;
use crate::providers::http::{Attempts, BodySender};
use crate::providers::Provider;

impl GeminiProvider {
    /// Builds every request once: checks each job, and returns the sizes of
    /// the inline create body and of the input file (writing the file's
    /// lines to `raw` when asked).
    pub(super) fn measure(
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
    pub(super) async fn create_inline(
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
    pub(super) async fn create_from_file(
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
}

/// Builds one attempt's body into `tx` a piece at a time: the inline create
/// body when `prefix` is given, else the input file. A body whose size
/// differs from the measured `expected` (a file changed in between) ends the
/// attempt with an error.
pub(super) async fn produce(
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
