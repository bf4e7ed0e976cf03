//! The Gemini API batch mode (Developer API) and the part of the Files API it
//! needs: create a batch from inline requests or from an uploaded JSONL file,
//! get, list, cancel and delete it; upload files with the resumable protocol,
//! get, list, delete and download them.
//!
//! Written from the wire reference alone, like the other provider modules.
//! The facts it keeps to:
//!
//! * a batch is a `google.longrunning.Operation` named `batches/{id}`; the
//!   batch itself sits in `metadata` (`@type` `GenerateContentBatch`), its
//!   state is `BATCH_STATE_*`, `done` is present (true) only once it ended,
//!   and its output is in both `metadata.output` and `response`;
//! * JSON is proto3 JSON: int64 counts are strings, default values (`false`,
//!   zero counts) are left out, timestamps are RFC 3339 in UTC with `Z`;
//! * requests may spell fields in camelCase or snake_case; answers use
//!   camelCase. A field the API does not know fails the call, as a proto
//!   parser would;
//! * inline results are doubly nested (`inlinedResponses.inlinedResponses`)
//!   and echo each request's `metadata`; file results are a generated JSONL
//!   file (`files/batch-{id}`) whose lines echo each request's `key`;
//! * an expired batch has no results; a file batch whose input cannot be
//!   read fails as a whole, with the reason in the top-level `error`;
//! * errors are `{"error":{"code","message","status","details"}}`, and a bad
//!   API key is a 400 `INVALID_ARGUMENT` with reason `API_KEY_INVALID`.
//!
//! Status is computed from the batch's [`Timeline`] on every read (pending for
//! the first tenth of the processing delay, then running); results are built
//! once, the first time a finished batch is looked at, so they are stable.
//!
//! # Files
//!
//! * `routes.rs` — the paths served, `v1` rewriting, API-key checks and
//!   injected faults;
//! * `proto.rs` — reading proto3 JSON: camelCase or snake_case names,
//!   unknown fields refused, values type-checked;
//! * `validate.rs` — checking a `GenerateContentRequest`;
//! * `create.rs` — reading a create body (inline or file) into a batch;
//! * `batches.rs` — the batch as an Operation, and get, list, cancel, delete;
//! * `render.rs` — the answers and the output of a finished batch;
//! * `files.rs` — the Files API, resumable uploads and downloads;
//! * this file — the store they share: batches, files and uploads.

mod batches;
mod create;
mod files;
mod proto;
mod render;
mod routes;
mod validate;

pub(crate) use routes::{check_auth, classify, fault_error, rewrite_v1, router, unknown_path};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::lifecycle::Timeline;
use crate::stats::BatchSummary;
use routes::not_found;

/// `@type` of a batch in an Operation's `metadata`.
const BATCH_TYPE: &str =
    "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatch";
/// `@type` of a finished batch's output in an Operation's `response`.
const OUTPUT_TYPE: &str =
    "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatchOutput";
/// Uploaded files are kept 48 hours.
const FILE_TTL: chrono::Duration = chrono::Duration::hours(48);
/// Batch pages: default and largest `pageSize`.
const BATCH_PAGE: (usize, usize) = (50, 1000);
/// File pages: default and largest `pageSize`.
const FILE_PAGE: (usize, usize) = (10, 100);
/// Resumable upload chunk granularity advertised (8 MiB, as Google's).
const CHUNK_GRANULARITY: &str = "8388608";

/// The API versions served (the docs' `v1beta`; the SDK can be told `v1`).
pub(crate) const VERSIONS: [&str; 2] = ["v1beta", "v1"];

/// Whether a path is answered by this module (decides envelopes and auth).
pub(crate) fn owns_path(path: &str) -> bool {
    path.starts_with("/v1beta/")
        || path == "/v1beta"
        || path.starts_with("/upload/")
        || path.starts_with("/download/")
        || path.starts_with("/v1/models/")
}

/// What became of one request once processed.
#[derive(Debug, Clone)]
enum Outcome {
    /// A valid request: it gets an answer.
    Ok,
    /// Refused with `INVALID_ARGUMENT` (gRPC code 3) and this message.
    Invalid(Box<str>),
    /// Chosen by `error_rate`: `INTERNAL` (gRPC code 13).
    Injected,
}

/// One request of a batch.
#[derive(Debug)]
struct Item {
    /// The file line's `key`, or the inline request's `metadata.key`.
    key: Option<Box<str>>,
    /// Inline only: the `metadata` object, echoed on the response.
    metadata: Option<Value>,
    /// The `GenerateContentRequest`.
    request: Value,
    /// Size of the request in bytes (for input tokens).
    bytes: usize,
    frac: u32,
    outcome: Outcome,
}

/// The immutable part of a batch.
#[derive(Debug, Default)]
struct BatchData {
    items: Vec<Item>,
    ok_sorted: Vec<u32>,
    err_sorted: Vec<u32>,
    distinct_keys: usize,
    /// Why a file batch fails as a whole (its input could not be read).
    failure: Option<String>,
}

/// Where a batch's requests came from.
#[derive(Debug, Clone)]
enum Input {
    Inline,
    /// `files/{id}`.
    File(String),
}

/// A finished batch's output.
#[derive(Debug, Clone)]
enum Output {
    /// `{"inlinedResponses": {"inlinedResponses": [...]}}`.
    Inline(Arc<Value>),
    /// `files/batch-{id}`.
    File(String),
}

#[derive(Debug)]
struct Batch {
    /// The id after `batches/`.
    id: String,
    seq: u64,
    /// Without `models/`.
    model: String,
    display_name: Option<String>,
    input: Input,
    timeline: Timeline,
    data: Arc<BatchData>,
    output: Arc<tokio::sync::OnceCell<Option<Output>>>,
    deleted: bool,
    /// How many of its requests had been submitted before.
    resubmitted: u64,
}

/// A batch state at one moment; durations are since creation.
#[derive(Debug, Clone, Copy, PartialEq)]
enum BatchState {
    Pending,
    Running,
    Succeeded(Duration),
    Failed(Duration),
    Cancelled(Duration),
    Expired(Duration),
}

impl BatchState {
    fn wire(self) -> &'static str {
        match self {
            BatchState::Pending => "BATCH_STATE_PENDING",
            BatchState::Running => "BATCH_STATE_RUNNING",
            BatchState::Succeeded(_) => "BATCH_STATE_SUCCEEDED",
            BatchState::Failed(_) => "BATCH_STATE_FAILED",
            BatchState::Cancelled(_) => "BATCH_STATE_CANCELLED",
            BatchState::Expired(_) => "BATCH_STATE_EXPIRED",
        }
    }

    fn end(self) -> Option<Duration> {
        match self {
            BatchState::Pending | BatchState::Running => None,
            BatchState::Succeeded(d)
            | BatchState::Failed(d)
            | BatchState::Cancelled(d)
            | BatchState::Expired(d) => Some(d),
        }
    }
}

/// Whether a file is an upload or a batch's results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileSource {
    Uploaded,
    Generated,
}

#[derive(Debug)]
struct File {
    /// The id after `files/`.
    id: String,
    display_name: Option<String>,
    mime_type: String,
    content: Bytes,
    created: DateTime<Utc>,
    source: FileSource,
}

/// A resumable upload in progress.
#[derive(Debug)]
struct Upload {
    declared: Option<usize>,
    mime_type: String,
    display_name: Option<String>,
    name: Option<String>,
    buf: bytes::BytesMut,
}

/// All Gemini batches and files of an emulator.
#[derive(Debug, Default)]
pub(crate) struct Store {
    batches: HashMap<String, Batch>,
    order: Vec<String>,
    /// Digests of every request submitted so far (see [`request_digest`]).
    submitted: std::collections::HashSet<u64>,
    files: HashMap<String, File>,
    file_order: Vec<String>,
    uploads: HashMap<String, Upload>,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

impl Store {
    fn batch(&self, id: &str) -> Result<&Batch, ApiError> {
        self.batches
            .get(id)
            .filter(|b| !b.deleted)
            .ok_or_else(|| not_found("batch", &format!("batches/{id}")))
    }

    fn file(&self, id: &str) -> Result<&File, ApiError> {
        self.files
            .get(id)
            .ok_or_else(|| not_found("file", &format!("files/{id}")))
    }

    fn add_file(&mut self, file: File) {
        self.file_order.push(file.id.clone());
        self.files.insert(file.id.clone(), file);
    }

    /// `(creation sequence, summary)` for every batch.
    pub(crate) fn summaries(&self) -> Vec<(u64, BatchSummary)> {
        let now = Instant::now();
        self.order
            .iter()
            .filter_map(|id| self.batches.get(id))
            .map(|b| {
                (
                    b.seq,
                    BatchSummary {
                        provider: "gemini".into(),
                        id: format!("batches/{}", b.id),
                        status: b.state(now).wire().into(),
                        request_count: b.data.items.len() as u64,
                        custom_ids: b.data.distinct_keys as u64,
                        created_at: rfc3339(b.timeline.created_wall),
                        metadata: b.display_name.as_ref().map(|d| json!({"displayName": d})),
                        deleted: b.deleted,
                        // Gemini batches are not forgotten by the emulator's
                        // forget controls (yet).
                        forgotten: false,
                        resubmitted: b.resubmitted,
                    },
                )
            })
            .collect()
    }
}
