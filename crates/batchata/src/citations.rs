//! Citation-to-field mapping: for each field of a structured answer, the
//! citations that back its value.
//!
//! Anthropic returns citations per passage of the answer text, not per field
//! of the JSON the answer holds. To say which passage backs `total` or
//! `line_items[2].amount`, every scalar field of the parsed answer (flat and
//! nested, through objects and arrays) is looked up in each citation's cited
//! text and in the answer text the citation is attached to (the provider
//! stores it at `metadata["answer_text"]`; it may be absent).
//!
//! Values are matched in the forms documents write them:
//! * strings case-insensitively, with whitespace and typographic quotes
//!   normalised, surrounding quotes ignored, and only at word boundaries;
//!   multi-word strings also by their words (`Acme Corporation` ~ `ACME Corp.`);
//! * numbers by value, whatever the writing: currency signs and codes,
//!   thousands separators (`1,250.00`, `1.250,00`, `1'250`), decimals or
//!   none, percentages (`0.12` ~ `12%`);
//! * dates by day: ISO (`2024-03-15`), long (`March 15, 2024`,
//!   `15 March 2024`), short (`Mar 15, 2024`, `15-Mar-24`) and numeric in
//!   either order (`03/15/2024`, `15.03.2024`).
//!
//! A citation whose text holds the value is then scored by how well the
//! field's name matches the words around it (exact words, partial words,
//! small edit distance), giving a confidence — high, medium or low — and a
//! `match_reason` saying why. Each field keeps the citations of its best
//! confidence level, best first. When more than half the fields found no
//! citation, the mapping carries a warning. Booleans are not looked up: a
//! document does not write `true`.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use chrono::NaiveDate;
use regex::Regex;
use serde_json::Value;

use crate::result::Citation;

/// Field path → citations, plus warnings for the user.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mapping {
    /// Field path (`vendor.name`, `line_items[2].amount`) → backing
    /// citations, best first, each with `confidence` and `match_reason` set.
    pub fields: BTreeMap<String, Vec<Citation>>,
    /// Paths of the fields that were looked up and found no citation.
    pub unmapped: Vec<String>,
    /// E.g. when more than half the fields found no citation.
    pub warnings: Vec<String>,
}

/// How sure a field-to-citation match is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Confidence {
    /// A weak hint: the value is only in the answer text, or only some of its words match.
    Low,
    /// The value is in the cited text but the field's name is not near it,
    /// or the value is in the answer text and the name matches.
    Medium,
    /// The value is in the cited text and the field's name matches the text around it.
    High,
}

impl Confidence {
    /// `"high"`, `"medium"` or `"low"`, as stored in `Citation::confidence`.
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::High => "high",
            Confidence::Medium => "medium",
            Confidence::Low => "low",
        }
    }

    fn of_score(score: f64) -> Confidence {
        if score >= 0.85 {
            Confidence::High
        } else if score >= 0.55 {
            Confidence::Medium
        } else {
            Confidence::Low
        }
    }
}

/// Most citations kept per field.
const MAX_PER_FIELD: usize = 5;
/// Most unmapped paths named in the warning.
const MAX_NAMED: usize = 8;

/// Every scalar leaf of `value` with its path (`vendor.name`,
/// `line_items[2].amount`; keys that are not plain words are quoted:
/// `totals["net.eur"]`). `null`s are skipped; a scalar root has path `""`.
pub fn leaves(value: &Value) -> Vec<(String, Value)> {
    fn walk(v: &Value, path: String, out: &mut Vec<(String, Value)>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    walk(x, join_key(&path, k), out);
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    walk(x, format!("{path}[{i}]"), out);
                }
            }
            Value::Null => {}
            other => out.push((path, other.clone())),
        }
    }
    let mut out = Vec::new();
    walk(value, String::new(), &mut out);
    out
}

fn join_key(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == ' ');
    match (path.is_empty(), plain) {
        (true, true) => key.to_string(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{}]", Value::String(key.to_string())),
    }
}

/// Maps each field of `value` to the citations backing it; see the module
/// documentation for how values are matched and scored.
pub fn map_fields(value: &Value, citations: &[Citation]) -> Mapping {
    let mut mapping = Mapping::default();
    let prepared: Vec<Prepared> = dedupe(citations)
        .into_iter()
        .map(|(c, answer)| Prepared::new(c, answer.as_deref()))
        .collect();
    let mut looked_up = 0usize;
    for (path, leaf) in leaves(value) {
        let Some(needle) = Needle::of(&leaf) else {
            continue;
        };
        looked_up += 1;
        let names = FieldName::of_path(&path);
        let mut found: Vec<(f64, Citation)> = Vec::new();
        for p in &prepared {
            if let Some((score, reason)) = score(&needle, &names, p) {
                let confidence = Confidence::of_score(score);
                found.push((
                    score,
                    Citation {
                        confidence: Some(confidence.as_str().to_string()),
                        match_reason: Some(reason),
                        ..p.citation.clone()
                    },
                ));
            }
        }
        if found.is_empty() {
            mapping.unmapped.push(display_path(&path));
            continue;
        }
        found.sort_by(|a, b| b.0.total_cmp(&a.0));
        let best = Confidence::of_score(found[0].0);
        let kept: Vec<Citation> = found
            .into_iter()
            .filter(|(s, _)| Confidence::of_score(*s) == best)
            .take(MAX_PER_FIELD)
            .map(|(_, c)| c)
            .collect();
        mapping.fields.insert(display_path(&path), kept);
    }
    let missing = mapping.unmapped.len();
    if looked_up > 0 && missing * 2 > looked_up {
        let mut named: Vec<&str> = mapping
            .unmapped
            .iter()
            .take(MAX_NAMED)
            .map(String::as_str)
            .collect();
        if missing > MAX_NAMED {
            named.push("…");
        }
        mapping.warnings.push(format!(
            "citations: {missing} of {looked_up} fields found no citation backing their value ({}); \
             check those values against the document",
            named.join(", ")
        ));
    }
    mapping
}

fn display_path(path: &str) -> String {
    if path.is_empty() {
        "value".to_string()
    } else {
        path.to_string()
    }
}

/// Drops repeated citations (the same passage attached to several pieces of
/// the answer), keeping the first as it is, with the answer texts of all its
/// repeats gathered for scoring.
fn dedupe(citations: &[Citation]) -> Vec<(Citation, Option<String>)> {
    let mut out: Vec<(Citation, Option<String>)> = Vec::with_capacity(citations.len());
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(citations.len());
    for c in citations {
        let mut meta = c.metadata.clone();
        if let Some(Value::Object(m)) = meta.as_mut() {
            m.remove("answer_text");
        }
        let key = serde_json::json!([c.text, c.source, c.page, meta]).to_string();
        let answer = answer_text(c).map(str::to_string);
        match seen.get(&key) {
            Some(&i) => {
                if let Some(extra) = answer {
                    let joined = match out[i].1.take() {
                        Some(prev) if prev.contains(&extra) => prev,
                        Some(prev) => format!("{prev}\n{extra}"),
                        None => extra,
                    };
                    out[i].1 = Some(joined);
                }
            }
            None => {
                seen.insert(key, out.len());
                out.push((c.clone(), answer));
            }
        }
    }
    out
}

fn answer_text(c: &Citation) -> Option<&str> {
    c.metadata
        .as_ref()?
        .get("answer_text")?
        .as_str()
        .filter(|s| !s.trim().is_empty())
}

// ---------------------------------------------------------------------------
// Texts, prepared once per citation
// ---------------------------------------------------------------------------

/// One citation with its texts indexed.
struct Prepared {
    citation: Citation,
    cited: TextIndex,
    answer: Option<TextIndex>,
}

impl Prepared {
    fn new(citation: Citation, answer: Option<&str>) -> Self {
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
struct TextIndex {
    raw: String,
    norm: String,
    numbers: Vec<NumberMention>,
    dates: Vec<DateMention>,
    words: Vec<String>,
}

struct NumberMention {
    value: f64,
    written: String,
    percent: bool,
}

struct DateMention {
    date: NaiveDate,
    written: String,
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
fn words(s: &str) -> Vec<String> {
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
// Numbers
// ---------------------------------------------------------------------------

fn number_token_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\d(?:[\d.,']*\d)?").expect("static regex compiles"))
}

/// The values a written number token may mean: `1,234` is 1234 (US
/// thousands) or 1.234 (European decimal comma); `1.250,00` is 1250.
fn token_values(token: &str) -> Vec<f64> {
    let t: String = token.chars().filter(|c| *c != '\'').collect();
    let commas = t.matches(',').count();
    let dots = t.matches('.').count();
    let parse = |s: &str| s.parse::<f64>().ok();
    let grouped = |s: &str, sep: char| {
        let mut parts = s.split(sep);
        let first_ok = parts.next().is_some_and(|p| (1..=3).contains(&p.len()));
        first_ok && parts.all(|p| p.len() == 3)
    };
    let mut out = Vec::new();
    match (commas, dots) {
        (0, 0) => out.extend(parse(&t)),
        (_, 0) => {
            if grouped(&t, ',') {
                out.extend(parse(&t.replace(',', "")));
            }
            if commas == 1 {
                out.extend(parse(&t.replace(',', ".")));
            }
        }
        (0, _) => {
            if dots == 1 {
                out.extend(parse(&t));
            }
            if grouped(&t, '.') {
                out.extend(parse(&t.replace('.', "")));
            }
        }
        _ => {
            // Both: the later separator is the decimal one.
            let last_comma = t.rfind(',').unwrap_or(0);
            let last_dot = t.rfind('.').unwrap_or(0);
            let (thousands, decimal) = if last_dot > last_comma {
                (',', '.')
            } else {
                ('.', ',')
            };
            if t.matches(decimal).count() == 1 {
                let (int, frac) = t.split_at(t.rfind(decimal).unwrap_or(t.len()));
                if grouped(int, thousands) || !int.contains(thousands) {
                    let plain = format!("{}.{}", int.replace(thousands, ""), &frac[1..]);
                    out.extend(parse(&plain));
                }
            }
        }
    }
    out.dedup();
    out
}

fn numbers_in(text: &str) -> Vec<NumberMention> {
    let mut out = Vec::new();
    for m in number_token_re().find_iter(text) {
        // Skip digits glued to letters (`INV2024`, `A4`): identifiers, not amounts.
        let before = text[..m.start()].chars().next_back();
        if before.is_some_and(|c| c.is_alphabetic()) {
            continue;
        }
        let after = text[m.end()..].trim_start();
        let percent = after.starts_with('%');
        for value in token_values(m.as_str()) {
            out.push(NumberMention {
                value,
                written: m.as_str().to_string(),
                percent,
            });
        }
    }
    out
}

/// Currency codes and words accepted around an amount in a string value.
const CURRENCY_CODES: &[&str] = &[
    "usd", "eur", "gbp", "jpy", "chf", "cad", "aud", "nzd", "cny", "rmb", "inr", "sek", "nok",
    "dkk", "pln", "czk", "huf", "ron", "rub", "brl", "mxn", "zar", "sgd", "hkd", "krw", "try",
    "ils", "aed", "sar", "kr", "fr", "zł", "us", "dollars", "euros", "pounds",
];

/// A string that is a written amount (`$1,250.00`, `EUR 1.250,00`, `-12%`):
/// its possible values, and whether it was a percentage.
fn amount_in_string(s: &str) -> Option<(Vec<f64>, bool)> {
    let tokens: Vec<_> = number_token_re().find_iter(s).collect();
    let [token] = tokens.as_slice() else {
        return None;
    };
    let mut before = s[..token.start()].trim_end();
    // A sign only right before the digits (`-12`, `$-5`), not `INV-7`.
    if let Some(b) = before.strip_suffix(['-', '+']) {
        if b.ends_with(|c: char| c.is_alphanumeric()) {
            return None;
        }
        before = b;
    }
    let rest = format!("{before} {}", &s[token.end()..]);
    let percent = rest.contains('%');
    let symbols_ok = rest.chars().all(|c| {
        c.is_whitespace()
            || c.is_alphabetic()
            || matches!(
                c,
                '$' | '€' | '£' | '¥' | '₹' | '₩' | '₽' | '¢' | '%' | '(' | ')' | '.'
            )
    });
    let words_ok = words(&rest)
        .iter()
        .all(|w| CURRENCY_CODES.contains(&w.as_str()));
    if !(symbols_ok && words_ok) {
        return None;
    }
    let values = token_values(token.as_str());
    (!values.is_empty()).then_some((values, percent))
}

fn same_number(a: f64, b: f64) -> bool {
    (a.abs() - b.abs()).abs() <= 1e-9 * a.abs().max(1.0)
}

// ---------------------------------------------------------------------------
// Dates
// ---------------------------------------------------------------------------

const MONTHS: &str = r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?";

struct DateRes {
    iso: Regex,
    numeric: Regex,
    day_month: Regex,
    month_day: Regex,
}

fn date_res() -> &'static DateRes {
    static RES: OnceLock<DateRes> = OnceLock::new();
    RES.get_or_init(|| DateRes {
        iso: Regex::new(r"\b(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})\b").expect("static regex compiles"),
        numeric: Regex::new(r"\b(\d{1,2})[-/.](\d{1,2})[-/.](\d{4}|\d{2})\b")
            .expect("static regex compiles"),
        day_month: Regex::new(&format!(
            r"(?i)\b(\d{{1,2}})(?:st|nd|rd|th)?(?:\s+of)?[\s\-]+{MONTHS},?[\s\-]+(\d{{4}}|\d{{2}})\b"
        ))
        .expect("static regex compiles"),
        month_day: Regex::new(&format!(
            r"(?i)\b{MONTHS}[\s\-]+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b"
        ))
        .expect("static regex compiles"),
    })
}

fn month_number(name: &str) -> Option<u32> {
    let n = name.to_lowercase();
    let months = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    months
        .iter()
        .position(|m| n.starts_with(m))
        .map(|i| i as u32 + 1)
}

fn full_year(y: &str) -> Option<i32> {
    let n: i32 = y.parse().ok()?;
    Some(match y.len() {
        2 if n < 70 => 2000 + n,
        2 => 1900 + n,
        _ => n,
    })
}

/// Every date written in `text`, with both readings of ambiguous numeric
/// dates (`03/04/2024` is March 4 or April 3).
fn dates_in(text: &str) -> Vec<DateMention> {
    let res = date_res();
    let mut out = Vec::new();
    let mut push = |y: Option<i32>, m: Option<u32>, d: Option<u32>, written: &str| {
        if let (Some(y), Some(m), Some(d)) = (y, m, d) {
            if let Some(date) = NaiveDate::from_ymd_opt(y, m, d) {
                if !out
                    .iter()
                    .any(|x: &DateMention| x.date == date && x.written == written)
                {
                    out.push(DateMention {
                        date,
                        written: written.to_string(),
                    });
                }
            }
        }
    };
    let num = |s: &str| s.parse::<u32>().ok();
    for c in res.iso.captures_iter(text) {
        push(full_year(&c[1]), num(&c[2]), num(&c[3]), &c[0]);
    }
    for c in res.numeric.captures_iter(text) {
        let (a, b, y) = (num(&c[1]), num(&c[2]), full_year(&c[3]));
        push(y, a, b, &c[0]);
        push(y, b, a, &c[0]);
    }
    for c in res.day_month.captures_iter(text) {
        push(full_year(&c[3]), month_number(&c[2]), num(&c[1]), &c[0]);
    }
    for c in res.month_day.captures_iter(text) {
        push(full_year(&c[3]), month_number(&c[1]), num(&c[2]), &c[0]);
    }
    out
}

/// The dates a string value means, when the string is just a date.
fn date_in_string(s: &str) -> Vec<NaiveDate> {
    let trimmed = s.trim();
    let mentions = dates_in(trimmed);
    let Some(first) = mentions.first() else {
        return Vec::new();
    };
    // The date must be (nearly) the whole value: a weekday or punctuation may remain.
    let rest = trimmed.replacen(&first.written, "", 1);
    let leftover: Vec<String> = words(&rest)
        .into_iter()
        .filter(|w| {
            ![
                "mon",
                "tue",
                "wed",
                "thu",
                "fri",
                "sat",
                "sun",
                "monday",
                "tuesday",
                "wednesday",
                "thursday",
                "friday",
                "saturday",
                "sunday",
                "the",
                "of",
                "on",
            ]
            .contains(&w.as_str())
        })
        .collect();
    if !leftover.is_empty() {
        return Vec::new();
    }
    mentions
        .iter()
        .filter(|m| m.written == first.written)
        .map(|m| m.date)
        .collect()
}

// ---------------------------------------------------------------------------
// Field values
// ---------------------------------------------------------------------------

/// What to look for, for one field value.
struct Needle {
    /// The value as written in the answer (for reasons).
    shown: String,
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
    short: bool,
}

impl Needle {
    fn of(v: &Value) -> Option<Needle> {
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
enum Found {
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
    fn strength(&self) -> f64 {
        match self {
            Found::Exact | Found::Text | Found::Number(_) | Found::Date(_) => 1.0,
            Found::Percent(_) => 0.8,
            Found::Words(..) => 0.6,
        }
    }

    fn describe(&self) -> String {
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

fn find_in(needle: &Needle, text: &TextIndex) -> Option<Found> {
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

// ---------------------------------------------------------------------------
// Field names
// ---------------------------------------------------------------------------

/// The words of a field's name, and of the object or list holding it.
struct FieldName {
    key: Vec<String>,
    parent: Vec<String>,
}

/// Words too common to say anything about which field a text is about.
const STOP_WORDS: &[&str] = &[
    "the", "of", "a", "an", "and", "or", "to", "in", "for", "on", "at", "by", "is",
];

impl FieldName {
    /// `line_items[2].unit_price` → key `unit price`, parent `line items`.
    fn of_path(path: &str) -> FieldName {
        let mut names: Vec<String> = Vec::new();
        let mut cur = String::new();
        let mut in_bracket = false;
        let mut in_quote = false;
        for c in path.chars() {
            match c {
                '"' if in_bracket => in_quote = !in_quote,
                '[' if !in_quote => {
                    in_bracket = true;
                    if !cur.is_empty() {
                        names.push(std::mem::take(&mut cur));
                    }
                }
                ']' if !in_quote => {
                    in_bracket = false;
                    // An index is not a name; a quoted key is.
                    if !cur.is_empty() && !cur.chars().all(|c| c.is_ascii_digit()) {
                        names.push(std::mem::take(&mut cur));
                    }
                    cur.clear();
                }
                '.' if !in_bracket => {
                    if !cur.is_empty() {
                        names.push(std::mem::take(&mut cur));
                    }
                }
                c => cur.push(c),
            }
        }
        if !cur.is_empty() {
            names.push(cur);
        }
        let clean = |n: Option<&String>| -> Vec<String> {
            n.map(|n| {
                words(n)
                    .into_iter()
                    .filter(|w| !STOP_WORDS.contains(&w.as_str()))
                    .collect()
            })
            .unwrap_or_default()
        };
        let key = clean(names.last());
        let parent = if names.len() >= 2 {
            clean(names.get(names.len() - 2))
        } else {
            Vec::new()
        };
        FieldName { key, parent }
    }
}

/// How one field word matched the context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum WordMatch {
    None,
    Fuzzy,
    Partial,
    Exact,
}

impl WordMatch {
    fn weight(self) -> f64 {
        match self {
            WordMatch::Exact => 1.0,
            WordMatch::Partial => 0.7,
            WordMatch::Fuzzy => 0.5,
            WordMatch::None => 0.0,
        }
    }
}

/// Two-letter abbreviations of field words that no prefix rule can find.
const ABBREVIATIONS: &[(&str, &str)] = &[
    ("no", "number"),
    ("nr", "number"),
    ("nº", "number"),
    ("id", "identifier"),
    ("dt", "date"),
];

fn word_match(word: &str, context: &[&str]) -> WordMatch {
    let mut best = WordMatch::None;
    let wl = word.chars().count();
    for c in context {
        if *c == word {
            return WordMatch::Exact;
        }
        let cl = c.chars().count();
        let singular =
            |a: &str, b: &str| a.strip_suffix('s') == Some(b) || a.strip_suffix("es") == Some(b);
        let abbreviation = ABBREVIATIONS.contains(&(*c, word))
            // `qty` ~ quantity, `amt` ~ amount, `desc` ~ description: same
            // first letter, the rest in order.
            || ((3..=4).contains(&cl) && wl >= cl + 2 && is_abbreviation(c, word));
        // `inv` ~ invoice, `description` ~ desc; at least three letters.
        let prefix = cl.min(wl) >= 3
            && ((wl > cl && word.starts_with(c)) || (cl > wl && c.starts_with(word)));
        if singular(word, c) || singular(c, word) || abbreviation || prefix {
            best = best.max(WordMatch::Partial);
            continue;
        }
        if wl >= 4 && cl >= 4 {
            let d = strsim::damerau_levenshtein(word, c);
            if d <= 1 || (wl >= 8 && d <= 2) {
                best = best.max(WordMatch::Fuzzy);
            }
        }
    }
    best
}

/// Whether `short` abbreviates `word`: same first letter, its letters in
/// order in `word`.
fn is_abbreviation(short: &str, word: &str) -> bool {
    let mut w = word.chars();
    let mut s = short.chars();
    if s.next() != w.next() {
        return false;
    }
    s.all(|c| w.any(|x| x == c))
}

/// 0..=1: how well `words` are found in `context`, and the per-word matches.
fn words_score(words: &[String], context: &[&str]) -> (f64, Vec<(String, WordMatch)>) {
    if words.is_empty() {
        return (0.0, Vec::new());
    }
    let matches: Vec<(String, WordMatch)> = words
        .iter()
        .map(|w| (w.clone(), word_match(w, context)))
        .collect();
    let total: f64 = matches.iter().map(|(_, m)| m.weight()).sum();
    (total / words.len() as f64, matches)
}

// ---------------------------------------------------------------------------
// Scoring
// ---------------------------------------------------------------------------

/// Score 0..=1 and reason of `needle` (a field named `names`) against one
/// citation; `None` when the value is in neither of its texts.
fn score(needle: &Needle, names: &FieldName, p: &Prepared) -> Option<(f64, String)> {
    let in_cited = find_in(needle, &p.cited);
    let in_answer = match (&in_cited, &p.answer) {
        (None, Some(a)) => find_in(needle, a),
        _ => None,
    };
    let (found, where_) = match (in_cited, in_answer) {
        (Some(f), _) => (f, "the cited text"),
        (None, Some(f)) => (f, "the answer text this citation backs"),
        (None, None) => return None,
    };
    let cited = where_ == "the cited text";
    let mut value_weight = if cited { 0.6 } else { 0.3 } * found.strength();
    if needle.short {
        value_weight *= 0.75;
    }
    // Field name against the words around the citation.
    let mut context: Vec<&str> = p.cited.words.iter().map(String::as_str).collect();
    if let Some(a) = &p.answer {
        context.extend(a.words.iter().map(String::as_str));
    }
    let (key_score, key_matches) = words_score(&names.key, &context);
    let (parent_score, _) = words_score(&names.parent, &context);
    let name_score = key_score
        .max((key_score + parent_score) / 2.0)
        .max(parent_score * 0.75);
    let total = (value_weight + 0.4 * name_score).min(1.0);
    let value_part = format!(
        "value '{}' found in {where_} {}",
        shorten(&needle.shown, 60),
        found.describe()
    );
    let name_part = describe_name(&key_matches, key_score, parent_score, &names.parent);
    Some((total, format!("{value_part}; {name_part}")))
}

fn describe_name(
    key_matches: &[(String, WordMatch)],
    key_score: f64,
    parent_score: f64,
    parent: &[String],
) -> String {
    if key_matches.is_empty() {
        return "the field has no name to match".into();
    }
    let name: Vec<&str> = key_matches.iter().map(|(w, _)| w.as_str()).collect();
    let name = name.join(" ");
    let mut out = if key_score >= 0.999 {
        format!("field name '{name}' appears in the text around it")
    } else if key_score > 0.0 {
        let parts: Vec<String> = key_matches
            .iter()
            .map(|(w, m)| {
                let how = match m {
                    WordMatch::Exact => "exact",
                    WordMatch::Partial => "partial",
                    WordMatch::Fuzzy => "close spelling",
                    WordMatch::None => "missing",
                };
                format!("'{w}' {how}")
            })
            .collect();
        format!("field name '{name}' partly matches ({})", parts.join(", "))
    } else {
        format!("field name '{name}' does not appear near it")
    };
    if parent_score > 0.0 && !parent.is_empty() {
        out.push_str(&format!(", within '{}'", parent.join(" ")));
    }
    out
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_tokens_read_both_ways() {
        assert_eq!(token_values("1,250.00"), vec![1250.0]);
        assert_eq!(token_values("1.250,00"), vec![1250.0]);
        assert_eq!(token_values("1,234"), vec![1234.0, 1.234]);
        assert_eq!(token_values("12,5"), vec![12.5]);
        assert_eq!(token_values("1'250.50"), vec![1250.5]);
        assert_eq!(token_values("1,234,567"), vec![1234567.0]);
    }

    #[test]
    fn amounts_in_strings() {
        assert_eq!(amount_in_string("$1,250.00"), Some((vec![1250.0], false)));
        assert_eq!(
            amount_in_string("EUR 1.250,00"),
            Some((vec![1250.0], false))
        );
        assert_eq!(amount_in_string("12%"), Some((vec![12.0], true)));
        assert_eq!(amount_in_string("Invoice 17 of 2024"), None);
    }

    #[test]
    fn field_names_from_paths() {
        let f = FieldName::of_path("line_items[2].unitPrice");
        assert_eq!(f.key, vec!["unit", "price"]);
        assert_eq!(f.parent, vec!["line", "items"]);
        let f = FieldName::of_path("tags[1]");
        assert_eq!(f.key, vec!["tags"]);
        let f = FieldName::of_path(r#"totals["net.eur"]"#);
        assert_eq!(f.key, vec!["net", "eur"]);
    }

    #[test]
    fn boundaries() {
        assert!(contains_at_boundary("total: acme corp.", "acme corp"));
        assert!(!contains_at_boundary("acmes corp", "acme"));
        assert!(contains_at_boundary("(\"net 30\")", "\"net 30\""));
    }
}
