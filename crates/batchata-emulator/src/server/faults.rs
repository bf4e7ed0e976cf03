//! Fault injection: which calls fail (the configured `fail_first` rules
//! first, then the seeded random rates) and the error each provider
//! answers a failed call with.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use axum::http::{HeaderName, StatusCode};

use super::lock;
use crate::config::{EmulatorConfig, Endpoint, FaultKind};
use crate::error::{ApiError, Provider};
use crate::gemini;
use crate::ids::{hash_parts, unit};

/// Decides which calls fail.
#[derive(Debug)]
pub(super) struct FaultPlan {
    /// How many calls each `fail_first` rule has failed so far.
    used: Mutex<Vec<u32>>,
    /// Index of the next call for the random rates.
    calls: AtomicU64,
}

impl FaultPlan {
    pub(super) fn new(config: &EmulatorConfig) -> Self {
        Self {
            used: Mutex::new(vec![0; config.fail_first.len()]),
            calls: AtomicU64::new(0),
        }
    }

    pub(super) fn reset(&self) {
        lock(&self.used).iter_mut().for_each(|u| *u = 0);
        self.calls.store(0, Ordering::SeqCst);
    }

    pub(super) fn decide(&self, config: &EmulatorConfig, endpoint: Endpoint) -> Option<FaultKind> {
        {
            let mut used = lock(&self.used);
            for (i, rule) in config.fail_first.iter().enumerate() {
                if rule.endpoint.is_none_or(|e| e == endpoint) && used[i] < rule.count {
                    used[i] += 1;
                    return Some(rule.fault);
                }
            }
        }
        let total = config.rate_limit_rate
            + config.server_error_rate
            + config.unavailable_rate
            + config.overloaded_rate
            + config.drop_rate;
        if total <= 0.0 {
            return None;
        }
        let k = self.calls.fetch_add(1, Ordering::SeqCst);
        let u = unit(hash_parts(config.seed, &[b"fault", &k.to_le_bytes()]));
        let retry_after_ms = config.retry_after.as_millis() as u64;
        let table = [
            (
                config.rate_limit_rate,
                FaultKind::Status429 { retry_after_ms },
            ),
            (config.server_error_rate, FaultKind::Status500),
            (config.unavailable_rate, FaultKind::Status503),
            (config.overloaded_rate, FaultKind::Status529),
            (config.drop_rate, FaultKind::DropConnection),
        ];
        let mut acc = 0.0;
        for (rate, kind) in table {
            acc += rate;
            if u < acc {
                return Some(kind);
            }
        }
        None
    }
}

/// The error answer for an injected fault.
pub(super) fn fault_error(
    config: &EmulatorConfig,
    provider: Provider,
    fault: FaultKind,
) -> ApiError {
    let err = match (provider, fault) {
        (Provider::Gemini, fault) => gemini::fault_error(fault),
        (Provider::Anthropic, FaultKind::Status429 { retry_after_ms }) => ApiError::anthropic(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "Number of requests has exceeded your rate limit (emulated). Please try again later.",
        )
        .with_retry_after(retry_after_ms),
        (Provider::OpenAi, FaultKind::Status429 { retry_after_ms }) => ApiError::openai(
            StatusCode::TOO_MANY_REQUESTS,
            "requests",
            "Rate limit reached for requests (emulated). Please try again later.",
            None,
            Some("rate_limit_exceeded"),
        )
        .with_retry_after(retry_after_ms),
        (Provider::Anthropic, FaultKind::Status500) => ApiError::anthropic(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "Internal server error",
        ),
        (Provider::OpenAi, FaultKind::Status500) => ApiError::openai(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "The server had an error while processing your request. Sorry about that!",
            None,
            None,
        ),
        (Provider::Anthropic, FaultKind::Status503) => ApiError::anthropic(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            "Service unavailable",
        ),
        (Provider::Anthropic, FaultKind::Status529) => ApiError::anthropic(
            // 529 is not a registered code, but it is a valid one.
            StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            "overloaded_error",
            "Overloaded",
        ),
        (Provider::OpenAi, FaultKind::Status503 | FaultKind::Status529) => ApiError::openai(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "The engine is currently overloaded, please try again later.",
            None,
            None,
        ),
        // Never rendered: the front door cuts the connection instead.
        (_, FaultKind::DropConnection | FaultKind::DropAfter) => {
            ApiError::anthropic(StatusCode::INTERNAL_SERVER_ERROR, "api_error", "dropped")
        }
    };
    match config.should_retry_header {
        Some(v) => err.with_header(HeaderName::from_static("x-should-retry"), v.to_string()),
        None => err,
    }
}

impl ApiError {
    fn with_retry_after(self, ms: u64) -> Self {
        self.with_header(
            HeaderName::from_static("retry-after"),
            ms.div_ceil(1000).to_string(),
        )
        .with_header(HeaderName::from_static("retry-after-ms"), ms.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_first_then_rates() {
        let config = EmulatorConfig::new()
            .fail_first(Endpoint::AnthropicCreate, 2, FaultKind::Status500)
            .seed(3);
        let plan = FaultPlan::new(&config);
        assert_eq!(plan.decide(&config, Endpoint::AnthropicList), None);
        assert_eq!(
            plan.decide(&config, Endpoint::AnthropicCreate),
            Some(FaultKind::Status500)
        );
        assert_eq!(
            plan.decide(&config, Endpoint::AnthropicCreate),
            Some(FaultKind::Status500)
        );
        assert_eq!(plan.decide(&config, Endpoint::AnthropicCreate), None);
        let all = EmulatorConfig::new().drop_rate(1.0);
        let plan = FaultPlan::new(&all);
        assert_eq!(
            plan.decide(&all, Endpoint::OpenAiFilesCreate),
            Some(FaultKind::DropConnection)
        );
    }
}
