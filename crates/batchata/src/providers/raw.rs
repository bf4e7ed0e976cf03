//! Raw debug files: what was sent to and received from a provider, kept
//! under `results_dir/raw_files` (same layout as the Python library) so a
//! user can see exactly what went over the wire. Keys never appear here:
//! request bodies carry no credentials and headers are not written.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

/// Writer of raw files below one `raw_files` folder.
#[derive(Debug, Clone)]
pub struct RawFiles {
    root: PathBuf,
}

impl RawFiles {
    /// Raw files below `raw_dir` (i.e. `results_dir/raw_files`).
    pub fn new(raw_dir: &Path) -> Self {
        RawFiles {
            root: raw_dir.to_path_buf(),
        }
    }

    /// `requests/{provider}_batch_{id}.{ext}`.
    pub fn request_path(&self, provider: &str, batch_id: &str, ext: &str) -> PathBuf {
        self.root
            .join("requests")
            .join(format!("{provider}_batch_{}.{ext}", safe(batch_id)))
    }

    /// `responses/{provider}_batch_{id}.{ext}`.
    pub fn response_path(&self, provider: &str, batch_id: &str, ext: &str) -> PathBuf {
        self.root
            .join("responses")
            .join(format!("{provider}_batch_{}.{ext}", safe(batch_id)))
    }

    /// `errors/{provider}_batch_{id}.jsonl`.
    pub fn error_path(&self, provider: &str, batch_id: &str) -> PathBuf {
        self.root
            .join("errors")
            .join(format!("{provider}_batch_{}.jsonl", safe(batch_id)))
    }

    /// `responses/{job_id}_raw.json`.
    pub fn job_path(&self, job_id: &str) -> PathBuf {
        self.root
            .join("responses")
            .join(format!("{}_raw.json", safe(job_id)))
    }

    /// Writes a whole file atomically.
    pub fn write(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        write_atomic(path, bytes)
    }

    /// Writes one job's raw provider line, pretty-printed.
    pub fn write_job(&self, job_id: &str, value: &serde_json::Value) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(value)
            .map_err(|e| Error::Parse(format!("job '{job_id}': raw response: {e}")))?;
        write_atomic(&self.job_path(job_id), &bytes)
    }

    /// Opens a file for streaming appends (created with its folder).
    pub fn create(&self, path: &Path) -> Result<std::io::BufWriter<std::fs::File>> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("create folder", dir, e))?;
        }
        let f = std::fs::File::create(path).map_err(|e| Error::io("create", path, e))?;
        Ok(std::io::BufWriter::new(f))
    }
}

/// A batch's raw request file while the batch has no id yet: its lines
/// are written as the requests are measured, into a temp file under
/// `requests/`, which is named for the batch once the provider has given
/// the id (and removed if the batch is never created).
pub(crate) struct PendingRequest {
    files: RawFiles,
    provider: &'static str,
    tmp: tempfile::NamedTempFile,
}

impl PendingRequest {
    /// Starts `requests/.{provider}_batch_pending_*.jsonl` below `raw_dir`.
    pub(crate) fn start(raw_dir: &Path, provider: &'static str) -> Result<Self> {
        let folder = raw_dir.join("requests");
        std::fs::create_dir_all(&folder).map_err(|e| Error::io("create folder", &folder, e))?;
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{provider}_batch_pending_"))
            .suffix(".jsonl")
            .tempfile_in(&folder)
            .map_err(|e| Error::io("create a temp file in", &folder, e))?;
        Ok(PendingRequest {
            files: RawFiles::new(raw_dir),
            provider,
            tmp,
        })
    }

    /// Runs `write` with a buffered writer on the file, and flushes it.
    pub(crate) fn write<R>(
        &mut self,
        write: impl FnOnce(&mut dyn Write) -> Result<R>,
    ) -> Result<R> {
        let path = self.tmp.path().to_path_buf();
        let mut w = std::io::BufWriter::new(self.tmp.as_file_mut());
        let out = write(&mut w)?;
        w.flush()
            .map_err(|e| Error::io("write the raw request file", &path, e))?;
        Ok(out)
    }

    /// Keeps the file as `requests/{provider}_batch_{id}.jsonl`. A failure
    /// is logged, not returned: raw files are a debugging aid, never a
    /// reason to fail a batch that was created.
    pub(crate) fn keep(self, batch_id: &str) {
        let path = self.files.request_path(self.provider, batch_id, "jsonl");
        if let Err(e) = self.tmp.persist(&path) {
            tracing::warn!(path = %path.display(), error = %e.error, "could not keep the raw request file");
        }
    }
}

/// Which results file of a batch a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RawStream {
    /// The answers: `responses/{provider}_batch_{id}.jsonl`.
    Responses,
    /// The failed requests, where the provider sends them apart (OpenAI):
    /// `errors/{provider}_batch_{id}.jsonl`.
    Errors,
}

/// Raw copies of a batch's results, written as they stream by: each
/// results file line by line, and each job's line as a file of its own. A
/// write failure is logged once and turns raw files off for the rest of
/// the batch: they are a debugging aid, never a reason to lose results.
pub(crate) struct RawResults {
    files: RawFiles,
    provider: &'static str,
    batch_id: String,
    /// The results files, by [`RawStream`], each opened at its first line.
    out: [Option<std::io::BufWriter<std::fs::File>>; 2],
    broken: bool,
}

impl RawResults {
    /// Raw results of `provider`'s batch `batch_id` below `raw_dir`.
    pub(crate) fn new(raw_dir: &Path, provider: &'static str, batch_id: &str) -> Self {
        RawResults {
            files: RawFiles::new(raw_dir),
            provider,
            batch_id: batch_id.to_string(),
            out: [None, None],
            broken: false,
        }
    }

    /// Appends `line` to the results file of `stream`.
    pub(crate) fn line(&mut self, stream: RawStream, line: &[u8]) {
        if self.broken {
            return;
        }
        if let Err(e) = self.try_line(stream, line) {
            tracing::warn!(error = %e, "raw results files turned off for this batch");
            self.broken = true;
        }
    }

    fn try_line(&mut self, stream: RawStream, line: &[u8]) -> Result<()> {
        let slot = &mut self.out[stream as usize];
        if slot.is_none() {
            let path = match stream {
                RawStream::Responses => {
                    self.files
                        .response_path(self.provider, &self.batch_id, "jsonl")
                }
                RawStream::Errors => self.files.error_path(self.provider, &self.batch_id),
            };
            *slot = Some(self.files.create(&path)?);
        }
        if let Some(w) = slot.as_mut() {
            w.write_all(line)
                .and_then(|_| w.write_all(b"\n"))
                .map_err(|e| Error::io("write a raw results file of", &self.batch_id, e))?;
        }
        Ok(())
    }

    /// Writes job `job_id`'s own line, pretty-printed
    /// (`responses/{job_id}_raw.json`).
    pub(crate) fn job(&mut self, job_id: &str, line: &[u8]) {
        if self.broken {
            return;
        }
        let written = serde_json::from_slice::<serde_json::Value>(line)
            .map_err(|e| Error::Parse(format!("job '{job_id}': raw result: {e}")))
            .and_then(|v| self.files.write_job(job_id, &v));
        if let Err(e) = written {
            tracing::warn!(error = %e, "raw results files turned off for this batch");
            self.broken = true;
        }
    }

    /// Flushes the results files.
    pub(crate) fn finish(&mut self) {
        for w in self.out.iter_mut().flatten() {
            if let Err(e) = w.flush() {
                tracing::warn!(error = %e, batch = %self.batch_id, "could not finish a raw results file");
            }
        }
    }
}

fn safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
