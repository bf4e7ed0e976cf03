//! The batch's input file: built once, from the jobs as they are read,
//! into a temporary file ([`BodySpool`]; the 200 MB limit is checked as it
//! grows, before any upload), then streamed from there by the multipart
//! upload to the Files API, at each attempt. Neither the file nor the
//! batch's prompts are held whole.

use std::sync::Arc;

use reqwest::multipart::{Form, Part};

use super::request::LineBuilder;
use super::response::FileObject;
use super::{OpenAiProvider, CHUNK_BYTES};
use crate::catalog::ModelInfo;
use crate::error::Result;
use crate::providers::body::{BodySpool, SpooledBody};
use crate::providers::http::Attempts;
use crate::providers::{JobSource, Provider};

impl OpenAiProvider {
    /// Builds the input file in one pass over the jobs: the batch passes
    /// the checks every provider makes (a job at a time), each job is
    /// checked, and the file is checked against the byte limit as it
    /// grows.
    pub(super) fn build_input(&self, jobs: &dyn JobSource, index: usize) -> Result<SpooledBody> {
        let total = jobs.len();
        let mut checks = self.base.batch_checks(index, total)?;
        let mut body = BodySpool::new()?;
        let mut builder: Option<(LineBuilder, Arc<ModelInfo>)> = None;
        let mut chunk: Vec<u8> = Vec::with_capacity(CHUNK_BYTES * 2);
        let mut len: u64 = 0;
        for (i, job) in jobs.jobs()?.enumerate() {
            let job = job?;
            checks.job(&job)?;
            // One model a batch (checked above): the first job's.
            let (builder, model) = match &mut builder {
                Some(b) => b,
                None => {
                    let model = self.base.model(&job)?;
                    builder.insert((LineBuilder::new(model.clone()), model))
                }
            };
            self.validate_job(&job, model)?;
            let before = chunk.len();
            builder.write_line(&job, &mut chunk)?;
            len += (chunk.len() - before) as u64;
            if len > self.base.limits().max_bytes {
                return Err(self.base.input_too_large_at(job.id_str(), i, total));
            }
            if chunk.len() >= CHUNK_BYTES {
                body.write(&chunk)?;
                chunk.clear();
            }
        }
        body.write(&chunk)?;
        body.finish()
    }

    /// Uploads the input file, streamed from its temporary file, and
    /// returns its id.
    pub(super) async fn upload(&self, body: &SpooledBody) -> Result<String> {
        const WHAT: &str = "upload the batch input file";
        let url = self.http.url("/files");
        let len = body.len();
        let outcome = self
            .http
            .send_streamed(
                WHAT,
                Attempts::Repeatable,
                |c, stream| {
                    let part =
                        Part::stream_with_length(stream, len).file_name("batchata_input.jsonl");
                    let form = Form::new().text("purpose", "batch").part("file", part);
                    c.post(&url).multipart(form)
                },
                |tx| body.send(tx, CHUNK_BYTES),
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
