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
//!
//! # Where things are
//!
//! * this file — the [`Mapping`] and its walk: every leaf of the answer,
//!   looked up in every citation, the best kept;
//! * `matching.rs` — whether a citation's texts hold a value, and in which
//!   form (the texts indexed once per citation);
//! * `formats.rs` — the numbers and dates a text writes, in the forms
//!   documents use;
//! * `scoring.rs` — how strongly a found value backs the field, from where it
//!   was found and how well the field's name matches the words around it.

mod formats;
mod matching;
mod scoring;

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::result::Citation;
pub use crate::result::Confidence;
use matching::{Needle, Prepared};
use scoring::{confidence_of, score, FieldName};

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
                found.push((
                    score,
                    Citation {
                        confidence: Some(confidence_of(score)),
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
        let best = confidence_of(found[0].0);
        let kept: Vec<Citation> = found
            .into_iter()
            .filter(|(s, _)| confidence_of(*s) == best)
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

impl Mapping {
    /// Gives each of `citations` (the answer's own list) the best
    /// confidence its passage got for any field, so a result shows one
    /// passage with the same confidence in `citations` as in
    /// `citation_mappings`; a passage that backs no field gets `None`.
    /// Repeats of a passage (the same passage cited for several pieces of
    /// the answer) are recognised as [`map_fields`] recognises them.
    pub fn mark_best_confidence(&self, citations: &mut [Citation]) {
        let mut best: HashMap<String, Confidence> = HashMap::new();
        for c in self.fields.values().flatten() {
            if let Some(confidence) = c.confidence {
                let e = best.entry(passage_key(c)).or_insert(confidence);
                *e = (*e).max(confidence);
            }
        }
        for c in citations {
            c.confidence = best.get(&passage_key(c)).copied();
        }
    }
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
        let key = passage_key(c);
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

/// What makes two citations the same passage: text, source, page and
/// metadata, apart from the answer text the citation is attached to.
fn passage_key(c: &Citation) -> String {
    let mut meta = c.metadata.clone();
    if let Some(Value::Object(m)) = meta.as_mut() {
        m.remove("answer_text");
    }
    serde_json::json!([c.text, c.source, c.page, meta]).to_string()
}

fn answer_text(c: &Citation) -> Option<&str> {
    c.metadata
        .as_ref()?
        .get("answer_text")?
        .as_str()
        .filter(|s| !s.trim().is_empty())
}
