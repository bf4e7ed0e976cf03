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
//!
//! `batch` holds the builder, `run` a started run (status, progress,
//! waiting), `results` turns result files into Python objects, `errors`
//! the library's errors into Python exceptions, and `emulator` serves the
//! tests; this file keeps what belongs to the process: the runtime, the
//! logger and the allocator settings.

mod batch;
mod emulator;
mod errors;
mod results;
mod run;

use std::sync::OnceLock;

use batchata::Verbosity;
use pyo3::prelude::*;

use crate::batch::NativeBatch;
use crate::emulator::{start_emulator, write_pdf, NativeEmulator};
use crate::run::NativeRun;

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
