//! Numbers and dates in the forms documents write them: thousands
//! separators either way (`1,250.00`, `1.250,00`, `1'250`), currency signs
//! and codes, percentages; ISO, long, short and numeric dates in either
//! order. Finding `1250` in `EUR 1.250,00` or `2024-03-15` in `15 March 2024`
//! is what lets a citation back a field whose value the model normalised.

use std::sync::OnceLock;

use chrono::NaiveDate;
use regex::Regex;

use super::matching::words;

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

/// A number written in a text: one value it may mean, as written.
pub(super) struct NumberMention {
    pub(super) value: f64,
    pub(super) written: String,
    pub(super) percent: bool,
}

pub(super) fn numbers_in(text: &str) -> Vec<NumberMention> {
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
pub(super) fn amount_in_string(s: &str) -> Option<(Vec<f64>, bool)> {
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

pub(super) fn same_number(a: f64, b: f64) -> bool {
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

/// A date written in a text: one day it may mean, as written.
pub(super) struct DateMention {
    pub(super) date: NaiveDate,
    pub(super) written: String,
}

/// Every date written in `text`, with both readings of ambiguous numeric
/// dates (`03/04/2024` is March 4 or April 3).
pub(super) fn dates_in(text: &str) -> Vec<DateMention> {
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
pub(super) fn date_in_string(s: &str) -> Vec<NaiveDate> {
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
}
