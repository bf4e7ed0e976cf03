//! A job's file, checked before it is sent: it exists, the model takes its
//! type, it is what its name says (by content), and it fits the provider's
//! PDF and image limits. What was learnt about a file is kept, keyed by its
//! size and modification time, so each file is read once.

use std::path::Path;
use std::time::SystemTime;

use super::context::Count;
use super::limits::RequestLimits;
use super::{human_bytes, provider_name, FileChecks};
use crate::catalog::ModelInfo;
use crate::error::{Error, Result};
use crate::files::{self, FileKind};
use crate::job::Job;

/// PDFs with fewer characters of text per page than this get a warning when cited.
const LOW_TEXT_CHARS_PER_PAGE: usize = 100;

/// Files bigger than this (base64-encoded) fit no provider's request and
/// are not opened further: the size is the problem to report.
const LARGEST_REQUEST: u64 = 200_000_000;

#[derive(Debug, Clone)]
pub(super) struct Checked {
    pub(super) stamp: Stamp,
    pub(super) facts: std::result::Result<Facts, String>,
}

/// A file's size and modification time: when either changes, it is read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    pub(super) len: u64,
    pub(super) modified: Option<SystemTime>,
}

#[derive(Debug, Clone)]
pub(super) struct Facts {
    pub(super) kind: FileKind,
    /// Bytes the file adds to a request: base64 for PDFs and images, the
    /// text for text and DOCX.
    pub(super) wire_bytes: u64,
    /// Bytes of text: the file's own (text, DOCX) or extracted (PDF).
    pub(super) text_bytes: u64,
    /// A PDF's pages and characters of text; `None` when too big to open.
    pub(super) pdf: Option<(usize, usize)>,
    /// An image's width and height.
    pub(super) dims: Option<(usize, usize)>,
    /// Token counts per tokenizer.
    pub(super) tokens: Vec<(String, Count)>,
    /// SHA-256 of the bytes, for the job's fingerprint; `None` when the
    /// file was too big to be read whole.
    pub(super) sha256: Option<String>,
}

impl FileChecks {
    /// Checks a job's file; `None` when the file cannot be sent at all (the
    /// problem is in `problems`).
    pub(super) fn check_file(
        &mut self,
        job: &Job,
        path: &Path,
        model: &ModelInfo,
        limits: &RequestLimits,
        problems: &mut Vec<Error>,
    ) -> Option<Facts> {
        let id = job.id_str();
        if let Err(e) = files::file_kind(path) {
            problems.push(Error::job_field(id, "file", e));
            return None;
        }
        let ext = files::extension(path);
        let meta = match std::fs::metadata(path) {
            Ok(m) if m.is_file() => m,
            _ => {
                problems.push(Error::job_field(
                    id,
                    "file",
                    format!("'{}' does not exist or is not a file", path.display()),
                ));
                return None;
            }
        };
        if !model.accepts_file_type(&ext) {
            problems.push(Error::ModelNotSupported(format!(
                "job '{id}': field 'file': model '{}' does not accept .{ext} files (it takes: {})",
                model.name,
                model.capabilities.file_types.join(", ")
            )));
            return None;
        }
        let stamp = Stamp {
            len: meta.len(),
            modified: meta.modified().ok(),
        };
        let facts = match self.files.get(path) {
            Some(c) if c.stamp == stamp => c.facts.clone(),
            _ => {
                let facts = inspect(path, stamp.len);
                if self.files.len() >= super::FILES_KEPT {
                    // Bounded: a job on a file forgotten here reads it again.
                    self.files.clear();
                }
                self.files.insert(
                    path.to_path_buf(),
                    Checked {
                        stamp,
                        facts: facts.clone(),
                    },
                );
                facts
            }
        };
        let facts = match facts {
            Ok(f) => f,
            Err(problem) => {
                problems.push(Error::job_field(id, "file", problem));
                return None;
            }
        };
        let name = path.display();
        let provider = provider_name(model.provider);
        if job.enable_citations {
            match (facts.kind, facts.pdf) {
                (FileKind::Image(_), _) => problems.push(Error::job_field(
                    id,
                    "enable_citations",
                    "images cannot be cited; send a PDF or text document, or turn citations off",
                )),
                (FileKind::Pdf, Some((pages, 0))) => problems.push(Error::job_field(
                    id,
                    "enable_citations",
                    format!(
                        "'{name}' has no extractable text on its {pages} page(s) (a scan?), so nothing can be cited; OCR it first or turn citations off"
                    ),
                )),
                (FileKind::Pdf, Some((pages, chars)))
                    if chars < LOW_TEXT_CHARS_PER_PAGE * pages.max(1) =>
                {
                    tracing::warn!(job = id, file = %name, chars, pages,
                        "PDF has little extractable text; citations may be sparse");
                }
                _ => {}
            }
        }
        if let (Some(max), Some((pages, _))) = (limits.max_pdf_pages, facts.pdf) {
            if pages > max {
                problems.push(Error::job_field(
                    id,
                    "file",
                    format!(
                        "'{name}' has {pages} pages; {provider} reads at most {max} pages of PDF per request; split it into parts of {max} pages or fewer (one job each)"
                    ),
                ));
            }
        }
        if let FileKind::Image(_) = facts.kind {
            if let Some(max) = limits.max_image_bytes {
                if facts.wire_bytes > max {
                    problems.push(Error::job_field(
                        id,
                        "file",
                        format!(
                            "'{name}' is {} base64-encoded; {provider} takes images of at most {} (UNCONFIRMED limit); resize or recompress it",
                            human_bytes(facts.wire_bytes),
                            human_bytes(max)
                        ),
                    ));
                }
            }
            if let (Some(max), Some((w, h))) = (limits.max_image_side, facts.dims) {
                if w.max(h) > max as usize {
                    problems.push(Error::job_field(
                        id,
                        "file",
                        format!(
                            "'{name}' is {w} x {h} pixels; {provider} refuses images larger than {max} x {max}; resize it"
                        ),
                    ));
                }
            }
        }
        Some(facts)
    }
}

/// Reads a file once and learns what preflight needs: its kind by content
/// (agreeing with its name), UTF-8 text, a PDF that opens (pages, text), an
/// image header that reads (size), a DOCX whose text extracts.
fn inspect(path: &Path, len: u64) -> std::result::Result<Facts, String> {
    let base64 = len.div_ceil(3) * 4;
    let bytes = if base64 > LARGEST_REQUEST {
        // Too big for any provider: the kind from the first bytes is enough.
        read_head(path, 64 * 1024).map_err(|e| e.to_string())?
    } else {
        files::read(path).map_err(|e| e.to_string())?
    };
    let too_big = base64 > LARGEST_REQUEST;
    let kind = if too_big && files::file_kind(path).is_ok_and(|k| k == FileKind::Text) {
        // A huge text file: its encoding is checked only as far as was read.
        let head = &bytes[..whole_chars(&bytes)];
        files::kind_of(path, head).map_err(|e| e.to_string())?
    } else {
        files::kind_of(path, &bytes).map_err(|e| e.to_string())?
    };
    let name = path.display();
    let mut facts = Facts {
        kind,
        wire_bytes: base64,
        text_bytes: 0,
        pdf: None,
        dims: None,
        tokens: Vec::new(),
        sha256: (!too_big).then(|| crate::fingerprint::bytes_sha256(&bytes)),
    };
    match kind {
        FileKind::Pdf if !too_big => {
            let info = files::pdf_info(&bytes)
                .map_err(|e| format!("'{name}' is {e}; repair or re-export it"))?;
            facts.text_bytes = info.page_text.iter().map(|t| t.len() as u64).sum();
            facts.pdf = Some((info.pages, info.text_chars()));
        }
        FileKind::Pdf => {}
        FileKind::Image(_) => {
            let size = imagesize::blob_size(&bytes).map_err(|e| {
                format!(
                    "'{name}' is {} whose size cannot be read ({e}); the file is damaged or cut short",
                    files::describe(kind)
                )
            })?;
            facts.dims = Some((size.width, size.height));
        }
        FileKind::Text => {
            let bom = if bytes.starts_with(files::UTF8_BOM) {
                3
            } else {
                0
            };
            facts.text_bytes = len - bom;
            facts.wire_bytes = facts.text_bytes;
        }
        FileKind::Docx => {
            let text = files::docx_text(&bytes).map_err(|e| {
                format!("'{name}' is a Word document whose text cannot be read ({e})")
            })?;
            facts.text_bytes = text.len() as u64;
            facts.wire_bytes = facts.text_bytes;
        }
    }
    Ok(facts)
}

fn read_head(path: &Path, n: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(n).read_to_end(&mut out))
        .map_err(|e| Error::io("read the input file", path, e))?;
    Ok(out)
}

/// The length of `head` without a UTF-8 character the read cut in two.
fn whole_chars(head: &[u8]) -> usize {
    match std::str::from_utf8(head) {
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        _ => head.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_character_is_left_out_of_a_head() {
        let s = "aé".as_bytes();
        assert_eq!(whole_chars(s), 3);
        assert_eq!(whole_chars(&s[..2]), 1);
        assert_eq!(whole_chars(b"abc"), 3);
        // A bad byte is not hidden: the check that follows reports it.
        assert_eq!(whole_chars(b"a\xFFb"), 3);
    }
}
