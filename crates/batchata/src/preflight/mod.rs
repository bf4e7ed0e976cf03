//! Preflight: every request checked before anything is sent.
//!
//! A batch of 10,000 jobs must not fail because of one bad file, and nobody
//! should pay for a request the model cannot read. So when a job is added
//! (and again when a run or a plan starts, for files changed since), its
//! request is checked against what the provider will accept:
//!
//! - its file is what its name says, by content ([`crate::files::detect`]),
//!   text is UTF-8, a PDF opens, an image's header reads;
//! - the provider's per-request limits ([`request_limits`]): request size,
//!   PDF pages, image size and dimensions;
//! - the model's context window: the input (counted where a tokenizer
//!   exists, estimated conservatively elsewhere) plus `max_tokens`;
//! - a response schema OpenAI's strict mode can take.
//!
//! Every problem of a job is reported, not just the first. Files are read
//! once: what was learnt about a file is kept, keyed by its path, size and
//! modification time, so 10,000 questions about one PDF open it once.
//!
//! `limits.rs` holds what each provider accepts per request, `file.rs` the
//! checks of a job's file, `context.rs` the context-window count; this file
//! puts them together per job and reports the problems.

mod context;
mod file;
mod limits;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use crate::catalog::{ModelInfo, ProviderKind};
use crate::error::{Error, Result};
use crate::files::{self, FileKind};
use crate::job::{Job, ResponseSchema};

use file::Checked;
pub use limits::request_limits;

/// Problems listed one by one in a report; the rest are counted (see
/// [`list_problems`]).
pub const MAX_LISTED: usize = 50;

const MIB: u64 = 1 << 20;

/// Files whose facts are kept at most: enough for jobs that ask many
/// questions of a few thousand documents, bounded for a million jobs with a
/// file each.
const FILES_KEPT: usize = 4096;

/// What preflight learnt about the files it checked, so each is read once.
#[derive(Debug, Clone, Default)]
pub struct FileChecks {
    files: HashMap<PathBuf, Checked>,
    /// Absolute paths found to lead to themselves (no link, no `..`).
    absolute: HashSet<PathBuf>,
    /// The last schema measured: its JSON length and its strict-mode problems.
    schema: Option<(ResponseSchema, u64, Vec<String>)>,
}

impl FileChecks {
    /// Every problem with `job` (defaults merged) for `model`: its file,
    /// the provider's per-request limits, the context window and the
    /// response schema. Empty when the job can be sent.
    pub fn check_job(&mut self, job: &Job, model: &ModelInfo) -> Vec<Error> {
        let id = job.id_str();
        let limits = request_limits(model.provider);
        let mut problems = Vec::new();
        let facts = match &job.file {
            Some(path) => match self.check_file(job, path, model, &limits, &mut problems) {
                Some(f) => Some((path.as_path(), f)),
                // Nothing more can be said about the request without its file.
                None => return problems,
            },
            None => None,
        };

        // The request's size.
        let text = text_bytes(job);
        let schema_len = match &job.response_schema {
            Some(s) => self.schema(s).0,
            None => 0,
        };
        let file_wire = facts.as_ref().map_or(0, |(_, f)| f.wire_bytes);
        let request = 512 + text + schema_len + file_wire;
        if request > limits.max_request_bytes {
            let (field, what) = match &facts {
                Some((path, f)) => (
                    "file",
                    format!(
                        " ('{}' is {}{})",
                        files::file_name(path),
                        human_bytes(std::fs::metadata(path).map_or(0, |m| m.len())),
                        match f.kind {
                            FileKind::Pdf | FileKind::Image(_) => ", sent base64-encoded",
                            _ => "",
                        }
                    ),
                ),
                None => (text_field(job), String::new()),
            };
            problems.push(Error::job_field(
                id,
                field,
                format!(
                    "the request would be about {}{what}, more than the {} one {} request may hold; send less (split the file, or compress it)",
                    human_bytes(request),
                    human_bytes(limits.max_request_bytes),
                    provider_name(model.provider),
                ),
            ));
        }

        // The context window.
        if let Some(p) = self.check_context(job, model, facts.as_ref().map(|(p, f)| (*p, f))) {
            problems.push(p);
        }

        // OpenAI's strict structured output.
        if model.provider == ProviderKind::OpenAi && model.capabilities.structured_output {
            if let Some(s) = &job.response_schema {
                let strict = self.schema(s).1;
                if !strict.is_empty() {
                    problems.push(Error::job_field(
                        id,
                        "response_schema",
                        strict_message(strict, &model.name),
                    ));
                }
            }
        }
        problems
    }

    /// `path` made absolute, links resolved (`None` when it does not
    /// resolve). Jobs on one file resolve it once, when nothing on the way
    /// to it is a link or `..`: a link can be moved to another file between
    /// two jobs, and each job must send the file it was checked and
    /// fingerprinted with, so a path through one is resolved every time.
    pub(crate) fn absolute(&mut self, path: &std::path::Path) -> Option<PathBuf> {
        // Keyed by the path from the process's folder as it is now, which
        // an application may change between jobs.
        let key = std::path::absolute(path).ok()?;
        if self.absolute.contains(&key) {
            return Some(key);
        }
        let abs = std::fs::canonicalize(&key).ok()?;
        if abs == key {
            if self.absolute.len() >= FILES_KEPT {
                self.absolute.clear();
            }
            self.absolute.insert(key);
        }
        Some(abs)
    }

    /// The SHA-256 of `path` as the last check of it read it, if that check
    /// is still kept and the file could be read whole.
    pub(crate) fn file_sha256(&self, path: &std::path::Path) -> Option<&str> {
        match &self.files.get(path)?.facts {
            Ok(f) => f.sha256.as_deref(),
            Err(_) => None,
        }
    }

    /// A schema's JSON length and its problems for OpenAI's strict mode,
    /// worked out once for jobs sharing it.
    fn schema(&mut self, s: &ResponseSchema) -> (u64, &[String]) {
        if self.schema.as_ref().is_none_or(|(last, _, _)| last != s) {
            let v = s.as_value();
            let len = serde_json::to_vec(v).map_or(0, |b| b.len() as u64);
            let strict = crate::structured::openai_strict_problems(v);
            self.schema = Some((s.clone(), len, strict));
        }
        match &self.schema {
            Some((_, len, strict)) => (*len, strict),
            None => (0, &[]),
        }
    }
}

impl crate::Batch {
    /// Checks the jobs' files again before a plan or a run: a file may have
    /// changed (or gone) since its job was added. Jobs without a file are
    /// skipped, since nothing else about a job changes once it is added; a
    /// file unchanged since is not read again. Every problem is reported.
    pub(crate) fn recheck_files(&self, checks: &mut FileChecks) -> Result<()> {
        if checks.files.is_empty() {
            // No job was added with a file.
            return Ok(());
        }
        let mut listed = Vec::new();
        let mut total = 0;
        for job in self.jobs.iter()? {
            let job = job?;
            if job.file.is_none() {
                continue;
            }
            let model = self.catalog.lookup(job.model_name())?;
            let problems = checks.check_job(&job, &model);
            total += problems.len();
            listed.extend(
                problems
                    .into_iter()
                    .take(MAX_LISTED.saturating_sub(listed.len()))
                    .map(|e| e.to_string()),
            );
        }
        if total == 0 {
            return Ok(());
        }
        Err(Error::Validation(format!(
            "{total} problem(s) with the jobs' files (changed since the jobs were added?); nothing was sent:\n{}",
            list_problems(listed.into_iter(), total)
        )))
    }
}

/// Bytes of a job's own text: its prompt and messages.
fn text_bytes(job: &Job) -> u64 {
    job.prompt.as_ref().map_or(0, |p| p.len() as u64)
        + job
            .messages
            .as_ref()
            .map_or(0, |m| m.iter().map(|m| m.content.len() as u64 + 32).sum())
}

fn text_field(job: &Job) -> &'static str {
    if job.messages.is_some() {
        "messages"
    } else {
        "prompt"
    }
}

fn provider_name(p: ProviderKind) -> &'static str {
    match p {
        ProviderKind::Anthropic => "Anthropic",
        ProviderKind::OpenAi => "OpenAI",
        ProviderKind::Gemini => "Gemini",
    }
}

fn strict_message(problems: &[String], model: &str) -> String {
    format!(
        "{model} answers in OpenAI's strict structured-output mode, which cannot take this schema: {}",
        problems.join("; ")
    )
}

/// 1,234,567.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let head = match digits.len() % 3 {
        0 => 3,
        h => h,
    };
    let mut out = digits[..head].to_string();
    for group in digits.as_bytes()[head..].chunks(3) {
        out.push(',');
        out.push_str(std::str::from_utf8(group).unwrap_or_default());
    }
    out
}

/// `32 MB`, `1.5 MB`, `900 KB`, `12 bytes` (MB = 2^20 bytes here).
fn human_bytes(n: u64) -> String {
    if n >= MIB {
        let mb = n as f64 / MIB as f64;
        if mb.fract() == 0.0 || mb >= 100.0 {
            format!("{mb:.0} MB")
        } else {
            format!("{mb:.1} MB")
        }
    } else if n >= 1024 {
        format!("{} KB", n / 1024)
    } else {
        format!("{n} bytes")
    }
}

/// One error for several problems: the error itself when there is one,
/// else every message on its own line (at most [`MAX_LISTED`], then a count).
pub fn combine(mut problems: Vec<Error>) -> Option<Error> {
    match problems.len() {
        0 => None,
        1 => problems.pop(),
        _ => Some(Error::Validation(list_problems(
            problems.iter().map(|e| e.to_string()),
            problems.len(),
        ))),
    }
}

/// The lines of a report: the first [`MAX_LISTED`] problems, then how many
/// more there are. An application listing problems of its own (the CLI's
/// jobs-file check) uses it, so every list of problems reads the same.
pub fn list_problems(problems: impl Iterator<Item = String>, total: usize) -> String {
    let mut out: Vec<String> = problems.take(MAX_LISTED).collect();
    if total > out.len() {
        out.push(format!(
            "… and {} more problem(s) not listed",
            total - out.len()
        ));
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(33_333_334), "33,333,334");
        assert_eq!(human_bytes(32 * MIB), "32 MB");
        assert_eq!(human_bytes(3 * MIB / 2), "1.5 MB");
    }
}
