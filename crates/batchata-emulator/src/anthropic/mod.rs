//! The Anthropic Message Batches API: create, retrieve, list, cancel, delete
//! and results.
//!
//! A create body is parsed once, off the async runtime, into compact
//! per-request records (the `custom_id`, the raw `params` JSON text, a finish
//! fraction and the validation outcome). Param errors do not fail the create
//! call: as on the real API they come back as `errored` result lines. Status
//! is computed from the batch's [`Timeline`] on every read, and the results
//! JSONL is generated lazily and streamed when a client asks for it, so a
//! 100,000-request batch costs little until its results are read.
//!
//! `batches.rs` serves the batch calls and the batch object, `validate.rs`
//! checks each request's `params` as the Messages API does, and `render.rs`
//! streams the results JSONL. This file holds the store they share: the
//! batches, their compact request records and their status.

mod batches;
mod render;
mod validate;

pub(crate) use batches::{cancel, create, delete, list, retrieve};
pub(crate) use render::results;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use axum::http::StatusCode;
use chrono::SecondsFormat;
use serde_json::value::RawValue;

use crate::error::ApiError;
use crate::lifecycle::Timeline;
use crate::stats::BatchSummary;

/// What became of one request once it is processed.
#[derive(Debug, Clone)]
enum Outcome {
    /// Valid params: the request succeeds.
    Ok,
    /// Invalid params: an `invalid_request_error` with this message.
    Invalid(Box<str>),
    /// Chosen by `error_rate`: an `api_error`.
    Injected,
}

/// One request of a batch, stored compactly.
#[derive(Debug)]
struct Item {
    custom_id: Box<str>,
    params: Box<RawValue>,
    frac: u32,
    outcome: Outcome,
}

/// The immutable part of a batch, shared with result generators.
#[derive(Debug)]
struct BatchData {
    items: Vec<Item>,
    /// Finish fractions of requests that will succeed, ascending.
    ok_sorted: Vec<u32>,
    /// Finish fractions of requests that will error, ascending.
    err_sorted: Vec<u32>,
}

/// One batch.
#[derive(Debug)]
struct Batch {
    id: String,
    seq: u64,
    timeline: Timeline,
    data: Arc<BatchData>,
    deleted: bool,
    /// How many of its requests had been submitted in an earlier batch.
    resubmitted: u64,
}

/// All Anthropic batches of an emulator.
#[derive(Debug, Default)]
pub(crate) struct Store {
    batches: HashMap<String, Batch>,
    /// Ids in creation order.
    order: Vec<String>,
    /// Digests of every request submitted so far (see [`request_digest`]).
    submitted: HashSet<u64>,
}

/// The processing status at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Status {
    InProgress,
    Canceling,
    /// Ended this long after creation.
    Ended(std::time::Duration),
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::InProgress => "in_progress",
            Status::Canceling => "canceling",
            Status::Ended(_) => "ended",
        }
    }
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl Batch {
    /// Whether a client can still see the batch at `now` (neither deleted
    /// nor forgotten).
    fn known(&self, now: Instant) -> bool {
        !self.deleted && !self.timeline.is_forgotten(now)
    }
}

impl Store {
    /// The batch `id` if it is known at `now`, else the not-found error.
    fn get(&self, id: &str, now: Instant) -> Result<&Batch, ApiError> {
        self.batches
            .get(id)
            .filter(|b| b.known(now))
            .ok_or_else(|| not_found(id))
    }

    /// Forgets every batch that exists now; returns how many were still known.
    pub(crate) fn forget_all(&mut self, now: Instant) -> usize {
        let mut n = 0;
        for b in self.batches.values_mut() {
            if b.known(now) {
                n += 1;
            }
            b.timeline.forgotten = true;
        }
        n
    }

    /// `(creation sequence, summary)` for every batch.
    pub(crate) fn summaries(&self) -> Vec<(u64, BatchSummary)> {
        let now = Instant::now();
        self.order
            .iter()
            .filter_map(|id| self.batches.get(id))
            .map(|b| {
                let n = b.data.items.len() as u64;
                (
                    b.seq,
                    BatchSummary {
                        provider: "anthropic".into(),
                        id: b.id.clone(),
                        status: b.status(now).as_str().into(),
                        request_count: n,
                        custom_ids: n,
                        created_at: rfc3339(b.timeline.created_wall),
                        metadata: None,
                        deleted: b.deleted,
                        forgotten: b.timeline.is_forgotten(now),
                        resubmitted: b.resubmitted,
                    },
                )
            })
            .collect()
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::anthropic(
        StatusCode::NOT_FOUND,
        "not_found_error",
        format!("Message batch {id} not found"),
    )
}
