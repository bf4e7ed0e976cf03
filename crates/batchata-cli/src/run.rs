//! `batchata run`: a jobs file in, one result file per job out — the flags
//! mapped onto the library's `Batch`, the provider settings (real, the
//! built-in emulator, or an emulator server), the progress display and the
//! summary with its exit status.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use batchata::progress::{DisplayMode, LiveDisplay};
use batchata::ProviderSettings;
use batchata::{Batch, BatchRun, DefaultParams, JobOutcome, RawFiles, RunStatus, Verbosity};
use clap::builder::BoolishValueParser;

use crate::{classify, emulator_settings, init_logs, jobs, report, Failure};

/// The state file's name inside the results folder, unless --state says otherwise.
pub(crate) const DEFAULT_STATE_NAME: &str = ".batchata-state.jsonl";

/// The file `batchata cancel` writes beside a state to stop the run that
/// holds it: `STATE.stop`.
pub(crate) fn stop_file(state: &Path) -> PathBuf {
    let mut name = state.file_name().unwrap_or_default().to_os_string();
    name.push(".stop");
    state.with_file_name(name)
}

/// How often a run looks for its stop file.
const STOP_FILE_EVERY: Duration = Duration::from_millis(200);

/// The poll interval against an emulator, which ends batches at once.
const EMULATOR_POLL: Duration = Duration::from_millis(100);

pub(crate) const RUN_HELP: &str = "\
Examples:
  batchata run examples/quickstart.jsonl --results-dir out --emulator
  batchata run jobs.jsonl --results-dir out --dry-run --cost-limit 5
  batchata run jobs.jsonl --results-dir out --model claude-haiku-4-5 --cost-limit 5 --time-limit 2h
  batchata run jobs.jsonl --results-dir out --retry-failed
  make-jobs | batchata run - --results-dir out --json

Jobs file: one JSON object per line with the library's Job fields:
  {\"id\": \"q1\", \"model\": \"claude-haiku-4-5\", \"prompt\": \"...\"}
  {\"id\": \"c1\", \"model\": \"gpt-4o-mini\", \"messages\": [{\"role\": \"user\", \"content\": \"...\"}]}
  {\"id\": \"g1\", \"model\": \"gemini-2.5-flash\", \"prompt\": \"...\"}
  {\"id\": \"f1\", \"file\": \"docs/a.pdf\", \"prompt\": \"...\", \"response_schema\": \"schema.json\", \"enable_citations\": true}
Other fields: temperature, max_tokens. Relative paths resolve against the jobs file's folder
(with `run -`, jobs read from standard input, against the current folder).
The whole file is checked before anything is submitted (files by content, encodings, size and
context limits, schemas); every problem is listed with its line, field and fix, and the exit status is 2.

Resuming: the state file (default RESULTS_DIR/.batchata-state.jsonl) records every step, so
running the same command again after a crash or Ctrl+C resumes: finished jobs are not run
again, and batches already at the provider are re-attached, never submitted twice.
Jobs are known by id and by a fingerprint of their request: new jobs are added, and a job
whose prompt, file, model or parameters changed stops the run (exit 2) unless
--rerun-changed runs it again. --fresh starts over; --retry-failed also reruns the jobs that
failed. One run at a time holds a results folder and its state; a second exits 2.

Ctrl+C once: submit nothing more, cancel the active batches, keep what they finished.
Ctrl+C twice: exit at once (the state is already safe on disk).

Every option can also come from its environment variable, shown with it above
(BATCHATA_COST_LIMIT=5, BATCHATA_TIME_LIMIT=2h, BATCHATA_MODEL=claude-haiku-4-5, ...);
a flag on the command line wins. Switches take true/false (or 1/0).

Keys and base URLs come from ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL, OPENAI_API_KEY /
OPENAI_BASE_URL and GOOGLE_API_KEY (or GEMINI_API_KEY) / GOOGLE_GEMINI_BASE_URL, as with
the official SDKs. --emulator needs none of them.

JSON (--json; one object on stdout, progress still on stderr):
  run:       {total, completed, failed, cancelled, pending, cost_usd, cost_limit_usd (or null),
              elapsed_s, results_dir, stop_reason (null | interrupted | drain | time_limit |
              auth_failed | failed), exit_code}
  --dry-run: {total_jobs, batches [{provider, model, jobs, input_tokens, worst_case_usd,
              expected_usd}], worst_case_usd, expected_usd, expected_output_fraction,
              cost_limit_usd (or null), batches_within_limit, items_per_batch, max_parallel}
  Money is in USD, rounded to 1e-6.

Exit status:
  0  every job completed
  1  the run stopped on our side or the network's (provider unreachable, results that could
     not be downloaded, a disk error): nothing paid for is lost, rerun the same command
  2  bad input, or nothing was run: a jobs-file error, changed jobs, results without their
     state, another run on the same folder, or an API key the provider refused
  3  some jobs failed (the provider said so) or were cancelled
  130  a second Ctrl+C";

#[derive(clap::Args)]
pub(crate) struct RunArgs {
    /// The JSONL jobs file; `-` reads the jobs from standard input.
    jobs: PathBuf,
    /// Where to write the results: one {job_id}.json per job, or results.jsonl (created if missing).
    #[arg(env = "BATCHATA_RESULTS_DIR", long, value_name = "DIR")]
    results_dir: PathBuf,
    /// The state file that makes a rerun resume [default: DIR/.batchata-state.jsonl].
    #[arg(env = "BATCHATA_STATE", long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Model for jobs that name none (see `batchata models`).
    #[arg(env = "BATCHATA_MODEL", long, value_name = "M")]
    model: Option<String>,
    /// Temperature for jobs that set none.
    #[arg(env = "BATCHATA_TEMPERATURE", long, value_name = "T")]
    temperature: Option<f64>,
    /// max_tokens for jobs that set none.
    #[arg(env = "BATCHATA_MAX_TOKENS", long, value_name = "N")]
    max_tokens: Option<u32>,
    /// Jobs per provider batch (also capped by each provider's limits).
    #[arg(env = "BATCHATA_ITEMS_PER_BATCH", long, value_name = "N", default_value_t = batchata::batch::DEFAULT_ITEMS_PER_BATCH)]
    items_per_batch: usize,
    /// Provider batches in flight at once.
    #[arg(env = "BATCHATA_MAX_PARALLEL", long, value_name = "N", default_value_t = batchata::batch::DEFAULT_MAX_PARALLEL_BATCHES)]
    max_parallel: usize,
    /// Never spend more than this many USD: each batch reserves its worst case first.
    #[arg(env = "BATCHATA_COST_LIMIT", long, value_name = "USD")]
    cost_limit: Option<f64>,
    /// Stop after this long, cancelling what still runs (e.g. 90s, 10m, 2h).
    #[arg(env = "BATCHATA_TIME_LIMIT", long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    time_limit: Option<Duration>,
    /// How often to poll batches [default: 1s Anthropic, 5s OpenAI, 2s Gemini; 100ms on an emulator].
    #[arg(env = "BATCHATA_POLL_INTERVAL", long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    poll_interval: Option<Duration>,
    /// Print the plan and its cost (worst case and expected); submit nothing.
    #[arg(env = "BATCHATA_DRY_RUN", value_parser = BoolishValueParser::new(), long)]
    dry_run: bool,
    /// Print the final summary (or with --dry-run the plan) as one JSON
    /// object on stdout; the schemas are below.
    #[arg(env = "BATCHATA_JSON", value_parser = BoolishValueParser::new(), long)]
    json: bool,
    /// Start over: ignore (and replace) an existing state file.
    #[arg(env = "BATCHATA_FRESH", value_parser = BoolishValueParser::new(), long)]
    fresh: bool,
    /// On resume, run the jobs that failed again too.
    #[arg(env = "BATCHATA_RETRY_FAILED", value_parser = BoolishValueParser::new(), long)]
    retry_failed: bool,
    /// On resume, run again the jobs whose request changed since the state
    /// recorded them, replacing their old results (otherwise: exit 2).
    #[arg(env = "BATCHATA_RERUN_CHANGED", value_parser = BoolishValueParser::new(), long)]
    rerun_changed: bool,
    /// With no state file, keep the completed result files in DIR whose job
    /// and request are unchanged, and run only the rest (otherwise: exit 2).
    #[arg(env = "BATCHATA_ADOPT_RESULTS", value_parser = BoolishValueParser::new(), long)]
    adopt_results: bool,
    /// How results are laid out in DIR: files, one {job_id}.json per job
    /// (the default), or jsonl, every result as one line of
    /// DIR/results.jsonl (one append instead of one file per job: for runs of
    /// hundreds of thousands of jobs). A resume keeps the layout the run
    /// started with.
    #[arg(
        env = "BATCHATA_RESULTS_FORMAT",
        long,
        value_enum,
        value_name = "LAYOUT"
    )]
    results_format: Option<report::Layout>,
    /// Do not write raw request/response files under DIR/raw_files.
    #[arg(env = "BATCHATA_NO_RAW_FILES", value_parser = BoolishValueParser::new(), long)]
    no_raw_files: bool,
    /// Run against the built-in emulator of the provider APIs (no API key needed).
    #[arg(env = "BATCHATA_EMULATOR", value_parser = BoolishValueParser::new(), long, conflicts_with = "emulator_url")]
    emulator: bool,
    /// Run against a `batchata emulate` server at this address (e.g. http://127.0.0.1:8765).
    #[arg(env = "BATCHATA_EMULATOR_URL", long, value_name = "URL")]
    emulator_url: Option<String>,
    /// More logs on stderr (-v info, -vv debug); progress then prints plain
    /// lines. Without -v a live view folds warnings into one status line;
    /// every log line is kept in DIR/.batchata.log. BATCHATA_LOG (an
    /// env-filter, e.g. batchata=trace) overrides the level.
    #[arg(short, long, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    verbose: u8,
    /// No progress and no summary; errors only. The exit status tells the outcome.
    #[arg(env = "BATCHATA_QUIET", value_parser = BoolishValueParser::new(), short, long)]
    quiet: bool,
}

pub(crate) async fn run(args: RunArgs) -> Result<u8, Failure> {
    let level = match (args.quiet, args.verbose) {
        (true, _) => Verbosity::Error,
        (_, 0) => Verbosity::Warn,
        (_, 1) => Verbosity::Info,
        _ => Verbosity::Debug,
    };
    init_logs(level);
    let state = args
        .state
        .clone()
        .unwrap_or_else(|| args.results_dir.join(DEFAULT_STATE_NAME));
    let mut defaults = DefaultParams::new();
    if let Some(m) = &args.model {
        defaults = defaults.model(m);
    }
    if let Some(t) = args.temperature {
        defaults = defaults.temperature(t);
    }
    if let Some(n) = args.max_tokens {
        defaults = defaults.max_tokens(n);
    }
    let mut batch = Batch::new(&args.results_dir)
        .state_file(&state)
        .default_params(defaults)
        .verbosity(level)
        .items_per_batch(args.items_per_batch)
        .max_parallel_batches(args.max_parallel);
    if args.fresh {
        batch = batch.fresh_state();
    }
    if args.retry_failed {
        batch = batch.retry_failed();
    }
    if args.rerun_changed {
        batch = batch.rerun_changed();
    }
    if args.adopt_results {
        batch = batch.adopt_results();
    }
    if args.no_raw_files {
        batch = batch.raw_files(RawFiles::Skip);
    }
    if let Some(l) = args.results_format {
        batch = batch.results_format(l.into());
    }
    if let Some(c) = args.cost_limit {
        batch = batch.cost_limit_usd(c);
    }
    if let Some(t) = args.time_limit {
        batch = batch.time_limit(t);
    }
    // Every refused setting at once, in flag names, before a job is read.
    batch
        .check()
        .map_err(|e| Failure::input(crate::cli_words(&e.to_string())))?;
    // Logs and a view redrawn in place do not mix: -v prints plain lines.
    let mode = match (args.quiet, args.verbose) {
        (true, _) => DisplayMode::Quiet,
        (_, 0) => DisplayMode::detect(),
        _ => DisplayMode::Plain,
    };
    // A million-line jobs file takes seconds to read, and the run's state
    // more to open: on a terminal a bar says so until the run's own view
    // starts.
    let opening = OpeningBar::new(mode == DisplayMode::Live);
    let n = jobs::load(&args.jobs, &mut batch, &mut |read, total| {
        opening.lines(read, total)
    })
    .map_err(|e| {
        opening.clear();
        Failure::input(e)
    })?;
    opening.next(if args.dry_run {
        "planning the batches"
    } else {
        "opening the run's state"
    });

    if args.dry_run {
        opening.clear();
        if args.json {
            let plan = batch.plan().map_err(classify)?;
            println!("{}", dry_run_json(&plan));
        } else {
            // The plan: batches, jobs, tokens, worst-case and expected cost.
            println!("{}", batch.plan().map_err(classify)?);
        }
        return Ok(0);
    }

    // An in-process emulator lives as long as the run.
    let mut _emulator = None;
    let settings = if args.emulator {
        let say = |line: &str| {
            if !args.quiet {
                opening.say(line)
            }
        };
        let (h, s) = built_in_emulator(&say, args.poll_interval).await?;
        _emulator = Some(h);
        s
    } else if let Some(url) = &args.emulator_url {
        let poll = args.poll_interval.unwrap_or(EMULATOR_POLL);
        emulator_settings(url)?.each(|c| c.poll_interval(poll))
    } else {
        let s = batch.params().providers.clone();
        match args.poll_interval {
            Some(p) => s.each(|c| c.poll_interval(p)),
            None => s,
        }
    };

    // The full log goes to a file in the results folder; with a live view
    // on screen, warnings are folded into its status line instead of
    // printed (-v prints them all, with plain progress lines).
    if std::fs::create_dir_all(&args.results_dir).is_ok() {
        crate::log_to_file(&args.results_dir.join(crate::LOG_FILE_NAME));
    }
    crate::fold_warnings(mode == DisplayMode::Live);
    let _quiet_keys = (mode == DisplayMode::Live).then(crate::terminal::QuietControlKeys::new);
    let display = Arc::new(LiveDisplay::with_mode(n, mode));
    let _ = crate::DISPLAY.set(display.clone());
    let d = display.clone();
    let batch = batch
        .providers(settings)
        .progress_interval(mode.progress_interval())
        .on_progress(move |s, e| d.update(s, e))
        // Ctrl+C is handled here, so its notices print above the live view.
        .handle_interrupts(false);
    // Listening before the run starts: a Ctrl+C at any moment is ours.
    let signals = Interrupts::listen()
        .map_err(|e| Failure::other(format!("cannot listen for Ctrl+C: {e}")))?;
    let run = batch.start().await;
    opening.clear();
    let run = run.map_err(classify)?;
    // The run holds the state now; a stop request left from before is not for it.
    let stop = stop_file(&state);
    let _ = std::fs::remove_file(&stop);
    let interrupts = tokio::spawn(on_interrupt(signals, run.clone(), display.clone()));
    let stop_requests = tokio::spawn(on_stop_file(stop.clone(), run.clone(), display.clone()));
    let status = run.wait().await.map_err(classify);
    interrupts.abort();
    stop_requests.abort();
    let _ = std::fs::remove_file(&stop);
    let status = status?;
    // The run's last report may still be on its way: draw the end now, once.
    display.finish(&status, run.elapsed());
    let code = if status.failed + status.cancelled > 0 {
        3
    } else {
        0
    };
    if args.json {
        println!(
            "{}",
            summary_json(&status, run.elapsed(), &args.results_dir, code)
        );
    } else if !args.quiet {
        print_summary(&status, &run, &args.results_dir);
    }
    Ok(code)
}

/// `run --json`: the final summary as one JSON object (schema in RUN_HELP).
pub(crate) fn summary_json(s: &RunStatus, elapsed: Duration, dir: &Path, code: u8) -> String {
    serde_json::json!({
        "total": s.total,
        "completed": s.completed,
        "failed": s.failed,
        "cancelled": s.cancelled,
        "pending": s.pending,
        "cost_usd": report::money(s.cost_used_usd),
        "cost_limit_usd": s.cost_limit_usd,
        "elapsed_s": (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        "results_dir": dir,
        "stop_reason": s.stop_reason,
        "exit_code": code,
    })
    .to_string()
}

/// `run --dry-run --json`: the plan as one JSON object (schema in RUN_HELP).
pub(crate) fn dry_run_json(p: &batchata::run::DryRunReport) -> String {
    let batches: Vec<serde_json::Value> = p
        .batches
        .iter()
        .map(|b| {
            serde_json::json!({
                "provider": b.provider.as_str(),
                "model": b.model,
                "jobs": b.jobs,
                "input_tokens": b.input_tokens,
                "worst_case_usd": report::money(b.worst_case_usd),
                "expected_usd": report::money(b.expected_usd),
            })
        })
        .collect();
    serde_json::json!({
        "total_jobs": p.total_jobs,
        "batches": batches,
        "worst_case_usd": report::money(p.worst_case_usd),
        "expected_usd": report::money(p.expected_usd),
        "expected_output_fraction": p.expected_output_fraction,
        "cost_limit_usd": p.cost_limit_usd,
        "batches_within_limit": p.batches_within_limit,
        "items_per_batch": p.items_per_batch,
        "max_parallel": p.max_parallel_batches,
    })
    .to_string()
}

/// Ctrl+C presses, registered from the moment this is made (tokio's
/// `ctrl_c()` only listens once first polled).
struct Interrupts {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
}

impl Interrupts {
    fn listen() -> std::io::Result<Interrupts> {
        Ok(Interrupts {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?,
        })
    }

    /// Waits for the next press; false if no more can come.
    async fn next(&mut self) -> bool {
        #[cfg(unix)]
        {
            self.signal.recv().await.is_some()
        }
        #[cfg(not(unix))]
        {
            tokio::signal::ctrl_c().await.is_ok()
        }
    }
}

/// First Ctrl+C: submit nothing new, cancel the active batches, collect
/// what they finished. Second: exit at once — every step is already on disk,
/// and a rerun re-attaches to the batches still at the provider.
/// What is drawn while the jobs file is read and the run opens, before the
/// run's own view: on a terminal only (hidden otherwise).
struct OpeningBar {
    bar: indicatif::ProgressBar,
}

impl OpeningBar {
    fn new(shown: bool) -> OpeningBar {
        if !shown {
            return OpeningBar {
                bar: indicatif::ProgressBar::hidden(),
            };
        }
        let bar = indicatif::ProgressBar::new(0);
        Self::style(&bar, "{msg} [{elapsed}]");
        bar.set_message("counting the lines of the jobs file");
        // Redrawn while nothing moves, so the time keeps counting.
        bar.enable_steady_tick(std::time::Duration::from_millis(250));
        OpeningBar { bar }
    }

    fn style(bar: &indicatif::ProgressBar, template: &str) {
        if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
    }

    /// `read` lines of the jobs file read, of `total`.
    fn lines(&self, read: usize, total: Option<usize>) {
        if read == 0 {
            self.bar.set_message("reading the jobs file");
            match total {
                Some(t) => {
                    self.bar.set_length(t as u64);
                    Self::style(
                        &self.bar,
                        "{msg}: {human_pos}/{human_len} lines [{elapsed}]",
                    );
                }
                None => Self::style(&self.bar, "{msg}: {human_pos} lines [{elapsed}]"),
            }
        }
        self.bar.set_position(read as u64);
    }

    /// The jobs are read; `what` comes next.
    fn next(&self, what: &'static str) {
        Self::style(&self.bar, "{msg} [{elapsed}]");
        self.bar.set_message(what);
    }

    /// Prints a line on stderr, above the bar while it is drawn.
    fn say(&self, line: &str) {
        self.bar.suspend(|| eprintln!("{line}"));
    }

    fn clear(&self) {
        self.bar.finish_and_clear();
    }
}

async fn on_interrupt(mut signals: Interrupts, run: BatchRun, display: Arc<LiveDisplay>) {
    if !signals.next().await {
        return;
    }
    display.println(
        "Interrupted: submitting nothing new and cancelling the active batches; \
         what they finished is kept (Ctrl+C again exits at once, the state is saved).",
    );
    run.shutdown();
    if signals.next().await {
        display.println(
            "Exiting now. Rerun the same command to re-attach to the batches still at the provider.",
        );
        crate::terminal::restore();
        std::process::exit(130);
    }
}

/// `batchata cancel` from another shell: it writes the stop file, and the
/// run stops as on a first Ctrl+C — nothing new submitted, the active
/// batches cancelled, what they finished kept.
async fn on_stop_file(stop: PathBuf, run: BatchRun, display: Arc<LiveDisplay>) {
    loop {
        tokio::time::sleep(STOP_FILE_EVERY).await;
        if stop.exists() {
            break;
        }
    }
    let _ = std::fs::remove_file(&stop);
    display.println(
        "Cancel requested (batchata cancel): submitting nothing new and cancelling the active \
         batches; what they finished is kept.",
    );
    run.shutdown();
}

/// `--emulator`: starts the emulator in this process, for as long as the
/// handle is kept, and returns the settings that point at it.
#[cfg(feature = "emulator")]
async fn built_in_emulator(
    say: &(dyn Fn(&str) + Sync),
    poll_interval: Option<Duration>,
) -> Result<(batchata_emulator::EmulatorHandle, ProviderSettings), Failure> {
    let h = batchata_emulator::Emulator::start(batchata_emulator::EmulatorConfig::new())
        .await
        .map_err(|e| Failure::other(format!("cannot start the built-in emulator: {e}")))?;
    say(&format!(
        "Using the built-in emulator at {} (no API key needed; answers are synthetic).",
        h.base_url()
    ));
    let s = emulated(&h.base_url(), poll_interval.unwrap_or(EMULATOR_POLL));
    Ok((h, s))
}

/// `--emulator` in a binary built without the emulator: say so, and what
/// works instead.
#[cfg(not(feature = "emulator"))]
async fn built_in_emulator(
    _say: &(dyn Fn(&str) + Sync),
    _poll_interval: Option<Duration>,
) -> Result<((), ProviderSettings), Failure> {
    Err(Failure::input(
        "--emulator: this batchata was built without the built-in emulator (cargo feature \
         `emulator`); run against an emulator served elsewhere with --emulator-url URL, \
         or build batchata with its default features",
    ))
}

/// Settings for an emulator at `root`: a placeholder key, short polls.
#[cfg(feature = "emulator")]
fn emulated(root: &str, poll: Duration) -> ProviderSettings {
    ProviderSettings::default()
        .anthropic(|c| c.api_key("emulator").base_url(root).poll_interval(poll))
        .openai(|c| {
            c.api_key("emulator")
                .base_url(format!("{root}/v1"))
                .poll_interval(poll)
        })
        .gemini(|c| c.api_key("emulator").base_url(root).poll_interval(poll))
}

/// How many failed jobs the summary names.
const SHOWN_FAILURES: usize = 5;

/// The summary's rows, with the failed and cancelled counts in red when
/// there are any and `color` is on.
pub(crate) fn colored_summary(s: &RunStatus, elapsed: Duration, dir: &Path, color: bool) -> String {
    let mut out = String::new();
    for line in batchata::progress::summary(s, elapsed, dir).lines() {
        let bad = (s.failed > 0 && line.trim_start().starts_with("failed "))
            || (s.cancelled > 0 && line.trim_start().starts_with("cancelled "));
        out.push_str(&report::red(line, color && bad));
        out.push('\n');
    }
    out
}

fn print_summary(s: &RunStatus, run: &BatchRun, dir: &Path) {
    let color = report::stdout_color();
    println!();
    print!("{}", colored_summary(s, run.elapsed(), dir, color));
    let not_ok = s.failed + s.cancelled;
    if not_ok == 0 {
        println!("  list them: batchata results {}", dir.display());
        return;
    }
    // Read only until a few failures are found: the folder may hold a million results.
    let mut shown = 0;
    let _ = report::for_each_result(dir, run.results_format(), |r| {
        if r.outcome() != JobOutcome::Completed {
            let err = crate::cli_words(r.error.as_deref().unwrap_or("")).replace('\n', " ");
            let line = format!("  ! {}: {}", r.job_id, report::clip(&err, 160));
            println!("{}", report::red(&line, color));
            shown += 1;
        }
        shown < SHOWN_FAILURES
    });
    if not_ok > shown {
        println!("  ! … {} more", not_ok - shown);
    }
    println!("  list them: batchata results {}", dir.display());
    if s.failed > 0 {
        println!("  rerun the same command with --retry-failed to try the failed jobs again");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(failed: usize, cancelled: usize) -> RunStatus {
        RunStatus {
            total: 10,
            completed: 10 - failed - cancelled,
            failed,
            cancelled,
            is_complete: true,
            ..Default::default()
        }
    }

    #[test]
    fn failed_and_cancelled_rows_are_red_only_when_colour_is_on() {
        let dir = Path::new("out");
        let t = Duration::from_secs(1);
        let on = colored_summary(&status(2, 1), t, dir, true);
        let red_rows: Vec<&str> = on.lines().filter(|l| l.contains("\x1b[31m")).collect();
        assert_eq!(red_rows.len(), 2, "{on}");
        assert!(red_rows[0].contains("failed") && red_rows[1].contains("cancelled"));
        assert!(on
            .lines()
            .all(|l| !l.contains("completed") || !l.contains('\x1b')));
        // Off (a pipe, NO_COLOR), or nothing failed: no escape codes at all.
        assert!(!colored_summary(&status(2, 1), t, dir, false).contains('\x1b'));
        assert!(!colored_summary(&status(0, 0), t, dir, true).contains('\x1b'));
    }
}
