//! Reading a JSONL jobs file into a batch: one job per line, with the
//! library's `Job` field names. The file is streamed line by line; every
//! line is checked (shape here, model and content rules by `add_job`)
//! before anything is submitted, and an error names the file, the line, the
//! field and the fix.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use batchata::{Batch, Job, ResponseSchema};
use serde_json::{Map, Value};

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

const MESSAGE_FIELDS: &[&str] = &["role", "content"];

/// What each field takes, for error messages.
fn expected(field: &str) -> &'static str {
    match field {
        "id" => "a string of letters, digits, '_' or '-' (at most 64)",
        "model" => "a model name such as \"claude-haiku-4-5\" (`batchata models` lists them)",
        "messages" => {
            "a list such as [{\"role\": \"user\", \"content\": \"...\"}] (roles: system, user, assistant)"
        }
        "file" => "a path (relative to the jobs file's folder)",
        "prompt" => "a string",
        "temperature" => "a number such as 0.7",
        "max_tokens" => "a positive whole number such as 1000",
        "enable_citations" => "true or false",
        _ => "a value of the right type",
    }
}

/// A jobs file problem, with where it is.
#[derive(Debug)]
pub struct JobsError(pub String);

impl std::fmt::Display for JobsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn closest(word: &str, among: &[&'static str]) -> Option<&'static str> {
    among
        .iter()
        .map(|f| (strsim::jaro_winkler(word, f), *f))
        .filter(|(s, _)| *s > 0.75)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, f)| f)
}

fn unknown_field(what: &str, key: &str, among: &[&'static str]) -> String {
    let hint = match closest(key, among) {
        Some(f) => format!("did you mean '{f}'?"),
        None => format!("the fields are: {}", among.join(", ")),
    };
    format!("unknown {what} '{key}'; {hint}")
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let path = PathBuf::from(p);
    if path.is_absolute() {
        path
    } else {
        base.join(path)
    }
}

/// Reads the jobs of a file; `base` is the file's folder. Schema files that
/// several lines name are read once.
pub struct LineParser {
    base: PathBuf,
    schemas: HashMap<PathBuf, Value>,
}

impl LineParser {
    /// A parser for a jobs file in the folder `base`.
    pub fn new(base: impl Into<PathBuf>) -> LineParser {
        LineParser {
            base: base.into(),
            schemas: HashMap::new(),
        }
    }

    fn schema_file(&mut self, p: &str) -> Result<Value, String> {
        let path = resolve(&self.base, p);
        if let Some(v) = self.schemas.get(&path) {
            return Ok(v.clone());
        }
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "field 'response_schema': cannot read the schema file '{}' ({e}); give a path relative to the jobs file's folder, or the schema object itself",
                path.display()
            )
        })?;
        let v: Value = serde_json::from_str(&text).map_err(|e| {
            format!(
                "field 'response_schema': '{}' is not JSON ({e}); it must hold one JSON Schema object",
                path.display()
            )
        })?;
        self.schemas.insert(path, v.clone());
        Ok(v)
    }

    /// Parses one line into a job.
    pub fn parse(&mut self, line: &str) -> Result<Job, String> {
        let value: Value = serde_json::from_str(line).map_err(|e| {
            format!("not valid JSON ({e}); each line must be one JSON object such as {{\"prompt\": \"...\", \"model\": \"...\"}}")
        })?;
        let Value::Object(mut map) = value else {
            return Err(
                "each line must be a JSON object such as {\"prompt\": \"...\", \"model\": \"...\"}"
                    .into(),
            );
        };
        for key in map.keys() {
            if !FIELDS.contains(&key.as_str()) {
                return Err(unknown_field("field", key, FIELDS));
            }
        }
        check_messages(&map)?;
        if let Some(Value::String(f)) = map.get("file") {
            let p = resolve(&self.base, f);
            map.insert(
                "file".into(),
                Value::String(p.to_string_lossy().into_owned()),
            );
        }
        let schema = match map.remove("response_schema") {
            None | Some(Value::Null) => None,
            Some(Value::String(p)) => Some(self.schema_file(&p)?),
            Some(v @ Value::Object(_)) => Some(v),
            Some(_) => {
                return Err(
                    "field 'response_schema': give a JSON Schema object, or the path of a .json file holding one"
                        .into(),
                )
            }
        };
        let mut job: Job = match serde_json::from_value(Value::Object(map.clone())) {
            Ok(job) => job,
            Err(e) => return Err(field_error(&map, &e.to_string())),
        };
        if let Some(v) = schema {
            job.response_schema = Some(
                ResponseSchema::from_value(v)
                    .map_err(|e| format!("field 'response_schema': {e}"))?,
            );
        }
        Ok(job)
    }
}

/// Messages are checked here so a misspelt key is named, not reported as a
/// missing `content`.
fn check_messages(map: &Map<String, Value>) -> Result<(), String> {
    let Some(Value::Array(msgs)) = map.get("messages") else {
        return Ok(());
    };
    for (i, m) in msgs.iter().enumerate() {
        let Value::Object(m) = m else {
            return Err(format!(
                "field 'messages': item {i} is not an object; write {{\"role\": \"user\", \"content\": \"...\"}}"
            ));
        };
        for key in m.keys() {
            if !MESSAGE_FIELDS.contains(&key.as_str()) {
                return Err(format!(
                    "field 'messages': item {i}: {}",
                    unknown_field("key", key, MESSAGE_FIELDS)
                ));
            }
        }
        for key in MESSAGE_FIELDS {
            if !m.contains_key(*key) {
                return Err(format!(
                    "field 'messages': item {i} has no '{key}'; write {{\"role\": \"user\", \"content\": \"...\"}}"
                ));
            }
        }
        if !m["content"].is_string() {
            return Err(format!(
                "field 'messages': item {i}: 'content' must be a string; to send a document, use the 'file' field with a 'prompt'"
            ));
        }
    }
    Ok(())
}

/// Finds which field made the whole-line parse fail: each field is parsed on
/// its own (every `Job` field is optional), and the first that fails is named.
fn field_error(map: &Map<String, Value>, whole: &str) -> String {
    for (key, value) in map {
        let mut one = Map::new();
        one.insert(key.clone(), value.clone());
        if let Err(e) = serde_json::from_value::<Job>(Value::Object(one)) {
            let e = e.to_string();
            let e = e.split(" at line").next().unwrap_or(&e);
            return format!(
                "field '{key}': {e}; expected {} (got {})",
                expected(key),
                clip_json(value)
            );
        }
    }
    format!("{whole}; check the fields' types")
}

fn clip_json(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 40 {
        let mut c: String = s.chars().take(39).collect();
        c.push('…');
        c
    } else {
        s
    }
}

/// The library's advice in command-line terms.
fn cli_hint(e: &str, base: &Path) -> String {
    if e.contains("no model given") {
        format!("{e} (on the command line: --model M)")
    } else if e.contains("field 'file'") && e.contains("does not exist") {
        format!(
            "{e}; relative paths resolve against the jobs file's folder ({})",
            base.display()
        )
    } else {
        e.to_string()
    }
}

/// Reads every line of `path` into `batch` and returns how many jobs it
/// holds. Blank lines and lines starting with `//` are skipped. The first
/// bad line stops the run before anything is submitted.
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
        .unwrap_or(Path::new("."));
    let mut parser = LineParser::new(base);
    let mut n = 0;
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let lineno = i + 1;
        let at = |e: &dyn std::fmt::Display| JobsError(format!("{}:{lineno}: {e}", path.display()));
        let line = line.map_err(|e| {
            at(&format!(
                "cannot read this line ({e}); the file must be UTF-8 text"
            ))
        })?;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with("//") {
            continue;
        }
        let job = parser.parse(trimmed).map_err(|e| at(&e))?;
        batch
            .add_job(job)
            .map_err(|e| at(&cli_hint(&e.to_string(), base)))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Job, String> {
        LineParser::new(".").parse(line)
    }

    #[test]
    fn a_wrong_type_names_its_field_and_what_it_takes() {
        let e = parse(r#"{"prompt": "x", "max_tokens": "many"}"#).unwrap_err();
        assert!(
            e.starts_with("field 'max_tokens': invalid type") && e.contains("whole number"),
            "{e}"
        );
        let e = parse(r#"{"prompt": "x", "temperature": [1]}"#).unwrap_err();
        assert!(e.starts_with("field 'temperature'"), "{e}");
        let e = parse(r#"{"prompt": "x", "enable_citations": "yes"}"#).unwrap_err();
        assert!(e.starts_with("field 'enable_citations'"), "{e}");
        let e = parse(r#"{"messages": [{"role": "robot", "content": "hi"}]}"#).unwrap_err();
        assert!(
            e.starts_with("field 'messages'") && e.contains("robot"),
            "{e}"
        );
    }

    #[test]
    fn misspelt_keys_get_the_closest_name() {
        let e = parse(r#"{"promt": "x"}"#).unwrap_err();
        assert_eq!(e, "unknown field 'promt'; did you mean 'prompt'?");
        let e = parse(r#"{"max_token": 5, "prompt": "x"}"#).unwrap_err();
        assert!(e.contains("did you mean 'max_tokens'"), "{e}");
        let e = parse(r#"{"zzz": 5}"#).unwrap_err();
        assert!(e.contains("the fields are: id, model"), "{e}");
        let e = parse(r#"{"messages": [{"role": "user", "contnet": "hi"}]}"#).unwrap_err();
        assert!(
            e.contains("item 0") && e.contains("did you mean 'content'"),
            "{e}"
        );
        let e = parse(r#"{"messages": [{"role": "user", "content": [{"type": "text"}]}]}"#)
            .unwrap_err();
        assert!(e.contains("'file' field"), "{e}");
    }

    #[test]
    fn files_and_schema_paths_resolve_against_the_jobs_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("s.json"),
            r#"{"type": "object", "properties": {"a": {"type": "string"}}}"#,
        )
        .unwrap();
        let mut p = LineParser::new(dir.path());
        let job = p
            .parse(r#"{"file": "docs/a.txt", "prompt": "x", "response_schema": "s.json"}"#)
            .unwrap();
        assert_eq!(job.file.unwrap(), dir.path().join("docs/a.txt"));
        assert!(job.response_schema.is_some());
        // Read once, then served from the cache even if the file goes away.
        std::fs::remove_file(dir.path().join("s.json")).unwrap();
        assert!(p
            .parse(r#"{"prompt": "y", "response_schema": "s.json"}"#)
            .unwrap()
            .response_schema
            .is_some());
        let abs = dir.path().join("abs.pdf");
        let job = p
            .parse(&format!(
                r#"{{"file": "{}", "prompt": "x"}}"#,
                abs.display()
            ))
            .unwrap();
        assert_eq!(job.file.unwrap(), abs);
    }
}
