//! The auth check of a provider call: the key header each provider reads,
//! Anthropic's version header, and the answer to a missing, wrong or
//! revoked key, in the provider's own words.

use axum::http::{HeaderMap, StatusCode};

use crate::config::{EmulatorConfig, KeyRejection};
use crate::error::{ApiError, Provider};

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    header_str(headers, "authorization")
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Whether an `anthropic-version` value is a plausible API version
/// (`YYYY-MM-DD`): the SDKs move to newer dates over time, so any date is
/// accepted; only missing or malformed values are refused.
fn plausible_version(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
}

/// An API key as the OpenAI API echoes it in a 401: the first and last few
/// characters around a run of `*` (`sk-proj-****...****MxYA`). Never the
/// whole key: at most a third of it in front and a quarter of it behind.
fn masked_key(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    let n = chars.len();
    let head = (n / 3).min(8);
    let tail = (n / 4).min(4);
    let mut out: String = chars[..head].iter().collect();
    out.extend(std::iter::repeat_n('*', n - head - tail));
    out.extend(&chars[n - tail..]);
    out
}

/// The provider's answer to a key it does not accept.
fn key_refused(provider: Provider, rejection: KeyRejection, key: &str) -> ApiError {
    match (provider, rejection) {
        // Gemini's own check (gemini::check_auth) answers for it.
        (Provider::Gemini, _) => ApiError::gemini(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.",
        ),
        (Provider::Anthropic, KeyRejection::Unauthorized) => ApiError::anthropic(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid x-api-key",
        ),
        (Provider::Anthropic, KeyRejection::Forbidden) => ApiError::anthropic(
            StatusCode::FORBIDDEN,
            "permission_error",
            "Your API key does not have permission to use the specified resource.",
        ),
        (Provider::OpenAi, KeyRejection::Unauthorized) => ApiError::openai(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            format!(
                "Incorrect API key provided: {}. You can find your API key at https://platform.openai.com/account/api-keys.",
                masked_key(key)
            ),
            None,
            Some("invalid_api_key"),
        ),
        (Provider::OpenAi, KeyRejection::Forbidden) => ApiError::openai(
            StatusCode::FORBIDDEN,
            "request_forbidden",
            "Country, region, or territory not supported",
            None,
            Some("unsupported_country_region_territory"),
        ),
    }
}

/// Checks the auth (and, for Anthropic, version) headers. A missing key is
/// always a 401; a present key is refused while keys are revoked
/// (`rejection`) or when it is not the configured one.
pub(super) fn check_auth(
    config: &EmulatorConfig,
    rejection: Option<KeyRejection>,
    provider: Provider,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let refusal = |key: &str| {
        rejection.or_else(|| {
            config
                .api_key
                .as_deref()
                .is_some_and(|k| k != key)
                .then_some(KeyRejection::Unauthorized)
        })
    };
    match provider {
        Provider::Anthropic => {
            let key = header_str(headers, "x-api-key").or_else(|| bearer(headers));
            let Some(key) = key else {
                return Err(ApiError::anthropic(
                    StatusCode::UNAUTHORIZED,
                    "authentication_error",
                    "x-api-key header is required",
                ));
            };
            if let Some(r) = refusal(key) {
                return Err(key_refused(provider, r, key));
            }
            match header_str(headers, "anthropic-version") {
                None => Err(ApiError::anthropic_invalid(
                    "anthropic-version: header is required",
                )),
                Some(v) if !plausible_version(v) => Err(ApiError::anthropic_invalid(format!(
                    "anthropic-version: invalid version '{v}'; expected a date such as 2023-06-01"
                ))),
                Some(_) => Ok(()),
            }
        }
        Provider::OpenAi => {
            let Some(key) = bearer(headers) else {
                return Err(ApiError::openai(
                    StatusCode::UNAUTHORIZED,
                    "invalid_request_error",
                    "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                    None,
                    Some("invalid_api_key"),
                ));
            };
            match refusal(key) {
                Some(r) => Err(key_refused(provider, r, key)),
                None => Ok(()),
            }
        }
        // Needs the query too (`?key=`): see `gemini::check_auth`.
        Provider::Gemini => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_keys_never_show_the_whole_key() {
        let long = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789MxYA";
        let m = masked_key(long);
        assert!(m.starts_with("sk-proj-*") && m.ends_with("*MxYA"), "{m}");
        assert_eq!(m.chars().count(), long.chars().count());
        assert_eq!(masked_key("test-key"), "te****ey");
        for key in ["a", "ab", "abc", "abcd", "abcdefgh", "ü-key-ü"] {
            let m = masked_key(key);
            assert_ne!(m, key);
            assert!(m.contains('*'), "{m}");
        }
    }
}
