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
//! Jobs are written once, when the run starts; the engine keeps only each
//! job's byte offset and reads a batch's jobs back when it submits them, so
//! prompts never sit in memory for the whole run.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::catalog::ProviderKind;
use crate::error::{Error, Result};
use crate::job::{Job, SchemaInterner};
use crate::layout::ResultsFormat;
use crate::result::JobOutcome;

/// Version of the journal format.
pub const STATE_VERSION: u32 = 1;

/// One line of the journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Event {
    /// First line: the run's identity.
    Run {
        /// Format version.
        version: u32,
        /// The run's id (also in provider batch metadata).
        run_id: String,
        /// When the run was first started.
        created_at: DateTime<Utc>,
        /// Where results go.
        results_dir: PathBuf,
        /// How results are laid out in `results_dir`; absent (files) in
        /// journals from before the option, and for files.
        #[serde(default, skip_serializing_if = "ResultsFormat::is_files")]
        results_format: ResultsFormat,
    },
    /// A job of the run (written once).
    Job {
        /// The job, defaults merged.
        job: Job,
    },
    /// A batch is about to be created with these jobs.
    Intent {
        /// Batch index in the run.
        batch: usize,
        /// Provider.
        provider: ProviderKind,
        /// Job ids.
        jobs: Vec<JobId>,
        /// When.
        at: DateTime<Utc>,
        /// Cost reserved for it.
        reserved_usd: f64,
    },
    /// The provider accepted the batch.
    Submitted {
        /// Batch index.
        batch: usize,
        /// Provider batch id.
        batch_id: String,
    },
    /// A job ended.
    Done {
        /// Job id.
        job: String,
        /// How.
        outcome: JobOutcome,
        /// Cost billed.
        cost_usd: f64,
        /// True when the job never ran (cancelled, time or cost limit): a resume runs it again.
        #[serde(default)]
        rerun: bool,
    },
    /// A batch needs nothing more from the provider.
    BatchEnded {
        /// Batch index.
        batch: usize,
        /// Final provider status.
        status: String,
    },
    /// A failed job is queued again (`retry_failed`).
    Reset {
        /// Job id.
        job: String,
    },
    /// `results.jsonl` (the jsonl layout) was synced at this length, and
    /// the done lines before this event cover every result line in it:
    /// lines past it answer jobs not yet journaled done.
    ResultsSynced {
        /// The file's length in bytes.
        len: u64,
    },
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    /// Not yet in a live batch.
    Pending,
    /// In batch `n`, not finished.
    InBatch(u32),
    /// Finished.
    Done(JobOutcome),
}

impl JobStatus {
    /// `InBatch` for a batch index (a run never has 4 billion batches).
    pub fn in_batch(index: usize) -> JobStatus {
        JobStatus::InBatch(u32::try_from(index).unwrap_or(u32::MAX))
    }
}

/// What the run keeps per job: small, whatever the prompt's size (40
/// bytes; a run holds one per job, so at 100,000 jobs every field counts).
#[derive(Debug, Clone)]
pub struct JobEntry {
    /// Byte offset of the job's line in the journal.
    pub offset: u64,
    /// The first 64 bits of the job's fingerprint (0 when the journal
    /// predates fingerprints): how a rerun tells an edited job.
    pub fingerprint: u64,
    /// Cost billed.
    pub cost_usd: f64,
    /// Approximate bytes the job adds to a provider request (prompt, file),
    /// saturating at 4 GiB (far past any provider's batch limit).
    pub approx_bytes: u32,
    /// The job's model, as an index into the run's distinct model names
    /// ([`StateStore::model_of`]).
    model: u16,
    /// Status.
    pub status: JobStatus,
    /// A `Done` that may run again on resume.
    pub rerun: bool,
    /// The job sends a file.
    pub has_file: bool,
}

/// A batch as the journal knows it.
#[derive(Debug, Clone)]
pub struct BatchRecord {
    /// Index in the run.
    pub index: usize,
    /// Provider.
    pub provider: ProviderKind,
    /// Job ids.
    pub jobs: Vec<JobId>,
    /// When the create call was about to be made.
    pub intent_at: DateTime<Utc>,
    /// Cost reserved.
    pub reserved_usd: f64,
    /// Provider batch id once known.
    pub batch_id: Option<String>,
    /// Final status once ended.
    pub ended: Option<String>,
}

/// Puts a batch record at its index. Batches reach the create call in any
/// order (batch 1 may record its intent before batch 0), so a gap is filled
/// with an ended placeholder that the missing batch's own intent replaces.
fn put_batch(batches: &mut Vec<BatchRecord>, rec: BatchRecord) {
    let index = rec.index;
    while batches.len() < index {
        let i = batches.len();
        batches.push(BatchRecord {
            index: i,
            provider: rec.provider,
            jobs: Vec::new(),
            intent_at: rec.intent_at,
            reserved_usd: 0.0,
            batch_id: None,
            ended: Some("missing".into()),
        });
    }
    if index < batches.len() {
        batches[index] = rec;
    } else {
        batches.push(rec);
    }
}

/// A job id as the run holds it: one allocation per job, shared by the
/// job table, the order, the plan and the batch records (at 100,000 jobs,
/// separate `String` copies cost ~13 MB more).
pub type JobId = Arc<str>;

/// Adds or replaces a job's entry, keeping first-seen order and one shared id.
fn put_job(order: &mut Vec<JobId>, jobs: &mut HashMap<JobId, JobEntry>, id: &str, entry: JobEntry) {
    match jobs.get_mut(id) {
        Some(e) => *e = entry,
        None => {
            let id: JobId = Arc::from(id);
            order.push(id.clone());
            jobs.insert(id, entry);
        }
    }
}

/// Some jobs of a journal, read back in order one at a time, each pass
/// from the start ([`crate::providers::JobSource`]). Reads are positional on
/// a handle of its own, so they never move the state's reader or writer;
/// the journal only grows, so the jobs' lines stay where they are.
#[derive(Debug)]
pub struct JournalJobs {
    path: PathBuf,
    file: File,
    ids: Vec<JobId>,
    offsets: Vec<u64>,
}

/// Bytes read from the journal at a time.
const JOURNAL_READ_BYTES: usize = 256 * 1024;
/// The longest job line read back.
const MAX_JOB_LINE: usize = 64 << 20;

/// A job line of the journal (`{"t":"job","job":{...}}`), read without
/// going through [`Event`]: an internally tagged enum buffers every field
/// (a whole prompt) before deciding the variant.
#[derive(Deserialize)]
struct JobLine {
    t: String,
    job: Job,
}

/// A job line as written: the same bytes as [`Event::Job`], without a copy
/// of the job.
#[derive(Serialize)]
struct JobLineRef<'a> {
    t: &'static str,
    job: &'a Job,
}

/// A `done` line of the journal, read directly as [`JobLine`] is.
#[derive(Deserialize)]
struct DoneLine {
    t: String,
    job: String,
    outcome: JobOutcome,
    cost_usd: f64,
    #[serde(default)]
    rerun: bool,
}

/// How every job line starts ([`Event`] writes its tag first).
const JOB_LINE_START: &[u8] = b"{\"t\":\"job\",";
/// How every done line starts.
const DONE_LINE_START: &[u8] = b"{\"t\":\"done\",";

/// Parses one journal line. Job and done lines (nearly all of a journal)
/// take a direct path instead of [`Event`]'s buffered one; anything they
/// do not read falls back to it.
fn parse_event(line: &[u8]) -> serde_json::Result<Event> {
    if line.starts_with(JOB_LINE_START) {
        if let Ok(JobLine { t, job }) = serde_json::from_slice::<JobLine>(line) {
            if t == "job" {
                return Ok(Event::Job { job });
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
    /// Jobs in journal order.
    pub order: Vec<JobId>,
    /// Per-job records.
    pub jobs: HashMap<JobId, JobEntry>,
    /// Batches by index.
    pub batches: Vec<BatchRecord>,
    models: ModelNames,
}

/// The distinct model names of a run; a job entry holds an index.
#[derive(Debug, Default)]
struct ModelNames {
    names: Vec<Arc<str>>,
    index: HashMap<Arc<str>, u16>,
}

impl ModelNames {
    fn index_of(&mut self, name: &str) -> Result<u16> {
        if let Some(&i) = self.index.get(name) {
            return Ok(i);
        }
        let i = u16::try_from(self.names.len()).map_err(|_| {
            Error::Validation(format!(
                "model '{name}': a run takes at most {} distinct model names; split the jobs into several runs",
                u16::MAX
            ))
        })?;
        let name: Arc<str> = Arc::from(name);
        self.names.push(name.clone());
        self.index.insert(name, i);
        Ok(i)
    }
}

fn new_entry(models: &mut ModelNames, job: &Job, offset: u64) -> Result<JobEntry> {
    Ok(JobEntry {
        offset,
        fingerprint: crate::fingerprint::short(job.fingerprint.as_deref()),
        cost_usd: 0.0,
        approx_bytes: u32::try_from(approx_request_bytes(job)).unwrap_or(u32::MAX),
        model: models.index_of(job.model_name())?,
        status: JobStatus::Pending,
        rerun: false,
        has_file: job.file.is_some(),
    })
}

/// Approximate bytes a job adds to a provider request: its text, its file
/// (base64 grows it by a third) and some envelope.
pub fn approx_request_bytes(job: &Job) -> u64 {
    let mut n = 512u64;
    if let Some(p) = &job.prompt {
        n += p.len() as u64;
    }
    if let Some(m) = &job.messages {
        n += m.iter().map(|m| m.content.len() as u64 + 32).sum::<u64>();
    }
    if let Some(f) = &job.file {
        n += std::fs::metadata(f)
            .map(|m| m.len() * 4 / 3 + 4)
            .unwrap_or(0);
    }
    if let Some(s) = &job.response_schema {
        n += s.as_value().to_string().len() as u64;
    }
    n
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
            order: Vec::new(),
            jobs: HashMap::new(),
            batches: Vec::new(),
            models: ModelNames::default(),
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

    fn open_with(path: &Path, writable: bool) -> Result<StateStore> {
        let file = File::open(path).map_err(|e| Error::io("open the state file", path, e))?;
        let mut reader = BufReader::with_capacity(1 << 16, file);
        let mut line = Vec::new();
        let mut offset: u64 = 0;
        let mut good_end: u64 = 0;
        let mut header: Option<(String, DateTime<Utc>, PathBuf, ResultsFormat)> = None;
        let mut results_synced = 0u64;
        let mut order = Vec::new();
        let mut jobs: HashMap<JobId, JobEntry> = HashMap::new();
        let mut batches: Vec<BatchRecord> = Vec::new();
        let mut lineno = 0usize;
        let mut models = ModelNames::default();
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| Error::io("read the state file", path, e))?;
            if n == 0 {
                break;
            }
            lineno += 1;
            let start = offset;
            offset += n as u64;
            if line.last() != Some(&b'\n') {
                // A torn final write: the process died mid-line. Ignore it.
                tracing::warn!(state = %path.display(), "ignoring an incomplete last line in the state file");
                break;
            }
            let event: Event = match parse_event(&line) {
                Ok(e) => e,
                Err(e) => {
                    return Err(not_a_state(
                        path,
                        format!("line {lineno} is not a state event ({e}); the file was changed by hand or is not a batchata state file — start fresh with reuse off (CLI: --fresh)"),
                    ))
                }
            };
            good_end = offset;
            match event {
                Event::Run {
                    version,
                    run_id,
                    created_at,
                    results_dir,
                    results_format,
                } => {
                    if version > STATE_VERSION {
                        return Err(not_a_state(
                            path,
                            format!(
                                "written by a newer batchata (format {version}); upgrade batchata"
                            ),
                        ));
                    }
                    header = Some((run_id, created_at, results_dir, results_format));
                }
                Event::Job { job } => {
                    let entry = new_entry(&mut models, &job, start)?;
                    put_job(&mut order, &mut jobs, job.id_str(), entry);
                }
                Event::Intent {
                    batch,
                    provider,
                    jobs: ids,
                    at,
                    reserved_usd,
                } => {
                    // Share the ids already held in `order`.
                    let ids: Vec<JobId> = ids
                        .into_iter()
                        .map(|id| jobs.get_key_value(&id).map_or(id, |(k, _)| k.clone()))
                        .collect();
                    for id in &ids {
                        if let Some(j) = jobs.get_mut(id) {
                            j.status = JobStatus::in_batch(batch);
                        }
                    }
                    let rec = BatchRecord {
                        index: batch,
                        provider,
                        jobs: ids,
                        intent_at: at,
                        reserved_usd,
                        batch_id: None,
                        ended: None,
                    };
                    put_batch(&mut batches, rec);
                }
                Event::Submitted { batch, batch_id } => {
                    if let Some(b) = batches.get_mut(batch) {
                        b.batch_id = Some(batch_id);
                    }
                }
                Event::Done {
                    job,
                    outcome,
                    cost_usd,
                    rerun,
                } => {
                    if let Some(j) = jobs.get_mut(job.as_str()) {
                        j.status = JobStatus::Done(outcome);
                        j.rerun = rerun;
                        j.cost_usd = cost_usd;
                    }
                }
                Event::BatchEnded { batch, status } => {
                    if let Some(b) = batches.get_mut(batch) {
                        b.ended = Some(status);
                    }
                }
                Event::Reset { job } => {
                    if let Some(j) = jobs.get_mut(job.as_str()) {
                        j.status = JobStatus::Pending;
                        j.rerun = false;
                    }
                }
                Event::ResultsSynced { len } => results_synced = len,
            }
        }
        let (run_id, created_at, results_dir, results_format) = header.ok_or_else(|| {
            not_a_state(path, "has no run header; it is empty or not a batchata state file — start fresh with reuse off (CLI: --fresh)")
        })?;
        let file = if writable {
            let mut file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| Error::io("open the state file for writing", path, e))?;
            // Drop a torn tail so new lines start clean.
            file.set_len(good_end)
                .map_err(|e| Error::io("trim the state file", path, e))?;
            file.seek(SeekFrom::End(0))
                .map_err(|e| Error::io("seek in the state file", path, e))?;
            file
        } else {
            File::open(path).map_err(|e| Error::io("open the state file", path, e))?
        };
        let reader = File::open(path).map_err(|e| Error::io("open the state file", path, e))?;
        Ok(StateStore {
            path: path.to_path_buf(),
            writer: BufWriter::with_capacity(1 << 16, file),
            reader,
            offset: good_end,
            run_id,
            created_at,
            results_dir,
            results_format,
            results_synced,
            order,
            jobs,
            batches,
            models,
        })
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event (buffered; call [`StateStore::sync`] to make it durable).
    pub fn append(&mut self, event: &Event) -> Result<u64> {
        self.append_line(event)
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

    /// Records a job (once, at the start of a run).
    pub fn add_job(&mut self, job: &Job) -> Result<()> {
        let offset = self.append_line(&JobLineRef { t: "job", job })?;
        let entry = new_entry(&mut self.models, job, offset)?;
        put_job(&mut self.order, &mut self.jobs, job.id_str(), entry);
        Ok(())
    }

    /// The model name of a job entry.
    pub fn model_of(&self, entry: &JobEntry) -> &str {
        self.models
            .names
            .get(usize::from(entry.model))
            .map_or("", |m| m)
    }

    /// Room for `n` more jobs, so a large run's tables are sized once.
    pub fn reserve_jobs(&mut self, n: usize) {
        self.order.reserve(n);
        self.jobs.reserve(n);
    }

    /// Reads jobs back from the journal by id.
    pub fn load_jobs(&mut self, ids: &[JobId]) -> Result<Vec<Job>> {
        self.load_jobs_with(ids, |j| j)
    }

    /// A batch's jobs to read back one at a time, as often as needed
    /// ([`JournalJobs`]): what a provider streams its request body from.
    pub fn job_source(&mut self, ids: &[JobId]) -> Result<JournalJobs> {
        self.writer
            .flush()
            .map_err(|e| Error::io("write the state file", &self.path, e))?;
        let offsets =
            ids.iter()
                .map(|id| {
                    self.jobs.get(id).map(|e| e.offset).ok_or_else(|| {
                        state_err(&self.path, format!("job '{id}' is not in the state"))
                    })
                })
                .collect::<Result<Vec<u64>>>()?;
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
        self.jobs.get(id).is_some_and(|e| e.has_file)
    }

    /// Reads jobs back without their content (prompt, messages): what
    /// parsing results needs. Each prompt is dropped as its job is read, so
    /// a batch's prompts are never all in memory at once.
    pub fn load_job_records(&mut self, ids: &[JobId]) -> Result<Vec<Job>> {
        self.load_jobs_with(ids, |mut j| {
            j.prompt = None;
            j.messages = None;
            j
        })
    }

    fn load_jobs_with(&mut self, ids: &[JobId], keep: impl Fn(Job) -> Job) -> Result<Vec<Job>> {
        self.writer
            .flush()
            .map_err(|e| Error::io("write the state file", &self.path, e))?;
        let mut out = Vec::with_capacity(ids.len());
        let mut buf = Vec::new();
        let mut schemas = SchemaInterner::default();
        for id in ids {
            let entry = self
                .jobs
                .get(id)
                .ok_or_else(|| state_err(&self.path, format!("job '{id}' is not in the state")))?;
            self.reader
                .seek(SeekFrom::Start(entry.offset))
                .map_err(|e| Error::io("seek in the state file", &self.path, e))?;
            buf.clear();
            let mut r = BufReader::new((&mut self.reader).take(64 << 20));
            r.read_until(b'\n', &mut buf)
                .map_err(|e| Error::io("read the state file", &self.path, e))?;
            match serde_json::from_slice::<Event>(&buf) {
                Ok(Event::Job { mut job }) => {
                    schemas.share(&mut job);
                    out.push(keep(job))
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

    /// Records a batch about to be created; durable on return.
    pub fn record_intent(
        &mut self,
        index: usize,
        provider: ProviderKind,
        job_ids: Vec<JobId>,
        reserved_usd: f64,
    ) -> Result<()> {
        let at = Utc::now();
        self.append(&Event::Intent {
            batch: index,
            provider,
            jobs: job_ids.clone(),
            at,
            reserved_usd,
        })?;
        self.sync()?;
        for id in &job_ids {
            if let Some(j) = self.jobs.get_mut(id) {
                j.status = JobStatus::in_batch(index);
            }
        }
        let rec = BatchRecord {
            index,
            provider,
            jobs: job_ids,
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

    /// Records a job's end (buffered; sync after a batch's results).
    pub fn record_done(
        &mut self,
        job_id: &str,
        outcome: JobOutcome,
        cost_usd: f64,
        rerun: bool,
    ) -> Result<()> {
        self.append(&Event::Done {
            job: job_id.to_string(),
            outcome,
            cost_usd,
            rerun,
        })?;
        if let Some(j) = self.jobs.get_mut(job_id) {
            j.status = JobStatus::Done(outcome);
            j.rerun = rerun;
            j.cost_usd = cost_usd;
        }
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

    /// Queues a finished job again.
    pub fn reset_job(&mut self, job_id: &str) -> Result<()> {
        self.append(&Event::Reset {
            job: job_id.to_string(),
        })?;
        if let Some(j) = self.jobs.get_mut(job_id) {
            j.status = JobStatus::Pending;
            j.rerun = false;
        }
        Ok(())
    }

    /// Total cost billed so far.
    pub fn cost_used(&self) -> f64 {
        self.jobs.values().map(|j| j.cost_usd).sum()
    }

    /// Counts of (pending, in batch, completed, failed, cancelled).
    pub fn counts(&self) -> StateCounts {
        let mut c = StateCounts {
            total: self.jobs.len(),
            ..Default::default()
        };
        for j in self.jobs.values() {
            match j.status {
                JobStatus::Pending => c.pending += 1,
                JobStatus::InBatch(_) => c.running += 1,
                JobStatus::Done(JobOutcome::Completed) => c.completed += 1,
                JobStatus::Done(JobOutcome::Failed) => c.failed += 1,
                JobStatus::Done(JobOutcome::Cancelled) => c.cancelled += 1,
            }
        }
        c
    }
}

/// The results layout a journal's run recorded, read from its first line
/// only: a look at a folder never replays a journal of a million jobs.
pub fn results_format_of(path: &Path) -> Result<ResultsFormat> {
    let file = File::open(path).map_err(|e| Error::io("open the state file", path, e))?;
    let mut line = Vec::new();
    BufReader::new(file)
        .take(MAX_JOB_LINE as u64)
        .read_until(b'\n', &mut line)
        .map_err(|e| Error::io("read the state file", path, e))?;
    match serde_json::from_slice::<Event>(&line) {
        Ok(Event::Run { results_format, .. }) => Ok(results_format),
        _ => Err(not_a_state(
            path,
            "has no run header; it is empty or not a batchata state file",
        )),
    }
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
    use super::*;

    #[test]
    fn a_job_entry_stays_small() {
        // One per job for the whole run: 40 bytes plus its id and table slot.
        assert_eq!(std::mem::size_of::<JobEntry>(), 40);
        assert_eq!(std::mem::size_of::<JobStatus>(), 8);
    }

    #[test]
    fn job_lines_are_written_and_read_as_events_are() {
        let job = Job::prompt("say \"hi\"\n")
            .id("j1")
            .model("m")
            .max_tokens(5);
        let event = serde_json::to_vec(&Event::Job { job: job.clone() }).unwrap();
        let direct = serde_json::to_vec(&JobLineRef {
            t: "job",
            job: &job,
        })
        .unwrap();
        assert_eq!(event, direct);
        assert!(direct.starts_with(JOB_LINE_START));
        match parse_event(&direct).unwrap() {
            Event::Job { job: back } => assert_eq!(back, job),
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
    fn intents_recorded_out_of_order_land_at_their_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.jsonl");
        {
            let mut s = StateStore::create(&path, "run-1", dir.path()).unwrap();
            for i in 0..2 {
                s.add_job(&Job::prompt(format!("p{i}")).id(format!("j{i}")))
                    .unwrap();
            }
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
        assert_eq!(s.batches[1].jobs, vec![JobId::from("j1")]);
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
        let order: Vec<&str> = s.order.iter().map(|id| &**id).collect();
        assert_eq!(order, vec!["j0", "j1", "j2"]);
        assert_eq!(s.jobs["j0"].status, JobStatus::Done(JobOutcome::Completed));
        assert_eq!(s.jobs["j1"].status, JobStatus::in_batch(0));
        assert_eq!(s.jobs["j2"].status, JobStatus::Pending);
        assert_eq!(s.batches[0].batch_id.as_deref(), Some("msgbatch_1"));
        let jobs = s.load_jobs(&["j2".into(), "j0".into()]).unwrap();
        assert_eq!(jobs[0].prompt.as_deref(), Some("p2"));
        assert_eq!(jobs[1].prompt.as_deref(), Some("p0"));
        // New events append cleanly after the trimmed tail.
        s.record_done("j1", JobOutcome::Failed, 0.0, false).unwrap();
        s.sync().unwrap();
        let s = StateStore::open(&path).unwrap();
        assert_eq!(s.jobs["j1"].status, JobStatus::Done(JobOutcome::Failed));
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
