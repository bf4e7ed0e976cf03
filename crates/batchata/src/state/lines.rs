//! The journal's lines as the run reads and writes them most: job and
//! done lines, parsed directly rather than through [`Event`]'s buffering,
//! and a batch's jobs read back one at a time ([`JournalJobs`]).

use std::fs::File;
use std::path::PathBuf;

use serde::Deserialize;

use super::{state_err, Event, JobId};
use crate::error::{Error, Result};
use crate::job::{Job, SchemaInterner};
use crate::result::JobOutcome;

/// Some jobs of a journal, read back in order one at a time, each pass
/// from the start ([`crate::providers::JobSource`]). Reads are positional on
/// a handle of its own, so they never move the state's reader or writer;
/// the journal only grows, so the jobs' lines stay where they are.
#[derive(Debug)]
pub struct JournalJobs {
    pub(super) path: PathBuf,
    pub(super) file: File,
    pub(super) ids: Vec<JobId>,
    pub(super) offsets: Vec<u64>,
}

/// Bytes read from the journal at a time.
pub(super) const JOURNAL_READ_BYTES: usize = 256 * 1024;
/// The longest job line read back.
pub(super) const MAX_JOB_LINE: usize = 64 << 20;

/// A job line of the journal (`{"t":"job","job":{...}}`), read without
/// going through [`Event`]: an internally tagged enum buffers every field
/// (a whole prompt) before deciding the variant.
#[derive(Deserialize)]
pub(super) struct JobLine {
    pub(super) t: String,
    pub(super) job: Job,
}

/// A job line read without its content (prompt, messages): they are
/// skipped, never made into strings. What parsing results needs.
#[derive(Deserialize)]
pub(super) struct JobLineSansContent {
    pub(super) t: String,
    pub(super) job: JobSansContent,
}

/// [`Job`] with its content skipped: what a job's record, an id lookup or a
/// result needs, read without making its prompt into a string.
#[derive(Deserialize)]
pub(crate) struct JobSansContent {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    messages: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    file: Option<PathBuf>,
    #[serde(default)]
    #[allow(dead_code)]
    prompt: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    response_schema: Option<crate::job::ResponseSchema>,
    #[serde(default)]
    enable_citations: bool,
    #[serde(default)]
    fingerprint: Option<String>,
}

impl From<JobSansContent> for Job {
    fn from(j: JobSansContent) -> Job {
        Job {
            id: j.id,
            model: j.model,
            messages: None,
            file: j.file,
            prompt: None,
            temperature: j.temperature,
            max_tokens: j.max_tokens,
            response_schema: j.response_schema,
            enable_citations: j.enable_citations,
            fingerprint: j.fingerprint,
        }
    }
}

/// A job line as written: the same bytes as [`Event::Job`], without a copy
/// of the job (what the tests compare the journal's job lines with).
#[cfg(test)]
#[derive(serde::Serialize)]
pub(super) struct JobLineRef<'a> {
    pub(super) t: &'static str,
    pub(super) job: &'a Job,
}

/// A `done` line of the journal, read directly as [`JobLine`] is.
#[derive(Deserialize)]
pub(super) struct DoneLine {
    t: String,
    job: String,
    outcome: JobOutcome,
    cost_usd: f64,
    #[serde(default)]
    rerun: bool,
}

/// How every job line starts ([`Event`] writes its tag first).
pub(super) const JOB_LINE_START: &[u8] = b"{\"t\":\"job\",";
/// How every done line starts.
pub(super) const DONE_LINE_START: &[u8] = b"{\"t\":\"done\",";

/// Parses one journal line as a replay needs it. Job and done lines
/// (nearly all of a journal) take a direct path instead of [`Event`]'s
/// buffered one, and a job comes back without its content (prompt,
/// messages), which a replay never reads; anything they do not read falls
/// back to the general path.
pub(super) fn parse_event(line: &[u8]) -> serde_json::Result<Event> {
    if line.starts_with(JOB_LINE_START) {
        if let Ok(JobLineSansContent { t, job }) = serde_json::from_slice(line) {
            if t == "job" {
                return Ok(Event::Job { job: job.into() });
            }
        }
    } else if line.starts_with(DONE_LINE_START) {
        if let Ok(d) = serde_json::from_slice::<DoneLine>(line) {
            if d.t == "done" {
                return Ok(Event::Done {
                    job: d.job,
                    outcome: d.outcome,
                    cost_usd: d.cost_usd,
                    rerun: d.rerun,
                });
            }
        }
    }
    serde_json::from_slice(line)
}

impl JournalJobs {
    /// Reads the line at `offset` into `buf` (which holds the journal's
    /// bytes from `*start`), refilling it as needed; returns the line.
    fn line<'b>(&self, offset: u64, buf: &'b mut Vec<u8>, start: &mut u64) -> Result<&'b [u8]> {
        let read_err = |e| Error::io("read the state file", &self.path, e);
        let within = offset >= *start && offset < *start + buf.len() as u64;
        let mut from = if within {
            (offset - *start) as usize
        } else {
            buf.clear();
            *start = offset;
            0
        };
        loop {
            if let Some(n) = memchr::memchr(b'\n', &buf[from..]) {
                return Ok(&buf[from..from + n]);
            }
            if buf.len() - from > MAX_JOB_LINE {
                return Err(state_err(&self.path, "a job line is longer than 64 MB"));
            }
            // Keep the partial line; drop what is before it.
            buf.drain(..from);
            *start += from as u64;
            from = 0;
            let have = buf.len();
            buf.resize(have + JOURNAL_READ_BYTES, 0);
            let pos = *start + have as u64;
            #[cfg(unix)]
            let n = std::os::unix::fs::FileExt::read_at(&self.file, &mut buf[have..], pos)
                .map_err(read_err)?;
            #[cfg(windows)]
            let n = std::os::windows::fs::FileExt::seek_read(&self.file, &mut buf[have..], pos)
                .map_err(read_err)?;
            buf.truncate(have + n);
            if n == 0 {
                return Err(state_err(&self.path, "a job line is cut short"));
            }
        }
    }
}

impl crate::providers::JobSource for JournalJobs {
    fn len(&self) -> usize {
        self.offsets.len()
    }

    fn jobs(&self) -> Result<crate::providers::JobIter<'_>> {
        let mut buf = Vec::with_capacity(JOURNAL_READ_BYTES);
        let mut start = 0u64;
        let mut schemas = SchemaInterner::default();
        Ok(Box::new(self.offsets.iter().zip(&self.ids).map(
            move |(&offset, id)| {
                let line = self.line(offset, &mut buf, &mut start)?;
                match serde_json::from_slice::<JobLine>(line) {
                    Ok(JobLine { t, mut job }) if t == "job" && job.id_str() == &**id => {
                        schemas.share(&mut job);
                        Ok(std::borrow::Cow::Owned(job))
                    }
                    _ => Err(state_err(
                        &self.path,
                        format!("job '{id}' could not be read back"),
                    )),
                }
            },
        )))
    }
}
