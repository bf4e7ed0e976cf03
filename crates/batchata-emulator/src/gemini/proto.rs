//! Reading request JSON as a proto3 parser does: field names in camelCase
//! or snake_case, a field the message does not have refused, and values of
//! the wrong JSON type refused with the API's own wording. A request that
//! does not parse is refused whole ([`RequestError::Payload`]); one that
//! parses but is invalid fails alone ([`RequestError::Invalid`]).

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::Value;

/// Why a request is refused.
#[derive(Debug)]
pub(super) enum RequestError {
    /// It does not parse as the proto (unknown field, wrong JSON type): an
    /// inline create is refused whole, with this message.
    Payload(String),
    /// It parses but is not valid: the request gets an `INVALID_ARGUMENT`
    /// result.
    Invalid(String),
}

/// `max_output_tokens` → `maxOutputTokens`.
fn camel(key: &str) -> Cow<'_, str> {
    if !key.contains('_') {
        return Cow::Borrowed(key);
    }
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// An object's fields under their camelCase names; unknown names refused.
pub(super) fn fields<'v>(
    v: &'v Value,
    at: &str,
    known: &[&str],
) -> Result<HashMap<String, &'v Value>, RequestError> {
    let Value::Object(map) = v else {
        return Err(RequestError::Payload(format!(
            "Invalid JSON payload received. Invalid value at '{at}': expected an object."
        )));
    };
    let mut out = HashMap::with_capacity(map.len());
    for (k, val) in map {
        let name = camel(k);
        if !known.contains(&name.as_ref()) {
            return Err(RequestError::Payload(format!(
                "Invalid JSON payload received. Unknown name \"{k}\" at '{at}': Cannot find field."
            )));
        }
        out.insert(name.into_owned(), val);
    }
    Ok(out)
}

pub(super) fn as_str<'v>(v: &'v Value, at: &str) -> Result<&'v str, RequestError> {
    v.as_str().ok_or_else(|| {
        RequestError::Payload(format!(
            "Invalid JSON payload received. Invalid value at '{at}' ({v}): expected a string."
        ))
    })
}

pub(super) fn as_number(v: &Value, at: &str) -> Result<f64, RequestError> {
    v.as_f64().ok_or_else(|| {
        RequestError::Payload(format!(
            "Invalid JSON payload received. Invalid value at '{at}' ({v}): expected a number."
        ))
    })
}

pub(super) fn as_int(v: &Value, at: &str) -> Result<i64, RequestError> {
    match v {
        Value::Number(n) if n.is_i64() => Ok(n.as_i64().unwrap_or_default()),
        Value::String(s) => s.parse().map_err(|_| {
            RequestError::Payload(format!(
                "Invalid JSON payload received. Invalid value at '{at}' ({v}): expected an integer."
            ))
        }),
        _ => Err(RequestError::Payload(format!(
            "Invalid JSON payload received. Invalid value at '{at}' ({v}): expected an integer."
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_names_read_as_camel_case() {
        assert_eq!(camel("max_output_tokens"), "maxOutputTokens");
        assert_eq!(camel("maxOutputTokens"), "maxOutputTokens");
    }
}
