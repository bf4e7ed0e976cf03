//! The one HTTP layer every provider goes through: authentication, retries
//! with the official SDKs' rules, timeouts, error envelopes turned into clear
//! messages, and redaction of the API key from anything that leaves it.
//!
//! Retry rules follow the Anthropic and OpenAI Python SDKs: retry 408, 409,
//! 429 and every 5xx (529 included) and connection errors; an
//! `x-should-retry` header overrides the status rule; a server delay from
//! `retry-after-ms` or `retry-after` is honoured when it is between 0 and the
//! provider's cap (60 s Anthropic; 120 s OpenAI, beyond which OpenAI does not
//! retry at all); otherwise back off `min(0.5·2^k, 8)` seconds with up to 25%
//! jitter. Two retries per call by default.
//!
//! Gemini follows the google-genai SDK with its retries turned on: retry
//! 408, 429, 500, 502, 503 and 504 and connection errors, no other status and
//! no `x-should-retry`; back off `min(2^k + U(0,1), 60)` seconds. Google sends
//! no `retry-after`; a 429's `google.rpc.RetryInfo.retryDelay` is honoured
//! when it is between 0 and 60 s.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, RequestBuilder, Response, StatusCode};

use crate::catalog::ProviderKind;
use crate::error::{Error, Result};

/// Where the producer of a streamed request body sends its pieces.
pub type BodySender = mpsc::Sender<std::io::Result<Bytes>>;

/// Retries per call when the settings give none.
pub const DEFAULT_MAX_RETRIES: u32 = 2;
/// Timeout of one call when the settings give none (as the SDKs).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// An API key. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        Secret(key.into())
    }
    /// The key itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How a provider authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStyle {
    /// `x-api-key: KEY` (Anthropic).
    XApiKey,
    /// `Authorization: Bearer KEY` (OpenAI).
    Bearer,
    /// `x-goog-api-key: KEY` (Gemini).
    GoogApiKey,
}

/// Whose SDK the retries follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RetryRules {
    /// The Anthropic and OpenAI SDKs (Stainless).
    Stainless,
    /// The google-genai SDK with retries on.
    Google,
}

/// Longest `RetryInfo` delay honoured on Gemini; beyond it the backoff applies.
const GOOGLE_MAX_SERVER_DELAY: Duration = Duration::from_secs(60);

/// An authenticated client for one provider's base URL.
#[derive(Clone)]
pub struct HttpClient {
    client: Client,
    base_url: String,
    key: Secret,
    auth: AuthStyle,
    kind: ProviderKind,
    max_retries: u32,
    headers: HeaderMap,
    /// Longest server-requested delay honoured; beyond it the SDK rule applies.
    max_server_delay: Duration,
    /// Whether a server delay above the cap means "do not retry" (OpenAI).
    refuse_long_delay: bool,
    rules: RetryRules,
    key_env: &'static str,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("provider", &self.kind)
            .field("base_url", &self.base_url)
            .field("max_retries", &self.max_retries)
            .finish()
    }
}

/// Parameters to build an [`HttpClient`].
#[derive(Debug, Clone)]
pub struct HttpClientConfig {
    /// Which provider (for messages and retry rules).
    pub kind: ProviderKind,
    /// Base URL without trailing slash.
    pub base_url: String,
    /// The key.
    pub key: Secret,
    /// How to send it.
    pub auth: AuthStyle,
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Timeout per attempt.
    pub timeout: Duration,
    /// Extra headers on every request (e.g. `anthropic-version`).
    pub headers: Vec<(&'static str, String)>,
    /// The env var that holds the key, for error messages.
    pub key_env: &'static str,
}

impl HttpClient {
    /// Builds the client (rustls TLS).
    pub fn new(cfg: HttpClientConfig) -> Result<Self> {
        let client = Client::builder()
            .use_rustls_tls()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(cfg.timeout)
            // A long download may override the total timeout per request;
            // a stalled one is still cut after `timeout` without bytes.
            .read_timeout(cfg.timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| Error::Http {
                status: None,
                message: format!("could not build the HTTP client: {e}"),
                retryable: false,
            })?;
        let mut headers = HeaderMap::new();
        for (name, value) in cfg.headers {
            let v = HeaderValue::from_str(&value)
                .map_err(|_| Error::Validation(format!("header {name} has an invalid value")))?;
            headers.insert(HeaderName::from_static(name), v);
        }
        let (max_server_delay, refuse_long_delay) = match cfg.kind {
            ProviderKind::OpenAi => (Duration::from_secs(120), true),
            ProviderKind::Gemini => (GOOGLE_MAX_SERVER_DELAY, false),
            ProviderKind::Anthropic => (Duration::from_secs(60), false),
        };
        let rules = match cfg.kind {
            ProviderKind::Gemini => RetryRules::Google,
            ProviderKind::Anthropic | ProviderKind::OpenAi => RetryRules::Stainless,
        };
        Ok(HttpClient {
            client,
            base_url: cfg.base_url.trim_end_matches('/').to_string(),
            key: cfg.key,
            auth: cfg.auth,
            kind: cfg.kind,
            max_retries: cfg.max_retries,
            headers,
            max_server_delay,
            refuse_long_delay,
            rules,
            key_env: cfg.key_env,
        })
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `base_url` + `path` (`path` starts with '/').
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// Replaces the key with `<redacted>` anywhere in `text`.
    pub fn redact(&self, text: &str) -> String {
        redact(text, &self.key)
    }

    fn authorize(&self, rb: RequestBuilder, attempt: u32) -> RequestBuilder {
        let rb = rb.headers(self.headers.clone());
        let rb = match self.rules {
            RetryRules::Stainless => rb.header("x-stainless-retry-count", attempt.to_string()),
            RetryRules::Google => rb,
        };
        match self.auth {
            AuthStyle::XApiKey => rb.header("x-api-key", self.key.expose()),
            AuthStyle::Bearer => rb.bearer_auth(self.key.expose()),
            AuthStyle::GoogApiKey => rb.header("x-goog-api-key", self.key.expose()),
        }
    }

    /// Sends a request built by `make` (called once per attempt), retrying
    /// per the SDK rules, and returns the successful response. `what` names
    /// the operation in logs and errors ("create batch", ...).
    pub async fn send<F>(&self, what: &str, make: F) -> Result<Response>
    where
        F: Fn(&Client) -> RequestBuilder,
    {
        self.send_as(what, Attempts::Repeatable, make).await
    }

    /// [`HttpClient::send`] with the retry rules of `mode`: a create is
    /// repeated only when the server certainly did not act on it.
    pub async fn send_as<F>(&self, what: &str, mode: Attempts, make: F) -> Result<Response>
    where
        F: Fn(&Client) -> RequestBuilder,
    {
        let mut attempt: u32 = 0;
        loop {
            let rb = self.authorize(make(&self.client), attempt);
            let outcome = rb.send().await;
            let (retryable, delay, err) = match outcome {
                Ok(resp) if resp.status().is_success() => {
                    tracing::debug!(provider = %self.kind, what, status = resp.status().as_u16(), attempt, "http ok");
                    return Ok(resp);
                }
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    let body = resp.text().await.unwrap_or_default();
                    if mode == Attempts::Create && !create_not_acted_on(status) {
                        // A 5xx or a conflict: the server may have created
                        // it before failing. Repeating could pay twice.
                        let err = self.status_error(what, status, &body);
                        return Err(Error::OutcomeUnknown(err.to_string()));
                    }
                    let (server_delay, mut retryable) = match self.rules {
                        RetryRules::Stainless => (
                            retry_after(&headers),
                            match header_str(&headers, "x-should-retry") {
                                Some("true") => true,
                                Some("false") => false,
                                _ => should_retry_status(status),
                            },
                        ),
                        RetryRules::Google => {
                            (google_retry_delay(&body), google_should_retry(status))
                        }
                    };
                    let mut delay = None;
                    if let Some(d) = server_delay {
                        if d > Duration::ZERO && d <= self.max_server_delay {
                            delay = Some(d);
                        } else if d > self.max_server_delay && self.refuse_long_delay {
                            retryable = false;
                        }
                    }
                    let err = self.status_error(what, status, &body);
                    (retryable, delay, err)
                }
                Err(e) => {
                    if mode == Attempts::Create && !e.is_connect() {
                        // The request may have reached the server: the
                        // reply was lost, not necessarily the create.
                        return Err(Error::OutcomeUnknown(self.redact(&format!(
                            "{} {what}: the connection failed after the request was sent, so whether it was created is unknown: {}",
                            self.kind,
                            error_chain(&e)
                        ))));
                    }
                    let retryable =
                        e.is_connect() || e.is_timeout() || e.is_request() || e.is_body();
                    let err = Error::Http {
                        status: None,
                        message: self.redact(&format!(
                            "{} {what}: connection failed: {}",
                            self.kind,
                            error_chain(&e)
                        )),
                        retryable: true,
                    };
                    (retryable, None, err)
                }
            };
            if !retryable || attempt >= self.max_retries {
                if !retryable {
                    if let Error::Http {
                        status, message, ..
                    } = err
                    {
                        return Err(Error::Http {
                            status,
                            message,
                            retryable: false,
                        });
                    }
                }
                return Err(err);
            }
            let wait = delay.unwrap_or_else(|| match self.rules {
                RetryRules::Stainless => backoff(attempt),
                RetryRules::Google => google_backoff(attempt),
            });
            tracing::info!(provider = %self.kind, what, attempt, wait_ms = wait.as_millis() as u64, error = %err, "retrying");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// [`HttpClient::send`] for a body too large to hold whole. For each
    /// attempt `make` gets a fresh streamed body, and `produce` is handed the
    /// sender that feeds it and builds the body into it piece by piece. An
    /// error `produce` returns aborts that attempt and is what the call
    /// returns, in place of the transport error it causes.
    pub async fn send_streamed<M, P, Fut>(
        &self,
        what: &str,
        mode: Attempts,
        make: M,
        produce: P,
    ) -> Result<Response>
    where
        M: Fn(&Client, reqwest::Body) -> RequestBuilder,
        P: Fn(BodySender) -> Fut,
        Fut: Future<Output = Result<()>>,
    {
        let (senders_tx, mut senders_rx) = mpsc::unbounded::<BodySender>();
        let failure: Mutex<Option<Error>> = Mutex::new(None);
        let send = self.send_as(what, mode, |c| {
            let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(1);
            // The receiver lives as long as this function; a send cannot fail.
            let _ = senders_tx.unbounded_send(tx);
            make(c, reqwest::Body::wrap_stream(rx))
        });
        let producing = async {
            while let Some(tx) = senders_rx.next().await {
                let mut abort_tx = tx.clone();
                if let Err(e) = produce(tx).await {
                    let msg = e.to_string();
                    if let Ok(mut f) = failure.lock() {
                        *f = Some(e);
                    }
                    let _ = abort_tx.send(Err(std::io::Error::other(msg))).await;
                }
            }
        };
        tokio::pin!(send);
        let outcome = tokio::select! {
            r = &mut send => r,
            () = producing => send.await,
        };
        let built_failure = failure.lock().ok().and_then(|mut f| f.take());
        outcome.map_err(|e| built_failure.unwrap_or(e))
    }

    /// GETs `path` and decodes JSON.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        path: &str,
    ) -> Result<T> {
        let url = self.url(path);
        let resp = self.send(what, |c| c.get(&url)).await?;
        self.decode(what, resp).await
    }

    /// POSTs a JSON body to `path` and decodes JSON, under `mode`'s retry
    /// rules. For a create,
    /// a success whose body cannot be read is an unknown outcome too: the
    /// resource exists, but its id was lost.
    pub async fn post_json_as<B: serde::Serialize + ?Sized, T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        mode: Attempts,
        path: &str,
        body: &B,
    ) -> Result<T> {
        let url = self.url(path);
        let bytes = serde_json::to_vec(body)
            .map_err(|e| Error::Parse(format!("{what}: cannot encode request: {e}")))?;
        let bytes = bytes::Bytes::from(bytes);
        let resp = self
            .send_as(what, mode, |c| {
                c.post(&url)
                    .header("content-type", "application/json")
                    .body(bytes.clone())
            })
            .await?;
        match self.decode(what, resp).await {
            Err(e) if mode == Attempts::Create => Err(Error::OutcomeUnknown(format!(
                "{what}: the provider accepted the request but its reply could not be read ({e})"
            ))),
            r => r,
        }
    }

    /// Decodes a JSON response body.
    pub async fn decode<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        resp: Response,
    ) -> Result<T> {
        let bytes = resp.bytes().await.map_err(|e| Error::Http {
            status: None,
            message: self.redact(&format!(
                "{} {what}: reading the response failed: {}",
                self.kind,
                error_chain(&e)
            )),
            retryable: true,
        })?;
        serde_json::from_slice(&bytes).map_err(|e| {
            let start = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
            Error::Parse(self.redact(&format!(
                "{} {what}: unexpected response ({e}); it starts: {start}",
                self.kind
            )))
        })
    }

    fn status_error(&self, what: &str, status: StatusCode, body: &str) -> Error {
        let (etype, msg) = parse_error_envelope(body);
        let detail = match (etype, msg) {
            (Some(t), Some(m)) => format!("{t}: {m}"),
            (None, Some(m)) => m,
            (Some(t), None) => t,
            (None, None) => body.chars().take(300).collect(),
        };
        let advice = match status.as_u16() {
            401 => format!(" — the API key was refused; check {}", self.key_env),
            // Google answers a bad key with 400 and reason API_KEY_INVALID.
            400 if body.contains("API_KEY_INVALID") => {
                format!(" — the API key was refused; check {}", self.key_env)
            }
            403 if self.rules == RetryRules::Google && body.contains("unregistered callers") => {
                format!(" — no API key reached the provider; set {}", self.key_env)
            }
            403 => " — the key lacks permission for this operation".to_string(),
            404 => " — not found; check the id and the base URL".to_string(),
            413 => " — the batch is too large; lower items_per_batch".to_string(),
            429 => " — rate limited; will be retried later".to_string(),
            s if s >= 500 => " — the provider had a problem; it is retried".to_string(),
            _ => String::new(),
        };
        // Google refuses a bad key with a 400; it means what a 401 means
        // everywhere else (the run stops, no job fails), so it is reported
        // as one. The message keeps the real status.
        let reported = if status.as_u16() == 400 && body.contains("API_KEY_INVALID") {
            401
        } else {
            status.as_u16()
        };
        Error::Http {
            status: Some(reported),
            message: self.redact(&format!(
                "{} {what} failed with HTTP {}: {detail}{advice}",
                self.kind,
                status.as_u16()
            )),
            retryable: match self.rules {
                RetryRules::Stainless => should_retry_status(status),
                RetryRules::Google => google_should_retry(status),
            },
        }
    }
}

/// How a request may be repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempts {
    /// Reads, cancels, uploads: repeating is harmless, so every retryable
    /// failure is retried (the SDKs' rules).
    Repeatable,
    /// Creating a batch: repeated only when the server certainly did not
    /// act on it (the connection never opened, 408, 429). Any other
    /// failure — a reply lost after the request was sent, a timeout, a 5xx
    /// — is [`Error::OutcomeUnknown`], for the caller to look the batch up
    /// before creating it again.
    Create,
}

/// Statuses that say the server did not act on a create.
fn create_not_acted_on(status: StatusCode) -> bool {
    matches!(status.as_u16(), 400..=499) && status.as_u16() != 409
}

/// Whether the google-genai SDK retries a status (when its retries are on).
pub fn google_should_retry(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

/// The google-genai SDK's backoff: `min(2^k + U(0,1), 60)` seconds.
pub fn google_backoff(retries_taken: u32) -> Duration {
    let base = 2f64.powi(retries_taken.min(10) as i32) + fastrand::f64();
    Duration::from_secs_f64(base.min(60.0))
}

/// The delay a Google error body asks for in a `google.rpc.RetryInfo`
/// detail (`"retryDelay": "1.5s"`), when it is between 0 and 60 s.
pub fn google_retry_delay(body: &str) -> Option<Duration> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let details = v.get("error")?.get("details")?.as_array()?;
    let delay = details.iter().find_map(|d| {
        let t = d.get("@type")?.as_str()?;
        if !t.ends_with("google.rpc.RetryInfo") {
            return None;
        }
        d.get("retryDelay")?.as_str()
    })?;
    let secs: f64 = delay.trim().strip_suffix('s')?.parse().ok()?;
    if !secs.is_finite() || secs <= 0.0 {
        return None;
    }
    let d = Duration::from_secs_f64(secs);
    (d <= GOOGLE_MAX_SERVER_DELAY).then_some(d)
}

/// Whether a status is retried by default.
pub fn should_retry_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 409 | 429) || status.is_server_error()
}

/// `min(0.5·2^k, 8)` seconds, minus up to 25% jitter.
pub fn backoff(retries_taken: u32) -> Duration {
    let base = (0.5 * 2f64.powi(retries_taken.min(10) as i32)).min(8.0);
    let jitter = 1.0 - 0.25 * fastrand::f64();
    Duration::from_secs_f64(base * jitter)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The server's requested delay: `retry-after-ms`, else `retry-after`
/// (seconds, possibly fractional, or an HTTP date).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    if let Some(ms) =
        header_str(headers, "retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok())
    {
        if ms.is_finite() && ms >= 0.0 {
            return Some(Duration::from_secs_f64(ms / 1000.0));
        }
    }
    let v = header_str(headers, "retry-after")?.trim();
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::from_secs_f64(secs));
        }
        return None;
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    delta.to_std().ok()
}

/// `(type, message)` from an Anthropic, OpenAI or Google error body.
pub fn parse_error_envelope(body: &str) -> (Option<String>, Option<String>) {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
        return (None, None);
    };
    let err = v.get("error").unwrap_or(&v);
    let etype = err
        .get("type")
        .or_else(|| err.get("status"))
        .or_else(|| err.get("code"))
        .and_then(|t| t.as_str())
        .map(String::from);
    let msg = err
        .get("message")
        .and_then(|m| m.as_str())
        .map(String::from);
    (etype, msg)
}

/// Replaces every occurrence of the key in `text`.
pub fn redact(text: &str, key: &Secret) -> String {
    let k = key.expose();
    if k.len() < 4 {
        return text.to_string();
    }
    text.replace(k, "<redacted>")
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_follows_sdk_curve() {
        for (k, max) in [
            (0u32, 0.5),
            (1, 1.0),
            (2, 2.0),
            (3, 4.0),
            (4, 8.0),
            (9, 8.0),
        ] {
            let d = backoff(k).as_secs_f64();
            assert!(d <= max && d >= max * 0.75, "k={k} d={d}");
        }
    }

    #[test]
    fn retry_after_headers() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("1.5"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
        h.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn statuses_retried_like_the_sdks() {
        for s in [408u16, 409, 429, 500, 502, 503, 529] {
            assert!(should_retry_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [400u16, 401, 403, 404, 413, 422] {
            assert!(
                !should_retry_status(StatusCode::from_u16(s).unwrap()),
                "{s}"
            );
        }
    }

    #[test]
    fn google_rules() {
        for s in [408u16, 429, 500, 502, 503, 504] {
            assert!(google_should_retry(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [400u16, 403, 404, 409, 501, 529] {
            assert!(
                !google_should_retry(StatusCode::from_u16(s).unwrap()),
                "{s}"
            );
        }
        for (k, lo, hi) in [
            (0u32, 1.0, 2.0),
            (1, 2.0, 3.0),
            (3, 8.0, 9.0),
            (9, 60.0, 60.0),
        ] {
            let d = google_backoff(k).as_secs_f64();
            assert!(d >= lo && d <= hi, "k={k} d={d}");
        }
        let body = r#"{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"1.500s"}]}}"#;
        assert_eq!(google_retry_delay(body), Some(Duration::from_millis(1500)));
        assert_eq!(google_retry_delay(&body.replace("1.500s", "90s")), None);
        assert_eq!(google_retry_delay("{}"), None);
        let (t, m) = parse_error_envelope(body);
        assert_eq!(
            (t.as_deref(), m.as_deref()),
            (
                Some("RESOURCE_EXHAUSTED"),
                Some("Resource has been exhausted (e.g. check quota).")
            )
        );
    }

    #[test]
    fn redaction_and_envelopes() {
        let key = Secret::new("sk-ant-secret-123");
        assert_eq!(
            redact("bad key sk-ant-secret-123!", &key),
            "bad key <redacted>!"
        );
        assert_eq!(format!("{key:?} {key}"), "Secret(<redacted>) <redacted>");
        let (t, m) = parse_error_envelope(
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
        );
        assert_eq!(
            (t.as_deref(), m.as_deref()),
            (Some("rate_limit_error"), Some("slow down"))
        );
        let (t, m) = parse_error_envelope(
            r#"{"error":{"message":"Invalid key","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#,
        );
        assert_eq!(
            (t.as_deref(), m.as_deref()),
            (Some("invalid_request_error"), Some("Invalid key"))
        );
    }
}
