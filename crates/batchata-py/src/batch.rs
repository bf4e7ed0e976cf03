//! `NativeBatch`: the library's `Batch` builder held for Python. The Python
//! `Batch` class forwards its setters and `add_job` here, reads the jobs
//! back for `Batch.jobs`, and starts runs (`NativeRun`).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use batchata::{Batch, Job, Message, RawFiles, ResponseSchema, Role, Verbosity};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::errors::to_py;
use crate::run::NativeRun;
use crate::{init_logging, runtime};

/// The builder, owned by Python. The library's builder methods take `self`,
/// so it is moved out and back on each call.
#[pyclass(module = "batchata_rs._native")]
pub(crate) struct NativeBatch {
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
        // batch_data names every batch's jobs, ended ones too.
        let batch = batch.keep_batch_job_ids();
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
