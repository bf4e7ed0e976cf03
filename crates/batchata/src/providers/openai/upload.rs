//! The batch's input file: built once, from the jobs as they are read,
//! into a temporary file ([`BodySpool`]; the 200 MB limit is checked as it
//! grows, before any upload), then streamed from there by the multipart
//! upload to the Files API, at each attempt. Neither the file nor the
//! batch's prompts are held whole.

use reqwest::multipart::{Form, Part};

use super::request::LineBuilder;
use super::response::FileObject;
use super::{OpenAiProvider, CHUNK_BYTES};
use crate::error::Result;
use crate::providers::body::{BodySpool, SpooledBody};
use crate::providers::common::build_checked;
use crate::providers::http::Attempts;
use crate::providers::JobSource;

impl OpenAiProvider {
    /// Builds the input file in one pass over the jobs: the batch passes
    /// the checks every provider makes (a job at a time), each job is
    /// checked, and the file is checked against the byte limit as it
    /// grows.
    pub(super) fn build_input(&self, jobs: &dyn JobSource, index: usize) -> Result<SpooledBody> {
        let total = jobs.len();
        let mut body = BodySpool::new()?;
        // One model a batch (checked): the first job's.
        let mut builder: Option<LineBuilder> = None;
        let mut chunk: Vec<u8> = Vec::with_capacity(CHUNK_BYTES * 2);
        let mut len: u64 = 0;
        build_checked(self, jobs, index, |i, job, model| {
            let builder = builder.get_or_insert_with(|| LineBuilder::new(model.clone()));
            let before = chunk.len();
            builder.write_line(job, &mut chunk)?;
            len += (chunk.len() - before) as u64;
            if len > self.base.limits().max_bytes {
                return Err(self.base.input_too_large_at(job.id_str(), i, total));
            }
            if chunk.len() >= CHUNK_BYTES {
                body.write(&chunk)?;
                chunk.clear();
            }
            Ok(())
        })?;
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
