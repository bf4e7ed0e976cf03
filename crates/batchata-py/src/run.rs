//! `NativeRun`: a started run seen from Python. It answers the Python
//! `BatchRun`'s status and progress questions as batchata 0.4.7's dicts,
//! waits with the GIL released (so Ctrl+C reaches Python), and hands the
//! results over.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use batchata::{BatchRun, RunStatus};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::errors::to_py;
use crate::results::read_results;
use crate::{release_free_memory, runtime};

/// A started run.
#[pyclass(module = "batchata_rs._native")]
pub(crate) struct NativeRun {
    pub(crate) run: BatchRun,
    pub(crate) total: usize,
    /// The run's end, once seen: `Some(Ok)` or the error text and kind.
    pub(crate) outcome: Mutex<Option<Result<(), batchata::Error>>>,
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
        read_results(py, &self.run, job_result, citation, citation_list)
    }

    #[getter]
    fn results_dir(&self) -> PathBuf {
        self.run.results_dir().to_path_buf()
    }
}
