//! The package's aids for tests and examples: a local emulator of the
//! providers' batch APIs (`batchata_rs.emulator`) and a PDF writer.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::errors::to_py;
use crate::runtime;

/// A running emulator of the providers' batch APIs, for tests.
#[pyclass(module = "batchata_rs._native")]
pub(crate) struct NativeEmulator {
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
pub(crate) fn start_emulator(
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
pub(crate) fn write_pdf(py: Python<'_>, path: PathBuf, pages: Vec<String>) -> PyResult<()> {
    py.detach(|| {
        let refs: Vec<&str> = pages.iter().map(String::as_str).collect();
        let bytes = batchata::fixtures::pdf(&refs).map_err(to_py)?;
        std::fs::write(&path, bytes)
            .map_err(|e| PyRuntimeError::new_err(format!("cannot write {}: {e}", path.display())))
    })
}
