//! What `batchata results` prints: a results folder (either layout) as a
//! table, JSONL or CSV, and the terminal helpers the other commands share.
//! Result files are read one at a time, so a folder of a million results
//! prints in constant memory.

use std::io::Write;
use std::path::{Path, PathBuf};

use batchata::progress::usd;
use batchata::{JobOutcome, JobResult, ResultsFormat};
use clap::ValueEnum;
use serde_json::Value;

use crate::Failure;

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

/// How a run lays its results out (`--results-format`).
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Layout {
    /// One {job_id}.json per job (the default).
    Files,
    /// Every result as one line of DIR/results.jsonl (for very large runs).
    Jsonl,
}

impl From<Layout> for ResultsFormat {
    fn from(l: Layout) -> ResultsFormat {
        match l {
            Layout::Files => ResultsFormat::Files,
            Layout::Jsonl => ResultsFormat::Jsonl,
        }
    }
}

/// The layout of the results in `dir`: `given`, else what the run's state
/// in the folder (if any) records, else jsonl when `dir` has a
/// results.jsonl, else files.
pub(crate) fn layout_of(dir: &Path, given: Option<Layout>) -> ResultsFormat {
    if let Some(l) = given {
        return l.into();
    }
    match ResultsFormat::of_state(&dir.join(crate::run::DEFAULT_STATE_NAME)) {
        Ok(f) => f,
        Err(_) => ResultsFormat::detect(dir),
    }
}

/// Which results `batchata results --status` keeps.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum StatusFilter {
    Completed,
    Failed,
    Cancelled,
}

impl StatusFilter {
    fn keeps(self, r: &JobResult) -> bool {
        matches!(
            (self, r.outcome()),
            (StatusFilter::Completed, JobOutcome::Completed)
                | (StatusFilter::Failed, JobOutcome::Failed)
                | (StatusFilter::Cancelled, JobOutcome::Cancelled)
        )
    }
}

/// The width tables are fitted to: COLUMNS when set, else the terminal's,
/// else (a pipe, a file) 80.
pub(crate) fn terminal_width() -> usize {
    if let Some(n) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
    {
        return n;
    }
    console::Term::stdout()
        .size_checked()
        .map(|(_, cols)| cols as usize)
        .filter(|n| *n > 0)
        .unwrap_or(80)
}

/// Colour on stdout: never with NO_COLOR set (to anything but empty), and
/// only on a terminal — as cargo does.
pub(crate) fn color_enabled(no_color: Option<&std::ffi::OsStr>, is_terminal: bool) -> bool {
    no_color.is_none_or(|v| v.is_empty()) && is_terminal
}

/// Whether stdout gets colour now.
pub(crate) fn stdout_color() -> bool {
    use std::io::IsTerminal;
    color_enabled(
        std::env::var_os("NO_COLOR").as_deref(),
        std::io::stdout().is_terminal(),
    )
}

/// `line` in red when `on`.
pub(crate) fn red(line: &str, on: bool) -> String {
    if on {
        format!("\x1b[31m{line}\x1b[0m")
    } else {
        line.to_string()
    }
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

/// Calls `f` with each result in `dir`, until it returns false: files in
/// job-id order, or results.jsonl's lines in the file's order (a job's
/// last line wins). JSON files that are not results (a schema kept beside
/// them) are skipped; returns how many were.
pub(crate) fn for_each_result(
    dir: &Path,
    layout: ResultsFormat,
    mut f: impl FnMut(JobResult) -> bool,
) -> Result<usize, Failure> {
    if layout == ResultsFormat::Jsonl {
        let lines = batchata::run::ResultFiles::list_in(dir, None, layout)
            .map_err(|e| Failure::other(crate::cli_words(&e.to_string())))?;
        let mut skipped = 0;
        for i in 0..lines.len() {
            match lines
                .read(i)
                .map_err(|e| Failure::other(crate::cli_words(&e.to_string())))?
            {
                Some(r) => {
                    if !f(r) {
                        break;
                    }
                }
                None => skipped += 1,
            }
        }
        return Ok(skipped);
    }
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

/// One result in full (`batchata results DIR --job ID`).
pub(crate) fn one_result(
    dir: &Path,
    layout: Option<Layout>,
    id: &str,
    json: bool,
) -> Result<u8, Failure> {
    result_files(dir)?;
    let layout = layout_of(dir, layout);
    let mut found = None;
    // A job's last line wins in results.jsonl: read to the end.
    let last_wins = layout == ResultsFormat::Jsonl;
    for_each_result(dir, layout, |r| {
        if r.job_id == id {
            found = Some(r);
            last_wins
        } else {
            true
        }
    })?;
    let Some(r) = found else {
        return Err(Failure::input(format!(
            "no result for job '{id}' in {}; `batchata results {}` lists them",
            dir.display(),
            dir.display()
        )));
    };
    if json {
        let text = serde_json::to_string_pretty(&r).map_err(Failure::other)?;
        println!("{text}");
        return Ok(0);
    }
    let color = stdout_color();
    println!("job      {}", r.job_id);
    let status = format!("status   {}", outcome_str(&r));
    println!(
        "{}",
        red(&status, color && r.outcome() != JobOutcome::Completed)
    );
    println!("tokens   {} in, {} out", r.input_tokens, r.output_tokens);
    println!("cost     {}", usd(r.cost_usd));
    if let Some(b) = &r.batch_id {
        println!("batch    {b}");
    }
    if let Some(e) = &r.error {
        println!("error    {}", crate::cli_words(e));
    }
    for w in &r.warnings {
        println!("warning  {w}");
    }
    for v in &r.validation_errors {
        println!("invalid  {v}");
    }
    if let Some(p) = &r.parsed_response {
        let text = serde_json::to_string_pretty(p).map_err(Failure::other)?;
        println!("parsed\n{text}");
    }
    if let Some(t) = &r.raw_response {
        println!("answer\n{t}");
    }
    if let Some(c) = &r.citations {
        if !c.is_empty() {
            let text = serde_json::to_string_pretty(c).map_err(Failure::other)?;
            println!("citations\n{text}");
        }
    }
    Ok(0)
}

/// The table's fixed columns before the answer: job, status, in, out, cost.
const TABLE_STATUS: usize = 9;
const TABLE_NUM: usize = 7;
const TABLE_COST: usize = 10;

/// Column widths of the results table at `width` columns: the job column
/// and the answer share what the fixed columns leave.
pub(crate) fn table_widths(width: usize, longest_id: usize) -> (usize, usize) {
    let fixed = TABLE_STATUS + 2 * TABLE_NUM + TABLE_COST + 4 /* spaces */ + 2 /* gap */;
    let room = width.saturating_sub(fixed + 1);
    // The job id gets what it needs, up to a third of the room (at least 6).
    let job = longest_id.max(3).min((room / 3).max(6));
    let answer = room.saturating_sub(job).max(10);
    (job, answer)
}

/// One table row (or the header), fitted to the widths.
pub(crate) fn table_row(job_w: usize, answer_w: usize, cols: [&str; 5], answer: &str) -> String {
    format!(
        "{:<job_w$} {:<TABLE_STATUS$} {:>TABLE_NUM$} {:>TABLE_NUM$} {:>TABLE_COST$}  {}",
        clip(cols[0], job_w),
        cols[1],
        cols[2],
        cols[3],
        cols[4],
        clip(answer, answer_w)
    )
    .trim_end()
    .to_string()
}

/// `batchata results DIR [--format] [--status S]`.
pub(crate) fn results(
    dir: &Path,
    layout: Option<Layout>,
    format: Format,
    filter: Option<StatusFilter>,
) -> Result<u8, Failure> {
    // A folder that is not there is told before any header is printed.
    result_files(dir)?;
    let layout = layout_of(dir, layout);
    let keep = |r: &JobResult| filter.is_none_or(|f| f.keeps(r));
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
        Format::Jsonl => for_each_result(dir, layout, |r| {
            if !keep(&r) {
                return true;
            }
            count(&r);
            match serde_json::to_string(&r) {
                Ok(line) => emit(line),
                Err(_) => true,
            }
        })?,
        Format::Csv => {
            // First pass: the fields of structured answers, in first-seen order.
            let mut fields: Vec<String> = Vec::new();
            for_each_result(dir, layout, |r| {
                if !keep(&r) {
                    return true;
                }
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
            for_each_result(dir, layout, |r| {
                if !keep(&r) {
                    return true;
                }
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
            // First pass: the longest job id, so the table fits the width.
            let mut longest = 0;
            for_each_result(dir, layout, |r| {
                if keep(&r) {
                    longest = longest.max(r.job_id.chars().count());
                }
                true
            })?;
            let (job_w, answer_w) = table_widths(terminal_width(), longest);
            let color = stdout_color();
            emit(table_row(
                job_w,
                answer_w,
                ["job", "status", "in", "out", "cost"],
                "answer / error",
            ));
            let skipped = for_each_result(dir, layout, |r| {
                if !keep(&r) {
                    return true;
                }
                count(&r);
                let text = match &r.error {
                    Some(e) => e.replace(['\n', '\r'], " "),
                    None => answer_line(&r),
                };
                let row = table_row(
                    job_w,
                    answer_w,
                    [
                        &r.job_id,
                        outcome_str(&r),
                        &r.input_tokens.to_string(),
                        &r.output_tokens.to_string(),
                        &usd(r.cost_usd),
                    ],
                    &text,
                );
                emit(red(&row, color && r.outcome() != JobOutcome::Completed))
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
    if completed + failed + cancelled == 0 && filter.is_none() {
        eprintln!(
            "no result files in {}; results appear there as a run's batches finish",
            dir.display()
        );
    }
    if skipped > 0 && layout == ResultsFormat::Jsonl {
        eprintln!("({skipped} lines of results.jsonl are not results and were skipped)");
    } else if skipped > 0 {
        eprintln!("({skipped} JSON files in the folder are not results and were skipped)");
    }
    Ok(0)
}

/// Money in JSON: rounded to a millionth of a dollar, so sums of float
/// costs read `0.001262`, not `0.0012619749999999998`.
pub(crate) fn money(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn colour_follows_no_color_and_the_terminal() {
        assert!(color_enabled(None, true));
        assert!(!color_enabled(None, false), "no colour in a pipe");
        assert!(!color_enabled(Some(OsStr::new("1")), true), "NO_COLOR wins");
        assert!(
            color_enabled(Some(OsStr::new("")), true),
            "an empty NO_COLOR is not set"
        );
        assert_eq!(red("x", false), "x");
        assert_eq!(red("x", true), "\x1b[31mx\x1b[0m");
    }

    #[test]
    fn the_results_table_fits_each_width() {
        for width in [40, 60, 80, 100, 120, 200] {
            for longest in [2, 8, 24, 60] {
                let (job, answer) = table_widths(width, longest);
                let id = "j".repeat(longest);
                let row = table_row(
                    job,
                    answer,
                    [&id, "cancelled", "1234567", "1234567", "$123.4567"],
                    &"a".repeat(500),
                );
                if width >= 60 {
                    assert!(row.chars().count() <= width, "{width} {longest}: {row}");
                }
            }
        }
        // Short ids keep their width; the answer takes the rest.
        let (job, answer) = table_widths(120, 4);
        assert_eq!(job, 4);
        assert!(answer > 70);
    }
}
