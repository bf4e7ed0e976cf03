//! What a job's record is made of: its model as an index into the run's
//! model names, its approximate request size, and, for a light job, the
//! rest of its fingerprint.

use std::collections::HashMap;
use std::sync::Arc;

use super::JobRecord;
use crate::error::{Error, Result};
use crate::job::Job;

/// The distinct model names of a run; a job record holds an index.
#[derive(Debug, Default)]
pub(super) struct ModelNames {
    pub(super) names: Vec<Arc<str>>,
    index: HashMap<Arc<str>, u16>,
}

impl ModelNames {
    pub(super) fn index_of(&mut self, name: &str) -> Result<u16> {
        if let Some(&i) = self.index.get(name) {
            return Ok(i);
        }
        let i = u16::try_from(self.names.len()).map_err(|_| {
            Error::Validation(format!(
                "model '{name}': a run takes at most {} distinct model names; split the jobs into several runs",
                u16::MAX
            ))
        })?;
        let name: Arc<str> = Arc::from(name);
        self.names.push(name.clone());
        self.index.insert(name, i);
        Ok(i)
    }
}

/// The record of `job`, whose journal line starts at `offset` and is
/// `line_len` bytes long. `job` may be without its content: the line's
/// length stands for it.
pub(super) fn new_record(
    models: &mut ModelNames,
    job: &Job,
    offset: u64,
    line_len: u64,
) -> Result<JobRecord> {
    Ok(JobRecord {
        id: job.id_str().to_string(),
        offset,
        fingerprint: crate::fingerprint::short(job.fingerprint.as_deref()),
        approx_bytes: u32::try_from(approx_request_bytes(job, line_len)).unwrap_or(u32::MAX),
        model: models.index_of(job.model_name())?,
        has_file: job.file.is_some(),
        light: light_fingerprint(job),
    })
}

/// The last 64 bits of a light job's fingerprint ([`JobRecord::light`]):
/// one whose result needs only its id, model and fingerprint, and whose
/// fingerprint is the 32 lowercase hex digits it is rebuilt as.
fn light_fingerprint(job: &Job) -> Option<u64> {
    if job.file.is_some() || job.response_schema.is_some() || job.enable_citations {
        return None;
    }
    let fp = job.fingerprint.as_deref()?;
    let hex = |c: u8| c.is_ascii_digit() || (b'a'..=b'f').contains(&c);
    if fp.len() != 32 || !fp.bytes().all(hex) {
        return None;
    }
    u64::from_str_radix(&fp[16..], 16).ok()
}

/// Approximate bytes a job adds to a provider request: its journal line
/// (its text and schema as JSON, so never less than the request carries of
/// them), its file (base64 grows it by a third) and some envelope.
fn approx_request_bytes(job: &Job, line_len: u64) -> u64 {
    let mut n = 512 + line_len;
    if let Some(f) = &job.file {
        n += std::fs::metadata(f)
            .map(|m| m.len() * 4 / 3 + 4)
            .unwrap_or(0);
    }
    n
}
