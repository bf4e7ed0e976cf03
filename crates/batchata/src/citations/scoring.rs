//! How strongly a citation backs a field: the value's weight (found in the
//! cited text or only in the answer text, exactly or loosely, a short common
//! value or not) plus how well the field's name — and its parent's — matches
//! the words around the citation, with a `match_reason` that says both.

use super::matching::{find_in, words, Needle, Prepared};
use super::Confidence;

/// The confidence level of a score: high from 0.85, medium from 0.55.
pub(super) fn confidence_of(score: f64) -> Confidence {
    if score >= 0.85 {
        Confidence::High
    } else if score >= 0.55 {
        Confidence::Medium
    } else {
        Confidence::Low
    }
}

// ---------------------------------------------------------------------------
// Field names
// ---------------------------------------------------------------------------

/// The words of a field's name, and of the object or list holding it.
pub(super) struct FieldName {
    key: Vec<String>,
    parent: Vec<String>,
}

/// Words too common to say anything about which field a text is about.
const STOP_WORDS: &[&str] = &[
    "the", "of", "a", "an", "and", "or", "to", "in", "for", "on", "at", "by", "is",
];

impl FieldName {
    /// `line_items[2].unit_price` → key `unit price`, parent `line items`.
    pub(super) fn of_path(path: &str) -> FieldName {
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
pub(super) fn score(needle: &Needle, names: &FieldName, p: &Prepared) -> Option<(f64, String)> {
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
    fn field_names_from_paths() {
        let f = FieldName::of_path("line_items[2].unitPrice");
        assert_eq!(f.key, vec!["unit", "price"]);
        assert_eq!(f.parent, vec!["line", "items"]);
        let f = FieldName::of_path("tags[1]");
        assert_eq!(f.key, vec!["tags"]);
        let f = FieldName::of_path(r#"totals["net.eur"]"#);
        assert_eq!(f.key, vec!["net", "eur"]);
    }
}
