//! Reading a run's results back: every job's result file, or each job's
//! last line of `results.jsonl`, in the run's layout and order, whole
//! ([`read_results`]) or one at a time ([`for_each_result`],
//! [`ResultFiles`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::layout::ResultsFormat;
use crate::result::{JobOutcome, JobResult};
use crate::state::{JobId, JobStatus, StateStore};

/// The results of a run, split by outcome.
#[derive(Debug, Clone, Default)]
pub struct RunResults {
    /// Jobs with an answer.
    pub completed: Vec<JobResult>,
    /// Jobs that failed.
    pub failed: Vec<JobResult>,
    /// Jobs cancelled by the user.
    pub cancelled: Vec<JobResult>,
}

impl RunResults {
    pub(super) fn push(&mut self, r: JobResult) {
        match r.outcome() {
            JobOutcome::Completed => self.completed.push(r),
            JobOutcome::Failed => self.failed.push(r),
            JobOutcome::Cancelled => self.cancelled.push(r),
        }
    }
}

/// Reads the results of a run, in its layout ([`ResultFiles::list`]): the
/// done jobs of its state file when there is one, else every result in
/// the folder.
pub fn read_results(results_dir: &Path, state_file: Option<&Path>) -> Result<RunResults> {
    let mut out = RunResults::default();
    for_each_result(results_dir, state_file, |r| {
        out.push(r);
        Ok(())
    })?;
    Ok(out)
}

/// [`read_results`] one result at a time: `f` gets each result as it is
/// read (files: state order, or file name order without a state; jsonl:
/// the file's order of each job's last line), and an error it returns
/// stops the reading.
pub fn for_each_result(
    results_dir: &Path,
    state_file: Option<&Path>,
    f: impl FnMut(JobResult) -> Result<()>,
) -> Result<()> {
    ResultFiles::list(results_dir, state_file)?.for_each(f)
}

/// The result files of a run, in the order [`read_results`] reads them:
/// for a caller that reads them itself (the Python package reads them on
/// two threads). In the jsonl layout, each is a job's last line of
/// `results.jsonl`.
#[derive(Debug, Clone, Default)]
pub struct ResultFiles {
    dir: PathBuf,
    /// Job ids (file names without `.json`), in order; shared with the
    /// state's own ids.
    ids: Vec<JobId>,
    /// True when they come from a state file: its done jobs' files, where
    /// one that cannot be read is an error (one that is gone is left out).
    /// False for every `*.json` of the folder (no state), where a file that
    /// is not a result is left out.
    from_state: bool,
    /// The jsonl layout: each kept job's last line.
    lines: Option<JsonlLines>,
}

/// Lines of a `results.jsonl`: where each starts and how long it is.
#[derive(Debug, Clone)]
struct JsonlLines {
    path: PathBuf,
    file: Arc<std::fs::File>,
    spans: Vec<(u64, u32)>,
}

impl ResultFiles {
    /// The results of a folder in its layout: the state's when there is
    /// one, else jsonl when the folder has a `results.jsonl`, else files
    /// ([`ResultFiles::list_in`]).
    pub fn list(results_dir: &Path, state_file: Option<&Path>) -> Result<ResultFiles> {
        let format = match state_file.filter(|p| p.exists()) {
            // A state that does not read is reported by the listing.
            Some(p) => ResultsFormat::of_state(p).unwrap_or_default(),
            None => ResultsFormat::detect(results_dir),
        };
        Self::list_in(results_dir, state_file, format)
    }

    /// The results of a folder laid out as `format`. Files: the done jobs'
    /// files of `state_file` when there is one, else every `*.json` in
    /// `results_dir`, sorted. Jsonl: each job's last line in
    /// `results.jsonl`, in the file's order (of the done jobs of
    /// `state_file` when there is one).
    pub fn list_in(
        results_dir: &Path,
        state_file: Option<&Path>,
        format: ResultsFormat,
    ) -> Result<ResultFiles> {
        if format == ResultsFormat::Jsonl {
            return Self::list_jsonl(results_dir, state_file);
        }
        match state_file.filter(|p| p.exists()) {
            Some(path) => {
                let mut state = StateStore::inspect(path)?;
                let mut ids = Vec::new();
                for item in state.scan()? {
                    let (_, status, rec) = item?;
                    if matches!(status, JobStatus::Done(_)) {
                        ids.push(JobId::from(rec.id));
                    }
                }
                Ok(ResultFiles {
                    dir: results_dir.to_path_buf(),
                    ids,
                    from_state: true,
                    lines: None,
                })
            }
            None => {
                let mut ids: Vec<JobId> = std::fs::read_dir(results_dir)
                    .map_err(|e| Error::io("list", results_dir, e))?
                    .filter_map(|e| {
                        let name = e.ok()?.file_name();
                        let stem = name.to_str()?.strip_suffix(".json")?;
                        Some(JobId::from(stem))
                    })
                    .collect();
                // In file name order, as the folder was always read.
                let name = |id: &JobId| {
                    id.bytes()
                        .chain(b".json".iter().copied())
                        .collect::<Vec<u8>>()
                };
                ids.sort_by_cached_key(name);
                Ok(ResultFiles {
                    dir: results_dir.to_path_buf(),
                    ids,
                    from_state: false,
                    lines: None,
                })
            }
        }
    }

    fn list_jsonl(results_dir: &Path, state_file: Option<&Path>) -> Result<ResultFiles> {
        let state = match state_file.filter(|p| p.exists()) {
            Some(p) => Some(StateStore::inspect(p)?),
            None => None,
        };
        let done = |id: &str| match &state {
            Some(st) => {
                matches!(st.find(id), Ok(Some(n)) if matches!(st.status(n), JobStatus::Done(_)))
            }
            None => true,
        };
        let path = crate::layout::jsonl_path(results_dir);
        let lines = crate::layout::winning_lines(&path, done)?.map(|(file, spans)| JsonlLines {
            path,
            file: Arc::new(file),
            spans,
        });
        Ok(ResultFiles {
            dir: results_dir.to_path_buf(),
            ids: Vec::new(),
            from_state: state.is_some(),
            lines,
        })
    }

    /// How many files.
    pub fn len(&self) -> usize {
        match &self.lines {
            Some(l) => l.spans.len(),
            None => self.ids.len(),
        }
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f` with each result, in order; an error it returns stops.
    pub fn for_each(&self, mut f: impl FnMut(JobResult) -> Result<()>) -> Result<()> {
        for i in 0..self.len() {
            if let Some(r) = self.read(i)? {
                f(r)?;
            }
        }
        Ok(())
    }

    /// Reads the `i`-th file: `None` when it is to be left out (and past
    /// the end).
    pub fn read(&self, i: usize) -> Result<Option<JobResult>> {
        if let Some(lines) = &self.lines {
            let Some(&(offset, len)) = lines.spans.get(i) else {
                return Ok(None);
            };
            let line = crate::layout::pread_line(&lines.file, &lines.path, offset, len)?;
            return match serde_json::from_slice(&line) {
                Ok(r) => Ok(Some(r)),
                Err(_) if !self.from_state => Ok(None),
                Err(e) => Err(Error::Parse(format!(
                    "{}: the line at byte {offset} is not a job result: {e}",
                    lines.path.display()
                ))),
            };
        }
        let Some(id) = self.ids.get(i) else {
            return Ok(None);
        };
        let path = self.dir.join(format!("{id}.json"));
        if !self.from_state {
            return Ok(JobResult::load_from_json(&path).ok());
        }
        // Read at once (no separate look for the file): a done job whose
        // file is gone is left out.
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        JobResult::from_json(&text)
            .map(Some)
            .map_err(|e| Error::Parse(format!("{}: {e}", path.display())))
    }
}
