//! Results as Python objects: a run's result files read on two threads
//! while this one makes each `JobResult` of the library into an instance
//! of the Python `JobResult` class (with its citations), and JSON values
//! into what `json.loads` would make.

use std::sync::Arc;

use batchata::{BatchRun, Citation, JobOutcome, JobResult};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyList, PyString};

use crate::errors::to_py;

/// Threads reading result files for `NativeRun.results`.
const RESULT_READERS: usize = 2;
/// Result files a reader reads before handing them over.
const RESULTS_CHUNK: usize = 128;

/// `NativeRun.results`: `{"completed": [...], "failed": [...], "cancelled":
/// [...]}` of `job_result` instances, read from `run`'s result files.
pub(crate) fn read_results<'py>(
    py: Python<'py>,
    run: &BatchRun,
    job_result: &Bound<'py, PyAny>,
    citation: &Bound<'py, PyAny>,
    citation_list: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    // Reading and parsing 10,000 files is most of the time here, and a
    // run has ended, so both cores are free: two threads read the files
    // (alternate chunks, each a few hundred results ahead at most) while
    // this one makes the Python objects, in the files' order.
    let run = run.clone();
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
