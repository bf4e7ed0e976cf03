//! Results as Python objects: a `JobResult` of the library made into an
//! instance of the Python `JobResult` class (with its citations), and JSON
//! values into what `json.loads` would make.

use batchata::{Citation, JobResult};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyList, PyString};

/// Threads reading result files for `NativeRun.results`.
pub(crate) const RESULT_READERS: usize = 2;
/// Result files a reader reads before handing them over.
pub(crate) const RESULTS_CHUNK: usize = 128;

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
pub(crate) fn result_to_py<'py>(
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
