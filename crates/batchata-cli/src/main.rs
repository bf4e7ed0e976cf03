//! The `batchata` command-line tool: run a JSONL file of jobs through the
//! providers' batch APIs, watch it, read the results, cancel it, list the
//! models, or start the local emulator.
//!
//! This file holds the command line itself (clap), the exit statuses and the
//! small commands; `run.rs` runs a jobs file, `jobs.rs` reads one,
//! `report.rs` prints states, results and the catalog, `emulate.rs` serves
//! the emulator (cargo feature `emulator`, on by default).

#[cfg(feature = "emulator")]
mod emulate;
mod jobs;
mod models;
mod report;
mod run;
mod status;
mod terminal;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use batchata::progress::LiveDisplay;
use batchata::providers::{create_provider, Provider, ProviderConfig, ProviderSettings};
use batchata::{Catalog, Error, ProviderKind, Verbosity};
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
  batchata status out
  batchata cancel out
  batchata models
  batchata completions bash";

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
  batchata status out
  batchata status out --json
  batchata status out --refresh
  batchata status --state runs/state.jsonl --refresh --emulator-url http://127.0.0.1:8765

Reads the state file without writing to it: safe while the run goes on.
--json prints one object: run_id, created_at, results_dir, state_file,
counts {total, pending, running, completed, failed, cancelled}, cost_used_usd
(rounded to 1e-6), batches [{index, provider, batch_id, jobs, state
(not_created | in_flight | ended), final_status (the provider's last word, or
null), and with --refresh provider_status and provider_counts {total,
processing, succeeded, errored, cancelled, expired} or provider_error}].")]
    Status {
        /// The run's results folder; its state is DIR/.batchata-state.jsonl [default: .].
        dir: Option<PathBuf>,
        /// The run's state file, when the run was given --state.
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Ask the providers for the live counts of the batches in flight
        /// (keys from the environment, as for `run`).
        #[arg(long)]
        refresh: bool,
        /// With --refresh: ask a `batchata emulate` server at this address.
        #[arg(long, value_name = "URL", requires = "refresh")]
        emulator_url: Option<String>,
    },
    /// Print the results in a results folder, one row per job.
    #[command(after_help = "\
Examples:
  batchata results out
  batchata results out --format csv > results.csv
  batchata results out --format jsonl | jq .parsed_response
  batchata results out --status failed
  batchata results out --job q1

table: job, status, tokens, cost and the answer (its fields when it was structured) or the error,
       fitted to the terminal's width (COLUMNS, else the terminal's size; 80 in a pipe).
csv:   the same columns in full, plus one column per field of structured answers.
jsonl: each result file as one line (the library's JobResult).

A run with --results-format jsonl keeps its results in DIR/results.jsonl, one line per
job; a job run again (--retry-failed, --rerun-changed) has a new line, and its last
line is the one shown.")]
    Results {
        /// The results folder (the run's --results-dir).
        dir: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = report::Format::Table)]
        format: report::Format,
        /// Only the results with this status.
        #[arg(long, value_enum, value_name = "STATUS")]
        status: Option<report::StatusFilter>,
        /// Show this job's result in full (answer, parsed fields, error, citations).
        #[arg(long, value_name = "ID", conflicts_with_all = ["status", "format"])]
        job: Option<String>,
        /// How the run laid its results out [default: as the run's state in
        /// DIR records, else jsonl when DIR has a results.jsonl, else files].
        #[arg(long, value_enum, value_name = "LAYOUT")]
        results_format: Option<report::Layout>,
    },
    /// Stop a running `run` as Ctrl+C does, and cancel its batches in flight.
    #[command(after_help = "\
Examples:
  batchata cancel out
  batchata cancel --state runs/state.jsonl --emulator-url http://127.0.0.1:8765

A `run` still going on this state is told to stop (through the file STATE.stop
beside the state): it submits nothing more, cancels its batches in flight, keeps
what they finished and exits 3, as after Ctrl+C. When no run answers within 2 s
(it died or was killed), the batches in flight are cancelled from here; rerun
it to collect what they finished.

Keys and base URLs come from ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL, OPENAI_API_KEY /
OPENAI_BASE_URL and GOOGLE_API_KEY (or GEMINI_API_KEY) / GOOGLE_GEMINI_BASE_URL.")]
    Cancel {
        /// The run's results folder; its state is DIR/.batchata-state.jsonl [default: .].
        dir: Option<PathBuf>,
        /// The run's state file, when the run was given --state.
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
        /// Talk to a `batchata emulate` server at this address instead of the providers.
        #[arg(long, value_name = "URL")]
        emulator_url: Option<String>,
    },
    /// List the known models with batch prices, limits and capabilities.
    #[command(after_help = "\
Examples:
  batchata models
  batchata models --wide
  batchata models --json | jq '.models[].name'

Prices are per million tokens at batch rates (list price less the batch discount).
--json prints {models: [{name, provider, ...}]}, each model as the catalog holds it
(prices per million tokens, limits, capabilities). Add or override models with a file of the same shape as `batchata models --json`,
named by the BATCHATA_MODELS_FILE environment variable.")]
    Models {
        /// Print the catalog as JSON (the format of a models override file).
        #[arg(long)]
        json: bool,
        /// Do not fit the table to 100 columns: add each model's notes in full.
        #[arg(long)]
        wide: bool,
    },
    /// Serve the local emulator of the Anthropic, OpenAI and Gemini batch APIs.
    #[cfg(feature = "emulator")]
    #[command(after_help = emulate::EMULATE_HELP)]
    Emulate(emulate::EmulateArgs),
    /// Print a shell completion script for bash, zsh or fish.
    #[command(after_help = "\
Examples:
  batchata completions bash > ~/.local/share/bash-completion/completions/batchata
  batchata completions zsh > ~/.zfunc/_batchata      # with fpath+=(~/.zfunc) in .zshrc
  batchata completions fish > ~/.config/fish/completions/batchata.fish
  source <(batchata completions bash)               # this shell only")]
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: CompletionShell,
    },
}

/// The shells `batchata completions` writes for.
#[derive(Clone, Copy, clap::ValueEnum)]
enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

/// `batchata completions SHELL`: the script on stdout.
fn completions(shell: CompletionShell) -> Result<u8, Failure> {
    use clap::CommandFactory;
    use clap_complete::Shell;
    let shell = match shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    clap_complete::generate(
        shell,
        &mut Cli::command(),
        "batchata",
        &mut std::io::stdout(),
    );
    Ok(0)
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

/// A library message in the CLI's words: the builder and config names the
/// library uses become the flags and variables a CLI user has.
pub(crate) fn cli_words(msg: &str) -> String {
    const NAMES: [(&str, &str); 21] = [
        ("retry_failed (CLI: --retry-failed)", "--retry-failed"),
        ("rerun_changed (CLI: --rerun-changed)", "--rerun-changed"),
        ("adopt_results (CLI: --adopt-results)", "--adopt-results"),
        ("reuse off (CLI: --fresh)", "--fresh"),
        (
            "results_format files (CLI: --results-format files)",
            "--results-format files",
        ),
        (
            "results_format jsonl (CLI: --results-format jsonl)",
            "--results-format jsonl",
        ),
        (" (or pass a key with ProviderConfig::api_key)", ""),
        (" (or ProviderConfig::api_key)", ""),
        ("ProviderConfig::api_key", "the provider's API key variable"),
        (
            "(from default_params)",
            "(from --model / --temperature / --max-tokens)",
        ),
        ("in default_params", "with --model"),
        ("default_params", "--model / --temperature / --max-tokens"),
        ("cost_limit_usd must be", "--cost-limit must be"),
        ("cost_limit_usd", "--cost-limit"),
        ("retry_failed", "--retry-failed"),
        ("rerun_changed", "--rerun-changed"),
        ("adopt_results", "--adopt-results"),
        ("results_format", "--results-format"),
        ("items_per_batch", "--items-per-batch"),
        ("max_parallel_batches", "--max-parallel"),
        ("time_limit", "--time-limit"),
    ];
    let mut out = msg.to_string();
    for (lib, cli) in NAMES {
        out = out.replace(lib, cli);
    }
    out
}

/// Sorts a library error into "fix your input" (2) or "something else" (1).
pub(crate) fn classify(e: Error) -> Failure {
    match e {
        Error::Validation(_)
        | Error::ModelNotSupported(_)
        | Error::ProviderNotFound(_)
        | Error::Auth(_)
        | Error::InUse(_) => Failure::input(cli_words(&e.to_string())),
        _ => Failure::other(cli_words(&e.to_string())),
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
            Command::Status {
                dir,
                state,
                json,
                refresh,
                emulator_url,
            } => {
                let state = status::state_path(dir.as_deref(), state.as_deref());
                let live = if refresh {
                    refresh_counts(&state, emulator_url.as_deref()).await?
                } else {
                    Default::default()
                };
                status::status(&state, json, &live)
            }
            Command::Results {
                dir,
                format,
                status,
                job,
                results_format,
            } => match job {
                Some(id) => report::one_result(&dir, results_format, &id, false),
                None => report::results(&dir, results_format, format, status),
            },
            Command::Cancel {
                dir,
                state,
                emulator_url,
            } => {
                let state = status::state_path(dir.as_deref(), state.as_deref());
                cancel(&state, emulator_url.as_deref()).await
            }
            Command::Models { json, wide } => models::models(json, wide),
            #[cfg(feature = "emulator")]
            Command::Emulate(args) => emulate::emulate(args).await,
            Command::Completions { shell } => completions(shell),
        }
    });
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("error: {}", cli_words(&f.message));
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
    let placeholder = |c: ProviderConfig| {
        if c.has_api_key() {
            c
        } else {
            c.api_key("emulator")
        }
    };
    Ok(ProviderSettings::from_env()
        .each(placeholder)
        .anthropic(|c| c.base_url(root))
        .openai(|c| c.base_url(format!("{root}/v1")))
        .gemini(|c| c.base_url(root)))
}

/// Provider settings for `status --refresh` and `cancel`: an emulator's, or
/// the environment's.
fn settings_for(emulator_url: Option<&str>) -> Result<ProviderSettings, Failure> {
    match emulator_url {
        Some(url) => emulator_settings(url),
        None => Ok(ProviderSettings::from_env()),
    }
}

/// What the providers say now of each batch of the state still in flight.
async fn refresh_counts(
    state: &Path,
    emulator_url: Option<&str>,
) -> Result<HashMap<usize, Result<status::Live, String>>, Failure> {
    init_logs(Verbosity::Error);
    let r = status::load_state(state)?;
    let settings = settings_for(emulator_url)?;
    let catalog = Arc::new(Catalog::load_default().map_err(classify)?);
    let mut clients: HashMap<ProviderKind, Result<Arc<dyn Provider>, String>> = HashMap::new();
    let mut out = HashMap::new();
    for b in r.batches.iter().filter(|b| b.ended.is_none()) {
        let Some(id) = &b.batch_id else { continue };
        let client = clients
            .entry(b.provider)
            .or_insert_with(|| {
                create_provider(b.provider, settings.get(b.provider), catalog.clone())
                    .map_err(|e| cli_words(&e.to_string()))
            })
            .clone();
        let live = match client {
            Ok(c) => c
                .get_batch_status(id)
                .await
                .map(|st| status::Live {
                    status: st.provider_status,
                    counts: st.counts,
                })
                .map_err(|e| cli_words(&e.to_string())),
            Err(e) => Err(e),
        };
        out.insert(b.index, live);
    }
    Ok(out)
}

async fn cancel(state: &Path, emulator_url: Option<&str>) -> Result<u8, Failure> {
    init_logs(Verbosity::Warn);
    let settings = settings_for(emulator_url)?;
    if !state.is_file() {
        return Err(Failure::input(format!(
            "no state file at {}; give the run's results folder (`batchata cancel DIR`) or its --state",
            state.display()
        )));
    }
    // First tell a run still going to stop submitting: otherwise it would
    // fill the slots of the batches cancelled here with new ones.
    let stop = run::stop_file(state);
    std::fs::write(&stop, b"stop requested by batchata cancel\n").map_err(|e| {
        Failure::other(format!(
            "cannot write the stop request {}: {e}",
            stop.display()
        ))
    })?;
    // A run going on looks for it every 200 ms and takes it away: wait for
    // that before cancelling here, or the run could fill the slots freed by
    // the cancels before it hears the stop.
    let asked = std::time::Instant::now();
    while stop.exists() && asked.elapsed() < std::time::Duration::from_secs(2) {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    if stop.exists() {
        println!("no run is going on this state (or it did not answer); cancelling its batches in flight");
    } else {
        // The run cancels its own batches, as on Ctrl+C, and records them;
        // cancelling them here too would only race it.
        println!("the running `run` stopped submitting; it cancels its active batches and exits as after Ctrl+C");
        return Ok(0);
    }
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
