//! `JobSpool`: where a `Batch` keeps the jobs added to it before the run.
//!
//! Jobs go to an anonymous temporary file (deleted by the OS when the batch
//! is dropped), one JSON line each, so adding a million 1 KB prompts costs
//! disk, not memory; the run streams them from here into its state journal.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::job::Job;

/// An append-only spool of jobs.
#[derive(Debug)]
pub struct JobSpool {
    /// Buffered appends; flushed before every read.
    file: Option<Mutex<BufWriter<File>>>,
    len: usize,
}

impl JobSpool {
    /// An empty spool; the file is created on the first job.
    pub fn new() -> Self {
        JobSpool { file: None, len: 0 }
    }

    /// Jobs in the spool.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no job was added.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends a job.
    pub fn push(&mut self, job: &Job) -> Result<()> {
        let tmp = std::env::temp_dir();
        if self.file.is_none() {
            let f = tempfile::tempfile()
                .map_err(|e| Error::io("create a temporary job spool in", &tmp, e))?;
            self.file = Some(Mutex::new(BufWriter::with_capacity(1 << 16, f)));
        }
        if let Some(m) = self.file.as_mut() {
            let w = m.get_mut().unwrap_or_else(|p| p.into_inner());
            serde_json::to_writer(&mut *w, job)
                .map_err(|e| Error::State(format!("job '{}': cannot spool: {e}", job.id_str())))?;
            w.write_all(b"\n")
                .map_err(|e| Error::io("write the job spool in", &tmp, e))?;
        }
        self.len += 1;
        Ok(())
    }

    /// Reads the jobs back in order, one at a time.
    pub fn iter(&self) -> Result<impl Iterator<Item = Result<Job>>> {
        let reader = match &self.file {
            None => None,
            Some(m) => {
                let mut w = m.lock().unwrap_or_else(|p| p.into_inner());
                // Flush, and leave the shared offset at the end for the next append.
                w.flush()
                    .and_then(|_| w.get_mut().seek(SeekFrom::End(0)).map(|_| ()))
                    .map_err(|e| Error::io("write the job spool in", std::env::temp_dir(), e))?;
                let file = w.get_ref();
                let mut f = file
                    .try_clone()
                    .map_err(|e| Error::io("reopen the job spool in", std::env::temp_dir(), e))?;
                f.seek(SeekFrom::Start(0))
                    .map_err(|e| Error::io("rewind the job spool in", std::env::temp_dir(), e))?;
                Some(BufReader::with_capacity(1 << 16, f))
            }
        };
        let limit = self.len;
        Ok(reader
            .into_iter()
            .flat_map(|r| r.lines())
            .take(limit)
            .map(|line| {
                let line =
                    line.map_err(|e| Error::io("read the job spool in", std::env::temp_dir(), e))?;
                serde_json::from_str(&line)
                    .map_err(|e| Error::State(format!("job spool line unreadable: {e}")))
            }))
    }
}

impl Default for JobSpool {
    fn default() -> Self {
        Self::new()
    }
}

impl Clone for JobSpool {
    fn clone(&self) -> Self {
        let mut copy = JobSpool::new();
        if let Ok(jobs) = self.iter() {
            for job in jobs.flatten() {
                if copy.push(&job).is_err() {
                    break;
                }
            }
        }
        copy
    }
}
