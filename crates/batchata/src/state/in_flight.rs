//! The jobs of batches being submitted or in flight: taken into a batch
//! ([`StateStore::claim`]), found by id while they are, and read back from
//! the journal for their request body and for parsing their results.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use super::lines::{JobLine, JobLineSansContent, JOURNAL_READ_BYTES, MAX_JOB_LINE};
use super::{state_err, JobId, JobNo, JobRecord, JournalJobs, LiveJob, StateStore};
use crate::error::{Error, Result};
use crate::job::{Job, SchemaInterner};

impl StateStore {
    /// Takes jobs into a batch: from here until each ends (or is reset),
    /// the engine and the results name it by id. Returns their ids in order.
    pub fn claim(&mut self, jobs: impl IntoIterator<Item = JobNo>) -> Result<Vec<JobId>> {
        let nos: Vec<JobNo> = jobs.into_iter().collect();
        // Jobs come and go in batches, and each that leaves leaves a
        // tombstone: a map near its capacity would soon grow to twice the
        // size for good (10 batches of 10,000 in flight: 6 MB more). One
        // that would have to grow is rebuilt at its live size instead,
        // without tombstones, with room for the new batch.
        let wanted = self.live.len() + nos.len();
        if self.live.capacity() < wanted {
            let mut fresh = ahash::AHashMap::with_capacity(wanted);
            fresh.extend(self.live.drain());
            self.live = fresh;
        }
        let mut ids = Vec::with_capacity(nos.len());
        for (rec, no) in self.table.records(&nos)?.into_iter().zip(nos) {
            let id: JobId = Arc::from(rec.id);
            self.live.insert(
                id.clone(),
                LiveJob {
                    no,
                    model: rec.model,
                    has_file: rec.has_file,
                },
            );
            ids.push(id);
        }
        Ok(ids)
    }

    /// The ids of some jobs, read from their records.
    pub fn ids_of(&self, jobs: impl IntoIterator<Item = JobNo>) -> Result<Vec<JobId>> {
        jobs.into_iter()
            .map(|n| self.table.record(n).map(|r| JobId::from(r.id)))
            .collect()
    }

    /// A job in flight (or, while the run opens, any job).
    pub(super) fn locate(&self, id: &str) -> Result<LiveJob> {
        if let Some(j) = self.live.get(id) {
            return Ok(*j);
        }
        let (no, rec) = self
            .find_record(id)?
            .ok_or_else(|| state_err(&self.path, format!("job '{id}' is not in the state")))?;
        Ok(LiveJob {
            no,
            model: rec.model,
            has_file: rec.has_file,
        })
    }

    /// The records of jobs in flight, in order, read a run at a time.
    pub(super) fn records_of(&self, ids: &[JobId]) -> Result<Vec<JobRecord>> {
        let nos = ids
            .iter()
            .map(|id| self.locate(id).map(|j| j.no))
            .collect::<Result<Vec<JobNo>>>()?;
        self.table.records(&nos)
    }

    /// The model a job in flight names.
    pub fn model_of(&self, id: &str) -> Result<&str> {
        let m = self.locate(id)?.model;
        Ok(self.model_name(m))
    }

    /// Reads jobs back from the journal by id.
    pub fn load_jobs(&mut self, ids: &[JobId]) -> Result<Vec<Job>> {
        self.load_jobs_with(ids, |line| match serde_json::from_slice::<JobLine>(line) {
            Ok(JobLine { t, job }) if t == "job" => Some(job),
            _ => None,
        })
    }

    /// A batch's jobs to read back one at a time, as often as needed
    /// ([`JournalJobs`]): what a provider streams its request body from.
    pub fn job_source(&mut self, ids: &[JobId]) -> Result<JournalJobs> {
        self.flush_journal()?;
        let offsets = self
            .records_of(ids)?
            .into_iter()
            .map(|r| r.offset)
            .collect();
        let file =
            File::open(&self.path).map_err(|e| Error::io("open the state file", &self.path, e))?;
        Ok(JournalJobs {
            path: self.path.clone(),
            file,
            ids: ids.to_vec(),
            offsets,
        })
    }

    /// Whether a job sends a file (false for an unknown id).
    pub fn has_file(&self, id: &str) -> bool {
        self.locate(id).is_ok_and(|j| j.has_file)
    }

    /// Reads jobs back without their content (prompt, messages): what
    /// parsing results needs. Each prompt is dropped as its job is read, so
    /// a batch's prompts are never all in memory at once.
    pub fn load_job_records(&mut self, ids: &[JobId]) -> Result<Vec<Job>> {
        // Light jobs (most of a large run) are made from their records; the
        // others are read back from the journal as they come, into the one
        // list (a batch of 10,000 file jobs held twice was 1.8 MB more).
        self.flush_journal()?;
        let records = self.records_of(ids)?;
        let mut reader = self.journal_reader();
        let mut out = Vec::with_capacity(ids.len());
        for (rec, id) in records.into_iter().zip(ids) {
            let job = match rec.light {
                Some(low) => Job {
                    id: Some(rec.id),
                    model: Some(self.model_name(rec.model).to_string()),
                    fingerprint: Some(crate::fingerprint::of_halves(rec.fingerprint, low)),
                    ..Job::default()
                },
                None => reader.read(id, rec.offset, |line| {
                    match serde_json::from_slice::<JobLineSansContent>(line) {
                        Ok(JobLineSansContent { t, job }) if t == "job" => Some(job.into()),
                        _ => None,
                    }
                })?,
            };
            out.push(job);
        }
        Ok(out)
    }

    fn load_jobs_with(
        &mut self,
        ids: &[JobId],
        parse: impl Fn(&[u8]) -> Option<Job>,
    ) -> Result<Vec<Job>> {
        self.flush_journal()?;
        let records = self.records_of(ids)?;
        let mut reader = self.journal_reader();
        let mut out = Vec::with_capacity(ids.len());
        for (id, rec) in ids.iter().zip(records) {
            out.push(reader.read(id, rec.offset, &parse)?);
        }
        Ok(out)
    }

    /// Reads job lines back from the journal (call
    /// [`flush_journal`](Self::flush_journal) first).
    fn journal_reader(&self) -> JobLineReader<'_> {
        JobLineReader {
            path: &self.path,
            // One buffered reader for all: a batch's job lines mostly
            // follow each other in the journal, and it seeks only where
            // they do not.
            r: BufReader::with_capacity(JOURNAL_READ_BYTES, &self.reader),
            at: None,
            buf: Vec::new(),
            schemas: SchemaInterner::default(),
        }
    }

    /// Writes out what the journal buffers, for reading it back.
    fn flush_journal(&mut self) -> Result<()> {
        self.writer
            .flush()
            .map_err(|e| Error::io("write the state file", &self.path, e))
    }
}

/// Reads job lines from the journal by offset, in any order.
struct JobLineReader<'a> {
    path: &'a std::path::Path,
    r: BufReader<&'a File>,
    /// Where the reader is, when known.
    at: Option<u64>,
    buf: Vec<u8>,
    schemas: SchemaInterner,
}

impl JobLineReader<'_> {
    /// The job `id` whose line starts at `offset`, made by `parse`.
    fn read(&mut self, id: &str, offset: u64, parse: impl Fn(&[u8]) -> Option<Job>) -> Result<Job> {
        if self.at != Some(offset) {
            self.r
                .seek(SeekFrom::Start(offset))
                .map_err(|e| Error::io("seek in the state file", self.path, e))?;
        }
        self.buf.clear();
        let n = (&mut self.r)
            .take(MAX_JOB_LINE as u64)
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| Error::io("read the state file", self.path, e))?;
        self.at = Some(offset + n as u64);
        match parse(&self.buf) {
            Some(mut job) if job.id_str() == id => {
                self.schemas.share(&mut job);
                Ok(job)
            }
            _ => Err(state_err(
                self.path,
                format!("job '{id}' could not be read back"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mixed_batch_reads_back_in_the_order_asked_without_prompts() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = StateStore::create(&dir.path().join("s.jsonl"), "run-1", dir.path()).unwrap();
        // Light jobs (made from their records) between heavy ones (read from
        // the journal): files, and one with citations.
        let fp = |i: usize| format!("{i:032x}");
        for i in 0..9 {
            let job = match i % 3 {
                0 => Job::prompt(format!("p{i}")),
                1 => Job::file(format!("doc{i}.pdf"), format!("p{i}")),
                _ => Job::prompt(format!("p{i}")),
            };
            let mut job = job.id(format!("j{i}")).model("claude-haiku-4-5");
            job.enable_citations = i == 5;
            job.fingerprint = Some(fp(i));
            s.add_job(&job).unwrap();
        }
        let ids = s.claim(0..9).unwrap();
        // Asked back to front, so the reader seeks between heavy lines.
        let asked: Vec<JobId> = ids.iter().rev().cloned().collect();
        let jobs = s.load_job_records(&asked).unwrap();
        assert_eq!(jobs.len(), 9);
        for (job, id) in jobs.iter().zip(&asked) {
            let i: usize = id[1..].parse().unwrap();
            assert_eq!(job.id_str(), &**id);
            assert_eq!(job.model_name(), "claude-haiku-4-5");
            assert_eq!(job.fingerprint.as_deref(), Some(fp(i).as_str()), "{id}");
            assert_eq!(job.prompt, None, "{id}: the prompt is not read back");
            assert_eq!(
                job.file.as_deref(),
                (i % 3 == 1)
                    .then(|| std::path::PathBuf::from(format!("doc{i}.pdf")))
                    .as_deref(),
                "{id}"
            );
            assert_eq!(job.enable_citations, i == 5, "{id}");
        }
    }
}
