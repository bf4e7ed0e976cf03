//! The OpenAI Files and Batch APIs: upload, retrieve, list, delete and
//! download files; create, retrieve, list and cancel batches.
//!
//! Input files are kept as shared bytes. Creating a batch validates every
//! JSONL line at once (off the async runtime) and keeps only compact line
//! records (custom id, byte range, finish fraction, outcome); the validation
//! verdict is revealed when the batch leaves `validating`. Status is computed
//! from the batch's [`Timeline`] on each read. The output and error files are
//! built once, the first time anyone observes the batch in a terminal state
//! (`completed`, `expired`, `cancelled`), so their ids and sizes are stable.
//!
//! The resources are split by file: `files.rs` serves the Files API,
//! `batches.rs` the Batch API's calls and the batch object, `validate.rs`
//! checks an input file's lines as the real API does, and `render.rs`
//! builds the output and error files of a finished batch. This file holds
//! the store they share: files, batches, their line records and statuses.

mod batches;
mod files;
mod render;
mod validate;

pub(crate) use batches::{cancel_batch, create_batch, list_batches, retrieve_batch};
pub(crate) use files::{delete_file, file_content, list_files, retrieve_file, upload_file};

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::StatusCode;
use serde_json::Value;

use crate::error::ApiError;
use crate::lifecycle::Timeline;
use crate::stats::BatchSummary;

/// The one endpoint whose requests the emulator can answer.
const CHAT_ENDPOINT: &str = "/v1/chat/completions";
/// Endpoints the real Batch API accepts.
const BATCH_ENDPOINTS: &[&str] = &[
    "/v1/responses",
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/completions",
    "/v1/moderations",
    "/v1/images/generations",
    "/v1/images/edits",
    "/v1/videos",
];
const FILE_PURPOSES: &[&str] = &[
    "assistants",
    "batch",
    "fine-tune",
    "vision",
    "user_data",
    "evals",
];
/// Files expire 30 days after upload by default.
const FILE_TTL_SECS: i64 = 30 * 24 * 3600;
/// The most validation errors reported for one input file.
const MAX_ERRORS: usize = 1000;

/// A stored file.
#[derive(Debug)]
struct File {
    id: String,
    filename: String,
    purpose: String,
    created_at: i64,
    expires_at: Option<i64>,
    content: Bytes,
    deleted: bool,
    /// The batch whose output or error file this is (`None` for uploads):
    /// when the provider forgets that batch, the file goes with it.
    batch_id: Option<String>,
}

/// A per-request error found in a line's body (goes to the error file as a 400).
#[derive(Debug, Clone)]
pub(crate) struct LineError {
    message: String,
    param: Option<String>,
    code: Option<&'static str>,
}

impl LineError {
    fn new(message: impl Into<String>, param: Option<&str>, code: Option<&'static str>) -> Self {
        Self {
            message: message.into(),
            param: param.map(str::to_string),
            code,
        }
    }
}

#[derive(Debug)]
enum Outcome {
    Ok,
    Invalid(Box<LineError>),
    Injected,
}

/// One valid input line.
#[derive(Debug)]
struct Line {
    custom_id: Box<str>,
    /// Byte range of the whole line in the input file.
    start: usize,
    end: usize,
    frac: u32,
    outcome: Outcome,
}

/// The immutable result of validating an input file.
#[derive(Debug)]
struct BatchData {
    file: Bytes,
    lines: Vec<Line>,
    /// Validation errors; non-empty means the batch fails.
    errors: Vec<Value>,
    ok_sorted: Vec<u32>,
    err_sorted: Vec<u32>,
    model: Option<String>,
    line_count: usize,
    distinct_ids: usize,
}

/// Output and error files of a finished batch.
#[derive(Debug, Clone)]
struct Outputs {
    output_file_id: Option<String>,
    error_file_id: Option<String>,
    usage: Value,
}

#[derive(Debug)]
struct Batch {
    id: String,
    seq: u64,
    endpoint: String,
    input_file_id: String,
    completion_window: String,
    metadata: Option<Value>,
    timeline: Timeline,
    data: Arc<BatchData>,
    outputs: Arc<tokio::sync::OnceCell<Outputs>>,
    /// How many of its requests had been submitted in an earlier batch.
    resubmitted: u64,
}

/// All OpenAI files and batches of an emulator.
#[derive(Debug, Default)]
pub(crate) struct Store {
    files: HashMap<String, File>,
    file_order: Vec<String>,
    batches: HashMap<String, Batch>,
    batch_order: Vec<String>,
    /// Digests of every request submitted so far (see [`request_digest`]).
    submitted: HashSet<u64>,
}

/// A batch status at one moment (durations are since creation).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Status {
    Validating,
    Failed(Duration),
    InProgress,
    Finalizing,
    Completed(Duration),
    Expired(Duration),
    Cancelling,
    Cancelled(Duration),
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Validating => "validating",
            Status::Failed(_) => "failed",
            Status::InProgress => "in_progress",
            Status::Finalizing => "finalizing",
            Status::Completed(_) => "completed",
            Status::Expired(_) => "expired",
            Status::Cancelling => "cancelling",
            Status::Cancelled(_) => "cancelled",
        }
    }

    /// When a terminal status with output files was reached.
    fn output_time(self) -> Option<Duration> {
        match self {
            Status::Completed(t) | Status::Expired(t) | Status::Cancelled(t) => Some(t),
            _ => None,
        }
    }
}

fn file_not_found(id: &str) -> ApiError {
    ApiError::openai(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        format!("No such File object: {id}"),
        Some("id"),
        None,
    )
}

/// A failure of the emulator itself (a worker task that died), as OpenAI's
/// `server_error`.
fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::openai(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        e.to_string(),
        None,
        None,
    )
}

fn batch_not_found(id: &str) -> ApiError {
    ApiError::openai(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        format!("No batch found with id '{id}'."),
        None,
        None,
    )
}

impl Store {
    /// The batch `id` if the provider still knows it at `now`.
    fn batch(&self, id: &str, now: Instant) -> Result<&Batch, ApiError> {
        self.batches
            .get(id)
            .filter(|b| !b.timeline.is_forgotten(now))
            .ok_or_else(|| batch_not_found(id))
    }

    /// Whether a client can see file `f` at `now`: not deleted, and not the
    /// output of a forgotten batch.
    fn file_known(&self, f: &File, now: Instant) -> bool {
        !f.deleted
            && f.batch_id.as_ref().is_none_or(|b| {
                self.batches
                    .get(b)
                    .is_some_and(|b| !b.timeline.is_forgotten(now))
            })
    }

    /// The file `id` if it is visible at `now`.
    fn file(&self, id: &str, now: Instant) -> Result<&File, ApiError> {
        self.files
            .get(id)
            .filter(|f| self.file_known(f, now))
            .ok_or_else(|| file_not_found(id))
    }

    /// Forgets every batch that exists now; returns how many were still known.
    pub(crate) fn forget_all(&mut self, now: Instant) -> usize {
        let mut n = 0;
        for b in self.batches.values_mut() {
            if !b.timeline.is_forgotten(now) {
                n += 1;
            }
            b.timeline.forgotten = true;
        }
        n
    }

    fn add_file(&mut self, file: File) -> Value {
        let view = file.view();
        self.file_order.push(file.id.clone());
        self.files.insert(file.id.clone(), file);
        view
    }

    /// `(creation sequence, summary)` for every batch.
    pub(crate) fn summaries(&self) -> Vec<(u64, BatchSummary)> {
        let now = Instant::now();
        self.batch_order
            .iter()
            .filter_map(|id| self.batches.get(id))
            .map(|b| {
                (
                    b.seq,
                    BatchSummary {
                        provider: "openai".into(),
                        id: b.id.clone(),
                        status: b.status(now).as_str().into(),
                        request_count: b.data.line_count as u64,
                        custom_ids: b.data.distinct_ids as u64,
                        created_at: b
                            .timeline
                            .created_wall
                            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                        metadata: b.metadata.clone(),
                        deleted: false,
                        forgotten: b.timeline.is_forgotten(now),
                        resubmitted: b.resubmitted,
                    },
                )
            })
            .collect()
    }
}
