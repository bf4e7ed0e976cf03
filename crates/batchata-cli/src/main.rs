//! The `batchata` command-line tool: run a JSONL file of jobs through the
//! providers' batch APIs, watch it, read the results, cancel it, list the
//! models, or start the local emulator.
//!
//! This file holds the command line itself (clap), the exit statuses and the
//! small commands; `run.rs` runs a jobs file, `jobs.rs` reads one,
//! `report.rs` prints states, results and the catalog, `emulate.rs` serves
//! the emulator.

mod emulate;
mod jobs;
mod report;
mod run;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use batchata::progress::LiveDisplay;
use batchata::providers::{ProviderConfig, ProviderSettings};
use batchata::{Catalog, Error, Verbosity};
use clap::{Parser, Subcommand};

const EXIT_HELP: &str = "\
Exit status:
  0  every job completed (or the command did what it was asked)
  1  an unexpected error (network, disk, provider)
  2  bad input or configuration (jobs file, flags, keys, state file)
  3  the run finished, but some jobs failed or were cancelled (a first Ctrl+C cancels)
  130  a second Ctrl+C exited at once; rerun the same command to resume

Examples:
  batchata run examples/quickstart.jsonl --results-dir out --emulator
  batchata results out
  batchata status --state out/.batchata-state.jsonl
  batchata models";

/// Run large numbers of LLM requests through the providers' batch APIs
/// (Anthropic Message Batches, OpenAI Batch, Gemini batch mode) at half price.
#[derive(Parser)]
#[command(name = "batchata", version, about, after_help = EXIT_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a JSONL file of jobs; rerun the same command to resume.
    #[command(after_help = run::RUN_HELP)]
    Run(run::RunArgs),
    /// Show a run's progress from its state file: counts, cost, batches.
    #[command(after_help = "\
Examples:
  batchata status --state out/.batchata-state.jsonl
  batchata status --state out/.batchata-state.jsonl --json

Reads the state file without writing to it: safe while the run goes on.")]
    Status {
        /// The run's state file (by default RESULTS_DIR/.batchata-state.jsonl).
        #[arg(long)]
        state: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the results in a results folder, one row per job.
    #[command(after_help = "\
Examples:
  batchata results out
  batchata results out --format csv > results.csv
  batchata results out --format jsonl | jq .parsed_response

table: job, status, tokens, cost and the answer (its fields when it was structured) or the error.
csv:   the same columns in full, plus one column per field of structured answers.
jsonl: each result file as one line (the library's JobResult).")]
    Results {
        /// The results folder (the run's --results-dir).
        dir: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = report::Format::Table)]
        format: report::Format,
    },
    /// Cancel the run's batches still in flight at the providers.
    #[command(after_help = "\
Examples:
  batchata cancel --state out/.batchata-state.jsonl
  batchata cancel --state out/.batchata-state.jsonl --emulator-url http://127.0.0.1:8765

Keys and base URLs come from ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL, OPENAI_API_KEY /
OPENAI_BASE_URL and GOOGLE_API_KEY (or GEMINI_API_KEY) / GOOGLE_GEMINI_BASE_URL. The run,
if it is still going, collects what the batches finished and exits 3; otherwise rerun it
to collect them.")]
    Cancel {
        /// The run's state file.
        #[arg(long)]
        state: PathBuf,
        /// Talk to a `batchata emulate` server at this address instead of the providers.
        #[arg(long, value_name = "URL")]
        emulator_url: Option<String>,
    },
    /// List the known models with batch prices, limits and capabilities.
    #[command(after_help = "\
Prices are per million tokens at batch rates (list price less the batch discount).
Add or override models with a file of the same shape as `batchata models --json`,
named by the BATCHATA_MODELS_FILE environment variable.")]
    Models {
        /// Print the catalog as JSON (the format of a models override file).
        #[arg(long)]
        json: bool,
    },
    /// Serve the local emulator of the Anthropic, OpenAI and Gemini batch APIs.
    #[command(after_help = emulate::EMULATE_HELP)]
    Emulate(emulate::EmulateArgs),
}

/// An error with the exit status it deserves.
pub(crate) struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    /// Exit 2: the user's input or configuration is wrong.
    pub(crate) fn input(e: impl std::fmt::Display) -> Failure {
        Failure {
            code: 2,
            message: e.to_string(),
        }
    }

    /// Exit 1: something else went wrong.
    pub(crate) fn other(e: impl std::fmt::Display) -> Failure {
        Failure {
            code: 1,
            message: e.to_string(),
        }
    }
}

/// Sorts a library error into "fix your input" (2) or "something else" (1).
pub(crate) fn classify(e: Error) -> Failure {
    match e {
        Error::Validation(_)
        | Error::ModelNotSupported(_)
        | Error::ProviderNotFound(_)
        | Error::CostLimitExceeded(_)
        | Error::Auth(_)
        | Error::InUse(_) => Failure::input(e),
        _ => Failure::other(e),
    }
}

/// Keeps glibc's heap close to what the program really holds. By default
/// glibc gives each thread that allocates (tokio's workers and blocking
/// threads) an arena of its own, keeps what is freed in it, and after a large
/// buffer is freed raises its mmap threshold so the next 10-20 MB request
/// bodies come from those arenas too. At 100,000 jobs that left peak RSS
/// well above the heap's own peak (bench/NOTES.md). One arena and a fixed
/// 1 MiB threshold (large buffers are mapped and returned to the system when
/// freed) remove most of it at no measurable cost in time: the run's work is
/// I/O and a few threads, so the arena lock is rarely contended. A user's own
/// `MALLOC_ARENA_MAX` / `MALLOC_MMAP_THRESHOLD_` still wins.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
            // SAFETY: mallopt only changes allocator parameters; it is called
            // first thing in main, before any other thread exists.
            unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
        }
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
            // SAFETY: as above.
            unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20) };
        }
    }
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let outcome = rt.block_on(async {
        match cli.command {
            Command::Run(args) => run::run(args).await,
            Command::Status { state, json } => report::status(&state, json),
            Command::Results { dir, format } => report::results(&dir, format),
            Command::Cancel {
                state,
                emulator_url,
            } => cancel(&state, emulator_url.as_deref()).await,
            Command::Models { json } => report::models(json),
            Command::Emulate(args) => emulate::emulate(args).await,
        }
    });
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// The run's progress display, once there is one: log lines are written
/// through it so they never tear the live view.
pub(crate) static DISPLAY: OnceLock<Arc<LiveDisplay>> = OnceLock::new();

/// Where a run's full log goes besides stderr: a file in its results folder.
static LOG_FILE: OnceLock<std::sync::Mutex<std::fs::File>> = OnceLock::new();
/// Set while a live view is on screen: warnings are folded into its status
/// line (and written in full to the log file) instead of tearing the view.
static FOLD_WARNINGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The name of the log file a run writes in its results folder.
pub(crate) const LOG_FILE_NAME: &str = ".batchata.log";

/// Keeps every log line of the run in `path` (appended).
pub(crate) fn log_to_file(path: &Path) {
    if let Ok(f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = LOG_FILE.set(std::sync::Mutex::new(f));
    }
}

/// While a live view is on screen, only errors reach stderr; warnings are
/// counted in the view and kept in full in the log file.
pub(crate) fn fold_warnings(on: bool) {
    FOLD_WARNINGS.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// One log line's destination: the log file, and stderr (with the live
/// view, if any, lifted off the screen while it is written) unless folded.
struct LogWriter {
    to_stderr: bool,
}

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(f) = LOG_FILE.get() {
            let _ = f.lock().unwrap_or_else(|e| e.into_inner()).write_all(buf);
        }
        if !self.to_stderr {
            return Ok(buf.len());
        }
        match DISPLAY.get() {
            Some(d) => d.suspend(|| std::io::stderr().write(buf)),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

struct Logs;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        LogWriter { to_stderr: true }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> LogWriter {
        let folded = FOLD_WARNINGS.load(std::sync::atomic::Ordering::Relaxed)
            && *meta.level() > tracing::Level::ERROR;
        LogWriter { to_stderr: !folded }
    }
}

/// Logs go to stderr; quiet by default (warnings), `-v` info, `-vv` debug.
/// `BATCHATA_LOG` (an env-filter such as `batchata=trace`) overrides.
pub(crate) fn init_logs(level: Verbosity) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BATCHATA_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("batchata={}", level.as_str()))
    });
    // No colour codes: the same lines go to the log file.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Logs)
        .with_ansi(false)
        .try_init();
}

/// Provider settings for a `batchata emulate` server at `url`
/// (`http://127.0.0.1:PORT`): every base URL from it; the keys from the
/// environment when set (an emulator started with `--api-key` checks them),
/// a placeholder otherwise.
pub(crate) fn emulator_settings(url: &str) -> Result<ProviderSettings, Failure> {
    let root = url.trim_end_matches('/').trim_end_matches("/v1");
    if !(root.starts_with("http://") || root.starts_with("https://")) {
        return Err(Failure::input(format!(
            "--emulator-url '{url}' is not an http:// address; give the address `batchata emulate` prints, e.g. http://127.0.0.1:8765"
        )));
    }
    let env = ProviderSettings::from_env();
    let key = |c: &ProviderConfig| {
        c.api_key
            .as_ref()
            .map(|k| k.expose().to_string())
            .unwrap_or_else(|| "emulator".into())
    };
    Ok(ProviderSettings {
        anthropic: ProviderConfig::default()
            .api_key(key(&env.anthropic))
            .base_url(root),
        openai: ProviderConfig::default()
            .api_key(key(&env.openai))
            .base_url(format!("{root}/v1")),
        gemini: ProviderConfig::default()
            .api_key(key(&env.gemini))
            .base_url(root),
    })
}

async fn cancel(state: &Path, emulator_url: Option<&str>) -> Result<u8, Failure> {
    init_logs(Verbosity::Warn);
    let settings = match emulator_url {
        Some(url) => emulator_settings(url)?,
        None => ProviderSettings::from_env(),
    };
    let catalog = Arc::new(Catalog::load_default().map_err(classify)?);
    let ids = batchata::run::cancel_from_state(state, &settings, catalog)
        .await
        .map_err(classify)?;
    if ids.is_empty() {
        println!("no batch of this run is in flight; nothing to cancel");
    } else {
        for id in &ids {
            println!("cancel requested: {id}");
        }
        println!(
            "{} batch(es) cancelling; the running process (or a rerun) collects what they finished",
            ids.len()
        );
    }
    Ok(0)
}
