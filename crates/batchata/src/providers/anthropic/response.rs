//! Parsing Anthropic Message Batches responses: the batch object, the list
//! page, and the results JSONL, one line at a time.

use serde::Deserialize;
use serde_json::Value;

use crate::catalog::{ModelInfo, Usage};
use crate::job::Job;
use crate::providers::{build_result, Answer, BatchState, BatchStatus, RequestCounts};
use crate::result::{Citation, JobResult, CANCELLED_BY_USER};

/// Error text of requests that expired unprocessed.
pub const EXPIRED_MESSAGE: &str = "Request expired before the provider processed it";

/// A `message_batch` object.
#[derive(Debug, Clone, Deserialize)]
pub struct MessageBatch {
    /// `msgbatch_...`.
    pub id: String,
    /// `in_progress`, `canceling` or `ended`.
    pub processing_status: String,
    /// Request counts.
    #[serde(default)]
    pub request_counts: WireCounts,
    /// RFC 3339 creation time.
    #[serde(default)]
    pub created_at: Option<String>,
    /// Set when a cancel was asked for.
    #[serde(default)]
    pub cancel_initiated_at: Option<String>,
    /// Where results are, once ended.
    #[serde(default)]
    pub results_url: Option<String>,
}

/// `request_counts`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct WireCounts {
    /// Still processing.
    #[serde(default)]
    pub processing: u64,
    /// Succeeded.
    #[serde(default)]
    pub succeeded: u64,
    /// Errored.
    #[serde(default)]
    pub errored: u64,
    /// Canceled.
    #[serde(default)]
    pub canceled: u64,
    /// Expired.
    #[serde(default)]
    pub expired: u64,
}

impl WireCounts {
    /// All requests.
    pub fn total(&self) -> u64 {
        self.processing + self.succeeded + self.errored + self.canceled + self.expired
    }
}

impl MessageBatch {
    /// The normalized status.
    pub fn status(&self) -> BatchStatus {
        let state = match self.processing_status.as_str() {
            "ended" if self.cancel_initiated_at.is_some() => BatchState::Cancelled,
            "ended" => BatchState::Complete,
            _ => BatchState::Running,
        };
        let c = self.request_counts;
        BatchStatus {
            state,
            provider_status: self.processing_status.clone(),
            counts: RequestCounts {
                total: c.total(),
                processing: c.processing,
                succeeded: c.succeeded,
                errored: c.errored,
                cancelled: c.canceled,
                expired: c.expired,
            },
            error: None,
        }
    }

    /// Creation time, if it parses.
    pub fn created(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.created_at
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
    }
}

/// A page of `GET /v1/messages/batches`.
#[derive(Debug, Clone, Deserialize)]
pub struct BatchPage {
    /// Batches, newest first.
    pub data: Vec<MessageBatch>,
    /// More pages follow.
    #[serde(default)]
    pub has_more: bool,
    /// Id to page on with `after_id`.
    #[serde(default)]
    pub last_id: Option<String>,
}

/// One line of the results JSONL.
#[derive(Debug, Deserialize)]
pub struct ResultLine {
    /// The job id.
    pub custom_id: String,
    /// What happened.
    pub result: LineResult,
}

/// `result` of a line.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LineResult {
    /// An answer.
    Succeeded {
        /// The message.
        message: WireMessage,
    },
    /// The request failed.
    Errored {
        /// The error envelope.
        #[serde(default)]
        error: Value,
    },
    /// Cancelled before it ran.
    Canceled,
    /// Not run before the batch expired.
    Expired,
}

/// The assistant message.
#[derive(Debug, Deserialize)]
pub struct WireMessage {
    /// Content blocks.
    #[serde(default)]
    pub content: Vec<Block>,
    /// Why generation stopped.
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// Tokens.
    #[serde(default)]
    pub usage: WireUsage,
}

/// A content block; kinds we do not read are kept as `Other`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    /// Text, maybe with citations.
    Text {
        /// The text.
        text: String,
        /// Citations backing it.
        #[serde(default)]
        citations: Option<Vec<Value>>,
    },
    /// A tool call (a forced tool carries a structured answer).
    ToolUse {
        /// The tool's input.
        #[serde(default)]
        input: Value,
    },
    /// Anything else (thinking, server tools...).
    #[serde(other)]
    Other,
}

/// `usage`.
#[derive(Debug, Default, Deserialize)]
pub struct WireUsage {
    /// Uncached input tokens.
    #[serde(default)]
    pub input_tokens: u64,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: u64,
    /// Cache writes.
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
    /// Cache reads.
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
}

/// Converts a wire citation, keeping every location field in `metadata`.
pub fn citation(wire: &Value, answer_text: &str, fallback_title: &str) -> Citation {
    let s = |k: &str| wire.get(k).and_then(|v| v.as_str());
    let mut meta = serde_json::Map::new();
    for key in [
        "type",
        "document_index",
        "document_title",
        "start_char_index",
        "end_char_index",
        "start_page_number",
        "end_page_number",
        "start_block_index",
        "end_block_index",
        "file_id",
    ] {
        if let Some(v) = wire.get(key).filter(|v| !v.is_null()) {
            meta.insert(key.into(), v.clone());
        }
    }
    meta.insert("answer_text".into(), Value::String(answer_text.to_string()));
    Citation {
        text: s("cited_text").unwrap_or_default().to_string(),
        source: s("document_title").unwrap_or(fallback_title).to_string(),
        page: wire
            .get("start_page_number")
            .and_then(|v| v.as_u64())
            .map(|p| p as u32),
        metadata: Some(Value::Object(meta)),
        confidence: None,
        match_reason: None,
    }
}

fn errored_message(error: &Value) -> String {
    let inner = error.get("error").unwrap_or(error);
    let t = inner
        .get("type")
        .and_then(|v| v.as_str())
        .unwrap_or("error");
    let m = inner
        .get("message")
        .and_then(|v| v.as_str())
        .unwrap_or("no message");
    format!("Anthropic {t}: {m}")
}

/// Turns one result line into the job's `JobResult`.
pub fn line_result(result: LineResult, job: &Job, model: &ModelInfo, batch_id: &str) -> JobResult {
    let id = job.id_str();
    let failed = |msg: String| JobResult {
        batch_id: Some(batch_id.to_string()),
        ..JobResult::failed(id, msg)
    };
    match result {
        LineResult::Errored { error } => failed(errored_message(&error)),
        LineResult::Canceled => failed(format!(
            "{CANCELLED_BY_USER}: the batch was cancelled before this request ran"
        )),
        LineResult::Expired => failed(EXPIRED_MESSAGE.to_string()),
        LineResult::Succeeded { message } => {
            let title = job
                .file
                .as_deref()
                .map(crate::files::file_name)
                .unwrap_or_default();
            let mut answer = Answer {
                usage: Usage {
                    input_tokens: message.usage.input_tokens,
                    output_tokens: message.usage.output_tokens,
                    cache_read_tokens: message.usage.cache_read_input_tokens.unwrap_or(0),
                    cache_write_tokens: message.usage.cache_creation_input_tokens.unwrap_or(0),
                },
                ..Default::default()
            };
            for block in message.content {
                match block {
                    Block::Text { text, citations } => {
                        for c in citations.iter().flatten() {
                            answer.citations.push(citation(c, &text, &title));
                        }
                        answer.text.push_str(&text);
                    }
                    Block::ToolUse { input } => answer.structured = Some(input),
                    Block::Other => {}
                }
            }
            let mut r = build_result(job, model, batch_id, answer);
            if message.stop_reason.as_deref() == Some("refusal") {
                r.error = Some("The model refused to answer (stop_reason: refusal)".into());
            } else if message.stop_reason.as_deref() == Some("max_tokens") {
                r.warnings.push(
                    "The answer was cut at max_tokens; raise max_tokens for complete answers"
                        .into(),
                );
            }
            r
        }
    }
}
