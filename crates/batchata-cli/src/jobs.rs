//! Reading a JSONL jobs file into a batch: one job per line, with the
//! library's `Job` field names. The file is streamed line by line; every
//! line is checked (shape here, model and content rules by `add_job`)
//! before anything is submitted. The whole file is checked even after a bad
//! line, and every problem is reported at once (the first 50, then a count),
//! each naming the file, the line, the field and the fix.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use batchata::job::{Message, Role};
use batchata::{Batch, Job, ResponseSchema};
use serde::Deserialize;
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
        let text = std::fs::read_to_string(&path).map(strip_bom).map_err(|e| {
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

    /// Parses one line into a job; the error is the line's first problem.
    #[cfg(test)]
    pub fn parse(&mut self, line: &str) -> Result<Job, String> {
        self.parse_all(line)
            .map_err(|mut problems| problems.swap_remove(0))
    }

    /// Parses one line into a job, or lists every problem the line has
    /// (each unknown field, each field of the wrong type, ...).
    pub fn parse_all(&mut self, line: &str) -> Result<Job, Vec<String>> {
        // Most lines are well formed: read them straight into their fields,
        // and only a line that path does not take goes the way that finds
        // and names each of its problems.
        match self.parse_fast(line) {
            Some(job) => Ok(job),
            None => self.parse_general(line),
        }
    }

    /// Parses one line, finding and naming each of its problems.
    fn parse_general(&mut self, line: &str) -> Result<Job, Vec<String>> {
        let value: Value = serde_json::from_str(line).map_err(|e| {
            vec![format!("not valid JSON ({e}); each line must be one JSON object such as {{\"prompt\": \"...\", \"model\": \"...\"}}")]
        })?;
        let Value::Object(mut map) = value else {
            return Err(vec![
                "each line must be a JSON object such as {\"prompt\": \"...\", \"model\": \"...\"}"
                    .into(),
            ]);
        };
        let mut problems: Vec<String> = map
            .keys()
            .filter(|key| !FIELDS.contains(&key.as_str()))
            .map(|key| unknown_field("field", key, FIELDS))
            .collect();
        map.retain(|key, _| FIELDS.contains(&key.as_str()));
        if let Err(e) = check_messages(&map) {
            problems.push(e);
            map.remove("messages");
        }
        if let Some(Value::String(f)) = map.get("file") {
            let p = resolve(&self.base, f);
            map.insert(
                "file".into(),
                Value::String(p.to_string_lossy().into_owned()),
            );
        }
        let schema = match map.remove("response_schema") {
            None | Some(Value::Null) => None,
            Some(Value::String(p)) => self.schema_file(&p).map_err(|e| problems.push(e)).ok(),
            Some(v @ Value::Object(_)) => Some(v),
            Some(_) => {
                problems.push(
                    "field 'response_schema': give a JSON Schema object, or the path of a .json file holding one"
                        .into(),
                );
                None
            }
        };
        let job: Option<Job> = match serde_json::from_value(Value::Object(map.clone())) {
            Ok(job) => Some(job),
            Err(e) => {
                problems.extend(field_errors(&map, &e.to_string()));
                None
            }
        };
        let schema = schema.and_then(|v| {
            ResponseSchema::from_value(v)
                .map_err(|e| problems.push(format!("field 'response_schema': {e}")))
                .ok()
        });
        match job {
            Some(mut job) if problems.is_empty() => {
                job.response_schema = schema;
                Ok(job)
            }
            _ => Err(problems),
        }
    }
}

/// The lines of a file, counted in a quick first pass (it leaves the file
/// in the page cache for the real one); `None` when it cannot be read,
/// which the real pass then reports.
fn count_lines(path: &Path) -> Option<usize> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let mut buf = vec![0u8; 1 << 16];
    let mut lines = 0;
    loop {
        match f.read(&mut buf) {
            Ok(0) => return Some(lines),
            Ok(n) => lines += buf[..n].iter().filter(|&&b| b == b'\n').count(),
            Err(_) => return None,
        }
    }
}

/// A jobs-file line as a well-formed one is: [`FIELDS`] only, each of its
/// type. A line that does not read as one takes the general path, whose
/// checks this one implies (and which names the problems).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FastLine {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    /// Objects only (serde would take a struct from a list too).
    #[serde(default)]
    messages: Option<Vec<Map<String, Value>>>,
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    response_schema: Option<Value>,
    #[serde(default)]
    enable_citations: bool,
}

/// A message with [`MESSAGE_FIELDS`] only, a known role and a string content.
fn fast_message(mut m: Map<String, Value>) -> Option<Message> {
    let role = match m.get("role")?.as_str()? {
        "system" => Role::System,
        "user" => Role::User,
        "assistant" => Role::Assistant,
        _ => return None,
    };
    let Value::String(content) = m.remove("content")? else {
        return None;
    };
    (m.len() == 1).then_some(Message { role, content })
}

impl LineParser {
    /// The job of a well-formed line, or `None` for the general path.
    fn parse_fast(&mut self, line: &str) -> Option<Job> {
        // An object only (serde would take a struct from a list too).
        if !line.trim_start().starts_with('{') {
            return None;
        }
        let FastLine {
            id,
            model,
            messages,
            file,
            prompt,
            temperature,
            max_tokens,
            response_schema,
            enable_citations,
        } = serde_json::from_str(line).ok()?;
        let response_schema = match response_schema {
            None | Some(Value::Null) => None,
            Some(Value::String(p)) => Some(self.schema_file(&p).ok()?),
            Some(v @ Value::Object(_)) => Some(v),
            Some(_) => return None,
        };
        let response_schema = match response_schema {
            Some(v) => Some(ResponseSchema::from_value(v).ok()?),
            None => None,
        };
        Some(Job {
            id,
            model,
            messages: match messages {
                Some(m) => Some(m.into_iter().map(fast_message).collect::<Option<_>>()?),
                None => None,
            },
            file: file.map(|f| resolve(&self.base, &f)),
            prompt,
            temperature,
            max_tokens,
            response_schema,
            enable_citations,
            fingerprint: None,
        })
    }
}

/// `text` without a leading UTF-8 byte-order mark (editors on Windows write one).
fn strip_bom(text: String) -> String {
    match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
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

/// Finds which fields made the whole-line parse fail: each field is parsed
/// on its own (every `Job` field is optional), and each that fails is named.
fn field_errors(map: &Map<String, Value>, whole: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (key, value) in map {
        let mut one = Map::new();
        one.insert(key.clone(), value.clone());
        if let Err(e) = serde_json::from_value::<Job>(Value::Object(one)) {
            let e = e.to_string();
            let e = e.split(" at line").next().unwrap_or(&e);
            out.push(format!(
                "field '{key}': {e}; expected {} (got {})",
                expected(key),
                clip_json(value)
            ));
        }
    }
    if out.is_empty() {
        out.push(format!("{whole}; check the fields' types"));
    }
    out
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

/// Problems listed one by one; the rest are counted.
pub const MAX_LISTED: usize = batchata::error::MAX_LISTED;

/// The byte-order mark a UTF-8 file may start with.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Lines read between two calls of [`load`]'s `on_read`.
const REPORT_EVERY: usize = 4096;

/// Reads every line of `path` into `batch` and returns how many jobs it
/// holds. Blank lines and lines starting with `//` are skipped, and a UTF-8
/// byte-order mark at the start is ignored. Every line is checked, and when
/// any is bad, every problem is reported (each with its line and field) and
/// nothing is submitted.
///
/// `on_read(lines read, lines in the file)` is told how far the reading has
/// got: once the lines are counted, every [`REPORT_EVERY`] lines and at the
/// end. The file's line count is known unless it is standard input.
pub fn load(
    path: &Path,
    batch: &mut Batch,
    on_read: &mut dyn FnMut(usize, Option<usize>),
) -> Result<usize, JobsError> {
    let mut total = None;
    // `-` is standard input: its relative paths resolve against the
    // current folder, and messages name it `<stdin>`.
    let (file, base, path): (Box<dyn std::io::Read>, &Path, &Path) = if path == Path::new("-") {
        (
            Box::new(std::io::stdin()),
            Path::new("."),
            Path::new("<stdin>"),
        )
    } else {
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
        // The batch sizes its table of ids once for the whole file.
        total = count_lines(path);
        if let Some(lines) = total {
            batch.reserve_jobs(lines);
        }
        (Box::new(file), base, path)
    };
    on_read(0, total);
    let mut parser = LineParser::new(base);
    let mut problems = Problems::new(path);
    let mut n = 0;
    let mut reader = std::io::BufReader::new(file);
    let mut buf = Vec::new();
    let mut offset = 0u64;
    for lineno in 1.. {
        buf.clear();
        let read = reader.read_until(b'\n', &mut buf).map_err(|e| {
            JobsError(format!(
                "{}:{lineno}: cannot read the jobs file: {e}",
                path.display()
            ))
        })?;
        if read == 0 {
            on_read(lineno - 1, total);
            break;
        }
        if lineno % REPORT_EVERY == 0 {
            on_read(lineno, total);
        }
        let start = offset;
        offset += read as u64;
        let mut bytes = buf.as_slice();
        if lineno == 1 {
            bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
        }
        let line = match std::str::from_utf8(bytes) {
            Ok(line) => line,
            Err(e) => {
                let at = e.valid_up_to();
                let skipped = (buf.len() - bytes.len()) as u64;
                problems.add(
                    lineno,
                    &format!(
                        "byte offset {} of the file (0x{:02X}) is not valid UTF-8; save the jobs file as UTF-8",
                        start + skipped + at as u64,
                        bytes[at]
                    ),
                );
                continue;
            }
        };
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with("//") {
            continue;
        }
        match parser.parse_all(trimmed) {
            Ok(job) => match batch.add_job(job) {
                Ok(_) => n += 1,
                Err(e) => {
                    for problem in e.to_string().lines() {
                        problems.add(lineno, &cli_hint(problem, base));
                    }
                }
            },
            Err(line_problems) => {
                for problem in line_problems {
                    problems.add(lineno, &problem);
                }
            }
        }
    }
    problems.into_result()?;
    if n == 0 {
        return Err(JobsError(format!(
            "{}: no jobs; write one JSON object per line, e.g. {{\"prompt\": \"Hello\", \"model\": \"claude-haiku-4-5\"}}",
            path.display()
        )));
    }
    Ok(n)
}

/// The problems found in a jobs file: the first [`MAX_LISTED`] kept, all counted.
struct Problems<'a> {
    path: &'a Path,
    listed: Vec<String>,
    total: usize,
}

impl<'a> Problems<'a> {
    fn new(path: &'a Path) -> Self {
        Problems {
            path,
            listed: Vec::new(),
            total: 0,
        }
    }

    fn add(&mut self, lineno: usize, problem: &str) {
        self.total += 1;
        if self.listed.len() < MAX_LISTED {
            self.listed
                .push(format!("{}:{lineno}: {problem}", self.path.display()));
        }
    }

    /// One problem as it is; several under a line that counts them.
    fn into_result(self) -> Result<(), JobsError> {
        match self.total {
            0 => Ok(()),
            1 => Err(JobsError(self.listed.concat())),
            total => Err(JobsError(format!(
                "{}: {total} problems; nothing was submitted. Fix them all, then run again:\n{}",
                self.path.display(),
                batchata::error::list_problems(
                    self.listed.into_iter().map(|l| format!("  {l}")),
                    total
                )
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Job, String> {
        LineParser::new(".").parse(line)
    }

    #[test]
    fn the_fast_path_reads_a_good_line_as_the_general_one_does_and_leaves_the_rest_to_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s.json"), r#"{"type": "object"}"#).unwrap();
        let good = [
            r#"{"prompt": "say \"hi\"\n"}"#,
            r#"{"id": "a", "model": "claude-haiku-4-5", "prompt": "p", "temperature": 0.7, "max_tokens": 256}"#,
            r#"{"id": null, "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u é"}]}"#,
            r#"{"file": "doc.pdf", "prompt": "summarise", "enable_citations": true}"#,
            r#"{"prompt": "p", "response_schema": {"type": "object", "properties": {"n": {"type": "integer"}}}}"#,
            r#"{"prompt": "p", "response_schema": "s.json"}"#,
            r#"{"prompt": "p", "response_schema": null, "messages": null}"#,
        ];
        for line in good {
            let mut p = LineParser::new(dir.path());
            let fast = p
                .parse_fast(line)
                .unwrap_or_else(|| panic!("fast path refused {line}"));
            assert_eq!(Ok(fast), p.parse_general(line), "{line}");
        }
        let bad = [
            r#"{"prompt": "p", "max_tokens": "many"}"#,
            r#"{"prompt": "p", "modle": "x"}"#,
            r#"{"messages": [{"role": "user", "text": "u"}]}"#,
            r#"{"messages": [{"role": "robot", "content": "u"}]}"#,
            r#"{"prompt": "p", "response_schema": 3}"#,
            r#"{"prompt": "p", "response_schema": "missing.json"}"#,
            r#"{"prompt": "p", "enable_citations": null}"#,
            r#"{"prompt": "p", "prompt": "twice"}"#,
            r#"["prompt"]"#,
            r#"{"messages": [["user", "u"]]}"#,
            r#"{"messages": [{"role": "user", "content": "u", "name": "x"}]}"#,
            r#"{"messages": [{"role": "user", "content": ["u"]}]}"#,
        ];
        for line in bad {
            assert!(
                LineParser::new(dir.path()).parse_fast(line).is_none(),
                "{line}"
            );
        }
    }

    #[test]
    fn reading_reports_its_progress_in_lines_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.jsonl");
        let n = 2 * REPORT_EVERY + 100;
        let mut text = String::from("// a comment line counts as a line\n");
        for i in 1..n {
            text.push_str(&format!(
                "{{\"prompt\": \"q{i}\", \"model\": \"claude-haiku-4-5\"}}\n"
            ));
        }
        std::fs::write(&path, text).unwrap();
        let mut batch = Batch::new(dir.path().join("out"));
        let mut seen = Vec::new();
        let jobs = load(&path, &mut batch, &mut |read, total| {
            seen.push((read, total))
        })
        .unwrap();
        assert_eq!(jobs, n - 1);
        let total = Some(n);
        assert_eq!(
            seen,
            vec![
                (0, total),
                (REPORT_EVERY, total),
                (2 * REPORT_EVERY, total),
                (n, total)
            ]
        );
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
    fn a_line_lists_all_its_problems_and_a_schema_file_may_start_with_a_bom() {
        let e = LineParser::new(".")
            .parse_all(
                r#"{"promt": "x", "temprature": 1, "max_tokens": "many", "enable_citations": 3}"#,
            )
            .unwrap_err();
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(
            e[0].contains("'promt'") && e[1].contains("'temprature'"),
            "{e:?}"
        );
        assert!(
            e.iter().any(|p| p.starts_with("field 'max_tokens'")),
            "{e:?}"
        );
        assert!(
            e.iter().any(|p| p.starts_with("field 'enable_citations'")),
            "{e:?}"
        );

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("s.json"),
            "\u{feff}{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"string\"}}}",
        )
        .unwrap();
        let job = LineParser::new(dir.path())
            .parse(r#"{"prompt": "x", "response_schema": "s.json"}"#)
            .unwrap();
        assert!(job.response_schema.is_some());
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
