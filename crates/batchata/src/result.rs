//! `JobResult` and `Citation`: what a finished job leaves behind.
//!
//! One `JobResult` is written per job as `{results_dir}/{job_id}.json`, with
//! the same field names as the Python library's result files so existing
//! tooling can read them. Two optional fields are ours: `validation_errors`
//! (a structured answer that parsed but broke its schema) and `warnings`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::{Error, Result};

/// A passage of the source document that backs part of the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Citation {
    /// The cited text, as it stands in the document.
    pub text: String,
    /// The document it comes from (its title, usually the file name).
    pub source: String,
    /// The first page, for PDFs (1-based).
    #[serde(default)]
    pub page: Option<u32>,
    /// Provider details: citation type, index ranges, end page, answer text.
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
    /// How sure the match to a field is (`"high"`, `"medium"` or `"low"`
    /// in the file). In `citation_mappings`: for that field. In
    /// `citations`: the best the passage got for any field, and `None` for
    /// a passage that backs no field (or when nothing was mapped: no schema,
    /// or an answer that did not parse).
    #[serde(default)]
    pub confidence: Option<Confidence>,
    /// In field mappings: why this citation was matched to the field.
    #[serde(default)]
    pub match_reason: Option<String>,
}

/// How sure a field-to-citation match is, scored from where the field's
/// value is found (the cited text or only the answer) and how well the
/// field's name matches the words around it. Ordered: `Low < Medium < High`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    /// A weak hint: the value is only in the answer text, or only some of its words match.
    Low,
    /// The value is in the cited text but the field's name is not near it,
    /// or the value is in the answer text and the name matches.
    Medium,
    /// The value is in the cited text and the field's name matches the text around it.
    High,
}

impl Confidence {
    /// `"high"`, `"medium"` or `"low"`, as written in result files.
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::High => "high",
            Confidence::Medium => "medium",
            Confidence::Low => "low",
        }
    }
}

impl std::fmt::Display for Confidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of one job.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct JobResult {
    /// The job's id.
    pub job_id: String,
    /// The model's answer text (all text blocks joined).
    #[serde(default)]
    pub raw_response: Option<String>,
    /// The structured answer, when the job had a response schema.
    #[serde(default)]
    pub parsed_response: Option<serde_json::Value>,
    /// Every citation the provider returned.
    #[serde(default)]
    pub citations: Option<Vec<Citation>>,
    /// For structured answers with citations: field path → citations backing it.
    #[serde(default)]
    pub citation_mappings: Option<BTreeMap<String, Vec<Citation>>>,
    /// Input tokens billed (including cache reads and writes).
    #[serde(default)]
    pub input_tokens: u64,
    /// Output tokens billed.
    #[serde(default)]
    pub output_tokens: u64,
    /// Cost in USD at batch prices.
    #[serde(default)]
    pub cost_usd: f64,
    /// Why the job failed; `None` on success.
    #[serde(default)]
    pub error: Option<String>,
    /// The provider batch that ran the job.
    #[serde(default)]
    pub batch_id: Option<String>,
    /// Schema violations of a structured answer that parsed as JSON.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validation_errors: Vec<String>,
    /// Things the user should know that did not fail the job.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The fingerprint of the request this answers ([`crate::Job::fingerprint`]):
    /// a rerun only keeps an answer whose request is unchanged. Ours; the
    /// Python library ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// How the job ended. Every result file this library writes has it; a
    /// file without it (written by Python batchata, which ignores the
    /// field) gets it from [`JobResult::outcome`]'s reading of `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<JobOutcome>,
}

/// Error text of jobs cancelled by the user.
pub const CANCELLED_BY_USER: &str = "Cancelled by user";
/// Error text of jobs not run because of the cost limit.
pub const COST_LIMIT_EXCEEDED: &str = "Cost limit exceeded";
/// Error text of jobs stopped by the time limit.
pub const TIME_LIMIT_EXCEEDED: &str = "Time limit exceeded";

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobOutcome {
    /// An answer arrived.
    Completed,
    /// The job failed (provider error, parse error, limits).
    Failed,
    /// The user stopped the run before the job finished.
    Cancelled,
}

impl JobResult {
    /// A result with an error and no answer: failed, or cancelled when the
    /// reason starts with "Cancelled by user" (the wording the providers'
    /// parsers give requests a cancelled batch never ran). The run settles
    /// `outcome` from it before writing the file.
    pub fn failed(job_id: impl Into<String>, error: impl Into<String>) -> Self {
        JobResult {
            job_id: job_id.into(),
            error: Some(error.into()),
            ..Default::default()
        }
    }

    /// A job that never ran because the user stopped the run; `why` follows
    /// the "Cancelled by user" the Python library writes.
    pub fn cancelled(job_id: impl Into<String>, why: &str) -> Self {
        let error = if why.is_empty() {
            CANCELLED_BY_USER.to_string()
        } else {
            format!("{CANCELLED_BY_USER}: {why}")
        };
        JobResult {
            job_id: job_id.into(),
            error: Some(error),
            outcome: Some(JobOutcome::Cancelled),
            ..Default::default()
        }
    }

    /// True when the job produced an answer.
    pub fn is_success(&self) -> bool {
        self.error.is_none()
    }

    /// Input plus output tokens.
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }

    /// How the job ended, read from the result itself.
    pub fn outcome(&self) -> JobOutcome {
        if let Some(o) = self.outcome {
            return o;
        }
        // A file without the field: Python batchata's wording tells.
        match &self.error {
            None => JobOutcome::Completed,
            Some(e) if e.starts_with(CANCELLED_BY_USER) => JobOutcome::Cancelled,
            Some(_) => JobOutcome::Failed,
        }
    }

    /// The structured answer as a typed value.
    pub fn parsed<T: DeserializeOwned>(&self) -> Result<T> {
        let value = self.parsed_response.as_ref().ok_or_else(|| {
            Error::Parse(format!(
                "job '{}' has no parsed response (did the job set a response schema, and did it succeed?)",
                self.job_id
            ))
        })?;
        T::deserialize(value).map_err(|e| {
            Error::Parse(format!(
                "job '{}': parsed response does not fit the requested type: {e}",
                self.job_id
            ))
        })
    }

    /// Serialises to pretty JSON.
    pub fn to_json(&self) -> Result<String> {
        let mut out = Vec::with_capacity(1024);
        self.write_pretty(&mut out)?;
        String::from_utf8(out).map_err(|e| Error::Internal(e.to_string()))
    }

    /// Appends the result as pretty JSON: the bytes of
    /// `serde_json::to_writer_pretty`. A result without a structured answer,
    /// citations, validation errors or warnings (most of a large run's) is
    /// written by hand, its long strings escaped sixteen bytes at a time
    /// ([`crate::json_out`]); any other goes through serde.
    pub(crate) fn write_pretty(&self, out: &mut Vec<u8>) -> Result<()> {
        let cannot = |e: serde_json::Error| {
            Error::Parse(format!(
                "job '{}': cannot serialise result: {e}",
                self.job_id
            ))
        };
        let JobResult {
            job_id,
            raw_response,
            parsed_response,
            citations,
            citation_mappings,
            input_tokens,
            output_tokens,
            cost_usd,
            error,
            batch_id,
            validation_errors,
            warnings,
            fingerprint,
            outcome,
        } = self;
        let plain = parsed_response.is_none()
            && citations.is_none()
            && citation_mappings.is_none()
            && validation_errors.is_empty()
            && warnings.is_empty();
        if !plain {
            return serde_json::to_writer_pretty(out, self).map_err(cannot);
        }
        use crate::json_out::{write_str, write_value};
        let mut first = true;
        let mut field = |o: &mut Vec<u8>, name: &str| {
            o.extend_from_slice(if first { b"{\n  \"" } else { b",\n  \"" });
            first = false;
            o.extend_from_slice(name.as_bytes());
            o.extend_from_slice(b"\": ");
        };
        let opt_str = |o: &mut Vec<u8>, s: &Option<String>| match s {
            Some(s) => write_str(o, s),
            None => o.extend_from_slice(b"null"),
        };
        let o = out;
        field(o, "job_id");
        write_str(o, job_id);
        field(o, "raw_response");
        opt_str(o, raw_response);
        for name in ["parsed_response", "citations", "citation_mappings"] {
            field(o, name);
            o.extend_from_slice(b"null");
        }
        field(o, "input_tokens");
        write_value(o, input_tokens).map_err(cannot)?;
        field(o, "output_tokens");
        write_value(o, output_tokens).map_err(cannot)?;
        field(o, "cost_usd");
        write_value(o, cost_usd).map_err(cannot)?;
        field(o, "error");
        opt_str(o, error);
        field(o, "batch_id");
        opt_str(o, batch_id);
        if fingerprint.is_some() {
            field(o, "fingerprint");
            opt_str(o, fingerprint);
        }
        if let Some(outcome) = outcome {
            field(o, "outcome");
            write_value(o, outcome).map_err(cannot)?;
        }
        o.extend_from_slice(b"\n}");
        Ok(())
    }

    /// Reads a result from JSON text.
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| Error::Parse(format!("not a job result: {e}")))
    }

    /// Writes the result to `path` atomically (temp file in the same folder, then rename).
    pub fn save_to_json(&self, path: impl AsRef<Path>) -> Result<()> {
        let json = self.to_json()?;
        crate::fsutil::write_atomic(path.as_ref(), json.as_bytes())
    }

    /// Reads a result file.
    pub fn load_from_json(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
        Self::from_json(&text).map_err(|e| Error::Parse(format!("{}: {e}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shape a result takes, written by hand or through serde, is
    /// byte for byte what serde_json's pretty writer gives.
    #[test]
    fn results_are_written_as_serde_writes_them() {
        let texts = [
            String::new(),
            "plain answer".to_string(),
            "quotes \" and \\ backslashes, tabs\t and\nnew lines\r\n".to_string(),
            "control \u{1} \u{1f} and é ü 中文 🚀".repeat(7),
            "x".repeat(10_000),
        ];
        let costs = [0.0, 1e-7, 0.1 + 0.2, 123_456.789, 2.5e20, f64::NAN];
        let mut n = 0;
        for (i, text) in texts.iter().enumerate() {
            for (k, cost) in costs.iter().enumerate() {
                let mut r = JobResult {
                    job_id: format!("job \"{i}-{k}\""),
                    raw_response: (k % 3 != 0).then(|| text.clone()),
                    input_tokens: (i * 1000 + k) as u64,
                    output_tokens: u64::MAX - k as u64,
                    cost_usd: *cost,
                    error: (k % 2 == 1).then(|| format!("failed: {text}")),
                    batch_id: (k != 4).then(|| "msgbatch_01".to_string()),
                    fingerprint: (k % 2 == 0).then(|| "0123456789abcdef".repeat(2)),
                    outcome: [
                        None,
                        Some(JobOutcome::Completed),
                        Some(JobOutcome::Failed),
                        Some(JobOutcome::Cancelled),
                    ][k % 4],
                    ..JobResult::default()
                };
                // And the shapes serde writes itself.
                match (i + k) % 5 {
                    1 => r.parsed_response = Some(serde_json::json!({"a": [1, text]})),
                    2 => r.warnings = vec![text.clone()],
                    3 => r.validation_errors = vec!["v".into()],
                    _ => {}
                }
                let mut ours = b"prefix kept: ".to_vec();
                r.write_pretty(&mut ours).unwrap();
                let mut serde = b"prefix kept: ".to_vec();
                serde_json::to_writer_pretty(&mut serde, &r).unwrap();
                assert_eq!(
                    String::from_utf8(ours).unwrap(),
                    String::from_utf8(serde).unwrap()
                );
                n += 1;
            }
        }
        assert_eq!(n, 30);
    }
}
