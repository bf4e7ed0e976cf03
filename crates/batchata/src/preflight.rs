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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::catalog::{ModelInfo, ProviderKind};
use crate::error::{Error, Result};
use crate::files::{self, FileKind};
use crate::job::{Job, ResponseSchema};
use crate::tokens::{self, IMAGE_TOKENS, PDF_PAGE_TOKENS};

/// Problems listed one by one in a report; the rest are counted (see
/// [`list_problems`]).
pub const MAX_LISTED: usize = 50;

/// PDFs with fewer characters of text per page than this get a warning when cited.
const LOW_TEXT_CHARS_PER_PAGE: usize = 100;

const MIB: u64 = 1 << 20;

/// What one provider accepts in a single request.
///
/// Each value names its source; where the provider reference
/// (`provider-apis.md`) does not give a number, the comment says where it
/// comes from, and a limit no source gives is not checked (`None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Bytes of one request as sent (JSON, files base64-encoded).
    pub max_request_bytes: u64,
    /// Pages of one PDF.
    pub max_pdf_pages: Option<usize>,
    /// Bytes of one image, base64-encoded.
    pub max_image_bytes: Option<u64>,
    /// Pixels along either side of an image.
    pub max_image_side: Option<u32>,
}

/// The per-request limits of a provider.
pub fn request_limits(provider: ProviderKind) -> RequestLimits {
    match provider {
        // Request size: 32 MB, the Messages API's limit (reference §2.10,
        // `413 request_too_large`; each request of a batch is a Messages
        // request), also the PDF guide's "maximum request size". Read as
        // 32 MiB, the larger reading, so no request that fits is refused.
        // Pages: 100 per request (Anthropic PDF support guide; not in the
        // reference. The current guide allows 600 only for models with a
        // window of 1M tokens, none of the catalog's). Images: at most
        // 8000 x 8000 px (Anthropic vision guide); 5 MB base64-encoded per
        // image (the API's "image exceeds 5 MB maximum" error) is
        // UNCONFIRMED: neither number is in the reference.
        ProviderKind::Anthropic => RequestLimits {
            max_request_bytes: 32 * MIB,
            max_pdf_pages: Some(100),
            max_image_bytes: Some(5 * MIB),
            max_image_side: Some(8000),
        },
        // A request is one line of the batch input file, which holds at
        // most 200 MB (reference §3.4, §6). The reference gives no limit
        // for one PDF or image input; none is checked.
        ProviderKind::OpenAi => RequestLimits {
            max_request_bytes: 200_000_000,
            max_pdf_pages: None,
            max_image_bytes: None,
            max_image_side: None,
        },
        // Inline batch requests total under 20 MB (reference §4.3).
        ProviderKind::Gemini => RequestLimits {
            max_request_bytes: 20_000_000,
            max_pdf_pages: None,
            max_image_bytes: None,
            max_image_side: None,
        },
    }
}

/// Files bigger than this (base64-encoded) fit no provider's request and
/// are not opened further: the size is the problem to report.
const LARGEST_REQUEST: u64 = 200_000_000;

/// Texts longer than this are counted a piece at a time, stopping once the
/// count passes the context window.
const COUNT_PIECE: usize = 1 << 20;

/// What preflight learnt about the files it checked, so each is read once.
#[derive(Debug, Clone, Default)]
pub struct FileChecks {
    files: HashMap<PathBuf, Checked>,
    /// The last schema measured: its JSON length and its strict-mode problems.
    schema: Option<(ResponseSchema, u64, Vec<String>)>,
}

#[derive(Debug, Clone)]
struct Checked {
    stamp: Stamp,
    facts: std::result::Result<Facts, String>,
}

/// A file's size and modification time: when either changes, it is read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

#[derive(Debug, Clone)]
struct Facts {
    kind: FileKind,
    /// Bytes the file adds to a request: base64 for PDFs and images, the
    /// text for text and DOCX.
    wire_bytes: u64,
    /// Bytes of text: the file's own (text, DOCX) or extracted (PDF).
    text_bytes: u64,
    /// A PDF's pages and characters of text; `None` when too big to open.
    pdf: Option<(usize, usize)>,
    /// An image's width and height.
    dims: Option<(usize, usize)>,
    /// Token counts per tokenizer.
    tokens: Vec<(String, Count)>,
}

/// A token count; when not `complete`, counting stopped past a limit and
/// the file holds at least `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Count {
    n: u64,
    complete: bool,
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

    /// Checks a job's file; `None` when the file cannot be sent at all (the
    /// problem is in `problems`).
    fn check_file(
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

    /// The context-window problem of a job, if it has one: its input plus
    /// `max_tokens` must fit the model's window. Bounds from byte counts
    /// settle nearly every job without counting; only a job near or past the
    /// window is counted, and a big file only until the count passes it.
    fn check_context(
        &mut self,
        job: &Job,
        model: &ModelInfo,
        file: Option<(&Path, &Facts)>,
    ) -> Option<Error> {
        let window = model.max_input_tokens;
        let out = u64::from(job.max_tokens_or_default());
        let schema_len = match &job.response_schema {
            Some(s) => self.schema(s).0,
            None => 0,
        };
        let parts =
            job.messages.as_ref().map_or(0, |m| m.len()) + usize::from(job.prompt.is_some());
        let rest_upper = upper_bound(text_bytes(job) + schema_len) + 4 * parts as u64;
        let file_upper = match file {
            None => 0,
            Some((_, f)) => match (f.kind, f.pdf) {
                (FileKind::Image(_), _) => IMAGE_TOKENS,
                (FileKind::Pdf, Some((pages, _))) => {
                    upper_bound(f.text_bytes) + pages as u64 * PDF_PAGE_TOKENS
                }
                // Too big to open: the size is reported instead.
                (FileKind::Pdf, None) => return None,
                _ => upper_bound(f.text_bytes),
            },
        };
        if rest_upper + file_upper + out <= window {
            return None;
        }
        let rest = tokens::estimate_job_input(
            model,
            &Job {
                file: None,
                ..job.clone()
            },
        )
        .ok()?;
        let (file_name, file_count) = match file {
            None => (
                None,
                Count {
                    n: 0,
                    complete: true,
                },
            ),
            Some((path, f)) => {
                let c = self.file_tokens(path, f, model, window).ok()?;
                (Some(files::file_name(path)), c)
            }
        };
        let input = rest + file_count.n;
        if input + out <= window {
            return None;
        }
        let exact = matches!(
            model.capabilities.tokenizer.as_str(),
            "o200k_base" | "cl100k_base"
        );
        let how = if exact {
            format!("counted with {}", model.capabilities.tokenizer)
        } else {
            "estimated, about 3 bytes a token".to_string()
        };
        let (at_least, more) = if file_count.complete {
            ("", "")
        } else {
            ("at least ", "more than ")
        };
        let of_file = match &file_name {
            Some(n) => format!(", '{n}' alone {at_least}{}", thousands(file_count.n)),
            None => String::new(),
        };
        let field = if file_count.n > rest {
            "file"
        } else {
            text_field(job)
        };
        let advice = if file_name.is_some() {
            "split the file into smaller parts (one job each), lower max_tokens, or use a model with a larger window"
        } else {
            "shorten the input, lower max_tokens, or use a model with a larger window"
        };
        Some(Error::job_field(
            job.id_str(),
            field,
            format!(
                "{at_least}{} input tokens ({how}{of_file}) plus max_tokens {} come to {more}{}, more than {}'s context window of {} tokens; {advice}",
                thousands(input),
                thousands(out),
                thousands(input + out),
                model.name,
                thousands(window),
            ),
        ))
    }

    /// The tokens of a file for `model`'s tokenizer, counted at most until
    /// they pass `cap`; kept for the next job that sends the same file.
    fn file_tokens(
        &mut self,
        path: &Path,
        f: &Facts,
        model: &ModelInfo,
        cap: u64,
    ) -> Result<Count> {
        let tokenizer = &model.capabilities.tokenizer;
        if let Some((_, c)) = f.tokens.iter().find(|(t, _)| t == tokenizer) {
            if c.complete || c.n > cap {
                return Ok(*c);
            }
        }
        let count = match f.kind {
            FileKind::Image(_) => Count {
                n: IMAGE_TOKENS,
                complete: true,
            },
            FileKind::Pdf => {
                let info = files::pdf_info(&files::read(path)?)?;
                let mut c = Count {
                    n: info.pages as u64 * PDF_PAGE_TOKENS,
                    complete: true,
                };
                for page in &info.page_text {
                    if c.n > cap {
                        c.complete = false;
                        break;
                    }
                    let p = count_capped(model, page, cap.saturating_sub(c.n));
                    c.n += p.n;
                    c.complete &= p.complete;
                }
                c
            }
            FileKind::Text | FileKind::Docx => {
                let file = files::Loaded {
                    kind: f.kind,
                    bytes: files::read(path)?,
                };
                count_capped(model, &file.text(path)?, cap)
            }
        };
        if let Some(Checked {
            facts: Ok(facts), ..
        }) = self.files.get_mut(path)
        {
            facts.tokens.retain(|(t, _)| t != tokenizer);
            facts.tokens.push((tokenizer.clone(), count));
        }
        Ok(count)
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

/// Counts the tokens of `text`, a piece at a time when it is long, until the
/// count passes `cap`. Where no tokenizer is bundled the estimate is at least
/// a token per 3 bytes, so a text that long is refused without counting.
fn count_capped(model: &ModelInfo, text: &str, cap: u64) -> Count {
    if text.len() <= COUNT_PIECE {
        return Count {
            n: tokens::count_text(model, text),
            complete: true,
        };
    }
    let exact = matches!(
        model.capabilities.tokenizer.as_str(),
        "o200k_base" | "cl100k_base"
    );
    let floor = (text.len() as u64).div_ceil(3);
    if !exact && floor > cap {
        return Count {
            n: floor,
            complete: false,
        };
    }
    let mut n = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = rest.len().min(COUNT_PIECE);
        while !rest.is_char_boundary(end) {
            end += 1;
        }
        // Pieces end after a line break where there is one, so few tokens
        // are cut in two.
        if let Some(nl) = rest[end..].find('\n') {
            end += nl + 1;
        } else {
            end = rest.len();
        }
        n += tokens::count_text(model, &rest[..end]);
        rest = &rest[end..];
        if n > cap && !rest.is_empty() {
            return Count { n, complete: false };
        }
    }
    Count { n, complete: true }
}

/// The most tokens `bytes` bytes of text can be, for every tokenizer used:
/// a byte-level BPE token holds at least one byte, and the estimate adds a
/// third to `o200k_base`'s count.
fn upper_bound(bytes: u64) -> u64 {
    bytes + bytes.div_ceil(3)
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
