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
        self.writer
            .flush()
            .map_err(|e| Error::io("write the state file", &self.path, e))?;
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
        // Light jobs (most of a large run) are made from their records;
        // the others are read back from the journal, in order.
        let mut out: Vec<Option<Job>> = Vec::with_capacity(ids.len());
        let mut heavy: Vec<JobId> = Vec::new();
        for (rec, id) in self.records_of(ids)?.into_iter().zip(ids) {
            match rec.light {
                Some(low) => out.push(Some(Job {
                    id: Some(rec.id),
                    model: Some(self.model_name(rec.model).to_string()),
                    fingerprint: Some(crate::fingerprint::of_halves(rec.fingerprint, low)),
                    ..Job::default()
                })),
                None => {
                    out.push(None);
                    heavy.push(id.clone());
                }
            }
        }
        let mut read = self
            .load_jobs_with(&heavy, |line| {
                match serde_json::from_slice::<JobLineSansContent>(line) {
                    Ok(JobLineSansContent { t, job }) if t == "job" => Some(job.into()),
                    _ => None,
                }
            })?
            .into_iter();
        Ok(out
            .into_iter()
            .filter_map(|j| j.or_else(|| read.next()))
            .collect())
    }

    fn load_jobs_with(
        &mut self,
        ids: &[JobId],
        parse: impl Fn(&[u8]) -> Option<Job>,
    ) -> Result<Vec<Job>> {
        self.writer
            .flush()
            .map_err(|e| Error::io("write the state file", &self.path, e))?;
        let mut out = Vec::with_capacity(ids.len());
        let mut buf = Vec::new();
        let mut schemas = SchemaInterner::default();
        let offsets: Vec<u64> = self.records_of(ids)?.iter().map(|r| r.offset).collect();
        // One buffered reader for all: a batch's job lines mostly follow
        // each other in the journal, and it seeks only where they do not.
        let mut r = BufReader::with_capacity(JOURNAL_READ_BYTES, &self.reader);
        let mut at: Option<u64> = None;
        for (id, offset) in ids.iter().zip(offsets) {
            if at != Some(offset) {
                r.seek(SeekFrom::Start(offset))
                    .map_err(|e| Error::io("seek in the state file", &self.path, e))?;
            }
            buf.clear();
            let n = (&mut r)
                .take(MAX_JOB_LINE as u64)
                .read_until(b'\n', &mut buf)
                .map_err(|e| Error::io("read the state file", &self.path, e))?;
            at = Some(offset + n as u64);
            match parse(&buf) {
                Some(mut job) if job.id_str() == &**id => {
                    schemas.share(&mut job);
                    out.push(job)
                }
                _ => {
                    return Err(state_err(
                        &self.path,
                        format!("job '{id}' could not be read back"),
                    ))
                }
            }
        }
        Ok(out)
    }
}
