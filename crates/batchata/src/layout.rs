//! How a run's results are laid out in its results folder, and reading the
//! one-file layout for scale back.
//!
//! [`ResultsFormat::Files`] is batchata's layout and the default: one
//! `{job_id}.json` per job. At a million jobs the kernel's work of creating
//! a million files in one folder costs more than the whole run costs us, so
//! [`ResultsFormat::Jsonl`] appends every result instead, in the same JSON
//! shape on one line, to `results.jsonl`.
//!
//! The jsonl file is only ever appended to, and only by the run's writer:
//! a line is whole or, after a kill, the torn last line, which a resume cuts
//! off. The journal records, at each checkpoint, the length of the file its
//! `done` lines cover; the lines past it (answered, not yet journaled) are
//! recorded done from the line itself when the run resumes, so no job is
//! ever written twice and no resume reads the whole file.
//!
//! A job can have more than one line: `retry_failed` and `rerun_changed`
//! run a job again on purpose and append its new result. **The last line
//! for a job id wins**, for every reader here.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::result::{JobOutcome, JobResult, COST_LIMIT_EXCEEDED, TIME_LIMIT_EXCEEDED};
use crate::state::{JobStatus, StateStore};

/// The file of the jsonl layout, in the results folder.
pub const RESULTS_JSONL: &str = "results.jsonl";

/// How a run lays its results out in the results folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ResultsFormat {
    /// One `{job_id}.json` per job, pretty-printed (batchata's layout).
    #[default]
    Files,
    /// Every result as one line of `results.jsonl`, in the same JSON shape;
    /// a job's last line wins. One append per job instead of one file: for
    /// runs of hundreds of thousands of jobs and more. Ours; Python
    /// batchata has no such option.
    Jsonl,
}

impl ResultsFormat {
    /// `"files"` or `"jsonl"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ResultsFormat::Files => "files",
            ResultsFormat::Jsonl => "jsonl",
        }
    }

    pub(crate) fn is_files(&self) -> bool {
        *self == ResultsFormat::Files
    }

    /// The layout a results folder holds when nothing else says: jsonl when
    /// it has a `results.jsonl`, else files.
    pub fn detect(results_dir: &Path) -> ResultsFormat {
        if jsonl_path(results_dir).is_file() {
            ResultsFormat::Jsonl
        } else {
            ResultsFormat::Files
        }
    }

    /// The layout a state file's run was started with (read from its first
    /// line only).
    pub fn of_state(state_file: &Path) -> Result<ResultsFormat> {
        crate::state::results_format_of(state_file)
    }
}

impl std::fmt::Display for ResultsFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ResultsFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "files" => Ok(ResultsFormat::Files),
            "jsonl" => Ok(ResultsFormat::Jsonl),
            other => Err(Error::Validation(format!(
                "results format '{other}' is not one of files, jsonl"
            ))),
        }
    }
}

/// `results_dir/results.jsonl`.
pub(crate) fn jsonl_path(results_dir: &Path) -> PathBuf {
    results_dir.join(RESULTS_JSONL)
}

/// The job id of a result line: read from its start when it is the first
/// field without escapes (as this library writes it), else parsed.
pub(crate) fn job_id_of(line: &[u8]) -> Option<Cow<'_, str>> {
    const START: &[u8] = b"{\"job_id\":\"";
    if let Some(rest) = line.strip_prefix(START) {
        if let Some(end) = memchr::memchr2(b'"', b'\\', rest) {
            if rest[end] == b'"' {
                return std::str::from_utf8(&rest[..end]).ok().map(Cow::Borrowed);
            }
        }
    }
    #[derive(Deserialize)]
    struct Id {
        job_id: String,
    }
    serde_json::from_slice::<Id>(line)
        .ok()
        .map(|i| Cow::Owned(i.job_id))
}

/// Calls `f(offset, line)` with every whole line of `file` from byte
/// `from` (the newline left off); returns where the last whole line ends.
/// A last line without its newline is torn (or still being written): left out.
pub(crate) fn for_each_line(
    file: &File,
    path: &Path,
    from: u64,
    mut f: impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<u64> {
    let read_err = |e| Error::io("read", path, e);
    let mut file = file;
    file.seek(SeekFrom::Start(from)).map_err(read_err)?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut line = Vec::new();
    let mut offset = from;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(read_err)?;
        if n == 0 || line.last() != Some(&b'\n') {
            return Ok(offset);
        }
        f(offset, &line[..n - 1])?;
        offset += n as u64;
    }
}

/// Reads at `pos` without moving the file's cursor (shared by every
/// handle cloned from it).
fn read_at(file: &File, buf: &mut [u8], pos: u64) -> std::io::Result<usize> {
    #[cfg(unix)]
    return std::os::unix::fs::FileExt::read_at(file, buf, pos);
    #[cfg(windows)]
    return std::os::windows::fs::FileExt::seek_read(file, buf, pos);
}

/// The line of `file` at `offset` (without its newline), read by position:
/// several threads may read one handle at once, and the file only grows,
/// so a line stays where it is.
pub(crate) fn read_line_at(file: &File, path: &Path, offset: u64) -> Result<Vec<u8>> {
    let mut line = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = read_at(file, &mut chunk, offset + line.len() as u64)
            .map_err(|e| Error::io("read", path, e))?;
        if n == 0 {
            return Err(Error::Parse(format!(
                "{}: the line at byte {offset} is cut short",
                path.display()
            )));
        }
        if let Some(i) = memchr::memchr(b'\n', &chunk[..n]) {
            line.extend_from_slice(&chunk[..i]);
            return Ok(line);
        }
        line.extend_from_slice(&chunk[..n]);
    }
}

/// The `len` bytes of a line known to start at `offset`, read by position.
pub(crate) fn pread_line(file: &File, path: &Path, offset: u64, len: u32) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; len as usize];
    let mut done = 0;
    while done < buf.len() {
        let n = read_at(file, &mut buf[done..], offset + done as u64)
            .map_err(|e| Error::io("read", path, e))?;
        if n == 0 {
            return Err(Error::Parse(format!(
                "{}: the line at byte {offset} is cut short",
                path.display()
            )));
        }
        done += n;
    }
    Ok(buf)
}

fn sip(id: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

/// Where each job's last line of a `results.jsonl` starts. Held as a
/// 64-bit hash of the id per job (16 bytes, not the id); two ids whose
/// hashes collide are told apart by reading the earlier line's id back,
/// and the later one is then held by its id.
pub(crate) struct LastLines {
    file: File,
    path: PathBuf,
    hashed: HashMap<u64, u64>,
    exact: HashMap<Box<str>, u64>,
    /// Where the last whole line ends.
    pub(crate) end: u64,
    hash: fn(&str) -> u64,
}

impl LastLines {
    /// Indexes `path`; `None` when there is no such file.
    pub(crate) fn build(path: &Path) -> Result<Option<LastLines>> {
        Self::build_with(path, sip)
    }

    fn build_with(path: &Path, hash: fn(&str) -> u64) -> Result<Option<LastLines>> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("open", path, e)),
        };
        // A handle of its own: its cursor moves as it scans.
        let scan = File::open(path).map_err(|e| Error::io("open", path, e))?;
        let mut index = LastLines {
            file,
            path: path.to_path_buf(),
            hashed: HashMap::new(),
            exact: HashMap::new(),
            end: 0,
            hash,
        };
        index.end = for_each_line(&scan, path, 0, |offset, line| {
            if let Some(id) = job_id_of(line) {
                index.note(&id, offset)?;
            }
            Ok(())
        })?;
        Ok(Some(index))
    }

    fn note(&mut self, id: &str, offset: u64) -> Result<()> {
        if let Some(o) = self.exact.get_mut(id) {
            *o = offset;
            return Ok(());
        }
        let h = (self.hash)(id);
        match self.hashed.get(&h).copied() {
            None => {
                self.hashed.insert(h, offset);
            }
            Some(earlier) => {
                let line = read_line_at(&self.file, &self.path, earlier)?;
                if job_id_of(&line).as_deref() == Some(id) {
                    self.hashed.insert(h, offset);
                } else {
                    self.exact.insert(id.into(), offset);
                }
            }
        }
        Ok(())
    }

    /// Where `id`'s last line starts, for an id the file is known to hold;
    /// for another id it may be a line of another job ([`LastLines::load`]
    /// checks).
    pub(crate) fn last(&self, id: &str) -> Option<u64> {
        match self.exact.get(id) {
            Some(&o) => Some(o),
            None => self.hashed.get(&(self.hash)(id)).copied(),
        }
    }

    /// Whether the file has a line for `id`.
    pub(crate) fn holds(&self, id: &str) -> Result<bool> {
        let Some(offset) = self.last(id) else {
            return Ok(false);
        };
        let line = read_line_at(&self.file, &self.path, offset)?;
        Ok(job_id_of(&line).as_deref() == Some(id))
    }

    /// `id`'s last result in the file, if it has one.
    pub(crate) fn load(&self, id: &str) -> Result<Option<JobResult>> {
        let Some(offset) = self.last(id) else {
            return Ok(None);
        };
        let line = read_line_at(&self.file, &self.path, offset)?;
        if job_id_of(&line).as_deref() != Some(id) {
            return Ok(None);
        }
        serde_json::from_slice(&line).map(Some).map_err(|e| {
            Error::Parse(format!(
                "{}: the line at byte {offset} is not a job result: {e}",
                self.path.display()
            ))
        })
    }
}

/// Lines of a file: where each starts, and its length without the newline.
pub(crate) type Spans = Vec<(u64, u32)>;

/// The last line of each job in `path` that `keep` keeps, in file order:
/// `(offset, length)` of each, with the file open for reading them.
/// `None` when there is no such file.
pub(crate) fn winning_lines(
    path: &Path,
    mut keep: impl FnMut(&str) -> bool,
) -> Result<Option<(File, Spans)>> {
    let Some(index) = LastLines::build(path)? else {
        return Ok(None);
    };
    let mut spans = Vec::new();
    for_each_line(&index.file, path, 0, |offset, line| {
        if offset >= index.end {
            return Ok(());
        }
        if let Some(id) = job_id_of(line) {
            if index.last(&id) == Some(offset) && keep(&id) {
                let len = u32::try_from(line.len()).map_err(|_| {
                    Error::Parse(format!(
                        "{}: the line at byte {offset} is longer than 4 GB",
                        path.display()
                    ))
                })?;
                spans.push((offset, len));
            }
        }
        Ok(())
    })?;
    let LastLines { file, .. } = index;
    Ok(Some((file, spans)))
}

/// Whether a job recorded with this result runs again on resume (it never
/// ran: cancelled, or stopped by the time or cost limit), as the run
/// recorded it when it wrote the result.
fn reruns(r: &JobResult) -> bool {
    r.outcome() == JobOutcome::Cancelled
        || matches!(
            r.error.as_deref(),
            Some(COST_LIMIT_EXCEEDED | TIME_LIMIT_EXCEEDED)
        )
}

/// Cuts a torn last line off `path` (whose first `covered` bytes are known
/// whole), syncs it, and returns its new length. A missing file is empty.
fn repair_tail(path: &Path, covered: u64) -> Result<u64> {
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && covered == 0 => return Ok(0),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(shorter(path, 0, covered));
        }
        Err(e) => return Err(Error::io("open", path, e)),
    };
    let len = file
        .metadata()
        .map_err(|e| Error::io("read", path, e))?
        .len();
    if len < covered {
        return Err(shorter(path, len, covered));
    }
    // Back from the end to the last newline, at most to `covered`.
    let mut end = len;
    let mut buf = vec![0u8; 64 * 1024];
    let mut good = covered;
    while end > covered {
        let start = end.saturating_sub(buf.len() as u64).max(covered);
        let chunk = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))
            .map_err(|e| Error::io("read", path, e))?;
        file.read_exact(chunk)
            .map_err(|e| Error::io("read", path, e))?;
        if let Some(i) = memchr::memrchr(b'\n', chunk) {
            good = start + i as u64 + 1;
            break;
        }
        end = start;
    }
    if good < len {
        tracing::warn!(file = %path.display(), cut = len - good, "cutting a torn last line off the results file (the run was killed while writing it)");
        file.set_len(good)
            .map_err(|e| Error::io("trim the torn last line of", path, e))?;
    }
    file.sync_data().map_err(|e| Error::io("sync", path, e))?;
    Ok(good)
}

fn shorter(path: &Path, len: u64, covered: u64) -> Error {
    Error::Validation(format!(
        "{} is {len} bytes, shorter than the {covered} bytes of results the state file records: it was cut, replaced or removed outside batchata, and results the state counts done are gone; restore the file, or start over with reuse off (CLI: --fresh)",
        path.display()
    ))
}

/// Brings a resumed jsonl run's state up to its results file: cuts a torn
/// last line, then records done every job answered by a line past the
/// length the journal covers and not yet journaled done (the run was
/// killed between the append and its checkpoint). Reads only those lines.
/// Returns how many jobs it recorded.
pub(crate) fn recover(store: &mut StateStore, results_dir: &Path) -> Result<usize> {
    let path = jsonl_path(results_dir);
    let covered = store.results_synced;
    let good = repair_tail(&path, covered)?;
    if good == covered {
        return Ok(0);
    }
    let file = File::open(&path).map_err(|e| Error::io("open", &path, e))?;
    let mut recorded = 0;
    for_each_line(&file, &path, covered, |offset, line| {
        let r: JobResult = serde_json::from_slice(line).map_err(|e| {
            Error::Validation(format!(
                "{}: the line at byte {offset} is not a job result ({e}); the file was changed outside batchata: remove that line, or start over with reuse off (CLI: --fresh)",
                path.display()
            ))
        })?;
        let open = store
            .find(&r.job_id)?
            .is_some_and(|n| !matches!(store.status(n), JobStatus::Done(_)));
        if open {
            store.record_done(&r.job_id, r.outcome(), r.cost_usd, reruns(&r))?;
            recorded += 1;
        }
        Ok(())
    })?;
    store.record_results_synced(good)?;
    store.sync()?;
    if recorded > 0 {
        tracing::info!(
            recorded,
            "results written before the last stop were recorded done from results.jsonl"
        );
    }
    Ok(recorded)
}

/// A new jsonl run over a folder that already has a `results.jsonl` (an
/// earlier run's, kept or adopted): its torn last line is cut, and its
/// length recorded as covered, so a resume never takes its lines for this
/// run's.
pub(crate) fn start_new(store: &mut StateStore, results_dir: &Path) -> Result<()> {
    let good = repair_tail(&jsonl_path(results_dir), 0)?;
    if good > 0 {
        store.record_results_synced(good)?;
        store.sync()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, answer: &str) -> String {
        let r = JobResult {
            job_id: id.into(),
            raw_response: Some(answer.into()),
            ..Default::default()
        };
        serde_json::to_string(&r).unwrap() + "\n"
    }

    #[test]
    fn formats_read_and_print_as_their_names() {
        assert_eq!(
            "JSONL".parse::<ResultsFormat>().unwrap(),
            ResultsFormat::Jsonl
        );
        assert_eq!(
            "files".parse::<ResultsFormat>().unwrap(),
            ResultsFormat::Files
        );
        let e = "csv".parse::<ResultsFormat>().unwrap_err().to_string();
        assert!(e.contains("files, jsonl"), "{e}");
        assert_eq!(ResultsFormat::default(), ResultsFormat::Files);
        assert_eq!(
            serde_json::to_string(&ResultsFormat::Jsonl).unwrap(),
            "\"jsonl\""
        );
    }

    #[test]
    fn ids_are_read_from_the_line_start_or_parsed() {
        assert_eq!(
            job_id_of(line("a-1", "x").trim_end().as_bytes()).unwrap(),
            "a-1"
        );
        let escaped = line("say \"hi\"", "x");
        assert_eq!(
            job_id_of(escaped.trim_end().as_bytes()).unwrap(),
            "say \"hi\""
        );
        let later = br#"{"raw_response":"x","job_id":"late"}"#;
        assert_eq!(job_id_of(later).unwrap(), "late");
        assert!(job_id_of(b"{\"job_id\":\"cut").is_none());
    }

    #[test]
    fn the_last_line_of_a_job_wins_even_when_hashes_collide() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RESULTS_JSONL);
        let text = [
            line("a", "a1"),
            line("b", "b1"),
            line("a", "a2"),
            line("c", "c1"),
            line("b", "b2"),
        ]
        .concat();
        // A torn line at the end is not a result.
        std::fs::write(&path, format!("{text}{{\"job_id\":\"d\",\"raw")).unwrap();
        // Every id hashing alike: the index must still tell them apart.
        for hash in [sip as fn(&str) -> u64, |_: &str| 7] {
            let index = LastLines::build_with(&path, hash).unwrap().unwrap();
            assert_eq!(index.end, text.len() as u64);
            for (id, want) in [("a", "a2"), ("b", "b2"), ("c", "c1")] {
                let r = index.load(id).unwrap().unwrap();
                assert_eq!(r.raw_response.as_deref(), Some(want), "{id}");
            }
            assert!(index.load("d").unwrap().is_none());
            assert!(index.load("zz").unwrap().is_none());
        }
        let (file, spans) = winning_lines(&path, |id| id != "c").unwrap().unwrap();
        let got: Vec<String> = spans
            .iter()
            .map(|&(o, n)| {
                let l = pread_line(&file, &path, o, n).unwrap();
                serde_json::from_slice::<JobResult>(&l)
                    .unwrap()
                    .raw_response
                    .unwrap()
            })
            .collect();
        assert_eq!(got, vec!["a2", "b2"]);
        assert!(winning_lines(&dir.path().join("none"), |_| true)
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_resume_records_done_the_lines_past_the_checkpoint_and_cuts_a_torn_one() {
        use crate::catalog::ProviderKind;
        use crate::job::Job;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.jsonl");
        let path = dir.path().join(RESULTS_JSONL);
        let mut s =
            StateStore::create_with_format(&state, "run-1", dir.path(), ResultsFormat::Jsonl)
                .unwrap();
        for i in 0..4 {
            s.add_job(&Job::prompt(format!("p{i}")).id(format!("j{i}")))
                .unwrap();
        }
        let ids = s.claim(0..4).unwrap();
        s.record_intent(0, ProviderKind::Anthropic, ids, 0.0)
            .unwrap();
        // j0 is written and checkpointed; j1 (cancelled: it runs again) and
        // j2 are written after the checkpoint; j3's line is torn by a kill.
        let j0 = line("j0", "a0");
        s.record_done("j0", JobOutcome::Completed, 0.0, false)
            .unwrap();
        s.record_results_synced(j0.len() as u64).unwrap();
        s.sync().unwrap();
        drop(s);
        let j1 = serde_json::to_string(&JobResult::cancelled("j1", "")).unwrap() + "\n";
        let j2 = JobResult {
            job_id: "j2".into(),
            cost_usd: 0.5,
            ..Default::default()
        };
        let j2 = serde_json::to_string(&j2).unwrap() + "\n";
        let whole = format!("{j0}{j1}{j2}");
        std::fs::write(&path, format!("{whole}{{\"job_id\":\"j3\",\"raw_res")).unwrap();

        let mut s = StateStore::open(&state).unwrap();
        assert_eq!(s.results_synced, j0.len() as u64);
        assert_eq!(recover(&mut s, dir.path()).unwrap(), 2);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), whole);
        let no = |s: &StateStore, id: &str| s.find(id).unwrap().unwrap();
        assert_eq!(
            s.status(no(&s, "j1")),
            JobStatus::Done(JobOutcome::Cancelled)
        );
        assert!(s.rerun(no(&s, "j1")), "a cancelled job runs again");
        assert_eq!(
            s.status(no(&s, "j2")),
            JobStatus::Done(JobOutcome::Completed)
        );
        assert!(!s.rerun(no(&s, "j2")));
        assert_eq!(s.status(no(&s, "j3")), JobStatus::in_batch(0));
        assert!((s.cost_used() - 0.5).abs() < 1e-12);
        drop(s);
        // Recorded durably: a second resume reads nothing again.
        let mut s = StateStore::open(&state).unwrap();
        assert_eq!(s.results_synced, whole.len() as u64);
        assert_eq!(
            s.status(no(&s, "j2")),
            JobStatus::Done(JobOutcome::Completed)
        );
        assert_eq!(recover(&mut s, dir.path()).unwrap(), 0);
        assert_eq!(s.results_format, ResultsFormat::Jsonl);
        assert_eq!(
            ResultsFormat::of_state(&state).unwrap(),
            ResultsFormat::Jsonl
        );
    }

    #[test]
    fn a_torn_tail_is_cut_back_to_the_last_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RESULTS_JSONL);
        let whole = [line("a", "1"), line("b", "2")].concat();
        std::fs::write(&path, format!("{whole}{{\"job_id\":\"c\"")).unwrap();
        assert_eq!(repair_tail(&path, 0).unwrap(), whole.len() as u64);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), whole);
        // Nothing to cut: unchanged.
        assert_eq!(repair_tail(&path, 0).unwrap(), whole.len() as u64);
        // Shorter than the state says: refused, with the fix.
        let e = repair_tail(&path, whole.len() as u64 + 5)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--fresh") && e.contains("shorter"), "{e}");
        assert_eq!(repair_tail(&dir.path().join("none"), 0).unwrap(), 0);
    }
}
