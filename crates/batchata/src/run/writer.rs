//! The run's one result writer: a thread of its own that takes finished
//! results through a bounded channel, writes them (a `{job_id}.json` each,
//! or a line of `results.jsonl`), makes them durable at each checkpoint and
//! only then journals their jobs done.
//!
//! Writing a file per job and fsyncing are blocking work that used to run
//! on the async workers, between the parsing of one result and the next.
//! Here the batches' tasks only parse and hand results over, in groups of
//! [`HAND_OVER`] (one wake-up of the writer per group, not per job); the
//! disk work overlaps with them on another core. The channel is bounded:
//! when the disk is slower than the parsing, handing a group over waits
//! (that wait is the back-pressure, and the only blocking left on a
//! worker).
//!
//! Durability, in order: a checkpoint comes whenever a batch's task asks
//! for one (at the end of each of its groups), and otherwise once a result
//! has waited [`DURABLE_AFTER`] for one or [`DURABLE_EVERY`] results wait;
//! it syncs the results (one `syncfs` for files, an `fdatasync`
//! of `results.jsonl`), then journals the jobs done — with, for jsonl, the
//! file's length the done lines now cover — and syncs the journal. A crash
//! anywhere leaves no job done in the state without its result on disk.
//!
//! In the files layout the writer has a helper thread: a group of results
//! is split in two, the helper writes one half while the writer writes the
//! other. Most of a result file's cost is the kernel allocating its inode,
//! which Linux does for two threads at once in one folder (an `O_TMPFILE`
//! holds no lock on the folder), so two threads write a group in about 60%
//! of the time one takes (bench/NOTES.md, section 12).
//!
//! A write that fails (a full disk, a folder we cannot write) stops the
//! writer for the rest of the run: what was written since the last
//! checkpoint is not journaled, every later result is refused, and the run
//! stops with the batches still open in the state, for a rerun to collect.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::lock;
use crate::error::{Error, Result};
use crate::layout::ResultsFormat;
use crate::result::{JobOutcome, JobResult};
use crate::state::StateStore;

/// Results written and not yet durable at most: at this many, a
/// checkpoint makes them durable and journals their jobs done. It bounds
/// the memory their ids hold and what a crash leaves to collect again.
const DURABLE_EVERY: usize = 16_384;
/// The longest a written result waits for its checkpoint (checked as each
/// group arrives). A checkpoint's cost is mostly the disk's, and a sync of
/// many files costs little more than a sync of few: a 10,000-result batch
/// written in a third of a second is synced once, not ten times
/// (bench/NOTES.md, section 13). A crash loses no result either way: what
/// is not journaled done is collected again by a rerun, without paying.
const DURABLE_AFTER: Duration = Duration::from_secs(1);
/// Results a batch's task hands over at once.
pub(super) const HAND_OVER: usize = 128;
/// Groups waiting for the writer at most (about 500 results).
const QUEUE: usize = 4;
/// The jsonl file's write buffer.
const JSONL_BUFFER: usize = 256 * 1024;
/// A group of result files at least this large is split with the helper.
const SPLIT_AT: usize = 16;

/// A finished result (`outcome` settled) and whether its job runs again
/// on resume.
pub(super) type Finished = (JobResult, bool);

enum Msg {
    Write(Vec<Finished>),
    /// Make everything sent before durable and journaled.
    Checkpoint(oneshot::Sender<Result<()>>),
    /// A last checkpoint, then the thread ends.
    Close(oneshot::Sender<Result<()>>),
}

/// The handle the run keeps: hands results to the writer thread.
pub(super) struct ResultWriter {
    tx: SyncSender<Msg>,
    thread: Mutex<Option<JoinHandle<()>>>,
    failure: Arc<Mutex<Option<Error>>>,
}

/// The jobs written and waiting for their checkpoint, in order: their ids
/// end to end in one string and a small row each. Up to
/// [`DURABLE_EVERY`] of them wait, so each result's own id string and
/// fields (about 80 bytes a job) are not kept.
#[derive(Default)]
struct Written {
    ids: String,
    rows: Vec<Row>,
}

struct Row {
    /// Where the job's id ends in `ids`.
    end: usize,
    outcome: JobOutcome,
    cost_usd: f64,
    rerun: bool,
}

impl Written {
    fn push(&mut self, result: &JobResult, rerun: bool) {
        self.ids.push_str(&result.job_id);
        self.rows.push(Row {
            end: self.ids.len(),
            outcome: result.outcome(),
            cost_usd: result.cost_usd,
            rerun,
        });
    }

    fn append(&mut self, other: Written) {
        for (id, row) in other.iter() {
            self.ids.push_str(id);
            self.rows.push(Row {
                end: self.ids.len(),
                ..*row
            });
        }
    }

    fn len(&self) -> usize {
        self.rows.len()
    }

    fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn clear(&mut self) {
        self.ids.clear();
        self.rows.clear();
    }

    /// Each job's id and row, in order.
    fn iter(&self) -> impl Iterator<Item = (&str, &Row)> {
        let mut start = 0;
        self.rows.iter().map(move |row| {
            let id = &self.ids[start..row.end];
            start = row.end;
            (id, row)
        })
    }
}

/// Where results go.
enum Out {
    Files {
        dir: PathBuf,
        json: Vec<u8>,
        /// None on a machine with one core, or when it could not start.
        helper: Option<FileHelper>,
    },
    Jsonl {
        path: PathBuf,
        file: BufWriter<File>,
        /// The file's length with everything written so far.
        len: u64,
        line: Vec<u8>,
    },
}

impl Out {
    fn open(format: ResultsFormat, dir: &Path) -> Result<Out> {
        match format {
            ResultsFormat::Jsonl => {
                let path = crate::layout::jsonl_path(dir);
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| Error::io("open the results file", &path, e))?;
                let len = file
                    .metadata()
                    .map_err(|e| Error::io("read", &path, e))?
                    .len();
                Ok(Out::Jsonl {
                    path,
                    file: BufWriter::with_capacity(JSONL_BUFFER, file),
                    len,
                    line: Vec::with_capacity(4096),
                })
            }
            ResultsFormat::Files => {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                Ok(Out::Files {
                    dir: dir.to_path_buf(),
                    json: Vec::with_capacity(4096),
                    helper: (cores > 1).then(|| FileHelper::start(dir)).flatten(),
                })
            }
        }
    }

    fn write(&mut self, r: &JobResult) -> Result<()> {
        match self {
            Out::Files { dir, json, .. } => write_file(dir, json, r),
            Out::Jsonl {
                path,
                file,
                len,
                line,
            } => {
                line.clear();
                serde_json::to_writer(&mut *line, r).map_err(|e| unserialisable(r, e))?;
                line.push(b'\n');
                file.write_all(line)
                    .map_err(|e| Error::io("write the results file", &*path, e))?;
                *len += line.len() as u64;
                Ok(())
            }
        }
    }

    /// Makes everything written durable; for jsonl, returns the length.
    fn sync(&mut self, written: &Written) -> Result<Option<u64>> {
        match self {
            Out::Files { dir, .. } => {
                let files = written.iter().map(|(id, _)| dir.join(file_name(id)));
                crate::fsutil::sync_written(dir, files)?;
                Ok(None)
            }
            Out::Jsonl {
                path, file, len, ..
            } => {
                file.flush()
                    .map_err(|e| Error::io("write the results file", &*path, e))?;
                file.get_ref()
                    .sync_data()
                    .map_err(|e| Error::io("sync the results file", &*path, e))?;
                Ok(Some(*len))
            }
        }
    }
}

fn file_name(job_id: &str) -> String {
    format!("{job_id}.json")
}

fn unserialisable(r: &JobResult, e: serde_json::Error) -> Error {
    Error::Parse(format!("job '{}': cannot serialise result: {e}", r.job_id))
}

/// Writes `r` as `{job_id}.json` in `dir`, as [`JobResult::save_to_json`]
/// does, with `json` as the scratch buffer.
fn write_file(dir: &Path, json: &mut Vec<u8>, r: &JobResult) -> Result<()> {
    json.clear();
    r.write_pretty(json)?;
    crate::fsutil::write_atomic(&dir.join(file_name(&r.job_id)), json)
}

/// Writes results in order until one fails: what was written, and why it
/// stopped.
fn write_files(dir: &Path, json: &mut Vec<u8>, results: Vec<Finished>) -> (Written, Option<Error>) {
    let mut written = Written::default();
    for (result, rerun) in results {
        if let Err(e) = write_file(dir, json, &result) {
            return (written, Some(e));
        }
        written.push(&result, rerun);
    }
    (written, None)
}

/// The files layout's second writing thread: takes half a group, writes
/// it, hands back what it wrote. It ends when its [`Out`] is dropped.
struct FileHelper {
    tx: Option<SyncSender<Vec<Finished>>>,
    rx: Receiver<(Written, Option<Error>)>,
    thread: Option<JoinHandle<()>>,
}

impl FileHelper {
    fn start(dir: &Path) -> Option<FileHelper> {
        let (tx, work) = sync_channel::<Vec<Finished>>(1);
        let (done, rx) = sync_channel(1);
        let dir = dir.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("batchata-results-2".into())
            .spawn(move || {
                let mut json = Vec::with_capacity(4096);
                while let Ok(results) = work.recv() {
                    if done.send(write_files(&dir, &mut json, results)).is_err() {
                        return;
                    }
                }
            })
            .ok()?;
        Some(FileHelper {
            tx: Some(tx),
            rx,
            thread: Some(thread),
        })
    }

    /// Hands `results` over, or gives them back when the helper is gone.
    fn send(&self, results: Vec<Finished>) -> std::result::Result<(), Vec<Finished>> {
        match &self.tx {
            Some(tx) => tx.send(results).map_err(|e| e.0),
            None => Err(results),
        }
    }

    fn recv(&self) -> (Written, Option<Error>) {
        self.rx
            .recv()
            .unwrap_or_else(|_| (Written::default(), Some(stopped())))
    }
}

impl Drop for FileHelper {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl ResultWriter {
    /// Starts the writer of a run laid out as `format` in `dir`, journaling
    /// into `state`.
    pub(super) fn start(
        format: ResultsFormat,
        dir: &Path,
        state: Arc<Mutex<StateStore>>,
    ) -> Result<ResultWriter> {
        let out = Out::open(format, dir)?;
        let (tx, rx) = sync_channel(QUEUE);
        let failure = Arc::new(Mutex::new(None));
        let f = failure.clone();
        let thread = std::thread::Builder::new()
            .name("batchata-results".into())
            .spawn(move || {
                Worker {
                    out,
                    state,
                    failure: f,
                    written: Written::default(),
                    oldest: Instant::now(),
                }
                .run(rx)
            })
            .map_err(|e| Error::Internal(format!("cannot start the result writer thread: {e}")))?;
        Ok(ResultWriter {
            tx,
            thread: Mutex::new(Some(thread)),
            failure,
        })
    }

    /// Why the writer stopped, once a write failed.
    pub(super) fn failure(&self) -> Option<Error> {
        lock(&self.failure).clone()
    }

    /// Hands finished results over. Waits only when the writer is a full
    /// queue behind.
    pub(super) fn write(&self, results: Vec<Finished>) -> Result<()> {
        if let Some(e) = self.failure() {
            return Err(e);
        }
        if results.is_empty() {
            return Ok(());
        }
        self.tx.send(Msg::Write(results)).map_err(|_| stopped())
    }

    /// Returns once every result handed over before is durable and its
    /// job journaled done.
    pub(super) async fn checkpoint(&self) -> Result<()> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send(Msg::Checkpoint(reply))
            .map_err(|_| stopped())?;
        done.await.map_err(|_| stopped())?
    }

    /// A last checkpoint; the writer thread then ends.
    pub(super) async fn close(&self) -> Result<()> {
        let (reply, done) = oneshot::channel();
        let outcome = match self.tx.send(Msg::Close(reply)) {
            Ok(()) => done.await.map_err(|_| stopped()).and_then(|r| r),
            Err(_) => Err(stopped()),
        };
        let thread = lock(&self.thread).take();
        if let Some(t) = thread {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        outcome
    }
}

fn stopped() -> Error {
    Error::Internal("the result writer stopped unexpectedly".into())
}

/// The writer thread's side.
struct Worker {
    out: Out,
    state: Arc<Mutex<StateStore>>,
    failure: Arc<Mutex<Option<Error>>>,
    written: Written,
    /// When the oldest result in `written` was written.
    oldest: Instant,
}

impl Worker {
    fn run(mut self, rx: Receiver<Msg>) {
        while let Ok(msg) = rx.recv() {
            match msg {
                Msg::Write(results) => self.write(results),
                Msg::Checkpoint(reply) => {
                    let _ = reply.send(self.checkpoint());
                }
                Msg::Close(reply) => {
                    let _ = reply.send(self.checkpoint());
                    return;
                }
            }
        }
        // Every handle gone without a close: keep what is written.
        let _ = self.checkpoint();
    }

    /// Writes a group: in the files layout half of a large one goes to
    /// the helper. A failure on either side stops the writer.
    fn write(&mut self, mut results: Vec<Finished>) {
        if lock(&self.failure).is_some() {
            return;
        }
        if self.written.is_empty() {
            self.oldest = Instant::now();
        }
        let mut helped = false;
        if let Out::Files {
            helper: Some(h), ..
        } = &self.out
        {
            if results.len() >= SPLIT_AT {
                let half = results.split_off(results.len() / 2);
                match h.send(half) {
                    Ok(()) => helped = true,
                    Err(half) => results.extend(half),
                }
            }
        }
        let mut error = None;
        for (result, rerun) in results {
            if let Err(e) = self.out.write(&result) {
                error = Some(e);
                break;
            }
            self.written.push(&result, rerun);
        }
        if helped {
            if let Out::Files {
                helper: Some(h), ..
            } = &self.out
            {
                let (written, e) = h.recv();
                self.written.append(written);
                error = error.or(e);
            }
        }
        match error {
            Some(e) => self.fail(e),
            // A failure is kept, and told to the next caller.
            None if self.written.len() >= DURABLE_EVERY
                || self.oldest.elapsed() >= DURABLE_AFTER =>
            {
                let _ = self.checkpoint();
            }
            None => {}
        }
    }

    fn fail(&mut self, e: Error) {
        tracing::error!(error = %e, "a result could not be written; the run stops, and its unrecorded results are collected by a rerun");
        self.written.clear();
        let mut f = lock(&self.failure);
        if f.is_none() {
            *f = Some(e);
        }
    }

    fn checkpoint(&mut self) -> Result<()> {
        if let Some(e) = lock(&self.failure).clone() {
            return Err(e);
        }
        if self.written.is_empty() {
            return Ok(());
        }
        let r = self.make_durable();
        if let Err(e) = &r {
            self.fail(e.clone());
        }
        r
    }

    fn make_durable(&mut self) -> Result<()> {
        let synced = self.out.sync(&self.written)?;
        let mut st = lock(&self.state);
        for (id, w) in self.written.iter() {
            st.record_done(id, w.outcome, w.cost_usd, w.rerun)?;
        }
        self.written.clear();
        if let Some(len) = synced {
            st.record_results_synced(len)?;
        }
        st.sync()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ProviderKind;
    use crate::job::Job;

    /// A run's state with `n` jobs in batch 0, shared as the engine does.
    fn state_with(dir: &Path, n: usize) -> Arc<Mutex<StateStore>> {
        let mut s = StateStore::create(&dir.join("state.jsonl"), "run-1", dir).unwrap();
        for i in 0..n {
            s.add_job(&Job::prompt("p").id(format!("j{i:05}"))).unwrap();
        }
        let ids = s.claim(0..n as u32).unwrap();
        s.record_intent(0, ProviderKind::Anthropic, ids, 0.0)
            .unwrap();
        Arc::new(Mutex::new(s))
    }

    fn done(state: &Mutex<StateStore>) -> usize {
        lock(state).counts().completed
    }

    fn files_in(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().starts_with('j'))
            })
            .count()
    }

    /// Polls `cond` until it holds; a loaded machine gets a minute.
    fn wait_for(what: &str, cond: impl Fn() -> bool) {
        let start = Instant::now();
        while !cond() {
            assert!(start.elapsed() < Duration::from_secs(60), "never: {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn group(range: std::ops::Range<usize>) -> Vec<Finished> {
        range
            .map(|i| {
                let r = JobResult {
                    job_id: format!("j{i:05}"),
                    raw_response: Some(format!("answer {i}")),
                    cost_usd: 0.001,
                    ..Default::default()
                };
                (r, false)
            })
            .collect()
    }

    #[test]
    fn written_results_wait_for_their_checkpoint_at_most_a_count_and_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let total = DURABLE_EVERY + 3 * HAND_OVER;
        let state = state_with(dir.path(), total + 2 * HAND_OVER);
        let w = ResultWriter::start(ResultsFormat::Files, dir.path(), state.clone()).unwrap();

        // No checkpoint is asked for: the writer takes one on its own once
        // DURABLE_EVERY results wait, however fast or slow this machine.
        for start in (0..total).step_by(HAND_OVER) {
            w.write(group(start..start + HAND_OVER)).unwrap();
        }
        wait_for("every result file written", || {
            files_in(dir.path()) == total
        });
        let journaled = done(&state);
        assert!(
            journaled >= total - DURABLE_EVERY && journaled <= total,
            "{journaled} of {total} results journaled done"
        );
        // Journaled means on disk: each done job has its file.
        for (n, status, _) in lock(&state).statuses() {
            if matches!(status, crate::state::JobStatus::Done(_)) {
                assert!(dir.path().join(format!("j{n:05}.json")).is_file());
            }
        }

        // From a checkpoint (nothing waits): a group is written, and the
        // next comes after DURABLE_AFTER. By then the first has waited long
        // enough, and is journaled done without being asked for, however
        // slowly this machine writes (had the first group alone taken that
        // long to write, it was journaled as it ended).
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(w.checkpoint()).unwrap();
        assert_eq!(done(&state), total);
        w.write(group(total..total + HAND_OVER)).unwrap();
        std::thread::sleep(DURABLE_AFTER + Duration::from_millis(100));
        w.write(group(total + HAND_OVER..total + 2 * HAND_OVER))
            .unwrap();
        wait_for("a result journaled done once it has waited", || {
            done(&state) >= total + HAND_OVER
        });
        rt.block_on(w.close()).unwrap();
    }
}
