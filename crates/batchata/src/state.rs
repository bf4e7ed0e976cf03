//! Crash-safe run state: an append-only journal of everything that matters.
//!
//! Every event is one JSON line appended to the state file; the ones that
//! must survive a crash before we act on them (a batch about to be created,
//! a provider batch id just learned, a batch's outcomes) are fsynced. An
//! update costs O(1) whatever the run's size — the Python library rewrote
//! the whole state, prompts included, after every batch. Reloading replays
//! the lines; a torn last line (the process died mid-write) is ignored.
//!
//! We chose a journal over SQLite: the events are append-only by nature,
//! replay is a single sequential read, there is no C library to build, and
//! fsync of one file gives exactly the durability points we need.
//!
//! Jobs are written once, when the run starts. In memory the run keeps
//! four bytes a job (its status); the rest of what it knows of a job — id,
//! where its line is, fingerprint, model, size — is a record in a scratch
//! file ([`table`]), and a batch's jobs are read back from the journal when
//! it is submitted, so neither prompts nor ids sit in memory for the whole
//! run: a million jobs cost the same few megabytes as a thousand, plus
//! what the batches in flight hold.

mod events;
mod ids;
mod in_flight;
mod lines;
mod records;
mod replay;
pub use replay::results_format_of;
pub mod table;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::catalog::ProviderKind;
use crate::error::{Error, Result};
use crate::job::Job;
use crate::layout::ResultsFormat;
use crate::result::JobOutcome;
use events::put_batch;
pub use events::{BatchRecord, Event, JobStatus};
use ids::IdIndex;
pub(crate) use lines::JobSansContent;
pub use lines::JournalJobs;
use lines::{DONE_LINE_START, JOB_LINE_START};
use records::{new_record, ModelNames};
use table::JobTable;
pub use table::{JobBits, JobNo, JobRanges, JobRecord};

/// Version of the journal format.
pub const STATE_VERSION: u32 = 1;

/// A job id as a batch in flight holds it: one allocation, shared by the
/// batch, its progress row and the state's map of live jobs.
pub type JobId = Arc<str>;

/// The state of a run, rebuilt from its journal, with the journal open for appends.
#[derive(Debug)]
pub struct StateStore {
    path: PathBuf,
    writer: BufWriter<File>,
    reader: File,
    offset: u64,
    /// Run id.
    pub run_id: String,
    /// When first started.
    pub created_at: DateTime<Utc>,
    /// Results folder recorded at start.
    pub results_dir: PathBuf,
    /// The results layout recorded at start.
    pub results_format: ResultsFormat,
    /// The last length of `results.jsonl` recorded synced (0 when none).
    pub results_synced: u64,
    /// Every job, by number.
    table: JobTable,
    /// Batches by index.
    pub batches: Vec<BatchRecord>,
    models: ModelNames,
    /// Ids to numbers while the run opens (replay, matching the input);
    /// dropped before batches run ([`StateStore::drop_index`]).
    index: Option<IdIndex>,
    /// The jobs of batches being submitted or in flight, by id: what
    /// results and the engine name them by.
    live: ahash::AHashMap<JobId, LiveJob>,
    /// Cost billed by every job ended so far.
    spent: f64,
    /// The done line being written (kept to reuse its allocation).
    line: Vec<u8>,
}

/// What the engine reads of a job in flight, kept while it is (eight
/// bytes: a hundred thousand jobs in flight are a map of that many).
#[derive(Debug, Clone, Copy)]
struct LiveJob {
    no: JobNo,
    model: u16,
    has_file: bool,
}

fn state_err(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::State(format!("state file {}: {what}", path.display()))
}

/// A state file that is not one (edited by hand, another program's, from a
/// newer batchata): bad input, not a failure of the run.
fn not_a_state(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::Validation(format!("state file {}: {what}", path.display()))
}

impl StateStore {
    /// Creates a new journal at `path` (replacing any file there), for
    /// results written as files.
    pub fn create(path: &Path, run_id: &str, results_dir: &Path) -> Result<StateStore> {
        Self::create_with_format(path, run_id, results_dir, ResultsFormat::Files)
    }

    /// Creates a new journal at `path` (replacing any file there) for a run
    /// whose results are laid out as `results_format`.
    pub fn create_with_format(
        path: &Path,
        run_id: &str,
        results_dir: &Path,
        results_format: ResultsFormat,
    ) -> Result<StateStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("create folder", dir, e))?;
        }
        let file = File::create(path).map_err(|e| Error::io("create the state file", path, e))?;
        let reader = File::open(path).map_err(|e| Error::io("open the state file", path, e))?;
        let created_at = Utc::now();
        let mut store = StateStore {
            path: path.to_path_buf(),
            writer: BufWriter::with_capacity(1 << 16, file),
            reader,
            offset: 0,
            run_id: run_id.to_string(),
            created_at,
            results_dir: results_dir.to_path_buf(),
            results_format,
            results_synced: 0,
            table: JobTable::new(path)?,
            batches: Vec::new(),
            models: ModelNames::default(),
            // A new state takes its jobs from a batch whose ids are unique.
            index: None,
            live: ahash::AHashMap::new(),
            spent: 0.0,
            line: Vec::new(),
        };
        store.append(&Event::Run {
            version: STATE_VERSION,
            run_id: run_id.to_string(),
            created_at,
            results_dir: results_dir.to_path_buf(),
            results_format,
        })?;
        store.sync()?;
        Ok(store)
    }

    /// Opens an existing journal and replays it, ready for appends.
    pub fn open(path: &Path) -> Result<StateStore> {
        Self::open_with(path, true)
    }

    /// Replays a journal without writing to it — safe while another process
    /// is running the state (used by `status` and `cancel`).
    pub fn inspect(path: &Path) -> Result<StateStore> {
        Self::open_with(path, false)
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event (buffered; call [`StateStore::sync`] to make it durable).
    pub fn append(&mut self, event: &Event) -> Result<u64> {
        self.append_line(event)
    }

    /// Appends a done line, the bytes [`Event::Done`] serializes to
    /// (tested), written by hand: one per job.
    fn append_done(
        &mut self,
        job: &str,
        outcome: JobOutcome,
        cost_usd: f64,
        rerun: bool,
    ) -> Result<()> {
        use crate::json_out::{write_str, write_value};
        let line = &mut self.line;
        line.clear();
        line.extend_from_slice(DONE_LINE_START);
        line.extend_from_slice(b"\"job\":");
        write_str(line, job);
        line.extend_from_slice(b",\"outcome\":");
        write_value(line, &outcome)
            .and_then(|()| {
                line.extend_from_slice(b",\"cost_usd\":");
                write_value(line, &cost_usd)
            })
            .map_err(|e| state_err(&self.path, format!("cannot encode event: {e}")))?;
        line.extend_from_slice(if rerun {
            b",\"rerun\":true}\n"
        } else {
            b",\"rerun\":false}\n"
        });
        self.writer
            .write_all(line)
            .map_err(|e| Error::io("write the state file", &self.path, e))?;
        self.offset += line.len() as u64;
        Ok(())
    }

    fn append_line(&mut self, event: &impl Serialize) -> Result<u64> {
        let start = self.offset;
        let mut line = serde_json::to_vec(event)
            .map_err(|e| state_err(&self.path, format!("cannot encode event: {e}")))?;
        line.push(b'\n');
        self.writer
            .write_all(&line)
            .map_err(|e| Error::io("write the state file", &self.path, e))?;
        self.offset += line.len() as u64;
        Ok(start)
    }

    /// Flushes and fsyncs: everything appended so far survives a crash.
    pub fn sync(&mut self) -> Result<()> {
        self.writer
            .flush()
            .map_err(|e| Error::io("write the state file", &self.path, e))?;
        self.writer
            .get_ref()
            .sync_data()
            .map_err(|e| Error::io("sync the state file", &self.path, e))
    }

    /// Records a job (once, at the start of a run; again with a changed
    /// request, which replaces the old one and makes the job pending).
    pub fn add_job(&mut self, job: &Job) -> Result<JobNo> {
        let mut json = Vec::new();
        job.write_json(&mut json).map_err(|e| {
            state_err(
                &self.path,
                format!("job '{}': cannot encode: {e}", job.id_str()),
            )
        })?;
        self.add_job_json(job, &json)
    }

    /// Records a job from its JSON as [`crate::spool::JobSpool`] holds it:
    /// the same journal line as [`StateStore::add_job`], without encoding
    /// the job again. `job` may be without its content
    /// ([`JobSansContent`]): the record needs only the rest.
    pub fn add_job_json(&mut self, job: &Job, json: &[u8]) -> Result<JobNo> {
        let offset = self.offset;
        let w = &mut self.writer;
        w.write_all(JOB_LINE_START)
            .and_then(|()| w.write_all(b"\"job\":"))
            .and_then(|()| w.write_all(json))
            .and_then(|()| w.write_all(b"}\n"))
            .map_err(|e| Error::io("write the state file", &self.path, e))?;
        self.offset += (JOB_LINE_START.len() + 6 + json.len() + 2) as u64;
        let rec = new_record(&mut self.models, job, offset, self.offset - offset)?;
        put_job(&mut self.table, self.index.as_mut(), &rec)
    }

    /// Jobs in the state.
    pub fn job_count(&self) -> usize {
        self.table.len()
    }

    /// Job `n`'s status.
    pub fn status(&self, n: JobNo) -> JobStatus {
        self.table.status(n)
    }

    /// Whether job `n` ended in a way that runs again on resume.
    pub fn rerun(&self, n: JobNo) -> bool {
        self.table.rerun(n)
    }

    /// Job `n`'s record (id, fingerprint, model, size).
    pub fn record(&self, n: JobNo) -> Result<JobRecord> {
        self.table.record(n)
    }

    /// Every job in order: number, status and record, read a block at a time.
    pub fn scan(&mut self) -> Result<table::RecordScan<'_>> {
        self.table.scan()
    }

    /// The model name a record names.
    pub fn model_name(&self, model: u16) -> &str {
        self.models.names.get(usize::from(model)).map_or("", |m| m)
    }

    /// The run's distinct model names, by the index records hold.
    pub fn model_names(&self) -> Vec<String> {
        self.models.names.iter().map(|m| m.to_string()).collect()
    }

    /// The number of the job with this id, while the run opens (after a
    /// replay, until [`StateStore::drop_index`]) or while it is in flight.
    pub fn find(&self, id: &str) -> Result<Option<JobNo>> {
        if let Some(j) = self.live.get(id) {
            return Ok(Some(j.no));
        }
        Ok(self.find_record(id)?.map(|(n, _)| n))
    }

    /// The number and record of the job with this id, while the run opens.
    pub fn find_record(&self, id: &str) -> Result<Option<(JobNo, JobRecord)>> {
        match &self.index {
            Some(ix) => ix.find(id, &self.table),
            None => Ok(None),
        }
    }

    /// Lets go of the map from ids to numbers: once the run is open, jobs
    /// are found by number, and those in flight by [`StateStore::claim`].
    pub fn drop_index(&mut self) {
        self.index = None;
    }

    /// Room for `n` more jobs, so a large run's tables are sized once.
    pub fn reserve_jobs(&mut self, n: usize) {
        self.table.reserve(n);
    }

    /// Records a batch about to be created with jobs in flight
    /// ([`StateStore::claim`]); durable on return.
    pub fn record_intent(
        &mut self,
        index: usize,
        provider: ProviderKind,
        job_ids: Vec<JobId>,
        reserved_usd: f64,
    ) -> Result<()> {
        let nums = job_ids
            .iter()
            .map(|id| self.locate(id).map(|j| j.no))
            .collect::<Result<JobRanges>>()?;
        let at = Utc::now();
        let size = job_ids.len();
        self.append(&Event::Intent {
            batch: index,
            provider,
            jobs: job_ids,
            at,
            reserved_usd,
        })?;
        self.sync()?;
        for n in nums.iter() {
            self.table.set_status(n, JobStatus::in_batch(index), false);
        }
        let rec = BatchRecord {
            index,
            provider,
            jobs: nums,
            size,
            intent_at: at,
            reserved_usd,
            batch_id: None,
            ended: None,
        };
        put_batch(&mut self.batches, rec);
        Ok(())
    }

    /// Records the provider batch id; durable on return.
    pub fn record_submitted(&mut self, index: usize, batch_id: &str) -> Result<()> {
        self.append(&Event::Submitted {
            batch: index,
            batch_id: batch_id.to_string(),
        })?;
        self.sync()?;
        if let Some(b) = self.batches.get_mut(index) {
            b.batch_id = Some(batch_id.to_string());
        }
        Ok(())
    }

    /// Records a job's end (buffered; sync after a batch's results). The
    /// job leaves the jobs in flight.
    pub fn record_done(
        &mut self,
        job_id: &str,
        outcome: JobOutcome,
        cost_usd: f64,
        rerun: bool,
    ) -> Result<()> {
        let no = match self.live.remove(job_id) {
            Some(j) => Some(j.no),
            None => self.find(job_id)?,
        };
        self.append_done(job_id, outcome, cost_usd, rerun)?;
        self.spent += cost_usd;
        if let Some(n) = no {
            self.table.set_status(n, JobStatus::Done(outcome), rerun);
        }
        Ok(())
    }

    /// Records job `n`'s end, as [`StateStore::record_done`] does by id.
    pub fn record_done_no(
        &mut self,
        n: JobNo,
        outcome: JobOutcome,
        cost_usd: f64,
        rerun: bool,
    ) -> Result<()> {
        let id = self.table.record(n)?.id;
        self.live.remove(id.as_str());
        self.append_done(&id, outcome, cost_usd, rerun)?;
        self.spent += cost_usd;
        self.table.set_status(n, JobStatus::Done(outcome), rerun);
        Ok(())
    }

    /// Records that a batch needs nothing more; durable on return.
    pub fn record_batch_ended(&mut self, index: usize, status: &str) -> Result<()> {
        self.append(&Event::BatchEnded {
            batch: index,
            status: status.to_string(),
        })?;
        self.sync()?;
        if let Some(b) = self.batches.get_mut(index) {
            b.ended = Some(status.to_string());
            b.jobs = JobRanges::default();
        }
        Ok(())
    }

    /// Records that `results.jsonl` is synced at `len` bytes and that the
    /// done lines journaled so far cover its every line (buffered; sync after).
    pub fn record_results_synced(&mut self, len: u64) -> Result<()> {
        self.append(&Event::ResultsSynced { len })?;
        self.results_synced = len;
        Ok(())
    }

    /// Queues a job again; it leaves the jobs in flight.
    pub fn reset_job(&mut self, job_id: &str) -> Result<()> {
        let no = match self.live.remove(job_id) {
            Some(j) => Some(j.no),
            None => self.find(job_id)?,
        };
        self.append(&Event::Reset {
            job: job_id.to_string(),
        })?;
        if let Some(n) = no {
            self.table.set_status(n, JobStatus::Pending, false);
        }
        Ok(())
    }

    /// Queues job `n` again.
    pub fn reset_no(&mut self, n: JobNo) -> Result<()> {
        let id = self.table.record(n)?.id;
        self.live.remove(id.as_str());
        self.append(&Event::Reset { job: id })?;
        self.table.set_status(n, JobStatus::Pending, false);
        Ok(())
    }

    /// Total cost billed so far (every job ended, in this run and the runs
    /// it resumes).
    pub fn cost_used(&self) -> f64 {
        self.spent
    }

    /// Counts of (pending, in batch, completed, failed, cancelled).
    pub fn counts(&self) -> StateCounts {
        let mut c = StateCounts {
            total: self.table.len(),
            ..Default::default()
        };
        for (_, status, _) in self.table.statuses() {
            match status {
                JobStatus::Pending => c.pending += 1,
                JobStatus::InBatch(_) => c.running += 1,
                JobStatus::Done(JobOutcome::Completed) => c.completed += 1,
                JobStatus::Done(JobOutcome::Failed) => c.failed += 1,
                JobStatus::Done(JobOutcome::Cancelled) => c.cancelled += 1,
            }
        }
        c
    }

    /// Every job's status in order.
    pub fn statuses(&self) -> impl Iterator<Item = (JobNo, JobStatus, bool)> + '_ {
        self.table.statuses()
    }
}

/// Adds a job to the table, or — when the index knows its id — replaces
/// the old request's record, the job pending again.
fn put_job(table: &mut JobTable, index: Option<&mut IdIndex>, rec: &JobRecord) -> Result<JobNo> {
    if let Some(ix) = index {
        let next = JobNo::try_from(table.len()).unwrap_or(JobNo::MAX);
        if let Some(n) = ix.insert(&rec.id, next, table)? {
            table.set_record(n, rec)?;
            table.set_status(n, JobStatus::Pending, false);
            return Ok(n);
        }
    }
    table.push(rec)
}

/// Job counts of a state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateCounts {
    /// All jobs.
    pub total: usize,
    /// Not yet in a batch.
    pub pending: usize,
    /// In a batch not yet finished.
    pub running: usize,
    /// Completed.
    pub completed: usize,
    /// Failed.
    pub failed: usize,
    /// Cancelled.
    pub cancelled: usize,
}

#[cfg(test)]
mod tests {
    use super::lines::parse_event;
    use super::lines::JOURNAL_READ_BYTES;
    use super::*;
    use std::fs::OpenOptions;

    #[test]
    fn job_lines_are_written_and_read_as_events_are() {
        let job = Job::prompt("say \"hi\"\n")
            .id("j1")
            .model("m")
            .max_tokens(5);
        let event = serde_json::to_vec(&Event::Job { job: job.clone() }).unwrap();
        let direct = serde_json::to_vec(&super::lines::JobLineRef {
            t: "job",
            job: &job,
        })
        .unwrap();
        assert_eq!(event, direct);
        assert!(direct.starts_with(JOB_LINE_START));
        match parse_event(&direct).unwrap() {
            // Without its content: a replay needs only the record.
            Event::Job { job: back } => assert_eq!(
                back,
                Job {
                    prompt: None,
                    ..job.clone()
                }
            ),
            other => panic!("{other:?}"),
        }
        // Done lines as written, with and without `rerun`.
        for rerun in [false, true] {
            let event = Event::Done {
                job: "j1".into(),
                outcome: JobOutcome::Failed,
                cost_usd: 0.25,
                rerun,
            };
            let line = serde_json::to_vec(&event).unwrap();
            assert!(line.starts_with(DONE_LINE_START));
            match parse_event(&line).unwrap() {
                Event::Done {
                    job,
                    outcome,
                    cost_usd,
                    rerun: r,
                } => assert_eq!(
                    (job.as_str(), outcome, cost_usd, r),
                    ("j1", JobOutcome::Failed, 0.25, rerun)
                ),
                other => panic!("{other:?}"),
            }
        }
        // The hand-written done line is serde's, byte for byte.
        let dir = tempfile::tempdir().unwrap();
        let mut s = StateStore::create(&dir.path().join("s.jsonl"), "r", dir.path()).unwrap();
        for (id, outcome, cost_usd, rerun) in [
            ("j\"1", JobOutcome::Completed, 0.00016, false),
            ("j2", JobOutcome::Cancelled, 0.0, true),
            ("j3", JobOutcome::Failed, 1e-9, false),
        ] {
            let start = s.offset;
            s.append_done(id, outcome, cost_usd, rerun).unwrap();
            s.sync().unwrap();
            let all = std::fs::read(&s.path).unwrap();
            let mut want = serde_json::to_vec(&Event::Done {
                job: id.into(),
                outcome,
                cost_usd,
                rerun,
            })
            .unwrap();
            want.push(b'\n');
            assert_eq!(&all[start as usize..], &want[..]);
        }
        let done = br#"{"t":"done","job":"j1","outcome":"completed","cost_usd":0.0}"#;
        assert!(matches!(
            parse_event(done),
            Ok(Event::Done { rerun: false, .. })
        ));
        // Other events still parse the general way.
        let ended = serde_json::to_vec(&Event::BatchEnded {
            batch: 2,
            status: "ended".into(),
        })
        .unwrap();
        assert!(matches!(
            parse_event(&ended),
            Ok(Event::BatchEnded { batch: 2, .. })
        ));
    }

    #[test]
    fn a_batch_s_jobs_are_read_back_one_at_a_time_as_often_as_asked() {
        use crate::providers::JobSource;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.jsonl");
        let mut s = StateStore::create(&path, "run-1", dir.path()).unwrap();
        // Lines longer than a read, between short ones.
        let long = "x".repeat(JOURNAL_READ_BYTES * 2 + 17);
        let jobs: Vec<Job> = (0..40)
            .map(|i| {
                let prompt = if i % 13 == 5 {
                    format!("{long}{i}")
                } else {
                    format!("p{i}")
                };
                Job::prompt(prompt).id(format!("j{i}"))
            })
            .collect();
        for j in &jobs {
            s.add_job(j).unwrap();
        }
        s.claim(0..40).unwrap();
        // Written after the jobs: a source never reads past its jobs' lines.
        s.record_intent(0, ProviderKind::Anthropic, vec!["j0".into()], 0.0)
            .unwrap();
        // Some of them, not in journal order.
        let pick: Vec<usize> = vec![3, 5, 6, 18, 2, 31, 39, 0];
        let ids: Vec<JobId> = pick.iter().map(|&i| Arc::from(format!("j{i}"))).collect();
        let source = s.job_source(&ids).unwrap();
        assert_eq!(source.len(), pick.len());
        for _ in 0..2 {
            let read: Vec<Job> = source
                .jobs()
                .unwrap()
                .map(|j| j.unwrap().into_owned())
                .collect();
            let want: Vec<Job> = pick.iter().map(|&i| jobs[i].clone()).collect();
            assert_eq!(read, want);
        }
        // An id that is not the job at its offset is an error, not a wrong job.
        let mut bad = s.job_source(&ids[..1]).unwrap();
        bad.ids[0] = Arc::from("j4");
        let e = bad.jobs().unwrap().next().unwrap().unwrap_err().to_string();
        assert!(e.contains("'j4' could not be read back"), "{e}");
    }

    #[test]
    fn a_job_added_from_its_json_writes_the_line_add_job_writes() {
        let dir = tempfile::tempdir().unwrap();
        let job = Job::prompt("say \"hi\"\n")
            .id("j1")
            .model("m")
            .max_tokens(5);
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let mut sa = StateStore::create(&a, "run-1", dir.path()).unwrap();
        let mut sb = StateStore::create(&b, "run-1", dir.path()).unwrap();
        for _ in 0..2 {
            sa.add_job(&job).unwrap();
            sb.add_job_json(&job, &serde_json::to_vec(&job).unwrap())
                .unwrap();
        }
        sa.sync().unwrap();
        sb.sync().unwrap();
        let lines = |p: &Path| -> Vec<String> {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .skip(1)
                .map(String::from)
                .collect()
        };
        assert_eq!(lines(&a), lines(&b));
        assert_eq!(sb.record(1).unwrap(), sa.record(1).unwrap());
        let mut back = StateStore::open(&b).unwrap();
        assert_eq!(back.job_count(), 1, "one id, added twice: one job");
        back.claim([0]).unwrap();
        assert_eq!(back.load_jobs(&["j1".into()]).unwrap(), vec![job]);
    }

    #[test]
    fn jobs_in_flight_coming_and_going_in_batches_keep_the_map_at_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let mut s =
            StateStore::create(&dir.path().join("state.jsonl"), "run-1", dir.path()).unwrap();
        let (batch, in_flight, batches) = (1_000u32, 10u32, 60u32);
        for i in 0..batch * batches {
            s.add_job(&Job::prompt(format!("p{i}")).id(format!("j{i}")))
                .unwrap();
        }
        let mut claimed = std::collections::VecDeque::new();
        for b in 0..in_flight {
            claimed.push_back(s.claim(b * batch..(b + 1) * batch).unwrap());
        }
        let full = s.live.capacity();
        for b in in_flight..batches {
            // The oldest batch ends, the next one takes its place.
            for id in claimed.pop_front().unwrap() {
                s.record_done(&id, JobOutcome::Completed, 0.0, false)
                    .unwrap();
            }
            claimed.push_back(s.claim(b * batch..(b + 1) * batch).unwrap());
            assert!(
                s.live.capacity() <= full,
                "batch {b}: {} slots for {} jobs (it started at {full})",
                s.live.capacity(),
                s.live.len()
            );
        }
        // Every job in flight is still found, by number and model.
        for ids in &claimed {
            for id in ids {
                assert!(s.find(id).unwrap().is_some());
                assert_eq!(s.model_of(id).unwrap(), "");
            }
        }
        assert_eq!(s.live.len(), (batch * in_flight) as usize);
    }

    #[test]
    fn intents_recorded_out_of_order_land_at_their_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.jsonl");
        {
            let mut s = StateStore::create(&path, "run-1", dir.path()).unwrap();
            for i in 0..2 {
                s.add_job(&Job::prompt(format!("p{i}")).id(format!("j{i}")))
                    .unwrap();
            }
            s.claim(0..2).unwrap();
            // Batch 1 reaches its create call before batch 0.
            s.record_intent(1, ProviderKind::OpenAi, vec!["j1".into()], 0.1)
                .unwrap();
            s.record_submitted(1, "batch_b").unwrap();
            assert_eq!(s.batches[1].batch_id.as_deref(), Some("batch_b"));
            s.record_intent(0, ProviderKind::Anthropic, vec!["j0".into()], 0.1)
                .unwrap();
            s.record_submitted(0, "msgbatch_a").unwrap();
            s.sync().unwrap();
        }
        let s = StateStore::open(&path).unwrap();
        assert_eq!(s.batches.len(), 2);
        assert_eq!(s.batches[0].batch_id.as_deref(), Some("msgbatch_a"));
        assert_eq!(s.batches[1].batch_id.as_deref(), Some("batch_b"));
        assert_eq!(s.batches[1].jobs.iter().collect::<Vec<_>>(), vec![1]);
        assert_eq!(s.batches[1].size, 1);
        assert!(s.batches.iter().all(|b| b.ended.is_none()));
    }

    #[test]
    fn journal_replays_and_survives_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.jsonl");
        {
            let mut s = StateStore::create(&path, "run-1", dir.path()).unwrap();
            for i in 0..3 {
                s.add_job(&Job::prompt(format!("p{i}")).id(format!("j{i}")))
                    .unwrap();
            }
            s.claim(0..2).unwrap();
            s.record_intent(
                0,
                ProviderKind::Anthropic,
                vec!["j0".into(), "j1".into()],
                0.5,
            )
            .unwrap();
            s.record_submitted(0, "msgbatch_1").unwrap();
            s.record_done("j0", JobOutcome::Completed, 0.01, false)
                .unwrap();
            s.sync().unwrap();
        }
        // A half-written line at the end, as after a crash mid-write.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"t":"done","job":"j1","outc"#).unwrap();
        drop(f);
        let mut s = StateStore::open(&path).unwrap();
        assert_eq!(s.run_id, "run-1");
        let order: Vec<String> = s.scan().unwrap().map(|r| r.unwrap().2.id).collect();
        assert_eq!(order, vec!["j0", "j1", "j2"]);
        let status = |s: &StateStore, id: &str| s.status(s.find(id).unwrap().unwrap());
        assert_eq!(status(&s, "j0"), JobStatus::Done(JobOutcome::Completed));
        assert_eq!(status(&s, "j1"), JobStatus::in_batch(0));
        assert_eq!(status(&s, "j2"), JobStatus::Pending);
        assert_eq!(s.batches[0].jobs.iter().collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(s.batches[0].batch_id.as_deref(), Some("msgbatch_1"));
        let jobs = s.load_jobs(&["j2".into(), "j0".into()]).unwrap();
        assert_eq!(jobs[0].prompt.as_deref(), Some("p2"));
        assert_eq!(jobs[1].prompt.as_deref(), Some("p0"));
        // New events append cleanly after the trimmed tail.
        s.record_done("j1", JobOutcome::Failed, 0.0, false).unwrap();
        s.sync().unwrap();
        let s = StateStore::open(&path).unwrap();
        assert_eq!(status(&s, "j1"), JobStatus::Done(JobOutcome::Failed));
        assert_eq!(s.find("j9").unwrap(), None);
        assert!((s.cost_used() - 0.01).abs() < 1e-12);
    }

    #[test]
    fn the_run_header_names_the_results_layout_only_when_it_is_jsonl() {
        let dir = tempfile::tempdir().unwrap();
        let files = dir.path().join("files.jsonl");
        StateStore::create(&files, "run-1", dir.path()).unwrap();
        let header = std::fs::read_to_string(&files).unwrap();
        // A files run's header is as it always was (older journals too).
        assert!(!header.contains("results_format"), "{header}");
        assert_eq!(results_format_of(&files).unwrap(), ResultsFormat::Files);
        assert_eq!(
            StateStore::open(&files).unwrap().results_format,
            ResultsFormat::Files
        );
        let jsonl = dir.path().join("jsonl.jsonl");
        StateStore::create_with_format(&jsonl, "run-2", dir.path(), ResultsFormat::Jsonl).unwrap();
        assert!(std::fs::read_to_string(&jsonl)
            .unwrap()
            .contains(r#""results_format":"jsonl""#));
        let s = StateStore::open(&jsonl).unwrap();
        assert_eq!(
            (s.results_format, s.results_synced),
            (ResultsFormat::Jsonl, 0)
        );
        assert!(results_format_of(&dir.path().join("none")).is_err());
    }

    #[test]
    fn garbage_state_file_gives_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, "{\"not\":\"ours\"}\n").unwrap();
        let e = StateStore::open(&path).unwrap_err().to_string();
        assert!(e.contains("--fresh") && e.contains("line 1"), "{e}");
    }
}
