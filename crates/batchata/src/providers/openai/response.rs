//! Parsing what the OpenAI Files and Batch APIs send back: file and batch
//! objects, the batch status in the crate's own words, and the lines of a
//! batch's output and error files turned into `JobResult`s.
//!
//! A line is `{"custom_id", "response": {"status_code", "body"} | null,
//! "error": {"code", "message"} | null}`. A 200 body is a chat completion
//! (answer, refusal, usage); any other status carries the API's error
//! envelope; `response: null` means the request never ran (`batch_expired`,
//! `batch_cancelled`, `request_timeout`). Each kind becomes exactly one
//! result, success or failure with the reason.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use crate::catalog::{ModelInfo, Usage};
use crate::job::Job;
use crate::providers::{build_result, Answer, BatchState, BatchStatus, RequestCounts};
use crate::result::{JobResult, CANCELLED_BY_USER};

/// Error text of requests a batch's expiry left unrun.
pub const EXPIRED_MESSAGE: &str =
    "Request expired before the provider processed it (batch_expired)";

/// A Files API object (only the fields we read).
#[derive(Debug, Clone, Deserialize)]
pub struct FileObject {
    /// `file-...`.
    pub id: String,
    /// Size in bytes.
    #[serde(default)]
    pub bytes: Option<u64>,
}

/// A Batch object (only the fields we read).
#[derive(Debug, Clone, Deserialize)]
pub struct BatchObject {
    /// `batch_...`.
    pub id: String,
    /// One of the eight statuses.
    pub status: String,
    /// The output file, once there is one.
    #[serde(default)]
    pub output_file_id: Option<String>,
    /// The error file, once there is one.
    #[serde(default)]
    pub error_file_id: Option<String>,
    /// Creation time, unix seconds.
    #[serde(default)]
    pub created_at: Option<i64>,
    /// Request counts.
    #[serde(default)]
    pub request_counts: Option<WireCounts>,
    /// Input validation errors.
    #[serde(default)]
    pub errors: Option<BatchErrors>,
    /// Metadata given at creation.
    #[serde(default)]
    pub metadata: Option<HashMap<String, Value>>,
}

/// `request_counts`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct WireCounts {
    /// Requests in the batch.
    #[serde(default)]
    pub total: u64,
    /// Finished with an answer.
    #[serde(default)]
    pub completed: u64,
    /// Finished with an error.
    #[serde(default)]
    pub failed: u64,
}

/// `errors` of a batch.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BatchErrors {
    /// The errors.
    #[serde(default)]
    pub data: Vec<BatchError>,
}

/// One input validation error.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BatchError {
    /// Machine code.
    #[serde(default)]
    pub code: Option<String>,
    /// What is wrong.
    #[serde(default)]
    pub message: Option<String>,
    /// The parameter at fault.
    #[serde(default)]
    pub param: Option<String>,
    /// The input file line (1-based).
    #[serde(default)]
    pub line: Option<u64>,
}

impl BatchError {
    /// `"line 3: message (code)"`.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        if let Some(line) = self.line {
            s.push_str(&format!("line {line}: "));
        }
        s.push_str(self.message.as_deref().unwrap_or("invalid input"));
        if let Some(p) = &self.param {
            s.push_str(&format!(" [param {p}]"));
        }
        if let Some(c) = &self.code {
            s.push_str(&format!(" ({c})"));
        }
        s
    }
}

/// A page of `GET /batches`.
#[derive(Debug, Clone, Deserialize)]
pub struct BatchList {
    /// The batches, newest first.
    #[serde(default)]
    pub data: Vec<BatchObject>,
    /// Whether another page follows.
    #[serde(default)]
    pub has_more: bool,
    /// The last id of this page, the cursor for the next.
    #[serde(default)]
    pub last_id: Option<String>,
}

impl BatchObject {
    /// The batch's validation errors joined, or `None`.
    pub fn errors_text(&self) -> Option<String> {
        let data = &self.errors.as_ref()?.data;
        if data.is_empty() {
            return None;
        }
        Some(
            data.iter()
                .map(BatchError::describe)
                .collect::<Vec<_>>()
                .join("; "),
        )
    }

    /// A metadata value as text.
    pub fn metadata_str(&self, key: &str) -> Option<&str> {
        self.metadata.as_ref()?.get(key)?.as_str()
    }

    /// The status in the crate's words.
    pub fn status(&self) -> BatchStatus {
        let state = match self.status.as_str() {
            "validating" => BatchState::Pending,
            "in_progress" | "finalizing" | "cancelling" => BatchState::Running,
            "completed" => BatchState::Complete,
            "failed" | "expired" => BatchState::Failed,
            "cancelled" => BatchState::Cancelled,
            // A status this client does not know yet: keep polling.
            _ => BatchState::Running,
        };
        let wire = self.request_counts.unwrap_or_default();
        let done = wire.completed + wire.failed;
        let rest = wire.total.saturating_sub(done);
        let mut counts = RequestCounts {
            total: wire.total,
            succeeded: wire.completed,
            errored: wire.failed,
            ..Default::default()
        };
        match self.status.as_str() {
            "expired" => counts.expired = rest,
            "cancelled" => counts.cancelled = rest,
            "failed" => counts.errored = wire.total.max(wire.failed),
            _ if !state.is_terminal() => counts.processing = rest,
            _ => {}
        }
        let error = match self.status.as_str() {
            "failed" => Some(
                self.errors_text()
                    .map(|e| format!("batch failed validation: {e}"))
                    .unwrap_or_else(|| "batch failed".to_string()),
            ),
            "expired" => Some("batch expired".to_string()),
            _ => None,
        };
        BatchStatus {
            state,
            provider_status: self.status.clone(),
            counts,
            error,
            // `failed` comes only out of `validating`: nothing ran.
            rejected: self.status == "failed",
        }
    }
}

/// One line of an output or error file.
#[derive(Debug, Clone, Deserialize)]
pub struct OutputLine {
    /// The job id the request was sent with.
    pub custom_id: String,
    /// The HTTP response, when the request ran.
    #[serde(default)]
    pub response: Option<LineResponse>,
    /// Why the request did not run.
    #[serde(default)]
    pub error: Option<LineError>,
}

/// `response` of a line.
#[derive(Debug, Clone, Deserialize)]
pub struct LineResponse {
    /// HTTP status of the request.
    pub status_code: u16,
    /// Chat completion or error envelope.
    #[serde(default)]
    pub body: ResponseBody,
}

/// `error` of a line, or of an error envelope.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LineError {
    /// Machine code (`batch_expired`, ...).
    #[serde(default)]
    pub code: Option<String>,
    /// What happened.
    #[serde(default)]
    pub message: Option<String>,
    /// Error type, in envelopes.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

/// A response body: a chat completion, or an error envelope.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ResponseBody {
    /// The answers (one; `n` is never set).
    #[serde(default)]
    pub choices: Vec<Choice>,
    /// Tokens billed.
    #[serde(default)]
    pub usage: Option<CompletionUsage>,
    /// The error, for non-200 responses.
    #[serde(default)]
    pub error: Option<LineError>,
}

/// One choice.
#[derive(Debug, Clone, Deserialize)]
pub struct Choice {
    /// The assistant's message.
    pub message: ChoiceMessage,
    /// `stop`, `length`, `content_filter`, ...
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// The assistant's message.
#[derive(Debug, Clone, Deserialize)]
pub struct ChoiceMessage {
    /// The answer text.
    #[serde(default)]
    pub content: Option<String>,
    /// A refusal instead of an answer.
    #[serde(default)]
    pub refusal: Option<String>,
}

/// `usage` of a chat completion.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct CompletionUsage {
    /// Input tokens, cached ones included.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Output tokens, reasoning included.
    #[serde(default)]
    pub completion_tokens: u64,
    /// Input details.
    #[serde(default)]
    pub prompt_tokens_details: Option<PromptDetails>,
    /// Output details.
    #[serde(default)]
    pub completion_tokens_details: Option<CompletionDetails>,
}

/// `prompt_tokens_details`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct PromptDetails {
    /// Input tokens read from the cache (a subset of `prompt_tokens`).
    #[serde(default)]
    pub cached_tokens: Option<u64>,
}

/// `completion_tokens_details`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct CompletionDetails {
    /// Reasoning tokens (a subset of `completion_tokens`).
    #[serde(default)]
    pub reasoning_tokens: Option<u64>,
}

impl CompletionUsage {
    /// The crate's usage: uncached input, cache reads, output.
    pub fn to_usage(self) -> Usage {
        let cached = self
            .prompt_tokens_details
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0)
            .min(self.prompt_tokens);
        Usage {
            input_tokens: self.prompt_tokens - cached,
            cache_read_tokens: cached,
            output_tokens: self.completion_tokens,
            cache_write_tokens: 0,
        }
    }
}

/// Why a request that never ran did not: the message its job fails with.
pub fn not_run_message(code: Option<&str>, message: Option<&str>) -> String {
    match code {
        Some("batch_expired") => EXPIRED_MESSAGE.to_string(),
        Some("batch_cancelled") => {
            format!("{CANCELLED_BY_USER}: the batch was cancelled before this request ran")
        }
        _ => {
            let code = code.unwrap_or("error");
            match message {
                Some(m) => format!("OpenAI could not run the request ({code}): {m}"),
                None => format!("OpenAI could not run the request ({code})"),
            }
        }
    }
}

/// Turns one output or error line into the job's result. `model` prices the
/// usage; `batch_id` is recorded on the result.
pub fn line_result(line: OutputLine, job: &Job, model: &ModelInfo, batch_id: &str) -> JobResult {
    let job_id = job.id_str();
    let Some(resp) = line.response else {
        let (code, message) = line
            .error
            .as_ref()
            .map(|e| (e.code.as_deref(), e.message.as_deref()))
            .unwrap_or((None, None));
        return failed(job_id, batch_id, not_run_message(code, message));
    };
    let body = resp.body;
    let usage = body.usage.map(|u| u.to_usage()).unwrap_or_default();
    if resp.status_code != 200 {
        let err = body.error.unwrap_or_default();
        let kind = err.kind.or(err.code).unwrap_or_else(|| "error".into());
        let msg = err
            .message
            .unwrap_or_else(|| "no message given".to_string());
        let mut r = failed(
            job_id,
            batch_id,
            format!(
                "OpenAI refused the request (HTTP {}, {kind}): {msg}",
                resp.status_code
            ),
        );
        priced(&mut r, model, &usage);
        return r;
    }
    let Some(choice) = body.choices.into_iter().next() else {
        let mut r = failed(
            job_id,
            batch_id,
            "OpenAI returned a response with no choices".to_string(),
        );
        priced(&mut r, model, &usage);
        return r;
    };
    if let Some(refusal) = choice.message.refusal.filter(|r| !r.trim().is_empty()) {
        let mut r = failed(
            job_id,
            batch_id,
            format!("The model refused to answer: {refusal}"),
        );
        priced(&mut r, model, &usage);
        return r;
    }
    let finish = choice.finish_reason.as_deref().unwrap_or("");
    let text = choice.message.content.unwrap_or_default();
    if text.is_empty() {
        let why = match finish {
            "length" => " before max_tokens ran out (finish_reason=length); raise max_tokens — reasoning models spend part of it thinking".to_string(),
            "content_filter" => " (finish_reason=content_filter: the content filter removed it)".to_string(),
            "" => String::new(),
            other => format!(" (finish_reason={other})"),
        };
        let mut r = failed(
            job_id,
            batch_id,
            format!("The model returned no answer text{why}"),
        );
        priced(&mut r, model, &usage);
        return r;
    }
    // Strict mode answers with JSON alone; `build_result` validates it (and
    // drops the nulls strict mode makes the model write for absent fields).
    let structured = job
        .response_schema
        .as_ref()
        .and_then(|_| serde_json::from_str::<Value>(text.trim()).ok());
    let mut result = build_result(
        job,
        model,
        batch_id,
        Answer {
            text,
            structured,
            citations: Vec::new(),
            usage,
        },
    );
    match finish {
        "length" => result.warnings.push(
            "the answer was cut off at max_tokens (finish_reason=length); raise max_tokens for a complete answer".into(),
        ),
        "content_filter" => result
            .warnings
            .push("the content filter removed part of the answer (finish_reason=content_filter)".into()),
        _ => {}
    }
    result
}

fn failed(job_id: &str, batch_id: &str, error: String) -> JobResult {
    let mut r = JobResult::failed(job_id, error);
    r.batch_id = Some(batch_id.to_string());
    r
}

fn priced(r: &mut JobResult, model: &ModelInfo, usage: &Usage) {
    r.input_tokens = usage.total_input();
    r.output_tokens = usage.output_tokens;
    r.cost_usd = model.batch_cost(usage);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::job::ResponseSchema;
    use serde_json::json;

    fn batch(v: Value) -> BatchObject {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn all_eight_statuses() {
        let cases = [
            ("validating", BatchState::Pending),
            ("in_progress", BatchState::Running),
            ("finalizing", BatchState::Running),
            ("cancelling", BatchState::Running),
            ("completed", BatchState::Complete),
            ("failed", BatchState::Failed),
            ("expired", BatchState::Failed),
            ("cancelled", BatchState::Cancelled),
        ];
        for (s, want) in cases {
            let b = batch(json!({"id":"batch_1","status":s,
                "request_counts":{"total":10,"completed":4,"failed":1}}));
            let st = b.status();
            assert_eq!(st.state, want, "{s}");
            assert_eq!(st.provider_status, s);
        }
        let st = batch(json!({"id":"b","status":"in_progress",
            "request_counts":{"total":10,"completed":4,"failed":1}}))
        .status();
        assert_eq!(
            (st.counts.processing, st.counts.succeeded, st.counts.errored),
            (5, 4, 1)
        );
        let st = batch(json!({"id":"b","status":"expired",
            "request_counts":{"total":10,"completed":4,"failed":1}}))
        .status();
        assert_eq!(st.counts.expired, 5);
        assert_eq!(st.error.as_deref(), Some("batch expired"));
        let st = batch(json!({"id":"b","status":"cancelled",
            "request_counts":{"total":10,"completed":4,"failed":1}}))
        .status();
        assert_eq!(st.counts.cancelled, 5);
        assert_eq!(st.error, None);
    }

    #[test]
    fn failed_batch_joins_errors() {
        let b = batch(json!({"id":"b","status":"failed","request_counts":null,
        "errors":{"object":"list","data":[
            {"code":"invalid_json_line","message":"This line is not parseable as valid JSON.","param":null,"line":2},
            {"code":"duplicate_custom_id","message":"The custom_id for this request is a duplicate of another request.","param":"custom_id","line":5}
        ]}}));
        let st = b.status();
        assert_eq!(st.state, BatchState::Failed);
        let e = st.error.unwrap();
        assert!(
            e.contains("line 2: This line is not parseable as valid JSON. (invalid_json_line)"),
            "{e}"
        );
        assert!(e.contains("; line 5: The custom_id"), "{e}");
    }

    fn model() -> std::sync::Arc<ModelInfo> {
        Catalog::builtin().get("gpt-4o-mini").unwrap()
    }

    fn line(v: Value) -> OutputLine {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn success_line_usage_and_cost() {
        let m = model();
        let job = Job::prompt("hi").id("a").model("gpt-4o-mini");
        let r = line_result(
            line(
                json!({"id":"batch_req_1","custom_id":"a","response":{"status_code":200,"request_id":"r",
                "body":{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,
                    "message":{"role":"assistant","content":"Hello!","refusal":null},"finish_reason":"stop"}],
                "usage":{"prompt_tokens":1000,"completion_tokens":200,"total_tokens":1200,
                    "prompt_tokens_details":{"cached_tokens":400},
                    "completion_tokens_details":{"reasoning_tokens":50}}}},"error":null}),
            ),
            &job,
            &m,
            "batch_9",
        );
        assert!(r.is_success(), "{r:?}");
        assert_eq!(r.raw_response.as_deref(), Some("Hello!"));
        assert_eq!(r.input_tokens, 1000);
        assert_eq!(r.output_tokens, 200);
        assert_eq!(r.batch_id.as_deref(), Some("batch_9"));
        let want = m.batch_cost(&Usage {
            input_tokens: 600,
            cache_read_tokens: 400,
            output_tokens: 200,
            cache_write_tokens: 0,
        });
        assert!((r.cost_usd - want).abs() < 1e-12 && want > 0.0);
    }

    #[test]
    fn refusal_error_and_not_run_lines() {
        let m = model();
        let job = Job::prompt("hi").id("a").model("gpt-4o-mini");
        let r = line_result(
            line(
                json!({"custom_id":"a","response":{"status_code":200,"body":{"choices":[{"index":0,
                "message":{"role":"assistant","content":null,"refusal":"I can't help with that."},
                "finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":5}}},"error":null}),
            ),
            &job,
            &m,
            "b",
        );
        let e = r.error.clone().unwrap();
        assert!(
            e.contains("refused") && e.contains("I can't help with that."),
            "{e}"
        );
        assert_eq!(r.output_tokens, 5);
        assert!(r.cost_usd > 0.0);

        let r = line_result(
            line(
                json!({"custom_id":"a","response":{"status_code":400,"body":{"error":{
                "message":"Invalid value for 'model'.","type":"invalid_request_error","param":"model","code":null}}},"error":null}),
            ),
            &job,
            &m,
            "b",
        );
        let e = r.error.unwrap();
        assert!(
            e.contains("HTTP 400")
                && e.contains("invalid_request_error")
                && e.contains("Invalid value for 'model'."),
            "{e}"
        );

        let r = line_result(
            line(
                json!({"custom_id":"a","response":null,"error":{"code":"batch_expired","message":"x"}}),
            ),
            &job,
            &m,
            "b",
        );
        assert_eq!(r.error.as_deref(), Some(EXPIRED_MESSAGE));
        let r = line_result(
            line(
                json!({"custom_id":"a","response":null,"error":{"code":"batch_cancelled","message":"x"}}),
            ),
            &job,
            &m,
            "b",
        );
        assert_eq!(r.outcome(), crate::result::JobOutcome::Cancelled);
        let r = line_result(
            line(
                json!({"custom_id":"a","response":null,"error":{"code":"request_timeout","message":"The model call timed out."}}),
            ),
            &job,
            &m,
            "b",
        );
        let e = r.error.unwrap();
        assert!(
            e.contains("request_timeout") && e.contains("timed out"),
            "{e}"
        );
    }

    #[test]
    fn truncated_answer_is_flagged() {
        let m = model();
        let job = Job::prompt("hi").id("a").model("gpt-4o-mini");
        let r = line_result(
            line(
                json!({"custom_id":"a","response":{"status_code":200,"body":{"choices":[{"index":0,
                "message":{"content":"partial"},"finish_reason":"length"}]}}}),
            ),
            &job,
            &m,
            "b",
        );
        assert!(r.is_success());
        assert!(r.warnings[0].contains("max_tokens"), "{:?}", r.warnings);
        let r = line_result(
            line(
                json!({"custom_id":"a","response":{"status_code":200,"body":{"choices":[{"index":0,
                "message":{"content":""},"finish_reason":"length"}]}}}),
            ),
            &job,
            &m,
            "b",
        );
        assert!(r.error.unwrap().contains("raise max_tokens"));
    }

    #[test]
    fn strict_nulls_for_optional_fields_are_dropped() {
        let schema = ResponseSchema::from_value(json!({
            "type":"object",
            "properties":{
                "total":{"type":"number"},
                "note":{"type":"string"},
                "vendor":{"$ref":"#/$defs/Vendor"},
                "lines":{"type":"array","items":{"type":"object",
                    "properties":{"sku":{"type":"string"},"qty":{"type":"integer"}},"required":["sku"]}}
            },
            "required":["total","lines","vendor"],
            "$defs":{"Vendor":{"type":"object","properties":{"name":{"type":"string"},"vat":{"type":"string"}},"required":["name"]}}
        }))
        .unwrap();
        let m = model();
        let job = Job::prompt("x")
            .id("s")
            .model("gpt-4o-mini")
            .response_schema(schema);
        let content = json!({"total":12.5,"note":null,"vendor":{"name":"ACME","vat":null},
            "lines":[{"sku":"A","qty":null},{"sku":"B","qty":2}]})
        .to_string();
        let r = line_result(
            line(
                json!({"custom_id":"s","response":{"status_code":200,"body":{"choices":[{"index":0,
                "message":{"content":content},"finish_reason":"stop"}]}}}),
            ),
            &job,
            &m,
            "b",
        );
        assert!(r.is_success(), "{r:?}");
        assert!(r.validation_errors.is_empty(), "{:?}", r.validation_errors);
        assert_eq!(
            r.parsed_response.unwrap(),
            json!({"total":12.5,"vendor":{"name":"ACME"},"lines":[{"sku":"A"},{"sku":"B","qty":2}]})
        );
    }

    #[test]
    fn schema_violation_is_reported() {
        let schema = ResponseSchema::from_value(json!({
            "type":"object","properties":{"total":{"type":"number"}},"required":["total"]
        }))
        .unwrap();
        let m = model();
        let job = Job::prompt("x")
            .id("s")
            .model("gpt-4o-mini")
            .response_schema(schema);
        let r = line_result(
            line(
                json!({"custom_id":"s","response":{"status_code":200,"body":{"choices":[{"index":0,
                "message":{"content":"{\"total\":\"twelve\"}"},"finish_reason":"stop"}]}}}),
            ),
            &job,
            &m,
            "b",
        );
        assert_eq!(r.validation_errors.len(), 1, "{r:?}");
    }
}
