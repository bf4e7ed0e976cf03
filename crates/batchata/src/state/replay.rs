//! Rebuilding a run's state from its journal: every line replayed in
//! order, ids resolved to job numbers through the digest index, a torn
//! last line dropped.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::ids::IdIndex;
use super::lines::{parse_event, MAX_JOB_LINE};
use super::table::JobTable;
use super::{
    new_record, not_a_state, put_batch, put_job, BatchRecord, Event, JobRanges, JobStatus,
    ModelNames, StateStore, STATE_VERSION,
};
use crate::error::{Error, Result};
use crate::layout::ResultsFormat;

impl StateStore {
    pub(super) fn open_with(path: &Path, writable: bool) -> Result<StateStore> {
        let file = File::open(path).map_err(|e| Error::io("open the state file", path, e))?;
        let mut reader = BufReader::with_capacity(1 << 16, file);
        let mut line = Vec::new();
        let mut offset: u64 = 0;
        let mut good_end: u64 = 0;
        let mut header: Option<(String, DateTime<Utc>, PathBuf, ResultsFormat)> = None;
        let mut results_synced = 0u64;
        let mut table = JobTable::new(path)?;
        let mut index = IdIndex::default();
        let mut batches: Vec<BatchRecord> = Vec::new();
        let mut lineno = 0usize;
        let mut models = ModelNames::default();
        let mut spent = 0.0;
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| Error::io("read the state file", path, e))?;
            if n == 0 {
                break;
            }
            lineno += 1;
            let start = offset;
            offset += n as u64;
            if line.last() != Some(&b'\n') {
                // A torn final write: the process died mid-line. Ignore it.
                tracing::warn!(state = %path.display(), "ignoring an incomplete last line in the state file");
                break;
            }
            let event: Event = match parse_event(&line) {
                Ok(e) => e,
                Err(e) => {
                    return Err(not_a_state(
                        path,
                        format!("line {lineno} is not a state event ({e}); the file was changed by hand or is not a batchata state file — start fresh with reuse off (CLI: --fresh)"),
                    ))
                }
            };
            good_end = offset;
            match event {
                Event::Run {
                    version,
                    run_id,
                    created_at,
                    results_dir,
                    results_format,
                } => {
                    if version > STATE_VERSION {
                        return Err(not_a_state(
                            path,
                            format!(
                                "written by a newer batchata (format {version}); upgrade batchata"
                            ),
                        ));
                    }
                    header = Some((run_id, created_at, results_dir, results_format));
                }
                Event::Job { job } => {
                    let rec = new_record(&mut models, &job, start, offset - start)?;
                    put_job(&mut table, Some(&mut index), &rec)?;
                }
                Event::Intent {
                    batch,
                    provider,
                    jobs: ids,
                    at,
                    reserved_usd,
                } => {
                    let nums: JobRanges =
                        ids.iter().filter_map(|id| index.find_known(id)).collect();
                    for n in nums.iter() {
                        table.set_status(n, JobStatus::in_batch(batch), false);
                    }
                    let rec = BatchRecord {
                        index: batch,
                        provider,
                        jobs: nums,
                        size: ids.len(),
                        intent_at: at,
                        reserved_usd,
                        batch_id: None,
                        ended: None,
                    };
                    put_batch(&mut batches, rec);
                }
                Event::Submitted { batch, batch_id } => {
                    if let Some(b) = batches.get_mut(batch) {
                        b.batch_id = Some(batch_id);
                    }
                }
                Event::Done {
                    job,
                    outcome,
                    cost_usd,
                    rerun,
                } => {
                    if let Some(n) = index.find_known(&job) {
                        table.set_status(n, JobStatus::Done(outcome), rerun);
                        spent += cost_usd;
                    }
                }
                Event::BatchEnded { batch, status } => {
                    if let Some(b) = batches.get_mut(batch) {
                        b.ended = Some(status);
                        b.jobs = JobRanges::default();
                    }
                }
                Event::Reset { job } => {
                    if let Some(n) = index.find_known(&job) {
                        table.set_status(n, JobStatus::Pending, false);
                    }
                }
                Event::ResultsSynced { len } => results_synced = len,
            }
        }
        let (run_id, created_at, results_dir, results_format) = header.ok_or_else(|| {
            not_a_state(path, "has no run header; it is empty or not a batchata state file — start fresh with reuse off (CLI: --fresh)")
        })?;
        let file = if writable {
            let mut file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| Error::io("open the state file for writing", path, e))?;
            // Drop a torn tail so new lines start clean.
            file.set_len(good_end)
                .map_err(|e| Error::io("trim the state file", path, e))?;
            file.seek(SeekFrom::End(0))
                .map_err(|e| Error::io("seek in the state file", path, e))?;
            file
        } else {
            File::open(path).map_err(|e| Error::io("open the state file", path, e))?
        };
        let reader = File::open(path).map_err(|e| Error::io("open the state file", path, e))?;
        Ok(StateStore {
            path: path.to_path_buf(),
            writer: BufWriter::with_capacity(1 << 16, file),
            reader,
            offset: good_end,
            run_id,
            created_at,
            results_dir,
            results_format,
            results_synced,
            table,
            batches,
            models,
            index: Some(index),
            live: ahash::AHashMap::new(),
            spent,
            line: Vec::new(),
        })
    }
}

/// The results layout a journal's run recorded, read from its first line
/// only: a look at a folder never replays a journal of a million jobs.
pub fn results_format_of(path: &Path) -> Result<ResultsFormat> {
    let file = File::open(path).map_err(|e| Error::io("open the state file", path, e))?;
    let mut line = Vec::new();
    BufReader::new(file)
        .take(MAX_JOB_LINE as u64)
        .read_until(b'\n', &mut line)
        .map_err(|e| Error::io("read the state file", path, e))?;
    match serde_json::from_slice::<Event>(&line) {
        Ok(Event::Run { results_format, .. }) => Ok(results_format),
        _ => Err(not_a_state(
            path,
            "has no run header; it is empty or not a batchata state file",
        )),
    }
}
