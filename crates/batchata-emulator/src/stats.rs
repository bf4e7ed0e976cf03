//! What the emulator has seen: calls per endpoint, injected faults and the
//! batches created.
//!
//! Tests use this to assert things a client cannot observe on its own —
//! "the batch was submitted exactly once", "the status was polled N times",
//! "three 429s were injected". [`EmulatorStats`] is served as JSON at
//! `GET /_emulator/stats` and is `Deserialize`, so a test in another crate
//! (or another process) can fetch it over HTTP and read it back typed.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

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
            batches: Vec::new(),
        }
    }
}
