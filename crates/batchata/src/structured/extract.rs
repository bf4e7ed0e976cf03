//! Finding the JSON in a model's reply: the whole reply, a fenced code
//! block, or a balanced `{...}` / `[...]` span inside prose.
//!
//! Models asked for JSON do not always answer with nothing else: they wrap it
//! in Markdown fences, put a sentence before it, or get cut off by
//! `max_tokens` half way. This file turns a reply into the JSON values it
//! holds, most likely first, and words the error when it holds none.
//! Bounded throughout: a long reply costs a bounded number of parse attempts.

use serde_json::Value;

use super::shorten;
use crate::error::Error;

/// How much of a reply a parse error quotes.
const QUOTE_CHARS: usize = 160;
/// Most JSON candidates tried in one reply (bounds the work on long prose).
const MAX_CANDIDATES: usize = 64;
/// Most `{` / `[` positions scanned for an embedded JSON value.
const MAX_SCAN_STARTS: usize = 2_000;

/// The first JSON object or array in `text`: the whole text, a fenced code
/// block, or the first balanced `{...}` / `[...]` that parses.
#[cfg(test)]
pub fn extract_json(text: &str) -> Option<Value> {
    json_candidates(text).into_iter().next()
}

/// Every JSON object or array found in `text`, most likely first: the whole
/// text, fenced code blocks (```json ones first), then balanced spans in the
/// prose, left to right. At most 64.
pub fn json_candidates(text: &str) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let push = |v: Value, out: &mut Vec<Value>| {
        if (v.is_object() || v.is_array()) && !out.contains(&v) && out.len() < MAX_CANDIDATES {
            out.push(v);
        }
    };
    let trimmed = text.trim().trim_start_matches('\u{feff}');
    if let Ok(v) = serde_json::from_str::<Value>(trimmed) {
        push(v, &mut out);
        return out;
    }
    let blocks = fenced_blocks(text);
    for json_tagged in [true, false] {
        for (tag, body) in &blocks {
            let is_json = tag.is_empty() || tag.eq_ignore_ascii_case("json");
            if is_json != json_tagged {
                continue;
            }
            let body = body.trim();
            match serde_json::from_str::<Value>(body) {
                Ok(v) => push(v, &mut out),
                Err(_) => {
                    for v in embedded_values(body) {
                        push(v, &mut out);
                    }
                }
            }
        }
    }
    for v in embedded_values(text) {
        push(v, &mut out);
    }
    out
}

/// Balanced `{...}` / `[...]` spans of `text` that parse, left to right;
/// after a span parses, scanning resumes behind it.
fn embedded_values(text: &str) -> Vec<Value> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut starts = 0;
    while i < bytes.len() && starts < MAX_SCAN_STARTS && out.len() < MAX_CANDIDATES {
        let b = bytes[i];
        if b != b'{' && b != b'[' {
            i += 1;
            continue;
        }
        starts += 1;
        let Some(len) = balanced_len(&bytes[i..]) else {
            if opens_json(&bytes[i..]) {
                // JSON that never closes (the answer was cut off): objects
                // nested in it are fragments, not answers.
                break;
            }
            i += 1;
            continue;
        };
        {
            if let Ok(v) = serde_json::from_str::<Value>(&text[i..i + len]) {
                let scalar_array = v
                    .as_array()
                    .is_some_and(|a| a.iter().all(|x| !x.is_object() && !x.is_array()));
                // `[1]`-style footnote markers in prose are not answers.
                if !(scalar_array && len < 8) {
                    out.push(v);
                    i += len;
                    continue;
                }
            }
        }
        i += 1;
    }
    out
}

/// Whether `s` starts like a JSON object with a key (`{"`) or an array of
/// objects or strings (`[{`, `["`), rather than a stray bracket in prose.
fn opens_json(s: &[u8]) -> bool {
    let next = s[1..].iter().find(|b| !b.is_ascii_whitespace());
    matches!(
        (s.first(), next),
        (Some(b'{'), Some(b'"')) | (Some(b'['), Some(b'{' | b'"'))
    )
}

/// `(info string, body)` of each fenced code block (``` or ~~~).
fn fenced_blocks(text: &str) -> Vec<(String, &str)> {
    let mut out = Vec::new();
    let mut rest = text;
    loop {
        let open = match (rest.find("```"), rest.find("~~~")) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => break,
        };
        let fence = &rest[open..open + 3];
        let after = &rest[open + 3..];
        let line_end = after.find('\n').unwrap_or(after.len());
        let tag = after[..line_end].trim().to_string();
        let body = after.get(line_end + 1..).unwrap_or("");
        match body.find(fence) {
            Some(close) => {
                out.push((tag, &body[..close]));
                rest = &body[close + 3..];
            }
            None => {
                // An unclosed fence (the answer was cut off): the rest is the body.
                out.push((tag, body));
                break;
            }
        }
    }
    out
}

/// Length of the balanced JSON-looking span at the start of `s`, honouring
/// strings; `None` if it never closes.
fn balanced_len(s: &[u8]) -> Option<usize> {
    let mut stack: Vec<u8> = Vec::new();
    let mut in_str = false;
    let mut escaped = false;
    for (i, &c) in s.iter().enumerate() {
        if in_str {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => in_str = true,
            b'{' => stack.push(b'}'),
            b'[' => stack.push(b']'),
            b'}' | b']' => {
                if stack.pop() != Some(c) {
                    return None;
                }
                if stack.is_empty() {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

pub(super) fn no_json_error(text: &str) -> Error {
    let start = shorten(text.trim(), QUOTE_CHARS);
    if text.trim().is_empty() {
        return Error::Parse(
            "the reply is empty, so there is no JSON to check against the response schema; \
             the model may have refused or run out of max_tokens"
                .into(),
        );
    }
    let cut_off = text
        .find(['{', '['])
        .is_some_and(|at| balanced_len(&text.as_bytes()[at..]).is_none());
    let hint = if cut_off {
        "; the JSON in it never closes — the answer was probably cut off by max_tokens, raise it"
    } else {
        "; ask for JSON more plainly in the prompt, or use a model with native structured output"
    };
    Error::Parse(format!(
        "the reply holds no JSON to check against the response schema{hint}; it starts: {start:?}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_len_needs_matching_brackets() {
        assert_eq!(balanced_len(br#"{"a": [1, "]"]} tail"#), Some(15));
        assert_eq!(balanced_len(b"{ ] }"), None);
        assert_eq!(balanced_len(b"{ \"open"), None);
    }
}
