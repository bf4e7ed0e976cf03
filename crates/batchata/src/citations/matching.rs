//! Whether a citation's texts hold a field's value, and in which form.
//!
//! Each citation's cited text (and the answer text it backs) is indexed once
//! — normalised, split into words, its numbers and dates read — and each
//! field value is turned once into a [`Needle`]: the forms it may be written
//! in. [`find_in`] then says how, if at all, the value is in a text.

use chrono::NaiveDate;
use serde_json::Value;

use super::formats::{
    amount_in_string, date_in_string, dates_in, numbers_in, same_number, DateMention, NumberMention,
};
use crate::result::Citation;

// ---------------------------------------------------------------------------
// Texts, prepared once per citation
// ---------------------------------------------------------------------------

/// One citation with its texts indexed.
pub(super) struct Prepared {
    pub(super) citation: Citation,
    pub(super) cited: TextIndex,
    pub(super) answer: Option<TextIndex>,
}

impl Prepared {
    pub(super) fn new(citation: Citation, answer: Option<&str>) -> Self {
        let cited = TextIndex::new(&citation.text);
        let answer = answer.map(TextIndex::new);
        Prepared {
            citation,
            cited,
            answer,
        }
    }
}

/// A text with its normalised form, numbers, dates and words.
pub(super) struct TextIndex {
    raw: String,
    norm: String,
    numbers: Vec<NumberMention>,
    dates: Vec<DateMention>,
    pub(super) words: Vec<String>,
}

impl TextIndex {
    fn new(text: &str) -> Self {
        TextIndex {
            raw: text.to_string(),
            norm: normalize(text),
            numbers: numbers_in(text),
            dates: dates_in(text),
            words: words(text),
        }
    }
}

/// Lower case, typographic quotes and dashes made plain, whitespace runs
/// collapsed to one space.
fn normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        let c = match c {
            '\u{2018}' | '\u{2019}' | '\u{201a}' | '\u{2032}' => '\'',
            '\u{201c}' | '\u{201d}' | '\u{201e}' | '\u{00ab}' | '\u{00bb}' => '"',
            '\u{2010}'..='\u{2015}' | '\u{2212}' => '-',
            c if c.is_whitespace() => ' ',
            c => c,
        };
        if c == ' ' {
            if !space && !out.is_empty() {
                out.push(' ');
            }
            space = true;
            continue;
        }
        space = false;
        out.extend(c.to_lowercase());
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

/// Lower-case words, split on anything not a letter or digit and at
/// camelCase boundaries.
pub(super) fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in s.chars() {
        if c.is_alphanumeric() {
            if c.is_uppercase() && prev_lower && !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = c.is_lowercase() || c.is_ascii_digit();
            cur.extend(c.to_lowercase());
        } else {
            prev_lower = false;
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

// ---------------------------------------------------------------------------
// Field values
// ---------------------------------------------------------------------------

/// What to look for, for one field value.
pub(super) struct Needle {
    /// The value as written in the answer (for reasons).
    pub(super) shown: String,
    /// Normalised string forms, looked up at word boundaries.
    texts: Vec<String>,
    /// The words of a multi-word string.
    words: Vec<String>,
    /// Numeric values, and whether the value was written as a percentage.
    numbers: Vec<f64>,
    percent: bool,
    /// Dates.
    dates: Vec<NaiveDate>,
    /// A short, common value (`2`, `"A"`): found by value alone, it proves little.
    pub(super) short: bool,
}

impl Needle {
    pub(super) fn of(v: &Value) -> Option<Needle> {
        match v {
            Value::String(s) => {
                let trimmed = s.trim();
                if trimmed.is_empty() {
                    return None;
                }
                let unquoted = trimmed
                    .trim_matches(|c| {
                        matches!(
                            c,
                            '"' | '\'' | '\u{201c}' | '\u{201d}' | '\u{2018}' | '\u{2019}'
                        )
                    })
                    .trim();
                let mut texts = vec![normalize(trimmed)];
                if !unquoted.is_empty() && unquoted != trimmed {
                    texts.push(normalize(unquoted));
                }
                let (numbers, percent) = amount_in_string(unquoted).unwrap_or_default();
                let dates = date_in_string(unquoted);
                let value_words: Vec<String> = words(unquoted)
                    .into_iter()
                    .filter(|w| w.chars().count() >= 2)
                    .collect();
                let short = unquoted.chars().filter(|c| c.is_alphanumeric()).count() < 3
                    || (numbers.iter().all(|n| n.fract() == 0.0 && n.abs() < 100.0)
                        && !numbers.is_empty()
                        && value_words.len() <= 1);
                Some(Needle {
                    shown: trimmed.to_string(),
                    texts,
                    words: if value_words.len() >= 2 {
                        value_words
                    } else {
                        Vec::new()
                    },
                    numbers,
                    percent,
                    dates,
                    short,
                })
            }
            Value::Number(n) => {
                let f = n.as_f64()?;
                Some(Needle {
                    shown: n.to_string(),
                    texts: Vec::new(),
                    words: Vec::new(),
                    numbers: vec![f],
                    percent: false,
                    dates: Vec::new(),
                    short: f.fract() == 0.0 && f.abs() < 100.0,
                })
            }
            _ => None,
        }
    }
}

/// How a value was found in one text.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Found {
    /// The string, exactly as written in the answer.
    Exact,
    /// The string, ignoring case, spacing and quotes.
    Text,
    /// The same number written differently.
    Number(String),
    /// The same number as a percentage (`0.12` ~ `12%`) or back.
    Percent(String),
    /// The same day written differently.
    Date(String),
    /// Most of the words of a multi-word string.
    Words(usize, usize),
}

impl Found {
    /// How much this finding proves, 0..=1.
    pub(super) fn strength(&self) -> f64 {
        match self {
            Found::Exact | Found::Text | Found::Number(_) | Found::Date(_) => 1.0,
            Found::Percent(_) => 0.8,
            Found::Words(..) => 0.6,
        }
    }

    pub(super) fn describe(&self) -> String {
        match self {
            Found::Exact => "exactly".into(),
            Found::Text => "ignoring case and spacing".into(),
            Found::Number(w) => format!("as the number '{w}'"),
            Found::Percent(w) => format!("as the percentage '{w}'"),
            Found::Date(w) => format!("as the date '{w}'"),
            Found::Words(n, of) => format!("by {n} of its {of} words"),
        }
    }
}

pub(super) fn find_in(needle: &Needle, text: &TextIndex) -> Option<Found> {
    for t in &needle.texts {
        if contains_at_boundary(&text.norm, t) {
            let exact = text.raw.contains(needle.shown.as_str());
            return Some(if exact { Found::Exact } else { Found::Text });
        }
    }
    for n in &needle.numbers {
        if let Some(m) = text
            .numbers
            .iter()
            .find(|m| same_number(*n, m.value) && (m.percent || !needle.percent))
        {
            return Some(Found::Number(m.written.clone()));
        }
    }
    for n in &needle.numbers {
        let as_percent = |m: &NumberMention| {
            (m.percent && !needle.percent && same_number(*n * 100.0, m.value))
                || (!m.percent && needle.percent && same_number(*n / 100.0, m.value))
        };
        if let Some(m) = text.numbers.iter().find(|m| as_percent(m)) {
            return Some(Found::Percent(format!("{}%", m.written)));
        }
    }
    for d in &needle.dates {
        if let Some(m) = text.dates.iter().find(|m| m.date == *d) {
            return Some(Found::Date(m.written.clone()));
        }
    }
    if needle.words.len() >= 2 {
        let hits = needle
            .words
            .iter()
            .filter(|w| {
                text.words.iter().any(|t| {
                    t == *w
                        || (t.len() >= 3
                            && w.len() >= 3
                            && (w.starts_with(t.as_str()) || t.starts_with(w.as_str())))
                })
            })
            .count();
        if hits * 4 >= needle.words.len() * 3 {
            return Some(Found::Words(hits, needle.words.len()));
        }
    }
    None
}

/// Whether `needle` occurs in `hay` with no letter or digit glued to either end.
fn contains_at_boundary(hay: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return false;
    }
    let mut from = 0;
    while let Some(rel) = hay[from..].find(needle) {
        let at = from + rel;
        let end = at + needle.len();
        let before_ok = hay[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric())
            || !needle.chars().next().is_some_and(char::is_alphanumeric);
        let after_ok = hay[end..]
            .chars()
            .next()
            .is_none_or(|c| !c.is_alphanumeric())
            || !needle
                .chars()
                .next_back()
                .is_some_and(char::is_alphanumeric);
        if before_ok && after_ok {
            return true;
        }
        from = at + hay[at..].chars().next().map_or(1, char::len_utf8);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries() {
        assert!(contains_at_boundary("total: acme corp.", "acme corp"));
        assert!(!contains_at_boundary("acmes corp", "acme"));
        assert!(contains_at_boundary("(\"net 30\")", "\"net 30\""));
    }
}
