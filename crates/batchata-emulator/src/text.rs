//! Finding field values in the input text, and cutting text into sentences.
//!
//! Structured replies should be useful, not just valid: if a document says
//! `Invoice number: INV-001` and the schema has a property `invoice_number`,
//! the reply should say `"INV-001"`. This module holds the texts a request
//! provides ([`Corpus`]), finds "label: value" patterns for a field name, and
//! splits text into sentence chunks for citations. All offsets are byte
//! offsets into the source text; callers convert to characters when needed.

/// Where a piece of source text came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Part `part` (page, content block, or 0 for plain text) of document `index`.
    Document {
        /// 0-based index among the request's documents.
        index: usize,
        /// Page index (PDF), block index (content document) or 0.
        part: usize,
    },
    /// Text the user wrote in a message.
    Prompt,
}

/// One searchable text.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub(crate) text: String,
    lower: String,
    pub(crate) origin: Origin,
}

/// A value found in a source: `text[start..end]` of `sources[source]`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Found {
    /// The schema property the value was found for.
    pub(crate) field: String,
    pub(crate) source: usize,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// All searchable texts of one request, documents first.
#[derive(Debug, Clone, Default)]
pub(crate) struct Corpus {
    pub(crate) sources: Vec<Source>,
}

/// A location of a value: (source index, start byte, end byte).
pub(crate) type Span = (usize, usize, usize);

impl Corpus {
    /// Adds a text.
    pub(crate) fn push(&mut self, text: String, origin: Origin) {
        let lower = text.to_ascii_lowercase();
        self.sources.push(Source {
            text,
            lower,
            origin,
        });
    }

    /// The text of a span.
    pub(crate) fn slice(&self, span: Span) -> &str {
        &self.sources[span.0].text[span.1..span.2]
    }

    /// Every place a label for `name` occurs: `(source, label end)`, in
    /// source order.
    fn labels(&self, name: &str) -> Vec<(usize, usize)> {
        let words = name_words(name);
        let Some(first) = words.first() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (si, src) in self.sources.iter().enumerate() {
            let low = src.lower.as_bytes();
            for (at, _) in src.lower.match_indices(first.as_str()) {
                if at > 0 && low[at - 1].is_ascii_alphanumeric() {
                    continue;
                }
                if let Some(end) = match_label(low, at, &words) {
                    out.push((si, end));
                }
            }
        }
        out
    }

    /// The text value after a label for `name` ("Invoice number: INV-001").
    pub(crate) fn find_text(&self, name: &str) -> Option<Span> {
        self.labels(name).into_iter().find_map(|(si, end)| {
            let text = self.sources[si].text.as_bytes();
            let (start, had_sep) = value_start(text, end);
            if !had_sep {
                return None;
            }
            text_value_end(text, start).map(|e| (si, start, e))
        })
    }

    /// The number after a label for `name` ("Total: 1,234.50" → 1234.5).
    pub(crate) fn find_number(&self, name: &str) -> Option<(Span, f64)> {
        self.labels(name).into_iter().find_map(|(si, end)| {
            let text = self.sources[si].text.as_bytes();
            let (start, had_sep) = value_start(text, end);
            number_after(text, start, had_sep).map(|(s, e, v)| ((si, s, e), v))
        })
    }

    /// The yes/no after a label for `name`.
    pub(crate) fn find_bool(&self, name: &str) -> Option<(Span, bool)> {
        self.labels(name).into_iter().find_map(|(si, end)| {
            let text = self.sources[si].text.as_bytes();
            let (start, had_sep) = value_start(text, end);
            if !had_sep {
                return None;
            }
            let mut e = start;
            while e < text.len() && text[e].is_ascii_alphabetic() {
                e += 1;
            }
            let word = std::str::from_utf8(&text[start..e])
                .ok()?
                .to_ascii_lowercase();
            let value = match word.as_str() {
                "yes" | "true" | "y" | "x" | "checked" | "paid" => true,
                "no" | "false" | "n" | "none" | "unchecked" | "unpaid" => false,
                _ => return None,
            };
            Some(((si, start, e), value))
        })
    }
}

/// Splits a field name into lowercase words: `invoiceNumber`, `invoice_number`
/// and `Invoice Number` all give `["invoice", "number"]`.
pub(crate) fn name_words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if !c.is_ascii_alphanumeric() {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower && !cur.is_empty() {
            words.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        cur.push(c.to_ascii_lowercase());
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// Matches `words` at `at` in lowercase text, allowing short runs of
/// separators (space, `_`, `-`, `.`) or nothing between words. Returns the
/// end of the label.
fn match_label(low: &[u8], at: usize, words: &[String]) -> Option<usize> {
    let mut pos = at;
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            let mut k = 0;
            while k < 3 && pos < low.len() && matches!(low[pos], b' ' | b'_' | b'-' | b'.') {
                pos += 1;
                k += 1;
            }
        }
        if !low[pos..].starts_with(w.as_bytes()) {
            return None;
        }
        pos += w.len();
    }
    if pos < low.len() && low[pos].is_ascii_alphanumeric() {
        return None;
    }
    Some(pos)
}

/// Skips from a label's end to where its value starts. Reports whether a
/// separator (`:`, `=`, `#`, or the word "is") was seen.
fn value_start(text: &[u8], mut pos: usize) -> (usize, bool) {
    let skip = |pos: &mut usize| {
        while *pos < text.len() && matches!(text[*pos], b' ' | b'\t' | b'"' | b'\'' | b'*' | b')') {
            *pos += 1;
        }
    };
    skip(&mut pos);
    let mut had_sep = false;
    if pos < text.len() && matches!(text[pos], b':' | b'=' | b'#') {
        pos += 1;
        had_sep = true;
    } else if text[pos..].len() >= 3 && text[pos..pos + 3].eq_ignore_ascii_case(b"is ") {
        pos += 3;
        had_sep = true;
    }
    while pos < text.len() && matches!(text[pos], b' ' | b'\t' | b'"' | b'\'' | b'*') {
        pos += 1;
    }
    (pos, had_sep)
}

/// Where a text value starting at `start` ends; `None` if it is empty or
/// looks like structure (`{`, `[`) rather than a value.
fn text_value_end(text: &[u8], start: usize) -> Option<usize> {
    if start >= text.len() || matches!(text[start], b'{' | b'[' | b'\n' | b'\r') {
        return None;
    }
    let mut end = start;
    while end < text.len() && !matches!(text[end], b'\n' | b'\r' | b';' | b'|' | b'"' | b'\t') {
        end += 1;
    }
    // "INV-001, Total: 40" → cut before ", Total:".
    let mut i = start;
    while i < end {
        if text[i] == b',' && looks_like_label(&text[i + 1..end]) {
            end = i;
            break;
        }
        i += 1;
    }
    // At most 300 bytes, on a character boundary.
    if end - start > 300 {
        end = start + 300;
        while end > start && (text[end] & 0xC0) == 0x80 {
            end -= 1;
        }
    }
    while end > start && matches!(text[end - 1], b' ' | b'.' | b',' | b'*' | b'\'') {
        end -= 1;
    }
    (end > start).then_some(end)
}

/// Whether `rest` starts with " Some Label:" (a few words then a colon).
fn looks_like_label(rest: &[u8]) -> bool {
    let mut i = 0;
    while i < rest.len() && rest[i] == b' ' {
        i += 1;
    }
    let start = i;
    while i < rest.len()
        && i - start <= 40
        && (rest[i].is_ascii_alphanumeric() || matches!(rest[i], b' ' | b'_' | b'-'))
    {
        i += 1;
    }
    i > start && i < rest.len() && rest[i] == b':' && rest[start].is_ascii_alphabetic()
}

/// The first number after `start` on the same line (within 40 bytes).
/// Without a separator, only spaces and currency marks may precede it.
fn number_after(text: &[u8], start: usize, had_sep: bool) -> Option<(usize, usize, f64)> {
    let limit = (start + 40).min(text.len());
    let mut i = start;
    while i < limit {
        let c = text[i];
        if c == b'\n' || c == b'\r' {
            return None;
        }
        let neg = c == b'-' && text.get(i + 1).is_some_and(u8::is_ascii_digit);
        if c.is_ascii_digit() || neg {
            return parse_number(text, i);
        }
        if !had_sep && !matches!(c, b' ' | b'$' | b'\t' | b'(') && c.is_ascii() {
            return None;
        }
        i += 1;
    }
    None
}

/// Parses `-1,234.50`-style numbers at `start`.
fn parse_number(text: &[u8], start: usize) -> Option<(usize, usize, f64)> {
    let mut i = start;
    let mut digits = String::new();
    if text[i] == b'-' {
        digits.push('-');
        i += 1;
    }
    let mut seen_dot = false;
    while i < text.len() {
        let c = text[i];
        if c.is_ascii_digit() {
            digits.push(c as char);
            i += 1;
        } else if c == b','
            && !seen_dot
            && text.len() >= i + 4
            && text[i + 1..i + 4].iter().all(u8::is_ascii_digit)
            && !text.get(i + 4).is_some_and(u8::is_ascii_digit)
        {
            i += 1; // thousands separator
        } else if c == b'.' && !seen_dot && text.get(i + 1).is_some_and(u8::is_ascii_digit) {
            seen_dot = true;
            digits.push('.');
            i += 1;
        } else {
            break;
        }
    }
    let value: f64 = digits.parse().ok()?;
    value.is_finite().then_some((start, i, value))
}

/// Splits text into sentence chunks `(start, end)` (bytes) that cover it
/// completely: a chunk ends after `.`, `!` or `?` followed by whitespace, or
/// at a line break, and keeps its trailing whitespace.
pub(crate) fn sentences(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let ends = c == b'\n'
            || (matches!(c, b'.' | b'!' | b'?')
                && (i + 1 == b.len() || b[i + 1].is_ascii_whitespace()));
        i += 1;
        if ends {
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            out.push((start, i));
            start = i;
        }
    }
    if start < b.len() {
        out.push((start, b.len()));
    }
    out
}

/// The smallest run of whole sentences of `text` covering `start..end`.
pub(crate) fn sentence_around(text: &str, start: usize, end: usize) -> (usize, usize) {
    let chunks = sentences(text);
    let first = chunks.iter().find(|c| c.1 > start).copied();
    let last = chunks.iter().find(|c| c.1 >= end).copied();
    match (first, last) {
        (Some(f), Some(l)) => (f.0, l.1.max(f.1)),
        _ => (0, text.len()),
    }
}

/// Character index of byte offset `byte` in `text`.
pub(crate) fn char_index(text: &str, byte: usize) -> usize {
    text[..byte].chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(texts: &[&str]) -> Corpus {
        let mut c = Corpus::default();
        for (i, t) in texts.iter().enumerate() {
            c.push(t.to_string(), Origin::Document { index: i, part: 0 });
        }
        c
    }

    #[test]
    fn words_from_names() {
        assert_eq!(name_words("invoice_number"), ["invoice", "number"]);
        assert_eq!(name_words("invoiceNumber"), ["invoice", "number"]);
        assert_eq!(name_words("Total Amount"), ["total", "amount"]);
        assert_eq!(name_words("vat2"), ["vat2"]);
    }

    #[test]
    fn finds_text_after_label() {
        let c = corpus(&[
            "Extract the invoice number please.\nInvoice number: INV-001\nTotal: 1,234.50 EUR",
        ]);
        let span = c.find_text("invoice_number").unwrap();
        assert_eq!(c.slice(span), "INV-001");
        let (span, v) = c.find_number("total").unwrap();
        assert_eq!(v, 1234.5);
        assert_eq!(c.slice(span), "1,234.50");
        assert!(c.find_text("customer").is_none());
    }

    #[test]
    fn cuts_before_next_label_and_trailing_dot() {
        let c = corpus(&["Customer: ACME Corp., Due date: 2024-05-01."]);
        assert_eq!(c.slice(c.find_text("customer").unwrap()), "ACME Corp");
        assert_eq!(c.slice(c.find_text("due_date").unwrap()), "2024-05-01");
    }

    #[test]
    fn numbers_and_bools() {
        let c = corpus(&["Quantity 12 units\nPaid: yes\nBalance: -3.5"]);
        assert_eq!(c.find_number("quantity").unwrap().1, 12.0);
        assert!(c.find_bool("paid").unwrap().1);
        assert_eq!(c.find_number("balance").unwrap().1, -3.5);
    }

    #[test]
    fn sentences_cover_the_text() {
        let t = "Revenue grew 12%. Costs fell!\nNew line here";
        let s = sentences(t);
        assert_eq!(s, vec![(0, 18), (18, 30), (30, 43)]);
        assert_eq!(&t[s[0].0..s[0].1], "Revenue grew 12%. ");
        let (a, b) = sentence_around(t, 20, 25);
        assert_eq!(&t[a..b], "Costs fell!\n");
    }
}
