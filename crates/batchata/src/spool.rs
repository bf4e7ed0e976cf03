//! `JobSpool`: where a `Batch` keeps the jobs added to it before the run.
//!
//! Jobs go to an anonymous temporary file (deleted by the OS when the batch
//! is dropped), one JSON line each, so adding a million 1 KB prompts costs
//! disk, not memory; the run streams them from here into its state journal.
//!
//! Reading never moves the writer: a reader has a descriptor of its own
//! position and reads with positional I/O, so jobs pushed after (or while)
//! the spool is read land after the last one, never over earlier lines.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::job::Job;

/// An append-only spool of jobs.
#[derive(Debug)]
pub struct JobSpool {
    /// Buffered appends; flushed before every read.
    file: Option<Mutex<BufWriter<File>>>,
    len: usize,
    /// Set when a copy of the spool could not be made: every later use
    /// reports it instead of running with jobs missing.
    broken: Option<Arc<str>>,
    /// The line being written (kept to reuse its allocation).
    line: Vec<u8>,
}

fn spool_io(action: &str, e: std::io::Error) -> Error {
    Error::io(action, std::env::temp_dir(), e)
}

/// Reads a file from its own position, leaving the descriptor's shared
/// offset (the writer's) alone.
struct PositionalReader {
    file: File,
    pos: u64,
}

impl Read for PositionalReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        #[cfg(unix)]
        let n = std::os::unix::fs::FileExt::read_at(&self.file, buf, self.pos)?;
        #[cfg(windows)]
        let n = std::os::windows::fs::FileExt::seek_read(&self.file, buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl JobSpool {
    /// An empty spool; the file is created on the first job.
    pub fn new() -> Self {
        JobSpool {
            file: None,
            len: 0,
            broken: None,
            line: Vec::new(),
        }
    }

    /// Jobs in the spool.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no job was added.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn check(&self) -> Result<()> {
        match &self.broken {
            Some(e) => Err(Error::Internal(format!(
                "the jobs of this batch were lost when it was copied ({e}); build the batch again"
            ))),
            None => Ok(()),
        }
    }

    /// Appends a job.
    pub fn push(&mut self, job: &Job) -> Result<()> {
        self.check()?;
        if self.file.is_none() {
            let f =
                tempfile::tempfile().map_err(|e| spool_io("create a temporary job spool in", e))?;
            self.file = Some(Mutex::new(BufWriter::with_capacity(1 << 16, f)));
        }
        if let Some(m) = self.file.as_mut() {
            let w = m.get_mut().unwrap_or_else(|p| p.into_inner());
            self.line.clear();
            job.write_json(&mut self.line).map_err(|e| {
                Error::Internal(format!("job '{}': cannot spool: {e}", job.id_str()))
            })?;
            self.line.push(b'\n');
            w.write_all(&self.line)
                .map_err(|e| spool_io("write the job spool in", e))?;
        }
        self.len += 1;
        Ok(())
    }

    /// A reader over the spool's bytes from the start (flushes pending appends).
    fn reader(&self) -> Result<Option<PositionalReader>> {
        self.check()?;
        let Some(m) = &self.file else {
            return Ok(None);
        };
        let mut w = m.lock().unwrap_or_else(|p| p.into_inner());
        w.flush()
            .map_err(|e| spool_io("write the job spool in", e))?;
        let file = w
            .get_ref()
            .try_clone()
            .map_err(|e| spool_io("reopen the job spool in", e))?;
        Ok(Some(PositionalReader { file, pos: 0 }))
    }

    /// Reads the jobs back in order, one at a time.
    pub fn iter(&self) -> Result<impl Iterator<Item = Result<Job>>> {
        Ok(self.iter_lines::<Job>()?.map(|r| r.map(|(job, _)| job)))
    }

    /// Reads the jobs back in order with each one's line as spooled (the
    /// job's JSON, what a state journal wraps without encoding it again),
    /// each parsed as `T`: a [`Job`], or a part of one that skips what it
    /// does not need (a prompt is never made into a string then).
    pub fn iter_lines<T: serde::de::DeserializeOwned>(
        &self,
    ) -> Result<impl Iterator<Item = Result<(T, Vec<u8>)>>> {
        let mut reader = self.reader()?.map(|r| BufReader::with_capacity(1 << 16, r));
        let mut left = self.len;
        Ok(std::iter::from_fn(move || {
            let r = reader.as_mut()?;
            if left == 0 {
                return None;
            }
            left -= 1;
            let mut line = Vec::with_capacity(2048);
            match r.read_until(b'\n', &mut line) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(spool_io("read the job spool in", e))),
            }
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            Some(
                serde_json::from_slice(&line)
                    .map(|job| (job, line))
                    .map_err(|e| Error::Internal(format!("job spool line unreadable: {e}"))),
            )
        }))
    }

    /// A copy with its own file: the same jobs, byte for byte.
    fn try_clone(&self) -> Result<JobSpool> {
        let mut copy = JobSpool::new();
        if let Some(mut r) = self.reader()? {
            let f =
                tempfile::tempfile().map_err(|e| spool_io("create a temporary job spool in", e))?;
            let mut w = BufWriter::with_capacity(1 << 16, f);
            std::io::copy(&mut r, &mut w).map_err(|e| spool_io("copy the job spool in", e))?;
            copy.file = Some(Mutex::new(w));
            copy.len = self.len;
        }
        Ok(copy)
    }
}

impl Default for JobSpool {
    fn default() -> Self {
        Self::new()
    }
}

impl Clone for JobSpool {
    /// Copies the spool's file. A copy that fails (a full disk) is not
    /// silently short of jobs: it refuses every later use with the reason.
    fn clone(&self) -> Self {
        self.try_clone().unwrap_or_else(|e| JobSpool {
            file: None,
            len: self.len,
            broken: Some(Arc::from(e.to_string())),
            line: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(s: &JobSpool) -> Vec<String> {
        s.iter()
            .unwrap()
            .map(|j| j.unwrap().id_str().to_string())
            .collect()
    }

    #[test]
    fn a_push_after_a_partial_read_appends_instead_of_overwriting() {
        let mut s = JobSpool::new();
        // Lines longer than the reader's buffer, so a partial read stops
        // in the middle of the file.
        let long = "x".repeat(50_000);
        for i in 0..3 {
            s.push(&Job::prompt(format!("{long}{i}")).id(format!("j{i}")))
                .unwrap();
        }
        // Read one job and stop half way, as a caller that breaks early does.
        let first = s.iter().unwrap().next().unwrap().unwrap();
        assert_eq!(first.id_str(), "j0");
        s.push(&Job::prompt("p3").id("j3")).unwrap();
        assert_eq!(ids(&s), ["j0", "j1", "j2", "j3"]);
        // And again after a full read.
        assert_eq!(ids(&s).len(), 4);
        s.push(&Job::prompt("p4").id("j4")).unwrap();
        assert_eq!(ids(&s), ["j0", "j1", "j2", "j3", "j4"]);
    }

    #[test]
    fn a_clone_has_every_job_and_its_own_file() {
        let mut s = JobSpool::new();
        for i in 0..1000 {
            s.push(&Job::prompt(format!("prompt {i}")).id(format!("j{i}")))
                .unwrap();
        }
        let mut c = s.clone();
        assert_eq!(c.len(), 1000);
        assert_eq!(ids(&c), ids(&s));
        c.push(&Job::prompt("only in the copy").id("extra"))
            .unwrap();
        s.push(&Job::prompt("only in the original").id("orig"))
            .unwrap();
        assert_eq!(ids(&c).last().map(String::as_str), Some("extra"));
        assert_eq!(ids(&s).last().map(String::as_str), Some("orig"));
        assert_eq!(ids(&c).len(), 1001);
    }

    #[test]
    fn a_broken_copy_refuses_instead_of_running_short() {
        let s = JobSpool {
            file: None,
            len: 5,
            broken: Some(Arc::from("no space left on device")),
            line: Vec::new(),
        };
        let e = s.iter().err().unwrap().to_string();
        assert!(
            e.contains("no space left") && e.contains("build the batch again"),
            "{e}"
        );
    }
}
