//! Input token estimates, for cost reservations and the dry run.
//!
//! OpenAI models use the `o200k_base` tokenizer, bundled with `tiktoken-rs`,
//! so their counts are exact for text. Anthropic and Gemini publish no
//! offline tokenizer: we estimate conservatively — one token per 3 bytes
//! (which overstates typical English by ~20%), but never fewer than a third
//! more than `o200k_base` counts, because bytes alone undercount digits and
//! punctuation — so the cost limit errs on the safe side. PDFs count per page (text plus the page image the providers
//! render), images at the providers' upper bound.

use std::path::Path;

use crate::catalog::ModelInfo;
use crate::error::{Error, Result};
use crate::files::{self, FileKind};
use crate::job::Job;

/// Tokens assumed for each PDF page on top of its text (page image).
pub const PDF_PAGE_TOKENS: u64 = 1_500;
/// Tokens assumed for one image (the providers' upper bound after resizing).
pub const IMAGE_TOKENS: u64 = 1_600;
/// Overhead per chat message (role markers).
const MESSAGE_OVERHEAD: u64 = 4;

/// Counts or estimates the tokens of a text for a model.
pub fn count_text(model: &ModelInfo, text: &str) -> u64 {
    match model.capabilities.tokenizer.as_str() {
        "o200k_base" => tiktoken_rs::o200k_base_singleton()
            .encode_ordinary(text)
            .len() as u64,
        "cl100k_base" => tiktoken_rs::cl100k_base_singleton()
            .encode_ordinary(text)
            .len() as u64,
        _ => estimate_text(text),
    }
}

/// The conservative estimate used where no tokenizer is bundled: the larger
/// of one token per 3 bytes and `o200k_base`'s count plus a third.
///
/// The byte rule alone undercounts text full of numbers and punctuation
/// (`o200k_base` splits digits into groups of three and most punctuation
/// into tokens of its own): "1234567890 3.14159" is 18 bytes, 6 by bytes,
/// but 9 `o200k_base` tokens.
pub fn estimate_text(text: &str) -> u64 {
    let by_bytes = (text.len() as u64).div_ceil(3);
    let o200k = tiktoken_rs::o200k_base_singleton()
        .encode_ordinary(text)
        .len() as u64;
    by_bytes.max(o200k + o200k.div_ceil(3))
}

/// Tokens of a file sent to a model.
pub fn count_file(model: &ModelInfo, path: &Path) -> Result<u64> {
    let file = files::load(path)?;
    Ok(match file.kind {
        FileKind::Pdf => {
            let info = files::pdf_info(&file.bytes)
                .map_err(|e| Error::Parse(format!("file '{}': {e}", path.display())))?;
            let text: u64 = info.page_text.iter().map(|t| count_text(model, t)).sum();
            text + info.pages as u64 * PDF_PAGE_TOKENS
        }
        FileKind::Image(_) => IMAGE_TOKENS,
        FileKind::Text | FileKind::Docx => count_text(model, &file.text(path)?),
    })
}

/// Estimated input tokens of a job, file included.
pub fn estimate_job_input(model: &ModelInfo, job: &Job) -> Result<u64> {
    let mut n = 0;
    if let Some(msgs) = &job.messages {
        for m in msgs {
            n += count_text(model, &m.content) + MESSAGE_OVERHEAD;
        }
    }
    if let Some(p) = &job.prompt {
        n += count_text(model, p) + MESSAGE_OVERHEAD;
    }
    if let Some(f) = &job.file {
        n += count_file(model, f)?;
    }
    if let Some(s) = &job.response_schema {
        n += count_text(model, &s.as_value().to_string());
    }
    Ok(n)
}
