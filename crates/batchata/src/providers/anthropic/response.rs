//! Parsing Anthropic Message Batches responses: the batch object and its
//! normalized status, the list page, and the results JSONL, one line at a
//! time.
//!
//! Results arrive as a byte stream; [`LineSplitter`] cuts it into lines
//! without ever holding more than one line, and [`line_result`] turns each
//! line into the job's `JobResult`: text blocks joined, citations with their
//! locations, usage (cache reads and writes included) priced at batch rates,
//! a structured answer parsed and validated; errored, canceled and expired
//! lines become failed results that say why.

use serde::Deserialize;
use serde_json::Value;

use crate::catalog::{ModelInfo, Usage};
use crate::job::Job;
use crate::providers::{build_result, Answer, BatchState, BatchStatus, RequestCounts};
use crate::result::{Citation, JobResult, CANCELLED_BY_USER};
use crate::structured;

/// Error text of requests that expired unprocessed.
pub const EXPIRED_MESSAGE: &str = "Request expired before the provider processed it";
/// Error text of jobs that have no line in the results.
pub const NO_RESULT_MESSAGE: &str = "no result returned by the provider";
/// Error text of canceled lines in a batch nobody asked to cancel.
pub const CANCELED_BY_PROVIDER_MESSAGE: &str =
    "Canceled by the provider before this request ran (the batch was not cancelled by a user)";

// ---------------------------------------------------------------------------
// The batch object
// ---------------------------------------------------------------------------

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
    /// Set once results can no longer be downloaded.
    #[serde(default)]
    pub archived_at: Option<String>,
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
    /// All requests (the counts are disjoint and always sum to the batch size).
    pub fn total(&self) -> u64 {
        self.processing + self.succeeded + self.errored + self.canceled + self.expired
    }
}

impl MessageBatch {
    /// The normalized status: `in_progress` and `canceling` are Running;
    /// `ended` is Cancelled when a cancel was asked for, else Complete.
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
            rejected: false,
        }
    }

    /// Creation time, if it parses (any RFC 3339 form).
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

// ---------------------------------------------------------------------------
// Results lines
// ---------------------------------------------------------------------------

/// One line of the results JSONL.
#[derive(Debug, Deserialize)]
pub struct ResultLine {
    /// The job id.
    pub custom_id: String,
    /// What happened.
    pub result: LineResult,
}

/// Just the id of a line whose result could not be read.
#[derive(Debug, Deserialize)]
pub struct LineId {
    /// The job id.
    pub custom_id: String,
}

/// `result` of a line. Read through [`RawLineResult`]: serde's internally
/// tagged enums buffer the whole value (a message and its text) before
/// they look at the tag, a cost paid on every line of a million.
#[derive(Debug, Deserialize)]
#[serde(try_from = "RawLineResult")]
pub enum LineResult {
    /// An answer.
    Succeeded {
        /// The message.
        message: WireMessage,
    },
    /// The request failed.
    Errored {
        /// The error envelope `{"type":"error","error":{"type","message"}}`.
        #[serde(default)]
        error: WireErrorEnvelope,
    },
    /// Cancelled before it ran.
    Canceled,
    /// Not run before the batch expired.
    Expired,
}

/// `result` as it is on the wire: `type` and whatever fields it brings.
#[derive(Deserialize)]
struct RawLineResult {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    message: Option<WireMessage>,
    #[serde(default)]
    error: Option<WireErrorEnvelope>,
}

impl TryFrom<RawLineResult> for LineResult {
    type Error = String;

    fn try_from(r: RawLineResult) -> std::result::Result<Self, String> {
        match r.kind.as_str() {
            "succeeded" => match r.message {
                Some(message) => Ok(LineResult::Succeeded { message }),
                None => Err("a succeeded result without its message".into()),
            },
            "errored" => Ok(LineResult::Errored {
                error: r.error.unwrap_or_default(),
            }),
            "canceled" => Ok(LineResult::Canceled),
            "expired" => Ok(LineResult::Expired),
            other => Err(format!(
                "unknown result type '{other}' (expected succeeded, errored, canceled or expired)"
            )),
        }
    }
}

/// The error envelope of an errored line.
#[derive(Debug, Default, Deserialize)]
pub struct WireErrorEnvelope {
    /// The error itself.
    #[serde(default)]
    pub error: Option<WireError>,
    /// Some producers put the fields at the top level.
    #[serde(default)]
    pub message: Option<String>,
}

/// `{"type": "...", "message": "..."}`.
#[derive(Debug, Default, Deserialize)]
pub struct WireError {
    /// `invalid_request_error`, `api_error`, ...
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// What went wrong.
    #[serde(default)]
    pub message: Option<String>,
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

/// A content block; kinds we do not read are kept as `Other`. Read
/// through [`RawBlock`], unbuffered, as [`LineResult`] is.
#[derive(Debug, Deserialize)]
#[serde(from = "RawBlock")]
pub enum Block {
    /// Text, maybe with citations.
    Text {
        /// The text.
        text: String,
        /// Citations backing it.
        #[serde(default)]
        citations: Option<Vec<WireCitation>>,
    },
    /// A tool call (a forced tool carries a structured answer).
    ToolUse {
        /// The tool's name.
        #[serde(default)]
        name: String,
        /// The tool's input.
        #[serde(default)]
        input: Value,
    },
    /// Anything else (thinking, server tools...).
    Other,
}

/// A content block as it is on the wire.
#[derive(Deserialize)]
struct RawBlock {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    citations: Option<Vec<WireCitation>>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    input: Value,
}

impl From<RawBlock> for Block {
    fn from(b: RawBlock) -> Block {
        match (b.kind.as_str(), b.text) {
            ("text", Some(text)) => Block::Text {
                text,
                citations: b.citations,
            },
            ("tool_use", _) => Block::ToolUse {
                name: b.name,
                input: b.input,
            },
            _ => Block::Other,
        }
    }
}

/// A citation of a text block: `char_location` (text documents),
/// `page_location` (PDFs) or `content_block_location` (custom content).
#[derive(Debug, Default, Deserialize)]
pub struct WireCitation {
    /// The location type.
    #[serde(default, rename = "type")]
    pub kind: String,
    /// The passage cited.
    #[serde(default)]
    pub cited_text: String,
    /// 0-based index of the document in the request.
    #[serde(default)]
    pub document_index: Option<u64>,
    /// The document's title, as sent.
    #[serde(default)]
    pub document_title: Option<String>,
    /// `char_location`: first character (0-based).
    #[serde(default)]
    pub start_char_index: Option<u64>,
    /// `char_location`: end character.
    #[serde(default)]
    pub end_char_index: Option<u64>,
    /// `page_location`: first page (1-based).
    #[serde(default)]
    pub start_page_number: Option<u64>,
    /// `page_location`: end page.
    #[serde(default)]
    pub end_page_number: Option<u64>,
    /// `content_block_location`: first block (0-based).
    #[serde(default)]
    pub start_block_index: Option<u64>,
    /// `content_block_location`: end block.
    #[serde(default)]
    pub end_block_index: Option<u64>,
    /// Files API id of the document, if it came from there.
    #[serde(default)]
    pub file_id: Option<String>,
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

impl From<&WireUsage> for Usage {
    fn from(u: &WireUsage) -> Self {
        Usage {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cache_read_tokens: u.cache_read_input_tokens.unwrap_or(0),
            cache_write_tokens: u.cache_creation_input_tokens.unwrap_or(0),
        }
    }
}

/// Converts a wire citation. `source` is the document's title (else the
/// job's file name), `page` the first page; `metadata` keeps the location
/// type, document index, start/end indexes or pages, and the answer text
/// the citation backs.
pub fn citation(wire: &WireCitation, answer_text: &str, fallback_title: &str) -> Citation {
    let mut meta = serde_json::Map::new();
    meta.insert("type".into(), Value::from(wire.kind.as_str()));
    let numbers = [
        ("document_index", wire.document_index),
        ("start_char_index", wire.start_char_index),
        ("end_char_index", wire.end_char_index),
        ("start_page_number", wire.start_page_number),
        ("end_page_number", wire.end_page_number),
        ("start_block_index", wire.start_block_index),
        ("end_block_index", wire.end_block_index),
    ];
    for (key, v) in numbers {
        if let Some(v) = v {
            meta.insert(key.into(), Value::from(v));
        }
    }
    if let Some(t) = &wire.document_title {
        meta.insert("document_title".into(), Value::from(t.as_str()));
    }
    if let Some(f) = &wire.file_id {
        meta.insert("file_id".into(), Value::from(f.as_str()));
    }
    meta.insert("answer_text".into(), Value::from(answer_text));
    Citation {
        text: wire.cited_text.clone(),
        source: wire
            .document_title
            .as_deref()
            .filter(|t| !t.is_empty())
            .unwrap_or(fallback_title)
            .to_string(),
        page: wire.start_page_number.and_then(|p| u32::try_from(p).ok()),
        metadata: Some(Value::Object(meta)),
        confidence: None,
        match_reason: None,
    }
}

fn errored_message(error: &WireErrorEnvelope) -> String {
    let inner = error.error.as_ref();
    let kind = inner.and_then(|e| e.kind.as_deref()).unwrap_or("error");
    let message = inner
        .and_then(|e| e.message.as_deref())
        .or(error.message.as_deref())
        .unwrap_or("no message given");
    format!("Anthropic {kind}: {message}")
}

/// What the parser needs to know about the batch a line came from.
#[derive(Debug, Clone, Copy)]
pub struct LineContext<'a> {
    /// The provider batch id, recorded in every result.
    pub batch_id: &'a str,
    /// Whether someone asked for the batch to be cancelled
    /// (`cancel_initiated_at` is set): then canceled lines are "Cancelled by
    /// user", which the run counts as cancelled rather than failed.
    pub cancel_requested: bool,
}

/// Turns one result line into the job's `JobResult`, with canceled lines
/// counted as cancelled by the user.
pub fn line_result(result: LineResult, job: &Job, model: &ModelInfo, batch_id: &str) -> JobResult {
    line_result_in(
        result,
        job,
        model,
        LineContext {
            batch_id,
            cancel_requested: true,
        },
    )
}

/// Turns one result line into the job's `JobResult`.
pub fn line_result_in(
    result: LineResult,
    job: &Job,
    model: &ModelInfo,
    ctx: LineContext<'_>,
) -> JobResult {
    let id = job.id_str();
    let failed = |msg: String| JobResult {
        batch_id: Some(ctx.batch_id.to_string()),
        ..JobResult::failed(id, msg)
    };
    match result {
        LineResult::Errored { error } => failed(errored_message(&error)),
        LineResult::Canceled if ctx.cancel_requested => failed(format!(
            "{CANCELLED_BY_USER}: the batch was cancelled before this request ran"
        )),
        LineResult::Canceled => failed(CANCELED_BY_PROVIDER_MESSAGE.to_string()),
        LineResult::Expired => failed(EXPIRED_MESSAGE.to_string()),
        LineResult::Succeeded { message } => succeeded(message, job, model, ctx.batch_id),
    }
}

fn succeeded(message: WireMessage, job: &Job, model: &ModelInfo, batch_id: &str) -> JobResult {
    let title = job
        .file
        .as_deref()
        .map(crate::files::file_name)
        .unwrap_or_default();
    let mut answer = Answer {
        usage: Usage::from(&message.usage),
        ..Default::default()
    };
    let mut tool_input = None;
    for block in message.content {
        match block {
            Block::Text { text, citations } => {
                for c in citations.iter().flatten() {
                    answer.citations.push(citation(c, &text, &title));
                }
                answer.text.push_str(&text);
            }
            Block::ToolUse { name, input } if name == structured::ANTHROPIC_TOOL_NAME => {
                tool_input = Some(input);
            }
            Block::ToolUse { .. } | Block::Other => {}
        }
    }
    if let (Some(input), Some(schema)) = (tool_input, &job.response_schema) {
        let value = structured::from_anthropic_tool_input(input, schema.as_value());
        if answer.text.trim().is_empty() {
            // The forced tool's input is the whole answer; keep it readable.
            answer.text = value.to_string();
        }
        answer.structured = Some(value);
    }
    let mut r = build_result(job, model, batch_id, answer);
    match message.stop_reason.as_deref() {
        Some("refusal") => {
            r.error = Some("The model refused to answer (stop_reason: refusal)".into());
        }
        Some("max_tokens") => r
            .warnings
            .push("The answer was cut at max_tokens; raise max_tokens for complete answers".into()),
        _ => {}
    }
    r
}

pub use crate::providers::lines::LineSplitter;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::job::ResponseSchema;
    use crate::result::JobOutcome;
    use serde_json::json;

    fn parse(line: Value) -> ResultLine {
        serde_json::from_value(line).unwrap()
    }

    fn model() -> std::sync::Arc<ModelInfo> {
        Catalog::builtin().lookup("claude-sonnet-4-5").unwrap()
    }

    fn batch(v: Value) -> MessageBatch {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn status_mapping_and_counts() {
        let counts = json!({"processing":0,"succeeded":2,"errored":1,"canceled":3,"expired":4});
        let cases = [
            ("in_progress", None, BatchState::Running),
            (
                "canceling",
                Some("2026-08-20T18:40:00Z"),
                BatchState::Running,
            ),
            ("ended", None, BatchState::Complete),
            (
                "ended",
                Some("2026-08-20T18:40:00.1+00:00"),
                BatchState::Cancelled,
            ),
        ];
        for (status, cancel, want) in cases {
            let b = batch(
                json!({"id":"msgbatch_1","type":"message_batch","processing_status":status,
                "request_counts":counts,"created_at":"2026-08-20T18:37:24.100435Z",
                "cancel_initiated_at":cancel,"results_url":null}),
            );
            let st = b.status();
            assert_eq!(st.state, want, "{status}");
            assert_eq!(st.provider_status, status);
            assert_eq!(
                st.counts,
                RequestCounts {
                    total: 10,
                    processing: 0,
                    succeeded: 2,
                    errored: 1,
                    cancelled: 3,
                    expired: 4
                }
            );
        }
        let b = batch(json!({"id":"x","processing_status":"in_progress",
            "created_at":"2026-06-02T15:03:37.719714+00:00"}));
        assert_eq!(b.created().unwrap().timestamp(), 1_780_412_617);
    }

    #[test]
    fn succeeded_lines_join_text_keep_citations_and_price_cache_tokens() {
        let job = Job::file("/docs/q3.pdf", "Revenue?").id("d1");
        let line = parse(
            json!({"custom_id":"d1","result":{"type":"succeeded","message":{
            "id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5",
            "content":[
                {"type":"text","text":"According to the report, "},
                {"type":"text","text":"revenue grew 12% in Q3","citations":[
                    {"type":"page_location","cited_text":"Revenue grew 12% year over year in Q3. ",
                     "document_index":0,"document_title":"Q3 report","start_page_number":2,"end_page_number":3,"file_id":null},
                    {"type":"char_location","cited_text":"12%","document_index":1,"document_title":null,
                     "start_char_index":5,"end_char_index":8}]},
                {"type":"thinking","thinking":"..."},
                {"type":"text","text":"."}],
            "stop_reason":"end_turn","stop_sequence":null,
            "usage":{"input_tokens":1000,"output_tokens":200,"cache_creation_input_tokens":3000,
                     "cache_read_input_tokens":4000,"service_tier":"batch"}}}}),
        );
        let m = model();
        let r = line_result(line.result, &job, &m, "msgbatch_1");
        assert!(r.is_success(), "{r:?}");
        assert_eq!(
            r.raw_response.as_deref(),
            Some("According to the report, revenue grew 12% in Q3.")
        );
        assert_eq!(r.input_tokens, 8000);
        assert_eq!(r.output_tokens, 200);
        // Sonnet 4.5 at half price: 3 in, 15 out, 0.30 cache read, 3.75 cache write per million.
        let want = 0.5 * (1000.0 * 3.0 + 200.0 * 15.0 + 4000.0 * 0.3 + 3000.0 * 3.75) / 1e6;
        assert!(
            (r.cost_usd - want).abs() < 1e-12,
            "{} vs {want}",
            r.cost_usd
        );
        let c = r.citations.unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].text, "Revenue grew 12% year over year in Q3. ");
        assert_eq!(c[0].source, "Q3 report");
        assert_eq!(c[0].page, Some(2));
        assert_eq!(
            c[0].metadata.as_ref().unwrap(),
            &json!({"type":"page_location","document_index":0,"start_page_number":2,
                    "end_page_number":3,"document_title":"Q3 report",
                    "answer_text":"revenue grew 12% in Q3"})
        );
        assert_eq!(c[1].source, "q3.pdf", "file name when the title is null");
        assert_eq!(c[1].page, None);
        let meta = c[1].metadata.as_ref().unwrap();
        assert_eq!(meta["start_char_index"], 5);
        assert_eq!(meta["end_char_index"], 8);
    }

    #[test]
    fn forced_tool_answers_are_the_structured_value() {
        let schema =
            ResponseSchema::from_value(json!({"type":"array","items":{"type":"integer"}})).unwrap();
        let job = Job::prompt("Numbers?").id("t").response_schema(schema);
        let line = parse(
            json!({"custom_id":"t","result":{"type":"succeeded","message":{
            "content":[{"type":"tool_use","id":"toolu_1","name":structured::ANTHROPIC_TOOL_NAME,
                        "input":{"value":[1,2,3]}}],
            "stop_reason":"tool_use","usage":{"input_tokens":10,"output_tokens":5}}}}),
        );
        let r = line_result(line.result, &job, &model(), "b");
        assert!(r.is_success(), "{r:?}");
        assert_eq!(r.parsed_response, Some(json!([1, 2, 3])));
        assert_eq!(r.raw_response.as_deref(), Some("[1,2,3]"));
        assert!(r.validation_errors.is_empty());
    }

    #[test]
    fn failed_lines_say_why() {
        let job = Job::prompt("q").id("a");
        let m = model();
        let r = line_result(
            parse(
                json!({"custom_id":"a","result":{"type":"errored","error":{"type":"error",
                "error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}}}),
            )
            .result,
            &job,
            &m,
            "b",
        );
        assert_eq!(
            r.error.as_deref(),
            Some("Anthropic invalid_request_error: max_tokens: Field required")
        );
        assert_eq!(r.outcome(), JobOutcome::Failed);
        assert_eq!(r.batch_id.as_deref(), Some("b"));

        let expired = parse(json!({"custom_id":"a","result":{"type":"expired"}}));
        let r = line_result(expired.result, &job, &m, "b");
        assert_eq!(r.error.as_deref(), Some(EXPIRED_MESSAGE));

        let canceled = || parse(json!({"custom_id":"a","result":{"type":"canceled"}})).result;
        let ours = line_result_in(
            canceled(),
            &job,
            &m,
            LineContext {
                batch_id: "b",
                cancel_requested: true,
            },
        );
        assert_eq!(ours.outcome(), JobOutcome::Cancelled);
        assert!(ours.error.unwrap().starts_with(CANCELLED_BY_USER));
        let theirs = line_result_in(
            canceled(),
            &job,
            &m,
            LineContext {
                batch_id: "b",
                cancel_requested: false,
            },
        );
        assert_eq!(theirs.outcome(), JobOutcome::Failed);

        let refused = parse(
            json!({"custom_id":"a","result":{"type":"succeeded","message":{
            "content":[],"stop_reason":"refusal","usage":{"input_tokens":3,"output_tokens":0}}}}),
        );
        let r = line_result(refused.result, &job, &m, "b");
        assert!(r.error.unwrap().contains("refused"));
        assert_eq!(r.input_tokens, 3, "billed tokens are kept");
    }

    #[test]
    fn lines_are_cut_across_chunk_boundaries() {
        let stream = b"{\"a\":1}\r\n\n{\"b\":\n2}\n   \n{\"c\":3}";
        for size in 1..stream.len() {
            let mut lines: Vec<String> = Vec::new();
            let mut s = LineSplitter::new();
            for chunk in stream.chunks(size) {
                s.push(chunk, |l| {
                    lines.push(String::from_utf8(l.to_vec()).unwrap());
                    Ok::<(), ()>(())
                })
                .unwrap();
            }
            s.finish(|l| {
                lines.push(String::from_utf8(l.to_vec()).unwrap());
                Ok::<(), ()>(())
            })
            .unwrap();
            assert_eq!(
                lines,
                ["{\"a\":1}", "{\"b\":", "2}", "{\"c\":3}"],
                "chunk {size}"
            );
        }
        let mut s = LineSplitter::new();
        let e = s.push(b"x\ny\n", |l| if l == b"y" { Err("stop") } else { Ok(()) });
        assert_eq!(e, Err("stop"));
    }
}
