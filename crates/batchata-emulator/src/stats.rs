//! What the emulator has seen: calls per endpoint, injected faults, the
//! batches created and the requests submitted more than once.
//!
//! Tests use this to assert things a client cannot observe on its own —
//! "the batch was submitted exactly once", "the status was polled N times",
//! "three 429s were injected", "no request was sent twice". [`EmulatorStats`]
//! is served as JSON at `GET /_emulator/stats` and is `Deserialize`, so a
//! test in another crate (or another process) can fetch it over HTTP and
//! read it back typed. Fields added later carry `#[serde(default)]`, so
//! stats JSON from an older emulator still parses.
//!
//! A resubmission is recognised by a 64-bit digest of the request's
//! `custom_id` and its whole content (Anthropic `params`, OpenAI line
//! `body`), taken over the parsed JSON so key order and whitespace do not
//! matter. Each provider keeps a set of the digests it has accepted: 8 bytes
//! per distinct request, cleared only by `/_emulator/reset`.

use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{Endpoint, FaultKind};

/// A snapshot of the emulator's counters and batches.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmulatorStats {
    /// Every provider call received (faulted ones included), keyed by
    /// endpoint name such as `"anthropic.create"` (see [`Endpoint::as_str`]).
    /// Endpoints never called are absent.
    pub calls: BTreeMap<String, u64>,
    /// Injected faults keyed by kind: `"429"`, `"500"`, `"503"`, `"529"`,
    /// `"drop"`, `"drop-after"` (see [`FaultKind::as_str`]).
    pub faults: BTreeMap<String, u64>,
    /// Injected faults keyed by endpoint name.
    pub faults_by_endpoint: BTreeMap<String, u64>,
    /// Sum of [`calls`](Self::calls).
    pub total_calls: u64,
    /// Sum of [`faults`](Self::faults).
    pub total_faults: u64,
    /// Every batch ever created on either provider — forgotten, deleted and
    /// failed ones included. Forgetting or deleting never lowers it; only
    /// `/_emulator/reset` sets it back to 0.
    #[serde(default)]
    pub batches_created: u64,
    /// Requests submitted again: how many requests of created batches had
    /// the same `custom_id` and the same content (Anthropic `params`, OpenAI
    /// line `body`; all of it, compared as JSON) as a request already
    /// submitted in an earlier batch on the same provider. A run that
    /// resumes without resubmitting keeps this at 0; resending an edited
    /// request under the same `custom_id` does not count. An Anthropic create
    /// refused with an HTTP error and an OpenAI batch that fails validation
    /// submit nothing.
    #[serde(default)]
    pub requests_resubmitted: u64,
    /// Every batch created (and not since reset), oldest first, deleted and
    /// forgotten ones included.
    pub batches: Vec<BatchSummary>,
}

impl EmulatorStats {
    /// Calls received by the endpoint with this stable name (0 if none).
    pub fn calls_to(&self, endpoint: &str) -> u64 {
        self.calls.get(endpoint).copied().unwrap_or(0)
    }

    /// Faults of this kind (`"429"`, `"drop"`, ...) injected so far.
    pub fn faults_of(&self, kind: &str) -> u64 {
        self.faults.get(kind).copied().unwrap_or(0)
    }

    /// The batches created on one provider (`"anthropic"` or `"openai"`).
    pub fn batches_for<'a>(&'a self, provider: &'a str) -> impl Iterator<Item = &'a BatchSummary> {
        self.batches.iter().filter(move |b| b.provider == provider)
    }
}

/// One created batch, as listed in [`EmulatorStats::batches`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchSummary {
    /// `"anthropic"` or `"openai"`.
    pub provider: String,
    /// The provider batch id (`msgbatch_...` / `batch_...`).
    pub id: String,
    /// The status a client would see now (`processing_status` / `status`).
    pub status: String,
    /// Requests (Anthropic) or input lines (OpenAI) in the batch.
    pub request_count: u64,
    /// Distinct `custom_id`s among them.
    pub custom_ids: u64,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// The batch metadata (OpenAI), `None` if absent.
    pub metadata: Option<serde_json::Value>,
    /// Whether the batch was deleted (Anthropic).
    pub deleted: bool,
    /// Whether the provider has forgotten the batch (`/_emulator/forget` or
    /// `forget_batches_after`): calls naming it answer 404 and lists leave
    /// it out, but it stays listed here.
    #[serde(default)]
    pub forgotten: bool,
    /// How many of this batch's requests were resubmissions (see
    /// [`EmulatorStats::requests_resubmitted`]).
    #[serde(default)]
    pub resubmitted: u64,
}

/// The digest identifying one submitted request: its `custom_id` and its
/// content as parsed JSON (object keys in sorted order, so the key order and
/// whitespace of the wire text do not matter).
pub(crate) fn request_digest(custom_id: &str, content: &Value) -> u64 {
    // Only compared within one process, so the standard hasher will do.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    custom_id.hash(&mut h);
    feed(&mut h, content);
    h.finish()
}

fn feed(h: &mut impl Hasher, v: &Value) {
    match v {
        Value::Null => h.write_u8(0),
        Value::Bool(b) => {
            h.write_u8(1);
            b.hash(h);
        }
        Value::Number(n) => {
            h.write_u8(2);
            if let Some(u) = n.as_u64() {
                h.write_u8(0);
                h.write_u64(u);
            } else if let Some(i) = n.as_i64() {
                h.write_u8(1);
                h.write_i64(i);
            } else {
                h.write_u8(2);
                h.write_u64(n.as_f64().unwrap_or(f64::NAN).to_bits());
            }
        }
        Value::String(s) => {
            h.write_u8(3);
            s.hash(h);
        }
        Value::Array(items) => {
            h.write_u8(4);
            h.write_usize(items.len());
            items.iter().for_each(|x| feed(h, x));
        }
        Value::Object(map) => {
            h.write_u8(5);
            h.write_usize(map.len());
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            for (k, x) in entries {
                k.hash(h);
                feed(h, x);
            }
        }
    }
}

/// Thread-safe call and fault counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    inner: Mutex<CounterState>,
}

#[derive(Debug, Default)]
struct CounterState {
    calls: BTreeMap<&'static str, u64>,
    faults: BTreeMap<&'static str, u64>,
    faults_by_endpoint: BTreeMap<&'static str, u64>,
    batches_created: u64,
    requests_resubmitted: u64,
}

impl Counters {
    fn lock(&self) -> std::sync::MutexGuard<'_, CounterState> {
        // A panic while holding this lock cannot leave the counters invalid.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts one call to `endpoint`.
    pub(crate) fn record_call(&self, endpoint: Endpoint) {
        *self.lock().calls.entry(endpoint.as_str()).or_default() += 1;
    }

    /// Counts one injected fault.
    pub(crate) fn record_fault(&self, endpoint: Endpoint, fault: FaultKind) {
        let mut st = self.lock();
        *st.faults.entry(fault.as_str()).or_default() += 1;
        *st.faults_by_endpoint.entry(endpoint.as_str()).or_default() += 1;
    }

    /// Counts one created batch whose requests have `digests`: those
    /// already in `submitted` (the provider's set) had been submitted
    /// before, the others are added to it. Returns how many were
    /// resubmissions.
    pub(crate) fn record_batch(&self, submitted: &mut HashSet<u64>, digests: Vec<u64>) -> u64 {
        submitted.reserve(digests.len());
        let resubmitted = digests
            .into_iter()
            .filter(|d| !submitted.insert(*d))
            .count() as u64;
        let mut st = self.lock();
        st.batches_created += 1;
        st.requests_resubmitted += resubmitted;
        resubmitted
    }

    /// Forgets everything.
    pub(crate) fn reset(&self) {
        *self.lock() = CounterState::default();
    }

    /// A snapshot without batches.
    pub(crate) fn snapshot(&self) -> EmulatorStats {
        let st = self.lock();
        let to_owned = |m: &BTreeMap<&'static str, u64>| -> BTreeMap<String, u64> {
            m.iter().map(|(k, v)| ((*k).to_string(), *v)).collect()
        };
        EmulatorStats {
            calls: to_owned(&st.calls),
            faults: to_owned(&st.faults),
            faults_by_endpoint: to_owned(&st.faults_by_endpoint),
            total_calls: st.calls.values().sum(),
            total_faults: st.faults.values().sum(),
            batches_created: st.batches_created,
            requests_resubmitted: st.requests_resubmitted,
            batches: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn digests_ignore_key_order_but_not_content_or_id() {
        let a =
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5});
        let b: Value = serde_json::from_str(
            r#"{ "max_tokens":5, "messages":[{"content":"hi","role":"user"}], "model":"m" }"#,
        )
        .unwrap();
        assert_eq!(request_digest("x", &a), request_digest("x", &b));
        assert_ne!(request_digest("y", &a), request_digest("x", &a));
        let edited = json!({"model": "m", "messages": [{"role": "user", "content": "hi!"}], "max_tokens": 5});
        assert_ne!(request_digest("x", &edited), request_digest("x", &a));
        assert_ne!(
            request_digest("x", &json!({"max_tokens": 5})),
            request_digest("x", &json!({"max_tokens": 5.0}))
        );
    }

    #[test]
    fn old_stats_json_still_parses() {
        let old = json!({
            "calls": {"anthropic.create": 1}, "faults": {}, "faults_by_endpoint": {},
            "total_calls": 1, "total_faults": 0,
            "batches": [{"provider": "anthropic", "id": "msgbatch_1", "status": "ended",
                "request_count": 1, "custom_ids": 1, "created_at": "2026-01-01T00:00:00Z",
                "metadata": null, "deleted": false}],
        });
        let stats: EmulatorStats = serde_json::from_value(old).unwrap();
        assert_eq!(stats.batches_created, 0);
        assert_eq!(stats.requests_resubmitted, 0);
        assert!(!stats.batches[0].forgotten);
        assert_eq!(stats.batches[0].resubmitted, 0);
    }
}
