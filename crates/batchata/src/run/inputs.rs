//! Bringing a batch's jobs into the run's state, by content as well as by id.
//!
//! A rerun over an existing state matches each job to what the state knows
//! by id *and* fingerprint ([`crate::fingerprint`]): unchanged jobs keep
//! their results, new jobs are added, and a known id whose request changed
//! is refused (or, when asked, run again with its old result removed), so an
//! answer is never handed back for a prompt it does not answer. Jobs the
//! state knows that are no longer in the input are reported and kept; those
//! that never ran are not submitted.
//!
//! A results folder that holds result files for this run's jobs but no
//! state is refused the same way (or its matching completed results are
//! adopted), so a deleted state file never pays for every job again. In
//! the jsonl layout the same holds for the lines of `results.jsonl` (a
//! job's last line).

use std::path::Path;

use crate::batch::BatchParams;
use crate::error::{Error, Result};
use crate::job::Job;
use crate::layout::{LastLines, ResultsFormat};
use crate::result::{JobOutcome, JobResult};
use crate::spool::JobSpool;
use crate::state::{JobBits, JobNo, JobSansContent, JobStatus, StateStore};

/// How many ids a refusal lists before it counts the rest.
const LISTED: usize = 20;

/// What reading the input into the state found.
#[derive(Debug, Default)]
pub(super) struct Reconciled {
    /// Jobs new to the state.
    pub added: usize,
    /// Jobs whose request changed, queued again (`rerun_changed`).
    pub rerun: usize,
    /// Jobs adopted from result files left without a state.
    pub adopted: usize,
    /// Jobs the state knows that the input no longer has and that have not
    /// run: kept, not submitted.
    pub absent_pending: JobBits,
}

/// The first ids of `total`, then how many more.
fn listed(ids: &[String], total: usize) -> String {
    let mut s = ids
        .iter()
        .take(LISTED)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    let shown = ids.len().min(LISTED);
    if total > shown {
        s.push_str(&format!(" and {} more", total - shown));
    }
    s
}

fn result_path(results_dir: &Path, id: &str) -> std::path::PathBuf {
    results_dir.join(format!("{id}.json"))
}

/// The results a folder already holds, in a run's layout.
enum Existing<'a> {
    Files(&'a Path),
    Jsonl(LastLines),
    Nothing,
}

impl<'a> Existing<'a> {
    fn open(results_dir: &'a Path, format: ResultsFormat) -> Result<Existing<'a>> {
        Ok(match format {
            ResultsFormat::Files => Existing::Files(results_dir),
            ResultsFormat::Jsonl => {
                match LastLines::build(&crate::layout::jsonl_path(results_dir))? {
                    Some(index) => Existing::Jsonl(index),
                    None => Existing::Nothing,
                }
            }
        })
    }

    /// Whether it holds a result for `id`.
    fn holds(&self, id: &str) -> Result<bool> {
        match self {
            Existing::Files(dir) => Ok(result_path(dir, id).is_file()),
            Existing::Jsonl(index) => index.holds(id),
            Existing::Nothing => Ok(false),
        }
    }

    /// `id`'s result, when it has one that reads.
    fn load(&self, id: &str) -> Option<JobResult> {
        match self {
            Existing::Files(dir) => {
                let path = result_path(dir, id);
                if !path.is_file() {
                    return None;
                }
                JobResult::load_from_json(&path).ok()
            }
            Existing::Jsonl(index) => index.load(id).ok().flatten(),
            Existing::Nothing => None,
        }
    }
}

/// Before a state is created over a results folder: result files for this
/// run's jobs and no state to say what they answer mean the state was lost.
/// Refuses, unless `adopt_results`; nothing is written either way.
pub(super) fn check_orphan_results(
    jobs: &JobSpool,
    params: &BatchParams,
    format: ResultsFormat,
) -> Result<()> {
    if params.adopt_results || !holds_result_files(&params.results_dir) {
        return Ok(());
    }
    let existing = Existing::open(&params.results_dir, format)?;
    if matches!(existing, Existing::Nothing) {
        return Ok(());
    }
    let mut found = Vec::new();
    let mut count = 0usize;
    for item in jobs.iter_lines::<JobSansContent>()? {
        let job = Job::from(item?.0);
        if existing.holds(job.id_str())? {
            count += 1;
            if found.len() < LISTED {
                found.push(job.id_str().to_string());
            }
        }
    }
    if count == 0 {
        return Ok(());
    }
    let more = if count > found.len() {
        format!(" and {} more", count - found.len())
    } else {
        String::new()
    };
    Err(Error::Validation(format!(
        "{} already holds results for {count} of these jobs ({}{more}) but no state file says what they answer (it was deleted, or the run used another one), so running would pay for them again and overwrite them; \
         keep the results whose job and request are unchanged and run only the rest with adopt_results (CLI: --adopt-results), or run everything again with reuse off (CLI: --fresh)",
        params.results_dir.display(),
        found.join(", ")
    )))
}

/// Whether the folder holds any `*.json` file or a `results.jsonl`: when
/// it holds neither, no job
/// needs looking for (a million jobs, a million lookups saved).
fn holds_result_files(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        name.ends_with(".json") || name == "results.jsonl"
    })
}

/// Reads the input's jobs into a new state; with `adopt_results`, a job
/// whose completed result file answers exactly its request is recorded
/// done instead of being run.
pub(super) fn into_new_state(
    store: &mut StateStore,
    jobs: &JobSpool,
    params: &BatchParams,
) -> Result<Reconciled> {
    let mut out = Reconciled::default();
    store.reserve_jobs(jobs.len());
    let existing = if params.adopt_results {
        Existing::open(&params.results_dir, store.results_format)?
    } else {
        Existing::Nothing
    };
    // Read without the prompts: the state copies each job's line as it is.
    for item in jobs.iter_lines::<JobSansContent>()? {
        let (job, json) = item?;
        let job = Job::from(job);
        let n = store.add_job_json(&job, &json)?;
        out.added += 1;
        if params.adopt_results {
            if let Some(r) = adoptable(&existing, &job) {
                store.record_done_no(n, JobOutcome::Completed, r.cost_usd, false)?;
                out.adopted += 1;
            }
        }
    }
    Ok(out)
}

/// A completed result that answers exactly this job's request.
fn adoptable(existing: &Existing<'_>, job: &Job) -> Option<JobResult> {
    let r = existing.load(job.id_str())?;
    let same = r.job_id == job.id_str()
        && r.fingerprint.is_some()
        && r.fingerprint == job.fingerprint
        && r.outcome() == JobOutcome::Completed;
    same.then_some(r)
}

/// Reads the input's jobs into an existing state, by id and fingerprint.
/// Refuses changed jobs unless `rerun_changed`; then their old result
/// files are removed and they run again. Per job it holds a bit or two,
/// never the ids: the input is read twice instead.
pub(super) fn into_existing_state(
    store: &mut StateStore,
    jobs: &JobSpool,
    params: &BatchParams,
) -> Result<Reconciled> {
    // First pass: compare, write nothing.
    let mut changed = JobBits::default();
    let mut changed_ids: Vec<String> = Vec::new();
    let mut seen = JobBits::default();
    let mut new_jobs = 0usize;
    for item in jobs.iter_lines::<JobSansContent>()? {
        let job = Job::from(item?.0);
        match store.find_record(job.id_str())? {
            Some((n, rec)) => {
                let fp = crate::fingerprint::short(job.fingerprint.as_deref());
                // 0: the state predates fingerprints and cannot tell.
                if rec.fingerprint != 0 && fp != 0 && rec.fingerprint != fp {
                    changed.insert(n);
                    if changed_ids.len() < LISTED {
                        changed_ids.push(rec.id);
                    }
                }
                seen.insert(n);
            }
            None => new_jobs += 1,
        }
    }
    if !changed.is_empty() && !params.rerun_changed {
        return Err(Error::Validation(format!(
            "{} job(s) changed since the state recorded them (prompt, file content, model, parameters or schema): {}; \
             their recorded results answer the old requests. Run exactly the changed and new jobs, replacing those results, with rerun_changed (CLI: --rerun-changed), or start over with reuse off (CLI: --fresh)",
            changed.len(),
            listed(&changed_ids, changed.len())
        )));
    }
    let mut out = Reconciled::default();
    // Jobs the input no longer has (an empty input resumes the state as it is).
    if !jobs.is_empty() {
        let mut absent = 0usize;
        let mut absent_ids: Vec<String> = Vec::new();
        let unseen: Vec<(JobNo, JobStatus)> = store
            .statuses()
            .filter(|(n, _, _)| !seen.contains(*n))
            .map(|(n, s, _)| (n, s))
            .collect();
        for (n, status) in unseen {
            absent += 1;
            if absent_ids.len() < LISTED {
                absent_ids.push(store.record(n)?.id);
            }
            if status == JobStatus::Pending {
                out.absent_pending.insert(n);
            }
        }
        if absent > 0 {
            tracing::warn!(
                count = absent,
                not_run = out.absent_pending.len(),
                ids = %listed(&absent_ids, absent),
                "jobs in the state are not in this input: their results are kept, and those that never ran are not submitted"
            );
        }
    }
    drop(seen);
    store.reserve_jobs(new_jobs);
    // Second pass: add the new jobs and the new versions of changed ones.
    for item in jobs.iter_lines::<JobSansContent>()? {
        let (job, json) = item?;
        let job = Job::from(job);
        match store.find(job.id_str())? {
            Some(n) if !changed.contains(n) => continue,
            Some(_) => {
                // The new request replaces the old in the state (its entry
                // goes back to pending; a batch still holding the old request
                // has its answer ignored) and its old answer leaves the folder
                // (in results.jsonl the new answer's line comes later, and wins).
                if store.results_format == ResultsFormat::Files {
                    let _ = std::fs::remove_file(result_path(&params.results_dir, job.id_str()));
                }
                out.rerun += 1;
            }
            None => out.added += 1,
        }
        store.add_job_json(&job, &json)?;
    }
    Ok(out)
}
