//! Sending a Gemini batch: every request is built once, from the jobs as
//! they are read, into temporary files ([`BodySpool`]): the input file's
//! lines always, and beside them the inline create body while it stays
//! under the inline limit. Each job is checked, and the file against the
//! byte limit, as they grow, before anything is sent; each attempt then
//! streams the bytes built. Small batches go inline in the create call;
//! larger ones are uploaded first (`upload.rs`) and created from the file.
//! Neither the bodies nor the batch's prompts are held whole.

use std::sync::Arc;

use super::request::{self, RequestWriter, INLINE_BODY_SUFFIX};
use super::response::Operation;
use super::{GeminiProvider, CHUNK_BYTES};
use crate::catalog::ModelInfo;
use crate::error::Result;
use crate::providers::body::{BodySpool, SpooledBody};
use crate::providers::common::{build_checked, submission_error};
use crate::providers::http::Attempts;
use crate::providers::JobSource;

/// A batch's requests, built.
pub(super) struct Built {
    /// The batch's one model.
    pub(super) model: Arc<ModelInfo>,
    /// The create body with the requests inline, when it is under the
    /// inline limit.
    pub(super) inline: Option<SpooledBody>,
    /// The input file (also the raw request file).
    pub(super) file: SpooledBody,
}

/// A body being built into a [`BodySpool`] through a buffer.
struct Spooling {
    spool: BodySpool,
    chunk: Vec<u8>,
    len: u64,
}

impl Spooling {
    fn new(start: &[u8]) -> Result<Self> {
        let mut chunk = Vec::with_capacity(CHUNK_BYTES * 2);
        chunk.extend_from_slice(start);
        Ok(Spooling {
            spool: BodySpool::new()?,
            len: start.len() as u64,
            chunk,
        })
    }

    /// Appends what `write` writes; returns the body's length.
    fn add(&mut self, write: impl FnOnce(&mut Vec<u8>) -> Result<()>) -> Result<u64> {
        let before = self.chunk.len();
        write(&mut self.chunk)?;
        self.len += (self.chunk.len() - before) as u64;
        if self.chunk.len() >= CHUNK_BYTES {
            self.spool.write(&self.chunk)?;
            self.chunk.clear();
        }
        Ok(self.len)
    }

    fn finish(mut self, end: &[u8]) -> Result<SpooledBody> {
        self.chunk.extend_from_slice(end);
        self.spool.write(&self.chunk)?;
        self.spool.finish()
    }
}

impl GeminiProvider {
    /// Builds the batch in one pass over the jobs: the checks every
    /// provider makes (a job at a time), each job's own, the input file's
    /// byte limit, and the inline body while it may still be sent inline.
    pub(super) fn build(&self, jobs: &dyn JobSource, index: usize, prefix: &[u8]) -> Result<Built> {
        let total = jobs.len();
        let mut file = Spooling::new(&[])?;
        let mut inline = Some(Spooling::new(prefix)?);
        // One model a batch (checked): the first job's.
        let mut writer: Option<RequestWriter> = None;
        build_checked(self, jobs, index, |i, job, model| {
            let w = writer.get_or_insert_with(|| RequestWriter::new(model.clone()));
            if file.add(|b| w.write_file_line(job, b))? > self.base.limits().max_bytes {
                return Err(self.base.input_too_large_at(job.id_str(), i, total));
            }
            if let Some(body) = inline.as_mut() {
                let len = body.add(|b| {
                    if i > 0 {
                        b.push(b',');
                    }
                    w.write_inline_entry(job, b)
                })?;
                if len + INLINE_BODY_SUFFIX.len() as u64 >= self.inline_limit {
                    // Too large to send inline: only the file is built on.
                    inline = None;
                }
            }
            Ok(())
        })?;
        // batch_checks refuses an empty batch, so a writer exists unless
        // the jobs could not all be read back.
        let model = writer.map(|w| w.model().clone()).ok_or_else(|| {
            crate::error::Error::Internal(format!("batch {index}: none of its jobs was read back"))
        })?;
        Ok(Built {
            model,
            inline: inline.map(|b| b.finish(INLINE_BODY_SUFFIX)).transpose()?,
            file: file.finish(&[])?,
        })
    }

    /// Creates the batch with its requests in the body.
    pub(super) async fn create_inline(
        &self,
        body: &SpooledBody,
        model: &ModelInfo,
    ) -> Result<Operation> {
        const WHAT: &str = "create batch";
        let url = self.url(&format!("models/{}:batchGenerateContent", model.name));
        let len = body.len();
        let resp = self
            .http
            .send_streamed(
                WHAT,
                Attempts::Create,
                |c, stream| {
                    c.post(&url)
                        .header("content-type", "application/json")
                        .header("content-length", len)
                        .body(stream)
                },
                |tx| body.send(tx, CHUNK_BYTES),
            )
            .await
            .map_err(submission_error)?;
        self.http.decode(WHAT, resp).await.map_err(|e| {
            crate::error::Error::OutcomeUnknown(format!(
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
