//! The `batchata` command-line tool: run a JSONL file of jobs through the
//! providers' batch APIs, watch it, read the results, cancel it, list the
//! models, or start the local emulator.

mod jobs;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use batchata::providers::{ProviderConfig, ProviderSettings};
use batchata::run::{read_results, StateReport};
use batchata::{Batch, Catalog, DefaultParams, Error, JobOutcome, JobResult, Verbosity};
use clap::{Parser, Subcommand, ValueEnum};

const EXIT_HELP: &str = "\
Exit status:
  0  every job completed
  1  an unexpected error (network, disk, provider)
  2  bad input or configuration (jobs file, flags, keys)
  3  the run finished, but some jobs failed or were cancelled";

/// Run large numbers of LLM requests through the providers' batch APIs at half price.
#[derive(Parser)]
#[command(name = "batchata", version, about, after_help = EXIT_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a JSONL file of jobs (resumes from its state file when rerun).
    #[command(after_help = "\
Examples:
  batchata run examples/quickstart.jsonl --results-dir out --emulator
  batchata run jobs.jsonl --results-dir out --model claude-haiku-4-5 --cost-limit 5 --time-limit 2h
  batchata run jobs.jsonl --results-dir out --dry-run

Each line of the jobs file is one job: {\"id\", \"model\", \"messages\" | \"prompt\" (+ \"file\"),
\"temperature\", \"max_tokens\", \"response_schema\" (object or path), \"enable_citations\"}.
Relative paths resolve against the jobs file's folder.

The state file (default DIR/.batchata-state.jsonl) makes a rerun resume: finished jobs are
not run again and batches already at the provider are re-attached, never resubmitted.
Keys and base URLs come from ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL and OPENAI_API_KEY /
OPENAI_BASE_URL, as with the official SDKs.

Exit status: 0 all completed, 1 unexpected error, 2 bad input, 3 some jobs failed or were cancelled.")]
    Run(RunArgs),
    /// Show a run's progress from its state file.
    Status {
        /// The run's state file.
        #[arg(long)]
        state: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the results in a results folder, one row per job.
    Results {
        /// The results folder.
        dir: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Cancel the run's batches still in flight at the providers.
    Cancel {
        /// The run's state file.
        #[arg(long)]
        state: PathBuf,
    },
    /// List the known models with batch prices, limits and capabilities.
    Models {
        /// Print the catalog as JSON (the format of a models override file).
        #[arg(long)]
        json: bool,
    },
    /// Start the local emulator of the Anthropic and OpenAI batch APIs.
    #[command(after_help = "\
Point a pipeline at it with:
  ANTHROPIC_BASE_URL=http://127.0.0.1:PORT ANTHROPIC_API_KEY=test
  OPENAI_BASE_URL=http://127.0.0.1:PORT/v1 OPENAI_API_KEY=test
Statistics: GET http://127.0.0.1:PORT/_emulator/stats")]
    Emulate(EmulateArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Jsonl,
    Csv,
}

#[derive(clap::Args)]
struct RunArgs {
    /// The JSONL jobs file.
    jobs: PathBuf,
    /// Where to write one {job_id}.json per job.
    #[arg(long)]
    results_dir: PathBuf,
    /// The state file (default: RESULTS_DIR/.batchata-state.jsonl).
    #[arg(long)]
    state: Option<PathBuf>,
    /// Default model for jobs that name none.
    #[arg(long)]
    model: Option<String>,
    /// Default temperature.
    #[arg(long)]
    temperature: Option<f64>,
    /// Default max_tokens.
    #[arg(long)]
    max_tokens: Option<u32>,
    /// Jobs per provider batch.
    #[arg(long, default_value_t = batchata::batch::DEFAULT_ITEMS_PER_BATCH)]
    items_per_batch: usize,
    /// Provider batches in flight at once.
    #[arg(long, default_value_t = batchata::batch::DEFAULT_MAX_PARALLEL_BATCHES)]
    max_parallel: usize,
    /// Stop submitting once estimated spend would pass this many USD.
    #[arg(long)]
    cost_limit: Option<f64>,
    /// Stop after this long, cancelling what runs (e.g. 90s, 10m, 2h).
    #[arg(long, value_parser = humantime::parse_duration)]
    time_limit: Option<Duration>,
    /// How often to poll batches (default: 1s Anthropic, 5s OpenAI; 100ms with --emulator).
    #[arg(long, value_parser = humantime::parse_duration)]
    poll_interval: Option<Duration>,
    /// Print the plan and cost estimate; submit nothing.
    #[arg(long)]
    dry_run: bool,
    /// Start over: ignore (and replace) an existing state file.
    #[arg(long)]
    fresh: bool,
    /// On resume, run again the jobs that failed.
    #[arg(long)]
    retry_failed: bool,
    /// Do not write raw request/response files.
    #[arg(long)]
    no_raw_files: bool,
    /// Run against the built-in emulator (no API key needed).
    #[arg(long)]
    emulator: bool,
    /// More logs (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    /// No progress display.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(clap::Args)]
struct EmulateArgs {
    /// Port on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 8765)]
    port: u16,
    /// Time each batch takes to process (e.g. 2s).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    processing_delay: Duration,
    /// Fraction of requests that end errored.
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// Fraction of HTTP calls answered 429.
    #[arg(long, default_value_t = 0.0)]
    rate_limit_rate: f64,
    /// Fraction of HTTP calls answered 500.
    #[arg(long, default_value_t = 0.0)]
    server_error_rate: f64,
    /// Fraction of HTTP calls answered 503.
    #[arg(long, default_value_t = 0.0)]
    unavailable_rate: f64,
    /// Fraction of HTTP calls answered 529 (Anthropic overloaded; 503 for OpenAI).
    #[arg(long, default_value_t = 0.0)]
    overloaded_rate: f64,
    /// Fraction of connections dropped without an answer.
    #[arg(long, default_value_t = 0.0)]
    drop_rate: f64,
    /// Fraction of batches that expire.
    #[arg(long, default_value_t = 0.0)]
    expire_rate: f64,
    /// Added latency per HTTP call (e.g. 50ms).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    latency: Duration,
    /// Require this API key (default: any non-empty key).
    #[arg(long)]
    api_key: Option<String>,
    /// Seed for the deterministic faults and answers.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// An error with the exit status it deserves.
struct Failure {
    code: u8,
    message: String,
}

fn input_error(e: impl std::fmt::Display) -> Failure {
    Failure {
        code: 2,
        message: e.to_string(),
    }
}

fn classify(e: Error) -> Failure {
    let code = match e {
        Error::Validation(_)
        | Error::ModelNotSupported(_)
        | Error::ProviderNotFound(_)
        | Error::CostLimitExceeded(_) => 2,
        _ => 1,
    };
    Failure {
        code,
        message: e.to_string(),
    }
}

fn main() -> ExitCode {
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
            Command::Run(args) => run(args).await,
            Command::Status { state, json } => status(&state, json),
            Command::Results { dir, format } => results(&dir, format),
            Command::Cancel { state } => cancel(&state).await,
            Command::Models { json } => models(json),
            Command::Emulate(args) => emulate(args).await,
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

fn init_logs(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => Verbosity::Error,
        (_, 0) => Verbosity::Warn,
        (_, 1) => Verbosity::Info,
        _ => Verbosity::Debug,
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BATCHATA_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("batchata={}", level.as_str()))
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

async fn run(args: RunArgs) -> Result<u8, Failure> {
    init_logs(args.verbose, args.quiet);
    let state = args
        .state
        .clone()
        .unwrap_or_else(|| args.results_dir.join(".batchata-state.jsonl"));
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
        .state_file(&state, !args.fresh)
        .retry_failed(args.retry_failed)
        .default_params(defaults)
        .raw_files(!args.no_raw_files)
        .items_per_batch(args.items_per_batch)
        .map_err(input_error)?
        .max_parallel_batches(args.max_parallel)
        .map_err(input_error)?;
    if let Some(c) = args.cost_limit {
        batch = batch.cost_limit_usd(c).map_err(input_error)?;
    }
    if let Some(t) = args.time_limit {
        batch = batch.time_limit(t).map_err(input_error)?;
    }
    let n = jobs::load(&args.jobs, &mut batch).map_err(input_error)?;

    if args.dry_run {
        batch.dry_run().map_err(classify)?;
        return Ok(0);
    }

    // The emulator lives as long as the run.
    let mut _emulator = None;
    let mut settings = batch.params().providers.clone();
    if args.emulator {
        let h = batchata_emulator::Emulator::start(batchata_emulator::EmulatorConfig::new())
            .await
            .map_err(|e| Failure {
                code: 1,
                message: format!("cannot start the emulator: {e}"),
            })?;
        let poll = args.poll_interval.unwrap_or(Duration::from_millis(100));
        settings = ProviderSettings {
            anthropic: ProviderConfig::default()
                .api_key("emulator")
                .base_url(h.anthropic_base_url())
                .poll_interval(poll),
            openai: ProviderConfig::default()
                .api_key("emulator")
                .base_url(h.openai_base_url())
                .poll_interval(poll),
            ..Default::default()
        };
        if !args.quiet {
            eprintln!(
                "Using the built-in emulator at {} (no API key needed).",
                h.base_url()
            );
        }
        _emulator = Some(h);
    } else if let Some(p) = args.poll_interval {
        settings.anthropic.poll_interval = Some(p);
        settings.openai.poll_interval = Some(p);
    }
    let display = Arc::new(batchata::progress::Display::new(args.quiet, n));
    let d = display.clone();
    let interval = if matches!(*display, batchata::progress::Display::Live(_)) {
        Duration::from_millis(100)
    } else {
        Duration::from_millis(500)
    };
    let batch = batch
        .providers(settings)
        .progress_interval(interval)
        .on_progress(move |s, e| d.update(s, e));
    let run = batch.run().await.map_err(classify)?;
    let status = run.status();
    let results = run.results().map_err(classify)?;
    if !args.quiet {
        print_summary(&status, &results, run.elapsed(), &args.results_dir);
    }
    Ok(if status.failed + status.cancelled > 0 {
        3
    } else {
        0
    })
}

fn print_summary(s: &batchata::RunStatus, r: &batchata::RunResults, elapsed: Duration, dir: &Path) {
    println!();
    println!("  completed  {:>8}", s.completed);
    println!("  failed     {:>8}", s.failed);
    println!("  cancelled  {:>8}", s.cancelled);
    println!("  cost       {:>8} USD", format!("{:.4}", s.cost_used_usd));
    println!(
        "  time       {:>8}",
        format!("{:.1}s", elapsed.as_secs_f64())
    );
    println!("  results    {}", dir.display());
    if let Some(reason) = s.stop_reason {
        println!("  stopped    {reason:?}");
    }
    for f in r.failed.iter().chain(&r.cancelled).take(5) {
        println!("  ! {}: {}", f.job_id, f.error.as_deref().unwrap_or(""));
    }
    let more = (r.failed.len() + r.cancelled.len()).saturating_sub(5);
    if more > 0 {
        println!(
            "  ! … and {more} more (batchata results {} --format table)",
            dir.display()
        );
    }
}

fn status(state: &Path, json: bool) -> Result<u8, Failure> {
    let r = StateReport::load(state).map_err(classify)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r).map_err(input_error)?);
        return Ok(0);
    }
    let c = r.counts;
    println!(
        "run {} (started {})",
        r.run_id,
        r.created_at.format("%Y-%m-%d %H:%M:%S UTC")
    );
    println!("results  {}", r.results_dir.display());
    println!(
        "jobs     {} total: {} completed, {} failed, {} cancelled, {} running, {} pending",
        c.total, c.completed, c.failed, c.cancelled, c.running, c.pending
    );
    println!("cost     ${:.4}", r.cost_used_usd);
    println!("batches  {}", r.batches.len());
    for b in &r.batches {
        println!(
            "  {:>4}  {:<9} {:<40} {:>6} jobs  {}",
            b.index,
            b.provider.as_str(),
            b.batch_id.as_deref().unwrap_or("(not created)"),
            b.jobs,
            b.ended.as_deref().unwrap_or("in flight")
        );
    }
    Ok(0)
}

fn answer_text(r: &JobResult) -> String {
    match (&r.parsed_response, &r.raw_response) {
        (Some(p), _) => p.to_string(),
        (None, Some(t)) => t.clone(),
        _ => String::new(),
    }
}

fn outcome_str(r: &JobResult) -> &'static str {
    match r.outcome() {
        JobOutcome::Completed => "completed",
        JobOutcome::Failed => "failed",
        JobOutcome::Cancelled => "cancelled",
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn results(dir: &Path, format: Format) -> Result<u8, Failure> {
    if !dir.is_dir() {
        return Err(input_error(format!(
            "{} is not a results folder",
            dir.display()
        )));
    }
    let r = read_results(dir, None).map_err(classify)?;
    let mut all: Vec<&JobResult> = r
        .completed
        .iter()
        .chain(&r.failed)
        .chain(&r.cancelled)
        .collect();
    all.sort_by(|a, b| a.job_id.cmp(&b.job_id));
    match format {
        Format::Jsonl => {
            for x in all {
                println!("{}", serde_json::to_string(x).map_err(input_error)?);
            }
        }
        Format::Csv => {
            println!("job_id,status,input_tokens,output_tokens,cost_usd,error,response");
            for x in all {
                println!(
                    "{},{},{},{},{:.6},{},{}",
                    csv_field(&x.job_id),
                    outcome_str(x),
                    x.input_tokens,
                    x.output_tokens,
                    x.cost_usd,
                    csv_field(x.error.as_deref().unwrap_or("")),
                    csv_field(&answer_text(x))
                );
            }
        }
        Format::Table => {
            println!(
                "{:<24} {:<10} {:>8} {:>8} {:>10}  response / error",
                "job", "status", "in", "out", "cost $"
            );
            for x in &all {
                let text = x
                    .error
                    .clone()
                    .unwrap_or_else(|| answer_text(x))
                    .replace('\n', " ");
                let short: String = text.chars().take(60).collect();
                println!(
                    "{:<24} {:<10} {:>8} {:>8} {:>10.6}  {short}",
                    x.job_id,
                    outcome_str(x),
                    x.input_tokens,
                    x.output_tokens,
                    x.cost_usd
                );
            }
            println!(
                "\n{} jobs: {} completed, {} failed, {} cancelled",
                all.len(),
                r.completed.len(),
                r.failed.len(),
                r.cancelled.len()
            );
        }
    }
    Ok(0)
}

async fn cancel(state: &Path) -> Result<u8, Failure> {
    let catalog = Arc::new(Catalog::load_default().map_err(classify)?);
    let ids = batchata::run::cancel_from_state(state, &ProviderSettings::from_env(), catalog)
        .await
        .map_err(classify)?;
    if ids.is_empty() {
        println!("no batch of this run is in flight");
    } else {
        for id in &ids {
            println!("cancel requested: {id}");
        }
        println!(
            "{} batches cancelling; the running process (or a rerun) collects what they finished",
            ids.len()
        );
    }
    Ok(0)
}

fn models(json: bool) -> Result<u8, Failure> {
    let catalog = Catalog::load_default().map_err(classify)?;
    if json {
        let models: Vec<_> = catalog.models().collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"models": models}))
                .map_err(input_error)?
        );
        return Ok(0);
    }
    println!(
        "{:<28} {:<10} {:>10} {:>10} {:>9} {:>8}  capabilities",
        "model", "provider", "in $/M", "out $/M", "context", "max out"
    );
    for m in catalog.models() {
        let c = &m.capabilities;
        let mut caps = Vec::new();
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
            "{:<28} {:<10} {:>10.3} {:>10.3} {:>9} {:>8}  {}{}",
            m.name,
            m.provider.as_str(),
            m.batch_input_price(),
            m.batch_output_price(),
            m.max_input_tokens,
            m.max_output_tokens,
            caps.join(","),
            m.note
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        );
    }
    println!(
        "\nPrices are batch prices (list price less the batch discount), USD per million tokens."
    );
    Ok(0)
}

async fn emulate(a: EmulateArgs) -> Result<u8, Failure> {
    let mut cfg = batchata_emulator::EmulatorConfig::new()
        .processing_delay(a.processing_delay)
        .error_rate(a.error_rate)
        .rate_limit_rate(a.rate_limit_rate)
        .server_error_rate(a.server_error_rate)
        .unavailable_rate(a.unavailable_rate)
        .overloaded_rate(a.overloaded_rate)
        .drop_rate(a.drop_rate)
        .expire_rate(a.expire_rate)
        .latency(a.latency)
        .seed(a.seed);
    if let Some(k) = a.api_key {
        cfg = cfg.api_key(k);
    }
    let h = batchata_emulator::Emulator::bind(cfg, a.port)
        .await
        .map_err(|e| Failure {
            code: 2,
            message: format!("cannot listen on 127.0.0.1:{}: {e}", a.port),
        })?;
    println!("batchata emulator listening on {}", h.base_url());
    println!("  ANTHROPIC_BASE_URL={}", h.anthropic_base_url());
    println!("  OPENAI_BASE_URL={}", h.openai_base_url());
    println!("  stats: {}", h.stats_url());
    println!("Press Ctrl+C to stop.");
    h.run_until(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    Ok(0)
}
