//! What the CLI prints about runs and models: `status` (a state file),
//! `results` (a results folder, as a table, JSONL or CSV) and `models` (the
//! catalog). Result files are read one at a time, so a folder of a million
//! results prints in constant memory.

use std::io::Write;
use std::path::{Path, PathBuf};

use batchata::progress::usd;
use batchata::run::StateReport;
use batchata::{Catalog, JobOutcome, JobResult};
use clap::ValueEnum;
use serde_json::Value;

use crate::{classify, Failure};

/// How `batchata results` prints.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Format {
    /// Aligned columns, answers shortened to fit a line.
    Table,
    /// One result file (JobResult) per line.
    Jsonl,
    /// Comma-separated, answers in full, one column per structured field.
    Csv,
}

/// At most `n` characters of `s`, with an ellipsis when cut.
pub(crate) fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The result files in `dir` (`*.json`, not hidden), sorted by name.
fn result_files(dir: &Path) -> Result<Vec<PathBuf>, Failure> {
    if !dir.is_dir() {
        return Err(Failure::input(format!(
            "{} is not a results folder; give the --results-dir of a run",
            dir.display()
        )));
    }
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Failure::other(format!("cannot list {}: {e}", dir.display())))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension().is_some_and(|x| x == "json")
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Calls `f` with each result in `dir`, in job-id order, until it returns
/// false. JSON files that are not results (a schema kept beside them) are
/// skipped; returns how many were.
pub(crate) fn for_each_result(
    dir: &Path,
    mut f: impl FnMut(JobResult) -> bool,
) -> Result<usize, Failure> {
    let mut skipped = 0;
    for path in result_files(dir)? {
        match JobResult::load_from_json(&path) {
            Ok(r) => {
                if !f(r) {
                    break;
                }
            }
            Err(_) => skipped += 1,
        }
    }
    Ok(skipped)
}

fn outcome_str(r: &JobResult) -> &'static str {
    match r.outcome() {
        JobOutcome::Completed => "completed",
        JobOutcome::Failed => "failed",
        JobOutcome::Cancelled => "cancelled",
    }
}

/// A JSON value as a cell: strings as they are, the rest as compact JSON.
fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The answer in one line: a structured answer's fields (`k=v k=v`), else the text.
fn answer_line(r: &JobResult) -> String {
    match &r.parsed_response {
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| format!("{k}={}", cell(v)))
            .collect::<Vec<_>>()
            .join(" "),
        Some(v) => cell(v),
        None => r.raw_response.clone().unwrap_or_default(),
    }
    .replace(['\n', '\r'], " ")
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

const CSV_COLUMNS: [&str; 7] = [
    "job_id",
    "status",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "error",
    "response",
];

/// `batchata results DIR [--format]`.
pub(crate) fn results(dir: &Path, format: Format) -> Result<u8, Failure> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut write_err = None;
    let mut emit = |line: String| {
        if write_err.is_none() {
            if let Err(e) = writeln!(out, "{line}") {
                write_err = Some(e);
            }
        }
        write_err.is_none()
    };
    let (mut completed, mut failed, mut cancelled) = (0usize, 0usize, 0usize);
    let mut count = |r: &JobResult| match r.outcome() {
        JobOutcome::Completed => completed += 1,
        JobOutcome::Failed => failed += 1,
        JobOutcome::Cancelled => cancelled += 1,
    };
    let skipped = match format {
        Format::Jsonl => for_each_result(dir, |r| {
            count(&r);
            match serde_json::to_string(&r) {
                Ok(line) => emit(line),
                Err(_) => true,
            }
        })?,
        Format::Csv => {
            // First pass: the fields of structured answers, in first-seen order.
            let mut fields: Vec<String> = Vec::new();
            for_each_result(dir, |r| {
                if let Some(Value::Object(m)) = &r.parsed_response {
                    for k in m.keys() {
                        if !fields.contains(k) {
                            fields.push(k.clone());
                        }
                    }
                }
                true
            })?;
            let header: Vec<String> = CSV_COLUMNS
                .iter()
                .map(|c| c.to_string())
                .chain(fields.iter().map(|f| {
                    if CSV_COLUMNS.contains(&f.as_str()) {
                        csv_field(&format!("parsed_{f}"))
                    } else {
                        csv_field(f)
                    }
                }))
                .collect();
            emit(header.join(","));
            for_each_result(dir, |r| {
                count(&r);
                let mut row = vec![
                    csv_field(&r.job_id),
                    outcome_str(&r).to_string(),
                    r.input_tokens.to_string(),
                    r.output_tokens.to_string(),
                    format!("{:.8}", r.cost_usd),
                    csv_field(r.error.as_deref().unwrap_or("")),
                    csv_field(r.raw_response.as_deref().unwrap_or("")),
                ];
                let parsed = match &r.parsed_response {
                    Some(Value::Object(m)) => Some(m),
                    _ => None,
                };
                for f in &fields {
                    let v = parsed.and_then(|m| m.get(f)).map(cell).unwrap_or_default();
                    row.push(csv_field(&v));
                }
                emit(row.join(","))
            })?
        }
        Format::Table => {
            emit(format!(
                "{:<24} {:<9} {:>7} {:>7} {:>10}  answer / error",
                "job", "status", "in", "out", "cost"
            ));
            let skipped = for_each_result(dir, |r| {
                count(&r);
                let text = match &r.error {
                    Some(e) => e.replace(['\n', '\r'], " "),
                    None => answer_line(&r),
                };
                emit(format!(
                    "{:<24} {:<9} {:>7} {:>7} {:>10}  {}",
                    r.job_id,
                    outcome_str(&r),
                    r.input_tokens,
                    r.output_tokens,
                    usd(r.cost_usd),
                    clip(&text, 70)
                ))
            })?;
            let total = completed + failed + cancelled;
            emit(format!(
                "\n{total} jobs: {completed} completed, {failed} failed, {cancelled} cancelled"
            ));
            skipped
        }
    };
    if let Some(e) = write_err {
        // A closed pipe (`| head`) is not an error worth a message.
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return Ok(0);
        }
        return Err(Failure::other(format!("cannot write the results: {e}")));
    }
    if let Err(e) = out.flush() {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(Failure::other(format!("cannot write the results: {e}")));
        }
    }
    if completed + failed + cancelled == 0 {
        eprintln!(
            "no result files in {}; results appear there as a run's batches finish",
            dir.display()
        );
    }
    if skipped > 0 {
        eprintln!("({skipped} JSON files in the folder are not results and were skipped)");
    }
    Ok(0)
}

/// `batchata status --state FILE [--json]`.
pub(crate) fn status(state: &Path, json: bool) -> Result<u8, Failure> {
    if !state.is_file() {
        return Err(Failure::input(format!(
            "no state file at {}; a run writes it to RESULTS_DIR/.batchata-state.jsonl unless --state said otherwise",
            state.display()
        )));
    }
    let mut r = StateReport::load(state).map_err(classify)?;
    // Indexes of batches never created (skipped by the cost limit) hold no jobs.
    r.batches.retain(|b| b.jobs > 0);
    if json {
        let text = serde_json::to_string_pretty(&r).map_err(Failure::other)?;
        println!("{text}");
        return Ok(0);
    }
    let c = r.counts;
    println!(
        "run      {} (started {})",
        r.run_id,
        r.created_at.format("%Y-%m-%d %H:%M:%S UTC")
    );
    println!("results  {}", r.results_dir.display());
    println!(
        "jobs     {} total: {} completed, {} failed, {} cancelled, {} running, {} pending",
        c.total, c.completed, c.failed, c.cancelled, c.running, c.pending
    );
    println!("cost     {}", usd(r.cost_used_usd));
    let in_flight = r.batches.iter().filter(|b| b.ended.is_none()).count();
    println!("batches  {} ({in_flight} in flight)", r.batches.len());
    for b in &r.batches {
        println!(
            "  {:>4}  {:<9} {:<42} {:>6} jobs  {}",
            b.index,
            b.provider.as_str(),
            b.batch_id.as_deref().unwrap_or("(not created)"),
            b.jobs,
            b.ended.as_deref().unwrap_or("in flight")
        );
    }
    Ok(0)
}

/// `batchata models [--json]`.
pub(crate) fn models(json: bool) -> Result<u8, Failure> {
    let catalog = Catalog::load_default().map_err(classify)?;
    if json {
        let models: Vec<_> = catalog.models().collect();
        let text = serde_json::to_string_pretty(&serde_json::json!({ "models": models }))
            .map_err(Failure::other)?;
        println!("{text}");
        return Ok(0);
    }
    println!(
        "{:<28} {:<10} {:>9} {:>9} {:>9} {:>8}  capabilities",
        "model", "provider", "in $/M", "out $/M", "context", "max out"
    );
    for m in catalog.models() {
        let c = &m.capabilities;
        let mut caps: Vec<&str> = Vec::new();
        if c.files {
            caps.push("files");
        }
        if c.images {
            caps.push("images");
        }
        if c.citations {
            caps.push("citations");
        }
        if c.structured_output {
            caps.push("json-schema");
        }
        if !c.temperature {
            caps.push("no-temperature");
        }
        println!(
            "{:<28} {:<10} {:>9.3} {:>9.3} {:>9} {:>8}  {}{}",
            m.name,
            m.provider.as_str(),
            m.batch_input_price(),
            m.batch_output_price(),
            m.max_input_tokens,
            m.max_output_tokens,
            caps.join(", "),
            m.note
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        );
    }
    println!(
        "\nPrices: USD per million tokens at batch rates (list price less the batch discount)."
    );
    Ok(0)
}
