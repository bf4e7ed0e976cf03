//! Input token estimates, for cost reservations and the dry run.
//!
//! OpenAI models use the `o200k_base` tokenizer, bundled with `tiktoken-rs`,
//! so their counts are exact for text. Anthropic and Gemini publish no
//! offline tokenizer: we estimate conservatively — one token per 3 bytes
//! (which overstates typical English by ~20%), but never fewer than a third
//! more than `o200k_base` counts, because bytes alone undercount digits and
//! punctuation — so the cost limit errs on the safe side. PDFs count per page (text plus the page image the providers
//! render), images at the providers' upper bound.
//!
//! The tokenizers are the cargo feature `tokenizers` (on by default).
//! Without it every model gets the conservative estimate, with
//! [`approx_o200k`]'s count of the word, digit and punctuation pieces
//! standing in for `o200k_base`'s: a bit higher than the exact counts, so
//! cost limits still err on the safe side.

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
#[cfg(feature = "tokenizers")]
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

/// Estimates the tokens of a text for a model: built without the
/// `tokenizers` feature, every model gets the conservative estimate.
#[cfg(not(feature = "tokenizers"))]
pub fn count_text(_model: &ModelInfo, text: &str) -> u64 {
    estimate_text(text)
}

/// `o200k_base`'s token count of `text`: exact with the `tokenizers`
/// feature, else [`approx_o200k`].
fn o200k_count(text: &str) -> u64 {
    #[cfg(feature = "tokenizers")]
    {
        tiktoken_rs::o200k_base_singleton()
            .encode_ordinary(text)
            .len() as u64
    }
    #[cfg(not(feature = "tokenizers"))]
    {
        approx_o200k(text)
    }
}

/// A tokenizer-free stand-in for `o200k_base`'s count, on the high side:
/// the pieces its pre-tokenizer cuts text into, priced as it prices them.
/// A run of letters costs a token per 4 bytes (at least one), a run of
/// digits one per 3 digits, every other visible character one; a single
/// space before a word is part of the word, other whitespace runs cost one.
#[cfg(any(test, not(feature = "tokenizers")))]
pub(crate) fn approx_o200k(text: &str) -> u64 {
    #[derive(PartialEq, Clone, Copy)]
    enum Class {
        Letter,
        Digit,
        Space,
        Other,
    }
    let class = |c: char| {
        if c.is_alphabetic() || c == '\'' {
            Class::Letter
        } else if c.is_numeric() {
            Class::Digit
        } else if c.is_whitespace() {
            Class::Space
        } else {
            Class::Other
        }
    };
    let mut tokens = 0u64;
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        let kind = class(c);
        let mut end = start + c.len_utf8();
        let mut count = 1u64;
        if kind != Class::Other {
            while let Some(&(i, next)) = chars.peek() {
                if class(next) != kind {
                    break;
                }
                end = i + next.len_utf8();
                count += 1;
                chars.next();
            }
        }
        tokens += match kind {
            Class::Letter => ((end - start) as u64).div_ceil(4),
            Class::Digit => count.div_ceil(3),
            Class::Other => 1,
            Class::Space => {
                let before_word = chars
                    .peek()
                    .is_some_and(|&(_, next)| class(next) == Class::Letter);
                u64::from(!(c == ' ' && count == 1 && before_word))
            }
        };
    }
    tokens
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
    let o200k = o200k_count(text);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// (text, its `o200k_base` token count from OpenAI's own tiktoken).
    const EXACT: &[(&str, u64)] = &[
        ("hello world", 2),
        ("Hello, world!", 4),
        ("The quick brown fox jumps over the lazy dog.", 10),
        ("Résumé: naïve café — 東京 🚀", 9),
        ("  leading spaces\n\nand\ttabs", 7),
        ("1234567890 3.14159", 9),
        (r#"{"invoice": 42, "total": 12.5}"#, 14),
        ("Summarise the French revolution in one line.", 10),
        ("antidisestablishmentarianism", 6),
        ("hello world\n", 3),
        ("\n\n\n", 1),
        (" ", 1),
        ("", 0),
    ];

    #[test]
    fn the_tokenizer_free_count_is_never_below_o200k_and_not_far_above() {
        for &(text, exact) in EXACT {
            let approx = approx_o200k(text);
            assert!(approx >= exact, "{text:?}: {approx} < {exact}");
            assert!(approx <= 2 * exact + 1, "{text:?}: {approx} vs {exact}");
        }
    }

    #[cfg(feature = "tokenizers")]
    #[test]
    fn the_tokenizer_free_count_stays_above_o200k_on_mixed_text() {
        let texts = [
            "Invoice INV-2024-0042, total due 1,234.50 EUR by 2024-03-01.".repeat(20),
            "id,amount,date\n".to_string() + &"10293,1234.50,2024-03-01\n".repeat(50),
            "Die Vertragsparteien vereinbaren folgende Änderungen. ".repeat(20),
            "{\"items\": [{\"sku\": \"A-1\", \"qty\": 3}, {\"sku\": \"B-22\", \"qty\": 10}]}"
                .repeat(10),
        ];
        for text in &texts {
            let exact = tiktoken_rs::o200k_base_singleton()
                .encode_ordinary(text)
                .len() as u64;
            let approx = approx_o200k(text);
            assert!(approx >= exact, "{approx} < {exact}: {text:.60}");
        }
    }
}
