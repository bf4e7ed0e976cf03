//! One run at a time per results folder and per state file.
//!
//! Two runs over the same folder or state would each submit the jobs the
//! other is submitting and pay twice, and the state would know only one
//! run's batches. A run therefore holds an exclusive OS lock (`flock`) on a
//! small lock file beside each, for its whole life. The file holds the
//! holder's pid, for the message a second run gets. The OS drops the lock
//! when the process dies however it dies, so a crash never leaves a stale
//! lock; the file itself stays and is reused. `status` and `cancel` only
//! read the state and take no lock.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The lock file inside a results folder.
pub const RESULTS_LOCK: &str = ".batchata.lock";

/// Locks held for a run's life; dropping it releases them.
#[derive(Debug)]
pub(crate) struct RunLocks {
    _files: Vec<File>,
}

/// The lock file of a state file: `STATE.lock` beside it.
pub fn state_lock_path(state: &Path) -> PathBuf {
    let mut name = state.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    state.with_file_name(name)
}

fn lock_one(lock_path: &Path, what: &str, target: &Path) -> Result<File> {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(lock_path)
        .map_err(|e| Error::io("open the lock file", lock_path, e))?;
    match f.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = f.read_to_string(&mut pid);
            let pid = pid.trim();
            let who = if pid.is_empty() {
                "another batchata run".to_string()
            } else {
                format!("another batchata run (pid {pid})")
            };
            return Err(Error::InUse(format!(
                "{who} is using {what} {}; wait for it to end, or stop it (Ctrl+C), then run again — two runs over one {what} would submit the same jobs twice",
                target.display()
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(Error::io("lock", lock_path, e));
        }
    }
    // Ours now: say who holds it.
    let _ = f.set_len(0);
    let _ = f.seek(SeekFrom::Start(0));
    let _ = write!(f, "{}", std::process::id());
    let _ = f.flush();
    Ok(f)
}

impl RunLocks {
    /// Locks the results folder, then the state file (when the run has
    /// one), or says which run holds them.
    pub(crate) fn acquire(results_dir: &Path, state: Option<&Path>) -> Result<RunLocks> {
        let mut files = vec![lock_one(
            &results_dir.join(RESULTS_LOCK),
            "the results folder",
            results_dir,
        )?];
        if let Some(state) = state {
            if let Some(dir) = state.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| Error::io("create folder", dir, e))?;
            }
            files.push(lock_one(&state_lock_path(state), "the state file", state)?);
        }
        Ok(RunLocks { _files: files })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_with_the_holders_pid_and_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("s").join("state.jsonl");
        let first = RunLocks::acquire(dir.path(), Some(&state)).unwrap();
        let e = RunLocks::acquire(dir.path(), Some(&state)).unwrap_err();
        assert!(matches!(e, Error::InUse(_)), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id())) && msg.contains("results folder"),
            "{msg}"
        );
        // Another folder, same state: the state's lock refuses it.
        let other = tempfile::tempdir().unwrap();
        let msg = RunLocks::acquire(other.path(), Some(&state))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("state file"), "{msg}");
        drop(first);
        RunLocks::acquire(dir.path(), Some(&state)).unwrap();
    }
}
