//! Opening a run: the results folder and its locks, the state (resumed,
//! or new with the previous run's outputs cleared), the jobs that run
//! again, and a client for every provider the open jobs need — all before
//! the first call to a provider.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::lock::RunLocks;
use crate::batch::BatchParams;
use crate::catalog::{Catalog, ProviderKind};
use crate::error::{Error, Result};
use crate::layout::ResultsFormat;
use crate::providers::{create_provider, Provider};
use crate::result::JobOutcome;
use crate::spool::JobSpool;
use crate::state::{JobBits, JobNo, JobStatus, StateStore};

/// What [`open`] hands the engine.
pub(super) struct Opened {
    pub(super) store: StateStore,
    /// Pending jobs the input no longer has: kept, not submitted.
    pub(super) absent_pending: JobBits,
    pub(super) locks: RunLocks,
    pub(super) raw_dir: Option<PathBuf>,
    /// A state file of the run's own, removed when the run ends.
    pub(super) temp_state: Option<tempfile::TempPath>,
    pub(super) providers: HashMap<ProviderKind, Arc<dyn Provider>>,
}

/// Opens the run over `params.results_dir` with `jobs`.
pub(super) fn open(params: &BatchParams, jobs: JobSpool, catalog: &Arc<Catalog>) -> Result<Opened> {
    let results_dir = params.results_dir.clone();
    if results_dir.exists() && !results_dir.is_dir() {
        return Err(Error::Validation(format!(
            "results folder {} is a file; give a folder (it is created if missing)",
            results_dir.display()
        )));
    }
    std::fs::create_dir_all(&results_dir)
        .map_err(|e| Error::io("create the results folder", &results_dir, e))?;
    // Before anything in the folder or the state is read or written, this
    // run owns them.
    let locks = RunLocks::acquire(&results_dir, params.state_file.as_deref())?;
    let raw_dir = params.raw_files.then(|| results_dir.join("raw_files"));
    remove_stale_temp_files(&results_dir);

    // The state: the user's file, or a temporary one removed when the run ends.
    let (state_path, temp_state) = match &params.state_file {
        Some(p) => (p.clone(), None),
        None => {
            let tmp = tempfile::Builder::new()
                .prefix("batchata-state-")
                .suffix(".jsonl")
                .tempfile()
                .map_err(|e| {
                    Error::io("create a temporary state file in", std::env::temp_dir(), e)
                })?
                .into_temp_path();
            (tmp.to_path_buf(), Some(tmp))
        }
    };
    let resume = temp_state.is_none() && params.reuse_state && state_path.exists();
    let (mut store, reconciled) = if resume {
        let mut s = StateStore::open(&state_path)?;
        tracing::info!(run_id = %s.run_id, state = %state_path.display(), "resuming");
        check_results_format(&s, params, &state_path)?;
        if s.results_format == ResultsFormat::Jsonl {
            // Before anything reads the jobs' status: results appended but
            // not yet journaled done are recorded from their lines.
            crate::layout::recover(&mut s, &results_dir)?;
        }
        let r = super::inputs::into_existing_state(&mut s, &jobs, params)?;
        (s, r)
    } else {
        let format = params.results_format.unwrap_or_default();
        if params.reuse_state {
            // No state to say what the folder's results answer.
            super::inputs::check_orphan_results(&jobs, params, format)?;
        }
        if temp_state.is_none() && state_path.exists() {
            remove_previous_outputs(&state_path, &results_dir);
        }
        let mut s =
            StateStore::create_with_format(&state_path, &new_run_id(), &results_dir, format)?;
        if format == ResultsFormat::Jsonl {
            crate::layout::start_new(&mut s, &results_dir)?;
        }
        let r = super::inputs::into_new_state(&mut s, &jobs, params)?;
        (s, r)
    };
    drop(jobs);
    if resume && reconciled.added + reconciled.rerun > 0 {
        tracing::info!(
            added = reconciled.added,
            changed = reconciled.rerun,
            "jobs new to the state (or changed) were added to it"
        );
    }
    if reconciled.adopted > 0 {
        tracing::info!(
            adopted = reconciled.adopted,
            "completed results already in the folder were kept"
        );
    }
    // Jobs that never ran (cancelled, time or cost limit) run again; failed
    // ones only when asked.
    let to_reset: Vec<JobNo> = store
        .statuses()
        .filter(|&(_, status, rerun)| match status {
            JobStatus::Done(JobOutcome::Failed) => rerun || params.retry_failed,
            JobStatus::Done(JobOutcome::Cancelled) => true,
            JobStatus::InBatch(b) => store
                .batches
                .get(b as usize)
                .is_some_and(|r| r.ended.is_some()),
            _ => false,
        })
        .map(|(n, _, _)| n)
        .collect();
    for n in to_reset {
        store.reset_no(n)?;
    }
    store.sync()?;
    // From here jobs are found by number, and those in flight by id.
    store.drop_index();

    // Clients for every provider the run needs, before anything is submitted.
    let mut kinds: HashSet<ProviderKind> = store
        .batches
        .iter()
        .filter(|b| b.ended.is_none())
        .map(|b| b.provider)
        .collect();
    let mut pending_models: HashSet<u16> = HashSet::new();
    for item in store.scan()? {
        let (_, status, rec) = item?;
        if status == JobStatus::Pending {
            pending_models.insert(rec.model);
        }
    }
    for m in pending_models {
        kinds.insert(catalog.lookup(store.model_name(m))?.provider);
    }
    let mut providers: HashMap<ProviderKind, Arc<dyn Provider>> = HashMap::new();
    for kind in kinds {
        providers.insert(
            kind,
            create_provider(kind, params.providers.get(kind), catalog.clone())?,
        );
    }

    Ok(Opened {
        store,
        absent_pending: reconciled.absent_pending,
        locks,
        raw_dir,
        temp_state,
        providers,
    })
}

/// A run keeps the results layout it started with: a resume that asks
/// for the other one is refused before anything is written.
fn check_results_format(store: &StateStore, params: &BatchParams, state: &Path) -> Result<()> {
    let have = store.results_format;
    match params.results_format {
        Some(want) if want != have => {
            let place = |f: ResultsFormat| match f {
                ResultsFormat::Jsonl => "one results.jsonl".to_string(),
                _ => "a {job_id}.json file per job".to_string(),
            };
            Err(Error::Validation(format!(
                "state file {} is of a run that writes its results as {have} ({}), and this run asks for {want} ({}); a run keeps its layout to the end. Resume it with results_format {have} (CLI: --results-format {have}) or without the option, or start over in {want} with reuse off (CLI: --fresh)",
                state.display(),
                place(have),
                place(want),
            )))
        }
        _ => Ok(()),
    }
}

/// A process killed mid-write leaves its temp file behind (results are
/// written to a temp file, then renamed); only ours are removed.
fn remove_stale_temp_files(results_dir: &Path) {
    let dirs = [
        results_dir.to_path_buf(),
        results_dir.join("raw_files").join("responses"),
        results_dir.join("raw_files").join("requests"),
    ];
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(".batchata-") && name.ends_with(".tmp") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

fn new_run_id() -> String {
    format!(
        "run_{}_{:08x}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S"),
        fastrand::u32(..)
    )
}

/// A fresh run over an old state removes what that run wrote — its result
/// and raw files — and nothing else.
fn remove_previous_outputs(state_path: &Path, results_dir: &Path) {
    let Ok(mut old) = StateStore::inspect(state_path) else {
        tracing::warn!(state = %state_path.display(), "previous state unreadable; its outputs are left in place");
        return;
    };
    let raw = results_dir.join("raw_files");
    if old.results_format == ResultsFormat::Jsonl {
        let _ = std::fs::remove_file(crate::layout::jsonl_path(results_dir));
    }
    if let Ok(scan) = old.scan() {
        for (_, _, rec) in scan.flatten() {
            let id = rec.id;
            let _ = std::fs::remove_file(results_dir.join(format!("{id}.json")));
            let _ = std::fs::remove_file(raw.join("responses").join(format!("{id}_raw.json")));
        }
    }
    for b in &old.batches {
        if let Some(bid) = &b.batch_id {
            for sub in ["requests", "responses", "errors"] {
                for ext in ["json", "jsonl"] {
                    let _ = std::fs::remove_file(
                        raw.join(sub)
                            .join(format!("{}_batch_{bid}.{ext}", b.provider)),
                    );
                }
            }
        }
    }
}
