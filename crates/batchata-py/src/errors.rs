//! The library's errors in Python's terms: each `batchata::Error` raised as
//! the exception of the same name in `batchata_rs.exceptions`, its message
//! naming this package's methods where the library names its builder's.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// Raises the library's error as the Python exception of the same name in
/// `batchata_rs.exceptions` (batchata's names).
pub(crate) fn to_py(err: batchata::Error) -> PyErr {
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
