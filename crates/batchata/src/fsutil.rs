//! Small file helpers shared by the result writer, raw files and state.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` so that readers see the old file or the new one,
/// never a half-written one.
///
/// On Linux the file is first written as an unnamed inode in the target
/// folder (`O_TMPFILE`) and then linked under its name: one directory entry
/// per file instead of a temp name added, renamed and removed, which halves
/// the kernel's directory work when a run writes 100,000 result files into
/// one folder. Where that is not possible (another OS, a file system without
/// `O_TMPFILE`, no `/proc`, or a file that already exists and must be
/// replaced) it falls back to a named temp file renamed into place.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    #[cfg(target_os = "linux")]
    match linux::write_linked(dir, path, bytes) {
        Ok(true) => return Ok(()),
        Ok(false) => {}
        Err(e) => return Err(e),
    }
    write_renamed(dir, path, bytes)
}

/// Makes files already written into `dir` (and their names in it) durable:
/// after this returns, a power loss cannot lose them. On Linux one
/// `syncfs` covers every file of the folder's file system at once, so a
/// batch of result files costs one call instead of one fsync each;
/// elsewhere each file and then the folder are fsynced (`files` is only
/// walked there, so a caller can hand over a lazy iterator).
pub fn sync_written(dir: &Path, files: impl IntoIterator<Item = std::path::PathBuf>) -> Result<()> {
    let d = std::fs::File::open(dir).map_err(|e| Error::io("open folder", dir, e))?;
    #[cfg(target_os = "linux")]
    {
        let _ = files;
        rustix::fs::syncfs(&d).map_err(|e| Error::io("sync the files in", dir, e.into()))
    }
    #[cfg(not(target_os = "linux"))]
    {
        for f in files {
            std::fs::File::open(&f)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io("sync", &f, e))?;
        }
        // Folders cannot be opened for syncing on every OS; where they can,
        // this makes the new names durable.
        let _ = d.sync_all();
        Ok(())
    }
}

/// A named temp file in the same folder, then a rename over `path`.
fn write_renamed(dir: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = match temp_in(dir) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("create folder", dir, e))?;
            temp_in(dir).map_err(|e| Error::io("create a temp file in", dir, e))?
        }
        Err(e) => return Err(Error::io("create a temp file in", dir, e)),
    };
    tmp.write_all(bytes)
        .map_err(|e| Error::io("write", tmp.path().to_path_buf(), e))?;
    tmp.persist(path)
        .map_err(|e| Error::io("rename into place", path, e.error))?;
    Ok(())
}

fn temp_in(dir: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(".batchata-")
        .suffix(".tmp")
        .tempfile_in(dir)
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::path::Path;
    use std::sync::atomic::{AtomicBool, Ordering};

    use rustix::fs::{linkat, openat, AtFlags, Mode, OFlags, CWD};
    use rustix::io::Errno;

    use crate::error::{Error, Result};

    /// Cleared the first time the system shows it cannot do this, so the
    /// fallback does not pay for a failed attempt on every file.
    static USABLE: AtomicBool = AtomicBool::new(true);

    /// Writes `bytes` as an unnamed file in `dir` and links it as `path`.
    /// `Ok(false)`: not done, nothing left behind; the caller falls back.
    pub(super) fn write_linked(dir: &Path, path: &Path, bytes: &[u8]) -> Result<bool> {
        if !USABLE.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let flags = OFlags::WRONLY | OFlags::TMPFILE | OFlags::CLOEXEC;
        let mode = Mode::from_raw_mode(0o600);
        let fd = match openat(CWD, dir, flags, mode) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => {
                std::fs::create_dir_all(dir).map_err(|e| Error::io("create folder", dir, e))?;
                match openat(CWD, dir, flags, mode) {
                    Ok(fd) => fd,
                    Err(_) => return Ok(false),
                }
            }
            Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL | Errno::NOSYS) => {
                USABLE.store(false, Ordering::Relaxed);
                return Ok(false);
            }
            // Permissions and the like: the fallback reports them with its
            // own, clearer error.
            Err(_) => return Ok(false),
        };
        let mut file = std::fs::File::from(fd);
        file.write_all(bytes)
            .map_err(|e| Error::io("write", path, e))?;
        let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
        match linkat(CWD, proc_path.as_str(), CWD, path, AtFlags::SYMLINK_FOLLOW) {
            Ok(()) => Ok(true),
            // Replacing an existing file needs a rename.
            Err(Errno::EXIST) => Ok(false),
            Err(Errno::NOENT) if !Path::new("/proc/self/fd").is_dir() => {
                USABLE.store(false, Ordering::Relaxed);
                Ok(false)
            }
            Err(_) => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_new_files_and_replaces_existing_ones() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("nested/deeper/r.json");
        write_atomic(&path, b"first").expect("first write");
        assert_eq!(std::fs::read(&path).expect("read"), b"first");
        write_atomic(&path, b"second, longer").expect("replace");
        assert_eq!(std::fs::read(&path).expect("read"), b"second, longer");
        // Nothing else is left in the folder: no temp names, no strays.
        let names: Vec<_> = std::fs::read_dir(path.parent().expect("parent"))
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("r.json")]);
    }

    #[cfg(unix)]
    #[test]
    fn files_are_private_to_their_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let new = dir.path().join("new.json");
        write_atomic(&new, b"x").expect("write");
        write_atomic(&new, b"y").expect("replace");
        let mode = std::fs::metadata(&new).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_folder_in_the_way_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("taken");
        std::fs::create_dir(&path).expect("mkdir");
        let err = write_atomic(&path, b"x").expect_err("a folder cannot be replaced by a file");
        assert!(err.to_string().contains("taken"), "{err}");
    }
}
