//! Requests a provider refuses for reasons no client can check beforehand.
//!
//! Real providers refuse some requests for what they hold — a PDF that is
//! encrypted or malformed, content their policy refuses — and they do so
//! for the whole batch: Anthropic answers the create with a 400
//! `invalid_request_error` naming the request, OpenAI fails the batch in
//! `validating` with the bad lines in `errors`, Gemini answers an inline
//! create with 400 `INVALID_ARGUMENT`. A client cannot tell such a request
//! from a good one, so it must isolate it after the fact.
//!
//! The emulator plays that part for any request whose content holds
//! [`REJECT_MARKER`]: in a prompt, a text document, or the bytes of a
//! base64 document (PDF, image, data URL). The marker is the trigger, so
//! the fault is always on and costs nothing to requests without it.

use base64::Engine as _;
use serde_json::Value;

/// The text that makes a request one the provider refuses.
pub const REJECT_MARKER: &str = "BATCHATA-EMULATOR-REJECT";

/// Where in `value` the marker is, as a dotted path to the content block
/// that holds it (`messages.0.content.1`), or `None`.
pub(crate) fn find_marker(value: &Value) -> Option<Vec<String>> {
    let mut path = Vec::new();
    if !walk(value, None, &mut path) {
        return None;
    }
    // Name the content block, not the string inside it.
    if let Some(i) = path
        .windows(2)
        .position(|w| matches!(w[0].as_str(), "content" | "parts") && w[1].parse::<usize>().is_ok())
    {
        path.truncate(i + 2);
    }
    Some(path)
}

/// The value at `path` in `value` (`Null` when absent).
pub(crate) fn at<'a>(value: &'a Value, path: &[String]) -> &'a Value {
    let mut at = value;
    for p in path {
        at = match at {
            Value::Array(items) => p.parse::<usize>().ok().and_then(|i| items.get(i)),
            Value::Object(map) => map.get(p),
            _ => None,
        }
        .unwrap_or(&Value::Null);
    }
    at
}

fn walk(value: &Value, key: Option<&str>, path: &mut Vec<String>) -> bool {
    match value {
        Value::String(s) => holds_marker(s, key),
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                path.push(i.to_string());
                if walk(v, None, path) {
                    return true;
                }
                path.pop();
            }
            false
        }
        Value::Object(map) => {
            for (k, v) in map {
                path.push(k.clone());
                if walk(v, Some(k), path) {
                    return true;
                }
                path.pop();
            }
            false
        }
        _ => false,
    }
}

fn holds_marker(s: &str, key: Option<&str>) -> bool {
    if s.contains(REJECT_MARKER) {
        return true;
    }
    // Base64 documents: Anthropic `source.data`, Gemini `inlineData.data`,
    // OpenAI `file_data` / `image_url.url` data URLs.
    let encoded = match s.strip_prefix("data:") {
        Some(rest) => match rest.split_once(";base64,") {
            Some((_, b64)) => b64,
            None => return false,
        },
        None if key == Some("data") => s,
        None => return false,
    };
    base64::engine::general_purpose::STANDARD
        .decode(encoded.as_bytes())
        .is_ok_and(|bytes| {
            bytes
                .windows(REJECT_MARKER.len())
                .any(|w| w == REJECT_MARKER.as_bytes())
        })
}

/// The provider's words for the refused block: a PDF "is not valid", other
/// content "could not be processed".
pub(crate) fn reason(value: &Value, path: &[String]) -> &'static str {
    if at(value, path).to_string().contains("application/pdf") {
        "The PDF specified was not valid."
    } else {
        "The content of this request could not be processed."
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_the_marker_in_text_and_in_base64_documents() {
        let text = json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "hello"},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x BATCHATA-EMULATOR-REJECT y"}}
        ]}]});
        let p = find_marker(&text).unwrap();
        assert_eq!(p, vec!["messages", "0", "content", "1"]);
        assert_eq!(at(&text, &p)["type"], "document");
        let pdf = base64::engine::general_purpose::STANDARD
            .encode(b"%PDF-1.4 BATCHATA-EMULATOR-REJECT %%EOF");
        let doc = json!({"contents": [{"parts": [{"inlineData": {"mimeType": "application/pdf", "data": pdf}}]}]});
        let p = find_marker(&doc).unwrap();
        assert_eq!(reason(&doc, &p), "The PDF specified was not valid.");
        let url = json!({"file_data": format!("data:application/pdf;base64,{pdf}")});
        assert!(find_marker(&url).is_some());
        assert!(find_marker(&json!({"text": "fine", "data": "aGVsbG8="})).is_none());
    }
}
