//! Parsing what the Gemini batch API sends back: the batch (a long-running
//! Operation), its state in the crate's own words, and each request's
//! answer turned into a `JobResult`.
//!
//! The JSON is proto3 JSON: int64 counts arrive as strings, and default
//! values are left out (no `done` while the batch runs, no zero counts), so
//! every field here is optional and a missing one means false or zero. The
//! state is read in both spellings, the API's `BATCH_STATE_*` and the SDK's
//! `JOB_STATE_*`.
//!
//! An answer is a `GenerateContentResponse`: the text is the candidate's
//! non-thought parts; usage comes from `usageMetadata`, where thinking tokens
//! (`thoughtsTokenCount`, not part of `candidatesTokenCount`) are billed as
//! output and cached prompt tokens (`cachedContentTokenCount`, part of
//! `promptTokenCount`) as cache reads. A request that did not run carries a
//! `google.rpc.Status` instead.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::catalog::{ModelInfo, Usage};
use crate::job::Job;
use crate::providers::{build_result, Answer, BatchState, BatchStatus, RequestCounts};
use crate::result::{JobResult, CANCELLED_BY_USER};

/// Why jobs of an expired batch have no result.
pub const EXPIRED_MESSAGE: &str =
    "Request expired before the provider processed it (Gemini expires a batch not finished within 48 hours and returns none of its results)";

/// An int64 as proto3 JSON writes it: a string, or (leniently) a number.
fn int64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    Ok(match v {
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        _ => 0,
    })
}

/// `google.rpc.Status`, or an HTTP-style error object.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RpcStatus {
    /// gRPC code (or HTTP status).
    #[serde(default)]
    pub code: Option<i64>,
    /// What happened.
    #[serde(default)]
    pub message: Option<String>,
    /// Canonical name (`INVALID_ARGUMENT`), when given.
    #[serde(default)]
    pub status: Option<String>,
}

/// Canonical names of the gRPC codes.
fn grpc_name(code: i64) -> Option<&'static str> {
    Some(match code {
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        _ => return None,
    })
}

impl RpcStatus {
    /// `"INVALID_ARGUMENT: message"`.
    pub fn describe(&self) -> String {
        let name = self
            .status
            .clone()
            .or_else(|| self.code.and_then(grpc_name).map(String::from))
            .or_else(|| self.code.map(|c| format!("code {c}")));
        let msg = self.message.as_deref().unwrap_or("no message given");
        match name {
            Some(n) => format!("{n}: {msg}"),
            None => msg.to_string(),
        }
    }
}

/// `batchStats`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchStats {
    /// Requests in the batch.
    #[serde(default, deserialize_with = "int64")]
    pub request_count: u64,
    /// Finished with an answer.
    #[serde(default, deserialize_with = "int64")]
    pub successful_request_count: u64,
    /// Finished with an error.
    #[serde(default, deserialize_with = "int64")]
    pub failed_request_count: u64,
}

/// The batch inside an Operation's `metadata` (the fields read; its output
/// is skipped here, see [`BatchResults`]).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchMeta {
    /// `BATCH_STATE_*` (or `JOB_STATE_*`).
    #[serde(default)]
    pub state: Option<String>,
    /// The name given at creation.
    #[serde(default)]
    pub display_name: Option<String>,
    /// RFC 3339.
    #[serde(default)]
    pub create_time: Option<String>,
    /// Request counts.
    #[serde(default)]
    pub batch_stats: BatchStats,
}

impl BatchMeta {
    /// Creation time, if readable.
    pub fn created(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let t = self.create_time.as_deref()?;
        chrono::DateTime::parse_from_rfc3339(t)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc))
    }
}

/// A batch Operation without its output: what a status poll reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Operation {
    /// `batches/{id}`.
    pub name: String,
    /// True once the batch ended (absent, i.e. false, before).
    #[serde(default)]
    pub done: bool,
    /// The batch.
    #[serde(default)]
    pub metadata: BatchMeta,
    /// Why the batch failed (or was cancelled).
    #[serde(default)]
    pub error: Option<RpcStatus>,
}

/// A page of `GET batches`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationList {
    /// The batches.
    #[serde(default)]
    pub operations: Vec<Operation>,
    /// The next page, if any.
    #[serde(default)]
    pub next_page_token: Option<String>,
}

/// An uploaded or generated file (the fields read).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileObject {
    /// `files/{id}`.
    pub name: String,
    /// Size in bytes.
    #[serde(default, deserialize_with = "int64")]
    pub size_bytes: u64,
}

/// `{"file": File}`, the answer to a finished upload.
#[derive(Debug, Clone, Deserialize)]
pub struct UploadedFile {
    /// The file.
    pub file: FileObject,
}

/// A batch's output: inline responses (each kept raw until it is read), or
/// a results file.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchOutput {
    /// `files/batch-...`.
    #[serde(default)]
    pub responses_file: Option<String>,
    /// `{"inlinedResponses": [...]}` (the key is doubled on the wire).
    #[serde(default)]
    pub inlined_responses: Option<Inlined>,
}

/// The inner `inlinedResponses`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Inlined {
    /// One entry per request, raw.
    #[serde(default)]
    pub inlined_responses: Vec<Box<serde_json::value::RawValue>>,
}

/// What a results read needs of an Operation: its state and its output,
/// from `response` or else `metadata.output`.
#[derive(Debug, Deserialize)]
pub struct BatchResults {
    /// `batches/{id}`. Not read, but required: a reply without it is not
    /// an Operation and fails to parse.
    #[allow(dead_code)]
    pub name: String,
    /// True once ended.
    #[serde(default)]
    pub done: bool,
    /// The batch, with its output.
    #[serde(default)]
    pub metadata: MetaWithOutput,
    /// The output as the REST docs read it.
    #[serde(default)]
    pub response: Option<BatchOutput>,
    /// Why the batch failed.
    #[serde(default)]
    pub error: Option<RpcStatus>,
}

/// `metadata` with its `output`.
#[derive(Debug, Default, Deserialize)]
pub struct MetaWithOutput {
    /// The state and counts.
    #[serde(flatten)]
    pub meta: BatchMeta,
    /// The output as the SDK reads it.
    #[serde(default)]
    pub output: Option<BatchOutput>,
}

impl BatchResults {
    /// The status of the batch.
    pub fn status(&self) -> BatchStatus {
        status_of(
            self.metadata.meta.state.as_deref(),
            self.done,
            &self.metadata.meta.batch_stats,
            self.error.as_ref(),
        )
    }

    /// The output, wherever it was put.
    pub fn take_output(&mut self) -> BatchOutput {
        let from_response = self.response.take().unwrap_or_default();
        if from_response.responses_file.is_some() || from_response.inlined_responses.is_some() {
            return from_response;
        }
        self.metadata.output.take().unwrap_or_default()
    }
}

/// The wire state without its prefix, lower-case: `running`, `succeeded`, ...
pub fn short_state(state: &str) -> String {
    state
        .trim_start_matches("BATCH_STATE_")
        .trim_start_matches("JOB_STATE_")
        .to_ascii_lowercase()
}

impl Operation {
    /// The status of the batch.
    pub fn status(&self) -> BatchStatus {
        status_of(
            self.metadata.state.as_deref(),
            self.done,
            &self.metadata.batch_stats,
            self.error.as_ref(),
        )
    }
}

fn status_of(
    state: Option<&str>,
    done: bool,
    stats: &BatchStats,
    error: Option<&RpcStatus>,
) -> BatchStatus {
    let short = state
        .map(short_state)
        .unwrap_or_else(|| "unspecified".into());
    let normalized = match short.as_str() {
        "pending" => BatchState::Pending,
        "running" => BatchState::Running,
        "succeeded" => BatchState::Complete,
        "failed" | "expired" => BatchState::Failed,
        "cancelled" => BatchState::Cancelled,
        // A state this client does not know: ended if the Operation says so.
        _ if done && error.is_some() => BatchState::Failed,
        _ if done => BatchState::Complete,
        _ => BatchState::Running,
    };
    let total = stats.request_count;
    let done_count = stats.successful_request_count + stats.failed_request_count;
    let rest = total.saturating_sub(done_count);
    let mut counts = RequestCounts {
        total,
        succeeded: stats.successful_request_count,
        errored: stats.failed_request_count,
        ..Default::default()
    };
    match short.as_str() {
        "expired" => counts.expired = rest,
        "cancelled" => counts.cancelled = rest,
        "failed" => counts.errored = total.max(stats.failed_request_count),
        _ if !normalized.is_terminal() => counts.processing = rest,
        _ => {}
    }
    let error = match short.as_str() {
        "failed" => Some(format!(
            "batch failed: {}",
            error
                .map(RpcStatus::describe)
                .unwrap_or_else(|| "Gemini gave no reason".into())
        )),
        "expired" => Some("batch expired (not finished within 48 hours)".to_string()),
        _ => None,
    };
    BatchStatus {
        state: normalized,
        provider_status: short,
        counts,
        error,
        rejected: false,
    }
}

// ---------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------

/// One inline result: `{"response"|"error", "metadata": {"key"}}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct InlinedResponse {
    /// The answer.
    #[serde(default)]
    pub response: Option<GenerateContentResponse>,
    /// Why there is none.
    #[serde(default)]
    pub error: Option<RpcStatus>,
    /// The request's metadata, echoed.
    #[serde(default)]
    pub metadata: Option<Value>,
}

impl InlinedResponse {
    /// The key the request was sent with.
    pub fn key(&self) -> Option<&str> {
        self.metadata.as_ref()?.get("key")?.as_str()
    }
}

/// One line of a results file: `{"key", "response"|"error"}` (the error
/// field's name is not documented; `status` is read too).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FileLine {
    /// The request's key.
    #[serde(default)]
    pub key: Option<String>,
    /// The answer.
    #[serde(default)]
    pub response: Option<GenerateContentResponse>,
    /// Why there is none.
    #[serde(default)]
    pub error: Option<RpcStatus>,
    /// Why there is none (other spelling).
    #[serde(default)]
    pub status: Option<RpcStatus>,
}

/// Just the key of a line that did not parse whole.
#[derive(Debug, Deserialize)]
pub struct LineKey {
    /// File form.
    #[serde(default)]
    pub key: Option<String>,
    /// Inline form.
    #[serde(default)]
    pub metadata: Option<Value>,
}

impl LineKey {
    /// The key, in either form.
    pub fn get(&self) -> Option<&str> {
        self.key
            .as_deref()
            .or_else(|| self.metadata.as_ref()?.get("key")?.as_str())
    }
}

/// A `GenerateContentResponse` (the fields read).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentResponse {
    /// The answers (one; `candidateCount` is never set).
    #[serde(default)]
    pub candidates: Vec<Candidate>,
    /// Why the prompt was blocked, if it was.
    #[serde(default)]
    pub prompt_feedback: Option<PromptFeedback>,
    /// Tokens.
    #[serde(default)]
    pub usage_metadata: Option<UsageMetadata>,
}

/// One candidate.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    /// The answer.
    #[serde(default)]
    pub content: Option<CandidateContent>,
    /// `STOP`, `MAX_TOKENS`, `SAFETY`, ...
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// More about an unusual finish.
    #[serde(default)]
    pub finish_message: Option<String>,
}

/// A candidate's content.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CandidateContent {
    /// Its parts (absent when nothing was written).
    #[serde(default)]
    pub parts: Vec<AnswerPart>,
}

/// One part of an answer.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AnswerPart {
    /// Text, if a text part.
    #[serde(default)]
    pub text: Option<String>,
    /// True for a thought summary (not part of the answer).
    #[serde(default)]
    pub thought: bool,
}

/// `promptFeedback`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptFeedback {
    /// `SAFETY`, `BLOCKLIST`, ...
    #[serde(default)]
    pub block_reason: Option<String>,
    /// More about it.
    #[serde(default)]
    pub block_reason_message: Option<String>,
}

/// `usageMetadata`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageMetadata {
    /// The prompt, cached part included.
    #[serde(default)]
    pub prompt_token_count: u64,
    /// The answer, thoughts excluded.
    #[serde(default)]
    pub candidates_token_count: u64,
    /// Thinking, billed as output.
    #[serde(default)]
    pub thoughts_token_count: u64,
    /// The cached part of the prompt.
    #[serde(default)]
    pub cached_content_token_count: u64,
    /// Prompts of tool calls, billed as input.
    #[serde(default)]
    pub tool_use_prompt_token_count: u64,
}

impl UsageMetadata {
    /// The crate's usage: uncached input, cache reads, output with thinking.
    pub fn to_usage(self) -> Usage {
        let prompt = self.prompt_token_count + self.tool_use_prompt_token_count;
        let cached = self.cached_content_token_count.min(prompt);
        Usage {
            input_tokens: prompt - cached,
            cache_read_tokens: cached,
            output_tokens: self.candidates_token_count + self.thoughts_token_count,
            cache_write_tokens: 0,
        }
    }
}

fn failed(job_id: &str, batch_id: &str, error: String) -> JobResult {
    let mut r = JobResult::failed(job_id, error);
    r.batch_id = Some(batch_id.to_string());
    r
}

fn priced(mut r: JobResult, model: &ModelInfo, usage: &Usage) -> JobResult {
    r.input_tokens = usage.total_input();
    r.output_tokens = usage.output_tokens;
    r.cost_usd = model.batch_cost(usage);
    r
}

/// Turns one request's answer (or error) into the job's result; `model`
/// prices it.
pub fn answer_result(
    response: Option<GenerateContentResponse>,
    error: Option<RpcStatus>,
    job: &Job,
    model: &ModelInfo,
    batch_id: &str,
) -> JobResult {
    let job_id = job.id_str();
    let Some(resp) = response else {
        let why = error
            .map(|e| e.describe())
            .unwrap_or_else(|| "the result has neither a response nor an error".into());
        return failed(
            job_id,
            batch_id,
            format!("Gemini could not run the request ({why})"),
        );
    };
    let usage = resp
        .usage_metadata
        .map(UsageMetadata::to_usage)
        .unwrap_or_default();
    if let Some(reason) = resp
        .prompt_feedback
        .as_ref()
        .and_then(|f| f.block_reason.as_deref())
        .filter(|r| !r.is_empty() && *r != "BLOCK_REASON_UNSPECIFIED")
    {
        let more = resp
            .prompt_feedback
            .as_ref()
            .and_then(|f| f.block_reason_message.as_deref())
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        return priced(
            failed(
                job_id,
                batch_id,
                format!("Gemini blocked the prompt (blockReason={reason}){more}"),
            ),
            model,
            &usage,
        );
    }
    let Some(candidate) = resp.candidates.into_iter().next() else {
        return priced(
            failed(
                job_id,
                batch_id,
                "Gemini returned a response with no candidates".into(),
            ),
            model,
            &usage,
        );
    };
    let text: String = candidate
        .content
        .map(|c| {
            c.parts
                .into_iter()
                .filter(|p| !p.thought)
                .filter_map(|p| p.text)
                .collect()
        })
        .unwrap_or_default();
    let finish = candidate.finish_reason.as_deref().unwrap_or("");
    let finish_more = candidate
        .finish_message
        .as_deref()
        .map(|m| format!(": {m}"))
        .unwrap_or_default();
    if text.is_empty() {
        let why = match finish {
            "MAX_TOKENS" => " before max_tokens ran out (finishReason=MAX_TOKENS); raise max_tokens — Gemini 2.5 and later models spend part of it thinking".to_string(),
            "" | "STOP" => String::new(),
            other => format!(" (finishReason={other}{finish_more})"),
        };
        return priced(
            failed(
                job_id,
                batch_id,
                format!("The model returned no answer text{why}"),
            ),
            model,
            &usage,
        );
    }
    let mut result = build_result(
        job,
        model,
        batch_id,
        Answer {
            text,
            structured: None,
            citations: Vec::new(),
            usage,
        },
    );
    match finish {
        "" | "STOP" => {}
        "MAX_TOKENS" => result.warnings.push(
            "the answer was cut off at max_tokens (finishReason=MAX_TOKENS); raise max_tokens for a complete answer".into(),
        ),
        other => result
            .warnings
            .push(format!("the answer ended early (finishReason={other}{finish_more})")),
    }
    result
}

/// Why a job whose request has no result in a batch that ended in `state`
/// got none.
pub fn missing_message(status: &BatchStatus, batch_id: &str) -> String {
    match status.provider_status.as_str() {
        "cancelled" => {
            format!("{CANCELLED_BY_USER}: the batch was cancelled before this request ran")
        }
        "expired" => EXPIRED_MESSAGE.to_string(),
        "failed" => format!(
            "Gemini failed the batch: {}",
            status
                .error
                .as_deref()
                .map(|e| e.trim_start_matches("batch failed: "))
                .unwrap_or("no reason given")
        ),
        other => {
            format!("Gemini returned no result for this request (batch {batch_id} is {other})")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::job::ResponseSchema;
    use serde_json::json;

    fn op(v: Value) -> Operation {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn every_state_in_both_spellings() {
        for (wire, want, short) in [
            ("BATCH_STATE_PENDING", BatchState::Pending, "pending"),
            ("BATCH_STATE_RUNNING", BatchState::Running, "running"),
            ("BATCH_STATE_SUCCEEDED", BatchState::Complete, "succeeded"),
            ("BATCH_STATE_FAILED", BatchState::Failed, "failed"),
            ("BATCH_STATE_CANCELLED", BatchState::Cancelled, "cancelled"),
            ("BATCH_STATE_EXPIRED", BatchState::Failed, "expired"),
            ("JOB_STATE_SUCCEEDED", BatchState::Complete, "succeeded"),
            ("JOB_STATE_RUNNING", BatchState::Running, "running"),
        ] {
            let st = op(json!({"name": "batches/x", "metadata": {"state": wire}})).status();
            assert_eq!(
                (st.state, st.provider_status.as_str()),
                (want, short),
                "{wire}"
            );
        }
        // Unknown state: keep polling unless the Operation is done.
        let st =
            op(json!({"name": "batches/x", "metadata": {"state": "BATCH_STATE_NEW"}})).status();
        assert_eq!(st.state, BatchState::Running);
        let st = op(json!({"name": "batches/x", "done": true, "metadata": {}})).status();
        assert_eq!(st.state, BatchState::Complete);
    }

    #[test]
    fn counts_are_int64_strings_with_zeros_left_out() {
        // Recorded shape: a running batch (proto3 JSON omits `done` and zero counts).
        let st = op(json!({"name":"batches/q7x2lk0abc","metadata":{
            "@type":"type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatch",
            "name":"batches/q7x2lk0abc","model":"models/gemini-2.5-flash","displayName":"invoices",
            "state":"BATCH_STATE_RUNNING","createTime":"2026-08-21T10:00:01.512Z",
            "updateTime":"2026-08-21T10:03:00.100Z",
            "batchStats":{"requestCount":"5","successfulRequestCount":"2","pendingRequestCount":"3"}}}))
        .status();
        assert_eq!(
            (
                st.counts.total,
                st.counts.succeeded,
                st.counts.errored,
                st.counts.processing
            ),
            (5, 2, 0, 3)
        );
        let st = op(
            json!({"name":"batches/x","done":true,"metadata":{"state":"BATCH_STATE_EXPIRED",
            "batchStats":{"requestCount":"4","successfulRequestCount":"1"}}}),
        )
        .status();
        assert_eq!(st.counts.expired, 3);
        assert!(st.error.unwrap().contains("expired"));
        let st = op(json!({"name":"batches/x","done":true,"metadata":{"state":"BATCH_STATE_FAILED",
            "batchStats":{"requestCount":"2"}},"error":{"code":3,"message":"Invalid input file: line 2"}}))
        .status();
        assert_eq!(st.counts.errored, 2);
        assert_eq!(
            st.error.as_deref(),
            Some("batch failed: INVALID_ARGUMENT: Invalid input file: line 2")
        );
        let st = op(
            json!({"name":"batches/x","done":true,"metadata":{"state":"BATCH_STATE_CANCELLED",
            "batchStats":{"requestCount":"2","successfulRequestCount":"1"}},"error":{"code":1}}),
        )
        .status();
        assert_eq!(
            (st.state, st.counts.cancelled, st.error),
            (BatchState::Cancelled, 1, None)
        );
    }

    #[test]
    fn output_is_read_from_response_or_metadata() {
        let inline = json!({"inlinedResponses": {"inlinedResponses": [
            {"metadata": {"key": "b"}, "response": {"candidates": []}},
            {"metadata": {"key": "a"}, "error": {"code": 13, "message": "Internal error encountered."}}
        ]}});
        let mut r: BatchResults = serde_json::from_str(
            &json!({
                "name": "batches/x", "done": true,
                "metadata": {"state": "BATCH_STATE_SUCCEEDED", "output": inline},
            })
            .to_string(),
        )
        .unwrap();
        assert_eq!(r.status().state, BatchState::Complete);
        let out = r.take_output();
        let items = out.inlined_responses.unwrap().inlined_responses;
        assert_eq!(items.len(), 2);
        let second: InlinedResponse = serde_json::from_str(items[1].get()).unwrap();
        assert_eq!(second.key(), Some("a"));
        assert_eq!(
            second.error.unwrap().describe(),
            "INTERNAL: Internal error encountered."
        );
        let mut r: BatchResults = serde_json::from_str(
            &json!({
                "name": "batches/x", "done": true,
                "metadata": {"state": "BATCH_STATE_SUCCEEDED", "output": {"responsesFile": "files/batch-x"}},
                "response": {"@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatchOutput",
                    "responsesFile": "files/batch-x"},
            })
            .to_string(),
        )
        .unwrap();
        assert_eq!(
            r.take_output().responses_file.as_deref(),
            Some("files/batch-x")
        );
    }

    fn model() -> std::sync::Arc<ModelInfo> {
        Catalog::builtin().get("gemini-2.5-flash").unwrap()
    }

    fn line(v: Value) -> FileLine {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn thinking_tokens_are_billed_as_output() {
        let m = model();
        let job = Job::prompt("hi").id("a").model("gemini-2.5-flash");
        // Recorded shape of a file-result line from a thinking model.
        let l = line(
            json!({"key":"a","response":{"candidates":[{"content":{"role":"model",
            "parts":[{"text":"Hello!"}]},"finishReason":"STOP","index":0}],
            "usageMetadata":{"promptTokenCount":1290,"candidatesTokenCount":12,"thoughtsTokenCount":300,
            "totalTokenCount":1602,"cachedContentTokenCount":1024},"modelVersion":"gemini-2.5-flash"}}),
        );
        let r = answer_result(l.response, l.error, &job, &m, "batches/x");
        assert!(r.is_success(), "{r:?}");
        assert_eq!(r.raw_response.as_deref(), Some("Hello!"));
        assert_eq!((r.input_tokens, r.output_tokens), (1290, 312));
        let want = m.batch_cost(&Usage {
            input_tokens: 266,
            cache_read_tokens: 1024,
            output_tokens: 312,
            cache_write_tokens: 0,
        });
        assert!((r.cost_usd - want).abs() < 1e-12 && want > 0.0);
        // At the catalog's batch prices: tokens × price.
        let plain = m.batch_cost(&Usage {
            input_tokens: 1290,
            output_tokens: 312,
            ..Default::default()
        });
        let by_hand = 1290.0 * m.batch_input_price() / 1e6 + 312.0 * m.batch_output_price() / 1e6;
        assert!((plain - by_hand).abs() < 1e-12);
    }

    #[test]
    fn errors_blocks_and_empty_answers_fail_with_the_reason() {
        let m = model();
        let job = Job::prompt("hi").id("a").model("gemini-2.5-flash");
        let l = line(
            json!({"key":"a","error":{"code":400,"message":"Request contains an invalid argument.","status":"INVALID_ARGUMENT"}}),
        );
        let e = answer_result(l.response, l.error, &job, &m, "b")
            .error
            .unwrap();
        assert!(
            e.contains("INVALID_ARGUMENT: Request contains an invalid argument."),
            "{e}"
        );
        let l =
            line(json!({"key":"a","status":{"code":13,"message":"Internal error encountered."}}));
        let e = answer_result(l.response, l.error.or(l.status), &job, &m, "b")
            .error
            .unwrap();
        assert!(e.contains("INTERNAL"), "{e}");
        let l = line(
            json!({"key":"a","response":{"promptFeedback":{"blockReason":"SAFETY"},
            "usageMetadata":{"promptTokenCount":7,"totalTokenCount":7}}}),
        );
        let r = answer_result(l.response, l.error, &job, &m, "b");
        assert!(r.error.as_deref().unwrap().contains("blockReason=SAFETY"));
        assert_eq!(r.input_tokens, 7);
        let l = line(
            json!({"key":"a","response":{"candidates":[{"content":{"role":"model"},
            "finishReason":"MAX_TOKENS"}],"usageMetadata":{"promptTokenCount":7,"thoughtsTokenCount":64}}}),
        );
        let r = answer_result(l.response, l.error, &job, &m, "b");
        assert!(
            r.error.as_deref().unwrap().contains("raise max_tokens"),
            "{r:?}"
        );
        assert_eq!(r.output_tokens, 64);
        let l = line(
            json!({"key":"a","response":{"candidates":[{"content":{"parts":[
            {"text":"thinking...","thought":true},{"text":"partial"}]},"finishReason":"MAX_TOKENS"}]}}),
        );
        let r = answer_result(l.response, l.error, &job, &m, "b");
        assert_eq!(r.raw_response.as_deref(), Some("partial"));
        assert!(r.warnings[0].contains("MAX_TOKENS"));
    }

    #[test]
    fn structured_answers_are_parsed_and_checked() {
        let schema = ResponseSchema::from_value(json!({"type":"object",
            "properties":{"total":{"type":"number"}},"required":["total"]}))
        .unwrap();
        let m = model();
        let job = Job::prompt("x")
            .id("s")
            .model("gemini-2.5-flash")
            .response_schema(schema);
        let l = line(
            json!({"key":"s","response":{"candidates":[{"content":{"parts":[{"text":"{\"total\": 12.5}"}]},"finishReason":"STOP"}]}}),
        );
        let r = answer_result(l.response, l.error, &job, &m, "b");
        assert_eq!(r.parsed_response, Some(json!({"total": 12.5})));
        assert!(r.validation_errors.is_empty());
        let l = line(
            json!({"key":"s","response":{"candidates":[{"content":{"parts":[{"text":"{\"total\": \"x\"}"}]},"finishReason":"STOP"}]}}),
        );
        let r = answer_result(l.response, l.error, &job, &m, "b");
        assert_eq!(r.validation_errors.len(), 1);
    }
}
