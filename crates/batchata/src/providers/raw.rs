//! Raw debug files: what was sent to and received from a provider, kept
//! under `results_dir/raw_files` (same layout as the Python library) so a
//! user can see exactly what went over the wire. Keys never appear here:
//! request bodies carry no credentials and headers are not written.

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
