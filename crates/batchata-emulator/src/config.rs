//! How an emulator instance behaves: timing, faults, limits, auth and seed.
//!
//! [`EmulatorConfig`] is a plain struct with public fields, so a command-line
//! front end can fill it from flags without this crate knowing about `clap`,
//! plus consuming builder methods for Rust callers. The default is a friendly
//! emulator: no faults, batches end at once, any non-empty API key accepted.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Anthropic's documented per-batch request cap.
pub const ANTHROPIC_MAX_REQUESTS: usize = 100_000;
/// Anthropic's documented per-batch body size cap (256 MB).
pub const ANTHROPIC_MAX_BYTES: usize = 256 * 1024 * 1024;
/// OpenAI's documented per-batch request cap.
pub const OPENAI_MAX_REQUESTS: usize = 50_000;
/// OpenAI's documented batch input file size cap (200 MB).
pub const OPENAI_MAX_FILE_BYTES: usize = 200 * 1024 * 1024;
/// Gemini's documented limit on an inline (`requests`) batch create body (20 MB).
pub const GEMINI_MAX_INLINE_BYTES: usize = 20 * 1000 * 1000;
/// Gemini's documented limit on a batch input file (2 GB).
pub const GEMINI_MAX_FILE_BYTES: usize = 2 * 1000 * 1000 * 1000;

/// One emulated HTTP endpoint, named the way `/_emulator/stats` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// `POST /v1/messages/batches`
    AnthropicCreate,
    /// `GET /v1/messages/batches/{id}`
    AnthropicRetrieve,
    /// `GET /v1/messages/batches`
    AnthropicList,
    /// `POST /v1/messages/batches/{id}/cancel`
    AnthropicCancel,
    /// `DELETE /v1/messages/batches/{id}`
    AnthropicDelete,
    /// `GET /v1/messages/batches/{id}/results`
    AnthropicResults,
    /// `POST /v1/files`
    OpenAiFilesCreate,
    /// `GET /v1/files/{id}`
    OpenAiFilesRetrieve,
    /// `GET /v1/files/{id}/content`
    OpenAiFilesContent,
    /// `GET /v1/files`
    OpenAiFilesList,
    /// `DELETE /v1/files/{id}`
    OpenAiFilesDelete,
    /// `POST /v1/batches`
    OpenAiBatchesCreate,
    /// `GET /v1/batches/{id}`
    OpenAiBatchesRetrieve,
    /// `GET /v1/batches`
    OpenAiBatchesList,
    /// `POST /v1/batches/{id}/cancel`
    OpenAiBatchesCancel,
    /// `POST /v1beta/models/{model}:batchGenerateContent`
    GeminiCreate,
    /// `GET /v1beta/batches/{id}`
    GeminiGet,
    /// `GET /v1beta/batches`
    GeminiList,
    /// `POST /v1beta/batches/{id}:cancel`
    GeminiCancel,
    /// `DELETE /v1beta/batches/{id}`
    GeminiDelete,
    /// `POST /upload/v1beta/files` (`X-Goog-Upload-Command: start`)
    GeminiUploadStart,
    /// `POST /upload/v1beta/files?upload_id=...` (the bytes)
    GeminiUpload,
    /// `GET /v1beta/files/{id}`
    GeminiFilesGet,
    /// `GET /v1beta/files`
    GeminiFilesList,
    /// `DELETE /v1beta/files/{id}`
    GeminiFilesDelete,
    /// `GET /v1beta/files/{id}:download?alt=media` (also under `/download/v1beta`)
    GeminiDownload,
    /// Any other path or method (answered 404 or 405).
    Unknown,
}

impl Endpoint {
    /// Every endpoint, in a stable order.
    pub const ALL: [Endpoint; 27] = [
        Endpoint::AnthropicCreate,
        Endpoint::AnthropicRetrieve,
        Endpoint::AnthropicList,
        Endpoint::AnthropicCancel,
        Endpoint::AnthropicDelete,
        Endpoint::AnthropicResults,
        Endpoint::OpenAiFilesCreate,
        Endpoint::OpenAiFilesRetrieve,
        Endpoint::OpenAiFilesContent,
        Endpoint::OpenAiFilesList,
        Endpoint::OpenAiFilesDelete,
        Endpoint::OpenAiBatchesCreate,
        Endpoint::OpenAiBatchesRetrieve,
        Endpoint::OpenAiBatchesList,
        Endpoint::OpenAiBatchesCancel,
        Endpoint::GeminiCreate,
        Endpoint::GeminiGet,
        Endpoint::GeminiList,
        Endpoint::GeminiCancel,
        Endpoint::GeminiDelete,
        Endpoint::GeminiUploadStart,
        Endpoint::GeminiUpload,
        Endpoint::GeminiFilesGet,
        Endpoint::GeminiFilesList,
        Endpoint::GeminiFilesDelete,
        Endpoint::GeminiDownload,
        Endpoint::Unknown,
    ];

    /// The stable name used in stats, e.g. `"anthropic.create"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::AnthropicCreate => "anthropic.create",
            Endpoint::AnthropicRetrieve => "anthropic.retrieve",
            Endpoint::AnthropicList => "anthropic.list",
            Endpoint::AnthropicCancel => "anthropic.cancel",
            Endpoint::AnthropicDelete => "anthropic.delete",
            Endpoint::AnthropicResults => "anthropic.results",
            Endpoint::OpenAiFilesCreate => "openai.files.create",
            Endpoint::OpenAiFilesRetrieve => "openai.files.retrieve",
            Endpoint::OpenAiFilesContent => "openai.files.content",
            Endpoint::OpenAiFilesList => "openai.files.list",
            Endpoint::OpenAiFilesDelete => "openai.files.delete",
            Endpoint::OpenAiBatchesCreate => "openai.batches.create",
            Endpoint::OpenAiBatchesRetrieve => "openai.batches.retrieve",
            Endpoint::OpenAiBatchesList => "openai.batches.list",
            Endpoint::OpenAiBatchesCancel => "openai.batches.cancel",
            Endpoint::GeminiCreate => "gemini.create",
            Endpoint::GeminiGet => "gemini.get",
            Endpoint::GeminiList => "gemini.list",
            Endpoint::GeminiCancel => "gemini.cancel",
            Endpoint::GeminiDelete => "gemini.delete",
            Endpoint::GeminiUploadStart => "gemini.files.start",
            Endpoint::GeminiUpload => "gemini.files.upload",
            Endpoint::GeminiFilesGet => "gemini.files.get",
            Endpoint::GeminiFilesList => "gemini.files.list",
            Endpoint::GeminiFilesDelete => "gemini.files.delete",
            Endpoint::GeminiDownload => "gemini.files.download",
            Endpoint::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Endpoint {
    type Err = String;

    /// Parses a stable name such as `"openai.batches.create"`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Endpoint::ALL
            .iter()
            .copied()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Endpoint::ALL.iter().map(|e| e.as_str()).collect();
                format!(
                    "unknown endpoint '{s}'; expected one of: {}",
                    names.join(", ")
                )
            })
    }
}

/// A transport-level failure the emulator can inject instead of answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// 429 with `retry-after` (whole seconds, rounded up) and `retry-after-ms` headers.
    Status429 {
        /// The delay advertised in the headers, in milliseconds.
        retry_after_ms: u64,
    },
    /// 500 (`api_error` / `server_error`).
    Status500,
    /// 503 (service unavailable).
    Status503,
    /// 529 `overloaded_error` on Anthropic; OpenAI and Gemini have no 529 and get a 503.
    Status529,
    /// Close the connection without sending any response; the request is
    /// not handled (nothing is created or stored).
    DropConnection,
    /// Handle the request in full (a batch is created and stored, a file is
    /// uploaded, ...), then close the connection without sending a single
    /// response byte: the client sees a transport error although its
    /// request was committed. Only available through `fail_first` rules.
    DropAfter,
}

impl FaultKind {
    /// The stable name used in stats: `"429"`, `"500"`, `"503"`, `"529"`,
    /// `"drop"` or `"drop-after"`.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Status429 { .. } => "429",
            FaultKind::Status500 => "500",
            FaultKind::Status503 => "503",
            FaultKind::Status529 => "529",
            FaultKind::DropConnection => "drop",
            FaultKind::DropAfter => "drop-after",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultKind::Status429 { retry_after_ms } => write!(f, "429:{retry_after_ms}"),
            other => f.write_str(other.as_str()),
        }
    }
}

impl FromStr for FaultKind {
    type Err = String;

    /// Parses `429` (1 s delay), `429:<ms>`, `500`, `503`, `529`, `drop` or
    /// `drop-after`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Some(ms) = s.strip_prefix("429:") {
            let retry_after_ms = ms
                .parse()
                .map_err(|_| format!("bad retry-after milliseconds in '{s}'"))?;
            return Ok(FaultKind::Status429 { retry_after_ms });
        }
        match s {
            "429" => Ok(FaultKind::Status429 {
                retry_after_ms: 1000,
            }),
            "500" => Ok(FaultKind::Status500),
            "503" => Ok(FaultKind::Status503),
            "529" => Ok(FaultKind::Status529),
            "drop" => Ok(FaultKind::DropConnection),
            "drop-after" => Ok(FaultKind::DropAfter),
            _ => Err(format!(
                "unknown fault '{s}'; expected 429, 429:<ms>, 500, 503, 529, drop or drop-after"
            )),
        }
    }
}

/// How provider calls are refused once keys are revoked at run time
/// ([`EmulatorHandle::revoke_keys_as`](crate::EmulatorHandle::revoke_keys_as),
/// `POST /_emulator/revoke-keys?status=401|403`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KeyRejection {
    /// 401: Anthropic `authentication_error` "invalid x-api-key"; OpenAI
    /// `invalid_request_error` with code `invalid_api_key` and a masked key
    /// ("Incorrect API key provided: sk-abc...wxyz").
    #[default]
    Unauthorized,
    /// 403: Anthropic `permission_error`; OpenAI `request_forbidden`
    /// (`unsupported_country_region_territory`), its documented 403.
    Forbidden,
}

impl KeyRejection {
    /// The HTTP status answered: 401 or 403.
    pub fn status(self) -> u16 {
        match self {
            KeyRejection::Unauthorized => 401,
            KeyRejection::Forbidden => 403,
        }
    }
}

impl FromStr for KeyRejection {
    type Err = String;

    /// Parses `401` or `403`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "401" => Ok(KeyRejection::Unauthorized),
            "403" => Ok(KeyRejection::Forbidden),
            other => Err(format!(
                "unknown key rejection status '{other}'; expected 401 or 403"
            )),
        }
    }
}

/// "Fail the first `count` matching calls with `fault`, then behave."
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailFirst {
    /// Which endpoint the rule watches; `None` matches every provider call.
    pub endpoint: Option<Endpoint>,
    /// How many matching calls fail.
    pub count: u32,
    /// What those calls get.
    pub fault: FaultKind,
}

/// Everything that shapes an emulator's behaviour.
///
/// Fractions are clamped to `[0, 1]`. All randomness is derived from `seed`.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// How long a batch takes from creation to its end. `0` means batches
    /// have ended by the next request that looks at them. Requests inside a
    /// batch finish progressively over this span.
    pub processing_delay: Duration,
    /// How long a cancelled batch stays `canceling`/`cancelling` before it
    /// ends. `0` means it has ended by the next request.
    pub cancel_delay: Duration,
    /// Fraction of requests that end errored (an `api_error` on Anthropic, a
    /// 500 line in the error file on OpenAI), chosen by hash of `custom_id`.
    pub error_rate: f64,
    /// Fraction of HTTP calls answered 429.
    pub rate_limit_rate: f64,
    /// The delay advertised by injected 429s (`retry-after`, `retry-after-ms`).
    pub retry_after: Duration,
    /// Fraction of HTTP calls answered 500.
    pub server_error_rate: f64,
    /// Fraction of HTTP calls answered 503.
    pub unavailable_rate: f64,
    /// Fraction of HTTP calls answered 529 (Anthropic) / 503 (OpenAI).
    pub overloaded_rate: f64,
    /// Fraction of HTTP calls whose connection is closed without an answer.
    pub drop_rate: f64,
    /// Added latency before every provider call is answered.
    pub latency: Duration,
    /// When set, injected error responses carry `x-should-retry: <value>`.
    pub should_retry_header: Option<bool>,
    /// Fraction of batches that expire instead of completing (`1.0` = all).
    pub expire_rate: f64,
    /// In an expiring batch, the fraction of requests that finish before the
    /// batch expires; the rest come back expired.
    pub expire_keep_fraction: f64,
    /// Return results in completion order (deterministic, not request order).
    pub shuffle_results: bool,
    /// Maximum requests in one Anthropic batch; past it: 413 `request_too_large`.
    pub anthropic_max_requests: usize,
    /// Maximum Anthropic create body size in bytes; past it: 413.
    pub anthropic_max_bytes: usize,
    /// Maximum lines in one OpenAI batch input; past it the batch fails.
    pub openai_max_requests: usize,
    /// Maximum OpenAI upload size in bytes; past it: 413.
    pub openai_max_file_bytes: usize,
    /// Maximum Gemini inline create body in bytes; past it: 400 `INVALID_ARGUMENT`.
    pub gemini_max_inline_bytes: usize,
    /// Maximum Gemini upload size in bytes; past it: 400 `INVALID_ARGUMENT`.
    pub gemini_max_file_bytes: usize,
    /// The only API key accepted; `None` accepts any non-empty key. Other
    /// keys get the provider's authentication error (the same answer as
    /// after [`revoke_keys`](crate::EmulatorHandle::revoke_keys)).
    pub api_key: Option<String>,
    /// When set, every batch becomes unknown to the provider this long after
    /// its creation: retrieve, cancel, results and delete answer 404 with the
    /// provider's not-found envelope and lists leave it out, as when a
    /// provider has lost or purged a batch. `None` (the default) keeps
    /// batches forever.
    pub forget_batches_after: Option<Duration>,
    /// Seed for every deterministic choice.
    pub seed: u64,
    /// "Fail the first N calls" rules, checked before the random rates.
    pub fail_first: Vec<FailFirst>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            processing_delay: Duration::ZERO,
            cancel_delay: Duration::ZERO,
            error_rate: 0.0,
            rate_limit_rate: 0.0,
            retry_after: Duration::from_secs(1),
            server_error_rate: 0.0,
            unavailable_rate: 0.0,
            overloaded_rate: 0.0,
            drop_rate: 0.0,
            latency: Duration::ZERO,
            should_retry_header: None,
            expire_rate: 0.0,
            expire_keep_fraction: 0.5,
            shuffle_results: true,
            anthropic_max_requests: ANTHROPIC_MAX_REQUESTS,
            anthropic_max_bytes: ANTHROPIC_MAX_BYTES,
            openai_max_requests: OPENAI_MAX_REQUESTS,
            openai_max_file_bytes: OPENAI_MAX_FILE_BYTES,
            gemini_max_inline_bytes: GEMINI_MAX_INLINE_BYTES,
            gemini_max_file_bytes: GEMINI_MAX_FILE_BYTES,
            api_key: None,
            forget_batches_after: None,
            seed: 0,
            fail_first: Vec::new(),
        }
    }
}

fn clamp01(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(0.0, 1.0)
    }
}

impl EmulatorConfig {
    /// The default configuration (same as [`Default::default`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`processing_delay`](Self::processing_delay).
    pub fn processing_delay(mut self, delay: Duration) -> Self {
        self.processing_delay = delay;
        self
    }

    /// Sets [`cancel_delay`](Self::cancel_delay).
    pub fn cancel_delay(mut self, delay: Duration) -> Self {
        self.cancel_delay = delay;
        self
    }

    /// Sets [`error_rate`](Self::error_rate).
    pub fn error_rate(mut self, fraction: f64) -> Self {
        self.error_rate = clamp01(fraction);
        self
    }

    /// Sets [`rate_limit_rate`](Self::rate_limit_rate).
    pub fn rate_limit_rate(mut self, fraction: f64) -> Self {
        self.rate_limit_rate = clamp01(fraction);
        self
    }

    /// Sets [`retry_after`](Self::retry_after).
    pub fn retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = delay;
        self
    }

    /// Sets [`server_error_rate`](Self::server_error_rate).
    pub fn server_error_rate(mut self, fraction: f64) -> Self {
        self.server_error_rate = clamp01(fraction);
        self
    }

    /// Sets [`unavailable_rate`](Self::unavailable_rate).
    pub fn unavailable_rate(mut self, fraction: f64) -> Self {
        self.unavailable_rate = clamp01(fraction);
        self
    }

    /// Sets [`overloaded_rate`](Self::overloaded_rate).
    pub fn overloaded_rate(mut self, fraction: f64) -> Self {
        self.overloaded_rate = clamp01(fraction);
        self
    }

    /// Sets [`drop_rate`](Self::drop_rate).
    pub fn drop_rate(mut self, fraction: f64) -> Self {
        self.drop_rate = clamp01(fraction);
        self
    }

    /// Sets [`latency`](Self::latency).
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Sets [`should_retry_header`](Self::should_retry_header).
    pub fn should_retry_header(mut self, value: Option<bool>) -> Self {
        self.should_retry_header = value;
        self
    }

    /// Sets [`expire_rate`](Self::expire_rate).
    pub fn expire_rate(mut self, fraction: f64) -> Self {
        self.expire_rate = clamp01(fraction);
        self
    }

    /// Makes every batch expire (same as `expire_rate(1.0)`).
    pub fn expire_all(self) -> Self {
        self.expire_rate(1.0)
    }

    /// Sets [`expire_keep_fraction`](Self::expire_keep_fraction).
    pub fn expire_keep_fraction(mut self, fraction: f64) -> Self {
        self.expire_keep_fraction = clamp01(fraction);
        self
    }

    /// Sets [`shuffle_results`](Self::shuffle_results).
    pub fn shuffle_results(mut self, shuffle: bool) -> Self {
        self.shuffle_results = shuffle;
        self
    }

    /// Sets the Anthropic per-batch limits (requests, body bytes).
    pub fn anthropic_limits(mut self, max_requests: usize, max_bytes: usize) -> Self {
        self.anthropic_max_requests = max_requests;
        self.anthropic_max_bytes = max_bytes;
        self
    }

    /// Sets the OpenAI limits (lines per batch, upload bytes).
    pub fn openai_limits(mut self, max_requests: usize, max_file_bytes: usize) -> Self {
        self.openai_max_requests = max_requests;
        self.openai_max_file_bytes = max_file_bytes;
        self
    }

    /// Sets the Gemini limits (inline create body bytes, upload bytes).
    pub fn gemini_limits(mut self, max_inline_bytes: usize, max_file_bytes: usize) -> Self {
        self.gemini_max_inline_bytes = max_inline_bytes;
        self.gemini_max_file_bytes = max_file_bytes;
        self
    }

    /// Requires exactly this API key.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Makes every batch unknown (404) `after` its creation; see
    /// [`forget_batches_after`](Self::forget_batches_after).
    pub fn forget_batches_after(mut self, after: Duration) -> Self {
        self.forget_batches_after = Some(after);
        self
    }

    /// Sets [`seed`](Self::seed).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Fails the first `count` calls to `endpoint` with `fault`.
    pub fn fail_first(mut self, endpoint: Endpoint, count: u32, fault: FaultKind) -> Self {
        self.fail_first.push(FailFirst {
            endpoint: Some(endpoint),
            count,
            fault,
        });
        self
    }

    /// Fails the first `count` provider calls, whatever the endpoint, with `fault`.
    pub fn fail_first_any(mut self, count: u32, fault: FaultKind) -> Self {
        self.fail_first.push(FailFirst {
            endpoint: None,
            count,
            fault,
        });
        self
    }

    /// The same configuration with every fraction clamped into `[0, 1]`
    /// (for callers who filled the public fields directly).
    pub(crate) fn normalized(mut self) -> Self {
        self.error_rate = clamp01(self.error_rate);
        self.rate_limit_rate = clamp01(self.rate_limit_rate);
        self.server_error_rate = clamp01(self.server_error_rate);
        self.unavailable_rate = clamp01(self.unavailable_rate);
        self.overloaded_rate = clamp01(self.overloaded_rate);
        self.drop_rate = clamp01(self.drop_rate);
        self.expire_rate = clamp01(self.expire_rate);
        self.expire_keep_fraction = clamp01(self.expire_keep_fraction);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_names_round_trip() {
        for e in Endpoint::ALL {
            assert_eq!(e.as_str().parse::<Endpoint>(), Ok(e));
        }
        assert!("nope".parse::<Endpoint>().is_err());
    }

    #[test]
    fn fault_kinds_parse() {
        assert_eq!(
            "429:250".parse::<FaultKind>(),
            Ok(FaultKind::Status429 {
                retry_after_ms: 250
            })
        );
        assert_eq!("drop".parse::<FaultKind>(), Ok(FaultKind::DropConnection));
        assert_eq!("drop-after".parse::<FaultKind>(), Ok(FaultKind::DropAfter));
        assert_eq!(FaultKind::DropAfter.to_string(), "drop-after");
        assert_eq!("529".parse::<FaultKind>(), Ok(FaultKind::Status529));
        assert!("418".parse::<FaultKind>().is_err());
    }

    #[test]
    fn key_rejections_parse() {
        assert_eq!(
            "401".parse::<KeyRejection>(),
            Ok(KeyRejection::Unauthorized)
        );
        assert_eq!("403".parse::<KeyRejection>(), Ok(KeyRejection::Forbidden));
        assert!("500".parse::<KeyRejection>().is_err());
        assert_eq!(KeyRejection::default().status(), 401);
    }

    #[test]
    fn builder_clamps_fractions() {
        let c = EmulatorConfig::new().error_rate(3.0).drop_rate(-1.0);
        assert_eq!(c.error_rate, 1.0);
        assert_eq!(c.drop_rate, 0.0);
    }
}
