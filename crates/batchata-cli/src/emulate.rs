//! `batchata emulate`: serve the local emulator of the providers' batch APIs
//! on a port, its fault flags mapped onto `batchata_emulator`'s config, so a
//! pipeline (ours, the official SDKs, anyone's) can be tried against slow
//! batches, rate limits, outages, lost answers, errored requests, expiry,
//! forgotten batches and revoked keys, with no real API key.

use std::io::Write;
use std::time::Duration;

use batchata_emulator::{Emulator, EmulatorConfig, Endpoint, FaultKind};

use crate::Failure;

pub(crate) const EMULATE_HELP: &str = "\
Examples:
  batchata emulate --port 8765
  batchata emulate --port 8765 --processing-delay 20s --error-rate 0.1
  batchata emulate --port 8765 --rate-limit-rate 0.2 --retry-after 500ms --drop-rate 0.05
  batchata emulate --port 8765 --fail-first 3:529@anthropic.create --expire-rate 0.5
  batchata emulate --port 8765 --fail-first 1:drop-after@anthropic.create --forget-batches-after 10m
  batchata emulate --port 8765 --api-key sk-test-key

Point a pipeline at it with:
  ANTHROPIC_BASE_URL=http://127.0.0.1:PORT  ANTHROPIC_API_KEY=anything
  OPENAI_BASE_URL=http://127.0.0.1:PORT/v1  OPENAI_API_KEY=anything
  GOOGLE_GEMINI_BASE_URL=http://127.0.0.1:PORT  GOOGLE_API_KEY=anything
or: batchata run jobs.jsonl --results-dir out --emulator-url http://127.0.0.1:PORT
Statistics (calls, faults, batches, resubmitted requests): GET http://127.0.0.1:PORT/_emulator/stats
Change it while it runs (POST http://127.0.0.1:PORT/...):
  /_emulator/forget                  every batch that exists now becomes unknown (404, gone from lists)
  /_emulator/revoke-keys             every later call answers 401 (?status=403: permission errors)
  /_emulator/restore-keys            keys are accepted again
  /_emulator/reset                   forget all batches, files, counters and fault progress
Answers are deterministic for a seed: structured output follows the request's schema,
citations quote the documents sent. Stop it with Ctrl+C.";

fn fraction(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number; give a fraction from 0 to 1, e.g. 0.1"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not between 0 and 1; e.g. 0.1 for 10%"))
    }
}

/// `COUNT:FAULT[@ENDPOINT]`, e.g. `3:429`, `2:500@anthropic.create`, `1:429:2000@openai.files.create`.
fn fail_first(s: &str) -> Result<(u32, FaultKind, Option<Endpoint>), String> {
    let (rule, endpoint) = match s.split_once('@') {
        Some((r, e)) => (r, Some(e.parse::<Endpoint>()?)),
        None => (s, None),
    };
    let (count, fault) = rule.split_once(':').ok_or_else(|| {
        format!("'{s}' is not COUNT:FAULT[@ENDPOINT]; e.g. 3:429 or 2:500@anthropic.create")
    })?;
    let count = count
        .parse()
        .map_err(|_| format!("'{count}' in '{s}' is not a count of calls"))?;
    Ok((count, fault.parse()?, endpoint))
}

#[derive(clap::Args)]
pub(crate) struct EmulateArgs {
    /// Port on 127.0.0.1 (0 picks a free one; the address is printed first).
    #[arg(long, default_value_t = 8765)]
    port: u16,
    /// How long each batch takes from creation to its end (e.g. 20s); its
    /// requests finish progressively over that span.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "0s")]
    processing_delay: Duration,
    /// How long a cancelled batch stays cancelling.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "0s")]
    cancel_delay: Duration,
    /// Fraction of requests that end errored (api_error / an error-file line / an INTERNAL status).
    #[arg(long, value_name = "FRACTION", value_parser = fraction, default_value_t = 0.0)]
    error_rate: f64,
    /// Fraction of HTTP calls answered 429.
    #[arg(long, value_name = "FRACTION", value_parser = fraction, default_value_t = 0.0)]
    rate_limit_rate: f64,
    /// The delay 429s advertise in retry-after / retry-after-ms (Gemini: RetryInfo.retryDelay).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "1s")]
    retry_after: Duration,
    /// Fraction of HTTP calls answered 500.
    #[arg(long, value_name = "FRACTION", value_parser = fraction, default_value_t = 0.0)]
    server_error_rate: f64,
    /// Fraction of HTTP calls answered 503.
    #[arg(long, value_name = "FRACTION", value_parser = fraction, default_value_t = 0.0)]
    unavailable_rate: f64,
    /// Fraction of HTTP calls answered 529 overloaded (503 on OpenAI and Gemini, which have no 529).
    #[arg(long, value_name = "FRACTION", value_parser = fraction, default_value_t = 0.0)]
    overloaded_rate: f64,
    /// Fraction of connections closed without an answer.
    #[arg(long, value_name = "FRACTION", value_parser = fraction, default_value_t = 0.0)]
    drop_rate: f64,
    /// Fail the first COUNT calls with FAULT (429, 429:MS, 500, 503, 529, drop, drop-after),
    /// optionally only on one endpoint (e.g. anthropic.create, openai.files.create,
    /// gemini.create). drop closes the connection before the call is handled; drop-after
    /// handles it (the batch is created, the file stored) and then closes the connection
    /// unanswered. Repeatable.
    #[arg(long, value_name = "COUNT:FAULT[@ENDPOINT]", value_parser = fail_first)]
    fail_first: Vec<(u32, FaultKind, Option<Endpoint>)>,
    /// Each batch becomes unknown to the provider this long after its creation
    /// (e.g. 10m): retrieve, cancel and results answer 404, lists leave it out.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    forget_batches_after: Option<Duration>,
    /// Fraction of batches that expire instead of completing.
    #[arg(long, value_name = "FRACTION", value_parser = fraction, default_value_t = 0.0)]
    expire_rate: f64,
    /// In an expiring batch, the fraction of requests that finish first.
    #[arg(long, value_name = "FRACTION", value_parser = fraction, default_value_t = 0.5)]
    expire_keep: f64,
    /// Added latency before every call is answered (e.g. 50ms).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "0s")]
    latency: Duration,
    /// Most requests in one Anthropic batch [default: 100000].
    #[arg(long, value_name = "N")]
    anthropic_max_requests: Option<usize>,
    /// Most lines in one OpenAI batch [default: 50000].
    #[arg(long, value_name = "N")]
    openai_max_requests: Option<usize>,
    /// Return results in request order instead of completion order.
    #[arg(long)]
    ordered_results: bool,
    /// Accept only this API key; others get the provider's 401 [default: any non-empty key].
    #[arg(long, value_name = "KEY")]
    api_key: Option<String>,
    /// Seed for the deterministic faults and answers.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

impl EmulateArgs {
    fn config(&self) -> EmulatorConfig {
        let mut cfg = EmulatorConfig::new()
            .processing_delay(self.processing_delay)
            .cancel_delay(self.cancel_delay)
            .error_rate(self.error_rate)
            .rate_limit_rate(self.rate_limit_rate)
            .retry_after(self.retry_after)
            .server_error_rate(self.server_error_rate)
            .unavailable_rate(self.unavailable_rate)
            .overloaded_rate(self.overloaded_rate)
            .drop_rate(self.drop_rate)
            .expire_rate(self.expire_rate)
            .expire_keep_fraction(self.expire_keep)
            .latency(self.latency)
            .shuffle_results(!self.ordered_results)
            .seed(self.seed);
        let d = EmulatorConfig::default();
        cfg = cfg
            .anthropic_limits(
                self.anthropic_max_requests
                    .unwrap_or(d.anthropic_max_requests),
                d.anthropic_max_bytes,
            )
            .openai_limits(
                self.openai_max_requests.unwrap_or(d.openai_max_requests),
                d.openai_max_file_bytes,
            );
        for (count, fault, endpoint) in &self.fail_first {
            cfg = match endpoint {
                Some(e) => cfg.fail_first(*e, *count, *fault),
                None => cfg.fail_first_any(*count, *fault),
            };
        }
        if let Some(k) = &self.api_key {
            cfg = cfg.api_key(k.clone());
        }
        if let Some(d) = self.forget_batches_after {
            cfg = cfg.forget_batches_after(d);
        }
        cfg
    }
}

pub(crate) async fn emulate(a: EmulateArgs) -> Result<u8, Failure> {
    crate::init_logs(batchata::Verbosity::Warn);
    let h = Emulator::bind(a.config(), a.port).await.map_err(|e| {
        Failure::input(format!(
            "cannot listen on 127.0.0.1:{}: {e}; pick another --port (0 = any free one)",
            a.port
        ))
    })?;
    // The address first, on its own line: scripts read it. Whoever reads
    // may close the pipe after that line; the server keeps serving.
    let banner = format!(
        "batchata emulator listening on {}\n  ANTHROPIC_BASE_URL={}\n  OPENAI_BASE_URL={}\n  GOOGLE_GEMINI_BASE_URL={}\n  stats: {}\nPress Ctrl+C to stop.",
        h.base_url(),
        h.anthropic_base_url(),
        h.openai_base_url(),
        h.gemini_base_url(),
        h.stats_url()
    );
    let mut out = std::io::stdout();
    for line in banner.lines() {
        if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
            break;
        }
    }
    h.run_until(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    Ok(0)
}
