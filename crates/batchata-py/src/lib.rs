//! The native half of the Python package `batchata_rs`.
//!
//! The Python API users call (`Batch`, `BatchRun`, `JobResult`, ...) lives in
//! `python/batchata_rs/`, written in Python so that Pydantic stays in Python:
//! schemas come from `model_json_schema()` and answers are validated by the
//! user's own model. This module is the thin layer under it: it turns the
//! Python side's plain values into the library's `Batch` and `Job`, runs the
//! batch on a tokio runtime, and hands back statuses and results as plain
//! dicts and JSON text.
//!
//! Waiting is done here with the GIL released, in short slices, checking for
//! Python signals between them: a Ctrl+C surfaces as `KeyboardInterrupt`
//! from `NativeRun.wait`, and the Python side then calls
//! `shutdown(False)` and waits for the run to save its state.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use batchata::{
    Batch, BatchRun, Citation, Job, JobOutcome, JobResult, Message, RawFiles, ResponseSchema, Role,
    RunStatus, Verbosity,
};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyList, PyString};

/// One runtime for the process: runs and emulators live on it.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        one_malloc_arena();
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("batchata-rs")
            .build()
            .expect("cannot start the async runtime")
    })
}

/// The Python package is an application, so it owns logging: runs log to
/// stderr at `set_verbosity`'s level, as batchata does (the library itself
/// installs no `tracing` subscriber). `BATCHATA_LOG` (an env-filter such as
/// `batchata=debug`) overrides the level. The first run's level holds for
/// the process: a global subscriber is installed once, and not at all when
/// the embedding program has installed one already.
fn init_logging(v: Verbosity) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BATCHATA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("batchata={}", v.as_str())));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Makes glibc serve every thread from one arena, as the CLI does, before
/// the runtime's threads start. By default each thread that allocates gets
/// an arena of its own and keeps what it frees: the run's worker threads
/// then grow new memory beside the Python heap instead of reusing what the
/// script freed (a 10,000-job script's prompts, once added). Measured on
/// bench/py_api.py, 10,000 jobs: 60 MB peak by default, 49 MB with one
/// arena, in the same time (bench/NOTES.md, section 9). It applies to the
/// whole Python process, once a run or an emulator starts; a
/// `MALLOC_ARENA_MAX` set in the environment wins.
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes allocator parameters (under glibc's
        // own lock); existing arenas stay valid.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    }
}

/// Hands the heap's free pages back to the system once a run has ended.
/// What the run freed (a batch's prompts, request bodies, downloads) is
/// otherwise kept by glibc for later allocations, and the Python objects
/// that come next (`results()`) live in pymalloc's own mappings, so they
/// would not reuse it: the process would peak at the run's memory plus
/// the results'.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Raises the library's error as the Python exception of the same name in
/// `batchata_rs.exceptions` (batchata's names).
fn to_py(err: batchata::Error) -> PyErr {
    use batchata::Error as E;
    let (class, msg) = match &err {
        E::Validation(_) => ("ValidationError", err.to_string()),
        E::ProviderNotFound(_) => ("ProviderNotFoundError", err.to_string()),
        E::ModelNotSupported(_) => ("ModelNotSupportedError", err.to_string()),
        E::BatchSubmission(_) => ("BatchSubmissionError", err.to_string()),
        E::State(_) | E::InUse(_) => ("StateError", err.to_string()),
        E::Parse(_) => ("ParseError", err.to_string()),
        E::Auth(_) | E::OutcomeUnknown(_) => ("ProviderError", err.to_string()),
        _ => ("BatchataError", err.to_string()),
    };
    let msg = python_words(&msg);
    Python::attach(|py| {
        match py
            .import("batchata_rs.exceptions")
            .and_then(|m| m.getattr(class))
        {
            Ok(cls) => match cls.call1((msg.clone(),)) {
                Ok(inst) => PyErr::from_value(inst),
                Err(e) => e,
            },
            Err(_) => PyRuntimeError::new_err(msg),
        }
    })
}

/// A library message in this package's words: where the library names its
/// builder options (with the CLI's flag beside them), a Python user reads
/// the method or keyword that does the same here.
fn python_words(msg: &str) -> String {
    const NAMES: [(&str, &str); 6] = [
        (
            "adopt_results (CLI: --adopt-results)",
            "Batch.adopt_results() (a batchata_rs addition)",
        ),
        (
            "run everything again with reuse off (CLI: --fresh)",
            "run every job again, replacing them, with set_state(file=..., reuse_state=False)",
        ),
        (
            "reuse off (CLI: --fresh)",
            "set_state(file=..., reuse_state=False)",
        ),
        ("(from default_params)", "(from set_default_params)"),
        (
            "results_format files (CLI: --results-format files)",
            "Batch(..., results_format=\"files\")",
        ),
        (
            "results_format jsonl (CLI: --results-format jsonl)",
            "Batch(..., results_format=\"jsonl\")",
        ),
    ];
    let mut out = msg.to_string();
    for (lib, py) in NAMES {
        out = out.replace(lib, py);
    }
    out
}

/// The builder, owned by Python. The library's builder methods take `self`,
/// so it is moved out and back on each call.
#[pyclass(module = "batchata_rs._native")]
struct NativeBatch {
    batch: Mutex<Option<Batch>>,
}

impl NativeBatch {
    fn with<R>(&self, f: impl FnOnce(Batch) -> batchata::Result<(Batch, R)>) -> PyResult<R> {
        let mut slot = self.batch.lock().unwrap_or_else(|p| p.into_inner());
        let batch = slot
            .take()
            .ok_or_else(|| PyRuntimeError::new_err("this batch has already been run"))?;
        let keep = batch.clone();
        match f(batch) {
            Ok((b, r)) => {
                *slot = Some(b);
                Ok(r)
            }
            Err(e) => {
                *slot = Some(keep);
                Err(to_py(e))
            }
        }
    }
}

fn raw(on: bool) -> RawFiles {
    if on {
        RawFiles::Write
    } else {
        RawFiles::Skip
    }
}

fn role(s: &str) -> PyResult<Role> {
    match s {
        "system" => Ok(Role::System),
        "user" => Ok(Role::User),
        "assistant" => Ok(Role::Assistant),
        other => Err(to_py(batchata::Error::Validation(format!(
            "message role '{other}' is not one of system, user, assistant"
        )))),
    }
}

#[pymethods]
impl NativeBatch {
    #[new]
    fn new(results_dir: PathBuf) -> Self {
        // Ctrl+C is Python's: see the module comment.
        let batch = Batch::new(results_dir).handle_interrupts(false);
        NativeBatch {
            batch: Mutex::new(Some(batch)),
        }
    }

    fn set_layout(
        &self,
        max_parallel_batches: usize,
        items_per_batch: usize,
        raw_files: bool,
    ) -> PyResult<()> {
        self.with(|b| {
            let b = b
                .max_parallel_batches(max_parallel_batches)
                .items_per_batch(items_per_batch)
                .raw_files(raw(raw_files));
            b.check()?;
            Ok((b, ()))
        })
    }

    /// `"files"` or `"jsonl"` (a batchata_rs addition).
    fn set_results_format(&self, format: &str) -> PyResult<()> {
        let f: batchata::ResultsFormat = format.parse().map_err(to_py)?;
        self.with(|b| Ok((b.results_format(f), ())))
    }

    fn set_raw_files(&self, on: bool) -> PyResult<()> {
        self.with(|b| Ok((b.raw_files(raw(on)), ())))
    }

    fn set_state(&self, file: PathBuf, reuse: bool) -> PyResult<()> {
        self.with(|b| {
            let b = b.state_file(file);
            Ok((if reuse { b } else { b.fresh_state() }, ()))
        })
    }

    fn set_cost_limit(&self, usd: f64) -> PyResult<()> {
        self.with(|b| {
            let b = b.cost_limit_usd(usd);
            b.check()?;
            Ok((b, ()))
        })
    }

    fn set_time_limit(&self, seconds: f64) -> PyResult<()> {
        if !seconds.is_finite() || seconds <= 0.0 {
            return Err(to_py(batchata::Error::Validation(format!(
                "time limit must be positive, got {seconds} s"
            ))));
        }
        self.with(|b| {
            let b = b.time_limit(Duration::from_secs_f64(seconds));
            b.check()?;
            Ok((b, ()))
        })
    }

    fn set_verbosity(&self, level: &str) -> PyResult<()> {
        let v: Verbosity = level.parse().map_err(to_py)?;
        self.with(|b| Ok((b.verbosity(v), ())))
    }

    fn set_progress_interval(&self, seconds: f64) -> PyResult<()> {
        let d = Duration::from_secs_f64(seconds.max(0.05));
        self.with(|b| Ok((b.progress_interval(d), ())))
    }

    /// Whether the catalog knows `model` (an error naming close ones if not).
    fn check_model(&self, model: &str) -> PyResult<()> {
        self.with(|b| {
            b.catalog().lookup(model)?;
            Ok((b, ()))
        })
    }

    /// Adds one job with its parameters already merged with the defaults;
    /// returns its id. `messages` is a list of `(role, text)`;
    /// `schema_json` the response model's JSON schema.
    #[pyo3(signature = (model, messages=None, file=None, prompt=None, temperature=None, max_tokens=None, schema_json=None, enable_citations=false, job_id=None))]
    #[allow(clippy::too_many_arguments)]
    fn add_job(
        &self,
        model: String,
        messages: Option<Vec<(String, String)>>,
        file: Option<PathBuf>,
        prompt: Option<String>,
        temperature: Option<f64>,
        max_tokens: Option<u32>,
        schema_json: Option<String>,
        enable_citations: bool,
        job_id: Option<String>,
    ) -> PyResult<String> {
        let mut job = Job {
            id: job_id,
            model: Some(model),
            file,
            prompt,
            temperature,
            max_tokens,
            enable_citations,
            ..Default::default()
        };
        if let Some(ms) = messages {
            let mut out = Vec::with_capacity(ms.len());
            for (r, content) in ms {
                out.push(Message {
                    role: role(&r)?,
                    content,
                });
            }
            job.messages = Some(out);
        }
        if let Some(s) = schema_json {
            let value: serde_json::Value = serde_json::from_str(&s)
                .map_err(|e| to_py(batchata::Error::Validation(format!("response schema: {e}"))))?;
            job.response_schema = Some(ResponseSchema::from_value(value).map_err(to_py)?);
        }
        let mut slot = self.batch.lock().unwrap_or_else(|p| p.into_inner());
        let batch = slot
            .as_mut()
            .ok_or_else(|| PyRuntimeError::new_err("this batch has already been run"))?;
        batch.add_job(job).map_err(to_py)
    }

    /// `[(id, model, file, temperature, max_tokens, enable_citations)]` of
    /// every job added, as sent (defaults merged), read back from the
    /// batch's spool.
    #[allow(clippy::type_complexity)]
    fn job_records(
        &self,
    ) -> Vec<(
        String,
        String,
        Option<PathBuf>,
        Option<f64>,
        Option<u32>,
        bool,
    )> {
        let slot = self.batch.lock().unwrap_or_else(|p| p.into_inner());
        let Some(batch) = slot.as_ref() else {
            return Vec::new();
        };
        batch
            .jobs()
            .into_iter()
            .map(|j| {
                (
                    j.id.unwrap_or_default(),
                    j.model.unwrap_or_default(),
                    j.file,
                    j.temperature,
                    j.max_tokens,
                    j.enable_citations,
                )
            })
            .collect()
    }

    /// `[(id, messages, prompt)]` of every job added, read back from the
    /// batch's spool: `messages` as `[(role, text)]` or None.
    #[allow(clippy::type_complexity)]
    fn job_contents(&self) -> Vec<(String, Option<Vec<(&'static str, String)>>, Option<String>)> {
        let slot = self.batch.lock().unwrap_or_else(|p| p.into_inner());
        let Some(batch) = slot.as_ref() else {
            return Vec::new();
        };
        batch
            .jobs()
            .into_iter()
            .map(|j| {
                let messages = j.messages.map(|ms| {
                    ms.into_iter()
                        .map(|m| (m.role.as_str(), m.content))
                        .collect()
                });
                (j.id.unwrap_or_default(), messages, j.prompt)
            })
            .collect()
    }

    fn __len__(&self) -> usize {
        let slot = self.batch.lock().unwrap_or_else(|p| p.into_inner());
        slot.as_ref().map(|b| b.job_count()).unwrap_or(0)
    }

    /// The dry run's plan as text (nothing is submitted) and its estimated
    /// total cost.
    fn plan(&self, py: Python<'_>) -> PyResult<(String, f64)> {
        let batch = {
            let slot = self.batch.lock().unwrap_or_else(|p| p.into_inner());
            slot.clone()
                .ok_or_else(|| PyRuntimeError::new_err("this batch has already been run"))?
        };
        let report = py.detach(|| batch.plan()).map_err(to_py)?;
        let total = report.worst_case_usd;
        Ok((report.to_string(), total))
    }

    /// Starts a run of the batch in the background. The batch stays usable:
    /// as in batchata, running it again makes a new run of the same jobs
    /// (which resumes from the state file when there is one).
    /// With `estimate_costs`, each batch's worst-case cost is estimated for
    /// the progress callback's batch data; with `adopt_results`, completed
    /// results already in the folder are kept when there is no state.
    fn start(
        &self,
        py: Python<'_>,
        print_status: bool,
        estimate_costs: bool,
        adopt_results: bool,
    ) -> PyResult<NativeRun> {
        let batch = {
            let slot = self.batch.lock().unwrap_or_else(|p| p.into_inner());
            slot.clone()
                .ok_or_else(|| PyRuntimeError::new_err("this batch has already been run"))?
        };
        let total = batch.job_count();
        init_logging(batch.params().verbosity);
        let batch = if print_status {
            batch.live_progress()
        } else {
            batch
        };
        let batch = if estimate_costs {
            batch.estimate_batch_costs()
        } else {
            batch
        };
        let batch = if adopt_results {
            batch.adopt_results()
        } else {
            batch
        };
        let run = py
            .detach(|| runtime().block_on(batch.start()))
            .map_err(to_py)?;
        Ok(NativeRun {
            run,
            total,
            outcome: Mutex::new(None),
        })
    }
}

/// A started run.
#[pyclass(module = "batchata_rs._native")]
struct NativeRun {
    run: BatchRun,
    total: usize,
    /// The run's end, once seen: `Some(Ok)` or the error text and kind.
    outcome: Mutex<Option<Result<(), batchata::Error>>>,
}

fn status_dict<'py>(
    py: Python<'py>,
    s: &RunStatus,
    items_per_batch: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("total", s.total)?;
    d.set_item("pending", s.pending)?;
    let active: usize = s
        .batches
        .iter()
        .filter(|b| b.batch_id.is_some() && !b.finished)
        .map(|b| b.total - b.done.min(b.total))
        .sum();
    d.set_item("active", active)?;
    d.set_item("completed", s.completed)?;
    d.set_item("failed", s.failed)?;
    d.set_item("cancelled", s.cancelled)?;
    d.set_item("cost_usd", s.cost_used_usd)?;
    d.set_item("cost_limit_usd", s.cost_limit_usd)?;
    d.set_item("is_complete", s.is_complete)?;
    d.set_item("batches_total", s.batches_total)?;
    d.set_item("batches_completed", s.batches_completed)?;
    d.set_item("batches_pending", s.batches_pending)?;
    let current = s.batches.iter().find(|b| !b.finished);
    d.set_item("current_batch_index", current.map(|b| b.index).unwrap_or(0))?;
    d.set_item("current_batch_size", current.map(|b| b.total).unwrap_or(0))?;
    d.set_item("items_per_batch", items_per_batch)?;
    d.set_item(
        "stop_reason",
        s.stop_reason
            .and_then(|r| serde_json::to_value(r).ok())
            .and_then(|v| v.as_str().map(str::to_owned)),
    )?;
    Ok(d)
}

/// 0.4.7's names for a provider (its provider classes).
fn provider_class(kind: batchata::ProviderKind) -> &'static str {
    match kind {
        batchata::ProviderKind::Anthropic => "AnthropicProvider",
        batchata::ProviderKind::OpenAi => "OpenAIProvider",
        batchata::ProviderKind::Gemini => "GeminiProvider",
    }
}

/// A UTC time as the naive local `datetime` 0.4.7 records
/// (`datetime.now()`).
fn local_datetime<'py>(
    py: Python<'py>,
    t: Option<chrono::DateTime<chrono::Utc>>,
) -> PyResult<Bound<'py, PyAny>> {
    let Some(t) = t else {
        return Ok(py.None().into_bound(py));
    };
    let ts = t.timestamp() as f64 + f64::from(t.timestamp_subsec_micros()) / 1e6;
    py.import("datetime")?
        .getattr("datetime")?
        .call_method1("fromtimestamp", (ts,))
}

/// Each batch as `(key, info, index)`: `key` the provider batch id (or
/// `pending_N` before it has one), `info` 0.4.7's `batch_tracking` entry
/// without its `jobs` (the Python side adds them from `index`).
fn batches_list<'py>(py: Python<'py>, s: &RunStatus) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for b in &s.batches {
        let key = b
            .batch_id
            .clone()
            .unwrap_or_else(|| format!("pending_{}", b.index));
        // 0.4.7's statuses: pending, running, then complete, failed or
        // cancelled.
        let status = match (b.finished, &b.batch_id) {
            (false, None) => "pending",
            (false, Some(_)) => "running",
            (true, _) if b.cancelled > 0 => "cancelled",
            (true, _) if b.failed > 0 => "failed",
            (true, _) if b.done < b.total => "failed",
            (true, _) => "complete",
        };
        let d = PyDict::new(py);
        d.set_item("start_time", local_datetime(py, b.submitted_at)?)?;
        d.set_item("status", status)?;
        d.set_item("total", b.total)?;
        d.set_item("completed", b.done.saturating_sub(b.failed + b.cancelled))?;
        d.set_item("cost", b.cost_usd)?;
        d.set_item("estimated_cost", b.estimated_cost_usd.unwrap_or(0.0))?;
        d.set_item("provider", provider_class(b.provider))?;
        if b.finished {
            // Added by 0.4.7 when a batch ends.
            d.set_item("failed", b.failed + b.cancelled)?;
            d.set_item("completion_time", local_datetime(py, b.finished_at)?)?;
            if status != "complete" {
                let error = b.error.clone().unwrap_or_else(|| {
                    format!(
                        "batch ended with {} of its {} jobs not run",
                        b.total - b.done,
                        b.total
                    )
                });
                d.set_item("error", error)?;
            }
        }
        out.append((key, d, b.index))?;
    }
    Ok(out)
}

#[pymethods]
impl NativeRun {
    /// `(stats dict, elapsed seconds, batches)`: batchata's progress
    /// callback arguments, the batches as [`batches_list`] gives them.
    fn progress<'py>(
        &self,
        py: Python<'py>,
        items_per_batch: usize,
    ) -> PyResult<(Bound<'py, PyDict>, f64, Bound<'py, PyList>)> {
        let s = self.run.status();
        Ok((
            status_dict(py, &s, items_per_batch)?,
            self.run.elapsed().as_secs_f64(),
            batches_list(py, &s)?,
        ))
    }

    /// The job ids of batch `index` of this run, in order.
    fn batch_job_ids(&self, index: usize) -> Vec<String> {
        self.run
            .status()
            .batches
            .iter()
            .find(|b| b.index == index)
            .map(|b| b.jobs.iter().map(|id| id.to_string()).collect())
            .unwrap_or_default()
    }

    fn status<'py>(&self, py: Python<'py>, items_per_batch: usize) -> PyResult<Bound<'py, PyDict>> {
        status_dict(py, &self.run.status(), items_per_batch)
    }

    #[getter]
    fn total(&self) -> usize {
        self.total
    }

    #[getter]
    fn is_done(&self) -> bool {
        self.outcome
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Waits at most `timeout` seconds (forever when None) with the GIL
    /// released, checking Python's signals every 50 ms so Ctrl+C raises
    /// `KeyboardInterrupt` here. Returns whether the run has ended; raises
    /// the run's error if it ended with one.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let deadline = timeout.map(|t| Instant::now() + Duration::from_secs_f64(t.max(0.0)));
        loop {
            if let Some(o) = self
                .outcome
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
            {
                return o.map(|_| true).map_err(to_py);
            }
            let slice = match deadline {
                Some(d) => d
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(50)),
                None => Duration::from_millis(50),
            };
            let run = self.run.clone();
            let got = py.detach(|| runtime().block_on(run.wait_timeout(slice)));
            match got {
                Ok(Some(_)) => {
                    *self.outcome.lock().unwrap_or_else(|p| p.into_inner()) = Some(Ok(()));
                    release_free_memory();
                    return Ok(true);
                }
                Ok(None) => {}
                Err(e) => {
                    release_free_memory();
                    *self.outcome.lock().unwrap_or_else(|p| p.into_inner()) = Some(Err(e.clone()));
                    return Err(to_py(e));
                }
            }
            py.check_signals()?;
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
        }
    }

    /// Stops submitting; without `wait_for_active` the batches in flight
    /// are cancelled too. State is saved either way.
    #[pyo3(signature = (wait_for_active=false))]
    fn shutdown(&self, wait_for_active: bool) {
        if wait_for_active {
            self.run.drain();
        } else {
            self.run.shutdown();
        }
    }

    /// `{"completed": [...], "failed": [...], "cancelled": [...]}` of
    /// `job_result` instances (the Python `JobResult` class), built
    /// straight from the result files one at a time: `citation` and
    /// `citation_list` are the classes of a citation and of a field's
    /// citations.
    fn results<'py>(
        &self,
        py: Python<'py>,
        job_result: &Bound<'py, PyAny>,
        citation: &Bound<'py, PyAny>,
        citation_list: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        // Reading and parsing 10,000 files is most of the time here, and a
        // run has ended, so both cores are free: two threads read the files
        // (alternate chunks, each a few hundred results ahead at most) while
        // this one makes the Python objects, in the files' order.
        let run = self.run.clone();
        let files = Arc::new(py.detach(move || run.result_files()).map_err(to_py)?);
        let chunks = files.len().div_ceil(RESULTS_CHUNK);
        let mut readers = Vec::with_capacity(RESULT_READERS);
        let mut receivers = Vec::with_capacity(RESULT_READERS);
        for first in 0..RESULT_READERS {
            let (tx, rx) = std::sync::mpsc::sync_channel::<batchata::Result<Vec<JobResult>>>(1);
            let files = files.clone();
            let reader = std::thread::Builder::new()
                .name("batchata-rs-results".into())
                .spawn(move || {
                    for c in (first..chunks).step_by(RESULT_READERS) {
                        let end = ((c + 1) * RESULTS_CHUNK).min(files.len());
                        let mut out = Vec::with_capacity(end - c * RESULTS_CHUNK);
                        let mut failed = None;
                        for i in c * RESULTS_CHUNK..end {
                            match files.read(i) {
                                Ok(Some(r)) => out.push(r),
                                Ok(None) => {}
                                Err(e) => {
                                    failed = Some(e);
                                    break;
                                }
                            }
                        }
                        let stop = failed.is_some();
                        let msg = failed.map_or(Ok(out), Err);
                        // A closed channel: the Python side stopped.
                        if tx.send(msg).is_err() || stop {
                            return;
                        }
                    }
                })
                .map_err(|e| PyRuntimeError::new_err(format!("cannot start a thread: {e}")))?;
            readers.push(reader);
            receivers.push(Some(rx));
        }
        let lists = [PyList::empty(py), PyList::empty(py), PyList::empty(py)];
        let mut outcome: PyResult<()> = Ok(());
        'chunks: for c in 0..chunks {
            let slot = &mut receivers[c % RESULT_READERS];
            let Some(rx) = slot.take() else { break };
            let (got, rx) = match rx.try_recv() {
                Ok(m) => (Ok(m), rx),
                // Not read yet: wait without holding the GIL.
                Err(_) => py.detach(move || (rx.recv(), rx)),
            };
            *slot = Some(rx);
            let results = match got {
                Ok(Ok(results)) => results,
                Ok(Err(e)) => {
                    outcome = Err(to_py(e));
                    break;
                }
                Err(_) => {
                    outcome = Err(PyRuntimeError::new_err("reading the results failed"));
                    break;
                }
            };
            for r in results {
                let slot = match r.outcome() {
                    JobOutcome::Completed => 0,
                    JobOutcome::Failed => 1,
                    JobOutcome::Cancelled => 2,
                };
                outcome = result_to_py(py, r, job_result, citation, citation_list)
                    .and_then(|obj| lists[slot].append(obj));
                if outcome.is_err() {
                    break 'chunks;
                }
            }
        }
        // Stops the readers if they are still going (an error above).
        drop(receivers);
        py.detach(move || {
            for r in readers {
                let _ = r.join();
            }
        });
        outcome?;
        let out = PyDict::new(py);
        let [completed, failed, cancelled] = lists;
        out.set_item("completed", completed)?;
        out.set_item("failed", failed)?;
        out.set_item("cancelled", cancelled)?;
        Ok(out)
    }

    #[getter]
    fn results_dir(&self) -> PathBuf {
        self.run.results_dir().to_path_buf()
    }
}

/// Threads reading result files for `NativeRun.results`.
const RESULT_READERS: usize = 2;
/// Result files a reader reads before handing them over.
const RESULTS_CHUNK: usize = 128;

/// A JSON value as the Python object `json.loads` makes of it.
fn value_to_py<'py>(py: Python<'py>, v: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    use serde_json::Value as V;
    Ok(match v {
        V::Null => py.None().into_bound(py),
        V::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        V::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        V::String(s) => PyString::new(py, s).into_any(),
        V::Array(a) => {
            let l = PyList::empty(py);
            for x in a {
                l.append(value_to_py(py, x)?)?;
            }
            l.into_any()
        }
        V::Object(o) => {
            let d = PyDict::new(py);
            for (k, x) in o {
                d.set_item(k, value_to_py(py, x)?)?;
            }
            d.into_any()
        }
    })
}

fn citation_to_py<'py>(
    py: Python<'py>,
    c: Citation,
    cls: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let metadata = match &c.metadata {
        Some(m) => value_to_py(py, m)?,
        None => py.None().into_bound(py),
    };
    cls.call1((
        c.text,
        c.source,
        c.page,
        metadata,
        c.confidence.map(|x| x.as_str()),
        c.match_reason,
    ))
}

/// One result as an instance of the Python `JobResult` class, with
/// `JobResult.from_dict`'s field values.
fn result_to_py<'py>(
    py: Python<'py>,
    r: JobResult,
    job_result: &Bound<'py, PyAny>,
    citation: &Bound<'py, PyAny>,
    citation_list: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let parsed = match &r.parsed_response {
        Some(v) => value_to_py(py, v)?,
        None => py.None().into_bound(py),
    };
    // As from_dict: an empty list or map reads as None.
    let citations = match r.citations {
        Some(cs) if !cs.is_empty() => {
            let l = PyList::empty(py);
            for c in cs {
                l.append(citation_to_py(py, c, citation)?)?;
            }
            l.into_any()
        }
        _ => py.None().into_bound(py),
    };
    let mappings = match r.citation_mappings {
        Some(m) if !m.is_empty() => {
            let d = PyDict::new(py);
            for (field, cs) in m {
                let l = PyList::empty(py);
                for c in cs {
                    l.append(citation_to_py(py, c, citation)?)?;
                }
                d.set_item(field, citation_list.call1((l,))?)?;
            }
            d.into_any()
        }
        _ => py.None().into_bound(py),
    };
    job_result.call1((
        r.job_id,
        r.raw_response,
        parsed,
        citations,
        mappings,
        r.input_tokens,
        r.output_tokens,
        r.cost_usd,
        r.error,
        r.batch_id,
    ))
}

/// A running emulator of the providers' batch APIs, for tests.
#[pyclass(module = "batchata_rs._native")]
struct NativeEmulator {
    handle: Mutex<Option<batchata_emulator::EmulatorHandle>>,
    urls: (String, String, String, String),
}

#[pymethods]
impl NativeEmulator {
    #[getter]
    fn base_url(&self) -> String {
        self.urls.0.clone()
    }
    #[getter]
    fn anthropic_base_url(&self) -> String {
        self.urls.1.clone()
    }
    #[getter]
    fn openai_base_url(&self) -> String {
        self.urls.2.clone()
    }
    #[getter]
    fn gemini_base_url(&self) -> String {
        self.urls.3.clone()
    }

    /// Counters of what the emulator has seen, as JSON text.
    fn stats_json(&self) -> PyResult<String> {
        let slot = self.handle.lock().unwrap_or_else(|p| p.into_inner());
        let h = slot
            .as_ref()
            .ok_or_else(|| PyRuntimeError::new_err("the emulator has been stopped"))?;
        Ok(format!("{:?}", h.stats()))
    }

    fn stop(&self, py: Python<'_>) {
        let h = self.handle.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = h {
            py.detach(|| runtime().block_on(h.shutdown()));
        }
    }
}

/// Starts an emulator on a free local port. `processing_delay` (seconds) is
/// how long each batch stays in progress; `error_rate` the fraction of
/// requests that come back as errors.
#[pyfunction]
#[pyo3(signature = (processing_delay=0.0, error_rate=0.0, api_key=None, seed=0))]
fn start_emulator(
    py: Python<'_>,
    processing_delay: f64,
    error_rate: f64,
    api_key: Option<String>,
    seed: u64,
) -> PyResult<NativeEmulator> {
    let config = batchata_emulator::EmulatorConfig {
        processing_delay: Duration::from_secs_f64(processing_delay.max(0.0)),
        error_rate,
        api_key,
        seed,
        ..Default::default()
    };
    let h = py
        .detach(|| runtime().block_on(batchata_emulator::Emulator::start(config)))
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start the emulator: {e}")))?;
    let urls = (
        h.base_url(),
        h.anthropic_base_url(),
        h.openai_base_url(),
        h.gemini_base_url(),
    );
    Ok(NativeEmulator {
        handle: Mutex::new(Some(h)),
        urls,
    })
}

/// Writes a PDF with one page per string (text only), for tests and examples.
#[pyfunction]
fn write_pdf(py: Python<'_>, path: PathBuf, pages: Vec<String>) -> PyResult<()> {
    py.detach(|| {
        let refs: Vec<&str> = pages.iter().map(String::as_str).collect();
        let bytes = batchata::fixtures::pdf(&refs).map_err(to_py)?;
        std::fs::write(&path, bytes)
            .map_err(|e| PyRuntimeError::new_err(format!("cannot write {}: {e}", path.display())))
    })
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeBatch>()?;
    m.add_class::<NativeRun>()?;
    m.add_class::<NativeEmulator>()?;
    m.add_function(wrap_pyfunction!(start_emulator, m)?)?;
    m.add_function(wrap_pyfunction!(write_pdf, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
