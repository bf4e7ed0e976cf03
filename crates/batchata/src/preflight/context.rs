//! The context-window check: a job's input plus `max_tokens` must fit the
//! model's window. Bounds from byte counts settle nearly every job; only a
//! job near the window is counted, and a big file only until the count
//! passes it (the count kept for the next job sending that file).

use std::path::Path;

use super::file::{Checked, Facts};
use super::{text_bytes, text_field, thousands, FileChecks};
use crate::catalog::ModelInfo;
use crate::error::{Error, Result};
use crate::files::{self, FileKind};
use crate::job::Job;
use crate::tokens::{self, IMAGE_TOKENS, PDF_PAGE_TOKENS};

/// Texts longer than this are counted a piece at a time, stopping once the
/// count passes the context window.
const COUNT_PIECE: usize = 1 << 20;

/// A token count; when not `complete`, counting stopped past a limit and
/// the file holds at least `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Count {
    pub(super) n: u64,
    pub(super) complete: bool,
}

impl FileChecks {
    /// The context-window problem of a job, if it has one: its input plus
    /// `max_tokens` must fit the model's window. Bounds from byte counts
    /// settle nearly every job without counting; only a job near or past the
    /// window is counted, and a big file only until the count passes it.
    pub(super) fn check_context(
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
