//! Reading a JSONL jobs file into a batch: one job per line, with the
//! library's `Job` field names. Every line is checked before anything is
//! submitted, and an error names the file, the line, the field and the fix.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use batchata::{Batch, Job, ResponseSchema};
use serde_json::Value;

const FIELDS: &[&str] = &[
    "id",
    "model",
    "messages",
    "file",
    "prompt",
    "temperature",
    "max_tokens",
    "response_schema",
    "enable_citations",
];

/// A jobs file problem, with where it is.
#[derive(Debug)]
pub struct JobsError(pub String);

impl std::fmt::Display for JobsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn closest(field: &str) -> Option<&'static str> {
    FIELDS
        .iter()
        .map(|f| (strsim::jaro_winkler(field, f), *f))
        .filter(|(s, _)| *s > 0.75)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, f)| f)
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let path = PathBuf::from(p);
    if path.is_absolute() {
        path
    } else {
        base.join(path)
    }
}

/// Parses one line into a job; `base` is the jobs file's folder.
pub fn parse_line(line: &str, base: &Path) -> Result<Job, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| {
        format!("not valid JSON ({e}); each line must be one JSON object such as {{\"prompt\": \"...\", \"model\": \"...\"}}")
    })?;
    let Value::Object(mut map) = value else {
        return Err("each line must be a JSON object".into());
    };
    for key in map.keys() {
        if !FIELDS.contains(&key.as_str()) {
            let hint = match closest(key) {
                Some(f) => format!("did you mean '{f}'?"),
                None => format!("known fields: {}", FIELDS.join(", ")),
            };
            return Err(format!("unknown field '{key}'; {hint}"));
        }
    }
    if let Some(Value::String(f)) = map.get("file") {
        let p = resolve(base, f);
        map.insert(
            "file".into(),
            Value::String(p.to_string_lossy().into_owned()),
        );
    }
    let schema = match map.remove("response_schema") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => {
            let path = resolve(base, &p);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                format!(
                    "field 'response_schema': cannot read schema file '{}': {e}",
                    path.display()
                )
            })?;
            let v: Value = serde_json::from_str(&text).map_err(|e| {
                format!(
                    "field 'response_schema': '{}' is not JSON: {e}",
                    path.display()
                )
            })?;
            Some(v)
        }
        Some(v @ Value::Object(_)) => Some(v),
        Some(_) => {
            return Err(
                "field 'response_schema': give a JSON Schema object or a path to a .json file"
                    .into(),
            )
        }
    };
    let mut job: Job = serde_json::from_value(Value::Object(map.clone())).map_err(|e| {
        let field = FIELDS
            .iter()
            .find(|f| e.to_string().contains(*f))
            .map(|f| format!("field '{f}': "))
            .unwrap_or_default();
        format!("{field}{e}; check the field's type (messages: [{{\"role\":\"user\",\"content\":\"...\"}}], temperature: number, max_tokens: integer, enable_citations: true/false)")
    })?;
    if let Some(v) = schema {
        job.response_schema = Some(
            ResponseSchema::from_value(v).map_err(|e| format!("field 'response_schema': {e}"))?,
        );
    }
    Ok(job)
}

/// Reads every line of `path` into `batch`; on the first bad line, nothing is kept.
pub fn load(path: &Path, batch: &mut Batch) -> Result<usize, JobsError> {
    let file = std::fs::File::open(path).map_err(|e| {
        JobsError(format!(
            "{}: cannot open the jobs file: {e}",
            path.display()
        ))
    })?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let mut n = 0;
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let lineno = i + 1;
        let line =
            line.map_err(|e| JobsError(format!("{}:{lineno}: cannot read: {e}", path.display())))?;
        if line.trim().is_empty() || line.trim_start().starts_with("//") {
            continue;
        }
        let job = parse_line(&line, &base)
            .map_err(|e| JobsError(format!("{}:{lineno}: {e}", path.display())))?;
        batch
            .add_job(job)
            .map_err(|e| JobsError(format!("{}:{lineno}: {e}", path.display())))?;
        n += 1;
    }
    if n == 0 {
        return Err(JobsError(format!(
            "{}: no jobs; write one JSON object per line, e.g. {{\"prompt\": \"Hello\", \"model\": \"claude-haiku-4-5\"}}",
            path.display()
        )));
    }
    Ok(n)
}
